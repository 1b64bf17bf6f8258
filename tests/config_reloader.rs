//! `nats-operator config-reloader` against real nats-servers: the built binary watches a
//! config (plain files and a Secret-style `..data` symlink tree) and a real server
//! started with `-P <pid file>`, as in a member pod; the server's `/varz`
//! (`config_load_time`, `max_payload`) and its log show whether it reloaded.
//!
//! Every wait polls for a condition with a deadline. The negative checks ("did not
//! reload") wait for the reloader's own trace lines, one per read of the files, so they
//! hold after a known number of reads rather than after a guessed sleep.

mod nats_server_support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nats_server_support::{Running, Server, newest, servers};

const DEADLINE: Duration = Duration::from_secs(20);
/// What the reloader logs (at trace level) on every read of the watched files.
const TICK: &str = "reading the watched files";
const BASELINE: &str = "recorded the initial content";
const SIGNALLED: &str = "sent SIGHUP";
/// What nats-server logs after a successful reload.
const SERVER_RELOADED: &str = "Reloaded server configuration";

/// Polls `f` every 20 ms until it gives a value; panics with `what` and `context()` at
/// the deadline.
fn wait_for<T>(what: &str, context: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real `nats-operator config-reloader`, killed on drop; its log goes to a file.
struct Reloader {
    child: Child,
    log: PathBuf,
}

impl Reloader {
    fn start(pid: &Path, config: &Path, watch: &[&Path], extra: &[&str]) -> Reloader {
        let log = pid.with_file_name(format!(
            "reloader-{}.log",
            config.file_name().unwrap_or_default().to_string_lossy()
        ));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nats-operator"));
        cmd.arg("config-reloader")
            .arg("--pid")
            .arg(pid)
            .arg("--config")
            .arg(config);
        for w in watch {
            cmd.arg("--watch").arg(w);
        }
        let child = cmd
            .args(extra)
            .env("RUST_LOG", "info,nats_operator::config_reloader=trace")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("reloader log"))
            .spawn()
            .expect("start nats-operator config-reloader");
        Reloader { child, log }
    }

    /// Fast settings for tests that count reads.
    fn fast(pid: &Path, config: &Path, watch: &[&Path]) -> Reloader {
        Reloader::start(
            pid,
            config,
            watch,
            &["--interval", "100ms", "--debounce", "50ms"],
        )
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }

    fn wait_log(&self, needle: &str, at_least: usize) {
        wait_for(
            &format!("{at_least}× {needle:?} in the reloader log"),
            || self.log_text(),
            || (self.count(needle) >= at_least).then_some(()),
        );
    }

    /// Waits until the reloader has read the files `n` more times.
    fn wait_ticks(&self, n: usize) {
        let now = self.count(TICK);
        self.wait_log(TICK, now + n);
    }

    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "reloader exited: {status:?}\n{}",
            self.log_text()
        );
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let log = self.log.clone();
        wait_for(
            "the reloader to exit",
            || std::fs::read_to_string(&log).unwrap_or_default(),
            || self.child.try_wait().expect("try_wait"),
        )
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn varz(server: &Running) -> serde_json::Value {
    server.get("/varz").expect("/varz answers")
}

fn config_load_time(server: &Running) -> String {
    varz(server)["config_load_time"]
        .as_str()
        .expect("config_load_time")
        .to_string()
}

fn start_server(server: &Server, conf: &Path, pid: &Path) -> Running {
    let pid = pid.to_str().expect("utf-8 path");
    let r = Running::start_with(server, conf, 0, &[], &["-P", pid]);
    wait_for(
        "the pid file",
        || r.log_text(),
        || {
            std::fs::read_to_string(pid)
                .ok()
                .filter(|t| !t.trim().is_empty())
        },
    );
    r
}

fn server_reloads(server: &Running) -> usize {
    server.log_text().matches(SERVER_RELOADED).count()
}

/// Edits the config in place (like an editor or a hostPath) and checks the server
/// reloads it, with the reloader's default interval and debounce. Every nats-server
/// we test against.
#[test]
fn content_change_reloads_the_server() {
    for server in servers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("nats.conf");
        let pid = dir.path().join("nats.pid");
        std::fs::write(&conf, "max_payload: 100000\n").expect("write");
        let nats = start_server(&server, &conf, &pid);
        let reloader = Reloader::start(&pid, &conf, &[], &[]);
        reloader.wait_log(BASELINE, 1);
        let before = varz(&nats);
        assert_eq!(before["max_payload"], 100000, "{}", server.version);

        let changed = Instant::now();
        std::fs::write(&conf, "max_payload: 200000\n").expect("write");
        let after = wait_for(
            "max_payload 200000 in /varz",
            || format!("{}\n{}", reloader.log_text(), nats.log_text()),
            || Some(varz(&nats)).filter(|v| v["max_payload"] == 200000),
        );
        let latency = changed.elapsed();
        eprintln!(
            "nats-server {}: change to reload observed in {latency:?} (default --interval 1s, --debounce 250ms)",
            server.version
        );
        assert!(latency < Duration::from_secs(5), "{latency:?}");
        assert_ne!(
            after["config_load_time"], before["config_load_time"],
            "config_load_time moves on a reload"
        );
        assert_eq!(reloader.count(SIGNALLED), 1, "{}", reloader.log_text());
        assert_eq!(server_reloads(&nats), 1, "{}", nats.log_text());
        let log = reloader.log_text();
        let line = log
            .lines()
            .find(|l| l.contains(SIGNALLED))
            .expect("signal line");
        assert!(line.contains(&conf.display().to_string()), "{line}");
        let server_pid = std::fs::read_to_string(&pid).expect("pid");
        assert!(
            line.contains(&format!("pid={}", server_pid.trim())),
            "{line}"
        );
    }
}

/// Rewriting the same bytes (new mtime, same content) reloads nothing.
#[test]
fn touch_without_change_does_not_reload() {
    let server = newest();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nats.conf");
    let pid = dir.path().join("nats.pid");
    let text = "max_payload: 100000\n";
    std::fs::write(&conf, text).expect("write");
    let nats = start_server(&server, &conf, &pid);
    let reloader = Reloader::fast(&pid, &conf, &[]);
    reloader.wait_log(BASELINE, 1);
    let before = config_load_time(&nats);

    for _ in 0..3 {
        // Replaced whole, as the kubelet swaps a Secret volume's files: a truncate-then-
        // write could be read empty by the reloader when this thread is descheduled in
        // between (seen on a loaded 2-core machine), which is a real change.
        let next = dir.path().join("nats.conf.next");
        std::fs::write(&next, text).expect("rewrite");
        std::fs::rename(&next, &conf).expect("replace");
        let f = File::options().append(true).open(&conf).expect("open");
        f.set_modified(std::time::SystemTime::now()).expect("touch");
        reloader.wait_ticks(3);
    }
    assert_eq!(config_load_time(&nats), before);
    assert_eq!(reloader.count(SIGNALLED), 0, "{}", reloader.log_text());
    assert_eq!(server_reloads(&nats), 0);

    // The same reloader still sees a real change.
    std::fs::write(&conf, "max_payload: 300000\n").expect("write");
    wait_for(
        "max_payload 300000",
        || reloader.log_text(),
        || Some(varz(&nats)).filter(|v| v["max_payload"] == 300000),
    );
}

/// A Kubernetes Secret volume: `nats.conf` and `auth.conf` are symlinks through `..data`,
/// and an update writes a new timestamped directory and renames a new `..data` over
/// the old one. Both keys change at once: one reload, and the new user can log in.
#[test]
fn secret_volume_symlink_swap_reloads_once() {
    let server = newest();
    let dir = tempfile::tempdir().expect("tempdir");
    let vol = dir.path().join("config");
    let pid = dir.path().join("nats.pid");
    std::fs::create_dir(&vol).expect("mkdir");
    let write_version = |name: &str, max_payload: u32, users: &str| {
        let d = vol.join(name);
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(
            d.join("nats.conf"),
            format!("max_payload: {max_payload}\ninclude ./auth.conf\n"),
        )
        .expect("write");
        std::fs::write(
            d.join("auth.conf"),
            format!("authorization {{\n  users = [\n{users}  ]\n}}\n"),
        )
        .expect("write");
    };
    write_version(
        "..2026_01_01_00_00_00.000000001",
        100000,
        "    {user: alice, password: a}\n",
    );
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", vol.join("..data"))
        .expect("..data");
    for key in ["nats.conf", "auth.conf"] {
        std::os::unix::fs::symlink(format!("..data/{key}"), vol.join(key)).expect("key link");
    }
    let conf = vol.join("nats.conf");
    let auth = vol.join("auth.conf");
    let nats = start_server(&server, &conf, &pid);
    let reloader = Reloader::fast(&pid, &conf, &[&auth]);
    reloader.wait_log(BASELINE, 1);
    assert_eq!(
        nats.client_session("alice", "a", "")
            .last()
            .map(String::as_str),
        Some("PONG")
    );
    assert_ne!(
        nats.client_session("bob", "b", "")
            .last()
            .map(String::as_str),
        Some("PONG")
    );
    let before = config_load_time(&nats);

    // The kubelet's atomic writer: new directory, new `..data` renamed over the old one.
    write_version(
        "..2026_01_01_00_05_00.000000002",
        200000,
        "    {user: alice, password: a}\n    {user: bob, password: b}\n",
    );
    std::os::unix::fs::symlink("..2026_01_01_00_05_00.000000002", vol.join("..data_tmp"))
        .expect("..data_tmp");
    let swapped = Instant::now();
    std::fs::rename(vol.join("..data_tmp"), vol.join("..data")).expect("swap");
    std::fs::remove_dir_all(vol.join("..2026_01_01_00_00_00.000000001")).expect("old dir");

    wait_for(
        "max_payload 200000 after the swap",
        || format!("{}\n{}", reloader.log_text(), nats.log_text()),
        || Some(varz(&nats)).filter(|v| v["max_payload"] == 200000),
    );
    eprintln!(
        "symlink swap to reload observed in {:?} (--interval 100ms, --debounce 50ms)",
        swapped.elapsed()
    );
    assert_ne!(config_load_time(&nats), before);
    assert_eq!(
        nats.client_session("bob", "b", "")
            .last()
            .map(String::as_str),
        Some("PONG")
    );
    reloader.wait_ticks(5);
    assert_eq!(reloader.count(SIGNALLED), 1, "{}", reloader.log_text());
    assert_eq!(server_reloads(&nats), 1, "{}", nats.log_text());
    let log = reloader.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(SIGNALLED))
        .expect("signal line");
    assert!(
        line.contains("nats.conf") && line.contains("auth.conf"),
        "both keys named as changed: {line}"
    );
}

/// Missing files, a missing pid file, a stale pid and a restarted server (new pid):
/// logged and retried, never fatal, and the pending reload reaches the new server.
#[test]
fn survives_missing_files_stale_pids_and_server_restarts() {
    let server = newest();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("nats.conf");
    let extra = dir.path().join("extra.conf");
    let pid = dir.path().join("nats.pid");
    std::fs::write(&conf, "max_payload: 100000\ninclude ./extra.conf\n").expect("write");

    // No extra.conf and no pid file yet.
    let mut reloader = Reloader::fast(&pid, &conf, &[&extra]);
    reloader.wait_log("cannot read watched file", 1);
    reloader.wait_ticks(3);
    reloader.assert_running();
    assert_eq!(reloader.count(BASELINE), 0);
    std::fs::write(&extra, "# empty\n").expect("write");
    reloader.wait_log(BASELINE, 1);
    reloader.wait_log("recovered", 1);

    // A change with no server: the reload stays pending.
    std::fs::write(&conf, "max_payload: 150000\ninclude ./extra.conf\n").expect("write");
    reloader.wait_log("cannot read pid file", 1);
    // A stale pid: a process that has exited.
    let mut gone = Command::new("true").spawn().expect("true");
    gone.wait().expect("wait");
    std::fs::write(&pid, format!("{}\n", gone.id())).expect("write");
    reloader.wait_log("no process", 1);
    reloader.assert_running();

    // The server starts (writes its pid): the pending reload reaches it.
    let first = start_server(&server, &conf, &pid);
    reloader.wait_log(SIGNALLED, 1);
    wait_for(
        "the first server to reload",
        || first.log_text(),
        || (server_reloads(&first) == 1).then_some(()),
    );

    // A file vanishes for a while (half-way through an update): no crash, no signal.
    std::fs::rename(&extra, dir.path().join("extra.conf.bak")).expect("rename");
    reloader.wait_log("cannot read watched file", 2);
    reloader.wait_ticks(3);
    reloader.assert_running();
    std::fs::write(&extra, "# empty\n").expect("restore");
    reloader.wait_log("recovered", 2);
    reloader.wait_ticks(3);
    assert_eq!(
        reloader.count(SIGNALLED),
        1,
        "same content again: no reload"
    );

    // The server restarts with a new pid: the next change reaches the new process.
    let first_pid = std::fs::read_to_string(&pid).expect("pid");
    drop(first);
    let second = start_server(&server, &conf, &pid);
    let second_pid = std::fs::read_to_string(&pid).expect("pid");
    assert_ne!(first_pid.trim(), second_pid.trim());
    let before = config_load_time(&second);
    std::fs::write(&conf, "max_payload: 250000\ninclude ./extra.conf\n").expect("write");
    wait_for(
        "the restarted server to reload",
        || format!("{}\n{}", reloader.log_text(), second.log_text()),
        || Some(varz(&second)).filter(|v| v["max_payload"] == 250000),
    );
    assert_ne!(config_load_time(&second), before);
    reloader.assert_running();
    let log = reloader.log_text();
    let last = log
        .lines()
        .rfind(|l| l.contains(SIGNALLED))
        .expect("signal line");
    assert!(
        last.contains(&format!("pid={}", second_pid.trim())),
        "{last}"
    );
}

/// SIGTERM (the kubelet stopping the pod) and SIGINT end the reloader with status 0.
#[test]
fn exits_cleanly_on_sigterm_and_sigint() {
    for sig in [rustix::process::Signal::TERM, rustix::process::Signal::INT] {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("nats.conf");
        std::fs::write(&conf, "max_payload: 100000\n").expect("write");
        let mut reloader = Reloader::fast(&dir.path().join("nats.pid"), &conf, &[]);
        reloader.wait_log(BASELINE, 1);
        let sent = Instant::now();
        reloader.signal(sig);
        let status = reloader.wait_exit();
        assert!(
            status.success(),
            "{sig:?}: {status:?}\n{}",
            reloader.log_text()
        );
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "{:?}",
            sent.elapsed()
        );
        assert!(reloader.log_text().contains("config reloader stopping"));
    }
}

/// Bad flags fail fast with a usage error, not a running loop.
#[test]
fn rejects_bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_nats-operator"))
        .args([
            "config-reloader",
            "--pid",
            "/x.pid",
            "--config",
            "/x.conf",
            "--interval",
            "0",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--interval"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = Command::new(env!("CARGO_BIN_EXE_nats-operator"))
        .args(["config-reloader", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["SIGHUP", "--watch", "--pid", "--interval", "..data"] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}
