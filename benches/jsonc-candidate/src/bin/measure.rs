//! Issue 13, second measurement: jsonc-parser 0.34 against what the hand-written parser and
//! editor do beyond rules.rs's goldens (`cargo run --release --bin measure`).
//!
//! A. the error cases asserted in jsonc.rs's tests, and dialect probes: today's parser (the
//!    crate's own src/runbook/appsettings/jsonc.rs, compiled in here) against jsonc-parser with
//!    its strictest options (comments and trailing commas allowed, every JSON5 extension off);
//! B. accept/refuse agreement and error places on the mutation set of appsettings/mod.rs's test;
//! C. the insert goldens of edit.rs and concat.rs, done with the CST's `append`;
//! D. the sample installation's appsettings.json (src/sample.rs) given `EncryptFile` by the CST.

/// The crate's own parser and editor, compiled in unchanged.
#[allow(dead_code)]
#[path = "../../../../src/runbook/appsettings"]
mod appsettings {
    pub mod edit;
    pub mod jsonc;
}
use appsettings::jsonc as today;

use std::path::Path;

use jsonc_parser::cst::{CstInputValue, CstRootNode};
use jsonc_parser::ParseOptions;

type Outcome = Result<(), (usize, usize, String)>;

fn strict() -> ParseOptions {
    ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// jsonc-parser, the BOM stripped first (it does not parse one; columns do not count it).
fn theirs(t: &str) -> Outcome {
    let t = t.strip_prefix('\u{FEFF}').unwrap_or(t);
    match jsonc_parser::parse_to_ast(t, &Default::default(), &strict()) {
        Ok(_) => Ok(()),
        Err(e) => Err((e.line_display(), e.column_display(), e.kind().to_string())),
    }
}

fn ours(t: &str) -> Outcome {
    today::JsonDoc::parse(Path::new("f"), t)
        .map(|_| ())
        .map_err(|e| (e.line, e.column, e.message))
}

fn short(c: &str) -> String {
    if c.len() > 40 {
        format!("{:?}.. ({} bytes)", &c[..20], c.len())
    } else {
        format!("{c:?}")
    }
}

fn errors_and_dialect() {
    println!("== A. error cases of jsonc.rs's tests, then dialect probes");
    let deep = "[".repeat(100_000);
    let objs = "{\"a\":".repeat(257);
    let at_limit = format!("{}{}", "[".repeat(256), "]".repeat(256));
    let over_limit = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let cases: Vec<&str> = vec![
        // asserted in src/runbook/appsettings/jsonc.rs's tests
        "{\"s\": \"\\ud83d x\"}",
        "{\"s\": \"\\q\"}",
        "{\"s\": \"a\nb\"}",
        "{\"s\": \"abc",
        "\u{FEFF}{\"a\": x}",
        "{\n  \"A\": 1,\n  \"Name\"   \"x\"\n}",
        "{\"é\": tru}",
        "{\r\n\"a\": 1,\r\n\"b\" 2}",
        "",
        "{,}",
        "[1,,2]",
        "{\"a\": 1 \"b\": 2}",
        "{\"a\": 1} x",
        "{\n/* open",
        "{\"a\": 01}",
        "{\"a\": -}",
        "{\"a\": 1.}",
        "{\"a\": 1 / 2}",
        "{\"a\": 1",
        &deep,
        &objs,
        &at_limit,
        // probes
        &over_limit,
        "{\"a\": \"tab\there\"}",
        "{\"a\":1}\u{a0}",
        "{\"a\"\u{2028}: 1}",
        "{\"a\": 1} // c\r}",
        "{'a': 1}",
        "{a: 1}",
        "{\"a\": 0x1F}",
        "{\"a\": +1}",
        "{\"a\": .5}",
        "{\"a\": NaN}",
        "{\"a\": \"\\x41\"}",
        "{\"a\": \"\\udc00\"}",
        "[1 2]",
        "{\"a\": truex}",
        "{\"a\": 1e}",
    ];
    for c in &cases {
        let (a, b) = (ours(c), theirs(c));
        let mark = match (&a, &b) {
            (Ok(_), Ok(_)) => "same",
            (Err(x), Err(y)) if (x.0, x.1) == (y.0, y.1) => "same place",
            (Err(_), Err(_)) => "OTHER PLACE",
            _ => "ACCEPT/REFUSE DIFFERS",
        };
        println!(
            "{} [{mark}]\n    today:  {a:?}\n    theirs: {b:?}",
            short(c)
        );
    }
}

fn mutations() {
    println!("== B. the mutation set of appsettings/mod.rs's test");
    let base = "\u{FEFF}{ // c\r\n  \"InformationSystems\": { \"A_B\": { \"Path\": \"x/é.csv\", \"PageResult\": [1, 2.5e3, true, null,] /* b */ }, },\r\n  \"EncryptionCertificate\": { \"EncryptFile\": \"\\ud83d\\ude00\" }\r\n}\r\n";
    let mut variants = Vec::new();
    for (i, _) in base.char_indices() {
        let mut del = base.to_string();
        del.remove(i);
        variants.push(del);
        for c in ['{', '}', '"', ',', '/', '\\', ':', '[', 'x', '\n'] {
            let mut ins = base.to_string();
            ins.insert(i, c);
            variants.push(ins);
        }
    }
    let (mut agree, mut refused_both, mut same_place) = (0, 0, 0);
    let mut differ = Vec::new();
    for v in &variants {
        match (ours(v), theirs(v)) {
            (Ok(_), Ok(_)) => agree += 1,
            (Err(x), Err(y)) => {
                agree += 1;
                refused_both += 1;
                same_place += usize::from((x.0, x.1) == (y.0, y.1));
            }
            (a, b) => differ.push((v, a, b)),
        }
    }
    println!(
        "{} variants: {agree} accepted/refused alike, {} not; of the {refused_both} both refuse, {same_place} at the same line:column",
        variants.len(),
        differ.len()
    );
    for (v, a, b) in differ.iter().take(3) {
        println!("  e.g. {v:?}\n    today:  {a:?}\n    theirs: {b:?}");
    }
}

fn inserts() {
    println!("== C. insert goldens of edit.rs and concat.rs with CstObject::append");
    let ins = |text: &str, path: &[&str], k: &str, v: CstInputValue| -> String {
        let root = CstRootNode::parse(text, &strict()).unwrap();
        let mut o = root.object_value().unwrap();
        for p in path {
            o = o.get(p).unwrap().value().unwrap().as_object().unwrap();
        }
        o.append(k, v);
        root.to_string()
    };
    let n = |s: &str| CstInputValue::Number(s.into());
    let x_section = || {
        CstInputValue::Object(vec![(
            "X".into(),
            CstInputValue::Object(vec![(
                "k".into(),
                CstInputValue::Array(vec![n("1"), n("2")]),
            )]),
        )])
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("edit: empty object", ins("{}", &[], "a", n("1")), "{\n  \"a\": 1\n}"),
        ("edit: empty nested object", ins("{\n    \"x\": { }\n}", &["x"], "a", n("1")), "{\n    \"x\": {\n        \"a\": 1\n    }\n}"),
        ("edit: object holding a comment only", ins("{\n  \"x\": {\n    // nothing yet\n  }\n}", &["x"], "a", n("1")), "{\n  \"x\": {\n    // nothing yet\n    \"a\": 1\n  }\n}"),
        ("edit: after a line comment", ins("{\n  \"a\": 1 // one\n}", &[], "b", n("2")), "{\n  \"a\": 1, // one\n  \"b\": 2\n}"),
        ("edit: trailing comma and comment", ins("{\n  \"a\": 1, /* c */\n}", &[], "b", n("2")), "{\n  \"a\": 1, /* c */\n  \"b\": 2,\n}"),
        ("edit: comment line after the last member", ins("{\n\t\"a\": 1\n\t/* end */\n}", &[], "b", n("2")), "{\n\t\"a\": 1,\n\t/* end */\n\t\"b\": 2\n}"),
        ("edit: single-line object", ins("{\"a\": 1}", &[], "b", n("2")), "{\"a\": 1, \"b\": 2}"),
        ("edit: single-line, trailing comma, \":\" without space", ins("{\"a\":1,}", &[], "b", n("2")), "{\"a\":1, \"b\":2,}"),
        ("edit: CRLF, multi-line value", ins("{\r\n  \"a\": 1\r\n}", &[], "o", CstInputValue::Object(vec![("k".into(), CstInputValue::Bool(true))])), "{\r\n  \"a\": 1,\r\n  \"o\": {\r\n    \"k\": true\r\n  }\r\n}"),
        ("concat: another file's value as written", ins("{\n  \"Other\": 1\n}", &[], "InformationSystems", x_section()), "{\n  \"Other\": 1,\n  \"InformationSystems\": {\n    \"X\": {\"k\": [1,\n      2]}\n  }\n}"),
    ];
    for (name, got, want) in &cases {
        if got == want {
            println!("  {name}: SAME bytes");
        } else {
            println!("  {name}: DIFFERENT\n    want {want:?}\n    got  {got:?}");
        }
    }
}

fn sample() {
    let text = "{\n  // Usercube server settings (sample)\n  \"ApplicationUri\": \"http://localhost:5000\",\n  \"ConnectionString\": \"sqlite:usercube.db\",\n  \"EncryptionCertificate\": { \"File\": \"../Certs/agent.pfx\", \"Password\": \"secret\" }\n}\n";
    let doc = today::JsonDoc::parse(Path::new("appsettings.json"), text).unwrap();
    let mut ed = appsettings::edit::Editor::new(&doc);
    let section = doc.get(&["EncryptionCertificate"]).unwrap();
    ed.insert_members(section, &[("EncryptFile".into(), "true".into())]);
    println!(
        "== D. src/sample.rs's appsettings.json given EncryptFile, by the hand-written editor:\n{}",
        ed.finish().unwrap()
    );
    let root = CstRootNode::parse(text, &strict()).unwrap();
    let ec = root
        .object_value()
        .unwrap()
        .get("EncryptionCertificate")
        .unwrap();
    ec.value()
        .unwrap()
        .as_object()
        .unwrap()
        .append("EncryptFile", CstInputValue::Bool(true));
    println!("   the same file, by the CST:\n{root}");
    // look-ups: .NET configuration keys are ASCII case-insensitive, the later duplicate wins
    let root = CstRootNode::parse("{\"a\": 1, \"A\": 2}", &strict()).unwrap();
    let o = root.object_value().unwrap();
    println!(
        "CstObject::get on {{\"a\": 1, \"A\": 2}}: get(\"a\") = {:?} (today: 2), get(\"A\") found: {}",
        o.get("a").and_then(|p| p.value()).map(|v| v.to_string()),
        o.get("A").is_some()
    );
}

fn main() {
    errors_and_dialect();
    mutations();
    inserts();
    sample();
}
