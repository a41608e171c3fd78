//! The head file: a high-water mark of the journal kept outside sled.
//!
//! sled recovers from a damaged log by silently dropping everything after the damage, which
//! would look like a valid, shorter chain. After every durable append the journal writes the
//! last durable (sequence number, hash) here and fdatasyncs it; on open, a chain shorter than
//! the head, or one whose record at the head's sequence number has another hash, is corrupt.
//!
//! Two 80-byte slots, written alternately (slot = seq % 2), so a torn write damages at most
//! the slot being written and the other still holds a valid (older) mark:
//! ```text
//! 0   4  magic "UCJH"
//! 4   8  seq, u64 little-endian
//! 12  32 hash of record seq
//! 44  32 SHA-256 of bytes 0..44 of the slot
//! 76  4  zero padding
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Hash;

const MAGIC: &[u8; 4] = b"UCJH";
const SLOT: u64 = 80;

pub struct Head {
    file: File,
}

fn encode(seq: u64, hash: &Hash) -> [u8; SLOT as usize] {
    let mut slot = [0u8; SLOT as usize];
    slot[0..4].copy_from_slice(MAGIC);
    slot[4..12].copy_from_slice(&seq.to_le_bytes());
    slot[12..44].copy_from_slice(hash);
    let sum: Hash = Sha256::digest(&slot[0..44]).into();
    slot[44..76].copy_from_slice(&sum);
    slot
}

fn decode(slot: &[u8]) -> Option<(u64, Hash)> {
    if slot.len() < 76 || &slot[0..4] != MAGIC {
        return None;
    }
    let sum: Hash = Sha256::digest(&slot[0..44]).into();
    if slot[44..76] != sum {
        return None;
    }
    Some((
        u64::from_le_bytes(slot[4..12].try_into().ok()?),
        slot[12..44].try_into().ok()?,
    ))
}

impl Head {
    /// Opens (creating) the head file; returns the highest valid mark, if any.
    pub fn open(path: &Path) -> io::Result<(Head, Option<(u64, Hash)>)> {
        let fresh = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if fresh {
            crate::durable_fs::fsync_dir(path.parent().unwrap_or(Path::new(".")))?;
        }
        let mut buf = [0u8; 2 * SLOT as usize];
        let n = crate::platform::read_full_at(&file, &mut buf, 0)?;
        let mark = [0u64, SLOT]
            .iter()
            .filter_map(|&off| {
                buf.get(off as usize..(off + SLOT).min(n as u64) as usize)
                    .and_then(decode)
            })
            .max_by_key(|(seq, _)| *seq);
        Ok((Head { file }, mark))
    }

    /// Records (seq, hash) as durable.
    pub fn write(&mut self, seq: u64, hash: &Hash) -> io::Result<()> {
        crate::platform::write_all_at(&self.file, &encode(seq, hash), (seq % 2) * SLOT)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_valid_slot_wins_and_a_torn_slot_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("head");
        let (mut h, mark) = Head::open(&p).unwrap();
        assert_eq!(mark, None);
        h.write(1, &[1; 32]).unwrap();
        h.write(2, &[2; 32]).unwrap();
        drop(h);
        assert_eq!(Head::open(&p).unwrap().1, Some((2, [2; 32])));
        // Tear slot 0 (seq 2): the older slot 1 (seq 1) remains a valid lower bound.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        crate::platform::write_all_at(&f, &[0xff; 10], 20).unwrap();
        assert_eq!(Head::open(&p).unwrap().1, Some((1, [1; 32])));
    }
}
