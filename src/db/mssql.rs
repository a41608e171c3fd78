//! SQL Server through tiberius 0.12 (TDS 7.3, rustls). tiberius is async: this backend owns a
//! current-thread tokio runtime so that the rest of the engine stays synchronous. tiberius has
//! no transaction API: `BEGIN TRAN`/`COMMIT TRAN`/`ROLLBACK TRAN` are sent as batches.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use futures_util::TryStreamExt;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::{numeric::Numeric, Client, ColumnData, ColumnType, Config, QueryItem, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::{err, BackupCheck, Column, Database, DbError, Result, TableInfo, Value};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a restore waits for the database to be free ("in use", 3101).
const RESTORE_WAIT: Duration = Duration::from_secs(5);

pub struct Mssql {
    rt: tokio::runtime::Runtime,
    client: Client<Compat<TcpStream>>,
    database: String,
    in_txn: bool,
}

fn e(what: impl std::fmt::Display) -> impl FnOnce(tiberius::error::Error) -> DbError {
    move |x| err(format!("sql server: {what}: {x}"))
}

fn q(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

fn lit(s: &str) -> String {
    format!("N'{}'", s.replace('\'', "''"))
}

fn value(c: ColumnData<'static>) -> Result<Value> {
    Ok(match c {
        ColumnData::U8(v) => v.map_or(Value::Null, Value::U8),
        ColumnData::I16(v) => v.map_or(Value::Null, Value::I16),
        ColumnData::I32(v) => v.map_or(Value::Null, Value::I32),
        ColumnData::I64(v) => v.map_or(Value::Null, Value::I64),
        ColumnData::F32(v) => v.map_or(Value::Null, Value::F32),
        ColumnData::F64(v) => v.map_or(Value::Null, Value::F64),
        ColumnData::Bit(v) => v.map_or(Value::Null, Value::Bool),
        ColumnData::String(v) => v.map_or(Value::Null, |s| Value::Str(s.into_owned())),
        ColumnData::Binary(v) => v.map_or(Value::Null, |b| Value::Bytes(b.into_owned())),
        ColumnData::Guid(v) => v.map_or(Value::Null, |g| Value::Guid(*g.as_bytes())),
        ColumnData::Numeric(v) => v.map_or(Value::Null, |n| Value::Numeric(n.value(), n.scale())),
        ColumnData::DateTime(v) => v.map_or(Value::Null, |d| {
            Value::DateTime(d.days(), d.seconds_fragments())
        }),
        ColumnData::SmallDateTime(v) => v.map_or(Value::Null, |d| {
            Value::SmallDateTime(d.days(), d.seconds_fragments())
        }),
        ColumnData::Date(v) => v.map_or(Value::Null, |d| Value::Date(d.days())),
        ColumnData::Time(v) => v.map_or(Value::Null, |t| Value::Time(t.increments(), t.scale())),
        ColumnData::DateTime2(v) => v.map_or(Value::Null, |d| {
            Value::DateTime2(d.date().days(), d.time().increments(), d.time().scale())
        }),
        ColumnData::DateTimeOffset(v) => v.map_or(Value::Null, |d| {
            let d2 = d.datetime2();
            Value::DateTimeOffset(
                d2.date().days(),
                d2.time().increments(),
                d2.time().scale(),
                d.offset(),
            )
        }),
        ColumnData::Xml(_) => return Err(err("sql server: xml columns are not supported")),
    })
}

/// A value bound as a parameter; `binary` types a NULL for a varbinary column.
struct Param<'a>(&'a Value, bool);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> ColumnData<'_> {
        match self.0 {
            Value::Null if self.1 => ColumnData::Binary(None),
            Value::Null => ColumnData::String(None),
            Value::Bool(b) => ColumnData::Bit(Some(*b)),
            Value::U8(v) => ColumnData::U8(Some(*v)),
            Value::I16(v) => ColumnData::I16(Some(*v)),
            Value::I32(v) => ColumnData::I32(Some(*v)),
            Value::I64(v) => ColumnData::I64(Some(*v)),
            Value::F32(v) => ColumnData::F32(Some(*v)),
            Value::F64(v) => ColumnData::F64(Some(*v)),
            Value::Str(s) => ColumnData::String(Some(Cow::Borrowed(s))),
            Value::Bytes(b) => ColumnData::Binary(Some(Cow::Borrowed(b))),
            // SQLite's TEXT that is not UTF-8: refused by `insert` before anything is sent.
            Value::TextBytes(b) => ColumnData::Binary(Some(Cow::Borrowed(b))),
            Value::Guid(g) => ColumnData::Guid(Some(tiberius::Uuid::from_bytes(*g))),
            Value::Numeric(v, s) => ColumnData::Numeric(Some(Numeric::new_with_scale(*v, *s))),
            Value::DateTime(d, f) => ColumnData::DateTime(Some(DateTime::new(*d, *f))),
            Value::SmallDateTime(d, m) => {
                ColumnData::SmallDateTime(Some(SmallDateTime::new(*d, *m)))
            }
            Value::Date(d) => ColumnData::Date(Some(Date::new(*d))),
            Value::Time(i, s) => ColumnData::Time(Some(Time::new(*i, *s))),
            Value::DateTime2(d, i, s) => {
                ColumnData::DateTime2(Some(DateTime2::new(Date::new(*d), Time::new(*i, *s))))
            }
            Value::DateTimeOffset(d, i, s, o) => ColumnData::DateTimeOffset(Some(
                DateTimeOffset::new(DateTime2::new(Date::new(*d), Time::new(*i, *s)), *o),
            )),
        }
    }
}

fn as_i64(c: Option<ColumnData<'static>>) -> Option<i64> {
    match c? {
        ColumnData::U8(v) => v.map(i64::from),
        ColumnData::I16(v) => v.map(i64::from),
        ColumnData::I32(v) => v.map(i64::from),
        ColumnData::I64(v) => v,
        ColumnData::Bit(v) => v.map(i64::from),
        ColumnData::String(v) => v.and_then(|s| s.trim().parse().ok()),
        _ => None,
    }
}

impl Mssql {
    /// Connects with an ADO.NET string (parsed by tiberius), with a timeout.
    pub fn connect(ado: &str) -> Result<Mssql> {
        let shown = super::redact(ado);
        let config = Config::from_ado_string(ado).map_err(e(&shown))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|x| err(format!("starting the sql server client runtime: {x}")))?;
        let client = rt.block_on(async {
            let addr = config.get_addr();
            let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
                .await
                .map_err(|_| err(format!("cannot reach {addr} ({shown}): timed out")))?
                .map_err(|x| err(format!("cannot reach {addr} ({shown}): {x}")))?;
            tcp.set_nodelay(true).ok();
            tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(config, tcp.compat_write()))
                .await
                .map_err(|_| err(format!("cannot log in to {addr} ({shown}): timed out")))?
                .map_err(|x| err(format!("cannot log in to {addr} ({shown}): {x}")))
        })?;
        let mut m = Mssql {
            rt,
            client,
            database: String::new(),
            in_txn: false,
        };
        let rows = m.rows("SELECT DB_NAME() AS db")?;
        m.database = match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            Some(Value::Str(s)) => s,
            other => return Err(err(format!("sql server: DB_NAME() returned {other:?}"))),
        };
        Ok(m)
    }

    /// Runs a batch and drains every result.
    fn exec(&mut self, sql: &str) -> Result<()> {
        let client = &mut self.client;
        self.rt.block_on(async {
            client
                .simple_query(sql)
                .await
                .map_err(e(sql))?
                .into_results()
                .await
                .map_err(e(sql))
                .map(|_| ())
        })
    }

    /// Every row of a batch's results, as values.
    fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Value>>> {
        let client = &mut self.client;
        let rows = self.rt.block_on(async {
            client
                .simple_query(sql)
                .await
                .map_err(e(sql))?
                .into_results()
                .await
                .map_err(e(sql))
        })?;
        rows.into_iter()
            .flatten()
            .map(|r| r.into_iter().map(value).collect())
            .collect()
    }

    fn scalar(&mut self, sql: &str) -> Result<Option<i64>> {
        let client = &mut self.client;
        let rows = self.rt.block_on(async {
            client
                .simple_query(sql)
                .await
                .map_err(e(sql))?
                .into_results()
                .await
                .map_err(e(sql))
        })?;
        Ok(rows
            .into_iter()
            .flatten()
            .last()
            .and_then(|r| as_i64(r.into_iter().next())))
    }

    /// The names and wire types of `SELECT TOP 0 <what> FROM dbo.[t]`.
    fn column_types(&mut self, t: &str, what: &str) -> Result<Vec<(String, ColumnType)>> {
        let sql = format!("SELECT TOP 0 {what} FROM dbo.{}", q(t));
        let client = &mut self.client;
        let cols: Vec<(String, ColumnType)> = self.rt.block_on(async {
            let mut s = client.simple_query(&sql).await.map_err(e(&sql))?;
            let cols = s
                .columns()
                .await
                .map_err(e(&sql))?
                .map(|c| {
                    c.iter()
                        .map(|c| (c.name().to_string(), c.column_type()))
                        .collect()
                })
                .unwrap_or_default();
            s.into_results().await.map_err(e(&sql))?;
            Ok::<_, DbError>(cols)
        })?;
        Ok(cols)
    }

    /// The columns the server writes itself, from `sys.columns`: computed columns and the
    /// `rowversion` (`timestamp`, system type 189) column. An insert may not name them.
    fn server_written(&mut self, t: &str) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT c.name AS name, CAST(c.is_computed AS int) AS is_computed, CAST(c.system_type_id AS int) AS type_id FROM sys.columns c WHERE c.object_id = OBJECT_ID({}) ORDER BY c.column_id",
            lit(&format!("dbo.{t}"))
        );
        let rows = self.rows(&sql)?;
        let mut out = Vec::new();
        for r in rows {
            match r.as_slice() {
                [Value::Str(name), computed, type_id] => {
                    if *computed == Value::I32(1) || *type_id == Value::I32(ROWVERSION_TYPE_ID) {
                        out.push(name.clone());
                    }
                }
                other => {
                    return Err(err(format!(
                        "sql server: reading the columns of {t} from sys.columns: unexpected row {other:?}"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// `sys.types.system_type_id` of `timestamp` (`rowversion`).
const ROWVERSION_TYPE_ID: i32 = 189;

/// The select-list item that reads a column exactly: `money`/`smallmoney` through
/// `decimal(19,4)` (tiberius decodes money as an f64, exact only up to about 9e11); every
/// other type as it is.
fn read_as(name: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Money | ColumnType::Money4 => {
            format!("CAST({} AS decimal(19,4)) AS {}", q(name), q(name))
        }
        _ => q(name),
    }
}

impl Database for Mssql {
    fn begin(&mut self) -> Result<()> {
        self.exec("BEGIN TRAN")?;
        self.in_txn = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.exec("COMMIT TRAN")?;
        self.in_txn = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if self.in_txn {
            self.in_txn = false;
            // The server may have rolled back already (error 3903 then): nothing left to do.
            let _ = self.exec("ROLLBACK TRAN");
        }
        Ok(())
    }

    fn count(&mut self, table: &str) -> Result<u64> {
        let t = super::check_table_name(table)?;
        let n = self.scalar(&format!("SELECT COUNT_BIG(*) FROM dbo.{}", q(t)))?;
        n.map(|n| n as u64)
            .ok_or_else(|| err(format!("sql server: counting the rows of {t}: no result")))
    }

    fn has_table(&mut self, table: &str) -> Result<bool> {
        let t = super::check_table_name(table)?;
        let sql = format!(
            "SELECT CAST(OBJECTPROPERTY(OBJECT_ID({}), 'IsUserTable') AS int) AS t",
            lit(&format!("dbo.{t}"))
        );
        Ok(self.scalar(&sql)? == Some(1))
    }

    fn table_info(&mut self, table: &str) -> Result<TableInfo> {
        let t = super::check_table_name(table)?;
        let cols = self.column_types(t, "*")?;
        if cols.is_empty() {
            return Err(err(format!("sql server: table {t} has no columns")));
        }
        // The primary key from the catalog; servers without catalog views (the test server)
        // fall back to the first column (Usercube's Id).
        let pk_sql = format!(
            "SELECT c.name FROM sys.indexes i JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id WHERE i.is_primary_key = 1 AND i.object_id = OBJECT_ID({}) ORDER BY ic.key_ordinal",
            lit(&format!("dbo.{t}"))
        );
        let key: Vec<String> = match self.rows(&pk_sql) {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|r| match r.into_iter().next() {
                    Some(Value::Str(s)) => Some(s),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let key = if key.is_empty() {
            vec![cols[0].0.clone()]
        } else {
            key
        };
        let identity = self.scalar(&format!(
            "SELECT OBJECTPROPERTY(OBJECT_ID({}), 'TableHasIdentity') AS i",
            lit(&format!("dbo.{t}"))
        ))? == Some(1);
        for (name, ty) in &cols {
            if matches!(
                ty,
                ColumnType::Xml | ColumnType::Udt | ColumnType::SSVariant
            ) {
                return Err(err(format!(
                    "sql server: {t}.{name} has type {ty:?}, which the reversible delete does not support"
                )));
            }
        }
        // Computed and rowversion columns are left out of the table's shape: not saved, not
        // re-inserted (the server computes them again; a rowversion gets new values), not
        // compared when read back.
        let written = self.server_written(t)?;
        Ok(TableInfo {
            columns: cols
                .into_iter()
                .filter(|(name, _)| !written.iter().any(|w| w == name))
                .map(|(name, ty)| Column {
                    name,
                    binary: matches!(
                        ty,
                        ColumnType::BigVarBin | ColumnType::BigBinary | ColumnType::Image
                    ),
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
        let names: Vec<String> = info.columns.iter().map(|c| q(&c.name)).collect();
        // Each column read exactly (money through decimal): its type from the server.
        let types = self.column_types(t, &names.join(", "))?;
        if types.len() != names.len() {
            return Err(err(format!(
                "sql server: reading {t}: {} columns asked, {} described",
                names.len(),
                types.len()
            )));
        }
        let cols: Vec<String> = info
            .columns
            .iter()
            .zip(types)
            .map(|(c, (_, ty))| read_as(&c.name, ty))
            .collect();
        let key: Vec<String> = info.key.iter().map(|c| q(c)).collect();
        // TABLOCKX + HOLDLOCK: nobody changes the table until the transaction ends.
        let sql = format!(
            "SELECT {} FROM dbo.{} WITH (TABLOCKX, HOLDLOCK) ORDER BY {}",
            cols.join(", "),
            q(t),
            key.join(", ")
        );
        let client = &mut self.client;
        self.rt.block_on(async {
            let mut s = client.simple_query(&sql).await.map_err(e(&sql))?;
            while let Some(item) = s.try_next().await.map_err(e(&sql))? {
                if let QueryItem::Row(r) = item {
                    let row = r.into_iter().map(value).collect::<Result<Vec<_>>>()?;
                    f(row)?;
                }
            }
            Ok(())
        })
    }

    fn delete_all(&mut self, table: &str) -> Result<u64> {
        let t = super::check_table_name(table)?;
        let sql = format!("DELETE FROM dbo.{}", q(t));
        let client = &mut self.client;
        self.rt.block_on(async {
            client
                .execute(sql.as_str(), &[])
                .await
                .map(|r| r.total())
                .map_err(e(format!("deleting the rows of {t}")))
        })
    }

    fn insert(&mut self, table: &str, info: &TableInfo, rows: &[Vec<Value>]) -> Result<()> {
        let t = super::check_table_name(table)?;
        let n = info.columns.len();
        let cols: Vec<String> = info.columns.iter().map(|c| q(&c.name)).collect();
        // At most 2100 parameters per request, at most 1000 rows per VALUES.
        let per = (2000 / n.max(1)).clamp(1, 1000);
        // Checked before anything is sent (IDENTITY_INSERT is never left ON by a refusal).
        for r in rows {
            if r.len() != n {
                return Err(err(format!(
                    "sql server: inserting into {t}: a row has {} values for {n} columns",
                    r.len()
                )));
            }
            if r.iter().any(|v| matches!(v, Value::TextBytes(_))) {
                return Err(err(format!(
                    "sql server: inserting into {t}: a text value is not valid UTF-8 (SQLite text), which SQL Server cannot hold as it is"
                )));
            }
        }
        if info.identity {
            self.exec(&format!("SET IDENTITY_INSERT dbo.{} ON", q(t)))?;
        }
        let mut result = Ok(());
        for batch in rows.chunks(per) {
            let mut sql = format!("INSERT INTO dbo.{} ({}) VALUES ", q(t), cols.join(", "));
            let mut params: Vec<Param> = Vec::with_capacity(batch.len() * n);
            for (i, r) in batch.iter().enumerate() {
                sql.push_str(if i == 0 { "(" } else { ", (" });
                for (j, v) in r.iter().enumerate() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("@P{}", params.len() + 1));
                    params.push(Param(v, info.columns[j].binary));
                }
                sql.push(')');
            }
            let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
            let client = &mut self.client;
            result = self.rt.block_on(async {
                client
                    .execute(sql.as_str(), &refs)
                    .await
                    .map(|_| ())
                    .map_err(e(format!("inserting into {t}")))
            });
            if result.is_err() {
                break;
            }
        }
        if info.identity {
            let off = self.exec(&format!("SET IDENTITY_INSERT dbo.{} OFF", q(t)));
            result = result.and(off);
        }
        result
    }

    fn backup(&mut self, file: &Path) -> Result<()> {
        let f = file
            .to_str()
            .ok_or_else(|| err("backup path is not UTF-8"))?;
        self.exec(&format!(
            "BACKUP DATABASE {} TO DISK = {} WITH COPY_ONLY, CHECKSUM, INIT",
            q(&self.database.clone()),
            lit(f)
        ))?;
        self.verify_backup(file)?.require(file)
    }

    /// The server's own errors about the backup device or media are a verdict (absent or
    /// bad); any other error (connection, server busy) is not.
    fn verify_backup(&mut self, file: &Path) -> Result<BackupCheck> {
        let f = file
            .to_str()
            .ok_or_else(|| err("backup path is not UTF-8"))?;
        let sql = format!("RESTORE VERIFYONLY FROM DISK = {}", lit(f));
        let client = &mut self.client;
        let r = self.rt.block_on(async {
            client
                .simple_query(sql.as_str())
                .await?
                .into_results()
                .await
                .map(|_| ())
        });
        match r {
            Ok(()) => Ok(BackupCheck::Verified),
            // Cannot open backup device (operating system error 2: no such file).
            Err(tiberius::error::Error::Server(t))
                if t.code() == 3201 && t.message().contains("error 2(") =>
            {
                Ok(BackupCheck::Absent)
            }
            // Media family incorrectly formed, not a valid backup, checksum or read failure.
            Err(tiberius::error::Error::Server(t))
                if matches!(t.code(), 3241 | 3242 | 3243 | 3183 | 3189 | 3203) =>
            {
                Ok(BackupCheck::Bad(t.message().to_string()))
            }
            Err(x) => Err(e(&sql)(x)),
        }
    }

    /// Restores from a session that does not use the database: `USE master` first (a session
    /// cannot restore the database it is in), then `USE [db]` again. The database must be
    /// used by nobody else, the process's own locked session included: `db::restore` runs
    /// this on a new session after closing that one. "In use" (3101) is waited out for a
    /// few seconds: a session just closed may not have ended on the server yet.
    fn restore(&mut self, file: &Path) -> Result<()> {
        self.rollback()?;
        let f = file
            .to_str()
            .ok_or_else(|| err("backup path is not UTF-8"))?;
        let db = q(&self.database.clone());
        self.exec("USE master")?;
        let sql = format!("RESTORE DATABASE {db} FROM DISK = {} WITH REPLACE", lit(f));
        let until = std::time::Instant::now() + RESTORE_WAIT;
        let r = loop {
            let client = &mut self.client;
            let r = self.rt.block_on(async {
                client
                    .simple_query(sql.as_str())
                    .await?
                    .into_results()
                    .await
                    .map(|_| ())
            });
            match r {
                Err(tiberius::error::Error::Server(x))
                    if x.code() == 3101 && std::time::Instant::now() < until =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                r => break r.map_err(e(&sql)),
            }
        };
        let back = self.exec(&format!("USE {db}"));
        r.and(back)
    }

    fn version(&mut self) -> Result<Option<String>> {
        let exists = self.scalar("SELECT CAST(OBJECTPROPERTY(OBJECT_ID(N'dbo.UM_DatabaseVersion'), 'IsUserTable') AS int) AS t")?;
        if exists != Some(1) {
            return Ok(None);
        }
        let rows =
            self.rows("SELECT TOP 1 Version FROM dbo.UM_DatabaseVersion ORDER BY Id DESC")?;
        Ok(
            match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
                Some(Value::Str(s)) => Some(s),
                _ => None,
            },
        )
    }

    #[cfg(any(test, feature = "testing"))]
    fn execute(&mut self, sql: &str) -> Result<()> {
        self.exec(sql)
    }

    fn alive(&mut self) -> bool {
        !self.in_txn && self.scalar("SELECT 1 AS one").ok().flatten() == Some(1)
    }

    fn lock(&mut self, resource: &str) -> Result<()> {
        let r = self.scalar(&format!(
            "DECLARE @r int; EXEC @r = sp_getapplock @Resource = {}, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 5000; SELECT @r AS r",
            lit(resource)
        ))?;
        match r {
            Some(n) if n >= 0 => Ok(()),
            _ => Err(err(format!(
                "sql server: database {} is locked by another usercube-upgrade run (sp_getapplock {resource}: {r:?})",
                self.database
            ))),
        }
    }
}
