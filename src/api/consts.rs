//! The fixed names and numbers that the API (validation), rendering and the controller
//! share: ports every member listens on and the labels the operator owns. One place, so
//! the webhook refuses exactly what the renderer would collide with.

/// Client port of every member.
pub const CLIENT_PORT: i32 = 4222;
/// Route port.
pub const CLUSTER_PORT: i32 = 6222;
/// Monitoring port.
pub const MONITORING_PORT: i32 = 8222;
/// Prometheus exporter port.
pub const METRICS_PORT: i32 = 7777;
/// Default MQTT port.
pub const MQTT_PORT: i32 = 1883;

/// The `app` label value of every child.
pub const APP: &str = "nats";
/// Label key of the `app` label.
pub const APP_LABEL: &str = "app";
/// Label key of the cluster name.
pub const CLUSTER_LABEL: &str = "nats_cluster";
/// Label key of the server version (pods only).
pub const VERSION_LABEL: &str = "nats_version";
/// Pod labels the operator owns.
pub const RESERVED_POD_LABELS: [&str; 3] = [APP_LABEL, CLUSTER_LABEL, VERSION_LABEL];
