//! The journal's record frame decoder and record-log reader (src/journal/record.rs, log.rs).
//!
//! Raw bytes go to `decode`, `scan_bytes` and `salvage_bytes`. Because every entry and frame
//! carries a SHA-256, random bytes rarely get past the checksums; so the input also builds a
//! log of well-formed entries (payloads, chaining and grouping taken from the input) that is
//! then damaged at an input-chosen place, which reaches the chain and sequence checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usercube_upgrade::testing::journal::log::{entry, salvage_bytes, scan_bytes, LogError};
use usercube_upgrade::testing::journal::record::decode;
use usercube_upgrade::testing::journal::{Phase, RecordBody};

const PHASES: [Phase; 4] = [
    Phase::RunStarted,
    Phase::StepIntent,
    Phase::StepDone,
    Phase::RunCommitted,
];

fn raw(data: &[u8]) {
    if let Ok(rec) = decode(data) {
        // A frame that decodes is its own encoding (the format has one encoding per record).
        let (frame, hash) = rec.body.encode();
        assert_eq!(hash, rec.hash);
        assert_eq!(&frame[..], &data[..frame.len()]);
    }
    let _ = scan_bytes(data);
    for rec in salvage_bytes(data) {
        assert_eq!(rec.body.encode().1, rec.hash);
    }
}

/// A log built from `data`: each record takes a control byte and a payload length.
fn built(data: &[u8]) {
    let (&damage, mut rest) = data.split_first().unwrap_or((&0, &[]));
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut prev = [0u8; 32];
    let mut seq = 0u64;
    let mut chained = true;
    while let [ctl, len, tail @ ..] = rest {
        let take = (*len as usize % 48).min(tail.len());
        let (payload, after) = tail.split_at(take);
        rest = after;
        seq += 1;
        // Bits 4 and 5 break the sequence or the chain; bit 6 closes the entry.
        let bad_seq = ctl & 0x10 != 0;
        let bad_chain = ctl & 0x20 != 0;
        chained &= !bad_seq && !bad_chain;
        let body = RecordBody {
            seq: if bad_seq { seq + 1 } else { seq },
            run_id: [ctl & 3; 16],
            step: (ctl & 4 != 0).then_some(u32::from(*len)),
            phase: PHASES[(ctl >> 2 & 3) as usize],
            time_ms: u64::from(*ctl),
            prev_hash: if bad_chain { [1; 32] } else { prev },
            payload: payload.to_vec(),
        };
        let (frame, hash) = body.encode();
        prev = hash;
        frames.push(frame);
        if ctl & 0x40 != 0 {
            entries.push(entry(&frames));
            frames.clear();
        }
    }
    if !frames.is_empty() {
        entries.push(entry(&frames));
    }
    let mut log: Vec<u8> = entries.concat();
    let whole = log.len();
    match damage >> 6 {
        0 => {}
        1 if !log.is_empty() => {
            let at = usize::from(damage & 0x3f) * whole / 64;
            log.truncate(at.max(1));
        }
        2 if !log.is_empty() => {
            let at = usize::from(damage & 0x3f) * whole / 64;
            log[at] ^= 0x5a;
        }
        _ => log.extend_from_slice(&[damage; 7]),
    }
    match scan_bytes(&log) {
        Ok(scan) => {
            assert!(scan.valid_len as usize <= log.len());
            if damage >> 6 == 0 && chained {
                // An undamaged, chained log reads back whole.
                assert_eq!(scan.records.len() as u64, seq);
                assert!(scan.torn.is_none());
            }
        }
        Err(LogError::Damaged(d)) => {
            assert!(!(damage >> 6 == 0 && chained), "sound log refused: {d:?}");
        }
        Err(LogError::Io(e)) => panic!("scan_bytes on bytes returned an I/O error: {e}"),
    }
    let _ = salvage_bytes(&log);
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => raw(rest),
        Some((_, rest)) => built(rest),
        None => {}
    }
});
