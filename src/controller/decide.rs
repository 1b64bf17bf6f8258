//! Decide: from an [`Observed`] alone, the ordered steps of one reconcile, the Events to
//! publish, the status inputs and when to look again. Pure (no client, no `async`):
//! `render::desired` gives what should exist, [`plan`] what to do with the members,
//! `decide_tokens` what to do with bound tokens, `volume_actions` with the claims, and
//! the JetStream gate whether a voluntary stop may happen now.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use super::context::APPLIED_ANNOTATION;
use super::data_plane;
use super::lame_duck::{self, Stage};
use super::observe::{Observed, PodMonitorSeen};
use super::plan::{Action, DeleteReason, MemberPod, Members, Phase, plan};
use super::service_roles::{TokenStep, decide_tokens, stale_tokens};
use super::storage::{VolumeAction, volume_actions};
use crate::api::choices::ReclaimPolicy;
use crate::api::v1beta1::NatsClusterStatus;
use crate::render::desired::typed;
use crate::render::system_user::SystemUser;
use crate::render::{
    self, CONFIG_HASH_ANNOTATION, ClusterMeta, Desired, POD_SPEC_HASH_ANNOTATION, Paths,
    auth_inputs,
};

/// Degraded reason while a voluntary stop waits past `catchUpTimeout`.
pub const JETSTREAM_NOT_CURRENT: &str = "JetStreamNotCurrent";
/// Degraded reason while a scale-down waits past `catchUpTimeout` for stream replicas
/// to move off the member it removes.
pub const STREAMS_NOT_MOVED: &str = "StreamsNotMoved";
/// `spec.jetstream.catchUpTimeout` when it is not set.
pub const DEFAULT_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a healthy, settled cluster waits for its next look (every change of it or
/// of its children triggers one sooner).
pub const SETTLED: Duration = Duration::from_secs(300);
/// How soon a cluster that is changing is looked at again.
pub const CHANGING: Duration = Duration::from_secs(5);

/// The kinds of children applied whole (server-side apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// `v1` Service.
    Service,
    /// `v1` Secret (the config).
    Secret,
    /// `policy/v1` PodDisruptionBudget.
    PodDisruptionBudget,
    /// `monitoring.coreos.com/v1` PodMonitor.
    PodMonitor,
}

impl ChildKind {
    /// The kind's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ChildKind::Service => "Service",
            ChildKind::Secret => "Secret",
            ChildKind::PodDisruptionBudget => "PodDisruptionBudget",
            ChildKind::PodMonitor => "PodMonitor",
        }
    }
}

/// An Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning or Normal.
    pub warning: bool,
    /// `reason`.
    pub reason: String,
    /// `action`.
    pub action: &'static str,
    /// `note`.
    pub note: String,
}

impl Notice {
    fn warning(reason: &str, action: &'static str, note: String) -> Self {
        Notice {
            warning: true,
            reason: reason.into(),
            action,
            note,
        }
    }

    fn normal(reason: &str, action: &'static str, note: String) -> Self {
        Notice {
            warning: false,
            ..Notice::warning(reason, action, note)
        }
    }

    /// The recorder's type.
    pub fn type_(&self) -> EventType {
        if self.warning {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }
}

/// One write, in the order they are carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create or fix a bound-token Secret (see [`TokenStep::Issue`]).
    IssueToken {
        /// Index into [`Observed::bindings`].
        binding: usize,
        /// The Secret does not exist yet.
        create: bool,
        /// A new token is needed.
        mint: bool,
    },
    /// Server-side apply of a child (its body carries [`APPLIED_ANNOTATION`]); the
    /// notice is published when it was written.
    Apply {
        /// Its kind.
        kind: ChildKind,
        /// Its name.
        name: String,
        /// The object.
        body: Value,
        /// Published after the write.
        notice: Option<Notice>,
    },
    /// Delete a child that the spec no longer asks for.
    Delete {
        /// Its kind.
        kind: ChildKind,
        /// Its name.
        name: String,
    },
    /// Delete bound-token Secrets no user needs.
    RevokeTokens(Vec<Secret>),
    /// Create a member's claim (before its pod).
    CreateClaim(Box<PersistentVolumeClaim>),
    /// Create a member pod.
    CreatePod(Box<Pod>),
    /// Delete a pod.
    DeletePod {
        /// Its name.
        pod: String,
        /// Why (in the Event).
        reason: DeleteReason,
    },
    /// Put a member's server into lame duck before it is deleted. See [`lame_duck`].
    SignalLameDuck {
        /// Its name.
        pod: String,
        /// The command to run in its `nats` container.
        command: Vec<String>,
        /// Why it is going to be deleted (the pod is deleted at once if the exec fails).
        reason: DeleteReason,
        /// It has our `preStop` hook: delete it [`lame_duck::SETTLE`] after the signal.
        /// Otherwise (a pod made by the Go operator) it is deleted once it has drained.
        then_delete: bool,
    },
    /// Grow or delete a claim.
    Volume(VolumeAction),
    /// Create (or fix) the Secret with the operator's system user, with a new password.
    IssueSystemUser,
    /// Ask the meta leader to move these streams' replicas `(account, stream)` off
    /// `server` (a member about to be removed by a scale-down).
    MoveStreams {
        /// The member.
        server: String,
        /// The streams that have a replica on it.
        streams: Vec<(String, String)>,
    },
    /// Remove a departed server from the JetStream meta group.
    RemovePeer {
        /// Its server name.
        server: String,
    },
    /// Record a new config hash on a running member: the change of the pod makes its
    /// kubelet sync it at once, which refreshes its Secret volumes (otherwise that waits for
    /// the kubelet's periodic sync, up to a minute and more), so the reloader sees the new
    /// config within seconds. Nothing restarts.
    MarkConfig {
        /// Its name.
        pod: String,
        /// The config hash it now runs with.
        hash: String,
    },
}

/// The JetStream health of the members other than the one to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The member whose stop is planned.
    pub target: String,
    /// What is wrong, per member that is not current (empty: all current).
    pub behind: Vec<String>,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What should exist (none while paused, or when the inputs have a problem).
    pub desired: Option<Desired>,
    /// The writes, in order.
    pub steps: Vec<Step>,
    /// Events to publish whatever the writes do.
    pub notices: Vec<Notice>,
    /// The phase for the status.
    pub phase: Phase,
    /// Why the cluster cannot progress, if it cannot: `(reason, message)`.
    pub degraded: Option<(String, String)>,
    /// `status.catchUpSince`.
    pub catch_up_since: Option<Timestamp>,
    /// The claims' storage requests by claim, as observed less the claims to delete
    /// (`None`: not looked at). Expansions count once the API accepted them: a refused
    /// one must not raise `status.volumeSize`, the floor the webhook enforces.
    pub volume_requests: Option<std::collections::BTreeMap<String, String>>,
    /// When to look again.
    pub requeue: Duration,
    /// A voluntary stop of this member is planned and needs [`Health`] first: probe
    /// the members and decide again with it.
    pub needs_health: Option<String>,
}

impl Decision {
    fn waiting(phase: Phase, degraded: Option<(String, String)>, requeue: Duration) -> Self {
        Decision {
            desired: None,
            steps: Vec::new(),
            notices: Vec::new(),
            phase,
            degraded,
            catch_up_since: None,
            volume_requests: None,
            requeue,
            needs_health: None,
        }
    }
}

/// True when every field of `desired` has the same value in `existing` (the apiserver
/// adds defaults, so a strict equality would see a change every time).
pub fn is_subset(desired: &Value, existing: &Value) -> bool {
    match (desired, existing) {
        (Value::Object(d), Value::Object(e)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || e.get(k).is_some_and(|ev| is_subset(dv, ev))),
        (Value::Array(d), Value::Array(e)) => {
            d.len() == e.len() && d.iter().zip(e).all(|(a, b)| is_subset(a, b))
        }
        (d, e) => d == e,
    }
}

/// The body to apply for `desired` when `existing` differs from it, else `None`. The
/// hash of what is applied is stamped on the object: a field we stop setting (an
/// annotation removed from a service policy) changes the hash, so the apply goes out
/// and server-side apply removes the field; a field someone else changed fails the
/// subset check.
pub fn apply_body(desired: &Value, existing: Option<&Value>) -> Option<Value> {
    let hash = render::sha256_hex(desired.to_string().as_bytes());
    if let Some(have) = existing {
        let same_hash = have
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(APPLIED_ANNOTATION))
            .and_then(Value::as_str)
            == Some(hash.as_str());
        if same_hash && is_subset(desired, have) {
            return None;
        }
    }
    let mut body = desired.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(APPLIED_ANNOTATION.into(), Value::String(hash));
        }
    }
    Some(body)
}

fn member_view(cluster: &str, pod: &Pod, desired: Option<&Desired>) -> MemberPod {
    let status = pod.status.clone().unwrap_or_default();
    let index = render::member_index(cluster, &pod.name_any());
    let want = desired.zip(index).and_then(|(d, i)| d.pod_spec_hash(i));
    MemberPod {
        name: pod.name_any(),
        index,
        phase: status.phase.unwrap_or_default(),
        ready: status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        up_to_date: want
            .is_some_and(|h| pod.annotations().get(POD_SPEC_HASH_ANNOTATION) == Some(&h)),
    }
}

/// [`Step::MarkConfig`] for every running, up-to-date member whose config hash is not the
/// one its pod would be created with now.
fn mark_config(meta: &ClusterMeta, o: &Observed, desired: &Desired) -> Vec<Step> {
    let mut steps = Vec::new();
    for p in &o.pods {
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(index) = render::member_index(&meta.name, &p.name_any()) else {
            continue;
        };
        let Some(m) = desired.members.iter().find(|m| m.index == index) else {
            continue;
        };
        let annotations = p.annotations();
        let want = m.pod.annotations().get(CONFIG_HASH_ANNOTATION);
        let same_spec = annotations.get(POD_SPEC_HASH_ANNOTATION)
            == m.pod.annotations().get(POD_SPEC_HASH_ANNOTATION);
        if let Some(want) = want
            && same_spec
            && annotations.get(CONFIG_HASH_ANNOTATION) != Some(want)
        {
            steps.push(Step::MarkConfig {
                pod: p.name_any(),
                hash: want.clone(),
            });
        }
    }
    steps
}

/// The members as the planner and the status see them, with our own writes the cache
/// does not show yet: a pod just created exists (not ready yet), one just deleted is
/// terminating.
pub fn member_views(o: &Observed, desired: Option<&Desired>) -> Vec<MemberPod> {
    let name = o.meta.as_ref().map(|m| m.name.as_str()).unwrap_or_default();
    let mut views: Vec<MemberPod> = o
        .pods
        .iter()
        .map(|p| member_view(name, p, desired))
        .collect();
    for v in views.iter_mut() {
        if o.pending.deleted.contains(&v.name) {
            v.terminating = true;
        }
    }
    for pod in &o.pending.created {
        if !views.iter().any(|v| &v.name == pod) {
            views.push(MemberPod {
                name: pod.clone(),
                index: render::member_index(name, pod),
                phase: "Pending".into(),
                ready: false,
                terminating: false,
                up_to_date: true,
            });
        }
    }
    views
}

/// [`apply_body`], unless this very body was applied moments ago and the cache has not
/// caught up.
fn apply_unless_pending(
    o: &Observed,
    key: &str,
    desired: &Value,
    existing: Option<&Value>,
) -> Option<Value> {
    let body = apply_body(desired, existing)?;
    let hash = body
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(APPLIED_ANNOTATION))
        .and_then(Value::as_str);
    if hash.is_some() && o.pending.applied.get(key).map(String::as_str) == hash {
        return None;
    }
    Some(body)
}

fn prev_status(o: &Observed) -> NatsClusterStatus {
    o.stored.status.clone().unwrap_or_default()
}

/// One Warning for a problem the cluster did not already report: a user's mistake is
/// said once, not on every pass.
fn report_once(o: &Observed, reason: &str, message: &str, action: &'static str) -> Vec<Notice> {
    let prev = prev_status(o);
    let known = prev.conditions.iter().any(|c| {
        c.type_ == "Degraded" && c.status == "True" && c.reason == reason && c.message == message
    });
    if known {
        Vec::new()
    } else {
        vec![Notice::warning(reason, action, message.to_string())]
    }
}

/// What the cache shows of the operator's system-user Secret.
enum SystemUserSeen {
    /// None.
    Missing,
    /// Ours, with a usable user (one someone emptied counts as missing: it is issued
    /// again).
    Ours(SystemUser),
    /// A Secret of that name someone else owns.
    Foreign,
}

fn system_user(o: &Observed, meta: &ClusterMeta) -> SystemUserSeen {
    let Some(secret) = o.system_user_secret.as_ref() else {
        return SystemUserSeen::Missing;
    };
    // A stored cluster always has a uid; without one (offline) there is no owner to
    // compare.
    let ours = meta.uid.is_none()
        || secret
            .owner_references()
            .iter()
            .any(|r| Some(&r.uid) == meta.uid.as_ref());
    if !ours {
        return SystemUserSeen::Foreign;
    }
    let data: render::inputs::SecretData = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    match render::inputs::system_user(&data) {
        Some(user) => SystemUserSeen::Ours(user),
        None => SystemUserSeen::Missing,
    }
}

/// The streams to move off `target` before a scale-down stops it: `None` when none
/// has a replica there; else the wait message and the streams a move can start for.
fn streams_to_move(o: &Observed, target: &str) -> Option<(String, Vec<(String, String)>)> {
    let silent: Vec<String> = o
        .jsz
        .iter()
        .filter_map(|a| a.jsz.as_ref().err().map(|e| format!("{}: {e}", a.pod)))
        .collect();
    if !silent.is_empty() {
        // Streams led by a silent member are not seen: stopping now could take a
        // replica that was never moved.
        return Some((
            format!(
                "waiting to see every member's streams before removing {target}: {}",
                silent.join("; ")
            ),
            Vec::new(),
        ));
    }
    let hosted = data_plane::hosted_on(&o.jsz, target);
    if hosted.is_empty() {
        return None;
    }
    let names: Vec<String> = hosted
        .movable
        .iter()
        .chain(&hosted.moving)
        .map(|(a, s)| format!("{a}/{s}"))
        .collect();
    Some((
        format!(
            "moving {} stream replica(s) off {target} before it is removed: {}",
            names.len(),
            names.join(", ")
        ),
        hosted.movable,
    ))
}

/// When the current wait started (kept in `status.catchUpSince`) and, once it is longer
/// than `jetstream.catchUpTimeout`, how long that is in words.
fn waited(
    o: &Observed,
    spec: &crate::api::v1beta1::NatsClusterSpec,
    now: Timestamp,
) -> (Timestamp, Option<String>) {
    let timeout = spec
        .jetstream
        .as_ref()
        .and_then(|j| crate::api::duration::parse(&j.catch_up_timeout))
        .unwrap_or(DEFAULT_CATCH_UP_TIMEOUT);
    let since = prev_status(o)
        .catch_up_since
        .map(|t| t.0)
        .filter(|t| *t <= now)
        .unwrap_or(now);
    let waited = now.duration_since(since).unsigned_abs();
    let late = (waited > timeout).then(|| {
        format!(
            "waited {}s, catchUpTimeout is {}s",
            waited.as_secs(),
            timeout.as_secs()
        )
    });
    (since, late)
}

/// Decides one reconcile of `o`; `health` is given on the second call when the first
/// asked for it ([`Decision::needs_health`]); `now` stamps a new wait.
pub fn decide(o: &Observed, paths: &Paths, health: Option<&Health>, now: Timestamp) -> Decision {
    let meta = match &o.meta {
        Ok(m) => m,
        Err(p) => {
            let msg = p.to_string();
            let mut d = Decision::waiting(
                Phase::Progressing("waiting for a valid spec".into()),
                Some(("InvalidSpec".into(), msg.clone())),
                SETTLED,
            );
            d.notices = report_once(o, "InvalidSpec", &msg, "Render");
            return d;
        }
    };
    let spec = &o.cluster.spec;
    if spec.paused {
        return Decision::waiting(Phase::Paused, None, SETTLED);
    }
    let mut notices = Vec::new();
    let mut steps = Vec::new();
    // Bound tokens first: a user waiting for its token keeps the config as it is.
    let tokens = decide_tokens(meta, &o.bindings);
    for s in &tokens.steps {
        match s {
            TokenStep::Issue {
                binding,
                create,
                mint,
            } => steps.push(Step::IssueToken {
                binding: *binding,
                create: *create,
                mint: *mint,
            }),
            TokenStep::Conflict { message } => notices.push(Notice::warning(
                "TokenSecretConflict",
                "IssueToken",
                message.clone(),
            )),
        }
    }
    if tokens.waiting() {
        let n = steps.len();
        let mut d = Decision::waiting(
            Phase::Progressing(format!("issuing {n} service-role token(s)")),
            None,
            Duration::from_secs(2),
        );
        d.steps = steps;
        d.notices = notices;
        return d;
    }
    let jetstream = render::jetstream_enabled(spec)
        && crate::api::version::parse(&spec.version)
            .map(|v| v.supports_jetstream())
            .unwrap_or(true);
    let system_user = match system_user(o, meta) {
        SystemUserSeen::Ours(user) => Some(user),
        SystemUserSeen::Foreign if jetstream => {
            let msg = format!(
                "Secret {}/{} exists and is not the operator's: rename it so the operator can keep its system user there; until then streams are not moved off members before a scale-down and departed servers stay in the JetStream meta group",
                meta.namespace,
                meta.system_user_secret()
            );
            notices.extend(report_once(o, "SystemUserConflict", &msg, "Render"));
            None
        }
        SystemUserSeen::Missing if jetstream => {
            // The first config of the cluster (or the one after a rotation) carries it.
            steps.push(Step::IssueSystemUser);
            let mut d = Decision::waiting(
                Phase::Progressing("creating the operator's system user".into()),
                None,
                Duration::from_secs(1),
            );
            d.steps = steps;
            d.notices = notices;
            return d;
        }
        _ => None,
    };
    let lookup = |name: &str| o.auth_secrets.get(name);
    let desired = auth_inputs(spec, &meta.namespace, lookup, tokens.users.clone())
        .map_err(|p| (p.reason(), p.to_string()))
        .and_then(|mut auth| {
            auth.system_user = system_user;
            render::desired(&o.cluster, &auth, paths).map_err(|e| ("InvalidSpec", e.to_string()))
        });
    let desired = match desired {
        Ok(d) => d,
        Err((reason, msg)) => {
            // Without its inputs a config would open the cluster: change nothing, say
            // so once, and wait for a change of the cluster or of what it references.
            let mut d = Decision::waiting(
                Phase::Progressing("waiting for inputs".into()),
                Some((reason.to_string(), msg.clone())),
                SETTLED,
            );
            d.notices = notices;
            d.notices.extend(report_once(o, reason, &msg, "Render"));
            return d;
        }
    };

    // Children applied whole.
    fn existing<K: serde::Serialize>(obj: Option<&std::sync::Arc<K>>) -> Option<Value> {
        obj.map(|o| serde_json::to_value(o.as_ref()).unwrap_or_default())
    }
    let services = [
        (&desired.client_service, desired.meta.name.clone()),
        (
            &desired.management_service,
            desired.meta.management_service(),
        ),
    ];
    for (svc, name) in services {
        let want = typed(svc, "v1", "Service");
        let have = o
            .services
            .get(&name)
            .map(|s| serde_json::to_value(s.as_ref()).unwrap_or_default());
        if let Some(body) =
            apply_unless_pending(o, &format!("Service/{name}"), &want, have.as_ref())
        {
            steps.push(Step::Apply {
                kind: ChildKind::Service,
                name,
                body,
                notice: None,
            });
        }
    }
    let want = typed(&desired.config_secret, "v1", "Secret");
    let key = format!("Secret/{}", meta.name);
    if let Some(body) =
        apply_unless_pending(o, &key, &want, existing(o.config_secret.as_ref()).as_ref())
    {
        steps.push(Step::Apply {
            kind: ChildKind::Secret,
            name: meta.name.clone(),
            body,
            // A change is news; the first config of a new cluster is not.
            notice: o.config_secret.is_some().then(|| {
                Notice::normal(
                    "ConfigUpdated",
                    "Render",
                    format!("nats.conf {}", &desired.conf.hash[..12]),
                )
            }),
        });
    }
    match &desired.disruption_budget {
        Some(pdb) => {
            let want = typed(pdb, "policy/v1", "PodDisruptionBudget");
            if let Some(body) = apply_body(&want, existing(o.disruption_budget.as_ref()).as_ref()) {
                steps.push(Step::Apply {
                    kind: ChildKind::PodDisruptionBudget,
                    name: meta.name.clone(),
                    body,
                    notice: None,
                });
            }
        }
        None if o.disruption_budget.is_some() => steps.push(Step::Delete {
            kind: ChildKind::PodDisruptionBudget,
            name: meta.name.clone(),
        }),
        None => {}
    }
    match (&o.pod_monitor, &desired.pod_monitor) {
        (PodMonitorSeen::KindMissing, Some(_)) => notices.push(Notice::warning(
            "PodMonitorUnavailable",
            "Apply",
            "spec.pod.podMonitor: the PodMonitor kind (monitoring.coreos.com/v1) is not installed; install the Prometheus Operator CRDs".into(),
        )),
        (PodMonitorSeen::Exists(have), Some(want)) => {
            let key = format!("PodMonitor/{}", meta.name);
            if let Some(body) = apply_unless_pending(o, &key, want, have.as_ref()) {
                steps.push(Step::Apply {
                    kind: ChildKind::PodMonitor,
                    name: meta.name.clone(),
                    body,
                    notice: None,
                });
            }
        }
        (PodMonitorSeen::Exists(Some(_)), None) => {
            let enabled = spec
                .pod
                .as_ref()
                .and_then(|p| p.pod_monitor.as_ref())
                .is_some_and(|m| m.enabled);
            // Turned off (not merely without an exporter): remove it.
            if !enabled {
                steps.push(Step::Delete {
                    kind: ChildKind::PodMonitor,
                    name: meta.name.clone(),
                });
            }
        }
        _ => {}
    }
    let stale: Vec<Secret> =
        stale_tokens(&o.token_secrets, &meta.namespace, &meta.name, &tokens.keep)
            .into_iter()
            .cloned()
            .collect();
    if !stale.is_empty() {
        steps.push(Step::RevokeTokens(stale));
    }

    // Members.
    let size = u32::try_from(spec.size.max(0)).unwrap_or(0);
    let views = member_views(o, Some(&desired));
    let mut decision = plan(&Members {
        size,
        paused: false,
        pods: views,
    });
    let mut degraded = None;
    let mut catch_up_since = None;
    let mut needs_health = None;
    let stop = decision.actions.iter().find_map(|a| match a {
        Action::Delete {
            pod,
            reason: DeleteReason::Rollout | DeleteReason::ScaleDown,
        } => Some(pod.clone()),
        _ => None,
    });
    let identity = desired.conf.identity.account().is_some();
    let scale_down = decision.actions.iter().any(|a| {
        matches!(a, Action::Delete { pod, reason: DeleteReason::ScaleDown } if Some(pod) == stop.as_ref())
    });
    let mut moving = None;
    if jetstream
        && identity
        && scale_down
        && let Some(target) = stop.as_ref()
    {
        moving = streams_to_move(o, target);
    }
    if let Some((mut wait, movable)) = moving {
        let target = stop.clone().unwrap_or_default();
        decision.actions.clear();
        let can_move = crate::api::version::parse(&spec.version)
            .map_or(true, |v| v.supports(&crate::api::version::STREAM_MOVE));
        if !movable.is_empty() && can_move {
            steps.push(Step::MoveStreams {
                server: target.clone(),
                streams: movable,
            });
        } else if !movable.is_empty() {
            // The server has no move API: the replicas stay until someone moves them.
            let first = &movable[0].1;
            wait = format!(
                "{wait}; nats-server {} cannot move streams ({} needs {}): move each with \
                 `nats stream cluster peer-remove {first} {target}`, or upgrade",
                spec.version,
                crate::api::version::STREAM_MOVE.name,
                crate::api::version::STREAM_MOVE.since_text()
            );
        }
        let (since, late) = waited(o, spec, now);
        catch_up_since = Some(since);
        if let Some(late) = late {
            let long = format!("{wait} ({late}; {target} is not stopped until then)");
            let reported = prev_status(o).conditions.iter().any(|c| {
                c.type_ == "Degraded" && c.status == "True" && c.reason == STREAMS_NOT_MOVED
            });
            if !reported {
                notices.push(Notice::warning(
                    STREAMS_NOT_MOVED,
                    "ScaleDown",
                    long.clone(),
                ));
            }
            degraded = Some((STREAMS_NOT_MOVED.to_string(), long));
        }
        decision.phase = Phase::Progressing(wait);
    } else if jetstream && let Some(target) = stop.clone() {
        match health.filter(|h| h.target == target) {
            None => needs_health = Some(target),
            Some(h) if h.behind.is_empty() => {}
            Some(h) => {
                decision.actions.clear();
                let (since, late) = waited(o, spec, now);
                catch_up_since = Some(since);
                let msg = format!(
                    "waiting for JetStream to be current before stopping {target}: {}",
                    h.behind.join("; ")
                );
                if let Some(late) = late {
                    let long = format!("{msg} ({late}; nothing is stopped until it is current)");
                    let reported = prev_status(o).conditions.iter().any(|c| {
                        c.type_ == "Degraded"
                            && c.status == "True"
                            && c.reason == JETSTREAM_NOT_CURRENT
                    });
                    if !reported {
                        notices.push(Notice::warning(
                            JETSTREAM_NOT_CURRENT,
                            "Rollout",
                            long.clone(),
                        ));
                    }
                    degraded = Some((JETSTREAM_NOT_CURRENT.to_string(), long));
                }
                decision.phase = Phase::Progressing(msg);
            }
        }
    }
    let lame_duck_wait = Duration::from_secs(
        u64::try_from(render::pod::termination_grace_seconds(spec)).unwrap_or(0),
    );
    let mut draining = Vec::new();
    for a in &decision.actions {
        match a {
            Action::Create(i) => {
                let Some(m) = desired.members.iter().find(|m| m.index == *i) else {
                    continue;
                };
                if let Some(claim) = &m.claim {
                    let exists =
                        o.claims.iter().flatten().any(|c| {
                            Some(&c.name) == claim.metadata.name.as_ref() && !c.terminating
                        });
                    if !exists {
                        steps.push(Step::CreateClaim(Box::new(claim.clone())));
                    }
                }
                steps.push(Step::CreatePod(Box::new(m.pod.clone())));
            }
            Action::Delete { pod, reason } => {
                let delete = Step::DeletePod {
                    pod: pod.clone(),
                    reason: *reason,
                };
                let voluntary = matches!(reason, DeleteReason::Rollout | DeleteReason::ScaleDown);
                let Some(p) = o
                    .pods
                    .iter()
                    .find(|p| p.name_any() == *pod)
                    .filter(|_| voluntary)
                else {
                    steps.push(delete);
                    continue;
                };
                match lame_duck::stage(p, now, lame_duck_wait) {
                    Stage::Delete => steps.push(delete),
                    Stage::SignalAndDelete(command) => steps.push(Step::SignalLameDuck {
                        pod: pod.clone(),
                        command,
                        reason: *reason,
                        then_delete: true,
                    }),
                    Stage::Signal(command) => {
                        steps.push(Step::SignalLameDuck {
                            pod: pod.clone(),
                            command,
                            reason: *reason,
                            then_delete: false,
                        });
                        draining.push(format!(
                            "putting {pod} into lame duck (it has no preStop hook)"
                        ));
                    }
                    Stage::Draining(until) => draining.push(format!(
                        "waiting for {pod} to finish lame duck (deleted at {until} at the latest)"
                    )),
                }
            }
        }
    }
    if !draining.is_empty() {
        decision.phase = Phase::Progressing(draining.join("; "));
    }
    steps.extend(mark_config(meta, o, &desired));
    if jetstream && identity {
        let mut members: std::collections::BTreeSet<String> =
            o.pods.iter().map(|p| p.name_any()).collect();
        members.extend(desired.members.iter().map(|m| m.pod.name_any()));
        // One at a time: the meta leader refuses a second membership change in flight.
        if let Some(server) = data_plane::departed_peers(&meta.name, &members, &o.jsz)
            .into_iter()
            .next()
        {
            steps.push(Step::RemovePeer { server });
        }
    }

    // Volumes.
    let mut volume_requests = None;
    if jetstream
        && degraded.is_none()
        && let Some(claims) = &o.claims
        && let Some(fs) = spec
            .jetstream
            .as_ref()
            .and_then(|j| j.file_storage.as_ref())
    {
        let pods: Vec<u32> = o
            .pods
            .iter()
            .filter_map(|p| render::member_index(&meta.name, &p.name_any()))
            .collect();
        let actions = volume_actions(
            claims,
            fs.size.as_ref().map(|q| q.0.as_str()),
            size,
            &pods,
            fs.reclaim_policy == Some(ReclaimPolicy::Delete),
        );
        let mut requests: std::collections::BTreeMap<String, String> = claims
            .iter()
            .filter(|c| !c.terminating && c.index.is_some())
            .filter_map(|c| Some((c.name.clone(), c.requested.clone()?)))
            .collect();
        for a in &actions {
            if let VolumeAction::Delete { claim } = a {
                requests.remove(claim);
            }
        }
        volume_requests = Some(requests);
        steps.extend(actions.into_iter().map(Step::Volume));
    }
    let requeue = match (&degraded, &decision.phase) {
        (Some(_), _) | (_, Phase::Progressing(_)) => CHANGING,
        _ => SETTLED,
    };
    Decision {
        desired: Some(desired),
        steps,
        notices,
        phase: decision.phase,
        degraded,
        catch_up_since,
        volume_requests,
        requeue,
        needs_health,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};

    use super::*;
    use crate::api::defaults::at_read_time;
    use crate::api::v1beta1::{Auth, ClientAuth, JetStream, NatsCluster, NatsClusterSpec};

    /// A NatsCluster as the Go operator stored it: no image, no defaults.
    fn stored(spec: NatsClusterSpec) -> NatsCluster {
        let mut c = NatsCluster::new("legacy", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        c.metadata.generation = Some(1);
        c
    }

    /// Observed with the operator's system user in place (as after the first pass).
    fn observed(c: NatsCluster) -> Observed {
        let mut o = Observed::new(Arc::new(c));
        let Ok(meta) = &o.meta else {
            panic!("{:?}", o.meta);
        };
        o.system_user_secret = Some(Arc::new(render::secret::system_user_secret(
            meta,
            &SystemUser {
                username: "nats-operator".into(),
                password: "pw".into(),
            },
        )));
        o
    }

    fn three() -> NatsClusterSpec {
        NatsClusterSpec {
            size: 3,
            version: "2.10.27".into(),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// A running, ready member as the pod it was created from.
    fn running(pod: &Pod) -> Arc<Pod> {
        let mut p = pod.clone();
        p.metadata.owner_references = Some(vec![OwnerReference {
            uid: "uid-1".into(),
            ..Default::default()
        }]);
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.0.0.1".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        Arc::new(p)
    }

    fn kinds(d: &Decision) -> Vec<String> {
        d.steps
            .iter()
            .map(|s| match s {
                Step::Apply { kind, name, .. } => format!("apply {} {name}", kind.name()),
                Step::Delete { kind, name } => format!("delete {} {name}", kind.name()),
                Step::CreatePod(p) => format!("create Pod {}", p.name_any()),
                Step::CreateClaim(c) => format!("create PVC {}", c.name_any()),
                Step::DeletePod { pod, .. } => format!("delete Pod {pod}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_new_cluster_stored_without_defaults_gets_every_child_with_the_real_image() {
        let o = observed(stored(three()));
        let d = decide(&o, &Paths::default(), None, now());
        assert_eq!(
            kinds(&d),
            [
                "apply Service legacy",
                "apply Service legacy-mgmt",
                "apply Secret legacy",
                "apply PodDisruptionBudget legacy",
                "create Pod legacy-1",
                "create Pod legacy-2",
                "create Pod legacy-3"
            ]
        );
        for s in &d.steps {
            if let Step::CreatePod(p) = s {
                let image = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone());
                assert_eq!(image.as_deref(), Some("nats:2.10.27"));
            }
        }
        assert_eq!(d.requeue, CHANGING);
        assert!(d.degraded.is_none() && d.notices.is_empty());
    }

    #[test]
    fn a_settled_cluster_writes_nothing_and_restoring_defaults_rolls_nothing() {
        let mut o = observed(stored(three()));
        let d = decide(&o, &Paths::default(), None, now());
        let Some(desired) = d.desired.clone() else {
            panic!("no desired state");
        };
        // Everything exists as applied.
        for s in &d.steps {
            match s {
                Step::Apply {
                    kind, name, body, ..
                } => match kind {
                    ChildKind::Service => {
                        let svc = serde_json::from_value(body.clone()).unwrap_or_default();
                        o.services.insert(name.clone(), Arc::new(svc));
                    }
                    ChildKind::Secret => {
                        o.config_secret = Some(Arc::new(
                            serde_json::from_value(body.clone()).unwrap_or_default(),
                        ))
                    }
                    ChildKind::PodDisruptionBudget => {
                        o.disruption_budget = Some(Arc::new(
                            serde_json::from_value(body.clone()).unwrap_or_default(),
                        ))
                    }
                    ChildKind::PodMonitor => {}
                },
                Step::CreatePod(p) => o.pods.push(running(p)),
                _ => {}
            }
        }
        let settled = decide(&o, &Paths::default(), None, now());
        assert!(settled.steps.is_empty(), "{:?}", kinds(&settled));
        assert_eq!(settled.phase, Phase::Ready);
        assert_eq!(settled.requeue, SETTLED);
        // The same object re-stored with the webhook's defaults written: same pods.
        let mut written = o.stored.as_ref().clone();
        crate::api::defaults::default_v1beta1(&mut written.spec, None);
        let mut again = o.clone();
        again.stored = Arc::new(written.clone());
        again.cluster = at_read_time(&written);
        let d2 = decide(&again, &Paths::default(), None, now());
        assert!(d2.steps.is_empty(), "{:?}", kinds(&d2));
        assert_eq!(d2.desired.map(|d| d.objects()), Some(desired.objects()));
    }

    #[test]
    fn a_running_member_on_an_older_config_is_marked_not_replaced() {
        let mut o = observed(stored(three()));
        let d = decide(&o, &Paths::default(), None, now());
        let mut want = None;
        for s in &d.steps {
            match s {
                Step::Apply {
                    kind: ChildKind::Secret,
                    body,
                    ..
                } => {
                    o.config_secret = Some(Arc::new(
                        serde_json::from_value(body.clone()).unwrap_or_default(),
                    ))
                }
                Step::CreatePod(p) => {
                    want = p.annotations().get(CONFIG_HASH_ANNOTATION).cloned();
                    let mut pod = p.as_ref().clone();
                    if pod.name_any() == "legacy-2" {
                        pod.annotations_mut()
                            .insert(CONFIG_HASH_ANNOTATION.into(), "before".into());
                    }
                    o.pods.push(running(&pod));
                }
                _ => {}
            }
        }
        let marked: Vec<(String, String)> = decide(&o, &Paths::default(), None, now())
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::MarkConfig { pod, hash } => Some((pod.clone(), hash.clone())),
                Step::CreatePod(_) | Step::DeletePod { .. } => {
                    Some(("replaced".into(), String::new()))
                }
                _ => None,
            })
            .collect();
        let Some(want) = want else {
            panic!("pods carry no config hash");
        };
        assert_eq!(marked, [("legacy-2".to_string(), want)]);
    }

    fn with_auth_secret(text: Option<&str>) -> Observed {
        let mut o = observed(stored(NatsClusterSpec {
            auth: Some(Auth {
                clients: Some(ClientAuth {
                    secret: "users".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..three()
        }));
        if let Some(t) = text {
            o.auth_secrets.insert(
                "users".into(),
                BTreeMap::from([("users.json".to_string(), t.as_bytes().to_vec())]),
            );
        }
        o
    }

    #[test]
    fn a_secret_of_the_wrong_shape_degrades_once_and_waits_like_a_missing_one() {
        for (text, reason) in [(Some("[1, 2]"), "InvalidInput"), (None, "MissingInput")] {
            let mut o = with_auth_secret(text);
            let d = decide(&o, &Paths::default(), None, now());
            assert!(d.steps.is_empty(), "nothing is written without the inputs");
            let (r, msg) = d.degraded.clone().unwrap_or_default();
            assert_eq!(r, reason);
            assert!(msg.starts_with("spec.auth.clients.secret: "), "{msg}");
            assert_eq!(d.notices.len(), 1);
            assert_eq!(
                d.requeue, SETTLED,
                "no hot loop: a change of the Secret wakes it"
            );
            // The next pass, with the problem in status: no second Event.
            let mut st = NatsClusterStatus::default();
            st.conditions.push(Condition {
                type_: "Degraded".into(),
                status: "True".into(),
                reason: r,
                message: msg,
                observed_generation: Some(1),
                last_transition_time: Time(now()),
            });
            let mut c = o.stored.as_ref().clone();
            c.status = Some(st);
            o.stored = Arc::new(c);
            assert!(
                decide(&o, &Paths::default(), None, now())
                    .notices
                    .is_empty()
            );
        }
        let ok = with_auth_secret(Some(r#"{"users": [{"username": "a", "password": "b"}]}"#));
        let d = decide(&ok, &Paths::default(), None, now());
        assert!(d.degraded.is_none());
        let conf = d.desired.map(|d| d.conf.text).unwrap_or_default();
        assert!(conf.contains("authorization"), "{conf}");
    }

    #[test]
    fn the_jetstream_gate_waits_from_the_time_in_status_and_degrades_past_the_timeout() {
        let spec = NatsClusterSpec {
            jetstream: Some(JetStream {
                catch_up_timeout: "60s".into(),
                ..Default::default()
            }),
            ..three()
        };
        let mut o = observed(stored(spec.clone()));
        // Members made from an older spec: a rollout is due.
        let mut old = spec.clone();
        old.version = "2.10.26".into();
        let old_pods = decide(&observed(stored(old)), &Paths::default(), None, now());
        for s in &old_pods.steps {
            if let Step::CreatePod(p) = s {
                o.pods.push(running(p));
            }
        }
        let first = decide(&o, &Paths::default(), None, now());
        assert_eq!(first.needs_health.as_deref(), Some("legacy-1"));
        let behind = Health {
            target: "legacy-1".into(),
            behind: vec!["legacy-2 /healthz 503: JetStream stream catching up".into()],
        };
        let waiting = decide(&o, &Paths::default(), Some(&behind), now());
        assert!(
            !waiting
                .steps
                .iter()
                .any(|s| matches!(s, Step::DeletePod { .. }))
        );
        assert_eq!(waiting.catch_up_since, Some(now()));
        assert!(waiting.degraded.is_none());
        // A later pass (a new leader, say) continues the wait recorded in status.
        let mut c = o.stored.as_ref().clone();
        c.status = Some(NatsClusterStatus {
            catch_up_since: Some(Time(now())),
            ..Default::default()
        });
        o.stored = Arc::new(c);
        let later = now() + k8s_openapi::jiff::SignedDuration::from_secs(90);
        let late = decide(&o, &Paths::default(), Some(&behind), later);
        assert_eq!(late.catch_up_since, Some(now()));
        assert_eq!(
            late.degraded.as_ref().map(|d| d.0.as_str()),
            Some(JETSTREAM_NOT_CURRENT)
        );
        assert_eq!(late.notices.len(), 1);
        // All current: the stop goes ahead and the wait is over.
        let current = Health {
            target: "legacy-1".into(),
            behind: Vec::new(),
        };
        let go = decide(&o, &Paths::default(), Some(&current), later);
        assert!(stops(&go.steps, "legacy-1"), "{:?}", go.steps);
        assert_eq!(go.catch_up_since, None);
    }

    #[test]
    fn a_member_without_a_pre_stop_hook_is_put_into_lame_duck_before_it_is_deleted() {
        let mut o = observed(stored(three()));
        // Members as the Go operator made them: no pod-spec hash, no preStop hook.
        let made = decide(&o, &Paths::default(), None, now());
        for s in &made.steps {
            if let Step::CreatePod(p) = s {
                let mut p = p.as_ref().clone();
                if let Some(a) = p.metadata.annotations.as_mut() {
                    a.remove(POD_SPEC_HASH_ANNOTATION);
                }
                if let Some(spec) = p.spec.as_mut() {
                    spec.containers[0].lifecycle = None;
                    spec.containers[0].command = Some(vec!["/nats-server".into()]);
                }
                o.pods.push(running(&p));
            }
        }
        let first = decide(&o, &Paths::default(), None, now());
        let signals: Vec<_> = first
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::SignalLameDuck { pod, command, .. } => Some((pod.clone(), command.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            signals,
            vec![(
                "legacy-1".to_string(),
                vec![
                    "/nats-server".to_string(),
                    "--signal".into(),
                    "ldm=/var/run/nats/nats.pid".into()
                ]
            )]
        );
        assert!(
            !first
                .steps
                .iter()
                .any(|s| matches!(s, Step::DeletePod { .. }))
        );
        assert!(matches!(&first.phase, Phase::Progressing(m) if m.contains("lame duck")));
        assert_eq!(first.requeue, CHANGING);

        // Signalled: wait while it drains, delete once the wait is over.
        let mark = |o: &mut Observed| {
            let mut p = o.pods[0].as_ref().clone();
            p.metadata
                .annotations
                .get_or_insert_default()
                .insert(lame_duck::SINCE_ANNOTATION.into(), now().to_string());
            o.pods[0] = Arc::new(p);
        };
        mark(&mut o);
        let draining = decide(&o, &Paths::default(), None, now());
        assert!(
            !draining
                .steps
                .iter()
                .any(|s| matches!(s, Step::DeletePod { .. } | Step::SignalLameDuck { .. }))
        );
        assert!(matches!(&draining.phase, Phase::Progressing(m) if m.contains("finish lame duck")));
        // The default lame duck (120 s) plus the grace margin (30 s).
        let after = now() + k8s_openapi::jiff::SignedDuration::from_secs(150);
        let done = decide(&o, &Paths::default(), None, after);
        assert!(
            done.steps
                .iter()
                .any(|s| matches!(s, Step::DeletePod { pod, .. } if pod == "legacy-1"))
        );
    }

    #[test]
    fn a_jetstream_cluster_first_issues_its_system_user_then_renders_it() {
        let spec = NatsClusterSpec {
            jetstream: Some(JetStream::default()),
            ..three()
        };
        let first = decide(
            &Observed::new(Arc::new(stored(spec.clone()))),
            &Paths::default(),
            None,
            now(),
        );
        assert_eq!(first.steps, vec![Step::IssueSystemUser]);
        assert!(first.desired.is_none(), "nothing is rendered without it");
        let next = decide(&observed(stored(spec)), &Paths::default(), None, now());
        let conf = next.desired.map(|d| d.conf).map(|c| (c.text, c.identity));
        let (text, identity) = conf.unwrap_or_else(|| panic!("no desired state"));
        assert_eq!(
            identity,
            crate::render::system_user::Identity::InAccount("$SYS".into())
        );
        assert!(
            text.contains(r#""$SYS""#) && text.contains(r#""nats-operator""#),
            "{text}"
        );
        // Without JetStream there is neither a Secret nor a user.
        let plain = decide(
            &Observed::new(Arc::new(stored(three()))),
            &Paths::default(),
            None,
            now(),
        );
        assert!(!plain.steps.contains(&Step::IssueSystemUser));
        assert!(
            !plain
                .desired
                .map(|d| d.conf.text)
                .unwrap_or_default()
                .contains("nats-operator")
        );
    }

    /// `/jsz` of `pod`: the meta group as `leader` leads it with `peers` (name, offline),
    /// and streams it leads as `(name, replicas configured, other hosts)`.
    fn jsz(
        pod: &str,
        leader: &str,
        peers: &[(&str, bool)],
        streams: &[(&str, u32, &[&str])],
    ) -> data_plane::MemberJsz {
        let detail = json!({
            "meta_cluster": {
                "leader": leader,
                "replicas": peers.iter().filter(|(n, _)| *n != pod).map(|(n, off)| json!({"name": n, "current": !off, "offline": off})).collect::<Vec<_>>(),
            },
            "account_details": [{
                "name": "$G",
                "stream_detail": streams.iter().map(|(name, r, others)| json!({
                    "name": name,
                    "config": {"num_replicas": r},
                    "cluster": {"leader": pod, "replicas": others.iter().map(|o| json!({"name": o, "current": true})).collect::<Vec<_>>()},
                })).collect::<Vec<_>>(),
            }],
        });
        data_plane::MemberJsz {
            pod: pod.into(),
            jsz: serde_json::from_value(detail).map_err(|e| e.to_string()),
        }
    }

    /// A JetStream cluster of 4 members running `version`, scaled to 3.
    fn shrinking(version: &str) -> Observed {
        let four = NatsClusterSpec {
            size: 4,
            version: version.into(),
            jetstream: Some(JetStream {
                catch_up_timeout: "60s".into(),
                ..Default::default()
            }),
            ..three()
        };
        let spec = NatsClusterSpec {
            size: 3,
            ..four.clone()
        };
        let mut o = observed(stored(spec));
        for s in decide(&observed(stored(four)), &Paths::default(), None, now()).steps {
            if let Step::CreatePod(p) = s {
                o.pods.push(running(&p));
            }
        }
        o
    }

    #[test]
    fn a_server_without_stream_moves_is_not_asked_and_the_user_is_told_how() {
        let mut o = shrinking("2.8.4");
        let peers = [("legacy-1", false), ("legacy-4", false)];
        o.jsz = vec![
            jsz("legacy-1", "legacy-1", &peers, &[]),
            jsz("legacy-2", "legacy-1", &peers, &[]),
            jsz("legacy-3", "legacy-1", &peers, &[]),
            jsz("legacy-4", "legacy-1", &peers, &[("ORDERS", 1, &[])]),
        ];
        let d = decide(&o, &Paths::default(), None, now());
        assert!(
            !d.steps
                .iter()
                .any(|s| matches!(s, Step::MoveStreams { .. } | Step::DeletePod { .. })),
            "{:?}",
            d.steps
        );
        assert!(
            matches!(&d.phase, Phase::Progressing(m) if m.contains("nats-server 2.8.4 cannot move streams (stream moves needs 2.9.0): move each with `nats stream cluster peer-remove ORDERS legacy-4`")),
            "{:?}",
            d.phase
        );
        // The same on 2.9.0 is moved by the operator.
        let mut newer = shrinking("2.9.0");
        newer.jsz = o.jsz.clone();
        let moved = decide(&newer, &Paths::default(), None, now());
        assert!(
            moved
                .steps
                .iter()
                .any(|s| matches!(s, Step::MoveStreams { server, .. } if server == "legacy-4")),
            "{:?}",
            moved.steps
        );
    }

    #[test]
    fn a_scale_down_moves_the_streams_off_the_member_waits_then_removes_its_peer() {
        let mut o = shrinking(&three().version);
        let peers = [
            ("legacy-1", false),
            ("legacy-2", false),
            ("legacy-3", false),
            ("legacy-4", false),
        ];
        let answers = |orders: &[&str]| {
            vec![
                jsz("legacy-1", "legacy-1", &peers, &[("ORDERS", 3, orders)]),
                jsz("legacy-2", "legacy-1", &peers, &[]),
                jsz("legacy-3", "legacy-1", &peers, &[]),
                jsz("legacy-4", "legacy-1", &peers, &[("EVENTS", 1, &[])]),
            ]
        };
        // ORDERS and EVENTS have a replica on legacy-4: both move, nothing stops.
        o.jsz = answers(&["legacy-2", "legacy-4"]);
        let moving = decide(&o, &Paths::default(), None, now());
        assert!(
            moving.steps.contains(&Step::MoveStreams {
                server: "legacy-4".into(),
                streams: vec![
                    ("$G".into(), "ORDERS".into()),
                    ("$G".into(), "EVENTS".into())
                ],
            }),
            "{:?}",
            moving.steps
        );
        assert!(
            !moving
                .steps
                .iter()
                .any(|s| matches!(s, Step::DeletePod { .. } | Step::SignalLameDuck { .. }))
        );
        assert!(
            matches!(&moving.phase, Phase::Progressing(m) if m.contains("moving 2 stream replica(s) off legacy-4"))
        );
        assert_eq!(moving.catch_up_since, Some(now()));
        // Under way (ORDERS has a fourth replica catching up): not asked twice.
        o.jsz = answers(&["legacy-2", "legacy-3", "legacy-4"]);
        o.jsz[3] = jsz("legacy-4", "legacy-1", &peers, &[]);
        let under_way = decide(&o, &Paths::default(), None, now());
        assert!(
            !under_way
                .steps
                .iter()
                .any(|s| matches!(s, Step::MoveStreams { .. } | Step::DeletePod { .. }))
        );
        // Past catchUpTimeout: Degraded, and still nothing is stopped.
        let mut c = o.stored.as_ref().clone();
        c.status = Some(NatsClusterStatus {
            catch_up_since: Some(Time(now())),
            ..Default::default()
        });
        o.stored = Arc::new(c);
        let late = now() + k8s_openapi::jiff::SignedDuration::from_secs(61);
        let timed_out = decide(&o, &Paths::default(), None, late);
        assert_eq!(
            timed_out.degraded.as_ref().map(|d| d.0.as_str()),
            Some(STREAMS_NOT_MOVED)
        );
        assert!(
            !timed_out
                .steps
                .iter()
                .any(|s| matches!(s, Step::DeletePod { .. }))
        );
        // A member that does not answer hides its streams: wait, move nothing.
        o.jsz[2].jsz = Err("connection refused".into());
        let blind = decide(&o, &Paths::default(), None, now());
        assert!(
            matches!(&blind.phase, Phase::Progressing(m) if m.contains("every member's streams"))
        );
        // Moved: the usual gate (health), then the member goes.
        o.jsz = answers(&["legacy-2", "legacy-3"]);
        o.jsz[3] = jsz("legacy-4", "legacy-1", &peers, &[]);
        let moved = decide(&o, &Paths::default(), None, now());
        assert_eq!(
            moved.needs_health.as_deref(),
            Some("legacy-4"),
            "{:?} {:?}",
            moved.phase,
            moved.steps
        );
        let healthy = Health {
            target: "legacy-4".into(),
            behind: Vec::new(),
        };
        let stop = decide(&o, &Paths::default(), Some(&healthy), now());
        assert!(stops(&stop.steps, "legacy-4"), "{:?}", stop.steps);
        // Gone: its meta peer is removed, once.
        o.pods.retain(|p| p.name_any() != "legacy-4");
        let gone = [
            ("legacy-1", false),
            ("legacy-2", false),
            ("legacy-3", false),
            ("legacy-4", true),
        ];
        o.jsz = vec![
            jsz("legacy-1", "legacy-1", &gone, &[]),
            jsz("legacy-2", "legacy-1", &gone, &[]),
            jsz("legacy-3", "legacy-1", &gone, &[]),
        ];
        let removing = decide(&o, &Paths::default(), None, now());
        let removals: Vec<&Step> = removing
            .steps
            .iter()
            .filter(|s| matches!(s, Step::RemovePeer { .. }))
            .collect();
        assert_eq!(
            removals,
            vec![&Step::RemovePeer {
                server: "legacy-4".into()
            }]
        );
    }

    /// `pod` is signalled into lame duck and deleted right after (it has our hook).
    fn stops(steps: &[Step], pod: &str) -> bool {
        steps.iter().any(|s| {
            matches!(s, Step::SignalLameDuck { pod: p, then_delete: true, command, .. }
                if p == pod && command.last().is_some_and(|c| c.starts_with("ldm=")))
        })
    }

    /// Our hook alone races with the kubelet's SIGTERM, so the operator signals first
    /// and deletes in the same step, without waiting for the drain.
    #[test]
    fn a_member_with_our_hook_is_signalled_then_deleted() {
        let spec = three();
        let mut o = observed(stored(spec.clone()));
        let mut old = spec;
        old.version = "2.10.26".into();
        for s in &decide(&observed(stored(old)), &Paths::default(), None, now()).steps {
            if let Step::CreatePod(p) = s {
                o.pods.push(running(p));
            }
        }
        let d = decide(&o, &Paths::default(), None, now());
        assert!(stops(&d.steps, "legacy-1"), "{:?}", d.steps);
        assert!(!d.steps.iter().any(|s| matches!(s, Step::DeletePod { .. })));
        assert!(
            !matches!(&d.phase, Phase::Progressing(m) if m.contains("lame duck")),
            "{:?}",
            d.phase
        );
    }

    #[test]
    fn a_paused_cluster_plans_nothing() {
        let o = observed(stored(NatsClusterSpec {
            paused: true,
            ..three()
        }));
        let d = decide(&o, &Paths::default(), None, now());
        assert!(d.steps.is_empty());
        assert_eq!(d.phase, Phase::Paused);
    }

    #[test]
    fn subset_ignores_server_defaults() {
        let desired = json!({"spec": {"ports": [{"port": 4222, "name": "client"}], "selector": {"app": "nats"}}});
        let existing = json!({"spec": {"ports": [{"port": 4222, "name": "client", "protocol": "TCP", "targetPort": 4222}], "selector": {"app": "nats"}, "clusterIP": "10.0.0.1"}});
        assert!(is_subset(&desired, &existing));
        let changed = json!({"spec": {"ports": [{"port": 4223, "name": "client"}]}});
        assert!(!is_subset(&changed, &existing));
        let more = json!({"spec": {"ports": [{"port": 4222}, {"port": 8080}]}});
        assert!(!is_subset(&more, &existing));
    }
}
