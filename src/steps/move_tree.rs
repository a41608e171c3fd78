//! Move a tree: a rename on one filesystem; across filesystems copy, verify, rename into
//! place, then delete the source (`durable_fs::move_path`).

use std::path::{Path, PathBuf};

use super::rename::moving_intent;
use super::{io, settle_pair, show, Intent, Outcome, PlanView, Result, Step, StepContext, Work};
use crate::durable_fs;

pub struct MoveTree {
    pub from: PathBuf,
    pub to: PathBuf,
}

impl Step for MoveTree {
    fn describe(&self, root: &Path) -> String {
        format!(
            "move {} -> {}",
            show(root, &self.from),
            show(root, &self.to)
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        view.require(&self.from)?;
        view.require_absent(&self.to)?;
        view.moved(&self.from, &self.to);
        Ok(())
    }

    fn bytes_needed(&self, view: &PlanView) -> u64 {
        match view.origin(&self.to) {
            Some(origin) if !durable_fs::same_filesystem(&origin, &self.to) => {
                view.size_of(&self.to)
            }
            _ => 0,
        }
    }

    /// Across filesystems, the tree to copy; a rename reports nothing.
    fn work(&self, view: &PlanView) -> Work {
        match view.origin(&self.from) {
            Some(origin) if !durable_fs::same_filesystem(&origin, &self.to) => {
                view.work_of(&self.from)
            }
            _ => Work::default(),
        }
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        moving_intent(&self.from, &self.to)
    }

    fn apply(&self, ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        durable_fs::move_path(&self.from, &self.to, ctx.report())
            .map_err(io("moving", &self.from))?;
        Ok(Outcome::default())
    }

    fn settle(&self, ctx: &StepContext, intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        settle_pair(ctx.journal, &self.from, &self.to, &intent.touches[0].before)
    }

    // No `verify_artifacts`: the undo moves the tree back and reads nothing outside it.
    fn undo(&self, ctx: &StepContext, _intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        if self.to.symlink_metadata().is_err() {
            return Ok(()); // gone since the run (a forced undo): nothing to move back
        }
        durable_fs::move_path(&self.to, &self.from, ctx.report())
            .map_err(io("moving back", &self.to))
    }
}
