//! The command line's arguments: the clap structures, close to the flags, and how their
//! values become options (paths made absolute, the certificate options, the runbook's
//! options).

use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Parser, Subcommand};

use crate::crypto::CertPassword;
use crate::{runbook, Error, Result};

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
/// installation's `Runtime`, or the old Runtime the run renamed it to, where the shell that
/// typed the run still stands ([`runbook::install::root_of_runtime_folder`]); otherwise
/// empty, and `--root` is then needed (`engine::canonical_root` says so).
pub(super) fn root_from_current_folder() -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|here| runbook::install::root_of_runtime_folder(&here))
        .unwrap_or_default()
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
    pub(super) fn options(&self, root: &Path) -> Option<runbook::Options> {
        let mode = match self.mode? {
            ModeArg::Integrated => runbook::Mode::Integrated,
            ModeArg::Server => runbook::Mode::Server,
            ModeArg::Agent => runbook::Mode::Agent,
        };
        let abs = |p: &PathBuf| absolute(p);
        let input = |p: &PathBuf| settled(absolute(p), root);
        let zip = input(self.runtime_zip.as_ref()?);
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
        o.cert.file = o.cert.file.map(|f| settled(f, root));
        o.cert.store_path = o.cert.store_path.map(|f| settled(f, root));
        o.agent_appsettings = self.agent_appsettings.iter().map(input).collect();
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
        /// Stop after this step of the vendor guide (as `plan` numbers them, e.g. 4.5; 4 is
        /// all of 4), leaving the run open and reversible: check, then `resume` (or `resume
        /// --until`) goes on, `rollback` undoes it. Numbers the guide does not have are refused.
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
        /// Stop again after this step of the vendor guide (e.g. 5.3; 5 is all of 5); the run
        /// stays open.
        #[arg(long, value_name = "GUIDE-STEP")]
        until: Option<String>,
    },
    /// Restore the exact starting state of the latest run.
    Rollback {
        #[command(flatten)]
        target: Target,
        /// Go on where the check needs it: a database changed after the run is kept in a
        /// verified backup, then restored from the run's backup; what the run moved and is
        /// gone since is not restored. Nothing written after the run is deleted either way.
        #[arg(long)]
        force: bool,
        /// Check and print the rollback's plan (what will be restored, kept aside, what
        /// `--force` would discard), changing nothing.
        #[arg(long)]
        dry_run: bool,
        /// With `--dry-run`: the plan as JSON (docs: journal-format.md, "The rollback's check").
        #[arg(long, requires = "dry_run")]
        json: bool,
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

    /// The certificate for `encrypt-file` / `decrypt-file`, its PFX password taken out of the
    /// arguments and dropped once the certificate is loaded.
    pub(super) fn take_certificate(&mut self, quiet: bool) -> Result<crate::crypto::Certificate> {
        let password = self.password.take(quiet)?;
        self.load(password.as_ref())
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
    pub(super) fn take(&mut self, quiet: bool) -> Result<Option<CertPassword>> {
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
    /// Verify every record's checksum and the hash chain, then what a rollback of the latest
    /// run needs (trash copies, kept contents, row before-images, the database backup,
    /// kept originals) against the hashes the journal recorded (exit 3 when corrupt).
    Verify {
        #[command(flatten)]
        target: Target,
    },
    /// Every run and step with what it touched, hashes and timings (on an installation where
    /// no upgrade has run: an audit with no runs, and nothing created).
    Export {
        #[command(flatten)]
        target: Target,
        /// JSON (the only format for now; accepted for clarity).
        #[arg(long)]
        json: bool,
        /// Only this run: its id (or a prefix of it naming one run only, as `status` and
        /// `journal show` print it), or `last` for the latest.
        #[arg(long, value_name = "ID|last")]
        run: Option<String>,
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

/// A command-line path, resolved against the current folder (every relative path given
/// on the command line is), then normalised lexically ([`normalize`]): `../x.zip` typed
/// inside `Runtime` is `ROOT/x.zip`, not `ROOT/Runtime/../x.zip`, which would no longer
/// lead to the zip once the run renames `Runtime`.
pub(super) fn absolute(p: &Path) -> PathBuf {
    normalize(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// An input the run reads (the zip, the certificate, an agent's settings), absolute and
/// normalised: its real path (symbolic links resolved) when it exists and neither path is in
/// the installation `root`, whose folders the run renames and moves; there, and when it does
/// not exist (preflight names it), the normalised path as it is.
fn settled(p: PathBuf, root: &Path) -> PathBuf {
    let inside = |p: &Path| crate::platform::path_starts_with(p, root);
    if inside(&p) {
        return p;
    }
    match dunce::canonicalize(&p) {
        Ok(real) if !inside(&real) => real,
        _ => p,
    }
}

/// `.` and `..` of an absolute path resolved lexically, without asking the file system: no
/// symbolic link is followed (the folder a link goes through may be one the run renames).
/// The prefix (a drive letter, a UNC share) is kept as it is, `..` at the top stays at the
/// top, and a Windows verbatim path (`\\?\...`), whose `..` are names, is left unchanged.
pub(super) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let verbatim =
        matches!(p.components().next(), Some(Component::Prefix(x)) if x.kind().is_verbatim());
    if verbatim || !p.is_absolute() {
        return p.to_path_buf();
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A path kept as text (written into settings files): resolved against the current folder
/// unless it is absolute here or a Windows absolute path (`C:/...`, `\\server\...`), which a
/// remote agent's setting may be whatever this machine runs.
pub(super) fn absolute_str(p: &str) -> String {
    let b = p.as_bytes();
    let windows_absolute = (b.len() >= 3
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && matches!(b[2], b'/' | b'\\'))
        || p.starts_with("\\\\")
        || p.starts_with("//");
    if windows_absolute && !Path::new(p).is_absolute() {
        return p.to_string();
    }
    absolute(Path::new(p)).display().to_string()
}

/// The command line as the journal keeps it (`RunContext`): each path it gives made absolute
/// and normalised as the command used it (the values of `FILE` and `DIR` options and
/// arguments, the PATH of `sqlite:PATH`, the program of `--database-upgrade-command`), so that
/// `../Runtime_....zip` typed inside `Runtime` reads `ROOT/Runtime_....zip` in the audit.
/// `--temp-folder` / `--work-folder` (relative to `Runtime`, as the vendor's settings) and
/// `-` (standard input) stay as typed; words clap does not know are left as they are.
pub(super) fn absolute_command_line(args: Vec<String>) -> Vec<String> {
    let mut cmd = <Args as clap::CommandFactory>::command();
    cmd.build();
    let mut current = &cmd;
    let mut out = Vec::with_capacity(args.len());
    let mut words = args.into_iter();
    out.extend(words.next());
    // The option whose values come next, and whether it takes more than one.
    let mut pending: Option<(&clap::Arg, bool)> = None;
    for word in words {
        if let Some(long) = word.strip_prefix("--").filter(|l| !l.is_empty()) {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let arg = current.get_arguments().find(|a| a.get_long() == Some(name));
            pending = None;
            match (arg, value) {
                (Some(a), Some(v)) => out.push(format!("--{name}={}", typed_path(a, v))),
                (Some(a), None) => {
                    let n = a.get_num_args().unwrap_or_default();
                    if n.takes_values() {
                        pending = Some((a, n.max_values() > 1));
                    }
                    out.push(word);
                }
                (None, _) => out.push(word),
            }
            continue;
        }
        if let Some((a, more)) = pending {
            out.push(typed_path(a, &word));
            if !more {
                pending = None;
            }
            continue;
        }
        if let Some(sub) = current.find_subcommand(&word) {
            current = sub;
            out.push(word);
            continue;
        }
        match current.get_positionals().next() {
            Some(a) => out.push(typed_path(a, &word)),
            None => out.push(word),
        }
    }
    out
}

/// One value of `arg` as [`absolute_command_line`] keeps it.
fn typed_path(arg: &clap::Arg, value: &str) -> String {
    let id = arg.get_id().as_str();
    if matches!(id, "temp_folder" | "work_folder") || value == "-" {
        return value.to_string();
    }
    if id == "database_upgrade_command" {
        return absolute_program(value);
    }
    match arg
        .get_value_names()
        .and_then(|n| n.first())
        .map(|n| n.as_str())
    {
        Some("FILE" | "DIR") => absolute_str(value),
        Some("CS") => absolute_sqlite(value),
        _ => value.to_string(),
    }
}

/// `sqlite:PATH` with a relative PATH resolved against the current folder, like every
/// other command-line path; other connection strings unchanged.
pub(super) fn absolute_sqlite(cs: &str) -> String {
    match cs.strip_prefix("sqlite:") {
        Some(p) if !p.is_empty() => format!("sqlite:{}", absolute_str(p)),
        _ => cs.to_string(),
    }
}

/// A command line whose program, when given as a relative path (`./tool`, `bin/tool`),
/// is resolved against the current folder; a bare name is looked up on PATH. A command
/// that does not split is left as it is, for preflight to refuse.
pub(super) fn absolute_program(cmd: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_lexically() {
        let here = std::path::absolute(".").unwrap();
        for (typed, expect) in [
            ("../x.zip", here.parent().unwrap().join("x.zip")),
            ("./a/./b/../c", here.join("a/c")),
            ("a/b/../../..", here.parent().unwrap().to_path_buf()),
        ] {
            assert_eq!(absolute(Path::new(typed)), expect, "{typed}");
        }
        let top = here.ancestors().last().unwrap().to_path_buf();
        let deep = top.join("a/../../../b");
        assert_eq!(
            normalize(&deep),
            top.join("b"),
            "`..` at the top stays there"
        );
        assert_eq!(
            normalize(Path::new("rel/../x")),
            Path::new("rel/../x"),
            "relative: unchanged"
        );
    }

    #[test]
    fn the_journal_command_line_has_absolute_paths() {
        let here = std::path::absolute(".").unwrap();
        let up = |name: &str| here.parent().unwrap().join(name).display().to_string();
        let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let line = absolute_command_line(words(&[
            "usercube-upgrade",
            "--quiet",
            "run",
            "--mode",
            "integrated",
            "--runtime-zip",
            "../R.zip",
            "--file-cert-file=../c.pfx",
            "--agent-appsettings",
            "../a.json",
            "./b.json",
            "--temp-folder",
            "../Temp",
            "--file-cert-password-file",
            "-",
            "--connection-string",
            "sqlite:../db.sqlite",
            "--until",
            "4.5",
        ]));
        assert_eq!(
            line,
            words(&[
                "usercube-upgrade",
                "--quiet",
                "run",
                "--mode",
                "integrated",
                "--runtime-zip",
                &up("R.zip"),
                &format!("--file-cert-file={}", up("c.pfx")),
                "--agent-appsettings",
                &up("a.json"),
                &here.join("b.json").display().to_string(),
                "--temp-folder",
                "../Temp",
                "--file-cert-password-file",
                "-",
                "--connection-string",
                &format!("sqlite:{}", up("db.sqlite")),
                "--until",
                "4.5",
            ])
        );
        let line = absolute_command_line(words(&[
            "usercube-upgrade",
            "journal",
            "salvage",
            "--output",
            "../s.json",
        ]));
        assert_eq!(line[4], up("s.json"));
    }
}
