//! `nats-operator run`: the operator process. The HTTPS webhook server starts first
//! (the apiserver needs the conversion webhook even for our own watches), then the
//! certificate loops (self-managed CA in a Secret with caBundle injection, or files
//! from cert-manager), then the plain-HTTP health endpoints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use nats_operator_certs::{
    CaBundleInjector, FileCerts, InjectionTargets, SelfManaged, SelfManagedConfig, server_config,
    service_sans,
};
use nats_operator_webhook::{Readiness, ServerOptions, router, serve_plain, serve_with};
use tokio::sync::watch;

use crate::webhook_config::WEBHOOK_CONFIGURATION_NAME;

/// Flags of `nats-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespace the operator runs in (its Service, CA Secret and Lease live here).
    #[arg(long, env = "MY_POD_NAMESPACE", default_value = "nats-io")]
    pub namespace: String,
    /// Address of the HTTPS webhook server.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub webhook_listen: SocketAddr,
    /// Address of the plain-HTTP /healthz, /readyz and /metrics (OpenMetrics) endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub health_listen: SocketAddr,
    /// Name of the operator's Service in front of the webhook server.
    #[arg(long, default_value = "nats-operator")]
    pub service_name: String,
    /// Serve tls.crt/tls.key from this directory (cert-manager) instead of managing a CA.
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    /// Secret holding the self-managed webhook CA.
    #[arg(long, default_value = "nats-operator-webhook-ca")]
    pub ca_secret: String,
    /// Do not inject the caBundle into the webhook configurations and the CRD (cert-manager's
    /// cainjector does it).
    #[arg(long)]
    pub no_ca_injection: bool,
    /// Manage NatsClusters in every namespace instead of only `--namespace`.
    #[arg(long, conflicts_with = "namespaces")]
    pub cluster_scoped: bool,
    /// Manage NatsClusters in these namespaces (comma-separated) instead of only
    /// `--namespace`: one watch per kind and namespace. The operator needs its namespaced
    /// RBAC in each of them. Service roles may use ServiceAccounts of all of them.
    #[arg(
        long,
        env = "NATS_OPERATOR_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,NS,..."
    )]
    pub namespaces: Vec<String>,
    /// The Go operator's spelling of `--cluster-scoped` (`ClusterScoped=true`), accepted so
    /// its Deployments keep working.
    #[arg(long)]
    pub feature_gates: Option<String>,
    /// This replica's name in the leader Lease (the pod name).
    #[arg(long, env = "MY_POD_NAME", default_value = "nats-operator")]
    pub pod_name: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "nats-operator")]
    pub lease: String,
    /// Serve the webhooks only: run no controller and no informer cache (for a webhook-only
    /// Deployment; validation then warns about nothing it would need the cache for).
    #[arg(long)]
    pub webhooks_only: bool,
    /// How often every Stream, Consumer, KeyValue and ObjectStore is compared with the
    /// server (a Go duration, spread by ±25 %; NACK's `--sync-interval`).
    #[arg(long, default_value = "1m", value_parser = go_duration)]
    pub asset_sync_interval: std::time::Duration,
    /// Server URL(s) of assets that name none (NACK's `-s`); without it, such assets use
    /// the namespace's only NatsCluster with JetStream.
    #[arg(long, value_delimiter = ',', value_name = "URL,URL,...")]
    pub nats_server: Vec<String>,
    /// Credentials file for `--nats-server` (NACK's `--creds`).
    #[arg(long)]
    pub nats_creds: Option<PathBuf>,
    /// NKey seed file for `--nats-server` (NACK's `--nkey`).
    #[arg(long)]
    pub nats_nkey: Option<PathBuf>,
    /// Client certificate for `--nats-server` (NACK's `--tlscert`).
    #[arg(long, requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// Client key for `--nats-server` (NACK's `--tlskey`).
    #[arg(long, requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// CA for `--nats-server` (NACK's `--tlsca`).
    #[arg(long)]
    pub nats_tls_ca: Option<PathBuf>,
    /// TLS before the server's INFO for `--nats-server` (NACK's `--tlsfirst`).
    #[arg(long)]
    pub nats_tls_first: bool,
}

fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::api::duration::parse(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a positive Go duration such as 30s or 1m"))
}

impl RunArgs {
    /// The asset controllers' settings.
    pub fn asset_settings(&self) -> anyhow::Result<crate::controller::AssetSettings> {
        use crate::jetstream::connect::DefaultConnection;
        Ok(crate::controller::AssetSettings {
            sync_interval: self.asset_sync_interval,
            default: DefaultConnection {
                servers: self.nats_server.clone(),
                creds: self.nats_creds.clone(),
                nkey: self.nats_nkey.clone(),
                tls_cert: self.nats_tls_cert.clone().zip(self.nats_tls_key.clone()),
                tls_ca: self.nats_tls_ca.clone(),
                tls_first: self.nats_tls_first,
            },
        })
    }

    /// The namespaces to manage.
    pub fn scope(&self) -> anyhow::Result<crate::controller::Scope> {
        let gate = self.feature_gates.as_deref().is_some_and(|g| {
            g.split(',').any(|kv| {
                kv.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "ClusterScoped" && v.trim().eq_ignore_ascii_case("true")
                })
            })
        });
        let mut namespaces: Vec<String> = self
            .namespaces
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        for ns in &namespaces {
            if !is_namespace_name(ns) {
                anyhow::bail!(
                    "--namespaces: {ns:?} is not a namespace name (a DNS-1123 label: at most \
                     63 lower-case letters, digits and '-', starting and ending alphanumeric)"
                );
            }
        }
        Ok(match (self.cluster_scoped || gate, namespaces.len()) {
            (true, 0) => crate::controller::Scope::Cluster,
            (true, _) => anyhow::bail!(
                "--namespaces cannot be combined with --cluster-scoped or ClusterScoped=true"
            ),
            (false, 0) => crate::controller::Scope::Namespace(self.namespace.clone()),
            (false, 1) => crate::controller::Scope::Namespace(namespaces.remove(0)),
            (false, _) => crate::controller::Scope::Namespaces(namespaces),
        })
    }
}

/// A DNS-1123 label, as namespace names are.
fn is_namespace_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

async fn shutdown_signal(tx: watch::Sender<bool>) {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
    let _ = tx.send(true);
}

fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let scope = args.scope()?;
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration (in-cluster or KUBECONFIG)")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(shutdown_signal(stop_tx));

    // 1. Serving certificates, then the HTTPS server before anything else.
    let mut tasks = tokio::task::JoinSet::new();
    let (resolver, bundle): (
        Arc<dyn rustls::server::ResolvesServerCert>,
        Option<watch::Receiver<Vec<u8>>>,
    ) = match &args.cert_dir {
        Some(dir) => {
            let certs = FileCerts::load(dir)
                .with_context(|| format!("cannot load tls.crt/tls.key from {}", dir.display()))?;
            let resolver = certs.resolver();
            let bundle = certs.ca_bundle();
            tasks.spawn(certs.run(stopped(&stop_rx)));
            (resolver, Some(bundle))
        }
        None => {
            let sans = service_sans(&args.service_name, &args.namespace);
            let managed = SelfManaged::kube(
                client.clone(),
                &args.namespace,
                &args.ca_secret,
                SelfManagedConfig::new(sans),
            )
            .await
            .with_context(|| {
                format!(
                    "cannot read or create the webhook CA Secret {}/{}",
                    args.namespace, args.ca_secret
                )
            })?;
            let resolver = managed.resolver();
            let bundle = managed.ca_bundle();
            tasks.spawn(managed.run(stopped(&stop_rx)));
            (resolver, Some(bundle))
        }
    };
    let tls = server_config(resolver)?;
    // The informer caches, shared by the webhooks (warnings) and the controllers. Empty
    // until their watches have listed; neither readiness nor admission waits for them.
    let caches = (!args.webhooks_only)
        .then(|| crate::controller::cache::Caches::new(&client, scope.clone()));
    let slot = crate::webhooks::CacheSlot::default();
    if let Some((c, _)) = &caches {
        slot.set(c.clone());
    }
    let state = crate::webhooks::state_with(slot);
    let readiness: Readiness = state.readiness();
    let listener = tokio::net::TcpListener::bind(args.webhook_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.webhook_listen))?;
    tracing::info!(addr = %args.webhook_listen, "webhook server listening");
    let opts = ServerOptions::default().readiness(readiness.clone());
    let webhook = tokio::spawn(serve_with(
        listener,
        Some(tls),
        router(state),
        stopped(&stop_rx),
        opts,
    ));

    // 2. caBundle injection into our webhook configurations and the NatsCluster CRD.
    if let (Some(bundle), false) = (bundle, args.no_ca_injection) {
        let targets = InjectionTargets {
            validating_webhooks: vec![WEBHOOK_CONFIGURATION_NAME.to_string()],
            mutating_webhooks: vec![WEBHOOK_CONFIGURATION_NAME.to_string()],
            crds: vec!["natsclusters.nats.io".to_string()],
        };
        tasks.spawn(CaBundleInjector::new(client.clone(), targets).run(bundle, stopped(&stop_rx)));
    }

    // 3. Controllers, on the replica that holds the Lease.
    let metrics = Arc::new(crate::controller::metrics::Metrics::default());
    if let Some((caches, driver)) = caches {
        tasks.spawn(driver.run(stopped(&stop_rx)));
        let (leader_tx, leader_rx) = watch::channel(false);
        let elector = crate::controller::leader::LeaderElector::new(
            client.clone(),
            &args.namespace,
            &args.lease,
            &args.pod_name,
            crate::controller::leader::Timing::default(),
        );
        tasks.spawn(elector.run(leader_tx, stop_rx.clone()));
        tracing::info!(?scope, "watching");
        tasks.spawn(crate::controller::leader::lead(
            client.clone(),
            caches,
            crate::controller::Settings {
                identity: args.pod_name.clone(),
                metrics: metrics.clone(),
                assets: args.asset_settings()?,
            },
            leader_rx,
            stop_rx.clone(),
            Arc::default(),
        ));
    }

    // 4. Health and metrics on plain HTTP (readiness follows the webhook server only:
    // never caches or leadership, so every replica serves admission).
    let metrics_route = metrics.clone();
    let health = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let body = metrics_route.encode();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "webhook server not ready",
                        )
                    }
                }
            }),
        );
    let health_listener = tokio::net::TcpListener::bind(args.health_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.health_listen))?;
    tasks.spawn(async move {
        if let Err(e) = serve_plain(health_listener, health, stopped(&stop_rx)).await {
            tracing::error!(error = %e, "health server failed");
        }
    });

    let result = webhook.await;
    tasks.shutdown().await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).context("webhook server failed"),
        Err(e) => Err(anyhow::anyhow!("webhook server task failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::controller::Scope;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn scope(args: &[&str]) -> anyhow::Result<Scope> {
        let mut argv = vec!["nats-operator", "--namespace", "ops"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)?.run.scope()
    }

    #[test]
    fn scopes_from_flags() {
        assert_eq!(scope(&[]).ok(), Some(Scope::Namespace("ops".into())));
        assert_eq!(scope(&["--cluster-scoped"]).ok(), Some(Scope::Cluster));
        assert_eq!(
            scope(&["--feature-gates=ClusterScoped=true"]).ok(),
            Some(Scope::Cluster)
        );
        assert_eq!(
            scope(&["--feature-gates", "ClusterScoped=false"]).ok(),
            Some(Scope::Namespace("ops".into()))
        );
        assert_eq!(
            scope(&["--namespaces", "b,a, c,a"]).ok(),
            Some(Scope::Namespaces(vec!["a".into(), "b".into(), "c".into()]))
        );
        assert_eq!(
            scope(&["--namespaces", "a", "--namespaces", "b"]).ok(),
            Some(Scope::Namespaces(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            scope(&["--namespaces", "apps"]).ok(),
            Some(Scope::Namespace("apps".into()))
        );
    }

    #[test]
    fn conflicting_or_invalid_scopes_are_refused() {
        assert!(scope(&["--cluster-scoped", "--namespaces", "a,b"]).is_err());
        assert!(scope(&["--feature-gates=ClusterScoped=true", "--namespaces", "a"]).is_err());
        assert!(scope(&["--namespaces", "a,Not_A_Namespace"]).is_err());
        assert!(scope(&["--namespaces", "-a"]).is_err());
    }
}
