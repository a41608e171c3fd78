//! A disk that fills up during a run (another process writes until it is full): `rollback`
//! still completes and gives the starting tree. Needs a small filesystem of its own: a tmpfs
//! mounted for the test (Linux, as root); elsewhere the test says so and checks nothing else.

mod common;

use std::path::Path;
use std::process::Command;

use usercube_upgrade::testing::plan::{Plan, ServiceAction, StepSpec};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(at.to_path_buf()))
}

#[test]
fn a_disk_filled_during_the_run_still_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let Some(_mount) = mount_tmpfs(&disk, "24m") else {
        eprintln!("cannot mount a tmpfs here (not root, or not Linux): full-disk test not run");
        return;
    };
    let root = disk.join("root");
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/big"), vec![7u8; 2 << 20]).unwrap();
    let filler = disk.join("filler");
    let plan = Plan::new(
        "fill the disk",
        vec![
            (
                None,
                None,
                StepSpec::Copy {
                    from: "data/big".into(),
                    to: "data/big2".into(),
                },
            ),
            (
                None,
                None,
                StepSpec::Service {
                    action: ServiceAction::Stop,
                    // Another process fills the disk.
                    command: format!("head -c 100M /dev/zero > {} ; true", filler.display()),
                    undo: Some("true".into()),
                },
            ),
            (
                None,
                None,
                StepSpec::Copy {
                    from: "data/big".into(),
                    to: "data/big3".into(),
                },
            ),
        ],
    );
    let plan_file = tmp.path().join("plan.json");
    std::fs::write(&plan_file, serde_json::to_string(&plan).unwrap()).unwrap();
    let start = common::snapshot(&root);
    let run = |args: &[&str]| {
        let out = common::bin()
            .args(args)
            .arg("--root")
            .arg(&root)
            .arg("--quiet")
            .output()
            .unwrap();
        (out.status.code(), common::text(&out))
    };
    let (code, msg) = run(&["run", "--plan", plan_file.to_str().unwrap()]);
    assert_ne!(
        code,
        Some(0),
        "the run cannot complete on a full disk: {msg}"
    );
    // The disk is still full (the filler stays): rollback must complete anyway.
    let (code, msg) = run(&["rollback"]);
    assert_eq!(code, Some(0), "rollback on a full disk: {msg}");
    common::assert_same(&start, &common::snapshot(&root), "after rollback");
    let (code, msg) = run(&["journal", "verify"]);
    assert_eq!(code, Some(0), "{msg}");
}
