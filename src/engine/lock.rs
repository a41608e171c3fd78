//! One upgrade at a time per root: an exclusive OS file lock on `<journal>/lock`, which the
//! kernel releases when the holder dies (no stale locks), and, when the journal is elsewhere
//! (`--journal`), on `<root>/.usercube-upgrade/lock` too, the lock of the root's default
//! journal folder (`engine::Locked`): two runs on one root are refused whatever journal
//! each names. The holder writes its pid into the file so a refused second process can name
//! it. The lock file is owner-only.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::Error;

/// The lock file's name in a journal folder (and in the root's default journal folder, the
/// root's own lock when a run's journal is elsewhere).
pub const LOCK_FILE: &str = "lock";

pub struct RootLock {
    _file: File,
}

impl RootLock {
    /// Refuses a journal folder another account could have planted or can write (its plans
    /// name paths this run would act on), before anything is read or written in it.
    pub fn acquire(journal_dir: &Path) -> Result<RootLock, Error> {
        check_journal_folder(journal_dir)?;
        let path = journal_dir.join(LOCK_FILE);
        let io = |source| Error::Io {
            what: "opening the lock file",
            path: path.clone(),
            source,
        };
        let (mut file, _) = crate::durable_fs::open_private(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if pid.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {pid}")
                };
                return Err(Error::Refused(format!(
                    "{holder} is already working on this installation (lock {}); wait for it to finish",
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(RootLock { _file: file })
    }
}

/// Refused (exit 2), naming the folder and what is wrong with it, unless the journal folder is
/// a real folder owned by the account running the tool (or root; on Windows the
/// Administrators or SYSTEM) that no other account can write.
pub fn check_journal_folder(dir: &Path) -> Result<(), Error> {
    match crate::platform::untrusted_folder(dir) {
        Ok(None) => Ok(()),
        Ok(Some(why)) => Err(Error::Refused(format!(
            "journal folder {}: {why}; refusing to use it (nothing was changed)",
            dir.display()
        ))),
        Err(source) => Err(Error::Io {
            what: "checking the journal folder",
            path: dir.to_path_buf(),
            source,
        }),
    }
}
