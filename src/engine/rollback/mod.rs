//! Rollback: check, plan, undo, in that order.
//!
//! Nothing is undone before the whole rollback is checked: every database the run changed is
//! compared with what the run left (`check_databases`). The undo then goes through the
//! steps in reverse order, grouped like the run: undo intents (one flush), settle, probe,
//! undo, undo records (one flush).

use super::*;

impl Engine {
    /// Restores the starting state of the latest run (interrupted, failed or committed).
    pub fn rollback(&mut self) -> Result<()> {
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to roll back: no run in the journal".into()))?;
        match run.status {
            RunStatus::RolledBack => {
                self.progress
                    .say(format!("run {} is already rolled back", run.run_hex()));
                return Ok(());
            }
            RunStatus::Finalized => {
                return Err(Error::Refused(format!(
                    "run {} is finalized: what rollback needs has been purged",
                    run.run_hex()
                )))
            }
            _ => {}
        }
        if let Err(e) = self.check_databases(&run) {
            // Refused before anything changed: give back the room the command line freed.
            let _ = crate::journal::make_reserve(&self.dir);
            return Err(e);
        }
        if run.status != RunStatus::Committed || run.rollback_started() {
            // Unfinished: a restart since may have undone what earlier steps did outside
            // the tree (a committed run's own last steps are undone first instead).
            let a = self.activate(&run)?;
            self.settle_page_cache()?;
            self.reassert(&a, &run)?;
        }
        self.rollback_run()
    }

    /// The rollback itself (also the automatic one after a failed step, in the same process:
    /// nothing to re-establish there).
    pub(super) fn rollback_run(&mut self) -> Result<()> {
        crate::journal::release_reserve(&self.dir).map_err(|source| Error::Io {
            what: "removing the rollback reserve in",
            path: self.dir.clone(),
            source,
        })?;
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to roll back: no run in the journal".into()))?;
        let a = self.activate(&run)?;
        self.settle_page_cache()?;
        let order: Vec<usize> = (0..a.steps.len())
            .rev()
            .filter(|&k| {
                let s = run.step(a.plan.steps[k].id);
                s.is_some_and(|s| s.intent.is_some() && s.undone.is_none())
            })
            .collect();
        self.progress.say(format!(
            "rolling back run {}: {} steps to check",
            run.run_hex(),
            order.len()
        ));
        let mut i = 0;
        while i < order.len() {
            if let Some(signal) = self.stop_requested() {
                return self.rollback_interrupted(&a, signal, order.len());
            }
            let group = self.group(&a, &order, i);
            let complete = match self.undo_group(&a, &run, &order[group.clone()]) {
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
        Ok(())
    }

    /// Before a rollback changes anything: every database the run changed must be as the
    /// run's last database step left it (its fingerprint, recorded with its `step-done`).
    /// Restoring a backup or re-inserting rows over a later change (a remote agent's upgrade
    /// run after this server's, sharing the database) would silently discard that change.
    /// Not checked, because the run's own state decides there: a database whose rollback has
    /// begun, or whose last started step did not finish (its probe decides), or a step
    /// recorded without a fingerprint (an earlier build). `--force` goes on, saying so.
    fn check_databases(&self, run: &RunState) -> Result<()> {
        let a = self.activate(run)?;
        let mut seen: Vec<&str> = Vec::new();
        for k in (0..a.steps.len()).rev() {
            let planned = &a.plan.steps[k];
            let Some(conn) = planned.action.database() else {
                continue;
            };
            let Some(s) = run.step(planned.id).filter(|s| s.intent.is_some()) else {
                continue;
            };
            if seen.contains(&conn) {
                continue;
            }
            seen.push(conn);
            let rollback_begun = a.plan.steps.iter().any(|p| {
                p.action.database() == Some(conn)
                    && run.step(p.id).is_some_and(|s| s.undo_intent.is_some())
            });
            let Some((done_seq, done)) = s.done.as_ref() else {
                continue;
            };
            let (false, Some(recorded)) = (rollback_begun, done.fingerprint.as_ref()) else {
                continue;
            };
            let what = a.steps[k].describe(&self.root);
            let now = a.steps[k].fingerprint().map_err(|e| {
                Error::Refused(format!(
                    "cannot check that the database {} is as this run left it (step {}: {what}): {e}\nNothing was changed; `--force` rolls back without the check.",
                    recorded.of, planned.id
                ))
            });
            let differences = match (now, self.opts.force) {
                (Ok(Some(now)), _) => steps::db_fingerprint::differences(recorded, &now),
                (Ok(None), _) => continue,
                (Err(e), false) => return Err(e),
                (Err(e), true) => vec![e.to_string()],
            };
            if differences.is_empty() {
                continue;
            }
            let when = run
                .times
                .get(done_seq)
                .map(|ms| audit::iso8601(*ms))
                .unwrap_or_default();
            let list: String = differences.iter().map(|d| format!("\n  - {d}")).collect();
            let message = format!(
                "the database {} is not as this run ({}) left it at its last database step (step {}: {what}, done {when}):{list}\n\
                 Something changed it after this run. On a database shared with remote agents that is the agent's upgrade \
                 (`--mode agent`) run after this server's: roll the agent's run back first (`usercube-upgrade rollback --root AGENT-ROOT` \
                 on the agent's installation), then this run. Rolling this run back first would restore its backup over the agent's changes, \
                 and the agent's rollback would then put back a 5.2.3 database under a 5.1.7 server.",
                recorded.of,
                run.run_hex(),
                planned.id,
            );
            if !self.opts.force {
                return Err(Error::Refused(format!(
                    "{message}\nNothing was changed. `--force` rolls back anyway, discarding those changes."
                )));
            }
            self.progress
                .say(format!("warning: {message}\n--force: rolling back anyway."));
        }
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
        let run = self.latest()?.expect("a run is being rolled back");
        let undone = a
            .plan
            .steps
            .iter()
            .filter(|s| {
                run.step(s.id)
                    .is_some_and(|x| x.intent.is_some() && x.undone.is_none())
            })
            .count();
        let checked = to_check.saturating_sub(undone);
        let stopped = payload::RunStopped {
            reason: payload::StopReason::Signal(signal.name().into()),
            rollback: true,
            steps_done: checked as u32,
            steps_total: to_check as u32,
        };
        self.append(a.run_id, None, Phase::RunStopped, payload::encode(&stopped))?;
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

    /// One group of undos; `Ok(false)`: a stop request ended it early (the steps left have
    /// an undo intent, which `rollback` settles and probes again).
    fn undo_group(&mut self, a: &Active, run: &RunState, ks: &[usize]) -> Result<bool> {
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
            let outcome = state::done_of(s).map(|d| &d.outcome);
            let sink = self.sink(a, id);
            let ctx = self.step_ctx(&a.run_id, id, &sink);
            // Labelled as a rollback; totals where the step knows them from its intent.
            self.progress.start_step(
                &format!("rolling back [{id}] {}", a.steps[k].describe(&self.root)),
                || a.steps[k].undo_work(intent),
            );
            let undone_step = self.undo_step(&*a.steps[k], &ctx, intent, outcome);
            self.progress.finish();
            match undone_step {
                Ok(how) => {
                    self.progress
                        .say(format!("[{id}] {}: {how}", a.steps[k].describe(&self.root)));
                    let p = payload::StepUndone {
                        how: how.to_string(),
                    };
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
    ) -> std::result::Result<&'static str, StepError> {
        step.settle(ctx, intent, outcome)?;
        let probe = step.probe(ctx, intent, outcome)?;
        tracing::debug!(step = %step.describe(&self.root), ?probe, "undo: probed");
        match probe {
            Probe::NotApplied => Ok("was not applied"),
            Probe::Applied => step.undo(ctx, intent, outcome).map(|()| "undone"),
            Probe::Partial(_) => step
                .undo(ctx, intent, outcome)
                .map(|()| "undone (it was part applied)"),
            Probe::Inconsistent(why) if self.opts.force => step
                .undo(ctx, intent, outcome)
                .map(|()| "undone (forced)")
                .map_err(|e| StepError::Refused(format!("{e} (state was: {why})"))),
            Probe::Inconsistent(why) => Err(StepError::Refused(format!(
                "changed since the step ran: {why}; refusing to undo (--force overrides)"
            ))),
        }
    }
}
