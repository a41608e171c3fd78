//! The legacy (5.1) and new encrypted-file readers (src/crypto/legacy.rs, format.rs), with the
//! demo certificate.
//!
//! Random bytes stop at the RSA key unwrap, so besides raw input the target also reads a valid
//! header followed by input bytes, and whole valid files changed at input-chosen places. A
//! changed new-format file must never decrypt (it is authenticated end to end).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::sync::OnceLock;
use usercube_upgrade::testing::crypto::{
    Certificate, LegacyReader, NewFormatReader, NewFormatWriter,
};
use usercube_upgrade::testing::runbook::demo::{demo_certificate, legacy_encrypted};

const PLAINTEXT: &[u8] = b"{\"Connections\":{\"AD_Export\":{\"Password\":\"x\"}}}";

struct Valid {
    legacy: Vec<u8>,
    legacy_header: usize,
    new: Vec<u8>,
    new_header: usize,
}

fn new_format(cert: &Certificate, plaintext: &[u8]) -> Vec<u8> {
    let mut w = NewFormatWriter::new(cert, Vec::new()).expect("new-format header");
    w.write_all(plaintext).expect("encrypt");
    w.finish().expect("finish")
}

/// The demo certificate, parsed once for the whole fuzzing run (the harness's cache).
fn cert() -> &'static Certificate {
    static C: OnceLock<Certificate> = OnceLock::new();
    C.get_or_init(demo_certificate)
}

fn valid() -> &'static Valid {
    static V: OnceLock<Valid> = OnceLock::new();
    V.get_or_init(|| {
        let cert = cert();
        // An empty plaintext is one cipher block (legacy) or one tag (new) after the header.
        let legacy_header = legacy_encrypted(cert, 1, b"").expect("legacy").len() - 16;
        let new_header = new_format(cert, b"").len() - 16;
        Valid {
            legacy: legacy_encrypted(cert, 1, PLAINTEXT).expect("legacy"),
            legacy_header,
            new: new_format(cert, PLAINTEXT),
            new_header,
        }
    })
}

/// Reads `file` with both readers; true when the new-format reader accepted it whole.
fn read_both(file: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let cert = cert();
    let mut out = Vec::new();
    let legacy = LegacyReader::new(cert, file)
        .ok()
        .and_then(|mut r| r.read_to_end(&mut out).ok().map(|_| out.clone()));
    let mut out = Vec::new();
    let new = NewFormatReader::new(cert, file)
        .ok()
        .and_then(|mut r| r.read_to_end(&mut out).ok().map(|_| out.clone()));
    (legacy, new)
}

/// `base` changed by the input: pairs of (offset, xor), then a length change.
fn mutate(base: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let at = usize::from(u16::from_le_bytes([c[0], c[1]])) % out.len().max(1);
        if let Some(b) = out.get_mut(at) {
            *b ^= c[2];
        }
    }
    match chunks.remainder() {
        [n] => out.truncate(out.len().saturating_sub(usize::from(*n))),
        [n, b] => out.extend(std::iter::repeat_n(*b, usize::from(*n))),
        _ => {}
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let v = valid();
    match mode % 5 {
        0 => {
            let _ = usercube_upgrade::testing::crypto::is_legacy(rest);
            let _ = usercube_upgrade::testing::crypto::is_new_format(rest);
            let _ = read_both(rest);
        }
        1 => {
            let file = [&v.legacy[..v.legacy_header], rest].concat();
            let _ = read_both(&file);
        }
        2 => {
            let file = [&v.new[..v.new_header], rest].concat();
            let (_, new) = read_both(&file);
            if let Some(plain) = new {
                // Only the one authentic body decrypts after this header: the empty one.
                assert!(plain.is_empty() && rest.len() == 16, "forged body accepted");
            }
        }
        3 => {
            let _ = read_both(&mutate(&v.legacy, rest));
        }
        _ => {
            let file = mutate(&v.new, rest);
            let (_, new) = read_both(&file);
            if file != v.new {
                assert!(new.is_none(), "a changed new-format file decrypted");
            } else {
                assert_eq!(new.as_deref(), Some(PLAINTEXT));
            }
        }
    }
});
