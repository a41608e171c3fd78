//! The whole re-encryption step on many small files, through the real binary, against `cp -a`
//! of the same folder followed by `sync -f` (issue 5's "throughput against cp", at the scale of
//! a Temp folder full of exports, where the per-file costs dominate: one RSA private-key
//! operation (the legacy key's unwrap), a share of one `syncfs`, a journal record, a rename).
//!
//! `cargo build --release --bins --examples && target/release/examples/reencrypt_many [FILES]
//! [KIB] [DIR]` (defaults: 2000 files of 16 KiB under `target/`). Needs the `openssl` command
//! line. Prints the step's time, the copy's time and their ratio; timing is not a test.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use usercube_upgrade::testing::crypto::{
    encrypt_legacy, Certificate, CertificateSource, PASSWORD_ENV,
};
use usercube_upgrade::testing::durable_fs;
use usercube_upgrade::testing::plan::{Plan, StepSpec};

const PASSWORD: &str = "many";

#[path = "../benches/support/mod.rs"]
mod support;
use support::{make_pfx, Gen};

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let files: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let kib: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(16);
    let base = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("usercube-upgrade");
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release --bins --examples",
        bin.display()
    );
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let pfx = make_pfx(dir.path(), "a", "rsa:2048", PASSWORD);
    let cert = Certificate::from_pfx(&pfx, PASSWORD).unwrap();

    let root = dir.path().join("root");
    let temp = root.join("Temp");
    let mut gen = Gen::new(u64::MAX);
    let mut plain = vec![0u8; kib << 10];
    for i in 0..files {
        let folder = temp.join(format!("ExportOutput{}", i % 4));
        std::fs::create_dir_all(&folder).unwrap();
        gen.read_exact(&mut plain).unwrap();
        let mut out = Vec::with_capacity(plain.len() + 512);
        encrypt_legacy(&cert, plain.as_slice(), &mut out).unwrap();
        std::fs::write(folder.join(format!("AD_{i:06}.csv")), out).unwrap();
    }
    std::fs::create_dir_all(root.join("Work")).unwrap();
    let plan = Plan::new(
        "re-encryption of many files",
        vec![(
            Some("5"),
            None,
            StepSpec::ReencryptFiles {
                folders: vec!["Temp".into(), "Work".into()],
                files: vec![],
                certificate: CertificateSource::Pfx {
                    path: pfx.clone(),
                    thumbprint: Some(cert.thumbprint()),
                },
            },
        )],
    );
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, serde_json::to_string(&plan).unwrap()).unwrap();
    sh(&mut Command::new("sync"));

    let copy = dir.path().join("Temp.copy");
    let cp_sync = |copy: &Path| {
        let t = Instant::now();
        sh(Command::new("cp").arg("-a").arg(&temp).arg(copy));
        sh(Command::new("sync").arg("-f").arg(copy));
        let secs = t.elapsed().as_secs_f64();
        durable_fs::remove_path(copy).unwrap();
        secs
    };
    let cp_before = cp_sync(&copy);
    let t = Instant::now();
    sh(Command::new(&bin)
        .env(PASSWORD_ENV, PASSWORD)
        .args(["run", "--quiet", "--root"])
        .arg(&root)
        .arg("--plan")
        .arg(&plan_file));
    let engine = t.elapsed().as_secs_f64();
    let cp = (cp_before + cp_sync(&copy)) / 2.0;
    let mib = (files * kib) as f64 / 1024.0;
    println!("{files} legacy files of {kib} KiB ({mib:.0} MiB of plaintext)");
    println!(
        "re-encryption step (run: plan, journal, stage + fsync + verify, rename): {engine:.2} s ({:.0} files/s)",
        files as f64 / engine
    );
    println!(
        "cp -a + sync -f of the same folder: {cp:.2} s (mean of one run before and one after)"
    );
    println!(
        "step time / copy time = {:.2}x; throughput ratio = {:.0}%",
        engine / cp,
        100.0 * cp / engine
    );
}
