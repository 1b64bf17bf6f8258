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

/// A reflector whose writer runs in a background task; returns the store and a
/// subscriber stream for the controller.
fn shared<K>(
    api: Api<K>,
    config: watcher::Config,
    tasks: &mut tokio::task::JoinSet<()>,
) -> (Store<K>, reflector::ReflectHandle<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store_shared(1024);
    let subscriber = match writer.subscribe() {
        Some(s) => s,
        // A shared writer always hands out subscribers.
        None => unreachable_subscriber(),
    };
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|o: &mut K| {
            o.managed_fields_mut().clear();
        })
        .reflect_shared(writer)
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(error = %e, kind = %K::kind(&()), "watch error");
            }
        });
    tasks.spawn(stream);
    (reader, subscriber)
}

fn unreachable_subscriber<K: Resource<DynamicType = ()> + Clone>() -> reflector::ReflectHandle<K> {
    let (_, writer) = reflector::store_shared::<K>(1);
    match writer.subscribe() {
        Some(s) => s,
        None => panic!("kube-runtime: a shared store writer must support subscribers"),
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
    let mut tasks = tokio::task::JoinSet::new();
    let children = watcher::Config::default().labels("app=nats");
    let (clusters, cluster_sub) = shared(
        scope.api::<NatsCluster>(&client),
        watcher::Config::default(),
        &mut tasks,
    );
    let (pods, pod_sub) = shared(scope.api::<Pod>(&client), children.clone(), &mut tasks);
    let (services, svc_sub) = shared(scope.api::<Service>(&client), children.clone(), &mut tasks);
    let (secrets, secret_sub) = shared(scope.api::<Secret>(&client), children.clone(), &mut tasks);
    let (pdbs, pdb_sub) = shared(
        scope.api::<PodDisruptionBudget>(&client),
        children,
        &mut tasks,
    );
    let (roles, role_sub) = shared(
        scope.api::<NatsServiceRole>(&client),
        watcher::Config::default(),
        &mut tasks,
    );

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
    Controller::for_shared_stream(cluster_sub, clusters)
        .owns_shared_stream(pod_sub)
        .owns_shared_stream(svc_sub)
        .owns_shared_stream(secret_sub)
        .owns_shared_stream(pdb_sub)
        .watches_shared_stream(role_sub, |role: Arc<NatsServiceRole>| {
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
    tasks.shutdown().await;
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
