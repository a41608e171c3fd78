//! "Delete" a tree by moving it into the journal's trash (same filesystem: one rename;
//! otherwise copy, verify, delete). The trash is purged only by `finalize`.

use std::path::{Path, PathBuf};

use super::{
    artifact_problem, io, settle_pair, show, Intent, Outcome, PlanView, Result, Step, StepContext,
    StepError, Touch, Work,
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

    /// The trash copy, which the undo moves back, must hold exactly what was deleted. A step
    /// that never acted (no trash copy, the tree still there) has nothing to check.
    fn verify_artifacts(
        &self,
        ctx: &StepContext,
        intent: &Intent,
        _outcome: Option<&Outcome>,
    ) -> Result<Vec<String>> {
        let kept = ctx.trash.join(TRASH_NAME);
        let in_place = self.path.symlink_metadata().is_ok();
        if in_place && kept.symlink_metadata().is_err() {
            return Ok(Vec::new());
        }
        let before = &intent.touches[0].before;
        let found = Manifest::of(&kept).map_err(io("reading", &kept))?;
        let of_what = format!("the trash copy of {}", self.path.display());
        let Some(problem) = artifact_problem(&kept, &of_what, before, &found) else {
            return Ok(Vec::new());
        };
        // Both there and the tree intact: settle keeps the tree, the undo reads no copy.
        if in_place && Manifest::of(&self.path).map_err(io("reading", &self.path))? == *before {
            return Ok(Vec::new());
        }
        Ok(vec![problem])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::test_kit::{flip_one_byte, with_ctx, TestJournal};

    /// A deleted tree, and the trash its copy went to.
    fn deleted() -> (tempfile::TempDir, DeleteTree, PathBuf, Intent) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("root/Temp/Collect");
        std::fs::create_dir_all(path.join("sub")).unwrap();
        std::fs::write(path.join("a.csv"), "one,two").unwrap();
        std::fs::write(path.join("sub/b.csv"), "three").unwrap();
        let step = DeleteTree { path };
        let trash = d.path().join("journal/trash/5");
        let journal = TestJournal::new(&d.path().join("root"));
        let intent = with_ctx(&trash, &journal, |ctx| {
            let intent = step.intent(ctx).unwrap();
            step.apply(ctx, &intent).unwrap();
            intent
        });
        (d, step, trash, intent)
    }

    fn verify(step: &DeleteTree, trash: &Path, intent: &Intent) -> Vec<String> {
        let journal = TestJournal::new(trash);
        with_ctx(trash, &journal, |ctx| {
            step.verify_artifacts(ctx, intent, None)
        })
        .unwrap()
    }

    #[test]
    fn an_intact_trash_copy_is_no_problem() {
        let (_d, step, trash, intent) = deleted();
        assert!(!step.path.exists());
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
        // Undone (a rollback interrupted before its record): nothing more is needed.
        let journal = TestJournal::new(&trash);
        with_ctx(&trash, &journal, |ctx| step.undo(ctx, &intent, None)).unwrap();
        assert_eq!(Manifest::of(&step.path).unwrap(), intent.touches[0].before);
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
    }

    #[test]
    fn one_byte_flipped_in_the_trash_copy_names_it() {
        let (_d, step, trash, intent) = deleted();
        let damaged = flip_one_byte(&trash.join(TRASH_NAME));
        assert!(damaged.ends_with("a.csv"));
        let problems = verify(&step, &trash, &intent);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let kept = trash.join(TRASH_NAME).display().to_string();
        assert!(
            problems[0].starts_with(&format!("{kept}: altered: 'a.csv' changed: content ")),
            "{problems:?}"
        );
        let of_what = format!("(the trash copy of {})", step.path.display());
        assert!(problems[0].ends_with(&of_what), "{problems:?}");
    }

    #[test]
    fn a_deleted_trash_copy_is_missing() {
        let (_d, step, trash, intent) = deleted();
        durable_fs::remove_path(&trash.join(TRASH_NAME)).unwrap();
        let problems = verify(&step, &trash, &intent);
        assert_eq!(
            problems,
            [format!(
                "{}: missing (the trash copy of {})",
                trash.join(TRASH_NAME).display(),
                step.path.display()
            )]
        );
    }

    /// Not applied: the tree is where it was and there is no trash copy to read.
    #[test]
    fn a_step_that_never_acted_needs_no_trash_copy() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("root/Temp/Collect");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("a.csv"), "one").unwrap();
        let step = DeleteTree { path };
        let trash = d.path().join("journal/trash/5");
        let journal = TestJournal::new(d.path());
        let intent = with_ctx(&trash, &journal, |ctx| step.intent(ctx).unwrap());
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
    }
}
