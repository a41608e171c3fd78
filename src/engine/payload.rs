//! What the engine stores in each journal record's payload (bincode, journal codec).

use std::path::PathBuf;

use bincode::Options;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::journal::record::codec;
use crate::plan::Plan;
use crate::steps::{Fingerprint, Intent, Outcome};

/// Payload of RunStarted: [`RUN_STARTED_MARKER`] (8 bytes), then this struct (see
/// [`RunStarted::encode`]). The plan's `write-file` contents are not in it, only their
/// digests (`plan::FileContent`): the bytes are in `<journal>/contents/<run>/<sha256>`.
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
    /// Read from an older build's layout (its plan hash, over that layout, was checked when
    /// it was decoded). Never written.
    #[serde(skip)]
    pub legacy: bool,
}

/// First 8 bytes of a RunStarted payload whose plan keeps file contents apart. An older
/// build's payload begins with the plan title's length (u64 LE, at most 256 MiB), which is
/// never this value.
pub const RUN_STARTED_MARKER: [u8; 8] = *b"UCRS\x02\0\0\0";

impl RunStarted {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = RUN_STARTED_MARKER.to_vec();
        out.extend(encode(self));
        out
    }

    /// Decodes either layout. An older build's payload (file contents inside the plan) is
    /// read with its own frozen types ([`legacy`]) and its plan hash checked there; the
    /// contents then come with the plan, as they did.
    pub fn decode(seq: u64, bytes: &[u8]) -> Result<RunStarted, crate::Error> {
        match bytes.strip_prefix(&RUN_STARTED_MARKER[..]) {
            Some(rest) => decode(seq, rest),
            None => legacy::decode(seq, bytes),
        }
    }
}

/// Who ran a command that changes the installation, where, and how: the operator (the OS
/// account), the host name and the command line with every secret value masked
/// ([`crate::secrets::mask_command_line`]). Kept in `run-started`, `run-rolled-back` and `run-finalized`.
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
            command_line: crate::secrets::mask_command_line(&args),
        }
    }
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

/// Payload of RunStopped: why the run stopped, and how far it had come.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RunStopped {
    pub reason: StopReason,
    /// True when a rollback was stopped (it is finished by `rollback`).
    pub rollback: bool,
    /// Steps done (or, for a rollback, undone) when it stopped, and the plan's steps.
    pub steps_done: u32,
    pub steps_total: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A signal (its name: SIGINT, SIGTERM); the run is interrupted.
    Signal(String),
    /// `--until GUIDE-STEP`: every step up to that guide step is done; the run is paused.
    Until(String),
    /// An error stopped it (a rollback's undo failed): the error's first line. Last, so
    /// that the variants before it keep their bincode index.
    Failed(String),
}

impl std::fmt::Display for RunStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.rollback { "rollback " } else { "" };
        match &self.reason {
            StopReason::Signal(s) => write!(
                f,
                "{what}interrupted by {s} after step {} of {}",
                self.steps_done, self.steps_total
            ),
            StopReason::Until(g) => write!(
                f,
                "paused after guide step {g} (step {} of {})",
                self.steps_done, self.steps_total
            ),
            StopReason::Failed(e) => write!(
                f,
                "{what}stopped by an error after step {} of {}: {e}",
                self.steps_done, self.steps_total
            ),
        }
    }
}

/// Payload of KeptAside: a path the run did not write, moved out of a rollback's (or a
/// recovery's) way into the run's kept-aside folder; both paths relative to the root.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeptAside {
    pub from: std::path::PathBuf,
    pub to: std::path::PathBuf,
    /// Its files and their bytes when it was moved.
    pub files: u64,
    pub bytes: u64,
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

/// The RunStarted layout of builds that embedded `write-file` contents in the plan, frozen:
/// read only, to keep their journals readable (audit, resume, rollback).
mod legacy {
    use std::path::PathBuf;

    use bincode::Options;
    use serde::{Deserialize, Serialize};
    use sha2::{Digest, Sha256};

    use crate::journal::record::codec;
    use crate::plan::ServiceAction;

    #[derive(Serialize, Deserialize)]
    struct RunStarted {
        plan: Plan,
        plan_hash: [u8; 32],
        root: PathBuf,
        tool_version: String,
        pid: u32,
    }

    #[derive(Serialize, Deserialize)]
    struct Plan {
        title: String,
        steps: Vec<PlannedStep>,
    }

    #[derive(Serialize, Deserialize)]
    struct PlannedStep {
        id: u32,
        #[serde(default)]
        seed: Option<String>,
        #[serde(default)]
        note: Option<String>,
        action: StepSpec,
    }

    /// `crate::plan::StepSpec` as it was, variant for variant (bincode encodes the index).
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum StepSpec {
        Rename {
            from: PathBuf,
            to: PathBuf,
        },
        Copy {
            from: PathBuf,
            to: PathBuf,
        },
        MoveTree {
            from: PathBuf,
            to: PathBuf,
        },
        DeleteTree {
            path: PathBuf,
        },
        WriteFile {
            path: PathBuf,
            #[serde(with = "serde_bytes_or_base64")]
            content: Vec<u8>,
        },
        ExtractZip {
            archive: PathBuf,
            dest: PathBuf,
        },
        MakeDir {
            path: PathBuf,
        },
        DatabaseBackup {
            connection: String,
            backup_dir: PathBuf,
        },
        DeleteRows {
            connection: String,
            table: String,
        },
        DatabaseVersionUpgrade {
            connection: String,
            #[serde(default)]
            command: Vec<String>,
        },
        ReencryptFiles {
            #[serde(default)]
            folders: Vec<PathBuf>,
            #[serde(default)]
            files: Vec<PathBuf>,
            certificate: crate::crypto::CertificateSource,
        },
        Service {
            action: ServiceAction,
            command: String,
            #[serde(default)]
            undo: Option<String>,
        },
        WindowsService {
            action: ServiceAction,
            names: Vec<String>,
        },
    }

    pub(super) fn decode(seq: u64, bytes: &[u8]) -> Result<super::RunStarted, crate::Error> {
        let old: RunStarted = super::decode(seq, bytes)?;
        let corrupt = |why: String| {
            crate::Error::Corrupt(format!(
                "journal record {seq} (an older build's run-started): {why}; the last good record is {}",
                seq - 1
            ))
        };
        let hash: [u8; 32] = Sha256::digest(
            codec()
                .serialize(&old.plan)
                .map_err(|e| corrupt(e.to_string()))?,
        )
        .into();
        if hash != old.plan_hash {
            return Err(corrupt("the stored plan does not match its hash".into()));
        }
        // Same names in JSON, where the old content is base64 as the new one is.
        let plan: crate::plan::Plan = serde_json::to_value(&old.plan)
            .and_then(serde_json::from_value)
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(super::RunStarted {
            plan,
            plan_hash: old.plan_hash,
            root: old.root,
            tool_version: old.tool_version,
            pid: old.pid,
            context: None,
            legacy: true,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn old_payload(content: &[u8], break_hash: bool) -> Vec<u8> {
            let plan = Plan {
                title: "old".into(),
                steps: vec![PlannedStep {
                    id: 1,
                    seed: Some("5.1".into()),
                    note: None,
                    action: StepSpec::WriteFile {
                        path: "Runtime/appsettings.json".into(),
                        content: content.to_vec(),
                    },
                }],
            };
            let mut plan_hash: [u8; 32] = Sha256::digest(codec().serialize(&plan).unwrap()).into();
            if break_hash {
                plan_hash[0] ^= 1;
            }
            codec()
                .serialize(&RunStarted {
                    plan,
                    plan_hash,
                    root: "/r".into(),
                    tool_version: "0.1.0".into(),
                    pid: 7,
                })
                .unwrap()
        }

        #[test]
        fn an_older_builds_run_started_is_read_with_its_contents() {
            let bytes = old_payload(b"{\"Password\": \"p\"}", false);
            let started = crate::engine::payload::RunStarted::decode(5, &bytes).unwrap();
            assert!(started.legacy);
            let crate::plan::StepSpec::WriteFile { content, path } = &started.plan.steps[0].action
            else {
                panic!("{:?}", started.plan)
            };
            assert_eq!(path, std::path::Path::new("Runtime/appsettings.json"));
            assert_eq!(content.bytes(), Some(&b"{\"Password\": \"p\"}"[..]));
            assert_eq!(started.plan.steps[0].seed.as_deref(), Some("5.1"));
            let e = crate::engine::payload::RunStarted::decode(5, &old_payload(b"x", true))
                .unwrap_err();
            assert!(matches!(e, crate::Error::Corrupt(_)), "{e}");
            assert!(e.to_string().contains("journal record 5"), "{e}");
        }

        #[test]
        fn the_new_layout_holds_digests_only() {
            let secret = b"ClientSecret: 9f2c-not-in-the-record";
            let plan = crate::plan::Plan::new(
                "new",
                vec![(
                    None,
                    None,
                    crate::plan::StepSpec::WriteFile {
                        path: "a".into(),
                        content: secret.to_vec().into(),
                    },
                )],
            );
            let started = crate::engine::payload::RunStarted {
                plan_hash: plan.hash(),
                plan,
                root: "/r".into(),
                tool_version: "0.1.0".into(),
                pid: 7,
                context: None,
                legacy: false,
            };
            let bytes = started.encode();
            assert!(bytes.starts_with(&crate::engine::payload::RUN_STARTED_MARKER));
            assert!(!bytes.windows(secret.len()).any(|w| w == secret));
            let back = crate::engine::payload::RunStarted::decode(5, &bytes).unwrap();
            assert!(!back.legacy);
            assert_eq!(back, started, "equal by digest");
            let crate::plan::StepSpec::WriteFile { content, .. } = &back.plan.steps[0].action
            else {
                panic!()
            };
            assert_eq!(
                content.bytes(),
                None,
                "loaded from the contents folder, not the record"
            );
            assert_eq!(back.plan.hash(), started.plan_hash);
        }
    }

    /// The old content encoding: raw bytes in bincode, base64 text in JSON.
    mod serde_bytes_or_base64 {
        use base64::Engine;
        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
            } else {
                s.serialize_bytes(v)
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                    Ok(v)
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
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
        let masked = crate::secrets::mask_command_line(&args);
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
        // An earlier build's run-started (no context) is read by `legacy` (tests there); this
        // build's carries the context through encode and decode.
        let plan = crate::sample::plan();
        let new = RunStarted {
            plan_hash: plan.hash(),
            plan,
            root: "/r".into(),
            tool_version: "0.0.9".into(),
            pid: 7,
            context: Some(RunContext {
                operator: "op".into(),
                host: "h".into(),
                command_line: vec!["x".into()],
            }),
            legacy: false,
        };
        assert_eq!(RunStarted::decode(1, &new.encode()).unwrap(), new);

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

    /// `StopReason::Failed` came last: the stops an earlier build wrote decode as they
    /// were, and encode to the same bytes.
    #[test]
    fn stop_reasons_of_earlier_builds_keep_their_encoding() {
        #[derive(Serialize)]
        enum OldReason {
            Signal(String),
            Until(String),
        }
        #[derive(Serialize)]
        struct OldStopped {
            reason: OldReason,
            rollback: bool,
            steps_done: u32,
            steps_total: u32,
        }
        let stopped = |reason| RunStopped {
            reason,
            rollback: true,
            steps_done: 3,
            steps_total: 9,
        };
        for (old, new) in [
            (
                OldReason::Signal("SIGINT".into()),
                StopReason::Signal("SIGINT".into()),
            ),
            (
                OldReason::Until("4.5".into()),
                StopReason::Until("4.5".into()),
            ),
        ] {
            let old = encode(&OldStopped {
                reason: old,
                rollback: true,
                steps_done: 3,
                steps_total: 9,
            });
            assert_eq!(old, encode(&stopped(new.clone())));
            assert_eq!(decode::<RunStopped>(1, &old).unwrap(), stopped(new));
        }
        let failed = stopped(StopReason::Failed("restoring x: denied".into()));
        assert_eq!(
            decode::<RunStopped>(2, &encode(&failed)).unwrap(),
            failed.clone()
        );
        assert_eq!(
            failed.to_string(),
            "rollback stopped by an error after step 3 of 9: restoring x: denied"
        );
    }
}
