//! Our encrypted file format ("UCENC" version 1), documented byte by byte in
//! `encryption-format.md`:
//!
//! ```text
//! header  = "UCENC" | 0x01 | thumbprint[20] | wrapped_len u16 BE | wrapped[wrapped_len] | nonce_prefix[7]
//! chunk i = AES-256-GCM(key, nonce = nonce_prefix | i as u32 BE | last ? 0x01 : 0x00,
//!                       aad = header, plaintext_i) = ciphertext_i | tag[16]
//! ```
//!
//! `wrapped` is the 32-byte data key encrypted with RSA-OAEP (SHA-256, MGF1-SHA-256, empty
//! label). Every chunk but the last holds exactly [`CHUNK_SIZE`] plaintext bytes; the last holds
//! 0..=[`CHUNK_SIZE`] bytes (an empty file is one empty final chunk). This is the STREAM
//! construction: tampering, reordering, truncation and appended data are all detected.

use std::io::{self, Read, Write};

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::plaintext::{Decrypt, PlaintextReader};
use super::{Certificate, CryptoError};
use crate::stream::{for_each_piece, read_full};

/// Magic bytes of the new format (followed by the version byte).
pub const NEW_MAGIC: [u8; 5] = *b"UCENC";
/// Current format version.
pub const VERSION: u8 = 1;
/// Plaintext bytes per chunk (every chunk but the last is exactly this long).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Nonce prefix length (random per file).
pub const NONCE_PREFIX_LEN: usize = 7;
/// Smallest and largest accepted wrapped-key length (RSA-2048 .. RSA-16384).
const WRAPPED_MIN: usize = 256;
const WRAPPED_MAX: usize = 2048;
const ENC_CHUNK: usize = CHUNK_SIZE + TAG_LEN;
const FORMAT: &str = "new format";

/// True if `first_bytes` starts with the new-format magic.
pub fn is_new_format(first_bytes: &[u8]) -> bool {
    first_bytes.starts_with(&NEW_MAGIC)
}

fn nonce(prefix: &[u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = last as u8;
    n
}

fn truncated(what: &str) -> CryptoError {
    CryptoError::Truncated {
        format: FORMAT,
        what: what.to_string(),
    }
}

/// A file's header and what it yields: the data key's cipher and the nonce prefix.
pub(crate) struct Header {
    /// The header bytes exactly as in the file (also every chunk's associated data).
    pub bytes: Vec<u8>,
    pub cipher: Aes256Gcm,
    pub prefix: [u8; NONCE_PREFIX_LEN],
}

/// What a writer keeps to verify its own header without the private key: the data key and
/// the OAEP seed it was wrapped with. Wrapping again with the same seed must give the same
/// bytes (OAEP is deterministic once the seed is fixed), so comparing them checks the wrapped
/// key with one public-key operation (`encryption-format.md`, "Verifying a header without
/// the private key"). In memory only; its `Debug` shows nothing of it.
pub(crate) struct KeyWrap {
    key: [u8; 32],
    seed: [u8; 32],
}

impl std::fmt::Debug for KeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyWrap(..)")
    }
}

impl Drop for KeyWrap {
    fn drop(&mut self) {
        // Best effort: the key also lives in the cipher's key schedule until that is dropped.
        self.key = [0; 32];
        self.seed = [0; 32];
    }
}

/// The fixed fields of a header, checked against `cert`: (header bytes, wrapped key range).
fn read_header_bytes<R: Read>(
    cert: &Certificate,
    inner: &mut R,
) -> Result<(Vec<u8>, std::ops::Range<usize>), CryptoError> {
    let herr = |e| CryptoError::io("new format header", e);
    let mut fixed = [0u8; 28];
    let n = read_full(inner, &mut fixed).map_err(herr)?;
    if n < NEW_MAGIC.len() || fixed[..NEW_MAGIC.len()] != NEW_MAGIC {
        return Err(CryptoError::BadMagic { format: FORMAT });
    }
    if n < fixed.len() {
        return Err(truncated("file ends inside the header"));
    }
    if fixed[5] != VERSION {
        return Err(CryptoError::UnsupportedVersion {
            format: FORMAT,
            version: fixed[5],
        });
    }
    let thumbprint = &fixed[6..26];
    if thumbprint != cert.thumbprint_bytes() {
        return Err(CryptoError::WrongCertificate {
            file_thumbprint: hex::encode_upper(thumbprint),
            cert_thumbprint: cert.thumbprint(),
        });
    }
    let wrapped_len = u16::from_be_bytes([fixed[26], fixed[27]]) as usize;
    if !(WRAPPED_MIN..=WRAPPED_MAX).contains(&wrapped_len) || wrapped_len != cert.key_len() {
        return Err(CryptoError::BadHeader {
            format: FORMAT,
            reason: format!(
                "wrapped key length {wrapped_len} does not match the {}-byte RSA key",
                cert.key_len()
            ),
        });
    }
    let mut bytes = fixed.to_vec();
    bytes.resize(fixed.len() + wrapped_len + NONCE_PREFIX_LEN, 0);
    let n = read_full(inner, &mut bytes[fixed.len()..]).map_err(herr)?;
    if n < wrapped_len + NONCE_PREFIX_LEN {
        return Err(truncated("file ends inside the header"));
    }
    Ok((bytes, fixed.len()..fixed.len() + wrapped_len))
}

impl Header {
    /// A new random data key and nonce prefix, the key wrapped for `cert`.
    pub fn fresh(cert: &Certificate) -> Result<Header, CryptoError> {
        Self::fresh_kept(cert).map(|(h, _)| h)
    }

    /// [`Header::fresh`], and what [`Header::read_written`] needs to verify it later.
    pub fn fresh_kept(cert: &Certificate) -> Result<(Header, KeyWrap), CryptoError> {
        let mut kept = KeyWrap {
            key: [0; 32],
            seed: [0; 32],
        };
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        OsRng.fill_bytes(&mut kept.key);
        OsRng.fill_bytes(&mut kept.seed);
        OsRng.fill_bytes(&mut prefix);
        let wrapped = cert.wrap_key_sha256(&kept.key, kept.seed)?;
        let wrapped_len = u16::try_from(wrapped.len())
            .map_err(|_| CryptoError::Rsa("RSA key too large".into()))?;
        let mut bytes = Vec::with_capacity(35 + wrapped.len());
        bytes.extend_from_slice(&NEW_MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&cert.thumbprint_bytes());
        bytes.extend_from_slice(&wrapped_len.to_be_bytes());
        bytes.extend_from_slice(&wrapped);
        bytes.extend_from_slice(&prefix);
        let header = Header {
            bytes,
            cipher: Aes256Gcm::new(&kept.key.into()),
            prefix,
        };
        Ok((header, kept))
    }

    /// Reads the header from `inner`, checks it names `cert`, unwraps the data key.
    pub fn read<R: Read>(cert: &Certificate, inner: &mut R) -> Result<Header, CryptoError> {
        let (bytes, wrapped) = read_header_bytes(cert, inner)?;
        let key = cert
            .unwrap_key_sha256(&bytes[wrapped.clone()])
            .ok_or_else(|| CryptoError::KeyUnwrap {
                format: FORMAT,
                thumbprint: cert.thumbprint(),
            })?;
        if key.len() != 32 {
            return Err(CryptoError::BadHeader {
                format: FORMAT,
                reason: format!("unwrapped key is {} bytes, expected 32", key.len()),
            });
        }
        Ok(Self::with_key(bytes, wrapped.end, &key))
    }

    /// Reads back a header this process wrote with [`Header::fresh_kept`]: checks it names
    /// `cert` and that its wrapped key is, byte for byte, `kept`'s key wrapped again for
    /// `cert` with `kept`'s seed (a public-key operation; no private-key operation). The
    /// caller must have proven once that `cert`'s private key unwraps what its public key
    /// wraps ([`Certificate::prove_key_pair`]); then the private key unwraps these bytes to
    /// `kept`'s key.
    pub fn read_written<R: Read>(
        cert: &Certificate,
        inner: &mut R,
        kept: &KeyWrap,
    ) -> Result<Header, CryptoError> {
        let (bytes, wrapped) = read_header_bytes(cert, inner)?;
        if bytes[wrapped.clone()] != cert.wrap_key_sha256(&kept.key, kept.seed)? {
            return Err(CryptoError::BadHeader {
                format: FORMAT,
                reason: "the wrapped key read back is not the one written".into(),
            });
        }
        Ok(Self::with_key(bytes, wrapped.end, &kept.key))
    }

    fn with_key(bytes: Vec<u8>, prefix_at: usize, key: &[u8]) -> Header {
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        prefix.copy_from_slice(&bytes[prefix_at..prefix_at + NONCE_PREFIX_LEN]);
        Header {
            bytes,
            cipher: Aes256Gcm::new_from_slice(key).expect("32-byte key"),
            prefix,
        }
    }

    /// The nonce of chunk `counter`.
    pub fn nonce(&self, counter: u32, last: bool) -> [u8; 12] {
        nonce(&self.prefix, counter, last)
    }
}

/// Streaming encryptor. The header is written by [`NewFormatWriter::new`]; call
/// [`NewFormatWriter::finish`] to write the final chunk — a writer dropped without `finish`
/// leaves a file that readers reject as truncated. Memory: one chunk.
pub struct NewFormatWriter<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    header: Vec<u8>,
    prefix: [u8; NONCE_PREFIX_LEN],
    counter: u32,
    buf: Vec<u8>,
}

impl<W: Write> NewFormatWriter<W> {
    /// Generates a data key and nonce prefix, wraps the key for `cert`, writes the header.
    pub fn new(cert: &Certificate, mut inner: W) -> Result<Self, CryptoError> {
        let fresh = Header::fresh(cert)?;
        inner
            .write_all(&fresh.bytes)
            .map_err(|e| CryptoError::io("new format output", e))?;
        Ok(NewFormatWriter {
            inner,
            cipher: fresh.cipher,
            header: fresh.bytes,
            prefix: fresh.prefix,
            counter: 0,
            buf: Vec::with_capacity(ENC_CHUNK),
        })
    }

    fn emit(&mut self, last: bool) -> Result<(), CryptoError> {
        let n = nonce(&self.prefix, self.counter, last);
        self.cipher
            .encrypt_in_place(&n.into(), &self.header, &mut self.buf)
            .map_err(|_| CryptoError::Usage("AES-GCM encryption failed".into()))?;
        self.inner
            .write_all(&self.buf)
            .map_err(|e| CryptoError::io("new format output", e))?;
        self.buf.clear();
        if !last {
            self.counter = self
                .counter
                .checked_add(1)
                .ok_or_else(|| CryptoError::Usage("too many chunks for one file".into()))?;
        }
        Ok(())
    }

    /// Writes the final chunk, flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CryptoError> {
        self.emit(true)?;
        self.inner
            .flush()
            .map_err(|e| CryptoError::io("new format output", e))?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for NewFormatWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full buffer is emitted as a non-final chunk only once more data arrives.
            if self.buf.len() == CHUNK_SIZE {
                self.emit(false)?;
            }
            let take = rest.len().min(CHUNK_SIZE - self.buf.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streaming decryptor. [`NewFormatReader::new`] reads and checks the header and unwraps the
/// key; `read` yields authenticated plaintext only (a chunk is returned after its tag has been
/// verified). Errors come as `io::Error`s carrying a [`CryptoError`]
/// (`CryptoError::from(io_err)` recovers it). Memory: about two chunks.
pub type NewFormatReader<R> = PlaintextReader<NewFormatDecrypt<R>>;

/// The new format's side of [`NewFormatReader`]: one authenticated chunk at a time.
pub struct NewFormatDecrypt<R> {
    inner: R,
    cipher: Aes256Gcm,
    header: Vec<u8>,
    prefix: [u8; NONCE_PREFIX_LEN],
    counter: u64,
    enc: Vec<u8>,
    done: bool,
}

impl<R: Read> NewFormatReader<R> {
    /// Reads the header from `inner`, checks it names `cert`, unwraps the data key.
    pub fn new(cert: &Certificate, mut inner: R) -> Result<Self, CryptoError> {
        let h = Header::read(cert, &mut inner)?;
        let dec = NewFormatDecrypt {
            inner,
            cipher: h.cipher,
            header: h.bytes,
            prefix: h.prefix,
            counter: 0,
            enc: Vec::with_capacity(ENC_CHUNK + 1),
            done: false,
        };
        // No buffer to allocate: each decrypted chunk replaces it (`next_piece`).
        Ok(PlaintextReader::with_decrypt(dec, 0))
    }
}

impl<R> NewFormatDecrypt<R> {
    fn open(&self, data: &[u8], last: bool) -> Option<Vec<u8>> {
        let counter = u32::try_from(self.counter).ok()?;
        let n = nonce(&self.prefix, counter, last);
        self.cipher
            .decrypt(
                &n.into(),
                Payload {
                    msg: data,
                    aad: &self.header,
                },
            )
            .ok()
    }
}

impl<R: Read> Decrypt for NewFormatDecrypt<R> {
    const FORMAT: &'static str = FORMAT;

    fn next_piece(&mut self, out: &mut Vec<u8>) -> Result<bool, CryptoError> {
        if self.done {
            return Ok(false);
        }
        // Read one byte past a full chunk to learn whether this chunk is the last one.
        let have = self.enc.len();
        self.enc.resize(ENC_CHUNK + 1, 0);
        let n = match read_full(&mut self.inner, &mut self.enc[have..]) {
            Ok(n) => n,
            Err(e) => {
                self.enc.truncate(have);
                return Err(CryptoError::io("new format input", e));
            }
        };
        self.enc.truncate(have + n);
        let chunk = self.counter;
        if self.enc.len() > ENC_CHUNK {
            let plain = match self.open(&self.enc[..ENC_CHUNK], false) {
                Some(p) => p,
                None if self.open(&self.enc[..ENC_CHUNK], true).is_some() => {
                    return Err(CryptoError::TrailingData { chunk });
                }
                None => return Err(CryptoError::Tampered { chunk }),
            };
            self.enc.drain(..ENC_CHUNK);
            self.counter += 1;
            *out = plain;
        } else {
            self.done = true;
            if self.enc.len() < TAG_LEN {
                return Err(truncated(if self.enc.is_empty() && chunk == 0 {
                    "no chunk after the header"
                } else {
                    "last chunk shorter than its tag"
                }));
            }
            let plain = match self.open(&self.enc, true) {
                Some(p) => p,
                None if self.enc.len() == ENC_CHUNK && self.open(&self.enc, false).is_some() => {
                    return Err(truncated("the final chunk is missing"));
                }
                None => return Err(CryptoError::Tampered { chunk }),
            };
            self.enc.clear();
            *out = plain;
        }
        Ok(true)
    }
}

/// Decrypts and authenticates a whole new-format stream; returns the plaintext SHA-256.
pub fn verify_new<R: Read>(cert: &Certificate, reader: R) -> Result<[u8; 32], CryptoError> {
    let reader = NewFormatReader::new(cert, reader)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let read_error = |e| CryptoError::io("new format input", e);
    for_each_piece(reader, &mut buf, read_error, |piece| {
        hasher.update(piece);
        Ok(())
    })?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{cert_a, cert_b};
    use crate::pseudo_random::bytes as data;

    const HDR: usize = 35 + 256;

    fn enc(plain: &[u8]) -> Vec<u8> {
        let mut w = NewFormatWriter::new(cert_a(), Vec::new()).unwrap();
        // Odd-sized writes exercise the chunk boundary logic.
        for piece in plain.chunks(10_007) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn dec(cert: &Certificate, file: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut r = NewFormatReader::new(cert, file)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn chunks_len(len: usize) -> usize {
        (len / CHUNK_SIZE + usize::from(!len.is_multiple_of(CHUNK_SIZE) || len == 0)).max(1)
    }

    #[test]
    fn round_trip_sizes() {
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            2 * CHUNK_SIZE,
            5 * 1024 * 1024 + 3,
        ] {
            let plain = data(len, len as u64 + 1);
            let file = enc(&plain);
            assert!(is_new_format(&file));
            assert_eq!(
                file.len(),
                HDR + len + chunks_len(len) * TAG_LEN,
                "len {len}"
            );
            assert_eq!(dec(cert_a(), &file).unwrap(), plain, "len {len}");
            let digest: [u8; 32] = Sha256::digest(&plain).into();
            assert_eq!(verify_new(cert_a(), &file[..]).unwrap(), digest);
        }
    }

    #[test]
    fn empty_file_is_one_empty_final_chunk() {
        let file = enc(b"");
        assert_eq!(file.len(), HDR + TAG_LEN);
        assert_eq!(&file[..6], b"UCENC\x01");
        assert_eq!(&file[6..26], &cert_a().thumbprint_bytes());
        assert_eq!(&file[26..28], &256u16.to_be_bytes());
    }

    #[test]
    fn small_reads_work() {
        let plain = data(CHUNK_SIZE * 2 + 5, 3);
        let file = enc(&plain);
        let mut r = NewFormatReader::new(cert_a(), &file[..]).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
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
    fn tampered_bytes_are_rejected() {
        let plain = data(3 * CHUNK_SIZE + 10, 4);
        let file = enc(&plain);
        // In each chunk, in the last chunk's tag, and in the header's nonce prefix.
        let cases = [
            (HDR + 5, 0),
            (HDR + ENC_CHUNK + 100, 1),
            (file.len() - 1, 3),
            (HDR - 1, 0),
        ];
        for (pos, chunk) in cases {
            let mut t = file.clone();
            t[pos] ^= 0x40;
            match dec(cert_a(), &t) {
                Err(CryptoError::Tampered { chunk: c }) => assert_eq!(c, chunk, "pos {pos}"),
                other => panic!("pos {pos}: expected Tampered, got {other:?}"),
            }
            assert!(verify_new(cert_a(), &t[..]).is_err());
        }
    }

    #[test]
    fn tampered_header_fields_are_rejected() {
        let file = enc(b"hello");
        let mut t = file.clone();
        t[5] = 2;
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::UnsupportedVersion { version: 2, .. })
        ));
        let mut t = file.clone();
        t[10] ^= 1;
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::WrongCertificate { .. })
        ));
        let mut t = file.clone();
        t[27] ^= 1;
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::BadHeader { .. })
        ));
        let mut t = file.clone();
        t[100] ^= 1;
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::KeyUnwrap { .. })
        ));
        let mut t = file.clone();
        t[0] = b'X';
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::BadMagic { .. })
        ));
        assert!(matches!(
            dec(cert_a(), &file[..20]),
            Err(CryptoError::Truncated { .. })
        ));
        assert!(matches!(
            dec(cert_a(), &file[..HDR - 1]),
            Err(CryptoError::Truncated { .. })
        ));
        assert!(matches!(
            dec(cert_a(), &file[..HDR]),
            Err(CryptoError::Truncated { .. })
        ));
    }

    #[test]
    fn truncation_is_rejected() {
        let plain = data(3 * CHUNK_SIZE + 10, 5);
        let file = enc(&plain);
        // Drop the last (short) chunk: the file now ends on a non-final chunk.
        let dropped = &file[..HDR + 3 * ENC_CHUNK];
        assert!(matches!(
            dec(cert_a(), dropped),
            Err(CryptoError::Truncated { .. })
        ));
        // Drop the last full chunk of an exact multiple.
        let exact = enc(&data(2 * CHUNK_SIZE, 6));
        let dropped = &exact[..HDR + ENC_CHUNK];
        assert!(matches!(
            dec(cert_a(), dropped),
            Err(CryptoError::Truncated { .. })
        ));
        // Cut in the middle of a chunk.
        for cut in [HDR + ENC_CHUNK + 1000, file.len() - 1, HDR + 5] {
            match dec(cert_a(), &file[..cut]) {
                Err(CryptoError::Tampered { .. }) | Err(CryptoError::Truncated { .. }) => {}
                other => panic!("cut {cut}: expected rejection, got {other:?}"),
            }
        }
        // The plaintext before the cut is released chunk by chunk, but reading ends in an error.
        let mut r = NewFormatReader::new(cert_a(), dropped).unwrap();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        // Errors are sticky: reading again does not report a clean end of file.
        assert!(r.read(&mut [0u8; 10]).is_err());
    }

    #[test]
    fn unfinished_writer_gives_truncated_file() {
        let mut out = Vec::new();
        {
            let mut w = NewFormatWriter::new(cert_a(), &mut out).unwrap();
            w.write_all(&data(CHUNK_SIZE + 10, 8)).unwrap();
            // dropped without finish()
        }
        assert!(matches!(
            dec(cert_a(), &out),
            Err(CryptoError::Truncated { .. })
        ));
    }

    #[test]
    fn reordered_chunks_are_rejected() {
        let plain = data(3 * CHUNK_SIZE + 10, 7);
        let file = enc(&plain);
        let c = |i: usize| HDR + i * ENC_CHUNK..HDR + (i + 1) * ENC_CHUNK;
        let mut t = file[..HDR].to_vec();
        t.extend_from_slice(&file[c(1)]);
        t.extend_from_slice(&file[c(0)]);
        t.extend_from_slice(&file[HDR + 2 * ENC_CHUNK..]);
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::Tampered { chunk: 0 })
        ));
        // Duplicated chunk.
        let mut t = file[..HDR + 2 * ENC_CHUNK].to_vec();
        t.extend_from_slice(&file[c(1)]);
        t.extend_from_slice(&file[HDR + 3 * ENC_CHUNK..]);
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::Tampered { chunk: 2 })
        ));
        // Chunk spliced from another file with the same key is impossible (fresh key per file);
        // a chunk from another file fails too.
        let other = enc(&plain);
        let mut t = file[..HDR].to_vec();
        t.extend_from_slice(&other[HDR..]);
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::Tampered { chunk: 0 })
        ));
    }

    #[test]
    fn trailing_data_is_rejected() {
        let file = enc(&data(CHUNK_SIZE, 9));
        let mut t = file.clone();
        t.extend_from_slice(b"junk");
        assert!(matches!(
            dec(cert_a(), &t),
            Err(CryptoError::TrailingData { chunk: 0 })
        ));
        let mut t = enc(b"short");
        t.push(0);
        assert!(dec(cert_a(), &t).is_err());
    }

    #[test]
    fn wrong_certificate_is_rejected() {
        let file = enc(b"secret");
        match dec(cert_b(), &file) {
            Err(CryptoError::WrongCertificate {
                file_thumbprint,
                cert_thumbprint,
            }) => {
                assert_eq!(file_thumbprint, cert_a().thumbprint());
                assert_eq!(cert_thumbprint, cert_b().thumbprint());
            }
            other => panic!("expected WrongCertificate, got {other:?}"),
        }
    }
}
