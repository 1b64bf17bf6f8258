//! What every reconcile shares (the client, the caches, the event recorder) and how a
//! reconcile fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;

use crate::api::v1alpha2::NatsServiceRole;
use crate::api::v1beta1::NatsCluster;
use crate::render::Paths;

/// Field manager of every server-side apply.
pub const MANAGER: &str = "nats-operator";
/// Annotation with the hash of the last applied form of a child.
pub const APPLIED_ANNOTATION: &str = "nats.io/applied-hash";

/// Why a reconcile failed. Only failures a retry can fix end up here (the API or the
/// network); a user's mistake is a `Degraded` condition and an Event instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or did not answer a request.
    #[error("{action}: {source}")]
    Kube {
        /// What we tried.
        action: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// The API answered something unusable (a TokenRequest without a token).
    #[error("{0}")]
    Unexpected(String),
}

impl Error {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "ApiError",
            Error::Unexpected(_) => "UnexpectedAnswer",
        }
    }
}

pub(crate) fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// Shared state of all reconciles: the client, the caches and the event recorder.
pub struct Context {
    /// API client.
    pub client: kube::Client,
    /// Member pods (label `app=nats`).
    pub pods: Store<Pod>,
    /// Services (label `app=nats`).
    pub services: Store<Service>,
    /// Every Secret (the operator's own with values, others with keys only).
    pub secrets: Store<Secret>,
    /// PodDisruptionBudgets (label `app=nats`).
    pub pdbs: Store<PodDisruptionBudget>,
    /// NatsServiceRoles.
    pub roles: Store<NatsServiceRole>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Mount paths referenced by `nats.conf`.
    pub paths: Paths,
    /// Reconcile metrics.
    pub metrics: Arc<super::metrics::Metrics>,
    /// The namespaces the operator manages (where ServiceAccounts of service roles may
    /// live).
    pub scope: super::Scope,
    /// Consecutive failed reconciles per cluster (uid), for the backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Writes the cache may not show yet.
    pub recent: Mutex<Recent>,
}

/// How long a write is remembered while the cache has not shown it: past this, the
/// cache is trusted again (a watch event that never came is a relist's business).
pub const RECENT_TTL: Duration = Duration::from_secs(30);

/// Read-your-writes: what this operator wrote and its cache may not show yet, per
/// cluster uid. A decision made on a cache that lags behind our own writes would
/// create a pod that exists, or write the same status or child again.
#[derive(Debug, Default)]
pub struct Recent {
    /// Pods created, by cluster: pod name → when.
    created: HashMap<String, HashMap<String, Instant>>,
    /// Pods deleted, by cluster: pod name → when.
    deleted: HashMap<String, HashMap<String, Instant>>,
    /// Children applied, by cluster: `Kind/name` → (applied hash, when).
    applied: HashMap<String, HashMap<String, (String, Instant)>>,
    /// The last status written, by cluster.
    status: HashMap<String, crate::api::v1beta1::NatsClusterStatus>,
}

/// What [`Recent::pending`] tells the observer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// Pods created that the cache does not have yet.
    pub created: std::collections::BTreeSet<String>,
    /// Pods deleted that the cache still shows alive.
    pub deleted: std::collections::BTreeSet<String>,
    /// Children applied recently: `Kind/name` → applied hash.
    pub applied: std::collections::BTreeMap<String, String>,
}

impl Recent {
    /// Remembers a pod created for cluster `uid`.
    pub fn created(&mut self, uid: &str, pod: &str) {
        self.created
            .entry(uid.into())
            .or_default()
            .insert(pod.into(), Instant::now());
    }

    /// Remembers a pod deleted for cluster `uid`.
    pub fn deleted(&mut self, uid: &str, pod: &str) {
        self.deleted
            .entry(uid.into())
            .or_default()
            .insert(pod.into(), Instant::now());
    }

    /// Remembers a child applied with `hash`.
    pub fn applied(&mut self, uid: &str, key: &str, hash: &str) {
        self.applied
            .entry(uid.into())
            .or_default()
            .insert(key.into(), (hash.into(), Instant::now()));
    }

    /// Whether `status` is what was last written for cluster `uid` (and so need not be
    /// written again while the cache shows an older one).
    pub fn wrote_status(&self, uid: &str, status: &crate::api::v1beta1::NatsClusterStatus) -> bool {
        self.status.get(uid) == Some(status)
    }

    /// Remembers the status written for cluster `uid`.
    pub fn status_written(&mut self, uid: &str, status: crate::api::v1beta1::NatsClusterStatus) {
        self.status.insert(uid.into(), status);
    }

    /// The writes of cluster `uid` the cache does not reflect yet, given the pods it
    /// shows (`(name, terminating)`) and the children's applied hashes (`Kind/name` →
    /// hash). What the cache shows, and what is older than [`RECENT_TTL`], is forgotten.
    pub fn pending(
        &mut self,
        uid: &str,
        pods: &[(String, bool)],
        children: &std::collections::BTreeMap<String, String>,
    ) -> Pending {
        let fresh = |at: &Instant| at.elapsed() < RECENT_TTL;
        let mut out = Pending::default();
        if let Some(created) = self.created.get_mut(uid) {
            created.retain(|name, at| fresh(at) && !pods.iter().any(|(p, _)| p == name));
            out.created = created.keys().cloned().collect();
        }
        if let Some(deleted) = self.deleted.get_mut(uid) {
            deleted.retain(|name, at| fresh(at) && pods.iter().any(|(p, t)| p == name && !t));
            out.deleted = deleted.keys().cloned().collect();
        }
        if let Some(applied) = self.applied.get_mut(uid) {
            applied.retain(|key, (hash, at)| fresh(at) && children.get(key) != Some(hash));
            out.applied = applied
                .iter()
                .map(|(k, (h, _))| (k.clone(), h.clone()))
                .collect();
        }
        out
    }

    /// Forgets the status written for cluster `uid`: the cache shows it.
    pub fn status_seen(&mut self, uid: &str) {
        self.status.remove(uid);
    }
}

impl Context {
    /// The delay before retrying a cluster whose reconcile failed `failures` times in a
    /// row: 1 s doubling to 5 min, each spread by ±25 % so that clusters that failed
    /// together (an apiserver restart) do not retry together.
    pub fn backoff(failures: u32, jitter_seed: u64) -> Duration {
        let base = Duration::from_secs(1).saturating_mul(1u32 << (failures.clamp(1, 10) - 1));
        let capped = base.min(Duration::from_secs(300));
        // jitter in [0.75, 1.25)
        let spread = 0.75 + (jitter_seed % 1000) as f64 / 2000.0;
        capped.mul_f64(spread)
    }

    /// Counts a failure of cluster `uid`; returns how many in a row.
    pub fn failed(&self, uid: &str) -> u32 {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of cluster `uid` after a reconcile that went through.
    pub fn succeeded(&self, uid: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.remove(uid);
    }
}

/// The apiserver refuses an Event whose note is over 1 KiB (events.k8s.io/v1): cut
/// longer ones (e.g. every lagging member of a large cluster) at a character boundary.
pub(crate) fn fit_event_note(mut note: String) -> String {
    const MAX: usize = 1024;
    if note.len() > MAX {
        let mut end = MAX - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

/// Publishes an Event about `cluster` (the recorder folds repeats into a series).
pub(crate) async fn event(
    ctx: &Context,
    cluster: &NatsCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    publish(ctx, cluster, type_, reason, action, note, None).await;
}

/// Publishes an Event about `cluster` that concerns its member `pod` (the Event's related
/// object). The recorder folds repeats by reason and related object, not by note, so
/// without it the deletions of three members read as one "deleted <first>" with count 3.
pub(crate) async fn member_event(
    ctx: &Context,
    cluster: &NatsCluster,
    pod: &str,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let related = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.into()),
        namespace: cluster.metadata.namespace.clone(),
        ..Default::default()
    };
    publish(ctx, cluster, type_, reason, action, note, Some(related)).await;
}

async fn publish(
    ctx: &Context,
    cluster: &NatsCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
    secondary: Option<ObjectReference>,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(fit_event_note(note)),
        action: action.into(),
        secondary,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_fit_the_apiserver_limit() {
        assert_eq!(fit_event_note("short".into()), "short");
        let long = "é".repeat(700); // 1400 bytes, 2 per character
        let cut = fit_event_note(long);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.ends_with('…') && cut.starts_with("éé"));
    }

    #[test]
    fn recent_writes_count_until_the_cache_shows_them() {
        let mut r = Recent::default();
        r.created("c", "n-1");
        r.deleted("c", "n-2");
        r.applied("c", "Secret/n", "h2");
        let children =
            std::collections::BTreeMap::from([("Secret/n".to_string(), "h1".to_string())]);
        let p = r.pending("c", &[("n-2".into(), false)], &children);
        assert!(p.created.contains("n-1") && p.deleted.contains("n-2"));
        assert_eq!(p.applied.get("Secret/n").map(String::as_str), Some("h2"));
        // The cache catches up: nothing is pending any more.
        let children =
            std::collections::BTreeMap::from([("Secret/n".to_string(), "h2".to_string())]);
        let p = r.pending(
            "c",
            &[("n-1".into(), false), ("n-2".into(), true)],
            &children,
        );
        assert_eq!(p, Pending::default());
        assert_eq!(
            r.pending("other", &[], &Default::default()),
            Pending::default()
        );
    }

    #[test]
    fn backoff_doubles_to_five_minutes_with_jitter() {
        let secs = |n, seed| Context::backoff(n, seed).as_secs_f64();
        assert!((0.75..1.25).contains(&secs(1, 0)) && (0.75..1.25).contains(&secs(1, 999)));
        assert!((1.5..2.5).contains(&secs(2, 500)));
        assert!((6.0..10.0).contains(&secs(4, 123)));
        assert!((225.0..375.0).contains(&secs(30, 7)));
        assert!(secs(1, 0) < secs(1, 999), "the seed spreads the delay");
    }
}
