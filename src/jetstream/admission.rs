//! The validating webhook's verdict on a `jetstream.nats.io` object. Pure: the webhook
//! passes what its informer cache knows of the namespace ([`Known`]), and nothing when
//! the cache is not synced (the checks that need it are then skipped, never guessed).
//!
//! Denied: a spec the server would refuse ([`super::server_config`]: names, durations,
//! sizes, combinations), a change the server cannot make ([`super::validate`]), replicas
//! or `maxBytes` the referenced NatsCluster cannot hold, and subjects that overlap
//! another Stream of the same account and servers. Warned: a Consumer whose Stream has
//! no object here (GitOps tools apply in any order), and a reference to a NatsCluster
//! that does not exist yet.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::server_config;
use super::v1beta2::{
    Connection, ConsumerSpec, KeyValueSpec, ObjectStoreSpec, Storage, StreamSpec,
};
use super::validate::{self, Asks, fits_cluster, subjects_overlap};
use crate::api::field::FieldError;
use crate::api::v1beta1::NatsClusterSpec;

/// What the cache knows of the object's namespace.
#[derive(Debug, Default)]
pub struct Known<'a> {
    /// NatsClusters: `metadata.name` and spec.
    pub clusters: Vec<(&'a str, &'a NatsClusterSpec)>,
    /// Stream objects: `metadata.name` and spec.
    pub streams: Vec<(&'a str, &'a StreamSpec)>,
}

/// Warnings of an admitted object, or why it is denied.
pub type Verdict = Result<Vec<String>, Vec<FieldError>>;

fn decode<T: DeserializeOwned>(object: &Value) -> Result<T, Vec<FieldError>> {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    serde_json::from_value(spec).map_err(|e| vec![FieldError::invalid("spec", "", e.to_string())])
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Where an asset lives, for the overlap check: two Streams overlap only in the same
/// account of the same servers.
fn place(c: &Connection) -> String {
    let domain = c.js_domain.as_deref().unwrap_or_default();
    match &c.nats_cluster_ref {
        Some(r) => format!(
            "cluster {} account {} domain {domain}",
            r.name,
            r.account.as_deref().unwrap_or("$G")
        ),
        None => {
            let mut servers = c.servers.clone();
            servers.sort();
            format!(
                "servers {servers:?} account {:?} creds {:?} nkey {:?} domain {domain}",
                c.account, c.creds, c.nkey
            )
        }
    }
}

/// The verdict on `new` (with the stored `old` of an update).
pub fn validate(new: &Value, old: Option<&Value>, known: Option<&Known<'_>>) -> Verdict {
    if new
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(Vec::new());
    }
    // Finalizer and label edits of objects stored before a rule existed go through.
    if old.is_some_and(|o| o.get("spec") == new.get("spec")) {
        return Ok(Vec::new());
    }
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "Stream" => stream(new, old, known),
        "Consumer" => consumer(new, old, known),
        "KeyValue" => key_value(new, old, known),
        "ObjectStore" => object_store(new, old, known),
        // Connection settings: read when an asset is reconciled.
        _ => Ok(Vec::new()),
    }
}

/// Collects errors; `Ok` with the warnings when there were none.
fn verdict(errors: Vec<FieldError>, warnings: Vec<String>) -> Verdict {
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors)
    }
}

fn config_errors(built: Result<Value, Vec<FieldError>>) -> Vec<FieldError> {
    built.err().unwrap_or_default()
}

/// The checks against the NatsCluster the asset names: `(errors, warnings)`.
fn against_cluster(
    connection: &Connection,
    asks: Asks,
    known: Option<&Known<'_>>,
) -> (Vec<FieldError>, Vec<String>) {
    let (Some(reference), Some(known)) = (&connection.nats_cluster_ref, known) else {
        return (Vec::new(), Vec::new());
    };
    match known.clusters.iter().find(|(n, _)| *n == reference.name) {
        Some((name, spec)) => (fits_cluster(asks, name, spec), Vec::new()),
        None => (
            Vec::new(),
            vec![format!(
                "spec.natsClusterRef.name: NatsCluster {:?} does not exist in this namespace \
                 (yet): the asset waits for it",
                reference.name
            )],
        ),
    }
}

fn stream(new: &Value, old: Option<&Value>, known: Option<&Known<'_>>) -> Verdict {
    let spec: StreamSpec = decode(new)?;
    let mut errors = config_errors(server_config::stream(&spec));
    errors.extend(validate::connection(&spec.connection));
    if let Some(old) = old {
        let old: StreamSpec = decode(old)?;
        errors.extend(validate::stream_update(&old, &spec));
    }
    let asks = Asks {
        replicas: spec.replicas,
        storage: spec.storage,
        max_bytes: spec.max_bytes,
    };
    let (more, warnings) = against_cluster(&spec.connection, asks, known);
    errors.extend(more);
    if let Some(known) = known {
        errors.extend(overlaps(name_of(new), &spec, known));
    }
    verdict(errors, warnings)
}

/// Subjects of `spec` that another Stream object of the same place stores too.
fn overlaps(me: &str, spec: &StreamSpec, known: &Known<'_>) -> Vec<FieldError> {
    let here = place(&spec.connection);
    let mut errors = Vec::new();
    for (i, subject) in spec.subjects.iter().enumerate() {
        let other = known.streams.iter().find(|(name, other)| {
            *name != me
                && other.name != spec.name
                && place(&other.connection) == here
                && other.subjects.iter().any(|s| subjects_overlap(s, subject))
        });
        if let Some((name, other)) = other {
            errors.push(FieldError::invalid(
                format!("spec.subjects[{i}]"),
                subject.as_str(),
                format!(
                    "overlaps the subjects of Stream {name:?} (stream {:?}: {}) in the same \
                     account; the server refuses two streams storing one subject",
                    other.name,
                    other.subjects.join(", ")
                ),
            ));
        }
    }
    errors
}

fn consumer(new: &Value, old: Option<&Value>, known: Option<&Known<'_>>) -> Verdict {
    let spec: ConsumerSpec = decode(new)?;
    let mut errors = config_errors(server_config::consumer(&spec));
    errors.extend(validate::connection(&spec.connection));
    if spec.stream_name.is_empty() {
        errors.push(FieldError::required(
            "spec.streamName",
            "the name of the stream the consumer reads",
        ));
    }
    if let Some(old) = old {
        let old: ConsumerSpec = decode(old)?;
        errors.extend(validate::consumer_update(&old, &spec));
    }
    let mut warnings = Vec::new();
    if let Some(replicas) = spec.replicas.filter(|r| *r > 0) {
        let asks = Asks {
            replicas,
            storage: Storage::Memory,
            max_bytes: -1,
        };
        let (more, w) = against_cluster(&spec.connection, asks, known);
        errors.extend(more.into_iter().filter(|e| e.field == "spec.replicas"));
        warnings.extend(w);
    }
    if let Some(known) = known
        && !spec.stream_name.is_empty()
        && !known.streams.iter().any(|(_, s)| {
            s.name == spec.stream_name && place(&s.connection) == place(&spec.connection)
        })
    {
        warnings.push(format!(
            "spec.streamName: no Stream object in this namespace creates stream {:?}; the \
             consumer is created once the stream exists on the server",
            spec.stream_name
        ));
    }
    verdict(errors, warnings)
}

/// The parts of a KeyValue or an ObjectStore the checks read.
struct Bucket<S> {
    config: fn(&S) -> Result<Value, Vec<FieldError>>,
    update: fn(&S, &S) -> Vec<FieldError>,
    connection: fn(&S) -> &Connection,
    asks: fn(&S) -> Asks,
}

fn key_value(new: &Value, old: Option<&Value>, known: Option<&Known<'_>>) -> Verdict {
    bucket(
        new,
        old,
        known,
        Bucket::<KeyValueSpec> {
            config: server_config::key_value,
            update: validate::key_value_update,
            connection: |s| &s.connection,
            asks: |s| Asks {
                replicas: s.replicas,
                storage: s.storage.unwrap_or(Storage::File),
                max_bytes: s.max_bytes.unwrap_or(-1),
            },
        },
    )
}

fn object_store(new: &Value, old: Option<&Value>, known: Option<&Known<'_>>) -> Verdict {
    bucket(
        new,
        old,
        known,
        Bucket::<ObjectStoreSpec> {
            config: server_config::object_store,
            update: validate::object_store_update,
            connection: |s| &s.connection,
            asks: |s| Asks {
                replicas: s.replicas,
                storage: s.storage.unwrap_or(Storage::File),
                max_bytes: s.max_bytes.unwrap_or(-1),
            },
        },
    )
}

/// A KeyValue or an ObjectStore (a stream named for its bucket: no subject to overlap).
fn bucket<S: DeserializeOwned>(
    new: &Value,
    old: Option<&Value>,
    known: Option<&Known<'_>>,
    parts: Bucket<S>,
) -> Verdict {
    let spec: S = decode(new)?;
    let mut errors = config_errors((parts.config)(&spec));
    errors.extend(validate::connection((parts.connection)(&spec)));
    if let Some(old) = old {
        let old: S = decode(old)?;
        errors.extend((parts.update)(&old, &spec));
    }
    let (more, warnings) = against_cluster((parts.connection)(&spec), (parts.asks)(&spec), known);
    errors.extend(more);
    verdict(errors, warnings)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cluster(size: i32) -> NatsClusterSpec {
        serde_json::from_value(json!({
            "size": size, "version": "2.12.1",
            "jetstream": {"memoryStorage": "1Gi", "fileStorage": {"size": "10Gi"}}
        }))
        .expect("a cluster spec")
    }

    fn object(kind: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": "jetstream.nats.io/v1beta2", "kind": kind,
               "metadata": {"name": name, "namespace": "apps"}, "spec": spec})
    }

    fn fields(v: Verdict) -> Vec<String> {
        v.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn nack_manifests_without_a_connection_are_admitted() {
        let s = object(
            "Stream",
            "mystream",
            json!({"name": "mystream", "subjects": ["orders.*"], "storage": "file",
                   "maxAge": "1h", "replicas": 1}),
        );
        assert_eq!(validate(&s, None, None), Ok(vec![]));
        let c = object(
            "Consumer",
            "my-pull-consumer",
            json!({"streamName": "mystream", "durableName": "my-pull-consumer",
                   "deliverPolicy": "all", "filterSubject": "orders.received",
                   "maxDeliver": 20, "ackPolicy": "explicit"}),
        );
        assert_eq!(validate(&c, None, None), Ok(vec![]));
    }

    #[test]
    fn the_cache_denies_what_the_cluster_cannot_hold_and_overlaps() {
        let small = cluster(3);
        let other: StreamSpec = serde_json::from_value(json!({
            "name": "ORDERS", "subjects": ["orders.>"], "natsClusterRef": {"name": "js"}
        }))
        .expect("a stream spec");
        let known = Known {
            clusters: vec![("js", &small)],
            streams: vec![("orders", &other)],
        };
        let s = object(
            "Stream",
            "more",
            json!({"name": "MORE", "subjects": ["orders.eu.*", "billing.>"], "replicas": 5,
                   "storage": "file", "maxBytes": 20_000_000_000_i64,
                   "natsClusterRef": {"name": "js"}}),
        );
        assert_eq!(
            fields(validate(&s, None, Some(&known))),
            ["spec.replicas", "spec.maxBytes", "spec.subjects[0]"]
        );
        // Another account of the cluster holds its own subjects.
        let mut elsewhere = s.clone();
        elsewhere["spec"]["natsClusterRef"]["account"] = json!("B");
        elsewhere["spec"]["replicas"] = json!(3);
        elsewhere["spec"]["maxBytes"] = json!(-1);
        assert_eq!(validate(&elsewhere, None, Some(&known)), Ok(vec![]));
        // A cluster the cache does not hold: a warning, the asset waits.
        let mut missing = elsewhere.clone();
        missing["spec"]["natsClusterRef"]["name"] = json!("later");
        let warnings = validate(&missing, None, Some(&known)).unwrap_or_default();
        assert!(
            warnings[0].contains("\"later\" does not exist"),
            "{warnings:?}"
        );
    }

    #[test]
    fn immutable_fields_and_bad_values_are_denied_unchanged_specs_pass() {
        let old = object(
            "Stream",
            "s",
            json!({"name": "S", "subjects": ["s"], "storage": "file"}),
        );
        let mut new = old.clone();
        new["spec"]["storage"] = json!("memory");
        new["spec"]["maxAge"] = json!("1 hour");
        assert_eq!(
            fields(validate(&new, Some(&old), None)),
            ["spec.maxAge", "spec.storage"]
        );
        let mut relabelled = old.clone();
        relabelled["metadata"]["finalizers"] = json!(["stream.nats.io/finalizer"]);
        assert_eq!(validate(&relabelled, Some(&old), None), Ok(vec![]));
        let kv = object("KeyValue", "kv", json!({"bucket": "bad.name"}));
        assert_eq!(fields(validate(&kv, None, None)), ["spec.bucket"]);
    }

    #[test]
    fn a_consumer_without_its_stream_object_is_a_warning() {
        let known = Known::default();
        let c = object(
            "Consumer",
            "c",
            json!({"streamName": "ORDERS", "durableName": "c", "ackPolicy": "explicit"}),
        );
        let warnings = validate(&c, None, Some(&known)).unwrap_or_default();
        assert!(warnings[0].starts_with("spec.streamName"), "{warnings:?}");
        let mut change = c.clone();
        change["spec"]["deliverPolicy"] = json!("new");
        assert_eq!(
            fields(validate(&change, Some(&c), None)),
            ["spec.deliverPolicy"]
        );
    }
}
