//! Certificates and their password through the real binary, on the demo installation: the
//! password from the environment, a password file or standard input (never needed on the
//! command line, and warned about there); store options mapped by one rule; an
//! `EncryptionCertificate` named by DistinguishedName refused at preflight rather than
//! leaving the files unconverted; and commands the run starts never seeing the tool's
//! secret variables.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{assert_same, bin, snapshot, text, JOURNAL};
use usercube_upgrade::testing::crypto::{is_legacy, PASSWORD_ENV};
use usercube_upgrade::testing::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 20,
    bytes: 20 << 10,
    rows: 10,
};

const WARNING: &str = "warning: --file-cert-password";

struct Demo {
    tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Demo {
    fn new() -> Demo {
        let (tmp, root) = common::demo_install(SIZE);
        Demo { tmp, root }
    }

    /// A file beside the installation (outside the root).
    fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The demo PFX copied outside the root, for `--file-cert-file`.
    fn pfx(&self) -> String {
        let pfx = self.outside("agent.pfx");
        if !pfx.exists() {
            std::fs::copy(self.root.join(demo::DEMO_CERT), &pfx).unwrap();
        }
        pfx.display().to_string()
    }

    /// `verb` (words separated by spaces) with `--root`, and for `plan`/`run` the integrated
    /// mode (not quiet: warnings are part of the checks), with
    /// no password in the environment unless the test sets one.
    fn cmd(&self, verb: &str, extra: &[&str]) -> Command {
        let mut c = bin();
        c.args(verb.split(' '));
        // encrypt-file and decrypt-file work on files, not on an installation.
        if !verb.ends_with("-file") {
            c.arg("--root").arg(&self.root);
        }
        if matches!(verb, "run" | "plan") {
            c.args(["--mode", "integrated", "--runtime-zip"])
                .arg(self.root.join(RUNTIME_ZIP));
            // The demo's zip holds no vendor schema tool: skipped unless the test gives one.
            if !extra.contains(&"--database-upgrade-command") {
                c.arg("--skip-database-upgrade");
            }
        }
        c.args(extra)
            .env_remove("USERCUBE_UPGRADE_CRASH_AT")
            .env_remove(PASSWORD_ENV)
            .stdin(Stdio::null());
        c
    }

    /// Legacy-encrypted files under Temp and Work.
    fn legacy_files(&self) -> usize {
        fn walk(dir: &Path, n: &mut usize) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, n);
                } else if std::fs::read(&p).is_ok_and(|b| is_legacy(&b)) {
                    *n += 1;
                }
            }
        }
        let mut n = 0;
        walk(&self.root.join("Temp"), &mut n);
        walk(&self.root.join("Work"), &mut n);
        n
    }
}

fn code(c: &mut Command) -> (Option<i32>, String) {
    let out = c.output().unwrap();
    (out.status.code(), text(&out))
}

fn stderr_of(c: &mut Command) -> (Option<i32>, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 12, point 6: `--file-cert-file` with the password in USERCUBE_UPGRADE_CERT_PASSWORD
/// is accepted by `plan` and `run`, which re-encrypts with it; no warning is printed.
#[test]
fn plan_and_run_take_the_password_from_the_environment() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let legacy = d.legacy_files();
    assert!(legacy > 0, "the demo has legacy-encrypted files");
    let pfx = d.pfx();
    let extra = ["--file-cert-file", pfx.as_str()];

    let (c, out, err) = stderr_of(
        d.cmd("plan", &extra)
            .env(PASSWORD_ENV, demo::DEMO_CERT_PASSWORD),
    );
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(out.contains("re-encrypt legacy-encrypted files"), "{out}");
    assert!(
        out.contains("agent.pfx"),
        "the plan names the PFX given: {out}"
    );
    assert!(!err.contains(WARNING), "{err}");

    let (c, out, err) = stderr_of(
        d.cmd("run", &extra)
            .env(PASSWORD_ENV, demo::DEMO_CERT_PASSWORD),
    );
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(!err.contains(WARNING), "{err}");
    assert_eq!(d.legacy_files(), 0, "every legacy file re-encrypted");

    let (c, msg) = code(&mut d.cmd("rollback", &[]));
    assert_eq!(c, Some(0), "{msg}");
    assert_same(&start, &snapshot(&d.root), "rolled back");
    assert_eq!(d.legacy_files(), legacy);
}

/// Without any password, the refusal names the flag, the password file and the variable,
/// and nothing changes.
#[test]
fn a_missing_password_is_asked_for_by_flag_file_and_variable() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let pfx = d.pfx();
    for verb in ["plan", "run"] {
        let (c, msg) = code(&mut d.cmd(verb, &["--file-cert-file", &pfx]));
        assert_eq!(c, Some(2), "{verb}: {msg}");
        for want in [
            "--file-cert-password P",
            "--file-cert-password-file",
            PASSWORD_ENV,
            "nothing was changed",
        ] {
            assert!(msg.contains(want), "{verb}: {want:?} missing in {msg}");
        }
    }
    assert_same(&start, &snapshot(&d.root), "refused");
    assert!(!d.root.join(JOURNAL).exists(), "no journal for a refusal");
}

/// `--file-cert-password-file FILE` and `--file-cert-password-file -` (standard input):
/// the first line is the password; a wrong, empty or missing file is refused by name
/// (exit 2) and changes nothing.
#[test]
fn the_password_from_a_file_or_standard_input() {
    let d = Demo::new();
    let start = snapshot(&d.root);
    let pfx = d.pfx();
    let file = d.outside("pfx-password.txt");
    std::fs::write(&file, format!("{}\r\n", demo::DEMO_CERT_PASSWORD)).unwrap();
    let file_arg = file.display().to_string();

    let (c, out, err) = stderr_of(&mut d.cmd(
        "plan",
        &[
            "--file-cert-file",
            &pfx,
            "--file-cert-password-file",
            &file_arg,
        ],
    ));
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(!err.contains(WARNING), "{err}");

    // A wrong password in the file: the PFX refuses it, named.
    let wrong = d.outside("wrong.txt");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let (c, msg) = code(
        d.cmd(
            "run",
            &["--file-cert-file", &pfx, "--file-cert-password-file"],
        )
        .arg(&wrong),
    );
    assert_eq!(c, Some(2), "{msg}");
    assert!(
        msg.contains("agent.pfx") && msg.contains("wrong PFX password"),
        "{msg}"
    );

    // An empty first line, and a file that does not exist: refused, naming the file.
    let empty = d.outside("empty.txt");
    std::fs::write(&empty, "\nsecond line\n").unwrap();
    let missing = d.outside("missing.txt");
    for (f, why) in [(&empty, "empty"), (&missing, "missing.txt")] {
        let (c, msg) = code(
            d.cmd(
                "run",
                &["--file-cert-file", &pfx, "--file-cert-password-file"],
            )
            .arg(f),
        );
        assert_eq!(c, Some(2), "{msg}");
        assert!(
            msg.contains(&f.display().to_string()) && msg.contains(why),
            "{msg}"
        );
    }
    assert_same(&start, &snapshot(&d.root), "refused runs change nothing");
    assert!(!d.root.join(JOURNAL).exists(), "no journal for a refusal");

    // `-`: from standard input; the run re-encrypts with it.
    let mut child = d
        .cmd(
            "run",
            &["--file-cert-file", &pfx, "--file-cert-password-file", "-"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{}", demo::DEMO_CERT_PASSWORD).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        d.legacy_files(),
        0,
        "re-encrypted with the password read from stdin"
    );
}

/// A password given on the command line works, with a warning on stderr naming the safer
/// ways; `--quiet` keeps it out. The flag and the file together are refused by clap.
#[test]
fn a_password_on_the_command_line_is_warned_about() {
    let d = Demo::new();
    let pfx = d.pfx();
    let args = [
        "--file-cert-file",
        pfx.as_str(),
        "--file-cert-password",
        demo::DEMO_CERT_PASSWORD,
    ];
    let (c, out, err) = stderr_of(&mut d.cmd("plan", &args));
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(err.contains(WARNING), "{err}");
    assert!(
        err.contains("--file-cert-password-file") && err.contains(PASSWORD_ENV),
        "{err}"
    );
    assert!(!out.contains(WARNING), "the warning goes to stderr only");

    let (c, out, err) = stderr_of(d.cmd("plan", &args).arg("--quiet"));
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(!err.contains(WARNING), "{err}");

    let (c, msg) = code(&mut d.cmd(
        "plan",
        &[
            "--file-cert-password",
            "x",
            "--file-cert-password-file",
            "-",
        ],
    ));
    assert_eq!(c, Some(2), "{msg}");
    assert!(msg.contains("cannot be used with"), "{msg}");
}

/// `EncryptionCertificate` named by DistinguishedName (which this tool cannot look up)
/// while legacy-encrypted files exist: refused at preflight, naming the setting and the
/// options that resolve it, rather than planning "nothing to re-encrypt". Given the
/// certificate with --file-cert-file, the plan re-encrypts.
#[test]
fn a_certificate_named_by_distinguished_name_is_refused_not_skipped() {
    let d = Demo::new();
    let settings = d.root.join("Runtime/appsettings.json");
    let text_before = std::fs::read_to_string(&settings).unwrap();
    let by_dn = text_before.replace(
        "\"File\": \"../Certs/demo-agent.pfx\"",
        "\"DistinguishedName\": \"CN=Usercube demo agent\", \"StoreLocation\": \"LocalMachine\", \"StoreName\": \"My\"",
    );
    assert_ne!(by_dn, text_before, "the demo names its certificate by File");
    std::fs::write(&settings, by_dn).unwrap();
    let start = snapshot(&d.root);
    for verb in ["plan", "run"] {
        let (c, msg) = code(&mut d.cmd(verb, &[]));
        assert_eq!(c, Some(2), "{verb}: {msg}");
        for want in [
            "DistinguishedName \"CN=Usercube demo agent\"",
            "--file-cert-thumbprint",
            "--file-cert-file",
            "nothing was changed",
        ] {
            assert!(msg.contains(want), "{verb}: {want:?} missing in {msg}");
        }
        assert!(!msg.contains("nothing to re-encrypt"), "{msg}");
    }
    assert_same(&start, &snapshot(&d.root), "refused");

    let pfx = d.pfx();
    let (c, msg) = code(
        d.cmd("plan", &["--file-cert-file", &pfx])
            .env(PASSWORD_ENV, demo::DEMO_CERT_PASSWORD),
    );
    assert_eq!(c, Some(0), "{msg}");
    assert!(msg.contains("re-encrypt legacy-encrypted files"), "{msg}");
}

/// The certificate options follow one rule in every command: store options without a
/// thumbprint, or with a PFX file, are refused by name (exit 2) in `plan` and in
/// `encrypt-file`.
#[test]
fn certificate_options_follow_one_rule_everywhere() {
    let d = Demo::new();
    let pfx = d.pfx();
    let plain = d.outside("plain.txt");
    std::fs::write(&plain, "clear text").unwrap();
    let plain_arg = plain.display().to_string();
    let cases: [(&[&str], &str); 2] = [
        (
            &["--file-cert-store-name", "My"],
            "--file-cert-store-name needs --file-cert-thumbprint",
        ),
        (
            &["--file-cert-file", &pfx, "--file-cert-store-path", "/x"],
            "--file-cert-store-path a certificate store: give one of them",
        ),
    ];
    for (options, want) in cases {
        let (c, msg) = code(&mut d.cmd("plan", options));
        assert_eq!(c, Some(2), "plan {options:?}: {msg}");
        assert!(msg.contains(want), "plan {options:?}: {msg}");
        let (c, msg) = code(d.cmd("encrypt-file", options).args(["--files", &plain_arg]));
        assert_eq!(c, Some(2), "encrypt-file {options:?}: {msg}");
        assert!(msg.contains(want), "encrypt-file {options:?}: {msg}");
    }
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "clear text");
}

/// The service commands and the vendor's database tool run without the tool's own
/// variables (USERCUBE_UPGRADE_CERT_PASSWORD, any USERCUBE_UPGRADE_*), while the rest of
/// the environment reaches them; the journaled output of the commands holds no secret.
#[test]
fn commands_started_by_the_run_never_see_the_tool_secrets() {
    let d = Demo::new();
    let db_env = d.outside("database-tool-env.txt");
    let unix = usercube_upgrade::testing::platform::SHELL == "sh -c";
    let (dump, db_tool) = if unix {
        ("env", format!("sh -c 'env > \"{}\"'", db_env.display()))
    } else {
        ("set", format!("cmd.exe /C \"set > {}\"", db_env.display()))
    };
    let other_secret = "other-secret-7f3a9c";
    let (c, msg) = code(
        d.cmd(
            "run",
            &[
                "--stop-command",
                dump,
                "--start-command",
                dump,
                "--database-upgrade-command",
                &db_tool,
            ],
        )
        .env(PASSWORD_ENV, demo::DEMO_CERT_PASSWORD)
        .env("USERCUBE_UPGRADE_OTHER_SECRET", other_secret)
        .env("CERTS_TEST_VISIBLE", "reaches-the-commands"),
    );
    assert_eq!(c, Some(0), "{msg}");
    assert_eq!(d.legacy_files(), 0, "the run used the password itself");

    let tool_env = std::fs::read_to_string(&db_env).unwrap();
    let (c, export) = code(&mut d.cmd("journal export", &["--json"]));
    assert_eq!(c, Some(0), "{export}");
    let audit: serde_json::Value = serde_json::from_str(&export).unwrap();
    let outputs: Vec<String> = audit["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["steps"].as_array().unwrap().iter())
        .flat_map(|s| s["commands"].as_array().into_iter().flatten())
        .map(|c| c["output"].as_str().unwrap_or_default().to_string())
        .collect();
    // The stop command, the database tool (its runs are in the audit too, issue 23), the
    // start command; the tool writes its environment to a file, not to its output.
    assert_eq!(outputs.len(), 3, "stop, database tool, start: {export}");
    assert_eq!(outputs[1], "", "the database tool printed nothing");
    for (what, seen) in [&outputs[0], &outputs[2]]
        .into_iter()
        .map(|o| ("a service command", o))
        .chain([("the database tool", &tool_env)])
    {
        assert!(
            seen.contains("CERTS_TEST_VISIBLE=reaches-the-commands"),
            "{what} got the ordinary environment: {seen}"
        );
        for secret in [
            PASSWORD_ENV,
            "USERCUBE_UPGRADE_OTHER_SECRET",
            demo::DEMO_CERT_PASSWORD,
            other_secret,
        ] {
            assert!(!seen.contains(secret), "{what} saw {secret}: {seen}");
        }
    }
    for secret in [demo::DEMO_CERT_PASSWORD, other_secret] {
        assert!(!export.contains(secret), "the export holds {secret}");
    }
}
