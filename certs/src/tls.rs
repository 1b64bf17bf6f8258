//! The rustls side: a hot-swappable certificate resolver and the webhook `ServerConfig`.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    version::{TLS12, TLS13},
};

use crate::error::Result;

/// The only ALPN protocol offered: HTTP/1.1. HTTP/2 is deliberately off for webhooks (the
/// apiserver speaks HTTP/1.1 to webhooks; HTTP/2 brings the Rapid Reset class of DoS bugs).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The ring crypto provider, built once. The crate always passes it explicitly and never relies
/// on a process-default provider being installed.
pub fn ring_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A [`ResolvesServerCert`] that serves one current certificate, swappable atomically at any
/// time without blocking handshakes. While empty, handshakes are refused.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
}

impl CertResolver {
    /// A resolver that serves `cert`.
    pub fn new(cert: Arc<CertifiedKey>) -> Self {
        Self {
            current: ArcSwapOption::from(Some(cert)),
        }
    }

    /// A resolver with nothing to serve yet (handshakes fail until [`CertResolver::set`]).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Replaces the served certificate; new handshakes use it immediately.
    pub fn set(&self, cert: Arc<CertifiedKey>) {
        self.current.store(Some(cert));
    }

    /// The certificate currently served, if any.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }

    /// Whether a certificate is loaded (a readiness signal).
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// Builds the webhook server's TLS configuration: ring provider, TLS 1.3 and 1.2 only, no client
/// authentication, certificates from `resolver`, ALPN `http/1.1` only.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&TLS13, &TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}
