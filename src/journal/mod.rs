//! The write-ahead journal: a hash chain of checksummed records in a sled database.
//!
//! Principal types: [`Journal`] (open + verify, append, append a batch), [`Record`] and
//! [`Phase`] (in `record`), [`JournalError`]. The journal knows nothing of steps or plans: it
//! stores typed records with opaque payloads that the engine encodes.
//!
//! Order of things on `append`: encode and hash the frame, insert it into the `records` tree,
//! `Db::flush` (sled writes its log and calls `sync_file_range`), then `fdatasync` sled's data
//! file (sync_file_range flushes neither the drive cache nor metadata), then return. Only then
//! does the caller act. The exact protocol and its crash cases: `journal-format.md`.

pub mod failpoint;
mod head;
pub mod record;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use record::{FrameError, Hash, Phase, Record, RecordBody};

use crate::durable_fs;

/// Name and value of the format marker in the `meta` tree.
const FORMAT_KEY: &[u8] = b"format";
const FORMAT_VALUE: &[u8] = b"usercube-upgrade-journal/1";
const RECORDS_TREE: &str = "records";
const META_TREE: &str = "meta";
/// The sled sub-folder inside the journal directory.
pub const STORE_DIR: &str = "store";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "journal {dir}: record {seq} is corrupt ({reason}); the last good record is {last_good}"
    )]
    Corrupt {
        dir: PathBuf,
        seq: u64,
        last_good: u64,
        reason: String,
    },
    #[error("journal {dir}: the store reports corruption ({detail}); no record after {last_good} can be trusted")]
    StoreCorrupt {
        dir: PathBuf,
        last_good: u64,
        detail: String,
    },
    #[error("journal {dir}: {what}: {source}")]
    Io {
        dir: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("journal {dir}: sled: {source}")]
    Store { dir: PathBuf, source: sled::Error },
    #[error("journal {dir}: an earlier write or fsync failed; refusing further work (restart to recover)")]
    Poisoned { dir: PathBuf },
}

impl JournalError {
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            JournalError::Corrupt { .. } | JournalError::StoreCorrupt { .. }
        )
    }
}

/// A record to append; the journal fills in sequence number, time and chain hash.
#[derive(Clone, Debug)]
pub struct NewRecord {
    pub run_id: [u8; 16],
    pub step: Option<u32>,
    pub phase: Phase,
    pub payload: Vec<u8>,
}

pub struct Journal {
    dir: PathBuf,
    db: sled::Db,
    records: sled::Tree,
    /// sled's data file, kept open to fdatasync after every flush.
    data_file: File,
    /// High-water mark outside sled (see `head`).
    head: head::Head,
    /// Other store files (snapshots, blobs: sled writes them without fsync) as last synced.
    synced: HashMap<PathBuf, (u64, SystemTime)>,
    chain: Vec<Record>,
    poisoned: bool,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and verifies the whole chain.
    ///
    /// One case is repaired rather than refused: a store that cannot be read (sled has open
    /// reports of corruption after a crash) while the head file holds no mark. No append has
    /// ever completed then, and the engine acts only after an append completes, so nothing
    /// was done on the strength of that store: it is moved aside (`store.damaged-<ms>`, kept
    /// for inspection) and a new one is created.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        match Self::open_once(dir) {
            Err(e) if (e.is_corruption() || matches!(e, JournalError::Store { .. })) => {
                let head = dir.join("head");
                let unmarked = head::Head::open(&head)
                    .map(|(_, mark)| mark.is_none())
                    .unwrap_or(false);
                let store = dir.join(STORE_DIR);
                if !store.exists() {
                    return Err(e);
                }
                if !unmarked {
                    return Self::open_without_snapshots(dir, e);
                }
                let aside = dir.join(format!("{STORE_DIR}.damaged-{}", now_ms()));
                durable_fs::rename(&store, &aside).map_err(|source| JournalError::Io {
                    dir: dir.to_path_buf(),
                    what: "moving a damaged, never-used store aside",
                    source,
                })?;
                eprintln!(
                    "warning: the journal store in {} could not be read ({e}), but no append had ever completed in it (nothing was done on its strength); moved aside to {} and started anew",
                    dir.display(),
                    aside.display()
                );
                Self::open_once(dir)
            }
            other => other,
        }
    }

    /// sled sometimes cannot read its own store after a kill (open upstream reports). Its
    /// snapshots are only a shortcut over its log: keep a copy of the store for inspection,
    /// remove the snapshots and open again. The result is trusted only if it passes every
    /// check of `open_once` (checksums, chain, head mark); otherwise the first error stands.
    fn open_without_snapshots(dir: &Path, first: JournalError) -> Result<Journal, JournalError> {
        let store = dir.join(STORE_DIR);
        let copy = dir.join(format!("{STORE_DIR}.before-repair-{}", now_ms()));
        if durable_fs::copy_path(&store, &copy, &|_| {}).is_err() {
            return Err(first);
        }
        let snapshots: Vec<PathBuf> = match std::fs::read_dir(&store) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
                })
                .collect(),
            Err(_) => return Err(first),
        };
        for snap in &snapshots {
            if durable_fs::remove_path(snap).is_err() {
                return Err(first);
            }
        }
        match Self::open_once(dir) {
            Ok(journal) => {
                eprintln!(
                    "warning: the journal store in {} could not be read ({first}); it was reopened from its log without sled's snapshots and verified in full (a copy of the store as found: {})",
                    dir.display(),
                    copy.display()
                );
                Ok(journal)
            }
            Err(_) => Err(first),
        }
    }

    fn open_once(dir: &Path) -> Result<Journal, JournalError> {
        let io = |what: &'static str| {
            let dir = dir.to_path_buf();
            move |source| JournalError::Io { dir, what, source }
        };
        durable_fs::create_private_dir(dir).map_err(io("creating the journal directory"))?;
        let store = dir.join(STORE_DIR);
        let fresh = !store.exists();
        let db = open_store(&store).map_err(|e| store_error(dir, e, 0))?;
        if fresh {
            durable_fs::fsync_dir(dir).map_err(io("syncing the journal directory"))?;
        }
        // Writable: Windows flushes (FlushFileBuffers) only through a handle that may write.
        let data_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(store.join("db"))
            .map_err(io("opening the store's data file"))?;
        let (head, mark) =
            head::Head::open(&dir.join("head")).map_err(io("opening the head file"))?;
        let records = db
            .open_tree(RECORDS_TREE)
            .map_err(|e| store_error(dir, e, 0))?;
        let meta = db
            .open_tree(META_TREE)
            .map_err(|e| store_error(dir, e, 0))?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            db,
            records,
            data_file,
            head,
            synced: HashMap::new(),
            chain: Vec::new(),
            poisoned: false,
        };
        journal.chain = journal.verify_chain()?;
        journal.check_head(mark)?;
        match meta.get(FORMAT_KEY).map_err(|e| store_error(dir, e, 0))? {
            Some(v) if v.as_ref() == FORMAT_VALUE => {}
            Some(v) => {
                return Err(JournalError::Corrupt {
                    dir: dir.to_path_buf(),
                    seq: 0,
                    last_good: 0,
                    reason: format!("unknown format marker {:?}", String::from_utf8_lossy(&v)),
                })
            }
            None if journal.chain.is_empty() => {
                meta.insert(FORMAT_KEY, FORMAT_VALUE)
                    .map_err(|e| store_error(dir, e, 0))?;
                journal.make_durable()?;
            }
            None => {
                return Err(JournalError::Corrupt {
                    dir: dir.to_path_buf(),
                    seq: 1,
                    last_good: 0,
                    reason: "format marker missing".into(),
                })
            }
        }
        Ok(journal)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record, verified, in sequence order (StepData payloads empty: `read_payload`).
    pub fn records(&self) -> &[Record] {
        &self.chain
    }

    pub fn last(&self) -> Option<&Record> {
        self.chain.last()
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&mut self, rec: NewRecord) -> Result<&Record, JournalError> {
        self.append_batch(vec![rec])?;
        Ok(self.chain.last().expect("just appended"))
    }

    /// Appends several records and makes them all durable with one flush + fdatasync.
    pub fn append_batch(&mut self, recs: Vec<NewRecord>) -> Result<(), JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        if recs.is_empty() {
            return Ok(());
        }
        let count = recs.len() as u64;
        let now = now_ms();
        let mut batch = sled::Batch::default();
        let mut new = Vec::with_capacity(recs.len());
        let (mut seq, mut prev) = match self.chain.last() {
            Some(r) => (r.seq, r.hash),
            None => (0, [0u8; 32]),
        };
        for r in recs {
            seq += 1;
            let body = RecordBody {
                seq,
                run_id: r.run_id,
                step: r.step,
                phase: r.phase,
                time_ms: now,
                prev_hash: prev,
                payload: r.payload,
            };
            let (frame, hash) = body.encode();
            batch.insert(&seq.to_be_bytes(), frame);
            prev = hash;
            new.push(in_memory(Record { body, hash }));
        }
        if let Err(e) = self.records.apply_batch(batch) {
            self.poisoned = true;
            return Err(store_error(&self.dir, e, self.last_seq()));
        }
        self.make_durable()?;
        let last = new.last().expect("batch is not empty");
        if let Err(source) = self.head.write(last.seq, &last.hash) {
            self.poisoned = true;
            return Err(JournalError::Io {
                dir: self.dir.clone(),
                what: "writing the head file",
                source,
            });
        }
        tracing::debug!(last = last.seq, count, "journal records durable");
        self.chain.extend(new);
        failpoint::reached(count);
        Ok(())
    }

    pub fn last_seq(&self) -> u64 {
        self.chain.last().map_or(0, |r| r.seq)
    }

    /// sled flush, then fdatasync of its data file. On any error the journal is poisoned:
    /// the state of the disk is unknown, so nothing more is done until the next open.
    fn make_durable(&mut self) -> Result<(), JournalError> {
        if let Err(e) = self.db.flush() {
            self.poisoned = true;
            return Err(store_error(&self.dir, e, self.last_seq()));
        }
        if let Err(source) = self.data_file.sync_data() {
            self.poisoned = true;
            return Err(JournalError::Io {
                dir: self.dir.clone(),
                what: "fdatasync of the store's data file",
                source,
            });
        }
        if let Err(source) = self.sync_side_files() {
            self.poisoned = true;
            return Err(JournalError::Io {
                dir: self.dir.clone(),
                what: "fsync of the store's snapshot and blob files",
                source,
            });
        }
        Ok(())
    }

    /// sled writes snapshots (`snap.*`) and large values (`blobs/*`) without any fsync:
    /// fsync each one that is new or changed since the last durable point, and the folder
    /// that gained an entry.
    fn sync_side_files(&mut self) -> std::io::Result<()> {
        let store = self.dir.join(STORE_DIR);
        for dir in [store.clone(), store.join("blobs")] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut new_entry = false;
            // sled's background threads remove superseded blobs and snapshots at any time:
            // a file gone between the listing and its fsync needs no fsync.
            let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
            for e in entries {
                let e = e?;
                let meta = match e.metadata() {
                    Ok(m) => m,
                    Err(err) if gone(&err) => continue,
                    Err(err) => return Err(err),
                };
                if !meta.is_file() || e.file_name() == "db" {
                    continue;
                }
                let stamp = (meta.len(), meta.modified()?);
                let path = e.path();
                if self.synced.get(&path) != Some(&stamp) {
                    match durable_fs::fsync_file(&path) {
                        Ok(()) => {}
                        Err(err) if gone(&err) => continue,
                        Err(err) => return Err(err),
                    }
                    new_entry |= self.synced.insert(path, stamp).is_none();
                }
            }
            if new_entry {
                durable_fs::fsync_dir(&dir)?;
            }
        }
        Ok(())
    }

    fn verify_chain(&self) -> Result<Vec<Record>, JournalError> {
        let mut chain: Vec<Record> = Vec::new();
        for item in self.records.iter() {
            let last_good = chain.last().map_or(0, |r| r.seq);
            let (key, value) = item.map_err(|e| store_error(&self.dir, e, last_good))?;
            let expected = last_good + 1;
            let corrupt = |seq: u64, reason: String| JournalError::Corrupt {
                dir: self.dir.clone(),
                seq,
                last_good,
                reason,
            };
            let key_seq = match <[u8; 8]>::try_from(key.as_ref()) {
                Ok(k) => u64::from_be_bytes(k),
                Err(_) => {
                    return Err(corrupt(
                        expected,
                        format!("malformed key {:?}", key.as_ref()),
                    ))
                }
            };
            if key_seq != expected {
                return Err(corrupt(
                    expected,
                    format!("record missing (next stored is {key_seq})"),
                ));
            }
            let rec = record::decode(&value).map_err(|e| corrupt(key_seq, e.to_string()))?;
            if rec.seq != key_seq {
                return Err(corrupt(
                    key_seq,
                    format!("stored under key {key_seq} but says {}", rec.seq),
                ));
            }
            let prev = chain.last().map_or([0u8; 32], |r| r.hash);
            if rec.prev_hash != prev {
                return Err(corrupt(
                    key_seq,
                    "hash chain broken: previous-record hash differs".into(),
                ));
            }
            chain.push(in_memory(rec));
        }
        Ok(chain)
    }

    /// The chain must reach the head file's mark, with the same hash there.
    fn check_head(&self, mark: Option<(u64, Hash)>) -> Result<(), JournalError> {
        let last = self.last_seq();
        let corrupt = |seq, last_good, reason| JournalError::Corrupt {
            dir: self.dir.clone(),
            seq,
            last_good,
            reason,
        };
        match mark {
            // No valid slot: the process stopped between the first flush and the first head
            // write (nothing can have acted yet: actions wait for the head write).
            None => Ok(()),
            Some((seq, _)) if seq > last => Err(corrupt(
                last + 1,
                last,
                format!(
                    "missing: the store lost records {}..={seq}, which were durable (head file)",
                    last + 1
                ),
            )),
            Some((seq, hash)) if seq > 0 && self.chain[(seq - 1) as usize].hash != hash => {
                Err(corrupt(
                    seq,
                    seq - 1,
                    "its hash differs from the one the head file recorded".into(),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// The payload of record `seq`, read back from the store and checked against the hash
    /// verified at open (StepData payloads are not kept in memory).
    pub fn read_payload(&self, seq: u64) -> Result<Vec<u8>, JournalError> {
        let last_good = seq.saturating_sub(1);
        let corrupt = |reason: String| JournalError::Corrupt {
            dir: self.dir.clone(),
            seq,
            last_good,
            reason,
        };
        let known = self
            .chain
            .get((seq as usize).wrapping_sub(1))
            .filter(|r| r.seq == seq)
            .ok_or_else(|| corrupt("no such record".into()))?;
        let value = self
            .records
            .get(seq.to_be_bytes())
            .map_err(|e| store_error(&self.dir, e, last_good))?
            .ok_or_else(|| corrupt("record vanished from the store".into()))?;
        let rec = record::decode(&value).map_err(|e| corrupt(e.to_string()))?;
        if rec.hash != known.hash {
            return Err(corrupt(
                "record changed since the journal was opened".into(),
            ));
        }
        Ok(rec.body.payload)
    }
}

/// Opens sled. Across processes the root lock already excludes a second user; within one
/// process, sled's file lock can outlive a closed `Db` for a moment (its threads drop their
/// handles asynchronously, later still on a loaded machine), so a lock refusal is retried
/// for up to 10 s.
fn open_store(store: &Path) -> sled::Result<sled::Db> {
    let config = sled::Config::new()
        .path(store)
        // No background flusher: every durable point is ours, explicit, and counted.
        .flush_every_ms(None)
        // A small page cache: row before-images must not pile up in memory.
        .cache_capacity(16 * 1024 * 1024);
    let mut tries = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock && tries < 500 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// What the journal keeps in memory of a record: everything but bulky StepData payloads
/// (row before-images), which `read_payload` fetches when needed. Memory stays flat in the
/// number of rows a step saves.
fn in_memory(mut rec: Record) -> Record {
    if rec.phase == Phase::StepData {
        rec.body.payload = Vec::new();
    }
    rec
}

fn store_error(dir: &Path, e: sled::Error, last_good: u64) -> JournalError {
    match e {
        sled::Error::Corruption { .. } => JournalError::StoreCorrupt {
            dir: dir.to_path_buf(),
            last_good,
            detail: e.to_string(),
        },
        other => JournalError::Store {
            dir: dir.to_path_buf(),
            source: other,
        },
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Test support: rewrites the raw stored value of record `seq`, bypassing every check,
/// so tests can build torn, corrupt and re-chained journals. Never used by the engine.
pub fn tamper_raw(dir: &Path, seq: u64, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) -> sled::Result<()> {
    let db = open_store(&dir.join(STORE_DIR))?;
    let tree = db.open_tree(RECORDS_TREE)?;
    let old = tree
        .get(seq.to_be_bytes())?
        .map(|v| v.to_vec())
        .unwrap_or_default();
    tree.insert(seq.to_be_bytes(), edit(old))?;
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(phase: Phase, payload: &[u8]) -> NewRecord {
        NewRecord {
            run_id: [1; 16],
            step: Some(1),
            phase,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn appended_records_survive_reopen_with_a_valid_chain() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            j.append(rec(Phase::RunStarted, b"plan")).unwrap();
            j.append_batch(vec![
                rec(Phase::StepIntent, b"a"),
                rec(Phase::StepDone, b"b"),
            ])
            .unwrap();
        }
        let j = Journal::open(dir.path()).unwrap();
        let phases: Vec<_> = j.records().iter().map(|r| (r.seq, r.phase)).collect();
        assert_eq!(j.read_payload(2).unwrap(), b"a");
        assert_eq!(
            phases,
            vec![
                (1, Phase::RunStarted),
                (2, Phase::StepIntent),
                (3, Phase::StepDone)
            ]
        );
        assert_eq!(j.records()[2].prev_hash, j.records()[1].hash);
        assert_eq!(j.records()[0].prev_hash, [0; 32]);
    }

    #[test]
    fn step_data_payloads_are_read_back_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append(rec(Phase::StepData, &[5u8; 1000])).unwrap();
        assert!(j.records()[0].payload.is_empty());
        assert_eq!(j.read_payload(1).unwrap(), vec![5u8; 1000]);
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.records()[0].payload.is_empty());
        assert_eq!(j.read_payload(1).unwrap(), vec![5u8; 1000]);
        assert!(j.read_payload(2).is_err());
    }

    #[test]
    fn journal_directory_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("j");
        assert!(!crate::platform::is_private(dir.path()).unwrap());
        Journal::open(&jdir).unwrap();
        assert!(crate::platform::is_private(&jdir).unwrap());
    }

    fn three_records(dir: &Path) {
        let mut j = Journal::open(dir).unwrap();
        for p in [Phase::RunStarted, Phase::StepIntent, Phase::StepDone] {
            j.append(rec(p, b"payload")).unwrap();
        }
    }

    /// Opening must fail naming record `seq`, `last_good`, and a reason containing `needle`.
    fn assert_corrupt(dir: &Path, seq: u64, last_good: u64, needle: &str) {
        match Journal::open(dir) {
            Err(JournalError::Corrupt {
                seq: s,
                last_good: g,
                reason,
                ..
            }) => {
                assert_eq!((s, g), (seq, last_good), "{reason}");
                assert!(reason.contains(needle), "{reason}");
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("corrupt journal opened"),
        }
    }

    #[test]
    fn flipped_byte_names_the_record_and_last_good() {
        let dir = tempfile::tempdir().unwrap();
        three_records(dir.path());
        tamper_raw(dir.path(), 2, |mut v| {
            v[20] ^= 1;
            v
        })
        .unwrap();
        assert_corrupt(dir.path(), 2, 1, "SHA-256");
    }

    #[test]
    fn torn_last_record_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        three_records(dir.path());
        tamper_raw(dir.path(), 3, |v| v[..v.len() / 2].to_vec()).unwrap();
        assert_corrupt(dir.path(), 3, 2, "torn");
    }

    #[test]
    fn rehashed_record_with_wrong_prev_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        three_records(dir.path());
        tamper_raw(dir.path(), 2, |v| {
            let mut body = record::decode(&v).unwrap().body;
            body.payload = b"forged".to_vec();
            body.prev_hash = [7; 32];
            body.encode().0
        })
        .unwrap();
        assert_corrupt(dir.path(), 2, 1, "chain");
    }

    #[test]
    fn forged_record_breaks_the_next_link() {
        // A record re-hashed consistently with its own frame is caught by its successor.
        let dir = tempfile::tempdir().unwrap();
        three_records(dir.path());
        tamper_raw(dir.path(), 2, |v| {
            let mut body = record::decode(&v).unwrap().body;
            body.payload = b"forged".to_vec();
            body.encode().0
        })
        .unwrap();
        assert_corrupt(dir.path(), 3, 2, "");
    }
}

#[cfg(test)]
mod repair_tests {
    use super::*;

    fn damage_store(dir: &Path) {
        // Garbage in sled's config makes it refuse to open the store.
        std::fs::write(dir.join(STORE_DIR).join("conf"), b"\x00garbage\xff").unwrap();
    }

    #[test]
    fn a_damaged_store_that_never_completed_an_append_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        drop(Journal::open(dir.path()).unwrap());
        damage_store(dir.path());
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.records().len(), 0);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("store.damaged-")
            })
            .count();
        assert_eq!(aside, 1);
        j.append(NewRecord {
            run_id: [1; 16],
            step: None,
            phase: Phase::RunStarted,
            payload: vec![],
        })
        .unwrap();
    }

    #[test]
    fn a_damaged_store_after_a_completed_append_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            j.append(NewRecord {
                run_id: [1; 16],
                step: None,
                phase: Phase::RunStarted,
                payload: vec![],
            })
            .unwrap();
        }
        damage_store(dir.path());
        match Journal::open(dir.path()) {
            Err(e) => assert!(
                e.is_corruption() || matches!(e, JournalError::Store { .. }),
                "{e}"
            ),
            Ok(j) => panic!("damaged store opened with {} records", j.records().len()),
        }
        assert!(
            dir.path().join(STORE_DIR).exists(),
            "a used store is never moved aside"
        );
    }
}
