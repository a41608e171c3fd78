//! The write-ahead journal: a hash chain of checksummed records, kept in an append-only
//! record log the journal owns (`log`) and served by a sled database.
//!
//! Principal types: [`Journal`] (open + verify + repair, append, append a batch), [`Record`]
//! and [`Phase`] (in `record`), [`JournalError`]. The journal knows nothing of steps or plans:
//! it stores typed records with opaque payloads that the engine encodes.
//!
//! Order of things on `append`: encode and hash the frames, append them to the record log as
//! one entry and `fdatasync` it (the durable point: the one fsync of an append), then insert
//! them into sled's `records` tree and `Db::flush` (no fsync: sled is rebuilt from the log
//! whenever it is behind or damaged), then return. Only then does the caller act.
//!
//! Order of things on `open`: convert a journal of an older build (head file, no log), verify
//! the log (checksums, chain), compare sled with it, rebuild sled from the log when it is
//! unreadable, behind or different (warning + a line in `repairs`), drop the log's torn tail.
//! The exact protocol and its crash cases: `journal-format.md`.

pub mod failpoint;
pub mod log;
pub mod record;

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use record::{Hash, Phase, Record, RecordBody};

use crate::durable_fs;
use log::{FileStorage, Log, LogError, LOG_FILE};

/// Name and value of the format marker in the `meta` tree.
const FORMAT_KEY: &[u8] = b"format";
const FORMAT_VALUE: &[u8] = b"usercube-upgrade-journal/1";
const RECORDS_TREE: &str = "records";
const META_TREE: &str = "meta";
/// The sled sub-folder inside the journal directory.
pub const STORE_DIR: &str = "store";
/// The high-water-mark file of older builds (before the record log); converted on open.
const LEGACY_HEAD: &str = "head";
/// Text lines noting every repair `open` made (store rebuilt, older journal converted).
pub const REPAIRS_FILE: &str = "repairs";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "journal {dir}: record {seq} is corrupt ({reason}); the last good record is {last_good}; `usercube-upgrade journal salvage --output FILE` writes every record that still verifies"
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
    /// The record log: the authority, and the high-water mark.
    log: Log<FileStorage>,
    chain: Vec<Record>,
    poisoned: bool,
}

/// What sled holds compared with the log.
enum StoreCheck {
    /// Same records, same hashes.
    Agrees(sled::Db, sled::Tree),
    /// sled holds records `first..=last` the log does not: they were durable in the log
    /// (sled is written only after the log's sync), so the log lost them.
    Ahead { first: u64, last: u64 },
    /// Missing, unreadable, behind or different: rebuilt from the log.
    Unusable(String),
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, verifies the record log, and makes
    /// sled agree with it (see the module documentation).
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let io = |what: &'static str| {
            let dir = dir.to_path_buf();
            move |source| JournalError::Io { dir, what, source }
        };
        durable_fs::create_private_dir(dir).map_err(io("creating the journal directory"))?;
        let log_path = dir.join(LOG_FILE);
        if !log_path.exists() && (dir.join(LEGACY_HEAD).exists() || dir.join(STORE_DIR).exists()) {
            convert_legacy(dir)?;
        }
        let (mut storage, created) =
            FileStorage::open(&log_path).map_err(io("opening the record log"))?;
        if created {
            durable_fs::fsync_dir(dir).map_err(io("syncing the journal directory"))?;
        }
        let scan = log::scan(&mut storage).map_err(|e| log_error(dir, e))?;
        let mut log = Log::new(storage);
        let (db, records) = match check_store(dir, &scan.records) {
            StoreCheck::Agrees(db, tree) => (db, tree),
            StoreCheck::Ahead { first, last } => {
                let last_good = scan.records.last().map_or(0, |r| r.seq);
                return Err(JournalError::Corrupt {
                    dir: dir.to_path_buf(),
                    seq: first,
                    last_good,
                    reason: format!(
                        "missing from the record log: the store holds records {first}..={last}, which were durable (the log was cut or damaged)"
                    ),
                });
            }
            StoreCheck::Unusable(why) => rebuild_store(dir, &scan.records, &why)?,
        };
        if let Some(torn) = log
            .drop_torn_tail(&scan)
            .map_err(io("truncating the record log's torn tail"))?
        {
            tracing::debug!(%torn, "record log: dropped a torn tail (never durable)");
        }
        Ok(Journal {
            dir: dir.to_path_buf(),
            db,
            records,
            log,
            chain: scan.records,
            poisoned: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record, verified, in sequence order, payloads included (a StepData payload is a
    /// 40-byte reference to its data file: memory stays flat in what steps save).
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

    /// Appends several records and makes them all durable with one log entry and one
    /// `fdatasync`.
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
        let mut frames = Vec::with_capacity(recs.len());
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
            frames.push(frame);
            prev = hash;
            new.push(Record { body, hash });
        }
        // The durable point: one entry, one fdatasync.
        if let Err(source) = self.log.append(&frames) {
            self.poisoned = true;
            return Err(JournalError::Io {
                dir: self.dir.clone(),
                what: "appending to the record log",
                source,
            });
        }
        // sled follows (no fsync: behind or damaged, it is rebuilt from the log on open).
        let mut batch = sled::Batch::default();
        for (r, frame) in new.iter().zip(frames) {
            batch.insert(&r.seq.to_be_bytes(), frame);
        }
        if let Err(e) = self.records.apply_batch(batch) {
            self.poisoned = true;
            return Err(store_error(&self.dir, e, self.last_seq()));
        }
        self.flush_store()?;
        let last = new.last().expect("batch is not empty");
        tracing::debug!(last = last.seq, count, "journal records durable");
        self.chain.extend(new);
        failpoint::reached(count);
        Ok(())
    }

    pub fn last_seq(&self) -> u64 {
        self.chain.last().map_or(0, |r| r.seq)
    }

    /// sled's flush (its log written, no fsync). On error the journal is poisoned: nothing
    /// more is done until the next open, which rebuilds sled from the record log.
    fn flush_store(&mut self) -> Result<(), JournalError> {
        if let Err(e) = self.db.flush() {
            self.poisoned = true;
            return Err(store_error(&self.dir, e, self.last_seq()));
        }
        Ok(())
    }
}

fn log_error(dir: &Path, e: LogError) -> JournalError {
    match e {
        LogError::Io(source) => JournalError::Io {
            dir: dir.to_path_buf(),
            what: "reading the record log",
            source,
        },
        LogError::Damaged(d) => JournalError::Corrupt {
            dir: dir.to_path_buf(),
            seq: d.seq,
            last_good: d.last_good,
            reason: d.reason,
        },
    }
}

/// Reads sled's `records` tree in key order and verifies it as a chain (rules 1-5 of
/// journal-format.md §4), payloads included.
fn verify_store_chain(dir: &Path, tree: &sled::Tree) -> Result<Vec<Record>, JournalError> {
    let mut chain: Vec<Record> = Vec::new();
    for item in tree.iter() {
        let last_good = chain.last().map_or(0, |r| r.seq);
        let (key, value) = item.map_err(|e| store_error(dir, e, last_good))?;
        let expected = last_good + 1;
        let corrupt = |seq: u64, reason: String| JournalError::Corrupt {
            dir: dir.to_path_buf(),
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
        chain.push(rec);
    }
    Ok(chain)
}

/// Opens sled and compares it with the log's records.
fn check_store(dir: &Path, log: &[Record]) -> StoreCheck {
    let store = dir.join(STORE_DIR);
    if !store.exists() {
        return StoreCheck::Unusable("the store is missing".into());
    }
    let db = match open_store(&store) {
        Ok(db) => db,
        Err(e) => return StoreCheck::Unusable(format!("sled cannot open it: {e}")),
    };
    let (tree, meta) = match (db.open_tree(RECORDS_TREE), db.open_tree(META_TREE)) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => {
            return StoreCheck::Unusable(format!("sled cannot open its trees: {e}"))
        }
    };
    let chain = match verify_store_chain(dir, &tree) {
        Ok(c) => c,
        Err(e) => return StoreCheck::Unusable(e.to_string()),
    };
    match meta.get(FORMAT_KEY) {
        Ok(Some(v)) if v.as_ref() == FORMAT_VALUE => {}
        // A store created but never given a record (the process stopped at once).
        Ok(None) if chain.is_empty() => {
            if let Err(e) = meta.insert(FORMAT_KEY, FORMAT_VALUE) {
                return StoreCheck::Unusable(format!("sled cannot write: {e}"));
            }
        }
        Ok(_) => return StoreCheck::Unusable("its format marker is missing or unknown".into()),
        Err(e) => return StoreCheck::Unusable(format!("sled cannot read its format marker: {e}")),
    }
    if let Some((i, r)) = chain
        .iter()
        .zip(log)
        .enumerate()
        .find(|(_, (s, l))| s.hash != l.hash)
        .map(|(i, (s, _))| (i, s))
    {
        return StoreCheck::Unusable(format!(
            "its record {} differs from the log's (index {i})",
            r.seq
        ));
    }
    if chain.len() > log.len() {
        return StoreCheck::Ahead {
            first: log.len() as u64 + 1,
            last: chain.len() as u64,
        };
    }
    if chain.len() < log.len() {
        return StoreCheck::Unusable(format!(
            "it is behind the log ({} of {} records)",
            chain.len(),
            log.len()
        ));
    }
    StoreCheck::Agrees(db, tree)
}

/// Moves the store aside (kept for inspection) and builds a new one from the log's records.
/// Prints a warning and notes the repair in `repairs`, except for a new, empty journal.
fn rebuild_store(
    dir: &Path,
    records: &[Record],
    why: &str,
) -> Result<(sled::Db, sled::Tree), JournalError> {
    let io = |what: &'static str| {
        let dir = dir.to_path_buf();
        move |source| JournalError::Io { dir, what, source }
    };
    let store = dir.join(STORE_DIR);
    let aside = if store.exists() {
        let aside = dir.join(format!("{STORE_DIR}.before-rebuild-{}", now_ms()));
        // Windows refuses to rename a folder whose files are open, and sled's threads may
        // hold them a moment after its Db is dropped: retry for up to 10 s.
        let mut tries = 0;
        loop {
            match durable_fs::rename(&store, &aside) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && tries < 500 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other,
            }
        }
        .map_err(io("moving the damaged store aside"))?;
        Some(aside)
    } else {
        None
    };
    let db = open_store(&store).map_err(|e| store_error(dir, e, 0))?;
    let tree = db
        .open_tree(RECORDS_TREE)
        .map_err(|e| store_error(dir, e, 0))?;
    let meta = db
        .open_tree(META_TREE)
        .map_err(|e| store_error(dir, e, 0))?;
    let mut batch = sled::Batch::default();
    for r in records {
        let (frame, hash) = r.body.encode();
        if hash != r.hash {
            return Err(JournalError::Corrupt {
                dir: dir.to_path_buf(),
                seq: r.seq,
                last_good: r.seq - 1,
                reason: "its frame does not re-encode to the same bytes".into(),
            });
        }
        batch.insert(&r.seq.to_be_bytes(), frame);
    }
    tree.apply_batch(batch)
        .map_err(|e| store_error(dir, e, 0))?;
    meta.insert(FORMAT_KEY, FORMAT_VALUE)
        .map_err(|e| store_error(dir, e, 0))?;
    db.flush().map_err(|e| store_error(dir, e, 0))?;
    if records.is_empty() && aside.is_none() {
        return Ok((db, tree));
    }
    let kept = aside.map_or_else(
        || "there was none".to_string(),
        |a| format!("kept as {}", a.display()),
    );
    let line = format!(
        "store rebuilt from the record log ({} records): {why}; the old store: {kept}",
        records.len()
    );
    crate::out::error_line(format_args!("warning: journal {}: {line}", dir.display()));
    note_repair(dir, &line).map_err(io("noting the repair in the repairs file"))?;
    Ok((db, tree))
}

/// Appends a line to `<journal>/repairs` (time in ms since the epoch, then the text).
fn note_repair(dir: &Path, line: &str) -> std::io::Result<()> {
    let path = dir.join(REPAIRS_FILE);
    let (mut f, created) = durable_fs::open_private(&path)?;
    f.seek(std::io::SeekFrom::End(0))?;
    writeln!(f, "{} {line}", now_ms())?;
    f.sync_data()?;
    if created {
        durable_fs::fsync_dir(dir)?;
    }
    Ok(())
}

/// The highest valid mark of an older build's head file (two 80-byte slots: "UCJH", seq
/// u64 LE, hash, SHA-256 of bytes 0..44).
fn legacy_head_mark(path: &Path) -> std::io::Result<Option<(u64, Hash)>> {
    use sha2::{Digest, Sha256};
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let slot = |off: usize| -> Option<(u64, Hash)> {
        let s = bytes.get(off..off + 76)?;
        if &s[0..4] != b"UCJH" {
            return None;
        }
        let sum: Hash = Sha256::digest(&s[0..44]).into();
        (s[44..76] == sum).then(|| {
            (
                u64::from_le_bytes(s[4..12].try_into().expect("8 bytes")),
                s[12..44].try_into().expect("32 bytes"),
            )
        })
    };
    Ok([slot(0), slot(80)]
        .into_iter()
        .flatten()
        .max_by_key(|(seq, _)| *seq))
}

/// A journal of an older build (sled + head file, no record log): verified the old way
/// (chain, format marker, head mark), then its records become the log's first entry
/// (written to `log.converting`, synced, renamed into place), and the head file goes.
/// Anything that does not verify is refused (exit 3): finish such a journal with the build
/// that wrote it.
fn convert_legacy(dir: &Path) -> Result<(), JournalError> {
    let io = |what: &'static str| {
        let dir = dir.to_path_buf();
        move |source| JournalError::Io { dir, what, source }
    };
    let old = |e: JournalError| match e {
        JournalError::Corrupt {
            dir,
            seq,
            last_good,
            reason,
        } => JournalError::Corrupt {
            dir,
            seq,
            last_good,
            reason: format!(
                "{reason}; journal of an older build (no record log): finish it with that build"
            ),
        },
        other => other,
    };
    let records = {
        let db = open_store(&dir.join(STORE_DIR)).map_err(|e| store_error(dir, e, 0))?;
        let tree = db
            .open_tree(RECORDS_TREE)
            .map_err(|e| store_error(dir, e, 0))?;
        let chain = verify_store_chain(dir, &tree).map_err(old)?;
        let mark = legacy_head_mark(&dir.join(LEGACY_HEAD)).map_err(io("reading the head file"))?;
        let last = chain.len() as u64;
        let corrupt = |seq, last_good, reason: String| {
            old(JournalError::Corrupt {
                dir: dir.to_path_buf(),
                seq,
                last_good,
                reason,
            })
        };
        match mark {
            Some((seq, _)) if seq > last => {
                return Err(corrupt(
                    last + 1,
                    last,
                    format!(
                    "missing: the store lost records {}..={seq}, which were durable (head file)",
                    last + 1
                ),
                ))
            }
            Some((seq, hash)) if seq > 0 && chain[(seq - 1) as usize].hash != hash => {
                return Err(corrupt(
                    seq,
                    seq - 1,
                    "its hash differs from the one the head file recorded".into(),
                ))
            }
            _ => {}
        }
        chain
    };
    let staged = dir.join("log.converting");
    {
        // A staged log left by an interrupted conversion is written again.
        durable_fs::remove_path(&staged).map_err(io("removing the staged record log"))?;
        let mut f = durable_fs::create_private_file(&staged)
            .map_err(io("writing the converted record log"))?;
        if !records.is_empty() {
            let frames: Vec<Vec<u8>> = records.iter().map(|r| r.body.encode().0).collect();
            f.write_all(&log::entry(&frames))
                .map_err(io("writing the converted record log"))?;
        }
        f.sync_all()
            .map_err(io("syncing the converted record log"))?;
    }
    durable_fs::rename(&staged, &dir.join(LOG_FILE)).map_err(io("renaming the record log"))?;
    if dir.join(LEGACY_HEAD).exists() {
        durable_fs::remove_path(&dir.join(LEGACY_HEAD)).map_err(io("removing the head file"))?;
    }
    note_repair(
        dir,
        &format!(
            "converted from an older build's journal (sled + head file): {} records moved into the record log",
            records.len()
        ),
    )
    .map_err(io("noting the conversion in the repairs file"))?;
    Ok(())
}

/// Space kept for a rollback on a full disk: `<journal>/reserve`, written when a run starts
/// and removed when a rollback starts (before the journal is opened: sled itself may need to
/// write), so the undo records and the undo's own staging always find room.
pub const RESERVE_FILE: &str = "reserve";
pub const RESERVE_BYTES: u64 = 8 << 20;

/// Writes the reserve file (real blocks: zeros written, not a sparse length) and syncs it.
pub fn make_reserve(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(RESERVE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES) {
        return Ok(());
    }
    // A reserve of the wrong size (a torn write) is written again, owner-only.
    durable_fs::remove_path(&path)?;
    let mut f = durable_fs::create_private_file(&path)?;
    let chunk = vec![0u8; 1 << 16];
    let mut left = RESERVE_BYTES;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    durable_fs::fsync_dir(dir)
}

/// Removes the reserve file; true when there was one.
pub fn release_reserve(dir: &Path) -> std::io::Result<bool> {
    let path = dir.join(RESERVE_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(false);
    }
    durable_fs::remove_path(&path)?;
    Ok(true)
}

/// What `journal salvage` found: every record that verifies on its own, from the log and
/// from the store, whatever the damage around it.
pub struct Salvage {
    /// (record, where it was found, whether its predecessor was found with the hash its
    /// `prev_hash` names).
    pub records: Vec<(Record, &'static str, bool)>,
    pub notes: Vec<String>,
}

/// Reads whatever still verifies, without repairing or writing anything.
pub fn salvage(dir: &Path) -> Salvage {
    let mut notes = Vec::new();
    let mut by_seq: std::collections::BTreeMap<u64, (Record, &'static str)> = Default::default();
    match std::fs::read(dir.join(LOG_FILE)) {
        Ok(bytes) => {
            for r in log::salvage_bytes(&bytes) {
                by_seq.entry(r.seq).or_insert((r, "log"));
            }
        }
        Err(e) => notes.push(format!("the record log cannot be read: {e}")),
    }
    match open_store(&dir.join(STORE_DIR)) {
        Ok(db) => match db.open_tree(RECORDS_TREE) {
            Ok(tree) => {
                for item in tree.iter() {
                    match item {
                        Ok((_, v)) => {
                            if let Ok(r) = record::decode(&v) {
                                by_seq.entry(r.seq).or_insert((r, "store"));
                            }
                        }
                        Err(e) => {
                            notes.push(format!("the store stopped reading: {e}"));
                            break;
                        }
                    }
                }
            }
            Err(e) => notes.push(format!("the store cannot be read: {e}")),
        },
        Err(e) => notes.push(format!("the store cannot be opened: {e}")),
    }
    let hashes: std::collections::HashMap<u64, Hash> =
        by_seq.iter().map(|(s, (r, _))| (*s, r.hash)).collect();
    let records = by_seq
        .into_values()
        .map(|(r, from)| {
            let chained = if r.seq == 1 {
                r.prev_hash == [0u8; 32]
            } else {
                hashes.get(&(r.seq - 1)) == Some(&r.prev_hash)
            };
            (r, from, chained)
        })
        .collect();
    Salvage { records, notes }
}

/// Opens sled. Across processes the root lock already excludes a second user; within one
/// process, sled's file lock can outlive a closed `Db` for a moment (its threads drop their
/// handles asynchronously, later still on a loaded machine), so a lock refusal is retried
/// for up to 10 s.
///
/// sled creates its files with the process's umask: the store folder and sled's `blobs`
/// folder are created owner-only first, so no other account can reach what sled writes in
/// them, and the files sled has once open are made owner-only too.
fn open_store(store: &Path) -> sled::Result<sled::Db> {
    durable_fs::create_private_dir_all(&store.join(STORE_BLOBS_DIR))?;
    let db = open_store_unlocked(store)?;
    durable_fs::make_files_private(store)?;
    Ok(db)
}

/// sled's folder of large values inside the store (sled 0.34's layout).
const STORE_BLOBS_DIR: &str = "blobs";

fn open_store_unlocked(store: &Path) -> sled::Result<sled::Db> {
    let config = sled::Config::new()
        .path(store)
        // No background flusher: every durable point is ours, explicit, and counted.
        .flush_every_ms(None)
        // A small page cache: row before-images must not pile up in memory.
        .cache_capacity(16 * 1024 * 1024);
    let mut tries = 0;
    loop {
        match config.open() {
            // sled reports its lock refusal as ErrorKind::Other "could not acquire lock".
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && tries < 500 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
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

/// Test support: rewrites the frame of record `seq` in the record log, bypassing every check,
/// and writes the log back with one whole entry per record (so the damage is below a synced
/// entry, never a torn tail), to build torn, corrupt and re-chained journals. Never used by
/// the engine.
#[cfg(any(test, feature = "testing"))]
pub fn tamper_raw(
    dir: &Path,
    seq: u64,
    edit: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> std::io::Result<()> {
    let path = dir.join(LOG_FILE);
    let bytes = std::fs::read(&path)?;
    let records = log::scan_bytes(&bytes)
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?
        .records;
    let mut edit = Some(edit);
    let mut out = Vec::new();
    for r in records {
        let (mut frame, _) = r.body.encode();
        if r.seq == seq {
            frame = (edit.take().expect("one record per seq"))(frame);
        }
        out.extend(log::entry(&[frame]));
    }
    durable_fs::atomic_write(&path, &out, None)
}

/// Test support: rewrites the raw value of record `seq` in sled only (the log untouched).
#[cfg(test)]
pub fn tamper_store(
    dir: &Path,
    seq: u64,
    edit: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> sled::Result<()> {
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
        assert_eq!(j.records()[1].payload, b"a");
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
    fn step_data_payloads_are_kept_with_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append(rec(Phase::StepData, &[5u8; 40])).unwrap();
        assert_eq!(j.records()[0].payload, [5u8; 40]);
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.records()[0].payload, [5u8; 40]);
        assert_eq!(super::repair_tests::stored_payload(&j, 1), [5u8; 40]);
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

    fn rec(phase: Phase) -> NewRecord {
        NewRecord {
            run_id: [1; 16],
            step: Some(1),
            phase,
            payload: b"p".to_vec(),
        }
    }

    fn journal_with(dir: &Path, n: usize) -> Vec<Hash> {
        let mut j = Journal::open(dir).unwrap();
        for _ in 0..n {
            j.append(rec(Phase::StepIntent)).unwrap();
        }
        j.records().iter().map(|r| r.hash).collect()
    }

    fn hashes(j: &Journal) -> Vec<Hash> {
        j.records().iter().map(|r| r.hash).collect()
    }

    fn entries_starting(dir: &Path, prefix: &str) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
    }

    /// Record `seq`'s payload as sled holds it (the store, not the log the chain came from).
    pub(super) fn stored_payload(j: &Journal, seq: u64) -> Vec<u8> {
        let value = j.records.get(seq.to_be_bytes()).unwrap().unwrap();
        record::decode(&value).unwrap().body.payload
    }

    fn repairs(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(REPAIRS_FILE)).unwrap_or_default()
    }

    #[test]
    fn an_unreadable_store_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let before = journal_with(dir.path(), 3);
        // Garbage in sled's config makes it refuse to open the store.
        std::fs::write(dir.path().join(STORE_DIR).join("conf"), b"\x00garbage\xff").unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(hashes(&j), before);
        assert_eq!(stored_payload(&j, 2), b"p");
        assert_eq!(entries_starting(dir.path(), "store.before-rebuild-"), 1);
        assert!(repairs(dir.path()).contains("store rebuilt from the record log"));
        j.append(rec(Phase::StepDone)).unwrap();
        drop(j);
        assert_eq!(Journal::open(dir.path()).unwrap().records().len(), 4);
    }

    #[test]
    fn a_store_behind_or_different_from_the_log_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let before = journal_with(dir.path(), 3);
        // Behind: the store lost its last record.
        {
            let db = open_store(&dir.path().join(STORE_DIR)).unwrap();
            db.open_tree(RECORDS_TREE)
                .unwrap()
                .remove(3u64.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        assert_eq!(hashes(&Journal::open(dir.path()).unwrap()), before);
        assert!(repairs(dir.path()).contains("behind the log"));
        // Different: a record altered in the store only.
        tamper_store(dir.path(), 2, |mut v| {
            v[20] ^= 1;
            v
        })
        .unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(hashes(&j), before);
        assert_eq!(stored_payload(&j, 2), b"p");
        assert_eq!(entries_starting(dir.path(), "store.before-rebuild-"), 2);
    }

    #[test]
    fn a_missing_store_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let before = journal_with(dir.path(), 2);
        durable_fs::remove_path(&dir.path().join(STORE_DIR)).unwrap();
        assert_eq!(hashes(&Journal::open(dir.path()).unwrap()), before);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_the_log_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let before = journal_with(dir.path(), 2);
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // Half an entry, as a write cut by a crash before its sync leaves it.
        let (frame, _) = RecordBody {
            seq: 3,
            run_id: [1; 16],
            step: None,
            phase: Phase::RunCommitted,
            time_ms: 0,
            prev_hash: before[1],
            payload: vec![],
        }
        .encode();
        let e = log::entry(&[frame]);
        f.write_all(&e[..e.len() / 2]).unwrap();
        drop(f);
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(hashes(&j), before);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        j.append(rec(Phase::StepDone)).unwrap();
        drop(j);
        assert_eq!(Journal::open(dir.path()).unwrap().records().len(), 3);
    }

    #[test]
    fn a_log_shorter_than_the_store_is_refused() {
        // The store is written only after the log's sync: records it holds were durable, so
        // a log without them lost durable records (exit 3).
        let dir = tempfile::tempdir().unwrap();
        journal_with(dir.path(), 3);
        let path = dir.path().join(LOG_FILE);
        let bytes = std::fs::read(&path).unwrap();
        let scan = log::scan_bytes(&bytes).unwrap();
        let frames: Vec<Vec<u8>> = scan.records[..2]
            .iter()
            .map(|r| r.body.encode().0)
            .collect();
        std::fs::write(&path, log::entry(&frames)).unwrap();
        match Journal::open(dir.path()) {
            Err(JournalError::Corrupt {
                seq,
                last_good,
                reason,
                ..
            }) => {
                assert_eq!((seq, last_good), (3, 2));
                assert!(reason.contains("store holds records 3..=3"), "{reason}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a log that lost durable records was accepted"),
        }
    }

    fn legacy_slot(seq: u64, hash: &Hash) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut slot = vec![0u8; 80];
        slot[0..4].copy_from_slice(b"UCJH");
        slot[4..12].copy_from_slice(&seq.to_le_bytes());
        slot[12..44].copy_from_slice(hash);
        let sum: Hash = Sha256::digest(&slot[0..44]).into();
        slot[44..76].copy_from_slice(&sum);
        slot
    }

    /// A journal as an older build left it: sled + head file, no record log.
    fn make_legacy(dir: &Path, n: usize, head_seq: u64) -> Vec<Hash> {
        let before = journal_with(dir, n);
        durable_fs::remove_path(&dir.join(LOG_FILE)).unwrap();
        let mut head = vec![0u8; 160];
        let hash = before
            .get(head_seq as usize - 1)
            .copied()
            .unwrap_or([9; 32]);
        head[((head_seq % 2) * 80) as usize..][..80].copy_from_slice(&legacy_slot(head_seq, &hash));
        std::fs::write(dir.join(LEGACY_HEAD), head).unwrap();
        before
    }

    #[test]
    fn an_older_builds_journal_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let before = make_legacy(dir.path(), 3, 3);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(hashes(&j), before);
        assert!(dir.path().join(LOG_FILE).exists());
        assert!(!dir.path().join(LEGACY_HEAD).exists());
        assert!(repairs(dir.path()).contains("converted"));
        drop(j);
        assert_eq!(hashes(&Journal::open(dir.path()).unwrap()), before);
    }

    #[test]
    fn an_older_builds_journal_that_lost_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        make_legacy(dir.path(), 2, 4);
        match Journal::open(dir.path()) {
            Err(e @ JournalError::Corrupt { .. }) => {
                assert!(e.to_string().contains("older build"), "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
        assert!(!dir.path().join(LOG_FILE).exists());
    }

    #[test]
    fn salvage_reads_what_verifies_around_damage() {
        let dir = tempfile::tempdir().unwrap();
        journal_with(dir.path(), 4);
        tamper_raw(dir.path(), 2, |mut v| {
            v[30] ^= 1;
            v
        })
        .unwrap();
        assert!(Journal::open(dir.path()).is_err());
        let s = salvage(dir.path());
        // Record 2 is damaged in the log but whole in the store.
        let seqs: Vec<(u64, &str, bool)> =
            s.records.iter().map(|(r, f, c)| (r.seq, *f, *c)).collect();
        assert_eq!(
            seqs,
            vec![
                (1, "log", true),
                (2, "store", true),
                (3, "log", true),
                (4, "log", true)
            ]
        );
    }
}
