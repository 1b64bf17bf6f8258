//! The PodDisruptionBudget `<name>` (the Go operator had none).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::v1beta1::NatsClusterSpec;

use super::{ClusterMeta, labels};

/// `maxUnavailable` when the spec does not set it.
pub const DEFAULT_MAX_UNAVAILABLE: i32 = 1;

/// The PodDisruptionBudget of the members (`maxUnavailable` 1 unless
/// `pod.disruptionBudget.maxUnavailable` says otherwise), or `None` when
/// `pod.disruptionBudget.enabled` is false.
pub fn disruption_budget(
    spec: &NatsClusterSpec,
    meta: &ClusterMeta,
) -> Option<PodDisruptionBudget> {
    let db = spec
        .pod
        .as_ref()
        .and_then(|p| p.disruption_budget.clone())
        .unwrap_or_default();
    if db.enabled == Some(false) {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(meta.name.clone()),
            namespace: Some(meta.namespace.clone()),
            labels: Some(labels::common(&meta.name, [])),
            owner_references: meta.owner_references(),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(
                db.max_unavailable.unwrap_or(DEFAULT_MAX_UNAVAILABLE).max(1),
            )),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(&meta.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}
