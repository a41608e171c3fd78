//! Crash at every durable journal record of a plan with a backup and the three reversible
//! deletes (SQLite, real binary, USERCUBE_UPGRADE_CRASH_AT=N), then: `rollback` gives
//! identical rows (full dumps), `resume` gives empty tables. Also every crash point of a
//! rollback followed by another rollback. Requires `--features failpoints`.

mod dbkit;

mod common;
use common::{crash_at, for_each_point};
use dbkit::{Db, IDENTITY_TABLE, TABLES};
use usercube_upgrade::testing::journal::Journal;

/// UJ_JobSteps spans three before-image chunks.
const ROWS: usize = 2200;

fn points(backup: bool) -> u64 {
    let db = Db::sqlite(ROWS);
    db.plan(backup, &TABLES);
    db.ok(&["run"]);
    Journal::open(&db.journal_dir()).unwrap().last_seq()
}

/// Without a backup step, rollback relies on the row-level undo alone.
fn crash_run_then_recover(backup: bool) {
    let points = points(backup);
    eprintln!("backup {backup}: {points} crash points");
    assert!(points >= 12, "{points} durable records");
    for_each_point(points, |n| {
        let db = Db::sqlite(ROWS);
        let start = db.dump();
        db.plan(backup, &TABLES);
        assert!(crash_at(db.cmd(&["run"]), n), "crash point {n} not reached");
        db.ok(&["rollback"]);
        assert_eq!(
            db.dump(),
            start,
            "backup {backup}: crash at {n}, then rollback"
        );

        let db = Db::sqlite(ROWS);
        db.plan(backup, &TABLES);
        assert!(crash_at(db.cmd(&["run"]), n));
        if n < points {
            db.ok(&["resume"]);
        } else {
            let (code, msg) = db.code(&["resume"]);
            assert_eq!(code, Some(2), "resume after commit is refused: {msg}");
        }
        for t in TABLES {
            assert_eq!(
                db.count(t),
                0,
                "backup {backup}: crash at {n}, then resume: {t} is empty"
            );
        }
        assert_eq!(db.count(IDENTITY_TABLE), 3);
    });
}

#[test]
fn sqlite_crash_at_every_point_then_rollback_or_resume() {
    crash_run_then_recover(false);
}

#[test]
fn sqlite_with_backup_crash_at_every_point_then_rollback_or_resume() {
    crash_run_then_recover(true);
}

fn crash_rollback_then_roll_back_again(backup: bool) {
    let db = Db::sqlite(ROWS);
    db.plan(backup, &TABLES);
    db.ok(&["run"]);
    let run_points = Journal::open(&db.journal_dir()).unwrap().last_seq();
    db.ok(&["rollback"]);
    let rollback_points = Journal::open(&db.journal_dir()).unwrap().last_seq() - run_points;
    eprintln!("backup {backup}: {rollback_points} rollback crash points");
    for_each_point(rollback_points, |m| {
        let db = Db::sqlite(ROWS);
        let start = db.dump();
        db.plan(backup, &TABLES);
        db.ok(&["run"]);
        assert!(
            crash_at(db.cmd(&["rollback"]), m),
            "rollback crash point {m}"
        );
        db.ok(&["rollback"]);
        assert_eq!(db.dump(), start, "rollback crash at {m}, then rollback");
    });
}

#[test]
fn sqlite_crash_at_every_point_of_a_rollback_then_roll_back_again() {
    crash_rollback_then_roll_back_again(false);
}

#[test]
fn sqlite_with_backup_crash_at_every_point_of_a_rollback_then_roll_back_again() {
    crash_rollback_then_roll_back_again(true);
}

#[test]
fn tds_crash_in_the_middle_then_rollback_and_resume() {
    let reference = Db::tds(ROWS);
    reference.plan(true, &TABLES);
    reference.ok(&["run"]);
    let points = Journal::open(&reference.journal_dir()).unwrap().last_seq();
    for n in [3, points / 2, points - 2] {
        let db = Db::tds(ROWS);
        let start = db.dump();
        db.plan(true, &TABLES);
        assert!(crash_at(db.cmd(&["run"]), n));
        db.ok(&["rollback"]);
        assert_eq!(db.dump(), start, "tds: crash at {n}, then rollback");

        let db = Db::tds(ROWS);
        db.plan(true, &TABLES);
        assert!(crash_at(db.cmd(&["run"]), n));
        db.ok(&["resume"]);
        for t in TABLES {
            assert_eq!(db.count(t), 0, "tds: crash at {n}, then resume");
        }
    }
}

/// A plan that creates the backup folder, backs up into it, then empties a table.
fn backup_into_new_folder_plan(db: &Db) {
    use usercube_upgrade::testing::plan::{Plan, StepSpec};
    let dir = db.root.join("DatabaseBackup");
    let steps = vec![
        (None, None, StepSpec::MakeDir { path: dir.clone() }),
        (
            None,
            None,
            StepSpec::DatabaseBackup {
                connection: db.conn.clone(),
                backup_dir: dir,
            },
        ),
        (
            None,
            None,
            StepSpec::DeleteRows {
                connection: db.conn.clone(),
                table: "UJ_JobSteps".into(),
            },
        ),
    ];
    let plan = Plan::new("backup into a new folder", steps);
    std::fs::write(
        db.tmp.path().join("plan.json"),
        serde_json::to_string(&plan).unwrap(),
    )
    .unwrap();
}

/// Crashes the run right after the backup step's intent is durable, then leaves what a
/// kill inside SQLite's backup leaves: the staging copy and SQLite's journal of it.
fn killed_inside_the_backup(db: &Db) -> std::path::PathBuf {
    use usercube_upgrade::testing::engine::{payload, state};
    for n in 1..10 {
        let _ = usercube_upgrade::testing::durable_fs::remove_path(&db.journal_dir());
        let _ = usercube_upgrade::testing::durable_fs::remove_path(&db.root.join("DatabaseBackup"));
        assert!(crash_at(db.cmd(&["run"]), n), "crash point {n}");
        let j = Journal::open(&db.journal_dir()).unwrap();
        let run = state::latest(j.records()).unwrap().unwrap();
        let Some(s) = run.step(2) else { continue };
        if s.done.is_some() {
            break;
        }
        let Some((seq, _)) = s.intent else { continue };
        let rec = &j.records()[(seq - 1) as usize];
        let intent: payload::StepIntent = payload::decode(seq, &rec.payload).unwrap();
        let detail: serde_json::Value = serde_json::from_str(&intent.intent.detail).unwrap();
        let file = std::path::PathBuf::from(detail["file"].as_str().unwrap());
        let staged = usercube_upgrade::testing::durable_fs::staging_path(&file);
        std::fs::copy(&db.file, &staged).unwrap();
        let mut journal = staged.clone().into_os_string();
        journal.push("-journal");
        std::fs::write(&journal, b"hot journal of the staging copy").unwrap();
        return journal.into();
    }
    panic!("no crash point between the backup's intent and its outcome");
}

#[test]
fn a_kill_inside_the_sqlite_backup_leaves_no_sidecar_for_rollback_or_resume() {
    let db = Db::sqlite(50);
    let start = db.dump();
    backup_into_new_folder_plan(&db);
    let sidecar = killed_inside_the_backup(&db);
    db.ok(&["rollback"]);
    assert_eq!(db.dump(), start);
    assert!(!sidecar.exists());
    assert!(
        !db.root.join("DatabaseBackup").exists(),
        "the folder is undone"
    );

    let db = Db::sqlite(50);
    backup_into_new_folder_plan(&db);
    let sidecar = killed_inside_the_backup(&db);
    db.ok(&["resume"]);
    assert!(!sidecar.exists());
    assert_eq!(db.count("UJ_JobSteps"), 0);
    let left: Vec<String> = std::fs::read_dir(db.root.join("DatabaseBackup"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "only the backup: {left:?}");
    assert!(left[0].ends_with(".sqlite"), "{left:?}");
    db.ok(&["rollback"]);
    assert!(!db.root.join("DatabaseBackup").exists());
}

/// Journal corruption met inside a step (saved before-images damaged) stops `resume` and
/// `rollback` with exit 3: nothing recorded, nothing rolled back automatically.
#[test]
fn journal_corruption_inside_a_step_exits_3_without_rollback() {
    use usercube_upgrade::testing::engine::state;
    let db = Db::sqlite(ROWS);
    db.plan(false, &TABLES);
    // The last crash point inside the first step that saves data: its delete committed,
    // its outcome not yet durable, so recovery must read the saved before-images.
    let start = std::fs::read(&db.file).unwrap();
    let crash = |n: u64| {
        let _ = usercube_upgrade::testing::durable_fs::remove_path(&db.journal_dir());
        std::fs::write(&db.file, &start).unwrap();
        assert!(crash_at(db.cmd(&["run"]), n), "crash point {n}");
        let j = Journal::open(&db.journal_dir()).unwrap();
        let run = state::latest(j.records()).unwrap().unwrap();
        let saved: Vec<u32> = j
            .records()
            .iter()
            .filter(|r| r.phase == usercube_upgrade::testing::journal::Phase::StepData)
            .filter_map(|r| r.step)
            .collect();
        run.steps
            .iter()
            .find(|(id, s)| saved.contains(id) && s.done.is_none())
            .map(|(id, _)| *id)
    };
    let mut last = None;
    for n in 2..60 {
        if crash(n).is_some() {
            last = Some(n);
        } else if last.is_some() {
            break;
        }
    }
    let last = last.expect("no crash point inside a step that saved data");
    let step = crash(last).unwrap();
    // The kill came after the step's delete committed (its before-images all durable).
    db.sqlite_exec(&format!("DELETE FROM {};", TABLES[step as usize - 1]));
    // Damage every saved before-image file.
    for f in walkdir::WalkDir::new(db.journal_dir().join("data")) {
        let f = f.unwrap();
        if f.file_type().is_file() {
            std::fs::write(f.path(), b"damaged").unwrap();
        }
    }
    let records = Journal::open(&db.journal_dir()).unwrap().last_seq();
    let dump = db.dump();
    // `resume` meets the corruption inside the step (exit 3); `rollback` finds it in its
    // check, before anything is undone, and refuses naming the damaged file (exit 2).
    for (verb, exit, says) in [
        ("resume", 3, "Nothing was rolled back"),
        ("rollback", 2, "Nothing was changed"),
    ] {
        let (code, msg) = db.code(&[verb]);
        assert_eq!(code, Some(exit), "{verb}: {msg}");
        assert!(msg.contains(says), "{verb}: {msg}");
        // Nothing recorded but, for rollback, its undo intent (made durable before it acts).
        let j = Journal::open(&db.journal_dir()).unwrap();
        let new: Vec<_> = j.records()[records as usize..]
            .iter()
            .map(|r| r.phase)
            .collect();
        assert!(
            new.iter()
                .all(|p| *p == usercube_upgrade::testing::journal::Phase::UndoIntent),
            "{verb}: recorded {new:?}"
        );
        assert_eq!(db.dump(), dump, "{verb}: the database is untouched");
    }
    let (_, status) = db.code(&["status"]);
    assert!(status.contains("interrupted"), "{status}");
}
