//! Dev mode: `nats-operator webhook --cert-dir <dir>` on a workstation.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    error::{Error, Result},
    files::{CA_CRT, TLS_CRT, TLS_KEY},
    generate::CertificateAuthority,
};

/// Lifetime of dev-mode CA and serving certificate: one year.
pub const DEV_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// What [`ensure_dev_certs`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevCertsOutcome {
    /// `tls.crt` and `tls.key` were already there and were left alone.
    Existing,
    /// A CA and serving certificate were generated and written.
    Generated,
}

/// If `dir` has neither `tls.crt` nor `tls.key`, generates a CA and a serving certificate for
/// `localhost`, `127.0.0.1` and `extra_sans`, and writes `ca.crt`, `tls.crt` and `tls.key`
/// (mode 0600) into it, creating the directory if needed. If both exist they are left alone.
/// If only one exists, that is an error (nothing is overwritten).
pub fn ensure_dev_certs(dir: &Path, extra_sans: &[String]) -> Result<DevCertsOutcome> {
    let crt = dir.join(TLS_CRT);
    let key = dir.join(TLS_KEY);
    let exists = |p: &Path| {
        p.try_exists()
            .map_err(|e| Error::io("inspect", p.to_path_buf(), e))
    };
    match (exists(&crt)?, exists(&key)?) {
        (true, true) => return Ok(DevCertsOutcome::Existing),
        (false, false) => {}
        _ => {
            return Err(Error::IncompleteCertDir {
                dir: dir.to_path_buf(),
            });
        }
    }
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for s in extra_sans {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    let ca = CertificateAuthority::generate("nats-operator-dev-ca", DEV_LIFETIME)?;
    let leaf = ca.issue_serving(&sans, DEV_LIFETIME)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    write_atomic(&dir.join(CA_CRT), ca.cert_pem().as_bytes(), 0o644)?;
    write_atomic(&key, leaf.key_pem().as_bytes(), 0o600)?;
    write_atomic(&crt, leaf.cert_pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), ?sans, "generated dev certificates");
    Ok(DevCertsOutcome::Generated)
}

/// Writes `bytes` to a temporary file created with `mode`, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = path.with_file_name(format!(".{file_name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    #[cfg(unix)]
    {
        // The mode passed to open is filtered by the umask and ignored for an existing file.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", &tmp, e))?;
    }
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
}
