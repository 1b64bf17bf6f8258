//! Self-managed mode: a CA kept in a Kubernetes Secret, shared by every replica, with
//! in-memory serving certificates and overlapping CA rotation.
//!
//! * **First writer wins.** A replica reads the Secret; if it does not exist it creates it, and
//!   if that create fails with `AlreadyExists` it reads the winner's and uses it. Every later
//!   change is a `replace` carrying the `resourceVersion` it read, so concurrent replicas never
//!   overwrite each other: the loser re-reads and re-plans. All replicas therefore serve
//!   certificates that the same caBundle trusts.
//! * **Serving certificates** are issued by each replica in memory from the Secret's signing CA
//!   and renewed at 2/3 of their life, checked against the wall clock every
//!   [`SelfManagedConfig::check_interval`] (never one long sleep, so suspend or clock jumps are
//!   noticed), and at once when the signing CA changes.
//! * **CA rotation** follows [`crate::rotation`]: the next CA is added to `ca-bundle.crt` at 2/3
//!   of the signer's life, signs only after [`RotationPolicy::promote_after`], and the old CA
//!   leaves the bundle once expired.
//!
//! Secret keys: `ca.crt`, `ca.key` (the signing CA), `ca-bundle.crt` (every still-trusted CA),
//! and during a rotation `next-ca.crt`, `next-ca.key`, `next-ca-added-at` (Unix seconds).
//! Other keys in the Secret are preserved.
//!
//! The caBundle to inject is published on a [`tokio::sync::watch`] channel
//! ([`SelfManaged::ca_bundle`]); feed it to [`crate::inject::CaBundleInjector`].

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;

use crate::{
    error::{Error, Result},
    generate::{
        CertificateAuthority, ServingCert, cert_der_to_pem, certs_from_pem, inspect_cert_der,
    },
    rotation::{
        BundleEntry, CaSet, CaStep, LeafStep, LeafView, RotationPolicy, plan_ca, plan_leaf,
    },
    tls::CertResolver,
};

/// Secret key of the signing CA certificate.
pub const KEY_CA_CRT: &str = "ca.crt";
/// Secret key of the signing CA private key.
pub const KEY_CA_KEY: &str = "ca.key";
/// Secret key of the bundle of every still-trusted CA (what the caBundle must contain).
pub const KEY_CA_BUNDLE: &str = "ca-bundle.crt";
/// Secret key of the pending (next) CA certificate during a rotation.
pub const KEY_NEXT_CRT: &str = "next-ca.crt";
/// Secret key of the pending (next) CA private key during a rotation.
pub const KEY_NEXT_KEY: &str = "next-ca.key";
/// Secret key of the time (Unix seconds) the pending CA was added to the bundle.
pub const KEY_NEXT_ADDED_AT: &str = "next-ca-added-at";

/// The `data` of a Secret.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// A Secret as read from a [`SecretStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSecret {
    /// Its data.
    pub data: SecretData,
    /// Its `metadata.resourceVersion`, for optimistic concurrency.
    pub resource_version: Option<String>,
}

/// Result of a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; the stored result.
    Written(StoredSecret),
    /// `create` lost: another writer created it first.
    AlreadyExists,
    /// `replace` lost: the resourceVersion is stale.
    Conflict,
    /// `replace` found no Secret (deleted meanwhile).
    NotFound,
}

/// Where the CA Secret lives: the Kubernetes API ([`KubeSecretStore`]) or memory
/// ([`MemorySecretStore`], for tests).
pub trait SecretStore: Send + Sync + 'static {
    /// Reads the Secret; `None` if it does not exist.
    fn get(&self) -> impl Future<Output = Result<Option<StoredSecret>>> + Send;
    /// Creates the Secret unless it exists.
    fn create(&self, data: SecretData) -> impl Future<Output = Result<WriteOutcome>> + Send;
    /// Replaces the Secret's data if its resourceVersion is still `resource_version`.
    fn replace(
        &self,
        data: SecretData,
        resource_version: Option<String>,
    ) -> impl Future<Output = Result<WriteOutcome>> + Send;
}

/// A [`SecretStore`] backed by one named Secret in the Kubernetes API. Needs RBAC `get`,
/// `create` and `update` on that Secret.
#[derive(Clone)]
pub struct KubeSecretStore {
    api: Api<Secret>,
    name: String,
}

impl std::fmt::Debug for KubeSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSecretStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl KubeSecretStore {
    /// The Secret `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
        }
    }

    fn to_secret(&self, data: SecretData, resource_version: Option<String>) -> Secret {
        let labels = BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "nats-operator".to_string(),
        )]);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                resource_version,
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_string()),
            data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
            ..Secret::default()
        }
    }
}

fn stored(secret: Secret) -> StoredSecret {
    StoredSecret {
        data: secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
        resource_version: secret.metadata.resource_version,
    }
}

impl SecretStore for KubeSecretStore {
    async fn get(&self) -> Result<Option<StoredSecret>> {
        Ok(self.api.get_opt(&self.name).await?.map(stored))
    }

    async fn create(&self, data: SecretData) -> Result<WriteOutcome> {
        let secret = self.to_secret(data, None);
        match self.api.create(&PostParams::default(), &secret).await {
            Ok(s) => Ok(WriteOutcome::Written(stored(s))),
            Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => {
                Ok(WriteOutcome::AlreadyExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn replace(
        &self,
        data: SecretData,
        resource_version: Option<String>,
    ) -> Result<WriteOutcome> {
        let secret = self.to_secret(data, resource_version);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &secret)
            .await
        {
            Ok(s) => Ok(WriteOutcome::Written(stored(s))),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(WriteOutcome::Conflict),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(WriteOutcome::NotFound),
            Err(e) => Err(e.into()),
        }
    }
}

/// An in-memory [`SecretStore`] with apiserver-like semantics (AlreadyExists, resourceVersion
/// conflicts). Clones share the same Secret, so several [`SelfManaged`] can act as replicas.
#[derive(Clone, Debug, Default)]
pub struct MemorySecretStore {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    secret: Option<StoredSecret>,
    version: u64,
    writes: u64,
}

impl MemorySecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored Secret, if any.
    pub fn snapshot(&self) -> Option<StoredSecret> {
        self.lock().secret.clone()
    }

    /// Deletes the Secret (as `kubectl delete secret` would).
    pub fn delete(&self) {
        self.lock().secret = None;
    }

    /// How many successful writes happened.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Overwrites the data unconditionally (as a human with `kubectl edit` would).
    pub fn force_set(&self, data: SecretData) {
        let mut st = self.lock();
        st.version += 1;
        st.writes += 1;
        let rv = Some(st.version.to_string());
        st.secret = Some(StoredSecret {
            data,
            resource_version: rv,
        });
    }
}

impl SecretStore for MemorySecretStore {
    async fn get(&self) -> Result<Option<StoredSecret>> {
        Ok(self.snapshot())
    }

    async fn create(&self, data: SecretData) -> Result<WriteOutcome> {
        let mut st = self.lock();
        if st.secret.is_some() {
            return Ok(WriteOutcome::AlreadyExists);
        }
        st.version += 1;
        st.writes += 1;
        let s = StoredSecret {
            data,
            resource_version: Some(st.version.to_string()),
        };
        st.secret = Some(s.clone());
        Ok(WriteOutcome::Written(s))
    }

    async fn replace(
        &self,
        data: SecretData,
        resource_version: Option<String>,
    ) -> Result<WriteOutcome> {
        let mut st = self.lock();
        let Some(current) = &st.secret else {
            return Ok(WriteOutcome::NotFound);
        };
        if resource_version.is_some() && resource_version != current.resource_version {
            return Ok(WriteOutcome::Conflict);
        }
        st.version += 1;
        st.writes += 1;
        let s = StoredSecret {
            data,
            resource_version: Some(st.version.to_string()),
        };
        st.secret = Some(s.clone());
        Ok(WriteOutcome::Written(s))
    }
}

/// Settings of [`SelfManaged`].
#[derive(Clone, Debug)]
pub struct SelfManagedConfig {
    /// SANs of the serving certificate (DNS names or IP literals), e.g. [`crate::service_sans`].
    pub sans: Vec<String>,
    /// Prefix of generated CA common names; the Unix time is appended to make each CA distinct.
    pub ca_common_name: String,
    /// Lifetimes and promotion delay.
    pub policy: RotationPolicy,
    /// How often the wall clock is compared with the renewal points (default 10 s).
    pub check_interval: Duration,
    /// How often the Secret is re-read to pick up other replicas' changes (default 60 s). Must be
    /// well below [`RotationPolicy::promote_after`].
    pub refresh_interval: Duration,
}

impl SelfManagedConfig {
    /// Defaults (5-year CA, 30-day serving certificates, 15-minute promotion delay) for `sans`.
    pub fn new(sans: Vec<String>) -> Self {
        Self {
            sans,
            ca_common_name: "nats-operator-webhook-ca".to_string(),
            policy: RotationPolicy::default(),
            check_interval: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(60),
        }
    }

    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<()> {
        self.policy.validate()?;
        if self.sans.is_empty() {
            return Err(Error::Config("at least one SAN is required".into()));
        }
        if self.check_interval.is_zero() || self.refresh_interval.is_zero() {
            return Err(Error::Config("intervals must be non-zero".into()));
        }
        if self.refresh_interval + self.check_interval >= self.policy.promote_after {
            return Err(Error::Config(
                "promote_after must exceed refresh_interval + check_interval, so every replica \
                 publishes a new CA before it signs"
                    .into(),
            ));
        }
        Ok(())
    }
}

type CaState = CaSet<Arc<CertificateAuthority>>;

/// Parses the CA state out of Secret data. Unusable parts are dropped (with a warning) so that
/// the planner repairs them.
pub fn ca_state_from_data(data: &SecretData) -> CaSet<Arc<CertificateAuthority>> {
    let load = |crt: &str, key: &str| -> Option<Arc<CertificateAuthority>> {
        let (c, k) = (data.get(crt)?, data.get(key)?);
        let parsed = std::str::from_utf8(c)
            .ok()
            .zip(std::str::from_utf8(k).ok())
            .ok_or_else(|| Error::InvalidSecret(format!("{crt}/{key} are not UTF-8")))
            .and_then(|(c, k)| CertificateAuthority::from_pem(c, k));
        match parsed {
            Ok(ca) => Some(Arc::new(ca)),
            Err(e) => {
                tracing::warn!(error = %e, key = crt, "ignoring unusable CA in secret");
                None
            }
        }
    };
    let signer = load(KEY_CA_CRT, KEY_CA_KEY);
    let next = load(KEY_NEXT_CRT, KEY_NEXT_KEY).map(|ca| {
        let added = data
            .get(KEY_NEXT_ADDED_AT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap_or_else(|| ca.validity().not_before);
        (ca, added)
    });
    let bundle = data
        .get(KEY_CA_BUNDLE)
        .and_then(|pem| match certs_from_pem(pem) {
            Ok(certs) => Some(certs),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unusable CA bundle in secret");
                None
            }
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|der| {
            let info = inspect_cert_der(&der).ok()?;
            Some(BundleEntry {
                der: der.to_vec(),
                validity: info.validity,
            })
        })
        .collect();
    CaSet {
        signer,
        next,
        bundle,
    }
}

/// The caBundle PEM of a CA state: every bundle entry, in order.
pub fn bundle_pem<C>(state: &CaSet<C>) -> Vec<u8> {
    state
        .bundle
        .iter()
        .map(|e| cert_der_to_pem(&e.der))
        .collect::<String>()
        .into_bytes()
}

/// Writes the CA state into Secret data, keeping keys it does not own from `base`.
pub fn ca_state_to_data(state: &CaSet<Arc<CertificateAuthority>>, base: &SecretData) -> SecretData {
    let mut data = base.clone();
    for k in [
        KEY_CA_CRT,
        KEY_CA_KEY,
        KEY_NEXT_CRT,
        KEY_NEXT_KEY,
        KEY_NEXT_ADDED_AT,
    ] {
        data.remove(k);
    }
    if let Some(s) = &state.signer {
        data.insert(KEY_CA_CRT.into(), s.cert_pem().as_bytes().to_vec());
        data.insert(KEY_CA_KEY.into(), s.key_pem().as_bytes().to_vec());
    }
    if let Some((n, added)) = &state.next {
        data.insert(KEY_NEXT_CRT.into(), n.cert_pem().as_bytes().to_vec());
        data.insert(KEY_NEXT_KEY.into(), n.key_pem().as_bytes().to_vec());
        let secs = added
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        data.insert(KEY_NEXT_ADDED_AT.into(), secs.to_string().into_bytes());
    }
    data.insert(KEY_CA_BUNDLE.into(), bundle_pem(state));
    data
}

/// Self-managed serving certificates backed by a CA Secret. Create with
/// [`SelfManaged::bootstrap`], hand [`SelfManaged::resolver`] to the TLS server and
/// [`SelfManaged::ca_bundle`] to the injector, then spawn [`SelfManaged::run`].
pub struct SelfManaged<S: SecretStore = KubeSecretStore> {
    store: S,
    config: SelfManagedConfig,
    state: CaState,
    leaf: Option<ServingCert>,
    resolver: Arc<CertResolver>,
    bundle_tx: watch::Sender<Vec<u8>>,
    next_refresh: SystemTime,
}

impl<S: SecretStore> std::fmt::Debug for SelfManaged<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfManaged")
            .field("signer", &self.state.signer)
            .field("next", &self.state.next)
            .field("leaf", &self.leaf)
            .finish_non_exhaustive()
    }
}

impl SelfManaged<KubeSecretStore> {
    /// [`SelfManaged::bootstrap`] with the Secret `secret_name` in `namespace`.
    pub async fn kube(
        client: Client,
        namespace: &str,
        secret_name: &str,
        config: SelfManagedConfig,
    ) -> Result<Self> {
        Self::bootstrap(KubeSecretStore::new(client, namespace, secret_name), config).await
    }
}

impl<S: SecretStore> SelfManaged<S> {
    /// Reads or creates the CA Secret (first writer wins), rotates it if due, and issues the
    /// first serving certificate, so the resolver is ready when this returns.
    pub async fn bootstrap(store: S, config: SelfManagedConfig) -> Result<Self> {
        config.validate()?;
        let (bundle_tx, _) = watch::channel(Vec::new());
        let mut this = Self {
            store,
            config,
            state: CaState::default(),
            leaf: None,
            resolver: Arc::new(CertResolver::empty()),
            bundle_tx,
            next_refresh: UNIX_EPOCH,
        };
        let now = SystemTime::now();
        this.sync_with_store(now).await?;
        this.next_refresh = now + this.config.refresh_interval;
        this.ensure_leaf(now)?;
        Ok(this)
    }

    /// The resolver serving this replica's current certificate.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// A watch of the caBundle PEM (every still-trusted CA) to inject into webhook
    /// configurations and CRDs.
    pub fn ca_bundle(&self) -> watch::Receiver<Vec<u8>> {
        self.bundle_tx.subscribe()
    }

    /// The caBundle PEM now.
    pub fn current_bundle(&self) -> Vec<u8> {
        self.bundle_tx.borrow().clone()
    }

    /// The serving certificate now.
    pub fn serving_cert(&self) -> Option<&ServingCert> {
        self.leaf.as_ref()
    }

    /// The CA that signs serving certificates now.
    pub fn signer(&self) -> Option<&Arc<CertificateAuthority>> {
        self.state.signer.as_ref()
    }

    /// One iteration of the background loop at wall-clock time `now`: re-reads the Secret when
    /// due (or when a rotation step is due), then renews the serving certificate if needed.
    pub async fn tick(&mut self, now: SystemTime) -> Result<()> {
        let rotation_due = !matches!(
            plan_ca(now, &self.state.view(), &self.config.policy),
            CaStep::Steady { .. }
        );
        // A clock that jumped backwards must not postpone the refresh indefinitely.
        let refresh_due =
            now >= self.next_refresh || self.next_refresh > now + self.config.refresh_interval;
        let mut result = Ok(());
        if rotation_due || refresh_due {
            match self.sync_with_store(now).await {
                Ok(()) => self.next_refresh = now + self.config.refresh_interval,
                // Keep serving from what we have; retry on the next tick.
                Err(e) => result = Err(e),
            }
        }
        self.ensure_leaf(now)?;
        result
    }

    /// Runs until `shutdown` completes, ticking every [`SelfManagedConfig::check_interval`].
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let mut interval = tokio::time::interval(self.config.check_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = interval.tick() => {
                    if let Err(e) = self.tick(SystemTime::now()).await {
                        tracing::warn!(error = %e, "self-managed certificate maintenance failed; will retry");
                    }
                }
            }
        }
    }

    fn generate_ca(&self, now: SystemTime) -> Result<Arc<CertificateAuthority>> {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let cn = format!("{}@{secs}", self.config.ca_common_name);
        Ok(Arc::new(CertificateAuthority::generate_at(
            &cn,
            now,
            self.config.policy.ca_lifetime,
        )?))
    }

    /// Read-plan-write against the store with optimistic concurrency, then adopt the result.
    async fn sync_with_store(&mut self, now: SystemTime) -> Result<()> {
        let policy = self.config.policy;
        for attempt in 0..8 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            match self.store.get().await? {
                None => {
                    // First start, or the Secret was deleted: (re)create it, from the CA we
                    // already serve if any, so a deleted Secret does not break trust.
                    let mut state = self.state.clone();
                    let mut generate = |t| self.generate_ca(t);
                    state.reconcile(now, &policy, &mut generate)?;
                    let data = ca_state_to_data(&state, &SecretData::new());
                    match self.store.create(data).await? {
                        WriteOutcome::Written(_) => {
                            tracing::info!("created CA secret");
                            self.adopt(state);
                            return Ok(());
                        }
                        other => {
                            tracing::debug!(?other, "CA secret created concurrently; re-reading");
                        }
                    }
                }
                Some(stored) => {
                    let mut state = ca_state_from_data(&stored.data);
                    let mut generate = |t| self.generate_ca(t);
                    let (changed, _) = state.reconcile(now, &policy, &mut generate)?;
                    if !changed {
                        self.adopt(state);
                        return Ok(());
                    }
                    let data = ca_state_to_data(&state, &stored.data);
                    match self.store.replace(data, stored.resource_version).await? {
                        WriteOutcome::Written(_) => {
                            tracing::info!("updated CA secret (rotation step)");
                            self.adopt(state);
                            return Ok(());
                        }
                        other => {
                            tracing::debug!(?other, "CA secret changed concurrently; re-reading");
                        }
                    }
                }
            }
        }
        Err(Error::InvalidSecret(
            "gave up after repeated write conflicts on the CA secret".into(),
        ))
    }

    fn adopt(&mut self, state: CaState) {
        let bundle = bundle_pem(&state);
        self.state = state;
        self.bundle_tx.send_if_modified(|current| {
            if *current == bundle {
                false
            } else {
                *current = bundle;
                true
            }
        });
    }

    fn ensure_leaf(&mut self, now: SystemTime) -> Result<()> {
        let signer = self
            .state
            .signer
            .clone()
            .ok_or_else(|| Error::InvalidSecret("no signing CA".into()))?;
        let view = self.leaf.as_ref().map(|l| LeafView {
            issued_at: l.issued_at(),
            validity: l.validity(),
            signed_by_signer: l.issuer_der() == signer.cert_der(),
        });
        if let LeafStep::Issue = plan_leaf(now, view.as_ref()) {
            let leaf = signer.issue_serving_at(
                &self.config.sans,
                now,
                self.config.policy.serving_lifetime,
            )?;
            self.resolver.set(leaf.certified_key()?);
            tracing::info!(
                serial = %leaf.info().serial_hex,
                ca = %signer.info().subject,
                "issued serving certificate"
            );
            self.leaf = Some(leaf);
        }
        Ok(())
    }
}
