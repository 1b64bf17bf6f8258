//! Asset scale run: 1,000 Streams and 1,000 Consumers (one durable pull consumer per
//! stream) created at once, reconciled by the real `nats-operator run` binary (its own
//! process, so its memory can be measured) against one JetStream cluster of three
//! `nats-server` processes on this machine, reached through the operator's default
//! connection (`--nats-server`, as NACK's `-s`). Prints the time until every object is
//! Ready and in sync, the operator's peak RSS (`VmHWM`), the Kubernetes API requests
//! (`apiserver_request_total`) and the JetStream API requests (`/jsz`), then the time to
//! delete them all.
//!
//! Not part of the default run:
//!
//! ```sh
//! cargo test -p nats-operator-e2e --test asset_scale_run -- --ignored --nocapture
//! NATS_OPERATOR_SCALE_RUN=1 cargo test -p nats-operator-e2e --test asset_scale_run -- --nocapture
//! ```
//!
//! Environment: `NATS_OPERATOR_ASSETS` (default 1000 of each kind),
//! `NATS_OPERATOR_ASSET_REPLICAS` (default 1), and the binary settings of `scale_run`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use nats_operator::jetstream::v1beta2::{Consumer, Stream};
use nats_operator_e2e::natscluster::{poll, wait_for_default_service_account};
use nats_operator_e2e::operator_process::{
    OperatorProcess, mb, memory, operator_binary, request_totals,
};
use nats_operator_e2e::realnats::nats_cli;
use nats_operator_e2e::{NatsOperator, TestNamespace};
use serde_json::json;

const GIVE_UP: Duration = Duration::from_secs(900);

#[tokio::test]
#[ignore = "asset scale run (minutes): run with --ignored, or set NATS_OPERATOR_SCALE_RUN=1"]
async fn asset_scale_run_1000_streams_and_consumers() -> Result<()> {
    asset_scale_run().await
}

/// The same run, in the default test run when `NATS_OPERATOR_SCALE_RUN=1`.
#[tokio::test]
async fn asset_scale_run_when_requested() -> Result<()> {
    if std::env::var("NATS_OPERATOR_SCALE_RUN").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: set NATS_OPERATOR_SCALE_RUN=1 (or run with --ignored) for the asset scale run"
        );
        return Ok(());
    }
    asset_scale_run().await
}

/// A JetStream cluster of three local `nats-server` processes.
struct Servers {
    children: Vec<Child>,
    clients: Vec<u16>,
    monitors: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The newest `nats-server` the repository builds.
fn newest_server() -> Result<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bins = nats_operator_e2e::natsbin::nats_binaries(&repo).map_err(anyhow::Error::msg)?;
    bins.servers
        .iter()
        .max_by_key(|(v, _)| nats_operator_e2e::natsbin::version_parts(v))
        .map(|(_, p)| p.clone())
        .context("no nats-server built")
}

fn start_servers(bin: &Path) -> Result<Servers> {
    let dir = tempfile::tempdir()?;
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_>>()?;
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_>>()?;
    let monitors: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_>>()?;
    let route_urls: Vec<String> = routes
        .iter()
        .map(|p| format!("\"nats://127.0.0.1:{p}\""))
        .collect();
    let mut children = Vec::new();
    for i in 0..3 {
        let store = dir.path().join(format!("s{i}"));
        let conf = dir.path().join(format!("s{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: s{i}\nlisten: \"127.0.0.1:{}\"\nhttp: \"127.0.0.1:{}\"\n\
                 jetstream {{ store_dir: \"{}\", max_memory_store: 2G, max_file_store: 2G }}\n\
                 cluster {{ name: bench, listen: \"127.0.0.1:{}\", routes: [{}] }}\n",
                clients[i],
                monitors[i],
                store.display(),
                routes[i],
                route_urls.join(", ")
            ),
        )?;
        let log = std::fs::File::create(dir.path().join(format!("s{i}.log")))?;
        children.push(
            Command::new(bin)
                .args(["-c", &conf.to_string_lossy()])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?,
        );
    }
    Ok(Servers {
        children,
        clients,
        monitors,
        _dir: dir,
    })
}

/// The JetStream API requests every server has handled (`/jsz` `api.total`).
async fn jetstream_api_total(monitors: &[u16]) -> u64 {
    let mut total = 0;
    for port in monitors {
        let url = format!("http://127.0.0.1:{port}/jsz");
        let Ok(body) = tokio::task::spawn_blocking(move || http_get(&url)).await else {
            continue;
        };
        if let Some(n) = body
            .ok()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| v["api"]["total"].as_u64())
        {
            total += n;
        }
    }
    total
}

fn http_get(url: &str) -> Result<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("http only")?;
    let (host, path) = rest.split_once('/').context("no path")?;
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

fn ready_and_synced(status: Option<&nats_operator::jetstream::v1beta2::AssetStatus>) -> bool {
    status.is_some_and(|s| {
        ["Ready", "InSync"].iter().all(|t| {
            s.conditions
                .iter()
                .any(|c| c.type_ == *t && c.status == "True")
        })
    })
}

async fn asset_scale_run() -> Result<()> {
    let Some(op) = NatsOperator::shared().await? else {
        return Ok(());
    };
    let cluster = op.cluster();
    if cluster.is_external() {
        eprintln!("SKIPPED: the asset scale run needs the local control plane");
        return Ok(());
    }
    let count: usize = std::env::var("NATS_OPERATOR_ASSETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let replicas: i64 = std::env::var("NATS_OPERATOR_ASSET_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let server_bin = tokio::task::spawn_blocking(newest_server).await??;
    let servers = start_servers(&server_bin)?;
    let url = format!("nats://127.0.0.1:{}", servers.clients[0]);
    poll(
        Duration::from_secs(60),
        Duration::from_millis(500),
        "JetStream meta leader",
        || async {
            Ok(nats_cli(&url, &["account", "info"])
                .map(|_| ())
                .map_err(|e| format!("{e:#}")))
        },
    )
    .await?;
    let bin = tokio::task::spawn_blocking(operator_binary).await??;
    let ns = TestNamespace::create(cluster, "e2e-asset-scale").await?;
    let client: Client = cluster.client()?;
    wait_for_default_service_account(&client, ns.name()).await?;
    let servers_flag: Vec<String> = servers
        .clients
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let servers_flag = servers_flag.join(",");
    let mut process = OperatorProcess::start(
        &bin,
        cluster,
        ns.name(),
        "asset-scale-run",
        &["--nats-server", &servers_flag],
    )
    .await?;
    let pid = process.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, idle_rss) = memory(pid).unwrap_or_default();
    let (before_all, before_writes) = request_totals(&cluster.metrics_text().await?);
    let js_before = jetstream_api_total(&servers.monitors).await;

    let streams: Api<Stream> = Api::namespaced(client.clone(), ns.name());
    let consumers: Api<Consumer> = Api::namespaced(client.clone(), ns.name());
    let started = Instant::now();
    let creates = (0..count).flat_map(|i| {
        let stream = json!({
            "apiVersion": "jetstream.nats.io/v1beta2", "kind": "Stream",
            "metadata": {"name": format!("s-{i}")},
            "spec": {"name": format!("S{i}"), "subjects": [format!("bench.{i}.>")],
                     "storage": "memory", "replicas": replicas, "maxMsgs": 1000}
        });
        let consumer = json!({
            "apiVersion": "jetstream.nats.io/v1beta2", "kind": "Consumer",
            "metadata": {"name": format!("c-{i}")},
            "spec": {"streamName": format!("S{i}"), "durableName": format!("c{i}"),
                     "ackPolicy": "explicit", "deliverPolicy": "all"}
        });
        [(true, stream), (false, consumer)]
    });
    let results: Vec<Result<()>> = futures::stream::iter(creates)
        .map(|(is_stream, body)| {
            let (streams, consumers) = (streams.clone(), consumers.clone());
            async move {
                if is_stream {
                    streams
                        .create(&PostParams::default(), &serde_json::from_value(body)?)
                        .await?;
                } else {
                    consumers
                        .create(&PostParams::default(), &serde_json::from_value(body)?)
                        .await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let created_in = started.elapsed();
    let mut peak = 0;
    let ready_in = loop {
        peak = peak.max(memory(pid).map(|(hwm, _)| hwm).unwrap_or(0));
        let s = streams.list(&ListParams::default()).await?;
        let c = consumers.list(&ListParams::default()).await?;
        let ready = s
            .items
            .iter()
            .filter(|o| ready_and_synced(o.status.as_ref()))
            .count()
            + c.items
                .iter()
                .filter(|o| ready_and_synced(o.status.as_ref()))
                .count();
        if ready == 2 * count {
            break started.elapsed();
        }
        if started.elapsed() > GIVE_UP {
            bail!("{ready} of {} Ready after {GIVE_UP:?}", 2 * count);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (hwm, rss) = memory(pid).unwrap_or_default();
    let (after_all, after_writes) = request_totals(&cluster.metrics_text().await?);
    let js_after = jetstream_api_total(&servers.monitors).await;
    let server_streams = nats_cli(&url, &["stream", "ls", "--names"])?
        .lines()
        .filter(|l| l.starts_with('S'))
        .count();

    // Delete them all, as `kubectl delete streams,consumers --all` does, and wait until the
    // finalizers let every object go.
    let deleting = Instant::now();
    let dp = kube::api::DeleteParams::default();
    streams
        .delete_collection(&dp, &ListParams::default())
        .await?;
    consumers
        .delete_collection(&dp, &ListParams::default())
        .await?;
    let deleted_in = poll(
        GIVE_UP,
        Duration::from_millis(500),
        "every object gone",
        || async {
            let left = streams.list(&ListParams::default()).await?.items.len()
                + consumers.list(&ListParams::default()).await?.items.len();
            Ok(if left == 0 {
                Ok(deleting.elapsed())
            } else {
                Err(format!("{left} objects left"))
            })
        },
    )
    .await?;
    let left = nats_cli(&url, &["stream", "ls", "--names"])?
        .lines()
        .filter(|l| l.starts_with('S'))
        .count();
    let stopped = process.stop();

    eprintln!(
        "\n==== asset scale run: {count} Streams (R{replicas}, memory) + {count} Consumers ===="
    );
    eprintln!("operator binary        {}", bin.display());
    eprintln!(
        "nats-server            {} (3 servers, one cluster)",
        server_bin.display()
    );
    eprintln!("created in             {created_in:?}");
    eprintln!(
        "all Ready and InSync   {ready_in:?} after the first create; the server holds {server_streams} streams"
    );
    eprintln!(
        "apiserver requests     {} ({} writes), of which the test created {}",
        after_all - before_all,
        after_writes - before_writes,
        2 * count
    );
    eprintln!(
        "JetStream API requests {}",
        js_after.saturating_sub(js_before)
    );
    eprintln!(
        "operator memory        idle {}, at Ready {}, peak RSS (VmHWM) {}",
        mb(idle_rss),
        mb(rss),
        mb(hwm.max(peak))
    );
    eprintln!("deleted in             {deleted_in:?}; streams left on the server: {left}");
    eprintln!("operator stop          {stopped}");
    eprintln!("operator log           {}", process.log.display());
    if let Err(e) = ns.delete(Duration::from_secs(180)).await {
        eprintln!("namespace cleanup: {e:#}");
    }
    drop(servers);
    Ok(())
}
