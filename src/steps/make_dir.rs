//! Create one new, empty folder (the seed's "create a temporary folder"). A step of its
//! own so that rollback removes exactly the folder the run created: a copy into a missing
//! folder would create the parent implicitly and leave it behind on undo.

use std::path::{Path, PathBuf};

use super::{
    io, show, Intent, Outcome, PlanView, Probe, Result, Step, StepContext, StepError, Touch,
};
use crate::durable_fs;
use crate::manifest::{Kind, Manifest};

pub struct MakeDir {
    pub path: PathBuf,
}

const TRASH_NAME: &str = "made";

fn is_empty_dir(m: &Manifest) -> bool {
    m.entries.len() == 1 && m.entries[0].kind == Kind::Dir
}

impl Step for MakeDir {
    fn describe(&self, root: &Path) -> String {
        format!("create folder {}", show(root, &self.path))
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        if let Some(parent) = self.path.parent() {
            view.require(parent)?;
        }
        view.require_absent(&self.path)?;
        view.created(&self.path);
        Ok(())
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        if self.path.symlink_metadata().is_ok() {
            return Err(StepError::Refused(format!(
                "{} already exists",
                self.path.display()
            )));
        }
        Ok(Intent {
            touches: vec![Touch {
                path: self.path.clone(),
                before: Manifest::default(),
                // The mode comes from the umask: recorded in the outcome.
                after: None,
            }],
            detail: String::new(),
        })
    }

    fn apply(&self, _ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        durable_fs::create_dir_all(&self.path).map_err(io("creating", &self.path))?;
        // Made by the account running the tool: it belongs to the owner of its folder.
        if let Some(parent) = self.path.parent() {
            crate::platform::owner_from_folder(parent, &self.path)
                .map_err(io("setting the owner of", &self.path))?;
        }
        let after = Manifest::of(&self.path).map_err(io("reading", &self.path))?;
        Ok(Outcome {
            after: vec![(0, after)],
            notes: Vec::new(),
        })
    }

    /// Applied when the folder exists and is empty, whatever its mode (the outcome may not
    /// be journaled yet); anything inside it means something else wrote there.
    fn probe(
        &self,
        _ctx: &StepContext,
        _intent: &Intent,
        _outcome: Option<&Outcome>,
    ) -> Result<Probe> {
        let now = Manifest::of(&self.path).map_err(io("reading", &self.path))?;
        Ok(if !now.exists() {
            Probe::NotApplied
        } else if is_empty_dir(&now) {
            Probe::Applied
        } else {
            Probe::Inconsistent(format!(
                "{} is no longer an empty folder",
                self.path.display()
            ))
        })
    }

    // No `verify_artifacts`: the undo moves the folder into the trash and reads nothing kept
    // outside the tree.
    fn undo(&self, ctx: &StepContext, _intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        let dest = ctx.trash_path(TRASH_NAME)?;
        durable_fs::move_path(&self.path, &dest, ctx.report())
            .map_err(io("moving to the trash", &self.path))
    }
}
