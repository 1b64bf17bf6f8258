//! The reconcile loop against a real kube-apiserver: the Go operator's e2e scenarios
//! (features doc §5) and ours, with the controller running in process and a test kubelet
//! ([`TestKubelet`]) standing in for the scheduler and the kubelet.
//!
//! Each test has its own namespace and its own operator scoped to it; the kubelet is shared.
//! Outcomes are asserted through the API (and kubectl where a user would look).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use nats_operator::api::v1beta1::NatsCluster;
use nats_operator::controller::Scope;
use nats_operator::controller::leader::Timing;
use nats_operator_e2e::controller::LeaseSettings;
use nats_operator_e2e::kubelet::{Behaviour, mark_failed};
use nats_operator_e2e::natscluster::{
    PodTracker, condition, condition_message, pod_names, poll, summary, wait_cluster,
    wait_for_default_service_account, wait_ready,
};
use nats_operator_e2e::scenario::scenario;
use nats_operator_e2e::storage::{FIXED_CLASS, VolumeStandIn, ensure_fixed_class, requested};
use nats_operator_e2e::{
    InProcessOperator, NatsOperator, OperatorOptions, TestCluster, TestKubelet, TestNamespace,
};
use serde_json::json;

/// How long a cluster may take to become Ready (2 cores shared with builds).
const READY: Duration = Duration::from_secs(90);
/// Versions used in version rollouts.
const OLD_VERSION: &str = "2.10.22";
const NEW_VERSION: &str = "2.11.0";

/// One scenario's world. Fields drop in order: the operator stops before the namespace goes.
struct Env {
    operator: InProcessOperator,
    cluster: &'static TestCluster,
    kubelet: &'static TestKubelet,
    client: Client,
    ns: TestNamespace,
}

impl Env {
    fn ns(&self) -> &str {
        self.ns.name()
    }

    /// `kubectl apply -n <ns> -f -` with `manifest`.
    fn apply(&self, manifest: &str) -> Result<()> {
        self.cluster
            .kubectl_run_stdin(&["apply", "-n", self.ns(), "-f", "-"], Some(manifest))?
            .assert_success();
        Ok(())
    }

    fn clusters(&self) -> Api<NatsCluster> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    /// Merge-patches the v1beta1 spec.
    async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        nats_operator_e2e::natscluster::patch_spec(&self.client, self.ns(), name, spec).await
    }

    async fn wait_ready(&self, name: &str, size: i32) -> Result<NatsCluster> {
        wait_ready(&self.client, self.ns(), name, size, READY).await
    }

    /// The operator's requests (relative times) and metrics, for failure messages.
    fn diagnostics(&self) -> String {
        let all = self.operator.requests().all();
        let t0 = all.first().map(|r| r.at);
        let mut out = String::from("operator requests:\n");
        for r in &all {
            let at = t0.map(|t| r.at.duration_since(t)).unwrap_or_default();
            out.push_str(&format!("  {:>8.3} s  {r}\n", at.as_secs_f64()));
        }
        out.push_str(&self.operator.metrics().encode());
        out
    }

    /// uid per pod name of the cluster.
    async fn pod_uids(&self, cluster: &str) -> Result<BTreeMap<String, String>> {
        let lp = ListParams::default().labels(&format!("app=nats,nats_cluster={cluster}"));
        Ok(self
            .pods()
            .list(&lp)
            .await?
            .items
            .iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect())
    }
}

/// The shared control plane with the API installed, a fresh namespace, the shared kubelet
/// and an operator for the namespace; `None` to skip (external cluster).
async fn setup(prefix: &str) -> Result<Option<Env>> {
    setup_with(prefix, |ns| Some(OperatorOptions::namespace(ns))).await
}

async fn setup_with(
    prefix: &str,
    options: impl FnOnce(&str) -> Option<OperatorOptions>,
) -> Result<Option<Env>> {
    let Some(op) = NatsOperator::shared().await? else {
        return Ok(None);
    };
    let cluster = op.cluster();
    if cluster.is_external() {
        eprintln!(
            "SKIPPED: the controller scenarios run a test kubelet, which must not touch the pods \
             of a real cluster (E2E_KUBECONFIG is set)"
        );
        return Ok(None);
    }
    let ns = TestNamespace::create(cluster, prefix).await?;
    let client = cluster.client()?;
    wait_for_default_service_account(&client, ns.name()).await?;
    let kubelet = TestKubelet::shared(cluster)?;
    let options = options(ns.name()).context("no operator options")?;
    let operator = InProcessOperator::start(cluster, options)?;
    Ok(Some(Env {
        operator,
        cluster,
        kubelet,
        client,
        ns,
    }))
}

fn v1alpha2(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

fn v1beta1(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nats.io/v1beta1\nkind: NatsCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

fn members(cluster: &str, n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("{cluster}-{i:x}")).collect()
}

/// Everything a Ready cluster of 3 must have, as a user would check it.
async fn assert_ready_children(env: &Env, name: &str, nc: &NatsCluster) -> Result<()> {
    let ns = env.ns();
    let uid = nc.uid().unwrap_or_default();
    let owned_by_cluster =
        |o: &Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            o.as_ref().is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.uid == uid && r.kind == "NatsCluster" && r.controller == Some(true))
            })
        };

    // Pods <name>-1..3, owned by the cluster.
    let pods = env
        .pods()
        .list(&ListParams::default().labels(&format!("app=nats,nats_cluster={name}")))
        .await?
        .items;
    let mut names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    names.sort();
    assert_eq!(names, members(name, 3), "pods of {name}");
    for p in &pods {
        assert!(
            owned_by_cluster(&p.metadata.owner_references),
            "pod {} is not owned by NatsCluster {name}: {:?}",
            p.name_any(),
            p.metadata.owner_references
        );
    }

    // Services: selectors without nats_version; the management one publishes not-ready pods.
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), ns);
    let selector = BTreeMap::from([
        ("app".to_string(), "nats".to_string()),
        ("nats_cluster".to_string(), name.to_string()),
    ]);
    let client_svc = svcs.get(name).await.context("client Service")?;
    assert!(owned_by_cluster(&client_svc.metadata.owner_references));
    let spec = client_svc.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.selector.as_ref(),
        Some(&selector),
        "client Service selector"
    );
    let ports: Vec<(String, i32)> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.port))
        .collect();
    assert!(ports.contains(&("tcp-client".into(), 4222)), "{ports:?}");
    let mgmt = svcs
        .get(&format!("{name}-mgmt"))
        .await
        .context("management Service")?;
    assert!(owned_by_cluster(&mgmt.metadata.owner_references));
    let spec = mgmt.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.selector.as_ref(),
        Some(&selector),
        "mgmt Service selector"
    );
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"), "mgmt is headless");
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let ports: Vec<(String, i32)> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.port))
        .collect();
    for want in [("cluster", 6222), ("monitoring", 8222)] {
        assert!(ports.contains(&(want.0.into(), want.1)), "{ports:?}");
    }

    // The config Secret (JSON, as the Go operator wrote it): cluster name and the three
    // routes.
    let conf = nats_conf(env, name).await?;
    let parsed: serde_json::Value =
        serde_json::from_str(&conf).with_context(|| format!("nats.conf is not JSON:\n{conf}"))?;
    assert_eq!(
        parsed["cluster"]["name"], name,
        "cluster name missing:\n{conf}"
    );
    for m in members(name, 3) {
        let route = format!("nats://{m}.{name}-mgmt.{ns}.svc:6222");
        assert!(conf.contains(&route), "route {route} missing:\n{conf}");
    }
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), ns);
    let secret = secrets.get(name).await?;
    assert!(owned_by_cluster(&secret.metadata.owner_references));

    // PodDisruptionBudget.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), ns);
    let pdb = pdbs.get(name).await.context("PodDisruptionBudget")?;
    assert!(owned_by_cluster(&pdb.metadata.owner_references));
    assert_eq!(
        pdb.spec.and_then(|s| s.max_unavailable),
        Some(IntOrString::Int(1))
    );

    // Status.
    let status = nc.status.clone().unwrap_or_default();
    assert_eq!(
        (status.replicas, status.ready_replicas),
        (3, 3),
        "{}",
        summary(nc)
    );
    assert_eq!(status.current_version, nc.spec.version, "{}", summary(nc));
    assert_eq!(status.observed_generation, nc.metadata.generation);
    assert_eq!(
        condition(nc, "Ready"),
        Some(("True".into(), "ClusterReady".into()))
    );
    Ok(())
}

async fn nats_conf(env: &Env, name: &str) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), env.ns());
    let secret = secrets.get(name).await.context("config Secret")?;
    let data = secret.data.unwrap_or_default();
    let raw = data.get("nats.conf").context("no nats.conf key")?;
    Ok(String::from_utf8_lossy(&raw.0).into_owned())
}

/// The row of `kubectl get natsclusters` for `name`, split into columns.
fn kubectl_row(env: &Env, name: &str) -> Result<Vec<String>> {
    let run = env
        .cluster
        .kubectl_run(&["get", "natsclusters", "-n", env.ns()])?;
    run.assert_success();
    let header: Vec<&str> = run
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header.get(..5),
        Some(&["NAME", "SIZE", "READY", "VERSION", "STATUS"][..]),
        "{run}"
    );
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(name))
        .with_context(|| format!("no row for {name}:\n{run}"))
}

#[tokio::test]
async fn v1alpha2_and_v1beta1_clusters_become_ready_with_all_children() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-ready").await? else {
        return Ok(());
    };
    env.apply(&v1alpha2(
        "alpha",
        &format!("  size: 3\n  version: \"{OLD_VERSION}\"\n"),
    ))?;
    env.apply(&v1beta1("beta", "  size: 3\n"))?;
    let started = Instant::now();
    for name in ["alpha", "beta"] {
        let nc = env.wait_ready(name, 3).await?;
        eprintln!("{name} Ready after {:?}", started.elapsed());
        assert_ready_children(&env, name, &nc).await?;
        let row = kubectl_row(&env, name)?;
        assert_eq!(
            row.get(1..5).map(<[String]>::to_vec),
            Some(vec![
                "3".to_string(),
                "3".to_string(),
                nc.spec.version.clone(),
                "ClusterReady".to_string(),
            ]),
            "kubectl get natsclusters row {row:?}"
        );
    }
    let alpha = env.clusters().get("alpha").await?;
    assert_eq!(alpha.spec.version, OLD_VERSION);
    Ok(())
}

#[tokio::test]
async fn scaling_up_and_down_removes_the_highest_index_first() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-scale").await? else {
        return Ok(());
    };
    env.apply(&v1beta1("scale", "  size: 3\n"))?;
    env.wait_ready("scale", 3).await?;
    let tracker = PodTracker::start(&env.client, env.ns(), "scale").await?;

    env.patch_spec("scale", json!({"size": 5})).await?;
    env.wait_ready("scale", 5).await?;
    assert_eq!(
        pod_names(&env.client, env.ns(), "scale").await?,
        members("scale", 5)
    );

    env.cluster
        .kubectl_run(&[
            "scale",
            "natscluster",
            "scale",
            "--replicas",
            "3",
            "-n",
            env.ns(),
        ])?
        .assert_success();
    env.wait_ready("scale", 3).await?;
    assert_eq!(
        pod_names(&env.client, env.ns(), "scale").await?,
        members("scale", 3)
    );
    assert_eq!(
        tracker.deletion_order(),
        vec!["scale-5".to_string(), "scale-4".to_string()],
        "scale-down order"
    );

    // Past 9 the names are hex (scale-a), and order is numeric: 11 (scale-b) goes first.
    env.cluster
        .kubectl_run(&[
            "scale",
            "natscluster",
            "scale",
            "--replicas",
            "11",
            "-n",
            env.ns(),
        ])?
        .assert_success();
    env.wait_ready("scale", 11).await?;
    assert_eq!(pod_names(&env.client, env.ns(), "scale").await?.len(), 11);
    env.patch_spec("scale", json!({"size": 9})).await?;
    env.wait_ready("scale", 9).await?;
    let order = tracker.deletion_order();
    assert_eq!(
        order[2..],
        ["scale-b".to_string(), "scale-a".to_string()],
        "{order:?}"
    );
    let run = env.cluster.kubectl_run(&[
        "get",
        "natscluster",
        "scale",
        "-n",
        env.ns(),
        "-o",
        "jsonpath={.status.replicas}",
    ])?;
    assert_eq!(run.assert_success().stdout.trim(), "9");
    Ok(())
}

#[tokio::test]
async fn failed_and_deleted_members_are_replaced_under_their_own_names() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-replace").await? else {
        return Ok(());
    };
    env.apply(&v1beta1("heal", "  size: 3\n"))?;
    env.wait_ready("heal", 3).await?;
    let before = env.pod_uids("heal").await?;

    // A member fails: it is deleted and created again under its own name.
    mark_failed(&env.client, env.ns(), "heal-2").await?;
    let uids = poll(
        READY,
        Duration::from_millis(200),
        "heal-2 replaced",
        || async {
            let uids = env.pod_uids("heal").await?;
            Ok(match uids.get("heal-2") {
                Some(u) if Some(u) != before.get("heal-2") => Ok(uids),
                _ => Err(format!("{uids:?}")),
            })
        },
    )
    .await?;
    assert_eq!(uids.get("heal-1"), before.get("heal-1"), "heal-1 untouched");
    assert_eq!(uids.get("heal-3"), before.get("heal-3"), "heal-3 untouched");
    env.wait_ready("heal", 3).await?;

    // A user deletes a member: it comes back.
    let before = env.pod_uids("heal").await?;
    env.cluster
        .kubectl_run(&["delete", "pod", "heal-3", "-n", env.ns(), "--wait=false"])?
        .assert_success();
    poll(
        READY,
        Duration::from_millis(200),
        "heal-3 recreated",
        || async {
            let uids = env.pod_uids("heal").await?;
            Ok(match uids.get("heal-3") {
                Some(u) if Some(u) != before.get("heal-3") => Ok(()),
                _ => Err(format!("{uids:?}")),
            })
        },
    )
    .await
    .inspect_err(|_| eprintln!("{}", env.diagnostics()))?;
    let nc = env.wait_ready("heal", 3).await?;
    assert_eq!(
        pod_names(&env.client, env.ns(), "heal").await?,
        members("heal", 3)
    );
    assert_eq!(condition(&nc, "Ready").map(|c| c.0), Some("True".into()));
    Ok(())
}

/// A member or a Service that vanishes at once (force deletion: no terminating phase, the
/// watch only sees a DELETED event) is recreated within seconds, not at the next periodic
/// resync.
#[tokio::test]
async fn force_deleted_children_are_recreated_promptly() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-force").await? else {
        return Ok(());
    };
    env.apply(&v1beta1("force", "  size: 3\n"))?;
    env.wait_ready("force", 3).await?;
    // Let the operator settle (its last reconcile asks for the periodic resync).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = env.pod_uids("force").await?;
    env.cluster
        .kubectl_run(&[
            "delete",
            "pod",
            "force-2",
            "-n",
            env.ns(),
            "--grace-period=0",
            "--force",
        ])?
        .assert_success();
    let pod = poll(
        Duration::from_secs(30),
        Duration::from_millis(200),
        "force-2 recreated",
        || async {
            let uids = env.pod_uids("force").await?;
            Ok(match uids.get("force-2") {
                Some(u) if Some(u) != before.get("force-2") => Ok(()),
                _ => Err(format!("{uids:?}")),
            })
        },
    )
    .await;
    env.wait_ready("force", 3).await.ok();
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.cluster
        .kubectl_run(&["delete", "service", "force", "-n", env.ns()])?
        .assert_success();
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), env.ns());
    let svc = poll(
        Duration::from_secs(30),
        Duration::from_millis(200),
        "client Service recreated",
        || async {
            Ok(match svcs.get_opt("force").await? {
                Some(_) => Ok(()),
                None => Err("missing".to_string()),
            })
        },
    )
    .await;
    assert!(pod.is_ok() && svc.is_ok(), "pod: {pod:?}\nservice: {svc:?}");
    Ok(())
}

/// Waits until every member carries the pod-spec hash of the first replaced pod's
/// successor, i.e. the rollout is done and the cluster Ready at its generation.
async fn wait_rolled(
    env: &Env,
    name: &str,
    old_hashes: &BTreeMap<String, String>,
) -> Result<NatsCluster> {
    poll(
        Duration::from_secs(120),
        Duration::from_millis(250),
        "rollout done",
        || async {
            let pods = env
                .pods()
                .list(&ListParams::default().labels(&format!("app=nats,nats_cluster={name}")))
                .await?
                .items;
            let stale: Vec<String> = pods
                .iter()
                .filter(|p| {
                    p.annotations().get("nats.io/pod-spec-hash") == old_hashes.get(&p.name_any())
                })
                .map(|p| p.name_any())
                .collect();
            if !stale.is_empty() || pods.len() != 3 {
                return Ok(Err(format!(
                    "not yet replaced: {stale:?} ({} pods)",
                    pods.len()
                )));
            }
            let nc = env.clusters().get(name).await?;
            Ok(if nats_operator_e2e::natscluster::is_ready(&nc, 3) {
                Ok(nc)
            } else {
                Err(summary(&nc))
            })
        },
    )
    .await
}

async fn pod_hashes(env: &Env, name: &str) -> Result<BTreeMap<String, String>> {
    Ok(env
        .pods()
        .list(&ListParams::default().labels(&format!("app=nats,nats_cluster={name}")))
        .await?
        .items
        .iter()
        .map(|p| {
            (
                p.name_any(),
                p.annotations()
                    .get("nats.io/pod-spec-hash")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect())
}

#[tokio::test]
async fn pod_spec_and_version_rollouts_replace_one_member_at_a_time() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-rollout").await? else {
        return Ok(());
    };
    // Pods take a second to become ready, so the operator has to wait for each one.
    env.kubelet.configure(
        env.ns(),
        Behaviour {
            ready_delay: Duration::from_secs(1),
            lame_duck: Duration::from_millis(500),
        },
    );
    env.apply(&v1beta1(
        "roll",
        &format!("  size: 3\n  version: \"{OLD_VERSION}\"\n"),
    ))?;
    env.wait_ready("roll", 3).await?;
    let tracker = PodTracker::start(&env.client, env.ns(), "roll").await?;
    tracker.watch_members(&members("roll", 3));

    // 1. A pod-spec change (resources).
    let hashes = pod_hashes(&env, "roll").await?;
    env.patch_spec(
        "roll",
        json!({"pod": {"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}}),
    )
    .await?;
    let nc = wait_rolled(&env, "roll", &hashes).await?;
    let (max, worst) = tracker.max_unavailable();
    assert!(max <= 1, "{max} members unavailable at once: {worst}");
    assert_eq!(
        tracker.deletion_order(),
        members("roll", 3),
        "rollout order"
    );
    for p in env
        .pods()
        .list(&ListParams::default().labels("nats_cluster=roll"))
        .await?
        .items
    {
        let nats = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == "nats"))
            .and_then(|c| c.resources.clone())
            .and_then(|r| r.requests)
            .unwrap_or_default();
        assert_eq!(
            nats.get("cpu").map(|q| q.0.as_str()),
            Some("100m"),
            "{}",
            p.name_any()
        );
    }
    assert_eq!(
        nc.status.clone().unwrap_or_default().current_version,
        OLD_VERSION
    );

    // 2. A version upgrade: currentVersion stays until every member runs the new one.
    let hashes = pod_hashes(&env, "roll").await?;
    tracker.watch_members(&members("roll", 3));
    env.patch_spec("roll", json!({"version": NEW_VERSION}))
        .await?;
    let during = wait_cluster(
        &env.client,
        env.ns(),
        "roll",
        READY,
        "generation observed",
        |c| c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation,
    )
    .await?;
    assert_eq!(
        during.status.clone().unwrap_or_default().current_version,
        OLD_VERSION,
        "right after the upgrade started: {}",
        summary(&during)
    );
    let nc = wait_rolled(&env, "roll", &hashes).await?;
    let (max, worst) = tracker.max_unavailable();
    assert!(max <= 1, "{max} members unavailable at once: {worst}");
    assert_eq!(
        nc.status.clone().unwrap_or_default().current_version,
        NEW_VERSION
    );
    for p in env
        .pods()
        .list(&ListParams::default().labels("nats_cluster=roll"))
        .await?
        .items
    {
        assert_eq!(
            p.labels().get("nats_version").map(String::as_str),
            Some(NEW_VERSION),
            "{}",
            p.name_any()
        );
    }
    let order = tracker.deletion_order();
    assert_eq!(
        order[3..],
        members("roll", 3)[..],
        "upgrade order {order:?}"
    );
    Ok(())
}

#[tokio::test]
async fn paused_cluster_changes_no_pod_until_unpaused() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-paused").await? else {
        return Ok(());
    };
    env.apply(&v1alpha2("paused", "  size: 3\n"))?;
    env.wait_ready("paused", 3).await?;
    let before = env.pod_uids("paused").await?;

    env.patch_spec("paused", json!({"paused": true, "size": 5}))
        .await?;
    let nc = wait_cluster(
        &env.client,
        env.ns(),
        "paused",
        READY,
        "Paused condition",
        |c| {
            condition(c, "Paused").is_some_and(|(s, _)| s == "True")
                && c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation
        },
    )
    .await?;
    assert_eq!(condition(&nc, "Paused").map(|c| c.1), Some("Paused".into()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.pod_uids("paused").await?,
        before,
        "no pod changed while paused"
    );

    env.patch_spec("paused", json!({"paused": false})).await?;
    let nc = env.wait_ready("paused", 5).await?;
    assert_eq!(condition(&nc, "Paused").map(|c| c.0), Some("False".into()));
    let after = env.pod_uids("paused").await?;
    for (name, uid) in &before {
        assert_eq!(after.get(name), Some(uid), "{name} kept");
    }
    assert_eq!(after.len(), 5);
    Ok(())
}

#[tokio::test]
async fn service_policy_annotations_are_applied_and_updated() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-svc").await? else {
        return Ok(());
    };
    env.apply(&v1alpha2(
        "svc",
        "  size: 1\n  servicePolicy:\n    annotations:\n      example.com/lb: internal\n      example.com/keep: \"yes\"\n    labels:\n      team: a\n",
    ))?;
    env.wait_ready("svc", 1).await?;
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), env.ns());
    let s = svcs.get("svc").await?;
    assert_eq!(
        s.annotations().get("example.com/lb").map(String::as_str),
        Some("internal")
    );
    assert_eq!(s.labels().get("team").map(String::as_str), Some("a"));

    // Changing the policy updates the Service (in v1alpha2 terms, as the user wrote it).
    env.apply(&v1alpha2(
        "svc",
        "  size: 1\n  servicePolicy:\n    annotations:\n      example.com/lb: external\n    labels:\n      team: a\n",
    ))?;
    let s = poll(
        READY,
        Duration::from_millis(200),
        "annotation updated",
        || async {
            let s = svcs.get("svc").await?;
            Ok(
                if s.annotations().get("example.com/lb").map(String::as_str) == Some("external") {
                    Ok(s)
                } else {
                    Err(format!("{:?}", s.annotations()))
                },
            )
        },
    )
    .await?;
    // The same apply dropped `example.com/keep` (it went with the value change).
    assert!(
        !s.annotations().contains_key("example.com/keep"),
        "{:?}",
        s.annotations()
    );

    Ok(())
}

/// Removing one annotation from `servicePolicy`, with nothing else changing, removes it from
/// the Service.
#[tokio::test]
async fn service_annotation_dropped_from_the_policy_is_removed() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-svc-rm").await? else {
        return Ok(());
    };
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), env.ns());
    env.apply(&v1alpha2(
        "svc",
        "  size: 1\n  servicePolicy:\n    annotations:\n      example.com/lb: external\n      example.com/extra: \"1\"\n    labels:\n      team: a\n",
    ))?;
    poll(
        READY,
        Duration::from_millis(200),
        "annotation added",
        || async {
            let s = svcs.get("svc").await?;
            Ok(if s.annotations().contains_key("example.com/extra") {
                Ok(())
            } else {
                Err(format!("{:?}", s.annotations()))
            })
        },
    )
    .await?;
    env.apply(&v1alpha2(
        "svc",
        "  size: 1\n  servicePolicy:\n    annotations:\n      example.com/lb: external\n    labels:\n      team: a\n",
    ))?;
    let removed = poll(
        Duration::from_secs(20),
        Duration::from_millis(250),
        "annotation removed",
        || async {
            let s = svcs.get("svc").await?;
            Ok(if s.annotations().contains_key("example.com/extra") {
                Err(format!("{:?}", s.annotations()))
            } else {
                Ok(())
            })
        },
    )
    .await;
    assert!(
        removed.is_ok(),
        "an annotation dropped from servicePolicy stays on the Service: {removed:?}"
    );
    Ok(())
}

fn auth_secret(name: &str, users: &[&str]) -> String {
    let users: Vec<serde_json::Value> = users
        .iter()
        .map(|u| json!({"username": u, "password": format!("{u}-pw")}))
        .collect();
    let body = json!({"users": users}).to_string();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  clients.json: '{body}'\n"
    )
}

#[tokio::test]
async fn auth_secret_changes_rerender_and_a_missing_one_degrades() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-auth").await? else {
        return Ok(());
    };
    env.apply(&auth_secret("clients", &["alice"]))?;
    env.apply(&v1alpha2(
        "auth",
        "  size: 3\n  auth:\n    clientsAuthSecret: clients\n",
    ))?;
    env.wait_ready("auth", 3).await?;
    let conf = nats_conf(&env, "auth").await?;
    assert!(
        conf.contains("\"alice\"") && !conf.contains("\"bob\""),
        "{conf}"
    );
    let nc_before = env.clusters().get("auth").await?;

    // A new user in the Secret reaches nats.conf; the NatsCluster is not touched.
    env.apply(&auth_secret("clients", &["alice", "bob"]))?;
    poll(
        READY,
        Duration::from_millis(200),
        "bob in nats.conf",
        || async {
            let conf = nats_conf(&env, "auth").await?;
            Ok(if conf.contains("\"bob\"") {
                Ok(())
            } else {
                Err(conf)
            })
        },
    )
    .await?;
    let nc_after = env.clusters().get("auth").await?;
    assert_eq!(nc_after.metadata.generation, nc_before.metadata.generation);
    assert_eq!(nc_after.spec, nc_before.spec);

    // The Secret disappears: Degraded, a Warning Event, and nothing changes.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), env.ns());
    let config_rv = secrets.get("auth").await?.resource_version();
    let uids = env.pod_uids("auth").await?;
    secrets.delete("clients", &Default::default()).await?;
    let nc = wait_cluster(&env.client, env.ns(), "auth", READY, "Degraded", |c| {
        condition(c, "Degraded").is_some_and(|(s, _)| s == "True")
    })
    .await?;
    assert_eq!(
        condition(&nc, "Degraded").map(|c| c.1),
        Some("MissingInput".into()),
        "{}",
        summary(&nc)
    );
    let events: Api<Event> = Api::namespaced(env.client.clone(), env.ns());
    poll(
        Duration::from_secs(20),
        Duration::from_millis(250),
        "Warning Event",
        || async {
            let list = events.list(&ListParams::default()).await?.items;
            let found = list.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some("MissingInput")
                    && e.involved_object.name.as_deref() == Some("auth")
            });
            Ok(if found {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    list.iter()
                        .map(|e| (
                            e.type_.clone(),
                            e.reason.clone(),
                            e.involved_object.name.clone()
                        ))
                        .collect::<Vec<_>>()
                ))
            })
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        secrets.get("auth").await?.resource_version(),
        config_rv,
        "config Secret untouched"
    );
    assert_eq!(env.pod_uids("auth").await?, uids, "pods untouched");
    let run = env
        .cluster
        .kubectl_run(&["describe", "natscluster", "auth", "-n", env.ns()])?;
    run.assert_success().assert_stdout_contains("MissingInput");

    // A new cluster whose Secret is missing gets no children at all.
    env.apply(&v1alpha2(
        "noauth",
        "  size: 3\n  auth:\n    clientsAuthSecret: nowhere\n",
    ))?;
    wait_cluster(&env.client, env.ns(), "noauth", READY, "Degraded", |c| {
        condition(c, "Degraded").is_some_and(|(s, _)| s == "True")
    })
    .await?;
    assert!(pod_names(&env.client, env.ns(), "noauth").await?.is_empty());
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), env.ns());
    assert!(svcs.get_opt("noauth").await?.is_none());
    assert!(secrets.get_opt("noauth").await?.is_none());

    // The Secret comes back: the cluster recovers.
    env.apply(&auth_secret("clients", &["alice"]))?;
    let nc = wait_cluster(&env.client, env.ns(), "auth", READY, "not Degraded", |c| {
        condition(c, "Degraded").is_some_and(|(s, _)| s == "False")
    })
    .await?;
    assert!(
        nats_operator_e2e::natscluster::is_ready(&nc, 3),
        "{}",
        summary(&nc)
    );

    // A Secret of the wrong shape (an array, not an object) is the same kind of mistake:
    // Degraded with the field path, one Warning Event, nothing changed, and no retry
    // loop (the operator reads the Secret again only when something changes).
    let config_rv = secrets.get("auth").await?.resource_version();
    let uids = env.pod_uids("auth").await?;
    env.apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: clients\nstringData:\n  clients.json: '[{\"username\": \"alice\"}]'\n",
    )?;
    let nc = wait_cluster(
        &env.client,
        env.ns(),
        "auth",
        READY,
        "Degraded InvalidInput",
        |c| condition(c, "Degraded") == Some(("True".into(), "InvalidInput".into())),
    )
    .await?;
    let message = condition_message(&nc, "Degraded");
    assert!(
        message.starts_with("spec.auth.clients.secret: ") && message.contains("holds an array"),
        "{message}"
    );
    let reads = |from: usize| {
        env.operator.requests().all()[from..]
            .iter()
            .filter(|r| r.method == http::Method::GET && r.uri.contains("/secrets/clients"))
            .count()
    };
    // The status write itself wakes the cluster once more; then it is quiet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mark = env.operator.requests().all().len();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        reads(mark),
        0,
        "no retry loop on a user's mistake:\n{}",
        env.diagnostics()
    );
    let warnings = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("InvalidInput"))
        .filter(|e| e.involved_object.name.as_deref() == Some("auth"))
        .map(|e| e.count.unwrap_or(1))
        .sum::<i32>();
    assert_eq!(warnings, 1, "one Warning Event");
    assert_eq!(
        secrets.get("auth").await?.resource_version(),
        config_rv,
        "config Secret untouched"
    );
    assert_eq!(env.pod_uids("auth").await?, uids, "pods untouched");
    env.apply(&auth_secret("clients", &["alice"]))?;
    wait_cluster(&env.client, env.ns(), "auth", READY, "not Degraded", |c| {
        condition(c, "Degraded").is_some_and(|(s, _)| s == "False")
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_cluster_cascades_to_all_children() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-delete").await? else {
        return Ok(());
    };
    if !env.cluster.has_controller("garbage-collector-controller") {
        eprintln!("SKIPPED: no garbage collector in this control plane");
        return Ok(());
    }
    env.apply(&v1beta1("gone", "  size: 3\n"))?;
    env.wait_ready("gone", 3).await?;
    env.cluster
        .kubectl_run(&[
            "delete",
            "natscluster",
            "gone",
            "-n",
            env.ns(),
            "--wait=false",
        ])?
        .assert_success();
    let ns = env.ns().to_string();
    poll(
        Duration::from_secs(90),
        Duration::from_millis(500),
        "children gone",
        || async {
            let lp = ListParams::default().labels("app=nats,nats_cluster=gone");
            let pods = Api::<Pod>::namespaced(env.client.clone(), &ns)
                .list(&lp)
                .await?
                .items
                .len();
            let svcs = Api::<Service>::namespaced(env.client.clone(), &ns)
                .list(&lp)
                .await?
                .items
                .len();
            let secrets = Api::<Secret>::namespaced(env.client.clone(), &ns)
                .list(&lp)
                .await?
                .items
                .len();
            let pdbs = Api::<PodDisruptionBudget>::namespaced(env.client.clone(), &ns)
                .list(&lp)
                .await?
                .items
                .len();
            Ok(if pods + svcs + secrets + pdbs == 0 {
                Ok(())
            } else {
                Err(format!(
                    "pods {pods} services {svcs} secrets {secrets} pdbs {pdbs}"
                ))
            })
        },
    )
    .await?;
    assert!(env.clusters().get_opt("gone").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn steady_state_writes_nothing() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-steady").await? else {
        return Ok(());
    };
    env.apply(&v1beta1("steady", "  size: 3\n"))?;
    env.apply(&v1alpha2(
        "steady-alpha",
        "  size: 2\n  servicePolicy:\n    annotations:\n      a.example.com/x: \"1\"\n",
    ))?;
    env.wait_ready("steady", 3).await?;
    env.wait_ready("steady-alpha", 2).await?;
    // Let the last status write and its watch events settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let since = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let writes = env.operator.requests().writes_since(since);
    let all = env.operator.requests().all();
    eprintln!(
        "operator requests: {} in total, {} writes in total, {} writes in the 10 s steady window",
        all.len(),
        all.iter().filter(|r| r.is_write()).count(),
        writes.len()
    );
    assert!(
        writes.is_empty(),
        "the operator wrote in a steady state:\n{}",
        writes
            .iter()
            .map(|w| format!("  {w}\n"))
            .collect::<String>()
    );
    Ok(())
}

#[tokio::test]
async fn leader_failover_hands_over_to_the_standby() -> Result<()> {
    let _s = scenario();
    let lease = |ns: &str| LeaseSettings {
        namespace: ns.to_string(),
        name: "nats-operator".into(),
        timing: Timing::default(),
    };
    let Some(env) = setup_with("e2e-ctl-leader", |ns| {
        Some(OperatorOptions {
            scope: Scope::Namespace(ns.to_string()),
            identity: "replica-a".into(),
            lease: Some(lease(ns)),
            assets: Default::default(),
        })
    })
    .await?
    else {
        return Ok(());
    };
    let a = &env.operator;
    poll(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "replica-a leads",
        || async {
            Ok(if a.is_leader() {
                Ok(())
            } else {
                Err("not yet".to_string())
            })
        },
    )
    .await?;
    let b = InProcessOperator::start(
        env.cluster,
        OperatorOptions {
            scope: Scope::Namespace(env.ns().to_string()),
            identity: "replica-b".into(),
            lease: Some(lease(env.ns())),
            assets: Default::default(),
        },
    )?;
    env.apply(&v1beta1("ha", "  size: 3\n"))?;
    env.wait_ready("ha", 3).await?;
    assert!(
        !b.is_leader(),
        "replica-b must follow while replica-a leads"
    );
    let not_lease = |r: &nats_operator_e2e::controller::RecordedRequest| !r.uri.contains("/leases");
    let b_writes: Vec<String> = b
        .requests()
        .all()
        .iter()
        .filter(|r| r.is_write() && not_lease(r))
        .map(ToString::to_string)
        .collect();
    assert!(b_writes.is_empty(), "the standby reconciled: {b_writes:?}");
    assert!(
        a.requests()
            .all()
            .iter()
            .any(|r| r.is_write() && not_lease(r)),
        "the leader made the children"
    );

    // The leader stops (releasing the Lease): the standby takes over.
    let stopped_in = a.stop().await?;
    let stopped = Instant::now();
    poll(
        Duration::from_secs(15),
        Duration::from_millis(100),
        "replica-b leads",
        || async {
            Ok(if b.is_leader() {
                Ok(())
            } else {
                Err("not yet".to_string())
            })
        },
    )
    .await?;
    let takeover = stopped.elapsed();
    eprintln!("replica-a stopped in {stopped_in:?}; replica-b led {takeover:?} later");
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), env.ns());
    let holder = leases
        .get("nats-operator")
        .await?
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("replica-b"));

    // And it reconciles: a scale after the failover converges.
    env.patch_spec("ha", json!({"size": 4})).await?;
    env.wait_ready("ha", 4).await?;
    assert!(
        b.requests()
            .all()
            .iter()
            .any(|r| r.is_write() && r.uri.contains("/pods")),
        "replica-b created the new member"
    );
    b.stop().await?;
    let released = leases
        .get("nats-operator")
        .await?
        .spec
        .and_then(|s| s.holder_identity);
    if released.is_some() {
        bail!("replica-b did not release the Lease on shutdown: {released:?}");
    }
    Ok(())
}

/// Decodes the claims of a JWT (unverified: only to read what the apiserver bound it to).
fn jwt_claims(token: &str) -> Result<serde_json::Value> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in payload.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => continue,
            _ => bail!("not base64url: {c}"),
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(((bits >> n) & 0xff) as u8);
        }
    }
    Ok(serde_json::from_slice(&out)?)
}

fn data(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// Upstream `example-svc-accounts-diff-namespaces.yaml`, done right (upstream #319, #248,
/// #263): an operator managing two namespaces; the NatsCluster and its NatsServiceRoles in
/// one, ServiceAccounts of the roles' names in both. Every account gets a token bound to a
/// Secret in its own namespace (no cross-namespace owner), under a username unique across
/// namespaces that `nats.conf` uses; the operator removes tokens nobody needs any more.
#[tokio::test]
async fn service_roles_bind_tokens_in_the_accounts_namespaces_with_unique_usernames() -> Result<()>
{
    let _s = scenario();
    let Some(op) = NatsOperator::shared().await? else {
        return Ok(());
    };
    if op.cluster().is_external() {
        eprintln!("SKIPPED: the controller scenarios run a test kubelet (E2E_KUBECONFIG is set)");
        return Ok(());
    }
    let apps = TestNamespace::create(op.cluster(), "e2e-ctl-sa-apps").await?;
    let apps_ns = apps.name().to_string();
    let scope_apps = apps_ns.clone();
    let Some(env) = setup_with("e2e-ctl-sa", move |ns| {
        Some(OperatorOptions {
            scope: Scope::Namespaces(vec![ns.to_string(), scope_apps]),
            identity: format!("e2e-operator-{ns}"),
            lease: None,
            assets: Default::default(),
        })
    })
    .await?
    else {
        return Ok(());
    };
    let ns = env.ns().to_string();
    let accounts = |n: &str| -> Api<k8s_openapi::api::core::v1::ServiceAccount> {
        Api::namespaced(env.client.clone(), n)
    };
    let secrets = |n: &str| -> Api<Secret> { Api::namespaced(env.client.clone(), n) };
    for (n, name) in [
        (&ns, "nats-user"),
        (&apps_ns, "nats-user"),
        (&apps_ns, "nats-admin"),
    ] {
        env.cluster
            .kubectl_run(&["create", "serviceaccount", name, "-n", n])?
            .assert_success();
    }
    let role = |name: &str, publish: &str| {
        format!(
            "apiVersion: nats.io/v1alpha2\nkind: NatsServiceRole\nmetadata:\n  name: {name}\n  \
             labels:\n    nats_cluster: svc\nspec:\n  permissions:\n    publish: [\"{publish}\"]\n    \
             subscribe: [\">\"]\n"
        )
    };
    env.apply(&role("nats-user", "foo.*"))?;
    env.apply(&role("nats-admin", ">"))?;
    env.apply(&v1alpha2(
        "svc",
        "  size: 1\n  auth:\n    enableServiceAccounts: true\n",
    ))?;
    env.wait_ready("svc", 1).await?;

    let token_name = |role: &str| format!("{role}-svc-bound-token");
    let want = [
        (ns.clone(), "nats-user", "nats-user".to_string()),
        (
            apps_ns.clone(),
            "nats-user",
            format!("system:serviceaccount:{apps_ns}:nats-user"),
        ),
        (
            apps_ns.clone(),
            "nats-admin",
            format!("system:serviceaccount:{apps_ns}:nats-admin"),
        ),
    ];
    // Every user is in nats.conf with the token of its Secret.
    let conf = poll(
        READY,
        Duration::from_millis(200),
        "three service-role users in nats.conf",
        || async {
            let conf = nats_conf(&env, "svc").await?;
            for (_, _, user) in &want {
                if !conf.contains(&format!("\"{user}\"")) {
                    return Ok(Err(format!("no user {user}:\n{conf}")));
                }
            }
            Ok(Ok(conf))
        },
    )
    .await?;
    let mut tokens = Vec::new();
    for (n, role, user) in &want {
        let secret = secrets(n)
            .get(&token_name(role))
            .await
            .with_context(|| format!("bound-token Secret {n}/{}", token_name(role)))?;
        let token = data(&secret, "token");
        assert!(!token.is_empty(), "no token in {n}/{}", secret.name_any());
        assert_eq!(&data(&secret, "username"), user, "username key of {n}");
        assert!(
            conf.contains(&format!("\"user\": \"{user}\""))
                && conf.contains(&format!("\"{token}\"")),
            "user {user} with its token missing from nats.conf:\n{conf}"
        );
        // Owners only in the Secret's own namespace: the role here, the account elsewhere.
        let owners = secret.owner_references();
        if n == &ns {
            assert!(
                owners
                    .iter()
                    .any(|o| o.kind == "NatsServiceRole" && o.name == *role),
                "{owners:?}"
            );
        } else {
            let sa = accounts(n).get(role).await?;
            assert_eq!(owners.len(), 1, "{owners:?}");
            assert_eq!(
                (owners[0].kind.as_str(), owners[0].uid.clone()),
                ("ServiceAccount", sa.uid().unwrap_or_default()),
                "{owners:?}"
            );
            assert_eq!(
                secret.labels().get("nats.io/cluster-namespace"),
                Some(&ns),
                "{:?}",
                secret.labels()
            );
        }
        // The token is the account's, for the cluster's Service, bound to this Secret.
        let claims = jwt_claims(&token)?;
        assert_eq!(
            claims["sub"],
            format!("system:serviceaccount:{n}:{role}"),
            "{claims:#}"
        );
        assert_eq!(
            claims["aud"],
            json!([format!("nats://svc.{ns}.svc")]),
            "{claims:#}"
        );
        let bound = &claims["kubernetes.io"]["secret"];
        assert_eq!(bound["name"], token_name(role), "{claims:#}");
        assert_eq!(bound["uid"], secret.uid().unwrap_or_default(), "{claims:#}");
        tokens.push(token);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "one token per account");

    // An account goes: its Secret goes with it (owned by the account), and so does the user.
    if env.cluster.has_controller("garbage-collector-controller") {
        accounts(&apps_ns)
            .delete("nats-admin", &Default::default())
            .await?;
        let admin = format!("\"system:serviceaccount:{apps_ns}:nats-admin\"");
        poll(
            Duration::from_secs(60),
            Duration::from_millis(200),
            "nats-admin's user and Secret removed",
            || async {
                let conf = nats_conf(&env, "svc").await?;
                let secret = secrets(&apps_ns).get_opt(&token_name("nats-admin")).await?;
                Ok(if conf.contains(&admin) || secret.is_some() {
                    Err(format!("Secret present: {}\n{conf}", secret.is_some()))
                } else {
                    Ok(())
                })
            },
        )
        .await?;
    }

    // The cluster goes: the operator deletes its bound-token Secrets, also the one in
    // the other namespace, which no owner reference could collect.
    env.cluster
        .kubectl_run(&["delete", "natscluster", "svc", "-n", &ns, "--wait=false"])?
        .assert_success();
    poll(
        Duration::from_secs(60),
        Duration::from_millis(200),
        "bound-token Secrets of the deleted cluster removed",
        || async {
            let mut left = Vec::new();
            for n in [&ns, &apps_ns] {
                if secrets(n)
                    .get_opt(&token_name("nats-user"))
                    .await?
                    .is_some()
                {
                    left.push(format!("{n}/{}", token_name("nats-user")));
                }
            }
            Ok(if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            })
        },
    )
    .await?;
    // The roles stay: they are the user's.
    let roles = env
        .cluster
        .kubectl_run(&["get", "natsserviceroles", "-n", &ns, "-o", "name"])?;
    roles.assert_success().assert_stdout_contains("nats-user");
    Ok(())
}

/// Whether every field of `want` is in `have` with the same value (objects: a subset of
/// keys; arrays: same length, element by element). Server defaults in `have` are ignored.
fn subset(want: &serde_json::Value, have: &serde_json::Value, path: &str, diffs: &mut Vec<String>) {
    use serde_json::Value as V;
    match (want, have) {
        (V::Object(w), V::Object(h)) => {
            for (k, wv) in w {
                match h.get(k) {
                    Some(hv) => subset(wv, hv, &format!("{path}.{k}"), diffs),
                    None => diffs.push(format!("{path}.{k}: missing (want {wv})")),
                }
            }
        }
        (V::Array(w), V::Array(h)) if w.len() == h.len() => {
            for (i, (wv, hv)) in w.iter().zip(h).enumerate() {
                subset(wv, hv, &format!("{path}[{i}]"), diffs);
            }
        }
        _ if want == have => {}
        _ => diffs.push(format!("{path}: want {want}, have {have}")),
    }
}

/// `nats-operator run` turns every upstream example into exactly the children that
/// `nats-operator render` prints for it (the same code; the render tests pin those to the
/// Go operator's shapes with the fixes): Services, the PodDisruptionBudget, the config
/// Secret's `nats.conf` and every member pod's spec, compared field by field against what
/// the apiserver stored.
#[tokio::test]
async fn every_upstream_example_reconciles_to_its_rendered_children() -> Result<()> {
    let _s = scenario();
    let mut checked = 0;
    let mut all_diffs = Vec::new();
    let files = nats_operator_e2e::fixtures::example_files(
        "every_upstream_example_reconciles_to_its_rendered_children",
    )?;
    if files.is_empty() {
        return Ok(()); // skipped, and said why
    }
    for file in files {
        let docs = nats_operator_e2e::fixtures::applicable_documents(&file)?;
        let clusters: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] == "NatsCluster")
            .map(|d| nats_operator_e2e::fixtures::kind_and_name(d).1)
            .collect();
        if clusters.is_empty() {
            continue;
        }
        // The invalid-cipher example is denied by the webhook, as it should be.
        let manifest: String = docs
            .iter()
            .map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap_or_default()))
            .collect();
        let Some(env) = setup("examples").await? else {
            return Ok(());
        };
        let applied = env
            .cluster
            .kubectl_run_stdin(&["apply", "-n", env.ns(), "-f", "-"], Some(&manifest))?;
        if !applied.success() {
            assert!(
                file.to_string_lossy().contains("custom-cipher"),
                "{} was refused:\n{applied}",
                file.display()
            );
            continue;
        }
        // Render the same documents in the test namespace, offline.
        let with_ns: String = docs
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d["metadata"]["namespace"] = json!(env.ns());
                format!("---\n{}\n", serde_json::to_string(&d).unwrap_or_default())
            })
            .collect();
        let rendered = nats_operator_e2e::fixtures::yaml_documents(
            &nats_operator_e2e::podrun::render(&with_ns)
                .with_context(|| format!("render {}", file.display()))?,
        )?;
        // Children appear, or the cluster says what it waits for (a missing auth Secret:
        // then it creates nothing until the Secret exists, by design).
        let mut waiting = std::collections::BTreeSet::new();
        for c in &clusters {
            let nc = poll(
                Duration::from_secs(60),
                Duration::from_millis(250),
                &format!("{c}: children"),
                || async {
                    let pods = pod_names(&env.client, env.ns(), c).await?;
                    let svc: Api<Service> = Api::namespaced(env.client.clone(), env.ns());
                    let nc = env.clusters().get(c).await?;
                    let degraded = condition(&nc, "Degraded").is_some_and(|(st, _)| st == "True");
                    Ok(
                        if (svc.get_opt(c).await?.is_some() && !pods.is_empty()) || degraded {
                            Ok(nc)
                        } else {
                            Err(format!("pods {pods:?}, {}", summary(&nc)))
                        },
                    )
                },
            )
            .await?;
            if condition(&nc, "Degraded").is_some_and(|(st, _)| st == "True") {
                waiting.insert(c.clone());
            }
        }
        // Let the cluster settle (all members created) before comparing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut diffs = Vec::new();
        for want in &rendered {
            let (kind, name) = nats_operator_e2e::fixtures::kind_and_name(want);
            let ns = env.ns();
            let have: Option<serde_json::Value> = match kind.as_str() {
                "Service" => Api::<Service>::namespaced(env.client.clone(), ns)
                    .get_opt(&name)
                    .await?
                    .map(serde_json::to_value)
                    .transpose()?,
                "PodDisruptionBudget" => {
                    Api::<PodDisruptionBudget>::namespaced(env.client.clone(), ns)
                        .get_opt(&name)
                        .await?
                        .map(serde_json::to_value)
                        .transpose()?
                }
                "Pod" => Api::<Pod>::namespaced(env.client.clone(), ns)
                    .get_opt(&name)
                    .await?
                    .map(serde_json::to_value)
                    .transpose()?,
                "Secret" => Api::<Secret>::namespaced(env.client.clone(), ns)
                    .get_opt(&name)
                    .await?
                    .map(|s| {
                        let data = s.data.unwrap_or_default();
                        let text: BTreeMap<String, String> = data
                            .iter()
                            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                            .collect();
                        json!({"apiVersion": "v1", "kind": "Secret", "type": s.type_,
                        "metadata": {"name": s.metadata.name, "namespace": s.metadata.namespace},
                        "stringData": text})
                    }),
                _ => continue,
            };
            let Some(have) = have else {
                let owner = want["metadata"]["labels"]["nats_cluster"]
                    .as_str()
                    .unwrap_or_default();
                if !waiting.contains(owner) {
                    diffs.push(format!("{}: {kind} {name} not created", file.display()));
                }
                continue;
            };
            let mut want = want.clone();
            if let Some(m) = want["metadata"].as_object_mut() {
                // Hashes and labels are the operator's bookkeeping; spec and data are compared.
                m.remove("annotations");
                m.remove("labels");
            }
            let mut have = have;
            // Offline, `render` cannot mint ServiceAccount tokens: it prints a placeholder
            // where the operator puts the token. Everything else must be identical.
            if want["stringData"]["nats.conf"]
                .as_str()
                .is_some_and(|t| t.contains("<bound ServiceAccount token"))
            {
                let strip = |v: &mut serde_json::Value| {
                    if let Some(t) = v["stringData"]["nats.conf"].as_str() {
                        let kept: Vec<&str> = t
                            .lines()
                            .filter(|l| !l.trim_start().starts_with("\"password\":"))
                            .collect();
                        v["stringData"]["nats.conf"] = json!(kept.join("\n"));
                    }
                };
                strip(&mut want);
                strip(&mut have);
            }
            let mut d = Vec::new();
            subset(&want, &have, &format!("{kind}/{name}"), &mut d);
            diffs.extend(d.into_iter().map(|x| format!("{}: {x}", file.display())));
            checked += 1;
        }
        all_diffs.extend(diffs);
        drop(env);
    }
    assert!(
        all_diffs.is_empty(),
        "operator children differ from render:\n{}",
        all_diffs.join("\n")
    );
    assert!(checked >= 20, "only {checked} objects compared");
    println!(
        "NUMBERS examples: {checked} children of every upstream example identical to `render`"
    );
    Ok(())
}

/// `spec.pod.podMonitor`: without the Prometheus Operator's CRD the cluster still becomes
/// Ready and a Warning Event says what is missing; with it, the PodMonitor follows the spec
/// (selector, labels, interval, owner) and goes when `enabled` turns false.
#[tokio::test]
async fn pod_monitor_follows_the_spec_and_a_missing_crd_is_reported() -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{DynamicObject, PostParams};
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-podmon").await? else {
        return Ok(());
    };
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    const CRD: &str = "podmonitors.monitoring.coreos.com";
    let spec = |interval: &str, enabled: bool| {
        format!(
            "  size: 1\n  pod:\n    metrics:\n      enabled: true\n    podMonitor:\n      enabled: {enabled}\n      interval: {interval}\n      labels:\n        release: prom\n"
        )
    };
    env.apply(&v1beta1("mon", &spec("30s", true)))?;
    if let Err(e) = env.wait_ready("mon", 1).await {
        bail!("{e:#}\n{}", env.diagnostics());
    }
    if crds.get_opt(CRD).await?.is_none() {
        let events: Api<Event> = Api::namespaced(env.client.clone(), env.ns());
        poll(
            READY,
            Duration::from_millis(200),
            "PodMonitorUnavailable",
            || async {
                let found = events
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .any(|e| {
                        e.reason.as_deref() == Some("PodMonitorUnavailable")
                            && e.type_.as_deref() == Some("Warning")
                    });
                Ok(if found {
                    Ok(())
                } else {
                    Err("no event".to_string())
                })
            },
        )
        .await?;
        // The Prometheus Operator's CRD, reduced to what the apiserver needs.
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": CRD},
            "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                "names": {"kind": "PodMonitor", "plural": "podmonitors", "singular": "podmonitor", "listKind": "PodMonitorList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))?;
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        poll(
            READY,
            Duration::from_millis(200),
            "PodMonitor CRD established",
            || async {
                let c = crds.get(CRD).await?;
                let established = c
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(if established {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                })
            },
        )
        .await?;
    }
    // A spec change (the interval) reconciles; the PodMonitor is made as the spec says.
    env.apply(&v1beta1("mon", &spec("15s", true)))?;
    let monitors: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        env.ns(),
        &nats_operator::render::monitor::pod_monitor_resource(),
    );
    let pm = poll(
        READY,
        Duration::from_millis(200),
        "PodMonitor mon",
        || async {
            Ok(match monitors.get_opt("mon").await? {
                Some(pm) if pm.data["spec"]["podMetricsEndpoints"][0]["interval"] == "15s" => {
                    Ok(pm)
                }
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await?;
    assert_eq!(
        pm.data["spec"]["selector"]["matchLabels"]["nats_cluster"],
        "mon"
    );
    assert_eq!(pm.data["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    assert_eq!(pm.labels().get("release").map(String::as_str), Some("prom"));
    let cluster_uid = env.clusters().get("mon").await?.uid();
    assert!(
        pm.owner_references()
            .iter()
            .any(|o| Some(&o.uid) == cluster_uid.as_ref()),
        "owned by the NatsCluster"
    );
    // enabled: false removes it.
    env.apply(&v1beta1("mon", &spec("15s", false)))?;
    poll(
        READY,
        Duration::from_millis(200),
        "PodMonitor deleted",
        || async {
            Ok(match monitors.get_opt("mon").await? {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            })
        },
    )
    .await?;
    Ok(())
}

/// The storage requests of the cluster's claims, by claim name.
async fn claim_requests(env: &Env, cluster: &str) -> Result<BTreeMap<String, String>> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), env.ns());
    let lp = ListParams::default().labels(&format!("app=nats,nats_cluster={cluster}"));
    Ok(api
        .list(&lp)
        .await?
        .items
        .iter()
        .map(|c| {
            let bound = c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let request = requested(c).map(|q| q.0).unwrap_or_default();
            (
                c.name_any(),
                if bound {
                    request
                } else {
                    format!("{request} (unbound)")
                },
            )
        })
        .collect())
}

/// Volumes of a storage class that cannot grow: the apiserver refuses the larger request,
/// and the cluster says so (Degraded `VolumeNotExpanded` and a Warning Event naming the
/// way out) without touching the claims. `status.volumeSize` tells what the volumes
/// have; the spec may go back down to it, not below (a native `is invalid` error), and
/// the cluster recovers.
#[tokio::test]
async fn volumes_that_cannot_grow_are_reported_and_the_size_may_go_back() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("e2e-ctl-fixedvol").await? else {
        return Ok(());
    };
    ensure_fixed_class(&env.client).await?;
    let _volumes = VolumeStandIn::start(env.client.clone(), env.ns(), None);
    let spec = |size: &str| {
        format!(
            "  size: 3\n  jetstream:\n    fileStorage:\n      size: {size}\n      storageClassName: {FIXED_CLASS}\n"
        )
    };
    let one_gi = |requests: &BTreeMap<String, String>| {
        requests.len() == 3 && requests.values().all(|r| r == "1Gi")
    };
    env.apply(&v1beta1("fixed", &spec("1Gi")))?;
    let r = async {
        env.wait_ready("fixed", 3).await?;
        poll(READY, Duration::from_millis(200), "3 bound claims of 1Gi", || async {
            let requests = claim_requests(&env, "fixed").await?;
            Ok(if one_gi(&requests) { Ok(()) } else { Err(format!("{requests:?}")) })
        })
        .await?;
        wait_cluster(&env.client, env.ns(), "fixed", READY, "status.volumeSize 1Gi", |c| {
            c.status.as_ref().is_some_and(|s| s.volume_size == "1Gi")
        })
        .await?;

        env.patch_spec("fixed", json!({"jetstream": {"fileStorage": {"size": "2Gi"}}}))
            .await?;
        let degraded = wait_cluster(
            &env.client,
            env.ns(),
            "fixed",
            READY,
            "Degraded VolumeNotExpanded",
            |c| condition(c, "Degraded") == Some(("True".into(), "VolumeNotExpanded".into())),
        )
        .await?;
        let message = condition_message(&degraded, "Degraded");
        anyhow::ensure!(
            message.contains("from 1Gi to 2Gi")
                && message.contains("allowVolumeExpansion")
                && message.contains("status.volumeSize"),
            "{message}"
        );
        let events: Api<Event> = Api::namespaced(env.client.clone(), env.ns());
        anyhow::ensure!(
            events.list(&ListParams::default()).await?.items.iter().any(|e| {
                e.reason.as_deref() == Some("VolumeNotExpanded")
                    && e.type_.as_deref() == Some("Warning")
            }),
            "no VolumeNotExpanded Warning Event"
        );
        let requests = claim_requests(&env, "fixed").await?;
        anyhow::ensure!(one_gi(&requests), "claims changed: {requests:?}");
        anyhow::ensure!(
            degraded.status.as_ref().map(|s| s.volume_size.as_str()) == Some("1Gi"),
            "{:?}",
            degraded.status
        );

        // Below what the volumes have: denied as kubectl shows it, and not stored.
        let run = env.cluster.kubectl_run_stdin(
            &["apply", "-n", env.ns(), "-f", "-"],
            Some(&v1beta1("fixed", &spec("512Mi"))),
        )?;
        run.assert_failure()
            .assert_stderr_contains("The NatsCluster \"fixed\" is invalid:")
            .assert_stderr_contains(
                "spec.jetstream.fileStorage.size: Forbidden: volumes can grow but never shrink: the members' volumes request 1Gi (status.volumeSize)",
            );
        // Back to what they have: accepted, and the cluster recovers.
        env.apply(&v1beta1("fixed", &spec("1Gi")))?;
        wait_cluster(&env.client, env.ns(), "fixed", READY, "Degraded False", |c| {
            condition(c, "Degraded").is_some_and(|(status, _)| status == "False")
        })
        .await?;
        env.wait_ready("fixed", 3).await?;
        let requests = claim_requests(&env, "fixed").await?;
        anyhow::ensure!(one_gi(&requests), "claims changed: {requests:?}");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics());
    }
    Ok(())
}
