//! The crate's top-level error and its mapping to exit codes (in one place).

use crate::journal::JournalError;
use crate::steps::StepError;

/// Exit codes: 0 success; 1 the run (or rollback) failed; 2 usage error or refused by
/// checks, nothing changed; 3 the journal is corrupt; 130 / 143 stopped by SIGINT / SIGTERM
/// at a durable point.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_REFUSED: u8 = 2;
pub const EXIT_CORRUPT: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or input files; nothing changed.
    #[error("{0}")]
    Usage(String),
    /// Refused by a check (preflight, lock, run state); nothing changed.
    #[error("{0}")]
    Refused(String),
    /// The run failed; the message says whether it was rolled back.
    #[error("{0}")]
    RunFailed(String),
    /// The journal cannot be trusted; the engine acts on nothing past its last good record.
    #[error("{0}")]
    Corrupt(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Step(#[from] StepError),
    /// Stopped by a signal at a durable point (the message says how to go on); the exit
    /// code is 128 + the signal number.
    #[error("{message}")]
    Interrupted { message: String, exit_code: u8 },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Refused(_) => EXIT_REFUSED,
            Error::Corrupt(_) => EXIT_CORRUPT,
            Error::Interrupted { exit_code, .. } => *exit_code,
            Error::Journal(j) if j.is_corruption() => EXIT_CORRUPT,
            Error::Step(StepError::Corrupt(_)) => EXIT_CORRUPT,
            _ => EXIT_FAILED,
        }
    }

    /// The journal corruption this error reports (exit 3), if it is one.
    pub fn corruption(&self) -> Option<String> {
        match self {
            Error::Corrupt(m) => Some(m.clone()),
            Error::Journal(j) if j.is_corruption() => Some(j.to_string()),
            Error::Step(s) => s.corruption().map(str::to_string),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
