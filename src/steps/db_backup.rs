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
use super::{Intent, Outcome, PlanView, Probe, Result, Step, StepContext, StepError};
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
            durable_fs::create_private_dir_all(parent).map_err(super::io("creating", parent))?;
        }
        let text = d.file.to_string_lossy();
        durable_fs::atomic_write(&pointer, text.as_bytes(), Some(0o600))
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
        let ext = if self.is_sqlite() { "sqlite" } else { "bak" };
        let file = self
            .dir()
            .join(format!("usercube-upgrade-{}.{ext}", now_ms()));
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

    /// Not done (no outcome): absent or verified bad is as good as none (take it again /
    /// nothing to undo). Done: the run recorded it written and verified, so absent or bad is
    /// a damaged backup, refused, never "not applied" (unless this rollback's own undo already
    /// restored from it and moved it into the trash).
    fn probe(&self, ctx: &StepContext, intent: &Intent, o: Option<&Outcome>) -> Result<Probe> {
        let d = Self::detail(intent)?;
        let done = o.is_some();
        if self.is_sqlite() && !d.file.exists() {
            if done && !Self::undone_into_trash(ctx) {
                return Err(damaged(&d.file, "is missing"));
            }
            return Ok(Probe::NotApplied);
        }
        let t = self.target()?;
        // Any error other than a verdict (connection lost, server busy after a crash)
        // answers nothing: refuse.
        match db::with_session(&t, |db| db.verify_backup(&d.file)) {
            Ok(db::BackupCheck::Verified) => Ok(Probe::Applied),
            Ok(db::BackupCheck::Absent) if done => Err(damaged(&d.file, "is missing")),
            Ok(db::BackupCheck::Bad(why)) if done => {
                Err(damaged(&d.file, &format!("is damaged ({why})")))
            }
            Ok(db::BackupCheck::Absent | db::BackupCheck::Bad(_)) => Ok(Probe::NotApplied),
            Err(e) => Err(refused(format!(
                "cannot tell whether the backup {} exists and verifies: {e}",
                d.file.display()
            ))),
        }
    }

    /// A done backup must verify (the probe's verdict); a step not done needs nothing.
    fn verify_artifacts(
        &self,
        ctx: &StepContext,
        intent: &Intent,
        o: Option<&Outcome>,
    ) -> Result<Vec<String>> {
        if o.is_none() {
            return Ok(Vec::new());
        }
        let mut problems = match self.probe(ctx, intent, o) {
            Ok(_) => Vec::new(),
            Err(StepError::Refused(why)) => vec![why],
            Err(e) => return Err(e),
        };
        // The undo restores into it: this account must be able to write it.
        let t = self.target()?;
        if let Err(e) = db::with_session(&t, |d| d.check_writable()) {
            problems.push(format!(
                "the database {} cannot be written, so its backup cannot be restored: {e}",
                db::redact(&self.connection)
            ));
        }
        Ok(problems)
    }

    /// A verified backup of the database as it is now, before a forced restore replaces it:
    /// SQLite into the run's kept-aside folder, SQL Server into the step's backup folder on
    /// the server (`Database::backup`: staged, checked, synced / `COPY_ONLY, CHECKSUM`).
    fn keep_present(&self, ctx: &StepContext, intent: &Intent) -> Result<Option<PathBuf>> {
        Self::detail(intent)?;
        let file = if self.is_sqlite() {
            let dir = ctx.journal.kept_aside_dir().ok_or_else(|| {
                refused("this run has no kept-aside folder: the database as it is now cannot be saved before restoring the backup")
            })?;
            durable_fs::create_dir_all(&dir).map_err(super::io("creating", &dir))?;
            dir.join(format!("database-before-rollback-{}.sqlite", now_ms()))
        } else {
            self.dir()
                .join(format!("usercube-upgrade-before-rollback-{}.bak", now_ms()))
        };
        let t = self.target()?;
        db::with_session(&t, |db| db.backup(&file)).map_err(|e| {
            refused(format!(
                "saving the database as it is now into {} before restoring the backup: {e}",
                file.display()
            ))
        })?;
        Ok(Some(file))
    }

    /// The backup file and what SQLite may leave beside it.
    fn writes_besides_touches(&self, intent: &Intent) -> Vec<PathBuf> {
        let Ok(d) = Self::detail(intent) else {
            return Vec::new();
        };
        let staged = durable_fs::staging_path(&d.file);
        let mut out: Vec<PathBuf> = db::sqlite::sidecars(&d.file).into_iter().collect();
        out.extend(db::sqlite::sidecars(&staged));
        out.push(staged);
        out.push(d.file);
        out
    }

    fn backup_fingerprint(&self, intent: &Intent) -> Result<Option<super::Fingerprint>> {
        if !self.is_sqlite() {
            return Ok(None);
        }
        let d = Self::detail(intent)?;
        let conn = format!("sqlite:{}", d.file.display());
        let fingerprint = super::db_fingerprint::take(&conn, &self.root, None);
        // Closed again: an open file cannot be moved on Windows (the undo moves the backup
        // into the trash).
        if let Ok(t) = db::target(&conn, &self.root) {
            db::forget(&t);
        }
        fingerprint.map(Some)
    }

    fn fingerprint(&self) -> Result<Option<super::Fingerprint>> {
        super::db_fingerprint::take(&self.connection, &self.root, None).map(Some)
    }

    fn undo(&self, ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        let d = Self::detail(intent)?;
        let t = self.target()?;
        db::restore(&t, &d.file).map_err(refused)?;
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
    /// SQLite: this step's undo restored the database and moved the backup into the trash
    /// (a rollback interrupted before its undo record).
    fn undone_into_trash(ctx: &StepContext) -> bool {
        ctx.trash.join("backup").is_file()
    }

    /// The backup folder the step created, once empty again (absent already: nothing to do).
    fn remove_created_dir(&self, d: &Detail) -> Result<()> {
        let dir = self.dir();
        if !d.creates_dir || dir.symlink_metadata().is_err() {
            return Ok(());
        }
        durable_fs::remove_empty_dir(&dir).map_err(super::io("removing", &dir))
    }
}

/// Milliseconds since the epoch, for backup file names.
fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A backup the run recorded written and verified, and now `what` ("is missing", ...).
fn damaged(file: &Path, what: &str) -> StepError {
    refused(format!(
        "the database backup {} {what}; the run recorded it written and verified, and the database cannot be restored without it",
        file.display()
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::StepJournal;

    /// No saved data; the kept-aside folder is `kept` (`None`: the audit's sink, none).
    struct Journal {
        kept: Option<PathBuf>,
    }

    impl StepJournal for Journal {
        fn save(&self, _payload: Vec<u8>) -> Result<()> {
            Ok(())
        }
        fn sync(&self) -> Result<()> {
            Ok(())
        }
        fn saved(&self, _f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
            Ok(())
        }
        fn kept_aside_dir(&self) -> Option<PathBuf> {
            self.kept.clone()
        }
    }

    fn with_ctx<R>(dir: &Path, kept: bool, f: impl FnOnce(&StepContext) -> R) -> R {
        let deferred = durable_fs::DeferredDirs::default();
        let journal = Journal {
            kept: kept.then(|| dir.join("root/KeptAside-test")),
        };
        f(&StepContext {
            trash: dir.join("journal/trash/run/1"),
            journal_dir: &dir.join("journal"),
            on_bytes: &|_| {},
            on_files: &|_| {},
            on_phase: &|_| {},
            journal: &journal,
            deferred: &deferred,
        })
    }

    fn rows(file: &Path) -> Vec<(i64, String)> {
        let c = rusqlite::Connection::open(file).unwrap();
        let mut s = c.prepare("SELECT Id, Name FROM T ORDER BY Id").unwrap();
        let r = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap();
        r
    }

    /// A SQLite installation with one table, and a backup step taken on it (done).
    fn backed_up(dir: &Path) -> (DatabaseBackup, Intent, Outcome, PathBuf) {
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        rusqlite::Connection::open(root.join("u.sqlite"))
            .unwrap()
            .execute_batch("CREATE TABLE T (Id INTEGER PRIMARY KEY, Name TEXT); INSERT INTO T VALUES (1, 'before the run');")
            .unwrap();
        let step = DatabaseBackup {
            connection: "sqlite:u.sqlite".into(),
            backup_dir: "DatabaseBackup".into(),
            root,
        };
        let (intent, outcome) = with_ctx(dir, true, |ctx| {
            let intent = step.intent(ctx).unwrap();
            let outcome = step.apply(ctx, &intent).unwrap();
            (intent, outcome)
        });
        let file = DatabaseBackup::detail(&intent).unwrap().file;
        (step, intent, outcome, file)
    }

    /// Done, the run recorded its backup verified: absent or bad now is "missing" or
    /// "damaged" (probe and verify_artifacts), never "not applied". Not done: absent or bad
    /// is "not applied" and nothing is needed.
    #[test]
    fn a_done_backup_missing_or_bad_is_damaged_not_unapplied() {
        let dir = tempfile::tempdir().unwrap();
        let (step, intent, outcome, file) = backed_up(dir.path());
        let good = std::fs::read(&file).unwrap();
        with_ctx(dir.path(), true, |ctx| {
            let done = Some(&outcome);
            assert_eq!(step.probe(ctx, &intent, done).unwrap(), Probe::Applied);
            assert!(step
                .verify_artifacts(ctx, &intent, done)
                .unwrap()
                .is_empty());

            let mut bad = good.clone();
            bad[..16].copy_from_slice(b"not a database!!");
            std::fs::write(&file, &bad).unwrap();
            let e = step.probe(ctx, &intent, done).unwrap_err().to_string();
            assert!(e.contains("is damaged"), "{e}");
            assert!(e.contains(&file.display().to_string()), "{e}");
            let lines = step.verify_artifacts(ctx, &intent, done).unwrap();
            assert_eq!(lines, vec![e]);
            assert_eq!(step.probe(ctx, &intent, None).unwrap(), Probe::NotApplied);
            assert!(step
                .verify_artifacts(ctx, &intent, None)
                .unwrap()
                .is_empty());

            durable_fs::remove_path(&file).unwrap();
            let e = step.probe(ctx, &intent, done).unwrap_err().to_string();
            assert!(e.contains("is missing"), "{e}");
            assert!(e.contains(&file.display().to_string()), "{e}");
            assert_eq!(step.verify_artifacts(ctx, &intent, done).unwrap(), vec![e]);
            assert_eq!(step.probe(ctx, &intent, None).unwrap(), Probe::NotApplied);
            assert!(step
                .verify_artifacts(ctx, &intent, None)
                .unwrap()
                .is_empty());
        });
    }

    /// A rollback interrupted after this step's undo restored the database and moved the
    /// backup into the trash: the step is found not applied (nothing left to undo).
    #[test]
    fn a_backup_the_undo_moved_into_the_trash_is_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (step, intent, outcome, file) = backed_up(dir.path());
        with_ctx(dir.path(), true, |ctx| {
            let trash = ctx.trash_path("backup").unwrap();
            durable_fs::move_path(&file, &trash, ctx.report()).unwrap();
            let done = Some(&outcome);
            assert_eq!(step.probe(ctx, &intent, done).unwrap(), Probe::NotApplied);
            assert!(step
                .verify_artifacts(ctx, &intent, done)
                .unwrap()
                .is_empty());
        });
    }

    /// keep_present saves the database as it is now, verified, in the kept-aside folder;
    /// the undo then restores the run's backup, and the saved copy still holds what was
    /// written after the run.
    #[test]
    fn keep_present_saves_the_database_before_the_restore() {
        let dir = tempfile::tempdir().unwrap();
        let (step, intent, outcome, _) = backed_up(dir.path());
        let db = step.root.join("u.sqlite");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("INSERT INTO T VALUES (2, 'written after the run');")
            .unwrap();
        let after_run = rows(&db);
        let (said, kept) = with_ctx(dir.path(), true, |ctx| {
            let said = step.keep_present(ctx, &intent).unwrap().unwrap();
            step.undo(ctx, &intent, Some(&outcome)).unwrap();
            (said, ctx.journal.kept_aside_dir().unwrap())
        });
        let files: Vec<PathBuf> = std::fs::read_dir(&kept)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "only the saved database: {files:?}");
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("database-before-rollback-") && name.ends_with(".sqlite"),
            "{name}"
        );
        assert_eq!(said, files[0]);
        assert_eq!(rows(&files[0]), after_run);
        assert_eq!(rows(&db), vec![(1, "before the run".to_string())]);
        let check = db::with_session(&step.target().unwrap(), |d| d.verify_backup(&files[0]));
        assert_eq!(check.unwrap(), db::BackupCheck::Verified);

        // Without a kept-aside folder (a sink that has none) it refuses, saving nothing.
        let e = with_ctx(dir.path(), false, |ctx| step.keep_present(ctx, &intent))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no kept-aside folder"), "{e}");
    }

    /// SQL Server over the TDS test server (statements on SQLite, `BACKUP` by SQLite's
    /// online backup, `RESTORE VERIFYONLY` by its integrity check): keep_present writes
    /// `usercube-upgrade-before-rollback-<ms>.bak` into the step's backup folder, verified;
    /// a done step whose backup is gone is "missing".
    #[test]
    fn keep_present_and_a_missing_backup_over_the_tds_test_server() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("server.sqlite");
        rusqlite::Connection::open(&data)
            .unwrap()
            .execute_batch("CREATE TABLE T (Id INTEGER PRIMARY KEY, Name NVARCHAR(50)); INSERT INTO T VALUES (1, 'before the run');")
            .unwrap();
        let server = tds_test_server::TestServer::start(&data, Default::default());
        let backups = dir.path().join("server-backups");
        std::fs::create_dir_all(&backups).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let step = DatabaseBackup {
            connection: server.tiberius_connection_string(),
            backup_dir: backups.clone(),
            root,
        };
        let (intent, outcome) = with_ctx(dir.path(), true, |ctx| {
            let intent = step.intent(ctx).unwrap();
            let outcome = step.apply(ctx, &intent).unwrap();
            (intent, outcome)
        });
        let t = step.target().unwrap();
        db::with_session(&t, |d| {
            d.execute("INSERT INTO T VALUES (2, N'written after the run')")
        })
        .unwrap();
        let said = with_ctx(dir.path(), true, |ctx| step.keep_present(ctx, &intent))
            .unwrap()
            .unwrap();
        let kept: Vec<PathBuf> = std::fs::read_dir(&backups)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("usercube-upgrade-before-rollback-")
            })
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].extension().is_some_and(|x| x == "bak"));
        assert_eq!(said, kept[0]);
        assert_eq!(
            rows(&kept[0]).len(),
            2,
            "the rows as they were, after the run"
        );
        let check = db::with_session(&t, |d| d.verify_backup(&kept[0])).unwrap();
        assert_eq!(check, db::BackupCheck::Verified);

        let file = DatabaseBackup::detail(&intent).unwrap().file;
        durable_fs::remove_path(&file).unwrap();
        with_ctx(dir.path(), true, |ctx| {
            let e = step
                .probe(ctx, &intent, Some(&outcome))
                .unwrap_err()
                .to_string();
            assert!(e.contains("is missing"), "{e}");
            assert_eq!(step.probe(ctx, &intent, None).unwrap(), Probe::NotApplied);
        });
    }
}
