//! Writes the sample installation (the one `demo` uses) at a chosen size, for benchmarks.
//!
//! `cargo run --release --example make_sample -- DIR RUNTIME_FILES FILE_BYTES`

use std::path::PathBuf;
use std::process::ExitCode;

use usercube_upgrade::testing::sample::{self, SampleSize};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, files, bytes] = args.as_slice() else {
        eprintln!("usage: make_sample DIR RUNTIME_FILES FILE_BYTES");
        return ExitCode::from(2);
    };
    let (Ok(runtime_files), Ok(file_bytes)) = (files.parse(), bytes.parse()) else {
        eprintln!("make_sample: RUNTIME_FILES and FILE_BYTES must be whole numbers");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let size = SampleSize {
        runtime_files,
        file_bytes,
    };
    match sample::create_installation(&dir, size) {
        Ok(()) => {
            println!(
                "sample installation written to {} ({runtime_files} runtime files of {file_bytes} bytes)",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_sample: {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
