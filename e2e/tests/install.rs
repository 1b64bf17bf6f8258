//! The install test: `manifests/base` applied to a real control plane with `kubectl apply
//! --server-side -k`, as the README tells users, and the operator run *from* it. The control
//! plane's deployment and replicaset controllers make the Deployment's two pods; a real node
//! ([`RealNode`]: kubelet, containerd, runc, kube-proxy, CoreDNS) runs them from the
//! operator's image as `docker/operator/Dockerfile` describes it, with the Deployment's args,
//! env, security context and probes, the projected token of the manifests' ServiceAccount,
//! and the apiserver reached through the `kubernetes` Service. The apiserver calls the webhooks through the manifests' Service (at the
//! endpoints the endpointslice controller lists). So a missing RBAC rule, a wrong flag or a
//! broken webhook Service path fails here, not at a user's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, ResourceExt};
use nats_operator::install_manifests::{NAME, NAMESPACE};
use nats_operator::webhook_config::WEBHOOK_CONFIGURATION_NAME;
use nats_operator_certs::self_managed::KEY_CA_BUNDLE;
use nats_operator_e2e::audit::AuditEvent;
use nats_operator_e2e::natscluster::{poll, wait_ready};
use nats_operator_e2e::node::{self, RealNode};
use nats_operator_e2e::{AuditLog, KubectlRun, LocalOptions, TestCluster};

/// From apply to both operator pods Ready, on 2 busy cores.
const OPERATOR_READY: Duration = Duration::from_secs(120);
/// For the Deployment status, endpoints, Lease, caBundles and webhooks to follow.
const SETTLE: Duration = Duration::from_secs(60);
/// From apply to a Ready NatsCluster of real servers.
const CLUSTER_READY: Duration = Duration::from_secs(120);
const EVERY: Duration = Duration::from_millis(250);
/// The Secret of the self-managed webhook CA (`nats-operator run --ca-secret` default).
const CA_SECRET: &str = "nats-operator-webhook-ca";
/// The container of the operator's pods.
const CONTAINER: &str = NAME;
/// The NatsCluster the installed operator reconciles, its service role and ServiceAccount.
const CLUSTER: &str = "nats";
const ROLE: &str = "nats-user";

/// The world of the test; fields drop in order: the node (stops the operator's
/// containers), then the control plane, then its audit log.
struct Install {
    node: RealNode,
    client: Client,
    cluster: TestCluster,
    audit: AuditLog,
}

/// The Deployment's pod template runs as two Ready replicas: one holds the leader Lease, both
/// serve the webhooks through the Service, which the apiserver calls at their endpoints
/// (an invalid NatsCluster is denied with the native `is invalid` error; a valid v1alpha2
/// one is defaulted and converted); the operator injected its CA everywhere, reconciles a
/// NatsCluster into real servers with a service role's bound token, and the apiserver's
/// audit log shows none of its requests refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_from_the_install_manifests() -> Result<()> {
    if TestCluster::external_requested() {
        eprintln!(
            "SKIPPED: the install test runs the operator's pods as local processes on a local \
             control plane; not against E2E_KUBECONFIG/KUBECONFIG"
        );
        return Ok(());
    }
    if let Some(why) = node::unavailable_reason() {
        bail!("the install test needs the real node: {why}");
    }
    let t0 = Instant::now();
    let audit = AuditLog::for_users(&[&operator_user()])?;
    let options = LocalOptions {
        apiserver_args: audit.apiserver_args(),
        ..LocalOptions::workloads()
    };
    let cluster = TestCluster::start_local_with(&options).await?;
    let client = cluster.client()?;
    let plane = t0.elapsed();
    // Builds the node and the operator's image first when they are stale.
    let node = RealNode::start(&cluster, &[NAMESPACE]).await?;
    let env = Install {
        node,
        client,
        cluster,
        audit,
    };
    let setup = t0.elapsed();
    match scenario(&env).await {
        Ok(numbers) => {
            println!(
                "NUMBERS install: control plane {:.1} s, real node {:.1} s; {numbers}; test {:.1} s",
                plane.as_secs_f64(),
                (setup - plane).as_secs_f64(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => bail!("{e:#}\n{}", env.diagnostics().await),
    }
}

async fn scenario(env: &Install) -> Result<String> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/base");
    let base = base.to_str().context("manifests path is not UTF-8")?;
    let applied = Instant::now();
    env.kubectl(&["apply", "--server-side", "-k", base], None)?
        .ensure_success()?;
    let (names, start_to_ready) = env.wait_operator_ready().await?;
    let operator_ready = applied.elapsed();
    env.wait_deployment_available().await?;
    env.wait_endpoints().await?;
    env.check_leader(&names).await?;
    env.wait_ca_bundles().await?;
    let t = Instant::now();
    env.check_denial().await?;
    let denial = t.elapsed();
    let cluster_ready = env.check_reconcile().await?;
    let requests = env.check_nothing_refused(&names).await?;
    Ok(format!(
        "apply -> 2 operator pods Ready {:.1} s (process start -> Ready {}); first denial \
         through the Service {:.1} s; NatsCluster apply -> Ready with 2 servers {:.1} s; {requests} \
         operator requests, none refused",
        operator_ready.as_secs_f64(),
        start_to_ready.join(", "),
        denial.as_secs_f64(),
        cluster_ready.as_secs_f64(),
    ))
}

impl Install {
    /// The operator container's log of pod `name`, as `kubectl logs` reads it from the kubelet.
    async fn logs(&self, name: &str) -> String {
        let params = LogParams {
            container: Some(CONTAINER.into()),
            ..LogParams::default()
        };
        self.api::<Pod>()
            .logs(name, &params)
            .await
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<KubectlRun> {
        self.cluster.kubectl_run_stdin(args, stdin)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// The operator's pods (selected as its Deployment selects them).
    async fn operator_pods(&self) -> Result<Vec<Pod>> {
        let lp = ListParams::default().labels(&format!("app.kubernetes.io/name={NAME}"));
        Ok(self.api::<Pod>().list(&lp).await?.items)
    }

    /// Waits until the Deployment's two pods run and are Ready; returns their names and, per
    /// pod, the time from its process running to Ready.
    async fn wait_operator_ready(&self) -> Result<(BTreeSet<String>, Vec<String>)> {
        let seen: Mutex<BTreeMap<String, Seen>> = Mutex::default();
        let names = poll(
            OPERATOR_READY,
            Duration::from_millis(100),
            "2 operator pods Ready",
            || {
                let seen = &seen;
                async move {
                    let pods = self.operator_pods().await?;
                    if let Ok(mut seen) = seen.lock() {
                        for p in &pods {
                            let (running, ready) = seen.entry(p.name_any()).or_default();
                            if is_running(p) {
                                running.get_or_insert_with(Instant::now);
                            }
                            if is_ready(p) {
                                ready.get_or_insert_with(Instant::now);
                            }
                        }
                    }
                    let ready: BTreeSet<String> = pods
                        .iter()
                        .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
                        .map(|p| p.name_any())
                        .collect();
                    Ok(if pods.len() == 2 && ready.len() == 2 {
                        Ok(ready)
                    } else {
                        Err(format!("{} pods, Ready: {ready:?}", pods.len()))
                    })
                }
            },
        )
        .await?;
        let seen = seen.into_inner().unwrap_or_default();
        let start_to_ready = names
            .iter()
            .map(|n| match seen.get(n) {
                Some((Some(running), Some(ready))) => format!(
                    "{:.1} s",
                    ready.saturating_duration_since(*running).as_secs_f64()
                ),
                _ => "?".into(),
            })
            .collect();
        Ok((names, start_to_ready))
    }

    async fn wait_deployment_available(&self) -> Result<()> {
        let deployments = self.api::<Deployment>();
        poll(
            SETTLE,
            EVERY,
            "Deployment available with 2 replicas",
            || {
                let deployments = deployments.clone();
                async move {
                    let st = deployments.get(NAME).await?.status.unwrap_or_default();
                    Ok(if st.available_replicas == Some(2) {
                        Ok(())
                    } else {
                        Err(format!("{st:?}"))
                    })
                }
            },
        )
        .await
    }

    /// The webhook Service's EndpointSlices list both pods, ready, on the webhook port.
    async fn wait_endpoints(&self) -> Result<()> {
        let ips: BTreeSet<String> = self
            .operator_pods()
            .await?
            .iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
            .collect();
        let slices = self.api::<EndpointSlice>();
        poll(
            SETTLE,
            EVERY,
            "EndpointSlices of the webhook Service: both pods ready on 8443",
            || {
                let (slices, ips) = (slices.clone(), ips.clone());
                async move {
                    let lp =
                        ListParams::default().labels(&format!("kubernetes.io/service-name={NAME}"));
                    let mut ready = BTreeSet::new();
                    let mut ports = BTreeSet::new();
                    for s in slices.list(&lp).await?.items {
                        for p in s.ports.iter().flatten() {
                            ports.insert((p.name.clone(), p.port));
                        }
                        for e in s.endpoints.iter().flatten() {
                            if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                                ready.extend(e.addresses.iter().cloned());
                            }
                        }
                    }
                    let port_ok = ports.contains(&(Some("webhook".into()), Some(8443)));
                    Ok(if ready == ips && port_ok {
                        Ok(())
                    } else {
                        Err(format!("ready {ready:?} (pods {ips:?}), ports {ports:?}"))
                    })
                }
            },
        )
        .await
    }

    /// One replica holds the Lease under its own pod name (replicas sharing one identity
    /// would all lead) and runs the controllers.
    async fn check_leader(&self, names: &BTreeSet<String>) -> Result<()> {
        let leases = self.api::<Lease>();
        let leader = poll(SETTLE, EVERY, "leader Lease", || {
            let leases = leases.clone();
            async move {
                let holder = leases
                    .get_opt(NAME)
                    .await?
                    .and_then(|l| l.spec?.holder_identity);
                Ok(match holder {
                    Some(h) if names.contains(&h) => Ok(h),
                    other => Err(format!("holder {other:?}, operator pods {names:?}")),
                })
            }
        })
        .await?;
        ensure!(
            self.logs(&leader).await.contains("became leader"),
            "the Lease holder {leader} never logged 'became leader'"
        );
        Ok(())
    }

    /// Both webhook configurations and the CRD's conversion webhook carry the CA bundle of
    /// the operator's CA Secret.
    async fn wait_ca_bundles(&self) -> Result<()> {
        let vwc: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        let mwc: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let secrets = self.api::<Secret>();
        poll(SETTLE, EVERY, "caBundle injected everywhere", || {
            let (vwc, mwc, crds, secrets) =
                (vwc.clone(), mwc.clone(), crds.clone(), secrets.clone());
            async move {
                let bundle = secrets
                    .get_opt(CA_SECRET)
                    .await?
                    .and_then(|s| s.data?.get(KEY_CA_BUNDLE).map(|b| b.0.clone()))
                    .unwrap_or_default();
                if !String::from_utf8_lossy(&bundle).contains("BEGIN CERTIFICATE") {
                    return Ok(Err(format!("no CA bundle in Secret {CA_SECRET}")));
                }
                let mut seen: Vec<(String, Option<Vec<u8>>)> = Vec::new();
                let validating = vwc.get(WEBHOOK_CONFIGURATION_NAME).await?.webhooks;
                for w in validating.unwrap_or_default() {
                    seen.push((w.name, w.client_config.ca_bundle.map(|b| b.0)));
                }
                let mutating = mwc.get(WEBHOOK_CONFIGURATION_NAME).await?.webhooks;
                for w in mutating.unwrap_or_default() {
                    seen.push((w.name, w.client_config.ca_bundle.map(|b| b.0)));
                }
                let crd = crds.get("natsclusters.nats.io").await?;
                let conversion = crd
                    .spec
                    .conversion
                    .and_then(|c| c.webhook?.client_config?.ca_bundle)
                    .map(|b| b.0);
                seen.push(("CRD conversion".into(), conversion));
                let wrong: Vec<&str> = seen
                    .iter()
                    .filter(|(_, b)| b.as_deref() != Some(bundle.as_slice()))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
                let expected = [
                    "validate.nats.io",
                    "guard.nats.io",
                    "default.nats.io",
                    "CRD conversion",
                ];
                Ok(if names == expected && wrong.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "caBundle missing or not the Secret's in {wrong:?} (webhooks {names:?})"
                    ))
                })
            }
        })
        .await
    }

    /// The validating webhook, called through the Service, denies an invalid NatsCluster
    /// with the native error: first in server dry runs until the apiserver's informers have
    /// the endpoints and caBundle, then on a real apply.
    async fn check_denial(&self) -> Result<()> {
        let invalid = v1alpha2("broken", "  size: 3\n  tls:\n    gatewaySecret: gw-tls\n");
        poll(
            SETTLE,
            EVERY,
            "invalid NatsCluster denied by the webhook",
            || {
                let invalid = invalid.clone();
                async move {
                    let run = self.kubectl(
                        &["apply", "--dry-run=server", "-n", NAMESPACE, "-f", "-"],
                        Some(&invalid),
                    )?;
                    Ok(if !run.success() && run.stderr.contains("is invalid") {
                        Ok(())
                    } else {
                        Err(run.to_string())
                    })
                }
            },
        )
        .await?;
        self.kubectl(&["apply", "-n", NAMESPACE, "-f", "-"], Some(&invalid))?
            .ensure_failure_with(&[
                "The NatsCluster \"broken\" is invalid",
                "spec.tls.gatewaySecret",
            ])?;
        Ok(())
    }

    /// A valid v1alpha2 NatsCluster with service-account auth is defaulted (mutating
    /// webhook), stored as v1beta1 and read back in both versions (conversion webhook), and
    /// reconciled by the leader: Ready with real servers run by the same node, every child
    /// `nats-operator render` prints, and the service role's bound token. Returns the time
    /// from apply to Ready.
    async fn check_reconcile(&self) -> Result<Duration> {
        // The newest release (the node has an image of every release the tests use).
        let version = nats_operator::api::defaults::DEFAULT_VERSION;
        self.kubectl(
            &["apply", "-n", NAMESPACE, "-f", "-"],
            Some(&format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {ROLE}\n---\n\
                 apiVersion: nats.io/v1alpha2\nkind: NatsServiceRole\nmetadata:\n  name: {ROLE}\n  \
                 labels:\n    nats_cluster: {CLUSTER}\nspec:\n  permissions:\n    publish: \
                 [\"orders.>\"]\n"
            )),
        )?
        .ensure_success()?;
        let manifest = v1alpha2(
            CLUSTER,
            &format!(
                "  size: 2\n  version: \"{version}\"\n  lameDuckDurationSeconds: 30\n  pod:\n    \
                 enableConfigReload: true\n  auth:\n    enableServiceAccounts: true\n"
            ),
        );
        let applied = Instant::now();
        self.kubectl(&["apply", "-n", NAMESPACE, "-f", "-"], Some(&manifest))?
            .ensure_success()?;
        let get = |resource: &str| -> Result<serde_json::Value> {
            self.kubectl(
                &["get", resource, CLUSTER, "-n", NAMESPACE, "-o", "json"],
                None,
            )?
            .ensure_success()?
            .json()
        };
        let alpha = get("natsclusters.v1alpha2.nats.io")?;
        ensure!(
            alpha["spec"]["serverImage"] == "nats" && alpha["spec"]["version"] == version,
            "v1alpha2 not defaulted by the mutating webhook: {alpha:#}"
        );
        let beta = get("natsclusters.v1beta1.nats.io")?;
        ensure!(
            beta["spec"]["image"] == "nats" && beta["spec"]["version"] == version,
            "v1beta1 view not converted: {beta:#}"
        );
        wait_ready(&self.client, NAMESPACE, CLUSTER, 2, CLUSTER_READY).await?;
        let ready = applied.elapsed();

        let rendered = nats_operator_e2e::podrun::render(&manifest)?;
        let mut children = Vec::new();
        for v in nats_operator::yaml::documents(&rendered)? {
            if let (Some(kind), Some(name)) = (v["kind"].as_str(), v["metadata"]["name"].as_str()) {
                children.push(format!("{}/{name}", kind.to_lowercase()));
            }
        }
        ensure!(children.len() >= 5, "render printed {children:?}");
        let mut args = vec!["get", "-n", NAMESPACE, "-o", "name"];
        args.extend(children.iter().map(String::as_str));
        self.kubectl(&args, None)?.ensure_success()?;

        let secrets = self.api::<Secret>();
        let token_secret = format!("{ROLE}-{CLUSTER}-bound-token");
        poll(
            SETTLE,
            EVERY,
            &format!("bound token Secret {token_secret}"),
            || {
                let (secrets, token_secret) = (secrets.clone(), token_secret.clone());
                async move {
                    let keys: Option<Vec<String>> = secrets
                        .get_opt(&token_secret)
                        .await?
                        .map(|s| s.data.unwrap_or_default().into_keys().collect());
                    Ok(match keys {
                        Some(k) if k.iter().any(|k| k == "token") => Ok(()),
                        other => Err(format!("keys {other:?}")),
                    })
                }
            },
        )
        .await?;
        Ok(ready)
    }

    /// The apiserver refused none of the operator's requests (its audit log of every request
    /// of the operator's ServiceAccount), and the operator logged no refusal. Returns how
    /// many requests it sent.
    async fn check_nothing_refused(&self, names: &BTreeSet<String>) -> Result<usize> {
        let requests = self.audit.events();
        ensure!(
            requests.len() > 10,
            "the audit log has {} requests of {}: is auditing on?",
            requests.len(),
            operator_user()
        );
        let refused = refused(&requests);
        ensure!(
            refused.is_empty(),
            "the apiserver refused requests of the operator:\n{refused}"
        );
        for n in names {
            let log = self.logs(n).await;
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.to_lowercase().contains("forbidden"))
                .collect();
            ensure!(
                lines.is_empty(),
                "{n} logged refusals:\n{}",
                lines.join("\n")
            );
        }
        Ok(requests.len())
    }

    /// Pods, events, refused requests, the operator's logs and the control plane's log tail,
    /// for failure messages.
    async fn diagnostics(&self) -> String {
        let mut out = format!(
            "node {}: kubelet log tail:\n{}\n",
            self.node.name(),
            self.node.log_tail("kubelet", 20)
        );
        let all = self
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        for p in &all {
            let st = p.status.clone().unwrap_or_default();
            out += &format!(
                "pod {}: phase {:?} ip {:?} conditions {} containers {}\n",
                p.name_any(),
                st.phase,
                st.pod_ip,
                serde_json::to_string(&st.conditions).unwrap_or_default(),
                serde_json::to_string(&st.container_statuses).unwrap_or_default()
            );
        }
        out += "events:\n";
        for e in self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            out += &format!(
                "  {} {}/{}: {} {}\n",
                e.type_.unwrap_or_default(),
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            );
        }
        let requests = self.audit.events();
        out += &format!(
            "audit: {} requests of {}, refused:\n{}",
            requests.len(),
            operator_user(),
            refused(&requests)
        );
        for p in all.iter().filter(|p| is_operator_pod(p)) {
            out += &format!("--- log of {}\n", p.name_any());
            out += &self.logs(&p.name_any()).await;
        }
        if let Some(log) = self.cluster.log_path() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!("--- last lines of {}\n", log.display());
            out += &lines[lines.len().saturating_sub(30)..].join("\n");
        }
        out
    }
}

/// When a pod was first seen running, and first seen Ready.
type Seen = (Option<Instant>, Option<Instant>);

/// The operator's ServiceAccount as the apiserver names the user.
fn operator_user() -> String {
    format!("system:serviceaccount:{NAMESPACE}:{NAME}")
}

/// The requests refused by authentication or RBAC (401, 403), one line per distinct
/// request with how often it was refused.
fn refused(requests: &[AuditEvent]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in requests.iter().filter(|e| matches!(e.code(), 401 | 403)) {
        *counts.entry(e.to_string()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(e, n)| format!("  {n}x {e}\n"))
        .collect()
}

fn is_operator_pod(p: &Pod) -> bool {
    p.labels().get("app.kubernetes.io/name").map(String::as_str) == Some(NAME)
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

fn v1alpha2(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}
