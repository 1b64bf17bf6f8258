//! Test and benchmark helpers (feature `test-support`): a throwaway PKI made with rcgen,
//! a minimal HTTPS/1.1 keep-alive client, an in-process TLS server, and a load driver
//! that reports throughput and latency percentiles.
//!
//! The load driver is generic over the router and the review bodies, so the root crate
//! can drive its real NatsCluster domain:
//!
//! ```no_run
//! # async fn bench(router: axum::Router, review: axum::body::Bytes) -> std::io::Result<()> {
//! use std::time::Duration;
//! use nats_operator_webhook::test_support::{LoadSpec, Scenario, run_suite};
//! let scenarios = [Scenario::new("validate", "/validate?timeout=10s", review)];
//! let specs = [LoadSpec::fixed_rate(8, 1000.0, Duration::from_secs(5)), LoadSpec::saturation(8, Duration::from_secs(5))];
//! for report in run_suite(router, &scenarios, &specs).await? {
//!     println!("{report}");
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::server::{ServerOptions, ServerStats, serve_with};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn other(e: impl Into<BoxError>) -> io::Error {
    io::Error::other(e)
}

/// The ring crypto provider, named explicitly (never the process default).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A CA, a serving certificate signed by it, and matching rustls configs.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// PEM of the CA (what would go into a `caBundle`).
    pub ca_pem: String,
    /// DER of the CA.
    pub ca_der: CertificateDer<'static>,
    /// Server config: TLS 1.2 + 1.3, ALPN `http/1.1`, no client auth.
    pub server_config: Arc<ServerConfig>,
    /// Client config trusting only the CA (TLS 1.2 + 1.3).
    pub client_config: Arc<ClientConfig>,
    /// DNS name in the serving certificate to use for SNI/verification.
    pub server_name: String,
}

impl TestPki {
    /// Generates a CA and a leaf valid for `localhost`, `127.0.0.1` and `extra_sans`.
    pub fn generate(extra_sans: &[&str]) -> io::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "nats-operator-webhook test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(other)?)
            .map_err(other)?;

        let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        sans.extend(extra_sans.iter().map(|s| (*s).to_owned()));
        let leaf_key = KeyPair::generate().map_err(other)?;
        let leaf = CertificateParams::new(sans)
            .map_err(other)?
            .signed_by(&leaf_key, &ca)
            .map_err(other)?;

        let ca_der = ca.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .map_err(other)?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut pki = Self {
            ca_pem: ca.pem(),
            ca_der,
            server_config: Arc::new(server),
            client_config: Arc::new(
                ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(other)?
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth(),
            ),
            server_name: "localhost".to_owned(),
        };
        pki.client_config = pki.client_config_with_versions(rustls::DEFAULT_VERSIONS)?;
        Ok(pki)
    }

    /// A client config trusting only this CA, limited to `versions`.
    pub fn client_config_with_versions(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> io::Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).map_err(other)?;
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// One HTTPS/1.1 keep-alive connection (a single TCP connection, reused for every request).
#[derive(Debug)]
pub struct HttpsConnection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<Result<(), hyper::Error>>,
    /// Negotiated TLS version.
    pub protocol_version: Option<rustls::ProtocolVersion>,
    /// Negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
}

/// Opens a TLS connection to `addr`, verifying `server_name` against `client`'s roots.
pub async fn connect_https(
    addr: SocketAddr,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<HttpsConnection> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(other)?;
    let tls = TlsConnector::from(client).connect(name, tcp).await?;
    let (_, session) = tls.get_ref();
    let protocol_version = session.protocol_version();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(other)?;
    let driver = tokio::spawn(conn);
    Ok(HttpsConnection {
        sender,
        driver,
        protocol_version,
        alpn,
    })
}

impl HttpsConnection {
    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), BoxError> {
        self.sender.ready().await?;
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let req = builder.body(Full::new(body))?;
        let res = self.sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// `POST path` with `Content-Type: application/json`.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<(StatusCode, Bytes), BoxError> {
        self.request("POST", path, Some("application/json"), body.into())
            .await
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, Bytes), BoxError> {
        self.request("GET", path, None, Bytes::new()).await
    }

    /// True once the server (or an error) closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.driver.is_finished()
    }

    /// Waits until the connection is closed (by the peer), at most `limit`.
    /// Returns true if it closed in time.
    pub async fn wait_closed(self, limit: Duration) -> bool {
        let HttpsConnection { sender, driver, .. } = self;
        // Keep the sender alive so that closing is the peer's doing, not ours.
        let closed = tokio::time::timeout(limit, driver).await.is_ok();
        drop(sender);
        closed
    }
}

/// A TLS server running in this process on `127.0.0.1:0`.
#[derive(Debug)]
pub struct InProcessServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// The PKI the server uses (its client config trusts the server).
    pub pki: TestPki,
    /// Accept-loop counters.
    pub stats: ServerStats,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<io::Result<()>>,
}

impl InProcessServer {
    /// Starts `router` over TLS with a fresh PKI and the given options (its
    /// [`ServerOptions::stats_handle`] becomes [`Self::stats`]).
    pub async fn start(router: Router, opts: ServerOptions) -> io::Result<Self> {
        let pki = TestPki::generate(&[])?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let stats = opts.stats_handle();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve_with(
            listener,
            Some(pki.server_config.clone()),
            router,
            async move {
                let _ = rx.await;
            },
            opts,
        ));
        Ok(Self {
            addr,
            pki,
            stats,
            shutdown: Some(tx),
            handle,
        })
    }

    /// Opens a new keep-alive connection to the server.
    pub async fn connect(&self) -> io::Result<HttpsConnection> {
        connect_https(
            self.addr,
            self.pki.client_config.clone(),
            &self.pki.server_name,
        )
        .await
    }

    /// Triggers graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers graceful shutdown and waits for the server to return.
    pub async fn stop(mut self) -> io::Result<()> {
        self.begin_shutdown();
        self.handle.await.map_err(other)?
    }

    /// Waits for the server task to return (after [`Self::begin_shutdown`]).
    pub async fn join(self) -> io::Result<()> {
        self.handle.await.map_err(other)?
    }
}

/// One request shape to replay: a path (with `?timeout=`) and a JSON review body.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Label for the report.
    pub name: String,
    /// Request path, e.g. `/validate?timeout=10s`.
    pub path: String,
    /// The review body, sent unchanged every time.
    pub body: Bytes,
}

impl Scenario {
    /// A scenario posting `body` to `path`.
    pub fn new(name: impl Into<String>, path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            body: body.into(),
        }
    }
}

/// How to drive a scenario.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Number of keep-alive connections (one request in flight on each).
    pub connections: usize,
    /// Total requests per second across all connections; `None` = as fast as possible.
    pub rate: Option<f64>,
    /// Measured duration.
    pub duration: Duration,
    /// Unmeasured warm-up before it.
    pub warmup: Duration,
}

impl LoadSpec {
    /// Open-loop load at `rate` req/s over `connections` connections.
    pub fn fixed_rate(connections: usize, rate: f64, duration: Duration) -> Self {
        Self {
            connections,
            rate: Some(rate),
            duration,
            warmup: Duration::from_millis(500),
        }
    }
    /// Closed-loop load: every connection sends its next request as soon as the last
    /// response arrived.
    pub fn saturation(connections: usize, duration: Duration) -> Self {
        Self {
            connections,
            rate: None,
            duration,
            warmup: Duration::from_millis(500),
        }
    }
}

/// Results of one scenario under one spec. Latencies in microseconds.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Scenario name.
    pub scenario: String,
    /// Connections used.
    pub connections: usize,
    /// Target rate (`None` = saturation).
    pub target_rate: Option<f64>,
    /// Requests answered with HTTP 200 during the measured window.
    pub requests: u64,
    /// Non-200 answers and transport errors.
    pub errors: u64,
    /// Measured window.
    pub elapsed: Duration,
    /// Successful requests per second.
    pub throughput: f64,
    /// Median latency (service time: request written → response read).
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
    /// 99th percentile measured from the *intended* send time of a fixed-rate run, so
    /// requests queued behind a slow one are charged (no coordinated omission); includes
    /// up to ~1 ms of timer slack. Equal to `p99_us` for saturation runs.
    pub p99_from_schedule_us: u64,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = match self.target_rate {
            Some(r) => format!("{r:.0}/s"),
            None => "saturation".to_owned(),
        };
        write!(
            f,
            "{:<16} conns={:<3} target={:<10} ok={:<7} err={:<4} thrpt={:>9.1}/s  p50={:>7.3}ms p90={:>7.3}ms p99={:>7.3}ms p99.9={:>7.3}ms max={:>7.3}ms  sched-p99={:>7.3}ms",
            self.scenario,
            self.connections,
            rate,
            self.requests,
            self.errors,
            self.throughput,
            self.p50_us as f64 / 1000.0,
            self.p90_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
            self.p999_us as f64 / 1000.0,
            self.max_us as f64 / 1000.0,
            self.p99_from_schedule_us as f64 / 1000.0,
        )
    }
}

fn new_histogram() -> io::Result<Histogram<u64>> {
    Histogram::<u64>::new_with_bounds(1, 300_000_000, 3).map_err(other)
}

struct WorkerResult {
    hist: Histogram<u64>,
    sched: Histogram<u64>,
    ok: u64,
    errors: u64,
}

async fn worker(
    mut conn: HttpsConnection,
    scenario: Scenario,
    interval: Option<Duration>,
    offset: Duration,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> io::Result<WorkerResult> {
    let mut hist = new_histogram()?;
    let mut sched = new_histogram()?;
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut k: u32 = 0;
    loop {
        // At a fixed rate requests are sent at their scheduled times; the schedule-based
        // histogram charges queueing behind a slow response (no coordinated omission).
        let scheduled = match interval {
            Some(iv) => {
                let t = start + offset + iv * k;
                k = k.saturating_add(1);
                if t >= end {
                    break;
                }
                tokio::time::sleep_until(t.into()).await;
                t
            }
            None => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        let sent = Instant::now();
        let result = conn.post_json(&scenario.path, scenario.body.clone()).await;
        let done = Instant::now();
        let measured = scheduled >= measure_from;
        match result {
            Ok((StatusCode::OK, _)) => {
                if measured {
                    ok += 1;
                    hist.saturating_record(micros(done.duration_since(sent)));
                    sched.saturating_record(micros(done.duration_since(scheduled)));
                }
            }
            Ok(_) => {
                if measured {
                    errors += 1;
                }
            }
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    Ok(WorkerResult {
        hist,
        sched,
        ok,
        errors,
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Drives `scenario` against a running HTTPS server.
pub async fn run_load(
    addr: SocketAddr,
    client: Arc<ClientConfig>,
    server_name: &str,
    scenario: &Scenario,
    spec: &LoadSpec,
) -> io::Result<LoadReport> {
    let connections = spec.connections.max(1);
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(connect_https(addr, client.clone(), server_name).await?);
    }
    let interval = spec
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(connections as f64 / r));
    let start = Instant::now() + Duration::from_millis(10);
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let mut handles = Vec::with_capacity(connections);
    for (i, conn) in conns.into_iter().enumerate() {
        let offset = interval
            .map(|iv| iv.mul_f64(i as f64 / connections as f64))
            .unwrap_or_default();
        handles.push(tokio::spawn(worker(
            conn,
            scenario.clone(),
            interval,
            offset,
            start,
            measure_from,
            end,
        )));
    }
    let mut hist = new_histogram()?;
    let mut sched = new_histogram()?;
    let (mut ok, mut errors) = (0u64, 0u64);
    for h in handles {
        let r = h.await.map_err(other)??;
        hist.add(&r.hist).map_err(other)?;
        sched.add(&r.sched).map_err(other)?;
        ok += r.ok;
        errors += r.errors;
    }
    let elapsed = spec.duration;
    Ok(LoadReport {
        scenario: scenario.name.clone(),
        connections,
        target_rate: spec.rate,
        requests: ok,
        errors,
        elapsed,
        throughput: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        p99_from_schedule_us: sched.value_at_quantile(0.99),
    })
}

/// Starts `router` over TLS in-process and runs every scenario under every spec.
pub async fn run_suite(
    router: Router,
    scenarios: &[Scenario],
    specs: &[LoadSpec],
) -> io::Result<Vec<LoadReport>> {
    let server = InProcessServer::start(router, ServerOptions::default()).await?;
    let mut reports = Vec::new();
    for scenario in scenarios {
        for spec in specs {
            reports.push(
                run_load(
                    server.addr,
                    server.pki.client_config.clone(),
                    &server.pki.server_name,
                    scenario,
                    spec,
                )
                .await?,
            );
        }
    }
    server.stop().await?;
    Ok(reports)
}
