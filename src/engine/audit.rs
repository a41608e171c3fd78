//! The audit: the journal rendered for people (`journal show`) and machines
//! (`journal export --json`): every run, every step, what it touched with before/after
//! hashes, timings, failures and undos.

use serde::Serialize;

use super::payload::RunContext;
use super::state::{self, RunState, RunStatus};
use crate::journal::Record;
use crate::manifest::Manifest;
use crate::steps::Fingerprint;
use crate::steps::{ChunkDigest, CommandRun};
use crate::Result;

#[derive(Serialize)]
pub struct Audit {
    pub records: u64,
    pub last_hash: String,
    pub runs: Vec<RunAudit>,
}

#[derive(Serialize)]
pub struct RunAudit {
    pub run_id: String,
    pub title: String,
    pub root: String,
    pub plan_sha256: String,
    pub tool_version: String,
    pub status: RunStatus,
    pub failure: Option<String>,
    /// Who started the run, on which host, with which command line (secrets masked); null
    /// for runs journaled by earlier builds.
    pub operator: Option<String>,
    pub host: Option<String>,
    pub command_line: Option<Vec<String>>,
    /// Why an open run stopped (a signal, `--until`), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub started_ms: u64,
    /// ISO 8601, UTC, of `started_ms` (and likewise for every `*_at` field).
    pub started_at: String,
    /// How the forward run ended ("committed" or "failed"); null while it has not.
    pub ended: Option<&'static str>,
    pub ended_ms: Option<u64>,
    pub ended_at: Option<String>,
    pub rolled_back_ms: Option<u64>,
    pub rolled_back_at: Option<String>,
    /// Who ran the rollback (null for earlier builds' journals, or no rollback).
    pub rolled_back_by: Option<RunContext>,
    pub finalized_ms: Option<u64>,
    pub finalized_at: Option<String>,
    pub finalized_by: Option<RunContext>,
    pub steps: Vec<StepAudit>,
}

#[derive(Serialize)]
pub struct StepAudit {
    pub id: u32,
    pub seed: Option<String>,
    /// The planned step's note (the runbook lists every change a rule makes there).
    pub note: Option<String>,
    pub description: String,
    pub state: &'static str,
    pub intent_ms: Option<u64>,
    pub intent_at: Option<String>,
    pub done_ms: Option<u64>,
    pub done_at: Option<String>,
    pub elapsed_ms: Option<u64>,
    pub undone_ms: Option<u64>,
    pub undone_at: Option<String>,
    pub touched: Vec<Touched>,
    pub notes: Vec<String>,
    pub failure: Option<String>,
    pub undo: Option<String>,
    /// Every run of a service command, in order: apply, and at resume or rollback reassert
    /// and undo (filled by [`super::Engine::audit`] from the step's saved data).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandRun>,
    /// A delete-rows step: per saved chunk of the deleted rows, its row count and the
    /// SHA-256 of its serialized rows (checked against the rows the journal keeps; filled
    /// by [`super::Engine::audit`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub row_digests: Vec<ChunkDigest>,
    /// A database step: the database as the step left it (version, the upgrade's tables'
    /// row counts and digests, the SQLite file's digest), which a rollback checks first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_fingerprint: Option<Fingerprint>,
}

#[derive(Serialize)]
pub struct Touched {
    pub path: String,
    pub before_sha256: Option<String>,
    pub after_sha256: Option<String>,
    pub before_entries: usize,
    pub before_bytes: u64,
}

/// Milliseconds since the Unix epoch as ISO 8601 in UTC: `2026-12-02T15:04:05.123Z`.
pub fn iso8601(ms: u64) -> String {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

fn digest(m: &Manifest) -> Option<String> {
    m.exists().then(|| hex::encode(m.digest()))
}

pub fn build(records: &[Record]) -> Result<Audit> {
    let runs = state::runs(records)?;
    Ok(Audit {
        records: records.len() as u64,
        last_hash: records
            .last()
            .map(|r| hex::encode(r.hash))
            .unwrap_or_default(),
        runs: runs.iter().map(run_audit).collect(),
    })
}

fn run_audit(run: &RunState) -> RunAudit {
    let time = |seq: u64| run.times.get(&seq).copied();
    let steps = run
        .started
        .plan
        .steps
        .iter()
        .map(|p| {
            let s = run.step(p.id).cloned().unwrap_or_default();
            let intent = state::intent_of(&s);
            let outcome = state::done_of(&s).map(|d| &d.outcome);
            let intent_ms = s.intent.as_ref().and_then(|(seq, _)| time(*seq));
            let done_ms = s.done.as_ref().and_then(|(seq, _)| time(*seq));
            let undone_ms = s.undone.as_ref().and_then(|(seq, _)| time(*seq));
            let touched = intent
                .map(|i| {
                    i.intent
                        .touches
                        .iter()
                        .enumerate()
                        .map(|(n, t)| Touched {
                            path: t.path.display().to_string(),
                            before_sha256: digest(&t.before),
                            after_sha256: i.intent.expected_after(n, outcome).and_then(digest),
                            before_entries: t.before.entries.len(),
                            before_bytes: t.before.total_bytes(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let state = match (&s.undone, &s.done, &s.failed, &s.intent) {
                (Some(_), ..) => "undone",
                (None, Some(_), ..) => "done",
                (None, None, Some(_), _) => "failed",
                (None, None, None, Some(_)) => "started",
                _ => "not started",
            };
            StepAudit {
                id: p.id,
                seed: p.seed.clone(),
                note: p.note.clone(),
                // A step never started is described as `plan` does (never the plan's raw data:
                // a file content, a connection string).
                description: intent.map_or_else(
                    || {
                        let root = &run.started.root;
                        crate::steps::step_for(&p.action, root, None).describe(root)
                    },
                    |i| i.description.clone(),
                ),
                state,
                intent_ms,
                intent_at: intent_ms.map(iso8601),
                done_ms,
                done_at: done_ms.map(iso8601),
                elapsed_ms: intent_ms.zip(done_ms).map(|(a, b)| b.saturating_sub(a)),
                undone_ms,
                undone_at: undone_ms.map(iso8601),
                touched,
                notes: outcome.map(|o| o.notes.clone()).unwrap_or_default(),
                failure: s.failed.as_ref().map(|(_, m)| m.clone()),
                undo: s.undone.as_ref().map(|(_, how)| how.clone()),
                commands: Vec::new(),
                row_digests: Vec::new(),
                database_fingerprint: state::done_of(&s).and_then(|d| d.fingerprint.clone()),
            }
        })
        .collect();
    let context = run.started.context.as_ref();
    let started_ms = time(run.started_seq).unwrap_or(0);
    let ended_ms = run.ended_seq().and_then(time);
    let rolled_back_ms = run.rolled_back.as_ref().and_then(|(seq, _)| time(*seq));
    let finalized_ms = run.finalized.as_ref().and_then(|(seq, _)| time(*seq));
    RunAudit {
        run_id: run.run_hex(),
        title: run.started.plan.title.clone(),
        root: run.started.root.display().to_string(),
        plan_sha256: hex::encode(run.started.plan_hash),
        tool_version: run.started.tool_version.clone(),
        status: run.status,
        failure: run.failure.clone(),
        operator: context.map(|c| c.operator.clone()),
        host: context.map(|c| c.host.clone()),
        command_line: context.map(|c| c.command_line.clone()),
        started_ms,
        started_at: iso8601(started_ms),
        ended: run
            .committed_seq
            .map(|_| "committed")
            .or(run.failed_seq.map(|_| "failed")),
        ended_ms,
        ended_at: ended_ms.map(iso8601),
        rolled_back_ms,
        rolled_back_at: rolled_back_ms.map(iso8601),
        rolled_back_by: run.rolled_back.as_ref().and_then(|(_, c)| c.clone()),
        finalized_ms,
        finalized_at: finalized_ms.map(iso8601),
        finalized_by: run.finalized.as_ref().and_then(|(_, c)| c.clone()),
        stopped: run.stopped.as_ref().map(ToString::to_string),
        steps,
    }
}

/// One line per record, for `journal show`: its time in ISO 8601 (UTC); a run's start, its
/// rollback and its finalize also say who ran them, where, and how (secrets masked).
pub fn show(records: &[Record]) -> String {
    use crate::engine::payload;
    use crate::journal::Phase;
    let mut out = String::new();
    for r in records {
        let step = r.step.map(|s| format!("step {s}")).unwrap_or_default();
        out.push_str(&format!(
            "{:>6}  {}  {:<16} {:<9} run {}  {} bytes  sha256 {}",
            r.seq,
            iso8601(r.time_ms),
            r.phase.name(),
            step,
            &hex::encode(r.run_id)[..8],
            r.payload.len(),
            &hex::encode(r.hash)[..16]
        ));
        let context = match r.phase {
            Phase::RunStarted => payload::RunStarted::decode(r.seq, &r.payload)
                .ok()
                .and_then(|s| s.context),
            Phase::RunRolledBack | Phase::RunFinalized => {
                payload::decode_context(r.seq, &r.payload).ok().flatten()
            }
            _ => None,
        };
        if let Some(c) = context {
            out.push_str(&format!(
                "  by {} on {}: {}",
                c.operator,
                c.host,
                c.command_line.join(" ")
            ));
        }
        out.push('\n');
    }
    out
}

/// `journal salvage`: every record that still verifies on its own, and the steps they show
/// done or undone, for a journal that no longer opens (exit 3).
#[derive(Serialize)]
pub struct SalvageReport {
    pub journal: String,
    /// Read from the record log and from the store (sled) without repairing anything.
    pub records: Vec<SalvagedRecord>,
    /// Per run: the steps a verified `step-done` (or `step-undone`) record names.
    pub runs: Vec<SalvagedRun>,
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct SalvagedRecord {
    pub seq: u64,
    pub run_id: String,
    pub step: Option<u32>,
    pub phase: &'static str,
    pub time_ms: u64,
    pub sha256: String,
    /// "log" or "store".
    pub found_in: &'static str,
    /// Its predecessor was found too, with the hash this record names.
    pub chained: bool,
    /// The step's description (from its intent) or the failure message, when decodable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Serialize)]
pub struct SalvagedRun {
    pub run_id: String,
    pub title: Option<String>,
    pub steps_done: Vec<SalvagedStep>,
    pub steps_undone: Vec<SalvagedStep>,
    /// The run's last run-level record found (committed, failed, rolled back, finalized).
    pub ended: Option<&'static str>,
}

#[derive(Serialize)]
pub struct SalvagedStep {
    pub id: u32,
    pub description: Option<String>,
    pub seq: u64,
}

pub fn salvage(dir: &std::path::Path, found: &crate::journal::Salvage) -> SalvageReport {
    use crate::engine::payload::{self, StepIntent};
    use crate::journal::Phase;
    let mut records = Vec::new();
    let mut runs: Vec<SalvagedRun> = Vec::new();
    let mut descriptions: std::collections::HashMap<([u8; 16], u32), String> = Default::default();
    for (r, from, chained) in &found.records {
        let run_hex = hex::encode(r.run_id);
        if !runs.iter().any(|x| x.run_id == run_hex) {
            runs.push(SalvagedRun {
                run_id: run_hex.clone(),
                title: None,
                steps_done: Vec::new(),
                steps_undone: Vec::new(),
                ended: None,
            });
        }
        let run = runs
            .iter_mut()
            .find(|x| x.run_id == run_hex)
            .expect("just added");
        let mut detail = None;
        match r.phase {
            Phase::RunStarted => {
                if let Ok(s) = payload::RunStarted::decode(r.seq, &r.payload) {
                    run.title = Some(s.plan.title.clone());
                    detail = Some(s.plan.title);
                }
            }
            Phase::StepIntent => {
                if let (Ok(s), Some(id)) =
                    (payload::decode::<StepIntent>(r.seq, &r.payload), r.step)
                {
                    descriptions.insert((r.run_id, id), s.description.clone());
                    detail = Some(s.description);
                }
            }
            Phase::StepFailed | Phase::RunFailed => {
                detail = payload::decode::<payload::Failure>(r.seq, &r.payload)
                    .ok()
                    .map(|f| f.message);
            }
            Phase::StepDone | Phase::StepUndone => {
                if let Some(id) = r.step {
                    let step = SalvagedStep {
                        id,
                        description: descriptions.get(&(r.run_id, id)).cloned(),
                        seq: r.seq,
                    };
                    if r.phase == Phase::StepDone {
                        run.steps_done.push(step);
                    } else {
                        run.steps_undone.push(step);
                    }
                }
            }
            Phase::RunCommitted | Phase::RunRolledBack | Phase::RunFinalized => {
                run.ended = Some(r.phase.name());
            }
            Phase::RunStopped => {
                detail = payload::decode::<payload::RunStopped>(r.seq, &r.payload)
                    .ok()
                    .map(|s| s.to_string());
            }
            Phase::KeptAside => {
                detail = payload::decode::<payload::KeptAside>(r.seq, &r.payload)
                    .ok()
                    .map(|k| format!("kept aside: {} -> {}", k.from.display(), k.to.display()));
            }
            Phase::StepData | Phase::UndoIntent => {}
        }
        records.push(SalvagedRecord {
            seq: r.seq,
            run_id: run_hex,
            step: r.step,
            phase: r.phase.name(),
            time_ms: r.time_ms,
            sha256: hex::encode(r.hash),
            found_in: from,
            chained: *chained,
            detail,
        });
    }
    SalvageReport {
        journal: dir.display().to_string(),
        records,
        runs,
        notes: found.notes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn iso8601_in_utc_with_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(1_796_223_845_123), "2026-12-02T15:04:05.123Z");
        assert_eq!(iso8601(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }
}
