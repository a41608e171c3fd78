//! Rollback: check, plan, undo, in that order.
//!
//! 1. `check` (check.rs): before anything changes, every artifact the undo needs is
//!    verified against the journal's hashes, write access is probed, the tree is compared
//!    with what the run left (aftermath.rs) and every database the run changed with its
//!    recorded fingerprint. Nothing is changed there.
//! 2. `plan` (plan.rs): what the check found and what the undo will do; `rollback --dry-run`
//!    prints it, and it refuses the rollback (exit 2, nothing changed) when an artifact is
//!    missing or damaged, a path cannot be written, or, without `--force`, a database changed
//!    after the run or something the run moved is gone since.
//! 3. `undo` (undo.rs): what was written after the run where the rollback restores is kept
//!    aside (journaled moves into the run's `KeptAside-...` folder, never deleted); then the
//!    steps in reverse order, grouped like the run: undo intents (one flush), settle, probe,
//!    undo, undo records (one flush). A database changed after the run is, with `--force`,
//!    kept as it is in a verified backup, then restored from the run's backup.

mod aftermath;
mod check;
mod plan;
mod undo;

pub use plan::RollbackPlan;

use super::*;

impl Engine {
    /// The plan of a rollback of the latest run, changing nothing (`rollback --dry-run`);
    /// `Err(run)` names the run when it is rolled back already.
    pub fn rollback_plan(&self) -> Result<std::result::Result<RollbackPlan, String>> {
        let run = self.rollback_candidate()?;
        if run.status == RunStatus::RolledBack {
            return Ok(Err(run.run_hex()));
        }
        Ok(Ok(self.check_rollback(&run)?.1))
    }

    /// Restores the starting state of the latest run (interrupted, failed or committed).
    pub fn rollback(&mut self) -> Result<()> {
        let run = self.rollback_candidate()?;
        if run.status == RunStatus::RolledBack {
            self.progress
                .say(format!("run {} is already rolled back", run.run_hex()));
            return Ok(());
        }
        let (a, plan) = self.check_rollback(&run)?;
        if let Some(refusal) = plan.refusal() {
            // Refused before anything changed: give back the room the command line freed.
            let _ = crate::journal::make_reserve(&self.dir);
            return Err(Error::Refused(refusal));
        }
        if run.status != RunStatus::Committed || run.rollback_started() {
            // Unfinished: a restart since may have undone what earlier steps did outside
            // the tree (a committed run's own last steps are undone first instead).
            self.settle_page_cache()?;
            self.reassert(&a, &run)?;
        }
        self.rollback_run(a, plan)
    }

    /// The automatic rollback after a failed step, in the same process (nothing to
    /// re-establish there), checked like any other.
    pub(super) fn rollback_after_failure(&mut self) -> Result<()> {
        let run = self.rollback_candidate()?;
        let (a, plan) = self.check_rollback(&run)?;
        if let Some(refusal) = plan.refusal() {
            return Err(Error::Refused(refusal));
        }
        self.rollback_run(a, plan)
    }

    /// The latest run, if a rollback can apply to it.
    fn rollback_candidate(&self) -> Result<RunState> {
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to roll back: no run in the journal".into()))?;
        if run.status == RunStatus::Finalized {
            return Err(Error::Refused(format!(
                "run {} is finalized: what rollback needs has been purged",
                run.run_hex()
            )));
        }
        Ok(run)
    }

    /// The rollback itself, once checked.
    fn rollback_run(&mut self, a: Active, plan: RollbackPlan) -> Result<()> {
        crate::journal::release_reserve(&self.dir).map_err(|source| Error::Io {
            what: "removing the rollback reserve in",
            path: self.dir.clone(),
            source,
        })?;
        self.settle_page_cache()?;
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to roll back: no run in the journal".into()))?;
        let order = check::undo_order(&a, &run);
        self.progress.say(format!(
            "rolling back run {}: {} steps to check",
            run.run_hex(),
            order.len()
        ));
        self.keep_aside(&a, &plan)?;
        let mut i = 0;
        while i < order.len() {
            if let Some(signal) = self.stop_requested() {
                return self.rollback_interrupted(&a, signal, order.len());
            }
            let group = self.group(&a, &order, i);
            let complete = match self.undo_group(&a, &run, &plan, &order[group.clone()]) {
                Ok(complete) => complete,
                Err(e) => return Err(self.record_rollback_stopped(a.run_id, e, order.len())),
            };
            if !complete {
                let signal = self
                    .stop_requested()
                    .expect("a group stops early only on request");
                return self.rollback_interrupted(&a, signal, order.len());
            }
            i = group.end;
        }
        let by = payload::encode(&self.opts.context);
        self.append(a.run_id, None, Phase::RunRolledBack, by)?;
        self.progress.finish();
        self.progress.say(format!(
            "run {} rolled back: the installation is as it was before the run",
            run.run_hex()
        ));
        self.say_kept_aside(&a)?;
        Ok(())
    }

    /// Records that a rollback stopped on a signal at a durable point; `rollback` again
    /// finishes it.
    fn rollback_interrupted(
        &mut self,
        a: &Active,
        signal: crate::platform::StopSignal,
        to_check: usize,
    ) -> Result<()> {
        let reason = payload::StopReason::Signal(signal.name().into());
        let checked = self.rollback_stopped(a.run_id, reason, to_check)?;
        self.progress.finish();
        Err(Error::Interrupted {
            message: format!(
                "rollback interrupted after step {checked} of {to_check} to undo ({}): `{}` finishes it",
                signal.name(),
                self.command("rollback")
            ),
            exit_code: signal.exit_code(),
        })
    }

    /// Records that a rollback stopped on an error (`run-stopped`, `rollback: true`), so that
    /// `status` says what stopped it; gives the error back. Not for journal corruption or a
    /// journal that failed to write: no record is trusted to say it.
    fn record_rollback_stopped(
        &mut self,
        run_id: [u8; 16],
        error: Error,
        to_check: usize,
    ) -> Error {
        if error.corruption().is_some() || matches!(error, Error::Journal(_)) {
            return error;
        }
        let message = error.to_string();
        let reason = payload::StopReason::Failed(message.lines().next().unwrap_or("").into());
        match self.rollback_stopped(run_id, reason, to_check) {
            Ok(_) => error,
            Err(e) => Error::RunFailed(format!(
                "{message}\nRecording that the rollback stopped failed too: {e}"
            )),
        }
    }

    /// Appends `run-stopped` for a rollback stopped for `reason`; returns how many of the
    /// `to_check` steps it has undone (those with an intent and no undo record are left).
    fn rollback_stopped(
        &mut self,
        run_id: [u8; 16],
        reason: payload::StopReason,
        to_check: usize,
    ) -> Result<usize> {
        let left = self.latest()?.map_or(0, |run| {
            run.steps
                .values()
                .filter(|s| s.intent.is_some() && s.undone.is_none())
                .count()
        });
        let undone = to_check.saturating_sub(left);
        let stopped = payload::RunStopped {
            reason,
            rollback: true,
            steps_done: undone as u32,
            steps_total: to_check as u32,
        };
        self.append(run_id, None, Phase::RunStopped, payload::encode(&stopped))?;
        Ok(undone)
    }
}
