//! Database backup before the first change. SQL Server: `BACKUP DATABASE ... TO DISK ...
//! WITH COPY_ONLY, CHECKSUM, INIT` into the backup folder (a folder the *server* can write),
//! verified with `RESTORE VERIFYONLY`; SQLite: the online backup API into a staging file,
//! integrity-checked, fsynced and renamed into place.
//!
//! Undo restores the database from the backup: rollback runs it after every later step was
//! undone, so it is what puts back a change that cannot be undone row by row (the vendor's
//! schema upgrade); after row-level undos it restores the same rows. A local backup file is
//! then moved into the journal trash (purged at finalize).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::db_delete::{backup_marker, backup_pointer, connect_check, refused};
use super::{Intent, Outcome, PlanView, Probe, Result, Step, StepContext};
use crate::db::{self, Target};
use crate::durable_fs;

pub struct DatabaseBackup {
    pub connection: String,
    /// Resolved against the root (for SQL Server: as given, a path on the server).
    pub backup_dir: PathBuf,
    pub root: PathBuf,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Detail {
    connection: String,
    /// The backup file (as the server sees it).
    file: PathBuf,
    /// The version recorded in the database, when it records one.
    version: Option<String>,
    /// SQLite: the backup folder did not exist; the step creates it owner-only (mode 0700,
    /// a protected DACL on Windows) and its undo removes it again. An existing folder is
    /// used as it is.
    #[serde(default)]
    creates_dir: bool,
}

impl DatabaseBackup {
    fn target(&self) -> Result<Target> {
        db::target(&self.connection, &self.root).map_err(refused)
    }

    fn is_sqlite(&self) -> bool {
        self.connection.starts_with("sqlite:")
    }

    fn dir(&self) -> PathBuf {
        if self.is_sqlite() {
            self.root.join(&self.backup_dir)
        } else {
            self.backup_dir.clone()
        }
    }

    /// Notes the verified backup for the run's schema-upgrade step (`backup_pointer`).
    fn note_backup(&self, ctx: &StepContext, d: &Detail) -> Result<()> {
        let pointer = backup_pointer(&ctx.trash, &self.connection);
        if let Some(parent) = pointer.parent() {
            durable_fs::create_dir_all(parent).map_err(super::io("creating", parent))?;
        }
        let text = d.file.to_string_lossy();
        durable_fs::atomic_write(&pointer, text.as_bytes(), None)
            .map_err(super::io("writing", &pointer))
    }

    fn detail(intent: &Intent) -> Result<Detail> {
        serde_json::from_str(&intent.detail)
            .map_err(|e| refused(format!("the recorded intent does not parse: {e}")))
    }
}

impl Step for DatabaseBackup {
    fn describe(&self, _root: &Path) -> String {
        format!(
            "back up the database {} into {}",
            db::redact(&self.connection),
            self.backup_dir.display()
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        if self.is_sqlite() {
            let dir = self.dir();
            if view.exists(&dir) == super::view::Exists::No {
                // Created by the step itself, owner-only.
                if let Some(parent) = dir.parent() {
                    view.require(parent)?;
                }
                view.created(&dir);
            }
        }
        connect_check(&self.connection, &self.root)?;
        view.created(&backup_marker(&self.root, &self.connection));
        Ok(())
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let t = self.target()?;
        let version = db::with_session(&t, |d| d.version()).map_err(refused)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let ext = if self.is_sqlite() { "sqlite" } else { "bak" };
        let file = self.dir().join(format!("usercube-upgrade-{stamp}.{ext}"));
        let d = Detail {
            connection: db::redact(&self.connection),
            file,
            version,
            creates_dir: self.is_sqlite() && self.dir().symlink_metadata().is_err(),
        };
        Ok(Intent {
            touches: Vec::new(),
            detail: serde_json::to_string(&d).expect("detail serializes"),
        })
    }

    fn apply(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome> {
        let d = Self::detail(intent)?;
        let t = self.target()?;
        if d.creates_dir {
            let dir = self.dir();
            durable_fs::create_private_dir(&dir).map_err(super::io("creating", &dir))?;
        }
        db::with_session(&t, |db| db.backup(&d.file)).map_err(refused)?;
        self.note_backup(ctx, &d)?;
        Ok(Outcome {
            after: Vec::new(),
            notes: vec![format!(
                "backup written and verified: {} (database version: {})",
                d.file.display(),
                d.version.as_deref().unwrap_or("not recorded")
            )],
        })
    }

    /// A SQLite backup killed mid-way leaves its staging copy and the files SQLite keeps
    /// beside it while writing (`-journal`, `-wal`, `-shm`, of the staging copy and of the
    /// backup): all removed, so the backup folder holds only what recorded steps put there.
    fn recovered_outcome(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome> {
        self.note_backup(ctx, &Self::detail(intent)?)?;
        Ok(Outcome::default())
    }

    fn settle(&self, _ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        if self.is_sqlite() {
            let d = Self::detail(intent)?;
            remove_leftovers(&d.file)?;
            if !d.file.exists() {
                self.remove_created_dir(&d)?;
            }
        }
        Ok(())
    }

    fn probe(&self, _ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<Probe> {
        let d = Self::detail(intent)?;
        if self.is_sqlite() && !d.file.exists() {
            return Ok(Probe::NotApplied);
        }
        let t = self.target()?;
        // Absent, or verified bad: as good as none (take it again / nothing to undo). Any
        // other error (connection lost, server busy after a crash) answers nothing: refuse.
        match db::with_session(&t, |db| db.verify_backup(&d.file)) {
            Ok(db::BackupCheck::Verified) => Ok(Probe::Applied),
            Ok(db::BackupCheck::Absent | db::BackupCheck::Bad(_)) => Ok(Probe::NotApplied),
            Err(e) => Err(refused(format!(
                "cannot tell whether the backup {} exists and verifies: {e}",
                d.file.display()
            ))),
        }
    }

    fn fingerprint(&self) -> Result<Option<super::Fingerprint>> {
        super::db_fingerprint::take(&self.connection, &self.root, None).map(Some)
    }

    fn undo(&self, ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        let d = Self::detail(intent)?;
        let t = self.target()?;
        db::with_session(&t, |db| db.restore(&d.file)).map_err(refused)?;
        if self.is_sqlite() {
            let dest = ctx.trash_path("backup")?;
            durable_fs::remove_path(&dest).map_err(super::io("removing", &dest))?;
            durable_fs::move_path(&d.file, &dest, ctx.report())
                .map_err(super::io("moving to the trash", &d.file))?;
            remove_leftovers(&d.file)?;
            self.remove_created_dir(&d)?;
        }
        Ok(())
    }
}

impl DatabaseBackup {
    /// The backup folder the step created, once empty again (absent already: nothing to do).
    fn remove_created_dir(&self, d: &Detail) -> Result<()> {
        let dir = self.dir();
        if !d.creates_dir || dir.symlink_metadata().is_err() {
            return Ok(());
        }
        durable_fs::remove_empty_dir(&dir).map_err(super::io("removing", &dir))
    }
}

/// The staging copy of a SQLite backup and every SQLite sidecar of it and of the backup.
fn remove_leftovers(file: &Path) -> Result<()> {
    let staged = durable_fs::staging_path(file);
    let leftovers = std::iter::once(staged.clone())
        .chain(db::sqlite::sidecars(&staged))
        .chain(db::sqlite::sidecars(file));
    for p in leftovers {
        durable_fs::remove_path(&p).map_err(super::io("removing", &p))?;
    }
    Ok(())
}
