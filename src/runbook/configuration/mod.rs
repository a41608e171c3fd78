//! Migration of the Usercube XML configuration from 5.1.7 to 5.2.3 (`ConfOld` -> `Conf`).
//!
//! The rewrite is byte-preserving: the file is read with quick-xml to locate elements and
//! attributes by byte offset, and the output is the original bytes with only the names,
//! values or attributes that a rule changes spliced. Comments, processing instructions,
//! the XML declaration, the UTF-8 byte-order mark, whitespace and line endings, attribute
//! order and quoting style all survive. A file no rule changes is reported as unchanged
//! (`output: None`); the caller copies it byte for byte.
//!
//! Only UTF-8 (with or without BOM; `encoding="utf-8"` or `"us-ascii"`) is accepted; other
//! encodings and malformed XML give an [`XmlError`] with file, line and column.
//!
//! The rules (all tables are in [`rules`]):
//! 1. `/Custom/WorkflowsNotifications/<Workflow>/<Activity>/<State>` ->
//!    `/Custom/WorkflowsNotifications/<Workflow>/<Activity>` in any attribute value
//!    (typically `Permission`).
//! 2. `Type="Option"` -> `Type="ForeignKey"` on any element.
//! 3. `TargettedRisk` -> `TargetedRisk` as attribute name and as element name (start and end
//!    tags; one change is reported per element, on its start tag).
//! 4. / 5. attributes in [`rules::REMOVED_ATTRIBUTES`] (including `FilesAreNotEncrypted`)
//!    are removed together with the whitespace before them.
//! 6. connection identifiers renamed through an [`IdMap`]: `Identifier` on `<Connection>`
//!    and the attributes in [`rules::CONNECTION_REFERENCE_ATTRIBUTES`].
//!
//! Values are compared unescaped; a changed value is written back escaped (`&`, `<`, the
//! quote character and tab/CR/LF as character references).
//!
//! [`scan_encryption`] (also returned by [`migrate_file`] and [`migrate_tree`]) lists every
//! `FilesAreNotEncrypted="true"` and tells whether every `<Connector>`/`<Connection>` had it,
//! which decides the agent's `EncryptFile` setting.

pub mod error;
pub mod rules;
mod tree;
mod xml;

pub use error::{XmlError, XmlErrorKind};
pub use rules::Rule;
pub use tree::{migrate_tree, FileOutcome, TreeMigration};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xml::{walk, Node};

/// Old connection identifier -> new connection identifier (e.g. `AD_Paris` -> `ADParis`),
/// as produced by the appsettings migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// The renames, keyed by old identifier.
    pub renames: BTreeMap<String, String>,
}

impl IdMap {
    /// An empty map (no renames).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a rename.
    pub fn insert(&mut self, old: impl Into<String>, new: impl Into<String>) {
        self.renames.insert(old.into(), new.into());
    }

    /// The new identifier for `old`, if it is renamed (identity renames are ignored).
    pub fn get(&self, old: &str) -> Option<&str> {
        self.renames
            .get(old)
            .map(String::as_str)
            .filter(|new| *new != old)
    }
}

impl<O: Into<String>, N: Into<String>> FromIterator<(O, N)> for IdMap {
    fn from_iter<I: IntoIterator<Item = (O, N)>>(iter: I) -> Self {
        let mut map = IdMap::new();
        for (old, new) in iter {
            map.insert(old, new);
        }
        map
    }
}

/// One change made (or to be made) by a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XmlChange {
    /// The file, as passed to [`migrate_file`] (a full path under [`migrate_tree`]).
    pub file: PathBuf,
    /// 1-based line of the attribute (or of the element name for an element rename).
    pub line: usize,
    /// Local name of the element, as it was in the old file.
    pub element: String,
    /// Name of the attribute concerned, `None` for an element rename.
    pub attribute: Option<String>,
    /// The rule applied.
    pub rule: Rule,
    /// Old (unescaped) value, or old name for a rename.
    pub old: String,
    /// New value or name; `None` when the attribute was removed.
    pub new: Option<String>,
}

/// One `FilesAreNotEncrypted="true"` found in the old configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagOccurrence {
    /// File it was found in.
    pub file: PathBuf,
    /// 1-based line of the attribute.
    pub line: usize,
    /// Local name of the element carrying it.
    pub element: String,
}

/// Result of scanning for `FilesAreNotEncrypted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionScan {
    /// Every `FilesAreNotEncrypted="true"` (on any element), in document order.
    pub occurrences: Vec<FlagOccurrence>,
    /// Number of `<Connector>` / `<Connection>` elements seen.
    pub connectors: usize,
    /// How many of them had `FilesAreNotEncrypted="true"`.
    pub connectors_not_encrypted: usize,
}

impl EncryptionScan {
    /// True when there is at least one connector and every `<Connector>`/`<Connection>` had
    /// `FilesAreNotEncrypted="true"`.
    pub fn every_connector_not_encrypted(&self) -> bool {
        self.connectors > 0 && self.connectors_not_encrypted == self.connectors
    }

    /// The value for the agent's `EncryptFile`: false only if every connector had
    /// `FilesAreNotEncrypted="true"`.
    pub fn encrypt_file(&self) -> bool {
        !self.every_connector_not_encrypted()
    }

    /// Adds the results of another scan (e.g. of another file).
    pub fn merge(&mut self, other: EncryptionScan) {
        self.occurrences.extend(other.occurrences);
        self.connectors += other.connectors;
        self.connectors_not_encrypted += other.connectors_not_encrypted;
    }

    fn visit_tag(&mut self, file: &Path, lines: &error::LineIndex, tag: &xml::Tag<'_>) {
        let element = tag.local_name();
        let mut flagged = false;
        for attr in &tag.attrs {
            if attr.local_name() == rules::FILES_ARE_NOT_ENCRYPTED && rules::is_true(&attr.value) {
                flagged = true;
                self.occurrences.push(FlagOccurrence {
                    file: file.to_path_buf(),
                    line: lines.line(attr.name_start),
                    element: element.to_string(),
                });
            }
        }
        if rules::CONNECTOR_ELEMENTS.contains(&element) {
            self.connectors += 1;
            if flagged {
                self.connectors_not_encrypted += 1;
            }
        }
    }
}

/// Result of [`migrate_file`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMigration {
    /// The migrated bytes, or `None` when no rule changed anything (copy the file as is).
    pub output: Option<Vec<u8>>,
    /// The changes, in document order.
    pub changes: Vec<XmlChange>,
    /// `FilesAreNotEncrypted` findings in the *old* file.
    pub encryption: EncryptionScan,
}

/// A replacement of `bytes[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// Migrates one configuration file. `file` is only used in changes and errors.
pub fn migrate_file(file: &Path, bytes: &[u8], ids: &IdMap) -> Result<FileMigration, XmlError> {
    let mut edits: Vec<Edit> = Vec::new();
    let mut changes: Vec<XmlChange> = Vec::new();
    let mut encryption = EncryptionScan::default();
    let lines = error::LineIndex::new(bytes);
    walk(file, bytes, |node| {
        match node {
            Node::Tag(tag) => {
                encryption.visit_tag(file, &lines, &tag);
                migrate_tag(file, bytes, &lines, ids, &tag, &mut edits, &mut changes)?;
            }
            Node::End { name_start, name } => {
                if let Some(new) = rules::renamed(xml::local_name(name)) {
                    let local_start = name_start + name.len() - xml::local_name(name).len();
                    edits.push(Edit {
                        start: local_start,
                        end: name_start + name.len(),
                        text: new.to_string(),
                    });
                }
            }
        }
        Ok(())
    })?;
    let output = if edits.is_empty() {
        None
    } else {
        edits.sort_by_key(|e| e.start);
        let mut out = Vec::with_capacity(bytes.len());
        let mut pos = 0;
        for edit in &edits {
            out.extend_from_slice(&bytes[pos..edit.start]);
            out.extend_from_slice(edit.text.as_bytes());
            pos = edit.end;
        }
        out.extend_from_slice(&bytes[pos..]);
        Some(out)
    };
    Ok(FileMigration {
        output,
        changes,
        encryption,
    })
}

/// Scans one file for `FilesAreNotEncrypted` without migrating it (the fuzz target's
/// cross-check of `migrate_file`).
#[cfg(any(test, feature = "testing"))]
pub fn scan_encryption(file: &Path, bytes: &[u8]) -> Result<EncryptionScan, XmlError> {
    let mut scan = EncryptionScan::default();
    let lines = error::LineIndex::new(bytes);
    walk(file, bytes, |node| {
        if let Node::Tag(tag) = node {
            scan.visit_tag(file, &lines, &tag);
        }
        Ok(())
    })?;
    Ok(scan)
}

fn migrate_tag(
    file: &Path,
    bytes: &[u8],
    lines: &error::LineIndex,
    ids: &IdMap,
    tag: &xml::Tag<'_>,
    edits: &mut Vec<Edit>,
    changes: &mut Vec<XmlChange>,
) -> Result<(), XmlError> {
    let element = tag.local_name();
    let line = |offset: usize| lines.line(offset);
    let mut change =
        |offset: usize, attribute: Option<&str>, rule, old: &str, new: Option<&str>| {
            changes.push(XmlChange {
                file: file.to_path_buf(),
                line: line(offset),
                element: element.to_string(),
                attribute: attribute.map(str::to_string),
                rule,
                old: old.to_string(),
                new: new.map(str::to_string),
            })
        };

    // Rule 3 on the element name.
    if let Some(new) = rules::renamed(element) {
        let local_start = tag.name_start + tag.name.len() - element.len();
        edits.push(Edit {
            start: local_start,
            end: tag.name_start + tag.name.len(),
            text: new.to_string(),
        });
        change(
            tag.name_start,
            None,
            Rule::TargetedRiskRename,
            element,
            Some(new),
        );
    }

    for attr in &tag.attrs {
        let local = attr.local_name();
        if attr.name == "xmlns" || attr.name.starts_with("xmlns:") {
            continue;
        }
        // Rules 4 and 5: removal (whitespace before the attribute included).
        if let Some(removed) = rules::removed_attribute(element, local) {
            edits.push(Edit {
                start: attr.ws_start,
                end: attr.value_end + 1,
                text: String::new(),
            });
            change(
                attr.name_start,
                Some(attr.name),
                removed.rule,
                &attr.value,
                None,
            );
            continue;
        }
        // Rule 3 on the attribute name.
        if let Some(new) = rules::renamed(local) {
            let prefix = &attr.name[..attr.name.len() - local.len()];
            let new_qname = format!("{prefix}{new}");
            if let Some(other) = tag.attrs.iter().find(|a| a.name == new_qname) {
                return Err(XmlError::at(
                    file,
                    bytes,
                    attr.name_start,
                    XmlErrorKind::RuleConflict,
                    format!(
                        "cannot rename attribute {} to {}: <{}> already has {} on line {}",
                        attr.name,
                        new_qname,
                        tag.name,
                        other.name,
                        line(other.name_start)
                    ),
                ));
            }
            edits.push(Edit {
                start: attr.name_start + prefix.len(),
                end: attr.name_start + attr.name.len(),
                text: new.to_string(),
            });
            change(
                attr.name_start,
                Some(attr.name),
                Rule::TargetedRiskRename,
                local,
                Some(new),
            );
        }
        // Value rules, applied in sequence on the unescaped value.
        let mut value = attr.value.to_string();
        let mut changed = false;
        if let Some(new) = rules::drop_workflow_state(&value) {
            change(
                attr.name_start,
                Some(attr.name),
                Rule::PermissionWorkflowState,
                &value,
                Some(&new),
            );
            value = new;
            changed = true;
        }
        if local == rules::TYPE_ATTRIBUTE && value == rules::TYPE_OLD {
            change(
                attr.name_start,
                Some(attr.name),
                Rule::TypeOptionToForeignKey,
                &value,
                Some(rules::TYPE_NEW),
            );
            value = rules::TYPE_NEW.to_string();
            changed = true;
        }
        if rules::holds_connection_identifier(element, local) {
            if let Some(new) = ids.get(&value) {
                let new = new.to_string();
                change(
                    attr.name_start,
                    Some(attr.name),
                    Rule::ConnectionIdentifierRenamed,
                    &value,
                    Some(&new),
                );
                value = new;
                changed = true;
            }
        }
        if changed {
            edits.push(Edit {
                start: attr.value_start,
                end: attr.value_end,
                text: escape_attribute(&value, attr.quote),
            });
        }
    }
    Ok(())
}

/// Escapes an attribute value for writing between `quote` characters.
fn escape_attribute(value: &str, quote: u8) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' if quote == b'"' => out.push_str("&quot;"),
            '\'' if quote == b'\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "Conf/test.xml";

    fn ids() -> IdMap {
        [("AD_Paris", "ADParis"), ("SQL_HR", "SqlHr")]
            .into_iter()
            .collect()
    }

    fn migrate(input: &str) -> FileMigration {
        migrate_file(Path::new(F), input.as_bytes(), &ids()).unwrap()
    }

    fn ch(
        line: usize,
        element: &str,
        attribute: Option<&str>,
        rule: Rule,
        old: &str,
        new: Option<&str>,
    ) -> XmlChange {
        XmlChange {
            file: PathBuf::from(F),
            line,
            element: element.into(),
            attribute: attribute.map(Into::into),
            rule,
            old: old.into(),
            new: new.map(Into::into),
        }
    }

    #[test]
    fn rule1_permission_state_dropped() {
        let input = "<ConfigurationFile>\n  <AccessControlRule Profile=\"A\">\n    \
            <Entry Permission=\"/Custom/WorkflowsNotifications/Self_ChangeName/Review/Approved\" CanExecute=\"true\"/>\n    \
            <Entry Permission=\"/Custom/WorkflowsNotifications/Self_ChangeName/Review\"/>\n    \
            <Entry Permission=\"/Connectors/SynchronizeSession/X\"/>\n    \
            <Menu Url='/Custom/WorkflowsNotifications/W/A/S'/>\n  </AccessControlRule>\n</ConfigurationFile>\n";
        let expected = "<ConfigurationFile>\n  <AccessControlRule Profile=\"A\">\n    \
            <Entry Permission=\"/Custom/WorkflowsNotifications/Self_ChangeName/Review\" CanExecute=\"true\"/>\n    \
            <Entry Permission=\"/Custom/WorkflowsNotifications/Self_ChangeName/Review\"/>\n    \
            <Entry Permission=\"/Connectors/SynchronizeSession/X\"/>\n    \
            <Menu Url='/Custom/WorkflowsNotifications/W/A'/>\n  </AccessControlRule>\n</ConfigurationFile>\n";
        let m = migrate(input);
        assert_eq!(String::from_utf8(m.output.unwrap()).unwrap(), expected);
        assert_eq!(
            m.changes,
            vec![
                ch(
                    3,
                    "Entry",
                    Some("Permission"),
                    Rule::PermissionWorkflowState,
                    "/Custom/WorkflowsNotifications/Self_ChangeName/Review/Approved",
                    Some("/Custom/WorkflowsNotifications/Self_ChangeName/Review")
                ),
                ch(
                    6,
                    "Menu",
                    Some("Url"),
                    Rule::PermissionWorkflowState,
                    "/Custom/WorkflowsNotifications/W/A/S",
                    Some("/Custom/WorkflowsNotifications/W/A")
                ),
            ]
        );
    }

    #[test]
    fn rule2_type_option_to_foreign_key() {
        let m = migrate("<a>\n<Property Identifier=\"Manager\" Type=\"Option\" Other='Option'/>\n<B Type='String'/></a>");
        assert_eq!(
            String::from_utf8(m.output.unwrap()).unwrap(),
            "<a>\n<Property Identifier=\"Manager\" Type=\"ForeignKey\" Other='Option'/>\n<B Type='String'/></a>"
        );
        assert_eq!(
            m.changes,
            vec![ch(
                2,
                "Property",
                Some("Type"),
                Rule::TypeOptionToForeignKey,
                "Option",
                Some("ForeignKey")
            )]
        );
    }

    #[test]
    fn rule3_targetted_risk_element_and_attribute() {
        let input = "<a>\n  <TargettedRisk Identifier=\"R1\">\n    <x:TargettedRisk/>\n  </TargettedRisk>\n  \
            <Rule TargettedRisk='R1'/>\n</a>";
        let m = migrate(input);
        assert_eq!(
            String::from_utf8(m.output.unwrap()).unwrap(),
            "<a>\n  <TargetedRisk Identifier=\"R1\">\n    <x:TargetedRisk/>\n  </TargetedRisk>\n  \
            <Rule TargetedRisk='R1'/>\n</a>"
        );
        assert_eq!(
            m.changes,
            vec![
                ch(
                    2,
                    "TargettedRisk",
                    None,
                    Rule::TargetedRiskRename,
                    "TargettedRisk",
                    Some("TargetedRisk")
                ),
                ch(
                    3,
                    "TargettedRisk",
                    None,
                    Rule::TargetedRiskRename,
                    "TargettedRisk",
                    Some("TargetedRisk")
                ),
                ch(
                    5,
                    "Rule",
                    Some("TargettedRisk"),
                    Rule::TargetedRiskRename,
                    "TargettedRisk",
                    Some("TargetedRisk")
                ),
            ]
        );
    }

    #[test]
    fn rule3_conflicting_rename_is_an_error() {
        let e = migrate_file(
            Path::new(F),
            b"<a>\n <R TargetedRisk='x' TargettedRisk='y'/></a>",
            &ids(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Conf/test.xml:2:22: cannot rename attribute TargettedRisk to TargetedRisk: <R> already has TargetedRisk on line 2"
        );
        assert_eq!(e.kind, XmlErrorKind::RuleConflict);
    }

    #[test]
    fn rule4_files_are_not_encrypted_removed_with_leading_whitespace() {
        let input = "<a>\n<Connector Identifier=\"AD\" FilesAreNotEncrypted=\"true\" Agent=\"Local\"/>\n\
            <Connector FilesAreNotEncrypted='false'/>\n\
            <Connection\n    Identifier=\"X\"\n    FilesAreNotEncrypted=\"true\"\n    Package=\"P\"></Connection>\n</a>";
        let m = migrate(input);
        assert_eq!(
            String::from_utf8(m.output.unwrap()).unwrap(),
            "<a>\n<Connector Identifier=\"AD\" Agent=\"Local\"/>\n\
            <Connector/>\n\
            <Connection\n    Identifier=\"X\"\n    Package=\"P\"></Connection>\n</a>"
        );
        let r = Rule::FilesAreNotEncryptedRemoved;
        let a = Some("FilesAreNotEncrypted");
        assert_eq!(
            m.changes,
            vec![
                ch(2, "Connector", a, r, "true", None),
                ch(3, "Connector", a, r, "false", None),
                ch(6, "Connection", a, r, "true", None),
            ]
        );
        assert_eq!(
            m.encryption,
            EncryptionScan {
                occurrences: vec![
                    FlagOccurrence {
                        file: PathBuf::from(F),
                        line: 2,
                        element: "Connector".into()
                    },
                    FlagOccurrence {
                        file: PathBuf::from(F),
                        line: 6,
                        element: "Connection".into()
                    },
                ],
                connectors: 3,
                connectors_not_encrypted: 2,
            }
        );
        assert!(m.encryption.encrypt_file());
    }

    #[test]
    fn rule5_removed_attributes_from_table() {
        let m = migrate("<Job>\n<Step Level=\"2\" Task=\"T\"/><Other Level=\"2\"/></Job>");
        assert_eq!(
            String::from_utf8(m.output.unwrap()).unwrap(),
            "<Job>\n<Step Task=\"T\"/><Other Level=\"2\"/></Job>"
        );
        assert_eq!(
            m.changes,
            vec![ch(
                2,
                "Step",
                Some("Level"),
                Rule::UnknownAttributeRemoved,
                "2",
                None
            )]
        );
    }

    #[test]
    fn rule6_connection_identifiers_renamed() {
        let input = "<a>\n<Connection Identifier=\"AD_Paris\" Connector=\"AD\"/>\n\
            <Job Connection='AD_Paris' Identifier='AD_Paris'/>\n\
            <Task ConnectionIdentifier=\"SQL_HR\"/>\n\
            <Connection Identifier=\"Other\"/>\n</a>";
        let m = migrate(input);
        assert_eq!(
            String::from_utf8(m.output.unwrap()).unwrap(),
            "<a>\n<Connection Identifier=\"ADParis\" Connector=\"AD\"/>\n\
            <Job Connection='ADParis' Identifier='AD_Paris'/>\n\
            <Task ConnectionIdentifier=\"SqlHr\"/>\n\
            <Connection Identifier=\"Other\"/>\n</a>"
        );
        let r = Rule::ConnectionIdentifierRenamed;
        assert_eq!(
            m.changes,
            vec![
                ch(
                    2,
                    "Connection",
                    Some("Identifier"),
                    r,
                    "AD_Paris",
                    Some("ADParis")
                ),
                ch(3, "Job", Some("Connection"), r, "AD_Paris", Some("ADParis")),
                ch(
                    4,
                    "Task",
                    Some("ConnectionIdentifier"),
                    r,
                    "SQL_HR",
                    Some("SqlHr")
                ),
            ]
        );
        // Without renames, nothing changes.
        let none = migrate_file(Path::new(F), input.as_bytes(), &IdMap::new()).unwrap();
        assert_eq!(none.output, None);
        assert_eq!(none.changes, vec![]);
    }

    #[test]
    fn preserves_bom_declaration_comments_crlf_order_and_quotes() {
        let input = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
            <!-- keep me: Type=\"Option\" -->\r\n\
            <?pi Type=\"Option\"?>\r\n\
            <ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\r\n\
            \t<EntityType   Z='1'  Type = 'Option'  A=\"2\" ><![CDATA[Type=\"Option\"]]>Type=\"Option\"</EntityType>\r\n\
            </ConfigurationFile>\r\n";
        let expected = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
            <!-- keep me: Type=\"Option\" -->\r\n\
            <?pi Type=\"Option\"?>\r\n\
            <ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\r\n\
            \t<EntityType   Z='1'  Type = 'ForeignKey'  A=\"2\" ><![CDATA[Type=\"Option\"]]>Type=\"Option\"</EntityType>\r\n\
            </ConfigurationFile>\r\n";
        let m = migrate(input);
        assert_eq!(m.output, Some(expected.as_bytes().to_vec()));
        assert_eq!(
            m.changes,
            vec![ch(
                5,
                "EntityType",
                Some("Type"),
                Rule::TypeOptionToForeignKey,
                "Option",
                Some("ForeignKey")
            )]
        );
    }

    #[test]
    fn unchanged_file_returns_none() {
        let input = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- c -->\n\
            <ConfigurationFile><Connector Identifier=\"AD\" Agent=\"Local\"/>\
            <Entry Permission=\"/Custom/WorkflowsNotifications/W/A\"/></ConfigurationFile>\n";
        let m = migrate(input);
        assert_eq!(m.output, None);
        assert_eq!(m.changes, vec![]);
        assert_eq!(m.encryption.connectors, 1);
        assert_eq!(m.encryption.connectors_not_encrypted, 0);
    }

    #[test]
    fn entities_compared_unescaped_and_written_escaped() {
        // `&#x2F;` is `/`; `&amp;` in a workflow name survives as `&amp;`.
        let input = "<a><E Permission=\"&#x2F;Custom/WorkflowsNotifications/R&amp;D/Review/Approved\"/>\
            <C Connection='AD&#95;Paris'/><Q Permission='/Custom/WorkflowsNotifications/it&apos;s/A/S' Other=\"a&amp;b\"/></a>";
        let m = migrate(input);
        assert_eq!(
            String::from_utf8(m.output.unwrap()).unwrap(),
            "<a><E Permission=\"/Custom/WorkflowsNotifications/R&amp;D/Review\"/>\
            <C Connection='ADParis'/><Q Permission='/Custom/WorkflowsNotifications/it&apos;s/A' Other=\"a&amp;b\"/></a>"
        );
        assert_eq!(
            m.changes[0].old,
            "/Custom/WorkflowsNotifications/R&D/Review/Approved"
        );
        assert_eq!(m.changes[1].old, "AD_Paris");
        assert_eq!(
            m.changes[2].new.as_deref(),
            Some("/Custom/WorkflowsNotifications/it's/A")
        );
    }

    #[test]
    fn escape_attribute_uses_the_quote_style() {
        assert_eq!(
            escape_attribute("a\"b'c&<>\t\n\r", b'"'),
            "a&quot;b'c&amp;&lt;>&#9;&#10;&#13;"
        );
        assert_eq!(escape_attribute("a\"b'c", b'\''), "a\"b&apos;c");
    }

    #[test]
    fn several_rules_on_one_attribute_are_applied_in_sequence() {
        let m = migrate("<R TargettedRisk='/Custom/WorkflowsNotifications/W/A/S'/>");
        assert_eq!(
            String::from_utf8(m.output.unwrap()).unwrap(),
            "<R TargetedRisk='/Custom/WorkflowsNotifications/W/A'/>"
        );
        let rules: Vec<Rule> = m.changes.iter().map(|c| c.rule).collect();
        assert_eq!(
            rules,
            vec![Rule::TargetedRiskRename, Rule::PermissionWorkflowState]
        );
    }

    #[test]
    fn mismatched_end_tag_error_position() {
        let input = "<?xml version=\"1.0\"?>\n<ConfigurationFile>\n  <Job Identifier=\"J\">\n  </Jobs>\n</ConfigurationFile>\n";
        let e = migrate_file(Path::new(F), input.as_bytes(), &ids()).unwrap_err();
        assert_eq!(
            e,
            XmlError {
                file: PathBuf::from(F),
                line: 4,
                column: 3,
                kind: XmlErrorKind::Malformed,
                message: "end tag </Jobs> does not match start tag <Job>".into(),
            }
        );
        assert_eq!(
            e.to_string(),
            "Conf/test.xml:4:3: end tag </Jobs> does not match start tag <Job>"
        );
    }

    #[test]
    fn bad_attribute_syntax_error_position() {
        let e = migrate_file(
            Path::new(F),
            "<a>\r\n  <b x=\"1\"\r\n     y=2/></a>".as_bytes(),
            &ids(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Conf/test.xml:3:8: value of attribute y must be quoted"
        );
    }

    #[test]
    fn unsupported_encoding_errors() {
        let e = migrate_file(
            Path::new(F),
            b"<?xml version=\"1.0\"\n  encoding=\"windows-1252\"?>\n<a/>",
            &ids(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Conf/test.xml:2:13: unsupported encoding \"windows-1252\"; only UTF-8 (or US-ASCII) is supported"
        );
        assert_eq!(e.kind, XmlErrorKind::UnsupportedEncoding);

        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("<a/>".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let e = migrate_file(Path::new(F), &utf16, &ids()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Conf/test.xml:1:1: unsupported encoding UTF-16 (little-endian) (byte-order mark); only UTF-8 is supported"
        );
        assert_eq!(e.kind, XmlErrorKind::UnsupportedEncoding);
    }

    #[test]
    fn scan_encryption_all_connectors_flagged() {
        let input = "<a><Connector Identifier='AD' FilesAreNotEncrypted='True'/>\n\
            <Connection Identifier='ADExport' FilesAreNotEncrypted=\"true\"/></a>";
        let scan = scan_encryption(Path::new(F), input.as_bytes()).unwrap();
        assert_eq!(scan.connectors, 2);
        assert_eq!(scan.connectors_not_encrypted, 2);
        assert_eq!(
            scan.occurrences.iter().map(|o| o.line).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(scan.every_connector_not_encrypted());
        assert!(!scan.encrypt_file());
        assert!(EncryptionScan::default().encrypt_file());
    }

    #[test]
    fn markup_characters_inside_attribute_values_and_doctype() {
        let input = "<!DOCTYPE ConfigurationFile>\n<a><E Expr=\"x > 1 /\" Type='Option'/><F Path=\"a/\"/></a>";
        let m = migrate(input);
        assert_eq!(
            m.output,
            Some(
                "<!DOCTYPE ConfigurationFile>\n<a><E Expr=\"x > 1 /\" Type='ForeignKey'/><F Path=\"a/\"/></a>"
                    .as_bytes()
                    .to_vec()
            )
        );
    }

    #[test]
    fn a_dtd_is_refused_naming_file_line_and_column() {
        for doc in [
            "<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY x \"xx\"><!ENTITY y \"&x;&x;\">]>\n<a>&y;</a>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE a SYSTEM \"file:///etc/passwd\">\n<a/>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE a PUBLIC \"-//x//y\" \"http://example.com/a.dtd\">\n<a/>",
        ] {
            let e = migrate_file(Path::new(F), doc.as_bytes(), &ids()).unwrap_err();
            assert!(
                e.to_string().starts_with("Conf/test.xml:2:1: a DTD"),
                "{doc}: {e}"
            );
        }
    }
}
