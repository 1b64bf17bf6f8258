//! Shared helpers: a real tokio-rustls server on 127.0.0.1 and a real tokio-rustls client.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use nats_operator_certs::{
    CertResolver, certs_from_pem, inspect_cert_der, ring_provider, server_config,
};
use rustls::{
    ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion,
    pki_types::{CertificateDer, ServerName},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A TLS server on an ephemeral loopback port; each connection gets "ok" and is closed.
/// Only TLS 1.2.
pub static TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

pub struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(resolver: Arc<CertResolver>) -> TestServer {
    let config = server_config(resolver).unwrap();
    let acceptor = TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"ok").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    TestServer { addr, task }
}

/// What a successful client handshake saw.
#[derive(Debug)]
pub struct Handshake {
    pub peer_leaf: CertificateDer<'static>,
    pub version: ProtocolVersion,
    pub alpn: Option<Vec<u8>>,
}

impl Handshake {
    pub fn serial(&self) -> String {
        inspect_cert_der(&self.peer_leaf).unwrap().serial_hex
    }
}

pub fn roots(pem: &[u8]) -> RootCertStore {
    let mut store = RootCertStore::empty();
    for der in certs_from_pem(pem).unwrap() {
        store.add(der).unwrap();
    }
    store
}

pub struct ClientOpts<'a> {
    pub roots_pem: &'a [u8],
    pub server_name: &'a str,
    pub versions: &'a [&'static SupportedProtocolVersion],
    pub alpn: Vec<Vec<u8>>,
}

impl<'a> ClientOpts<'a> {
    pub fn new(roots_pem: &'a [u8], server_name: &'a str) -> Self {
        Self {
            roots_pem,
            server_name,
            versions: rustls::ALL_VERSIONS,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// Connects with a client trusting only `roots_pem`, completes the handshake and reads the
/// server's "ok". Errors are returned as strings.
pub async fn connect(addr: SocketAddr, opts: ClientOpts<'_>) -> Result<Handshake, String> {
    let mut config = ClientConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(opts.versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(opts.roots_pem))
        .with_no_client_auth();
    config.alpn_protocols = opts.alpn;
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(opts.server_name.to_string()).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let fut = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let hs = Handshake {
            peer_leaf: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .cloned()
                .ok_or("no peer certificate")?,
            version: conn.protocol_version().ok_or("no version")?,
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        };
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        if buf != b"ok" {
            return Err(format!("unexpected server reply {buf:?}"));
        }
        Ok(hs)
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| "timeout".to_string())?
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
