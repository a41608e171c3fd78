//! The thin binary: parse, run, map the outcome to an exit code in one place.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = usercube_upgrade::cli::Args::parse();
    match usercube_upgrade::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
