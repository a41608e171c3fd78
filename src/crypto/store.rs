//! Certificate store lookup: on Windows the OS store (`platform::find_store_certificate`:
//! the private key stays in CNG), unless a folder is named; elsewhere, following .NET on Linux:
//!
//! * `CurrentUser`: .NET keeps each store as a folder of PFX files named `<THUMBPRINT>.pfx`
//!   (empty password) under `~/.dotnet/corefx/cryptography/x509stores/<storename lower-case>/`.
//! * `LocalMachine`: .NET on Linux has no writable machine store holding private keys
//!   (`LocalMachine\My` is unsupported; `Root`/`CA` map to the OpenSSL trust bundle, without
//!   keys). By convention this tool uses the same layout under
//!   `/etc/usercube-upgrade/x509stores/<storename lower-case>/` (override with `$USERCUBE_UPGRADE_MACHINE_STORE`
//!   as the parent of the store folders).
//! * An explicit `store_path` overrides both: it is the folder holding the PFX files.

use std::path::{Path, PathBuf};

use super::{Certificate, CryptoError};

/// Default parent folder of the `LocalMachine` stores (see module docs).
pub const LOCAL_MACHINE_STORE_ROOT: &str = "/etc/usercube-upgrade/x509stores";
/// Environment variable overriding [`LOCAL_MACHINE_STORE_ROOT`].
pub const LOCAL_MACHINE_STORE_ENV: &str = "USERCUBE_UPGRADE_MACHINE_STORE";

/// `StoreLocation` as written in Usercube's `appsettings.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreLocation {
    CurrentUser,
    LocalMachine,
}

impl std::str::FromStr for StoreLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "currentuser" => Ok(StoreLocation::CurrentUser),
            "localmachine" => Ok(StoreLocation::LocalMachine),
            _ => Err(format!(
                "unknown StoreLocation {s:?} (expected CurrentUser or LocalMachine)"
            )),
        }
    }
}

/// The folder searched for `store_name` at `location` (or `store_path` when given).
/// `None` only when `CurrentUser` is asked and `$HOME` is unset.
pub fn store_folder(
    location: StoreLocation,
    store_name: &str,
    store_path: Option<&Path>,
) -> Option<PathBuf> {
    if let Some(p) = store_path {
        return Some(p.to_path_buf());
    }
    let name = store_name.to_lowercase();
    match location {
        StoreLocation::CurrentUser => {
            let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
            Some(
                PathBuf::from(home)
                    .join(".dotnet/corefx/cryptography/x509stores")
                    .join(name),
            )
        }
        StoreLocation::LocalMachine => {
            let root = std::env::var_os(LOCAL_MACHINE_STORE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(LOCAL_MACHINE_STORE_ROOT));
            Some(root.join(name))
        }
    }
}

/// Normalises a thumbprint: drops whitespace, `:` and the invisible marks Windows' certificate
/// dialog adds when copying; uppercases; checks it is 40 hex digits.
pub fn normalize_thumbprint(thumbprint: &str) -> Result<String, CryptoError> {
    let t: String = thumbprint
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, ':' | '\u{200E}' | '\u{200F}' | '\u{FEFF}'))
        .collect::<String>()
        .to_uppercase();
    if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CryptoError::InvalidThumbprint {
            thumbprint: thumbprint.to_string(),
        });
    }
    Ok(t)
}

/// Finds the certificate with `thumbprint` (case-insensitive, spaces ignored) in a store.
///
/// Looks for `<THUMBPRINT>.pfx` (any case) in the store folder, opened with an empty password
/// as .NET writes them; if no file is so named, every `*.pfx` of the folder that opens with an
/// empty password is checked by its computed thumbprint.
pub fn find_in_store(
    thumbprint: &str,
    location: StoreLocation,
    store_name: &str,
    store_path: Option<&Path>,
) -> Result<Certificate, CryptoError> {
    let wanted = normalize_thumbprint(thumbprint)?;
    let not_found = |searched: PathBuf| CryptoError::CertificateNotFound {
        thumbprint: wanted.clone(),
        searched,
    };
    // Windows: the OS store, whose private keys stay in CNG (unless a folder is named).
    if let (Some(os_store), None) = (crate::platform::OS_CERT_STORE, store_path) {
        let place = format!("{location:?}\\{store_name}");
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(&wanted, &mut bytes)
            .map_err(|e| CryptoError::io(place.clone(), std::io::Error::other(e)))?;
        let local_machine = location == StoreLocation::LocalMachine;
        return match crate::platform::find_store_certificate(local_machine, store_name, &bytes) {
            Ok(Some((der, key))) => Certificate::from_os_store(der, key, &place),
            Ok(None) => Err(not_found(PathBuf::from(format!("{os_store}, {place}")))),
            Err(e) => Err(CryptoError::io(place, e)),
        };
    }
    let folder = store_folder(location, store_name, store_path).ok_or_else(|| {
        not_found(PathBuf::from(
            "~/.dotnet/corefx/cryptography/x509stores (HOME unset)",
        ))
    })?;
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(folder)),
        Err(e) => return Err(CryptoError::io(folder.display().to_string(), e)),
    };
    let mut pfx_files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("pfx")))
        .collect();
    pfx_files.sort();
    // 1. By file name, as .NET names them.
    if let Some(p) = pfx_files.iter().find(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .is_some_and(|s| s.eq_ignore_ascii_case(&wanted))
    }) {
        let cert = Certificate::from_pfx(p, "")?;
        if cert.thumbprint() == wanted {
            return Ok(cert);
        }
    }
    // 2. Any other PFX whose content has that thumbprint.
    for p in &pfx_files {
        if let Ok(cert) = Certificate::from_pfx(p, "") {
            if cert.thumbprint() == wanted {
                return Ok(cert);
            }
        }
    }
    Err(not_found(folder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{cert_a, fixture};

    fn store_with(files: &[(&Path, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (src, name) in files {
            std::fs::copy(src, dir.path().join(name)).unwrap();
        }
        dir
    }

    #[test]
    fn finds_by_thumbprint_file_name() {
        let f = fixture();
        let tp = cert_a().thumbprint();
        let store = store_with(&[(&f.pfx_a_empty, &format!("{tp}.pfx"))]);
        // Lower case with spaces, as pasted from a Windows dialog.
        let spaced: String = tp
            .to_lowercase()
            .chars()
            .enumerate()
            .flat_map(|(i, c)| (i % 2 == 0 && i > 0).then_some(' ').into_iter().chain([c]))
            .collect();
        let c = find_in_store(
            &format!("\u{200E}{spaced}"),
            StoreLocation::CurrentUser,
            "My",
            Some(store.path()),
        )
        .unwrap();
        assert_eq!(c.thumbprint(), tp);
    }

    #[test]
    fn finds_by_content_when_file_name_differs() {
        let f = fixture();
        let store = store_with(&[(&f.pfx_a_empty, "whatever.PFX")]);
        let c = find_in_store(
            &cert_a().thumbprint(),
            StoreLocation::LocalMachine,
            "My",
            Some(store.path()),
        )
        .unwrap();
        assert_eq!(c.thumbprint(), cert_a().thumbprint());
    }

    #[test]
    fn not_found_names_the_folder() {
        let f = fixture();
        let store = store_with(&[(&f.pfx_a_empty, "x.pfx"), (&f.pfx_default, "y.pfx")]);
        let missing = "00".repeat(20);
        match find_in_store(
            &missing,
            StoreLocation::CurrentUser,
            "My",
            Some(store.path()),
        ) {
            Err(e @ CryptoError::CertificateNotFound { .. }) => {
                assert!(
                    e.to_string().contains(&store.path().display().to_string()),
                    "{e}"
                );
            }
            other => panic!("expected CertificateNotFound, got {other:?}"),
        }
        let gone = store.path().join("nope");
        assert!(matches!(
            find_in_store(&missing, StoreLocation::CurrentUser, "My", Some(&gone)),
            Err(CryptoError::CertificateNotFound { .. })
        ));
        assert!(matches!(
            find_in_store("abc", StoreLocation::CurrentUser, "My", Some(store.path())),
            Err(CryptoError::InvalidThumbprint { .. })
        ));
    }

    #[test]
    fn default_folders() {
        let cu = store_folder(StoreLocation::CurrentUser, "My", None);
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(
                cu.unwrap(),
                PathBuf::from(home).join(".dotnet/corefx/cryptography/x509stores/my")
            );
        }
        let p = Path::new("/some/where");
        assert_eq!(
            store_folder(StoreLocation::LocalMachine, "My", Some(p)).unwrap(),
            p
        );
        assert_eq!("localMachine".parse(), Ok(StoreLocation::LocalMachine));
    }
}
