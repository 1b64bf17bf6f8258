//! The nats-server releases and the `nats` CLI the tests run: built from their Go modules
//! by `e2e/nats/build.sh` (cached by version; a no-op when warm), or named by
//! `NATS_SERVER_BINS` (colon-separated nats-server paths) and `NATS_CLI`. Shared by the
//! root crate's tests and the e2e crate (included with `#[path]`), which also runs the
//! control plane's build script through [`run_build_script`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The binaries the tests run.
#[derive(Debug, Clone, Default)]
pub struct NatsBinaries {
    /// `(version, path)` of every nats-server, oldest first (`2.9.25` before `2.10.27`).
    pub servers: Vec<(String, PathBuf)>,
    /// The `nats` CLI, when built or named.
    pub cli: Option<PathBuf>,
}

/// Numeric version parts, for ordering (`2.10.1` > `2.9.25`).
pub fn version_parts(v: &str) -> Vec<u64> {
    v.split(['.', '-']).map_while(|p| p.parse().ok()).collect()
}

fn reported_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    // "nats-server: v2.15.3"
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().last()?.trim_start_matches('v');
    (out.status.success() && v.starts_with(|c: char| c.is_ascii_digit())).then(|| v.to_string())
}

/// Runs one of the repository's cached build scripts (`bash SCRIPT`, its progress on our
/// stderr) and returns what it printed on stdout.
pub fn run_build_script(script: &Path) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", script.display(), out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build(repo: &Path) -> Result<NatsBinaries, String> {
    let stdout = run_build_script(&repo.join("e2e/nats/build.sh")).map_err(|e| {
        format!("{e} (it builds nats-server and the nats CLI with `go install`: needs Go and the Go module proxy)")
    })?;
    let mut found = NatsBinaries::default();
    for line in stdout.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), f.next(), f.next()) {
            (Some("nats-server"), Some(v), Some(p)) => found.servers.push((v.into(), p.into())),
            (Some("nats"), Some(_), Some(p)) => found.cli = Some(p.into()),
            _ => {}
        }
    }
    Ok(found)
}

fn from_env() -> Option<Result<NatsBinaries, String>> {
    let list = std::env::var_os("NATS_SERVER_BINS").filter(|l| !l.is_empty())?;
    let mut found = NatsBinaries {
        cli: std::env::var_os("NATS_CLI").map(PathBuf::from),
        ..Default::default()
    };
    for bin in std::env::split_paths(&list) {
        match reported_version(&bin) {
            Some(v) => found.servers.push((v, bin)),
            None => {
                return Some(Err(format!(
                    "NATS_SERVER_BINS: {} does not run as nats-server",
                    bin.display()
                )));
            }
        }
    }
    Some(Ok(found))
}

/// The binaries, located once per process. `repo` is the repository's root.
pub fn nats_binaries(repo: &Path) -> Result<NatsBinaries, String> {
    static FOUND: OnceLock<Result<NatsBinaries, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let mut found = from_env().unwrap_or_else(|| build(repo))?;
            found.servers.sort_by_key(|(v, _)| version_parts(v));
            found.servers.dedup_by(|a, b| a.0 == b.0);
            if found.servers.is_empty() {
                return Err("no nats-server: e2e/nats/versions lists none".into());
            }
            Ok(found)
        })
        .clone()
}
