//! Reading a stream, written once for every reader in the crate: one read, a buffer filled
//! up to the end of the input, an input read to its end in pieces. An interrupted read is
//! retried, as std's `read_exact` and `read_to_end` do.

use std::io::{self, Read};

/// One `read` of `r` into `buf`, retried while it is interrupted.
pub fn read_some<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read (fewer than
/// `buf.len()` only at the end). Unlike `read_exact`, a short input is not an error: the
/// callers tell a truncated file from an I/O failure.
pub fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match read_some(r, &mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads `r` to its end through `buf`, handing each piece read to `piece` and stopping at
/// its first error; a read error becomes an `E` through `read_error`. Memory: `buf` alone,
/// whatever the input's size (`read_to_end` would hold all of it).
pub fn for_each_piece<R: Read, E>(
    mut r: R,
    buf: &mut [u8],
    read_error: impl Fn(io::Error) -> E,
    mut piece: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        match read_some(&mut r, buf).map_err(&read_error)? {
            0 => return Ok(()),
            n => piece(&buf[..n])?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Interrupts every other call and returns at most 3 bytes a call.
    struct Choppy<'a> {
        data: &'a [u8],
        calls: usize,
    }

    impl Read for Choppy<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn short_and_interrupted_reads() {
        let data: Vec<u8> = (0..20).collect();
        let mut buf = [0u8; 8];
        let mut r = Choppy {
            data: &data,
            calls: 0,
        };
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 8);
        assert_eq!(buf[..], data[..8]);
        let mut rest = Vec::new();
        for_each_piece(
            r,
            &mut buf,
            |e| e,
            |p| {
                rest.extend_from_slice(p);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(rest, data[8..]);
        let mut empty: &[u8] = &[];
        assert_eq!(read_full(&mut empty, &mut buf).unwrap(), 0);
    }
}
