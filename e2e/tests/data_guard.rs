//! The data plane in the status and the guard in front of it, as a user meets them with
//! kubectl and the nats CLI, on the real node: `status.jetstream` and `JetStreamHealthy`
//! from real servers, `kubectl scale` below a stream's replicas refused with the stream
//! named, the departed peers of a scale-down named in the condition, and the deletion of
//! a cluster holding streams refused until it is annotated.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use nats_operator::api::v1beta1::NatsCluster;
use nats_operator_e2e::natscluster::{condition, condition_message, wait_cluster};
use nats_operator_e2e::realnats::{Env, nats_cli, setup_with, v1beta1, wait_full_mesh};
use nats_operator_e2e::scenario::scenario;
use nats_operator_e2e::storage::{EXPANDABLE_CLASS, VolumeStandIn, ensure_expandable_class};

/// The JetStream status refreshes every 30 s; a change of the data plane alone (a new
/// stream) shows within one refresh.
const REFRESH: Duration = Duration::from_secs(75);

/// `JetStreamHealthy` as `(status, reason)`.
fn jetstream_condition(c: &NatsCluster) -> (String, String) {
    condition(c, "JetStreamHealthy").unwrap_or_default()
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
        cli(&["pub", "orders.new", "order {{Count}}", "--count", "50"])?;
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

        // 3 -> 5 -> 3: allowed (R3), and the condition names the peers the servers still
        // count (the operator does not remove them from the meta group yet).
        scale("5")?.ensure_success()?;
        env.wait_ready("gs", 5).await?;
        wait_full_mesh(&env, "gs", 5, &version).await?;
        scale("3")?.ensure_success()?;
        env.wait_ready("gs", 3).await?;
        let ghosts = wait_condition(&env, "JetStreamHealthy names the departed peers", |c| {
            jetstream_condition(c) == ("False".into(), "DepartedPeers".into())
        })
        .await?;
        let message = condition_message(&ghosts, "JetStreamHealthy");
        ensure!(
            message.contains("counts 5 peers and needs 3 for quorum, but gs-4, gs-5 are not"),
            "{message}"
        );
        println!("NUMBERS data guard: after 3 -> 5 -> 3, JetStreamHealthy: {message}");

        // Deleting the cluster with its streams: refused, then allowed when annotated.
        let delete = || {
            env.cluster.kubectl_run(&[
                "delete", "natscluster", "gs", "-n", env.ns(), "--wait=false",
            ])
        };
        let kept = delete()?;
        ensure!(
            kept.code != Some(0)
                && kept.stderr.contains("holds 2 JetStream streams")
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
