//! Property tests (proptest) of the two byte-preserving editors (issue 14 point 5):
//! - the XML configuration rewrite leaves a file that no rule touches byte-identical, and a
//!   file one rule touches changes at that place only;
//! - the JSON-with-comments editor round-trips any document byte for byte: parsing keeps the
//!   text, edits that write back what is there change nothing, and one real edit changes only
//!   its span.
//!
//! Case counts are kept moderate (see `CASES`) so the suite stays fast.

use std::path::Path;

use proptest::prelude::*;
use usercube_upgrade::testing::runbook::appsettings::edit::Editor;
use usercube_upgrade::testing::runbook::appsettings::jsonc::{JsonDoc, Kind, Value};
use usercube_upgrade::testing::runbook::configuration::{migrate_file, IdMap, Rule};

const CASES: u32 = 256;

// ---------------------------------------------------------------------------------------
// XML

/// Element names no rule matches (prefixed ones included: rules match local names).
fn element_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "ConfigurationFile",
        "Entity",
        "Property",
        "Connector",
        "Connection",
        "Step",
        "TaskEntityType",
        "ui:Display",
        "a",
        "Targeted",
    ])
    .prop_map(str::to_string)
}

/// Attribute names no rule matches on the elements above (`Type`, `Level`, `Order`,
/// `FilesAreNotEncrypted` and the connection references stay out).
fn attribute_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Identifier",
        "DisplayName_L1",
        "Name",
        "Value",
        "Kind",
        "xmlns:ui",
        "Permission",
        "IsNotEncrypted",
    ])
    .prop_map(str::to_string)
}

/// An attribute value as written in the file: characters, entities and character references,
/// none of which spells an identifier of the map or a workflow notification path.
fn attribute_text(quote: char) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[A-Za-z0-9 ./:éü\\-]{1,8}",
        Just("&amp;".to_string()),
        Just("&lt;".to_string()),
        Just("&#65;".to_string()),
        Just("&#x20AC;".to_string()),
        Just(if quote == '"' { "'" } else { "\"" }.to_string()),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|p| p.concat())
}

fn attribute() -> impl Strategy<Value = String> {
    (
        attribute_name(),
        prop::sample::select(vec![" ", "  ", "\n\t", "\r\n    "]),
        prop::sample::select(vec!["=", " = ", "=\n"]),
        prop::bool::ANY,
    )
        .prop_flat_map(|(name, ws, eq, double)| {
            let quote = if double { '"' } else { '\'' };
            attribute_text(quote)
                .prop_map(move |value| format!("{ws}{name}{eq}{quote}{value}{quote}"))
        })
}

/// Unique attribute names on one tag (duplicates are an error, tested elsewhere).
fn attributes() -> impl Strategy<Value = String> {
    prop::collection::vec(attribute(), 0..4).prop_map(|attrs| {
        let mut seen = Vec::new();
        attrs
            .into_iter()
            .filter(|a| {
                let name = a
                    .trim_start()
                    .split(['=', ' ', '\n'])
                    .next()
                    .unwrap()
                    .to_string();
                let new = !seen.contains(&name);
                seen.push(name);
                new
            })
            .collect()
    })
}

/// Text between tags: characters, comments, CDATA, entities.
fn filler() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[ \t\r\nA-Za-z0-9]{0,6}",
        "<!-- [A-Za-z <>&\"']{0,10} -->",
        "<!\\[CDATA\\[[A-Za-z <>&]{0,8}\\]\\]>",
        Just("&amp;&gt;".to_string()),
        Just("<?pi data?>".to_string()),
    ];
    prop::collection::vec(piece, 0..3).prop_map(|p| p.concat())
}

fn element() -> impl Strategy<Value = String> {
    let leaf = (element_name(), attributes(), prop::bool::ANY, filler()).prop_map(
        |(name, attrs, empty, text)| {
            if empty {
                format!("<{name}{attrs}/>")
            } else {
                format!("<{name}{attrs}>{text}</{name}>")
            }
        },
    );
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            element_name(),
            attributes(),
            prop::collection::vec((filler(), inner), 0..4),
            filler(),
        )
            .prop_map(|(name, attrs, children, tail)| {
                let body: String = children.into_iter().map(|(f, c)| f + &c).collect();
                format!("<{name}{attrs}>{body}{tail}</{name}>")
            })
    })
}

/// What XML allows around the root element: whitespace, comments, processing instructions
/// (text, CDATA and entities there are refused).
fn outer_filler() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[ \t\r\n]{0,6}",
        "<!-- [A-Za-z <>&\"']{0,10} -->",
        Just("<?pi data?>".to_string()),
    ];
    prop::collection::vec(piece, 0..3).prop_map(|p| p.concat())
}

fn xml_document() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "\u{FEFF}"]),
        prop::sample::select(vec![
            "",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n",
            "<?xml version='1.0'?>\n",
        ]),
        outer_filler(),
        element(),
        outer_filler(),
    )
        .prop_map(|(bom, decl, before, root, after)| {
            format!("{bom}{decl}{}{root}{}", before.trim_start(), after)
        })
}

fn ids() -> IdMap {
    let mut ids = IdMap::new();
    ids.insert("AD_Export", "ADExport");
    ids.insert("Sql_1", "Sql1");
    ids
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// No rule touches the file: no rewrite, no change reported.
    #[test]
    fn xml_untouched_file_is_not_rewritten(doc in xml_document()) {
        let m = migrate_file(Path::new("Conf/x.xml"), doc.as_bytes(), &ids())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
        prop_assert!(m.output.is_none(), "rewritten:\n{doc}");
        prop_assert!(m.changes.is_empty());
    }

    /// One `Type="Option"` planted in an untouched file: exactly that value changes.
    #[test]
    fn xml_one_rule_changes_one_place(doc in xml_document(), pick in any::<prop::sample::Index>()) {
        // The end of each start or empty-element tag's name, where an attribute can go.
        let tag_ends: Vec<usize> = doc
            .match_indices('<')
            .filter_map(|(i, _)| {
                let rest = &doc[i + 1..];
                let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '_'))?;
                (name_len > 0 && rest.as_bytes()[0].is_ascii_alphabetic()).then_some(i + 1 + name_len)
            })
            .filter(|&end| !inside_markup(&doc, end))
            .collect();
        prop_assume!(!tag_ends.is_empty());
        let at = *pick.get(&tag_ends);
        let planted = format!("{} Type=\"Option\"{}", &doc[..at], &doc[at..]);
        let m = migrate_file(Path::new("Conf/x.xml"), planted.as_bytes(), &ids())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{planted}")))?;
        let expected = format!("{} Type=\"ForeignKey\"{}", &doc[..at], &doc[at..]);
        prop_assert_eq!(m.output.as_deref(), Some(expected.as_bytes()));
        prop_assert_eq!(m.changes.len(), 1);
        prop_assert_eq!(m.changes[0].rule, Rule::TypeOptionToForeignKey);
    }
}

/// True when `at` lies in a comment, CDATA section or processing instruction of `doc` (a `<`
/// there is text, not a tag).
fn inside_markup(doc: &str, at: usize) -> bool {
    for (open, close) in [("<!--", "-->"), ("<![CDATA[", "]]>"), ("<?", "?>")] {
        let mut from = 0;
        while let Some(s) = doc[from..].find(open) {
            let start = from + s;
            let end = doc[start..]
                .find(close)
                .map_or(doc.len(), |e| start + e + close.len());
            if start < at && at < end {
                return true;
            }
            from = end.max(start + 1);
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// JSON with comments

/// Whitespace and comments between tokens.
fn trivia() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[ \t]{0,3}",
        Just("\r\n".to_string()),
        Just("\n".to_string()),
        "// [A-Za-z {}\\[\\],:\"/*]{0,10}\n",
        "/\\* [A-Za-z {}\\[\\],:\"/\n]{0,10} \\*/",
    ];
    prop::collection::vec(piece, 0..3).prop_map(|p| p.concat())
}

/// A JSON string as written: plain characters, escapes, non-ASCII.
fn json_string_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[A-Za-z0-9 _.:/${}]{1,6}",
        Just("\\\"".to_string()),
        Just("\\\\".to_string()),
        Just("\\n".to_string()),
        Just("\\u00e9".to_string()),
        Just("\\ud83d\\ude00".to_string()),
        Just("é€😀".to_string()),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|p| format!("\"{}\"", p.concat()))
}

fn json_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        json_string_text(),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
        "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
    ]
}

fn json_value() -> impl Strategy<Value = String> {
    json_scalar().prop_recursive(4, 32, 5, |inner| {
        let item = (trivia(), inner.clone(), trivia()).prop_map(|(a, v, b)| a + &v + &b);
        let member = (
            trivia(),
            json_string_text(),
            trivia(),
            trivia(),
            inner,
            trivia(),
        )
            .prop_map(|(a, k, b, c, v, d)| format!("{a}{k}{b}:{c}{v}{d}"));
        prop_oneof![
            (prop::collection::vec(item, 0..4), prop::bool::ANY, trivia())
                .prop_map(|(items, trailing, t)| list('[', ']', items, trailing, t)),
            (
                prop::collection::vec(member, 0..4),
                prop::bool::ANY,
                trivia()
            )
                .prop_map(|(members, trailing, t)| list('{', '}', members, trailing, t)),
        ]
    })
}

/// `open items,... close`, with a trailing comma when asked (and there is an item).
fn list(open: char, close: char, items: Vec<String>, trailing: bool, t: String) -> String {
    let mut s = open.to_string();
    s.push_str(&items.join(","));
    if trailing && !items.is_empty() {
        s.push(',');
    }
    s.push_str(&t);
    s.push(close);
    s
}

fn json_document() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "\u{FEFF}"]),
        trivia(),
        json_value(),
        trivia(),
    )
        .prop_map(|(bom, a, v, b)| format!("{bom}{a}{v}{b}"))
}

/// Every scalar value of the tree, in document order.
fn leaves<'v>(v: &'v Value, out: &mut Vec<&'v Value>) {
    match &v.kind {
        Kind::Array(items) => items.iter().for_each(|i| leaves(i, out)),
        Kind::Object(members) => members.iter().for_each(|m| leaves(&m.value, out)),
        _ => out.push(v),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Parsing keeps the text; writing every scalar and every key back as it is written
    /// changes nothing.
    #[test]
    fn json_identity_edits_round_trip(text in json_document()) {
        let doc = JsonDoc::parse(Path::new("appsettings.json"), &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(doc.text(), text.as_str());
        let mut values = Vec::new();
        leaves(doc.root(), &mut values);
        let mut ed = Editor::new(&doc);
        for v in &values {
            ed.replace_value(v, doc.slice(v.span).to_string());
        }
        prop_assert_eq!(ed.finish(), None);
    }

    /// One value replaced: the output is the input with that span spliced, and it parses to a
    /// tree where only that value differs.
    #[test]
    fn json_one_edit_changes_its_span_only(text in json_document(), pick in any::<prop::sample::Index>()) {
        let doc = JsonDoc::parse(Path::new("appsettings.json"), &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let mut values = Vec::new();
        leaves(doc.root(), &mut values);
        prop_assume!(!values.is_empty());
        let v = *pick.get(&values);
        let new = "\"C:/Usercube/Work\"";
        prop_assume!(doc.slice(v.span) != new);
        let mut ed = Editor::new(&doc);
        ed.replace_value(v, new.to_string());
        let out = ed.finish().expect("a real edit rewrites");
        let expected = format!("{}{new}{}", &text[..v.span.start], &text[v.span.end..]);
        prop_assert_eq!(&out, &expected);
        let again = JsonDoc::parse(Path::new("appsettings.json"), &out)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{out}")))?;
        let mut after = Vec::new();
        leaves(again.root(), &mut after);
        prop_assert_eq!(after.len(), values.len());
        for (old, now) in values.iter().zip(&after) {
            if std::ptr::eq(*old, v) {
                prop_assert_eq!(now.as_str(), Some("C:/Usercube/Work"));
            } else {
                prop_assert_eq!(&old.kind, &now.kind);
            }
        }
    }

    /// Any text at all: a document (kept byte for byte) or a typed error naming the file.
    #[test]
    fn json_any_text_parses_or_names_the_file(text in "\\PC{0,64}|[\\[\\]{}\",:/*\\\\ \r\n0-9a-z\u{FEFF}]{0,64}") {
        match JsonDoc::parse(Path::new("Runtime/appsettings.json"), &text) {
            Ok(doc) => prop_assert_eq!(doc.text(), text.as_str()),
            Err(e) => prop_assert!(e.to_string().starts_with("Runtime/appsettings.json:"), "{}", e),
        }
    }
}
