//! Stop or start the Usercube service: with the administrator's own command (`sh -c` on
//! Linux, `cmd.exe /C` on Windows; run in the installation root), or, on Windows, through the
//! Service Control Manager (`--service NAME`: stop, then wait until stopped). The runbook
//! puts "stop" first and "start" last, so the service is down for every change; undo runs
//! the opposite command, so a rollback stops the new service before undoing anything and
//! starts the old one once everything is undone.
//!
//! A command's effect cannot be observed, so probing relies on the journal alone, where a
//! record is saved just before the command starts and another right after it ends. The step
//! counts as applied when its outcome, or the record of a successful run of its command, is
//! in the journal; as not applied when the record says the command failed (or could not
//! start); and as part applied when the step started but no record says how its command
//! ended (a crash while it ran: it may have taken effect), so that `resume` runs it again
//! and `rollback` runs the opposite one. Recovery runs commands again rather than trusting
//! an effect a reboot may have reverted: stopping a stopped service and starting a started
//! one are assumed to be harmless (`systemctl`, `sc`, `net start/stop` behave so; commands
//! given here must too).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Intent, Outcome, PlanView, Probe, Result, SavedDetail, Step, StepContext, StepError};
use crate::plan::ServiceAction;
use crate::platform;

/// Most output bytes kept (the end of it: where a failing command says why).
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How long the service manager may take to stop or start one service.
pub const SERVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

pub struct Service {
    pub action: ServiceAction,
    pub apply: Op,
    /// What reverses `apply` (None: left to the administrator).
    pub undo: Option<Op>,
    pub root: PathBuf,
}

/// What a service step runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A command line, run by the platform's shell in the root.
    Line(String),
    /// Windows services, in this order, through the Service Control Manager.
    Services(ServiceAction, Vec<String>),
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Line(l) => f.write_str(l),
            Op::Services(a, names) => write!(f, "{} service {}", verb(*a), names.join(", ")),
        }
    }
}

impl Op {
    /// Runs the operation: (exit status, success, output); Err when it could not start.
    fn run(&self, root: &Path) -> std::io::Result<(Option<i32>, bool, String)> {
        match self {
            Op::Line(line) => {
                let out = super::child_command(&mut platform::shell_command(line))
                    .current_dir(root)
                    .output()?;
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                Ok((out.status.code(), out.status.success(), text))
            }
            Op::Services(action, names) => {
                let mut text = String::new();
                for name in names {
                    let done = match action {
                        ServiceAction::Stop => platform::stop_service(name, SERVICE_TIMEOUT),
                        ServiceAction::Start => platform::start_service(name, SERVICE_TIMEOUT),
                    };
                    match done {
                        Ok(()) => text.push_str(&format!("{name}: {}\n", done_word(*action))),
                        Err(e) => {
                            text.push_str(&format!("{name}: {e}\n"));
                            return Ok((Some(1), false, text));
                        }
                    }
                }
                Ok((Some(0), true, text))
            }
        }
    }
}

/// One run of a command, saved as a StepData record (and shown by `journal export`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CommandRun {
    /// "apply", "reassert" or "undo".
    pub phase: String,
    pub command: String,
    /// None: killed by a signal.
    pub status: Option<i32>,
    pub success: bool,
    /// Standard output then standard error, at most the last 64 KiB.
    pub output: String,
}

/// Saved (and synced) just before a command runs: with no [`CommandRun`] after it, the
/// command may have run, or be running, when the process died.
#[derive(Serialize, Deserialize, Debug)]
struct Starting {
    starting: String,
    command: String,
}

impl CommandRun {
    /// A service step's saved record, or None for anything else.
    pub fn from_saved(bytes: &[u8]) -> Option<CommandRun> {
        serde_json::from_slice(bytes).ok()
    }
}

fn done_word(a: ServiceAction) -> &'static str {
    match a {
        ServiceAction::Stop => "stopped",
        ServiceAction::Start => "running",
    }
}

fn verb(a: ServiceAction) -> &'static str {
    match a {
        ServiceAction::Stop => "stop",
        ServiceAction::Start => "start",
    }
}

/// The last `MAX_OUTPUT` bytes of `text`, cut on a character boundary.
fn tail(text: &str) -> String {
    if text.len() <= MAX_OUTPUT {
        return text.to_string();
    }
    let from = (text.len() - MAX_OUTPUT..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    format!(
        "[output truncated to its last {MAX_OUTPUT} bytes]\n{}",
        &text[from..]
    )
}

impl Service {
    /// Runs `command`, saves (and syncs) what happened, and fails on a non-zero exit.
    fn execute(&self, ctx: &StepContext, phase: &str, op: &Op) -> Result<CommandRun> {
        let command = op.to_string();
        let starting = Starting {
            starting: phase.into(),
            command: command.clone(),
        };
        record(ctx, &starting)?;
        let (status, success, text) = match op.run(&self.root) {
            Ok(out) => out,
            Err(e) => {
                // Recorded, so that recovery knows the command never ran.
                let why = format!("cannot start {}: {e}", platform::SHELL);
                let ran = CommandRun {
                    phase: phase.into(),
                    command: command.clone(),
                    status: None,
                    success: false,
                    output: why.clone(),
                };
                record(ctx, &ran)?;
                return Err(StepError::Refused(format!("`{command}`: {why}")));
            }
        };
        let ran = CommandRun {
            phase: phase.into(),
            command: command.clone(),
            status,
            success,
            output: tail(&text),
        };
        record(ctx, &ran)?;
        if !ran.success {
            return Err(StepError::Refused(format!(
                "`{command}` failed ({}); output: {}",
                status_text(ran.status),
                ran.output.trim()
            )));
        }
        Ok(ran)
    }
}

/// Saves `value` as a StepData record of the step and makes it durable.
fn record(ctx: &StepContext, value: &impl Serialize) -> Result<()> {
    ctx.journal
        .save(serde_json::to_vec(value).expect("serializes"))?;
    ctx.journal.sync()
}

fn status_text(code: Option<i32>) -> String {
    code.map_or_else(
        || "killed by a signal".into(),
        |c| format!("exit status {c}"),
    )
}

impl Step for Service {
    fn saved_detail(&self) -> Option<SavedDetail> {
        Some(SavedDetail::Commands(Vec::new()))
    }

    fn describe(&self, _root: &Path) -> String {
        match &self.apply {
            Op::Line(l) => format!("{} the service: `{l}`", verb(self.action)),
            op => format!("{op} (Service Control Manager)"),
        }
    }

    fn check(&self, _view: &mut PlanView) -> std::result::Result<(), String> {
        match &self.apply {
            Op::Line(l) if l.trim().is_empty() => {
                Err(format!("the {} command is empty", verb(self.action)))
            }
            Op::Line(_) => Ok(()),
            // The service must exist (and the service manager answer) before anything runs.
            Op::Services(_, names) => names.iter().try_for_each(|n| {
                platform::service_state(n)
                    .map(|_| ())
                    .map_err(|e| format!("service {n}: {e}"))
            }),
        }
    }

    fn intent(&self, _ctx: &StepContext) -> Result<Intent> {
        Ok(Intent {
            touches: Vec::new(),
            detail: serde_json::json!({
                "service": verb(self.action),
                "command": self.apply.to_string(),
                "undo": self.undo.as_ref().map(Op::to_string),
            })
            .to_string(),
        })
    }

    fn apply(&self, ctx: &StepContext, _intent: &Intent) -> Result<Outcome> {
        let ran = self.execute(ctx, "apply", &self.apply)?;
        Ok(Outcome {
            after: Vec::new(),
            notes: vec![
                format!("`{}`: {}", ran.command, status_text(ran.status)),
                format!("output: {}", ran.output),
            ],
        })
    }

    fn settle(&self, _ctx: &StepContext, _intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        Ok(())
    }

    fn probe(
        &self,
        ctx: &StepContext,
        _intent: &Intent,
        outcome: Option<&Outcome>,
    ) -> Result<Probe> {
        if outcome.is_some() {
            return Ok(Probe::Applied);
        }
        // How the last run of the command ended, if a record says (None: it started and no
        // record says how it ended, or it never started; either way it may have run).
        let mut ended = None;
        ctx.journal.saved(&mut |bytes| {
            if let Some(r) = CommandRun::from_saved(bytes) {
                if r.phase == "apply" {
                    ended = Some(r.success);
                }
            } else if let Ok(s) = serde_json::from_slice::<Starting>(bytes) {
                if s.starting == "apply" {
                    ended = None;
                }
            }
            Ok(())
        })?;
        Ok(match ended {
            Some(true) => Probe::Applied,
            Some(false) => Probe::NotApplied,
            None => Probe::Partial(format!(
                "`{}` may have run: no record of how it ended",
                self.apply
            )),
        })
    }

    /// Found applied after an interruption: run again (harmless, see above), since a reboot
    /// may have reverted it; the outcome then holds this run's output.
    fn recovered_outcome(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome> {
        self.apply(ctx, intent)
    }

    /// Before a resume or the rollback of an unfinished run, in plan order: the stop runs
    /// again (a reboot may have started the service), and a start already done runs again
    /// after it, so the service is as the journal says before anything else happens.
    fn reassert(&self, ctx: &StepContext, _intent: &Intent) -> Result<bool> {
        self.execute(ctx, "reassert", &self.apply).map(|_| true)
    }

    fn undo(&self, ctx: &StepContext, _intent: &Intent, _o: Option<&Outcome>) -> Result<()> {
        match &self.undo {
            Some(c) => self.execute(ctx, "undo", c).map(|_| ()),
            None => {
                tracing::warn!("no command to reverse `{}`: do it by hand", self.apply);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        let short = "stopped\n";
        assert_eq!(tail(short), short);
        let long = format!("{}é{}", "a".repeat(MAX_OUTPUT), "z".repeat(MAX_OUTPUT - 1));
        let t = tail(&long);
        assert!(t.ends_with('z'));
        assert!(t.starts_with("[output truncated"));
        assert!(t.len() <= MAX_OUTPUT + 64);
    }
}
