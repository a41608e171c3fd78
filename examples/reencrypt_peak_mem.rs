//! Peak memory of re-encrypting one large file (issue 5: at most 64 MiB for 4 GiB).
//!
//! `cargo run --release --example reencrypt_peak_mem -- SIZE_MIB [DIR]`: writes a legacy
//! file of SIZE_MIB MiB in DIR (default: the target folder), then runs the step's per-file
//! work on it (`stage_one`: decrypt, re-encrypt to a staging file, fsync, verify) and prints
//! the process's peak resident set (VmHWM from /proc/self/status) before and after, the time
//! and CPU time taken, and the throughput as a share of `cp` + fsync of the same file (issue
//! 5: at least 80%). Needs the `openssl` command line. Every file is removed at the end.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use usercube_upgrade::testing::crypto::{encrypt_legacy, Certificate};
use usercube_upgrade::testing::durable_fs;
use usercube_upgrade::testing::steps::reencrypt::stage_one;

/// (user, system) CPU seconds of this process so far.
fn cpu_secs() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}

fn vm_hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[path = "../benches/support/mod.rs"]
mod support;
use support::{make_pfx, Gen};

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let base = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let cert = Certificate::from_pfx(make_pfx(dir.path(), "a", "rsa:2048", "m"), "m").unwrap();
    let file = dir.path().join("legacy.bin");
    let t = Instant::now();
    {
        let out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        encrypt_legacy(&cert, Gen::new(mib << 20), out).unwrap();
    }
    let bytes = std::fs::metadata(&file).unwrap().len();
    let before = vm_hwm_kib();
    println!(
        "legacy file: {bytes} bytes written in {:.1} s; VmHWM before re-encryption: {} KiB",
        t.elapsed().as_secs_f64(),
        before
    );
    let cp_fsync_before = cp_fsync(&file, &dir.path().join("copy.bin"));
    let t = Instant::now();
    let (u0, s0) = cpu_secs();
    let m = stage_one(&cert, &file, 0o600, &|_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let (u1, s1) = cpu_secs();
    let mib_f = bytes as f64 / (1 << 20) as f64;
    println!(
        "CPU time of the re-encryption: user {:.2} s + system {:.2} s ({:.0} MiB per CPU-second)",
        u1 - u0,
        s1 - s0,
        mib_f / ((u1 - u0) + (s1 - s0))
    );
    let after = vm_hwm_kib();
    println!(
        "re-encrypted + fsync + verified {} MiB in {secs:.1} s ({:.0} MiB/s); new file {} bytes",
        mib,
        (bytes as f64 / (1 << 20) as f64) / secs,
        m.total_bytes()
    );
    println!(
        "peak RSS (VmHWM): {after} KiB = {:.1} MiB (target <= 64 MiB)",
        after as f64 / 1024.0
    );
    let _ = durable_fs::remove_path(&durable_fs::staging_path(&file));
    let cp_secs = (cp_fsync_before + cp_fsync(&file, &dir.path().join("copy.bin"))) / 2.0;
    println!(
        "cp + fsync of the same file: {cp_secs:.1} s ({:.0} MiB/s; mean of one run before and one after)",
        mib_f / cp_secs
    );
    println!(
        "re-encryption throughput / cp + fsync throughput = {:.0}% (target >= 80%)",
        100.0 * cp_secs / secs
    );
}

/// Seconds to copy `file` to `copy` with `cp` and fsync the copy (then removed).
fn cp_fsync(file: &std::path::Path, copy: &std::path::Path) -> f64 {
    let _ = durable_fs::remove_path(copy);
    let t = Instant::now();
    assert!(Command::new("cp")
        .arg(file)
        .arg(copy)
        .status()
        .unwrap()
        .success());
    durable_fs::fsync_file(copy).unwrap();
    let secs = t.elapsed().as_secs_f64();
    durable_fs::remove_path(copy).unwrap();
    secs
}
