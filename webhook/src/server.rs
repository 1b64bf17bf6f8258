//! The HTTPS server: a hand-written accept loop (rust-anchors.md §2.7) serving the router
//! over HTTP/1.1 with keep-alive, plus graceful shutdown.
//!
//! - Each accepted TCP connection gets its own task: TLS handshake under
//!   [`ServerOptions::handshake_timeout`], then hyper's HTTP/1.1 connection with
//!   keep-alive. The apiserver talks HTTP/1.1 to webhooks; HTTP/2 is never offered
//!   (`h2` is removed from the ALPN list), which also avoids the Rapid Reset class of CVEs.
//! - [`ServerOptions::header_read_timeout`] bounds both a slow request head and how long
//!   an idle keep-alive connection is kept (hyper starts the timer whenever it waits for
//!   the next request head).
//! - On the shutdown future: readiness goes false, the listener is closed (new connections
//!   are refused), idle keep-alive connections are closed at once, in-flight requests
//!   finish and their connections close after the response, all bounded by
//!   [`ServerOptions::drain_timeout`]; whatever is left is then aborted.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::router::Readiness;

/// Counters of the accept loop, shared with whoever holds a clone (tests, metrics).
#[derive(Debug, Clone, Default)]
pub struct ServerStats(Arc<StatsInner>);

#[derive(Debug, Default)]
struct StatsInner {
    accepted: AtomicU64,
    active: AtomicU64,
    handshake_failures: AtomicU64,
}

impl ServerStats {
    /// New zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }
    /// TCP connections accepted so far.
    pub fn accepted_connections(&self) -> u64 {
        self.0.accepted.load(Ordering::Relaxed)
    }
    /// Connections currently open (handshaking or serving).
    pub fn active_connections(&self) -> u64 {
        self.0.active.load(Ordering::Relaxed)
    }
    /// TLS handshakes that failed or timed out.
    pub fn handshake_failures(&self) -> u64 {
        self.0.handshake_failures.load(Ordering::Relaxed)
    }
}

/// Decrements the active-connection gauge when a connection task ends (even on abort).
struct ActiveGuard(ServerStats);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tunables of [`serve_with`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    handshake_timeout: Duration,
    header_read_timeout: Duration,
    drain_timeout: Duration,
    readiness: Option<Readiness>,
    stats: ServerStats,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(25),
            readiness: None,
            stats: ServerStats::new(),
        }
    }
}

impl ServerOptions {
    /// Maximum time for a TLS handshake (default 10 s).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }
    /// Maximum time to wait for a complete request head, which is also the idle
    /// keep-alive timeout (default 30 s).
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = d;
        self
    }
    /// Maximum time in-flight requests get to finish after shutdown starts (default 25 s,
    /// inside Kubernetes' default 30 s termination grace period).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }
    /// A readiness flag set to true once the accept loop runs and false on shutdown.
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }
    /// Counters to update (clone the handle before passing it in).
    pub fn stats(mut self, stats: ServerStats) -> Self {
        self.stats = stats;
        self
    }
    /// The counters this server will update.
    pub fn stats_handle(&self) -> ServerStats {
        self.stats.clone()
    }
}

/// Serves `router` over TLS until `shutdown` resolves, with default [`ServerOptions`].
///
/// `tls` typically comes from the certs crate (a `ResolvesServerCert` that hot-swaps
/// certificates). It must allow only TLS 1.2/1.3 (rustls' default); `h2` is removed
/// from its ALPN list because this server speaks HTTP/1.1 only.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    serve_with(
        listener,
        Some(tls),
        router,
        shutdown,
        ServerOptions::default(),
    )
    .await
}

/// Serves `router` over plain HTTP (tests, a separate health port).
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    serve_with(listener, None, router, shutdown, ServerOptions::default()).await
}

/// Restricts ALPN to HTTP/1.1: drops `h2` from the configured protocols.
fn http1_only(tls: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    if !tls.alpn_protocols.iter().any(|p| p.as_slice() == b"h2") {
        return tls;
    }
    let mut cfg = (*tls).clone();
    cfg.alpn_protocols.retain(|p| p.as_slice() != b"h2");
    Arc::new(cfg)
}

/// The full server: TLS when `tls` is `Some`, plain HTTP otherwise.
///
/// Returns `Ok(())` after a graceful shutdown. Accept errors (e.g. out of file
/// descriptors) are logged and retried after a short pause; they never end the server.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
    opts: ServerOptions,
) -> io::Result<()> {
    let acceptor = tls.map(|cfg| TlsAcceptor::from(http1_only(cfg)));
    let local = listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    if let Some(r) = &opts.readiness {
        r.set_ready(true);
    }
    tracing::info!(addr = %local, tls = acceptor.is_some(), "webhook server listening");

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    opts.stats.0.accepted.fetch_add(1, Ordering::Relaxed);
                    opts.stats.0.active.fetch_add(1, Ordering::Relaxed);
                    let guard = ActiveGuard(opts.stats.clone());
                    tasks.spawn(connection(
                        tcp,
                        peer,
                        acceptor.clone(),
                        router.clone(),
                        graceful.watcher(),
                        opts.clone(),
                        guard,
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }

    if let Some(r) = &opts.readiness {
        r.set_ready(false);
    }
    drop(listener);
    tracing::info!(
        addr = %local,
        connections = tasks.len(),
        "webhook server shutting down; draining connections"
    );
    let drain = async {
        graceful.shutdown().await;
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(opts.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tasks.len(),
            timeout = ?opts.drain_timeout,
            "drain timeout reached; aborting remaining connections"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    tracing::info!(addr = %local, "webhook server stopped");
    Ok(())
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    watcher: Watcher,
    opts: ServerOptions,
    _guard: ActiveGuard,
) {
    // Small request/response pairs: never wait for Nagle.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    match acceptor {
        None => serve_connection(tcp, peer, router, watcher, &opts).await,
        Some(acceptor) => {
            match tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => serve_connection(tls, peer, router, watcher, &opts).await,
                Ok(Err(e)) => {
                    opts.stats
                        .0
                        .handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    opts.stats
                        .0
                        .handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    router: Router,
    watcher: Watcher,
    opts: &ServerOptions,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(opts.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
