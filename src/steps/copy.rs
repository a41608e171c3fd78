//! Copy a file or a tree through a staging name: the copy appears whole or not at all.
//! Undo moves the copy into the journal trash (nothing is destroyed before finalize).

use std::path::{Path, PathBuf};

use super::{
    io, settle_pair, show, Intent, Outcome, PlanView, Result, Step, StepContext, StepError, Touch,
    Work,
};
use crate::durable_fs;
use crate::manifest::Manifest;

pub struct Copy {
    pub from: PathBuf,
    pub to: PathBuf,
}

const TRASH_NAME: &str = "copy";

impl Step for Copy {
    fn describe(&self, root: &Path) -> String {
        format!(
            "copy {} -> {}",
            show(root, &self.from),
            show(root, &self.to)
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        view.require(&self.from)?;
        view.require_absent(&self.to)?;
        view.copied(&self.from, &self.to);
        Ok(())
    }

    fn bytes_needed(&self, view: &PlanView) -> u64 {
        view.size_of(&self.to)
    }

    fn work(&self, view: &PlanView) -> Work {
        view.work_of(&self.from)
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let m = Manifest::of(&self.from).map_err(io("reading", &self.from))?;
        if !m.exists() {
            return Err(StepError::Refused(format!(
                "{} does not exist",
                self.from.display()
            )));
        }
        if self.to.symlink_metadata().is_ok() {
            return Err(StepError::Refused(format!(
                "{} already exists",
                self.to.display()
            )));
        }
        Ok(Intent {
            touches: vec![
                Touch {
                    path: self.from.clone(),
                    before: m.clone(),
                    after: Some(m.clone()),
                },
                Touch {
                    path: self.to.clone(),
                    before: Manifest::default(),
                    after: Some(m),
                },
            ],
            detail: String::new(),
        })
    }

    fn apply(&self, ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        durable_fs::copy_path(&self.from, &self.to, ctx.report())
            .map_err(io("copying", &self.from))?;
        Ok(Outcome::default())
    }

    fn settle(&self, ctx: &StepContext, intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        let expected = intent.touches[1]
            .after
            .as_ref()
            .expect("copy knows its result");
        settle_pair(ctx.journal, &self.to, &ctx.trash.join(TRASH_NAME), expected)
    }

    // No `verify_artifacts`: the undo moves the copy into the trash and reads nothing kept
    // outside the tree (the source stayed in place).
    fn undo(&self, ctx: &StepContext, _intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        if self.to.symlink_metadata().is_err() {
            return Ok(()); // removed since the run (a forced undo): nothing to take back
        }
        let dest = ctx.trash_path(TRASH_NAME)?;
        durable_fs::move_path(&self.to, &dest, ctx.report())
            .map_err(io("moving to the trash", &self.to))
    }
}
