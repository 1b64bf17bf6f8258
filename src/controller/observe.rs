//! Observe: everything one reconcile looks at, read from the shared cache plus the few
//! live reads the cache cannot serve (authorization Secrets, whose values the cache
//! drops; ServiceAccounts; claims; the PodMonitor). Nothing here writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::context::{APPLIED_ANNOTATION, Context, Error, Pending, kube_err};
use super::data_plane::MemberJsz;
use super::service_roles::{self, Binding};
use super::storage::Claim;
use crate::api::defaults::at_read_time;
use crate::api::v1beta1::NatsCluster;
use crate::render::inputs::{SecretData, referenced_secrets};
use crate::render::{self, ClusterMeta, InputProblem, labels};

/// What the PodMonitor kind and object look like.
#[derive(Debug, Clone, PartialEq)]
pub enum PodMonitorSeen {
    /// The spec has no `pod.podMonitor`: not looked at.
    NotAsked,
    /// The kind is not installed (no Prometheus Operator CRDs).
    KindMissing,
    /// The object as it exists, if it does.
    Exists(Option<Value>),
}

/// One reconcile's view of a cluster and its children.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The NatsCluster as stored (its status is the previous status).
    pub stored: Arc<NatsCluster>,
    /// The same with the webhook's defaults applied now: what is rendered.
    pub cluster: NatsCluster,
    /// Its identity, or why it has none.
    pub meta: Result<ClusterMeta, InputProblem>,
    /// Its member pods (owned by it, by uid, whichever version's owner reference).
    pub pods: Vec<Arc<Pod>>,
    /// The referenced authorization Secrets that exist, by name.
    pub auth_secrets: BTreeMap<String, SecretData>,
    /// Service-role bindings (with `auth.clients.serviceAccounts`).
    pub bindings: Vec<Binding>,
    /// Bound-token Secrets of this cluster (to find those no user needs).
    pub token_secrets: Vec<Arc<Secret>>,
    /// Children as cached: Services by name, the config Secret, the budget.
    pub services: BTreeMap<String, Arc<Service>>,
    /// The config Secret.
    pub config_secret: Option<Arc<Secret>>,
    /// The PodDisruptionBudget.
    pub disruption_budget: Option<Arc<PodDisruptionBudget>>,
    /// The PodMonitor.
    pub pod_monitor: PodMonitorSeen,
    /// The JetStream claims, with `jetstream.fileStorage`.
    pub claims: Option<Vec<Claim>>,
    /// Our own writes the cache does not show yet.
    pub pending: Pending,
    /// The Secret with the operator's system user, as cached.
    pub system_user_secret: Option<Arc<Secret>>,
    /// The members' `/jsz` (JetStream clusters that are not paused).
    pub jsz: Vec<MemberJsz>,
}

impl Observed {
    /// `stored` read as the reconciler reads it (defaults applied), with nothing around it
    /// observed yet: no pods, Secrets, children or claims.
    pub fn new(stored: Arc<NatsCluster>) -> Observed {
        let cluster = at_read_time(&stored);
        let meta = ClusterMeta::of(&cluster).map_err(|e| InputProblem {
            field: "metadata.name",
            message: e.to_string(),
            missing: false,
        });
        Observed {
            stored,
            cluster,
            meta,
            pods: Vec::new(),
            auth_secrets: BTreeMap::new(),
            bindings: Vec::new(),
            token_secrets: Vec::new(),
            services: BTreeMap::new(),
            config_secret: None,
            disruption_budget: None,
            pod_monitor: PodMonitorSeen::NotAsked,
            claims: None,
            pending: Pending::default(),
            system_user_secret: None,
            jsz: Vec::new(),
        }
    }
}

/// The pods of the NatsCluster `namespace/name` (uid `uid`) in `pods`: labelled with its
/// name and owned by it.
pub fn member_pods(pods: &Store<Pod>, namespace: &str, name: &str, uid: &str) -> Vec<Arc<Pod>> {
    pods.state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| p.labels().get(labels::CLUSTER_LABEL).map(String::as_str) == Some(name))
        .filter(|p| p.owner_references().iter().any(|r| r.uid == uid))
        .collect()
}

fn cached<K: Resource<DynamicType = ()> + Clone>(
    store: &Store<K>,
    ns: &str,
    name: &str,
) -> Option<Arc<K>> {
    store.get(&ObjectRef::new(name).within(ns))
}

/// Builds the [`Observed`] of `stored`.
pub async fn observe(ctx: &Context, stored: Arc<NatsCluster>) -> Result<Observed, Error> {
    let mut o = Observed::new(stored.clone());
    let Ok(meta) = o.meta.clone() else {
        return Ok(o);
    };
    let ns = meta.namespace.as_str();
    let uid = meta.uid.clone().unwrap_or_default();
    o.pods = member_pods(&ctx.pods, ns, &meta.name, &uid);
    for name in [meta.name.clone(), meta.management_service()] {
        if let Some(s) = cached(&ctx.services, ns, &name) {
            o.services.insert(name, s);
        }
    }
    o.config_secret = cached(&ctx.secrets, ns, &meta.name);
    o.system_user_secret = cached(&ctx.secrets, ns, &meta.system_user_secret());
    o.disruption_budget = cached(&ctx.pdbs, ns, &meta.name);
    let seen: Vec<(String, bool)> = o
        .pods
        .iter()
        .map(|p| (p.name_any(), p.metadata.deletion_timestamp.is_some()))
        .collect();
    let mut children = BTreeMap::new();
    let mut hash = |kind: &str, m: &kube::api::ObjectMeta| {
        if let Some(h) = m
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_ANNOTATION))
        {
            children.insert(
                format!("{kind}/{}", m.name.clone().unwrap_or_default()),
                h.clone(),
            );
        }
    };
    for s in o.services.values() {
        hash("Service", &s.metadata);
    }
    if let Some(s) = &o.config_secret {
        hash("Secret", &s.metadata);
    }
    if let Some(b) = &o.disruption_budget {
        hash("PodDisruptionBudget", &b.metadata);
    }
    o.pending = ctx
        .recent
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending(&uid, &seen, &children);
    o.token_secrets = ctx
        .secrets
        .state()
        .into_iter()
        .filter(|s| {
            service_roles::bound_token_cluster(s)
                .is_some_and(|(cns, c)| cns == ns && c == meta.name)
        })
        .collect();
    if o.cluster.spec.paused {
        return Ok(o);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for r in referenced_secrets(&o.cluster.spec) {
        if o.auth_secrets.contains_key(r.name) {
            continue;
        }
        let got = secrets
            .get_opt(r.name)
            .await
            .map_err(kube_err(format!("get Secret {ns}/{}", r.name)))?;
        if let Some(s) = got {
            let data = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            o.auth_secrets.insert(r.name.to_string(), data);
        }
    }
    let service_accounts = o
        .cluster
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.clients.as_ref())
        .is_some_and(|c| c.service_accounts);
    if service_accounts {
        o.bindings = service_roles::observe_bindings(ctx, &meta).await?;
    }
    if o.cluster
        .spec
        .pod
        .as_ref()
        .is_some_and(|p| p.pod_monitor.is_some())
    {
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            ns,
            &render::monitor::pod_monitor_resource(),
        );
        o.pod_monitor = match api.get_opt(&meta.name).await {
            Ok(e) => PodMonitorSeen::Exists(e.map(|e| serde_json::to_value(e).unwrap_or_default())),
            // Not a Status "NotFound": the kind itself is not installed.
            Err(kube::Error::Api(e)) if e.code == 404 => PodMonitorSeen::KindMissing,
            Err(e) => return Err(kube_err(format!("get PodMonitor {ns}/{}", meta.name))(e)),
        };
    }
    if render::jetstream_enabled(&o.cluster.spec) {
        let https = render::https_monitoring(&o.cluster.spec);
        o.jsz = super::data_plane::observe(&o.pods, https).await;
    }
    let file_storage = render::jetstream_enabled(&o.cluster.spec)
        && o.cluster
            .spec
            .jetstream
            .as_ref()
            .is_some_and(|j| j.file_storage.is_some());
    if file_storage {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        let selector = format!("app=nats,nats_cluster={}", meta.name);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_err(format!("list PVCs of {ns}/{}", meta.name)))?;
        let prefix = format!("{}-data-", meta.name);
        o.claims = Some(
            list.items
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
                .collect(),
        );
    }
    Ok(o)
}
