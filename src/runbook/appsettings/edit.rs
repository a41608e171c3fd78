//! Text-splicing editor over a [`JsonDoc`]: rename keys, replace values, insert members.
//!
//! Edits are recorded against the original byte spans and applied at once by
//! [`Editor::finish`]; text outside the edited spans is copied unchanged (comments, whitespace,
//! BOM, CRLF line endings). Inserted text follows the document's newline style and the
//! indentation of sibling keys.

use super::jsonc::{JsonDoc, Member, Value};

#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Collects splices on one document.
#[derive(Debug)]
pub struct Editor<'d> {
    doc: &'d JsonDoc,
    edits: Vec<Edit>,
}

/// JSON text of a string (quoted and escaped).
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl<'d> Editor<'d> {
    /// An editor with no edits.
    pub fn new(doc: &'d JsonDoc) -> Self {
        Editor {
            doc,
            edits: Vec::new(),
        }
    }

    fn splice(&mut self, start: usize, end: usize, text: String) {
        self.edits.push(Edit { start, end, text });
    }

    /// Renames `member`'s key (only the quoted key text changes).
    pub fn rename_key(&mut self, member: &Member, new_key: &str) {
        self.splice(
            member.key_span.start,
            member.key_span.end,
            json_string(new_key),
        );
    }

    /// Replaces `value` by `json` (JSON text, inserted verbatim).
    pub fn replace_value(&mut self, value: &Value, json: String) {
        self.splice(value.span.start, value.span.end, json);
    }

    /// The document's newline: `\r\n` if it contains one, else `\n`.
    pub fn newline(&self) -> &'static str {
        if self.doc.text().contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// Where the line containing byte `pos` starts, past the document's byte order mark on
    /// the first line. Only a BOM at offset 0 is one: a U+FEFF anywhere else is text (inside a
    /// comment, which is all a parsed document can hold it in) and never indentation.
    fn line_start(&self, pos: usize) -> usize {
        let text = self.doc.text();
        match text[..pos].rfind('\n') {
            Some(i) => i + 1,
            None if text.starts_with('\u{FEFF}') => '\u{FEFF}'.len_utf8().min(pos),
            None => 0,
        }
    }

    /// Leading spaces/tabs of the line containing byte `pos`.
    fn line_indent(&self, pos: usize) -> &'d str {
        let text = self.doc.text();
        let line = &text[self.line_start(pos)..];
        let n = line.len() - line.trim_start_matches([' ', '\t']).len();
        &line[..n]
    }

    /// Indentation of `member`'s key if the key starts its line.
    fn key_indent(&self, member: &Member) -> Option<&'d str> {
        let indent = self.line_indent(member.key_span.start);
        let text = self.doc.text();
        let before = &text[self.line_start(member.key_span.start)..member.key_span.start];
        (before == indent).then_some(indent)
    }

    /// One level of indentation, taken from the first member of the root object that starts
    /// its own line (default: two spaces).
    pub fn indent_unit(&self) -> String {
        let root = self.doc.root();
        let root_indent = self.line_indent(root.span.start);
        root.members()
            .unwrap_or_default()
            .iter()
            .find_map(|m| self.key_indent(m))
            .and_then(|i| i.strip_prefix(root_indent))
            .filter(|i| !i.is_empty())
            .unwrap_or("  ")
            .to_string()
    }

    /// Inserts `members` (decoded key, JSON value text) at the end of `object`.
    ///
    /// Value texts may span several lines separated by `\n`; their continuation lines are
    /// indented relative to the inserted key. Keeps the object's trailing-comma style and the
    /// separator (`": "`) used by the last existing member.
    pub fn insert_members(&mut self, object: &Value, members: &[(String, String)]) {
        let Some(existing) = object.members() else {
            return;
        };
        if members.is_empty() {
            return;
        }
        let text = self.doc.text();
        let bytes = text.as_bytes();
        let nl = self.newline();
        let open = object.span.start;
        let close = object.span.end - 1;
        let mut p = close;
        while p > open + 1 && is_space(bytes[p - 1]) {
            p -= 1;
        }
        let single_line = !text[open..close].contains('\n');
        let sep = existing
            .last()
            .map(|m| &text[m.key_span.end..m.value.span.start])
            .filter(|s| s.trim() == ":" && !s.contains('\n'))
            .unwrap_or(": ");
        let render = |indent: &str| -> Vec<String> {
            members
                .iter()
                .map(|(k, v)| {
                    let v = v.replace('\n', &format!("{nl}{indent}"));
                    format!("{}{sep}{v}", json_string(k))
                })
                .collect()
        };
        let unit = self.indent_unit();
        match existing.last() {
            None if single_line => {
                let brace = self.line_indent(open);
                let inner = format!("{brace}{unit}");
                let body = render(&inner).join(&format!(",{nl}{inner}"));
                self.splice(p, close, format!("{nl}{inner}{body}{nl}{brace}"));
            }
            None => {
                let inner = format!("{}{unit}", self.line_indent(close));
                let body = render(&inner).join(&format!(",{nl}{inner}"));
                self.splice(p, p, format!("{nl}{inner}{body}"));
            }
            Some(last) => {
                let mut q = last.value.span.end;
                loop {
                    // skip whitespace and comments (already validated by the parser)
                    while q < close && is_space(bytes[q]) {
                        q += 1;
                    }
                    if text[q..].starts_with("//") {
                        q = text[q..].find('\n').map_or(close, |i| q + i);
                    } else if text[q..].starts_with("/*") {
                        q += text[q + 2..].find("*/").expect("parsed") + 4;
                    } else {
                        break;
                    }
                }
                let trailing_comma = bytes[q] == b',';
                if single_line {
                    let body = render("").join(", ");
                    if trailing_comma {
                        self.splice(q + 1, q + 1, format!(" {body},"));
                    } else {
                        self.splice(
                            last.value.span.end,
                            last.value.span.end,
                            format!(", {body}"),
                        );
                    }
                } else {
                    let indent = self
                        .key_indent(last)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{}{unit}", self.line_indent(close)));
                    let body = render(&indent).join(&format!(",{nl}{indent}"));
                    if trailing_comma {
                        self.splice(p, p, format!("{nl}{indent}{body},"));
                    } else {
                        self.splice(last.value.span.end, last.value.span.end, ",".into());
                        self.splice(p, p, format!("{nl}{indent}{body}"));
                    }
                }
            }
        }
    }

    /// Applies the edits. `None` when nothing changes.
    ///
    /// # Panics
    /// If two recorded edits overlap (a bug in the caller: each span is edited once).
    pub fn finish(mut self) -> Option<String> {
        if self.edits.is_empty() {
            return None;
        }
        // stable: edits at the same position keep their recording order
        self.edits.sort_by_key(|e| (e.start, e.end));
        let text = self.doc.text();
        let mut out = String::with_capacity(text.len() + 64);
        let mut at = 0;
        for e in &self.edits {
            assert!(e.start >= at, "overlapping edits");
            out.push_str(&text[at..e.start]);
            out.push_str(&e.text);
            at = e.end;
        }
        out.push_str(&text[at..]);
        (out != text).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn doc(text: &str) -> JsonDoc {
        JsonDoc::parse(Path::new("t.json"), text).unwrap()
    }

    fn insert(text: &str, path: &[&str], k: &str, v: &str) -> String {
        let d = doc(text);
        let mut e = Editor::new(&d);
        e.insert_members(d.get(path).unwrap(), &[(k.to_string(), v.to_string())]);
        let out = e.finish().unwrap();
        JsonDoc::parse(Path::new("out.json"), &out).expect("output must parse");
        out
    }

    #[test]
    fn insert_into_empty_objects() {
        assert_eq!(insert("{}", &[], "a", "1"), "{\n  \"a\": 1\n}");
        assert_eq!(
            insert("{\n    \"x\": { }\n}", &["x"], "a", "1"),
            "{\n    \"x\": {\n        \"a\": 1\n    }\n}"
        );
        assert_eq!(
            insert(
                "{\n  \"x\": {\n    // nothing yet\n  }\n}",
                &["x"],
                "a",
                "1"
            ),
            "{\n  \"x\": {\n    // nothing yet\n    \"a\": 1\n  }\n}"
        );
    }

    #[test]
    fn insert_after_trailing_comment_and_comma() {
        assert_eq!(
            insert("{\n  \"a\": 1 // one\n}", &[], "b", "2"),
            "{\n  \"a\": 1, // one\n  \"b\": 2\n}"
        );
        assert_eq!(
            insert("{\n  \"a\": 1, /* c */\n}", &[], "b", "2"),
            "{\n  \"a\": 1, /* c */\n  \"b\": 2,\n}"
        );
        assert_eq!(
            insert("{\n\t\"a\": 1\n\t/* end */\n}", &[], "b", "2"),
            "{\n\t\"a\": 1,\n\t/* end */\n\t\"b\": 2\n}"
        );
    }

    #[test]
    fn insert_single_line_and_multi_line_values() {
        assert_eq!(insert("{\"a\": 1}", &[], "b", "2"), "{\"a\": 1, \"b\": 2}");
        assert_eq!(insert("{\"a\":1,}", &[], "b", "2"), "{\"a\":1, \"b\":2,}");
        assert_eq!(
            insert("{\r\n  \"a\": 1\r\n}", &[], "o", "{\n  \"k\": true\n}"),
            "{\r\n  \"a\": 1,\r\n  \"o\": {\r\n    \"k\": true\r\n  }\r\n}"
        );
    }

    /// Found by the appsettings_json fuzz target: a U+FEFF opening the line of the closing
    /// brace, inside a block comment, was taken for indentation and copied in front of the
    /// inserted keys, outside the comment, where it is not JSON.
    #[test]
    fn a_bom_inside_a_comment_is_not_indentation() {
        assert_eq!(
            insert("{ \"a\": {} /*\n \u{FEFF}x */}\n", &[], "b", "2"),
            "{ \"a\": {}, /*\n \u{FEFF}x */\n   \"b\": 2}\n"
        );
        assert_eq!(
            insert("{\"x\": /*\n\u{FEFF} */ {}}", &["x"], "a", "1"),
            "{\"x\": /*\n\u{FEFF} */ {\n  \"a\": 1\n}}"
        );
        // The document's own BOM is still no indentation.
        assert_eq!(
            insert("\u{FEFF}{\n\t\"a\": 1\n}", &[], "b", "2"),
            "\u{FEFF}{\n\t\"a\": 1,\n\t\"b\": 2\n}"
        );
    }

    #[test]
    fn rename_and_replace_keep_everything_else() {
        let text = "\u{FEFF}{ /*a*/ \"k\" /*b*/ : /*c*/ 1 /*d*/ }";
        let d = doc(text);
        let mut e = Editor::new(&d);
        let m = d.root().get_member("k").unwrap();
        e.rename_key(m, "K\"2");
        e.replace_value(&m.value, "\"v\"".into());
        assert_eq!(
            e.finish().unwrap(),
            "\u{FEFF}{ /*a*/ \"K\\\"2\" /*b*/ : /*c*/ \"v\" /*d*/ }"
        );
        let mut e = Editor::new(&d);
        e.rename_key(m, "k");
        assert_eq!(e.finish(), None, "identical text is no change");
    }
}
