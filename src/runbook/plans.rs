//! The three plans (integrated, server, agent), in the seed's order. Each engine step
//! carries the seed step it implements and a note where the engine does it differently
//! (the database steps and the re-encryption included); what the engine does not do
//! (service control without a command, deployment, schema refresh) is listed as an [`Item`]
//! of its own so that `plan` shows the whole procedure.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::appsettings::{migrate_server, ServerMigration, ServerSettings};
use super::configuration::FileOutcome;
use super::moves::{self, COLLECT};
use super::preflight::{self, Facts};
use super::{plan_path, temp_dir, work_dir, Mode, Options, APPSETTINGS_FOLDER};
use crate::plan::{Plan, PlannedStep, ServiceAction, StepSpec};

/// What a line of the runbook is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// An engine step of the plan (its id).
    Step(u32),
    /// Verified by preflight before anything changes.
    Checked,
    /// For the administrator, at this point of the procedure.
    Manual,
    /// Done by `run` with a command the administrator gave (--stop-command/--start-command).
    Command,
    /// Part of the procedure, but not available in this build: not executed, not pretended
    /// (no plan line uses it at present; kept for lines a build cannot do).
    NotAvailable,
    /// Not needed with this engine (the note says why).
    NotNeeded,
    /// Left out of the run on request (`--skip-database-upgrade`): the administrator's,
    /// listed first among the things still to do.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub seed: String,
    pub kind: ItemKind,
    pub text: String,
}

/// A built runbook: the engine plan plus every other line of the procedure.
#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    pub mode: Mode,
    pub plan: Plan,
    pub items: Vec<Item>,
    pub warnings: Vec<String>,
    /// Manual items accepted with --accept-manual-steps.
    pub manual: Vec<String>,
    /// The Temp -> Work move table as used.
    pub moves: Vec<String>,
}

/// The plan being built: its steps and items in the seed's order, and its refusals.
struct B<'a> {
    o: &'a Options,
    steps: Vec<PlannedStep>,
    items: Vec<Item>,
    /// Refusals found while building (preflight's are found before).
    problems: Vec<String>,
}

impl B<'_> {
    fn step(&mut self, seed: &str, note: Option<String>, action: StepSpec) {
        let id = self.steps.len() as u32 + 1;
        self.steps.push(PlannedStep {
            id,
            seed: Some(seed.to_string()),
            note,
            action,
        });
        self.items.push(Item {
            seed: seed.into(),
            kind: ItemKind::Step(id),
            text: String::new(),
        });
    }

    fn item(&mut self, seed: &str, kind: ItemKind, text: impl Into<String>) {
        self.items.push(Item {
            seed: seed.into(),
            kind,
            text: text.into(),
        });
    }

    fn p(&self, abs: &Path) -> PathBuf {
        plan_path(&self.o.root, abs)
    }

    /// The plan's first step when a stop command is given: the service is down before any
    /// change (every check has passed by then).
    fn stop(&mut self, seed: &str, what: &str) {
        if !self.o.services.is_empty() {
            let names = self.o.services.join(", ");
            return self.step(
                seed,
                Some(format!("stop the Windows service(s) {names} through the Service Control Manager and wait until stopped, after every check and before any change; journaled; rollback ends by starting them again")),
                StepSpec::WindowsService {
                    action: ServiceAction::Stop,
                    names: self.o.services.clone(),
                },
            );
        }
        match &self.o.stop_command {
            Some(c) => {
                let undo = match &self.o.start_command {
                    Some(s) => format!("rollback ends by running the --start-command `{s}` (the old service comes back)"),
                    None => "no --start-command: after a rollback, restart the service by hand".into(),
                };
                self.step(
                    seed,
                    Some(format!("stop {what} with the --stop-command, after every check and before any change; exit status and output are journaled; a failure fails the run before any change; {undo}")),
                    StepSpec::Service {
                        action: ServiceAction::Stop,
                        command: c.clone(),
                        undo: self.o.start_command.clone(),
                    },
                )
            }
            None => self.item(
                seed,
                ItemKind::Manual,
                format!("stop {what} now, before `run` (no --stop-command given)"),
            ),
        }
    }

    /// Where the seed restarts: with a start command, a pointer to the plan's last step.
    fn start(&mut self, seed: &str, what: &str) {
        match &self.o.start_command {
            Some(c) => self.item(
                seed,
                ItemKind::Command,
                format!("restart {what}: the plan's last step runs `{c}` (--start-command) once, after every change of `run` (the steps in between touch only the stopped installation's files and database)"),
            ),
            None => self.item(
                seed,
                ItemKind::Manual,
                format!("restart {what} after `run` (no --start-command given)"),
            ),
        }
    }

    /// The plan's last step when a start command is given.
    fn start_step(&mut self, seed: &str, what: &str) {
        if !self.o.services.is_empty() {
            let names = self.o.services.join(", ");
            return self.step(
                seed,
                Some(format!("start the Windows service(s) {names} ({what}) through the Service Control Manager and wait until running, once, after every change; journaled; rollback begins by stopping them")),
                StepSpec::WindowsService {
                    action: ServiceAction::Start,
                    names: self.o.services.iter().rev().cloned().collect(),
                },
            );
        }
        if let Some(c) = &self.o.start_command {
            let undo = match &self.o.stop_command {
                Some(s) => format!("rollback begins by running the --stop-command `{s}`, so nothing is undone under a running service"),
                None => "no --stop-command: stop the service by hand before a rollback".into(),
            };
            self.step(
                seed,
                Some(format!("start {what} with the --start-command, once, after every change; exit status and output are journaled; {undo}")),
                StepSpec::Service {
                    action: ServiceAction::Start,
                    command: c.clone(),
                    undo: self.o.stop_command.clone(),
                },
            );
        }
    }

    /// Without a connection string the database lines are the administrator's.
    fn no_db(&mut self, seed: &str, what: &str) {
        self.item(
            seed,
            ItemKind::Manual,
            format!("{what}: no connection string (give --connection-string, or set ConnectionString in Runtime/appsettings.json): do it with the vendor's tool or by hand"),
        );
    }

    /// The database backup, before the first change (a missing SQLite backup folder is
    /// created owner-only by the step, and removed again by its undo).
    fn backup(&mut self, seed: &str, f: &Facts, note: Option<&str>) {
        let Some(cs) = f.connection_string.clone() else {
            return self.no_db(seed, "back up the database");
        };
        let dir = self
            .o
            .backup_dir
            .clone()
            .unwrap_or_else(|| self.o.root.join(super::BACKUP_FOLDER));
        let sqlite = cs.starts_with("sqlite:");
        let dir = if sqlite || dir.starts_with(&self.o.root) {
            self.p(&dir)
        } else {
            dir
        };
        let from = f.connection_string_from.as_deref().unwrap_or_default();
        let mut n = format!("connection string from {from}; SQLite: online backup API + integrity check, the backup owner-only (a missing backup folder is created owner-only and removed again by rollback); SQL Server: BACKUP DATABASE ... WITH COPY_ONLY, CHECKSUM, INIT + RESTORE VERIFYONLY; its undo restores the database");
        if let Some(extra) = note {
            n = format!("{extra}; {n}");
        }
        self.step(
            seed,
            Some(n),
            StepSpec::DatabaseBackup {
                connection: cs,
                backup_dir: dir,
            },
        );
    }

    /// The vendor's schema upgrade: a step that runs, or a refusal naming both ways out
    /// (`--database-upgrade-command`, `--skip-database-upgrade`); skipped only on request.
    fn version_upgrade(&mut self, seed: &str, f: &Facts, agent_settings: Option<&Path>) {
        let Some(cs) = f.connection_string.clone() else {
            return self.no_db(seed, "upgrade the database version");
        };
        let mut vendor = vec![
            super::DATABASE_UPGRADE_TOOL.to_string(),
            "--connection-string".to_string(),
            cs.clone(),
        ];
        if let Some(a) = agent_settings {
            vendor.push("--appsettings-path".into());
            vendor.push(self.o.root.join(a).display().to_string());
        }
        if let Some(rp) = &self.o.runtime_path {
            vendor.push("--runtime-path".into());
            vendor.push(rp.clone());
        }
        // The guide's command line as the administrator would type it (password redacted).
        let vendor_line = std::iter::once(
            self.o
                .root
                .join(super::DATABASE_UPGRADE_TOOL)
                .display()
                .to_string(),
        )
        .chain(vendor[1..].iter().enumerate().map(|(i, a)| {
            let a = if i == 1 {
                crate::db::redact(a)
            } else {
                a.clone()
            };
            if a.contains(char::is_whitespace) || a.contains(';') {
                format!("\"{a}\"")
            } else {
                a
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
        if self.o.skip_database_upgrade {
            return self.item(
                seed,
                ItemKind::Skipped,
                format!("upgrade the database schema with the vendor's tool before starting the server (left out by --skip-database-upgrade): {vendor_line}"),
            );
        }
        let (command, note) = match &self.o.database_upgrade_command {
            Some(c) => (
                super::split_command(c).unwrap_or_default(),
                "command from --database-upgrade-command; its output is kept in the journal; rollback restores the backup".to_string(),
            ),
            None => {
                let tool = Path::new(super::DATABASE_UPGRADE_TOOL)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let why = if !f.zip.names.iter().any(|n| n.eq_ignore_ascii_case(tool)) {
                    Some(format!(
                        "{tool} not found in {}",
                        self.o.runtime_zip.display()
                    ))
                } else if !crate::platform::runs_windows_executables() {
                    Some(format!(
                        "{tool} is a Windows executable, which cannot run on this system"
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    self.problems.push(format!(
                        "guide step {seed}, the database schema upgrade, cannot run: {why}. Give --database-upgrade-command CMD (a command that upgrades the schema as the vendor's tool does), or --skip-database-upgrade and run the vendor's command yourself afterwards: {vendor_line}"
                    ));
                }
                (vendor, "the new runtime's tool with the guide's arguments (no --database-upgrade-command); its output is kept in the journal; rollback restores the backup".to_string())
            }
        };
        self.step(
            seed,
            Some(note),
            StepSpec::DatabaseVersionUpgrade {
                connection: cs,
                command,
            },
        );
    }

    /// The seed's SQL deletes, one reversible step per table, in the order.
    fn deletes(&mut self, seed: &str, f: &Facts, note: &str) {
        let Some(cs) = f.connection_string.clone() else {
            return self.no_db(
                seed,
                &format!("delete every row of {}", DELETE_TABLES.join(", ")),
            );
        };
        for t in DELETE_TABLES {
            self.step(
                seed,
                Some(format!("DELETE FROM {t}, the rows kept in the journal as before-images (rollback re-inserts them); {note}")),
                StepSpec::DeleteRows {
                    connection: cs.clone(),
                    table: t.to_string(),
                },
            );
        }
    }

    /// The manual items that end the integrated and agent procedures.
    fn deploy(&mut self, seed: &str, restart: &str, refresh: &str) {
        self.item(seed, ItemKind::Manual, "deploy the configuration (unknown-attribute or missing-permission errors: see docs/runbook.md)");
        self.item(
            restart,
            ItemKind::Manual,
            "restart the server after deploying the configuration",
        );
        self.item(
            refresh,
            ItemKind::Manual,
            "go to each connector and its connections and refresh each schema",
        );
    }
}

/// The tables whose rows the seed deletes, in that order (issue 4).
pub const DELETE_TABLES: [&str; 3] = ["UJ_TaskEntityTypes", "UJ_TaskResourceTypes", "UJ_JobSteps"];

/// `520.json` and `522.json`: our own documented content (docs/runbook.md), not the
/// vendor's: the connection identifier mapping and the agent identifier.
pub fn prepared_files(
    from: Option<&str>,
    to: Option<&str>,
    ids: &super::configuration::IdMap,
    agent_id: &str,
) -> [(&'static str, String); 2] {
    const COMMENT: &str = "written by usercube-upgrade (docs/runbook.md), not by the vendor's Prepare-UpgradeAppsettings; no byte compatibility claimed";
    let map: serde_json::Map<String, serde_json::Value> = ids
        .renames
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let j520 = serde_json::json!({
        "comment": COMMENT,
        "format": "usercube-upgrade/520/1",
        "fromVersion": from,
        "toVersion": to,
        "connectionIdentifiers": map,
    });
    let j522 = serde_json::json!({
        "comment": COMMENT,
        "format": "usercube-upgrade/522/1",
        "agentIdentifier": agent_id,
        "agentSettings": "appsettings.agent.json",
    });
    let text = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("json") + "\n";
    [("520.json", text(j520)), ("522.json", text(j522))]
}

/// Checks the installation and builds the runbook for `o.mode`: the steps every mode shares
/// (version, stop, backup and install), then the mode's own (`integrated`, `server`,
/// `agent`). `Err`: every refusal.
pub fn build(o: &Options) -> Result<Runbook, Vec<String>> {
    let f = preflight::check(o)?;
    let mut b = B {
        o,
        steps: Vec::new(),
        items: Vec::new(),
        problems: Vec::new(),
    };
    let c = Ctx::new(o, &f);
    let zip = b.p(&o.runtime_zip);

    // 1. Version.
    b.item(
        "1",
        ItemKind::Checked,
        format!(
            "starting version {} ({}); the runtime zip holds {} ({})",
            f.installed.version, f.installed.source, f.zip.found.version, f.zip.found.source
        ),
    );
    // 2. Stop.
    match o.mode {
        Mode::Integrated => b.stop("2", "the Usercube server (and its integrated agent)"),
        Mode::Server => b.stop("2", "the Usercube server and the remote agent(s)"),
        Mode::Agent => b.stop("2", "the Usercube agent"),
    }
    // 3. Backup and install.
    let (rename_seed, extract_seed) = if o.mode == Mode::Agent {
        if f.connection_string.is_some() {
            b.backup(
                "3.0",
                &f,
                Some("not in the seed's agent section: added before the first change because 8.5 deletes rows"),
            );
        }
        ("3.1", "3.2")
    } else {
        b.backup("3.1", &f, None);
        ("3.2", "3.3")
    };
    b.step(
        rename_seed,
        None,
        StepSpec::Rename {
            from: super::install::RUNTIME.into(),
            to: super::install::OLD_RUNTIME.into(),
        },
    );
    b.step(
        extract_seed,
        Some("extracted into a staging folder, renamed into place whole".into()),
        StepSpec::ExtractZip {
            archive: zip.clone(),
            dest: "Runtime".into(),
        },
    );
    match o.mode {
        Mode::Integrated => integrated(&c, &mut b),
        Mode::Server => server(&c, &mut b),
        Mode::Agent => agent(&c, &mut b),
    }

    let mut manual: Vec<String> = f
        .manual
        .iter()
        .map(|m| {
            format!(
                "{}{}: {}",
                m.file.display(),
                if m.key_path.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", m.key_path)
                },
                m.action
            )
        })
        .collect();
    manual.dedup();
    for m in &manual {
        b.item(
            "-",
            ItemKind::Manual,
            format!("accepted with --accept-manual-steps, left untouched: {m}"),
        );
    }
    let moves = moves::moves_for(c.migrate_agent)
        .map(|m| {
            format!(
                "Temp/{} -> Work/{} ({:?} side): {}",
                m.from_temp, m.to_work, m.side, m.why
            )
        })
        .collect();
    // Preflight findings travel with the plan into the journal (and the audit export):
    // recorded on the first step, the point from which they matter.
    let findings: Vec<String> = f
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .chain(manual.iter().map(|m| format!("accepted manual item: {m}")))
        .collect();
    if let (Some(first), false) = (b.steps.first_mut(), findings.is_empty()) {
        let prior = first
            .note
            .take()
            .map(|n| format!("{n}; "))
            .unwrap_or_default();
        first.note = Some(format!(
            "{prior}preflight findings: {}",
            findings.join("; ")
        ));
    }
    let title = format!(
        "Usercube {} -> {}: {} (runbook {:?})",
        f.installed.version,
        f.zip.found.version,
        o.mode.title(),
        o.mode
    );
    if !b.problems.is_empty() {
        return Err(b.problems);
    }
    let plan = Plan {
        title,
        steps: b.steps,
    };
    // Rewritten files are held in the plan: a huge Conf tree cannot make it unstorable.
    plan.check_size().map_err(|e| vec![e])?;
    Ok(Runbook {
        mode: o.mode,
        plan,
        items: b.items,
        warnings: f.warnings,
        manual,
        moves,
    })
}

/// What every mode's steps are built from: the options, preflight's facts, and what follows
/// from them (computed once).
struct Ctx<'a> {
    o: &'a Options,
    f: &'a Facts,
    /// The seed's temporary appsettings folder, relative to the root.
    asf: PathBuf,
    temp: PathBuf,
    work: PathBuf,
    /// Not in server mode: the agent's Temp/Work files move and are re-encrypted.
    migrate_agent: bool,
    /// The file names of the old Runtime's appsettings files.
    names: Vec<String>,
    enc: ServerSettings,
    server_migration: Option<ServerMigration>,
}

impl<'a> Ctx<'a> {
    fn new(o: &'a Options, f: &'a Facts) -> Ctx<'a> {
        let names: Vec<String> = f
            .appsettings
            .iter()
            .filter_map(|d| {
                d.file()
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
            })
            .collect();
        let enc = ServerSettings {
            temp_folder: o.temp_folder.clone(),
            work_folder: o.work_folder.clone(),
            encrypt_file: f.encrypt_file,
        };
        let server_doc = f
            .appsettings
            .iter()
            .find(|d| d.file().ends_with("appsettings.json"));
        let server_migration = server_doc.map(|d| migrate_server(d, &enc));
        Ctx {
            o,
            f,
            asf: PathBuf::from(APPSETTINGS_FOLDER),
            temp: temp_dir(o),
            work: work_dir(o),
            migrate_agent: o.mode != Mode::Server,
            names,
            enc,
            server_migration,
        }
    }

    fn zip_has(&self, name: &str) -> bool {
        self.f.zip.names.iter().any(|n| n == name)
    }

    /// Copies the old appsettings files into the new Runtime (a WriteFile of the old
    /// content where the zip ships a file of the same name).
    fn copy_into_runtime(&self, b: &mut B, seed: &str, skip: &[&str]) {
        for n in self.names.iter().filter(|n| !skip.contains(&n.as_str())) {
            if self.zip_has(n) {
                let content =
                    std::fs::read(self.o.root.join("Runtime").join(n)).unwrap_or_default();
                b.step(
                    seed,
                    Some(format!("the runtime zip ships its own {n}: replaced by the old one (the zip's kept for rollback)")),
                    StepSpec::WriteFile { path: new_runtime(n), content: content.into() },
                );
            } else {
                b.step(
                    seed,
                    None,
                    StepSpec::Copy {
                        from: old_runtime(n),
                        to: new_runtime(n),
                    },
                );
            }
        }
    }

    /// The server's appsettings.json in the new Runtime: rewritten, copied unchanged
    /// (`into_new`), or left as it is.
    fn server_appsettings_step(&self, b: &mut B, seed: &str, into_new: bool) {
        if let Some(m) = &self.server_migration {
            let note = changes_note(m.changes.iter().map(|c| c.to_string()).collect());
            match (&m.new_text, into_new) {
                (Some(t), _) => b.step(
                    seed,
                    Some(format!(
                        "written into the new Runtime's appsettings.json (RuntimeOld keeps the original); also sets EncryptionCertificate.EncryptFile={} (false only if every connector had FilesAreNotEncrypted=\"true\"){}",
                        self.enc.encrypt_file,
                        note.map(|n| format!("; {n}")).unwrap_or_default()
                    )),
                    StepSpec::WriteFile { path: new_runtime("appsettings.json"), content: t.clone().into_bytes().into() },
                ),
                (None, true) => b.step(
                    seed,
                    Some("appsettings.json already holds the wanted TempFolderPath/WorkFolderPath/EncryptFile: copied unchanged".into()),
                    StepSpec::Copy { from: old_runtime("appsettings.json"), to: new_runtime("appsettings.json") },
                ),
                (None, false) => b.item(seed, ItemKind::NotNeeded, "appsettings.json already holds TempFolderPath, WorkFolderPath and EncryptFile as wanted: not rewritten"),
            }
        }
    }

    /// The collect folder removed, Work made when missing, the Temp -> Work moves.
    fn files_steps(&self, b: &mut B, collect_seed: &str, move_seed: &str) {
        let collect = self.temp.join(COLLECT);
        if collect.exists() {
            b.step(
                collect_seed,
                Some("moved into the journal trash, purged at finalize".into()),
                StepSpec::DeleteTree {
                    path: b.p(&collect),
                },
            );
        } else {
            b.item(
                collect_seed,
                ItemKind::NotNeeded,
                format!("{} does not exist", b.p(&collect).display()),
            );
        }
        if !self.work.exists() {
            // Created as a step of its own so that rollback removes it (a move or copy
            // into a missing folder would create it implicitly and leave it behind).
            b.step(
                move_seed,
                Some("the Work folder does not exist yet".into()),
                StepSpec::MakeDir {
                    path: b.p(&self.work),
                },
            );
        }
        for m in moves::moves_for(self.migrate_agent) {
            let from = self.temp.join(m.from_temp);
            if from.exists() {
                b.step(
                    move_seed,
                    Some(format!("Temp -> Work move table: {}", m.why)),
                    StepSpec::MoveTree {
                        from: b.p(&from),
                        to: b.p(&self.work.join(m.to_work)),
                    },
                );
            }
        }
    }

    /// The tracked-accounts files copied into Work.
    fn tracked(&self, b: &mut B, seed: &str) {
        for t in &self.f.tracked_accounts {
            b.step(
                seed,
                None,
                StepSpec::Copy {
                    from: old_runtime(t),
                    to: b.p(&self.work.join(t)),
                },
            );
        }
    }

    /// Re-encryption (issue 5): after the moves and the tracked-accounts copies, every
    /// legacy-encrypted file under Temp and Work and every Work/tracked-accounts-*.csv.
    fn reencrypt(&self, b: &mut B, seed: &str) {
        if !self.migrate_agent {
            return;
        }
        let n = self.f.encrypted.len() + self.f.tracked_encrypted;
        match &self.f.certificate_source {
            Some(cert) if n > 0 => b.step(
                seed,
                Some(format!(
                    "{n} legacy-encrypted agent files found at plan time; each staged, verified and renamed into place, the original kept in the journal trash; the PFX password comes from {} (never in the plan)",
                    crate::crypto::PASSWORD_OPTIONS
                )),
                StepSpec::ReencryptFiles {
                    folders: vec![b.p(&self.temp), b.p(&self.work)],
                    files: vec![b.p(&self.work.join("tracked-accounts-*.csv"))],
                    certificate: cert.clone(),
                },
            ),
            _ => b.item(
                seed,
                ItemKind::NotNeeded,
                "no legacy-encrypted agent files: nothing to re-encrypt",
            ),
        }
    }

    /// The seed's temporary appsettings folder and the old appsettings files in it.
    fn asf_copies(&self, b: &mut B, seed: &str) {
        b.step(
            seed,
            Some(format!(
                "the seed's temporary appsettings folder, at ROOT/{APPSETTINGS_FOLDER}"
            )),
            StepSpec::MakeDir {
                path: self.asf.clone(),
            },
        );
        for n in &self.names {
            let is_agent = n.eq_ignore_ascii_case("appsettings.agent.json");
            match &self.f.agent_source {
                Some(src) if is_agent && src.from.len() > 1 => b.step(
                    seed,
                    Some(format!(
                        "the InformationSystems sections of {} concatenated into one file",
                        src.from
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    StepSpec::WriteFile {
                        path: self.asf.join(n),
                        content: src.text.clone().into_bytes().into(),
                    },
                ),
                _ => b.step(
                    seed,
                    None,
                    StepSpec::Copy {
                        from: old_runtime(n),
                        to: self.asf.join(n),
                    },
                ),
            }
        }
    }

    /// `520.json` and `522.json` in the temporary appsettings folder.
    fn prepare(&self, b: &mut B, seed: &str) {
        let agent_id = self
            .f
            .appsettings
            .iter()
            .find(|d| d.file().ends_with("appsettings.json"))
            .and_then(|d| {
                d.get(&["Agents"])
                    .and_then(|a| a.members())
                    .and_then(|m| m.first())
                    .map(|m| m.key.clone())
            })
            .unwrap_or_else(|| "Local".into());
        for (n, text) in prepared_files(
            Some(&self.f.installed.version),
            Some(&self.f.zip.found.version),
            &self.f.ids,
            &agent_id,
        ) {
            b.step(
                seed,
                Some("our own documented content (identifier mapping, agent identifier), computed from the old appsettings: no server start needed".into()),
                StepSpec::WriteFile { path: self.asf.join(n), content: text.into_bytes().into() },
            );
        }
    }

    /// The Runtime's agent appsettings, migrated.
    fn agent_files(&self, b: &mut B, seed: &str) {
        for (n, m) in &self.f.runtime_agent {
            let changes: Vec<String> = m.changes.iter().map(|c| c.to_string()).collect();
            match &m.new_text {
                Some(t) => b.step(
                    seed,
                    changes_note(changes),
                    StepSpec::WriteFile {
                        path: new_runtime(n),
                        content: t.clone().into_bytes().into(),
                    },
                ),
                None => b.item(
                    seed,
                    ItemKind::NotNeeded,
                    format!("{n}: no rule changes it: not rewritten"),
                ),
            }
        }
    }

    /// The configuration: Conf renamed to ConfOld, copied back, rewritten file by file.
    fn conf_steps(&self, b: &mut B, seeds: [&str; 4]) {
        let Some(conf) = &self.f.conf else {
            b.item(
                seeds[0],
                ItemKind::NotNeeded,
                "no Conf folder: nothing to migrate",
            );
            return;
        };
        b.step(
            seeds[0],
            None,
            StepSpec::Rename {
                from: "Conf".into(),
                to: "ConfOld".into(),
            },
        );
        b.item(
            seeds[1],
            ItemKind::Checked,
            format!("{APPSETTINGS_FOLDER}/appsettings.agent.json holds the pre-migration agent settings (written above, never migrated in place)"),
        );
        b.step(
            seeds[2],
            Some("the configuration is migrated at plan time: ConfOld copied to Conf, then only the files a rule changes are rewritten".into()),
            StepSpec::Copy { from: "ConfOld".into(), to: "Conf".into() },
        );
        for file in &conf.files {
            if let FileOutcome::Changed(bytes) = &file.outcome {
                let full = self.o.root.join("Conf").join(&file.path);
                let changes: Vec<String> = conf
                    .changes
                    .iter()
                    .filter(|c| c.file == full)
                    .map(|c| {
                        format!(
                            "line {} <{}{}>: {:?} {:?} -> {:?}",
                            c.line,
                            c.element,
                            c.attribute
                                .as_deref()
                                .map(|a| format!(" {a}"))
                                .unwrap_or_default(),
                            c.rule,
                            c.old,
                            c.new.as_deref().unwrap_or("(removed)")
                        )
                    })
                    .collect();
                b.step(
                    seeds[2],
                    changes_note(changes),
                    StepSpec::WriteFile {
                        path: PathBuf::from("Conf").join(&file.path),
                        content: bytes.clone().into(),
                    },
                );
            }
        }
        b.item(
            seeds[3],
            ItemKind::Manual,
            "optional: update the configuration version (change nothing else)",
        );
    }
}

/// Integrated mode (server and agent on one machine): the seed's steps 4 to 9.
fn integrated(c: &Ctx, b: &mut B) {
    b.item("4.1", ItemKind::NotNeeded, "a second backup is not needed: the backup of 3.1 is still current (nothing changed the database since)");
    c.asf_copies(b, "4.2-4.3");
    c.copy_into_runtime(b, "4.4", &[]);
    b.version_upgrade("4.5", c.f, Some(&c.asf.join("appsettings.agent.json")));
    c.server_appsettings_step(b, "5.1", false);
    c.files_steps(b, "5.2", "5.3");
    c.tracked(b, "5.3");
    c.reencrypt(b, "5.3");
    b.item("6.1", ItemKind::NotNeeded, "starting the 5.2 server is not needed: 520.json/522.json are computed from the old appsettings");
    c.prepare(b, "6.2");
    b.item("7.1", ItemKind::NotNeeded, "appsettings.connection.json is not needed: the agent settings are migrated from the old appsettings.agent.json");
    c.agent_files(b, "7.2");
    b.item(
        "7.3",
        ItemKind::Checked,
        "the migrated appsettings files are in the new Runtime (4.4, 5.1, 7.2)",
    );
    b.start("8", "the server");
    c.conf_steps(b, ["9.1", "9.2", "9.3", "9.4"]);
    b.deletes("9.5", c.f, "this section of the seed lists UJ_TaskResourceTypes and UJ_JobSteps, its agent section all three: all three are emptied");
    b.start_step("8", "the server");
    b.deploy("9.6", "9.7", "9.8");
}

/// Server mode (remote agents, upgraded after it): the seed's steps 3.4 to 8.
fn server(c: &Ctx, b: &mut B) {
    c.copy_into_runtime(b, "3.4", &[]);
    b.item("4.1", ItemKind::NotNeeded, "a second backup is not needed: the backup of 3.1 is still current (nothing changed the database since)");
    if let Some(src) = &c.f.agent_source {
        b.item(
            "4.2",
            ItemKind::Checked,
            format!(
                "agent settings from --agent-appsettings: {}",
                c.o.agent_appsettings
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        b.step(
            "4.3",
            Some(format!(
                "the seed's temporary appsettings folder, at ROOT/{APPSETTINGS_FOLDER}"
            )),
            StepSpec::MakeDir {
                path: c.asf.clone(),
            },
        );
        b.step(
            "4.4",
            (src.from.len() > 1).then(|| {
                "the InformationSystems sections of the agents concatenated into one file"
                    .to_string()
            }),
            StepSpec::WriteFile {
                path: c.asf.join("appsettings.agent.json"),
                content: src.text.clone().into_bytes().into(),
            },
        );
    } else {
        b.item("4.2-4.4", ItemKind::Manual, "no --agent-appsettings given: obtain the agent's appsettings.agent.json for the database upgrade");
    }
    b.item(
        "4.5",
        ItemKind::Checked,
        "the server's old appsettings.json is in the new Runtime (3.4)",
    );
    let agent_settings =
        c.f.agent_source
            .is_some()
            .then(|| c.asf.join("appsettings.agent.json"));
    b.version_upgrade("4.6", c.f, agent_settings.as_deref());
    c.server_appsettings_step(b, "5.1", false);
    c.files_steps(b, "5.2", "5.3");
    if c.o.start_command.is_some() || !c.o.services.is_empty() {
        b.start_step("6", "the server");
    } else {
        b.start("6", "the server");
    }
    b.item(
        "7",
        ItemKind::Manual,
        "restart the remote agent(s) (unless the --start-command does)",
    );
    b.item(
        "8",
        ItemKind::Manual,
        "do not upgrade or deploy the configuration until the agent has also been upgraded",
    );
}

/// Agent mode (a remote agent, after its server): the seed's steps 4 to 8.
fn agent(c: &Ctx, b: &mut B) {
    c.server_appsettings_step(b, "4.1", true);
    c.files_steps(b, "4.2", "4.3");
    c.tracked(b, "4.4");
    c.reencrypt(b, "4.4");
    c.asf_copies(b, "5.1-5.2");
    c.copy_into_runtime(b, "5.2", &["appsettings.json"]);
    if c.o.root.join("Runtime/web.config").is_file() {
        if c.zip_has("web.config") {
            let content = std::fs::read(c.o.root.join("Runtime/web.config")).unwrap_or_default();
            b.step(
                "5.3",
                Some("the zip ships its own web.config: replaced by the old one".into()),
                StepSpec::WriteFile {
                    path: new_runtime("web.config"),
                    content: content.into(),
                },
            );
        } else {
            b.step(
                "5.3",
                None,
                StepSpec::Copy {
                    from: old_runtime("web.config"),
                    to: new_runtime("web.config"),
                },
            );
        }
    }
    b.item("5.4", ItemKind::NotNeeded, "starting the server is not needed: 520.json/522.json are computed from the old appsettings");
    c.prepare(b, "5.5");
    b.item("6.1", ItemKind::NotNeeded, "appsettings.connection.json is not needed: the agent settings are migrated from the old appsettings.agent.json");
    c.agent_files(b, "6.2");
    b.start("7", "the agent");
    c.conf_steps(b, ["8.1", "8.2", "8.3", "8.4"]);
    b.deletes(
        "8.5",
        c.f,
        "the database was backed up before the first change (3.0)",
    );
    b.start_step("7", "the agent");
    b.deploy("8.6", "8.7", "8.8");
}

/// `name` in the old Runtime (renamed `RuntimeOld` at step 3).
fn old_runtime(name: &str) -> PathBuf {
    PathBuf::from(super::install::OLD_RUNTIME).join(name)
}

/// `name` in the new Runtime (extracted from the zip).
fn new_runtime(name: &str) -> PathBuf {
    PathBuf::from("Runtime").join(name)
}

/// A step's note listing the rule changes it writes, when there are any.
fn changes_note(changes: Vec<String>) -> Option<String> {
    (!changes.is_empty()).then(|| format!("changes: {}", changes.join("; ")))
}
