//! Migration rules for agent (`appsettings.agent.json`, `appsettings.encrypted.agent.json`)
//! and server (`appsettings.json`) settings files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::edit::{json_string, Editor};
use super::jsonc::{JsonDoc, Kind, Member, Value};
use super::{Change, ChangeKind};

/// 5.1 name of the agent's connection section.
pub const OLD_SECTION: &str = "InformationSystems";
/// 5.2 name of the agent's connection section.
pub const NEW_SECTION: &str = "Connections";
/// 5.1 key renamed anywhere in agent files.
pub const OLD_PAGE_KEY: &str = "PageResult";
/// 5.2 name of [`OLD_PAGE_KEY`].
pub const NEW_PAGE_KEY: &str = "PagedResult";

/// Two different connection identifiers of one file that become equal (ASCII case-insensitive,
/// as .NET configuration keys are) once `_` is removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: connection identifiers {first:?} and {second:?} become the same once '_' is removed", file.display())]
pub struct IdentifierClash {
    pub file: PathBuf,
    pub first: String,
    pub second: String,
}

/// A relative path found in a connection's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelativePath {
    pub file: PathBuf,
    /// e.g. `InformationSystems.CsvSource.Path` (array items use their index).
    pub key_path: String,
    pub value: String,
    /// The rewritten absolute path when a runtime path was given.
    pub absolute: Option<String>,
}

/// Result of [`migrate_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMigration {
    /// The rewritten file, `None` when nothing changes (do not rewrite).
    pub new_text: Option<String>,
    pub changes: Vec<Change>,
    /// Connection identifiers that changed, old -> new, in file order, without duplicates.
    pub id_map: Vec<(String, String)>,
    pub relative_paths: Vec<RelativePath>,
}

/// Wanted server settings for [`migrate_server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub temp_folder: String,
    pub work_folder: String,
    pub encrypt_file: bool,
}

/// Result of [`migrate_server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMigration {
    /// The rewritten file, `None` when nothing changes (do not rewrite).
    pub new_text: Option<String>,
    pub changes: Vec<Change>,
}

/// The 5.2 form of a connection identifier: every `_` removed.
pub fn new_identifier(id: &str) -> String {
    id.replace('_', "")
}

/// Key under which identifiers collide in 5.2 (no `_`, ASCII lower case).
pub(crate) fn identifier_key(id: &str) -> String {
    new_identifier(id).to_ascii_lowercase()
}

/// Top-level `InformationSystems` members of a document (all duplicates, in order).
pub(crate) fn old_sections(doc: &JsonDoc) -> impl Iterator<Item = &Member> {
    doc.root()
        .members()
        .unwrap_or_default()
        .iter()
        .filter(|m| m.key.eq_ignore_ascii_case(OLD_SECTION))
}

/// Top-level `ConnectionString` of `appsettings.json`, if it is a string.
pub fn connection_string(doc: &JsonDoc) -> Option<&str> {
    doc.get(&["ConnectionString"])?.as_str()
}

/// Calls `f(path, member)` for every member of every object under `v`, depth first.
/// Array items appear in paths as their index.
pub(crate) fn walk<'a>(
    v: &'a Value,
    path: &mut Vec<String>,
    f: &mut dyn FnMut(&[String], &'a Member),
) {
    match &v.kind {
        Kind::Object(members) => {
            for m in members {
                path.push(m.key.clone());
                f(path, m);
                walk(&m.value, path, f);
                path.pop();
            }
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                walk(item, path, f);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Key names holding paths: `Path`/`File` or ending with them at a word boundary
/// (`CsvPath`, `Csv_File`, `PATH`; not `Profile`).
fn is_path_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    if lower == "path" || lower == "file" {
        return true;
    }
    if !(lower.ends_with("path") || lower.ends_with("file")) {
        return false;
    }
    let cut = key.len() - 4;
    let first = key[cut..].chars().next().unwrap_or('a');
    let before = key[..cut].chars().next_back().unwrap_or('_');
    first.is_ascii_uppercase() || !before.is_alphabetic()
}

/// Looks like an encrypted appsettings value (base64 starting with bytes `93 10 01 00`).
fn looks_encrypted(s: &str) -> bool {
    s.starts_with("kxAB")
        && s.len() >= 16
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// True for a relative file system path (not rooted, no drive, not a URL, not encrypted).
pub fn is_relative_path(s: &str) -> bool {
    let b = s.as_bytes();
    !(s.trim().is_empty()
        || s.starts_with(['/', '\\'])
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        || s.contains("://")
        || looks_encrypted(s))
}

/// `runtime_path` joined with relative `value`: separator `/` if `runtime_path` contains one,
/// else `\`; `.` segments dropped, leading `..` segments resolved against `runtime_path`.
pub fn absolutize(runtime_path: &str, value: &str) -> String {
    let sep = if runtime_path.contains('/') {
        '/'
    } else {
        '\\'
    };
    let mut base = runtime_path.trim_end_matches(['/', '\\']);
    let mut parts: Vec<&str> = value
        .split(['/', '\\'])
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    while parts.first() == Some(&"..") {
        match base.rfind(['/', '\\']) {
            Some(i) if i > 0 && !base[i + 1..].is_empty() => {
                base = &base[..i];
                parts.remove(0);
            }
            _ => break,
        }
    }
    let mut out = base.to_string();
    for p in parts {
        out.push(sep);
        out.push_str(p);
    }
    if value.ends_with(['/', '\\']) {
        out.push(sep);
    }
    out
}

/// Migrates an agent settings file: `InformationSystems` -> `Connections`, `_` removed from
/// connection identifiers, `PageResult` -> `PagedResult` anywhere; relative paths in connection
/// settings are reported, and rewritten to absolute when `runtime_path` is given.
pub fn migrate_agent(
    doc: &JsonDoc,
    runtime_path: Option<&str>,
) -> Result<AgentMigration, IdentifierClash> {
    let file = doc.file().to_path_buf();
    let mut ed = Editor::new(doc);
    let mut changes = Vec::new();
    let mut id_map: Vec<(String, String)> = Vec::new();
    let mut relative_paths = Vec::new();
    let mut seen: Vec<(String, &str)> = Vec::new();
    let change = |key_path: String, kind, old: Option<String>, new: String| Change {
        file: file.clone(),
        key_path,
        kind,
        old,
        new,
    };

    for section in old_sections(doc) {
        ed.rename_key(section, NEW_SECTION);
        changes.push(change(
            section.key.clone(),
            ChangeKind::RenameKey,
            Some(section.key.clone()),
            NEW_SECTION.into(),
        ));
        for conn in section.value.members().unwrap_or_default() {
            let key = identifier_key(&conn.key);
            if let Some((_, first)) = seen
                .iter()
                .find(|(k, id)| *k == key && !id.eq_ignore_ascii_case(&conn.key))
            {
                return Err(IdentifierClash {
                    file: file.clone(),
                    first: first.to_string(),
                    second: conn.key.clone(),
                });
            }
            seen.push((key, &conn.key));
            let new_id = new_identifier(&conn.key);
            if new_id != conn.key {
                ed.rename_key(conn, &new_id);
                changes.push(change(
                    format!("{}.{}", section.key, conn.key),
                    ChangeKind::RenameKey,
                    Some(conn.key.clone()),
                    new_id.clone(),
                ));
                if !id_map.iter().any(|(old, _)| *old == conn.key) {
                    id_map.push((conn.key.clone(), new_id));
                }
            }
            let mut path = vec![section.key.clone(), conn.key.clone()];
            walk(&conn.value, &mut path, &mut |path, m| {
                let Some(value) = m.value.as_str() else {
                    return;
                };
                if !is_path_key(&m.key) || !is_relative_path(value) {
                    return;
                }
                let key_path = path.join(".");
                let absolute = runtime_path.map(|rt| absolutize(rt, value));
                if let Some(abs) = &absolute {
                    ed.replace_value(&m.value, json_string(abs));
                    changes.push(change(
                        key_path.clone(),
                        ChangeKind::ReplaceValue,
                        Some(doc.slice(m.value.span).to_string()),
                        json_string(abs),
                    ));
                }
                relative_paths.push(RelativePath {
                    file: file.clone(),
                    key_path,
                    value: value.to_string(),
                    absolute,
                });
            });
        }
    }

    walk(doc.root(), &mut Vec::new(), &mut |path, m| {
        if m.key.eq_ignore_ascii_case(OLD_PAGE_KEY) {
            ed.rename_key(m, NEW_PAGE_KEY);
            changes.push(change(
                path.join("."),
                ChangeKind::RenameKey,
                Some(m.key.clone()),
                NEW_PAGE_KEY.into(),
            ));
        }
    });

    Ok(AgentMigration {
        new_text: ed.finish(),
        changes,
        id_map,
        relative_paths,
    })
}

/// .NET reads `true`/`false` strings as booleans too.
fn bool_value(v: &Value) -> Option<bool> {
    match &v.kind {
        Kind::Bool(b) => Some(*b),
        Kind::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Kind::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Sets `TempFolderPath`, `WorkFolderPath` (top level) and `EncryptionCertificate.EncryptFile`
/// in a server `appsettings.json`, replacing or inserting as needed. Values already equal
/// (for `EncryptFile`, `"true"`/`"false"` strings count as booleans) are left alone.
pub fn migrate_server(doc: &JsonDoc, wanted: &ServerSettings) -> ServerMigration {
    let file = doc.file().to_path_buf();
    let root = doc.root();
    let mut ed = Editor::new(doc);
    let mut changes = Vec::new();
    let mut inserts: Vec<(String, String)> = Vec::new();
    let mut change = |key_path: &str, kind, old: Option<String>, new: &str| {
        changes.push(Change {
            file: file.clone(),
            key_path: key_path.to_string(),
            kind,
            old,
            new: new.to_string(),
        })
    };
    if root.members().is_none() {
        return ServerMigration {
            new_text: None,
            changes: Vec::new(),
        };
    }
    for (key, want) in [
        ("TempFolderPath", &wanted.temp_folder),
        ("WorkFolderPath", &wanted.work_folder),
    ] {
        let json = json_string(want);
        match root.get_member(key) {
            Some(m) if m.value.as_str() == Some(want.as_str()) => {}
            Some(m) => {
                ed.replace_value(&m.value, json.clone());
                let old = doc.slice(m.value.span).to_string();
                change(&m.key, ChangeKind::ReplaceValue, Some(old), &json);
            }
            None => {
                change(key, ChangeKind::InsertKey, None, &json);
                inserts.push((key.to_string(), json));
            }
        }
    }
    let want = if wanted.encrypt_file { "true" } else { "false" };
    match root.get_member("EncryptionCertificate") {
        Some(ec) if ec.value.members().is_some() => match ec.value.get_member("EncryptFile") {
            Some(m) if bool_value(&m.value) == Some(wanted.encrypt_file) => {}
            Some(m) => {
                ed.replace_value(&m.value, want.into());
                let path = format!("{}.{}", ec.key, m.key);
                let old = doc.slice(m.value.span).to_string();
                change(&path, ChangeKind::ReplaceValue, Some(old), want);
            }
            None => {
                ed.insert_members(&ec.value, &[("EncryptFile".into(), want.into())]);
                let path = format!("{}.EncryptFile", ec.key);
                change(&path, ChangeKind::InsertKey, None, want);
            }
        },
        Some(ec) => {
            let new = format!("{{ \"EncryptFile\": {want} }}");
            ed.replace_value(&ec.value, new.clone());
            let old = doc.slice(ec.value.span).to_string();
            change(&ec.key, ChangeKind::ReplaceValue, Some(old), &new);
        }
        None => {
            let unit = ed.indent_unit();
            let new = format!("{{\n{unit}\"EncryptFile\": {want}\n}}");
            change("EncryptionCertificate", ChangeKind::InsertKey, None, &new);
            inserts.push(("EncryptionCertificate".into(), new));
        }
    }
    ed.insert_members(root, &inserts);
    ServerMigration {
        new_text: ed.finish(),
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn agent(text: &str, rt: Option<&str>) -> AgentMigration {
        let doc = JsonDoc::parse(Path::new("appsettings.agent.json"), text).unwrap();
        let m = migrate_agent(&doc, rt).unwrap();
        if let Some(t) = &m.new_text {
            JsonDoc::parse(Path::new("out.json"), t).expect("output parses");
        }
        m
    }

    fn server(text: &str, encrypt_file: bool) -> ServerMigration {
        let doc = JsonDoc::parse(Path::new("appsettings.json"), text).unwrap();
        let s = ServerSettings {
            temp_folder: "../Temp".into(),
            work_folder: "D:\\Usercube\\Work".into(),
            encrypt_file,
        };
        let m = migrate_server(&doc, &s);
        if let Some(t) = &m.new_text {
            JsonDoc::parse(Path::new("out.json"), t).expect("output parses");
        }
        m
    }

    const AGENT_IN: &str = r#"{
  // connections of the Paris agent
  "InformationSystems": {
    "AD_Paris": { /* main AD */
      "Servers": [ { "Server": "paris.contoso.com", "BaseDN": "DC=paris,DC=com" }, ],
      "Login": "svc_ad", // keep "_" in values
      "Options": { "PageResult": 500, "Nested": [ { "PageResult": 10 } ] },
    },
    "CsvSource": { "Path": "./Sources/x.csv", "LogFile": "C:\\logs\\a.log", "Profile": "p" },
    "Web_Api": { "Url": "https://x/y", "SchemaPath": "\\\\srv\\share\\s.json" },
  },
  "Other": { "PageResult": 1 },
}
"#;

    #[test]
    fn agent_golden_without_runtime_path() {
        let m = agent(AGENT_IN, None);
        let expected = r#"{
  // connections of the Paris agent
  "Connections": {
    "ADParis": { /* main AD */
      "Servers": [ { "Server": "paris.contoso.com", "BaseDN": "DC=paris,DC=com" }, ],
      "Login": "svc_ad", // keep "_" in values
      "Options": { "PagedResult": 500, "Nested": [ { "PagedResult": 10 } ] },
    },
    "CsvSource": { "Path": "./Sources/x.csv", "LogFile": "C:\\logs\\a.log", "Profile": "p" },
    "WebApi": { "Url": "https://x/y", "SchemaPath": "\\\\srv\\share\\s.json" },
  },
  "Other": { "PagedResult": 1 },
}
"#;
        assert_eq!(m.new_text.as_deref(), Some(expected));
        assert_eq!(
            m.id_map,
            vec![
                ("AD_Paris".to_string(), "ADParis".to_string()),
                ("Web_Api".to_string(), "WebApi".to_string())
            ]
        );
        assert_eq!(
            m.relative_paths,
            vec![RelativePath {
                file: "appsettings.agent.json".into(),
                key_path: "InformationSystems.CsvSource.Path".into(),
                value: "./Sources/x.csv".into(),
                absolute: None,
            }]
        );
        let paths: Vec<&str> = m.changes.iter().map(|c| c.key_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "InformationSystems",
                "InformationSystems.AD_Paris",
                "InformationSystems.Web_Api",
                "InformationSystems.AD_Paris.Options.PageResult",
                "InformationSystems.AD_Paris.Options.Nested.0.PageResult",
                "Other.PageResult",
            ]
        );
    }

    #[test]
    fn agent_rewrites_relative_paths_with_runtime_path() {
        let text = "\u{FEFF}{\r\n  \"InformationSystems\": {\r\n    \"Csv\": { \"Path\": \"./Sources/x.csv\", \"Tables\": [ { \"ExportFile\": \"..\\\\Temp\\\\e.csv\" } ] }\r\n  }\r\n}\r\n";
        let m = agent(text, Some("C:\\Usercube\\Runtime"));
        assert_eq!(
            m.new_text.as_deref(),
            Some("\u{FEFF}{\r\n  \"Connections\": {\r\n    \"Csv\": { \"Path\": \"C:\\\\Usercube\\\\Runtime\\\\Sources\\\\x.csv\", \"Tables\": [ { \"ExportFile\": \"C:\\\\Usercube\\\\Temp\\\\e.csv\" } ] }\r\n  }\r\n}\r\n")
        );
        assert_eq!(m.relative_paths.len(), 2);
        assert_eq!(
            m.relative_paths[1].key_path,
            "InformationSystems.Csv.Tables.0.ExportFile"
        );
        assert_eq!(m.changes[1].kind, ChangeKind::ReplaceValue);
        assert_eq!(m.changes[1].old.as_deref(), Some("\"./Sources/x.csv\""));
    }

    #[test]
    fn absolutize_cases() {
        assert_eq!(
            absolutize("/opt/usercube/Runtime/", "./a/./b.csv"),
            "/opt/usercube/Runtime/a/b.csv"
        );
        assert_eq!(
            absolutize("C:\\U\\Runtime", "Sources\\x.csv"),
            "C:\\U\\Runtime\\Sources\\x.csv"
        );
        assert_eq!(absolutize("C:/U/Runtime", "../Work/"), "C:/U/Work/");
        assert_eq!(absolutize("C:\\Runtime", "..\\..\\x"), "C:\\..\\x");
    }

    #[test]
    fn relative_path_and_path_key_detection() {
        for rel in ["a.csv", "./a", "..\\a", "Sources/x"] {
            assert!(is_relative_path(rel), "{rel}");
        }
        for abs in [
            "/a",
            "\\\\srv\\s",
            "C:\\a",
            "d:/a",
            "http://x/a",
            "",
            "kxABAAAAAAAAAAAAAAAA==",
        ] {
            assert!(!is_relative_path(abs), "{abs}");
        }
        for k in [
            "Path",
            "path",
            "File",
            "CsvPath",
            "LogFile",
            "Csv_file",
            "EXPORTPATH",
        ] {
            assert!(is_path_key(k), "{k}");
        }
        for k in ["Profile", "Paths", "Login", "FileName"] {
            assert!(!is_path_key(k), "{k}");
        }
    }

    #[test]
    fn agent_already_migrated_is_not_rewritten() {
        let text =
            "{\n  \"Connections\": { \"AD\": { \"PagedResult\": 5, \"Path\": \"x.csv\" } }\n}\n";
        let m = agent(text, Some("/rt"));
        assert_eq!(m.new_text, None);
        assert!(m.changes.is_empty() && m.id_map.is_empty() && m.relative_paths.is_empty());
    }

    #[test]
    fn agent_identifier_clash_in_one_file() {
        let text = r#"{"InformationSystems": {"AD_Paris": {}, "adparis": {}}}"#;
        let doc = JsonDoc::parse(Path::new("a.json"), text).unwrap();
        let e = migrate_agent(&doc, None).unwrap_err();
        assert_eq!(
            (e.first.as_str(), e.second.as_str()),
            ("AD_Paris", "adparis")
        );
        assert_eq!(
            e.to_string(),
            "a.json: connection identifiers \"AD_Paris\" and \"adparis\" become the same once '_' is removed"
        );
    }

    const SERVER_IN: &str = "{\n    \"ConnectionString\": \"data source=.;Database=Usercube;\", // db\n    \"EncryptionCertificate\": {\n        \"File\": \"cert.pfx\",\n        \"Password\": \"secret\"\n    }\n}\n";

    #[test]
    fn server_inserts_missing_keys() {
        let m = server(SERVER_IN, false);
        let expected = "{\n    \"ConnectionString\": \"data source=.;Database=Usercube;\", // db\n    \"EncryptionCertificate\": {\n        \"File\": \"cert.pfx\",\n        \"Password\": \"secret\",\n        \"EncryptFile\": false\n    },\n    \"TempFolderPath\": \"../Temp\",\n    \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\"\n}\n";
        assert_eq!(m.new_text.as_deref(), Some(expected));
        assert_eq!(m.changes.len(), 3);
        assert_eq!(m.changes[2].key_path, "EncryptionCertificate.EncryptFile");
        let doc = JsonDoc::parse(Path::new("x"), SERVER_IN).unwrap();
        assert_eq!(
            connection_string(&doc),
            Some("data source=.;Database=Usercube;")
        );
    }

    #[test]
    fn server_replaces_and_is_idempotent() {
        let text = "{\n  \"TempFolderPath\": \"C:/old\", /* t */\n  \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\n  \"EncryptionCertificate\": { \"EncryptFile\": \"True\" },\n}";
        let m = server(text, true);
        let expected = "{\n  \"TempFolderPath\": \"../Temp\", /* t */\n  \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\n  \"EncryptionCertificate\": { \"EncryptFile\": \"True\" },\n}";
        assert_eq!(m.new_text.as_deref(), Some(expected));
        assert_eq!(m.changes.len(), 1);
        assert_eq!(m.changes[0].old.as_deref(), Some("\"C:/old\""));
        let again = server(expected, true);
        assert_eq!(again.new_text, None);
        assert!(again.changes.is_empty());
        let flip = server(expected, false);
        assert_eq!(
            flip.new_text.as_deref(),
            Some(expected.replace("\"True\"", "false").as_str())
        );
    }

    #[test]
    fn server_creates_section_in_empty_and_crlf_files() {
        let m = server("{}", true);
        assert_eq!(
            m.new_text.as_deref(),
            Some("{\n  \"TempFolderPath\": \"../Temp\",\n  \"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\n  \"EncryptionCertificate\": {\n    \"EncryptFile\": true\n  }\n}")
        );
        let m = server("\u{FEFF}{\r\n\t\"License\": \"x\" // lic\r\n}\r\n", true);
        assert_eq!(
            m.new_text.as_deref(),
            Some("\u{FEFF}{\r\n\t\"License\": \"x\", // lic\r\n\t\"TempFolderPath\": \"../Temp\",\r\n\t\"WorkFolderPath\": \"D:\\\\Usercube\\\\Work\",\r\n\t\"EncryptionCertificate\": {\r\n\t\t\"EncryptFile\": true\r\n\t}\r\n}\r\n")
        );
    }
}
