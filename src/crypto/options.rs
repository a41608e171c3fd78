//! The certificate an administrator names with the vendor's options (`--file-cert-file`,
//! `--file-cert-thumbprint`, `--file-cert-store-location`, `--file-cert-store-name`,
//! `--file-cert-store-path`), and the one mapping from them to a [`CertificateSource`].
//! Every command that takes a certificate goes through [`CertificateOptions::source`], so
//! the rules are the same everywhere. The password is not here: it travels separately as a
//! [`super::CertPassword`] value.

use std::path::PathBuf;

use super::{normalize_thumbprint, CertificateSource, StoreLocation};

/// `--file-cert-store-location` when not given (as .NET's `X509Store()`).
pub const DEFAULT_STORE_LOCATION: &str = "CurrentUser";
/// `--file-cert-store-name` when not given (as .NET's `X509Store()`).
pub const DEFAULT_STORE_NAME: &str = "My";

/// The certificate options as given (paths already absolute), without the password.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateOptions {
    pub file: Option<PathBuf>,
    pub thumbprint: Option<String>,
    pub store_location: Option<String>,
    pub store_name: Option<String>,
    pub store_path: Option<PathBuf>,
}

/// Certificate options that do not name one certificate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error("--file-cert-file {}: no such file", .0.display())]
    NoSuchFile(PathBuf),
    #[error(
        "--file-cert-file names a PFX file, --file-cert-{0} a certificate store: give one of them"
    )]
    FileAndStore(&'static str),
    #[error("--file-cert-{0} needs --file-cert-thumbprint (the certificate to find in the store)")]
    StoreWithoutThumbprint(&'static str),
    #[error("--file-cert-thumbprint {0:?}: expected 40 hexadecimal digits")]
    BadThumbprint(String),
    #[error("--file-cert-store-location {0:?}: expected CurrentUser or LocalMachine")]
    BadLocation(String),
}

impl CertificateOptions {
    /// The certificate these options name, or `None` when no certificate option is given.
    ///
    /// - `--file-cert-file F` [`--file-cert-thumbprint T`]: the PFX F (which must hold T);
    /// - `--file-cert-thumbprint T` alone: a store lookup, in `--file-cert-store-location`
    ///   (default CurrentUser) / `--file-cert-store-name` (default My), or in the folder
    ///   `--file-cert-store-path`;
    /// - store options with a file, or without a thumbprint: refused.
    pub fn source(&self) -> Result<Option<CertificateSource>, OptionsError> {
        let store_option = [
            ("store-name", self.store_name.is_some()),
            ("store-location", self.store_location.is_some()),
            ("store-path", self.store_path.is_some()),
        ]
        .into_iter()
        .find(|(_, given)| *given)
        .map(|(name, _)| name);
        if let Some(t) = &self.thumbprint {
            normalize_thumbprint(t).map_err(|_| OptionsError::BadThumbprint(t.clone()))?;
        }
        if let Some(file) = &self.file {
            if let Some(name) = store_option {
                return Err(OptionsError::FileAndStore(name));
            }
            if !file.is_file() {
                return Err(OptionsError::NoSuchFile(file.clone()));
            }
            return Ok(Some(CertificateSource::Pfx {
                path: file.clone(),
                thumbprint: self.thumbprint.clone(),
            }));
        }
        let Some(thumbprint) = &self.thumbprint else {
            return match store_option {
                Some(name) => Err(OptionsError::StoreWithoutThumbprint(name)),
                None => Ok(None),
            };
        };
        let location = self
            .store_location
            .clone()
            .unwrap_or_else(|| DEFAULT_STORE_LOCATION.into());
        location
            .parse::<StoreLocation>()
            .map_err(|_| OptionsError::BadLocation(location.clone()))?;
        Ok(Some(CertificateSource::Store {
            thumbprint: thumbprint.clone(),
            location,
            name: self
                .store_name
                .clone()
                .unwrap_or_else(|| DEFAULT_STORE_NAME.into()),
            path: self.store_path.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "0123456789abcdef0123456789ABCDEF01234567";

    #[test]
    fn one_mapping_for_every_combination() {
        let none = CertificateOptions::default();
        assert_eq!(none.source(), Ok(None));

        let pfx = tempfile::NamedTempFile::new().unwrap();
        let file = CertificateOptions {
            file: Some(pfx.path().to_path_buf()),
            thumbprint: Some(TP.into()),
            ..Default::default()
        };
        assert_eq!(
            file.source(),
            Ok(Some(CertificateSource::Pfx {
                path: pfx.path().to_path_buf(),
                thumbprint: Some(TP.into()),
            }))
        );

        let store = CertificateOptions {
            thumbprint: Some(TP.into()),
            ..Default::default()
        };
        assert_eq!(
            store.source(),
            Ok(Some(CertificateSource::Store {
                thumbprint: TP.into(),
                location: "CurrentUser".into(),
                name: "My".into(),
                path: None,
            }))
        );
        let machine = CertificateOptions {
            thumbprint: Some(TP.into()),
            store_location: Some("LocalMachine".into()),
            store_name: Some("Root".into()),
            ..Default::default()
        };
        assert!(matches!(
            machine.source(),
            Ok(Some(CertificateSource::Store { location, name, .. })) if location == "LocalMachine" && name == "Root"
        ));
    }

    #[test]
    fn incomplete_or_contradictory_options_are_refused_by_name() {
        let missing = CertificateOptions {
            file: Some(PathBuf::from("/nonexistent/agent.pfx")),
            ..Default::default()
        };
        let e = missing.source().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/agent.pfx"), "{e}");

        let pfx = tempfile::NamedTempFile::new().unwrap();
        let both = CertificateOptions {
            file: Some(pfx.path().to_path_buf()),
            store_name: Some("My".into()),
            ..Default::default()
        };
        assert_eq!(both.source(), Err(OptionsError::FileAndStore("store-name")));

        let no_thumbprint = CertificateOptions {
            store_path: Some(PathBuf::from("/x")),
            ..Default::default()
        };
        assert_eq!(
            no_thumbprint.source(),
            Err(OptionsError::StoreWithoutThumbprint("store-path"))
        );

        let bad = CertificateOptions {
            thumbprint: Some("12ab".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.source(),
            Err(OptionsError::BadThumbprint("12ab".into()))
        );

        let location = CertificateOptions {
            thumbprint: Some(TP.into()),
            store_location: Some("Elsewhere".into()),
            ..Default::default()
        };
        assert_eq!(
            location.source(),
            Err(OptionsError::BadLocation("Elsewhere".into()))
        );
    }
}
