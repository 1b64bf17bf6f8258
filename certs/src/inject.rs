//! caBundle injection into ValidatingWebhookConfigurations, MutatingWebhookConfigurations and
//! CRD conversion webhooks.
//!
//! The patch builders are pure: they compare the object's current `caBundle` values with the
//! wanted bundle and return a JSON patch only for the entries that differ (none in steady state).
//! Each patch sets exactly `webhooks/<i>/clientConfig/caBundle` (guarded by a `test` of
//! `webhooks/<i>/name`, so a concurrent reorder makes the patch fail instead of writing the wrong
//! webhook) or `spec/conversion/webhook/clientConfig/caBundle` (guarded by a `test` that the
//! strategy is still `Webhook`). No other field is touched.
//!
//! [`CaBundleInjector::run`] re-applies this whenever the bundle changes, whenever a target
//! object changes (a watch per object), and every resync interval.

use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use json_patch::{AddOperation, Patch, PatchOperation, TestOperation, jsonptr::PointerBuf};
use k8s_openapi::{
    api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource,
    api::{Patch as KubePatch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use tokio::sync::watch;

use crate::error::Result;

/// Field manager name used for caBundle patches.
pub const FIELD_MANAGER: &str = "nats-operator-cainjector";

/// Which objects receive the caBundle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectionTargets {
    /// ValidatingWebhookConfiguration names (every webhook in each).
    pub validating_webhooks: Vec<String>,
    /// MutatingWebhookConfiguration names (every webhook in each).
    pub mutating_webhooks: Vec<String>,
    /// CRD names (`<plural>.<group>`); only patched when `spec.conversion.strategy` is `Webhook`.
    pub crds: Vec<String>,
}

/// caBundle is `[]byte` in the API: standard base64 in JSON (what `ByteString` serializes to).
fn b64(ca_bundle: &[u8]) -> Value {
    use base64::Engine as _;
    Value::String(base64::engine::general_purpose::STANDARD.encode(ca_bundle))
}

fn ptr(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().map(|t| t.to_string()))
}

/// The JSON patch setting the caBundle of every webhook whose `caBundle` differs from
/// `ca_bundle`, or `None` when all match (or `ca_bundle` is empty).
pub fn webhooks_patch<'a>(
    webhooks: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ca_bundle: &[u8],
) -> Option<Patch> {
    if ca_bundle.is_empty() {
        return None;
    }
    let value = b64(ca_bundle);
    let mut ops = Vec::new();
    for (i, (name, current)) in webhooks.into_iter().enumerate() {
        if current == Some(ca_bundle) {
            continue;
        }
        let idx = i.to_string();
        ops.push(PatchOperation::Test(TestOperation {
            path: ptr(&["webhooks", &idx, "name"]),
            value: Value::String(name.to_string()),
        }));
        ops.push(PatchOperation::Add(AddOperation {
            path: ptr(&["webhooks", &idx, "clientConfig", "caBundle"]),
            value: value.clone(),
        }));
    }
    (!ops.is_empty()).then_some(Patch(ops))
}

/// [`webhooks_patch`] for a ValidatingWebhookConfiguration.
pub fn validating_webhook_patch(
    config: &ValidatingWebhookConfiguration,
    ca_bundle: &[u8],
) -> Option<Patch> {
    let webhooks = config.webhooks.as_deref().unwrap_or_default();
    webhooks_patch(
        webhooks.iter().map(|w| {
            (
                w.name.as_str(),
                w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()),
            )
        }),
        ca_bundle,
    )
}

/// [`webhooks_patch`] for a MutatingWebhookConfiguration.
pub fn mutating_webhook_patch(
    config: &MutatingWebhookConfiguration,
    ca_bundle: &[u8],
) -> Option<Patch> {
    let webhooks = config.webhooks.as_deref().unwrap_or_default();
    webhooks_patch(
        webhooks.iter().map(|w| {
            (
                w.name.as_str(),
                w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()),
            )
        }),
        ca_bundle,
    )
}

/// The JSON patch setting `spec.conversion.webhook.clientConfig.caBundle` of a CRD, or `None`
/// when it already matches, the strategy is not `Webhook`, there is no `clientConfig` to hold
/// it, or `ca_bundle` is empty.
pub fn crd_conversion_patch(crd: &CustomResourceDefinition, ca_bundle: &[u8]) -> Option<Patch> {
    if ca_bundle.is_empty() {
        return None;
    }
    let conversion = crd.spec.conversion.as_ref()?;
    if conversion.strategy != "Webhook" {
        return None;
    }
    let client_config = conversion.webhook.as_ref()?.client_config.as_ref()?;
    if client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) == Some(ca_bundle) {
        return None;
    }
    Some(Patch(vec![
        PatchOperation::Test(TestOperation {
            path: ptr(&["spec", "conversion", "strategy"]),
            value: Value::String("Webhook".to_string()),
        }),
        PatchOperation::Add(AddOperation {
            path: ptr(&["spec", "conversion", "webhook", "clientConfig", "caBundle"]),
            value: b64(ca_bundle),
        }),
    ]))
}

/// What one injection pass did, per object (`<kind>/<name>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectionReport {
    /// Objects that were patched.
    pub patched: Vec<String>,
    /// Objects that already had the bundle (or need none).
    pub unchanged: Vec<String>,
    /// Objects that do not exist.
    pub missing: Vec<String>,
    /// Objects that could not be read or patched, with the error.
    pub failed: Vec<(String, String)>,
}

/// Keeps the caBundle of the target objects equal to a bundle from a watch channel.
/// RBAC: `get`, `list`, `watch`, `patch` on validatingwebhookconfigurations,
/// mutatingwebhookconfigurations and customresourcedefinitions (list/watch only with
/// [`CaBundleInjector::with_watch`] on, the default).
#[derive(Clone)]
pub struct CaBundleInjector {
    client: Client,
    targets: InjectionTargets,
    resync_interval: Duration,
    watch_targets: bool,
}

impl std::fmt::Debug for CaBundleInjector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundleInjector")
            .field("targets", &self.targets)
            .field("resync_interval", &self.resync_interval)
            .field("watch_targets", &self.watch_targets)
            .finish_non_exhaustive()
    }
}

async fn inject_into<K, F>(
    api: &Api<K>,
    name: &str,
    ca_bundle: &[u8],
    build: F,
    report: &mut InjectionReport,
) where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
    F: Fn(&K, &[u8]) -> Option<Patch>,
{
    let id = format!("{}/{name}", K::kind(&K::DynamicType::default()));
    // A guarded patch can fail if the object changed between read and write: re-read and retry.
    for attempt in 0..3 {
        let obj = match api.get_opt(name).await {
            Ok(Some(obj)) => obj,
            Ok(None) => {
                report.missing.push(id);
                return;
            }
            Err(e) => {
                report.failed.push((id, e.to_string()));
                return;
            }
        };
        let Some(patch) = build(&obj, ca_bundle) else {
            report.unchanged.push(id);
            return;
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        match api
            .patch(name, &params, &KubePatch::Json::<()>(patch))
            .await
        {
            Ok(_) => {
                tracing::info!(object = %id, "injected caBundle");
                report.patched.push(id);
                return;
            }
            Err(kube::Error::Api(s)) if attempt < 2 && (s.is_invalid() || s.is_conflict()) => {
                tracing::debug!(object = %id, "caBundle patch raced a change; retrying");
            }
            Err(e) => {
                report.failed.push((id, e.to_string()));
                return;
            }
        }
    }
}

impl CaBundleInjector {
    /// An injector for `targets`, resyncing every 60 s and watching the targets.
    pub fn new(client: Client, targets: InjectionTargets) -> Self {
        Self {
            client,
            targets,
            resync_interval: Duration::from_secs(60),
            watch_targets: true,
        }
    }

    /// Sets how often every target is re-checked even without any event.
    pub fn with_resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval;
        self
    }

    /// Turns the per-object watches (immediate correction after someone edits a target) on or
    /// off. Off needs no list/watch RBAC and relies on the resync interval alone.
    pub fn with_watch(mut self, on: bool) -> Self {
        self.watch_targets = on;
        self
    }

    /// Reads every target once and patches those whose caBundle differs. Per-object failures
    /// are reported, not returned, so one broken target does not block the others.
    pub async fn inject_once(&self, ca_bundle: &[u8]) -> InjectionReport {
        let mut report = InjectionReport::default();
        let vwc: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        for name in &self.targets.validating_webhooks {
            inject_into(&vwc, name, ca_bundle, validating_webhook_patch, &mut report).await;
        }
        let mwc: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        for name in &self.targets.mutating_webhooks {
            inject_into(&mwc, name, ca_bundle, mutating_webhook_patch, &mut report).await;
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in &self.targets.crds {
            inject_into(&crds, name, ca_bundle, crd_conversion_patch, &mut report).await;
        }
        report
    }

    fn target_events(&self) -> BoxStream<'static, ()> {
        fn watch_named<K>(client: &Client, name: &str) -> BoxStream<'static, ()>
        where
            K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
            K::DynamicType: Default,
        {
            let api: Api<K> = Api::all(client.clone());
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            watcher(api, config).default_backoff().map(|_| ()).boxed()
        }
        let mut streams = Vec::new();
        for n in &self.targets.validating_webhooks {
            streams.push(watch_named::<ValidatingWebhookConfiguration>(
                &self.client,
                n,
            ));
        }
        for n in &self.targets.mutating_webhooks {
            streams.push(watch_named::<MutatingWebhookConfiguration>(&self.client, n));
        }
        for n in &self.targets.crds {
            streams.push(watch_named::<CustomResourceDefinition>(&self.client, n));
        }
        if streams.is_empty() {
            return futures::stream::pending().boxed();
        }
        futures::stream::select_all(streams).boxed()
    }

    /// Keeps the targets' caBundle equal to the latest value of `bundle` until `shutdown`
    /// completes: on every bundle change, every target event, and every resync interval.
    pub async fn run(
        self,
        mut bundle: watch::Receiver<Vec<u8>>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        let mut events = if self.watch_targets {
            self.target_events()
        } else {
            futures::stream::pending().boxed()
        };
        let mut resync = tokio::time::interval(self.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bundle_open = true;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = resync.tick() => {}
                changed = bundle.changed(), if bundle_open => {
                    if changed.is_err() {
                        // The sender is gone; keep enforcing the last value.
                        bundle_open = false;
                    }
                }
                Some(()) = events.next() => {}
            }
            let current = bundle.borrow_and_update().clone();
            if current.is_empty() {
                continue;
            }
            let report = self.inject_once(&current).await;
            for (id, err) in &report.failed {
                tracing::warn!(object = %id, error = %err, "caBundle injection failed; will retry");
            }
            for id in &report.missing {
                tracing::debug!(object = %id, "caBundle injection target not found");
            }
        }
    }
}

/// Convenience wrapper: `Result` form of [`CaBundleInjector::inject_once`] that fails if any
/// target could not be read or patched.
pub async fn inject_ca_bundle(
    client: Client,
    targets: InjectionTargets,
    ca_bundle: &[u8],
) -> Result<InjectionReport> {
    let report = CaBundleInjector::new(client, targets)
        .inject_once(ca_bundle)
        .await;
    if let Some((id, err)) = report.failed.first() {
        return Err(crate::Error::Injection {
            object: id.clone(),
            reason: err.clone(),
        });
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use serde_json::json;

    use super::*;

    fn vwc(bundles: &[Option<&[u8]>]) -> ValidatingWebhookConfiguration {
        let webhooks: Vec<Value> = bundles
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut cc = json!({"url": format!("https://example/{i}")});
                if let Some(b) = b {
                    cc["caBundle"] = b64(b);
                }
                json!({"name": format!("w{i}.nats.io"), "sideEffects": "None",
                       "admissionReviewVersions": ["v1"], "clientConfig": cc})
            })
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "x"}, "webhooks": webhooks})).unwrap()
    }

    fn crd(strategy: &str, ca: Option<&[u8]>) -> CustomResourceDefinition {
        let mut conversion = json!({"strategy": strategy});
        if strategy == "Webhook" {
            let mut cc = json!({"service": {"name": "s", "namespace": "n"}});
            if let Some(b) = ca {
                cc["caBundle"] = b64(b);
            }
            conversion["webhook"] = json!({"conversionReviewVersions": ["v1"], "clientConfig": cc});
        }
        serde_json::from_value(json!({"metadata": {"name": "natsclusters.nats.io"},
            "spec": {"group": "nats.io", "scope": "Namespaced",
                     "names": {"plural": "natsclusters", "kind": "NatsCluster"},
                     "versions": [], "conversion": conversion}}))
        .unwrap()
    }

    #[test]
    fn webhook_patch_touches_only_stale_entries() {
        let cfg = vwc(&[Some(b"new"), None, Some(b"old")]);
        let patch = validating_webhook_patch(&cfg, b"new").unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "test", "path": "/webhooks/1/name", "value": "w1.nats.io"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": "bmV3"},
                {"op": "test", "path": "/webhooks/2/name", "value": "w2.nats.io"},
                {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": "bmV3"},
            ])
        );
        // Applying it gives the wanted object and changes nothing else.
        let mut doc = serde_json::to_value(&cfg).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        let patched: ValidatingWebhookConfiguration = serde_json::from_value(doc).unwrap();
        assert_eq!(validating_webhook_patch(&patched, b"new"), None);
        let urls: Vec<_> = patched
            .webhooks
            .unwrap()
            .into_iter()
            .map(|w| w.client_config.url)
            .collect();
        assert_eq!(urls.len(), 3);
        assert!(urls.iter().all(Option::is_some));
    }

    #[test]
    fn no_patch_when_equal_empty_or_no_webhooks() {
        assert_eq!(
            validating_webhook_patch(&vwc(&[Some(b"x"), Some(b"x")]), b"x"),
            None
        );
        assert_eq!(validating_webhook_patch(&vwc(&[]), b"x"), None);
        assert_eq!(validating_webhook_patch(&vwc(&[None]), b""), None);
        let mut value = serde_json::to_value(vwc(&[Some(b"x")])).unwrap();
        value["kind"] = json!("MutatingWebhookConfiguration");
        let mwc: MutatingWebhookConfiguration = serde_json::from_value(value).unwrap();
        assert_eq!(mutating_webhook_patch(&mwc, b"x"), None);
        assert!(mutating_webhook_patch(&mwc, b"y").is_some());
    }

    #[test]
    fn crd_patch_only_for_webhook_strategy_and_only_when_different() {
        assert_eq!(crd_conversion_patch(&crd("None", None), b"x"), None);
        assert_eq!(
            crd_conversion_patch(&crd("Webhook", Some(b"x")), b"x"),
            None
        );
        let patch = crd_conversion_patch(&crd("Webhook", Some(b"old")), b"x").unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "test", "path": "/spec/conversion/strategy", "value": "Webhook"},
                {"op": "add", "path": "/spec/conversion/webhook/clientConfig/caBundle", "value": "eA=="},
            ])
        );
        let target = crd("Webhook", None);
        let mut doc = serde_json::to_value(&target).unwrap();
        json_patch::patch(&mut doc, &crd_conversion_patch(&target, b"x").unwrap()).unwrap();
        let patched: CustomResourceDefinition = serde_json::from_value(doc).unwrap();
        assert_eq!(crd_conversion_patch(&patched, b"x"), None);
    }
}
