//! `nats-operator config-reloader`: the sidecar that makes a running nats-server pick up
//! a changed config.
//!
//! It replaces the third-party `connecteverything/nats-server-config-reloader` image, so
//! the pods need only the operator's own image. It runs in the member pod next to the
//! `nats` container, with the same volumes and one process namespace
//! (`shareProcessNamespace: true`), and sends `SIGHUP` — nats-server's "reload your
//! config" signal — to the pid in the server's pid file whenever the content of
//! `nats.conf` or any other watched file (the clients auth include, the TLS files)
//! changes.
//!
//! Decisions:
//! - **Polling, not inotify.** Kubernetes updates Secret and ConfigMap volumes by
//!   writing a new timestamped directory and atomically swapping the `..data` symlink;
//!   the files seen by the server are symlinks through `..data`, so an inotify watch on
//!   the file path never fires. Reading a few small files once a second (`--interval`)
//!   sees every kind of update (symlink swaps, in-place writes, renames, hostPath) and
//!   needs no extra dependency.
//! - **Content, not metadata.** A change is a change of the SHA-256 of the watched
//!   files' bytes: `touch`, a re-mount or a Secret update that rewrites the same bytes
//!   does not reload.
//! - **Debounced.** A new content must read the same on two reads `--debounce` apart
//!   before it is signalled, so several files changed together (one Secret update, or a
//!   read that straddled the symlink swap) and half-written files give one reload of the
//!   final content.
//! - **The content at start-up is the baseline.** The server read its config when it
//!   started, so the first complete read is recorded and not signalled.
//! - **Never crash on the environment.** A missing or unreadable watched file, a
//!   missing pid file (the server has not started yet) or a stale pid (`ESRCH`: the
//!   server is restarting) is logged once and retried on every tick until it heals; the
//!   reload stays pending meanwhile. The pid is re-read before every signal, since a
//!   restarted server writes a new one.
//!
//! The pure pieces ([`watched_files`], [`snapshot`], [`parse_pid`], [`Debouncer`]) are
//! unit tested; [`run`] is the thin async loop around them, tested against a real
//! nats-server in `tests/config_reloader.rs`.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Shortest `--interval` accepted: anything faster is a busy loop.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Flags of `nats-operator config-reloader`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReloaderArgs {
    /// The nats-server pid file (`nats-server -P FILE`), read again before every signal.
    #[arg(long, value_name = "FILE")]
    pub pid: PathBuf,
    /// The nats-server config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Another file whose change reloads the server (an include, a TLS certificate or
    /// key); repeatable.
    #[arg(long = "watch", value_name = "FILE")]
    pub watch: Vec<PathBuf>,
    /// How often the files are read (a Go duration: 500ms, 2s).
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// How long a new content must stay the same before the server is signalled.
    #[arg(long, default_value = "250ms", value_parser = parse_debounce)]
    pub debounce: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match crate::api::duration::parse(s) {
        Some(d) if d >= MIN_INTERVAL => Ok(d),
        Some(_) => Err(format!("must be at least {MIN_INTERVAL:?}")),
        None => Err("not a duration (examples: 500ms, 1s, 2s)".into()),
    }
}

fn parse_debounce(s: &str) -> Result<Duration, String> {
    crate::api::duration::parse(s).ok_or_else(|| "not a duration (examples: 0, 250ms)".into())
}

/// The files to watch: the config file first, then every `--watch` file, each once.
pub fn watched_files(args: &ReloaderArgs) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::with_capacity(1 + args.watch.len());
    for p in std::iter::once(&args.config).chain(&args.watch) {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// The content of the watched files at one moment: the SHA-256 of each, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    files: Vec<(PathBuf, [u8; 32])>,
}

impl Snapshot {
    /// A snapshot of files already hashed (path, SHA-256 of the content).
    pub fn from_digests(files: Vec<(PathBuf, [u8; 32])>) -> Snapshot {
        Snapshot { files }
    }

    /// The combined digest of every file (its path and its content's SHA-256), as
    /// lower-case hex: equal exactly when the snapshots are.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (path, digest) in &self.files {
            let p = path.as_os_str().as_encoded_bytes();
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
            h.update(digest);
        }
        hex(&h.finalize())
    }

    /// The files whose content differs from `older` (or that `older` did not have).
    pub fn changed_since(&self, older: &Snapshot) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(path, digest)| {
                !older
                    .files
                    .iter()
                    .any(|(op, od)| op == path && od == digest)
            })
            .map(|(path, _)| path.clone())
            .collect()
    }
}

/// A watched file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read watched file {}: {source}", path.display())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// Reads and hashes every file (following symlinks, so a Secret volume's
/// `nats.conf -> ..data/nats.conf` is read through the current `..data`).
pub fn snapshot(paths: &[PathBuf]) -> Result<Snapshot, ReadError> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(path).map_err(|source| ReadError {
            path: path.clone(),
            source,
        })?;
        files.push((path.clone(), Sha256::digest(&bytes).into()));
    }
    Ok(Snapshot { files })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What [`Debouncer::observe`] decided about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The first snapshot: recorded as what the server runs with, not signalled.
    Baseline,
    /// The same content as the last one signalled (or the baseline).
    Unchanged,
    /// New content, not yet stable for the debounce period: look again after `remaining`.
    Settling {
        /// Time left until the content counts as stable.
        remaining: Duration,
    },
    /// New, stable content: signal the server, then call [`Debouncer::reloaded`].
    Reload {
        /// The files that differ from the content last signalled.
        changed: Vec<PathBuf>,
    },
}

/// Decides, from successive snapshots, when to signal: once per new stable content.
#[derive(Debug, Clone)]
pub struct Debouncer {
    quiet: Duration,
    applied: Option<Snapshot>,
    pending: Option<(Snapshot, Instant)>,
}

impl Debouncer {
    /// A debouncer that signals a new content once it has read the same for `quiet`.
    pub fn new(quiet: Duration) -> Debouncer {
        Debouncer {
            quiet,
            applied: None,
            pending: None,
        }
    }

    /// Takes the snapshot read at `now` and says what to do. [`Decision::Reload`] is
    /// repeated on every later call with the same content until [`Self::reloaded`] is
    /// called, so a failed signal is retried.
    pub fn observe(&mut self, snap: Snapshot, now: Instant) -> Decision {
        let Some(applied) = &self.applied else {
            self.applied = Some(snap);
            self.pending = None;
            return Decision::Baseline;
        };
        if *applied == snap {
            self.pending = None;
            return Decision::Unchanged;
        }
        let since = match &self.pending {
            Some((p, since)) if *p == snap => *since,
            _ => {
                self.pending = Some((snap.clone(), now));
                now
            }
        };
        let stable_for = now.saturating_duration_since(since);
        if stable_for >= self.quiet {
            Decision::Reload {
                changed: snap.changed_since(applied),
            }
        } else {
            Decision::Settling {
                remaining: self.quiet - stable_for,
            }
        }
    }

    /// The server was signalled for the pending content: it is now the applied one.
    pub fn reloaded(&mut self) {
        if let Some((snap, _)) = self.pending.take() {
            self.applied = Some(snap);
        }
    }

    /// The digest of the content the server last loaded, as far as we know.
    pub fn applied_digest(&self) -> Option<String> {
        self.applied.as_ref().map(Snapshot::digest)
    }
}

/// Why the server could not be signalled.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// No pid file yet (the server has not started) or unreadable.
    #[error("cannot read pid file {}: {source}", path.display())]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The pid file does not hold a usable pid (empty while being written, or garbage).
    #[error("pid file {} holds no valid pid: {text:?}", path.display())]
    InvalidPid {
        /// The pid file.
        path: PathBuf,
        /// What it holds (trimmed, at most 64 characters).
        text: String,
    },
    /// The pid is this reloader's own: the pid file is stale and the pid reused.
    #[error("pid {pid} is this reloader itself: stale pid file")]
    OwnPid {
        /// The pid.
        pid: i32,
    },
    /// No such process (`ESRCH`): the server exited or is restarting.
    #[error("no process {pid}: the server is not running (stale pid file)")]
    NoProcess {
        /// The pid.
        pid: i32,
    },
    /// Any other `kill(2)` failure (`EPERM`: another user's process).
    #[error("cannot signal process {pid}: {source}")]
    Kill {
        /// The pid.
        pid: i32,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The pid in a pid file's text: a decimal number above 1 (pid 1 is the pod's pause
/// process or the machine's init, never the server), surrounding whitespace allowed.
pub fn parse_pid(text: &str) -> Option<i32> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i32>().ok().filter(|p| *p > 1)
}

/// Reads the pid file and sends `SIGHUP` to that pid; returns the pid signalled.
pub fn signal_server(pid_file: &Path) -> Result<i32, SignalError> {
    let text = std::fs::read_to_string(pid_file).map_err(|source| SignalError::PidFile {
        path: pid_file.to_path_buf(),
        source,
    })?;
    let Some(pid) = parse_pid(&text) else {
        return Err(SignalError::InvalidPid {
            path: pid_file.to_path_buf(),
            text: text.trim().chars().take(64).collect(),
        });
    };
    if u32::try_from(pid).ok() == Some(std::process::id()) {
        return Err(SignalError::OwnPid { pid });
    }
    let target = rustix::process::Pid::from_raw(pid).ok_or(SignalError::NoProcess { pid })?;
    match rustix::process::kill_process(target, rustix::process::Signal::HUP) {
        Ok(()) => Ok(pid),
        Err(rustix::io::Errno::SRCH) => Err(SignalError::NoProcess { pid }),
        Err(e) => Err(SignalError::Kill {
            pid,
            source: e.into(),
        }),
    }
}

/// The name of process `pid` (`/proc/<pid>/comm`), for the log; empty when unknown.
fn process_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// One warning per distinct problem: repeats go to debug until it clears.
#[derive(Default)]
struct Problem(Option<String>);

impl Problem {
    fn report(&mut self, what: &str, message: String) {
        if self.0.as_deref() == Some(message.as_str()) {
            tracing::debug!(problem = %message, "{what} (still)");
        } else {
            tracing::warn!(problem = %message, "{what}; retrying every tick");
            self.0 = Some(message);
        }
    }

    fn clear(&mut self) {
        if let Some(old) = self.0.take() {
            tracing::info!(problem = %old, "recovered");
        }
    }
}

/// The reloader loop: reads the watched files every `interval`, signals the server
/// once per new stable content, and returns when `shutdown` completes.
pub async fn run(args: ReloaderArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let files = watched_files(&args);
    tracing::info!(
        files = ?files,
        pid_file = %args.pid.display(),
        interval = ?args.interval,
        debounce = ?args.debounce,
        "config reloader started"
    );
    let mut debouncer = Debouncer::new(args.debounce);
    let mut files_problem = Problem::default();
    let mut signal_problem = Problem::default();
    let mut wait = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("config reloader stopping");
                return Ok(());
            }
            () = tokio::time::sleep(wait) => {}
        }
        wait = args.interval;
        tracing::trace!("reading the watched files");
        let snap = match snapshot(&files) {
            Ok(s) => {
                files_problem.clear();
                s
            }
            Err(e) => {
                files_problem.report("watched files incomplete", e.to_string());
                continue;
            }
        };
        let digest = snap.digest();
        match debouncer.observe(snap, Instant::now()) {
            Decision::Baseline => {
                tracing::info!(%digest, "recorded the initial content; not signalling");
            }
            Decision::Unchanged => signal_problem.clear(),
            Decision::Settling { remaining } => {
                tracing::debug!(%digest, ?remaining, "content changed; waiting for it to settle");
                wait = remaining.min(args.interval);
            }
            Decision::Reload { changed } => {
                let changed: Vec<String> =
                    changed.iter().map(|p| p.display().to_string()).collect();
                let previous = debouncer.applied_digest().unwrap_or_default();
                match signal_server(&args.pid) {
                    Ok(pid) => {
                        signal_problem.clear();
                        debouncer.reloaded();
                        tracing::info!(
                            pid,
                            process = %process_name(pid),
                            changed = ?changed,
                            %previous,
                            %digest,
                            "sent SIGHUP: nats-server reloads its config"
                        );
                    }
                    Err(e) => {
                        signal_problem
                            .report("reload pending: cannot signal nats-server", e.to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(config: &str, watch: &[&str]) -> ReloaderArgs {
        ReloaderArgs {
            pid: "/run/nats.pid".into(),
            config: config.into(),
            watch: watch.iter().map(PathBuf::from).collect(),
            interval: Duration::from_secs(1),
            debounce: Duration::from_millis(250),
        }
    }

    fn snap(files: &[(&str, &str)]) -> Snapshot {
        Snapshot::from_digests(
            files
                .iter()
                .map(|(p, c)| (PathBuf::from(p), Sha256::digest(c.as_bytes()).into()))
                .collect(),
        )
    }

    #[test]
    fn watches_the_config_first_and_each_file_once() {
        let a = args(
            "/c/nats.conf",
            &["/t/tls.crt", "/c/nats.conf", "/t/tls.crt", "/t/k"],
        );
        assert_eq!(
            watched_files(&a),
            ["/c/nats.conf", "/t/tls.crt", "/t/k"].map(PathBuf::from)
        );
    }

    #[test]
    fn digest_depends_on_content_and_path_only() {
        let a = snap(&[("/a", "x"), ("/b", "y")]);
        assert_eq!(a.digest(), snap(&[("/a", "x"), ("/b", "y")]).digest());
        assert_ne!(a.digest(), snap(&[("/a", "x"), ("/b", "z")]).digest());
        // Content moved from one file to the other is a change.
        assert_ne!(a.digest(), snap(&[("/a", "y"), ("/b", "x")]).digest());
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn names_the_changed_files() {
        let old = snap(&[("/a", "x"), ("/b", "y"), ("/c", "z")]);
        let new = snap(&[("/a", "x"), ("/b", "Y"), ("/c", "Z")]);
        assert_eq!(new.changed_since(&old), ["/b", "/c"].map(PathBuf::from));
        assert!(old.changed_since(&old).is_empty());
    }

    #[test]
    fn snapshot_reads_through_symlinks_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.conf");
        let link = dir.path().join("nats.conf");
        std::fs::write(&real, "port: 4222\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let s = snapshot(std::slice::from_ref(&link)).unwrap();
        let direct = snapshot(std::slice::from_ref(&real)).unwrap();
        assert_eq!(s.files[0].1, direct.files[0].1);
        // A touch (new mtime, same bytes) is no change.
        std::fs::write(&real, "port: 4222\n").unwrap();
        assert_eq!(snapshot(std::slice::from_ref(&link)).unwrap(), s);
        std::fs::remove_file(&real).unwrap();
        let err = snapshot(std::slice::from_ref(&link)).unwrap_err();
        assert_eq!(err.path, link);
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn first_snapshot_is_the_baseline_and_is_not_signalled() {
        let mut d = Debouncer::new(Duration::from_millis(250));
        let t = Instant::now();
        assert_eq!(d.observe(snap(&[("/a", "1")]), t), Decision::Baseline);
        assert_eq!(d.observe(snap(&[("/a", "1")]), t), Decision::Unchanged);
    }

    #[test]
    fn a_change_is_signalled_once_it_is_stable() {
        let q = Duration::from_millis(250);
        let mut d = Debouncer::new(q);
        let t = Instant::now();
        d.observe(snap(&[("/a", "1"), ("/b", "1")]), t);
        // A Secret update seen half-way (one file new, one old), then complete.
        assert_eq!(
            d.observe(snap(&[("/a", "2"), ("/b", "1")]), t + q),
            Decision::Settling { remaining: q }
        );
        assert_eq!(
            d.observe(snap(&[("/a", "2"), ("/b", "2")]), t + 2 * q),
            Decision::Settling { remaining: q }
        );
        assert_eq!(
            d.observe(snap(&[("/a", "2"), ("/b", "2")]), t + 2 * q + q / 2),
            Decision::Settling { remaining: q / 2 }
        );
        assert_eq!(
            d.observe(snap(&[("/a", "2"), ("/b", "2")]), t + 3 * q),
            Decision::Reload {
                changed: ["/a", "/b"].map(PathBuf::from).to_vec()
            }
        );
        d.reloaded();
        assert_eq!(
            d.observe(snap(&[("/a", "2"), ("/b", "2")]), t + 4 * q),
            Decision::Unchanged
        );
    }

    #[test]
    fn a_failed_signal_is_retried_until_reloaded() {
        let mut d = Debouncer::new(Duration::ZERO);
        let t = Instant::now();
        d.observe(snap(&[("/a", "1")]), t);
        let reload = Decision::Reload {
            changed: vec![PathBuf::from("/a")],
        };
        assert_eq!(d.observe(snap(&[("/a", "2")]), t), reload);
        // Not reloaded (the signal failed): asked again.
        assert_eq!(d.observe(snap(&[("/a", "2")]), t), reload);
        d.reloaded();
        assert_eq!(d.observe(snap(&[("/a", "2")]), t), Decision::Unchanged);
    }

    #[test]
    fn a_change_reverted_before_it_settles_is_not_signalled() {
        let q = Duration::from_millis(250);
        let mut d = Debouncer::new(q);
        let t = Instant::now();
        d.observe(snap(&[("/a", "1")]), t);
        assert!(matches!(
            d.observe(snap(&[("/a", "half-writ")]), t),
            Decision::Settling { .. }
        ));
        assert_eq!(d.observe(snap(&[("/a", "1")]), t + q), Decision::Unchanged);
        // `reloaded` with nothing pending changes nothing.
        d.reloaded();
        assert_eq!(d.applied_digest(), Some(snap(&[("/a", "1")]).digest()));
        // The next change starts its own quiet period.
        assert_eq!(
            d.observe(snap(&[("/a", "half-writ")]), t + 2 * q),
            Decision::Settling { remaining: q }
        );
    }

    #[test]
    fn parses_pid_files() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid("  77 "), Some(77));
        for bad in ["", "\n", "1", "0", "-5", "+5", "12a", "1 2", "99999999999"] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signals_the_pid_in_the_file() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("nats.pid");
        assert!(matches!(
            signal_server(&pid_file),
            Err(SignalError::PidFile { .. })
        ));
        std::fs::write(&pid_file, "").unwrap();
        assert!(matches!(
            signal_server(&pid_file),
            Err(SignalError::InvalidPid { .. })
        ));
        std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
        assert!(matches!(
            signal_server(&pid_file),
            Err(SignalError::OwnPid { .. })
        ));
        // `sleep` does not handle SIGHUP, so it dies of it: proof of delivery. Unless the
        // test runs under `nohup`, whose ignored SIGHUP a child inherits: a handler in
        // this process (tokio's, as the reloader uses) is reset to the default on exec.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _hangup = rt.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap()
        });
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        assert_eq!(signal_server(&pid_file).unwrap(), child.id() as i32);
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(1), "{status:?}");
        // The pid is gone now (reaped): a stale pid file.
        assert!(matches!(
            signal_server(&pid_file),
            Err(SignalError::NoProcess { .. })
        ));
    }

    #[test]
    fn interval_and_debounce_flags() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("1ms").is_err());
        assert!(parse_interval("soon").is_err());
        assert_eq!(parse_debounce("0"), Ok(Duration::ZERO));
        assert_eq!(parse_debounce("250ms"), Ok(Duration::from_millis(250)));
    }
}
