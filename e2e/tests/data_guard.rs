//! JetStream day 2 as a user meets it with kubectl and the nats CLI, on the real node:
//! `status.jetstream` and `JetStreamHealthy` from real servers; `kubectl scale` below a
//! stream's replicas refused with the stream named; 3 → 5 → 3 while an R3 stream and an
//! R5-then-R3 stream take acknowledged writes, the operator moving every replica off the
//! departing members and removing them from the meta group (no ghost peers in
//! `nats server report jetstream`, run as the operator's system user); a lost member
//! (pod and claim deleted) replaced and its stream replicas current again; and the
//! deletion of a cluster holding streams refused until it is annotated.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use nats_operator::api::v1beta1::NatsCluster;
use nats_operator_e2e::jsload::{Published, extra_copies, only_retries_copied, publisher, stored};
use nats_operator_e2e::natscluster::{condition, condition_message, poll, wait_cluster};
use nats_operator_e2e::realnats::{Env, READY, nats_cli, setup_with, v1beta1, wait_full_mesh};
use nats_operator_e2e::scenario::scenario;
use nats_operator_e2e::storage::{EXPANDABLE_CLASS, VolumeStandIn, ensure_expandable_class};

/// The JetStream status refreshes every 30 s; a change of the data plane alone (a new
/// stream) shows within one refresh.
const REFRESH: Duration = Duration::from_secs(75);

/// `JetStreamHealthy` as `(status, reason)`.
fn jetstream_condition(c: &NatsCluster) -> (String, String) {
    condition(c, "JetStreamHealthy").unwrap_or_default()
}

/// The meta group as `nats server report jetstream` prints it, run as the operator's
/// system user: `(server, current, online)` per row.
fn meta_report(server: &str, password: &str) -> Result<Vec<(String, bool, bool)>> {
    let out = nats_cli(
        server,
        &[
            "--user",
            "nats-operator",
            "--password",
            password,
            "server",
            "report",
            "jetstream",
        ],
    )?;
    let mut rows = Vec::new();
    let mut in_meta = false;
    for line in out.lines() {
        if line.contains("RAFT Meta Group Information") {
            in_meta = true;
            continue;
        }
        if !in_meta {
            continue;
        }
        let cells: Vec<&str> = line.split('│').map(str::trim).collect();
        // │ name │ id │ leader │ current │ online │ active │ lag │
        if cells.len() >= 7 && cells[1].starts_with("gs-") {
            rows.push((cells[1].to_string(), cells[4] == "true", cells[5] == "true"));
        }
    }
    ensure!(!rows.is_empty(), "no meta group in:\n{out}");
    Ok(rows)
}

/// `nats stream info <stream> --json`.
fn stream_info(server: &str, stream: &str) -> Result<serde_json::Value> {
    let info = nats_cli(server, &["stream", "info", stream, "--json"])?;
    serde_json::from_str(&info).context("stream info --json")
}

/// `(configured replicas, leader, current followers, followers)` of `stream`.
fn stream_replicas(server: &str, stream: &str) -> Result<(u64, String, usize, usize)> {
    let info = stream_info(server, stream)?;
    let followers = info["cluster"]["replicas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok((
        info["config"]["num_replicas"].as_u64().unwrap_or(0),
        info["cluster"]["leader"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        followers.iter().filter(|r| r["current"] == true).count(),
        followers.len(),
    ))
}

/// The servers that hold a replica of `stream` (its leader first).
fn stream_hosts(server: &str, stream: &str) -> Result<Vec<String>> {
    let info = stream_info(server, stream)?;
    let mut hosts = vec![
        info["cluster"]["leader"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ];
    hosts.extend(
        info["cluster"]["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_string)),
    );
    Ok(hosts)
}

/// How long until no stream of `streams` has a replica on `gone` (polled every 200 ms,
/// up to `limit`).
fn moved_off(server: &str, streams: &[String], gone: &[&str], limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        for stream in streams {
            match stream_hosts(server, stream) {
                Ok(hosts) => seen.extend(
                    hosts
                        .into_iter()
                        .filter(|h| gone.contains(&h.as_str()) || h.is_empty()),
                ),
                Err(e) => seen.push(format!("{stream}: {e:#}")),
            }
        }
        if seen.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("after {limit:?} still on {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `stream` has a leader and `replicas - 1` current followers.
async fn stream_current(server: &str, stream: &str, replicas: usize) -> Result<()> {
    poll(
        READY,
        Duration::from_millis(500),
        &format!("{stream} with {replicas} current replicas"),
        || async {
            Ok(match stream_replicas(server, stream) {
                Ok((_, leader, current, all))
                    if !leader.is_empty() && current + 1 == replicas && all + 1 == replicas =>
                {
                    Ok(())
                }
                Ok(seen) => Err(format!("{seen:?}")),
                Err(e) => Err(format!("{e:#}")),
            })
        },
    )
    .await
}

/// Every acknowledged message of `published` is in `stream` (copies only of retries).
async fn all_stored(
    js: &jetstream::Context,
    stream: &str,
    published: &Published,
) -> Result<String> {
    let ids = stored(js, stream).await?;
    let found: BTreeSet<u64> = ids.iter().map(|m| m.id).collect();
    let missing: Vec<&u64> = published.acked.difference(&found).take(10).collect();
    ensure!(
        missing.is_empty(),
        "{stream}: acknowledged but not in the stream: {missing:?}"
    );
    only_retries_copied(&extra_copies(&ids), published)?;
    ensure!(
        published.gave_up.is_empty(),
        "{stream}: never acknowledged: {:?}",
        published.gave_up
    );
    ensure!(
        published.acked.len() > 100,
        "{stream}: only {} messages published",
        published.acked.len()
    );
    Ok(format!(
        "{stream}: {} acknowledged, {} found, {} retried (longest wait {:.1} s)",
        published.acked.len(),
        found.len(),
        published.retried.len(),
        published.longest_wait.as_secs_f64()
    ))
}

async fn wait_condition(
    env: &Env,
    what: &str,
    ok: impl Fn(&NatsCluster) -> bool,
) -> Result<NatsCluster> {
    wait_cluster(&env.client, env.ns(), "gs", REFRESH, what, ok).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_data_plane_and_the_webhook_guards_its_streams() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup_with("jsguard", true, false).await? else {
        return Ok(());
    };
    let Some(version) = env.jetstream_upgrade_path()?.last().cloned() else {
        bail!("no JetStream version");
    };
    ensure_expandable_class(&env.client).await?;
    let _volumes = VolumeStandIn::start(env.client.clone(), env.ns(), env.volumes_dir());
    env.apply(&v1beta1(
        "gs",
        &format!(
            "  size: 3\n  version: \"{version}\"\n  jetstream:\n    memoryStorage: 64Mi\n    fileStorage:\n      size: 1Gi\n      storageClassName: {EXPANDABLE_CLASS}\n      reclaimPolicy: Delete\n"
        ),
    ))?;
    let r = async {
        env.wait_ready("gs", 3).await?;
        wait_full_mesh(&env, "gs", 3, &version).await?;
        let proxy = env.service("gs", 4222).await?;
        let server = format!("nats://{}", proxy.addr());
        // Streams as a user makes them: an R3 one and an R1 one, with some data.
        let cli = |args: &[&str]| nats_cli(&server, args);
        let mut made = None;
        for _ in 0..60 {
            match cli(&[
                "stream", "add", "ORDERS", "--subjects", "orders.>", "--replicas", "3",
                "--storage", "file", "--defaults",
            ]) {
                Ok(_) => {
                    made = Some(());
                    break;
                }
                Err(e) => {
                    eprintln!("stream add: {e:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        ensure!(made.is_some(), "could not create the stream ORDERS");
        cli(&[
            "stream", "add", "LOGS", "--subjects", "logs.>", "--replicas", "1", "--storage",
            "file", "--defaults",
        ])?;
        cli(&["pub", "logs.new", "line {{Count}}", "--count", "50"])?;
        cli(&["consumer", "add", "ORDERS", "audit", "--pull", "--defaults"])?;
        let made_at = Instant::now();

        // status.jetstream as the servers see it.
        let c = wait_condition(&env, "status.jetstream with both streams, healthy", |c| {
            let js = c.status.as_ref().and_then(|s| s.jetstream.as_ref());
            js.is_some_and(|j| j.streams == 2 && j.consumers == 1 && j.meta_peers.len() == 3)
                && jetstream_condition(c).0 == "True"
        })
        .await?;
        let shown = made_at.elapsed();
        let js = c.status.as_ref().and_then(|s| s.jetstream.clone()).unwrap_or_default();
        ensure!(
            ["gs-1", "gs-2", "gs-3"].contains(&js.meta_leader.as_str()),
            "meta leader: {js:?}"
        );
        ensure!(
            js.meta_peers.iter().all(|p| p.current && !p.offline),
            "meta peers: {:?}",
            js.meta_peers
        );
        let first = js.stream_replicas.first().cloned().unwrap_or_default();
        ensure!(
            (first.account.as_str(), first.name.as_str(), first.replicas) == ("$G", "ORDERS", 3),
            "stream replicas: {:?}",
            js.stream_replicas
        );
        ensure!(js.members.len() == 3, "storage of every member: {:?}", js.members);
        let table = env.cluster.kubectl_run(&["get", "natscluster", "gs", "-n", env.ns()])?;
        table.ensure_success()?;
        ensure!(
            table.stdout.contains("JETSTREAM") && table.stdout.contains("Healthy"),
            "kubectl get shows the JetStream column: {}",
            table.stdout
        );

        // Below the stream's replicas: refused, by `kubectl scale` and by an edit.
        let scale = |n: &str| {
            env.cluster.kubectl_run(&[
                "scale", "natscluster", "gs", "-n", env.ns(), "--replicas", n,
            ])
        };
        let refused = scale("1")?;
        ensure!(
            refused.code != Some(0)
                && refused.stderr.contains("\"ORDERS\" in account $G (3 replicas)")
                && refused.stderr.contains("spec.replicas"),
            "kubectl scale to 1: {refused}"
        );
        let edit = env.cluster.kubectl_run(&[
            "patch", "natscluster", "gs", "-n", env.ns(), "--type", "merge", "-p",
            r#"{"spec":{"size":2}}"#,
        ])?;
        ensure!(
            edit.code != Some(0) && edit.stderr.contains("spec.size: Forbidden: 2 members"),
            "kubectl patch size 2: {edit}"
        );
        println!("NUMBERS data guard: kubectl scale refused: {}", refused.stderr.trim());

        // 3 -> 5 -> 3 under acknowledged writes to an R3 stream and to one that is R5
        // while there are 5 members: the operator moves every replica off gs-5 and gs-4
        // before it stops them, then removes them from the meta group.
        let secrets: Api<Secret> = Api::namespaced(env.client.clone(), env.ns());
        let system = secrets.get("gs-system-user").await.context("the operator's system user")?;
        let password = system
            .data
            .as_ref()
            .and_then(|d| d.get("password"))
            .map(|p| String::from_utf8_lossy(&p.0).into_owned())
            .context("no password in gs-system-user")?;
        cli(&[
            "stream", "add", "EVENTS", "--subjects", "events.>", "--replicas", "3", "--storage",
            "file", "--defaults",
        ])?;
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(&server)
            .await?;
        let js = jetstream::new(client);
        let stop = Arc::new(AtomicBool::new(false));
        let orders = publisher(js.clone(), "orders", stop.clone());
        let events = publisher(js.clone(), "events", stop.clone());
        tokio::time::sleep(Duration::from_secs(2)).await;
        scale("5")?.ensure_success()?;
        env.wait_ready("gs", 5).await?;
        wait_full_mesh(&env, "gs", 5, &version).await?;
        cli(&["stream", "edit", "EVENTS", "--replicas", "5", "-f"])?;
        stream_current(&server, "EVENTS", 5).await?;
        let refused = scale("3")?;
        ensure!(
            refused.code != Some(0) && refused.stderr.contains("\"EVENTS\" in account $G (5 replicas)"),
            "kubectl scale to 3 under an R5 stream: {refused}"
        );
        cli(&["stream", "edit", "EVENTS", "--replicas", "3", "-f"])?;
        stream_current(&server, "EVENTS", 3).await?;
        // A stream made now lands on the least used members, gs-4 and gs-5: it must move.
        cli(&[
            "stream", "add", "RECENT", "--subjects", "recent.>", "--replicas", "3", "--storage",
            "file", "--defaults",
        ])?;
        cli(&["pub", "recent.new", "item {{Count}}", "--count", "100"])?;
        stream_current(&server, "RECENT", 3).await?;
        let mut on_departing = Vec::new();
        for stream in ["ORDERS", "EVENTS", "RECENT"] {
            if stream_hosts(&server, stream)?.iter().any(|h| h == "gs-4" || h == "gs-5") {
                on_departing.push(stream.to_string());
            }
        }
        ensure!(!on_departing.is_empty(), "no stream on gs-4/gs-5: nothing to move");
        // Scaled at once, as a user would after the edit: status.jetstream may still say
        // EVENTS has 5 replicas, and the webhook's second look asks the members.
        let clusters: Api<NatsCluster> = Api::namespaced(env.client.clone(), env.ns());
        let stale = clusters
            .get("gs")
            .await?
            .status
            .and_then(|s| s.jetstream)
            .is_some_and(|j| j.stream_replicas.iter().any(|s| s.name == "EVENTS" && s.replicas == 5));
        let moving = {
            let (server, streams) = (server.clone(), on_departing.clone());
            tokio::task::spawn_blocking(move || {
                moved_off(&server, &streams, &["gs-4", "gs-5"], READY)
            })
        };
        let down = Instant::now();
        scale("3")?.ensure_success()?;
        env.wait_ready("gs", 3).await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), env.ns());
        poll(READY, Duration::from_millis(500), "gs-4 and gs-5 gone", || async {
            let left = pods.list(&ListParams::default().labels("nats_cluster=gs")).await?.items.len();
            Ok(if left == 3 { Ok(()) } else { Err(format!("{left} pods")) })
        })
        .await?;
        let stopped = down.elapsed();
        let moved = moving.await??;
        let peers = poll(READY, Duration::from_secs(1), "3 meta peers, all current", || async {
            Ok(match meta_report(&server, &password) {
                Ok(rows) if rows.len() == 3 && rows.iter().all(|(_, current, online)| *current && *online) => Ok(rows),
                Ok(rows) => Err(format!("{rows:?}")),
                Err(e) => Err(format!("{e:#}")),
            })
        })
        .await?;
        let forgotten = down.elapsed();
        stream_current(&server, "ORDERS", 3).await?;
        stream_current(&server, "EVENTS", 3).await?;
        let healthy = wait_condition(&env, "JetStreamHealthy after the scale-down", |c| {
            jetstream_condition(c).0 == "True"
        })
        .await?;
        let events_api: Api<Event> = Api::namespaced(env.client.clone(), env.ns());
        let reasons: Vec<String> = events_api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .filter(|r| r == "MovingStreams" || r == "PeerRemoved")
            .collect();
        ensure!(
            // One per answered removal: a removal whose answer timed out but took effect
            // shows only in the meta group (checked above).
            reasons.iter().any(|r| r == "PeerRemoved"),
            "Events: {reasons:?}"
        );
        ensure!(
            on_departing.is_empty() || reasons.iter().any(|r| r == "MovingStreams"),
            "{on_departing:?} had replicas on gs-4 or gs-5; Events: {reasons:?}"
        );
        let recent = stream_replicas(&server, "RECENT")?;
        let info = stream_info(&server, "RECENT")?;
        ensure!(info["state"]["messages"] == 100, "RECENT after the move: {recent:?} {info:#}");
        println!(
            "NUMBERS day 2: scale 5 -> 3 with {on_departing:?} on gs-4/gs-5 moved first (status.jetstream still said EVENTS had 5 replicas when `kubectl scale` was allowed: {stale}): data moved off both in {:.1} s, members stopped after {:.1} s, meta group of 3 current peers after {:.1} s ({} move Events); nats server report jetstream: {peers:?}; {}",
            moved.as_secs_f64(),
            stopped.as_secs_f64(),
            forgotten.as_secs_f64(),
            reasons.iter().filter(|r| *r == "MovingStreams").count(),
            condition_message(&healthy, "JetStreamHealthy")
        );

        // A lost member: its pod and its claim deleted while ORDERS takes writes. It comes
        // back empty under its name and catches up; ORDERS is R3 and current again.
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), env.ns());
        let lost = Instant::now();
        claims.delete("gs-data-gs-2", &DeleteParams::default()).await?;
        pods.delete("gs-2", &DeleteParams::default()).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        env.wait_ready("gs", 3).await?;
        stream_current(&server, "ORDERS", 3).await?;
        stream_current(&server, "EVENTS", 3).await?;
        let back = lost.elapsed();
        let peers = poll(READY, Duration::from_secs(1), "3 meta peers after the loss", || async {
            Ok(match meta_report(&server, &password) {
                Ok(rows) if rows.len() == 3 && rows.iter().all(|(_, current, online)| *current && *online) => Ok(rows),
                Ok(rows) => Err(format!("{rows:?}")),
                Err(e) => Err(format!("{e:#}")),
            })
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        let orders = orders.await?;
        let events = events.await?;
        let orders_seen = all_stored(&js, "ORDERS", &orders).await?;
        let events_seen = all_stored(&js, "EVENTS", &events).await?;
        println!(
            "NUMBERS day 2: lost member gs-2 (pod and claim) replaced, ORDERS and EVENTS with 3 current replicas after {:.1} s; meta {peers:?}; {orders_seen}; {events_seen}",
            back.as_secs_f64()
        );

        // Deleting the cluster with its streams: refused, then allowed when annotated.
        let delete = || {
            env.cluster.kubectl_run(&[
                "delete", "natscluster", "gs", "-n", env.ns(), "--wait=false",
            ])
        };
        let kept = delete()?;
        ensure!(
            kept.code != Some(0)
                && kept.stderr.contains("holds 4 JetStream streams")
                && kept.stderr.contains("nats.io/allow-delete-with-data=true"),
            "kubectl delete: {kept}"
        );
        env.cluster
            .kubectl_run(&[
                "annotate", "natscluster", "gs", "-n", env.ns(),
                "nats.io/allow-delete-with-data=true",
            ])?
            .ensure_success()?;
        delete()?.ensure_success()?;
        println!(
            "NUMBERS data guard: status.jetstream showed 2 streams {:.1} s after they were made; delete refused: {}",
            shown.as_secs_f64(),
            kept.stderr.trim()
        );
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("gs", 5).await);
    }
    Ok(())
}
