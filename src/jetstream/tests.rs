//! NACK-shaped manifests (written here in NACK's published shapes) read, mapped to the
//! JetStream API and checked as the server would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::CustomResourceExt;
use serde_json::{Value, json};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::server_config::{self, differences};
use super::sync::{self, Past, Plan, Removal, Write};
use super::v1beta2::{Account, Consumer, KeyValue, ObjectStore, Stream};
use super::v1beta2::{AssetStatus, Connection, Mode};
use super::validate::{self, subjects_overlap};

const STREAM: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Stream
metadata:
  name: orders
spec:
  name: orders
  subjects: ["orders.*"]
  storage: file
  maxAge: 1h
  replicas: 3
  servers: ["nats://nats:4222"]
"#;

const PUSH: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Consumer
metadata:
  name: shipping
spec:
  streamName: orders
  durableName: shipping
  deliverSubject: shipping.orders
  deliverPolicy: last
  ackPolicy: none
  replayPolicy: instant
  description: ships what was ordered
  flowControl: true
  heartbeatInterval: 1s
  account: team-a
"#;

const PULL: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Consumer
metadata:
  name: billing
spec:
  streamName: orders
  durableName: billing
  deliverPolicy: all
  filterSubject: orders.received
  maxDeliver: 20
  ackPolicy: explicit
  natsClusterRef:
    name: gs
"#;

const KV: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: KeyValue
metadata:
  name: settings
spec:
  bucket: settings
  history: 20
  storage: file
  maxBytes: 2048
  compression: true
  natsClusterRef: {name: gs}
"#;

const OBJECTS: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: ObjectStore
metadata:
  name: assets
spec:
  bucket: assets
  ttl: 24h
  replicas: 3
  natsClusterRef: {name: gs}
"#;

const ACCOUNT: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Account
metadata:
  name: team-a
spec:
  name: team-a
  servers:
  - nats://nats:4222
  tls:
    secret:
      name: team-a-tls
    ca: ca.crt
    cert: tls.crt
    key: tls.key
  creds:
    secret:
      name: team-a-creds
    file: user.creds
"#;

#[test]
fn nack_manifests_read_with_nacks_defaults() {
    let s: Stream = crate::yaml::from_str(STREAM).unwrap();
    assert_eq!(s.spec.name, "orders");
    assert_eq!(s.spec.max_msgs, -1);
    assert_eq!(s.spec.max_consumers, -1);
    assert_eq!(s.spec.retention.as_str(), "limits");
    assert_eq!(s.spec.discard.as_str(), "old");
    assert_eq!(s.spec.connection.servers, vec!["nats://nats:4222"]);
    let c: Consumer = crate::yaml::from_str(PUSH).unwrap();
    assert_eq!(c.spec.ack_wait, "1ns", "NACK's CRD default");
    assert_eq!(c.spec.connection.account.as_deref(), Some("team-a"));
    let a: Account = crate::yaml::from_str(ACCOUNT).unwrap();
    assert_eq!(a.spec.tls.unwrap().secret.unwrap().name, "team-a-tls");
    assert_eq!(a.spec.creds.unwrap().file, "user.creds");
    let bad = STREAM.replace("storage: file", "storage: disk");
    assert!(crate::yaml::from_str::<Stream>(&bad).is_err());
}

#[test]
fn a_stream_asks_the_server_for_what_its_spec_says() {
    let s: Stream = crate::yaml::from_str(STREAM).unwrap();
    let cfg = server_config::stream(&s.spec).unwrap();
    assert_eq!(
        cfg,
        json!({
            "name": "orders", "subjects": ["orders.*"], "retention": "limits",
            "max_consumers": -1, "max_msgs": -1, "max_bytes": -1, "max_msgs_per_subject": -1,
            "max_msg_size": -1, "max_age": 3_600_000_000_000_i64, "storage": "file",
            "discard": "old", "num_replicas": 3,
        })
    );
    // The server's answer has every field: only those sent are compared.
    let mut info = cfg.clone();
    info["duplicate_window"] = json!(120_000_000_000_i64);
    info["sealed"] = json!(false);
    info["compression"] = json!("none");
    assert!(differences(&cfg, &info).is_empty());
    info["max_age"] = json!(60_000_000_000_i64);
    assert_eq!(
        differences(&cfg, &info),
        vec![(
            "max_age".to_string(),
            json!(3_600_000_000_000_i64),
            json!(60_000_000_000_i64)
        )]
    );
}

#[test]
fn values_the_server_would_refuse_name_their_field() {
    let mut s: Stream = crate::yaml::from_str(STREAM).unwrap();
    s.spec.max_age = "1d".into();
    s.spec.name = "orders.eu".into();
    s.spec.replicas = 7;
    s.spec.duplicate_window = Some("2 minutes".into());
    let errors = server_config::stream(&s.spec).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.name",
            "spec.maxAge",
            "spec.replicas",
            "spec.duplicateWindow"
        ]
    );
    assert!(
        errors[1]
            .message
            .starts_with("Invalid value: \"1d\": must be a Go duration"),
        "{}",
        errors[1].message
    );
}

#[test]
fn consumers_map_to_the_servers_names() {
    let push: Consumer = crate::yaml::from_str(PUSH).unwrap();
    let cfg = server_config::consumer(&push.spec).unwrap();
    assert_eq!(
        cfg,
        json!({
            "durable_name": "shipping", "description": "ships what was ordered",
            "deliver_policy": "last", "ack_policy": "none", "replay_policy": "instant",
            "deliver_subject": "shipping.orders", "flow_control": true,
            "idle_heartbeat": 1_000_000_000,
        })
    );
    let pull: Consumer = crate::yaml::from_str(PULL).unwrap();
    let cfg = server_config::consumer(&pull.spec).unwrap();
    assert_eq!(cfg["filter_subject"], "orders.received");
    assert_eq!(cfg["max_deliver"], 20);
    assert_eq!(cfg["ack_policy"], "explicit");
    // NACK's `1ns` default is the server's 30 s, not a nanosecond.
    assert!(cfg.get("ack_wait").is_none(), "{cfg}");

    let mut both = pull.spec.clone();
    both.filter_subjects = vec!["orders.shipped".into()];
    both.deliver_policy = super::v1beta2::DeliverPolicy::ByStartTime;
    both.backoff = vec!["1s".into(), "bad".into()];
    let fields: Vec<String> = server_config::consumer(&both)
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.optStartTime",
            "spec.backoff[1]",
            "spec.filterSubjects"
        ]
    );
}

#[test]
fn buckets_are_the_streams_nats_go_makes() {
    let kv: KeyValue = crate::yaml::from_str(KV).unwrap();
    let cfg = server_config::key_value(&kv.spec).unwrap();
    assert_eq!(cfg["name"], "KV_settings");
    assert_eq!(cfg["subjects"], json!(["$KV.settings.>"]));
    assert_eq!(cfg["max_msgs_per_subject"], 20);
    assert_eq!(cfg["max_bytes"], 2048);
    assert_eq!(cfg["discard"], "new");
    assert_eq!(cfg["compression"], "s2");
    assert_eq!(cfg["duplicate_window"], 120_000_000_000_i64);
    assert_eq!(cfg["allow_rollup_hdrs"], true);
    assert_eq!(cfg["deny_delete"], true);
    let o: ObjectStore = crate::yaml::from_str(OBJECTS).unwrap();
    let cfg = server_config::object_store(&o.spec).unwrap();
    assert_eq!(cfg["name"], "OBJ_assets");
    assert_eq!(cfg["subjects"], json!(["$O.assets.C.>", "$O.assets.M.>"]));
    assert_eq!(cfg["max_age"], 86_400_000_000_000_i64);
    assert_eq!(cfg["num_replicas"], 3);

    let mut bad = kv.spec.clone();
    bad.bucket = "my.settings".into();
    bad.history = Some(65);
    let errors = server_config::key_value(&bad).unwrap_err();
    assert_eq!(errors[0].field, "spec.bucket");
    assert_eq!(errors[1].field, "spec.history");
}

#[test]
fn updates_the_server_cannot_make_need_a_new_object() {
    let old: Stream = crate::yaml::from_str(STREAM).unwrap();
    let mut new = old.spec.clone();
    new.storage = super::v1beta2::Storage::Memory;
    new.retention = super::v1beta2::Retention::WorkQueue;
    new.max_age = "2h".into();
    let errors = validate::stream_update(&old.spec, &new);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].field, "spec.storage");
    assert_eq!(
        errors[0].message,
        "Forbidden: cannot change from \"file\" to \"memory\": the server cannot move a \
         stream between file and memory storage; create a new Stream (with a new name) and \
         delete this one"
    );
    assert_eq!(errors[1].field, "spec.retention");

    let mut sealed = old.spec.clone();
    sealed.sealed = true;
    assert!(validate::stream_update(&old.spec, &sealed).is_empty());
    assert_eq!(
        validate::stream_update(&sealed, &old.spec)[0].field,
        "spec.sealed"
    );

    let push: Consumer = crate::yaml::from_str(PUSH).unwrap();
    let mut pull = push.spec.clone();
    pull.deliver_subject = None;
    pull.ack_policy = super::v1beta2::AckPolicy::Explicit;
    pull.description = Some("changed".into());
    let fields: Vec<String> = validate::consumer_update(&push.spec, &pull)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, ["spec.ackPolicy", "spec.deliverSubject"]);
}

#[test]
fn an_asset_connects_one_way() {
    let pull: Consumer = crate::yaml::from_str(PULL).unwrap();
    assert!(validate::connection(&pull.spec.connection).is_empty());
    let mut both = pull.spec.connection.clone();
    both.servers = vec!["nats://elsewhere:4222".into()];
    assert_eq!(validate::connection(&both)[0].field, "spec.servers");
    let mut nowhere = pull.spec.connection.clone();
    nowhere.nats_cluster_ref = None;
    // NACK's manifests often name no server: the controller's default connection.
    assert!(validate::connection(&nowhere).is_empty());
}

#[test]
fn subject_overlap_follows_nats_wildcards() {
    for (a, b) in [
        ("orders.*", "orders.eu"),
        ("orders.>", "orders.eu.new"),
        ("orders.*.new", "orders.eu.*"),
        (">", "anything"),
        ("a.b", "a.b"),
    ] {
        assert!(subjects_overlap(a, b), "{a} {b}");
        assert!(subjects_overlap(b, a), "{b} {a}");
    }
    for (a, b) in [
        ("orders.*", "orders.eu.new"),
        ("orders.eu", "orders.us"),
        ("orders", "orders.>"),
        ("a.*", "b.*"),
    ] {
        assert!(!subjects_overlap(a, b), "{a} {b}");
    }
}

#[test]
fn crds_keep_nacks_names_columns_and_defaults() {
    let crd = serde_json::to_value(Stream::crd()).unwrap();
    assert_eq!(crd["metadata"]["name"], "streams.jetstream.nats.io");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1beta2");
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["State", "Stream Name", "Subjects", "Messages", "Age"]
    );
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(
        spec["retention"]["enum"],
        json!(["limits", "interest", "workqueue"])
    );
    assert_eq!(spec["retention"]["default"], "limits");
    assert_eq!(spec["storage"]["default"], "memory");
    assert_eq!(spec["maxMsgs"]["default"], -1);
    assert_eq!(spec["replicas"]["minimum"], 1.0);
    assert_eq!(spec["firstSequence"]["type"], "number");
    assert!(spec["servers"].is_object() && spec["natsClusterRef"].is_object());
    assert!(spec["mode"]["enum"] == json!(["manage", "adopt", "observe"]));
    for crd in [
        serde_json::to_value(Consumer::crd()).unwrap(),
        serde_json::to_value(KeyValue::crd()).unwrap(),
        serde_json::to_value(ObjectStore::crd()).unwrap(),
        serde_json::to_value(Account::crd()).unwrap(),
    ] {
        assert_eq!(crd["spec"]["group"], "jetstream.nats.io");
        assert_eq!(
            crd["spec"]["versions"][0]["subresources"]["status"],
            json!({})
        );
        assert!(!crd.to_string().contains("\"$ref\""), "{crd}");
    }
    let kv = serde_json::to_value(KeyValue::crd()).unwrap();
    assert_eq!(kv["spec"]["names"]["shortNames"], json!(["kv"]));
    let _: Value = kv;
}

#[test]
fn an_asset_must_fit_the_cluster_it_names() {
    use crate::api::v1beta1::{FileStorage, JetStream, NatsClusterSpec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let cluster = NatsClusterSpec {
        size: 3,
        jetstream: Some(JetStream {
            memory_storage: Some(Quantity("64Mi".into())),
            file_storage: Some(FileStorage {
                size: Some(Quantity("1Gi".into())),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let asks = |replicas, storage, max_bytes| validate::Asks {
        replicas,
        storage,
        max_bytes,
    };
    use super::v1beta2::Storage::{File, Memory};
    assert!(validate::fits_cluster(asks(3, File, 1 << 30), "gs", &cluster).is_empty());
    let errors = validate::fits_cluster(asks(5, Memory, 128 << 20), "gs", &cluster);
    assert_eq!(
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        [
            "spec.replicas: Invalid value: 5: NatsCluster gs has 3 members: at most 3 replicas",
            "spec.maxBytes: Invalid value: 134217728: above the memory storage \
             (spec.jetstream.memoryStorage) of each member of NatsCluster gs: 64Mi",
        ]
    );
    let plain = NatsClusterSpec {
        jetstream: None,
        ..cluster
    };
    assert_eq!(
        validate::fits_cluster(asks(1, File, -1), "gs", &plain)[0].field,
        "spec.natsClusterRef.name"
    );
}

// ---- sync: what one reconcile of an asset does ----

fn connection(mode: Mode) -> Connection {
    Connection {
        mode,
        ..Default::default()
    }
}

fn orders() -> Value {
    json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": -1, "num_replicas": 3})
}

fn past(held: bool, spec_changed: bool, conditions: &[Condition]) -> Past<'_> {
    Past {
        held,
        spec_changed,
        conditions,
    }
}

fn written(plan: &Plan) -> Vec<Condition> {
    sync::next_status(
        &AssetStatus::default(),
        Some(1),
        (&plan.ready, &plan.in_sync),
        (None, None),
        "2026-12-04T10:00:00Z".parse().unwrap(),
    )
    .conditions
}

#[test]
fn manage_creates_a_missing_asset_and_says_when_it_was_deleted_out_of_band() {
    let wanted = orders();
    let first = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &wanted,
        None,
        past(false, true, &[]),
    );
    assert_eq!(first.write, Some(Write::Create(wanted.clone())));
    assert!(first.ready.ok && first.in_sync.ok);
    let notice = first.notice.unwrap();
    assert_eq!((notice.warning, notice.reason), (false, "Created"));

    let again = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &wanted,
        None,
        past(true, false, &[]),
    );
    assert_eq!(again.write, Some(Write::Create(wanted)));
    let notice = again.notice.unwrap();
    assert_eq!((notice.warning, notice.reason), (true, "Recreated"));
    assert!(
        notice
            .message
            .contains("deleted on the server outside Kubernetes"),
        "{}",
        notice.message
    );
}

#[test]
fn observe_and_adopt_never_create_and_report_a_deletion_once() {
    let wanted = orders();
    for mode in [Mode::Observe, Mode::Adopt] {
        let plan = sync::plan(
            "stream ORDERS",
            &connection(mode),
            &wanted,
            None,
            past(true, false, &[]),
        );
        assert_eq!(plan.write, None, "{mode:?}");
        assert_eq!((plan.ready.ok, plan.ready.reason), (false, "NotFound"));
        assert_eq!(plan.notice.as_ref().map(|n| n.reason), Some("Deleted"));
        // The next interval finds the same: the condition says it, no second Event.
        let conditions = written(&plan);
        let next = sync::plan(
            "stream ORDERS",
            &connection(mode),
            &wanted,
            None,
            past(true, false, &conditions),
        );
        assert_eq!(next.notice, None, "{mode:?}");
    }
    let adopt = sync::plan(
        "stream ORDERS",
        &connection(Mode::Adopt),
        &wanted,
        None,
        past(false, false, &[]),
    );
    assert!(
        adopt.ready.message.contains("spec.mode to manage"),
        "{}",
        adopt.ready.message
    );
    assert_eq!(adopt.notice, None, "never held: nothing was deleted");
}

#[test]
fn manage_puts_back_drift_and_tells_a_spec_edit_from_an_out_of_band_change() {
    let wanted = orders();
    let mut held = orders();
    held["max_msgs"] = json!(5);
    held["storage"] = json!("file");
    let drift = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &wanted,
        Some(&held),
        past(true, false, &[]),
    );
    assert_eq!(drift.write, Some(Write::Update(wanted.clone())));
    let notice = drift.notice.unwrap();
    assert_eq!((notice.warning, notice.reason), (true, "DriftCorrected"));
    assert!(
        notice
            .message
            .ends_with("put back: max_msgs: server 5, spec -1"),
        "{}",
        notice.message
    );

    let edit = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &wanted,
        Some(&held),
        past(true, true, &[]),
    );
    assert_eq!(
        edit.notice.map(|n| (n.warning, n.reason)),
        Some((false, "Updated"))
    );

    let same = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &wanted,
        Some(&orders()),
        past(true, false, &[]),
    );
    assert_eq!((same.write, same.notice), (None, None));
    assert!(same.ready.ok && same.in_sync.ok);
}

#[test]
fn observe_and_prevent_update_report_drift_without_writing() {
    let wanted = orders();
    let mut held = orders();
    held["subjects"] = json!(["orders.>", "extra.>"]);
    let prevent = Connection {
        prevent_update: true,
        ..connection(Mode::Manage)
    };
    for (c, reason) in [
        (connection(Mode::Observe), "Drifted"),
        (prevent, "UpdatePrevented"),
    ] {
        let plan = sync::plan(
            "stream ORDERS",
            &c,
            &wanted,
            Some(&held),
            past(true, false, &[]),
        );
        assert_eq!(plan.write, None);
        assert!(plan.ready.ok, "it exists and works");
        assert_eq!((plan.in_sync.ok, plan.in_sync.reason), (false, reason));
        assert!(
            plan.in_sync
                .message
                .contains(r#"subjects: server ["orders.>","extra.>"], spec ["orders.>"]"#),
            "{}",
            plan.in_sync.message
        );
        assert_eq!(plan.notice.as_ref().map(|n| n.reason), Some(reason));
        let conditions = written(&plan);
        let next = sync::plan(
            "stream ORDERS",
            &c,
            &wanted,
            Some(&held),
            past(true, false, &conditions),
        );
        assert_eq!(next.notice, None, "reported once");
    }
    // preventUpdate still creates what is missing (NACK's meaning).
    let prevent = Connection {
        prevent_update: true,
        ..connection(Mode::Manage)
    };
    let create = sync::plan(
        "stream ORDERS",
        &prevent,
        &wanted,
        None,
        past(false, false, &[]),
    );
    assert!(matches!(create.write, Some(Write::Create(_))));
}

#[test]
fn adopt_takes_over_what_exists_without_recreating_it() {
    let wanted = orders();
    let same = sync::plan(
        "stream ORDERS",
        &connection(Mode::Adopt),
        &wanted,
        Some(&orders()),
        past(false, true, &[]),
    );
    assert_eq!(same.write, None);
    assert_eq!(same.notice.map(|n| n.reason), Some("Adopted"));
    let mut held = orders();
    held["max_msgs"] = json!(1000);
    let differs = sync::plan(
        "stream ORDERS",
        &connection(Mode::Adopt),
        &wanted,
        Some(&held),
        past(false, true, &[]),
    );
    assert_eq!(
        differs.write,
        Some(Write::Update(wanted.clone())),
        "updated in place, never re-created"
    );
    assert_eq!(differs.notice.map(|n| n.reason), Some("Adopted"));
    let later = sync::plan(
        "stream ORDERS",
        &connection(Mode::Adopt),
        &wanted,
        Some(&orders()),
        past(true, false, &[]),
    );
    assert_eq!(later.notice, None);
}

#[test]
fn deleting_the_object_deletes_the_asset_unless_kept() {
    assert_eq!(sync::removal(&connection(Mode::Manage)), Removal::Delete);
    assert_eq!(sync::removal(&connection(Mode::Adopt)), Removal::Delete);
    assert!(matches!(
        sync::removal(&connection(Mode::Observe)),
        Removal::Keep(_)
    ));
    let keep = Connection {
        prevent_delete: true,
        ..Default::default()
    };
    assert_eq!(
        sync::removal(&keep),
        Removal::Keep("spec.preventDelete is set")
    );
}

#[test]
fn a_refused_update_leaves_the_asset_ready_and_a_refused_creation_does_not() {
    let mut held = orders();
    held["storage"] = json!("memory");
    let wanted = json!({"name": "ORDERS", "storage": "file"});
    let plan = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &wanted,
        Some(&held),
        past(true, false, &[]),
    );
    let (ready, in_sync) = sync::refused(
        &plan,
        "stream configuration update can not change storage type (10052)",
    );
    assert!(ready.ok);
    assert_eq!((in_sync.ok, in_sync.reason), (false, "Refused"));
    assert!(in_sync.message.contains("10052"));
    let create = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &wanted,
        None,
        past(false, false, &[]),
    );
    let (ready, _) = sync::refused(&create, "insufficient resources (10023)");
    assert_eq!((ready.ok, ready.reason), (false, "Refused"));
    let (ready, in_sync) = sync::unreachable("connection refused");
    assert_eq!(
        (ready.ok, in_sync.ok, ready.reason),
        (false, false, "Unreachable")
    );
}

/// Stream and consumer info as nats-server 2.10+ answers `$JS.API.STREAM.INFO` and
/// `$JS.API.CONSUMER.INFO` (trimmed).
#[test]
fn status_figures_come_from_the_servers_info() {
    let info = json!({
        "config": {"name": "ORDERS", "num_replicas": 3},
        "state": {"messages": 12, "bytes": 3456, "first_seq": 3, "last_seq": 14, "consumer_count": 2},
        "cluster": {"name": "nats", "leader": "nats-2", "replicas": [
            {"name": "nats-1", "current": true, "active": 1000, "lag": 0},
            {"name": "nats-3", "current": false, "offline": true, "active": 0}
        ]}
    });
    let s = sync::stream_state(&info);
    assert_eq!(
        (s.messages, s.bytes, s.first_seq, s.last_seq, s.consumers),
        (12, 3456, 3, 14, 2)
    );
    assert_eq!(
        (s.leader.as_str(), s.replicas, s.replicas_current),
        ("nats-2", 3, 2)
    );
    let single = sync::stream_state(&json!({"config": {"name": "S"}, "state": {"messages": 1}}));
    assert_eq!((single.replicas, single.replicas_current), (1, 1));
    let leaderless =
        sync::stream_state(&json!({"config": {"num_replicas": 3}, "cluster": {"name": "nats"}}));
    assert_eq!(leaderless.replicas_current, 0);

    let c = sync::consumer_state(&json!({
        "num_pending": 7, "num_ack_pending": 2, "num_redelivered": 1, "num_waiting": 4,
        "cluster": {"leader": "nats-1"}
    }));
    assert_eq!(
        (
            c.num_pending,
            c.num_ack_pending,
            c.num_redelivered,
            c.num_waiting,
            c.leader.as_str()
        ),
        (7, 2, 1, 4, "nats-1")
    );
}

#[test]
fn a_steady_asset_writes_the_same_status() {
    let plan = sync::plan(
        "stream ORDERS",
        &connection(Mode::Manage),
        &orders(),
        Some(&orders()),
        past(true, false, &[]),
    );
    let t0 = "2026-12-04T10:00:00Z".parse().unwrap();
    let t1 = "2026-12-04T10:05:00Z".parse().unwrap();
    let figures = || {
        (
            Some(sync::stream_state(&json!({"config": {"num_replicas": 1}}))),
            None,
        )
    };
    let first = sync::next_status(
        &AssetStatus::default(),
        Some(2),
        (&plan.ready, &plan.in_sync),
        figures(),
        t0,
    );
    assert_eq!(first.observed_generation, 2);
    let second = sync::next_status(&first, Some(2), (&plan.ready, &plan.in_sync), figures(), t1);
    assert_eq!(first, second, "no write when nothing changed");
    let (ready, in_sync) = sync::unreachable("timeout");
    let third = sync::next_status(&second, Some(2), (&ready, &in_sync), figures(), t1);
    assert_eq!(third.conditions[0].last_transition_time.0, t1);
}

#[test]
fn last_per_subject_needs_a_filter_as_the_server_says() {
    let mut c: Consumer = crate::yaml::from_str(PULL).unwrap();
    c.spec.deliver_policy = super::v1beta2::DeliverPolicy::LastPerSubject;
    assert!(
        server_config::consumer(&c.spec).is_ok(),
        "PULL has a filterSubject"
    );
    c.spec.filter_subject = None;
    let errors = server_config::consumer(&c.spec).unwrap_err();
    assert_eq!(errors[0].field, "spec.filterSubject", "{errors:?}");
}

/// A 2.9 server ignores `compression`: the write is made once, the difference reported,
/// and not written again until the spec changes.
#[test]
fn what_the_server_does_not_keep_is_written_once_and_reported() {
    let wanted = json!({"name": "ORDERS", "compression": "s2"});
    let answered = json!({"name": "ORDERS", "max_msgs": -1});
    let check = sync::after_write(&wanted, &answered).unwrap();
    assert_eq!((check.ok, check.reason), (false, "NotKept"));
    assert!(
        check
            .message
            .contains(r#"compression: server null, spec "s2""#),
        "{}",
        check.message
    );
    assert_eq!(sync::after_write(&wanted, &wanted), None);

    let conditions = sync::next_status(
        &AssetStatus::default(),
        Some(1),
        (
            &sync::Check {
                ok: true,
                reason: "Ready",
                message: String::new(),
            },
            &check,
        ),
        (None, None),
        "2026-12-04T10:00:00Z".parse().unwrap(),
    )
    .conditions;
    let manage = connection(Mode::Manage);
    let next = sync::plan(
        "stream ORDERS",
        &manage,
        &wanted,
        Some(&answered),
        past(true, false, &conditions),
    );
    assert_eq!((next.write, next.notice), (None, None));
    assert_eq!(next.in_sync, check);
    let edited = sync::plan(
        "stream ORDERS",
        &manage,
        &wanted,
        Some(&answered),
        past(true, true, &conditions),
    );
    assert!(
        matches!(edited.write, Some(Write::Update(_))),
        "a spec edit tries again"
    );
}
