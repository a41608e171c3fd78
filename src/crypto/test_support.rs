//! Shared test fixtures: keys and PFX files made once per test binary with the `openssl` CLI
//! (fast, unlike RSA key generation in a debug build).
// Fixture folders in the temp dir are not installation data: plain removal is fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::Certificate;

pub(crate) struct Fixture {
    pub dir: PathBuf,
    pub cert_a_pem: PathBuf,
    pub key_a_pem: PathBuf,
    /// OpenSSL 3 default PFX (AES-256-CBC + PBKDF2, HMAC-SHA256), password "pass-A".
    pub pfx_default: PathBuf,
    /// Legacy Windows-style PFX (3DES key bag, RC2-40 cert bag, SHA-1 MAC), password "pass-A".
    pub pfx_legacy: PathBuf,
    /// Certificate A, empty password (store form).
    pub pfx_a_empty: PathBuf,
    /// Certificate only, no key, password "pass-A".
    pub pfx_nokeys: PathBuf,
    /// RSA-1024 key, password "pass-S".
    pub pfx_small: PathBuf,
    /// EC P-256 key, password "pass-E".
    pub pfx_ec: PathBuf,
    /// Another RSA-2048 certificate B, password "pass-B".
    pub pfx_b: PathBuf,
}

/// Runs `openssl` with `args`; panics (fails the test) if the tool is missing or fails.
pub(crate) fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the `openssl` command line tool is required by these tests but could not be run \
             ({e}); install it (e.g. `apt-get install openssl`)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn make_cert(dir: &Path, name: &str, newkey: &[&str], cn: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key.pem"));
    let cert = dir.join(format!("{name}.cert.pem"));
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(newkey);
    let subj = format!("/CN={cn}");
    args.extend_from_slice(&[
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&cert),
        "-days",
        "3650",
        "-subj",
        &subj,
    ]);
    openssl(&args);
    (key, cert)
}

fn export(cert: &Path, key: Option<&Path>, out: &Path, pass: &str, extra: &[&str]) {
    let passout = format!("pass:{pass}");
    let mut args = vec!["pkcs12", "-export", "-in", s(cert)];
    match key {
        Some(k) => args.extend_from_slice(&["-inkey", s(k)]),
        None => args.push("-nokeys"),
    }
    args.extend_from_slice(&["-out", s(out), "-passout", &passout]);
    args.extend_from_slice(extra);
    openssl(&args);
}

const DIR_PREFIX: &str = "usercube-crypto-tests-";

/// Statics are never dropped, so each test binary leaves its small fixture folder behind;
/// remove those of processes that have exited.
fn remove_stale_fixture_dirs() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(DIR_PREFIX) {
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

pub(crate) fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        remove_stale_fixture_dirs();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (key_a, cert_a) = make_cert(&dir, "a", &["-newkey", "rsa:2048"], "Usercube Test A");
        let (key_b, cert_b) = make_cert(&dir, "b", &["-newkey", "rsa:2048"], "Usercube Test B");
        let (key_s, cert_s) = make_cert(&dir, "small", &["-newkey", "rsa:1024"], "Small");
        let (key_e, cert_e) = make_cert(
            &dir,
            "ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "Ec",
        );
        let f = Fixture {
            pfx_default: dir.join("a-default.pfx"),
            pfx_legacy: dir.join("a-legacy.pfx"),
            pfx_a_empty: dir.join("a-empty.pfx"),
            pfx_nokeys: dir.join("a-nokeys.pfx"),
            pfx_small: dir.join("small.pfx"),
            pfx_ec: dir.join("ec.pfx"),
            pfx_b: dir.join("b.pfx"),
            cert_a_pem: cert_a.clone(),
            key_a_pem: key_a.clone(),
            dir,
        };
        export(&cert_a, Some(&key_a), &f.pfx_default, "pass-A", &[]);
        export(
            &cert_a,
            Some(&key_a),
            &f.pfx_legacy,
            "pass-A",
            &[
                "-keypbe",
                "PBE-SHA1-3DES",
                "-certpbe",
                "PBE-SHA1-RC2-40",
                "-macalg",
                "sha1",
                "-provider",
                "legacy",
                "-provider",
                "default",
            ],
        );
        export(&cert_a, Some(&key_a), &f.pfx_a_empty, "", &[]);
        export(&cert_a, None, &f.pfx_nokeys, "pass-A", &[]);
        export(&cert_s, Some(&key_s), &f.pfx_small, "pass-S", &[]);
        export(&cert_e, Some(&key_e), &f.pfx_ec, "pass-E", &[]);
        export(&cert_b, Some(&key_b), &f.pfx_b, "pass-B", &[]);
        f
    })
}

pub(crate) fn cert_a() -> &'static Certificate {
    static C: OnceLock<Certificate> = OnceLock::new();
    C.get_or_init(|| Certificate::from_pfx(&fixture().pfx_default, "pass-A").unwrap())
}

pub(crate) fn cert_b() -> &'static Certificate {
    static C: OnceLock<Certificate> = OnceLock::new();
    C.get_or_init(|| Certificate::from_pfx(&fixture().pfx_b, "pass-B").unwrap())
}
