//! The reconcile loop: turns NatsClusters into member pods, services and config.
//!
//! One watch per kind (and per namespace with `--namespaces`) fills the shared
//! [`cache::Caches`]: the same stores feed the controller and the webhooks. Children are
//! watched with the `app=nats` label selector and without managedFields, and Secrets we
//! only need the keys of are kept without their values, so the cache stays lean. The
//! caches run on every replica; the controller runs on the leader and subscribes to
//! their changes.

pub mod apply;
pub mod cache;
pub mod context;
pub mod data_plane;
pub mod decide;
pub mod health;
pub mod lame_duck;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod service_roles;
pub mod status;
pub mod storage;
pub mod system_account;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;

use crate::api::v1alpha2::NatsServiceRole;
use crate::api::v1beta1::NatsCluster;
pub use crate::jetstream::controller::AssetSettings;
use crate::render::Paths;
use cache::Caches;

/// Triggers of one cluster within this window make one reconcile: members becoming ready
/// one after another are one status write, not one each.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// Reconciles in flight at once: each holds a rendered desired state and its requests, so
/// a burst of new clusters is worked through in batches instead of all at once.
const CONCURRENCY: u16 = 16;

/// How often orphaned bound-token Secrets are looked for besides cluster deletions.
const SWEEP_PERIOD: Duration = Duration::from_secs(300);

/// What the controllers run with, besides the client and the caches.
#[derive(Clone, Default)]
pub struct Settings {
    /// The Event reporter instance (the pod name).
    pub identity: String,
    /// The operator's metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// The asset controllers' settings.
    pub assets: AssetSettings,
}

/// Which namespaces the operator manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace (the default: the operator's own).
    Namespace(String),
    /// A list of namespaces (`--namespaces`).
    Namespaces(Vec<String>),
    /// Every namespace.
    Cluster,
}

impl Scope {
    /// The namespaces to watch, sorted and without duplicates; `None` for all.
    pub fn namespaces(&self) -> Option<Vec<String>> {
        match self {
            Scope::Namespace(ns) => Some(vec![ns.clone()]),
            Scope::Namespaces(list) => {
                let mut list = list.clone();
                list.sort();
                list.dedup();
                Some(list)
            }
            Scope::Cluster => None,
        }
    }

    /// Whether objects of `namespace` are managed.
    pub fn covers(&self, namespace: &str) -> bool {
        match self {
            Scope::Namespace(ns) => ns == namespace,
            Scope::Namespaces(list) => list.iter().any(|ns| ns == namespace),
            Scope::Cluster => true,
        }
    }
}

/// Runs the caches of `scope` and the NatsCluster controller until `shutdown` is true
/// (without leader election).
pub async fn run(
    client: kube::Client,
    scope: Scope,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) {
    let (caches, driver) = Caches::new(&client, scope);
    let mut stop = shutdown.clone();
    let watches = tokio::spawn(driver.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    run_with(client, caches, settings, shutdown).await;
    let _ = watches.await;
}

/// Runs the NatsCluster controller and the asset controllers
/// ([`crate::jetstream::controller`]) on `caches` (driven elsewhere) until `shutdown` is
/// true: each reconciles every cached object once, then every change.
pub async fn run_with(
    client: kube::Client,
    caches: Caches,
    settings: Settings,
    shutdown: watch::Receiver<bool>,
) {
    let Settings {
        identity,
        metrics,
        assets,
    } = settings;
    let asset_controllers = tokio::spawn(crate::jetstream::controller::run(
        client.clone(),
        caches.clone(),
        identity.clone(),
        assets,
        shutdown.clone(),
    ));
    run_clusters(client, caches, identity, metrics, shutdown).await;
    let _ = asset_controllers.await;
}

async fn run_clusters(
    client: kube::Client,
    caches: Caches,
    identity: String,
    metrics: Arc<metrics::Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    // The controller starts on synced caches: its own wait for the store (a oneshot
    // that wakes only one waiter) then never waits, and the first reconciles see
    // every child.
    let mut stopping = shutdown.clone();
    tokio::select! {
        _ = caches.wait_synced() => {},
        _ = stopping.wait_for(|s| *s) => return,
    }
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "nats-operator".into(),
            instance: Some(identity),
        },
    );
    let ctx = Arc::new(context::Context {
        client: client.clone(),
        pods: caches.pods.store().clone(),
        services: caches.services.store().clone(),
        secrets: caches.secrets.store().clone(),
        pdbs: caches.pdbs.store().clone(),
        roles: caches.roles.store().clone(),
        recorder,
        paths: Paths::default(),
        metrics,
        scope: caches.scope().clone(),
        failures: Default::default(),
        recent: Default::default(),
    });
    let sweeper = tokio::spawn(sweep_orphaned_tokens(
        client.clone(),
        caches.clone(),
        shutdown.clone(),
    ));
    let clusters = caches.clusters.store().clone();
    let scope = caches.scope().clone();
    let mut stop = shutdown.clone();
    Controller::for_shared_stream(caches.clusters.snapshot_and_changes(), clusters.clone())
        .watches_shared_stream(caches.pods.changes(), owners)
        .watches_shared_stream(caches.services.changes(), owners)
        .watches_shared_stream(caches.pdbs.changes(), owners)
        .watches_shared_stream(caches.roles.changes(), |role: Arc<NatsServiceRole>| {
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
        .watches_shared_stream(caches.secrets.changes(), move |secret: Arc<Secret>| {
            secret_triggers(&secret, &clusters.state(), &scope)
        })
        .with_config(
            kube::runtime::controller::Config::default()
                .debounce(DEBOUNCE)
                .concurrency(CONCURRENCY),
        )
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
    sweeper.abort();
}

/// The clusters a change of `secret` concerns: its owner (a config Secret), the cluster
/// of a bound-token Secret (a deleted token is minted again at once), and the clusters
/// of its namespace that read it for authorization. TLS Secrets trigger nothing (the
/// config reloader in the pods watches the mounted files).
pub fn secret_triggers(
    secret: &Secret,
    clusters: &[Arc<NatsCluster>],
    scope: &Scope,
) -> Vec<ObjectRef<NatsCluster>> {
    let ns = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let mut out: Vec<ObjectRef<NatsCluster>> = secret
        .owner_references()
        .iter()
        .filter(|o| o.controller == Some(true) && o.kind == "NatsCluster")
        .map(|o| ObjectRef::new(&o.name).within(&ns))
        .collect();
    if let Some((cns, c)) = service_roles::bound_token_cluster(secret)
        && scope.covers(&cns)
    {
        out.push(ObjectRef::new(&c).within(&cns));
    }
    out.extend(
        clusters
            .iter()
            .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
            .filter(|c| references_secret(c, &name))
            .map(|c| ObjectRef::from_obj(c.as_ref())),
    );
    out
}

/// Deletes bound-token Secrets whose NatsCluster is gone (those in other namespaces
/// have no owner reference to be collected by): after every cluster deletion and every
/// [`SWEEP_PERIOD`], while this replica leads.
async fn sweep_orphaned_tokens(
    client: kube::Client,
    caches: Caches,
    mut stop: watch::Receiver<bool>,
) {
    let mut deletions = Box::pin(caches.clusters.changes());
    loop {
        let secrets = caches.secrets.store().state();
        let clusters = caches.clusters.store();
        for secret in service_roles::orphaned_tokens(&secrets, caches.scope(), |ns, name| {
            clusters.get(&ObjectRef::new(name).within(ns)).is_some()
        }) {
            let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
            match service_roles::delete_token(&client, secret).await {
                Ok(true) => {
                    tracing::info!(secret = %format!("{ns}/{name}"), "deleted the bound-token Secret of a deleted NatsCluster")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(secret = %format!("{ns}/{name}"), error = %e, "cannot delete an orphaned bound-token Secret")
                }
            }
        }
        // Wait for a cluster to go (a change whose object left the store).
        let deleted = async {
            while let Some(c) = deletions.next().await {
                if clusters.get(&ObjectRef::from_obj(c.as_ref())).is_none() {
                    return;
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = deleted => {},
            _ = tokio::time::sleep(SWEEP_PERIOD) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Whether a cluster reads the Secret `name` for its authorization.
pub fn references_secret(cluster: &NatsCluster, name: &str) -> bool {
    crate::render::inputs::referenced_secrets(&cluster.spec)
        .iter()
        .any(|r| r.name == name)
}

/// The NatsClusters that own `child`, matched by group and kind: the Go operator's
/// children carry a `nats.io/v1alpha2` owner reference, ours a `nats.io/v1beta1` one,
/// and both must wake their cluster at once.
pub fn owners<K: kube::Resource>(child: Arc<K>) -> Vec<ObjectRef<NatsCluster>> {
    let ns = child.meta().namespace.clone().unwrap_or_default();
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind == "NatsCluster" && o.api_version.split('/').next() == Some("nats.io"))
        .map(|o| ObjectRef::new(&o.name).within(&ns))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;
    use crate::api::v1beta1::{Auth, NatsClusterSpec, SecretAuth};

    #[test]
    fn scopes() {
        let list = Scope::Namespaces(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(list.namespaces(), Some(vec!["a".into(), "b".into()]));
        assert!(list.covers("a") && list.covers("b") && !list.covers("c"));
        assert!(Scope::Cluster.covers("any"));
        assert_eq!(Scope::Cluster.namespaces(), None);
        let one = Scope::Namespace("a".into());
        assert!(one.covers("a") && !one.covers("b"));
    }

    fn cluster(ns: &str, name: &str, routes_secret: &str) -> Arc<NatsCluster> {
        let mut c = NatsCluster::new(
            name,
            NatsClusterSpec {
                auth: Some(Auth {
                    routes: Some(SecretAuth {
                        secret: routes_secret.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some(ns.into());
        Arc::new(c)
    }

    fn secret(ns: &str, name: &str, labels: &[(&str, &str)], owner: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                owner_references: owner.map(|c| {
                    vec![OwnerReference {
                        api_version: "nats.io/v1beta1".into(),
                        kind: "NatsCluster".into(),
                        name: c.into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(refs: Vec<ObjectRef<NatsCluster>>) -> Vec<String> {
        refs.iter()
            .map(|r| format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name))
            .collect()
    }

    #[test]
    fn children_of_either_served_version_wake_their_cluster() {
        for version in ["nats.io/v1alpha2", "nats.io/v1beta1"] {
            let mut s = secret("a", "x", &[], Some("one"));
            if let Some(o) = s
                .metadata
                .owner_references
                .as_mut()
                .and_then(|o| o.first_mut())
            {
                o.api_version = version.into();
            }
            assert_eq!(names(owners(Arc::new(s))), ["a/one"], "{version}");
        }
        let mut other = secret("a", "x", &[], Some("one"));
        if let Some(o) = other
            .metadata
            .owner_references
            .as_mut()
            .and_then(|o| o.first_mut())
        {
            o.api_version = "example.com/v1".into();
        }
        assert!(owners(Arc::new(other)).is_empty());
    }

    #[test]
    fn which_clusters_a_secret_change_reconciles() {
        let clusters = vec![
            cluster("a", "one", "routes"),
            cluster("a", "two", "other"),
            cluster("b", "three", "routes"),
        ];
        let scope = Scope::Namespaces(vec!["a".into(), "b".into()]);
        // A config Secret: its owner.
        let config = secret("a", "two", &[("app", "nats")], Some("two"));
        assert_eq!(
            names(secret_triggers(&config, &clusters, &scope)),
            ["a/two"]
        );
        // An auth Secret: the clusters of its namespace that read it.
        let auth = secret("a", "routes", &[], None);
        assert_eq!(names(secret_triggers(&auth, &clusters, &scope)), ["a/one"]);
        // A bound token in another namespace: its cluster, when managed here.
        let token = secret(
            "b",
            "user-one-bound-token",
            &[
                ("app", "nats"),
                ("nats_cluster", "one"),
                (service_roles::CLUSTER_NAMESPACE_LABEL, "a"),
            ],
            None,
        );
        assert_eq!(names(secret_triggers(&token, &clusters, &scope)), ["a/one"]);
        let elsewhere = Scope::Namespace("b".into());
        assert!(secret_triggers(&token, &clusters, &elsewhere).is_empty());
        // A TLS Secret: nothing (the reloader in the pods handles it).
        let tls = secret("a", "tls", &[], None);
        assert!(secret_triggers(&tls, &clusters, &scope).is_empty());
    }
}
