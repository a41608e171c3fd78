//! End-to-end tests of the real binary on sample installations.

mod common;

use common::{assert_same, Install};
use usercube_upgrade::testing::plan::{Plan, StepSpec};
use usercube_upgrade::testing::sample::SampleSize;

#[test]
fn run_then_rollback_restores_the_exact_tree() {
    let i = Install::new(SampleSize::default());
    let start = i.snapshot();
    i.ok(&["run"]);
    let r = &i.root;
    assert!(r.join("RuntimeOld/Usercube-Server.deps.json").is_file());
    let deps = std::fs::read_to_string(r.join("Runtime/Usercube-Server.deps.json")).unwrap();
    assert!(deps.contains("Usercube-Server/5.2.3.100"), "{deps}");
    assert!(!r.join("Temp/Collect").exists());
    assert!(r
        .join("Work/ProvisioningOrders/ProvisioningOrders-0.csv")
        .is_file());
    assert!(r.join("Work/tracked-accounts-ADParis.csv").is_file());
    let settings = std::fs::read_to_string(r.join("Runtime/appsettings.json")).unwrap();
    assert!(
        settings.contains("\"WorkFolderPath\": \"../Work\""),
        "{settings}"
    );
    assert!(
        r.join("ConfOld/Connectors/AD.xml").is_file() && r.join("Conf/Connectors/AD.xml").is_file()
    );
    let (_, status) = i.code(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["state"], "committed");
    assert_eq!(status["steps_done"], 10);

    i.ok(&["rollback"]);
    assert_same(&start, &i.snapshot(), "after rollback");
    let (_, status) = i.code(&["status", "--json"]);
    assert!(status.contains("\"rolled-back\""), "{status}");
    // A second rollback is a no-op, and the audit holds every step as undone.
    i.ok(&["rollback"]);
    let export = i.ok(&["journal", "export", "--json"]);
    let audit: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    let steps = audit["runs"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert!(
        steps
            .iter()
            .all(|s| s["state"] == "undone" && s["undo"] == "undone"),
        "{steps:?}"
    );
    let rename = &steps[0]["touched"];
    assert_eq!(
        rename[0]["before_sha256"], rename[1]["after_sha256"],
        "rename keeps content"
    );
    assert!(
        rename[0]["after_sha256"].is_null(),
        "Runtime is gone after the rename"
    );
}

#[test]
fn finalize_purges_the_trash_and_forbids_rollback() {
    let i = Install::new(SampleSize::default());
    i.ok(&["run"]);
    let trash = i.journal_dir().join("trash");
    let contents = i.journal_dir().join("contents");
    assert!(std::fs::read_dir(&trash).unwrap().next().is_some());
    assert!(
        std::fs::read_dir(&contents).unwrap().next().is_some(),
        "the plan's write-file contents are kept for resume"
    );
    let after_run = i.snapshot();
    i.ok(&["finalize"]);
    assert!(!trash.exists() && !contents.exists(), "both purged whole");
    assert_same(
        &after_run,
        &i.snapshot(),
        "finalize changes nothing in the installation",
    );
    let (code, msg) = i.code(&["rollback"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("finalized"), "{msg}");
    i.ok(&["journal", "verify"]);
}

/// A zip whose central directory is fine but whose first entry's data is damaged: it
/// passes preflight and fails while extracting, after several steps have run.
fn damage_zip(i: &Install) {
    let zip = i.root.join(usercube_upgrade::testing::sample::RUNTIME_ZIP);
    let mut bytes = std::fs::read(&zip).unwrap();
    for b in &mut bytes[40..120] {
        *b ^= 0x5a;
    }
    std::fs::write(&zip, bytes).unwrap();
}

#[test]
fn a_failing_step_rolls_back_automatically() {
    let i = Install::new(SampleSize::default());
    damage_zip(&i);
    let start = i.snapshot();
    let (code, msg) = i.code(&["run"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains("step 2") && msg.contains("rolled back"),
        "{msg}"
    );
    assert_same(&start, &i.snapshot(), "after automatic rollback");
}

#[test]
fn no_auto_rollback_leaves_a_failed_run_for_rollback() {
    let i = Install::new(SampleSize::default());
    damage_zip(&i);
    let start = i.snapshot();
    let (code, msg) = i.code(&["run", "--no-auto-rollback"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("Not rolled back"), "{msg}");
    assert!(i.root.join("RuntimeOld").exists(), "step 1 stays applied");
    let (_, status) = i.code(&["status"]);
    assert!(status.contains("state:        failed"), "{status}");
    let (code, msg) = i.code(&["run"]);
    assert_eq!(
        code,
        Some(2),
        "a new run is refused while one is open: {msg}"
    );
    i.ok(&["rollback"]);
    assert_same(&start, &i.snapshot(), "after rollback of a failed run");
}

#[test]
fn preflight_refuses_and_changes_nothing() {
    let plan = Plan::new(
        "bad",
        vec![
            (
                None,
                None,
                StepSpec::Rename {
                    from: "Runtime".into(),
                    to: "RuntimeOld".into(),
                },
            ),
            (
                None,
                None,
                StepSpec::Copy {
                    from: "Runtime/appsettings.json".into(),
                    to: "x.json".into(),
                },
            ),
            (
                None,
                None,
                StepSpec::DeleteTree {
                    path: "Nope".into(),
                },
            ),
        ],
    );
    let i = Install::with_plan(SampleSize::default(), &plan);
    let start = i.snapshot();
    let (code, msg) = i.code(&["plan"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("step 2") && msg.contains("Runtime/appsettings.json does not exist"),
        "{msg}"
    );
    assert!(
        msg.contains("step 3") && msg.contains("Nope does not exist"),
        "{msg}"
    );
    assert!(
        !i.journal_dir().exists(),
        "`plan` must not even create the journal"
    );
    let (code, msg) = i.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_same(&start, &i.snapshot(), "after refused run");
    assert!(
        !i.journal_dir().exists(),
        "a refused run leaves no journal behind"
    );
}

#[test]
fn plan_json_is_machine_readable() {
    let i = Install::new(SampleSize::default());
    let out = i.ok(&["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plan"]["steps"].as_array().unwrap().len(), 10);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn a_second_process_is_refused_naming_the_holder() {
    let i = Install::new(SampleSize::default());
    usercube_upgrade::testing::durable_fs::create_private_dir(&i.journal_dir()).unwrap();
    let lock = usercube_upgrade::testing::engine::RootLock::acquire(&i.journal_dir()).unwrap();
    let start = i.snapshot();
    let (code, msg) = i.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains(&format!("process {}", std::process::id())),
        "{msg}"
    );
    let (code, status) = i.code(&["status"]);
    assert_eq!(code, Some(0));
    assert!(status.contains("busy"), "{status}");
    drop(lock);
    assert_same(&start, &i.snapshot(), "refused run");
    i.ok(&["run"]);
}

#[test]
fn rollback_keeps_aside_what_changed_after_the_run_and_refuses_only_what_it_cannot_restore() {
    let without_kept = |mut m: usercube_upgrade::testing::manifest::Manifest| {
        m.entries.retain(|e| !e.rel.starts_with("KeptAside-"));
        m
    };
    // A file the run extracted, edited since: kept aside, the rest undone, nothing lost.
    let i = Install::new(SampleSize::default());
    let start = i.snapshot();
    i.ok(&["run"]);
    let dll = i.root.join("Runtime/Usercube.Module0001.dll");
    std::fs::write(&dll, "edited after the upgrade").unwrap();
    i.ok(&["rollback"]);
    assert_same(&start, &without_kept(i.snapshot()), "after rollback");
    let status = common::text(&i.ok(&["status"]));
    assert!(
        status.contains("kept aside:")
            && common::mentions(&status, "Runtime/Usercube.Module0001.dll -> KeptAside-"),
        "{status}"
    );
    let kept: Vec<_> = std::fs::read_dir(&i.root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("KeptAside-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read(kept[0].join("Runtime/Usercube.Module0001.dll")).unwrap(),
        b"edited after the upgrade"
    );

    // A file the run moved (Runtime -> RuntimeOld), edited since: its content before the run
    // is gone, so the rollback refuses, changing nothing, until `--force`.
    let i = Install::new(SampleSize::default());
    let start = i.snapshot();
    i.ok(&["run"]);
    std::fs::write(i.root.join("RuntimeOld/Usercube.Module0001.dll"), "edited").unwrap();
    let before = i.snapshot();
    let (code, msg) = i.code(&["rollback"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        common::mentions(&msg, "RuntimeOld/Usercube.Module0001.dll")
            && msg.contains("cannot be restored"),
        "{msg}"
    );
    assert!(
        msg.contains("--force") && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert_same(&before, &i.snapshot(), "refused rollback");
    i.ok(&["rollback", "--force"]);
    // Everything back but that file, whose edited content is kept aside.
    let mut expected = start;
    expected
        .entries
        .retain(|e| e.rel != "Runtime/Usercube.Module0001.dll");
    assert_same(
        &expected,
        &without_kept(i.snapshot()),
        "after forced rollback",
    );
}

fn corrupt_then_expect_refusal(edit: impl FnOnce(Vec<u8>) -> Vec<u8>, seq: u64, expect: &str) {
    let i = Install::new(SampleSize::default());
    i.ok(&["run", "--no-auto-rollback"]);
    let before = i.snapshot();
    usercube_upgrade::testing::journal::tamper_raw(&i.journal_dir(), seq, edit).unwrap();
    let (code, msg) = i.code(&["journal", "verify"]);
    assert_eq!(code, Some(3), "{msg}");
    assert!(
        msg.contains(&format!("record {seq}")) && msg.contains(expect),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("last good record is {}", seq - 1)),
        "{msg}"
    );
    for cmd in ["resume", "rollback", "status", "finalize"] {
        let (code, msg) = i.code(&[cmd]);
        assert_eq!(code, Some(3), "{cmd}: {msg}");
    }
    assert_same(&before, &i.snapshot(), "nothing acts past a corrupt record");
}

#[test]
fn corrupted_record_is_refused_with_its_sequence_number() {
    corrupt_then_expect_refusal(
        |mut v| {
            let n = v.len() / 2;
            v[n] ^= 0xff;
            v
        },
        5,
        "SHA-256",
    );
}

#[test]
fn torn_last_record_is_refused() {
    let i = Install::new(SampleSize::default());
    i.ok(&["run"]);
    let last = usercube_upgrade::testing::journal::Journal::open(&i.journal_dir())
        .unwrap()
        .last_seq();
    drop(i);
    corrupt_then_expect_refusal(|v| v[..v.len() - 7].to_vec(), last, "torn");
}

#[test]
fn broken_chain_is_refused() {
    corrupt_then_expect_refusal(
        |v| {
            let mut body = usercube_upgrade::testing::journal::record::decode(&v)
                .unwrap()
                .body;
            body.prev_hash[0] ^= 1;
            body.encode().0
        },
        4,
        "chain",
    );
}

#[test]
fn damaged_store_file_is_rebuilt_from_the_record_log() {
    // sled recovers from damage in its log by dropping everything after it (or cannot read
    // its store at all): the record log tells, and the store is rebuilt from it.
    let i = Install::new(SampleSize::default());
    let start = i.snapshot();
    i.ok(&["run"]);
    let db = i.journal_dir().join("store/db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[3000..3100] {
        *b ^= 0x55;
    }
    std::fs::write(&db, bytes).unwrap();
    let (code, msg) = i.code(&["journal", "verify"]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(msg.contains("store rebuilt from the record log"), "{msg}");
    let repairs = std::fs::read_to_string(i.journal_dir().join("repairs")).unwrap();
    assert!(repairs.contains("store rebuilt"), "{repairs}");
    i.ok(&["rollback"]);
    assert_same(&start, &i.snapshot(), "rollback after the repair");
}

#[test]
fn damaged_log_is_refused_and_salvage_names_the_steps_done() {
    let i = Install::new(SampleSize::default());
    i.ok(&["run", "--no-auto-rollback"]);
    let before = i.snapshot();
    // Damage record 5 of the log below later whole entries (the store still holds it).
    usercube_upgrade::testing::journal::tamper_raw(&i.journal_dir(), 5, |mut v| {
        v[12] ^= 0xff;
        v
    })
    .unwrap();
    let (code, msg) = i.code(&["rollback"]);
    assert_eq!(code, Some(3), "{msg}");
    assert!(msg.contains("journal salvage"), "{msg}");
    let out = i.root.parent().unwrap().join("salvage.json");
    let (code, msg) = i.code(&["journal", "salvage", "--output", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(msg.contains("steps known done: [1, 2"), "{msg}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let records = v["records"].as_array().unwrap();
    let total = records.len();
    assert!(records.iter().all(|r| r["chained"] == true), "{v}");
    assert_eq!(
        records.iter().filter(|r| r["found_in"] == "store").count(),
        1,
        "record 5 comes from the store: {v}"
    );
    assert_eq!(
        records.last().unwrap()["seq"].as_u64().unwrap() as usize,
        total
    );
    let done = v["runs"][0]["steps_done"].as_array().unwrap();
    assert_eq!(done.len(), 10, "{v}");
    assert!(done[0]["description"].as_str().is_some(), "{v}");
    assert_same(&before, &i.snapshot(), "nothing acts on a damaged log");
}

#[test]
fn progress_bar_only_on_a_terminal() {
    // `script` (util-linux) gives the binary a pseudo-terminal.
    let i = Install::new(SampleSize::default());
    let cmd = format!(
        "{} run --root {} --plan {}",
        env!("CARGO_BIN_EXE_usercube-upgrade"),
        i.root.display(),
        i.plan_file.display()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("the `script` command (util-linux) is needed for this test");
    let tty_out = common::text(&tty);
    assert!(tty.status.success(), "{tty_out}");
    assert!(
        tty_out.contains("B/s"),
        "no progress bar on a terminal:\n{tty_out}"
    );
    // The extraction's size is known: total, percentage and time left.
    assert!(
        tty_out.contains("%") && tty_out.contains("ETA"),
        "no total, percentage or ETA:\n{tty_out}"
    );
    let i = Install::new(SampleSize::default());
    let plain = common::bin()
        .args(["run", "--root"])
        .arg(&i.root)
        .arg("--plan")
        .arg(&i.plan_file)
        .output()
        .unwrap();
    let plain_out = common::text(&plain);
    assert!(plain.status.success(), "{plain_out}");
    assert!(plain_out.contains("[2/10] extract"), "{plain_out}");
    assert!(
        !plain_out.contains("B/s"),
        "progress drawn into a pipe:\n{plain_out}"
    );
}

#[test]
fn plan_while_a_run_holds_the_lock_is_refused_naming_the_holder() {
    let i = Install::new(SampleSize::default());
    usercube_upgrade::testing::durable_fs::create_private_dir(&i.journal_dir()).unwrap();
    let lock = usercube_upgrade::testing::engine::RootLock::acquire(&i.journal_dir()).unwrap();
    let (code, msg) = i.code(&["plan"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains(&format!("process {}", std::process::id())),
        "{msg}"
    );
    drop(lock);
    i.ok(&["plan"]);
}

/// Issue 12, point 1: `plan` and `run` without --mode and --plan are refused (exit 2) naming
/// both options; nothing changes and no journal appears. The sample plan is reachable only
/// when asked for by name.
#[test]
fn plan_and_run_need_mode_or_plan() {
    let i = Install::new(SampleSize::default());
    let start = i.snapshot();
    for verb in ["plan", "run"] {
        let out = common::bin()
            .args([verb, "--root"])
            .arg(&i.root)
            .output()
            .unwrap();
        let msg = common::text(&out);
        assert_eq!(out.status.code(), Some(2), "{verb}: {msg}");
        assert!(
            msg.contains("--mode") && msg.contains("--plan") && msg.contains("--runtime-zip"),
            "{verb}: {msg}"
        );
        assert!(msg.contains("nothing was changed"), "{verb}: {msg}");
        assert!(!msg.contains("sample"), "{verb}: {msg}");
        assert_same(&start, &i.snapshot(), verb);
        assert!(!i.journal_dir().exists(), "{verb} left a journal");
    }
    let out = common::bin()
        .args(["plan", "--sample-plan", "--root"])
        .arg(&i.root)
        .output()
        .unwrap();
    let msg = common::text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(msg.contains("sample upgrade"), "{msg}");
}

/// Issue 12, point 10: every flag and argument of every subcommand has a help text (the
/// certificate flags are described by their own struct).
#[test]
fn every_flag_has_help_text() {
    let subcommands: &[&[&str]] = &[
        &["plan"],
        &["run"],
        &["resume"],
        &["rollback"],
        &["status"],
        &["finalize"],
        &["upgrade-files"],
        &["prepare-upgrade-appsettings"],
        &["upgrade-appsettings"],
        &["upgrade-configuration-version"],
        &["journal", "show"],
        &["journal", "verify"],
        &["journal", "export"],
        &["journal", "salvage"],
        &["demo"],
        &["encrypt-file"],
        &["decrypt-file"],
    ];
    // An option or argument line of clap's short help: `  -q, --quiet  Text`,
    // `      --root <DIR>  Text`, `  [DIR]  Text`.
    let arg_line = regex_lite_arg();
    let mut missing = Vec::new();
    let mut checked = 0;
    for sub in subcommands {
        let out = common::bin().args(*sub).arg("-h").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{sub:?}: {help}");
        let lines: Vec<&str> = help.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let Some((flag, mut text)) = arg_line(line) else {
                continue;
            };
            // Where help is wide, clap puts it on the next, further indented line.
            if text.is_empty() {
                let indent = |l: &str| l.len() - l.trim_start().len();
                if let Some(next) = lines.get(n + 1) {
                    if indent(next) > indent(line) && arg_line(next).is_none() {
                        text = next.trim().to_string();
                    }
                }
            }
            checked += 1;
            if text.is_empty() {
                missing.push(format!("{} {flag}", sub.join(" ")));
            }
        }
    }
    assert!(
        checked > 60,
        "only {checked} flags found: the parser missed"
    );
    assert!(missing.is_empty(), "flags without help: {missing:?}");
}

/// Issue 12, point 10: the whole clap tree, walked: every subcommand at every depth has an
/// about text, and every argument it shows (options, flags, positionals, the global ones)
/// a help text. Hidden arguments are not shown and not checked.
#[test]
fn every_argument_in_the_clap_tree_has_help() {
    use clap::CommandFactory;

    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>, checked: &mut usize) {
        if cmd
            .get_about()
            .is_none_or(|a| a.to_string().trim().is_empty())
        {
            missing.push(format!("`{path}` (no about text)"));
        }
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            *checked += 1;
            let text = arg
                .get_help()
                .or(arg.get_long_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            if text.trim().is_empty() {
                let name = arg
                    .get_long()
                    .map(|l| format!("--{l}"))
                    .unwrap_or_else(|| format!("<{}>", arg.get_id()));
                missing.push(format!("`{path}` {name}"));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &format!("{path} {}", sub.get_name()), missing, checked);
        }
    }

    let mut cmd = usercube_upgrade::testing::cli::Args::command();
    // Built: global arguments propagated to every subcommand, help flags generated.
    cmd.build();
    let (mut missing, mut checked) = (Vec::new(), 0);
    walk(&cmd, "usercube-upgrade", &mut missing, &mut checked);
    assert!(checked > 150, "only {checked} arguments walked");
    assert!(missing.is_empty(), "without help: {missing:#?}");
}

/// Splits a help line into the flag (or argument) and its text; None for other lines.
fn regex_lite_arg() -> impl Fn(&str) -> Option<(String, String)> {
    |line: &str| {
        let t = line.trim_start();
        if line.len() == t.len()
            || !(t.starts_with('-') || t.starts_with('[') || t.starts_with('<'))
        {
            return None;
        }
        // The flag ends at two spaces (clap's column gap) or at the end of the line.
        let (flag, text) = match t.find("  ") {
            Some(i) => (&t[..i], t[i..].trim()),
            None => (t, ""),
        };
        let name = flag
            .split([',', ' '])
            .map(str::trim)
            .find(|w| w.starts_with("--") || w.starts_with('[') || w.starts_with('<'))
            .unwrap_or(flag);
        Some((name.to_string(), text.to_string()))
    }
}

/// Issue 12, point 10: an unreachable database fails every database step's check with
/// the same message: the refusal says it once, naming the steps.
#[test]
fn one_database_problem_is_reported_once() {
    let conn = "sqlite:NoSuchFolder/usercube.sqlite".to_string();
    let steps = ["UJ_TaskEntityTypes", "UJ_TaskResourceTypes", "UJ_JobSteps"]
        .iter()
        .map(|t| {
            (
                None,
                None,
                StepSpec::DeleteRows {
                    connection: conn.clone(),
                    table: t.to_string(),
                },
            )
        })
        .collect();
    let i = Install::with_plan(SampleSize::default(), &Plan::new("db", steps));
    let (code, msg) = i.code(&["plan"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("steps 1, 2, 3"), "{msg}");
    assert_eq!(msg.matches("cannot use the database").count(), 1, "{msg}");
}

/// Issue 12, point 10: during a rollback the progress bar says so. Only an undo that moves
/// bytes draws one: a tree moved across filesystems (here to /dev/shm) and moved back.
#[test]
fn progress_bar_is_labelled_during_rollback() {
    let shm = std::path::Path::new("/dev/shm");
    let probe = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if !shm.is_dir() || usercube_upgrade::testing::durable_fs::same_filesystem(probe.path(), shm) {
        eprintln!("note: no /dev/shm on another filesystem: the rollback label test is skipped");
        return;
    }
    let away = tempfile::tempdir_in(shm).unwrap();
    let plan = Plan::new(
        "across filesystems",
        vec![(
            None,
            None,
            StepSpec::MoveTree {
                from: "Temp/Collect".into(),
                to: away.path().join("Collect"),
            },
        )],
    );
    let i = Install::with_plan(SampleSize::default(), &plan);
    let start = i.snapshot();
    let script = |verb: &str| {
        let cmd = format!(
            "{} {verb} --root {}{}",
            env!("CARGO_BIN_EXE_usercube-upgrade"),
            i.root.display(),
            if verb == "run" {
                format!(" --plan {}", i.plan_file.display())
            } else {
                String::new()
            }
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .output()
            .expect("the `script` command (util-linux) is needed for this test");
        let text = common::text(&out);
        assert!(out.status.success(), "{verb}: {text}");
        text
    };
    script("run");
    assert!(away.path().join("Collect").is_dir());
    let rolled = script("rollback");
    assert!(
        rolled.contains("rolling back [1] move Temp/Collect"),
        "no rollback label on the bar:\n{rolled}"
    );
    assert_same(&start, &i.snapshot(), "after rollback");
}

/// Issue 12, points 7 and 10: a relative `--journal DIR` is taken from the current folder
/// and shown absolute wherever it is printed: the commands a refusal names, `status` (text
/// and JSON), the journal's own messages.
#[test]
fn a_relative_journal_folder_is_shown_absolute() {
    let i = Install::new(SampleSize::default());
    let here = dunce::canonicalize(i._tmp.path()).unwrap();
    let journal = here.join("audit");
    let run = |args: &[&str]| {
        let out = common::bin()
            .current_dir(&here)
            .args(args)
            .arg("--root")
            .arg(&i.root)
            .args(["--journal", "audit"])
            .output()
            .unwrap();
        (out.status.code(), common::text(&out))
    };
    let plan = i.plan_file.display().to_string();
    let (code, out) = run(&["run", "--plan", &plan]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        journal.join("lock").exists(),
        "journal not in the current folder"
    );
    // A second run is refused, naming the commands that go on.
    let (code, refused) = run(&["run", "--plan", &plan]);
    assert_eq!(code, Some(2), "{refused}");
    assert!(
        refused.contains(&format!("--journal {}", journal.display())),
        "{refused}"
    );
    let (code, status) = run(&["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(
        status.contains(&format!("journal:      {}", journal.display())),
        "{status}"
    );
    let (code, json) = run(&["status", "--json"]);
    assert_eq!(code, Some(0), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["journal"], journal.display().to_string(), "{json}");
    for text in [&out, &refused, &status, &json] {
        assert!(
            !text.contains("--journal audit") && !text.contains(" audit ("),
            "a relative journal path shown:\n{text}"
        );
    }
    let (code, out) = run(&["rollback"]);
    assert_eq!(code, Some(0), "{out}");
}

/// On an installation where no upgrade has run, `status` and `journal export` create
/// nothing (no journal folder): status says so, the export is an audit with no runs (exit
/// 0), and `--run` there is refused. Before, `journal export` created `.usercube-upgrade`.
#[test]
fn status_and_export_create_nothing_where_no_upgrade_ran() {
    let i = Install::new(SampleSize::default());
    let start = i.snapshot();
    let journal = i.journal_dir();
    let out = i.ok(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no upgrade has run on this installation"),
        "{}",
        common::text(&out)
    );
    assert!(!journal.exists(), "status created {}", journal.display());
    let out = i.ok(&["journal", "export", "--json"]);
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(audit["records"], 0, "{audit}");
    assert_eq!(audit["runs"], serde_json::json!([]), "{audit}");
    assert!(!journal.exists(), "export created {}", journal.display());
    // Without --quiet, a note on stderr says why the audit is empty; stdout stays JSON.
    let out = common::bin()
        .args(["journal", "export", "--root"])
        .arg(&i.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no upgrade has run on this installation"),
        "{}",
        common::text(&out)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
    let (code, msg) = i.code(&["journal", "export", "--run", "last"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("--run last: no upgrade has run on this installation"),
        "{msg}"
    );
    assert!(!journal.exists(), "a refused export created the journal");
    assert_same(&start, &i.snapshot(), "status and export change nothing");
}

/// `journal export --run ID|last`: one run only, named by its id, a prefix naming it
/// alone, or `last`; an unknown or ambiguous id is refused (exit 2) naming the runs.
#[test]
fn journal_export_selects_one_run() {
    let i = Install::new(SampleSize::default());
    let ids = |i: &Install| -> Vec<String> {
        let out = i.ok(&["journal", "export"]);
        let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        audit["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    // Runs until two ids share their first character (at most 17, by pigeonhole), for an
    // ambiguous prefix.
    let mut shared = None;
    for _ in 0..17 {
        i.ok(&["run"]);
        i.ok(&["rollback"]);
        let all = ids(&i);
        let last = all.last().unwrap();
        if all[..all.len() - 1].iter().any(|r| r[..1] == last[..1]) {
            shared = Some(last[..1].to_string());
            break;
        }
    }
    let shared = shared.expect("17 ids share a first character");
    let all = ids(&i);
    assert!(all.len() >= 2);
    let one = |args: &[&str]| -> Vec<String> {
        let out = i.ok(args);
        let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        audit["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        one(&["journal", "export", "--run", "last"]),
        vec![all.last().unwrap().clone()]
    );
    assert_eq!(
        one(&["journal", "export", "--run", &all[0]]),
        vec![all[0].clone()]
    );
    // A prefix naming one run only (upper case as well).
    let unique = (1..=all[0].len())
        .map(|n| &all[0][..n])
        .find(|p| all.iter().filter(|r| r.starts_with(p)).count() == 1)
        .unwrap();
    assert_eq!(
        one(&["journal", "export", "--run", &unique.to_uppercase()]),
        vec![all[0].clone()]
    );
    let (code, msg) = i.code(&["journal", "export", "--run", &shared]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains(&format!("--run {shared}: ambiguous")), "{msg}");
    let unknown = (0..16)
        .map(|d| format!("{d:x}"))
        .flat_map(|a| (0..16).map(move |d| format!("{a}{d:x}")))
        .find(|p| !all.iter().any(|r| r.starts_with(p.as_str())))
        .unwrap();
    let (code, msg) = i.code(&["journal", "export", "--run", &unknown]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "--run {unknown}: no run of the journal has this id; its runs: {}",
            all.join(", ")
        )),
        "{msg}"
    );
    let (code, msg) = i.code(&["journal", "export", "--run", "latest"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("not a run id"), "{msg}");
}
