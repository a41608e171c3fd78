//! Command line: clap structures close to the flags, then one call into the engine per
//! subcommand. Output for people on stdout, `--json` for machines; errors go back to
//! `main`, which prints them and maps them to exit codes.
//!
//! `args` holds the argument definitions, `commands` what the subcommands do besides one
//! engine call, `print` what they print; `run` below dispatches.

use crate::engine::{self, audit, Engine, Options};
use crate::runbook::tools::Job;
use crate::{runbook, Error, Result};

/// Every `println!` of this module writes through [`crate::out`]: a closed pipe (`| head`)
/// drops the text instead of panicking; the command goes on to its own exit code.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

mod args;
mod commands;
mod print;

use args::{absolute, absolute_str};
pub use args::{Args, Command, JournalAction, Target};
use commands::{
    demo, export, journal_dir, load, run_locked, salvage, vendor_tool, verify_artifacts, watched,
};
use print::{print_plan, print_remaining, print_rollback_plan, print_status, print_warnings};

/// One parsed command line: each subcommand to its engine call (or to `commands`).
pub fn run(args: Args) -> Result<()> {
    let quiet = args.quiet;
    let opts = Options {
        quiet,
        // For the audit: who, where, and this command line with its secrets masked.
        // Its paths absolute, as the command used them.
        context: engine::payload::RunContext::of_process(args::absolute_command_line(
            std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        )),
        // `--until` takes the numbers of the guide's section the plan follows.
        guide: Some(runbook::guide::of_plan),
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
            let root = engine::canonical_root(&target.root)?;
            let _locks = engine::lock_existing(&root, &journal_dir(&root, &target))?;
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
        Command::Rollback {
            target,
            force,
            dry_run,
            json,
        } => {
            // Space first (a full disk): sled may write when the journal opens.
            let locked = engine::Locked::acquire(&target.root, target.journal.as_deref())?;
            locked.release_reserve()?;
            let mut e = Engine::open_locked(
                locked,
                Options {
                    force,
                    ..watched(opts)
                },
            )?;
            if dry_run {
                let plan = e.rollback_plan();
                e.make_reserve()?;
                return match plan? {
                    Ok(plan) => print_rollback_plan(&plan, json),
                    Err(run) if json => {
                        println!("{{\"schema\": 1, \"run\": \"{run}\", \"rolled_back\": true}}");
                        Ok(())
                    }
                    Err(run) => {
                        println!("run {run} is already rolled back: nothing to do");
                        Ok(())
                    }
                };
            }
            e.rollback()
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
            vendor_tool(&target, &tool, Job::UpgradeFiles, opts, || {
                let rt = root.join("Runtime");
                let (plan, notes) = runbook::tools::upgrade_files(
                    &root,
                    &tool.from_version,
                    migrate_agent,
                    &cert.options(),
                    &runbook::normalize(&rt, &temp_folder),
                    &runbook::normalize(&rt, &work_folder),
                )?;
                for n in notes {
                    println!("note: {n}");
                }
                Ok(plan)
            })
        }
        Command::PrepareUpgradeAppsettings {
            target,
            tool,
            output_path,
            connection_string: _,
            agent_identifier,
        } => {
            let root = engine::canonical_root(&target.root)?;
            vendor_tool(&target, &tool, Job::PrepareUpgradeAppsettings, opts, || {
                runbook::tools::prepare_upgrade_appsettings(
                    &root,
                    &tool.from_version,
                    &absolute(&output_path),
                    &agent_identifier,
                )
            })
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
            vendor_tool(&target, &tool, job, opts, || {
                runbook::tools::upgrade_appsettings(
                    &root,
                    &tool.from_version,
                    &absolute(&input_path),
                    migrate_only_agent,
                    runtime_path.as_deref().map(absolute_str).as_deref(),
                )
            })
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
            vendor_tool(
                &target,
                &tool,
                Job::UpgradeConfigurationVersion,
                opts,
                || {
                    runbook::tools::upgrade_configuration_version(
                        &root,
                        &tool.from_version,
                        &absolute(&xml_path),
                        &absolute(&output),
                        &absolute(&appsettings_path),
                        runtime_path.as_deref().map(absolute_str).as_deref(),
                    )
                },
            )
        }
        Command::Journal { action } => match action {
            JournalAction::Verify { target } => {
                let e = open(&target, opts)?;
                {
                    let j = e.journal();
                    println!(
                        "journal {} verified: {} records, hash chain intact, last record sha256 {}",
                        j.dir().display(),
                        j.records().len(),
                        j.last()
                            .map(|r| hex::encode(r.hash))
                            .unwrap_or_else(|| "-".into())
                    );
                }
                verify_artifacts(&e)
            }
            JournalAction::Show { target } => {
                let e = open(&target, opts)?;
                let text = audit::show(e.journal().records());
                crate::out::print(&text)
            }
            JournalAction::Salvage { target, output } => salvage(&target, &output),
            JournalAction::Export {
                target,
                json: _,
                run,
            } => export(&target, opts, run.as_deref()),
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
            demo(dir, no_run, size, encrypted_files, quiet)
        }
        Command::EncryptFile {
            files,
            output_path,
            mut cert,
        } => {
            let certificate = cert.take_certificate(quiet)?;
            crate::filecrypt::encrypt_files(&certificate, &files, output_path.as_deref(), quiet)
        }
        Command::DecryptFile {
            files,
            output_path,
            mut cert,
        } => {
            let certificate = cert.take_certificate(quiet)?;
            crate::filecrypt::decrypt_files(&certificate, &files, output_path.as_deref(), quiet)
        }
    }
}
