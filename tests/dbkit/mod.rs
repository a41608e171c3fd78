//! Database test kit: one suite, three backends. `Db::sqlite()` (embedded), `Db::tds()` (the
//! TDS test server, reached through tiberius), `Db::mssql()` (a real SQL Server named by
//! `MSSQL_CONNECTION_STRING`, else None with a printed note). Each database gets the Usercube
//! tables with awkward values (bigint ids above 2^31, negative ids, NULLs, non-ASCII text,
//! bytes), and the binary runs plans on it with `--plan FILE`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use usercube_upgrade::testing::db::{self, Database, Target, Value};
use usercube_upgrade::testing::plan::{Plan, StepSpec};

pub const TABLES: [&str; 3] = ["UJ_TaskEntityTypes", "UJ_TaskResourceTypes", "UJ_JobSteps"];
/// Has an IDENTITY column (exercises SET IDENTITY_INSERT on SQL Server).
pub const IDENTITY_TABLE: &str = "UJ_IdentityDemo";
/// References UJ_JobSteps: a row in it blocks deleting UJ_JobSteps.
pub const CHILD_TABLE: &str = "UJ_JobStepChildren";
pub const PW_VAR: &str = "USERCUBE_TEST_DB_PASSWORD";

const SCHEMA: &str = "
CREATE TABLE UJ_TaskEntityTypes (Id BIGINT NOT NULL PRIMARY KEY, Task_Id BIGINT NOT NULL, EntityType_Id BIGINT NULL);
CREATE TABLE UJ_TaskResourceTypes (Id BIGINT NOT NULL PRIMARY KEY, Task_Id BIGINT NOT NULL, ResourceType_Id BIGINT NULL);
CREATE TABLE UJ_JobSteps (Id BIGINT NOT NULL PRIMARY KEY, Task_Id BIGINT NULL, Job_Id BIGINT NOT NULL, LaunchOrder INT NULL, [Level] INT NULL, Name NVARCHAR(200) NULL, Data VARBINARY(64) NULL, Weight FLOAT NULL);
CREATE TABLE UJ_IdentityDemo (Id BIGINT IDENTITY NOT NULL PRIMARY KEY, Label NVARCHAR(50) NULL);
CREATE TABLE UJ_JobStepChildren (Id BIGINT NOT NULL PRIMARY KEY, JobStep_Id BIGINT NULL REFERENCES UJ_JobSteps(Id));
";

pub struct Db {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub file: PathBuf,
    /// What plans say (passwords as ${PW_VAR}).
    pub conn: String,
    /// The password to put in PW_VAR for the binary.
    pub password: Option<String>,
    /// How this process connects for dumps.
    pub target: Target,
    pub server: Option<tds_test_server::TestServer>,
    pub name: &'static str,
}

fn sqlite_schema(file: &Path, rows: usize) {
    let c = rusqlite::Connection::open(file).unwrap();
    c.execute_batch(SCHEMA).unwrap();
    fill(&c, rows);
}

/// Rows with every awkward value; `rows` more plain rows in UJ_JobSteps.
fn fill(c: &rusqlite::Connection, rows: usize) {
    c.execute_batch(
        "INSERT INTO UJ_TaskEntityTypes VALUES (2147483648, 1, 10), (-7, 2, NULL), (1, 3, 30);
         INSERT INTO UJ_TaskResourceTypes VALUES (-2147483649, 4, NULL), (9223372036854775807, 5, 50);
         INSERT INTO UJ_JobSteps VALUES (2147483648, NULL, 1, 1, 0, 'Ünïcødé 日本語 🚀 ''quoted''', x'00ff10', 1.5),
                                        (-1, 7, 2, NULL, NULL, NULL, NULL, NULL),
                                        (3, 8, 3, 2, 1, '', x'', -0.25);
         INSERT INTO UJ_IdentityDemo (Id, Label) VALUES (5, 'five'), (2147483650, 'big'), (-3, NULL);",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut s = tx
            .prepare("INSERT INTO UJ_JobSteps VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL)")
            .unwrap();
        for i in 0..rows as i64 {
            s.execute(rusqlite::params![
                10_000 + i,
                i % 17,
                i,
                (i % 5) as i32,
                1,
                format!("étape n°{i}")
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

impl Db {
    fn base(name: &'static str, rows: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("backups")).unwrap();
        let file = root.join("usercube.sqlite");
        sqlite_schema(&file, rows);
        let _ = name;
        (tmp, root, file)
    }

    pub fn sqlite(rows: usize) -> Db {
        let (tmp, root, file) = Self::base("sqlite", rows);
        Db {
            conn: "sqlite:usercube.sqlite".into(),
            password: None,
            target: Target::Sqlite(file.clone()),
            server: None,
            tmp,
            root,
            file,
            name: "sqlite",
        }
    }

    pub fn tds(rows: usize) -> Db {
        let (tmp, root, file) = Self::base("tds", rows);
        let server = tds_test_server::TestServer::start(&file, Default::default());
        let literal = server.tiberius_connection_string();
        let pw = tds_test_server::Options::default().password.unwrap();
        let conn = literal.replace(
            &format!("Password={pw}"),
            &format!("Password=${{{PW_VAR}}}"),
        );
        assert_ne!(conn, literal);
        Db {
            conn,
            password: Some(pw),
            target: Target::SqlServer(literal),
            server: Some(server),
            tmp,
            root,
            file,
            name: "tds",
        }
    }

    /// A real SQL Server (MSSQL_CONNECTION_STRING, with a literal password); the tables are
    /// dropped and created in its database.
    pub fn mssql(rows: usize) -> Option<Db> {
        let Ok(literal) = std::env::var("MSSQL_CONNECTION_STRING") else {
            eprintln!(
                "note: MSSQL_CONNECTION_STRING is not set; the real SQL Server suite is skipped"
            );
            return None;
        };
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut password = None;
        let conn = literal
            .split(';')
            .map(|p| match p.split_once('=') {
                Some((k, v)) if ["password", "pwd"].contains(&k.trim().to_lowercase().as_str()) => {
                    password = Some(v.to_string());
                    format!("{k}=${{{PW_VAR}}}")
                }
                _ => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join(";");
        let target = Target::SqlServer(literal);
        let mut d = db::mssql::Mssql::connect(match &target {
            Target::SqlServer(s) => s,
            _ => unreachable!(),
        })
        .unwrap();
        let mut ddl = String::from("DROP TABLE IF EXISTS UJ_JobStepChildren; DROP TABLE IF EXISTS UJ_JobSteps; DROP TABLE IF EXISTS UJ_TaskResourceTypes; DROP TABLE IF EXISTS UJ_TaskEntityTypes; DROP TABLE IF EXISTS UJ_IdentityDemo;");
        ddl.push_str(&SCHEMA.replace("BIGINT IDENTITY", "BIGINT IDENTITY(1,1)"));
        d.execute(&ddl).unwrap();
        // Same rows as the SQLite databases, copied through the seam.
        let tmpdb = tmp.path().join("seed.sqlite");
        sqlite_schema(&tmpdb, rows);
        let mut src = db::sqlite::Sqlite::open(&tmpdb).unwrap();
        for t in TABLES.iter().chain([&IDENTITY_TABLE]) {
            let info = d.table_info(t).unwrap();
            let rows = db::dump(&mut src, t).unwrap();
            d.insert(t, &info, &rows).unwrap();
        }
        Some(Db {
            conn,
            password,
            target,
            server: None,
            file: tmpdb,
            tmp,
            root,
            name: "mssql",
        })
    }

    /// Every row of every table, in key order.
    pub fn dump(&self) -> BTreeMap<String, Vec<Vec<Value>>> {
        let mut d = db::open(&self.target).unwrap();
        TABLES
            .iter()
            .chain([&IDENTITY_TABLE, &CHILD_TABLE])
            .map(|t| (t.to_string(), db::dump(&mut *d, t).unwrap()))
            .collect()
    }

    pub fn count(&self, table: &str) -> u64 {
        db::open(&self.target).unwrap().count(table).unwrap()
    }

    /// Runs SQL on the underlying SQLite file (setup for the sqlite and tds backends).
    pub fn sqlite_exec(&self, sql: &str) {
        rusqlite::Connection::open(&self.file)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    pub fn plan(&self, backup: bool, tables: &[&str]) -> PathBuf {
        let mut steps = Vec::new();
        if backup {
            steps.push((
                Some("4.1"),
                None,
                StepSpec::DatabaseBackup {
                    connection: self.conn.clone(),
                    backup_dir: self.root.join("backups"),
                },
            ));
        }
        for t in tables {
            steps.push((
                Some("4.3"),
                None,
                StepSpec::DeleteRows {
                    connection: self.conn.clone(),
                    table: t.to_string(),
                },
            ));
        }
        let plan = Plan::new("database steps", steps);
        let f = self.tmp.path().join("plan.json");
        std::fs::write(&f, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
        f
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_usercube-upgrade"));
        c.args(args).arg("--root").arg(&self.root).arg("--quiet");
        if matches!(args.first(), Some(&"run") | Some(&"plan")) {
            c.arg("--plan").arg(self.tmp.path().join("plan.json"));
        }
        c.env_remove("USERCUBE_UPGRADE_CRASH_AT");
        match &self.password {
            Some(p) => c.env(PW_VAR, p),
            None => c.env_remove(PW_VAR),
        };
        c
    }

    pub fn code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.cmd(args).output().unwrap();
        (out.status.code(), text(&out))
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.code(args);
        assert_eq!(code, Some(0), "{} {args:?} failed:\n{out}", self.name);
        out
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.root.join(".usercube-upgrade")
    }
}

pub use super::common::text;

/// Every byte of every file under `dir`.
pub fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() {
            v.extend(std::fs::read(e.path()).unwrap_or_default());
        }
    }
    v
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
