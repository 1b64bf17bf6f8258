//! The real `nats-operator run` binary as its own process, for the scale runs: built in
//! release (or `NATS_OPERATOR_BIN`), its memory read from `/proc`, its API requests from
//! the apiserver's `apiserver_request_total`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};

use crate::TestCluster;
use crate::metrics::counter_sums;
use crate::natscluster::poll;

/// `(VmHWM, VmRSS)` of a process, in bytes.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    Some((status_kb(pid, "VmHWM:")?, status_kb(pid, "VmRSS:")?))
}

/// Resident memory split into anonymous (heap, stacks) and file-backed (the binary's
/// pages), to tell what the operator allocates from what it maps.
pub fn resident_split(pid: u32) -> String {
    match (status_kb(pid, "RssAnon:"), status_kb(pid, "RssFile:")) {
        (Some(anon), Some(file)) => format!("anon {} + file {}", mb(anon), mb(file)),
        _ => "?".into(),
    }
}

/// A `/proc/<pid>/status` value in bytes.
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

/// Bytes as `12.3 MB`.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1024.0 / 1024.0)
}

/// The `nats-operator` binary: `$NATS_OPERATOR_BIN`, or built with cargo now.
/// The binary to run: `NATS_OPERATOR_BIN`, else built with cargo in the profile
/// `NATS_OPERATOR_SCALE_PROFILE` (default `release`).
pub fn operator_binary() -> Result<PathBuf> {
    if let Some(b) = std::env::var_os("NATS_OPERATOR_BIN").filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(b));
    }
    let profile = std::env::var("NATS_OPERATOR_SCALE_PROFILE").unwrap_or_else(|_| "release".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "-p", "nats-operator", "--bin", "nats-operator"])
        .stdin(Stdio::null());
    if profile == "release" {
        cmd.arg("--release");
    } else if profile != "debug" && profile != "dev" {
        cmd.args(["--profile", &profile]);
    }
    eprintln!("building nats-operator ({profile}) for the scale run ...");
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of nats-operator failed: {status}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = if profile == "dev" {
        "debug"
    } else {
        profile.as_str()
    };
    Ok(target.join(dir).join("nats-operator"))
}

/// A running `nats-operator run` process; stopped on drop.
pub struct OperatorProcess {
    /// The process.
    pub child: Child,
    /// Its stdout.
    pub log: PathBuf,
}

impl OperatorProcess {
    /// SIGTERM, then SIGKILL after 20 s; what happened.
    pub fn stop(&mut self) -> String {
        if let Ok(Some(s)) = self.child.try_wait() {
            return format!("had exited: {s}");
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return format!("exited after SIGTERM: {s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        format!("killed: {:?}", self.child.wait())
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// All and write requests the apiserver served, from its metrics text.
pub fn request_totals(text: &str) -> (f64, f64) {
    let by_verb = counter_sums(text, "apiserver_request_total", &["verb"]);
    let all: f64 = by_verb.values().sum();
    let writes: f64 = by_verb
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.first().map(String::as_str),
                Some("POST" | "PUT" | "PATCH" | "DELETE" | "APPLY")
            )
        })
        .map(|(_, v)| v)
        .sum();
    (all, writes)
}

impl OperatorProcess {
    /// Starts `bin run` for `namespace` with `extra` flags, logging into a new temporary
    /// directory, and waits until it holds the leader Lease as `pod_name`.
    pub async fn start(
        bin: &Path,
        cluster: &TestCluster,
        namespace: &str,
        pod_name: &str,
        extra: &[&str],
    ) -> Result<OperatorProcess> {
        let logs = tempfile::Builder::new()
            .prefix(&format!("{pod_name}-"))
            .tempdir()?
            .keep();
        let log = logs.join("nats-operator.log");
        let kubeconfig = cluster
            .kubeconfig()
            .first()
            .context("no kubeconfig")?
            .clone();
        let child = Command::new(bin)
            .args([
                "run",
                "--namespace",
                namespace,
                "--webhook-listen",
                "127.0.0.1:0",
                "--health-listen",
                "127.0.0.1:0",
                "--no-ca-injection",
                "--pod-name",
                pod_name,
            ])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .envs(
                nats_operator::install_manifests::ALLOCATOR_ENV
                    .iter()
                    .copied(),
            )
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(logs.join("nats-operator.stderr"))?)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let process = OperatorProcess { child, log };
        eprintln!(
            "nats-operator {} (pid {}), log {}",
            bin.display(),
            process.child.id(),
            process.log.display()
        );
        let client: Client = cluster.client()?;
        let leases: Api<Lease> = Api::namespaced(client, namespace);
        poll(
            Duration::from_secs(60),
            Duration::from_millis(100),
            "operator holds the Lease",
            || async {
                let holder = leases
                    .get_opt("nats-operator")
                    .await?
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity);
                Ok(if holder.as_deref() == Some(pod_name) {
                    Ok(())
                } else {
                    Err(format!("holder {holder:?}"))
                })
            },
        )
        .await?;
        Ok(process)
    }
}
