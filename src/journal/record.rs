//! One journal record and its frame: the exact bytes stored as a sled value.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "UCJ1"
//! 4       4     body length L, u32 little-endian
//! 8       L     body: bincode (fixint, little-endian) of `RecordBody`
//! 8+L     32    SHA-256 of bytes 0..8+L  (the record's own hash)
//! ```
//! The body holds `prev_hash`, the own hash of the record before it, which makes the
//! records one hash chain. Layout details: `journal-format.md`.

use bincode::Options;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"UCJ1";
pub const FRAME_OVERHEAD: usize = 4 + 4 + 32;
/// Upper bound for one record body; a corrupt length field never makes us allocate more.
pub const MAX_BODY: u64 = 256 * 1024 * 1024;

pub type Hash = [u8; 32];

/// What a record announces. The numeric values are the bincode variant indexes
/// (declaration order) and must never be reordered: they are on disk.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// A run begins; payload: the whole plan and its hash.
    RunStarted,
    /// A step is about to act; payload: what it will touch (manifests).
    StepIntent,
    /// Data a step saves before acting (for example row before-images).
    StepData,
    /// The step's side effect is complete; payload: what it produced.
    StepDone,
    /// The step failed; payload: the error.
    StepFailed,
    /// An undo is about to act on this step.
    UndoIntent,
    /// Compensation record: the step is undone and is never undone again.
    StepUndone,
    /// Every step is done; the run can still be rolled back until finalized.
    RunCommitted,
    /// The run stopped on an error (rollback may follow).
    RunFailed,
    /// Every applied step has been undone: the tree is as it was before the run.
    RunRolledBack,
    /// What was kept only for rollback is purged; the run is closed.
    RunFinalized,
    /// The run (or its rollback) stopped at a durable point on request (a signal, or
    /// `--until`) and stays open; payload: why and how far.
    RunStopped,
    /// Something the run did not write stood where a rollback or a recovery had to put
    /// something back: it is about to be moved into the run's kept-aside folder under the
    /// root (payload: from, to, size). Durable before the move.
    KeptAside,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::RunStarted => "run-started",
            Phase::StepIntent => "step-intent",
            Phase::StepData => "step-data",
            Phase::StepDone => "step-done",
            Phase::StepFailed => "step-failed",
            Phase::UndoIntent => "undo-intent",
            Phase::StepUndone => "step-undone",
            Phase::RunCommitted => "run-committed",
            Phase::RunFailed => "run-failed",
            Phase::RunRolledBack => "run-rolled-back",
            Phase::RunFinalized => "run-finalized",
            Phase::RunStopped => "run-stopped",
            Phase::KeptAside => "kept-aside",
        }
    }
}

/// A record as stored. `hash` is not part of the body: it is the frame trailer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecordBody {
    pub seq: u64,
    pub run_id: [u8; 16],
    pub step: Option<u32>,
    pub phase: Phase,
    pub time_ms: u64,
    pub prev_hash: Hash,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub body: RecordBody,
    pub hash: Hash,
}

impl std::ops::Deref for Record {
    type Target = RecordBody;
    fn deref(&self) -> &RecordBody {
        &self.body
    }
}

/// The one bincode configuration used for everything in the journal.
pub fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_BODY)
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    Torn { have: usize, need: usize },
    BadMagic,
    Checksum,
    Decode(String),
    TrailingBytes(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Torn { have, need } => {
                write!(f, "torn record: {have} bytes stored, {need} expected")
            }
            FrameError::BadMagic => write!(f, "bad magic (not a journal record)"),
            FrameError::Checksum => write!(f, "SHA-256 mismatch (record altered)"),
            FrameError::Decode(e) => write!(f, "undecodable body: {e}"),
            FrameError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the record"),
        }
    }
}

impl RecordBody {
    /// Encodes the frame and returns it with the record's own hash.
    pub fn encode(&self) -> (Vec<u8>, Hash) {
        let body = codec()
            .serialize(self)
            .expect("record body is serializable");
        let mut frame = Vec::with_capacity(FRAME_OVERHEAD + body.len());
        frame.extend_from_slice(&MAGIC);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&body);
        let hash: Hash = Sha256::digest(&frame).into();
        frame.extend_from_slice(&hash);
        (frame, hash)
    }
}

/// Decodes and checks one frame: length, magic, SHA-256, body.
pub fn decode(frame: &[u8]) -> Result<Record, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Torn {
            have: frame.len(),
            need: FRAME_OVERHEAD,
        });
    }
    if frame[0..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let len = u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize;
    let need = FRAME_OVERHEAD + len;
    if frame.len() < need {
        return Err(FrameError::Torn {
            have: frame.len(),
            need,
        });
    }
    if frame.len() > need {
        return Err(FrameError::TrailingBytes(frame.len() - need));
    }
    let (covered, trailer) = frame.split_at(8 + len);
    let hash: Hash = Sha256::digest(covered).into();
    if hash[..] != trailer[..] {
        return Err(FrameError::Checksum);
    }
    let body: RecordBody = codec()
        .deserialize(&covered[8..])
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    Ok(Record { body, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBody {
        RecordBody {
            seq: 7,
            run_id: [9; 16],
            step: Some(3),
            phase: Phase::StepDone,
            time_ms: 1_700_000_000_000,
            prev_hash: [1; 32],
            payload: b"hello".to_vec(),
        }
    }

    #[test]
    fn frame_layout_is_exactly_as_documented() {
        let (frame, hash) = sample().encode();
        assert_eq!(&frame[0..4], b"UCJ1");
        // body = seq 8 + run_id 16 + option tag 1 + u32 4 + phase u32 4 + time 8 + prev 32
        //        + payload len u64 8 + 5 bytes
        let body_len = 8 + 16 + 1 + 4 + 4 + 8 + 32 + 8 + 5;
        assert_eq!(
            u32::from_le_bytes(frame[4..8].try_into().unwrap()),
            body_len
        );
        assert_eq!(frame.len(), FRAME_OVERHEAD + body_len as usize);
        assert_eq!(&frame[8..16], &7u64.to_le_bytes());
        // Phase::StepDone is variant 3.
        assert_eq!(&frame[8 + 29..8 + 33], &3u32.to_le_bytes());
        assert_eq!(&frame[frame.len() - 32..], &hash);
        assert_eq!(decode(&frame).unwrap().body, sample());
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let (frame, _) = sample().encode();
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at byte {i} not detected");
        }
    }

    #[test]
    fn truncation_is_reported_as_torn() {
        let (frame, _) = sample().encode();
        for cut in 0..frame.len() {
            match decode(&frame[..cut]) {
                Err(FrameError::Torn { have, .. }) => assert_eq!(have, cut),
                Err(FrameError::BadMagic) if cut >= 4 => panic!("cut {cut} misreported"),
                other => assert!(other.is_err(), "cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn random_and_mutated_frames_never_panic() {
        // A cheap stand-in for a fuzzer: random bytes, and valid frames with random edits
        // (including rewritten length fields), must give errors, never panics.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (frame, _) = sample().encode();
        for _ in 0..20_000 {
            let mut bytes = if rng.gen_bool(0.5) {
                (0..rng.gen_range(0..200))
                    .map(|_| rng.gen::<u8>())
                    .collect::<Vec<u8>>()
            } else {
                frame.clone()
            };
            for _ in 0..rng.gen_range(1..4) {
                if !bytes.is_empty() {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] = rng.gen();
                }
            }
            if rng.gen_bool(0.2) && bytes.len() >= 40 {
                let len = (bytes.len() - 40) as u32;
                bytes[4..8].copy_from_slice(&len.to_le_bytes());
                let end = bytes.len() - 32;
                let hash: Hash = Sha256::digest(&bytes[..end]).into();
                bytes[end..].copy_from_slice(&hash);
            }
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn huge_length_field_is_refused_without_allocating() {
        let mut frame = b"UCJ1".to_vec();
        frame.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&frame), Err(FrameError::Torn { .. })));
    }
}
