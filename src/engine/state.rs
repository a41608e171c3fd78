//! The state of the latest run, derived from the journal records alone.

use std::collections::BTreeMap;

use super::payload::{self, RunContext, RunStarted, StepDone, StepIntent};
use crate::journal::{Phase, Record};
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Started, never ended: the process stopped (crash, kill, power cut).
    Interrupted,
    /// A step failed and the run was not (fully) rolled back.
    Failed,
    /// Stopped by `--until GUIDE-STEP` after that guide step: open, reversible; `resume`
    /// goes on.
    Paused,
    Committed,
    RolledBack,
    Finalized,
}

impl RunStatus {
    pub fn is_open(self) -> bool {
        matches!(
            self,
            RunStatus::Interrupted | RunStatus::Failed | RunStatus::Paused
        )
    }
}

#[derive(Debug, Default, Clone)]
pub struct StepState {
    pub intent: Option<(u64, StepIntent)>,
    pub done: Option<(u64, StepDone)>,
    pub failed: Option<(u64, String)>,
    pub undo_intent: Option<u64>,
    pub undone: Option<(u64, String)>,
}

#[derive(Debug, Clone)]
pub struct RunState {
    pub run_id: [u8; 16],
    pub started_seq: u64,
    pub started: RunStarted,
    pub steps: BTreeMap<u32, StepState>,
    pub status: RunStatus,
    pub failure: Option<String>,
    pub times: BTreeMap<u64, u64>,
    /// Sequence numbers of the run-level end records, when present.
    pub committed_seq: Option<u64>,
    pub failed_seq: Option<u64>,
    /// The rollback's and the finalize's records, with who ran them (absent in journals of
    /// earlier builds).
    pub rolled_back: Option<(u64, Option<RunContext>)>,
    pub finalized: Option<(u64, Option<RunContext>)>,
    /// Why the run stopped, when its last record is a RunStopped (a signal, `--until`, an
    /// error that stopped a rollback).
    pub stopped: Option<payload::RunStopped>,
    /// What a rollback or a recovery moved out of its way into the run's kept-aside folder
    /// (record sequence number, the step whose path it stood in, what moved where).
    pub kept_aside: Vec<(u64, Option<u32>, payload::KeptAside)>,
}

impl RunState {
    pub fn run_hex(&self) -> String {
        hex::encode(self.run_id)
    }

    pub fn step(&self, id: u32) -> Option<&StepState> {
        self.steps.get(&id)
    }

    pub fn rollback_started(&self) -> bool {
        self.steps.values().any(|s| s.undo_intent.is_some())
    }

    /// A rollback that began and did not finish: how far it came and what stopped it (the
    /// run's last record, when it says; else the process ended there). `None` otherwise.
    pub fn rollback_half_done(&self) -> Option<String> {
        if !self.rollback_started()
            || matches!(self.status, RunStatus::RolledBack | RunStatus::Finalized)
        {
            return None;
        }
        let stopped = self.stopped.as_ref().filter(|s| s.rollback);
        // Over the whole run, whichever rollback command undid them.
        let undone = self.steps.values().filter(|s| s.undone.is_some()).count();
        let to_undo = self.steps.values().filter(|s| s.intent.is_some()).count();
        let why = match stopped.map(|s| &s.reason) {
            Some(payload::StopReason::Failed(e)) => e.clone(),
            Some(payload::StopReason::Signal(signal)) => format!("interrupted by {signal}"),
            Some(payload::StopReason::Until(_)) | None => {
                // The rollback goes in reverse plan order: the last step begun, not undone.
                let at = self.started.plan.steps.iter().rev().find(|p| {
                    self.step(p.id)
                        .is_some_and(|s| s.undo_intent.is_some() && s.undone.is_none())
                });
                let at = at.map(|p| format!(" at step {}", p.id)).unwrap_or_default();
                format!("stopped{at} with no record of why (the process ended: a crash, a kill or a power cut)")
            }
        };
        Some(format!(
            "rollback half done ({undone} of {to_undo} steps undone): {why}"
        ))
    }

    /// The record that ended the run's forward part: committed, else failed.
    pub fn ended_seq(&self) -> Option<u64> {
        self.committed_seq.or(self.failed_seq)
    }

    pub fn done_count(&self) -> usize {
        self.steps.values().filter(|s| s.done.is_some()).count()
    }
}

/// Splits the records into runs (each begins with RunStarted) and derives their state.
pub fn runs(records: &[Record]) -> Result<Vec<RunState>, Error> {
    let mut runs: Vec<RunState> = Vec::new();
    for r in records {
        if r.phase == Phase::RunStarted {
            let started = RunStarted::decode(r.seq, &r.payload)?;
            if let Some(prev) = runs.last() {
                if prev.status.is_open() || prev.status == RunStatus::Committed {
                    return Err(Error::Corrupt(format!(
                        "journal record {}: a run starts while run {} is still open",
                        r.seq,
                        prev.run_hex()
                    )));
                }
            }
            runs.push(RunState {
                run_id: r.run_id,
                started_seq: r.seq,
                started,
                steps: BTreeMap::new(),
                status: RunStatus::Interrupted,
                failure: None,
                times: BTreeMap::new(),
                committed_seq: None,
                failed_seq: None,
                rolled_back: None,
                finalized: None,
                stopped: None,
                kept_aside: Vec::new(),
            });
            runs.last_mut().unwrap().times.insert(r.seq, r.time_ms);
            continue;
        }
        let Some(run) = runs.last_mut() else {
            return Err(Error::Corrupt(format!(
                "journal record {}: no run has started",
                r.seq
            )));
        };
        if r.run_id != run.run_id {
            return Err(Error::Corrupt(format!(
                "journal record {} belongs to run {} inside run {}",
                r.seq,
                hex::encode(r.run_id),
                run.run_hex()
            )));
        }
        run.times.insert(r.seq, r.time_ms);
        // A stop describes the run only until it goes on (resume, rollback).
        if run.stopped.take().is_some() && run.status == RunStatus::Paused {
            run.status = RunStatus::Interrupted;
        }
        let step = || {
            r.step
                .ok_or_else(|| Error::Corrupt(format!("journal record {}: step id missing", r.seq)))
        };
        match r.phase {
            Phase::RunStarted => unreachable!(),
            Phase::StepIntent => {
                let p = payload::decode(r.seq, &r.payload)?;
                let s = run.steps.entry(step()?).or_default();
                s.intent = Some((r.seq, p));
                // A retried step (resume after a failure) starts over.
                s.failed = None;
            }
            // The step reads its own data back (`StepJournal::saved`); the record makes the
            // step known.
            Phase::StepData => {
                run.steps.entry(step()?).or_default();
            }
            Phase::StepDone => {
                let p = payload::decode_step_done(r.seq, &r.payload)?;
                run.steps.entry(step()?).or_default().done = Some((r.seq, p));
            }
            Phase::StepFailed => {
                let p: payload::Failure = payload::decode(r.seq, &r.payload)?;
                run.steps.entry(step()?).or_default().failed = Some((r.seq, p.message));
            }
            Phase::UndoIntent => run.steps.entry(step()?).or_default().undo_intent = Some(r.seq),
            Phase::StepUndone => {
                let p: payload::StepUndone = payload::decode(r.seq, &r.payload)?;
                run.steps.entry(step()?).or_default().undone = Some((r.seq, p.how));
            }
            Phase::RunCommitted => {
                run.status = RunStatus::Committed;
                run.committed_seq = Some(r.seq);
            }
            Phase::RunFailed => {
                let p: payload::Failure = payload::decode(r.seq, &r.payload)?;
                run.status = RunStatus::Failed;
                run.failure = Some(p.message);
                run.failed_seq = Some(r.seq);
            }
            Phase::RunRolledBack => {
                run.status = RunStatus::RolledBack;
                run.rolled_back = Some((r.seq, payload::decode_context(r.seq, &r.payload)?));
            }
            Phase::RunFinalized => {
                run.status = RunStatus::Finalized;
                run.finalized = Some((r.seq, payload::decode_context(r.seq, &r.payload)?));
            }
            Phase::RunStopped => {
                let p: payload::RunStopped = payload::decode(r.seq, &r.payload)?;
                if matches!(p.reason, payload::StopReason::Until(_)) && !p.rollback {
                    run.status = RunStatus::Paused;
                }
                run.stopped = Some(p);
            }
            Phase::KeptAside => {
                let p: payload::KeptAside = payload::decode(r.seq, &r.payload)?;
                run.kept_aside.push((r.seq, r.step, p));
            }
        }
    }
    Ok(runs)
}

/// Convenience for the engine: the state of the latest run, if any.
pub fn latest(records: &[Record]) -> Result<Option<RunState>, Error> {
    Ok(runs(records)?.pop())
}

/// The step's recorded intent and outcome, decoded.
pub fn intent_of(s: &StepState) -> Option<&StepIntent> {
    s.intent.as_ref().map(|(_, i)| i)
}

pub fn done_of(s: &StepState) -> Option<&StepDone> {
    s.done.as_ref().map(|(_, d)| d)
}
