//! The 5.1 ("legacy") encrypted file format, as this project models it:
//!
//! | bytes | content |
//! |---|---|
//! | 4 | magic `93 10 01 00` |
//! | k | AES-256 key wrapped with RSA-OAEP (SHA-1, MGF1-SHA-1, empty label); k = RSA modulus bytes (256 for RSA-2048) |
//! | 16 | AES-CBC IV |
//! | rest | AES-256-CBC ciphertext, PKCS#7 padding (at least one block) |
//!
//! The format has no integrity protection: only a wrong key (RSA unwrap), truncation to a
//! non-block length and a bad final padding are detectable.

use std::io::{Read, Write};

use aes::cipher::array::Array;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use rand::RngCore;
use rsa::Oaep;
use sha1::Sha1;

use super::plaintext::{Decrypt, PlaintextReader};
use super::{Certificate, CryptoError};
use crate::stream::{read_full, read_some};

/// Magic bytes that open a legacy encrypted file (and base64-decoded appsettings values).
pub const LEGACY_MAGIC: [u8; 4] = [0x93, 0x10, 0x01, 0x00];

const FORMAT: &str = "legacy";
const BLOCK: usize = 16;
const IO_BUF: usize = 64 * 1024;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// True if `first_bytes` starts with the legacy magic.
pub fn is_legacy(first_bytes: &[u8]) -> bool {
    first_bytes.starts_with(&LEGACY_MAGIC)
}

fn truncated(what: &str) -> CryptoError {
    CryptoError::Truncated {
        format: FORMAT,
        what: what.to_string(),
    }
}

/// Header length of a legacy file for `cert`: magic, wrapped key, IV.
pub(crate) fn header_len(cert: &Certificate) -> usize {
    LEGACY_MAGIC.len() + cert.key_len() + BLOCK
}

/// Reads a legacy header from `inner`; returns the unwrapped AES key and the IV.
pub(crate) fn read_header<R: Read>(
    cert: &Certificate,
    inner: &mut R,
) -> Result<([u8; 32], [u8; BLOCK]), CryptoError> {
    let herr = |e| CryptoError::io("legacy header", e);
    let mut magic = [0u8; 4];
    let n = read_full(inner, &mut magic).map_err(herr)?;
    if n < magic.len() {
        return Err(truncated("file shorter than the magic bytes"));
    }
    if magic != LEGACY_MAGIC {
        return Err(CryptoError::BadMagic { format: FORMAT });
    }
    let mut wrapped = vec![0u8; cert.key_len()];
    let n = read_full(inner, &mut wrapped).map_err(herr)?;
    if n < wrapped.len() {
        return Err(truncated("header ends inside the wrapped key"));
    }
    let mut iv = [0u8; BLOCK];
    let n = read_full(inner, &mut iv).map_err(herr)?;
    if n < iv.len() {
        return Err(truncated("header ends inside the IV"));
    }
    let key = cert
        .unwrap_legacy_key(&wrapped)
        .ok_or_else(|| CryptoError::KeyUnwrap {
            format: FORMAT,
            thumbprint: cert.thumbprint(),
        })?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|k: Vec<u8>| CryptoError::BadHeader {
            format: FORMAT,
            reason: format!("unwrapped key is {} bytes, expected 32", k.len()),
        })?;
    Ok((key, iv))
}

/// The PKCS#7 padding length of a decrypted last block, or [`CryptoError::BadPadding`].
pub(crate) fn padding(last_block: &[u8]) -> Result<usize, CryptoError> {
    let pad = *last_block.last().ok_or(CryptoError::BadPadding)? as usize;
    if pad == 0
        || pad > BLOCK
        || !last_block[last_block.len() - pad..]
            .iter()
            .all(|&b| b as usize == pad)
    {
        return Err(CryptoError::BadPadding);
    }
    Ok(pad)
}

/// Streaming decryptor of the legacy format. Reads the header and unwraps the key in
/// [`LegacyReader::new`]; then `read` yields plaintext. Errors found while reading (bad
/// padding, truncation) come as `io::Error`s carrying a [`CryptoError`]
/// (`CryptoError::from(io_err)` recovers it). Memory use is bounded (about 128 KiB).
pub type LegacyReader<R> = PlaintextReader<LegacyDecrypt<R>>;

/// The legacy format's side of [`LegacyReader`]: CBC decryption, 64 KiB at a time.
pub struct LegacyDecrypt<R> {
    inner: R,
    dec: Aes256CbcDec,
    /// Ciphertext not yet decrypted (the last full block is held back until EOF).
    pending: Vec<u8>,
    finished: bool,
}

impl<R: Read> LegacyReader<R> {
    /// Reads the header from `inner` and unwraps the data key with `cert`.
    pub fn new(cert: &Certificate, mut inner: R) -> Result<Self, CryptoError> {
        let (key, iv) = read_header(cert, &mut inner)?;
        let dec = LegacyDecrypt {
            inner,
            dec: Aes256CbcDec::new(&key.into(), &iv.into()),
            pending: Vec::with_capacity(IO_BUF + BLOCK),
            finished: false,
        };
        Ok(PlaintextReader::with_decrypt(dec, IO_BUF + BLOCK))
    }
}

impl<R: Read> LegacyDecrypt<R> {
    fn decrypt_into(&mut self, out: &mut Vec<u8>, len: usize) {
        out.clear();
        out.extend_from_slice(&self.pending[..len]);
        self.dec.decrypt_blocks(Array::slice_as_chunks_mut(out).0);
        self.pending.drain(..len);
    }
}

impl<R: Read> Decrypt for LegacyDecrypt<R> {
    const FORMAT: &'static str = FORMAT;

    fn next_piece(&mut self, out: &mut Vec<u8>) -> Result<bool, CryptoError> {
        loop {
            if self.finished {
                return Ok(false);
            }
            let start = self.pending.len();
            self.pending.resize(start + IO_BUF, 0);
            let n = match read_some(&mut self.inner, &mut self.pending[start..]) {
                Ok(n) => n,
                Err(e) => {
                    self.pending.truncate(start);
                    return Err(CryptoError::io("legacy input", e));
                }
            };
            self.pending.truncate(start + n);
            if n == 0 {
                // End of input: everything left must be whole blocks, the last one padded.
                self.finished = true;
                if self.pending.is_empty() {
                    return Err(truncated("no ciphertext block"));
                }
                if !self.pending.len().is_multiple_of(BLOCK) {
                    return Err(truncated("ciphertext is not a whole number of blocks"));
                }
                let len = self.pending.len();
                self.decrypt_into(out, len);
                let pad = match padding(&out[out.len() - BLOCK..]) {
                    Ok(pad) => pad,
                    Err(e) => {
                        out.clear();
                        return Err(e);
                    }
                };
                out.truncate(out.len() - pad);
                return Ok(!out.is_empty());
            }
            let full = self.pending.len() / BLOCK * BLOCK;
            // Hold back the last block while it may be the padded one.
            let ready = if full == self.pending.len() {
                full.saturating_sub(BLOCK)
            } else {
                full
            };
            if ready > 0 {
                self.decrypt_into(out, ready);
                return Ok(true);
            }
        }
    }
}

/// Encrypts `plaintext` to `out` in the legacy format for `cert` (streaming): test data.
/// Returns the plaintext length.
#[cfg(any(test, feature = "testing"))]
pub fn encrypt_legacy<R: Read, W: Write>(
    cert: &Certificate,
    plaintext: R,
    out: W,
) -> Result<u64, CryptoError> {
    encrypt_legacy_with_rng(cert, &mut rand::rngs::OsRng, plaintext, out)
}

/// [`encrypt_legacy`] with the randomness (data key, IV, OAEP seed) taken from `rng`: a
/// seeded generator makes byte-identical files (the demo installation). Never for real data.
pub fn encrypt_legacy_with_rng<G: rand::CryptoRng + RngCore, R: Read, W: Write>(
    cert: &Certificate,
    rng: &mut G,
    mut plaintext: R,
    mut out: W,
) -> Result<u64, CryptoError> {
    let mut key = [0u8; 32];
    let mut iv = [0u8; BLOCK];
    rng.fill_bytes(&mut key);
    rng.fill_bytes(&mut iv);
    let wrapped = cert
        .public_key()
        .encrypt(rng, Oaep::new::<Sha1>(), &key)
        .map_err(|e| CryptoError::Rsa(e.to_string()))?;
    let werr = |e| CryptoError::io("legacy output", e);
    out.write_all(&LEGACY_MAGIC).map_err(werr)?;
    out.write_all(&wrapped).map_err(werr)?;
    out.write_all(&iv).map_err(werr)?;
    let mut enc = Aes256CbcEnc::new(&key.into(), &iv.into());
    let mut buf = vec![0u8; IO_BUF + BLOCK];
    let mut have = 0usize;
    let mut total = 0u64;
    loop {
        let n = read_full(&mut plaintext, &mut buf[have..IO_BUF])
            .map_err(|e| CryptoError::io("legacy plaintext input", e))?;
        total += n as u64;
        have += n;
        if have < IO_BUF {
            // EOF: pad (PKCS#7) and flush everything.
            let pad = BLOCK - have % BLOCK;
            buf[have..have + pad].fill(pad as u8);
            have += pad;
            enc.encrypt_blocks(Array::slice_as_chunks_mut(&mut buf[..have]).0);
            out.write_all(&buf[..have]).map_err(werr)?;
            out.flush().map_err(werr)?;
            return Ok(total);
        }
        enc.encrypt_blocks(Array::slice_as_chunks_mut(&mut buf[..have]).0);
        out.write_all(&buf[..have]).map_err(werr)?;
        have = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{cert_a, cert_b, fixture, openssl};
    use crate::pseudo_random::bytes as data;

    fn enc(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        assert_eq!(
            encrypt_legacy(cert_a(), plain, &mut out).unwrap(),
            plain.len() as u64
        );
        out
    }

    fn dec(cert: &Certificate, file: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut r = LegacyReader::new(cert, file)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trip_sizes() {
        for len in [
            0,
            1,
            15,
            16,
            17,
            IO_BUF - 1,
            IO_BUF,
            IO_BUF + 1,
            3 * 1024 * 1024 + 7,
        ] {
            let plain = data(len, len as u64);
            let file = enc(&plain);
            assert!(is_legacy(&file));
            assert_eq!(file.len(), 4 + 256 + 16 + (len / 16 + 1) * 16);
            assert_eq!(dec(cert_a(), &file).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn small_reads_work() {
        let plain = data(100_003, 9);
        let file = enc(&plain);
        let mut r = LegacyReader::new(cert_a(), &file[..]).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, plain);
    }

    #[test]
    fn decrypts_file_made_by_openssl_cli() {
        let f = fixture();
        for (i, len) in [0usize, 1, 31, 100_000].into_iter().enumerate() {
            let dir = f.dir.join(format!("legacy-cli-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
            let plain = data(len, 77 + i as u64);
            std::fs::write(p("plain"), &plain).unwrap();
            let key_hex = String::from_utf8(openssl(&["rand", "-hex", "32"])).unwrap();
            let iv_hex = String::from_utf8(openssl(&["rand", "-hex", "16"])).unwrap();
            let (key_hex, iv_hex) = (key_hex.trim(), iv_hex.trim());
            std::fs::write(p("key.bin"), hex::decode(key_hex).unwrap()).unwrap();
            openssl(&[
                "pkeyutl",
                "-encrypt",
                "-certin",
                "-inkey",
                f.cert_a_pem.to_str().unwrap(),
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha1",
                "-in",
                &p("key.bin"),
                "-out",
                &p("wrapped.bin"),
            ]);
            openssl(&[
                "enc",
                "-aes-256-cbc",
                "-K",
                key_hex,
                "-iv",
                iv_hex,
                "-in",
                &p("plain"),
                "-out",
                &p("ct.bin"),
            ]);
            let mut file = LEGACY_MAGIC.to_vec();
            file.extend(std::fs::read(p("wrapped.bin")).unwrap());
            file.extend(hex::decode(iv_hex).unwrap());
            file.extend(std::fs::read(p("ct.bin")).unwrap());
            assert_eq!(dec(cert_a(), &file).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn openssl_cli_decrypts_our_output() {
        let f = fixture();
        let dir = f.dir.join("legacy-ours");
        std::fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
        let plain = data(70_001, 5);
        let file = enc(&plain);
        std::fs::write(p("wrapped.bin"), &file[4..260]).unwrap();
        std::fs::write(p("ct.bin"), &file[276..]).unwrap();
        openssl(&[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            f.key_a_pem.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha1",
            "-in",
            &p("wrapped.bin"),
            "-out",
            &p("key.bin"),
        ]);
        let key = std::fs::read(p("key.bin")).unwrap();
        openssl(&[
            "enc",
            "-d",
            "-aes-256-cbc",
            "-K",
            &hex::encode(key),
            "-iv",
            &hex::encode(&file[260..276]),
            "-in",
            &p("ct.bin"),
            "-out",
            &p("plain.out"),
        ]);
        assert_eq!(std::fs::read(p("plain.out")).unwrap(), plain);
    }

    #[test]
    fn wrong_certificate_is_rejected() {
        let file = enc(b"secret");
        match dec(cert_b(), &file) {
            Err(CryptoError::KeyUnwrap { thumbprint, .. }) => {
                assert_eq!(thumbprint, cert_b().thumbprint())
            }
            other => panic!("expected KeyUnwrap, got {other:?}"),
        }
    }

    #[test]
    fn tampered_wrapped_key_is_rejected() {
        let mut file = enc(b"secret");
        file[100] ^= 1;
        assert!(matches!(
            dec(cert_a(), &file),
            Err(CryptoError::KeyUnwrap { .. })
        ));
    }

    #[test]
    fn bad_magic_and_short_header() {
        let mut file = enc(b"x");
        assert!(matches!(
            dec(cert_a(), &file[..2]),
            Err(CryptoError::Truncated { .. })
        ));
        assert!(matches!(
            dec(cert_a(), &file[..200]),
            Err(CryptoError::Truncated { .. })
        ));
        assert!(matches!(
            dec(cert_a(), &file[..270]),
            Err(CryptoError::Truncated { .. })
        ));
        // Header only, no ciphertext block.
        assert!(matches!(
            dec(cert_a(), &file[..276]),
            Err(CryptoError::Truncated { .. })
        ));
        file[0] = 0;
        assert!(matches!(
            dec(cert_a(), &file),
            Err(CryptoError::BadMagic { .. })
        ));
        assert!(!is_legacy(&file));
    }

    #[test]
    fn truncation_is_rejected() {
        // Zero plaintext: dropping the padding block leaves a zero byte where the pad length is.
        let plain = vec![0u8; 100_000];
        let file = enc(&plain);
        let cut_mid = &file[..file.len() - 5];
        assert!(matches!(
            dec(cert_a(), cut_mid),
            Err(CryptoError::Truncated { .. })
        ));
        let drop_block = &file[..file.len() - 16];
        assert!(matches!(
            dec(cert_a(), drop_block),
            Err(CryptoError::BadPadding)
        ));
        let drop_much = &file[..file.len() - 64 * 1024];
        assert!(matches!(
            dec(cert_a(), drop_much),
            Err(CryptoError::BadPadding)
        ));
    }

    #[test]
    fn bad_padding_is_rejected() {
        // Tamper the next-to-last ciphertext block: CBC flips the same bit of the last plaintext
        // block, here its padding byte (16 x 0x10 becomes 0x11).
        let mut file = enc(&[7u8; 32]);
        let n = file.len();
        file[n - 17] ^= 0x01;
        assert!(matches!(dec(cert_a(), &file), Err(CryptoError::BadPadding)));
    }
}
