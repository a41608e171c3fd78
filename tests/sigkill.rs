//! Kill the real binary with SIGKILL at random moments (during the run, and sometimes
//! during the recovery too), then recover and check: after `rollback` the tree is exactly
//! the starting tree; after `resume` it is exactly the tree of an uninterrupted run.
//! Iterations: USERCUBE_SIGKILL_ITERATIONS (default 200, what CI runs); seed:
//! USERCUBE_SIGKILL_SEED. The soak (1,000+ kills) is the same test with more iterations
//! (BENCHMARKS.md).
//!
//! Nothing is tolerated: a refusal (exit 3, "journal corrupt") is a failure like any other.
//! sled 0.34 sometimes cannot read its own store after a kill; the journal rebuilds it from
//! its record log (counted here from the warning, for the report).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same, Install};
use rand::{Rng, SeedableRng};
use usercube_upgrade::testing::sample::SampleSize;

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
        .unwrap_or(200);
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

    let template = Install::new(SIZE);
    let reference = Install::copy_of(&template);
    let start = reference.snapshot();
    let t = Instant::now();
    reference.ok(&["run"]);
    let mut run_time = t.elapsed();
    // The shortest of three runs: a slow first run (cold cache, a busy machine) would put
    // most kills after the end of the run.
    for _ in 0..2 {
        let again = Install::copy_of(&template);
        let t = Instant::now();
        again.ok(&["run"]);
        run_time = run_time.min(t.elapsed());
    }
    let done = reference.snapshot();
    eprintln!("reference run: {run_time:?}");
    // Iterations run on USERCUBE_SIGKILL_JOBS workers (default 2; recovery mostly waits on
    // syncfs), each with its own generator derived from the seed.
    let jobs: usize = std::env::var("USERCUBE_SIGKILL_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let totals: Vec<(usize, usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|w| {
                let (template, start, done) = (&template, &start, &done);
                scope.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(w as u64));
                    let (mut killed_runs, mut killed_recoveries, mut rebuilt) = (0, 0, 0);
                    for it in (w..iterations).step_by(jobs) {
                        let ctx = Ctx {
                            seed,
                            w,
                            it,
                            template,
                            start,
                            done,
                            run_time,
                        };
                        let (run, recovery, store) = iteration(&ctx, &mut rng);
                        killed_runs += run as usize;
                        killed_recoveries += recovery as usize;
                        rebuilt += store as usize;
                    }
                    (killed_runs, killed_recoveries, rebuilt)
                })
            })
            .collect();
        workers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (killed_runs, killed_recoveries, rebuilt) = totals
        .iter()
        .fold((0, 0, 0), |t, x| (t.0 + x.0, t.1 + x.1, t.2 + x.2));
    eprintln!("{iterations} iterations: {killed_runs} runs and {killed_recoveries} recoveries killed mid-way; 0 refusals; sled store rebuilt from the record log {rebuilt} times (at the final recovery)");
    assert!(
        killed_runs >= iterations / 5,
        "too few runs were actually interrupted: {killed_runs}"
    );
}

struct Ctx<'a> {
    seed: u64,
    w: usize,
    it: usize,
    template: &'a Install,
    start: &'a usercube_upgrade::testing::manifest::Manifest,
    done: &'a usercube_upgrade::testing::manifest::Manifest,
    run_time: Duration,
}

/// One kill and recovery; returns (run killed, recovery killed, store rebuilt).
fn iteration(c: &Ctx, rng: &mut impl Rng) -> (bool, bool, bool) {
    let (seed, w, it, run_time) = (c.seed, c.w, c.it, c.run_time);
    let i = Install::copy_of(c.template);
    let delay = run_time.mul_f64(rng.gen_range(0.0..1.1));
    let killed_run = kill_after(spawn_quiet(i.cmd(&["run"])), delay);
    let mut killed_recovery = false;
    let mut use_rollback = rng.gen_bool(0.5);
    if rng.gen_bool(0.4) {
        let verb = if use_rollback { "rollback" } else { "resume" };
        let delay = run_time.mul_f64(rng.gen_range(0.0..0.8));
        if kill_after(spawn_quiet(i.cmd(&[verb])), delay) {
            killed_recovery = true;
            // An interrupted rollback must be finished by rollback (resume refuses).
            use_rollback |= verb == "rollback";
        }
    }
    let context = format!(
        "iteration {it} (seed {seed}, worker {w}, delay {delay:?}, rollback {use_rollback})"
    );
    // No tolerance: any exit but these (exit 3 included) fails the test.
    let (code, msg) = i.code(&[if use_rollback { "rollback" } else { "resume" }]);
    let rebuilt = msg.contains("store rebuilt from the record log");
    let expected = match (code, use_rollback) {
        (Some(0), true) => c.start,
        (Some(0), false) => c.done,
        (Some(2), _) if msg.contains("no run in the journal") => c.start,
        (Some(2), false) if msg.contains("already completed") => c.done,
        (Some(2), false) if msg.contains("rollback half done (") => {
            i.ok(&["rollback"]);
            c.start
        }
        _ => panic!("{context}: recovery exited {code:?}: {msg}"),
    };
    assert_same(expected, &i.snapshot(), &context);
    i.ok(&["journal", "verify"]);
    (killed_run, killed_recovery, rebuilt)
}
