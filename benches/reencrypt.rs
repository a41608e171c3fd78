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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use usercube_upgrade::crypto::{encrypt_legacy, Certificate};
use usercube_upgrade::durable_fs;
use usercube_upgrade::steps::reencrypt::stage_one;

fn openssl(args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .status()
        .expect("the bench needs the `openssl` command line")
        .success();
    assert!(ok, "openssl {args:?}");
}

fn certificate(dir: &Path) -> Certificate {
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let (key, crt, pfx) = (
        s(dir.join("k.pem")),
        s(dir.join("c.pem")),
        s(dir.join("a.pfx")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &crt,
        "-days",
        "2",
        "-subj",
        "/CN=bench",
    ]);
    openssl(&[
        "pkcs12", "-export", "-in", &crt, "-inkey", &key, "-out", &pfx, "-passout", "pass:b",
    ]);
    Certificate::from_pfx(&pfx, "b").unwrap()
}

/// Streams `len` pseudo-random bytes.
struct Gen {
    left: u64,
    x: u64,
}

impl std::io::Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for b in &mut buf[..n] {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = self.x as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn bench(c: &mut Criterion) {
    let mib: u64 = std::env::var("REENCRYPT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let cert = certificate(dir.path());
    let file = dir.path().join("legacy.bin");
    {
        let out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        encrypt_legacy(
            &cert,
            Gen {
                left: mib << 20,
                x: 88172645463325252,
            },
            out,
        )
        .unwrap();
    }
    let bytes = std::fs::metadata(&file).unwrap().len();
    let copy = dir.path().join("copy.bin");
    let staged = durable_fs::staging_path(&file);

    let mut g = c.benchmark_group("reencrypt");
    g.throughput(Throughput::Bytes(bytes))
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(3));
    g.bench_function(format!("cp {mib} MiB"), |b| {
        b.iter(|| {
            let _ = durable_fs::remove_path(&copy);
            assert!(Command::new("cp")
                .arg(&file)
                .arg(&copy)
                .status()
                .unwrap()
                .success());
        })
    });
    g.bench_function(format!("cp+fsync {mib} MiB"), |b| {
        b.iter(|| {
            let _ = durable_fs::remove_path(&copy);
            assert!(Command::new("cp")
                .arg(&file)
                .arg(&copy)
                .status()
                .unwrap()
                .success());
            durable_fs::fsync_file(&copy).unwrap();
        })
    });
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
