//! NACK-shaped assets on real servers of every supported version, through the operator's
//! own JetStream API client (`jetstream::client`) and planner (`jetstream::sync`): what
//! the spec asks is created; the server's configuration read back has no difference from
//! it (a false difference would rewrite the asset on every drift check); a change made
//! out of band with the real `nats` CLI is seen and put back; a change the server cannot
//! make is refused in its words; deleting keeps nothing behind.

mod nats_server_support;

use std::path::Path;
use std::process::Command;

use nats_operator::jetstream::client::{Failure, JetStreamApi};
use nats_operator::jetstream::server_config;
use nats_operator::jetstream::sync::{self, Past, Write};
use nats_operator::jetstream::v1beta2::{Connection, Consumer, KeyValue, ObjectStore, Stream};
use nats_server_support::{Running, Server, servers};
use serde_json::Value;

const STREAM: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Stream
metadata: {name: orders}
spec:
  name: orders
  description: every order
  subjects: ["orders.*", "refunds.>"]
  storage: file
  retention: limits
  maxAge: 1h
  maxBytes: 10485760
  maxMsgs: 100000
  maxMsgSize: 65536
  maxMsgsPerSubject: 50
  maxConsumers: 8
  discard: new
  duplicateWindow: 90s
  allowRollup: true
  allowDirect: true
  denyPurge: false
  replicas: 1
  servers: ["nats://127.0.0.1:4222"]
"#;

const PULL: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Consumer
metadata: {name: billing}
spec:
  streamName: orders
  durableName: billing
  description: bills what was ordered
  deliverPolicy: all
  ackPolicy: explicit
  ackWait: 45s
  maxDeliver: 20
  maxAckPending: 500
  filterSubject: orders.received
  replayPolicy: instant
  backoff: ["1s", "5s"]
  servers: ["nats://127.0.0.1:4222"]
"#;

const PUSH: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Consumer
metadata: {name: shipping}
spec:
  streamName: orders
  durableName: shipping
  deliverSubject: shipping.orders
  deliverGroup: shippers
  deliverPolicy: new
  ackPolicy: explicit
  flowControl: true
  heartbeatInterval: 5s
  servers: ["nats://127.0.0.1:4222"]
"#;

const KV: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: KeyValue
metadata: {name: settings}
spec:
  bucket: settings
  description: feature flags
  history: 5
  ttl: 10m
  maxBytes: 1048576
  storage: file
  servers: ["nats://127.0.0.1:4222"]
"#;

const OBJECTS: &str = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: ObjectStore
metadata: {name: assets}
spec:
  bucket: assets
  description: build artefacts
  maxBytes: 10485760
  storage: file
  servers: ["nats://127.0.0.1:4222"]
"#;

/// Fields the 2.10 servers added, then those of 2.11 and 2.12: `(from (major, minor),
/// stream, consumer on it)`.
const NEWER: &[((u64, u64), &str, &str)] = &[
    (
        (2, 10),
        r#"
spec:
  name: events
  subjects: ["events.>"]
  storage: file
  compression: s2
  firstSequence: 100
  metadata: {team: payments}
  subjectTransform: {source: "events.>", dest: "archived.>"}
  republish: {source: "events.>", destination: "copy.>", headers_only: true}
  servers: ["nats://127.0.0.1:4222"]
"#,
        r#"
spec:
  streamName: events
  durableName: audit
  ackPolicy: explicit
  filterSubjects: ["archived.a", "archived.b"]
  inactiveThreshold: 1h
  metadata: {owner: audit}
  servers: ["nats://127.0.0.1:4222"]
"#,
    ),
    (
        (2, 11),
        r#"
spec:
  name: sessions
  subjects: ["sessions.>"]
  storage: file
  allowMsgTtl: true
  subjectDeleteMarkerTtl: 5m
  servers: ["nats://127.0.0.1:4222"]
"#,
        r#"
spec:
  streamName: sessions
  durableName: pinned
  ackPolicy: explicit
  priorityPolicy: pinned_client
  priorityGroups: ["jobs"]
  pinnedTtl: 2m
  pauseUntil: "2030-01-01T00:00:00Z"
  servers: ["nats://127.0.0.1:4222"]
"#,
    ),
    (
        (2, 12),
        r#"
spec:
  name: counters
  subjects: ["counters.>"]
  storage: file
  allowMsgCounter: true
  allowAtomicPublish: true
  servers: ["nats://127.0.0.1:4222"]
"#,
        r#"
spec:
  streamName: counters
  durableName: readers
  ackPolicy: none
  deliverPolicy: lastPerSubject
  filterSubject: "counters.>"
  servers: ["nats://127.0.0.1:4222"]
"#,
    ),
    (
        (2, 12),
        r#"
spec:
  name: schedules
  subjects: ["schedules.>"]
  storage: file
  allowMsgSchedules: true
  allowMsgTtl: true
  servers: ["nats://127.0.0.1:4222"]
"#,
        r#"
spec:
  streamName: schedules
  durableName: runner
  ackPolicy: explicit
  maxDeliver: 5
  servers: ["nats://127.0.0.1:4222"]
"#,
    ),
];

/// The [`NEWER`] assets `server` has: created from the spec and read back without a
/// difference; and the streams it is too old for: the fields it ignores reported, not
/// written again. `(assets checked, streams with ignored fields)`.
async fn newer_fields_round_trip(api: &JetStreamApi, server: &Server) -> (usize, usize) {
    let mut checked = 0;
    let mut not_kept_seen = 0;
    for (since, stream, consumer) in NEWER {
        let v = &server.version;
        let stream: Stream = nats_operator::yaml::from_str(&format!(
            "apiVersion: jetstream.nats.io/v1beta2\nkind: Stream\nmetadata: {{name: s}}\n{stream}"
        ))
        .expect("stream");
        if server.minor() < *since {
            // An older release ignores fields it does not know: written once, reported,
            // not written again.
            let wanted = server_config::stream(&stream.spec).expect("stream config");
            let name = &stream.spec.name;
            let Ok(answer) = api.create_stream(&wanted).await else {
                continue; // refused outright: reported in the server's words
            };
            let not_kept = sync::after_write(&wanted, config_of(&answer))
                .unwrap_or_else(|| panic!("{v}: {name}: the {since:?} fields were kept"));
            let status = sync::next_status(
                &Default::default(),
                Some(1),
                (
                    &sync::Check {
                        ok: true,
                        reason: "Ready",
                        message: String::new(),
                    },
                    &not_kept,
                ),
                (None, None),
                "2026-12-04T10:00:00Z".parse().expect("time"),
            );
            let info = api.stream_info(name).await.expect("info").expect("exists");
            let next = sync::plan(
                name,
                &stream.spec.connection,
                &wanted,
                Some(config_of(&info)),
                Past {
                    held: true,
                    spec_changed: false,
                    conditions: &status.conditions,
                },
            );
            assert_eq!(next.write, None, "{v}: {name}: written again: {not_kept:?}");
            not_kept_seen += 1;
            continue;
        }
        let consumer: Consumer = nats_operator::yaml::from_str(&format!(
            "apiVersion: jetstream.nats.io/v1beta2\nkind: Consumer\nmetadata: {{name: c}}\n{consumer}"
        ))
        .expect("consumer");
        let wanted = server_config::stream(&stream.spec).expect("stream config");
        api.create_stream(&wanted)
            .await
            .unwrap_or_else(|e| panic!("{v}: create {}: {e}", stream.spec.name));
        let info = api
            .stream_info(&stream.spec.name)
            .await
            .expect("info")
            .expect("exists");
        held_as_asked(
            v,
            &stream.spec.name,
            &stream.spec.connection,
            &wanted,
            &info,
        );
        let wanted = server_config::consumer(&consumer.spec).expect("consumer config");
        api.put_consumer(&stream.spec.name, &wanted, false)
            .await
            .unwrap_or_else(|e| panic!("{v}: create {}: {e}", consumer.spec.durable_name));
        let info = api
            .consumer_info(&stream.spec.name, &consumer.spec.durable_name)
            .await
            .expect("info")
            .expect("exists");
        held_as_asked(
            v,
            &consumer.spec.durable_name,
            &consumer.spec.connection,
            &wanted,
            &info,
        );
        checked += 2;
    }
    (checked, not_kept_seen)
}

fn jetstream_server(server: &Server, dir: &Path) -> Running {
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "server_name: assets\njetstream {{ store_dir: {:?} }}\n",
            dir.join("js")
        ),
    )
    .expect("write nats.conf");
    Running::start(server, &conf, 0, &[])
}

/// The real `nats` CLI against `port`.
fn cli(port: u16, args: &[&str]) -> String {
    let nats = nats_server_support::nats_cli();
    let out = Command::new(nats)
        .args(["--server", &format!("nats://127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run nats");
    assert!(
        out.status.success(),
        "nats {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config_of(info: &Value) -> &Value {
    &info["config"]
}

/// The server holds `what` (`info`: its answer) as `wanted` asks: no false difference
/// that every drift check would write back.
fn held_as_asked(v: &str, what: &str, connection: &Connection, wanted: &Value, info: &Value) {
    let plan = sync::plan(what, connection, wanted, Some(config_of(info)), seen());
    assert_eq!(
        plan.write, None,
        "{v}: {what}: a false difference: {:?}",
        plan.notice
    );
    assert!(plan.in_sync.ok, "{v}: {what}");
}

fn never_seen() -> Past<'static> {
    Past {
        held: false,
        spec_changed: true,
        conditions: &[],
    }
}

fn seen() -> Past<'static> {
    Past {
        held: true,
        spec_changed: false,
        conditions: &[],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_assets_round_trip_on_every_server_version() {
    let stream: Stream = nats_operator::yaml::from_str(STREAM).expect("stream");
    let pull: Consumer = nats_operator::yaml::from_str(PULL).expect("pull");
    let push: Consumer = nats_operator::yaml::from_str(PUSH).expect("push");
    let kv: KeyValue = nats_operator::yaml::from_str(KV).expect("kv");
    let objects: ObjectStore = nats_operator::yaml::from_str(OBJECTS).expect("objects");
    let stream_config = server_config::stream(&stream.spec).expect("stream config");
    let pull_config = server_config::consumer(&pull.spec).expect("pull config");
    let push_config = server_config::consumer(&push.spec).expect("push config");
    let kv_config = server_config::key_value(&kv.spec).expect("kv config");
    let objects_config = server_config::object_store(&objects.spec).expect("objects config");

    for server in servers() {
        let v = server.version.clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let running = jetstream_server(&server, dir.path());
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", running.client))
            .await
            .expect("connect");
        let api = JetStreamApi::new(client, None);
        let connection = &stream.spec.connection;

        // Created from the spec; the server's configuration has no difference from it.
        assert_eq!(api.stream_info("orders").await, Ok(None), "{v}");
        let plan = sync::plan(
            "stream orders",
            connection,
            &stream_config,
            None,
            never_seen(),
        );
        let Some(Write::Create(config)) = &plan.write else {
            panic!("{v}: not created: {plan:?}")
        };
        api.create_stream(config).await.expect("create stream");
        let info = api
            .stream_info("orders")
            .await
            .expect("info")
            .expect("exists");
        held_as_asked(&v, "stream orders", connection, &stream_config, &info);

        for (name, config) in [("billing", &pull_config), ("shipping", &push_config)] {
            assert_eq!(api.consumer_info("orders", name).await, Ok(None), "{v}");
            api.put_consumer("orders", config, false)
                .await
                .unwrap_or_else(|e| panic!("{v}: create consumer {name}: {e}"));
            let info = api
                .consumer_info("orders", name)
                .await
                .expect("info")
                .expect("exists");
            held_as_asked(&v, name, &pull.spec.connection, config, &info);
        }
        for (what, config) in [("kv", &kv_config), ("objects", &objects_config)] {
            let name = config["name"].as_str().expect("name").to_string();
            api.create_stream(config)
                .await
                .unwrap_or_else(|e| panic!("{v}: create {what}: {e}"));
            let info = api.stream_info(&name).await.expect("info").expect("exists");
            held_as_asked(&v, what, connection, config, &info);
        }
        // The real CLI sees the bucket the way nats.go made it.
        let status = cli(running.client, &["kv", "status", "settings"]);
        assert!(status.contains("settings"), "{v}: {status}");

        // Changed out of band with the CLI: seen, put back, and the CLI shows the spec again.
        cli(
            running.client,
            &["stream", "edit", "orders", "--max-msgs", "7", "--force"],
        );
        let info = api
            .stream_info("orders")
            .await
            .expect("info")
            .expect("exists");
        let drift = sync::plan(
            "stream orders",
            connection,
            &stream_config,
            Some(config_of(&info)),
            seen(),
        );
        let notice = drift.notice.clone().expect("an Event");
        assert_eq!(notice.reason, "DriftCorrected", "{v}");
        assert!(
            notice.message.contains("max_msgs: server 7, spec 100000"),
            "{v}: {}",
            notice.message
        );
        let Some(Write::Update(config)) = &drift.write else {
            panic!("{v}: not put back")
        };
        api.update_stream(config).await.expect("update");
        let shown: Value = serde_json::from_str(&cli(
            running.client,
            &["stream", "info", "orders", "--json"],
        ))
        .expect("json");
        assert_eq!(shown["config"]["max_msgs"], 100000, "{v}");

        // Deleted out of band: re-created from the spec.
        cli(running.client, &["stream", "rm", "orders", "--force"]);
        assert_eq!(api.stream_info("orders").await, Ok(None), "{v}");
        let back = sync::plan("stream orders", connection, &stream_config, None, seen());
        assert_eq!(back.notice.map(|n| n.reason), Some("Recreated"), "{v}");
        api.create_stream(&stream_config).await.expect("re-create");

        // A change the server cannot make is refused in its words.
        let mut memory = stream_config.clone();
        memory["storage"] = "memory".into();
        match api.update_stream(&memory).await {
            Err(Failure::Refused(e)) => assert!(!e.description.is_empty(), "{v}: {e:?}"),
            other => panic!("{v}: storage change not refused: {other:?}"),
        }

        // Deleted through the API: nothing left.
        api.delete_consumer("orders", "billing")
            .await
            .expect("delete consumer");
        assert_eq!(
            api.consumer_info("orders", "billing").await,
            Ok(None),
            "{v}"
        );
        api.delete_stream("orders").await.expect("delete stream");
        api.delete_stream("orders")
            .await
            .expect("deleting twice is fine");
        assert_eq!(api.stream_info("orders").await, Ok(None), "{v}");
        let (newer, ignored) = newer_fields_round_trip(&api, &server).await;
        println!(
            "{v}: stream, 2 consumers, KV and object store round-trip, and {newer} assets with \
             the fields of newer releases; drift put back, deletion re-created; {ignored} \
             streams with fields this release ignores written once and reported"
        );
    }
}
