//! The runbook's preflight: everything read from the installation before any change, and
//! every refusal of the issue (wrong version, wrong zip, manual items, identifier clashes,
//! missing certificate, malformed JSON or XML). A refusal names the file and line/column or
//! key path; the caller exits 2 and nothing has changed. Free space and "already exists"
//! are checked afterwards by the engine's own preflight on the finished plan.

use std::path::{Path, PathBuf};

use super::appsettings::{
    self, concatenate_agents, find_manual_items, migrate_agent, AgentMigration, JsonDoc, ManualItem,
};
use super::configuration::{self, IdMap, TreeMigration};
use super::install::{self, Found, Product, ZipInfo};
use super::{Mode, Options, FROM_VERSION, TO_VERSION};

/// What preflight learned; the plans are built from it.
pub struct Facts {
    pub installed: Found,
    pub zip: ZipInfo,
    /// The appsettings files of the old Runtime, parsed (relative to the root for display).
    pub appsettings: Vec<JsonDoc>,
    /// The agent settings used for the migration: the Runtime's own (integrated and agent)
    /// followed by every `--agent-appsettings`, concatenated when more than one.
    pub agent_source: Option<AgentSource>,
    /// The migration of the Runtime's own `appsettings.agent.json` (and of
    /// `appsettings.encrypted.agent.json`): file name -> migration.
    pub runtime_agent: Vec<(String, AgentMigration)>,
    /// Old -> new connection identifiers (from the agent source).
    pub ids: IdMap,
    pub conf: Option<TreeMigration>,
    /// The value for `EncryptionCertificate.EncryptFile`.
    pub encrypt_file: bool,
    pub manual: Vec<ManualItem>,
    pub encrypted: Vec<PathBuf>,
    /// The certificate as the re-encryption step references it (integrated and agent).
    pub certificate_source: Option<crate::crypto::CertificateSource>,
    /// `tracked-accounts-*.csv` of the old Runtime that are legacy-encrypted.
    pub tracked_encrypted: usize,
    pub warnings: Vec<String>,
    pub tracked_accounts: Vec<String>,
    pub connection_string_from: Option<String>,
    /// The database connection string (`--connection-string`, else `ConnectionString` of
    /// the old `Runtime/appsettings.json`).
    pub connection_string: Option<String>,
}

pub struct AgentSource {
    /// The text to place in the AppSettingsFolder as `appsettings.agent.json`.
    pub text: String,
    /// Where it came from (one file, or "concatenation of ...").
    pub from: Vec<PathBuf>,
}

fn parse(root: &Path, file: &Path, problems: &mut Vec<String>) -> Option<JsonDoc> {
    let show = file.strip_prefix(root).unwrap_or(file);
    let text = match crate::limits::read_limited(file, crate::limits::MAX_JSON_BYTES, "JSON files")
    {
        Ok(b) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: not UTF-8 text: {e}", show.display()));
                return None;
            }
        },
        Err(e) => {
            problems.push(format!("{}: cannot read: {e}", show.display()));
            return None;
        }
    };
    match JsonDoc::parse(show, &text) {
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(format!("malformed JSON: {e}"));
            None
        }
    }
}

/// Runs every check; `Err` holds every refusal found (not just the first).
pub fn check(o: &Options) -> Result<Facts, Vec<String>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let root = &o.root;
    let runtime = root.join("Runtime");
    let product = match o.mode {
        Mode::Agent => Product::Agent,
        _ => Product::Server,
    };

    // 1. Versions.
    let installed = match install::installed(&runtime, product) {
        Ok(f) if f.is(FROM_VERSION) => Some(f),
        Ok(f) => {
            problems.push(format!(
                "{}: installed version is {}, this upgrade starts from {FROM_VERSION}.x (migrate to the latest {FROM_VERSION} first)",
                f.source, f.version
            ));
            None
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let zip = match install::runtime_zip(&o.runtime_zip, product) {
        Ok(z) if z.found.is(TO_VERSION) => {
            warnings.extend(z.stripped.iter().cloned());
            Some(z)
        }
        Ok(z) => {
            problems.push(format!(
                "{}: the runtime zip holds version {}, not {TO_VERSION}.x",
                z.found.source, z.found.version
            ));
            None
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };

    // 2. appsettings files: parse (line/column on error), manual items.
    let appsettings: Vec<JsonDoc> = install::appsettings_files(&runtime)
        .iter()
        .filter_map(|f| parse(root, f, &mut problems))
        .collect();
    let extra: Vec<JsonDoc> = o
        .agent_appsettings
        .iter()
        .filter_map(|f| parse(root, f, &mut problems))
        .collect();
    let mut manual: Vec<ManualItem> = Vec::new();
    for d in appsettings.iter().chain(&extra) {
        manual.extend(find_manual_items(d));
    }
    if !manual.is_empty() && !o.accept_manual_steps {
        for m in &manual {
            let at = if m.key_path.is_empty() {
                String::new()
            } else {
                format!(" at {}", m.key_path)
            };
            problems.push(format!(
                "{}{at}: {} (--accept-manual-steps continues and leaves it to you)",
                m.file.display(),
                m.action
            ));
        }
    }

    // 3. Agent settings: the Runtime's own, then the further agents; clashes refused.
    let by_name = |name: &str| {
        appsettings.iter().find(|d| {
            d.file()
                .file_name()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    };
    let own_agent = if o.mode == Mode::Server {
        None
    } else {
        by_name("appsettings.agent.json")
    };
    let mut sources: Vec<JsonDoc> = own_agent.into_iter().cloned().collect();
    sources.extend(extra.iter().cloned());
    let runtime_path = o.runtime_path.as_deref();
    let mut agent_source = None;
    let mut ids = IdMap::new();
    // The Runtime's own agent settings are among `sources` (unless in server mode): a clash
    // found there is reported once, not again when that file is migrated below.
    let mut own_clash_reported = false;
    if !sources.is_empty() {
        let (text, doc) = if sources.len() == 1 {
            (sources[0].text().to_string(), Some(sources[0].clone()))
        } else {
            match concatenate_agents(&sources) {
                Ok(t) => {
                    let doc =
                        JsonDoc::parse(Path::new("AppSettingsFolder/appsettings.agent.json"), &t)
                            .map_err(|e| problems.push(format!("concatenated agent settings: {e}")))
                            .ok();
                    (t, doc)
                }
                Err(e) => {
                    problems.push(format!("duplicate connection identifiers: {e}"));
                    own_clash_reported = own_agent.is_some();
                    (String::new(), None)
                }
            }
        };
        if let Some(doc) = doc {
            match migrate_agent(&doc, runtime_path) {
                Ok(m) => {
                    ids = m.id_map.iter().cloned().collect();
                    for r in &m.relative_paths {
                        warnings.push(match &r.absolute {
                            Some(abs) => format!(
                                "{}: {} is the relative path {:?}: resolved to {abs:?} (--runtime-path)",
                                r.file.display(), r.key_path, r.value
                            ),
                            None => format!(
                                "{}: {} is the relative path {:?}: give --runtime-path to resolve it to an absolute path",
                                r.file.display(), r.key_path, r.value
                            ),
                        });
                    }
                    agent_source = Some(AgentSource {
                        text,
                        from: sources.iter().map(|d| d.file().to_path_buf()).collect(),
                    });
                }
                Err(e) => {
                    problems.push(format!("duplicate connection identifiers: {e}"));
                    own_clash_reported = own_agent.is_some();
                }
            }
        }
    }
    let mut runtime_agent = Vec::new();
    if o.mode != Mode::Server {
        for name in ["appsettings.agent.json", "appsettings.encrypted.agent.json"] {
            if let Some(doc) = by_name(name) {
                // Encrypted values are not paths: only keys change there.
                let rp = if name == "appsettings.agent.json" {
                    runtime_path
                } else {
                    None
                };
                match migrate_agent(doc, rp) {
                    Ok(m) => runtime_agent.push((name.to_string(), m)),
                    Err(_) if name == "appsettings.agent.json" && own_clash_reported => {}
                    Err(e) => problems.push(format!("duplicate connection identifiers: {e}")),
                }
            }
        }
    }

    // 3b. Symbolic links under the folders the upgrade changes: never followed, refused by
    // name (a rewrite or a move through one would land outside the installation).
    let conf_dir = root.join("Conf");
    let links = symlinks_under(
        root,
        &[
            runtime.clone(),
            conf_dir.clone(),
            super::temp_dir(o),
            super::work_dir(o),
        ],
    );
    let conf_has_links = links.iter().any(|l| l.starts_with("Conf"));
    problems.extend(links);

    // 4. Configuration XML (migrated at plan time; line/column on error).
    let conf = if o.mode != Mode::Server && conf_dir.is_dir() && !conf_has_links {
        match configuration::migrate_tree(&conf_dir, &ids) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut e = e;
                e.file = e.file.strip_prefix(root).unwrap_or(&e.file).to_path_buf();
                problems.push(format!("malformed XML: {e}"));
                None
            }
        }
    } else {
        None
    };
    // EncryptFile: false only if every connector had FilesAreNotEncrypted="true". The
    // server mode does not migrate Conf, so a malformed file there only warns.
    let encrypt_file = match &conf {
        Some(t) => t.encryption.encrypt_file(),
        None if conf_dir.is_dir() && o.mode == Mode::Server => {
            match configuration::migrate_tree(&conf_dir, &ids) {
                Ok(t) => t.encryption.encrypt_file(),
                Err(e) => {
                    warnings.push(format!(
                        "Conf not readable ({e}): EncryptFile is set to true"
                    ));
                    true
                }
            }
        }
        None => true,
    };

    // 5. Encrypted files need a certificate (integrated and agent modes).
    let mut encrypted = Vec::new();
    let mut certificate_source = None;
    let tracked_accounts = install::tracked_accounts(&runtime);
    let tracked_encrypted = tracked_accounts
        .iter()
        .filter(|t| {
            let mut h = [0u8; 4];
            std::fs::File::open(runtime.join(t))
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut h))
                .is_ok_and(|()| crate::crypto::is_legacy(&h))
        })
        .count();
    if o.mode != Mode::Server {
        for dir in [super::temp_dir(o), super::work_dir(o)] {
            encrypted.extend(install::encrypted_files(&dir, root));
        }
        let options_valid = match o.certificate_source(by_name("appsettings.json")) {
            Ok(c) => {
                certificate_source = c;
                true
            }
            Err(e) => {
                problems.push(e);
                false
            }
        };
        let needed = !encrypted.is_empty() || tracked_encrypted > 0;
        if needed && options_valid && certificate_source.is_none() {
            let first = encrypted
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "a Runtime/tracked-accounts-*.csv".into());
            let n = encrypted.len() + tracked_encrypted;
            // A store lookup by subject is not something this tool can do: say so, rather
            // than leave the files in the old format.
            let distinguished_name = by_name("appsettings.json")
                .and_then(|d| super::encryption_certificate(d, "DistinguishedName"));
            problems.push(match distinguished_name {
                Some(dn) => format!(
                    "{n} legacy-encrypted files (first: {first}) need the agent's certificate, but EncryptionCertificate in Runtime/appsettings.json names it by DistinguishedName {dn:?}, which this tool cannot look up: give its thumbprint with --file-cert-thumbprint T (and --file-cert-store-location L --file-cert-store-name N, default CurrentUser/My), or its PFX with --file-cert-file F"
                ),
                None => format!(
                    "{n} legacy-encrypted files (first: {first}) but no certificate: give --file-cert-file F (its password with {}), or --file-cert-thumbprint T --file-cert-store-location L --file-cert-store-name N (or set EncryptionCertificate in Runtime/appsettings.json)",
                    crate::crypto::PASSWORD_OPTIONS
                ),
            });
        }
    }

    let (connection_string, connection_string_from) = match &o.connection_string {
        Some(c) => (Some(c.clone()), Some("--connection-string".to_string())),
        None => match by_name("appsettings.json")
            .and_then(appsettings::connection_string)
            .filter(|c| !c.trim().is_empty())
        {
            // A relative SQLite path in the server's own settings stays relative to the
            // root, as before; the plan shows it absolute.
            Some(c) => (
                Some(match c.strip_prefix("sqlite:") {
                    Some(p) if !p.is_empty() && Path::new(p).is_relative() => {
                        format!("sqlite:{}", root.join(p).display())
                    }
                    _ => c.to_string(),
                }),
                Some("Runtime/appsettings.json ConnectionString".to_string()),
            ),
            None => (None, None),
        },
    };
    if let Some(c) = &connection_string {
        if let Err(e) = crate::db::check_no_literal_password(c) {
            problems.push(e.to_string());
        }
    }

    match o
        .database_upgrade_command
        .as_deref()
        .map(super::split_command)
    {
        Some(Err(e)) => problems.push(format!("--database-upgrade-command: {e}")),
        Some(Ok(args)) => {
            if let Err(e) =
                crate::db::check_command_no_literal_password("--database-upgrade-command", &args)
            {
                problems.push(e.to_string());
            }
        }
        None => {}
    }

    // 6. The agent plan runs after its server: it goes on only when the database confirms
    // the server's upgrade (or the administrator does, with --server-upgraded).
    if o.mode == Mode::Agent {
        let shown = crate::db::redact(connection_string.as_deref().unwrap_or_default());
        let table = crate::steps::db_fingerprint::VERSION_PART;
        let unconfirmed = match connection_string.as_deref().map(|c| database_version(c, root)) {
            Some(Ok(Some(v))) if super::install::version_is(&v, TO_VERSION) => None,
            Some(Ok(Some(v))) if v.starts_with("5.1") => {
                problems.push(format!(
                    "agent gate: the database ({shown}) still reports version {v} in {table}: upgrade the server first (--mode server), then its agents"
                ));
                None
            }
            Some(Ok(Some(v))) => Some(format!(
                "the database ({shown}) reports version {v} in {table}, not {TO_VERSION}.x"
            )),
            Some(Ok(None)) => Some(format!(
                "the database ({shown}) records no version: it has no table {} (the version table this tool reads; the vendor's guide names none)",
                table.split('.').next().unwrap_or(table)
            )),
            Some(Err(e)) => Some(format!(
                "the database version ({table}) cannot be read: {e}"
            )),
            None => Some(
                "no connection string (--connection-string, or ConnectionString in Runtime/appsettings.json): the database version cannot be read".into(),
            ),
        };
        if let Some(why) = unconfirmed {
            if o.server_upgraded {
                warnings.push(format!(
                    "agent gate: {why}; going on because --server-upgraded says the server was upgraded first"
                ));
            } else {
                problems.push(format!(
                    "agent gate: cannot confirm that the server was upgraded first: {why}. Upgrade the server first (--mode server); if it was, and the database cannot show it, pass --server-upgraded"
                ));
            }
        }
    }

    // 7. Files held open (Windows: a running service or IIS makes the renames fail). When
    // the plan stops the service itself, the holders are expected now and checked by the
    // renames: a sharing violation there names the file and rolls back.
    let held: Vec<PathBuf> = ["Runtime", "Conf", "Temp", "Work"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    if o.services.is_empty() && o.stop_command.is_none() {
        let dirs: Vec<&Path> = held.iter().map(PathBuf::as_path).collect();
        match crate::platform::processes_holding(&dirs) {
            Ok(holders) if !holders.is_empty() => problems.push(format!(
                "files under Runtime, Conf, Temp or Work are open in {}: stop them first (or pass --service NAME to have the upgrade stop the service)",
                holders.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )),
            Ok(_) => {}
            Err(e) => warnings.push(format!(
                "cannot ask which processes hold files under the installation ({e}): make sure the service and IIS are stopped"
            )),
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Facts {
        installed: installed.expect("no problem means found"),
        zip: zip.expect("no problem means found"),
        appsettings,
        agent_source,
        runtime_agent,
        ids,
        conf,
        encrypt_file,
        manual,
        encrypted,
        certificate_source,
        tracked_encrypted,
        warnings,
        tracked_accounts,
        connection_string_from,
        connection_string,
    })
}

/// Every symbolic link (on Windows also a junction) under `dirs`, or one of `dirs` itself,
/// as a refusal naming it and its target; links are never followed.
fn symlinks_under(root: &Path, dirs: &[PathBuf]) -> Vec<String> {
    const SHOWN: usize = 20;
    let mut found = Vec::new();
    for dir in dirs {
        let walk = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name();
        // Unreadable entries are reported by the checks that read them.
        for e in walk.into_iter().filter_map(Result::ok) {
            if e.file_type().is_symlink() {
                let target = std::fs::read_link(e.path())
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default();
                let show = e.path().strip_prefix(root).unwrap_or(e.path());
                found.push(format!(
                    "{}: is a symbolic link{target}: the upgrade never follows links under Runtime, Conf, Temp or Work; replace it with the file or folder it points to",
                    show.display()
                ));
            }
        }
    }
    if found.len() > SHOWN {
        let more = found.len() - SHOWN;
        found.truncate(SHOWN);
        found.push(format!("... and {more} more symbolic links"));
    }
    found
}

/// The version the database records (a fresh session of its own, closed at once).
fn database_version(conn: &str, root: &Path) -> Result<Option<String>, String> {
    let t = crate::db::target(conn, root).map_err(|e| e.to_string())?;
    let mut db = crate::db::open(&t).map_err(|e| e.to_string())?;
    db.version().map_err(|e| e.to_string())
}
