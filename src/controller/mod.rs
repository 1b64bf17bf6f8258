//! The reconcile loop: turns NatsClusters into member pods, services and config.
//!
//! One reflector per kind (NatsCluster, Pod, Service, Secret, PodDisruptionBudget,
//! NatsServiceRole) feeds the controller; children are watched with the `app=nats`
//! label selector and without managedFields, so the cache stays lean.

pub mod leader;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod status;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use crate::api::v1alpha2::NatsServiceRole;
use crate::api::v1beta1::NatsCluster;
use crate::render::Paths;

/// Which namespaces the operator manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace (the default: the operator's own).
    Namespace(String),
    /// Every namespace.
    Cluster,
}

impl Scope {
    fn api<K>(&self, client: &kube::Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
            Scope::Cluster => Api::all(client.clone()),
        }
    }
}

/// One watch per kind: it fills the store the reconciler (and the webhooks) read and
/// yields every touched object, deletions included, to trigger reconciles. `prune`
/// drops what no reader needs, to keep the cache lean.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    prune: fn(&mut K),
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .default_backoff()
            .modify(move |o: &mut K| {
                o.managed_fields_mut().clear();
                prune(o);
            }),
    )
    .touched_objects();
    (reader, stream)
}

fn keep<K>(_: &mut K) {}

/// The reconciler reads a pod's labels, annotations, owners, phase and conditions only.
fn prune_pod(pod: &mut Pod) {
    pod.spec = None;
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
    }
}

/// Runs the NatsCluster controller until `shutdown` is true.
pub async fn run(
    client: kube::Client,
    scope: Scope,
    identity: String,
    metrics: Arc<metrics::Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let children = watcher::Config::default().labels("app=nats");
    let (clusters, cluster_stream) = reflect(
        scope.api::<NatsCluster>(&client),
        watcher::Config::default(),
        keep,
    );
    let (pods, pod_stream) = reflect(scope.api::<Pod>(&client), children.clone(), prune_pod);
    let (services, svc_stream) = reflect(scope.api::<Service>(&client), children.clone(), keep);
    let (secrets, secret_stream) = reflect(scope.api::<Secret>(&client), children.clone(), keep);
    let (pdbs, pdb_stream) = reflect(scope.api::<PodDisruptionBudget>(&client), children, keep);
    let (roles, role_stream) = reflect(
        scope.api::<NatsServiceRole>(&client),
        watcher::Config::default(),
        keep,
    );
    // The stores must be filled by their own streams even when the controller does not
    // poll them (roles are read, not owned), so the role stream is a trigger too.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "nats-operator".into(),
            instance: Some(identity),
        },
    );
    let ctx = Arc::new(reconcile::Context {
        client: client.clone(),
        pods,
        services,
        secrets,
        pdbs,
        roles,
        recorder,
        paths: Paths::default(),
        metrics,
    });
    // Auth Secrets are the user's (unlabelled): watch their metadata only and map a
    // change to every cluster that references the Secret.
    let referencing = clusters.clone();
    let meta_api: Api<kube::core::PartialObjectMeta<Secret>> = match &scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::Cluster => Api::all(client.clone()),
    };
    let auth_secrets = watcher(meta_api, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let mut stop = shutdown.clone();
    Controller::for_stream(cluster_stream, clusters)
        .owns_stream(pod_stream)
        .owns_stream(svc_stream)
        .owns_stream(secret_stream)
        .owns_stream(pdb_stream)
        .watches_stream(role_stream, |role: NatsServiceRole| {
            let ns = role.namespace();
            role.labels()
                .get("nats_cluster")
                .map(|c| {
                    let r = ObjectRef::<NatsCluster>::new(c);
                    match ns {
                        Some(ns) => r.within(&ns),
                        None => r,
                    }
                })
                .into_iter()
                .collect::<Vec<_>>()
        })
        .watches_stream(auth_secrets, move |secret| {
            let ns = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            referencing
                .state()
                .into_iter()
                .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
                .filter(|c| references_secret(c, &name))
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile result");
            }
        })
        .await;
}

/// Whether a cluster reads the Secret `name` for its authorization.
pub fn references_secret(cluster: &NatsCluster, name: &str) -> bool {
    let Some(auth) = &cluster.spec.auth else {
        return false;
    };
    auth.clients.as_ref().is_some_and(|c| c.secret == name)
        || auth.routes.as_ref().is_some_and(|r| r.secret == name)
        || auth.gateway.as_ref().is_some_and(|g| g.secret == name)
}
