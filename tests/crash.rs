//! Crash at every durability point (USERCUBE_UPGRADE_CRASH_AT=N aborts the real binary right
//! after the N-th journal record becomes durable), then recover and check the invariant:
//! `rollback` gives a tree byte-identical to the start, `resume` gives the tree of an
//! uninterrupted run. Also every crash point of a rollback, and of a resume, followed by
//! another attempt. Requires `--features failpoints`.

mod common;

use common::{assert_same, crash_at, for_each_point, Install};
use usercube_upgrade::testing::journal::{Journal, Phase};
use usercube_upgrade::testing::manifest::Manifest;
use usercube_upgrade::testing::plan::StepSpec;
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

/// Killed after the move step's intent is durable, before it acts; then the administrator
/// makes a folder, with a file, at the move's destination. Rollback deletes nothing of it:
/// the folder is kept aside under the root, byte for byte, and the rest of the tree is as
/// before the run.
#[test]
fn a_folder_made_at_a_moves_destination_after_a_crash_is_kept_aside_by_rollback() {
    let plan = usercube_upgrade::testing::sample::plan();
    let (id, from, to) = plan
        .steps
        .iter()
        .find_map(|s| match &s.action {
            StepSpec::MoveTree { from, to } => Some((s.id, from.clone(), to.clone())),
            _ => None,
        })
        .expect("the sample plan moves a tree");
    // The crash point: the durable record that is the move's intent (one step per group),
    // read from a run of the same plan (its records up to there are the same, however it
    // ends).
    let reference = Install::new(SIZE);
    reference.cmd(&["run", "--batch", "1"]).output().unwrap();
    let journal = Journal::open(&reference.journal_dir()).unwrap();
    let point = journal
        .records()
        .iter()
        .find(|r| r.step == Some(id) && r.phase == Phase::StepIntent)
        .expect("the move's intent")
        .seq;

    let i = Install::new(SIZE);
    let start = i.snapshot();
    assert!(crash_at(i.cmd(&["run", "--batch", "1"]), point));
    let (from, to) = (i.root.join(from), i.root.join(to));
    assert!(
        from.is_dir() && !to.exists(),
        "killed before the move acted"
    );
    std::fs::create_dir(&to).unwrap();
    std::fs::write(
        to.join("made-by-hand.txt"),
        "the administrator's own notes\n",
    )
    .unwrap();
    let made = Manifest::of(&to).unwrap();

    let (code, out) = i.code(&["rollback"]);
    assert_eq!(code, Some(0), "rollback: {out}");
    let aside: Vec<String> = std::fs::read_dir(&i.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("KeptAside-"))
        .collect();
    assert_eq!(aside.len(), 1, "one kept-aside folder: {aside:?}\n{out}");
    let kept = i
        .root
        .join(&aside[0])
        .join(to.strip_prefix(&i.root).unwrap());
    assert_same(
        &made,
        &Manifest::of(&kept).unwrap(),
        "the folder kept aside",
    );
    assert_eq!(
        std::fs::read(kept.join("made-by-hand.txt")).unwrap(),
        b"the administrator's own notes\n"
    );
    let mut now = i.snapshot();
    now.entries
        .retain(|e| e.rel != aside[0] && !e.rel.starts_with(&format!("{}/", aside[0])));
    assert_same(&start, &now, "the rest of the tree after rollback");
}
