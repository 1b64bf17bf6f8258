//! What to do next with a cluster's member pods, decided from observed state alone.
//! Pure: the reconciler gathers [`Members`], calls [`plan`] and carries out the
//! actions; nothing here waits, so a worker is never blocked (slow steps are requeues).
//!
//! Rules, in order:
//! 1. `paused`: touch nothing.
//! 2. Pods that ended (`Failed`/`Succeeded`) are deleted so they can be replaced.
//! 3. While a member is terminating (lame duck), wait: one stop at a time.
//! 4. Missing members `1..=size` are created, all at once (a new cluster forms faster,
//!    and a replaced member comes back under its own name and volume).
//! 5. Members above `size` are removed highest index first, one at a time.
//! 6. When every member is ready, the lowest-indexed member whose pod spec is out of
//!    date is replaced (version upgrades and pod-spec changes alike); the next one only
//!    after it is back and ready.

/// A member pod as the reconciler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPod {
    /// Pod name.
    pub name: String,
    /// Member index parsed from the name (`None` for a name we did not make).
    pub index: Option<u32>,
    /// `status.phase`.
    pub phase: String,
    /// The `Ready` condition is true.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// Its pod spec hash (annotation `nats.io/pod-spec-hash`) equals the one the member
    /// would be created with now.
    pub up_to_date: bool,
}

/// Everything [`plan`] looks at: the size and the member pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Members {
    /// `spec.size`.
    pub size: u32,
    /// `spec.paused`.
    pub paused: bool,
    /// The cluster's pods (owned by it).
    pub pods: Vec<MemberPod>,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the member with this index.
    Create(u32),
    /// Delete this pod; `reason` goes into the Event.
    Delete {
        /// Pod name.
        pod: String,
        /// Why (shown to users in Events).
        reason: DeleteReason,
    },
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// It ended and is replaced.
    Ended,
    /// The cluster is scaled down.
    ScaleDown,
    /// Its spec is out of date (upgrade or spec change); it comes back with the new one.
    Rollout,
    /// Its name is not one of the members'.
    Stray,
}

/// Where the cluster is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Every member exists, is ready and up to date.
    Ready,
    /// Changes are under way; the message says which.
    Progressing(String),
    /// Paused: nothing is changed.
    Paused,
}

/// The decision: actions to take now, and the cluster's phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Actions to take now (empty when waiting or done).
    pub actions: Vec<Action>,
    /// The phase, for status and conditions.
    pub phase: Phase,
}

fn progressing(actions: Vec<Action>, message: impl Into<String>) -> Plan {
    Plan {
        actions,
        phase: Phase::Progressing(message.into()),
    }
}

/// Decides the next step for a cluster.
pub fn plan(o: &Members) -> Plan {
    if o.paused {
        return Plan {
            actions: Vec::new(),
            phase: Phase::Paused,
        };
    }
    let mut live: Vec<&MemberPod> = o.pods.iter().filter(|p| !p.terminating).collect();
    live.sort_by_key(|p| (p.index, p.name.clone()));
    let ended: Vec<Action> = live
        .iter()
        .filter(|p| p.phase == "Failed" || p.phase == "Succeeded")
        .map(|p| Action::Delete {
            pod: p.name.clone(),
            reason: DeleteReason::Ended,
        })
        .collect();
    if !ended.is_empty() {
        return progressing(ended, "replacing members that stopped");
    }
    let strays: Vec<Action> = live
        .iter()
        .filter(|p| p.index.is_none_or(|i| i == 0))
        .map(|p| Action::Delete {
            pod: p.name.clone(),
            reason: DeleteReason::Stray,
        })
        .collect();
    if !strays.is_empty() {
        return progressing(strays, "removing pods that are not members");
    }
    if let Some(p) = o.pods.iter().find(|p| p.terminating) {
        return progressing(Vec::new(), format!("waiting for {} to stop", p.name));
    }
    let has = |i: u32| live.iter().any(|p| p.index == Some(i));
    let missing: Vec<Action> = (1..=o.size)
        .filter(|i| !has(*i))
        .map(Action::Create)
        .collect();
    if !missing.is_empty() {
        let n = missing.len();
        return progressing(missing, format!("creating {n} member(s)"));
    }
    if let Some(p) = live
        .iter()
        .filter(|p| p.index.is_some_and(|i| i > o.size))
        .max_by_key(|p| p.index)
    {
        return progressing(
            vec![Action::Delete {
                pod: p.name.clone(),
                reason: DeleteReason::ScaleDown,
            }],
            format!("scaling down to {}", o.size),
        );
    }
    if let Some(p) = live.iter().find(|p| !p.ready) {
        return progressing(Vec::new(), format!("waiting for {} to be ready", p.name));
    }
    if let Some(p) = live
        .iter()
        .filter(|p| !p.up_to_date)
        .min_by_key(|p| p.index)
    {
        let outdated = live.iter().filter(|p| !p.up_to_date).count();
        return progressing(
            vec![Action::Delete {
                pod: p.name.clone(),
                reason: DeleteReason::Rollout,
            }],
            format!("rolling out: {outdated} member(s) out of date"),
        );
    }
    Plan {
        actions: Vec::new(),
        phase: Phase::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(i: u32, ready: bool, hash: &str) -> MemberPod {
        MemberPod {
            name: format!("c-{i:x}"),
            index: Some(i),
            phase: if ready {
                "Running".into()
            } else {
                "Pending".into()
            },
            ready,
            terminating: false,
            up_to_date: hash == "h2",
        }
    }

    fn observed(size: u32, pods: Vec<MemberPod>) -> Members {
        Members {
            size,
            paused: false,
            pods,
        }
    }

    fn del(name: &str, reason: DeleteReason) -> Action {
        Action::Delete {
            pod: name.into(),
            reason,
        }
    }

    #[test]
    fn new_cluster_creates_every_member_at_once() {
        let p = plan(&observed(3, vec![]));
        assert_eq!(
            p.actions,
            vec![Action::Create(1), Action::Create(2), Action::Create(3)]
        );
        assert!(matches!(p.phase, Phase::Progressing(_)));
    }

    #[test]
    fn steady_state_does_nothing() {
        let p = plan(&observed(2, vec![pod(1, true, "h2"), pod(2, true, "h2")]));
        assert_eq!(
            p,
            Plan {
                actions: vec![],
                phase: Phase::Ready
            }
        );
    }

    #[test]
    fn scale_down_removes_the_highest_index_first_one_at_a_time() {
        let pods = (1..=17).map(|i| pod(i, true, "h2")).collect();
        let p = plan(&observed(3, pods));
        // Numeric order, not the Go operator's lexicographic one: c-11 (17) before c-f (15).
        assert_eq!(p.actions, vec![del("c-11", DeleteReason::ScaleDown)]);
        let mut pods: Vec<MemberPod> = (1..=5).map(|i| pod(i, true, "h2")).collect();
        pods[4].terminating = true;
        let p = plan(&observed(3, pods));
        assert!(p.actions.is_empty(), "waits while c-5 is in lame duck");
    }

    #[test]
    fn failed_pods_are_replaced_under_their_own_name() {
        let mut pods = vec![pod(1, true, "h2"), pod(2, true, "h2"), pod(3, false, "h2")];
        pods[2].phase = "Failed".into();
        assert_eq!(
            plan(&observed(3, pods.clone())).actions,
            vec![del("c-3", DeleteReason::Ended)]
        );
        pods.remove(2);
        assert_eq!(plan(&observed(3, pods)).actions, vec![Action::Create(3)]);
    }

    #[test]
    fn rollout_replaces_one_member_at_a_time_waiting_for_readiness() {
        let pods = vec![pod(1, true, "h1"), pod(2, true, "h1"), pod(3, true, "h1")];
        assert_eq!(
            plan(&observed(3, pods)).actions,
            vec![del("c-1", DeleteReason::Rollout)]
        );
        // c-1 came back with the new spec but is not ready yet: wait.
        let pods = vec![pod(1, false, "h2"), pod(2, true, "h1"), pod(3, true, "h1")];
        assert!(plan(&observed(3, pods)).actions.is_empty());
        let pods = vec![pod(1, true, "h2"), pod(2, true, "h1"), pod(3, true, "h1")];
        assert_eq!(
            plan(&observed(3, pods)).actions,
            vec![del("c-2", DeleteReason::Rollout)]
        );
    }

    #[test]
    fn paused_changes_nothing() {
        let mut o = observed(5, vec![pod(1, true, "h1")]);
        o.paused = true;
        assert_eq!(
            plan(&o),
            Plan {
                actions: vec![],
                phase: Phase::Paused
            }
        );
    }

    #[test]
    fn strays_and_size_zero() {
        let mut stray = pod(1, true, "h2");
        stray.index = None;
        stray.name = "c-x".into();
        assert_eq!(
            plan(&observed(1, vec![stray])).actions,
            vec![del("c-x", DeleteReason::Stray)]
        );
        let p = plan(&observed(0, vec![pod(1, true, "h2")]));
        assert_eq!(p.actions, vec![del("c-1", DeleteReason::ScaleDown)]);
        assert_eq!(plan(&observed(0, vec![])).phase, Phase::Ready);
    }
}
