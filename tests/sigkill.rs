//! Kill the real binary with SIGKILL at random moments (during the run, and sometimes
//! during the recovery too), then recover and check: after `rollback` the tree is exactly
//! the starting tree; after `resume` it is exactly the tree of an uninterrupted run.
//! Iterations: USERCUBE_SIGKILL_ITERATIONS (default 50); seed: USERCUBE_SIGKILL_SEED.
//!
//! One outcome is tolerated, counted and capped at 10%: sled 0.34 occasionally cannot read its
//! own store after a kill (seen about once in 150 kills; an open upstream issue), even after
//! the journal's repair attempt (reopening without sled's snapshots). The engine must then
//! refuse with exit 3 and change nothing, which this test checks.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same, Install};
use rand::{Rng, SeedableRng};
use usercube_upgrade::sample::SampleSize;

const SIZE: SampleSize = SampleSize {
    runtime_files: 120,
    file_bytes: 48 * 1024,
};

fn spawn_quiet(mut c: Command) -> Child {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill_after(mut child: Child, delay: Duration) -> bool {
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    child.kill().ok(); // SIGKILL
    child.wait().unwrap();
    killed
}

#[test]
fn sigkill_at_random_moments_then_recover() {
    let iterations: usize = std::env::var("USERCUBE_SIGKILL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("USERCUBE_SIGKILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("USERCUBE_SIGKILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let reference = Install::new(SIZE);
    let start = reference.snapshot();
    let t = Instant::now();
    reference.ok(&["run"]);
    let run_time = t.elapsed();
    let done = reference.snapshot();
    let (mut killed_runs, mut killed_recoveries, mut sled_failures) = (0, 0, 0);

    for it in 0..iterations {
        let i = Install::new(SIZE);
        let delay = run_time.mul_f64(rng.gen_range(0.0..1.1));
        killed_runs += kill_after(spawn_quiet(i.cmd(&["run"])), delay) as usize;
        let mut use_rollback = rng.gen_bool(0.5);
        if rng.gen_bool(0.4) {
            let verb = if use_rollback { "rollback" } else { "resume" };
            let delay = run_time.mul_f64(rng.gen_range(0.0..0.8));
            if kill_after(spawn_quiet(i.cmd(&[verb])), delay) {
                killed_recoveries += 1;
                // An interrupted rollback must be finished by rollback (resume refuses).
                use_rollback |= verb == "rollback";
            }
        }
        let context =
            format!("iteration {it} (seed {seed}, delay {delay:?}, rollback {use_rollback})");
        let before_recovery = i.snapshot();
        let (code, msg) = i.code(&[if use_rollback { "rollback" } else { "resume" }]);
        if code == Some(3) && msg.contains("the store reports corruption") {
            // sled 0.34 itself cannot read its store (an open upstream issue), even without
            // its snapshots. The engine must refuse and touch nothing; counted and capped.
            assert_same(
                &before_recovery,
                &i.snapshot(),
                &format!("{context}: refused recovery"),
            );
            eprintln!(
                "{context}: sled could not read its store; the engine refused (exit 3): {msg}"
            );
            sled_failures += 1;
            continue;
        }
        let expected = match (code, use_rollback) {
            (Some(0), true) => &start,
            (Some(0), false) => &done,
            (Some(2), _) if msg.contains("no run in the journal") => &start,
            (Some(2), false) if msg.contains("already completed") => &done,
            (Some(2), false) if msg.contains("rollback of this run was interrupted") => {
                i.ok(&["rollback"]);
                &start
            }
            _ => panic!("{context}: recovery exited {code:?}: {msg}"),
        };
        assert_same(expected, &i.snapshot(), &context);
        i.ok(&["journal", "verify"]);
    }
    eprintln!("{iterations} iterations: {killed_runs} runs and {killed_recoveries} recoveries killed mid-way; sled unreadable {sled_failures} times");
    assert!(
        sled_failures * 10 <= iterations,
        "sled could not read its store after {sled_failures} of {iterations} kills"
    );
    assert!(
        killed_runs >= iterations / 5,
        "too few runs were actually interrupted: {killed_runs}"
    );
}
