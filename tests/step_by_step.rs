//! The vendor guide step by step inside one reversible run, through the real binary on the
//! demo installation: `run --until GUIDE-STEP` pauses with the run open, `status` says where
//! and what is next, `resume --until` and the vendor-named subcommands go on inside it (or
//! refuse naming the command that does), every command finds the root from inside
//! `Runtime`, and `rollback` restores the starting tree byte for byte.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same, bin, snapshot, text, JOURNAL};
use usercube_upgrade::testing::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 40,
    bytes: 40 << 10,
    rows: 10,
};

struct Demo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Demo {
    fn new() -> Demo {
        let (tmp, root) = common::demo_install(SIZE);
        Demo { _tmp: tmp, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The command run from `dir`, without `--root` (the guide runs its tools from inside
    /// Runtime); `run` and `plan` get the integrated mode's arguments.
    fn cmd_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = typed_in(dir, args);
        if matches!(args.first(), Some(&"run") | Some(&"plan")) {
            c.args([
                "--mode",
                "integrated",
                "--skip-database-upgrade",
                "--runtime-zip",
            ])
            .arg(self.root.join(RUNTIME_ZIP))
            .arg("--runtime-path")
            .arg(self.root.join("Runtime"));
        }
        c
    }

    /// From inside `Runtime`, as the guide does.
    fn code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.cmd_in(&self.path("Runtime"), args).output().unwrap();
        (out.status.code(), text(&out))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, msg) = self.code(args);
        assert_eq!(code, Some(0), "{args:?} failed:\n{msg}");
        msg
    }

    /// Exit 2 and nothing changed (journal included: the records stay as they were).
    fn refused(&self, args: &[&str]) -> String {
        let start = snapshot(&self.root);
        let records = self.status()["records"].clone();
        let (code, msg) = self.code(args);
        assert_eq!(code, Some(2), "{args:?}:\n{msg}");
        assert_same(&start, &snapshot(&self.root), &format!("{args:?} refused"));
        assert_eq!(
            self.status()["records"],
            records,
            "{args:?} wrote no record"
        );
        msg
    }

    fn status(&self) -> serde_json::Value {
        let out = self
            .cmd_in(&self.path("Runtime"), &["status", "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn root_arg(&self) -> String {
        self.root.display().to_string()
    }
}

/// `args` exactly as typed in `dir` (no argument added), with the demo's PFX password in the
/// environment.
fn typed_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.current_dir(dir).args(args);
    c.env_remove("USERCUBE_UPGRADE_CRASH_AT");
    c.env(
        usercube_upgrade::testing::crypto::PASSWORD_ENV,
        demo::DEMO_CERT_PASSWORD,
    );
    c
}

/// Issue 24, item 2: the guide's commands typed inside `Runtime` with paths relative to it
/// (`../Runtime_....zip`, `../Certs/...pfx`), as the README shows them. Every path is
/// normalised once, from the folder the command was typed in, before the run renames
/// `Runtime`: the run gets past step 3, the plan and the journal show the paths absolute,
/// and the shell left in `RuntimeOld` finds the installation without `--root`.
#[test]
fn relative_paths_typed_inside_runtime_survive_its_rename() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let zip = format!("../{RUNTIME_ZIP}");
    let cert = format!("../{}", demo::DEMO_CERT);
    let run_args = |verb: &'static str| -> Vec<String> {
        [
            verb,
            "--mode",
            "integrated",
            "--skip-database-upgrade",
            "--runtime-zip",
            &zip,
            "--runtime-path",
            ".",
            "--file-cert-file",
            &cert,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let typed = |dir: &str, args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = typed_in(&d.path(dir), &args).output().unwrap();
        (out.status.code(), text(&out), out.stdout)
    };
    let abs_zip = d.path(RUNTIME_ZIP).display().to_string();
    let abs_cert = d.path(demo::DEMO_CERT).display().to_string();

    // The plan shows them absolute, without the `Runtime/..` they were typed through.
    let mut plan = run_args("plan");
    plan.push("--json".into());
    let (code, msg, stdout) = typed("Runtime", &plan);
    assert_eq!(code, Some(0), "{msg}");
    let json = String::from_utf8(stdout).unwrap();
    // A plan's paths inside the root are relative to it (README, "plan files").
    assert!(
        json.contains(&format!("\"archive\": \"{RUNTIME_ZIP}\"")),
        "{json}"
    );
    assert!(
        json.contains(&format!("\"path\": \"{}\"", demo::DEMO_CERT)),
        "{json}"
    );
    assert!(!json.contains("/../") && !json.contains("/./"), "{json}");
    let (code, msg, _) = typed("Runtime", &run_args("plan"));
    assert_eq!(code, Some(0), "{msg}");
    assert!(msg.contains(&abs_zip), "{abs_zip} in {msg}");
    assert!(
        msg.contains(&format!("(PFX {};", demo::DEMO_CERT)),
        "the certificate, in the root, shown from it: {msg}"
    );
    assert!(!msg.contains("/../"), "{msg}");

    let mut run = run_args("run");
    run.extend(["--until".into(), "4.5".into()]);
    let (code, msg, _) = typed("Runtime", &run);
    assert_eq!(code, Some(0), "{msg}");
    assert!(msg.contains("paused after guide step 4.5 (step "), "{msg}");
    assert!(d.path("RuntimeOld").is_dir(), "Runtime renamed");

    // The shell stands in RuntimeOld now: a bare status there finds the installation.
    let root = d.root_arg();
    let (code, msg, stdout) = typed("RuntimeOld", &["status".into(), "--json".into()]);
    assert_eq!(code, Some(0), "{msg}");
    let status: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(status["root"], root, "{status}");
    assert_eq!(status["state"], "paused", "{status}");
    let (code, msg, _) = typed("RuntimeOld", &["status".into()]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(msg.contains(&format!("installation: {root}")), "{msg}");

    // The journal's command line: the paths as the run used them, absolute.
    let (code, msg, stdout) = typed(
        "RuntimeOld",
        &["journal".into(), "export".into(), "--json".into()],
    );
    assert_eq!(code, Some(0), "{msg}");
    let export: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let line = export["runs"][0]["command_line"].to_string();
    assert!(line.contains(&abs_zip), "{abs_zip} in {line}");
    assert!(line.contains(&abs_cert), "{abs_cert} in {line}");
    assert!(!line.contains("/../"), "{line}");

    // `resume` there, without --root, re-encrypts with the certificate typed as ../Certs/...
    let (code, msg, _) = typed("RuntimeOld", &["resume".into()]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(msg.contains("completed"), "{msg}");
    assert_eq!(d.status()["state"], "committed");
    let (code, msg, _) = typed("RuntimeOld", &["rollback".into()]);
    assert_eq!(code, Some(0), "{msg}");
    assert_same(&start, &snapshot(&d.root), "after rollback");
}

/// An input outside the installation given through a symbolic link is taken at its real
/// path (the link may change; nothing of the run renames it), normalised first.
#[test]
fn an_input_outside_the_root_is_taken_at_its_real_path() {
    let d = Demo::new();
    let other = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let other = dunce::canonicalize(other.path()).unwrap();
    let real = other.join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::copy(d.path(RUNTIME_ZIP), real.join(RUNTIME_ZIP)).unwrap();
    if let Err(e) = usercube_upgrade::testing::platform::symlink(&real, &other.join("link")) {
        eprintln!("no symbolic link here ({e}): test skipped");
        return;
    }
    let zip = format!("{}/link/./{RUNTIME_ZIP}", other.display());
    let out = typed_in(
        &d.path("Runtime"),
        &[
            "plan",
            "--json",
            "--mode",
            "integrated",
            "--skip-database-upgrade",
            "--runtime-zip",
            &zip,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json = String::from_utf8(out.stdout).unwrap();
    let real_zip = real.join(RUNTIME_ZIP).display().to_string();
    assert!(
        json.contains(&format!("\"archive\": \"{real_zip}\"")),
        "{real_zip} in {json}"
    );
}

#[test]
fn the_guide_step_by_step_in_one_reversible_run() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let rows = common::db_dump(&d.path(demo::DATABASE));
    let root = d.root_arg();

    let out = d.ok(&["run", "--until", "4.5"]);
    assert!(out.contains("paused after guide step 4.5 (step "), "{out}");
    let status = d.status();
    assert_eq!(status["root"], root, "the root found from inside Runtime");
    assert_eq!(status["state"], "paused", "{status}");
    let done = status["steps_done"].as_u64().unwrap();
    let next = status["next_step"].as_str().unwrap().to_string();
    assert!(
        next.starts_with(&format!("step {} (guide step 5.1): ", done + 1)),
        "{status}"
    );
    assert!(status["stopped"]
        .as_str()
        .unwrap()
        .starts_with("paused after guide step 4.5"));
    // The old Runtime is aside, the new one extracted; the migrations of 5.1 not done yet.
    assert!(d.path("RuntimeOld").is_dir());
    assert!(!std::fs::read_to_string(d.path("Runtime/appsettings.json"))
        .unwrap()
        .contains("TempFolderPath"));

    // A new run leads with the open run, and names the commands that go on.
    let msg = d.refused(&["run"]);
    assert!(
        msg.starts_with("error: paused: the latest run was paused after guide step 4.5"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("`usercube-upgrade resume --root {root}`")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("`usercube-upgrade rollback --root {root}`")),
        "{msg}"
    );
    let msg = d.refused(&["finalize"]);
    assert!(msg.contains("has not finished"), "{msg}");

    // upgrade-files is guide 5.2-5.3: 5.1 comes first, and the refusal says how.
    let msg = d.refused(&["upgrade-files", "--version", "5.1.7", "--migrate-agent"]);
    assert!(
        msg.contains("(guide step 5.1) before it is not done yet"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "`usercube-upgrade resume --root {root} --until 5.3`"
        )),
        "{msg}"
    );

    // resume --until: guide step 5.1 (TempFolderPath, WorkFolderPath, EncryptFile).
    let out = d.ok(&["resume", "--until", "5.1"]);
    assert!(out.contains("paused after guide step 5.1"), "{out}");
    let settings = std::fs::read_to_string(d.path("Runtime/appsettings.json")).unwrap();
    for key in ["TempFolderPath", "WorkFolderPath", "EncryptFile"] {
        assert!(settings.contains(key), "{key} in {settings}");
    }
    let msg = d.refused(&["resume", "--until", "4.5"]);
    assert!(msg.contains("is already past guide step 4.5"), "{msg}");

    // The vendor-named subcommand inside the open run: first what it would do, then it.
    let before = snapshot(&d.root);
    let out = d.ok(&[
        "upgrade-files",
        "--version",
        "5.1.7",
        "--migrate-agent",
        "--plan-only",
    ]);
    assert!(out.contains("would go on with the open run"), "{out}");
    assert_same(&before, &snapshot(&d.root), "--plan-only changes nothing");
    let out = d.ok(&["upgrade-files", "--version", "5.1.7", "--migrate-agent"]);
    assert!(out.contains("inside the open run"), "{out}");
    assert!(out.contains("paused after guide step 5.3"), "{out}");
    assert!(d.path("Work/ProvisioningOrders").is_dir(), "moved by 5.3");
    assert!(
        d.path("Work/tracked-accounts-HR.csv").is_file(),
        "the tracked-accounts copies of 5.3, which no vendor subcommand does"
    );
    let out = d.ok(&["upgrade-files", "--version", "5.1.7", "--migrate-agent"]);
    assert!(out.contains("already done in run"), "{out}");

    let out = d.ok(&[
        "prepare-upgrade-appsettings",
        "--version",
        "5.1.7",
        "--output-path",
        &d.path("AppSettingsFolder").display().to_string(),
    ]);
    assert!(out.contains("paused after guide step 6.2"), "{out}");
    assert!(d.path("AppSettingsFolder/520.json").is_file());
    let status = d.status();
    assert_eq!(status["state"], "paused");
    assert!(status["next_step"]
        .as_str()
        .unwrap()
        .contains("(guide step 7.2)"));

    // Still one run, still reversible: rollback restores every byte and every row.
    d.ok(&["rollback"]);
    assert_same(
        &start,
        &snapshot(&d.root),
        "after rollback of the paused run",
    );
    assert_eq!(rows, common::db_dump(&d.path(demo::DATABASE)));
    assert_eq!(d.status()["state"], "rolled-back");
}

#[test]
fn until_refuses_what_it_cannot_stop_at() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let no_step = "the guide's section \"Upgrade Server and Agent (Integrated Agent Installation)\" has no step";
    for (until, expect) in [
        ("1", "no step of the plan is at or before guide step 1"),
        ("2", "guide step 2 has no step in this plan"),
        ("4.x", "not a guide step number"),
        ("4.2-4.3", "not a guide step number"),
        // Numbers the guide does not have (4.5.1 was accepted, 99 ran the plan whole).
        ("4.5.1", &format!("{no_step} 4.5.1")),
        ("99", &format!("{no_step} 99")),
        ("10", &format!("{no_step} 10")),
    ] {
        let (code, msg) = d.code(&["run", "--until", until]);
        assert_eq!(code, Some(2), "{msg}");
        assert!(msg.contains(expect), "{expect:?} in {msg}");
        assert_same(&start, &snapshot(&d.root), "refused --until");
        assert!(!d.path(JOURNAL).exists(), "no journal for a refusal");
    }
    // `--until` the guide's last step runs the plan whole.
    let out = d.ok(&["run", "--until", "9.8"]);
    assert!(out.contains("completed"), "{out}");
    assert_eq!(d.status()["state"], "committed");
    let msg = d.refused(&["resume", "--until", "9.5"]);
    assert!(msg.contains("already completed"), "{msg}");
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "after rollback");
}

/// `--until N` with a top-level guide number pauses after all of N (every step of N.x);
/// a guide step the plan has no step of (done by hand, not needed, skipped) pauses after
/// everything before it, and says so. Before: `--until 3` was refused and `--until 4`
/// paused before any step of 4.
#[test]
fn until_a_top_level_guide_step_means_all_of_it() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let next_guide = |d: &Demo| {
        let status = d.status();
        assert_eq!(status["state"], "paused", "{status}");
        status["next_step"].as_str().unwrap().to_string()
    };

    let out = d.ok(&["run", "--until", "3"]);
    assert!(
        out.contains("paused after guide step 3 (step 3 of "),
        "{out}"
    );
    assert!(!out.contains("has no step in this plan"), "{out}");
    assert!(next_guide(&d).contains("(guide step 4.2-4.3)"), "{out}");
    assert!(d.path("RuntimeOld").is_dir() && d.path("Runtime").is_dir());
    assert!(!d.path("AppSettingsFolder").exists());

    let out = d.ok(&["resume", "--until", "4"]);
    assert!(
        out.contains("paused after guide step 4 (step 10 of "),
        "{out}"
    );
    assert!(next_guide(&d).contains("(guide step 5.1)"), "{out}");
    // 4.2-4.3 and 4.4 done: the old appsettings in the temporary folder and the new Runtime.
    assert!(d.path("AppSettingsFolder/appsettings.agent.json").is_file());
    assert!(d.path("Runtime/appsettings.agent.json").is_file());

    // 6.1 is "not needed" in this plan: paused after everything before it (5.3).
    let out = d.ok(&["resume", "--until", "6.1"]);
    assert!(out.contains("paused after guide step 6.1"), "{out}");
    assert!(
        out.contains("guide step 6.1 has no step in this plan (`plan` shows what it is"),
        "{out}"
    );
    assert!(next_guide(&d).contains("(guide step 6.2)"), "{out}");
    assert!(d.path("Work/ProvisioningOrders").is_dir(), "moved by 5.3");
    assert!(
        !d.path("AppSettingsFolder/520.json").exists(),
        "6.2 not done"
    );

    let msg = d.refused(&["resume", "--until", "5.4"]);
    assert!(msg.contains("has no step 5.4"), "{msg}");
    let msg = d.refused(&["resume", "--until", "5"]);
    assert!(msg.contains("is already past guide step 5"), "{msg}");

    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "after rollback");
}

/// Guide step 8 (restart the server) is the plan's last step, after the steps of 9 that
/// must run with the server stopped: `--until 8` pauses before 9 and says that the start
/// is not done yet.
#[test]
fn until_says_which_steps_of_its_guide_step_the_plan_does_later() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    // Outside the root: the start command's mark is no part of the tree compared.
    let started = d.root.parent().unwrap().join("started.txt");
    let cmd = format!("echo started > '{}'", started.display());
    let out = d.ok(&["run", "--start-command", &cmd, "--until", "8"]);
    let total = d.status()["steps_total"].as_u64().unwrap();
    assert!(out.contains("paused after guide step 8"), "{out}");
    assert!(
        out.contains(&format!(
            "not done yet: step(s) {total} of guide step 8, which this plan does later"
        )),
        "{out}"
    );
    assert!(!started.exists(), "the start is not done");
    assert!(!d.path("ConfOld").exists(), "9.1 is not done");
    let status = d.status();
    assert!(
        status["next_step"]
            .as_str()
            .unwrap()
            .contains("(guide step 9.1)"),
        "{status}"
    );
    d.ok(&["resume"]);
    assert!(started.is_file(), "the start ran last");
    assert_eq!(d.status()["state"], "committed");
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "after rollback");
}

/// The case: `upgrade-files` as a run of its own, then the next vendor step. The
/// refusal names both ways on: finalize (or roll back) first, or one run with `--until`.
#[test]
fn a_vendor_subcommand_after_a_committed_one_names_the_ways_on() {
    let d = Demo::new();
    d.ok(&["upgrade-files", "--version", "5.1.7"]);
    let root = d.root_arg();
    let msg = d.refused(&[
        "prepare-upgrade-appsettings",
        "--version",
        "5.1.7",
        "--output-path",
        &d.path("Runtime").display().to_string(),
    ]);
    for expect in [
        "`prepare-upgrade-appsettings` is not part of the latest run",
        &format!("`usercube-upgrade finalize --root {root}`"),
        &format!("`usercube-upgrade rollback --root {root}`"),
        "run --mode MODE ... --until GUIDE-STEP",
    ] {
        assert!(msg.contains(expect), "{expect:?} in {msg}");
    }
}

#[test]
fn root_defaults_to_the_parent_of_the_runtime_folder_only() {
    let d = Demo::new();
    let out = d
        .cmd_in(&d.path("Runtime"), &["plan", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Elsewhere (the root itself, a folder named Runtime that is no installation's),
    // --root is needed, and the refusal says so.
    let other = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let stray = other.path().join("Runtime");
    std::fs::create_dir(&stray).unwrap();
    let stray_old = other.path().join("RuntimeOld");
    std::fs::create_dir(&stray_old).unwrap();
    for dir in [d.root.as_path(), stray.as_path(), stray_old.as_path()] {
        let out = d.cmd_in(dir, &["status"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains("--root DIR is needed"),
            "{}",
            text(&out)
        );
    }
    // An explicit --root wins.
    let out = d
        .cmd_in(
            &d.path("Runtime"),
            &["status", "--root", &other.path().display().to_string()],
        )
        .output()
        .unwrap();
    assert!(
        text(&out).contains(&format!(
            "installation: {}",
            dunce::canonicalize(other.path()).unwrap().display()
        )),
        "{}",
        text(&out)
    );
}

/// A paused run resumed in a new shell without the PFX password: refused before anything
/// acts (exit 2, the step and the missing password named), the run stays paused; a resume
/// that stops before the re-encryption needs no password; with it, the run commits.
#[test]
fn resume_without_the_pfx_password_refuses_and_stays_paused() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    d.ok(&["run", "--until", "4.5"]);
    let without = |args: &[&str]| {
        let out = d
            .cmd_in(&d.path("Runtime"), args)
            .env_remove(usercube_upgrade::testing::crypto::PASSWORD_ENV)
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let paused = snapshot(&d.root);
    let records = d.status()["records"].clone();
    let (code, msg) = without(&["resume"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("(guide step 5.3: re-encrypt"), "{msg}");
    assert!(
        msg.contains(usercube_upgrade::testing::crypto::PASSWORD_ENV),
        "{msg}"
    );
    assert!(msg.contains("Nothing was changed"), "{msg}");
    assert_same(&paused, &snapshot(&d.root), "resume refused");
    let status = d.status();
    assert_eq!(status["state"], "paused", "{status}");
    assert_eq!(status["records"], records, "the refusal wrote no record");

    // Up to guide step 5.1 no step needs the certificate: no password needed.
    let (code, msg) = without(&["resume", "--until", "5.1"]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(msg.contains("paused after guide step 5.1"), "{msg}");
    let (code, msg) = without(&["resume"]);
    assert_eq!(code, Some(2), "{msg}");
    assert_eq!(d.status()["state"], "paused");

    let out = d.ok(&["resume"]);
    assert!(out.contains("completed"), "{out}");
    assert_eq!(d.status()["state"], "committed");
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "after rollback");
}
