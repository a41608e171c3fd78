//! Encryption seam of `usercube-upgrade`.
//!
//! * [`cert`]: X.509 certificates with an RSA private key, loaded from PFX (PKCS#12) files.
//! * [`store`]: .NET-on-Linux style certificate stores (folders of `<THUMBPRINT>.pfx`).
//! * [`source`]: a certificate reference as plans store it (PFX path or store lookup) and the
//!   run-time PFX password, a [`CertPassword`] value (never stored, wiped after use).
//! * [`options`]: the vendor's certificate options and their one mapping to a
//!   [`CertificateSource`].
//! * [`legacy`]: the 5.1 file format as this project models it (RSA-OAEP-SHA1 + AES-256-CBC).
//! * [`format`]: our own streaming format (RSA-OAEP-SHA256 + AES-256-GCM STREAM), documented
//!   byte by byte in `encryption-format.md`, plus [`verify_new`].
//! * `plaintext`: the `read` the two decrypting readers share ([`LegacyReader`],
//!   [`NewFormatReader`]).
//! * [`parallel`]: the same re-encryption and verification for whole files, chunks on every
//!   core (what the re-encryption step uses).
//!
//! Every reader/writer streams with memory independent of the file size. Errors are typed
//! ([`CryptoError`]); when they travel through `std::io::Read`/`Write` they are wrapped in an
//! `io::Error` and recovered by `CryptoError::from(io_error)`.

pub mod cert;
pub mod format;
pub mod legacy;
mod oaep;
pub mod options;
pub mod parallel;
mod plaintext;
pub mod source;
pub mod store;

#[cfg(test)]
pub(crate) mod test_support;

use std::io;
use std::path::PathBuf;

pub use cert::Certificate;
pub use format::{
    is_new_format, verify_new, NewFormatReader, NewFormatWriter, CHUNK_SIZE, NEW_MAGIC,
};
#[cfg(any(test, feature = "testing"))]
pub use legacy::encrypt_legacy;
pub use legacy::{encrypt_legacy_with_rng, is_legacy, LegacyReader, LEGACY_MAGIC};
pub use options::CertificateOptions;
pub use source::{CertPassword, CertificateSource, SourceError, PASSWORD_ENV, PASSWORD_OPTIONS};
pub use store::{find_in_store, normalize_thumbprint, StoreLocation};

/// Minimum RSA modulus size accepted for an encryption certificate.
pub const MIN_RSA_BITS: usize = 2048;

/// Every error of the crypto module.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// I/O failure; `what` names the file or the stream concerned.
    #[error("I/O error on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The file is not a readable PKCS#12 (PFX) file.
    #[error("{path}: not a readable PKCS#12/PFX file: {reason}")]
    InvalidPfx { path: String, reason: String },
    /// MAC verification (or decryption) of the PFX failed: wrong password.
    #[error("{path}: wrong PFX password (integrity check failed)")]
    WrongPassword { path: String },
    /// The PFX holds no private key matched with a certificate.
    #[error("{path}: the PFX contains no private key with a certificate")]
    NoPrivateKey { path: String },
    /// The private key is not an RSA key.
    #[error("{path}: the private key is not RSA (algorithm OID {algorithm})")]
    KeyNotRsa { path: String, algorithm: String },
    /// The RSA key is smaller than [`MIN_RSA_BITS`].
    #[error("{path}: RSA key of {bits} bits is too small (minimum {min} bits)")]
    KeyTooSmall {
        path: String,
        bits: usize,
        min: usize,
    },
    /// The RSA key or the certificate could not be decoded.
    #[error("{path}: invalid key or certificate: {reason}")]
    InvalidKey { path: String, reason: String },
    /// The thumbprint given is not 40 hexadecimal digits.
    #[error("invalid thumbprint {thumbprint:?}: expected 40 hexadecimal digits")]
    InvalidThumbprint { thumbprint: String },
    /// No certificate with that thumbprint in the store folder.
    #[error("certificate {thumbprint} not found in store folder {}", searched.display())]
    CertificateNotFound {
        thumbprint: String,
        searched: PathBuf,
    },
    /// The data does not start with the expected magic bytes.
    #[error("not a {format} encrypted file (bad magic bytes)")]
    BadMagic { format: &'static str },
    /// Our format, but a version this code does not know.
    #[error("unsupported {format} format version {version}")]
    UnsupportedVersion { format: &'static str, version: u8 },
    /// The file was encrypted for another certificate.
    #[error("file encrypted for certificate {file_thumbprint}, but certificate {cert_thumbprint} was given")]
    WrongCertificate {
        file_thumbprint: String,
        cert_thumbprint: String,
    },
    /// RSA unwrapping of the data key failed (wrong certificate or corrupted header).
    #[error("{format}: cannot unwrap the data key with certificate {thumbprint} (wrong certificate or corrupted header)")]
    KeyUnwrap {
        format: &'static str,
        thumbprint: String,
    },
    /// The certificate's private key does not unwrap what its public key wraps.
    #[error("certificate {thumbprint}: its private key does not match its public key (a key wrapped with the certificate did not unwrap)")]
    KeyPairMismatch { thumbprint: String },
    /// The header is malformed (e.g. impossible wrapped-key length).
    #[error("{format}: malformed header: {reason}")]
    BadHeader {
        format: &'static str,
        reason: String,
    },
    /// The data ends before it should.
    #[error("{format}: truncated data: {what}")]
    Truncated { format: &'static str, what: String },
    /// Legacy format: the PKCS#7 padding of the last block is invalid (wrong key or corruption).
    #[error("legacy: bad padding in the last block (wrong key, corrupted or truncated data)")]
    BadPadding,
    /// New format: a chunk failed authentication.
    #[error("new format: chunk {chunk} failed authentication (data modified, reordered or cut)")]
    Tampered { chunk: u64 },
    /// New format: data follows the final chunk.
    #[error("new format: unexpected data after the final chunk {chunk}")]
    TrailingData { chunk: u64 },
    /// Writing a stream past its end, or too many chunks.
    #[error("{0}")]
    Usage(String),
    /// RSA encryption failure (should not happen with a valid key).
    #[error("RSA operation failed: {0}")]
    Rsa(String),
}

impl CryptoError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        // An io::Error that carries a CryptoError (from our Read/Write impls) is unwrapped.
        match Self::try_unwrap(source) {
            Ok(e) => e,
            Err(source) => CryptoError::Io {
                what: what.into(),
                source,
            },
        }
    }

    fn try_unwrap(e: io::Error) -> Result<CryptoError, io::Error> {
        if e.get_ref().is_some_and(|i| i.is::<CryptoError>()) {
            let inner = e.into_inner().expect("checked above");
            Ok(*inner.downcast::<CryptoError>().expect("checked above"))
        } else {
            Err(e)
        }
    }
}

/// Recovers a [`CryptoError`] carried inside an `io::Error` (as returned by our `Read`/`Write`
/// implementations); other I/O errors become [`CryptoError::Io`] on "stream".
impl From<io::Error> for CryptoError {
    fn from(e: io::Error) -> Self {
        CryptoError::io("stream", e)
    }
}

impl From<CryptoError> for io::Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Io { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}
