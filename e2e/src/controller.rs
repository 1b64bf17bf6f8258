//! The operator's reconcile loop, in process: `nats_operator::controller::run` on a thread of
//! its own with its own tokio runtime (it must outlive the test's runtime while it shuts
//! down), with or without leader election on a Lease, and with every API request it makes
//! recorded (a tower layer around its `kube::Client`), so tests can assert that a steady
//! state writes nothing.
//!
//! The CRDs and webhooks come from [`crate::NatsOperator::shared`] (the in-process
//! [`crate::WebhookServer`]), so v1alpha2 objects convert for the controller's v1beta1 watch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use http::{Method, Request};
use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use nats_operator::controller::leader::{LeaderElector, Timing};
use nats_operator::controller::metrics::Metrics;
use nats_operator::controller::{self, Scope};
use tokio::sync::watch;

use crate::TestCluster;

/// How long a stopping operator may take (graceful controller shutdown, lease release).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// One API request of the operator.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// When it was sent.
    pub at: Instant,
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
}

impl RecordedRequest {
    /// A write: anything but GET (watches are GETs), HEAD and OPTIONS.
    pub fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

impl std::fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.uri)
    }
}

/// Every request a client sent, in order.
#[derive(Debug, Default)]
pub struct RequestLog {
    requests: Mutex<Vec<RecordedRequest>>,
}

impl RequestLog {
    fn record(&self, method: Method, uri: String) {
        if let Ok(mut r) = self.requests.lock() {
            r.push(RecordedRequest {
                at: Instant::now(),
                method,
                uri,
            });
        }
    }

    /// All requests so far.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The writes sent at or after `since`.
    pub fn writes_since(&self, since: Instant) -> Vec<RecordedRequest> {
        self.all()
            .into_iter()
            .filter(|r| r.at >= since && r.is_write())
            .collect()
    }
}

/// A `kube::Client` for `config` whose requests are recorded in `log`.
pub fn recording_client(config: Config, log: Arc<RequestLog>) -> Result<Client> {
    let builder = ClientBuilder::try_from(config).context("building the client stack")?;
    let layer = tower::util::MapRequestLayer::new(move |req: Request<Body>| {
        let uri = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        log.record(req.method().clone(), uri);
        req
    });
    Ok(builder.with_layer(&layer).build())
}

/// Leader election settings of an in-process operator.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// Timing of the election.
    pub timing: Timing,
}

/// How to run an in-process operator.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// Which namespaces it manages.
    pub scope: Scope,
    /// Its identity (Event reporter instance, Lease holder).
    pub identity: String,
    /// Campaign for this Lease and reconcile only while holding it (`None`: always).
    pub lease: Option<LeaseSettings>,
    /// The asset controllers' settings.
    pub assets: nats_operator::controller::AssetSettings,
}

impl OperatorOptions {
    /// Manages `namespace` only, without leader election.
    pub fn namespace(namespace: &str) -> Self {
        OperatorOptions {
            scope: Scope::Namespace(namespace.to_string()),
            identity: format!("e2e-operator-{namespace}"),
            lease: None,
            assets: Default::default(),
        }
    }
}

/// A running in-process operator; stopped by [`InProcessOperator::stop`] or on drop.
pub struct InProcessOperator {
    identity: String,
    log: Arc<RequestLog>,
    metrics: Arc<Metrics>,
    leader: Arc<AtomicBool>,
    running: Mutex<Option<Running>>,
}

struct Running {
    shutdown: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for InProcessOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessOperator")
            .field("identity", &self.identity)
            .field("leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

impl InProcessOperator {
    /// Starts the controllers on a new thread.
    pub fn start(cluster: &TestCluster, options: OperatorOptions) -> Result<InProcessOperator> {
        let log = Arc::new(RequestLog::default());
        let metrics = Arc::new(Metrics::default());
        let leader = Arc::new(AtomicBool::new(false));
        let (shutdown, stop_rx) = watch::channel(false);
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
        let config = cluster.config().clone();
        let (l, m, is_leader) = (log.clone(), metrics.clone(), leader.clone());
        let opts = options.clone();
        let thread = std::thread::Builder::new()
            .name(format!("operator-{}", options.identity))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("e2e-operator-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("building runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let client = match recording_client(config, l) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e:#}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    operate(client, opts, m, is_leader, stop_rx).await;
                });
                let _ = done_tx.send(());
            })
            .context("spawning the operator thread")?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(anyhow!("the in-process operator did not start: {e}")),
            Err(e) => return Err(anyhow!("the in-process operator did not start: {e}")),
        }
        Ok(InProcessOperator {
            identity: options.identity,
            log,
            metrics,
            leader,
            running: Mutex::new(Some(Running {
                shutdown,
                done,
                thread,
            })),
        })
    }

    /// Its identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether its controllers run (always true without leader election, once started).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Every request its client sent.
    pub fn requests(&self) -> &RequestLog {
        &self.log
    }

    /// Its metrics (reconciles, failures, per-cluster members).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether it is still running.
    pub fn is_running(&self) -> bool {
        match self.running.lock() {
            Ok(g) => g.as_ref().is_some_and(|r| !r.thread.is_finished()),
            Err(_) => false,
        }
    }

    /// Asks it to stop (a leader releases its Lease) and waits until it has, up to
    /// [`STOP_TIMEOUT`]. Returns how long that took.
    pub async fn stop(&self) -> Result<Duration> {
        let running = match self.running.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some(running) = running else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        tokio::task::spawn_blocking(move || stop_blocking(running))
            .await
            .context("joining the stop task")??;
        Ok(started.elapsed())
    }
}

fn stop_blocking(running: Running) -> Result<()> {
    let _ = running.shutdown.send(true);
    match running.done.recv_timeout(STOP_TIMEOUT) {
        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let _ = running.thread.join();
            Ok(())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(anyhow!(
            "the in-process operator did not stop within {STOP_TIMEOUT:?}"
        )),
    }
}

impl Drop for InProcessOperator {
    fn drop(&mut self) {
        let running = match self.running.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(r) = running
            && let Err(e) = stop_blocking(r)
        {
            tracing::warn!("{e:#}");
        }
    }
}

/// The operator's main loop: the controllers directly, or while leading (as
/// `nats-operator run` does).
async fn operate(
    client: Client,
    options: OperatorOptions,
    metrics: Arc<Metrics>,
    is_leader: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) {
    let Some(lease) = options.lease else {
        is_leader.store(true, Ordering::SeqCst);
        let settings = controller::Settings {
            identity: options.identity,
            metrics,
            assets: options.assets,
        };
        controller::run(client, options.scope, settings, stop).await;
        is_leader.store(false, Ordering::SeqCst);
        return;
    };
    let (leader_tx, leader_rx) = watch::channel(false);
    let elector = LeaderElector::new(
        client.clone(),
        &lease.namespace,
        &lease.name,
        &options.identity,
        lease.timing,
    );
    let election = tokio::spawn(elector.run(leader_tx, stop.clone()));
    // The same leadership loop as `nats-operator run`.
    let settings = controller::Settings {
        identity: options.identity,
        metrics,
        assets: options.assets,
    };
    nats_operator::controller::leader::run_while_leader(
        client,
        options.scope,
        settings,
        leader_rx,
        stop,
        is_leader,
    )
    .await;
    // The elector releases the Lease once it sees the stop.
    let _ = election.await;
}
