//! `nats-operator`: the operator binary and its offline tools.

use std::io::Read;
use std::process::ExitCode;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nats_operator::api::crd::{ConversionEndpoint, crds_yaml};
use nats_operator::yaml_stream::convert_stream;

/// The process allocator: webhook bodies and conversions are many short-lived JSON
/// trees, which mimalloc serves far more cheaply than glibc's malloc (measured in
/// `benches/webhook_load.rs`). Chosen here, by the binary, not by the library. Its
/// settings come from the environment (`install_manifests::ALLOCATOR_ENV`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// NATS operator for Kubernetes: NatsCluster and NatsServiceRole (nats.io/v1beta1, with
/// nats.io/v1alpha2 manifests of the Go nats-operator still accepted).
#[derive(Parser, Debug)]
#[command(name = "nats-operator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: the HTTPS admission and conversion webhooks (self-managed or
    /// provided certificates, caBundle injection) on every replica, and the reconcile loop
    /// that turns NatsClusters into running NATS clusters on the replica holding the
    /// leader Lease; /healthz, /readyz and /metrics on plain HTTP.
    Run(Box<nats_operator::run::RunArgs>),
    /// Print the NatsCluster and NatsServiceRole CustomResourceDefinitions as YAML.
    Crds {
        /// Namespace of the operator's Service, which serves the conversion webhook.
        #[arg(long, default_value = "nats-io")]
        namespace: String,
        /// Name of the operator's Service.
        #[arg(long, default_value = "nats-operator")]
        service: String,
    },
    /// Serve the admission and conversion webhooks alone, with no cluster.
    ///
    /// For local development, benchmarks and external test suites. Endpoints (HTTPS,
    /// HTTP/1.1): POST /validate, POST /mutate (admission.k8s.io/v1 AdmissionReview),
    /// POST /convert (apiextensions.k8s.io/v1 ConversionReview), GET /healthz, GET /readyz.
    ///
    /// If CERT_DIR has no tls.crt/tls.key, a CA and a serving certificate for localhost
    /// and 127.0.0.1 are created there as ca.crt, tls.crt and tls.key; otherwise the
    /// files are served as given and reloaded when they change (for example a mounted
    /// cert-manager Secret). Stops gracefully on SIGTERM or Ctrl-C.
    Webhook {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9443")]
        listen: SocketAddr,
        /// Directory with tls.crt and tls.key (created with ca.crt when missing).
        #[arg(long)]
        cert_dir: PathBuf,
        /// Extra DNS names or IPs for a generated certificate.
        #[arg(long = "san")]
        sans: Vec<String>,
    },
    /// Print every object the operator would create for each NatsCluster in a manifest:
    /// Services, the config Secret with nats.conf (shown as stringData), the
    /// PodDisruptionBudget, PersistentVolumeClaims and member Pods. Secrets and
    /// NatsServiceRoles in the same input are used as the cluster would see them.
    Render {
        /// Input file, or `-` for standard input.
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Write the install manifests (CRDs, RBAC, Deployment, Service, webhook
    /// configurations, kustomize overlays) into a directory, as checked in under manifests/.
    Manifests {
        /// Output directory.
        #[arg(long, default_value = "manifests")]
        out: PathBuf,
    },
    /// Convert NatsCluster and NatsServiceRole manifests between API versions, offline.
    ///
    /// Reads a multi-document YAML file (or `-` for stdin) and prints it with every
    /// nats.io object converted; other documents are copied through unchanged.
    /// Converted documents are re-serialised, so their comments are not kept.
    Convert {
        /// Target apiVersion: nats.io/v1beta1 or nats.io/v1alpha2.
        #[arg(long, value_parser = ["nats.io/v1beta1", "nats.io/v1alpha2"])]
        to: String,
        /// Input file, or `-` for standard input.
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Config reloader sidecar: send SIGHUP to nats-server when its config changes.
    ///
    /// Runs next to the `nats` container in a member pod (same volumes, shared process
    /// namespace). Every --interval it reads the config file and every --watch file
    /// (includes, TLS certificates and keys) and hashes their content (SHA-256). When the
    /// content differs from what the server last loaded and has stayed the same for
    /// --debounce, it reads the pid from the --pid file and sends SIGHUP to that
    /// process, which makes nats-server reload its config.
    ///
    /// The content at start-up is what the server runs with: it is not signalled. Only
    /// content counts: touching a file or rewriting the same bytes does not reload.
    /// Polling sees the atomic `..data` symlink swaps of Secret and ConfigMap volumes,
    /// which file-path inotify watches miss. Several files changed together give one
    /// reload. A missing watched file, a missing pid file or a stale pid is logged and
    /// retried on every tick; nothing of that stops the reloader. Stops on SIGTERM or
    /// Ctrl-C. Logs go to stderr (RUST_LOG sets the level, default info).
    ConfigReloader(nats_operator::config_reloader::ReloaderArgs),
}

fn read_input(path: &str) -> std::io::Result<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path)
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn run_webhook(listen: SocketAddr, cert_dir: PathBuf, sans: Vec<String>) -> anyhow::Result<()> {
    use nats_operator_certs::{FileCerts, ensure_dev_certs, server_config};
    let outcome = ensure_dev_certs(&cert_dir, &sans)?;
    tracing::info!(dir = %cert_dir.display(), ?outcome, "serving certificates");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let certs = FileCerts::load(&cert_dir)?;
        let tls = server_config(certs.resolver())?;
        let state = nats_operator::webhooks::state();
        let opts = nats_operator_webhook::ServerOptions::default().readiness(state.readiness());
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tracing::info!(%listen, "webhook server listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut reload_rx = stop_rx.clone();
        let reloader = tokio::spawn(certs.run(async move {
            let _ = reload_rx.wait_for(|s| *s).await;
        }));
        let server = nats_operator_webhook::serve_with(
            listener,
            Some(tls),
            nats_operator_webhook::router(state),
            async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                let _ = stop_tx.send(true);
            },
            opts,
        );
        server.await?;
        let _ = reloader.await;
        Ok(())
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Threads of the `run` runtime's blocking pool.
const BLOCKING_THREADS: usize = 8;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Run(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                // Admission decisions run on the blocking pool (a panic there is contained):
                // they take milliseconds of CPU, so a burst of them needs a few threads, not
                // one each, and every extra thread keeps its own stack and allocator heap.
                .max_blocking_threads(BLOCKING_THREADS)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(nats_operator::run::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::ConfigReloader(args) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(nats_operator::config_reloader::run(args, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Webhook {
            listen,
            cert_dir,
            sans,
        } => match run_webhook(listen, cert_dir, sans) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Crds { namespace, service } => {
            let endpoint = ConversionEndpoint::Service {
                namespace,
                name: service,
                port: 443,
            };
            match crds_yaml(&endpoint) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot render the CRDs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Render { file } => {
            let input = match read_input(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot read {file}: {e}");
                    return ExitCode::from(2);
                }
            };
            match nats_operator::yaml_stream::render_stream(&input) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {file}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Manifests { out } => {
            let files = match nats_operator::install_manifests::all_files() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: cannot render the manifests: {e}");
                    return ExitCode::FAILURE;
                }
            };
            for (name, content) in files {
                let path = out.join(name);
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, content));
                if let Err(e) = written {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Command::Convert { to, file } => {
            let input = match read_input(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: cannot read {file}: {e}");
                    return ExitCode::from(2);
                }
            };
            match convert_stream(&input, &to) {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {file}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
