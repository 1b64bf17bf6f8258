//! Scenarios that disturb the webhooks, in a test binary of their own (so a control plane of
//! their own) and serialized with each other: the webhook server going down and coming back,
//! and objects stored before a validation rule existed.
//!
//! Both need the in-process webhook server: they are skipped on an external cluster.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use nats_operator::webhook_config::{MUTATING_WEBHOOK_NAME, VALIDATING_WEBHOOK_NAME};
use nats_operator_e2e::natscluster::{wait_for_default_service_account, wait_ready};
use nats_operator_e2e::scenario::{exclusive, scenario, wait_for_other_scenarios};
use nats_operator_e2e::{
    InProcessOperator, KubectlRun, NatsOperator, OperatorOptions, TestKubelet, TestNamespace,
    WebhookLatencies, WebhookServer,
};

/// The installed operator with its in-process webhook server, or `None` to skip.
async fn setup() -> Result<Option<(&'static NatsOperator, &'static WebhookServer)>> {
    let Some(op) = NatsOperator::shared().await? else {
        return Ok(None);
    };
    match op.webhook() {
        Some(w) => Ok(Some((op, w))),
        None => {
            eprintln!(
                "SKIPPED: needs the in-process webhook server (stops it, removes webhook \
                 configurations); not done to an external cluster"
            );
            Ok(None)
        }
    }
}

fn write(dir: &Path, file: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn v1alpha2(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

#[tokio::test]
async fn webhook_down_fails_closed_with_the_apiservers_error_and_recovers() -> Result<()> {
    let _s = scenario();
    let _x = exclusive().await;
    let Some((op, webhook)) = setup().await? else {
        return Ok(());
    };
    let cluster = op.cluster();
    let ns = TestNamespace::create(cluster, "e2e-down").await?;
    let n = ns.name();
    let dir = tempfile::tempdir()?;
    let before = write(
        dir.path(),
        "before.yaml",
        &v1alpha2("before", "  size: 3\n"),
    )?;
    let during = write(
        dir.path(),
        "during.yaml",
        &v1alpha2("during", "  size: 3\n"),
    )?;
    cluster
        .kubectl_run(&["apply", "-n", n, "-f", path_str(&before)])?
        .assert_success();

    webhook.stop()?;
    assert!(!webhook.is_running());
    let addr = webhook.addr().to_string();

    // failurePolicy Fail: the create is refused with the apiserver's call error, fast.
    let run = cluster.kubectl_run(&["apply", "-n", n, "-f", path_str(&during)])?;
    run.assert_failure()
        .assert_stderr_contains("Error from server (InternalError)")
        .assert_stderr_contains(&format!(
            "failed calling webhook \"{MUTATING_WEBHOOK_NAME}\""
        ))
        .assert_stderr_contains(&format!("https://{addr}/mutate?timeout="))
        .assert_stderr_contains("connect: connection refused");
    let refused_after = run.elapsed;

    // Reading the storage version needs no webhook; reading v1alpha2 needs the conversion one.
    let run = cluster.kubectl_run(&["get", "natsclusters.v1beta1.nats.io", "before", "-n", n])?;
    run.assert_success();
    let run = cluster.kubectl_run(&["get", "natsclusters.v1alpha2.nats.io", "before", "-n", n])?;
    run.assert_failure()
        .assert_stderr_contains("conversion webhook for nats.io/v1beta1, Kind=NatsCluster failed")
        .assert_stderr_contains(&format!("https://{addr}/convert?timeout=30s"))
        .assert_stderr_contains("connect: connection refused");

    // An update (metadata only) is refused as well: both admission webhooks fail closed.
    let run = cluster.kubectl_run(&["label", "natscluster", "before", "down=yes", "-n", n])?;
    run.assert_failure()
        .assert_stderr_contains("failed calling webhook")
        .assert_stderr_contains("connection refused");

    // Same port, same CA: the apiserver's configuration is still right.
    webhook.restart()?;
    let restarted = Instant::now();
    let mut last: Option<KubectlRun> = None;
    while restarted.elapsed() < Duration::from_secs(30) {
        let run = cluster.kubectl_run(&["apply", "-n", n, "-f", path_str(&during)])?;
        if run.success() {
            last = Some(run);
            break;
        }
        last = Some(run);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = last.context("no apply after the restart")?;
    run.assert_success()
        .assert_stdout_contains("natscluster.nats.io/during created");
    let recovered_after = restarted.elapsed();
    let run = cluster.kubectl_run(&[
        "get",
        "natsclusters.v1alpha2.nats.io",
        "before",
        "-n",
        n,
        "-o",
        "jsonpath={.spec.version}",
    ])?;
    assert_eq!(run.assert_success().stdout.trim(), "2.15.3");
    // And validation is back.
    let bad = write(
        dir.path(),
        "bad.yaml",
        &v1alpha2("bad", "  size: 3\n  tls:\n    gatewaySecret: gw\n"),
    )?;
    let run = cluster.kubectl_run(&["apply", "-n", n, "-f", path_str(&bad)])?;
    run.assert_failure()
        .assert_stderr_contains("The NatsCluster \"bad\" is invalid: spec.tls.gatewaySecret");

    eprintln!(
        "webhook down: create refused in {refused_after:?}; first successful apply \
         {recovered_after:?} after the restart"
    );
    Ok(())
}

/// Stores an object our validation denies (allowed by the CRD schema) with the validating
/// webhook configuration removed, then restores the configuration, whatever happened.
async fn store_grandfathered(op: &NatsOperator, ns: &str, file: &Path) -> Result<KubectlRun> {
    op.delete_validating_configuration().await?;
    let stored = op
        .cluster()
        .kubectl_run(&["apply", "-n", ns, "-f", path_str(file)]);
    op.apply_validating_configuration().await?;
    op.wait_for_validation(true).await?;
    let run = stored?;
    ensure!(run.success(), "storing the object failed:\n{run}");
    Ok(run)
}

#[tokio::test]
async fn metadata_only_updates_of_objects_stored_before_a_rule_go_through() -> Result<()> {
    let _s = scenario();
    let _x = exclusive().await;
    let Some((op, _webhook)) = setup().await? else {
        return Ok(());
    };
    let cluster = op.cluster();
    let ns = TestNamespace::create(cluster, "e2e-grandfathered").await?;
    let n = ns.name();
    let dir = tempfile::tempdir()?;
    let old = write(
        dir.path(),
        "old.yaml",
        &v1alpha2("old", "  size: 3\n  tls:\n    gatewaySecret: gateway-tls\n"),
    )?;

    // With the rule in place, the object is denied.
    let run = cluster.kubectl_run(&["apply", "-n", n, "-f", path_str(&old)])?;
    run.assert_failure()
        .assert_stderr_contains("The NatsCluster \"old\" is invalid: spec.tls.gatewaySecret");

    // Stored "before the rule existed".
    store_grandfathered(op, n, &old)
        .await?
        .assert_stdout_contains("natscluster.nats.io/old created");

    // Labels and annotations go through, in either version.
    cluster
        .kubectl_run(&["label", "natscluster", "old", "team=a", "-n", n])?
        .assert_success()
        .assert_stdout_contains("natscluster.nats.io/old labeled");
    cluster
        .kubectl_run(&[
            "annotate",
            "natsclusters.v1alpha2.nats.io",
            "old",
            "owner=platform",
            "-n",
            n,
        ])?
        .assert_success()
        .assert_stdout_contains("natscluster.nats.io/old annotated");
    let run = cluster.kubectl_run(&[
        "get",
        "natsclusters.v1beta1.nats.io",
        "old",
        "-n",
        n,
        "-o",
        "json",
    ])?;
    let obj = run.assert_success().json()?;
    assert_eq!(obj["metadata"]["labels"]["team"], "a", "{obj:#}");
    assert_eq!(
        obj["metadata"]["annotations"]["owner"], "platform",
        "{obj:#}"
    );

    // A spec change is still validated: re-applying the edited manifest is denied, with the
    // problem that was there all along.
    let edited = write(
        dir.path(),
        "old.yaml",
        &v1alpha2("old", "  size: 5\n  tls:\n    gatewaySecret: gateway-tls\n"),
    )?;
    let run = cluster.kubectl_run(&["apply", "-n", n, "-f", path_str(&edited)])?;
    run.assert_failure()
        .assert_stderr_contains("The NatsCluster \"old\" is invalid: spec.tls.gatewaySecret");
    let run = cluster.kubectl_run(&[
        "patch",
        "natsclusters.v1alpha2.nats.io",
        "old",
        "-n",
        n,
        "--type=merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ])?;
    run.assert_failure()
        .assert_stderr_contains("The NatsCluster \"old\" is invalid: spec.tls.gatewaySecret");
    let run = cluster.kubectl_run(&[
        "get",
        "natsclusters.v1beta1.nats.io",
        "old",
        "-n",
        n,
        "-o",
        "jsonpath={.spec.size}",
    ])?;
    assert_eq!(run.assert_success().stdout.trim(), "3");

    // Fixing the problem is of course allowed.
    let fixed = write(dir.path(), "old.yaml", &v1alpha2("old", "  size: 5\n"))?;
    cluster
        .kubectl_run(&["apply", "-n", n, "-f", path_str(&fixed)])?
        .assert_success()
        .assert_stdout_contains("natscluster.nats.io/old configured");
    Ok(())
}

/// A NatsCluster stored as the Go operator stored it (webhooks bypassed: no
/// `serverImage`, no defaults at all) reconciles exactly like a defaulted one: pods run
/// `nats:<version>`, the config Secret and the Services are what `render` prints for
/// the stored object, and writing the defaults into the object later rolls nothing.
#[tokio::test]
async fn a_cluster_stored_without_defaults_reconciles_like_a_defaulted_one() -> Result<()> {
    let _s = scenario();
    let _x = exclusive().await;
    let Some((op, _webhook)) = setup().await? else {
        return Ok(());
    };
    let cluster = op.cluster();
    let ns = TestNamespace::create(cluster, "e2e-undefaulted").await?;
    let n = ns.name();
    let client = cluster.client()?;
    wait_for_default_service_account(&client, n).await?;
    let dir = tempfile::tempdir()?;
    let file = write(
        dir.path(),
        "legacy.yaml",
        &v1alpha2("legacy", "  size: 3\n  version: \"2.10.27\"\n"),
    )?;
    op.delete_admission_configurations().await?;
    let stored = cluster.kubectl_run(&["apply", "-n", n, "-f", path_str(&file)]);
    op.apply_webhook_configurations().await?;
    op.wait_until_webhooks_serve().await?;
    stored?.assert_success();
    let raw = cluster.natscluster_json("v1alpha2", n, "legacy")?;
    ensure!(
        raw["spec"].get("serverImage").is_none(),
        "stored with defaults after all: {raw:#}"
    );

    let _kubelet = TestKubelet::shared(cluster)?;
    let operator = InProcessOperator::start(cluster, OperatorOptions::namespace(n))?;
    wait_ready(&client, n, "legacy", 3, Duration::from_secs(90)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), n);
    let listed = pods
        .list(&ListParams::default().labels("app=nats,nats_cluster=legacy"))
        .await?
        .items;
    ensure!(listed.len() == 3, "{} pods", listed.len());
    for p in &listed {
        let image = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == "nats"))
            .and_then(|c| c.image.clone());
        ensure!(
            image.as_deref() == Some("nats:2.10.27"),
            "{}: image {image:?}",
            p.name_any()
        );
    }

    // What `render` prints for the object as stored is what exists.
    let stored = cluster.natscluster_json("v1beta1", n, "legacy")?;
    let printed = nats_operator::yaml_stream::render_stream(&serde_json::to_string(&stored)?)?;
    let printed = nats_operator::yaml::documents(&printed)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), n);
    let services: Api<Service> = Api::namespaced(client.clone(), n);
    let mut compared = 0;
    for want in &printed {
        let name = want["metadata"]["name"].as_str().unwrap_or_default();
        match want["kind"].as_str() {
            Some("Secret") => {
                let have = secrets.get(name).await?;
                let text = have
                    .data
                    .unwrap_or_default()
                    .get("nats.conf")
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    .unwrap_or_default();
                ensure!(
                    want["stringData"]["nats.conf"].as_str() == Some(text.as_str()),
                    "config Secret differs from render:\n{text}\n---\n{}",
                    want["stringData"]["nats.conf"]
                );
                compared += 1;
            }
            Some("Service") => {
                let have = serde_json::to_value(services.get(name).await?)?;
                for field in ["ports", "selector", "clusterIP", "publishNotReadyAddresses"] {
                    if let Some(w) = want["spec"].get(field).filter(|w| !w.is_null()) {
                        let h = &have["spec"][field];
                        let same = match (w, h) {
                            (serde_json::Value::Array(w), serde_json::Value::Array(h)) => {
                                w.len() == h.len()
                                    && w.iter().zip(h).all(|(w, h)| {
                                        w.as_object().into_iter().flatten().all(|(k, v)| &h[k] == v)
                                    })
                            }
                            _ => w == h,
                        };
                        ensure!(same, "Service {name} spec.{field}: {w} vs {h}");
                    }
                }
                compared += 1;
            }
            _ => {}
        }
    }
    ensure!(compared == 3, "compared {compared} objects");

    // The README's re-store step: the object written back through the webhook (now
    // with every default in it) rolls no member.
    let before: Vec<(String, Option<String>)> =
        listed.iter().map(|p| (p.name_any(), p.uid())).collect();
    let mut again = stored.clone();
    if let Some(m) = again.as_object_mut() {
        m.remove("status");
    }
    if let Some(m) = again["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    let out = cluster.kubectl_run_stdin(
        &["replace", "-n", n, "-f", "-"],
        Some(&serde_json::to_string(&again)?),
    )?;
    out.assert_success();
    let defaulted = cluster.natscluster_json("v1beta1", n, "legacy")?;
    ensure!(
        defaulted["spec"]["image"] == "nats",
        "the webhook wrote its defaults: {}",
        defaulted["spec"]
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after: Vec<(String, Option<String>)> = pods
        .list(&ListParams::default().labels("app=nats,nats_cluster=legacy"))
        .await?
        .items
        .iter()
        .map(|p| (p.name_any(), p.uid()))
        .collect();
    ensure!(before == after, "members rolled: {before:?} -> {after:?}");
    drop(operator);
    Ok(())
}

/// Runs last in this binary: the apiserver's measurements, including failed calls.
#[tokio::test]
async fn zz_apiserver_measured_webhook_latency() -> Result<()> {
    let Some((op, webhook)) = setup().await? else {
        return Ok(());
    };
    let all_done = wait_for_other_scenarios(Duration::from_secs(600)).await;
    let latencies = WebhookLatencies::read(op.cluster()).await?;
    let _ = writeln!(
        std::io::stderr(),
        "\n=== webhooks as the apiserver saw them (tests/webhook_disruptions.rs{}) ===\n\
         {latencies}webhook server: {} TLS connections accepted, {} failed handshakes",
        if all_done {
            ""
        } else {
            ", other tests still running"
        },
        webhook.stats().accepted_connections(),
        webhook.stats().handshake_failures(),
    );
    assert!(
        latencies.admission_count(VALIDATING_WEBHOOK_NAME) > 0.0,
        "{latencies}"
    );
    Ok(())
}
