//! Rollback after the new version ran (issue 22), with the real binary on the demo
//! installation: the configuration deploy refills the table the run emptied, the server
//! writes logs under the new `Runtime`, the agent recreates `Temp/Collect` and writes a new
//! order into the moved `Work/ProvisioningOrders`, someone edits files under `Conf`. Plain
//! `rollback` refuses and changes nothing; `--dry-run` lists every change; `--force` brings
//! back every path of the starting state byte for byte and the database row for row, and
//! keeps every byte written after the run under the root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same, bin, snapshot, text};
use usercube_upgrade::testing::manifest::Manifest;
use usercube_upgrade::testing::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 40,
    bytes: 40 << 10,
    rows: 10,
};

fn cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.args(args).arg("--root").arg(root);
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

/// The tree without the kept-aside folders (compared on their own).
fn tree(root: &Path) -> Manifest {
    let mut m = snapshot(root);
    m.entries.retain(|e| !e.rel.starts_with("KeptAside-"));
    m
}

/// The one kept-aside folder under the root.
fn kept_aside(root: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("KeptAside-")
        })
        .collect();
    assert_eq!(found.len(), 1, "one kept-aside folder: {found:?}");
    found[0].clone()
}

fn db(root: &Path) -> PathBuf {
    root.join(demo::DATABASE)
}

/// What the new version does in the hours after the run.
fn new_version_runs(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let written: Vec<(&'static str, Vec<u8>)> = vec![
        (
            "Runtime/Logs/server-20261208.log",
            b"server started\n".to_vec(),
        ),
        (
            "Temp/Collect/AD_Paris/export-1.csv",
            b"new export\n".to_vec(),
        ),
        (
            "Work/ProvisioningOrders/order-7.json",
            b"{\"order\":7}\n".to_vec(),
        ),
    ];
    for (rel, bytes) in &written {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    // Edited by hand: a file the run rewrote, and one it copied.
    let mut edited = Vec::new();
    for rel in ["Conf/Jobs.xml", "Conf/Settings.xml"] {
        let p = root.join(rel);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(b"<!-- edited after the upgrade -->\n");
        std::fs::write(&p, &bytes).unwrap();
        edited.push((rel, bytes));
    }
    // The configuration deploy refills a table the run emptied.
    rusqlite::Connection::open(db(root))
        .unwrap()
        .execute_batch(
            "INSERT INTO UJ_JobSteps (Id, Job_Id, Name) VALUES (9001, 1, 'deployed 1'), (9002, 1, 'deployed 2');",
        )
        .unwrap();
    written.into_iter().chain(edited).collect()
}

#[test]
fn after_the_new_version_ran_rollback_refuses_then_force_restores_and_keeps_everything() {
    let (_tmp, root) = common::demo_install(SIZE);
    let start = tree(&root);
    let rows_start = common::db_dump(&db(&root));
    ok(&root, &["run"]);
    let after_run_files = new_version_runs(&root);
    let aftermath = tree(&root);
    let rows_aftermath = common::db_dump(&db(&root));

    // Plain rollback: refused, names the table, tells no remote-agent story, changes nothing.
    let (c, msg) = code(&root, &["rollback"]);
    assert_eq!(c, Some(2), "{msg}");
    for expect in [
        "UJ_JobSteps",
        "0 rows",
        "2 rows",
        "Nothing was changed",
        "--force",
    ] {
        assert!(msg.contains(expect), "{expect:?} in:\n{msg}");
    }
    assert!(
        !msg.contains("agent's upgrade"),
        "no remote agent here:\n{msg}"
    );
    assert_same(&aftermath, &tree(&root), "refused rollback");
    assert_eq!(
        rows_aftermath,
        common::db_dump(&db(&root)),
        "refused rollback: rows"
    );
    assert!(
        ok(&root, &["status"]).contains("committed"),
        "still committed"
    );

    // The dry run lists every change made after the run, and what --force does.
    let (c, plan) = code(&root, &["rollback", "--dry-run"]);
    assert_eq!(c, Some(2), "would be refused without --force:\n{plan}");
    let shown = plan.replace('\\', "/");
    for expect in [
        "Runtime/Logs (new, folder, 1 files, 15 bytes)",
        "Temp/Collect (new, folder, 1 files, 11 bytes)",
        "Work/ProvisioningOrders/order-7.json (new, 12 bytes)",
        "Conf/Jobs.xml (changed",
        "Conf/Settings.xml (changed",
        "table UJ_JobSteps: 0 rows",
        "2 rows",
        "What `--force` would discard",
        "keeps it as it is now in a verified backup",
    ] {
        assert!(shown.contains(expect), "{expect:?} in:\n{plan}");
    }
    assert_same(&aftermath, &tree(&root), "dry run");
    let (c, json) = code(&root, &["rollback", "--dry-run", "--json"]);
    assert_eq!(c, Some(2));
    let json = json
        .lines()
        .take_while(|l| !l.starts_with("error:"))
        .collect::<Vec<_>>()
        .join("\n");
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}:\n{json}"));
    assert_eq!(v["schema"], 1);
    assert_eq!(
        v["aftermath"]["foreign"].as_array().unwrap().len(),
        5,
        "{json}"
    );
    assert_eq!(v["databases"][0]["backup_step"], 1, "{json}");
    assert!(!json.contains("password"), "no secret in the plan");

    // Forced: the start back exactly, every byte written after the run kept under the root.
    let out = ok(&root, &["rollback", "--force"]);
    assert!(out.contains("kept aside in KeptAside-"), "{out}");
    assert_same(&start, &tree(&root), "forced rollback");
    assert_eq!(
        rows_start,
        common::db_dump(&db(&root)),
        "rows as before the run"
    );
    let kept = kept_aside(&root);
    for (rel, bytes) in &after_run_files {
        let p = kept.join(rel);
        assert_eq!(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            bytes,
            "{rel} kept byte for byte"
        );
    }
    // The database as the new version left it, kept in a verified backup under the root.
    let backups: Vec<PathBuf> = std::fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .collect();
    assert_eq!(backups.len(), 1, "one database kept: {backups:?}\n{out}");
    assert_eq!(
        common::db_dump(&backups[0]),
        rows_aftermath,
        "the after-run database"
    );
    assert!(ok(&root, &["status"]).contains("rolled-back"));
}
