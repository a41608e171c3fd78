//! Detection of settings that cannot be migrated automatically (CyberArk, Azure Key Vault,
//! SAP and SharePoint connectors).
//!
//! The detection rules are partly guesses: they all live in [`MANUAL_RULES`], change them there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::jsonc::{JsonDoc, Kind, Value};
use super::rules::{NEW_SECTION, OLD_SECTION};

/// What kind of manual work an item needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManualKind {
    CyberArk,
    AzureKeyVault,
    Sap,
    SharePoint,
}

/// Something the administrator must migrate by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualItem {
    pub file: PathBuf,
    /// Dotted key path of what was found (empty when the whole file is concerned).
    pub key_path: String,
    pub kind: ManualKind,
    /// What the administrator must do.
    pub action: String,
}

/// How a rule recognises its case. Key and name comparisons are ASCII case-insensitive.
#[derive(Debug, Clone, Copy)]
pub enum Detect {
    /// The file is named so.
    FileName(&'static str),
    /// A value exists (not `null`) at this key path.
    Section(&'static [&'static str]),
    /// The object at this key path has this key set to `true` (or `"true"`).
    SectionFlag(&'static [&'static str], &'static str),
    /// A connection's settings (under `InformationSystems` or `Connections`) contain this key,
    /// at any depth. Reported at the connection.
    ConnectionKey(&'static str),
    /// Any string value starts with this prefix.
    StringPrefix(&'static str),
}

/// One detection rule.
#[derive(Debug, Clone, Copy)]
pub struct ManualRule {
    pub kind: ManualKind,
    pub detect: Detect,
    pub action: &'static str,
}

const CYBERARK_ACTION: &str = "CyberArk integration cannot be migrated automatically: after the \
upgrade, re-create the CyberArk settings for 5.2 by hand (connection section renamed to \
Connections, identifiers without '_') and test every connection that reads credentials from \
CyberArk.";
const AKV_ACTION: &str = "Azure Key Vault integration cannot be migrated automatically: rename \
the vault's secrets by hand to the 5.2 names (InformationSystems--X-- becomes Connections--X--, \
identifiers without '_'), check the EncryptionCertificate vault settings, then test the agent.";
const SAP_ACTION: &str = "SAP connector cannot be migrated automatically: re-create this \
connection's settings for 5.2 by hand, refresh its schema and test it before deploying the \
configuration.";
const SHAREPOINT_ACTION: &str = "SharePoint connector cannot be migrated automatically: \
re-create this connection's settings for 5.2 by hand, refresh its schema and test it before \
deploying the configuration.";

/// The detection table. Items are reported in table order, then document order.
pub const MANUAL_RULES: &[ManualRule] = &[
    ManualRule {
        kind: ManualKind::CyberArk,
        detect: Detect::SectionFlag(&["CyberArk"], "UseCyberArkSetting"),
        action: CYBERARK_ACTION,
    },
    ManualRule {
        kind: ManualKind::CyberArk,
        detect: Detect::FileName("appsettings.cyberArk.agent.json"),
        action: CYBERARK_ACTION,
    },
    ManualRule {
        kind: ManualKind::AzureKeyVault,
        detect: Detect::Section(&["AzureKeyVault"]),
        action: AKV_ACTION,
    },
    ManualRule {
        kind: ManualKind::AzureKeyVault,
        detect: Detect::Section(&["EncryptionCertificate", "CertificateAzureKeyVault"]),
        action: AKV_ACTION,
    },
    ManualRule {
        kind: ManualKind::Sap,
        detect: Detect::ConnectionKey("AseLogin"),
        action: SAP_ACTION,
    },
    ManualRule {
        kind: ManualKind::Sap,
        detect: Detect::ConnectionKey("BapiLogin"),
        action: SAP_ACTION,
    },
    ManualRule {
        kind: ManualKind::Sap,
        detect: Detect::StringPrefix("Usercube.SAP"),
        action: SAP_ACTION,
    },
    ManualRule {
        kind: ManualKind::SharePoint,
        detect: Detect::ConnectionKey("CsvUrls"),
        action: SHAREPOINT_ACTION,
    },
    ManualRule {
        kind: ManualKind::SharePoint,
        detect: Detect::StringPrefix("Usercube.SharePoint"),
        action: SHAREPOINT_ACTION,
    },
];

fn has_key(v: &Value, key: &str) -> bool {
    match &v.kind {
        Kind::Object(ms) => ms
            .iter()
            .any(|m| m.key.eq_ignore_ascii_case(key) || has_key(&m.value, key)),
        Kind::Array(items) => items.iter().any(|i| has_key(i, key)),
        _ => false,
    }
}

fn strings_with_prefix(v: &Value, prefix: &str, path: &mut Vec<String>, out: &mut Vec<String>) {
    match &v.kind {
        Kind::String(s)
            if s.len() >= prefix.len()
                && s.is_char_boundary(prefix.len())
                && s[..prefix.len()].eq_ignore_ascii_case(prefix) =>
        {
            out.push(path.join("."))
        }
        Kind::Object(ms) => {
            for m in ms {
                path.push(m.key.clone());
                strings_with_prefix(&m.value, prefix, path, out);
                path.pop();
            }
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                strings_with_prefix(item, prefix, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn file_name_is(file: &Path, name: &str) -> bool {
    file.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.eq_ignore_ascii_case(name))
}

fn is_true(v: &Value) -> bool {
    match &v.kind {
        Kind::Bool(b) => *b,
        Kind::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Applies [`MANUAL_RULES`] to one settings file. One item per kind and key path; a string
/// found inside an already reported connection is not reported again.
pub fn find_manual_items(doc: &JsonDoc) -> Vec<ManualItem> {
    let mut found: Vec<(ManualKind, String, &'static str)> = Vec::new();
    for rule in MANUAL_RULES {
        let mut paths = Vec::new();
        match rule.detect {
            Detect::FileName(name) => {
                if file_name_is(doc.file(), name) {
                    paths.push(String::new());
                }
            }
            Detect::Section(path) => {
                if doc.get(path).is_some_and(|v| v.kind != Kind::Null) {
                    paths.push(path.join("."));
                }
            }
            Detect::SectionFlag(path, key) => {
                if doc.get(path).and_then(|v| v.get(key)).is_some_and(is_true) {
                    paths.push(format!("{}.{key}", path.join(".")));
                }
            }
            Detect::ConnectionKey(key) => {
                for section in doc.root().members().unwrap_or_default().iter().filter(|m| {
                    m.key.eq_ignore_ascii_case(OLD_SECTION)
                        || m.key.eq_ignore_ascii_case(NEW_SECTION)
                }) {
                    for conn in section.value.members().unwrap_or_default() {
                        if has_key(&conn.value, key) {
                            paths.push(format!("{}.{}", section.key, conn.key));
                        }
                    }
                }
            }
            Detect::StringPrefix(prefix) => {
                strings_with_prefix(doc.root(), prefix, &mut Vec::new(), &mut paths);
            }
        }
        for path in paths {
            let covered = found.iter().any(|(k, p, _)| {
                *k == rule.kind && (*p == path || path.starts_with(&format!("{p}.")))
            });
            if !covered {
                found.push((rule.kind, path, rule.action));
            }
        }
    }
    found
        .into_iter()
        .map(|(kind, key_path, action)| ManualItem {
            file: doc.file().to_path_buf(),
            key_path,
            kind,
            action: action.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(file: &str, text: &str) -> Vec<(ManualKind, String)> {
        let doc = JsonDoc::parse(Path::new(file), text).unwrap();
        find_manual_items(&doc)
            .into_iter()
            .map(|i| {
                assert!(!i.action.is_empty());
                assert_eq!(i.file, Path::new(file));
                (i.kind, i.key_path)
            })
            .collect()
    }

    #[test]
    fn detects_each_kind() {
        let text = r#"{
  "CyberArk": { "UseCyberArkSetting": true },
  "AzureKeyVault": { "Vault": "v" },
  "EncryptionCertificate": { "CertificateAzureKeyVault": "c" },
  "InformationSystems": {
    "SAP_HR": { "Server": "s", "Ase": { "AseLogin": "u" }, "BapiLogin": "b", "Package": "Usercube.SAP@1" },
    "SP": { "Server": "s", "CsvUrls": ["a"] },
    "Other": { "Notes": ["usercube.sharepoint@2"] },
  },
}"#;
        assert_eq!(
            items("appsettings.agent.json", text),
            vec![
                (
                    ManualKind::CyberArk,
                    "CyberArk.UseCyberArkSetting".to_string()
                ),
                (ManualKind::AzureKeyVault, "AzureKeyVault".to_string()),
                (
                    ManualKind::AzureKeyVault,
                    "EncryptionCertificate.CertificateAzureKeyVault".to_string()
                ),
                (ManualKind::Sap, "InformationSystems.SAP_HR".to_string()),
                (ManualKind::SharePoint, "InformationSystems.SP".to_string()),
                (
                    ManualKind::SharePoint,
                    "InformationSystems.Other.Notes.0".to_string()
                ),
            ]
        );
    }

    #[test]
    fn cyberark_file_name_and_false_flag() {
        assert_eq!(
            items(
                "Runtime/APPSETTINGS.CYBERARK.AGENT.JSON",
                r#"{"CyberArk": {"UseCyberArkSetting": false}}"#
            ),
            vec![(ManualKind::CyberArk, String::new())]
        );
        assert_eq!(
            items(
                "appsettings.agent.json",
                r#"{"CyberArk": {"UseCyberArkSetting": false}, "AzureKeyVault": null}"#
            ),
            vec![]
        );
    }

    #[test]
    fn plain_agent_file_has_no_items() {
        let text = r#"{"InformationSystems": {"AD": {"Login": "x", "Package": "Usercube.AD@1"}}}"#;
        assert_eq!(items("appsettings.agent.json", text), vec![]);
    }
}
