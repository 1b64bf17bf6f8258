//! JetStream on real servers: a 3-member cluster with file storage on one claim per
//! member, an R3 stream written throughout a roll per minor version (2.10 → 2.11 → 2.12 →
//! 2.14 → 2.15, then one downgrade back to 2.14) and a pod-spec roll, a scale 3 → 5 → 3,
//! and a storage increase. Every acknowledged message must be in the stream afterwards.
//!
//! The servers run on the real node; each claim is a `hostPath` PersistentVolume that a
//! stand-in provisions, binds and grows ([`VolumeStandIn`]: the node has no CSI driver).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream::{self, consumer, stream};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};
use kube::Api;
use kube::api::ListParams;
use nats_operator_e2e::jsload::{extra_copies, only_retries_copied, publisher, stored};
use nats_operator_e2e::monitor;
use nats_operator_e2e::natscluster::{condition_message, poll, wait_cluster};
use nats_operator_e2e::realnats::{
    Env, READY, entered_lame_duck, members, nats_cli, setup_with, v1beta1, wait_full_mesh,
};
use nats_operator_e2e::scenario::scenario;
use nats_operator_e2e::storage::{
    EXPANDABLE_CLASS, VolumeStandIn, ensure_expandable_class, requested,
};
use serde_json::json;

const STREAM: &str = "ORDERS";

/// The stream answers with 3 replicas, a leader and every follower current. On timeout
/// the error carries what the client and every member saw (see [`jetstream_view`]).
async fn stream_healthy(
    env: &Env,
    client: &async_nats::Client,
    js: &jetstream::Context,
) -> Result<()> {
    let r = poll(
        READY,
        Duration::from_millis(500),
        "the R3 stream to have a leader and current replicas",
        || async {
            let mut s = match js.get_stream(STREAM).await {
                Ok(s) => s,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let info = match s.info().await {
                Ok(i) => i.clone(),
                Err(e) => return Ok(Err(e.to_string())),
            };
            let Some(c) = info.cluster else {
                return Ok(Err("no cluster info".into()));
            };
            let current = c.replicas.iter().filter(|r| r.current).count();
            if c.leader.is_none() || current != 2 {
                return Ok(Err(format!(
                    "leader {:?}, {current} of 2 followers current",
                    c.leader
                )));
            }
            Ok(Ok(()))
        },
    )
    .await;
    match r {
        Ok(()) => Ok(()),
        Err(e) => Err(e.context(jetstream_view(env, client).await)),
    }
}

/// The client's connection and, from each member's `/jsz`, its meta leader and its view
/// of the stream: which of "client cannot reach the cluster" and "the cluster has no
/// stream leader" a timeout was.
async fn jetstream_view(env: &Env, client: &async_nats::Client) -> String {
    let info = client.server_info();
    let mut out = format!(
        "client {:?} to {} ({})",
        client.connection_state(),
        info.server_name,
        info.client_ip
    );
    for m in members("js", 5) {
        let Some(addr) = env.monitoring(&m).await else {
            continue;
        };
        let view = match monitor::get_json(addr, "/jsz?accounts=true&streams=true&raft=true").await
        {
            Ok(j) => {
                let stream = j["account_details"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
                    .find(|s| s["name"] == STREAM);
                format!(
                    "meta leader {}, stream {}",
                    j["meta_cluster"]["leader"],
                    stream.map_or("absent".into(), |s| format!(
                        "leader {} msgs {} replicas {}",
                        s["cluster"]["leader"], s["state"]["messages"], s["cluster"]["replicas"]
                    ))
                )
            }
            Err(e) => format!("{e:#}"),
        };
        let health = match monitor::get(addr, "/healthz").await {
            Ok(_) => "healthy".to_string(),
            Err(e) => format!("{e:#}"),
        };
        out.push_str(&format!("\n  {m}: {health}; {view}"));
    }
    out
}

/// Every member answers `/healthz` 200 (JetStream current).
async fn members_healthy(env: &Env, cluster: &str, size: u32) -> Result<()> {
    poll(
        READY,
        Duration::from_millis(500),
        "every member's /healthz",
        || async move {
            for m in members(cluster, size) {
                let Some(addr) = env.monitoring(&m).await else {
                    return Ok(Err(format!("{m}: no IP")));
                };
                if let Err(e) = monitor::get_json(addr, "/healthz").await {
                    return Ok(Err(format!("{m}: {e:#}")));
                }
            }
            Ok(Ok(()))
        },
    )
    .await
}

/// The namespace's claims that are not being deleted (the test control plane runs no
/// PVC-protection controller, so deleted claims keep their finalizer and stay listed).
async fn claims(env: &Env) -> Result<Vec<PersistentVolumeClaim>> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), env.ns());
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect())
}

async fn events(env: &Env, reason: &str) -> Result<Vec<String>> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), env.ns());
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect())
}

/// The host PID of the nats-server process of `pod`: its container's process (the real
/// node's container cgroup), or a descendant of it (the process kubelet's container process
/// runs it).
async fn nats_server_pid(env: &Env, pod: &str) -> Result<u32> {
    let roots = env.container_pids(pod, "nats").await?;
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if let Some(pid) = roots
        .iter()
        .find(|p| comm(**p).trim().starts_with("nats-server"))
    {
        return Ok(*pid);
    }
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if !comm(pid).trim().starts_with("nats-server") {
            continue;
        }
        let mut cur = Some(pid);
        while let Some(c) = cur.filter(|c| *c > 1) {
            if roots.contains(&c) {
                return Ok(pid);
            }
            cur = parent(c);
        }
    }
    bail!("no nats-server process in {pod}'s container (processes {roots:?})")
}

fn signal(pid: u32, sig: rustix::process::Signal) -> Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .context("pid")?;
    rustix::process::kill_process(pid, sig).with_context(|| format!("signal {sig:?} to {pid:?}"))
}

/// The whole life of a JetStream cluster under load: two rolls, scaling, storage growth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_stream_keeps_every_acknowledged_message_through_rolls_scaling_and_growth() -> Result<()>
{
    let _s = scenario();
    let Some(env) = setup_with("jetstream", true, false).await? else {
        return Ok(());
    };
    let path = env.jetstream_upgrade_path()?;
    let old = path[0].clone();
    // The last roll goes back one minor: `current` is the version the rest runs on.
    let current = path[path.len() - 2].clone();
    ensure_expandable_class(&env.client).await?;
    let _volumes = VolumeStandIn::start(env.client.clone(), env.ns(), env.volumes_dir());
    env.apply(&v1beta1(
        "js",
        &format!(
            "  size: 3\n  version: \"{old}\"\n  config:\n    lameDuckDuration: 30s\n  jetstream:\n    memoryStorage: 64Mi\n    catchUpTimeout: 2m\n    fileStorage:\n      size: 1Gi\n      storageClassName: {EXPANDABLE_CLASS}\n      reclaimPolicy: Delete\n"
        ),
    ))?;
    let r = async {
        env.wait_ready("js", 3).await?;
        wait_full_mesh(&env, "js", 3, &old).await?;
        members_healthy(&env, "js", 3).await?;
        let proxy = env.service("js", 4222).await?;
        // Through the Service only, as a client outside the pod network: the pod IPs a
        // server advertises die with each roll, and the client library never forgets
        // one, so after three rolls a reconnect would spend minutes (up to 4 s backoff
        // plus a 5 s connect timeout per dead address) before trying the Service again.
        let client = async_nats::ConnectOptions::new()
            .name("producer")
            .ignore_discovered_servers()
            .connect(format!("nats://{}", proxy.addr()))
            .await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(5));
        poll(READY, Duration::from_millis(500), "creating the R3 stream", || async {
            Ok(match js
                .get_or_create_stream(stream::Config {
                    name: STREAM.into(),
                    subjects: vec!["orders.>".into()],
                    num_replicas: 3,
                    storage: stream::StorageType::File,
                    duplicate_window: Duration::from_secs(600),
                    ..Default::default()
                })
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            })
        })
        .await?;
        js.get_stream(STREAM)
            .await?
            .get_or_create_consumer(
                "audit",
                consumer::pull::Config {
                    durable_name: Some("audit".into()),
                    ..Default::default()
                },
            )
            .await?;
        let stop = Arc::new(AtomicBool::new(false));
        let load = publisher(js.clone(), "orders", stop.clone());
        tokio::time::sleep(Duration::from_secs(2)).await;

        // A roll per minor version, then one downgrade, then a pod-spec change.
        let mut rolls = Vec::new();
        for v in path[1..].iter().chain([&current]) {
            let t0 = Instant::now();
            env.patch_spec("js", json!({"version": v})).await?;
            wait_full_mesh(&env, "js", 3, v).await?;
            env.wait_ready("js", 3).await?;
            stream_healthy(&env, &client, &js).await?;
            rolls.push(format!("{v} {:.1} s", t0.elapsed().as_secs_f64()));
        }
        let t1 = Instant::now();
        env.patch_spec("js", json!({"pod": {"annotations": {"e2e.nats.io/rolled": "yes"}}}))
            .await?;
        env.wait_ready("js", 3).await?;
        let respec = t1.elapsed();
        stream_healthy(&env, &client, &js).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        let published = load.await?;
        let ids = stored(&js, STREAM).await?;
        let found: BTreeSet<u64> = ids.iter().map(|m| m.id).collect();
        let missing: Vec<&u64> = published.acked.difference(&found).take(10).collect();
        let copies = extra_copies(&ids);
        // What a user sees with the nats CLI after the rolls: the same message count, R3
        // with a leader and both followers current.
        let info = nats_cli(&format!("nats://{}", proxy.addr()), &["stream", "info", STREAM, "--json"])?;
        let info: serde_json::Value = serde_json::from_str(&info).context("nats stream info --json")?;
        ensure!(info["state"]["messages"] == ids.len(), "nats stream info: {info:#}");
        ensure!(info["config"]["num_replicas"] == 3, "nats stream info: {info:#}");
        let replicas = info["cluster"]["replicas"].as_array().cloned().unwrap_or_default();
        ensure!(
            info["cluster"]["leader"].as_str().is_some_and(|l| !l.is_empty())
                && replicas.len() == 2
                && replicas.iter().all(|r| r["current"] == true),
            "nats stream info: {info:#}"
        );
        println!(
            "NUMBERS jetstream from {old}, rolls to {} (the last a downgrade), pod-spec roll {:.1} s; published and acknowledged {}, found after {} distinct ({} stored, {} extra copies of retried publishes), {} publishes retried (longest wait for an ack {:.1} s), {} gave up",
            rolls.join(", "),
            respec.as_secs_f64(),
            published.acked.len(),
            found.len(),
            ids.len(),
            copies.len(),
            published.retried.len(),
            published.longest_wait.as_secs_f64(),
            published.gave_up.len()
        );
        ensure!(missing.is_empty(), "acknowledged but not in the stream: {missing:?}");
        only_retries_copied(&copies, &published)?;
        ensure!(published.gave_up.is_empty(), "never acknowledged: {:?}", published.gave_up);
        ensure!(found.len() == published.acked.len(), "stream has {} messages, {} acknowledged", found.len(), published.acked.len());
        ensure!(published.acked.len() > 500, "only {} messages published", published.acked.len());
        for m in members("js", 3) {
            ensure!(entered_lame_duck(&env, &m), "{m} was replaced without lame duck mode");
        }

        // Scale 3 -> 5 -> 3: the stream stays healthy; the departed members' claims go.
        env.patch_spec("js", json!({"size": 5})).await?;
        env.wait_ready("js", 5).await?;
        wait_full_mesh(&env, "js", 5, &current).await?;
        stream_healthy(&env, &client, &js).await?;
        ensure!(claims(&env).await?.len() == 5, "one claim per member");
        env.patch_spec("js", json!({"size": 3})).await?;
        env.wait_ready("js", 3).await?;
        stream_healthy(&env, &client, &js).await?;
        members_healthy(&env, "js", 3).await?;
        poll(READY, Duration::from_millis(500), "claims of js-4 and js-5 deleted", || async {
            let names: Vec<String> = claims(&env)
                .await?
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            Ok(if names.len() == 3 { Ok(()) } else { Err(format!("{names:?}")) })
        })
        .await?;
        let after_scaling = stored(&js, STREAM).await?;
        let found_after: BTreeSet<u64> = after_scaling.iter().map(|m| m.id).collect();
        let lost: Vec<&u64> = found.difference(&found_after).take(10).collect();
        let appeared: Vec<&u64> = found_after.difference(&found).take(10).collect();
        ensure!(lost.is_empty() && appeared.is_empty(), "scaling changed the stream: lost {lost:?}, appeared {appeared:?}");
        only_retries_copied(&extra_copies(&after_scaling), &published)?;

        // The data gate: with js-3's server frozen (SIGSTOP: its /healthz can't answer, and
        // its pod stays Ready for the readiness probe's 30 s), a roll must not stop js-1;
        // past catchUpTimeout the cluster is Degraded with a Warning Event. Thawed, the
        // roll goes on.
        let frozen = nats_server_pid(&env, "js-3").await?;
        signal(frozen, rustix::process::Signal::STOP)?;
        let t2 = Instant::now();
        let gate = async {
            env.patch_spec(
                "js",
                json!({"pod": {"annotations": {"e2e.nats.io/rolled": "again"}},
                       "jetstream": {"catchUpTimeout": "5s"}}),
            )
            .await?;
            let degraded = wait_cluster(&env.client, env.ns(), "js", READY, "Degraded JetStreamNotCurrent", |c| {
                c.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|x| x.type_ == "Degraded" && x.status == "True" && x.reason == "JetStreamNotCurrent")
                })
            })
            .await?;
            let message = condition_message(&degraded, "Degraded");
            // Every member that is behind is named; the frozen one always is.
            ensure!(message.contains("before stopping js-1") && message.contains("js-3 "), "{message}");
            let pods = nats_operator_e2e::natscluster::pod_names(&env.client, env.ns(), "js").await?;
            ensure!(pods.len() == 3, "a member was stopped while js-3 was not current: {pods:?}");
            let warned = events(&env, "JetStreamNotCurrent").await?;
            ensure!(!warned.is_empty(), "no JetStreamNotCurrent Warning Event");
            anyhow::Ok(t2.elapsed())
        }
        .await;
        signal(frozen, rustix::process::Signal::CONT)?;
        let degraded_after = gate?;
        env.wait_ready("js", 3).await?;
        stream_healthy(&env, &client, &js).await?;
        println!(
            "NUMBERS jetstream gate: roll held while js-3 was frozen, Degraded after {:.1} s (catchUpTimeout 5s); roll completed {:.1} s after the thaw",
            degraded_after.as_secs_f64(),
            (t2.elapsed() - degraded_after).as_secs_f64()
        );

        // Storage growth reaches every member's claim (spec and, via the resizer, status).
        env.patch_spec("js", json!({"jetstream": {"fileStorage": {"size": "2Gi"}}})).await?;
        poll(READY, Duration::from_millis(500), "claims grown to 2Gi", || async {
            let sizes: Vec<(String, String)> = claims(&env)
                .await?
                .iter()
                .map(|c| {
                    let req = requested(c).map(|q| q.0).unwrap_or_default();
                    let cap = c.status.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|r| r.get("storage")).map(|q| q.0.clone()).unwrap_or_default();
                    (req, cap)
                })
                .collect();
            Ok(if sizes.len() == 3 && sizes.iter().all(|(r, c)| r == "2Gi" && c == "2Gi") { Ok(()) } else { Err(format!("{sizes:?}")) })
        })
        .await?;
        let expanded = events(&env, "VolumeExpanded").await?.join("; ");
        for m in members("js", 3) {
            ensure!(expanded.contains(&format!("js-data-{m} 1Gi -> 2Gi")), "VolumeExpanded events: {expanded}");
        }
        // (Deletions happen one member at a time; their Events fold into one series.)
        let removed = events(&env, "VolumeDeleted").await?.join("; ");
        ensure!(removed.contains("reclaimPolicy is Delete"), "VolumeDeleted events: {removed}");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("js", 5).await);
    }
    Ok(())
}
