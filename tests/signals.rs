//! SIGINT and SIGTERM through the real binary on the demo installation: the run stops at
//! its next durable point, records why (`run-stopped`), says "interrupted after step N of M"
//! with the exact `resume` and `rollback` commands, exits 130 / 143; a new `run` leads with
//! that state; `rollback` (or `resume`) then works as after any interruption.
//!
//! The signal is sent with `kill` while step 1 runs: a `--stop-command` that, once armed,
//! says it started and waits for the test's go (files outside the root), so the signal
//! arrives mid-step whatever the machine's speed. Unix only (`kill`, `sh`); skipped under
//! wine (scripts/windows.sh, NOT_UNDER_WINE).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{assert_same, bin, snapshot, text};
use usercube_upgrade::testing::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 40,
    bytes: 40 << 10,
    rows: 10,
};

struct Demo {
    tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Demo {
    fn new() -> Demo {
        let (tmp, root) = common::demo_install(SIZE);
        Demo { tmp, root }
    }

    fn side(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args).arg("--root").arg(&self.root);
        if args.first() == Some(&"run") {
            let stop = format!(
                "if [ -e {armed} ]; then rm {armed}; touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; touch {finished}; fi",
                armed = self.side("armed").display(),
                started = self.side("started").display(),
                go = self.side("go").display(),
                finished = self.side("finished").display(),
            );
            c.args([
                "--mode",
                "integrated",
                "--skip-database-upgrade",
                "--runtime-zip",
            ])
            .arg(self.root.join(RUNTIME_ZIP))
            .arg("--stop-command")
            .arg(stop)
            // Its undo (the first undo of a rollback of the committed run) is the stop
            // command: armed there, the signal arrives mid-rollback.
            .args(["--start-command", "true"]);
        }
        c.env_remove("USERCUBE_UPGRADE_CRASH_AT");
        c.env(
            usercube_upgrade::testing::crypto::PASSWORD_ENV,
            demo::DEMO_CERT_PASSWORD,
        );
        c
    }

    fn code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.cmd(args).output().unwrap();
        (out.status.code(), text(&out))
    }

    fn status(&self) -> serde_json::Value {
        let out = self.cmd(&["status", "--json"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `run`, with `signals` sent (by `kill`) while its first step runs; its output.
    fn run_signalled(&self, signals: &[&str]) -> std::process::Output {
        self.signalled(&["run"], signals)
    }

    /// `args`, with `signals` sent to the tool's own pid while the armed stop command runs.
    fn signalled(&self, args: &[&str], signals: &[&str]) -> std::process::Output {
        self.held(args, |pid| {
            for s in signals {
                kill(s, &pid.to_string());
                // Two signals of one kind pending at once are one (POSIX): the next is sent
                // once this one has been delivered.
                wait_delivered(pid);
            }
        })
    }

    /// `args`, with `signal` sent to the tool's whole process group, as a terminal sends
    /// Ctrl+C to its foreground group, while the armed stop command runs. (The tool leads
    /// a group of its own: `held`.)
    fn group_signalled(&self, args: &[&str], signal: &str) -> std::process::Output {
        self.held(args, |pid| kill(signal, &format!("-{pid}")))
    }

    /// `args`, with `meanwhile` called (with the process's pid) while the armed stop command
    /// runs; the command's output once it ended.
    fn held(&self, args: &[&str], meanwhile: impl FnOnce(u32)) -> std::process::Output {
        std::fs::write(self.side("armed"), "").unwrap();
        let mut cmd = self.cmd(args);
        // The tool leads a process group of its own (its pid is the group's id), as a shell
        // starts a job, so that a signal to the group reaches the tool and whatever is in its
        // group, and never the test.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A guard against a hang, not a measurement: the step starts within seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !self.side("started").exists() {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "run ended ({status}) before its stop command:\n{}",
                    text(&out)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the stop command never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The step is let go even when `meanwhile` fails, so that no run is left waiting.
        let go = self.side("go");
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| meanwhile(child.id())));
        std::fs::write(&go, "").unwrap();
        let out = child.wait_with_output().unwrap();
        for f in [go, self.side("started")] {
            usercube_upgrade::testing::durable_fs::remove_path(&f).unwrap();
        }
        if let Err(p) = caught {
            std::panic::resume_unwind(p);
        }
        out
    }
}

/// `kill -SIGNAL TARGET` (a pid, or `-PGID` for a process group).
fn kill(signal: &str, target: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(target)
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} -- {target}");
}

/// Waits until no signal is pending for process `pid` (`/proc/PID/status`: `SigPnd`, the
/// thread's, and `ShdPnd`, the process's), or it has ended. A guard against a hang, not a
/// measurement: delivery takes the time the scheduler gives it.
fn wait_delivered(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        let pending = status.lines().any(|l| {
            (l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
                && l.split_whitespace()
                    .nth(1)
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                    .is_some_and(|bits| bits != 0)
        });
        if !pending {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a signal to {pid} still pending after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn root_of(d: &Demo) -> String {
    d.root.display().to_string()
}

/// The interrupted run's message, its exit code, the journal's record and state, and the
/// lead message of a new `run`; returns the number of steps of the plan.
fn check_interrupted(d: &Demo, out: &std::process::Output, signal: &str, code: i32) -> u64 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    let status = d.status();
    let total = status["steps_total"].as_u64().unwrap();
    let root = root_of(d);
    let expect = format!(
        "interrupted after step 1 of {total} ({signal}): `usercube-upgrade resume --root {root}` or `usercube-upgrade rollback --root {root}`"
    );
    assert!(
        stderr.contains(&expect),
        "expected {expect:?} in:\n{stderr}"
    );
    assert!(
        !stderr.contains("error:"),
        "an interruption is not an error: {stderr}"
    );
    assert_eq!(status["state"], "interrupted", "{status}");
    assert_eq!(status["steps_done"], 1, "{status}");
    assert_eq!(
        status["stopped"],
        format!("interrupted by {signal} after step 1 of {total}"),
        "{status}"
    );
    let (c, show) = d.code(&["journal", "show"]);
    assert_eq!(c, Some(0), "{show}");
    let last = show.lines().last().unwrap_or_default();
    assert!(last.contains("run-stopped"), "the last record: {show}");
    // A new run leads with the interruption, not with the version check.
    let start = snapshot(&d.root);
    let (c, msg) = d.code(&["run"]);
    assert_eq!(c, Some(2), "{msg}");
    let first = msg.lines().next().unwrap_or_default();
    let lead = format!(
        "error: interrupted: the latest run was interrupted by {signal} after step 1 of {total}: `usercube-upgrade resume --root {root}` or `usercube-upgrade rollback --root {root}`"
    );
    assert!(
        first.starts_with(&lead),
        "expected {lead:?} first in:\n{msg}"
    );
    assert!(!msg.contains("version"), "{msg}");
    assert_same(&start, &snapshot(&d.root), "a refused run changes nothing");
    total
}

#[test]
fn sigint_stops_at_a_durable_point_then_rollback_restores_everything() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let rows = common::db_dump(&d.root.join(demo::DATABASE));
    let out = d.run_signalled(&["INT"]);
    check_interrupted(&d, &out, "SIGINT", 130);
    let (c, msg) = d.code(&["rollback"]);
    assert_eq!(c, Some(0), "{msg}");
    assert_same(
        &start,
        &snapshot(&d.root),
        "after rollback of the interrupted run",
    );
    assert_eq!(rows, common::db_dump(&d.root.join(demo::DATABASE)));
    assert_eq!(d.status()["state"], "rolled-back");
}

#[test]
fn sigterm_stops_at_a_durable_point_then_resume_finishes() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let out = d.run_signalled(&["TERM"]);
    let total = check_interrupted(&d, &out, "SIGTERM", 143);
    let (c, msg) = d.code(&["resume"]);
    assert_eq!(c, Some(0), "{msg}");
    let status = d.status();
    assert_eq!(status["state"], "committed", "{status}");
    assert_eq!(status["steps_done"].as_u64(), Some(total));
    assert!(status["stopped"].is_null(), "{status}");
    let (c, msg) = d.code(&["rollback"]);
    assert_eq!(c, Some(0), "{msg}");
    assert_same(&start, &snapshot(&d.root), "after resume and rollback");
}

/// A second signal does not wait for the durable point: the process ends at once (exit
/// 130), as a kill would, and the journal shows a run interrupted without a stop record;
/// rollback still restores everything.
#[test]
fn a_second_sigint_ends_the_process_at_once() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let out = d.run_signalled(&["INT", "INT"]);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let status = d.status();
    assert_eq!(status["state"], "interrupted", "{status}");
    assert!(status["stopped"].is_null(), "no stop record: {status}");
    let (c, msg) = d.code(&["run"]);
    assert_eq!(c, Some(2), "{msg}");
    assert!(
        msg.starts_with("error: interrupted: the latest run stopped after step"),
        "{msg}"
    );
    let (c, msg) = d.code(&["rollback"]);
    assert_eq!(c, Some(0), "{msg}");
    assert_same(&start, &snapshot(&d.root), "after rollback");
}

/// A rollback stopped by SIGINT between two undos: exit 130, the `rollback` command to
/// finish it, a new `run` leading with it; `rollback` again restores everything.
#[test]
fn sigint_during_rollback_stops_it_and_rollback_finishes_it() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let (c, msg) = d.code(&["run"]);
    assert_eq!(c, Some(0), "{msg}");
    let total = d.status()["steps_total"].as_u64().unwrap();
    let out = d.signalled(&["rollback"], &["INT"]);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let root = root_of(&d);
    let expect = format!(
        "rollback interrupted after step 1 of {total} to undo (SIGINT): `usercube-upgrade rollback --root {root}` finishes it"
    );
    assert!(
        text(&out).contains(&expect),
        "expected {expect:?} in:\n{}",
        text(&out)
    );
    let status = d.status();
    assert_eq!(status["steps_undone"], 1, "{status}");
    assert_eq!(
        status["stopped"],
        format!("rollback interrupted by SIGINT after step 1 of {total}"),
        "{status}"
    );
    assert_eq!(
        status["next"],
        format!(
            "rollback half done (1 of {total} steps undone): interrupted by SIGINT; `usercube-upgrade rollback --root {root}` finishes it"
        ),
        "{status}"
    );
    let (c, msg) = d.code(&["finalize"]);
    assert_eq!(c, Some(2), "a half rolled back run is not finalized: {msg}");
    let (c, msg) = d.code(&["run"]);
    assert_eq!(c, Some(2), "{msg}");
    assert!(msg.starts_with("error: rollback half done (1 of "), "{msg}");
    let (c, msg) = d.code(&["rollback"]);
    assert_eq!(c, Some(0), "{msg}");
    assert_same(
        &start,
        &snapshot(&d.root),
        "after the rollback was finished",
    );
}

/// Issue 23, item 4: one upgrade at a time per installation root, whatever journal each run
/// names. While a run holds the root (at its stop command), a second `run` with another
/// `--journal` is refused (exit 2) naming the holder's pid, and leaves no journal folder;
/// `plan` is refused the same way. The other way round too: a run with its journal elsewhere
/// holds the root against a run on the default journal and against a third journal.
#[test]
fn a_run_with_another_journal_is_refused_while_a_run_holds_the_root() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let other = d.side("other-journal");
    let third = d.side("third-journal");
    let (o, t) = (other.to_str().unwrap(), third.to_str().unwrap());
    let refused = |pid: u32, args: &[&str], folder: Option<&std::path::Path>| {
        let (c, msg) = d.code(args);
        assert_eq!(c, Some(2), "{args:?} while process {pid} runs:\n{msg}");
        assert!(
            msg.contains(&format!(
                "process {pid} is already working on this installation"
            )),
            "{args:?}: expected the holder's pid {pid} in:\n{msg}"
        );
        if let Some(f) = folder {
            assert!(!f.exists(), "{args:?} left {}", f.display());
        }
    };
    let out = d.held(&["run"], |pid| {
        refused(pid, &["run", "--journal", o], Some(&other));
        refused(pid, &["plan", "--journal", o], Some(&other));
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (c, msg) = d.code(&["rollback"]);
    assert_eq!(c, Some(0), "{msg}");
    assert_same(&start, &snapshot(&d.root), "after the first run's rollback");

    let out = d.held(&["run", "--journal", o], |pid| {
        refused(pid, &["run"], None);
        refused(pid, &["run", "--journal", t], Some(&third));
        // `status` of the root's default journal says who holds the root.
        let (c, status) = d.code(&["status"]);
        assert_eq!(c, Some(0), "{status}");
        assert!(status.contains(&format!("process {pid}")), "{status}");
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (c, msg) = d.code(&["rollback", "--journal", o]);
    assert_eq!(c, Some(0), "{msg}");
    assert_same(
        &start,
        &snapshot(&d.root),
        "after the second run's rollback",
    );
}

/// Issue 23, item 3: Ctrl+C at a terminal signals its whole foreground process group. The
/// service command a step runs is in a group of its own: it does not get the SIGINT and
/// finishes its step; the tool stops at its next durable point (exit 130, "interrupted after
/// step 1"), nothing recorded as failed and nothing rolled back; `rollback` then restores
/// everything.
#[test]
fn sigint_to_the_process_group_lets_the_step_finish_then_stops() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let out = d.group_signalled(&["run"], "INT");
    assert!(
        d.side("finished").exists(),
        "the stop command did not finish its step:\n{}",
        text(&out)
    );
    check_interrupted(&d, &out, "SIGINT", 130);
    let (c, show) = d.code(&["journal", "show"]);
    assert_eq!(c, Some(0), "{show}");
    assert!(!show.contains("step-failed"), "{show}");
    let (c, msg) = d.code(&["rollback"]);
    assert_eq!(c, Some(0), "{msg}");
    assert_same(&start, &snapshot(&d.root), "after rollback");
}
