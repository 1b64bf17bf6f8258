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

use crate::install::WEBHOOK_CONFIGURATION_NAME;

/// Flags of `nats-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespace the operator runs in (its Service, CA Secret and Lease live here).
    #[arg(long, env = "MY_POD_NAMESPACE", default_value = "nats-io")]
    pub namespace: String,
    /// Address of the HTTPS webhook server.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub webhook_listen: SocketAddr,
    /// Address of the plain-HTTP /healthz and /readyz endpoints.
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
    #[arg(long)]
    pub cluster_scoped: bool,
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
    /// Serve the webhooks only: run no controller (for a webhook-only Deployment).
    #[arg(long)]
    pub webhooks_only: bool,
}

impl RunArgs {
    /// The namespaces to manage.
    pub fn scope(&self) -> crate::controller::Scope {
        let gate = self.feature_gates.as_deref().is_some_and(|g| {
            g.split(',').any(|kv| {
                kv.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "ClusterScoped" && v.trim().eq_ignore_ascii_case("true")
                })
            })
        });
        if self.cluster_scoped || gate {
            crate::controller::Scope::Cluster
        } else {
            crate::controller::Scope::Namespace(self.namespace.clone())
        }
    }
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
    let state = crate::webhooks::state();
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
    if !args.webhooks_only {
        let (leader_tx, leader_rx) = watch::channel(false);
        let elector = crate::controller::leader::LeaderElector::new(
            client.clone(),
            &args.namespace,
            &args.lease,
            &args.pod_name,
            crate::controller::leader::Timing::default(),
        );
        tasks.spawn(elector.run(leader_tx, stop_rx.clone()));
        tasks.spawn(crate::controller::leader::run_while_leader(
            client.clone(),
            args.scope(),
            args.pod_name.clone(),
            metrics.clone(),
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
