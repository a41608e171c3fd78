//! "Delete" a tree by moving it into the journal's trash (same filesystem: one rename;
//! otherwise copy, verify, delete). The trash is purged only by `finalize`.

use std::path::{Path, PathBuf};

use super::{
    io, settle_pair, show, Intent, Outcome, PlanView, Result, Step, StepContext, StepError, Touch,
    Work,
};
use crate::durable_fs;
use crate::manifest::Manifest;

pub struct DeleteTree {
    pub path: PathBuf,
}

const TRASH_NAME: &str = "deleted";

impl Step for DeleteTree {
    fn describe(&self, root: &Path) -> String {
        format!(
            "delete {} (kept in the journal trash until finalize)",
            show(root, &self.path)
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        view.require(&self.path)?;
        view.removed(&self.path);
        Ok(())
    }

    /// Bytes and files reported when the journal trash is on another filesystem (a
    /// rename reports none).
    fn work(&self, view: &PlanView) -> Work {
        view.work_of(&self.path)
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let m = Manifest::of(&self.path).map_err(io("reading", &self.path))?;
        if !m.exists() {
            return Err(StepError::Refused(format!(
                "{} does not exist",
                self.path.display()
            )));
        }
        Ok(Intent {
            touches: vec![Touch {
                path: self.path.clone(),
                before: m,
                after: Some(Manifest::default()),
            }],
            detail: String::new(),
        })
    }

    fn apply(&self, ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        let dest = ctx.trash_path(TRASH_NAME)?;
        durable_fs::move_path(&self.path, &dest, ctx.report())
            .map_err(io("moving to the trash", &self.path))?;
        Ok(Outcome::default())
    }

    fn settle(&self, ctx: &StepContext, intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        settle_pair(
            ctx.journal,
            &self.path,
            &ctx.trash.join(TRASH_NAME),
            &intent.touches[0].before,
        )
    }

    fn undo(&self, ctx: &StepContext, intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        let kept = ctx.trash.join(TRASH_NAME);
        let now = Manifest::of(&kept).map_err(io("reading", &kept))?;
        if let Some(d) = intent.touches[0].before.first_difference(&now) {
            return Err(StepError::Refused(format!(
                "the trash copy of {} is not what was deleted ({d}); cannot restore it",
                self.path.display()
            )));
        }
        durable_fs::move_path(&kept, &self.path, ctx.report()).map_err(io("restoring", &kept))
    }
}
