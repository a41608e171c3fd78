//! The vendor's database schema upgrade (`identitymanager-Upgrade-DatabaseVersion`, or any
//! command the plan gives). It cannot be undone row by row: a `database-backup` step earlier in
//! the plan restores the database when the run is rolled back, and this step's undo only
//! records that. When the command cannot run here (absent, or a Windows executable on another
//! system) the step is skipped with a warning in the plan and in the outcome, and the run goes
//! on. The version recorded in the database before and after, and the command's output, are
//! kept in the journal.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::db_delete::{backup_marker, connect_check, refused};
use super::{Exists, Intent, Outcome, PlanView, Probe, Result, Step, StepContext};
use crate::db::{self, Target};

/// Most output bytes kept in the journal.
const MAX_OUTPUT: usize = 1 << 20;

pub struct DatabaseVersionUpgrade {
    pub connection: String,
    /// Program and arguments; `${VAR}` references are taken from the environment.
    pub command: Vec<String>,
    pub root: PathBuf,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Detail {
    connection: String,
    /// Program resolved at intent time; None: skipped.
    program: Option<PathBuf>,
    skip_reason: Option<String>,
    version_before: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
struct Output {
    status: Option<i32>,
    output: String,
    version_after: Option<String>,
}

fn expand(arg: &str) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push_str(&std::env::var(&after[..j]).unwrap_or_default());
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl DatabaseVersionUpgrade {
    fn target(&self) -> Result<Target> {
        db::target(&self.connection, &self.root).map_err(refused)
    }

    /// The program to run, or why the step is skipped.
    fn program(&self) -> std::result::Result<PathBuf, String> {
        let Some(p) = self.command.first() else {
            return Err("no database upgrade command given".into());
        };
        let p = Path::new(p);
        let candidates: Vec<PathBuf> = if p.components().count() > 1 || p.is_absolute() {
            vec![self.root.join(p)]
        } else {
            std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).map(|d| d.join(p)).collect())
                .unwrap_or_default()
        };
        for c in candidates {
            if c.extension().is_some_and(|e| e.eq_ignore_ascii_case("exe"))
                && !crate::platform::runs_windows_executables()
            {
                return Err(format!("{} is a Windows executable", c.display()));
            }
            if c.is_file() {
                return Ok(c);
            }
        }
        Err(format!("{} not found", p.display()))
    }

    fn detail(intent: &Intent) -> Result<Detail> {
        serde_json::from_str(&intent.detail)
            .map_err(|e| refused(format!("the recorded intent does not parse: {e}")))
    }
}

impl Step for DatabaseVersionUpgrade {
    fn describe(&self, _root: &Path) -> String {
        match self.program() {
            Ok(_) => format!(
                "upgrade the database schema of {} with {}",
                db::redact(&self.connection),
                self.command.join(" ")
            ),
            Err(why) => format!(
                "upgrade the database schema of {}: WARNING: skipped ({why})",
                db::redact(&self.connection)
            ),
        }
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        connect_check(&self.connection, &self.root)?;
        if self.program().is_ok()
            && view.exists(&backup_marker(&self.root, &self.connection)) != Exists::Unknown
        {
            return Err("the schema upgrade cannot be undone row by row: put a database-backup step of the same database before it".into());
        }
        Ok(())
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let t = self.target()?;
        let version_before = db::with_session(&t, |d| d.version()).map_err(refused)?;
        let (program, skip_reason) = match self.program() {
            Ok(p) => (Some(p), None),
            Err(why) => (None, Some(why)),
        };
        let d = Detail {
            connection: db::redact(&self.connection),
            program,
            skip_reason,
            version_before,
        };
        Ok(Intent {
            touches: Vec::new(),
            detail: serde_json::to_string(&d).expect("detail serializes"),
        })
    }

    fn apply(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome> {
        let d = Self::detail(intent)?;
        let Some(program) = d.program else {
            let why = d.skip_reason.unwrap_or_default();
            tracing::warn!("database version upgrade skipped: {why}");
            return Ok(Outcome {
                after: Vec::new(),
                notes: vec![format!("WARNING: skipped: {why}")],
            });
        };
        let out = Command::new(&program)
            .args(self.command[1..].iter().map(|a| expand(a)))
            .current_dir(&self.root)
            .output()
            .map_err(|e| refused(format!("running {}: {e}", program.display())))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if text.len() > MAX_OUTPUT {
            let cut = (0..=MAX_OUTPUT)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push_str("\n[output truncated]");
        }
        let t = self.target()?;
        let version_after = db::with_session(&t, |db| db.version()).map_err(refused)?;
        let o = Output {
            status: out.status.code(),
            output: text.clone(),
            version_after: version_after.clone(),
        };
        ctx.journal
            .save(serde_json::to_vec(&o).expect("output serializes"))?;
        if !out.status.success() {
            return Err(refused(format!(
                "{} exited with {:?}: {}",
                program.display(),
                out.status.code(),
                text.lines().last().unwrap_or("")
            )));
        }
        Ok(Outcome {
            after: Vec::new(),
            notes: vec![
                format!(
                    "database version {} -> {}",
                    d.version_before.as_deref().unwrap_or("not recorded"),
                    version_after.as_deref().unwrap_or("not recorded")
                ),
                format!("output: {}", text.lines().last().unwrap_or("")),
            ],
        })
    }

    fn settle(&self, _ctx: &StepContext, _intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        Ok(())
    }

    fn probe(&self, ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<Probe> {
        let d = Self::detail(intent)?;
        if d.program.is_none() {
            return Ok(Probe::NotApplied);
        }
        let mut ran = false;
        ctx.journal.saved(&mut |_| {
            ran = true;
            Ok(())
        })?;
        let t = self.target()?;
        let now = db::with_session(&t, |db| db.version()).map_err(refused)?;
        // The schema changed when the recorded version did; without a recorded version, the
        // saved output says the command ran to its end.
        Ok(if now != d.version_before || (now.is_none() && ran) {
            Probe::Applied
        } else {
            Probe::NotApplied
        })
    }

    fn undo(&self, _ctx: &StepContext, _intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        // Not reversible by itself: the database-backup step's undo (later in the rollback
        // order) restores the database.
        Ok(())
    }
}
