//! The client Service `<name>` and the headless management Service `<name>-mgmt`.
//!
//! Both select `app=nats, nats_cluster=<name>` (never `nats_version`: the Go operator's
//! management selector dropped old pods from DNS during upgrades). Labels and
//! annotations come from `services.client` / `services.management`; keys and values
//! Kubernetes would refuse are skipped ([`super::labels`]).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::consts::{CLIENT_PORT, CLUSTER_PORT, METRICS_PORT, MONITORING_PORT};
use crate::api::v1beta1::{NatsClusterSpec, ServicePolicy};

use super::ClusterMeta;
use super::labels;

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn metadata(meta: &ClusterMeta, name: String, policy: Option<&ServicePolicy>) -> ObjectMeta {
    let policy = policy.cloned().unwrap_or_default();
    ObjectMeta {
        name: Some(name),
        namespace: Some(meta.namespace.clone()),
        labels: Some(labels::common(&meta.name, [&policy.labels])),
        annotations: labels::non_empty(labels::annotations([&policy.annotations])),
        owner_references: meta.owner_references(),
        ..Default::default()
    }
}

/// The client Service `<name>`: `tcp-client` 4222 (named for Istio's protocol
/// selection), `websocket` and `mqtt` when those listeners are on.
pub fn client_service(spec: &NatsClusterSpec, meta: &ClusterMeta) -> Service {
    let mut ports = vec![service_port("tcp-client", CLIENT_PORT)];
    if let Some(w) = spec.websocket.as_ref().filter(|w| w.port > 0) {
        ports.push(service_port("websocket", w.port));
    }
    if let Some(p) = super::mqtt_port(spec) {
        ports.push(service_port("mqtt", p));
    }
    Service {
        metadata: metadata(
            meta,
            meta.name.clone(),
            spec.services.as_ref().and_then(|s| s.client.as_ref()),
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(labels::selector(&meta.name)),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

/// The headless Service `<name>-mgmt` that gives each member its DNS name
/// `<pod>.<name>-mgmt.<ns>.svc`: not-ready pods are published (routes must form before
/// a server is ready), ports `cluster`, `monitoring`, `metrics` and the `gateways`,
/// `leafnodes` and `websocket` listeners that are on.
pub fn management_service(spec: &NatsClusterSpec, meta: &ClusterMeta) -> Service {
    let mut ports = vec![
        service_port("cluster", CLUSTER_PORT),
        service_port("monitoring", MONITORING_PORT),
        service_port("metrics", METRICS_PORT),
    ];
    if let Some(g) = spec.gateway.as_ref().filter(|g| g.port > 0) {
        ports.push(service_port("gateways", g.port));
    }
    if let Some(l) = spec.leafnode.as_ref().filter(|l| l.port > 0) {
        ports.push(service_port("leafnodes", l.port));
    }
    if let Some(w) = spec.websocket.as_ref().filter(|w| w.port > 0) {
        ports.push(service_port("websocket", w.port));
    }
    Service {
        metadata: metadata(
            meta,
            meta.management_service(),
            spec.services.as_ref().and_then(|s| s.management.as_ref()),
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(labels::selector(&meta.name)),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}
