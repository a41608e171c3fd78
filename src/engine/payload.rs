//! What the engine stores in each journal record's payload (bincode, journal codec).

use std::path::PathBuf;

use bincode::Options;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::journal::record::codec;
use crate::plan::Plan;
use crate::steps::{Fingerprint, Intent, Outcome};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunStarted {
    pub plan: Plan,
    pub plan_hash: [u8; 32],
    pub root: PathBuf,
    pub tool_version: String,
    pub pid: u32,
    /// Who started the run, where, with which command line. Absent in journals written by
    /// earlier builds (their payload ends after `pid`).
    pub context: Option<RunContext>,
}

/// `RunStarted` as earlier builds wrote it (no `context`).
#[derive(Deserialize)]
struct RunStartedV1 {
    plan: Plan,
    plan_hash: [u8; 32],
    root: PathBuf,
    tool_version: String,
    pid: u32,
}

/// Who ran a command that changes the installation, where, and how: the operator (the OS
/// account), the host name and the command line with every secret value masked
/// ([`mask_command_line`]). Kept in `run-started`, `run-rolled-back` and `run-finalized`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RunContext {
    pub operator: String,
    pub host: String,
    pub command_line: Vec<String>,
}

impl RunContext {
    /// This process's context: the account and host as the OS names them, and `args`
    /// (the command line, program first) masked.
    pub fn of_process(args: impl IntoIterator<Item = String>) -> RunContext {
        let args: Vec<String> = args.into_iter().collect();
        RunContext {
            operator: crate::platform::user_name().unwrap_or_else(|| "unknown".into()),
            host: crate::platform::host_name().unwrap_or_else(|| "unknown".into()),
            command_line: mask_command_line(&args),
        }
    }
}

/// Flag names whose value is a secret: any containing one of these words.
const SECRET_FLAG_WORDS: &[&str] = &["password", "secret", "pwd", "token"];

/// The command line with every secret value replaced by `***`: the value of any flag whose
/// name holds "password", "secret", "pwd" or "token" (`--flag VALUE` or `--flag=VALUE`), and
/// the `Password`/`Pwd` of any ADO.NET connection string in any argument.
pub fn mask_command_line(args: &[String]) -> Vec<String> {
    let secret_flag = |flag: &str| {
        let name = flag.trim_start_matches('-').to_ascii_lowercase();
        flag.starts_with("--") && SECRET_FLAG_WORDS.iter().any(|w| name.contains(w))
    };
    let mut out = Vec::with_capacity(args.len());
    let mut mask_next = false;
    for a in args {
        if mask_next {
            out.push("***".to_string());
            mask_next = false;
            continue;
        }
        match a.split_once('=') {
            Some((flag, _)) if secret_flag(flag) => out.push(format!("{flag}=***")),
            _ if secret_flag(a) => {
                out.push(a.clone());
                mask_next = true;
            }
            _ => out.push(crate::db::redact(a)),
        }
    }
    out
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StepIntent {
    pub description: String,
    pub intent: Intent,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StepDone {
    pub outcome: Outcome,
    /// True when recovery found the step applied (its outcome was probed, not observed).
    pub recovered: bool,
    /// What the step left outside the tree (a database), taken right after it acted;
    /// compared before a rollback undoes it. Absent for other steps, and in journals written
    /// by earlier builds (their payload ends after `recovered`).
    pub fingerprint: Option<Fingerprint>,
}

/// `StepDone` as earlier builds wrote it (no `fingerprint`).
#[derive(Deserialize)]
struct StepDoneV1 {
    outcome: Outcome,
    recovered: bool,
}

/// Payload of `run-started` (this build's, or an earlier build's without the context).
pub fn decode_run_started(seq: u64, bytes: &[u8]) -> Result<RunStarted, crate::Error> {
    if let Ok(s) = codec().deserialize::<RunStarted>(bytes) {
        return Ok(s);
    }
    let v1: RunStartedV1 = decode(seq, bytes)?;
    Ok(RunStarted {
        plan: v1.plan,
        plan_hash: v1.plan_hash,
        root: v1.root,
        tool_version: v1.tool_version,
        pid: v1.pid,
        context: None,
    })
}

/// Payload of `step-done` (this build's, or an earlier build's without the fingerprint).
pub fn decode_step_done(seq: u64, bytes: &[u8]) -> Result<StepDone, crate::Error> {
    if let Ok(d) = codec().deserialize::<StepDone>(bytes) {
        return Ok(d);
    }
    let v1: StepDoneV1 = decode(seq, bytes)?;
    Ok(StepDone {
        outcome: v1.outcome,
        recovered: v1.recovered,
        fingerprint: None,
    })
}

/// Payload of `run-rolled-back` and `run-finalized`: empty in journals of earlier builds.
pub fn decode_context(seq: u64, bytes: &[u8]) -> Result<Option<RunContext>, crate::Error> {
    if bytes.is_empty() {
        return Ok(None);
    }
    decode(seq, bytes).map(Some)
}

/// Payload of StepFailed and RunFailed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StepUndone {
    /// What the undo found: "undone", "was not applied", or "forced".
    pub how: String,
}

/// Payload of StepData: the saved data lives in `<journal>/data/<run>/<step>/<sha256 hex>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DataRef {
    pub sha256: [u8; 32],
    pub len: u64,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    codec().serialize(v).expect("payload is serializable")
}

pub fn decode<T: DeserializeOwned>(seq: u64, bytes: &[u8]) -> Result<T, crate::Error> {
    codec().deserialize(bytes).map_err(|e| {
        crate::Error::Corrupt(format!(
            "journal record {seq}: payload does not decode ({e}); the last good record is {}",
            seq - 1
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_on_the_command_line_are_masked() {
        let args: Vec<String> = [
            "usercube-upgrade",
            "run",
            "--file-cert-password",
            "pfx-secret",
            "--client-secret=s2",
            "--connection-string",
            "Server=h;User Id=sa;Password=db-secret;Database=U",
            "--database-upgrade-command",
            "tool --connection-string \"Server=h;Pwd=db-secret2\"",
            "--root",
            "/srv/usercube",
        ]
        .map(String::from)
        .to_vec();
        let masked = mask_command_line(&args);
        let line = masked.join(" ");
        for secret in ["pfx-secret", "s2", "db-secret", "db-secret2"] {
            assert!(
                !masked.iter().any(|a| a.contains(secret)),
                "{secret} in {line}"
            );
        }
        assert_eq!(masked[3], "***");
        assert_eq!(masked[4], "--client-secret=***");
        assert_eq!(masked[6], "Server=h;User Id=sa;Password=***;Database=U");
        assert_eq!(masked[9..], args[9..], "the rest as given");
    }

    #[test]
    fn payloads_of_earlier_builds_still_decode() {
        #[derive(Serialize)]
        struct OldStarted {
            plan: Plan,
            plan_hash: [u8; 32],
            root: PathBuf,
            tool_version: String,
            pid: u32,
        }
        let plan = crate::sample::plan();
        let old = encode(&OldStarted {
            plan_hash: plan.hash(),
            plan: plan.clone(),
            root: "/r".into(),
            tool_version: "0.0.9".into(),
            pid: 7,
        });
        let s = decode_run_started(1, &old).unwrap();
        assert_eq!((s.pid, s.context), (7, None));
        let new = RunStarted {
            context: Some(RunContext {
                operator: "op".into(),
                host: "h".into(),
                command_line: vec!["x".into()],
            }),
            ..s
        };
        assert_eq!(decode_run_started(1, &encode(&new)).unwrap(), new);

        #[derive(Serialize)]
        struct OldDone {
            outcome: Outcome,
            recovered: bool,
        }
        let d = decode_step_done(
            2,
            &encode(&OldDone {
                outcome: Outcome::default(),
                recovered: true,
            }),
        )
        .unwrap();
        assert!(d.recovered && d.fingerprint.is_none());
        assert_eq!(decode_context(3, &[]).unwrap(), None);
        assert!(decode_step_done(4, b"garbage").is_err());
    }
}
