//! Extract a zip archive into a new folder: entries go into a staging folder, which is made
//! durable and then renamed into place, so the folder appears whole or not at all.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{
    io, settle_pair, show, Intent, Outcome, PlanView, Probe, Result, Step, StepContext, StepError,
    Touch,
};
use crate::durable_fs;
use crate::manifest::Manifest;

pub struct ExtractZip {
    pub archive: PathBuf,
    pub dest: PathBuf,
}

const TRASH_NAME: &str = "extracted";

fn zip_error(archive: &Path, entry: Option<&str>, e: impl std::fmt::Display) -> StepError {
    let message = match entry {
        Some(name) => format!("zip entry '{name}': {e}"),
        None => format!("not a readable zip archive: {e}"),
    };
    StepError::Invalid {
        path: archive.to_path_buf(),
        message,
    }
}

/// Opens the archive and checks its central directory (typed error naming the file).
pub fn open_archive(archive: &Path) -> Result<zip::ZipArchive<File>> {
    let f = File::open(archive).map_err(io("opening", archive))?;
    zip::ZipArchive::new(f).map_err(|e| zip_error(archive, None, e))
}

/// Sum of the uncompressed sizes of every entry.
pub fn uncompressed_size(archive: &Path) -> Result<u64> {
    let mut z = open_archive(archive)?;
    entries_size(&mut z).map_err(|e| zip_error(archive, None, e))
}

/// Sum of the uncompressed sizes of `z`'s entries: from the central directory alone when it
/// has them all (one read of the index, not one seek and read per entry's local header).
pub fn entries_size<R: std::io::Read + std::io::Seek>(
    z: &mut zip::ZipArchive<R>,
) -> zip::result::ZipResult<u64> {
    if let Some(total) = z.decompressed_size() {
        return Ok(u64::try_from(total).unwrap_or(u64::MAX));
    }
    let mut total = 0u64;
    for i in 0..z.len() {
        total = total.saturating_add(z.by_index_raw(i)?.size());
    }
    Ok(total)
}

impl Step for ExtractZip {
    fn describe(&self, root: &Path) -> String {
        format!(
            "extract {} into {}",
            show(root, &self.archive),
            show(root, &self.dest)
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        view.require(&self.archive)?;
        if let Some(origin) = view.origin(&self.archive) {
            open_archive(&origin).map_err(|e| e.to_string())?;
        }
        view.require_absent(&self.dest)?;
        view.created(&self.dest);
        Ok(())
    }

    fn bytes_needed(&self, view: &PlanView) -> u64 {
        view.origin(&self.archive)
            .and_then(|a| uncompressed_size(&a).ok())
            .unwrap_or(0)
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let m = Manifest::of(&self.archive).map_err(io("reading", &self.archive))?;
        if self.dest.symlink_metadata().is_ok() {
            return Err(StepError::Refused(format!(
                "{} already exists",
                self.dest.display()
            )));
        }
        Ok(Intent {
            touches: vec![
                Touch {
                    path: self.archive.clone(),
                    before: m.clone(),
                    after: Some(m),
                },
                Touch {
                    path: self.dest.clone(),
                    before: Manifest::default(),
                    after: None,
                },
            ],
            detail: String::new(),
        })
    }

    fn apply(&self, ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        let staged = durable_fs::staging_path(&self.dest);
        durable_fs::remove_path(&staged).map_err(io("removing", &staged))?;
        if let Some(parent) = self.dest.parent() {
            durable_fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        fs::create_dir(&staged).map_err(io("creating", &staged))?;
        extract_into(&self.archive, &staged, ctx.on_bytes)?;
        durable_fs::sync_tree(&staged).map_err(io("syncing", &staged))?;
        durable_fs::rename(&staged, &self.dest).map_err(io("renaming into place", &staged))?;
        let after = Manifest::of(&self.dest).map_err(io("reading", &self.dest))?;
        Ok(Outcome {
            after: vec![(1, after)],
            notes: vec![],
        })
    }

    fn recovered_outcome(&self, _ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        let after = Manifest::of(&self.dest).map_err(io("reading", &self.dest))?;
        Ok(Outcome {
            after: vec![(1, after)],
            notes: vec!["outcome recorded by recovery".into()],
        })
    }

    fn settle(&self, ctx: &StepContext, intent: &Intent, outcome: Option<&Outcome>) -> Result<()> {
        let staged = durable_fs::staging_path(&self.dest);
        durable_fs::remove_path(&staged).map_err(io("removing", &staged))?;
        match intent.expected_after(1, outcome) {
            Some(expected) => settle_pair(&self.dest, &ctx.trash.join(TRASH_NAME), expected),
            None => Ok(()),
        }
    }

    /// The folder appears only through the final rename, so its presence decides; once the
    /// outcome is journaled, the folder must also still hold exactly what was extracted.
    fn probe(
        &self,
        _ctx: &StepContext,
        intent: &Intent,
        outcome: Option<&Outcome>,
    ) -> Result<Probe> {
        if self.dest.symlink_metadata().is_err() {
            return Ok(Probe::NotApplied);
        }
        let Some(expected) = intent.expected_after(1, outcome) else {
            return Ok(Probe::Applied);
        };
        let now = Manifest::of(&self.dest).map_err(io("reading", &self.dest))?;
        Ok(match expected.first_difference(&now) {
            None => Probe::Applied,
            Some(d) => Probe::Inconsistent(format!("{}: {d}", self.dest.display())),
        })
    }

    fn undo(&self, ctx: &StepContext, _intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        let dest = ctx.trash_path(TRASH_NAME)?;
        durable_fs::move_path(&self.dest, &dest, ctx.on_bytes)
            .map_err(io("moving to the trash", &self.dest))
    }
}

fn extract_into(archive: &Path, into: &Path, on_bytes: super::OnBytes) -> Result<()> {
    let mut z = open_archive(archive)?;
    let mut buf = vec![0u8; 256 * 1024];
    for i in 0..z.len() {
        let mut entry = z.by_index(i).map_err(|e| zip_error(archive, None, e))?;
        let name = entry.name().to_string();
        let rel = entry.enclosed_name().ok_or_else(|| {
            zip_error(archive, Some(&name), "path escapes the destination folder")
        })?;
        let out = into.join(rel);
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(io("creating", &out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        let mut f = File::create_new(&out).map_err(io("creating", &out))?;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(zip_error(archive, Some(&name), e)),
            };
            f.write_all(&buf[..n]).map_err(io("writing", &out))?;
            on_bytes(n as u64);
        }
        if let Some(mode) = entry.unix_mode() {
            crate::platform::set_file_mode(&f, mode).map_err(io("setting mode of", &out))?;
        }
    }
    Ok(())
}
