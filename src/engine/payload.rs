//! What the engine stores in each journal record's payload (bincode, journal codec).

use std::path::PathBuf;

use bincode::Options;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::journal::record::codec;
use crate::plan::Plan;
use crate::steps::{Intent, Outcome};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunStarted {
    pub plan: Plan,
    pub plan_hash: [u8; 32],
    pub root: PathBuf,
    pub tool_version: String,
    pub pid: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StepIntent {
    pub description: String,
    pub intent: Intent,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StepDone {
    pub outcome: Outcome,
    /// True when recovery found the step applied (its outcome was probed, not observed).
    pub recovered: bool,
}

/// Payload of StepFailed and RunFailed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StepUndone {
    /// What the undo found: "undone", "was not applied", or "forced".
    pub how: String,
}

/// Payload of RunStopped: why the run stopped, and how far it had come.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunStopped {
    pub reason: StopReason,
    /// True when a rollback was stopped (it is finished by `rollback`).
    pub rollback: bool,
    /// Steps done (or, for a rollback, undone) when it stopped, and the plan's steps.
    pub steps_done: u32,
    pub steps_total: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A signal (its name: SIGINT, SIGTERM); the run is interrupted.
    Signal(String),
    /// `--until GUIDE-STEP`: every step up to that guide step is done; the run is paused.
    Until(String),
}

impl std::fmt::Display for RunStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.rollback { "rollback " } else { "" };
        match &self.reason {
            StopReason::Signal(s) => write!(
                f,
                "{what}interrupted by {s} after step {} of {}",
                self.steps_done, self.steps_total
            ),
            StopReason::Until(g) => write!(
                f,
                "paused after guide step {g} (step {} of {})",
                self.steps_done, self.steps_total
            ),
        }
    }
}

/// Payload of StepData: the saved data lives in `<journal>/data/<run>/<step>/<sha256 hex>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DataRef {
    pub sha256: [u8; 32],
    pub len: u64,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    codec().serialize(v).expect("payload is serializable")
}

pub fn decode<T: DeserializeOwned>(seq: u64, bytes: &[u8]) -> Result<T, crate::Error> {
    codec().deserialize(bytes).map_err(|e| {
        crate::Error::Corrupt(format!(
            "journal record {seq}: payload does not decode ({e}); the last good record is {}",
            seq - 1
        ))
    })
}
