//! The Prometheus Operator `PodMonitor` `<name>` (`monitoring.coreos.com/v1`) for
//! `spec.pod.podMonitor`: it selects the cluster's pods and scrapes the exporter's
//! `metrics` port. Written as JSON: the operator does not depend on the Prometheus
//! Operator's types, and the kind may not be installed at all.

use serde_json::{Value, json};

use super::ClusterMeta;
use super::labels;
use crate::api::v1beta1::NatsClusterSpec;

/// API group/version of the PodMonitor.
pub const POD_MONITOR_API_VERSION: &str = "monitoring.coreos.com/v1";

/// The PodMonitor kind, for a dynamic API client.
pub fn pod_monitor_resource() -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: "monitoring.coreos.com".into(),
        version: "v1".into(),
        api_version: POD_MONITOR_API_VERSION.into(),
        kind: "PodMonitor".into(),
        plural: "podmonitors".into(),
    }
}

/// The PodMonitor, when `spec.pod.podMonitor.enabled` and the exporter runs.
pub fn pod_monitor(spec: &NatsClusterSpec, meta: &ClusterMeta) -> Option<Value> {
    let pod = spec.pod.as_ref()?;
    let pm = pod.pod_monitor.as_ref().filter(|m| m.enabled)?;
    super::enabled(pod.metrics.as_ref())?;
    let mut endpoint = json!({"port": "metrics", "path": "/metrics"});
    if !pm.interval.is_empty() {
        endpoint["interval"] = json!(pm.interval);
    }
    Some(json!({
        "apiVersion": POD_MONITOR_API_VERSION,
        "kind": "PodMonitor",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": labels::common(&meta.name, [&pm.labels]),
            "ownerReferences": meta.owner_references(),
        },
        "spec": {
            "selector": {"matchLabels": {"app": "nats", (labels::CLUSTER_LABEL): meta.name}},
            "podMetricsEndpoints": [endpoint],
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1beta1::{PodMonitor, PodPolicy, Sidecar};

    #[test]
    fn selects_the_members_and_scrapes_the_exporter() {
        let mut spec = NatsClusterSpec {
            pod: Some(PodPolicy {
                metrics: Some(Sidecar {
                    enabled: true,
                    ..Default::default()
                }),
                pod_monitor: Some(PodMonitor {
                    enabled: true,
                    labels: [("release".to_string(), "prom".to_string())].into(),
                    interval: "15s".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let meta = ClusterMeta::new("c", "ns");
        let pm = pod_monitor(&spec, &meta).expect("rendered");
        assert_eq!(pm["spec"]["selector"]["matchLabels"]["nats_cluster"], "c");
        assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
        assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["interval"], "15s");
        assert_eq!(pm["metadata"]["labels"]["release"], "prom");
        // No exporter, no PodMonitor.
        if let Some(p) = spec.pod.as_mut() {
            p.metrics = None;
        }
        assert!(pod_monitor(&spec, &meta).is_none());
    }
}
