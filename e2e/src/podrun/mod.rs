//! The process kubelet: runs the pods of chosen namespaces as real processes, so the
//! clusters the operator makes are real NATS clusters.
//!
//! For each pod of a managed namespace it binds the pod to the test node (as the scheduler
//! would) and then, like a kubelet:
//! * gives it a network namespace on the run's bridge ([`network`]): a real pod IP, ports
//!   4222/6222/8222 free in every pod, nothing routed off the machine;
//! * materializes its volumes ([`volumes`]): Secrets and ConfigMaps written as the kubelet's
//!   atomic writer does and kept up to date, emptyDirs, PVCs as directories that outlive the pod;
//! * writes its hosts file ([`dns`]): pod and Service DNS names resolve as with cluster DNS;
//! * gives it the apiserver as a pod sees it: `KUBERNETES_SERVICE_HOST`/`_PORT` name a
//!   forwarder on the bridge's gateway address that pipes to the apiserver (which listens
//!   on 127.0.0.1 only), and the ServiceAccount token volume the admission plugin adds
//!   (projected: a TokenRequest token bound to the pod and refreshed before it expires,
//!   `kube-root-ca.crt`, the namespace) is there, so in-cluster clients work as in a cluster;
//! * runs every container as a real process in a private mount namespace with the volumes at
//!   their mount paths ([`rootfs`]), the image mapped to a local binary ([`binaries`]), as
//!   the pod's user, with its environment; restarts exited containers with back-off;
//! * runs startup, readiness and liveness probes ([`probe`]) and writes the status back
//!   (phase, IPs, conditions, container states, restart counts);
//! * on deletion runs `preStop`, sends SIGTERM, waits out the grace period, SIGKILLs, then
//!   removes the pod object (grace 0).
//!
//! It registers its Node (the endpointslice controller leaves out pods of unknown nodes).
//!
//! It needs root and iproute2/util-linux (`ip`, `unshare`, `nsenter`, `setpriv`, `chroot`).
//! Dropping it kills every process it started and removes its namespaces and bridge;
//! processes also die with the test process (parent-death signal) and what a killed run
//! leaves is swept by the next one.

mod binaries;
mod dns;
pub(crate) mod network;
mod probe;
mod rootfs;
mod volumes;
mod worker;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use tokio::sync::watch;

pub use binaries::Binaries;
pub use dns::{API_SERVER_HOST, PodRecord, ServiceRecord};

use crate::TestCluster;

/// Field manager of the kubelet's writes.
pub const KUBELET_MANAGER: &str = "e2e-process-kubelet";
/// The node pods are bound to.
pub const NODE_NAME: &str = "e2e-process-node";

const RESYNC: Duration = Duration::from_millis(200);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What the kubelet did, cumulative.
#[derive(Debug, Default)]
pub struct Stats {
    pods_started: AtomicU64,
    pods_deleted: AtomicU64,
    processes_started: AtomicU64,
    restarts: AtomicU64,
    pre_stops: AtomicU64,
    status_patches: AtomicU64,
    errors: AtomicU64,
}

impl Stats {
    /// Pods set up (network, volumes).
    pub fn pods_started(&self) -> u64 {
        self.pods_started.load(Ordering::Relaxed)
    }
    /// Pods removed after their containers ended.
    pub fn pods_deleted(&self) -> u64 {
        self.pods_deleted.load(Ordering::Relaxed)
    }
    /// Container processes started (restarts included).
    pub fn processes_started(&self) -> u64 {
        self.processes_started.load(Ordering::Relaxed)
    }
    /// Container restarts after an exit.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    /// Graceful stops that ran `preStop` hooks.
    pub fn pre_stops(&self) -> u64 {
        self.pre_stops.load(Ordering::Relaxed)
    }
    /// Status patches written.
    pub fn status_patches(&self) -> u64 {
        self.status_patches.load(Ordering::Relaxed)
    }
    /// Errors (failed API calls, failed setups).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// A running pod worker: where the latest pod goes, and its task.
type WorkerHandle = (watch::Sender<Option<Arc<Pod>>>, tokio::task::JoinHandle<()>);

/// Reflector stores the workers read.
#[derive(Clone)]
pub(crate) struct Stores {
    secrets: Store<Secret>,
    configmaps: Store<ConfigMap>,
}

pub(crate) struct Shared {
    network: network::PodNetwork,
    binaries: Binaries,
    root: PathBuf,
    namespaces: Mutex<HashSet<String>>,
    records: Mutex<HashMap<String, PodRecord>>,
    services: Mutex<Vec<ServiceRecord>>,
    /// Port of the apiserver forwarder on the gateway address.
    api_port: u16,
    stats: Stats,
}

impl Shared {
    fn managed(&self, ns: &str) -> bool {
        self.namespaces.lock().is_ok_and(|n| n.contains(ns))
    }

    fn service_records(&self) -> Vec<ServiceRecord> {
        self.services.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn service_record(svc: &Service) -> ServiceRecord {
    let spec = svc.spec.clone().unwrap_or_default();
    ServiceRecord {
        namespace: svc.namespace().unwrap_or_default(),
        name: svc.name_any(),
        selector: spec.selector.clone(),
        publish_not_ready: spec.publish_not_ready_addresses == Some(true),
        ports: spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                let target = match &p.target_port {
                    Some(IntOrString::Int(n)) => u16::try_from(*n).ok()?,
                    _ => port,
                };
                Some((port, target))
            })
            .collect(),
    }
}

/// A running process kubelet (see the module documentation).
pub struct ProcessKubelet {
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
    running: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl std::fmt::Debug for ProcessKubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessKubelet")
            .field("root", &self.shared.root)
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

/// Why this machine cannot run the process kubelet (`None`: it can).
pub fn unavailable_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some(
            "not root: network and mount namespaces need CAP_SYS_ADMIN/CAP_NET_ADMIN".into(),
        );
    }
    for tool in ["ip", "unshare", "nsenter", "setpriv", "chroot"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "`{tool}` not found on PATH (iproute2 / util-linux / coreutils)"
            ));
        }
    }
    None
}

/// The `nats-operator` binary of this workspace, built if needed (`NATS_OPERATOR_BIN`
/// overrides): containers whose command is `/nats-operator` run it. Built once per test
/// process: every kubelet and `render` of a run use the same binary, and later calls do not
/// wait for the build directory's lock.
pub fn operator_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_OPERATOR_BIN") {
        return Ok(PathBuf::from(p));
    }
    static BUILT: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_operator().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_operator() -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().context("workspace root")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "nats-operator",
            "--bin",
            "nats-operator",
        ])
        .status()
        .context("running cargo build for the nats-operator binary")?;
    if !status.success() {
        return Err(anyhow!("cargo build -p nats-operator failed"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target.join("debug").join("nats-operator");
    bin.is_file()
        .then_some(bin.clone())
        .ok_or_else(|| anyhow!("{} missing after cargo build", bin.display()))
}

/// `nats-operator render -f -` of `manifest` with the workspace binary: the YAML it prints,
/// or an error carrying what it printed on stderr.
pub fn render(manifest: &str) -> Result<String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(operator_binary()?)
        .args(["render", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nats-operator render")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(manifest.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(anyhow!(
            "nats-operator render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).context("render output is not UTF-8")
}

impl ProcessKubelet {
    /// Starts a kubelet that runs the pods of `namespaces` (more with [`Self::manage`]).
    pub fn start(cluster: &TestCluster, namespaces: &[&str]) -> Result<ProcessKubelet> {
        if let Some(why) = unavailable_reason() {
            return Err(anyhow!("the process kubelet cannot run here: {why}"));
        }
        let operator = operator_binary()?;
        let mut binaries = Binaries::discover(Some(operator)).map_err(|e| anyhow!(e))?;
        let dir = tempfile::Builder::new()
            .prefix("e2e-process-kubelet-")
            .tempdir()
            .context("kubelet directory")?;
        // Containers may run as any user: the run's tree is traversable by all.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .context("kubelet directory permissions")?;
        binaries
            .install_into(&dir.path().join("bin"))
            .context("installing binaries for the containers")?;
        let network = network::PodNetwork::create()?;
        let api = ApiForwarder::bind(cluster.config(), network.gateway())?;
        let shared = Arc::new(Shared {
            network,
            binaries,
            root: dir.path().to_path_buf(),
            namespaces: Mutex::new(namespaces.iter().map(|s| s.to_string()).collect()),
            records: Mutex::new(HashMap::new()),
            services: Mutex::new(Vec::new()),
            api_port: api.port,
            stats: Stats::default(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let config = cluster.config().clone();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("e2e-process-kubelet".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("e2e-process-kubelet-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("process kubelet: building runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    if let Err(e) = supervise(config, s, api, stop_rx).await {
                        tracing::error!("process kubelet stopped: {e:#}");
                    }
                });
            })
            .context("spawning the process kubelet thread")?;
        Ok(ProcessKubelet {
            shared,
            _dir: dir,
            running: Mutex::new(Some((stop_tx, thread))),
        })
    }

    /// Runs the pods of `namespace` too.
    pub fn manage(&self, namespace: &str) {
        if let Ok(mut n) = self.shared.namespaces.lock() {
            n.insert(namespace.to_string());
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The nats-server versions it can run, newest first.
    pub fn nats_versions(&self) -> Vec<String> {
        self.shared.binaries.versions()
    }

    /// The IP of pod `namespace/name`, while it runs.
    pub fn pod_ip(&self, namespace: &str, name: &str) -> Option<Ipv4Addr> {
        self.shared.records.lock().ok().and_then(|r| {
            r.values()
                .find(|p| p.namespace == namespace && p.name == name && !p.terminating)
                .map(|p| p.ip)
        })
    }

    /// The endpoints of Service `namespace/name` (see [`dns::endpoints`]) with the target
    /// port of its `port`.
    pub fn endpoints(&self, namespace: &str, name: &str, port: u16) -> Vec<SocketAddr> {
        KubeletView(self.shared.clone()).endpoints(namespace, name, port)
    }

    /// The log of a container of pod `namespace/name` (every incarnation of that name).
    pub fn logs(&self, namespace: &str, name: &str, container: &str) -> String {
        let dir = self.shared.root.join("logs").join(namespace);
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let fname = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if fname.starts_with(&format!("{name}-"))
                    && fname.ends_with(&format!("-{container}.log"))
                {
                    out += &format!("==> {fname}\n");
                    out += &std::fs::read_to_string(&f).unwrap_or_default();
                }
            }
        }
        out
    }

    /// The directory of PVC `namespace/claim` (it outlives pods).
    pub fn claim_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        self.shared.root.join("pvc").join(namespace).join(claim)
    }

    /// Stops every pod at once (SIGKILL) and the kubelet; removes its network.
    pub fn stop(&self) {
        let running = match self.running.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some((tx, thread)) = running {
            let _ = tx.send(true);
            let _ = thread.join();
        }
    }
}

impl Drop for ProcessKubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn supervise(
    config: Config,
    shared: Arc<Shared>,
    api: ApiForwarder,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let client = Client::try_from(config).context("building the kubelet's client")?;
    if let Err(e) = register_node(&client).await {
        shared.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("process kubelet: registering node {NODE_NAME}: {e:#}");
    }
    let api_forwarding = tokio::spawn(api.run()?);
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (services, svc_writer) = reflector::store::<Service>();
    let (secrets, secret_writer) = reflector::store::<Secret>();
    let (configmaps, cm_writer) = reflector::store::<ConfigMap>();
    let stores = Stores {
        secrets,
        configmaps,
    };
    let (kick_tx, mut kick_rx) = tokio::sync::mpsc::channel::<()>(1);
    let kick = move || {
        let _ = kick_tx.try_send(());
    };
    let k1 = kick.clone();
    let pod_watch = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .applied_objects()
        .for_each(move |_| {
            k1();
            async {}
        });
    let k2 = kick.clone();
    let svc_watch = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(svc_writer)
    .applied_objects()
    .for_each(move |_| {
        k2();
        async {}
    });
    let secret_watch = watcher(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(secret_writer)
    .for_each(|_| async {});
    let cm_watch = watcher(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(cm_writer)
    .for_each(|_| async {});

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut bound: HashSet<String> = HashSet::new();
    let main = async {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RESYNC) => {}
                _ = kick_rx.recv() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            if let Ok(mut s) = shared.services.lock() {
                *s = services
                    .state()
                    .iter()
                    .filter(|svc| shared.managed(&svc.namespace().unwrap_or_default()))
                    .map(|svc| service_record(svc))
                    .collect();
            }
            let mut seen = HashSet::new();
            for pod in pods.state() {
                let ns = pod.namespace().unwrap_or_default();
                if !shared.managed(&ns) {
                    continue;
                }
                let uid = pod.uid().unwrap_or_default();
                seen.insert(uid.clone());
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                let deleting = pod.metadata.deletion_timestamp.is_some();
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                match node.as_deref() {
                    None if !deleting && !bound.contains(&uid) => {
                        if bind(&client, &pod).await.is_ok() {
                            bound.insert(uid);
                        } else {
                            shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(NODE_NAME) => {
                        if let Some((tx, _)) = workers.get(&uid) {
                            tx.send_replace(Some(pod.clone()));
                        } else if !deleting && phase != "Failed" && phase != "Succeeded" {
                            let (tx, rx) = watch::channel(Some(pod.clone()));
                            let w = worker::Worker {
                                shared: shared.clone(),
                                client: client.clone(),
                                stores: stores.clone(),
                                pod: rx,
                                shutdown: shutdown_rx.clone(),
                            };
                            workers.insert(uid, (tx, tokio::spawn(w.run())));
                        } else if deleting {
                            // Ours, but not running (ended, or from before): remove it.
                            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                            let _ = crate::kubelet::remove_pod(&api, &pod.name_any(), &uid).await;
                        }
                    }
                    _ => {}
                }
            }
            for (uid, (tx, _)) in workers.iter() {
                if !seen.contains(uid) {
                    tx.send_replace(None);
                }
            }
            workers.retain(|_, (_, h)| !h.is_finished());
            bound.retain(|uid| seen.contains(uid));
        }
        let _ = shutdown_tx.send(true);
        for (_, (_, h)) in workers.drain() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, h).await;
        }
    };
    tokio::select! {
        _ = main => {}
        _ = pod_watch => {}
        _ = svc_watch => {}
        _ = secret_watch => {}
        _ = cm_watch => {}
    }
    api_forwarding.abort();
    Ok(())
}

/// Registers the node pods are bound to (once per cluster: kubelets of a cluster share it).
async fn register_node(client: &Client) -> Result<()> {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(NODE_NAME.into()),
            labels: Some([("kubernetes.io/hostname".to_string(), NODE_NAME.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Where pods reach the apiserver: a listener on the bridge's gateway address (port 443
/// when free) that pipes every connection from the pod network to the apiserver. TLS passes
/// through untouched: pods dial [`API_SERVER_HOST`], a name in the apiserver's certificate.
pub(crate) struct ApiForwarder {
    listener: std::net::TcpListener,
    pub(crate) port: u16,
    gateway: Ipv4Addr,
    apiserver: String,
}

impl ApiForwarder {
    pub(crate) fn bind(config: &Config, gateway: Ipv4Addr) -> Result<ApiForwarder> {
        let url = &config.cluster_url;
        let host = url
            .host()
            .with_context(|| format!("apiserver URL {url} has no host"))?;
        let apiserver = format!("{host}:{}", url.port_u16().unwrap_or(443));
        let listener = std::net::TcpListener::bind((gateway, 443))
            .or_else(|_| std::net::TcpListener::bind((gateway, 0)))
            .with_context(|| format!("listening on {gateway} for the pods' apiserver"))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        Ok(ApiForwarder {
            listener,
            port,
            gateway,
            apiserver,
        })
    }

    /// The forwarding loop (needs a tokio runtime to register the listener).
    pub(crate) fn run(self) -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .context("registering the apiserver forwarder")?;
        let (apiserver, gateway) = (self.apiserver, self.gateway.octets());
        // Only pods (the bridge's /16) get through, whatever else routes to this address.
        Ok(forward(listener, move |peer| match peer.ip() {
            std::net::IpAddr::V4(ip) if ip.octets()[..2] == gateway[..2] => Some(apiserver.clone()),
            _ => None,
        }))
    }
}

/// Accepts connections on `listener` and pipes each to the address `target` names for its
/// peer (`None`: the connection is closed), until the listener fails or the task is dropped.
async fn forward<A>(
    listener: tokio::net::TcpListener,
    mut target: impl FnMut(SocketAddr) -> Option<A>,
) where
    A: tokio::net::ToSocketAddrs + Send + 'static,
{
    loop {
        let Ok((mut inbound, peer)) = listener.accept().await else {
            break;
        };
        let Some(to) = target(peer) else { continue };
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

async fn bind(client: &Client, pod: &Pod) -> Result<()> {
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let uid = pod.uid().unwrap_or_default();
    crate::kubelet::bind_pod(&api, &ns, &pod.name_any(), &uid, NODE_NAME)
        .await
        .context("binding")?;
    Ok(())
}

/// A stand-in for kube-proxy in front of one Service port, for clients on the host: each
/// new connection goes to the next ready endpoint (round robin), as a ClusterIP would
/// spread them. Stops when dropped.
pub struct ServiceProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceProxy {
    /// Listens on `127.0.0.1:<random>` for Service `namespace/name` port `port`.
    pub async fn start(
        kubelet: &ProcessKubelet,
        namespace: &str,
        name: &str,
        port: u16,
    ) -> Result<ServiceProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = kubelet.shared.clone();
        let (ns, svc) = (namespace.to_string(), name.to_string());
        let mut next = 0usize;
        let task = tokio::spawn(forward(listener, move |_| {
            let eps = KubeletView(shared.clone()).endpoints(&ns, &svc, port);
            let target = eps.get(next % eps.len().max(1)).copied()?;
            next = next.wrapping_add(1);
            Some(target)
        }));
        Ok(ServiceProxy { addr, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct KubeletView(Arc<Shared>);

impl KubeletView {
    fn endpoints(&self, namespace: &str, name: &str, port: u16) -> Vec<SocketAddr> {
        let pods: Vec<PodRecord> = self
            .0
            .records
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        let services = self
            .0
            .services
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let Some(svc) = services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
        else {
            return Vec::new();
        };
        let target = svc
            .ports
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, t)| *t)
            .unwrap_or(port);
        dns::endpoints(svc, &pods)
            .into_iter()
            .map(|ip| SocketAddr::from((ip, target)))
            .collect()
    }
}
