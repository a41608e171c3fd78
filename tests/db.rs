//! The database suite, run against SQLite directly, against the TDS test server through
//! tiberius, and against a real SQL Server when MSSQL_CONNECTION_STRING is set: reversible
//! deletes round-trip exactly, a foreign key blocking a delete rolls the run back, a wrong
//! password or an unreachable server is refused at preflight with nothing changed.

mod common;
mod dbkit;

use dbkit::{all_bytes, contains, Db, CHILD_TABLE, IDENTITY_TABLE, TABLES};
use usercube_upgrade::testing::db::Value;

fn all_tables() -> Vec<&'static str> {
    TABLES.iter().copied().chain([IDENTITY_TABLE]).collect()
}

/// Delete every table, check they are empty, roll back, compare full dumps: first with the
/// row-level undo alone, then with a backup step first (whose undo restores the database).
fn delete_then_rollback(db: &Db) {
    let start = db.dump();
    assert!(start["UJ_JobSteps"]
        .iter()
        .any(|r| r[0] == Value::I64(2147483648)
            && r[5] == Value::Str("Ünïcødé 日本語 🚀 'quoted'".into())));
    for backup in [false, true] {
        db.plan(backup, &all_tables());
        db.ok(&["run"]);
        for t in all_tables() {
            assert_eq!(db.count(t), 0, "{}: {t} emptied", db.name);
        }
        let (code, status) = db.code(&["status"]);
        assert_eq!(code, Some(0), "{status}");
        db.ok(&["rollback"]);
        assert_eq!(
            db.dump(),
            start,
            "{}: rollback (backup step: {backup}) restores identical rows",
            db.name
        );
    }
    if let Some(pw) = &db.password {
        let bytes = all_bytes(&db.journal_dir());
        assert!(
            !contains(&bytes, pw.as_bytes()),
            "the password reached the journal"
        );
        assert!(
            contains(&bytes, "Ünïcødé".as_bytes()),
            "before-images are in the journal"
        );
        let (code, audit) = db.code(&["journal", "export"]);
        assert_eq!(code, Some(0), "{audit}");
        assert!(audit.contains("UJ_JobSteps"), "{audit}");
        assert!(
            !audit.contains(pw.as_str()),
            "the password reached the audit"
        );
    }
}

fn resume_after_failure_free_run_leaves_empty_tables(db: &Db) {
    db.plan(false, &TABLES);
    let (code, plan) = db.code(&["plan"]);
    assert_eq!(code, Some(0), "{plan}");
    db.ok(&["run"]);
    for t in TABLES {
        assert_eq!(db.count(t), 0);
    }
    assert_eq!(db.count(IDENTITY_TABLE), 3, "other tables untouched");
    db.ok(&["finalize"]);
}

fn fk_blocked_delete_rolls_back(db: &Db) {
    let start = db.dump();
    db.plan(false, &TABLES);
    let (code, out) = db.code(&["run"]);
    assert_eq!(code, Some(1), "{}: the run fails:\n{out}", db.name);
    assert!(out.contains("UJ_JobSteps"), "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(db.dump(), start, "{}: the run rolled back", db.name);
}

fn wrong_password_refused(db: &Db) {
    let start = db.dump();
    db.plan(true, &TABLES);
    let out = db
        .cmd(&["run"])
        .env(dbkit::PW_VAR, "not-the-password")
        .output()
        .unwrap();
    let msg = dbkit::text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("refused by preflight"), "{msg}");
    assert!(msg.contains("Login failed"), "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
    assert_eq!(db.dump(), start, "nothing changed");
    assert!(std::fs::read_dir(db.root.join("backups"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn sqlite_delete_then_rollback_gives_identical_rows() {
    delete_then_rollback(&Db::sqlite(2500));
}

#[test]
fn tds_delete_then_rollback_gives_identical_rows() {
    delete_then_rollback(&Db::tds(2500));
}

#[test]
fn mssql_delete_then_rollback_gives_identical_rows() {
    if let Some(db) = Db::mssql(2500) {
        delete_then_rollback(&db);
    }
}

#[test]
fn sqlite_run_to_the_end_empties_the_tables() {
    resume_after_failure_free_run_leaves_empty_tables(&Db::sqlite(10));
}

#[test]
fn tds_run_to_the_end_empties_the_tables() {
    resume_after_failure_free_run_leaves_empty_tables(&Db::tds(10));
}

const CHILD_ROW: &str = "INSERT INTO UJ_JobStepChildren VALUES (1, 3);";

#[test]
fn sqlite_foreign_key_blocks_delete_and_run_rolls_back() {
    let db = Db::sqlite(10);
    db.sqlite_exec(CHILD_ROW);
    fk_blocked_delete_rolls_back(&db);
}

#[test]
fn tds_foreign_key_blocks_delete_and_run_rolls_back() {
    let db = Db::tds(10);
    db.sqlite_exec(CHILD_ROW);
    fk_blocked_delete_rolls_back(&db);
}

#[test]
fn mssql_foreign_key_blocks_delete_and_run_rolls_back() {
    if let Some(db) = Db::mssql(10) {
        let mut d = usercube_upgrade::testing::db::open(&db.target).unwrap();
        d.execute(CHILD_ROW).unwrap();
        fk_blocked_delete_rolls_back(&db);
    }
}

#[test]
fn tds_wrong_password_is_refused_at_preflight() {
    wrong_password_refused(&Db::tds(10));
}

#[test]
fn mssql_wrong_password_is_refused_at_preflight() {
    if let Some(db) = Db::mssql(10) {
        wrong_password_refused(&db);
    }
}

#[test]
fn unreachable_server_and_literal_password_are_refused_at_preflight() {
    let db = Db::tds(10);
    let start = db.dump();
    let port = db.server.as_ref().unwrap().port();
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let conn = db
        .conn
        .replace(&format!(",{port};"), &format!(",{dead_port};"));
    assert_ne!(conn, db.conn);
    let plan = usercube_upgrade::testing::plan::Plan::new(
        "t",
        vec![(
            None,
            None,
            usercube_upgrade::testing::plan::StepSpec::DeleteRows {
                connection: conn,
                table: "UJ_JobSteps".into(),
            },
        )],
    );
    std::fs::write(
        db.tmp.path().join("plan.json"),
        serde_json::to_string(&plan).unwrap(),
    )
    .unwrap();
    let (code, msg) = db.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("cannot reach 127.0.0.1"), "{msg}");

    let literal = db
        .conn
        .replace(&format!("${{{}}}", dbkit::PW_VAR), "hunter2");
    let plan = usercube_upgrade::testing::plan::Plan::new(
        "t",
        vec![(
            None,
            None,
            usercube_upgrade::testing::plan::StepSpec::DeleteRows {
                connection: literal,
                table: "UJ_JobSteps".into(),
            },
        )],
    );
    std::fs::write(
        db.tmp.path().join("plan.json"),
        serde_json::to_string(&plan).unwrap(),
    )
    .unwrap();
    let (code, msg) = db.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("literal password"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert_eq!(db.dump(), start);
}

/// Issue 23, part 2, item 7: SQLite TEXT whose bytes are not UTF-8 comes back as TEXT (not
/// as a BLOB) with the same bytes after the delete step is rolled back, beside a BLOB with
/// the same bytes, which stays a BLOB; every value keeps its storage class.
#[test]
fn sqlite_text_that_is_not_utf8_keeps_its_storage_class_through_a_rollback() {
    let db = Db::sqlite(10);
    db.sqlite_exec(
        "INSERT INTO UJ_JobSteps VALUES (90, 1, 1, 1, 1, CAST(x'80ff41c3' AS TEXT), x'80ff41c3', 2.0);
         INSERT INTO UJ_JobSteps VALUES (91, 1, 1, 1, 1, x'80ff41c3', CAST(x'e697a5' AS TEXT), 7);
         INSERT INTO UJ_JobSteps VALUES (92, '12', 1, '3', 1, 'ok', NULL, 'x');",
    );
    let classes = || -> Vec<(i64, String)> {
        let c = rusqlite::Connection::open(&db.file).unwrap();
        let mut s = c
            .prepare(
                "SELECT Id, typeof(Task_Id) || ' ' || typeof(LaunchOrder) || ' ' || typeof(Name) || ' ' || typeof(Data) || ' ' || typeof(Weight) || ' ' || hex(CAST(Name AS BLOB)) || ' ' || hex(CAST(Data AS BLOB)) || ' ' || quote(Weight) FROM UJ_JobSteps ORDER BY Id",
            )
            .unwrap();
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows
    };
    let before = classes();
    let row90 = &before.iter().find(|r| r.0 == 90).unwrap().1;
    assert!(
        row90.starts_with("integer integer text blob real 80FF41C3 80FF41C3"),
        "{row90}"
    );
    db.plan(false, &["UJ_JobSteps"]);
    db.ok(&["run"]);
    assert_eq!(db.count("UJ_JobSteps"), 0);
    db.ok(&["rollback"]);
    assert_eq!(classes(), before, "storage classes and bytes as before");
}

/// Issue 23, part 2, item 8: a table with a computed column and a `rowversion` column can
/// be emptied and put back: the server writes both (an explicit value is refused, 271 and
/// 273), so they are neither saved nor re-inserted; the other columns come back identical
/// and the computed column is computed again.
fn computed_and_rowversion_columns_round_trip(db: &Db, ddl: &str) {
    use usercube_upgrade::testing::db;
    let mut d = db::open(&db.target).unwrap();
    d.execute(ddl).unwrap();
    d.execute(
        "INSERT INTO UJ_Computed (Id, A, B) VALUES (1, 2, 3), (2, NULL, 5), (3, 2147483648, 1)",
    )
    .unwrap();
    let e = d
        .execute("INSERT INTO UJ_Computed (Id, A, B, Total) VALUES (9, 1, 1, 2)")
        .unwrap_err();
    assert!(e.0.contains("computed column"), "{e}");
    let e = d
        .execute("INSERT INTO UJ_Computed (Id, A, B, Version) VALUES (9, 1, 1, 0x01)")
        .unwrap_err();
    assert!(e.0.contains("timestamp column"), "{e}");
    let before = db::dump(&mut *d, "UJ_Computed").unwrap();
    drop(d);
    assert_eq!(before.len(), 3);
    db.plan(false, &["UJ_Computed"]);
    db.ok(&["run"]);
    assert_eq!(db.count("UJ_Computed"), 0);
    db.ok(&["rollback"]);
    let mut d = db::open(&db.target).unwrap();
    assert_eq!(db::dump(&mut *d, "UJ_Computed").unwrap(), before);
    // Neither server-written column is part of the rows kept.
    assert_eq!(before[0], vec![Value::I64(1), Value::I64(2), Value::I64(3)]);
    // The computed column, read by name, is there again.
    d.execute("INSERT INTO UJ_JobSteps (Id, Job_Id, Task_Id) SELECT 777, Total, Id FROM UJ_Computed WHERE Id = 1")
        .unwrap();
    let steps = db::dump(&mut *d, "UJ_JobSteps").unwrap();
    assert!(steps
        .iter()
        .any(|r| r[0] == Value::I64(777) && r[2] == Value::I64(5)));
}

#[test]
fn tds_computed_and_rowversion_columns_round_trip() {
    let db = Db::tds(10);
    db.sqlite_exec("CREATE TABLE UJ_Computed (Id BIGINT NOT NULL PRIMARY KEY, A BIGINT NULL, B BIGINT NULL, Total BIGINT GENERATED ALWAYS AS (A + B), Version ROWVERSION NULL);");
    let versions = || -> Vec<Vec<u8>> {
        let c = rusqlite::Connection::open(&db.file).unwrap();
        let mut s = c
            .prepare("SELECT Version FROM UJ_Computed ORDER BY Id")
            .unwrap();
        let v = s
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        v
    };
    computed_and_rowversion_columns_round_trip(&db, "SELECT 1");
    let after = versions();
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|v| v.len() == 8),
        "new rowversions: {after:?}"
    );
}

#[test]
fn mssql_computed_and_rowversion_columns_round_trip() {
    if let Some(db) = Db::mssql(10) {
        computed_and_rowversion_columns_round_trip(
            &db,
            "DROP TABLE IF EXISTS UJ_Computed; CREATE TABLE UJ_Computed (Id BIGINT NOT NULL PRIMARY KEY, A BIGINT NULL, B BIGINT NULL, Total AS (A + B), Version ROWVERSION);",
        );
    }
}

/// Issue 23, part 2, item 8: `money` above 2^53 / 10^4 (about 9e11) comes back exact (read
/// as `decimal(19,4)`, not through an f64). The TDS test server has no money type: a real
/// SQL Server only.
#[test]
fn mssql_money_round_trips_exactly() {
    use usercube_upgrade::testing::db;
    let Some(db) = Db::mssql(10) else { return };
    let mut d = db::open(&db.target).unwrap();
    d.execute("DROP TABLE IF EXISTS UJ_Money; CREATE TABLE UJ_Money (Id BIGINT NOT NULL PRIMARY KEY, M MONEY NULL, S SMALLMONEY NULL); INSERT INTO UJ_Money VALUES (1, 922337203685477.5807, 214748.3647), (2, -922337203685477.5808, -214748.3648), (3, 900000000001.0001, NULL);")
        .unwrap();
    let before = db::dump(&mut *d, "UJ_Money").unwrap();
    assert_eq!(before[0][1], Value::Numeric(9223372036854775807, 4));
    drop(d);
    db.plan(false, &["UJ_Money"]);
    db.ok(&["run"]);
    db.ok(&["rollback"]);
    let mut d = db::open(&db.target).unwrap();
    assert_eq!(db::dump(&mut *d, "UJ_Money").unwrap(), before);
}

#[test]
fn sqlite_missing_table_is_refused_at_preflight() {
    let db = Db::sqlite(10);
    db.plan(false, &["UJ_NoSuchTable"]);
    let (code, msg) = db.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("UJ_NoSuchTable"), "{msg}");
}

#[test]
fn child_table_is_left_alone() {
    let db = Db::sqlite(10);
    db.sqlite_exec("INSERT INTO UJ_JobStepChildren VALUES (5, NULL);");
    db.plan(false, &TABLES);
    db.ok(&["run"]);
    assert_eq!(db.count(CHILD_TABLE), 1);
}

fn version_plan(db: &Db, command: Vec<String>, backup: bool) {
    use usercube_upgrade::testing::plan::{Plan, StepSpec};
    let mut steps = Vec::new();
    if backup {
        steps.push((
            None,
            None,
            StepSpec::DatabaseBackup {
                connection: db.conn.clone(),
                backup_dir: "backups".into(),
            },
        ));
    }
    steps.push((
        None,
        None,
        StepSpec::DatabaseVersionUpgrade {
            connection: db.conn.clone(),
            command,
        },
    ));
    steps.push((
        None,
        None,
        StepSpec::DeleteRows {
            connection: db.conn.clone(),
            table: "UJ_JobSteps".into(),
        },
    ));
    let plan = Plan::new("version", steps);
    std::fs::write(
        db.tmp.path().join("plan.json"),
        serde_json::to_string(&plan).unwrap(),
    )
    .unwrap();
}

const UPGRADE_PY: &str = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE UM_DatabaseVersion (Version TEXT)'); c.execute(\"INSERT INTO UM_DatabaseVersion VALUES ('5.2.3')\"); c.commit(); print('Database has been upgraded to version 5.2.3')";

#[test]
fn sqlite_version_upgrade_runs_is_journaled_and_rolled_back_by_the_backup() {
    let db = Db::sqlite(10);
    let start = db.dump();
    let cmd = vec![
        "python3".to_string(),
        "-c".into(),
        UPGRADE_PY.into(),
        "usercube.sqlite".into(),
    ];
    version_plan(&db, cmd.clone(), false);
    let (code, msg) = db.code(&["plan"]);
    assert_eq!(
        code,
        Some(2),
        "a schema upgrade needs a backup first: {msg}"
    );
    assert!(msg.contains("database-backup"), "{msg}");

    version_plan(&db, cmd, true);
    db.ok(&["run"]);
    let (code, audit) = db.code(&["journal", "export"]);
    assert_eq!(code, Some(0), "{audit}");
    assert!(audit.contains("upgraded to version 5.2.3"), "{audit}");
    assert!(audit.contains("not recorded -> 5.2.3"), "{audit}");
    db.ok(&["rollback"]);
    assert_eq!(db.dump(), start);
    let c = rusqlite::Connection::open(&db.file).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'UM_DatabaseVersion'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0, "the backup's undo restored the schema");
}

/// Issue 23, part 2, item 1: a plan whose schema upgrade command holds a literal password
/// is refused by `plan` and `run` (exit 2, no journal, nothing changed), and the password
/// is printed nowhere, not even in the plan's step list.
#[test]
fn sqlite_version_upgrade_command_with_a_literal_password_is_refused() {
    let db = Db::sqlite(10);
    let start = db.dump();
    for command in [
        vec![
            "python3",
            "-c",
            UPGRADE_PY,
            "usercube.sqlite",
            "--password",
            "hunter2-pw",
        ],
        vec![
            "python3",
            "-c",
            UPGRADE_PY,
            "usercube.sqlite",
            "Server=h;User Id=sa;Pwd=hunter2-pw",
        ],
    ] {
        version_plan(&db, command.iter().map(|s| s.to_string()).collect(), true);
        for verb in ["plan", "run"] {
            let (code, msg) = db.code(&[verb]);
            assert_eq!(code, Some(2), "{verb}: {msg}");
            assert!(
                msg.contains("the database upgrade command holds a literal password"),
                "{verb}: {msg}"
            );
            assert!(!msg.contains("hunter2-pw"), "{verb}: {msg}");
        }
        assert!(!db.journal_dir().exists(), "no journal for a refusal");
        assert_eq!(db.dump(), start);
    }
}

/// Issue 23, part 2, item 6: the output of a schema tool that fails is durable in the
/// journal and shown by `journal export --json` (every line, not only the last one that the
/// failure message quotes), with its exit status; the run is rolled back.
#[test]
fn sqlite_failed_version_upgrade_tool_output_is_journaled() {
    const FAILING_PY: &str = "import sys\nprint('step 1 of 3: UM_Tables checked')\nprint('the cause: column Foo_Id already exists', file=sys.stderr)\nprint('Upgrade failed.')\nsys.exit(3)\n";
    let db = Db::sqlite(10);
    let start = db.dump();
    let cmd = vec!["python3".to_string(), "-c".into(), FAILING_PY.into()];
    version_plan(&db, cmd, true);
    let (code, msg) = db.code(&["run"]);
    assert_eq!(code, Some(1), "the run fails: {msg}");
    assert!(msg.contains("rolled back"), "{msg}");
    assert_eq!(db.dump(), start);
    let (code, audit) = db.code(&["journal", "export", "--json"]);
    assert_eq!(code, Some(0), "{audit}");
    let v: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let runs: Vec<&serde_json::Value> = v["runs"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["commands"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(runs.len(), 1, "one run of the tool: {audit}");
    let run = runs[0];
    assert_eq!(run["status"], 3, "{run}");
    assert_eq!(run["success"], false, "{run}");
    let output = run["output"].as_str().unwrap();
    for line in [
        "step 1 of 3: UM_Tables checked",
        "the cause: column Foo_Id already exists",
        "Upgrade failed.",
    ] {
        assert!(output.contains(line), "{line:?} in {output:?}");
    }
    assert!(
        run["command"].as_str().unwrap().starts_with("python3 -c"),
        "{run}"
    );
}

/// The schema upgrade runs or the run does not start (issue 12): a tool that is not there
/// is refused as "not found" (not as "a Windows executable"), naming both ways out, and
/// nothing changes.
#[test]
fn sqlite_version_upgrade_without_its_tool_is_refused() {
    let db = Db::sqlite(10);
    let start = db.dump();
    version_plan(
        &db,
        vec!["Runtime/identitymanager-Upgrade-DatabaseVersion.exe".into()],
        true,
    );
    for verb in ["plan", "run"] {
        let (code, msg) = db.code(&[verb]);
        assert_eq!(code, Some(2), "{verb}: {msg}");
        assert!(
            msg.contains("identitymanager-Upgrade-DatabaseVersion.exe not found"),
            "{verb}: {msg}"
        );
        assert!(
            msg.contains("--database-upgrade-command") && msg.contains("--skip-database-upgrade"),
            "{verb}: {msg}"
        );
        assert!(!msg.contains("Windows executable"), "{verb}: {msg}");
    }
    assert_eq!(db.dump(), start);
}

#[test]
fn tds_applock_held_by_another_session_refuses_the_run() {
    use usercube_upgrade::testing::db;
    let db = Db::tds(10);
    let start = db.dump();
    let mut holder = db::open(&db.target).unwrap();
    holder.lock(db::LOCK_RESOURCE).unwrap();
    db.plan(false, &TABLES);
    let (code, msg) = db.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("locked by another usercube-upgrade run"),
        "{msg}"
    );
    assert_eq!(db.dump(), start);
    drop(holder);
    db.ok(&["run"]);
    assert_eq!(db.count("UJ_JobSteps"), 0);
}

/// The backup probe says "not applied" only for a backup that is absent or verified bad: a
/// backup it cannot check (here: the path is no longer a file) stops the rollback instead
/// of being skipped as "was not applied" while the database may still hold the change.
#[test]
fn sqlite_backup_that_cannot_be_checked_stops_the_rollback() {
    let db = Db::sqlite(10);
    db.plan(true, &TABLES);
    db.ok(&["run"]);
    let backup = std::fs::read_dir(db.root.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .unwrap();
    usercube_upgrade::testing::durable_fs::remove_path(&backup).unwrap();
    std::fs::create_dir(&backup).unwrap();
    // Refused by the rollback's check, before anything is undone.
    let dump = db.dump();
    let (code, msg) = db.code(&["rollback"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("cannot tell whether the backup"), "{msg}");
    assert!(msg.contains("Nothing was changed"), "{msg}");
    assert_eq!(db.dump(), dump, "nothing undone");
    // Absent is an answer, and for a backup the run recorded written and verified, the
    // answer is "missing": refused, never "was not applied".
    std::fs::remove_dir(&backup).unwrap();
    let (code, msg) = db.code(&["rollback"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("is missing"), "{msg}");
    assert!(!msg.contains("was not applied"), "{msg}");
    assert_eq!(db.dump(), dump, "nothing undone");
}

/// A database file this account cannot write (the read-only attribute; as root on Linux,
/// the immutable flag): `plan` and `run` refuse it at preflight, naming it, with nothing
/// changed. Once writable, the run goes; made unwritable again, the rollback's restore
/// names the real cause (not "not an error").
#[test]
fn sqlite_unwritable_database_is_refused_at_preflight_and_named_by_the_restore() {
    use usercube_upgrade::testing::db::sqlite::Unwritable;
    let db = Db::sqlite(10);
    let start = db.dump();
    db.plan(true, &[]);
    let Some(guard) = Unwritable::make(&db.file) else {
        eprintln!("note: this account can write every file here (no read-only attribute, no chattr): test skipped");
        return;
    };
    for verb in ["plan", "run"] {
        let (code, msg) = db.code(&[verb]);
        assert_eq!(code, Some(2), "{verb}: {msg}");
        assert!(msg.contains("can be read but not written"), "{verb}: {msg}");
        assert!(msg.contains("usercube.sqlite"), "{verb}: {msg}");
    }
    assert!(!db.journal_dir().join("trash").exists(), "nothing ran");
    drop(guard);
    db.ok(&["run"]);
    let _guard = Unwritable::make(&db.file).unwrap();
    // The rollback's check refuses before anything is undone, naming the database.
    let (code, msg) = db.code(&["rollback"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(!msg.contains("not an error"), "{msg}");
    assert!(msg.contains("can be read but not written"), "{msg}");
    assert!(msg.contains("Nothing was changed"), "{msg}");
    drop(_guard);
    db.ok(&["rollback"]);
    assert_eq!(db.dump(), start);
}

/// The vendor's tool killed mid-way (it writes the new version, then its process and ours
/// die): `resume` never records the step done from the version alone; it restores the
/// backup and runs the tool again. `rollback` restores the starting database.
#[test]
fn sqlite_version_upgrade_killed_mid_way_is_restored_and_run_again() {
    // First run: records the version, then kills usercube-upgrade (its parent) and itself.
    // Later runs: the full upgrade, which fails if the first run's table is still there.
    const TOOL: &str = "import os,signal,sqlite3,sys\nflag=sys.argv[2]\nopen(sys.argv[3],'a').write('ran\\n')\nc=sqlite3.connect(sys.argv[1])\nc.execute('CREATE TABLE UM_DatabaseVersion (Version TEXT)')\nc.execute(\"INSERT INTO UM_DatabaseVersion VALUES ('5.2.3')\")\nc.commit()\nif not os.path.exists(flag):\n    open(flag,'w').write('x')\n    os.kill(os.getppid(), signal.SIGKILL)\n    sys.exit(9)\nc.execute('CREATE TABLE UM_Upgraded (x INT)')\nc.commit()\nprint('Database has been upgraded to version 5.2.3')\n";
    for verb in ["resume", "rollback"] {
        let db = Db::sqlite(10);
        let start = db.dump();
        let flag = db.tmp.path().join("killed-once");
        let log = db.tmp.path().join("tool-runs");
        let cmd = vec![
            "python3".to_string(),
            "-c".into(),
            TOOL.into(),
            "usercube.sqlite".into(),
            flag.to_string_lossy().into_owned(),
            log.to_string_lossy().into_owned(),
        ];
        version_plan(&db, cmd, true);
        let (code, msg) = db.code(&["run"]);
        assert_eq!(code, None, "the run was killed by the tool: {msg}");
        let table_count = |name: &str| -> i64 {
            rusqlite::Connection::open(&db.file)
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(
            table_count("UM_DatabaseVersion"),
            1,
            "the version was written"
        );
        db.ok(&[verb]);
        if verb == "resume" {
            let runs = std::fs::read_to_string(&log).unwrap();
            assert_eq!(runs.lines().count(), 2, "the tool ran again");
            assert_eq!(table_count("UM_Upgraded"), 1, "the upgrade completed");
            assert_eq!(db.count("UJ_JobSteps"), 0, "the run went on");
            db.ok(&["rollback"]);
        }
        assert_eq!(db.dump(), start, "{verb}");
        assert_eq!(table_count("UM_DatabaseVersion"), 0, "{verb}: restored");
    }
}
