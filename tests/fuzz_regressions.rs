//! Every input a fuzz target crashed on (FUZZING.md), checked in under
//! `fuzz/regressions/TARGET/`, replayed through the same checks as the target: each must now
//! give a typed error naming the file, or a result that keeps the target's properties.

use std::path::{Path, PathBuf};

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
