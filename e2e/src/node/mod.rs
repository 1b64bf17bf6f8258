//! A real node next to the test control plane: the kubelet and kube-proxy of the same
//! Kubernetes release, containerd 2.x with runc, the CNI bridge plugins and CoreDNS, built by
//! `e2e/node/build.sh` and cached by input hash. Pods run from images built here
//! ([`image`]): `nats:<version>` for every nats-server release the tests use, the operator's
//! image (the static binary `docker/operator/Dockerfile` describes, non-root) and the
//! sandbox's pause. No registry is reached: an image the node does not have fails to pull,
//! as on a cluster without it.
//!
//! What the harness adds, because the test control plane has no scheduler and its apiserver
//! listens on loopback only:
//! * a one-node scheduler: pods of the namespaces the node manages are bound to it;
//! * the `kubernetes` Service's endpoint: a forwarder on the node IP to the apiserver, so
//!   in-cluster clients reach it at the Service's ClusterIP through kube-proxy.
//!
//! Everything of a run lives below its directory, on its own bridge and under its own
//! cgroup; nothing is routed off the machine (no masquerading, CoreDNS forwards nothing).
//! Dropping the node stops its processes and containers and removes its mounts, cgroups,
//! bridge and kube-proxy's rules; processes die with the test process (parent-death signal)
//! and a killed run's leftovers are swept by the next one.

pub mod config;
pub mod image;
pub mod logs;
mod teardown;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

pub use config::Layout;
use image::{FileSource, ImageFile, ImageSpec};

use crate::TestCluster;
use crate::podrun::ApiForwarder;

/// Field manager of the harness's writes for the node.
const MANAGER: &str = "e2e-node";
/// How long the node may take from its first process to `Ready`.
const NODE_READY: Duration = Duration::from_secs(90);
/// Prefix of every run's directory, node, cgroup (then `<pid>-<n>`).
const RUN_PREFIX: &str = "e2e-node-";
/// Prefix of every run's bridge (then `<pid>x<n>`; interface names have 15 bytes).
const BRIDGE_PREFIX: &str = "e2en";

/// Why this machine cannot run the real node (`None`: it can).
pub fn unavailable_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: the kubelet, containerd and runc need root".into());
    }
    for tool in ["ip", "setpriv", "umount", "go"] {
        if !on_path(tool) {
            return Some(format!("`{tool}` not found on PATH"));
        }
    }
    if !Path::new("/sys/fs/cgroup/pids").is_dir()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
    {
        return Some("no cgroup hierarchy under /sys/fs/cgroup".into());
    }
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// The built node binaries (`bin/`, `cni/`): `e2e/node/build.sh`'s cache directory, built on
/// first use (a warm cache only hashes). `NATS_OPERATOR_NODE_DIR` overrides.
pub fn node_binaries() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("NATS_OPERATOR_NODE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    static BUILT: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/build.sh");
            tracing::info!(script = %script.display(), "locating the test node (a cold build takes ~10 min)");
            let stdout = crate::natsbin::run_build_script(&script)?;
            let dir = stdout.lines().last().unwrap_or_default().trim();
            Ok(PathBuf::from(dir))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// The operator's image binary: `nats-operator` built as `docker/operator/Dockerfile` builds
/// it (release, static, `x86_64-unknown-linux-musl`). Installs the musl target and C
/// toolchain it needs when missing. `NATS_OPERATOR_IMAGE_BIN` overrides.
pub fn operator_image_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_OPERATOR_IMAGE_BIN") {
        return Ok(PathBuf::from(p));
    }
    static BUILT: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_operator_image_binary().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

const MUSL: &str = "x86_64-unknown-linux-musl";

fn build_operator_image_binary() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(MUSL))
        .unwrap_or(false);
    if !installed {
        run(Command::new("rustup").args(["target", "add", MUSL]))?;
    }
    if !on_path("x86_64-linux-musl-gcc") {
        // ring's C code is compiled for the target with musl's gcc wrapper.
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "musl-tools"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
        .context("installing musl-tools (musl-gcc) for the operator image")?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).current_dir(workspace).args([
        "build",
        "--quiet",
        "--release",
        "--locked",
        "--target",
        MUSL,
        "-p",
        "nats-operator",
        "--bin",
        "nats-operator",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let bin = target.join(MUSL).join("release/nats-operator");
    bin.is_file()
        .then_some(bin.clone())
        .ok_or_else(|| anyhow!("{} missing after cargo build", bin.display()))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The images every node has: the pause sandbox, `nats:<version>` of each nats-server
/// release (laid out as the official image: `/nats-server`, its default config, ports), and
/// the operator's image as `docker/operator/Dockerfile` describes it.
pub fn standard_images(bin: &Path, operator: &Path) -> Result<Vec<ImageSpec>> {
    let mut images = vec![ImageSpec {
        reference: config::PAUSE_IMAGE.into(),
        files: vec![ImageFile {
            path: "/pause".into(),
            mode: 0o755,
            source: FileSource::Host(bin.join("pause")),
        }],
        entrypoint: vec!["/pause".into()],
        user: "65535:65535".into(),
        ..ImageSpec::default()
    }];
    let found = crate::natsbin::nats_binaries(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .map_err(|e| anyhow!(e))?;
    for (version, path) in found.servers {
        images.push(ImageSpec {
            reference: format!("nats:{version}"),
            files: vec![
                ImageFile {
                    path: "/nats-server".into(),
                    mode: 0o755,
                    source: FileSource::Host(path),
                },
                ImageFile {
                    path: "/nats-server.conf".into(),
                    mode: 0o644,
                    source: FileSource::Bytes(NATS_IMAGE_CONF.as_bytes().to_vec()),
                },
            ],
            entrypoint: vec!["/nats-server".into()],
            cmd: vec!["--config".into(), "nats-server.conf".into()],
            exposed_ports: vec!["4222/tcp".into(), "6222/tcp".into(), "8222/tcp".into()],
            ..ImageSpec::default()
        });
    }
    images.push(ImageSpec {
        reference: format!(
            "{}:{}",
            nats_operator::api::defaults::OPERATOR_IMAGE,
            nats_operator::api::defaults::OPERATOR_IMAGE_TAG
        ),
        files: vec![ImageFile {
            path: "/nats-operator".into(),
            mode: 0o755,
            source: FileSource::Host(operator.to_path_buf()),
        }],
        entrypoint: vec!["/nats-operator".into()],
        cmd: vec!["run".into()],
        env: nats_operator::install_manifests::ALLOCATOR_ENV
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        user: "65532:65532".into(),
        ..ImageSpec::default()
    });
    Ok(images)
}

/// The official image's default configuration (client, cluster and monitoring ports).
const NATS_IMAGE_CONF: &str = "port: 4222\nhttp_port: 8222\ncluster {\n  port: 6222\n}\n";

/// A running real node (see the module documentation).
pub struct RealNode {
    layout: Layout,
    namespaces: Arc<Mutex<HashSet<String>>>,
    images: Vec<String>,
    running: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl std::fmt::Debug for RealNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealNode")
            .field("node", &self.layout.node)
            .field("root", &self.layout.root)
            .finish_non_exhaustive()
    }
}

impl RealNode {
    /// The node of `cluster` that scenarios running at the same time share, managing
    /// `namespace` too; started when none runs, stopped when its last user drops it.
    pub async fn shared(cluster: &TestCluster, namespace: &str) -> Result<Arc<RealNode>> {
        static SHARED: tokio::sync::Mutex<std::sync::Weak<RealNode>> =
            tokio::sync::Mutex::const_new(std::sync::Weak::new());
        let mut slot = SHARED.lock().await;
        if let Some(node) = slot.upgrade() {
            node.manage(namespace);
            return Ok(node);
        }
        let node = Arc::new(RealNode::start(cluster, &[namespace]).await?);
        *slot = Arc::downgrade(&node);
        Ok(node)
    }

    /// Starts a node of the local control plane `cluster` that runs the pods of
    /// `namespaces` (more with [`Self::manage`]); returns once the Node is `Ready`.
    pub async fn start(cluster: &TestCluster, namespaces: &[&str]) -> Result<RealNode> {
        if let Some(why) = unavailable_reason() {
            bail!("the real node cannot run here: {why}");
        }
        let ready = cluster
            .ready_info()
            .context("the real node joins a local control plane (kube-testplane)")?
            .clone();
        let client_ca = ready
            .client_ca_file
            .clone()
            .context("kube-testplane did not report its client CA (rebuild e2e/controlplane)")?;
        let started = Instant::now();
        let prepared = tokio::task::spawn_blocking(move || prepare(&ready.kubeconfig, &client_ca))
            .await
            .context("preparing the node")??;
        let Prepared { layout, images } = prepared;
        let namespaces = Arc::new(Mutex::new(
            namespaces
                .iter()
                .map(|s| s.to_string())
                .collect::<HashSet<_>>(),
        ));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (up_tx, up_rx) = tokio::sync::oneshot::channel();
        let thread = {
            let (layout, namespaces, config) =
                (layout.clone(), namespaces.clone(), cluster.config().clone());
            std::thread::Builder::new()
                .name("e2e-node".into())
                .spawn(move || supervise(layout, config, namespaces, stop_rx, up_tx))
                .context("spawning the node thread")?
        };
        let node = RealNode {
            layout,
            namespaces,
            images,
            running: Mutex::new(Some((stop_tx, thread))),
        };
        up_rx
            .await
            .map_err(|_| anyhow!("the node thread ended while starting"))?
            .with_context(|| {
                format!(
                    "starting node {} (logs {})",
                    node.layout.node,
                    node.log_dir().display()
                )
            })?;
        wait_node_ready(&cluster.client()?, &node.layout.node)
            .await
            .with_context(|| {
                format!(
                    "node {} (logs {})",
                    node.layout.node,
                    node.log_dir().display()
                )
            })?;
        eprintln!(
            "e2e-node: {} Ready in {:.1} s",
            node.layout.node,
            started.elapsed().as_secs_f64()
        );
        Ok(node)
    }

    /// Runs the pods of `namespace` too.
    pub fn manage(&self, namespace: &str) {
        if let Ok(mut n) = self.namespaces.lock() {
            n.insert(namespace.to_string());
        }
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.layout.node
    }

    /// The node IP (also the pods' gateway and DNS server).
    pub fn ip(&self) -> std::net::Ipv4Addr {
        self.layout.gateway()
    }

    /// The image references the node has (normalized).
    pub fn images(&self) -> &[String] {
        &self.images
    }

    /// Where the node's `hostPath` volumes live (see [`crate::storage::VolumeStandIn`]).
    pub fn volumes_dir(&self) -> PathBuf {
        self.layout.path("volumes")
    }

    /// The host pids of container `container_id` (`containerd://<id>` or `<id>`), from its
    /// cgroup.
    pub fn container_pids(&self, container_id: &str) -> Vec<u32> {
        let id = container_id.rsplit("://").next().unwrap_or(container_id);
        teardown::named_cgroup_pids(&self.layout.cgroup_root, id)
            .into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    }

    /// Where the node's components log (`containerd.log`, `kubelet.log`, ...).
    pub fn log_dir(&self) -> PathBuf {
        self.layout.path("log")
    }

    /// The last `lines` lines of a component's log.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_dir().join(format!("{component}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the node: every container, process, mount, cgroup and rule of it is gone after.
    pub fn stop(&self) {
        let running = match self.running.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some((tx, thread)) = running {
            let _ = tx.send(true);
            let _ = thread.join();
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Prepared {
    layout: Layout,
    images: Vec<String>,
}

/// Blocking preparation: binaries, directories, configuration, bridge, cgroups, image
/// archives.
fn prepare(kubeconfig: &Path, client_ca: &Path) -> Result<Prepared> {
    let t = Instant::now();
    // A node of this process still going away must be gone first: its kube-proxy cleanup
    // would remove the rules of the next.
    drop(teardown::LIFECYCLE.lock());
    teardown::sweep_leftovers();
    let built = node_binaries()?;
    let operator = operator_image_binary()?;
    eprintln!(
        "e2e-node: binaries ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let id = format!("{RUN_PREFIX}{pid}-{n}");
    let octet = teardown::free_octet()?;
    let layout = Layout {
        node: id.clone(),
        root: std::env::temp_dir().join(&id),
        bin: built.join("bin"),
        cni_bin: built.join("cni"),
        bridge: format!("{BRIDGE_PREFIX}{pid}x{n}"),
        octet,
        cgroup_root: id,
        kubeconfig: PathBuf::new(),
        client_ca: client_ca.to_path_buf(),
        // kube-testplane's --service-cluster-ip-range default.
        service_cidr: "10.0.0.0/24".into(),
    };
    let layout = Layout {
        kubeconfig: layout.path("kubeconfig"),
        ..layout
    };
    if layout.bridge.len() > 15 {
        bail!("bridge name {} too long", layout.bridge);
    }
    for dir in [
        "containerd",
        "cni/conf",
        "cni/ipam",
        "logs",
        "log",
        "kubelet",
        "images",
    ] {
        std::fs::create_dir_all(layout.path(dir))
            .with_context(|| format!("creating {}", layout.path(dir).display()))?;
    }
    let write = |rel: &str, text: String| {
        std::fs::write(layout.path(rel), text)
            .with_context(|| format!("writing {}", layout.path(rel).display()))
    };
    std::fs::copy(kubeconfig, &layout.kubeconfig).context("copying the admin kubeconfig")?;
    write("containerd/config.toml", config::containerd_toml(&layout))?;
    write("cni/conf/10-bridge.conflist", config::cni_conflist(&layout))?;
    write("kubelet/config.yaml", config::kubelet_yaml(&layout))?;
    write("kube-proxy.yaml", config::kube_proxy_yaml(&layout))?;
    write("Corefile", config::corefile(&layout))?;
    // Pods resolve through cluster DNS only; upstream names are not served.
    write("resolv.conf", format!("nameserver {}\n", layout.gateway()))?;
    teardown::create_bridge(&layout)?;
    teardown::create_cgroups(&layout)?;
    let mut images = Vec::new();
    for (i, spec) in standard_images(&layout.bin, &operator)?.iter().enumerate() {
        let out = layout.path(&format!("images/{i}.tar"));
        images.push(image::write_archive(spec, &out)?);
    }
    eprintln!(
        "e2e-node: {} images written in {:.1} s",
        images.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(Prepared { layout, images })
}

/// Starts a component of the node with the parent-death signal set (it dies with this
/// thread), logging to `<log dir>/<name>.log`.
fn spawn(layout: &Layout, name: &str, program: &Path, args: &[String]) -> Result<Child> {
    let log = std::fs::File::create(layout.path(&format!("log/{name}.log")))
        .with_context(|| format!("creating the log of {name}"))?;
    let path = format!(
        "{}:{}",
        layout.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {name}"))
}

/// Waits until `check` holds or `within` passes.
fn wait_for(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if check() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not happen within {within:?}")
}

/// The node thread: starts the components, reports, serves the pods (scheduler, apiserver
/// endpoint) until stopped, then tears everything down.
fn supervise(
    layout: Layout,
    config: kube::Config,
    namespaces: Arc<Mutex<HashSet<String>>>,
    stop: watch::Receiver<bool>,
    up: tokio::sync::oneshot::Sender<Result<()>>,
) {
    let mut children: Vec<(String, Child)> = Vec::new();
    let started = start_components(&layout, &mut children);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("e2e-node-worker")
        .enable_all()
        .build();
    match (started, rt) {
        (Ok(()), Ok(rt)) => {
            rt.block_on(serve(&layout, config, namespaces, stop, up));
        }
        (Err(e), _) => {
            let _ = up.send(Err(e));
        }
        (_, Err(e)) => {
            let _ = up.send(Err(anyhow!("building the node runtime: {e}")));
        }
    }
    teardown::stop(&layout, &mut children);
}

fn start_components(layout: &Layout, children: &mut Vec<(String, Child)>) -> Result<()> {
    let bin = &layout.bin;
    let s = |p: &Path| p.display().to_string();
    let containerd = spawn(
        layout,
        "containerd",
        &bin.join("containerd"),
        &["--config".into(), s(&layout.path("containerd/config.toml"))],
    )?;
    children.push(("containerd".into(), containerd));
    let socket = layout.containerd_socket();
    wait_for(Duration::from_secs(30), "containerd's socket", || {
        socket.exists()
    })?;
    let t = Instant::now();
    for entry in std::fs::read_dir(layout.path("images"))? {
        let archive = entry?.path();
        run(Command::new(bin.join("ctr"))
            .args(["--address", &s(&socket), "--namespace", "k8s.io"])
            .args(["images", "import"])
            .arg(&archive))
        .with_context(|| format!("importing {}", archive.display()))?;
    }
    eprintln!(
        "e2e-node: images imported in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let kubelet = spawn(
        layout,
        "kubelet",
        &bin.join("kubelet"),
        &[
            "--config".into(),
            s(&layout.path("kubelet/config.yaml")),
            "--kubeconfig".into(),
            s(&layout.kubeconfig),
            "--root-dir".into(),
            s(&layout.path("kubelet")),
            "--cert-dir".into(),
            s(&layout.path("kubelet/pki")),
            "--hostname-override".into(),
            layout.node.clone(),
            "--node-ip".into(),
            layout.gateway().to_string(),
            "--v=1".into(),
        ],
    )?;
    children.push(("kubelet".into(), kubelet));
    let proxy = spawn(
        layout,
        "kube-proxy",
        &bin.join("kube-proxy"),
        &["--config".into(), s(&layout.path("kube-proxy.yaml"))],
    )?;
    children.push(("kube-proxy".into(), proxy));
    let dns = spawn(
        layout,
        "coredns",
        &bin.join("coredns"),
        &["-conf".into(), s(&layout.path("Corefile"))],
    )?;
    children.push(("coredns".into(), dns));
    // A component that exits at once (bad flag, port taken) fails the start.
    std::thread::sleep(Duration::from_millis(500));
    for (name, child) in children.iter_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{name} exited at start ({status})");
        }
    }
    Ok(())
}

/// The harness's part while the node runs: the `kubernetes` Service endpoint and its
/// forwarder, and binding the managed namespaces' pods to the node.
async fn serve(
    layout: &Layout,
    config: kube::Config,
    namespaces: Arc<Mutex<HashSet<String>>>,
    mut stop: watch::Receiver<bool>,
    up: tokio::sync::oneshot::Sender<Result<()>>,
) {
    let setup = async {
        let client = Client::try_from(config.clone()).context("client for the node")?;
        let forwarder = ApiForwarder::bind(&config, layout.gateway())?;
        publish_apiserver_endpoint(&client, layout, forwarder.port).await?;
        let forwarding = tokio::spawn(forwarder.run()?);
        Ok::<_, anyhow::Error>((client, forwarding))
    };
    let (client, forwarding) = match setup.await {
        Ok(v) => v,
        Err(e) => {
            let _ = up.send(Err(e));
            return;
        }
    };
    let _ = up.send(Ok(()));
    let node = layout.node.clone();
    let binder = async {
        let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(pods);
        while let Some(Ok(pod)) = pods.next().await {
            let ns = pod.namespace().unwrap_or_default();
            let unbound = pod.spec.as_ref().is_some_and(|s| s.node_name.is_none());
            let managed = namespaces.lock().is_ok_and(|n| n.contains(&ns));
            if unbound && managed && pod.metadata.deletion_timestamp.is_none() {
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let uid = pod.uid().unwrap_or_default();
                if let Err(e) =
                    crate::kubelet::bind_pod(&api, &ns, &pod.name_any(), &uid, &node).await
                {
                    tracing::warn!(pod = %pod.name_any(), "binding to {node}: {e}");
                }
            }
        }
    };
    tokio::select! {
        _ = binder => {}
        _ = stop.changed() => {}
    }
    forwarding.abort();
}

/// The `kubernetes` Service's EndpointSlice: the forwarder on the node IP. The test
/// apiserver runs without an endpoint reconciler (it listens on loopback only).
async fn publish_apiserver_endpoint(client: &Client, layout: &Layout, port: u16) -> Result<()> {
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("kubernetes".into()),
            namespace: Some("default".into()),
            labels: Some(
                [
                    (
                        "kubernetes.io/service-name".to_string(),
                        "kubernetes".to_string(),
                    ),
                    (
                        "endpointslice.kubernetes.io/managed-by".to_string(),
                        MANAGER.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![Endpoint {
            addresses: vec![layout.gateway().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(vec![EndpointPort {
            name: Some("https".into()),
            port: Some(i32::from(port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    };
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .patch(
            "kubernetes",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&slice),
        )
        .await
        .context("publishing the kubernetes Service endpoint")?;
    Ok(())
}

async fn wait_node_ready(client: &Client, name: &str) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let until = Instant::now() + NODE_READY;
    loop {
        let ready = api.get_opt(name).await?.is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("not Ready within {NODE_READY:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
