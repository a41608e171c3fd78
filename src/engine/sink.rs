//! The journal as a step sees it: data a step saves before its side effect (for example row
//! before-images) and reads back for probe and undo.
//!
//! Each saved payload is written to its own file under `<journal>/data/<run>/<step>/`, named
//! by its SHA-256; the journal gets a small StepData record holding that hash and the length.
//! `sync` makes the files written since the last sync durable with one `syncfs` (a step may
//! save thousands of small records: one fsync each cost seconds), fsyncs the folder, then
//! makes the records durable — so a record never names a file that is not durable, and sled
//! never holds bulk data (its memory use grows with what it stores). Reading back checks
//! length and hash: a damaged file is reported, never trusted.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::payload::{self, DataRef};
use crate::durable_fs;
use crate::journal::{Journal, NewRecord, Phase};
use crate::manifest::Manifest;
use crate::steps::{self, StepError, StepJournal};

/// Records saved but not yet durable are kept here; more than this many are flushed early.
const MAX_PENDING: usize = 64;

pub struct JournalSink<'a> {
    journal: &'a RefCell<Journal>,
    /// `<journal>/data/<run>/<step>`.
    dir: PathBuf,
    run_id: [u8; 16],
    step: u32,
    /// Each with the data file it refers to, written but not yet synced.
    pending: RefCell<Vec<(NewRecord, PathBuf)>>,
    /// The installation root and the run's kept-aside folder under it (`None`: the audit,
    /// which only reads).
    keep: Option<(PathBuf, PathBuf)>,
}

impl<'a> JournalSink<'a> {
    pub fn new(
        journal: &'a RefCell<Journal>,
        dir: PathBuf,
        run_id: [u8; 16],
        step: u32,
        keep: Option<(PathBuf, PathBuf)>,
    ) -> JournalSink<'a> {
        JournalSink {
            journal,
            dir,
            run_id,
            step,
            pending: RefCell::new(Vec::new()),
            keep,
        }
    }

    fn file(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(sha256))
    }
}

impl JournalSink<'_> {
    /// Records (durably) that `what` was saved into `to` before the rollback discarded it:
    /// a new file, so destroying nothing, recorded once it exists (a crash before the record
    /// leaves an unrecorded copy, which is kept; the next rollback takes another).
    pub fn record_kept(&self, what: &str, to: &Path) -> steps::Result<()> {
        let (files, bytes) = match to.metadata() {
            Ok(m) => (1, m.len()),
            Err(_) => (1, 0), // on the database server
        };
        let shown = match &self.keep {
            Some((root, _)) => to.strip_prefix(root).unwrap_or(to).to_path_buf(),
            None => to.to_path_buf(),
        };
        self.append_kept(&payload::KeptAside {
            from: PathBuf::from(what),
            to: shown,
            files,
            bytes,
        })
    }

    /// Appends a `kept-aside` record (durable when it returns).
    fn append_kept(&self, record: &payload::KeptAside) -> steps::Result<()> {
        self.journal
            .borrow_mut()
            .append(NewRecord {
                run_id: self.run_id,
                step: Some(self.step),
                phase: Phase::KeptAside,
                payload: payload::encode(record),
            })
            .map(|_| ())
            .map_err(journal_error)
    }
}

/// `path`, or the first of `path~2`, `path~3`, ... that does not exist: a second thing kept
/// aside at the same place never replaces the first.
fn free_name(path: &Path) -> PathBuf {
    let mut candidate = path.to_path_buf();
    let mut n = 2;
    while candidate.symlink_metadata().is_ok() {
        let mut name = path.as_os_str().to_os_string();
        name.push(format!("~{n}"));
        candidate = PathBuf::from(name);
        n += 1;
    }
    candidate
}

/// A journal error: a corruption keeps its kind (exit 3).
fn journal_error(e: crate::journal::JournalError) -> StepError {
    if e.is_corruption() {
        StepError::Corrupt(format!("journal: {e}"))
    } else {
        StepError::Refused(format!("journal: {e}"))
    }
}

impl StepJournal for JournalSink<'_> {
    fn save(&self, data: Vec<u8>) -> steps::Result<()> {
        let sha256: [u8; 32] = Sha256::digest(&data).into();
        durable_fs::create_private_dir_all(&self.dir).map_err(steps::io("creating", &self.dir))?;
        let path = self.file(&sha256);
        // The same payload saved again (a command run twice with the same output) names the
        // same file, which an earlier durable record may use: never truncate it, only write
        // it when it is missing or damaged (rewriting can then only repair it).
        let intact = std::fs::read(&path).is_ok_and(|b| Sha256::digest(&b)[..] == sha256);
        if !intact {
            durable_fs::write_private_unsynced(&path, &data).map_err(steps::io("saving", &path))?;
        }
        let reference = DataRef {
            sha256,
            len: data.len() as u64,
        };
        let full = {
            let mut p = self.pending.borrow_mut();
            p.push((
                NewRecord {
                    run_id: self.run_id,
                    step: Some(self.step),
                    phase: Phase::StepData,
                    payload: payload::encode(&reference),
                },
                path,
            ));
            p.len() >= MAX_PENDING
        };
        if full {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&self) -> steps::Result<()> {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        if batch.is_empty() {
            return Ok(());
        }
        // Every pending record's file was written since the last sync.
        durable_fs::sync_files(batch.iter().map(|(_, f)| f.as_path()))
            .map_err(steps::io("syncing", &self.dir))?;
        durable_fs::fsync_dir(&self.dir).map_err(steps::io("syncing", &self.dir))?;
        self.journal
            .borrow_mut()
            .append_batch(batch.into_iter().map(|(r, _)| r).collect())
            .map_err(journal_error)
    }

    fn keep_aside(&self, path: &Path) -> steps::Result<PathBuf> {
        let Some((root, kept)) = &self.keep else {
            return Err(StepError::Refused(format!(
                "{} stands in the way and is not what the run wrote; move it away by hand",
                path.display()
            )));
        };
        let rel = path.strip_prefix(root).map_err(|_| {
            StepError::Refused(format!(
                "{} stands in the way, is not what the run wrote and is outside {}; move it away by hand",
                path.display(),
                root.display()
            ))
        })?;
        let dest = free_name(&kept.join(rel));
        let m = Manifest::of(path).map_err(steps::io("reading", path))?;
        let record = payload::KeptAside {
            from: rel.to_path_buf(),
            to: dest.strip_prefix(root).unwrap_or(&dest).to_path_buf(),
            files: m.file_count(),
            bytes: m.total_bytes(),
        };
        // Data saved before stays ahead of this record; the record is durable before the move.
        self.sync()?;
        self.append_kept(&record)?;
        if let Some(parent) = dest.parent() {
            durable_fs::create_dir_all(parent).map_err(steps::io("creating", parent))?;
        }
        durable_fs::move_path(path, &dest, durable_fs::Report::NONE)
            .map_err(steps::io("keeping aside", path))?;
        Ok(dest)
    }

    fn kept_aside_dir(&self) -> Option<PathBuf> {
        self.keep.as_ref().map(|(_, kept)| kept.clone())
    }

    fn saved(&self, f: &mut dyn FnMut(&[u8]) -> steps::Result<()>) -> steps::Result<()> {
        let journal = self.journal.borrow();
        for r in journal.records() {
            if r.phase != Phase::StepData || r.run_id != self.run_id || r.step != Some(self.step) {
                continue;
            }
            let reference: DataRef = payload::decode(r.seq, &r.payload)
                .map_err(|e| StepError::Corrupt(e.to_string()))?;
            let path = self.file(&reference.sha256);
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StepError::Corrupt(format!(
                        "{}: saved data missing (journal record {} names it)",
                        path.display(),
                        r.seq
                    )))
                }
                Err(e) => return Err(steps::io("reading saved data", &path)(e)),
            };
            let sha256: [u8; 32] = Sha256::digest(&data).into();
            if data.len() as u64 != reference.len || sha256 != reference.sha256 {
                return Err(StepError::Corrupt(format!(
                    "{}: saved data damaged (journal record {} expects {} bytes with SHA-256 {})",
                    path.display(),
                    r.seq,
                    reference.len,
                    hex::encode(reference.sha256)
                )));
            }
            f(&data)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_saved_again_never_rewrites_an_intact_file_and_repairs_a_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let journal = RefCell::new(Journal::open(&dir.path().join("journal")).unwrap());
        let sink = JournalSink::new(&journal, dir.path().join("data"), [7; 16], 1, None);
        let all = |sink: &JournalSink| {
            let mut v = Vec::new();
            sink.saved(&mut |b| {
                v.push(b.to_vec());
                Ok(())
            })
            .unwrap();
            v
        };
        sink.save(b"same".to_vec()).unwrap();
        sink.sync().unwrap();
        let file = sink.file(&Sha256::digest(b"same").into());
        let stamp = |f: &std::path::Path| {
            let m = std::fs::metadata(f).unwrap();
            (
                crate::platform::file_identity(f).unwrap(),
                m.modified().unwrap(),
                m.len(),
            )
        };
        let before = stamp(&file);
        // Past the filesystem's timestamp granularity, so that a rewrite would show.
        std::thread::sleep(std::time::Duration::from_millis(50));
        sink.save(b"same".to_vec()).unwrap();
        sink.save(b"other".to_vec()).unwrap();
        sink.sync().unwrap();
        assert_eq!(before, stamp(&file), "an intact file is not written again");
        assert_eq!(all(&sink), [&b"same"[..], b"same", b"other"]);
        // Damaged (say, torn by a crash before its record was durable): saving the same
        // payload writes it again.
        std::fs::write(&file, b"sa").unwrap();
        sink.save(b"same".to_vec()).unwrap();
        sink.sync().unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"same");
        assert_eq!(all(&sink).len(), 4);
    }

    /// Saved data damaged on disk while a step needs it: the step gets a typed corruption
    /// (not a refusal), which exits 3 through the crate's error.
    #[test]
    fn damaged_saved_data_is_a_typed_corruption_that_exits_3() {
        let dir = tempfile::tempdir().unwrap();
        let journal = RefCell::new(Journal::open(&dir.path().join("journal")).unwrap());
        let sink = JournalSink::new(&journal, dir.path().join("data"), [7; 16], 1, None);
        sink.save(b"before-image".to_vec()).unwrap();
        sink.sync().unwrap();
        std::fs::write(
            sink.file(&Sha256::digest(b"before-image").into()),
            b"damaged",
        )
        .unwrap();
        let e = sink.saved(&mut |_| Ok(())).unwrap_err();
        assert!(
            matches!(&e, StepError::Corrupt(m) if m.contains("saved data damaged")),
            "{e:?}"
        );
        let e = crate::Error::from(e);
        assert_eq!(e.exit_code(), crate::error::EXIT_CORRUPT, "{e}");
        assert!(e.corruption().is_some());
    }
}
