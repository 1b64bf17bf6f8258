//! The operator's informer cache: one watch per kind (one per kind and namespace with
//! `--namespaces`), filling one store per kind that the reconciler *and* the webhooks
//! read, and fanning every change out to the controller's triggers while this replica
//! leads. It runs on every replica (not only the leader), so every replica's webhooks
//! can warn about broken references; `--webhooks-only` replicas run none.
//!
//! Lean by construction: children are watched with the `app=nats` label selector,
//! managedFields are dropped, pods keep only what the planner reads, and Secrets keep
//! their values only when they are the operator's own (config Secrets, bound-token
//! Secrets); of every other Secret (TLS, auth, anything else in the namespace) only the
//! name and the keys are kept.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use tokio::sync::{broadcast, watch};

use super::Scope;
use super::service_roles::bound_token_cluster;
use crate::api::references::References;
use crate::api::v1alpha2::NatsServiceRole;
use crate::api::v1beta1::NatsCluster;
use crate::jetstream::v1beta2::{self as js, Account, Consumer, KeyValue, ObjectStore};

/// Events buffered per subscriber before it lags (a lagging subscriber gets the whole
/// store again, so nothing is lost but time).
const FEED_CAPACITY: usize = 1024;
/// List page size of the all-Secrets watch: Secrets can be large (Helm releases), and
/// a page is held in memory whole before its values are dropped.
const SECRET_PAGE_SIZE: u32 = 50;

/// The store of one kind, its sync flag and its change feed.
pub struct Kind<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    // Not `Store::wait_until_ready`: its oneshot wakes only the last of several waiters.
    synced: Arc<watch::Sender<bool>>,
    tx: broadcast::Sender<Arc<K>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for Kind<K> {
    fn clone(&self) -> Self {
        Kind {
            store: self.store.clone(),
            synced: self.synced.clone(),
            tx: self.tx.clone(),
        }
    }
}

impl<K> Kind<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    /// The store.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Whether every watch of the kind has listed once.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until [`Self::is_synced`] (any number of waiters).
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Every change from now on: applied and deleted objects. A subscriber that falls
    /// more than [`FEED_CAPACITY`] events behind gets every stored object instead.
    pub fn changes(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let rx = self.tx.subscribe();
        let store = self.store.clone();
        futures::stream::unfold(rx, move |mut rx| {
            let store = store.clone();
            async move {
                match rx.recv().await {
                    Ok(o) => Some((vec![o], rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(
                            kind = %K::kind(&()),
                            missed = n,
                            "change feed lagged; replaying the store"
                        );
                        Some((store.state(), rx))
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            }
        })
        .flat_map(futures::stream::iter)
    }

    /// Every stored object once the store is synced, then every change (for a
    /// controller starting its term: nothing is missed, duplicates are harmless).
    pub fn snapshot_and_changes(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let changes = self.changes();
        let kind = self.clone();
        futures::stream::once(async move {
            kind.wait_synced().await;
            futures::stream::iter(kind.store.state())
        })
        .flatten()
        .chain(changes)
    }
}

/// The shared informer cache of all kinds the operator reads.
#[derive(Clone)]
pub struct Caches {
    scope: Scope,
    /// NatsClusters.
    pub clusters: Kind<NatsCluster>,
    /// NatsServiceRoles.
    pub roles: Kind<NatsServiceRole>,
    /// Member pods (label `app=nats`).
    pub pods: Kind<Pod>,
    /// Services (label `app=nats`).
    pub services: Kind<Service>,
    /// Every Secret: the operator's own with values, all others with keys only.
    pub secrets: Kind<Secret>,
    /// PodDisruptionBudgets (label `app=nats`).
    pub pdbs: Kind<PodDisruptionBudget>,
    /// NACK's kinds, read by the asset controllers and the webhook. Not part of
    /// [`Caches::is_synced`]: without their CRDs the NatsCluster controller still runs.
    pub assets: AssetKinds,
}

/// The stores of the `jetstream.nats.io` kinds.
#[derive(Clone)]
pub struct AssetKinds {
    /// Streams.
    pub streams: Kind<js::Stream>,
    /// Consumers.
    pub consumers: Kind<Consumer>,
    /// Key-value buckets.
    pub key_values: Kind<KeyValue>,
    /// Object stores.
    pub object_stores: Kind<ObjectStore>,
    /// Connection settings.
    pub accounts: Kind<Account>,
}

impl AssetKinds {
    /// Whether every kind has listed once.
    pub fn is_synced(&self) -> bool {
        self.streams.is_synced()
            && self.consumers.is_synced()
            && self.key_values.is_synced()
            && self.object_stores.is_synced()
            && self.accounts.is_synced()
    }

    /// Waits until [`Self::is_synced`].
    pub async fn wait_synced(&self) {
        self.streams.wait_synced().await;
        self.consumers.wait_synced().await;
        self.key_values.wait_synced().await;
        self.object_stores.wait_synced().await;
        self.accounts.wait_synced().await;
    }
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("scope", &self.scope)
            .field("synced", &self.is_synced())
            .finish_non_exhaustive()
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The watches behind a [`Caches`]; [`CacheDriver::run`] drives them.
pub struct CacheDriver {
    tasks: Vec<Task>,
}

impl CacheDriver {
    /// Runs every watch until `stop` completes.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) {
        tokio::select! {
            _ = futures::future::join_all(self.tasks) => {},
            _ = stop => {},
        }
    }
}

impl Caches {
    /// The caches of `scope`, empty until the returned driver runs.
    pub fn new(client: &kube::Client, scope: Scope) -> (Caches, CacheDriver) {
        let mut tasks = Vec::new();
        let children = watcher::Config::default().labels("app=nats");
        let all = watcher::Config::default();
        let clusters = kind(client, &scope, all.clone(), keep, &mut tasks);
        let roles = kind(client, &scope, all.clone(), keep, &mut tasks);
        let pods = kind(client, &scope, children.clone(), prune_pod, &mut tasks);
        let services = kind(client, &scope, children.clone(), keep, &mut tasks);
        let secrets = kind(
            client,
            &scope,
            all.clone().page_size(SECRET_PAGE_SIZE),
            prune_secret,
            &mut tasks,
        );
        let pdbs = kind(client, &scope, children, keep, &mut tasks);
        let assets = AssetKinds {
            streams: kind(client, &scope, all.clone(), keep, &mut tasks),
            consumers: kind(client, &scope, all.clone(), keep, &mut tasks),
            key_values: kind(client, &scope, all.clone(), keep, &mut tasks),
            object_stores: kind(client, &scope, all.clone(), keep, &mut tasks),
            accounts: kind(client, &scope, all, keep, &mut tasks),
        };
        (
            Caches {
                scope,
                clusters,
                roles,
                pods,
                services,
                secrets,
                pdbs,
                assets,
            },
            CacheDriver { tasks },
        )
    }

    /// The namespaces cached.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Waits until every kind has listed once.
    pub async fn wait_synced(&self) {
        self.clusters.wait_synced().await;
        self.roles.wait_synced().await;
        self.pods.wait_synced().await;
        self.services.wait_synced().await;
        self.secrets.wait_synced().await;
        self.pdbs.wait_synced().await;
    }

    /// Whether every kind has listed once.
    pub fn is_synced(&self) -> bool {
        self.clusters.is_synced()
            && self.roles.is_synced()
            && self.pods.is_synced()
            && self.services.is_synced()
            && self.secrets.is_synced()
            && self.pdbs.is_synced()
    }

    /// The cached NatsCluster `namespace/name`: `None` when it is not cached, or the cache
    /// cannot know (not synced yet, or a namespace outside the scope).
    pub fn cluster(&self, namespace: &str, name: &str) -> Option<Arc<NatsCluster>> {
        (self.scope.covers(namespace) && self.clusters.is_synced())
            .then(|| {
                self.clusters
                    .store
                    .get(&ObjectRef::new(name).within(namespace))
            })
            .flatten()
    }

    /// The references of `namespace` for admission warnings: `None` until the Secret and
    /// NatsCluster caches are synced, and for namespaces outside the scope (whose
    /// objects are not cached: absence would prove nothing).
    pub fn references(&self, namespace: &str) -> Option<&dyn References> {
        (self.scope.covers(namespace) && self.clusters.is_synced() && self.secrets.is_synced())
            .then_some(self as &dyn References)
    }
}

impl References for Caches {
    fn secret_keys(&self, namespace: &str, name: &str) -> Option<BTreeSet<String>> {
        self.secrets
            .store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|s| s.data.iter().flatten().map(|(k, _)| k.clone()).collect())
    }

    fn cluster_exists(&self, namespace: &str, name: &str) -> bool {
        self.clusters
            .store
            .get(&ObjectRef::new(name).within(namespace))
            .is_some()
    }
}

fn kind<K>(
    client: &kube::Client,
    scope: &Scope,
    config: watcher::Config,
    prune: fn(&mut K),
    tasks: &mut Vec<Task>,
) -> Kind<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let (tx, _) = broadcast::channel(FEED_CAPACITY);
    let kind = Kind {
        store,
        synced: Arc::new(watch::channel(false).0),
        tx,
    };
    let sources: Vec<(Option<String>, Api<K>)> = match scope.namespaces() {
        None => vec![(None, Api::all(client.clone()))],
        Some(list) => list
            .into_iter()
            .map(|ns| {
                let api = Api::namespaced(client.clone(), &ns);
                (Some(ns), api)
            })
            .collect(),
    };
    tasks.push(Box::pin(drive(
        sources,
        config,
        prune,
        writer,
        kind.clone(),
    )));
    kind
}

/// Feeds the watch events of every source (namespace) into one store, and every change
/// into the feed.
async fn drive<K>(
    sources: Vec<(Option<String>, Api<K>)>,
    config: watcher::Config,
    prune: fn(&mut K),
    mut writer: reflector::store::Writer<K>,
    kind: Kind<K>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let namespaces: Vec<Option<String>> = sources.iter().map(|(ns, _)| ns.clone()).collect();
    let streams = sources.into_iter().enumerate().map(|(i, (_, api))| {
        watcher::watcher(api, config.clone())
            .default_backoff()
            .map(move |e| (i, e))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let mut merger = Merger::new(namespaces);
    while let Some((source, event)) = events.next().await {
        let event = match event {
            Ok(e) => e.modify(|o| {
                o.managed_fields_mut().clear();
                prune(o);
            }),
            Err(e) => {
                let ns = merger
                    .namespaces
                    .get(source)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "(all)".into());
                // Until every namespace has listed once, the store is not ready and the
                // controller does not start: say which one is failing.
                tracing::warn!(
                    kind = %K::kind(&()),
                    namespace = %ns,
                    synced = kind.is_synced(),
                    error = %e,
                    "watch failed; retrying"
                );
                continue;
            }
        };
        for out in merger.step(source, event, &kind.store) {
            writer.apply_watcher_event(&out);
            let changed = match out {
                Event::Apply(o) => Some(
                    kind.store
                        .get(&ObjectRef::from_obj(&o))
                        .unwrap_or_else(|| Arc::new(o)),
                ),
                Event::Delete(o) => Some(Arc::new(o)),
                Event::InitDone => {
                    kind.synced.send_replace(true);
                    tracing::debug!(kind = %K::kind(&()), objects = kind.store.len(), "cache synced");
                    None
                }
                Event::Init | Event::InitApply(_) => None,
            };
            if let Some(o) = changed {
                // No receiver (a follower): nothing to do.
                let _ = kind.tx.send(o);
            }
        }
    }
}

/// Merges the watch events of several sources (one per namespace, or one for all) into
/// the events of one store, so that one store per kind serves any scope.
///
/// The store sees one initial list: every source's first list is buffered, and the
/// store gets `Init`, `InitApply` of everything and `InitDone` once the last source has
/// listed (it becomes ready then). After that a source's relist (after a watch
/// expired) becomes `Apply` of what it listed and `Delete` of what it no longer has, so
/// the other sources' objects stay.
pub struct Merger<K: Resource<DynamicType = ()>> {
    namespaces: Vec<Option<String>>,
    initial: Option<Initial<K>>,
    relisting: Vec<Option<HashSet<ObjectRef<K>>>>,
}

struct Initial<K: Resource<DynamicType = ()>> {
    listed: Vec<bool>,
    buffer: HashMap<ObjectRef<K>, K>,
}

impl<K> Merger<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    /// A merger of one source per entry (`None`: every namespace).
    pub fn new(namespaces: Vec<Option<String>>) -> Self {
        let n = namespaces.len();
        Merger {
            namespaces,
            initial: Some(Initial {
                listed: vec![false; n],
                buffer: HashMap::new(),
            }),
            relisting: vec![None; n],
        }
    }

    fn belongs(&self, source: usize, key: &ObjectRef<K>) -> bool {
        match self.namespaces.get(source) {
            Some(Some(ns)) => key.namespace.as_deref() == Some(ns.as_str()),
            _ => true,
        }
    }

    /// The store events for one event of `source`; `store` is the store they go to.
    pub fn step(&mut self, source: usize, event: Event<K>, store: &Store<K>) -> Vec<Event<K>> {
        match event {
            Event::Init => {
                if let Some(seen) = self.relisting.get_mut(source) {
                    *seen = Some(HashSet::new());
                }
                Vec::new()
            }
            Event::InitApply(o) => {
                let key = ObjectRef::from_obj(&o);
                if let Some(Some(seen)) = self.relisting.get_mut(source) {
                    seen.insert(key.clone());
                }
                match self.initial.as_mut() {
                    Some(initial) => {
                        initial.buffer.insert(key, o);
                        Vec::new()
                    }
                    None => vec![Event::Apply(o)],
                }
            }
            Event::InitDone => {
                let seen = self
                    .relisting
                    .get_mut(source)
                    .and_then(Option::take)
                    .unwrap_or_default();
                if let Some(mut initial) = self.initial.take() {
                    let stale: Vec<ObjectRef<K>> = initial
                        .buffer
                        .keys()
                        .filter(|k| self.belongs(source, k) && !seen.contains(k))
                        .cloned()
                        .collect();
                    for k in stale {
                        initial.buffer.remove(&k);
                    }
                    if let Some(l) = initial.listed.get_mut(source) {
                        *l = true;
                    }
                    if !initial.listed.iter().all(|l| *l) {
                        self.initial = Some(initial);
                        return Vec::new();
                    }
                    let mut out = Vec::with_capacity(initial.buffer.len() + 2);
                    out.push(Event::Init);
                    out.extend(initial.buffer.into_values().map(Event::InitApply));
                    out.push(Event::InitDone);
                    return out;
                }
                store
                    .state()
                    .into_iter()
                    .filter(|o| {
                        let key = ObjectRef::from_obj(o.as_ref());
                        self.belongs(source, &key) && !seen.contains(&key)
                    })
                    .map(|o| Event::Delete(o.as_ref().clone()))
                    .collect()
            }
            Event::Apply(o) => match self.initial.as_mut() {
                Some(initial) => {
                    initial.buffer.insert(ObjectRef::from_obj(&o), o);
                    Vec::new()
                }
                None => vec![Event::Apply(o)],
            },
            Event::Delete(o) => match self.initial.as_mut() {
                Some(initial) => {
                    initial.buffer.remove(&ObjectRef::from_obj(&o));
                    Vec::new()
                }
                None => vec![Event::Delete(o)],
            },
        }
    }
}

fn keep<K>(_: &mut K) {}

/// The reconciler reads a pod's labels, annotations, owners, phase and conditions, and
/// what [`super::lame_duck::stage`] needs of its `nats` container.
fn prune_pod(pod: &mut Pod) {
    super::lame_duck::prune(pod);
}

/// Whether the operator needs the values of `secret`: its config Secrets (controlled by
/// a NatsCluster, compared with what it applies) and bound-token Secrets (the token is
/// the user's password in `nats.conf`).
pub fn keeps_values(secret: &Secret) -> bool {
    let owned = secret
        .owner_references()
        .iter()
        .any(|o| o.kind == "NatsCluster" && o.api_version.starts_with("nats.io/"));
    owned || bound_token_cluster(secret).is_some()
}

/// Of a Secret the operator does not own, only the name, the keys and the identity stay
/// (its annotations go too: `kubectl.kubernetes.io/last-applied-configuration` holds
/// the values).
pub fn prune_secret(secret: &mut Secret) {
    if keeps_values(secret) {
        return;
    }
    let keys: BTreeSet<String> = secret
        .data
        .take()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .chain(
            secret
                .string_data
                .take()
                .into_iter()
                .flatten()
                .map(|(k, _)| k),
        )
        .collect();
    let meta = std::mem::take(&mut secret.metadata);
    *secret = Secret {
        metadata: ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resource_version: meta.resource_version,
            ..Default::default()
        },
        data: Some(
            keys.into_iter()
                .map(|k| (k, k8s_openapi::ByteString(Vec::new())))
                .collect(),
        ),
        ..Default::default()
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn cm(ns: &str, name: &str, v: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("v".to_string(), v.to_string())])),
            ..Default::default()
        }
    }

    /// Applies the merger's output to a real store, as the driver does.
    struct Harness {
        merger: Merger<ConfigMap>,
        store: Store<ConfigMap>,
        writer: reflector::store::Writer<ConfigMap>,
    }

    impl Harness {
        fn new(namespaces: &[Option<&str>]) -> Self {
            let (store, writer) = reflector::store();
            Harness {
                merger: Merger::new(namespaces.iter().map(|n| n.map(String::from)).collect()),
                store,
                writer,
            }
        }
        fn send(&mut self, source: usize, e: Event<ConfigMap>) -> usize {
            let out = self.merger.step(source, e, &self.store);
            for o in &out {
                self.writer.apply_watcher_event(o);
            }
            out.len()
        }
        fn list(&mut self, source: usize, objs: &[ConfigMap]) {
            self.send(source, Event::Init);
            for o in objs {
                self.send(source, Event::InitApply(o.clone()));
            }
            self.send(source, Event::InitDone);
        }
        fn names(&self) -> Vec<String> {
            let mut v: Vec<String> = self
                .store
                .state()
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}={}",
                        o.namespace().unwrap_or_default(),
                        o.name_any(),
                        o.data
                            .as_ref()
                            .and_then(|d| d.get("v"))
                            .cloned()
                            .unwrap_or_default()
                    )
                })
                .collect();
            v.sort();
            v
        }
    }

    #[tokio::test]
    async fn the_store_is_ready_once_every_namespace_has_listed() {
        let mut h = Harness::new(&[Some("a"), Some("b")]);
        h.list(0, &[cm("a", "x", "1")]);
        // a's later changes wait for b's list, in order.
        h.send(0, Event::Apply(cm("a", "y", "1")));
        h.send(0, Event::Delete(cm("a", "x", "1")));
        assert!(h.store.is_empty());
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_millis(10),
                h.store.wait_until_ready()
            )
            .await
            .is_err()
        );
        h.list(1, &[cm("b", "x", "1")]);
        assert_eq!(h.names(), vec!["a/y=1", "b/x=1"]);
        assert!(h.store.wait_until_ready().await.is_ok());
    }

    #[test]
    fn a_relist_of_one_namespace_leaves_the_others_alone() {
        let mut h = Harness::new(&[Some("a"), Some("b")]);
        h.list(0, &[cm("a", "x", "1"), cm("a", "y", "1")]);
        h.list(1, &[cm("b", "x", "1")]);
        h.send(1, Event::Apply(cm("b", "z", "1")));
        // a's watch expired: y is gone, x changed; b is untouched.
        h.list(0, &[cm("a", "x", "2")]);
        assert_eq!(h.names(), vec!["a/x=2", "b/x=1", "b/z=1"]);
        h.send(1, Event::Delete(cm("b", "x", "1")));
        assert_eq!(h.names(), vec!["a/x=2", "b/z=1"]);
    }

    #[test]
    fn a_source_that_relists_during_the_initial_sync_drops_what_it_lost() {
        let mut h = Harness::new(&[Some("a"), Some("b")]);
        h.list(0, &[cm("a", "x", "1"), cm("a", "y", "1")]);
        h.list(0, &[cm("a", "y", "2")]);
        h.list(1, &[]);
        assert_eq!(h.names(), vec!["a/y=2"]);
    }

    #[test]
    fn one_source_for_every_namespace() {
        let mut h = Harness::new(&[None]);
        h.list(0, &[cm("a", "x", "1"), cm("b", "x", "1")]);
        assert_eq!(h.names(), vec!["a/x=1", "b/x=1"]);
        h.list(0, &[cm("b", "x", "1")]);
        assert_eq!(h.names(), vec!["b/x=1"]);
    }

    fn secret(name: &str, labels: &[(&str, &str)], owner: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                annotations: Some(BTreeMap::from([(
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    "{\"data\":{\"tls.key\":\"secret\"}}".to_string(),
                )])),
                owner_references: owner.map(|kind| {
                    vec![OwnerReference {
                        api_version: "nats.io/v1beta1".into(),
                        kind: kind.into(),
                        name: "nats".into(),
                        uid: "o".into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("tls.key".to_string(), ByteString(b"private".to_vec())),
                ("tls.crt".to_string(), ByteString(b"public".to_vec())),
            ])),
            string_data: Some(BTreeMap::from([("ca.crt".to_string(), "ca".to_string())])),
            type_: Some("kubernetes.io/tls".into()),
            ..Default::default()
        }
    }

    #[test]
    fn foreign_secrets_keep_their_keys_only() {
        let mut s = secret("tls", &[("app", "nats")], None);
        prune_secret(&mut s);
        let keys: Vec<&String> = s.data.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["ca.crt", "tls.crt", "tls.key"]);
        assert!(s.data.iter().flatten().all(|(_, v)| v.0.is_empty()));
        assert_eq!(s.metadata.annotations, None);
        assert_eq!(s.metadata.labels, None);
        assert_eq!(s.metadata.name.as_deref(), Some("tls"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn our_secrets_keep_their_values() {
        let config = secret("nats", &[("app", "nats")], Some("NatsCluster"));
        let mut pruned = config.clone();
        prune_secret(&mut pruned);
        assert_eq!(pruned, config);
        let token = secret(
            "user-nats-bound-token",
            &[("app", "nats"), ("nats_cluster", "nats")],
            Some("NatsServiceRole"),
        );
        let mut pruned = token.clone();
        prune_secret(&mut pruned);
        assert_eq!(pruned, token);
    }
}
