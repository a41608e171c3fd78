//! The re-encryption step through the real binary (issue 5): crash at every journal point of
//! a run (and of a rollback), then `rollback` gives byte-identical originals and `resume`
//! gives files that decrypt to the original plaintext; 20 files in parallel; files that are
//! not legacy-encrypted left untouched; a corrupt legacy file fails the run and rolls back;
//! the password is never journaled and a resume without it is refused. Also `encrypt-file`
//! and `decrypt-file`. Needs `--features failpoints` and the `openssl` command line.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::pfx::{make_pfx, openssl};
use common::{assert_same, bin, for_each_point, snapshot, text, Install};
use usercube_upgrade::testing::crypto::{
    encrypt_legacy, is_new_format, Certificate, CertificateSource, NewFormatReader, PASSWORD_ENV,
};
use usercube_upgrade::testing::journal::Journal;
use usercube_upgrade::testing::manifest::Manifest;
use usercube_upgrade::testing::plan::{Plan, StepSpec};
use usercube_upgrade::testing::pseudo_random::bytes as data;

const PASSWORD: &str = "agent-pass";
const GROUP_ENV: &str = "USERCUBE_UPGRADE_REENCRYPT_GROUP";

struct Keys {
    _dir: tempfile::TempDir,
    pfx: PathBuf,
    pfx_b: PathBuf,
    pfx_small: PathBuf,
    cert: Certificate,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let pfx = make_pfx(dir.path(), "agent", "rsa:2048", PASSWORD);
        let pfx_b = make_pfx(dir.path(), "other", "rsa:2048", "other-pass");
        let pfx_small = make_pfx(dir.path(), "small", "rsa:1024", PASSWORD);
        let cert = Certificate::from_pfx(&pfx, PASSWORD).unwrap();
        // Every binary started by these tests inherits it (never on a command line).
        std::env::set_var(PASSWORD_ENV, PASSWORD);
        Keys {
            _dir: dir,
            pfx,
            pfx_b,
            pfx_small,
            cert,
        }
    })
}

fn write_legacy(path: &Path, plain: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = Vec::new();
    encrypt_legacy(&keys().cert, plain, &mut out).unwrap();
    std::fs::write(path, out).unwrap();
}

/// An installation with legacy files (relative path -> plaintext) and other files.
struct Setup {
    install: Install,
    plain: BTreeMap<String, Vec<u8>>,
}

fn plan(certificate: CertificateSource) -> Plan {
    Plan::new(
        "re-encryption",
        vec![
            (
                None,
                None,
                StepSpec::WriteFile {
                    path: "Conf/marker.txt".into(),
                    content: b"before the re-encryption".to_vec().into(),
                },
            ),
            (
                Some("5"),
                None,
                StepSpec::ReencryptFiles {
                    folders: vec!["Temp".into(), "Work".into()],
                    files: vec!["Conf/tracked-accounts-*.csv".into()],
                    certificate,
                },
            ),
            (
                None,
                None,
                StepSpec::Rename {
                    from: "Conf/marker.txt".into(),
                    to: "Conf/marker-after.txt".into(),
                },
            ),
        ],
    )
}

fn pfx_source() -> CertificateSource {
    CertificateSource::Pfx {
        path: keys().pfx.clone(),
        thumbprint: Some(keys().cert.thumbprint()),
    }
}

fn setup_with(legacy: &[(&str, usize)], certificate: CertificateSource) -> Setup {
    let k = keys();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = tmp.path().join("root");
    for d in ["Temp", "Work", "Conf"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut plain = BTreeMap::new();
    for (i, (rel, len)) in legacy.iter().enumerate() {
        let p = data(*len, i as u64 + 1);
        write_legacy(&root.join(rel), &p);
        plain.insert(rel.to_string(), p);
    }
    // Not legacy: plain text, and a legacy file whose magic was altered (left untouched).
    std::fs::write(root.join("Work/readme.txt"), "plain text").unwrap();
    let mut tampered = Vec::new();
    encrypt_legacy(&k.cert, &b"tampered"[..], &mut tampered).unwrap();
    tampered[0] ^= 0xFF;
    std::fs::write(root.join("Temp/tampered.bin"), tampered).unwrap();
    // Legacy but outside the patterns: untouched.
    write_legacy(&root.join("Conf/other.csv"), b"not selected");
    let plan_file = tmp.path().join("plan.json");
    std::fs::write(
        &plan_file,
        serde_json::to_string_pretty(&plan(certificate)).unwrap(),
    )
    .unwrap();
    Setup {
        install: Install {
            _tmp: tmp,
            root,
            plan_file,
        },
        plain,
    }
}

const FILES: &[(&str, usize)] = &[
    ("Temp/a.bin", 0),
    ("Temp/deep/b.bin", 1),
    ("Work/c.bin", 65_536),
    ("Work/x/d.bin", 70_001),
    ("Work/x/e.bin", 300_000),
    ("Conf/tracked-accounts-1.csv", 1_234),
];

fn setup() -> Setup {
    setup_with(FILES, pfx_source())
}

fn with_group(mut c: Command, group: &str) -> Command {
    c.env(GROUP_ENV, group);
    c
}

/// [`common::crash_at`] with the re-encryption group size `group`.
fn crash_grouped(s: &Setup, args: &[&str], group: &str, n: u64) -> bool {
    common::crash_at(with_group(s.install.cmd(args), group), n)
}

fn ok(s: &Setup, args: &[&str], group: &str) {
    let out = with_group(s.install.cmd(args), group).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}:\n{}", text(&out));
}

/// After a completed run: every legacy file decrypts to its plaintext in the new format,
/// everything else is as in `start` (the marker renamed), no staging file is left.
fn check_converted(s: &Setup, start: &Manifest) {
    let root = &s.install.root;
    let k = keys();
    for (rel, plain) in &s.plain {
        let bytes = std::fs::read(root.join(rel)).unwrap();
        assert!(is_new_format(&bytes), "{rel} is in the new format");
        let mut r = NewFormatReader::new(&k.cert, &bytes[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(out == *plain, "{rel} decrypts to its original plaintext");
    }
    let now = snapshot(root);
    let strip = |m: &Manifest| -> Vec<_> {
        m.entries
            .iter()
            .filter(|e| !s.plain.contains_key(&e.rel) && !e.rel.starts_with("Conf/marker"))
            .cloned()
            .collect()
    };
    assert_eq!(strip(start), strip(&now), "other files are untouched");
    assert!(
        !now.entries.iter().any(|e| e.rel.contains(".ucu-staging")),
        "no staging file left"
    );
    assert!(root.join("Conf/marker-after.txt").exists());
}

fn reference_points(group: &str) -> u64 {
    let s = setup();
    ok(&s, &["run", "--batch", "1"], group);
    Journal::open(&s.install.journal_dir()).unwrap().last_seq()
}

/// Crashes at every point; returns how many left some legacy files converted and others not.
fn crash_run_then_recover(group: &str) -> usize {
    let points = reference_points(group);
    let mixed = std::sync::atomic::AtomicUsize::new(0);
    for_each_point(points, |n| {
        let s = setup();
        let start = s.install.snapshot();
        assert!(
            crash_grouped(&s, &["run", "--batch", "1"], group, n),
            "point {n}"
        );
        ok(&s, &["rollback"], group);
        assert_same(
            &start,
            &s.install.snapshot(),
            &format!("group {group}: crash at {n}, then rollback"),
        );

        let s = setup();
        let start = s.install.snapshot();
        assert!(crash_grouped(&s, &["run", "--batch", "1"], group, n));
        // Files already converted: resume must keep them byte for byte (a redone file would
        // differ: every new file has a fresh random data key and nonce prefix).
        let converted: Vec<(String, Vec<u8>)> = s
            .plain
            .keys()
            .map(|rel| {
                (
                    rel.clone(),
                    std::fs::read(s.install.root.join(rel)).unwrap(),
                )
            })
            .filter(|(_, bytes)| is_new_format(bytes))
            .collect();
        if !converted.is_empty() && converted.len() < s.plain.len() {
            mixed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if n < points {
            ok(&s, &["resume"], group);
        }
        check_converted(&s, &start);
        for (rel, bytes) in &converted {
            assert!(
                std::fs::read(s.install.root.join(rel)).unwrap() == *bytes,
                "group {group}, crash at {n}: resume kept the already re-encrypted {rel}"
            );
        }
    });
    mixed.into_inner()
}

#[test]
fn crash_at_every_point_file_by_file() {
    // One journal flush per file: crash points between any two files (mixed states).
    let mixed = crash_run_then_recover("1");
    assert!(
        mixed >= FILES.len() - 1,
        "{mixed} crash points left a mixed state"
    );
}

#[test]
fn crash_at_every_point_grouped() {
    crash_run_then_recover("16");
}

#[test]
fn crash_at_every_point_of_a_rollback_then_roll_back_again() {
    let points = reference_points("1");
    // A completed run, and runs interrupted among the files.
    for_each_point(points, |n| {
        if n < points - 4 {
            return;
        }
        for m in 1.. {
            let s = setup();
            let start = s.install.snapshot();
            crash_grouped(&s, &["run", "--batch", "1"], "1", n);
            let crashed = crash_grouped(&s, &["rollback"], "1", m);
            ok(&s, &["rollback"], "1");
            assert_same(
                &start,
                &s.install.snapshot(),
                &format!("run crash {n}, rollback crash {m}"),
            );
            if !crashed {
                break;
            }
        }
    });
}

#[test]
fn twenty_files_in_parallel_then_rollback() {
    let names: Vec<String> = (0..20).map(|i| format!("Work/many/f{i:02}.bin")).collect();
    // The last two are large enough to be fsynced one by one; the others share one syncfs.
    let files: Vec<(&str, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| match i {
            18 => (n.as_str(), 4 << 20),
            19 => (n.as_str(), (5 << 20) + 12_345),
            _ => (n.as_str(), 1000 + i * 37_001),
        })
        .collect();
    let s = setup_with(&files, pfx_source());
    let start = s.install.snapshot();
    ok(&s, &["run"], "16");
    check_converted(&s, &start);
    // The audit shows one intent with 20 touches and the old and new hashes; no password.
    let out = s.install.ok(&["journal", "export", "--json"]);
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(!audit.contains(PASSWORD), "the password is never journaled");
    let dump = std::fs::read_dir(s.install.journal_dir().join("store"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .any(|b| b.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()))
        })
        .unwrap_or(false);
    assert!(!dump, "the password is not in the journal store");
    ok(&s, &["rollback"], "16");
    assert_same(&start, &s.install.snapshot(), "rollback after 20 files");
}

#[test]
fn corrupt_legacy_file_fails_the_run_and_rolls_back() {
    let s = setup();
    // Legacy magic and a valid wrapped key, but a broken last block: fails during apply.
    let p = s.install.root.join("Work/x/e.bin");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 17] ^= 0x01;
    std::fs::write(&p, b).unwrap();
    let start = s.install.snapshot();
    let (code, msg) = s.install.code(&["run"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("e.bin"), "{msg}");
    assert!(msg.contains("rolled back"), "{msg}");
    assert_same(&start, &s.install.snapshot(), "failed run rolled back");
}

#[test]
fn wrong_password_or_certificate_is_refused_before_anything_changes() {
    let s = setup();
    let start = s.install.snapshot();
    let out = s
        .install
        .cmd(&["run"])
        .env(PASSWORD_ENV, "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("wrong PFX password"), "{}", text(&out));
    let out = s
        .install
        .cmd(&["run"])
        .env_remove(PASSWORD_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(PASSWORD_ENV), "{}", text(&out));
    assert_same(&start, &s.install.snapshot(), "refused runs change nothing");

    // Files encrypted for another certificate: refused at the step's intent, rolled back.
    let other = setup_with(
        FILES,
        CertificateSource::Pfx {
            path: keys().pfx_b.clone(),
            thumbprint: None,
        },
    );
    let start = other.install.snapshot();
    let out = other
        .install
        .cmd(&["run"])
        .env(PASSWORD_ENV, "other-pass")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot decrypt"), "{}", text(&out));
    assert_same(&start, &other.install.snapshot(), "rolled back");
}

#[test]
fn resume_needs_the_password_rollback_does_not() {
    let points = reference_points("1");
    let s = setup();
    let start = s.install.snapshot();
    // Interrupted among the files.
    assert!(crash_grouped(&s, &["run", "--batch", "1"], "1", points - 4));
    let before = s.install.snapshot();
    let out = s
        .install
        .cmd(&["resume"])
        .env_remove(PASSWORD_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(PASSWORD_ENV), "{}", text(&out));
    assert_same(
        &before,
        &s.install.snapshot(),
        "refused resume changes nothing",
    );
    let out = s
        .install
        .cmd(&["rollback"])
        .env_remove(PASSWORD_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_same(&start, &s.install.snapshot(), "rollback without the key");
}

#[test]
fn store_lookup_by_thumbprint() {
    let store = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let k = keys();
    // .NET keeps store certificates as <THUMBPRINT>.pfx with an empty password.
    let tp = k.cert.thumbprint();
    let pem = store.path().join("a.pem");
    openssl(&[
        "pkcs12",
        "-in",
        k.pfx.to_str().unwrap(),
        "-passin",
        &format!("pass:{PASSWORD}"),
        "-nodes",
        "-out",
        pem.to_str().unwrap(),
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        pem.to_str().unwrap(),
        "-out",
        store.path().join(format!("{tp}.pfx")).to_str().unwrap(),
        "-passout",
        "pass:",
    ]);
    let s = setup_with(
        FILES,
        CertificateSource::Store {
            thumbprint: tp.to_lowercase(),
            location: "CurrentUser".into(),
            name: "My".into(),
            path: Some(store.path().to_path_buf()),
        },
    );
    let start = s.install.snapshot();
    let out = s
        .install
        .cmd(&["run"])
        .env_remove(PASSWORD_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    check_converted(&s, &start);
}

fn cli(args: &[&str]) -> (Option<i32>, String) {
    let out = bin().args(args).env_remove(PASSWORD_ENV).output().unwrap();
    (out.status.code(), text(&out))
}

#[test]
fn encrypt_file_and_decrypt_file() {
    let k = keys();
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let a = d.path().join("a.csv");
    let b = d.path().join("b.bin");
    let legacy = d.path().join("legacy.bin");
    std::fs::write(&a, "id;name\n1;x\n").unwrap();
    std::fs::write(&b, data(200_000, 3)).unwrap();
    write_legacy(&legacy, b"from 5.1");
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let pfx = k.pfx.to_str().unwrap();
    let (s, o) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (code, msg) = cli(&[
        "encrypt-file",
        "--files",
        s,
        o,
        "--output-path",
        out_dir.to_str().unwrap(),
        "--file-cert-file",
        pfx,
        "--file-cert-password",
        PASSWORD,
    ]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(is_new_format(
        &std::fs::read(out_dir.join("a.csv")).unwrap()
    ));
    // In place, back to plaintext; the legacy format is read too.
    let enc_a = out_dir.join("a.csv");
    let enc_b = out_dir.join("b.bin");
    let (code, msg) = cli(&[
        "decrypt-file",
        "--files",
        enc_a.to_str().unwrap(),
        enc_b.to_str().unwrap(),
        legacy.to_str().unwrap(),
        "--file-cert-file",
        pfx,
        "--file-cert-password",
        PASSWORD,
    ]);
    assert_eq!(code, Some(0), "{msg}");
    assert_eq!(std::fs::read(&enc_a).unwrap(), std::fs::read(&a).unwrap());
    assert_eq!(std::fs::read(&enc_b).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(std::fs::read(&legacy).unwrap(), b"from 5.1");

    // Errors: exit 2, nothing changed.
    let before = snapshot(d.path());
    let missing_tp = "AB".repeat(20);
    let bad: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--file-cert-file", pfx, "--file-cert-password", "nope"],
            "wrong PFX password",
        ),
        (
            vec![
                "--file-cert-file",
                k.pfx_small.to_str().unwrap(),
                "--file-cert-password",
                PASSWORD,
            ],
            "too small",
        ),
        (
            vec![
                "--file-cert-thumbprint",
                &missing_tp,
                "--file-cert-store-location",
                "CurrentUser",
                "--file-cert-store-name",
                "My",
                "--file-cert-store-path",
                d.path().to_str().unwrap(),
            ],
            "not found",
        ),
    ];
    for (cert_args, expect) in bad {
        for cmd in ["encrypt-file", "decrypt-file"] {
            let mut args = vec![cmd, "--files", s, o];
            args.extend(&cert_args);
            let (code, msg) = cli(&args);
            assert_eq!(code, Some(2), "{args:?}: {msg}");
            assert!(msg.contains(expect), "{args:?}: {msg}");
        }
    }
    assert_same(
        &before,
        &snapshot(d.path()),
        "refused commands change nothing",
    );
    // Decrypting a plain file among encrypted ones: refused, none replaced.
    let (code, msg) = cli(&[
        "encrypt-file",
        "--files",
        s,
        "--file-cert-file",
        pfx,
        "--file-cert-password",
        PASSWORD,
    ]);
    assert_eq!(code, Some(0), "{msg}");
    let before = snapshot(d.path());
    let (code, msg) = cli(&[
        "decrypt-file",
        "--files",
        s,
        o,
        "--file-cert-file",
        pfx,
        "--file-cert-password",
        PASSWORD,
    ]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("not an encrypted file"), "{msg}");
    assert_same(
        &before,
        &snapshot(d.path()),
        "refused decrypt changes nothing",
    );
}

#[test]
fn the_journal_folder_is_never_a_candidate() {
    let s = setup();
    // A plan over the whole root: kept originals in the journal's trash must stay legacy.
    let plan = Plan::new(
        "whole root",
        vec![(
            None,
            None,
            StepSpec::ReencryptFiles {
                folders: vec![".".into()],
                files: vec![],
                certificate: pfx_source(),
            },
        )],
    );
    std::fs::write(
        &s.install.plan_file,
        serde_json::to_string_pretty(&plan).unwrap(),
    )
    .unwrap();
    let kept = s.install.journal_dir().join("trash/old/1/0");
    write_legacy(&kept, b"a kept original");
    let before = std::fs::read(&kept).unwrap();
    s.install.ok(&["run"]);
    assert_eq!(std::fs::read(&kept).unwrap(), before);
    assert!(is_new_format(
        &std::fs::read(s.install.root.join("Conf/other.csv")).unwrap()
    ));
    s.install.ok(&["rollback"]);
    assert_eq!(std::fs::read(&kept).unwrap(), before);
}
