//! The world of a real-NATS scenario: a namespace, a node running its pods from
//! `nats:<version>` images (the real node: kubelet, containerd, runc, kube-proxy, CoreDNS),
//! and (usually) an in-process operator; plus what the scenarios ask of a cluster
//! (readiness, full mesh, lame duck). [`setup_with`] can still run a scenario on the
//! process kubelet (`e2e/src/podrun`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use nats_operator::api::v1beta1::NatsCluster;

use crate::monitor;
use crate::natscluster::{poll, wait_for_default_service_account, wait_ready};
use crate::node::RealNode;
use crate::node::logs::LogCollector;
use crate::podrun::{self, ProcessKubelet, ServiceProxy};
use crate::{InProcessOperator, NatsOperator, OperatorOptions, TestCluster, TestNamespace};

/// From apply to Ready on 2 busy cores (start-up probes every 5 s, lame ducks).
pub const READY: Duration = Duration::from_secs(120);

/// What runs a scenario's pods.
pub enum Runner {
    /// The real node (shared by the scenarios running at the same time), and the logs of
    /// the namespace's containers, kept after their pods are gone.
    Node(Arc<RealNode>, LogCollector),
    /// The process kubelet.
    Process(ProcessKubelet),
}

/// How a scenario's client reaches a Service: its ClusterIP through kube-proxy on the real
/// node, or a stand-in proxy in front of its endpoints on the process kubelet.
pub struct ServiceAccess {
    addr: SocketAddr,
    _proxy: Option<ServiceProxy>,
}

impl ServiceAccess {
    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One scenario's world; fields drop in order (operator, then pods, then namespace).
pub struct Env {
    /// The operator, unless the scenario runs without one.
    pub operator: Option<InProcessOperator>,
    /// Runs the namespace's pods.
    pub runner: Runner,
    /// The control plane.
    pub cluster: &'static TestCluster,
    /// A client of it.
    pub client: Client,
    /// The scenario's namespace (deleted on drop).
    pub ns: TestNamespace,
}

impl Env {
    /// The namespace's name.
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// `kubectl apply` of `manifest` in the namespace.
    pub fn apply(&self, manifest: &str) -> Result<()> {
        self.cluster
            .kubectl_run_stdin(&["apply", "-n", self.ns(), "-f", "-"], Some(manifest))?
            .assert_success();
        Ok(())
    }

    /// Merge-patches the spec of NatsCluster `name`.
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        crate::natscluster::patch_spec(&self.client, self.ns(), name, spec).await
    }

    /// The nats-server versions pods can run (images on the node), newest first.
    pub fn nats_versions(&self) -> Vec<String> {
        match &self.runner {
            Runner::Process(k) => k.nats_versions(),
            Runner::Node(..) => {
                let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
                let mut v: Vec<String> = crate::natsbin::nats_binaries(&repo)
                    .map(|b| b.servers.into_iter().map(|(v, _)| v).collect())
                    .unwrap_or_default();
                v.reverse();
                v
            }
        }
    }

    /// The IP of pod `pod` of the namespace, from its status.
    pub async fn pod_ip(&self, pod: &str) -> Result<IpAddr> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        pods.get_opt(pod)
            .await?
            .and_then(|p| p.status?.pod_ip)
            .and_then(|ip| ip.parse().ok())
            .with_context(|| format!("{pod} has no pod IP"))
    }

    /// How a client outside the pod network reaches Service `name` on `port`.
    pub async fn service(&self, name: &str, port: u16) -> Result<ServiceAccess> {
        match &self.runner {
            Runner::Process(k) => {
                let proxy = ServiceProxy::start(k, self.ns(), name, port).await?;
                Ok(ServiceAccess {
                    addr: proxy.addr(),
                    _proxy: Some(proxy),
                })
            }
            Runner::Node(..) => {
                let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(
                    self.client.clone(),
                    self.ns(),
                )
                .get(name)
                .await?;
                let ip: IpAddr = svc
                    .spec
                    .and_then(|s| s.cluster_ip)
                    .and_then(|ip| ip.parse().ok())
                    .with_context(|| format!("Service {name} has no ClusterIP"))?;
                let addr = SocketAddr::from((ip, port));
                // kube-proxy programs a Service's rules on its own schedule after the
                // endpoints turn ready; until then the ClusterIP refuses connections (seen
                // once right after a cluster turned Ready). Wait for it as a user would.
                crate::natscluster::poll(
                    Duration::from_secs(30),
                    Duration::from_millis(200),
                    &format!("Service {name} accepting connections on {addr}"),
                    || async move {
                        Ok(match tokio::net::TcpStream::connect(addr).await {
                            Ok(_) => Ok(()),
                            Err(e) => Err(e.to_string()),
                        })
                    },
                )
                .await?;
                Ok(ServiceAccess { addr, _proxy: None })
            }
        }
    }

    /// What container `container` of pods named `pod` printed, every incarnation.
    pub fn logs(&self, pod: &str, container: &str) -> String {
        match &self.runner {
            Runner::Process(k) => k.logs(self.ns(), pod, container),
            Runner::Node(_, logs) => logs.logs(pod, container),
        }
    }

    /// Where claims' `hostPath` volumes go on the real node (`None`: the process kubelet
    /// keeps claims itself).
    pub fn volumes_dir(&self) -> Option<std::path::PathBuf> {
        match &self.runner {
            Runner::Node(node, _) => Some(node.volumes_dir()),
            Runner::Process(_) => None,
        }
    }

    /// The host pids of the processes of container `container` of pod `pod`.
    pub async fn container_pids(&self, pod: &str, container: &str) -> Result<Vec<u32>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        let id = pods
            .get(pod)
            .await?
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c.into_iter().find(|c| c.name == container))
            .and_then(|c| c.container_id)
            .with_context(|| format!("{pod}/{container} has no container id"))?;
        Ok(match &self.runner {
            Runner::Node(node, _) => node.container_pids(&id),
            // The process kubelet's container id is its process id.
            Runner::Process(_) => id
                .strip_prefix("e2e://")
                .and_then(|n| n.parse().ok())
                .into_iter()
                .collect(),
        })
    }

    /// Container restarts in the namespace (the pods' restart counts).
    pub async fn restarts(&self) -> Result<i32> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        Ok(pods
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .map(|c| c.restart_count)
            .sum())
    }

    /// The newest and the oldest nats-server version pods can run, for upgrades.
    pub fn upgrade_versions(&self) -> Result<(String, String)> {
        let versions = self.nats_versions();
        match (versions.first(), versions.last()) {
            (Some(new), Some(old)) if versions.len() >= 2 => Ok((new.clone(), old.clone())),
            _ => bail!(
                "a real upgrade needs two nats-server versions, found {versions:?} (e2e/nats/versions)"
            ),
        }
    }

    /// Every nats-server minor from 2.10 on, oldest first: the path a JetStream cluster
    /// is upgraded along, one minor at a time (2.10 → 2.11 → 2.12 → 2.14 → 2.15).
    pub fn jetstream_upgrade_path(&self) -> Result<Vec<String>> {
        let mut path: Vec<String> = self
            .nats_versions()
            .into_iter()
            .filter(|v| crate::natsbin::version_parts(v) >= vec![2, 10])
            .collect();
        path.reverse();
        if path.len() < 2 {
            bail!("an upgrade path needs two nats-server minors from 2.10 on, found {path:?}");
        }
        Ok(path)
    }

    /// Waits until NatsCluster `name` is Ready with `size` members.
    pub async fn wait_ready(&self, name: &str, size: i32) -> Result<NatsCluster> {
        wait_ready(&self.client, self.ns(), name, size, READY).await
    }

    /// Every server's log and the operator's requests, for failure messages.
    pub async fn diagnostics(&self, cluster: &str, size: u32) -> String {
        let mut out = match &self.runner {
            Runner::Process(k) => format!("kubelet: {:?}\n", k.stats()),
            Runner::Node(node, _) => format!(
                "node {} kubelet log tail:\n{}\n",
                node.name(),
                node.log_tail("kubelet", 20)
            ),
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        for p in pods
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let st = p.status.clone().unwrap_or_default();
            out += &format!(
                "pod {}: phase {:?} ip {:?} containers {}\n",
                p.metadata.name.clone().unwrap_or_default(),
                st.phase,
                st.pod_ip,
                serde_json::to_string(&st.container_statuses).unwrap_or_default()
            );
        }
        out += "operator requests:\n";
        if let Some(op) = &self.operator {
            for r in op.requests().all().iter().take(40) {
                out += &format!("  {r}\n");
            }
            out += &op.metrics().encode();
        }
        for m in members(cluster, size) {
            out += &format!("--- {m}\n{}", self.logs(&m, "nats"));
        }
        out
    }

    /// The monitoring address of `pod`.
    pub async fn monitoring(&self, pod: &str) -> Option<SocketAddr> {
        self.pod_ip(pod)
            .await
            .ok()
            .map(|ip| SocketAddr::from((ip, 8222)))
    }
}

/// A namespace on the real node and an operator; `None` where the scenarios can't run
/// (no control plane, or an external cluster).
pub async fn setup(prefix: &str) -> Result<Option<Env>> {
    setup_with(prefix, true, false).await
}

/// [`setup`], with or without the operator, on the real node or the process kubelet.
pub async fn setup_with(
    prefix: &str,
    with_operator: bool,
    process_kubelet: bool,
) -> Result<Option<Env>> {
    let options = with_operator.then_some(OperatorOptions::namespace);
    setup_operated(prefix, options, process_kubelet).await
}

/// [`setup`] on the real node, with an operator of the options `options` gives for the
/// namespace (`None`: no operator).
pub async fn setup_operated(
    prefix: &str,
    options: Option<impl FnOnce(&str) -> OperatorOptions>,
    process_kubelet: bool,
) -> Result<Option<Env>> {
    let Some(op) = NatsOperator::shared().await? else {
        return Ok(None);
    };
    let cluster = op.cluster();
    if cluster.is_external() {
        eprintln!(
            "SKIPPED: real-NATS scenarios run pods as local processes; not against E2E_KUBECONFIG"
        );
        return Ok(None);
    }
    let why = if process_kubelet {
        podrun::unavailable_reason()
    } else {
        crate::node::unavailable_reason()
    };
    if let Some(why) = why {
        bail!("the real-NATS scenarios cannot run their pods here: {why}");
    }
    let ns = TestNamespace::create(cluster, prefix).await?;
    let client = cluster.client()?;
    wait_for_default_service_account(&client, ns.name()).await?;
    let runner = if process_kubelet {
        Runner::Process(ProcessKubelet::start(cluster, &[ns.name()])?)
    } else {
        let logs = LogCollector::start(client.clone(), ns.name());
        Runner::Node(RealNode::shared(cluster, ns.name()).await?, logs)
    };
    let operator = match options {
        Some(options) => Some(InProcessOperator::start(cluster, options(ns.name()))?),
        None => None,
    };
    Ok(Some(Env {
        operator,
        runner,
        cluster,
        client,
        ns,
    }))
}

/// Runs the real `nats` CLI (natscli, built by `e2e/nats/build.sh`) against `server` as a
/// user types it, without any saved context, and returns its stdout; a non-zero exit is an
/// error with its stderr.
pub fn nats_cli(server: &str, args: &[&str]) -> Result<String> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cli = crate::natsbin::nats_binaries(&repo)
        .map_err(anyhow::Error::msg)?
        .cli
        .context("e2e/nats/build.sh printed no nats CLI")?;
    let out = std::process::Command::new(&cli)
        .args(["--no-context", "--server", server])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {}", cli.display()))?;
    if !out.status.success() {
        bail!(
            "nats {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Member pod names `1..=n` of `cluster`.
pub fn members(cluster: &str, n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("{cluster}-{i:x}")).collect()
}

/// A v1beta1 NatsCluster manifest with `spec` (indented YAML lines).
pub fn v1beta1(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nats.io/v1beta1\nkind: NatsCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// The Go operator's `WaitUntilFullMeshWithVersion`: every member's `/varz` reports
/// `version` and its `/routez` shows routes to the `size-1` other members (distinct remote
/// server ids: 2.10+ pools several connections per peer), and no route to anything else.
pub async fn wait_full_mesh(
    env: &Env,
    cluster: &str,
    size: u32,
    version: &str,
) -> Result<Duration> {
    let t0 = Instant::now();
    let names = members(cluster, size);
    poll(
        READY,
        Duration::from_millis(250),
        &format!("{cluster}: full mesh of {size} on {version}"),
        || {
            let names = names.clone();
            async move {
                let mut ids = BTreeSet::new();
                let mut remote_sets = Vec::new();
                for m in &names {
                    let Some(addr) = env.monitoring(m).await else {
                        return Ok(Err(format!("{m}: no pod IP yet")));
                    };
                    let varz = match monitor::get_json(addr, "/varz").await {
                        Ok(v) => v,
                        Err(e) => return Ok(Err(format!("{m}: {e:#}"))),
                    };
                    if varz["version"] != version {
                        return Ok(Err(format!("{m}: version {}", varz["version"])));
                    }
                    ids.insert(varz["server_id"].as_str().unwrap_or_default().to_string());
                    let routez = match monitor::get_json(addr, "/routez").await {
                        Ok(v) => v,
                        Err(e) => return Ok(Err(format!("{m}: {e:#}"))),
                    };
                    let remotes: BTreeSet<String> = routez["routes"]
                        .as_array()
                        .map(|r| {
                            r.iter()
                                .filter_map(|x| x["remote_id"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    remote_sets.push((m.clone(), remotes));
                }
                for (m, remotes) in &remote_sets {
                    if remotes.len() != size as usize - 1 || !remotes.is_subset(&ids) {
                        return Ok(Err(format!(
                            "{m}: routes to {} servers ({remotes:?}), want {}",
                            remotes.len(),
                            size - 1
                        )));
                    }
                }
                Ok(Ok(()))
            }
        },
    )
    .await?;
    Ok(t0.elapsed())
}

/// Whether `pod` was replaced at least once, and every incarnation that shut down
/// entered lame duck mode first (a server stopped without it logs only the exit).
pub fn entered_lame_duck(env: &Env, pod: &str) -> bool {
    let logs = env.logs(pod, "nats");
    let exits = logs.matches("Server Exiting").count();
    exits > 0 && logs.matches("Entering lame duck mode").count() >= exits
}
