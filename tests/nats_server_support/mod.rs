//! Real nats-server binaries for the `nats_server_*` tests, and helpers to run them.
//!
//! The binaries: every release in `e2e/nats/versions`, built from its Go module by
//! `e2e/nats/build.sh` on first use and cached by version (or the ones `NATS_SERVER_BINS`
//! names).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../e2e/nats/locate.rs"]
mod locate;

/// A nats-server binary and the version it reports.
#[derive(Debug, Clone)]
pub struct Server {
    /// Path of the binary.
    pub bin: PathBuf,
    /// `nats-server: v2.15.3` → `2.15.3`.
    pub version: String,
}

impl Server {
    /// `(major, minor)` of the version.
    pub fn minor(&self) -> (u64, u64) {
        let p = locate::version_parts(&self.version);
        (
            p.first().copied().unwrap_or(0),
            p.get(1).copied().unwrap_or(0),
        )
    }
}

/// Every nats-server to test against, oldest first. Panics with the build's error when
/// they cannot be built.
pub fn servers() -> Vec<Server> {
    let found = locate::nats_binaries(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("nats-server binaries: {e}"));
    found
        .servers
        .into_iter()
        .map(|(version, bin)| Server { bin, version })
        .collect()
}

/// The `nats` CLI built with the servers (or the one `NATS_CLI` names).
pub fn nats_cli() -> PathBuf {
    locate::nats_binaries(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("nats CLI: {e}"))
        .cli
        .expect("the nats CLI is built with the servers")
}

/// The newest of [`servers`].
pub fn newest() -> Server {
    servers().pop().expect("at least one server")
}

/// `nats-server -c <conf> -t` with `env`: (success, output).
pub fn config_test(server: &Server, conf: &Path, env: &[(&str, &str)]) -> (bool, String) {
    config_test_with(server, conf, env, &[])
}

/// The flags of a member pod's `nats` container other than the config and pid files,
/// with `$(VAR)` expanded from `env` as the kubelet does: what the server gets besides
/// `nats.conf` (the server name, the cluster advertise address, ...).
pub fn pod_flags(pod: &k8s_openapi::api::core::v1::Pod, env: &[(&str, &str)]) -> Vec<String> {
    let command = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == "nats"))
        .and_then(|c| c.command.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut args = command.into_iter().skip(1);
    while let Some(a) = args.next() {
        if a == "-c" || a == "-P" {
            args.next();
            continue;
        }
        let mut expanded = a;
        for (k, v) in env {
            expanded = expanded.replace(&format!("$({k})"), v);
        }
        out.push(expanded);
    }
    out
}

/// [`config_test`] with extra command-line flags (see [`pod_flags`]).
pub fn config_test_with(
    server: &Server,
    conf: &Path,
    env: &[(&str, &str)],
    flags: &[String],
) -> (bool, String) {
    let out = Command::new(&server.bin)
        .arg("-c")
        .arg(conf)
        .args(flags)
        .arg("-t")
        .envs(env.iter().copied())
        .output()
        .expect("run nats-server -t");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A free TCP port on 127.0.0.1 (released before use; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running server, killed on drop.
pub struct Running {
    child: Child,
    /// Client port.
    pub client: u16,
    /// Monitoring port.
    pub http: u16,
    /// Cluster port.
    pub cluster: u16,
    log: PathBuf,
}

impl Running {
    /// Starts `server -c conf` with the client and monitoring ports on fresh local ports
    /// (flags override the config's 4222 and 8222) and waits until `/varz` answers and
    /// the client port accepts. The cluster port is not overridden by flag (`--cluster`
    /// would also clear the route credentials of the config): `cluster` is what the
    /// config says.
    pub fn start(server: &Server, conf: &Path, cluster: u16, env: &[(&str, &str)]) -> Running {
        Running::start_with(server, conf, cluster, env, &[])
    }

    /// [`Running::start`] with `extra` command-line flags (for example `-P <pid file>`).
    pub fn start_with(
        server: &Server,
        conf: &Path,
        cluster: u16,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Running {
        let (client, http) = (free_port(), free_port());
        let log = conf.with_extension("log");
        let child = Command::new(&server.bin)
            .arg("-c")
            .arg(conf)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &client.to_string(),
                "-m",
                &http.to_string(),
            ])
            .arg("-l")
            .arg(&log)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let r = Running {
            child,
            client,
            http,
            cluster,
            log,
        };
        // The monitor answers before the client listener opens (with JetStream on, the
        // server initialises it in between): wait for both.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if r.get("/varz").is_some() && TcpStream::connect(("127.0.0.1", client)).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not start: {}", r.log_text());
    }

    /// Sends SIGHUP (a config reload), as the config reloader does in a pod.
    pub fn reload(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success(), "kill -HUP failed");
    }

    /// The server log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` on the monitoring port, as JSON.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let json = body.split_once("\r\n\r\n")?.1;
        serde_json::from_str(json).ok()
    }

    /// Connects as a client with `user`/`pass`, sends `extra` protocol lines and a
    /// PING, and returns every line up to the PONG (or an error).
    pub fn client_session(&self, user: &str, pass: &str, extra: &str) -> Vec<String> {
        let s = TcpStream::connect(("127.0.0.1", self.client)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut w = s.try_clone().expect("clone");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).expect("INFO");
        assert!(line.starts_with("INFO "), "{line}");
        let connect = serde_json::json!({
            "verbose": false, "pedantic": false, "user": user, "pass": pass, "protocol": 1
        });
        write!(w, "CONNECT {connect}\r\n{extra}PING\r\n").expect("write");
        let mut lines = Vec::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let l = line.trim_end().to_string();
                    let done = l == "PONG" || l.starts_with("-ERR 'Authorization");
                    lines.push(l);
                    if done {
                        break;
                    }
                }
            }
        }
        lines
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a CA and a serving certificate: `ca`, `cert` and `key` (absolute paths).
pub fn write_tls(ca: &Path, cert: &Path, key: &Path) {
    use nats_operator_certs::CertificateAuthority;
    let authority =
        CertificateAuthority::generate("render-test-ca", Duration::from_secs(3600)).expect("CA");
    let serving = authority
        .issue_serving(
            &["localhost".to_string(), "127.0.0.1".to_string()],
            Duration::from_secs(3600),
        )
        .expect("serving cert");
    for (path, text) in [
        (ca, authority.cert_pem()),
        (cert, serving.cert_pem()),
        (key, serving.key_pem()),
    ] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, text).expect("write pem");
    }
}
