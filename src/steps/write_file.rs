//! Write a file atomically (staging file, fsync, rename over). The previous file is kept in
//! the journal trash (a hard link: its very inode) and renamed back by undo.

use std::path::{Path, PathBuf};

use super::{io, show, Intent, Outcome, PlanView, Result, Step, StepContext, StepError, Touch};
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
}
