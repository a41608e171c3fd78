//! Reversible delete (before-images saved to the journal, made durable, then DELETE, in one
//! transaction) against a bare `DELETE` without before-images: rows per second for
//! 1,000,000 rows in SQLite and 100,000 through the TDS test server (tiberius), the two
//! ratios, and the peak memory (VmHWM, measured in a child process per run) at two row counts.
//!
//! `cargo bench --bench db_delete` (headline figures, then a small criterion group).
//! Row counts: DB_BENCH_SQLITE_ROWS, DB_BENCH_TDS_ROWS; DB_BENCH_QUICK=1 skips criterion.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use usercube_upgrade::testing::db::{self, Target};
use usercube_upgrade::testing::engine::{Engine, Options};
use usercube_upgrade::testing::plan::{Plan, StepSpec};
use usercube_upgrade::testing::steps::{self, StepContext, StepJournal};

const PW_VAR: &str = "USERCUBE_BENCH_DB_PASSWORD";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A root folder holding `u.sqlite` with `rows` rows in UJ_JobSteps.
fn make_db(rows: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("u.sqlite");
    let c = rusqlite::Connection::open(&file).unwrap();
    c.execute_batch(
        "CREATE TABLE UJ_JobSteps (Id BIGINT NOT NULL PRIMARY KEY, Task_Id BIGINT NOT NULL, Job_Id BIGINT NOT NULL, LaunchOrder INT NOT NULL, [Level] INT NULL);",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    {
        let mut s = tx
            .prepare("INSERT INTO UJ_JobSteps VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for i in 0..rows as i64 {
            s.execute(rusqlite::params![
                2_147_483_648 + i,
                i % 1000,
                i / 7,
                (i % 13) as i32,
                if i % 3 == 0 { None } else { Some(1i32) }
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    (tmp, root)
}

enum Backend {
    Sqlite,
    Tds,
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    conn: String,
    target: Target,
    _server: Option<tds_test_server::TestServer>,
}

fn setup(b: &Backend, rows: usize) -> Setup {
    let (tmp, root) = make_db(rows);
    match b {
        Backend::Sqlite => Setup {
            target: Target::Sqlite(root.join("u.sqlite")),
            conn: "sqlite:u.sqlite".into(),
            _tmp: tmp,
            root,
            _server: None,
        },
        Backend::Tds => {
            let server =
                tds_test_server::TestServer::start(&root.join("u.sqlite"), Default::default());
            let literal = server.tiberius_connection_string();
            let pw = tds_test_server::Options::default().password.unwrap();
            std::env::set_var(PW_VAR, &pw);
            let conn = literal.replace(
                &format!("Password={pw}"),
                &format!("Password=${{{PW_VAR}}}"),
            );
            Setup {
                target: Target::SqlServer(literal),
                conn,
                _tmp: tmp,
                root,
                _server: Some(server),
            }
        }
    }
}

/// The reversible delete through the engine (journal, intent, before-images, delete).
fn reversible(s: &Setup) -> Duration {
    let plan = Plan::new(
        "bench",
        vec![(
            None,
            None,
            StepSpec::DeleteRows {
                connection: s.conn.clone(),
                table: "UJ_JobSteps".into(),
            },
        )],
    );
    let t = Instant::now();
    let mut e = Engine::open(
        &s.root,
        None,
        Options {
            quiet: true,
            ..Options::default()
        },
    )
    .unwrap();
    e.run(plan).unwrap();
    t.elapsed()
}

/// A bare DELETE in a transaction, no before-images.
fn bare(s: &Setup) -> Duration {
    let t = Instant::now();
    let mut d = db::open(&s.target).unwrap();
    d.begin().unwrap();
    d.delete_all("UJ_JobSteps").unwrap();
    d.commit().unwrap();
    t.elapsed()
}

fn count(s: &Setup) -> u64 {
    db::open(&s.target).unwrap().count("UJ_JobSteps").unwrap()
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A journal that durably keeps nothing: isolates the step's own memory from the journal's
/// (which currently holds every record in memory).
struct NullJournal(std::cell::Cell<u64>);

impl StepJournal for NullJournal {
    fn save(&self, payload: Vec<u8>) -> usercube_upgrade::testing::steps::Result<()> {
        self.0.set(self.0.get() + payload.len() as u64);
        Ok(())
    }
    fn sync(&self) -> usercube_upgrade::testing::steps::Result<()> {
        Ok(())
    }
    fn saved(
        &self,
        _f: &mut dyn FnMut(&[u8]) -> usercube_upgrade::testing::steps::Result<()>,
    ) -> usercube_upgrade::testing::steps::Result<()> {
        Ok(())
    }
}

/// The delete step alone (intent + apply), before-images sent to a NullJournal.
fn step_only(s: &Setup) -> (Duration, u64) {
    let spec = StepSpec::DeleteRows {
        connection: s.conn.clone(),
        table: "UJ_JobSteps".into(),
    };
    let step = steps::step_for(&spec, &s.root, None);
    let j = NullJournal(std::cell::Cell::new(0));
    let on_bytes = |_n: u64| {};
    let on_phase = |_: &str| {};
    let deferred = usercube_upgrade::testing::durable_fs::DeferredDirs::default();
    let ctx = StepContext {
        trash: s.root.join("trash"),
        journal_dir: &s.root.join("journal"),
        on_bytes: &on_bytes,
        on_files: &on_bytes,
        on_phase: &on_phase,
        journal: &j,
        deferred: &deferred,
    };
    let t = Instant::now();
    let intent = step.intent(&ctx).unwrap();
    step.apply(&ctx, &intent).unwrap();
    (t.elapsed(), j.0.get())
}

/// In a child process: one reversible delete of `rows` rows; prints the peak memory.
fn child(spec: &str) {
    let (kind, rows) = spec.split_once(':').unwrap();
    let rows: usize = rows.parse().unwrap();
    if kind == "sqlite-step-only" {
        let s = setup(&Backend::Sqlite, rows);
        let before = vm_hwm_kb();
        let (d, bytes) = step_only(&s);
        assert_eq!(count(&s), 0);
        println!(
            "CHILD {kind} rows={rows} setup_hwm_kb={before} hwm_kb={} secs={:.2} before_image_bytes={bytes}",
            vm_hwm_kb(),
            d.as_secs_f64()
        );
        return;
    }
    let b = if kind == "tds" {
        Backend::Tds
    } else {
        Backend::Sqlite
    };
    let s = setup(&b, rows);
    let before = vm_hwm_kb();
    let d = reversible(&s);
    assert_eq!(count(&s), 0);
    println!(
        "CHILD {kind} rows={rows} setup_hwm_kb={before} hwm_kb={} secs={:.2}",
        vm_hwm_kb(),
        d.as_secs_f64()
    );
}

fn peak(kind: &str, rows: usize) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("DB_BENCH_CHILD", format!("{kind}:{rows}"))
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .find(|l| l.starts_with("CHILD"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("child failed: {}", String::from_utf8_lossy(&out.stderr)))
}

fn headline(name: &str, b: Backend, rows: usize) {
    let s = setup(&b, rows);
    let d_rev = reversible(&s);
    assert_eq!(count(&s), 0);
    let s2 = setup(&b, rows);
    let d_bare = bare(&s2);
    assert_eq!(count(&s2), 0);
    let r = rows as f64;
    println!(
        "{name}: {rows} rows: reversible delete {:.0} rows/s ({:.2} s), bare DELETE {:.0} rows/s ({:.2} s); reversible/bare time ratio {:.1}x",
        r / d_rev.as_secs_f64(),
        d_rev.as_secs_f64(),
        r / d_bare.as_secs_f64(),
        d_bare.as_secs_f64(),
        d_rev.as_secs_f64() / d_bare.as_secs_f64()
    );
}

fn criterion_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("db_delete_10k_sqlite");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    g.bench_function("reversible", |bch| {
        bch.iter_batched(
            || setup(&Backend::Sqlite, 10_000),
            |s| reversible(&s),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("bare", |bch| {
        bch.iter_batched(
            || setup(&Backend::Sqlite, 10_000),
            |s| bare(&s),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    if let Ok(spec) = std::env::var("DB_BENCH_CHILD") {
        child(&spec);
        return;
    }
    // `cargo test --benches` runs benches with --bench absent: keep that quick.
    let real = std::env::args().any(|a| a == "--bench");
    let sqlite_rows = env_usize("DB_BENCH_SQLITE_ROWS", if real { 1_000_000 } else { 2_000 });
    let tds_rows = env_usize("DB_BENCH_TDS_ROWS", if real { 100_000 } else { 2_000 });
    headline("sqlite", Backend::Sqlite, sqlite_rows);
    headline("tds-test-server", Backend::Tds, tds_rows);
    for (kind, rows) in [
        ("sqlite", sqlite_rows / 10),
        ("sqlite", sqlite_rows),
        ("sqlite-step-only", sqlite_rows / 10),
        ("sqlite-step-only", sqlite_rows),
        ("tds", tds_rows / 10),
        ("tds", tds_rows),
    ] {
        println!("peak memory: {}", peak(kind, rows));
    }
    if real && std::env::var("DB_BENCH_QUICK").is_err() {
        let mut c = Criterion::default().configure_from_args();
        criterion_group(&mut c);
        c.final_summary();
    }
}
