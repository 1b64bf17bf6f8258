//! `nats.io/v1beta1`: the storage version.
//!
//! It groups what belongs together (one TLS block per listener, auth per purpose, pod
//! policy with its sidecars, services), follows the Kubernetes API conventions
//! (camelCase, durations as strings, `metav1.Condition`s, `observedGeneration`) and has
//! room for JetStream storage, disruption budgets and topology spread.
//! Everything a `v1alpha2` object can say has a home here (see [`super::convert`]).

// kube-derive expands each `printcolumn(...)` into attributes clippy sees as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, ResourceRequirements, Toleration, TopologySpreadConstraint, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::cel;
use super::choices::{self, AccessMode, AntiAffinity, PullPolicy, ReclaimPolicy, ServerNameSource};
use super::serde_util::{
    is_false, is_zero_f64, is_zero_i32, is_zero_i64, preserve_unknown_object, string_map,
};

/// Specification of a NATS cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "nats.io",
    version = "v1beta1",
    kind = "NatsCluster",
    plural = "natsclusters",
    shortname = "nats",
    namespaced,
    status = "NatsClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    scale(
        spec_replicas_path = ".spec.size",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Size",
        type_ = "integer",
        json_path = ".spec.size",
        description = "Desired number of NATS servers"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "NATS servers that are ready"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.currentVersion",
        description = "NATS server version every member runs"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].reason",
        description = "Reason of the Ready condition"
    ),
    printcolumn(
        name = "JetStream",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='JetStreamHealthy')].reason",
        description = "Reason of the JetStreamHealthy condition"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NatsClusterSpec {
    /// Number of NATS servers (members). 0 means no servers. `kubectl scale` changes it.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub size: i32,
    /// NATS server version, such as `2.10.24`, or a `nightly`/`nightly-YYYYMMDD` tag.
    /// Used as the image tag. Defaults to the release this operator is tested with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Image repository of the NATS server (default `nats`); the image is `<image>:<version>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Pull policy of the NATS server image (`Always`, `IfNotPresent` or `Never`).
    #[serde(
        default,
        with = "choices::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "choices::string_schema", extend("enum" = PullPolicy::WIRE))]
    pub image_pull_policy: Option<PullPolicy>,
    /// Stop all changes to the cluster's children; the `Paused` condition says so.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Server settings written into `nats.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ServerConfig>,
    /// Settings for the NATS pods and their sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodPolicy>,
    /// TLS per listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Authentication and authorization per purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Extra routes: another NatsCluster in the namespace or an explicit route URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = cel::MAX_EXTRA_ROUTES))]
    pub extra_routes: Vec<ExtraRoute>,
    /// Gateway (super-cluster) listener and remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    /// Leafnode listener and remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnode: Option<Leafnode>,
    /// Websocket listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<Websocket>,
    /// The client Service and the headless management Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Services>,
    /// JetStream with per-member storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStream>,
    /// MQTT listener (needs JetStream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<Mqtt>,
}

/// `spec.config`: server settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// Enable debug logging.
    #[serde(default, skip_serializing_if = "is_false")]
    pub debug: bool,
    /// Enable protocol tracing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub trace: bool,
    /// Print timestamps in the server log (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logtime: Option<bool>,
    /// Write deadline for clients, a duration such as `10s`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub write_deadline: String,
    /// Maximum number of client connections.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_connections: i64,
    /// Maximum message payload in bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_payload: i64,
    /// Maximum pending bytes per client.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_pending: i64,
    /// Maximum subscriptions per client.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_subscriptions: i64,
    /// Maximum protocol control line length in bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_control_line: i64,
    /// Where `server_name` comes from: `FromEnv` (the `SERVER_NAME` variable of the pod)
    /// or `PodName` (stable per member). Empty leaves it to the server.
    #[serde(
        default,
        with = "choices::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "choices::string_schema", extend("enum" = ServerNameSource::WIRE))]
    pub server_name: Option<ServerNameSource>,
    /// Lame duck duration, a duration such as `30s`; pods get a longer grace period.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lame_duck_duration: String,
    /// Do not advertise the cluster's client URLs to clients.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_advertise: bool,
    /// Any other `nats.conf` keys, merged into the generated config (objects merge key
    /// by key, other values replace). An explicit escape hatch: the operator does not
    /// check what it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub merge: Option<serde_json::Value>,
}

/// `spec.pod`: settings for the NATS pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodPolicy {
    /// Extra pod labels (`app`, `nats_cluster` and `nats_version` are reserved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub annotations: BTreeMap<String, String>,
    /// Node selector; replaces the template's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub node_selector: BTreeMap<String, String>,
    /// Spread members over nodes: `Required` (one per node) or `Preferred` (best effort).
    #[serde(
        default,
        with = "choices::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "choices::string_schema", extend("enum" = AntiAffinity::WIRE))]
    pub anti_affinity: Option<AntiAffinity>,
    /// Topology spread constraints of the NATS pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Priority class of the NATS pods.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    /// Resources of the `nats` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Tolerations; replace the template's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Extra environment variables of the `nats` container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Extra volume mounts of the `nats` and reloader containers (volumes come from `template`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Base pod template (`PodTemplateSpec`) for every NATS pod; the first container is
    /// the base of the `nats` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: Option<serde_json::Value>,
    /// Host ports of the listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ports: Option<HostPorts>,
    /// Advertise the node's external IP (boot-config init container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_advertise: Option<Sidecar>,
    /// Config reloader sidecar: config and certificate changes reach running servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_reloader: Option<Sidecar>,
    /// Prometheus exporter sidecar on port 7777.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Sidecar>,
    /// A Prometheus Operator `PodMonitor` for the exporter (needs `metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_monitor: Option<PodMonitor>,
    /// PodDisruptionBudget of the cluster (on by default, `maxUnavailable: 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,
}

/// Host ports of the NATS container's listeners.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPorts {
    /// Expose the client port 4222 on the node (default false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub client: bool,
    /// Expose the gateway port on the node (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<bool>,
    /// Expose the leafnode port on the node (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnode: Option<bool>,
    /// Expose the websocket port on the node (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<bool>,
}

/// `spec.pod.podMonitor`: a `monitoring.coreos.com/v1` PodMonitor named like the
/// cluster, scraping the exporter's `metrics` port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitor {
    /// Create the PodMonitor.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enabled: bool,
    /// Labels of the PodMonitor (what a Prometheus `podMonitorSelector` matches).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// Scrape interval, such as `30s` (default: Prometheus's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interval: String,
}

/// A helper container of the NATS pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// Run the container.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enabled: bool,
    /// Image repository.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Image tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Image pull policy (`Always`, `IfNotPresent` or `Never`).
    #[serde(
        default,
        with = "choices::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "choices::string_schema", extend("enum" = PullPolicy::WIRE))]
    pub image_pull_policy: Option<PullPolicy>,
    /// Resources of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The cluster's PodDisruptionBudget.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    /// Create the PodDisruptionBudget (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Members that may be down at once through voluntary disruptions (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_unavailable: Option<i32>,
}

/// `spec.tls`: one block per listener.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// TLS for client connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientTls>,
    /// TLS between the cluster's servers (routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<ListenerTls>,
    /// TLS for gateways; needs `spec.gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<ListenerTls>,
    /// TLS for leafnodes; needs `spec.leafnode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnode: Option<ListenerTls>,
    /// TLS for websocket; needs `spec.websocket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<ListenerTls>,
    /// TLS for MQTT; needs `spec.mqtt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<ListenerTls>,
    /// Serve monitoring over HTTPS with the client certificate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub https_monitoring: bool,
}

/// TLS of one listener. File names are keys of `secret` or absolute paths.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::TLS_SECRET_REQUIRED]))]
pub struct ListenerTls {
    /// Secret with the certificate, key and CA, mounted into the pods.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// CA file (default `ca.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// Certificate file (default `server.pem`; `route.pem` for routes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    /// Private key file (default `server-key.pem`; `route-key.pem` for routes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    /// TLS handshake timeout in seconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub timeout: f64,
}

/// TLS for client connections.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::TLS_SECRET_REQUIRED]))]
pub struct ClientTls {
    /// Secret with the certificate, key and CA, mounted into the pods.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// CA file (default `ca.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// Certificate file (default `server.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    /// Private key file (default `server-key.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_file: String,
    /// TLS handshake timeout in seconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub timeout: f64,
    /// Require and verify client certificates.
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify: bool,
    /// Map client certificates to users (`verify_and_map`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify_and_map: bool,
    /// Allowed cipher suites (names as nats-server accepts them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Curve preferences (names as nats-server accepts them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve_preferences: Vec<String>,
}

/// `spec.auth`: authentication and authorization per purpose.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// Who may connect as a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<ClientAuth>,
    /// Credentials between the cluster's servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<SecretAuth>,
    /// Credentials of gateway connections; needs `spec.gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<SecretAuth>,
    /// Decentralized JWT authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuth>,
    /// Accounts (multi-tenancy) from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountsAuth>,
}

/// `spec.auth.accounts`: the `accounts` block of `nats.conf`, from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountsAuth {
    /// Secret whose one key holds the accounts as JSON, as `nats.conf` spells them:
    /// `{"TEAM_A": {"users": [{"user": "a", "password": "..."}], "jetstream": "enabled"}}`.
    /// Changes reach running servers by reload.
    #[serde(default)]
    pub secret: String,
}

/// Client authentication sources. When several are set, `serviceAccounts` wins, then
/// `secret`, then `file` (as in the Go operator).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuth {
    /// Users from NatsServiceRoles with bound ServiceAccount tokens.
    #[serde(default, skip_serializing_if = "is_false")]
    pub service_accounts: bool,
    /// Secret holding the authorization as JSON (one key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// File relative to `/etc/nats-config`, included by `nats.conf`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    /// Authentication timeout in seconds.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub timeout: i32,
    /// Clients that connect without credentials are this user (`no_auth_user`); it must
    /// be one of the users of `secret`, `file` or `spec.auth.accounts`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub no_auth_user: String,
}

/// Credentials from a Secret holding the authorization as JSON.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretAuth {
    /// Secret holding the authorization as JSON (one key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// Authentication timeout in seconds.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub timeout: i32,
}

/// Decentralized JWT authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuth {
    /// Secret with the operator JWT under the key `op.jwt`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operator_secret: String,
    /// Public key of the system account.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// Account resolver, such as `URL(https://host/jwt/v1/accounts/)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resolver: String,
}

/// An extra route: exactly one of `cluster` or `route`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::EXTRA_ROUTE]))]
pub struct ExtraRoute {
    /// Name of another NatsCluster in the same namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Route URL with scheme `nats`, `nats-route` or `tls`, such as `nats://host:6222`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route: String,
}

/// `spec.gateway`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::GATEWAY_PORT_REQUIRED, cel::GATEWAY_NAME_REQUIRED]))]
pub struct Gateway {
    /// Name of this gateway.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Gateway listen port.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
    /// Reject gateways that are not configured.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reject_unknown: bool,
    /// Remote gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<RemoteGateway>,
}

/// A remote gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteGateway {
    /// Name of the remote gateway.
    #[serde(default)]
    pub name: String,
    /// URL of the remote gateway.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// More URLs of the remote gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// `spec.leafnode`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Leafnode {
    /// Leafnode listen port; 0 means no listener (remotes only).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
    /// Remote leafnode connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<LeafnodeRemote>,
}

/// A remote leafnode connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafnodeRemote {
    /// URL of the remote (listed before `urls`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// URLs of the remote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Path of a credentials file mounted into the pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credentials: String,
}

/// `spec.websocket`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::WEBSOCKET_PORT_REQUIRED]))]
pub struct Websocket {
    /// Websocket listen port.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
    /// Handshake timeout, a duration such as `5s`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub handshake_timeout: String,
    /// Enable websocket compression.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compression: bool,
}

/// `spec.services`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    /// The client Service `<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ServicePolicy>,
    /// The headless management Service `<name>-mgmt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management: Option<ServicePolicy>,
}

/// Labels and annotations of a Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePolicy {
    /// Extra Service labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// Extra Service annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map")]
    pub annotations: BTreeMap<String, String>,
}

/// `spec.jetstream`: JetStream with per-member storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStream {
    /// Enable JetStream (default true when the block is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Limit of the memory store, such as `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_storage: Option<Quantity>,
    /// File store on one PersistentVolumeClaim per member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_storage: Option<FileStorage>,
    /// How long a rollout or scale-down waits for the other members' JetStream to be
    /// current before it reports `Degraded` (it keeps waiting: it never stops a member
    /// while data is catching up). A duration such as `10m` (default).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub catch_up_timeout: String,
}

impl JetStream {
    /// The block turns JetStream on (`enabled` is not `false`).
    pub fn is_enabled(&self) -> bool {
        self.enabled != Some(false)
    }
}

/// `spec.mqtt`: the MQTT listener. MQTT sessions live in JetStream, so it needs
/// `spec.jetstream`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mqtt {
    /// MQTT listen port (default 1883).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: i32,
    /// How long the server waits for a QoS 1 acknowledgement, a duration such as `30s`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ack_wait: String,
    /// Most unacknowledged QoS 1 messages per subscription.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(range(min = 0, max = 65535))]
    pub max_ack_pending: i32,
}

impl Mqtt {
    /// The listen port: `port`, or 1883 when unset.
    pub fn listen_port(&self) -> i32 {
        if self.port > 0 {
            self.port
        } else {
            super::consts::MQTT_PORT
        }
    }
}

/// JetStream file storage on a PersistentVolumeClaim per member.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::STORAGE_CLASS_IMMUTABLE]))]
pub struct FileStorage {
    /// Size of each member's volume, such as `10Gi`; it may grow, never shrink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// Storage class of the volumes (default: the cluster's default class); it cannot
    /// change once volumes exist.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub storage_class_name: String,
    /// Access mode of the volumes (default `ReadWriteOnce`).
    #[serde(
        default,
        with = "choices::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "choices::string_schema", extend("enum" = AccessMode::WIRE))]
    pub access_mode: Option<AccessMode>,
    /// What happens to a member's volume on scale-down: `Retain` (default) or `Delete`.
    #[serde(
        default,
        with = "choices::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "choices::string_schema", extend("enum" = ReclaimPolicy::WIRE))]
    pub reclaim_policy: Option<ReclaimPolicy>,
}

/// Observed state of a NatsCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded` and `Paused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Vec<Condition>,
    /// Members that exist (the scale subresource's replicas).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub replicas: i32,
    /// Members that are ready.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub ready_replicas: i32,
    /// Version every member runs; empty while members differ.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_version: String,
    /// Label selector of the members (for the scale subresource).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// The largest storage request among the members' JetStream volumes, such as `10Gi`.
    /// `spec.jetstream.fileStorage.size` may go back down to it (after a growth the
    /// storage class could not make), never below.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume_size: String,
    /// Since when the stop of a member (a rollout or a scale-down) has waited for every
    /// other member's JetStream to be current; absent when nothing waits. Kept here so
    /// that a new leader continues the same wait and `catchUpTimeout` counts from the
    /// first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// What the servers say about their JetStream data (with `spec.jetstream`), from the
    /// members' `/jsz`; refreshed every 30 s and on every change of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStreamStatus>,
}

/// `status.jetstream`: the data plane as the servers see it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamStatus {
    /// Server name of the meta leader; empty while the meta group has none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub meta_leader: String,
    /// The meta group's peers as its leader sees them, by name. A peer that is not a
    /// member of this cluster (a member removed without leaving the group) still counts
    /// towards the group's quorum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub meta_peers: Vec<MetaPeer>,
    /// Streams in the cluster (every account).
    #[serde(default)]
    pub streams: u64,
    /// Consumers in the cluster (every account).
    #[serde(default)]
    pub consumers: u64,
    /// The streams with the most replicas first (then by account and name), at most 20:
    /// a scale-down below the first one's replicas is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream_replicas: Vec<StreamReplicas>,
    /// Storage per member that answered, by pod name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStorage>,
}

/// A peer of the JetStream meta group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaPeer {
    /// Server name (the pod name for members).
    pub name: String,
    /// Seen recently and caught up.
    #[serde(default, skip_serializing_if = "is_false")]
    pub current: bool,
    /// Not seen recently.
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
    /// Meta operations it is behind.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub lag: u64,
}

/// A stream and its replica count.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct StreamReplicas {
    /// The stream's account (`$G` without accounts).
    pub account: String,
    /// The stream's name.
    pub name: String,
    /// Its replicas.
    pub replicas: u32,
}

/// One member's JetStream storage. Sizes are rounded up to whole MiB, so a status
/// changes with the data only every MiB.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStorage {
    /// The pod.
    pub name: String,
    /// File storage used.
    pub file_used: Quantity,
    /// File storage the server may use (its `max_file`).
    pub file_limit: Quantity,
    /// Memory storage used.
    pub memory_used: Quantity,
    /// Memory storage the server may use (its `max_mem`).
    pub memory_limit: Quantity,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// Conditions as a list-map keyed by `type`, as Kubernetes API conventions ask.
fn condition_list(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"]
    })
}

/// Permissions of a NatsServiceRole: the NATS user named like the ServiceAccount of the
/// same name, for the NatsCluster named by the label `nats_cluster`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "nats.io",
    version = "v1beta1",
    kind = "NatsServiceRole",
    plural = "natsserviceroles",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels.nats_cluster",
        description = "NatsCluster this role belongs to"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoleSpec {
    /// Publish and subscribe permissions of the role's user.
    #[serde(default)]
    pub permissions: super::v1alpha2::Permissions,
}
