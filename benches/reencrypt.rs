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
//! Needs the `openssl` command line (to make the certificate).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use usercube_upgrade::crypto::{encrypt_legacy, Certificate};
use usercube_upgrade::durable_fs;
use usercube_upgrade::steps::reencrypt::stage_one;

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
    let cert = Certificate::from_pfx(make_pfx(dir.path(), "b"), "b").unwrap();
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

criterion_group!(benches, bench);
criterion_main!(benches);
