//! Our real webhook server, in process, on `https://127.0.0.1:<port>`, for the local control
//! plane to call.
//!
//! It runs on a thread of its own with its own tokio runtime: every `#[tokio::test]` has a
//! runtime that ends with the test, and the server must outlive single tests. It can be
//! stopped and restarted on the same port with the same certificate (the "webhook down"
//! scenario).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nats_operator::controller::Scope;
use nats_operator::controller::cache::Caches;
use nats_operator::webhooks::CacheSlot;
use nats_operator_certs::{CertResolver, CertificateAuthority, server_config};
use nats_operator_webhook::{ServerOptions, ServerStats, router, serve_with};

/// Lifetime of the test CA and serving certificate (far longer than any test run).
const CERT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a stopping server lets in-flight requests finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The webhook server of one test binary (see [`WebhookServer::shared`]).
pub struct WebhookServer {
    addr: SocketAddr,
    ca_pem: String,
    tls: Arc<rustls::ServerConfig>,
    stats: ServerStats,
    caches: CacheSlot,
    running: Mutex<Option<Running>>,
}

struct Running {
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<std::result::Result<(), String>>,
}

impl std::fmt::Debug for WebhookServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookServer")
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl WebhookServer {
    /// The server shared by all tests of this test binary, started on first use. A failed
    /// start is remembered, so the other tests fail fast with the same error.
    pub fn shared() -> Result<&'static WebhookServer> {
        static SHARED: OnceLock<std::result::Result<WebhookServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("webhook server unavailable: {e}"))
    }

    /// Generates a CA and a serving certificate for `127.0.0.1`/`localhost` and starts
    /// serving `nats_operator::webhooks::state()` on a free port of 127.0.0.1.
    pub fn start() -> Result<WebhookServer> {
        let ca = CertificateAuthority::generate("nats-operator-e2e-ca", CERT_LIFETIME)
            .context("generating the test CA")?;
        let serving = ca
            .issue_serving(&["127.0.0.1".into(), "localhost".into()], CERT_LIFETIME)
            .context("issuing the serving certificate")?;
        let resolver = CertResolver::new(serving.certified_key().context("serving key")?);
        let tls = server_config(Arc::new(resolver)).context("TLS server config")?;
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr().context("local address")?;
        let server = WebhookServer {
            addr,
            ca_pem: ca.cert_pem().to_string(),
            tls,
            stats: ServerStats::new(),
            caches: CacheSlot::default(),
            running: Mutex::new(None),
        };
        server.spawn(listener)?;
        tracing::info!(%addr, "webhook server started");
        Ok(server)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`: the base URL for webhook configurations.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM of the CA that signed the serving certificate (the `caBundle`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Gives the validating webhook the operator's informer caches of every namespace of
    /// the cluster behind `config`, as on a replica of `nats-operator run --cluster-scoped`
    /// (warnings about missing Secrets, keys and extra-route clusters). The watches run on
    /// a thread of their own for the rest of the process; a second call does nothing.
    pub fn watch_cluster(&self, config: kube::Config) -> Result<()> {
        if self.caches.get().is_some() {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::channel::<std::result::Result<Caches, String>>();
        std::thread::Builder::new()
            .name("webhook-caches".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("webhook-caches-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("building runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let client = match kube::Client::try_from(config) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = tx.send(Err(format!("client: {e}")));
                            return;
                        }
                    };
                    let (caches, driver) = Caches::new(&client, Scope::Cluster);
                    let _ = tx.send(Ok(caches));
                    driver.run(std::future::pending()).await;
                });
            })
            .context("spawning the cache thread")?;
        let caches = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| anyhow!("the webhook caches did not start: {e}"))?
            .map_err(|e| anyhow!("the webhook caches did not start: {e}"))?;
        self.caches.set(caches);
        Ok(())
    }

    /// Whether the webhook's caches (see [`Self::watch_cluster`]) have listed everything.
    pub fn caches_synced(&self) -> bool {
        self.caches.get().is_some_and(Caches::is_synced)
    }

    /// Connection counters of the server (cumulative over restarts).
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Whether the server is serving.
    pub fn is_running(&self) -> bool {
        match self.running.lock() {
            Ok(g) => g.as_ref().is_some_and(|r| !r.thread.is_finished()),
            Err(_) => false,
        }
    }

    /// Stops the server and waits until its port is closed (a graceful shutdown: in-flight
    /// requests get [`DRAIN_TIMEOUT`]). A no-op when already stopped.
    pub fn stop(&self) -> Result<()> {
        let running = self
            .running
            .lock()
            .map_err(|_| anyhow!("poisoned webhook server lock"))?
            .take();
        let Some(running) = running else {
            return Ok(());
        };
        let _ = running.shutdown.send(());
        match running.thread.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!("webhook server ended with an error: {e}")),
            Err(_) => Err(anyhow!("webhook server thread panicked")),
        }
    }

    /// Starts the server again on the same port with the same certificate. Retries the bind
    /// for a few seconds. A no-op when running.
    pub fn restart(&self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(addr = %self.addr, error = %e, "rebinding; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e).with_context(|| format!("rebinding {}", self.addr)),
            }
        };
        self.spawn(listener)?;
        tracing::info!(addr = %self.addr, "webhook server restarted");
        Ok(())
    }

    fn spawn(&self, listener: TcpListener) -> Result<()> {
        let mut guard = self
            .running
            .lock()
            .map_err(|_| anyhow!("poisoned webhook server lock"))?;
        if guard.as_ref().is_some_and(|r| !r.thread.is_finished()) {
            bail!("webhook server already running");
        }
        listener
            .set_nonblocking(true)
            .context("non-blocking listener")?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
        let tls = self.tls.clone();
        let caches = self.caches.clone();
        let opts = ServerOptions::default()
            .drain_timeout(DRAIN_TIMEOUT)
            .stats(self.stats.clone());
        let thread = std::thread::Builder::new()
            .name(format!("webhook-server-{}", self.addr.port()))
            .spawn(move || -> std::result::Result<(), String> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("webhook-server-worker")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("building runtime: {e}"))?;
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let msg = format!("tokio listener: {e}");
                            let _ = ready_tx.send(Err(msg.clone()));
                            return Err(msg);
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let shutdown = async {
                        let _ = shutdown_rx.await;
                    };
                    serve_with(
                        listener,
                        Some(tls),
                        router(nats_operator::webhooks::state_with(caches)),
                        shutdown,
                        opts,
                    )
                    .await
                    .map_err(|e| format!("serving: {e}"))
                })
            })
            .context("spawning the webhook server thread")?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("webhook server did not start: {e}"),
            Err(e) => bail!("webhook server did not start: {e}"),
        }
        *guard = Some(Running { shutdown, thread });
        Ok(())
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping the webhook server: {e:#}");
        }
    }
}
