//! Issue 14, points 3 and 4, through the real binary: permissions (the journal folder's owner
//! and mode, database backups, owners and modes kept on copy, rewrite and extraction) and
//! hostile input (zip entries, symbolic links, oversized files, DTDs, huge plans). Each
//! refusal exits 2 naming the file and changes nothing.
//!
//! The owner tests need to give files to another account (chown): they run as root, as this
//! suite does; run by another user they say so and check nothing else.
//!
//! The hostile-input tests run on every platform: `scripts/windows.sh test` runs them for
//! the Windows target under wine, except those that make symbolic links on disk (wine makes
//! none; `NOT_UNDER_WINE` there). The permission tests are POSIX modes and owners on Unix
//! and DACLs on Windows; of the DACL ones, wine runs those it can answer (wine keeps a DACL
//! only as the Unix permission bits it maps to: README, "Tests").

mod common;

use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same, bin, mentions, snapshot, text, Install, JOURNAL};
use usercube_upgrade::testing::plan::{Plan, StepSpec};
use usercube_upgrade::testing::runbook::demo::{DemoSize, RUNTIME_ZIP};
use usercube_upgrade::testing::sample::{self, SampleSize};

/// An account and group nobody on the machine is (the "service account").
#[cfg(unix)]
const OTHER_UID: u32 = 4242;
#[cfg(unix)]
const OTHER_GID: u32 = 4343;

#[cfg(unix)]
fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0)
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[cfg(unix)]
fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

#[cfg(unix)]
fn chown_tree(p: &Path, uid: u32, gid: u32) {
    for e in walkdir::WalkDir::new(p) {
        chown(e.unwrap().path(), uid, gid);
    }
}

/// Gives `path` the DACL of `sddl` (`D:...`), as an administrator would with `icacls`.
#[cfg(windows)]
fn set_dacl(path: &Path, sddl: &str) {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Foundation::{LocalFree, HLOCAL};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW,
        SDDL_REVISION_1, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };
    let wide = |s: &std::ffi::OsStr| s.encode_wide().chain([0]).collect::<Vec<u16>>();
    let (p, s) = (wide(path.as_os_str()), wide(sddl.as_ref()));
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: a NUL-terminated SDDL string; sd receives a LocalAlloc'd descriptor freed below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            s.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    };
    assert_ne!(ok, 0, "{sddl}: {}", std::io::Error::last_os_error());
    let (mut present, mut defaulted) = (0, 0);
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: sd is a valid descriptor; the DACL points into it, alive until LocalFree.
    let err = unsafe {
        GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted);
        let err = SetNamedSecurityInfoW(
            p.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            dacl,
            std::ptr::null(),
        );
        LocalFree(sd as HLOCAL);
        err
    };
    assert_eq!(err, 0, "SetNamedSecurityInfoW {}", path.display());
}

/// `args` refused with exit 2, naming every `expect` (paths with either separator); the
/// tree is unchanged.
fn refused(i: &Install, args: &[&str], expect: &[&str]) -> String {
    let start = i.snapshot();
    let (code, msg) = i.code(args);
    assert_eq!(code, Some(2), "{args:?}:\n{msg}");
    for e in expect {
        assert!(mentions(&msg, e), "expected {e:?} in:\n{msg}");
    }
    assert!(!msg.contains("panicked"), "{msg}");
    assert_same(&start, &i.snapshot(), "after a refusal");
    msg
}

// ---------------------------------------------------------------- the journal folder

#[cfg(unix)]
#[test]
fn a_journal_folder_owned_by_another_account_is_refused() {
    if !is_root() {
        eprintln!("not root: cannot give a folder to another account; nothing checked");
        return;
    }
    let i = Install::new(SampleSize::default());
    let j = i.journal_dir();
    std::fs::create_dir(&j).unwrap();
    set_mode(&j, 0o700);
    chown(&j, OTHER_UID, OTHER_GID);
    for cmd in ["run", "status", "rollback"] {
        refused(
            &i,
            &[cmd],
            &[
                &format!("journal folder {}", j.display()),
                &format!("owned by uid {OTHER_UID}"),
            ],
        );
    }
    // Nothing was written into it and it was not re-moded.
    assert_eq!(std::fs::read_dir(&j).unwrap().count(), 0);
    assert_eq!(mode(&j), 0o700);
    assert_eq!(std::fs::metadata(&j).unwrap().uid(), OTHER_UID);
}

#[test]
fn a_journal_folder_that_is_a_symlink_is_refused() {
    let i = Install::new(SampleSize::default());
    let elsewhere = i._tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    #[cfg(unix)]
    set_mode(&elsewhere, 0o700);
    usercube_upgrade::testing::platform::symlink(&elsewhere, &i.journal_dir()).unwrap();
    refused(&i, &["run"], &[JOURNAL, "is a symbolic link"]);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[cfg(unix)]
#[test]
fn a_world_writable_journal_folder_is_refused_and_never_re_moded() {
    let i = Install::new(SampleSize::default());
    // What `--journal /tmp` gives: a world-writable folder with the sticky bit.
    let shared = i._tmp.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o1777);
    let group = i._tmp.path().join("group");
    std::fs::create_dir(&group).unwrap();
    set_mode(&group, 0o770);
    for (dir, was) in [(&shared, 0o1777), (&group, 0o770)] {
        let d = dir.to_str().unwrap();
        for cmd in ["run", "status"] {
            refused(
                &i,
                &[cmd, "--journal", d],
                &[d, "writable by its group or by everyone"],
            );
        }
        assert_eq!(mode(dir), was, "{d} was re-moded");
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    }
}

/// The Windows counterpart: a folder whose DACL lets Everyone write. Under wine too: wine
/// keeps an Everyone ACE as the folder's "other" permission bits and reads it back from them.
#[cfg(windows)]
#[test]
fn a_journal_folder_everyone_can_write_is_refused_and_its_dacl_kept() {
    let i = Install::new(SampleSize::default());
    let shared = i._tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_dacl(&shared, "D:(A;OICI;FA;;;WD)");
    let was = usercube_upgrade::testing::platform::dacl_sddl(&shared).unwrap();
    assert!(was.contains(";;;WD)"), "Everyone is in the DACL: {was}");
    let d = shared.to_str().unwrap();
    for cmd in ["run", "status"] {
        refused(
            &i,
            &[cmd, "--journal", d],
            &[d, "can be written by WD (its DACL)"],
        );
    }
    assert_eq!(
        usercube_upgrade::testing::platform::dacl_sddl(&shared).unwrap(),
        was
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
}

#[test]
fn an_existing_journal_folder_is_used_as_it_is_and_never_emptied() {
    let i = Install::new(SampleSize::default());
    let own = i._tmp.path().join("journals");
    std::fs::create_dir(&own).unwrap();
    #[cfg(unix)]
    set_mode(&own, 0o750);
    #[cfg(windows)]
    let dacl = usercube_upgrade::testing::platform::dacl_sddl(&own).unwrap();
    std::fs::write(own.join("notes.txt"), "the administrator's own file").unwrap();
    let d = own.to_str().unwrap();
    // A run refused by the engine's checks (its plan names a file that does not exist)
    // used to empty and remove the journal folder it was given.
    let bad = i._tmp.path().join("bad-plan.json");
    let plan = Plan::new(
        "bad",
        vec![(
            None,
            None,
            StepSpec::Copy {
                from: "Runtime/missing.dll".into(),
                to: "Work/missing.dll".into(),
            },
        )],
    );
    std::fs::write(&bad, serde_json::to_string(&plan).unwrap()).unwrap();
    let start = i.snapshot();
    let out = bin()
        .args(["run", "--quiet", "--root"])
        .arg(&i.root)
        .args(["--journal", d, "--plan"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_same(&start, &i.snapshot(), "after a refused run");
    assert_eq!(
        std::fs::read_to_string(own.join("notes.txt")).unwrap(),
        "the administrator's own file"
    );
    // A good run uses it without changing its mode (its DACL on Windows).
    i.ok(&["run", "--journal", d]);
    #[cfg(unix)]
    assert_eq!(mode(&own), 0o750);
    #[cfg(windows)]
    assert_eq!(
        usercube_upgrade::testing::platform::dacl_sddl(&own).unwrap(),
        dacl
    );
    i.ok(&["rollback", "--journal", d]);
    assert_same(&start, &i.snapshot(), "after rollback");
}

#[test]
fn a_new_journal_folder_is_owner_only() {
    let i = Install::new(SampleSize::default());
    i.ok(&["run"]);
    #[cfg(unix)]
    assert_eq!(mode(&i.journal_dir()), 0o700);
    #[cfg(windows)]
    assert!(
        usercube_upgrade::testing::platform::is_private(&i.journal_dir()).unwrap(),
        "{}",
        usercube_upgrade::testing::platform::dacl_sddl(&i.journal_dir()).unwrap()
    );
}

// ---------------------------------------------------------------- owners and modes

#[cfg(unix)]
#[test]
fn owner_group_and_mode_are_kept_on_copy_rewrite_and_extraction() {
    if !is_root() {
        eprintln!("not root: cannot give files to another account; nothing checked");
        return;
    }
    let i = Install::new(SampleSize::default());
    chown_tree(&i.root, OTHER_UID, OTHER_GID);
    set_mode(&i.root.join("Runtime/appsettings.json"), 0o640);
    set_mode(&i.root.join("Conf/Connectors"), 0o750);
    i.ok(&["run"]);
    let owned = |rel: &str| {
        let m = std::fs::symlink_metadata(i.root.join(rel)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (OTHER_UID, OTHER_GID),
            "{rel} changed owner"
        );
    };
    // Extracted (the tree takes the owner of the folder it lands in).
    for e in walkdir::WalkDir::new(i.root.join("Runtime")) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(&i.root).unwrap();
        owned(rel.to_str().unwrap());
    }
    // Copied, then rewritten by a write-file step: owner and mode kept.
    owned("Runtime/appsettings.json");
    assert_eq!(mode(&i.root.join("Runtime/appsettings.json")), 0o640);
    owned("Work/tracked-accounts-ADParis.csv");
    // A copied tree: its folders too.
    owned("Conf");
    owned("Conf/Connectors");
    owned("Conf/Connectors/AD.xml");
    assert_eq!(mode(&i.root.join("Conf/Connectors")), 0o750);
    // A moved tree keeps them (a rename).
    owned("Work/ProvisioningOrders");
}

/// Whether `sddl` holds an allow ACE that lets Everyone (`WD`) write.
#[cfg(windows)]
fn everyone_writes(sddl: &str) -> bool {
    sddl.split(')').any(|ace| {
        let f: Vec<&str> = ace
            .trim_start_matches(|c| c != '(')
            .trim_start_matches('(')
            .split(';')
            .collect();
        f.len() >= 6
            && f[0] == "A"
            && f[5] == "WD"
            && match f[2].strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).is_ok_and(|m| m & 0x2 != 0),
                None => ["FA", "FW", "GA", "GW"].iter().any(|r| f[2].contains(r)),
            }
    })
}

/// The Windows counterpart of the owners test: a copied file, a file copied then rewritten
/// and a file of a copied tree keep their DACL. Under wine too: the test's DACL grants
/// Everyone write, which wine keeps (as the "other" permission bits) and a new file does
/// not get, so a file that lost its DACL shows.
#[cfg(windows)]
#[test]
fn dacls_are_kept_on_copy_and_rewrite() {
    use usercube_upgrade::testing::platform::dacl_sddl;
    let i = Install::new(SampleSize::default());
    let files = [
        // renamed with Runtime, copied back, then rewritten by a write-file step
        ("Runtime/appsettings.json", "Runtime/appsettings.json"),
        // copied
        (
            "Runtime/tracked-accounts-ADParis.csv",
            "Work/tracked-accounts-ADParis.csv",
        ),
        // in a copied tree
        ("Conf/Connectors/AD.xml", "Conf/Connectors/AD.xml"),
    ];
    for (before, _) in files {
        let p = i.root.join(before);
        set_dacl(&p, "D:(A;;FA;;;WD)");
        let sddl = dacl_sddl(&p).unwrap();
        assert!(everyone_writes(&sddl), "{before}: {sddl}");
    }
    let fresh = i._tmp.path().join("fresh.txt");
    std::fs::write(&fresh, "a new file").unwrap();
    let sddl = dacl_sddl(&fresh).unwrap();
    assert!(!everyone_writes(&sddl), "a new file's DACL: {sddl}");
    i.ok(&["run"]);
    for (_, after) in files {
        let sddl = dacl_sddl(&i.root.join(after)).unwrap();
        assert!(everyone_writes(&sddl), "{after} lost its DACL: {sddl}");
    }
}

// ---------------------------------------------------------------- zip entries

/// A zip of `entries` (name, content, Unix mode); a mode with the symlink type makes a
/// symbolic link entry whose content is its target.
fn write_zip(path: &Path, entries: &[(&str, &[u8], u32)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, content, m) in entries {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*m & 0o777);
        if m & 0o170000 == 0o120000 {
            z.add_symlink(*name, std::str::from_utf8(content).unwrap(), opts)
                .unwrap();
        } else {
            z.start_file(*name, opts).unwrap();
            z.write_all(content).unwrap();
        }
    }
    z.finish().unwrap();
}

/// Offsets of `name`'s local header and central directory header.
fn headers_of(bytes: &[u8], name: &str) -> (usize, usize) {
    let find = |sig: &[u8], name_at: usize, len_at: usize| {
        (0..bytes.len() - 4)
            .find(|&o| {
                bytes[o..].starts_with(sig) && {
                    let n = u16::from_le_bytes([bytes[o + len_at], bytes[o + len_at + 1]]);
                    &bytes[o + name_at..o + name_at + n as usize] == name.as_bytes()
                }
            })
            .unwrap_or_else(|| panic!("no header for {name}"))
    };
    (find(b"PK\x03\x04", 30, 26), find(b"PK\x01\x02", 46, 28))
}

/// Makes `name` declare `size` uncompressed bytes (local header and central directory).
fn lie_about_size(path: &Path, name: &str, size: u32) {
    let mut b = std::fs::read(path).unwrap();
    let (local, central) = headers_of(&b, name);
    b[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
    b[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

/// Gives `name` the full Unix mode `m` (file type and special bits) in the central directory.
fn set_zip_mode(path: &Path, name: &str, m: u32) {
    let mut b = std::fs::read(path).unwrap();
    let (_, central) = headers_of(&b, name);
    let attrs = (m << 16)
        | (u32::from_le_bytes(b[central + 38..central + 42].try_into().unwrap()) & 0xFFFF);
    b[central + 38..central + 42].copy_from_slice(&attrs.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_symlink_entry_in_a_zip_is_refused_before_any_change() {
    let i = Install::new(SampleSize::default());
    let zip = i.root.join(sample::RUNTIME_ZIP);
    write_zip(
        &zip,
        &[
            ("Usercube-Server.dll", b"new server", 0o100644),
            ("appsettings.production.json", b"/etc/shadow", 0o120777),
        ],
    );
    for cmd in ["plan", "run"] {
        refused(
            &i,
            &[cmd],
            &[
                sample::RUNTIME_ZIP,
                "zip entry 'appsettings.production.json' is a symbolic link",
            ],
        );
    }
    assert!(!i.journal_dir().join("log").exists());
}

#[test]
fn setuid_setgid_and_sticky_bits_of_zip_entries_are_stripped_and_said() {
    let i = Install::new(SampleSize::default());
    let zip = i.root.join(sample::RUNTIME_ZIP);
    write_zip(
        &zip,
        &[
            ("Usercube-Server", b"#!/bin/sh\n", 0o100755),
            ("bin/helper", b"#!/bin/sh\n", 0o100755),
        ],
    );
    set_zip_mode(&zip, "Usercube-Server", 0o104755);
    set_zip_mode(&zip, "bin/helper", 0o103775);
    i.ok(&["run"]);
    #[cfg(unix)]
    {
        assert_eq!(mode(&i.root.join("Runtime/Usercube-Server")), 0o755);
        assert_eq!(mode(&i.root.join("Runtime/bin/helper")), 0o775);
    }
    // Windows keeps no Unix modes: the entries are extracted, and the note is journaled.
    assert!(i.root.join("Runtime/Usercube-Server").is_file());
    assert!(i.root.join("Runtime/bin/helper").is_file());
    let export = String::from_utf8(i.ok(&["journal", "export", "--json"]).stdout).unwrap();
    assert!(
        export.contains(
            "zip entry 'Usercube-Server': setuid/setgid/sticky bits stripped (mode 4755 extracted as 755)"
        ),
        "{export}"
    );
    assert!(export.contains("zip entry 'bin/helper'"), "{export}");
}

#[test]
fn a_zip_entry_larger_than_it_declares_stops_extraction_and_the_run_rolls_back() {
    let i = Install::new(SampleSize::default());
    let zip = i.root.join(sample::RUNTIME_ZIP);
    // 8 MiB of zeros deflate to a few KiB; the entry claims 1000 bytes (the free-space
    // preflight counts what entries declare).
    write_zip(
        &zip,
        &[
            ("Usercube-Server.dll", b"new server", 0o100644),
            ("wwwroot/bomb.bin", &vec![0u8; 8 << 20], 0o100644),
        ],
    );
    lie_about_size(&zip, "wwwroot/bomb.bin", 1000);
    let start = i.snapshot();
    let (code, msg) = i.code(&["run"]);
    assert_eq!(code, Some(1), "{msg}");
    for e in [
        sample::RUNTIME_ZIP,
        "zip entry 'wwwroot/bomb.bin': decompresses to more than its declared 1000 bytes",
        "rolled back",
    ] {
        assert!(mentions(&msg, e), "expected {e:?} in:\n{msg}");
    }
    assert_same(&start, &i.snapshot(), "after the automatic rollback");
    assert!(!i.root.join("Runtime.ucu-staging").exists());
}

// ---------------------------------------------------------------- plans

#[test]
fn a_plan_over_the_size_limit_is_a_typed_error_not_a_panic() {
    let i = Install::new(SampleSize::default());
    // 300 MiB, sparse: more than a journal record holds (256 MiB), which used to panic.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&i.plan_file)
        .unwrap();
    f.set_len(300 << 20).unwrap();
    drop(f);
    let plan = i.plan_file.to_str().unwrap();
    for cmd in ["plan", "run"] {
        refused(
            &i,
            &[cmd],
            &[
                plan,
                "cannot read the plan",
                "over the 64 MiB limit for plan files",
            ],
        );
    }
    assert!(!i.journal_dir().join("log").exists());
}

// ---------------------------------------------------------------- the runbook's inputs

const DEMO: DemoSize = DemoSize {
    files: 8,
    bytes: 4 << 10,
    rows: 5,
};

struct Demo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Demo {
    fn new() -> Demo {
        let (tmp, root) = common::demo_install(DEMO);
        Demo { _tmp: tmp, root }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args).arg("--root").arg(&self.root).arg("--quiet");
        if matches!(args.first(), Some(&"run") | Some(&"plan")) {
            c.args([
                "--mode",
                "integrated",
                "--skip-database-upgrade",
                "--runtime-zip",
            ])
            .arg(self.root.join(RUNTIME_ZIP));
        }
        c.env(
            usercube_upgrade::testing::crypto::PASSWORD_ENV,
            usercube_upgrade::testing::runbook::demo::DEMO_CERT_PASSWORD,
        );
        c
    }

    fn code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.cmd(args).output().unwrap();
        (out.status.code(), text(&out))
    }

    /// `plan` and `run` refuse with exit 2 naming every `expect`; nothing changes.
    fn refused(&self, expect: &[&str]) {
        let start = snapshot(&self.root);
        for cmd in ["plan", "run"] {
            let (code, msg) = self.code(&[cmd]);
            assert_eq!(code, Some(2), "{cmd}:\n{msg}");
            for e in expect {
                assert!(mentions(&msg, e), "{cmd}: expected {e:?} in:\n{msg}");
            }
        }
        assert_same(&start, &snapshot(&self.root), "after a refusal");
        assert!(
            !self.root.join(JOURNAL).exists(),
            "no journal for a refusal"
        );
    }
}

#[test]
fn database_backups_are_owner_only_in_an_owner_only_folder() {
    let d = Demo::new();
    let (code, msg) = d.code(&["run"]);
    assert_eq!(code, Some(0), "{msg}");
    let dir = d.root.join("DatabaseBackup");
    let backups: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(backups[0].to_string_lossy().ends_with(".sqlite"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&backups[0]), 0o600);
    }
    // A protected DACL: owner, SYSTEM and Administrators only.
    #[cfg(windows)]
    for p in [&dir, &backups[0]] {
        assert!(
            usercube_upgrade::testing::platform::is_private(p).unwrap(),
            "{}: {}",
            p.display(),
            usercube_upgrade::testing::platform::dacl_sddl(p).unwrap()
        );
    }
    let (code, msg) = d.code(&["rollback"]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(!dir.exists(), "the folder the run created is removed again");
}

/// `cmd` run by `sh` under `umask` (the child's own: the test process keeps its umask).
#[cfg(unix)]
fn under_umask(cmd: &Command, umask: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("umask {umask} && exec \"$@\""))
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Issue 23, item 5: with umask 022 and an existing `--journal` folder of mode 0755, every
/// file the journal creates (log, lock, store, saved step data: row before-images and tool
/// output, reserve, backup pointer) is 0600 and every folder 0700; the folder given keeps
/// its mode. What the trash keeps of the installation keeps the installation's modes (the
/// undo puts it back as it was), behind owner-only folders.
#[cfg(unix)]
#[test]
fn journal_files_are_owner_only_whatever_the_umask_and_the_folder() {
    let d = Demo::new();
    let journal = d._tmp.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    set_mode(&journal, 0o755);
    let j = journal.to_str().unwrap();
    let check = |after: &str| {
        assert_eq!(
            mode(&journal),
            0o755,
            "{after}: the folder given was re-moded"
        );
        let mut files = Vec::new();
        for e in walkdir::WalkDir::new(&journal).min_depth(1) {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(&journal).unwrap().to_path_buf();
            let parts: Vec<_> = rel.components().collect();
            // trash/<run>/<step>/<what the step kept of the installation>
            if parts.len() > 3 && parts[0].as_os_str() == "trash" {
                continue;
            }
            let m = mode(e.path());
            if e.file_type().is_dir() {
                assert_eq!(m, 0o700, "{after}: folder {} is {m:o}", rel.display());
            } else {
                assert_eq!(m, 0o600, "{after}: file {} is {m:o}", rel.display());
                files.push(rel.display().to_string());
            }
        }
        files
    };
    let mut run = d.cmd(&["run", "--journal", j]);
    run.args([
        "--stop-command",
        "echo stopping",
        "--start-command",
        "echo started",
    ]);
    let out = under_umask(&run, "022").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let files = check("after run");
    for expected in ["log", "lock", "reserve", "store/db", "store/conf", "data/"] {
        assert!(
            files.iter().any(|f| f.starts_with(expected)),
            "no {expected} in the journal: {files:?}"
        );
    }
    let out = under_umask(&d.cmd(&["rollback", "--journal", j]), "022")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    check("after rollback");
}

#[test]
fn symlinks_under_runtime_conf_temp_and_work_are_refused_by_name() {
    let outside = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let target = outside.path().join("elsewhere.xml");
    std::fs::write(&target, "<ConfigurationFile/>").unwrap();
    for (link, to) in [
        ("Conf/Linked.xml", target.clone()),
        ("Runtime/appsettings.production.json", target.clone()),
        ("Temp/ExportOutput/outside", outside.path().to_path_buf()),
        ("Work/outside", outside.path().to_path_buf()),
    ] {
        let d = Demo::new();
        let at = d.root.join(link);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        usercube_upgrade::testing::platform::symlink(&to, &at).unwrap();
        d.refused(&[&format!("{link}: is a symbolic link (to {})", to.display())]);
    }
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "<ConfigurationFile/>"
    );
}

#[test]
fn json_and_xml_files_over_their_limit_are_refused_by_name() {
    let d = Demo::new();
    // Sparse: the size is what is refused, before anything is read.
    let grow = |rel: &str, size: u64| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.root.join(rel))
            .unwrap();
        f.set_len(size).unwrap();
    };
    grow("Runtime/appsettings.agent.json", (16 << 20) + 1);
    d.refused(&[
        "Runtime/appsettings.agent.json: cannot read: 16777217 bytes, over the 16 MiB limit for JSON files",
    ]);
    let d = Demo::new();
    let xml = walkdir::WalkDir::new(d.root.join("Conf"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .find(|p| p.extension().is_some_and(|x| x == "xml"))
        .unwrap();
    let rel = xml
        .strip_prefix(&d.root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let f = std::fs::OpenOptions::new().write(true).open(&xml).unwrap();
    f.set_len((64 << 20) + 1).unwrap();
    drop(f);
    d.refused(&[&format!(
        "malformed XML: {rel}: 67108865 bytes, over the 64 MiB limit for XML files"
    )]);
}

#[test]
fn xml_with_a_dtd_is_refused_naming_file_line_and_column() {
    let d = Demo::new();
    std::fs::write(
        d.root.join("Conf/Settings.xml"),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!DOCTYPE ConfigurationFile [\n  <!ENTITY a \"aaaaaaaaaa\">\n  <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n]>\n<ConfigurationFile>&b;</ConfigurationFile>\n",
    )
    .unwrap();
    d.refused(&["Conf/Settings.xml:2:1: a DTD"]);
}
