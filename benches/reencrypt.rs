//! Re-encryption throughput against `cp` of the same bytes on the same disk (issue 5).
//!
//! One legacy-encrypted file of `REENCRYPT_BENCH_MIB` MiB (default 256) in a folder under the
//! target directory; measured per iteration:
//! - `cp`: the `cp` command copying it (page cache, no fsync: cp's own behaviour);
//! - `cp+fsync`: the same, then an fsync of the copy (what a durable copy costs);
//! - `reencrypt`: the step's per-file work (`steps::reencrypt::stage_one`, chunks on every
//!   core): decrypt, re-encrypt to the staging file, fsync while reading it back, decrypt and
//!   authenticate, compare digests.
//!
//!
//! Before that, the **many-small-files case** (issue 15), timed directly (criterion's repeated
//! samples would take too long): `REENCRYPT_BENCH_SMALL_FILES` (default 3000) legacy files of
//! 4 to 16 KiB of plaintext in `Temp/ExportOutput*`, re-encrypted by
//! - `engine`: the real binary, `run --plan` of a plan whose only step is `reencrypt-files`
//!   (preflight, journal, stage, fsync, verify, rename: everything), and
//! - `peer`: `scripts/peer-reencrypt.py`, the same conversion by Python's `cryptography`
//!   (OpenSSL) in one process, then `sync -f` timed apart (`peer+sync`);
//!
//! alternating, `REENCRYPT_BENCH_SMALL_RUNS` times (default 3), each on a fresh copy of the
//! files followed by `sync` (not timed). Prints files/s of each and the median ratios. The
//! peer is skipped with a message when `python3` or its `cryptography` package is missing.
//! `REENCRYPT_BENCH_ONLY=small` or `=large` runs one part.
//!
//! Needs the `openssl` command line (to make the certificate).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use usercube_upgrade::testing::crypto::{
    encrypt_legacy, Certificate, CertificateSource, PASSWORD_ENV,
};
use usercube_upgrade::testing::durable_fs;
use usercube_upgrade::testing::plan::{Plan, StepSpec};
use usercube_upgrade::testing::steps::reencrypt::stage_one;

#[path = "support/mod.rs"]
mod support;
use support::{make_pfx, Gen};

fn bench(c: &mut Criterion) {
    let mib: u64 = std::env::var("REENCRYPT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let cert = Certificate::from_pfx(make_pfx(dir.path(), "a", "rsa:2048", "b"), "b").unwrap();
    let file = dir.path().join("legacy.bin");
    {
        let out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        encrypt_legacy(&cert, Gen::new(mib << 20), out).unwrap();
    }
    let bytes = std::fs::metadata(&file).unwrap().len();
    let copy = dir.path().join("copy.bin");
    let staged = durable_fs::staging_path(&file);

    let mut g = c.benchmark_group("reencrypt");
    g.throughput(Throughput::Bytes(bytes))
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(3));
    let cp = |fsync: bool| {
        let _ = durable_fs::remove_path(&copy);
        let ok = Command::new("cp").arg(&file).arg(&copy).status().unwrap();
        assert!(ok.success());
        if fsync {
            durable_fs::fsync_file(&copy).unwrap();
        }
    };
    g.bench_function(format!("cp {mib} MiB"), |b| b.iter(|| cp(false)));
    g.bench_function(format!("cp+fsync {mib} MiB"), |b| b.iter(|| cp(true)));
    g.bench_function(format!("reencrypt {mib} MiB"), |b| {
        b.iter(|| {
            let _ = durable_fs::remove_path(&staged);
            stage_one(&cert, &file, 0o600, &|_| {}).unwrap();
        })
    });
    g.finish();
}

const SMALL_PASSWORD: &str = "small";

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Whether `python3` with `cryptography` can run the peer; the reason if not.
fn peer_available(script: &Path) -> Result<(), String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import cryptography")
        .output()
        .map_err(|e| format!("python3 cannot be run ({e})"))?;
    if !out.status.success() {
        return Err("Python's `cryptography` is not installed (pip install cryptography)".into());
    }
    if !script.exists() {
        return Err(format!("{} is missing", script.display()));
    }
    Ok(())
}

/// The many-small-files case: see the module comment.
fn small_files() {
    let files = env_or("REENCRYPT_BENCH_SMALL_FILES", 3000);
    let runs = env_or("REENCRYPT_BENCH_SMALL_RUNS", 3).max(1);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_usercube-upgrade"));
    let script = manifest.join("scripts/peer-reencrypt.py");
    let base = manifest.join("target");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let pfx = make_pfx(dir.path(), "a", "rsa:2048", SMALL_PASSWORD);
    let cert = Certificate::from_pfx(&pfx, SMALL_PASSWORD).unwrap();
    let pristine = dir.path().join("pristine");
    let mut gen = Gen::new(u64::MAX);
    let mut plaintext_bytes = 0u64;
    for i in 0..files {
        let folder = pristine.join(format!("Temp/ExportOutput{}", i % 4));
        std::fs::create_dir_all(&folder).unwrap();
        let len = 4096 + (i * 7919) % (12 * 1024 + 1);
        let mut plain = vec![0u8; len];
        std::io::Read::read_exact(&mut gen, &mut plain).unwrap();
        plaintext_bytes += len as u64;
        let mut out = Vec::with_capacity(len + 512);
        encrypt_legacy(&cert, plain.as_slice(), &mut out).unwrap();
        std::fs::write(folder.join(format!("AD_{i:06}.csv")), out).unwrap();
    }
    std::fs::create_dir_all(pristine.join("Work")).unwrap();
    let plan = Plan::new(
        "re-encryption of many small files",
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
    let peer = peer_available(&script);
    if let Err(why) = &peer {
        println!("small files: the peer (Python `cryptography`) is skipped: {why}");
    }

    let tree = dir.path().join("tree");
    let fresh = || {
        let _ = durable_fs::remove_path(&tree);
        sh(Command::new("cp").arg("-a").arg(&pristine).arg(&tree));
        sh(&mut Command::new("sync"));
    };
    // One file of each side must read back with `decrypt-file` (the same format).
    let check = |side: &str| {
        let f = tree.join("Temp/ExportOutput1/AD_000001.csv");
        let head = std::fs::read(&f).unwrap();
        assert!(head.starts_with(b"UCENC"), "{side}: not in the new format");
        let out = dir.path().join("check");
        let _ = durable_fs::remove_path(&out);
        std::fs::create_dir_all(&out).unwrap();
        sh(Command::new(&bin)
            .env(PASSWORD_ENV, SMALL_PASSWORD)
            .args(["decrypt-file", "--quiet", "--files"])
            .arg(&f)
            .arg("--output-path")
            .arg(&out)
            .arg("--file-cert-file")
            .arg(&pfx));
    };
    let (mut engine, mut plain, mut plain_sync) = (Vec::new(), Vec::new(), Vec::new());
    println!(
        "small files: {files} legacy files, {:.1} MiB of plaintext, {runs} runs each, alternating",
        plaintext_bytes as f64 / (1 << 20) as f64
    );
    for run in 0..runs {
        fresh();
        let t = Instant::now();
        sh(Command::new(&bin)
            .env(PASSWORD_ENV, SMALL_PASSWORD)
            .args(["run", "--quiet", "--root"])
            .arg(&tree)
            .arg("--plan")
            .arg(&plan_file));
        engine.push(t.elapsed().as_secs_f64());
        if run == 0 {
            check("engine");
        }
        if peer.is_ok() {
            fresh();
            let t = Instant::now();
            sh(Command::new("python3")
                .arg(&script)
                .arg(&pfx)
                .arg(SMALL_PASSWORD)
                .arg(tree.join("Temp"))
                .arg(tree.join("Work")));
            let p = t.elapsed().as_secs_f64();
            sh(Command::new("sync").arg("-f").arg(&tree));
            plain.push(p);
            plain_sync.push(t.elapsed().as_secs_f64());
            if run == 0 {
                check("peer");
            }
        }
        let last = |v: &[f64]| v.last().map_or(String::new(), |s| format!("{s:.2} s"));
        println!(
            "  run {}: engine {}, peer {}, peer+sync {}",
            run + 1,
            last(&engine),
            last(&plain),
            last(&plain_sync)
        );
    }
    let _ = durable_fs::remove_path(&tree);
    let e = median(&mut engine);
    println!(
        "small files: engine (run --plan, the whole step)  median {e:.2} s = {:.0} files/s",
        files as f64 / e
    );
    if peer.is_ok() {
        let (p, ps) = (median(&mut plain), median(&mut plain_sync));
        println!(
            "small files: peer (Python cryptography, 1 process) median {p:.2} s = {:.0} files/s",
            files as f64 / p
        );
        println!(
            "small files: peer + sync -f                       median {ps:.2} s = {:.0} files/s",
            files as f64 / ps
        );
        println!(
            "small files: engine/peer = {:.2}x, engine/(peer+sync) = {:.2}x",
            e / p,
            e / ps
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    let only = std::env::var("REENCRYPT_BENCH_ONLY").unwrap_or_default();
    if only != "large" {
        small_files();
    }
    if only != "small" {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
