//! What the JetStream API is sent for each asset: the stream or consumer configuration
//! (nats-server's JSON names) computed from a `v1beta2` spec. Pure; a value the server
//! would refuse, or that cannot be read (a Go duration, an RFC 3339 time), is a
//! [`FieldError`] naming the spec field, so the webhook refuses it at `kubectl apply` and
//! the controller never sends it.
//!
//! Only what the spec sets is sent; the server fills in its defaults, and the drift check
//! compares the fields sent (see [`differences`]).

use serde_json::{Map, Value, json};

use super::v1beta2::{
    ConsumerSpec, DeliverPolicy, KeyValueSpec, ObjectStoreSpec, Placement, PriorityPolicy,
    RePublish, StreamSource, StreamSpec, SubjectTransform,
};
use crate::api::field::FieldError;

/// Most values a KV bucket keeps per key (nats.go's `KeyValueMaxHistory`).
pub const KV_MAX_HISTORY: i64 = 64;
/// nats-server's largest replica count.
pub const MAX_REPLICAS: i64 = 5;
/// NACK's CRD default for `ackWait`: sent as is it would redeliver after a nanosecond,
/// so it is read as "not set" (the server's 30 s).
pub const NACK_DEFAULT_ACK_WAIT: &str = "1ns";

/// The stream `KV_<bucket>` holds a KV bucket.
pub fn kv_stream_name(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// The stream `OBJ_<bucket>` holds an object store.
pub fn object_stream_name(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// Collects field errors while a configuration is built.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    /// Nanoseconds of a Go duration at `field` (`None` when empty).
    fn duration(&mut self, field: &str, value: &str) -> Option<i64> {
        if value.is_empty() {
            return None;
        }
        match crate::api::duration::parse(value).and_then(|d| i64::try_from(d.as_nanos()).ok()) {
            Some(n) => Some(n),
            None => {
                self.0.push(FieldError::invalid(
                    field,
                    value,
                    "must be a Go duration such as 90s, 1h30m or 250ms (units ns, us, ms, s, m, h)",
                ));
                None
            }
        }
    }

    /// An RFC 3339 time at `field`, normalised as the server writes it.
    fn time(&mut self, field: &str, value: &str) -> Option<String> {
        match value.parse::<k8s_openapi::jiff::Timestamp>() {
            Ok(t) => Some(t.to_string()),
            Err(_) => {
                self.0.push(FieldError::invalid(
                    field,
                    value,
                    "must be an RFC 3339 time such as 2026-01-02T15:04:05Z",
                ));
                None
            }
        }
    }

    fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    fn finish(self, v: Map<String, Value>) -> Result<Value, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(Value::Object(v))
        } else {
            Err(self.0)
        }
    }
}

/// A stream name the server accepts (no `.`, `*`, `>`, whitespace or path separators).
pub fn stream_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 255 {
        Some("must be at most 255 characters")
    } else if name
        .chars()
        .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        Some("must not contain '.', '*', '>', '/', '\\' or whitespace")
    } else {
        None
    }
}

/// A KV or object-store bucket name nats.go accepts (`^[a-zA-Z0-9_-]+$`).
pub fn bucket_problem(bucket: &str) -> Option<&'static str> {
    if bucket.is_empty() {
        Some("must not be empty")
    } else if !bucket
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Some("may contain only letters, digits, '_' and '-'")
    } else {
        None
    }
}

fn put(v: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    v.insert(key.to_string(), value.into());
}

fn placement(p: &Placement) -> Value {
    let mut v = Map::new();
    put(&mut v, "cluster", p.cluster.clone());
    if !p.tags.is_empty() {
        put(&mut v, "tags", p.tags.clone());
    }
    Value::Object(v)
}

fn transform(t: &SubjectTransform) -> Value {
    json!({"src": t.source, "dest": t.dest})
}

fn republish(r: &RePublish) -> Value {
    let mut v = json!({"src": r.source, "dest": r.destination});
    if r.headers_only {
        v["headers_only"] = true.into();
    }
    v
}

/// NACK's limits mean "no limit" at 0 as at -1; the server stores -1 (2.10 and later
/// rewrite a 0), so -1 is sent and read back alike.
fn limit(n: i64) -> i64 {
    if n <= 0 { -1 } else { n }
}

fn source(e: &mut Errors, field: &str, s: &StreamSource) -> Value {
    let mut v = Map::new();
    put(&mut v, "name", s.name.clone());
    if let Some(seq) = s.opt_start_seq.filter(|s| *s > 0) {
        put(&mut v, "opt_start_seq", seq);
    }
    if let Some(t) = s.opt_start_time.as_deref().filter(|t| !t.is_empty())
        && let Some(t) = e.time(&format!("{field}.optStartTime"), t)
    {
        put(&mut v, "opt_start_time", t);
    }
    if let Some(f) = s.filter_subject.as_deref().filter(|f| !f.is_empty()) {
        put(&mut v, "filter_subject", f);
    }
    let api = s.external_api_prefix.as_deref().unwrap_or_default();
    let deliver = s.external_deliver_prefix.as_deref().unwrap_or_default();
    if !api.is_empty() || !deliver.is_empty() {
        put(&mut v, "external", json!({"api": api, "deliver": deliver}));
    }
    if !s.subject_transforms.is_empty() {
        let t: Vec<Value> = s.subject_transforms.iter().map(transform).collect();
        put(&mut v, "subject_transforms", t);
    }
    if s.name.is_empty() {
        e.push(FieldError::required(
            format!("{field}.name"),
            "the origin stream's name",
        ));
    }
    Value::Object(v)
}

/// The configuration of `$JS.API.STREAM.CREATE.<name>` (and `UPDATE`) for a Stream.
pub fn stream(spec: &StreamSpec) -> Result<Value, Vec<FieldError>> {
    let mut e = Errors::default();
    let mut v = Map::new();
    if let Some(p) = stream_name_problem(&spec.name) {
        e.push(FieldError::invalid("spec.name", spec.name.as_str(), p));
    }
    put(&mut v, "name", spec.name.clone());
    if let Some(d) = spec.description.as_deref().filter(|d| !d.is_empty()) {
        put(&mut v, "description", d);
    }
    if !spec.subjects.is_empty() {
        put(&mut v, "subjects", spec.subjects.clone());
    }
    put(&mut v, "retention", spec.retention.server());
    put(&mut v, "max_consumers", limit(spec.max_consumers));
    put(&mut v, "max_msgs", limit(spec.max_msgs));
    put(&mut v, "max_bytes", limit(spec.max_bytes));
    put(
        &mut v,
        "max_msgs_per_subject",
        limit(spec.max_msgs_per_subject),
    );
    match i32::try_from(limit(spec.max_msg_size)) {
        Ok(size) => put(&mut v, "max_msg_size", size),
        Err(_) => e.push(FieldError::invalid(
            "spec.maxMsgSize",
            spec.max_msg_size,
            "must fit a 32-bit integer (at most 2147483647 bytes)",
        )),
    }
    if let Some(age) = e.duration("spec.maxAge", &spec.max_age) {
        put(&mut v, "max_age", age);
    }
    put(&mut v, "storage", spec.storage.server());
    put(&mut v, "discard", spec.discard.server());
    replicas(&mut e, &mut v, spec.replicas);
    if spec.no_ack {
        put(&mut v, "no_ack", true);
    }
    if let Some(w) = spec.duplicate_window.as_deref()
        && let Some(w) = e.duration("spec.duplicateWindow", w)
    {
        put(&mut v, "duplicate_window", w);
    }
    if let Some(p) = &spec.placement {
        put(&mut v, "placement", placement(p));
    }
    if let Some(m) = &spec.mirror {
        put(&mut v, "mirror", source(&mut e, "spec.mirror", m));
        if !spec.subjects.is_empty() {
            e.push(FieldError::forbidden(
                "spec.subjects",
                "a mirror stores its origin's subjects: remove spec.subjects or spec.mirror",
            ));
        }
        if !spec.sources.is_empty() {
            e.push(FieldError::forbidden(
                "spec.sources",
                "a mirror cannot also have sources",
            ));
        }
    }
    if !spec.sources.is_empty() {
        let s: Vec<Value> = spec
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| source(&mut e, &format!("spec.sources[{i}]"), s))
            .collect();
        put(&mut v, "sources", s);
    }
    if !spec.compression.server().is_empty() {
        put(&mut v, "compression", spec.compression.server());
    }
    if let Some(t) = &spec.subject_transform {
        put(&mut v, "subject_transform", transform(t));
    }
    if let Some(r) = &spec.republish {
        put(&mut v, "republish", republish(r));
    }
    for (key, on) in [
        ("sealed", spec.sealed),
        ("deny_delete", spec.deny_delete),
        ("deny_purge", spec.deny_purge),
        ("allow_direct", spec.allow_direct),
        ("allow_rollup_hdrs", spec.allow_rollup),
        ("mirror_direct", spec.mirror_direct),
        ("discard_new_per_subject", spec.discard_per_subject),
        ("allow_msg_ttl", spec.allow_msg_ttl),
        ("allow_msg_counter", spec.allow_msg_counter),
        ("allow_atomic", spec.allow_atomic_publish),
        ("allow_msg_schedules", spec.allow_msg_schedules),
    ] {
        if on {
            put(&mut v, key, true);
        }
    }
    if spec.discard_per_subject
        && (spec.discard != super::v1beta2::Discard::New || spec.max_msgs_per_subject <= 0)
    {
        e.push(FieldError::invalid(
            "spec.discardPerSubject",
            true,
            "needs discard: new and maxMsgsPerSubject above 0",
        ));
    }
    if spec.first_sequence > 0 {
        put(&mut v, "first_seq", spec.first_sequence);
    }
    if !spec.metadata.is_empty() {
        put(&mut v, "metadata", json!(spec.metadata));
    }
    if let Some(l) = &spec.consumer_limits {
        let mut limits = Map::new();
        if let Some(t) = l.inactive_threshold.as_deref()
            && let Some(t) = e.duration("spec.consumerLimits.inactiveThreshold", t)
        {
            put(&mut limits, "inactive_threshold", t);
        }
        if let Some(n) = l.max_ack_pending {
            put(&mut limits, "max_ack_pending", n);
        }
        put(&mut v, "consumer_limits", Value::Object(limits));
    }
    if let Some(ttl) = e.duration(
        "spec.subjectDeleteMarkerTtl",
        &spec.subject_delete_marker_ttl,
    ) {
        put(&mut v, "subject_delete_marker_ttl", ttl);
    }
    if !spec.persist_mode.server().is_empty() {
        put(&mut v, "persist_mode", spec.persist_mode.server());
    }
    e.finish(v)
}

/// The configuration of `$JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable>` for a
/// Consumer.
pub fn consumer(spec: &ConsumerSpec) -> Result<Value, Vec<FieldError>> {
    let mut e = Errors::default();
    let mut v = Map::new();
    if let Some(p) = stream_name_problem(&spec.stream_name) {
        e.push(FieldError::invalid(
            "spec.streamName",
            spec.stream_name.as_str(),
            p,
        ));
    }
    if let Some(p) = stream_name_problem(&spec.durable_name) {
        e.push(FieldError::invalid(
            "spec.durableName",
            spec.durable_name.as_str(),
            p,
        ));
    }
    put(&mut v, "durable_name", spec.durable_name.clone());
    if let Some(d) = spec.description.as_deref().filter(|d| !d.is_empty()) {
        put(&mut v, "description", d);
    }
    put(&mut v, "deliver_policy", spec.deliver_policy.server());
    match spec.deliver_policy {
        DeliverPolicy::ByStartSequence => match spec.opt_start_seq {
            Some(seq) if seq > 0 => put(&mut v, "opt_start_seq", seq),
            _ => e.push(FieldError::required(
                "spec.optStartSeq",
                "deliverPolicy byStartSequence needs the first sequence",
            )),
        },
        DeliverPolicy::ByStartTime => match spec.opt_start_time.as_deref() {
            Some(t) if !t.is_empty() => {
                if let Some(t) = e.time("spec.optStartTime", t) {
                    put(&mut v, "opt_start_time", t);
                }
            }
            _ => e.push(FieldError::required(
                "spec.optStartTime",
                "deliverPolicy byStartTime needs the first time",
            )),
        },
        _ => {}
    }
    put(&mut v, "ack_policy", spec.ack_policy.server());
    if spec.ack_wait != NACK_DEFAULT_ACK_WAIT
        && let Some(w) = e.duration("spec.ackWait", &spec.ack_wait)
    {
        put(&mut v, "ack_wait", w);
    }
    if let Some(n) = spec.max_deliver {
        if n == 0 {
            e.push(FieldError::invalid(
                "spec.maxDeliver",
                0,
                "0 would prevent every delivery: use -1 for no limit",
            ));
        }
        put(&mut v, "max_deliver", n);
    }
    if !spec.backoff.is_empty() {
        let steps: Vec<i64> = spec
            .backoff
            .iter()
            .enumerate()
            .filter_map(|(i, b)| e.duration(&format!("spec.backoff[{i}]"), b))
            .collect();
        if let Some(n) = spec.max_deliver.filter(|n| *n > 0)
            && i64::try_from(spec.backoff.len()).unwrap_or(i64::MAX) > n
        {
            e.push(FieldError::invalid(
                "spec.backoff",
                spec.backoff.len(),
                format!("has more steps than maxDeliver ({n})"),
            ));
        }
        // The server waits the first step for the first ack and keeps it as `ack_wait`,
        // whatever `ackWait` says: send what it will hold, or every drift check would
        // see a difference.
        if let Some(first) = steps.first() {
            put(&mut v, "ack_wait", *first);
        }
        put(&mut v, "backoff", steps);
    }
    match (
        spec.filter_subject.as_deref(),
        spec.filter_subjects.is_empty(),
    ) {
        (Some(f), false) if !f.is_empty() => e.push(FieldError::forbidden(
            "spec.filterSubjects",
            "set filterSubject or filterSubjects, not both",
        )),
        (Some(f), true) if !f.is_empty() => put(&mut v, "filter_subject", f),
        _ => {}
    }
    if !spec.filter_subjects.is_empty() {
        put(&mut v, "filter_subjects", spec.filter_subjects.clone());
    }
    if spec.deliver_policy == DeliverPolicy::LastPerSubject
        && !v.contains_key("filter_subject")
        && !v.contains_key("filter_subjects")
    {
        e.push(FieldError::required(
            "spec.filterSubject",
            "deliverPolicy lastPerSubject needs filterSubject or filterSubjects (the server \
             refuses it without)",
        ));
    }
    put(&mut v, "replay_policy", spec.replay_policy.server());
    if let Some(f) = spec.sample_freq.as_deref().filter(|f| !f.is_empty()) {
        let percent = f.strip_suffix('%').unwrap_or(f);
        match percent.parse::<u8>() {
            Ok(p) if p <= 100 => put(&mut v, "sample_freq", format!("{p}%")),
            _ => e.push(FieldError::invalid(
                "spec.sampleFreq",
                f,
                "must be a percentage from 0 to 100, such as 50 or 50%",
            )),
        }
    }
    for (key, value) in [
        ("max_waiting", spec.max_waiting),
        ("rate_limit_bps", spec.rate_limit_bps),
        ("max_ack_pending", spec.max_ack_pending),
        ("max_batch", spec.max_request_batch),
        ("max_bytes", spec.max_request_max_bytes),
        ("num_replicas", spec.replicas),
    ] {
        if let Some(n) = value.filter(|n| *n != 0) {
            put(&mut v, key, n);
        }
    }
    if let Some(d) = spec.deliver_subject.as_deref().filter(|d| !d.is_empty()) {
        put(&mut v, "deliver_subject", d);
        if let Some(g) = spec.deliver_group.as_deref().filter(|g| !g.is_empty()) {
            put(&mut v, "deliver_group", g);
        }
    } else {
        if spec.flow_control {
            e.push(FieldError::forbidden(
                "spec.flowControl",
                "flow control is for push consumers: set spec.deliverSubject",
            ));
        }
        if spec
            .heartbeat_interval
            .as_deref()
            .is_some_and(|h| !h.is_empty())
        {
            e.push(FieldError::forbidden(
                "spec.heartbeatInterval",
                "heartbeats are for push consumers: set spec.deliverSubject",
            ));
        }
    }
    if spec.flow_control {
        put(&mut v, "flow_control", true);
    }
    if spec.headers_only {
        put(&mut v, "headers_only", true);
    }
    if spec.mem_storage {
        put(&mut v, "mem_storage", true);
    }
    for (field, key, value) in [
        (
            "spec.heartbeatInterval",
            "idle_heartbeat",
            &spec.heartbeat_interval,
        ),
        (
            "spec.maxRequestExpires",
            "max_expires",
            &spec.max_request_expires,
        ),
        (
            "spec.inactiveThreshold",
            "inactive_threshold",
            &spec.inactive_threshold,
        ),
    ] {
        if let Some(d) = value.as_deref()
            && let Some(d) = e.duration(field, d)
        {
            put(&mut v, key, d);
        }
    }
    if !spec.metadata.is_empty() {
        put(&mut v, "metadata", json!(spec.metadata));
    }
    if !spec.pause_until.is_empty()
        && let Some(t) = e.time("spec.pauseUntil", &spec.pause_until)
    {
        put(&mut v, "pause_until", t);
    }
    if spec.priority_policy != PriorityPolicy::Unset {
        put(&mut v, "priority_policy", spec.priority_policy.server());
        if spec.priority_policy != PriorityPolicy::None && spec.priority_groups.is_empty() {
            e.push(FieldError::required(
                "spec.priorityGroups",
                format!(
                    "priorityPolicy {} needs a priority group",
                    spec.priority_policy
                ),
            ));
        }
    }
    if let Some(ttl) = e.duration("spec.pinnedTtl", &spec.pinned_ttl) {
        put(&mut v, "priority_timeout", ttl);
    }
    if !spec.priority_groups.is_empty() {
        put(&mut v, "priority_groups", spec.priority_groups.clone());
    }
    e.finish(v)
}

/// What a KV bucket and an object store have in common.
struct Bucket<'a> {
    bucket: &'a str,
    stream: String,
    subjects: Vec<String>,
    description: Option<&'a str>,
    ttl: Option<&'a str>,
    max_bytes: Option<i64>,
    storage: Option<super::v1beta2::Storage>,
    replicas: i64,
    compression: Option<bool>,
    placement: Option<&'a Placement>,
}

/// The stream of a bucket as nats.go makes it: limits retention, discard new, rollups
/// and direct gets allowed, explicit `-1` limits, file storage unless memory is asked.
/// Returns the configuration and the TTL in nanoseconds.
fn bucket_stream(e: &mut Errors, b: Bucket<'_>) -> (Map<String, Value>, i64) {
    let mut v = Map::new();
    if let Some(p) = bucket_problem(b.bucket) {
        e.push(FieldError::invalid("spec.bucket", b.bucket, p));
    }
    let ttl = b.ttl.and_then(|t| e.duration("spec.ttl", t)).unwrap_or(0);
    put(&mut v, "name", b.stream);
    if let Some(d) = b.description.filter(|d| !d.is_empty()) {
        put(&mut v, "description", d);
    }
    put(&mut v, "subjects", b.subjects);
    put(&mut v, "retention", "limits");
    put(&mut v, "max_age", ttl);
    put(
        &mut v,
        "max_bytes",
        b.max_bytes.filter(|n| *n != 0).unwrap_or(-1),
    );
    let storage = b.storage.unwrap_or(super::v1beta2::Storage::File);
    put(&mut v, "storage", storage.server());
    put(&mut v, "discard", "new");
    replicas(e, &mut v, b.replicas);
    put(&mut v, "allow_rollup_hdrs", true);
    put(&mut v, "allow_direct", true);
    // nats.go sends "none" too; servers before 2.10 know no compression and would show
    // a difference from it forever.
    if b.compression == Some(true) {
        put(&mut v, "compression", "s2");
    }
    if let Some(p) = b.placement {
        put(&mut v, "placement", placement(p));
    }
    (v, ttl)
}

/// The stream configuration of a KeyValue bucket, as nats.go's `CreateKeyValue` builds it.
pub fn key_value(spec: &KeyValueSpec) -> Result<Value, Vec<FieldError>> {
    let mut e = Errors::default();
    let (mut v, ttl) = bucket_stream(
        &mut e,
        Bucket {
            bucket: &spec.bucket,
            stream: kv_stream_name(&spec.bucket),
            subjects: vec![format!("$KV.{}.>", spec.bucket)],
            description: spec.description.as_deref(),
            ttl: spec.ttl.as_deref(),
            max_bytes: spec.max_bytes,
            storage: spec.storage,
            replicas: spec.replicas,
            compression: spec.compression,
            placement: spec.placement.as_ref(),
        },
    );
    let history = spec.history.filter(|h| *h > 0).unwrap_or(1);
    if history > KV_MAX_HISTORY {
        e.push(FieldError::invalid(
            "spec.history",
            history,
            format!("must be at most {KV_MAX_HISTORY}"),
        ));
    }
    put(&mut v, "max_consumers", -1);
    put(&mut v, "max_msgs", -1);
    put(&mut v, "max_msgs_per_subject", history);
    let max_value = spec.max_value_size.filter(|n| *n != 0).unwrap_or(-1);
    put(&mut v, "max_msg_size", max_value);
    // nats.go: the duplicate window is the TTL when shorter than 2 minutes.
    let two_minutes = 120_000_000_000;
    let window = if ttl > 0 && ttl < two_minutes {
        ttl
    } else {
        two_minutes
    };
    put(&mut v, "duplicate_window", window);
    put(&mut v, "deny_delete", true);
    if let Some(r) = &spec.republish {
        put(&mut v, "republish", republish(r));
    }
    if let Some(ttl) = spec.limit_marker_ttl.filter(|t| *t != 0) {
        put(&mut v, "allow_msg_ttl", true);
        put(&mut v, "subject_delete_marker_ttl", ttl);
    }
    if let Some(m) = &spec.mirror {
        let mut m = m.clone();
        if !m.name.starts_with("KV_") {
            m.name = kv_stream_name(&m.name);
        }
        put(&mut v, "mirror", source(&mut e, "spec.mirror", &m));
        put(&mut v, "mirror_direct", true);
        v.remove("subjects");
    } else if !spec.sources.is_empty() {
        let mut sources = Vec::new();
        for (i, s) in spec.sources.iter().enumerate() {
            let mut s = s.clone();
            if s.subject_transforms.is_empty() {
                let origin = s.name.strip_prefix("KV_").unwrap_or(&s.name).to_string();
                s.name = kv_stream_name(&origin);
                let external =
                    s.external_api_prefix.is_some() || s.external_deliver_prefix.is_some();
                if !external || origin != spec.bucket {
                    s.subject_transforms = vec![SubjectTransform {
                        source: format!("$KV.{origin}.>"),
                        dest: format!("$KV.{}.>", spec.bucket),
                    }];
                }
            }
            sources.push(source(&mut e, &format!("spec.sources[{i}]"), &s));
        }
        put(&mut v, "sources", sources);
    }
    e.finish(v)
}

/// The stream configuration of an ObjectStore, as nats.go's `CreateObjectStore` builds it.
pub fn object_store(spec: &ObjectStoreSpec) -> Result<Value, Vec<FieldError>> {
    let mut e = Errors::default();
    let (mut v, _) = bucket_stream(
        &mut e,
        Bucket {
            bucket: &spec.bucket,
            stream: object_stream_name(&spec.bucket),
            subjects: vec![
                format!("$O.{}.C.>", spec.bucket),
                format!("$O.{}.M.>", spec.bucket),
            ],
            description: spec.description.as_deref(),
            ttl: spec.ttl.as_deref(),
            max_bytes: spec.max_bytes,
            storage: spec.storage,
            replicas: spec.replicas,
            compression: spec.compression,
            placement: spec.placement.as_ref(),
        },
    );
    if !spec.metadata.is_empty() {
        put(&mut v, "metadata", json!(spec.metadata));
    }
    e.finish(v)
}

fn replicas(e: &mut Errors, v: &mut Map<String, Value>, replicas: i64) {
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        e.push(FieldError::invalid(
            "spec.replicas",
            replicas,
            format!("must be between 1 and {MAX_REPLICAS}"),
        ));
    }
    put(v, "num_replicas", replicas);
}

/// The fields of `wanted` (a configuration built here) whose value on the server
/// (`actual`, the `config` of a stream or consumer info) differs, as
/// `(field, wanted, actual)`. Only the fields sent are compared: the server fills in
/// the rest with its defaults.
pub fn differences(wanted: &Value, actual: &Value) -> Vec<(String, Value, Value)> {
    let (Some(wanted), Some(actual)) = (wanted.as_object(), actual.as_object()) else {
        return Vec::new();
    };
    wanted
        .iter()
        .filter_map(|(k, w)| {
            let a = actual.get(k).cloned().unwrap_or(Value::Null);
            (!same(w, &a)).then(|| (k.clone(), w.clone(), a))
        })
        .collect()
}

/// Equal as the server means them: objects compare on the keys sent, and an unset
/// value equals its zero.
fn same(wanted: &Value, actual: &Value) -> bool {
    match (wanted, actual) {
        (Value::Object(w), Value::Object(a)) => w
            .iter()
            .all(|(k, v)| same(v, a.get(k).unwrap_or(&Value::Null))),
        (Value::Object(w), Value::Null) => w.values().all(|v| same(v, &Value::Null)),
        (Value::Array(w), Value::Array(a)) => {
            w.len() == a.len() && w.iter().zip(a).all(|(w, a)| same(w, a))
        }
        (Value::Array(w), Value::Null) => w.is_empty(),
        (Value::Bool(false), Value::Null) | (Value::Null, Value::Bool(false)) => true,
        (Value::String(s), Value::Null) | (Value::Null, Value::String(s)) => s.is_empty(),
        (Value::Number(n), Value::Null) | (Value::Null, Value::Number(n)) => {
            n.as_f64() == Some(0.0)
        }
        (Value::String(w), Value::String(a)) if w.contains('T') && a.contains('T') => {
            // Times: the server writes its own precision.
            match (
                w.parse::<k8s_openapi::jiff::Timestamp>(),
                a.parse::<k8s_openapi::jiff::Timestamp>(),
            ) {
                (Ok(w), Ok(a)) => w == a,
                _ => w == a,
            }
        }
        _ => wanted == actual,
    }
}
