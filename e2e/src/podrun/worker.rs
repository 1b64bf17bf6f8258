//! One pod's life on the process kubelet: network, volumes, hosts file, init containers,
//! containers as real processes (restarted with back-off when they exit), probes, status
//! written back, and a graceful stop (`preStop`, SIGTERM, SIGKILL at the end of the grace
//! period) when the pod is deleted.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestSpec, TokenRequestStatus,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, DownwardAPIVolumeFile, HostIP, Pod, PodCondition,
    PodIP, PodStatus, ProjectedVolumeSource, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::binaries;
use super::dns::{self, PodRecord};
use super::network::PodNet;
use super::probe::{self, Action, Tracker};
use super::rootfs::{self, Launch, Mount};
use super::volumes;
use super::{KUBELET_MANAGER, NODE_NAME, Shared, Stores};

const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Time between a `preStop` hook's end and SIGTERM: what a real node's container runtime
/// call takes, at its fast end.
const CRI_STOP_LATENCY: Duration = Duration::from_millis(20);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Proc {
    child: Child,
    pid: u32,
    started_at: Time,
}

struct Probes {
    spec: probe::Spec,
    tracker: Tracker,
    next: Instant,
}

/// A projected ServiceAccount token and when to ask for the next one.
struct Token {
    value: Option<String>,
    /// Why the last request failed.
    error: Option<String>,
    next: Instant,
}

impl Default for Token {
    fn default() -> Self {
        Token {
            value: None,
            error: None,
            next: Instant::now(),
        }
    }
}

/// The key of a projected token: volume and path.
fn token_key(volume: &str, path: &str) -> String {
    format!("{volume}/{path}")
}

/// When to ask for a new token, as the kubelet does: after 80% of its life, counted from the
/// shorter of the lifetime asked for and the one issued (the issuer may shorten it, or
/// extend the default 3607 s one to a year for old clients).
fn renew_in(requested_secs: i64, expires_in_secs: Option<i64>) -> Duration {
    let life = expires_in_secs
        .unwrap_or(requested_secs)
        .min(requested_secs)
        .max(1);
    Duration::from_secs(life as u64 * 4 / 5)
}

/// A file mode from the API (the default 0644).
fn mode_of(mode: Option<i32>) -> u32 {
    mode.unwrap_or(0o644) as u32 & 0o777
}

struct Ctr {
    spec: Container,
    init: bool,
    log: PathBuf,
    proc: Option<Proc>,
    restarts: i32,
    last_term: Option<ContainerStateTerminated>,
    /// Why it is not running (reason, message).
    waiting: Option<(String, String)>,
    /// Ended for good (init containers that succeeded).
    done: bool,
    next_start: Instant,
    backoff: Duration,
    started: bool,
    ready: bool,
    startup: Option<Probes>,
    readiness: Option<Probes>,
    liveness: Option<Probes>,
}

impl Ctr {
    fn new(spec: &Container, init: bool, log: PathBuf) -> Ctr {
        let mk = |p| {
            probe::spec(spec, p).map(|spec| Probes {
                spec,
                tracker: Tracker::default(),
                next: Instant::now(),
            })
        };
        Ctr {
            spec: spec.clone(),
            init,
            log,
            proc: None,
            restarts: 0,
            last_term: None,
            waiting: Some(("ContainerCreating".into(), String::new())),
            done: false,
            next_start: Instant::now(),
            backoff: Duration::from_secs(1),
            started: false,
            ready: false,
            startup: mk(spec.startup_probe.as_ref()),
            readiness: mk(spec.readiness_probe.as_ref()),
            liveness: mk(spec.liveness_probe.as_ref()),
        }
    }

    fn reset_probes(&mut self) {
        let now = Instant::now();
        for p in [&mut self.startup, &mut self.readiness, &mut self.liveness]
            .into_iter()
            .flatten()
        {
            p.tracker = Tracker::default();
            // A little time to bind its ports: the first probe of a real kubelet is not at t=0 either.
            p.next = now + p.spec.initial_delay + Duration::from_millis(300);
        }
        self.started = self.startup.is_none();
        self.ready = false;
    }
}

/// Everything the worker needs from the kubelet.
pub(crate) struct Worker {
    pub shared: Arc<Shared>,
    pub client: Client,
    pub stores: Stores,
    pub pod: watch::Receiver<Option<Arc<Pod>>>,
    pub shutdown: watch::Receiver<bool>,
}

struct State {
    uid: String,
    ns: String,
    name: String,
    net: PodNet,
    dir: PathBuf,
    hosts: PathBuf,
    hosts_text: String,
    ctrs: Vec<Ctr>,
    user: Option<(u32, u32, Vec<u32>)>,
    fs_group: Option<u32>,
    volumes: HashMap<String, PathBuf>,
    volumes_ready: bool,
    /// ServiceAccount tokens of projected volumes, by [`token_key`].
    tokens: HashMap<String, Token>,
    last_status: Option<serde_json::Value>,
    transitions: HashMap<String, (bool, Time)>,
    start_time: Time,
}

fn now() -> Time {
    Time(Timestamp::now())
}

impl Worker {
    /// Runs the pod until it is deleted (or the kubelet stops).
    pub async fn run(mut self) {
        let Some(pod) = self.pod.borrow().clone() else {
            return;
        };
        let uid = pod.uid().unwrap_or_default();
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let mut st = match self.setup(&pod).await {
            Ok(st) => st,
            Err(e) => {
                self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("process kubelet: setting up {ns}/{name}: {e:#}");
                return;
            }
        };
        self.shared
            .stats
            .pods_started
            .fetch_add(1, Ordering::Relaxed);
        let grace = loop {
            if *self.shutdown.borrow() {
                break Duration::ZERO;
            }
            let current = self.pod.borrow().clone();
            match current {
                None => break Duration::ZERO,
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    let secs = p
                        .metadata
                        .deletion_grace_period_seconds
                        .or(p
                            .spec
                            .as_ref()
                            .and_then(|s| s.termination_grace_period_seconds))
                        .unwrap_or(30)
                        .max(0);
                    break Duration::from_secs(secs as u64);
                }
                Some(p) => {
                    if let Err(e) = self.tick(&mut st, &p).await {
                        self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("process kubelet: {ns}/{name}: {e:#}");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = self.shutdown.changed() => {}
            }
        };
        self.terminate(&mut st, grace).await;
        self.shared.network.remove_pod(&st.net);
        if let Ok(mut r) = self.shared.records.lock() {
            r.remove(&uid);
        }
        let _ = std::fs::remove_dir_all(&st.dir);
        if !*self.shutdown.borrow() {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            match crate::kubelet::remove_pod(&api, &name, &uid).await {
                Ok(true) => {
                    self.shared
                        .stats
                        .pods_deleted
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("process kubelet: deleting {ns}/{name}: {e}");
                }
            }
        }
    }

    async fn setup(&self, pod: &Pod) -> Result<State> {
        let uid = pod.uid().unwrap_or_default();
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let spec = pod.spec.clone().unwrap_or_default();
        let net = self.shared.network.add_pod()?;
        let dir = self.shared.root.join("pods").join(&uid);
        std::fs::create_dir_all(&dir)?;
        let logs = self.shared.root.join("logs").join(&ns);
        std::fs::create_dir_all(&logs)?;
        let short = uid.get(..8).unwrap_or(&uid).to_string();
        let mut ctrs = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            // Native sidecars (restartPolicy Always) run along the app containers.
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            ctrs.push(Ctr::new(
                c,
                !sidecar,
                logs.join(format!("{name}-{short}-{}.log", c.name)),
            ));
        }
        for c in &spec.containers {
            ctrs.push(Ctr::new(
                c,
                false,
                logs.join(format!("{name}-{short}-{}.log", c.name)),
            ));
        }
        let psc = spec.security_context.clone().unwrap_or_default();
        let fs_group = psc.fs_group.map(|g| g as u32);
        let user = psc.run_as_user.map(|u| {
            let g = psc.run_as_group.unwrap_or(u) as u32;
            (u as u32, g, fs_group.into_iter().collect::<Vec<_>>())
        });
        let record = PodRecord {
            namespace: ns.clone(),
            name: name.clone(),
            hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
            subdomain: spec.subdomain.clone(),
            labels: pod.labels().clone(),
            ip: net.ip,
            ready: false,
            terminating: false,
        };
        if let Ok(mut r) = self.shared.records.lock() {
            r.insert(uid.clone(), record);
        }
        Ok(State {
            uid,
            ns,
            name,
            hosts: dir.join("hosts"),
            dir,
            net,
            ctrs,
            user,
            fs_group,
            volumes: HashMap::new(),
            volumes_ready: false,
            tokens: HashMap::new(),
            hosts_text: String::new(),
            last_status: None,
            transitions: HashMap::new(),
            start_time: now(),
        })
    }

    /// Keeps volumes, hosts, processes, probes and the status in line with the pod.
    async fn tick(&self, st: &mut State, pod: &Pod) -> Result<()> {
        self.refresh_tokens(st, pod).await;
        self.sync_volumes(st, pod);
        self.sync_hosts(st)?;
        if st.volumes_ready {
            self.sync_processes(st, pod).await;
            self.run_probes(st).await;
        }
        let all_ready = st.ctrs.iter().filter(|c| !c.init).all(|c| c.ready);
        if let Ok(mut r) = self.shared.records.lock()
            && let Some(rec) = r.get_mut(&st.uid)
        {
            rec.ready = all_ready;
            rec.labels = pod.labels().clone();
        }
        self.report(st, pod).await
    }

    /// The data of Secret `name` in the pod's namespace (`None`: it does not exist).
    fn secret_data(&self, st: &State, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.stores
            .secrets
            .get(&ObjectRef::new(name).within(&st.ns))
            // `stringData` after `data`: its keys win, as the apiserver merges them.
            .map(|sec| {
                let bytes = sec.data.clone().unwrap_or_default();
                let text = sec.string_data.clone().unwrap_or_default();
                (bytes.into_iter().map(|(k, v)| (k, v.0)))
                    .chain(text.into_iter().map(|(k, v)| (k, v.into_bytes())))
                    .collect()
            })
    }

    /// The data of ConfigMap `name` in the pod's namespace (`None`: it does not exist).
    fn configmap_data(&self, st: &State, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.stores
            .configmaps
            .get(&ObjectRef::new(name).within(&st.ns))
            .map(|cm| {
                let text = cm.data.clone().unwrap_or_default();
                let bytes = cm.binary_data.clone().unwrap_or_default();
                (text.into_iter().map(|(k, v)| (k, v.into_bytes())))
                    .chain(bytes.into_iter().map(|(k, v)| (k, v.0)))
                    .collect()
            })
    }

    /// The files of a downward API volume or projection.
    fn downward_files(
        &self,
        st: &State,
        pod: &Pod,
        items: &[DownwardAPIVolumeFile],
        default_mode: Option<i32>,
    ) -> std::result::Result<volumes::Files, String> {
        let mut files = volumes::Files::new();
        for item in items {
            let path = item
                .field_ref
                .as_ref()
                .map(|f| f.field_path.as_str())
                .ok_or_else(|| {
                    format!(
                        "downward API file {:?}: only fieldRef is supported by the process kubelet",
                        item.path
                    )
                })?;
            let value = self
                .field(st, pod, path)
                .ok_or_else(|| format!("downward API file {:?}: field {path:?}", item.path))?;
            files.insert(
                item.path.clone(),
                (value.into_bytes(), mode_of(item.mode.or(default_mode))),
            );
        }
        Ok(files)
    }

    /// The files of a projected volume: Secrets, ConfigMaps, downward API items and
    /// ServiceAccount tokens (from [`Self::refresh_tokens`]) in one directory.
    fn projected_files(
        &self,
        st: &State,
        pod: &Pod,
        volume: &str,
        p: &ProjectedVolumeSource,
    ) -> std::result::Result<volumes::Files, String> {
        let mut files = volumes::Files::new();
        for source in p.sources.iter().flatten() {
            let more = if let Some(s) = &source.secret {
                keyed_files(
                    "secret",
                    &s.name,
                    s.optional,
                    self.secret_data(st, &s.name),
                    s.items.as_deref(),
                    p.default_mode,
                )?
            } else if let Some(c) = &source.config_map {
                keyed_files(
                    "configmap",
                    &c.name,
                    c.optional,
                    self.configmap_data(st, &c.name),
                    c.items.as_deref(),
                    p.default_mode,
                )?
            } else if let Some(d) = &source.downward_api {
                self.downward_files(
                    st,
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    p.default_mode,
                )?
            } else if let Some(t) = &source.service_account_token {
                let token = st.tokens.get(&token_key(volume, &t.path));
                let value = token.and_then(|t| t.value.clone()).ok_or_else(|| {
                    token
                        .and_then(|t| t.error.clone())
                        .unwrap_or_else(|| "no ServiceAccount token yet".into())
                })?;
                [(
                    t.path.clone(),
                    (value.into_bytes(), mode_of(p.default_mode)),
                )]
                .into()
            } else {
                return Err(
                    "a projected source other than secret, configMap, downwardAPI and \
                     serviceAccountToken is not supported by the process kubelet"
                        .into(),
                );
            };
            files.extend(more);
        }
        Ok(files)
    }

    /// Asks for the ServiceAccount tokens of the pod's projected volumes that are missing
    /// or due (as the kubelet: bound to the pod, renewed after 80% of their life).
    async fn refresh_tokens(&self, st: &mut State, pod: &Pod) {
        let spec = pod.spec.clone().unwrap_or_default();
        let account = spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &st.ns);
        for v in spec.volumes.iter().flatten() {
            let Some(p) = &v.projected else { continue };
            for t in p
                .sources
                .iter()
                .flatten()
                .filter_map(|s| s.service_account_token.as_ref())
            {
                let key = token_key(&v.name, &t.path);
                if st.tokens.get(&key).is_some_and(|k| Instant::now() < k.next) {
                    continue;
                }
                let lifetime = t.expiration_seconds.unwrap_or(3600).max(600);
                let request = TokenRequest {
                    spec: Some(TokenRequestSpec {
                        audiences: t.audience.clone().map(|a| vec![a]),
                        expiration_seconds: Some(lifetime),
                        bound_object_ref: Some(BoundObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            name: Some(st.name.clone()),
                            uid: Some(st.uid.clone()),
                        }),
                    }),
                    ..Default::default()
                };
                let issued = api
                    .create_token_request(&account, &PostParams::default(), &request)
                    .await;
                let entry = st.tokens.entry(key).or_default();
                match issued.map(|r| r.status.unwrap_or_default()) {
                    Ok(TokenRequestStatus {
                        token: Some(token),
                        expiration_timestamp,
                    }) => {
                        let expires_in = expiration_timestamp
                            .map(|e| e.0.as_second() - Timestamp::now().as_second());
                        entry.value = Some(token);
                        entry.error = None;
                        entry.next = Instant::now() + renew_in(lifetime, expires_in);
                    }
                    outcome => {
                        let why = match outcome {
                            Err(e) => e.to_string(),
                            Ok(_) => "the TokenRequest returned no token".into(),
                        };
                        self.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                        entry.error = Some(format!(
                            "requesting a token of ServiceAccount {account:?}: {why}"
                        ));
                        entry.next = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
        }
    }

    fn sync_volumes(&self, st: &mut State, pod: &Pod) {
        let vols = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        let mut ready = true;
        for v in &vols {
            let dir = st.dir.join("volumes").join(&v.name);
            let write = |files: volumes::Files| {
                volumes::write_atomic(&dir, &files, st.fs_group)
                    .map(|_| dir.clone())
                    .map_err(|e| format!("{e:#}"))
            };
            let result: std::result::Result<PathBuf, String> = if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                keyed_files(
                    "secret",
                    &name,
                    s.optional,
                    self.secret_data(st, &name),
                    s.items.as_deref(),
                    s.default_mode,
                )
                .and_then(write)
            } else if let Some(c) = &v.config_map {
                keyed_files(
                    "configmap",
                    &c.name,
                    c.optional,
                    self.configmap_data(st, &c.name),
                    c.items.as_deref(),
                    c.default_mode,
                )
                .and_then(write)
            } else if let Some(p) = &v.projected {
                self.projected_files(st, pod, &v.name, p).and_then(write)
            } else if let Some(d) = &v.downward_api {
                self.downward_files(
                    st,
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    d.default_mode,
                )
                .and_then(write)
            } else if v.empty_dir.is_some() {
                volumes::empty_dir(&dir)
                    .map(|_| dir.clone())
                    .map_err(|e| format!("{e:#}"))
            } else if let Some(c) = &v.persistent_volume_claim {
                volumes::claim_dir(&self.shared.root, &st.ns, &c.claim_name, st.fs_group)
                    .map_err(|e| format!("{e:#}"))
            } else {
                Err(format!(
                    "volume {:?}: this kind of volume is not supported by the process kubelet",
                    v.name
                ))
            };
            match result {
                Ok(d) => {
                    st.volumes.insert(v.name.clone(), d);
                }
                Err(e) => {
                    if !st.volumes.contains_key(&v.name) {
                        ready = false;
                        for c in st
                            .ctrs
                            .iter_mut()
                            .filter(|c| c.proc.is_none() && c.restarts == 0)
                        {
                            c.waiting = Some((
                                "ContainerCreating".into(),
                                format!("MountVolume.SetUp failed for volume {:?}: {e}", v.name),
                            ));
                        }
                    }
                }
            }
        }
        st.volumes_ready = ready;
    }

    fn sync_hosts(&self, st: &mut State) -> Result<()> {
        let (me, pods) = match self.shared.records.lock() {
            Ok(r) => (
                r.get(&st.uid).cloned(),
                r.values().cloned().collect::<Vec<_>>(),
            ),
            Err(_) => return Ok(()),
        };
        let Some(me) = me else { return Ok(()) };
        let services = self.shared.service_records();
        let text = dns::hosts_file(&me, &pods, &services, Some(self.shared.network.gateway()));
        if text != st.hosts_text {
            // In place: the file is bind-mounted into the containers.
            std::fs::write(&st.hosts, &text).context("writing the hosts file")?;
            st.hosts_text = text;
        }
        Ok(())
    }

    fn env_of(&self, st: &State, pod: &Pod, c: &Container) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            (
                "HOSTNAME".into(),
                pod.spec
                    .as_ref()
                    .and_then(|s| s.hostname.clone())
                    .unwrap_or_else(|| st.name.clone()),
            ),
            ("HOME".into(), "/".into()),
        ];
        // As a kubelet sets them for the `kubernetes` Service, by name (see dns::API_SERVER_HOST).
        let port = self.shared.api_port.to_string();
        env.push((
            "KUBERNETES_SERVICE_HOST".into(),
            dns::API_SERVER_HOST.into(),
        ));
        env.push(("KUBERNETES_SERVICE_PORT".into(), port.clone()));
        env.push(("KUBERNETES_SERVICE_PORT_HTTPS".into(), port));
        for e in c.env.iter().flatten() {
            let value = if let Some(v) = &e.value {
                expand(v, &env)
            } else if let Some(from) = &e.value_from {
                if let Some(f) = &from.field_ref {
                    self.field(st, pod, &f.field_path).unwrap_or_default()
                } else if let Some(s) = &from.secret_key_ref {
                    self.stores
                        .secrets
                        .get(&ObjectRef::new(&s.name).within(&st.ns))
                        .and_then(|sec| {
                            sec.data
                                .clone()?
                                .get(&s.key)
                                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                        })
                        .unwrap_or_default()
                } else if let Some(m) = &from.config_map_key_ref {
                    self.stores
                        .configmaps
                        .get(&ObjectRef::new(&m.name).within(&st.ns))
                        .and_then(|cm| cm.data.clone()?.get(&m.key).cloned())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            } else {
                String::new()
            };
            env.retain(|(k, _)| *k != e.name);
            env.push((e.name.clone(), value));
        }
        env
    }

    /// A `fieldRef` of the downward API (`None`: one the process kubelet does not know).
    fn field(&self, st: &State, pod: &Pod, path: &str) -> Option<String> {
        // `key="value"` lines, sorted, as the kubelet formats labels and annotations.
        let map = |m: &BTreeMap<String, String>| -> String {
            m.iter()
                .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let key = |prefix: &str| {
            path.strip_prefix(prefix)?
                .strip_suffix("']")
                .map(str::to_string)
        };
        Some(match path {
            "metadata.name" => st.name.clone(),
            "metadata.namespace" => st.ns.clone(),
            "metadata.uid" => st.uid.clone(),
            "metadata.labels" => map(pod.labels()),
            "metadata.annotations" => map(pod.annotations()),
            "status.podIP" | "status.podIPs" => st.net.ip.to_string(),
            "status.hostIP" | "status.hostIPs" => self.shared.network.gateway().to_string(),
            "spec.nodeName" => NODE_NAME.into(),
            "spec.serviceAccountName" => pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
            _ => {
                if let Some(k) = key("metadata.labels['") {
                    pod.labels().get(&k).cloned().unwrap_or_default()
                } else if let Some(k) = key("metadata.annotations['") {
                    pod.annotations().get(&k).cloned().unwrap_or_default()
                } else {
                    return None;
                }
            }
        })
    }

    fn launch(&self, st: &State, c: &Container) -> Launch {
        let mut mounts = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let Some(src) = st.volumes.get(&m.name) else {
                continue;
            };
            let (source, is_file) = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let p = src.join(sub);
                    let f = p.is_file();
                    (p, f)
                }
                None => (src.clone(), false),
            };
            mounts.push(Mount {
                source,
                target: m.mount_path.clone(),
                read_only: m.read_only == Some(true),
                is_file,
            });
        }
        if let Some(bin) = &self.shared.binaries.host_dir {
            mounts.push(Mount {
                source: bin.clone(),
                target: super::binaries::CONTAINER_BIN_DIR.into(),
                read_only: true,
                is_file: false,
            });
        }
        let csc = c.security_context.clone().unwrap_or_default();
        let user = match (csc.run_as_user, &st.user) {
            (Some(u), other) => {
                let g = csc
                    .run_as_group
                    .map(|g| g as u32)
                    .or(other.as_ref().map(|o| o.1))
                    .unwrap_or(u as u32);
                Some((u as u32, g, st.fs_group.into_iter().collect()))
            }
            (None, other) => other.clone(),
        };
        let cdir = st.dir.join("c").join(&c.name);
        Launch {
            root: cdir.join("root"),
            overlay_dir: cdir.join("overlay"),
            mounts,
            hosts: st.hosts.clone(),
            user,
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        }
    }

    fn argv_of(
        &self,
        env: &[(String, String)],
        c: &Container,
    ) -> std::result::Result<Vec<String>, String> {
        let image = c.image.as_deref().unwrap_or_default();
        let mut argv: Vec<String> = match c.command.as_deref() {
            Some(command) if !command.is_empty() => command.to_vec(),
            // No command: the image's entrypoint with the container's args.
            _ => binaries::entrypoint(image)
                .map(|e| vec![e.to_string()])
                .unwrap_or_default(),
        };
        argv.extend(c.args.clone().unwrap_or_default());
        let argv: Vec<String> = argv.iter().map(|a| expand(a, env)).collect();
        self.shared.binaries.resolve(image, &argv)
    }

    async fn start(
        &self,
        st: &State,
        pod: &Pod,
        idx: usize,
    ) -> std::result::Result<Proc, (String, String)> {
        let c = &st.ctrs[idx];
        // A name the kubelet refuses before any pull (an empty repository, upper case).
        let image = c.spec.image.clone().unwrap_or_default();
        if let Err(e) = crate::node::image::normalize_reference(&image) {
            return Err(("InvalidImageName".to_string(), format!("{e:#}")));
        }
        let env = self.env_of(st, pod, &c.spec);
        let argv = self
            .argv_of(&env, &c.spec)
            .map_err(|m| ("ErrImageNeverPull".to_string(), m))?;
        let launch = self.launch(st, &c.spec);
        let _ = std::fs::remove_dir_all(&launch.root);
        std::fs::create_dir_all(&launch.root)
            .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
        let script = rootfs::script(&launch, &rootfs::host_entries(), rootfs::resolve_on_host);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.log)
            .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
        // setpriv: the container dies with the kubelet's thread (also when the test process
        // is killed), after the user switch (which clears a parent-death signal).
        let mut argv_full = vec![
            "setpriv".to_string(),
            "--pdeathsig".into(),
            "KILL".into(),
            "--".into(),
        ];
        argv_full.extend(argv);
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &st.net.netns,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(&argv_full)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| ("RunContainerError".to_string(), e.to_string()))?;
        let pid = child.id().unwrap_or_default();
        self.shared
            .stats
            .processes_started
            .fetch_add(1, Ordering::Relaxed);
        Ok(Proc {
            child,
            pid,
            started_at: now(),
        })
    }

    async fn sync_processes(&self, st: &mut State, pod: &Pod) {
        let restart_policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        // Exits first.
        for c in st.ctrs.iter_mut() {
            let Some(p) = c.proc.as_mut() else { continue };
            if let Ok(Some(status)) = p.child.try_wait() {
                let code = status.code().unwrap_or(137);
                c.last_term = Some(ContainerStateTerminated {
                    exit_code: code,
                    reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                    started_at: Some(p.started_at.clone()),
                    finished_at: Some(now()),
                    container_id: Some(format!("e2e://{}", p.pid)),
                    ..Default::default()
                });
                c.proc = None;
                c.ready = false;
                c.started = false;
                // A finished init container, or one that may not restart, is done.
                let finished = (c.init && code == 0)
                    || restart_policy == "Never"
                    || (restart_policy == "OnFailure" && code == 0);
                if finished {
                    c.done = true;
                    c.waiting = None;
                } else {
                    c.restarts += 1;
                    self.shared.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    c.next_start = Instant::now() + c.backoff;
                    c.waiting = Some((
                        "CrashLoopBackOff".into(),
                        format!(
                            "back-off {:?} restarting failed container {}",
                            c.backoff, c.spec.name
                        ),
                    ));
                    c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // Init containers one at a time, then every app container.
        let pending_init = st.ctrs.iter().position(|c| c.init && !c.done);
        let to_start: Vec<usize> = match pending_init {
            Some(i) => vec![i],
            None => (0..st.ctrs.len()).filter(|i| !st.ctrs[*i].init).collect(),
        };
        for i in to_start {
            let c = &st.ctrs[i];
            if c.proc.is_some() || c.done || Instant::now() < c.next_start {
                continue;
            }
            match self.start(st, pod, i).await {
                Ok(p) => {
                    let c = &mut st.ctrs[i];
                    c.proc = Some(p);
                    c.waiting = None;
                    c.reset_probes();
                }
                Err((reason, msg)) => {
                    let c = &mut st.ctrs[i];
                    c.waiting = Some((reason, msg));
                    c.next_start = Instant::now() + c.backoff;
                    c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn run_probes(&self, st: &mut State) {
        let ip = st.net.ip;
        let now_i = Instant::now();
        let mut jobs = Vec::new();
        for (i, c) in st.ctrs.iter().enumerate() {
            let Some(p) = &c.proc else { continue };
            let pid = p.pid;
            let which: [(u8, Option<&Probes>); 3] = [
                (0, c.startup.as_ref()),
                (1, c.readiness.as_ref()),
                (2, c.liveness.as_ref()),
            ];
            for (kind, pr) in which {
                let Some(pr) = pr else { continue };
                // Readiness and liveness wait for the startup probe.
                if kind > 0 && !c.started {
                    continue;
                }
                if kind == 0 && c.started {
                    continue;
                }
                if now_i < pr.next {
                    continue;
                }
                let spec = pr.spec.clone();
                let user = st.user.clone();
                let binaries = self.shared.binaries.clone();
                let image = c.spec.image.clone().unwrap_or_default();
                jobs.push(async move {
                    let ok = match &spec.action {
                        Action::Exec(argv) => match binaries.resolve(&image, argv) {
                            Ok(argv) => exec_in(pid, user.as_ref(), &argv, spec.timeout).await,
                            Err(_) => false,
                        },
                        a => probe::run_network(a, ip, spec.timeout).await,
                    };
                    (i, kind, ok)
                });
            }
        }
        let results = futures::future::join_all(jobs).await;
        for (i, kind, ok) in results {
            let c = &mut st.ctrs[i];
            let pr = match kind {
                0 => c.startup.as_mut(),
                1 => c.readiness.as_mut(),
                _ => c.liveness.as_mut(),
            };
            let Some(pr) = pr else { continue };
            pr.next = Instant::now() + pr.spec.period;
            let changed = pr.tracker.record(&pr.spec, ok);
            match (kind, changed) {
                (0, Some(true)) => {
                    c.started = true;
                    // Readiness right after start-up, as the kubelet's prober is kicked then.
                    if let Some(r) = c.readiness.as_mut() {
                        r.next = Instant::now();
                    }
                }
                (1, Some(v)) => c.ready = v,
                (0 | 2, Some(false)) => {
                    // Failed start-up or liveness: the container is killed and restarted.
                    if let Some(p) = &c.proc {
                        let _ = signal(p.pid, Signal::KILL);
                    }
                }
                _ => {}
            }
        }
        for c in st.ctrs.iter_mut() {
            if c.proc.is_some() && c.started && c.readiness.is_none() {
                c.ready = true;
            }
        }
    }

    fn condition(&self, st: &mut State, type_: &str, ok: bool) -> PodCondition {
        let entry = st
            .transitions
            .entry(type_.to_string())
            .or_insert_with(|| (ok, now()));
        if entry.0 != ok {
            *entry = (ok, now());
        }
        PodCondition {
            type_: type_.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: Some(entry.1.clone()),
            ..Default::default()
        }
    }

    async fn report(&self, st: &mut State, pod: &Pod) -> Result<()> {
        let statuses = |init: bool, st: &State| -> Vec<ContainerStatus> {
            st.ctrs
                .iter()
                .filter(|c| c.init == init)
                .map(|c| {
                    let state = if let Some(p) = &c.proc {
                        ContainerState {
                            running: Some(ContainerStateRunning {
                                started_at: Some(p.started_at.clone()),
                            }),
                            ..Default::default()
                        }
                    } else if let Some((reason, message)) = &c.waiting {
                        ContainerState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some(reason.clone()),
                                message: (!message.is_empty()).then(|| message.clone()),
                            }),
                            ..Default::default()
                        }
                    } else if let Some(t) = &c.last_term {
                        ContainerState {
                            terminated: Some(t.clone()),
                            ..Default::default()
                        }
                    } else {
                        ContainerState::default()
                    };
                    ContainerStatus {
                        name: c.spec.name.clone(),
                        image: c.spec.image.clone().unwrap_or_default(),
                        image_id: String::new(),
                        container_id: c.proc.as_ref().map(|p| format!("e2e://{}", p.pid)),
                        ready: c.ready || (c.init && c.done),
                        started: Some(c.proc.is_some() && c.started),
                        restart_count: c.restarts,
                        state: Some(state),
                        last_state: c
                            .last_term
                            .clone()
                            .filter(|_| c.proc.is_some() || c.waiting.is_some())
                            .map(|t| ContainerState {
                                terminated: Some(t),
                                ..Default::default()
                            }),
                        ..Default::default()
                    }
                })
                .collect()
        };
        let init_done = st.ctrs.iter().filter(|c| c.init).all(|c| c.done);
        let app: Vec<&Ctr> = st.ctrs.iter().filter(|c| !c.init).collect();
        let ready = init_done && !app.is_empty() && app.iter().all(|c| c.ready);
        let running = app.iter().any(|c| c.proc.is_some() || c.restarts > 0);
        let conditions = vec![
            self.condition(st, "PodScheduled", true),
            self.condition(st, "Initialized", init_done),
            self.condition(st, "ContainersReady", ready),
            self.condition(st, "Ready", ready),
        ];
        let ip = st.net.ip.to_string();
        let host = self.shared.network.gateway().to_string();
        let status = PodStatus {
            phase: Some(if running { "Running" } else { "Pending" }.into()),
            host_ip: Some(host.clone()),
            host_ips: Some(vec![HostIP { ip: host }]),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            start_time: Some(st.start_time.clone()),
            conditions: Some(conditions),
            init_container_statuses: Some(statuses(true, st)).filter(|s| !s.is_empty()),
            container_statuses: Some(statuses(false, st)),
            qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
            ..Default::default()
        };
        let value = serde_json::to_value(&status)?;
        if st.last_status.as_ref() == Some(&value) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &st.ns);
        let pp = PatchParams {
            field_manager: Some(KUBELET_MANAGER.into()),
            ..Default::default()
        };
        api.patch_status(&st.name, &pp, &Patch::Merge(json!({ "status": value })))
            .await
            .context("patching the pod status")?;
        self.shared
            .stats
            .status_patches
            .fetch_add(1, Ordering::Relaxed);
        st.last_status = Some(value);
        Ok(())
    }

    /// `preStop` hooks, then SIGTERM (after [`CRI_STOP_LATENCY`]), then SIGKILL when
    /// `grace` is over; waits for every process to end.
    async fn terminate(&self, st: &mut State, grace: Duration) {
        if let Ok(mut r) = self.shared.records.lock()
            && let Some(rec) = r.get_mut(&st.uid)
        {
            rec.terminating = true;
        }
        let deadline = Instant::now() + grace;
        if !grace.is_zero() {
            let mut hooks = Vec::new();
            for c in &st.ctrs {
                let Some(p) = &c.proc else { continue };
                let Some(argv) = c
                    .spec
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.pre_stop.as_ref())
                    .and_then(|h| h.exec.as_ref())
                    .and_then(|e| e.command.clone())
                else {
                    continue;
                };
                let Ok(argv) = self
                    .shared
                    .binaries
                    .resolve(c.spec.image.as_deref().unwrap_or_default(), &argv)
                else {
                    continue;
                };
                let (pid, user) = (p.pid, st.user.clone());
                hooks.push(async move { exec_in(pid, user.as_ref(), &argv, grace).await });
            }
            let _ =
                tokio::time::timeout_at(deadline.into(), futures::future::join_all(hooks)).await;
            self.shared.stats.pre_stops.fetch_add(1, Ordering::Relaxed);
            // A real kubelet reaches the container only after a CRI round trip (kubelet →
            // containerd → runc), never microseconds after the hook. nats-server needs that
            // moment: it ignores SIGTERM in lame duck mode, but sets the flag on a goroutine
            // after SIGUSR2, so a SIGTERM 90 µs behind the hook's signal aborted lame duck.
            tokio::time::sleep(CRI_STOP_LATENCY).await;
        }
        for c in &st.ctrs {
            if let Some(p) = &c.proc {
                let _ = signal(
                    p.pid,
                    if grace.is_zero() {
                        Signal::KILL
                    } else {
                        Signal::TERM
                    },
                );
            }
        }
        for c in st.ctrs.iter_mut() {
            let Some(p) = c.proc.as_mut() else { continue };
            if tokio::time::timeout_at(deadline.into(), p.child.wait())
                .await
                .is_err()
            {
                let _ = signal(p.pid, Signal::KILL);
                let _ = p.child.wait().await;
            }
            c.proc = None;
        }
    }
}

/// The files of a Secret or ConfigMap volume from the object's `data` (`None`: the object
/// does not exist, which only an optional volume tolerates, as an empty directory).
fn keyed_files(
    what: &str,
    name: &str,
    optional: Option<bool>,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    default_mode: Option<i32>,
) -> std::result::Result<volumes::Files, String> {
    match data {
        None if optional == Some(true) => Ok(volumes::Files::new()),
        None => Err(format!("{what} {name:?} not found")),
        Some(data) => {
            let items: Option<Vec<_>> = items.map(|it| {
                it.iter()
                    .map(|i| (i.key.clone(), i.path.clone(), i.mode))
                    .collect()
            });
            volumes::project(&data, items.as_deref(), default_mode)
        }
    }
}

fn signal(pid: u32, sig: Signal) -> Result<()> {
    let pid = Pid::from_raw(pid as i32).context("pid 0")?;
    kill_process(pid, sig).context("kill")?;
    Ok(())
}

/// Runs `argv` inside the namespaces and root of process `pid` (as `user`), like a
/// container exec; true when it exits 0 within `timeout`.
pub(crate) async fn exec_in(
    pid: u32,
    user: Option<&(u32, u32, Vec<u32>)>,
    argv: &[String],
    timeout: Duration,
) -> bool {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid.to_string(), "-m", "-n", "-r", "-w"]);
    if let Some((u, g, _)) = user {
        cmd.args(["-S", &u.to_string(), "-G", &g.to_string()]);
    }
    cmd.arg("--")
        .args(argv)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.status()).await {
        Ok(Ok(s)) => s.success(),
        _ => false,
    }
}

/// Expands `$(VAR)` references from `env` as Kubernetes does (`$$` escapes; unknown
/// references stay as written).
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_after_80_percent_of_the_shorter_life() {
        assert_eq!(renew_in(3607, Some(31_536_000)), Duration::from_secs(2885));
        assert_eq!(renew_in(3600, Some(1000)), Duration::from_secs(800));
        assert_eq!(renew_in(600, None), Duration::from_secs(480));
        assert_eq!(renew_in(600, Some(-5)), Duration::ZERO);
    }

    #[test]
    fn expands_references_like_kubernetes() {
        let env = vec![("POD_NAME".to_string(), "c-1".to_string())];
        assert_eq!(expand("$(POD_NAME).x", &env), "c-1.x");
        assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
        assert_eq!(expand("$(NOPE) $HOME $", &env), "$(NOPE) $HOME $");
    }
}
