//! Test kit shared by the integration tests: real sample installations in temp folders,
//! the real binary, and whole-tree snapshots (paths, kinds, sizes, modes, SHA-256).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use usercube_upgrade::testing::manifest::Manifest;
use usercube_upgrade::testing::plan::Plan;
use usercube_upgrade::testing::sample::{self, SampleSize};

pub mod pfx;

pub const JOURNAL: &str = ".usercube-upgrade";

pub struct Install {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub plan_file: PathBuf,
}

impl Install {
    pub fn new(size: SampleSize) -> Install {
        Self::with_plan(size, &sample::plan())
    }

    pub fn with_plan(size: SampleSize, plan: &Plan) -> Install {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().join("root");
        sample::create_installation(&root, size).unwrap();
        let plan_file = tmp.path().join("plan.json");
        std::fs::write(&plan_file, serde_json::to_string_pretty(plan).unwrap()).unwrap();
        Install {
            _tmp: tmp,
            root,
            plan_file,
        }
    }

    pub fn snapshot(&self) -> Manifest {
        snapshot(&self.root)
    }

    /// A new installation with the same tree as `template` (journal excluded): a plain copy,
    /// much faster than generating the sample again (zip included).
    pub fn copy_of(template: &Install) -> Install {
        fn copy_tree(from: &Path, to: &Path) {
            std::fs::create_dir(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                if e.file_name() == JOURNAL {
                    continue;
                }
                let (src, dst) = (e.path(), to.join(e.file_name()));
                if e.file_type().unwrap().is_dir() {
                    copy_tree(&src, &dst);
                } else {
                    std::fs::copy(&src, &dst).unwrap();
                }
            }
            std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
        }
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().join("root");
        copy_tree(&template.root, &root);
        let plan_file = tmp.path().join("plan.json");
        std::fs::copy(&template.plan_file, &plan_file).unwrap();
        Install {
            _tmp: tmp,
            root,
            plan_file,
        }
    }

    /// Runs the binary with `--root` (and `--plan` for plan/run) added.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args).arg("--root").arg(&self.root).arg("--quiet");
        if matches!(args.first(), Some(&"run") | Some(&"plan")) {
            c.arg("--plan").arg(&self.plan_file);
        }
        c.env_remove("USERCUBE_UPGRADE_CRASH_AT");
        c
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} failed:\n{}",
            text(&out)
        );
        out
    }

    pub fn code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.cmd(args).output().unwrap();
        (out.status.code(), text(&out))
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.root.join(JOURNAL)
    }
}

/// A demo installation of `size` in a new temp folder: the folder (kept alive by the caller)
/// and the installation root, canonical as the tool shows it (no `\\?\` prefix on Windows).
pub fn demo_install(
    size: usercube_upgrade::testing::runbook::demo::DemoSize,
) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = tmp.path().join("root");
    usercube_upgrade::testing::runbook::demo::create(&root, size).unwrap();
    let root = dunce::canonicalize(&root).unwrap();
    (tmp, root)
}

/// Runs `cmd` (arguments already given) with the crash failpoint at durable point `n`: true
/// when the process aborted there, false when it finished first (exit 0, fewer than `n`
/// points); any other ending fails the test.
pub fn crash_at(mut cmd: Command, n: u64) -> bool {
    let out = cmd
        .env("USERCUBE_UPGRADE_CRASH_AT", n.to_string())
        .output()
        .unwrap();
    if usercube_upgrade::testing::platform::aborted(&out.status) {
        return true;
    }
    match out.status.code() {
        Some(0) => false,
        c => panic!("{cmd:?} with crash at {n} exited {c:?}:\n{}", text(&out)),
    }
}

/// The binary under test; `USERCUBE_UPGRADE_BIN` overrides it (the soak runs a copy, so that
/// a rebuild meanwhile does not change the binary mid-soak).
pub fn bin() -> Command {
    match std::env::var_os("USERCUBE_UPGRADE_BIN") {
        Some(path) => Command::new(path),
        None => Command::new(env!("CARGO_BIN_EXE_usercube-upgrade")),
    }
}

/// The tree under `root` (journal excluded). SQLite database files (`*.sqlite`) are
/// compared by their rows, not their bytes (a restore or a re-insert rewrites pages): their
/// entry holds the SHA-256 of a full dump of every table, in key order (and a backup's
/// time-stamped name is replaced by `usercube-upgrade-TIME.sqlite`).
pub fn snapshot(root: &Path) -> Manifest {
    let mut m = Manifest::of_excluding(root, Some(JOURNAL)).unwrap();
    let cert = usercube_upgrade::testing::runbook::demo::demo_certificate();
    for e in &mut m.entries {
        if e.kind == usercube_upgrade::testing::manifest::Kind::File {
            if let Some(h) = new_format_plaintext_hash(&cert, &root.join(&e.rel)) {
                e.sha256 = h;
                e.size = 0;
            }
        }
        if e.rel.ends_with(".sqlite") {
            let dump = db_dump(&root.join(&e.rel));
            e.size = dump.len() as u64;
            e.sha256 = <sha2::Sha256 as sha2::Digest>::digest(dump.as_bytes()).into();
            // A backup's name holds the time it was taken: compared by content only.
            if let Some(dir) = e.rel.strip_suffix(".sqlite").and_then(|r| {
                let (dir, name) = r.rsplit_once('/')?;
                name.strip_prefix("usercube-upgrade-")?;
                Some(dir.to_string())
            }) {
                e.rel = format!("{dir}/usercube-upgrade-TIME.sqlite");
            }
        }
    }
    m
}

/// Files in the new encryption format hold a random data key: those the demo certificate
/// decrypts are compared by the SHA-256 of their plaintext.
fn new_format_plaintext_hash(
    cert: &usercube_upgrade::testing::crypto::Certificate,
    path: &Path,
) -> Option<[u8; 32]> {
    use std::io::Read;
    use usercube_upgrade::testing::crypto::{is_new_format, NewFormatReader, NEW_MAGIC};
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = [0u8; NEW_MAGIC.len()];
    f.read_exact(&mut head).ok()?;
    if !is_new_format(&head) {
        return None;
    }
    let f = std::fs::File::open(path).ok()?;
    let mut r = NewFormatReader::new(cert, f).ok()?;
    let mut plain = Vec::new();
    r.read_to_end(&mut plain).ok()?;
    Some(<sha2::Sha256 as sha2::Digest>::digest(&plain).into())
}

/// Every row of every table of an SQLite database, in key order, as text (tests compare it
/// whole). Dead code in test binaries without a database.
#[allow(dead_code)]
pub fn db_dump(path: &Path) -> String {
    use usercube_upgrade::testing::db::{self, Target};
    let mut d = db::open(&Target::Sqlite(path.to_path_buf())).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<String> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("{t}: {:?}\n", db::dump(&mut *d, &t).unwrap()));
    }
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts two snapshots are equal, naming the first difference.
#[track_caller]
pub fn assert_same(expected: &Manifest, found: &Manifest, context: &str) {
    if let Some(d) = expected.first_difference(found) {
        panic!("{context}: tree differs: {d}");
    }
}

/// Runs `f` for every crash point n in 1..=points, spread over two threads (the machine's
/// two cores); each call works on its own installation.
///
/// `USERCUBE_CRASH_STRIDE=k` (default 1: every point) takes every k-th point instead, from
/// an offset drawn at random and printed (`USERCUBE_CRASH_OFFSET` replays it), plus the
/// first four points (the run's start and the first step's records) and the last:
/// scripts/windows.sh uses it for the crash suites under wine, where each process start
/// costs several times what it costs on Linux.
pub fn for_each_point(points: u64, f: impl Fn(u64) + Sync) {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let stride = var("USERCUBE_CRASH_STRIDE").unwrap_or(1).max(1);
    let offset = var("USERCUBE_CRASH_OFFSET").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64)
            % stride
    }) % stride;
    if stride > 1 {
        eprintln!("crash points: every {stride}th from USERCUBE_CRASH_OFFSET={offset}, plus 1-4 and {points}");
    }
    let chosen: Vec<u64> = (1..=points)
        .filter(|&n| n % stride == offset || n <= 4 || n == points)
        .collect();
    std::thread::scope(|s| {
        for lane in 0..2 {
            let (f, chosen) = (&f, &chosen);
            s.spawn(move || chosen.iter().skip(lane).step_by(2).for_each(|&n| f(n)));
        }
    });
}

/// Whether `msg` holds `expected`, paths compared with either separator: Windows shows
/// `Runtime\appsettings.json`, and a path given as `/work/x` shows as `Z:\work\x` under wine
/// (which holds `/work/x` once separators are alike). JSON's doubled `\\` counts as one.
pub fn mentions(msg: &str, expected: &str) -> bool {
    fn norm(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            let c = if c == '\\' { '/' } else { c };
            if !(c == '/' && out.ends_with('/')) {
                out.push(c);
            }
        }
        out
    }
    norm(msg).contains(&norm(expected))
}

/// Whether this test process runs under wine (its ntdll exports `wine_get_version`): wine
/// keeps a DACL only as the Unix permission bits it maps to, so an owner-only protected DACL
/// reads back as wine's default one (README, "Tests").
#[cfg(windows)]
pub fn under_wine() -> bool {
    #[link(name = "kernel32")]
    extern "system" {
        fn GetModuleHandleA(name: *const u8) -> *mut std::ffi::c_void;
        fn GetProcAddress(
            module: *mut std::ffi::c_void,
            name: *const u8,
        ) -> Option<unsafe extern "system" fn() -> isize>;
    }
    // SAFETY: NUL-terminated names; ntdll is loaded in every Windows process.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

#[cfg(not(windows))]
pub fn under_wine() -> bool {
    false
}
