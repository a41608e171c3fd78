//! Concatenation of several agents' `appsettings.agent.json` into one, as the migration guide
//! asks for installations with several agents.

use std::path::PathBuf;

use super::edit::Editor;
use super::jsonc::{JsonDoc, Member};
use super::rules::{identifier_key, NEW_SECTION, OLD_SECTION};

/// Why agent files cannot be concatenated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConcatError {
    #[error("no agent settings file to concatenate")]
    NoInput,
    /// Same identifier twice, or identifiers equal once `_` is removed (ASCII case-insensitive).
    #[error(
        "connection {second_id:?} in {} clashes with connection {first_id:?} in {} (identifiers must differ once '_' is removed)",
        second_file.display(),
        first_file.display()
    )]
    IdentifierClash {
        first_file: PathBuf,
        first_id: String,
        second_file: PathBuf,
        second_id: String,
    },
}

/// The connections of an agent file: effective `InformationSystems` (or `Connections`) section.
fn connections(doc: &JsonDoc) -> &[Member] {
    let root = doc.root();
    root.get(OLD_SECTION)
        .or_else(|| root.get(NEW_SECTION))
        .and_then(|v| v.members())
        .unwrap_or_default()
}

/// The value text of `m`, continuation lines made relative to the indentation of `m`'s key
/// line, with `\n` newlines.
fn member_value_text(doc: &JsonDoc, m: &Member) -> String {
    let text = doc.text();
    let line_start = text[..m.key_span.start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].trim_start_matches('\u{FEFF}');
    let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
    let value = doc.slice(m.value.span);
    let mut lines = value.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut out = lines.next().unwrap_or_default().to_string();
    for l in lines {
        out.push('\n');
        out.push_str(l.strip_prefix(indent).unwrap_or(l));
    }
    out
}

/// Builds one agent settings text: the first document unchanged except that the connections of
/// the following documents are appended, in order, to its `InformationSystems` section (created
/// if missing). Only connections are taken from the following documents.
pub fn concatenate_agents(docs: &[JsonDoc]) -> Result<String, ConcatError> {
    let base = docs.first().ok_or(ConcatError::NoInput)?;
    let mut seen: Vec<(String, &JsonDoc, &str)> = Vec::new();
    for doc in docs {
        for conn in connections(doc) {
            let key = identifier_key(&conn.key);
            if let Some((_, first_doc, first_id)) = seen.iter().find(|(k, _, _)| *k == key) {
                return Err(ConcatError::IdentifierClash {
                    first_file: first_doc.file().to_path_buf(),
                    first_id: first_id.to_string(),
                    second_file: doc.file().to_path_buf(),
                    second_id: conn.key.clone(),
                });
            }
            seen.push((key, doc, &conn.key));
        }
    }
    let items: Vec<(String, String)> = docs[1..]
        .iter()
        .flat_map(|doc| {
            connections(doc)
                .iter()
                .map(move |m| (m.key.clone(), member_value_text(doc, m)))
        })
        .collect();
    if items.is_empty() {
        return Ok(base.text().to_string());
    }
    let mut ed = Editor::new(base);
    let root = base.root();
    match root
        .get(OLD_SECTION)
        .or_else(|| root.get(NEW_SECTION))
        .filter(|v| v.members().is_some())
    {
        Some(section) => ed.insert_members(section, &items),
        None => {
            let unit = ed.indent_unit();
            let body: Vec<String> = items
                .iter()
                .map(|(k, v)| {
                    let v = v.replace('\n', &format!("\n{unit}"));
                    format!("{unit}{}: {v}", super::edit::json_string(k))
                })
                .collect();
            let section = format!("{{\n{}\n}}", body.join(",\n"));
            ed.insert_members(root, &[(OLD_SECTION.to_string(), section)]);
        }
    }
    Ok(ed.finish().unwrap_or_else(|| base.text().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn doc(file: &str, text: &str) -> JsonDoc {
        JsonDoc::parse(Path::new(file), text).unwrap()
    }

    #[test]
    fn appends_connections_in_order() {
        let a = doc(
            "paris/appsettings.agent.json",
            "{\n  // Paris\n  \"InformationSystems\": {\n    \"AD_Paris\": { \"Login\": \"p\" }, // ad\n  },\n  \"Other\": 1\n}\n",
        );
        let b = doc(
            "lyon/appsettings.agent.json",
            "{\r\n    \"InformationSystems\": {\r\n        \"ADLyon\": {\r\n            \"Servers\": [\r\n                \"lyon\"\r\n            ]\r\n        },\r\n        \"Csv\": { \"Path\": \"x.csv\" }\r\n    },\r\n    \"Ignored\": true\r\n}",
        );
        let c = doc("empty.json", "{ /* none */ }");
        let out = concatenate_agents(&[a, b, c]).unwrap();
        assert_eq!(
            out,
            "{\n  // Paris\n  \"InformationSystems\": {\n    \"AD_Paris\": { \"Login\": \"p\" }, // ad\n    \"ADLyon\": {\n        \"Servers\": [\n            \"lyon\"\n        ]\n    },\n    \"Csv\": { \"Path\": \"x.csv\" },\n  },\n  \"Other\": 1\n}\n"
        );
        let merged = JsonDoc::parse(Path::new("m"), &out).unwrap();
        let ids: Vec<&str> = connections(&merged)
            .iter()
            .map(|m| m.key.as_str())
            .collect();
        assert_eq!(ids, ["AD_Paris", "ADLyon", "Csv"]);
    }

    #[test]
    fn creates_section_when_base_has_none() {
        let a = doc("a.json", "{\n  \"Other\": 1\n}");
        let b = doc(
            "b.json",
            "{\"InformationSystems\": {\"X\": {\"k\": [1,\n  2]}}}",
        );
        assert_eq!(
            concatenate_agents(&[a, b]).unwrap(),
            "{\n  \"Other\": 1,\n  \"InformationSystems\": {\n    \"X\": {\"k\": [1,\n      2]}\n  }\n}"
        );
    }

    #[test]
    fn single_file_is_returned_unchanged() {
        let text = "{\"InformationSystems\": {\"A\": {}}} // end";
        assert_eq!(concatenate_agents(&[doc("a", text)]).unwrap(), text);
        assert_eq!(concatenate_agents(&[]), Err(ConcatError::NoInput));
    }

    #[test]
    fn refuses_clashing_identifiers() {
        let a = doc("a.json", r#"{"InformationSystems": {"AD_Paris": {}}}"#);
        let b = doc("b.json", r#"{"InformationSystems": {"ADParis": {}}}"#);
        let e = concatenate_agents(&[a.clone(), b]).unwrap_err();
        assert_eq!(
            e,
            ConcatError::IdentifierClash {
                first_file: "a.json".into(),
                first_id: "AD_Paris".into(),
                second_file: "b.json".into(),
                second_id: "ADParis".into(),
            }
        );
        assert_eq!(
            e.to_string(),
            "connection \"ADParis\" in b.json clashes with connection \"AD_Paris\" in a.json (identifiers must differ once '_' is removed)"
        );
        let c = doc(
            "c.json",
            r#"{"InformationSystems": {"AD_Paris": {"x": 1}}}"#,
        );
        assert!(matches!(
            concatenate_agents(&[a, c]),
            Err(ConcatError::IdentifierClash { second_id, .. }) if second_id == "AD_Paris"
        ));
    }
}
