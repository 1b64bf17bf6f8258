//! Proves the test control plane is a real Kubernetes: versions, namespaces, garbage
//! collection, TokenRequest, webhooks on 127.0.0.1, metrics, clean stop.
//!
//! All tests but the last share one control plane (`TestCluster::shared`), each in its own
//! namespace.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use nats_operator_e2e::{TestCluster, TestNamespace};

const WAIT: Duration = Duration::from_secs(60);

fn configmap(name: &str, ns: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..ConfigMap::default()
    }
}

#[tokio::test]
async fn control_plane_is_ready_and_reports_1_36() -> Result<()> {
    let cluster = TestCluster::shared().await?;
    if let Some(info) = cluster.ready_info() {
        assert!(info.apiserver.starts_with("https://127.0.0.1:"), "{info:?}");
        assert!(info.etcd.starts_with("http://127.0.0.1:"), "{info:?}");
        assert_eq!(info.version, "v1.36.3");
        assert!(info.kubeconfig.is_file());
        eprintln!(
            "kube-testplane pid {} READY after {:?} (in-process {} ms), log {:?}",
            info.pid,
            cluster.time_to_ready().unwrap_or_default(),
            info.startup_millis,
            cluster.log_path()
        );
    }
    assert_eq!(cluster.server_version().major, "1");

    let mut kubectl = match cluster.try_kubectl() {
        Ok(k) => k,
        // A local control plane always comes with its kubectl; an external one may not.
        Err(e) if cluster.is_external() => {
            eprintln!("kubectl check skipped: {e:#}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let out = kubectl
        .args(["version", "-o", "json"])
        .output()
        .context("running kubectl")?;
    assert!(out.status.success(), "kubectl version: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let server = v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    assert!(server.starts_with("v1.36."), "server version {server}");
    let client = v["clientVersion"]["minor"].as_str().unwrap_or_default();
    eprintln!("kubectl client 1.{client}, server {server}");

    let readyz = cluster.get_text("/readyz").await?;
    assert_eq!(readyz.trim(), "ok");
    Ok(())
}

#[tokio::test]
async fn namespaces_are_created_and_really_deleted() -> Result<()> {
    let cluster = TestCluster::shared().await?;
    let ns = TestNamespace::create(cluster, "e2e-ns").await?;
    let client = cluster.client()?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(ns.name()).await?.is_some());

    // Content is removed with the namespace.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    cms.create(&PostParams::default(), &configmap("content", ns.name()))
        .await?;

    if cluster.has_controller("serviceaccount-controller") {
        let sas: Api<ServiceAccount> = Api::namespaced(client, ns.name());
        tokio::time::timeout(
            WAIT,
            await_condition(sas, "default", conditions::is_created()),
        )
        .await
        .context("no default ServiceAccount")??;
    }
    if cluster.has_controller("namespace-controller") {
        let name = ns.name().to_string();
        let started = Instant::now();
        ns.delete(WAIT).await?;
        eprintln!("namespace {name} gone after {:?}", started.elapsed());
        assert!(namespaces.get_opt(&name).await?.is_none());
    }
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_children() -> Result<()> {
    let cluster = TestCluster::shared().await?;
    if !cluster.has_controller("garbage-collector-controller") {
        eprintln!("skipped: no garbage collector");
        return Ok(());
    }
    let ns = TestNamespace::create(cluster, "e2e-gc").await?;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client()?, ns.name());
    let owner = cms
        .create(&PostParams::default(), &configmap("owner", ns.name()))
        .await?;
    let mut child = configmap("child", ns.name());
    child.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().context("owner has no uid")?,
        ..OwnerReference::default()
    }]);
    let child = cms.create(&PostParams::default(), &child).await?;
    let child_uid = child.metadata.uid.context("child has no uid")?;

    let started = Instant::now();
    cms.delete("owner", &DeleteParams::background()).await?;
    tokio::time::timeout(
        WAIT,
        await_condition(cms.clone(), "child", conditions::is_deleted(&child_uid)),
    )
    .await
    .context("child not garbage-collected")??;
    eprintln!(
        "child collected {:?} after owner deletion",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn token_request_returns_a_token_the_apiserver_accepts() -> Result<()> {
    let cluster = TestCluster::shared().await?;
    let ns = TestNamespace::create(cluster, "e2e-token").await?;
    let client = cluster.client()?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns.name());
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("nats".into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    sas.create(&PostParams::default(), &sa).await?;

    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued = sas
        .create_token_request("nats", &PostParams::default(), &request)
        .await?;
    let token = issued
        .status
        .and_then(|s| s.token)
        .context("TokenRequest returned no token")?;
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");

    // The apiserver authenticates the bound token as the ServiceAccount.
    let reviews: Api<TokenReview> = Api::all(client);
    let review = reviews
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token,
                    ..TokenReviewSpec::default()
                },
                ..TokenReview::default()
            },
        )
        .await?;
    let rs = review.status.context("TokenReview without status")?;
    assert_eq!(rs.authenticated, Some(true), "{rs:?}");
    let user = rs.user.and_then(|u| u.username).unwrap_or_default();
    assert_eq!(user, format!("system:serviceaccount:{}:nats", ns.name()));
    Ok(())
}

#[tokio::test]
async fn admission_webhooks_at_loopback_urls_are_called() -> Result<()> {
    let cluster = TestCluster::shared().await?;
    let ns = TestNamespace::create(cluster, "e2e-webhook").await?;
    let client = cluster.client()?;

    // A port with nothing behind it: the apiserver's call must fail with "connection refused",
    // which proves it dials https://127.0.0.1:<port> directly (no proxy, no egress selector).
    let port = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let name = format!("{}-deny", ns.name());
    let webhook = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "deny.e2e.nats.io".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            failure_policy: Some("Fail".into()),
            timeout_seconds: Some(5),
            client_config: WebhookClientConfig {
                url: Some(format!("https://127.0.0.1:{port}/validate")),
                ..WebhookClientConfig::default()
            },
            namespace_selector: Some(LabelSelector {
                match_labels: Some(
                    [(
                        "kubernetes.io/metadata.name".to_string(),
                        ns.name().to_string(),
                    )]
                    .into(),
                ),
                ..LabelSelector::default()
            }),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["".into()]),
                api_versions: Some(vec!["v1".into()]),
                operations: Some(vec!["CREATE".into()]),
                resources: Some(vec!["configmaps".into()]),
                scope: Some("Namespaced".into()),
            }]),
            ..ValidatingWebhook::default()
        }]),
    };
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    configs.create(&PostParams::default(), &webhook).await?;

    let cms: Api<ConfigMap> = Api::namespaced(client, ns.name());
    let outcome = async {
        // The apiserver picks configurations up through an informer: poll.
        let deadline = Instant::now() + WAIT;
        let mut n = 0;
        loop {
            n += 1;
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            match cms
                .create(&pp, &configmap(&format!("cm-{n}"), ns.name()))
                .await
            {
                Err(kube::Error::Api(s)) if s.message.contains("failed calling webhook") => {
                    return Ok(s.message);
                }
                Err(e) => bail!("unexpected error: {e}"),
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(_) => bail!("webhook never called within {WAIT:?}"),
            }
        }
    }
    .await;
    configs.delete(&name, &DeleteParams::default()).await?;
    let message = outcome?;
    assert!(
        message.contains(&format!("127.0.0.1:{port}")) && message.contains("connection refused"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn apiserver_metrics_are_served() -> Result<()> {
    let cluster = TestCluster::shared().await?;
    let metrics = cluster.metrics_text().await?;
    if let Some(peak) = cluster.peak_rss_bytes() {
        eprintln!(
            "peak RSS of the shared control plane so far: {} MiB",
            peak >> 20
        );
    }
    assert!(
        metrics.contains("apiserver_request_total"),
        "no apiserver_request_total in {} bytes",
        metrics.len()
    );
    Ok(())
}

#[tokio::test]
async fn stop_ends_the_process_and_closes_its_ports() -> Result<()> {
    if std::env::var_os("E2E_KUBECONFIG").is_some() || std::env::var_os("KUBECONFIG").is_some() {
        eprintln!("skipped: external cluster configured");
        return Ok(());
    }
    let cluster = TestCluster::start_local().await?;
    let info = cluster.ready_info().context("local cluster")?.clone();
    let addrs: Vec<SocketAddr> = [&info.apiserver, &info.etcd]
        .iter()
        .map(|u| {
            let hostport = u.rsplit("//").next().unwrap_or_default();
            hostport.parse().with_context(|| format!("address of {u}"))
        })
        .collect::<Result<_>>()?;
    for a in &addrs {
        TcpStream::connect_timeout(a, Duration::from_secs(2))
            .with_context(|| format!("{a} should accept before stop"))?;
    }
    assert!(info.data_dir.is_dir());

    let peak = cluster.peak_rss_bytes().context("VmHWM")?;
    eprintln!("peak RSS of a fresh control plane: {} MiB", peak >> 20);
    assert!(peak > 0);

    let started = Instant::now();
    let how = cluster.stop().await?;
    eprintln!("stopped in {:?}: {how}", started.elapsed());
    assert!(how.starts_with("exited after SIGTERM"), "{how}");
    assert!(how.contains("exit status: 0"), "{how}");

    let proc_dir = format!("/proc/{}", info.pid);
    assert!(
        !std::path::Path::new(&proc_dir).exists(),
        "process still exists"
    );
    for a in &addrs {
        assert!(
            TcpStream::connect_timeout(a, Duration::from_secs(2)).is_err(),
            "{a} still accepts connections after stop"
        );
    }
    assert!(!info.data_dir.exists(), "data dir left behind");
    assert_eq!(cluster.stop().await?, "already stopped");
    Ok(())
}
