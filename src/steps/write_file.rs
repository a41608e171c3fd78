//! Write a file atomically (staging file, fsync, rename over). The previous file is kept in
//! the journal trash (a hard link: its very inode) and renamed back by undo.

use std::path::{Path, PathBuf};

use super::{
    artifact_problem, io, show, Intent, Outcome, PlanView, Result, Step, StepContext, StepError,
    Touch,
};
use crate::durable_fs;
use crate::manifest::{Entry, Kind, Manifest};
use crate::plan::FileContent;

pub struct WriteFile {
    pub path: PathBuf,
    /// Its bytes are needed only to apply (a rollback works from the digest alone).
    pub content: FileContent,
}

const PREVIOUS: &str = "previous";
const WRITTEN: &str = "written";

impl Step for WriteFile {
    fn describe(&self, root: &Path) -> String {
        format!(
            "write {} ({} bytes, previous content kept)",
            show(root, &self.path),
            self.content.len
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        if let Some(parent) = self.path.parent() {
            view.require(parent)?;
        }
        view.created(&self.path);
        Ok(())
    }

    fn bytes_needed(&self, _view: &PlanView) -> u64 {
        self.content.len
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let before = Manifest::of(&self.path).map_err(io("reading", &self.path))?;
        if before.entries.len() > 1 || before.entries.first().is_some_and(|e| e.kind != Kind::File)
        {
            return Err(StepError::Refused(format!(
                "{} is not a regular file",
                self.path.display()
            )));
        }
        let mode = before.entries.first().map_or(0o644, |e| e.mode);
        let after = Manifest {
            entries: vec![Entry {
                rel: String::new(),
                kind: Kind::File,
                size: self.content.len,
                mode,
                sha256: self.content.sha256,
            }],
        };
        Ok(Intent {
            touches: vec![Touch {
                path: self.path.clone(),
                before,
                after: Some(after),
            }],
            detail: String::new(),
        })
    }

    fn apply(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome> {
        let content = self.content.bytes().ok_or_else(|| {
            StepError::Refused(format!(
                "the content to write into {} was not loaded from the journal",
                self.path.display()
            ))
        })?;
        let before = &intent.touches[0].before;
        if before.exists() {
            let prev = ctx.trash_path(PREVIOUS)?;
            // A link left by an interrupted attempt points at the unchanged file: redo it.
            durable_fs::remove_path(&prev).map_err(io("removing", &prev))?;
            durable_fs::link_or_copy(&self.path, &prev).map_err(io("keeping", &self.path))?;
        }
        let mode = intent.touches[0].after.as_ref().map(|m| m.entries[0].mode);
        durable_fs::atomic_write(&self.path, content, mode).map_err(io("writing", &self.path))?;
        Ok(Outcome::default())
    }

    fn undo(&self, ctx: &StepContext, intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        let before = &intent.touches[0].before;
        if !before.exists() {
            let dest = ctx.trash_path(WRITTEN)?;
            return durable_fs::move_path(&self.path, &dest, ctx.report())
                .map_err(io("moving to the trash", &self.path));
        }
        let prev = ctx.trash.join(PREVIOUS);
        let kept = Manifest::of(&prev).map_err(io("reading", &prev))?;
        let same_content =
            kept.entries.len() == 1 && kept.entries[0].sha256 == before.entries[0].sha256;
        if !same_content {
            return Err(StepError::Refused(format!(
                "the kept previous content of {} is missing or altered; cannot restore it",
                self.path.display()
            )));
        }
        crate::platform::set_mode(&prev, before.entries[0].mode)
            .map_err(io("restoring the mode of", &prev))?;
        durable_fs::replace(&prev, &self.path).map_err(io("restoring", &self.path))
    }

    /// The kept previous content, which the undo renames back, must have the recorded size
    /// and SHA-256 (its mode the undo sets again). None is read when there was no previous
    /// file (the undo moves the written one to the trash), nor when the file still holds its
    /// previous content (never written: nothing to restore).
    fn verify_artifacts(
        &self,
        ctx: &StepContext,
        intent: &Intent,
        _outcome: Option<&Outcome>,
    ) -> Result<Vec<String>> {
        let before = &intent.touches[0].before;
        if !before.exists() {
            return Ok(Vec::new());
        }
        let prev = ctx.trash.join(PREVIOUS);
        let found = Manifest::of(&prev).map_err(io("reading", &prev))?;
        let mut expected = before.clone();
        if let ([e], [f]) = (&mut expected.entries[..], &found.entries[..]) {
            e.mode = f.mode;
        }
        let of_what = format!("the kept previous content of {}", self.path.display());
        let Some(problem) = artifact_problem(&prev, &of_what, &expected, &found) else {
            return Ok(Vec::new());
        };
        if Manifest::of(&self.path).map_err(io("reading", &self.path))? == *before {
            return Ok(Vec::new());
        }
        Ok(vec![problem])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::test_kit::{flip_one_byte, with_ctx, TestJournal};

    /// `appsettings.json` rewritten, its previous content kept in the trash.
    fn written() -> (tempfile::TempDir, WriteFile, PathBuf, Intent) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("root/Runtime/appsettings.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"old\": true}").unwrap();
        let step = WriteFile {
            path,
            content: b"{\"new\": true}".to_vec().into(),
        };
        let trash = d.path().join("journal/trash/8");
        let intent = apply(&step, &trash);
        (d, step, trash, intent)
    }

    fn apply(step: &WriteFile, trash: &Path) -> Intent {
        let journal = TestJournal::new(trash);
        with_ctx(trash, &journal, |ctx| {
            let intent = step.intent(ctx).unwrap();
            step.apply(ctx, &intent).unwrap();
            intent
        })
    }

    fn verify(step: &WriteFile, trash: &Path, intent: &Intent) -> Vec<String> {
        let journal = TestJournal::new(trash);
        with_ctx(trash, &journal, |ctx| {
            step.verify_artifacts(ctx, intent, None)
        })
        .unwrap()
    }

    #[test]
    fn an_intact_previous_content_is_no_problem() {
        let (_d, step, trash, intent) = written();
        assert_eq!(std::fs::read(&step.path).unwrap(), b"{\"new\": true}");
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
        // The undo reads it and restores it.
        let journal = TestJournal::new(&trash);
        with_ctx(&trash, &journal, |ctx| step.undo(ctx, &intent, None)).unwrap();
        assert_eq!(std::fs::read(&step.path).unwrap(), b"{\"old\": true}");
        // Undone (a rollback interrupted before its record): nothing more is needed.
        assert!(!trash.join(PREVIOUS).exists());
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
    }

    #[test]
    fn one_byte_flipped_in_the_previous_content_names_it() {
        let (_d, step, trash, intent) = written();
        flip_one_byte(&trash.join(PREVIOUS));
        let problems = verify(&step, &trash, &intent);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let prev = trash.join(PREVIOUS).display().to_string();
        assert!(
            problems[0].starts_with(&format!("{prev}: altered: '.' changed: content ")),
            "{problems:?}"
        );
        let of_what = format!("(the kept previous content of {})", step.path.display());
        assert!(problems[0].ends_with(&of_what), "{problems:?}");
    }

    #[test]
    fn a_deleted_previous_content_is_missing() {
        let (_d, step, trash, intent) = written();
        durable_fs::remove_path(&trash.join(PREVIOUS)).unwrap();
        assert_eq!(
            verify(&step, &trash, &intent),
            [format!(
                "{}: missing (the kept previous content of {})",
                trash.join(PREVIOUS).display(),
                step.path.display()
            )]
        );
    }

    /// A new file has no previous content; its undo moves it to the trash.
    #[test]
    fn a_new_file_needs_no_previous_content() {
        let d = tempfile::tempdir().unwrap();
        let step = WriteFile {
            path: d.path().join("new.json"),
            content: b"{}".to_vec().into(),
        };
        let trash = d.path().join("journal/trash/8");
        let intent = apply(&step, &trash);
        assert!(step.path.exists() && !trash.join(PREVIOUS).exists());
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
    }
}
