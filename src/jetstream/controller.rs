//! The asset controllers: one per kind (Stream, Consumer, KeyValue, ObjectStore), on
//! the shared informer cache, while this replica leads.
//!
//! One reconcile reads the asset from the server, lets [`super::sync::plan`] decide,
//! makes at most one write, then records an Event for what changed and patches the
//! status only when it changed. Deleting an object deletes the asset (NACK's finalizers,
//! so NACK's objects migrate as they are) unless [`super::sync::removal`] keeps it.
//!
//! Drift is looked for on a jittered interval (`--asset-sync-interval`, NACK's one
//! minute by default) and at once after every (re)connection, so a server that lost an
//! asset while it was away gets it back within a moment.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::client::{Failure, JetStreamApi};
use super::connect::{Connections, DefaultConnection, NoApi};
use super::server_config;
use super::sync::{self, Check, Past, Removal, Write};
use super::v1beta2::{
    AssetStatus, Connection, Consumer, ConsumerState, KeyValue, ObjectStore, Stream, StreamState,
};
use crate::api::field::FieldError;
use crate::controller::cache::{Caches, Kind};

/// Field manager of the asset controllers' writes.
const MANAGER: &str = "nats-operator-jetstream";
/// Reconciles in flight per kind: each waits on the server for milliseconds.
const CONCURRENCY: u16 = 32;

/// The asset controllers' settings (`nats-operator run` flags).
#[derive(Debug, Clone)]
pub struct AssetSettings {
    /// How often every asset is compared with the server (±25 %).
    pub sync_interval: Duration,
    /// The connection of assets that name no server.
    pub default: DefaultConnection,
}

impl Default for AssetSettings {
    fn default() -> Self {
        AssetSettings {
            sync_interval: Duration::from_secs(60),
            default: DefaultConnection::default(),
        }
    }
}

/// Where an asset lives on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A stream (also a KeyValue's `KV_<bucket>` and an ObjectStore's `OBJ_<bucket>`).
    Stream(String),
    /// A durable consumer of a stream.
    Consumer {
        /// The stream.
        stream: String,
        /// The durable name.
        name: String,
    },
}

/// What the controllers need of each kind.
pub trait Asset:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// NACK's finalizer of the kind.
    const FINALIZER: &'static str;
    /// How it connects.
    fn connection(&self) -> &Connection;
    /// Its status.
    fn asset_status(&self) -> Option<&AssetStatus>;
    /// Where it is on the server.
    fn address(&self) -> Address;
    /// The configuration the spec asks for.
    fn wanted(&self) -> Result<Value, Vec<FieldError>>;
}

/// The `Asset` of a kind: NACK's finalizer, where it lives, and its configuration.
macro_rules! asset {
    ($kind:ty, $finalizer:literal, |$s:ident| $address:expr, $wanted:path) => {
        impl Asset for $kind {
            const FINALIZER: &'static str = $finalizer;
            fn connection(&self) -> &Connection {
                &self.spec.connection
            }
            fn asset_status(&self) -> Option<&AssetStatus> {
                self.status.as_ref()
            }
            fn address(&self) -> Address {
                let $s = &self.spec;
                $address
            }
            fn wanted(&self) -> Result<Value, Vec<FieldError>> {
                $wanted(&self.spec)
            }
        }
    };
}

asset!(
    Stream,
    "stream.nats.io/finalizer",
    |s| Address::Stream(s.name.clone()),
    server_config::stream
);
asset!(
    Consumer,
    "consumer.nats.io/finalizer",
    |s| Address::Consumer {
        stream: s.stream_name.clone(),
        name: s.durable_name.clone(),
    },
    server_config::consumer
);
asset!(
    KeyValue,
    "kv.nats.io/finalizer",
    |s| Address::Stream(server_config::kv_stream_name(&s.bucket)),
    server_config::key_value
);
asset!(
    ObjectStore,
    "objectstore.nats.io/finalizer",
    |s| Address::Stream(server_config::object_stream_name(&s.bucket)),
    server_config::object_store
);

impl Address {
    /// `stream ORDERS`, `consumer ORDERS/worker`: the asset for people.
    pub fn describe(&self) -> String {
        match self {
            Address::Stream(s) => format!("stream {s}"),
            Address::Consumer { stream, name } => format!("consumer {stream}/{name}"),
        }
    }

    async fn info(&self, api: &JetStreamApi) -> Result<Option<Value>, Failure> {
        match self {
            Address::Stream(s) => api.stream_info(s).await,
            Address::Consumer { stream, name } => api.consumer_info(stream, name).await,
        }
    }

    async fn write(&self, api: &JetStreamApi, write: &Write) -> Result<Value, Failure> {
        match (self, write) {
            (Address::Stream(_), Write::Create(c)) => api.create_stream(c).await,
            (Address::Stream(_), Write::Update(c)) => api.update_stream(c).await,
            (Address::Consumer { stream, .. }, Write::Create(c)) => {
                api.put_consumer(stream, c, false).await
            }
            (Address::Consumer { stream, .. }, Write::Update(c)) => {
                api.put_consumer(stream, c, true).await
            }
        }
    }

    async fn delete(&self, api: &JetStreamApi) -> Result<(), Failure> {
        match self {
            Address::Stream(s) => api.delete_stream(s).await,
            Address::Consumer { stream, name } => api.delete_consumer(stream, name).await,
        }
    }

    fn figures(&self, info: Option<&Value>) -> (Option<StreamState>, Option<ConsumerState>) {
        match (self, info) {
            (_, None) => (None, None),
            (Address::Stream(_), Some(i)) => (Some(sync::stream_state(i)), None),
            (Address::Consumer { .. }, Some(i)) => (None, Some(sync::consumer_state(i))),
        }
    }
}

/// The `config` of a stream or consumer info.
fn config_of(info: &Value) -> &Value {
    info.get("config").unwrap_or(&Value::Null)
}

/// Shared by the asset controllers.
pub struct AssetContext {
    client: kube::Client,
    connections: Connections,
    recorder: Recorder,
    settings: AssetSettings,
    /// The connection key each asset used last (`kind/ns/name`), for reconnects.
    keys: Mutex<HashMap<String, String>>,
    failures: Mutex<HashMap<String, u32>>,
}

/// A reconcile that must be retried.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// A Kubernetes request failed.
    #[error("{0}")]
    Kube(String),
    /// The server could not be asked.
    #[error("{0}")]
    Server(String),
}

fn object_key<K: Asset>(o: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        o.namespace().unwrap_or_default(),
        o.name_any()
    )
}

/// `interval` spread by ±25 % with `seed`, so assets created together do not all look
/// at the server in the same second.
fn jittered(interval: Duration, seed: u64) -> Duration {
    interval.mul_f64(0.75 + (seed % 1000) as f64 / 2000.0)
}

fn seed(key: &str) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    key.hash(&mut h);
    Timestamp::now().as_nanosecond().hash(&mut h);
    h.finish()
}

impl AssetContext {
    fn failed(&self, key: &str) -> u32 {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The next look at a settled asset.
    fn settled(&self, key: &str) -> Action {
        self.succeeded(key);
        Action::requeue(jittered(self.settings.sync_interval, seed(key)))
    }

    /// The next look at an asset that is not ready: 1 s doubling, at most the interval.
    fn soon(&self, key: &str) -> Action {
        let n = self.failed(key);
        let delay = crate::controller::context::Context::backoff(n, seed(key));
        Action::requeue(delay.min(self.settings.sync_interval))
    }

    async fn event<K: Asset>(&self, o: &K, warning: bool, reason: &str, note: String) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(crate::controller::context::fit_event_note(note)),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &o.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

/// Merge patches under the controllers' field manager.
fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

async fn set_finalizers<K: Asset>(
    api: &Api<K>,
    o: &K,
    finalizers: Vec<String>,
) -> Result<(), AssetError> {
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": o.resource_version(),
    }});
    api.patch(&o.name_any(), &params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            AssetError::Kube(format!(
                "cannot set the finalizers of {}: {e}",
                o.name_any()
            ))
        })
}

/// Reconciles one asset.
pub async fn reconcile<K: Asset>(o: Arc<K>, ctx: Arc<AssetContext>) -> Result<Action, AssetError> {
    let ns = o.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let key = object_key(o.as_ref());
    let address = o.address();
    let what = address.describe();
    let connection = o.connection();
    let removal = sync::removal(connection);
    let finalizers = o.finalizers().to_vec();
    let has_finalizer = finalizers.iter().any(|f| f == K::FINALIZER);
    if o.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        match removal {
            Removal::Keep(why) => {
                ctx.event(
                    o.as_ref(),
                    false,
                    "Kept",
                    format!("{what} kept on the server: {why}"),
                )
                .await;
            }
            Removal::Delete => match ctx.connections.api(&ns, connection).await {
                Ok(c) => {
                    address
                        .delete(&c.api)
                        .await
                        .map_err(|e| AssetError::Server(format!("deleting {what}: {e}")))?;
                    ctx.event(
                        o.as_ref(),
                        false,
                        "Deleted",
                        format!("{what} deleted from the server"),
                    )
                    .await;
                }
                // The cluster is gone, or the object could never reach a server: there is
                // nothing the operator can delete.
                Err(e @ (NoApi::ClusterGone(_) | NoApi::Misconfigured(_))) => {
                    ctx.event(
                        o.as_ref(),
                        true,
                        "NotDeleted",
                        format!("{what} not deleted on the server: {e}"),
                    )
                    .await;
                }
                Err(NoApi::Unreachable(e)) => {
                    return Err(AssetError::Server(format!("deleting {what}: {e}")));
                }
            },
        }
        let rest: Vec<String> = finalizers
            .into_iter()
            .filter(|f| f != K::FINALIZER)
            .collect();
        set_finalizers(&api, o.as_ref(), rest).await?;
        ctx.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        return Ok(Action::await_change());
    }
    match (&removal, has_finalizer) {
        (Removal::Delete, false) => {
            let mut with = finalizers.clone();
            with.push(K::FINALIZER.to_string());
            set_finalizers(&api, o.as_ref(), with).await?;
            // The patch's event brings the object back with the finalizer.
            return Ok(Action::await_change());
        }
        (Removal::Keep(_), true) => {
            let rest: Vec<String> = finalizers
                .into_iter()
                .filter(|f| f != K::FINALIZER)
                .collect();
            set_finalizers(&api, o.as_ref(), rest).await?;
            return Ok(Action::await_change());
        }
        _ => {}
    }

    let prev = o.asset_status().cloned().unwrap_or_default();
    let generation = o.meta().generation;
    let past = Past {
        held: prev.stream.is_some() || prev.consumer.is_some(),
        spec_changed: generation.is_some_and(|g| g != prev.observed_generation),
        conditions: &prev.conditions,
    };
    let (checks, info, notice, settled) = match o.wanted() {
        Err(errors) => {
            let listed = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            let c = Check {
                ok: false,
                reason: "Invalid",
                message: format!("the spec cannot be sent to the server: {listed}"),
            };
            ((c.clone(), c), None, None, true)
        }
        Ok(wanted) => match ctx.connections.api(&ns, connection).await {
            Err(e) => {
                let misconfigured = !matches!(e, NoApi::Unreachable(_));
                let (mut ready, mut in_sync) = sync::unreachable(&e.to_string());
                if misconfigured {
                    for c in [&mut ready, &mut in_sync] {
                        c.reason = "NoServer";
                        c.message = e.to_string();
                    }
                }
                ((ready, in_sync), None, None, false)
            }
            Ok(connected) => {
                ctx.keys
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), connected.key.clone());
                sync_with_server(&connected.api, &address, &what, connection, &wanted, past).await
            }
        },
    };
    if let Some(n) = notice {
        ctx.event(o.as_ref(), n.warning, n.reason, n.message).await;
    } else if !checks.0.ok || !checks.1.ok {
        // A new failure is worth an Event once (the condition says it for as long).
        let c = if checks.0.ok { &checks.1 } else { &checks.0 };
        let seen = prev
            .conditions
            .iter()
            .any(|p| p.reason == c.reason && p.message == c.message);
        if !seen && c.reason != "NotKept" && c.reason != sync::WAITING_FOR_STREAM {
            ctx.event(o.as_ref(), true, c.reason, c.message.clone())
                .await;
        }
    }
    let figures = address.figures(info.as_ref());
    let next = sync::next_status(
        &prev,
        generation,
        (&checks.0, &checks.1),
        figures,
        Timestamp::now(),
    );
    if o.asset_status() != Some(&next) {
        api.patch_status(
            &o.name_any(),
            &params(),
            &Patch::Merge(json!({ "status": next })),
        )
        .await
        .map_err(|e| {
            AssetError::Kube(format!("cannot write the status of {}: {e}", o.name_any()))
        })?;
    }
    Ok(
        if settled || (checks.0.ok && checks.1.ok) || checks.1.reason == "NotKept" {
            ctx.settled(&key)
        } else {
            ctx.soon(&key)
        },
    )
}

type Outcome = ((Check, Check), Option<Value>, Option<sync::Notice>, bool);

/// Reads the asset, plans, and makes the plan's write.
async fn sync_with_server(
    api: &JetStreamApi,
    address: &Address,
    what: &str,
    connection: &Connection,
    wanted: &Value,
    past: Past<'_>,
) -> Outcome {
    let held = match address.info(api).await {
        Ok(h) => h,
        Err(Failure::Unreachable(e)) => return (sync::unreachable(&e), None, None, false),
        Err(Failure::Refused(e)) => {
            let c = Check {
                ok: false,
                reason: "Refused",
                message: format!("the server refused to describe {what}: {e}"),
            };
            return ((c.clone(), c), None, None, false);
        }
    };
    let plan = sync::plan(what, connection, wanted, held.as_ref().map(config_of), past);
    let Some(write) = &plan.write else {
        return ((plan.ready, plan.in_sync), held, plan.notice, true);
    };
    match address.write(api, write).await {
        Ok(answer) => {
            let in_sync =
                sync::after_write(wanted, config_of(&answer)).unwrap_or(plan.in_sync.clone());
            // A create or update answers with the info the status shows.
            ((plan.ready, in_sync), Some(answer), plan.notice, true)
        }
        Err(Failure::Refused(e)) => match address {
            Address::Consumer { stream, .. } if e.err_code == super::client::STREAM_NOT_FOUND => {
                (sync::waiting_for_stream(stream), held, None, false)
            }
            _ => (sync::refused(&plan, &e.to_string()), held, None, false),
        },
        Err(Failure::Unreachable(e)) => (sync::unreachable(&e), held, None, false),
    }
}

fn error_policy<K: Asset>(o: Arc<K>, error: &AssetError, ctx: Arc<AssetContext>) -> Action {
    tracing::info!(object = %object_key(o.as_ref()), error = %error, "asset reconcile failed; retrying");
    ctx.soon(&object_key(o.as_ref()))
}

/// The objects of kind `K` whose last connection was `key`.
fn using<K: Asset>(ctx: &AssetContext, key: &str) -> Vec<ObjectRef<K>> {
    let kind = K::kind(&()).to_string();
    ctx.keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, k)| k.as_str() == key)
        .filter_map(|(o, _)| {
            let mut parts = o.splitn(3, '/');
            let (k, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
            (k == kind).then(|| ObjectRef::new(name).within(ns))
        })
        .collect()
}

/// Every reconnection, as the objects of kind `K` behind it.
fn reconnected<K: Asset>(
    ctx: Arc<AssetContext>,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send {
    let rx = ctx.connections.reconnects();
    futures::stream::unfold((rx, ctx), |(mut rx, ctx)| async move {
        loop {
            match rx.recv().await {
                Ok(key) => return Some((using::<K>(&ctx, &key), (rx, ctx))),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .flat_map(futures::stream::iter)
}

fn controller<K: Asset>(
    kind: &Kind<K>,
    ctx: Arc<AssetContext>,
    stop: watch::Receiver<bool>,
) -> Controller<K> {
    let mut stop = stop;
    Controller::for_shared_stream(kind.snapshot_and_changes(), kind.store().clone())
        .reconcile_on(reconnected::<K>(ctx))
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
}

fn drive<K: Asset>(c: Controller<K>, ctx: Arc<AssetContext>) -> impl Future<Output = ()> {
    c.run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "asset reconcile result");
            }
        })
}

/// Runs the four asset controllers on `caches` until `shutdown` is true. They start once
/// the NatsCluster and asset stores are synced (without the CRDs they never start, and
/// the NatsCluster controller runs on).
pub async fn run(
    client: kube::Client,
    caches: Caches,
    identity: String,
    settings: AssetSettings,
    shutdown: watch::Receiver<bool>,
) {
    let mut stopping = shutdown.clone();
    tokio::select! {
        _ = async { caches.clusters.wait_synced().await; caches.secrets.wait_synced().await; caches.assets.wait_synced().await } => {},
        _ = stopping.wait_for(|s| *s) => return,
    }
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "nats-operator".into(),
            instance: Some(identity),
        },
    );
    let ctx = Arc::new(AssetContext {
        connections: Connections::new(client.clone(), caches.clone(), settings.default.clone()),
        client,
        recorder,
        settings,
        keys: Mutex::default(),
        failures: Mutex::default(),
    });
    let a = &caches.assets;
    // A Stream's change wakes its Consumers (created once their stream exists), and an
    // Account's change the assets that connect through it.
    let consumers = a.consumers.store().clone();
    let consumer_controller = controller(&a.consumers, ctx.clone(), shutdown.clone())
        .watches_shared_stream(a.streams.changes(), move |s: Arc<Stream>| {
            let ns = s.namespace();
            consumers
                .state()
                .into_iter()
                .filter(|c| c.namespace() == ns && c.spec.stream_name == s.spec.name)
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        });
    tokio::join!(
        drive(
            with_accounts(controller(&a.streams, ctx.clone(), shutdown.clone()), a),
            ctx.clone()
        ),
        drive(with_accounts(consumer_controller, a), ctx.clone()),
        drive(
            with_accounts(controller(&a.key_values, ctx.clone(), shutdown.clone()), a),
            ctx.clone()
        ),
        drive(
            with_accounts(
                controller(&a.object_stores, ctx.clone(), shutdown.clone()),
                a
            ),
            ctx.clone()
        ),
    );
}

/// `c`, woken when an Account its objects name changes.
fn with_accounts<K: Asset>(
    c: Controller<K>,
    a: &crate::controller::cache::AssetKinds,
) -> Controller<K> {
    let store = c.store();
    c.watches_shared_stream(
        a.accounts.changes(),
        move |account: Arc<super::v1beta2::Account>| {
            let ns = account.namespace();
            let name = account.name_any();
            store
                .state()
                .into_iter()
                .filter(|o| {
                    o.namespace() == ns && o.connection().account.as_deref() == Some(name.as_str())
                })
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_a_quarter_each_way() {
        let i = Duration::from_secs(60);
        assert_eq!(jittered(i, 0), Duration::from_secs(45));
        assert!(jittered(i, 999) < Duration::from_secs(75));
        assert!(jittered(i, 500) == Duration::from_secs(60));
    }

    #[test]
    fn addresses_name_the_asset_and_its_stream() {
        let kv: KeyValue = serde_json::from_value(json!({
            "apiVersion": "jetstream.nats.io/v1beta2", "kind": "KeyValue",
            "metadata": {"name": "cfg"}, "spec": {"bucket": "config"}
        }))
        .unwrap_or_default();
        assert_eq!(kv.address(), Address::Stream("KV_config".into()));
        let c: Consumer = serde_json::from_value(json!({
            "apiVersion": "jetstream.nats.io/v1beta2", "kind": "Consumer",
            "metadata": {"name": "w"}, "spec": {"streamName": "ORDERS", "durableName": "worker"}
        }))
        .unwrap_or_default();
        assert_eq!(c.address().describe(), "consumer ORDERS/worker");
        assert_eq!(object_key(&c), "Consumer//w");
    }
}
