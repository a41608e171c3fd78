//! Lossless parser for JSON with comments (the dialect .NET accepts in appsettings files).
//!
//! Accepted beyond strict JSON: `//` line comments, `/* */` block comments, trailing commas in
//! objects and arrays, and a leading UTF-8 byte order mark. The parser never rewrites anything:
//! it builds a tree ([`Value`], [`Member`]) in which every value and every object key carries its
//! byte [`Span`] in the source text, and object members stay in source order (duplicates
//! included). Edits are made by splicing text at those spans (see [`super::edit::Editor`]), so
//! everything untouched survives byte for byte.
//!
//! Semantic look-ups ([`Value::get`], [`JsonDoc::get`]) follow .NET configuration rules: key
//! comparison is ASCII case-insensitive and, among duplicate keys, the later one wins.

use std::path::{Path, PathBuf};

/// Maximum nesting depth of objects/arrays; deeper input is rejected with a [`JsonError`].
pub const MAX_DEPTH: usize = 256;

/// A malformed document. Displays as `FILE:LINE:COLUMN: message` (1-based; the column counts
/// characters, not bytes, and does not count a byte order mark).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct JsonError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Byte range `start..end` in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// What a value is. Numbers keep their source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<Member>),
}

/// A value with its span (for strings the span includes the quotes, for objects and arrays the
/// brackets).
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub span: Span,
    pub kind: Kind,
}

/// One `"key": value` member of an object. `key` is decoded; `key_span` includes the quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_span: Span,
    pub value: Value,
}

impl Value {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members in source order (duplicates included), if this is an object.
    pub fn members(&self) -> Option<&[Member]> {
        match &self.kind {
            Kind::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The items, if this is an array.
    #[cfg(test)]
    pub fn items(&self) -> Option<&[Value]> {
        match &self.kind {
            Kind::Array(v) => Some(v),
            _ => None,
        }
    }

    /// The effective member named `key` (ASCII case-insensitive, last duplicate wins).
    pub fn get_member(&self, key: &str) -> Option<&Member> {
        self.members()?
            .iter()
            .rev()
            .find(|m| m.key.eq_ignore_ascii_case(key))
    }

    /// The effective value of member `key` (ASCII case-insensitive, last duplicate wins).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_member(key).map(|m| &m.value)
    }
}

/// A parsed document: file name, full source text (BOM included) and tree.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonDoc {
    file: PathBuf,
    text: String,
    root: Value,
}

impl JsonDoc {
    /// Parses `text`; `file` is only used in error messages and reports.
    pub fn parse(file: &Path, text: &str) -> Result<JsonDoc, JsonError> {
        let mut p = Parser {
            file,
            text,
            bytes: text.as_bytes(),
            pos: 0,
            bom: 0,
        };
        if text.starts_with('\u{FEFF}') {
            p.bom = '\u{FEFF}'.len_utf8();
            p.pos = p.bom;
        }
        p.skip_trivia()?;
        let root = p.parse_value(0)?;
        p.skip_trivia()?;
        if p.pos < p.bytes.len() {
            return Err(p.err(p.pos, "unexpected content after the end of the document"));
        }
        Ok(JsonDoc {
            file: file.to_path_buf(),
            text: text.to_string(),
            root,
        })
    }

    /// The file name given to [`JsonDoc::parse`].
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The full source text, byte order mark included.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The root value.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The source text of a span.
    pub fn slice(&self, span: Span) -> &str {
        &self.text[span.start..span.end]
    }

    /// Follows `path` through objects (ASCII case-insensitive, last duplicate wins).
    /// An empty path returns the root.
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        path.iter().try_fold(&self.root, |v, k| v.get(k))
    }
}

fn line_col(text: &str, bom: usize, pos: usize) -> (usize, usize) {
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(bom.min(pos), |i| i + 1);
    (line, text[line_start..pos].chars().count() + 1)
}

struct Parser<'a> {
    file: &'a Path,
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    bom: usize,
}

impl Parser<'_> {
    fn err(&self, pos: usize, message: impl Into<String>) -> JsonError {
        let (line, column) = line_col(self.text, self.bom, pos);
        JsonError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Describes what is at `self.pos`, for error messages.
    fn found(&self) -> String {
        match self.text[self.pos..].chars().next() {
            None => "end of input".to_string(),
            Some(c) => format!("{c:?}"),
        }
    }

    fn skip_trivia(&mut self) -> Result<(), JsonError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                Some(b'/') => match self.bytes.get(self.pos + 1) {
                    Some(b'/') => {
                        self.pos = self.text[self.pos..]
                            .find('\n')
                            .map_or(self.bytes.len(), |i| self.pos + i);
                    }
                    Some(b'*') => match self.text[self.pos + 2..].find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => return Err(self.err(self.pos, "unterminated block comment")),
                    },
                    _ => return Err(self.err(self.pos, "unexpected character '/'")),
                },
                _ => return Ok(()),
            }
        }
    }

    /// Parses a value at `self.pos` (trivia already skipped). `depth` = enclosing containers.
    fn parse_value(&mut self, depth: usize) -> Result<Value, JsonError> {
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'{') => return self.parse_object(depth + 1),
            Some(b'[') => return self.parse_array(depth + 1),
            Some(b'"') => Kind::String(self.parse_string()?),
            Some(b'-' | b'0'..=b'9') => Kind::Number(self.parse_number()?),
            Some(b't') if self.text[start..].starts_with("true") => {
                self.pos += 4;
                Kind::Bool(true)
            }
            Some(b'f') if self.text[start..].starts_with("false") => {
                self.pos += 5;
                Kind::Bool(false)
            }
            Some(b'n') if self.text[start..].starts_with("null") => {
                self.pos += 4;
                Kind::Null
            }
            _ => return Err(self.err(start, format!("expected a value, found {}", self.found()))),
        };
        Ok(Value {
            span: Span {
                start,
                end: self.pos,
            },
            kind,
        })
    }

    fn check_depth(&self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            Err(self.err(
                self.pos,
                format!("nesting is deeper than {MAX_DEPTH} levels"),
            ))
        } else {
            Ok(())
        }
    }

    fn parse_object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.check_depth(depth)?;
        let start = self.pos;
        self.pos += 1;
        let mut members = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek() {
                Some(b'}') => break,
                Some(b'"') => {}
                _ => {
                    return Err(self.err(
                        self.pos,
                        format!("expected a string key or '}}', found {}", self.found()),
                    ))
                }
            }
            let key_start = self.pos;
            let key = self.parse_string()?;
            let key_span = Span {
                start: key_start,
                end: self.pos,
            };
            self.skip_trivia()?;
            if self.peek() != Some(b':') {
                return Err(self.err(
                    self.pos,
                    format!("expected ':' after object key, found {}", self.found()),
                ));
            }
            self.pos += 1;
            self.skip_trivia()?;
            let value = self.parse_value(depth)?;
            members.push(Member {
                key,
                key_span,
                value,
            });
            self.skip_trivia()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                _ => {
                    return Err(self.err(
                        self.pos,
                        format!("expected ',' or '}}' in object, found {}", self.found()),
                    ))
                }
            }
        }
        self.pos += 1;
        Ok(Value {
            span: Span {
                start,
                end: self.pos,
            },
            kind: Kind::Object(members),
        })
    }

    fn parse_array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.check_depth(depth)?;
        let start = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.peek() == Some(b']') {
                break;
            }
            items.push(self.parse_value(depth)?);
            self.skip_trivia()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                _ => {
                    return Err(self.err(
                        self.pos,
                        format!("expected ',' or ']' in array, found {}", self.found()),
                    ))
                }
            }
        }
        self.pos += 1;
        Ok(Value {
            span: Span {
                start,
                end: self.pos,
            },
            kind: Kind::Array(items),
        })
    }

    fn parse_hex4(&self, at: usize) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(at..at + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        match digits {
            Some(d) => Ok(u32::from_str_radix(d, 16).expect("checked hex digits")),
            None => Err(self.err(at - 2, "invalid \\u escape: expected 4 hex digits")),
        }
    }

    /// Parses a string starting at the opening quote; returns the decoded text.
    fn parse_string(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.err(start, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc = self.pos;
                    let c = match self.bytes.get(esc + 1) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.parse_hex4(esc + 2)?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                let low = if self.text[esc + 6..].starts_with("\\u") {
                                    Some(self.parse_hex4(esc + 8)?)
                                } else {
                                    None
                                };
                                match low {
                                    Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                        self.pos += 6;
                                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                    }
                                    _ => return Err(self.err(
                                        esc,
                                        "invalid \\u escape: high surrogate without low surrogate",
                                    )),
                                }
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(
                                    self.err(esc, "invalid \\u escape: unpaired low surrogate")
                                );
                            } else {
                                hi
                            };
                            self.pos += 4;
                            char::from_u32(code).expect("valid scalar value")
                        }
                        _ => {
                            return Err(self.err(esc, "invalid escape sequence in string"));
                        }
                    };
                    out.push(c);
                    self.pos += 2;
                }
                Some(_) => {
                    return Err(self.err(self.pos, "control character in string (escape it)"))
                }
            }
        }
    }

    fn parse_number(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos > s
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else if !digits(self) {
            return Err(self.err(start, "invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.err(start, "invalid number: digits expected after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.err(start, "invalid number: digits expected in exponent"));
            }
        }
        Ok(self.text[start..self.pos].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<JsonDoc, JsonError> {
        JsonDoc::parse(Path::new("appsettings.json"), text)
    }

    fn err(text: &str) -> (usize, usize, String) {
        let e = parse(text).unwrap_err();
        (e.line, e.column, e.message)
    }

    #[test]
    fn parses_comments_trailing_commas_and_keeps_order() {
        let text = "// head\n{\n  /* b */ \"B\": 1, // one\n  \"A\": [true, false, null,],\n  \"C\": {\"x\": -1.5e+3,},\n}\n";
        let doc = parse(text).unwrap();
        let keys: Vec<&str> = doc
            .root()
            .members()
            .unwrap()
            .iter()
            .map(|m| m.key.as_str())
            .collect();
        assert_eq!(keys, ["B", "A", "C"]);
        let b = doc.root().get_member("b").unwrap();
        assert_eq!(doc.slice(b.key_span), "\"B\"");
        assert_eq!(doc.slice(b.value.span), "1");
        assert_eq!(doc.get(&["A"]).unwrap().items().unwrap().len(), 3);
        let x = doc.get(&["C", "x"]).unwrap();
        assert_eq!(x.kind, Kind::Number("-1.5e+3".into()));
        assert_eq!(
            doc.slice(doc.get(&["C"]).unwrap().span),
            "{\"x\": -1.5e+3,}"
        );
    }

    #[test]
    fn strings_escapes_and_surrogates() {
        let doc = parse(r#"{"s": "a\"b\\c\/d\n\t\u00e9\ud83d\ude00 é"}"#).unwrap();
        assert_eq!(
            doc.get(&["s"]).unwrap().as_str(),
            Some("a\"b\\c/d\n\té😀 é")
        );
        assert_eq!(
            err(r#"{"s": "\ud83d x"}"#),
            (
                1,
                8,
                "invalid \\u escape: high surrogate without low surrogate".into()
            )
        );
        assert_eq!(err(r#"{"s": "\q"}"#).1, 8);
        assert_eq!(err("{\"s\": \"a\nb\"}").0, 1);
        assert_eq!(err("{\"s\": \"abc"), (1, 7, "unterminated string".into()));
    }

    #[test]
    fn duplicate_keys_later_wins_but_both_kept() {
        let doc = parse(r#"{"a": 1, "A": 2}"#).unwrap();
        assert_eq!(doc.root().members().unwrap().len(), 2);
        assert_eq!(doc.get(&["a"]).unwrap().kind, Kind::Number("2".into()));
    }

    #[test]
    fn bom_is_kept_and_not_counted_in_columns() {
        let text = "\u{FEFF}{\"a\": x}";
        assert_eq!(err(text), (1, 7, "expected a value, found 'x'".into()));
        let doc = parse("\u{FEFF}{\"a\": 1}").unwrap();
        assert!(doc.text().starts_with('\u{FEFF}'));
        assert_eq!(doc.slice(doc.root().span), "{\"a\": 1}");
    }

    #[test]
    fn missing_colon_reports_line_and_column() {
        let text = "{\n  \"A\": 1,\n  \"Name\"   \"x\"\n}";
        let e = parse(text).unwrap_err();
        assert_eq!((e.line, e.column), (3, 12));
        assert_eq!(
            e.to_string(),
            "appsettings.json:3:12: expected ':' after object key, found '\"'"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "é" is 2 bytes but one column.
        assert_eq!(err("{\"é\": tru}").1, 7);
    }

    #[test]
    fn crlf_lines_are_counted() {
        assert_eq!(err("{\r\n\"a\": 1,\r\n\"b\" 2}").0, 3);
        assert_eq!(err("{\r\n\"a\": 1,\r\n\"b\" 2}").1, 5);
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(
            err(""),
            (1, 1, "expected a value, found end of input".into())
        );
        assert_eq!(err("{,}").1, 2);
        assert_eq!(err("[1,,2]").1, 4);
        assert_eq!(err("{\"a\": 1 \"b\": 2}").1, 9);
        assert_eq!(
            err("{\"a\": 1} x"),
            (
                1,
                10,
                "unexpected content after the end of the document".into()
            )
        );
        assert_eq!(
            err("{\n/* open"),
            (2, 1, "unterminated block comment".into())
        );
        assert_eq!(err("{\"a\": 01}").1, 8);
        assert_eq!(err("{\"a\": -}").1, 7);
        assert_eq!(err("{\"a\": 1.}").1, 7);
        assert_eq!(err("{\"a\": 1 / 2}").1, 9);
        assert_eq!(
            err("{\"a\": 1"),
            (
                1,
                8,
                "expected ',' or '}' in object, found end of input".into()
            )
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(100_000);
        let (line, column, message) = err(&deep);
        assert_eq!((line, column), (1, MAX_DEPTH + 1));
        assert_eq!(message, "nesting is deeper than 256 levels");
        let objs = "{\"a\":".repeat(MAX_DEPTH + 1);
        assert_eq!(err(&objs).2, "nesting is deeper than 256 levels");
    }
}
