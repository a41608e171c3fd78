//! usercube-upgrade: the Usercube (Netwrix Identity Manager) 5.1.7 -> 5.2.3 upgrade as one
//! journaled transaction.
//!
//! Layers, top to bottom (arrows point down only; see ARCHITECTURE.md):
//! - [`cli`]: arguments, terminal output, exit codes;
//! - [`runbook`]: the 5.1.7 -> 5.2.3 knowledge: discovery, preflight, the three plans
//!   (`--mode integrated|server|agent`), appsettings and configuration rules, the demo;
//! - [`sample`]: the small sample installation and plan (the default without `--mode` or
//!   `--plan`, and the engine tests' plan);
//! - [`engine`]: runs a [`plan::Plan`]: run, resume, rollback, finalize, status, audit;
//! - [`steps`]: one module per step kind behind the [`steps::Step`] trait;
//! - [`journal`]: sled store, record frames, hash chain, durability, verification;
//! - [`durable_fs`] and [`manifest`]: every rename/write/fsync of the tree and of staged
//!   files (the journal syncs its own), and SHA-256 manifests;
//! - [`out`]: stdout without a panic on a closed pipe;
//! - [`crypto`]: certificates, the legacy and new encrypted formats (used by the
//!   re-encryption step and `filecrypt`).

pub mod cli;
pub mod crypto;
pub mod db;
pub mod durable_fs;
pub mod engine;
pub mod error;
pub mod filecrypt;
#[cfg(feature = "testing")]
pub mod fuzzing;
pub mod journal;
pub mod limits;
pub mod manifest;
pub mod out;
pub mod plan;
pub mod platform;
pub mod pseudo_random;
pub mod runbook;
pub mod sample;
pub mod secrets;
pub mod steps;

pub use error::{Error, Result};
