//! SQLite through rusqlite (bundled): the embedded backend for the demo and the tests.
//! Backups use SQLite's online backup API into a staging file, checked with
//! `PRAGMA integrity_check`, fsynced and renamed into place.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags};

use super::{err, BackupCheck, Column, Database, Result, TableInfo, Value};
use crate::durable_fs;

pub struct Sqlite {
    conn: Connection,
    path: std::path::PathBuf,
    in_txn: bool,
}

fn e(what: &str) -> impl FnOnce(rusqlite::Error) -> super::DbError + '_ {
    move |x| err(format!("sqlite: {what}: {}", message(&x)))
}

/// What went wrong, in words. An error SQLite reports by its code alone (the online backup
/// API's: rusqlite reads the message from a connection that holds none, "not an error")
/// is named from its code: "Attempt to write a readonly database (code 8)".
fn message(x: &rusqlite::Error) -> String {
    match x {
        rusqlite::Error::SqliteFailure(code, msg)
            if msg.as_deref().is_none_or(|m| m == "not an error") =>
        {
            let text = match rusqlite::ffi::code_to_str(code.extended_code) {
                t if t.starts_with("Unknown") => {
                    rusqlite::ffi::code_to_str(code.extended_code & 0xff)
                }
                t => t,
            };
            format!("{text} (SQLite code {})", code.extended_code)
        }
        _ => x.to_string(),
    }
}

/// The files SQLite keeps beside a database while it writes it (rollback journal, WAL and
/// its index): left behind when a process dies inside a write.
pub fn sidecars(db: &Path) -> [std::path::PathBuf; 3] {
    ["-journal", "-wal", "-shm"].map(|suffix| {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        db.with_file_name(name)
    })
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Sqlite {
    /// Opens an existing database (never creates one).
    pub fn open(path: &Path) -> Result<Sqlite> {
        if !path.is_file() {
            return Err(err(format!(
                "sqlite: {}: no such database file",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(e("opening"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(e("busy_timeout"))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(e("enabling foreign keys"))?;
        // Fails here (not later) when the file is not a database.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(e(&path.display().to_string()))?;
        Ok(Sqlite {
            conn,
            path: path.to_path_buf(),
            in_txn: false,
        })
    }

    fn integrity_check(conn: &Connection, what: &Path) -> Result<()> {
        let r: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|x| {
                err(format!(
                    "sqlite: checking {}: {}",
                    what.display(),
                    message(&x)
                ))
            })?;
        if r != "ok" {
            return Err(err(format!(
                "sqlite: {} failed its integrity check: {r}",
                what.display()
            )));
        }
        Ok(())
    }
}

fn value(v: ValueRef) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::I64(i),
        ValueRef::Real(f) => Value::F64(f),
        // Each value keeps its storage class: TEXT stays TEXT even when it is not UTF-8.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Str(s.to_string()),
            Err(_) => Value::TextBytes(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

/// A value bound with its storage class (INTEGER, REAL, TEXT, BLOB or NULL).
fn param(v: &Value) -> ToSqlOutput<'_> {
    use rusqlite::types::Value as S;
    ToSqlOutput::Owned(match v {
        // TEXT bound from its bytes (sqlite3_bind_text takes them as they are).
        Value::TextBytes(b) => return ToSqlOutput::Borrowed(ValueRef::Text(b)),
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(*b as i64),
        Value::U8(i) => S::Integer(*i as i64),
        Value::I16(i) => S::Integer(*i as i64),
        Value::I32(i) => S::Integer(*i as i64),
        Value::I64(i) => S::Integer(*i),
        // Never produced by this backend; stored as text if ever given.
        v @ (Value::DateTime(..)
        | Value::SmallDateTime(..)
        | Value::Date(..)
        | Value::Time(..)
        | Value::DateTime2(..)
        | Value::DateTimeOffset(..)) => S::Text(format!("{v:?}")),
        Value::F32(f) => S::Real(*f as f64),
        Value::F64(f) => S::Real(*f),
        Value::Str(s) => S::Text(s.clone()),
        Value::Bytes(b) => S::Blob(b.clone()),
        Value::Guid(g) => S::Blob(g.to_vec()),
        Value::Numeric(v, scale) => S::Text(format!("{v}e-{scale}")),
    })
}

impl Database for Sqlite {
    fn begin(&mut self) -> Result<()> {
        // IMMEDIATE: the write lock is taken now, so the rows read are the rows deleted.
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(e("BEGIN"))?;
        self.in_txn = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(e("COMMIT"))?;
        self.in_txn = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK").map_err(e("ROLLBACK"))?;
        }
        self.in_txn = false;
        Ok(())
    }

    fn count(&mut self, table: &str) -> Result<u64> {
        let t = super::check_table_name(table)?;
        self.conn
            .query_row(&format!("SELECT count(*) FROM {}", q(t)), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(e(&format!("counting the rows of {t}")))
    }

    fn has_table(&mut self, table: &str) -> Result<bool> {
        let t = super::check_table_name(table)?;
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [t],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(e(&format!("looking for the table {t}")))
    }

    fn all_tables(&mut self) -> Result<Option<Vec<String>>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .map_err(e("listing the tables"))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(e("listing the tables"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(e("listing the tables"))?;
        Ok(Some(names))
    }

    fn table_info(&mut self, table: &str) -> Result<TableInfo> {
        let t = super::check_table_name(table)?;
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", q(t)))
            .map_err(e("table_info"))?;
        let cols: Vec<(String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))
            .map_err(e("table_info"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(e("table_info"))?;
        if cols.is_empty() {
            return Err(err(format!("sqlite: table {t} does not exist")));
        }
        let mut pk: Vec<(i64, String)> = cols
            .iter()
            .filter(|c| c.2 > 0)
            .map(|c| (c.2, c.0.clone()))
            .collect();
        pk.sort();
        let key = if pk.is_empty() {
            vec![cols[0].0.clone()]
        } else {
            pk.into_iter().map(|p| p.1).collect()
        };
        let identity = cols
            .iter()
            .any(|c| c.1.to_ascii_uppercase().contains("IDENTITY"));
        Ok(TableInfo {
            columns: cols
                .iter()
                .map(|c| Column {
                    name: c.0.clone(),
                    binary: {
                        let t = c.1.to_ascii_uppercase();
                        t.contains("BLOB") || t.contains("BINARY")
                    },
                })
                .collect(),
            key,
            identity,
        })
    }

    fn scan(
        &mut self,
        table: &str,
        info: &TableInfo,
        f: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<()> {
        let t = super::check_table_name(table)?;
        let cols: Vec<String> = info.columns.iter().map(|c| q(&c.name)).collect();
        let key: Vec<String> = info.key.iter().map(|c| q(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            q(t),
            key.join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(e("reading rows"))?;
        let mut rows = stmt.query([]).map_err(e("reading rows"))?;
        let n = cols.len();
        while let Some(r) = rows.next().map_err(e("reading rows"))? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(value(r.get_ref(i).map_err(e("reading rows"))?));
            }
            f(row)?;
        }
        Ok(())
    }

    fn delete_all(&mut self, table: &str) -> Result<u64> {
        let t = super::check_table_name(table)?;
        self.conn
            .execute(&format!("DELETE FROM {}", q(t)), [])
            .map(|n| n as u64)
            .map_err(e(&format!("deleting the rows of {t}")))
    }

    fn insert(&mut self, table: &str, info: &TableInfo, rows: &[Vec<Value>]) -> Result<()> {
        let t = super::check_table_name(table)?;
        let cols: Vec<String> = info.columns.iter().map(|c| q(&c.name)).collect();
        let marks = vec!["?"; cols.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            q(t),
            cols.join(", ")
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(e(&format!("inserting into {t}")))?;
        for r in rows {
            stmt.execute(params_from_iter(r.iter().map(param)))
                .map_err(e(&format!("inserting into {t}")))?;
        }
        Ok(())
    }

    fn backup(&mut self, file: &Path) -> Result<()> {
        let staged = durable_fs::staging_path(file);
        for p in std::iter::once(staged.clone()).chain(sidecars(&staged)) {
            durable_fs::remove_path(&p)
                .map_err(|x| err(format!("removing {}: {x}", p.display())))?;
        }
        {
            // The backup holds every identity: owner-only from its creation, not only once
            // it is complete (SQLite would create it with the umask's mode).
            crate::platform::create_private_file(&staged)
                .map_err(|x| err(format!("sqlite: creating {}: {x}", staged.display())))?;
            let mut dst = Connection::open(&staged).map_err(|x| {
                err(format!(
                    "sqlite: creating {}: {}",
                    staged.display(),
                    message(&x)
                ))
            })?;
            let b = rusqlite::backup::Backup::new(&self.conn, &mut dst)
                .map_err(e("starting the backup"))?;
            b.run_to_completion(1024, Duration::from_millis(0), None)
                .map_err(e("backup"))?;
            drop(b);
            Self::integrity_check(&dst, &staged)?;
        }
        let io = |what: &'static str| {
            let p = file.to_path_buf();
            move |x: std::io::Error| err(format!("{what} {}: {x}", p.display()))
        };
        // The backup holds every identity: owner-only, like the journal.
        crate::platform::make_private_file(&staged).map_err(io("protecting"))?;
        durable_fs::fsync_file(&staged).map_err(io("syncing"))?;
        durable_fs::rename(&staged, file).map_err(io("placing"))?;
        self.verify_backup(file)?.require(file)
    }

    fn verify_backup(&mut self, file: &Path) -> Result<BackupCheck> {
        let meta = match file.symlink_metadata() {
            Ok(m) => m,
            Err(x) if x.kind() == std::io::ErrorKind::NotFound => return Ok(BackupCheck::Absent),
            Err(x) => return Err(err(format!("reading {}: {x}", file.display()))),
        };
        if !meta.is_file() {
            return Err(err(format!(
                "backup {} is not a file: cannot check it",
                file.display()
            )));
        }
        // "Not a database" and "corrupt" are a bad backup; any other failure (busy, I/O,
        // cannot open) leaves the question open.
        let bad = |x: &rusqlite::Error| {
            matches!(
                x.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            )
        };
        let c = match Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY) {
            Ok(c) => c,
            Err(x) if bad(&x) => return Ok(BackupCheck::Bad(x.to_string())),
            Err(x) => {
                return Err(err(format!(
                    "sqlite: opening {}: {}",
                    file.display(),
                    message(&x)
                )))
            }
        };
        match c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
            Ok(r) if r == "ok" => Ok(BackupCheck::Verified),
            Ok(r) => Ok(BackupCheck::Bad(format!("integrity check: {r}"))),
            Err(x) if bad(&x) => Ok(BackupCheck::Bad(x.to_string())),
            Err(x) => Err(err(format!(
                "sqlite: checking {}: {}",
                file.display(),
                message(&x)
            ))),
        }
    }

    fn restore(&mut self, file: &Path) -> Result<()> {
        self.verify_backup(file)?.require(file)?;
        self.rollback()?;
        self.conn
            .restore(
                rusqlite::DatabaseName::Main,
                file,
                None::<fn(rusqlite::backup::Progress)>,
            )
            .map_err(|x| {
                err(format!(
                    "sqlite: restoring {} from {}: {}",
                    self.path.display(),
                    file.display(),
                    message(&x)
                ))
            })
    }

    fn version(&mut self) -> Result<Option<String>> {
        let exists: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'UM_DatabaseVersion'",
                [],
                |r| r.get(0),
            )
            .map_err(e("reading the version"))?;
        if exists == 0 {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT Version FROM UM_DatabaseVersion ORDER BY rowid DESC LIMIT 1",
                [],
                |r| r.get::<_, String>(0),
            )
            .map(Some)
            .map_err(e("reading the version"))
    }

    /// Opened read-write, SQLite falls back to read-only when the file cannot be written
    /// (read-only attribute, permissions, an immutable flag): say so. Then a write taken
    /// and rolled back (the header's user version set to itself) shows that the lock and
    /// the rollback journal beside the file can be had.
    fn check_writable(&mut self) -> Result<()> {
        if self.in_txn {
            // Writing already (this session holds the write lock).
            return Ok(());
        }
        let shown = self.path.display().to_string();
        let read_only = self
            .conn
            .is_readonly(rusqlite::DatabaseName::Main)
            .map_err(e(&shown))?;
        if read_only {
            return Err(err(format!(
                "sqlite: {shown} can be read but not written by this account (a read-only attribute, its permissions or an immutable flag)"
            )));
        }
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(e(&shown))?;
        let tried = self
            .conn
            .execute_batch(&format!("BEGIN IMMEDIATE; PRAGMA user_version = {v};"));
        let undone = self.rollback();
        match tried {
            Ok(()) => undone,
            // Another writer holds the lock for now: a wait, not a refusal.
            Err(x)
                if matches!(
                    x.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                undone
            }
            Err(x) => Err(err(format!(
                "sqlite: {shown} cannot be written: {}",
                message(&x)
            ))),
        }
    }

    #[cfg(any(test, feature = "testing"))]
    fn execute(&mut self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(e("executing"))
    }

    fn alive(&mut self) -> bool {
        self.conn.is_autocommit()
    }

    fn lock(&mut self, _resource: &str) -> Result<()> {
        // The root lock already serializes runs on one installation; SQLite files are local.
        Ok(())
    }
}

/// A file this account cannot write, for tests; made writable again when dropped. The
/// read-only attribute first (what stops a Windows account); where that does not stop this
/// account (root on Linux ignores mode bits), the immutable flag (`chattr +i`). `None`
/// where neither makes the file unwritable.
#[cfg(any(test, feature = "testing"))]
pub struct Unwritable(std::path::PathBuf);

#[cfg(any(test, feature = "testing"))]
impl Unwritable {
    pub fn make(path: &Path) -> Option<Unwritable> {
        let set = |readonly: bool| {
            let mut p = std::fs::metadata(path).ok()?.permissions();
            p.set_readonly(readonly);
            std::fs::set_permissions(path, p).ok()
        };
        set(true)?;
        let guard = Unwritable(path.to_path_buf());
        let writable = || std::fs::OpenOptions::new().append(true).open(path).is_ok();
        if !writable() {
            return Some(guard);
        }
        let immutable = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (immutable && !writable()).then_some(guard)
    }
}

#[cfg(any(test, feature = "testing"))]
impl Drop for Unwritable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
        if let Ok(m) = std::fs::metadata(&self.0) {
            let mut p = m.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
            let _ = std::fs::set_permissions(&self.0, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error SQLite reports by its code alone (rusqlite reads "not an error" from a
    /// connection that holds no message, as its `restore` does) is named from its code.
    #[test]
    fn an_error_known_by_its_code_alone_is_named() {
        let x = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some("not an error".into()),
        );
        let m = message(&x);
        assert!(!m.contains("not an error"), "{m}");
        assert!(m.contains("readonly database"), "{m}");
        let dbmoved = rusqlite::ffi::SQLITE_READONLY | (4 << 8);
        let m = message(&rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(dbmoved),
            None,
        ));
        assert!(m.contains("file has moved (SQLite code 1032)"), "{m}");
        let with_text = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some("UNIQUE constraint failed: T.Id".into()),
        );
        assert_eq!(message(&with_text), "UNIQUE constraint failed: T.Id");
    }

    fn database(dir: &Path, name: &str) -> std::path::PathBuf {
        let file = dir.join(name);
        Connection::open(&file)
            .unwrap()
            .execute_batch("CREATE TABLE T (Id INTEGER PRIMARY KEY, Name TEXT); INSERT INTO T VALUES (1, 'one');")
            .unwrap();
        file
    }

    /// The write check changes nothing on a writable database, and leaves the session
    /// usable.
    #[test]
    fn the_write_check_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = database(dir.path(), "w.sqlite");
        let before = std::fs::read(&file).unwrap();
        let mut db = Sqlite::open(&file).unwrap();
        db.check_writable().unwrap();
        assert!(db.conn.is_autocommit(), "no transaction left open");
        assert_eq!(std::fs::read(&file).unwrap(), before);
        assert!(sidecars(&file).iter().all(|p| !p.exists()));
        assert_eq!(db.count("T").unwrap(), 1);
    }

    /// A database file this account cannot write: the write check says so, and a restore
    /// onto it names the real cause, never "not an error".
    #[test]
    fn an_unwritable_database_is_named_by_the_write_check_and_the_restore() {
        let dir = tempfile::tempdir().unwrap();
        let file = database(dir.path(), "ro.sqlite");
        let backup = dir.path().join("b.sqlite");
        Sqlite::open(&file).unwrap().backup(&backup).unwrap();
        let Some(_guard) = Unwritable::make(&file) else {
            eprintln!("note: this account can write every file here (no read-only attribute, no chattr): the unwritable-file part is skipped");
            return;
        };
        let mut db = Sqlite::open(&file).unwrap();
        let e = db.check_writable().unwrap_err().to_string();
        assert!(e.contains("can be read but not written"), "{e}");
        assert!(e.contains("ro.sqlite"), "{e}");
        let e = db.restore(&backup).unwrap_err().to_string();
        assert!(!e.contains("not an error"), "{e}");
        assert!(e.contains("readonly database"), "{e}");
    }
}
