//! One client session: T-SQL statements executed on its own SQLite connection.

mod backup;
mod dml;
mod procedures;
mod select;
mod translate;
mod values;
mod variables;

use translate::{find_top_level, matching_paren, split_commas};
pub use values::coltype_from_decl;
use values::*;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{types::ValueRef, Connection, DatabaseName, OpenFlags};

use crate::protocol::{
    convert_for_column, ColType, Response, SqlError, Value, DONE_COUNT, DONE_ERROR, DONE_MORE,
};
use crate::sql::{self, object_name, quote_ident, quote_str, syntax_error, Tok};

pub const VERSION_STRING: &str =
    "Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64) \n\ttds-test-server (SQLite backend)";

#[derive(Clone, Copy, PartialEq, Debug)]
enum LockOwner {
    Session,
    Transaction,
}

#[derive(Debug)]
struct LockHold {
    spid: u32,
    exclusive: bool,
    mode: String,
    owner: LockOwner,
    count: u32,
}

/// State shared by every session of one server.
pub struct Shared {
    pub db_path: PathBuf,
    pub db_name: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub next_spid: AtomicU32,
    /// Set when the server stops: lock waits give up.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Number of live sessions (connection threads).
    pub live: std::sync::atomic::AtomicUsize,
    locks: Mutex<HashMap<String, Vec<LockHold>>>,
    /// Last identity value generated per table (lower-case name), so values
    /// are not reused after deletes (like SQL Server's identity seed).
    identity_last: Mutex<HashMap<String, i64>>,
    in_txn: Mutex<HashSet<u32>>,
    /// Sessions whose current database is the database (every session at login; `USE
    /// master` takes a session out, `USE [db]` puts it back): RESTORE needs none.
    in_db: Mutex<HashSet<u32>>,
    /// The database's last `rowversion` value (SQL Server's `@@DBTS`), per server process.
    dbts: Mutex<u64>,
}

impl Shared {
    pub fn new(
        db_path: PathBuf,
        db_name: String,
        user: Option<String>,
        password: Option<String>,
    ) -> Self {
        Shared {
            db_path,
            db_name,
            user,
            password,
            next_spid: AtomicU32::new(51),
            stopping: std::sync::atomic::AtomicBool::new(false),
            live: std::sync::atomic::AtomicUsize::new(0),
            locks: Mutex::new(HashMap::new()),
            identity_last: Mutex::new(HashMap::new()),
            in_txn: Mutex::new(HashSet::new()),
            in_db: Mutex::new(HashSet::new()),
            dbts: Mutex::new(0x07D0),
        }
    }
}

/// Several errors of one statement (e.g. 3201 followed by 3013).
#[derive(Debug)]
pub struct StmtError(pub Vec<SqlError>);

impl From<SqlError> for StmtError {
    fn from(e: SqlError) -> Self {
        StmtError(vec![e])
    }
}

type SResult<T> = Result<T, StmtError>;

/// Column names, declared types and rows of a query.
type QueryResult = (Vec<String>, Vec<Option<String>>, Vec<Vec<Value>>);

/// Batch-scoped variables (`DECLARE`d ones and sp_executesql parameters).
#[derive(Default)]
struct Vars {
    map: HashMap<String, (Option<ColType>, Value)>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&(Option<ColType>, Value)> {
        self.map.get(&name.to_ascii_lowercase())
    }
    fn set(&mut self, name: &str, ty: Option<ColType>, v: Value) {
        self.map.insert(name.to_ascii_lowercase(), (ty, v));
    }
}

struct Outcome {
    /// Row count to report in DONE (with DONE_COUNT), if any.
    rows: Option<u64>,
}

impl Outcome {
    fn none() -> Self {
        Outcome { rows: None }
    }
    fn count(n: u64) -> Self {
        Outcome { rows: Some(n) }
    }
}

struct TableInfo {
    name: String,
    /// (name, declared type); computed (generated) columns are not listed.
    columns: Vec<(String, String)>,
    identity: Option<String>,
    /// The `rowversion` (`timestamp`) column, whose values the server writes.
    rowversion: Option<String>,
    /// Computed columns (SQLite generated columns).
    computed: Vec<String>,
}

/// A declared type that is SQL Server's `rowversion` (or its old name `timestamp`).
pub(crate) fn is_rowversion(decl: &str) -> bool {
    let d = decl.trim().to_ascii_uppercase();
    d == "ROWVERSION" || d == "TIMESTAMP"
}

pub struct Session {
    shared: Arc<Shared>,
    pub spid: u32,
    conn: Connection,
    trancount: u32,
    tran_desc: u64,
    identity_insert: Option<String>,
    last_identity: Option<i64>,
    last_rowcount: u64,
    xact_abort: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.release_locks(None);
        self.shared.in_txn.lock().unwrap().remove(&self.spid);
        self.shared.in_db.lock().unwrap().remove(&self.spid);
    }
}

/// Errors after which SQL Server aborts the whole batch (compile errors).
fn aborts_batch(number: u32) -> bool {
    matches!(number, 102 | 105 | 137 | 156 | 195 | 207 | 208 | 50000)
}

fn sqlite_err(e: rusqlite::Error, op: &str, table: Option<&str>, db: &str) -> SqlError {
    let (code, msg) = match &e {
        rusqlite::Error::SqliteFailure(f, m) => (
            Some(f.extended_code),
            m.clone().unwrap_or_else(|| f.to_string()),
        ),
        other => (None, other.to_string()),
    };
    let t = table.unwrap_or("?");
    if let Some(x) = msg.strip_prefix("no such table: ") {
        return SqlError::new(
            208,
            format!("Invalid object name '{}'.", x.trim_start_matches("main.")),
        );
    }
    if let Some(x) = msg.strip_prefix("no such column: ") {
        let x = x.rsplit('.').next().unwrap_or(x);
        return SqlError::new(207, format!("Invalid column name '{x}'."));
    }
    if let Some(x) = msg.strip_prefix("no such function: ") {
        return SqlError::new(
            195,
            format!("'{x}' is not a recognized built-in function name."),
        );
    }
    if msg.contains("FOREIGN KEY constraint failed") {
        let kind = if op == "DELETE" {
            "REFERENCE"
        } else {
            "FOREIGN KEY"
        };
        return SqlError::new(
            547,
            format!(
                "The {op} statement conflicted with the {kind} constraint \"FK_{t}\". The conflict occurred in database \"{db}\", table \"dbo.{t}\"."
            ),
        );
    }
    if let Some(x) = msg.strip_prefix("UNIQUE constraint failed: ") {
        let kind = if code == Some(1555) {
            "PRIMARY KEY"
        } else {
            "UNIQUE KEY"
        };
        let prefix = if code == Some(1555) { "PK" } else { "UQ" };
        return SqlError::new(
            2627,
            format!(
                "Violation of {kind} constraint '{prefix}_{t}'. Cannot insert duplicate key in object 'dbo.{t}'. ({x})"
            ),
        );
    }
    if let Some(x) = msg.strip_prefix("NOT NULL constraint failed: ") {
        let col = x.rsplit('.').next().unwrap_or(x);
        return SqlError::new(
            515,
            format!(
                "Cannot insert the value NULL into column '{col}', table '{db}.dbo.{t}'; column does not allow nulls. {op} fails."
            ),
        );
    }
    if msg.contains("CHECK constraint failed") {
        return SqlError::new(
            547,
            format!("The {op} statement conflicted with the CHECK constraint. The conflict occurred in database \"{db}\", table \"dbo.{t}\"."),
        );
    }
    if let Some(rest) = msg.strip_prefix("near \"") {
        let near = rest.split('"').next().unwrap_or("");
        return syntax_error(near);
    }
    if msg.contains("incomplete input") {
        return SqlError::new(102, "Incorrect syntax near the end of the statement.");
    }
    if matches!(code, Some(c) if c & 0xff == 5 || c & 0xff == 6) {
        return SqlError::new(1222, "Lock request time out period exceeded.");
    }
    SqlError::new(50000, format!("tds-test-server: SQLite error: {msg}"))
}

impl Session {
    pub fn open(shared: Arc<Shared>) -> rusqlite::Result<Session> {
        let conn = Connection::open(&shared.db_path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA foreign_keys=ON;")?;
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        let spid = shared.next_spid.fetch_add(1, Ordering::SeqCst);
        shared.in_db.lock().unwrap().insert(spid);
        Ok(Session {
            shared,
            spid,
            conn,
            trancount: 0,
            tran_desc: 0,
            identity_insert: None,
            last_identity: None,
            last_rowcount: 0,
            xact_abort: false,
        })
    }

    fn db(&self) -> &str {
        &self.shared.db_name
    }

    /// Runs a batch (or the statement of an sp_executesql RPC) and writes
    /// the response tokens.
    pub fn run(
        &mut self,
        sql_text: &str,
        params: Vec<(String, Value)>,
        rpc: bool,
        resp: &mut Response,
    ) {
        let mut any_error = false;
        let result = (|| -> Result<(), ()> {
            let toks = match sql::lex(sql_text) {
                Ok(t) => t,
                Err(e) => {
                    resp.error(&e);
                    any_error = true;
                    return Err(());
                }
            };
            let stmts = sql::split(toks);
            // Compile-time check: every statement must be one we understand.
            for s in &stmts {
                if let Err(e) = classify(s) {
                    resp.error(&e);
                    any_error = true;
                    return Err(());
                }
            }
            let mut vars = Vars::default();
            for (name, v) in params {
                vars.set(&name, None, v);
            }
            let n = stmts.len();
            for (k, s) in stmts.iter().enumerate() {
                let last = k + 1 == n;
                let more = if last && !rpc { 0 } else { DONE_MORE };
                match self.exec(s, &mut vars, resp) {
                    Ok(o) => {
                        let (flag, rows) = match o.rows {
                            Some(r) => (DONE_COUNT, r),
                            None => (0, 0),
                        };
                        if let Some(r) = o.rows {
                            self.last_rowcount = r;
                        }
                        if rpc {
                            resp.done_in_proc(more | flag, rows);
                        } else {
                            resp.done(more | flag, rows);
                        }
                    }
                    Err(StmtError(errs)) => {
                        any_error = true;
                        let mut abort = errs.iter().any(|e| aborts_batch(e.number));
                        // SET XACT_ABORT ON: a run-time error rolls back the
                        // transaction and ends the batch.
                        if self.xact_abort && self.trancount > 0 {
                            let _ = self.conn.execute_batch("ROLLBACK");
                            self.end_tran();
                            resp.env_end_tran(10, self.current_desc());
                            abort = true;
                        } else if self.xact_abort {
                            abort = true;
                        }
                        for e in &errs {
                            resp.error(e);
                        }
                        let more = if abort && !rpc { 0 } else { more };
                        if rpc {
                            resp.done_in_proc(more | DONE_ERROR, 0);
                        } else {
                            resp.done(more | DONE_ERROR, 0);
                        }
                        if abort {
                            return Ok(());
                        }
                    }
                }
            }
            if n == 0 && !rpc {
                resp.done(0, 0);
            }
            Ok(())
        })();
        if result.is_err() && !rpc {
            resp.done(DONE_ERROR, 0);
        }
        if rpc {
            if result.is_err() {
                resp.done_in_proc(DONE_ERROR | DONE_MORE, 0);
            }
            resp.return_status(0);
            resp.done_proc(if any_error { DONE_ERROR } else { 0 }, 0);
        }
    }

    fn exec(&mut self, s: &[Tok], vars: &mut Vars, resp: &mut Response) -> SResult<Outcome> {
        let kw = s[0].ident().unwrap_or("").to_ascii_uppercase();
        match kw.as_str() {
            "BEGIN" => self.begin_tran(resp),
            "COMMIT" => self.commit_tran(resp),
            "ROLLBACK" => self.rollback_tran(resp),
            "SELECT" => self.select(s, vars, resp),
            "INSERT" => self.insert(s, vars, resp),
            "DELETE" => self.delete(s, vars, resp),
            "UPDATE" => self.update(s, vars),
            "SET" => self.set(s, vars),
            "DECLARE" => self.declare(s, vars),
            "EXEC" | "EXECUTE" => self.exec_proc(s, vars, resp),
            "BACKUP" => self.backup(s, resp),
            "RESTORE" => self.restore(s, resp),
            "USE" => self.use_database(s, resp),
            _ => Err(syntax_error(&s[0].display()).into()),
        }
    }

    // ---------------------------------------------------------------- transactions

    fn begin_tran(&mut self, resp: &mut Response) -> SResult<Outcome> {
        if self.trancount == 0 {
            self.conn
                .execute_batch("BEGIN")
                .map_err(|e| sqlite_err(e, "BEGIN", None, &self.shared.db_name))?;
            self.tran_desc += 1;
            let desc = ((self.spid as u64) << 32) | self.tran_desc;
            resp.env_begin_tran(desc);
            self.shared.in_txn.lock().unwrap().insert(self.spid);
        }
        self.trancount += 1;
        Ok(Outcome::none())
    }

    fn current_desc(&self) -> u64 {
        ((self.spid as u64) << 32) | self.tran_desc
    }

    fn end_tran(&mut self) {
        self.trancount = 0;
        self.shared.in_txn.lock().unwrap().remove(&self.spid);
        self.release_locks(Some(LockOwner::Transaction));
    }

    fn commit_tran(&mut self, resp: &mut Response) -> SResult<Outcome> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3902,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            )
            .into());
        }
        if self.trancount == 1 {
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.end_tran();
                resp.env_end_tran(10, self.current_desc());
                return Err(sqlite_err(e, "COMMIT", None, &self.shared.db_name).into());
            }
            self.end_tran();
            resp.env_end_tran(9, self.current_desc());
        } else {
            self.trancount -= 1;
        }
        Ok(Outcome::none())
    }

    fn rollback_tran(&mut self, resp: &mut Response) -> SResult<Outcome> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3903,
                "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            )
            .into());
        }
        let _ = self.conn.execute_batch("ROLLBACK");
        self.end_tran();
        resp.env_end_tran(10, self.current_desc());
        Ok(Outcome::none())
    }

    // ---------------------------------------------------------------- schema helpers

    fn table_info(&self, name: &str) -> SResult<TableInfo> {
        let canonical: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name = ?1 COLLATE NOCASE",
                [name],
                |r| r.get(0),
            )
            .ok();
        let Some(canonical) = canonical else {
            return Err(SqlError::new(208, format!("Invalid object name '{name}'.")).into());
        };
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote_ident(&canonical)))
            .map_err(|e| sqlite_err(e, "SELECT", Some(name), self.db()))?;
        let columns: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .and_then(|it| it.collect())
            .map_err(|e| sqlite_err(e, "SELECT", Some(name), self.db()))?;
        let identity = columns
            .iter()
            .find(|(_, t)| t.to_ascii_uppercase().contains("IDENTITY"))
            .map(|(n, _)| n.clone());
        let rowversion = columns
            .iter()
            .find(|(_, t)| is_rowversion(t))
            .map(|(n, _)| n.clone());
        let computed = self
            .all_columns(&canonical)
            .map_err(|e| sqlite_err(e, "SELECT", Some(name), self.db()))?
            .into_iter()
            .filter(|c| c.2)
            .map(|c| c.0)
            .collect();
        Ok(TableInfo {
            name: canonical,
            columns,
            identity,
            rowversion,
            computed,
        })
    }

    /// Every column of a table, computed ones included: (name, declared type, computed).
    fn all_columns(&self, table: &str) -> rusqlite::Result<Vec<(String, String, bool)>> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_xinfo({})", quote_ident(table)))?;
        let cols = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    // hidden: 2 and 3 are generated columns (virtual, stored).
                    matches!(r.get::<_, i64>(6)?, 2 | 3),
                ))
            })?
            .collect();
        cols
    }

    /// `sys.columns` as a temporary table (`temp.sys_columns`), filled from the
    /// database's tables each time a statement reads it: object_id (as `OBJECT_ID`
    /// gives it), column_id, name, is_computed, is_identity, system_type_id
    /// (189: `timestamp`/`rowversion`).
    fn refresh_sys_columns(&self) -> SResult<()> {
        let fail = |e| StmtError::from(sqlite_err(e, "SELECT", None, self.db()));
        self.conn
            .execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS sys_columns (object_id INTEGER, column_id INTEGER, name TEXT, is_computed BIT, is_identity BIT, system_type_id TINYINT); DELETE FROM temp.sys_columns;",
            )
            .map_err(fail)?;
        let tables: Vec<(i64, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT rowid, name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
                .map_err(fail)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(fail)?
                .collect::<rusqlite::Result<_>>()
                .map_err(fail)?;
            rows
        };
        for (id, table) in tables {
            for (k, (name, decl, computed)) in self
                .all_columns(&table)
                .map_err(fail)?
                .into_iter()
                .enumerate()
            {
                let d = decl.to_ascii_uppercase();
                let type_id: i64 = if is_rowversion(&decl) {
                    189
                } else {
                    match coltype_from_decl(&decl) {
                        Some(ColType::BigInt) => 127,
                        Some(ColType::Int) => 56,
                        Some(ColType::SmallInt) => 52,
                        Some(ColType::TinyInt) => 48,
                        Some(ColType::Bit) => 104,
                        Some(ColType::Float) => 62,
                        Some(ColType::VarBinary(_)) => 165,
                        Some(ColType::DateTime2) => 42,
                        Some(ColType::DateTime) => 61,
                        Some(ColType::Date) => 40,
                        _ => 231,
                    }
                };
                self.conn
                    .execute(
                        "INSERT INTO temp.sys_columns VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        rusqlite::params![
                            id,
                            k as i64 + 1,
                            name,
                            computed,
                            d.contains("IDENTITY"),
                            type_id
                        ],
                    )
                    .map_err(fail)?;
            }
        }
        Ok(())
    }

    fn object_id(&self, name: &str) -> Option<i64> {
        let n = sql::object_name_from_str(name)?;
        self.conn
            .query_row(
                "SELECT rowid FROM sqlite_master WHERE type IN ('table','view') AND name = ?1 COLLATE NOCASE",
                [n],
                |r| r.get(0),
            )
            .ok()
    }

    fn object_property(&self, id: i64, prop: &str) -> SResult<Value> {
        let name: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE rowid = ?1 AND type IN ('table','view')",
                [id],
                |r| r.get(0),
            )
            .ok();
        let Some(name) = name else {
            return Ok(Value::Null);
        };
        match prop.to_ascii_lowercase().as_str() {
            "tablehasidentity" => Ok(Value::Int(self.table_info(&name)?.identity.is_some() as i64)),
            "isusertable" | "istable" => Ok(Value::Int(1)),
            _ => Err(SqlError::new(
                50000,
                format!("tds-test-server: OBJECTPROPERTY '{prop}' is not supported"),
            )
            .into()),
        }
    }
}

/// Checks that a statement starts with something this server executes.
/// Valid T-SQL that is not supported still gets an error, never a guess.
fn classify(s: &[Tok]) -> Result<(), SqlError> {
    let first = &s[0];
    let ok = [
        "BEGIN", "COMMIT", "ROLLBACK", "SELECT", "INSERT", "DELETE", "UPDATE", "SET", "DECLARE",
        "EXEC", "EXECUTE", "BACKUP", "RESTORE", "USE",
    ];
    if ok.iter().any(|k| first.is(k)) {
        if first.is("BEGIN") || first.is("COMMIT") || first.is("ROLLBACK") {
            let second = s.get(1);
            let tran_word =
                second.is_some_and(|t| t.is("TRAN") || t.is("TRANSACTION") || t.is("WORK"));
            let valid_len = if tran_word {
                s.len() <= 3
            } else {
                s.len() == 1 && !first.is("BEGIN")
            };
            if !valid_len
                || (first.is("BEGIN") && !tran_word)
                || second.is_some_and(|t| t.is("WORK") && first.is("BEGIN"))
            {
                let near = s
                    .get(if tran_word { 2 } else { 1 })
                    .map(|t| t.display())
                    .unwrap_or_else(|| first.display());
                return Err(syntax_error(&near));
            }
        }
        return Ok(());
    }
    let known_tsql = [
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "MERGE",
        "WITH",
        "IF",
        "WHILE",
        "PRINT",
        "GRANT",
        "REVOKE",
        "DENY",
        "DBCC",
        "WAITFOR",
        "RAISERROR",
        "THROW",
        "SAVE",
        "GO",
        "BULK",
        "OPEN",
        "CLOSE",
        "FETCH",
        "DEALLOCATE",
        "KILL",
        "CHECKPOINT",
        "RETURN",
        "GOTO",
        "TRY",
        "CATCH",
        "END",
        "ELSE",
        "SHUTDOWN",
        "RECONFIGURE",
        "SETUSER",
        "REVERT",
        "DISABLE",
        "ENABLE",
        "READTEXT",
        "WRITETEXT",
        "UPDATETEXT",
    ];
    if known_tsql.iter().any(|k| first.is(k)) {
        return Err(SqlError::new(
            102,
            format!(
                "Incorrect syntax near '{}'. (tds-test-server does not support this statement)",
                first.display()
            ),
        ));
    }
    Err(syntax_error(&first.display()))
}
