//! Migration of a whole configuration folder (`ConfOld`).

use super::{migrate_file, EncryptionScan, IdMap, XmlChange, XmlError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// What to write for one file of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileOutcome {
    /// Write these bytes (the migrated XML).
    Changed(Vec<u8>),
    /// Copy the source file byte for byte (XML no rule changed, or a non-XML file).
    Unchanged,
}

/// One file of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeFile {
    /// Path relative to the source folder.
    pub path: PathBuf,
    /// What to write for it.
    pub outcome: FileOutcome,
}

/// Result of [`migrate_tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeMigration {
    /// Every file under the source folder, sorted by relative path (directories are not
    /// listed; the caller creates parents as needed).
    pub files: Vec<TreeFile>,
    /// All changes, file by file in the order of `files`.
    pub changes: Vec<XmlChange>,
    /// `FilesAreNotEncrypted` findings over all XML files.
    pub encryption: EncryptionScan,
}

/// Migrates every `*.xml` file (extension case-insensitive) under `src_dir`; other files are
/// listed as [`FileOutcome::Unchanged`]. Symbolic links are never followed: one is an error
/// naming it (a rewrite through it could land outside the installation). Files over
/// [`crate::limits::MAX_XML_BYTES`] are refused. Nothing is written.
pub fn migrate_tree(src_dir: &Path, ids: &IdMap) -> Result<TreeMigration, XmlError> {
    let mut result = TreeMigration::default();
    let walker = WalkDir::new(src_dir)
        .follow_links(false)
        .follow_root_links(false)
        .sort_by_file_name();
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(src_dir).to_path_buf();
            XmlError::io(&path, e.to_string())
        })?;
        if entry.file_type().is_symlink() {
            return Err(XmlError::io(
                entry.path(),
                "is a symbolic link: refused, never followed (replace it with what it points to)",
            ));
        }
        if entry.file_type().is_dir() {
            continue;
        }
        let path = entry.path();
        let rel = path
            .strip_prefix(src_dir)
            .map_err(|e| XmlError::io(path, e.to_string()))?
            .to_path_buf();
        let is_xml = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("xml"));
        let outcome = if is_xml {
            let bytes =
                crate::limits::read_limited(path, crate::limits::MAX_XML_BYTES, "XML files")
                    .map_err(|e| XmlError::io(path, e.to_string()))?;
            let migration = migrate_file(path, &bytes, ids)?;
            result.changes.extend(migration.changes);
            result.encryption.merge(migration.encryption);
            match migration.output {
                Some(out) => FileOutcome::Changed(out),
                None => FileOutcome::Unchanged,
            }
        } else {
            FileOutcome::Unchanged
        };
        result.files.push(TreeFile { path: rel, outcome });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::super::{Rule, XmlErrorKind};
    use super::*;
    use std::fs;

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "usercube-configuration-{name}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        // Test cleanup of a scratch folder, not an engine side effect.
        #[allow(clippy::disallowed_methods)]
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn migrates_xml_files_and_lists_others_unchanged() {
        let tmp = TempDir::new("tree");
        let root = &tmp.0;
        fs::create_dir_all(root.join("Connectors/AD")).unwrap();
        fs::create_dir_all(root.join("Empty")).unwrap();
        fs::write(
            root.join("Connectors/AD/AD Connector.xml"),
            "<ConfigurationFile>\n  <Connector Identifier=\"AD\" FilesAreNotEncrypted=\"true\"/>\n  \
             <Connection Identifier=\"AD_Paris\" Connector=\"AD\" FilesAreNotEncrypted=\"true\"/>\n\
             </ConfigurationFile>\n",
        )
        .unwrap();
        fs::write(
            root.join("Access.XML"),
            "<ConfigurationFile><Entry Permission=\"/Connectors/X\"/></ConfigurationFile>",
        )
        .unwrap();
        fs::write(root.join("readme.txt"), "Type=\"Option\"").unwrap();
        fs::write(root.join("Workflows.xml"), "<a>\n<E Type=\"Option\"/></a>").unwrap();

        let ids: IdMap = [("AD_Paris", "ADParis")].into_iter().collect();
        let m = migrate_tree(root, &ids).unwrap();
        assert_eq!(
            m.files,
            vec![
                TreeFile {
                    path: PathBuf::from("Access.XML"),
                    outcome: FileOutcome::Unchanged,
                },
                TreeFile {
                    path: PathBuf::from("Connectors/AD/AD Connector.xml"),
                    outcome: FileOutcome::Changed(
                        b"<ConfigurationFile>\n  <Connector Identifier=\"AD\"/>\n  \
                          <Connection Identifier=\"ADParis\" Connector=\"AD\"/>\n\
                          </ConfigurationFile>\n"
                            .to_vec()
                    ),
                },
                TreeFile {
                    path: PathBuf::from("Workflows.xml"),
                    outcome: FileOutcome::Changed(b"<a>\n<E Type=\"ForeignKey\"/></a>".to_vec()),
                },
                TreeFile {
                    path: PathBuf::from("readme.txt"),
                    outcome: FileOutcome::Unchanged,
                },
            ]
        );
        let summary: Vec<(PathBuf, usize, Rule)> = m
            .changes
            .iter()
            .map(|c| {
                (
                    c.file.strip_prefix(root).unwrap().to_path_buf(),
                    c.line,
                    c.rule,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    PathBuf::from("Connectors/AD/AD Connector.xml"),
                    2,
                    Rule::FilesAreNotEncryptedRemoved
                ),
                (
                    PathBuf::from("Connectors/AD/AD Connector.xml"),
                    3,
                    Rule::ConnectionIdentifierRenamed
                ),
                (
                    PathBuf::from("Connectors/AD/AD Connector.xml"),
                    3,
                    Rule::FilesAreNotEncryptedRemoved
                ),
                (
                    PathBuf::from("Workflows.xml"),
                    2,
                    Rule::TypeOptionToForeignKey
                ),
            ]
        );
        assert_eq!(m.encryption.connectors, 2);
        assert_eq!(m.encryption.connectors_not_encrypted, 2);
        assert_eq!(m.encryption.occurrences.len(), 2);
        assert!(!m.encryption.encrypt_file());
    }

    #[test]
    fn malformed_file_in_tree_reports_its_path() {
        let tmp = TempDir::new("bad");
        let root = &tmp.0;
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/bad.xml"), "<a>\n<b></a>").unwrap();
        let e = migrate_tree(root, &IdMap::new()).unwrap_err();
        assert_eq!(e.file, root.join("sub/bad.xml"));
        assert_eq!((e.line, e.column), (2, 4));
        assert_eq!(e.message, "end tag </a> does not match start tag <b>");
    }

    #[test]
    fn missing_folder_is_an_io_error() {
        let tmp = TempDir::new("missing");
        let missing = tmp.0.join("nope");
        let e = migrate_tree(&missing, &IdMap::new()).unwrap_err();
        assert_eq!(e.kind, XmlErrorKind::Io);
        assert_eq!(e.file, missing);
        assert_eq!((e.line, e.column), (0, 0));
    }

    #[test]
    fn a_symlink_in_the_tree_is_refused_never_followed() {
        let tmp = TempDir::new("links");
        let outside = TempDir::new("outside");
        fs::write(outside.0.join("Outside.xml"), "<ConfigurationFile/>").unwrap();
        let conf = tmp.0.join("Conf");
        fs::create_dir_all(conf.join("Connectors")).unwrap();
        fs::write(conf.join("A.xml"), "<ConfigurationFile/>").unwrap();
        for (link, target) in [
            ("Connectors/Linked.xml", outside.0.join("Outside.xml")),
            ("Connectors/LinkedDir", outside.0.clone()),
        ] {
            crate::platform::symlink(&target, &conf.join(link)).unwrap();
            let e = migrate_tree(&conf, &IdMap::new()).unwrap_err();
            assert_eq!(e.kind, XmlErrorKind::Io);
            assert_eq!(e.file, conf.join(link));
            assert!(e.message.contains("is a symbolic link"), "{e}");
            crate::durable_fs::remove_path(&conf.join(link)).unwrap();
        }
        assert_eq!(migrate_tree(&conf, &IdMap::new()).unwrap().files.len(), 1);
    }
}
