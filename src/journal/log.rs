//! The record log: the journal's own append-only file of record frames, beside sled.
//!
//! sled serves and indexes the records; this log is the authority. Each durable point of the
//! journal appends one **entry** holding the frames of that point (journal-format.md §3, byte
//! for byte) and makes it durable with one `sync_data` before `append` returns. The last
//! entry is the journal's high-water mark.
//!
//! ```text
//! entry offset  size  field
//! 0             4     magic "UCJB"
//! 4             4     n = number of frames, u32 little-endian
//! 8             8     T = length of the frames, u64 little-endian
//! 16            T     n record frames back to back ("UCJ1" frames, each with its SHA-256)
//! 16+T          32    SHA-256 of bytes [0, 16+T) of the entry
//! ```
//!
//! Reading ([`scan`]): entries one after the other from offset 0. An entry whose checksum
//! verifies was written whole; its frames must then decode, verify and continue the hash
//! chain, or the log is damaged. An entry that is cut short or fails its checksum is the
//! **torn tail** of a write that never completed its sync, *if no whole entry follows it*:
//! it is dropped (the caller truncates the file there). A whole entry after a damaged one
//! means damage below a synced entry: [`LogError::Damaged`] (exit 3).
//!
//! Every byte goes through [`LogStorage`] (write, sync, read, truncate), so tests can run the
//! log on a storage that forgets what was not synced ([`tests`]).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::record::{self, Hash, Record};

pub const ENTRY_MAGIC: [u8; 4] = *b"UCJB";
pub const ENTRY_HEADER: usize = 16;
pub const ENTRY_OVERHEAD: usize = ENTRY_HEADER + 32;
/// The log file's name inside the journal folder.
pub const LOG_FILE: &str = "log";

/// What the log needs of a file: append, sync, read, truncate. Nothing is durable until
/// `sync` returns.
pub trait LogStorage {
    fn size(&mut self) -> io::Result<u64>;
    /// Fills `buf` from `offset` (an error when the storage is shorter).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every write and truncation so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// The log on a real file (portable std calls only: seek + read/write, `sync_data`,
/// `set_len`).
pub struct FileStorage {
    file: File,
}

impl FileStorage {
    /// Opens the log file, creating it owner-only if needed; `true` when it was created (the
    /// caller then fsyncs the folder).
    pub fn open(path: &Path) -> io::Result<(FileStorage, bool)> {
        let (file, created) = crate::durable_fs::open_private(path)?;
        Ok((FileStorage { file }, created))
    }
}

impl LogStorage for FileStorage {
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::End(0))?;
        self.file.write_all(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

/// Why the log cannot be trusted below its last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// The first record that cannot be read.
    pub seq: u64,
    pub last_good: u64,
    pub reason: String,
}

#[derive(Debug)]
pub enum LogError {
    Io(io::Error),
    Damaged(Damaged),
}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> LogError {
        LogError::Io(e)
    }
}

/// The verified content of a log.
#[derive(Debug)]
pub struct Scan {
    /// Every record of every whole entry, in order, chained (payloads included).
    pub records: Vec<Record>,
    /// End of the last whole entry.
    pub valid_len: u64,
    /// Bytes after `valid_len` (a torn tail, to be truncated), with the reason.
    pub torn: Option<(u64, String)>,
}

/// Encodes one entry from record frames.
pub fn entry(frames: &[Vec<u8>]) -> Vec<u8> {
    let total: usize = frames.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(ENTRY_OVERHEAD + total);
    out.extend_from_slice(&ENTRY_MAGIC);
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.extend_from_slice(&(total as u64).to_le_bytes());
    for f in frames {
        out.extend_from_slice(f);
    }
    let sum: Hash = Sha256::digest(&out).into();
    out.extend_from_slice(&sum);
    out
}

/// An entry that verifies at `at` in `bytes`: (frame count, frames, entry length).
fn whole_entry_at(bytes: &[u8], at: usize) -> Result<(u32, &[u8], usize), String> {
    let rest = &bytes[at..];
    if rest.len() < ENTRY_HEADER {
        return Err(format!(
            "{} bytes where an entry header needs {ENTRY_HEADER}",
            rest.len()
        ));
    }
    if rest[0..4] != ENTRY_MAGIC {
        return Err("bad entry magic".into());
    }
    let n = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let t = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
    let need = (ENTRY_OVERHEAD as u64).saturating_add(t);
    if need > rest.len() as u64 {
        return Err(format!(
            "entry cut short: {} bytes stored, {need} expected",
            rest.len()
        ));
    }
    let need = need as usize;
    let covered = &rest[..need - 32];
    let sum: Hash = Sha256::digest(covered).into();
    if sum[..] != rest[need - 32..need] {
        return Err("entry SHA-256 mismatch".into());
    }
    Ok((n, &rest[ENTRY_HEADER..need - 32], need))
}

/// Reads and verifies the whole log (see the module documentation for the rules).
pub fn scan(storage: &mut dyn LogStorage) -> Result<Scan, LogError> {
    let len = storage.size()?;
    let mut bytes = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
    storage.read_at(0, &mut bytes)?;
    scan_bytes(&bytes)
}

/// [`scan`] on bytes already read.
pub fn scan_bytes(bytes: &[u8]) -> Result<Scan, LogError> {
    let mut records: Vec<Record> = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let last_good = records.last().map_or(0, |r| r.seq);
        let damaged = |seq: u64, reason: String| {
            LogError::Damaged(Damaged {
                seq,
                last_good,
                reason,
            })
        };
        let (n, mut frames, size) = match whole_entry_at(bytes, at) {
            Ok(e) => e,
            Err(why) => {
                // Torn if nothing whole follows; damage below a synced entry otherwise.
                if let Some(later) = (at + 1..bytes.len()).find(|&p| {
                    bytes[p..].starts_with(&ENTRY_MAGIC) && whole_entry_at(bytes, p).is_ok()
                }) {
                    return Err(damaged(
                        last_good + 1,
                        format!(
                            "log entry at byte {at}: {why}, but a whole entry follows at byte {later}: the log is damaged below its last synced entry"
                        ),
                    ));
                }
                return Ok(Scan {
                    records,
                    valid_len: at as u64,
                    torn: Some(((bytes.len() - at) as u64, format!("at byte {at}: {why}"))),
                });
            }
        };
        for _ in 0..n {
            let last_good = records.last().map_or(0, |r| r.seq);
            let expected = last_good + 1;
            let bad = |reason: String| {
                LogError::Damaged(Damaged {
                    seq: expected,
                    last_good,
                    reason,
                })
            };
            let flen = if frames.len() >= 8 {
                record::FRAME_OVERHEAD as u64
                    + u32::from_le_bytes(frames[4..8].try_into().expect("4 bytes")) as u64
            } else {
                record::FRAME_OVERHEAD as u64
            };
            let take = (flen.min(frames.len() as u64)) as usize;
            let rec = record::decode(&frames[..take]).map_err(|e| bad(e.to_string()))?;
            frames = &frames[take..];
            if rec.seq != expected {
                return Err(bad(format!(
                    "the log holds record {} where {expected} belongs",
                    rec.seq
                )));
            }
            let prev = records.last().map_or([0u8; 32], |r| r.hash);
            if rec.prev_hash != prev {
                return Err(bad("hash chain broken: previous-record hash differs".into()));
            }
            records.push(rec);
        }
        if !frames.is_empty() {
            return Err(damaged(
                records.last().map_or(0, |r| r.seq) + 1,
                format!(
                    "log entry at byte {at}: {} bytes after its {n} frames",
                    frames.len()
                ),
            ));
        }
        at += size;
    }
    Ok(Scan {
        records,
        valid_len: at as u64,
        torn: None,
    })
}

/// Every frame found in `bytes` that verifies on its own (SHA-256), in file order, whatever
/// the state of the entries and the chain around it: what `journal salvage` reads.
pub fn salvage_bytes(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + record::FRAME_OVERHEAD <= bytes.len() {
        if bytes[at..].starts_with(&record::MAGIC) {
            let l = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as u64;
            let end = at as u64 + record::FRAME_OVERHEAD as u64 + l;
            if end <= bytes.len() as u64 {
                if let Ok(rec) = record::decode(&bytes[at..end as usize]) {
                    out.push(rec);
                    at = end as usize;
                    continue;
                }
            }
        }
        at += 1;
    }
    out
}

/// An opened log: the writer, its records, and the torn tail dropped (if any).
#[cfg(test)]
pub type Opened<S> = (Log<S>, Vec<Record>, Option<String>);

/// The writer: appends entries and makes them durable.
pub struct Log<S: LogStorage> {
    storage: S,
}

impl<S: LogStorage> Log<S> {
    /// Verifies the log; a torn tail is truncated (and the truncation synced). Returns the
    /// writer, the records, and the torn tail's description if one was dropped.
    #[cfg(test)]
    pub fn open(mut storage: S) -> Result<Opened<S>, LogError> {
        let scan = scan(&mut storage)?;
        let mut log = Log { storage };
        let torn = log.drop_torn_tail(&scan)?;
        Ok((log, scan.records, torn))
    }

    /// Wraps a storage already scanned by the caller.
    pub fn new(storage: S) -> Log<S> {
        Log { storage }
    }

    #[cfg(test)]
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Truncates the log back to its last whole entry when the scan found a torn tail.
    pub fn drop_torn_tail(&mut self, scan: &Scan) -> io::Result<Option<String>> {
        match &scan.torn {
            None => Ok(None),
            Some((bytes, why)) => {
                self.storage.truncate(scan.valid_len)?;
                self.storage.sync()?;
                Ok(Some(format!("{bytes} bytes ({why})")))
            }
        }
    }

    /// Appends one entry of frames and syncs it: when this returns Ok, the records are
    /// durable.
    pub fn append(&mut self, frames: &[Vec<u8>]) -> io::Result<()> {
        self.storage.append(&entry(frames))?;
        self.storage.sync()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::journal::record::{Phase, RecordBody};
    use rand::{Rng, SeedableRng};

    /// A storage that keeps what was synced apart from what was only written, and at a
    /// simulated crash forgets what was not synced (or keeps a random prefix of it: a torn
    /// write).
    #[derive(Default, Clone)]
    pub struct ForgetfulStorage {
        synced: Vec<u8>,
        current: Vec<u8>,
    }

    pub enum Crash {
        /// Every unsynced write is lost.
        ForgetAll,
        /// A random prefix of the unsynced bytes reached the disk.
        TornPrefix,
        /// The unsynced region reached the disk as garbage of a random length.
        Garbage,
    }

    impl ForgetfulStorage {
        /// The storage as the next start sees it after a crash now.
        pub fn crash(&self, how: &Crash, rng: &mut impl Rng) -> ForgetfulStorage {
            let mut after = self.synced.clone();
            let extends =
                self.current.len() > self.synced.len() && self.current.starts_with(&self.synced);
            match how {
                Crash::ForgetAll => {}
                Crash::TornPrefix if extends => {
                    let extra = &self.current[self.synced.len()..];
                    let keep = rng.gen_range(0..=extra.len());
                    after.extend_from_slice(&extra[..keep]);
                }
                Crash::Garbage if extends => {
                    let extra = self.current.len() - self.synced.len();
                    let keep = rng.gen_range(0..=extra);
                    after.extend((0..keep).map(|_| rng.gen::<u8>()));
                }
                // An unsynced truncation: either the old or the new length survives.
                _ => {
                    if rng.gen_bool(0.5) {
                        after = self.current.clone();
                    }
                }
            }
            ForgetfulStorage {
                synced: after.clone(),
                current: after,
            }
        }
    }

    impl LogStorage for ForgetfulStorage {
        fn size(&mut self) -> io::Result<u64> {
            Ok(self.current.len() as u64)
        }
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let start = offset as usize;
            let src = self
                .current
                .get(start..start + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.current.extend_from_slice(bytes);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            self.synced = self.current.clone();
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.current.truncate(len as usize);
            Ok(())
        }
    }

    /// Frames of `n` records chained after `prev` (seq `first`..).
    fn frames(first: u64, n: usize, prev: Hash, rng: &mut impl Rng) -> (Vec<Vec<u8>>, Hash) {
        let mut prev = prev;
        let mut out = Vec::new();
        for k in 0..n as u64 {
            let body = RecordBody {
                seq: first + k,
                run_id: [3; 16],
                step: Some(k as u32),
                phase: Phase::StepIntent,
                time_ms: 1,
                prev_hash: prev,
                payload: (0..rng.gen_range(0..300))
                    .map(|_| rng.gen::<u8>())
                    .collect(),
            };
            let (f, h) = body.encode();
            out.push(f);
            prev = h;
        }
        (out, prev)
    }

    /// A sequence of durable points: each is a batch of 1..5 records.
    fn batches(rng: &mut impl Rng, points: usize) -> Vec<Vec<Vec<u8>>> {
        let (mut seq, mut prev) = (1u64, [0u8; 32]);
        (0..points)
            .map(|_| {
                let n = rng.gen_range(1..5);
                let (f, h) = frames(seq, n, prev, rng);
                seq += n as u64;
                prev = h;
                f
            })
            .collect()
    }

    /// The redb-style test below the process: run a sequence of appends on a storage that
    /// forgets unsynced writes, crash at every point (before the write, after the write but
    /// before the sync, after the sync), reopen, and check that recovery gives exactly the
    /// records of the durable points that completed — each durable point all-old or all-new,
    /// never a part — and that appending after recovery continues a log that verifies.
    #[test]
    fn crash_at_every_point_recovers_exactly_the_synced_records() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..40 {
            let points = batches(&mut rng, 12);
            let total: Vec<usize> = points
                .iter()
                .scan(0, |acc, b| {
                    *acc += b.len();
                    Some(*acc)
                })
                .collect();
            for crash_at in 0..points.len() {
                for stage in 0..3 {
                    for how in [Crash::ForgetAll, Crash::TornPrefix, Crash::Garbage] {
                        let (mut log, recs, _) = Log::open(ForgetfulStorage::default()).unwrap();
                        assert!(recs.is_empty());
                        for b in &points[..crash_at] {
                            log.append(b).unwrap();
                        }
                        // The durable point `crash_at` is in flight.
                        let b = &points[crash_at];
                        match stage {
                            0 => {}
                            1 => log.storage_mut().append(&entry(b)).unwrap(),
                            _ => log.append(b).unwrap(),
                        }
                        let before = if crash_at == 0 {
                            0
                        } else {
                            total[crash_at - 1]
                        };
                        let after = total[crash_at];
                        let crashed = log.storage.crash(&how, &mut rng);
                        let ctx = format!("round {round}, point {crash_at}, stage {stage}");
                        let (mut log, recs, _) = match Log::open(crashed) {
                            Ok(x) => x,
                            Err(e) => panic!("{ctx}: recovery refused: {e:?}"),
                        };
                        let n = recs.len();
                        match stage {
                            2 => assert_eq!(n, after, "{ctx}: a synced point was lost"),
                            _ => assert!(
                                n == before || n == after,
                                "{ctx}: {n} records, neither all-old ({before}) nor all-new ({after})"
                            ),
                        }
                        for (k, r) in recs.iter().enumerate() {
                            assert_eq!(r.seq, k as u64 + 1, "{ctx}");
                        }
                        // The log goes on after recovery: the next point appends and verifies.
                        let next = points.get(if n == after { crash_at + 1 } else { crash_at });
                        if let Some(next) = next {
                            log.append(next).unwrap();
                            let (_, again, torn) = Log::open(log.storage.clone()).unwrap();
                            assert_eq!(again.len(), n + next.len(), "{ctx}");
                            assert!(torn.is_none(), "{ctx}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_crash_during_the_truncation_of_a_torn_tail_is_recovered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let points = batches(&mut rng, 3);
        let mut s = ForgetfulStorage::default();
        let mut log = Log::new(s.clone());
        log.append(&points[0]).unwrap();
        log.storage_mut().append(&entry(&points[1])[..30]).unwrap();
        s = log.storage.crash(&Crash::ForgetAll, &mut rng);
        s.current.extend_from_slice(&entry(&points[1])[..30]);
        s.synced = s.current.clone();
        // The truncation itself is cut by a crash before its sync: either length survives.
        let scan = scan(&mut s).unwrap();
        assert!(scan.torn.is_some());
        s.truncate(scan.valid_len).unwrap();
        for _ in 0..8 {
            let c = s.crash(&Crash::ForgetAll, &mut rng);
            let (_, recs, _) = Log::open(c).unwrap();
            assert_eq!(recs.len(), points[0].len());
        }
    }

    #[test]
    fn damage_below_a_whole_entry_is_refused_naming_the_record() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let points = batches(&mut rng, 4);
        let mut log = Log::new(ForgetfulStorage::default());
        for b in &points {
            log.append(b).unwrap();
        }
        let mut s = log.storage.clone();
        let first = entry(&points[0]).len();
        // A flipped byte inside the second entry: the third and fourth entries are whole.
        s.current[first + 30] ^= 0x10;
        match Log::open(s) {
            Err(LogError::Damaged(d)) => {
                assert_eq!(d.last_good, points[0].len() as u64);
                assert_eq!(d.seq, points[0].len() as u64 + 1);
                assert!(
                    d.reason.contains("below its last synced entry"),
                    "{}",
                    d.reason
                );
            }
            other => panic!("damage accepted: {:?}", other.map(|x| x.1.len())),
        }
    }

    #[test]
    fn a_whole_entry_with_a_bad_frame_or_chain_is_damage_not_a_torn_tail() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let points = batches(&mut rng, 2);
        // The second entry re-hashed around a frame whose own SHA-256 no longer matches.
        let mut bad = points[1].clone();
        let m = bad[0].len() / 2;
        bad[0][m] ^= 1;
        let mut bytes = entry(&points[0]);
        bytes.extend(entry(&bad));
        match scan_bytes(&bytes) {
            Err(LogError::Damaged(d)) => {
                assert_eq!(d.seq, points[0].len() as u64 + 1);
                assert!(d.reason.contains("SHA-256"), "{}", d.reason);
            }
            other => panic!("{other:?}"),
        }
        // Entries in the wrong order break the chain.
        let mut bytes = entry(&points[1]);
        bytes.extend(entry(&points[0]));
        assert!(matches!(scan_bytes(&bytes), Err(LogError::Damaged(_))));
    }

    #[test]
    fn salvage_finds_every_frame_that_verifies_around_damage() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let points = batches(&mut rng, 3);
        let mut bytes = Vec::new();
        for b in &points {
            bytes.extend(entry(b));
        }
        let all: usize = points.iter().map(Vec::len).sum();
        assert_eq!(salvage_bytes(&bytes).len(), all);
        // Damage the first frame of the second entry: every other frame still verifies.
        let at = entry(&points[0]).len() + ENTRY_HEADER + 20;
        bytes[at] ^= 0xff;
        let found = salvage_bytes(&bytes);
        assert_eq!(found.len(), all - 1);
        assert!(found.iter().all(|r| r.seq != points[0].len() as u64 + 1));
    }

    #[test]
    fn random_logs_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let points = batches(&mut rng, 3);
        let mut good = Vec::new();
        for b in &points {
            good.extend(entry(b));
        }
        for _ in 0..3000 {
            let mut bytes = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
            if rng.gen_bool(0.3) {
                bytes.truncate(rng.gen_range(0..bytes.len()));
            }
            let _ = scan_bytes(&bytes);
            let _ = salvage_bytes(&bytes);
        }
    }
}
