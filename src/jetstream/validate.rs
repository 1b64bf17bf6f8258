//! Admission rules of the `jetstream.nats.io` kinds that need no cluster: what the
//! server could not do with an update (a field it cannot change), how an asset connects,
//! and whether two streams' subjects overlap. Pure; the webhook adds what the cache knows.

use super::v1beta2::{
    Connection, ConsumerSpec, KeyValueSpec, ObjectStoreSpec, Retention, StreamSpec,
};
use crate::api::field::FieldError;

/// `field` changed from `old` to `new`, which the server cannot do.
fn needs_new_object(field: &str, old: &str, new: &str, kind: &str, what: &str) -> FieldError {
    FieldError::forbidden(
        field,
        format!(
            "cannot change from {old:?} to {new:?}: {what}; create a new {kind} (with a new \
             name) and delete this one"
        ),
    )
}

/// A one-way switch (`sealed`, `denyDelete`, ...) turned back off.
fn one_way(field: &str, old: bool, new: bool, kind: &str) -> Option<FieldError> {
    (old && !new).then(|| {
        FieldError::forbidden(
            field,
            format!(
                "cannot be turned off once on: the server keeps it; create a new {kind} to \
                 be without it"
            ),
        )
    })
}

/// Where an asset is: the cluster it names, or its servers and account.
fn same_place(old: &Connection, new: &Connection, kind: &str, errors: &mut Vec<FieldError>) {
    let name = |c: &Connection| {
        c.nats_cluster_ref.as_ref().map(|r| match &r.account {
            Some(a) => format!("{} (account {a})", r.name),
            None => r.name.clone(),
        })
    };
    if name(old) != name(new) {
        errors.push(needs_new_object(
            "spec.natsClusterRef",
            &name(old).unwrap_or_default(),
            &name(new).unwrap_or_default(),
            kind,
            "the asset lives on the servers of the cluster it was made on",
        ));
    }
    if old.js_domain != new.js_domain {
        errors.push(needs_new_object(
            "spec.jsDomain",
            old.js_domain.as_deref().unwrap_or_default(),
            new.js_domain.as_deref().unwrap_or_default(),
            kind,
            "the asset lives in the domain it was made in",
        ));
    }
}

/// How an asset connects: at most one of `natsClusterRef` and NACK's connection fields.
/// Neither is fine, as in NACK: the operator's default connection is used (see
/// [`super::connect`]).
pub fn connection(c: &Connection) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if c.nats_cluster_ref.is_some() {
        for (field, set) in [
            ("spec.servers", !c.servers.is_empty()),
            (
                "spec.account",
                c.account.as_deref().is_some_and(|a| !a.is_empty()),
            ),
            ("spec.creds", !c.creds.is_empty()),
            ("spec.nkey", !c.nkey.is_empty()),
            ("spec.tls", c.tls.is_some()),
        ] {
            if set {
                errors.push(FieldError::forbidden(
                    field,
                    "the operator connects to spec.natsClusterRef with its own identity: \
                     remove this field, or remove spec.natsClusterRef to connect to servers \
                     the operator does not manage",
                ));
            }
        }
        if c.nats_cluster_ref
            .as_ref()
            .is_some_and(|r| r.name.is_empty())
        {
            errors.push(FieldError::required(
                "spec.natsClusterRef.name",
                "the name of a NatsCluster in this namespace",
            ));
        }
    }
    errors
}

/// An update of a Stream: the fields nats-server refuses to change.
pub fn stream_update(old: &StreamSpec, new: &StreamSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let kind = "Stream";
    if old.name != new.name {
        errors.push(needs_new_object(
            "spec.name",
            &old.name,
            &new.name,
            kind,
            "a stream cannot be renamed",
        ));
    }
    if old.storage != new.storage {
        errors.push(needs_new_object(
            "spec.storage",
            old.storage.as_str(),
            new.storage.as_str(),
            kind,
            "the server cannot move a stream between file and memory storage",
        ));
    }
    let work_queue = |r: Retention| r == Retention::WorkQueue;
    if old.retention != new.retention && (work_queue(old.retention) || work_queue(new.retention)) {
        errors.push(needs_new_object(
            "spec.retention",
            old.retention.as_str(),
            new.retention.as_str(),
            kind,
            "retention cannot change to or from workqueue",
        ));
    }
    match (&old.mirror, &new.mirror) {
        (Some(o), Some(n)) if o != n => errors.push(FieldError::forbidden(
            "spec.mirror",
            "a mirror's origin cannot change (removing spec.mirror promotes the mirror to a \
             stream); create a new Stream to mirror another origin",
        )),
        (None, Some(_)) => errors.push(FieldError::forbidden(
            "spec.mirror",
            "a stream cannot become a mirror; create a new Stream",
        )),
        _ => {}
    }
    for (field, o, n) in [
        ("spec.sealed", old.sealed, new.sealed),
        ("spec.denyDelete", old.deny_delete, new.deny_delete),
        ("spec.denyPurge", old.deny_purge, new.deny_purge),
        ("spec.allowMsgTtl", old.allow_msg_ttl, new.allow_msg_ttl),
        (
            "spec.allowMsgSchedules",
            old.allow_msg_schedules,
            new.allow_msg_schedules,
        ),
    ] {
        errors.extend(one_way(field, o, n, kind));
    }
    if old.allow_msg_counter != new.allow_msg_counter {
        errors.push(needs_new_object(
            "spec.allowMsgCounter",
            &old.allow_msg_counter.to_string(),
            &new.allow_msg_counter.to_string(),
            kind,
            "a stream is a counter stream from its creation or never",
        ));
    }
    if old.persist_mode != new.persist_mode {
        errors.push(needs_new_object(
            "spec.persistMode",
            old.persist_mode.as_str(),
            new.persist_mode.as_str(),
            kind,
            "the server cannot change how a stream persists",
        ));
    }
    same_place(&old.connection, &new.connection, kind, &mut errors);
    errors
}

/// An update of a Consumer: the fields nats-server refuses to change.
pub fn consumer_update(old: &ConsumerSpec, new: &ConsumerSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let kind = "Consumer";
    let text = |o: &Option<String>| o.clone().unwrap_or_default();
    let number = |o: Option<i64>| o.map(|n| n.to_string()).unwrap_or_default();
    let fixed: [(&str, String, String, &str); 11] = [
        (
            "spec.streamName",
            old.stream_name.clone(),
            new.stream_name.clone(),
            "a consumer belongs to the stream it was made on",
        ),
        (
            "spec.durableName",
            old.durable_name.clone(),
            new.durable_name.clone(),
            "the durable name is the consumer's identity",
        ),
        (
            "spec.deliverPolicy",
            old.deliver_policy.as_str().into(),
            new.deliver_policy.as_str().into(),
            "where a consumer starts is fixed at its creation",
        ),
        (
            "spec.optStartSeq",
            old.opt_start_seq.map(|n| n.to_string()).unwrap_or_default(),
            new.opt_start_seq.map(|n| n.to_string()).unwrap_or_default(),
            "where a consumer starts is fixed at its creation",
        ),
        (
            "spec.optStartTime",
            text(&old.opt_start_time),
            text(&new.opt_start_time),
            "where a consumer starts is fixed at its creation",
        ),
        (
            "spec.ackPolicy",
            old.ack_policy.as_str().into(),
            new.ack_policy.as_str().into(),
            "the server cannot change a consumer's ack policy",
        ),
        (
            "spec.replayPolicy",
            old.replay_policy.as_str().into(),
            new.replay_policy.as_str().into(),
            "the server cannot change a consumer's replay policy",
        ),
        (
            "spec.heartbeatInterval",
            text(&old.heartbeat_interval),
            text(&new.heartbeat_interval),
            "the server cannot change a push consumer's heartbeat",
        ),
        (
            "spec.maxWaiting",
            number(old.max_waiting),
            number(new.max_waiting),
            "the server cannot change a pull consumer's max waiting",
        ),
        (
            "spec.memStorage",
            old.mem_storage.to_string(),
            new.mem_storage.to_string(),
            "the server cannot move a consumer's state between file and memory",
        ),
        (
            "spec.flowControl",
            old.flow_control.to_string(),
            new.flow_control.to_string(),
            "the server cannot change a push consumer's flow control",
        ),
    ];
    for (field, o, n, what) in fixed {
        if o != n {
            errors.push(needs_new_object(field, &o, &n, kind, what));
        }
    }
    let push = |c: &ConsumerSpec| c.deliver_subject.as_deref().is_some_and(|d| !d.is_empty());
    if push(old) != push(new) {
        errors.push(FieldError::forbidden(
            "spec.deliverSubject",
            "a consumer cannot change between push (deliverSubject set) and pull; create a \
             new Consumer (with a new durableName) and delete this one",
        ));
    }
    same_place(&old.connection, &new.connection, kind, &mut errors);
    errors
}

/// An update of a KeyValue: the fields nats-server refuses to change.
pub fn key_value_update(old: &KeyValueSpec, new: &KeyValueSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    bucket_update(
        "KeyValue",
        (&old.bucket, &new.bucket),
        (old.storage, new.storage),
        &mut errors,
    );
    same_place(&old.connection, &new.connection, "KeyValue", &mut errors);
    errors
}

/// An update of an ObjectStore: the fields nats-server refuses to change.
pub fn object_store_update(old: &ObjectStoreSpec, new: &ObjectStoreSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    bucket_update(
        "ObjectStore",
        (&old.bucket, &new.bucket),
        (old.storage, new.storage),
        &mut errors,
    );
    same_place(&old.connection, &new.connection, "ObjectStore", &mut errors);
    errors
}

fn bucket_update(
    kind: &str,
    bucket: (&str, &str),
    storage: (
        Option<super::v1beta2::Storage>,
        Option<super::v1beta2::Storage>,
    ),
    errors: &mut Vec<FieldError>,
) {
    if bucket.0 != bucket.1 {
        errors.push(needs_new_object(
            "spec.bucket",
            bucket.0,
            bucket.1,
            kind,
            "a bucket cannot be renamed",
        ));
    }
    let file = super::v1beta2::Storage::File;
    let (o, n) = (storage.0.unwrap_or(file), storage.1.unwrap_or(file));
    if o != n {
        errors.push(needs_new_object(
            "spec.storage",
            o.as_str(),
            n.as_str(),
            kind,
            "the server cannot move a bucket between file and memory storage",
        ));
    }
}

/// Whether some subject matches both NATS subject filters `a` and `b` (tokens split at
/// `.`, `*` one token, `>` one or more trailing tokens).
pub fn subjects_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(x), Some(y)) if *x == "*" || *y == "*" || x == y => i += 1,
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// What an asset asks of the NatsCluster it names (`spec.natsClusterRef`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asks {
    /// Replicas.
    pub replicas: i64,
    /// Storage.
    pub storage: super::v1beta2::Storage,
    /// `maxBytes` (-1 or 0: no limit).
    pub max_bytes: i64,
}

/// Whether the NatsCluster `name` (its spec `cluster`) can hold what `asks` asks: it has
/// JetStream, at least as many members as replicas, and a store per member at least
/// `maxBytes` large.
pub fn fits_cluster(
    asks: Asks,
    name: &str,
    cluster: &crate::api::v1beta1::NatsClusterSpec,
) -> Vec<FieldError> {
    use super::v1beta2::Storage;
    let mut errors = Vec::new();
    let Some(js) = cluster.jetstream.as_ref().filter(|j| j.is_enabled()) else {
        errors.push(FieldError::invalid(
            "spec.natsClusterRef.name",
            name,
            format!("NatsCluster {name} has no JetStream: add spec.jetstream to it first"),
        ));
        return errors;
    };
    if asks.replicas > i64::from(cluster.size) {
        errors.push(FieldError::invalid(
            "spec.replicas",
            asks.replicas,
            format!(
                "NatsCluster {name} has {} members: at most {} replicas",
                cluster.size, cluster.size
            ),
        ));
    }
    let (store, limit) = match asks.storage {
        Storage::File => (
            "file storage (spec.jetstream.fileStorage.size)",
            js.file_storage.as_ref().and_then(|f| f.size.as_ref()),
        ),
        Storage::Memory => (
            "memory storage (spec.jetstream.memoryStorage)",
            js.memory_storage.as_ref(),
        ),
    };
    if let Some(limit) = limit
        && let Some(bytes) = crate::api::names::parse_quantity(&limit.0)
        && asks.max_bytes > 0
        && (asks.max_bytes as f64) > bytes
    {
        errors.push(FieldError::invalid(
            "spec.maxBytes",
            asks.max_bytes,
            format!(
                "above the {store} of each member of NatsCluster {name}: {}",
                limit.0
            ),
        ));
    }
    errors
}
