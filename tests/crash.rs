//! Crash at every durability point (USERCUBE_UPGRADE_CRASH_AT=N aborts the real binary right
//! after the N-th journal record becomes durable), then recover and check the invariant:
//! `rollback` gives a tree byte-identical to the start, `resume` gives the tree of an
//! uninterrupted run. Also every crash point of a rollback, and of a resume, followed by
//! another attempt. Requires `--features failpoints`.

mod common;

use common::{assert_same, crash_at, for_each_point, Install};
use usercube_upgrade::testing::journal::Journal;
use usercube_upgrade::testing::manifest::Manifest;
use usercube_upgrade::testing::sample::SampleSize;

const SIZE: SampleSize = SampleSize {
    runtime_files: 12,
    file_bytes: 700,
};

struct Reference {
    start: Manifest,
    done: Manifest,
    /// Durable records of an uninterrupted run: the crash points.
    points: u64,
}

fn reference(batch: &str) -> Reference {
    let i = Install::new(SIZE);
    let start = i.snapshot();
    i.ok(&["run", "--batch", batch]);
    let points = Journal::open(&i.journal_dir()).unwrap().last_seq();
    Reference {
        start,
        done: i.snapshot(),
        points,
    }
}

fn crash_run_then_recover(batch: &str) {
    let r = reference(batch);
    assert!(
        r.points >= 22,
        "the sample plan has 10 steps: {} records",
        r.points
    );
    for_each_point(r.points, |n| {
        let i = Install::new(SIZE);
        assert_same(&r.start, &i.snapshot(), "fresh installs are identical");
        assert!(
            crash_at(i.cmd(&["run", "--batch", batch]), n),
            "crash point {n} not reached"
        );
        i.ok(&["rollback"]);
        assert_same(
            &r.start,
            &i.snapshot(),
            &format!("batch {batch}: crash at {n}, then rollback"),
        );

        let j = Install::new(SIZE);
        assert!(crash_at(j.cmd(&["run", "--batch", batch]), n));
        if n < r.points {
            j.ok(&["resume"]);
        } else {
            let (code, msg) = j.code(&["resume"]);
            assert_eq!(code, Some(2), "resume after commit is refused: {msg}");
        }
        assert_same(
            &r.done,
            &j.snapshot(),
            &format!("batch {batch}: crash at {n}, then resume"),
        );
    });
}

#[test]
fn crash_at_every_point_of_a_run_unbatched() {
    crash_run_then_recover("1");
}

#[test]
fn crash_at_every_point_of_a_run_batched() {
    crash_run_then_recover("256");
}

#[test]
fn crash_at_every_point_of_a_rollback_then_roll_back_again() {
    let r = reference("1");
    for_each_point(r.points, |n| {
        for m in 1.. {
            let i = Install::new(SIZE);
            assert!(crash_at(i.cmd(&["run", "--batch", "1"]), n));
            let crashed = crash_at(i.cmd(&["rollback"]), m);
            i.ok(&["rollback"]);
            assert_same(
                &r.start,
                &i.snapshot(),
                &format!("run crash {n}, rollback crash {m}"),
            );
            if !crashed {
                break;
            }
        }
    });
}

#[test]
fn crash_at_every_point_of_a_resume_then_resume_again() {
    let r = reference("1");
    for n in [3, r.points / 2, r.points - 3] {
        for m in 1.. {
            let i = Install::new(SIZE);
            assert!(crash_at(i.cmd(&["run", "--batch", "1"]), n));
            let crashed = crash_at(i.cmd(&["resume"]), m);
            let (code, msg) = i.code(&["resume"]);
            // A crash after the resume's own commit record leaves nothing to resume.
            assert!(
                code == Some(0) || msg.contains("already completed"),
                "{msg}"
            );
            assert_same(
                &r.done,
                &i.snapshot(),
                &format!("run crash {n}, resume crash {m}"),
            );
            if !crashed {
                break;
            }
        }
    }
}

/// A rollback the process did not survive: `status` says it is half done, where it stopped,
/// that no record says why, and the command that finishes it.
#[test]
fn status_after_a_crash_inside_a_rollback_says_it_is_half_done() {
    let i = Install::new(SIZE);
    let start = i.snapshot();
    i.ok(&["run", "--batch", "1"]);
    // Past the first group of undos and into the next: undo intents, undone, undo intents.
    assert!(crash_at(i.cmd(&["rollback"]), 3));
    let out = i.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (total, undone) = (&status["steps_total"], &status["steps_undone"]);
    assert!(undone.as_u64().unwrap() > 0, "{status}");
    let next = status["next"].as_str().unwrap();
    let expect = format!("rollback half done ({undone} of {total} steps undone): stopped at step ");
    assert!(next.starts_with(&expect), "{expect:?} in {status}");
    assert!(
        next.contains(" with no record of why (the process ended: a crash, a kill or a power cut); `usercube-upgrade rollback --root "),
        "{status}"
    );
    assert!(next.ends_with("` finishes it"), "{status}");
    i.ok(&["rollback"]);
    assert_same(&start, &i.snapshot(), "after the rollback was finished");
}
