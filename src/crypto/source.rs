//! Where an encryption certificate comes from, as a plan stores it: a PFX file path or a store
//! lookup (thumbprint + location + name), never a secret.
//!
//! The PFX password is supplied at run time only (see [`cert_password`]): by the embedding
//! program through [`set_cert_password`] (a process-wide `OnceLock`), or else by the
//! environment variable [`PASSWORD_ENV`]. Plans and journal records therefore never hold it;
//! a resumed run needs it again, a rollback does not (it restores the original bytes kept in
//! the journal trash).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{find_in_store, normalize_thumbprint, Certificate, CryptoError, StoreLocation};

/// Environment variable read for the PFX password when none was set with
/// [`set_cert_password`].
pub const PASSWORD_ENV: &str = "USERCUBE_UPGRADE_CERT_PASSWORD";

static PASSWORD: OnceLock<String> = OnceLock::new();

/// Sets the PFX password for this process (first call wins). Returns false if one was
/// already set.
pub fn set_cert_password(password: String) -> bool {
    PASSWORD.set(password).is_ok()
}

/// The PFX password: the one set with [`set_cert_password`], else `$USERCUBE_UPGRADE_CERT_PASSWORD`.
pub fn cert_password() -> Option<String> {
    PASSWORD
        .get()
        .cloned()
        .or_else(|| std::env::var(PASSWORD_ENV).ok())
}

/// A certificate reference without its secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateSource {
    /// A PFX file; its password comes from [`cert_password`] at run time. When `thumbprint`
    /// is given, the loaded certificate must have it.
    Pfx {
        path: PathBuf,
        #[serde(default)]
        thumbprint: Option<String>,
    },
    /// A .NET-style store (see [`super::store`]): PFX files with an empty password.
    Store {
        thumbprint: String,
        /// `CurrentUser` or `LocalMachine`.
        location: String,
        /// Store name, e.g. `My`.
        name: String,
        /// Folder holding the PFX files, overriding the .NET convention.
        #[serde(default)]
        path: Option<PathBuf>,
    },
}

impl CertificateSource {
    /// Paths in the source, for the plan's path bookkeeping.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            CertificateSource::Pfx { path, .. } => vec![path],
            CertificateSource::Store { path, .. } => path.iter().map(PathBuf::as_path).collect(),
        }
    }

    /// Short description, e.g. for step descriptions (no secret).
    pub fn describe(&self) -> String {
        match self {
            CertificateSource::Pfx { path, thumbprint } => match thumbprint {
                Some(t) => format!("PFX {} ({t})", path.display()),
                None => format!("PFX {}", path.display()),
            },
            CertificateSource::Store {
                thumbprint,
                location,
                name,
                ..
            } => format!("certificate {thumbprint} in store {location}/{name}"),
        }
    }

    /// The thumbprint the plan pins, if any (normalised).
    pub fn pinned_thumbprint(&self) -> Option<String> {
        match self {
            CertificateSource::Pfx { thumbprint, .. } => thumbprint
                .as_deref()
                .map(|t| normalize_thumbprint(t).unwrap_or_else(|_| t.to_string())),
            CertificateSource::Store { thumbprint, .. } => {
                Some(normalize_thumbprint(thumbprint).unwrap_or_else(|_| thumbprint.to_string()))
            }
        }
    }

    /// Loads the certificate; relative paths are taken under `root`. A PFX needs the
    /// password from [`cert_password`].
    pub fn load(&self, root: &Path) -> Result<Certificate, SourceError> {
        match self {
            CertificateSource::Pfx { path, thumbprint } => {
                let password = cert_password().ok_or(SourceError::NoPassword)?;
                let cert = Certificate::from_pfx(root.join(path), &password)?;
                if let Some(t) = thumbprint {
                    let want = normalize_thumbprint(t)?;
                    if cert.thumbprint() != want {
                        return Err(SourceError::ThumbprintMismatch {
                            path: root.join(path),
                            expected: want,
                            found: cert.thumbprint(),
                        });
                    }
                }
                Ok(cert)
            }
            CertificateSource::Store {
                thumbprint,
                location,
                name,
                path,
            } => {
                let location: StoreLocation = location.parse().map_err(SourceError::BadLocation)?;
                let store_path = path.as_ref().map(|p| root.join(p));
                Ok(find_in_store(
                    thumbprint,
                    location,
                    name,
                    store_path.as_deref(),
                )?)
            }
        }
    }
}

/// Why a certificate could not be loaded from its source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the PFX password is needed: set the environment variable {PASSWORD_ENV} (it is never stored in the plan or the journal)")]
    NoPassword,
    #[error("{}: holds certificate {found}, but the plan expects {expected}", path.display())]
    ThumbprintMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    BadLocation(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}
