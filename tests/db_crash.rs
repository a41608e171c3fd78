//! Crash at every durable journal record of a plan with a backup and the three reversible
//! deletes (SQLite, real binary, USERCUBE_UPGRADE_CRASH_AT=N), then: `rollback` gives
//! identical rows (full dumps), `resume` gives empty tables. Also every crash point of a
//! rollback followed by another rollback. Requires `--features failpoints`.

mod dbkit;

mod common;
use common::for_each_point;
use dbkit::{Db, IDENTITY_TABLE, TABLES};
use usercube_upgrade::journal::Journal;

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
        assert!(db.crash_at(&["run"], n), "crash point {n} not reached");
        db.ok(&["rollback"]);
        assert_eq!(
            db.dump(),
            start,
            "backup {backup}: crash at {n}, then rollback"
        );

        let db = Db::sqlite(ROWS);
        db.plan(backup, &TABLES);
        assert!(db.crash_at(&["run"], n));
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
        assert!(db.crash_at(&["rollback"], m), "rollback crash point {m}");
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
        assert!(db.crash_at(&["run"], n));
        db.ok(&["rollback"]);
        assert_eq!(db.dump(), start, "tds: crash at {n}, then rollback");

        let db = Db::tds(ROWS);
        db.plan(true, &TABLES);
        assert!(db.crash_at(&["run"], n));
        db.ok(&["resume"]);
        for t in TABLES {
            assert_eq!(db.count(t), 0, "tds: crash at {n}, then resume");
        }
    }
}
