//! The NATS domain plugged into the generic webhook server: thin adapters from the
//! wire types of `nats-operator-webhook` to the pure functions of [`crate::api`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kube::ResourceExt;

use nats_operator_webhook::{
    AdmissionRequest, Cause, Converter, Mutation, Mutator, Operation, Validator, Verdict,
    WebhookState,
};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::admission::{default_object, validate_object_with};
use crate::api::convert::{convert_object, convert_text};
use crate::api::data_guard::{self, ALLOW_DELETE_WITH_DATA, Known};
use crate::api::v1beta1::{JetStreamStatus, NatsCluster};
use crate::controller::cache::Caches;
use crate::controller::data_plane;
use crate::controller::observe::member_pods;

/// Where the validating webhook finds the operator's informer cache: empty on a
/// `--webhooks-only` replica and in `nats-operator webhook`, set once the caches exist.
/// Cloning shares the slot.
#[derive(Debug, Default, Clone)]
pub struct CacheSlot(Arc<OnceLock<Caches>>);

impl CacheSlot {
    /// A slot holding `caches`.
    pub fn with(caches: Caches) -> Self {
        let slot = CacheSlot::default();
        slot.set(caches);
        slot
    }

    /// Fills the slot; `false` when it was already filled (the first caches stay).
    pub fn set(&self, caches: Caches) -> bool {
        self.0.set(caches).is_ok()
    }

    /// The caches, if any.
    pub fn get(&self) -> Option<&Caches> {
        self.0.get()
    }
}

/// Validating and defaulting admission for NatsCluster and NatsServiceRole, and validating
/// admission for NACK's `jetstream.nats.io` kinds ([`crate::jetstream::admission`]). With caches,
/// the validating side also warns about references the cache shows broken (a TLS Secret
/// that does not exist or lacks a key, an extra route to a NatsCluster that does not
/// exist); until the caches are synced it says nothing about them.
#[derive(Debug, Default, Clone)]
pub struct NatsAdmission {
    caches: CacheSlot,
}

impl NatsAdmission {
    /// Admission that reads the caches in `caches` (when filled and synced).
    pub fn new(caches: CacheSlot) -> Self {
        NatsAdmission { caches }
    }
}

/// What the data guard reads about a NatsCluster.
#[derive(Debug, Default)]
struct Guarded {
    name: String,
    jetstream: bool,
    gateway: bool,
    status: Option<JetStreamStatus>,
    allow_delete: bool,
}

impl Guarded {
    fn known(&self) -> Known<'_> {
        Known {
            name: &self.name,
            jetstream: self.jetstream,
            gateway: self.gateway,
            status: self.status.as_ref(),
        }
    }
}

/// The integer at JSON `pointer` of `object`, when it fits an `i32`.
fn int_at(object: &Value, pointer: &str) -> Option<i32> {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
}

fn as_cluster(object: &Value) -> Option<NatsCluster> {
    if object.get("kind").and_then(Value::as_str) != Some("NatsCluster") {
        return None;
    }
    let beta = convert_object(object.clone(), crate::api::V1BETA1).ok()?;
    serde_json::from_value(beta).ok()
}

/// How long a second look waits for the members' `/jsz`.
const LIVE_LOOK: Duration = Duration::from_secs(2);

impl NatsAdmission {
    /// The NatsCluster `namespace/name` for the guard: the stored object sent with the
    /// request (`old`) for its spec and annotations, which are current; its
    /// `status.jetstream` from `live` (a second look), else from it, else from the cache
    /// (a v1alpha2 object has none).
    fn guarded(
        &self,
        namespace: &str,
        name: &str,
        old: Option<&Value>,
        live: Option<&JetStreamStatus>,
    ) -> Guarded {
        let sent = old.and_then(as_cluster);
        let cached = self.caches.get().and_then(|c| c.cluster(namespace, name));
        let spec = sent
            .as_ref()
            .map(|c| &c.spec)
            .or(cached.as_ref().map(|c| &c.spec));
        let status = live
            .cloned()
            .or_else(|| sent.as_ref()?.status.as_ref()?.jetstream.clone())
            .or_else(|| cached.as_ref()?.status.as_ref()?.jetstream.clone());
        let allow_delete = old
            .and_then(|o| o.pointer("/metadata/annotations"))
            .and_then(|a| a.get(ALLOW_DELETE_WITH_DATA))
            .and_then(Value::as_str)
            == Some("true");
        Guarded {
            name: name.to_string(),
            jetstream: spec.is_some_and(crate::render::jetstream_enabled),
            gateway: spec.is_some_and(|s| s.gateway.is_some()),
            status,
            allow_delete,
        }
    }

    /// A NatsCluster's deletion: refused while it holds streams (see [`data_guard`]).
    fn guard_delete(&self, req: &AdmissionRequest, live: Option<&JetStreamStatus>) -> Verdict {
        if req.kind.kind != "NatsCluster" {
            return Verdict::allow();
        }
        let g = self.guarded(&req.namespace, &req.name, req.old_object.as_ref(), live);
        match data_guard::check_delete(g.allow_delete, g.known()) {
            Ok(warnings) => Verdict::allow_with_warnings(warnings),
            Err(message) => Verdict::forbidden(message),
        }
    }

    /// A change of `spec.replicas` through the `scale` subresource.
    fn guard_scale(&self, req: &AdmissionRequest, live: Option<&JetStreamStatus>) -> Verdict {
        let Some((field, old, new)) = size_change(req) else {
            return Verdict::allow();
        };
        let g = self.guarded(&req.namespace, &req.name, None, live);
        match data_guard::check_scale(field, old, new, g.known()) {
            Ok(warnings) => Verdict::allow_with_warnings(warnings),
            Err(e) => Verdict::invalid(vec![Cause::new(e.kind.reason(), e.field, e.message)]),
        }
    }

    /// A change of `spec.size` in the object itself.
    fn guard_size(
        &self,
        namespace: &str,
        new: &Value,
        old: Option<&Value>,
        live: Option<&JetStreamStatus>,
    ) -> Result<Vec<String>, crate::api::field::FieldError> {
        let Some(old) = old else {
            return Ok(Vec::new());
        };
        let (old_size, new_size) = (object_size(old), object_size(new));
        if new_size >= old_size || new.get("kind").and_then(Value::as_str) != Some("NatsCluster") {
            return Ok(Vec::new());
        }
        let name = new
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let g = self.guarded(namespace, name, Some(old), live);
        data_guard::check_scale("spec.size", old_size, new_size, g.known())
    }

    /// `status.jetstream` as the members of the NatsCluster `namespace/name` report it
    /// now. `None` without caches, for a cluster without JetStream, and unless every
    /// member pod answers within [`LIVE_LOOK`]: a stream only a silent member holds
    /// would be missed, and the guard must not admit on a partial view.
    async fn live_jetstream(&self, namespace: &str, name: &str) -> Option<JetStreamStatus> {
        let caches = self.caches.get()?;
        let cluster = caches.cluster(namespace, name)?;
        if !crate::render::jetstream_enabled(&cluster.spec) {
            return None;
        }
        let uid = cluster.uid().unwrap_or_default();
        let pods = member_pods(caches.pods.store(), namespace, name, &uid);
        let https = crate::render::https_monitoring(&cluster.spec);
        let answers = tokio::time::timeout(LIVE_LOOK, data_plane::observe(&pods, https))
            .await
            .ok()?;
        if pods.is_empty() || answers.len() != pods.len() || answers.iter().any(|a| a.jsz.is_err())
        {
            return None;
        }
        let members = data_plane::members(name, cluster.spec.size, &pods);
        let prev = cluster.status.as_ref().and_then(|s| s.jetstream.as_ref());
        Some(data_plane::summarize(&members, &answers, prev).0)
    }

    /// The verdict on `req`, with the guard reading `live` when given.
    fn validate_seeing(&self, req: &AdmissionRequest, live: Option<&JetStreamStatus>) -> Verdict {
        match req.operation {
            Operation::Connect => return Verdict::allow(),
            Operation::Delete => return self.guard_delete(req, live),
            Operation::Create | Operation::Update => {}
        }
        match req.sub_resource.as_deref() {
            Some("scale") => return self.guard_scale(req, live),
            Some(s) if !s.is_empty() => return Verdict::allow(),
            _ => {}
        }
        let Some(object) = &req.object else {
            return Verdict::allow();
        };
        if req.resource.group == crate::jetstream::GROUP {
            return self.validate_asset(req, object);
        }
        let namespace = if req.namespace.is_empty() {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
        } else {
            req.namespace.as_str()
        };
        let refs = self
            .caches
            .get()
            .and_then(|c| c.references(namespace))
            .map(|r| (namespace, r));
        let checked =
            validate_object_with(object, req.old_object.as_ref(), refs).and_then(|mut w| {
                w.extend(
                    self.guard_size(namespace, object, req.old_object.as_ref(), live)
                        .map_err(|e| vec![e])?,
                );
                Ok(w)
            });
        verdict(checked)
    }
}

impl NatsAdmission {
    /// A `jetstream.nats.io` object, with what the cache knows of its namespace once
    /// the NatsCluster and Stream stores are synced.
    fn validate_asset(&self, req: &AdmissionRequest, object: &Value) -> Verdict {
        use crate::jetstream::admission::{Known, validate};
        let caches = self
            .caches
            .get()
            .filter(|c| c.scope().covers(&req.namespace))
            .filter(|c| c.clusters.is_synced() && c.assets.streams.is_synced());
        let in_namespace = |meta: &kube::api::ObjectMeta| {
            meta.namespace.as_deref() == Some(req.namespace.as_str())
        };
        let clusters: Vec<Arc<NatsCluster>> = caches
            .map(|c| c.clusters.store().state())
            .unwrap_or_default()
            .into_iter()
            .filter(|c| in_namespace(&c.metadata))
            .collect();
        let streams: Vec<Arc<crate::jetstream::v1beta2::Stream>> = caches
            .map(|c| c.assets.streams.store().state())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| in_namespace(&s.metadata))
            .collect();
        let known = Known {
            clusters: clusters
                .iter()
                .map(|c| (c.metadata.name.as_deref().unwrap_or_default(), &c.spec))
                .collect(),
            streams: streams
                .iter()
                .map(|s| (s.metadata.name.as_deref().unwrap_or_default(), &s.spec))
                .collect(),
        };
        verdict(validate(
            object,
            req.old_object.as_ref(),
            caches.map(|_| &known),
        ))
    }
}

/// Admitted with warnings, or invalid with the field errors.
fn verdict(checked: Result<Vec<String>, Vec<crate::api::field::FieldError>>) -> Verdict {
    match checked {
        Ok(warnings) => Verdict::allow_with_warnings(warnings),
        Err(errors) => Verdict::Invalid {
            causes: errors
                .into_iter()
                .map(|e| Cause::new(e.kind.reason(), e.field, e.message))
                .collect(),
            warnings: Vec::new(),
        },
    }
}

/// Whether a verdict on `req` may come from the data guard, which a second look can
/// revise: a NatsCluster's update, deletion or `scale` (whose `kind` is
/// `autoscaling/v1 Scale`, so the resource decides).
fn guarded_by_the_data_plane(req: &AdmissionRequest) -> bool {
    req.resource.group == crate::api::GROUP
        && req.resource.resource == "natsclusters"
        && matches!(req.operation, Operation::Update | Operation::Delete)
        && !req.name.is_empty()
}

/// Whether `req` deletes a NatsCluster, lowers its size (`spec.size`, or `spec.replicas`
/// of `scale`) or changes it to or from one member (a JetStream server restarting into
/// or out of a cluster): what the data guard judges from `status.jetstream`.
fn risks_data(req: &AdmissionRequest) -> bool {
    req.operation == Operation::Delete
        || size_change(req)
            .is_some_and(|(_, old, new)| new < old || (old != new && (old == 1 || new == 1)))
}

/// `spec.size` of a NatsCluster object; unset is 0 (no servers).
fn object_size(object: &Value) -> i32 {
    int_at(object, "/spec/size").unwrap_or(0)
}

/// The field, old and new size of an update: `spec.replicas` of a `scale` (both set),
/// or `spec.size` of the object (with the stored object sent).
fn size_change(req: &AdmissionRequest) -> Option<(&'static str, i32, i32)> {
    if req.sub_resource.as_deref() == Some("scale") {
        let replicas = |o: Option<&Value>| o.and_then(|o| int_at(o, "/spec/replicas"));
        let (old, new) = (
            replicas(req.old_object.as_ref())?,
            replicas(req.object.as_ref())?,
        );
        return Some(("spec.replicas", old, new));
    }
    let (old, new) = (req.old_object.as_ref()?, req.object.as_ref()?);
    Some(("spec.size", object_size(old), object_size(new)))
}

impl Validator for NatsAdmission {
    fn validate(&self, req: &AdmissionRequest) -> Verdict {
        self.validate_seeing(req, None)
    }

    /// Every denial of a NatsCluster's update or deletion, and every admitted scale-down,
    /// scale from one member or deletion: the data guard judged from `status.jetstream`, which lags the servers
    /// by up to a refresh, both ways (a stream's replicas just lowered, or just raised).
    fn wants_second_look(&self, req: &AdmissionRequest, verdict: &Verdict) -> bool {
        guarded_by_the_data_plane(req) && (!verdict.is_allowed() || risks_data(req))
    }

    /// The guard judges again from what the members' `/jsz` say now; without an answer
    /// from every member the first verdict stands.
    fn reconsider<'a>(
        &'a self,
        req: &'a AdmissionRequest,
        first: Verdict,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            if !guarded_by_the_data_plane(req) {
                return first;
            }
            let Some(live) = self.live_jetstream(&req.namespace, &req.name).await else {
                return first;
            };
            let verdict = self.validate_seeing(req, Some(&live));
            if verdict.is_allowed() != first.is_allowed() {
                tracing::info!(
                    namespace = %req.namespace,
                    name = %req.name,
                    allowed = verdict.is_allowed(),
                    "the members' /jsz changed the verdict judged from status.jetstream"
                );
            }
            verdict
        })
    }
}

impl Mutator for NatsAdmission {
    fn mutate(&self, req: &AdmissionRequest) -> Mutation {
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return Mutation::Verdict(Verdict::allow());
        }
        let Some(object) = &req.object else {
            return Mutation::Verdict(Verdict::allow());
        };
        let (defaulted, warnings) = default_object(object, req.old_object.as_ref());
        if &defaulted == object {
            Mutation::Verdict(Verdict::allow_with_warnings(warnings))
        } else {
            Mutation::Patched {
                object: defaulted,
                warnings,
            }
        }
    }
}

/// The CRD conversion webhook.
#[derive(Debug, Default, Clone)]
pub struct NatsConversion;

impl Converter for NatsConversion {
    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, String> {
        convert_object(object, desired_api_version).map_err(|e| e.to_string())
    }

    fn convert_text(&self, object: &str, desired_api_version: &str) -> Option<Box<RawValue>> {
        convert_text(object, desired_api_version)
    }
}

/// The webhook server state with the NATS domain plugged in, without caches.
pub fn state() -> WebhookState {
    state_with(CacheSlot::default())
}

/// The webhook server state whose validation reads the caches in `caches`.
pub fn state_with(caches: CacheSlot) -> WebhookState {
    let admission = NatsAdmission::new(caches);
    WebhookState::builder(admission.clone(), admission, NatsConversion).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A stored v1beta1 cluster with JetStream whose status lists `streams` R3 streams.
    fn stored(streams: u64, annotations: Value) -> Value {
        json!({
            "apiVersion": "nats.io/v1beta1", "kind": "NatsCluster",
            "metadata": {"name": "js", "namespace": "ns", "annotations": annotations},
            "spec": {"size": 3, "version": "2.12.1", "jetstream": {"memoryStorage": "1Gi"}},
            "status": {"jetstream": {"streams": streams, "consumers": 0,
                "streamReplicas": [{"account": "$G", "name": "ORDERS", "replicas": 3}]}}
        })
    }

    fn request(operation: &str, sub: Option<&str>, object: Value, old: Value) -> AdmissionRequest {
        // The apiserver sends the `scale` subresource as an `autoscaling/v1` Scale.
        let kind = match sub {
            Some("scale") => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
            _ => json!({"group": "nats.io", "version": "v1beta1", "kind": "NatsCluster"}),
        };
        let req = json!({
            "uid": "u", "kind": kind,
            "resource": {"group": "nats.io", "version": "v1beta1", "resource": "natsclusters"},
            "subResource": sub, "name": "js", "namespace": "ns", "operation": operation,
            "object": object, "oldObject": old
        });
        serde_json::from_value(req).expect("an admission request")
    }

    #[test]
    fn admitted_scale_downs_and_deletes_get_a_second_look_too() {
        let admission = NatsAdmission::default();
        let allowed = Verdict::allow();
        let scale = |new: i64, old: i64| {
            request(
                "UPDATE",
                Some("scale"),
                json!({"spec": {"replicas": new}}),
                json!({"spec": {"replicas": old}}),
            )
        };
        assert!(admission.wants_second_look(&scale(3, 5), &allowed));
        assert!(!admission.wants_second_look(&scale(5, 3), &allowed));
        // One member runs JetStream standalone: growing from it loses its streams.
        assert!(admission.wants_second_look(&scale(3, 1), &allowed));
        let size = |new: i64, old: i64| {
            request(
                "UPDATE",
                None,
                json!({"spec": {"size": new}}),
                json!({"spec": {"size": old}}),
            )
        };
        assert!(admission.wants_second_look(&size(1, 3), &allowed));
        assert!(!admission.wants_second_look(&size(3, 3), &allowed));
        let delete = request("DELETE", None, Value::Null, json!({}));
        assert!(admission.wants_second_look(&delete, &allowed));
        assert!(admission.wants_second_look(&size(3, 3), &Verdict::forbidden("no")));
        let create = request("CREATE", None, json!({"spec": {"size": 1}}), Value::Null);
        assert!(!admission.wants_second_look(&create, &Verdict::forbidden("no")));
    }

    #[test]
    fn denials_of_updates_deletes_and_scales_get_a_second_look_creates_do_not() {
        let scale = request("UPDATE", Some("scale"), json!({}), json!({}));
        assert_eq!(scale.kind.kind, "Scale");
        assert!(guarded_by_the_data_plane(&scale));
        assert!(guarded_by_the_data_plane(&request(
            "DELETE",
            None,
            Value::Null,
            json!({})
        )));
        assert!(guarded_by_the_data_plane(&request(
            "UPDATE",
            None,
            json!({}),
            json!({})
        )));
        assert!(!guarded_by_the_data_plane(&request(
            "CREATE",
            None,
            json!({}),
            Value::Null
        )));
        let mut role = request("DELETE", None, Value::Null, json!({}));
        role.resource.resource = "natsserviceroles".into();
        assert!(!guarded_by_the_data_plane(&role));
    }

    #[test]
    fn deleting_a_cluster_with_streams_is_forbidden_until_annotated() {
        let admission = NatsAdmission::default();
        let v = admission.validate(&request("DELETE", None, Value::Null, stored(1, json!({}))));
        assert!(
            matches!(&v, Verdict::Forbidden { message, .. } if message.contains("\"ORDERS\"")),
            "{v:?}"
        );
        let annotated = stored(1, json!({ALLOW_DELETE_WITH_DATA: "true"}));
        let v = admission.validate(&request("DELETE", None, Value::Null, annotated));
        assert!(v.is_allowed(), "{v:?}");
        let empty = stored(0, json!({}));
        assert!(
            admission
                .validate(&request("DELETE", None, Value::Null, empty))
                .is_allowed()
        );
    }

    #[test]
    fn shrinking_below_a_streams_replicas_is_invalid_in_the_object() {
        let admission = NatsAdmission::default();
        let old = stored(1, json!({}));
        let mut new = old.clone();
        new["spec"]["size"] = json!(2);
        let v = admission.validate(&request("UPDATE", None, new.clone(), old.clone()));
        assert!(
            matches!(&v, Verdict::Invalid { causes, .. } if causes.len() == 1),
            "{v:?}"
        );
        new["spec"]["size"] = json!(5);
        assert!(
            admission
                .validate(&request("UPDATE", None, new, old))
                .is_allowed()
        );
    }

    #[test]
    fn the_scale_subresource_without_a_cache_is_allowed() {
        let admission = NatsAdmission::default();
        let scale = |n: i32| {
            json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                   "metadata": {"name": "js", "namespace": "ns"}, "spec": {"replicas": n}})
        };
        let v = admission.validate(&request("UPDATE", Some("scale"), scale(1), scale(3)));
        // Without the cache the guard cannot see the cluster: it is not known to have
        // JetStream, so nothing is said.
        assert!(v.is_allowed(), "{v:?}");
    }
}
