//! A realistic Usercube 5.1.7 integrated installation, for `usercube-upgrade demo`, the
//! tests and the benchmark: a Runtime with its deps.json and a few hundred files, Conf XML
//! exercising every configuration rule, Temp with Collect and legacy-encrypted exports,
//! Work, tracked accounts, appsettings with `InformationSystems` (one relative path, a
//! `PageResult`, identifiers with `_`), a `Runtime_5.2.3.<build>.zip`, an SQLite database
//! with the UJ tables filled, and a demo agent certificate (`Certs/demo-agent.pfx`, whose
//! key is published: demo only) for which the Temp exports and one tracked-accounts file
//! are legacy-encrypted. Everything is deterministic: two demos of the same size are
//! byte-identical (the legacy encryption uses a seeded generator).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::SeedableRng;

use crate::crypto::{encrypt_legacy_with_rng, Certificate};
use crate::pseudo_random;

/// The build numbers of the demo's versions.
pub const OLD_VERSION: &str = "5.1.7.2106";
pub const NEW_VERSION: &str = "5.2.3.3180";
pub const RUNTIME_ZIP: &str = "Runtime_5.2.3.3180.zip";

/// The demo's agent certificate (RSA-2048, self-signed, PFX as OpenSSL 3 writes it), relative
/// to the root. Its private key is published with this source code: demo use only.
pub const DEMO_CERT: &str = "Certs/demo-agent.pfx";
/// The demo certificate's PFX password.
pub const DEMO_CERT_PASSWORD: &str = "usercube-demo";
const DEMO_PFX: &[u8] = include_bytes!("demo-agent.pfx");

/// The demo certificate, parsed from the PFX built into the binary. Parse it once per job
/// and pass it down (it is a value, not a process-wide cache).
pub fn demo_certificate() -> Certificate {
    Certificate::from_pfx_bytes(DEMO_PFX, DEMO_CERT_PASSWORD, DEMO_CERT)
        .expect("the embedded demo certificate loads")
}

/// The legacy (5.1) encryption of `plaintext` for `cert` (the demo certificate),
/// byte-identical for the same `seed` (a seeded generator: demo data only).
pub fn legacy_encrypted(cert: &Certificate, seed: u64, plaintext: &[u8]) -> io::Result<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5EED_DE70);
    let mut out = Vec::with_capacity(plaintext.len() + 300);
    encrypt_legacy_with_rng(cert, &mut rng, plaintext, &mut out).map_err(io::Error::other)?;
    Ok(out)
}

#[derive(Clone, Copy, Debug)]
pub struct DemoSize {
    /// Files in Runtime (and in the runtime zip), besides the named ones.
    pub files: usize,
    /// Total bytes of those files (each Runtime; the zip holds as many).
    pub bytes: u64,
    /// Rows per UJ table, for the database layer (see [`write_database`]).
    pub rows: u64,
}

impl Default for DemoSize {
    fn default() -> DemoSize {
        DemoSize {
            files: 300,
            bytes: 3 << 20,
            rows: 1000,
        }
    }
}

/// `2G`, `300M`, `64K`, `1000` -> bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("{s}: unknown size suffix {c} (K, M, G, T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|e| format!("{s}: not a size: {e}"))
}

fn deps_json(version: &str) -> String {
    format!(
        r#"{{
  "runtimeTarget": {{
    "name": ".NETCoreApp,Version=v8.0",
    "signature": ""
  }},
  "compilationOptions": {{}},
  "targets": {{
    ".NETCoreApp,Version=v8.0": {{
      "Usercube-Server/{version}": {{
        "dependencies": {{ "Usercube.Core": "{version}", "Microsoft.Data.SqlClient": "5.1.5" }},
        "runtime": {{ "Usercube-Server.dll": {{}} }}
      }}
    }}
  }},
  "libraries": {{
    "Usercube-Server/{version}": {{
      "type": "project",
      "serviceable": false,
      "sha512": ""
    }},
    "Microsoft.Data.SqlClient/5.1.5": {{
      "type": "package",
      "serviceable": true,
      "sha512": "sha512-6kvhQjY6uBHvFRU8YAR6zE0G0nD8Q6rVbVYxE7x1Kk4=",
      "path": "microsoft.data.sqlclient/5.1.5"
    }},
    "Usercube.Core/{version}": {{
      "type": "project",
      "serviceable": false,
      "sha512": ""
    }}
  }}
}}
"#
    )
}

const APPSETTINGS: &str = r#"{
  // Usercube server and integrated agent (demo installation written by usercube-upgrade)
  "ApplicationUri": "http://localhost:5000",
  "License": "DEMO-LICENSE-NOT-VALID",
  // demo: the embedded SQLite database (a real installation: "data source=.;Database=Usercube;Integrated Security=SSPI;Min Pool Size=10;")
  "ConnectionString": "sqlite:Database/Usercube.sqlite",
  "EncryptionCertificate": {
    // the agent's certificate (demo: a published key, see Certs/README.txt); its password
    // is given with --file-cert-password or USERCUBE_UPGRADE_CERT_PASSWORD
    "File": "../Certs/demo-agent.pfx"
  },
  "IdentityServer": {
    "X509KeyFilePath": "../Certs/identityserver.pfx"
  },
  "Agents": {
    "Local": { "Uri": "http://localhost:5000" }
  },
  "Serilog": {
    "MinimumLevel": { "Default": "Error", "Override": { "Usercube": "Information" } },
  },
  "Scheduler": { "Disabled": false },
}
"#;

const AGENT_SETTINGS: &str = r#"{
  // Connections to the managed systems (5.1: "InformationSystems")
  "OpenId": {
    "OpenIdClients": { "Job": "secret" }
  },
  "InformationSystems": {
    "AD_Paris": {
      "Servers": [
        { "Server": "paris.contoso.com", "BaseDN": "DC=paris,DC=com" }
      ],
      "AuthType": "Basic",
      "Login": "CONTOSO\\svc-usercube",
      "PageResult": 500
    },
    "HR_Csv": {
      "Path": "../Sources/hr.csv", // relative to Runtime: the guide asks for --runtime-path
      "Encoding": "UTF-8",
    },
    "SQLPayroll": {
      "ConnectionString": "data source=payroll;Database=Payroll;Integrated Security=SSPI;",
      "PageResult": 1000
    }
  }
}
"#;

const ENCRYPTED_AGENT_SETTINGS: &str = r#"{
  "InformationSystems": {
    "AD_Paris": {
      "Password": "kxABAHq3c0RlbW9FbmNyeXB0ZWRWYWx1ZU5vdEFSZWFsU2VjcmV0"
    }
  }
}
"#;

const WEB_CONFIG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <location path="." inheritInChildApplications="false">
    <system.webServer>
      <handlers><add name="aspNetCore" path="*" verb="*" modules="AspNetCoreModuleV2" resourceType="Unspecified" /></handlers>
      <aspNetCore processPath=".\Usercube-Server.exe" stdoutLogEnabled="false" hostingModel="inprocess" />
    </system.webServer>
  </location>
</configuration>
"#;

/// The Conf files: (relative path, content). Together they exercise every rule; one file
/// (Settings.xml) and a non-XML file are left unchanged.
const CONF: &[(&str, &str)] = &[
    (
        "Connectors/AD.xml",
        "\u{FEFF}<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<!-- Active Directory, Paris -->\r\n<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\r\n  <Connector Identifier=\"AD\" DisplayName_L1=\"Active Directory\" Agent=\"Local\" FilesAreNotEncrypted=\"false\"/>\r\n  <Connection Identifier=\"AD_Paris\" DisplayName_L1=\"AD Paris\" Connector=\"AD\" Package=\"Usercube.AD@0000001\"/>\r\n  <EntityType Identifier=\"AD_Entry\" DisplayName_L1=\"AD - Entry\">\r\n    <Property Identifier=\"manager\" DisplayName_L1=\"Manager\" Type=\"Option\" TargetEntityType=\"AD_Entry\"/>\r\n  </EntityType>\r\n</ConfigurationFile>\r\n",
    ),
    (
        "Connectors/HR.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n  <Connector Identifier=\"HR\" DisplayName_L1=\"HR\" Agent=\"Local\" FilesAreNotEncrypted=\"true\"/>\n  <Connection Identifier=\"HR_Csv\" DisplayName_L1=\"HR export\" Connector=\"HR\" Package=\"Usercube.CSV@0000001\" FilesAreNotEncrypted=\"true\"/>\n</ConfigurationFile>\n",
    ),
    (
        "AccessControl/Workflows.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n  <!-- notifications: 5.2 drops the trailing state -->\n  <AccessControlRule Profile=\"Administrator\" EntityType=\"Directory_User\" Identifier=\"Administrator_Notifications\">\n    <Entry Permission=\"/Custom/WorkflowsNotifications/Self_ChangeName/Review/Approved\" CanExecute=\"true\"/>\n    <Entry Permission=\"/Custom/WorkflowsNotifications/Helpdesk_Reset/Request\" CanExecute=\"true\"/>\n    <Entry Permission=\"/Connectors/SynchronizeSession\" CanExecute=\"true\"/>\n  </AccessControlRule>\n</ConfigurationFile>\n",
    ),
    (
        "Risks.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n  <Risk Identifier=\"R_Admins\" DisplayName_L1=\"Administrators\" TargettedRisk=\"High\"/>\n  <TargettedRisk Identifier=\"TR_1\" Risk=\"R_Admins\"></TargettedRisk>\n</ConfigurationFile>\n",
    ),
    (
        "Jobs.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n  <Job Identifier=\"AD_Paris_Sync\" Agent=\"Local\" CronTabExpression=\"0 */2 * * *\">\n    <Step Identifier=\"Export\" Level=\"0\" Connection=\"AD_Paris\"/>\n    <Step Identifier=\"Fulfill\" Level=\"1\" ConnectionIdentifier=\"HR_Csv\"/>\n  </Job>\n  <ExportTask Identifier=\"AD_Paris_Export\" Connection=\"AD_Paris\">\n    <TaskEntityType EntityType=\"AD_Entry\" Order=\"1\"/>\n  </ExportTask>\n</ConfigurationFile>\n",
    ),
    (
        "Settings.xml",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n  <!-- nothing here changes in 5.2: copied byte for byte -->\n  <Setting Identifier=\"Theme\" Value=\"Contoso\"/>\n</ConfigurationFile>\n",
    ),
    (
        "README.txt",
        "Contoso Usercube configuration, deployed with Usercube-Deploy-Configuration.\n",
    ),
];

/// Writes the demo installation into `root` (absent or empty).
pub fn create(root: &Path, size: DemoSize) -> io::Result<()> {
    let cert = demo_certificate();
    let rt = root.join("Runtime");
    for d in ["wwwroot/js", "runtimes/win-x64/native", "Sources"] {
        fs::create_dir_all(if d == "Sources" {
            root.join(d)
        } else {
            rt.join(d)
        })?;
    }
    fs::write(rt.join("Usercube-Server.deps.json"), deps_json(OLD_VERSION))?;
    fs::write(rt.join("appsettings.json"), APPSETTINGS)?;
    fs::write(rt.join("appsettings.agent.json"), AGENT_SETTINGS)?;
    fs::write(
        rt.join("appsettings.encrypted.agent.json"),
        ENCRYPTED_AGENT_SETTINGS,
    )?;
    fs::write(rt.join("web.config"), WEB_CONFIG)?;
    fs::write(
        rt.join("tracked-accounts-ADParis.csv"),
        legacy_encrypted(
            &cert,
            7,
            b"dn;lastSeen\ncn=alice,ou=users,dc=paris,dc=com;2026-11-20\ncn=bob,ou=users,dc=paris,dc=com;2026-11-21\n",
        )?,
    )?;
    fs::write(
        rt.join("tracked-accounts-HR.csv"),
        "EmployeeId;lastSeen\n1;2026-11-20\n2;2026-11-21\n",
    )?;
    fs::create_dir_all(root.join("Certs"))?;
    fs::write(root.join(DEMO_CERT), DEMO_PFX)?;
    fs::write(
        root.join("Certs/README.txt"),
        format!("demo-agent.pfx: the demo's agent certificate (password {DEMO_CERT_PASSWORD}).\nIts private key is published with usercube-upgrade's source code: demo use only.\n"),
    )?;
    fs::write(
        root.join("Sources/hr.csv"),
        "EmployeeId;Name\n1;Alice\n2;Bob\n",
    )?;
    write_runtime_files(size, 0, |name, bytes| {
        let p = rt.join(name);
        fs::write(p, bytes)
    })?;

    for (rel, text) in CONF {
        let p = root.join("Conf").join(rel);
        fs::create_dir_all(p.parent().expect("has a parent"))?;
        fs::write(p, text)?;
    }

    let temp = root.join("Temp");
    let plain = |seed: u64, n: usize| {
        let mut v = b"Id;Value\n".to_vec();
        for (i, c) in pseudo_random::bytes(n, seed).chunks(12).enumerate() {
            v.extend_from_slice(format!("{i};{}\n", hex::encode(c)).as_bytes());
        }
        v
    };
    let encrypted = |seed: u64, n: usize| legacy_encrypted(&cert, seed, &plain(seed, n));
    let folders: &[(&str, usize, bool)] = &[
        ("Collect", 6, false),
        ("ExportOutput", 6, true),
        ("ProvisioningOrders", 4, false),
        ("Synchronization", 3, true),
        ("ExportCookies", 3, false),
        ("FulfillPowerShell", 2, false),
        ("JobLogs", 4, false),
    ];
    for (k, (dir, n, enc)) in folders.iter().enumerate() {
        let d = temp.join(dir);
        fs::create_dir_all(&d)?;
        for i in 0..*n {
            let seed = (k * 100 + i) as u64;
            let (name, bytes) = if *enc && i % 2 == 0 {
                (format!("AD_Paris_{dir}_{i}.csv"), encrypted(seed, 600)?)
            } else {
                (format!("HR_Csv_{dir}_{i}.csv"), plain(seed, 300))
            };
            fs::write(d.join(name), bytes)?;
        }
    }
    fs::create_dir_all(root.join("Work"))?;
    write_zip(&root.join(RUNTIME_ZIP), size)?;
    write_database(root, size.rows)?;
    Ok(())
}

/// Folder of [`add_encrypted_files`]'s files, relative to the root.
pub const BULK_ENCRYPTED_DIR: &str = "Temp/ExportOutput";

/// Adds `count` legacy-encrypted CSV exports of 4 to 16 KiB of plaintext to
/// [`BULK_ENCRYPTED_DIR`] (`demo --encrypted-files N`): the thousands of small encrypted
/// files a real agent installation holds, which the re-encryption step converts.
/// Deterministic, like the rest of the demo.
pub fn add_encrypted_files(root: &Path, count: usize) -> io::Result<()> {
    let dir = root.join(BULK_ENCRYPTED_DIR);
    fs::create_dir_all(&dir)?;
    let cert = demo_certificate();
    for i in 0..count {
        let seed = 1_000_000 + i as u64;
        let len = 4096 + (i * 7919) % (12 * 1024 + 1);
        let mut plain = b"Id;Value\n".to_vec();
        for (k, c) in pseudo_random::bytes(len, seed).chunks(12).enumerate() {
            if plain.len() >= len {
                break;
            }
            plain.extend_from_slice(format!("{k};{}\n", hex::encode(c)).as_bytes());
        }
        plain.truncate(len);
        fs::write(
            dir.join(format!("AD_Bulk_{i:05}.csv")),
            legacy_encrypted(&cert, seed, &plain)?,
        )?;
    }
    Ok(())
}

/// The Runtime's bulk files (`generation` changes their content: 0 old, 1 new).
fn write_runtime_files(
    size: DemoSize,
    generation: u64,
    mut put: impl FnMut(&str, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let each = (size.bytes / size.files.max(1) as u64) as usize;
    for i in 0..size.files {
        let name = match i % 10 {
            0 => format!("wwwroot/js/chunk-{i:05}.js"),
            1 => format!("runtimes/win-x64/native/Native{i:05}.dll"),
            _ => format!("Usercube.Module{i:05}.dll"),
        };
        put(
            &name,
            &pseudo_random::bytes(each, i as u64 * 31 + generation),
        )?;
    }
    Ok(())
}

fn write_zip(path: &Path, size: DemoSize) -> io::Result<()> {
    let mut z = zip::ZipWriter::new(fs::File::create(path)?);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    z.start_file("Usercube-Server.deps.json", opts)
        .map_err(io::Error::other)?;
    z.write_all(deps_json(NEW_VERSION).as_bytes())?;
    z.start_file("web.config", opts).map_err(io::Error::other)?;
    z.write_all(WEB_CONFIG.as_bytes())?;
    write_runtime_files(size, 1, |name, bytes| {
        z.start_file(name, opts).map_err(io::Error::other)?;
        z.write_all(bytes)
    })?;
    z.finish().map_err(io::Error::other)?;
    Ok(())
}

/// The demo database, relative to the root (the demo's `ConnectionString` is
/// `sqlite:Database/Usercube.sqlite`).
pub const DATABASE: &str = "Database/Usercube.sqlite";

/// The demo's schema: the three UJ tables the guide empties (shaped like Usercube's), a
/// table the upgrade leaves alone, and the version table the database steps read.
const SCHEMA: &str = "
CREATE TABLE UM_DatabaseVersion (Id INTEGER NOT NULL PRIMARY KEY, Version NVARCHAR(32) NOT NULL, AppliedAt NVARCHAR(32) NOT NULL);
CREATE TABLE UJ_Jobs (Id BIGINT NOT NULL PRIMARY KEY, Identifier NVARCHAR(442) NOT NULL, DisplayName_L1 NVARCHAR(442) NULL);
CREATE TABLE UJ_TaskEntityTypes (Id BIGINT NOT NULL PRIMARY KEY, Task_Id BIGINT NOT NULL, EntityType_Id BIGINT NULL, ValidFrom NVARCHAR(32) NULL);
CREATE TABLE UJ_TaskResourceTypes (Id BIGINT NOT NULL PRIMARY KEY, Task_Id BIGINT NOT NULL, ResourceType_Id BIGINT NULL, Comment NVARCHAR(200) NULL);
CREATE TABLE UJ_JobSteps (Id BIGINT NOT NULL PRIMARY KEY, Task_Id BIGINT NULL, Job_Id BIGINT NOT NULL, LaunchOrder INT NULL, [Level] INT NULL, Name NVARCHAR(200) NULL, Data VARBINARY(64) NULL, Weight FLOAT NULL);
";

/// The `i`-th demo id: large (beyond 32 bits), negative and small ids, all distinct.
fn demo_id(i: u64) -> i64 {
    let i = i as i64;
    match i % 3 {
        0 => 2_147_483_648 + i,
        1 => -i,
        _ => i,
    }
}

/// Writes the demo's SQLite database at `root/DATABASE` with `rows` rows in each UJ table
/// the guide empties: ids past 2^31 and negative ids, NULLs, non-ASCII text, blobs.
/// Deterministic: the same `rows` gives the same rows.
pub fn write_database(root: &Path, rows: u64) -> io::Result<PathBuf> {
    let path = root.join(DATABASE);
    fs::create_dir_all(path.parent().expect("has a parent"))?;
    let sq = |e: rusqlite::Error| io::Error::other(format!("{}: {e}", path.display()));
    let mut conn = rusqlite::Connection::open(&path).map_err(sq)?;
    conn.execute_batch(SCHEMA).map_err(sq)?;
    let tx = conn.transaction().map_err(sq)?;
    tx.execute(
        "INSERT INTO UM_DatabaseVersion (Id, Version, AppliedAt) VALUES (1, ?1, '2026-06-01T08:00:00')",
        [OLD_VERSION],
    )
    .map_err(sq)?;
    tx.execute_batch(
        "INSERT INTO UJ_Jobs VALUES (1, 'AD_Paris_Sync', 'Synchronisation AD Paris — complète');
         INSERT INTO UJ_Jobs VALUES (2147483648, 'HR_Csv_Export', NULL);",
    )
    .map_err(sq)?;
    {
        let mut te = tx
            .prepare("INSERT INTO UJ_TaskEntityTypes VALUES (?1, ?2, ?3, ?4)")
            .map_err(sq)?;
        let mut tr = tx
            .prepare("INSERT INTO UJ_TaskResourceTypes VALUES (?1, ?2, ?3, ?4)")
            .map_err(sq)?;
        let mut js = tx
            .prepare("INSERT INTO UJ_JobSteps VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(sq)?;
        for i in 0..rows {
            let id = demo_id(i);
            let task = (i / 4) as i64 + 1;
            let null_every = |k: u64, v: i64| (i % k != k - 1).then_some(v);
            te.execute(rusqlite::params![
                id,
                task,
                null_every(5, i as i64 * 7),
                (i % 2 == 0).then(|| format!("2026-{:02}-{:02}", i % 12 + 1, i % 28 + 1)),
            ])
            .map_err(sq)?;
            tr.execute(rusqlite::params![
                id,
                task,
                null_every(4, -(i as i64)),
                (i % 3 != 2).then(|| format!("ressource n°{i} — Zürich 東京 ✓")),
            ])
            .map_err(sq)?;
            js.execute(rusqlite::params![
                id,
                null_every(6, task),
                if i % 2 == 0 { 1i64 } else { 2_147_483_648 },
                (i % 10) as i64,
                null_every(3, (i % 4) as i64),
                (i % 7 != 6).then(|| format!("Étape {i}: exporter « AD_Paris » → Work")),
                (i % 5 != 4).then(|| pseudo_random::bytes(16 + (i % 48) as usize, i)),
                (i % 8 != 7).then_some(i as f64 / 8.0 - 3.25),
            ])
            .map_err(sq)?;
        }
    }
    tx.commit().map_err(sq)?;
    drop(conn);
    // The database file is durable before the demo says it is written.
    crate::durable_fs::fsync_file(&path)?;
    Ok(path)
}

/// The command line that plans (`"plan"`) or upgrades (`"run"`) the demo at `root`, program
/// name first: the one source of what `demo` prints (quoted by `platform::command_line`) and
/// of what it runs (parsed by the command line's own definitions). The demo's zip holds no
/// vendor schema tool (`identitymanager-Upgrade-DatabaseVersion.exe`): the command says so
/// with `--skip-database-upgrade`. The password is the demo certificate's, published.
pub fn command(root: &Path, subcommand: &str) -> Vec<std::ffi::OsString> {
    // Joined, not formatted with '/': a Windows root is `\\?\C:\...`, where '/' is no separator.
    let os = std::ffi::OsString::from;
    vec![
        os("usercube-upgrade"),
        os(subcommand),
        os("--root"),
        root.into(),
        os("--mode"),
        os("integrated"),
        os("--runtime-zip"),
        root.join(RUNTIME_ZIP).into(),
        os("--runtime-path"),
        root.join("Runtime").into(),
        os("--skip-database-upgrade"),
        os("--file-cert-file"),
        root.join(DEMO_CERT).into(),
        os("--file-cert-password"),
        os(DEMO_CERT_PASSWORD),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("3X").is_err());
    }
}
