//! End-to-end tests: the `tiberius` client over real TCP against the server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tds_test_server::{Options, TestServer};
use tiberius::{error::Error, Client, Config, EncryptionLevel, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

type Conn = Client<Compat<TcpStream>>;

const SCHEMA: &str = "
CREATE TABLE Parent (Id BIGINT IDENTITY PRIMARY KEY, Name NVARCHAR(100) NULL);
CREATE TABLE Other (Id BIGINT IDENTITY PRIMARY KEY, Name NVARCHAR(100) NULL);
CREATE TABLE Child (Id BIGINT PRIMARY KEY, ParentId BIGINT NOT NULL REFERENCES Parent(Id), Label NVARCHAR(50) NULL);
CREATE TABLE Big (Id BIGINT PRIMARY KEY, Name NVARCHAR(50) NULL, Small INT NULL, Flag BIT NULL, Score FLOAT NULL, Data VARBINARY NULL, Raw VARBINARY(16) NULL, Note TEXT NULL);
CREATE TABLE Ev (Id INT PRIMARY KEY, At DATETIME2 NULL, Old DATETIME NULL, Day DATE NULL);
INSERT INTO Ev (Id, At, Old, Day) VALUES (1, '2024-02-29 13:45:10.1234567', '2020-01-02 03:04:05.123', '1999-12-31'), (2, NULL, NULL, NULL);
INSERT INTO Parent (Id, Name) VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
INSERT INTO Child (Id, ParentId, Label) VALUES (10, 1, 'c10'), (11, 1, 'c11'), (12, 2, NULL);
INSERT INTO Big (Id, Name, Small, Flag, Score, Data, Note) VALUES
  (2147483648, 'Zoë', -7, 1, 1.5, X'00FF10', '東京'),
  (-42, NULL, NULL, NULL, NULL, NULL, NULL),
  (5, 'plain', 2147483647, 0, -0.25, X'', '');
";

// Field order = drop order: stop the server before removing the directory.
struct Fixture {
    server: TestServer,
    dir: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with(Options::default())
}

fn fixture_with(options: Options) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usercube.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(SCHEMA)
        .unwrap();
    let server = TestServer::start(&db, options);
    Fixture {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        server,
    }
}

async fn try_connect_str(conn_str: &str) -> Result<Conn, Error> {
    let mut config = Config::from_ado_string(conn_str).unwrap();
    config.encryption(EncryptionLevel::NotSupported);
    let tcp = TcpStream::connect(config.get_addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    Client::connect(config, tcp.compat_write()).await
}

async fn connect(f: &Fixture) -> Conn {
    try_connect_str(&f.server.connection_string())
        .await
        .unwrap()
}

async fn rows(c: &mut Conn, sql: &str) -> Vec<Row> {
    c.simple_query(sql)
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap()
}

async fn scalar_i32(c: &mut Conn, sql: &str) -> i32 {
    rows(c, sql).await[0].get::<i32, _>(0).unwrap()
}

async fn scalar_i64(c: &mut Conn, sql: &str) -> i64 {
    rows(c, sql).await[0].get::<i64, _>(0).unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> u32 {
    match r {
        Err(Error::Server(e)) => e.code(),
        other => panic!("expected a server error, got {other:?}"),
    }
}

async fn query_code(c: &mut Conn, sql: &str) -> u32 {
    let r = match c.simple_query(sql).await {
        Ok(s) => s.into_results().await.map(|_| ()),
        Err(e) => Err(e),
    };
    code(r)
}

async fn count(c: &mut Conn, table: &str) -> i32 {
    scalar_i32(c, &format!("SELECT COUNT(*) FROM [dbo].[{table}]")).await
}

#[tokio::test]
async fn connect_and_select_one() {
    let f = fixture();
    let mut c = connect(&f).await;
    assert_eq!(scalar_i32(&mut c, "SELECT 1").await, 1);
    let r = rows(&mut c, "SELECT DB_NAME()").await;
    assert_eq!(r[0].get::<&str, _>(0), Some("Usercube"));
    let r = rows(&mut c, "SELECT @@VERSION").await;
    assert!(r[0]
        .get::<&str, _>(0)
        .unwrap()
        .starts_with("Microsoft SQL Server"));
    assert_eq!(scalar_i32(&mut c, "SELECT @@TRANCOUNT").await, 0);
    assert_eq!(
        scalar_i32(&mut c, "SELECT COUNT(*) FROM dbo.Parent").await,
        3
    );
    assert_eq!(
        scalar_i64(&mut c, "SELECT COUNT_BIG(*) FROM dbo.Parent").await,
        3
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT OBJECTPROPERTY(OBJECT_ID('dbo.Parent'), 'TableHasIdentity')"
        )
        .await,
        1
    );
    assert_eq!(
        scalar_i32(
            &mut c,
            "SELECT OBJECTPROPERTY(OBJECT_ID(N'[dbo].[Child]'), 'TableHasIdentity')"
        )
        .await,
        0
    );
    let r = rows(&mut c, "SELECT OBJECT_ID('dbo.Missing')").await;
    assert_eq!(r[0].get::<i32, _>(0), None);
    // TOP, ORDER BY, WHERE
    let r = rows(
        &mut c,
        "SELECT TOP (2) [Id], [Name] FROM [dbo].[Parent] WHERE [Id] > 0 ORDER BY [Id] DESC",
    )
    .await;
    let got: Vec<(i64, String)> = r
        .iter()
        .map(|r| {
            (
                r.get::<i64, _>(0).unwrap(),
                r.get::<&str, _>(1).unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, vec![(3, "p3".to_string()), (2, "p2".to_string())]);
    // MAX over a BIGINT column is bigint
    assert_eq!(
        scalar_i64(&mut c, "SELECT MAX(Id) FROM dbo.Parent").await,
        3
    );
}

#[tokio::test]
async fn wrong_password_is_login_failed_18456() {
    let f = fixture();
    let s = f
        .server
        .connection_string()
        .replace("Password=TestServer#1", "Password=wrong");
    match try_connect_str(&s).await {
        Err(Error::Server(e)) => {
            assert_eq!(e.code(), 18456);
            assert_eq!(e.message(), "Login failed for user 'sa'.");
        }
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("login must fail"),
    }
    // the right password still works
    let mut c = connect(&f).await;
    assert_eq!(scalar_i32(&mut c, "SELECT 1").await, 1);
}

#[tokio::test]
async fn types_round_trip_select_and_sp_executesql() {
    let f = fixture();
    let mut c = connect(&f).await;
    let r = rows(
        &mut c,
        "SELECT Id, Name, Small, Flag, Score, Data, Note FROM dbo.Big ORDER BY Id",
    )
    .await;
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].get::<i64, _>(0), Some(-42));
    assert_eq!(r[0].get::<&str, _>(1), None);
    assert_eq!(r[0].get::<i32, _>(2), None);
    assert_eq!(r[0].get::<bool, _>(3), None);
    assert_eq!(r[0].get::<f64, _>(4), None);
    assert_eq!(r[0].get::<&[u8], _>(5), None);
    assert_eq!(r[0].get::<&str, _>(6), None);
    assert_eq!(r[1].get::<i64, _>(0), Some(5));
    assert_eq!(r[1].get::<i32, _>(2), Some(2147483647));
    assert_eq!(r[1].get::<bool, _>(3), Some(false));
    assert_eq!(r[1].get::<&[u8], _>(5), Some(&b""[..]));
    assert_eq!(r[1].get::<&str, _>(6), Some(""));
    assert_eq!(r[2].get::<i64, _>(0), Some(2147483648));
    assert_eq!(r[2].get::<&str, _>(1), Some("Zoë"));
    assert_eq!(r[2].get::<i32, _>(2), Some(-7));
    assert_eq!(r[2].get::<bool, _>(3), Some(true));
    assert_eq!(r[2].get::<f64, _>(4), Some(1.5));
    assert_eq!(r[2].get::<&[u8], _>(5), Some(&[0u8, 0xFF, 0x10][..]));
    assert_eq!(r[2].get::<&str, _>(6), Some("東京"));

    // INSERT through sp_executesql parameters
    let name: Option<&str> = None;
    let res = c
        .execute(
            "INSERT INTO [dbo].[Big] ([Id], [Name], [Small], [Flag], [Score], [Data], [Note]) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7)",
            &[&-2147483649i64, &"東京 Zoë", &12i32, &true, &-3.75f64, &vec![1u8, 2, 3], &String::from("x")],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1]);
    let none_i64: Option<i64> = None;
    let res = c
        .execute(
            "INSERT INTO dbo.Big (Id, Name, Small) VALUES (@P1, @P2, @P3)",
            &[&7i64, &name, &none_i64],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1]);

    let r = c
        .query(
            "SELECT Id, Name, Small, Flag, Score, Data, Note FROM dbo.Big WHERE Id = @P1",
            &[&-2147483649i64],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].get::<i64, _>(0), Some(-2147483649));
    assert_eq!(r[0].get::<&str, _>(1), Some("東京 Zoë"));
    assert_eq!(r[0].get::<i32, _>(2), Some(12));
    assert_eq!(r[0].get::<bool, _>(3), Some(true));
    assert_eq!(r[0].get::<f64, _>(4), Some(-3.75));
    assert_eq!(r[0].get::<&[u8], _>(5), Some(&[1u8, 2, 3][..]));
    assert_eq!(r[0].get::<&str, _>(6), Some("x"));

    let r = c
        .query("SELECT Name, Small FROM dbo.Big WHERE Id = @P1", &[&7i64])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r[0].get::<&str, _>(0), None);
    assert_eq!(r[0].get::<i32, _>(1), None);

    // parameter in WHERE with a string
    let r = c
        .query("SELECT Id FROM dbo.Big WHERE Name = @P1", &[&"Zoë"])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].get::<i64, _>(0), Some(2147483648));
}

#[tokio::test]
async fn transactions_rollback_and_commit() {
    let f = fixture();
    let mut c = connect(&f).await;
    c.simple_query("BEGIN TRANSACTION").await.unwrap();
    assert_eq!(scalar_i32(&mut c, "SELECT @@TRANCOUNT").await, 1);
    let res = c
        .execute("DELETE FROM dbo.Child WHERE ParentId = @P1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[2]);
    assert_eq!(count(&mut c, "Child").await, 1);
    c.simple_query("ROLLBACK TRANSACTION").await.unwrap();
    assert_eq!(scalar_i32(&mut c, "SELECT @@TRANCOUNT").await, 0);
    assert_eq!(count(&mut c, "Child").await, 3);

    c.simple_query("BEGIN TRAN").await.unwrap();
    c.execute("DELETE FROM dbo.Child WHERE ParentId = @P1", &[&1i64])
        .await
        .unwrap();
    c.simple_query("COMMIT TRAN").await.unwrap();
    assert_eq!(count(&mut c, "Child").await, 1);

    // another session sees the committed state
    let mut c2 = connect(&f).await;
    assert_eq!(count(&mut c2, "Child").await, 1);

    // a failing statement inside a transaction keeps the transaction
    c.simple_query("BEGIN TRAN").await.unwrap();
    c.execute("DELETE FROM dbo.Child", &[]).await.unwrap();
    let e = c
        .execute(
            "INSERT INTO dbo.Big (Id, Name) VALUES (@P1, @P2)",
            &[&5i64, &"dup"],
        )
        .await;
    assert_eq!(code(e), 2627);
    assert_eq!(scalar_i32(&mut c, "SELECT @@TRANCOUNT").await, 1);
    assert_eq!(count(&mut c, "Child").await, 0);
    c.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(count(&mut c, "Child").await, 1);

    // SET XACT_ABORT ON: the error rolls the whole transaction back
    c.simple_query("SET XACT_ABORT ON").await.unwrap();
    c.simple_query("BEGIN TRAN").await.unwrap();
    c.execute("DELETE FROM dbo.Child", &[]).await.unwrap();
    let e = c
        .execute("INSERT INTO dbo.Big (Id) VALUES (@P1)", &[&5i64])
        .await;
    assert_eq!(code(e), 2627);
    assert_eq!(scalar_i32(&mut c, "SELECT @@TRANCOUNT").await, 0);
    assert_eq!(count(&mut c, "Child").await, 1);
    c.simple_query("SET XACT_ABORT OFF").await.unwrap();

    // commit without a transaction
    assert_eq!(query_code(&mut c, "COMMIT TRANSACTION").await, 3902);
    assert_eq!(scalar_i32(&mut c, "SELECT 2").await, 2);
}

#[tokio::test]
async fn delete_row_counts() {
    let f = fixture();
    let mut c = connect(&f).await;
    let res = c
        .execute("DELETE FROM [dbo].[Child] WHERE [Id] IN (10, 11)", &[])
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[2]);
    let res = c
        .execute("DELETE FROM dbo.Child WHERE Id = @P1", &[&999i64])
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[0]);
    let res = c
        .execute(
            "DELETE FROM dbo.Child WHERE Id = 12;\nDELETE FROM dbo.Big WHERE Id < @P1",
            &[&10i64],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1, 2]);
    let res = c
        .execute("UPDATE dbo.Parent SET Name = @P1 WHERE Id >= 2", &[&"u"])
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[2]);
    assert_eq!(count(&mut c, "Child").await, 0);
    assert_eq!(count(&mut c, "Big").await, 1);
}

#[tokio::test]
async fn identity_insert_rules() {
    let f = fixture();
    let mut c = connect(&f).await;
    // explicit identity value while OFF
    let e = c
        .execute(
            "INSERT INTO dbo.Parent (Id, Name) VALUES (@P1, @P2)",
            &[&100i64, &"x"],
        )
        .await;
    assert_eq!(code(e), 544);
    // implicit identity: next value
    c.execute("INSERT INTO dbo.Parent (Name) VALUES (@P1)", &[&"auto"])
        .await
        .unwrap();
    let r = rows(&mut c, "SELECT Id FROM dbo.Parent WHERE Name = 'auto'").await;
    assert_eq!(r[0].get::<i64, _>(0), Some(4));
    assert_eq!(
        scalar_i64(&mut c, "SELECT CAST(SCOPE_IDENTITY() AS BIGINT)").await,
        4
    );

    // identity values are not reused after a delete
    c.execute("DELETE FROM dbo.Parent WHERE Id = 4", &[])
        .await
        .unwrap();
    c.execute("INSERT INTO dbo.Parent VALUES (@P1)", &[&"auto2"])
        .await
        .unwrap();
    let r = rows(&mut c, "SELECT Id FROM dbo.Parent WHERE Name = 'auto2'").await;
    assert_eq!(r[0].get::<i64, _>(0), Some(5));

    // ON: explicit value works, missing identity column is 545
    c.simple_query("SET IDENTITY_INSERT [dbo].[Parent] ON")
        .await
        .unwrap();
    let res = c
        .execute(
            "INSERT INTO [dbo].[Parent] ([Id], [Name]) VALUES (@P1, @P2)",
            &[&100i64, &"explicit"],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1]);
    let e = c
        .execute("INSERT INTO dbo.Parent (Name) VALUES (@P1)", &[&"y"])
        .await;
    assert_eq!(code(e), 545);
    // a second table while the first is ON
    assert_eq!(
        query_code(&mut c, "SET IDENTITY_INSERT dbo.Other ON").await,
        8107
    );
    // a table without identity
    assert_eq!(
        query_code(&mut c, "SET IDENTITY_INSERT dbo.Child ON").await,
        8106
    );
    c.simple_query("SET IDENTITY_INSERT dbo.Parent OFF")
        .await
        .unwrap();
    c.simple_query("SET IDENTITY_INSERT dbo.Other ON")
        .await
        .unwrap();
    c.simple_query("SET IDENTITY_INSERT dbo.Other OFF")
        .await
        .unwrap();
    assert_eq!(count(&mut c, "Parent").await, 5);
    // the setting is per session
    let mut c2 = connect(&f).await;
    let e = c2
        .execute(
            "INSERT INTO dbo.Parent (Id, Name) VALUES (@P1, @P2)",
            &[&101i64, &"x"],
        )
        .await;
    assert_eq!(code(e), 544);
}

#[tokio::test]
async fn constraint_violations() {
    let f = fixture();
    let mut c = connect(&f).await;
    let e = c
        .execute(
            "INSERT INTO dbo.Child (Id, ParentId) VALUES (@P1, @P2)",
            &[&50i64, &999i64],
        )
        .await;
    assert_eq!(code(e), 547);
    let e = c.execute("DELETE FROM dbo.Parent WHERE Id = 1", &[]).await;
    assert_eq!(code(e), 547);
    let e = c
        .execute(
            "INSERT INTO dbo.Child (Id, ParentId) VALUES (@P1, @P2)",
            &[&10i64, &1i64],
        )
        .await;
    assert_eq!(code(e), 2627);
    let e = c
        .execute("INSERT INTO dbo.Child (Id) VALUES (@P1)", &[&60i64])
        .await;
    assert_eq!(code(e), 515);
    // NVARCHAR(50): 51 characters are truncation error 2628, 50 fit
    let long = "é".repeat(51);
    let e = c
        .execute(
            "INSERT INTO dbo.Child (Id, ParentId, Label) VALUES (@P1, @P2, @P3)",
            &[&70i64, &1i64, &long.as_str()],
        )
        .await;
    assert_eq!(code(e), 2628);
    let e = c
        .execute(
            "UPDATE dbo.Child SET Label = @P1 WHERE Id = 10",
            &[&long.as_str()],
        )
        .await;
    assert_eq!(code(e), 2628);
    let res = c
        .execute(
            "UPDATE dbo.Child SET Label = @P1 WHERE Id = 10",
            &[&&long[..100]],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1]);
    // nothing changed, session usable
    assert_eq!(count(&mut c, "Child").await, 3);
    assert_eq!(count(&mut c, "Parent").await, 3);
}

#[tokio::test]
async fn unknown_statements_are_errors_not_executed() {
    let f = fixture();
    let mut c = connect(&f).await;
    assert_eq!(query_code(&mut c, "DROP TABLE dbo.Child").await, 102);
    assert_eq!(query_code(&mut c, "PRAGMA foreign_keys=OFF").await, 102);
    assert_eq!(
        query_code(&mut c, "SELECT * FROM dbo.Child LIMIT 1").await,
        102
    );
    assert_eq!(query_code(&mut c, "SELECT * FROM dbo.Nope").await, 208);
    assert_eq!(query_code(&mut c, "SELECT Nope FROM dbo.Child").await, 207);
    assert_eq!(query_code(&mut c, "SELECT FOO(1)").await, 195);
    // the whole batch is rejected before anything runs
    assert_eq!(
        query_code(&mut c, "DELETE FROM dbo.Child; TRUNCATE TABLE dbo.Child").await,
        102
    );
    assert_eq!(count(&mut c, "Child").await, 3);
    let e = c.execute("DELETE FROM dbo.Child WHERE Id = @P9", &[]).await;
    assert_eq!(code(e), 137);
    assert_eq!(count(&mut c, "Child").await, 3);
}

async fn get_applock(c: &mut Conn, resource: &str) -> i32 {
    let sql = format!(
        "DECLARE @r int;\nEXEC @r = sp_getapplock @Resource = N'{resource}', @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0;\nSELECT @r AS result"
    );
    let r = rows(c, &sql).await;
    r[0].get::<i32, _>(0).unwrap()
}

#[tokio::test]
async fn applock_is_per_session_and_freed_on_disconnect() {
    let f = fixture();
    let mut a = connect(&f).await;
    let mut b = connect(&f).await;
    assert_eq!(get_applock(&mut a, "usercube-upgrade").await, 0);
    assert_eq!(get_applock(&mut b, "usercube-upgrade").await, -1);
    let r = rows(
        &mut a,
        "SELECT APPLOCK_MODE('public', 'usercube-upgrade', 'Session'), APPLOCK_TEST('public', 'usercube-upgrade', 'Exclusive', 'Session')",
    )
    .await;
    assert_eq!(r[0].get::<&str, _>(0), Some("Exclusive"));
    assert_eq!(r[0].get::<i32, _>(1), Some(1));
    let r = rows(
        &mut b,
        "SELECT APPLOCK_MODE('public', 'usercube-upgrade', 'Session'), APPLOCK_TEST('public', 'usercube-upgrade', 'Exclusive', 'Session')",
    )
    .await;
    assert_eq!(r[0].get::<&str, _>(0), Some("NoLock"));
    assert_eq!(r[0].get::<i32, _>(1), Some(0));
    // other resources are independent
    assert_eq!(get_applock(&mut b, "something-else").await, 0);
    drop(a);
    let mut got = -1;
    for _ in 0..100 {
        got = get_applock(&mut b, "usercube-upgrade").await;
        if got == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, 0);
    // released explicitly, a third session can take it
    let r = rows(
        &mut b,
        "DECLARE @r int; EXEC @r = sp_releaseapplock @Resource = N'usercube-upgrade', @LockOwner = 'Session'; SELECT @r",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>(0), Some(0));
    let mut c = connect(&f).await;
    assert_eq!(get_applock(&mut c, "usercube-upgrade").await, 0);
    // also through sp_executesql
    let r = c
        .query(
            "DECLARE @r int; EXEC @r = sp_getapplock @Resource = @P1, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0; SELECT @r",
            &[&"usercube-upgrade"],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r[0].get::<i32, _>(0), Some(0));
    let r = b
        .query(
            "DECLARE @r int; EXEC @r = sp_getapplock @Resource = @P1, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0; SELECT @r",
            &[&"usercube-upgrade"],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r[0].get::<i32, _>(0), Some(-1));
}

fn sql_path(p: &Path) -> String {
    p.display().to_string().replace('\'', "''")
}

#[tokio::test]
async fn backup_verify_restore_round_trip() {
    let f = fixture();
    let mut c = connect(&f).await;
    let bak = f.dir.join("usercube.bak");
    let missing = f.dir.join("missing.bak");
    assert_eq!(
        query_code(
            &mut c,
            &format!("RESTORE VERIFYONLY FROM DISK = N'{}'", sql_path(&missing))
        )
        .await,
        3201
    );
    c.simple_query(format!(
        "BACKUP DATABASE [Usercube] TO DISK = N'{}' WITH COPY_ONLY, CHECKSUM, INIT",
        sql_path(&bak)
    ))
    .await
    .unwrap()
    .into_results()
    .await
    .unwrap();
    assert!(bak.is_file());
    c.simple_query(format!(
        "RESTORE VERIFYONLY FROM DISK = N'{}'",
        sql_path(&bak)
    ))
    .await
    .unwrap()
    .into_results()
    .await
    .unwrap();
    // a corrupt file fails verification
    let junk = f.dir.join("junk.bak");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    assert_eq!(
        query_code(
            &mut c,
            &format!("RESTORE VERIFYONLY FROM DISK = N'{}'", sql_path(&junk))
        )
        .await,
        3241
    );

    c.execute("DELETE FROM dbo.Child", &[]).await.unwrap();
    assert_eq!(count(&mut c, "Child").await, 0);
    let restore = format!(
        "RESTORE DATABASE [Usercube] FROM DISK = N'{}' WITH REPLACE",
        sql_path(&bak)
    );
    // Not from the database itself (3102), nor while another session uses it or holds an
    // applock in it (3101).
    assert_eq!(query_code(&mut c, &restore).await, 3102);
    c.simple_query("USE master")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let mut other = connect(&f).await;
    assert_eq!(query_code(&mut c, &restore).await, 3101);
    other
        .simple_query("USE master")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    assert_eq!(get_applock(&mut other, "usercube-upgrade").await, 0);
    assert_eq!(query_code(&mut c, &restore).await, 3101);
    drop(other);
    let mut done = false;
    for _ in 0..100 {
        // The server ends the other session once it sees the connection closed.
        match c.simple_query(restore.as_str()).await {
            Ok(s) => {
                s.into_results().await.unwrap();
                done = true;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(done, "restored once nobody uses the database");
    assert_eq!(query_code(&mut c, "USE Nope").await, 911);
    c.simple_query("USE [Usercube]")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    assert_eq!(count(&mut c, "Child").await, 3);
    let mut c2 = connect(&f).await;
    assert_eq!(count(&mut c2, "Child").await, 3);
    // not inside a transaction
    c.simple_query("BEGIN TRAN").await.unwrap();
    assert_eq!(
        query_code(
            &mut c,
            &format!(
                "BACKUP DATABASE [Usercube] TO DISK = N'{}' WITH INIT",
                sql_path(&bak)
            )
        )
        .await,
        3021
    );
    c.simple_query("ROLLBACK").await.unwrap();
    // unknown database name
    assert_eq!(
        query_code(
            &mut c,
            &format!("BACKUP DATABASE [Nope] TO DISK = N'{}'", sql_path(&bak))
        )
        .await,
        911
    );
}

#[tokio::test]
async fn plaintext_connection_string_needs_no_config_tweak() {
    let f = fixture();
    let cs = f.server.tiberius_connection_string();
    assert!(cs.ends_with("Encrypt=DANGER_PLAINTEXT"));
    let config = Config::from_ado_string(&cs).unwrap();
    let tcp = TcpStream::connect(config.get_addr()).await.unwrap();
    let mut c = Client::connect(config, tcp.compat_write()).await.unwrap();
    assert_eq!(scalar_i32(&mut c, "SELECT 41 + 1").await, 42);
    assert_eq!(
        f.server.connection_string(),
        format!(
            "Server=tcp:127.0.0.1,{};Database=Usercube;User Id=sa;Password=TestServer#1;TrustServerCertificate=true;Encrypt=false",
            f.server.port()
        )
    );
}

#[tokio::test]
async fn batches_split_on_newlines_and_keep_going_after_statement_errors() {
    let f = fixture();
    let mut c = connect(&f).await;
    let res = c
        .execute(
            "DELETE FROM dbo.Child WHERE Id = 10\nDELETE FROM dbo.Child\n  WHERE Id = 11",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1, 1]);
    // several result sets in one batch
    let sets = c
        .simple_query("SELECT 1 AS a; SELECT N'b' AS b\nSELECT Label FROM dbo.Child")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    assert_eq!(sets.len(), 3);
    assert_eq!(sets[0][0].get::<i32, _>("a"), Some(1));
    assert_eq!(sets[1][0].get::<&str, _>("b"), Some("b"));
    assert_eq!(sets[2].len(), 1);
    assert_eq!(sets[2][0].get::<&str, _>("Label"), None);
    // a constraint error ends the statement, not the batch (like SQL Server)
    assert_eq!(
        query_code(
            &mut c,
            "INSERT INTO dbo.Big (Id) VALUES (5); DELETE FROM dbo.Child WHERE Id = 12"
        )
        .await,
        2627
    );
    assert_eq!(count(&mut c, "Child").await, 0);
    // identity columns cannot be updated
    assert_eq!(
        query_code(&mut c, "UPDATE dbo.Parent SET Id = 9 WHERE Id = 1").await,
        8102
    );
    // short (non-max) binary and nvarchar columns
    let res = c
        .execute(
            "UPDATE dbo.Big SET Raw = @P1, Name = @P2 WHERE Id = @P3",
            &[&&[9u8, 8, 7][..], &"Zoë", &5i64],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1]);
    let r = rows(&mut c, "SELECT Raw, Name FROM dbo.Big WHERE Id = 5").await;
    assert_eq!(r[0].get::<&[u8], _>(0), Some(&[9u8, 8, 7][..]));
    assert_eq!(r[0].get::<&str, _>(1), Some("Zoë"));
}

#[tokio::test]
async fn binary_serves_clients() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bin.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(SCHEMA)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tds-test-server"))
        .args(["--db", db.to_str().unwrap(), "--port", "0"])
        .args(["--user", "u1", "--password", "p1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let cs = format!(
        "Server=tcp:127.0.0.1,{port};Database=Usercube;User Id=u1;Password=p1;Encrypt=DANGER_PLAINTEXT"
    );
    let mut c = try_connect_str(&cs).await.unwrap();
    assert_eq!(count(&mut c, "Child").await, 3);
    let bad = cs.replace("Password=p1", "Password=p2");
    assert_eq!(code(try_connect_str(&bad).await), 18456);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn output_clauses_top_delete_and_offset_fetch() {
    let f = fixture();
    let mut c = connect(&f).await;
    let r = c
        .query(
            "DELETE TOP (1) FROM [dbo].[Child] OUTPUT DELETED.* WHERE [ParentId] = @P1",
            &[&1i64],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    let id = r[0].get::<i64, _>("Id").unwrap();
    assert!(id == 10 || id == 11);
    assert_eq!(r[0].get::<i64, _>("ParentId"), Some(1));
    assert_eq!(count(&mut c, "Child").await, 2);
    let res = c
        .execute("DELETE TOP (5) FROM dbo.Child WHERE ParentId = 1", &[])
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1]);

    let r = c
        .query(
            "INSERT INTO dbo.Parent (Name) OUTPUT INSERTED.Id AS NewId, INSERTED.Name VALUES (@P1)",
            &[&"out"],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r[0].get::<i64, _>("NewId"), Some(4));
    assert_eq!(r[0].get::<&str, _>("Name"), Some("out"));

    let r = rows(
        &mut c,
        "SELECT Id FROM dbo.Parent ORDER BY Id OFFSET 1 ROWS FETCH NEXT 2 ROWS ONLY",
    )
    .await;
    let ids: Vec<i64> = r.iter().map(|r| r.get::<i64, _>(0).unwrap()).collect();
    assert_eq!(ids, vec![2, 3]);
    let r = rows(
        &mut c,
        "SELECT Id FROM dbo.Parent ORDER BY Id OFFSET 3 ROWS",
    )
    .await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].get::<i64, _>(0), Some(4));
}

#[tokio::test]
async fn date_and_time_types() {
    use tiberius::time::chrono::{NaiveDate, NaiveDateTime};
    let f = fixture();
    let mut c = connect(&f).await;
    let r = rows(&mut c, "SELECT At, Old, Day FROM dbo.Ev ORDER BY Id").await;
    let at = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_nano_opt(13, 45, 10, 123_456_700)
        .unwrap();
    assert_eq!(r[0].get::<NaiveDateTime, _>(0), Some(at));
    let old = NaiveDate::from_ymd_opt(2020, 1, 2)
        .unwrap()
        .and_hms_nano_opt(3, 4, 5, 123_333_333)
        .unwrap();
    assert_eq!(r[0].get::<NaiveDateTime, _>(1), Some(old));
    assert_eq!(
        r[0].get::<NaiveDate, _>(2),
        Some(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap())
    );
    assert_eq!(r[1].get::<NaiveDateTime, _>(0), None);
    assert_eq!(r[1].get::<NaiveDateTime, _>(1), None);
    assert_eq!(r[1].get::<NaiveDate, _>(2), None);

    let when = NaiveDate::from_ymd_opt(2031, 7, 4)
        .unwrap()
        .and_hms_nano_opt(23, 59, 58, 999_999_900)
        .unwrap();
    let day = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
    let res = c
        .execute(
            "INSERT INTO dbo.Ev (Id, At, Day) VALUES (@P1, @P2, @P3)",
            &[&3i32, &when, &day],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[1]);
    let r = c
        .query("SELECT At, Day FROM dbo.Ev WHERE At > @P1", &[&at])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].get::<NaiveDateTime, _>(0), Some(when));
    assert_eq!(r[0].get::<NaiveDate, _>(1), Some(day));
}

#[tokio::test]
async fn large_values_and_many_rows_span_packets() {
    let f = fixture();
    let mut c = connect(&f).await;
    let big_text: String = "Zoë東京-".repeat(20_000); // 140k chars
    let big_blob: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.execute(
        "INSERT INTO dbo.Big (Id, Note, Data) VALUES (@P1, @P2, @P3)",
        &[&1000i64, &big_text.as_str(), &big_blob],
    )
    .await
    .unwrap();
    let r = c
        .query("SELECT Note, Data FROM dbo.Big WHERE Id = @P1", &[&1000i64])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r[0].get::<&str, _>(0), Some(big_text.as_str()));
    assert_eq!(r[0].get::<&[u8], _>(1), Some(big_blob.as_slice()));

    let mut values = Vec::new();
    for i in 0..3000 {
        values.push(format!("({}, N'row {}')", 10_000 + i, i));
    }
    let res = c
        .execute(
            format!(
                "INSERT INTO dbo.Big (Id, Name) VALUES {}",
                values.join(", ")
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(res.rows_affected(), &[3000]);
    let r = rows(
        &mut c,
        "SELECT Id, Name FROM dbo.Big WHERE Id BETWEEN 10000 AND 20000 ORDER BY Id",
    )
    .await;
    assert_eq!(r.len(), 3000);
    assert_eq!(r[2999].get::<i64, _>(0), Some(12_999));
    assert_eq!(r[2999].get::<&str, _>(1), Some("row 2999"));
}
