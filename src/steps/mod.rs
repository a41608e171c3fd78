//! Step kinds: one module each, all behind the [`Step`] trait.
//!
//! The engine drives every step the same way:
//! `check` (preflight, on a [`PlanView`]) -> `intent` (manifests of what will be touched;
//! journaled and durable) -> `apply` -> outcome journaled. After a crash: `settle` (finish or
//! discard an interrupted internal operation), then `probe` (applied or not, decided by
//! comparing manifests, never by guessing). Rollback: `settle`, `probe`, and `undo` when
//! applied, after checking that what the step produced is unchanged (`--force` skips that).

mod copy;
pub mod db_backup;
pub mod db_delete;
pub mod db_fingerprint;
pub mod db_version;
mod delete_tree;
pub(crate) mod extract_zip;
mod make_dir;
mod move_tree;
pub mod reencrypt;
mod rename;
pub mod service;
mod view;
mod write_file;

#[cfg(test)]
mod test_kit;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crypto::CertPassword;
use crate::durable_fs;
use crate::manifest::Manifest;
use crate::plan::{ServiceAction, StepSpec};
pub use db_delete::ChunkDigest;
pub use service::CommandRun;
pub use view::{Exists, PlanView};

/// What a step will touch: for each path, its state before and the state expected after.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Intent {
    pub touches: Vec<Touch>,
    /// Step-specific facts (JSON text) for steps whose effects are not files, e.g. a
    /// table name and its row count; shown in the audit.
    pub detail: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Touch {
    pub path: PathBuf,
    pub before: Manifest,
    /// None: known only once the step has run (recorded in its [`Outcome`]).
    pub after: Option<Manifest>,
}

/// What a step reports when done: the `after` manifests that were not known in advance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Outcome {
    pub after: Vec<(usize, Manifest)>,
    pub notes: Vec<String>,
}

impl Intent {
    /// The expected final state of touch `i`, from the intent or else the outcome.
    pub fn expected_after<'a>(
        &'a self,
        i: usize,
        outcome: Option<&'a Outcome>,
    ) -> Option<&'a Manifest> {
        self.touches[i]
            .after
            .as_ref()
            .or_else(|| outcome.and_then(|o| o.after.iter().find(|(j, _)| *j == i).map(|(_, m)| m)))
    }
}

/// What a step left outside the installation tree (a database), in named parts, taken right
/// after it acted: a rollback compares it with the present before undoing anything there, and
/// names each part that changed (see `db_fingerprint`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// What was fingerprinted: the connection string, redacted.
    pub of: String,
    /// (part, value), for example ("table UJ_JobSteps", "10 rows, sha256 ...").
    pub parts: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    NotApplied,
    Applied,
    /// Part applied in a state the step itself can both continue (`apply` skips what is
    /// done) and undo (`undo` reverts what is done); the text says how far it got. Returned
    /// by steps made of independent, individually recorded parts (re-encryption), and by a
    /// service command interrupted before its end was recorded (running it, or its opposite,
    /// again is harmless by contract).
    Partial(String),
    /// Neither the before nor the after state: someone or something else changed the tree.
    Inconsistent(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{what} {path}: {source}{hint}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
        /// Who holds the file open, when the OS refused because of that (Windows).
        hint: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The journal, met while the step read back or saved its data, cannot be trusted: the
    /// engine stops (exit 3), records nothing as failed and rolls nothing back.
    #[error("{0}")]
    Corrupt(String),
}

impl StepError {
    /// The journal corruption this error reports, if it is one.
    pub fn corruption(&self) -> Option<&str> {
        match self {
            StepError::Corrupt(m) => Some(m),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, StepError>;

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StepError {
    let path = path.to_path_buf();
    move |source| {
        let hint = crate::platform::explain_in_use(&path, &source).unwrap_or_default();
        StepError::Io {
            what,
            path,
            source,
            hint,
        }
    }
}

/// Progress callbacks for long steps: bytes processed, files finished, the phase a step is
/// in now (shown beside the step's label: "verifying", "syncing 3000 files"; "" for none).
pub use crate::durable_fs::{OnBytes, OnFiles, OnPhase};

/// What a step will process, for its progress display (0 where not known).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub bytes: u64,
    pub files: u64,
}

pub struct StepContext<'a> {
    /// This step's own folder in the journal trash (created on demand).
    pub trash: PathBuf,
    /// The journal folder: no step touches it or walks into it (the engine's to name).
    pub journal_dir: &'a Path,
    pub on_bytes: OnBytes<'a>,
    pub on_files: OnFiles<'a>,
    pub on_phase: OnPhase<'a>,
    /// Where the step saves data it needs for undo before acting (StepData records).
    pub journal: &'a dyn StepJournal,
    /// Folder fsyncs this step may put off until the engine's barrier (see `DeferredDirs`).
    pub deferred: &'a crate::durable_fs::DeferredDirs,
}

/// The journal as a step sees it. `save` + `sync` before the side effect keeps the
/// write-ahead rule for data a step keeps itself (for example database row before-images).
pub trait StepJournal {
    /// Appends a StepData record for this step; durable at the latest after `sync`.
    fn save(&self, payload: Vec<u8>) -> Result<()>;
    /// Makes every saved record durable.
    fn sync(&self) -> Result<()>;
    /// Calls `f` with each StepData payload saved by this step in this run, in order.
    fn saved(&self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>;

    /// Moves `path` (under the root), which stands where this step must put something back
    /// and is not what the run wrote, into the run's kept-aside folder under the same path
    /// relative to the root; journaled (durable) before the move. Returns where it went.
    /// Nothing the run did not write is ever deleted: it is kept aside instead.
    fn keep_aside(&self, path: &Path) -> Result<PathBuf> {
        Err(StepError::Refused(format!(
            "{} stands in the way and is not what the run wrote; move it away by hand",
            path.display()
        )))
    }

    /// The run's kept-aside folder under the root (created on first use), for what a step
    /// keeps there itself (the present database before a forced restore); `None` where
    /// there is none.
    fn kept_aside_dir(&self) -> Option<PathBuf> {
        None
    }
}

impl<'a> StepContext<'a> {
    /// The progress callbacks, for `durable_fs`'s copies and moves.
    pub fn report(&self) -> durable_fs::Report<'a> {
        durable_fs::Report {
            on_bytes: self.on_bytes,
            on_files: self.on_files,
            on_phase: self.on_phase,
        }
    }

    pub fn trash_path(&self, name: &str) -> Result<PathBuf> {
        durable_fs::create_private_dir_all(&self.trash).map_err(io("creating", &self.trash))?;
        Ok(self.trash.join(name))
    }
}

pub trait Step: Send + Sync {
    /// One line for plans, progress and the audit; paths shown relative to `root`.
    fn describe(&self, root: &Path) -> String;

    /// Preflight against the state the earlier steps will have left; records this step's
    /// effects in the view. Returns what would refuse the plan.
    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String>;

    /// Bytes the step will write (for the free-space preflight).
    fn bytes_needed(&self, _view: &PlanView) -> u64 {
        0
    }

    /// What the step will process (bytes it reports through `on_bytes`, files through
    /// `on_files`), for the progress bar's totals; `view` is the tree as the step finds it,
    /// before it acts. By default the bytes it will write.
    fn work(&self, view: &PlanView) -> Work {
        Work {
            bytes: self.bytes_needed(view),
            files: 0,
        }
    }

    /// What the step's undo will report, from its intent (0 where not known: the default).
    fn undo_work(&self, _intent: &Intent) -> Work {
        Work::default()
    }

    fn intent(&self, ctx: &StepContext) -> Result<Intent>;

    fn apply(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome>;

    /// After a crash: complete an internal operation that passed its commit point, or
    /// remove the leftovers of one that did not. Safe to repeat.
    fn settle(
        &self,
        _ctx: &StepContext,
        intent: &Intent,
        _outcome: Option<&Outcome>,
    ) -> Result<()> {
        for t in &intent.touches {
            let staged = durable_fs::staging_path(&t.path);
            durable_fs::remove_path(&staged).map_err(io("removing", &staged))?;
        }
        Ok(())
    }

    /// Applied or not, by comparing each touched path with its before and after manifests.
    fn probe(
        &self,
        _ctx: &StepContext,
        intent: &Intent,
        outcome: Option<&Outcome>,
    ) -> Result<Probe> {
        probe_by_manifests(intent, outcome)
    }

    /// The outcome of a step that recovery found applied although its outcome was never
    /// journaled (a crash between the action and the record).
    fn recovered_outcome(&self, _ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        Ok(Outcome::default())
    }

    /// Before `resume` of an interrupted or failed run, for each step not done: what the step
    /// needs that the journal does not keep (a PFX password is never journaled), checked
    /// before anything acts, so that its absence is a refusal rather than a failed, rolled-back
    /// run. Most steps need nothing.
    fn ready_to_resume(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Before `resume`, or a `rollback` of a run that did not commit (or whose rollback was
    /// interrupted), for each step done and not undone, in plan order: re-establish an
    /// effect outside the tree that a restart may have reverted (a stopped service started
    /// again by a reboot). Most steps have none. True when it acted.
    fn reassert(&self, _ctx: &StepContext, _intent: &Intent) -> Result<bool> {
        Ok(false)
    }

    /// The fingerprint of what the step changes outside the tree (its database), taken when
    /// it is done and again before a rollback undoes the run's changes there. `None`: the
    /// step changes nothing outside the tree.
    fn fingerprint(&self) -> Result<Option<Fingerprint>> {
        Ok(None)
    }

    /// Reverses an applied step. The engine has probed it `Applied` (every touched path in
    /// its recorded after state) or the user forced it.
    fn undo(&self, ctx: &StepContext, intent: &Intent, outcome: Option<&Outcome>) -> Result<()>;

    /// Before a rollback changes anything (and in `journal verify --deep`): what this step's
    /// undo needs besides the tree itself (a trash copy, a kept previous content, row
    /// before-images, a database backup, kept originals), checked against what the journal
    /// recorded. One line per artifact missing or damaged, naming it; empty when all is there.
    /// Only called for a step with an intent and no undo record.
    fn verify_artifacts(
        &self,
        _ctx: &StepContext,
        _intent: &Intent,
        _outcome: Option<&Outcome>,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// A database step whose undo restores a backup: before a forced rollback restores it over
    /// a database that changed after the run, save the database as it is now (a verified
    /// backup, in `ctx.journal.kept_aside_dir()` or where the server writes backups) and
    /// return that file. `None`: the step restores nothing (the default).
    fn keep_present(&self, _ctx: &StepContext, _intent: &Intent) -> Result<Option<PathBuf>> {
        Ok(None)
    }

    /// Files the step writes that none of its touches describes (a database backup's file):
    /// the run's own, so a rollback never takes them for something written after the run.
    fn writes_besides_touches(&self, _intent: &Intent) -> Vec<PathBuf> {
        Vec::new()
    }

    /// A database backup step: the fingerprint of the database its backup holds, where it
    /// can be read without restoring it (a SQLite file), to compare with the one recorded
    /// when the backup was taken. `None` elsewhere (a SQL Server `.bak` is checked by its
    /// page checksums: `RESTORE VERIFYONLY ... WITH CHECKSUM`).
    fn backup_fingerprint(&self, _intent: &Intent) -> Result<Option<Fingerprint>> {
        Ok(None)
    }

    /// What the audit (`journal export`) shows of the step's saved data, read from it in
    /// order; `None`: nothing (its saved data is the step's own business).
    fn saved_detail(&self) -> Option<SavedDetail> {
        None
    }
}

/// The part of a step's saved data the audit shows, filled by [`SavedDetail::add`] with the
/// step's saved payloads in order.
pub enum SavedDetail {
    /// Every run of a service step's command: apply, and at resume or rollback reassert and
    /// undo.
    Commands(Vec<service::CommandRun>),
    /// A delete-rows step: the chunks of its last complete attempt, each checked against
    /// its saved rows.
    RowDigests(db_delete::RowDigests),
    /// A database schema upgrade: every run of the vendor's tool with its output, failed
    /// runs included.
    SchemaTool(db_version::ToolRuns),
}

impl SavedDetail {
    pub fn add(&mut self, payload: &[u8]) -> Result<()> {
        match self {
            SavedDetail::Commands(runs) => runs.extend(service::CommandRun::from_saved(payload)),
            SavedDetail::RowDigests(digests) => digests.add(payload)?,
            SavedDetail::SchemaTool(runs) => runs.add(payload),
        }
        Ok(())
    }

    /// What the audit says when the saved data cannot be read.
    pub fn unavailable(&self) -> &'static str {
        match self {
            SavedDetail::Commands(_) => "the saved output of its commands is unavailable",
            SavedDetail::RowDigests(_) => "the digests of the deleted rows are unavailable",
            SavedDetail::SchemaTool(_) => {
                "the saved output of the schema upgrade tool is unavailable"
            }
        }
    }
}

/// Compares every touched path with its recorded states.
pub fn probe_by_manifests(intent: &Intent, outcome: Option<&Outcome>) -> Result<Probe> {
    let mut all_after = true;
    let mut all_before = true;
    let mut first_diff = None;
    for (i, t) in intent.touches.iter().enumerate() {
        let now = Manifest::of(&t.path).map_err(io("reading", &t.path))?;
        if now != t.before {
            all_before = false;
        }
        match intent.expected_after(i, outcome) {
            Some(after) if &now == after => {}
            Some(after) => {
                all_after = false;
                if first_diff.is_none() {
                    let d = after
                        .first_difference(&now)
                        .map(|d| d.to_string())
                        .unwrap_or_default();
                    first_diff = Some(format!("{}: {d}", t.path.display()));
                }
            }
            None => all_after = false,
        }
    }
    Ok(if all_after {
        Probe::Applied
    } else if all_before {
        Probe::NotApplied
    } else {
        Probe::Inconsistent(first_diff.unwrap_or_else(|| "state differs".into()))
    })
}

/// A move `from` -> `to` interrupted after its commit point leaves both; keep whichever
/// side holds exactly `expected`. The other side is removed only when every entry of it is
/// also in `expected`, byte for byte (what is left of a source being deleted after its copy
/// was renamed into place): then nothing is lost. Anything else there is not what the run
/// wrote (a folder recreated or made since) and is kept aside (`StepJournal::keep_aside`),
/// never deleted. Used by every step that moves.
pub(crate) fn settle_pair(
    journal: &dyn StepJournal,
    from: &Path,
    to: &Path,
    expected: &Manifest,
) -> Result<()> {
    for p in [from, to] {
        let staged = durable_fs::staging_path(p);
        durable_fs::remove_path(&staged).map_err(io("removing", &staged))?;
    }
    if from.symlink_metadata().is_err() || to.symlink_metadata().is_err() {
        return Ok(());
    }
    let to_m = Manifest::of(to).map_err(io("reading", to))?;
    let from_m = Manifest::of(from).map_err(io("reading", from))?;
    let (kept, other, other_m) = if &to_m == expected {
        (to, from, from_m)
    } else if &from_m == expected {
        (from, to, to_m)
    } else {
        return Err(StepError::Refused(format!(
            "both {} and {} exist and neither holds the recorded content; resolve by hand",
            from.display(),
            to.display()
        )));
    };
    if other_m.is_within(expected) {
        tracing::debug!(kept = %kept.display(), removed = %other.display(), "settle: a copy's leftover");
        return durable_fs::remove_path(other).map_err(io("removing", other));
    }
    journal.keep_aside(other).map(|_| ())
}

/// The problem line of an artifact an undo will read (a trash copy, a kept original), found
/// as `found` where it should hold `expected`: `None` when it does.
pub(crate) fn artifact_problem(
    artifact: &Path,
    of_what: &str,
    expected: &Manifest,
    found: &Manifest,
) -> Option<String> {
    let what = if !found.exists() {
        "missing".to_string()
    } else {
        format!("altered: {}", expected.first_difference(found)?)
    };
    Some(format!("{}: {what} ({of_what})", artifact.display()))
}

/// The step a spec describes. `cert_password` is the PFX password a re-encryption step
/// loads its certificate with (given at run time, never in the plan); `None` where no
/// certificate is loaded (descriptions, rollback) or none was given.
pub fn step_for(
    spec: &StepSpec,
    root: &Path,
    cert_password: Option<&CertPassword>,
) -> Box<dyn Step> {
    let r = |p: &PathBuf| root.join(p);
    match spec {
        StepSpec::Rename { from, to } => Box::new(rename::Rename {
            from: r(from),
            to: r(to),
        }),
        StepSpec::Copy { from, to } => Box::new(copy::Copy {
            from: r(from),
            to: r(to),
        }),
        StepSpec::MoveTree { from, to } => Box::new(move_tree::MoveTree {
            from: r(from),
            to: r(to),
        }),
        StepSpec::DeleteTree { path } => Box::new(delete_tree::DeleteTree { path: r(path) }),
        StepSpec::WriteFile { path, content } => Box::new(write_file::WriteFile {
            path: r(path),
            content: content.clone(),
        }),
        StepSpec::ExtractZip { archive, dest } => Box::new(extract_zip::ExtractZip {
            archive: r(archive),
            dest: r(dest),
        }),
        StepSpec::MakeDir { path } => Box::new(make_dir::MakeDir { path: r(path) }),
        StepSpec::DatabaseBackup {
            connection,
            backup_dir,
        } => Box::new(db_backup::DatabaseBackup {
            connection: connection.clone(),
            backup_dir: backup_dir.clone(),
            root: root.to_path_buf(),
        }),
        StepSpec::DeleteRows { connection, table } => Box::new(db_delete::DeleteRows {
            connection: connection.clone(),
            table: table.clone(),
            root: root.to_path_buf(),
        }),
        StepSpec::DatabaseVersionUpgrade {
            connection,
            command,
        } => Box::new(db_version::DatabaseVersionUpgrade {
            connection: connection.clone(),
            command: command.clone(),
            root: root.to_path_buf(),
        }),
        StepSpec::ReencryptFiles {
            folders,
            files,
            certificate,
        } => Box::new(reencrypt::ReencryptFiles::new(
            root,
            folders.clone(),
            files.clone(),
            certificate.clone(),
            cert_password.cloned(),
        )),
        StepSpec::Service {
            action,
            command,
            undo,
        } => Box::new(service::Service {
            action: *action,
            apply: service::Op::Line(command.clone()),
            undo: undo.clone().map(service::Op::Line),
            root: root.to_path_buf(),
        }),
        StepSpec::WindowsService { action, names } => {
            let opposite = match action {
                ServiceAction::Stop => ServiceAction::Start,
                ServiceAction::Start => ServiceAction::Stop,
            };
            Box::new(service::Service {
                action: *action,
                apply: service::Op::Services(*action, names.clone()),
                undo: Some(service::Op::Services(
                    opposite,
                    names.iter().rev().cloned().collect(),
                )),
                root: root.to_path_buf(),
            })
        }
    }
}

/// Prefix of this tool's own environment variables: its settings and its secrets
/// (`USERCUBE_UPGRADE_CERT_PASSWORD`).
pub const TOOL_ENV_PREFIX: &str = "USERCUBE_UPGRADE_";

/// A command a step starts (the service commands, the vendor's database tool), ready to run:
/// in a process group of its own, so that a Ctrl+C at the terminal stops the engine at its
/// next durable point and lets the command finish its step (`platform::own_process_group`),
/// and [`without_tool_variables`].
pub fn child_command(cmd: &mut std::process::Command) -> &mut std::process::Command {
    without_tool_variables(crate::platform::own_process_group(cmd))
}

/// `cmd` with none of the tool's own variables ([`TOOL_ENV_PREFIX`]) in its environment:
/// the service commands and the vendor's database tool never see the PFX password (and
/// their output, which is journaled, cannot echo it).
fn without_tool_variables(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (name, _) in std::env::vars_os() {
        // Windows names are case-insensitive.
        if name
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with(TOOL_ENV_PREFIX)
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Relative display of a path under the root, for messages and plans.
pub fn show(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::test_kit::TestJournal;

    /// A folder holding `files` (name, content).
    fn tree(path: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(path).unwrap();
        for (name, content) in files {
            std::fs::write(path.join(name), content).unwrap();
        }
    }

    const ORDERS: &[(&str, &str)] = &[("order-1.json", "{\"id\": 1}"), ("order-2.json", "{}")];

    /// `Temp/Orders` moved to `Work/Orders`: the root, both sides, and the journal.
    fn pair() -> (tempfile::TempDir, PathBuf, PathBuf, TestJournal) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let (from, to) = (root.join("Temp/Orders"), root.join("Work/Orders"));
        std::fs::create_dir_all(from.parent().unwrap()).unwrap();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let journal = TestJournal::new(&root);
        (d, from, to, journal)
    }

    fn manifest(p: &Path) -> Manifest {
        Manifest::of(p).unwrap()
    }

    /// A copy renamed into place, its source half deleted: the source's rest is removed.
    #[test]
    fn settle_removes_a_source_left_that_the_copy_holds_byte_for_byte() {
        let (_d, from, to, journal) = pair();
        tree(&to, ORDERS);
        tree(&from, &ORDERS[..1]);
        let expected = manifest(&to);
        settle_pair(&journal, &from, &to, &expected).unwrap();
        assert!(from.symlink_metadata().is_err(), "the leftover is removed");
        assert_eq!(manifest(&to), expected);
        assert!(journal.kept.borrow().is_empty());
        assert!(!journal.aside.exists());
    }

    /// The source recreated with a new file: kept aside whole, nothing removed.
    #[test]
    fn settle_keeps_aside_a_source_that_holds_a_new_file() {
        let (_d, from, to, journal) = pair();
        tree(&to, ORDERS);
        tree(&from, &[ORDERS[0], ("order-3.json", "new since the run")]);
        let expected = manifest(&to);
        let was = manifest(&from);
        settle_pair(&journal, &from, &to, &expected).unwrap();
        assert_eq!(*journal.kept.borrow(), [from.as_path()]);
        assert!(from.symlink_metadata().is_err());
        assert_eq!(manifest(&journal.aside.join("Temp/Orders")), was);
        assert_eq!(manifest(&to), expected);
    }

    /// Not moved yet, and the administrator made a folder at the destination: it is kept
    /// aside, the source stays.
    #[test]
    fn settle_keeps_aside_a_folder_made_at_the_destination() {
        let (_d, from, to, journal) = pair();
        tree(&from, ORDERS);
        tree(&to, &[("notes.txt", "made by hand")]);
        let expected = manifest(&from);
        let made = manifest(&to);
        settle_pair(&journal, &from, &to, &expected).unwrap();
        assert_eq!(*journal.kept.borrow(), [to.as_path()]);
        assert!(to.symlink_metadata().is_err());
        assert_eq!(manifest(&journal.aside.join("Work/Orders")), made);
        assert_eq!(manifest(&from), expected);
    }

    /// Neither side holds the recorded content: refused, both left as they are.
    #[test]
    fn settle_refuses_when_neither_side_holds_the_recorded_content() {
        let (_d, from, to, journal) = pair();
        tree(&from, &ORDERS[..1]);
        tree(&to, &[ORDERS[1], ("order-3.json", "new")]);
        let expected = {
            let e = tempfile::tempdir().unwrap();
            tree(e.path(), ORDERS);
            manifest(e.path())
        };
        let (from_was, to_was) = (manifest(&from), manifest(&to));
        let err = settle_pair(&journal, &from, &to, &expected).unwrap_err();
        assert!(
            matches!(&err, StepError::Refused(m) if m.contains("neither holds the recorded content")),
            "{err}"
        );
        assert_eq!((manifest(&from), manifest(&to)), (from_was, to_was));
        assert!(journal.kept.borrow().is_empty());
        assert!(!journal.aside.exists());
    }
}
