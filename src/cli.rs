//! Command line: clap structures close to the flags, then one call into the engine per
//! subcommand. Output for people on stdout, `--json` for machines; errors go back to
//! `main`, which prints them and maps them to exit codes.

use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Parser, Subcommand};
use serde::Serialize;

use crate::crypto::CertPassword;
use crate::engine::{self, audit, preflight, state, Engine, Options, RootLock};

/// Every `println!` of this module writes through [`crate::out`]: a closed pipe (`| head`)
/// drops the text instead of panicking; the command goes on to its own exit code.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
use crate::plan::Plan;
use crate::runbook::tools::Job;
use crate::{runbook, sample, Error, Result};

#[derive(Parser, Debug)]
#[command(
    name = "usercube-upgrade",
    version,
    about = "Journaled, reversible Usercube 5.1.7 -> 5.2.3 upgrade"
)]
pub struct Args {
    /// Print only errors (and --json output).
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct Target {
    /// The installation root (the folder holding Runtime, Conf, Temp, Work) [default: the
    /// parent of the current folder when that is the installation's Runtime folder, where
    /// the guide runs its tools].
    #[arg(
        long,
        value_name = "DIR",
        default_value_os_t = root_from_current_folder(),
        hide_default_value = true,
        // Empty when not found: then `engine::canonical_root` asks for --root.
        value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from)
    )]
    pub root: PathBuf,
    /// Journal folder [default: ROOT/.usercube-upgrade]; a relative DIR is taken from the
    /// current folder (and shown absolute).
    #[arg(
        long,
        value_name = "DIR",
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::OsStringValueParser::new(),
            |s| absolute(Path::new(&s))
        )
    )]
    pub journal: Option<PathBuf>,
}

/// The default `--root`: the parent of the current folder when the current folder is an
/// installation's `Runtime` (it holds the server's or the agent's `.deps.json`); otherwise
/// empty, and `--root` is then needed (`engine::canonical_root` says so).
fn root_from_current_folder() -> PathBuf {
    let Ok(here) = std::env::current_dir() else {
        return PathBuf::new();
    };
    let is_runtime = here.file_name().is_some_and(|n| {
        crate::platform::same_name(&n.to_string_lossy(), "Runtime")
            && [
                runbook::install::Product::Server,
                runbook::install::Product::Agent,
            ]
            .iter()
            .any(|p| here.join(p.deps_file()).is_file())
    });
    match (is_runtime, here.parent()) {
        (true, Some(root)) => root.to_path_buf(),
        _ => PathBuf::new(),
    }
}

#[derive(ClapArgs, Debug, Clone)]
pub struct PlanSource {
    /// A plan as JSON (see README). `plan` and `run` need this or --mode.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["mode", "sample_plan"])]
    pub plan: Option<PathBuf>,
    /// The engine's own small sample plan, for tests and benchmarks of the
    /// engine on a sample installation; never used by omission.
    #[arg(long, hide = true, conflicts_with = "mode")]
    pub sample_plan: bool,
    #[command(flatten)]
    pub runbook: RunbookArgs,
}

/// The 5.1.7 -> 5.2.3 runbook's options (vendor names where the guide has them).
#[derive(ClapArgs, Debug, Clone)]
pub struct RunbookArgs {
    /// Which procedure of the guide: integrated (server and agent on one machine), server
    /// (remote agents), agent (a remote agent, after its server). Needs --runtime-zip.
    #[arg(long, value_enum, requires = "runtime_zip")]
    pub mode: Option<ModeArg>,
    /// The new runtime, `Runtime_5.2.3.<build>.zip`.
    #[arg(long, value_name = "FILE")]
    pub runtime_zip: Option<PathBuf>,
    /// Database connection [default: ConnectionString of Runtime/appsettings.json].
    #[arg(long, value_name = "CS")]
    pub connection_string: Option<String>,
    /// Database backup folder [default: ROOT/DatabaseBackup]; for SQL Server, a folder the
    /// server writes, as the server sees it.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// The database schema upgrade command (program and arguments, quoted like a shell; a
    /// relative program path is taken from the current folder) [default: the new Runtime's
    /// identitymanager-Upgrade-DatabaseVersion.exe with the guide's arguments; preflight
    /// refuses when it cannot run here].
    #[arg(long, value_name = "CMD", conflicts_with = "skip_database_upgrade")]
    pub database_upgrade_command: Option<String>,
    /// Leave the database schema upgrade (guide step 4.5/4.6) out of the run: you run the
    /// vendor's tool yourself afterwards; the run's summary lists it first.
    #[arg(long)]
    pub skip_database_upgrade: bool,
    /// Resolve relative paths of the agent's connections against this Runtime folder
    /// (a relative value is taken from the current folder).
    #[arg(long, value_name = "DIR")]
    pub runtime_path: Option<String>,
    #[command(flatten)]
    pub cert: CertificateArgs,
    /// appsettings.agent.json of further agents (their InformationSystems are concatenated).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub agent_appsettings: Vec<PathBuf>,
    /// TempFolderPath as written into appsettings.json, relative to Runtime (as the
    /// vendor's setting is).
    #[arg(long, value_name = "DIR", default_value = "../Temp")]
    pub temp_folder: String,
    /// WorkFolderPath as written into appsettings.json, relative to Runtime (as the
    /// vendor's setting is).
    #[arg(long, value_name = "DIR", default_value = "../Work")]
    pub work_folder: String,
    /// How to stop the service (`sh -c`): the plan's first step, after every check and
    /// before any change; journaled; rollback runs the start command after its last undo.
    #[arg(long, value_name = "CMD")]
    pub stop_command: Option<String>,
    /// How to start the service (`sh -c`): the plan's last step; journaled; rollback runs
    /// the stop command before its first undo.
    #[arg(long, value_name = "CMD")]
    pub start_command: Option<String>,
    /// A Windows service to stop first and start last through the Service Control Manager
    /// (repeatable: stopped in the order given, started in reverse); journaled steps, like
    /// the commands, which it replaces. Windows only.
    #[arg(long = "service", value_name = "NAME", conflicts_with_all = ["stop_command", "start_command"])]
    pub services: Vec<String>,
    /// Continue when CyberArk, Azure Key Vault, SAP or SharePoint settings are found,
    /// leaving them to you (they are listed).
    #[arg(long)]
    pub accept_manual_steps: bool,
    /// Agent mode: the server was upgraded first, although the database cannot show it (no
    /// version table UM_DatabaseVersion, or unreadable). A database reporting 5.1 still
    /// refuses.
    #[arg(long)]
    pub server_upgraded: bool,
}

/// Arguments every vendor-tool subcommand takes.
#[derive(ClapArgs, Debug, Clone)]
pub struct ToolArgs {
    /// The starting version, as for the vendor's tools (5.1.7).
    #[arg(long = "version", value_name = "V")]
    pub from_version: String,
    /// Print the plan and check it; change nothing.
    #[arg(long)]
    pub plan_only: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum ModeArg {
    Integrated,
    Server,
    Agent,
}

impl RunbookArgs {
    fn options(&self, root: &Path) -> Option<runbook::Options> {
        let mode = match self.mode? {
            ModeArg::Integrated => runbook::Mode::Integrated,
            ModeArg::Server => runbook::Mode::Server,
            ModeArg::Agent => runbook::Mode::Agent,
        };
        let abs = |p: &PathBuf| absolute(p);
        let zip = abs(self.runtime_zip.as_ref()?);
        let mut o = runbook::Options::new(root.to_path_buf(), mode, zip);
        o.connection_string = self.connection_string.as_deref().map(absolute_sqlite);
        o.backup_dir = self.backup_dir.as_ref().map(abs);
        o.database_upgrade_command = self
            .database_upgrade_command
            .as_deref()
            .map(absolute_program);
        o.skip_database_upgrade = self.skip_database_upgrade;
        o.runtime_path = self.runtime_path.as_deref().map(absolute_str);
        o.cert = self.cert.options();
        o.agent_appsettings = self.agent_appsettings.iter().map(abs).collect();
        o.temp_folder = self.temp_folder.clone();
        o.work_folder = self.work_folder.clone();
        o.stop_command = self.stop_command.clone();
        o.start_command = self.start_command.clone();
        o.services = self.services.clone();
        o.accept_manual_steps = self.accept_manual_steps;
        o.server_upgraded = self.server_upgraded;
        Some(o)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the plan and print it; changes nothing.
    Plan {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        source: PlanSource,
        /// Print the plan (and any refusals) as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Execute the plan; on failure roll back automatically.
    Run {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        source: PlanSource,
        /// Leave a failed run as it is (then `resume` or `rollback`).
        #[arg(long)]
        no_auto_rollback: bool,
        /// Most steps whose journal records share one flush.
        #[arg(long, default_value_t = 256, hide = true)]
        batch: usize,
        /// Stop after this step of the vendor guide (as `plan` numbers them, e.g. 4.5),
        /// leaving the run open and reversible: check, then `resume` (or `resume --until`)
        /// goes on, `rollback` undoes it.
        #[arg(long, value_name = "GUIDE-STEP")]
        until: Option<String>,
    },
    /// Finish an interrupted run from the journal, probing each unfinished step.
    Resume {
        #[command(flatten)]
        target: Target,
        /// The PFX password of an unfinished re-encryption step (never journaled).
        #[command(flatten)]
        password: CertPasswordArgs,
        /// Stop again after this step of the vendor guide (e.g. 5.3); the run stays open.
        #[arg(long, value_name = "GUIDE-STEP")]
        until: Option<String>,
    },
    /// Restore the exact starting state of the latest run.
    Rollback {
        #[command(flatten)]
        target: Target,
        /// Undo even what changed after the step ran.
        #[arg(long)]
        force: bool,
    },
    /// Where the latest run stands.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print the status as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Purge what was kept only for rollback (the journal stays for audit).
    Finalize {
        #[command(flatten)]
        target: Target,
    },
    /// The vendor's Upgrade-Files job, journaled: the Temp -> Work move table.
    UpgradeFiles {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        tool: ToolArgs,
        /// Move the agent's folders too (integrated and agent installations).
        #[arg(long)]
        migrate_agent: bool,
        #[command(flatten)]
        cert: CertificateArgs,
        /// The Temp folder, relative to Runtime (as the vendor's TempFolderPath).
        #[arg(long, value_name = "DIR", default_value = "../Temp")]
        temp_folder: String,
        /// The Work folder, relative to Runtime (as the vendor's WorkFolderPath).
        #[arg(long, value_name = "DIR", default_value = "../Work")]
        work_folder: String,
    },
    /// The vendor's Prepare-UpgradeAppsettings job, journaled: writes 520.json and 522.json.
    PrepareUpgradeAppsettings {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        tool: ToolArgs,
        /// The folder to write 520.json and 522.json into (the guide's AppSettingsFolder).
        #[arg(long, value_name = "DIR")]
        output_path: PathBuf,
        /// Accepted for compatibility; not used (the mapping comes from the agent settings).
        #[arg(long, value_name = "CS")]
        connection_string: Option<String>,
        /// The agent's identifier written into 522.json.
        #[arg(long, value_name = "ID", default_value = "Local")]
        agent_identifier: String,
    },
    /// The vendor's Upgrade-Appsettings job, journaled: migrated settings into Runtime.
    UpgradeAppsettings {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        tool: ToolArgs,
        /// The folder holding the settings to migrate (the guide's AppSettingsFolder).
        #[arg(long, value_name = "DIR")]
        input_path: PathBuf,
        /// Migrate only appsettings.agent.json (remote agent installations).
        #[arg(long)]
        migrate_only_agent: bool,
        /// Resolve relative paths of the agent's connections against this Runtime folder
        /// (a relative value is taken from the current folder).
        #[arg(long, value_name = "DIR")]
        runtime_path: Option<String>,
    },
    /// The vendor's Upgrade-ConfigurationVersion job, journaled: ConfOld -> Conf migrated.
    UpgradeConfigurationVersion {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        tool: ToolArgs,
        /// The old configuration folder to read (the guide's ConfOld).
        #[arg(long, value_name = "DIR")]
        xml_path: PathBuf,
        /// The folder to write the migrated configuration into (the guide's Conf).
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
        /// The agent settings whose connection identifiers the configuration uses.
        #[arg(long, value_name = "FILE")]
        appsettings_path: PathBuf,
        /// Resolve relative paths of the agent's connections against this Runtime folder
        /// (a relative value is taken from the current folder).
        #[arg(long, value_name = "DIR")]
        runtime_path: Option<String>,
    },
    /// The audit: show, verify or export the journal.
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Create the sample installation in DIR (default: a new temporary folder) and run the
    /// built-in plan on it end to end.
    Demo {
        /// An empty or new folder for the demo installation [default: a new temporary
        /// folder].
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Only create the installation (and print the command that upgrades it).
        #[arg(long)]
        no_run: bool,
        /// Files in the Runtime (and in the runtime zip).
        #[arg(long, value_name = "N", default_value_t = 300)]
        files: usize,
        /// Total bytes of those files (K, M, G suffixes).
        #[arg(long, value_name = "SIZE", default_value = "3M")]
        bytes: String,
        /// Rows per UJ table of the demo database.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        rows: u64,
        /// Extra legacy-encrypted exports of 4-16 KiB in Temp/ExportOutput (a real agent
        /// holds thousands; the re-encryption step converts them).
        #[arg(long, value_name = "N", default_value_t = 0)]
        encrypted_files: usize,
    },
    /// Encrypt files in the new format for a certificate (like the vendor's Encrypt-File).
    /// All files are written and verified before any is replaced; on error nothing changes.
    EncryptFile {
        /// Files to encrypt (replaced in place unless --output-path is given).
        #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Write the results into this folder (same file names) instead.
        #[arg(long, value_name = "DIR")]
        output_path: Option<PathBuf>,
        #[command(flatten)]
        cert: CertificateArgs,
    },
    /// Decrypt files encrypted in the new or the legacy (5.1) format (like the vendor's
    /// Decrypt-File). All files are decrypted before any is replaced; on error nothing changes.
    DecryptFile {
        /// Files to decrypt (replaced in place unless --output-path is given).
        #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Write the results into this folder (same file names) instead.
        #[arg(long, value_name = "DIR")]
        output_path: Option<PathBuf>,
        #[command(flatten)]
        cert: CertificateArgs,
    },
}

/// The vendor's certificate options, declared once for every command that takes a
/// certificate: a PFX file and its password, or a store lookup. The one mapping to a
/// [`crate::crypto::CertificateSource`] is [`crate::crypto::CertificateOptions::source`].
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct CertificateArgs {
    /// PFX file holding the agent's certificate and its RSA private key (its password: see
    /// --file-cert-password-file).
    #[arg(long, value_name = "FILE")]
    pub file_cert_file: Option<PathBuf>,
    #[command(flatten)]
    pub password: CertPasswordArgs,
    /// Thumbprint of the certificate: looked up in the store, or, with --file-cert-file,
    /// checked against the PFX.
    #[arg(long, value_name = "THUMBPRINT")]
    pub file_cert_thumbprint: Option<String>,
    /// Store location of --file-cert-thumbprint: CurrentUser or LocalMachine
    /// [default: CurrentUser].
    #[arg(long, value_name = "LOCATION")]
    pub file_cert_store_location: Option<String>,
    /// Store name of --file-cert-thumbprint, for example My [default: My].
    #[arg(long, value_name = "NAME")]
    pub file_cert_store_name: Option<String>,
    /// Folder holding the store's PFX files, instead of the .NET convention (and, on
    /// Windows, instead of the Windows certificate store).
    #[arg(long, value_name = "DIR")]
    pub file_cert_store_path: Option<PathBuf>,
}

/// How the PFX password is given: one of these, else `$USERCUBE_UPGRADE_CERT_PASSWORD`.
/// It is never stored in a plan or the journal, and wiped from memory after use.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct CertPasswordArgs {
    /// The PFX password on the command line, where other accounts of this machine can read
    /// it (a warning is printed): prefer --file-cert-password-file or
    /// USERCUBE_UPGRADE_CERT_PASSWORD.
    #[arg(
        long,
        value_name = "PASSWORD",
        conflicts_with = "file_cert_password_file"
    )]
    pub file_cert_password: Option<String>,
    /// A file whose first line is the PFX password; `-` reads it from standard input
    /// [default: the environment variable USERCUBE_UPGRADE_CERT_PASSWORD].
    #[arg(long, value_name = "FILE")]
    pub file_cert_password_file: Option<PathBuf>,
}

impl CertificateArgs {
    /// The options for the one mapping (paths made absolute), without the password.
    pub fn options(&self) -> crate::crypto::CertificateOptions {
        crate::crypto::CertificateOptions {
            file: self.file_cert_file.as_deref().map(absolute),
            thumbprint: self.file_cert_thumbprint.clone(),
            store_location: self.file_cert_store_location.clone(),
            store_name: self.file_cert_store_name.clone(),
            store_path: self.file_cert_store_path.as_deref().map(absolute),
        }
    }

    /// Loads the certificate for `encrypt-file` / `decrypt-file`; every failure is a
    /// refusal (exit 2, nothing changed).
    fn load(&self, password: Option<&CertPassword>) -> Result<crate::crypto::Certificate> {
        let source = self
            .options()
            .source()
            .map_err(|e| Error::Usage(e.to_string()))?
            .ok_or_else(|| {
                Error::Usage(format!(
                    "give a certificate: --file-cert-file F (its password with {}), or --file-cert-thumbprint T [--file-cert-store-location L --file-cert-store-name N]",
                    crate::crypto::PASSWORD_OPTIONS
                ))
            })?;
        source
            .load(Path::new("."), password)
            .map_err(|e| Error::Refused(format!("{e}; nothing was changed")))
    }
}

impl CertPasswordArgs {
    /// The password, taken out of the arguments (so that the only copy is the one wiped on
    /// drop): `--file-cert-password` (with a warning on stderr unless `quiet`),
    /// `--file-cert-password-file` (`-`: standard input), else the environment variable.
    fn take(&mut self, quiet: bool) -> Result<Option<CertPassword>> {
        if let Some(p) = self.file_cert_password.take() {
            if !quiet {
                eprintln!(
                    "warning: --file-cert-password puts the password where other accounts of this machine can read it (process list, shell history); prefer --file-cert-password-file FILE or the environment variable {}",
                    crate::crypto::PASSWORD_ENV
                );
            }
            return Ok(Some(CertPassword::new(p)));
        }
        let read = match &self.file_cert_password_file {
            None => return Ok(CertPassword::from_env()),
            Some(f) if f.as_os_str() == "-" => CertPassword::from_reader(
                std::io::stdin().lock(),
                "--file-cert-password-file - (standard input)",
            ),
            Some(f) => {
                let what = format!("--file-cert-password-file {}", f.display());
                std::fs::File::open(f)
                    .map_err(|e| crate::crypto::SourceError::PasswordFile(format!("{what}: {e}")))
                    .and_then(|file| CertPassword::from_reader(file, &what))
            }
        };
        read.map(Some).map_err(|e| Error::Usage(e.to_string()))
    }
}

#[derive(Subcommand, Debug)]
pub enum JournalAction {
    /// One line per record.
    Show {
        #[command(flatten)]
        target: Target,
    },
    /// Verify every record's checksum and the hash chain (exit 3 when corrupt).
    Verify {
        #[command(flatten)]
        target: Target,
    },
    /// Every run and step with what it touched, hashes and timings.
    Export {
        #[command(flatten)]
        target: Target,
        /// JSON (the only format for now; accepted for clarity).
        #[arg(long)]
        json: bool,
    },
    /// For a journal that no longer verifies (exit 3): write every record that still
    /// verifies, and the steps they show done, as JSON. Reads only; repairs nothing.
    Salvage {
        #[command(flatten)]
        target: Target,
        /// The JSON file to write.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
}

/// A plan to print or run, with the runbook around it when `--mode` was given.
struct Loaded {
    plan: Plan,
    runbook: Option<runbook::Runbook>,
}

fn load(target: &Target, source: &PlanSource, command: &str) -> Result<Loaded> {
    if source.runbook.mode.is_none() && source.plan.is_none() && !source.sample_plan {
        // Never a built-in plan by omission: it would act on files this installation may
        // not have.
        return Err(Error::Usage(format!(
            "`{command}` needs --mode integrated|server|agent with --runtime-zip FILE (the vendor guide's procedure), or --plan FILE (a plan as JSON); nothing was changed"
        )));
    }
    let root = engine::canonical_root(&target.root)?;
    match source.runbook.options(&root) {
        Some(o) => {
            let rb = runbook::build(&o).map_err(|mut problems| {
                // Only a journal with records: a `run` has just created its (empty) one.
                if engine::journal_holds_records(&journal_dir(&root, target)) {
                    let journal = target
                        .journal
                        .as_ref()
                        .map(|j| format!(" --journal {}", j.display()))
                        .unwrap_or_default();
                    problems.push(format!(
                        "the journal records an earlier run on this installation: see `usercube-upgrade status --root {}{journal}`",
                        root.display()
                    ));
                }
                Error::Refused(preflight::refusal(&problems))
            })?;
            Ok(Loaded {
                plan: rb.plan.clone(),
                runbook: Some(rb),
            })
        }
        None => Ok(Loaded {
            plan: load_plan(source)?,
            runbook: None,
        }),
    }
}

fn load_plan(source: &PlanSource) -> Result<Plan> {
    match &source.plan {
        None => Ok(sample::plan()),
        Some(file) => {
            let file = &absolute(file);
            let text =
                crate::limits::read_text_limited(file, crate::limits::MAX_PLAN_BYTES, "plan files")
                    .map_err(|e| {
                        Error::Usage(format!("{}: cannot read the plan: {e}", file.display()))
                    })?;
            Plan::from_json(file, &text)
        }
    }
}

/// `run`: the root lock first; then, under it, whether the journal is new, the plan (built
/// from a tree no other process is changing), and the engine. A refusal by the lock changes
/// nothing. A refusal before the first record of a journal that was new removes the journal
/// folder — under the lock again, and only if it still holds no record.
fn run_locked(
    target: &Target,
    opts: Options,
    until: Option<&str>,
    load: impl FnOnce() -> Result<Loaded>,
) -> Result<(Loaded, engine::Finish)> {
    let locked = engine::Locked::acquire(&target.root, target.journal.as_deref())?;
    // Only a folder this run created is removed after a refusal (`--journal` may name one
    // that holds other things).
    let was_empty = locked.journal_is_empty() && locked.created();
    let dir = locked.dir().to_path_buf();
    let result = Engine::open_locked(locked, opts).and_then(|mut engine| {
        // An open or unfinalized run comes first: the tree is half upgraded, and the
        // plan's checks (the installed version first) would only mislead.
        engine.refuse_if_open()?;
        let l = load()?;
        let finish = engine.run_until(l.plan.clone(), until)?;
        Ok((l, finish))
    });
    if let (Err(Error::Refused(_) | Error::Usage(_)), true) = (&result, was_empty) {
        // Refused before the first record: leave no trace, not even the journal folder.
        if let Ok(again) = engine::Locked::acquire(&target.root, Some(&dir)) {
            if again.journal_is_empty() {
                again.remove_empty_journal();
            }
        }
    }
    result
}

/// `opts` with SIGINT and SIGTERM (Ctrl+C, Ctrl+Break, the console closing) routed to the
/// engine, which stops at its next durable point; only for the commands that run the
/// engine, since nothing else reads the request.
fn watched(opts: Options) -> Options {
    if let Err(e) = crate::platform::watch_stop_requests(&opts.stop) {
        tracing::warn!("signals are not watched: {e}");
    }
    opts
}

fn journal_dir(root: &Path, target: &Target) -> PathBuf {
    target
        .journal
        .clone()
        .unwrap_or_else(|| engine::default_journal_dir(root))
}

pub fn run(args: Args) -> Result<()> {
    let quiet = args.quiet;
    let opts = Options {
        quiet,
        // For the audit: who, where, and this command line with its secrets masked.
        context: engine::payload::RunContext::of_process(
            std::env::args_os().map(|a| a.to_string_lossy().into_owned()),
        ),
        ..Options::default()
    };
    let open = |t: &Target, opts: Options| Engine::open(&t.root, t.journal.as_deref(), opts);
    match args.command {
        Command::Plan {
            target,
            mut source,
            json,
        } => {
            let password = source.runbook.cert.password.take(quiet)?;
            // While a run holds the lock, its tree is half changed: refuse at once rather
            // than plan from it. No journal folder: nothing runs (and `plan` creates none).
            let dir = journal_dir(&engine::canonical_root(&target.root)?, &target);
            let _lock = if dir.is_dir() {
                Some(RootLock::acquire(&dir)?)
            } else {
                None
            };
            let l = load(&target, &source, "plan")?;
            print_plan(
                &target,
                &l.plan,
                l.runbook.as_ref(),
                json,
                password.as_ref(),
            )
        }
        Command::Run {
            target,
            mut source,
            no_auto_rollback,
            batch,
            until,
        } => {
            let opts = Options {
                auto_rollback: !no_auto_rollback,
                batch,
                cert_password: source.runbook.cert.password.take(quiet)?,
                ..watched(opts)
            };
            let (l, finish) = run_locked(&target, opts, until.as_deref(), || {
                let l = load(&target, &source, "run")?;
                if let (Some(rb), false) = (&l.runbook, quiet) {
                    print_warnings(rb);
                }
                Ok(l)
            })?;
            if let (Some(rb), false, engine::Finish::Committed) = (&l.runbook, quiet, finish) {
                print_remaining(rb);
            }
            Ok(())
        }
        Command::Resume {
            target,
            mut password,
            until,
        } => {
            let opts = Options {
                cert_password: password.take(quiet)?,
                ..watched(opts)
            };
            let mut e = open(&target, opts)?;
            e.resume_until(until.as_deref()).map(|_| ())
        }
        Command::Rollback { target, force } => {
            // Space first (a full disk): sled may write when the journal opens.
            let locked = engine::Locked::acquire(&target.root, target.journal.as_deref())?;
            locked.release_reserve()?;
            Engine::open_locked(
                locked,
                Options {
                    force,
                    ..watched(opts)
                },
            )?
            .rollback()
        }
        Command::Finalize { target } => open(&target, opts)?.finalize(),
        Command::Status { target, json } => print_status(&target, json),
        Command::UpgradeFiles {
            target,
            tool,
            migrate_agent,
            mut cert,
            temp_folder,
            work_folder,
        } => {
            let root = engine::canonical_root(&target.root)?;
            let opts = Options {
                cert_password: cert.password.take(quiet)?,
                ..opts
            };
            if tool_in_open_run(&target, Job::UpgradeFiles, tool.plan_only, &opts)? {
                return Ok(());
            }
            let rt = root.join("Runtime");
            let (plan, notes) = runbook::tools::upgrade_files(
                &root,
                &tool.from_version,
                migrate_agent,
                &cert.options(),
                &runbook::normalize(&rt, &temp_folder),
                &runbook::normalize(&rt, &work_folder),
            )
            .map_err(|p| Error::Refused(preflight::refusal(&p)))?;
            for n in notes {
                println!("note: {n}");
            }
            tool_run(&target, &tool, plan, opts)
        }
        Command::PrepareUpgradeAppsettings {
            target,
            tool,
            output_path,
            connection_string: _,
            agent_identifier,
        } => {
            let root = engine::canonical_root(&target.root)?;
            if tool_in_open_run(
                &target,
                Job::PrepareUpgradeAppsettings,
                tool.plan_only,
                &opts,
            )? {
                return Ok(());
            }
            let plan = runbook::tools::prepare_upgrade_appsettings(
                &root,
                &tool.from_version,
                &absolute(&output_path),
                &agent_identifier,
            )
            .map_err(|p| Error::Refused(preflight::refusal(&p)))?;
            tool_run(&target, &tool, plan, opts)
        }
        Command::UpgradeAppsettings {
            target,
            tool,
            input_path,
            migrate_only_agent,
            runtime_path,
        } => {
            let root = engine::canonical_root(&target.root)?;
            let job = Job::UpgradeAppsettings { migrate_only_agent };
            if tool_in_open_run(&target, job, tool.plan_only, &opts)? {
                return Ok(());
            }
            let plan = runbook::tools::upgrade_appsettings(
                &root,
                &tool.from_version,
                &absolute(&input_path),
                migrate_only_agent,
                runtime_path.as_deref().map(absolute_str).as_deref(),
            )
            .map_err(|p| Error::Refused(preflight::refusal(&p)))?;
            tool_run(&target, &tool, plan, opts)
        }
        Command::UpgradeConfigurationVersion {
            target,
            tool,
            xml_path,
            output,
            appsettings_path,
            runtime_path,
        } => {
            let root = engine::canonical_root(&target.root)?;
            if tool_in_open_run(
                &target,
                Job::UpgradeConfigurationVersion,
                tool.plan_only,
                &opts,
            )? {
                return Ok(());
            }
            let plan = runbook::tools::upgrade_configuration_version(
                &root,
                &tool.from_version,
                &absolute(&xml_path),
                &absolute(&output),
                &absolute(&appsettings_path),
                runtime_path.as_deref().map(absolute_str).as_deref(),
            )
            .map_err(|p| Error::Refused(preflight::refusal(&p)))?;
            tool_run(&target, &tool, plan, opts)
        }
        Command::Journal { action } => match action {
            JournalAction::Verify { target } => {
                let e = open(&target, opts)?;
                let j = e.journal();
                println!(
                    "journal {} verified: {} records, hash chain intact, last record sha256 {}",
                    j.dir().display(),
                    j.records().len(),
                    j.last()
                        .map(|r| hex::encode(r.hash))
                        .unwrap_or_else(|| "-".into())
                );
                Ok(())
            }
            JournalAction::Show { target } => {
                let e = open(&target, opts)?;
                let text = audit::show(e.journal().records());
                crate::out::print(&text)
            }
            JournalAction::Salvage { target, output } => salvage(&target, &output),
            JournalAction::Export { target, json: _ } => {
                let e = open(&target, opts)?;
                let a = e.audit()?;
                let mut text = crate::secrets::to_public_json(&a);
                text.push('\n');
                crate::out::print(&text)
            }
        },
        Command::Demo {
            dir,
            no_run,
            files,
            bytes,
            rows,
            encrypted_files,
        } => {
            let size = runbook::demo::DemoSize {
                files,
                bytes: runbook::demo::parse_size(&bytes).map_err(Error::Usage)?,
                rows,
            };
            demo(dir, no_run, size, encrypted_files, opts)
        }
        Command::EncryptFile {
            files,
            output_path,
            mut cert,
        } => {
            let password = cert.password.take(quiet)?;
            let certificate = cert.load(password.as_ref())?;
            drop(password);
            crate::filecrypt::encrypt_files(&certificate, &files, output_path.as_deref(), quiet)
        }
        Command::DecryptFile {
            files,
            output_path,
            mut cert,
        } => {
            let password = cert.password.take(quiet)?;
            let certificate = cert.load(password.as_ref())?;
            drop(password);
            crate::filecrypt::decrypt_files(&certificate, &files, output_path.as_deref(), quiet)
        }
    }
}

fn print_plan(
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

/// A command-line path, resolved against the current folder (every relative path given
/// on the command line is).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A path kept as text (written into settings files): resolved against the current folder
/// unless it is absolute here or a Windows absolute path (`C:/...`, `\\server\...`), which a
/// remote agent's setting may be whatever this machine runs.
fn absolute_str(p: &str) -> String {
    let b = p.as_bytes();
    let windows_absolute = (b.len() >= 3
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && matches!(b[2], b'/' | b'\\'))
        || p.starts_with("\\\\")
        || p.starts_with("//");
    if windows_absolute || Path::new(p).is_absolute() {
        return p.to_string();
    }
    absolute(Path::new(p)).display().to_string()
}

/// `sqlite:PATH` with a relative PATH resolved against the current folder, like every
/// other command-line path; other connection strings unchanged.
fn absolute_sqlite(cs: &str) -> String {
    match cs.strip_prefix("sqlite:") {
        Some(p) if !p.is_empty() => format!("sqlite:{}", absolute_str(p)),
        _ => cs.to_string(),
    }
}

/// A command line whose program, when given as a relative path (`./tool`, `bin/tool`),
/// is resolved against the current folder; a bare name is looked up on PATH. A command
/// that does not split is left as it is, for preflight to refuse.
fn absolute_program(cmd: &str) -> String {
    let Ok(mut words) = runbook::split_command(cmd) else {
        return cmd.to_string();
    };
    match words.first() {
        Some(p) if Path::new(p).components().count() > 1 && Path::new(p).is_relative() => {
            words[0] = absolute_str(p);
        }
        _ => return cmd.to_string(),
    }
    words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A vendor-tool subcommand: print and check its plan, or run it through the engine.
fn tool_run(target: &Target, tool: &ToolArgs, plan: Plan, opts: Options) -> Result<()> {
    if tool.plan_only {
        return print_plan(target, &plan, None, false, opts.cert_password.as_ref());
    }
    Engine::open(&target.root, target.journal.as_deref(), watched(opts))?.run(plan)
}

/// A vendor-named subcommand on an installation whose latest run is open (paused,
/// interrupted, failed) or not finalized. When that run's plan has steps doing the job
/// (`tools::Job::steps_in`), the job is done there, as `resume --until` its last guide step
/// would (that plan was computed when the run started: the arguments given here are not
/// used), or found already done; otherwise it is refused, naming the commands that do it.
/// `Ok(false)`: no such run, the subcommand runs as a plan of its own.
fn tool_in_open_run(
    target: &Target,
    job: runbook::tools::Job,
    plan_only: bool,
    opts: &Options,
) -> Result<bool> {
    let root = engine::canonical_root(&target.root)?;
    let dir = journal_dir(&root, target);
    if !dir.join(crate::journal::log::LOG_FILE).exists()
        && !dir.join(crate::journal::STORE_DIR).exists()
    {
        return Ok(false);
    }
    let quiet = opts.quiet;
    let opts = if plan_only {
        opts.clone()
    } else {
        watched(opts.clone())
    };
    let mut engine = Engine::open(&root, target.journal.as_deref(), opts)?;
    let Some(run) = engine.latest()? else {
        return Ok(false);
    };
    if matches!(
        run.status,
        state::RunStatus::RolledBack | state::RunStatus::Finalized
    ) {
        return Ok(false);
    }
    let name = job.name();
    let plan = &run.started.plan;
    let ks = job.steps_in(plan);
    let seed = |k: usize| plan.steps[k].seed.clone().unwrap_or_else(|| "-".into());
    let described = {
        let mut seeds: Vec<String> = ks.iter().map(|&k| seed(k)).collect();
        seeds.dedup();
        match (ks.first(), ks.last()) {
            (Some(&a), Some(&b)) => format!(
                "steps {}-{} (guide {})",
                plan.steps[a].id,
                plan.steps[b].id,
                seeds.join(", ")
            ),
            _ => String::new(),
        }
    };
    let done = |k: usize| run.step(plan.steps[k].id).is_some_and(|s| s.done.is_some());
    let resume = engine.command("resume");
    if ks.is_empty() || run.rollback_started() {
        let state = engine
            .refuse_if_open()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(Error::Refused(format!(
            "`{name}` is not part of the latest run and cannot start a run of its own now: {state}\nTo follow the guide step by step inside one reversible run: `usercube-upgrade run --mode MODE ... --until GUIDE-STEP`, then the vendor-named subcommands or `resume --until GUIDE-STEP` for each next step. Nothing was changed."
        )));
    }
    if ks.iter().all(|&k| done(k)) {
        println!(
            "{name}: already done in run {} ({described}); nothing to do. `{}` shows where the run stands.",
            run.run_hex(),
            engine.command("status")
        );
        return Ok(true);
    }
    let last = *ks.last().expect("not empty");
    let until = seed(last);
    if let Some(k) = (0..last).find(|k| !done(*k) && !ks.contains(k)) {
        return Err(Error::Refused(format!(
            "`{name}` is {described} of the open run {}, and step {} (guide step {}) before it is not done yet: `{resume} --until {until}` does them in the guide's order (or `--until` an earlier guide step first). Nothing was changed.",
            run.run_hex(),
            plan.steps[k].id,
            seed(k)
        )));
    }
    if plan_only {
        println!(
            "{name}: would go on with the open run {} through {described}, as planned when it started (the same as `{resume} --until {until}`); nothing was changed",
            run.run_hex()
        );
        return Ok(true);
    }
    if !quiet {
        println!(
            "{name}: inside the open run {}: {described}, as planned when it started (the arguments given here are not used); the same as `{resume} --until {until}`",
            run.run_hex()
        );
    }
    engine.resume_until(Some(&until)).map(|_| true)
}

fn print_runbook(root: &Path, rb: &runbook::Runbook) {
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

fn print_warnings(rb: &runbook::Runbook) {
    if !rb.warnings.is_empty() {
        println!("warnings:");
        for w in &rb.warnings {
            println!("  - {w}");
        }
    }
}

fn print_remaining(rb: &runbook::Runbook) {
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
struct StatusOut {
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
}

/// `journal salvage`: reads the log and the store as they are (under the root lock) and
/// writes what verifies.
fn salvage(target: &Target, output: &Path) -> Result<()> {
    let root = engine::canonical_root(&target.root)?;
    let dir = journal_dir(&root, target);
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{}: no journal folder",
            dir.display()
        )));
    }
    let _lock = RootLock::acquire(&dir)?;
    let found = crate::journal::salvage(&dir);
    let report = audit::salvage(&dir, &found);
    let text = crate::secrets::to_public_json(&report);
    crate::durable_fs::atomic_write(output, text.as_bytes(), None).map_err(|source| Error::Io {
        what: "writing",
        path: output.to_path_buf(),
        source,
    })?;
    println!(
        "{} records still verify ({} chained to their predecessor); written to {}",
        report.records.len(),
        report.records.iter().filter(|r| r.chained).count(),
        output.display()
    );
    for run in &report.runs {
        let ids = |v: &[audit::SalvagedStep]| {
            v.iter()
                .map(|s| s.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "run {} ({}): steps known done: [{}]; undone: [{}]{}",
            run.run_id,
            run.title.as_deref().unwrap_or("plan unreadable"),
            ids(&run.steps_done),
            ids(&run.steps_undone),
            run.ended
                .map(|e| format!("; ended: {e}"))
                .unwrap_or_default()
        );
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    Ok(())
}

fn print_status(target: &Target, json: bool) -> Result<()> {
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
                    out.next = match run.status {
                        // A committed run's rollback too: it is no longer "upgraded".
                        state::RunStatus::Interrupted | state::RunStatus::Committed
                            if run.rollback_started() =>
                        {
                            "a rollback was interrupted: run `rollback` to finish it".into()
                        }
                        state::RunStatus::Paused => {
                            "paused as asked (--until): check the installation, then `resume` to go on (`resume --until GUIDE-STEP` stops again) or `rollback` to undo it".into()
                        }
                        state::RunStatus::Interrupted => {
                            "the run was interrupted: `resume` to finish it or `rollback` to undo it".into()
                        }
                        state::RunStatus::Failed => "the run failed: `resume` after fixing the cause, or `rollback`".into(),
                        state::RunStatus::Committed => {
                            "upgraded: check it, then `finalize` (or `rollback` to go back)".into()
                        }
                        state::RunStatus::RolledBack => "rolled back: the installation is as before the run".into(),
                        state::RunStatus::Finalized => "finalized: the upgrade is complete".into(),
                    };
                }
                drop(lock);
            }
        }
    }
    print_status_out(&out, json)
}

fn print_status_out(out: &StatusOut, json: bool) -> Result<()> {
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
        println!("next:         {}", out.next);
    }
    Ok(())
}

fn demo(
    dir: Option<PathBuf>,
    no_run: bool,
    size: runbook::demo::DemoSize,
    encrypted_files: usize,
    opts: Options,
) -> Result<()> {
    let root = match dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("usercube-demo-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating",
                path: std::env::temp_dir(),
                source,
            })?
            .keep(),
    };
    if root.exists()
        && std::fs::read_dir(&root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(Error::Usage(format!(
            "{}: not empty; give an empty or new folder",
            root.display()
        )));
    }
    runbook::demo::create(&root, size)
        .and_then(|()| runbook::demo::add_encrypted_files(&root, encrypted_files))
        .map_err(|source| Error::Io {
            what: "writing the demo installation into",
            path: root.clone(),
            source,
        })?;
    let root = engine::canonical_root(&root)?;
    println!(
        "demo Usercube {} installation written to {}",
        runbook::demo::OLD_VERSION,
        root.display()
    );
    println!(
        "demo database: {} ({} rows in each of {})",
        root.join(runbook::demo::DATABASE).display(),
        size.rows,
        runbook::plans::DELETE_TABLES.join(", ")
    );
    let run_cmd = runbook::demo::run_command(&root);
    if no_run {
        println!(
            "see the plan with:\n  {}",
            run_cmd.replacen(" run ", " plan ", 1)
        );
        println!("run it with:\n  {run_cmd}");
        return Ok(());
    }
    println!("running: {run_cmd}");
    let mut o = runbook::Options::new(
        root.clone(),
        runbook::Mode::Integrated,
        root.join(runbook::demo::RUNTIME_ZIP),
    );
    o.runtime_path = Some(root.join("Runtime").display().to_string());
    // The demo's zip holds no vendor schema tool: left to the administrator, as the
    // printed command says.
    o.skip_database_upgrade = true;
    o.cert.file = Some(root.join(runbook::demo::DEMO_CERT));
    let opts = Options {
        cert_password: Some(CertPassword::new(runbook::demo::DEMO_CERT_PASSWORD.into())),
        ..opts
    };
    let rb = runbook::build(&o).map_err(|p| Error::Refused(preflight::refusal(&p)))?;
    if !opts.quiet {
        print_warnings(&rb);
    }
    let quiet = opts.quiet;
    Engine::open(&root, None, watched(opts))?.run(rb.plan.clone())?;
    if !quiet {
        print_remaining(&rb);
    }
    println!("\nnext:\n  usercube-upgrade status --root {0}\n  usercube-upgrade journal export --json --root {0}\n  usercube-upgrade rollback --root {0}\n  usercube-upgrade finalize --root {0}", root.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_root() -> (tempfile::TempDir, Target) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        sample::create_installation(&root, sample::SampleSize::default()).unwrap();
        let target = Target {
            root,
            journal: None,
        };
        (tmp, target)
    }

    fn quiet() -> Options {
        Options {
            quiet: true,
            ..Options::default()
        }
    }

    /// A second process starting while `run` builds its plan is refused by the lock (the
    /// plan is built under it), naming this process.
    #[test]
    fn run_builds_its_plan_under_the_lock() {
        let (_tmp, target) = sample_root();
        let l = run_locked(&target, quiet(), None, || {
            match engine::Locked::acquire(&target.root, None) {
                Err(Error::Refused(msg)) => {
                    assert!(msg.contains(&std::process::id().to_string()), "{msg}")
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("another process could lock the root while the plan was built"),
            }
            Ok(Loaded {
                plan: sample::plan(),
                runbook: None,
            })
        })
        .unwrap()
        .0;
        assert_eq!(l.plan.steps.len(), sample::plan().steps.len());
    }

    /// A refused `run` removes the journal folder only when, under the lock, it holds no
    /// record: a journal with records (another run's) is never deleted.
    #[test]
    fn a_refused_run_never_deletes_a_journal_with_records() {
        let (_tmp, target) = sample_root();
        let refused = || -> Result<Loaded> { Err(Error::Refused("plan refused".into())) };
        // New journal, refused: no trace.
        assert!(run_locked(&target, quiet(), None, refused).is_err());
        let dir = engine::default_journal_dir(&dunce::canonicalize(&target.root).unwrap());
        assert!(!dir.exists());
        // A journal with records (a run done), then a refused run: kept, records intact.
        let root = target.root.clone();
        Engine::open(&root, None, quiet())
            .unwrap()
            .run(sample::plan())
            .unwrap();
        let records = crate::journal::Journal::open(&dir).unwrap().records().len();
        assert!(run_locked(&target, quiet(), None, refused).is_err());
        assert_eq!(
            crate::journal::Journal::open(&dir).unwrap().records().len(),
            records
        );
    }
}
