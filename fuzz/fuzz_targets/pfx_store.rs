//! The PFX loader and the folder certificate store (src/crypto/cert.rs, store.rs): any bytes,
//! as a PFX file on its own or as a store's `<THUMBPRINT>.pfx`, load or give a typed error;
//! any text as a thumbprint is normalised or refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use usercube_upgrade::testing::crypto::{
    find_in_store, normalize_thumbprint, Certificate, StoreLocation,
};
use usercube_upgrade::testing::runbook::demo::{demo_certificate, DEMO_CERT_PASSWORD};

/// The demo certificate's thumbprint, computed once for the whole fuzzing run.
fn demo_thumbprint() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| demo_certificate().thumbprint())
}

/// Two store folders kept for the whole run, each holding one file that every input
/// rewrites: one named as .NET names store files, one under another name.
fn store(named: bool) -> (&'static PathBuf, String) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (by_name, other) = DIRS.get_or_init(|| {
        let make = || tempfile::tempdir().expect("temp dir").keep();
        (make(), make())
    });
    if named {
        (by_name, format!("{}.pfx", demo_thumbprint()))
    } else {
        (other, "other.pfx".to_string())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, pfx)) = data.split_first() else {
        return;
    };
    let password = match mode % 3 {
        0 => "",
        1 => DEMO_CERT_PASSWORD,
        _ => "wrong",
    };
    if let Ok(cert) = Certificate::from_pfx_bytes(pfx, password, "fuzz.pfx") {
        assert_eq!(cert.thumbprint().len(), 40);
        assert!(cert.key_bits() >= 2048);
    }
    if let Ok(text) = std::str::from_utf8(pfx) {
        if let Ok(t) = normalize_thumbprint(text) {
            assert_eq!(normalize_thumbprint(&t).ok(), Some(t));
        }
    }
    if mode & 0x80 != 0 {
        // The store: the file named as .NET names it, else found by its computed thumbprint.
        let (dir, name) = store(mode & 0x40 != 0);
        let wanted = demo_thumbprint();
        std::fs::write(dir.join(name), pfx).expect("store file");
        if let Ok(cert) = find_in_store(&wanted, StoreLocation::CurrentUser, "My", Some(dir)) {
            assert_eq!(cert.thumbprint(), wanted);
        }
    }
});
