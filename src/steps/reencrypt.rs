//! Re-encrypt legacy (5.1) encrypted files into the new format (`encryption-format.md`),
//! staged, verified and undoable. One journal intent covers every file.
//!
//! Before any change, the intent checks every candidate in parallel: legacy magic, data key
//! unwrapped with this certificate (the certificate remembers it, so apply does not pay the
//! RSA operation again), SHA-256 of the original.
//!
//! Per file `F` (touch `i`), in this order:
//! 1. (parallel across files, and across the chunks of each file: [`parallel`]) decrypt `F`
//!    and write it re-encrypted to `F.ucu-staging` beside it; read the staged file back,
//!    check its wrapped key by wrapping the kept data key again with the kept OAEP seed (no
//!    private-key operation: the key pair was proven once when the certificate was loaded),
//!    decrypt and authenticate every chunk, and compare each chunk's plaintext digest with the
//!    one computed while writing (plaintext and digests stay in memory); the staged file's own
//!    SHA-256 (the new ciphertext) is computed in the same pass. A file of
//!    [`FSYNC_EACH_MIN`] or more is fsynced while it is read back; the smaller ones are made
//!    durable together by one `syncfs` per filesystem once all are staged.
//! 2. (in plan order, groups of [`GROUP`]) a StepData record `{i, new manifest}` for each
//!    file of the group, made durable with one flush: the write-ahead rule for step 3.
//! 3. (per group) hard-link each `F` as `trash/<i>` (the original inode, kept for undo), one
//!    fsync of the trash folder, then rename each `F.ucu-staging` over its `F` (atomic); the
//!    folders' fsyncs are left to the engine's barrier before the step is recorded done (a
//!    rename lost in a crash leaves a *linked* file, which resume redoes). `F` always holds
//!    either the whole original or the whole new file.
//!
//! Per-file state is derived from disk + trash + recorded hashes, never from memory:
//! - *original*: `F` has its `before` manifest and `trash/<i>` does not exist;
//! - *linked*: `trash/<i>` exists and `F` is still the original (crash between 3a and 3b);
//! - *converted*: `trash/<i>` holds the `before` bytes and `F` starts with the new magic (and,
//!   when recorded, has the recorded new hash).
//!
//! After a crash, `settle` (no key needed) removes staging files and links whose file was
//! not yet replaced, so every file is either *original* or *converted*. The probe then says
//! applied (all converted), not applied (none) or [`Probe::Partial`] (some): `resume` goes on
//! with the files still original and keeps the converted ones as they are; `rollback`
//! restores the converted ones. Undo restores each original from the trash after checking
//! its hash.
//!
//! The certificate is loaded at run time from a [`CertificateSource`] (PFX path or store
//! lookup; the PFX password a [`CertPassword`] value given by the command line, never
//! stored). Rollback needs no key.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    artifact_problem, io as io_err, show, Intent, OnBytes, OnPhase, Outcome, PlanView, Probe,
    Result, Step, StepContext, StepError, Touch, Work,
};
use crate::crypto::{
    is_legacy, is_new_format, parallel, CertPassword, Certificate, CertificateSource, LegacyReader,
    LEGACY_MAGIC, NEW_MAGIC,
};
use crate::durable_fs;
use crate::manifest::{Entry, Kind, Manifest};
use crate::platform;

/// Files whose StepData records share one journal flush before their renames.
pub const GROUP: usize = 256;

/// [`GROUP`], or with the `failpoints` feature `$USERCUBE_UPGRADE_REENCRYPT_GROUP` (tests use
/// 1 to put a crash point between any two files).
fn group_size() -> usize {
    #[cfg(feature = "failpoints")]
    if let Some(n) = std::env::var("USERCUBE_UPGRADE_REENCRYPT_GROUP")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return n.max(1);
    }
    GROUP
}

pub struct ReencryptFiles {
    pub root: PathBuf,
    /// Every regular file under these folders (recursively) is a candidate.
    pub folders: Vec<PathBuf>,
    /// Files; the last component may hold `*` and `?` wildcards.
    pub files: Vec<PathBuf>,
    pub certificate: CertificateSource,
    /// The PFX password given at run time (never in the plan).
    password: Option<CertPassword>,
    cert: OnceLock<std::result::Result<Arc<Certificate>, String>>,
}

/// Step-specific facts in the intent (`Intent::detail`, JSON).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// Thumbprint of the certificate the files are encrypted for (old and new).
    pub thumbprint: String,
    pub files: usize,
    pub bytes: u64,
    /// Candidates left alone because they do not start with the legacy magic.
    pub not_legacy: usize,
}

/// The new file of touch `index`, durable before it replaces the original. A StepData record
/// holds a group's list of them (one record per group: one saved file, not one per file, which
/// cost most of a many-small-files run); an earlier build saved each one alone, and resume
/// still reads that.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Converted {
    index: usize,
    after: Manifest,
}

impl Converted {
    /// A StepData payload's records: a group's list, or one alone (earlier builds); nothing
    /// from another kind of payload.
    fn read(payload: &[u8]) -> Vec<Converted> {
        serde_json::from_slice::<Vec<Converted>>(payload)
            .or_else(|_| serde_json::from_slice::<Converted>(payload).map(|c| vec![c]))
            .unwrap_or_default()
    }
}

impl ReencryptFiles {
    pub fn new(
        root: &Path,
        folders: Vec<PathBuf>,
        files: Vec<PathBuf>,
        certificate: CertificateSource,
        password: Option<CertPassword>,
    ) -> ReencryptFiles {
        ReencryptFiles {
            root: root.to_path_buf(),
            folders: folders.iter().map(|p| root.join(p)).collect(),
            files: files.iter().map(|p| root.join(p)).collect(),
            certificate,
            password,
            cert: OnceLock::new(),
        }
    }

    fn cert(&self) -> Result<Arc<Certificate>> {
        self.cert
            .get_or_init(|| {
                // The key pair is proven here, in preflight: staged headers are then checked
                // by wrapping again, without a private-key operation per file.
                let cert = self
                    .certificate
                    .load(&self.root, self.password.as_ref())
                    .map_err(|e| e.to_string())?;
                cert.prove_key_pair().map_err(|e| e.to_string())?;
                Ok(Arc::new(cert))
            })
            .clone()
            .map_err(StepError::Refused)
    }

    /// Every candidate file now on disk, sorted, without duplicates or staging leftovers, and
    /// never inside the journal folder (its trash holds the kept originals): `journal` is
    /// that folder when known (`StepContext::journal_dir`, `PlanView::journal_dir`).
    fn candidates(
        &self,
        resolve: &dyn Fn(&Path) -> Option<PathBuf>,
        journal: Option<&Path>,
    ) -> Result<Vec<PathBuf>> {
        let is_journal = |dir: &Path| journal.is_some_and(|j| platform::path_starts_with(dir, j));
        let mut out = Vec::new();
        for folder in &self.folders {
            let Some(origin) = resolve(folder) else {
                continue;
            };
            if !origin.is_dir() {
                continue;
            }
            let walk = walkdir::WalkDir::new(&origin)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| !(e.file_type().is_dir() && is_journal(e.path())));
            for e in walk {
                let e = e.map_err(|e| StepError::Invalid {
                    path: origin.clone(),
                    message: e.to_string(),
                })?;
                if e.file_type().is_file() && !is_staging(e.path()) {
                    out.push(e.into_path());
                }
            }
        }
        for pattern in &self.files {
            let (Some(parent), Some(name)) = (pattern.parent(), pattern.file_name()) else {
                continue;
            };
            let name = name.to_string_lossy();
            let Some(parent) = resolve(parent) else {
                continue;
            };
            if !name.contains(['*', '?']) {
                let p = parent.join(&*name);
                if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                    out.push(p);
                }
                continue;
            }
            let entries = match std::fs::read_dir(&parent) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("listing", &parent)(e)),
            };
            for e in entries {
                let e = e.map_err(io_err("listing", &parent))?;
                let n = e.file_name().to_string_lossy().into_owned();
                if wildcard_match(&name, &n)
                    && e.file_type().is_ok_and(|t| t.is_file())
                    && !is_staging(&e.path())
                {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn describe_targets(&self, root: &Path) -> String {
        self.folders
            .iter()
            .chain(&self.files)
            .map(|p| show(root, p))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_staging(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(durable_fs::STAGING_SUFFIX))
}

/// `*` matches any run of characters, `?` one character.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The first bytes of a file (fewer if it is shorter).
fn head(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let got = crate::stream::read_full(&mut File::open(path)?, &mut buf)?;
    buf.truncate(got);
    Ok(buf)
}

fn starts_with_new_magic(path: &Path) -> bool {
    head(path, NEW_MAGIC.len()).is_ok_and(|h| is_new_format(&h))
}

fn crypto_failure(path: &Path, what: &str, e: impl std::fmt::Display) -> StepError {
    StepError::Invalid {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// Re-encrypts `path` into its staging file (chunks on every core), fsyncs it, verifies it;
/// returns the staged file's manifest (as it will be once renamed into place). The check
/// reads the staged file back while its fsync runs: it reads the same bytes either way (from
/// the page cache), and the step renames the file into place only after both succeeded.
/// The step itself stages in batches; this one file at a time is the bench's.
#[cfg(any(test, feature = "testing"))]
pub fn stage_one(
    cert: &Certificate,
    path: &Path,
    mode: u32,
    on_bytes: OnBytes,
) -> Result<Manifest> {
    stage(cert, path, mode, on_bytes, &|_| {}, true)
}

/// Files at least this large are fsynced one by one, while they are verified; smaller ones
/// are left to one `syncfs` after all are staged (their cost is the fsync's latency, not its
/// bytes).
pub const FSYNC_EACH_MIN: u64 = 4 << 20;

/// [`stage_one`]; with `sync` false the staged file is not fsynced (the caller makes it
/// durable before renaming it into place). A large file's check (`sync`) is named through
/// `on_phase`: it reads the whole file again with no byte to report.
fn stage(
    cert: &Certificate,
    path: &Path,
    mode: u32,
    on_bytes: OnBytes,
    on_phase: OnPhase,
    sync: bool,
) -> Result<Manifest> {
    let staged = durable_fs::staging_path(path);
    durable_fs::remove_path(&staged).map_err(io_err("removing", &staged))?;
    let src = File::open(path).map_err(io_err("opening", path))?;
    let out = platform::create_with_mode(
        OpenOptions::new().read(true).write(true).create_new(true),
        mode,
    )
    .open(&staged)
    .map_err(io_err("creating", &staged))?;
    let verified = (|| {
        durable_fs::keep_owner(&src, &out).map_err(io_err("setting the owner of", &staged))?;
        let summary = parallel::reencrypt_file(cert, cert, &src, &out, on_bytes)
            .map_err(|e| crypto_failure(path, "cannot re-encrypt", e))?;
        platform::set_file_mode(&out, mode).map_err(io_err("setting the mode of", &staged))?;
        let (synced, checked) = if sync {
            on_phase(&format!("verifying {}", show_name(path)));
            std::thread::scope(|s| {
                let synced = s.spawn(|| durable_fs::sync_open_file(&out));
                let checked = parallel::verify_file(cert, &out, &summary);
                (synced.join().expect("fsync thread"), checked)
            })
        } else {
            (Ok(()), parallel::verify_file(cert, &out, &summary))
        };
        synced.map_err(io_err("syncing", &staged))?;
        let (sha256, size) =
            checked.map_err(|e| crypto_failure(&staged, "the staged file does not verify", e))?;
        Ok(Manifest {
            entries: vec![Entry {
                rel: String::new(),
                kind: Kind::File,
                size,
                mode,
                sha256,
            }],
        })
    })();
    drop(out);
    if verified.is_err() {
        let _ = durable_fs::remove_path(&staged);
    }
    verified
}

/// A file's name, for a progress phase.
fn show_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn kept_path(trash: &Path, i: usize) -> PathBuf {
    trash.join(i.to_string())
}

fn same_inode(a: &Path, b: &Path) -> bool {
    match (platform::file_identity(a), platform::file_identity(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn single_file_mode(m: &Manifest) -> u32 {
    m.entries.first().map_or(0o600, |e| e.mode & 0o7777)
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    Original,
    Converted,
    Other(String),
}

impl ReencryptFiles {
    /// The recorded new manifests: the outcome's, else the StepData records (last wins).
    fn recorded_after(
        &self,
        ctx: &StepContext,
        n: usize,
        outcome: Option<&Outcome>,
    ) -> Result<Vec<Option<Manifest>>> {
        let mut after = vec![None; n];
        ctx.journal.saved(&mut |payload| {
            for c in Converted::read(payload) {
                if c.index < n {
                    after[c.index] = Some(c.after);
                }
            }
            Ok(())
        })?;
        if let Some(o) = outcome {
            for (i, m) in &o.after {
                if *i < n {
                    after[*i] = Some(m.clone());
                }
            }
        }
        Ok(after)
    }

    fn file_state(
        &self,
        t: &Touch,
        kept: &Path,
        expected_after: Option<&Manifest>,
    ) -> Result<FileState> {
        let now = Manifest::of(&t.path).map_err(io_err("reading", &t.path))?;
        let kept_m = Manifest::of(kept).map_err(io_err("reading", kept))?;
        if !kept_m.exists() {
            return Ok(if now == t.before {
                FileState::Original
            } else {
                FileState::Other(format!(
                    "{} is neither the original nor re-encrypted ({})",
                    t.path.display(),
                    t.before
                        .first_difference(&now)
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                ))
            });
        }
        if kept_m != t.before {
            return Ok(FileState::Other(format!(
                "the kept original of {} ({}) is not the recorded one",
                t.path.display(),
                kept.display()
            )));
        }
        if now == t.before {
            // Linked, not yet replaced.
            return Ok(FileState::Original);
        }
        if !starts_with_new_magic(&t.path) {
            return Ok(FileState::Other(format!(
                "{} is not in the new format",
                t.path.display()
            )));
        }
        match expected_after {
            Some(a) if *a != now => Ok(FileState::Other(format!(
                "{} changed since it was re-encrypted ({})",
                t.path.display(),
                a.first_difference(&now)
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            ))),
            _ => Ok(FileState::Converted),
        }
    }

    fn restore(&self, t: &Touch, kept: &Path) -> Result<()> {
        let m = Manifest::of(kept).map_err(io_err("reading", kept))?;
        if let Some(d) = t.before.first_difference(&m) {
            return Err(StepError::Refused(format!(
                "the kept original of {} is missing or altered ({d}); cannot restore it",
                t.path.display()
            )));
        }
        durable_fs::replace(kept, &t.path).map_err(io_err("restoring", &t.path))
    }
}

impl Step for ReencryptFiles {
    fn describe(&self, root: &Path) -> String {
        format!(
            "re-encrypt legacy-encrypted files in {} to the new format ({}; originals kept)",
            self.describe_targets(root),
            self.certificate.describe()
        )
    }

    fn check(&self, view: &mut PlanView) -> std::result::Result<(), String> {
        for f in &self.folders {
            view.require(f)?;
        }
        self.cert().map(|_| ()).map_err(|e| e.to_string())
    }

    fn bytes_needed(&self, view: &PlanView) -> u64 {
        self.work(view).bytes
    }

    /// The legacy files still to re-encrypt: their bytes and their number.
    fn work(&self, view: &PlanView) -> Work {
        let Ok(files) = self.candidates(&|p| view.origin(p), view.journal_dir()) else {
            return Work::default();
        };
        files
            .iter()
            .filter(|p| head(p, 4).is_ok_and(|h| is_legacy(&h)))
            .filter_map(|p| p.metadata().ok())
            .fold(Work::default(), |w, m| Work {
                bytes: w.bytes + m.len(),
                files: w.files + 1,
            })
    }

    /// Each file of the intent is restored (or found original) once.
    fn undo_work(&self, intent: &Intent) -> Work {
        Work {
            bytes: 0,
            files: intent.touches.len() as u64,
        }
    }

    /// Its certificate must load (with the run-time PFX password): resuming needs the key.
    fn ready_to_resume(&self) -> std::result::Result<(), String> {
        self.certificate
            .load(&self.root, self.password.as_ref())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn intent(&self, ctx: &StepContext) -> Result<Intent> {
        let cert = self.cert()?;
        // Per file, on every core: is it legacy, does its data key unwrap with this
        // certificate (refuse before anything changes), and its hash.
        let candidates = self.candidates(&|p| Some(p.to_path_buf()), Some(ctx.journal_dir))?;
        let checked: Vec<Result<Option<Touch>>> = candidates
            .into_par_iter()
            .map(|path| {
                let h = head(&path, LEGACY_MAGIC.len()).map_err(io_err("reading", &path))?;
                if !is_legacy(&h) {
                    return Ok(None);
                }
                let f = File::open(&path).map_err(io_err("opening", &path))?;
                LegacyReader::new(&cert, BufReader::new(f))
                    .map_err(|e| crypto_failure(&path, "cannot decrypt", e))?;
                let before = Manifest::of(&path).map_err(io_err("reading", &path))?;
                (ctx.on_files)(1);
                Ok(Some(Touch {
                    path,
                    before,
                    after: None,
                }))
            })
            .collect();
        let mut touches = Vec::new();
        let mut not_legacy = 0;
        let mut bytes = 0;
        for touch in checked {
            match touch? {
                Some(t) => {
                    bytes += t.before.total_bytes();
                    touches.push(t);
                }
                None => not_legacy += 1,
            }
        }
        let detail = Detail {
            thumbprint: cert.thumbprint(),
            files: touches.len(),
            bytes,
            not_legacy,
        };
        Ok(Intent {
            touches,
            detail: serde_json::to_string(&detail).expect("detail serializes"),
        })
    }

    fn apply(&self, ctx: &StepContext, intent: &Intent) -> Result<Outcome> {
        let cert = self.cert()?;
        if let Ok(d) = serde_json::from_str::<Detail>(&intent.detail) {
            if d.thumbprint != cert.thumbprint() {
                return Err(StepError::Refused(format!(
                    "the run started with certificate {}, but {} was loaded",
                    d.thumbprint,
                    cert.thumbprint()
                )));
            }
        }
        let trash = &ctx.trash;
        if !intent.touches.is_empty() {
            durable_fs::create_private_dir_all(trash).map_err(io_err("creating", trash))?;
        }
        // Files converted by an interrupted attempt stay as they are (resume goes on).
        let recorded = self.recorded_after(ctx, intent.touches.len(), None)?;
        let mut after: Vec<(usize, Manifest)> = Vec::new();
        let mut todo = Vec::new();
        for (i, t) in intent.touches.iter().enumerate() {
            let kept = kept_path(trash, i);
            if kept.symlink_metadata().is_ok() {
                if starts_with_new_magic(&t.path) {
                    let m = Manifest::of(&t.path).map_err(io_err("reading", &t.path))?;
                    if recorded[i].as_ref() != Some(&m) {
                        return Err(StepError::Refused(format!(
                            "{} is in the new format but not as this step recorded it; resolve by hand",
                            t.path.display()
                        )));
                    }
                    after.push((i, m));
                    continue;
                }
                let now = Manifest::of(&t.path).map_err(io_err("reading", &t.path))?;
                if now != t.before {
                    return Err(StepError::Refused(format!(
                        "{} changed since the step started; resolve by hand",
                        t.path.display()
                    )));
                }
                durable_fs::remove_path(&kept).map_err(io_err("removing", &kept))?;
            }
            todo.push(i);
        }

        // 1. Stage and verify every file, in parallel.
        let (on_bytes, on_phase) = (ctx.on_bytes, ctx.on_phase);
        let staged: Vec<Result<Manifest>> = todo
            .par_iter()
            .map(|&i| {
                let t = &intent.touches[i];
                let sync = t.before.total_bytes() >= FSYNC_EACH_MIN;
                // The file's size in all (its header counts as well as its chunks).
                let reported = std::sync::atomic::AtomicU64::new(0);
                let count = |n| {
                    reported.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    on_bytes(n)
                };
                let mode = single_file_mode(&t.before);
                let staged = stage(&cert, &t.path, mode, &count, on_phase, sync);
                on_bytes(t.before.total_bytes().saturating_sub(reported.into_inner()));
                (ctx.on_files)(1);
                staged
            })
            .collect();
        if let Some(pos) = staged.iter().position(|r| r.is_err()) {
            for &i in &todo {
                let s = durable_fs::staging_path(&intent.touches[i].path);
                let _ = durable_fs::remove_path(&s);
            }
            let mut staged = staged;
            return Err(staged.swap_remove(pos).unwrap_err());
        }
        // The small staged files, durable before any rename.
        let small = todo
            .iter()
            .map(|&i| &intent.touches[i])
            .filter(|t| t.before.total_bytes() < FSYNC_EACH_MIN);
        let small_staged: Vec<PathBuf> = small.map(|t| durable_fs::staging_path(&t.path)).collect();
        if !small_staged.is_empty() {
            (ctx.on_phase)(&format!("syncing {} files", small_staged.len()));
        }
        if let Err(e) = durable_fs::sync_files(small_staged.iter().map(PathBuf::as_path)) {
            let first = small_staged
                .first()
                .map_or(trash.as_path(), PathBuf::as_path);
            return Err(io_err("syncing", first)(e));
        }
        let staged: Vec<(usize, Manifest)> = todo
            .iter()
            .copied()
            .zip(staged.into_iter().map(|r| r.expect("checked")))
            .collect();

        // 2 + 3. Per group: new hashes durable in the journal, then link and replace.
        let mut replaced = 0;
        for group in staged.chunks(group_size()) {
            (ctx.on_phase)(&format!("replacing files {replaced}/{}", staged.len()));
            replaced += group.len();
            let records: Vec<Converted> = group
                .iter()
                .map(|(i, m)| Converted {
                    index: *i,
                    after: m.clone(),
                })
                .collect();
            ctx.journal
                .save(serde_json::to_vec(&records).expect("records serialize"))?;
            ctx.journal.sync()?;
            // Every original kept (links durable: one trash fsync), then every rename; the
            // renames' folder fsyncs wait for the engine's barrier before the step is done.
            for (i, _) in group {
                let t = &intent.touches[*i];
                ctx.deferred
                    .link_or_copy(&t.path, &kept_path(trash, *i))
                    .map_err(io_err("keeping the original of", &t.path))?;
            }
            ctx.deferred.barrier().map_err(io_err("syncing", trash))?;
            for (i, _) in group {
                let t = &intent.touches[*i];
                let s = durable_fs::staging_path(&t.path);
                ctx.deferred
                    .replace(&s, &t.path)
                    .map_err(io_err("renaming into place", &s))?;
            }
            after.extend(group.iter().cloned());
        }
        after.sort_by_key(|(i, _)| *i);
        let notes = if intent.touches.is_empty() {
            vec!["no legacy-encrypted file found".to_string()]
        } else {
            vec![format!(
                "{} files re-encrypted for certificate {}",
                intent.touches.len(),
                cert.thumbprint()
            )]
        };
        Ok(Outcome { after, notes })
    }

    fn settle(&self, ctx: &StepContext, intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        for (i, t) in intent.touches.iter().enumerate() {
            let staged = durable_fs::staging_path(&t.path);
            durable_fs::remove_path(&staged).map_err(io_err("removing", &staged))?;
            let kept = kept_path(&ctx.trash, i);
            if kept.symlink_metadata().is_err() || starts_with_new_magic(&t.path) {
                continue;
            }
            // Linked but not replaced: the file is still the original; drop the link.
            let still_original = same_inode(&kept, &t.path)
                || Manifest::of(&t.path).map_err(io_err("reading", &t.path))? == t.before;
            if still_original {
                durable_fs::remove_path(&kept).map_err(io_err("removing", &kept))?;
            }
        }
        Ok(())
    }

    fn probe(
        &self,
        ctx: &StepContext,
        intent: &Intent,
        outcome: Option<&Outcome>,
    ) -> Result<Probe> {
        let after = self.recorded_after(ctx, intent.touches.len(), outcome)?;
        let (mut original, mut converted) = (0, 0);
        let mut problem = None;
        for (i, t) in intent.touches.iter().enumerate() {
            match self.file_state(t, &kept_path(&ctx.trash, i), after[i].as_ref())? {
                FileState::Original => original += 1,
                FileState::Converted => converted += 1,
                FileState::Other(why) => {
                    problem.get_or_insert(why);
                }
            }
        }
        let n = intent.touches.len();
        Ok(match problem {
            Some(why) => Probe::Inconsistent(why),
            None if converted == n => Probe::Applied,
            None if original == n => Probe::NotApplied,
            None => Probe::Partial(format!(
                "{converted} of {n} files already re-encrypted, {original} to go"
            )),
        })
    }

    fn undo(&self, ctx: &StepContext, intent: &Intent, _outcome: Option<&Outcome>) -> Result<()> {
        (ctx.on_phase)("restoring the originals");
        for (i, t) in intent.touches.iter().enumerate() {
            let kept = kept_path(&ctx.trash, i);
            if kept.symlink_metadata().is_err() {
                let now = Manifest::of(&t.path).map_err(io_err("reading", &t.path))?;
                if now == t.before {
                    (ctx.on_files)(1);
                    continue;
                }
                return Err(StepError::Refused(format!(
                    "the kept original of {} is missing; cannot restore it",
                    t.path.display()
                )));
            }
            self.restore(t, &kept)?;
            (ctx.on_files)(1);
        }
        Ok(())
    }

    /// Each kept original the undo will put back must be the file's recorded original, as
    /// `restore` checks it. A file not converted (no kept original, not in the new format)
    /// needs none; one in the new format whose kept original is gone cannot be restored.
    fn verify_artifacts(
        &self,
        ctx: &StepContext,
        intent: &Intent,
        _outcome: Option<&Outcome>,
    ) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for (i, t) in intent.touches.iter().enumerate() {
            let kept = kept_path(&ctx.trash, i);
            let found = if kept.symlink_metadata().is_ok() {
                Manifest::of(&kept).map_err(io_err("reading", &kept))?
            } else if starts_with_new_magic(&t.path) {
                Manifest::default()
            } else {
                continue;
            };
            let of_what = format!("the kept original of {}", t.path.display());
            let Some(problem) = artifact_problem(&kept, &of_what, &t.before, &found) else {
                continue;
            };
            // Linked but never replaced: settle drops the link, the undo reads no copy.
            let original = !starts_with_new_magic(&t.path)
                && Manifest::of(&t.path).map_err(io_err("reading", &t.path))? == t.before;
            if !original {
                problems.push(problem);
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{cert_a, fixture};
    use crate::steps::test_kit::{flip_one_byte, with_ctx, TestJournal};

    /// Three legacy files under `root/Work/Exports`, and the step that re-encrypts them.
    fn legacy_files() -> (tempfile::TempDir, ReencryptFiles, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let dir = root.join("Work/Exports");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, plain) in [("a.csv", "alpha"), ("b.csv", "bravo"), ("c.csv", "charlie")] {
            let out = File::create(dir.join(name)).unwrap();
            crate::crypto::encrypt_legacy(cert_a(), plain.as_bytes(), out).unwrap();
        }
        let step = ReencryptFiles::new(
            &root,
            vec![PathBuf::from("Work/Exports")],
            Vec::new(),
            CertificateSource::Pfx {
                path: fixture().pfx_default.clone(),
                thumbprint: None,
            },
            Some(CertPassword::new("pass-A".into())),
        );
        let trash = d.path().join("journal/trash/3");
        (d, step, trash)
    }

    fn verify(step: &ReencryptFiles, trash: &Path, intent: &Intent) -> Vec<String> {
        let journal = TestJournal::new(trash);
        with_ctx(trash, &journal, |ctx| {
            step.verify_artifacts(ctx, intent, None)
        })
        .unwrap()
    }

    /// The files re-encrypted, their originals kept in the trash.
    fn converted() -> (tempfile::TempDir, ReencryptFiles, PathBuf, Intent) {
        let (d, step, trash) = legacy_files();
        let journal = TestJournal::new(&trash);
        let intent = with_ctx(&trash, &journal, |ctx| {
            let intent = step.intent(ctx).unwrap();
            step.apply(ctx, &intent).unwrap();
            intent
        });
        assert_eq!(intent.touches.len(), 3);
        assert!(intent
            .touches
            .iter()
            .all(|t| starts_with_new_magic(&t.path)));
        (d, step, trash, intent)
    }

    #[test]
    fn intact_kept_originals_are_no_problem() {
        let (_d, step, trash, intent) = converted();
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
        // Undone (a rollback interrupted before its record): nothing more is needed.
        let journal = TestJournal::new(&trash);
        with_ctx(&trash, &journal, |ctx| step.undo(ctx, &intent, None)).unwrap();
        assert!(intent
            .touches
            .iter()
            .all(|t| Manifest::of(&t.path).unwrap() == t.before));
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
    }

    #[test]
    fn one_byte_flipped_in_a_kept_original_names_it() {
        let (_d, step, trash, intent) = converted();
        let kept = kept_path(&trash, 1);
        flip_one_byte(&kept);
        let problems = verify(&step, &trash, &intent);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!(
                "{}: altered: '.' changed: content ",
                kept.display()
            )),
            "{problems:?}"
        );
        let of_what = format!(
            "(the kept original of {})",
            intent.touches[1].path.display()
        );
        assert!(problems[0].ends_with(&of_what), "{problems:?}");
    }

    #[test]
    fn a_deleted_kept_original_is_missing() {
        let (_d, step, trash, intent) = converted();
        let kept = kept_path(&trash, 2);
        durable_fs::remove_path(&kept).unwrap();
        assert_eq!(
            verify(&step, &trash, &intent),
            [format!(
                "{}: missing (the kept original of {})",
                kept.display(),
                intent.touches[2].path.display()
            )]
        );
    }

    /// Never applied: every file is its legacy original and nothing is kept.
    #[test]
    fn files_never_converted_need_no_kept_original() {
        let (_d, step, trash) = legacy_files();
        let journal = TestJournal::new(&trash);
        let intent = with_ctx(&trash, &journal, |ctx| step.intent(ctx).unwrap());
        assert_eq!(intent.touches.len(), 3);
        assert_eq!(verify(&step, &trash, &intent), Vec::<String>::new());
    }

    #[test]
    fn converted_records_are_read_as_a_group_or_alone() {
        let m = |size| Manifest {
            entries: vec![Entry {
                rel: String::new(),
                kind: Kind::File,
                size,
                mode: 0o600,
                sha256: [size as u8; 32],
            }],
        };
        let group = vec![
            Converted {
                index: 3,
                after: m(10),
            },
            Converted {
                index: 4,
                after: m(11),
            },
        ];
        let payload = serde_json::to_vec(&group).unwrap();
        assert_eq!(Converted::read(&payload), group);
        let alone = serde_json::to_vec(&group[1]).unwrap();
        assert_eq!(Converted::read(&alone), group[1..]);
        assert_eq!(Converted::read(b"{\"kind\":\"other\"}"), []);
        assert_eq!(Converted::read(b"not json"), []);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(
            "tracked-accounts-*.csv",
            "tracked-accounts-1.csv"
        ));
        assert!(wildcard_match(
            "tracked-accounts-*.csv",
            "tracked-accounts-.csv"
        ));
        assert!(!wildcard_match(
            "tracked-accounts-*.csv",
            "tracked-accounts-1.txt"
        ));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("*", ""));
    }
}
