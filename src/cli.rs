//! Command line: clap structures close to the flags, then one call into the engine per
//! subcommand. Output for people on stdout, `--json` for machines; errors go back to
//! `main`, which prints them and maps them to exit codes.

use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Parser, Subcommand};
use serde::Serialize;

use crate::engine::{self, audit, preflight, state, Engine, Options, RootLock};
use crate::plan::Plan;
use crate::{sample, Error, Result};

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
    /// The installation root (the folder holding Runtime, Conf, Temp, Work).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Journal folder [default: ROOT/.usercube-upgrade].
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct PlanSource {
    /// A plan as JSON (see README); without it, the built-in sample plan.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the plan and print it; changes nothing.
    Plan {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        source: PlanSource,
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
    },
    /// Finish an interrupted run from the journal, probing each unfinished step.
    Resume {
        #[command(flatten)]
        target: Target,
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
        #[arg(long)]
        json: bool,
    },
    /// Purge what was kept only for rollback (the journal stays for audit).
    Finalize {
        #[command(flatten)]
        target: Target,
    },
    /// The audit: show, verify or export the journal.
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Create the sample installation in DIR (default: a new temporary folder) and run the
    /// built-in plan on it end to end.
    Demo {
        dir: Option<PathBuf>,
        /// Only create the installation.
        #[arg(long)]
        no_run: bool,
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
        cert: FileCert,
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
        cert: FileCert,
    },
}

/// The vendor's certificate options: a PFX file and its password, or a store lookup.
#[derive(ClapArgs, Debug, Clone)]
pub struct FileCert {
    /// PFX file holding the certificate and its RSA private key.
    #[arg(long, value_name = "FILE", conflicts_with = "file_cert_store_name")]
    pub file_cert_file: Option<PathBuf>,
    /// Password of --file-cert-file [default: $USERCUBE_UPGRADE_CERT_PASSWORD].
    #[arg(long, value_name = "PASSWORD", requires = "file_cert_file")]
    pub file_cert_password: Option<String>,
    /// Thumbprint of the certificate (with --file-cert-file: checked against it).
    #[arg(long, value_name = "THUMBPRINT")]
    pub file_cert_thumbprint: Option<String>,
    /// CurrentUser or LocalMachine.
    #[arg(long, value_name = "LOCATION", default_value = "CurrentUser")]
    pub file_cert_store_location: String,
    /// Store name, for example My.
    #[arg(long, value_name = "NAME")]
    pub file_cert_store_name: Option<String>,
    /// Folder holding the store's PFX files (overrides the .NET convention).
    #[arg(long, value_name = "DIR")]
    pub file_cert_store_path: Option<PathBuf>,
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
}

fn load_plan(source: &PlanSource) -> Result<Plan> {
    match &source.plan {
        None => Ok(sample::plan()),
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::Usage(format!("{}: cannot read the plan: {e}", file.display()))
            })?;
            Plan::from_json(file, &text)
        }
    }
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
        ..Options::default()
    };
    let open = |t: &Target, opts: Options| Engine::open(&t.root, t.journal.as_deref(), opts);
    match args.command {
        Command::Plan {
            target,
            source,
            json,
        } => print_plan(&target, &load_plan(&source)?, json),
        Command::Run {
            target,
            source,
            no_auto_rollback,
            batch,
        } => {
            let plan = load_plan(&source)?;
            let opts = Options {
                auto_rollback: !no_auto_rollback,
                batch,
                ..opts
            };
            open(&target, opts)?.run(plan)
        }
        Command::Resume { target } => {
            let mut e = open(&target, opts)?;
            check_certificates_for_resume(&e)?;
            e.resume()
        }
        Command::Rollback { target, force } => open(&target, Options { force, ..opts })?.rollback(),
        Command::Finalize { target } => open(&target, opts)?.finalize(),
        Command::Status { target, json } => print_status(&target, json),
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
                print!("{}", audit::show(e.journal().records()));
                Ok(())
            }
            JournalAction::Export { target, json: _ } => {
                let e = open(&target, opts)?;
                let a = audit::build(e.journal().records())?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&a).expect("audit serializes")
                );
                Ok(())
            }
        },
        Command::Demo { dir, no_run } => demo(dir, no_run, opts),
        Command::EncryptFile {
            files,
            output_path,
            cert,
        } => crate::filecrypt::encrypt_files(&cert.load()?, &files, output_path.as_deref(), quiet),
        Command::DecryptFile {
            files,
            output_path,
            cert,
        } => crate::filecrypt::decrypt_files(&cert.load()?, &files, output_path.as_deref(), quiet),
    }
}

impl FileCert {
    /// Loads the certificate; every failure is a refusal (exit 2, nothing changed).
    pub fn load(&self) -> Result<crate::crypto::Certificate> {
        use crate::crypto::CertificateSource;
        let source = match (&self.file_cert_file, &self.file_cert_store_name) {
            (Some(path), _) => {
                if let Some(p) = &self.file_cert_password {
                    crate::crypto::set_cert_password(p.clone());
                }
                CertificateSource::Pfx {
                    path: path.clone(),
                    thumbprint: self.file_cert_thumbprint.clone(),
                }
            }
            (None, Some(name)) => CertificateSource::Store {
                thumbprint: self.file_cert_thumbprint.clone().ok_or_else(|| {
                    Error::Usage("--file-cert-store-name needs --file-cert-thumbprint".into())
                })?,
                location: self.file_cert_store_location.clone(),
                name: name.clone(),
                path: self.file_cert_store_path.clone(),
            },
            (None, None) if self.file_cert_thumbprint.is_some() => CertificateSource::Store {
                thumbprint: self.file_cert_thumbprint.clone().unwrap_or_default(),
                location: self.file_cert_store_location.clone(),
                name: "My".into(),
                path: self.file_cert_store_path.clone(),
            },
            (None, None) => {
                return Err(Error::Usage(
                    "give a certificate: --file-cert-file F --file-cert-password P, or --file-cert-thumbprint T --file-cert-store-location L --file-cert-store-name N".into(),
                ))
            }
        };
        source
            .load(Path::new("."))
            .map_err(|e| Error::Refused(format!("{e}; nothing was changed")))
    }
}

/// A resumed run needs the certificates of its unfinished re-encryption steps (their PFX
/// password is never journaled): check them before the engine acts, so that a missing
/// password is a refusal rather than a failed, rolled-back run.
fn check_certificates_for_resume(e: &Engine) -> Result<()> {
    let Some(run) = e.latest()? else {
        return Ok(());
    };
    if !matches!(
        run.status,
        state::RunStatus::Interrupted | state::RunStatus::Failed
    ) || run.rollback_started()
    {
        return Ok(());
    }
    for s in &run.started.plan.steps {
        if run.step(s.id).is_some_and(|x| x.done.is_some()) {
            continue;
        }
        if let crate::plan::StepSpec::ReencryptFiles { certificate, .. } = &s.action {
            certificate.load(e.root()).map_err(|err| {
                Error::Refused(format!(
                    "step {} needs its certificate to resume: {err}; nothing was changed (`rollback` needs no key)",
                    s.id
                ))
            })?;
        }
    }
    Ok(())
}

fn print_plan(target: &Target, plan: &Plan, json: bool) -> Result<()> {
    let root = engine::canonical_root(&target.root)?;
    let problems = preflight::check(&root, &journal_dir(&root, target), plan);
    if json {
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
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("plan serializes")
        );
    } else {
        println!(
            "plan: {} ({} steps, sha256 {})",
            plan.title,
            plan.steps.len(),
            hex::encode(plan.hash())
        );
        for s in &plan.steps {
            let step = crate::steps::step_for(&s.action, &root);
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
    records: u64,
    next: String,
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
        records: 0,
        next: "no upgrade has run on this installation".into(),
    };
    if dir.is_dir() {
        match RootLock::acquire(&dir) {
            Err(Error::Refused(msg)) => {
                out.state = "busy".into();
                out.next = msg;
            }
            Err(e) => return Err(e),
            Ok(lock) => {
                if !dir.join(crate::journal::STORE_DIR).exists() {
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
                    out.next = match run.status {
                        state::RunStatus::Interrupted if run.rollback_started() => {
                            "a rollback was interrupted: run `rollback` to finish it".into()
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
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("status serializes")
        );
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
        if let Some(f) = &out.failure {
            println!("failure:      {f}");
        }
        println!("next:         {}", out.next);
    }
    Ok(())
}

fn demo(dir: Option<PathBuf>, no_run: bool, opts: Options) -> Result<()> {
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
    sample::create_installation(&root, sample::SampleSize::default()).map_err(|source| {
        Error::Io {
            what: "writing the demo installation into",
            path: root.clone(),
            source,
        }
    })?;
    println!("demo installation written to {}", root.display());
    let run_cmd = format!("usercube-upgrade run --root {}", root.display());
    if no_run {
        println!("run it with:\n  {run_cmd}");
        return Ok(());
    }
    println!("running: {run_cmd}");
    Engine::open(&root, None, opts)?.run(sample::plan())?;
    println!("\nnext:\n  usercube-upgrade status --root {0}\n  usercube-upgrade journal export --json --root {0}\n  usercube-upgrade rollback --root {0}\n  usercube-upgrade finalize --root {0}", root.display());
    Ok(())
}
