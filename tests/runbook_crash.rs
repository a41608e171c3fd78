//! Crash at every durability point of the integrated runbook plan on a small demo
//! installation (USERCUBE_UPGRADE_CRASH_AT=N aborts the real binary right after the N-th
//! durable journal record), then recover: `rollback` gives a tree byte-identical to the
//! start, `resume` gives the tree of an uninterrupted run. Requires `--features failpoints`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{assert_same, bin, crash_at, for_each_point, snapshot, text};
use usercube_upgrade::testing::journal::{Journal, Phase};
use usercube_upgrade::testing::manifest::Manifest;
use usercube_upgrade::testing::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 12,
    bytes: 12 << 10,
    rows: 1,
};

struct Demo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// Extra `run` arguments.
    extra: Vec<String>,
}

impl Demo {
    fn new() -> Demo {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().join("root");
        demo::create(&root, SIZE).unwrap();
        Demo {
            _tmp: tmp,
            root,
            extra: Vec::new(),
        }
    }

    /// With `--stop-command`/`--start-command` appending to a log outside the root.
    fn with_service() -> (Demo, PathBuf) {
        let mut d = Demo::new();
        let log = d._tmp.path().join("service.log");
        let l = log.display();
        d.extra = vec![
            "--stop-command".into(),
            format!("echo stopped>> {l}"),
            "--start-command".into(),
            format!("echo started>> {l}"),
        ];
        (d, log)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args).arg("--root").arg(&self.root).arg("--quiet");
        if args.first() == Some(&"run") {
            // No --runtime-path: the migrated files then hold no path of this temp folder,
            // so every demo upgrades to the same bytes.
            // The demo's zip holds no vendor schema tool.
            c.args(["--mode", "integrated", "--runtime-zip"])
                .arg(self.root.join(RUNTIME_ZIP))
                .arg("--skip-database-upgrade")
                .args(&self.extra);
        }
        c.env_remove("USERCUBE_UPGRADE_CRASH_AT");
        // The demo certificate's PFX password (the plan references the file only).
        c.env(
            usercube_upgrade::testing::crypto::PASSWORD_ENV,
            demo::DEMO_CERT_PASSWORD,
        );
        c
    }

    fn ok(&self, args: &[&str]) {
        let out = self.cmd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}:\n{}", text(&out));
    }

    fn snapshot(&self) -> Manifest {
        snapshot(&self.root)
    }
}

struct Reference {
    start: Manifest,
    done: Manifest,
    points: u64,
}

fn reference(batch: &str) -> Reference {
    let d = Demo::new();
    let start = d.snapshot();
    d.ok(&["run", "--batch", batch]);
    let points = Journal::open(&d.root.join(common::JOURNAL))
        .unwrap()
        .last_seq();
    Reference {
        start,
        done: d.snapshot(),
        points,
    }
}

fn crash_run_then_recover(batch: &str) {
    let r = reference(batch);
    assert!(r.points >= 4, "{} records", r.points);
    for_each_point(r.points, |n| {
        let d = Demo::new();
        assert_same(&r.start, &d.snapshot(), "fresh demos are identical");
        assert!(
            crash_at(d.cmd(&["run", "--batch", batch]), n),
            "crash point {n} not reached"
        );
        d.ok(&["rollback"]);
        assert_same(
            &r.start,
            &d.snapshot(),
            &format!("batch {batch}: crash at {n}, then rollback"),
        );

        let e = Demo::new();
        assert!(crash_at(e.cmd(&["run", "--batch", batch]), n));
        if n < r.points {
            // The PFX password given on the command line this time, not in the environment.
            let out = e
                .cmd(&["resume", "--file-cert-password", demo::DEMO_CERT_PASSWORD])
                .env_remove(usercube_upgrade::testing::crypto::PASSWORD_ENV)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "resume:\n{}", text(&out));
        }
        assert_same(
            &r.done,
            &e.snapshot(),
            &format!("batch {batch}: crash at {n}, then resume"),
        );
    });
}

#[test]
fn integrated_plan_crash_at_every_point_unbatched() {
    crash_run_then_recover("1");
}

#[test]
fn integrated_plan_crash_at_every_point_batched() {
    crash_run_then_recover("256");
}

#[test]
fn integrated_plan_crash_during_rollback_then_roll_back_again() {
    let r = reference("1");
    for n in [r.points / 2] {
        for m in 1.. {
            let d = Demo::new();
            assert!(crash_at(d.cmd(&["run", "--batch", "1"]), n));
            let crashed = crash_at(d.cmd(&["rollback"]), m);
            d.ok(&["rollback"]);
            assert_same(
                &r.start,
                &d.snapshot(),
                &format!("run crash {n}, rollback crash {m}"),
            );
            if !crashed {
                break;
            }
        }
    }
}

/// With service commands: a crash at every point of the run, then `rollback` or `resume`.
/// The service ends started (unless the crash came before the stop command ran), and the
/// last command before any undo or further change is a stop.
#[test]
fn integrated_plan_with_service_commands_crash_at_every_point() {
    let (d, _) = Demo::with_service();
    let start = d.snapshot();
    d.ok(&["run", "--batch", "1"]);
    let done = d.snapshot();
    let points = Journal::open(&d.root.join(common::JOURNAL))
        .unwrap()
        .last_seq();
    let lines = |log: &PathBuf| -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let mid_stop = AtomicUsize::new(0);
    for_each_point(points, |n| {
        let (d, log) = Demo::with_service();
        assert!(crash_at(d.cmd(&["run", "--batch", "1"]), n));
        let before = lines(&log);
        // The stop step is the plan's first: any step intent means it has started.
        let stop_started = Journal::open(&d.root.join(common::JOURNAL))
            .unwrap()
            .records()
            .iter()
            .any(|r| r.phase == Phase::StepIntent);
        d.ok(&["rollback"]);
        assert_same(
            &start,
            &d.snapshot(),
            &format!("crash at {n}, then rollback"),
        );
        let after = lines(&log);
        if before.is_empty() && !stop_started {
            assert!(
                after.is_empty(),
                "crash at {n}: nothing stopped, nothing started: {after:?}"
            );
        } else if before.is_empty() {
            // The stop step started but no record says how its command ended: for all the
            // journal knows it ran, so rollback starts the service (harmless if it runs).
            assert_eq!(after, ["started"], "crash at {n}");
            mid_stop.fetch_add(1, Ordering::Relaxed);
        } else {
            assert_eq!(
                after.last().map(String::as_str),
                Some("started"),
                "crash at {n}: {after:?}"
            );
            // Stopped again before any undo, unless the crash came within the stop step
            // itself (nothing else to undo: it is a group of its own).
            let new = &after[before.len()..];
            assert!(
                new[0] == "stopped" || (before == ["stopped"] && new == ["started"]),
                "crash at {n}: {before:?} then {new:?}"
            );
        }

        let (e, log) = Demo::with_service();
        assert!(crash_at(e.cmd(&["run", "--batch", "1"]), n));
        let before = lines(&log);
        if n < points {
            e.ok(&["resume"]);
        }
        assert_same(&done, &e.snapshot(), &format!("crash at {n}, then resume"));
        let after = lines(&log);
        assert_eq!(
            after.last().map(String::as_str),
            Some("started"),
            "crash at {n}: {after:?}"
        );
        if n < points {
            assert_eq!(
                after[before.len()],
                "stopped",
                "crash at {n}: stopped before going on: {after:?}"
            );
        }
    });
    assert!(
        mid_stop.into_inner() >= 2,
        "the points between the stop step's intent and its command's record were reached"
    );
}
