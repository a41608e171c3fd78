//! Crash at every durability point of the integrated runbook plan on a small demo
//! installation (USERCUBE_UPGRADE_CRASH_AT=N aborts the real binary right after the N-th
//! durable journal record), then recover: `rollback` gives a tree byte-identical to the
//! start, `resume` gives the tree of an uninterrupted run. Requires `--features failpoints`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{assert_same, bin, for_each_point, snapshot, text};
use usercube_upgrade::journal::Journal;
use usercube_upgrade::manifest::Manifest;
use usercube_upgrade::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 12,
    bytes: 12 << 10,
    rows: 1,
};

struct Demo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Demo {
    fn new() -> Demo {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().join("root");
        demo::create(&root, SIZE).unwrap();
        Demo { _tmp: tmp, root }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args).arg("--root").arg(&self.root).arg("--quiet");
        if args.first() == Some(&"run") {
            // No --runtime-path: the migrated files then hold no path of this temp folder,
            // so every demo upgrades to the same bytes.
            c.args(["--mode", "integrated", "--runtime-zip"])
                .arg(self.root.join(RUNTIME_ZIP));
        }
        c.env_remove("USERCUBE_UPGRADE_CRASH_AT");
        // The demo certificate's PFX password (the plan references the file only).
        c.env(
            usercube_upgrade::crypto::PASSWORD_ENV,
            demo::DEMO_CERT_PASSWORD,
        );
        c
    }

    fn ok(&self, args: &[&str]) {
        let out = self.cmd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}:\n{}", text(&out));
    }

    /// True when the process aborted at crash point `n`.
    fn crash_at(&self, args: &[&str], n: u64) -> bool {
        let out = self
            .cmd(args)
            .env("USERCUBE_UPGRADE_CRASH_AT", n.to_string())
            .output()
            .unwrap();
        match out.status.code() {
            None => true,
            Some(0) => false,
            Some(c) => panic!("{args:?} crash at {n} exited {c}:\n{}", text(&out)),
        }
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
            d.crash_at(&["run", "--batch", batch], n),
            "crash point {n} not reached"
        );
        d.ok(&["rollback"]);
        assert_same(
            &r.start,
            &d.snapshot(),
            &format!("batch {batch}: crash at {n}, then rollback"),
        );

        let e = Demo::new();
        assert!(e.crash_at(&["run", "--batch", batch], n));
        if n < r.points {
            // The PFX password given on the command line this time, not in the environment.
            let out = e
                .cmd(&["resume", "--file-cert-password", demo::DEMO_CERT_PASSWORD])
                .env_remove(usercube_upgrade::crypto::PASSWORD_ENV)
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
            assert!(d.crash_at(&["run", "--batch", "1"], n));
            let crashed = d.crash_at(&["rollback"], m);
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
