//! Where an encryption certificate comes from, as a plan stores it: a PFX file path or a store
//! lookup (thumbprint + location + name), never a secret.
//!
//! The PFX password is supplied at run time only, as a [`CertPassword`] value handed down
//! from the command line (flag, password file, standard input or [`PASSWORD_ENV`]) to
//! whatever loads the certificate. Plans and journal records therefore never hold it; a
//! resumed run needs it again, a rollback does not (it restores the original bytes kept in
//! the journal trash).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{find_in_store, normalize_thumbprint, Certificate, CryptoError, StoreLocation};

/// Environment variable the command line reads for the PFX password when no
/// `--file-cert-password` or `--file-cert-password-file` is given.
pub const PASSWORD_ENV: &str = "USERCUBE_UPGRADE_CERT_PASSWORD";

/// Where an administrator can give the PFX password, for messages that ask for it.
pub const PASSWORD_OPTIONS: &str = "--file-cert-password-file FILE (- for standard input), the environment variable USERCUBE_UPGRADE_CERT_PASSWORD, or --file-cert-password P";

/// A PFX password: wiped from memory when dropped, never printed (`Debug` shows `***`).
#[derive(Clone)]
pub struct CertPassword(Zeroizing<String>);

impl CertPassword {
    /// Takes the string; its bytes are wiped when the password is dropped.
    pub fn new(password: String) -> CertPassword {
        CertPassword(Zeroizing::new(password))
    }

    /// `$USERCUBE_UPGRADE_CERT_PASSWORD`, if set (and valid Unicode).
    pub fn from_env() -> Option<CertPassword> {
        std::env::var(PASSWORD_ENV).ok().map(CertPassword::new)
    }

    /// The first line of `reader` (a password file or standard input), without its line
    /// ending; `what` names the source in errors. Read a byte at a time, so that no buffer
    /// outside the wiped one holds the password, and nothing past the first line is read.
    pub fn from_reader(mut reader: impl Read, what: &str) -> Result<CertPassword, SourceError> {
        let mut line = Zeroizing::new(Vec::new());
        let mut byte = [0u8; 1];
        loop {
            match crate::stream::read_some(&mut reader, &mut byte) {
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(e) => {
                    return Err(SourceError::PasswordFile(format!(
                        "{what}: cannot read: {e}"
                    )))
                }
            }
            if line.len() > MAX_PASSWORD_BYTES {
                return Err(SourceError::PasswordFile(format!(
                    "{what}: first line longer than {MAX_PASSWORD_BYTES} bytes: not a password file"
                )));
            }
        }
        byte.zeroize();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = std::str::from_utf8(&line).map_err(|_| {
            SourceError::PasswordFile(format!("{what}: the password is not valid UTF-8"))
        })?;
        if text.is_empty() {
            return Err(SourceError::PasswordFile(format!(
                "{what}: the first line is empty: no password"
            )));
        }
        Ok(CertPassword::new(text.to_string()))
    }

    /// The password itself, for the one call that opens the PFX.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CertPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertPassword(***)")
    }
}

/// A first line longer than this is refused (a wrong file, not a password).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// A certificate reference without its secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateSource {
    /// A PFX file; its password is given at run time ([`CertPassword`]). When `thumbprint`
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

    /// Loads the certificate; relative paths are taken under `root`. A PFX needs
    /// `password`; a store lookup ignores it.
    pub fn load(
        &self,
        root: &Path,
        password: Option<&CertPassword>,
    ) -> Result<Certificate, SourceError> {
        match self {
            CertificateSource::Pfx { path, thumbprint } => {
                let password = password.ok_or(SourceError::NoPassword)?;
                let cert = Certificate::from_pfx(root.join(path), password.expose())?;
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
    #[error("the PFX password is needed: give {PASSWORD_OPTIONS} (it is never stored in the plan or the journal)")]
    NoPassword,
    /// A password file (or standard input) that does not hold a usable password.
    #[error("{0}")]
    PasswordFile(String),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_its_first_line_without_the_line_ending() {
        let p = CertPassword::from_reader(&b"s3cret pass\r\nignored\n"[..], "pw.txt").unwrap();
        assert_eq!(p.expose(), "s3cret pass");
        let p = CertPassword::from_reader(&b"no-newline"[..], "pw.txt").unwrap();
        assert_eq!(p.expose(), "no-newline");
        assert_eq!(format!("{p:?}"), "CertPassword(***)");
    }

    #[test]
    fn unusable_password_files_are_refused_by_name() {
        for (bytes, why) in [
            (&b"\nsecond line"[..], "empty"),
            (&b""[..], "empty"),
            (&b"\xff\xfe\n"[..], "UTF-8"),
        ] {
            let e = CertPassword::from_reader(bytes, "pw.txt").unwrap_err();
            assert!(e.to_string().starts_with("pw.txt: "), "{e}");
            assert!(e.to_string().contains(why), "{e}");
        }
        let big = vec![b'a'; MAX_PASSWORD_BYTES + 1];
        let e = CertPassword::from_reader(&big[..], "pw.txt").unwrap_err();
        assert!(e.to_string().contains("not a password file"), "{e}");
    }

    #[test]
    fn the_message_asking_for_the_password_names_the_flag_and_the_variable() {
        let msg = SourceError::NoPassword.to_string();
        for want in [
            PASSWORD_ENV,
            "--file-cert-password-file",
            "--file-cert-password ",
        ] {
            assert!(msg.contains(want), "{msg}");
        }
    }
}
