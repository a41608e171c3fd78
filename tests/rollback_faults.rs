//! Rollback after the new version ran (issue 22), the hard cases, with the real binary on
//! small demo installations:
//! - random changes after the run (files created, changed, deleted, folders recreated, where
//!   the rollback restores and where it does not; rows inserted, updated, deleted in a table
//!   the run emptied and in one it left alone), then `rollback --force`: every path of the
//!   start is back except what the plan reported lost, every byte written after the run is
//!   still under the root, nothing else changed, the rows are the start's (a property test);
//! - a crash at every durable point of that forced rollback, then `rollback --force` again:
//!   the same;
//! - each artifact the undo needs damaged by one byte: refused with nothing changed (and
//!   exact once repaired), or exact; never half.
//!
//! Requires `--features failpoints`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{bin, crash_at, for_each_point, mentions, text, JOURNAL};
use proptest::prelude::*;
use usercube_upgrade::testing::durable_fs;
use usercube_upgrade::testing::journal::Journal;
use usercube_upgrade::testing::manifest::{Entry, Kind, Manifest};
use usercube_upgrade::testing::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 40,
    bytes: 40 << 10,
    rows: 10,
};

/// Folders where the rollback restores something (as the run left them), then folders it
/// does not touch (the run only reads Sources and Certs; the last is new).
const FOLDERS: [&str; 9] = [
    "Runtime",
    "Conf",
    "Temp/Collect",
    "Work/ProvisioningOrders",
    "AppSettingsFolder",
    "RuntimeOld",
    "Sources",
    "Certs",
    "Exports-2027",
];
const UNTOUCHED: [&str; 3] = ["Sources", "Certs", "Exports-2027"];

/// The demo plan's renames and moves (where the run left it, where it was): a path the plan
/// reports lost was at the start under the second.
const MOVED: [(&str, &str); 6] = [
    ("RuntimeOld", "Runtime"),
    ("ConfOld", "Conf"),
    ("Work/ProvisioningOrders", "Temp/ProvisioningOrders"),
    ("Work/Synchronization", "Temp/Synchronization"),
    ("Work/FulfillPowerShell", "Temp/FulfillPowerShell"),
    ("Work/ExportCookies", "Temp/ExportCookies"),
];

fn cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args).arg("--root").arg(root).arg("--quiet");
    if args.first() == Some(&"run") {
        c.args([
            "--mode",
            "integrated",
            "--skip-database-upgrade",
            "--runtime-zip",
        ])
        .arg(root.join(RUNTIME_ZIP));
    }
    c.env_remove("USERCUBE_UPGRADE_CRASH_AT").env(
        usercube_upgrade::testing::crypto::PASSWORD_ENV,
        demo::DEMO_CERT_PASSWORD,
    );
    c
}

fn code(root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = cmd(root, args).output().unwrap();
    (out.status.code(), text(&out))
}

fn ok(root: &Path, args: &[&str]) -> String {
    let (c, msg) = code(root, args);
    assert_eq!(c, Some(0), "{args:?}:\n{msg}");
    msg
}

fn db(root: &Path) -> PathBuf {
    root.join(demo::DATABASE)
}

fn is_under(rel: &str, dir: &str) -> bool {
    rel == dir || rel.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

fn is_kept_aside(rel: &str) -> bool {
    rel.starts_with("KeptAside-")
}

/// A snapshot as a map (rel -> entry), the kept-aside folders left out.
fn entries(m: Manifest) -> BTreeMap<String, Entry> {
    m.entries
        .into_iter()
        .filter(|e| !is_kept_aside(&e.rel))
        .map(|e| (e.rel.clone(), e))
        .collect()
}

/// The tree's bytes as they are (no database dump, no decryption): a refused rollback
/// must not change one; the journal left out.
fn raw(root: &Path) -> BTreeMap<String, Entry> {
    entries(Manifest::of_excluding(root, Some(JOURNAL)).unwrap())
}

#[track_caller]
fn assert_same_map(expected: &BTreeMap<String, Entry>, found: &BTreeMap<String, Entry>, ctx: &str) {
    let mut diffs = Vec::new();
    for (rel, e) in expected {
        match found.get(rel) {
            None => diffs.push(format!("'{rel}' is missing")),
            Some(f) if f != e => diffs.push(format!(
                "'{rel}' differs: {:?} {} bytes mode {:o} -> {:?} {} bytes mode {:o}",
                e.kind, e.size, e.mode, f.kind, f.size, f.mode
            )),
            Some(_) => {}
        }
    }
    diffs.extend(
        found
            .keys()
            .filter(|r| !expected.contains_key(*r))
            .map(|r| format!("'{r}' was added")),
    );
    assert!(
        diffs.is_empty(),
        "{ctx}: tree differs ({} differences):\n  {}",
        diffs.len(),
        diffs
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// The run's kept-aside folder, if there is one (never more than one).
fn kept_aside(root: &Path) -> Option<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_kept_aside(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(found.len() <= 1, "one kept-aside folder at most: {found:?}");
    found.into_iter().next()
}

/// A path kept aside, as it was under the root: `~N` suffixes (a second thing kept at the
/// same path) taken off each component.
fn unsuffixed(rel: &str) -> String {
    rel.split('/')
        .map(|c| match c.rsplit_once('~') {
            Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => c,
        })
        .collect::<Vec<_>>()
        .join("/")
}

// ---------------------------------------------------------------------------------------
// Changes after the run

#[derive(Debug, Clone, Copy)]
enum FileChange {
    /// A new file, in the folder or a folder under it.
    Create,
    /// An existing file, bytes appended.
    Append,
    /// An existing file, rewritten whole.
    Rewrite,
    /// An existing file removed.
    Delete,
    /// The folder, or one under it, removed and made again with one new file.
    Recreate,
}

#[derive(Debug, Clone, Copy)]
struct Change {
    /// Index into `FOLDERS`.
    folder: usize,
    what: FileChange,
    /// Which file or folder, modulo how many there are.
    pick: usize,
    seed: u64,
}

#[derive(Debug, Clone, Copy)]
enum RowChange {
    /// Rows in the table the run emptied (what a configuration deploy does).
    InsertSteps(u8),
    UpdateSteps,
    DeleteStep,
    /// The table the run left alone.
    InsertJob,
    UpdateJob,
    DeleteJob,
}

fn files_and_dirs(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let m = Manifest::of(dir).unwrap();
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in m.entries {
        let p = if e.rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&e.rel)
        };
        match e.kind {
            Kind::File => files.push(p),
            Kind::Dir => dirs.push(p),
            _ => {}
        }
    }
    (files, dirs)
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn payload(seed: u64) -> Vec<u8> {
    let mut v = format!("written after the run ({seed:x})\n").into_bytes();
    v.extend(usercube_upgrade::testing::pseudo_random::bytes(
        (seed % 300) as usize,
        seed | 1,
    ));
    v
}

fn apply(root: &Path, c: &Change) {
    let dir = root.join(FOLDERS[c.folder]);
    let (files, dirs) = files_and_dirs(&dir);
    let bytes = payload(c.seed);
    let name = format!("after-run-{:x}.dat", c.seed);
    match c.what {
        FileChange::Append | FileChange::Rewrite | FileChange::Delete if !files.is_empty() => {
            let f = &files[c.pick % files.len()];
            match c.what {
                FileChange::Append => {
                    let mut v = std::fs::read(f).unwrap();
                    v.extend_from_slice(&bytes);
                    std::fs::write(f, v).unwrap();
                }
                FileChange::Rewrite => std::fs::write(f, &bytes).unwrap(),
                _ => durable_fs::remove_path(f).unwrap(),
            }
        }
        FileChange::Recreate => {
            let d = match dirs.len() {
                0 => dir,
                n => dirs[c.pick % n].clone(),
            };
            durable_fs::remove_path(&d).unwrap();
            write(&d.join(name), &bytes);
        }
        // Creating, or changing a file where there is none.
        _ => {
            let d = match dirs.len() {
                0 => dir,
                n => dirs[c.pick % n].clone(),
            };
            write(&d.join(name), &bytes);
        }
    }
}

fn apply_rows(root: &Path, changes: &[RowChange]) {
    let conn = rusqlite::Connection::open(db(root)).unwrap();
    for c in changes {
        let sql = match c {
            RowChange::InsertSteps(n) => {
                for _ in 0..*n {
                    conn.execute_batch(
                        "INSERT INTO UJ_JobSteps (Id, Job_Id, Name) SELECT coalesce(max(Id), 9000) + 1, 1, 'deployed' FROM UJ_JobSteps;",
                    )
                    .unwrap();
                }
                continue;
            }
            RowChange::UpdateSteps => "UPDATE UJ_JobSteps SET Name = 'edited ' || Id;",
            RowChange::DeleteStep => {
                "DELETE FROM UJ_JobSteps WHERE Id = (SELECT min(Id) FROM UJ_JobSteps);"
            }
            RowChange::InsertJob => {
                "INSERT INTO UJ_Jobs (Id, Identifier) SELECT max(Id) + 1, 'New_Job' FROM UJ_Jobs;"
            }
            RowChange::UpdateJob => {
                "UPDATE UJ_Jobs SET DisplayName_L1 = 'renamed after the upgrade' WHERE Id = 1;"
            }
            RowChange::DeleteJob => "DELETE FROM UJ_Jobs WHERE Id = 2147483648;",
        };
        conn.execute_batch(sql).unwrap();
    }
}

/// What a forced rollback must give, taken before it.
struct Expected {
    /// The tree before the run.
    start: BTreeMap<String, Entry>,
    rows_start: String,
    /// The untouched folders after the changes (they must stay so).
    untouched: BTreeMap<String, Entry>,
    /// Every file written after the run (new, or other bytes than the run left), as it is.
    written: Vec<(String, Vec<u8>)>,
    /// The rows after the changes, when they differ from what the run left.
    rows_changed: Option<String>,
    /// Where the plan reported lost paths, at the start (`MOVED` undone).
    lost: Vec<String>,
}

/// A demo installation at `root`: run, then `changes` and `rows`; what a forced rollback
/// must give (the plan's lost paths from `rollback --dry-run --json`).
fn run_and_change(root: &Path, changes: &[Change], rows: &[RowChange]) -> Expected {
    let start = entries(common::snapshot(root));
    let rows_start = common::db_dump(&db(root));
    ok(root, &["run"]);
    let left = raw(root);
    let rows_left = common::db_dump(&db(root));
    for c in changes {
        apply(root, c);
    }
    apply_rows(root, rows);
    let changed = raw(root);
    let rows_now = common::db_dump(&db(root));
    let written: Vec<(String, Vec<u8>)> = changed
        .values()
        .filter(|e| e.kind == Kind::File && !is_under(&e.rel, "Database"))
        .filter(|e| left.get(&e.rel).is_none_or(|l| l.sha256 != e.sha256))
        .map(|e| (e.rel.clone(), std::fs::read(root.join(&e.rel)).unwrap()))
        .collect();
    let untouched = entries(common::snapshot(root))
        .into_iter()
        .filter(|(rel, _)| UNTOUCHED.iter().any(|u| is_under(rel, u)))
        .collect();

    let out = cmd(root, &["rollback", "--dry-run", "--json"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    let plan: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{e}: the plan as JSON:\n{}", text(&out)));
    let mut lost = Vec::new();
    for g in plan["aftermath"]["gone"].as_array().unwrap() {
        if g["lost"] != true {
            continue;
        }
        let p = PathBuf::from(g["path"].as_str().unwrap());
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let rel = rel.to_string_lossy().replace('\\', "/");
        // Lost only what the run moved and what changed since.
        let l = left.get(&rel);
        assert!(
            l.is_some_and(|l| changed.get(&rel).is_none_or(|c| c.kind != l.kind
                || (l.kind == Kind::File && c.sha256 != l.sha256))),
            "{rel} reported lost, but it is as the run left it (or the run did not leave it):\n{json}"
        );
        let (from, to) = MOVED
            .iter()
            .find(|(from, _)| is_under(&rel, from))
            .unwrap_or_else(|| panic!("{rel} reported lost, but no step moved it:\n{json}"));
        lost.push(format!("{to}{}", &rel[from.len()..]));
    }
    Expected {
        start,
        rows_start,
        untouched,
        written,
        rows_changed: (rows_now != rows_left).then_some(rows_now),
        lost,
    }
}

/// After a forced rollback: the start back (but what was lost), the untouched folders as
/// they were made after the run, every byte written after the run kept, nothing else there.
#[track_caller]
fn assert_rolled_back(root: &Path, x: &Expected, ctx: &str) {
    let is_lost = |rel: &str| x.lost.iter().any(|l| is_under(rel, l));
    let is_untouched = |rel: &str| UNTOUCHED.iter().any(|u| is_under(rel, u));
    let expected: BTreeMap<String, Entry> = x
        .start
        .iter()
        .filter(|(rel, _)| !is_untouched(rel))
        .chain(x.untouched.iter())
        .filter(|(rel, _)| !is_lost(rel))
        .map(|(r, e)| (r.clone(), e.clone()))
        .collect();
    let found: BTreeMap<String, Entry> = entries(common::snapshot(root))
        .into_iter()
        .filter(|(rel, _)| !is_lost(rel))
        .collect();
    assert_same_map(&expected, &found, ctx);
    assert_eq!(
        x.rows_start,
        common::db_dump(&db(root)),
        "{ctx}: rows as before the run"
    );

    // Every byte written after the run: at its path where the rollback restores nothing,
    // else kept aside at the same relative path.
    let kept = kept_aside(root);
    let mut kept_files: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut kept_databases = Vec::new();
    if let Some(k) = &kept {
        for e in Manifest::of(k).unwrap().entries {
            if e.kind != Kind::File {
                continue;
            }
            if !e.rel.contains('/') && e.rel.ends_with(".sqlite") {
                kept_databases.push(common::db_dump(&k.join(&e.rel)));
                continue;
            }
            kept_files
                .entry(unsuffixed(&e.rel))
                .or_default()
                .push(std::fs::read(k.join(&e.rel)).unwrap());
        }
    }
    for (rel, bytes) in &x.written {
        if is_untouched(rel) {
            assert_eq!(
                &std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{ctx}: {rel}: {e}")),
                bytes,
                "{ctx}: {rel} where the rollback restores nothing: left as it is"
            );
        } else {
            assert!(
                kept_files.get(rel).is_some_and(|v| v.contains(bytes)),
                "{ctx}: {rel}, written after the run, is not kept aside byte for byte (kept: {:?})",
                kept_files.keys().collect::<Vec<_>>()
            );
        }
    }
    // And only that is kept aside.
    for (rel, versions) in &kept_files {
        for v in versions {
            assert!(
                x.written.iter().any(|(r, b)| r == rel && b == v),
                "{ctx}: {rel} kept aside, but it is not something written after the run"
            );
        }
    }
    match &x.rows_changed {
        Some(rows) => assert!(
            kept_databases.contains(rows),
            "{ctx}: the database as it was after the run's changes is kept ({} kept)",
            kept_databases.len()
        ),
        None => assert!(
            kept_databases.is_empty(),
            "{ctx}: no database kept when none changed"
        ),
    }
}

fn change() -> impl Strategy<Value = Change> {
    (0..FOLDERS.len(), 0..5u8, any::<usize>(), any::<u64>()).prop_map(|(folder, w, pick, seed)| {
        Change {
            folder,
            what: match w {
                0 => FileChange::Create,
                1 => FileChange::Append,
                2 => FileChange::Rewrite,
                3 => FileChange::Delete,
                _ => FileChange::Recreate,
            },
            pick,
            seed,
        }
    })
}

fn row_change() -> impl Strategy<Value = RowChange> {
    prop_oneof![
        (1..4u8).prop_map(RowChange::InsertSteps),
        Just(RowChange::UpdateSteps),
        Just(RowChange::DeleteStep),
        Just(RowChange::InsertJob),
        Just(RowChange::UpdateJob),
        Just(RowChange::DeleteJob),
    ]
}

proptest! {
    // Each case builds, runs and rolls back a demo installation through the binary (about a
    // second): few cases, short shrinking.
    // CI draws the same cases every time (a fixed seed): `PROPTEST_RNG_SEED=N` draws other
    // ones, `PROPTEST_CASES=N` more of them (150 random cases passed when this was written).
    #![proptest_config(ProptestConfig {
        cases: 10,
        max_shrink_iters: 24,
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            ProptestConfig::default().rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(22)
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn forced_rollback_after_random_changes_restores_the_start_and_keeps_every_byte(
        changes in prop::collection::vec(change(), 1..8),
        rows in prop::collection::vec(row_change(), 0..4),
    ) {
        let (_tmp, root) = common::demo_install(SIZE);
        let x = run_and_change(&root, &changes, &rows);
        let out = ok(&root, &["rollback", "--force"]);
        assert_rolled_back(&root, &x, &format!("{changes:?} {rows:?}\n{out}"));
        prop_assert!(ok(&root, &["status"]).contains("rolled-back"));
    }
}

/// Found by the property test: the folder of files the run rewrote (`Conf/Connectors`)
/// removed after the run. Their undo has nothing to restore into; the copy step before
/// them discards `Conf` anyway.
#[test]
fn forced_rollback_after_the_folder_of_rewritten_files_was_removed() {
    let (_tmp, root) = common::demo_install(SIZE);
    let conf = FOLDERS.iter().position(|f| *f == "Conf").unwrap();
    let remove = Change {
        folder: conf,
        what: FileChange::Recreate,
        pick: 0,
        seed: 7,
    };
    let x = run_and_change(&root, &[remove], &[]);
    assert!(!root.join("Conf/Connectors").exists());
    let out = ok(&root, &["rollback", "--force"]);
    assert_rolled_back(&root, &x, &out);
}

// ---------------------------------------------------------------------------------------
// Crash at every point of the forced rollback

/// Every kind of change, each where the rollback restores and where it does not; a moved
/// file changed and one deleted (lost); rows in both tables.
fn fixed_changes() -> (Vec<Change>, Vec<RowChange>) {
    let c = |folder: &str, what, pick, seed| Change {
        folder: FOLDERS.iter().position(|f| *f == folder).unwrap(),
        what,
        pick,
        seed,
    };
    (
        vec![
            c("Runtime", FileChange::Create, 0, 11),
            c("Runtime", FileChange::Recreate, 3, 12),
            c("Conf", FileChange::Append, 1, 13),
            c("Temp/Collect", FileChange::Create, 0, 14),
            c("Work/ProvisioningOrders", FileChange::Create, 0, 15),
            c("Work/ProvisioningOrders", FileChange::Append, 0, 16),
            c("RuntimeOld", FileChange::Delete, 5, 17),
            c("AppSettingsFolder", FileChange::Rewrite, 0, 18),
            c("Sources", FileChange::Append, 0, 19),
            c("Certs", FileChange::Create, 0, 20),
            c("Exports-2027", FileChange::Create, 0, 21),
        ],
        vec![
            RowChange::InsertSteps(2),
            RowChange::UpdateJob,
            RowChange::DeleteJob,
        ],
    )
}

/// Copies a tree, the journal included, modes kept.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
    std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
}

/// One installation per lane, run and changed once; its copy (journal included) put back
/// before each crash, at the same path (the journal names its root).
struct Slot {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    template: PathBuf,
    expected: Expected,
}

impl Slot {
    fn new() -> Slot {
        let (tmp, root) = common::demo_install(SIZE);
        let (changes, rows) = fixed_changes();
        let expected = run_and_change(&root, &changes, &rows);
        let template = tmp.path().join("template");
        copy_tree(&root, &template);
        Slot {
            _tmp: tmp,
            root,
            template,
            expected,
        }
    }

    fn reset(&self) {
        durable_fs::remove_path(&self.root).unwrap();
        copy_tree(&self.template, &self.root);
    }
}

#[test]
fn forced_rollback_crashed_at_every_point_then_rolled_back_again_is_exact() {
    let started = std::time::Instant::now();
    let slots = Mutex::new(vec![Slot::new(), Slot::new()]);
    // The points: the records a whole forced rollback writes.
    let points = {
        let s = &slots.lock().unwrap()[0];
        let seq = || Journal::open(&s.root.join(JOURNAL)).unwrap().last_seq();
        let before = seq();
        let out = ok(&s.root, &["rollback", "--force"]);
        assert_rolled_back(&s.root, &s.expected, &format!("no crash\n{out}"));
        let points = seq() - before;
        s.reset();
        points
    };
    assert!(points >= 4, "{points} records");
    // Every point is tried; the failures are listed at the end.
    let failed = Mutex::new(Vec::new());
    for_each_point(points, |n| {
        let s = slots.lock().unwrap().pop().expect("one slot per lane");
        let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert!(
                crash_at(cmd(&s.root, &["rollback", "--force"]), n),
                "crash point {n} of {points} not reached"
            );
            let (c, out) = code(&s.root, &["rollback", "--force"]);
            assert_eq!(c, Some(0), "crash at {n}, then rollback --force:\n{out}");
            assert_rolled_back(
                &s.root,
                &s.expected,
                &format!("crash at {n} of {points}, then rollback --force\n{out}"),
            );
        }));
        if tried.is_err() {
            failed.lock().unwrap().push(n);
        }
        s.reset();
        slots.lock().unwrap().push(s);
    });
    eprintln!(
        "{points} crash points in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut failed = failed.into_inner().unwrap();
    failed.sort();
    assert!(
        failed.is_empty(),
        "not exact after a crash at {failed:?} of {points} (each one's message above)"
    );
}

// ---------------------------------------------------------------------------------------
// Damaged artifacts

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(
        at < bytes.len(),
        "{}: {} bytes",
        path.display(),
        bytes.len()
    );
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// The one run's folder under `<journal>/<what>/`.
fn run_dir(root: &Path, what: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root.join(JOURNAL).join(what))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The first file (in name order) under the first folder in `base` for which `wanted`
/// holds.
fn first_file(base: &Path, wanted: impl Fn(&Path) -> bool) -> PathBuf {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| wanted(p))
        .collect();
    steps.sort();
    let (files, _) = files_and_dirs(steps.first().expect("a matching folder"));
    files.into_iter().next().expect("a file")
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// A run on a demo installation, one byte of one artifact flipped (`pick`: the file and
/// the offset; `names`: what a message must name, relative to the root): `journal verify`
/// exits 3 and `rollback` (forced or not) exits 2, naming it, changing nothing; the byte
/// flipped back, `rollback` restores the start.
fn damaged_artifact_is_refused(pick: impl Fn(&Path) -> (PathBuf, usize, Vec<String>)) {
    let (_tmp, root) = common::demo_install(SIZE);
    let start = entries(common::snapshot(&root));
    let rows_start = common::db_dump(&db(&root));
    ok(&root, &["run"]);
    let rows_before = common::db_dump(&db(&root));
    let (file, at, names) = pick(&root);
    flip(&file, at);
    let before = raw(&root);
    let what = rel(&root, &file);

    let (c, msg) = code(&root, &["journal", "verify"]);
    assert_eq!(c, Some(3), "journal verify, {what} damaged:\n{msg}");
    for n in &names {
        assert!(mentions(&msg, n), "journal verify names {n}:\n{msg}");
    }
    for args in [&["rollback"][..], &["rollback", "--force"]] {
        let (c, msg) = code(&root, args);
        assert_eq!(c, Some(2), "{args:?}, {what} damaged:\n{msg}");
        for n in &names {
            assert!(mentions(&msg, n), "{args:?} names {n}:\n{msg}");
        }
        assert!(msg.contains("Nothing was changed"), "{msg}");
        assert_same_map(
            &before,
            &raw(&root),
            &format!("{args:?} refused, {what} damaged"),
        );
        assert_eq!(
            rows_before,
            common::db_dump(&db(&root)),
            "{args:?} refused: rows"
        );
    }

    // Repaired: nothing was half done, the rollback is exact.
    flip(&file, at);
    ok(&root, &["rollback"]);
    assert_same_map(
        &start,
        &entries(common::snapshot(&root)),
        "after the repair",
    );
    assert_eq!(
        rows_start,
        common::db_dump(&db(&root)),
        "after the repair: rows"
    );
}

#[test]
fn damaged_trash_copy_of_a_deleted_folder_is_refused() {
    damaged_artifact_is_refused(|root| {
        let trash = run_dir(root, "trash");
        let f = first_file(&trash, |p| p.join("deleted").is_dir());
        let size = std::fs::metadata(&f).unwrap().len() as usize;
        let folder = rel(
            root,
            f.ancestors().find(|a| a.ends_with("deleted")).unwrap(),
        );
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        (f, size / 2, vec![folder, name])
    });
}

#[test]
fn damaged_kept_previous_content_is_refused() {
    damaged_artifact_is_refused(|root| {
        let trash = run_dir(root, "trash");
        let f = first_file(&trash, |p| p.join("previous").is_file());
        let size = std::fs::metadata(&f).unwrap().len() as usize;
        let name = rel(root, &f);
        (f, size / 2, vec![name])
    });
}

/// A kept original of a re-encrypted file (`trash/<run>/<step>/<n>`).
#[test]
fn damaged_kept_original_of_a_reencrypted_file_is_refused() {
    damaged_artifact_is_refused(|root| {
        let trash = run_dir(root, "trash");
        let f = first_file(&trash, |p| p.join("0").is_file());
        let size = std::fs::metadata(&f).unwrap().len() as usize;
        let name = rel(root, &f);
        (f, size / 2, vec![name])
    });
}

/// The last database step's saved data: the row before-images of the last table emptied.
#[test]
fn damaged_row_before_image_is_refused() {
    damaged_artifact_is_refused(|root| {
        let data = run_dir(root, "data");
        let last = std::fs::read_dir(&data)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse::<u32>().ok())
            .max()
            .unwrap();
        let f = first_file(&data, |p| p.ends_with(last.to_string()));
        let size = std::fs::metadata(&f).unwrap().len() as usize;
        let name = rel(root, &f);
        (f, size / 2, vec![name, "UJ_JobSteps".into()])
    });
}

/// The re-encryption step's saved data (the first step with data, in name order).
#[test]
fn damaged_saved_data_of_the_reencryption_is_refused() {
    damaged_artifact_is_refused(|root| {
        let data = run_dir(root, "data");
        let first = std::fs::read_dir(&data)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse::<u32>().ok())
            .min()
            .unwrap();
        let f = first_file(&data, |p| p.ends_with(first.to_string()));
        let size = std::fs::metadata(&f).unwrap().len() as usize;
        let name = rel(root, &f);
        (f, size / 2, vec![name])
    });
}

fn database_backup(root: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(root.join("DatabaseBackup"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// A byte of the second page's header (SQLite's integrity check sees it).
#[test]
fn damaged_database_backup_page_is_refused() {
    damaged_artifact_is_refused(|root| {
        let f = database_backup(root);
        let name = rel(root, &f);
        (f, 4096 + 4, vec![name])
    });
}

/// A byte of a row's text (a well-formed database with another row: only a comparison with
/// what the run backed up sees it).
#[test]
fn damaged_database_backup_row_is_refused() {
    damaged_artifact_is_refused(|root| {
        let f = database_backup(root);
        let bytes = std::fs::read(&f).unwrap();
        let at = bytes
            .windows(13)
            .position(|w| w == b"AD_Paris_Sync")
            .expect("the job's row in the backup")
            + 3;
        let name = rel(root, &f);
        (f, at, vec![name])
    });
}

/// A run on a demo installation, `damage` done to its journal: `rollback` is exact (exit 0,
/// the start back) or refused (exit 2 or 3) with nothing changed.
fn exact_or_refused(ctx: &str, damage: impl Fn(&Path)) {
    let (_tmp, root) = common::demo_install(SIZE);
    let start = entries(common::snapshot(&root));
    let rows_start = common::db_dump(&db(&root));
    ok(&root, &["run"]);
    let before = raw(&root);
    let rows_before = common::db_dump(&db(&root));
    damage(&root.join(JOURNAL));
    let (verify, verified) = code(&root, &["journal", "verify"]);
    let (c, msg) = code(&root, &["rollback"]);
    let ctx = format!(
        "{ctx}: journal verify exited {verify:?}:\n{verified}\nrollback exited {c:?}:\n{msg}"
    );
    match c {
        Some(0) => {
            assert_same_map(&start, &entries(common::snapshot(&root)), &ctx);
            assert_eq!(rows_start, common::db_dump(&db(&root)), "{ctx}");
        }
        Some(2 | 3) => {
            assert_same_map(&before, &raw(&root), &ctx);
            assert_eq!(rows_before, common::db_dump(&db(&root)), "{ctx}");
        }
        _ => panic!("neither exact nor refused: {ctx}"),
    }
}

#[test]
fn damaged_journal_log_entry_is_exact_or_refused() {
    let log = |j: &Path| j.join("log");
    exact_or_refused("a byte of the first entry", |j| flip(&log(j), 20));
    exact_or_refused("a byte in the middle of the log", |j| {
        let n = std::fs::metadata(log(j)).unwrap().len() as usize;
        flip(&log(j), n / 2)
    });
    exact_or_refused("a byte of the last entry", |j| {
        let n = std::fs::metadata(log(j)).unwrap().len() as usize;
        flip(&log(j), n - 5)
    });
}

#[test]
fn damaged_sled_store_is_exact_or_refused() {
    let store = |j: &Path| j.join("store/db");
    exact_or_refused("a byte in the middle of the store", |j| {
        let n = std::fs::metadata(store(j)).unwrap().len() as usize;
        flip(&store(j), n / 2)
    });
    exact_or_refused("a byte at 3000 in the store", |j| flip(&store(j), 3000));
    exact_or_refused("a byte of the store's configuration", |j| {
        flip(&j.join("store/conf"), 2)
    });
}
