//! One reconcile of a NatsCluster: observe (read-only), decide (pure), apply (writes
//! only what the decision says), then the status, patched once and only when it
//! changed.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use serde_json::json;

use super::context::{Context, Error, MANAGER, kube_err};
use super::data_plane::Verdict;
use super::decide::{Health, decide};
use super::observe::{Observed, observe};
use super::status::{StatusInput, next_status};
use crate::api::v1beta1::{JetStreamStatus, NatsCluster, NatsClusterStatus};
use crate::render::labels;

/// How soon a cluster whose member was refused by admission is looked at again.
const REFUSED: Duration = Duration::from_secs(30);
/// How often a settled JetStream cluster's `status.jetstream` is refreshed: the
/// members' `/jsz` costs a few milliseconds, and a status is written only on a change.
const JETSTREAM_REFRESH: Duration = Duration::from_secs(30);

/// Reconciles one NatsCluster.
pub async fn reconcile(cluster: Arc<NatsCluster>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let _timer = ctx.metrics.start_reconcile();
    let uid = cluster.uid().unwrap_or_default();
    let requeue = reconcile_once(cluster, &ctx).await?;
    ctx.succeeded(&uid);
    Ok(Requeue::requeue(requeue))
}

async fn reconcile_once(cluster: Arc<NatsCluster>, ctx: &Context) -> Result<Duration, Error> {
    let o = observe(ctx, cluster).await?;
    let now = Timestamp::now();
    let mut d = decide(&o, &ctx.paths, None, now);
    if let Some(target) = d.needs_health.clone() {
        let behind = super::health::behind(
            &o.pods,
            &target,
            crate::render::https_monitoring(&o.cluster.spec),
        )
        .await;
        d = decide(&o, &ctx.paths, Some(&Health { target, behind }), now);
    }
    let outcome = super::apply::apply(ctx, &o, &d).await?;
    let degraded = outcome.degraded.clone().or(d.degraded.clone());
    let volume_size = d.volume_requests.clone().map(|mut requests| {
        requests.extend(outcome.expanded.iter().cloned());
        super::storage::largest_request(requests.values().map(String::as_str))
    });
    let jetstream = if crate::render::jetstream_enabled(&o.cluster.spec) {
        let members =
            super::data_plane::members(&o.stored.name_any(), o.cluster.spec.size, &o.pods);
        let prev = o.stored.status.as_ref().and_then(|s| s.jetstream.as_ref());
        Some(super::data_plane::summarize(&members, &o.jsz, prev))
    } else {
        None
    };
    let refresh = jetstream.is_some();
    let next = write_status(ctx, &o, &d, degraded.as_ref(), volume_size, jetstream).await?;
    if let Ok(meta) = &o.meta {
        ctx.metrics.observe_cluster(
            &meta.namespace,
            &meta.name,
            super::metrics::ClusterHealth {
                ready_members: next.ready_replicas,
                desired_members: o.cluster.spec.size,
                ready: condition_true(&next, "Ready"),
                degraded: condition_true(&next, "Degraded"),
            },
        );
    }
    Ok(if outcome.degraded.is_some() {
        REFUSED
    } else if refresh {
        d.requeue.min(JETSTREAM_REFRESH)
    } else {
        d.requeue
    })
}

/// Computes the status and patches it when it differs from the stored one.
async fn write_status(
    ctx: &Context,
    o: &Observed,
    d: &super::decide::Decision,
    degraded: Option<&(String, String)>,
    volume_size: Option<String>,
    jetstream: Option<(JetStreamStatus, Verdict)>,
) -> Result<NatsClusterStatus, Error> {
    let views = super::decide::member_views(o, None);
    let versions: Vec<String> = o
        .pods
        .iter()
        .map(|p| {
            p.labels()
                .get(labels::VERSION_LABEL)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let prev = o.stored.status.clone().unwrap_or_default();
    let name = o.stored.name_any();
    let next = next_status(
        &prev,
        &StatusInput {
            generation: o.stored.metadata.generation,
            version: &o.cluster.spec.version,
            pods: &views,
            pod_versions: &versions,
            phase: &d.phase,
            degraded: degraded.map(|(r, m)| (r.as_str(), m.clone())),
            selector: format!("app=nats,nats_cluster={name}"),
            volume_size,
            catch_up_since: d.catch_up_since,
            jetstream,
        },
        Timestamp::now(),
    );
    let uid = o.stored.uid().unwrap_or_default();
    let already = {
        let mut recent = ctx.recent.lock().unwrap_or_else(|e| e.into_inner());
        if next == prev {
            recent.status_seen(&uid);
        }
        recent.wrote_status(&uid, &next)
    };
    if next != prev && !already {
        let ns = o.stored.namespace().unwrap_or_default();
        let api: Api<NatsCluster> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "nats.io/v1beta1", "kind": "NatsCluster", "status": next});
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_err(format!(
            "update status of NatsCluster {ns}/{name}"
        )))?;
    }
    Ok(next)
}

fn condition_true(status: &NatsClusterStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// After a failed reconcile (the API or the network; a user's mistake is not a
/// failure): retry with an exponential backoff spread by jitter, and count it.
pub fn error_policy(cluster: Arc<NatsCluster>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let uid = cluster.uid().unwrap_or_default();
    let failures = ctx.failed(&uid);
    let seed = std::collections::hash_map::RandomState::new().hash_one((&uid, failures));
    let delay = Context::backoff(failures, seed);
    tracing::warn!(error = %error, failures, retry_in = ?delay, "reconcile failed");
    ctx.metrics.reconcile_failed(error.reason());
    Requeue::requeue(delay)
}
