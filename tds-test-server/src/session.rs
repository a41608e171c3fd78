//! One client session: T-SQL statements executed on its own SQLite connection.

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
    /// (name, declared type)
    columns: Vec<(String, String)>,
    identity: Option<String>,
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
    }
}

/// Maps a declared SQLite/T-SQL column type to the SQL Server wire type.
pub fn coltype_from_decl(decl: &str) -> Option<ColType> {
    let d = decl.to_ascii_uppercase();
    let len = || -> Option<u16> {
        let start = d.find('(')?;
        let end = d[start..].find(')')? + start;
        d[start + 1..end].trim().parse::<u16>().ok()
    };
    Some(if d.contains("BIGINT") {
        ColType::BigInt
    } else if d.contains("TINYINT") {
        ColType::TinyInt
    } else if d.contains("SMALLINT") {
        ColType::SmallInt
    } else if d.contains("INT") {
        ColType::Int
    } else if d.starts_with("BIT") || d.starts_with("BOOL") {
        ColType::Bit
    } else if d.contains("FLOAT")
        || d.contains("REAL")
        || d.contains("DOUBLE")
        || d.contains("DECIMAL")
        || d.contains("NUMERIC")
    {
        ColType::Float
    } else if d.contains("BINARY") || d.contains("BLOB") {
        ColType::VarBinary(len().filter(|n| *n <= 8000))
    } else if d.starts_with("DATETIME2") {
        ColType::DateTime2
    } else if d.starts_with("DATETIMEOFFSET") {
        ColType::NVarChar(None)
    } else if d.starts_with("DATETIME") || d.starts_with("SMALLDATETIME") {
        ColType::DateTime
    } else if d == "DATE" || d.starts_with("DATE ") {
        ColType::Date
    } else if d.contains("CHAR")
        || d.contains("TEXT")
        || d.contains("CLOB")
        || d.contains("TIME")
        || d.contains("UNIQUEIDENTIFIER")
    {
        ColType::NVarChar(len().filter(|n| *n <= 4000))
    } else {
        return None;
    })
}

fn infer_type(rows: &[Vec<Value>], k: usize) -> ColType {
    let mut ty: Option<ColType> = None;
    for r in rows {
        let t = match &r[k] {
            Value::Null => continue,
            Value::Text(_) => return ColType::NVarChar(None),
            Value::Blob(_) => return ColType::VarBinary(None),
            Value::Float(_) => ColType::Float,
            Value::Int(i) if i32::try_from(*i).is_ok() => ColType::Int,
            Value::Int(_) => ColType::BigInt,
        };
        ty = Some(match (ty, t) {
            (Some(ColType::Float), _) | (_, ColType::Float) => ColType::Float,
            (Some(ColType::BigInt), _) | (_, ColType::BigInt) => ColType::BigInt,
            _ => ColType::Int,
        });
    }
    ty.unwrap_or(ColType::Int)
}

fn value_from_ref(v: ValueRef) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn to_sql_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Int(i) => V::Integer(*i),
        Value::Float(f) => V::Real(*f),
        Value::Text(s) => V::Text(s.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Text(s) => quote_str(s),
        Value::Blob(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
    }
}

/// Errors after which SQL Server aborts the whole batch (compile errors).
fn aborts_batch(number: u32) -> bool {
    matches!(number, 102 | 105 | 137 | 156 | 195 | 207 | 208 | 50000)
}

const SQLITE_ONLY_WORDS: &[&str] = &[
    "LIMIT",
    "PRAGMA",
    "GLOB",
    "REGEXP",
    "AUTOINCREMENT",
    "RETURNING",
    "VACUUM",
    "ATTACH",
    "DETACH",
    "REINDEX",
    "ANALYZE",
];

const NOT_FUNCTIONS: &[&str] = &[
    "IN",
    "VALUES",
    "EXISTS",
    "AND",
    "OR",
    "NOT",
    "ON",
    "OVER",
    "AS",
    "WHERE",
    "SELECT",
    "FROM",
    "JOIN",
    "IS",
    "THEN",
    "ELSE",
    "WHEN",
    "BY",
    "SET",
    "TOP",
    "ALL",
    "ANY",
    "SOME",
    "DISTINCT",
    "INTO",
    "CASE",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "LIKE",
    "BETWEEN",
    "HAVING",
    "END",
];

const SAME_FUNCTIONS: &[&str] = &[
    "COUNT", "MAX", "MIN", "SUM", "AVG", "COALESCE", "NULLIF", "UPPER", "LOWER", "ABS", "ROUND",
    "CAST", "LTRIM", "RTRIM", "TRIM", "REPLACE", "IIF",
];

const TABLE_HINTS: &[&str] = &[
    "NOLOCK",
    "UPDLOCK",
    "ROWLOCK",
    "HOLDLOCK",
    "READPAST",
    "TABLOCK",
    "TABLOCKX",
    "XLOCK",
    "PAGLOCK",
    "READCOMMITTED",
    "READUNCOMMITTED",
    "REPEATABLEREAD",
    "SERIALIZABLE",
];

fn matching_paren(toks: &[Tok], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(open) {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// Splits `toks` at top-level commas.
fn split_commas(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (j, t) in toks.iter().enumerate() {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth -= 1;
        } else if t.is_op(",") && depth == 0 {
            out.push(&toks[start..j]);
            start = j + 1;
        }
    }
    out.push(&toks[start..]);
    out
}

fn find_top_level(toks: &[Tok], kw: &str) -> Option<usize> {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate() {
        if t.is_op("(") {
            depth += 1;
        } else if t.is_op(")") {
            depth -= 1;
        } else if depth == 0 && t.is(kw) {
            return Some(j);
        }
    }
    None
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
        Ok(TableInfo {
            name: canonical,
            columns,
            identity,
        })
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

    // ---------------------------------------------------------------- translation

    /// Translates T-SQL tokens to SQLite SQL. Variables become `?N` binds.
    fn translate(&self, toks: &[Tok], vars: &Vars, binds: &mut Vec<Value>) -> SResult<String> {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let t = &toks[i];
            let next = toks.get(i + 1);
            // schema stripping: dbo.X / db.dbo.X
            if t.ident().is_some() && next.is_some_and(|n| n.is_op(".")) {
                if t.ident().unwrap().eq_ignore_ascii_case("dbo") {
                    i += 2;
                    continue;
                }
                if toks
                    .get(i + 2)
                    .and_then(|x| x.ident())
                    .is_some_and(|x| x.eq_ignore_ascii_case("dbo"))
                    && toks.get(i + 3).is_some_and(|x| x.is_op("."))
                {
                    i += 4;
                    continue;
                }
            }
            match t {
                Tok::Word(w) => {
                    let up = w.to_ascii_uppercase();
                    if SQLITE_ONLY_WORDS.contains(&up.as_str()) {
                        return Err(syntax_error(w).into());
                    }
                    // table hints: WITH (NOLOCK, ...)
                    if up == "WITH" && next.is_some_and(|n| n.is_op("(")) {
                        if let Some(close) = matching_paren(toks, i + 1) {
                            let inner = &toks[i + 2..close];
                            if !inner.is_empty()
                                && inner
                                    .iter()
                                    .all(|x| x.is_op(",") || TABLE_HINTS.iter().any(|h| x.is(h)))
                            {
                                i = close + 1;
                                continue;
                            }
                        }
                    }
                    let prev_is_table_ctx = i > 0
                        && ["INTO", "UPDATE", "FROM", "JOIN", "TABLE", "REFERENCES"]
                            .iter()
                            .any(|k| toks[i - 1].is(k));
                    if next.is_some_and(|n| n.is_op("("))
                        && !prev_is_table_ctx
                        && !NOT_FUNCTIONS.contains(&up.as_str())
                    {
                        let close = matching_paren(toks, i + 1).ok_or_else(|| syntax_error(w))?;
                        let args = &toks[i + 2..close];
                        match up.as_str() {
                            "COUNT_BIG" => out.push("COUNT".into()),
                            "LEN" => out.push("LENGTH".into()),
                            "ISNULL" => out.push("IFNULL".into()),
                            "SUBSTRING" => out.push("SUBSTR".into()),
                            "GETDATE" | "GETUTCDATE" | "SYSDATETIME" | "SYSUTCDATETIME"
                                if args.is_empty() =>
                            {
                                out.push("CURRENT_TIMESTAMP".into());
                                i = close + 1;
                                continue;
                            }
                            "SCOPE_IDENTITY" if args.is_empty() => {
                                out.push(literal(
                                    &self.last_identity.map(Value::Int).unwrap_or(Value::Null),
                                ));
                                i = close + 1;
                                continue;
                            }
                            "DB_NAME" if args.is_empty() => {
                                out.push(quote_str(self.db()));
                                i = close + 1;
                                continue;
                            }
                            "APPLOCK_MODE" | "APPLOCK_TEST" => {
                                let parts = split_commas(args);
                                let mut texts = Vec::new();
                                for part in &parts {
                                    let v = match part {
                                        [Tok::Str(x)] => x.clone(),
                                        [Tok::Var(v)] => match vars.get(v) {
                                            Some((_, Value::Text(x))) => x.clone(),
                                            _ => return Err(syntax_error(v).into()),
                                        },
                                        _ => return Err(syntax_error(&up).into()),
                                    };
                                    texts.push(v);
                                }
                                let v = self.applock_fn(&up, &texts)?;
                                out.push(literal(&v));
                                i = close + 1;
                                continue;
                            }
                            "OBJECT_ID" => {
                                let v = match args.first() {
                                    Some(Tok::Str(s)) => {
                                        self.object_id(s).map(Value::Int).unwrap_or(Value::Null)
                                    }
                                    _ => return Err(syntax_error("OBJECT_ID").into()),
                                };
                                out.push(literal(&v));
                                i = close + 1;
                                continue;
                            }
                            "OBJECTPROPERTY" => {
                                let parts = split_commas(args);
                                if parts.len() != 2 {
                                    return Err(syntax_error("OBJECTPROPERTY").into());
                                }
                                let id_sql = self.translate(parts[0], vars, binds)?;
                                let prop = match parts[1] {
                                    [Tok::Str(p)] => p.clone(),
                                    _ => return Err(syntax_error("OBJECTPROPERTY").into()),
                                };
                                let v = match id_sql.trim().parse::<i64>() {
                                    Ok(id) => self.object_property(id, &prop)?,
                                    Err(_) => Value::Null,
                                };
                                out.push(literal(&v));
                                i = close + 1;
                                continue;
                            }
                            f if SAME_FUNCTIONS.contains(&f) => out.push(up.clone()),
                            _ => {
                                return Err(SqlError::new(
                                    195,
                                    format!("'{w}' is not a recognized built-in function name."),
                                )
                                .into())
                            }
                        }
                        i += 1;
                        continue;
                    }
                    out.push(w.clone());
                }
                Tok::QIdent(q) => out.push(quote_ident(q)),
                Tok::Str(s) => out.push(quote_str(s)),
                Tok::Num(n) => {
                    if let Some(hex) = n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
                        out.push(format!("X'{hex}'"));
                    } else {
                        out.push(n.clone());
                    }
                }
                Tok::Var(v) => {
                    let up = v.to_ascii_uppercase();
                    let lit = match up.as_str() {
                        "@@VERSION" => Some(Value::Text(VERSION_STRING.into())),
                        "@@TRANCOUNT" => Some(Value::Int(self.trancount as i64)),
                        "@@SPID" => Some(Value::Int(self.spid as i64)),
                        "@@ROWCOUNT" => Some(Value::Int(self.last_rowcount as i64)),
                        "@@IDENTITY" => {
                            Some(self.last_identity.map(Value::Int).unwrap_or(Value::Null))
                        }
                        "@@SERVERNAME" => Some(Value::Text(crate::protocol::SERVER_NAME.into())),
                        _ if up.starts_with("@@") => return Err(syntax_error(v).into()),
                        _ => None,
                    };
                    if let Some(l) = lit {
                        out.push(literal(&l));
                    } else {
                        match vars.get(v) {
                            Some((_, val)) => {
                                binds.push(val.clone());
                                out.push(format!("?{}", binds.len()));
                            }
                            None => {
                                return Err(SqlError::new(
                                    137,
                                    format!("Must declare the scalar variable \"{v}\"."),
                                )
                                .into())
                            }
                        }
                    }
                }
                Tok::Op(o) => {
                    if ["||", "==", "?", "$", "`"].contains(&o.as_str()) {
                        return Err(syntax_error(o).into());
                    }
                    out.push(o.clone());
                }
            }
            i += 1;
        }
        Ok(out.join(" "))
    }

    fn run_query(
        &self,
        sql_text: &str,
        binds: &[Value],
        op: &str,
        table: Option<&str>,
    ) -> SResult<QueryResult> {
        let db = self.db().to_string();
        let map = |e| StmtError::from(sqlite_err(e, op, table, &db));
        let mut stmt = self.conn.prepare(sql_text).map_err(map)?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let decls: Vec<Option<String>> = stmt
            .columns()
            .iter()
            .map(|c| c.decl_type().map(|s| s.to_string()))
            .collect();
        let params: Vec<rusqlite::types::Value> = binds.iter().map(to_sql_value).collect();
        let n = names.len();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(map)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map)? {
            let mut row = Vec::with_capacity(n);
            for k in 0..n {
                row.push(value_from_ref(r.get_ref(k).map_err(map)?));
            }
            out.push(row);
        }
        Ok((names, decls, out))
    }

    fn execute_dml(&self, sql_text: &str, binds: &[Value], op: &str, table: &str) -> SResult<u64> {
        let params: Vec<rusqlite::types::Value> = binds.iter().map(to_sql_value).collect();
        let n = self
            .conn
            .execute(sql_text, rusqlite::params_from_iter(params.iter()))
            .map_err(|e| sqlite_err(e, op, Some(table), self.db()))?;
        Ok(n as u64)
    }

    /// INSERT/UPDATE with SQL Server's truncation check (2628) for columns
    /// declared `NVARCHAR(n)`/`VARCHAR(n)`/`VARBINARY(n)`.
    fn execute_dml_checked(
        &self,
        q: &str,
        binds: &[Value],
        op: &str,
        ti: &TableInfo,
    ) -> SResult<u64> {
        let limited: Vec<(String, ColType)> = ti
            .columns
            .iter()
            .filter_map(|(c, d)| match coltype_from_decl(d) {
                Some(t @ (ColType::NVarChar(Some(_)) | ColType::VarBinary(Some(_)))) => {
                    Some((c.clone(), t))
                }
                _ => None,
            })
            .collect();
        if limited.is_empty() {
            return self.execute_dml(q, binds, op, &ti.name);
        }
        let db = self.db().to_string();
        let sp = |sql: &str| {
            self.conn
                .execute_batch(sql)
                .map_err(|e| StmtError::from(sqlite_err(e, op, Some(&ti.name), &db)))
        };
        sp("SAVEPOINT tds_stmt")?;
        let returning: Vec<String> = limited.iter().map(|(c, _)| quote_ident(c)).collect();
        let result = self.run_query(
            &format!("{q} RETURNING {}", returning.join(", ")),
            binds,
            op,
            Some(&ti.name),
        );
        let rows = match result {
            Ok((_, _, rows)) => rows,
            Err(e) => {
                let _ = sp("ROLLBACK TO tds_stmt; RELEASE tds_stmt");
                return Err(e);
            }
        };
        for r in &rows {
            for (k, (c, t)) in limited.iter().enumerate() {
                let (len, limit, shown) = match (&r[k], t) {
                    (Value::Text(x), ColType::NVarChar(Some(n))) => (
                        x.encode_utf16().count(),
                        *n as usize,
                        x.chars().take(*n as usize).collect::<String>(),
                    ),
                    (Value::Blob(b), ColType::VarBinary(Some(n))) => {
                        (b.len(), *n as usize, String::new())
                    }
                    (Value::Blob(b), ColType::NVarChar(Some(n))) => {
                        (b.len(), *n as usize, String::new())
                    }
                    (Value::Text(x), ColType::VarBinary(Some(n))) => {
                        (x.len(), *n as usize, String::new())
                    }
                    _ => continue,
                };
                if len > limit {
                    let _ = sp("ROLLBACK TO tds_stmt; RELEASE tds_stmt");
                    return Err(SqlError::new(
                        2628,
                        format!(
                            "String or binary data would be truncated in table '{}.dbo.{}', column '{}'. Truncated value: '{}'.",
                            self.db(),
                            ti.name,
                            c,
                            shown
                        ),
                    )
                    .into());
                }
            }
        }
        sp("RELEASE tds_stmt")?;
        Ok(rows.len() as u64)
    }

    /// Evaluates a scalar expression.
    fn eval(&self, expr: &[Tok], vars: &Vars) -> SResult<Value> {
        let mut binds = Vec::new();
        let e = self.translate(expr, vars, &mut binds)?;
        let (_, _, rows) = self.run_query(&format!("SELECT {e}"), &binds, "SELECT", None)?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or(Value::Null))
    }

    // ---------------------------------------------------------------- SELECT

    fn tables_in(&self, s: &[Tok]) -> Vec<TableInfo> {
        let mut out = Vec::new();
        for (j, t) in s.iter().enumerate() {
            if t.is("FROM") || t.is("JOIN") {
                if let Ok((name, _)) = object_name(s, j + 1) {
                    if let Ok(ti) = self.table_info(&name) {
                        out.push(ti);
                    }
                }
            }
        }
        out
    }

    fn item_hint(&self, item: &[Tok], tables: &[TableInfo], vars: &Vars) -> Option<ColType> {
        let first = item.first()?;
        if first.is("COUNT_BIG") {
            return Some(ColType::BigInt);
        }
        if first.is("COUNT") {
            return Some(ColType::Int);
        }
        if first.is("SCOPE_IDENTITY") || first.is("@@IDENTITY") {
            return Some(ColType::BigInt);
        }
        if first.is("CAST") && item.get(1).is_some_and(|t| t.is_op("(")) {
            let close = matching_paren(item, 1)?;
            let inner = &item[2..close];
            let as_pos = find_top_level(inner, "AS")?;
            let decl: Vec<String> = inner[as_pos + 1..].iter().map(|t| t.display()).collect();
            return coltype_from_decl(&decl.join(""));
        }
        if let Tok::Var(v) = first {
            if let Some((Some(t), _)) = vars.get(v) {
                return Some(*t);
            }
        }
        if ["MAX", "MIN", "SUM", "ISNULL", "COALESCE"]
            .iter()
            .any(|f| first.is(f))
            && item.get(1).is_some_and(|t| t.is_op("("))
        {
            // column reference: [alias.]col
            let close = matching_paren(item, 1)?;
            let args = split_commas(&item[2..close]);
            let col = args.first()?.last()?.ident()?;
            for t in tables {
                if let Some((_, d)) = t.columns.iter().find(|(n, _)| n.eq_ignore_ascii_case(col)) {
                    return coltype_from_decl(d);
                }
            }
        }
        None
    }

    fn select(&mut self, s: &[Tok], vars: &mut Vars, resp: &mut Response) -> SResult<Outcome> {
        let mut i = 1;
        let mut head = vec![Tok::Word("SELECT".into())];
        if s.get(i).is_some_and(|t| t.is("DISTINCT")) {
            head.push(s[i].clone());
            i += 1;
        }
        let mut limit: Option<Vec<Tok>> = None;
        if s.get(i).is_some_and(|t| t.is("TOP")) {
            if s.get(i + 1).is_some_and(|t| t.is_op("(")) {
                let close = matching_paren(s, i + 1).ok_or_else(|| syntax_error("TOP"))?;
                limit = Some(s[i + 2..close].to_vec());
                i = close + 1;
            } else if let Some(t) = s.get(i + 1) {
                limit = Some(vec![t.clone()]);
                i += 2;
            }
            if s.get(i).is_some_and(|t| t.is("PERCENT") || t.is("WITH")) {
                return Err(syntax_error(&s[i].display()).into());
            }
        }
        let rest = &s[i..];
        let from = find_top_level(rest, "FROM").unwrap_or(rest.len());
        let items = split_commas(&rest[..from]);
        if items.iter().any(|it| it.is_empty()) {
            return Err(syntax_error(",").into());
        }
        // `SELECT @v = expr` (variable assignment) is not supported.
        if items.iter().any(|it| {
            matches!(it.first(), Some(Tok::Var(v)) if !v.starts_with("@@"))
                && it.get(1).is_some_and(|t| t.is_op("="))
        }) {
            return Err(SqlError::new(
                50000,
                "tds-test-server: SELECT @variable = ... is not supported",
            )
            .into());
        }
        let tables = self.tables_in(rest);
        let hints: Vec<Option<ColType>> = items
            .iter()
            .map(|it| self.item_hint(it, &tables, vars))
            .collect();
        let mut binds = Vec::new();
        let head_sql = self.translate(&head, vars, &mut binds)?;
        // ORDER BY ... OFFSET n ROWS [FETCH NEXT m ROWS ONLY]
        let (rest_main, offset) = match find_top_level(rest, "OFFSET") {
            Some(p) => (&rest[..p], Some(&rest[p + 1..])),
            None => (rest, None),
        };
        let body = self.translate(rest_main, vars, &mut binds)?;
        let mut q = format!("{head_sql} {body}");
        if let Some(l) = limit {
            let l = self.translate(&l, vars, &mut binds)?;
            q.push_str(&format!(" LIMIT ({l})"));
        }
        if let Some(off) = offset {
            if q.contains(" LIMIT ") {
                return Err(SqlError::new(
                    10741,
                    "A TOP can not be used in the same query or sub-query as a OFFSET.",
                )
                .into());
            }
            let rows_kw = off
                .iter()
                .position(|t| t.is("ROWS") || t.is("ROW"))
                .ok_or_else(|| syntax_error("OFFSET"))?;
            let off_sql = self.translate(&off[..rows_kw], vars, &mut binds)?;
            let tail = &off[rows_kw + 1..];
            let fetch_sql = if tail.is_empty() {
                "-1".to_string()
            } else {
                let ok = tail.len() >= 5
                    && tail[0].is("FETCH")
                    && (tail[1].is("NEXT") || tail[1].is("FIRST"))
                    && (tail[tail.len() - 2].is("ROWS") || tail[tail.len() - 2].is("ROW"))
                    && tail[tail.len() - 1].is("ONLY");
                if !ok {
                    return Err(syntax_error(&tail[0].display()).into());
                }
                self.translate(&tail[2..tail.len() - 2], vars, &mut binds)?
            };
            q.push_str(&format!(" LIMIT ({fetch_sql}) OFFSET ({off_sql})"));
        }
        let item_texts: Vec<String> = items
            .iter()
            .map(|it| {
                self.translate(it, vars, &mut Vec::new())
                    .unwrap_or_default()
            })
            .collect();
        let (names, decls, rows) = self.run_query(&q, &binds, "SELECT", None)?;
        let mut cols = Vec::with_capacity(names.len());
        for (k, name) in names.iter().enumerate() {
            let hint = if names.len() == items.len() {
                hints[k]
            } else {
                None
            };
            let ty = hint
                .or_else(|| decls[k].as_deref().and_then(coltype_from_decl))
                .unwrap_or_else(|| infer_type(&rows, k));
            let name = if decls[k].is_none()
                && names.len() == items.len()
                && name.replace(' ', "") == item_texts[k].replace(' ', "")
            {
                String::new()
            } else {
                name.clone()
            };
            cols.push((name, ty));
        }
        let n = self.emit_rows(cols, rows, resp)?;
        Ok(Outcome::count(n))
    }

    /// Converts rows to the column types and writes COLMETADATA + ROWs.
    fn emit_rows(
        &self,
        mut cols: Vec<(String, ColType)>,
        rows: Vec<Vec<Value>>,
        resp: &mut Response,
    ) -> SResult<u64> {
        let mut converted = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (k, v) in r.into_iter().enumerate() {
                row.push(convert_for_column(&cols[k].1, v)?);
            }
            converted.push(row);
        }
        // SQLite does not enforce declared lengths: widen to (max) if needed.
        for (k, (_, ty)) in cols.iter_mut().enumerate() {
            let too_long = |limit: u16| {
                converted.iter().any(|r: &Vec<Value>| match &r[k] {
                    Value::Text(t) => t.encode_utf16().count() > limit as usize,
                    Value::Blob(b) => b.len() > limit as usize,
                    _ => false,
                })
            };
            match *ty {
                ColType::NVarChar(Some(n)) if too_long(n) => *ty = ColType::NVarChar(None),
                ColType::VarBinary(Some(n)) if too_long(n) => *ty = ColType::VarBinary(None),
                _ => {}
            }
        }
        resp.col_metadata(&cols);
        for r in &converted {
            resp.row(&cols, r);
        }
        Ok(converted.len() as u64)
    }

    // ---------------------------------------------------------------- DML

    fn insert(&mut self, s: &[Tok], vars: &mut Vars, resp: &mut Response) -> SResult<Outcome> {
        let mut i = 1;
        if s.get(i).is_some_and(|t| t.is("INTO")) {
            i += 1;
        }
        let (name, j) = object_name(s, i)?;
        let ti = self.table_info(&name)?;
        i = j;
        let mut cols: Option<Vec<String>> = None;
        if s.get(i).is_some_and(|t| t.is_op("(")) {
            let close = matching_paren(s, i).ok_or_else(|| syntax_error("("))?;
            let mut list = Vec::new();
            for part in split_commas(&s[i + 1..close]) {
                match part {
                    [t] if t.ident().is_some() => list.push(t.ident().unwrap().to_string()),
                    _ => {
                        return Err(syntax_error(
                            &part.first().map(|t| t.display()).unwrap_or_default(),
                        )
                        .into())
                    }
                }
            }
            cols = Some(list);
            i = close + 1;
        }
        let mut output = None;
        if s.get(i).is_some_and(|t| t.is("OUTPUT")) {
            let end = (i + 1..s.len())
                .find(|&k| s[k].is("VALUES") || s[k].is("SELECT") || s[k].is("DEFAULT"))
                .unwrap_or(s.len());
            output = Some(self.parse_output(&s[i + 1..end], "INSERTED", &ti)?);
            i = end;
        }
        let ii_on = self
            .identity_insert
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(&ti.name));
        let mut gen_identity = false;
        if let Some(id_col) = &ti.identity {
            match &cols {
                Some(list) => {
                    let has = list.iter().any(|c| c.eq_ignore_ascii_case(id_col));
                    if has && !ii_on {
                        return Err(SqlError::new(544, format!("Cannot insert explicit value for identity column in table '{}' when IDENTITY_INSERT is set to OFF.", ti.name)).into());
                    }
                    if !has && ii_on {
                        return Err(SqlError::new(545, format!("Explicit value must be specified for identity column in table '{}' either when IDENTITY_INSERT is set to ON or when a replication user is inserting into a NOT FOR REPLICATION identity column.", ti.name)).into());
                    }
                    gen_identity = !has;
                }
                None => {
                    if ii_on {
                        return Err(SqlError::new(8101, format!("An explicit value for the identity column in table '{}' can only be specified when a column list is used and IDENTITY_INSERT is ON.", ti.name)).into());
                    }
                    cols = Some(
                        ti.columns
                            .iter()
                            .filter(|(n, _)| n != id_col)
                            .map(|(n, _)| n.clone())
                            .collect(),
                    );
                    gen_identity = true;
                }
            }
        }
        let mut binds = Vec::new();
        let mut col_list: Vec<String> = cols
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|c| quote_ident(c))
            .collect();
        let body;
        let mut generated_last = None;
        if s.get(i).is_some_and(|t| t.is("VALUES")) {
            // row groups
            let mut groups = Vec::new();
            let mut j = i + 1;
            loop {
                if !s.get(j).is_some_and(|t| t.is_op("(")) {
                    return Err(
                        syntax_error(&s.get(j).map(|t| t.display()).unwrap_or_default()).into(),
                    );
                }
                let close = matching_paren(s, j).ok_or_else(|| syntax_error("("))?;
                groups.push(&s[j + 1..close]);
                j = close + 1;
                if s.get(j).is_some_and(|t| t.is_op(",")) {
                    j += 1;
                    continue;
                }
                if j != s.len() {
                    return Err(syntax_error(&s[j].display()).into());
                }
                break;
            }
            let mut base = 0;
            if gen_identity {
                let id_col = ti.identity.as_ref().unwrap();
                col_list.push(quote_ident(id_col));
                base = self
                    .conn
                    .query_row(
                        &format!(
                            "SELECT COALESCE(MAX({}), 0) FROM {}",
                            quote_ident(id_col),
                            quote_ident(&ti.name)
                        ),
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(|e| sqlite_err(e, "INSERT", Some(&ti.name), self.db()))?;
                let last = self
                    .shared
                    .identity_last
                    .lock()
                    .unwrap()
                    .get(&ti.name.to_ascii_lowercase())
                    .copied();
                base = base.max(last.unwrap_or(0));
            }
            let mut rendered = Vec::new();
            for (k, g) in groups.iter().enumerate() {
                let mut inner = self.translate(g, vars, &mut binds)?;
                if gen_identity {
                    let id = base + 1 + k as i64;
                    inner = if inner.trim().is_empty() {
                        id.to_string()
                    } else {
                        format!("{inner}, {id}")
                    };
                    generated_last = Some(id);
                }
                rendered.push(format!("({inner})"));
            }
            body = format!("VALUES {}", rendered.join(", "));
        } else if s.get(i).is_some_and(|t| t.is("SELECT")) {
            if gen_identity {
                return Err(SqlError::new(50000, "tds-test-server: INSERT ... SELECT into a table with an identity column (without IDENTITY_INSERT) is not supported").into());
            }
            body = self.translate(&s[i..], vars, &mut binds)?;
        } else if s.get(i).is_some_and(|t| t.is("DEFAULT"))
            && s.get(i + 1).is_some_and(|t| t.is("VALUES"))
            && !gen_identity
        {
            body = "DEFAULT VALUES".into();
        } else {
            return Err(syntax_error(&s.get(i).map(|t| t.display()).unwrap_or_default()).into());
        }
        let cols_sql = if cols.is_some() {
            format!("({})", col_list.join(", "))
        } else {
            String::new()
        };
        let q = format!(
            "INSERT INTO {} {} {}",
            quote_ident(&ti.name),
            cols_sql,
            body
        );
        let n = match output {
            Some(out) => self.run_returning(&q, &binds, &ti, &out, "INSERT", resp)?,
            None => self.execute_dml_checked(&q, &binds, "INSERT", &ti)?,
        };
        if let Some(last) = generated_last {
            let mut map = self.shared.identity_last.lock().unwrap();
            let e = map.entry(ti.name.to_ascii_lowercase()).or_insert(last);
            *e = (*e).max(last);
            drop(map);
            self.last_identity = generated_last;
        }
        Ok(Outcome::count(n))
    }

    fn delete(&mut self, s: &[Tok], vars: &mut Vars, resp: &mut Response) -> SResult<Outcome> {
        let mut i = 1;
        let mut top = None;
        if s.get(i).is_some_and(|t| t.is("TOP")) {
            if !s.get(i + 1).is_some_and(|t| t.is_op("(")) {
                return Err(syntax_error("TOP").into());
            }
            let close = matching_paren(s, i + 1).ok_or_else(|| syntax_error("TOP"))?;
            top = Some(&s[i + 2..close]);
            i = close + 1;
        }
        if s.get(i).is_some_and(|t| t.is("FROM")) {
            i += 1;
        }
        let (name, mut j) = object_name(s, i)?;
        let ti = self.table_info(&name)?;
        let mut output = None;
        if s.get(j).is_some_and(|t| t.is("OUTPUT")) {
            let end = find_top_level(&s[j..], "WHERE")
                .map(|w| w + j)
                .unwrap_or(s.len());
            output = Some(self.parse_output(&s[j + 1..end], "DELETED", &ti)?);
            j = end;
        }
        if let Some(t) = s.get(j) {
            if !t.is("WHERE") {
                return Err(syntax_error(&t.display()).into());
            }
        }
        let mut binds = Vec::new();
        let where_sql = self.translate(&s[j..], vars, &mut binds)?;
        let table = quote_ident(&ti.name);
        let q = match top {
            None => format!("DELETE FROM {table} {where_sql}"),
            Some(n) => {
                let n = self.translate(n, vars, &mut binds)?;
                format!(
                    "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} {where_sql} LIMIT ({n}))"
                )
            }
        };
        let n = match output {
            Some(out) => self.run_returning(&q, &binds, &ti, &out, "DELETE", resp)?,
            None => self.execute_dml(&q, &binds, "DELETE", &ti.name)?,
        };
        Ok(Outcome::count(n))
    }

    /// Parses `OUTPUT DELETED.col [AS name], DELETED.*` items.
    fn parse_output(
        &self,
        items: &[Tok],
        pseudo: &str,
        ti: &TableInfo,
    ) -> SResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for item in split_commas(items) {
            let unsupported = || {
                StmtError::from(SqlError::new(
                    50000,
                    format!("tds-test-server: only OUTPUT {pseudo}.column [AS alias] / {pseudo}.* is supported"),
                ))
            };
            if item.len() < 3 || !item[0].is(pseudo) || !item[1].is_op(".") {
                return Err(unsupported());
            }
            if item[2].is_op("*") && item.len() == 3 {
                for (c, _) in &ti.columns {
                    out.push((c.clone(), c.clone()));
                }
                continue;
            }
            let col = item[2].ident().ok_or_else(unsupported)?;
            let Some((col, _)) = ti.columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(col))
            else {
                return Err(SqlError::new(207, format!("Invalid column name '{col}'.")).into());
            };
            let alias = match &item[3..] {
                [] => col.clone(),
                [a] | [_, a] if a.ident().is_some() && (item.len() == 4 || item[3].is("AS")) => {
                    a.ident().unwrap().to_string()
                }
                _ => return Err(unsupported()),
            };
            out.push((col.clone(), alias));
        }
        Ok(out)
    }

    /// Runs a DML statement with `RETURNING` and sends the rows as a result set.
    fn run_returning(
        &self,
        q: &str,
        binds: &[Value],
        ti: &TableInfo,
        out: &[(String, String)],
        op: &str,
        resp: &mut Response,
    ) -> SResult<u64> {
        let returning: Vec<String> = out.iter().map(|(c, _)| quote_ident(c)).collect();
        let q = format!("{q} RETURNING {}", returning.join(", "));
        let (_, _, rows) = self.run_query(&q, binds, op, Some(&ti.name))?;
        let cols = out
            .iter()
            .enumerate()
            .map(|(k, (c, alias))| {
                let decl = ti
                    .columns
                    .iter()
                    .find(|(n, _)| n == c)
                    .map(|(_, d)| d.as_str());
                let ty = decl
                    .and_then(coltype_from_decl)
                    .unwrap_or_else(|| infer_type(&rows, k));
                (alias.clone(), ty)
            })
            .collect();
        self.emit_rows(cols, rows, resp)
    }

    fn update(&mut self, s: &[Tok], vars: &mut Vars) -> SResult<Outcome> {
        let (name, j) = object_name(s, 1)?;
        let ti = self.table_info(&name)?;
        if !s.get(j).is_some_and(|t| t.is("SET")) {
            return Err(syntax_error(&s.get(j).map(|t| t.display()).unwrap_or_default()).into());
        }
        if let Some(id_col) = &ti.identity {
            let end = find_top_level(&s[j..], "WHERE")
                .map(|w| w + j)
                .unwrap_or(s.len());
            for a in split_commas(&s[j + 1..end]) {
                if let Some(c) = a.first().and_then(|t| t.ident()) {
                    if c.eq_ignore_ascii_case(id_col) {
                        return Err(SqlError::new(
                            8102,
                            format!("Cannot update identity column '{id_col}'."),
                        )
                        .into());
                    }
                }
            }
        }
        let mut binds = Vec::new();
        let rest = self.translate(&s[j..], vars, &mut binds)?;
        let q = format!("UPDATE {} {}", quote_ident(&ti.name), rest);
        let n = self.execute_dml_checked(&q, &binds, "UPDATE", &ti)?;
        Ok(Outcome::count(n))
    }

    // ---------------------------------------------------------------- SET / DECLARE

    fn set(&mut self, s: &[Tok], vars: &mut Vars) -> SResult<Outcome> {
        let Some(what) = s.get(1) else {
            return Err(syntax_error("SET").into());
        };
        if let Tok::Var(v) = what {
            if !s.get(2).is_some_and(|t| t.is_op("=")) {
                return Err(syntax_error(v).into());
            }
            let Some((ty, _)) = vars.get(v).cloned() else {
                return Err(SqlError::new(
                    137,
                    format!("Must declare the scalar variable \"{v}\"."),
                )
                .into());
            };
            let val = self.eval(&s[3..], vars)?;
            vars.set(v, ty, val);
            return Ok(Outcome::none());
        }
        if what.is("IDENTITY_INSERT") {
            let (name, j) = object_name(s, 2)?;
            let on = match s.get(j) {
                Some(t) if t.is("ON") => true,
                Some(t) if t.is("OFF") => false,
                other => {
                    return Err(
                        syntax_error(&other.map(|t| t.display()).unwrap_or_default()).into(),
                    )
                }
            };
            if s.len() != j + 1 {
                return Err(syntax_error(&s[j + 1].display()).into());
            }
            let ti = match self.table_info(&name) {
                Ok(ti) => ti,
                Err(_) => {
                    return Err(SqlError::new(1088, format!("Cannot find the object \"{name}\" because it does not exist or you do not have permissions.")).into())
                }
            };
            if ti.identity.is_none() {
                return Err(SqlError::new(8106, format!("Table '{}' does not have the identity property. Cannot perform SET operation.", ti.name)).into());
            }
            if on {
                if let Some(other) = &self.identity_insert {
                    if !other.eq_ignore_ascii_case(&ti.name) {
                        return Err(SqlError::new(8107, format!("IDENTITY_INSERT is already ON for table '{}.dbo.{}'. Cannot perform SET operation for table '{}'.", self.db(), other, ti.name)).into());
                    }
                }
                self.identity_insert = Some(ti.name);
            } else if self
                .identity_insert
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(&ti.name))
            {
                self.identity_insert = None;
            }
            return Ok(Outcome::none());
        }
        let on_off = s.len() == 3 && (s[2].is("ON") || s[2].is("OFF"));
        if on_off && what.is("XACT_ABORT") {
            self.xact_abort = s[2].is("ON");
            return Ok(Outcome::none());
        }
        // Accepted without effect.
        if on_off
            && [
                "NOCOUNT",
                "ANSI_NULLS",
                "QUOTED_IDENTIFIER",
                "ANSI_WARNINGS",
                "ARITHABORT",
                "CONCAT_NULL_YIELDS_NULL",
                "ANSI_PADDING",
            ]
            .iter()
            .any(|o| what.is(o))
        {
            return Ok(Outcome::none());
        }
        if what.is("TRANSACTION") && s.len() >= 5 && s[2].is("ISOLATION") && s[3].is("LEVEL") {
            return Ok(Outcome::none());
        }
        Err(SqlError::new(
            102,
            format!(
                "Incorrect syntax near '{}'. (tds-test-server: this SET option is not supported)",
                what.display()
            ),
        )
        .into())
    }

    fn declare(&mut self, s: &[Tok], vars: &mut Vars) -> SResult<Outcome> {
        for part in split_commas(&s[1..]) {
            let Some(Tok::Var(name)) = part.first() else {
                return Err(syntax_error("DECLARE").into());
            };
            let eq = part.iter().position(|t| t.is_op("="));
            let type_toks = &part[1..eq.unwrap_or(part.len())];
            let type_toks = if type_toks.first().is_some_and(|t| t.is("AS")) {
                &type_toks[1..]
            } else {
                type_toks
            };
            let decl: String = type_toks
                .iter()
                .map(|t| t.display())
                .collect::<Vec<_>>()
                .join("");
            let ty = coltype_from_decl(&decl).ok_or_else(|| {
                SqlError::new(
                    2715,
                    format!("Column, parameter, or variable #1: Cannot find data type {decl}."),
                )
            })?;
            let v = match eq {
                Some(e) => convert_for_column(&ty, self.eval(&part[e + 1..], vars)?)?,
                None => Value::Null,
            };
            vars.set(name, Some(ty), v);
        }
        Ok(Outcome::none())
    }

    // ---------------------------------------------------------------- EXEC (applocks)

    fn exec_proc(&mut self, s: &[Tok], vars: &mut Vars, resp: &mut Response) -> SResult<Outcome> {
        let mut i = 1;
        let mut target = None;
        if let (Some(Tok::Var(v)), Some(eq)) = (s.get(1), s.get(2)) {
            if eq.is_op("=") {
                if vars.get(v).is_none() {
                    return Err(SqlError::new(
                        137,
                        format!("Must declare the scalar variable \"{v}\"."),
                    )
                    .into());
                }
                target = Some(v.clone());
                i = 3;
            }
        }
        // proc name, possibly sys./dbo. qualified
        let mut parts = Vec::new();
        let mut j = i;
        while let Some(p) = s.get(j).and_then(|t| t.ident()) {
            parts.push(p.to_string());
            j += 1;
            if s.get(j).is_some_and(|t| t.is_op(".")) {
                j += 1;
            } else {
                break;
            }
        }
        let proc = parts
            .last()
            .cloned()
            .unwrap_or_default()
            .to_ascii_lowercase();
        // arguments
        let mut named: HashMap<String, Value> = HashMap::new();
        let mut positional: Vec<Value> = Vec::new();
        if j < s.len() {
            for a in split_commas(&s[j..]) {
                if let (Some(Tok::Var(n)), Some(eq)) = (a.first(), a.get(1)) {
                    if eq.is_op("=") {
                        named.insert(
                            n.trim_start_matches('@').to_ascii_lowercase(),
                            self.eval(&a[2..], vars)?,
                        );
                        continue;
                    }
                }
                positional.push(self.eval(a, vars)?);
            }
        }
        let order: &[&str] = match proc.as_str() {
            "sp_getapplock" => &[
                "resource",
                "lockmode",
                "lockowner",
                "locktimeout",
                "dbprincipal",
            ],
            "sp_releaseapplock" => &["resource", "lockowner", "dbprincipal"],
            _ => {
                return Err(SqlError::new(
                    2812,
                    format!("Could not find stored procedure '{}'.", parts.join(".")),
                )
                .into());
            }
        };
        for (k, v) in positional.into_iter().enumerate() {
            if let Some(n) = order.get(k) {
                named.insert(n.to_string(), v);
            }
        }
        let text = |k: &str| match named.get(k) {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(Value::Int(i)) => Some(i.to_string()),
            _ => None,
        };
        let Some(resource) = text("resource") else {
            return Err(SqlError::new(201, format!("Procedure or function '{proc}' expects parameter '@Resource', which was not supplied.")).into());
        };
        let owner = match text("lockowner").map(|o| o.to_ascii_lowercase()).as_deref() {
            None | Some("transaction") => LockOwner::Transaction,
            Some("session") => LockOwner::Session,
            Some(o) => {
                return Err(SqlError::new(
                    1221,
                    format!("tds-test-server: invalid @LockOwner '{o}'"),
                )
                .into())
            }
        };
        if owner == LockOwner::Transaction && self.trancount == 0 {
            return Err(SqlError::new(1223, format!("Cannot {} the application lock (Database Principal: 'public', Resource: '{resource}') because there is not a current transaction.", if proc == "sp_getapplock" { "obtain" } else { "release" })).into());
        }
        let rc = if proc == "sp_getapplock" {
            let Some(mode) = text("lockmode") else {
                return Err(SqlError::new(201, "Procedure or function 'sp_getapplock' expects parameter '@LockMode', which was not supplied.").into());
            };
            let exclusive = match mode.to_ascii_lowercase().as_str() {
                "shared" | "intentshared" => false,
                "update" | "intentexclusive" | "exclusive" => true,
                _ => {
                    return Err(SqlError::new(
                        1221,
                        format!("tds-test-server: invalid @LockMode '{mode}'"),
                    )
                    .into())
                }
            };
            let timeout = match named.get("locktimeout") {
                Some(Value::Int(t)) => *t,
                None | Some(Value::Null) => -1,
                _ => return Err(syntax_error("@LockTimeout").into()),
            };
            self.get_applock(&resource, &mode, exclusive, owner, timeout)
        } else {
            let mut locks = self.shared.locks.lock().unwrap();
            let holds = locks.entry(resource.clone()).or_default();
            match holds
                .iter()
                .position(|h| h.spid == self.spid && h.owner == owner)
            {
                Some(p) => {
                    holds[p].count -= 1;
                    if holds[p].count == 0 {
                        holds.remove(p);
                    }
                    if holds.is_empty() {
                        locks.remove(&resource);
                    }
                    0
                }
                None => {
                    return Err(SqlError::new(1223, format!("Cannot release the application lock (Database Principal: 'public', Resource: '{resource}') because it is not currently held.")).into());
                }
            }
        };
        resp.return_status(rc);
        if let Some(t) = target {
            let ty = vars.get(&t).and_then(|(ty, _)| *ty);
            vars.set(&t, ty, Value::Int(rc as i64));
        }
        Ok(Outcome::none())
    }

    fn get_applock(
        &self,
        resource: &str,
        mode: &str,
        exclusive: bool,
        owner: LockOwner,
        timeout_ms: i64,
    ) -> i32 {
        let start = Instant::now();
        let mut waited = false;
        loop {
            {
                let mut locks = self.shared.locks.lock().unwrap();
                let holds = locks.entry(resource.to_string()).or_default();
                let conflict = holds
                    .iter()
                    .any(|h| h.spid != self.spid && (h.exclusive || exclusive));
                if !conflict {
                    if let Some(h) = holds
                        .iter_mut()
                        .find(|h| h.spid == self.spid && h.owner == owner)
                    {
                        h.count += 1;
                        if exclusive && !h.exclusive {
                            h.mode = mode.to_string();
                        }
                        h.exclusive |= exclusive;
                    } else {
                        holds.push(LockHold {
                            spid: self.spid,
                            exclusive,
                            mode: mode.to_string(),
                            owner,
                            count: 1,
                        });
                    }
                    return if waited { 1 } else { 0 };
                }
                if holds.is_empty() {
                    locks.remove(resource);
                }
            }
            if self.shared.stopping.load(Ordering::SeqCst)
                || (timeout_ms >= 0 && start.elapsed() >= Duration::from_millis(timeout_ms as u64))
            {
                return -1;
            }
            waited = true;
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `APPLOCK_MODE(principal, resource, owner)` /
    /// `APPLOCK_TEST(principal, resource, mode, owner)`.
    fn applock_fn(&self, f: &str, a: &[String]) -> SResult<Value> {
        let owner_of = |o: &str| {
            if o.eq_ignore_ascii_case("session") {
                LockOwner::Session
            } else {
                LockOwner::Transaction
            }
        };
        let locks = self.shared.locks.lock().unwrap();
        let empty = Vec::new();
        if f == "APPLOCK_MODE" && a.len() == 3 {
            let holds = locks.get(&a[1]).unwrap_or(&empty);
            let owner = owner_of(&a[2]);
            let mode = holds
                .iter()
                .find(|h| h.spid == self.spid && h.owner == owner)
                .map(|h| h.mode.clone())
                .unwrap_or_else(|| "NoLock".into());
            return Ok(Value::Text(mode));
        }
        if f == "APPLOCK_TEST" && a.len() == 4 {
            let holds = locks.get(&a[1]).unwrap_or(&empty);
            let exclusive = !matches!(
                a[2].to_ascii_lowercase().as_str(),
                "shared" | "intentshared"
            );
            let conflict = holds
                .iter()
                .any(|h| h.spid != self.spid && (h.exclusive || exclusive));
            return Ok(Value::Int(!conflict as i64));
        }
        Err(syntax_error(f).into())
    }

    /// Releases this session's applocks (all, or only those of `owner`).
    fn release_locks(&self, owner: Option<LockOwner>) {
        let mut locks = self.shared.locks.lock().unwrap();
        for holds in locks.values_mut() {
            holds.retain(|h| !(h.spid == self.spid && owner.is_none_or(|o| o == h.owner)));
        }
        locks.retain(|_, h| !h.is_empty());
    }

    // ---------------------------------------------------------------- BACKUP / RESTORE

    fn disk_path(s: &[Tok], from: usize) -> SResult<(PathBuf, usize)> {
        // TO|FROM DISK = 'path'
        match (
            s.get(from),
            s.get(from + 1),
            s.get(from + 2),
            s.get(from + 3),
        ) {
            (Some(kw), Some(d), Some(eq), Some(Tok::Str(p)))
                if (kw.is("TO") || kw.is("FROM")) && d.is("DISK") && eq.is_op("=") =>
            {
                Ok((PathBuf::from(p), from + 4))
            }
            _ => Err(syntax_error(&s.get(from).map(|t| t.display()).unwrap_or_default()).into()),
        }
    }

    fn with_options(s: &[Tok], i: usize, allowed: &[&str]) -> SResult<Vec<String>> {
        if i >= s.len() {
            return Ok(vec![]);
        }
        if !s[i].is("WITH") {
            return Err(syntax_error(&s[i].display()).into());
        }
        let mut out = Vec::new();
        for opt in split_commas(&s[i + 1..]) {
            let name = opt
                .first()
                .and_then(|t| t.ident())
                .map(|t| t.to_ascii_uppercase())
                .unwrap_or_default();
            if !allowed.contains(&name.as_str()) {
                return Err(
                    syntax_error(&opt.first().map(|t| t.display()).unwrap_or_default()).into(),
                );
            }
            out.push(name);
        }
        Ok(out)
    }

    fn check_db_name(&self, name: &str, what: &str) -> SResult<()> {
        if !name.eq_ignore_ascii_case(self.db()) {
            return Err(StmtError(vec![
                SqlError::new(911, format!("Database '{name}' does not exist. Make sure that the name is entered correctly.")),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        Ok(())
    }

    fn open_backup(path: &Path, what: &str) -> SResult<Connection> {
        let terminating = SqlError::new(3013, format!("{what} is terminating abnormally."));
        if !path.is_file() {
            return Err(StmtError(vec![
                SqlError::new(3201, format!("Cannot open backup device '{}'. Operating system error 2(The system cannot find the file specified.).", path.display())),
                terminating,
            ]));
        }
        let bad = || {
            StmtError(vec![
                SqlError::new(3241, format!("The media family on device '{}' is incorrectly formed. SQL Server cannot process this media family.", path.display())),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ])
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|_| bad())?;
        let check: Result<String, _> = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0));
        match check {
            Ok(ok) if ok == "ok" => Ok(conn),
            _ => Err(bad()),
        }
    }

    fn page_count(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap_or(0)
    }

    fn backup(&mut self, s: &[Tok], resp: &mut Response) -> SResult<Outcome> {
        let what = "BACKUP DATABASE";
        if !s.get(1).is_some_and(|t| t.is("DATABASE")) {
            return Err(syntax_error(&s.get(1).map(|t| t.display()).unwrap_or_default()).into());
        }
        let name = s
            .get(2)
            .and_then(|t| t.ident())
            .ok_or_else(|| syntax_error("DATABASE"))?
            .to_string();
        let (path, i) = Self::disk_path(s, 3)?;
        Self::with_options(
            s,
            i,
            &[
                "COPY_ONLY",
                "CHECKSUM",
                "INIT",
                "FORMAT",
                "COMPRESSION",
                "NO_COMPRESSION",
                "STATS",
                "NAME",
                "DESCRIPTION",
                "SKIP",
                "NOSKIP",
                "NOREWIND",
                "NOUNLOAD",
            ],
        )?;
        self.check_db_name(&name, what)?;
        if self.trancount > 0 {
            return Err(StmtError(vec![
                SqlError::new(
                    3021,
                    "Cannot perform a backup or restore operation within a transaction.",
                ),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        let _ = std::fs::remove_file(&path);
        for ext in ["-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(ext);
            let _ = std::fs::remove_file(p);
        }
        if let Err(e) = self.conn.backup(DatabaseName::Main, &path, None) {
            return Err(StmtError(vec![
                SqlError::new(3201, format!("Cannot open backup device '{}'. Operating system error 3(The system cannot find the path specified.). ({e})", path.display())),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        let pages = Self::page_count(&self.conn);
        resp.info(
            4035,
            &format!("Processed {pages} pages for database '{name}', file '{name}' on file 1."),
        );
        resp.info(3014, &format!("BACKUP DATABASE successfully processed {pages} pages in 0.001 seconds (1.000 MB/sec)."));
        Ok(Outcome::none())
    }

    fn restore(&mut self, s: &[Tok], resp: &mut Response) -> SResult<Outcome> {
        if s.get(1).is_some_and(|t| t.is("VERIFYONLY")) {
            let what = "VERIFY DATABASE";
            let (path, i) = Self::disk_path(s, 2)?;
            Self::with_options(s, i, &["CHECKSUM", "NOREWIND", "NOUNLOAD", "STATS", "FILE"])?;
            let conn = Self::open_backup(&path, what)?;
            drop(conn);
            resp.info(3262, "The backup set on file 1 is valid.");
            return Ok(Outcome::none());
        }
        if !s.get(1).is_some_and(|t| t.is("DATABASE")) {
            return Err(syntax_error(&s.get(1).map(|t| t.display()).unwrap_or_default()).into());
        }
        let what = "RESTORE DATABASE";
        let name = s
            .get(2)
            .and_then(|t| t.ident())
            .ok_or_else(|| syntax_error("DATABASE"))?
            .to_string();
        let (path, i) = Self::disk_path(s, 3)?;
        Self::with_options(
            s,
            i,
            &[
                "REPLACE", "RECOVERY", "CHECKSUM", "STATS", "FILE", "NOREWIND", "NOUNLOAD",
            ],
        )?;
        self.check_db_name(&name, what)?;
        if self.trancount > 0 {
            return Err(StmtError(vec![
                SqlError::new(
                    3021,
                    "Cannot perform a backup or restore operation within a transaction.",
                ),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        let src = Self::open_backup(&path, what)?;
        drop(src);
        let busy = self
            .shared
            .in_txn
            .lock()
            .unwrap()
            .iter()
            .any(|s| *s != self.spid);
        if busy {
            return Err(StmtError(vec![
                SqlError::new(
                    3101,
                    "Exclusive access could not be obtained because the database is in use.",
                ),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        if let Err(e) = self.conn.restore(
            DatabaseName::Main,
            &path,
            None::<fn(rusqlite::backup::Progress)>,
        ) {
            return Err(StmtError(vec![
                SqlError::new(3101, format!("Exclusive access could not be obtained because the database is in use. ({e})")),
                SqlError::new(3013, format!("{what} is terminating abnormally.")),
            ]));
        }
        self.shared.identity_last.lock().unwrap().clear();
        let pages = Self::page_count(&self.conn);
        resp.info(3014, &format!("RESTORE DATABASE successfully processed {pages} pages in 0.001 seconds (1.000 MB/sec)."));
        Ok(Outcome::none())
    }
}

/// Checks that a statement starts with something this server executes.
/// Valid T-SQL that is not supported still gets an error, never a guess.
fn classify(s: &[Tok]) -> Result<(), SqlError> {
    let first = &s[0];
    let ok = [
        "BEGIN", "COMMIT", "ROLLBACK", "SELECT", "INSERT", "DELETE", "UPDATE", "SET", "DECLARE",
        "EXEC", "EXECUTE", "BACKUP", "RESTORE",
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
        "USE",
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
