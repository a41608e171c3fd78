//! Printing for people (and `--json` for machines): the plan with its preflight, the
//! runbook's notes, warnings and remaining manual items, the journal's status.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::args::Target;
use super::commands::journal_dir;
use crate::crypto::CertPassword;
use crate::engine::{self, audit, preflight, state, RootLock};
use crate::plan::Plan;
use crate::{runbook, Error, Result};

pub(super) fn print_plan(
    target: &Target,
    plan: &Plan,
    rb: Option<&runbook::Runbook>,
    json: bool,
    cert_password: Option<&CertPassword>,
) -> Result<()> {
    let root = engine::canonical_root(&target.root)?;
    let problems = preflight::check(&root, &journal_dir(&root, target), plan, cert_password);
    if let (Some(rb), false) = (rb, json) {
        print_runbook(&root, rb);
    } else if let (Some(rb), true) = (rb, json) {
        #[derive(Serialize)]
        struct RunbookOut<'a> {
            runbook: &'a runbook::Runbook,
            sha256: String,
            problems: &'a [String],
        }
        let out = RunbookOut {
            runbook: rb,
            sha256: hex::encode(plan.hash()),
            problems: &problems,
        };
        println!("{}", crate::secrets::to_public_json(&out));
    } else if json {
        #[derive(Serialize)]
        struct PlanOut<'a> {
            plan: &'a Plan,
            sha256: String,
            problems: &'a [String],
        }
        let out = PlanOut {
            plan,
            sha256: hex::encode(plan.hash()),
            problems: &problems,
        };
        println!("{}", crate::secrets::to_public_json(&out));
    } else {
        println!(
            "plan: {} ({} steps, sha256 {})",
            plan.title,
            plan.steps.len(),
            hex::encode(plan.hash())
        );
        for s in &plan.steps {
            let step = crate::steps::step_for(&s.action, &root, None);
            let seed = s
                .seed
                .as_deref()
                .map(|x| format!("guide {x}"))
                .unwrap_or_default();
            println!("  {:>3}. {:<10} {}", s.id, seed, step.describe(&root));
            if let Some(note) = &s.note {
                println!("       {:<10} note: {note}", "");
            }
        }
    }
    if problems.is_empty() {
        if !json {
            println!("preflight: all checks passed; nothing was changed");
        }
        Ok(())
    } else {
        Err(Error::Refused(preflight::refusal(&problems)))
    }
}

pub(super) fn print_runbook(root: &Path, rb: &runbook::Runbook) {
    let plan = &rb.plan;
    println!(
        "plan: {} ({} engine steps, sha256 {})",
        plan.title,
        plan.steps.len(),
        hex::encode(plan.hash())
    );
    println!("  guide     what          action");
    for item in &rb.items {
        match &item.kind {
            runbook::ItemKind::Step(id) => {
                let s = &plan.steps[(*id - 1) as usize];
                let step = crate::steps::step_for(&s.action, root, None);
                println!("  {:<9} step {:<8} {}", item.seed, id, step.describe(root));
                if let Some(note) = &s.note {
                    println!("  {:<9} {:<13} note: {note}", "", "");
                }
            }
            kind => {
                let label = match kind {
                    runbook::ItemKind::Checked => "checked",
                    runbook::ItemKind::Manual => "by hand",
                    runbook::ItemKind::Command => "command",
                    runbook::ItemKind::NotAvailable => "NOT AVAILABLE",
                    runbook::ItemKind::NotNeeded => "not needed",
                    runbook::ItemKind::Skipped => "SKIPPED",
                    runbook::ItemKind::Step(_) => unreachable!(),
                };
                println!("  {:<9} {:<13} {}", item.seed, label, item.text);
            }
        }
    }
    println!("Temp -> Work move table:");
    for m in &rb.moves {
        println!("  - {m}");
    }
    print_warnings(rb);
}

pub(super) fn print_warnings(rb: &runbook::Runbook) {
    if !rb.warnings.is_empty() {
        println!("warnings:");
        for w in &rb.warnings {
            println!("  - {w}");
        }
    }
}

pub(super) fn print_remaining(rb: &runbook::Runbook) {
    println!("still to do outside this run (see `plan`):");
    // What was left out on request comes first: the installation is not upgraded
    // until it is done.
    let skipped = rb
        .items
        .iter()
        .filter(|i| i.kind == runbook::ItemKind::Skipped);
    let others = rb
        .items
        .iter()
        .filter(|i| i.kind != runbook::ItemKind::Skipped);
    for item in skipped.chain(others) {
        let label = match item.kind {
            runbook::ItemKind::Skipped => "SKIPPED, do it now",
            runbook::ItemKind::Manual => "by hand",
            runbook::ItemKind::NotAvailable => "NOT AVAILABLE",
            _ => continue,
        };
        println!("  {:<9} {label}: {}", item.seed, item.text);
    }
}

#[derive(Serialize)]
pub(super) struct StatusOut {
    root: PathBuf,
    journal: PathBuf,
    state: String,
    run_id: Option<String>,
    plan: Option<String>,
    steps_total: usize,
    steps_done: usize,
    steps_undone: usize,
    failure: Option<String>,
    /// Why an open run stopped: a signal, or `--until` (paused after a guide step).
    stopped: Option<String>,
    /// The first step not done yet, with its guide step, while the run is open.
    next_step: Option<String>,
    records: u64,
    next: String,
    /// ISO 8601 (UTC) times of the latest run's start, end (committed or failed), rollback
    /// and finalize, and who started it (operator on host); null when not (yet) recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rolled_back_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finalized_at: Option<String>,
    /// What a rollback or recovery of the latest run moved out of its way (written after the
    /// run, never deleted): each path moved, relative to the root, and where it is now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kept_aside: Vec<KeptAsideOut>,
}

#[derive(Serialize)]
pub(super) struct KeptAsideOut {
    from: PathBuf,
    to: PathBuf,
    files: u64,
    bytes: u64,
}

pub(super) fn print_status(target: &Target, json: bool) -> Result<()> {
    let root = engine::canonical_root(&target.root)?;
    let dir = journal_dir(&root, target);
    let mut out = StatusOut {
        root: root.clone(),
        journal: dir.clone(),
        state: "none".into(),
        run_id: None,
        plan: None,
        steps_total: 0,
        steps_done: 0,
        steps_undone: 0,
        failure: None,
        stopped: None,
        next_step: None,
        records: 0,
        next: "no upgrade has run on this installation".into(),
        started_at: None,
        started_by: None,
        ended_at: None,
        rolled_back_at: None,
        finalized_at: None,
        kept_aside: Vec::new(),
    };
    if dir.is_dir() {
        // An untrusted journal folder is refused, not reported as busy.
        engine::check_journal_folder(&dir)?;
        match RootLock::acquire(&dir) {
            Err(Error::Refused(msg)) => {
                out.state = "busy".into();
                out.next = msg;
            }
            Err(e) => return Err(e),
            Ok(lock) => {
                if !dir.join(crate::journal::STORE_DIR).exists()
                    && !dir.join(crate::journal::log::LOG_FILE).exists()
                {
                    drop(lock);
                    return print_status_out(&out, json);
                }
                let journal = crate::journal::Journal::open(&dir)?;
                out.records = journal.records().len() as u64;
                if let Some(run) = state::latest(journal.records())? {
                    out.state = serde_json::to_value(run.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    out.run_id = Some(run.run_hex());
                    out.plan = Some(run.started.plan.title.clone());
                    out.steps_total = run.started.plan.steps.len();
                    out.steps_done = run.done_count();
                    out.steps_undone = run.steps.values().filter(|s| s.undone.is_some()).count();
                    out.failure = run.failure.clone();
                    let at = |seq: Option<u64>| {
                        seq.and_then(|q| run.times.get(&q))
                            .map(|ms| audit::iso8601(*ms))
                    };
                    out.started_at = at(Some(run.started_seq));
                    out.started_by = run
                        .started
                        .context
                        .as_ref()
                        .map(|c| format!("{} on {}", c.operator, c.host));
                    out.ended_at = at(run.ended_seq());
                    out.rolled_back_at = at(run.rolled_back.as_ref().map(|r| r.0));
                    out.finalized_at = at(run.finalized.as_ref().map(|r| r.0));
                    out.stopped = run.stopped.as_ref().map(ToString::to_string);
                    out.kept_aside = run
                        .kept_aside
                        .iter()
                        .map(|(_, _, k)| KeptAsideOut {
                            from: k.from.clone(),
                            to: k.to.clone(),
                            files: k.files,
                            bytes: k.bytes,
                        })
                        .collect();
                    if run.status.is_open() && !run.rollback_started() {
                        out.next_step = run
                            .started
                            .plan
                            .steps
                            .iter()
                            .find(|s| run.step(s.id).is_none_or(|x| x.done.is_none()))
                            .map(|s| {
                                format!(
                                    "step {} (guide step {}): {}",
                                    s.id,
                                    s.seed.as_deref().unwrap_or("-"),
                                    crate::steps::step_for(&s.action, &root, None).describe(&root)
                                )
                            });
                    }
                    let rollback_cmd = || {
                        let journal =
                            (dir != engine::default_journal_dir(&root)).then_some(dir.as_path());
                        engine::command_line(&["rollback"], &root, journal)
                    };
                    out.next = match (run.rollback_half_done(), run.status) {
                        // Whatever the forward part reached (a committed run's too: it is no
                        // longer "upgraded"; a failed one's: resume refuses).
                        (Some(half), _) => format!("{half}; `{}` finishes it", rollback_cmd()),
                        (None, state::RunStatus::Paused) => {
                            "paused as asked (--until): check the installation, then `resume` to go on (`resume --until GUIDE-STEP` stops again) or `rollback` to undo it".into()
                        }
                        (None, state::RunStatus::Interrupted) => {
                            "the run was interrupted: `resume` to finish it or `rollback` to undo it".into()
                        }
                        (None, state::RunStatus::Failed) => "the run failed: `resume` after fixing the cause, or `rollback`".into(),
                        (None, state::RunStatus::Committed) => {
                            "upgraded: check it, then `finalize` (or `rollback` to go back)".into()
                        }
                        (None, state::RunStatus::RolledBack) => "rolled back: the installation is as before the run".into(),
                        (None, state::RunStatus::Finalized) => "finalized: the upgrade is complete".into(),
                    };
                }
                drop(lock);
            }
        }
    }
    print_status_out(&out, json)
}

pub(super) fn print_status_out(out: &StatusOut, json: bool) -> Result<()> {
    if json {
        let mut text = crate::secrets::to_public_json(&out);
        text.push('\n');
        crate::out::print(&text)?;
    } else {
        println!("installation: {}", out.root.display());
        println!(
            "journal:      {} ({} records)",
            out.journal.display(),
            out.records
        );
        if let Some(id) = &out.run_id {
            println!("run:          {id}  {}", out.plan.as_deref().unwrap_or(""));
            println!(
                "state:        {}  ({} of {} steps done, {} undone)",
                out.state, out.steps_done, out.steps_total, out.steps_undone
            );
        } else {
            println!("state:        {}", out.state);
        }
        if let Some(at) = &out.started_at {
            let by = out
                .started_by
                .as_ref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default();
            println!("started:      {at}{by}");
        }
        for (label, at) in [
            ("ended:       ", &out.ended_at),
            ("rolled back: ", &out.rolled_back_at),
            ("finalized:   ", &out.finalized_at),
        ] {
            if let Some(at) = at {
                println!("{label} {at}");
            }
        }
        if let Some(f) = &out.failure {
            println!("failure:      {f}");
        }
        if let Some(s) = &out.stopped {
            println!("stopped:      {s}");
        }
        if let Some(s) = &out.next_step {
            println!("next step:    {s}");
        }
        for k in &out.kept_aside {
            println!(
                "kept aside:   {} -> {} ({} files, {} bytes; written after the run, not deleted)",
                k.from.display(),
                k.to.display(),
                k.files,
                k.bytes
            );
        }
        println!("next:         {}", out.next);
    }
    Ok(())
}

/// `rollback --dry-run`: the rollback's plan, for a person or (`--json`) a script; exit 0
/// when the rollback would go on, 2 (refused) when it would not, with the plan printed
/// either way.
pub(super) fn print_rollback_plan(plan: &engine::RollbackPlan, json: bool) -> Result<()> {
    let text = if json {
        crate::secrets::to_public_json(plan)
    } else {
        plan.text()
    };
    crate::out::print(&format!("{text}\n"))?;
    let reasons = plan.refusal_reasons();
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "the rollback would be refused (nothing was changed):\n  - {}",
        reasons.join("\n  - ")
    )))
}
