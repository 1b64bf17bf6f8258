//! Operator metrics in the Prometheus text format: reconciles (count, duration, errors by
//! reason) and per-cluster desired and ready members.

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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nats_operator");
        let reconciles = Counter::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let ready = Family::<ClusterLabels, Gauge>::default();
        let desired = Family::<ClusterLabels, Gauge>::default();
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
    /// Records a cluster's ready and desired members.
    pub fn observe_cluster(&self, namespace: &str, cluster: &str, ready: i32, desired: i32) {
        let labels = ClusterLabels {
            namespace: namespace.into(),
            cluster: cluster.into(),
        };
        self.ready.get_or_create(&labels).set(i64::from(ready));
        self.desired.get_or_create(&labels).set(i64::from(desired));
    }
    /// Forgets a deleted cluster.
    pub fn forget_cluster(&self, namespace: &str, cluster: &str) {
        let labels = ClusterLabels {
            namespace: namespace.into(),
            cluster: cluster.into(),
        };
        self.ready.remove(&labels);
        self.desired.remove(&labels);
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
