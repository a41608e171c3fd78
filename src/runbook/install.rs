//! Installation discovery: which product is installed and in which version, read the way
//! .NET records it (the `libraries` entry `Usercube-Server/<version>` of
//! `Runtime/Usercube-Server.deps.json`, or `Usercube-Agent/<version>` of
//! `Runtime/Usercube-Agent.deps.json`), and the same for the new runtime zip.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::crypto;

/// The installation's runtime folder, as the guide names it.
pub const RUNTIME: &str = "Runtime";
/// The name the guide gives the old runtime folder at its step 3 (the plans' rename).
pub const OLD_RUNTIME: &str = "RuntimeOld";

/// The installation root when `here` is its runtime folder: `Runtime` (where the guide runs
/// its tools) or `RuntimeOld` (the same folder once the run renamed it: the shell that typed
/// the run stands there), holding the server's or the agent's `.deps.json`; its parent.
pub fn root_of_runtime_folder(here: &Path) -> Option<PathBuf> {
    let name = here.file_name()?.to_string_lossy();
    let runtime = [RUNTIME, OLD_RUNTIME]
        .iter()
        .any(|r| crate::platform::same_name(&name, r))
        && [Product::Server, Product::Agent]
            .iter()
            .any(|p| here.join(p.deps_file()).is_file());
    if !runtime {
        return None;
    }
    here.parent().map(Path::to_path_buf)
}

/// The product whose deps.json is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Product {
    Server,
    Agent,
}

impl Product {
    pub fn deps_file(self) -> &'static str {
        match self {
            Product::Server => "Usercube-Server.deps.json",
            Product::Agent => "Usercube-Agent.deps.json",
        }
    }

    pub fn library(self) -> &'static str {
        match self {
            Product::Server => "Usercube-Server",
            Product::Agent => "Usercube-Agent",
        }
    }
}

/// A version found in a deps.json, with where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub product: Product,
    pub version: String,
    /// The file (or `zip!entry`) it was read from.
    pub source: String,
}

impl Found {
    /// True when the version is `major.minor.patch` or `major.minor.patch.*`.
    pub fn is(&self, prefix: &str) -> bool {
        version_is(&self.version, prefix)
    }
}

/// True when `version` is `prefix` (`major.minor.patch`) or `prefix.*`.
pub fn version_is(version: &str, prefix: &str) -> bool {
    version == prefix || version.starts_with(&format!("{prefix}."))
}

/// The version recorded in a deps.json text for `product`, or why there is none.
pub fn version_in_deps(text: &str, product: Product, source: &str) -> Result<Found, String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("{source}:{}:{}: not valid JSON: {e}", e.line(), e.column()))?;
    let libs = v
        .get("libraries")
        .and_then(|l| l.as_object())
        .ok_or_else(|| format!("{source}: no \"libraries\" object"))?;
    let prefix = format!("{}/", product.library());
    libs.keys()
        .find_map(|k| k.strip_prefix(&prefix))
        .map(|version| Found {
            product,
            version: version.to_string(),
            source: source.to_string(),
        })
        .ok_or_else(|| format!("{source}: no \"libraries\" entry {}<version>", prefix))
}

/// The installed version: `Runtime/Usercube-Server.deps.json`, else the agent's.
/// `want` restricts the product (agent mode reads the agent's file first).
pub fn installed(runtime: &Path, prefer: Product) -> Result<Found, String> {
    let order = match prefer {
        Product::Server => [Product::Server, Product::Agent],
        Product::Agent => [Product::Agent, Product::Server],
    };
    for product in order {
        let file = runtime.join(product.deps_file());
        if file.is_file() {
            let text = crate::limits::read_text_limited(
                &file,
                crate::limits::MAX_JSON_BYTES,
                "JSON files",
            )
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
            return version_in_deps(&text, product, &file.display().to_string());
        }
    }
    Err(format!(
        "{}: neither {} nor {} found: cannot tell the installed version",
        runtime.display(),
        order[0].deps_file(),
        order[1].deps_file()
    ))
}

/// The version inside the runtime zip (its top-level `Usercube-*.deps.json`), and the
/// names of its top-level entries (to know whether it ships appsettings files).
pub struct ZipInfo {
    pub found: Found,
    pub names: Vec<String>,
    /// Entries whose setuid, setgid or sticky bits extraction strips (a warning each).
    pub stripped: Vec<String>,
}

pub fn runtime_zip(zip_path: &Path, prefer: Product) -> Result<ZipInfo, String> {
    let show = zip_path.display().to_string();
    let f = std::fs::File::open(zip_path).map_err(|e| format!("{show}: cannot open: {e}"))?;
    let mut z =
        zip::ZipArchive::new(f).map_err(|e| format!("{show}: not a readable zip archive: {e}"))?;
    let names: Vec<String> = z.file_names().map(str::to_string).collect();
    // Symbolic link entries are refused here, before any change (extraction refuses them
    // too); special mode bits are stripped by extraction.
    let stripped =
        crate::steps::extract_zip::check_entries(&mut z).map_err(|e| format!("{show}: {e}"))?;
    // Every entry's size readable before any change, as the extraction's space check reads it.
    crate::steps::extract_zip::entries_size(&mut z)
        .map_err(|e| format!("{show}: not a readable zip archive: {e}"))?;
    let order = match prefer {
        Product::Server => [Product::Server, Product::Agent],
        Product::Agent => [Product::Agent, Product::Server],
    };
    for product in order {
        let name = product.deps_file();
        let Ok(mut entry) = z.by_name(name) else {
            continue;
        };
        // Bounded: the entry's declared size is not trusted.
        let text =
            crate::limits::read_bounded(&mut entry, crate::limits::MAX_JSON_BYTES, "JSON files")
                .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
                .map_err(|e| format!("{show}!{name}: cannot read: {e}"))?;
        let found = version_in_deps(&text, product, &format!("{show}!{name}"))?;
        return Ok(ZipInfo {
            found,
            names,
            stripped,
        });
    }
    Err(format!(
        "{show}: holds no {} at its top level: not a Usercube runtime zip",
        order[0].deps_file()
    ))
}

/// The appsettings files of a runtime folder, in the order the agent merges them.
pub const APPSETTINGS_FILES: &[&str] = &[
    "appsettings.json",
    "appsettings.agent.json",
    "appsettings.encrypted.agent.json",
    "appsettings.cyberArk.agent.json",
];

/// The appsettings files present in `runtime` (known names first, then any other
/// `appsettings*.json`, sorted).
pub fn appsettings_files(runtime: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = APPSETTINGS_FILES
        .iter()
        .map(|n| runtime.join(n))
        .filter(|p| p.is_file())
        .collect();
    let mut others: Vec<PathBuf> = std::fs::read_dir(runtime)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("appsettings")
                        && n.ends_with(".json")
                        && !APPSETTINGS_FILES.contains(&n)
                })
        })
        .collect();
    others.sort();
    out.extend(others);
    out
}

/// `tracked-accounts-*.csv` files of a runtime folder, sorted.
pub fn tracked_accounts(runtime: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(runtime)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("tracked-accounts-") && n.ends_with(".csv"))
        .collect();
    v.sort();
    v
}

/// Files under `dir` that start as a legacy-encrypted file does ([`crypto::is_legacy`]),
/// sorted, relative to `base`.
pub fn encrypted_files(dir: &Path, base: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
    {
        let mut head = [0u8; 4];
        let ok = std::fs::File::open(e.path())
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok();
        if ok && crypto::is_legacy(&head) {
            v.push(
                e.path()
                    .strip_prefix(base)
                    .unwrap_or(e.path())
                    .to_path_buf(),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_from_the_libraries_entry() {
        let t =
            r#"{"libraries": {"Foo/1.0": {}, "Usercube-Server/5.1.7.1234": {"type": "project"}}}"#;
        let f = version_in_deps(t, Product::Server, "d.json").unwrap();
        assert_eq!(f.version, "5.1.7.1234");
        assert!(f.is("5.1.7") && !f.is("5.1.8") && !f.is("5.1.71"));
        let e = version_in_deps(t, Product::Agent, "d.json").unwrap_err();
        assert!(e.contains("Usercube-Agent/<version>"), "{e}");
        let e =
            version_in_deps("{\n  \"libraries\": [,]\n}", Product::Server, "d.json").unwrap_err();
        assert!(e.starts_with("d.json:2:"), "{e}");
    }
}
