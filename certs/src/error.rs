//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while generating, loading, storing or injecting certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// rcgen failed to build or sign a certificate or key.
    #[error("failed to generate certificate: {0}")]
    Generate(#[from] rcgen::Error),

    /// A PEM document could not be parsed, or held no usable item.
    #[error("failed to parse PEM {what}: {reason}")]
    Pem {
        /// Which document ("certificate", "private key", "CA bundle", ...).
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// An X.509 certificate could not be decoded.
    #[error("failed to decode X.509 certificate: {0}")]
    X509(String),

    /// rustls refused a certificate, a key or a configuration.
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),

    /// A file system operation failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// What was being done ("read", "write", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    /// The CA Secret exists but its contents cannot be used.
    #[error("invalid CA secret: {0}")]
    InvalidSecret(String),

    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A serialization step (JSON patch construction) failed.
    #[error("failed to build patch: {0}")]
    Patch(#[from] serde_json::Error),

    /// caBundle injection into a target object failed.
    #[error("caBundle injection into {object} failed: {reason}")]
    Injection {
        /// `<kind>/<name>` of the target.
        object: String,
        /// The error.
        reason: String,
    },

    /// Dev mode found only one of `tls.crt` / `tls.key`.
    #[error("{dir} holds only one of tls.crt and tls.key; remove it or add the other")]
    IncompleteCertDir {
        /// The certificate directory.
        dir: PathBuf,
    },
}

/// Shorthand for `Result<T, certs::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn pem(what: &'static str, reason: impl ToString) -> Self {
        Error::Pem {
            what,
            reason: reason.to_string(),
        }
    }
}
