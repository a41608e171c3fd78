//! appsettings migration from Usercube 5.1.7 to 5.2.3.
//!
//! * [`jsonc`]: lossless JSON-with-comments parser ([`JsonDoc::parse`]) with byte spans.
//! * [`edit`]: splicing editor; untouched text survives byte for byte.
//! * [`rules`]: agent ([`migrate_agent`]) and server ([`migrate_server`]) rules, relative path
//!   detection/rewrite, [`connection_string`].
//! * [`manual`]: what cannot be migrated automatically ([`find_manual_items`]); the detection
//!   rules are the table [`manual::MANUAL_RULES`].
//! * [`concat`](mod@concat): merging several agents' files into one ([`concatenate_agents`]).
//!
//! Every rule reports what it changed as [`Change`]s, and returns `new_text: None` when the file
//! must not be rewritten. Key look-ups are ASCII case-insensitive, as .NET configuration is.

pub mod concat;
pub mod edit;
pub mod jsonc;
pub mod manual;
pub mod rules;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use concat::concatenate_agents;
pub use jsonc::JsonDoc;
pub use manual::{find_manual_items, ManualItem};
pub use rules::{
    connection_string, migrate_agent, migrate_server, AgentMigration, ServerMigration,
    ServerSettings,
};

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A key was renamed: `old` and `new` are key names.
    RenameKey,
    /// A value was replaced: `old` and `new` are JSON texts.
    ReplaceValue,
    /// A key was added: `new` is the JSON value text.
    InsertKey,
}

/// Human-readable description of one change made to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub file: PathBuf,
    /// Dotted path of the key as it was before the change, e.g. `InformationSystems.AD_Paris`.
    pub key_path: String,
    pub kind: ChangeKind,
    pub old: Option<String>,
    pub new: String,
}

use crate::secrets::redact_value;

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.display();
        match (&self.kind, &self.old) {
            (ChangeKind::RenameKey, Some(old)) => {
                write!(f, "{file}: {}: key {old} -> {}", self.key_path, self.new)
            }
            // Values under a secret key (or a connection string's password) never print.
            (_, Some(old)) => write!(
                f,
                "{file}: {}: {} -> {}",
                self.key_path,
                redact_value(&self.key_path, old),
                redact_value(&self.key_path, &self.new)
            ),
            (_, None) => write!(
                f,
                "{file}: {}: added {}",
                self.key_path,
                redact_value(&self.key_path, &self.new)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn change_serializes_and_displays() {
        let doc = JsonDoc::parse(
            Path::new("appsettings.agent.json"),
            r#"{"InformationSystems": {"AD_Paris": {}}}"#,
        )
        .unwrap();
        let m = migrate_agent(&doc, None).unwrap();
        assert_eq!(
            m.new_text.as_deref(),
            Some(r#"{"Connections": {"ADParis": {}}}"#)
        );
        let json = serde_json::to_string(&m.changes[1]).unwrap();
        assert_eq!(
            json,
            r#"{"file":"appsettings.agent.json","key_path":"InformationSystems.AD_Paris","kind":"RenameKey","old":"AD_Paris","new":"ADParis"}"#
        );
        let back: Change = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m.changes[1]);
        assert_eq!(
            back.to_string(),
            "appsettings.agent.json: InformationSystems.AD_Paris: key AD_Paris -> ADParis"
        );
    }

    /// Every one-character deletion or insertion of a realistic file either fails with an
    /// error inside the text or parses; whatever parses migrates to text that parses again.
    #[test]
    fn mutated_inputs_never_panic_and_outputs_reparse() {
        let base = "\u{FEFF}{ // c\r\n  \"InformationSystems\": { \"A_B\": { \"Path\": \"x/é.csv\", \"PageResult\": [1, 2.5e3, true, null,] /* b */ }, },\r\n  \"EncryptionCertificate\": { \"EncryptFile\": \"\\ud83d\\ude00\" }\r\n}\r\n";
        let settings = ServerSettings {
            temp_folder: "../Temp".into(),
            work_folder: "../Work".into(),
            encrypt_file: true,
        };
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
        let (mut ok, mut bad) = (0, 0);
        for text in &variants {
            match JsonDoc::parse(Path::new("f.json"), text) {
                Err(e) => {
                    bad += 1;
                    assert!(e.line >= 1 && e.line <= text.split('\n').count());
                    assert!(e.column >= 1);
                }
                Ok(doc) => {
                    ok += 1;
                    let reparse = |t: Option<String>| {
                        if let Some(t) = t {
                            JsonDoc::parse(Path::new("o.json"), &t).unwrap();
                        }
                    };
                    if let Ok(m) = migrate_agent(&doc, Some("C:\\rt")) {
                        reparse(m.new_text);
                    }
                    reparse(migrate_server(&doc, &settings).new_text);
                    let _ = find_manual_items(&doc);
                    if let Ok(t) = concatenate_agents(&[doc.clone(), doc.clone()]) {
                        reparse(Some(t));
                    }
                }
            }
        }
        assert!(ok > 100 && bad > 100, "ok={ok} bad={bad}");
    }
}
