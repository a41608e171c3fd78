//! The rollback's plan: what the check found and what the undo will do, for a person
//! (`rollback --dry-run`) and for scripts (`--dry-run --json`), and the refusal it makes
//! when something it needs is missing.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::aftermath::Aftermath;
use crate::steps::show as shown;

/// One step the rollback will go through, in the order it will.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedUndo {
    pub step: u32,
    pub description: String,
    /// What the rollback does there, in words.
    pub action: String,
}

/// A database the run changed that is not as the run left it.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseChange {
    /// The connection string as the plan has it (never printed).
    #[serde(skip)]
    pub connection: String,
    /// The connection string, redacted.
    pub database: String,
    /// The run's last step on it (whose fingerprint is compared).
    pub step: u32,
    /// One line per part that differs ("table UJ_JobSteps: 0 rows ... when the run left
    /// it, 12 rows ... now"); or why the database could not be read.
    pub differences: Vec<String>,
    /// The run's backup step on this database, which `--force` restores (after keeping the
    /// database as it is now); `None`: the run made no backup.
    pub backup_step: Option<u32>,
    /// An earlier forced rollback began restoring it from the backup: this one finishes
    /// that (no `--force` needed again).
    pub resumed: bool,
}

impl DatabaseChange {
    /// Restored from the backup rather than undone row by row.
    pub fn restores(&self, force: bool) -> bool {
        self.backup_step.is_some() && (force || self.resumed)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    /// Format version of the JSON (`rollback --dry-run --json`).
    pub schema: u32,
    pub run: String,
    #[serde(skip)]
    pub root: PathBuf,
    /// Where what stands in the way is kept (relative to the root in the JSON).
    pub kept_aside_dir: String,
    pub force: bool,
    pub steps: Vec<PlannedUndo>,
    pub aftermath: Aftermath,
    pub databases: Vec<DatabaseChange>,
    /// What refuses the rollback whatever the options: an artifact missing or damaged, a
    /// path the account cannot write.
    pub problems: Vec<String>,
    /// The plan names a remote agent's run as a likely cause of a database change (a plan
    /// for a server whose agents share its database).
    #[serde(skip)]
    pub remote_agents: bool,
}

impl RollbackPlan {
    /// Why the rollback needs `--force`: each thing it would discard or cannot restore.
    pub fn needs_force(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in self.databases.iter().filter(|d| !d.resumed) {
            out.push(match d.backup_step {
                Some(b) => format!(
                    "the database {} changed after the run: `--force` keeps it as it is now in a verified backup, then restores the run's backup (step {b})",
                    d.database
                ),
                None => format!(
                    "the database {} changed after the run and the run made no backup of it",
                    d.database
                ),
            });
        }
        for g in self.aftermath.lost() {
            out.push(format!(
                "{} was left by step {} and is gone or changed since; its content before the run cannot be restored (the step moved it: there is no other copy)",
                shown(&self.root, &g.path),
                g.step
            ));
        }
        out
    }

    /// The refusal, if the rollback may not go on: problems always; what needs `--force`
    /// without it; a changed database without a backup even with it.
    pub fn refusal(&self) -> Option<String> {
        let lines = self.refusal_reasons();
        if lines.is_empty() {
            return None;
        }
        let mut s = format!("rollback of run {} refused:", self.run);
        for l in &lines {
            s.push_str("\n  - ");
            s.push_str(l);
        }
        for d in &self.databases {
            let _ = write!(s, "\n{}", self.database_story(d));
        }
        s.push_str("\nNothing was changed.");
        if !self.problems.is_empty() {
            s.push_str(" `journal verify` checks the same artifacts.");
        } else if !self.force {
            s.push_str(" `rollback --dry-run` shows the whole plan; `rollback --force` goes on (nothing written after the run is deleted: it is kept aside).");
        }
        Some(s)
    }

    /// The refusal's reasons alone, one a line (`--dry-run`, after the plan that explains
    /// them).
    pub fn refusal_reasons(&self) -> Vec<String> {
        let mut lines = self.problems.clone();
        if !self.force {
            lines.extend(self.needs_force());
        } else {
            lines.extend(
                self.databases
                    .iter()
                    .filter(|d| d.backup_step.is_none())
                    .map(|d| format!(
                        "the database {} changed after the run and the run made no backup of it: restore it by hand from your own backup taken before the run (rows re-inserted over the changes would not give the state before the run)",
                        d.database
                    )),
            );
        }
        lines
    }

    /// What changed a database after the run, as far as the plan can tell.
    fn database_story(&self, d: &DatabaseChange) -> String {
        let mut s = format!(
            "The database {} is not as this run left it at its last database step (step {}):",
            d.database, d.step
        );
        for l in &d.differences {
            let _ = write!(s, "\n  - {l}");
        }
        s.push_str(
            "\nSomething changed it after this run: the new version itself (a configuration deploy refills the tables the run emptied)",
        );
        if self.remote_agents {
            s.push_str(
                ", or the agent's upgrade (`--mode agent`) run after this server's on a database shared with remote agents. \
                 If an agent's run did it, roll the agent's run back first (`usercube-upgrade rollback --root AGENT-ROOT` on the agent's installation), then this run: \
                 rolling this run back first would restore its backup over the agent's changes, and the agent's rollback would then put back a 5.2.3 database under a 5.1.7 server.",
            );
        } else {
            s.push('.');
        }
        s
    }

    /// The plan for a person.
    pub fn text(&self) -> String {
        let root = &self.root;
        let mut s = format!(
            "rollback plan for run {} ({} steps to check):",
            self.run,
            self.steps.len()
        );
        for p in &self.steps {
            let _ = write!(s, "\n  [{}] {}: {}", p.step, p.description, p.action);
        }
        let a = &self.aftermath;
        if a.foreign.is_empty() {
            s.push_str("\nWritten after the run where the rollback restores: nothing.");
        } else {
            let _ = write!(
                s,
                "\nWritten after the run, kept aside in {} (moved, never deleted; relative paths kept):",
                self.kept_aside_dir
            );
            for f in &a.foreign {
                let what = if f.folder {
                    format!("folder, {} files, {} bytes", f.files, f.bytes)
                } else {
                    format!("{} bytes", f.bytes)
                };
                let _ = write!(s, "\n  {} ({}, {what})", shown(root, &f.path), f.why);
            }
        }
        if !a.gone.is_empty() {
            s.push_str("\nLeft by the run and gone or replaced since:");
            for g in &a.gone {
                let fate = if g.lost {
                    "its content before the run cannot be restored"
                } else {
                    "the undo restores the earlier content from its own copy"
                };
                let _ = write!(s, "\n  {} (step {}): {fate}", shown(root, &g.path), g.step);
            }
        }
        for m in &a.modes {
            let _ = write!(
                s,
                "\n  {}: permissions {:o} now, {:o} as the run left them (set back)",
                shown(root, &m.path),
                m.now,
                m.was
            );
        }
        if self.databases.is_empty() {
            s.push_str("\nDatabases: as the run left them.");
        }
        for d in &self.databases {
            let _ = write!(s, "\n{}", self.database_story(d));
        }
        let force = self.needs_force();
        if !force.is_empty() {
            s.push_str("\nWhat `--force` would discard or not restore:");
            for l in &force {
                let _ = write!(s, "\n  - {l}");
            }
        }
        if !self.problems.is_empty() {
            s.push_str("\nRefused whatever the options (nothing would be changed):");
            for l in &self.problems {
                let _ = write!(s, "\n  - {l}");
            }
        }
        s
    }
}
