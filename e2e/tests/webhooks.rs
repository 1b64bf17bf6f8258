//! The operator's API through a real kube-apiserver, driven with kubectl as a user would:
//! validation (native `is invalid` errors with field paths), defaulting written into the
//! object, conversion through the apiserver's v1beta1 storage path for every upstream
//! example, and kubectl's server-side apply, server dry run, scale, explain and printer
//! columns.
//!
//! Each test works in its own namespace. The last test (`zz_...`) prints the apiserver's own
//! measurements of our webhooks' latency.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nats_operator::api::admission::default_object;
use nats_operator::api::convert::{BETA_RESIDUAL_ANNOTATION, convert_object};
use nats_operator::api::references::{Problem, ReferenceWarning};
use nats_operator_e2e::fixtures::{
    applicable_documents, example_files, examples_dir, kind_and_name, our_examples_dir, yaml_files,
};
use nats_operator_e2e::scenario::{scenario, wait_for_other_scenarios};
use nats_operator_e2e::{KubectlRun, NatsOperator, TestCluster, TestNamespace, WebhookLatencies};
use serde_json::Value;

const DEPRECATION: &str =
    "Warning: nats.io/v1alpha2 NatsCluster is deprecated; use nats.io/v1beta1 NatsCluster";

/// The shared cluster with the operator's API installed, or `None` to skip.
async fn setup() -> Result<Option<&'static TestCluster>> {
    Ok(NatsOperator::shared().await?.map(NatsOperator::cluster))
}

fn write(dir: &Path, file: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// `kubectl get natsclusters.nats.io <name>` says NotFound.
fn assert_not_stored(cluster: &TestCluster, ns: &str, name: &str) -> Result<()> {
    let run = cluster.kubectl_run(&["get", "natsclusters.nats.io", name, "-n", ns])?;
    run.assert_failure().assert_stderr_contains(&format!(
        "Error from server (NotFound): natsclusters.nats.io \"{name}\" not found"
    ));
    Ok(())
}

/// Asserts the native rendering of an `Invalid` denial for `name` naming `field`.
#[track_caller]
fn assert_invalid(run: &KubectlRun, name: &str, field: &str) {
    run.assert_failure()
        .assert_stderr_contains(&format!("The NatsCluster \"{name}\" is invalid:"))
        .assert_stderr_contains(field);
}

struct InvalidCase {
    name: &'static str,
    manifest: String,
    field: &'static str,
}

fn v1alpha2(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

#[tokio::test]
async fn invalid_natsclusters_are_rejected_with_field_paths_and_not_stored() -> Result<()> {
    let _s = scenario();
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let ns = TestNamespace::create(cluster, "e2e-invalid").await?;
    let dir = tempfile::tempdir()?;
    let cases = [
        InvalidCase {
            name: "negative-size",
            manifest: v1alpha2("negative-size", "  size: -1\n"),
            field: "spec.size",
        },
        InvalidCase {
            name: "bad-version",
            manifest: v1alpha2("bad-version", "  size: 3\n  version: \"two.ten\"\n"),
            field: "spec.version",
        },
        InvalidCase {
            name: "gateway-tls-without-gateway",
            manifest: v1alpha2(
                "gateway-tls-without-gateway",
                "  size: 3\n  tls:\n    gatewaySecret: gateway-tls\n",
            ),
            field: "spec.tls.gatewaySecret",
        },
        InvalidCase {
            name: "route-and-cluster",
            manifest: v1alpha2(
                "route-and-cluster",
                "  size: 3\n  extraRoutes:\n  - cluster: other\n    route: nats://other:6222\n",
            ),
            field: "spec.extraRoutes[0]",
        },
        InvalidCase {
            name: "beta-negative-size",
            manifest: "apiVersion: nats.io/v1beta1\nkind: NatsCluster\nmetadata:\n  \
                       name: beta-negative-size\nspec:\n  size: -3\n"
                .to_string(),
            field: "spec.size",
        },
    ];
    for case in &cases {
        let file = write(dir.path(), &format!("{}.yaml", case.name), &case.manifest)?;
        let run = cluster.kubectl_run(&["apply", "-n", ns.name(), "-f", path_str(&file)])?;
        assert_invalid(&run, case.name, case.field);
        assert_not_stored(cluster, ns.name(), case.name)?;
    }

    // The upstream example itself: unknown cipher suite and curve.
    if let Some(upstream) = examples_dir("invalid_natsclusters_are_rejected (upstream cipher)") {
        let cipher = upstream.join("example-custom-cipher.yaml");
        let run = cluster.kubectl_run(&["apply", "-n", ns.name(), "-f", path_str(&cipher)])?;
        assert_invalid(&run, "nats-ciphers", "spec.tls.cipherSuites[0]");
        run.assert_stderr_contains("spec.tls.curvePreferences[0]");
        assert_not_stored(cluster, ns.name(), "nats-ciphers")?;
    }

    // Several problems are reported at once, one `* field: message` line each.
    let file = write(
        dir.path(),
        "many.yaml",
        &v1alpha2(
            "many",
            "  size: 3\n  version: \"x\"\n  tls:\n    gatewaySecret: gw\n",
        ),
    )?;
    let run = cluster.kubectl_run(&["apply", "-n", ns.name(), "-f", path_str(&file)])?;
    assert_invalid(&run, "many", "* spec.version: Invalid value: \"x\"");
    run.assert_stderr_contains("* spec.tls.gatewaySecret: Forbidden");
    assert_not_stored(cluster, ns.name(), "many")?;
    Ok(())
}

/// The JetStream rules as kubectl shows them: risky choices are warnings on an object
/// that is stored; what would lose data or cannot run is a native `is invalid` error
/// naming the field, and nothing changes.
#[tokio::test]
async fn jetstream_rules_warn_on_risk_and_deny_data_loss() -> Result<()> {
    let _s = scenario();
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let ns = TestNamespace::create(cluster, "e2e-jetstream").await?;
    let n = ns.name();
    let beta = |name: &str, spec: &str| {
        format!(
            "apiVersion: nats.io/v1beta1\nkind: NatsCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
        )
    };
    let js = |size: u32, volume: &str, class: &str| {
        beta(
            "js",
            &format!(
                "  size: {size}\n  jetstream:\n    memoryStorage: 900Mi\n    fileStorage:\n      \
                 size: {volume}\n      storageClassName: {class}\n  pod:\n    resources:\n      \
                 limits:\n        memory: 1Gi\n"
            ),
        )
    };
    let apply =
        |manifest: &str| cluster.kubectl_run_stdin(&["apply", "-n", n, "-f", "-"], Some(manifest));

    // Risky, not wrong: an even size, a memory store near the container's limit.
    apply(&js(4, "10Gi", "fast"))?
        .assert_success()
        .assert_stdout_contains("natscluster.nats.io/js created")
        .assert_stderr_contains("Warning: spec.size 4 is even: JetStream needs a majority")
        .assert_stderr_contains(
            "Warning: spec.jetstream.memoryStorage is over 75% of the nats container's memory limit",
        );
    // Shrinking the volumes and changing their class are refused.
    let run = apply(&js(3, "5Gi", "fast"))?;
    assert_invalid(
        &run,
        "js",
        "spec.jetstream.fileStorage.size: Forbidden: volumes can grow but never shrink",
    );
    let run = apply(&js(3, "10Gi", "slow"))?;
    assert_invalid(&run, "js", "spec.jetstream.fileStorage.storageClassName");
    run.assert_stderr_contains("cannot change");
    let stored = cluster
        .kubectl_run(&[
            "get",
            "natsclusters.v1beta1.nats.io",
            "js",
            "-n",
            n,
            "-o",
            "json",
        ])?
        .assert_success()
        .json()?;
    assert_eq!(
        stored["spec"]["jetstream"]["fileStorage"]["size"], "10Gi",
        "{stored:#}"
    );
    assert_eq!(
        stored["spec"]["jetstream"]["fileStorage"]["storageClassName"],
        "fast"
    );
    // Growing is fine; an odd size no longer warns about it.
    let run = apply(&js(3, "20Gi", "fast"))?;
    run.assert_success();
    assert!(!run.stderr.contains("is even"), "{run}");

    // What cannot run: JetStream on a server before 2.2, MQTT without JetStream.
    let run = apply(&beta(
        "old",
        "  size: 3\n  version: 2.1.9\n  jetstream: {}\n",
    ))?;
    assert_invalid(
        &run,
        "old",
        "spec.version: Invalid value: \"2.1.9\": JetStream needs NATS server 2.2.0 or newer",
    );
    assert_not_stored(cluster, n, "old")?;
    let run = apply(&beta("mqtt", "  size: 3\n  mqtt: {}\n"))?;
    assert_invalid(
        &run,
        "mqtt",
        "spec.jetstream: Required value: MQTT keeps its sessions",
    );
    assert_not_stored(cluster, n, "mqtt")?;
    Ok(())
}

#[tokio::test]
async fn minimal_v1alpha2_natscluster_gets_defaults_written() -> Result<()> {
    let _s = scenario();
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let ns = TestNamespace::create(cluster, "e2e-defaults").await?;
    let dir = tempfile::tempdir()?;
    let file = write(
        dir.path(),
        "minimal.yaml",
        &v1alpha2("minimal", "  size: 3\n"),
    )?;
    let run = cluster.kubectl_run(&["apply", "-n", ns.name(), "-f", path_str(&file)])?;
    run.assert_success()
        .assert_stdout_contains("natscluster.nats.io/minimal created")
        .assert_stderr_contains(DEPRECATION);

    let run = cluster.kubectl_run(&[
        "get",
        "natsclusters.v1alpha2.nats.io",
        "minimal",
        "-n",
        ns.name(),
        "-o",
        "yaml",
    ])?;
    run.assert_success()
        .assert_stdout_contains("apiVersion: nats.io/v1alpha2")
        .assert_stdout_contains("version: 2.15.3")
        .assert_stdout_contains("serverImage: nats");
    let alpha: Value = nats_operator::yaml::from_str(&run.stdout)?;
    assert_eq!(alpha["spec"]["version"], "2.15.3", "{}", run.stdout);
    assert_eq!(alpha["spec"]["serverImage"], "nats", "{}", run.stdout);
    assert_eq!(alpha["spec"]["size"], 3, "{}", run.stdout);

    let run = cluster.kubectl_run(&[
        "get",
        "natsclusters.v1beta1.nats.io",
        "minimal",
        "-n",
        ns.name(),
        "-o",
        "json",
    ])?;
    let beta = run.assert_success().json()?;
    assert_eq!(beta["apiVersion"], "nats.io/v1beta1");
    assert_eq!(beta["spec"]["version"], "2.15.3", "{beta:#}");
    assert_eq!(beta["spec"]["image"], "nats", "{beta:#}");
    // Reading v1beta1 does not warn.
    assert!(!run.stderr.contains("deprecated"), "{run}");
    Ok(())
}

/// Whether `s` is a valid label value (so the table's label-valid entries go in labels).
fn label_value(s: &str) -> bool {
    s.len() <= 63
        && (s.is_empty()
            || (s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))))
}

/// What we print as YAML reads back through kubectl's YAML 1.1 parser exactly as written:
/// every string of the ambiguous-scalar table (`yes`, `off`, `~`, `0o17`, `1_000`,
/// `2001-12-14`, `<<`, ...) as annotations (and, where valid, labels) of a v1alpha2
/// cluster and of its member pods, through `convert` and `render`, then
/// `kubectl apply --dry-run=server`, comparing what the apiserver would store.
#[tokio::test]
async fn yaml_we_print_reads_back_through_kubectl_as_written() -> Result<()> {
    use nats_operator::yaml_stream::{convert_stream, render_stream};
    let _s = scenario();
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let ns = TestNamespace::create(cluster, "e2e-yaml").await?;
    nats_operator_e2e::natscluster::wait_for_default_service_account(&cluster.client()?, ns.name())
        .await?;
    let table = nats_operator::yaml::AMBIGUOUS;
    let annotations: serde_json::Map<String, Value> = table
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("e2e.nats.io/s{i:02}"), Value::from(*s)))
        .collect();
    let labels: serde_json::Map<String, Value> = table
        .iter()
        .enumerate()
        .filter(|(_, s)| label_value(s))
        .map(|(i, s)| (format!("s{i:02}"), Value::from(*s)))
        .collect();
    assert!(labels.len() >= 20, "{labels:?}");
    let alpha = serde_json::json!({
        "apiVersion": "nats.io/v1alpha2",
        "kind": "NatsCluster",
        "metadata": {"name": "scalars", "namespace": ns.name(), "annotations": annotations, "labels": labels},
        "spec": {"size": 1, "pod": {"annotations": annotations, "labels": labels}},
    });
    let dir = tempfile::tempdir()?;
    // What the apiserver would store for `text`, read by kubectl's own YAML parser.
    let dry_run = |file_name: &str, text: &str| -> Result<Value> {
        let file = write(dir.path(), file_name, text)?;
        cluster
            .kubectl_run(&[
                "apply",
                "--dry-run=server",
                "-n",
                ns.name(),
                "-f",
                path_str(&file),
                "-o",
                "json",
            ])?
            .assert_success()
            .json()
    };
    // JSON is YAML: the input cannot be misread; what we print is under test.
    let converted = convert_stream(&alpha.to_string(), "nats.io/v1beta1")?;
    let stored = dry_run("converted.yaml", &converted)?;
    assert_eq!(stored["apiVersion"], "nats.io/v1beta1", "{stored:#}");
    assert_eq!(stored["metadata"]["labels"], Value::Object(labels.clone()));
    for (k, v) in &annotations {
        assert_eq!(
            &stored["metadata"]["annotations"][k], v,
            "{k} in\n{converted}"
        );
        assert_eq!(
            &stored["spec"]["pod"]["annotations"][k], v,
            "{k} in\n{converted}"
        );
    }
    assert_eq!(
        stored["spec"]["pod"]["labels"],
        Value::Object(labels.clone())
    );

    let rendered = render_stream(&converted)?;
    let list = dry_run("rendered.yaml", &rendered)?;
    let pods: Vec<&Value> = list["items"]
        .as_array()
        .map(|items| items.iter().filter(|i| i["kind"] == "Pod").collect())
        .unwrap_or_default();
    assert_eq!(pods.len(), 1, "{list:#}");
    for (k, v) in &annotations {
        assert_eq!(
            &pods[0]["metadata"]["annotations"][k], v,
            "{k} in\n{rendered}"
        );
    }
    for (k, v) in &labels {
        assert_eq!(&pods[0]["metadata"]["labels"][k], v, "{k} in\n{rendered}");
    }
    Ok(())
}

/// Reference warnings (not the deprecation notice) kubectl printed.
fn reference_warnings(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("Warning: "))
        .filter(|w| !w.contains("deprecated"))
        .map(str::to_string)
        .collect()
}

/// `kubectl create --dry-run=server` of `manifest` until its reference warnings are
/// `want` (the webhook's caches see new objects a moment after they are written).
async fn wait_for_warnings(
    cluster: &TestCluster,
    ns: &str,
    manifest: &str,
    want: &[String],
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = cluster.kubectl_run_stdin(
            &["create", "--dry-run=server", "-n", ns, "-f", "-"],
            Some(manifest),
        )?;
        run.assert_success();
        let got = reference_warnings(&run.stderr);
        if got == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("reference warnings {got:#?}, want {want:#?}:\n{run}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn broken_references_are_warnings_from_the_informer_cache_in_both_versions() -> Result<()> {
    let _s = scenario();
    let Some(op) = NatsOperator::shared().await? else {
        return Ok(());
    };
    let Some(webhook) = op.webhook() else {
        eprintln!("SKIPPED: the webhook's caches are only known in process (external cluster)");
        return Ok(());
    };
    let cluster = op.cluster();
    let ns = TestNamespace::create(cluster, "e2e-refs").await?;
    let n = ns.name();
    // A TLS Secret without the key file, and a NatsCluster an extra route may name.
    cluster
        .kubectl_run(&[
            "create",
            "secret",
            "generic",
            "srv-tls",
            "-n",
            n,
            "--from-literal=ca.pem=ca",
            "--from-literal=server.pem=cert",
        ])?
        .assert_success();
    cluster
        .kubectl_run_stdin(
            &["apply", "-n", n, "-f", "-"],
            Some(&v1alpha2("peer", "  size: 1\n")),
        )?
        .assert_success();
    let alpha = v1alpha2(
        "refs",
        "  size: 1\n  tls:\n    serverSecret: srv-tls\n    routesSecret: routes-tls\n  \
         extraRoutes:\n  - cluster: peer\n  - cluster: ghost\n",
    );
    let beta = "apiVersion: nats.io/v1beta1\nkind: NatsCluster\nmetadata:\n  name: refs\nspec:\n  \
         size: 1\n  tls:\n    client:\n      secret: srv-tls\n    routes:\n      \
         secret: routes-tls\n  extraRoutes:\n  - cluster: peer\n  - cluster: ghost\n";
    // The texts as the operator words them (the namespace is left out when a warning
    // would be too long with it), with the field names of each version.
    let broken = [
        ReferenceWarning {
            path: "spec.tls.client.keyFile".into(),
            problem: Problem::MissingKey {
                secret: "srv-tls".into(),
                key: "server-key.pem".into(),
            },
        },
        ReferenceWarning {
            path: "spec.tls.routes.secret".into(),
            problem: Problem::MissingSecret {
                secret: "routes-tls".into(),
                effect: "pods will not start until it exists",
            },
        },
        ReferenceWarning {
            path: "spec.extraRoutes[1].cluster".into(),
            problem: Problem::MissingCluster {
                cluster: "ghost".into(),
            },
        },
    ];
    let warnings =
        |alpha: bool| -> Vec<String> { broken.iter().map(|w| w.message(n, alpha)).collect() };
    assert!(
        warnings(true)[0].starts_with(
            "spec.tls.serverSecretKeyFileName: Secret \"srv-tls\" has no key \"server-key.pem\""
        ),
        "{:?}",
        warnings(true)
    );
    let started = Instant::now();
    wait_for_warnings(cluster, n, &alpha, &warnings(true)).await?;
    eprintln!(
        "reference warnings after {:?} (caches synced: {})",
        started.elapsed(),
        webhook.caches_synced()
    );
    wait_for_warnings(cluster, n, beta, &warnings(false)).await?;

    // Warnings never deny: the object is stored (and the warnings printed) as well.
    let run = cluster.kubectl_run_stdin(&["apply", "-n", n, "-f", "-"], Some(beta))?;
    run.assert_success()
        .assert_stdout_contains("natscluster.nats.io/refs created")
        .assert_stderr_contains("Warning: spec.extraRoutes[1].cluster: NatsCluster \"ghost\"");

    // Once everything exists, there is nothing to say.
    cluster
        .kubectl_run(&[
            "create",
            "secret",
            "generic",
            "routes-tls",
            "-n",
            n,
            "--from-literal=ca.pem=ca",
            "--from-literal=route.pem=c",
            "--from-literal=route-key.pem=k",
        ])?
        .assert_success();
    cluster
        .kubectl_run_stdin(
            &["apply", "-n", n, "-f", "-"],
            Some(&v1alpha2("ghost", "  size: 1\n")),
        )?
        .assert_success();
    cluster
        .kubectl_run_stdin(
            &["apply", "-n", n, "-f", "-"],
            Some(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: srv-tls\nstringData:\n  \
                 ca.pem: ca\n  server.pem: cert\n  server-key.pem: key\n",
            ),
        )?
        .assert_success();
    let alpha_renamed = alpha.replace("name: refs", "name: refs-2");
    wait_for_warnings(cluster, n, &alpha_renamed, &[]).await?;
    Ok(())
}

/// What an upstream example's document must read back as, after the mutating webhook.
fn expected_after_defaulting(doc: &Value) -> Value {
    default_object(doc, None).0
}

/// JSON numbers compared by value: `5.0` from our serializer and `5` from the apiserver are
/// the same number.
fn normalize_numbers(v: &Value) -> Value {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(normalize_numbers).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), normalize_numbers(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn annotations(obj: &Value) -> Vec<String> {
    obj["metadata"]["annotations"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_example_applies_and_reads_back_in_both_versions() -> Result<()> {
    let _s = scenario();
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let mut applied = Vec::new();
    let mut skipped = Vec::new();
    let mut objects = 0;
    let upstream = example_files("every_example_applies_and_reads_back_in_both_versions")?;
    let mut ours = yaml_files(&our_examples_dir("v1alpha2"))?;
    ours.extend(yaml_files(&our_examples_dir("v1beta1"))?);
    let expected = ours.len() + if upstream.is_empty() { 0 } else { 12 };
    assert!(ours.len() >= 22, "our examples: {ours:?}");
    for file in upstream.iter().chain(&ours) {
        let file_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let docs = applicable_documents(file)?;
        let nats_docs: Vec<&Value> = docs
            .iter()
            .filter(|d| matches!(d["kind"].as_str(), Some("NatsCluster" | "NatsServiceRole")))
            .collect();
        if nats_docs.is_empty() {
            skipped.push(file_name);
            continue;
        }
        let ns = TestNamespace::create(cluster, "e2e-example").await?;

        if file_name == "example-custom-cipher.yaml" {
            // Covered in detail above; nats-server would crash-loop on it.
            let run = cluster.kubectl_run(&["apply", "-n", ns.name(), "-f", path_str(file)])?;
            assert_invalid(&run, "nats-ciphers", "spec.tls.cipherSuites[0]");
            assert_not_stored(cluster, ns.name(), "nats-ciphers")?;
            applied.push(format!("{file_name} (denied)"));
            continue;
        }

        // Only our kinds and harmless Secrets/ServiceAccounts, without hard-coded namespaces.
        let mut stream = String::new();
        for d in &docs {
            stream.push_str("---\n");
            stream.push_str(&nats_operator::yaml::to_string(d)?);
        }
        let filtered = write(dir.path(), &file_name, &stream)?;
        let run = cluster.kubectl_run(&["apply", "-n", ns.name(), "-f", path_str(&filtered)])?;
        run.assert_success();
        for d in &nats_docs {
            let (kind, name) = kind_and_name(d);
            run.assert_stdout_contains(&format!("{}.nats.io/{name}", kind.to_lowercase()));
        }
        if nats_docs
            .iter()
            .any(|d| d["kind"] == "NatsCluster" && d["apiVersion"] == "nats.io/v1alpha2")
        {
            run.assert_stderr_contains(DEPRECATION);
        }

        for d in nats_docs {
            let (kind, name) = kind_and_name(d);
            let plural = match kind.as_str() {
                "NatsCluster" => "natsclusters",
                _ => "natsserviceroles",
            };
            // Defaulted in the version it was written in, then seen as v1alpha2.
            let expected_alpha = convert_object(expected_after_defaulting(d), "nats.io/v1alpha2")
                .context("converting the expected object")?;
            let expected_beta = convert_object(expected_alpha.clone(), "nats.io/v1beta1")
                .with_context(|| format!("converting {file_name} {kind}/{name}"))?;

            // v1beta1: the storage version, converted by our webhook on the way in.
            let run = cluster.kubectl_run(&[
                "get",
                &format!("{plural}.v1beta1.nats.io"),
                &name,
                "-n",
                ns.name(),
                "-o",
                "json",
            ])?;
            let beta = run.assert_success().json()?;
            assert_eq!(
                beta["apiVersion"], "nats.io/v1beta1",
                "{file_name}: {beta:#}"
            );
            assert_eq!(
                normalize_numbers(&beta["spec"]),
                normalize_numbers(&expected_beta["spec"]),
                "{file_name} {kind}/{name}: v1beta1 spec differs from the converted, defaulted document"
            );

            // v1alpha2: converted back by our webhook; identical to what was applied, defaulted.
            let run = cluster.kubectl_run(&[
                "get",
                &format!("{plural}.v1alpha2.nats.io"),
                &name,
                "-n",
                ns.name(),
                "-o",
                "json",
            ])?;
            let alpha = run.assert_success().json()?;
            assert_eq!(
                alpha["apiVersion"], "nats.io/v1alpha2",
                "{file_name}: {alpha:#}"
            );
            assert_eq!(
                normalize_numbers(&alpha["spec"]),
                normalize_numbers(&expected_alpha["spec"]),
                "{file_name} {kind}/{name}: v1alpha2 spec differs from the applied document after defaulting"
            );
            if kind == "NatsCluster" {
                run.assert_stderr_contains(DEPRECATION);
            }
            // Only examples of v1beta1-only features carry a residual in v1alpha2 (as
            // conversion writes it); nothing else gains one on the way through storage.
            let written = expected_alpha["metadata"]["annotations"]
                .get(BETA_RESIDUAL_ANNOTATION)
                .is_some();
            for obj in [&alpha, &beta] {
                let keys = annotations(obj);
                assert!(
                    written || !keys.iter().any(|k| k.ends_with("-residual")),
                    "{file_name} {kind}/{name}: residual annotation in {keys:?}"
                );
            }
            objects += 1;
        }
        applied.push(file_name);
    }
    eprintln!(
        "examples: {} files applied/denied ({objects} NATS objects read back in both versions) \
         in {:?}; skipped (no NatsCluster/NatsServiceRole): {skipped:?}",
        applied.len(),
        started.elapsed()
    );
    assert!(
        applied.len() >= expected,
        "too few examples applied: {applied:?}"
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_and_server_dry_run() -> Result<()> {
    let _s = scenario();
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let ns = TestNamespace::create(cluster, "e2e-ssa").await?;
    let n = ns.name();
    let dir = tempfile::tempdir()?;
    let good = write(dir.path(), "ssa.yaml", &v1alpha2("ssa", "  size: 3\n"))?;
    let bad = write(
        dir.path(),
        "ssa-bad.yaml",
        &v1alpha2("ssa-bad", "  size: 3\n  tls:\n    gatewaySecret: gw\n"),
    )?;

    // Server dry run: validated, defaulted, converted, but nothing stored.
    let run =
        cluster.kubectl_run(&["apply", "--dry-run=server", "-n", n, "-f", path_str(&good)])?;
    run.assert_success()
        .assert_stdout_contains("natscluster.nats.io/ssa created (server dry run)");
    assert_not_stored(cluster, n, "ssa")?;
    let run = cluster.kubectl_run(&[
        "apply",
        "--dry-run=server",
        "-n",
        n,
        "-f",
        path_str(&good),
        "-o",
        "json",
    ])?;
    let dry = run.assert_success().json()?;
    assert_eq!(
        dry["spec"]["version"], "2.15.3",
        "defaulted in dry run: {dry:#}"
    );
    assert_not_stored(cluster, n, "ssa")?;
    let run = cluster.kubectl_run(&["apply", "--dry-run=server", "-n", n, "-f", path_str(&bad)])?;
    assert_invalid(&run, "ssa-bad", "spec.tls.gatewaySecret");
    assert_not_stored(cluster, n, "ssa-bad")?;

    // Server-side apply: created, idempotent on rerun, invalid rejected natively.
    let run = cluster.kubectl_run(&["apply", "--server-side", "-n", n, "-f", path_str(&good)])?;
    run.assert_success()
        .assert_stdout_contains("natscluster.nats.io/ssa serverside-applied")
        .assert_stderr_contains(DEPRECATION);
    let run = cluster.kubectl_run(&["apply", "--server-side", "-n", n, "-f", path_str(&good)])?;
    run.assert_success()
        .assert_stdout_contains("natscluster.nats.io/ssa serverside-applied");
    let run = cluster.kubectl_run(&["apply", "--server-side", "-n", n, "-f", path_str(&bad)])?;
    assert_invalid(&run, "ssa-bad", "spec.tls.gatewaySecret");
    assert_not_stored(cluster, n, "ssa-bad")?;

    // An invalid change to the stored object is rejected; the object keeps its spec.
    let worse = write(
        dir.path(),
        "ssa-worse.yaml",
        &v1alpha2("ssa", "  size: -5\n"),
    )?;
    let run = cluster.kubectl_run(&["apply", "--server-side", "-n", n, "-f", path_str(&worse)])?;
    assert_invalid(&run, "ssa", "spec.size");
    let run = cluster.kubectl_run(&[
        "get",
        "natsclusters.v1beta1.nats.io",
        "ssa",
        "-n",
        n,
        "-o",
        "jsonpath={.spec.size}",
    ])?;
    assert_eq!(run.assert_success().stdout.trim(), "3");

    // The managed fields carry the manager kubectl uses for server-side apply.
    let run = cluster.kubectl_run(&[
        "get",
        "natsclusters.v1beta1.nats.io",
        "ssa",
        "-n",
        n,
        "-o",
        "json",
        "--show-managed-fields",
    ])?;
    let obj = run.assert_success().json()?;
    let managers: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
    Ok(())
}

#[tokio::test]
async fn scale_explain_and_printer_columns() -> Result<()> {
    let _s = scenario();
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let ns = TestNamespace::create(cluster, "e2e-kubectl").await?;
    let n = ns.name();
    let dir = tempfile::tempdir()?;
    let file = write(dir.path(), "x.yaml", &v1alpha2("x", "  size: 3\n"))?;
    cluster
        .kubectl_run(&["apply", "-n", n, "-f", path_str(&file)])?
        .assert_success();

    // The scale subresource.
    let run = cluster.kubectl_run(&["scale", "natscluster", "x", "--replicas=5", "-n", n])?;
    run.assert_success()
        .assert_stdout_contains("natscluster.nats.io/x scaled");
    for version in ["v1beta1", "v1alpha2"] {
        let run = cluster.kubectl_run(&[
            "get",
            &format!("natsclusters.{version}.nats.io"),
            "x",
            "-n",
            n,
            "-o",
            "jsonpath={.spec.size}",
        ])?;
        assert_eq!(run.assert_success().stdout.trim(), "5", "{version}");
    }
    let run = cluster.kubectl_run(&[
        "get",
        "natscluster",
        "x",
        "-n",
        n,
        "--subresource=scale",
        "-o",
        "jsonpath={.spec.replicas}",
    ])?;
    assert_eq!(run.assert_success().stdout.trim(), "5");

    // The structural schema with descriptions.
    let run = cluster.kubectl_run(&["explain", "natsclusters.spec"])?;
    run.assert_success()
        .assert_stdout_contains("KIND:       NatsCluster")
        .assert_stdout_contains("FIELDS:")
        .assert_stdout_contains("tls\t");
    let run = cluster.kubectl_run(&["explain", "natsclusters.spec.size"])?;
    run.assert_success()
        .assert_stdout_contains("FIELD: size <integer>")
        .assert_stdout_contains("DESCRIPTION:");
    let described = run
        .stdout
        .split("DESCRIPTION:")
        .nth(1)
        .map(str::trim)
        .unwrap_or_default();
    assert!(described.len() > 10, "no description for spec.size:\n{run}");

    // Printer columns, with the short name.
    let run = cluster.kubectl_run(&["get", "nats", "-n", n])?;
    run.assert_success();
    let header = run.stdout.lines().next().unwrap_or_default();
    for col in ["NAME", "SIZE", "VERSION"] {
        assert!(header.contains(col), "no {col} column: {header:?}");
    }
    assert!(
        header.contains("READY") || header.contains("AGE"),
        "header {header:?}"
    );
    // `nats` is both the short name and a category of both kinds; kubectl expands the
    // category, so rows are named `natscluster.nats.io/x`.
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("x ") || l.starts_with("natscluster.nats.io/x "))
        .unwrap_or_default();
    // v1beta1 columns: VERSION and READY come from status (no controller runs here).
    assert!(row.contains(" 5 "), "row {row:?}");
    // The v1alpha2 columns show the spec's (defaulted) version.
    let run = cluster.kubectl_run(&["get", "natsclusters.v1alpha2.nats.io", "-n", n])?;
    let mut lines = run.assert_success().stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.contains("SIZE") && header.contains("VERSION"),
        "{header:?}"
    );
    let row = lines.find(|l| l.starts_with("x ")).unwrap_or_default();
    assert!(row.contains(" 5 ") && row.contains("2.15.3"), "row {row:?}");
    Ok(())
}

/// Runs last in this binary (libtest starts tests in name order): prints what the apiserver
/// measured of our webhooks during the scenarios above.
#[tokio::test]
async fn zz_apiserver_measured_webhook_latency() -> Result<()> {
    let Some(cluster) = setup().await? else {
        return Ok(());
    };
    let all_done = wait_for_other_scenarios(Duration::from_secs(600)).await;
    let latencies = WebhookLatencies::read(cluster).await?;
    // Straight to the stderr handle, past libtest's capture: CI logs show it on success too.
    let _ = writeln!(
        std::io::stderr(),
        "\n=== webhooks as the apiserver saw them (tests/webhooks.rs{}) ===\n{latencies}",
        if all_done {
            ""
        } else {
            ", other tests still running"
        }
    );
    assert!(
        latencies.admission_count("validate.nats.io") > 0.0,
        "the apiserver never called the validating webhook:\n{latencies}"
    );
    assert!(
        latencies.admission_count("default.nats.io") > 0.0,
        "the apiserver never called the mutating webhook:\n{latencies}"
    );
    assert!(
        latencies.conversion_count() > 0.0,
        "the apiserver never called the conversion webhook:\n{latencies}"
    );
    Ok(())
}
