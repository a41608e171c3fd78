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
mod sink;
pub mod state;

use std::cell::RefCell;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::durable_fs;
use crate::journal::{Journal, NewRecord, Phase};
use crate::plan::Plan;
use crate::steps::{self, Intent, Outcome, Probe, Step, StepContext, StepError, StepJournal};
use crate::{Error, Result};
pub use lock::RootLock;
pub use progress::Progress;
use sink::JournalSink;
use state::{RunState, RunStatus};

/// Folder changes deferred by steps (`durable_fs::rename_deferred`) become durable here,
/// before any record says a step is done or undone.
fn barrier(root: &Path) -> Result<()> {
    durable_fs::barrier().map_err(|source| Error::Io {
        what: "syncing folders under",
        path: root.to_path_buf(),
        source,
    })
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
}

impl Default for Options {
    fn default() -> Options {
        Options {
            force: false,
            auto_rollback: true,
            batch: 256,
            quiet: false,
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
    _lock: RootLock,
}

/// The latest run, ready to act on: its plan's steps instantiated.
struct Active {
    run_id: [u8; 16],
    plan: Plan,
    steps: Vec<Box<dyn Step>>,
}

/// A step that failed during `run` or `resume`.
struct StepFailure {
    id: u32,
    error: String,
    /// Journal corruption met by the step (see `JournalSink::corruption`): exit 3, nothing
    /// recorded as failed, no automatic rollback.
    corrupt: Option<String>,
}

impl StepFailure {
    fn new(id: u32, error: impl ToString, sink: &JournalSink) -> StepFailure {
        StepFailure {
            id,
            error: error.to_string(),
            corrupt: sink.corruption(),
        }
    }
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
}

impl Locked {
    /// Creates the journal folder if needed and takes the root lock (refused at once, naming
    /// the holder's pid, when another process holds it).
    pub fn acquire(root: &Path, journal_dir: Option<&Path>) -> Result<Locked> {
        let root = canonical_root(root)?;
        let dir = journal_dir.map_or_else(|| default_journal_dir(&root), Path::to_path_buf);
        durable_fs::create_private_dir(&dir).map_err(|source| Error::Io {
            what: "creating the journal folder",
            path: dir.clone(),
            source,
        })?;
        let lock = RootLock::acquire(&dir)?;
        Ok(Locked { root, dir, lock })
    }

    /// True when the journal folder holds no record (decided under the lock): no record log
    /// or an empty one, and no store of an older build.
    pub fn journal_is_empty(&self) -> bool {
        match std::fs::metadata(self.dir.join(crate::journal::log::LOG_FILE)) {
            Ok(m) => m.len() == 0,
            Err(_) => !self.dir.join(crate::journal::STORE_DIR).exists(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes a journal folder that holds no record: its entries under the lock (the lock
    /// file too: on Windows it is only marked for deletion while open), then, the lock
    /// released, the folder itself if it is still empty (a non-recursive removal, so a
    /// process that took the root in between loses nothing). Best effort: what cannot be
    /// removed stays.
    pub fn remove_empty_journal(self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let _ = durable_fs::remove_path(&e.path());
            }
        }
        let dir = self.dir.clone();
        drop(self);
        let _ = durable_fs::remove_empty_dir(&dir);
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

pub fn canonical_root(root: &Path) -> Result<PathBuf> {
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
            progress,
            _lock: locked.lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn journal(&self) -> std::cell::Ref<'_, Journal> {
        self.journal.borrow()
    }

    fn sink(&self, run_id: &[u8; 16], id: u32) -> JournalSink<'_> {
        let dir = self
            .dir
            .join("data")
            .join(hex::encode(&run_id[..8]))
            .join(id.to_string());
        JournalSink::new(&self.journal, dir, *run_id, id)
    }

    fn step_ctx<'a>(
        &'a self,
        run_id: &[u8; 16],
        id: u32,
        on_bytes: steps::OnBytes<'a>,
        sink: &'a JournalSink<'a>,
    ) -> StepContext<'a> {
        StepContext {
            root: &self.root,
            trash: self.trash_dir(run_id).join(id.to_string()),
            on_bytes,
            journal: sink,
        }
    }

    /// The audit of every run (`journal export`), with every run of each service step's
    /// command (apply, reassert, undo) read back from the step's saved data.
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
                if !matches!(
                    planned.action,
                    crate::plan::StepSpec::Service { .. }
                        | crate::plan::StepSpec::WindowsService { .. }
                ) {
                    continue;
                }
                let mut commands = Vec::new();
                let read = self.sink(&run.run_id, planned.id).saved(&mut |bytes| {
                    commands.extend(steps::service::CommandRun::from_saved(bytes));
                    Ok(())
                });
                match read {
                    Ok(()) => step.commands = commands,
                    Err(e) => step.notes.push(format!(
                        "the saved output of its commands is unavailable: {e}"
                    )),
                }
            }
        }
        Ok(audit)
    }

    pub fn latest(&self) -> Result<Option<RunState>> {
        state::latest(self.journal.borrow().records())
    }

    fn trash_dir(&self, run_id: &[u8; 16]) -> PathBuf {
        self.dir.join("trash").join(hex::encode(&run_id[..8]))
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

    /// Executes a plan from the start. On a step failure, rolls back (unless disabled).
    pub fn run(&mut self, plan: Plan) -> Result<()> {
        if let Some(prev) = self.latest()? {
            let hint = match prev.status {
                RunStatus::Interrupted | RunStatus::Failed => {
                    Some("an earlier run did not finish: `resume` it or `rollback` it first")
                }
                RunStatus::Committed => {
                    Some("an earlier run succeeded and is not finalized: `finalize` or `rollback` it first")
                }
                RunStatus::RolledBack | RunStatus::Finalized => None,
            };
            if let Some(hint) = hint {
                return Err(Error::Refused(format!("{hint} (run {})", prev.run_hex())));
            }
        }
        let problems = preflight::check(&self.root, &self.dir, &plan);
        if !problems.is_empty() {
            return Err(Error::Refused(preflight::refusal(&problems)));
        }
        crate::journal::make_reserve(&self.dir).map_err(|source| Error::Io {
            what: "writing the rollback reserve in",
            path: self.dir.clone(),
            source,
        })?;
        let run_id = *uuid::Uuid::new_v4().as_bytes();
        let started = payload::RunStarted {
            plan_hash: plan.hash(),
            plan: plan.clone(),
            root: self.root.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
        };
        self.append(run_id, None, Phase::RunStarted, payload::encode(&started))?;
        self.progress.say(format!(
            "run {} started: {} ({} steps)",
            hex::encode(run_id),
            plan.title,
            plan.steps.len()
        ));
        let active = self.activate_plan(run_id, plan);
        self.go_forward(&active, 0)
    }

    /// Finishes an interrupted (or failed, not rolled back) run from the journal.
    pub fn resume(&mut self) -> Result<()> {
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to resume: no run in the journal".into()))?;
        match run.status {
            RunStatus::Interrupted | RunStatus::Failed => {}
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
        if run.rollback_started() {
            return Err(Error::Refused(
                "a rollback of this run was interrupted; run `rollback` to finish it".into(),
            ));
        }
        let active = self.activate(&run)?;
        self.settle_page_cache()?;
        self.reassert(&active, &run)?;
        self.progress.say(format!(
            "resuming run {} ({} of {} steps done)",
            run.run_hex(),
            run.done_count(),
            active.steps.len()
        ));
        let mut first_fresh = active.steps.len();
        for (k, planned) in active.plan.steps.iter().enumerate() {
            let s = run.step(planned.id).cloned().unwrap_or_default();
            if s.done.is_some() {
                continue;
            }
            let Some((_, recorded)) = s.intent else {
                first_fresh = k;
                break;
            };
            if let Err(f) = self.recover_forward(&active, k, &recorded.intent) {
                return self.fail(&active, f);
            }
        }
        self.go_forward(&active, first_fresh)
    }

    /// Steps done earlier re-establish what a restart may have reverted (`Step::reassert`),
    /// before anything else is touched.
    fn reassert(&self, a: &Active, run: &RunState) -> Result<()> {
        let progress = self.progress.clone();
        let on_bytes = |n| progress.add_bytes(n);
        for (k, planned) in a.plan.steps.iter().enumerate() {
            let Some(s) = run.step(planned.id) else {
                continue;
            };
            let (Some(recorded), true, None) = (state::intent_of(s), s.done.is_some(), &s.undone)
            else {
                continue;
            };
            let sink = self.sink(&a.run_id, planned.id);
            let ctx = self.step_ctx(&a.run_id, planned.id, &on_bytes, &sink);
            let acted = a.steps[k]
                .reassert(&ctx, &recorded.intent)
                .and_then(|acted| sink.sync().map(|()| acted))
                .map_err(|e| {
                    if let Some(c) = sink.corruption() {
                        return corrupt_in_step(planned.id, &a.steps[k].describe(&self.root), &c);
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
        let progress = self.progress.clone();
        let on_bytes = |n| progress.add_bytes(n);
        let sink = self.sink(&a.run_id, id);
        let ctx = self.step_ctx(&a.run_id, id, &on_bytes, &sink);
        let fail = |e: StepError| StepFailure::new(id, e, &sink);
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
                self.progress.start_step(&step.describe(&self.root), || {
                    step.bytes_needed(&crate::steps::PlanView::new(&self.root))
                });
                (
                    step.apply(&ctx, intent)
                        .and_then(|o| sink.sync().map(|()| o))
                        .map_err(fail)?,
                    false,
                )
            }
            Probe::Inconsistent(why) => {
                return Err(StepFailure::new(
                    id,
                    format!("cannot tell whether it was applied: {why}"),
                    &sink,
                ))
            }
        };
        let done = payload::StepDone { outcome, recovered };
        barrier(&self.root).map_err(|e| StepFailure::new(id, e, &sink))?;
        let corrupt = sink.corruption();
        drop(ctx);
        drop(sink);
        self.append(a.run_id, Some(id), Phase::StepDone, payload::encode(&done))
            .map_err(|e| StepFailure {
                id,
                error: e.to_string(),
                corrupt,
            })
    }

    fn activate_plan(&self, run_id: [u8; 16], plan: Plan) -> Active {
        let steps = plan
            .steps
            .iter()
            .map(|s| steps::step_for(&s.action, &self.root))
            .collect();
        Active {
            run_id,
            plan,
            steps,
        }
    }

    fn activate(&self, run: &RunState) -> Result<Active> {
        if run.started.plan.hash() != run.started.plan_hash {
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
        Ok(self.activate_plan(run.run_id, run.started.plan.clone()))
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

    /// Runs the steps from index `start` to the end, then commits.
    fn go_forward(&mut self, a: &Active, start: usize) -> Result<()> {
        let order: Vec<usize> = (start..a.steps.len()).collect();
        let mut i = 0;
        while i < order.len() {
            let group = self.group(a, &order, i);
            if let Err(f) = self.run_group(a, &order[group.clone()])? {
                return self.fail(a, f);
            }
            i = group.end;
        }
        self.append(a.run_id, None, Phase::RunCommitted, Vec::new())?;
        self.progress.finish();
        self.progress.say(format!(
            "run {} completed: {} steps. `rollback` can still restore the starting state; `finalize` purges what was kept for it.",
            hex::encode(a.run_id),
            a.steps.len()
        ));
        Ok(())
    }

    /// One group: intents (one flush), actions, outcomes (one flush). The outer Result is
    /// a journal failure (fail-stop), the inner one a step failure (recorded).
    fn run_group(
        &mut self,
        a: &Active,
        ks: &[usize],
    ) -> Result<std::result::Result<(), StepFailure>> {
        let progress = self.progress.clone();
        let on_bytes = |n| progress.add_bytes(n);
        let n = a.steps.len();
        let mut intents = Vec::with_capacity(ks.len());
        let mut records = Vec::with_capacity(ks.len());
        let mut failure = None;
        for &k in ks {
            let id = a.plan.steps[k].id;
            let sink = self.sink(&a.run_id, id);
            let ctx = self.step_ctx(&a.run_id, id, &on_bytes, &sink);
            match a.steps[k].intent(&ctx) {
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
                    failure = Some(StepFailure::new(id, e, &sink));
                    break;
                }
            }
        }
        self.journal.borrow_mut().append_batch(records)?;
        let mut outcomes = Vec::with_capacity(ks.len());
        for (&k, intent) in ks.iter().zip(&intents) {
            let id = a.plan.steps[k].id;
            let step = &a.steps[k];
            let label = step.describe(&self.root);
            // The earlier steps are done: the tree as it is now is the view this step sees.
            self.progress.start_step(&label, || {
                step.bytes_needed(&crate::steps::PlanView::new(&self.root))
            });
            let t = Instant::now();
            let sink = self.sink(&a.run_id, id);
            let ctx = self.step_ctx(&a.run_id, id, &on_bytes, &sink);
            match step
                .apply(&ctx, intent)
                .and_then(|o| sink.sync().map(|()| o))
            {
                Ok(outcome) => {
                    self.progress.say(format!(
                        "[{id}/{n}] {label} ({} ms)",
                        t.elapsed().as_millis()
                    ));
                    let done = payload::StepDone {
                        outcome,
                        recovered: false,
                    };
                    outcomes.push(Self::record(
                        a.run_id,
                        id,
                        Phase::StepDone,
                        payload::encode(&done),
                    ));
                }
                Err(e) => {
                    failure = Some(StepFailure::new(id, e, &sink));
                    break;
                }
            }
        }
        // A step that met journal corruption is not recorded as failed: fail-stop.
        if let Some(f) = failure.as_ref().filter(|f| f.corrupt.is_none()) {
            let p = payload::Failure {
                message: f.error.clone(),
            };
            outcomes.push(Self::record(
                a.run_id,
                f.id,
                Phase::StepFailed,
                payload::encode(&p),
            ));
        }
        barrier(&self.root)?;
        self.journal.borrow_mut().append_batch(outcomes)?;
        Ok(match failure {
            Some(f) => Err(f),
            None => Ok(()),
        })
    }

    /// Records a failed run, rolls back if asked, and describes where things stand.
    fn fail(&mut self, a: &Active, f: StepFailure) -> Result<()> {
        self.progress.finish();
        if let Some(c) = &f.corrupt {
            let what = a.steps[(f.id - 1) as usize].describe(&self.root);
            return Err(corrupt_in_step(f.id, &what, c));
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
        match self.rollback_run() {
            Ok(()) => Err(Error::RunFailed(format!(
                "{message}\nThe run was rolled back: the installation is exactly as it was before."
            ))),
            Err(e) => Err(Error::RunFailed(format!(
                "{message}\nThe automatic rollback stopped: {e}\nFix that, then run `rollback` again."
            ))),
        }
    }

    /// Restores the starting state of the latest run (interrupted, failed or committed).
    pub fn rollback(&mut self) -> Result<()> {
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to roll back: no run in the journal".into()))?;
        match run.status {
            RunStatus::RolledBack => {
                self.progress
                    .say(format!("run {} is already rolled back", run.run_hex()));
                return Ok(());
            }
            RunStatus::Finalized => {
                return Err(Error::Refused(format!(
                    "run {} is finalized: what rollback needs has been purged",
                    run.run_hex()
                )))
            }
            _ => {}
        }
        if run.status != RunStatus::Committed || run.rollback_started() {
            // Unfinished: a restart since may have undone what earlier steps did outside
            // the tree (a committed run's own last steps are undone first instead).
            let a = self.activate(&run)?;
            self.settle_page_cache()?;
            self.reassert(&a, &run)?;
        }
        self.rollback_run()
    }

    /// The rollback itself (also the automatic one after a failed step, in the same process:
    /// nothing to re-establish there).
    fn rollback_run(&mut self) -> Result<()> {
        crate::journal::release_reserve(&self.dir).map_err(|source| Error::Io {
            what: "removing the rollback reserve in",
            path: self.dir.clone(),
            source,
        })?;
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to roll back: no run in the journal".into()))?;
        let a = self.activate(&run)?;
        self.settle_page_cache()?;
        let order: Vec<usize> = (0..a.steps.len())
            .rev()
            .filter(|&k| {
                let s = run.step(a.plan.steps[k].id);
                s.is_some_and(|s| s.intent.is_some() && s.undone.is_none())
            })
            .collect();
        self.progress.say(format!(
            "rolling back run {}: {} steps to check",
            run.run_hex(),
            order.len()
        ));
        let mut i = 0;
        while i < order.len() {
            let group = self.group(&a, &order, i);
            self.undo_group(&a, &run, &order[group.clone()])?;
            i = group.end;
        }
        self.append(a.run_id, None, Phase::RunRolledBack, Vec::new())?;
        self.progress.finish();
        self.progress.say(format!(
            "run {} rolled back: the installation is as it was before the run",
            run.run_hex()
        ));
        Ok(())
    }

    fn undo_group(&mut self, a: &Active, run: &RunState, ks: &[usize]) -> Result<()> {
        let progress = self.progress.clone();
        let on_bytes = |n| progress.add_bytes(n);
        let intents: Vec<NewRecord> = ks
            .iter()
            .map(|&k| a.plan.steps[k].id)
            .filter(|id| run.step(*id).is_some_and(|s| s.undo_intent.is_none()))
            .map(|id| Self::record(a.run_id, id, Phase::UndoIntent, Vec::new()))
            .collect();
        self.journal.borrow_mut().append_batch(intents)?;
        let mut undone = Vec::with_capacity(ks.len());
        let mut stop = None;
        for &k in ks {
            let id = a.plan.steps[k].id;
            let s = run.step(id).expect("filtered on intent");
            let intent = &state::intent_of(s).expect("filtered on intent").intent;
            let outcome = state::done_of(s).map(|d| &d.outcome);
            let sink = self.sink(&a.run_id, id);
            let ctx = self.step_ctx(&a.run_id, id, &on_bytes, &sink);
            // An undo's size is not known beforehand: a byte count, labelled as a rollback.
            self.progress.start_step(
                &format!("rolling back [{id}] {}", a.steps[k].describe(&self.root)),
                || 0,
            );
            match self.undo_step(&*a.steps[k], &ctx, intent, outcome) {
                Ok(how) => {
                    self.progress
                        .say(format!("[{id}] {}: {how}", a.steps[k].describe(&self.root)));
                    let p = payload::StepUndone {
                        how: how.to_string(),
                    };
                    undone.push(Self::record(
                        a.run_id,
                        id,
                        Phase::StepUndone,
                        payload::encode(&p),
                    ));
                }
                Err(e) => {
                    let what = a.steps[k].describe(&self.root);
                    stop = Some(match sink.corruption() {
                        Some(c) => corrupt_in_step(id, &what, &c),
                        None => Error::RunFailed(format!(
                            "rollback stopped at step {id} ({what}): {e}\nSteps after it in the rollback order are not undone yet; the journal records exactly which."
                        )),
                    });
                    break;
                }
            }
        }
        barrier(&self.root)?;
        self.journal.borrow_mut().append_batch(undone)?;
        match stop {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn undo_step(
        &self,
        step: &dyn Step,
        ctx: &StepContext,
        intent: &Intent,
        outcome: Option<&Outcome>,
    ) -> std::result::Result<&'static str, StepError> {
        step.settle(ctx, intent, outcome)?;
        let probe = step.probe(ctx, intent, outcome)?;
        tracing::debug!(step = %step.describe(&self.root), ?probe, "undo: probed");
        match probe {
            Probe::NotApplied => Ok("was not applied"),
            Probe::Applied => step.undo(ctx, intent, outcome).map(|()| "undone"),
            Probe::Partial(_) => step
                .undo(ctx, intent, outcome)
                .map(|()| "undone (it was part applied)"),
            Probe::Inconsistent(why) if self.opts.force => step
                .undo(ctx, intent, outcome)
                .map(|()| "undone (forced)")
                .map_err(|e| StepError::Refused(format!("{e} (state was: {why})"))),
            Probe::Inconsistent(why) => Err(StepError::Refused(format!(
                "changed since the step ran: {why}; refusing to undo (--force overrides)"
            ))),
        }
    }

    /// Purges what was kept only for rollback; the journal (the audit) stays.
    pub fn finalize(&mut self) -> Result<()> {
        let run = self
            .latest()?
            .ok_or_else(|| Error::Refused("nothing to finalize: no run in the journal".into()))?;
        match run.status {
            RunStatus::Committed | RunStatus::RolledBack => {
                self.append(run.run_id, None, Phase::RunFinalized, Vec::new())?;
            }
            RunStatus::Finalized => self
                .progress
                .say(format!("run {} was already finalized", run.run_hex())),
            RunStatus::Interrupted | RunStatus::Failed => {
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
        let trash = self.trash_dir(&run.run_id);
        durable_fs::remove_path(&trash).map_err(|source| Error::Io {
            what: "purging",
            path: trash.clone(),
            source,
        })?;
        self.progress.say(format!(
            "run {} finalized: kept copies purged; the journal stays for audit",
            run.run_hex()
        ));
        Ok(())
    }
}
