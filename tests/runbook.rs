//! The 5.1.7 -> 5.2.3 runbook end to end on the realistic demo installation: preflight
//! refusals (exit 2, tree unchanged, no journal), `run` per mode with the expected layout,
//! and `rollback` back to a byte-identical tree.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{assert_same, bin, snapshot, text, JOURNAL};
use usercube_upgrade::testing::runbook::demo::{self, DemoSize, RUNTIME_ZIP};

const SIZE: DemoSize = DemoSize {
    files: 40,
    bytes: 40 << 10,
    rows: 10,
};

struct Demo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    mode: &'static str,
    extra: Vec<String>,
    /// `--skip-database-upgrade` on `plan` and `run` (the demo's zip holds no vendor
    /// schema tool); the database tool's own scenario turns it off.
    skip_database_upgrade: bool,
}

impl Demo {
    fn new(mode: &'static str) -> Demo {
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let root = tmp.path().join("root");
        demo::create(&root, SIZE).unwrap();
        let root = root.canonicalize().unwrap();
        Demo {
            _tmp: tmp,
            root,
            mode,
            extra: Vec::new(),
            skip_database_upgrade: true,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = bin();
        c.args(args).arg("--root").arg(&self.root).arg("--quiet");
        if matches!(args.first(), Some(&"run") | Some(&"plan")) {
            c.args(["--mode", self.mode, "--runtime-zip"])
                .arg(self.root.join(RUNTIME_ZIP))
                .args(&self.extra);
            if self.skip_database_upgrade
                && !self.extra.iter().any(|a| a == "--database-upgrade-command")
            {
                c.arg("--skip-database-upgrade");
            }
        }
        c.env_remove("USERCUBE_UPGRADE_CRASH_AT");
        // The demo certificate's PFX password (the plan references the file only).
        c.env(
            usercube_upgrade::testing::crypto::PASSWORD_ENV,
            demo::DEMO_CERT_PASSWORD,
        );
        c
    }

    fn code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.cmd(args).output().unwrap();
        (out.status.code(), text(&out))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, msg) = self.code(args);
        assert_eq!(code, Some(0), "{args:?} failed:\n{msg}");
        msg
    }

    /// `plan` and `run` both refuse with exit 2 naming every `expect`; nothing changes.
    fn refused(&self, expect: &[&str]) -> String {
        let start = snapshot(&self.root);
        let (code, msg) = self.code(&["plan"]);
        assert_eq!(code, Some(2), "{msg}");
        // Paths as written here, with '/', whatever the platform's separator.
        let shown = msg.replace('\\', "/");
        for e in expect {
            assert!(shown.contains(e), "expected {e:?} in:\n{msg}");
        }
        let (code, msg2) = self.code(&["run"]);
        assert_eq!(code, Some(2), "{msg2}");
        assert!(msg2.contains("nothing was changed"), "{msg2}");
        // The journal `run` creates before its checks holds no run to point at.
        assert!(!msg2.contains("earlier run"), "{msg2}");
        assert_same(&start, &snapshot(&self.root), "after a refused run");
        assert!(
            !self.root.join(JOURNAL).exists(),
            "no journal for a refusal"
        );
        msg
    }
}

fn rewrite_zip_version(d: &Demo, version: &str) {
    use std::io::Write;
    let zip = d.path(RUNTIME_ZIP);
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
    z.start_file(
        "Usercube-Server.deps.json",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    write!(
        z,
        "{{\"libraries\": {{\"Usercube-Server/{version}\": {{\"type\": \"project\"}}}}}}"
    )
    .unwrap();
    z.finish().unwrap();
}

#[test]
fn refuses_a_starting_version_other_than_5_1_7() {
    let d = Demo::new("integrated");
    let deps = d.read("Runtime/Usercube-Server.deps.json");
    d.write(
        "Runtime/Usercube-Server.deps.json",
        &deps.replace(demo::OLD_VERSION, "5.1.6.900"),
    );
    d.refused(&[
        "Usercube-Server.deps.json",
        "installed version is 5.1.6.900",
    ]);
}

#[test]
fn refuses_a_runtime_zip_other_than_5_2_3() {
    let d = Demo::new("integrated");
    rewrite_zip_version(&d, "5.2.2.100");
    d.refused(&[RUNTIME_ZIP, "holds version 5.2.2.100, not 5.2.3.x"]);
}

#[test]
fn refuses_cyberark_unless_manual_steps_are_accepted() {
    let mut d = Demo::new("integrated");
    d.write(
        "Runtime/appsettings.cyberArk.agent.json",
        "{ \"CyberArk\": { \"UseCyberArkSetting\": true } }\n",
    );
    d.refused(&[
        "Runtime/appsettings.cyberArk.agent.json",
        "at CyberArk",
        "CyberArk integration cannot be migrated automatically",
        "--accept-manual-steps",
    ]);
    d.extra.push("--accept-manual-steps".into());
    let msg = d.ok(&["plan"]);
    assert!(msg.contains("accepted with --accept-manual-steps"), "{msg}");
    let start = snapshot(&d.root);
    d.ok(&["run"]);
    assert!(d.path("Runtime/appsettings.cyberArk.agent.json").is_file());
    assert_eq!(
        d.read("Runtime/appsettings.cyberArk.agent.json"),
        d.read("RuntimeOld/appsettings.cyberArk.agent.json"),
        "left untouched"
    );
    let export = d.ok(&["journal", "export", "--json"]);
    assert!(
        export.contains("accepted manual item"),
        "journaled: {export}"
    );
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "after rollback");
}

#[test]
fn refuses_identifiers_that_clash_across_agents() {
    let mut d = Demo::new("integrated");
    let other = d._tmp.path().join("remote-agent.json");
    std::fs::write(
        &other,
        "{\n  \"InformationSystems\": {\n    \"ADParis\": { \"Path\": \"C:/x.csv\" }\n  }\n}\n",
    )
    .unwrap();
    d.extra = vec!["--agent-appsettings".into(), other.display().to_string()];
    d.refused(&[
        "duplicate connection identifiers",
        "\"ADParis\"",
        "\"AD_Paris\"",
        "remote-agent.json",
    ]);
}

#[test]
fn refuses_malformed_json_naming_line_and_column() {
    let d = Demo::new("integrated");
    let t = d.read("Runtime/appsettings.agent.json");
    // Line 8 is `"AuthType": "Basic",`: drop its colon.
    let bad = t.replacen("\"AuthType\": \"Basic\"", "\"AuthType\" \"Basic\"", 1);
    assert_ne!(t, bad);
    d.write("Runtime/appsettings.agent.json", &bad);
    let line = bad
        .lines()
        .position(|l| l.contains("\"AuthType\""))
        .unwrap()
        + 1;
    d.refused(&[&format!(
        "malformed JSON: Runtime/appsettings.agent.json:{line}:"
    )]);
}

#[test]
fn accepts_comments_and_trailing_commas_in_appsettings() {
    let d = Demo::new("integrated");
    assert!(d.read("Runtime/appsettings.json").contains("//"));
    assert!(d.read("Runtime/appsettings.json").contains("},\n}"));
    d.ok(&["plan"]);
}

#[test]
fn refuses_malformed_xml_naming_line_and_column() {
    let d = Demo::new("integrated");
    d.write(
        "Conf/Settings.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ConfigurationFile>\n  <Setting Identifier=\"a\">\n</ConfigurationFile>\n",
    );
    d.refused(&["malformed XML: Conf/Settings.xml:4:"]);
}

#[test]
fn refuses_encrypted_files_without_a_certificate() {
    let d = Demo::new("integrated");
    let t = d.read("Runtime/appsettings.json");
    let start = t.find("\"EncryptionCertificate\"").unwrap();
    let end = t[start..].find("},").unwrap() + start + 2;
    d.write(
        "Runtime/appsettings.json",
        &format!("{}{}", &t[..start], &t[end..]),
    );
    d.refused(&["legacy-encrypted files", "--file-cert-file"]);
    // The command line's certificate is enough; a wrong password is refused at preflight.
    let mut d = d;
    let pfx = d._tmp.path().join("agent.pfx");
    std::fs::copy(d.path(demo::DEMO_CERT), &pfx).unwrap();
    d.extra = vec![
        "--file-cert-file".into(),
        pfx.display().to_string(),
        "--file-cert-password".into(),
        "wrong".into(),
    ];
    let before = snapshot(&d.root);
    let (code, msg) = d.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("agent.pfx") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert_same(&before, &snapshot(&d.root), "after a wrong PFX password");
    d.extra[3] = demo::DEMO_CERT_PASSWORD.into();
    d.ok(&["plan"]);
}

fn integrated_layout(d: &Demo) {
    let deps = d.read("Runtime/Usercube-Server.deps.json");
    assert!(deps.contains(&format!("Usercube-Server/{}", demo::NEW_VERSION)));
    assert!(d.path("RuntimeOld/Usercube-Server.deps.json").is_file());
    let settings = d.read("Runtime/appsettings.json");
    assert!(
        settings.contains("\"TempFolderPath\": \"../Temp\""),
        "{settings}"
    );
    assert!(
        settings.contains("\"WorkFolderPath\": \"../Work\""),
        "{settings}"
    );
    assert!(settings.contains("\"EncryptFile\": true"), "{settings}");
    assert!(settings.contains("// Usercube server"), "comments kept");
    let agent = d.read("Runtime/appsettings.agent.json");
    assert!(
        agent.contains("\"Connections\": {") && !agent.contains("\"InformationSystems\": {"),
        "{agent}"
    );
    assert!(
        agent.contains("\"ADParis\"") && agent.contains("\"HRCsv\""),
        "{agent}"
    );
    assert!(agent.contains("\"PagedResult\": 500"), "{agent}");
    // As a JSON string: on Windows every '\\' of the path is escaped.
    let abs = serde_json::to_string(&d.root.join("Sources").join("hr.csv")).unwrap();
    assert!(
        agent.contains(abs.trim_matches('"')),
        "relative path resolved: {agent}"
    );
    assert!(d
        .read("Runtime/appsettings.encrypted.agent.json")
        .contains("\"Connections\""));
    assert!(!d.path("Temp/Collect").exists());
    assert!(
        d.path("Temp/ExportOutput").is_dir(),
        "not in the move table"
    );
    for m in [
        "ProvisioningOrders",
        "Synchronization",
        "ExportCookies",
        "FulfillPowerShell",
    ] {
        assert!(d.path(&format!("Work/{m}")).is_dir(), "{m}");
        assert!(!d.path(&format!("Temp/{m}")).exists(), "{m}");
    }
    assert!(d.path("Work/tracked-accounts-ADParis.csv").is_file());
    // AppSettingsFolder: old settings, 520.json, 522.json.
    assert_eq!(
        d.read("AppSettingsFolder/appsettings.agent.json"),
        d.read("RuntimeOld/appsettings.agent.json")
    );
    let j520: serde_json::Value =
        serde_json::from_str(&d.read("AppSettingsFolder/520.json")).unwrap();
    assert_eq!(j520["connectionIdentifiers"]["AD_Paris"], "ADParis");
    assert_eq!(j520["connectionIdentifiers"]["HR_Csv"], "HRCsv");
    let j522: serde_json::Value =
        serde_json::from_str(&d.read("AppSettingsFolder/522.json")).unwrap();
    assert_eq!(j522["agentIdentifier"], "Local");
    // Configuration: unchanged files byte for byte, the rules applied, BOM/comments kept.
    for same in ["Settings.xml", "README.txt"] {
        assert_eq!(
            std::fs::read(d.path(&format!("Conf/{same}"))).unwrap(),
            std::fs::read(d.path(&format!("ConfOld/{same}"))).unwrap()
        );
    }
    let ad = std::fs::read(d.path("Conf/Connectors/AD.xml")).unwrap();
    assert!(ad.starts_with(b"\xEF\xBB\xBF<?xml"), "BOM kept");
    let ad = String::from_utf8(ad).unwrap();
    assert!(ad.contains("<!-- Active Directory, Paris -->\r\n"));
    assert!(
        ad.contains("Identifier=\"ADParis\"") && ad.contains("Type=\"ForeignKey\""),
        "{ad}"
    );
    assert!(!ad.contains("FilesAreNotEncrypted"), "{ad}");
    let wf = d.read("Conf/AccessControl/Workflows.xml");
    assert!(
        wf.contains("\"/Custom/WorkflowsNotifications/Self_ChangeName/Review\""),
        "{wf}"
    );
    let risks = d.read("Conf/Risks.xml");
    assert!(!risks.contains("Targetted"), "{risks}");
    let jobs = d.read("Conf/Jobs.xml");
    assert!(
        jobs.contains("Connection=\"ADParis\"") && jobs.contains("ConnectionIdentifier=\"HRCsv\""),
        "{jobs}"
    );
    assert!(
        !jobs.contains("Level=") && !jobs.contains("Order="),
        "{jobs}"
    );
}

#[test]
fn integrated_run_then_rollback() {
    let mut d = Demo::new("integrated");
    d.extra = vec![
        "--runtime-path".into(),
        d.root.join("Runtime").display().to_string(),
    ];
    let plan = d.ok(&["plan"]);
    assert!(
        !plan
            .lines()
            .any(|l| l.contains("NOT AVAILABLE") && l.contains("database")),
        "{plan}"
    );
    assert_backup_line(&plan, &d.path(demo::DATABASE));
    for expect in [
        "delete every row of UJ_TaskEntityTypes",
        "delete every row of UJ_JobSteps",
        "identitymanager-Upgrade-DatabaseVersion.exe",
        "moved into the journal trash, purged at finalize",
        "Temp -> Work move table",
        "9.5 ",
        "create folder AppSettingsFolder",
    ] {
        assert!(plan.contains(expect), "{expect:?} in\n{plan}");
    }
    let start = snapshot(&d.root);
    let rows_before = common::db_dump(&d.path(demo::DATABASE));
    let legacy = legacy_plaintexts(&d, &["Temp", "Runtime"]);
    assert!(
        legacy.len() >= 5,
        "the demo has legacy-encrypted files: {:?}",
        legacy.keys()
    );
    d.ok(&["run"]);
    let reencrypted = new_format_plaintexts(&d, &["Temp", "Work"]);
    assert_eq!(
        legacy, reencrypted,
        "every legacy file re-encrypted, decrypting to the original plaintext"
    );
    integrated_layout(&d);
    for t in ["UJ_TaskEntityTypes", "UJ_TaskResourceTypes", "UJ_JobSteps"] {
        assert_eq!(count(&d, t), 0, "{t} emptied");
    }
    assert_eq!(count(&d, "UJ_Jobs"), 2, "other tables untouched");
    assert!(
        d.path("DatabaseBackup").is_dir(),
        "the backup folder is under the root"
    );
    let export = d.ok(&["journal", "export", "--json"]);
    assert!(export.contains("AD_Paris"), "changes are in the audit");
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "integrated: after rollback");
    assert_eq!(
        rows_before,
        common::db_dump(&d.path(demo::DATABASE)),
        "identical rows after rollback (full dump)"
    );
    assert!(!d.path("DatabaseBackup").exists());
}

fn files_under(d: &Demo, dirs: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        for e in walkdir::WalkDir::new(d.path(dir)) {
            let e = e.unwrap();
            if e.file_type().is_file() {
                out.push(e.into_path());
            }
        }
    }
    out
}

/// File name -> plaintext of every legacy-encrypted file under `dirs` (decrypted with the
/// demo certificate, independently of the step).
fn legacy_plaintexts(d: &Demo, dirs: &[&str]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    use usercube_upgrade::testing::crypto::{is_legacy, LegacyReader};
    let cert = demo::demo_certificate();
    let mut out = std::collections::BTreeMap::new();
    for p in files_under(d, dirs) {
        let bytes = std::fs::read(&p).unwrap();
        if is_legacy(&bytes) {
            let mut plain = Vec::new();
            LegacyReader::new(&cert, &bytes[..])
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(out.insert(name, plain).is_none(), "unique names");
        }
    }
    out
}

/// File name -> plaintext of every new-format file under `dirs`; no legacy file remains.
fn new_format_plaintexts(d: &Demo, dirs: &[&str]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    use usercube_upgrade::testing::crypto::{is_legacy, is_new_format, NewFormatReader};
    let cert = demo::demo_certificate();
    let mut out = std::collections::BTreeMap::new();
    for p in files_under(d, dirs) {
        let bytes = std::fs::read(&p).unwrap();
        assert!(!is_legacy(&bytes), "{}: still legacy", p.display());
        if is_new_format(&bytes) {
            let mut plain = Vec::new();
            NewFormatReader::new(&cert, &bytes[..])
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(out.insert(name, plain).is_none(), "unique names");
        }
    }
    out
}

fn count(d: &Demo, table: &str) -> i64 {
    rusqlite::Connection::open(d.path(demo::DATABASE))
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// The demo database as the server upgrade leaves it (the agent plan runs after it).
fn set_db_version(d: &Demo, version: &str) {
    rusqlite::Connection::open(d.path(demo::DATABASE))
        .unwrap()
        .execute("UPDATE UM_DatabaseVersion SET Version = ?1", [version])
        .unwrap();
}

#[test]
fn server_run_then_rollback() {
    let mut d = Demo::new("server");
    let agent = d._tmp.path().join("agent-appsettings.json");
    std::fs::copy(d.path("Runtime/appsettings.agent.json"), &agent).unwrap();
    d.extra = vec!["--agent-appsettings".into(), agent.display().to_string()];
    let start = snapshot(&d.root);
    d.ok(&["run"]);
    assert!(d
        .read("Runtime/Usercube-Server.deps.json")
        .contains(demo::NEW_VERSION));
    assert!(d
        .read("Runtime/appsettings.json")
        .contains("WorkFolderPath"));
    assert_eq!(
        d.read("Runtime/appsettings.agent.json"),
        d.read("RuntimeOld/appsettings.agent.json"),
        "server mode copies the agent settings as they are"
    );
    assert_eq!(
        d.read("AppSettingsFolder/appsettings.agent.json"),
        std::fs::read_to_string(&agent).unwrap()
    );
    assert!(
        d.path("Work/ProvisioningOrders").is_dir(),
        "server-side move"
    );
    assert!(
        d.path("Temp/Synchronization").is_dir(),
        "agent-side folders stay"
    );
    assert!(!d.path("Temp/Collect").exists());
    assert!(d.path("Conf/Jobs.xml").is_file() && !d.path("ConfOld").exists());
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "server: after rollback");
}

/// The demo as a remote agent: the agent's deps.json instead of the server's.
fn agentize(d: &Demo) {
    let deps = d.read("Runtime/Usercube-Server.deps.json");
    d.write(
        "Runtime/Usercube-Agent.deps.json",
        &deps.replace("Usercube-Server/", "Usercube-Agent/"),
    );
    usercube_upgrade::testing::durable_fs::remove_path(
        &d.path("Runtime/Usercube-Server.deps.json"),
    )
    .unwrap();
    set_db_version(d, demo::NEW_VERSION);
}

#[test]
fn agent_plan_refuses_while_the_database_reports_5_1() {
    let d = Demo::new("agent");
    agentize(&d);
    set_db_version(&d, demo::OLD_VERSION);
    d.refused(&[
        "still reports version 5.1.7.2106",
        "upgrade the server first",
    ]);
}

#[test]
fn agent_run_then_rollback() {
    let d = Demo::new("agent");
    agentize(&d);
    let start = snapshot(&d.root);
    d.ok(&["run"]);
    assert!(
        d.path("Runtime/Usercube-Server.deps.json").is_file(),
        "from the zip"
    );
    assert!(d
        .read("Runtime/appsettings.json")
        .contains("TempFolderPath"));
    assert_eq!(
        d.read("RuntimeOld/appsettings.json"),
        demo_original_appsettings()
    );
    assert!(d
        .read("Runtime/appsettings.agent.json")
        .contains("\"Connections\""));
    assert_eq!(
        d.read("Runtime/web.config"),
        d.read("RuntimeOld/web.config")
    );
    assert!(d.path("Work/Synchronization").is_dir());
    assert!(d.path("Work/tracked-accounts-ADParis.csv").is_file());
    assert!(d.path("ConfOld").is_dir() && d.read("Conf/Jobs.xml").contains("ADParis"));
    for t in ["UJ_TaskEntityTypes", "UJ_TaskResourceTypes", "UJ_JobSteps"] {
        assert_eq!(count(&d, t), 0, "agent: {t} emptied");
    }
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "agent: after rollback");
}

fn demo_original_appsettings() -> String {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    demo::create(&tmp.path().join("r"), SIZE).unwrap();
    std::fs::read_to_string(tmp.path().join("r/Runtime/appsettings.json")).unwrap()
}

/// `demo --no-run` into a folder whose name has a space prints a `run` command that, read
/// as this OS's shell reads a pasted line, is the demo's own command and upgrades it.
#[test]
fn demo_command_writes_and_runs_the_demo() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path().join("demo d");
    let out = bin()
        .args(["demo", "--files", "20", "--bytes", "20K", "--no-run"])
        .arg(&dir)
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        msg.contains("usercube-upgrade run --root") && msg.contains("--mode integrated"),
        "{msg}"
    );
    assert!(dir.join(RUNTIME_ZIP).is_file());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .skip_while(|l| *l != "run it with:")
        .nth(1)
        .unwrap_or_else(|| panic!("no run command: {stdout}"));
    let words = usercube_upgrade::testing::platform::split_command_line(line).unwrap();
    let root = usercube_upgrade::testing::engine::canonical_root(&dir).unwrap();
    let expected: Vec<String> = demo::command(&root, "run")
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    assert_eq!(words, expected, "{line}");
    let out = bin().args(&words[1..]).output().unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{line}: {msg}");
    assert!(dir.join("RuntimeOld").is_dir(), "{msg}");
    let dir2 = tmp.path().join("e");
    let out = bin()
        .args(["demo", "--files", "20", "--bytes", "20K"])
        .arg(&dir2)
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(dir2.join("RuntimeOld").is_dir() && dir2.join("AppSettingsFolder/520.json").is_file());
    // Every path absolute in the plan and the run's lines (issue 12).
    assert!(
        msg.contains("SKIPPED") && msg.contains("--skip-database-upgrade"),
        "the demo's zip has no schema tool: {msg}"
    );
    assert_backup_line(&msg, &dir2.join(demo::DATABASE));
    for expect in [
        "re-encrypt legacy-encrypted files",
        "delete every row of UJ_JobSteps",
    ] {
        assert!(msg.contains(expect), "{expect:?} in {msg}");
    }
    assert!(!msg.contains("NOT AVAILABLE"), "{msg}");
}

#[test]
fn vendor_tool_subcommands_run_and_roll_back() {
    let d = Demo::new("integrated");
    let asf = d.path("ASF");
    std::fs::create_dir(&asf).unwrap();
    std::fs::copy(
        d.path("Runtime/appsettings.agent.json"),
        asf.join("appsettings.agent.json"),
    )
    .unwrap();
    usercube_upgrade::testing::durable_fs::rename(&d.path("Conf"), &d.path("ConfOld")).unwrap();
    let start = snapshot(&d.root);
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .arg("--root")
            .arg(&d.root)
            .arg("--quiet")
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let (old, new, agent) = (
        d.path("ConfOld").display().to_string(),
        d.path("Conf").display().to_string(),
        asf.join("appsettings.agent.json").display().to_string(),
    );
    let conf = [
        "upgrade-configuration-version",
        "--version",
        "5.1.7",
        "--xml-path",
        &old,
        "--output",
        &new,
        "--appsettings-path",
        &agent,
    ];
    let (code, msg) = run(&conf);
    assert_eq!(code, Some(0), "{msg}");
    assert!(d.read("Conf/Jobs.xml").contains("Connection=\"ADParis\""));
    assert_eq!(d.read("Conf/Settings.xml"), d.read("ConfOld/Settings.xml"));
    d.ok(&["rollback"]);
    assert_same(
        &start,
        &snapshot(&d.root),
        "after rollback of upgrade-configuration-version",
    );
    d.ok(&["finalize"]);

    let (code, msg) = run(&[
        "prepare-upgrade-appsettings",
        "--version",
        "5.1.7",
        "--output-path",
        asf.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(d.read("ASF/520.json").contains("\"AD_Paris\": \"ADParis\""));
    d.ok(&["finalize"]);

    let (code, msg) = run(&["upgrade-files", "--version", "5.1.6"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("--version 5.1.6"), "{msg}");
    let (code, msg) = run(&["upgrade-files", "--version", "5.1.7", "--migrate-agent"]);
    assert_eq!(
        code,
        Some(2),
        "a certificate is needed for the encrypted files: {msg}"
    );
    let (code, msg) = run(&["upgrade-files", "--version", "5.1.7"]);
    assert_eq!(code, Some(0), "{msg}");
    assert!(d.path("Work/ProvisioningOrders").is_dir() && d.path("Temp/Synchronization").is_dir());
    // With the agent rows and a certificate, the agent files are re-encrypted too.
    let e = Demo::new("integrated");
    let legacy = legacy_plaintexts(&e, &["Temp"]);
    let cert = e.path(demo::DEMO_CERT).display().to_string();
    let out = e
        .cmd(&[
            "upgrade-files",
            "--version",
            "5.1.7",
            "--migrate-agent",
            "--file-cert-file",
            &cert,
            "--file-cert-password",
            demo::DEMO_CERT_PASSWORD,
        ])
        .env_remove(usercube_upgrade::testing::crypto::PASSWORD_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(legacy, new_format_plaintexts(&e, &["Temp", "Work"]));
}

#[test]
fn encrypt_file_is_false_only_when_every_connector_was_not_encrypted() {
    for mode in ["server", "integrated"] {
        let d = Demo::new(mode);
        let ad = d.read("Conf/Connectors/AD.xml");
        let ad = ad
            .replace(
                "FilesAreNotEncrypted=\"false\"",
                "FilesAreNotEncrypted=\"true\"",
            )
            .replace(
                "Package=\"Usercube.AD@0000001\"/>",
                "Package=\"Usercube.AD@0000001\" FilesAreNotEncrypted=\"true\"/>",
            );
        d.write("Conf/Connectors/AD.xml", &ad);
        d.ok(&["run"]);
        let settings = d.read("Runtime/appsettings.json");
        assert!(
            settings.contains("\"EncryptFile\": false"),
            "{mode}: {settings}"
        );
    }
}

/// "4.2-4.3" -> [4, 2]; "-" (accepted manual items, listed last) -> None.
fn seed_key(seed: &str) -> Option<Vec<u32>> {
    let first = seed.split('-').next().filter(|s| !s.is_empty())?;
    Some(first.split('.').map(|n| n.parse().unwrap()).collect())
}

#[test]
fn every_plan_follows_the_seed_order() {
    for mode in ["integrated", "server", "agent"] {
        let mut d = Demo::new(mode);
        // A schema upgrade command that exists (this binary), so that the step is planned.
        d.skip_database_upgrade = false;
        d.extra = vec![
            "--database-upgrade-command".into(),
            format!("\"{}\" --version", env!("CARGO_BIN_EXE_usercube-upgrade")),
        ];
        if mode == "agent" {
            agentize(&d);
        }
        let out = d.cmd(&["plan", "--json"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let items = v["runbook"]["items"].as_array().unwrap();
        let keys: Vec<Vec<u32>> = items
            .iter()
            .filter_map(|i| seed_key(i["seed"].as_str().unwrap()))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{mode}: {keys:?}");
        let steps = v["runbook"]["plan"]["steps"].as_array().unwrap();
        assert!(
            steps.iter().all(|s| s["seed"].is_string()),
            "{mode}: every step has its seed"
        );
        let kinds: Vec<&str> = steps
            .iter()
            .map(|s| {
                s["action"]
                    .as_object()
                    .and_then(|o| o.keys().next())
                    .map(String::as_str)
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(
            kinds.iter().position(|k| *k == "database-backup"),
            kinds.iter().position(|k| *k != "make-dir"),
            "{mode}: the database backup comes before the first change: {kinds:?}"
        );
        let deleted: Vec<&str> = steps
            .iter()
            .filter_map(|s| s["action"]["delete-rows"]["table"].as_str())
            .collect();
        if mode == "server" {
            assert!(deleted.is_empty(), "server: no deletes: {deleted:?}");
        } else {
            assert_eq!(
                deleted,
                ["UJ_TaskEntityTypes", "UJ_TaskResourceTypes", "UJ_JobSteps"],
                "{mode}"
            );
        }
        if mode != "agent" {
            assert!(
                kinds.contains(&"database-version-upgrade"),
                "{mode}: {kinds:?}"
            );
        }
        assert!(
            items.iter().all(|i| i["kind"] != "not-available"
                || !i["text"].as_str().unwrap_or("").contains("database")),
            "{mode}: no database line is left as not available: {items:?}"
        );
    }
}

#[test]
fn a_missing_work_folder_is_created_and_removed_by_rollback() {
    let d = Demo::new("integrated");
    usercube_upgrade::testing::durable_fs::remove_path(&d.path("Work")).unwrap();
    let start = snapshot(&d.root);
    let plan = d.ok(&["plan"]);
    assert!(plan.contains("create folder Work"), "{plan}");
    d.ok(&["run"]);
    assert!(d.path("Work/ProvisioningOrders").is_dir());
    assert!(d.path("Work/tracked-accounts-ADParis.csv").is_file());
    d.ok(&["rollback"]);
    assert_same(
        &start,
        &snapshot(&d.root),
        "after rollback: no Work folder left behind",
    );
}

/// `--stop-command`/`--start-command` writing into a log outside the root; the stop
/// command also prints a line, which the journal must keep. The start command fails while
/// the folder `start_guard` is missing. Written to mean the same to `sh -c` and `cmd.exe /C`
/// (`&&`, `cd`, `echo x>> f`).
fn with_service(d: &mut Demo, start_guard: Option<&str>) -> PathBuf {
    let log = d._tmp.path().join("service.log");
    let l = log.display().to_string();
    let guard = start_guard
        .map(|g| format!("cd {g}&& "))
        .unwrap_or_default();
    d.extra = vec![
        "--stop-command".into(),
        format!("echo service-stop-output-7&& echo stopped>> {l}"),
        "--start-command".into(),
        format!("{guard}echo service-start-output-9&& echo started>> {l}"),
    ];
    log
}

/// The service log, line ends as written by `sh` (cmd.exe writes CRLF).
fn log_of(log: &std::path::Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .replace("\r\n", "\n")
}

#[test]
fn stop_and_start_commands_are_journaled_steps() {
    let mut d = Demo::new("integrated");
    let log = with_service(&mut d, None);
    let start = snapshot(&d.root);
    let plan = d.ok(&["plan"]);
    assert!(!log.exists(), "`plan` runs nothing");
    let steps: Vec<&str> = plan.lines().filter(|l| l.contains(" step ")).collect();
    assert!(
        steps.first().unwrap().contains("stop the service"),
        "the first step stops the service:\n{plan}"
    );
    assert!(
        steps.last().unwrap().contains("start the service"),
        "the last step starts it:\n{plan}"
    );
    d.ok(&["run"]);
    assert_eq!(log_of(&log), "stopped\nstarted\n");
    let audit = d.ok(&["journal", "export", "--json"]);
    assert!(
        audit.contains("service-stop-output-7"),
        "output journaled:\n{audit}"
    );
    assert!(
        audit.contains("exit status 0"),
        "status journaled:\n{audit}"
    );
    // Rollback in undo order: the new service stopped first, the old one started last.
    d.ok(&["rollback"]);
    assert_eq!(log_of(&log), "stopped\nstarted\nstopped\nstarted\n");
    assert_same(&start, &snapshot(&d.root), "after rollback");
    // The export shows every command run, with its output, the undos included.
    let audit: serde_json::Value =
        serde_json::from_str(&d.ok(&["journal", "export", "--json"])).unwrap();
    let steps = audit["runs"].as_array().unwrap().last().unwrap()["steps"]
        .as_array()
        .unwrap()
        .clone();
    let runs_of = |what: &str| -> Vec<(String, String)> {
        let step = steps
            .iter()
            .find(|s| s["description"].as_str().unwrap().contains(what))
            .unwrap_or_else(|| panic!("no step {what}"));
        step["commands"]
            .as_array()
            .unwrap_or_else(|| panic!("no commands in {step}"))
            .iter()
            .map(|c| {
                assert_eq!(c["success"], true, "{c}");
                (
                    c["phase"].as_str().unwrap().to_string(),
                    c["output"].as_str().unwrap().trim().to_string(),
                )
            })
            .collect()
    };
    let pair = |p: &str, o: &str| (p.to_string(), o.to_string());
    assert_eq!(
        runs_of("stop the service"),
        [
            pair("apply", "service-stop-output-7"),
            pair("undo", "service-start-output-9")
        ]
    );
    assert_eq!(
        runs_of("start the service"),
        [
            pair("apply", "service-start-output-9"),
            pair("undo", "service-stop-output-7")
        ]
    );
}

#[test]
fn a_refused_run_does_not_stop_the_service() {
    let mut d = Demo::new("integrated");
    let log = with_service(&mut d, None);
    // The engine's own preflight refuses: RuntimeOld is in the way of step 3.
    std::fs::create_dir(d.path("RuntimeOld")).unwrap();
    let (code, msg) = d.code(&["run"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("RuntimeOld"), "{msg}");
    assert!(!log.exists(), "stopped although refused: {}", log_of(&log));
}

#[test]
fn a_failing_stop_command_changes_nothing() {
    let mut d = Demo::new("integrated");
    let log = d._tmp.path().join("service.log");
    d.extra = vec![
        "--stop-command".into(),
        // The same to `sh -c` and `cmd.exe /C`.
        "echo cannot stop>&2&& exit 3".into(),
        "--start-command".into(),
        format!("echo started>> {}", log.display()),
    ];
    let start = snapshot(&d.root);
    let (code, msg) = d.code(&["run"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains("cannot stop") && msg.contains("exit status 3"),
        "{msg}"
    );
    assert!(msg.contains("rolled back"), "{msg}");
    assert_same(&start, &snapshot(&d.root), "after a failed stop command");
    assert!(
        !log.exists(),
        "nothing was stopped, so nothing is started: {}",
        log_of(&log)
    );
    let audit = d.ok(&["journal", "export", "--json"]);
    assert!(
        audit.contains("cannot stop"),
        "the failure is journaled:\n{audit}"
    );
}

#[test]
fn a_stop_command_that_cannot_start_changes_nothing() {
    let mut d = Demo::new("integrated");
    let log = with_service(&mut d, None);
    let start = snapshot(&d.root);
    // No `sh` on the PATH: the stop command cannot even start.
    let out = d
        .cmd(&["run"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot start {}",
            usercube_upgrade::testing::platform::SHELL
        )),
        "{msg}"
    );
    assert!(msg.contains("rolled back"), "{msg}");
    assert_same(
        &start,
        &snapshot(&d.root),
        "after a stop command that never ran",
    );
    // Recorded as never run: the rollback did not try the start command either.
    assert!(!log.exists(), "{}", log_of(&log));
    let audit = d.ok(&["journal", "export", "--json"]);
    assert!(audit.contains("cannot start sh"), "{audit}");
}

#[test]
fn a_failed_run_is_rolled_back_and_the_service_started_again() {
    let mut d = Demo::new("integrated");
    let zip = d.path(RUNTIME_ZIP);
    let mut bytes = std::fs::read(&zip).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&zip, bytes).unwrap();
    let log = with_service(&mut d, None);
    let start = snapshot(&d.root);
    let (code, msg) = d.code(&["run"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("rolled back"), "{msg}");
    assert_eq!(log_of(&log), "stopped\nstarted\n", "{msg}");
    assert_same(&start, &snapshot(&d.root), "after the automatic rollback");

    // Without the automatic rollback the service stays stopped; a later `rollback` stops
    // it again first (a reboot may have started it), then starts it once all is undone.
    usercube_upgrade::testing::durable_fs::remove_path(&log).unwrap();
    let (code, msg) = d.code(&["run", "--no-auto-rollback"]);
    assert_eq!(code, Some(1), "{msg}");
    assert_eq!(log_of(&log), "stopped\n", "{msg}");
    d.ok(&["rollback"]);
    assert_eq!(log_of(&log), "stopped\nstopped\nstarted\n");
    assert_same(&start, &snapshot(&d.root), "after rollback");
}

#[test]
fn resume_stops_the_service_again_then_finishes_and_starts_it() {
    let mut d = Demo::new("integrated");
    let ok = d._tmp.path().join("may-start");
    // Native separators: cmd.exe's `cd` reads a '/' as a switch.
    let guard = std::path::absolute(&ok).unwrap();
    let log = with_service(&mut d, Some(&guard.display().to_string()));
    // The start command fails until the folder `ok` exists: the run stops at its last step.
    let (code, msg) = d.code(&["run", "--no-auto-rollback"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("start the service"), "{msg}");
    assert_eq!(log_of(&log), "stopped\n");
    std::fs::create_dir(&ok).unwrap();
    d.ok(&["resume"]);
    assert_eq!(log_of(&log), "stopped\nstopped\nstarted\n");
    assert!(d.path("RuntimeOld").is_dir());
    let status = d.ok(&["status"]);
    assert!(
        status.contains("committed") || status.contains("completed"),
        "{status}"
    );
}

/// A rollback stopped by an error is half done, and every command says so, with what
/// stopped it and the command that finishes it: the issue's case (the run fails, the
/// automatic rollback stops at step 1), then a committed run's rollback. The start command
/// fails while its guard folder is missing: the undo of step 1 (stop the service) runs it.
#[test]
fn a_rollback_stopped_by_an_error_is_shown_half_done_and_rollback_finishes_it() {
    let mut d = Demo::new("integrated");
    let guard = d._tmp.path().join("may-start");
    let guard_arg = std::path::absolute(&guard).unwrap().display().to_string();
    let log = with_service(&mut d, Some(&guard_arg));
    let start = snapshot(&d.root);
    let rows = common::db_dump(&d.path(demo::DATABASE));
    // The root as the tool shows it (on Windows without the `\\?\` prefix a canonical path has).
    let root = dunce::simplified(&d.root).display().to_string();
    let finishes = format!("`usercube-upgrade rollback --root {root}` finishes it");
    let status = |d: &Demo| -> serde_json::Value {
        serde_json::from_str(&d.ok(&["status", "--json"])).unwrap()
    };
    let half_done = |d: &Demo, state: &str| {
        let s = status(d);
        assert_eq!(s["state"], state, "{s}");
        let total = s["steps_total"].as_u64().unwrap();
        let next = s["next"].as_str().unwrap();
        assert!(
            next.starts_with(&format!(
                "rollback half done ({} of {total} steps undone): rollback stopped at step 1 (stop the service",
                total - 1
            )),
            "{s}"
        );
        assert!(next.contains("exit status"), "what stopped it: {s}");
        assert!(next.ends_with(&finishes), "{s}");
        let stopped = s["stopped"].as_str().unwrap();
        assert!(
            stopped.starts_with(&format!(
                "rollback stopped by an error after step {} of {total}: rollback stopped at step 1",
                total - 1
            )),
            "{s}"
        );
        let text = d.ok(&["status"]);
        assert!(text.contains(&format!("next:         {next}")), "{text}");
        // Every command that would go on refuses, naming it; nothing is purged.
        for verb in ["run", "resume", "finalize"] {
            let (code, msg) = d.code(&[verb]);
            assert_eq!(code, Some(2), "{verb}: {msg}");
            assert!(msg.contains("rollback half done ("), "{verb}: {msg}");
            assert!(msg.contains(&finishes), "{verb}: {msg}");
        }
    };

    // The run fails at its last step (start the service); the automatic rollback undoes
    // every step but the first, whose undo starts the old service and fails as well.
    let (code, msg) = d.code(&["run"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("The automatic rollback stopped"), "{msg}");
    half_done(&d, "failed");
    // Fixed: `rollback` finishes it.
    std::fs::create_dir(&guard).unwrap();
    d.ok(&["rollback"]);
    assert_same(
        &start,
        &snapshot(&d.root),
        "after the rollback was finished",
    );
    assert_eq!(rows, common::db_dump(&d.path(demo::DATABASE)));
    assert_eq!(status(&d)["state"], "rolled-back");
    assert!(
        log_of(&log).ends_with("stopped\nstarted\n"),
        "{}",
        log_of(&log)
    );

    // A committed run's rollback stopped the same way.
    d.ok(&["run"]);
    usercube_upgrade::testing::durable_fs::remove_path(&guard).unwrap();
    let (code, msg) = d.code(&["rollback"]);
    assert_eq!(code, Some(1), "{msg}");
    assert!(msg.contains("rollback stopped at step 1"), "{msg}");
    half_done(&d, "committed");
    std::fs::create_dir(&guard).unwrap();
    d.ok(&["rollback"]);
    assert_same(&start, &snapshot(&d.root), "after the second rollback");
    assert_eq!(rows, common::db_dump(&d.path(demo::DATABASE)));
}

#[test]
fn backup_dir_and_connection_string_options() {
    let mut d = Demo::new("integrated");
    let bk = d._tmp.path().join("backups");
    // The database moved: only --connection-string finds it.
    std::fs::create_dir_all(d._tmp.path().join("db")).unwrap();
    let moved = d._tmp.path().join("db/U.sqlite");
    usercube_upgrade::testing::durable_fs::rename(&d.path(demo::DATABASE), &moved).unwrap();
    d.extra = vec![
        "--backup-dir".into(),
        bk.display().to_string(),
        "--connection-string".into(),
        format!("sqlite:{}", moved.display()),
    ];
    let before = common::db_dump(&moved);
    d.ok(&["run"]);
    let backups: Vec<_> = std::fs::read_dir(&bk).unwrap().collect();
    assert_eq!(backups.len(), 1, "one backup in --backup-dir");
    assert!(common::db_dump(&moved).contains("UJ_JobSteps: []"));
    d.ok(&["rollback"]);
    assert_eq!(before, common::db_dump(&moved), "rows put back");
    assert!(
        !bk.exists(),
        "the backup folder made by the run is removed by rollback"
    );
}

#[test]
fn refuses_a_literal_database_password() {
    let mut d = Demo::new("integrated");
    d.extra = vec![
        "--connection-string".into(),
        "Server=tcp:127.0.0.1,1;Database=Usercube;User Id=sa;Password=s3cret-pw".into(),
    ];
    let msg = d.refused(&["literal password", "Password=${"]);
    assert!(!msg.contains("s3cret-pw"), "{msg}");
}

/// Issue 23, part 2, item 1: a literal password inside `--database-upgrade-command` (a
/// password option's value, or the password of a connection string given as an argument)
/// is refused by `plan` and `run` as a literal password in the connection string is: exit
/// 2, nothing changed, no journal, and the password printed nowhere.
#[test]
fn refuses_a_literal_password_in_the_database_upgrade_command() {
    let mut d = Demo::new("integrated");
    d.skip_database_upgrade = false;
    for command in [
        "python3 tool.py --connection-string \"Server=tcp:h,1433;User Id=sa;Password=s3cret-pw\"",
        "python3 tool.py --db-password s3cret-pw",
        "python3 tool.py --password=s3cret-pw",
    ] {
        d.extra = vec!["--database-upgrade-command".into(), command.into()];
        let start = snapshot(&d.root);
        for verb in ["plan", "run"] {
            let (code, msg) = d.code(&[verb]);
            assert_eq!(code, Some(2), "{verb} {command}: {msg}");
            assert!(
                msg.contains("--database-upgrade-command holds a literal password"),
                "{verb}: {msg}"
            );
            assert!(msg.contains("${VARIABLE}"), "{verb}: {msg}");
            assert!(!msg.contains("s3cret-pw"), "{verb}: {msg}");
        }
        assert_same(&start, &snapshot(&d.root), "refused: nothing changed");
        assert!(!d.root.join(JOURNAL).exists(), "no journal for a refusal");
    }
}

#[test]
fn run_without_the_pfx_password_is_refused_before_any_change() {
    let d = Demo::new("integrated");
    let start = snapshot(&d.root);
    // The plan references the PFX only; without its password (no --file-cert-password, no
    // environment variable) the engine's preflight refuses before the first step.
    let out = d
        .cmd(&["run"])
        .env_remove(usercube_upgrade::testing::crypto::PASSWORD_ENV)
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(usercube_upgrade::testing::crypto::PASSWORD_ENV),
        "{msg}"
    );
    assert_same(&start, &snapshot(&d.root), "refused: nothing changed");
}

/// `demo --encrypted-files N`: N legacy-encrypted exports of 4-16 KiB of plaintext, which the
/// demo's upgrade re-encrypts (two demos of the same size are identical: one is read before,
/// the other after the upgrade).
#[test]
fn demo_encrypted_files_are_legacy_and_get_reencrypted() {
    use std::io::Read;
    use usercube_upgrade::testing::crypto::{
        is_legacy, is_new_format, LegacyReader, NewFormatReader,
    };
    let cert = &demo::demo_certificate();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let args = [
        "demo",
        "--files",
        "20",
        "--bytes",
        "20K",
        "--encrypted-files",
        "40",
    ];
    let bulk = |root: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(root.join(demo::BULK_ENCRYPTED_DIR))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with("AD_Bulk_"))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before = tmp.path().join("before");
    let out = bin()
        .args(args)
        .arg("--no-run")
        .arg(&before)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let legacy = bulk(&before);
    assert_eq!(legacy.len(), 40);
    let mut plain = Vec::new();
    for (name, bytes) in &legacy {
        assert!(is_legacy(bytes), "{name} is legacy-encrypted");
        let mut p = Vec::new();
        LegacyReader::new(cert, &bytes[..])
            .unwrap()
            .read_to_end(&mut p)
            .unwrap();
        assert!(
            (4096..=16384).contains(&p.len()),
            "{name}: {} bytes",
            p.len()
        );
        plain.push(p);
    }

    let after = tmp.path().join("after");
    let out = bin().args(args).arg(&after).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let converted = bulk(&after);
    assert_eq!(converted.len(), 40);
    for ((name, bytes), p) in converted.iter().zip(&plain) {
        assert!(is_new_format(bytes), "{name} is re-encrypted");
        let mut back = Vec::new();
        NewFormatReader::new(cert, &bytes[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == *p, "{name} decrypts to its plaintext");
    }
}

// ---- issue 12 point 3: the database is as the run left it before a restore; the agent gate

/// A stand-in for the vendor's schema upgrade: records 5.2.3 in the version table.
const SET_VERSION_PY: &str = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(\"UPDATE UM_DatabaseVersion SET Version = '5.2.3.3180'\")\nc.commit()\nprint('Database has been upgraded to version 5.2.3')\n";

/// A server upgraded (its schema tool run), then a remote agent upgraded on the same
/// database (it deletes the UJ rows). Returns both, the shared database, and the server's
/// tree before its run.
fn server_then_agent() -> (
    Demo,
    Demo,
    PathBuf,
    usercube_upgrade::testing::manifest::Manifest,
) {
    let mut server = Demo::new("server");
    let db = server.path(demo::DATABASE);
    let tool = server._tmp.path().join("set-version.py");
    std::fs::write(&tool, SET_VERSION_PY).unwrap();
    server.extra = vec![
        "--database-upgrade-command".into(),
        format!("python3 {} {}", tool.display(), db.display()),
    ];
    let server_start = snapshot(&server.root);
    server.ok(&["run"]);
    assert!(common::db_dump(&db).contains("5.2.3.3180"), "the tool ran");
    let mut agent = Demo::new("agent");
    agentize(&agent);
    agent.extra = vec![
        "--connection-string".into(),
        format!("sqlite:{}", db.display()),
    ];
    agent.ok(&["run"]);
    assert!(
        common::db_dump(&db).contains("UJ_JobSteps: []"),
        "the agent deleted rows"
    );
    (server, agent, db, server_start)
}

#[test]
fn rolling_back_a_server_before_its_agent_is_refused_then_works_in_order() {
    let (server, agent, db, server_start) = server_then_agent();
    let tree = snapshot(&server.root);
    let rows = common::db_dump(&db);
    let (code, msg) = server.code(&["rollback"]);
    assert_eq!(code, Some(2), "{msg}");
    for expect in [
        "is not as this run",
        "table UJ_JobSteps: 10 rows",
        "0 rows",
        "the agent's upgrade",
        "roll the agent's run back first",
        "Nothing was changed",
        "--force",
    ] {
        assert!(msg.contains(expect), "{expect:?} in:\n{msg}");
    }
    assert_same(&tree, &snapshot(&server.root), "refused rollback");
    assert_eq!(
        rows,
        common::db_dump(&db),
        "database untouched by the refusal"
    );
    assert!(
        server.ok(&["status"]).contains("committed"),
        "the server's run is still open"
    );
    // The right order: the agent first (its backup restored: the database as the server
    // left it), then the server.
    agent.ok(&["rollback"]);
    server.ok(&["rollback"]);
    assert_same(
        &server_start,
        &snapshot(&server.root),
        "server: after rollback",
    );
    assert!(common::db_dump(&db).contains("5.1.7.2106"));
}

#[test]
fn force_rolls_a_server_back_over_its_agents_changes() {
    let (server, agent, db, server_start) = server_then_agent();
    let agent_rows = common::db_dump(&db);
    let (code, msg) = server.code(&["rollback", "--force"]);
    assert_eq!(code, Some(0), "{msg}");
    // The database as the agent left it is kept in a verified backup under the root.
    let mut tree = snapshot(&server.root);
    let kept: Vec<String> = tree
        .entries
        .iter()
        .filter(|e| e.rel.starts_with("KeptAside-") && e.rel.ends_with(".sqlite"))
        .map(|e| e.rel.clone())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(common::db_dump(&server.root.join(&kept[0])), agent_rows);
    tree.entries.retain(|e| !e.rel.starts_with("KeptAside-"));
    assert_same(&server_start, &tree, "forced rollback");
    // The agent's run now finds the database changed under it too.
    let rows = common::db_dump(&db);
    let (code, msg) = agent.code(&["rollback"]);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("is not as this run"), "{msg}");
    assert!(
        msg.contains("UM_DatabaseVersion.Version: 5.2.3.3180"),
        "{msg}"
    );
    assert_eq!(
        rows,
        common::db_dump(&db),
        "database untouched by the refusal"
    );
}

#[test]
fn agent_gate_refuses_unless_the_database_confirms_the_server_upgrade() {
    let mut d = Demo::new("agent");
    agentize(&d);
    set_db_version(&d, "5.2.2.1000");
    d.refused(&[
        "agent gate: cannot confirm that the server was upgraded first",
        "reports version 5.2.2.1000 in UM_DatabaseVersion.Version, not 5.2.3.x",
    ]);
    rusqlite::Connection::open(d.path(demo::DATABASE))
        .unwrap()
        .execute_batch("DROP TABLE UM_DatabaseVersion")
        .unwrap();
    d.refused(&[
        "agent gate: cannot confirm that the server was upgraded first",
        "has no table UM_DatabaseVersion",
        "--server-upgraded",
    ]);
    // The administrator's confirmation: the plan goes on, saying why.
    d.extra = vec!["--server-upgraded".into()];
    let plan = d.ok(&["plan"]);
    assert!(
        plan.contains("going on because --server-upgraded"),
        "{plan}"
    );
    // Evidence against it still refuses.
    rusqlite::Connection::open(d.path(demo::DATABASE))
        .unwrap()
        .execute_batch(
            "CREATE TABLE UM_DatabaseVersion (Id INTEGER PRIMARY KEY, Version TEXT);
             INSERT INTO UM_DatabaseVersion VALUES (1, '5.1.7.2106');",
        )
        .unwrap();
    d.refused(&["still reports version 5.1.7.2106 in UM_DatabaseVersion.Version"]);
}

// ---- issue 12 point 9: the audit names who, where, how and when; a closed pipe is quiet

/// `2026-12-02T15:04:05.123Z`.
fn is_iso8601_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

#[test]
fn audit_names_operator_host_command_line_times_and_row_digests() {
    use sha2::Digest;
    use usercube_upgrade::testing::engine::audit::iso8601;
    let mut d = Demo::new("agent");
    agentize(&d);
    // Secrets on the command line, as an administrator might give them.
    d.extra = vec![
        "--file-cert-file".into(),
        d.path(demo::DEMO_CERT).display().to_string(),
        "--file-cert-password".into(),
        demo::DEMO_CERT_PASSWORD.into(),
    ];
    let expected_digest = {
        use usercube_upgrade::testing::db::{self, Target};
        let mut db = db::open(&Target::Sqlite(d.path(demo::DATABASE))).unwrap();
        let rows = db::dump(&mut *db, "UJ_JobSteps").unwrap();
        assert_eq!(rows.len(), 10);
        let bytes =
            bincode::Options::serialize(usercube_upgrade::testing::journal::record::codec(), &rows)
                .unwrap();
        hex::encode(sha2::Sha256::digest(bytes))
    };
    d.ok(&["run"]);
    d.ok(&["rollback"]);
    d.ok(&["finalize"]);
    let export: serde_json::Value =
        serde_json::from_str(&d.ok(&["journal", "export", "--json"])).unwrap();
    let run = &export["runs"][0];
    let user = usercube_upgrade::testing::platform::user_name().unwrap();
    let host = usercube_upgrade::testing::platform::host_name().unwrap();
    assert_eq!(run["operator"], user.as_str());
    assert_eq!(run["host"], host.as_str());
    let cmd: Vec<&str> = run["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let flag = cmd
        .iter()
        .position(|a| *a == "--file-cert-password")
        .unwrap();
    assert_eq!(cmd[flag + 1], "***", "{cmd:?}");
    assert!(cmd.contains(&"run") && cmd.contains(&"agent"), "{cmd:?}");
    assert!(
        !cmd.iter().any(|a| a.contains(demo::DEMO_CERT_PASSWORD)),
        "{cmd:?}"
    );
    for (at, ms) in [
        ("started_at", "started_ms"),
        ("ended_at", "ended_ms"),
        ("rolled_back_at", "rolled_back_ms"),
        ("finalized_at", "finalized_ms"),
    ] {
        let text = run[at].as_str().unwrap_or_else(|| panic!("{at}: {run}"));
        assert!(is_iso8601_utc(text), "{at}: {text}");
        assert_eq!(text, iso8601(run[ms].as_u64().unwrap()), "{at}");
    }
    assert_eq!(run["ended"], "committed");
    assert!(run["started_ms"].as_u64() <= run["ended_ms"].as_u64());
    assert!(run["ended_ms"].as_u64() <= run["rolled_back_ms"].as_u64());
    for by in ["rolled_back_by", "finalized_by"] {
        assert_eq!(run[by]["operator"], user.as_str(), "{by}");
        let line = run[by]["command_line"].to_string();
        assert!(
            line.contains(if by == "rolled_back_by" {
                "rollback"
            } else {
                "finalize"
            }),
            "{by}: {line}"
        );
    }
    let steps = run["steps"].as_array().unwrap();
    let delete = steps
        .iter()
        .find(|s| {
            s["description"]
                .as_str()
                .unwrap()
                .contains("every row of UJ_JobSteps")
        })
        .unwrap();
    assert_eq!(
        delete["row_digests"],
        serde_json::json!([{ "chunk": 0, "rows": 10, "sha256": expected_digest }]),
        "the deleted rows' digest, as computed from the rows before the run"
    );
    assert!(is_iso8601_utc(delete["done_at"].as_str().unwrap()));
    assert!(is_iso8601_utc(delete["undone_at"].as_str().unwrap()));
    let fingerprint = delete["database_fingerprint"]["parts"].to_string();
    assert!(fingerprint.contains("table UJ_JobSteps") && fingerprint.contains("0 rows"));

    let show = d.ok(&["journal", "show"]);
    let first = show.lines().next().unwrap();
    assert!(first.contains("run-started"), "{first}");
    assert!(
        first.contains(&format!("by {user} on {host}: "))
            && first.contains("--file-cert-password ***"),
        "{first}"
    );
    assert!(!show.contains(demo::DEMO_CERT_PASSWORD), "{show}");
    for line in show.lines() {
        let time = line.split_whitespace().nth(1).unwrap();
        assert!(is_iso8601_utc(time), "{line}");
    }
    assert!(show
        .lines()
        .any(|l| l.contains("run-finalized") && l.contains("finalize")));

    let status = d.ok(&["status"]);
    assert!(
        status.contains(&format!(
            "started:      {} by {user} on {host}",
            run["started_at"].as_str().unwrap()
        )),
        "{status}"
    );
    assert!(status.contains("finalized:    "), "{status}");
    let status: serde_json::Value = serde_json::from_str(&d.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["rolled_back_at"], run["rolled_back_at"]);
}

/// Each printing command with its reader gone before it writes (`| head -1`): no panic,
/// the command's own exit code.
#[test]
fn a_closed_pipe_is_a_quiet_end() {
    let d = Demo::new("integrated");
    d.ok(&["run"]);
    for args in [
        &["journal", "export", "--json"][..],
        &["journal", "show"],
        &["journal", "verify"],
        &["status"],
        &["status", "--json"],
    ] {
        let mut child = bin()
            .args(args)
            .arg("--root")
            .arg(&d.root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader leaves before the first line
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: nothing on stderr: {err}");
    }
}

/// Issue 12, point 2: the vendor's schema tool is a step that runs, or the run does not
/// start. Without a runnable tool and without --database-upgrade-command or
/// --skip-database-upgrade, `plan` and `run` refuse naming both options and the vendor's
/// command line; a command that does not exist is "not found"; skipped on request, the
/// run's summary lists it first; a given command runs (a relative program path is taken
/// from the current folder) and its output is journaled.
#[test]
fn database_upgrade_runs_or_the_run_does_not_start() {
    let mut d = Demo::new("integrated");
    d.skip_database_upgrade = false;
    let msg = d.refused(&[
        "--database-upgrade-command",
        "--skip-database-upgrade",
        "identitymanager-Upgrade-DatabaseVersion.exe not found in",
        "Runtime/identitymanager-Upgrade-DatabaseVersion.exe --connection-string sqlite:",
        "--appsettings-path",
    ]);
    assert!(!msg.contains("Windows executable"), "{msg}");

    d.extra = vec![
        "--database-upgrade-command".into(),
        "./no-such-tool --connection-string x".into(),
    ];
    let msg = d.refused(&["no-such-tool not found"]);
    assert!(!msg.contains("Windows executable"), "{msg}");

    // Skipped on request: first among the things still to do, with the vendor's command.
    // (Not through `cmd`, which adds --quiet: the summary is for people.)
    d.extra.clear();
    let out = bin()
        .args(["run", "--root"])
        .arg(&d.root)
        .args(["--mode", "integrated", "--runtime-zip"])
        .arg(d.root.join(RUNTIME_ZIP))
        .arg("--skip-database-upgrade")
        .env(
            usercube_upgrade::testing::crypto::PASSWORD_ENV,
            demo::DEMO_CERT_PASSWORD,
        )
        .output()
        .unwrap();
    let summary = text(&out);
    assert_eq!(out.status.code(), Some(0), "{summary}");
    let todo: Vec<&str> = summary
        .lines()
        .skip_while(|l| !l.starts_with("still to do"))
        .skip(1)
        .collect();
    assert!(
        todo.first().is_some_and(|l| l.contains("4.5")
            && l.contains("SKIPPED")
            && l.contains("identitymanager-Upgrade-DatabaseVersion.exe --connection-string")),
        "the skipped schema upgrade is not first:\n{summary}"
    );
    d.ok(&["rollback"]);

    // A given command runs from the root, its relative program found from the current
    // folder; its output is journaled.
    let tool_dir = d._tmp.path().join("tools");
    std::fs::create_dir(&tool_dir).unwrap();
    let marker = d._tmp.path().join("tool-ran");
    let script = tool_dir.join("upgrade-db.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\necho 'Database has been upgraded (fake tool)'\n",
            marker.display()
        ),
    )
    .unwrap();
    usercube_upgrade::testing::platform::set_mode(&script, 0o755).unwrap();
    d.skip_database_upgrade = false;
    d.extra = vec![
        "--database-upgrade-command".into(),
        "tools/upgrade-db.sh --connection-string x".into(),
    ];
    let out = d.cmd(&["run"]).current_dir(d._tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "--connection-string x"
    );
    let audit = d.ok(&["journal", "export", "--json"]);
    assert!(
        audit.contains("Database has been upgraded (fake tool)"),
        "{audit}"
    );
}

/// Issue 12, point 7: every relative path given on the command line, `sqlite:` included,
/// is taken from the current folder and shown absolute in the plan; a relative
/// --runtime-path is made absolute before it is written into appsettings.agent.json.
#[test]
fn relative_paths_resolve_against_the_current_folder() {
    let d = Demo::new("integrated");
    let cwd = d.root.parent().unwrap().to_path_buf();
    let args = |verb: &str| {
        let mut c = bin();
        c.current_dir(&cwd)
            .args([
                verb,
                "--root",
                "root",
                "--mode",
                "integrated",
                "--runtime-zip",
                &format!("root/{RUNTIME_ZIP}"),
                "--runtime-path",
                "root/Runtime",
                "--connection-string",
                "sqlite:root/Database/Usercube.sqlite",
                "--skip-database-upgrade",
            ])
            .env(
                usercube_upgrade::testing::crypto::PASSWORD_ENV,
                demo::DEMO_CERT_PASSWORD,
            );
        c
    };
    let out = args("plan").output().unwrap();
    let plan = text(&out);
    assert_eq!(out.status.code(), Some(0), "{plan}");
    let abs_db = format!(
        "sqlite:{}",
        d.root.join("Database/Usercube.sqlite").display()
    );
    assert!(plan.contains(&abs_db), "{abs_db} not in:\n{plan}");
    assert!(
        plan.contains(&format!(
            "--runtime-path {}",
            d.root.join("Runtime").display()
        )),
        "{plan}"
    );
    assert!(
        !plan.contains(" root/"),
        "a relative path is shown:\n{plan}"
    );
    let out = args("run").arg("--quiet").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let agent = d.read("Runtime/appsettings.agent.json");
    let hr = format!("\"Path\": \"{}\"", d.root.join("Sources/hr.csv").display());
    assert!(agent.contains(&hr), "{hr} not in:\n{agent}");
    assert_eq!(count(&d, "UJ_JobSteps"), 0, "the given database was used");
}

/// Makes a folder immutable (`chattr +i`) for as long as it lives: even root cannot then
/// create or remove entries in it.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: PathBuf) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Immutable(dir))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// Issue 12, point 8: preflight checks that this account can write every folder the plan
/// changes, naming the first it cannot: `plan` refuses (exit 2) instead of passing, and
/// `run` refuses before any change instead of failing mid-way. Root ignores mode bits, so
/// the folder is made immutable (which binds root too); as an unprivileged user (nobody,
/// through setpriv) a mode-0555 folder is refused as well.
#[test]
fn preflight_names_the_first_folder_it_cannot_write() {
    let d = Demo::new("integrated");
    let start = snapshot(&d.root);
    // The Temp -> Work moves create entries in Work.
    let Some(guard) = Immutable::set(d.path("Work")) else {
        eprintln!("note: chattr +i is not available here (not root, or the filesystem has no such attribute): the immutable-folder part is skipped");
        return;
    };
    let work = d.path("Work").display().to_string();
    let msg = d.refused(&["this account cannot write in", &work]);
    assert!(msg.contains("step "), "{msg}");
    drop(guard);
    assert_same(&start, &snapshot(&d.root), "after the refusals");
    d.ok(&["plan"]);

    // As an unprivileged user: a mode-0555 folder (Conf/Connectors, rewritten by the
    // configuration migration).
    let nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_usercube-upgrade"))
            .args(args)
            .arg("--root")
            .arg(&d.root)
            .args(["--mode", "integrated", "--runtime-zip"])
            .arg(d.root.join(RUNTIME_ZIP))
            .arg("--skip-database-upgrade")
            .env(
                usercube_upgrade::testing::crypto::PASSWORD_ENV,
                demo::DEMO_CERT_PASSWORD,
            );
        c.output()
    };
    // tempdir makes its folder owner-only: nobody must be able to enter it.
    usercube_upgrade::testing::platform::set_mode(d._tmp.path(), 0o755).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(&d.root)
        .status()
        .is_ok_and(|s| s.success());
    let probe = nobody(&["plan"]);
    let usable = chown && probe.as_ref().is_ok_and(|o| o.status.code() == Some(0));
    if !usable {
        eprintln!(
            "note: cannot run as nobody here (setpriv, chown, or a folder above the test's it cannot enter): the mode-bits part is skipped: {:?}",
            probe.map(|o| text(&o))
        );
        return;
    }
    let connectors = d.path("Conf/Connectors");
    usercube_upgrade::testing::platform::set_mode(&connectors, 0o555).unwrap();
    let out = nobody(&["plan"]).unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "this account cannot write in {}",
            connectors.display()
        )),
        "{msg}"
    );
    usercube_upgrade::testing::platform::set_mode(&connectors, 0o755).unwrap();
}

/// Issue 12, point 10: a connection identifier that clashes once `_` is removed, within
/// the Runtime's own agent settings (read for two purposes), is refused in one line.
#[test]
fn a_clash_within_one_agent_file_is_refused_once() {
    let d = Demo::new("integrated");
    let agent = d.read("Runtime/appsettings.agent.json");
    d.write(
        "Runtime/appsettings.agent.json",
        &agent.replace(
            "\"InformationSystems\": {",
            "\"InformationSystems\": {\n    \"ADParis\": { \"Path\": \"C:/x.csv\" },",
        ),
    );
    let msg = d.refused(&["duplicate connection identifiers", "ADParis"]);
    assert_eq!(
        msg.matches("duplicate connection identifiers").count(),
        1,
        "{msg}"
    );
}

/// Issue 12, point 10: the same clash seen twice — in the Runtime's own agent settings and
/// again through `--agent-appsettings` naming that file — is one refusal line, not two
/// worded differently.
#[test]
fn a_clash_also_given_as_a_further_agent_is_refused_once() {
    let mut d = Demo::new("integrated");
    let agent = d.read("Runtime/appsettings.agent.json");
    d.write(
        "Runtime/appsettings.agent.json",
        &agent.replace(
            "\"InformationSystems\": {",
            "\"InformationSystems\": {\n    \"ADParis\": { \"Path\": \"C:/x.csv\" },",
        ),
    );
    d.extra = vec![
        "--agent-appsettings".into(),
        d.path("Runtime/appsettings.agent.json")
            .display()
            .to_string(),
    ];
    let msg = d.refused(&["duplicate connection identifiers", "ADParis"]);
    assert_eq!(
        msg.matches("duplicate connection identifiers").count(),
        1,
        "{msg}"
    );
}

/// The plan's backup line names the database by an absolute path (a relative `sqlite:` path is
/// shown resolved), the same file as `db`: compared as files, since Windows shows the root
/// with backslashes and the appsettings' relative part as written.
fn assert_backup_line(text: &str, db: &std::path::Path) {
    let line = text
        .lines()
        .find(|l| l.contains("back up the database sqlite:"))
        .unwrap_or_else(|| panic!("no backup line in\n{text}"));
    let shown = line
        .split("sqlite:")
        .nth(1)
        .and_then(|rest| rest.split(" into ").next())
        .unwrap_or_else(|| panic!("no path in {line}"))
        .trim();
    assert!(std::path::Path::new(shown).is_absolute(), "{line}");
    assert_eq!(
        std::fs::canonicalize(shown).unwrap(),
        std::fs::canonicalize(db).unwrap(),
        "{line}"
    );
}
