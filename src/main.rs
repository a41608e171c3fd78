//! The thin binary: parse, run, map the outcome to an exit code in one place.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Diagnostics for support: USERCUBE_UPGRADE_LOG=debug (off by default).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("USERCUBE_UPGRADE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = usercube_upgrade::CliArgs::parse();
    match usercube_upgrade::run_cli(args) {
        Ok(()) => ExitCode::SUCCESS,
        // Not an error: the run stopped where it was asked to; the message says what next.
        Err(e @ usercube_upgrade::Error::Interrupted { .. }) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
        Err(e) => {
            usercube_upgrade::error_line(format_args!("error: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}
