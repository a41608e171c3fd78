//! Every input a fuzz target crashed on (FUZZING.md), checked in under
//! `fuzz/regressions/TARGET/`, replayed through the same checks as the target: each must now
//! give a typed error naming the file, or a result that keeps the target's properties.

use std::path::{Path, PathBuf};

use usercube_upgrade::testing::runbook::appsettings::{
    concatenate_agents, connection_string, find_manual_items, migrate_agent, migrate_server,
    JsonDoc, ServerSettings,
};
use usercube_upgrade::testing::runbook::configuration::{migrate_file, IdMap, XmlErrorKind};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression input in {}", dir.display());
    out
}

/// The xml_config target's checks.
fn xml_config_holds(data: &[u8]) -> Result<(), String> {
    let file = Path::new("Conf/Connectors.xml");
    let mut ids = IdMap::new();
    ids.insert("AD_Export", "ADExport");
    ids.insert("Sql_1", "Sql1");
    match migrate_file(file, data, &ids) {
        Ok(m) => match m.output {
            Some(out) => {
                let again = migrate_file(file, &out, &ids)
                    .map_err(|e| format!("the rewrite does not parse again: {e}"))?;
                match again.output {
                    None => Ok(()),
                    Some(_) => Err("the migration is not idempotent".into()),
                }
            }
            None if m.changes.is_empty() => Ok(()),
            None => Err("changes reported, nothing rewritten".into()),
        },
        Err(e) if e.to_string().contains("Connectors.xml") => Ok(()),
        Err(e) => Err(format!("error without the file name: {e}")),
    }
}

#[test]
fn xml_config_crashes_hold() {
    for (path, data) in inputs("xml_config") {
        if let Err(why) = xml_config_holds(&data) {
            panic!("{}: {why}", path.display());
        }
    }
}

/// `< FilesAreNotEncrypted="true"/>`: a tag without an element name was accepted, and
/// removing its attribute left `</>`, which does not parse.
#[test]
fn xml_tag_without_element_name_is_refused() {
    for text in [
        "< FilesAreNotEncrypted=\"true\"/>",
        "<Root>< Type=\"Option\"/></Root>",
        "< ></>",
    ] {
        let e =
            migrate_file(Path::new("Conf/a.xml"), text.as_bytes(), &IdMap::new()).expect_err(text);
        assert_eq!(e.kind, XmlErrorKind::Malformed, "{text}");
        let shown = e.to_string();
        assert!(shown.starts_with("Conf/a.xml:1:"), "{shown}");
        assert!(shown.contains("element name missing"), "{shown}");
    }
}

/// `text-before-root-nul-in-value`: text before the first element, NULs in an attribute
/// value, two root elements, one named `Dt="`; removing its `FilesAreNotEncrypted` attribute
/// left `<Dt="/>`, which does not parse. Not well-formed: refused, the characters first (the
/// whole file is checked for them before the walk), and each fault after them on its own.
#[test]
fn xml_not_well_formed_input_of_the_fuzzer_is_refused() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/xml_config/text-before-root-nul-in-value"),
    )
    .unwrap();
    let refused = |data: &[u8]| {
        let e = migrate_file(Path::new("Conf/Connectors.xml"), data, &IdMap::new()).unwrap_err();
        assert_eq!(e.kind, XmlErrorKind::Malformed);
        e.to_string()
    };
    assert_eq!(
        refused(&data),
        "Conf/Connectors.xml:2:37: character U+0000 is not allowed in XML"
    );
    let text = String::from_utf8(data).unwrap().replace('\0', "");
    assert_eq!(
        refused(text.as_bytes()),
        "Conf/Connectors.xml:1:1: text outside the root element"
    );
    let text = text.strip_prefix("\">").unwrap();
    assert_eq!(
        refused(text.as_bytes()),
        "Conf/Connectors.xml:3:4: element name Dt=\" is not an XML name"
    );
}

/// Each fault of that input on its own is refused, with the file, line and column.
#[test]
fn xml_well_formedness_faults_are_refused_one_by_one() {
    let cases = [
        ("x<Root/>", "1:1: text outside the root element"),
        ("<Root/>\nx", "2:1: text outside the root element"),
        ("<Root/><Root/>", "1:8: a second root element <Root>"),
        (
            "<Root/>\n<![CDATA[x]]>",
            "2:1: text outside the root element",
        ),
        (
            "<Root>\n  <C A=\"L\u{0}k\"/></Root>",
            "2:10: character U+0000 is not allowed in XML",
        ),
        (
            "<Root>\n  <Dt=\" x\"ns:FilesAreNotEncrypted=\"\"/></Root>",
            "2:4: element name Dt=\" is not an XML name",
        ),
        (
            "<Root>\n  <C 1st=\"x\"/></Root>",
            "2:6: attribute name 1st is not an XML name",
        ),
        (
            "<Root>\n  <C a;b:FilesAreNotEncrypted=\"\"/></Root>",
            "2:6: attribute name a;b:FilesAreNotEncrypted is not an XML name",
        ),
        (
            "<Root/>\n<?xml version=\"1.0\"?>",
            "2:1: an XML declaration is allowed only at the very start of the file",
        ),
        (
            "<Root/>\n<!DOCTYPE Root>",
            "2:1: a DOCTYPE is allowed only before the root element",
        ),
        ("<Root/>&amp;", "1:8: text outside the root element"),
        ("", "1:1: no root element"),
    ];
    for (text, want) in cases {
        let e =
            migrate_file(Path::new("Conf/a.xml"), text.as_bytes(), &IdMap::new()).expect_err(text);
        assert_eq!(e.kind, XmlErrorKind::Malformed, "{text:?}");
        assert_eq!(e.to_string(), format!("Conf/a.xml:{want}"), "{text:?}");
    }
    // What XML allows outside the root: whitespace, comments, processing instructions, a
    // declaration and a bare DOCTYPE; and names with letters beyond ASCII, '-', '.', ':'.
    let fine = "\u{feff}<?xml version=\"1.0\"?>\r\n<!DOCTYPE Root>\n<!-- c -->\n<?pi x?>\n<Root xmlns:a=\"u\" a:é.b-1=\"\t\"><Élément_1/></Root>\n<!-- end -->\n";
    migrate_file(Path::new("Conf/a.xml"), fine.as_bytes(), &IdMap::new()).expect(fine);
}

/// The appsettings_json target's checks.
fn appsettings_json_holds(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let file = Path::new("Runtime/appsettings.agent.json");
    let doc = match JsonDoc::parse(file, text) {
        Ok(doc) => doc,
        Err(e) if e.to_string().contains("appsettings.agent.json") => return Ok(()),
        Err(e) => return Err(format!("error without the file name: {e}")),
    };
    if doc.text() != text {
        return Err("the parsed text differs from the input".into());
    }
    let _ = connection_string(&doc);
    let _ = find_manual_items(&doc);
    let _ = concatenate_agents(&[doc.clone(), doc.clone()]);
    for runtime in [None, Some("C:/Usercube/Runtime")] {
        if let Ok(m) = migrate_agent(&doc, runtime) {
            if let Some(new) = m.new_text {
                JsonDoc::parse(file, &new)
                    .map_err(|e| format!("a migrated agent file does not parse: {e}"))?;
            }
        }
    }
    for encrypt_file in [false, true] {
        let wanted = ServerSettings {
            temp_folder: "C:/Usercube/Temp".into(),
            work_folder: "C:/Usercube/Work".into(),
            encrypt_file,
        };
        if let Some(new) = migrate_server(&doc, &wanted).new_text {
            JsonDoc::parse(file, &new)
                .map_err(|e| format!("a migrated server file does not parse: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn appsettings_json_crashes_hold() {
    for (path, data) in inputs("appsettings_json") {
        if let Err(why) = appsettings_json_holds(&data) {
            panic!("{}: {why}", path.display());
        }
    }
}
