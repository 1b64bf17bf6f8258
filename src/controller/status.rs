//! The NatsCluster status from a plan and the observed pods: pure, and stable (the
//! same inputs give the same status, transition times are kept while a condition's
//! status stays), so a steady state writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::data_plane::Verdict;
use super::plan::{MemberPod, Phase};
use crate::api::condition::condition;
use crate::api::v1beta1::{JetStreamStatus, NatsClusterStatus};

/// Inputs of [`next_status`].
#[derive(Debug, Clone)]
pub struct StatusInput<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.version`.
    pub version: &'a str,
    /// The cluster's pods.
    pub pods: &'a [MemberPod],
    /// Versions of the live pods (label `nats_version`), same order as `pods`.
    pub pod_versions: &'a [String],
    /// The plan's phase.
    pub phase: &'a Phase,
    /// A problem that keeps the reconcile from progressing (Degraded).
    pub degraded: Option<(&'a str, String)>,
    /// The label selector of the members.
    pub selector: String,
    /// The largest storage request among the members' volumes, when this reconcile
    /// looked at them (`None` keeps the previous figure).
    pub volume_size: Option<String>,
    /// Since when a voluntary stop has waited for JetStream (`None`: nothing waits).
    pub catch_up_since: Option<Timestamp>,
    /// `status.jetstream` and the `JetStreamHealthy` verdict, with JetStream (`None`:
    /// neither is shown).
    pub jetstream: Option<(JetStreamStatus, Verdict)>,
}

/// The status to write after a reconcile.
pub fn next_status(
    prev: &NatsClusterStatus,
    input: &StatusInput<'_>,
    now: Timestamp,
) -> NatsClusterStatus {
    let was = prev.conditions.as_slice();
    let live: Vec<(&MemberPod, &String)> = input
        .pods
        .iter()
        .zip(input.pod_versions)
        .filter(|(p, _)| !p.terminating)
        .collect();
    let replicas = i32::try_from(live.len()).unwrap_or(i32::MAX);
    let ready = i32::try_from(live.iter().filter(|(p, _)| p.ready).count()).unwrap_or(i32::MAX);
    let current_version =
        if !live.is_empty() && live.iter().all(|(_, v)| v.as_str() == input.version) {
            input.version.to_string()
        } else if live.is_empty() {
            String::new()
        } else {
            prev.current_version.clone()
        };
    let g = input.generation;
    let (ready_c, progressing_c, paused_c) = match input.phase {
        Phase::Ready => (
            condition(
                was,
                "Ready",
                true,
                "ClusterReady",
                format!("{ready} of {replicas} members ready and up to date"),
                g,
                now,
            ),
            condition(
                was,
                "Progressing",
                false,
                "Idle",
                "nothing to do".into(),
                g,
                now,
            ),
            condition(was, "Paused", false, "NotPaused", String::new(), g, now),
        ),
        Phase::Progressing(msg) => (
            condition(was, "Ready", false, "Progressing", msg.clone(), g, now),
            condition(was, "Progressing", true, "Reconciling", msg.clone(), g, now),
            condition(was, "Paused", false, "NotPaused", String::new(), g, now),
        ),
        Phase::Paused => (
            condition(
                was,
                "Ready",
                prev.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                "Paused",
                "changes are paused (spec.paused)".into(),
                g,
                now,
            ),
            condition(
                was,
                "Progressing",
                false,
                "Paused",
                "changes are paused (spec.paused)".into(),
                g,
                now,
            ),
            condition(
                was,
                "Paused",
                true,
                "Paused",
                "spec.paused is set: no child is changed".into(),
                g,
                now,
            ),
        ),
    };
    let degraded_c = match &input.degraded {
        Some((reason, message)) => {
            condition(was, "Degraded", true, reason, message.clone(), g, now)
        }
        None => condition(was, "Degraded", false, "AsExpected", String::new(), g, now),
    };
    let mut conditions = vec![ready_c, progressing_c, degraded_c, paused_c];
    if let Some((_, verdict)) = &input.jetstream {
        let (healthy, reason, message) = match verdict {
            Ok(message) => (true, "Healthy", message),
            Err((reason, message)) => (false, *reason, message),
        };
        conditions.push(condition(
            was,
            "JetStreamHealthy",
            healthy,
            reason,
            message.clone(),
            g,
            now,
        ));
    }
    NatsClusterStatus {
        observed_generation: g,
        conditions,
        replicas,
        ready_replicas: ready,
        current_version,
        selector: input.selector.clone(),
        volume_size: input
            .volume_size
            .clone()
            .unwrap_or_else(|| prev.volume_size.clone()),
        catch_up_since: input.catch_up_since.map(Time),
        jetstream: input.jetstream.as_ref().map(|(s, _)| s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready: bool) -> MemberPod {
        MemberPod {
            name: "c-1".into(),
            index: Some(1),
            phase: "Running".into(),
            ready,
            terminating: false,
            up_to_date: true,
        }
    }

    #[test]
    fn stable_when_nothing_changes() {
        let pods = [pod(true)];
        let versions = ["2.10.0".to_string()];
        let input = StatusInput {
            generation: Some(2),
            version: "2.10.0",
            pods: &pods,
            pod_versions: &versions,
            phase: &Phase::Ready,
            degraded: None,
            selector: "app=nats,nats_cluster=c".into(),
            volume_size: Some("10Gi".into()),
            catch_up_since: None,
            jetstream: None,
        };
        let t1 = Timestamp::from_second(1000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t2 = Timestamp::from_second(2000).unwrap_or(Timestamp::UNIX_EPOCH);
        let s1 = next_status(&NatsClusterStatus::default(), &input, t1);
        let s2 = next_status(&s1, &input, t2);
        assert_eq!(
            s1, s2,
            "a second pass with the same inputs must not change the status"
        );
        assert_eq!(
            (s1.replicas, s1.ready_replicas, s1.current_version.as_str()),
            (1, 1, "2.10.0")
        );
        assert_eq!(s1.conditions[0].type_, "Ready");
        assert_eq!(s1.conditions[0].status, "True");
        assert_eq!(s1.volume_size, "10Gi");
    }

    #[test]
    fn mixed_versions_keep_the_previous_current_version_and_unseen_volumes_their_size() {
        let pods = [pod(true), pod(true)];
        let versions = ["2.10.0".to_string(), "2.9.0".to_string()];
        let prev = NatsClusterStatus {
            current_version: "2.9.0".into(),
            volume_size: "5Gi".into(),
            ..Default::default()
        };
        let input = StatusInput {
            generation: Some(3),
            version: "2.10.0",
            pods: &pods,
            pod_versions: &versions,
            phase: &Phase::Progressing("rolling".into()),
            degraded: None,
            selector: String::new(),
            volume_size: None,
            catch_up_since: None,
            jetstream: None,
        };
        let s = next_status(&prev, &input, Timestamp::UNIX_EPOCH);
        assert_eq!(s.current_version, "2.9.0");
        assert_eq!(
            s.volume_size, "5Gi",
            "a reconcile that did not look at the volumes keeps the figure"
        );
        assert_eq!(s.conditions[1].status, "True");
    }
}
