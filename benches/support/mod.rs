//! Shared by the re-encryption bench and examples (`#[path]`-included): a certificate made
//! with the `openssl` command line, and reproducible pseudo-random bytes.

#![allow(dead_code)] // each user takes what it needs

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed RSA-2048 certificate with its key, as `DIR/a.pfx` with `password` (needs the
/// `openssl` command line).
pub fn make_pfx(dir: &Path, password: &str) -> PathBuf {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("the `openssl` command line is needed");
        assert!(out.status.success(), "openssl {args:?}");
    };
    #[rustfmt::skip]
    openssl(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &p("k.pem"),
        "-out", &p("c.pem"), "-days", "2", "-subj", "/CN=bench",
    ]);
    #[rustfmt::skip]
    openssl(&[
        "pkcs12", "-export", "-in", &p("c.pem"), "-inkey", &p("k.pem"), "-out", &p("a.pfx"),
        "-passout", &format!("pass:{password}"),
    ]);
    dir.join("a.pfx")
}

/// `left` pseudo-random bytes (xorshift64), the same for the same length.
pub struct Gen {
    pub left: u64,
    pub rng: usercube_upgrade::pseudo_random::Xorshift64,
}

impl Gen {
    pub fn new(len: u64) -> Gen {
        Gen {
            left: len,
            rng: usercube_upgrade::pseudo_random::Xorshift64::new(88172645463325252),
        }
    }
}

impl std::io::Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        self.rng.fill(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}
