//! A test kubelet: makes the operator's pods look scheduled, running and ready in a control
//! plane that has no scheduler and no kubelet.
//!
//! It watches pods labelled `app=nats` (in one namespace or all) and, for each:
//! * **binds** an unscheduled pod to a fake node through the `pods/binding` subresource (as the
//!   scheduler does; the Node object does not exist, the apiserver does not check). This is
//!   deliberate: the apiserver deletes a pod without `spec.nodeName` at once, whatever the
//!   grace period, so without binding no deletion would ever be graceful and the operator's
//!   "wait while a member is terminating" rule would never be exercised;
//! * **starts** it: patches `status` (subresource) to phase `Running` with a unique pod IP from
//!   `10.244.0.0/16`, the node's host IP, the conditions `PodScheduled`, `Initialized`,
//!   `ContainersReady`, `Ready` and a running, ready status per container. With a ready delay
//!   the pod is first `Running` but not ready, and ready once the delay passed;
//! * **stops** it: a bound pod with a `deletionTimestamp` (graceful deletion: the operator's
//!   pods ask for 150 s) is deleted with grace period 0 (uid precondition) after a short
//!   simulated lame duck ([`Behaviour::lame_duck`]).
//!
//! Tests can keep a pod from becoming ready ([`TestKubelet::hold_unready`]) and make a pod fail
//! ([`mark_failed`]: phase `Failed`, containers terminated with exit code 1; the kubelet
//! never touches a pod that ended).
//!
//! It runs on a thread of its own with its own tokio runtime (like [`crate::WebhookServer`]),
//! so it outlives single `#[tokio::test]`s. It writes only when a pod's status differs from
//! what it should be, so a steady state costs nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Binding, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    HostIP, ObjectReference, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

use crate::TestCluster;

/// Field manager of the kubelet's writes.
pub const KUBELET_MANAGER: &str = "e2e-kubelet";
/// Name of the (fake) node pods are bound to.
pub const NODE_NAME: &str = "e2e-node";
/// Host IP of the fake node.
pub const HOST_IP: &str = "10.0.0.10";
/// Label selector of the pods the kubelet runs.
pub const POD_SELECTOR: &str = "app=nats";

/// Pods synced at once.
const CONCURRENCY: usize = 16;
/// How often every known pod is looked at again (ready delays, lame ducks, behaviour changes).
const RESYNC: Duration = Duration::from_millis(200);

/// How the kubelet treats pods (per namespace, see [`TestKubelet::configure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    /// Time from `Running` to `Ready` (zero: ready at once).
    pub ready_delay: Duration,
    /// Time a terminating pod lingers before the kubelet removes it (grace period 0).
    pub lame_duck: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            ready_delay: Duration::ZERO,
            lame_duck: Duration::from_millis(500),
        }
    }
}

/// What the kubelet did, cumulative.
#[derive(Debug, Default)]
pub struct KubeletStats {
    bound: AtomicU64,
    status_patches: AtomicU64,
    deleted: AtomicU64,
    errors: AtomicU64,
}

impl KubeletStats {
    /// Pods bound to the fake node.
    pub fn bound(&self) -> u64 {
        self.bound.load(Ordering::Relaxed)
    }
    /// Status patches written.
    pub fn status_patches(&self) -> u64 {
        self.status_patches.load(Ordering::Relaxed)
    }
    /// Terminating pods removed.
    pub fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }
    /// Failed API calls (conflicts and not-found included).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Settings {
    default: Behaviour,
    namespaces: HashMap<String, Behaviour>,
    unready: HashSet<(String, String)>,
}

impl Settings {
    fn behaviour(&self, ns: &str) -> Behaviour {
        self.namespaces.get(ns).copied().unwrap_or(self.default)
    }
}

/// A running test kubelet (see the module documentation).
pub struct TestKubelet {
    settings: Arc<Mutex<Settings>>,
    stats: Arc<KubeletStats>,
    running: Mutex<Option<Running>>,
}

struct Running {
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for TestKubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKubelet")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl TestKubelet {
    /// The kubelet shared by all tests of this test binary (all namespaces), started on
    /// first use.
    pub fn shared(cluster: &TestCluster) -> Result<&'static TestKubelet> {
        static SHARED: OnceLock<std::result::Result<TestKubelet, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start(cluster, None).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("test kubelet unavailable: {e}"))
    }

    /// Starts a kubelet for the pods of `namespace` (`None`: every namespace).
    pub fn start(cluster: &TestCluster, namespace: Option<&str>) -> Result<TestKubelet> {
        let settings = Arc::new(Mutex::new(Settings::default()));
        let stats = Arc::new(KubeletStats::default());
        let (shutdown, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = cluster.config().clone();
        let ns = namespace.map(str::to_string);
        let (s, st) = (settings.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("e2e-kubelet".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("e2e-kubelet-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("test kubelet: building runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    tokio::select! {
                        r = run(config, ns, s, st) => {
                            if let Err(e) = r {
                                tracing::error!("test kubelet stopped: {e:#}");
                            }
                        }
                        _ = stop_rx => {}
                    }
                });
            })
            .context("spawning the test kubelet thread")?;
        Ok(TestKubelet {
            settings,
            stats,
            running: Mutex::new(Some(Running { shutdown, thread })),
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> &KubeletStats {
        &self.stats
    }

    /// Sets the behaviour for the pods of `namespace`.
    pub fn configure(&self, namespace: &str, behaviour: Behaviour) {
        if let Ok(mut s) = self.settings.lock() {
            s.namespaces.insert(namespace.to_string(), behaviour);
        }
    }

    /// Keeps pod `namespace/name` (any incarnation) from becoming ready (`true`), or lets it
    /// become ready again (`false`).
    pub fn hold_unready(&self, namespace: &str, name: &str, hold: bool) {
        if let Ok(mut s) = self.settings.lock() {
            let key = (namespace.to_string(), name.to_string());
            if hold {
                s.unready.insert(key);
            } else {
                s.unready.remove(&key);
            }
        }
    }

    /// Stops the kubelet (a no-op when stopped).
    pub fn stop(&self) {
        let running = match self.running.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(r) = running {
            let _ = r.shutdown.send(());
            let _ = r.thread.join();
        }
    }
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Marks pod `namespace/name` as `Failed` (every container terminated with exit code 1), as
/// a kubelet reports a crashed pod whose restart policy is `Never`, or an evicted one.
pub async fn mark_failed(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = api
        .get(name)
        .await
        .with_context(|| format!("get pod {name}"))?;
    let now = Time(Timestamp::now());
    let statuses = container_names(&pod)
        .into_iter()
        .map(|(c, image)| ContainerStatus {
            name: c,
            image,
            image_id: String::new(),
            ready: false,
            restart_count: 0,
            started: Some(false),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    reason: Some("Error".into()),
                    finished_at: Some(now.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let mut status = pod.status.clone().unwrap_or_default();
    status.phase = Some("Failed".into());
    status.reason = Some("Error".into());
    status.message = Some("failed by the e2e test".into());
    status.container_statuses = Some(statuses);
    status.conditions = Some(
        ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
            .iter()
            .map(|t| condition(t, *t == "PodScheduled" || *t == "Initialized", &now))
            .collect(),
    );
    api.patch_status(name, &manager(), &Patch::Merge(json!({ "status": status })))
        .await
        .with_context(|| format!("marking pod {namespace}/{name} Failed"))?;
    Ok(())
}

/// Binds pod `namespace/name` (incarnation `uid`) to `node` through `pods/binding`, as the
/// scheduler does. `Ok(true)`: bound now; `Ok(false)`: already bound (a stale cache) or gone.
pub(crate) async fn bind_pod(
    api: &Api<Pod>,
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
) -> kube::Result<bool> {
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            uid: Some(uid.to_string()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<Binding, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes pod `name` at once (grace 0), only incarnation `uid`, as a kubelet does once its
/// containers ended. `Ok(true)`: deleted now; `Ok(false)`: gone or replaced already.
pub(crate) async fn remove_pod(api: &Api<Pod>, name: &str, uid: &str) -> kube::Result<bool> {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

fn manager() -> PatchParams {
    PatchParams {
        field_manager: Some(KUBELET_MANAGER.into()),
        ..Default::default()
    }
}

fn condition(type_: &str, ok: bool, now: &Time) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    }
}

/// (name, image) of the pod's app containers.
fn container_names(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// Per-incarnation bookkeeping (keyed by uid).
#[derive(Default)]
struct Memory {
    ips: HashMap<String, String>,
    /// Pods bound by us (the cache may not show it yet: no second binding).
    bound: HashSet<String>,
    /// The readiness we last reported (the cache may lag: no second identical patch).
    reported: HashMap<String, bool>,
    running_since: HashMap<String, Instant>,
    terminating_since: HashMap<String, Instant>,
}

struct Kubelet {
    client: Client,
    store: Store<Pod>,
    settings: Arc<Mutex<Settings>>,
    stats: Arc<KubeletStats>,
    memory: Mutex<Memory>,
    next_ip: AtomicU32,
    pending: Mutex<HashSet<ObjectRef<Pod>>>,
}

async fn run(
    config: Config,
    namespace: Option<String>,
    settings: Arc<Mutex<Settings>>,
    stats: Arc<KubeletStats>,
) -> Result<()> {
    let client = Client::try_from(config).context("building the kubelet's client")?;
    let api: Api<Pod> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let kubelet = Arc::new(Kubelet {
        client,
        store: store.clone(),
        settings,
        stats,
        memory: Mutex::new(Memory::default()),
        next_ip: AtomicU32::new(1),
        pending: Mutex::new(HashSet::new()),
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<Pod>>();
    let enqueue = {
        let k = kubelet.clone();
        move |r: ObjectRef<Pod>| {
            let fresh = k.pending.lock().map(|mut p| p.insert(r.clone()));
            if fresh.unwrap_or(true) {
                let _ = tx.send(r);
            }
        }
    };
    let watch_enqueue = enqueue.clone();
    let watch = watcher(api, watcher::Config::default().labels(POD_SELECTOR))
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .for_each(move |p| {
            match p {
                Ok(p) => watch_enqueue(ObjectRef::from_obj(&p)),
                Err(e) => tracing::debug!("test kubelet watch: {e}"),
            }
            async {}
        });
    let resync = {
        let store = store.clone();
        async move {
            let mut tick = tokio::time::interval(RESYNC);
            loop {
                tick.tick().await;
                for p in store.state() {
                    enqueue(ObjectRef::from_obj(p.as_ref()));
                }
            }
        }
    };
    let work = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).for_each_concurrent(
        CONCURRENCY,
        |r| {
            let k = kubelet.clone();
            async move {
                if let Err(e) = k.sync(&r).await {
                    k.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("test kubelet: {r}: {e:#}");
                }
                // Only now: a pod is never synced twice at once (changes that came in
                // meanwhile are picked up by the next resync).
                if let Ok(mut p) = k.pending.lock() {
                    p.remove(&r);
                }
            }
        },
    );
    tokio::join!(watch, resync, work);
    Ok(())
}

impl Kubelet {
    fn pod_ip(&self, uid: &str) -> String {
        let mut m = match self.memory.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.ips
            .entry(uid.to_string())
            .or_insert_with(|| {
                // 10.244.0.1 .. 10.244.255.254, then wrapping (65k pods is beyond any test).
                let n = self.next_ip.fetch_add(1, Ordering::Relaxed) % 65_534 + 1;
                format!("10.244.{}.{}", n / 256, n % 256)
            })
            .clone()
    }

    fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.memory.lock() {
            m.ips.remove(uid);
            m.bound.remove(uid);
            m.reported.remove(uid);
            m.running_since.remove(uid);
            m.terminating_since.remove(uid);
        }
    }

    async fn sync(&self, r: &ObjectRef<Pod>) -> Result<()> {
        let Some(pod) = self.store.get(r) else {
            return Ok(());
        };
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let uid = pod.uid().unwrap_or_default();
        let (behaviour, held) = match self.settings.lock() {
            Ok(s) => (
                s.behaviour(&ns),
                s.unready.contains(&(ns.clone(), name.clone())),
            ),
            Err(_) => (Behaviour::default(), false),
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());

        if pod.metadata.deletion_timestamp.is_some() {
            // An unbound pod is deleted by the apiserver at once: nothing to do.
            if node.is_none() {
                return Ok(());
            }
            let since = match self.memory.lock() {
                Ok(mut m) => *m
                    .terminating_since
                    .entry(uid.clone())
                    .or_insert_with(Instant::now),
                Err(_) => Instant::now(),
            };
            if since.elapsed() < behaviour.lame_duck {
                return Ok(());
            }
            let deleted = remove_pod(&api, &name, &uid)
                .await
                .context("deleting a terminating pod")?;
            if deleted {
                self.stats.deleted.fetch_add(1, Ordering::Relaxed);
            }
            self.forget(&uid);
            Ok(())
        } else if node.is_none() {
            if self.memory.lock().is_ok_and(|m| m.bound.contains(&uid)) {
                return Ok(());
            }
            if bind_pod(&api, &ns, &name, &uid, NODE_NAME)
                .await
                .context("binding")?
            {
                self.stats.bound.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut m) = self.memory.lock() {
                    m.bound.insert(uid);
                }
            }
            Ok(())
        } else {
            let status = pod.status.clone().unwrap_or_default();
            let phase = status.phase.clone().unwrap_or_default();
            if phase == "Failed" || phase == "Succeeded" {
                return Ok(());
            }
            let running_since = self
                .memory
                .lock()
                .ok()
                .and_then(|m| m.running_since.get(&uid).copied());
            let want_ready = !held
                && (behaviour.ready_delay.is_zero()
                    || running_since.is_some_and(|t| t.elapsed() >= behaviour.ready_delay));
            let is_ready = status
                .conditions
                .as_ref()
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if phase == "Running" && status.pod_ip.is_some() && is_ready == want_ready {
                if running_since.is_none()
                    && let Ok(mut m) = self.memory.lock()
                {
                    m.running_since.insert(uid.clone(), Instant::now());
                }
                return Ok(());
            }
            let already = self
                .memory
                .lock()
                .ok()
                .and_then(|m| m.reported.get(&uid).copied());
            if already == Some(want_ready) {
                // Reported already; the cache has not caught up yet.
                return Ok(());
            }
            let ip = self.pod_ip(&uid);
            let now = Time(Timestamp::now());
            let started = status.start_time.clone().unwrap_or_else(|| now.clone());
            let containers = container_names(&pod)
                .into_iter()
                .map(|(c, image)| ContainerStatus {
                    name: c,
                    image,
                    image_id: String::new(),
                    ready: want_ready,
                    restart_count: 0,
                    started: Some(true),
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(started.clone()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect();
            let keep_time = |t: &str, ok: bool| {
                status
                    .conditions
                    .as_ref()
                    .and_then(|cs| cs.iter().find(|c| c.type_ == t))
                    .filter(|c| (c.status == "True") == ok)
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| now.clone())
            };
            let conditions = [
                ("PodScheduled", true),
                ("Initialized", true),
                ("ContainersReady", want_ready),
                ("Ready", want_ready),
            ]
            .iter()
            .map(|(t, ok)| condition(t, *ok, &keep_time(t, *ok)))
            .collect();
            let next = PodStatus {
                phase: Some("Running".into()),
                host_ip: Some(HOST_IP.into()),
                host_ips: Some(vec![HostIP { ip: HOST_IP.into() }]),
                pod_ip: Some(ip.clone()),
                pod_ips: Some(vec![PodIP { ip }]),
                start_time: Some(started),
                conditions: Some(conditions),
                container_statuses: Some(containers),
                qos_class: status.qos_class.clone(),
                ..Default::default()
            };
            api.patch_status(&name, &manager(), &Patch::Merge(json!({ "status": next })))
                .await
                .context("patching the pod status")?;
            self.stats.status_patches.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut m) = self.memory.lock() {
                m.running_since
                    .entry(uid.clone())
                    .or_insert_with(Instant::now);
                m.reported.insert(uid, want_ready);
            }
            Ok(())
        }
    }
}
