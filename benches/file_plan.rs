//! A plan of 10,000 small-file renames run through the engine, against the same renames
//! done with plain `std::fs::rename`, and the engine with one step per journal flush
//! (`batch: 1`) against the default groups of 256.
//!
//! Setup (writing the 10,000 files) is outside the timed region. The engine's time includes
//! opening the journal, preflight, the intents (a SHA-256 manifest per file), the renames
//! with their folder fsyncs, and the journal flushes; `std::fs` is the bare renames, with no
//! fsync at all, so the ratio is the whole price of durability and journaling.
//!
//! Two parts, because one 10,000-step engine run takes minutes (preflight is quadratic in
//! the number of steps, see BENCHMARKS.md) and criterion insists on at least 10 samples per
//! function:
//! - first a direct measurement with `Instant` at `FILE_PLAN_STEPS` (default 10000) steps:
//!   mean of `FILE_PLAN_STD_ITERS` (default 3) runs of std::fs and `FILE_PLAN_ENGINE_ITERS`
//!   (default 1) runs of each engine variant; it prints `engine/std::fs ratio: N.Nx`;
//! - then the criterion group at `FILE_PLAN_CRITERION_STEPS` (default 1000) steps.
//!
//! Run: `cargo bench --bench file_plan` (about 14 minutes on a shared 2-core VM; set
//! `FILE_PLAN_STEPS=1000` for a quick run).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tempfile::TempDir;
use usercube_upgrade::testing::engine::{Engine, Options};
use usercube_upgrade::testing::plan::{Plan, StepSpec};

const FILE_BYTES: usize = 64;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn src(i: usize) -> PathBuf {
    PathBuf::from(format!("f{i}"))
}

fn dst(i: usize) -> PathBuf {
    PathBuf::from(format!("g{i}"))
}

/// A fresh root holding `n` small files `f0..f{n-1}`.
fn make_tree(n: usize) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..n {
        let content = format!("{i:0width$}", width = FILE_BYTES);
        std::fs::write(dir.path().join(src(i)), content).expect("write file");
    }
    dir
}

fn rename_plan(n: usize) -> Plan {
    Plan::new(
        format!("{n} renames"),
        (0..n)
            .map(|i| {
                (
                    None,
                    None,
                    StepSpec::Rename {
                        from: src(i),
                        to: dst(i),
                    },
                )
            })
            .collect(),
    )
}

fn run_engine(root: &Path, plan: Plan, batch: usize) {
    let opts = Options {
        quiet: true,
        batch,
        ..Options::default()
    };
    Engine::open(root, None, opts)
        .expect("open engine")
        .run(plan)
        .expect("run plan");
}

/// The baseline: bare renames, deliberately without the folder fsyncs of `durable_fs`.
#[allow(clippy::disallowed_methods)]
fn run_std(root: &Path, n: usize) {
    for i in 0..n {
        std::fs::rename(root.join(src(i)), root.join(dst(i))).expect("rename");
    }
}

/// Mean wall time of `f` over `iters` fresh trees (setup not timed).
fn mean(iters: u32, n: usize, mut f: impl FnMut(&Path)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = make_tree(n);
        let t = Instant::now();
        f(dir.path());
        total += t.elapsed();
    }
    total / iters
}

/// Prints the ratios measured directly, so they are visible without reading the report.
fn print_ratios(n: usize) {
    let plan = rename_plan(n);
    let std_iters = env_or("FILE_PLAN_STD_ITERS", 3) as u32;
    let engine_iters = env_or("FILE_PLAN_ENGINE_ITERS", 1) as u32;
    let std_t = mean(std_iters, n, |root| run_std(root, n));
    let eng_t = mean(engine_iters, n, |root| run_engine(root, plan.clone(), 256));
    let eng1_t = mean(engine_iters, n, |root| run_engine(root, plan.clone(), 1));
    println!(
        "file_plan: {n} renames, mean wall time (Instant) of {std_iters} std::fs run(s), \
         {engine_iters} run(s) of each engine variant:"
    );
    println!("  std::fs::rename        {:>10.3} ms", ms(std_t));
    println!("  engine (batch 256)     {:>10.3} ms", ms(eng_t));
    println!("  engine (batch 1)       {:>10.3} ms", ms(eng1_t));
    println!(
        "engine/std::fs ratio: {:.1}x",
        eng_t.as_secs_f64() / std_t.as_secs_f64()
    );
    println!(
        "engine batch 1 / batch 256 ratio: {:.2}x",
        eng1_t.as_secs_f64() / eng_t.as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench(c: &mut Criterion) {
    print_ratios(env_or("FILE_PLAN_STEPS", 10_000));
    let n = env_or("FILE_PLAN_CRITERION_STEPS", 1_000);
    let plan = rename_plan(n);

    let mut g = c.benchmark_group(format!("file_plan/{n}_renames"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("std_fs_rename", |b| {
        b.iter_batched(
            || make_tree(n),
            |dir| {
                run_std(dir.path(), n);
                dir
            },
            BatchSize::PerIteration,
        )
    });
    for batch in [256, 1] {
        g.bench_function(format!("engine_batch_{batch}"), |b| {
            b.iter_batched(
                || (make_tree(n), plan.clone()),
                |(dir, plan)| {
                    run_engine(dir.path(), plan, batch);
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
