//! The binary as users run it: `crds`, `convert` and `webhook` (queried with curl).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_nats-operator");

/// Every example file the CLI is run on: ours in both versions, and the upstream ones
/// where this machine has them (see `support::upstream_dir`).
fn example_files(test: &str) -> Vec<std::path::PathBuf> {
    let mut files = support::yaml_files(&support::repo().join("examples/v1alpha2"));
    files.extend(support::yaml_files(
        &support::repo().join("examples/v1beta1"),
    ));
    assert!(files.len() >= 22, "our examples: {files:?}");
    if let Some(dir) = support::upstream_dir(test) {
        let upstream = support::yaml_files(&dir);
        assert!(upstream.len() >= 15, "upstream examples: {upstream:?}");
        files.extend(upstream);
    }
    files
}

#[test]
fn convert_round_trips_every_example_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in example_files("convert_round_trips_every_example_file") {
        let text = std::fs::read_to_string(&file).expect("read");
        let written = nats_operator::yaml::documents(&text).expect("YAML");
        // There in the other version, and back to the file's own.
        let (there, own) = if written.iter().any(|d| d["apiVersion"] == "nats.io/v1beta1") {
            ("nats.io/v1alpha2", "nats.io/v1beta1")
        } else {
            ("nats.io/v1beta1", "nats.io/v1alpha2")
        };
        let up = Command::new(BIN)
            .args(["convert", "--to", there, "-f"])
            .arg(&file)
            .output()
            .expect("run");
        assert!(
            up.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&up.stderr)
        );
        let up_path = dir.path().join("up.yaml");
        std::fs::write(&up_path, &up.stdout).expect("write");
        let down = Command::new(BIN)
            .args(["convert", "--to", own, "-f"])
            .arg(&up_path)
            .output()
            .expect("run");
        assert!(down.status.success());
        let parse = |bytes: &[u8]| -> Vec<serde_json::Value> {
            nats_operator::yaml::documents(&String::from_utf8_lossy(bytes)).expect("YAML")
        };
        let original = written;
        let back = parse(&down.stdout);
        assert_eq!(original.len(), back.len(), "{}", file.display());
        for (o, b) in original.iter().zip(&back) {
            if o["kind"] == "NatsCluster" {
                // The typed form drops nothing the operator reads; compare semantically.
                assert_eq!(
                    support::canonical(o),
                    support::canonical(b),
                    "{}",
                    file.display()
                );
            } else {
                assert_eq!(o, b, "{}: other documents pass through", file.display());
            }
        }
        if file.ends_with("example-nats-cluster-tls.yaml") {
            let text = String::from_utf8_lossy(&up.stdout);
            assert!(
                text.contains("apiVersion: nats.io/v1beta1") && text.contains("routes:"),
                "{text}"
            );
        }
    }
}

#[test]
fn convert_reports_unreadable_input() {
    let out = Command::new(BIN)
        .args([
            "convert",
            "--to",
            "nats.io/v1beta1",
            "-f",
            "/nonexistent.yaml",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent.yaml"));
    let out = Command::new(BIN)
        .args(["convert", "--to", "nats.io/v2", "-f", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
}

#[test]
fn crds_prints_both_definitions() {
    let out = Command::new(BIN).arg("crds").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("name: natsclusters.nats.io")
            && text.contains("name: natsserviceroles.nats.io")
    );
}

#[test]
fn webhook_serves_a_review_to_curl_trusting_only_the_generated_ca() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is required for this test (apt-get install curl)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut child = Command::new(BIN)
        .args([
            "webhook",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cert-dir",
        ])
        .arg(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let ca = dir.path().join("ca.crt");
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&ca)
            .args(args)
            .output()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(o) = curl(&[&format!("https://localhost:{port}/readyz")])
            && o.status.success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "webhook did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let review = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"nats.io","version":"v1alpha2","kind":"NatsCluster"},"resource":{"group":"nats.io","version":"v1alpha2","resource":"natsclusters"},"name":"x","namespace":"d","operation":"CREATE","userInfo":{"username":"a"},"object":{"apiVersion":"nats.io/v1alpha2","kind":"NatsCluster","metadata":{"name":"x"},"spec":{"size":-1}}}}"#;
    let out = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        review,
        &format!("https://127.0.0.1:{port}/validate?timeout=10s"),
    ])
    .expect("curl");
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().expect("wait");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(body["response"]["uid"], "u1");
    assert_eq!(
        body["response"]["status"]["details"]["causes"][0]["field"],
        "spec.size"
    );
    assert!(
        status.success(),
        "SIGTERM must end the server cleanly: {status:?}"
    );
}

#[test]
fn render_works_on_every_example() {
    for file in example_files("render_works_on_every_example") {
        let out = Command::new(BIN)
            .args(["render", "-f"])
            .arg(&file)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let input = std::fs::read_to_string(&file).expect("read");
        let clusters = input.matches("kind: NatsCluster").count()
            + input.matches("kind: \"NatsCluster\"").count();
        // One config Secret per cluster, or the reason the operator would create
        // nothing (a referenced Secret missing from the file, as the operator waits).
        assert_eq!(
            text.matches("\nkind: Secret").count()
                + text
                    .matches(": the operator creates nothing until spec.")
                    .count(),
            clusters,
            "{}: one config Secret per cluster:\n{text}",
            file.display()
        );
        if text.contains("\nkind: Secret") {
            assert!(text.contains("nats.conf: |"), "{}", file.display());
        }
    }
    let out = Command::new(BIN)
        .args(["render", "-f"])
        .arg(support::repo().join("examples/v1beta1/tls.yaml"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("\nkind: Pod\n").count(), 3);
    assert!(text.contains("nats://nats-tls-3.nats-tls-mgmt.default.svc:6222"));
}
