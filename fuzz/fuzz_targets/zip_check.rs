//! The zip checks (src/runbook/install.rs `runtime_zip`, the extraction step's archive open
//! and size check in src/steps/extract_zip.rs): any bytes as the runtime zip give a version or
//! a typed error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use usercube_upgrade::testing::fuzzing::{zip_open, zip_uncompressed_size};
use usercube_upgrade::testing::runbook::install::{runtime_zip, Product};

fn archive() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    // One folder for the whole run; the archive is rewritten by each input.
    PATH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        dir.join("Runtime_5.2.3.3180.zip")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = archive();
    std::fs::write(path, data).expect("write archive");
    for product in [Product::Server, Product::Agent] {
        if let Err(e) = runtime_zip(path, product) {
            assert!(e.contains("Runtime_5.2.3.3180.zip"), "{e}");
        }
    }
    let opened = zip_open(path);
    let size = zip_uncompressed_size(path);
    // The size check opens the archive first: it cannot pass where the open fails.
    assert!(opened.is_ok() || size.is_err());
    if let Err(e) = size {
        assert!(e.to_string().contains("Runtime_5.2.3.3180.zip"), "{e}");
    }
});
