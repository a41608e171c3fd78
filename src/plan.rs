//! Plans are data: an ordered list of step specifications, serializable to JSON (for tests
//! and `plan --json`) and to bincode (stored whole in the journal's run-started record).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::journal::record::codec;
use bincode::Options;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub title: String,
    pub steps: Vec<PlannedStep>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PlannedStep {
    /// 1-based position in the plan; also the step id in the journal.
    pub id: u32,
    /// The vendor guide's step this implements (for example "3.2"), if any.
    #[serde(default)]
    pub seed: Option<String>,
    /// How the engine does it differently from the guide, if it does.
    #[serde(default)]
    pub note: Option<String>,
    pub action: StepSpec,
}

/// Every step kind. Paths are relative to the installation root unless absolute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepSpec {
    /// Rename a file or folder on one filesystem.
    Rename { from: PathBuf, to: PathBuf },
    /// Copy a file or a tree; the copy appears whole or not at all.
    Copy { from: PathBuf, to: PathBuf },
    /// Move a tree (rename, or copy + verify + delete across filesystems).
    MoveTree { from: PathBuf, to: PathBuf },
    /// "Delete" a tree: move it into the journal's trash, purged at finalize.
    DeleteTree { path: PathBuf },
    /// Write a file atomically, keeping the previous content for undo. The content (base64
    /// in JSON) is journaled apart from the plan, by digest: see [`FileContent`].
    WriteFile { path: PathBuf, content: FileContent },
    /// Extract a zip archive into a new folder.
    ExtractZip { archive: PathBuf, dest: PathBuf },
    /// Create one new, empty folder (removed again by undo).
    MakeDir { path: PathBuf },
    /// Back up a database into `backup_dir` (for SQL Server, a folder the server writes);
    /// undo restores it. `connection`: `sqlite:PATH` or an ADO.NET string (see docs/database.md).
    DatabaseBackup {
        connection: String,
        backup_dir: PathBuf,
    },
    /// Delete every row of a table, keeping the rows in the journal so that undo re-inserts
    /// exactly them.
    DeleteRows { connection: String, table: String },
    /// Run the vendor's schema upgrade (`command`: program and arguments, `${VAR}` taken from
    /// the environment); skipped with a warning when it cannot run here. Needs a
    /// `database-backup` of the same database earlier in the plan (its undo restores).
    DatabaseVersionUpgrade {
        connection: String,
        #[serde(default)]
        command: Vec<String>,
    },
    /// Re-encrypt every legacy-encrypted file under `folders` and among `files` (the last
    /// component may hold `*`/`?`) into the new format, staged and verified; originals kept
    /// in the journal trash (issue 5, docs/encryption.md). The certificate is referenced,
    /// never its password.
    ReencryptFiles {
        #[serde(default)]
        folders: Vec<PathBuf>,
        #[serde(default)]
        files: Vec<PathBuf>,
        certificate: crate::crypto::CertificateSource,
    },
    /// Run the administrator's command that stops or starts the service (`sh -c`, in the
    /// root); undo runs `undo` (the opposite command) when given. Exit status and output
    /// are journaled.
    Service {
        action: ServiceAction,
        command: String,
        #[serde(default)]
        undo: Option<String>,
    },
    /// Stop or start Windows services through the Service Control Manager, waiting until
    /// each is stopped (or running); undo does the opposite in reverse order. Refused on
    /// Linux.
    WindowsService {
        action: ServiceAction,
        names: Vec<String>,
    },
}

/// The content a `write-file` step writes. It may hold secrets (appsettings passwords,
/// client secrets), so it never enters the journal's records: in the journal encoding
/// (bincode) only its SHA-256 and length are written, and the bytes live in an owner-only
/// journal file named by that digest (purged at finalize). In JSON (`--plan FILE`) it is the
/// bytes, in base64. Printed plans show only the digest (`crate::secrets`).
#[derive(Clone)]
pub struct FileContent {
    pub sha256: [u8; 32],
    pub len: u64,
    /// The bytes; `None` for a plan read back from the journal until they are loaded.
    bytes: Option<std::sync::Arc<[u8]>>,
}

impl FileContent {
    pub fn new(bytes: Vec<u8>) -> FileContent {
        FileContent {
            sha256: Sha256::digest(&bytes).into(),
            len: bytes.len() as u64,
            bytes: Some(bytes.into()),
        }
    }

    /// The bytes, when known (always, except for a journaled plan not yet loaded).
    pub fn bytes(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }

    /// Gives a journaled content its bytes back; refused unless they match the digest.
    pub fn load(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        if bytes.len() as u64 != self.len || <[u8; 32]>::from(Sha256::digest(&bytes)) != self.sha256
        {
            return Err(format!(
                "expected {} bytes with SHA-256 {}",
                self.len,
                hex::encode(self.sha256)
            ));
        }
        self.bytes = Some(bytes.into());
        Ok(())
    }
}

/// Equal contents have equal digests; whether the bytes are loaded does not matter.
impl PartialEq for FileContent {
    fn eq(&self, other: &FileContent) -> bool {
        self.sha256 == other.sha256 && self.len == other.len
    }
}

impl Eq for FileContent {}

impl From<Vec<u8>> for FileContent {
    fn from(bytes: Vec<u8>) -> FileContent {
        FileContent::new(bytes)
    }
}

/// Never the bytes: debug output ends up in messages and logs.
impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileContent({} bytes, sha256 {})",
            self.len,
            hex::encode(self.sha256)
        )
    }
}

impl Serialize for FileContent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        if s.is_human_readable() {
            match self.bytes() {
                Some(bytes) => {
                    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                // A journaled plan not loaded: what printed plans show (`crate::secrets`).
                None => {
                    use serde::ser::SerializeMap;
                    let mut m = s.serialize_map(Some(2))?;
                    m.serialize_entry("sha256", &hex::encode(self.sha256))?;
                    m.serialize_entry("bytes", &self.len)?;
                    m.end()
                }
            }
        } else {
            (self.sha256, self.len).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for FileContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FileContent, D::Error> {
        use base64::Engine;
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(serde::de::Error::custom)?;
            Ok(FileContent::new(bytes))
        } else {
            let (sha256, len) = <([u8; 32], u64)>::deserialize(d)?;
            Ok(FileContent {
                sha256,
                len,
                bytes: None,
            })
        }
    }
}

/// What a [`StepSpec::Service`] step does to the service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceAction {
    Stop,
    Start,
}

impl StepSpec {
    /// The files and folders among [`StepSpec::paths`]: not a database step's connection
    /// key, which is no file name and may hold a password.
    pub fn file_paths(&self) -> Vec<&Path> {
        match self {
            StepSpec::DatabaseBackup { backup_dir, .. } => vec![backup_dir],
            StepSpec::DeleteRows { .. }
            | StepSpec::DatabaseVersionUpgrade { .. }
            | StepSpec::Service { .. }
            | StepSpec::WindowsService { .. } => Vec::new(),
            _ => self.paths(),
        }
    }

    /// Every path the step reads or changes (used to batch only independent steps).
    /// The connection string of the database this step changes, if it changes one.
    pub fn database(&self) -> Option<&str> {
        match self {
            StepSpec::DatabaseBackup { connection, .. }
            | StepSpec::DeleteRows { connection, .. }
            | StepSpec::DatabaseVersionUpgrade { connection, .. } => Some(connection),
            _ => None,
        }
    }

    pub fn paths(&self) -> Vec<&Path> {
        match self {
            StepSpec::Rename { from, to }
            | StepSpec::Copy { from, to }
            | StepSpec::MoveTree { from, to } => vec![from, to],
            StepSpec::DeleteTree { path }
            | StepSpec::WriteFile { path, .. }
            | StepSpec::MakeDir { path } => vec![path],
            StepSpec::ExtractZip { archive, dest } => vec![archive, dest],
            // Steps on one database never share a batch: each intent is taken just before
            // its apply.
            StepSpec::DatabaseBackup {
                connection,
                backup_dir,
            } => vec![crate::db::conn_key(connection), backup_dir],
            StepSpec::DeleteRows { connection, .. }
            | StepSpec::DatabaseVersionUpgrade { connection, .. } => {
                vec![crate::db::conn_key(connection)]
            }
            StepSpec::ReencryptFiles {
                folders,
                files,
                certificate,
            } => folders
                .iter()
                .map(PathBuf::as_path)
                // A pattern's folder: the pattern itself would not overlap the files it names.
                .chain(files.iter().map(|f| f.parent().unwrap_or(f)))
                .chain(certificate.paths())
                .collect(),
            // The empty path overlaps every path: a service step is a group of its own, so
            // no other step's intent is taken while the service may still be running.
            StepSpec::Service { .. } | StepSpec::WindowsService { .. } => vec![Path::new("")],
        }
    }
}

impl Plan {
    /// Builds a plan, numbering the steps 1..=n.
    pub fn new(
        title: impl Into<String>,
        actions: Vec<(Option<&str>, Option<&str>, StepSpec)>,
    ) -> Plan {
        let steps = actions
            .into_iter()
            .enumerate()
            .map(|(i, (seed, note, action))| PlannedStep {
                id: i as u32 + 1,
                seed: seed.map(str::to_string),
                note: note.map(str::to_string),
                action,
            })
            .collect();
        Plan {
            title: title.into(),
            steps,
        }
    }

    /// SHA-256 of the plan's journal encoding: what the run-started record commits to.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(codec().serialize(self).expect("plan is serializable")).into()
    }

    pub fn from_json(file: &Path, text: &str) -> Result<Plan, crate::Error> {
        let plan: Plan = serde_json::from_str(text).map_err(|e| {
            crate::Error::Usage(format!(
                "{}:{}:{}: not a valid plan: {e}",
                file.display(),
                e.line(),
                e.column()
            ))
        })?;
        for (i, s) in plan.steps.iter().enumerate() {
            if s.id != i as u32 + 1 {
                return Err(crate::Error::Usage(format!(
                    "{}: step {} has id {}; ids must be 1, 2, 3... in order",
                    file.display(),
                    i + 1,
                    s.id
                )));
            }
        }
        plan.check_size()
            .map_err(|e| crate::Error::Usage(format!("{}: {e}", file.display())))?;
        Ok(plan)
    }

    /// A plan is stored whole in one journal record, which holds at most
    /// `journal::record::MAX_BODY` bytes: a larger plan is refused here (an error naming its
    /// size), never met later as a failure to encode it.
    pub fn check_size(&self) -> Result<(), String> {
        let limit = crate::journal::record::MAX_BODY;
        match codec().serialized_size(self) {
            Ok(n) if n <= limit => Ok(()),
            Ok(n) => Err(format!(
                "the plan is {n} bytes once encoded, over the {} MiB a journal record holds",
                limit >> 20
            )),
            Err(_) => Err(format!(
                "the plan is over the {} MiB a journal record holds",
                limit >> 20
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        Plan::new(
            "t",
            vec![
                (
                    Some("3.2"),
                    None,
                    StepSpec::Rename {
                        from: "a".into(),
                        to: "b".into(),
                    },
                ),
                (
                    None,
                    None,
                    StepSpec::WriteFile {
                        path: "c".into(),
                        content: vec![0, 255, 10].into(),
                    },
                ),
            ],
        )
    }

    #[test]
    fn plan_round_trips_through_json_and_bincode() {
        let p = sample();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"write-file\""), "{json}");
        assert!(json.contains("\"AP8K\""), "content is base64: {json}");
        assert_eq!(Plan::from_json(Path::new("p.json"), &json).unwrap(), p);
        let bin = codec().serialize(&p).unwrap();
        let back = codec().deserialize::<Plan>(&bin).unwrap();
        assert_eq!(back, p);
        // The journal encoding holds the content's digest and length, never its bytes.
        let StepSpec::WriteFile { content, .. } = &back.steps[1].action else {
            panic!("{back:?}")
        };
        assert_eq!(content.bytes(), None);
        assert_eq!(content.len, 3);
        assert!(
            !format!("{back:?}").contains("[0, 255"),
            "Debug shows no bytes"
        );
        // Not loaded, it prints as its digest, which is no runnable plan.
        let printed = serde_json::to_string(&back).unwrap();
        assert!(printed.contains(&hex::encode(content.sha256)), "{printed}");
        let e = Plan::from_json(Path::new("p.json"), &printed)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.json:1:"), "{e}");
        let mut loaded = content.clone();
        assert!(
            loaded.load(vec![0, 255, 11]).is_err(),
            "other bytes refused"
        );
        loaded.load(vec![0, 255, 10]).unwrap();
        assert_eq!(loaded.bytes(), Some(&[0u8, 255, 10][..]));
        assert_ne!(p.hash(), sample_with_other_content().hash());
    }

    fn sample_with_other_content() -> Plan {
        let mut p = sample();
        p.steps[1].action = StepSpec::WriteFile {
            path: "c".into(),
            content: vec![1].into(),
        };
        p
    }

    #[test]
    fn bad_plan_json_names_file_line_and_column() {
        let e = Plan::from_json(Path::new("p.json"), "{\"title\": \"x\",\n \"steps\": [1]}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.json:2:"), "{e}");
        let e = Plan::from_json(
            Path::new("p.json"),
            r#"{"title":"x","steps":[{"id":2,"action":{"delete-tree":{"path":"a"}}}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ids must be"), "{e}");
    }
}
