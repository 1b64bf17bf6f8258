//! One reconcile of a NatsCluster: render the children, bring Services, the config
//! Secret and the PodDisruptionBudget in line (only writing what differs), carry out
//! the member plan one step at a time, and write the status when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};

use super::plan::{Action, DeleteReason, MemberPod, Observed, Phase, plan};
use super::service_roles;
use super::status::{StatusInput, next_status};
use super::storage::{Claim, VolumeAction, largest_request, volume_actions};
use crate::api::v1alpha2::NatsServiceRole;
use crate::api::v1beta1::NatsCluster;
use crate::render::{self, AuthInputs, ClusterMeta, POD_SPEC_HASH_ANNOTATION, Paths, labels};

/// Field manager of every server-side apply.
pub const MANAGER: &str = "nats-operator";
/// Annotation with the hash of the last applied form of a child.
pub const APPLIED_ANNOTATION: &str = "nats.io/applied-hash";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused a request.
    #[error("{action}: {source}")]
    Kube {
        /// What we tried.
        action: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// The spec cannot be rendered.
    #[error("cannot render the cluster: {0}")]
    Render(#[from] render::RenderError),
    /// A referenced Secret is missing or unusable.
    #[error("{0}")]
    Input(String),
}

impl Error {
    /// A short label for metrics and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "ApiError",
            Error::Render(_) => "InvalidSpec",
            Error::Input(_) => "MissingInput",
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
    /// Config Secrets (label `app=nats`).
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
    /// Since when each cluster (by uid) has waited for JetStream to be current before
    /// a voluntary stop, and whether that was reported.
    pub catch_up: std::sync::Mutex<BTreeMap<String, CatchUpWait>>,
}

/// A wait for JetStream data to be current (see [`Context::catch_up`]).
#[derive(Debug, Clone, Copy)]
pub struct CatchUpWait {
    /// When the wait began.
    pub since: std::time::Instant,
    /// The timeout was reported (Event) already.
    pub reported: bool,
}

/// `spec.jetstream.catchUpTimeout` when it is not set.
pub const DEFAULT_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);

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

async fn apply<K>(
    client: &kube::Client,
    cached: Option<Arc<K>>,
    desired: &K,
    what: &str,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let mut want = serde_json::to_value(desired).unwrap_or(Value::Null);
    // The hash of what we apply, stamped on the object: a field we stop setting (an
    // annotation removed from a service policy) changes the hash, so the apply goes out
    // and server-side apply removes the field. A field someone else changed fails the
    // subset check. Otherwise nothing is written.
    let applied = crate::render::sha256_hex(want.to_string().as_bytes());
    if let Some(existing) = cached {
        let have = serde_json::to_value(existing.as_ref()).unwrap_or(Value::Null);
        let same_hash = existing.annotations().get(APPLIED_ANNOTATION) == Some(&applied);
        if same_hash && is_subset(&want, &have) {
            return Ok(false);
        }
    }
    if let Some(m) = want.as_object_mut() {
        m.insert("apiVersion".into(), K::api_version(&()).into());
        m.insert("kind".into(), K::kind(&()).into());
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(APPLIED_ANNOTATION.into(), Value::String(applied));
            }
        }
    }
    let name = desired.meta().name.clone().unwrap_or_default();
    let ns = desired.meta().namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&want),
    )
    .await
    .map_err(kube_err(format!("apply {what} {ns}/{name}")))?;
    Ok(true)
}

fn cached<K: Resource<DynamicType = ()> + Clone>(
    store: &Store<K>,
    ns: &str,
    name: &str,
) -> Option<Arc<K>> {
    store.get(&ObjectRef::new(name).within(ns))
}

/// Reads the single JSON value of an authorization Secret.
async fn auth_json(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
) -> Result<Option<Value>, Error> {
    if name.is_empty() {
        return Ok(None);
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("get Secret {ns}/{name}")))?
        .ok_or_else(|| Error::Input(format!("{what} Secret {ns}/{name} does not exist")))?;
    let data = secret.data.unwrap_or_default();
    if data.len() != 1 {
        return Err(Error::Input(format!(
            "{what} Secret {ns}/{name} must have exactly one key holding the JSON authorization, it has {}",
            data.len()
        )));
    }
    let raw = data.into_values().next().map(|b| b.0).unwrap_or_default();
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| Error::Input(format!("{what} Secret {ns}/{name} is not JSON: {e}")))
}

fn member_view(cluster: &str, pod: &Pod, desired_hash: Option<&String>) -> MemberPod {
    let status = pod.status.clone().unwrap_or_default();
    MemberPod {
        name: pod.name_any(),
        index: render::member_index(cluster, &pod.name_any()),
        phase: status.phase.unwrap_or_default(),
        ready: status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        up_to_date: desired_hash
            .is_some_and(|h| pod.annotations().get(POD_SPEC_HASH_ANNOTATION) == Some(h)),
    }
}

/// The apiserver refuses an Event whose note is over 1 KiB (events.k8s.io/v1): cut
/// longer ones (e.g. every lagging member of a large cluster) at a character boundary.
fn fit_event_note(mut note: String) -> String {
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

pub(crate) async fn event(
    ctx: &Context,
    cluster: &NatsCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(fit_event_note(note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// Reconciles one NatsCluster.
pub async fn reconcile(cluster: Arc<NatsCluster>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let _timer = ctx.metrics.start_reconcile();
    let meta = ClusterMeta::of(&cluster)?;
    let spec = &cluster.spec;
    let ns = meta.namespace.clone();
    let selector = format!("app=nats,nats_cluster={}", meta.name);
    let uid = meta.uid.clone().unwrap_or_default();
    let owned = |p: &Pod| p.owner_references().iter().any(|o| o.uid == uid);
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| p.labels().get(labels::CLUSTER_LABEL) == Some(&meta.name) && owned(p))
        .collect();

    let mut degraded: Option<(&str, String)> = None;
    let mut actions_taken = 0usize;
    let mut phase = Phase::Paused;
    let mut volume_size: Option<String> = None;
    if !spec.paused {
        // Inputs of nats.conf.
        let auth_spec = spec.auth.clone().unwrap_or_default();
        let clients = auth_spec.clients.clone().unwrap_or_default();
        let mut auth = AuthInputs::default();
        let inputs: Result<(), Error> = async {
            // The bound-token Secrets in use; the others of this cluster are removed.
            let mut tokens = std::collections::BTreeSet::new();
            if clients.service_accounts {
                let (users, used) =
                    service_roles::service_role_users(&ctx, &cluster, &meta).await?;
                auth.service_roles = users;
                tokens = used;
            } else {
                auth.clients = auth_json(
                    &ctx.client,
                    &ns,
                    &clients.secret,
                    "spec.auth.clients.secret",
                )
                .await?;
            }
            let routes = auth_spec.routes.clone().unwrap_or_default();
            auth.routes =
                auth_json(&ctx.client, &ns, &routes.secret, "spec.auth.routes.secret").await?;
            if spec.gateway.is_some() {
                let gw = auth_spec.gateway.clone().unwrap_or_default();
                auth.gateway =
                    auth_json(&ctx.client, &ns, &gw.secret, "spec.auth.gateway.secret").await?;
            }
            if let Some(acc) = auth_spec.accounts.as_ref() {
                auth.accounts =
                    auth_json(&ctx.client, &ns, &acc.secret, "spec.auth.accounts.secret").await?;
            }
            actions_taken +=
                service_roles::remove_stale_tokens(&ctx, &cluster, &meta, &tokens).await?;
            Ok(())
        }
        .await;
        if let Err(e) = inputs {
            // Without its auth inputs a config would open the cluster: change nothing.
            event(
                &ctx,
                &cluster,
                EventType::Warning,
                "MissingInput",
                "Render",
                e.to_string(),
            )
            .await;
            degraded = Some(("MissingInput", e.to_string()));
        }
        if degraded.is_none() {
            let size = u32::try_from(spec.size.max(0)).unwrap_or(0);
            let members: Vec<String> = (1..=size)
                .map(|i| render::pod_name(&meta.name, i))
                .collect();
            let conf = render::nats_conf(spec, &meta, &members, &auth, &ctx.paths)?;
            for (svc, what) in [
                (render::client_service(spec, &meta), "Service"),
                (render::management_service(spec, &meta), "Service"),
            ] {
                let name = svc.metadata.name.clone().unwrap_or_default();
                if apply(&ctx.client, cached(&ctx.services, &ns, &name), &svc, what).await? {
                    actions_taken += 1;
                }
            }
            let secret = render::config_secret(&meta, &conf);
            if apply(
                &ctx.client,
                cached(&ctx.secrets, &ns, &meta.name),
                &secret,
                "Secret",
            )
            .await?
            {
                actions_taken += 1;
                event(
                    &ctx,
                    &cluster,
                    EventType::Normal,
                    "ConfigUpdated",
                    "Render",
                    format!("nats.conf {}", &conf.hash[..12]),
                )
                .await;
            }
            match render::disruption_budget(spec, &meta) {
                Some(pdb) => {
                    if apply(
                        &ctx.client,
                        cached(&ctx.pdbs, &ns, &meta.name),
                        &pdb,
                        "PodDisruptionBudget",
                    )
                    .await?
                    {
                        actions_taken += 1;
                    }
                }
                None => {
                    if cached(&ctx.pdbs, &ns, &meta.name).is_some() {
                        let api: Api<PodDisruptionBudget> =
                            Api::namespaced(ctx.client.clone(), &ns);
                        let _ = api.delete(&meta.name, &DeleteParams::default()).await;
                    }
                }
            }
            actions_taken += reconcile_pod_monitor(&ctx, &cluster, &meta).await?;
            // Desired pods and their hashes, per existing member index.
            let mut desired: BTreeMap<String, String> = BTreeMap::new();
            for p in &pods {
                if let Some(i) = render::member_index(&meta.name, &p.name_any()) {
                    let pod = render::member_pod(spec, &meta, i, &conf.hash)?;
                    desired.insert(
                        p.name_any(),
                        pod.annotations()
                            .get(POD_SPEC_HASH_ANNOTATION)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
            }
            let views: Vec<MemberPod> = pods
                .iter()
                .map(|p| member_view(&meta.name, p, desired.get(&p.name_any())))
                .collect();
            let mut decision = plan(&Observed {
                size,
                paused: false,
                pods: views,
            });
            let jetstream = render::jetstream_enabled(spec)
                && crate::api::version::parse(&spec.version)
                    .map(|v| v.supports_jetstream())
                    .unwrap_or(true);
            if jetstream {
                catch_up_gate(&ctx, &cluster, &pods, &mut decision, &mut degraded).await;
            }
            let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            for action in &decision.actions {
                match action {
                    Action::Create(i) => {
                        let pod = render::member_pod(spec, &meta, *i, &conf.hash)?;
                        let name = pod.name_any();
                        if let Some(pvc) = render::member_pvc(spec, &meta, &name) {
                            let pvc_name = pvc.name_any();
                            let api: Api<PersistentVolumeClaim> =
                                Api::namespaced(ctx.client.clone(), &ns);
                            if api
                                .get_opt(&pvc_name)
                                .await
                                .map_err(kube_err(format!("get PVC {pvc_name}")))?
                                .is_none()
                            {
                                api.create(&PostParams::default(), &pvc)
                                    .await
                                    .map_err(kube_err(format!("create PVC {pvc_name}")))?;
                            }
                        }
                        match pod_api.create(&PostParams::default(), &pod).await {
                            Ok(_) => {
                                event(
                                    &ctx,
                                    &cluster,
                                    EventType::Normal,
                                    "MemberCreated",
                                    "Create",
                                    format!("created member {name}"),
                                )
                                .await
                            }
                            // Still terminating from a previous replacement: next pass.
                            Err(kube::Error::Api(e)) if e.code == 409 => {}
                            // Refused by admission (a missing ServiceAccount named in the
                            // template, a policy): the user must act; say so in status.
                            Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                                let msg = format!("member {name} refused: {}", e.message);
                                event(
                                    &ctx,
                                    &cluster,
                                    EventType::Warning,
                                    "MemberRejected",
                                    "Create",
                                    msg.clone(),
                                )
                                .await;
                                degraded = Some(("MemberRejected", msg));
                                break;
                            }
                            Err(e) => return Err(kube_err(format!("create Pod {ns}/{name}"))(e)),
                        }
                    }
                    Action::Delete { pod, reason } => {
                        let why = match reason {
                            DeleteReason::Ended => "it stopped; it is replaced",
                            DeleteReason::ScaleDown => "scaling down (lame duck first)",
                            DeleteReason::Rollout => {
                                "its spec is out of date; it is replaced (lame duck first)"
                            }
                            DeleteReason::Stray => "it is not a member of this cluster",
                        };
                        match pod_api.delete(pod, &DeleteParams::default()).await {
                            Ok(_) => {}
                            Err(kube::Error::Api(e)) if e.code == 404 => {}
                            Err(e) => return Err(kube_err(format!("delete Pod {ns}/{pod}"))(e)),
                        }
                        event(
                            &ctx,
                            &cluster,
                            EventType::Normal,
                            "MemberDeleted",
                            "Delete",
                            format!("deleted {pod}: {why}"),
                        )
                        .await;
                    }
                }
                actions_taken += 1;
            }
            if jetstream
                && degraded.is_none()
                && let Some(v) =
                    reconcile_volumes(&ctx, &cluster, &meta, &pods, size, &mut degraded).await?
            {
                actions_taken += v.changed;
                volume_size = Some(v.largest);
            }
            phase = decision.phase;
        }
    }
    if spec.paused {
        phase = Phase::Paused;
    } else if degraded.is_some() && matches!(phase, Phase::Paused) {
        phase = Phase::Progressing("waiting for inputs".into());
    }

    // Status, only when it changed.
    let views: Vec<MemberPod> = pods
        .iter()
        .map(|p| member_view(&meta.name, p, None))
        .collect();
    let versions: Vec<String> = pods
        .iter()
        .map(|p| {
            p.labels()
                .get(labels::VERSION_LABEL)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let prev = cluster.status.clone().unwrap_or_default();
    let next = next_status(
        &prev,
        &StatusInput {
            generation: cluster.metadata.generation,
            version: &spec.version,
            pods: &views,
            pod_versions: &versions,
            phase: &phase,
            degraded: degraded.clone(),
            selector,
            volume_size,
        },
        Timestamp::now(),
    );
    if next != prev {
        let api: Api<NatsCluster> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "nats.io/v1beta1", "kind": "NatsCluster", "status": next});
        api.patch_status(
            &meta.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_err(format!(
            "update status of NatsCluster {ns}/{}",
            meta.name
        )))?;
    }
    ctx.metrics.observe_cluster(
        &ns,
        &meta.name,
        super::metrics::ClusterHealth {
            ready_members: next.ready_replicas,
            desired_members: spec.size,
            ready: condition_true(&next, "Ready"),
            degraded: condition_true(&next, "Degraded"),
        },
    );
    Ok(match (&phase, actions_taken, &degraded) {
        (_, _, Some((JETSTREAM_NOT_CURRENT, _))) => Requeue::requeue(Duration::from_secs(5)),
        (_, _, Some(_)) => Requeue::requeue(Duration::from_secs(30)),
        (Phase::Progressing(_), _, _) => Requeue::requeue(Duration::from_secs(5)),
        _ => Requeue::requeue(Duration::from_secs(300)),
    })
}

fn condition_true(status: &crate::api::v1beta1::NatsClusterStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Degraded reason while a voluntary stop waits past `catchUpTimeout`.
pub const JETSTREAM_NOT_CURRENT: &str = "JetStreamNotCurrent";

/// Before a voluntary stop (rollout or scale-down) of a JetStream member, every other
/// live member must say its JetStream is current (`/healthz`, `/jsz` meta leader);
/// otherwise the stop waits. Past `catchUpTimeout` the cluster is `Degraded` (one
/// Warning Event) and still waits: stopping a member then could lose quorum or data.
async fn catch_up_gate(
    ctx: &Context,
    cluster: &NatsCluster,
    pods: &[Arc<Pod>],
    decision: &mut super::plan::Plan,
    degraded: &mut Option<(&'static str, String)>,
) {
    let Some(target) = decision.actions.iter().find_map(|a| match a {
        Action::Delete {
            pod,
            reason: DeleteReason::Rollout | DeleteReason::ScaleDown,
        } => Some(pod.clone()),
        _ => None,
    }) else {
        return;
    };
    let spec = &cluster.spec;
    let https = spec.tls.as_ref().is_some_and(|t| t.https_monitoring);
    // Every other live member at once: the wait is one health timeout, not one per
    // member, and the message names every member that is behind (a frozen meta leader
    // makes the others report "not current" too).
    let checks = pods
        .iter()
        .filter(|p| p.name_any() != target && p.metadata.deletion_timestamp.is_none())
        .map(|p| async move {
            let name = p.name_any();
            match p.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                None => Err(format!("{name} has no pod IP yet")),
                Some(ip) => super::health::verdict(&name, &super::health::check(&ip, https).await),
            }
        });
    let behind: Vec<String> = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    let blocked = (!behind.is_empty()).then(|| behind.join("; "));
    let key = cluster.metadata.uid.clone().unwrap_or_default();
    let Some(why) = blocked else {
        if let Ok(mut waits) = ctx.catch_up.lock() {
            waits.remove(&key);
        }
        return;
    };
    decision.actions.clear();
    let msg = format!("waiting for JetStream to be current before stopping {target}: {why}");
    let timeout = spec
        .jetstream
        .as_ref()
        .and_then(|j| crate::api::duration::parse(&j.catch_up_timeout))
        .unwrap_or(DEFAULT_CATCH_UP_TIMEOUT);
    let (waited, report) = match ctx.catch_up.lock() {
        Ok(mut waits) => {
            let w = waits.entry(key).or_insert(CatchUpWait {
                since: std::time::Instant::now(),
                reported: false,
            });
            let waited = w.since.elapsed();
            let report = waited > timeout && !w.reported;
            if report {
                w.reported = true;
            }
            (waited, report)
        }
        Err(_) => (Duration::ZERO, false),
    };
    if waited > timeout {
        let long = format!(
            "{msg} (waited {}s, catchUpTimeout is {}s; nothing is stopped until it is current)",
            waited.as_secs(),
            timeout.as_secs()
        );
        if report {
            event(
                ctx,
                cluster,
                EventType::Warning,
                JETSTREAM_NOT_CURRENT,
                "Rollout",
                long.clone(),
            )
            .await;
        }
        *degraded = Some((JETSTREAM_NOT_CURRENT, long));
    }
    decision.phase = Phase::Progressing(msg);
}

/// Creates or updates the PodMonitor of `spec.pod.podMonitor`, and deletes it when
/// `enabled` turns false. Without the Prometheus Operator's CRDs a Warning Event says
/// so and nothing else changes.
async fn reconcile_pod_monitor(
    ctx: &Context,
    cluster: &NatsCluster,
    meta: &ClusterMeta,
) -> Result<usize, Error> {
    let Some(pm) = cluster
        .spec
        .pod
        .as_ref()
        .and_then(|p| p.pod_monitor.as_ref())
    else {
        return Ok(0);
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &meta.namespace,
        &render::monitor::pod_monitor_resource(),
    );
    let what = format!("PodMonitor {}/{}", meta.namespace, meta.name);
    let desired = render::pod_monitor(&cluster.spec, meta);
    let existing = match api.get_opt(&meta.name).await {
        Ok(e) => e,
        // Not a Status "NotFound": the kind itself is not installed.
        Err(kube::Error::Api(e)) if e.code == 404 => {
            if desired.is_some() {
                pod_monitor_unavailable(ctx, cluster).await;
            }
            return Ok(0);
        }
        Err(e) => return Err(kube_err(format!("get {what}"))(e)),
    };
    let Some(desired) = desired else {
        if pm.enabled || existing.is_none() {
            return Ok(0);
        }
        match api.delete(&meta.name, &DeleteParams::default()).await {
            Ok(_) => return Ok(1),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(0),
            Err(e) => return Err(kube_err(format!("delete {what}"))(e)),
        }
    };
    if existing
        .as_ref()
        .is_some_and(|e| is_subset(&desired, &serde_json::to_value(e).unwrap_or_default()))
    {
        return Ok(0);
    }
    match api
        .patch(
            &meta.name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await
    {
        Ok(_) => Ok(1),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            pod_monitor_unavailable(ctx, cluster).await;
            Ok(0)
        }
        Err(e) => Err(kube_err(format!("apply {what}"))(e)),
    }
}

async fn pod_monitor_unavailable(ctx: &Context, cluster: &NatsCluster) {
    event(
        ctx,
        cluster,
        EventType::Warning,
        "PodMonitorUnavailable",
        "Apply",
        "spec.pod.podMonitor: the PodMonitor kind (monitoring.coreos.com/v1) is not installed; install the Prometheus Operator CRDs".into(),
    )
    .await;
}

/// What [`reconcile_volumes`] did and saw.
struct Volumes {
    /// Claims changed.
    changed: usize,
    /// The largest storage request among the claims afterwards (status `volumeSize`).
    largest: String,
}

/// Grows the members' claims to `fileStorage.size` and deletes departed members'
/// claims under `reclaimPolicy: Delete`; a refused expansion (the storage class can't
/// grow volumes) degrades the cluster with the apiserver's reason, and the spec may go
/// back down to the size the volumes have (status `volumeSize`).
async fn reconcile_volumes(
    ctx: &Context,
    cluster: &NatsCluster,
    meta: &ClusterMeta,
    pods: &[Arc<Pod>],
    size: u32,
    degraded: &mut Option<(&'static str, String)>,
) -> Result<Option<Volumes>, Error> {
    let Some(fs) = cluster
        .spec
        .jetstream
        .as_ref()
        .and_then(|j| j.file_storage.as_ref())
    else {
        return Ok(None);
    };
    let ns = &meta.namespace;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!("app=nats,nats_cluster={}", meta.name);
    let list = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(kube_err(format!("list PVCs of {ns}/{}", meta.name)))?;
    let prefix = format!("{}-data-", meta.name);
    let claims: Vec<Claim> = list
        .items
        .iter()
        .map(|c| Claim {
            name: c.name_any(),
            index: c
                .name_any()
                .strip_prefix(&prefix)
                .and_then(|pod| render::member_index(&meta.name, pod)),
            requested: c
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .map(|q| q.0.clone()),
            terminating: c.metadata.deletion_timestamp.is_some(),
        })
        .collect();
    let pod_indexes: Vec<u32> = pods
        .iter()
        .filter_map(|p| render::member_index(&meta.name, &p.name_any()))
        .collect();
    let actions = volume_actions(
        &claims,
        fs.size.as_ref().map(|q| q.0.as_str()),
        size,
        &pod_indexes,
        fs.reclaim_policy == "Delete",
    );
    // One Event per kind of change (the recorder folds Events of the same reason on the
    // same object into a series, so per-claim Events would hide all but the first).
    let (mut grown, mut deleted) = (Vec::new(), Vec::new());
    let mut requests: BTreeMap<&str, &str> = claims
        .iter()
        .filter(|c| !c.terminating && c.index.is_some())
        .filter_map(|c| Some((c.name.as_str(), c.requested.as_deref()?)))
        .collect();
    for a in &actions {
        match a {
            VolumeAction::Expand { claim, from, to } => {
                let patch = json!({"spec": {"resources": {"requests": {"storage": to}}}});
                match api
                    .patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        requests.insert(claim, to);
                        grown.push(format!("{claim} {from} -> {to}"));
                    }
                    Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                        let msg = format!(
                            "cannot grow {claim} from {from} to {to}: {} (spec.jetstream.fileStorage.size needs a storage class with allowVolumeExpansion, or set it back to status.volumeSize)",
                            e.message
                        );
                        event(
                            ctx,
                            cluster,
                            EventType::Warning,
                            "VolumeNotExpanded",
                            "Expand",
                            msg.clone(),
                        )
                        .await;
                        *degraded = Some(("VolumeNotExpanded", msg));
                    }
                    Err(e) => return Err(kube_err(format!("expand PVC {ns}/{claim}"))(e)),
                }
            }
            VolumeAction::Delete { claim } => {
                match api.delete(claim, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(kube_err(format!("delete PVC {ns}/{claim}"))(e)),
                }
                requests.remove(claim.as_str());
                deleted.push(claim.as_str());
            }
        }
    }
    if !grown.is_empty() {
        event(
            ctx,
            cluster,
            EventType::Normal,
            "VolumeExpanded",
            "Expand",
            format!("storage requests grown: {}", grown.join(", ")),
        )
        .await;
    }
    if !deleted.is_empty() {
        event(
            ctx,
            cluster,
            EventType::Normal,
            "VolumeDeleted",
            "Delete",
            format!(
                "deleted {} (their members are gone; reclaimPolicy is Delete)",
                deleted.join(", ")
            ),
        )
        .await;
    }
    Ok(Some(Volumes {
        changed: grown.len() + deleted.len(),
        largest: largest_request(requests.into_values()),
    }))
}

/// Requeue with a delay after a failed reconcile; the metrics count it by reason.
pub fn error_policy(_cluster: Arc<NatsCluster>, error: &Error, ctx: Arc<Context>) -> Requeue {
    tracing::warn!(error = %error, "reconcile failed");
    ctx.metrics.reconcile_failed(error.reason());
    Requeue::requeue(Duration::from_secs(10))
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
