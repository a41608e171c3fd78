//! The built-in sample: a small 5.1.7-shaped installation and a plan that exercises every
//! step kind the way the upgrade will (rename Runtime, extract the new runtime, copy the
//! appsettings, move Temp folders to Work, delete Temp/Collect, rewrite a settings file).
//! It is the embedded default of `usercube-upgrade demo` until the real 5.1.7 -> 5.2.3
//! runbook lands, and the representative plan of the crash tests.

#[cfg(any(test, feature = "testing"))]
use std::fs;
#[cfg(any(test, feature = "testing"))]
use std::io::{self, Write};
#[cfg(any(test, feature = "testing"))]
use std::path::Path;

use crate::plan::{Plan, StepSpec};
#[cfg(any(test, feature = "testing"))]
use crate::pseudo_random::Xorshift64;

pub const RUNTIME_ZIP: &str = "Runtime_5.2.3.100.zip";

#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Copy, Debug)]
pub struct SampleSize {
    /// Files in Runtime (and in the runtime zip).
    pub runtime_files: usize,
    /// Bytes of each of those files.
    pub file_bytes: usize,
}

#[cfg(any(test, feature = "testing"))]
impl Default for SampleSize {
    fn default() -> SampleSize {
        SampleSize {
            runtime_files: 40,
            file_bytes: 2048,
        }
    }
}

#[cfg(any(test, feature = "testing"))]
/// Deterministic filler so trees are reproducible byte for byte.
fn filler(seed: usize, len: usize) -> Vec<u8> {
    let mut r = Xorshift64::seeded(seed as u64);
    (0..len).map(|_| b'a' + (r.next_u64() % 26) as u8).collect()
}

const APPSETTINGS: &str = r#"{
  // Usercube server settings (sample)
  "ApplicationUri": "http://localhost:5000",
  "ConnectionString": "sqlite:usercube.db",
  "EncryptionCertificate": { "File": "../Certs/agent.pfx", "Password": "secret" }
}
"#;

#[cfg(any(test, feature = "testing"))]
const AGENT_SETTINGS: &str = r#"{
  "InformationSystems": {
    "AD_Paris": { "Servers": [ { "Server": "paris.contoso.com" } ] },
    "CsvHR": { "Path": "../Sources/hr.csv" }
  }
}
"#;

#[cfg(any(test, feature = "testing"))]
/// Writes the sample installation into `root` (which must be empty or absent).
pub fn create_installation(root: &Path, size: SampleSize) -> io::Result<()> {
    let rt = root.join("Runtime");
    fs::create_dir_all(rt.join("wwwroot"))?;
    fs::write(rt.join("Usercube-Server.deps.json"), deps_json("5.1.7.100"))?;
    fs::write(rt.join("appsettings.json"), APPSETTINGS)?;
    fs::write(rt.join("appsettings.agent.json"), AGENT_SETTINGS)?;
    fs::write(
        rt.join("tracked-accounts-ADParis.csv"),
        "dn;lastSeen\ncn=a;2026-01-01\n",
    )?;
    for i in 0..size.runtime_files {
        let dir = if i % 4 == 0 {
            rt.join("wwwroot")
        } else {
            rt.clone()
        };
        fs::write(
            dir.join(format!("Usercube.Module{i:04}.dll")),
            filler(i, size.file_bytes),
        )?;
    }
    let conf = root.join("Conf");
    fs::create_dir_all(conf.join("Connectors"))?;
    fs::write(
        conf.join("Connectors/AD.xml"),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n  <Connection Identifier=\"AD_Paris\" Connector=\"AD\" FilesAreNotEncrypted=\"true\"/>\n</ConfigurationFile>\n",
    )?;
    for sub in ["Collect", "ProvisioningOrders", "ExportOutput"] {
        let d = root.join("Temp").join(sub);
        fs::create_dir_all(&d)?;
        for i in 0..3 {
            fs::write(d.join(format!("{sub}-{i}.csv")), filler(i + 1000, 300))?;
        }
    }
    fs::create_dir_all(root.join("Work"))?;
    write_runtime_zip(&root.join(RUNTIME_ZIP), size)
}

#[cfg(any(test, feature = "testing"))]
fn deps_json(version: &str) -> String {
    format!(
        "{{\n  \"runtimeTarget\": {{ \"name\": \".NETCoreApp,Version=v8.0\" }},\n  \"libraries\": {{\n    \"Usercube-Server/{version}\": {{ \"type\": \"project\" }}\n  }}\n}}\n"
    )
}

#[cfg(any(test, feature = "testing"))]
fn write_runtime_zip(path: &Path, size: SampleSize) -> io::Result<()> {
    let mut z = zip::ZipWriter::new(fs::File::create(path)?);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let mut add = |name: &str, bytes: &[u8]| -> io::Result<()> {
        z.start_file(name, opts).map_err(io::Error::other)?;
        z.write_all(bytes)
    };
    add(
        "Usercube-Server.deps.json",
        deps_json("5.2.3.100").as_bytes(),
    )?;
    for i in 0..size.runtime_files {
        let dir = if i % 4 == 0 { "wwwroot/" } else { "" };
        add(
            &format!("{dir}Usercube.Module{i:04}.dll"),
            &filler(i + 7, size.file_bytes),
        )?;
    }
    z.finish().map_err(io::Error::other)?;
    Ok(())
}

/// The sample plan, with the vendor guide's step numbers (integrated installation).
pub fn plan() -> Plan {
    let p = |s: &str| std::path::PathBuf::from(s);
    let migrated = APPSETTINGS.replace(
        "\"ConnectionString\"",
        "\"TempFolderPath\": \"../Temp\",\n  \"WorkFolderPath\": \"../Work\",\n  \"ConnectionString\"",
    );
    Plan::new(
        "sample upgrade (built-in demo plan)",
        vec![
            (
                Some("3.2"),
                None,
                StepSpec::Rename {
                    from: p("Runtime"),
                    to: p("RuntimeOld"),
                },
            ),
            (
                Some("3.3"),
                None,
                StepSpec::ExtractZip {
                    archive: p(RUNTIME_ZIP),
                    dest: p("Runtime"),
                },
            ),
            (
                Some("4.4"),
                None,
                StepSpec::Copy {
                    from: p("RuntimeOld/appsettings.json"),
                    to: p("Runtime/appsettings.json"),
                },
            ),
            (
                Some("4.4"),
                None,
                StepSpec::Copy {
                    from: p("RuntimeOld/appsettings.agent.json"),
                    to: p("Runtime/appsettings.agent.json"),
                },
            ),
            (
                Some("5.2"),
                Some("moved into the journal trash, purged at finalize"),
                StepSpec::DeleteTree {
                    path: p("Temp/Collect"),
                },
            ),
            (
                Some("5.3"),
                None,
                StepSpec::MoveTree {
                    from: p("Temp/ProvisioningOrders"),
                    to: p("Work/ProvisioningOrders"),
                },
            ),
            (
                Some("5.3"),
                None,
                StepSpec::Copy {
                    from: p("RuntimeOld/tracked-accounts-ADParis.csv"),
                    to: p("Work/tracked-accounts-ADParis.csv"),
                },
            ),
            (
                Some("5.1"),
                None,
                StepSpec::WriteFile {
                    path: p("Runtime/appsettings.json"),
                    content: migrated.into_bytes().into(),
                },
            ),
            (
                Some("9.1"),
                None,
                StepSpec::Rename {
                    from: p("Conf"),
                    to: p("ConfOld"),
                },
            ),
            (
                Some("9.3"),
                None,
                StepSpec::Copy {
                    from: p("ConfOld"),
                    to: p("Conf"),
                },
            ),
        ],
    )
}
