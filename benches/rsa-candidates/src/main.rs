//! RSA-2048 OAEP-SHA-1 unwraps of a 32-byte key (the legacy format's per-file private-key
//! operation) per second, by each candidate backend, on one thread and on every core.
//! The key comes from `openssl genpkey` (PKCS#8 DER). Prints one line per candidate.

use std::process::Command;
use std::time::Instant;

const OPS: usize = 2000;

fn key_der() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("rsa-candidates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pem, path) = (dir.join("key.pem"), dir.join("key.der"));
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl command line makes the key");
        assert!(ok.success(), "openssl {args:?}");
    };
    let (pem_s, der_s) = (pem.to_str().unwrap(), path.to_str().unwrap());
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        pem_s,
    ]);
    run(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", pem_s, "-outform", "DER", "-out", der_s,
    ]);
    let der = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    der
}

/// One candidate: wraps `ops` keys with its public key, then times the unwraps.
trait Candidate: Sync {
    fn name(&self) -> &'static str;
    fn wrap(&self, key: &[u8]) -> Vec<u8>;
    fn unwrap(&self, wrapped: &[u8]) -> Vec<u8>;
}

#[cfg(feature = "rsa-crate")]
mod rsa_crate {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::{Oaep, RsaPrivateKey};
    pub struct C(RsaPrivateKey);
    pub fn new(der: &[u8]) -> C {
        C(RsaPrivateKey::from_pkcs8_der(der).unwrap())
    }
    impl super::Candidate for C {
        fn name(&self) -> &'static str {
            "rsa 0.9 (num-bigint-dig)"
        }
        fn wrap(&self, key: &[u8]) -> Vec<u8> {
            self.0
                .to_public_key()
                .encrypt(&mut rand::thread_rng(), Oaep::new::<sha1::Sha1>(), key)
                .unwrap()
        }
        fn unwrap(&self, w: &[u8]) -> Vec<u8> {
            self.0.decrypt(Oaep::new::<sha1::Sha1>(), w).unwrap()
        }
    }
}

#[cfg(feature = "aws-lc")]
mod aws_lc {
    use aws_lc_rs::rsa::{
        OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1,
    };
    pub struct C(OaepPrivateDecryptingKey, OaepPublicEncryptingKey);
    pub fn new(der: &[u8]) -> C {
        let k = PrivateDecryptingKey::from_pkcs8(der).unwrap();
        let p = OaepPublicEncryptingKey::new(k.public_key()).unwrap();
        C(OaepPrivateDecryptingKey::new(k).unwrap(), p)
    }
    impl super::Candidate for C {
        fn name(&self) -> &'static str {
            "aws-lc-rs 1"
        }
        fn wrap(&self, key: &[u8]) -> Vec<u8> {
            let mut out = vec![0u8; self.1.ciphertext_size()];
            let n = self
                .1
                .encrypt(&OAEP_SHA1_MGF1SHA1, key, &mut out, None)
                .unwrap()
                .len();
            out.truncate(n);
            out
        }
        fn unwrap(&self, w: &[u8]) -> Vec<u8> {
            let mut out = vec![0u8; self.0.min_output_size()];
            let n = self
                .0
                .decrypt(&OAEP_SHA1_MGF1SHA1, w, &mut out, None)
                .unwrap()
                .len();
            out.truncate(n);
            out
        }
    }
}

#[cfg(feature = "openssl-vendored")]
mod ossl {
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::{Padding, Rsa};
    pub struct C(Rsa<Private>);
    pub fn new(der: &[u8]) -> C {
        C(PKey::private_key_from_der(der).unwrap().rsa().unwrap())
    }
    impl super::Candidate for C {
        fn name(&self) -> &'static str {
            "openssl 0.10 (vendored)"
        }
        fn wrap(&self, key: &[u8]) -> Vec<u8> {
            let mut out = vec![0u8; self.0.size() as usize];
            let n = self
                .0
                .public_encrypt(key, &mut out, Padding::PKCS1_OAEP)
                .unwrap();
            out.truncate(n);
            out
        }
        fn unwrap(&self, w: &[u8]) -> Vec<u8> {
            let mut out = vec![0u8; self.0.size() as usize];
            let n = self
                .0
                .private_decrypt(w, &mut out, Padding::PKCS1_OAEP)
                .unwrap();
            out.truncate(n);
            out
        }
    }
}

fn measure(c: &dyn Candidate, threads: usize) -> f64 {
    let keys: Vec<[u8; 32]> = (0..OPS).map(|_| rand::random()).collect();
    let wrapped: Vec<Vec<u8>> = keys.iter().map(|k| c.wrap(k)).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (keys, wrapped) = (&keys, &wrapped);
            s.spawn(move || {
                for i in (t..OPS).step_by(threads) {
                    assert_eq!(c.unwrap(&wrapped[i]), keys[i], "round trip");
                }
            });
        }
    });
    OPS as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let der = key_der();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut all: Vec<Box<dyn Candidate>> = Vec::new();
    #[cfg(feature = "rsa-crate")]
    all.push(Box::new(rsa_crate::new(&der)));
    #[cfg(feature = "aws-lc")]
    all.push(Box::new(aws_lc::new(&der)));
    #[cfg(feature = "openssl-vendored")]
    all.push(Box::new(ossl::new(&der)));
    let _ = &der;
    println!("RSA-2048 OAEP-SHA-1 unwrap of a 32-byte key, {OPS} operations each, {cores} cores");
    for c in &all {
        let one = measure(c.as_ref(), 1);
        let every = measure(c.as_ref(), cores);
        println!(
            "{:<26} 1 thread: {:>6.0} ops/s ({:.3} ms/op)   {cores} threads: {:>6.0} ops/s",
            c.name(),
            one,
            1000.0 / one,
            every
        );
    }
}
