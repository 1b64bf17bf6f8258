//! Operator metrics in the Prometheus text format: reconciles (count, duration, errors by
//! reason) and per cluster: desired and ready members, and whether it is Ready and
//! Degraded (1 or 0, for alerts).

use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-cluster metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Namespace of the NatsCluster.
    pub namespace: String,
    /// Name of the NatsCluster.
    pub cluster: String,
}

/// Labels of failed reconciles.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Error category.
    pub reason: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    reconciles: Counter,
    failures: Family<ReasonLabels, Counter>,
    duration: Histogram,
    ready: Family<ClusterLabels, Gauge>,
    desired: Family<ClusterLabels, Gauge>,
    is_ready: Family<ClusterLabels, Gauge>,
    degraded: Family<ClusterLabels, Gauge>,
}

/// What [`Metrics::observe_cluster`] records about one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterHealth {
    /// Ready members.
    pub ready_members: i32,
    /// `spec.size`.
    pub desired_members: i32,
    /// The `Ready` condition is true.
    pub ready: bool,
    /// The `Degraded` condition is true.
    pub degraded: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nats_operator");
        let reconciles = Counter::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let ready = Family::<ClusterLabels, Gauge>::default();
        let desired = Family::<ClusterLabels, Gauge>::default();
        let is_ready = Family::<ClusterLabels, Gauge>::default();
        let degraded = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "cluster_ready",
            "1 while the NatsCluster's Ready condition is true",
            is_ready.clone(),
        );
        registry.register(
            "cluster_degraded",
            "1 while the NatsCluster's Degraded condition is true",
            degraded.clone(),
        );
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            duration.clone(),
        );
        registry.register(
            "cluster_ready_members",
            "Ready members per NatsCluster",
            ready.clone(),
        );
        registry.register(
            "cluster_desired_members",
            "spec.size per NatsCluster",
            desired.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reconciles,
            failures,
            duration,
            ready,
            desired,
            is_ready,
            degraded,
        }
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer<'a> {
    start: Instant,
    histogram: &'a Histogram,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    /// Counts a reconcile and times it until the returned guard drops.
    pub fn start_reconcile(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: &self.duration,
        }
    }
    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }
    /// Records a cluster's members and conditions.
    pub fn observe_cluster(&self, namespace: &str, cluster: &str, h: ClusterHealth) {
        let labels = ClusterLabels {
            namespace: namespace.into(),
            cluster: cluster.into(),
        };
        self.ready
            .get_or_create(&labels)
            .set(i64::from(h.ready_members));
        self.desired
            .get_or_create(&labels)
            .set(i64::from(h.desired_members));
        self.is_ready.get_or_create(&labels).set(i64::from(h.ready));
        self.degraded
            .get_or_create(&labels)
            .set(i64::from(h.degraded));
    }
    /// Forgets a deleted cluster.
    pub fn forget_cluster(&self, namespace: &str, cluster: &str) {
        let labels = ClusterLabels {
            namespace: namespace.into(),
            cluster: cluster.into(),
        };
        self.ready.remove(&labels);
        self.desired.remove(&labels);
        self.is_ready.remove(&labels);
        self.degraded.remove(&labels);
    }
    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cluster_health_is_exported_and_forgotten() {
        let m = Metrics::default();
        let h = ClusterHealth {
            ready_members: 2,
            desired_members: 3,
            ready: false,
            degraded: true,
        };
        m.observe_cluster("ns", "c", h);
        let text = m.encode();
        for line in [
            r#"nats_operator_cluster_ready_members{namespace="ns",cluster="c"} 2"#,
            r#"nats_operator_cluster_desired_members{namespace="ns",cluster="c"} 3"#,
            r#"nats_operator_cluster_ready{namespace="ns",cluster="c"} 0"#,
            r#"nats_operator_cluster_degraded{namespace="ns",cluster="c"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        m.forget_cluster("ns", "c");
        assert!(!m.encode().contains(r#"cluster="c""#));
    }
}
