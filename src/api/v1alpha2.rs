//! `nats.io/v1alpha2`: the Go nats-operator's API, field for field.
//!
//! Every JSON name and shape matches the Go types (including oddities such as
//! `natsConfig.write_deadline`), so every manifest written for the Go operator parses.
//! Zero values are omitted like Go's `omitempty`. The version is served but deprecated;
//! objects are stored as [`super::v1beta1`].

// kube-derive expands each `printcolumn(...)` into attributes clippy sees as duplicates.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, Toleration, VolumeMount};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cel;
use super::choices::PullPolicy;
use super::serde_util::{
    is_false, is_zero_f64, is_zero_i32, is_zero_i64, preserve_unknown_object, string_map,
};

/// Specification of a NATS cluster (`nats.io/v1alpha2`, deprecated: use `nats.io/v1beta1`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "nats.io",
    version = "v1alpha2",
    kind = "NatsCluster",
    plural = "natsclusters",
    shortname = "nats",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    deprecated = "nats.io/v1alpha2 NatsCluster is deprecated; use nats.io/v1beta1 NatsCluster (nats-operator convert --to nats.io/v1beta1 rewrites manifests)",
    scale(
        spec_replicas_path = ".spec.size",
        status_replicas_path = ".status.size"
    ),
    printcolumn(
        name = "Size",
        type_ = "integer",
        json_path = ".spec.size",
        description = "Desired number of NATS servers"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.version",
        description = "NATS server version"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Number of NATS servers in the cluster. 0 means no servers.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub size: i32,
    /// NATS server version, used as the image tag (a leading `v` is accepted), or a
    /// `nightly`/`nightly-YYYYMMDD` tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Image repository of the NATS server; the image is `<serverImage>:<version>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_image: String,
    /// Extra settings written into `nats.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_config: Option<ServerConfig>,
    /// Emit `server_name: $SERVER_NAME`; the `SERVER_NAME` variable must be set in the pod.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_server_name: bool,
    /// Stop all changes to the cluster's pods and services.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Settings for the NATS pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodPolicy>,
    /// TLS for clients, routes, gateways, leafnodes and websocket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Authentication and authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Lame duck duration in seconds (`lame_duck_duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lame_duck_duration_seconds: Option<i64>,
    /// Do not advertise the cluster's client URLs to clients (`--no_advertise`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_advertise: bool,
    /// Base pod template for every NATS pod; only `template.spec` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: Option<serde_json::Value>,
    /// Extra routes: another NatsCluster in the namespace or an explicit route URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = cel::MAX_EXTRA_ROUTES))]
    pub extra_routes: Vec<ExtraRoute>,
    /// Gateway (super-cluster) configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_config: Option<GatewayConfig>,
    /// Leafnode configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnode_config: Option<LeafNodeConfig>,
    /// Decentralized (JWT) authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_config: Option<OperatorConfig>,
    /// Websocket listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket_config: Option<WebsocketConfig>,
    /// Labels and annotations of the client Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_policy: Option<ServicePolicy>,
    /// Labels and annotations of the headless `-mgmt` Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_service_policy: Option<ServicePolicy>,
}

/// `spec.natsConfig`: extra `nats.conf` settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// Enable debug logging.
    #[serde(default, skip_serializing_if = "is_false")]
    pub debug: bool,
    /// Enable protocol tracing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub trace: bool,
    /// Write deadline for clients, a duration such as `10s` (`write_deadline`).
    #[serde(
        default,
        rename = "write_deadline",
        skip_serializing_if = "String::is_empty"
    )]
    pub write_deadline: String,
    /// The spelling used by the upstream README and examples, which the Go operator
    /// silently ignored. Accepted and moved to `write_deadline` by the defaulting webhook.
    #[serde(
        default,
        rename = "writeDeadline",
        skip_serializing_if = "String::is_empty"
    )]
    pub write_deadline_camel: String,
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
    /// Do not print timestamps in the server log (`logtime: false`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_logtime: bool,
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
    /// Require NATS pods of this cluster on different nodes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub anti_affinity: bool,
    /// Resources of the `nats` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Tolerations; replace the template's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Extra environment variables of the `nats` container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nats_env: Vec<EnvVar>,
    /// Run the config reloader sidecar, so config changes reach running servers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_config_reload: bool,
    /// Image repository of the config reloader.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reloader_image: String,
    /// Image tag of the config reloader.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reloader_image_tag: String,
    /// Pull policy of the config reloader image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = PullPolicy::WIRE))]
    pub reloader_image_pull_policy: String,
    /// Resources of the config reloader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reloader_resources: Option<ResourceRequirements>,
    /// Run the Prometheus exporter sidecar on port 7777.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_metrics: bool,
    /// Image repository of the Prometheus exporter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metrics_image: String,
    /// Image tag of the Prometheus exporter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metrics_image_tag: String,
    /// Pull policy of the Prometheus exporter image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = PullPolicy::WIRE))]
    pub metrics_image_pull_policy: String,
    /// Expose the client port 4222 as a host port.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_clients_host_port: bool,
    /// Do not expose the gateway port as a host port.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_gateways_host_port: bool,
    /// Do not expose the leafnode port as a host port.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_leafnodes_host_port: bool,
    /// Do not expose the websocket port as a host port.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_websockets_host_port: bool,
    /// Advertise the node's external IP for clients, gateways and leafnodes.
    #[serde(
        default,
        rename = "advertiseExternalIP",
        skip_serializing_if = "is_false"
    )]
    pub advertise_external_ip: bool,
    /// Image repository of the boot-config init container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bootconfig_image: String,
    /// Image tag of the boot-config init container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bootconfig_image_tag: String,
    /// Extra volume mounts of the `nats` and reloader containers (volumes come from `template`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// `spec.tls`: TLS per listener. File names are keys of the named Secret or absolute paths.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// Secret with the client TLS certificate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_secret: String,
    /// CA file in `serverSecret` (default `ca.pem`).
    #[serde(
        default,
        rename = "serverSecretCAFileName",
        skip_serializing_if = "String::is_empty"
    )]
    pub server_secret_ca_file_name: String,
    /// Key file in `serverSecret` (default `server-key.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_secret_key_file_name: String,
    /// Certificate file in `serverSecret` (default `server.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_secret_cert_file_name: String,
    /// Secret with the route TLS certificate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub routes_secret: String,
    /// CA file in `routesSecret` (default `ca.pem`).
    #[serde(
        default,
        rename = "routesSecretCAFileName",
        skip_serializing_if = "String::is_empty"
    )]
    pub routes_secret_ca_file_name: String,
    /// Key file in `routesSecret` (default `route-key.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub routes_secret_key_file_name: String,
    /// Certificate file in `routesSecret` (default `route.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub routes_secret_cert_file_name: String,
    /// Secret with the gateway TLS certificate (needs `gatewayConfig`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway_secret: String,
    /// CA file in `gatewaySecret` (default `ca.pem`).
    #[serde(
        default,
        rename = "gatewaySecretCAFileName",
        skip_serializing_if = "String::is_empty"
    )]
    pub gateway_secret_ca_file_name: String,
    /// Key file in `gatewaySecret` (default `server-key.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway_secret_key_file_name: String,
    /// Certificate file in `gatewaySecret` (default `server.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway_secret_cert_file_name: String,
    /// Secret with the leafnode TLS certificate (needs `leafnodeConfig`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leafnode_secret: String,
    /// CA file in `leafnodeSecret` (default `ca.pem`).
    #[serde(
        default,
        rename = "leafnodeSecretCAFileName",
        skip_serializing_if = "String::is_empty"
    )]
    pub leafnode_secret_ca_file_name: String,
    /// Key file in `leafnodeSecret` (default `server-key.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leafnode_secret_key_file_name: String,
    /// Certificate file in `leafnodeSecret` (default `server.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leafnode_secret_cert_file_name: String,
    /// Secret with the websocket TLS certificate (needs `websocketConfig`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub websocket_secret: String,
    /// CA file in `websocketSecret` (default `ca.pem`).
    #[serde(
        default,
        rename = "websocketSecretCAFileName",
        skip_serializing_if = "String::is_empty"
    )]
    pub websocket_secret_ca_file_name: String,
    /// Key file in `websocketSecret` (default `server-key.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub websocket_secret_key_file_name: String,
    /// Certificate file in `websocketSecret` (default `server.pem`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub websocket_secret_cert_file_name: String,
    /// TLS handshake timeout for websocket connections, in seconds.
    #[serde(
        default,
        rename = "websocketTLSTimeout",
        skip_serializing_if = "is_zero_f64"
    )]
    pub websocket_tls_timeout: f64,
    /// Serve monitoring over HTTPS (`https_port` instead of `http_port`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_https: bool,
    /// TLS handshake timeout for client connections, in seconds.
    #[serde(
        default,
        rename = "clientsTLSTimeout",
        skip_serializing_if = "is_zero_f64"
    )]
    pub clients_tls_timeout: f64,
    /// TLS handshake timeout for routes, in seconds.
    #[serde(
        default,
        rename = "routesTLSTimeout",
        skip_serializing_if = "is_zero_f64"
    )]
    pub routes_tls_timeout: f64,
    /// TLS handshake timeout for gateways, in seconds.
    #[serde(
        default,
        rename = "gatewaysTLSTimeout",
        skip_serializing_if = "is_zero_f64"
    )]
    pub gateways_tls_timeout: f64,
    /// TLS handshake timeout for leafnodes, in seconds.
    #[serde(
        default,
        rename = "leafnodesTLSTimeout",
        skip_serializing_if = "is_zero_f64"
    )]
    pub leafnodes_tls_timeout: f64,
    /// Require and verify client certificates.
    #[serde(default, skip_serializing_if = "is_false")]
    pub verify: bool,
    /// Allowed cipher suites for client TLS (names as nats-server accepts them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Curve preferences for client TLS (names as nats-server accepts them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve_preferences: Vec<String>,
}

/// `spec.auth`: authentication and authorization.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// Build the users from NatsServiceRoles and bound ServiceAccount tokens.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_service_accounts: bool,
    /// Secret holding the clients' authorization as JSON (one key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub clients_auth_secret: String,
    /// File with the clients' authorization, relative to `/etc/nats-config`, included by `nats.conf`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub clients_auth_file: String,
    /// Client authentication timeout in seconds.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub clients_auth_timeout: i32,
    /// Map client certificates to users (`tls.verify_and_map`); needs `tls.serverSecret`.
    #[serde(default, rename = "tlsVerifyAndMap", skip_serializing_if = "is_false")]
    pub tls_verify_and_map: bool,
    /// Secret holding the route authorization as JSON (one key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_auth_secret: String,
    /// Route authentication timeout in seconds.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub cluster_auth_timeout: i32,
    /// Secret holding the gateway authorization as JSON (one key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway_auth_secret: String,
    /// Gateway authentication timeout in seconds.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub gateway_auth_timeout: i32,
}

/// `spec.gatewayConfig`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::GATEWAY_HOST_PORT_REQUIRED, cel::GATEWAY_NAME_REQUIRED]))]
pub struct GatewayConfig {
    /// Name of this gateway.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Gateway listen port (also a host port unless disabled).
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(range(min = 0, max = 65535))]
    pub host_port: i32,
    /// Reject gateways that are not configured.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reject_unknown: bool,
    /// Remote gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<RemoteGateway>,
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
}

/// `spec.leafnodeConfig`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafNodeConfig {
    /// Leafnode listen port (also a host port unless disabled); 0 means no listener.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    #[schemars(range(min = 0, max = 65535))]
    pub host_port: i32,
    /// Remote leafnode connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<LeafNodeRemote>,
}

/// A remote leafnode connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafNodeRemote {
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

/// `spec.operatorConfig`: decentralized JWT authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorConfig {
    /// Secret with the operator JWT under the key `op.jwt`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
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
    /// Route URL, such as `nats://host:6222`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route: String,
}

/// `spec.websocketConfig`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::WEBSOCKET_PORT_REQUIRED]))]
pub struct WebsocketConfig {
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

/// Labels and annotations for a Service.
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

/// Status of a NatsCluster as the Go operator reported it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Unused by the Go operator; kept for compatibility.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Unused by the Go operator; kept for compatibility.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// True while `spec.paused` is set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub control_paused: bool,
    /// Recent conditions, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterCondition>,
    /// Number of servers the cluster was last scaled to.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub size: i32,
    /// Version all servers run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_version: String,
}

/// A v1alpha2 status condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCondition {
    /// Condition type, such as `Ready` or `ScalingUp`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Human-readable reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// RFC 3339 time of the transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub transition_time: String,
}

/// Permissions of a NatsServiceRole (`nats.io/v1alpha2`, deprecated).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "nats.io",
    version = "v1alpha2",
    kind = "NatsServiceRole",
    plural = "natsserviceroles",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    deprecated = "nats.io/v1alpha2 NatsServiceRole is deprecated; use nats.io/v1beta1 NatsServiceRole (same fields)"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoleSpec {
    /// Publish and subscribe permissions of the role's user.
    #[serde(default)]
    pub permissions: Permissions,
}

/// Subjects a service role may publish and subscribe to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    /// Subjects the user may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Subjects the user may subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
}
