//! Helpers for the controller scenarios: waiting for a NatsCluster's status, and recording
//! what happens to its pods through a watch (deletion order, availability over time).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use nats_operator::api::v1beta1::NatsCluster;

/// Calls `probe` every `every` until it returns `Some`, or fails after `timeout` with `what`
/// and the last observation.
pub async fn poll<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut probe: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, String>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(seen)) => seen,
            Err(e) => format!("error: {e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("{what}: not within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the `default` ServiceAccount of `ns` exists (the ServiceAccount admission
/// plugin rejects pods before that).
pub async fn wait_for_default_service_account(client: &Client, ns: &str) -> Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    poll(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "default ServiceAccount",
        || {
            let api = api.clone();
            async move {
                Ok(match api.get_opt("default").await? {
                    Some(_) => Ok(()),
                    None => Err("missing".to_string()),
                })
            }
        },
    )
    .await
}

/// The condition `type_` of a cluster's status as `(status, reason)`.
pub fn condition(c: &NatsCluster, type_: &str) -> Option<(String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|x| x.type_ == type_)
        .map(|x| (x.status.clone(), x.reason.clone()))
}

/// The message of condition `type_`, empty when there is none.
pub fn condition_message(c: &NatsCluster, type_: &str) -> String {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|x| x.type_ == type_))
        .map(|x| x.message.clone())
        .unwrap_or_default()
}

/// A one-line summary of a cluster's status, for messages.
pub fn summary(c: &NatsCluster) -> String {
    let Some(s) = &c.status else {
        return "no status".into();
    };
    let conds: Vec<String> = s
        .conditions
        .iter()
        .map(|x| format!("{}={}({}: {})", x.type_, x.status, x.reason, x.message))
        .collect();
    format!(
        "generation {:?} observed {:?} replicas {} ready {} version {:?} {}",
        c.metadata.generation,
        s.observed_generation,
        s.replicas,
        s.ready_replicas,
        s.current_version,
        conds.join(" ")
    )
}

/// Whether the cluster is Ready with `size` ready members, at its current generation.
pub fn is_ready(c: &NatsCluster, size: i32) -> bool {
    let Some(s) = &c.status else {
        return false;
    };
    s.replicas == size
        && s.ready_replicas == size
        && s.observed_generation == c.metadata.generation
        && condition(c, "Ready").is_some_and(|(st, _)| st == "True")
}

/// Waits until [`is_ready`]; returns the cluster as last read.
pub async fn wait_ready(
    client: &Client,
    ns: &str,
    name: &str,
    size: i32,
    timeout: Duration,
) -> Result<NatsCluster> {
    wait_cluster(
        client,
        ns,
        name,
        timeout,
        &format!("{name} Ready with {size}"),
        |c| is_ready(c, size),
    )
    .await
}

/// Waits until `pred` holds for the cluster; returns it.
pub async fn wait_cluster(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&NatsCluster) -> bool,
) -> Result<NatsCluster> {
    let api: Api<NatsCluster> = Api::namespaced(client.clone(), ns);
    let pred = &pred;
    poll(timeout, Duration::from_millis(200), what, || {
        let api = api.clone();
        async move {
            let c = api.get(name).await?;
            Ok(if pred(&c) { Ok(c) } else { Err(summary(&c)) })
        }
    })
    .await
}

/// Merge-patches the spec of NatsCluster `name` (in v1beta1 terms).
pub async fn patch_spec(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> Result<()> {
    let api: Api<NatsCluster> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({ "spec": spec })),
    )
    .await
    .with_context(|| format!("patching {name}"))?;
    Ok(())
}

/// The names of the cluster's pods (label `nats_cluster=<name>`), sorted.
pub async fn pod_names(client: &Client, ns: &str, cluster: &str) -> Result<Vec<String>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = kube::api::ListParams::default().labels(&format!("app=nats,nats_cluster={cluster}"));
    let mut names: Vec<String> = api
        .list(&lp)
        .await?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    names.sort();
    Ok(names)
}

/// What a pod looked like at one watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// uid of this incarnation.
    pub uid: String,
    /// The Ready condition is True.
    pub ready: bool,
    /// `deletionTimestamp` is set.
    pub terminating: bool,
    /// `status.phase`.
    pub phase: String,
}

/// One recorded change.
#[derive(Debug, Clone)]
pub enum PodEvent {
    /// Created or changed.
    Applied(String, PodState),
    /// Gone from the API.
    Deleted(String, String),
}

#[derive(Debug, Default)]
struct Recorded {
    events: Vec<PodEvent>,
    live: BTreeMap<String, PodState>,
    /// Highest number of unavailable watched members seen at any event.
    max_unavailable: usize,
    /// The state at the moment `max_unavailable` was reached.
    worst: String,
    watched: Vec<String>,
}

impl Recorded {
    fn unavailable(&self) -> usize {
        self.watched
            .iter()
            .filter(|n| self.live.get(*n).is_none_or(|s| !s.ready || s.terminating))
            .count()
    }
}

/// Records every change of the pods of a namespace through a watch (run in the test's
/// runtime; stops when dropped).
pub struct PodTracker {
    recorded: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodTracker {
    /// Starts watching pods labelled `app=nats,nats_cluster=<cluster>` in `ns`. Once the
    /// initial list is in, it returns. Availability is tracked over `members` (set with
    /// [`PodTracker::watch_members`]; none at first).
    pub async fn start(client: &Client, ns: &str, cluster: &str) -> Result<PodTracker> {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let rec = recorded.clone();
        let (init_tx, init_rx) = tokio::sync::oneshot::channel::<()>();
        let mut init_tx = Some(init_tx);
        let cfg = watcher::Config::default().labels(&format!("app=nats,nats_cluster={cluster}"));
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, cfg).boxed();
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                let Ok(mut r) = rec.lock() else { return };
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let name = p.name_any();
                        let s = state(&p);
                        r.live.insert(name.clone(), s.clone());
                        r.events.push(PodEvent::Applied(name, s));
                    }
                    watcher::Event::Delete(p) => {
                        let name = p.name_any();
                        if r.live
                            .get(&name)
                            .is_some_and(|s| Some(&s.uid) == p.uid().as_ref())
                        {
                            r.live.remove(&name);
                        }
                        r.events
                            .push(PodEvent::Deleted(name, p.uid().unwrap_or_default()));
                    }
                    watcher::Event::Init => {}
                    watcher::Event::InitDone => {
                        if let Some(tx) = init_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                let u = r.unavailable();
                if u > r.max_unavailable {
                    r.max_unavailable = u;
                    r.worst = format!("{:?}", r.live);
                }
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(30), init_rx).await;
        Ok(PodTracker { recorded, task })
    }

    /// Tracks availability over these member names from now on, and resets the maximum.
    pub fn watch_members(&self, members: &[String]) {
        if let Ok(mut r) = self.recorded.lock() {
            r.watched = members.to_vec();
            r.max_unavailable = r.unavailable();
            r.worst = format!("{:?}", r.live);
        }
    }

    /// The highest number of watched members that were missing, not ready or terminating at
    /// the same time, and the pods' states at that moment.
    pub fn max_unavailable(&self) -> (usize, String) {
        self.recorded
            .lock()
            .map(|r| (r.max_unavailable, r.worst.clone()))
            .unwrap_or_default()
    }

    /// Every recorded event.
    pub fn events(&self) -> Vec<PodEvent> {
        self.recorded
            .lock()
            .map(|r| r.events.clone())
            .unwrap_or_default()
    }

    /// Names of pods in the order they were first seen terminating (or deleted, when never
    /// seen terminating), each incarnation once.
    pub fn deletion_order(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for e in self.events() {
            let (name, uid) = match &e {
                PodEvent::Applied(n, s) if s.terminating => (n.clone(), s.uid.clone()),
                PodEvent::Deleted(n, uid) => (n.clone(), uid.clone()),
                PodEvent::Applied(..) => continue,
            };
            if !seen.contains(&uid) {
                seen.push(uid);
                out.push(name);
            }
        }
        out
    }

    /// The uids each pod name had, in order of appearance.
    pub fn incarnations(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.events() {
            if let PodEvent::Applied(n, s) = e
                && n == name
                && !out.contains(&s.uid)
            {
                out.push(s.uid);
            }
        }
        out
    }
}

impl Drop for PodTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn state(p: &Pod) -> PodState {
    let status = p.status.clone().unwrap_or_default();
    PodState {
        uid: p.uid().unwrap_or_default(),
        ready: status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        terminating: p.metadata.deletion_timestamp.is_some(),
        phase: status.phase.unwrap_or_default(),
    }
}
