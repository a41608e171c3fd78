//! Every rename, atomic write, copy, removal and fsync the engine performs goes through
//! this module (clippy's `disallowed-methods` keeps `std::fs::rename` & co. out of the rest).
//!
//! Rules it implements:
//! - after creating, renaming or removing an entry, the parent folder is fsynced;
//! - a file's content is fsynced before it is renamed into place (atomic write);
//! - a copied tree is made durable with one `syncfs` of its filesystem, then its folders;
//! - moves across filesystems are copy, verify (manifest), rename into place, then delete.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::manifest::Manifest;
use crate::platform;

/// Suffix of a staging entry beside its final path; removed when found after a crash.
pub const STAGING_SUFFIX: &str = ".ucu-staging";

pub fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(STAGING_SUFFIX);
    path.with_file_name(name)
}

/// Makes the creation, rename or removal of `dir`'s entries durable (a no-op on NTFS; see
/// `platform::sync_dir`).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    platform::sync_dir(dir)
}

pub fn fsync_file(path: &Path) -> io::Result<()> {
    platform::sync_file(path)
}

/// fsync of an open file (its data and metadata).
pub fn sync_open_file(file: &File) -> io::Result<()> {
    file.sync_all()
}

/// Starts writing a file's dirty pages to disk without waiting (Linux `sync_file_range`),
/// so that a later fsync has little left to do. Durability still comes only from that
/// fsync; elsewhere this is a no-op.
pub fn start_writeback(file: &File) -> io::Result<()> {
    platform::start_writeback(file)
}

fn fsync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fsync_dir(p),
        _ => fsync_dir(Path::new(".")),
    }
}

/// Creates `dir` (and missing parents) durably; an existing folder is left as it is.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_all(parent)?;
        }
    }
    match fs::create_dir(dir) {
        Ok(()) => fsync_parent(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `dir` readable by its owner only (mode 0700; on Windows a protected DACL for the
/// owner, SYSTEM and Administrators), durably. An existing folder is left exactly as it is
/// (never re-moded: it may be `/tmp`); the caller checks it (`platform::untrusted_folder`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_all(parent)?;
        }
    }
    match platform::create_private_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        other => other?,
    }
    fsync_parent(dir)
}

/// [`create_dir_all`] for folders inside the journal: each folder it creates is owner-only
/// (as [`create_private_dir`], whatever the umask and the mode of the folder above);
/// existing folders are left as they are. Durable.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_private_dir_all(parent)?;
        }
    }
    match platform::create_private_dir(dir) {
        Ok(()) => fsync_parent(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` to read and write (not truncated), creating it owner-only when it is
/// missing (mode 0600 from its creation, whatever the umask; the owner-only DACL on
/// Windows): the journal's own files (log, lock, repairs). True when it was created (the
/// caller then fsyncs the folder).
pub fn open_private(path: &Path) -> io::Result<(File, bool)> {
    let created = path.symlink_metadata().is_err();
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    platform::create_with_mode(&mut opts, 0o600);
    let f = opts.open(path)?;
    if created {
        platform::make_private_file(path)?;
    }
    Ok((f, created))
}

/// Creates the file `path`, which must not exist, owner-only from its creation (mode 0600;
/// the owner-only DACL on Windows): a journal file written whole (staged log, reserve).
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let f = platform::create_private_file(path)?;
    // The umask may have taken the owner's bits too: set exactly.
    platform::make_private_file(path)?;
    Ok(f)
}

/// Makes every file of `dir` and of its sub-folders owner-only (folders are left as they
/// are): the files sled created in the journal's store, whose folders the journal creates
/// owner-only before sled opens them.
pub fn make_files_private(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            make_files_private(&e.path())?;
        } else if t.is_file() {
            platform::make_private_file(&e.path())?;
        }
    }
    Ok(())
}

/// Steps never overwrite: an existing target is an error.
fn ensure_absent(to: &Path) -> io::Result<()> {
    if to.symlink_metadata().is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", to.display()),
        ));
    }
    Ok(())
}

/// Renames `from` to `to` (same filesystem), refusing to replace anything, then fsyncs both
/// parent folders.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    ensure_absent(to)?;
    platform::rename(from, to)?;
    fsync_parent(to)?;
    if from.parent() != to.parent() {
        fsync_parent(from)?;
    }
    Ok(())
}

/// Folder fsyncs a run has put off: renames whose folders need not be durable until the
/// step that made them is recorded done. One per engine, lent to each step through its
/// `StepContext`, so the obligation shows in the signatures. The engine calls `barrier`
/// before it journals any step as done or undone, so an outcome never becomes durable before
/// the renames it describes, and one fsync per folder covers a whole group of renames.
#[derive(Debug, Default)]
pub struct DeferredDirs {
    dirs: Mutex<BTreeSet<PathBuf>>,
}

impl DeferredDirs {
    /// Like [`rename`], but the two folder fsyncs wait for the next `barrier`. Only for a
    /// rename that no later operation of the same step depends on.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        ensure_absent(to)?;
        platform::rename(from, to)?;
        self.defer_parents(&[from, to]);
        Ok(())
    }

    /// Like [`replace`], but the folder fsync waits for the next `barrier`.
    pub fn replace(&self, staged: &Path, to: &Path) -> io::Result<()> {
        platform::replace(staged, to)?;
        self.defer_parents(&[to]);
        Ok(())
    }

    /// Like [`link_or_copy`], but the folder fsync waits for the next `barrier` (a copy's own
    /// data is still synced at once). The caller calls `barrier` before anything that relies
    /// on the link being durable.
    pub fn link_or_copy(&self, from: &Path, to: &Path) -> io::Result<()> {
        link_or_synced_copy(from, to)?;
        self.defer_parents(&[to]);
        Ok(())
    }

    fn defer_parents(&self, paths: &[&Path]) {
        let mut pending = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        for p in paths {
            pending.insert(
                p.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            );
        }
    }

    /// Makes every deferred folder change durable.
    pub fn barrier(&self) -> io::Result<()> {
        let dirs = std::mem::take(&mut *self.dirs.lock().unwrap_or_else(|e| e.into_inner()));
        for d in dirs {
            match fsync_dir(&d) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // renamed away: its parent was synced
                other => other?,
            }
        }
        Ok(())
    }
}

/// `syncfs` of the filesystem holding `path`: recovery calls it before deciding anything
/// from what it sees, so that a state a dead process left in the page cache is durable
/// before the journal records a conclusion drawn from it.
/// On Windows: the volume, or every writable file under `path` (see `platform`).
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    platform::sync_filesystem(path)
}

/// Makes many files written without their own fsync durable at once (each path is an
/// existing file): one `syncfs` per filesystem on Linux, a flush of each on Windows.
pub fn sync_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    platform::sync_files(paths)
}

/// Replaces `to` with the staged `staged` in one atomic rename, then fsyncs the folder.
pub fn replace(staged: &Path, to: &Path) -> io::Result<()> {
    platform::replace(staged, to)?;
    fsync_parent(to)
}

/// Gives the staged file `out` the owner of the file `src` it replaces (on Windows its ACL):
/// the agent's service account must still read its files when the upgrade runs as an
/// administrator. Used by every staging writer (`atomic_write`, re-encryption, `filecrypt`).
pub fn keep_owner(src: &File, out: &File) -> io::Result<()> {
    platform::keep_owner(src, out)
}

/// Writes `bytes` to `path` atomically: staging file, fsync, rename over, fsync folder.
/// `mode` is applied to the new file (None: 0644, or the mode of the file it replaces). A
/// replaced file's owner (on Windows, its ACL) passes to the new one; a new file takes the
/// owner of its folder.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let mode = mode
        .or_else(|| path.metadata().ok().map(|m| platform::mode_of(&m)))
        .unwrap_or(0o644);
    let staged = staging_path(path);
    let _ = fs::remove_file(&staged);
    {
        let mut f =
            platform::create_with_mode(OpenOptions::new().write(true).create_new(true), mode)
                .open(&staged)?;
        match File::open(path) {
            Ok(original) => keep_owner(&original, &f)?,
            // A new file belongs to the owner of its folder, as its neighbours do.
            Err(_) => {
                if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    platform::owner_from_folder(dir, &staged)?;
                }
            }
        }
        f.write_all(bytes)?;
        platform::set_file_mode(&f, mode)?;
        f.sync_all()?;
    }
    replace(&staged, path)
}

/// Writes `bytes` to `path` (created or truncated) without syncing, for a file only its owner
/// may read (mode 0600 from its creation; the owner-only DACL on Windows): the journal's
/// saved step data and file contents. The caller makes a batch of such files durable at once
/// (`sync_files`), and fsyncs the folder, before anything refers to them durably. For
/// content-addressed files, whose readers check the hash, so a torn write is detected,
/// never trusted.
pub fn write_private_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    crate::platform::create_with_mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    crate::platform::make_private_file(path)?;
    f.write_all(bytes)
}

/// A second name for the file `from` (hard link; a durable copy where links are refused).
pub fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    link_or_synced_copy(from, to)?;
    fsync_parent(to)
}

/// A hard link `to` → `from`, or where links are refused a synced copy; never replaces an
/// existing `to`.
fn link_or_synced_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            ensure_absent(to)?;
            fs::copy(from, to)?;
            platform::copy_owner(from, to)?;
            fsync_file(to)
        }
    }
}

/// Progress callback: bytes just copied.
pub type OnBytes<'a> = &'a (dyn Fn(u64) + Sync);
/// Progress callback: files just finished.
pub type OnFiles<'a> = &'a (dyn Fn(u64) + Sync);
/// Progress callback: the phase a long operation is in now ("syncing"; "" for none).
pub type OnPhase<'a> = &'a (dyn Fn(&str) + Sync);

/// What a long copy or move reports as it goes: bytes, files and phases.
#[derive(Clone, Copy)]
pub struct Report<'a> {
    pub on_bytes: OnBytes<'a>,
    pub on_files: OnFiles<'a>,
    pub on_phase: OnPhase<'a>,
}

fn no_count(_: u64) {}
fn no_phase(_: &str) {}

impl Report<'static> {
    /// Reports nothing.
    pub const NONE: Report<'static> = Report {
        on_bytes: &no_count,
        on_files: &no_count,
        on_phase: &no_phase,
    };
}

/// Copies a file or a tree to `to` (which must not exist) through a staging name, so `to`
/// appears complete or not at all. Modes, owners (on Windows, ACLs) and symlinks are kept.
pub fn copy_path(from: &Path, to: &Path, report: Report) -> io::Result<()> {
    ensure_absent(to)?;
    let staged = staging_path(to);
    remove_path(&staged)?;
    if let Some(parent) = to.parent() {
        create_dir_all(parent)?;
    }
    copy_raw(from, &staged, report)?;
    (report.on_phase)("syncing the copy");
    sync_tree(&staged)?;
    replace(&staged, to)
}

fn copy_raw(from: &Path, to: &Path, report: Report) -> io::Result<()> {
    let meta = from.symlink_metadata()?;
    if meta.file_type().is_symlink() {
        platform::symlink(&fs::read_link(from)?, to)?;
    } else if meta.is_dir() {
        fs::create_dir(to)?;
        let mut entries: Vec<_> = fs::read_dir(from)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy_raw(&e.path(), &to.join(e.file_name()), report)?;
        }
        fs::set_permissions(to, meta.permissions())?;
        platform::copy_owner(from, to)?;
    } else {
        // copy_file_range; also copies the mode (attributes). Its count is not used: wine's
        // CopyFileExW never calls the progress routine std reads it from, so it says 0; the
        // source's size, already read above, is reported instead.
        fs::copy(from, to)?;
        // The owner (on Windows, the ACL) too: the service account must still read it.
        platform::copy_owner(from, to)?;
        (report.on_bytes)(meta.len());
        (report.on_files)(1);
    }
    Ok(())
}

/// Makes a freshly written tree durable: one `syncfs` for every file's data on that
/// filesystem (far cheaper than an fsync per file), then an fsync of every folder.
pub fn sync_tree(path: &Path) -> io::Result<()> {
    sync_filesystem(path)?;
    if path.symlink_metadata()?.is_dir() {
        for e in walkdir::WalkDir::new(path) {
            let e = e.map_err(io::Error::other)?;
            if e.file_type().is_dir() {
                fsync_dir(e.path())?;
            }
        }
    }
    Ok(())
}

/// Moves `from` to `to`: a rename on one filesystem; across filesystems, copy to a staging
/// name, verify the copy's manifest against the source's, rename into place, then remove
/// the source. A destination that exists is never replaced and never makes the source go:
/// refused (`AlreadyExists`), unless the source is gone (the move already happened). A move
/// interrupted after its commit point (both sides exist) is finished by the caller with the
/// manifest recorded in its intent (`steps::settle_pair`), never here.
pub fn move_path(from: &Path, to: &Path, report: Report) -> io::Result<()> {
    if to.symlink_metadata().is_ok() {
        if from.symlink_metadata().is_err() {
            return Ok(());
        }
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} already exists: not moving {} onto it (nothing was removed)",
                to.display(),
                from.display()
            ),
        ));
    }
    if let Some(parent) = to.parent() {
        create_dir_all(parent)?;
    }
    match rename(from, to) {
        Err(e) if platform::is_cross_device(&e) => {}
        other => return other,
    }
    let staged = staging_path(to);
    remove_path(&staged)?;
    copy_raw(from, &staged, report)?;
    (report.on_phase)("syncing the copy");
    sync_tree(&staged)?;
    (report.on_phase)("verifying the copy");
    let want = Manifest::of(from)?;
    let got = Manifest::of(&staged)?;
    if let Some(diff) = want.first_difference(&got) {
        remove_path(&staged)?;
        return Err(io::Error::other(format!(
            "copy of {} to another filesystem does not match its source: {diff}",
            from.display()
        )));
    }
    replace(&staged, to)?;
    (report.on_phase)("removing the source");
    remove_path(from)
}

/// Whether `a` and `b` (existing paths, or their nearest existing ancestors) are on one
/// filesystem.
pub fn same_filesystem(a: &Path, b: &Path) -> bool {
    fn dev(p: &Path) -> Option<u64> {
        p.ancestors()
            .find(|a| a.symlink_metadata().is_ok())
            .and_then(|a| platform::volume_of(a).ok())
    }
    dev(a).is_some() && dev(a) == dev(b)
}

/// Removes a file or tree, then fsyncs the parent. Missing paths are fine. Used only for
/// what the engine itself owns: staging leftovers and the trash at finalize.
pub fn remove_path(path: &Path) -> io::Result<()> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        fs::remove_dir_all(path)?;
    } else {
        fs::remove_file(path)?;
    }
    fsync_parent(path)
}

/// Removes `dir` only if it is empty, then fsyncs the parent.
pub fn remove_empty_dir(dir: &Path) -> io::Result<()> {
    fs::remove_dir(dir)?;
    fsync_parent(dir)
}

/// Whether this process can create (and so rename into, replace in, remove from) entries
/// of the folder `dir`: a real probe, true also for an administrator or root whom mode bits
/// do not bind (a read-only mount, an immutable folder, an ACL, a Windows DACL). It creates
/// a file that leaves nothing behind even if the process is killed (an unnamed file on
/// Linux, delete-on-close on Windows); where the filesystem makes no unnamed files, an empty
/// named file removed at once. The folder's content stays as it was (its modification time
/// may change).
pub fn probe_writable(dir: &Path) -> io::Result<()> {
    if platform::probe_dir_unnamed(dir)? {
        return Ok(());
    }
    for n in 0..100u32 {
        let probe = dir.join(format!(
            ".usercube-upgrade-probe-{}-{n}",
            std::process::id()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(f) => {
                drop(f);
                return fs::remove_file(&probe);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free probe file name",
    ))
}

/// Free bytes available to this user on the filesystem holding `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    platform::free_space(existing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a copy or move reported: bytes, files, phases in order.
    #[derive(Default)]
    struct Reported {
        bytes: std::sync::atomic::AtomicU64,
        files: std::sync::atomic::AtomicU64,
        phases: std::sync::Mutex<Vec<String>>,
    }

    impl Reported {
        fn with<R>(&self, f: impl FnOnce(Report) -> R) -> R {
            use std::sync::atomic::Ordering::Relaxed;
            let on_bytes = |n| {
                self.bytes.fetch_add(n, Relaxed);
            };
            let on_files = |n| {
                self.files.fetch_add(n, Relaxed);
            };
            let on_phase = |p: &str| self.phases.lock().unwrap().push(p.to_string());
            f(Report {
                on_bytes: &on_bytes,
                on_files: &on_files,
                on_phase: &on_phase,
            })
        }

        fn counts(&self) -> (u64, u64) {
            use std::sync::atomic::Ordering::Relaxed;
            (self.bytes.load(Relaxed), self.files.load(Relaxed))
        }
    }

    #[test]
    fn deferred_link_and_replace_keep_the_original_and_swap_atomically() {
        let d = tempfile::tempdir().unwrap();
        let (f, kept) = (d.path().join("f"), d.path().join("trash-f"));
        fs::write(&f, b"original").unwrap();
        fs::write(staging_path(&f), b"new").unwrap();
        let deferred = DeferredDirs::default();
        deferred.link_or_copy(&f, &kept).unwrap();
        deferred.replace(&staging_path(&f), &f).unwrap();
        deferred.barrier().unwrap();
        assert_eq!(fs::read(&kept).unwrap(), b"original");
        assert_eq!(fs::read(&f).unwrap(), b"new");
        assert!(!staging_path(&f).exists());
        // A link onto an existing name fails with nothing changed.
        fs::write(staging_path(&f), b"newer").unwrap();
        assert!(deferred.link_or_copy(&f, &kept).is_err());
        assert_eq!(fs::read(&kept).unwrap(), b"original");
    }

    #[test]
    fn sync_files_needs_every_path_to_exist() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        fs::create_dir(&a).unwrap();
        let f = a.join("f");
        fs::write(&f, "x").unwrap();
        sync_files([f.as_path(), a.as_path(), f.as_path()]).unwrap();
        let missing = d.path().join("missing");
        let e = sync_files([f.as_path(), missing.as_path()]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn rename_refuses_to_replace() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a"), "a").unwrap();
        fs::write(d.path().join("b"), "b").unwrap();
        let e = rename(&d.path().join("a"), &d.path().join("b")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(d.path().join("b")).unwrap(), "b");
    }

    #[test]
    fn atomic_write_keeps_mode_and_leaves_no_staging() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "old").unwrap();
        platform::set_mode(&p, 0o600).unwrap();
        let before = platform::mode_of(&p.metadata().unwrap());
        atomic_write(&p, b"new", None).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(platform::mode_of(&p.metadata().unwrap()), before);
        assert!(!staging_path(&p).exists());
    }

    #[test]
    fn copy_tree_is_identical_and_staging_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/x"), vec![7u8; 100_000]).unwrap();
        fs::write(src.join("y"), "y").unwrap();
        platform::set_mode(&src.join("y"), 0o755).unwrap();
        let reported = Reported::default();
        reported
            .with(|r| copy_path(&src, &d.path().join("dst"), r))
            .unwrap();
        assert_eq!(reported.counts(), (100_001, 2), "bytes and files reported");
        assert_eq!(*reported.phases.lock().unwrap(), ["syncing the copy"]);
        let a = Manifest::of(&src).unwrap();
        let b = Manifest::of(&d.path().join("dst")).unwrap();
        assert_eq!(a.first_difference(&b), None);
        assert_eq!(a.entries.len(), 4);
        assert!(!staging_path(&d.path().join("dst")).exists());
    }

    /// Not under wine, whose CreateSymbolicLinkW makes no link (scripts/windows.sh).
    #[test]
    fn copy_tree_keeps_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("y"), "y").unwrap();
        platform::symlink(Path::new("y"), &src.join("link")).unwrap();
        copy_path(&src, &d.path().join("dst"), Report::NONE).unwrap();
        let copied = d.path().join("dst/link");
        assert!(copied.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(fs::read_link(&copied).unwrap(), Path::new("y"));
        let (a, b) = (
            Manifest::of(&src).unwrap(),
            Manifest::of(&d.path().join("dst")).unwrap(),
        );
        assert_eq!(a.first_difference(&b), None);
    }

    #[test]
    fn cross_filesystem_move_via_dev_shm() {
        let shm = Path::new("/dev/shm");
        let local = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
        if !shm.is_dir() || same_filesystem(shm, local.path()) {
            eprintln!("no second filesystem here: skipping the copy path, rename path tested");
        }
        let other = tempfile::tempdir_in(if shm.is_dir() { shm } else { local.path() }).unwrap();
        let src = local.path().join("tree");
        fs::create_dir_all(src.join("a")).unwrap();
        fs::write(src.join("a/f"), "content").unwrap();
        let before = Manifest::of(&src).unwrap();
        let dst = other.path().join("moved");
        let reported = Reported::default();
        reported.with(|r| move_path(&src, &dst, r)).unwrap();
        if !same_filesystem(local.path(), other.path()) {
            assert_eq!(reported.counts(), (7, 1), "bytes and files of the copy");
            assert_eq!(
                *reported.phases.lock().unwrap(),
                [
                    "syncing the copy",
                    "verifying the copy",
                    "removing the source"
                ]
            );
        }
        assert!(!src.exists());
        assert_eq!(before.first_difference(&Manifest::of(&dst).unwrap()), None);
        // The source exists again (recreated, or a move cut after its commit point): moving
        // again refuses and removes nothing (settle_pair decides with the recorded manifest).
        fs::create_dir_all(src.join("a")).unwrap();
        let e = move_path(&src, &dst, Report::NONE).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(src.exists());
        assert_eq!(before.first_difference(&Manifest::of(&dst).unwrap()), None);
    }

    #[test]
    fn a_move_onto_an_existing_destination_never_removes_the_source() {
        let d = tempfile::tempdir().unwrap();
        let (from, to) = (d.path().join("from"), d.path().join("to"));
        fs::create_dir_all(from.join("x")).unwrap();
        fs::write(from.join("x/only-copy"), "the only copy").unwrap();
        fs::create_dir_all(&to).unwrap();
        let (a, b) = (Manifest::of(&from).unwrap(), Manifest::of(&to).unwrap());
        assert!(move_path(&from, &to, Report::NONE).is_err());
        assert_eq!(Manifest::of(&from).unwrap(), a);
        assert_eq!(Manifest::of(&to).unwrap(), b);
        // Already moved (the source is gone): nothing to do.
        fs::remove_dir_all(&from).unwrap();
        move_path(&from, &to, Report::NONE).unwrap();
    }
}
