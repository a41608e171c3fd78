//! What the subcommands do besides one engine call: load a plan (runbook, JSON or the
//! sample) under the root lock, the vendor-named subcommands inside an open run, `journal
//! salvage`, the demo.

use std::path::{Path, PathBuf};

use clap::Parser;

use super::args::{absolute, Args, PlanSource, Target, ToolArgs};
use super::print::print_plan;
use crate::engine::{self, audit, preflight, state, Engine, Options, RootLock};
use crate::plan::Plan;
use crate::{runbook, sample, Error, Result};

/// A plan to print or run, with the runbook around it when `--mode` was given.
pub(super) struct Loaded {
    pub(super) plan: Plan,
    pub(super) runbook: Option<runbook::Runbook>,
}

pub(super) fn load(target: &Target, source: &PlanSource, command: &str) -> Result<Loaded> {
    if source.runbook.mode.is_none() && source.plan.is_none() && !source.sample_plan {
        // Never a built-in plan by omission: it would act on files this installation may
        // not have.
        return Err(Error::Usage(format!(
            "`{command}` needs --mode integrated|server|agent with --runtime-zip FILE (the vendor guide's procedure), or --plan FILE (a plan as JSON); nothing was changed"
        )));
    }
    let root = engine::canonical_root(&target.root)?;
    match source.runbook.options(&root) {
        Some(o) => {
            let rb = runbook::build(&o).map_err(|mut problems| {
                // Only a journal with records: a `run` has just created its (empty) one.
                if engine::journal_holds_records(&journal_dir(&root, target)) {
                    let status =
                        engine::command_line(&["status"], &root, target.journal.as_deref());
                    problems.push(format!(
                        "the journal records an earlier run on this installation: see `{status}`"
                    ));
                }
                Error::Refused(preflight::refusal(&problems))
            })?;
            Ok(Loaded {
                plan: rb.plan.clone(),
                runbook: Some(rb),
            })
        }
        None => Ok(Loaded {
            plan: load_plan(source)?,
            runbook: None,
        }),
    }
}

pub(super) fn load_plan(source: &PlanSource) -> Result<Plan> {
    match &source.plan {
        None => Ok(sample::plan()),
        Some(file) => {
            let file = &absolute(file);
            let text =
                crate::limits::read_text_limited(file, crate::limits::MAX_PLAN_BYTES, "plan files")
                    .map_err(|e| {
                        Error::Usage(format!("{}: cannot read the plan: {e}", file.display()))
                    })?;
            Plan::from_json(file, &text)
        }
    }
}

/// `run`: the root lock first; then, under it, whether the journal is new, the plan (built
/// from a tree no other process is changing), and the engine. A refusal by the lock changes
/// nothing. A refusal before the first record of a journal that was new removes the journal
/// folder — under the lock again, and only if it still holds no record.
pub(super) fn run_locked(
    target: &Target,
    opts: Options,
    until: Option<&str>,
    load: impl FnOnce() -> Result<Loaded>,
) -> Result<(Loaded, engine::Finish)> {
    let locked = engine::Locked::acquire(&target.root, target.journal.as_deref())?;
    // Only a folder this run created is removed after a refusal (`--journal` may name one
    // that holds other things).
    let was_empty = locked.journal_is_empty() && locked.created();
    let dir = locked.dir().to_path_buf();
    let result = Engine::open_locked(locked, opts).and_then(|mut engine| {
        // An open or unfinalized run comes first: the tree is half upgraded, and the
        // plan's checks (the installed version first) would only mislead.
        engine.refuse_if_open()?;
        let l = load()?;
        let finish = engine.run_until(l.plan.clone(), until)?;
        Ok((l, finish))
    });
    if let (Err(Error::Refused(_) | Error::Usage(_)), true) = (&result, was_empty) {
        // Refused before the first record: leave no trace, not even the journal folder.
        if let Ok(again) = engine::Locked::acquire(&target.root, Some(&dir)) {
            if again.journal_is_empty() {
                again.remove_empty_journal();
            }
        }
    }
    result
}

/// `opts` with SIGINT and SIGTERM (Ctrl+C, Ctrl+Break, the console closing) routed to the
/// engine, which stops at its next durable point; only for the commands that run the
/// engine, since nothing else reads the request.
pub(super) fn watched(opts: Options) -> Options {
    if let Err(e) = crate::platform::watch_stop_requests(&opts.stop) {
        tracing::warn!("signals are not watched: {e}");
    }
    opts
}

pub(super) fn journal_dir(root: &Path, target: &Target) -> PathBuf {
    target
        .journal
        .clone()
        .unwrap_or_else(|| engine::default_journal_dir(root))
}

/// A vendor-named subcommand: done inside the open run when that run's plan has the job's
/// steps (`tool_in_open_run`); otherwise its own plan (`plan`: `Err` lists every refusal,
/// nothing changed), printed and checked or run.
pub(super) fn vendor_tool(
    target: &Target,
    tool: &ToolArgs,
    job: runbook::tools::Job,
    opts: Options,
    plan: impl FnOnce() -> std::result::Result<Plan, Vec<String>>,
) -> Result<()> {
    if tool_in_open_run(target, job, tool.plan_only, &opts)? {
        return Ok(());
    }
    let plan = plan().map_err(|p| Error::Refused(preflight::refusal(&p)))?;
    tool_run(target, tool, plan, opts)
}

/// A vendor-tool subcommand: print and check its plan, or run it through the engine.
fn tool_run(target: &Target, tool: &ToolArgs, plan: Plan, opts: Options) -> Result<()> {
    if tool.plan_only {
        return print_plan(target, &plan, None, false, opts.cert_password.as_ref());
    }
    Engine::open(&target.root, target.journal.as_deref(), watched(opts))?.run(plan)
}

/// A vendor-named subcommand on an installation whose latest run is open (paused,
/// interrupted, failed) or not finalized. When that run's plan has steps doing the job
/// (`tools::Job::steps_in`), the job is done there, as `resume --until` its last guide step
/// would (that plan was computed when the run started: the arguments given here are not
/// used), or found already done; otherwise it is refused, naming the commands that do it.
/// `Ok(false)`: no such run, the subcommand runs as a plan of its own.
fn tool_in_open_run(
    target: &Target,
    job: runbook::tools::Job,
    plan_only: bool,
    opts: &Options,
) -> Result<bool> {
    let root = engine::canonical_root(&target.root)?;
    let dir = journal_dir(&root, target);
    if !dir.join(crate::journal::log::LOG_FILE).exists()
        && !dir.join(crate::journal::STORE_DIR).exists()
    {
        return Ok(false);
    }
    let quiet = opts.quiet;
    let opts = if plan_only {
        opts.clone()
    } else {
        watched(opts.clone())
    };
    let mut engine = Engine::open(&root, target.journal.as_deref(), opts)?;
    let Some(run) = engine.latest()? else {
        return Ok(false);
    };
    if matches!(
        run.status,
        state::RunStatus::RolledBack | state::RunStatus::Finalized
    ) {
        return Ok(false);
    }
    let name = job.name();
    let plan = &run.started.plan;
    let ks = job.steps_in(plan);
    let seed = |k: usize| plan.steps[k].seed.clone().unwrap_or_else(|| "-".into());
    let described = {
        let mut seeds: Vec<String> = ks.iter().map(|&k| seed(k)).collect();
        seeds.dedup();
        match (ks.first(), ks.last()) {
            (Some(&a), Some(&b)) => format!(
                "steps {}-{} (guide {})",
                plan.steps[a].id,
                plan.steps[b].id,
                seeds.join(", ")
            ),
            _ => String::new(),
        }
    };
    let done = |k: usize| run.step(plan.steps[k].id).is_some_and(|s| s.done.is_some());
    let resume = engine.command("resume");
    if ks.is_empty() || run.rollback_started() {
        let state = engine
            .refuse_if_open()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(Error::Refused(format!(
            "`{name}` is not part of the latest run and cannot start a run of its own now: {state}\nTo follow the guide step by step inside one reversible run: `usercube-upgrade run --mode MODE ... --until GUIDE-STEP`, then the vendor-named subcommands or `resume --until GUIDE-STEP` for each next step. Nothing was changed."
        )));
    }
    if ks.iter().all(|&k| done(k)) {
        println!(
            "{name}: already done in run {} ({described}); nothing to do. `{}` shows where the run stands.",
            run.run_hex(),
            engine.command("status")
        );
        return Ok(true);
    }
    let last = *ks.last().expect("not empty");
    // A range ("5.1-5.2") ends with its last guide step.
    let until = seed(last)
        .rsplit('-')
        .next()
        .unwrap_or_default()
        .to_string();
    if let Some(k) = (0..last).find(|k| !done(*k) && !ks.contains(k)) {
        return Err(Error::Refused(format!(
            "`{name}` is {described} of the open run {}, and step {} (guide step {}) before it is not done yet: `{resume} --until {until}` does them in the guide's order (or `--until` an earlier guide step first). Nothing was changed.",
            run.run_hex(),
            plan.steps[k].id,
            seed(k)
        )));
    }
    if plan_only {
        println!(
            "{name}: would go on with the open run {} through {described}, as planned when it started (the same as `{resume} --until {until}`); nothing was changed",
            run.run_hex()
        );
        return Ok(true);
    }
    if !quiet {
        println!(
            "{name}: inside the open run {}: {described}, as planned when it started (the arguments given here are not used); the same as `{resume} --until {until}`",
            run.run_hex()
        );
    }
    engine.resume_until(Some(&until)).map(|_| true)
}

/// `journal export`: the audit of every run, or of the one `run` names (`last`, an id or a
/// prefix naming one run only). Where no upgrade has run (no journal), an audit with no runs
/// and a note on stderr, creating nothing; `--run` there is refused.
pub(super) fn export(target: &Target, opts: Options, run: Option<&str>) -> Result<()> {
    let root = engine::canonical_root(&target.root)?;
    let dir = journal_dir(&root, target);
    let quiet = opts.quiet;
    let mut audit = if dir.join(crate::journal::log::LOG_FILE).exists()
        || dir.join(crate::journal::STORE_DIR).exists()
    {
        Engine::open(&root, target.journal.as_deref(), opts)?.audit()?
    } else {
        if let Some(id) = run {
            return Err(Error::Refused(format!(
                "--run {id}: no upgrade has run on this installation (no journal at {}); nothing to export",
                dir.display()
            )));
        }
        if !quiet {
            eprintln!(
                "no upgrade has run on this installation (no journal at {}): the audit has no runs",
                dir.display()
            );
        }
        engine::audit::Audit {
            records: 0,
            last_hash: String::new(),
            runs: Vec::new(),
        }
    };
    if let Some(id) = run {
        let keep = select_run(&audit, id)?;
        audit.runs = audit.runs.into_iter().skip(keep).take(1).collect();
    }
    let mut text = crate::secrets::to_public_json(&audit);
    text.push('\n');
    crate::out::print(&text)
}

/// The index of the run `--run` names among the audit's: `last`, a run id, or a prefix of
/// one naming that run only.
fn select_run(audit: &engine::audit::Audit, id: &str) -> Result<usize> {
    let ids = || {
        audit
            .runs
            .iter()
            .map(|r| r.run_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if audit.runs.is_empty() {
        return Err(Error::Refused(format!(
            "--run {id}: the journal has no run; nothing to export"
        )));
    }
    if id == "last" {
        return Ok(audit.runs.len() - 1);
    }
    let prefix = id.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!(
            "--run {id:?}: not a run id (hexadecimal, as `status` prints it) nor `last`"
        )));
    }
    let found: Vec<usize> = (0..audit.runs.len())
        .filter(|&k| audit.runs[k].run_id.starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [k] => Ok(*k),
        [] => Err(Error::Refused(format!(
            "--run {id}: no run of the journal has this id; its runs: {}",
            ids()
        ))),
        many => Err(Error::Refused(format!(
            "--run {id}: ambiguous, {} runs start with it: {}; give more of the id",
            many.len(),
            many.iter()
                .map(|&k| audit.runs[k].run_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `journal salvage`: reads the log and the store as they are (under the root lock) and
/// writes what verifies.
pub(super) fn salvage(target: &Target, output: &Path) -> Result<()> {
    let root = engine::canonical_root(&target.root)?;
    let dir = journal_dir(&root, target);
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{}: no journal folder",
            dir.display()
        )));
    }
    let _lock = RootLock::acquire(&dir)?;
    let found = crate::journal::salvage(&dir);
    let report = audit::salvage(&dir, &found);
    let text = crate::secrets::to_public_json(&report);
    crate::durable_fs::atomic_write(output, text.as_bytes(), None).map_err(|source| Error::Io {
        what: "writing",
        path: output.to_path_buf(),
        source,
    })?;
    println!(
        "{} records still verify ({} chained to their predecessor); written to {}",
        report.records.len(),
        report.records.iter().filter(|r| r.chained).count(),
        output.display()
    );
    for run in &report.runs {
        let ids = |v: &[audit::SalvagedStep]| {
            v.iter()
                .map(|s| s.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "run {} ({}): steps known done: [{}]; undone: [{}]{}",
            run.run_id,
            run.title.as_deref().unwrap_or("plan unreadable"),
            ids(&run.steps_done),
            ids(&run.steps_undone),
            run.ended
                .map(|e| format!("; ended: {e}"))
                .unwrap_or_default()
        );
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    Ok(())
}

pub(super) fn demo(
    dir: Option<PathBuf>,
    no_run: bool,
    size: runbook::demo::DemoSize,
    encrypted_files: usize,
    quiet: bool,
) -> Result<()> {
    let root = match dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("usercube-demo-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating",
                path: std::env::temp_dir(),
                source,
            })?
            .keep(),
    };
    if root.exists()
        && std::fs::read_dir(&root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(Error::Usage(format!(
            "{}: not empty; give an empty or new folder",
            root.display()
        )));
    }
    runbook::demo::create(&root, size)
        .and_then(|()| runbook::demo::add_encrypted_files(&root, encrypted_files))
        .map_err(|source| Error::Io {
            what: "writing the demo installation into",
            path: root.clone(),
            source,
        })?;
    let root = engine::canonical_root(&root)?;
    println!(
        "demo Usercube {} installation written to {}",
        runbook::demo::OLD_VERSION,
        root.display()
    );
    println!(
        "demo database: {} ({} rows in each of {})",
        root.join(runbook::demo::DATABASE).display(),
        size.rows,
        runbook::plans::DELETE_TABLES.join(", ")
    );
    let run = runbook::demo::command(&root, "run");
    let line = crate::platform::command_line(&run);
    if no_run {
        let plan = runbook::demo::command(&root, "plan");
        println!(
            "see the plan with:\n  {}",
            crate::platform::command_line(&plan)
        );
        println!("run it with:\n  {line}");
        return Ok(());
    }
    println!("running: {line}");
    // The printed command itself, through the definitions and dispatch a pasted one meets:
    // what is shown and what runs cannot drift apart.
    let mut args = Args::try_parse_from(&run)
        .map_err(|e| Error::Usage(format!("the demo's command does not parse ({line}): {e}")))?;
    args.quiet |= quiet;
    super::run(args)?;
    println!("\nnext:");
    for verb in [
        &["status"][..],
        &["journal", "export", "--json"],
        &["rollback"],
        &["finalize"],
    ] {
        println!("  {}", engine::command_line(verb, &root, None));
    }
    Ok(())
}

/// `journal verify`'s deep part: the artifacts a rollback of the latest run needs; exit 3
/// when one is missing or damaged.
pub(super) fn verify_artifacts(e: &Engine) -> Result<()> {
    match e.verify_artifacts()? {
        None => println!("no run a rollback could apply to: no artifacts to check"),
        Some((run, steps, problems)) if problems.is_empty() => println!(
            "run {run}: what a rollback needs is intact ({steps} steps checked: trash copies, kept contents, row before-images, database backups, kept originals)"
        ),
        Some((run, _, problems)) => {
            return Err(Error::Corrupt(format!(
                "run {run}: what a rollback needs is missing or damaged:\n  - {}\nA rollback would refuse, changing nothing.",
                problems.join("\n  - ")
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;

    fn sample_root() -> (tempfile::TempDir, Target) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        sample::create_installation(&root, sample::SampleSize::default()).unwrap();
        let target = Target {
            root,
            journal: None,
        };
        (tmp, target)
    }

    fn quiet() -> Options {
        Options {
            quiet: true,
            ..Options::default()
        }
    }

    /// The demo runs the command it prints: the printed line, read back as the shell reads
    /// it, is the very vector the demo parses and runs, also for a root with a space and a
    /// quote; parsed, it is the demo's run (the options and password it has always used).
    #[test]
    fn the_demo_runs_the_command_it_prints() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("John Smith's demo");
        std::fs::create_dir(&root).unwrap();
        let root = engine::canonical_root(&root).unwrap();
        let run = runbook::demo::command(&root, "run");
        let line = crate::platform::command_line(&run);
        let words = crate::platform::split_command_line(&line).unwrap();
        let run: Vec<&str> = run.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(words, run, "{line}");
        assert!(line.starts_with("usercube-upgrade run --root "), "{line}");

        let Command::Run {
            target, mut source, ..
        } = Args::try_parse_from(&words).unwrap().command
        else {
            panic!("not a run: {line}")
        };
        assert_eq!(target.root, root);
        let o = source.runbook.options(&root).unwrap();
        assert_eq!(o.mode, runbook::Mode::Integrated);
        assert_eq!(o.runtime_zip, root.join(runbook::demo::RUNTIME_ZIP));
        let runtime = root.join("Runtime").display().to_string();
        assert_eq!(o.runtime_path, Some(runtime));
        assert!(o.skip_database_upgrade);
        assert_eq!(o.cert.file, Some(root.join(runbook::demo::DEMO_CERT)));
        let password = source.runbook.cert.password.take(true).unwrap().unwrap();
        assert_eq!(password.expose(), runbook::demo::DEMO_CERT_PASSWORD);

        let plan = runbook::demo::command(&root, "plan");
        let plan = Args::try_parse_from(&plan).unwrap().command;
        assert!(matches!(plan, Command::Plan { .. }), "{plan:?}");
    }

    /// A second process starting while `run` builds its plan is refused by the lock (the
    /// plan is built under it), naming this process.
    #[test]
    fn run_builds_its_plan_under_the_lock() {
        let (_tmp, target) = sample_root();
        let l = run_locked(&target, quiet(), None, || {
            match engine::Locked::acquire(&target.root, None) {
                Err(Error::Refused(msg)) => {
                    assert!(msg.contains(&std::process::id().to_string()), "{msg}")
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("another process could lock the root while the plan was built"),
            }
            Ok(Loaded {
                plan: sample::plan(),
                runbook: None,
            })
        })
        .unwrap()
        .0;
        assert_eq!(l.plan.steps.len(), sample::plan().steps.len());
    }

    /// A refused `run` removes the journal folder only when, under the lock, it holds no
    /// record: a journal with records (another run's) is never deleted.
    #[test]
    fn a_refused_run_never_deletes_a_journal_with_records() {
        let (_tmp, target) = sample_root();
        let refused = || -> Result<Loaded> { Err(Error::Refused("plan refused".into())) };
        // New journal, refused: no trace.
        assert!(run_locked(&target, quiet(), None, refused).is_err());
        let dir = engine::default_journal_dir(&dunce::canonicalize(&target.root).unwrap());
        assert!(!dir.exists());
        // A journal with records (a run done), then a refused run: kept, records intact.
        let root = target.root.clone();
        Engine::open(&root, None, quiet())
            .unwrap()
            .run(sample::plan())
            .unwrap();
        let records = crate::journal::Journal::open(&dir).unwrap().records().len();
        assert!(run_locked(&target, quiet(), None, refused).is_err());
        assert_eq!(
            crate::journal::Journal::open(&dir).unwrap().records().len(),
            records
        );
    }
}
