//! Checks a whole plan before anything changes: each step against the state the earlier
//! steps will leave (a `PlanView`), paths kept out of the journal folder, and free space.

use std::path::Path;

use crate::crypto::CertPassword;
use crate::durable_fs;
use crate::plan::Plan;
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
    let mut view = PlanView::new(root);
    let mut needed = 0u64;
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
        needed += step.bytes_needed(&view);
        if let Err(e) = step.check(&mut view) {
            problems.push(format!("step {} ({}): {e}", s.id, step.describe(root)));
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

pub fn refusal(problems: &[String]) -> String {
    let mut s = String::from("refused by preflight checks; nothing was changed:");
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(p);
    }
    s
}
