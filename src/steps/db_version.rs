//! The vendor's database schema upgrade (`identitymanager-Upgrade-DatabaseVersion`, or any
//! command the plan gives). It cannot be undone row by row: a `database-backup` step earlier in
//! the plan restores the database when the run is rolled back, and this step's undo only
//! records that. The step runs, or the run does not start: a command that cannot run here
//! (not found, or a Windows executable on another system) is refused by preflight, and fails
//! the step if it is gone by the time the step starts. The version recorded in the database
//! before and after, and the command's output, are kept in the journal.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::db_delete::{backup_marker, backup_pointer, connect_check, refused};
use super::{Exists, Intent, Outcome, PlanView, Probe, Result, Step, StepContext};
use crate::db::{self, Target};

/// Saved (durable) just before the tool starts: a kill before its output is saved leaves
/// this marker without an output after it.
const STARTED: &[u8] = b"started";

/// What messages call the command.
const COMMAND: &str = "the database upgrade command";

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
    /// Program resolved at intent time; None: skipped (only in journals of earlier builds,
    /// which skipped a command that could not run).
    program: Option<PathBuf>,
    skip_reason: Option<String>,
    version_before: Option<String>,
}

/// The tool's runs as the saved records show them (the last one decides).
enum Attempts {
    None,
    /// Started; no output saved after it (killed mid-way).
    Unfinished,
    Failed,
    Succeeded,
}

#[derive(Serialize, Deserialize, Debug)]
struct Output {
    status: Option<i32>,
    output: String,
    version_after: Option<String>,
}

/// The tool's runs as the audit (`journal export`) shows them: each saved output, failed
/// runs included, as a command run of the `apply` phase.
pub struct ToolRuns {
    /// The command as printed (secrets masked).
    command: String,
    pub runs: Vec<super::service::CommandRun>,
}

impl ToolRuns {
    /// One saved payload (the `started` marker and anything else is skipped).
    pub fn add(&mut self, payload: &[u8]) {
        if let Ok(o) = serde_json::from_slice::<Output>(payload) {
            self.runs.push(super::service::CommandRun {
                phase: "apply".into(),
                command: self.command.clone(),
                status: o.status,
                success: o.status == Some(0),
                output: o.output,
            });
        }
    }
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

    /// The program to run, or why it cannot run here.
    fn program(&self) -> std::result::Result<PathBuf, String> {
        self.program_where(&|p: &Path| p.is_file())
    }

    /// The program as `is_file` sees the tree (the disk now, or the tree as a plan's
    /// earlier steps will leave it); `Ok` when its presence cannot be known yet.
    fn program_where(
        &self,
        is_file: &dyn Fn(&Path) -> bool,
    ) -> std::result::Result<PathBuf, String> {
        let Some(p) = self.command.first() else {
            return Err("no database upgrade command given".into());
        };
        let p = Path::new(p);
        let on_path = !(p.components().count() > 1 || p.is_absolute());
        let candidates: Vec<PathBuf> = if on_path {
            std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).map(|d| d.join(p)).collect())
                .unwrap_or_default()
        } else {
            vec![self.root.join(p)]
        };
        let Some(found) = candidates.into_iter().find(|c| is_file(c)) else {
            return Err(if on_path {
                format!("{} not found on PATH", p.display())
            } else {
                format!("{} not found", self.root.join(p).display())
            });
        };
        if found
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("exe"))
            && !crate::platform::runs_windows_executables()
        {
            return Err(format!(
                "{} is a Windows executable, which cannot run on this system",
                found.display()
            ));
        }
        Ok(found)
    }

    /// What the saved records say of the tool's runs, by the last one.
    fn attempts(ctx: &StepContext) -> Result<Attempts> {
        let mut last = Attempts::None;
        ctx.journal.saved(&mut |bytes| {
            last = if bytes == STARTED {
                Attempts::Unfinished
            } else {
                match serde_json::from_slice::<Output>(bytes) {
                    Ok(o) if o.status == Some(0) => Attempts::Succeeded,
                    Ok(_) => Attempts::Failed,
                    Err(e) => {
                        return Err(refused(format!("a saved tool output does not parse: {e}")))
                    }
                }
            };
            Ok(())
        })?;
        Ok(last)
    }

    /// Restores the database from the backup the run's database-backup step took.
    fn restore_backup(&self, ctx: &StepContext) -> Result<()> {
        let pointer = backup_pointer(&ctx.trash, &self.connection);
        let file = std::fs::read_to_string(&pointer).map_err(|e| {
            refused(format!(
                "the tool was interrupted earlier and no backup of this run is recorded ({}: {e}); refusing to run it again over a half-upgraded database: `rollback` instead",
                pointer.display()
            ))
        })?;
        let t = self.target()?;
        db::restore(&t, Path::new(&file)).map_err(refused)
    }

    fn detail(intent: &Intent) -> Result<Detail> {
        serde_json::from_str(&intent.detail)
            .map_err(|e| refused(format!("the recorded intent does not parse: {e}")))
    }
}

impl Step for DatabaseVersionUpgrade {
    fn describe(&self, _root: &Path) -> String {
        format!(
            "upgrade the database schema of {} with {}",
            db::redact(&self.connection),
            crate::secrets::mask_command_line(&self.command).join(" ")
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        db::check_command_no_literal_password(COMMAND, &self.command).map_err(|e| e.to_string())?;
        connect_check(&self.connection, &self.root)?;
        // A program an earlier step extracts is there only at run time: "unknown" passes
        // here (the runbook checks the runtime zip for it).
        self.program_where(&|p: &Path| match view.exists(p) {
            Exists::Yes => view.origin(p).is_some_and(|o| o.is_file()),
            Exists::Unknown => true,
            Exists::No => false,
        })
        .map_err(|why| {
            format!("the database schema upgrade cannot run: {why}; give --database-upgrade-command CMD, or --skip-database-upgrade to run the vendor's tool yourself afterwards")
        })?;
        if view.exists(&backup_marker(&self.root, &self.connection)) != Exists::Unknown {
            return Err("the schema upgrade cannot be undone row by row: put a database-backup step of the same database before it".into());
        }
        Ok(())
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        let t = self.target()?;
        let version_before = db::with_session(&t, |d| d.version()).map_err(refused)?;
        // Checked by preflight; gone since: the step fails (the run is rolled back).
        let program = self.program().map_err(refused)?;
        let d = Detail {
            connection: db::redact(&self.connection),
            program: Some(program),
            skip_reason: None,
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
            // Recorded by an earlier build, which skipped a command that could not run.
            let why = d.skip_reason.unwrap_or_default();
            tracing::warn!("database version upgrade skipped: {why}");
            return Ok(Outcome {
                after: Vec::new(),
                notes: vec![format!("WARNING: skipped: {why}")],
            });
        };
        if matches!(
            Self::attempts(ctx)?,
            Attempts::Unfinished | Attempts::Failed
        ) {
            // An earlier run of the tool was killed mid-way (or failed): the schema may be
            // half upgraded. Put the database back as the backup holds it, then run again.
            self.restore_backup(ctx)?;
        }
        ctx.journal.save(STARTED.to_vec())?;
        ctx.journal.sync()?;
        let out = super::child_command(&mut Command::new(&program))
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
        // Durable now, whether the tool succeeded or not: the output of a failed tool is what
        // explains the failure (the engine syncs a step's saved data only when it succeeds).
        ctx.journal.sync()?;
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

    /// Applied only when the tool's end was recorded with success; never from the version
    /// alone (a tool killed mid-way may have written the new version and not the rest).
    fn probe(&self, ctx: &StepContext, intent: &Intent, _o: Option<&Outcome>) -> Result<Probe> {
        let d = Self::detail(intent)?;
        if d.program.is_none() {
            return Ok(Probe::NotApplied);
        }
        match Self::attempts(ctx)? {
            Attempts::Succeeded => Ok(Probe::Applied),
            Attempts::Unfinished => Ok(Probe::Partial(
                "the tool started and its end was not recorded: the database is restored from the backup and the tool runs again".into(),
            )),
            Attempts::Failed => Ok(Probe::Partial(
                "the tool ran and failed: the database is restored from the backup and the tool runs again".into(),
            )),
            Attempts::None => {
                let t = self.target()?;
                let now = db::with_session(&t, |db| db.version()).map_err(refused)?;
                if now == d.version_before {
                    Ok(Probe::NotApplied)
                } else {
                    Ok(Probe::Inconsistent(format!(
                        "the database version is {} but the tool never started (it was {})",
                        now.as_deref().unwrap_or("not recorded"),
                        d.version_before.as_deref().unwrap_or("not recorded")
                    )))
                }
            }
        }
    }

    fn saved_detail(&self) -> Option<super::SavedDetail> {
        Some(super::SavedDetail::SchemaTool(ToolRuns {
            command: crate::secrets::mask_command_line(&self.command).join(" "),
            runs: Vec::new(),
        }))
    }

    fn fingerprint(&self) -> Result<Option<super::Fingerprint>> {
        super::db_fingerprint::take(&self.connection, &self.root, None).map(Some)
    }

    fn undo(&self, _ctx: &StepContext, _intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        // Not reversible by itself: the database-backup step's undo (later in the rollback
        // order) restores the database.
        Ok(())
    }
}
