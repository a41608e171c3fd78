//! The rollback's check phase: before anything is undone, everything the undo will need is
//! verified (each step's artifacts against the hashes the journal recorded, write access to
//! every folder it changes), the tree is compared with what the run left (`aftermath`), and
//! every database the run changed with its recorded fingerprint. The result is the
//! [`RollbackPlan`]; nothing here changes anything.

use super::aftermath::{self, StepRecord};
use super::plan::{DatabaseChange, PlannedUndo, RollbackPlan};
use super::undo;
use super::*;
use crate::plan::StepSpec;

/// The JSON format version of `rollback --dry-run --json`.
pub const PLAN_SCHEMA: u32 = 1;

impl Engine {
    /// Checks what a rollback of `run` needs and plans it. `Err` only when the check itself
    /// cannot be made (the journal unreadable); what refuses the rollback is in the plan.
    pub(in crate::engine) fn check_rollback(
        &self,
        run: &RunState,
    ) -> Result<(Active, RollbackPlan)> {
        let a = self.activate(run)?;
        let order = undo_order(&a, run);
        let mut plan = RollbackPlan {
            schema: PLAN_SCHEMA,
            run: run.run_hex(),
            root: self.root.clone(),
            kept_aside_dir: steps::show(&self.root, &a.kept_aside),
            force: self.opts.force,
            steps: Vec::new(),
            aftermath: Default::default(),
            databases: Vec::new(),
            problems: Vec::new(),
            remote_agents: a.plan.title.contains("Remote Agent"),
        };

        // 1. The tree against what the run left.
        let records: Vec<StepRecord> = a
            .plan
            .steps
            .iter()
            .zip(&a.steps)
            .filter_map(|(p, step)| {
                let s = run.step(p.id)?;
                let intent = &state::intent_of(s)?.intent;
                Some(StepRecord {
                    besides: step.writes_besides_touches(intent),
                    id: p.id,
                    action: &p.action,
                    intent,
                    outcome: state::done_of(s).map(|d| &d.outcome),
                    done: s.done.is_some() && s.undo_intent.is_none(),
                    undone: s.undone.is_some(),
                })
            })
            .collect();
        plan.aftermath = aftermath::compare(&records).map_err(|source| Error::Io {
            what: "comparing with what the run left",
            path: self.root.clone(),
            source,
        })?;

        // 2. Each step's artifacts, and what its undo will do.
        plan.problems = self.artifact_problems(&a, run, &order);
        self.check_databases(&a, run, &mut plan);
        for &k in &order {
            let planned = &a.plan.steps[k];
            let id = planned.id;
            let s = run.step(id).expect("in the undo order: has an intent");
            let restored_instead = planned
                .action
                .database()
                .and_then(|c| plan.databases.iter().find(|d| d.connection == c))
                .filter(|d| d.restores(self.opts.force))
                .and_then(|d| d.backup_step);
            let action = match (s.done.is_some(), s.undo_intent.is_some(), restored_instead) {
                (_, _, Some(b)) if b == id => {
                    "keep the database as it is now (a verified backup), then restore the run's backup and check it against the fingerprint taken before the run".to_string()
                }
                (_, _, Some(b)) => format!("not undone row by row: the database is restored from the backup of step {b}"),
                (_, true, _) => "finish its undo, begun by an earlier rollback".into(),
                (false, _, _) => "not recorded done: settle it, and undo it if it is found applied".into(),
                (true, false, _) => "undo".into(),
            };
            plan.steps.push(PlannedUndo {
                step: id,
                description: a.steps[k].describe(&self.root),
                action,
            });
        }

        // 3. Write access where the undo and the keeping aside write.
        let mut folders: Vec<PathBuf> = Vec::new();
        for &k in &order {
            let s = run.step(a.plan.steps[k].id).expect("has an intent");
            for t in &state::intent_of(s).expect("has an intent").intent.touches {
                if let Some(parent) = t.path.parent().filter(|p| p.is_dir()) {
                    folders.push(parent.to_path_buf());
                }
            }
        }
        if !plan.aftermath.foreign.is_empty() {
            folders.push(self.root.clone());
        }
        folders.sort();
        folders.dedup();
        for dir in folders {
            if let Err(e) = durable_fs::probe_writable(&dir) {
                plan.problems.push(format!(
                    "this account cannot write in {}: {e}",
                    dir.display()
                ));
            }
        }
        Ok((a, plan))
    }

    /// What each step of `order` needs for its undo and is missing or damaged
    /// (`Step::verify_artifacts`), one line each naming the step.
    fn artifact_problems(&self, a: &Active, run: &RunState, order: &[usize]) -> Vec<String> {
        let mut problems = Vec::new();
        for &k in order {
            let id = a.plan.steps[k].id;
            let s = run.step(id).expect("in the undo order: has an intent");
            let intent = &state::intent_of(s).expect("has an intent").intent;
            let outcome = state::done_of(s).map(|d| &d.outcome);
            let sink = self.sink(a, id);
            let ctx = self.step_ctx(&a.run_id, id, &sink);
            let what = a.steps[k].describe(&self.root);
            let mut lines = match a.steps[k].verify_artifacts(&ctx, intent, outcome) {
                Ok(lines) => lines,
                Err(e) => vec![e.to_string()],
            };
            // What the step saved in the journal (before-images, converted files' hashes,
            // command outputs), each file against the hash its record holds.
            if let Err(e) = sink.saved(&mut |_| Ok(())) {
                lines.push(format!(
                    "the data this step saved in the journal cannot be read back: {e}"
                ));
            }
            // A backup whose rows are not those of the database it was taken from (a damaged
            // page can still pass SQLite's integrity check).
            let recorded = state::done_of(s).and_then(|d| d.fingerprint.as_ref());
            if let (true, Some(recorded)) = (lines.is_empty(), recorded) {
                match a.steps[k].backup_fingerprint(intent) {
                    Ok(Some(backup)) => {
                        let differences = steps::db_fingerprint::differences(recorded, &backup);
                        if !differences.is_empty() {
                            lines.push(format!(
                                "the database backup {} is damaged: its rows are not those of the database it was taken from (\"when the run left it\": as recorded at the backup; \"now\": in the backup file): {}",
                                backup.of,
                                differences.join("; ")
                            ));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => lines.push(format!("the database backup cannot be read: {e}")),
                }
            }
            problems.extend(
                lines
                    .into_iter()
                    .map(|l| format!("step {id} ({what}): {l}")),
            );
        }
        problems
    }

    /// `journal verify`'s deep part: what a rollback of the latest run needs, checked as the
    /// rollback checks it. `None`: no run a rollback could apply to (none, rolled back,
    /// finalized); else the run, the steps checked and the problems found.
    pub fn verify_artifacts(&self) -> Result<Option<(String, usize, Vec<String>)>> {
        let Some(run) = self.latest()? else {
            return Ok(None);
        };
        if matches!(run.status, RunStatus::RolledBack | RunStatus::Finalized) {
            return Ok(None);
        }
        let a = self.activate(&run)?;
        let order = undo_order(&a, &run);
        let problems = self.artifact_problems(&a, &run, &order);
        Ok(Some((run.run_hex(), order.len(), problems)))
    }

    /// Every database the run changed, compared with the fingerprint its last database step
    /// recorded (with its `step-done`); the changed ones go into the plan. Not compared,
    /// because the run's own state decides there: a database whose rollback has begun, or
    /// whose last started step did not finish (its probe decides), or a step recorded
    /// without a fingerprint (an earlier build).
    fn check_databases(&self, a: &Active, run: &RunState, plan: &mut RollbackPlan) {
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
            let on_this_database =
                |p: &&crate::plan::PlannedStep| p.action.database() == Some(conn);
            let rollback_begun = a
                .plan
                .steps
                .iter()
                .filter(on_this_database)
                .any(|p| run.step(p.id).is_some_and(|s| s.undo_intent.is_some()));
            let Some((_, done)) = s.done.as_ref() else {
                continue;
            };
            let Some(recorded) = done.fingerprint.as_ref() else {
                continue;
            };
            // A forced rollback that began restoring this database from its backup: it kept
            // the database first (a `kept-aside` record), before any undo intent.
            let kept_present = format!("database {}", recorded.of);
            let resumed = run
                .kept_aside
                .iter()
                .any(|(_, _, k)| k.from == std::path::Path::new(&kept_present))
                || a.plan.steps.iter().filter(on_this_database).any(|p| {
                    run.step(p.id)
                        .and_then(|s| s.undone.as_ref())
                        .is_some_and(|(_, how)| how.starts_with(undo::RESTORED_INSTEAD))
                });
            let differences = if resumed {
                vec!["a forced rollback began restoring it from the run's backup".to_string()]
            } else if rollback_begun {
                continue;
            } else {
                match a.steps[k].fingerprint() {
                    Ok(Some(now)) => steps::db_fingerprint::differences(recorded, &now),
                    Ok(None) => continue,
                    Err(e) => vec![format!("cannot be read to compare: {e}")],
                }
            };
            if differences.is_empty() {
                continue;
            }
            let backup_step = a
                .plan
                .steps
                .iter()
                .filter(on_this_database)
                .filter(|p| matches!(p.action, StepSpec::DatabaseBackup { .. }))
                .find(|p| {
                    run.step(p.id)
                        .is_some_and(|s| s.done.is_some() && s.undone.is_none())
                })
                .map(|p| p.id);
            if resumed && backup_step.is_none() {
                continue; // restored already: its backup step is undone
            }
            let change = DatabaseChange {
                connection: conn.to_string(),
                resumed,
                database: recorded.of.clone(),
                step: planned.id,
                differences,
                backup_step,
            };
            plan.databases.push(change);
        }
    }
}

/// The steps a rollback goes through, in its order (the plan's, reversed): those with an
/// intent and no undo record.
pub(in crate::engine) fn undo_order(a: &Active, run: &RunState) -> Vec<usize> {
    (0..a.steps.len())
        .rev()
        .filter(|&k| {
            let s = run.step(a.plan.steps[k].id);
            s.is_some_and(|s| s.intent.is_some() && s.undone.is_none())
        })
        .collect()
}
