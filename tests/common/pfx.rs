//! Test certificates made with the `openssl` command line (fast, unlike RSA key generation in
//! a debug build): the one `make_pfx` of the integration tests (through `common`), and of the
//! benches and examples (`benches/support` includes this file by its path).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl` with `args` and returns its stdout; panics (fails the test) when the command
/// line tool is missing or fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("these tests need the `openssl` command line tool");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A self-signed certificate `CN=NAME` with a new key (`key`: `rsa:2048`, `rsa:1024`, ...),
/// written as `DIR/NAME.pfx` protected by `password`.
pub fn make_pfx(dir: &Path, name: &str, key: &str, password: &str) -> PathBuf {
    let key_file = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let pfx = dir.join(format!("{name}.pfx"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        key,
        "-nodes",
        "-keyout",
        &s(&key_file),
        "-out",
        &s(&crt),
        "-days",
        "30",
        "-subj",
        &format!("/CN={name}"),
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &s(&crt),
        "-inkey",
        &s(&key_file),
        "-out",
        &s(&pfx),
        "-passout",
        &format!("pass:{password}"),
    ]);
    pfx
}
