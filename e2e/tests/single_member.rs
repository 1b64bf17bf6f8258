//! A JetStream NatsCluster of one member, as a user starts one to try JetStream, on the
//! real node: its server runs standalone (a cluster block whose only route is to itself
//! never gets a JetStream meta leader), so `nats stream add` works; `kubectl scale` to 3
//! is refused, naming the stream it would lose (a new meta group would drop it), and
//! without streams too (the new members would wait for a route to the standalone one).

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use nats_operator_e2e::realnats::{Env, nats_cli, setup_with, v1beta1};
use nats_operator_e2e::scenario::scenario;

/// Runs `nats` with `args` until it succeeds, at most `limit`: how long it took.
async fn until_ok(server: &str, args: &[&str], limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        match nats_cli(server, args) {
            Ok(_) => return Ok(start.elapsed()),
            Err(e) if start.elapsed() > limit => bail!("nats {args:?}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn standalone_annotation(env: &Env, pod: &str) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), env.ns());
    Ok(pods
        .get(pod)
        .await?
        .metadata
        .annotations
        .and_then(|a| a.get("nats.io/standalone").cloned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_jetstream_member_works_and_is_not_scaled_in_place() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup_with("jsone", true, false).await? else {
        return Ok(());
    };
    let Some(version) = env.jetstream_upgrade_path()?.last().cloned() else {
        bail!("no JetStream version");
    };
    let applied = Instant::now();
    env.apply(&v1beta1(
        "one",
        &format!("  size: 1\n  version: \"{version}\"\n  jetstream:\n    memoryStorage: 64Mi\n"),
    ))?;
    let r = async {
        env.wait_ready("one", 1).await?;
        ensure!(
            standalone_annotation(&env, "one-1").await?.as_deref() == Some("true"),
            "one-1 is not marked standalone"
        );
        let proxy = env.service("one", 4222).await?;
        let server = format!("nats://{}", proxy.addr());
        until_ok(
            &server,
            &[
                "stream",
                "add",
                "ONE",
                "--subjects",
                "one.>",
                "--storage",
                "memory",
                "--replicas",
                "1",
                "--defaults",
            ],
            Duration::from_secs(60),
        )
        .await?;
        let first_stream = applied.elapsed();
        nats_cli(
            &server,
            &["pub", "one.x", "hello {{Count}}", "--count", "10"],
        )?;

        // The scale that would drop it is refused, naming it.
        let scale = |n: &str| {
            env.cluster.kubectl_run(&[
                "scale",
                "natscluster",
                "one",
                "-n",
                env.ns(),
                "--replicas",
                n,
            ])
        };
        let refused = scale("3")?;
        ensure!(
            refused.code != Some(0)
                && refused.stderr.contains("\"ONE\" in account $G")
                && refused.stderr.contains("nats stream backup"),
            "kubectl scale 1 -> 3 with a stream: {refused}"
        );

        // Without streams it is still refused: the members added to a standalone one
        // would wait for a route to it, which could only restart once they are ready.
        nats_cli(&server, &["stream", "rm", "ONE", "-f"])?;
        let bare = scale("3")?;
        ensure!(
            bare.code != Some(0)
                && bare
                    .stderr
                    .contains("cannot scale a JetStream cluster from 1 to 3 members")
                && !bare.stderr.contains("also lose"),
            "kubectl scale 1 -> 3 without streams: {bare}"
        );
        // And the member still works.
        nats_cli(
            &server,
            &[
                "stream",
                "add",
                "AGAIN",
                "--subjects",
                "again.>",
                "--storage",
                "memory",
                "--replicas",
                "1",
                "--defaults",
            ],
        )?;
        println!(
            "NUMBERS single member: JetStream stream made {:.1} s after apply of size 1; \
             kubectl scale 1 -> 3 refused: {}",
            first_stream.as_secs_f64(),
            refused.stderr.trim(),
        );
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("one", 3).await);
    }
    Ok(())
}
