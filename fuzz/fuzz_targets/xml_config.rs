//! The XML configuration rewriter (src/runbook/configuration/): any bytes either migrate or
//! give a typed error naming the file; a rewrite is well-formed again, and applying the
//! migration to its own output changes nothing more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use usercube_upgrade::testing::runbook::configuration::{migrate_file, scan_encryption, IdMap};

fuzz_target!(|data: &[u8]| {
    let file = Path::new("Conf/Connectors.xml");
    let mut ids = IdMap::new();
    ids.insert("AD_Export", "ADExport");
    ids.insert("Sql_1", "Sql1");
    let scanned = scan_encryption(file, data);
    match migrate_file(file, data, &ids) {
        Ok(m) => {
            assert!(scanned.is_ok(), "migrates but does not scan");
            if let Some(out) = m.output {
                assert!(!m.changes.is_empty(), "a rewrite without a change");
                let again = migrate_file(file, &out, &ids).expect("a rewrite parses again");
                assert!(again.output.is_none(), "the migration is not idempotent");
            } else {
                assert!(m.changes.is_empty(), "changes reported, nothing rewritten");
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.contains("Connectors.xml"), "{shown}");
        }
    }
});
