//! Certificates with an RSA private key, loaded from PFX (PKCS#12) files, or found in the
//! Windows certificate store with a key that stays in the OS (CNG; never exported).
//!
//! Both PFX flavours are read (through `p12-keystore`): OpenSSL 3's default (PBES2 with
//! AES-256-CBC + PBKDF2, HMAC-SHA256 MAC) and the legacy Windows-export form
//! (pbeWithSHAAnd3-KeyTripleDES-CBC keys, pbeWithSHAAnd40BitRC2-CBC certificates, SHA-1 MAC).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

#[cfg(feature = "aws-lc")]
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use p12_keystore::error::Error as P12Error;
use p12_keystore::Pkcs12Archive;
use rand::rngs::{OsRng, StdRng};
use rand::{RngCore, SeedableRng};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::oaep::SeededWrap;
use super::{CryptoError, MIN_RSA_BITS};

const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

/// An X.509 certificate and its RSA private key.
#[derive(Clone)]
pub struct Certificate {
    thumbprint: [u8; 20],
    subject: String,
    private_key: PrivateKey,
    public_key: RsaPublicKey,
    /// Legacy data keys already unwrapped, by SHA-256 of the wrapped value (see
    /// [`Certificate::unwrap_legacy_key`]).
    legacy_keys: Arc<Mutex<HashMap<[u8; 32], Vec<u8>>>>,
    /// Whether the private key unwrapped what the public key wrapped, once per certificate
    /// (and its clones): see [`Certificate::prove_key_pair`].
    key_pair: Arc<OnceLock<bool>>,
    /// Private-key operations done with this certificate (and its clones).
    private_ops: Arc<AtomicU64>,
    /// The public key prepared for seeded wraps, once per certificate (and its clones).
    seeded_wrap: Arc<OnceLock<Option<SeededWrap>>>,
}

/// Where the private-key operations happen.
#[derive(Clone)]
enum PrivateKey {
    /// Loaded from a PFX: AWS-LC decrypts (about 6 times faster than the `rsa` crate,
    /// BENCHMARKS.md; it is the one private-key operation per re-encrypted file).
    #[cfg(feature = "aws-lc")]
    AwsLc(Arc<OaepPrivateDecryptingKey>),
    /// Loaded from a PFX that AWS-LC does not take (a key size outside 2048..=8192 bits, a
    /// PKCS#8 form it refuses): the `rsa` crate decrypts.
    Rsa(Box<RsaPrivateKey>),
    /// Held by the OS (Windows CNG), usually non-exportable: the OS decrypts.
    Os(Arc<crate::platform::OsPrivateKey>),
}

impl PrivateKey {
    /// The fastest backend that takes this PKCS#8 key (`key` is its parsed form).
    fn from_pkcs8(der: &[u8], key: RsaPrivateKey) -> PrivateKey {
        #[cfg(feature = "aws-lc")]
        if let Some(k) = PrivateDecryptingKey::from_pkcs8(der)
            .ok()
            .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
        {
            return PrivateKey::AwsLc(Arc::new(k));
        }
        #[cfg(not(feature = "aws-lc"))]
        let _ = der;
        PrivateKey::Rsa(Box::new(key))
    }

    /// RSA-OAEP decryption with SHA-1 (`sha256` false) or SHA-256; None if it fails.
    fn decrypt_oaep(&self, sha256: bool, wrapped: &[u8]) -> Option<Vec<u8>> {
        match self {
            #[cfg(feature = "aws-lc")]
            PrivateKey::AwsLc(k) => {
                let algorithm = if sha256 {
                    &OAEP_SHA256_MGF1SHA256
                } else {
                    &OAEP_SHA1_MGF1SHA1
                };
                let mut out = vec![0u8; k.min_output_size()];
                let n = k.decrypt(algorithm, wrapped, &mut out, None).ok()?.len();
                out.truncate(n);
                Some(out)
            }
            PrivateKey::Rsa(k) if sha256 => k.decrypt(Oaep::new::<Sha256>(), wrapped).ok(),
            PrivateKey::Rsa(k) => k.decrypt(Oaep::new::<Sha1>(), wrapped).ok(),
            PrivateKey::Os(k) => k.decrypt_oaep(sha256, wrapped).ok(),
        }
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("thumbprint", &self.thumbprint())
            .field("subject", &self.subject)
            .field("key_bits", &self.key_bits())
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Loads the first certificate that has an RSA private key from a PFX file.
    pub fn from_pfx(path: impl AsRef<Path>, password: &str) -> Result<Certificate, CryptoError> {
        let path = path.as_ref();
        let data =
            std::fs::read(path).map_err(|e| CryptoError::io(path.display().to_string(), e))?;
        Self::from_pfx_bytes(&data, password, &path.display().to_string())
    }

    /// Same as [`Certificate::from_pfx`] on bytes; `source` names them in errors.
    pub fn from_pfx_bytes(
        data: &[u8],
        password: &str,
        source: &str,
    ) -> Result<Certificate, CryptoError> {
        let path = source.to_string();
        let archive = Pkcs12Archive::from_pkcs12(data, password).map_err(|e| match e {
            P12Error::MacError(_) | P12Error::UnpadError => {
                CryptoError::WrongPassword { path: path.clone() }
            }
            other => CryptoError::InvalidPfx {
                path: path.clone(),
                reason: other.to_string(),
            },
        })?;
        if archive.keys.is_empty() || archive.certs.is_empty() {
            return Err(CryptoError::NoPrivateKey { path });
        }

        let mut first_error = None;
        for key_bag in &archive.keys {
            let oid = key_bag.key.oid().to_string();
            if oid != RSA_ENCRYPTION_OID {
                first_error.get_or_insert(CryptoError::KeyNotRsa {
                    path: path.clone(),
                    algorithm: oid,
                });
                continue;
            }
            let private_key = RsaPrivateKey::from_pkcs8_der(key_bag.key.as_der()).map_err(|e| {
                CryptoError::InvalidKey {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            let public_key = private_key.to_public_key();
            // Prefer the certificate linked by localKeyId, else the one holding the same public key.
            let by_id =
                archive
                    .certs
                    .iter()
                    .find(|c| match (&c.local_key_id, &key_bag.local_key_id) {
                        (Some(a), Some(b)) => a.as_slice() == b.0.as_slice(),
                        _ => false,
                    });
            let cert_bag = by_id.or_else(|| {
                archive
                    .certs
                    .iter()
                    .find(|c| cert_public_key(c.cert.as_der()).as_ref() == Some(&public_key))
            });
            let Some(cert_bag) = cert_bag else { continue };
            let bits = public_key.n().bits();
            if bits < MIN_RSA_BITS {
                first_error.get_or_insert(CryptoError::KeyTooSmall {
                    path: path.clone(),
                    bits,
                    min: MIN_RSA_BITS,
                });
                continue;
            }
            let thumbprint: [u8; 20] = Sha1::digest(cert_bag.cert.as_der()).into();
            return Ok(Certificate {
                thumbprint,
                subject: cert_bag.cert.subject().to_string(),
                private_key: PrivateKey::from_pkcs8(key_bag.key.as_der(), private_key),
                public_key,
                legacy_keys: Arc::default(),
                key_pair: Arc::default(),
                private_ops: Arc::default(),
                seeded_wrap: Arc::default(),
            });
        }
        Err(first_error.unwrap_or(CryptoError::NoPrivateKey { path }))
    }

    /// Thumbprint as .NET shows it: uppercase hex SHA-1 of the DER certificate.
    pub fn thumbprint(&self) -> String {
        hex::encode_upper(self.thumbprint)
    }

    /// Raw 20-byte SHA-1 thumbprint.
    pub fn thumbprint_bytes(&self) -> [u8; 20] {
        self.thumbprint
    }

    /// Subject distinguished name (RFC 4514 style, as printed by x509-parser).
    #[cfg(test)]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// RSA modulus size in bits.
    pub fn key_bits(&self) -> usize {
        self.public_key.n().bits()
    }

    /// RSA modulus size in bytes (= length of an RSA-wrapped key).
    pub fn key_len(&self) -> usize {
        self.public_key.size()
    }

    /// A certificate from the OS store (`platform::find_store_certificate`): its public key
    /// from the DER, its private key left in the OS.
    pub(crate) fn from_os_store(
        der: Vec<u8>,
        key: crate::platform::OsPrivateKey,
        source: &str,
    ) -> Result<Certificate, CryptoError> {
        let invalid = |reason: String| CryptoError::InvalidKey {
            path: source.to_string(),
            reason,
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| invalid(format!("certificate does not parse: {e}")))?;
        let subject = cert.subject().to_string();
        let public_key = cert_public_key(&der)
            .ok_or_else(|| invalid("the certificate's key is not RSA".into()))?;
        let bits = public_key.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(CryptoError::KeyTooSmall {
                path: source.to_string(),
                bits,
                min: MIN_RSA_BITS,
            });
        }
        let thumbprint: [u8; 20] = Sha1::digest(&der).into();
        Ok(Certificate {
            thumbprint,
            subject,
            private_key: PrivateKey::Os(Arc::new(key)),
            public_key,
            legacy_keys: Arc::default(),
            key_pair: Arc::default(),
            private_ops: Arc::default(),
            seeded_wrap: Arc::default(),
        })
    }

    /// RSA-OAEP(SHA-256) decryption of a new-format header's wrapped key.
    pub(crate) fn unwrap_key_sha256(&self, wrapped: &[u8]) -> Option<Vec<u8>> {
        self.private_ops.fetch_add(1, Ordering::Relaxed);
        self.private_key.decrypt_oaep(true, wrapped)
    }

    /// RSA-OAEP(SHA-1) decryption of a legacy file's wrapped data key, or `None` if it does not
    /// decrypt with this key. Remembered per wrapped value for the life of the certificate
    /// (and its clones): the re-encryption step unwraps each file's key at preflight and again
    /// when converting it, and one private-key operation (about 2 ms for RSA-2048) costs more
    /// than converting a small file. The same wrapped bytes always unwrap to the same key, so
    /// a file replaced in between is unwrapped afresh.
    pub(crate) fn unwrap_legacy_key(&self, wrapped: &[u8]) -> Option<Vec<u8>> {
        let id: [u8; 32] = Sha256::digest(wrapped).into();
        let memo = || self.legacy_keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = memo().get(&id) {
            return Some(key.clone());
        }
        self.private_ops.fetch_add(1, Ordering::Relaxed);
        let key = self.private_key.decrypt_oaep(false, wrapped)?;
        memo().insert(id, key.clone());
        Some(key)
    }

    /// RSA-OAEP(SHA-256) encryption of `key` for this certificate, with the OAEP seed drawn
    /// from a generator seeded by `seed`: the same `key` and `seed` give the same bytes, so a
    /// writer that keeps both can check its header later with this public-key operation
    /// alone (`encryption-format.md`, "Verifying a header without the private key").
    pub(crate) fn wrap_key_sha256(
        &self,
        key: &[u8],
        seed: [u8; 32],
    ) -> Result<Vec<u8>, CryptoError> {
        match self
            .seeded_wrap
            .get_or_init(|| SeededWrap::new(&self.public_key))
        {
            Some(fast) => fast.wrap(key, seed),
            None => self
                .public_key
                .encrypt(&mut StdRng::from_seed(seed), Oaep::new::<Sha256>(), key)
                .map_err(|e| CryptoError::Rsa(e.to_string())),
        }
    }

    /// Proves that the private key unwraps what the public key wraps: one round trip of a
    /// random key, RSA-OAEP(SHA-256), the first time it is called for this certificate (or a
    /// clone); later calls return the remembered answer. It is what lets a header be verified
    /// by wrapping again instead of unwrapping (one private-key operation per run instead of
    /// one per file): a PFX or an OS store entry whose private key belongs to another public
    /// key fails here, before any file is replaced.
    pub fn prove_key_pair(&self) -> Result<(), CryptoError> {
        let matched = *self.key_pair.get_or_init(|| {
            let mut key = [0u8; 32];
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            OsRng.fill_bytes(&mut seed);
            self.wrap_key_sha256(&key, seed)
                .ok()
                .and_then(|w| self.unwrap_key_sha256(&w))
                .is_some_and(|k| k == key)
        });
        if matched {
            Ok(())
        } else {
            Err(CryptoError::KeyPairMismatch {
                thumbprint: self.thumbprint(),
            })
        }
    }

    /// RSA private-key operations done so far with this certificate and its clones (the
    /// costly part of re-encrypting a small file; the benches and tests count them).
    #[cfg(any(test, feature = "testing"))]
    pub fn private_key_operations(&self) -> u64 {
        self.private_ops.load(Ordering::Relaxed)
    }

    /// This certificate with `other`'s public key and a fresh memo: a key pair that does not
    /// match, as a store entry linked to the wrong key would be.
    #[cfg(test)]
    pub(crate) fn with_public_key_of(&self, other: &Certificate) -> Certificate {
        Certificate {
            public_key: other.public_key.clone(),
            legacy_keys: Arc::default(),
            key_pair: Arc::default(),
            private_ops: Arc::default(),
            seeded_wrap: Arc::default(),
            ..self.clone()
        }
    }

    pub(crate) fn public_key(&self) -> &RsaPublicKey {
        &self.public_key
    }
}

fn cert_public_key(der: &[u8]) -> Option<RsaPublicKey> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    RsaPublicKey::from_public_key_der(cert.public_key().raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{fixture, openssl};

    #[test]
    fn loads_openssl3_default_pfx() {
        let f = fixture();
        let c = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        assert_eq!(c.key_bits(), 2048);
        assert_eq!(c.key_len(), 256);
        assert!(c.subject().contains("Usercube Test A"), "{}", c.subject());
    }

    #[test]
    fn loads_legacy_3des_rc2_pfx() {
        let f = fixture();
        let c = Certificate::from_pfx(&f.pfx_legacy, "pass-A").unwrap();
        let d = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        assert_eq!(c.thumbprint(), d.thumbprint());
        // The same private key: what one's public key wraps, the other unwraps.
        let key = [7u8; 32];
        let wrapped = c
            .public_key()
            .encrypt(&mut rand::thread_rng(), Oaep::new::<Sha256>(), &key)
            .unwrap();
        assert_eq!(d.unwrap_key_sha256(&wrapped).unwrap(), key);
    }

    #[test]
    fn thumbprint_matches_openssl_fingerprint() {
        let f = fixture();
        let out = openssl(&[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha1",
            "-in",
            f.cert_a_pem.to_str().unwrap(),
        ]);
        let text = String::from_utf8(out).unwrap();
        let fp = text.trim().rsplit('=').next().unwrap().replace(':', "");
        let c = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        assert_eq!(c.thumbprint(), fp.to_uppercase());
        assert_eq!(c.thumbprint().len(), 40);
        assert_eq!(c.thumbprint(), c.thumbprint().to_uppercase());
    }

    #[test]
    fn wrong_password_is_typed() {
        let f = fixture();
        for p in [&f.pfx_default, &f.pfx_legacy] {
            match Certificate::from_pfx(p, "nope") {
                Err(CryptoError::WrongPassword { path }) => {
                    assert!(path.contains(p.file_name().unwrap().to_str().unwrap()))
                }
                other => panic!("expected WrongPassword, got {other:?}"),
            }
        }
    }

    #[test]
    fn pfx_without_key_is_rejected() {
        let f = fixture();
        match Certificate::from_pfx(&f.pfx_nokeys, "pass-A") {
            Err(CryptoError::NoPrivateKey { path }) => assert!(path.contains("nokeys")),
            other => panic!("expected NoPrivateKey, got {other:?}"),
        }
    }

    #[test]
    fn small_key_is_rejected() {
        let f = fixture();
        match Certificate::from_pfx(&f.pfx_small, "pass-S") {
            Err(CryptoError::KeyTooSmall { bits, path, .. }) => {
                assert_eq!(bits, 1024);
                assert!(path.contains("small"));
            }
            other => panic!("expected KeyTooSmall, got {other:?}"),
        }
    }

    #[test]
    fn non_rsa_key_is_rejected() {
        let f = fixture();
        match Certificate::from_pfx(&f.pfx_ec, "pass-E") {
            Err(CryptoError::KeyNotRsa { path, .. }) => assert!(path.contains("ec")),
            other => panic!("expected KeyNotRsa, got {other:?}"),
        }
    }

    #[test]
    fn garbage_and_missing_files_are_typed() {
        let f = fixture();
        let junk = f.dir.join("junk.pfx");
        std::fs::write(&junk, b"this is not a pfx").unwrap();
        assert!(matches!(
            Certificate::from_pfx(&junk, ""),
            Err(CryptoError::InvalidPfx { .. })
        ));
        match Certificate::from_pfx(f.dir.join("missing.pfx"), "") {
            Err(CryptoError::Io { what, .. }) => assert!(what.contains("missing.pfx")),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn legacy_keys_are_unwrapped_once_per_wrapped_value() {
        use crate::crypto::{encrypt_legacy, LegacyReader};
        use std::io::Read;
        let f = fixture();
        let c = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        let other = Certificate::from_pfx(&f.pfx_b, "pass-B").unwrap();
        let files: Vec<Vec<u8>> = [b"first".as_slice(), b"second"]
            .iter()
            .map(|p| {
                let mut v = Vec::new();
                encrypt_legacy(&c, *p, &mut v).unwrap();
                v
            })
            .collect();
        let read = |cert: &Certificate, file: &[u8]| -> Result<Vec<u8>, CryptoError> {
            let mut out = Vec::new();
            LegacyReader::new(cert, file)?
                .read_to_end(&mut out)
                .map_err(|e| CryptoError::io("test", e))?;
            Ok(out)
        };
        let remembered = |cert: &Certificate| cert.legacy_keys.lock().unwrap().len();
        assert_eq!(read(&c, &files[0]).unwrap(), b"first");
        assert_eq!(read(&c, &files[1]).unwrap(), b"second");
        assert_eq!(remembered(&c), 2);
        // Again, through a clone: served from the memo, same plaintext.
        assert_eq!(read(&c.clone(), &files[0]).unwrap(), b"first");
        assert_eq!(remembered(&c), 2);
        // Another wrapped value is unwrapped afresh: a changed one fails, nothing remembered.
        let mut changed = files[0].clone();
        changed[4] ^= 1;
        assert!(matches!(
            read(&c, &changed),
            Err(CryptoError::KeyUnwrap { .. })
        ));
        assert_eq!(remembered(&c), 2);
        // Another certificate has its own memo and cannot unwrap these keys.
        assert!(matches!(
            read(&other, &files[0]),
            Err(CryptoError::KeyUnwrap { .. })
        ));
        assert_eq!(remembered(&other), 0);
    }

    /// The PFX's key goes to AWS-LC, and it unwraps exactly what the `rsa` crate unwraps
    /// (SHA-1 for legacy keys, SHA-256 for new headers), and refuses what it refuses.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_and_rsa_crate_unwrap_the_same() {
        let f = fixture();
        let c = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        let PrivateKey::AwsLc(_) = &c.private_key else {
            panic!("a 2048-bit PFX key should be decrypted by AWS-LC");
        };
        let der = std::fs::read(&f.pfx_default).unwrap();
        let archive = Pkcs12Archive::from_pkcs12(&der, "pass-A").unwrap();
        let rsa = PrivateKey::Rsa(Box::new(
            RsaPrivateKey::from_pkcs8_der(archive.keys[0].key.as_der()).unwrap(),
        ));
        let mut rng = rand::thread_rng();
        for len in [16usize, 32, 48] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let sha1 = c
                .public_key()
                .encrypt(&mut rng, Oaep::new::<Sha1>(), &key)
                .unwrap();
            let sha256 = c
                .public_key()
                .encrypt(&mut rng, Oaep::new::<Sha256>(), &key)
                .unwrap();
            for backend in [&c.private_key, &rsa] {
                assert_eq!(
                    backend.decrypt_oaep(false, &sha1).as_deref(),
                    Some(&key[..])
                );
                assert_eq!(
                    backend.decrypt_oaep(true, &sha256).as_deref(),
                    Some(&key[..])
                );
                // The wrong hash, a flipped byte, a short value: refused by both.
                assert_eq!(backend.decrypt_oaep(true, &sha1), None);
                let mut bad = sha256.clone();
                bad[100] ^= 1;
                assert_eq!(backend.decrypt_oaep(true, &bad), None);
                assert_eq!(backend.decrypt_oaep(true, &sha256[1..]), None);
            }
        }
    }

    #[test]
    fn seeded_wrap_is_repeatable_and_unwraps() {
        let f = fixture();
        let c = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        let key = [9u8; 32];
        let a = c.wrap_key_sha256(&key, [1; 32]).unwrap();
        assert_eq!(a, c.wrap_key_sha256(&key, [1; 32]).unwrap(), "same seed");
        assert_ne!(a, c.wrap_key_sha256(&key, [2; 32]).unwrap(), "other seed");
        assert_ne!(
            a,
            c.wrap_key_sha256(&[8u8; 32], [1; 32]).unwrap(),
            "other key"
        );
        assert_eq!(a.len(), c.key_len());
        assert_eq!(c.unwrap_key_sha256(&a).unwrap(), key);
    }

    #[test]
    fn key_pair_is_proven_once_and_a_mismatch_is_refused() {
        let f = fixture();
        let a = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        let b = Certificate::from_pfx(&f.pfx_b, "pass-B").unwrap();
        assert_eq!(a.private_key_operations(), 0);
        a.prove_key_pair().unwrap();
        a.clone().prove_key_pair().unwrap();
        assert_eq!(
            a.private_key_operations(),
            1,
            "one round trip per certificate"
        );
        let mixed = a.with_public_key_of(&b);
        match mixed.prove_key_pair() {
            Err(CryptoError::KeyPairMismatch { thumbprint }) => {
                assert_eq!(thumbprint, a.thumbprint())
            }
            other => panic!("expected KeyPairMismatch, got {other:?}"),
        }
        assert!(mixed.prove_key_pair().is_err(), "the answer is remembered");
        assert_eq!(mixed.private_key_operations(), 1);
    }
}
