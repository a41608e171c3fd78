//! Shared by the re-encryption bench and examples (`#[path]`-included): a certificate made
//! with the `openssl` command line, and reproducible pseudo-random bytes.

#![allow(dead_code)] // each user takes what it needs

/// The tests' `make_pfx` (`DIR/NAME.pfx`, a new key, a password; needs the `openssl` command
/// line).
#[path = "../../tests/common/pfx.rs"]
mod pfx;
pub use pfx::make_pfx;

/// `left` pseudo-random bytes (xorshift64), the same for the same length.
pub struct Gen {
    pub left: u64,
    pub rng: usercube_upgrade::testing::pseudo_random::Xorshift64,
}

impl Gen {
    pub fn new(len: u64) -> Gen {
        Gen {
            left: len,
            rng: usercube_upgrade::testing::pseudo_random::Xorshift64::new(88172645463325252),
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
