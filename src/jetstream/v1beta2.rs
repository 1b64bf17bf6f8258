//! `jetstream.nats.io/v1beta2`: NACK's `Stream`, `Consumer`, `KeyValue`, `ObjectStore` and
//! `Account`, with NACK's field names, enums and defaults, so a NACK manifest reads the
//! same here. Written from NACK's published API (its CRDs and Go types), not copied.
//!
//! Two additions, both optional: `natsClusterRef` names one of our NatsClusters in the
//! same namespace (the operator connects with its own identity: no servers or
//! credentials in the manifest), and `mode` (`manage`, `adopt` or `observe`) says what the
//! operator may do to the server's asset.

// kube-derive expands each `printcolumn(...)` into attributes clippy sees as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::wire::wire_enum;
use crate::api::serde_util::{is_false, string_map};

wire_enum! {
    /// When the stream drops messages (`spec.retention`).
    Retention default Limits {
        /// At the limits.
        Limits = "limits" => "limits",
        /// Once every consumer has them.
        Interest = "interest" => "interest",
        /// Once one consumer has acknowledged them.
        WorkQueue = "workqueue" => "workqueue",
    }
}

wire_enum! {
    /// Where the stream keeps its messages (`spec.storage`; NACK's default is memory).
    Storage default Memory {
        /// On disk.
        File = "file" => "file",
        /// In memory.
        Memory = "memory" => "memory",
    }
}

wire_enum! {
    /// What a full stream discards (`spec.discard`).
    Discard default Old {
        /// The oldest messages.
        Old = "old" => "old",
        /// New messages are refused.
        New = "new" => "new",
    }
}

wire_enum! {
    /// Stream compression (`spec.compression`): `""` leaves the server's default.
    Compression default Unset {
        /// The server's default (none).
        Unset = "" => "",
        /// S2.
        S2 = "s2" => "s2",
        /// None.
        None = "none" => "none",
    }
}

wire_enum! {
    /// How the stream persists writes (`spec.persistMode`, nats-server 2.12+).
    PersistMode default Unset {
        /// The server's default.
        Unset = "" => "",
        /// Synchronous (the server's default).
        Default = "default" => "default",
        /// Asynchronous.
        Async = "async" => "async",
    }
}

wire_enum! {
    /// Where a consumer starts (`spec.deliverPolicy`).
    DeliverPolicy default All {
        /// The first message.
        All = "all" => "all",
        /// The last message.
        Last = "last" => "last",
        /// Messages stored from now on.
        New = "new" => "new",
        /// `optStartSeq`.
        ByStartSequence = "byStartSequence" => "by_start_sequence",
        /// `optStartTime`.
        ByStartTime = "byStartTime" => "by_start_time",
        /// The last message of each subject.
        LastPerSubject = "lastPerSubject" => "last_per_subject",
    }
}

wire_enum! {
    /// How a consumer's messages are acknowledged (`spec.ackPolicy`; NACK's default none).
    AckPolicy default None {
        /// Not at all.
        None = "none" => "none",
        /// One ack covers every earlier message.
        All = "all" => "all",
        /// Each message.
        Explicit = "explicit" => "explicit",
    }
}

wire_enum! {
    /// How fast a consumer replays (`spec.replayPolicy`).
    ReplayPolicy default Instant {
        /// As fast as possible.
        Instant = "instant" => "instant",
        /// At the pace they were stored.
        Original = "original" => "original",
    }
}

wire_enum! {
    /// A consumer's priority-group policy (`spec.priorityPolicy`, nats-server 2.11+).
    PriorityPolicy default Unset {
        /// None.
        Unset = "" => "",
        /// None.
        None = "none" => "none",
        /// One client is pinned.
        PinnedClient = "pinned_client" => "pinned_client",
        /// Overflow to waiting requests.
        Overflow = "overflow" => "overflow",
        /// By priority.
        Prioritized = "prioritized" => "prioritized",
    }
}

wire_enum! {
    /// What the operator may do to the server's asset (`spec.mode`; not in NACK).
    Mode default Manage {
        /// Create it, update it, put back what was changed out of band, re-create it
        /// when deleted (NACK's behaviour).
        Manage = "manage" => "manage",
        /// Take an existing asset over without re-creating it; then as `manage`.
        Adopt = "adopt" => "adopt",
        /// Never write: report the server's view and any difference in status.
        Observe = "observe" => "observe",
    }
}

fn unlimited() -> i64 {
    -1
}

fn one() -> i64 {
    1
}

fn is_unset<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One of our NatsClusters in the asset's namespace, and the NATS account there.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ClusterRef {
    /// The NatsCluster's `metadata.name`.
    pub name: String,
    /// The NATS account that holds the asset, for clusters with accounts (the account's
    /// name in the cluster's config); unset: the global account `$G`, where clients of an
    /// open cluster or of `authorization.users` are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// NACK's client TLS files, mounted in the controller's pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientTls {
    /// Client certificate file.
    #[serde(default)]
    pub client_cert: String,
    /// Client key file.
    #[serde(default)]
    pub client_key: String,
    /// CA files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_cas: Vec<String>,
}

/// How the operator reaches the server that holds the asset, and what it may do there;
/// inline in every asset's `spec`. NACK's fields, and `natsClusterRef`/`mode`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Keep the server's asset when this object is deleted.
    #[serde(default)]
    pub prevent_delete: bool,
    /// Create the asset if it is missing, never change it.
    #[serde(default)]
    pub prevent_update: bool,
    /// What the operator may do to the asset: `manage` (the default), `adopt` or
    /// `observe`.
    #[serde(default, skip_serializing_if = "is_unset")]
    pub mode: Mode,
    /// The NatsCluster in this namespace that holds the asset; the operator connects with
    /// its own identity. Mutually exclusive with `servers` and `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_cluster_ref: Option<ClusterRef>,
    /// An `Account` (connection settings) in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^.*>]*$"))]
    pub account: Option<String>,
    /// A credentials file mounted in the operator's pod.
    #[serde(default)]
    pub creds: String,
    /// An NKey seed file mounted in the operator's pod.
    #[serde(default)]
    pub nkey: String,
    /// Server URLs.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Client TLS files mounted in the operator's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    /// TLS before the server's INFO.
    #[serde(default)]
    pub tls_first: bool,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_domain: Option<String>,
}

/// Placement of a stream's replicas.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Placement {
    /// The cluster.
    #[serde(default)]
    pub cluster: String,
    /// Server tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A subject transform.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SubjectTransform {
    /// Source subject.
    #[serde(default)]
    pub source: String,
    /// Destination subject.
    #[serde(default)]
    pub dest: String,
}

/// Republishing of stored messages.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct RePublish {
    /// Source subject.
    #[serde(default)]
    pub source: String,
    /// Destination subject.
    #[serde(default)]
    pub destination: String,
    /// Republish the headers only (NACK spells it `headers_only`).
    #[serde(default, rename = "headers_only", skip_serializing_if = "is_unset")]
    pub headers_only: bool,
}

/// The origin of a mirror or a source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamSource {
    /// The origin stream.
    #[serde(default)]
    pub name: String,
    /// First sequence to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_seq: Option<u64>,
    /// First time to copy (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    /// Only these subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    /// API prefix of another account or domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_api_prefix: Option<String>,
    /// Deliver prefix of another account or domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_deliver_prefix: Option<String>,
    /// Subject transforms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransform>,
}

/// Defaults for the stream's consumers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerLimits {
    /// Inactivity after which a consumer is removed (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_threshold: Option<String>,
    /// Largest `maxAckPending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<i64>,
}

/// The status of every asset: NACK's `Ready` condition and `observedGeneration`, and the
/// server's view.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetStatus {
    /// The generation the conditions describe.
    #[serde(default)]
    pub observed_generation: i64,
    /// `Ready` (and why not).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The stream (of a Stream, KeyValue or ObjectStore) as the server reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamState>,
    /// The consumer as the server reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerState>,
}

/// A stream as the server reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamState {
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// First sequence.
    pub first_seq: u64,
    /// Last sequence.
    pub last_seq: u64,
    /// Consumers.
    pub consumers: u64,
    /// The server that leads it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leader: String,
    /// Configured replicas.
    pub replicas: u32,
    /// Replicas that are current (the leader counts).
    pub replicas_current: u32,
}

/// A consumer as the server reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerState {
    /// Messages not yet delivered.
    pub num_pending: u64,
    /// Messages delivered and not acknowledged.
    pub num_ack_pending: u64,
    /// Messages delivered more than once.
    pub num_redelivered: u64,
    /// Pull requests waiting.
    pub num_waiting: u64,
    /// The server that leads it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leader: String,
}

/// A JetStream stream.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jetstream.nats.io",
    version = "v1beta2",
    kind = "Stream",
    plural = "streams",
    singular = "stream",
    namespaced,
    status = "AssetStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type == 'Ready')].reason",
        description = "The current state of the stream."
    ),
    printcolumn(
        name = "Stream Name",
        type_ = "string",
        json_path = ".spec.name",
        description = "The name of the JetStream Stream."
    ),
    printcolumn(
        name = "Subjects",
        type_ = "string",
        json_path = ".spec.subjects",
        description = "The subjects this Stream produces."
    ),
    printcolumn(
        name = "Messages",
        type_ = "integer",
        json_path = ".status.stream.messages",
        description = "Messages the server holds."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StreamSpec {
    /// The stream's name on the server.
    #[schemars(regex(pattern = r"^[^.*>]*$"), length(min = 1))]
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Subjects it stores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// `limits`, `interest` or `workqueue`.
    #[serde(default)]
    pub retention: Retention,
    /// Most consumers (-1: no limit).
    #[serde(default = "unlimited")]
    #[schemars(range(min = -1))]
    pub max_consumers: i64,
    /// Most messages per subject (0: no limit).
    #[serde(default)]
    pub max_msgs_per_subject: i64,
    /// Most messages (-1: no limit).
    #[serde(default = "unlimited")]
    #[schemars(range(min = -1))]
    pub max_msgs: i64,
    /// Most bytes (-1: no limit).
    #[serde(default = "unlimited")]
    #[schemars(range(min = -1))]
    pub max_bytes: i64,
    /// Oldest message kept (Go duration; empty: no limit).
    #[serde(default)]
    pub max_age: String,
    /// Largest message (-1: the server's limit).
    #[serde(default = "unlimited")]
    #[schemars(range(min = -1))]
    pub max_msg_size: i64,
    /// `file` or `memory` (the default, as in NACK).
    #[serde(default)]
    pub storage: Storage,
    /// `old` or `new`.
    #[serde(default)]
    pub discard: Discard,
    /// Replicas.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replicas: i64,
    /// Publishes are not acknowledged.
    #[serde(default)]
    pub no_ack: bool,
    /// Deduplication window (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window: Option<String>,
    /// Placement of the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The stream this one mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    /// Streams this one sources from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    /// `s2`, `none` or `""` (the server's default).
    #[serde(default)]
    pub compression: Compression,
    /// A transform of the subjects stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    /// Republishing of stored messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    /// No more messages, deletes or purges.
    #[serde(default)]
    pub sealed: bool,
    /// Messages cannot be deleted.
    #[serde(default)]
    pub deny_delete: bool,
    /// The stream cannot be purged.
    #[serde(default)]
    pub deny_purge: bool,
    /// Direct gets.
    #[serde(default)]
    pub allow_direct: bool,
    /// `Nats-Rollup` headers.
    #[serde(default)]
    pub allow_rollup: bool,
    /// Direct gets from the mirror's origin.
    #[serde(default)]
    pub mirror_direct: bool,
    /// Discard new messages per subject.
    #[serde(default)]
    pub discard_per_subject: bool,
    /// First sequence of a new stream.
    #[serde(default)]
    #[schemars(schema_with = "number")]
    pub first_sequence: u64,
    /// Metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
    /// Defaults for its consumers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_limits: Option<ConsumerLimits>,
    /// Per-message TTLs (`Nats-TTL`).
    #[serde(default)]
    pub allow_msg_ttl: bool,
    /// Delete markers kept this long (Go duration).
    #[serde(default)]
    pub subject_delete_marker_ttl: String,
    /// A counter stream.
    #[serde(default)]
    pub allow_msg_counter: bool,
    /// Atomic batch publishes.
    #[serde(default)]
    pub allow_atomic_publish: bool,
    /// Message schedules.
    #[serde(default)]
    pub allow_msg_schedules: bool,
    /// `default`, `async` or `""`.
    #[serde(default)]
    pub persist_mode: PersistMode,
    /// How to reach the server, and what the operator may do.
    #[serde(flatten)]
    pub connection: Connection,
}

/// A durable JetStream consumer.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jetstream.nats.io",
    version = "v1beta2",
    kind = "Consumer",
    plural = "consumers",
    singular = "consumer",
    namespaced,
    status = "AssetStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type == 'Ready')].reason",
        description = "The current state of the consumer."
    ),
    printcolumn(
        name = "Stream",
        type_ = "string",
        json_path = ".spec.streamName",
        description = "The name of the JetStream Stream."
    ),
    printcolumn(
        name = "Consumer",
        type_ = "string",
        json_path = ".spec.durableName",
        description = "The name of the JetStream Consumer."
    ),
    printcolumn(
        name = "Ack Policy",
        type_ = "string",
        json_path = ".spec.ackPolicy",
        description = "The ack policy."
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.consumer.numPending",
        description = "Messages not yet delivered."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSpec {
    /// The stream it reads.
    #[serde(default)]
    pub stream_name: String,
    /// Its durable name on the server (required, as in NACK's schema).
    #[schemars(regex(pattern = r"^[^.*>]+$"), length(min = 1))]
    pub durable_name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where delivery starts.
    #[serde(default)]
    pub deliver_policy: DeliverPolicy,
    /// First sequence (`byStartSequence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub opt_start_seq: Option<u64>,
    /// First time (`byStartTime`, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    /// Push subject (absent: a pull consumer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_subject: Option<String>,
    /// Push queue group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_group: Option<String>,
    /// How messages are acknowledged.
    #[serde(default)]
    pub ack_policy: AckPolicy,
    /// Redelivery after (Go duration; NACK's default `1ns` means the server's 30 s).
    #[serde(default = "one_nanosecond")]
    pub ack_wait: String,
    /// Most deliveries (-1: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_deliver: Option<i64>,
    /// Redelivery backoff (Go durations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<String>,
    /// One subject filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    /// Several subject filters (nats-server 2.10+).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    /// Replay speed.
    #[serde(default)]
    pub replay_policy: ReplayPolicy,
    /// Ack sampling (`50` or `50%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_freq: Option<String>,
    /// Most waiting pull requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<i64>,
    /// Delivery rate limit (bits per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_bps: Option<i64>,
    /// Most unacknowledged messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<i64>,
    /// Push flow control.
    #[serde(default)]
    pub flow_control: bool,
    /// Deliver headers only.
    #[serde(default)]
    pub headers_only: bool,
    /// Idle heartbeat (push; Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<String>,
    /// Largest pull batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_batch: Option<i64>,
    /// Longest pull expiry (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_expires: Option<String>,
    /// Largest pull `max_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_max_bytes: Option<i64>,
    /// Inactivity after which the server removes it (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_threshold: Option<String>,
    /// Replicas (default: the stream's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// State in memory.
    #[serde(default)]
    pub mem_storage: bool,
    /// Metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
    /// Paused until (RFC 3339).
    #[serde(default)]
    pub pause_until: String,
    /// Priority-group policy.
    #[serde(default)]
    pub priority_policy: PriorityPolicy,
    /// Pin TTL (Go duration).
    #[serde(default)]
    pub pinned_ttl: String,
    /// Priority groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    /// How to reach the server, and what the operator may do.
    #[serde(flatten)]
    pub connection: Connection,
}

fn one_nanosecond() -> String {
    "1ns".into()
}

/// A key-value bucket (the stream `KV_<bucket>`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jetstream.nats.io",
    version = "v1beta2",
    kind = "KeyValue",
    plural = "keyvalues",
    singular = "keyvalue",
    shortname = "kv",
    namespaced,
    status = "AssetStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type == 'Ready')].reason",
        description = "The current state of the KV Store."
    ),
    printcolumn(
        name = "KV Store Name",
        type_ = "string",
        json_path = ".spec.bucket",
        description = "The name of the KV Store."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KeyValueSpec {
    /// The bucket's name.
    #[serde(default)]
    pub bucket: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Largest value (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_size: Option<i64>,
    /// Values kept per key (1–64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<i64>,
    /// Key expiry (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Limit markers kept this long (nanoseconds, as NACK's Go type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_marker_ttl: Option<i64>,
    /// Largest bucket (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// `file` (the server's default) or `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "Storage::schema")]
    pub storage: Option<Storage>,
    /// Replicas (1–5).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: i64,
    /// Placement of the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Republishing of stored values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    /// The bucket this one mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    /// Buckets this one sources from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    /// S2 compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    /// How to reach the server, and what the operator may do.
    #[serde(flatten)]
    pub connection: Connection,
}

/// An object store (the stream `OBJ_<bucket>`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jetstream.nats.io",
    version = "v1beta2",
    kind = "ObjectStore",
    plural = "objectstores",
    singular = "objectstore",
    namespaced,
    status = "AssetStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type == 'Ready')].reason",
        description = "The current state of the Object Store."
    ),
    printcolumn(
        name = "Object Store Name",
        type_ = "string",
        json_path = ".spec.bucket",
        description = "The name of the Object Store."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    /// The store's name.
    #[serde(default)]
    pub bucket: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Object expiry (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Largest store (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// `file` (the server's default) or `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "Storage::schema")]
    pub storage: Option<Storage>,
    /// Replicas (1–5).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: i64,
    /// Placement of the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// S2 compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
    /// How to reach the server, and what the operator may do.
    #[serde(flatten)]
    pub connection: Connection,
}

/// A key of a Secret in the asset's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretName {
    /// The Secret's name.
    #[serde(default)]
    pub name: String,
}

/// TLS of an Account: keys of `secret`, or file paths without it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AccountTls {
    /// The Secret holding the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretName>,
    /// CA key (or file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca: String,
    /// Certificate key (or file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert: String,
    /// Private key key (or file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// Credentials of an Account: a key of `secret`, or a file path without it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AccountCreds {
    /// The Secret holding the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretName>,
    /// The key (or file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
}

/// An NKey seed of an Account, in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AccountNKey {
    /// The Secret holding the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretName>,
    /// The key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub seed: String,
}

/// A token of an Account, in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AccountToken {
    /// The Secret holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretName>,
    /// The key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// A user and password of an Account, in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AccountUser {
    /// The Secret holding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretName>,
    /// The key of the user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The key of the password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
}

/// Connection settings that assets in the namespace name with `spec.account` (not a NATS
/// account: NACK's name for a connection profile).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jetstream.nats.io",
    version = "v1beta2",
    kind = "Account",
    plural = "accounts",
    singular = "account",
    namespaced,
    status = "AssetStatus",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpec {
    /// A descriptive name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^[^.*>]*$"))]
    pub name: String,
    /// Server URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<AccountTls>,
    /// Credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<AccountCreds>,
    /// NKey seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<AccountNKey>,
    /// Token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<AccountToken>,
    /// User and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<AccountUser>,
    /// TLS before the server's INFO.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_first: bool,
}

/// Schema of `firstSequence`: NACK's CRD says `number`.
fn number(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "number" })
}
