//! The JSON-with-comments parser and the appsettings rules (src/runbook/appsettings/).
//!
//! Any text either parses or gives a typed error; a parsed document keeps its text byte for
//! byte; every rule runs on it, and whatever a rule rewrites parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use usercube_upgrade::testing::runbook::appsettings::{
    concatenate_agents, connection_string, find_manual_items, migrate_agent, migrate_server,
    JsonDoc, ServerSettings,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("Runtime/appsettings.agent.json");
    let doc = match JsonDoc::parse(file, text) {
        Ok(doc) => doc,
        Err(e) => {
            // The error names the file and a place inside it.
            let shown = e.to_string();
            assert!(shown.contains("appsettings.agent.json"), "{shown}");
            return;
        }
    };
    assert_eq!(doc.text(), text);
    let _ = connection_string(&doc);
    let _ = find_manual_items(&doc);
    let _ = concatenate_agents(&[doc.clone(), doc.clone()]);
    for runtime in [None, Some("C:/Usercube/Runtime")] {
        if let Ok(m) = migrate_agent(&doc, runtime) {
            if let Some(new) = m.new_text {
                JsonDoc::parse(file, &new).expect("a migrated agent file parses");
            }
        }
    }
    let wanted = ServerSettings {
        temp_folder: "C:/Usercube/Temp".into(),
        work_folder: "C:/Usercube/Work".into(),
        encrypt_file: data.len().is_multiple_of(2),
    };
    if let Some(new) = migrate_server(&doc, &wanted).new_text {
        JsonDoc::parse(file, &new).expect("a migrated server file parses");
    }
});
