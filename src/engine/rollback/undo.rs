//! The rollback's undo: first what was written after the run is kept aside, then every
//! step is undone in reverse order.

use super::plan::RollbackPlan;
use super::*;
use crate::plan::StepSpec;

/// How a database step not undone row by row is recorded undone (its database restored from
/// the run's backup instead); a later rollback reads it to go on the same way.
const NOT_APPLIED: &str = "was not applied";

pub const RESTORED_INSTEAD: &str = "not undone row by row";

impl Engine {
    /// Moves what the run did not write out of the way of the undo (each move journaled
    /// before it happens, by the step whose path it stands in) and sets back permissions
    /// changed since the run. After a crash the check finds what is left and goes on.
    pub(super) fn keep_aside(&mut self, a: &Active, plan: &RollbackPlan) -> Result<()> {
        let failed = |e: StepError| {
            Error::RunFailed(format!(
                "rollback stopped before undoing anything, keeping aside what was written after the run: {e}\nWhat was kept aside so far is journaled; `{}` goes on.",
                self.command("rollback")
            ))
        };
        for f in &plan.aftermath.foreign {
            let sink = self.sink(a, f.step);
            let to = sink.keep_aside(&f.path).map_err(&failed)?;
            tracing::debug!(from = %f.path.display(), to = %to.display(), "kept aside");
        }
        for m in &plan.aftermath.modes {
            crate::platform::set_mode(&m.path, m.was)
                .map_err(steps::io("setting back the permissions of", &m.path))
                .map_err(&failed)?;
        }
        // A database changed after the run, about to be restored: kept first as it is now.
        for d in plan
            .databases
            .iter()
            .filter(|d| !d.resumed && d.restores(self.opts.force))
        {
            let id = d.backup_step.expect("restores: has a backup step");
            let k = a
                .plan
                .steps
                .iter()
                .position(|p| p.id == id)
                .expect("a plan step");
            let run = self.latest()?.expect("a run is being rolled back");
            let s = run.step(id).expect("a done backup step");
            let intent = &state::intent_of(s).expect("done: has an intent").intent;
            let sink = self.sink(a, id);
            let ctx = self.step_ctx(&a.run_id, id, &sink);
            if let Some(kept) = a.steps[k].keep_present(&ctx, intent).map_err(&failed)? {
                sink.record_kept(&format!("database {}", d.database), &kept)
                    .map_err(&failed)?;
                self.progress.say(format!(
                    "the database {} as it is now (written after the run) is kept, verified, in {}",
                    d.database,
                    kept.display()
                ));
            }
        }
        Ok(())
    }

    /// Undoes step `k` as the plan says: a database step of a database restored from the
    /// run's backup is not undone row by row (the backup step restores it, and its result is
    /// checked against the fingerprint taken before the run); the others by `undo_step`,
    /// forced where `--force` was given or where all that is gone was the step's own.
    fn undo_planned(
        &self,
        a: &Active,
        run: &RunState,
        plan: &RollbackPlan,
        k: usize,
        ctx: &StepContext,
    ) -> std::result::Result<String, StepError> {
        let planned = &a.plan.steps[k];
        let step = &*a.steps[k];
        let s = run.step(planned.id).expect("in the undo order");
        let intent = &state::intent_of(s).expect("in the undo order").intent;
        let outcome = state::done_of(s).map(|d| &d.outcome);
        let restored = planned.action.database().and_then(|c| {
            plan.databases
                .iter()
                .find(|d| d.connection == c && d.restores(self.opts.force))
        });
        if let Some(b) = restored
            .and_then(|d| d.backup_step)
            .filter(|b| *b != planned.id)
        {
            return Ok(format!(
                "{RESTORED_INSTEAD}: the database is restored from the backup of step {b}"
            ));
        }
        let forced = self.opts.force
            || restored.is_some()
            || plan.aftermath.undo_anyway.contains(&planned.id);
        let how = self.undo_step(step, ctx, intent, outcome, forced)?;
        if matches!(planned.action, StepSpec::DatabaseBackup { .. }) && how != NOT_APPLIED {
            self.check_restored(step, s)?;
        }
        Ok(how.to_string())
    }

    /// A database restored from the run's backup must be as the backup step found it
    /// before the run (its fingerprint, recorded with its `step-done`).
    fn check_restored(
        &self,
        step: &dyn Step,
        s: &state::StepState,
    ) -> std::result::Result<(), StepError> {
        let Some(recorded) = state::done_of(s).and_then(|d| d.fingerprint.as_ref()) else {
            return Ok(());
        };
        let Some(now) = step.fingerprint()? else {
            return Ok(());
        };
        let differences = steps::db_fingerprint::differences(recorded, &now);
        if differences.is_empty() {
            return Ok(());
        }
        Err(StepError::Refused(format!(
            "the database {} restored from the run's backup is not as it was before the run:\n  - {}",
            recorded.of,
            differences.join("\n  - ")
        )))
    }

    /// Names what the run's rollbacks and recoveries kept aside, with where it is now.
    pub(super) fn say_kept_aside(&self, a: &Active) -> Result<()> {
        let Some(run) = self.latest()? else {
            return Ok(());
        };
        if run.kept_aside.is_empty() {
            return Ok(());
        }
        let mut s = format!(
            "written after the run and kept aside in {} (nothing was deleted):",
            steps::show(&self.root, &a.kept_aside)
        );
        for (_, _, k) in &run.kept_aside {
            s.push_str(&format!(
                "\n  {} -> {} ({} files, {} bytes)",
                k.from.display(),
                k.to.display(),
                k.files,
                k.bytes
            ));
        }
        self.progress.say(s);
        Ok(())
    }

    /// One group of undos; `Ok(false)`: a stop request ended it early (the steps left have
    /// an undo intent, which `rollback` settles and probes again).
    pub(super) fn undo_group(
        &mut self,
        a: &Active,
        run: &RunState,
        plan: &RollbackPlan,
        ks: &[usize],
    ) -> Result<bool> {
        let intents: Vec<NewRecord> = ks
            .iter()
            .map(|&k| a.plan.steps[k].id)
            .filter(|id| run.step(*id).is_some_and(|s| s.undo_intent.is_none()))
            .map(|id| Self::record(a.run_id, id, Phase::UndoIntent, Vec::new()))
            .collect();
        self.journal.borrow_mut().append_batch(intents)?;
        let mut undone = Vec::with_capacity(ks.len());
        let mut stop = None;
        let mut complete = true;
        for (pos, &k) in ks.iter().enumerate() {
            if pos > 0 && self.stop_requested().is_some() {
                complete = false;
                break;
            }
            let id = a.plan.steps[k].id;
            let s = run.step(id).expect("filtered on intent");
            let intent = &state::intent_of(s).expect("filtered on intent").intent;
            let sink = self.sink(a, id);
            let ctx = self.step_ctx(&a.run_id, id, &sink);
            // Labelled as a rollback; totals where the step knows them from its intent.
            self.progress.start_step(
                &format!("rolling back [{id}] {}", a.steps[k].describe(&self.root)),
                || a.steps[k].undo_work(intent),
            );
            let undone_step = self.undo_planned(a, run, plan, k, &ctx);
            self.progress.finish();
            match undone_step {
                Ok(how) => {
                    self.progress
                        .say(format!("[{id}] {}: {how}", a.steps[k].describe(&self.root)));
                    let p = payload::StepUndone { how };
                    undone.push(Self::record(
                        a.run_id,
                        id,
                        Phase::StepUndone,
                        payload::encode(&p),
                    ));
                }
                Err(e) => {
                    let what = a.steps[k].describe(&self.root);
                    stop = Some(match e.corruption() {
                        Some(c) => corrupt_in_step(id, &what, c),
                        None => Error::RunFailed(format!(
                            "rollback stopped at step {id} ({what}): {e}\nSteps after it in the rollback order are not undone yet; the journal records exactly which."
                        )),
                    });
                    break;
                }
            }
        }
        self.barrier()?;
        self.journal.borrow_mut().append_batch(undone)?;
        match stop {
            Some(e) => Err(e),
            None => Ok(complete),
        }
    }

    fn undo_step(
        &self,
        step: &dyn Step,
        ctx: &StepContext,
        intent: &Intent,
        outcome: Option<&Outcome>,
        forced: bool,
    ) -> std::result::Result<&'static str, StepError> {
        step.settle(ctx, intent, outcome)?;
        let probe = step.probe(ctx, intent, outcome)?;
        tracing::debug!(step = %step.describe(&self.root), ?probe, "undo: probed");
        match probe {
            Probe::NotApplied => Ok(NOT_APPLIED),
            Probe::Applied => step.undo(ctx, intent, outcome).map(|()| "undone"),
            Probe::Partial(_) => step
                .undo(ctx, intent, outcome)
                .map(|()| "undone (it was part applied)"),
            Probe::Inconsistent(why) if forced => step
                .undo(ctx, intent, outcome)
                .map(|()| "undone (forced)")
                .map_err(|e| StepError::Refused(format!("{e} (state was: {why})"))),
            Probe::Inconsistent(why) => Err(StepError::Refused(format!(
                "changed since the step ran: {why}; refusing to undo (--force overrides)"
            ))),
        }
    }
}
