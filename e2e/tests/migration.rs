//! The README's "Migrating from the Go operator", run as written on a real control plane.
//!
//! The Go operator's world is made first, as it made it: its CRDs (schema-less, registered
//! under its own field manager), a `nats.io/v1alpha2` NatsCluster stored without our
//! defaults in the namespace `default`, its JSON config Secret, its two Services and its
//! three bare pods (its labels and annotations, `/nats-server -c ... -P ...`, no `preStop`,
//! owned by the v1alpha2 object), run from `nats:<version>` on a real node (kubelet,
//! containerd, runc, kube-proxy) in full mesh. Under request-reply load through the client
//! Service's ClusterIP, the README's step 1 is run
//! (`kubectl apply --server-side --force-conflicts -k manifests/overlays/cluster-scoped`),
//! and the operator runs from those manifests, from its image. It must put every Go-made
//! member into lame duck through `pods/exec` (they have no preStop hook) and replace them
//! one at a time with the same image and version, losing no request; then step 4 (re-store
//! every object as v1beta1, then drop v1alpha2 from the CRDs' stored versions) must roll
//! nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::EchoLoad;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use nats_operator::install_manifests::{NAME, NAMESPACE};
use nats_operator::render::POD_SPEC_HASH_ANNOTATION;
use nats_operator_e2e::natscluster::{PodTracker, poll, wait_ready};
use nats_operator_e2e::node::{self, RealNode};
use nats_operator_e2e::{LocalOptions, TestCluster, monitor};
use serde_json::{Value, json};

/// The namespace of the Go operator's default install.
const NS: &str = "default";
/// The NatsCluster, as in the Go operator's examples.
const CLUSTER: &str = "nats";
/// From the README's apply to every member replaced (operator start, three replacements).
const TAKEOVER: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_operator_clusters_are_taken_over_as_the_readme_says() -> Result<()> {
    if TestCluster::external_requested() {
        eprintln!(
            "SKIPPED: the migration runs the operator's pods as local processes on a local \
             control plane; not against E2E_KUBECONFIG/KUBECONFIG"
        );
        return Ok(());
    }
    if let Some(why) = node::unavailable_reason() {
        bail!("the migration scenario needs the real node: {why}");
    }
    let cluster = TestCluster::start_local_with(&LocalOptions::workloads()).await?;
    let client = cluster.client()?;
    let node = RealNode::start(&cluster, &[NAMESPACE, NS]).await?;
    let r = migrate(&cluster, &client).await;
    if let Err(e) = r {
        let pods = Api::<Pod>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .map(|p| format!("{} {:?}", p.name_any(), p.metadata.annotations))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut operator = String::new();
        let lp = ListParams::default().labels(&format!("app.kubernetes.io/name={NAME}"));
        if let Ok(l) = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
            .list(&lp)
            .await
        {
            for p in l.items {
                let params = kube::api::LogParams {
                    container: Some(NAME.into()),
                    ..Default::default()
                };
                let api = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
                operator.push_str(&api.logs(&p.name_any(), &params).await.unwrap_or_default());
            }
        }
        bail!(
            "{e:#}\npods: {pods:#?}\nevents: {:#?}\noperator logs (tail): {}\nkubelet (tail):\n{}",
            events(&client).await,
            tail(&operator, 4000),
            node.log_tail("kubelet", 30)
        );
    }
    Ok(())
}

async fn migrate(cluster: &TestCluster, client: &Client) -> Result<()> {
    // The newest release: the node has an image of every release the tests use.
    let version = nats_operator::api::defaults::DEFAULT_VERSION.to_string();
    let kubectl = |args: &[&str], stdin: Option<&str>| cluster.kubectl_run_stdin(args, stdin);

    // The Go operator's world.
    kubectl(
        &["create", "--field-manager", "nats-operator", "-f", "-"],
        Some(&go_crds()),
    )?
    .ensure_success()?;
    kubectl(
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout",
            "60s",
            "crd/natsclusters.nats.io",
            "crd/natsserviceroles.nats.io",
        ],
        None,
    )?
    .ensure_success()?;
    let stored = kubectl(
        &[
            "create",
            "--field-manager",
            "nats-operator",
            "-n",
            NS,
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&format!(
            "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: {CLUSTER}\n\
             spec:\n  size: 3\n  version: \"{version}\"\n"
        )),
    )?
    .ensure_success()?
    .json()?;
    let uid = stored["metadata"]["uid"]
        .as_str()
        .context("stored NatsCluster without uid")?
        .to_string();
    let children =
        json!({"apiVersion": "v1", "kind": "List", "items": go_children(&uid, &version)});
    kubectl(
        &[
            "create",
            "--field-manager",
            "nats-operator",
            "-n",
            NS,
            "-f",
            "-",
        ],
        Some(&children.to_string()),
    )?
    .ensure_success()?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let members: Vec<String> = (1..=3).map(|i| format!("{CLUSTER}-{i}")).collect();
    let go_uids = wait_members(&pods, &members, Duration::from_secs(120), |_| true).await?;
    full_mesh(&pods, &members, &version).await?;

    // Clients as users have them, through the client Service (kube-proxy's ClusterIP).
    let service = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), NS)
        .get(CLUSTER)
        .await?;
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the client Service has no ClusterIP")?;
    let load = EchoLoad::start(&format!("nats://{cluster_ip}:4222")).await?;
    let tracker = PodTracker::start(client, NS, CLUSTER).await?;
    tracker.watch_members(&members);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Step 1, as the README writes it.
    let overlay =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/overlays/cluster-scoped");
    let overlay = overlay.to_str().context("manifests path is not UTF-8")?;
    let t0 = Instant::now();
    kubectl(
        &["apply", "--server-side", "--force-conflicts", "-k", overlay],
        None,
    )?
    .ensure_success()?;

    // Step 2: every member replaced, one at a time, with the same image.
    let image = format!("nats:{version}");
    let ours = wait_members(&pods, &members, TAKEOVER, |p| {
        let hashed = p.annotations().contains_key(POD_SPEC_HASH_ANNOTATION);
        let same_image = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            == Some(image.as_str());
        hashed && same_image
    })
    .await?;
    full_mesh(&pods, &members, &version).await?;
    let takeover = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.finish().await?;
    let order = tracker.deletion_order();
    let (unavailable, worst) = tracker.max_unavailable();
    for (m, old) in &go_uids {
        ensure!(ours.get(m) != Some(old), "{m} was not replaced");
    }
    ensure!(
        order.len() == 3 && members.iter().all(|m| order.contains(m)),
        "each member replaced once, got {order:?}"
    );
    ensure!(
        unavailable <= 1,
        "{unavailable} members were down at once: {worst}"
    );
    ensure!(
        report.errors.is_empty(),
        "requests lost during the takeover: {:?}",
        report.errors
    );
    ensure!(report.ok > 100, "only {} requests went through", report.ok);
    let stored = cluster.natscluster_json("v1beta1", NS, CLUSTER)?;
    ensure!(
        stored["spec"]["version"] == version.as_str(),
        "version changed: {}",
        stored["spec"]["version"]
    );
    // Lame duck for pods without a preStop hook goes through pods/exec, which the real
    // kubelet serves: each member gets its own LameDuck Event (related to the pod, so the
    // recorder does not fold them into one) and none is refused.
    let said = events(client).await;
    let count = |reason: &str| -> i32 {
        said.iter()
            .filter(|(r, _, _)| r == reason)
            .map(|(_, _, n)| *n)
            .sum()
    };
    let (signalled, refused) = (count("LameDuck"), count("LameDuckUnavailable"));
    for (reason, message, n) in said.iter().filter(|(r, _, _)| r.starts_with("LameDuck")) {
        println!("Event {reason} (x{n}): {message}");
    }
    let named = members
        .iter()
        .filter(|m| {
            said.iter().any(|(reason, message, _)| {
                reason.starts_with("LameDuck") && message.contains(&format!("{m} "))
            })
        })
        .count();
    ensure!(
        signalled == 3 && refused == 0 && named == 3,
        "the operator did not put each Go-made member into lame duck: {said:#?}"
    );

    // Step 4: re-store every object as v1beta1; nothing rolls. (Once the status is settled:
    // `kubectl replace` of an object whose status just changed is a conflict.)
    wait_ready(client, NS, CLUSTER, 3, Duration::from_secs(60)).await?;
    let listed = kubectl(
        &["get", "natsclusters,natsserviceroles", "-A", "-o", "json"],
        None,
    )?;
    listed.ensure_success()?;
    kubectl(&["replace", "-f", "-"], Some(&listed.stdout))?.ensure_success()?;
    let restored = cluster.natscluster_json("v1beta1", NS, CLUSTER)?;
    ensure!(
        restored["spec"]["image"] == "nats",
        "not re-stored with defaults: {restored:#}"
    );
    for crd in ["natsclusters.nats.io", "natsserviceroles.nats.io"] {
        kubectl(
            &[
                "patch",
                "crd",
                crd,
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"storedVersions":["v1beta1"]}}"#,
            ],
            None,
        )?
        .ensure_success()?;
        let stored = kubectl(
            &["get", "crd", crd, "-o", "jsonpath={.status.storedVersions}"],
            None,
        )?;
        stored.ensure_success()?;
        ensure!(
            stored.stdout.trim() == r#"["v1beta1"]"#,
            "{crd} storedVersions {}",
            stored.stdout
        );
    }
    // Manifests in git keep working: the object still reads as v1alpha2.
    cluster.natscluster_json("v1alpha2", NS, CLUSTER)?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let after: BTreeMap<String, String> = pods
        .list(&ListParams::default().labels(&format!("nats_cluster={CLUSTER}")))
        .await?
        .items
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect();
    ensure!(
        after == ours,
        "re-storing as v1beta1 rolled members: before {ours:?}, after {after:?}"
    );
    println!(
        "NUMBERS migration: Go-made cluster of 3 ({version}) taken over in {:.1} s from the README's apply; {report}; at most {unavailable} member down; lame duck through exec for {signalled} of 3; re-store as v1beta1 rolled 0",
        takeover.as_secs_f64(),
    );
    Ok(())
}

/// Waits until `members` are exactly the cluster's pods, each Running, Ready, not
/// terminating and accepted by `want`; returns their uids.
async fn wait_members(
    pods: &Api<Pod>,
    members: &[String],
    timeout: Duration,
    want: impl Fn(&Pod) -> bool,
) -> Result<BTreeMap<String, String>> {
    let want = &want;
    poll(
        timeout,
        Duration::from_millis(500),
        "members",
        || async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("nats_cluster={CLUSTER}")))
                .await?;
            let mut out = BTreeMap::new();
            for p in &list.items {
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if !ready || p.metadata.deletion_timestamp.is_some() || !want(p) {
                    return Ok(Err(format!("{} not there yet", p.name_any())));
                }
                out.insert(p.name_any(), p.uid().unwrap_or_default());
            }
            let names: Vec<&String> = out.keys().collect();
            Ok(if names == members.iter().collect::<Vec<_>>() {
                Ok(out)
            } else {
                Err(format!("pods {names:?}"))
            })
        },
    )
    .await
}

/// Every member reports `version` and routes to the two others.
async fn full_mesh(pods: &Api<Pod>, members: &[String], version: &str) -> Result<()> {
    poll(
        Duration::from_secs(120),
        Duration::from_millis(500),
        "full mesh",
        || async move {
            for m in members {
                let ip = pods
                    .get_opt(m)
                    .await?
                    .and_then(|p| p.status?.pod_ip)
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
                let Some(ip) = ip else {
                    return Ok(Err(format!("{m}: no pod IP")));
                };
                let addr = std::net::SocketAddr::from((ip, 8222));
                let varz = match monitor::get_json(addr, "/varz").await {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(format!("{m}: {e:#}"))),
                };
                if varz["version"] != version {
                    return Ok(Err(format!("{m}: version {}", varz["version"])));
                }
                let routez = match monitor::get_json(addr, "/routez").await {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(format!("{m}: {e:#}"))),
                };
                let remotes: std::collections::BTreeSet<&str> = routez["routes"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|x| x["remote_id"].as_str()).collect())
                    .unwrap_or_default();
                if remotes.len() != members.len() - 1 {
                    return Ok(Err(format!("{m}: routes to {remotes:?}")));
                }
            }
            Ok(Ok(()))
        },
    )
    .await
}

/// The Go operator's CRDs as it registered them: v1alpha2 only, no schema.
fn go_crds() -> String {
    let crd = |plural: &str, kind: &str, short: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  \
             name: {plural}.nats.io\nspec:\n  group: nats.io\n  scope: Namespaced\n  names:\n    \
             plural: {plural}\n    kind: {kind}\n{short}  versions:\n  - name: v1alpha2\n    \
             served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        \
             type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
        )
    };
    format!(
        "{}---\n{}",
        crd("natsclusters", "NatsCluster", "    shortNames: [nats]\n"),
        crd("natsserviceroles", "NatsServiceRole", "")
    )
}

/// The config Secret, Services and pods the Go operator made for a minimal cluster of 3.
fn go_children(uid: &str, version: &str) -> Vec<Value> {
    let owner = json!([{
        "apiVersion": "nats.io/v1alpha2",
        "kind": "NatsCluster",
        "name": CLUSTER,
        "uid": uid,
        "controller": true,
    }]);
    let labels = json!({"app": "nats", "nats_cluster": CLUSTER});
    let routes: Vec<String> = (1..=3)
        .map(|i| format!("nats://{CLUSTER}-{i}.{CLUSTER}-mgmt.{NS}.svc:6222"))
        .collect();
    let conf = serde_json::to_string_pretty(&json!({
        "port": 4222,
        "http_port": 8222,
        "cluster": {"port": 6222, "routes": routes},
        "logtime": true,
    }))
    .unwrap_or_default();
    let mut out = vec![
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": CLUSTER, "labels": labels, "ownerReferences": owner},
            "stringData": {"nats.conf": conf},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": CLUSTER, "labels": labels, "ownerReferences": owner},
            "spec": {
                "selector": labels,
                "ports": [{"name": "client", "port": 4222, "targetPort": 4222}],
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("{CLUSTER}-mgmt"), "labels": labels, "ownerReferences": owner},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": true,
                "selector": {"app": "nats", "nats_cluster": CLUSTER, "nats_version": version},
                "ports": [
                    {"name": "cluster", "port": 6222, "targetPort": 6222},
                    {"name": "monitoring", "port": 8222, "targetPort": 8222},
                    {"name": "client", "port": 4222, "targetPort": 4222},
                ],
            },
        }),
    ];
    for i in 1..=3 {
        let name = format!("{CLUSTER}-{i}");
        out.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name,
                "labels": {"app": "nats", "nats_cluster": CLUSTER, "nats_version": version},
                "annotations": {"nats.version": version},
                "ownerReferences": owner,
            },
            "spec": {
                "hostname": name,
                "subdomain": format!("{CLUSTER}-mgmt"),
                "restartPolicy": "Always",
                "containers": [{
                    "name": "nats",
                    "image": format!("nats:{version}"),
                    "command": [
                        "/nats-server", "-c", "/etc/nats-config/nats.conf",
                        "-P", "/var/run/nats/nats.pid",
                        "--cluster_advertise", format!("{name}.{CLUSTER}-mgmt.{NS}.svc"),
                        "--connect_retries", "10",
                    ],
                    "ports": [
                        {"name": "cluster", "containerPort": 6222},
                        {"name": "monitoring", "containerPort": 8222},
                        {"name": "client", "containerPort": 4222},
                    ],
                    "livenessProbe": {
                        "httpGet": {"path": "/", "port": 8222},
                        "initialDelaySeconds": 10, "timeoutSeconds": 10,
                        "periodSeconds": 60, "failureThreshold": 3,
                    },
                    "volumeMounts": [
                        {"name": "nats-config", "mountPath": "/etc/nats-config"},
                        {"name": "pid", "mountPath": "/var/run/nats"},
                    ],
                }],
                "volumes": [
                    {"name": "nats-config", "secret": {"secretName": CLUSTER}},
                    {"name": "pid", "emptyDir": {}},
                ],
            },
        }));
    }
    out
}

/// `(reason, message, count)` of every Event in [`NS`].
async fn events(client: &Client) -> Vec<(String, String, i32)> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .map(|e| {
                    let n = e
                        .series
                        .as_ref()
                        .and_then(|s| s.count)
                        .or(e.count)
                        .unwrap_or(1);
                    (
                        e.reason.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default(),
                        n,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}
