//! Starting, sharing, using and stopping a test control plane.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;

/// How long a local control plane may take to print READY (2 cores, cold page cache).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a graceful stop may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What `kube-testplane` reports on its `READY {json}` line.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyInfo {
    /// Admin kubeconfig (client certificate CN=admin, O=system:masters).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub apiserver: String,
    /// `http://127.0.0.1:<port>` of the embedded etcd.
    pub etcd: String,
    /// Process id of `kube-testplane`.
    pub pid: u32,
    /// Temporary directory (etcd data, certificates), removed when it exits.
    pub data_dir: PathBuf,
    /// Kubernetes version, e.g. `v1.36.3`.
    pub version: String,
    /// PEM file of the CA that signed the apiserver's serving certificate.
    pub ca_file: PathBuf,
    /// PEM file of the CA of client certificates (kubelets trust it for the apiserver).
    #[serde(default, rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
    /// kube-controller-manager controllers running in the process.
    pub controllers: Vec<String>,
    /// Startup time measured inside the process.
    pub startup_millis: u64,
}

/// What a local control plane runs beyond its defaults (see `e2e/controlplane/README.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalOptions {
    /// kube-controller-manager controllers added to the default ones.
    pub extra_controllers: Vec<String>,
    /// Extra kube-apiserver flags.
    pub apiserver_args: Vec<String>,
}

impl LocalOptions {
    /// Services get EndpointSlices (the endpointslice controller): cluster DNS and kube-proxy
    /// on a real node read them.
    pub fn services() -> LocalOptions {
        LocalOptions {
            extra_controllers: vec!["endpointslice-controller".into()],
            apiserver_args: Vec::new(),
        }
    }

    /// What a Deployment behind a webhook Service needs: the deployment and replicaset
    /// controllers make its pods, the endpointslice controller gives its Service endpoints
    /// (which the apiserver calls webhooks at).
    pub fn workloads() -> LocalOptions {
        LocalOptions {
            extra_controllers: [
                "deployment-controller",
                "replicaset-controller",
                "endpointslice-controller",
            ]
            .map(String::from)
            .to_vec(),
            apiserver_args: Vec::new(),
        }
    }
}

/// A Kubernetes cluster for tests: either a local `kube-testplane` or an external one.
pub struct TestCluster {
    config: Config,
    kubeconfig: Vec<PathBuf>,
    server_version: Info,
    kubectl: std::result::Result<PathBuf, String>,
    local: Option<LocalPlane>,
}

/// The process of a local control plane.
struct LocalPlane {
    info: ReadyInfo,
    time_to_ready: Duration,
    log_path: PathBuf,
    process: Mutex<Option<Running>>,
}

struct Running {
    child: Child,
    /// Kept open for the life of the control plane: EOF on it makes `kube-testplane` stop.
    stdin: Option<ChildStdin>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("server", &self.config.cluster_url.to_string())
            .field("version", &self.server_version.git_version)
            .field("local", &self.local.as_ref().map(|l| &l.info))
            .finish()
    }
}

static SHARED: tokio::sync::OnceCell<std::result::Result<TestCluster, String>> =
    tokio::sync::OnceCell::const_new();

impl TestCluster {
    /// The control plane shared by all tests of this test binary, started on first use.
    ///
    /// A failed start is remembered, so the other tests fail fast with the same error.
    pub async fn shared() -> Result<&'static TestCluster> {
        SHARED
            .get_or_init(|| async { Self::start().await.map_err(|e| format!("{e:#}")) })
            .await
            .as_ref()
            .map_err(|e| anyhow!("shared test cluster unavailable: {e}"))
    }

    /// Connects to `E2E_KUBECONFIG`/`KUBECONFIG` if set, otherwise starts a local control plane
    /// owned by the returned value.
    pub async fn start() -> Result<TestCluster> {
        match external_kubeconfig() {
            Some(paths) => Self::connect(paths).await,
            None => Self::start_local().await,
        }
    }

    /// Whether `E2E_KUBECONFIG`/`KUBECONFIG` names a cluster that [`TestCluster::start`]
    /// and [`TestCluster::shared`] use instead of a local control plane.
    pub fn external_requested() -> bool {
        external_kubeconfig().is_some()
    }

    /// Starts a local `kube-testplane`, even when `KUBECONFIG` is set, with
    /// [`LocalOptions::services`].
    pub async fn start_local() -> Result<TestCluster> {
        Self::start_local_with(&LocalOptions::services()).await
    }

    /// Starts a local `kube-testplane` running more than the defaults, even when
    /// `KUBECONFIG` is set.
    pub async fn start_local_with(options: &LocalOptions) -> Result<TestCluster> {
        let dir = testplane_dir().await?;
        let bin = dir.join("kube-testplane");
        if !bin.is_file() {
            bail!("{} does not exist", bin.display());
        }
        let log_dir = std::env::var_os("E2E_LOG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("nats-operator-e2e"));
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        prune_old_logs(&log_dir, Duration::from_secs(24 * 3600));
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let log_path = log_dir.join(format!(
            "kube-testplane-{}-{}.log",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

        let started = Instant::now();
        let mut command = Command::new(&bin);
        command
            .arg("--exit-on-stdin-close=true")
            .arg(format!("--ready-timeout={}s", READY_TIMEOUT.as_secs()));
        if !options.extra_controllers.is_empty() {
            command.arg(format!(
                "--extra-controllers={}",
                options.extra_controllers.join(",")
            ));
        }
        if !options.apiserver_args.is_empty() {
            command.arg("--").args(&options.apiserver_args);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut running = Running { child, stdin };

        // A plain thread reads stdout: it works whichever tokio runtime awaits the result.
        let (tx, rx) = tokio::sync::oneshot::channel::<std::result::Result<ReadyInfo, String>>();
        std::thread::Builder::new()
            .name("kube-testplane-stdout".into())
            .spawn(move || read_ready(stdout, tx))
            .context("spawning stdout reader")?;

        let info = match tokio::time::timeout(READY_TIMEOUT + Duration::from_secs(10), rx).await {
            Ok(Ok(Ok(info))) => info,
            outcome => {
                let why = match outcome {
                    Ok(Ok(Err(e))) => e,
                    Ok(Err(_)) => "stdout reader vanished".to_string(),
                    Err(_) => format!("no READY line within {READY_TIMEOUT:?}"),
                    Ok(Ok(Ok(_))) => unreachable!("handled above"),
                };
                let status = stop_blocking(&mut running, Duration::from_secs(10));
                bail!(
                    "kube-testplane did not become ready: {why} ({status}); log {}:\n{}",
                    log_path.display(),
                    log_tail(&log_path, 40)
                );
            }
        };
        let time_to_ready = started.elapsed();
        tracing::info!(
            apiserver = %info.apiserver,
            pid = info.pid,
            ?time_to_ready,
            log = %log_path.display(),
            "kube-testplane ready"
        );

        let local = LocalPlane {
            info: info.clone(),
            time_to_ready,
            log_path,
            process: Mutex::new(Some(running)),
        };
        let kubectl_next_to_it = Some(dir.join("kubectl"));
        match Self::finish(
            vec![info.kubeconfig.clone()],
            Some(local),
            kubectl_next_to_it,
        )
        .await
        {
            Ok(cluster) => Ok(cluster),
            Err(e) => Err(e.context("connecting to the local control plane")),
        }
    }

    /// Uses an existing cluster through the given kubeconfig file(s).
    pub async fn connect(kubeconfig: Vec<PathBuf>) -> Result<TestCluster> {
        let kubectl_dir = std::env::var_os("NATS_OPERATOR_TESTPLANE_DIR")
            .map(|d| PathBuf::from(d).join("kubectl"));
        Self::finish(kubeconfig, None, kubectl_dir).await
    }

    async fn finish(
        kubeconfig: Vec<PathBuf>,
        local: Option<LocalPlane>,
        kubectl_candidate: Option<PathBuf>,
    ) -> Result<TestCluster> {
        let config = load_config(&kubeconfig).await?;
        let client = Client::try_from(config.clone()).context("building kube client")?;
        let server_version = client.apiserver_version().await.context("GET /version")?;
        let kubectl = choose_kubectl(kubectl_candidate, &server_version);
        Ok(TestCluster {
            config,
            kubeconfig,
            server_version,
            kubectl,
            local,
        })
    }

    /// A new client for this cluster. Create one per test (a `kube::Client` is bound to the
    /// tokio runtime it was made in, and each `#[tokio::test]` has its own).
    pub fn client(&self) -> Result<Client> {
        Client::try_from(self.config.clone()).context("building kube client")
    }

    /// The client configuration (cluster URL, credentials).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The kubeconfig file(s) of this cluster.
    pub fn kubeconfig(&self) -> &[PathBuf] {
        &self.kubeconfig
    }

    /// `/version` of the apiserver, as read when connecting.
    pub fn server_version(&self) -> &Info {
        &self.server_version
    }

    /// The READY report of a local control plane (`None` for an external cluster).
    pub fn ready_info(&self) -> Option<&ReadyInfo> {
        self.local.as_ref().map(|l| &l.info)
    }

    /// Wall time from spawning `kube-testplane` to its READY line (local control plane only).
    pub fn time_to_ready(&self) -> Option<Duration> {
        self.local.as_ref().map(|l| l.time_to_ready)
    }

    /// The log file of a local control plane (stderr of kube-apiserver, etcd, controllers).
    pub fn log_path(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.log_path.as_path())
    }

    /// Peak resident memory (`VmHWM`) of a local control plane so far, in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let pid = self.local.as_ref()?.info.pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// True when this is a cluster from `E2E_KUBECONFIG`/`KUBECONFIG`, not one we started.
    pub fn is_external(&self) -> bool {
        self.local.is_none()
    }

    /// Whether the named kube-controller-manager controller runs (external clusters: assumed).
    pub fn has_controller(&self, name: &str) -> bool {
        match &self.local {
            Some(l) => l.info.controllers.iter().any(|c| c == name),
            None => true,
        }
    }

    /// The apiserver's Prometheus metrics, as text.
    pub async fn metrics_text(&self) -> Result<String> {
        self.get_text("/metrics").await
    }

    /// GET a raw apiserver path (e.g. `/readyz?verbose`) and return the body.
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .context("building request")?;
        self.client()?
            .request_text(req)
            .await
            .with_context(|| format!("GET {path}"))
    }

    /// A `kubectl` command preset with `--kubeconfig` for this cluster.
    ///
    /// The binary is `$KUBECTL`, else the `kubectl` built next to `kube-testplane`, else the
    /// machine's `kubectl` if its minor version is within one of the server's.
    ///
    /// # Panics
    /// When no suitable kubectl exists; see [`TestCluster::try_kubectl`].
    pub fn kubectl(&self) -> Command {
        match self.try_kubectl() {
            Ok(cmd) => cmd,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Like [`TestCluster::kubectl`], but returns an error when no suitable kubectl exists.
    pub fn try_kubectl(&self) -> Result<Command> {
        let bin = self.kubectl.as_ref().map_err(|e| anyhow!("{e}"))?;
        let mut cmd = Command::new(bin);
        match self.kubeconfig.as_slice() {
            [one] => {
                cmd.arg(format!("--kubeconfig={}", one.display()));
            }
            many => {
                cmd.env("KUBECONFIG", std::env::join_paths(many)?);
            }
        }
        Ok(cmd)
    }

    /// Stops a local control plane: closes its stdin, sends SIGTERM, waits, then SIGKILLs after
    /// a timeout. Returns how it ended. A no-op for external clusters or when already stopped.
    pub async fn stop(&self) -> Result<String> {
        let Some(local) = &self.local else {
            return Ok("external cluster: not stopped".into());
        };
        let running = local
            .process
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .take();
        let Some(mut running) = running else {
            return Ok("already stopped".into());
        };
        tokio::task::spawn_blocking(move || stop_blocking(&mut running, STOP_TIMEOUT))
            .await
            .context("joining stop task")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(local) = &self.local {
            let running = match local.process.lock() {
                Ok(mut guard) => guard.take(),
                Err(poisoned) => poisoned.into_inner().take(),
            };
            if let Some(mut running) = running {
                let status = stop_blocking(&mut running, STOP_TIMEOUT);
                tracing::info!(%status, "kube-testplane stopped");
            }
        }
    }
}

/// SIGTERM, wait up to `timeout`, then SIGKILL. Returns a description of how it ended.
fn stop_blocking(running: &mut Running, timeout: Duration) -> String {
    drop(running.stdin.take());
    if let Ok(Some(status)) = running.child.try_wait() {
        return format!("had already exited: {status}");
    }
    let pid = rustix::process::Pid::from_child(&running.child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match running.child.try_wait() {
            Ok(Some(status)) => return format!("exited after SIGTERM: {status}"),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return format!("wait failed: {e}"),
        }
    }
    let _ = running.child.kill();
    match running.child.wait() {
        Ok(status) => format!("killed after {timeout:?}: {status}"),
        Err(e) => format!("killed after {timeout:?}, wait failed: {e}"),
    }
}

/// Reads `kube-testplane`'s stdout: sends the parsed READY line (or why there is none), then
/// drains the rest so the child never blocks on a full pipe.
fn read_ready(
    stdout: impl Read,
    tx: tokio::sync::oneshot::Sender<std::result::Result<ReadyInfo, String>>,
) {
    let mut tx = Some(tx);
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(json) = line.strip_prefix("READY ") {
            let parsed = serde_json::from_str::<ReadyInfo>(json)
                .map_err(|e| format!("bad READY line {json:?}: {e}"));
            if let Some(tx) = tx.take() {
                let _ = tx.send(parsed);
            }
        }
    }
    if let Some(tx) = tx.take() {
        let _ = tx.send(Err("exited before READY".into()));
    }
}

/// Removes `kube-testplane-*.log` files older than `max_age` (logs of earlier runs).
fn prune_old_logs(dir: &Path, max_age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("kube-testplane-") && name.ends_with(".log")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = String::new();
    let _ = BufReader::new(f).read_to_string(&mut buf);
    let all: Vec<&str> = buf.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn external_kubeconfig() -> Option<Vec<PathBuf>> {
    if let Some(p) = std::env::var_os("E2E_KUBECONFIG").filter(|p| !p.is_empty()) {
        return Some(vec![PathBuf::from(p)]);
    }
    let kc = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty())?;
    let paths: Vec<PathBuf> = std::env::split_paths(&kc)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    (!paths.is_empty()).then_some(paths)
}

async fn load_config(paths: &[PathBuf]) -> Result<Config> {
    let mut merged: Option<Kubeconfig> = None;
    for p in paths {
        let kc = Kubeconfig::read_from(p).with_context(|| format!("reading {}", p.display()))?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc)?,
        });
    }
    let kc = merged.context("no kubeconfig")?;
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .context("loading kubeconfig")
}

/// The directory holding `kube-testplane` and `kubectl`: `$NATS_OPERATOR_TESTPLANE_DIR`, or the
/// output of `e2e/controlplane/build.sh` (run once per process; a no-op when cached).
async fn testplane_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("NATS_OPERATOR_TESTPLANE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    if let Some(r) = BUILT.get() {
        return r.clone().map_err(|e| anyhow!(e));
    }
    let r = tokio::task::spawn_blocking(|| BUILT.get_or_init(run_build_script).clone())
        .await
        .context("joining build task")?;
    r.map_err(|e| anyhow!(e))
}

fn run_build_script() -> std::result::Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane/build.sh");
    tracing::info!(script = %script.display(), "locating kube-testplane (a cold build takes ~15 min)");
    let stdout = crate::natsbin::run_build_script(&script)?;
    let dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| format!("{} printed no directory", script.display()))?;
    Ok(dir)
}

/// Picks the kubectl binary (see [`TestCluster::kubectl`]).
fn choose_kubectl(built: Option<PathBuf>, server: &Info) -> std::result::Result<PathBuf, String> {
    if let Some(k) = std::env::var_os("KUBECTL").filter(|k| !k.is_empty()) {
        return Ok(PathBuf::from(k));
    }
    if let Some(b) = built.filter(|b| b.is_file()) {
        return Ok(b);
    }
    let machine = OsString::from("kubectl");
    let out = Command::new(&machine)
        .args(["version", "--client", "-o", "json"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("no kubectl: $KUBECTL unset, none built, machine kubectl: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("machine kubectl printed no version JSON: {e}"))?;
    let client_minor = v["clientVersion"]["minor"]
        .as_str()
        .and_then(parse_minor)
        .ok_or("machine kubectl: no clientVersion.minor")?;
    let server_minor = parse_minor(&server.minor).ok_or("server: no minor version")?;
    if client_minor.abs_diff(server_minor) <= 1 {
        Ok(PathBuf::from(machine))
    } else {
        Err(format!(
            "machine kubectl is 1.{client_minor}, server is 1.{server_minor} (skew > 1): \
             set KUBECTL or NATS_OPERATOR_TESTPLANE_DIR (e2e/controlplane/build.sh builds one)"
        ))
    }
}

/// "36", "36+" -> 36.
fn parse_minor(s: &str) -> Option<u32> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_parse() {
        assert_eq!(parse_minor("36"), Some(36));
        assert_eq!(parse_minor("32+"), Some(32));
        assert_eq!(parse_minor(""), None);
    }

    #[test]
    fn ready_line_parses() {
        let json = r#"{"kubeconfig":"/tmp/x/kubeconfig","apiserver":"https://127.0.0.1:1",
            "etcd":"http://127.0.0.1:2","pid":7,"dataDir":"/tmp/x","version":"v1.36.3",
            "caFile":"/tmp/x/pki/serving-ca.crt","controllers":["namespace-controller"],
            "startupMillis":1234}"#;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let input = format!("noise\nREADY {}\n", json.replace('\n', ""));
        read_ready(input.as_bytes(), tx);
        let info = rx.blocking_recv().expect("sent").expect("parsed");
        assert_eq!(info.pid, 7);
        assert_eq!(info.version, "v1.36.3");
        assert_eq!(info.controllers, vec!["namespace-controller".to_string()]);
    }

    #[test]
    fn eof_before_ready_is_an_error() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        read_ready(&b"starting\n"[..], tx);
        assert!(rx.blocking_recv().expect("sent").is_err());
    }
}
