//! Rendering: the pure functions that turn a `v1beta1` NatsCluster into its children
//! (the config Secret with `nats.conf`, the member Pods, the client and management
//! Services, the PodDisruptionBudget, the JetStream PersistentVolumeClaims). No I/O:
//! typed k8s-openapi objects in and out, so the reconciler and `nats-operator render`
//! produce byte-identical objects.
//!
//! Decisions that differ from the Go operator are documented where they are made:
//! [`nats_conf`] (the `nats.conf` keys), [`pod`] (security context, probes, lame duck),
//! [`services`] (selectors without `nats_version`).

pub mod conf_writer;
pub mod desired;
pub mod inputs;
pub mod labels;
pub mod monitor;
pub mod nats_conf;
pub mod pdb;
pub mod pod;
pub mod secret;
pub mod services;
pub mod system_user;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sha2::{Digest, Sha256};

use crate::api::v1beta1::{self as b, NatsCluster};

pub use desired::{Desired, Member, desired};
pub use inputs::{InputProblem, auth_inputs};
pub use monitor::pod_monitor;
pub use nats_conf::{AuthInputs, RenderedConf, ServiceRoleUser, nats_conf};
pub use pdb::disruption_budget;
pub use pod::{member_pod, member_pvc};
pub use secret::config_secret;
pub use services::{client_service, management_service};

/// Directory of the config Secret in the pods (`nats.conf` is in it).
pub const CONFIG_DIR: &str = "/etc/nats-config";
/// The config file.
pub const CONFIG_FILE: &str = "/etc/nats-config/nats.conf";
/// Key of `nats.conf` in the config Secret.
pub const CONFIG_KEY: &str = "nats.conf";
/// Directory of the pid file (an emptyDir shared with the reloader).
pub const PID_DIR: &str = "/var/run/nats";
/// The pid file.
pub const PID_FILE: &str = "/var/run/nats/nats.pid";
/// Mount directory of the client TLS Secret (as in the Go operator).
pub const CLIENT_TLS_DIR: &str = "/etc/nats-server-tls-certs";
/// Mount directory of the routes TLS Secret.
pub const ROUTES_TLS_DIR: &str = "/etc/nats-routes-tls-certs";
/// Mount directory of the gateway TLS Secret.
pub const GATEWAY_TLS_DIR: &str = "/etc/nats-gateways-tls-certs";
/// Mount directory of the leafnode TLS Secret.
pub const LEAFNODE_TLS_DIR: &str = "/etc/nats-leafnodes-tls-certs";
/// Mount directory of the websocket TLS Secret.
pub const WEBSOCKET_TLS_DIR: &str = "/etc/nats-websocket-tls-certs";
/// Mount path of the MQTT TLS Secret.
pub const MQTT_TLS_DIR: &str = "/etc/nats-mqtt-tls-certs";
/// Mount directory of the operator JWT Secret (file `op.jwt`).
pub const OPERATOR_JWT_DIR: &str = "/etc/nats-operator";
/// File name of the operator JWT in its Secret.
pub const OPERATOR_JWT_FILE: &str = "op.jwt";
/// Mount directory of the JetStream store (PVC or emptyDir).
pub const JETSTREAM_DIR: &str = "/data/jetstream";
/// Directory (relative to [`CONFIG_DIR`]) where the boot-config init container writes
/// the advertise files.
pub const ADVERTISE_DIR: &str = "/etc/nats-config/advertise";

/// Annotation with the SHA-256 of the rendered pod (labels, annotations and spec,
/// without the two hash annotations): a pod whose value differs from a fresh render is
/// out of date and gets rolled.
pub const POD_SPEC_HASH_ANNOTATION: &str = "nats.io/pod-spec-hash";
/// Annotation with the SHA-256 of the `nats.conf` the pod was created with.
pub const CONFIG_HASH_ANNOTATION: &str = "nats.io/config-hash";
/// Annotation with the server version of a pod (as the Go operator wrote it).
pub const VERSION_ANNOTATION: &str = "nats.version";

/// Where `nats.conf` expects the files it references. The defaults are the mount
/// paths the rendered pods use; tests point them at a temporary directory so that
/// `nats-server -t` can check a config whose files exist, without rewriting the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Client TLS files (and HTTPS monitoring).
    pub client_tls: String,
    /// Routes TLS files.
    pub routes_tls: String,
    /// Gateway TLS files.
    pub gateway_tls: String,
    /// Leafnode TLS files.
    pub leafnode_tls: String,
    /// Websocket TLS files.
    pub websocket_tls: String,
    /// MQTT TLS files.
    pub mqtt_tls: String,
    /// Directory of `op.jwt`.
    pub operator_jwt: String,
    /// JetStream `store_dir`.
    pub jetstream: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            client_tls: CLIENT_TLS_DIR.into(),
            routes_tls: ROUTES_TLS_DIR.into(),
            gateway_tls: GATEWAY_TLS_DIR.into(),
            leafnode_tls: LEAFNODE_TLS_DIR.into(),
            websocket_tls: WEBSOCKET_TLS_DIR.into(),
            mqtt_tls: MQTT_TLS_DIR.into(),
            operator_jwt: OPERATOR_JWT_DIR.into(),
            jetstream: JETSTREAM_DIR.into(),
        }
    }
}

impl Paths {
    /// Every directory under `root` (`<root>/etc/nats-server-tls-certs`, ...).
    pub fn under(root: &std::path::Path) -> Self {
        let d = Self::default();
        let j = |p: &str| root.join(p.trim_start_matches('/')).display().to_string();
        Self {
            client_tls: j(&d.client_tls),
            routes_tls: j(&d.routes_tls),
            gateway_tls: j(&d.gateway_tls),
            leafnode_tls: j(&d.leafnode_tls),
            websocket_tls: j(&d.websocket_tls),
            mqtt_tls: j(&d.mqtt_tls),
            operator_jwt: j(&d.operator_jwt),
            jetstream: j(&d.jetstream),
        }
    }
}

/// A TLS file name from the spec resolved against its mount directory: absolute names
/// are used as they are (for every listener; the Go operator broke them for clients).
pub fn tls_path(dir: &str, file: &str) -> String {
    if file.starts_with('/') {
        file.to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), file)
    }
}

/// Identity of the NatsCluster being rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMeta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when the object has none, as kubectl does).
    pub namespace: String,
    /// `metadata.uid`; without it no owner references are rendered (`render` CLI).
    pub uid: Option<String>,
}

impl ClusterMeta {
    /// A cluster in `namespace` without a uid.
    pub fn new(name: &str, namespace: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            uid: None,
        }
    }

    /// The identity of a stored NatsCluster.
    pub fn of(cluster: &NatsCluster) -> Result<Self, RenderError> {
        let name = cluster
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(RenderError::MissingName)?;
        Ok(Self {
            name,
            namespace: cluster
                .metadata
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            uid: cluster.metadata.uid.clone().filter(|u| !u.is_empty()),
        })
    }

    /// The headless management Service `<name>-mgmt`.
    pub fn management_service(&self) -> String {
        format!("{}-mgmt", self.name)
    }

    /// The Secret with the operator's system user (JetStream clusters).
    pub fn system_user_secret(&self) -> String {
        format!("{}-system-user", self.name)
    }

    /// The DNS name of a member pod: `<pod>.<name>-mgmt.<ns>.svc`.
    pub fn pod_host(&self, pod: &str) -> String {
        format!("{pod}.{}.{}.svc", self.management_service(), self.namespace)
    }

    /// The owner reference every child carries (none without a uid).
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        self.uid.as_ref().map(|uid| OwnerReference {
            api_version: crate::api::V1BETA1.into(),
            kind: "NatsCluster".into(),
            name: self.name.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
    }

    /// [`Self::owner_reference`] as the list `metadata.ownerReferences` takes.
    pub fn owner_references(&self) -> Option<Vec<OwnerReference>> {
        self.owner_reference().map(|o| vec![o])
    }
}

/// Name of member `index` (1-based): `<name>-<index in lower-case hex>`, as the Go
/// operator named them (`-1` … `-9`, `-a` … `-f`, `-10`), so clusters it created keep
/// their pods, DNS names and route certificates.
pub fn pod_name(cluster: &str, index: u32) -> String {
    format!("{cluster}-{index:x}")
}

/// The member index of `pod` if it is named like a member of `cluster`.
pub fn member_index(cluster: &str, pod: &str) -> Option<u32> {
    let hex = pod.strip_prefix(cluster)?.strip_prefix('-')?;
    if hex.is_empty()
        || hex.len() > 8
        || (hex.len() > 1 && hex.starts_with('0'))
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().filter(|i| *i > 0)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a cluster cannot be rendered. The validating webhook rejects most of these
/// earlier; the renderer still refuses rather than writing something unsafe.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The NatsCluster has no `metadata.name`.
    #[error("the NatsCluster has no metadata.name")]
    MissingName,
    /// A value cannot be written safely into `nats.conf`.
    #[error(transparent)]
    Conf(#[from] conf_writer::ConfError),
    /// An authorization Secret does not hold a JSON object.
    #[error("{0} authorization must be a JSON object")]
    Auth(&'static str),
    /// The accounts Secret does not hold a JSON object of accounts.
    #[error("spec.auth.accounts.secret must hold a JSON object of accounts")]
    Accounts,
    /// `spec.config.merge` is not an object.
    #[error("spec.config.merge must be an object")]
    Merge,
    /// `spec.pod.template` is not a PodTemplateSpec.
    #[error("spec.pod.template is not a valid pod template: {0}")]
    Template(String),
}

/// Whether the spec enables JetStream (`spec.jetstream` present, `enabled` not false).
pub fn jetstream_enabled(spec: &b::NatsClusterSpec) -> bool {
    spec.jetstream
        .as_ref()
        .is_some_and(b::JetStream::is_enabled)
}

/// Whether the cluster's one member runs without a `cluster` block (JetStream on one
/// member, see [`crate::api::data_guard::runs_standalone`]). Its pod carries
/// [`STANDALONE_ANNOTATION`], so a scale to or from one member restarts it: nats-server
/// cannot add or drop the cluster block by reload.
pub fn runs_standalone(spec: &b::NatsClusterSpec) -> bool {
    crate::api::data_guard::runs_standalone(
        jetstream_enabled(spec),
        spec.gateway.is_some(),
        spec.size,
    )
}

/// On the pod of a member that runs standalone (see [`runs_standalone`]).
pub const STANDALONE_ANNOTATION: &str = "nats.io/standalone";

/// Whether the members' monitoring port speaks HTTPS (`tls.httpsMonitoring`).
pub fn https_monitoring(spec: &b::NatsClusterSpec) -> bool {
    spec.tls.as_ref().is_some_and(|t| t.https_monitoring)
}

/// The MQTT listen port (`spec.mqtt.port`, default 1883), when MQTT is on.
pub fn mqtt_port(spec: &b::NatsClusterSpec) -> Option<i32> {
    spec.mqtt.as_ref().map(b::Mqtt::listen_port)
}

/// Whether a sidecar block is enabled.
pub(crate) fn enabled(s: Option<&b::Sidecar>) -> Option<&b::Sidecar> {
    s.filter(|s| s.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_members_in_hex_like_the_go_operator() {
        assert_eq!(pod_name("nats", 1), "nats-1");
        assert_eq!(pod_name("nats", 10), "nats-a");
        assert_eq!(pod_name("nats", 16), "nats-10");
        assert_eq!(member_index("nats", "nats-10"), Some(16));
        assert_eq!(member_index("nats", "nats-f"), Some(15));
        assert_eq!(member_index("nats", "nats-0"), None);
        assert_eq!(member_index("nats", "nats-01"), None);
        assert_eq!(member_index("nats", "nats-mgmt"), None);
        assert_eq!(member_index("nats", "nats-x-1"), None);
        assert_eq!(member_index("nats", "natsa-1"), None);
    }

    #[test]
    fn resolves_tls_paths() {
        assert_eq!(tls_path("/d", "ca.pem"), "/d/ca.pem");
        assert_eq!(tls_path("/d/", "/abs/ca.pem"), "/abs/ca.pem");
    }

    #[test]
    fn owner_reference_only_with_uid() {
        let mut m = ClusterMeta::new("n", "ns");
        assert!(m.owner_reference().is_none());
        m.uid = Some("u".into());
        let o = m.owner_reference();
        assert_eq!(o.as_ref().and_then(|o| o.controller), Some(true));
        assert_eq!(o.as_ref().and_then(|o| o.block_owner_deletion), Some(true));
        assert_eq!(o.map(|o| o.api_version), Some("nats.io/v1beta1".into()));
    }
}
