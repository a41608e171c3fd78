//! usercube-upgrade: the Usercube (Netwrix Identity Manager) 5.1.7 -> 5.2.3 upgrade as one
//! journaled transaction.
//!
//! Layers, top to bottom (arrows point down only; see ARCHITECTURE.md):
//! - [`cli`]: arguments, terminal output, exit codes ([`filecrypt`]: encrypt-file/decrypt-file);
//! - [`sample`]: the built-in sample installation and plan (the embedded default until the
//!   5.1.7 -> 5.2.3 runbook lands);
//! - [`engine`]: runs a [`plan::Plan`]: run, resume, rollback, finalize, status, audit;
//! - [`steps`]: one module per step kind behind the [`steps::Step`] trait;
//! - [`journal`]: sled store, record frames, hash chain, durability, verification;
//! - [`durable_fs`] and [`manifest`]: every rename/write/fsync, and SHA-256 manifests;
//! - [`crypto`]: certificates, the legacy and new encrypted formats (used by the
//!   re-encryption step and `filecrypt`).

pub mod cli;
pub mod crypto;
pub mod durable_fs;
pub mod engine;
pub mod error;
pub mod filecrypt;
pub mod journal;
pub mod manifest;
pub mod plan;
pub mod sample;
pub mod steps;

pub use error::{Error, Result};
