//! The vendor tools' jobs as journaled plans of their own, taking the vendor's argument
//! names, for administrators who follow the guide step by step:
//! `upgrade-files`, `prepare-upgrade-appsettings`, `upgrade-appsettings`,
//! `upgrade-configuration-version`. Each is checked like the runbook (refusals name file,
//! line and column) and runs through the engine like any plan.

use std::path::{Path, PathBuf};

use super::appsettings::{migrate_agent, migrate_server, JsonDoc, ServerSettings};
use super::configuration::{migrate_tree, FileOutcome, IdMap};
use super::{install, moves, plan_path, plans, FROM_VERSION};
use crate::crypto::{CertificateOptions, CertificateSource};
use crate::plan::{Plan, PlannedStep, StepSpec};

type Refusals = Vec<String>;

fn check_version(version: &str, problems: &mut Refusals) {
    if version != FROM_VERSION && !version.starts_with(&format!("{FROM_VERSION}.")) {
        problems.push(format!(
            "--version {version}: this tool migrates from {FROM_VERSION} only"
        ));
    }
}

fn parse(file: &Path, problems: &mut Refusals) -> Option<JsonDoc> {
    match crate::limits::read_text_limited(file, crate::limits::MAX_JSON_BYTES, "JSON files") {
        Ok(t) => JsonDoc::parse(file, &t)
            .map_err(|e| problems.push(format!("malformed JSON: {e}")))
            .ok(),
        Err(e) => {
            problems.push(format!("{}: cannot read: {e}", file.display()));
            None
        }
    }
}

fn ids_of(doc: &JsonDoc, runtime_path: Option<&str>, problems: &mut Refusals) -> IdMap {
    match migrate_agent(doc, runtime_path) {
        Ok(m) => m.id_map.into_iter().collect(),
        Err(e) => {
            problems.push(format!("duplicate connection identifiers: {e}"));
            IdMap::new()
        }
    }
}

struct Steps {
    steps: Vec<PlannedStep>,
}

impl Steps {
    fn add(&mut self, seed: &str, note: Option<String>, action: StepSpec) {
        self.steps.push(PlannedStep {
            id: self.steps.len() as u32 + 1,
            seed: Some(seed.into()),
            note,
            action,
        });
    }

    fn done(self, title: String, problems: Refusals) -> Result<Plan, Refusals> {
        if problems.is_empty() {
            Ok(Plan {
                title,
                steps: self.steps,
            })
        } else {
            Err(problems)
        }
    }
}

/// `Upgrade-ConfigurationVersion --xml-path ConfOld --output Conf --appsettings-path F`:
/// copy the configuration to the output, then rewrite the files a rule changes.
pub fn upgrade_configuration_version(
    root: &Path,
    version: &str,
    xml_path: &Path,
    output: &Path,
    appsettings_path: &Path,
    runtime_path: Option<&str>,
) -> Result<Plan, Refusals> {
    let mut problems = Vec::new();
    check_version(version, &mut problems);
    let ids = parse(appsettings_path, &mut problems)
        .map(|d| ids_of(&d, runtime_path, &mut problems))
        .unwrap_or_default();
    let mut s = Steps { steps: Vec::new() };
    match migrate_tree(xml_path, &ids) {
        Ok(t) => {
            s.add(
                "9.3",
                Some("copied whole, then only the files a rule changes are rewritten".into()),
                StepSpec::Copy {
                    from: plan_path(root, xml_path),
                    to: plan_path(root, output),
                },
            );
            for f in &t.files {
                if let FileOutcome::Changed(bytes) = &f.outcome {
                    let n = t
                        .changes
                        .iter()
                        .filter(|c| c.file == xml_path.join(&f.path))
                        .count();
                    s.add(
                        "9.3",
                        Some(format!("{n} rule changes")),
                        StepSpec::WriteFile {
                            path: plan_path(root, &output.join(&f.path)),
                            content: bytes.clone().into(),
                        },
                    );
                }
            }
        }
        Err(e) => problems.push(format!("malformed XML: {e}")),
    }
    s.done(
        format!("upgrade-configuration-version {}", xml_path.display()),
        problems,
    )
}

/// `Prepare-UpgradeAppsettings --output-path DIR`: writes our `520.json` and `522.json`
/// (identifier mapping from `DIR/appsettings.agent.json` when present).
pub fn prepare_upgrade_appsettings(
    root: &Path,
    version: &str,
    output_path: &Path,
    agent_identifier: &str,
) -> Result<Plan, Refusals> {
    let mut problems = Vec::new();
    check_version(version, &mut problems);
    if !output_path.is_dir() {
        problems.push(format!(
            "--output-path {}: not a folder",
            output_path.display()
        ));
    }
    let agent = output_path.join("appsettings.agent.json");
    let ids = if agent.is_file() {
        parse(&agent, &mut problems)
            .map(|d| ids_of(&d, None, &mut problems))
            .unwrap_or_default()
    } else {
        IdMap::new()
    };
    let mut s = Steps { steps: Vec::new() };
    for (n, text) in plans::prepared_files(Some(version), None, &ids, agent_identifier) {
        s.add(
            "6.2",
            Some("our own documented content (docs/runbook.md)".into()),
            StepSpec::WriteFile {
                path: plan_path(root, &output_path.join(n)),
                content: text.into_bytes().into(),
            },
        );
    }
    s.done(
        format!("prepare-upgrade-appsettings {}", output_path.display()),
        problems,
    )
}

/// `Upgrade-Appsettings --input-path DIR [--migrate-only-agent]`: the agent settings of
/// `DIR` migrated into `Runtime/` (and, without `--migrate-only-agent`, the server's
/// `Runtime/appsettings.json`).
pub fn upgrade_appsettings(
    root: &Path,
    version: &str,
    input_path: &Path,
    migrate_only_agent: bool,
    runtime_path: Option<&str>,
) -> Result<Plan, Refusals> {
    let mut problems = Vec::new();
    check_version(version, &mut problems);
    let runtime = root.join("Runtime");
    let mut s = Steps { steps: Vec::new() };
    let mut any = false;
    for name in ["appsettings.agent.json", "appsettings.encrypted.agent.json"] {
        let file = input_path.join(name);
        if !file.is_file() {
            continue;
        }
        any = true;
        let Some(doc) = parse(&file, &mut problems) else {
            continue;
        };
        let rp = (name == "appsettings.agent.json")
            .then_some(runtime_path)
            .flatten();
        match migrate_agent(&doc, rp) {
            Ok(m) => {
                if let Some(t) = m.new_text {
                    s.add(
                        "7.2",
                        Some(
                            m.changes
                                .iter()
                                .map(|c| c.to_string())
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                        StepSpec::WriteFile {
                            path: plan_path(root, &runtime.join(name)),
                            content: t.into_bytes().into(),
                        },
                    );
                }
            }
            Err(e) => problems.push(format!("duplicate connection identifiers: {e}")),
        }
    }
    if !any {
        problems.push(format!(
            "--input-path {}: no appsettings.agent.json",
            input_path.display()
        ));
    }
    if !migrate_only_agent {
        let file = runtime.join("appsettings.json");
        if let Some(doc) = parse(&file, &mut problems) {
            let m = migrate_server(
                &doc,
                &ServerSettings {
                    temp_folder: "../Temp".into(),
                    work_folder: "../Work".into(),
                    encrypt_file: true,
                },
            );
            if let Some(t) = m.new_text {
                s.add(
                    "5.1",
                    None,
                    StepSpec::WriteFile {
                        path: plan_path(root, &file),
                        content: t.into_bytes().into(),
                    },
                );
            }
        }
    }
    s.done(
        format!("upgrade-appsettings {}", input_path.display()),
        problems,
    )
}

/// `Upgrade-Files --version 5.1.7 [--migrate-agent]`: the Temp -> Work move table
/// (agent-side rows only with `--migrate-agent`). Legacy-encrypted files need a
/// certificate with `--migrate-agent`; their re-encryption is not available in this build.
pub fn upgrade_files(
    root: &Path,
    version: &str,
    migrate_agent: bool,
    cert: &CertificateOptions,
    temp: &Path,
    work: &Path,
) -> Result<(Plan, Vec<String>), Refusals> {
    let mut problems = Vec::new();
    let notes = Vec::new();
    check_version(version, &mut problems);
    let mut s = Steps { steps: Vec::new() };
    for m in moves::moves_for(migrate_agent) {
        let from = temp.join(m.from_temp);
        if from.exists() {
            s.add(
                "5.3",
                Some(format!("Temp -> Work move table: {}", m.why)),
                StepSpec::MoveTree {
                    from: plan_path(root, &from),
                    to: plan_path(root, &work.join(m.to_work)),
                },
            );
        }
    }
    if migrate_agent {
        let encrypted: Vec<PathBuf> = [temp, work]
            .iter()
            .flat_map(|d| install::encrypted_files(d, root))
            .collect();
        if !encrypted.is_empty() {
            match cert.source() {
                Err(e) => problems.push(e.to_string()),
                Ok(None) => problems.push(format!(
                    "{} legacy-encrypted files (first: {}) but no --file-cert-file or --file-cert-thumbprint",
                    encrypted.len(),
                    encrypted[0].display()
                )),
                Ok(Some(source)) => {
                let certificate = match source {
                    CertificateSource::Pfx { path, thumbprint } => CertificateSource::Pfx {
                        path: plan_path(root, &path),
                        thumbprint,
                    },
                    store => store,
                };
                s.add(
                    "5.3",
                    Some(format!(
                        "{} legacy-encrypted files found; each staged, verified and renamed into place, the original kept in the journal trash; the PFX password from {} (never in the plan)",
                        encrypted.len(),
                        crate::crypto::PASSWORD_OPTIONS
                    )),
                    StepSpec::ReencryptFiles {
                        folders: vec![plan_path(root, temp), plan_path(root, work)],
                        files: Vec::new(),
                        certificate,
                    },
                );
                }
            }
        }
    }
    s.done("upgrade-files".into(), problems).map(|p| (p, notes))
}

/// A vendor tool's job, as the subcommands name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    UpgradeFiles,
    PrepareUpgradeAppsettings,
    /// `migrate_only_agent`: the server's appsettings.json is left out.
    UpgradeAppsettings {
        migrate_only_agent: bool,
    },
    UpgradeConfigurationVersion,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::UpgradeFiles => "upgrade-files",
            Job::PrepareUpgradeAppsettings => "prepare-upgrade-appsettings",
            Job::UpgradeAppsettings { .. } => "upgrade-appsettings",
            Job::UpgradeConfigurationVersion => "upgrade-configuration-version",
        }
    }

    /// Whether a step of a runbook plan (`plans::build`) does part of this job.
    fn does(self, action: &StepSpec) -> bool {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default()
        };
        let in_runtime = |p: &Path| p.parent() == Some(Path::new("Runtime"));
        match (self, action) {
            (
                Job::UpgradeFiles,
                StepSpec::MoveTree { .. }
                | StepSpec::DeleteTree { .. }
                | StepSpec::ReencryptFiles { .. },
            ) => true,
            (Job::PrepareUpgradeAppsettings, StepSpec::WriteFile { path, .. }) => {
                matches!(name(path).as_str(), "520.json" | "522.json")
            }
            (Job::UpgradeAppsettings { migrate_only_agent }, StepSpec::WriteFile { path, .. }) => {
                in_runtime(path)
                    && match name(path).as_str() {
                        "appsettings.agent.json" | "appsettings.encrypted.agent.json" => true,
                        "appsettings.json" => !migrate_only_agent,
                        _ => false,
                    }
            }
            (Job::UpgradeConfigurationVersion, StepSpec::Rename { from, .. }) => {
                from == Path::new("Conf")
            }
            (Job::UpgradeConfigurationVersion, StepSpec::Copy { from, to }) => {
                from == Path::new("ConfOld") && to == Path::new("Conf")
            }
            (Job::UpgradeConfigurationVersion, StepSpec::WriteFile { path, .. }) => {
                path.starts_with("Conf")
            }
            _ => false,
        }
    }

    /// The indexes of the steps of `plan` that do this job: the steps that do part of it
    /// and every other step of the same guide steps (as `--until` counts them).
    pub fn steps_in(self, plan: &Plan) -> Vec<usize> {
        let seeds: Vec<&str> = plan
            .steps
            .iter()
            .filter(|s| self.does(&s.action))
            .filter_map(|s| s.seed.as_deref())
            .collect();
        plan.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                self.does(&s.action) || s.seed.as_deref().is_some_and(|g| seeds.contains(&g))
            })
            .map(|(k, _)| k)
            .collect()
    }
}
