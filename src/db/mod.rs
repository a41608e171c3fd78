//! The database seam: one small trait ([`Database`]) with one module per backend
//! (`sqlite`: embedded, for the demo and tests; `mssql`: SQL Server through tiberius).
//!
//! Connection strings: `sqlite:PATH` (relative to the installation root, or absolute) selects
//! SQLite; anything else is an ADO.NET string for SQL Server, parsed by tiberius itself.
//! Passwords never appear in plans (hence never in the journal, logs or audit): a plan writes
//! `Password=${VAR}` and the value is taken from the environment variable `VAR` when
//! connecting; a literal password is refused at preflight. Messages show [`redact`]ed strings.

pub mod mssql;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// A column value, typed as the backend delivered it, so that re-inserting it gives back
/// exactly the same value (bigint stays bigint, NULL stays NULL, text keeps every character).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    U8(u8),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// SQL Server date/time types, kept in their wire form (exact round trip):
    /// `datetime` (days since 1900, 1/300 s ticks), `smalldatetime` (days, minutes),
    /// `date` (days since year 1), `time` and `datetime2` (increments of 10^-scale s).
    DateTime(i32, u32),
    SmallDateTime(u16, u16),
    Date(u32),
    Time(u64, u8),
    DateTime2(u32, u64, u8),
    DateTimeOffset(u32, u64, u8, i16),
    /// `uniqueidentifier`.
    Guid([u8; 16]),
    /// `decimal`/`numeric`: unscaled value and scale.
    Numeric(i128, u8),
    /// SQLite TEXT whose bytes are not valid UTF-8 (SQLite stores them as given): kept as
    /// bytes and written back as TEXT, never as a BLOB. Added last, so that the rows journals
    /// of earlier builds hold decode as before (bincode numbers variants by position).
    TextBytes(Vec<u8>),
}

/// What the engine needs to know about a table to save and restore its rows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub columns: Vec<Column>,
    /// Columns giving the key order (the primary key; else the first column).
    pub key: Vec<String>,
    /// True when the table has an identity column (SQL Server: `SET IDENTITY_INSERT`).
    pub identity: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// Binary columns need a typed NULL on SQL Server (nvarchar does not convert).
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

pub type Result<T> = std::result::Result<T, DbError>;

/// What verifying a backup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupCheck {
    Verified,
    /// There is no backup at that path.
    Absent,
    /// The backup exists and was read, and is not a valid backup.
    Bad(String),
}

impl BackupCheck {
    /// `Ok` only for a verified backup.
    pub fn require(self, file: &Path) -> Result<()> {
        match self {
            BackupCheck::Verified => Ok(()),
            BackupCheck::Absent => Err(err(format!("backup {} does not exist", file.display()))),
            BackupCheck::Bad(why) => Err(err(format!(
                "backup {} does not verify: {why}",
                file.display()
            ))),
        }
    }
}

pub(crate) fn err(msg: impl Into<String>) -> DbError {
    DbError(msg.into())
}

/// One open session. Every method is synchronous (the SQL Server backend runs its own
/// current-thread tokio runtime).
pub trait Database: Send {
    fn begin(&mut self) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    /// Rolls back the open transaction, if any; never fails when there is none.
    fn rollback(&mut self) -> Result<()>;
    fn count(&mut self, table: &str) -> Result<u64>;
    /// True when the table exists (a user table).
    fn has_table(&mut self, table: &str) -> Result<bool>;
    /// Every user table, where the backend lists them cheaply (SQLite); `None` elsewhere.
    fn all_tables(&mut self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }
    fn table_info(&mut self, table: &str) -> Result<TableInfo>;
    /// Every row, columns in `info` order, in key order; locks the table until the end of
    /// the transaction where the backend can.
    fn scan(
        &mut self,
        table: &str,
        info: &TableInfo,
        f: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<()>;
    /// Deletes every row; returns how many were deleted.
    fn delete_all(&mut self, table: &str) -> Result<u64>;
    /// Inserts rows with their explicit keys (identity insert where needed).
    fn insert(&mut self, table: &str, info: &TableInfo, rows: &[Vec<Value>]) -> Result<()>;
    /// Full backup into `file` (a path as the server sees it), then verified.
    fn backup(&mut self, file: &Path) -> Result<()>;
    /// Checks a backup. `Err` means it could not be checked (connection lost, server busy,
    /// an I/O error): never to be read as "no backup".
    fn verify_backup(&mut self, file: &Path) -> Result<BackupCheck>;
    fn restore(&mut self, file: &Path) -> Result<()>;
    /// The version recorded in the database, when it records one.
    fn version(&mut self) -> Result<Option<String>>;
    /// Checks, changing nothing, that this session can write the database (preflight).
    /// SQL Server reports a read-only database or a login without rights at its first
    /// write; no check here.
    fn check_writable(&mut self) -> Result<()> {
        Ok(())
    }
    /// Runs a batch of statements (setup in tests; never with values from outside).
    #[cfg(any(test, feature = "testing"))]
    fn execute(&mut self, sql: &str) -> Result<()>;
    /// True when the session still answers (after an error: keep it or open a new one).
    fn alive(&mut self) -> bool;
    /// Takes the run's lock on the database for the whole session (fails when held).
    fn lock(&mut self, resource: &str) -> Result<()>;
}

/// Where a connection string points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    /// ADO.NET string with `${VAR}` references resolved (holds the password: never log it).
    SqlServer(String),
}

/// The connection string with every password value replaced by `***` (for messages); the
/// string is parsed by the ADO.NET quoting rules (`crate::secrets`).
pub fn redact(conn: &str) -> String {
    crate::secrets::redact_connection_string(conn).into_owned()
}

/// Refuses a connection string that holds a literal password (plans are journaled whole).
pub fn check_no_literal_password(conn: &str) -> Result<()> {
    if conn.starts_with("sqlite:") {
        return Ok(());
    }
    let pairs = crate::secrets::parse_connection_string(conn)
        .map_err(|e| err(format!("{}: {e}", redact(conn))))?;
    for crate::secrets::ConnPair {
        key: k, value: v, ..
    } in &pairs
    {
        if crate::secrets::is_secret_key(k) && !v.is_empty() && !is_reference(v) {
            return Err(err(format!(
                "the connection string holds a literal password ({}); plans are kept in the journal, so write {k}=${{VARIABLE}} and set the environment variable VARIABLE",
                redact(conn)
            )));
        }
    }
    Ok(())
}

/// Whether a value is an environment variable reference as a whole (`${VAR}`).
fn is_reference(v: &str) -> bool {
    v.starts_with("${") && v.ends_with('}')
}

/// Refuses a command (program and arguments, as a plan keeps it) that holds a literal
/// password, by the connection string's rule: plans are journaled whole, and the command is
/// printed and logged. A literal is the value of a `--flag` whose name is a secret
/// (`--password X`, `--db-password=X`: [`crate::secrets::is_secret_key`]) or the password of
/// a connection string in any argument, when it is not a `${VAR}` reference (which the step
/// takes from the environment when it starts the command). `what` names the command.
pub fn check_command_no_literal_password(what: &str, args: &[String]) -> Result<()> {
    let secret_flag = |flag: &str| {
        flag.starts_with("--") && crate::secrets::is_secret_key(flag.trim_start_matches('-'))
    };
    let refuse = |how: String| {
        let shown = crate::secrets::mask_command_line(args).join(" ");
        Err(err(format!(
            "{what} holds a literal password ({how}: {shown}); plans are kept in the journal, so write ${{VARIABLE}} in its place and set the environment variable VARIABLE"
        )))
    };
    let mut previous_is_secret_flag = false;
    for a in args {
        if std::mem::take(&mut previous_is_secret_flag) && !is_reference(a) {
            return refuse("the value after a password option".into());
        }
        match a.split_once('=') {
            Some((flag, v)) if secret_flag(flag) => {
                if !is_reference(v) {
                    return refuse(format!("{flag}=***"));
                }
                continue;
            }
            None if secret_flag(a) => {
                previous_is_secret_flag = true;
                continue;
            }
            _ => {}
        }
        // Any argument read as a connection string (an argument that is not one does not
        // parse, or has no secret key).
        let pairs = crate::secrets::parse_connection_string(a).unwrap_or_default();
        if let Some(p) = pairs.iter().find(|p| {
            crate::secrets::is_secret_key(&p.key) && !p.value.is_empty() && !is_reference(&p.value)
        }) {
            return refuse(format!("{}=***", p.key));
        }
    }
    if previous_is_secret_flag {
        return refuse("a password option without a value".into());
    }
    Ok(())
}

/// Replaces `${VAR}` references with environment values.
fn resolve_env(conn: &str) -> Result<String> {
    let mut out = String::with_capacity(conn.len());
    let mut rest = conn;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find('}')
            .ok_or_else(|| err(format!("unterminated ${{ in {}", redact(conn))))?;
        let name = &after[..j];
        let v = std::env::var(name).map_err(|_| {
            err(format!(
                "environment variable {name} (referenced by the connection string) is not set"
            ))
        })?;
        out.push_str(&v);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Windows authentication: `Trusted_Connection=yes|true` (which tiberius does not read) is
/// rewritten as `Integrated Security=SSPI`; either is refused where SSPI does not exist, instead
/// of silently trying a SQL login with no user.
fn windows_auth(resolved: &str, shown: &str) -> Result<String> {
    let mut integrated = false;
    let parts: Vec<String> = resolved
        .split(';')
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let key = k.trim().to_ascii_lowercase();
            let on = matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "sspi" | "true" | "yes"
            );
            if matches!(key.as_str(), "integrated security" | "integratedsecurity") && on {
                integrated = true;
            }
            if key == "trusted_connection" && on {
                integrated = true;
                return "Integrated Security=SSPI".to_string();
            }
            part.to_string()
        })
        .collect();
    if integrated && !crate::platform::SQL_WINDOWS_AUTH {
        return Err(err(format!(
            "{}: Windows authentication (Integrated Security / Trusted_Connection) works only \
             in the Windows build; here give User ID and Password=${{VAR}}",
            redact(shown)
        )));
    }
    Ok(parts.join(";"))
}

/// Parses a connection string (see the module documentation).
pub fn target(conn: &str, root: &Path) -> Result<Target> {
    if let Some(p) = conn.strip_prefix("sqlite:") {
        if p.is_empty() {
            return Err(err("sqlite: connection string without a path"));
        }
        return Ok(Target::Sqlite(root.join(p)));
    }
    let resolved = windows_auth(&resolve_env(conn)?, conn)?;
    // Validate now with tiberius's own parser, so errors show before anything runs.
    tiberius::Config::from_ado_string(&resolved)
        .map_err(|e| err(format!("{}: {e}", redact(conn))))?;
    Ok(Target::SqlServer(resolved))
}

/// The path-like key under which plans group steps touching the same database.
pub fn conn_key(conn: &str) -> &Path {
    Path::new(conn.strip_prefix("sqlite:").unwrap_or(conn))
}

/// Opens a new session.
pub fn open(t: &Target) -> Result<Box<dyn Database>> {
    match t {
        Target::Sqlite(p) => Ok(Box::new(sqlite::Sqlite::open(p)?)),
        Target::SqlServer(ado) => Ok(Box::new(mssql::Mssql::connect(ado)?)),
    }
}

/// The name of the run's lock (SQL Server `sp_getapplock` resource).
pub const LOCK_RESOURCE: &str = "usercube-upgrade";

type Shared = Arc<Mutex<Box<dyn Database>>>;

/// Sessions kept for the whole process (one per database): the SQL Server applock taken at
/// the first connection lasts for the whole run and is freed by the server when the process
/// ends, however it ends.
static SESSIONS: Mutex<Vec<(Target, Shared)>> = Mutex::new(Vec::new());

fn session(t: &Target) -> Result<Shared> {
    let mut all = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, s)) = all.iter().find(|(k, _)| k == t) {
        return Ok(s.clone());
    }
    let mut db = open(t)?;
    db.lock(LOCK_RESOURCE)?;
    let s: Shared = Arc::new(Mutex::new(db));
    all.push((t.clone(), s.clone()));
    Ok(s)
}

/// Closes the process's session for `t`, if any (the next use opens a new one).
pub fn forget(t: &Target) {
    let mut all = SESSIONS.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(k, _)| k != t);
}

/// Runs `f` on the process's session for `t` (opened and locked on first use). On an error
/// the transaction is rolled back; a session that no longer answers is dropped, so the next
/// use starts from a fresh one.
pub fn with_session<R>(t: &Target, f: impl FnOnce(&mut dyn Database) -> Result<R>) -> Result<R> {
    let s = session(t)?;
    let mut db = s.lock().unwrap_or_else(|e| e.into_inner());
    match f(&mut **db) {
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = db.rollback();
            if !db.alive() {
                drop(db);
                forget(t);
            }
            Err(e)
        }
    }
}

/// Restores the database `t` from `file`. SQLite: on the process's session. SQL Server: a
/// database in use cannot be restored, and the process's own session uses it (it holds the
/// run's applock, taken in that database): that session is closed first (the server frees
/// its applock), the restore runs on a new session from `master`, and the next use of the
/// database opens a new session, which takes the applock again (refused, as at the start,
/// if another run took it in between).
pub fn restore(t: &Target, file: &Path) -> Result<()> {
    match t {
        Target::Sqlite(_) => with_session(t, |db| db.restore(file)),
        Target::SqlServer(ado) => {
            // Dropped here unless a caller holds it (the engine does not, between steps).
            forget(t);
            let mut db = mssql::Mssql::connect(ado)?;
            db.restore(file)
        }
    }
}

/// Table names are used in SQL text: only letters, digits, `_` (and one `dbo.` prefix).
pub fn check_table_name(table: &str) -> Result<&str> {
    let bare = table.strip_prefix("dbo.").unwrap_or(table);
    let ok = !bare.is_empty()
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !bare.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(bare)
    } else {
        Err(err(format!(
            "table name {table:?}: only letters, digits and _ are accepted"
        )))
    }
}

/// Every row of a table in key order (tests).
#[cfg(any(test, feature = "testing"))]
pub fn dump(db: &mut dyn Database, table: &str) -> Result<Vec<Vec<Value>>> {
    let info = db.table_info(table)?;
    let mut rows = Vec::new();
    db.scan(table, &info, &mut |r| {
        rows.push(r);
        Ok(())
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_and_literal_passwords() {
        let c = "Server=tcp:h,1433;Database=Usercube;User Id=sa;Password=s3cret;Encrypt=true";
        let r = redact(c);
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("Password=***"), "{r}");
        let e = check_no_literal_password(c).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(check_no_literal_password("Server=h;User Id=sa;Pwd=${DBPW}").is_ok());
        assert!(check_no_literal_password(
            "data source=.;Database=Usercube;Integrated Security=SSPI;Min Pool Size=10;"
        )
        .is_ok());
        assert!(check_no_literal_password("sqlite:x.db").is_ok());
    }

    #[test]
    fn literal_passwords_in_a_command_are_refused() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for bad in [
            &[
                "tool",
                "--connection-string",
                "Server=h;User Id=sa;Password=s3cret",
            ][..],
            &["tool", "--connection-string=Server=h;Pwd=s3cret"],
            &["tool", "--password", "s3cret"],
            &["tool", "--db-password=s3cret"],
            &["tool", "--password"],
        ] {
            let e = check_command_no_literal_password("the command", &args(bad))
                .unwrap_err()
                .to_string();
            assert!(!e.contains("s3cret"), "{e}");
            assert!(e.contains("literal password"), "{e}");
            assert!(e.contains("${VARIABLE}"), "{e}");
        }
        for good in [
            &[
                "tool",
                "--connection-string",
                "Server=h;User Id=sa;Password=${PW}",
            ][..],
            &["tool", "--password", "${PW}"],
            &["tool", "--password=${PW}", "--password-file", "/run/pw"],
            &["python3", "-c", "import sys; print(1)", "x=y"],
            &["tool", "data source=.;Integrated Security=SSPI"],
        ] {
            check_command_no_literal_password("the command", &args(good)).unwrap();
        }
    }

    #[test]
    fn windows_authentication_is_rewritten_or_refused_by_platform() {
        let r = windows_auth("Server=h;Database=U;Trusted_Connection=Yes", "shown");
        let sspi = windows_auth("Server=h;Integrated Security=SSPI", "shown");
        if crate::platform::SQL_WINDOWS_AUTH {
            assert_eq!(r.unwrap(), "Server=h;Database=U;Integrated Security=SSPI");
            assert_eq!(sspi.unwrap(), "Server=h;Integrated Security=SSPI");
        } else {
            for e in [r.unwrap_err(), sspi.unwrap_err()] {
                assert!(e.to_string().contains("only in the Windows build"), "{e}");
            }
        }
        let sql = "Server=h;User Id=sa;Password=x;Trusted_Connection=no";
        assert_eq!(windows_auth(sql, "shown").unwrap(), sql);
    }

    #[test]
    fn targets() {
        let root = Path::new("/inst");
        assert_eq!(
            target("sqlite:db/u.sqlite", root).unwrap(),
            Target::Sqlite("/inst/db/u.sqlite".into())
        );
        assert_eq!(
            target("sqlite:/abs/u.sqlite", root).unwrap(),
            Target::Sqlite("/abs/u.sqlite".into())
        );
        std::env::set_var("USERCUBE_TEST_DBPW_1", "pw-x");
        match target(
            "Server=tcp:127.0.0.1,1433;User Id=sa;Password=${USERCUBE_TEST_DBPW_1}",
            root,
        ) {
            Ok(Target::SqlServer(s)) => assert!(s.contains("Password=pw-x")),
            other => panic!("{other:?}"),
        }
        let e = target("Server=h;Password=${USERCUBE_TEST_UNSET_9}", root).unwrap_err();
        assert!(e.0.contains("USERCUBE_TEST_UNSET_9"), "{e}");
        assert!(check_table_name("UJ_JobSteps").is_ok());
        assert!(check_table_name("dbo.UJ_JobSteps").is_ok());
        assert!(check_table_name("x; DROP TABLE y").is_err());
    }
}
