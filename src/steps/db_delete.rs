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

/// One StepData payload of this step.
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
        match decode(payload)? {
            Saved::Begin { attempt, .. } => self.attempts.push((attempt, Vec::new(), false)),
            Saved::Chunk {
                attempt,
                index,
                rows,
                sha256,
            } => {
                if chunk_hash(&rows) != sha256 {
                    return Err(refused(format!(
                        "the saved rows of chunk {index} do not match its recorded SHA-256"
                    )));
                }
                if let Some((_, chunks, _)) = self.attempts.iter_mut().find(|a| a.0 == attempt) {
                    chunks.push(ChunkDigest {
                        chunk: index,
                        rows: rows.len() as u64,
                        sha256: hex::encode(sha256),
                    });
                }
            }
            Saved::End { attempt, .. } => {
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

pub(crate) fn chunk_hash(rows: &[Vec<Value>]) -> [u8; 32] {
    Sha256::digest(codec().serialize(rows).expect("rows serialize")).into()
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
/// parses, the server answers and accepts the login.
pub(crate) fn connect_check(connection: &str, root: &Path) -> std::result::Result<Target, String> {
    db::check_no_literal_password(connection).map_err(|e| e.to_string())?;
    let t = db::target(connection, root).map_err(|e| e.to_string())?;
    db::with_session(&t, |_| Ok(()))
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
            if let Saved::End {
                attempt,
                rows,
                chunks,
            } = decode(p)?
            {
                last = Some((attempt, rows, chunks));
            }
            Ok(())
        })?;
        Ok(last)
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
                .map_err(to_db)?;
            let mut buf: Vec<Vec<Value>> = Vec::with_capacity(CHUNK);
            let mut rows = 0u64;
            let mut chunks = 0u32;
            let flush = |buf: &mut Vec<Vec<Value>>, chunks: &mut u32| -> db::Result<()> {
                let rows = std::mem::take(buf);
                let sha256 = chunk_hash(&rows);
                let p = encode(&Saved::Chunk {
                    attempt,
                    index: *chunks,
                    rows,
                    sha256,
                })
                .map_err(to_db)?;
                ctx.journal.save(p).map_err(to_db)?;
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
                .map_err(to_db)?;
            // Write-ahead: the before-images are durable before the first row goes.
            ctx.journal.sync().map_err(to_db)?;
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
        .map_err(refused)?;
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
                        match decode(p).map_err(to_db)? {
                            Saved::Begin {
                                attempt: a,
                                info: i,
                                chunk,
                            } if a == attempt => info = Some((i, chunk as usize)),
                            Saved::Chunk {
                                attempt: a,
                                index,
                                rows,
                                sha256,
                            } if a == attempt => {
                                let (i, _) = info.as_ref().ok_or_else(|| {
                                    db::err("before-image chunk without its header")
                                })?;
                                if index as usize != hashes.len() || chunk_hash(&rows) != sha256 {
                                    return Err(db::err(format!(
                                        "before-image chunk {index} of {table} is out of order or altered"
                                    )));
                                }
                                db.insert(table, i, &rows)?;
                                inserted += rows.len() as u64;
                                hashes.push(sha256);
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
                .map_err(to_db)?;
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
            let (i, chunk) = info.clone().expect("a complete attempt has a header");
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
        .map_err(refused)
    }
}
