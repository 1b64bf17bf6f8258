//! NACK's API served by the operator, as a user meets it with kubectl and the nats CLI on
//! the real node, against a 3-member JetStream NatsCluster:
//! - NACK's example manifests (a stream and its pull and push consumers, written in
//!   NACK's shapes and naming no server), a KeyValue and an ObjectStore apply unchanged,
//!   become Ready, and `nats stream info`/`consumer info`/`kv status` show, field for
//!   field, what they ask;
//! - every denial through kubectl, with nothing stored;
//! - an update of every kind, NACK's `Account` (and one whose Secret is missing), a drift made with
//!   the CLI put back, a stream deleted with the CLI re-created, and `observe` mode
//!   reporting both without writing;
//! - migration from NACK: a stream and durable consumer made outside Kubernetes take
//!   acknowledged writes and deliveries throughout while NACK's objects (its finalizers;
//!   the stream in `adopt` mode, the consumer as NACK wrote it) are applied: nothing is
//!   re-created or rewritten, nothing lost, nothing redelivered;
//! - deleting objects deletes the assets, except with `preventDelete`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream;
use nats_operator::controller::AssetSettings;
use nats_operator::jetstream::server_config;
use nats_operator_e2e::OperatorOptions;
use nats_operator_e2e::natscluster::poll;
use nats_operator_e2e::realnats::{Env, nats_cli, setup_operated, v1beta1, wait_full_mesh};
use nats_operator_e2e::scenario::scenario;
use nats_operator_e2e::storage::{EXPANDABLE_CLASS, VolumeStandIn, ensure_expandable_class};
use serde_json::Value;

/// The drift check's interval in this scenario (NACK's and ours default to a minute).
const INTERVAL: Duration = Duration::from_secs(4);
/// From apply to Ready, and from a drift to its correction (several intervals).
const SETTLE: Duration = Duration::from_secs(60);

/// NACK's `deploy/examples` (stream, pull and push consumer), written in its shapes,
/// with three replicas; a KeyValue and an ObjectStore.
const NACK_EXAMPLES: &str = r#"---
apiVersion: jetstream.nats.io/v1beta2
kind: Stream
metadata:
  name: mystream
spec:
  name: mystream
  subjects: ["orders.*"]
  storage: file
  maxAge: 1h
  replicas: 3
---
apiVersion: jetstream.nats.io/v1beta2
kind: Consumer
metadata:
  name: my-pull-consumer
spec:
  streamName: mystream
  durableName: my-pull-consumer
  deliverPolicy: all
  filterSubject: orders.received
  maxDeliver: 20
  ackPolicy: explicit
---
apiVersion: jetstream.nats.io/v1beta2
kind: Consumer
metadata:
  name: my-push-consumer
spec:
  streamName: mystream
  durableName: my-push-consumer
  deliverSubject: my-push-consumer.orders
  deliverPolicy: last
  ackPolicy: none
  replayPolicy: instant
  description: my consumer description
  flowControl: true
  heartbeatInterval: 1s
---
apiVersion: jetstream.nats.io/v1beta2
kind: KeyValue
metadata:
  name: settings
spec:
  bucket: settings
  history: 5
  ttl: 1h
  replicas: 3
  storage: file
---
apiVersion: jetstream.nats.io/v1beta2
kind: ObjectStore
metadata:
  name: files
spec:
  bucket: files
  description: uploads
  replicas: 1
  storage: memory
"#;

fn kubectl(env: &Env, args: &[&str], stdin: Option<&str>) -> Result<nats_operator_e2e::KubectlRun> {
    let mut all = vec!["-n", env.ns()];
    all.extend_from_slice(args);
    env.cluster.kubectl_run_stdin(&all, stdin)
}

/// `kubectl get <kind> <name> -o json`.
fn object(env: &Env, kind: &str, name: &str) -> Result<Value> {
    kubectl(env, &["get", kind, name, "-o", "json"], None)?
        .ensure_success()?
        .json()
}

/// The condition `type_` of an object's status as `(status, reason, message)`.
fn condition(o: &Value, type_: &str) -> Option<(String, String, String)> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// Waits until the object's `Ready` and `InSync` are True for its current generation.
async fn wait_synced(env: &Env, kind: &str, name: &str) -> Result<Value> {
    poll(
        SETTLE,
        Duration::from_millis(250),
        &format!("{kind} {name} Ready and InSync"),
        || async {
            let o = object(env, kind, name)?;
            let current = o["status"]["observedGeneration"] == o["metadata"]["generation"];
            let ok = |t: &str| condition(&o, t).is_some_and(|(s, _, _)| s == "True");
            Ok(if current && ok("Ready") && ok("InSync") {
                Ok(o)
            } else {
                Err(format!("{:?}", o["status"]))
            })
        },
    )
    .await
}

/// Waits until the object's condition `type_` has `reason`.
async fn wait_reason(
    env: &Env,
    kind: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> Result<(String, String, String)> {
    poll(
        SETTLE,
        Duration::from_millis(250),
        &format!("{kind} {name} {type_} {reason}"),
        || async {
            let o = object(env, kind, name)?;
            Ok(match condition(&o, type_) {
                Some(c) if c.1 == reason => Ok(c),
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await
}

/// The Events of an object, as `reason: message` lines.
fn events(env: &Env, name: &str) -> Result<Vec<String>> {
    let out = kubectl(
        env,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "json",
        ],
        None,
    )?
    .ensure_success()?
    .json()?;
    Ok(out["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or_default(),
                e["message"]
                    .as_str()
                    .or(e["note"].as_str())
                    .unwrap_or_default()
            )
        })
        .collect())
}

async fn wait_event(env: &Env, name: &str, reason: &str) -> Result<String> {
    poll(
        SETTLE,
        Duration::from_millis(250),
        &format!("a {reason} Event on {name}"),
        || async {
            let all = events(env, name)?;
            Ok(
                match all.iter().find(|e| e.starts_with(&format!("{reason}:"))) {
                    Some(e) => Ok(e.clone()),
                    None => Err(format!("{all:?}")),
                },
            )
        },
    )
    .await
}

/// The configuration an object's spec asks of the JetStream API.
fn wanted_config(o: &Value) -> Result<Value> {
    use nats_operator::jetstream::v1beta2 as js;
    let spec = o["spec"].clone();
    let built = match o["kind"].as_str().unwrap_or_default() {
        "Stream" => server_config::stream(&serde_json::from_value::<js::StreamSpec>(spec)?),
        "Consumer" => server_config::consumer(&serde_json::from_value::<js::ConsumerSpec>(spec)?),
        "KeyValue" => server_config::key_value(&serde_json::from_value::<js::KeyValueSpec>(spec)?),
        "ObjectStore" => {
            server_config::object_store(&serde_json::from_value::<js::ObjectStoreSpec>(spec)?)
        }
        other => bail!("no configuration for {other}"),
    };
    built.map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn json_cli(server: &str, args: &[&str]) -> Result<Value> {
    let out = nats_cli(server, args)?;
    serde_json::from_str(&out).with_context(|| format!("nats {args:?} printed no JSON: {out}"))
}

/// Applies `manifest`, expecting kubectl to refuse it with every one of `needles`.
fn denied(env: &Env, manifest: &str, needles: &[&str]) -> Result<String> {
    let run = kubectl(env, &["apply", "-f", "-"], Some(manifest))?;
    run.ensure_failure_with(needles)?;
    Ok(run.stderr.trim().to_string())
}

fn stream_manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: jetstream.nats.io/v1beta2\nkind: Stream\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_manifests_are_served_checked_and_kept_in_sync() -> Result<()> {
    let _s = scenario();
    let options = |ns: &str| OperatorOptions {
        assets: AssetSettings {
            sync_interval: INTERVAL,
            ..Default::default()
        },
        ..OperatorOptions::namespace(ns)
    };
    let Some(env) = setup_operated("assets", Some(options), false).await? else {
        return Ok(());
    };
    let Some(version) = env.jetstream_upgrade_path()?.last().cloned() else {
        bail!("no JetStream version");
    };
    ensure_expandable_class(&env.client).await?;
    let _volumes = VolumeStandIn::start(env.client.clone(), env.ns(), env.volumes_dir());
    env.apply(&v1beta1(
        "js",
        &format!(
            "  size: 3\n  version: \"{version}\"\n  jetstream:\n    memoryStorage: 64Mi\n    fileStorage:\n      size: 1Gi\n      storageClassName: {EXPANDABLE_CLASS}\n      reclaimPolicy: Delete\n"
        ),
    ))?;
    let r = async {
        env.wait_ready("js", 3).await?;
        wait_full_mesh(&env, "js", 3, &version).await?;
        let proxy = env.service("js", 4222).await?;
        let server = format!("nats://{}", proxy.addr());

        // 1. NACK's manifests, unchanged: they name no server; the namespace's only
        // JetStream NatsCluster holds them.
        let applied = Instant::now();
        kubectl(&env, &["apply", "-f", "-"], Some(NACK_EXAMPLES))?.ensure_success()?;
        for (kind, name) in [
            ("stream", "mystream"),
            ("consumer", "my-pull-consumer"),
            ("consumer", "my-push-consumer"),
            ("keyvalue", "settings"),
            ("objectstore", "files"),
        ] {
            wait_synced(&env, kind, name).await?;
        }
        let ready = applied.elapsed();
        // Field for field: what each spec asks (the JetStream API's names) against what
        // the CLI reads back.
        for (kind, name, cli) in [
            ("stream", "mystream", vec!["stream", "info", "mystream", "--json"]),
            ("consumer", "my-pull-consumer", vec!["consumer", "info", "mystream", "my-pull-consumer", "--json"]),
            ("consumer", "my-push-consumer", vec!["consumer", "info", "mystream", "my-push-consumer", "--json"]),
            ("keyvalue", "settings", vec!["stream", "info", "KV_settings", "--json"]),
            ("objectstore", "files", vec!["stream", "info", "OBJ_files", "--json"]),
        ] {
            let o = object(&env, kind, name)?;
            let wanted = wanted_config(&o)?;
            let held = json_cli(&server, &cli)?;
            let diffs = server_config::differences(&wanted, &held["config"]);
            ensure!(diffs.is_empty(), "{kind} {name}: the server differs from the spec: {diffs:?}");
        }
        let stream = json_cli(&server, &["stream", "info", "mystream", "--json"])?;
        let c = &stream["config"];
        ensure!(
            c["subjects"] == serde_json::json!(["orders.*"])
                && c["storage"] == "file"
                && c["max_age"] == 3_600_000_000_000_u64
                && c["num_replicas"] == 3
                && c["retention"] == "limits"
                && c["max_msgs"] == -1,
            "nats stream info mystream: {c}"
        );
        let pull = json_cli(&server, &["consumer", "info", "mystream", "my-pull-consumer", "--json"])?;
        let p = &pull["config"];
        ensure!(
            p["durable_name"] == "my-pull-consumer"
                && p["deliver_policy"] == "all"
                && p["filter_subject"] == "orders.received"
                && p["max_deliver"] == 20
                && p["ack_policy"] == "explicit"
                && p.get("deliver_subject").is_none_or(Value::is_null),
            "nats consumer info my-pull-consumer: {p}"
        );
        let push = json_cli(&server, &["consumer", "info", "mystream", "my-push-consumer", "--json"])?;
        let q = &push["config"];
        ensure!(
            q["deliver_subject"] == "my-push-consumer.orders"
                && q["deliver_policy"] == "last"
                && q["ack_policy"] == "none"
                && q["flow_control"] == true
                && q["idle_heartbeat"] == 1_000_000_000_u64
                && q["description"] == "my consumer description",
            "nats consumer info my-push-consumer: {q}"
        );
        let kv = nats_cli(&server, &["kv", "status", "settings"])?;
        let kv_stream = json_cli(&server, &["stream", "info", "KV_settings", "--json"])?;
        ensure!(
            kv_stream["config"]["max_msgs_per_subject"] == 5
                && kv_stream["config"]["max_age"] == 3_600_000_000_000_u64
                && kv_stream["config"]["num_replicas"] == 3
                && kv.contains("settings"),
            "nats kv status settings: {kv}\n{}",
            kv_stream["config"]
        );
        let obj = json_cli(&server, &["stream", "info", "OBJ_files", "--json"])?;
        ensure!(
            obj["config"]["storage"] == "memory" && obj["config"]["description"] == "uploads",
            "OBJ_files: {}",
            obj["config"]
        );
        let columns = kubectl(&env, &["get", "streams"], None)?;
        ensure!(
            columns.stdout.contains("Ready") && columns.stdout.contains("orders.*"),
            "kubectl get streams:\n{}",
            columns.stdout
        );
        let finalizers = object(&env, "stream", "mystream")?["metadata"]["finalizers"].clone();
        ensure!(finalizers == serde_json::json!(["stream.nats.io/finalizer"]), "{finalizers}");

        // 2. Denials through kubectl, nothing stored.
        let denials: [(String, &[&str]); 7] = [
            (stream_manifest("mystream", "  name: mystream\n  subjects: [\"orders.*\"]\n  storage: memory\n  maxAge: 1h\n  replicas: 3\n"), &["is invalid", "spec.storage", "create a new Stream"]),
            (stream_manifest("big", "  name: big\n  subjects: [\"big.>\"]\n  replicas: 5\n  natsClusterRef:\n    name: js\n"), &["is invalid", "spec.replicas", "NatsCluster js has 3 members"]),
            (stream_manifest("dupe", "  name: dupe\n  subjects: [\"orders.received\"]\n"), &["is invalid", "spec.subjects[0]", "Stream \"mystream\""]),
            (stream_manifest("huge", "  name: huge\n  subjects: [\"huge\"]\n  storage: file\n  maxBytes: 5368709120\n  natsClusterRef:\n    name: js\n"), &["is invalid", "spec.maxBytes", "spec.jetstream.fileStorage.size"]),
            (stream_manifest("slow", "  name: slow\n  subjects: [\"slow\"]\n  maxAge: 1 hour\n"), &["is invalid", "spec.maxAge"]),
            ("apiVersion: jetstream.nats.io/v1beta2\nkind: KeyValue\nmetadata:\n  name: bad\nspec:\n  bucket: bad.name\n".to_string(), &["is invalid", "spec.bucket"]),
            ("apiVersion: jetstream.nats.io/v1beta2\nkind: Consumer\nmetadata:\n  name: my-pull-consumer\nspec:\n  streamName: mystream\n  durableName: my-pull-consumer\n  deliverPolicy: new\n  filterSubject: orders.received\n  maxDeliver: 20\n  ackPolicy: explicit\n".to_string(), &["is invalid", "spec.deliverPolicy"]),
        ];
        let mut refusals = Vec::new();
        for (manifest, needles) in &denials {
            refusals.push(denied(&env, manifest, needles)?);
        }
        for (kind, name) in [("stream", "big"), ("stream", "huge"), ("stream", "dupe"), ("stream", "slow"), ("keyvalue", "bad")] {
            let got = kubectl(&env, &["get", kind, name], None)?;
            ensure!(!got.success() && got.stderr.contains("NotFound"), "{kind} {name} was stored: {got}");
        }
        ensure!(
            object(&env, "stream", "mystream")?["spec"]["storage"] == "file",
            "the refused storage change was stored"
        );
        // A consumer whose stream has no object: admitted, with a warning.
        let orphan = kubectl(
            &env,
            &["apply", "-f", "-"],
            Some("apiVersion: jetstream.nats.io/v1beta2\nkind: Consumer\nmetadata:\n  name: later\nspec:\n  streamName: LATER\n  durableName: later\n  ackPolicy: explicit\n"),
        )?;
        orphan.ensure_success()?;
        ensure!(orphan.stderr.contains("Warning: spec.streamName"), "no warning: {orphan}");
        let (_, reason, message) = wait_reason(&env, "consumer", "later", "Ready", "StreamNotFound").await?;
        println!("NUMBERS assets: a consumer of a missing stream is {reason}: {message}");

        // 3. An update, then drift made with the CLI, put back; a deleted stream comes back.
        let updated = Instant::now();
        kubectl(
            &env,
            &["apply", "-f", "-"],
            Some(&stream_manifest("mystream", "  name: mystream\n  subjects: [\"orders.*\"]\n  storage: file\n  maxAge: 1h\n  replicas: 3\n  maxMsgs: 1000\n")),
        )?
        .ensure_success()?;
        wait_synced(&env, "stream", "mystream").await?;
        let max = |s: &str| -> Result<Value> { Ok(json_cli(s, &["stream", "info", "mystream", "--json"])?["config"]["max_msgs"].clone()) };
        ensure!(max(&server)? == 1000, "maxMsgs not updated");
        let update_took = updated.elapsed();
        wait_event(&env, "mystream", "Updated").await?;

        // The other kinds update too: the consumer's maxDeliver, the bucket's history, the
        // store's description.
        let consumer_pull = NACK_EXAMPLES
            .split("---\n")
            .find(|d| d.contains("name: my-pull-consumer"))
            .context("the pull consumer manifest")?
            .replace("maxDeliver: 20", "maxDeliver: 30");
        let kv = "apiVersion: jetstream.nats.io/v1beta2\nkind: KeyValue\nmetadata:\n  name: settings\nspec:\n  bucket: settings\n  history: 10\n  ttl: 1h\n  replicas: 3\n  storage: file\n";
        let files = "apiVersion: jetstream.nats.io/v1beta2\nkind: ObjectStore\nmetadata:\n  name: files\nspec:\n  bucket: files\n  description: uploads and reports\n  replicas: 1\n  storage: memory\n";
        for m in [consumer_pull.as_str(), kv, files] {
            kubectl(&env, &["apply", "-f", "-"], Some(m))?.ensure_success()?;
        }
        for (kind, name) in [("consumer", "my-pull-consumer"), ("keyvalue", "settings"), ("objectstore", "files")] {
            wait_synced(&env, kind, name).await?;
        }
        let pull = json_cli(&server, &["consumer", "info", "mystream", "my-pull-consumer", "--json"])?;
        let kv_stream = json_cli(&server, &["stream", "info", "KV_settings", "--json"])?;
        let obj = json_cli(&server, &["stream", "info", "OBJ_files", "--json"])?;
        ensure!(
            pull["config"]["max_deliver"] == 30
                && kv_stream["config"]["max_msgs_per_subject"] == 10
                && obj["config"]["description"] == "uploads and reports",
            "updates not on the server: {} {} {}",
            pull["config"]["max_deliver"],
            kv_stream["config"]["max_msgs_per_subject"],
            obj["config"]["description"]
        );

        // NACK's Account (connection settings) keeps working. This cluster is open, but
        // it has the operator's system user, so nats-server checks any credentials a
        // client presents: an Account for it names servers only. One whose Secret is
        // missing says so in its assets' status.
        let accounts = format!(
            "apiVersion: jetstream.nats.io/v1beta2\nkind: Account\nmetadata:\n  name: a\nspec:\n  name: a\n  servers: [\"{server}\"]\n---\napiVersion: jetstream.nats.io/v1beta2\nkind: Account\nmetadata:\n  name: b\nspec:\n  name: b\n  servers: [\"{server}\"]\n  token:\n    secret:\n      name: missing\n    token: token\n---\n{}---\n{}",
            stream_manifest("via-account", "  name: VIA_ACCOUNT\n  subjects: [\"acct.>\"]\n  account: a\n"),
            stream_manifest("via-b", "  name: VIA_B\n  subjects: [\"b.>\"]\n  account: b\n")
        );
        kubectl(&env, &["apply", "-f", "-"], Some(&accounts))?.ensure_success()?;
        wait_synced(&env, "stream", "via-account").await?;
        ensure!(
            nats_cli(&server, &["stream", "info", "VIA_ACCOUNT"]).is_ok(),
            "VIA_ACCOUNT not on the server"
        );
        let (_, _, why) = wait_reason(&env, "stream", "via-b", "Ready", "NoServer").await?;
        ensure!(why.contains("Secret \"missing\" does not exist"), "{why}");

        nats_cli(&server, &["stream", "edit", "mystream", "--max-msgs", "7", "-f"])?;
        let drifted = Instant::now();
        poll(SETTLE, Duration::from_millis(250), "the drift put back", || async {
            Ok(match max(&server)? {
                v if v == 1000 => Ok(()),
                v => Err(format!("max_msgs {v}")),
            })
        })
        .await?;
        let put_back = drifted.elapsed();
        let corrected = wait_event(&env, "mystream", "DriftCorrected").await?;
        ensure!(corrected.contains("max_msgs: server 7, spec 1000"), "{corrected}");

        nats_cli(&server, &["pub", "orders.received", "one", "--count", "3"])?;
        nats_cli(&server, &["stream", "rm", "mystream", "-f"])?;
        let removed = Instant::now();
        poll(SETTLE, Duration::from_millis(250), "mystream re-created", || async {
            Ok(match nats_cli(&server, &["stream", "info", "mystream", "--json"]) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{e:#}")),
            })
        })
        .await?;
        let recreated = removed.elapsed();
        wait_event(&env, "mystream", "Recreated").await?;
        // Its consumers come back with it (their objects are woken by the stream's).
        poll(SETTLE, Duration::from_millis(250), "the pull consumer re-created", || async {
            Ok(nats_cli(&server, &["consumer", "info", "mystream", "my-pull-consumer", "--json"]).map(|_| ()).map_err(|e| format!("{e:#}")))
        })
        .await?;

        // Observe: reported, never written.
        nats_cli(&server, &["stream", "add", "WATCHED", "--subjects", "watched.>", "--storage", "memory", "--replicas", "1", "--max-msgs", "50", "--defaults"])?;
        kubectl(
            &env,
            &["apply", "-f", "-"],
            Some(&stream_manifest("watched", "  name: WATCHED\n  subjects: [\"watched.>\"]\n  storage: memory\n  maxMsgs: 10\n  mode: observe\n")),
        )?
        .ensure_success()?;
        let (_, _, drift) = wait_reason(&env, "stream", "watched", "InSync", "Drifted").await?;
        ensure!(drift.contains("max_msgs: server 50, spec 10"), "{drift}");
        ensure!(
            json_cli(&server, &["stream", "info", "WATCHED", "--json"])?["config"]["max_msgs"] == 50,
            "observe mode wrote"
        );
        ensure!(
            object(&env, "stream", "watched")?["metadata"]["finalizers"].is_null(),
            "an observed stream needs no finalizer"
        );
        nats_cli(&server, &["stream", "rm", "WATCHED", "-f"])?;
        wait_reason(&env, "stream", "watched", "Ready", "NotFound").await?;
        wait_event(&env, "watched", "Deleted").await?;
        tokio::time::sleep(INTERVAL * 2).await;
        ensure!(nats_cli(&server, &["stream", "info", "WATCHED"]).is_err(), "observe mode re-created WATCHED");
        println!(
            "NUMBERS assets: NACK's 5 example objects Ready and in sync {:.1} s after kubectl apply; an update on the server {:.1} s after apply; a CLI edit put back after {:.1} s, a CLI delete re-created after {:.1} s (interval {} s ±25 %); refusals: {}",
            ready.as_secs_f64(),
            update_took.as_secs_f64(),
            put_back.as_secs_f64(),
            recreated.as_secs_f64(),
            INTERVAL.as_secs(),
            refusals.iter().map(|r| r.lines().last().unwrap_or_default()).collect::<Vec<_>>().join(" | ")
        );

        // 4. Migration from NACK: assets made outside Kubernetes (as NACK made them),
        // busy with acknowledged writes and deliveries, then NACK's objects applied.
        migrate_from_nack(&env, &server).await?;

        // 5. Deletion: the asset goes with its object, unless preventDelete.
        kubectl(&env, &["delete", "consumer", "my-pull-consumer", "--wait=true", "--timeout=60s"], None)?.ensure_success()?;
        ensure!(
            nats_cli(&server, &["consumer", "info", "mystream", "my-pull-consumer"]).is_err(),
            "my-pull-consumer still on the server"
        );
        kubectl(&env, &["delete", "keyvalue", "settings", "--wait=true", "--timeout=60s"], None)?.ensure_success()?;
        ensure!(nats_cli(&server, &["stream", "info", "KV_settings"]).is_err(), "KV_settings still on the server");
        kubectl(
            &env,
            &["apply", "-f", "-"],
            Some(&stream_manifest("kept", "  name: KEPT\n  subjects: [\"kept\"]\n  preventDelete: true\n")),
        )?
        .ensure_success()?;
        wait_synced(&env, "stream", "kept").await?;
        kubectl(&env, &["delete", "stream", "kept", "--wait=true", "--timeout=60s"], None)?.ensure_success()?;
        ensure!(nats_cli(&server, &["stream", "info", "KEPT"]).is_ok(), "preventDelete did not keep KEPT");
        // Everything else, while the operator runs (finalizers).
        kubectl(
            &env,
            &["delete", "streams,consumers,keyvalues,objectstores", "--all", "--wait=true", "--timeout=90s"],
            None,
        )?
        .ensure_success()?;
        ensure!(nats_cli(&server, &["stream", "info", "mystream"]).is_err(), "mystream still on the server");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("js", 3).await);
    }
    Ok(())
}

/// A stream and a durable pull consumer made with the CLI, a producer and a worker
/// running; then NACK's objects for them (NACK's finalizers, no mode: `manage`).
async fn migrate_from_nack(env: &Env, server: &str) -> Result<()> {
    nats_cli(
        server,
        &[
            "stream",
            "add",
            "PAYMENTS",
            "--subjects",
            "payments.>",
            "--storage",
            "file",
            "--replicas",
            "3",
            "--retention",
            "limits",
            "--discard",
            "old",
            "--dupe-window",
            "2m",
            "--defaults",
        ],
    )?;
    nats_cli(
        server,
        &[
            "consumer",
            "add",
            "PAYMENTS",
            "settle",
            "--pull",
            "--deliver",
            "all",
            "--ack",
            "explicit",
            "--wait",
            "30s",
            "--max-deliver=-1",
            "--max-pending",
            "1000",
            "--replay",
            "instant",
            "--defaults",
        ],
    )?;
    let before = json_cli(server, &["stream", "info", "PAYMENTS", "--json"])?;
    let client = async_nats::connect(server).await?;
    let js = jetstream::new(client.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let producer = {
        let (js, stop, acked) = (js.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sent = async {
                    js.publish(format!("payments.{n}"), n.to_string().into())
                        .await?
                        .await
                };
                if sent.await.is_ok() {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let stream = js.get_stream("PAYMENTS").await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer("settle")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let worker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut seen = std::collections::BTreeMap::<String, u32>::new();
            let mut redelivered = 0u64;
            let mut idle = 0;
            loop {
                let batch = consumer
                    .fetch()
                    .max_messages(100)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await;
                let Ok(mut batch) = batch else { continue };
                let mut got = 0;
                while let Some(Ok(m)) = batch.next().await {
                    got += 1;
                    if m.info().is_ok_and(|i| i.delivered > 1) {
                        redelivered += 1;
                    }
                    *seen.entry(m.subject.to_string()).or_default() += 1;
                    let _ = m.ack().await;
                }
                if stop.load(Ordering::Relaxed) {
                    idle = if got == 0 { idle + 1 } else { 0 };
                    if idle >= 3 {
                        return (seen, redelivered);
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    // NACK's objects as NACK left them: its finalizers on, the controller gone; the stream
    // also says `adopt` (ours), the consumer is as NACK wrote it (`manage`).
    let manifests = r#"---
apiVersion: jetstream.nats.io/v1beta2
kind: Stream
metadata:
  name: payments
  finalizers: ["stream.nats.io/finalizer"]
spec:
  mode: adopt
  name: PAYMENTS
  subjects: ["payments.>"]
  storage: file
  replicas: 3
  retention: limits
  discard: old
  duplicateWindow: 2m
  allowDirect: true
---
apiVersion: jetstream.nats.io/v1beta2
kind: Consumer
metadata:
  name: settle
  finalizers: ["consumer.nats.io/finalizer"]
spec:
  streamName: PAYMENTS
  durableName: settle
  deliverPolicy: all
  ackPolicy: explicit
  ackWait: 30s
  maxDeliver: -1
  maxAckPending: 1000
  replayPolicy: instant
"#;
    let adopted = Instant::now();
    kubectl(env, &["apply", "-f", "-"], Some(manifests))?.ensure_success()?;
    wait_synced(env, "stream", "payments").await?;
    wait_synced(env, "consumer", "settle").await?;
    let took = adopted.elapsed();
    tokio::time::sleep(INTERVAL * 2).await;
    stop.store(true, Ordering::Relaxed);
    producer.await?;
    let (seen, redelivered) = worker.await?;
    let after = json_cli(server, &["stream", "info", "PAYMENTS", "--json"])?;
    let info = json_cli(
        server,
        &["consumer", "info", "PAYMENTS", "settle", "--json"],
    )?;
    let acked = acked.load(Ordering::Relaxed);
    let duplicates = seen.values().filter(|n| **n > 1).count();
    ensure!(
        before["created"] == after["created"],
        "PAYMENTS was re-created: {} then {}",
        before["created"],
        after["created"]
    );
    ensure!(
        acked > 0 && seen.len() as u64 >= acked,
        "acknowledged {acked}, delivered {}",
        seen.len()
    );
    ensure!(
        duplicates == 0 && redelivered == 0 && info["num_redelivered"] == 0,
        "{duplicates} duplicates, {redelivered} redelivered, {}",
        info["num_redelivered"]
    );
    wait_event(env, "payments", "Adopted").await?;
    let writes: Vec<String> = events(env, "payments")?
        .into_iter()
        .chain(events(env, "settle")?)
        .collect();
    ensure!(
        !writes.iter().any(|e| e.starts_with("Created")
            || e.starts_with("Recreated")
            || e.starts_with("Updated")
            || e.starts_with("DriftCorrected")),
        "the operator wrote to adopted assets: {writes:?}"
    );
    println!(
        "NUMBERS migration: NACK's Stream and Consumer in sync {:.1} s after apply, no write to the server; {acked} acknowledged writes, {} delivered once each, 0 redelivered, stream created {} (unchanged)",
        took.as_secs_f64(),
        seen.len(),
        after["created"]
    );
    Ok(())
}
