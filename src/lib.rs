//! usercube-upgrade: the Usercube (Netwrix Identity Manager) 5.1.7 -> 5.2.3 upgrade as one
//! journaled transaction.
//!
//! The public API is the few items re-exported below: the command line the binary runs
//! ([`run_cli`], [`CliArgs`], [`error_line`]), a plan ([`Plan`], [`StepSpec`]), the engine
//! that runs it ([`Engine`], [`EngineOptions`], [`Finish`]), the 5.1.7 -> 5.2.3 runbook that
//! builds one ([`build_runbook`], [`RunbookOptions`], [`Runbook`]), and [`Error`] /
//! [`Result`]. Every module is private; the integration tests, benches, examples and fuzz
//! targets reach them through `testing`, which exists only with the cargo feature `testing`.
//!
//! Layers, top to bottom (arrows point down only; see ARCHITECTURE.md):
//! - `cli`: arguments, terminal output, exit codes;
//! - `runbook`: the 5.1.7 -> 5.2.3 knowledge: discovery, preflight, the three plans
//!   (`--mode integrated|server|agent`), appsettings and configuration rules, the demo;
//! - `sample`: the small sample plan (the default without `--mode` or `--plan`) and, for
//!   tests, its installation;
//! - `engine`: runs a [`Plan`]: run, resume, rollback, finalize, status, audit;
//! - `steps`: one module per step kind behind the `steps::Step` trait;
//! - `journal`: sled store, record frames, hash chain, durability, verification;
//! - `durable_fs` and `manifest`: every rename/write/fsync of the tree and of staged
//!   files (the journal syncs its own), and SHA-256 manifests;
//! - `out`: stdout without a panic on a closed pipe;
//! - `crypto`: certificates, the legacy and new encrypted formats (used by the
//!   re-encryption step and `filecrypt`);
//! - `stream`: reading a stream to its end or a buffer full, interrupted reads retried.

// Private modules let the compiler report what nothing uses.
mod cli;
mod crypto;
mod db;
mod durable_fs;
mod engine;
mod error;
mod filecrypt;
#[cfg(feature = "testing")]
mod fuzzing;
mod journal;
mod limits;
mod manifest;
mod out;
mod plan;
mod platform;
mod pseudo_random;
mod runbook;
mod sample;
mod secrets;
mod steps;
mod stream;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

// The command line, as the binary runs it.
pub use cli::{run as run_cli, Args as CliArgs};
pub use out::error_line;

pub use crypto::{CertPassword, CertificateOptions};
pub use engine::{Engine, Finish, Options as EngineOptions};
pub use error::{Error, Result};
pub use plan::{FileContent, Plan, PlannedStep, ServiceAction, StepSpec};
pub use runbook::{
    build as build_runbook, Item, ItemKind, Mode, Options as RunbookOptions, Runbook,
};
