//! Provided-files mode: serve `tls.crt` / `tls.key` from a directory (a mounted cert-manager
//! Certificate Secret) and reload them without a restart.
//!
//! Kubernetes updates Secret volumes by writing a new timestamped directory and atomically
//! swapping the `..data` symlink, so watching one file path misses updates. [`FileCerts`] polls
//! instead: every [`FileCerts::with_poll_interval`] it reads both files through their paths
//! (following the symlinks) and compares the bytes with the last pair it saw. A new pair is
//! loaded only if it parses and the key matches the certificate; otherwise (a half-written or
//! mismatched pair) it keeps serving the previous certificate, logs one warning, and retries when
//! the files change again.

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::sync::watch;

use crate::{
    error::{Error, Result},
    generate::{CertInfo, certified_key_from_pem, certs_from_pem, inspect_cert_pem},
    tls::CertResolver,
};

/// File name of the serving certificate (chain) inside the directory.
pub const TLS_CRT: &str = "tls.crt";
/// File name of the serving private key inside the directory.
pub const TLS_KEY: &str = "tls.key";
/// File name of the CA certificate inside the directory (optional).
pub const CA_CRT: &str = "ca.crt";

/// Default poll interval of [`FileCerts`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What a [`FileCerts::reload`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files are the pair already considered.
    Unchanged,
    /// A new pair is being served.
    Reloaded,
    /// A new pair was found but not loaded (still serving the previous one).
    Rejected(String),
}

/// Serves the certificate pair of a directory and follows changes to it.
#[derive(Debug)]
pub struct FileCerts {
    dir: PathBuf,
    poll_interval: Duration,
    resolver: Arc<CertResolver>,
    bundle_tx: watch::Sender<Vec<u8>>,
    last_seen: Option<(Vec<u8>, Vec<u8>)>,
    current: Option<CertInfo>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("read", path, e))
}

impl FileCerts {
    /// Loads `dir/tls.crt` and `dir/tls.key`; fails if that first pair is unusable.
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self> {
        let (bundle_tx, _) = watch::channel(Vec::new());
        let mut this = Self {
            dir: dir.into(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            resolver: Arc::new(CertResolver::empty()),
            bundle_tx,
            last_seen: None,
            current: None,
        };
        match this.reload()? {
            ReloadOutcome::Rejected(reason) => Err(Error::pem("certificate pair", reason)),
            ReloadOutcome::Reloaded | ReloadOutcome::Unchanged => Ok(this),
        }
    }

    /// Sets the poll interval (default [`DEFAULT_POLL_INTERVAL`]).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The directory being served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The resolver serving the current pair.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// A watch of `dir/ca.crt` (empty if the file is absent), for caBundle injection.
    pub fn ca_bundle(&self) -> watch::Receiver<Vec<u8>> {
        self.bundle_tx.subscribe()
    }

    /// Subject, serial and validity of the leaf being served.
    pub fn current(&self) -> Option<&CertInfo> {
        self.current.as_ref()
    }

    /// Re-reads the directory once. I/O errors (files missing during a swap) are returned and
    /// leave the served certificate in place.
    pub fn reload(&mut self) -> Result<ReloadOutcome> {
        let cert = read(&self.dir.join(TLS_CRT))?;
        let key = read(&self.dir.join(TLS_KEY))?;
        self.reload_ca();
        if self
            .last_seen
            .as_ref()
            .is_some_and(|(c, k)| *c == cert && *k == key)
        {
            return Ok(ReloadOutcome::Unchanged);
        }
        let loaded =
            certified_key_from_pem(&cert, &key).and_then(|ck| Ok((ck, inspect_cert_pem(&cert)?)));
        self.last_seen = Some((cert, key));
        match loaded {
            Ok((ck, info)) => {
                tracing::info!(
                    dir = %self.dir.display(),
                    serial = %info.serial_hex,
                    "loaded serving certificate"
                );
                self.resolver.set(ck);
                self.current = Some(info);
                Ok(ReloadOutcome::Reloaded)
            }
            Err(e) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    error = %e,
                    "ignoring unusable certificate pair; still serving the previous one"
                );
                Ok(ReloadOutcome::Rejected(e.to_string()))
            }
        }
    }

    fn reload_ca(&mut self) {
        let path = self.dir.join(CA_CRT);
        let ca = match std::fs::read(&path) {
            Ok(bytes) if certs_from_pem(&bytes).is_ok() => bytes,
            Ok(_) => {
                tracing::warn!(path = %path.display(), "ignoring unparseable ca.crt");
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read ca.crt");
                return;
            }
        };
        self.bundle_tx.send_if_modified(|cur| {
            if *cur == ca {
                false
            } else {
                *cur = ca;
                true
            }
        });
    }

    /// Polls the directory until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let mut interval = tokio::time::interval(self.poll_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => {
                    if let Err(e) = self.reload() {
                        tracing::debug!(error = %e, "certificate directory not readable; will retry");
                    }
                }
            }
        }
    }
}
