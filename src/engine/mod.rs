//! The engine executes a [`Plan`]: run, resume, rollback, finalize, status.
//!
//! It owns the order of every step: journal the intent and make it durable, act, journal
//! the outcome and make it durable. Steps that touch disjoint paths are grouped (up to
//! `Options::batch`) so that one flush covers many intents, then one flush many outcomes;
//! the write-ahead rule holds because every intent of a group is durable before the first
//! of its actions. Recovery never trusts memory: it derives the run state from the journal
//! (`state`), settles and probes each step whose outcome is missing, then goes forward
//! (`resume`) or backward (`rollback`). Undo records are compensation records: a step with
//! a `StepUndone` is never undone again, so a rollback interrupted at any point can simply
//! be run again.

pub mod audit;
mod lock;
pub mod payload;
pub mod preflight;
mod progress;
mod rollback;
mod sink;
pub mod state;
pub mod until;

use std::cell::RefCell;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::crypto::CertPassword;
use crate::durable_fs;
use crate::journal::{Journal, NewRecord, Phase};
use crate::plan::Plan;
use crate::steps::{self, Intent, Outcome, Probe, Step, StepContext, StepError, StepJournal};
use crate::{Error, Result};
pub use lock::{check_journal_folder, RootLock};
pub use progress::Progress;
pub use rollback::RollbackPlan;
use sink::JournalSink;
use state::{RunState, RunStatus};

/// `<journal>/trash`: what steps keep for undo, per run and step; purged at finalize.
pub const TRASH_DIR: &str = "trash";
/// `<journal>/contents`: the plans' file contents, per run; purged at finalize.
pub const CONTENTS_DIR: &str = "contents";

/// A step's outcome with the fingerprint of what it left outside the tree (its database).
/// A fingerprint that cannot be taken does not undo a done step: the outcome says so, and a
/// rollback then goes without the check.
fn fingerprint_after(
    step: &dyn Step,
    mut outcome: Outcome,
) -> (Outcome, Option<steps::Fingerprint>) {
    match step.fingerprint() {
        Ok(f) => (outcome, f),
        Err(e) => {
            outcome.notes.push(format!(
                "the database fingerprint could not be taken ({e}): a rollback cannot check that the database is as this step left it"
            ));
            (outcome, None)
        }
    }
}

/// The kept-aside folder's name: `KeptAside-YYYYMMDD-HHMMSS-<first 8 hex digits of the run>`,
/// the run's start in UTC.
pub fn kept_aside_name(run_id: &[u8; 16], started_ms: u64) -> String {
    let t = audit::iso8601(started_ms);
    let stamp: String = t[..19]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!(
        "KeptAside-{}-{}",
        stamp.replace('T', "-"),
        hex::encode(&run_id[..4])
    )
}

/// The journal folder's default name under the installation root.
pub const JOURNAL_DIR_NAME: &str = ".usercube-upgrade";

pub fn default_journal_dir(root: &Path) -> PathBuf {
    root.join(JOURNAL_DIR_NAME)
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Undo even when a step's result changed since it ran.
    pub force: bool,
    /// Roll back automatically when a step fails.
    pub auto_rollback: bool,
    /// Most steps whose records share one flush.
    pub batch: usize,
    pub quiet: bool,
    /// The PFX password of the plan's re-encryption steps (never journaled).
    pub cert_password: Option<CertPassword>,
    /// Who runs this command, where, and how (secrets masked): journaled with the run's
    /// start, its rollback and its finalize, for the audit.
    pub context: payload::RunContext,
    /// A request to stop (SIGINT, SIGTERM) that the engine honours at its next durable
    /// point; never set unless the caller watches for one.
    pub stop: crate::platform::StopRequest,
    /// The vendor guide of a plan (the runbook's, given by the CLI): `--until` refuses the
    /// numbers it does not have. None: any guide step number is taken.
    pub guide: Option<until::GuideOf>,
}

/// How `run` or `resume` ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every step done, the run committed.
    Committed,
    /// Stopped by `--until` after the guide step asked for; the run stays open.
    Paused,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            force: false,
            auto_rollback: true,
            batch: 256,
            quiet: false,
            cert_password: None,
            context: payload::RunContext::default(),
            stop: Default::default(),
            guide: None,
        }
    }
}

pub struct Engine {
    root: PathBuf,
    dir: PathBuf,
    /// Shared with the step being run through its `JournalSink` (StepData records).
    journal: RefCell<Journal>,
    opts: Options,
    progress: Progress,
    /// The progress callbacks lent to steps (`StepContext::on_bytes`, ...), feeding `progress`.
    reporters: Reporters,
    /// Folder fsyncs the steps put off; made durable before any step is recorded done.
    deferred: durable_fs::DeferredDirs,
    /// The journal's lock, and the root's when the journal is elsewhere ([`Locked`]).
    _lock: (RootLock, Option<RootLock>),
}

/// A step's progress callbacks, each feeding the engine's [`Progress`].
struct Reporters {
    on_bytes: Box<dyn Fn(u64) + Sync>,
    on_files: Box<dyn Fn(u64) + Sync>,
    on_phase: Box<dyn Fn(&str) + Sync>,
}

impl Reporters {
    fn new(progress: &Progress) -> Reporters {
        let (b, f, p) = (progress.clone(), progress.clone(), progress.clone());
        Reporters {
            on_bytes: Box::new(move |n| b.add_bytes(n)),
            on_files: Box::new(move |n| f.add_files(n)),
            on_phase: Box::new(move |phase| p.phase(phase)),
        }
    }
}

/// The latest run, ready to act on: its plan's steps instantiated.
struct Active {
    run_id: [u8; 16],
    /// `<root>/KeptAside-<run's start, UTC>-<run>`: where a rollback or recovery moves what
    /// stands in its way and the run did not write (created on first use).
    kept_aside: PathBuf,
    plan: Plan,
    steps: Vec<Box<dyn Step>>,
}

/// A step that failed during `run` or `resume`, its error kept typed.
/// Journal corruption met by the step (`error.corruption()`: `StepError::Corrupt`, or the
/// journal's own) means exit 3, nothing recorded as failed, no automatic rollback.
struct StepFailure {
    id: u32,
    error: Error,
}

impl StepFailure {
    fn new(id: u32, error: impl Into<Error>) -> StepFailure {
        StepFailure {
            id,
            error: error.into(),
        }
    }
}

/// `usercube-upgrade WORDS... --root ROOT [--journal DIR]`, its paths quoted for this OS's
/// shell (`platform::command_line`): a command to show the administrator.
pub fn command_line(words: &[&str], root: &Path, journal: Option<&Path>) -> String {
    let mut args: Vec<&std::ffi::OsStr> = std::iter::once("usercube-upgrade")
        .chain(words.iter().copied())
        .chain(["--root"])
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(root.as_os_str());
    if let Some(j) = journal {
        args.extend([std::ffi::OsStr::new("--journal"), j.as_os_str()]);
    }
    crate::platform::command_line(&args)
}

/// The exit-3 error for journal corruption met inside a step.
fn corrupt_in_step(id: u32, what: &str, corruption: &str) -> Error {
    Error::Corrupt(format!(
        "step {id} ({what}): the journal is corrupt: {corruption}\nNothing was rolled back: recovery cannot trust this journal. `usercube-upgrade journal salvage --output FILE` writes what still verifies."
    ))
}

/// The root's lock, taken before anything reads the tree or the journal.
pub struct Locked {
    pub root: PathBuf,
    pub dir: PathBuf,
    lock: RootLock,
    /// The installation's own lock, `<root>/.usercube-upgrade/lock`, when the journal is
    /// elsewhere (`--journal`): one upgrade at a time per root, whatever journal each uses.
    /// `None` when the journal is the root's default one, whose lock it is.
    root_lock: Option<RootLock>,
    /// This process created the journal folder (only such a folder is removed again).
    created: bool,
}

/// Whether the journal folder `dir` holds a record: a record log that is not empty, or
/// (no log) the store of an older build. A folder just created by this process holds none.
pub fn journal_holds_records(dir: &Path) -> bool {
    match std::fs::metadata(dir.join(crate::journal::log::LOG_FILE)) {
        Ok(m) => m.len() > 0,
        Err(_) => dir.join(crate::journal::STORE_DIR).exists(),
    }
}

impl Locked {
    /// Creates the journal folder if needed and takes its lock, and, for a journal outside
    /// the root's default folder, the root's own lock in that folder too (created
    /// owner-only if needed): refused at once, naming the holder's pid, when another process
    /// holds either, so two runs on one root are refused whatever `--journal` each names.
    pub fn acquire(root: &Path, journal_dir: Option<&Path>) -> Result<Locked> {
        let root = canonical_root(root)?;
        // A relative folder is taken from the current folder and named absolute everywhere.
        let dir = journal_dir.map_or_else(
            || default_journal_dir(&root),
            |d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()),
        );
        let created = dir.symlink_metadata().is_err();
        durable_fs::create_private_dir(&dir).map_err(|source| Error::Io {
            what: "creating the journal folder",
            path: dir.clone(),
            source,
        })?;
        let lock = RootLock::acquire(&dir)?;
        let mut locked = Locked {
            root,
            dir,
            lock,
            root_lock: None,
            created,
        };
        let root_dir = default_journal_dir(&locked.root);
        if !same_folder(&locked.dir, &root_dir) {
            let taken = durable_fs::create_private_dir(&root_dir)
                .map_err(|source| Error::Io {
                    what: "creating the root's lock folder",
                    path: root_dir.clone(),
                    source,
                })
                .and_then(|()| RootLock::acquire(&root_dir));
            match taken {
                Ok(l) => locked.root_lock = Some(l),
                Err(e) => {
                    // Refused: leave no trace of this call (a journal folder it created).
                    if locked.created && locked.journal_is_empty() {
                        locked.remove_empty_journal();
                    }
                    return Err(e);
                }
            }
        }
        Ok(locked)
    }

    /// Whether this call created the journal folder (an existing one is never removed).
    pub fn created(&self) -> bool {
        self.created
    }

    /// True when the journal folder holds no record (decided under the lock): no record log
    /// or an empty one, and no store of an older build.
    pub fn journal_is_empty(&self) -> bool {
        !journal_holds_records(&self.dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes a journal folder that holds no record: its entries under the lock (the lock
    /// file too: on Windows it is only marked for deletion while open), then, the lock
    /// released, the folder itself if it is still empty (a non-recursive removal, so a
    /// process that took the root in between loses nothing). Best effort: what cannot be
    /// removed stays.
    ///
    /// The root's lock folder, when the journal is elsewhere, goes the same way if it holds
    /// nothing but the lock (no journal of its own).
    pub fn remove_empty_journal(self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let _ = durable_fs::remove_path(&e.path());
            }
        }
        let dir = self.dir.clone();
        let root_dir = self
            .root_lock
            .as_ref()
            .map(|_| default_journal_dir(&self.root));
        let lock_only = |d: &Path| {
            std::fs::read_dir(d).is_ok_and(|entries| {
                entries
                    .flatten()
                    .all(|e| e.file_name() == std::ffi::OsStr::new(lock::LOCK_FILE))
            })
        };
        let root_dir = root_dir.filter(|d| lock_only(d));
        if let Some(d) = &root_dir {
            let _ = durable_fs::remove_path(&d.join(lock::LOCK_FILE));
        }
        drop(self);
        let _ = durable_fs::remove_empty_dir(&dir);
        if let Some(d) = root_dir {
            let _ = durable_fs::remove_empty_dir(&d);
        }
    }

    /// Frees the space kept for a rollback (`journal::RESERVE_FILE`), before the journal is
    /// opened.
    pub fn release_reserve(&self) -> Result<()> {
        crate::journal::release_reserve(&self.dir)
            .map(|_| ())
            .map_err(|source| Error::Io {
                what: "removing the rollback reserve in",
                path: self.dir.clone(),
                source,
            })
    }
}

/// The locks of a command that only reads the tree (`plan`): the journal folder's `dir` and
/// the root's (its default journal folder), each only where that folder exists (such a
/// command creates none). Refused, naming the holder, while a run holds either.
pub fn lock_existing(root: &Path, dir: &Path) -> Result<Vec<RootLock>> {
    let mut locks = Vec::new();
    if dir.is_dir() {
        locks.push(RootLock::acquire(dir)?);
    }
    let root_dir = default_journal_dir(root);
    if root_dir.is_dir() && !same_folder(dir, &root_dir) {
        locks.push(RootLock::acquire(&root_dir)?);
    }
    Ok(locks)
}

/// Whether `a` and `b` name the same existing folder (through links, `..` or case).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (dunce::canonicalize(a), dunce::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

pub fn canonical_root(root: &Path) -> Result<PathBuf> {
    if root.as_os_str().is_empty() {
        return Err(Error::Usage(
            "--root DIR is needed: the installation root (the folder holding Runtime, Conf, Temp, Work); it may be left out when the current folder is the installation's Runtime folder".into(),
        ));
    }
    if !root.is_dir() {
        return Err(Error::Usage(format!(
            "--root {}: not a folder",
            root.display()
        )));
    }
    // dunce: on Windows a plain `C:\...` path where one exists, not `\\?\C:\...`, in
    // which the plan's `Runtime/...` joins would not be separators.
    dunce::canonicalize(root).map_err(|source| Error::Io {
        what: "resolving",
        path: root.into(),
        source,
    })
}

impl Engine {
    /// Takes the root's lock and opens (verifying) its journal.
    pub fn open(root: &Path, journal_dir: Option<&Path>, opts: Options) -> Result<Engine> {
        Self::open_locked(Locked::acquire(root, journal_dir)?, opts)
    }

    /// Opens (verifying) the journal under a lock already taken.
    pub fn open_locked(locked: Locked, opts: Options) -> Result<Engine> {
        let journal = Journal::open(&locked.dir)?;
        let progress = Progress::new(opts.quiet);
        Ok(Engine {
            root: locked.root,
            dir: locked.dir,
            journal: RefCell::new(journal),
            opts,
            reporters: Reporters::new(&progress),
            progress,
            deferred: durable_fs::DeferredDirs::default(),
            _lock: (locked.lock, locked.root_lock),
        })
    }

    /// Writes the rollback reserve again (after a command that released it changed nothing).
    pub fn make_reserve(&self) -> Result<()> {
        crate::journal::make_reserve(&self.dir).map_err(|source| Error::Io {
            what: "writing the rollback reserve in",
            path: self.dir.clone(),
            source,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn journal(&self) -> std::cell::Ref<'_, Journal> {
        self.journal.borrow()
    }

    /// The journal as step `id` of the active run sees it, keeping aside into the run's
    /// kept-aside folder.
    fn sink(&self, a: &Active, id: u32) -> JournalSink<'_> {
        let keep = Some((self.root.clone(), a.kept_aside.clone()));
        JournalSink::new(
            &self.journal,
            self.data_dir(&a.run_id, id),
            a.run_id,
            id,
            keep,
        )
    }

    /// `<journal>/data/<run>/<step>`: the files of a step's StepData records.
    fn data_dir(&self, run_id: &[u8; 16], id: u32) -> PathBuf {
        self.dir
            .join("data")
            .join(hex::encode(&run_id[..8]))
            .join(id.to_string())
    }

    fn step_ctx<'a>(
        &'a self,
        run_id: &[u8; 16],
        id: u32,
        sink: &'a JournalSink<'a>,
    ) -> StepContext<'a> {
        StepContext {
            trash: self.trash_dir(run_id).join(id.to_string()),
            journal_dir: &self.dir,
            on_bytes: &*self.reporters.on_bytes,
            on_files: &*self.reporters.on_files,
            on_phase: &*self.reporters.on_phase,
            journal: sink,
            deferred: &self.deferred,
        }
    }

    /// The tree as it is now, the journal folder known (no step walks into it).
    fn view(&self) -> crate::steps::PlanView {
        crate::steps::PlanView::new(&self.root).with_journal(&self.dir)
    }

    /// Folder changes deferred by steps become durable here, before any record says a step
    /// is done or undone.
    fn barrier(&self) -> Result<()> {
        self.deferred.barrier().map_err(|source| Error::Io {
            what: "syncing folders under",
            path: self.root.clone(),
            source,
        })
    }

    /// The audit of every run (`journal export`), with what each step shows of its saved
    /// data (`Step::saved_detail`: a service step's command runs, a delete's row digests).
    pub fn audit(&self) -> Result<audit::Audit> {
        let journal = self.journal.borrow();
        let mut audit = audit::build(journal.records())?;
        let runs = state::runs(journal.records())?;
        drop(journal);
        for (run, run_audit) in runs.iter().zip(audit.runs.iter_mut()) {
            for (planned, step) in run
                .started
                .plan
                .steps
                .iter()
                .zip(run_audit.steps.iter_mut())
            {
                let step_impl = steps::step_for(&planned.action, &self.root, None);
                let Some(mut detail) = step_impl.saved_detail() else {
                    continue;
                };
                let sink = JournalSink::new(
                    &self.journal,
                    self.data_dir(&run.run_id, planned.id),
                    run.run_id,
                    planned.id,
                    None,
                );
                let read = sink.saved(&mut |bytes| detail.add(bytes));
                match read {
                    Ok(()) => match detail {
                        steps::SavedDetail::Commands(runs) => step.commands = runs,
                        steps::SavedDetail::RowDigests(d) => step.row_digests = d.finish(),
                        steps::SavedDetail::SchemaTool(t) => step.commands = t.runs,
                    },
                    Err(e) => step.notes.push(format!("{}: {e}", detail.unavailable())),
                }
            }
        }
        Ok(audit)
    }

    pub fn latest(&self) -> Result<Option<RunState>> {
        state::latest(self.journal.borrow().records())
    }

    fn trash_dir(&self, run_id: &[u8; 16]) -> PathBuf {
        self.dir.join(TRASH_DIR).join(hex::encode(&run_id[..8]))
    }

    /// `<journal>/contents/<run>`: the bytes of the plan's `write-file` steps, one owner-only
    /// file per content, named by its SHA-256 (the plan record holds only the digest).
    fn contents_dir(&self, run_id: &[u8; 16]) -> PathBuf {
        self.dir.join(CONTENTS_DIR).join(hex::encode(&run_id[..8]))
    }

    /// Writes every `write-file` content of the plan into [`Self::contents_dir`] and makes
    /// the files and their folders durable.
    fn save_contents(&self, run_id: &[u8; 16], plan: &Plan) -> Result<()> {
        let dir = self.contents_dir(run_id);
        let io = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { what, path, source }
        };
        let mut written = Vec::new();
        for step in &plan.steps {
            let crate::plan::StepSpec::WriteFile { content, .. } = &step.action else {
                continue;
            };
            let bytes = content.bytes().ok_or_else(|| {
                Error::Usage(format!("step {}: its file content is not loaded", step.id))
            })?;
            if written.is_empty() {
                durable_fs::create_private_dir(&self.dir.join(CONTENTS_DIR))
                    .map_err(io("creating", &dir))?;
                durable_fs::create_private_dir(&dir).map_err(io("creating", &dir))?;
            }
            let file = dir.join(hex::encode(content.sha256));
            durable_fs::write_private_unsynced(&file, bytes).map_err(io("writing", &file))?;
            written.push(file);
        }
        if written.is_empty() {
            return Ok(());
        }
        durable_fs::sync_files(written.iter().map(PathBuf::as_path))
            .map_err(io("syncing", &dir))?;
        durable_fs::fsync_dir(&dir).map_err(io("syncing", &dir))?;
        durable_fs::fsync_dir(&self.dir.join(CONTENTS_DIR)).map_err(io("syncing", &dir))?;
        durable_fs::fsync_dir(&self.dir).map_err(io("syncing", &self.dir))
    }

    /// Gives a journaled plan's `write-file` steps their bytes back (resume needs them;
    /// rollback works from digests). Missing or damaged: the journal cannot finish the run.
    fn load_contents(&self, a: &mut Active) -> Result<()> {
        let dir = self.contents_dir(&a.run_id);
        for step in &mut a.plan.steps {
            let crate::plan::StepSpec::WriteFile { path, content } = &mut step.action else {
                continue;
            };
            if content.bytes().is_some() {
                continue;
            }
            let file = dir.join(hex::encode(content.sha256));
            let loaded = std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|bytes| content.load(bytes));
            if let Err(why) = loaded {
                return Err(Error::Corrupt(format!(
                    "{}: the content step {} writes into {} is missing or damaged ({why}); `rollback` does not need it",
                    file.display(),
                    step.id,
                    path.display()
                )));
            }
        }
        a.steps = a
            .plan
            .steps
            .iter()
            .map(|s| steps::step_for(&s.action, &self.root, self.opts.cert_password.as_ref()))
            .collect();
        Ok(())
    }

    fn append(
        &mut self,
        run_id: [u8; 16],
        step: Option<u32>,
        phase: Phase,
        payload: Vec<u8>,
    ) -> Result<()> {
        self.journal.borrow_mut().append(NewRecord {
            run_id,
            step,
            phase,
            payload,
        })?;
        Ok(())
    }

    fn record(run_id: [u8; 16], step: u32, phase: Phase, payload: Vec<u8>) -> NewRecord {
        NewRecord {
            run_id,
            step: Some(step),
            phase,
            payload,
        }
    }

    /// Recovery decides from what it sees on disk; a dead process may have left changes in
    /// the page cache only. Make them durable first, so that no conclusion the journal
    /// records can be undone by a later power cut.
    fn settle_page_cache(&self) -> Result<()> {
        for p in [&self.root, &self.dir] {
            durable_fs::sync_filesystem(p).map_err(|source| Error::Io {
                what: "syncing the filesystem of",
                path: p.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// `usercube-upgrade VERB --root ROOT [--journal DIR]`: the exact command, for messages,
    /// its paths quoted for this OS's shell (`platform::command_line`).
    pub fn command(&self, verb: &str) -> String {
        let journal = (self.dir != default_journal_dir(&self.root)).then_some(self.dir.as_path());
        command_line(&[verb], &self.root, journal)
    }

    /// Refuses a new run while the latest one is open or not finalized, leading with where
    /// it stands and the exact commands that go on from there (before any other check:
    /// the installation is half upgraded, and its version says nothing useful).
    pub fn refuse_if_open(&self) -> Result<()> {
        let Some(prev) = self.latest()? else {
            return Ok(());
        };
        let resume = self.command("resume");
        let rollback = self.command("rollback");
        let (done, total) = (prev.done_count(), prev.started.plan.steps.len());
        let stopped = prev.stopped.as_ref().map(ToString::to_string);
        let message = match (prev.status, prev.rollback_half_done()) {
            (RunStatus::RolledBack | RunStatus::Finalized, _) => return Ok(()),
            (_, Some(half)) => format!("{half}; `{rollback}` finishes it"),
            (RunStatus::Paused, None) => format!(
                "paused: the latest run was {} and is still open: `{resume}` goes on (with `--until GUIDE-STEP` it stops again), `{rollback}` undoes it",
                stopped.unwrap_or_default()
            ),
            (RunStatus::Interrupted, None) => match stopped {
                Some(s) => format!("interrupted: the latest run was {s}: `{resume}` or `{rollback}`"),
                None => format!(
                    "interrupted: the latest run stopped after step {done} of {total} without finishing (the process ended: a crash, a kill or a power cut): `{resume}` or `{rollback}`"
                ),
            },
            (RunStatus::Failed, None) => format!(
                "the latest run failed{}: fix the cause, then `{resume}`, or `{rollback}`",
                prev.failure
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            ),
            (RunStatus::Committed, None) => format!(
                "the latest run completed and is not finalized: check it, then `{}` (makes it permanent) or `{rollback}`",
                self.command("finalize")
            ),
        };
        Err(Error::Refused(format!(
            "{message} (run {})",
            prev.run_hex()
        )))
    }

    /// The vendor guide of `plan`, as the caller knows it (`Options::guide`).
    fn guide_of(&self, plan: &Plan) -> Option<until::Guide> {
        self.opts.guide.and_then(|g| g(plan))
    }

    /// The first stop request (a signal) received, if any.
    fn stop_requested(&self) -> Option<crate::platform::StopSignal> {
        self.opts.stop.get()
    }

    /// Executes a plan from the start. On a step failure, rolls back (unless disabled).
    pub fn run(&mut self, plan: Plan) -> Result<()> {
        self.run_until(plan, None).map(|_| ())
    }

    /// Executes a plan from the start; with `until`, pauses after that guide step (the run
    /// stays open: `resume` goes on, `rollback` undoes it).
    pub fn run_until(&mut self, plan: Plan, until: Option<&str>) -> Result<Finish> {
        self.refuse_if_open()?;
        let end = match until {
            None => plan.steps.len(),
            Some(u) => {
                let stop = until::stop_at(&plan, 0, u, self.guide_of(&plan))?;
                if stop.index == 0 {
                    let own = if stop.none_in_plan {
                        format!("guide step {u} has no step in this plan (`plan` shows what it is: by hand, checked, not needed or skipped), and ")
                    } else {
                        String::new()
                    };
                    return Err(Error::Refused(format!(
                        "--until {u}: {own}no step of the plan is at or before guide step {u} (the first is step 1, guide step {}); nothing was changed",
                        plan.steps
                            .first()
                            .and_then(|s| s.seed.as_deref())
                            .unwrap_or("-")
                    )));
                }
                stop.index
            }
        };
        let problems = preflight::check(
            &self.root,
            &self.dir,
            &plan,
            self.opts.cert_password.as_ref(),
        );
        if !problems.is_empty() {
            return Err(Error::Refused(preflight::refusal(&problems)));
        }
        if let Some(signal) = self.stop_requested() {
            return Err(Error::Interrupted {
                message: format!(
                    "interrupted ({}) before the run started: nothing was changed",
                    signal.name()
                ),
                exit_code: signal.exit_code(),
            });
        }
        crate::journal::make_reserve(&self.dir).map_err(|source| Error::Io {
            what: "writing the rollback reserve in",
            path: self.dir.clone(),
            source,
        })?;
        let run_id = *uuid::Uuid::new_v4().as_bytes();
        // Durable before the record that names them by digest.
        self.save_contents(&run_id, &plan)?;
        let started = payload::RunStarted {
            plan_hash: plan.hash(),
            plan: plan.clone(),
            root: self.root.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            context: Some(self.opts.context.clone()),
            legacy: false,
        };
        self.append(run_id, None, Phase::RunStarted, started.encode())?;
        self.progress.say(format!(
            "run {} started: {} ({} steps)",
            hex::encode(run_id),
            plan.title,
            plan.steps.len()
        ));
        // Named by the recorded start, as every later command names it.
        let started_ms = self
            .latest()?
            .and_then(|r| r.times.get(&r.started_seq).copied())
            .unwrap_or(0);
        let active = self.activate_plan(run_id, plan, started_ms);
        self.go_forward(&active, 0, end, until)
    }

    /// Finishes an interrupted (or failed, not rolled back) run from the journal.
    pub fn resume(&mut self) -> Result<()> {
        self.resume_until(None).map(|_| ())
    }

    /// Goes on with an open run (interrupted, failed, paused); with `until`, pauses again
    /// after that guide step.
    pub fn resume_until(&mut self, until: Option<&str>) -> Result<Finish> {
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to resume: no run in the journal".into()))?;
        if let Some(half) = run.rollback_half_done() {
            return Err(Error::Refused(format!(
                "{half}; `{}` finishes it (a run whose rollback began is not resumed)",
                self.command("rollback")
            )));
        }
        match run.status {
            RunStatus::Interrupted | RunStatus::Failed | RunStatus::Paused => {}
            RunStatus::Committed => {
                return Err(Error::Refused(format!(
                    "run {} already completed; nothing to resume",
                    run.run_hex()
                )))
            }
            RunStatus::RolledBack | RunStatus::Finalized => {
                return Err(Error::Refused(format!(
                    "run {} has ended ({:?}); nothing to resume",
                    run.run_hex(),
                    run.status
                )))
            }
        }
        let mut active = self.activate(&run)?;
        self.load_contents(&mut active)?;
        let end = match until {
            None => active.steps.len(),
            Some(u) => {
                let next = active
                    .plan
                    .steps
                    .iter()
                    .position(|s| run.step(s.id).is_none_or(|x| x.done.is_none()))
                    .unwrap_or(active.steps.len());
                let end = until::stop_at(&active.plan, next, u, self.guide_of(&active.plan))?.index;
                if end == next {
                    let what = active.plan.steps.get(next).map_or_else(
                        || "every step is done".to_string(),
                        |s| {
                            format!(
                                "its next step is step {}, guide step {}",
                                s.id,
                                s.seed.as_deref().unwrap_or("-")
                            )
                        },
                    );
                    return Err(Error::Refused(format!(
                        "--until {u}: run {} is already past guide step {u} ({what}); nothing was changed",
                        run.run_hex()
                    )));
                }
                end
            }
        };
        // Every open run, a paused one too: a step this resume reaches that cannot run
        // (its certificate's password not given) would otherwise fail it and roll it back.
        self.check_ready_to_resume(&active, &run, end)?;
        self.settle_page_cache()?;
        self.reassert(&active, &run)?;
        self.progress.say(format!(
            "resuming run {} ({} of {} steps done)",
            run.run_hex(),
            run.done_count(),
            active.steps.len()
        ));
        let mut first_fresh = active.steps.len();
        for (k, planned) in active.plan.steps.iter().enumerate().take(end) {
            let s = run.step(planned.id).cloned().unwrap_or_default();
            if s.done.is_some() {
                continue;
            }
            let Some((_, recorded)) = s.intent else {
                first_fresh = k;
                break;
            };
            if let Some(signal) = self.stop_requested() {
                return self.interrupted(&active, signal);
            }
            if let Err(f) = self.recover_forward(&active, k, &recorded.intent) {
                return self.fail(&active, f).map(|()| Finish::Committed);
            }
        }
        self.go_forward(&active, first_fresh, end, until)
    }

    /// Records that the run stopped on a signal at a durable point (it stays open) and
    /// says how to go on.
    fn interrupted(&mut self, a: &Active, signal: crate::platform::StopSignal) -> Result<Finish> {
        let done = self.latest()?.map_or(0, |r| r.done_count());
        let total = a.steps.len();
        let stopped = payload::RunStopped {
            reason: payload::StopReason::Signal(signal.name().into()),
            rollback: false,
            steps_done: done as u32,
            steps_total: total as u32,
        };
        self.append(a.run_id, None, Phase::RunStopped, payload::encode(&stopped))?;
        self.progress.finish();
        Err(Error::Interrupted {
            message: format!(
                "interrupted after step {done} of {total} ({}): `{}` or `{}`\nThe run is open and no step is half done: resume finishes it, rollback restores the starting state.",
                signal.name(),
                self.command("resume"),
                self.command("rollback")
            ),
            exit_code: signal.exit_code(),
        })
    }

    /// Steps done earlier re-establish what a restart may have reverted (`Step::reassert`),
    /// before anything else is touched.
    fn reassert(&self, a: &Active, run: &RunState) -> Result<()> {
        for (k, planned) in a.plan.steps.iter().enumerate() {
            let Some(s) = run.step(planned.id) else {
                continue;
            };
            let (Some(recorded), true, None) = (state::intent_of(s), s.done.is_some(), &s.undone)
            else {
                continue;
            };
            let sink = self.sink(a, planned.id);
            let ctx = self.step_ctx(&a.run_id, planned.id, &sink);
            let acted = a.steps[k]
                .reassert(&ctx, &recorded.intent)
                .and_then(|acted| sink.sync().map(|()| acted))
                .map_err(|e| {
                    if let Some(c) = e.corruption() {
                        return corrupt_in_step(planned.id, &a.steps[k].describe(&self.root), c);
                    }
                    Error::RunFailed(format!(
                        "step {} ({}): {e}\nnothing else was done; fix that and try again",
                        planned.id,
                        a.steps[k].describe(&self.root)
                    ))
                })?;
            if !acted {
                continue;
            }
            self.progress.say(format!(
                "[{}] {}: run again before going on",
                planned.id,
                a.steps[k].describe(&self.root)
            ));
        }
        Ok(())
    }

    /// A step whose intent is durable but whose outcome is not: settle, probe, then record
    /// it done or apply it now.
    fn recover_forward(
        &mut self,
        a: &Active,
        k: usize,
        intent: &Intent,
    ) -> std::result::Result<(), StepFailure> {
        let id = a.plan.steps[k].id;
        let step = &a.steps[k];
        let sink = self.sink(a, id);
        let ctx = self.step_ctx(&a.run_id, id, &sink);
        let fail = |e: StepError| StepFailure::new(id, e);
        step.settle(&ctx, intent, None).map_err(fail)?;
        let probe = step.probe(&ctx, intent, None).map_err(fail)?;
        tracing::debug!(step = %step.describe(&self.root), ?probe, "resume: probed");
        let (outcome, recovered) = match probe {
            Probe::Applied => {
                self.progress.say(format!(
                    "[{id}/{}] {}: already applied",
                    a.steps.len(),
                    step.describe(&self.root)
                ));
                (step.recovered_outcome(&ctx, intent).map_err(fail)?, true)
            }
            Probe::NotApplied | Probe::Partial(_) => {
                let done = match &probe {
                    Probe::Partial(how_far) => format!(" (continuing: {how_far})"),
                    _ => String::new(),
                };
                self.progress.say(format!(
                    "[{id}/{}] {}{done}",
                    a.steps.len(),
                    step.describe(&self.root)
                ));
                self.progress
                    .start_step(&step.describe(&self.root), || step.work(&self.view()));
                let applied = step
                    .apply(&ctx, intent)
                    .and_then(|o| sink.sync().map(|()| o));
                self.progress.finish();
                (applied.map_err(fail)?, false)
            }
            Probe::Inconsistent(why) => {
                return Err(StepFailure::new(
                    id,
                    StepError::Refused(format!("cannot tell whether it was applied: {why}")),
                ))
            }
        };
        let (outcome, fingerprint) = fingerprint_after(&**step, outcome);
        let done = payload::StepDone {
            outcome,
            recovered,
            fingerprint,
        };
        self.barrier().map_err(|e| StepFailure::new(id, e))?;
        drop(ctx);
        drop(sink);
        self.append(a.run_id, Some(id), Phase::StepDone, payload::encode(&done))
            .map_err(|error| StepFailure::new(id, error))
    }

    /// What the steps not done need that the journal does not keep (`Step::ready_to_resume`:
    /// the certificates of unfinished re-encryption steps), checked before anything acts: a
    /// refusal, nothing changed. Only the steps before index `end` (where `--until` pauses
    /// again): those after it do not run now.
    fn check_ready_to_resume(&self, a: &Active, run: &RunState, end: usize) -> Result<()> {
        for (s, step) in a.plan.steps.iter().zip(&a.steps).take(end) {
            if run.step(s.id).is_some_and(|x| x.done.is_some()) {
                continue;
            }
            step.ready_to_resume().map_err(|err| {
                Error::Refused(format!(
                    "step {} (guide step {}: {}) needs its certificate to resume: {err}\nNothing was changed: the run stays as it was (`rollback` needs no key).",
                    s.id,
                    s.seed.as_deref().unwrap_or("-"),
                    step.describe(&self.root),
                ))
            })?;
        }
        Ok(())
    }

    fn activate_plan(&self, run_id: [u8; 16], plan: Plan, started_ms: u64) -> Active {
        let steps = plan
            .steps
            .iter()
            .map(|s| steps::step_for(&s.action, &self.root, self.opts.cert_password.as_ref()))
            .collect();
        Active {
            run_id,
            kept_aside: self.root.join(kept_aside_name(&run_id, started_ms)),
            plan,
            steps,
        }
    }

    fn activate(&self, run: &RunState) -> Result<Active> {
        if !run.started.legacy && run.started.plan.hash() != run.started.plan_hash {
            return Err(Error::Corrupt(format!(
                "journal record {}: the stored plan does not match its hash",
                run.started_seq
            )));
        }
        if run.started.root != self.root {
            return Err(Error::Refused(format!(
                "this journal belongs to {}, not {}",
                run.started.root.display(),
                self.root.display()
            )));
        }
        let started_ms = run.times.get(&run.started_seq).copied().unwrap_or(0);
        Ok(self.activate_plan(run.run_id, run.started.plan.clone(), started_ms))
    }

    /// Groups of steps starting at `from` whose paths are pairwise disjoint.
    fn group(&self, a: &Active, order: &[usize], from: usize) -> Range<usize> {
        let mut paths: Vec<&Path> = Vec::new();
        let mut end = from;
        while end < order.len() && end - from < self.opts.batch.max(1) {
            let mine = a.plan.steps[order[end]].action.paths();
            let overlaps = mine
                .iter()
                .any(|p| paths.iter().any(|q| p.starts_with(q) || q.starts_with(p)));
            if overlaps && end > from {
                break;
            }
            paths.extend(mine);
            end += 1;
        }
        from..end
    }

    /// Runs the steps from index `start` up to `end`; then commits, or, when `end` is
    /// short of the last step (`--until`), records the pause. A stop request ends it at the
    /// next durable point.
    fn go_forward(
        &mut self,
        a: &Active,
        start: usize,
        end: usize,
        until: Option<&str>,
    ) -> Result<Finish> {
        let order: Vec<usize> = (start..end).collect();
        let mut i = 0;
        while i < order.len() {
            if let Some(signal) = self.stop_requested() {
                return self.interrupted(a, signal);
            }
            let group = self.group(a, &order, i);
            match self.run_group(a, &order[group.clone()])? {
                Err(f) => return self.fail(a, f).map(|()| Finish::Committed),
                Ok(false) => {
                    let signal = self
                        .stop_requested()
                        .expect("a group stops early only on request");
                    return self.interrupted(a, signal);
                }
                Ok(true) => {}
            }
            i = group.end;
        }
        if end < a.steps.len() {
            return self.pause(a, end, until.unwrap_or_default());
        }
        self.append(a.run_id, None, Phase::RunCommitted, Vec::new())?;
        self.progress.finish();
        self.progress.say(format!(
            "run {} completed: {} steps. `rollback` can still restore the starting state; `finalize` purges what was kept for it.",
            hex::encode(a.run_id),
            a.steps.len()
        ));
        Ok(Finish::Committed)
    }

    /// `--until`: every step before index `end` is done; the run stays open.
    fn pause(&mut self, a: &Active, end: usize, until: &str) -> Result<Finish> {
        let stopped = payload::RunStopped {
            reason: payload::StopReason::Until(until.to_string()),
            rollback: false,
            steps_done: self.latest()?.map_or(0, |r| r.done_count()) as u32,
            steps_total: a.steps.len() as u32,
        };
        self.append(a.run_id, None, Phase::RunStopped, payload::encode(&stopped))?;
        self.progress.finish();
        let next = &a.plan.steps[end];
        let mut notes = String::new();
        if let Ok(stop) = until::stop_at(&a.plan, end, until, self.guide_of(&a.plan)) {
            if stop.none_in_plan {
                notes.push_str(&format!("\nguide step {until} has no step in this plan (`plan` shows what it is: by hand, checked, not needed or skipped): the run paused after every step before it in the guide's order."));
            }
            if !stop.later.is_empty() {
                let ids: Vec<String> = stop.later.iter().map(u32::to_string).collect();
                notes.push_str(&format!("\nnot done yet: step(s) {} of guide step {until}, which this plan does later (after the steps that must run first).", ids.join(", ")));
            }
        }
        self.progress.say(format!(
            "run {} {stopped}: it is open and reversible.{notes}\nnext: step {} (guide step {}): {}\nCheck the installation, then go on with `{}` (add `--until GUIDE-STEP` to stop again), or undo everything with `{}`; `status` shows where it stands.",
            hex::encode(a.run_id),
            next.id,
            next.seed.as_deref().unwrap_or("-"),
            a.steps[end].describe(&self.root),
            self.command("resume"),
            self.command("rollback"),
        ));
        Ok(Finish::Paused)
    }

    /// One group: intents (one flush), actions, outcomes (one flush). The outer Result is
    /// a journal failure (fail-stop), the inner one a step failure (recorded); `Ok(false)`:
    /// a stop request ended the group early (its remaining steps have an intent and no
    /// outcome, as after a crash: `resume` probes them, `rollback` finds them not applied).
    fn run_group(
        &mut self,
        a: &Active,
        ks: &[usize],
    ) -> Result<std::result::Result<bool, StepFailure>> {
        let n = a.steps.len();
        let mut intents = Vec::with_capacity(ks.len());
        let mut records = Vec::with_capacity(ks.len());
        let mut failure = None;
        for &k in ks {
            let id = a.plan.steps[k].id;
            let sink = self.sink(a, id);
            let ctx = self.step_ctx(&a.run_id, id, &sink);
            // An intent may take a while (every file's key checked): a bar of its own when
            // the step reports files while it checks.
            let step = &a.steps[k];
            self.progress
                .start_step(&step.describe(&self.root), || step.work(&self.view()));
            self.progress.phase("checking");
            let intent = step.intent(&ctx);
            self.progress.finish();
            match intent {
                Ok(intent) => {
                    let p = payload::StepIntent {
                        description: a.steps[k].describe(&self.root),
                        intent,
                    };
                    records.push(Self::record(
                        a.run_id,
                        id,
                        Phase::StepIntent,
                        payload::encode(&p),
                    ));
                    intents.push(p.intent);
                }
                Err(e) => {
                    failure = Some(StepFailure::new(id, e));
                    break;
                }
            }
        }
        self.journal.borrow_mut().append_batch(records)?;
        let mut outcomes = Vec::with_capacity(ks.len());
        let mut complete = true;
        for (pos, (&k, intent)) in ks.iter().zip(&intents).enumerate() {
            if pos > 0 && self.stop_requested().is_some() {
                complete = false;
                break;
            }
            let id = a.plan.steps[k].id;
            let step = &a.steps[k];
            let label = step.describe(&self.root);
            // The earlier steps are done: the tree as it is now is the view this step sees.
            self.progress.start_step(&label, || step.work(&self.view()));
            let t = Instant::now();
            let sink = self.sink(a, id);
            let ctx = self.step_ctx(&a.run_id, id, &sink);
            let applied = step
                .apply(&ctx, intent)
                .and_then(|o| sink.sync().map(|()| o));
            // Done: its bar goes (a finished step's bar must not sit there while the next
            // one gets ready).
            self.progress.finish();
            match applied {
                Ok(outcome) => {
                    self.progress.say(format!(
                        "[{id}/{n}] {label} ({} ms)",
                        t.elapsed().as_millis()
                    ));
                    let (outcome, fingerprint) = fingerprint_after(&**step, outcome);
                    let done = payload::StepDone {
                        outcome,
                        recovered: false,
                        fingerprint,
                    };
                    outcomes.push(Self::record(
                        a.run_id,
                        id,
                        Phase::StepDone,
                        payload::encode(&done),
                    ));
                }
                Err(e) => {
                    failure = Some(StepFailure::new(id, e));
                    break;
                }
            }
        }
        // A step that met journal corruption is not recorded as failed: fail-stop.
        if let Some(f) = failure.as_ref().filter(|f| f.error.corruption().is_none()) {
            let p = payload::Failure {
                message: f.error.to_string(),
            };
            outcomes.push(Self::record(
                a.run_id,
                f.id,
                Phase::StepFailed,
                payload::encode(&p),
            ));
        }
        self.barrier()?;
        self.journal.borrow_mut().append_batch(outcomes)?;
        Ok(match failure {
            Some(f) => Err(f),
            None => Ok(complete),
        })
    }

    /// Records a failed run, rolls back if asked, and describes where things stand.
    fn fail(&mut self, a: &Active, f: StepFailure) -> Result<()> {
        self.progress.finish();
        if let Some(c) = f.error.corruption() {
            let what = a.steps[(f.id - 1) as usize].describe(&self.root);
            return Err(corrupt_in_step(f.id, &what, &c));
        }
        let message = format!(
            "step {} ({}) failed: {}",
            f.id,
            a.steps[(f.id - 1) as usize].describe(&self.root),
            f.error
        );
        self.append(
            a.run_id,
            None,
            Phase::RunFailed,
            payload::encode(&payload::Failure {
                message: message.clone(),
            }),
        )?;
        if !self.opts.auto_rollback {
            return Err(Error::RunFailed(format!(
                "{message}\nNot rolled back (--no-auto-rollback): fix the cause and `resume`, or `rollback`."
            )));
        }
        self.progress.say(format!("{message}\nrolling back..."));
        match self.rollback_after_failure() {
            Ok(()) => Err(Error::RunFailed(format!(
                "{message}\nThe run was rolled back: the installation is exactly as it was before."
            ))),
            Err(Error::Interrupted { message: stop, exit_code }) => Err(Error::Interrupted {
                message: format!("{message}\nThe automatic {stop}"),
                exit_code,
            }),
            Err(e) => Err(Error::RunFailed(format!(
                "{message}\nThe automatic rollback stopped: {e}\nFix that, then run `rollback` again."
            ))),
        }
    }

    /// Purges what was kept only for rollback; the journal (the audit) stays.
    pub fn finalize(&mut self) -> Result<()> {
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to finalize: no run in the journal".into()))?;
        // Half undone: what the rest of the rollback needs must not be purged.
        if let Some(half) = run.rollback_half_done() {
            return Err(Error::Refused(format!(
                "run {}: {half}; `{}` finishes it (nothing was purged)",
                run.run_hex(),
                self.command("rollback")
            )));
        }
        match run.status {
            RunStatus::Committed | RunStatus::RolledBack => {
                let by = payload::encode(&self.opts.context);
                self.append(run.run_id, None, Phase::RunFinalized, by)?;
            }
            RunStatus::Finalized => self
                .progress
                .say(format!("run {} was already finalized", run.run_hex())),
            RunStatus::Interrupted | RunStatus::Failed | RunStatus::Paused => {
                return Err(Error::Refused(format!(
                    "run {} has not finished: `resume` or `rollback` it first",
                    run.run_hex()
                )))
            }
        }
        crate::journal::release_reserve(&self.dir).map_err(|source| Error::Io {
            what: "removing the rollback reserve in",
            path: self.dir.clone(),
            source,
        })?;
        // Every run's kept contents, not only this one's: an earlier rolled-back run's
        // trash holds copies of the appsettings files as well. Digests stay in the records.
        for kept in [TRASH_DIR, CONTENTS_DIR] {
            let path = self.dir.join(kept);
            durable_fs::remove_path(&path).map_err(|source| Error::Io {
                what: "purging",
                path: path.clone(),
                source,
            })?;
        }
        self.progress.say(format!(
            "run {} finalized: kept copies and file contents of every run purged; the journal stays for audit",
            run.run_hex()
        ));
        Ok(())
    }
}
