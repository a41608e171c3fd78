//! The Usercube 5.1.7 -> 5.2.3 knowledge, above the engine (see docs/runbook.md):
//!
//! - [`install`]: installation discovery (versions from the deps.json files, appsettings,
//!   tracked accounts, legacy-encrypted files);
//! - [`preflight`]: every refusal, before any change;
//! - [`moves`]: the Temp -> Work move table;
//! - [`plans`]: the three plans (integrated, server, agent) in the seed's order;
//! - [`demo`]: a realistic 5.1.7 integrated installation;
//! - [`appsettings`]: lossless JSON-with-comments parser and the appsettings rules;
//! - [`configuration`]: byte-preserving XML configuration migration.
//!
//! The appsettings and configuration migrations are computed at plan time from the current
//! files and become `WriteFile` / `Copy` / `Rename` steps: the plan shows exactly what
//! changes, and the journal records it.

pub mod appsettings;
pub mod configuration;
pub mod demo;
pub mod guide;
pub mod install;
pub mod moves;
pub mod plans;
pub mod preflight;
pub mod tools;

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

pub use plans::{build, Item, ItemKind, Runbook};

/// The starting version (any build).
pub const FROM_VERSION: &str = "5.1.7";
/// The target version (any build).
pub const TO_VERSION: &str = "5.2.3";
/// The seed's temporary appsettings folder, under the installation root.
pub const APPSETTINGS_FOLDER: &str = "AppSettingsFolder";

/// Which of the seed's three procedures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Server and agent on one machine.
    Integrated,
    /// The server only (remote agents).
    Server,
    /// A remote agent, after its server.
    Agent,
}

impl Mode {
    pub fn title(self) -> &'static str {
        match self {
            Mode::Integrated => "Upgrade Server and Agent (Integrated Agent Installation)",
            Mode::Server => "Upgrade Server Only (Remote Agent Installation)",
            Mode::Agent => "Upgrade Agent Only (Remote Agent Installation)",
        }
    }
}

/// Everything the command line gives the runbook.
#[derive(Debug, Clone)]
pub struct Options {
    /// Canonical installation root.
    pub root: PathBuf,
    pub mode: Mode,
    pub runtime_zip: PathBuf,
    pub connection_string: Option<String>,
    /// Where the database backup goes (default `ROOT/DatabaseBackup`; for SQL Server a folder
    /// the server writes, as the server sees it).
    pub backup_dir: Option<PathBuf>,
    /// The database schema upgrade command (program and arguments, split like a shell
    /// would, without expansion). None: the new runtime's
    /// `identitymanager-Upgrade-DatabaseVersion.exe` with the seed's arguments (preflight
    /// refuses when it cannot run here).
    pub database_upgrade_command: Option<String>,
    /// `--skip-database-upgrade`: no schema upgrade step; the vendor's command is left to
    /// the administrator, first in the list of things still to do.
    pub skip_database_upgrade: bool,
    pub runtime_path: Option<String>,
    /// The certificate options (`--file-cert-*`); the password travels apart, as a value.
    pub cert: crate::crypto::CertificateOptions,
    pub agent_appsettings: Vec<PathBuf>,
    /// As written into appsettings.json, relative to Runtime (default `../Temp`).
    pub temp_folder: String,
    pub work_folder: String,
    pub stop_command: Option<String>,
    pub start_command: Option<String>,
    /// Windows services stopped first and started last through the Service Control
    /// Manager (`--service`); they replace the stop and start commands.
    pub services: Vec<String>,
    pub accept_manual_steps: bool,
    /// The administrator confirms the server was upgraded first, for an agent plan whose
    /// database cannot show it (no version table, unreadable). A database reporting 5.1
    /// still refuses.
    pub server_upgraded: bool,
}

impl Options {
    /// Defaults for `root`, `mode` and `runtime_zip`.
    pub fn new(root: PathBuf, mode: Mode, runtime_zip: PathBuf) -> Options {
        Options {
            root,
            mode,
            runtime_zip,
            connection_string: None,
            backup_dir: None,
            database_upgrade_command: None,
            skip_database_upgrade: false,
            runtime_path: None,
            cert: crate::crypto::CertificateOptions::default(),
            agent_appsettings: Vec::new(),
            temp_folder: "../Temp".into(),
            work_folder: "../Work".into(),
            stop_command: None,
            start_command: None,
            services: Vec::new(),
            accept_manual_steps: false,
            server_upgraded: false,
        }
    }
}

/// The default backup folder, under the root and outside the journal folder.
pub const BACKUP_FOLDER: &str = "DatabaseBackup";

/// The vendor's schema upgrade tool, in the new Runtime.
pub const DATABASE_UPGRADE_TOOL: &str = "Runtime/identitymanager-Upgrade-DatabaseVersion.exe";

/// Splits a command line into program and arguments: whitespace separates, `"..."` and
/// `'...'` group (no escapes inside single quotes; `\"` inside double quotes), nothing is
/// expanded. `Err` on an unterminated quote.
pub fn split_command(cmd: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            '\'' => {
                any = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated ' in {cmd:?}")),
                    }
                }
            }
            '"' => {
                any = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"') | Some('\\')) => {
                            cur.push(chars.next().expect("peeked"))
                        }
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated \" in {cmd:?}")),
                    }
                }
            }
            c => {
                any = true;
                cur.push(c);
            }
        }
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

impl Options {
    /// The certificate as a plan stores it (no password): the command line's (the one
    /// mapping, [`crate::crypto::CertificateOptions::source`]), else `EncryptionCertificate`
    /// of the old `Runtime/appsettings.json` (`File`, or `Thumbprint` with `StoreLocation`
    /// and `StoreName`; a `File` that does not exist names no certificate). A file under
    /// Runtime is referenced under RuntimeOld, where the plan's first steps move it. `Err`
    /// when the command line's options do not name one certificate.
    pub fn certificate_source(
        &self,
        settings: Option<&appsettings::JsonDoc>,
    ) -> Result<Option<crate::crypto::CertificateSource>, String> {
        use crate::crypto::CertificateSource;
        let under_root = |abs: &Path| {
            let p = plan_path(&self.root, abs);
            match p.strip_prefix("Runtime") {
                Ok(rest) if p.is_relative() => Path::new("RuntimeOld").join(rest),
                _ => p,
            }
        };
        match self.cert.source().map_err(|e| e.to_string())? {
            Some(CertificateSource::Pfx { path, thumbprint }) => {
                return Ok(Some(CertificateSource::Pfx {
                    path: under_root(&path),
                    thumbprint,
                }))
            }
            Some(store) => return Ok(Some(store)),
            None => {}
        }
        let Some(doc) = settings else { return Ok(None) };
        let get = |k: &str| encryption_certificate(doc, k);
        if let Some(f) = get("File") {
            let file = normalize(&self.root.join("Runtime"), f);
            return Ok(file.is_file().then(|| CertificateSource::Pfx {
                path: under_root(&file),
                thumbprint: None,
            }));
        }
        if let (Some(t), Some(l), Some(n)) =
            (get("Thumbprint"), get("StoreLocation"), get("StoreName"))
        {
            return Ok(Some(CertificateSource::Store {
                thumbprint: t.to_string(),
                location: l.to_string(),
                name: n.to_string(),
                path: None,
            }));
        }
        Ok(None)
    }
}

/// `EncryptionCertificate.<key>` of an appsettings file, when a non-empty string.
pub fn encryption_certificate<'a>(doc: &'a appsettings::JsonDoc, key: &str) -> Option<&'a str> {
    doc.get(&["EncryptionCertificate", key])
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
}

/// `base.join(p)` with `.` and `..` resolved lexically.
pub fn normalize(base: &Path, p: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(p).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub fn temp_dir(o: &Options) -> PathBuf {
    normalize(&o.root.join("Runtime"), &o.temp_folder)
}

pub fn work_dir(o: &Options) -> PathBuf {
    normalize(&o.root.join("Runtime"), &o.work_folder)
}

/// A path for a plan step: relative to the root when under it, else absolute.
pub fn plan_path(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::split_command;

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            split_command(r#"./up --cs "data source=.;Database=U" --x 'a b' c\d "q\"x""#).unwrap(),
            vec![
                "./up",
                "--cs",
                "data source=.;Database=U",
                "--x",
                "a b",
                "c\\d",
                "q\"x"
            ]
        );
        assert_eq!(split_command(r#"a "" b"#).unwrap(), vec!["a", "", "b"]);
        assert!(split_command("a 'b").is_err());
        assert!(split_command("   ").unwrap().is_empty());
    }
}
