//! Re-encryption and verification of whole files on every core: the re-encryption step's hot
//! path. Same formats as the streaming [`super::LegacyReader`], [`super::NewFormatReader`]
//! and [`super::verify_new`] (the tests check one against the other); the difference is the
//! order of work.
//!
//! The new format's chunks are independent (each has its own nonce), and so are the legacy
//! ciphertext's 64 KiB slices (CBC decryption of a slice needs only the block before it). So
//! chunk `i` of the new file is made from legacy bytes `[i·C, (i+1)·C)` alone, `C` =
//! [`CHUNK_SIZE`]. The last chunk's length depends on the legacy padding, which is read first
//! from the file's last two blocks, so the whole layout is known before any chunk is made.
//!
//! Work goes in windows of [`WINDOW`] chunks: while the chunks of one window are decrypted,
//! hashed and encrypted in parallel, the previous window is written and the next one read.
//! Memory: four window buffers per file (about 8 MiB), whatever the file size, plus 32 bytes
//! of plaintext digest per chunk.
//!
//! Verification reads the staged file back, checks its header and length, decrypts and
//! authenticates every chunk in parallel and compares each chunk's plaintext digest with the
//! one computed while writing (BLAKE3, in memory only: neither plaintext nor digest is ever
//! stored); in the same read it computes the SHA-256 of the whole staged file (the new
//! ciphertext, recorded by the journal).

use std::fs::File;
use std::io::Write;

use aes::cipher::array::Array;
use aes::cipher::{BlockCipherDecrypt, BlockModeDecrypt, InnerIvInit, KeyInit};
use aes_gcm::aead::AeadInOut;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::format::{Header, KeyWrap, CHUNK_SIZE, TAG_LEN};
use super::legacy;
use super::{Certificate, CryptoError};

/// Chunks per window (2 MiB of plaintext).
pub const WINDOW: usize = 32;
const BLOCK: usize = 16;
const ENC_CHUNK: usize = CHUNK_SIZE + TAG_LEN;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// What [`reencrypt_file`] leaves for [`verify_file`]: the layout and the plaintext digests.
#[derive(Debug)]
pub struct Staged {
    /// Plaintext bytes.
    pub plaintext_len: u64,
    /// BLAKE3 of each chunk's plaintext.
    digests: Vec<[u8; 32]>,
    /// The data key and OAEP seed of the header written: the header is verified by wrapping
    /// again, not by unwrapping (one private-key operation per file, the legacy one).
    wrap: KeyWrap,
}

impl Staged {
    fn chunks(&self) -> usize {
        self.digests.len()
    }

    fn last_plain(&self) -> usize {
        (self.plaintext_len - (self.chunks() as u64 - 1) * CHUNK_SIZE as u64) as usize
    }

    /// Length of chunk `i` in the new file (plaintext + tag).
    fn enc_len(&self, i: usize) -> usize {
        if i + 1 == self.chunks() {
            self.last_plain() + TAG_LEN
        } else {
            ENC_CHUNK
        }
    }
}

/// Chunk layout of a legacy file: `ct_len` ciphertext bytes decrypting to `plain_len`.
struct Layout {
    ct_len: u64,
    plain_len: u64,
    chunks: usize,
}

impl Layout {
    fn new(ct_len: u64, pad: usize) -> Result<Layout, CryptoError> {
        let plain_len = ct_len - pad as u64;
        let chunks = plain_len.div_ceil(CHUNK_SIZE as u64).max(1);
        let chunks = u32::try_from(chunks)
            .map_err(|_| CryptoError::Usage("too many chunks for one file".into()))?
            as usize;
        Ok(Layout {
            ct_len,
            plain_len,
            chunks,
        })
    }

    /// Legacy ciphertext range of chunk `i` (the last one includes the padding).
    fn ct_range(&self, i: usize) -> (u64, u64) {
        let start = (i * CHUNK_SIZE) as u64;
        let end = if i + 1 == self.chunks {
            self.ct_len
        } else {
            start + CHUNK_SIZE as u64
        };
        (start, end)
    }

    fn plain_len_of(&self, i: usize) -> usize {
        let (start, _) = self.ct_range(i);
        (self.plain_len - start).min(CHUNK_SIZE as u64) as usize
    }
}

/// The windows `a..b` covering chunks `0..chunks`.
fn windows(chunks: usize) -> Vec<(usize, usize)> {
    (0..chunks)
        .step_by(WINDOW)
        .map(|a| (a, (a + WINDOW).min(chunks)))
        .collect()
}

/// `buf.len()` bytes of `f` at `offset`; a short file is a truncated `format` file.
fn read_at(f: &File, buf: &mut [u8], offset: u64, format: &'static str) -> Result<(), CryptoError> {
    let mut at = At {
        file: f,
        pos: offset,
    };
    let n = crate::stream::read_full(&mut at, buf)
        .map_err(|e| CryptoError::io(format!("{format} input"), e))?;
    if n < buf.len() {
        return Err(CryptoError::Truncated {
            format,
            what: format!("{format} input changed while it was read"),
        });
    }
    Ok(())
}

/// Reads a file from `pos` on by offset (`platform::read_at`): it does not depend on (or, on
/// Unix, move) the file's cursor, so threads may share the file.
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl std::io::Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = crate::platform::read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Decrypts the legacy file `src` (for `legacy_cert`) and writes it to `out` in the new
/// format (for `new_cert`), chunks in parallel. `out` is written from its current position
/// and not synced; `on_bytes` gets the legacy bytes done. Fails without finishing `out` if
/// any part of `src` does not decrypt.
pub fn reencrypt_file(
    legacy_cert: &Certificate,
    new_cert: &Certificate,
    src: &File,
    out: &File,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Staged, CryptoError> {
    const FORMAT: &str = "legacy";
    let (key, iv) = legacy::read_header(legacy_cert, &mut At { file: src, pos: 0 })?;
    let hdr = legacy::header_len(legacy_cert) as u64;
    let len = src
        .metadata()
        .map_err(|e| CryptoError::io(format!("{FORMAT} input"), e))?
        .len();
    let ct_len = len.saturating_sub(hdr);
    let truncated = |what: &str| CryptoError::Truncated {
        format: FORMAT,
        what: what.into(),
    };
    if ct_len == 0 {
        return Err(truncated("no ciphertext block"));
    }
    if ct_len % BLOCK as u64 != 0 {
        return Err(truncated("ciphertext is not a whole number of blocks"));
    }
    let aes = aes::Aes256::new(&key.into());
    // The padding, from the last block and the one before it (or the IV).
    let mut tail = [0u8; 2 * BLOCK];
    if ct_len >= 2 * BLOCK as u64 {
        read_at(src, &mut tail, hdr + ct_len - 2 * BLOCK as u64, FORMAT)?;
    } else {
        tail[..BLOCK].copy_from_slice(&iv);
        read_at(src, &mut tail[BLOCK..], hdr, FORMAT)?;
    }
    let (prev, last) = tail.split_at_mut(BLOCK);
    aes.decrypt_block(last.try_into().expect("one block"));
    last.iter_mut().zip(prev.iter()).for_each(|(b, p)| *b ^= p);
    let layout = Layout::new(ct_len, legacy::padding(last)?)?;

    let (h, wrap) = Header::fresh_kept(new_cert)?;
    let mut w = out;
    w.write_all(&h.bytes)
        .map_err(|e| CryptoError::io("new format output", e))?;

    // The legacy bytes of window `a..b`, preceded by the block before them (their IV).
    let read_window = |a: usize, b: usize, buf: &mut Vec<u8>| -> Result<(), CryptoError> {
        let (start, _) = layout.ct_range(a);
        let (_, end) = layout.ct_range(b - 1);
        buf.resize(BLOCK + (end - start) as usize, 0);
        if a == 0 {
            buf[..BLOCK].copy_from_slice(&iv);
            read_at(src, &mut buf[BLOCK..], hdr, FORMAT)
        } else {
            read_at(src, buf, hdr + start - BLOCK as u64, FORMAT)
        }
    };
    // Chunk `i` from its legacy bytes `ct` (IV first) into `dst`; returns its digest.
    let make_chunk = |i: usize, ct: &[u8], dst: &mut [u8]| -> Result<[u8; 32], CryptoError> {
        let (iv, ct) = ct.split_at(BLOCK);
        let dst = &mut dst[..ct.len().max(layout.plain_len_of(i) + TAG_LEN)];
        Aes256CbcDec::inner_iv_slice_init(aes.clone(), iv)
            .expect("16-byte IV")
            .decrypt_blocks_b2b(
                Array::slice_as_chunks(ct).0,
                Array::slice_as_chunks_mut(&mut dst[..ct.len()]).0,
            )
            .expect("same number of whole blocks");
        let plain = layout.plain_len_of(i);
        let last = i + 1 == layout.chunks;
        if last && legacy::padding(&dst[ct.len() - BLOCK..ct.len()])? != ct.len() - plain {
            return Err(CryptoError::BadPadding);
        }
        let digest = *blake3::hash(&dst[..plain]).as_bytes();
        let nonce = h.nonce(i as u32, last);
        let tag = h
            .cipher
            .encrypt_inout_detached(&nonce.into(), &h.bytes, (&mut dst[..plain]).into())
            .map_err(|_| CryptoError::Usage("AES-GCM encryption failed".into()))?;
        dst[plain..plain + TAG_LEN].copy_from_slice(&tag);
        Ok(digest)
    };
    // Window `a..b` from `input` into `output`.
    let make_window = |a: usize, b: usize, input: &[u8], output: &mut Vec<u8>| {
        let (base, _) = layout.ct_range(a);
        let out_len: usize = (a..b).map(|i| layout.plain_len_of(i) + TAG_LEN).sum();
        // The last chunk's slot must also fit its padded ciphertext while it is decrypted.
        output.resize(out_len + BLOCK, 0);
        let slots: Vec<(usize, &mut [u8])> = output
            .chunks_mut(ENC_CHUNK)
            .take(b - a)
            .enumerate()
            .map(|(k, s)| (a + k, s))
            .collect();
        let digests = slots
            .into_par_iter()
            .map(|(i, slot)| {
                let (start, end) = layout.ct_range(i);
                let from = (start - base) as usize;
                let to = (end - base) as usize + BLOCK;
                make_chunk(i, &input[from..to], slot)
            })
            .collect::<Result<Vec<_>, _>>();
        output.truncate(out_len);
        digests
    };

    let windows = windows(layout.chunks);
    let mut digests = Vec::with_capacity(layout.chunks);
    let (mut input, mut next_input) = (Vec::new(), Vec::new());
    let (mut output, mut done_output) = (Vec::new(), Vec::<u8>::new());
    read_window(windows[0].0, windows[0].1, &mut input)?;
    for (k, &(a, b)) in windows.iter().enumerate() {
        // Make window k while writing window k-1 and reading window k+1.
        let (made, io) = rayon::join(
            || make_window(a, b, &input, &mut output),
            || -> Result<(), CryptoError> {
                w.write_all(&done_output)
                    .map_err(|e| CryptoError::io("new format output", e))?;
                // The final fsync then finds most of the file already on its way to disk.
                crate::durable_fs::start_writeback(out)
                    .map_err(|e| CryptoError::io("new format output", e))?;
                if let Some(&(na, nb)) = windows.get(k + 1) {
                    read_window(na, nb, &mut next_input)?;
                }
                Ok(())
            },
        );
        io?;
        digests.extend(made?);
        let (start, end) = (layout.ct_range(a).0, layout.ct_range(b - 1).1);
        on_bytes(end - start);
        std::mem::swap(&mut input, &mut next_input);
        std::mem::swap(&mut output, &mut done_output);
    }
    w.write_all(&done_output)
        .map_err(|e| CryptoError::io("new format output", e))?;
    Ok(Staged {
        plaintext_len: layout.plain_len,
        digests,
        wrap,
    })
}

/// Reads the new-format file `staged` back: header for `cert`, its wrapped key equal to the
/// one written (wrapped again with the kept seed: a public-key operation, after the
/// once-per-certificate proof [`Certificate::prove_key_pair`]), exact length, every chunk
/// authenticated and its plaintext digest equal to the one in `expect`. Returns the SHA-256
/// and the length of the whole file.
pub fn verify_file(
    cert: &Certificate,
    staged: &File,
    expect: &Staged,
) -> Result<([u8; 32], u64), CryptoError> {
    const FORMAT: &str = "new format";
    cert.prove_key_pair()?;
    let h = Header::read_written(
        cert,
        &mut At {
            file: staged,
            pos: 0,
        },
        &expect.wrap,
    )?;
    let hdr = h.bytes.len() as u64;
    let n = expect.chunks();
    let want = hdr + (n as u64 - 1) * ENC_CHUNK as u64 + expect.enc_len(n - 1) as u64;
    let len = staged
        .metadata()
        .map_err(|e| CryptoError::io(format!("{FORMAT} input"), e))?
        .len();
    if len < want {
        return Err(CryptoError::Truncated {
            format: "new format",
            what: format!("{len} bytes, {want} expected"),
        });
    }
    if len > want {
        return Err(CryptoError::TrailingData {
            chunk: n as u64 - 1,
        });
    }
    let mut sha = Sha256::new();
    sha.update(&h.bytes);

    let read_window = |a: usize, b: usize, buf: &mut Vec<u8>| {
        let size: usize = (a..b).map(|i| expect.enc_len(i)).sum();
        buf.resize(size, 0);
        read_at(staged, buf, hdr + (a * ENC_CHUNK) as u64, FORMAT)
    };
    // Decrypts window `a..` in place: its SHA-256 was taken when it was read.
    let check_window = |a: usize, input: &mut [u8]| -> Result<(), CryptoError> {
        input
            .par_chunks_mut(ENC_CHUNK)
            .enumerate()
            .try_for_each(|(k, enc)| {
                let i = a + k;
                let (plain, tag) = enc.split_at_mut(enc.len() - TAG_LEN);
                let nonce = h.nonce(i as u32, i + 1 == n);
                h.cipher
                    .decrypt_inout_detached(
                        &nonce.into(),
                        &h.bytes,
                        plain.into(),
                        (&*tag).try_into().expect("tag length"),
                    )
                    .map_err(|_| CryptoError::Tampered { chunk: i as u64 })?;
                if *blake3::hash(plain).as_bytes() != expect.digests[i] {
                    return Err(CryptoError::Usage(format!(
                        "new format: chunk {i} decrypts to other bytes than were encrypted"
                    )));
                }
                Ok(())
            })
    };

    let windows = windows(n);
    let (mut input, mut next_input) = (Vec::new(), Vec::new());
    read_window(windows[0].0, windows[0].1, &mut input)?;
    sha.update(&input);
    for (k, &(a, _)) in windows.iter().enumerate() {
        // Check window k while reading and hashing window k+1 (in file order).
        let (checked, io) = rayon::join(
            || check_window(a, &mut input),
            || -> Result<(), CryptoError> {
                if let Some(&(na, nb)) = windows.get(k + 1) {
                    read_window(na, nb, &mut next_input)?;
                    sha.update(&next_input);
                }
                Ok(())
            },
        );
        checked?;
        io?;
        std::mem::swap(&mut input, &mut next_input);
    }
    Ok((sha.finalize().into(), len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{cert_a, cert_b};
    use crate::crypto::{encrypt_legacy, verify_new, NewFormatReader};
    use crate::pseudo_random::bytes as data;
    use std::io::{Read, Seek, SeekFrom};

    fn legacy_file(plain: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        encrypt_legacy(cert_a(), plain, &mut f).unwrap();
        f
    }

    fn reencrypt(plain: &[u8]) -> (File, Staged) {
        let src = legacy_file(plain);
        let out = tempfile::tempfile().unwrap();
        let done = std::sync::atomic::AtomicU64::new(0);
        let staged = reencrypt_file(cert_a(), cert_a(), &src, &out, &|n| {
            done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        let legacy_ct = src.metadata().unwrap().len() - legacy::header_len(cert_a()) as u64;
        assert_eq!(
            done.into_inner(),
            legacy_ct,
            "progress counts every legacy byte"
        );
        (out, staged)
    }

    fn bytes_of(mut f: &File) -> Vec<u8> {
        let mut v = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn parallel_output_is_the_streaming_format_across_sizes() {
        let c = CHUNK_SIZE;
        for len in [
            0,
            1,
            15,
            16,
            17,
            c - 16,
            c - 1,
            c,
            c + 1,
            c + 16,
            WINDOW * c,
            WINDOW * c + 1,
            3 * WINDOW * c + 12_345,
        ] {
            let plain = data(len, len as u64);
            let (out, staged) = reencrypt(&plain);
            assert_eq!(staged.plaintext_len, len as u64);
            let file = bytes_of(&out);
            // The streaming reader (a separate implementation) reads it back.
            let mut back = Vec::new();
            NewFormatReader::new(cert_a(), &file[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == plain, "len {len}: round trip");
            let (sha, n) = verify_file(cert_a(), &out, &staged).unwrap();
            assert_eq!(n, file.len() as u64);
            assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&file)), "len {len}");
            assert_eq!(
                verify_new(cert_a(), &file[..]).unwrap(),
                <[u8; 32]>::from(Sha256::digest(&plain))
            );
        }
    }

    #[test]
    fn verify_rejects_a_changed_truncated_or_extended_file() {
        let plain = data(3 * CHUNK_SIZE + 100, 7);
        let (out, staged) = reencrypt(&plain);
        let good = bytes_of(&out);
        let with = |bytes: &[u8]| {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(bytes).unwrap();
            verify_file(cert_a(), &f, &staged).unwrap_err()
        };
        let mut flipped = good.clone();
        let at = good.len() - 2 * CHUNK_SIZE;
        flipped[at] ^= 1;
        assert!(matches!(with(&flipped), CryptoError::Tampered { chunk: 1 }));
        assert!(matches!(
            with(&good[..good.len() - 1]),
            CryptoError::Truncated { .. }
        ));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(with(&longer), CryptoError::TrailingData { .. }));
        // Another file of the same length (fresh key and seed): its wrapped key is not the
        // one written.
        let other = reencrypt(&data(3 * CHUNK_SIZE + 100, 8)).0;
        let e = verify_file(cert_a(), &other, &staged).unwrap_err();
        assert!(
            e.to_string()
                .contains("wrapped key read back is not the one written"),
            "{e}"
        );
        // One byte of the wrapped key changed on disk.
        let mut wrapped_flipped = good.clone();
        wrapped_flipped[28 + 100] ^= 1;
        let e = with(&wrapped_flipped);
        assert!(matches!(e, CryptoError::BadHeader { .. }), "{e}");
        // Every chunk authenticates, but its plaintext is not what was encrypted.
        let mut wrong_digest = reencrypt(&plain);
        wrong_digest.1.digests[0][0] ^= 1;
        let e = verify_file(cert_a(), &wrong_digest.0, &wrong_digest.1).unwrap_err();
        assert!(
            e.to_string().contains("chunk 0 decrypts to other bytes"),
            "{e}"
        );
        assert!(matches!(
            verify_file(cert_b(), &out, &staged).unwrap_err(),
            CryptoError::WrongCertificate { .. }
        ));
    }

    #[test]
    fn bad_legacy_input_is_rejected_before_anything_is_written() {
        let good = bytes_of(&legacy_file(&data(100_000, 3)));
        let hdr = legacy::header_len(cert_a());
        let run = |bytes: &[u8]| {
            let mut src = tempfile::tempfile().unwrap();
            src.write_all(bytes).unwrap();
            src.seek(SeekFrom::Start(0)).unwrap();
            let out = tempfile::tempfile().unwrap();
            let e = reencrypt_file(cert_a(), cert_a(), &src, &out, &|_| {}).unwrap_err();
            (e, out.metadata().unwrap().len())
        };
        let (e, written) = run(&good[..hdr]);
        assert!(e.to_string().contains("no ciphertext block"), "{e}");
        assert_eq!(written, 0);
        let (e, _) = run(&good[..good.len() - 1]);
        assert!(e.to_string().contains("whole number of blocks"), "{e}");
        let mut bad_pad = good.clone();
        let n = bad_pad.len();
        bad_pad[n - 17] ^= 0x55; // changes the last block's plaintext, so its padding
        let (e, written) = run(&bad_pad);
        assert!(matches!(e, CryptoError::BadPadding), "{e}");
        assert_eq!(written, 0);
        let (e, _) = run(&good[..hdr - 1]);
        assert!(matches!(e, CryptoError::Truncated { .. }), "{e}");
        assert!(matches!(
            reencrypt_file(
                cert_b(),
                cert_b(),
                &legacy_file(b"x"),
                &tempfile::tempfile().unwrap(),
                &|_| {}
            )
            .unwrap_err(),
            CryptoError::KeyUnwrap { .. }
        ));
    }

    #[test]
    fn one_private_key_operation_per_file() {
        let f = crate::crypto::test_support::fixture();
        // A certificate of its own: the counter and the memos start empty.
        let cert = Certificate::from_pfx(&f.pfx_default, "pass-A").unwrap();
        let files = 5;
        for k in 0..files {
            let plain = data(4096 + 1000 * k, 40 + k as u64);
            let src = legacy_file(&plain);
            let out = tempfile::tempfile().unwrap();
            let staged = reencrypt_file(&cert, &cert, &src, &out, &|_| {}).unwrap();
            verify_file(&cert, &out, &staged).unwrap();
            let mut back = Vec::new();
            NewFormatReader::new(&cert, &bytes_of(&out)[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == plain, "file {k} round trip");
        }
        // Each file's legacy unwrap, one key-pair proof, and the reader's unwraps above.
        assert_eq!(
            cert.private_key_operations(),
            files as u64 + 1 + files as u64
        );
    }

    #[test]
    fn a_key_pair_that_does_not_match_fails_verification() {
        let mixed = cert_a().with_public_key_of(cert_b());
        let src = legacy_file(&data(10_000, 5));
        let out = tempfile::tempfile().unwrap();
        // Written for the public key it shows (cert B's), which cert A's private key cannot
        // unwrap: verification refuses it although the bytes are what was written.
        let staged = reencrypt_file(cert_a(), &mixed, &src, &out, &|_| {}).unwrap();
        assert!(matches!(
            verify_file(&mixed, &out, &staged).unwrap_err(),
            CryptoError::KeyPairMismatch { .. }
        ));
    }
}
