//! Issue 12 point 10 and issue 15 point 3: progress that counts files as well as bytes,
//! and a re-encryption that never looks hung.
//!
//! - what the steps feed the bar (files, bytes, phases), checked through the step API with
//!   recording callbacks: no terminal, no timing;
//! - the bar itself through the real binary on a pseudo-terminal (`script`): the files done
//!   of their total beside the bytes, the checking bar of the re-encryption's intent, the
//!   rollback's label; and nothing of it in a pipe.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use usercube_upgrade::testing::crypto::{CertPassword, CertificateSource};
use usercube_upgrade::testing::plan::StepSpec;
use usercube_upgrade::testing::runbook::demo::{self, DemoSize};
use usercube_upgrade::testing::steps::{self, PlanView, StepContext, StepJournal, Work};

/// A small demo installation with `encrypted` extra legacy-encrypted exports.
fn demo_with(encrypted: usize) -> (tempfile::TempDir, PathBuf) {
    let (tmp, root) = common::demo_install(DemoSize {
        files: 10,
        bytes: 64 << 10,
        rows: 10,
    });
    demo::add_encrypted_files(&root, encrypted).unwrap();
    (tmp, root)
}

/// What a step reported through its context.
#[derive(Default)]
struct Fed {
    bytes: AtomicU64,
    files: AtomicU64,
    phases: Mutex<Vec<String>>,
}

impl Fed {
    fn take(&self) -> (u64, u64, Vec<String>) {
        (
            self.bytes.swap(0, Relaxed),
            self.files.swap(0, Relaxed),
            std::mem::take(&mut *self.phases.lock().unwrap()),
        )
    }
}

/// StepData records kept in memory.
#[derive(Default)]
struct MemoryJournal(Mutex<Vec<Vec<u8>>>);

impl StepJournal for MemoryJournal {
    fn save(&self, payload: Vec<u8>) -> steps::Result<()> {
        self.0.lock().unwrap().push(payload);
        Ok(())
    }
    fn sync(&self) -> steps::Result<()> {
        Ok(())
    }
    fn saved(&self, f: &mut dyn FnMut(&[u8]) -> steps::Result<()>) -> steps::Result<()> {
        for p in self.0.lock().unwrap().iter() {
            f(p)?;
        }
        Ok(())
    }
}

/// The re-encryption step reports every file it checks (intent), every file it stages with
/// all of its bytes (apply), a phase for each stretch that moves no byte (the small files'
/// sync, the renames in groups), and every file it restores (undo). Its totals (`work`)
/// are what it then reports.
#[test]
fn reencryption_feeds_files_bytes_and_phases() {
    let (tmp, root) = demo_with(24);
    let spec = StepSpec::ReencryptFiles {
        folders: vec!["Temp".into(), "Work".into()],
        files: vec![],
        certificate: CertificateSource::Pfx {
            path: root.join(demo::DEMO_CERT),
            thumbprint: None,
        },
    };
    let password = CertPassword::new(demo::DEMO_CERT_PASSWORD.into());
    let step = steps::step_for(&spec, &root, Some(&password));
    let total = step.work(&PlanView::new(&root));
    assert!(total.files >= 24, "{total:?}");
    assert!(total.bytes > total.files * 4096, "{total:?}");

    let fed = Fed::default();
    let on_bytes = |n| {
        fed.bytes.fetch_add(n, Relaxed);
    };
    let on_files = |n| {
        fed.files.fetch_add(n, Relaxed);
    };
    let on_phase = |p: &str| fed.phases.lock().unwrap().push(p.to_string());
    let journal = MemoryJournal::default();
    let deferred = usercube_upgrade::testing::durable_fs::DeferredDirs::default();
    let ctx = StepContext {
        trash: tmp.path().join("trash"),
        journal_dir: &tmp.path().join("journal"),
        on_bytes: &on_bytes,
        on_files: &on_files,
        on_phase: &on_phase,
        journal: &journal,
        deferred: &deferred,
    };

    let intent = step.intent(&ctx).unwrap();
    assert_eq!(intent.touches.len() as u64, total.files);
    let (bytes, files, _) = fed.take();
    assert_eq!(
        (bytes, files),
        (0, total.files),
        "the intent checks each file"
    );

    step.apply(&ctx, &intent).unwrap();
    deferred.barrier().unwrap();
    let (bytes, files, phases) = fed.take();
    assert_eq!(
        Work { bytes, files },
        total,
        "every byte and file the bar was told to expect"
    );
    let n = total.files;
    for want in [
        format!("syncing {n} files"),
        format!("replacing files 0/{n}"),
    ] {
        assert!(phases.contains(&want), "no phase {want:?} in {phases:?}");
    }
    assert_eq!(
        step.work(&PlanView::new(&root)),
        Work::default(),
        "nothing left to re-encrypt"
    );

    assert_eq!(step.undo_work(&intent), Work { bytes: 0, files: n });
    step.undo(&ctx, &intent, None).unwrap();
    let (_, files, phases) = fed.take();
    assert_eq!(files, n, "each original restored");
    assert_eq!(phases, ["restoring the originals"]);
    assert_eq!(
        step.work(&PlanView::new(&root)),
        total,
        "back to legacy files"
    );
}

/// A copied tree reports its files and bytes, totals known beforehand (`work` on the tree
/// as the step finds it).
#[test]
fn a_copy_feeds_its_files_against_the_total() {
    let (tmp, root) = demo_with(3);
    let spec = StepSpec::Copy {
        from: "Temp".into(),
        to: "TempCopy".into(),
    };
    let step = steps::step_for(&spec, &root, None);
    let total = step.work(&PlanView::new(&root));
    assert!(total.files >= 3 && total.bytes > 0, "{total:?}");
    let fed = Fed::default();
    let on_bytes = |n| {
        fed.bytes.fetch_add(n, Relaxed);
    };
    let on_files = |n| {
        fed.files.fetch_add(n, Relaxed);
    };
    let on_phase = |p: &str| fed.phases.lock().unwrap().push(p.to_string());
    let journal = MemoryJournal::default();
    let deferred = usercube_upgrade::testing::durable_fs::DeferredDirs::default();
    let ctx = StepContext {
        trash: tmp.path().join("trash"),
        journal_dir: &tmp.path().join("journal"),
        on_bytes: &on_bytes,
        on_files: &on_files,
        on_phase: &on_phase,
        journal: &journal,
        deferred: &deferred,
    };
    let intent = step.intent(&ctx).unwrap();
    step.apply(&ctx, &intent).unwrap();
    let (bytes, files, phases) = fed.take();
    assert_eq!(Work { bytes, files }, total);
    assert_eq!(phases, ["syncing the copy"]);
}

/// The legacy-encrypted files the integrated plan of `root` re-encrypts, as `plan` says.
fn legacy_files_in_plan(root: &Path, args: &[String]) -> u64 {
    let out = common::bin()
        .arg("plan")
        .args(args)
        .env("USERCUBE_UPGRADE_CERT_PASSWORD", demo::DEMO_CERT_PASSWORD)
        .output()
        .unwrap();
    let text = common::text(&out);
    assert!(out.status.success(), "plan of {}: {text}", root.display());
    let (before, _) = text
        .split_once(" legacy-encrypted agent files found at plan time")
        .unwrap_or_else(|| panic!("no re-encryption note in the plan:\n{text}"));
    before
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `command` on a pseudo-terminal 250 columns wide (the bar's text is not cut short).
fn on_a_terminal(command: &str) -> (bool, String) {
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 50 cols 250; {command}"),
            "/dev/null",
        ])
        .env("USERCUBE_UPGRADE_CERT_PASSWORD", demo::DEMO_CERT_PASSWORD)
        .output()
        .expect("the `script` command (util-linux) is needed for this test");
    (out.status.success(), common::text(&out))
}

/// Through the real binary on a terminal: the re-encryption shows a bar of the files it
/// checks, then bytes with the files done of their total; the rollback shows the files it
/// restores under its label. In a pipe, none of it.
#[test]
fn the_bar_counts_files_on_a_terminal_and_nothing_in_a_pipe() {
    let (_tmp, root) = demo_with(60);
    let zip = root.join(demo::RUNTIME_ZIP);
    let args: Vec<String> = [
        "--root",
        &root.display().to_string(),
        "--mode",
        "integrated",
        "--runtime-zip",
        &zip.display().to_string(),
        "--runtime-path",
        &root.join("Runtime").display().to_string(),
        "--skip-database-upgrade",
        "--file-cert-file",
        &root.join(demo::DEMO_CERT).display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let n = legacy_files_in_plan(&root, &args);
    assert!(n >= 60, "{n} legacy files");
    let start = common::snapshot(&root);
    let bin = env!("CARGO_BIN_EXE_usercube-upgrade");

    let (ok, run) = on_a_terminal(&format!("{bin} run {}", args.join(" ")));
    assert!(ok, "{run}");
    for want in [
        // The intent's bar: files checked of their number, labelled.
        format!("/{n} files"),
        "checking: re-encrypt legacy-encrypted files".to_string(),
        // The apply's bar: bytes, then the files done of their total.
        format!("/{n} files  re-encrypt legacy-encrypted files"),
        "%".to_string(),
        "ETA".to_string(),
    ] {
        assert!(run.contains(&want), "no {want:?} on the terminal:\n{run}");
    }

    let (ok, rollback) = on_a_terminal(&format!("{bin} rollback --root {}", root.display()));
    assert!(ok, "{rollback}");
    for want in [
        format!("/{n} files"),
        "restoring the originals: rolling back [".to_string(),
    ] {
        assert!(
            rollback.contains(&want),
            "no {want:?} during the rollback:\n{rollback}"
        );
    }
    common::assert_same(&start, &common::snapshot(&root), "after rollback");

    // The same run into a pipe: step lines only.
    let out = common::bin()
        .arg("run")
        .args(&args)
        .env("USERCUBE_UPGRADE_CERT_PASSWORD", demo::DEMO_CERT_PASSWORD)
        .output()
        .unwrap();
    let piped = common::text(&out);
    assert!(out.status.success(), "{piped}");
    assert!(
        piped.contains("re-encrypt legacy-encrypted files"),
        "{piped}"
    );
    for drawn in [" files  ", "checking:", "B/s", "ETA"] {
        assert!(
            !piped.contains(drawn),
            "{drawn:?} drawn into a pipe:\n{piped}"
        );
    }
}
