//! Extract a zip archive into a new folder: entries go into a staging folder, which is made
//! durable and then renamed into place, so the folder appears whole or not at all.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{
    io, settle_pair, show, Intent, Outcome, PlanView, Probe, Result, Step, StepContext, StepError,
    Touch, Work,
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

/// Mode bits of a symbolic link entry (`S_IFLNK` in the file-type bits).
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
/// setuid, setgid and sticky: never given to an extracted file.
const SPECIAL_BITS: u32 = 0o7000;

/// Whether an entry's Unix mode says it is a symbolic link.
fn is_symlink_mode(mode: Option<u32>) -> bool {
    mode.is_some_and(|m| m & S_IFMT == S_IFLNK)
}

/// Checks every entry from the central directory alone (nothing is decompressed): a
/// symbolic link entry is refused (an extraction would place a link the upgrade then writes
/// through); a path leaving the destination is refused. Returns a note for each entry whose
/// setuid, setgid or sticky bits extraction strips.
pub fn check_entries<R: std::io::Read + std::io::Seek>(
    z: &mut zip::ZipArchive<R>,
) -> std::result::Result<Vec<String>, String> {
    let mut notes = Vec::new();
    for i in 0..z.len() {
        let e = z.by_index_raw(i).map_err(|e| e.to_string())?;
        let name = e.name().to_string();
        if e.enclosed_name().is_none() {
            return Err(format!(
                "zip entry '{name}': path escapes the destination folder"
            ));
        }
        if is_symlink_mode(e.unix_mode()) {
            return Err(format!(
                "zip entry '{name}' is a symbolic link: refused (a runtime zip holds files and folders only)"
            ));
        }
        if let Some(m) = e.unix_mode().filter(|m| m & SPECIAL_BITS != 0) {
            notes.push(format!(
                "zip entry '{name}': setuid/setgid/sticky bits stripped (mode {:o} extracted as {:o})",
                m & 0o7777,
                m & 0o777
            ));
        }
    }
    Ok(notes)
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
            let mut z = open_archive(&origin).map_err(|e| e.to_string())?;
            check_entries(&mut z).map_err(|e| format!("{}: {e}", origin.display()))?;
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

    fn work(&self, view: &PlanView) -> Work {
        let Some(mut z) = view
            .origin(&self.archive)
            .and_then(|a| open_archive(&a).ok())
        else {
            return Work::default();
        };
        // Names from the central directory alone; a folder's ends with '/'.
        let files = z.file_names().filter(|n| !n.ends_with('/')).count() as u64;
        Work {
            bytes: entries_size(&mut z).unwrap_or(0),
            files,
        }
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
        let notes = extract_into(&self.archive, &staged, ctx.report())?;
        // Extracted as the account running the tool: the tree takes the owner of the folder
        // it is extracted into, as the files it replaces had (the service account must
        // still read them when the upgrade runs as root).
        if let Some(parent) = self.dest.parent() {
            (ctx.on_phase)("setting owners");
            owner_from(parent, &staged)?;
        }
        (ctx.on_phase)("syncing the extracted files");
        durable_fs::sync_tree(&staged).map_err(io("syncing", &staged))?;
        durable_fs::rename(&staged, &self.dest).map_err(io("renaming into place", &staged))?;
        (ctx.on_phase)("hashing the extracted files");
        let after = Manifest::of(&self.dest).map_err(io("reading", &self.dest))?;
        Ok(Outcome {
            after: vec![(1, after)],
            notes,
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
            Some(expected) => settle_pair(
                ctx.journal,
                &self.dest,
                &ctx.trash.join(TRASH_NAME),
                expected,
            ),
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

    // No `verify_artifacts`: the undo moves the extracted folder into the trash and reads
    // nothing kept outside the tree.
    fn undo(&self, ctx: &StepContext, _intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        if self.dest.symlink_metadata().is_err() {
            return Ok(()); // removed since the run (a forced undo): nothing to take back
        }
        let dest = ctx.trash_path(TRASH_NAME)?;
        durable_fs::move_path(&self.dest, &dest, ctx.report())
            .map_err(io("moving to the trash", &self.dest))
    }
}

/// Gives every entry of the tree `tree` the owner of the folder `parent` (on Windows, where
/// new files inherit their folder's ACL, nothing to do).
fn owner_from(parent: &Path, tree: &Path) -> Result<()> {
    for e in walkdir::WalkDir::new(tree) {
        let e = e.map_err(|e| {
            let p = e.path().unwrap_or(tree).to_path_buf();
            super::io("reading", &p)(io::Error::other(e.to_string()))
        })?;
        crate::platform::owner_from_folder(parent, e.path())
            .map_err(io("setting the owner of", e.path()))?;
    }
    Ok(())
}

/// Extracts every entry into `into`; returns a note per entry whose special mode bits were
/// stripped. Refuses (the step fails and the run rolls back) a symbolic link entry and an
/// entry that decompresses to more bytes than it declares: the declared sizes are what the
/// free-space preflight counted, so extraction holds the archive to them.
fn extract_into(archive: &Path, into: &Path, report: durable_fs::Report) -> Result<Vec<String>> {
    let mut z = open_archive(archive)?;
    let notes = check_entries(&mut z).map_err(|e| zip_error(archive, None, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    for i in 0..z.len() {
        let entry = z.by_index(i).map_err(|e| zip_error(archive, None, e))?;
        let name = entry.name().to_string();
        let rel = entry.enclosed_name().ok_or_else(|| {
            zip_error(archive, Some(&name), "path escapes the destination folder")
        })?;
        let out = into.join(rel);
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(io("creating", &out))?;
            continue;
        }
        if is_symlink_mode(entry.unix_mode()) {
            return Err(zip_error(archive, Some(&name), "a symbolic link: refused"));
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        let declared = entry.size();
        let mode = entry.unix_mode();
        let mut f = File::create_new(&out).map_err(io("creating", &out))?;
        // One byte past the declared size is enough to know the entry lies.
        let mut entry = entry.take(declared.saturating_add(1));
        let mut written = 0u64;
        let read_error = |e| zip_error(archive, Some(&name), e);
        crate::stream::for_each_piece(&mut entry, &mut buf, read_error, |piece| {
            written += piece.len() as u64;
            if written > declared {
                return Err(zip_error(
                    archive,
                    Some(&name),
                    format!(
                        "decompresses to more than its declared {declared} bytes: extraction stopped (a zip bomb or a damaged archive)"
                    ),
                ));
            }
            f.write_all(piece).map_err(io("writing", &out))?;
            (report.on_bytes)(piece.len() as u64);
            Ok(())
        })?;
        if let Some(mode) = mode {
            crate::platform::set_file_mode(&f, mode & !SPECIAL_BITS & 0o7777)
                .map_err(io("setting mode of", &out))?;
        }
        (report.on_files)(1);
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of one deflated entry `name` holding `content`.
    fn one_entry(path: &Path, name: &str, content: &[u8]) {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        z.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(content).unwrap();
        z.finish().unwrap();
    }

    /// Sets the uncompressed size `name` declares, in its local and central headers.
    fn declare_size(path: &Path, name: &str, size: u32) {
        let mut b = fs::read(path).unwrap();
        let header = |sig: &[u8], name_at: usize| {
            (0..b.len())
                .find(|&o| b[o..].starts_with(sig) && b[o + name_at..].starts_with(name.as_bytes()))
                .unwrap()
        };
        let (local, central) = (header(b"PK\x03\x04", 30), header(b"PK\x01\x02", 46));
        b[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
        b[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
        fs::write(path, b).unwrap();
    }

    #[test]
    fn an_entry_that_decompresses_past_its_declared_size_stops_extraction() {
        let d = tempfile::tempdir().unwrap();
        let zip = d.path().join("bomb.zip");
        one_entry(&zip, "bomb.bin", &vec![0u8; 4 << 20]);
        declare_size(&zip, "bomb.bin", 4096);
        // The declared sizes are all the preflight sees.
        assert_eq!(uncompressed_size(&zip).unwrap(), 4096);
        let into = d.path().join("out");
        fs::create_dir(&into).unwrap();
        let e = extract_into(&zip, &into, durable_fs::Report::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bomb.zip"), "{e}");
        assert!(
            e.contains("zip entry 'bomb.bin': decompresses to more than its declared 4096 bytes"),
            "{e}"
        );
        // Stopped at once: no more than the declared size (plus one read) was written.
        let written = fs::metadata(into.join("bomb.bin")).unwrap().len();
        assert!(written <= 4096 + 256 * 1024, "{written} bytes written");
    }

    #[test]
    fn an_entry_of_its_declared_size_is_extracted_whole() {
        let d = tempfile::tempdir().unwrap();
        let zip = d.path().join("ok.zip");
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
        one_entry(&zip, "dir/ok.bin", &content);
        let into = d.path().join("out");
        fs::create_dir(&into).unwrap();
        assert_eq!(
            extract_into(&zip, &into, durable_fs::Report::NONE).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(fs::read(into.join("dir/ok.bin")).unwrap(), content);
    }

    #[test]
    fn a_symlink_entry_is_refused_before_anything_is_extracted() {
        let d = tempfile::tempdir().unwrap();
        let zip = d.path().join("link.zip");
        let mut z = zip::ZipWriter::new(File::create(&zip).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("a.txt", opts).unwrap();
        z.write_all(b"a").unwrap();
        z.add_symlink("b.txt", "/etc/passwd", opts).unwrap();
        z.finish().unwrap();
        let e = check_entries(&mut open_archive(&zip).unwrap()).unwrap_err();
        assert!(e.contains("zip entry 'b.txt' is a symbolic link"), "{e}");
        let into = d.path().join("out");
        fs::create_dir(&into).unwrap();
        let e = extract_into(&zip, &into, durable_fs::Report::NONE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("link.zip") && e.contains("'b.txt'"), "{e}");
        assert_eq!(fs::read_dir(&into).unwrap().count(), 0, "nothing extracted");
    }
}
