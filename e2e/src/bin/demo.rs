//! The main job, as a user meets it: `cargo run -p nats-operator-e2e --bin demo`.
//!
//! Without `KUBECONFIG`: starts a real local control plane (kube-apiserver 1.36 + etcd,
//! built once from Go modules), installs the CRDs and webhook configurations, runs the
//! operator (webhooks over HTTPS and the controllers) and a real node (kubelet, containerd,
//! runc, kube-proxy, CoreDNS; built once from Go modules, images built here), applies
//! `examples/v1alpha2/minimal.yaml` and shows what a user then sees: `kubectl get nats`,
//! the defaulted object in both API versions, the children, `kubectl logs` and `kubectl
//! exec` of a member, a client through `kubectl port-forward svc/nats`, and a rejected
//! invalid apply. With `--wait` it keeps running so you can use the printed kubeconfig with
//! kubectl; Ctrl-C stops everything and removes it (containers, mounts, rules, bridge).
//!
//! With `KUBECONFIG` set: installs `manifests/` into that cluster with `kubectl apply -k`
//! and waits for the operator Deployment (the image `ghcr.io/nats-operator-rs/nats-operator`
//! must be pullable there).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use nats_operator_e2e::natscluster::{wait_for_default_service_account, wait_ready};
use nats_operator_e2e::node::RealNode;
use nats_operator_e2e::realnats::nats_cli;
use nats_operator_e2e::{InProcessOperator, NatsOperator, OperatorOptions, TestCluster};

const NAMESPACE: &str = "demo";
/// The NatsCluster of `examples/v1alpha2/minimal.yaml`.
const CLUSTER: &str = "nats";

fn section(title: &str) {
    println!("\n==> {title}");
}

fn show(cluster: &TestCluster, args: &[&str], stdin: Option<&str>) -> Result<i32> {
    // The harness echoes the command, its exit code and its output.
    let run = cluster.kubectl_run_stdin(args, stdin)?;
    Ok(run.code.unwrap_or(-1))
}

/// The example the demo applies: ours, in the Go operator's API (`examples/v1alpha2`).
fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/v1alpha2/minimal.yaml")
}

async fn external(cluster: &TestCluster) -> Result<()> {
    let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base");
    section("installing manifests/ into the cluster in KUBECONFIG");
    let dir = manifests.display().to_string();
    if show(cluster, &["apply", "--server-side", "-k", &dir], None)? != 0 {
        bail!("kubectl apply -k {dir} failed");
    }
    section("waiting for the operator Deployment");
    let code = show(
        cluster,
        &[
            "-n",
            "nats-io",
            "rollout",
            "status",
            "deployment/nats-operator",
            "--timeout=180s",
        ],
        None,
    )?;
    if code != 0 {
        bail!("the operator did not become available; is its image pullable from this cluster?");
    }
    println!(
        "installed: kubectl apply -f {} -n nats-io",
        example().display()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let wait = std::env::args().any(|a| a == "--wait");
    if std::env::var_os("KUBECONFIG").is_some() || std::env::var_os("E2E_KUBECONFIG").is_some() {
        let cluster = TestCluster::shared().await?;
        return external(cluster).await;
    }
    section("starting a local control plane, the webhook server and the CRDs");
    let operator = NatsOperator::shared()
        .await?
        .context("no local control plane")?;
    let cluster = operator.cluster();
    let kubeconfig = cluster
        .kubeconfig()
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("kubeconfig: {kubeconfig}");
    show(cluster, &["create", "namespace", NAMESPACE], None)?;
    let client = cluster.client()?;
    wait_for_default_service_account(&client, NAMESPACE).await?;
    section("starting a real node (kubelet, containerd, runc, kube-proxy, CoreDNS)");
    let node = RealNode::start(cluster, &[NAMESPACE]).await?;
    println!("node {} at {}", node.name(), node.ip());
    let controllers = InProcessOperator::start(cluster, OperatorOptions::namespace(NAMESPACE))?;

    section(
        "kubectl apply -f examples/v1alpha2/minimal.yaml (a nats.io/v1alpha2 manifest, as the Go operator's users have)",
    );
    let example = std::fs::read_to_string(example()).context("reading the example")?;
    if show(
        cluster,
        &["apply", "-n", NAMESPACE, "-f", "-"],
        Some(&example),
    )? != 0
    {
        bail!("the example was not accepted");
    }
    let ready = wait_ready(&client, NAMESPACE, CLUSTER, 3, Duration::from_secs(120)).await?;
    println!(
        "Ready: {} of {} members",
        ready.status.as_ref().map(|s| s.ready_replicas).unwrap_or(0),
        ready.spec.size
    );

    section("kubectl get nats");
    show(cluster, &["get", "nats", "-n", NAMESPACE], None)?;
    section(
        "the object as stored, read back in v1alpha2: defaults written by the mutating webhook",
    );
    show(
        cluster,
        &[
            "get",
            "natsclusters.v1alpha2.nats.io",
            CLUSTER,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec}{\"\\n\"}",
        ],
        None,
    )?;
    section("and in v1beta1 (the storage version), with its status");
    show(
        cluster,
        &[
            "get",
            "natsclusters.v1beta1.nats.io",
            CLUSTER,
            "-n",
            NAMESPACE,
            "-o",
            "yaml",
        ],
        None,
    )?;
    section("children");
    show(
        cluster,
        &[
            "get",
            "pods,services,secrets,poddisruptionbudgets",
            "-n",
            NAMESPACE,
            "-l",
            "nats_cluster=nats",
        ],
        None,
    )?;
    section("kubectl logs nats-1 --tail=5");
    show(
        cluster,
        &["logs", "-n", NAMESPACE, "nats-1", "--tail=5"],
        None,
    )?;
    section("kubectl exec nats-1 -- /nats-server --version");
    show(
        cluster,
        &[
            "exec",
            "-n",
            NAMESPACE,
            "nats-1",
            "--",
            "/nats-server",
            "--version",
        ],
        None,
    )?;
    section("kubectl port-forward svc/nats :4222, then the nats CLI through it");
    let forward = cluster.port_forward(NAMESPACE, "svc/nats", 4222)?;
    let server = format!("nats://{}", forward.addr());
    println!("$ nats --server {server} rtt");
    print!("{}", nats_cli(&server, &["rtt"])?);
    drop(forward);

    section("kubectl apply of an invalid NatsCluster is rejected");
    let invalid = "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: broken\nspec:\n  size: 3\n  version: latest\n  tls:\n    gatewaySecret: gw-tls\n    cipherSuites: [ASDF]\n";
    print!("{invalid}");
    let code = show(
        cluster,
        &["apply", "-n", NAMESPACE, "-f", "-"],
        Some(invalid),
    )?;
    println!("(exit code {code})");
    if code == 0 {
        bail!("the invalid NatsCluster was accepted");
    }
    if wait {
        section(&format!(
            "running: export KUBECONFIG={kubeconfig}; Ctrl-C stops and removes everything"
        ));
        let _ = tokio::signal::ctrl_c().await;
    }
    controllers.stop().await?;
    node.stop();
    Ok(())
}
