//! Linux (and other Unix) implementations; see `platform/mod.rs`.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::{Holder, ServiceState};

/// fsync of a folder: makes the creation, rename or removal of its entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsync of one file, by path.
pub fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// rename(2). The caller has checked that `to` is absent; the folders are synced separately.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}

/// rename(2) over an existing file.
pub fn replace(staged: &Path, to: &Path) -> io::Result<()> {
    fs::rename(staged, to)
}

/// Whether a rename failed only because source and target are on different filesystems.
pub fn is_cross_device(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EXDEV)
}

/// `syncfs` of the filesystem holding `path`.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: syncfs takes a valid open descriptor, borrowed for the call.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes files written without their own fsync durable: one `syncfs` per filesystem holding
/// any of them (far cheaper than an fsync each). Every path must exist.
pub fn sync_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    let mut done = BTreeSet::new();
    for p in paths {
        if done.insert(fs::metadata(p)?.dev()) {
            sync_filesystem(p)?;
        }
    }
    Ok(())
}

/// Starts writing a file's dirty pages without waiting (Linux `sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`), so that a later fsync has little left to do.
pub fn start_writeback(file: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
        let r =
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(())
}

/// The permission bits a manifest records.
pub fn mode_of(meta: &Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
}

pub fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
}

/// The mode a file is created with (before the umask; `set_file_mode` fixes it after).
pub fn create_with_mode(opts: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    opts.mode(mode & 0o7777)
}

/// Creates `dir` (its parent exists; `dir` does not) readable by its owner only. Does not
/// sync. An existing folder is an error: it is never re-moded (see `untrusted_folder`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(dir)?;
    // The umask may have taken bits the mode asked for, never added any: set it exactly.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Why `dir` cannot be trusted to hold the journal (whose plans name paths an administrator's
/// run will act on), if so: a symbolic link, not a folder, owned by another account than the
/// one running the tool (or root), or writable by its group or by everyone. Never changes it.
pub fn untrusted_folder(dir: &Path) -> io::Result<Option<String>> {
    let m = fs::symlink_metadata(dir)?;
    if m.file_type().is_symlink() {
        return Ok(Some("is a symbolic link".into()));
    }
    if !m.is_dir() {
        return Ok(Some("is not a folder".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me && m.uid() != 0 {
        return Ok(Some(format!(
            "is owned by uid {}, not by the account running the tool (uid {me}) or root",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Ok(Some(format!(
            "is writable by its group or by everyone (mode {:o}); give a folder only its owner can write (mode 700)",
            m.mode() & 0o7777
        )));
    }
    Ok(None)
}

/// Creates the file `path` (which must not exist) readable by its owner only from its
/// creation, so that no other account can open it while it is being written.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Makes an existing file readable by its owner only.
pub fn make_private_file(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

/// Whether only the owner (and the administrators: root) can open `path`.
#[cfg(any(test, feature = "testing"))]
pub fn is_private(path: &Path) -> io::Result<bool> {
    Ok(fs::metadata(path)?.permissions().mode() & 0o077 == 0)
}

/// Gives `out` the owner and group of `src` (the agent's service account must still read its
/// files when the upgrade runs as root). Without the right to, leaves them as created.
pub fn keep_owner(src: &File, out: &File) -> io::Result<()> {
    let m = src.metadata()?;
    match std::os::unix::fs::fchown(out, Some(m.uid()), Some(m.gid())) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other,
    }
}

/// `keep_owner` by path, for a copy.
pub fn copy_owner(from: &Path, to: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(from)?;
    match std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid())) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other,
    }
}

/// Gives `path` (not followed when a link) the owner and group of the folder `dir`: a file
/// created by the tool where nothing was before (an extracted tree, a new file) belongs to
/// whoever owns the installation folder. Without the right to, leaves it as created.
pub fn owner_from_folder(dir: &Path, path: &Path) -> io::Result<()> {
    copy_owner(dir, path)
}

/// (filesystem, inode): two paths with the same identity are one file.
pub fn file_identity(path: &Path) -> io::Result<(u64, u64)> {
    let m = path.symlink_metadata()?;
    Ok((m.dev(), m.ino()))
}

/// The filesystem an existing path is on.
pub fn volume_of(path: &Path) -> io::Result<u64> {
    Ok(path.symlink_metadata()?.dev())
}

pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.read_at(buf, offset)
}

/// A symlink `link` -> `target`, as found in a copied tree.
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Free bytes available to this user on the filesystem holding `existing`.
pub fn free_space(existing: &Path) -> io::Result<u64> {
    let c = CString::new(existing.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statvfs writes into the zeroed struct we pass; c is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// A path component the OS cannot hold. On Unix only NUL, which no `Path` carries.
pub fn refused_name(_component: &str) -> Option<&'static str> {
    None
}

/// Whether two names in one folder are the same entry (case-sensitive on Unix).
pub fn same_name(a: &str, b: &str) -> bool {
    a == b
}

/// Processes holding files open under `dirs`. Linux lets a folder be renamed while its files
/// are open (the service keeps its old inodes), so there is nothing to refuse and nothing is
/// asked.
pub fn processes_holding(_dirs: &[&Path]) -> io::Result<Vec<Holder>> {
    Ok(Vec::new())
}

/// What to add to the message of an operation on `path` that failed with `e` because a
/// process holds it open: never the case on Linux.
pub fn explain_in_use(_path: &Path, _e: &io::Error) -> Option<String> {
    None
}

/// The administrator's command line, run by the platform's shell.
pub fn shell_command(line: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(line);
    c
}

/// Starts `cmd` in a process group of its own: the SIGINT a terminal sends its foreground
/// group on Ctrl+C (and SIGQUIT, SIGTSTP) reaches this tool, which stops at its next durable
/// point, and not the service command or vendor tool, which finishes its step. Such a
/// child is not in the terminal's foreground group: it cannot prompt on the terminal.
pub fn own_process_group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

/// The shell `shell_command` runs, for messages.
pub const SHELL: &str = "sh -c";

/// One argument of a command line printed for a POSIX shell: single quotes where needed.
pub fn shell_quote(arg: &str) -> std::borrow::Cow<'_, str> {
    super::quote::posix(arg)
}

/// A printed command line read back as the shell would (tests only).
#[cfg(any(test, feature = "testing"))]
pub fn split_command_line(line: &str) -> Result<Vec<String>, String> {
    super::quote::split_posix(line)
}

/// Windows services exist only on Windows.
pub fn service_state(name: &str) -> io::Result<ServiceState> {
    Err(no_services(name))
}

pub fn stop_service(name: &str, _timeout: std::time::Duration) -> io::Result<()> {
    Err(no_services(name))
}

pub fn start_service(name: &str, _timeout: std::time::Duration) -> io::Result<()> {
    Err(no_services(name))
}

fn no_services(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "--service {name}: Windows services exist only on Windows; on Linux use \
             --stop-command and --start-command (for example 'systemctl stop {name}')"
        ),
    )
}

/// A private key held by the OS. Linux has no OS key store the engine uses (the .NET layout
/// of PFX files is read instead), so there is none.
pub enum OsPrivateKey {}

impl OsPrivateKey {
    pub fn decrypt_oaep(&self, _sha256: bool, _wrapped: &[u8]) -> io::Result<Vec<u8>> {
        match *self {}
    }
}

/// The OS certificate store: none on Linux (`crypto::store` reads the .NET layout).
pub fn find_store_certificate(
    _local_machine: bool,
    _store: &str,
    _thumbprint: &[u8; 20],
) -> io::Result<Option<(Vec<u8>, OsPrivateKey)>> {
    Ok(None)
}

/// Where `find_store_certificate` looks, for messages.
pub const OS_CERT_STORE: Option<&str> = None;

/// Whether a child process ended by `std::process::abort` (the crash failpoint) or a kill:
/// on Unix, ended by a signal.
#[cfg(any(test, feature = "testing"))]
pub fn aborted(status: &std::process::ExitStatus) -> bool {
    status.code().is_none()
}

/// Whether a file can run here as a program (the vendor ships Windows executables).
/// SQL Server Windows authentication (SSPI) exists only on Windows.
pub const SQL_WINDOWS_AUTH: bool = false;

pub fn runs_windows_executables() -> bool {
    false
}

/// The account this process runs as (effective uid), for the audit: its name in the user
/// database, else `$USER`, else `uid N`.
pub fn user_name() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is passed with it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc == 0 && !found.is_null() && !pw.pw_name.is_null() {
        // SAFETY: on success pw_name points to a NUL-terminated string inside buf.
        let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| Some(format!("uid {uid}")))
}

/// This machine's host name, for the audit.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; the name is NUL-terminated when it fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned()).filter(|h| !h.is_empty())
}

/// Routes SIGINT and SIGTERM into `req` (see [`super::StopRequest`]): the first sets it and
/// the process goes on to its next durable point; a second one exits at once with 128 + the
/// signal number (the journal is crash-safe, so recovery handles that like a kill).
pub fn watch_stop_requests(req: &super::StopRequest) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    use std::sync::Arc;
    let signals = [
        (SIGINT, super::StopSignal::Interrupt),
        (SIGTERM, super::StopSignal::Terminate),
    ];
    // signal-hook runs a signal's actions in registration order: the exit, armed only
    // by an earlier request, comes before the flags this request sets.
    for (sig, what) in signals {
        flag::register_conditional_shutdown(
            sig,
            i32::from(what.exit_code()),
            Arc::clone(&req.armed),
        )?;
    }
    for (sig, what) in signals {
        flag::register_usize(sig, Arc::clone(&req.signal), what as usize)?;
        flag::register(sig, Arc::clone(&req.armed))?;
    }
    Ok(())
}

/// Whether this process may create entries in `dir`, probed with an unnamed file
/// (`O_TMPFILE`), which leaves nothing behind even if the process is killed mid-probe.
/// `Ok(false)`: the filesystem makes no unnamed files; the caller probes another way.
pub fn probe_dir_unnamed(dir: &Path) -> io::Result<bool> {
    match OpenOptions::new()
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
    {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_and_files_are_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("j");
        create_private_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = dir.join("f");
        fs::write(&f, "x").unwrap();
        set_mode(&f, 0o644).unwrap();
        assert!(!is_private(&f).unwrap());
        make_private_file(&f).unwrap();
        assert!(is_private(&f).unwrap());
    }

    /// The real shell reads a quoted line back as the arguments it was made of.
    #[test]
    fn sh_reads_a_quoted_command_line_back() {
        let args = [
            "usercube-upgrade",
            "--root",
            "/tmp/John Smith/usercube-demo",
            "",
            "it's \\ \"$HOME\" `id` ; & | * ~ #x",
            "Zürich",
        ];
        let line = super::super::command_line(&args);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}");
        let words: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(words, args, "{line}");
        assert_eq!(split_command_line(&line).unwrap(), args);
    }

    #[test]
    fn nothing_is_refused_or_held_on_unix() {
        assert_eq!(refused_name("CON"), None);
        assert!(!same_name("Runtime", "runtime"));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "x").unwrap();
        let _open = File::open(&f).unwrap();
        assert_eq!(processes_holding(&[d.path()]).unwrap(), Vec::new());
        assert!(service_state("Usercube-Server")
            .unwrap_err()
            .to_string()
            .contains("--stop-command"));
    }
}
