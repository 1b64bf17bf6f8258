//! Where an asset's JetStream API is, and the connections to it.
//!
//! [`target`] (pure) reads an asset's connection fields in this order:
//! 1. `natsClusterRef`: one of our NatsClusters in the asset's namespace. The operator
//!    logs in with its own identity: the JetStream-API-only user of the account (see
//!    [`crate::render::system_user`]), or without credentials in an open cluster, as its
//!    clients do.
//! 2. NACK's `account` (an `Account` object of the namespace: servers, TLS, creds,
//!    nkey, token or user, from Secrets), or NACK's `servers` with `creds`/`nkey`/`tls`
//!    files mounted in the operator's pod.
//! 3. Neither (NACK's manifests often name no server): the operator's default
//!    connection (`--nats-server`, NACK's `-s`), else the namespace's only NatsCluster
//!    with JetStream.
//!
//! [`Connections`] keeps one client per place and credentials, shared by every asset
//! there. A client that lost its servers is replaced with one to the current members;
//! every (re)connection is announced, so the assets behind it are checked at once (the
//! server may have lost them while it was away).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::client::JetStreamApi;
use super::v1beta2::{Account, Connection};
use crate::api::v1beta1::NatsCluster;
use crate::controller::cache::Caches;
use crate::render::system_user::{GLOBAL_ACCOUNT, jetstream_user_name};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The operator's default connection (NACK's controller flags), for assets that name no
/// server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultConnection {
    /// Server URLs (`--nats-server`).
    pub servers: Vec<String>,
    /// Credentials file (`--nats-creds`).
    pub creds: Option<PathBuf>,
    /// NKey seed file (`--nats-nkey`).
    pub nkey: Option<PathBuf>,
    /// Client certificate and key files (`--nats-tls-cert`, `--nats-tls-key`).
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// CA file (`--nats-tls-ca`).
    pub tls_ca: Option<PathBuf>,
    /// TLS before the server's INFO (`--nats-tls-first`).
    pub tls_first: bool,
}

/// Where an asset's JetStream API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A NatsCluster of the namespace, and the account there.
    Cluster {
        /// The NatsCluster.
        name: String,
        /// The NATS account (`$G` by default).
        account: String,
    },
    /// NACK's `Account` object of the namespace.
    Account(String),
    /// NACK's inline `servers` (with files mounted in the operator's pod).
    Servers,
    /// The operator's default connection.
    Default,
}

/// Where `c` connects: see the module's order. `jetstream_clusters` are the names of
/// the namespace's NatsClusters with JetStream. `Err` says what the user must set.
pub fn target(
    c: &Connection,
    jetstream_clusters: &[&str],
    has_default: bool,
) -> Result<Target, String> {
    if let Some(r) = &c.nats_cluster_ref {
        return Ok(Target::Cluster {
            name: r.name.clone(),
            account: r
                .account
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| GLOBAL_ACCOUNT.to_string()),
        });
    }
    if let Some(a) = c.account.as_deref().filter(|a| !a.is_empty()) {
        return Ok(Target::Account(a.to_string()));
    }
    if !c.servers.is_empty() {
        return Ok(Target::Servers);
    }
    if has_default {
        return Ok(Target::Default);
    }
    match jetstream_clusters {
        [one] => Ok(Target::Cluster {
            name: (*one).to_string(),
            account: GLOBAL_ACCOUNT.to_string(),
        }),
        [] => Err(
            "no server to connect to: set spec.natsClusterRef.name to a NatsCluster with \
             JetStream in this namespace (there is none yet), or NACK's spec.servers or \
             spec.account"
                .into(),
        ),
        many => Err(format!(
            "this namespace has {} NatsClusters with JetStream ({}): set \
             spec.natsClusterRef.name to the one that holds the asset",
            many.len(),
            many.join(", ")
        )),
    }
}

/// How to log in, resolved from the cluster's or the Account's Secrets.
#[derive(Clone, Default, PartialEq, Eq)]
enum Login {
    #[default]
    Anonymous,
    User(String, String),
    Token(String),
    Creds(String),
    CredsFile(PathBuf),
    NKey(String),
    NKeyFile(PathBuf),
}

/// TLS of a connection.
#[derive(Clone, Default, PartialEq, Eq)]
enum Tls {
    #[default]
    Off,
    /// To pod IPs: the certificates name DNS names, so the server is not verified (as
    /// for the operator's system user and the monitoring port).
    Unverified,
    /// Files mounted in the operator's pod.
    Files {
        ca: Vec<PathBuf>,
        cert: Option<(PathBuf, PathBuf)>,
    },
    /// PEM from a Secret.
    Pem {
        ca: Option<Vec<u8>>,
        cert: Option<(Vec<u8>, Vec<u8>)>,
    },
}

/// Everything a connection is made from; its digest keys the pool.
#[derive(Clone, Default, PartialEq, Eq)]
struct Settings {
    servers: Vec<String>,
    login: Login,
    tls: Tls,
    tls_first: bool,
}

impl Settings {
    /// A digest of everything but the servers (pod IPs change with every roll).
    fn credentials_digest(&self) -> String {
        let mut h = Sha256::new();
        let login = match &self.login {
            Login::Anonymous => "anonymous".to_string(),
            Login::User(u, p) => format!("user {u} {p}"),
            Login::Token(t) => format!("token {t}"),
            Login::Creds(c) => format!("creds {c}"),
            Login::CredsFile(p) => format!("creds file {}", p.display()),
            Login::NKey(s) => format!("nkey {s}"),
            Login::NKeyFile(p) => format!("nkey file {}", p.display()),
        };
        h.update(login.as_bytes());
        match &self.tls {
            Tls::Off => h.update(b"tls off"),
            Tls::Unverified => h.update(b"tls unverified"),
            Tls::Files { ca, cert } => h.update(format!("tls files {ca:?} {cert:?}").as_bytes()),
            Tls::Pem { ca, cert } => {
                h.update(b"tls pem");
                h.update(ca.as_deref().unwrap_or_default());
                if let Some((c, k)) = cert {
                    h.update(c);
                    h.update(k);
                }
            }
        }
        h.update([u8::from(self.tls_first)]);
        format!("{:x}", h.finalize())
    }

    async fn options(
        &self,
        key: String,
        events: broadcast::Sender<String>,
    ) -> Result<async_nats::ConnectOptions, String> {
        use async_nats::ConnectOptions as O;
        let mut o = match &self.login {
            Login::Anonymous => O::new(),
            Login::User(u, p) => O::with_user_and_password(u.clone(), p.clone()),
            Login::Token(t) => O::with_token(t.clone()),
            Login::Creds(c) => {
                O::with_credentials(c).map_err(|e| format!("unreadable credentials: {e}"))?
            }
            Login::CredsFile(p) => O::with_credentials_file(p)
                .await
                .map_err(|e| format!("cannot read the credentials file {}: {e}", p.display()))?,
            Login::NKey(seed) => O::with_nkey(seed.trim().to_string()),
            Login::NKeyFile(p) => {
                let seed = tokio::fs::read_to_string(p)
                    .await
                    .map_err(|e| format!("cannot read the NKey seed file {}: {e}", p.display()))?;
                O::with_nkey(seed.trim().to_string())
            }
        };
        o = o
            .name("nats-operator")
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(super::client::TIMEOUT))
            // A few quick tries after a loss; a client that gives up is replaced with one
            // to the servers of that moment (see `client_for`).
            .max_reconnects(Some(3))
            .event_callback(move |event| {
                let (key, events) = (key.clone(), events.clone());
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        let _ = events.send(key);
                    }
                }
            });
        o = match &self.tls {
            Tls::Off => o,
            Tls::Unverified => o.require_tls(true).tls_client_config(Arc::unwrap_or_clone(
                crate::controller::health::insecure_tls(),
            )),
            Tls::Files { ca, cert } => {
                let mut o = o.require_tls(true);
                for f in ca {
                    o = o.add_root_certificates(f.clone());
                }
                if let Some((c, k)) = cert {
                    o = o.add_client_certificate(c.clone(), k.clone());
                }
                o
            }
            Tls::Pem { ca, cert } => o
                .require_tls(true)
                .tls_client_config(pem_tls(ca.as_deref(), cert.as_ref())?),
        };
        if self.tls_first {
            o = o.tls_first();
        }
        Ok(o)
    }
}

/// A rustls client configuration from PEM: the CA (else the platform's roots are not
/// known here: a CA is then required) and an optional client certificate.
fn pem_tls(
    ca: Option<&[u8]>,
    cert: Option<&(Vec<u8>, Vec<u8>)>,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let ca = ca.ok_or("spec.tls.ca: the CA of the servers is needed to verify them")?;
    for c in CertificateDer::pem_slice_iter(ca) {
        let c = c.map_err(|e| format!("spec.tls.ca: not a PEM certificate ({e})"))?;
        roots
            .add(c)
            .map_err(|e| format!("spec.tls.ca: unusable certificate ({e})"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match cert {
        None => Ok(builder.with_no_client_auth()),
        Some((c, k)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(c)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("spec.tls.cert: not a PEM certificate ({e})"))?;
            let key = PrivateKeyDer::from_pem_slice(k)
                .map_err(|e| format!("spec.tls.key: not a PEM private key ({e})"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("spec.tls: the certificate and key do not go together ({e})"))
        }
    }
}

struct Pooled {
    client: async_nats::Client,
    digest: String,
}

/// The asset controllers' connections, one per place and credentials (see the module).
pub struct Connections {
    client: kube::Client,
    caches: Caches,
    default: DefaultConnection,
    pool: Mutex<HashMap<String, Pooled>>,
    events: broadcast::Sender<String>,
}

/// An API to use, and the pool key of its connection.
pub struct Connected {
    /// The JetStream API of the asset's account and domain.
    pub api: JetStreamApi,
    /// The connection's key, as [`Connections::reconnects`] announces it.
    pub key: String,
}

/// Why no API could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoApi {
    /// The user must change something (the message says what).
    Misconfigured(String),
    /// The referenced NatsCluster is gone or being deleted: its assets are gone too.
    ClusterGone(String),
    /// The servers do not answer (yet).
    Unreachable(String),
}

impl std::fmt::Display for NoApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoApi::Misconfigured(s) | NoApi::ClusterGone(s) | NoApi::Unreachable(s) => {
                f.write_str(s)
            }
        }
    }
}

impl Connections {
    /// Connections that read NatsClusters, pods and Accounts from `caches`.
    pub fn new(client: kube::Client, caches: Caches, default: DefaultConnection) -> Self {
        Connections {
            client,
            caches,
            default,
            pool: Mutex::default(),
            events: broadcast::channel(256).0,
        }
    }

    /// Keys of connections as they are made or made again.
    pub fn reconnects(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    /// The NatsClusters of `namespace` with JetStream.
    fn jetstream_clusters(&self, namespace: &str) -> Vec<Arc<NatsCluster>> {
        self.caches
            .clusters
            .store()
            .state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(namespace))
            .filter(|c| crate::render::jetstream_enabled(&c.spec))
            .collect()
    }

    /// Where `connection` of an asset in `namespace` goes.
    pub fn target(&self, namespace: &str, connection: &Connection) -> Result<Target, NoApi> {
        let clusters = self.jetstream_clusters(namespace);
        let names: Vec<&str> = clusters
            .iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        target(connection, &names, !self.default.servers.is_empty()).map_err(NoApi::Misconfigured)
    }

    /// The JetStream API for an asset in `namespace` with `connection`.
    pub async fn api(&self, namespace: &str, connection: &Connection) -> Result<Connected, NoApi> {
        let target = self.target(namespace, connection)?;
        let (key, settings) = match &target {
            Target::Cluster { name, account } => (
                format!("cluster {namespace}/{name} {account}"),
                self.cluster_settings(namespace, name, account)?,
            ),
            Target::Account(name) => (
                format!("account {namespace}/{name}"),
                self.account_settings(namespace, name).await?,
            ),
            Target::Servers => {
                let tls = connection.tls.as_ref().map(|t| Tls::Files {
                    ca: t.root_cas.iter().map(PathBuf::from).collect(),
                    cert: (!t.client_cert.is_empty())
                        .then(|| (PathBuf::from(&t.client_cert), PathBuf::from(&t.client_key))),
                });
                let login = if !connection.creds.is_empty() {
                    Login::CredsFile(connection.creds.clone().into())
                } else if !connection.nkey.is_empty() {
                    Login::NKeyFile(connection.nkey.clone().into())
                } else {
                    Login::Anonymous
                };
                let s = Settings {
                    servers: connection.servers.clone(),
                    login,
                    tls: tls.unwrap_or_default(),
                    tls_first: connection.tls_first,
                };
                (format!("servers {:?}", s.servers), s)
            }
            Target::Default => {
                let d = &self.default;
                let login = match (&d.creds, &d.nkey) {
                    (Some(c), _) => Login::CredsFile(c.clone()),
                    (None, Some(n)) => Login::NKeyFile(n.clone()),
                    _ => Login::Anonymous,
                };
                let tls = if d.tls_ca.is_some() || d.tls_cert.is_some() {
                    Tls::Files {
                        ca: d.tls_ca.iter().cloned().collect(),
                        cert: d.tls_cert.clone(),
                    }
                } else {
                    Tls::Off
                };
                let s = Settings {
                    servers: d.servers.clone(),
                    login,
                    tls,
                    tls_first: d.tls_first,
                };
                ("default".to_string(), s)
            }
        };
        let key = format!("{key} {}", settings.credentials_digest());
        let client = self.client_for(&key, settings).await?;
        Ok(Connected {
            api: JetStreamApi::new(client, connection.js_domain.as_deref()),
            key,
        })
    }

    /// A pooled client for `key`, made anew when it has none, when the credentials
    /// changed, or when it is not connected (it may have given up reconnecting, and the
    /// servers may have moved).
    async fn client_for(&self, key: &str, settings: Settings) -> Result<async_nats::Client, NoApi> {
        let digest = settings.credentials_digest();
        {
            let pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = pool.get(key)
                && p.digest == digest
                && p.client.connection_state() == async_nats::connection::State::Connected
            {
                return Ok(p.client.clone());
            }
        }
        if settings.servers.is_empty() {
            return Err(NoApi::Unreachable("no server address yet".into()));
        }
        let options = settings
            .options(key.to_string(), self.events.clone())
            .await
            .map_err(NoApi::Misconfigured)?;
        let urls = settings.servers.clone();
        let client = tokio::time::timeout(CONNECT_TIMEOUT * 2, options.connect(urls.as_slice()))
            .await
            .map_err(|_| NoApi::Unreachable(format!("connecting to {urls:?} timed out")))?
            .map_err(|e| {
                if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation {
                    // Not a transient failure: the user must change the credentials.
                    NoApi::Misconfigured(format!(
                        "{urls:?} refused the credentials (authorization violation): fix the \
                         Account's or the object's credentials; our NatsClusters with JetStream \
                         check any credentials a client presents, so use spec.natsClusterRef \
                         for them"
                    ))
                } else {
                    NoApi::Unreachable(format!("cannot connect to {urls:?}: {e}"))
                }
            })?;
        tracing::info!(connection = %key, servers = ?urls, "connected for JetStream assets");
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.insert(
            key.to_string(),
            Pooled {
                client: client.clone(),
                digest,
            },
        );
        drop(pool);
        let _ = self.events.send(key.to_string());
        Ok(client)
    }

    /// The NatsCluster `name`'s members and the operator's user in `account`.
    fn cluster_settings(&self, ns: &str, name: &str, account: &str) -> Result<Settings, NoApi> {
        let caches = &self.caches;
        let Some(cluster) = caches.cluster(ns, name) else {
            return Err(NoApi::ClusterGone(format!(
                "NatsCluster {name:?} does not exist in namespace {ns:?}: create it, or fix \
                 spec.natsClusterRef.name"
            )));
        };
        if cluster.metadata.deletion_timestamp.is_some() {
            return Err(NoApi::ClusterGone(format!(
                "NatsCluster {name:?} is being deleted"
            )));
        }
        if !crate::render::jetstream_enabled(&cluster.spec) {
            return Err(NoApi::Misconfigured(format!(
                "NatsCluster {name:?} has no JetStream: add spec.jetstream to it"
            )));
        }
        let secret = |n: &str| -> Option<Arc<Secret>> {
            caches.secrets.store().get(&ObjectRef::new(n).within(ns))
        };
        let conf = secret(name)
            .and_then(|s| s.data.clone())
            .and_then(|d| d.get(crate::render::CONFIG_KEY).map(|v| v.0.clone()))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let user = jetstream_user_name(account);
        // The rendered config quotes every string.
        let login = if conf.contains(&format!("\"{user}\"")) {
            let meta = crate::render::ClusterMeta::of(&cluster)
                .map_err(|e| NoApi::Misconfigured(e.to_string()))?;
            let password = secret(&meta.system_user_secret())
                .and_then(|s| s.data.clone())
                .map(|d| d.into_iter().map(|(k, v)| (k, v.0)).collect())
                .and_then(|d: crate::render::inputs::SecretData| {
                    crate::render::inputs::system_user(&d)
                })
                .map(|u| u.password)
                .ok_or_else(|| {
                    NoApi::Unreachable("the operator's password is not there yet".into())
                })?;
            Login::User(user, password)
        } else if conf.is_empty() {
            return Err(NoApi::Unreachable(format!(
                "NatsCluster {name:?} has no configuration yet"
            )));
        } else if account == GLOBAL_ACCOUNT {
            // An open cluster: clients without credentials are in `$G`.
            Login::Anonymous
        } else {
            return Err(NoApi::Misconfigured(format!(
                "NatsCluster {name:?} has no operator user in account {account:?}: name an \
                 account of its config in spec.natsClusterRef.account (the operator adds its \
                 user to every account with users; it cannot with JWT or token \
                 authentication, see the NatsCluster's events)"
            )));
        };
        let uid = cluster.uid().unwrap_or_default();
        let pods = crate::controller::observe::member_pods(caches.pods.store(), ns, name, &uid);
        let tls = cluster
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.client.as_ref())
            .is_some_and(|c| !c.secret.is_empty());
        Ok(Settings {
            servers: member_urls(&pods),
            login,
            tls: if tls { Tls::Unverified } else { Tls::Off },
            tls_first: false,
        })
    }

    /// NACK's `Account` `name` of `ns`, with its Secrets read now (the cache keeps no
    /// values of Secrets that are not the operator's).
    async fn account_settings(&self, ns: &str, name: &str) -> Result<Settings, NoApi> {
        let account: Option<Arc<Account>> = self
            .caches
            .assets
            .accounts
            .store()
            .get(&ObjectRef::new(name).within(ns));
        let Some(account) = account else {
            return Err(NoApi::Misconfigured(format!(
                "Account {name:?} does not exist in namespace {ns:?}: create it, or fix \
                 spec.account"
            )));
        };
        let spec = &account.spec;
        if spec.servers.is_empty() {
            return Err(NoApi::Misconfigured(format!(
                "Account {name:?} lists no spec.servers"
            )));
        }
        let secrets: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), ns);
        let read = |secret: String, key: String, field: &'static str| {
            let secrets = secrets.clone();
            async move {
                let s = secrets.get_opt(&secret).await.map_err(|e| {
                    NoApi::Unreachable(format!("cannot read Secret {secret:?}: {e}"))
                })?;
                let s = s.ok_or_else(|| {
                    NoApi::Misconfigured(format!(
                        "Account {name:?} {field}: Secret {secret:?} does not exist"
                    ))
                })?;
                s.data
                    .and_then(|mut d| d.remove(&key))
                    .map(|v| v.0)
                    .ok_or_else(|| {
                        NoApi::Misconfigured(format!(
                            "Account {name:?} {field}: Secret {secret:?} has no key {key:?}"
                        ))
                    })
            }
        };
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).trim().to_string();
        let login = if let Some(c) = &spec.creds {
            match &c.secret {
                Some(s) => Login::Creds(text(
                    read(s.name.clone(), c.file.clone(), "spec.creds").await?,
                )),
                None => Login::CredsFile(c.file.clone().into()),
            }
        } else if let Some(n) = spec
            .nkey
            .as_ref()
            .and_then(|n| Some((n.secret.clone()?, n.seed.clone())))
        {
            Login::NKey(text(read(n.0.name, n.1, "spec.nkey").await?))
        } else if let Some(t) = spec
            .token
            .as_ref()
            .and_then(|t| Some((t.secret.clone()?, t.token.clone())))
        {
            Login::Token(text(read(t.0.name, t.1, "spec.token").await?))
        } else if let Some(u) = spec
            .user
            .as_ref()
            .and_then(|u| Some((u.secret.clone()?, u.user.clone(), u.password.clone())))
        {
            let user = text(read(u.0.name.clone(), u.1, "spec.user").await?);
            let password = text(read(u.0.name, u.2, "spec.user").await?);
            Login::User(user, password)
        } else {
            Login::Anonymous
        };
        let tls = match &spec.tls {
            None => Tls::Off,
            Some(t) => match &t.secret {
                None => Tls::Files {
                    ca: (!t.ca.is_empty())
                        .then(|| PathBuf::from(&t.ca))
                        .into_iter()
                        .collect(),
                    cert: (!t.cert.is_empty())
                        .then(|| (PathBuf::from(&t.cert), PathBuf::from(&t.key))),
                },
                Some(s) => {
                    let ca = if t.ca.is_empty() {
                        None
                    } else {
                        Some(read(s.name.clone(), t.ca.clone(), "spec.tls.ca").await?)
                    };
                    let cert = if t.cert.is_empty() {
                        None
                    } else {
                        Some((
                            read(s.name.clone(), t.cert.clone(), "spec.tls.cert").await?,
                            read(s.name.clone(), t.key.clone(), "spec.tls.key").await?,
                        ))
                    };
                    Tls::Pem { ca, cert }
                }
            },
        };
        Ok(Settings {
            servers: spec.servers.clone(),
            login,
            tls,
            tls_first: spec.tls_first,
        })
    }
}

/// `nats://ip:4222` of every running member.
fn member_urls(pods: &[Arc<Pod>]) -> Vec<String> {
    let mut urls: Vec<String> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.as_ref()?.pod_ip.as_deref())
        .map(|ip| format!("nats://{}", crate::controller::apply::client_address(ip)))
        .collect();
    urls.sort();
    urls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::v1beta2::ClusterRef;

    #[test]
    fn targets_in_order() {
        let mut c = Connection::default();
        assert_eq!(
            target(&c, &["js"], false),
            Ok(Target::Cluster {
                name: "js".into(),
                account: "$G".into()
            })
        );
        assert!(target(&c, &[], false).is_err_and(|e| e.contains("spec.natsClusterRef.name")));
        assert!(target(&c, &["a", "b"], false).is_err_and(|e| e.contains("(a, b)")));
        assert_eq!(target(&c, &["a", "b"], true), Ok(Target::Default));
        c.servers = vec!["nats://elsewhere:4222".into()];
        assert_eq!(target(&c, &["js"], true), Ok(Target::Servers));
        c.account = Some("a".into());
        assert_eq!(target(&c, &["js"], true), Ok(Target::Account("a".into())));
        c.nats_cluster_ref = Some(ClusterRef {
            name: "js".into(),
            account: Some("B".into()),
        });
        assert_eq!(
            target(&c, &[], true),
            Ok(Target::Cluster {
                name: "js".into(),
                account: "B".into()
            })
        );
    }

    #[test]
    fn the_pool_key_ignores_servers_and_follows_credentials() {
        let a = Settings {
            servers: vec!["nats://10.0.0.1:4222".into()],
            login: Login::User("u".into(), "p".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        b.servers = vec!["nats://10.0.0.2:4222".into()];
        assert_eq!(a.credentials_digest(), b.credentials_digest());
        b.login = Login::User("u".into(), "q".into());
        assert_ne!(a.credentials_digest(), b.credentials_digest());
    }
}
