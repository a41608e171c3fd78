//! Rename a file or folder on one filesystem: one atomic `rename(2)`.

use std::path::{Path, PathBuf};

use super::{io, show, Intent, Outcome, PlanView, Result, Step, StepContext, StepError, Touch};
use crate::durable_fs;
use crate::manifest::Manifest;

pub struct Rename {
    pub from: PathBuf,
    pub to: PathBuf,
}

impl Step for Rename {
    fn describe(&self, root: &Path) -> String {
        format!(
            "rename {} -> {}",
            show(root, &self.from),
            show(root, &self.to)
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        view.require(&self.from)?;
        view.require_absent(&self.to)?;
        if let (Some(origin), Some(parent)) = (view.origin(&self.from), self.to.parent()) {
            if origin.exists() && parent.exists() && !durable_fs::same_filesystem(&origin, parent) {
                return Err(format!(
                    "{} and {} are on different filesystems: a rename cannot move between them",
                    show(view.root(), &self.from),
                    show(view.root(), &self.to)
                ));
            }
        }
        view.moved(&self.from, &self.to);
        Ok(())
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        moving_intent(&self.from, &self.to)
    }

    fn apply(&self, ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        // No later operation of this step depends on it: the engine's barrier syncs.
        ctx.deferred
            .rename(&self.from, &self.to)
            .map_err(io("renaming", &self.from))?;
        Ok(Outcome::default())
    }

    // No `verify_artifacts`: the undo renames back and reads nothing outside the tree.
    fn undo(&self, ctx: &StepContext, _intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        if self.to.symlink_metadata().is_err() {
            return Ok(()); // gone since the run (a forced undo): nothing to rename back
        }
        ctx.deferred
            .rename(&self.to, &self.from)
            .map_err(io("renaming back", &self.to))
    }
}

/// Intent of a step that moves `from` to `to` unchanged: `from` disappears, `to` appears
/// holding exactly what `from` held.
pub(super) fn moving_intent(from: &Path, to: &Path) -> Result<Intent> {
    let m = Manifest::of(from).map_err(io("reading", from))?;
    if !m.exists() {
        return Err(StepError::Refused(format!(
            "{} does not exist",
            from.display()
        )));
    }
    if to.symlink_metadata().is_ok() {
        return Err(StepError::Refused(format!(
            "{} already exists",
            to.display()
        )));
    }
    Ok(Intent {
        touches: vec![
            Touch {
                path: from.to_path_buf(),
                before: m.clone(),
                after: Some(Manifest::default()),
            },
            Touch {
                path: to.to_path_buf(),
                before: Manifest::default(),
                after: Some(m),
            },
        ],
        detail: String::new(),
    })
}
