//! The `read` of the two decrypting readers ([`super::LegacyReader`],
//! [`super::NewFormatReader`]): each format decrypts its input a piece at a time, and this
//! hands the plaintext out and refuses to go on after an error.

use std::io::{self, Read};

use super::CryptoError;

/// A format's decryption, one piece of plaintext at a time.
pub trait Decrypt {
    /// The format's name in errors.
    const FORMAT: &'static str;

    /// Puts the next piece of plaintext into `out`, in place of the last one; `Ok(false)` at
    /// the end of the plaintext. A piece may be empty.
    fn next_piece(&mut self, out: &mut Vec<u8>) -> Result<bool, CryptoError>;
}

/// A reader of the plaintext `D` decrypts. Errors come as `io::Error`s carrying a
/// [`CryptoError`] (`CryptoError::from(io_err)` recovers it); every read after one fails: a
/// piece may have been cut short, so what would follow is not the plaintext.
pub struct PlaintextReader<D> {
    dec: D,
    out: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl<D> PlaintextReader<D> {
    /// `capacity`: the size of a piece, so the buffer is allocated once.
    pub(crate) fn with_decrypt(dec: D, capacity: usize) -> Self {
        PlaintextReader {
            dec,
            out: Vec::with_capacity(capacity),
            pos: 0,
            failed: false,
        }
    }
}

impl<D: Decrypt> Read for PlaintextReader<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.failed {
            let message = format!("{}: read after a decryption error", D::FORMAT);
            return Err(CryptoError::Usage(message).into());
        }
        while self.pos >= self.out.len() {
            match self.dec.next_piece(&mut self.out) {
                Ok(true) => self.pos = 0,
                Ok(false) => return Ok(0),
                Err(e) => {
                    self.failed = true;
                    return Err(e.into());
                }
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
