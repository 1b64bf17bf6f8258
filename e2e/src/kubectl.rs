//! Running `kubectl` the way a user does, and keeping what it printed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::TestCluster;

/// What one `kubectl` invocation did.
#[derive(Debug, Clone)]
pub struct KubectlRun {
    /// The command line (without `--kubeconfig`), for messages.
    pub command: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl KubectlRun {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics (with everything kubectl printed) unless it exited 0; returns `self`.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Panics (with everything kubectl printed) unless it exited non-zero; returns `self`.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure:\n{self}"
        );
        self
    }

    /// Panics unless stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self}"
        );
        self
    }

    /// Panics unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{self}"
        );
        self
    }

    /// Like [`KubectlRun::assert_success`], as an error (for tests that add diagnostics to
    /// a failure instead of panicking).
    pub fn ensure_success(&self) -> Result<&Self> {
        anyhow::ensure!(self.success(), "expected success:\n{self}");
        Ok(self)
    }

    /// An error unless it exited non-zero with every one of `needles` in stderr.
    pub fn ensure_failure_with(&self, needles: &[&str]) -> Result<&Self> {
        anyhow::ensure!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure:\n{self}"
        );
        for n in needles {
            anyhow::ensure!(self.stderr.contains(n), "stderr lacks {n:?}:\n{self}");
        }
        Ok(self)
    }

    /// Parses stdout as JSON (for `-o json`).
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout of `{}` is not JSON:\n{self}", self.command))
    }
}

impl std::fmt::Display for KubectlRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "$ {}   # exit {:?}, {:?}",
            self.command, self.code, self.elapsed
        )?;
        if !self.stdout.is_empty() {
            writeln!(f, "--- stdout\n{}", self.stdout.trim_end())?;
        }
        if !self.stderr.is_empty() {
            writeln!(f, "--- stderr\n{}", self.stderr.trim_end())?;
        }
        Ok(())
    }
}

impl TestCluster {
    /// Runs `kubectl <args>` against this cluster and returns what it printed. Every run is
    /// echoed on stderr (which the test harness shows for failing tests).
    pub fn kubectl_run(&self, args: &[&str]) -> Result<KubectlRun> {
        self.kubectl_run_stdin(args, None)
    }

    /// NatsCluster `ns/name` as `version` (`v1alpha2`, `v1beta1`) reads, through kubectl.
    pub fn natscluster_json(
        &self,
        version: &str,
        ns: &str,
        name: &str,
    ) -> Result<serde_json::Value> {
        let resource = format!("natsclusters.{version}.nats.io");
        let run = self.kubectl_run(&["get", &resource, name, "-n", ns, "-o", "json"])?;
        run.ensure_success()?;
        run.json()
    }

    /// Like [`TestCluster::kubectl_run`], with `stdin` piped in (for `-f -`).
    pub fn kubectl_run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<KubectlRun> {
        let mut cmd: Command = self.try_kubectl()?;
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!("kubectl {}", args.join(" "));
        let started = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("spawning {command}"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .with_context(|| format!("writing stdin of {command}"))?;
        }
        let out = child
            .wait_with_output()
            .with_context(|| format!("waiting for {command}"))?;
        let run = KubectlRun {
            command,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        eprint!("{run}");
        Ok(run)
    }
}

/// A running `kubectl port-forward`: connections to [`PortForward::addr`] reach the target
/// through the apiserver and the kubelet, as a user's do. Stopped on drop.
#[derive(Debug)]
pub struct PortForward {
    addr: std::net::SocketAddr,
    child: std::process::Child,
}

impl PortForward {
    /// The local address (127.0.0.1 and the port kubectl chose).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestCluster {
    /// `kubectl port-forward -n <namespace> <target> :<port>` (a free local port), once it
    /// says it is forwarding.
    pub fn port_forward(&self, namespace: &str, target: &str, port: u16) -> Result<PortForward> {
        use std::io::BufRead;
        let mut child = self
            .try_kubectl()?
            .args(["port-forward", "-n", namespace, target])
            .arg(format!(":{port}"))
            .args(["--address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning kubectl port-forward")?;
        let stdout = child.stdout.take().context("kubectl port-forward stdout")?;
        // "Forwarding from 127.0.0.1:41234 -> 4222"
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let addr = line
                    .strip_prefix("Forwarding from ")
                    .and_then(|r| r.split(" -> ").next())
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Ok(PortForward { addr, child }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("kubectl port-forward -n {namespace} {target} :{port} did not start")
            }
        }
    }
}
