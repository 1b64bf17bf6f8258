//! NACK-shaped manifests (written here in NACK's published shapes) read, mapped to the
//! JetStream API and checked as the server would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::server_config::{self, differences};
use super::v1beta2::{Account, Consumer, KeyValue, ObjectStore, Stream};
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
            "max_consumers": -1, "max_msgs": -1, "max_bytes": -1, "max_msgs_per_subject": 0,
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
    assert_eq!(
        validate::connection(&nowhere)[0].field,
        "spec.natsClusterRef"
    );
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
