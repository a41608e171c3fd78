//! Windows implementations; see `platform/mod.rs`. Durability on NTFS is argued in
//! journal-format.md ("Windows"): renames are write-through, files are flushed with
//! `FlushFileBuffers`, and folders need no flush of their own.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    LocalFree, ERROR_MORE_DATA, ERROR_SUCCESS, GENERIC_READ, GENERIC_WRITE, HANDLE, HLOCAL,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, GetSecurityInfo,
    SetNamedSecurityInfoW, SetSecurityInfo, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::Cryptography::{
    CertCloseStore, CertFindCertificateInStore, CertFreeCertificateContext, CertOpenStore,
    CryptAcquireCertificatePrivateKey, NCryptDecrypt, NCryptFreeObject, BCRYPT_OAEP_PADDING_INFO,
    BCRYPT_SHA1_ALGORITHM, BCRYPT_SHA256_ALGORITHM, CERT_FIND_HASH, CERT_NCRYPT_KEY_SPEC,
    CERT_STORE_OPEN_EXISTING_FLAG, CERT_STORE_PROV_SYSTEM_W, CERT_STORE_READONLY_FLAG,
    CERT_SYSTEM_STORE_CURRENT_USER, CERT_SYSTEM_STORE_LOCAL_MACHINE,
    CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG, CRYPT_ACQUIRE_SILENT_FLAG, CRYPT_INTEGER_BLOB,
    HCRYPTPROV_OR_NCRYPT_KEY_HANDLE, NCRYPT_KEY_HANDLE, NCRYPT_PAD_OAEP_FLAG, PKCS_7_ASN_ENCODING,
    X509_ASN_ENCODING,
};
use windows_sys::Win32::Security::{
    GetSecurityDescriptorControl, GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SE_DACL_PROTECTED,
    UNPROTECTED_DACL_SECURITY_INFORMATION,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetDiskFreeSpaceExW, GetFileInformationByHandle, GetVolumePathNameW, MoveFileExW,
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, MOVEFILE_REPLACE_EXISTING,
    MOVEFILE_WRITE_THROUGH, READ_CONTROL, WRITE_DAC,
};
use windows_sys::Win32::System::RestartManager::{
    RmEndSession, RmGetList, RmRegisterResources, RmStartSession, CCH_RM_SESSION_KEY,
    RM_PROCESS_INFO,
};
use windows_sys::Win32::System::Services::{
    CloseServiceHandle, ControlService, OpenSCManagerW, OpenServiceW, QueryServiceStatus,
    StartServiceW, SC_HANDLE, SC_MANAGER_CONNECT, SERVICE_CONTROL_STOP, SERVICE_QUERY_STATUS,
    SERVICE_RUNNING, SERVICE_START, SERVICE_STATUS, SERVICE_STOP, SERVICE_STOPPED,
};

use super::{Holder, ServiceState};

const ERROR_ACCESS_DENIED: i32 = 5;
const ERROR_SHARING_VIOLATION: i32 = 32;
const ERROR_LOCK_VIOLATION: i32 = 33;
const ERROR_NOT_SAME_DEVICE: i32 = 17;
const ERROR_SERVICE_NOT_ACTIVE: u32 = 1062;
const ERROR_SERVICE_ALREADY_RUNNING: u32 = 1056;

/// A NUL-terminated wide path the Win32 calls accept at any length: absolute, and in the
/// `\\?\` (or `\\?\UNC\`) form, which lifts the 260-character limit.
fn wide(path: &Path) -> io::Result<Vec<u16>> {
    let abs = std::path::absolute(path)?;
    let s: Vec<u16> = abs.as_os_str().encode_wide().collect();
    let prefix = |p: &str| p.encode_utf16().collect::<Vec<u16>>();
    let mut out = if s.starts_with(&prefix(r"\\?\")) || s.starts_with(&prefix(r"\\.\")) {
        Vec::new()
    } else if s.starts_with(&prefix(r"\\")) {
        let mut v = prefix(r"\\?\UNC\");
        v.extend_from_slice(&s[2..]);
        v.push(0);
        return Ok(v);
    } else {
        prefix(r"\\?\")
    };
    out.extend_from_slice(&s);
    out.push(0);
    Ok(out)
}

fn wide_str(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn from_wide(buf: &[u16]) -> String {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    OsString::from_wide(&buf[..end])
        .to_string_lossy()
        .into_owned()
}

fn check(ok: i32) -> io::Result<()> {
    if ok == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_win32(code: u32) -> io::Result<()> {
    if code == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code as i32))
    }
}

/// Folders need no flush on NTFS: its metadata goes through one sequential log, which every
/// write-through rename and every `FlushFileBuffers` of a file commits up to that point, so
/// an entry created or renamed earlier is durable once a later flush returns (the argument
/// is in journal-format.md). A directory handle cannot be flushed anyway (access denied).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::metadata(dir).map(|_| ())
}

/// `MoveFileExW` with `MOVEFILE_WRITE_THROUGH`: returns once the rename is on disk. Never
/// replaces an existing target.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (wide(from)?, wide(to)?);
    // SAFETY: two valid NUL-terminated wide strings.
    check(unsafe { MoveFileExW(f.as_ptr(), t.as_ptr(), MOVEFILE_WRITE_THROUGH) })
}

/// `MoveFileExW` with `MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH`.
pub fn replace(staged: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (wide(staged)?, wide(to)?);
    // SAFETY: two valid NUL-terminated wide strings.
    check(unsafe {
        MoveFileExW(
            f.as_ptr(),
            t.as_ptr(),
            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
        )
    })
}

pub fn is_cross_device(e: &io::Error) -> bool {
    e.raw_os_error() == Some(ERROR_NOT_SAME_DEVICE)
}

/// `FlushFileBuffers` of one file, by path (it needs a handle with write access).
pub fn sync_file(path: &Path) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.sync_all()
}

/// Recovery's flush of everything a dead process may have left in the cache: the whole
/// volume when the process may (an administrator: `FlushFileBuffers` on `\\.\C:`), else
/// every file under `path` this process can open for writing. Skipped: read-only files (the
/// engine writes none) and files another process holds open without sharing them (no one
/// but their holder can flush those; a running service holding its DLLs must not stop a
/// rollback).
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    if let Ok(volume) = volume_device(path) {
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .open(Path::new(&volume))
        {
            if f.sync_all().is_ok() {
                return Ok(());
            }
        }
    }
    for e in walkdir::WalkDir::new(path) {
        let e = e.map_err(io::Error::other)?;
        if e.file_type().is_file() {
            match sync_file(e.path()) {
                Err(err)
                    if err.kind() == io::ErrorKind::PermissionDenied
                        || is_sharing_violation(&err) => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// `\\.\C:` for a path on `C:\`.
fn volume_device(path: &Path) -> io::Result<String> {
    let w = wide(path)?;
    let mut buf = [0u16; 1024];
    // SAFETY: valid input string, output buffer of the given length.
    check(unsafe { GetVolumePathNameW(w.as_ptr(), buf.as_mut_ptr(), buf.len() as u32) })?;
    let v = from_wide(&buf);
    let v = v.trim_start_matches(r"\\?\").trim_end_matches('\\');
    if v.len() == 2 && v.ends_with(':') {
        Ok(format!(r"\\.\{v}"))
    } else {
        Err(io::Error::other(format!("no drive letter for {v}")))
    }
}

/// No `syncfs` on Windows: each file is flushed (`FlushFileBuffers`), on every core.
pub fn sync_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    use rayon::prelude::*;
    let paths: Vec<&Path> = paths.into_iter().collect();
    paths.par_iter().try_for_each(|p| {
        if fs::metadata(p)?.is_dir() {
            return Ok(());
        }
        sync_file(p)
    })
}

/// No early writeback to start on Windows; durability comes from the later flush.
pub fn start_writeback(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Windows has no permission bits; a manifest records the read-only attribute as 0o444
/// (else 0o644). The ACL is kept by `keep_owner`, not compared.
pub fn mode_of(meta: &Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut p = fs::metadata(path)?.permissions();
    p.set_readonly(mode & 0o222 == 0);
    fs::set_permissions(path, p)
}

pub fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    let mut p = file.metadata()?.permissions();
    p.set_readonly(mode & 0o222 == 0);
    file.set_permissions(p)
}

/// Opens with the right to copy an ACL onto the new file (`keep_owner`); the mode is set
/// after writing (`set_file_mode`).
pub fn create_with_mode(opts: &mut OpenOptions, _mode: u32) -> &mut OpenOptions {
    opts.access_mode(GENERIC_READ | GENERIC_WRITE | READ_CONTROL | WRITE_DAC)
}

/// Owner, SYSTEM and Administrators only, not inherited from the parent.
const PRIVATE_DIR_SDDL: &str = "D:P(A;OICI;FA;;;OW)(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
const PRIVATE_FILE_SDDL: &str = "D:P(A;;FA;;;OW)(A;;FA;;;SY)(A;;FA;;;BA)";

/// `SetNamedSecurityInfoW` of a DACL (`info`: which parts, protected or not).
fn set_named_dacl(path: &Path, info: u32, dacl: *const ACL) -> io::Result<()> {
    let p = wide(path)?;
    // SAFETY: a valid path; the caller keeps the DACL alive for the call.
    check_win32(unsafe {
        SetNamedSecurityInfoW(
            p.as_ptr(),
            SE_FILE_OBJECT,
            info,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        )
    })
}

fn set_protected_dacl(path: &Path, sddl: &str) -> io::Result<()> {
    let s = wide_str(sddl);
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: valid SDDL string; sd receives a LocalAlloc'd descriptor freed below.
    check(unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            s.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    })?;
    let result = (|| {
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = std::ptr::null_mut();
        // SAFETY: sd is a valid descriptor; outputs are plain locals.
        check(unsafe { GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) })?;
        set_named_dacl(
            path,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            dacl,
        )
    })();
    // SAFETY: sd was allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe { LocalFree(sd as HLOCAL) };
    result
}

/// Creates `dir` (its parent exists; `dir` does not) with a protected DACL: its owner,
/// SYSTEM and the Administrators group, nothing inherited from the parent. Does not sync.
/// An existing folder is an error: it is never changed (see `untrusted_folder`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)?;
    set_protected_dacl(dir, PRIVATE_DIR_SDDL)
}

/// Creates the file `path` (which must not exist) and gives it the owner-only protected DACL
/// before anything is written into it.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .access_mode(GENERIC_READ | GENERIC_WRITE | READ_CONTROL | WRITE_DAC)
        .open(path)?;
    set_protected_dacl(path, PRIVATE_FILE_SDDL)?;
    Ok(f)
}

/// Rights in an SDDL access mask that let a trustee change a folder's content or its
/// security: generic and file "all"/"write", write DAC/owner, delete, and the bits SDDL
/// prints with directory-service names (DC add file, LC add subfolder, RP write extended
/// attributes, DT delete child, CR write attributes).
const WRITE_RIGHTS: [&str; 12] = [
    "GA", "GW", "FA", "FW", "WD", "WO", "SD", "DC", "LC", "RP", "DT", "CR",
];
/// The same as mask bits (an SDDL mask may be printed in hex).
const WRITE_MASK: u32 = 0x1000_0000 // GENERIC_ALL
    | 0x4000_0000 // GENERIC_WRITE
    | 0x0008_0000 // WRITE_OWNER
    | 0x0004_0000 // WRITE_DAC
    | 0x0001_0000 // DELETE
    | 0x0000_0002 // FILE_WRITE_DATA / FILE_ADD_FILE
    | 0x0000_0004 // FILE_APPEND_DATA / FILE_ADD_SUBDIRECTORY
    | 0x0000_0010 // FILE_WRITE_EA
    | 0x0000_0040 // FILE_DELETE_CHILD
    | 0x0000_0100; // FILE_WRITE_ATTRIBUTES

/// The trustee of the first allow ACE of `sddl` (a `O:..D:..` descriptor) that grants a
/// write right to anyone but the owner, SYSTEM, Administrators or the creator owner.
fn other_writer(sddl: &str) -> Option<String> {
    let owner = sddl
        .strip_prefix("O:")
        .and_then(|s| s.split("D:").next())
        .unwrap_or("");
    let dacl = sddl.split_once("D:").map_or("", |(_, d)| d);
    for ace in dacl
        .split(')')
        .filter_map(|a| a.split_once('(').map(|(_, a)| a))
    {
        let fields: Vec<&str> = ace.split(';').collect();
        let (Some(kind), Some(rights), Some(trustee)) =
            (fields.first(), fields.get(2), fields.get(5))
        else {
            continue;
        };
        if *kind != "A" || ["OW", "SY", "BA", "CO"].contains(trustee) || *trustee == owner {
            continue;
        }
        let writes = match rights
            .strip_prefix("0x")
            .or_else(|| rights.strip_prefix("0X"))
        {
            Some(hex) => u32::from_str_radix(hex, 16).map_or(true, |m| m & WRITE_MASK != 0),
            None => (0..rights.len())
                .step_by(2)
                .any(|i| WRITE_RIGHTS.contains(&rights.get(i..i + 2).unwrap_or(""))),
        };
        if writes {
            return Some((*trustee).to_string());
        }
    }
    None
}

/// The SID of the account this process runs as (a copy, owned).
fn current_user_sid() -> io::Result<Vec<u8>> {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::Security::{
        GetLengthSid, GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process; token receives a handle closed below.
    check(unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) })?;
    let result = (|| {
        let mut len = 0u32;
        // SAFETY: a size query (null buffer); fails with ERROR_INSUFFICIENT_BUFFER by design.
        unsafe { GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len) };
        // u64 words: TOKEN_USER's alignment.
        let mut buf = vec![0u64; (len as usize).div_ceil(8)];
        // SAFETY: buf holds len bytes.
        check(unsafe {
            GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len)
        })?;
        // SAFETY: filled by GetTokenInformation with a TOKEN_USER and the SID it points to.
        let sid = unsafe { (*(buf.as_ptr() as *const TOKEN_USER)).User.Sid };
        // SAFETY: a valid SID inside buf.
        let n = unsafe { GetLengthSid(sid) } as usize;
        // SAFETY: n bytes of the SID.
        Ok(unsafe { std::slice::from_raw_parts(sid as *const u8, n) }.to_vec())
    })();
    // SAFETY: opened above.
    unsafe { CloseHandle(token) };
    result
}

/// Why `dir` cannot be trusted to hold the journal, if so: a symbolic link or junction, not a
/// folder, owned by someone other than the account running the tool, the Administrators
/// group or SYSTEM, or writable (its DACL) by another trustee. Never changes it.
pub fn untrusted_folder(dir: &Path) -> io::Result<Option<String>> {
    use std::os::windows::fs::MetadataExt;
    use windows_sys::Win32::Security::Authorization::ConvertSecurityDescriptorToStringSecurityDescriptorW as to_sddl;
    use windows_sys::Win32::Security::{
        EqualSid, IsWellKnownSid, WinBuiltinAdministratorsSid, WinLocalSystemSid,
        OWNER_SECURITY_INFORMATION, PSID,
    };
    use windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_REPARSE_POINT;
    let m = fs::symlink_metadata(dir)?;
    if m.file_type().is_symlink() || m.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Ok(Some("is a symbolic link or junction".into()));
    }
    if !m.is_dir() {
        return Ok(Some("is not a folder".into()));
    }
    let me = current_user_sid()?;
    let p = wide(dir)?;
    let mut owner: PSID = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    let info = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    // SAFETY: valid path; sd receives a LocalAlloc'd descriptor (owner points into it).
    check_win32(unsafe {
        GetNamedSecurityInfoW(
            p.as_ptr(),
            SE_FILE_OBJECT,
            info,
            &mut owner,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    })?;
    let result = (|| {
        // SAFETY: owner points into sd; me is a valid SID.
        let trusted_owner = unsafe {
            EqualSid(owner, me.as_ptr() as PSID) != 0
                || IsWellKnownSid(owner, WinBuiltinAdministratorsSid) != 0
                || IsWellKnownSid(owner, WinLocalSystemSid) != 0
        };
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: sd is valid; text receives a LocalAlloc'd string freed below.
        check(unsafe { to_sddl(sd, SDDL_REVISION_1, info, &mut text, std::ptr::null_mut()) })?;
        let mut n = 0;
        // SAFETY: a NUL-terminated string returned by the call above.
        while unsafe { *text.add(n) } != 0 {
            n += 1;
        }
        // SAFETY: n valid u16s.
        let sddl = from_wide(unsafe { std::slice::from_raw_parts(text, n) });
        // SAFETY: allocated by the conversion above.
        unsafe { LocalFree(text as HLOCAL) };
        let owner_name = sddl
            .strip_prefix("O:")
            .and_then(|s| s.split("D:").next())
            .unwrap_or("?")
            .to_string();
        if !trusted_owner {
            return Ok(Some(format!(
                "is owned by {owner_name}, not by the account running the tool or the Administrators"
            )));
        }
        Ok(other_writer(&sddl).map(|who| {
            format!("can be written by {who} (its DACL); give a folder only its owner, SYSTEM and the Administrators can write")
        }))
    })();
    // SAFETY: allocated by GetNamedSecurityInfoW.
    unsafe { LocalFree(sd as HLOCAL) };
    result
}

pub fn make_private_file(path: &Path) -> io::Result<()> {
    set_protected_dacl(path, PRIVATE_FILE_SDDL)
}

/// The DACL of `path` in SDDL form (`D:P(A;...)...`): for `is_private` and the tests.
#[cfg(any(test, feature = "testing"))]
pub fn dacl_sddl(path: &Path) -> io::Result<String> {
    use windows_sys::Win32::Security::Authorization::ConvertSecurityDescriptorToStringSecurityDescriptorW;
    let p = wide(path)?;
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: valid path; sd receives a LocalAlloc'd descriptor freed below.
    check_win32(unsafe {
        GetNamedSecurityInfoW(
            p.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    })?;
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: sd is valid; text receives a LocalAlloc'd string freed below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    let result = check(ok).map(|()| {
        let mut n = 0;
        // SAFETY: a NUL-terminated string returned by the call above.
        while unsafe { *text.add(n) } != 0 {
            n += 1;
        }
        // SAFETY: n valid u16s.
        from_wide(unsafe { std::slice::from_raw_parts(text, n) })
    });
    // SAFETY: both were LocalAlloc'd by the calls above (null is allowed).
    unsafe {
        LocalFree(text as HLOCAL);
        LocalFree(sd as HLOCAL);
    }
    result
}

/// Whether `path`'s DACL is protected (nothing inherited) and grants access only to its
/// owner, SYSTEM and Administrators.
#[cfg(any(test, feature = "testing"))]
pub fn is_private(path: &Path) -> io::Result<bool> {
    let sddl = dacl_sddl(path)?;
    let Some(dacl) = sddl.strip_prefix("D:") else {
        return Ok(false);
    };
    let flags_end = dacl.find('(').unwrap_or(dacl.len());
    if !dacl[..flags_end].contains('P') {
        return Ok(false);
    }
    let aces = dacl[flags_end..]
        .split(')')
        .filter(|a| !a.is_empty())
        .map(|a| a.trim_start_matches('('));
    let mut any = false;
    for ace in aces {
        let fields: Vec<&str> = ace.split(';').collect();
        let trustee = fields.get(5).copied().unwrap_or("");
        // OW: owner rights; SY: SYSTEM; BA: Administrators; CO: creator owner.
        let allowed = ["OW", "SY", "BA", "CO"].contains(&trustee) || fields[0] != "A";
        if !allowed {
            return Ok(false);
        }
        any = true;
    }
    Ok(any)
}

/// A file whose DACL is read or written: an open handle, or a path.
enum Secured<'a> {
    Handle(&'a File),
    Path(&'a Path),
}

/// Copies the DACL of `from` (and whether it is protected) onto `to`.
fn copy_dacl(from: Secured, to: Secured) -> io::Result<()> {
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a valid handle or path; sd receives a LocalAlloc'd descriptor freed below.
    check_win32(unsafe {
        match from {
            Secured::Handle(f) => GetSecurityInfo(
                f.as_raw_handle() as HANDLE,
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut sd,
            ),
            Secured::Path(p) => GetNamedSecurityInfoW(
                wide(p)?.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dacl,
                std::ptr::null_mut(),
                &mut sd,
            ),
        }
    })?;
    let result = (|| {
        let (mut control, mut revision) = (0u16, 0u32);
        // SAFETY: sd is valid.
        check(unsafe { GetSecurityDescriptorControl(sd, &mut control, &mut revision) })?;
        let info = DACL_SECURITY_INFORMATION
            | if control & SE_DACL_PROTECTED != 0 {
                PROTECTED_DACL_SECURITY_INFORMATION
            } else {
                UNPROTECTED_DACL_SECURITY_INFORMATION
            };
        match to {
            // SAFETY: a handle opened with WRITE_DAC; the DACL lives in sd.
            Secured::Handle(f) => check_win32(unsafe {
                SetSecurityInfo(
                    f.as_raw_handle() as HANDLE,
                    SE_FILE_OBJECT,
                    info,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    dacl,
                    std::ptr::null(),
                )
            }),
            Secured::Path(p) => set_named_dacl(p, info, dacl),
        }
    })();
    // SAFETY: allocated by GetSecurityInfo / GetNamedSecurityInfoW.
    unsafe { LocalFree(sd as HLOCAL) };
    result
}

/// Copies `src`'s DACL (and whether it is protected) onto `out`, which was opened through
/// `create_with_mode`: a re-encrypted or rewritten file keeps the access the original had.
pub fn keep_owner(src: &File, out: &File) -> io::Result<()> {
    copy_dacl(Secured::Handle(src), Secured::Handle(out))
}

/// `keep_owner` by path, for a copy.
pub fn copy_owner(from: &Path, to: &Path) -> io::Result<()> {
    copy_dacl(Secured::Path(from), Secured::Path(to))
}

/// A new file or folder inherits its folder's ACL on Windows: nothing to copy (the Unix
/// side gives it the folder's owner).
pub fn owner_from_folder(_dir: &Path, _path: &Path) -> io::Result<()> {
    Ok(())
}

fn by_handle(path: &Path) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    let f = OpenOptions::new()
        .access_mode(0)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    // SAFETY: zeroed plain struct, filled by the call.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: a valid handle and output struct.
    check(unsafe { GetFileInformationByHandle(f.as_raw_handle() as HANDLE, &mut info) })?;
    Ok(info)
}

/// (volume serial number, file index): two paths with the same identity are one file.
pub fn file_identity(path: &Path) -> io::Result<(u64, u64)> {
    let i = by_handle(path)?;
    Ok((
        i.dwVolumeSerialNumber as u64,
        ((i.nFileIndexHigh as u64) << 32) | i.nFileIndexLow as u64,
    ))
}

pub fn volume_of(path: &Path) -> io::Result<u64> {
    Ok(by_handle(path)?.dwVolumeSerialNumber as u64)
}

pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.seek_read(buf, offset)
}

/// A symlink as found in a copied tree: a folder link when its target is a folder.
pub fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    let resolved = link.parent().unwrap_or(Path::new(".")).join(target);
    if resolved.is_dir() {
        std::os::windows::fs::symlink_dir(target, link)
    } else {
        std::os::windows::fs::symlink_file(target, link)
    }
}

/// `GetDiskFreeSpaceExW`: free bytes available to this user.
pub fn free_space(existing: &Path) -> io::Result<u64> {
    let w = wide(existing)?;
    let mut free = 0u64;
    // SAFETY: valid string; the outputs we do not need may be null.
    check(unsafe {
        GetDiskFreeSpaceExW(
            w.as_ptr(),
            &mut free,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    })?;
    Ok(free)
}

/// A path component Windows cannot hold: device names (`CON`, `NUL.txt`, `COM1`...),
/// characters `<>:"|?*` and control characters, a trailing dot or space.
pub fn refused_name(component: &str) -> Option<&'static str> {
    let stem = component
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end_matches(' ')
        .to_ascii_uppercase();
    let device = matches!(
        stem.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || ((stem.starts_with("COM") || stem.starts_with("LPT"))
        && stem.len() == 4
        && stem.as_bytes()[3].is_ascii_digit());
    if device {
        Some("a reserved device name on Windows")
    } else if component
        .chars()
        .any(|c| "<>:\"|?*".contains(c) || (c as u32) < 32)
    {
        Some("a character Windows refuses in file names")
    } else if component != "." && component != ".." && component.ends_with(['.', ' ']) {
        Some("a trailing dot or space, which Windows drops")
    } else {
        None
    }
}

/// Whether two names in one folder are the same entry (NTFS compares case-insensitively).
pub fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_uppercase() == b.to_uppercase()
}

/// The Restart Manager's list of processes holding any file under `dirs` open.
pub fn processes_holding(dirs: &[&Path]) -> io::Result<Vec<Holder>> {
    let mut files: Vec<Vec<u16>> = Vec::new();
    for d in dirs {
        if !d.exists() {
            continue;
        }
        for e in walkdir::WalkDir::new(d) {
            let e = e.map_err(io::Error::other)?;
            if e.file_type().is_file() {
                files.push(wide(e.path())?);
            }
        }
    }
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let mut session = 0u32;
    let mut key = [0u16; CCH_RM_SESSION_KEY as usize + 1];
    // SAFETY: outputs of the documented sizes.
    check_win32(unsafe { RmStartSession(&mut session, 0, key.as_mut_ptr()) })?;
    let result = (|| {
        for chunk in files.chunks(1024) {
            let ptrs: Vec<*const u16> = chunk.iter().map(|f| f.as_ptr()).collect();
            // SAFETY: an array of valid NUL-terminated strings alive for the call.
            check_win32(unsafe {
                RmRegisterResources(
                    session,
                    ptrs.len() as u32,
                    ptrs.as_ptr(),
                    0,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                )
            })?;
        }
        let mut infos: Vec<RM_PROCESS_INFO> = Vec::new();
        loop {
            let (mut needed, mut count, mut reasons) = (0u32, infos.len() as u32, 0u32);
            // SAFETY: infos has room for `count` entries.
            let r = unsafe {
                RmGetList(
                    session,
                    &mut needed,
                    &mut count,
                    infos.as_mut_ptr(),
                    &mut reasons,
                )
            };
            if r == ERROR_MORE_DATA {
                // SAFETY: RM_PROCESS_INFO is plain data; zero is a valid value.
                infos.resize_with(needed as usize + 4, || unsafe { std::mem::zeroed() });
                continue;
            }
            check_win32(r)?;
            infos.truncate(count as usize);
            return Ok(infos
                .iter()
                .map(|i| {
                    let app = from_wide(&i.strAppName);
                    let service = from_wide(&i.strServiceShortName);
                    Holder {
                        pid: i.Process.dwProcessId,
                        name: if service.is_empty() {
                            app
                        } else {
                            format!("{app} (service {service})")
                        },
                    }
                })
                .collect());
        }
    })();
    // SAFETY: the session started above.
    unsafe { RmEndSession(session) };
    result
}

fn is_sharing_violation(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(ERROR_SHARING_VIOLATION | ERROR_LOCK_VIOLATION)
    )
}

/// For an operation on `path` refused with a sharing violation, or with access denied (what
/// renaming a folder with an open file in it gives): the processes the Restart Manager says
/// hold files there, and what to do.
pub fn explain_in_use(path: &Path, e: &io::Error) -> Option<String> {
    let code = e.raw_os_error()?;
    if !matches!(
        code,
        ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION | ERROR_LOCK_VIOLATION
    ) {
        return None;
    }
    let what = "stop it first, or pass --service NAME so that the upgrade stops the service";
    match processes_holding(&[path]) {
        Ok(h) if !h.is_empty() => Some(format!(
            " (held open by {}: {what})",
            h.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ if code != ERROR_ACCESS_DENIED => Some(format!(
            " (in use by another process, the Usercube service or IIS still running?: {what})"
        )),
        _ => None,
    }
}

/// `cmd.exe /C LINE`, the line passed as typed (IIS `appcmd`, `net stop`, PowerShell).
pub fn shell_command(line: &str) -> Command {
    let mut c = Command::new("cmd.exe");
    c.arg("/C").raw_arg(line);
    c
}

pub const SHELL: &str = "cmd.exe /C";

/// Starts `cmd` in a console process group of its own (`CREATE_NEW_PROCESS_GROUP`, which
/// also starts it with Ctrl+C ignored): the console's Ctrl+C reaches this tool, which stops
/// at its next durable point, and not the service command or vendor tool, which finishes its
/// step. Ctrl+Break and the console closing still reach every process of the console.
pub fn own_process_group(cmd: &mut Command) -> &mut Command {
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP)
}

/// One argument of a command line printed for cmd.exe or PowerShell: double quotes where
/// needed (`quote::windows` says why, and what neither shell keeps literal).
pub fn shell_quote(arg: &str) -> std::borrow::Cow<'_, str> {
    super::quote::windows(arg)
}

/// A printed command line read back as the program's argument parsing would (tests only).
#[cfg(any(test, feature = "testing"))]
pub fn split_command_line(line: &str) -> Result<Vec<String>, String> {
    super::quote::split_windows(line)
}

struct Sc(SC_HANDLE);

impl Drop for Sc {
    fn drop(&mut self) {
        // SAFETY: a handle opened by OpenSCManagerW/OpenServiceW.
        unsafe { CloseServiceHandle(self.0) };
    }
}

fn open_service(name: &str, access: u32) -> io::Result<Sc> {
    // SAFETY: null machine and database: the local service manager.
    let manager = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT) };
    if manager.is_null() {
        return Err(io::Error::last_os_error());
    }
    let manager = Sc(manager);
    let n = wide_str(name);
    // SAFETY: a valid manager handle and name.
    let service = unsafe { OpenServiceW(manager.0, n.as_ptr(), access) };
    if service.is_null() {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("service {name}: {e}")));
    }
    Ok(Sc(service))
}

fn query(service: &Sc) -> io::Result<u32> {
    // SAFETY: plain struct filled by the call.
    let mut st: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    // SAFETY: a valid service handle.
    check(unsafe { QueryServiceStatus(service.0, &mut st) })?;
    Ok(st.dwCurrentState)
}

fn state(raw: u32) -> ServiceState {
    match raw {
        SERVICE_STOPPED => ServiceState::Stopped,
        SERVICE_RUNNING => ServiceState::Running,
        _ => ServiceState::Changing,
    }
}

pub fn service_state(name: &str) -> io::Result<ServiceState> {
    Ok(state(query(&open_service(name, SERVICE_QUERY_STATUS)?)?))
}

fn wait_for(service: &Sc, name: &str, want: u32, timeout: Duration) -> io::Result<()> {
    let start = Instant::now();
    loop {
        let now = query(service)?;
        if now == want {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "service {name} is still {:?} after {} s",
                    state(now),
                    timeout.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asks the service manager to stop `name` and waits until it is stopped.
pub fn stop_service(name: &str, timeout: Duration) -> io::Result<()> {
    let s = open_service(name, SERVICE_STOP | SERVICE_QUERY_STATUS)?;
    // SAFETY: plain struct filled by the call.
    let mut st: SERVICE_STATUS = unsafe { std::mem::zeroed() };
    // SAFETY: a valid service handle.
    if unsafe { ControlService(s.0, SERVICE_CONTROL_STOP, &mut st) } == 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(ERROR_SERVICE_NOT_ACTIVE as i32) {
            return Err(e);
        }
    }
    wait_for(&s, name, SERVICE_STOPPED, timeout)
}

/// Asks the service manager to start `name` and waits until it runs.
pub fn start_service(name: &str, timeout: Duration) -> io::Result<()> {
    let s = open_service(name, SERVICE_START | SERVICE_QUERY_STATUS)?;
    // SAFETY: a valid service handle, no arguments.
    if unsafe { StartServiceW(s.0, 0, std::ptr::null()) } == 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(ERROR_SERVICE_ALREADY_RUNNING as i32) {
            return Err(e);
        }
    }
    wait_for(&s, name, SERVICE_RUNNING, timeout)
}

/// SQL Server Windows authentication through tiberius's `winauth` (SSPI).
pub const SQL_WINDOWS_AUTH: bool = true;

/// A private key in a CNG key storage provider, found through its certificate; the key
/// never leaves the OS (it is usually marked non-exportable).
pub struct OsPrivateKey {
    handle: NCRYPT_KEY_HANDLE,
    /// Whether the handle is ours to free (CryptAcquireCertificatePrivateKey says).
    owned: bool,
}

// SAFETY: a CNG key handle may be used from any thread; NCryptDecrypt on one key from
// several threads is supported by the Microsoft key storage providers.
unsafe impl Send for OsPrivateKey {}
// SAFETY: see above; the handle is only read.
unsafe impl Sync for OsPrivateKey {}

impl Drop for OsPrivateKey {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: a key handle acquired with CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG.
            unsafe { NCryptFreeObject(self.handle) };
        }
    }
}

impl OsPrivateKey {
    /// `NCryptDecrypt` with OAEP padding (SHA-1 or SHA-256, empty label).
    pub fn decrypt_oaep(&self, sha256: bool, wrapped: &[u8]) -> io::Result<Vec<u8>> {
        let padding = BCRYPT_OAEP_PADDING_INFO {
            pszAlgId: if sha256 {
                BCRYPT_SHA256_ALGORITHM
            } else {
                BCRYPT_SHA1_ALGORITHM
            },
            pbLabel: std::ptr::null_mut(),
            cbLabel: 0,
        };
        let mut out = vec![0u8; wrapped.len()];
        let mut n = 0u32;
        // SAFETY: valid key handle, input and output buffers of the given sizes, padding
        // info alive for the call.
        let status = unsafe {
            NCryptDecrypt(
                self.handle,
                wrapped.as_ptr(),
                wrapped.len() as u32,
                &padding as *const _ as *const core::ffi::c_void,
                out.as_mut_ptr(),
                out.len() as u32,
                &mut n,
                NCRYPT_PAD_OAEP_FLAG,
            )
        };
        if status != 0 {
            return Err(io::Error::other(format!(
                "NCryptDecrypt failed (0x{:08X})",
                status as u32
            )));
        }
        out.truncate(n as usize);
        Ok(out)
    }
}

/// The Windows certificate store (`LocalMachine\My`...): the certificate with this SHA-1
/// thumbprint, and a handle to its private key in CNG (`CryptAcquireCertificatePrivateKey`
/// with `CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG`, silent). Ok(None) when no certificate has it.
pub fn find_store_certificate(
    local_machine: bool,
    store: &str,
    thumbprint: &[u8; 20],
) -> io::Result<Option<(Vec<u8>, OsPrivateKey)>> {
    let name = wide_str(store);
    let location = if local_machine {
        CERT_SYSTEM_STORE_LOCAL_MACHINE
    } else {
        CERT_SYSTEM_STORE_CURRENT_USER
    };
    // SAFETY: the system store provider with a valid wide name.
    let handle = unsafe {
        CertOpenStore(
            CERT_STORE_PROV_SYSTEM_W,
            0,
            0,
            location | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG,
            name.as_ptr() as *const core::ffi::c_void,
        )
    };
    if handle.is_null() {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("opening the store {store}: {e}"),
        ));
    }
    let blob = CRYPT_INTEGER_BLOB {
        cbData: 20,
        pbData: thumbprint.as_ptr() as *mut u8,
    };
    // SAFETY: an open store; the blob points to 20 live bytes.
    let context = unsafe {
        CertFindCertificateInStore(
            handle,
            X509_ASN_ENCODING | PKCS_7_ASN_ENCODING,
            0,
            CERT_FIND_HASH,
            &blob as *const _ as *const core::ffi::c_void,
            std::ptr::null(),
        )
    };
    let result = if context.is_null() {
        Ok(None)
    } else {
        // SAFETY: a valid context: its encoded certificate is cbCertEncoded bytes.
        let der = unsafe {
            std::slice::from_raw_parts((*context).pbCertEncoded, (*context).cbCertEncoded as usize)
        }
        .to_vec();
        let mut key: HCRYPTPROV_OR_NCRYPT_KEY_HANDLE = 0;
        let (mut spec, mut owned) = (0u32, 0i32);
        // SAFETY: a valid context; outputs are plain locals.
        let ok = unsafe {
            CryptAcquireCertificatePrivateKey(
                context,
                CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | CRYPT_ACQUIRE_SILENT_FLAG,
                std::ptr::null(),
                &mut key,
                &mut spec,
                &mut owned,
            )
        };
        let r = if ok == 0 {
            let e = io::Error::last_os_error();
            Err(io::Error::new(
                e.kind(),
                format!("the certificate's private key cannot be used by this account: {e}"),
            ))
        } else if spec != CERT_NCRYPT_KEY_SPEC {
            Err(io::Error::other("the private key is not a CNG key"))
        } else {
            Ok(Some((
                der,
                OsPrivateKey {
                    handle: key as NCRYPT_KEY_HANDLE,
                    owned: owned != 0,
                },
            )))
        };
        // SAFETY: the context returned by CertFindCertificateInStore.
        unsafe { CertFreeCertificateContext(context) };
        r
    };
    // SAFETY: the store opened above.
    unsafe { CertCloseStore(handle, 0) };
    result
}

/// Where `find_store_certificate` looks, for messages.
pub const OS_CERT_STORE: Option<&str> = Some("the Windows certificate store");

/// Whether a child process ended by `std::process::abort` (the crash failpoint): on Windows a
/// fail-fast exit with `STATUS_STACK_BUFFER_OVERRUN`.
#[cfg(any(test, feature = "testing"))]
pub fn aborted(status: &std::process::ExitStatus) -> bool {
    status.code() == Some(0xC000_0409_u32 as i32)
}

pub fn runs_windows_executables() -> bool {
    true
}

/// The account this process runs as, `DOMAIN\user`, for the audit (as Windows sets it in
/// every process's environment).
pub fn user_name() -> Option<String> {
    let user = std::env::var("USERNAME").ok().filter(|u| !u.is_empty())?;
    Some(match std::env::var("USERDOMAIN") {
        Ok(d) if !d.is_empty() => format!("{d}\\{user}"),
        _ => user,
    })
}

/// This machine's name, for the audit.
pub fn host_name() -> Option<String> {
    std::env::var("COMPUTERNAME").ok().filter(|h| !h.is_empty())
}

/// The request the console handler sets: the handler gets no context pointer, so the one
/// request of this process is kept here (set once, by `watch_stop_requests`).
static STOP_REQUEST: std::sync::OnceLock<super::StopRequest> = std::sync::OnceLock::new();

/// Runs on a thread of its own when the console sends an event.
unsafe extern "system" fn on_console_event(kind: u32) -> windows_sys::core::BOOL {
    use std::sync::atomic::Ordering::SeqCst;
    use windows_sys::Win32::System::Console::{
        CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    };
    let Some(req) = STOP_REQUEST.get() else {
        return 0;
    };
    let what = match kind {
        CTRL_C_EVENT | CTRL_BREAK_EVENT => super::StopSignal::Interrupt,
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => super::StopSignal::Terminate,
        _ => return 0,
    };
    if req.armed.swap(true, SeqCst) {
        // A second request: at once (the journal is crash-safe).
        unsafe { windows_sys::Win32::System::Threading::ExitProcess(u32::from(what.exit_code())) }
    }
    req.signal.store(what as usize, SeqCst);
    if what == super::StopSignal::Terminate {
        // Windows ends the process when this handler returns (and after a few seconds in
        // any case): wait here so the engine can reach its durable point and exit itself.
        std::thread::sleep(Duration::from_secs(30));
    }
    1
}

/// Routes Ctrl+C and Ctrl+Break (as SIGINT) and the console closing, a log-off or a shutdown
/// (as SIGTERM) into `req` (see [`super::StopRequest`]): the first sets it; a second ends
/// the process at once with 130 or 143.
pub fn watch_stop_requests(req: &super::StopRequest) -> io::Result<()> {
    if STOP_REQUEST.set(req.clone()).is_err() {
        return Err(io::Error::other(
            "stop requests are already watched in this process",
        ));
    }
    // SAFETY: the handler is a plain function that only touches atomics and process exit.
    if unsafe {
        windows_sys::Win32::System::Console::SetConsoleCtrlHandler(Some(on_console_event), 1)
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process may create entries in `dir`, probed with a file opened
/// delete-on-close: the system removes it when the handle closes, even if the process is
/// killed mid-probe. Always `Ok(true)` when it could be created.
pub fn probe_dir_unnamed(dir: &Path) -> io::Result<bool> {
    use windows_sys::Win32::Storage::FileSystem::{DELETE, FILE_FLAG_DELETE_ON_CLOSE};
    let mut n = 0u32;
    loop {
        let probe = dir.join(format!(
            ".usercube-upgrade-probe-{}-{n}",
            std::process::id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .access_mode(GENERIC_WRITE | DELETE)
            .custom_flags(FILE_FLAG_DELETE_ON_CLOSE)
            .open(&probe)
        {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_refused_names() {
        for n in ["CON", "nul", "NUL.txt", "com1", "LPT9.log", "Aux "] {
            assert!(refused_name(n).is_some(), "{n}");
        }
        for n in ["a:b", "x?", "trailing.", "tab\there"] {
            assert!(refused_name(n).is_some(), "{n}");
        }
        for n in [
            "Runtime",
            "CONFIG",
            "COM10",
            "console.log",
            ".usercube-upgrade",
            "..",
        ] {
            assert_eq!(refused_name(n), None, "{n}");
        }
        assert!(super::super::refused_path(Path::new("Temp/NUL/x")).is_some());
        assert!(super::super::refused_path(Path::new("Temp/Collect/x.csv")).is_none());
    }

    #[test]
    fn names_compare_case_insensitively() {
        assert!(same_name("Runtime", "runtime"));
        assert!(super::super::path_starts_with(
            Path::new(r"C:\Usercube\.USERCUBE-upgrade\x"),
            Path::new(r"c:\usercube\.usercube-upgrade")
        ));
        assert!(!super::super::path_starts_with(
            Path::new(r"C:\Usercube\Runtime"),
            Path::new(r"C:\Usercube\Work")
        ));
    }

    #[test]
    fn wide_paths_are_verbatim_and_unc_aware() {
        let w = |p: &str| from_wide(&wide(Path::new(p)).unwrap());
        assert_eq!(w(r"C:\a\b"), r"\\?\C:\a\b");
        assert_eq!(w(r"\\server\share\a"), r"\\?\UNC\server\share\a");
        assert_eq!(w(r"\\?\C:\x"), r"\\?\C:\x");
    }

    #[test]
    fn paths_longer_than_260_characters_work() {
        let d = tempfile::tempdir().unwrap();
        let mut deep = d.path().to_path_buf();
        while deep.as_os_str().len() < 300 {
            deep.push("a-folder-name-of-some-length");
        }
        crate::durable_fs::create_dir_all(&deep).unwrap();
        let f = deep.join("appsettings.json");
        crate::durable_fs::atomic_write(&f, b"{}", None).unwrap();
        crate::durable_fs::atomic_write(&f, b"{\"a\":1}", None).unwrap();
        crate::durable_fs::rename(&f, &deep.join("moved.json")).unwrap();
        assert_eq!(fs::read(deep.join("moved.json")).unwrap(), b"{\"a\":1}");
        assert!(free_space(&deep).unwrap() > 0);
        assert_eq!(
            file_identity(&deep).unwrap().0,
            volume_of(d.path()).unwrap()
        );
    }

    #[test]
    fn a_file_held_open_is_a_sharing_violation_with_a_hint() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("Usercube-Server.dll");
        fs::write(&f, b"dll").unwrap();
        // As a running service holds its DLLs: no sharing of delete (rename) access.
        let _held = OpenOptions::new()
            .read(true)
            .share_mode(1)
            .open(&f)
            .unwrap();
        let e = crate::durable_fs::rename(&f, &d.path().join("moved.dll")).unwrap_err();
        assert!(is_sharing_violation(&e), "{e:?}");
        let step_error = crate::steps::io("renaming", &f)(e);
        assert!(
            step_error.to_string().contains("--service NAME"),
            "{step_error}"
        );
        assert!(f.exists());
    }

    /// The service still holding a DLL when the upgrade renames Runtime: the step fails
    /// naming the file, and the automatic rollback restores the installation.
    #[test]
    fn a_file_held_open_mid_run_fails_clearly_and_is_rolled_back() {
        use crate::manifest::Manifest;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let size = crate::sample::SampleSize {
            runtime_files: 4,
            file_bytes: 1000,
        };
        crate::sample::create_installation(&root, size).unwrap();
        let before = Manifest::of_excluding(&root, Some(".usercube-upgrade")).unwrap();
        let config = root.join("RuntimeOld/appsettings.json");
        let source = root.join("Runtime/appsettings.json");
        // The plan's first step renames Runtime, a later one copies this file from it.
        let held = OpenOptions::new()
            .read(true)
            .share_mode(0)
            .open(&source)
            .unwrap();
        let opts = crate::engine::Options {
            quiet: true,
            ..Default::default()
        };
        let e = crate::engine::Engine::open(&root, None, opts)
            .unwrap()
            .run(crate::sample::plan())
            .unwrap_err()
            .to_string();
        drop(held);
        // Windows refuses the folder's rename; wine refuses the copy of the file: either
        // way the message names the file or its folder and says it is held open.
        assert!(e.contains("Runtime"), "{e}");
        assert!(e.contains("in use") || e.contains("held open by"), "{e}");
        assert!(e.contains("rolled back"), "{e}");
        assert!(!config.exists());
        let after = Manifest::of_excluding(&root, Some(".usercube-upgrade")).unwrap();
        assert_eq!(before.first_difference(&after), None, "{e}");
    }

    #[test]
    fn a_private_file_has_a_protected_dacl_and_keep_owner_copies_it() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("backup.sqlite");
        fs::write(&f, b"x").unwrap();
        assert!(!is_private(&f).unwrap());
        make_private_file(&f).unwrap();
        assert!(is_private(&f).unwrap(), "{}", dacl_sddl(&f).unwrap());
        let out_path = d.path().join("copy");
        let out = create_with_mode(OpenOptions::new().write(true).create_new(true), 0o600)
            .open(&out_path)
            .unwrap();
        keep_owner(&File::open(&f).unwrap(), &out).unwrap();
        drop(out);
        assert_eq!(dacl_sddl(&out_path).unwrap(), dacl_sddl(&f).unwrap());
    }

    // On a real Windows host only (wine has no service we may stop, no CNG key, no SSPI
    // server): `cargo test -- --ignored` with the variables set (README, "Windows").

    #[test]
    #[ignore = "needs a real Windows host: set USERCUBE_UPGRADE_TEST_SERVICE to a stoppable service"]
    fn a_real_service_stops_and_starts_through_the_service_manager() {
        let name = std::env::var("USERCUBE_UPGRADE_TEST_SERVICE").expect("variable set");
        let t = Duration::from_secs(120);
        stop_service(&name, t).unwrap();
        assert_eq!(service_state(&name).unwrap(), ServiceState::Stopped);
        stop_service(&name, t).unwrap(); // stopping a stopped service is harmless
        start_service(&name, t).unwrap();
        assert_eq!(service_state(&name).unwrap(), ServiceState::Running);
    }

    #[test]
    #[ignore = "needs a real Windows host: set USERCUBE_UPGRADE_TEST_CERT_THUMBPRINT (LocalMachine\\My)"]
    fn a_store_certificate_decrypts_through_cng_without_export() {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::{Oaep, RsaPublicKey};
        let tp = std::env::var("USERCUBE_UPGRADE_TEST_CERT_THUMBPRINT").expect("variable set");
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(tp.replace(' ', ""), &mut bytes).unwrap();
        let (der, key) = find_store_certificate(true, "My", &bytes)
            .unwrap()
            .expect("found");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let public = RsaPublicKey::from_public_key_der(cert.public_key().raw).unwrap();
        let secret = [42u8; 32];
        let mut rng = rand::thread_rng();
        let w1 = public
            .encrypt(&mut rng, Oaep::new::<sha1::Sha1>(), &secret)
            .unwrap();
        let w256 = public
            .encrypt(&mut rng, Oaep::new::<sha2::Sha256>(), &secret)
            .unwrap();
        assert_eq!(key.decrypt_oaep(false, &w1).unwrap(), secret);
        assert_eq!(key.decrypt_oaep(true, &w256).unwrap(), secret);
        assert!(key.decrypt_oaep(true, &w1).is_err());
    }

    #[test]
    #[ignore = "needs a real Windows host: set USERCUBE_UPGRADE_TEST_MSSQL_SSPI to a connection string with Integrated Security=SSPI"]
    fn sql_server_with_windows_authentication() {
        let conn = std::env::var("USERCUBE_UPGRADE_TEST_MSSQL_SSPI").expect("variable set");
        let target = crate::db::target(&conn, Path::new(".")).unwrap();
        let mut db = crate::db::open(&target).unwrap();
        db.version().unwrap();
    }
}
