//! Scale run: 200 NatsClusters of size 3 created at once, reconciled by the real
//! `nats-operator run` binary (its own process, so its memory can be measured), with the test
//! kubelet running the 600 pods. Prints the time until every cluster is Ready, the API
//! requests the apiserver served meanwhile (`apiserver_request_total`), and the operator's
//! peak RSS (`VmHWM`). Targets: all Ready in < 60 s, < 40 MB RSS.
//!
//! Not part of the default run (it takes minutes on 2 cores):
//!
//! ```sh
//! cargo test -p nats-operator-e2e --test scale_run -- --ignored --nocapture
//! NATS_OPERATOR_SCALE_RUN=1 cargo test -p nats-operator-e2e --test scale_run -- --nocapture
//! ```
//!
//! Environment: `NATS_OPERATOR_SCALE_CLUSTERS` (default 200), `NATS_OPERATOR_BIN` (the binary
//! to run; otherwise it is built with cargo, in the profile `NATS_OPERATOR_SCALE_PROFILE`,
//! default `release`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use nats_operator::api::v1beta1::NatsCluster;
use nats_operator_e2e::metrics::counter_sums;
use nats_operator_e2e::natscluster::{is_ready, wait_for_default_service_account};
use nats_operator_e2e::operator_process::{
    OperatorProcess, mb, memory, operator_binary, request_totals, resident_split,
};
use nats_operator_e2e::{NatsOperator, TestCluster, TestKubelet, TestNamespace};
use serde_json::json;

const TARGET_READY: Duration = Duration::from_secs(60);
const TARGET_RSS_BYTES: u64 = 40 * 1024 * 1024;
const GIVE_UP: Duration = Duration::from_secs(600);

#[tokio::test]
#[ignore = "scale run (minutes): run with --ignored, or set NATS_OPERATOR_SCALE_RUN=1"]
async fn scale_run_200_clusters() -> Result<()> {
    scale_run().await
}

/// The same run, in the default test run when `NATS_OPERATOR_SCALE_RUN=1`.
#[tokio::test]
async fn scale_run_when_requested() -> Result<()> {
    if std::env::var("NATS_OPERATOR_SCALE_RUN").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: set NATS_OPERATOR_SCALE_RUN=1 (or run with --ignored) for the scale run"
        );
        return Ok(());
    }
    scale_run().await
}

async fn scale_run() -> Result<()> {
    let Some(op) = NatsOperator::shared().await? else {
        return Ok(());
    };
    let cluster: &TestCluster = op.cluster();
    if cluster.is_external() {
        eprintln!("SKIPPED: the scale run uses a test kubelet and needs the local control plane");
        return Ok(());
    }
    let count: usize = std::env::var("NATS_OPERATOR_SCALE_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bin = tokio::task::spawn_blocking(operator_binary).await??;
    let ns = TestNamespace::create(cluster, "e2e-scale-run").await?;
    let client: Client = cluster.client()?;
    wait_for_default_service_account(&client, ns.name()).await?;
    let kubelet = TestKubelet::start(cluster, Some(ns.name()))?;

    // The operator, as a process: controllers only matter here (the apiserver keeps calling
    // the harness's webhook server; --no-ca-injection leaves the configurations alone).
    let mut process = OperatorProcess::start(&bin, cluster, ns.name(), "scale-run", &[]).await?;
    let pid = process.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_hwm, idle_rss) = memory(pid).unwrap_or_default();
    let idle_split = resident_split(pid);

    let before_text = cluster.metrics_text().await?;
    let (before_all, before_writes) = request_totals(&before_text);
    let kubelet_before = (
        kubelet.stats().bound(),
        kubelet.stats().status_patches(),
        kubelet.stats().deleted(),
    );

    // 200 clusters at once (16 requests in flight).
    let api: Api<NatsCluster> = Api::namespaced(client.clone(), ns.name());
    let started = Instant::now();
    let created: Vec<Result<()>> = futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let nc: NatsCluster = serde_json::from_value(json!({
                    "apiVersion": "nats.io/v1beta1",
                    "kind": "NatsCluster",
                    "metadata": {"name": format!("s{i:03}")},
                    "spec": {"size": 3}
                }))?;
                api.create(&PostParams::default(), &nc)
                    .await
                    .with_context(|| format!("creating s{i:03}"))?;
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let created_in = started.elapsed();
    for r in created {
        r?;
    }

    // Wait for every cluster to be Ready, sampling the operator's memory.
    let mut peak_rss = idle_rss;
    let mut progress = Instant::now();
    let ready_in = loop {
        let list = api.list(&ListParams::default()).await?.items;
        let ready = list.iter().filter(|c| is_ready(c, 3)).count();
        if let Some((_, rss)) = memory(pid) {
            peak_rss = peak_rss.max(rss);
        }
        if ready == count {
            break started.elapsed();
        }
        if progress.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  {:>5.1} s: {ready}/{count} Ready",
                started.elapsed().as_secs_f64()
            );
            progress = Instant::now();
        }
        if started.elapsed() > GIVE_UP {
            bail!(
                "only {ready}/{count} clusters Ready after {GIVE_UP:?}; operator log {}",
                process.log.display()
            );
        }
        if let Ok(Some(s)) = process.child.try_wait() {
            bail!("nats-operator exited: {s}; log {}", process.log.display());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let after_text = cluster.metrics_text().await?;
    let (after_all, after_writes) = request_totals(&after_text);
    let (hwm, rss) = memory(pid).context("reading the operator's memory")?;
    let ready_split = resident_split(pid);

    // A quiet period: what the operator does once everything is Ready.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet_text = cluster.metrics_text().await?;
    let (quiet_all, quiet_writes) = request_totals(&quiet_text);
    let (hwm_quiet, _) = memory(pid).unwrap_or_default();
    let stopped = process.stop();

    let kubelet_writes = (kubelet.stats().bound() - kubelet_before.0)
        + (kubelet.stats().status_patches() - kubelet_before.1)
        + (kubelet.stats().deleted() - kubelet_before.2);
    let by = |text: &str| {
        counter_sums(
            text,
            "apiserver_request_total",
            &["verb", "resource", "subresource"],
        )
    };
    let (b, a) = (by(&before_text), by(&after_text));
    let mut deltas: Vec<(String, f64)> = a
        .iter()
        .map(|(k, v)| (k.join(" "), v - b.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    deltas.sort_by(|x, y| y.1.total_cmp(&x.1));

    eprintln!("\n==== scale run: {count} NatsClusters x 3 members ====");
    eprintln!("binary                 {}", bin.display());
    eprintln!("created in             {created_in:?}");
    eprintln!("all Ready after        {ready_in:?} (target < {TARGET_READY:?})");
    eprintln!(
        "apiserver requests     {} during the run ({} writes), of which the test kubelet wrote {kubelet_writes} and the test created {count}",
        after_all - before_all,
        after_writes - before_writes
    );
    eprintln!(
        "after Ready, 10 s      {} requests, {} writes (everyone: operator, kubelet, controllers)",
        quiet_all - after_all,
        quiet_writes - after_writes
    );
    eprintln!("top request kinds (verb resource subresource: count):");
    for (k, d) in deltas.iter().take(15) {
        eprintln!("  {k:<45} {d}");
    }
    eprintln!(
        "operator memory        idle {} (HWM {}), at Ready {} , peak RSS (VmHWM) {} ; after 10 s quiet VmHWM {} (target < {})",
        mb(idle_rss),
        mb(idle_hwm),
        mb(rss),
        mb(hwm.max(peak_rss)),
        mb(hwm_quiet),
        mb(TARGET_RSS_BYTES)
    );
    eprintln!("operator resident      idle {idle_split}; at Ready {ready_split}");
    eprintln!("operator stop          {stopped}");
    eprintln!("operator log           {}", process.log.display());

    assert!(
        ready_in < TARGET_READY,
        "all Ready after {ready_in:?}, target {TARGET_READY:?}"
    );
    assert!(
        hwm.max(hwm_quiet) < TARGET_RSS_BYTES,
        "peak RSS {} over the {} target",
        mb(hwm.max(hwm_quiet)),
        mb(TARGET_RSS_BYTES)
    );
    // The kubelet removes the terminating pods while the namespace goes.
    if let Err(e) = ns.delete(Duration::from_secs(180)).await {
        eprintln!("namespace cleanup: {e:#}");
    }
    drop(kubelet);
    Ok(())
}
