//! For the steps' unit tests: a journal in memory whose `keep_aside` really moves the path
//! into a kept-aside folder (as the engine's does) and records each call, and a context
//! around it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use super::{Result, StepContext, StepError, StepJournal};
use crate::durable_fs;

pub struct TestJournal {
    root: PathBuf,
    pub aside: PathBuf,
    /// Every path `keep_aside` was called with, in order.
    pub kept: RefCell<Vec<PathBuf>>,
    saved: RefCell<Vec<Vec<u8>>>,
}

impl TestJournal {
    /// Keeps aside into `<root>/KeptAside-test`, under each path's name relative to `root`.
    pub fn new(root: &Path) -> TestJournal {
        TestJournal {
            root: root.to_path_buf(),
            aside: root.join("KeptAside-test"),
            kept: RefCell::new(Vec::new()),
            saved: RefCell::new(Vec::new()),
        }
    }
}

impl StepJournal for TestJournal {
    fn save(&self, payload: Vec<u8>) -> Result<()> {
        self.saved.borrow_mut().push(payload);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn saved(&self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.saved.borrow().iter().try_for_each(|p| f(p))
    }

    fn keep_aside(&self, path: &Path) -> Result<PathBuf> {
        self.kept.borrow_mut().push(path.to_path_buf());
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| StepError::Refused(format!("{} is outside the root", path.display())))?;
        let dest = self.aside.join(rel);
        let parent = dest.parent().expect("under the kept-aside folder");
        durable_fs::create_dir_all(parent).map_err(super::io("creating", parent))?;
        durable_fs::move_path(path, &dest, durable_fs::Report::NONE)
            .map_err(super::io("keeping aside", path))?;
        Ok(dest)
    }

    fn kept_aside_dir(&self) -> Option<PathBuf> {
        Some(self.aside.clone())
    }
}

/// Calls `f` with a context whose trash is `trash` and whose journal is `journal`.
pub fn with_ctx<R>(trash: &Path, journal: &TestJournal, f: impl FnOnce(&StepContext) -> R) -> R {
    let deferred = durable_fs::DeferredDirs::default();
    let journal_dir = trash.parent().expect("the trash is in a folder");
    f(&StepContext {
        trash: trash.to_path_buf(),
        journal_dir,
        on_bytes: &|_| {},
        on_files: &|_| {},
        on_phase: &|_| {},
        journal,
        deferred: &deferred,
    })
}

/// Flips the first byte of the first regular file under `path` (itself, when a file); returns
/// that file.
pub fn flip_one_byte(path: &Path) -> PathBuf {
    let file = walkdir::WalkDir::new(path)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .find(|e| e.file_type().is_file())
        .expect("a file to damage")
        .into_path();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    file
}
