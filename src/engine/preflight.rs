//! Checks a whole plan before anything changes: each step against the state the earlier
//! steps will leave (a `PlanView`), paths kept out of the journal folder, and free space.

use std::path::{Path, PathBuf};

use crate::crypto::CertPassword;
use crate::durable_fs;
use crate::plan::{Plan, StepSpec};
use crate::platform;
use crate::steps::{self, PlanView};

/// Every problem found; empty means the plan may run. `cert_password` opens the PFX of a
/// re-encryption step (checked here, before anything changes).
pub fn check(
    root: &Path,
    journal_dir: &Path,
    plan: &Plan,
    cert_password: Option<&CertPassword>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut view = PlanView::new(root).with_journal(journal_dir);
    let mut needed = 0u64;
    let mut step_problems = Vec::new();
    // Folders (as on disk now) in which the plan creates, replaces or removes entries,
    // with the first step that does.
    let mut writable: Vec<(std::path::PathBuf, u32)> = Vec::new();
    for s in &plan.steps {
        let step = steps::step_for(&s.action, root, cert_password);
        for p in s.action.paths() {
            if platform::path_starts_with(&root.join(p), journal_dir) {
                problems.push(format!(
                    "step {}: {} is inside the journal folder",
                    s.id,
                    p.display()
                ));
            }
        }
        for p in s.action.file_paths() {
            if let Some(why) = platform::refused_path(p) {
                problems.push(format!("step {}: {}: {why}", s.id, p.display()));
            }
        }
        // Before the step's check moves the view on: where its changes land now.
        for dir in folders_changed(root, &s.action, &view) {
            if !writable.iter().any(|(d, _)| *d == dir) {
                writable.push((dir, s.id));
            }
        }
        needed += step.bytes_needed(&view);
        if let Err(e) = step.check(&mut view) {
            step_problems.push((s.id, step.describe(root), e));
        }
    }
    // One line per distinct problem: an unreachable database fails every database step's
    // check with the same message.
    let mut reported: Vec<(Vec<u32>, String, String)> = Vec::new();
    for (id, what, e) in step_problems {
        match reported.iter_mut().find(|(_, _, seen)| *seen == e) {
            Some((ids, _, _)) => ids.push(id),
            None => reported.push((vec![id], what, e)),
        }
    }
    for (ids, what, e) in reported {
        problems.push(match ids.as_slice() {
            [id] => format!("step {id} ({what}): {e}"),
            _ => format!(
                "steps {} (the first: {what}): {e}",
                ids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    // The first folder this account cannot write is named (one is enough to fix first).
    for (dir, id) in &writable {
        if let Err(e) = durable_fs::probe_writable(dir) {
            problems.push(format!(
                "this account cannot write in {} (step {id} changes it): {e}",
                dir.display()
            ));
            break;
        }
    }
    // The rollback reserve (journal::RESERVE_FILE) is written when the run starts.
    needed += crate::journal::RESERVE_BYTES;
    match durable_fs::free_space(root) {
        Ok(free) if free < needed => problems.push(format!(
            "not enough free space under {}: the plan writes {} bytes, {} are free",
            root.display(),
            needed,
            free
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!(
            "cannot read the free space of {}: {e}",
            root.display()
        )),
    }
    problems
}

/// The refusal message: each problem once, in the order found (the same refusal may be
/// found along two paths, for example the agent settings read for two purposes).
pub fn refusal(problems: &[String]) -> String {
    let mut s = String::from("refused by preflight checks; nothing was changed:");
    let mut seen = std::collections::HashSet::new();
    for p in problems.iter().filter(|p| seen.insert(p.as_str())) {
        s.push_str("\n  - ");
        s.push_str(p);
    }
    s
}

/// The existing folders in which `action` creates, replaces or removes entries, as they are
/// on disk now (`view` maps a path earlier steps move to where it is now; folders the plan
/// creates itself are left out: it can write what it made). A copied folder is checked at
/// its source, whose permissions the copy keeps.
fn folders_changed(root: &Path, action: &StepSpec, view: &PlanView) -> Vec<PathBuf> {
    let parent = |p: &Path| root.join(p).parent().map(Path::to_path_buf);
    let mut dirs: Vec<PathBuf> = Vec::new();
    // Already as on disk now (not to be mapped through the view again).
    let mut origins: Vec<PathBuf> = Vec::new();
    match action {
        StepSpec::Rename { from, to } | StepSpec::MoveTree { from, to } => {
            dirs.extend(parent(from));
            dirs.extend(parent(to));
        }
        StepSpec::Copy { to: path, .. }
        | StepSpec::DeleteTree { path }
        | StepSpec::WriteFile { path, .. }
        | StepSpec::MakeDir { path }
        | StepSpec::ExtractZip { dest: path, .. } => dirs.extend(parent(path)),
        StepSpec::DatabaseBackup {
            connection,
            backup_dir,
        } => {
            dirs.push(root.join(backup_dir));
            dirs.extend(sqlite_folder(root, connection));
        }
        StepSpec::DeleteRows { connection, .. }
        | StepSpec::DatabaseVersionUpgrade { connection, .. } => {
            dirs.extend(sqlite_folder(root, connection))
        }
        StepSpec::ReencryptFiles { folders, files, .. } => {
            // Each file is staged beside itself: every folder under the given ones.
            for f in folders {
                if let Some(origin) = view.origin(&root.join(f)) {
                    origins.extend(
                        walkdir::WalkDir::new(origin)
                            .into_iter()
                            .filter_map(|e| e.ok())
                            .filter(|e| e.file_type().is_dir())
                            .map(|e| e.into_path()),
                    );
                }
            }
            dirs.extend(files.iter().filter_map(|f| parent(f)));
        }
        StepSpec::Service { .. } | StepSpec::WindowsService { .. } => {}
    }
    dirs.into_iter()
        .filter_map(|d| view.origin(&d))
        .chain(origins)
        .filter(|d| d.is_dir())
        .collect()
}

/// The folder of an SQLite database (its journal files are written beside it).
fn sqlite_folder(root: &Path, connection: &str) -> Option<PathBuf> {
    let p = connection.strip_prefix("sqlite:")?;
    root.join(p).parent().map(Path::to_path_buf)
}
