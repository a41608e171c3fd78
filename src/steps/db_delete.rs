//! Reversible delete of every row of a table, streaming (memory flat in the row count).
//!
//! Apply, inside one database transaction: read the rows in key order and save them into the
//! journal as before-images (StepData records: a `Begin` with the table's shape, `Chunk`s of
//! at most [`CHUNK`] rows each with its row count and SHA-256, an `End` with the totals), make
//! the journal durable, delete, check the deleted count equals the saved count, commit.
//! Undo re-inserts the rows of the last complete attempt with the same keys in one transaction,
//! then reads the table back and checks the count and every chunk's SHA-256 before committing.
//! Probe counts rows: the row count at intent time means not applied, an empty table with a
//! complete saved attempt means applied; anything else is reported, never guessed.
//! A chunk's rows are serialized once, when saved, and decoded once, by undo: probe and the
//! audit read the records' heads only ([`ChunkView`]).

use std::path::{Path, PathBuf};

use bincode::Options;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Intent, Outcome, PlanView, Probe, Result, SavedDetail, Step, StepContext, StepError};
use crate::db::{self, TableInfo, Target, Value};
use crate::journal::record::codec;

/// Rows per before-image record.
pub const CHUNK: usize = 1000;

pub struct DeleteRows {
    pub connection: String,
    pub table: String,
    pub root: PathBuf,
}

/// The intent's `detail` (JSON).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct Detail {
    /// Redacted connection string.
    pub connection: String,
    pub table: String,
    /// Rows in the table when the intent was recorded.
    pub rows: u64,
    pub info: TableInfo,
}

/// One StepData payload of this step. A `Chunk` is written and read through its layout
/// ([`chunk_payload`], [`ChunkView`]), never through this enum, which keeps the variants'
/// order (their bincode index) and the layout's reference for the test that ties the two.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Saved {
    Begin {
        attempt: [u8; 16],
        info: TableInfo,
        chunk: u32,
    },
    Chunk {
        attempt: [u8; 16],
        index: u32,
        rows: Vec<Vec<Value>>,
        sha256: [u8; 32],
    },
    End {
        attempt: [u8; 16],
        rows: u64,
        chunks: u32,
    },
}

/// One chunk of the rows a delete-rows step removed, for the audit.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ChunkDigest {
    pub chunk: u32,
    pub rows: u64,
    /// SHA-256 of the chunk's rows, serialized as the journal keeps them (bincode, the
    /// journal's configuration): the digest its undo checks the re-inserted rows against.
    pub sha256: String,
}

/// The chunk digests of the last complete attempt, from the step's saved payloads in order
/// (`add` each, then `finish`). Each chunk's digest is checked against its saved rows.
#[derive(Default)]
pub struct RowDigests {
    /// Per attempt: its chunks, and whether its `End` was saved.
    attempts: Vec<([u8; 16], Vec<ChunkDigest>, bool)>,
}

impl RowDigests {
    pub fn add(&mut self, payload: &[u8]) -> Result<()> {
        match view(payload)? {
            SavedView::Begin { attempt, .. } => self.attempts.push((attempt, Vec::new(), false)),
            SavedView::Chunk(c) => {
                c.verify()?;
                if let Some((_, chunks, _)) = self.attempts.iter_mut().find(|a| a.0 == c.attempt) {
                    chunks.push(ChunkDigest {
                        chunk: c.index,
                        rows: c.row_count(),
                        sha256: hex::encode(c.sha256),
                    });
                }
            }
            SavedView::End { attempt, .. } => {
                if let Some(a) = self.attempts.iter_mut().find(|a| a.0 == attempt) {
                    a.2 = true;
                }
            }
        }
        Ok(())
    }

    /// The last complete attempt's chunks (none when no attempt completed).
    pub fn finish(self) -> Vec<ChunkDigest> {
        self.attempts
            .into_iter()
            .rev()
            .find(|a| a.2)
            .map(|a| a.1)
            .unwrap_or_default()
    }
}

pub(crate) fn refused(e: impl std::fmt::Display) -> StepError {
    StepError::Refused(e.to_string())
}

fn to_db(e: StepError) -> db::DbError {
    db::DbError(e.to_string())
}

/// The journal's errors met inside a database session: the session sees a `DbError` (which
/// rolls its transaction back), the step returns the error as the journal gave it, so a
/// corruption keeps its kind (exit 3).
#[derive(Default)]
struct JournalErrors(std::cell::RefCell<Option<StepError>>);

impl JournalErrors {
    fn keep(&self, e: StepError) -> db::DbError {
        let session = db::DbError(e.to_string());
        self.0.borrow_mut().get_or_insert(e);
        session
    }

    /// The step's error for a failed session: the journal's, if it failed, else the session's.
    fn or(self, e: db::DbError) -> StepError {
        self.0.into_inner().unwrap_or_else(|| refused(e))
    }
}

/// SHA-256 of `rows` serialized as a chunk keeps them, hashed as they are serialized.
pub(crate) fn chunk_hash(rows: &[Vec<Value>]) -> [u8; 32] {
    let mut h = Sha256::new();
    codec()
        .serialize_into(&mut h, rows)
        .expect("rows serialize into a hasher");
    h.finalize().into()
}

/// A `Saved::Chunk` payload in the journal codec's layout (fixint, little-endian): the
/// variant index, the attempt, the chunk index, the rows (a u64 count, then each row), their
/// SHA-256. The rows are serialized once, straight into the payload, and hashed there.
fn chunk_payload(attempt: &[u8; 16], index: u32, rows: &[Vec<Value>]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4 * 1024);
    out.extend(CHUNK_VARIANT.to_le_bytes());
    out.extend(attempt);
    out.extend(index.to_le_bytes());
    codec()
        .serialize_into(&mut out, rows)
        .map_err(|e| refused(format!("encoding a before-image: {e}")))?;
    let sha256 = Sha256::digest(&out[CHUNK_HEAD..]);
    out.extend(sha256);
    Ok(out)
}

/// `Saved::Chunk`'s variant index.
const CHUNK_VARIANT: u32 = 1;
/// A chunk payload's bytes before its rows: variant index, attempt, chunk index.
const CHUNK_HEAD: usize = 4 + 16 + 4;

/// A saved payload as probe, undo and the audit read it: a chunk's rows stay serialized
/// until undo re-inserts them (the only reader that needs them).
enum SavedView<'a> {
    Begin {
        attempt: [u8; 16],
        info: TableInfo,
        chunk: u32,
    },
    Chunk(ChunkView<'a>),
    End {
        attempt: [u8; 16],
        rows: u64,
        chunks: u32,
    },
}

struct ChunkView<'a> {
    attempt: [u8; 16],
    index: u32,
    /// The serialized rows: what `sha256` digests.
    rows: &'a [u8],
    sha256: [u8; 32],
}

impl ChunkView<'_> {
    /// The rows match the SHA-256 saved with them.
    fn verify(&self) -> Result<()> {
        if Sha256::digest(self.rows)[..] != self.sha256 {
            return Err(refused(format!(
                "the saved rows of chunk {} do not match its recorded SHA-256",
                self.index
            )));
        }
        Ok(())
    }

    /// The row count, the serialized rows' first 8 bytes (`view` checked they are there).
    fn row_count(&self) -> u64 {
        u64::from_le_bytes(self.rows[..8].try_into().expect("8 bytes"))
    }

    fn decode_rows(&self) -> Result<Vec<Vec<Value>>> {
        codec()
            .deserialize(self.rows)
            .map_err(|e| refused(format!("a saved before-image does not decode: {e}")))
    }
}

fn view(b: &[u8]) -> Result<SavedView<'_>> {
    if b.get(..4) == Some(&CHUNK_VARIANT.to_le_bytes()[..]) {
        if b.len() < CHUNK_HEAD + 8 + 32 {
            return Err(refused(format!(
                "a saved before-image chunk is truncated ({} bytes)",
                b.len()
            )));
        }
        let (rows, sha256) = b[CHUNK_HEAD..].split_at(b.len() - CHUNK_HEAD - 32);
        return Ok(SavedView::Chunk(ChunkView {
            attempt: b[4..20].try_into().expect("16 bytes"),
            index: u32::from_le_bytes(b[20..24].try_into().expect("4 bytes")),
            rows,
            sha256: sha256.try_into().expect("32 bytes"),
        }));
    }
    Ok(match decode(b)? {
        Saved::Begin {
            attempt,
            info,
            chunk,
        } => SavedView::Begin {
            attempt,
            info,
            chunk,
        },
        Saved::End {
            attempt,
            rows,
            chunks,
        } => SavedView::End {
            attempt,
            rows,
            chunks,
        },
        // Not met: a chunk's variant index is read above.
        Saved::Chunk { .. } => return Err(refused("a saved before-image chunk is misread")),
    })
}

fn encode(s: &Saved) -> Result<Vec<u8>> {
    codec()
        .serialize(s)
        .map_err(|e| refused(format!("encoding a before-image: {e}")))
}

fn decode(b: &[u8]) -> Result<Saved> {
    codec()
        .deserialize(b)
        .map_err(|e| refused(format!("a saved before-image does not decode: {e}")))
}

/// A path that exists only in a plan's view: "a backup of this database was planned".
pub(crate) fn backup_marker(root: &Path, connection: &str) -> PathBuf {
    let h = Sha256::digest(db::redact(connection).as_bytes());
    root.join(".usercube-upgrade-planned-db-backup")
        .join(hex::encode(&h[..8]))
}

/// Where a run's database-backup step notes the backup file of a database, for that run's
/// schema-upgrade step (which restores it before running the vendor's tool again after a
/// kill mid-way): `<journal>/trash/<run>/db-backup-<connection hash>`, the file path as text.
pub(crate) fn backup_pointer(ctx_trash: &Path, connection: &str) -> PathBuf {
    let h = Sha256::digest(db::redact(connection).as_bytes());
    ctx_trash
        .parent()
        .unwrap_or(ctx_trash)
        .join(format!("db-backup-{}", hex::encode(&h[..8])))
}

/// The preflight for any database step: the plan holds no password, the connection string
/// parses, the server answers and accepts the login, and the database can be written.
pub(crate) fn connect_check(connection: &str, root: &Path) -> std::result::Result<Target, String> {
    db::check_no_literal_password(connection).map_err(|e| e.to_string())?;
    let t = db::target(connection, root).map_err(|e| e.to_string())?;
    db::with_session(&t, |d| d.check_writable())
        .map_err(|e| format!("cannot use the database {}: {e}", db::redact(connection)))?;
    Ok(t)
}

impl DeleteRows {
    fn target(&self) -> Result<Target> {
        db::target(&self.connection, &self.root).map_err(refused)
    }

    fn detail(intent: &Intent) -> Result<Detail> {
        serde_json::from_str(&intent.detail)
            .map_err(|e| refused(format!("the recorded intent does not parse: {e}")))
    }

    /// The attempt whose `End` was saved last, with its totals (the only one whose delete
    /// may have been committed: a later attempt runs only when the earlier was not).
    fn last_complete(ctx: &StepContext) -> Result<Option<([u8; 16], u64, u32)>> {
        let mut last = None;
        ctx.journal.saved(&mut |p| {
            if let SavedView::End {
                attempt,
                rows,
                chunks,
            } = view(p)?
            {
                last = Some((attempt, rows, chunks));
            }
            Ok(())
        })?;
        Ok(last)
    }
}

/// What one attempt's saved payloads add up to, from their heads (rows never decoded).
#[derive(Default)]
struct AttemptCheck {
    begun: bool,
    chunks: u32,
    rows: u64,
    /// The first chunk out of order, or whose rows do not match their SHA-256.
    bad: Option<String>,
}

impl DeleteRows {
    /// Checks the last complete attempt's before-images as undo will read them: its header,
    /// every chunk in order and matching its SHA-256, the chunk and row totals of its `End`
    /// and of the intent. `Ok(Some(why))`: damaged or missing; `Err`: could not be read for
    /// another reason (an I/O error).
    fn check_before_images(&self, ctx: &StepContext, d: &Detail) -> Result<Option<String>> {
        let mut attempts: Vec<([u8; 16], AttemptCheck)> = Vec::new();
        let mut last: Option<([u8; 16], u64, u32)> = None;
        let mut malformed: Option<String> = None;
        let read = ctx.journal.saved(&mut |p| {
            let v = match view(p) {
                Ok(v) => v,
                Err(e) => {
                    malformed.get_or_insert(e.to_string());
                    return Ok(());
                }
            };
            match v {
                SavedView::Begin { attempt, .. } => attempts.push((
                    attempt,
                    AttemptCheck {
                        begun: true,
                        ..Default::default()
                    },
                )),
                SavedView::Chunk(c) => {
                    if let Some((_, a)) = attempts.iter_mut().find(|a| a.0 == c.attempt) {
                        if a.bad.is_none() {
                            if c.index != a.chunks {
                                a.bad = Some(format!("chunk {} is out of order", c.index));
                            } else if let Err(e) = c.verify() {
                                a.bad = Some(e.to_string());
                            }
                        }
                        a.chunks += 1;
                        a.rows += c.row_count();
                    }
                }
                SavedView::End {
                    attempt,
                    rows,
                    chunks,
                } => last = Some((attempt, rows, chunks)),
            }
            Ok(())
        });
        match read {
            Ok(()) => {}
            // A data file damaged or missing: a line, not a corruption exit.
            Err(StepError::Corrupt(why) | StepError::Refused(why)) => return Ok(Some(why)),
            Err(e) => return Err(e),
        }
        if let Some(why) = malformed {
            return Ok(Some(why));
        }
        let Some((attempt, rows, chunks)) = last else {
            return Ok(Some("no complete before-image is in the journal".into()));
        };
        let Some((_, a)) = attempts.iter().find(|a| a.0 == attempt && a.1.begun) else {
            return Ok(Some("the last complete before-image has no header".into()));
        };
        if let Some(why) = &a.bad {
            return Ok(Some(why.clone()));
        }
        if a.chunks != chunks || a.rows != rows || rows != d.rows {
            return Ok(Some(format!(
                "the before-image holds {} rows in {} chunks; its end records {rows} rows in {chunks} chunks, and the table had {} rows",
                a.rows, a.chunks, d.rows
            )));
        }
        Ok(None)
    }
}

impl Step for DeleteRows {
    fn saved_detail(&self) -> Option<SavedDetail> {
        Some(SavedDetail::RowDigests(RowDigests::default()))
    }

    fn describe(&self, _root: &Path) -> String {
        format!(
            "delete every row of {} in {} (rows kept in the journal for undo)",
            self.table,
            db::redact(&self.connection)
        )
    }

    fn check(&self, _view: &mut PlanView) -> std::result::Result<(), String> {
        db::check_table_name(&self.table).map_err(|e| e.to_string())?;
        let t = connect_check(&self.connection, &self.root)?;
        db::with_session(&t, |d| d.table_info(&self.table).map(|_| ())).map_err(|e| e.to_string())
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let t = self.target()?;
        let (rows, info) = db::with_session(&t, |d| {
            let info = d.table_info(&self.table)?;
            Ok((d.count(&self.table)?, info))
        })
        .map_err(refused)?;
        let detail = Detail {
            connection: db::redact(&self.connection),
            table: self.table.clone(),
            rows,
            info,
        };
        Ok(Intent {
            touches: Vec::new(),
            detail: serde_json::to_string(&detail).expect("detail serializes"),
        })
    }

    fn apply(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome> {
        let d = Self::detail(intent)?;
        let t = self.target()?;
        let attempt = *uuid::Uuid::new_v4().as_bytes();
        let table = self.table.as_str();
        let journal_error = JournalErrors::default();
        let (rows, chunks) = db::with_session(&t, |db| {
            let info = db.table_info(table)?;
            if info != d.info {
                return Err(db::err(format!(
                    "{table} changed shape since the intent was recorded"
                )));
            }
            db.begin()?;
            ctx.journal
                .save(encode(&Saved::Begin {
                    attempt,
                    info: info.clone(),
                    chunk: CHUNK as u32,
                })
                .map_err(to_db)?)
                .map_err(|e| journal_error.keep(e))?;
            let mut buf: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
            let mut rows = 0u64;
            let mut chunks = 0u32;
            let flush = |buf: &mut Vec<Vec<Value>>, chunks: &mut u32| -> db::Result<()> {
                let p = chunk_payload(&attempt, *chunks, buf).map_err(to_db)?;
                buf.clear();
                ctx.journal.save(p).map_err(|e| journal_error.keep(e))?;
                *chunks += 1;
                Ok(())
            };
            db.scan(table, &info, &mut |row| {
                buf.push(row);
                rows += 1;
                if buf.len() == CHUNK {
                    flush(&mut buf, &mut chunks)?;
                }
                Ok(())
            })?;
            if !buf.is_empty() {
                flush(&mut buf, &mut chunks)?;
            }
            ctx.journal
                .save(encode(&Saved::End {
                    attempt,
                    rows,
                    chunks,
                })
                .map_err(to_db)?)
                .map_err(|e| journal_error.keep(e))?;
            // Write-ahead: the before-images are durable before the first row goes.
            ctx.journal.sync().map_err(|e| journal_error.keep(e))?;
            if rows != d.rows {
                return Err(db::err(format!(
                    "{table} had {} rows when the intent was recorded and {rows} now; nothing deleted",
                    d.rows
                )));
            }
            let deleted = db.delete_all(table)?;
            if deleted != rows {
                return Err(db::err(format!(
                    "deleting from {table} removed {deleted} rows, {rows} were saved; rolled back"
                )));
            }
            db.commit()?;
            Ok((rows, chunks))
        })
        .map_err(|e| journal_error.or(e))?;
        Ok(Outcome {
            after: Vec::new(),
            notes: vec![format!(
                "deleted {rows} rows from {table}; before-images kept in {chunks} journal records"
            )],
        })
    }

    fn settle(&self, _ctx: &StepContext, _intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        // An interrupted transaction is rolled back by the database itself.
        Ok(())
    }

    fn probe(&self, ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<Probe> {
        let d = Self::detail(intent)?;
        let t = self.target()?;
        let now = db::with_session(&t, |db| db.count(&self.table)).map_err(refused)?;
        if d.rows == 0 || now == d.rows {
            return Ok(Probe::NotApplied);
        }
        let complete = Self::last_complete(ctx)?;
        if now == 0 && complete.is_some_and(|(_, rows, _)| rows == d.rows) {
            return Ok(Probe::Applied);
        }
        Ok(Probe::Inconsistent(format!(
            "{} has {now} rows; it had {} before the step and 0 after it",
            self.table, d.rows
        )))
    }

    fn fingerprint(&self) -> Result<Option<super::Fingerprint>> {
        super::db_fingerprint::take(&self.connection, &self.root, Some(&self.table)).map(Some)
    }

    /// The rows undo re-inserts: the last complete attempt's before-images, whole and adding
    /// up. A step not done whose table still holds its rows was not applied: nothing needed.
    fn verify_artifacts(
        &self,
        ctx: &StepContext,
        intent: &Intent,
        o: Option<&Outcome>,
    ) -> Result<Vec<String>> {
        let d = Self::detail(intent)?;
        if o.is_none() {
            let t = self.target()?;
            let now = db::with_session(&t, |db| db.count(&self.table)).map_err(refused)?;
            if d.rows == 0 || now == d.rows {
                return Ok(Vec::new());
            }
        }
        Ok(self
            .check_before_images(ctx, &d)?
            .map(|why| {
                format!(
                    "the saved rows of {} (its before-image in the journal) cannot be restored: {why}",
                    self.table
                )
            })
            .into_iter()
            .collect())
    }

    fn undo(&self, ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        let d = Self::detail(intent)?;
        let Some((attempt, rows, chunks)) = Self::last_complete(ctx)? else {
            return Err(refused(format!(
                "no complete before-image of {} in the journal; cannot restore its rows",
                self.table
            )));
        };
        let t = self.target()?;
        let table = self.table.as_str();
        let mut info: Option<(TableInfo, usize)> = None;
        let journal_error = JournalErrors::default();
        db::with_session(&t, |db| {
            db.begin()?;
            let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(chunks as usize);
            let mut inserted = 0u64;
            let mut failure: Option<db::DbError> = None;
            ctx.journal
                .saved(&mut |p| {
                    if failure.is_some() {
                        return Ok(());
                    }
                    let r: db::Result<()> = (|| {
                        match view(p).map_err(to_db)? {
                            SavedView::Begin {
                                attempt: a,
                                info: i,
                                chunk,
                            } if a == attempt => info = Some((i, chunk as usize)),
                            SavedView::Chunk(c) if c.attempt == attempt => {
                                let (i, _) = info.as_ref().ok_or_else(|| {
                                    db::err("before-image chunk without its header")
                                })?;
                                if c.index as usize != hashes.len() || c.verify().is_err() {
                                    return Err(db::err(format!(
                                        "before-image chunk {} of {table} is out of order or altered",
                                        c.index
                                    )));
                                }
                                let rows = c.decode_rows().map_err(to_db)?;
                                db.insert(table, i, &rows)?;
                                inserted += rows.len() as u64;
                                hashes.push(c.sha256);
                            }
                            _ => {}
                        }
                        Ok(())
                    })();
                    if let Err(e) = r {
                        failure = Some(e);
                    }
                    Ok(())
                })
                .map_err(|e| journal_error.keep(e))?;
            if let Some(e) = failure {
                return Err(e);
            }
            if inserted != rows || hashes.len() != chunks as usize || rows != d.rows {
                return Err(db::err(format!(
                    "the before-image of {table} holds {inserted} rows in {} chunks; {rows} rows in {chunks} chunks were recorded",
                    hashes.len()
                )));
            }
            // Read back: same count, same rows in the same key order.
            let (i, chunk) = info
                .clone()
                .ok_or_else(|| db::err(format!("the before-image of {table} has no header")))?;
            let mut buf = Vec::with_capacity(chunk);
            let mut k = 0usize;
            let mut same = true;
            db.scan(table, &i, &mut |row| {
                buf.push(row);
                if buf.len() == chunk {
                    same &= hashes.get(k) == Some(&chunk_hash(&buf));
                    k += 1;
                    buf.clear();
                }
                Ok(())
            })?;
            if !buf.is_empty() {
                same &= hashes.get(k) == Some(&chunk_hash(&buf));
                k += 1;
            }
            if !same || k != hashes.len() {
                return Err(db::err(format!(
                    "{table} read back after re-inserting differs from its before-image; rolled back"
                )));
            }
            db.commit()
        })
        .map_err(|e| journal_error.or(e))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::steps::StepJournal;

    fn rows(n: usize) -> Vec<Vec<Value>> {
        (0..n)
            .map(|i| {
                vec![
                    Value::I64(i as i64),
                    if i % 3 == 0 {
                        Value::Null
                    } else {
                        Value::Str(format!("row «{i}»"))
                    },
                    Value::Bytes(vec![i as u8; i % 5]),
                ]
            })
            .collect()
    }

    /// The hand-written chunk layout is `Saved::Chunk` as the journal codec writes it, so
    /// journals of earlier builds read the same.
    #[test]
    fn a_chunk_payload_is_saved_chunk_in_the_journal_codec() {
        let attempt = [9u8; 16];
        for n in [0, 1, 7, 300] {
            let rows = rows(n);
            let payload = chunk_payload(&attempt, 5, &rows).unwrap();
            let serde = encode(&Saved::Chunk {
                attempt,
                index: 5,
                rows: rows.clone(),
                sha256: chunk_hash(&rows),
            })
            .unwrap();
            assert_eq!(payload, serde, "{n} rows");
            let SavedView::Chunk(c) = view(&payload).unwrap() else {
                panic!("not read as a chunk")
            };
            assert_eq!((c.attempt, c.index, c.row_count()), (attempt, 5, n as u64));
            c.verify().unwrap();
            assert_eq!(c.decode_rows().unwrap(), rows);
        }
    }

    /// Any prefix of a chunk, and a chunk with one byte changed, is refused or fails its
    /// check: never a panic, never rows that were not saved.
    #[test]
    fn a_truncated_or_altered_chunk_is_refused() {
        let payload = chunk_payload(&[1; 16], 0, &rows(20)).unwrap();
        for n in 0..payload.len() {
            if let Ok(SavedView::Chunk(c)) = view(&payload[..n]) {
                assert!(c.verify().is_err(), "prefix of {n} bytes passed its check");
            }
        }
        for i in CHUNK_HEAD..payload.len() {
            let mut altered = payload.clone();
            altered[i] ^= 0x40;
            let SavedView::Chunk(c) = view(&altered).unwrap() else {
                panic!("not read as a chunk")
            };
            assert!(c.verify().is_err(), "byte {i} changed passed the check");
        }
    }

    /// Saved data in memory; `saved` fails with a corruption from its `fail_from`th call on.
    struct MemoryJournal {
        saved: Vec<Vec<u8>>,
        new: RefCell<Vec<Vec<u8>>>,
        calls: Cell<u32>,
        fail_from: u32,
    }

    impl MemoryJournal {
        fn new(saved: Vec<Vec<u8>>, fail_from: u32) -> MemoryJournal {
            MemoryJournal {
                saved,
                new: RefCell::new(Vec::new()),
                calls: Cell::new(0),
                fail_from,
            }
        }
    }

    impl StepJournal for MemoryJournal {
        fn save(&self, payload: Vec<u8>) -> Result<()> {
            self.new.borrow_mut().push(payload);
            Ok(())
        }
        fn sync(&self) -> Result<()> {
            Ok(())
        }
        fn saved(&self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
            self.calls.set(self.calls.get() + 1);
            if self.calls.get() >= self.fail_from {
                return Err(StepError::Corrupt("saved data damaged".into()));
            }
            self.saved.iter().try_for_each(|p| f(p))
        }
    }

    fn with_ctx<R>(dir: &Path, journal: &MemoryJournal, f: impl FnOnce(&StepContext) -> R) -> R {
        let deferred = crate::durable_fs::DeferredDirs::default();
        f(&StepContext {
            trash: dir.join("trash"),
            journal_dir: dir,
            on_bytes: &|_| {},
            on_files: &|_| {},
            on_phase: &|_| {},
            journal,
            deferred: &deferred,
        })
    }

    /// Apply saves the rows and deletes them; undo puts them back. A journal corruption met
    /// inside undo's database session stays a typed corruption (exit 3), and the session's
    /// transaction is rolled back.
    #[test]
    fn undo_restores_the_rows_and_keeps_a_journal_corruption_typed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("u.sqlite");
        rusqlite::Connection::open(&file)
            .unwrap()
            .execute_batch(
                "CREATE TABLE T (Id INTEGER PRIMARY KEY, Name TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)
                 INSERT INTO T SELECT i, 'name ' || i FROM n;",
            )
            .unwrap();
        let step = DeleteRows {
            connection: format!("sqlite:{}", file.display()),
            table: "T".into(),
            root: dir.path().to_path_buf(),
        };
        let count = || db::with_session(&step.target().unwrap(), |d| d.count("T")).unwrap();
        let applied = MemoryJournal::new(Vec::new(), u32::MAX);
        let intent = with_ctx(dir.path(), &applied, |ctx| {
            let intent = step.intent(ctx).unwrap();
            step.apply(ctx, &intent).unwrap();
            intent
        });
        let saved = applied.new.into_inner();
        assert_eq!(saved.len(), 2 + 3, "begin, 3 chunks, end");
        assert_eq!(count(), 0);
        let undo = |fail_from: u32| {
            let journal = MemoryJournal::new(saved.clone(), fail_from);
            with_ctx(dir.path(), &journal, |ctx| step.undo(ctx, &intent, None))
        };
        // The first read (the last complete attempt) passes, the second (inside the
        // session, re-inserting) meets the corruption.
        let e = undo(2).unwrap_err();
        assert!(matches!(e, StepError::Corrupt(_)), "{e:?}");
        assert_eq!(count(), 0, "the session's inserts are rolled back");
        undo(u32::MAX).unwrap();
        assert_eq!(count(), 2500);
    }
}
