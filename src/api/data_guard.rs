//! Refusals that protect JetStream data, judged from what the operator last saw of the
//! servers (`status.jetstream`): a scale-down below the replicas of a stream, and the
//! deletion of a cluster that holds streams. Pure; the webhook finds the status.

use super::field::FieldError;
use super::v1beta1::{JetStreamStatus, StreamReplicas};

/// The annotation that lets a NatsCluster holding streams be deleted.
pub const ALLOW_DELETE_WITH_DATA: &str = "nats.io/allow-delete-with-data";

/// Whether a JetStream cluster of `size` members runs its server without a `cluster`
/// block: nats-server never elects a JetStream meta leader for a cluster of one (the
/// meta group expects a peer per configured route, and a member's only route is to
/// itself), and refuses JetStream in a cluster without routes. A gateway needs the
/// cluster block, so a gatewayed member stays clustered.
pub fn runs_standalone(jetstream: bool, gateway: bool, size: i32) -> bool {
    jetstream && !gateway && size == 1
}

/// What the guard knows of a cluster.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// Whether `spec.jetstream` is on.
    pub jetstream: bool,
    /// Whether `spec.gateway` is set (see [`runs_standalone`]).
    pub gateway: bool,
    /// `status.jetstream`, when the operator has written it.
    pub status: Option<&'a JetStreamStatus>,
}

/// The first streams of `streams`, and how many more of `total` there are.
fn listed(streams: &[&StreamReplicas], total: usize) -> String {
    let names: Vec<String> = streams
        .iter()
        .take(5)
        .map(|s| {
            let plural = if s.replicas == 1 { "" } else { "s" };
            format!(
                "{:?} in account {} ({} replica{plural})",
                s.name, s.account, s.replicas
            )
        })
        .collect();
    let more = total.max(streams.len()).saturating_sub(names.len());
    if more > 0 {
        format!("{} and {more} more", names.join(", "))
    } else {
        names.join(", ")
    }
}

/// A change of the size from `old` to `new` members (`field` names it: `spec.size`,
/// or `spec.replicas` of the `scale` subresource): refused below the replicas of any
/// stream, since a stream cannot keep more replicas than there are servers.
pub fn check_scale(
    field: &str,
    old: i32,
    new: i32,
    known: Known<'_>,
) -> Result<Vec<String>, FieldError> {
    let standalone = |size| runs_standalone(known.jetstream, known.gateway, size);
    let topology = || {
        if old != new && standalone(old) != standalone(new) {
            check_topology(field, old, new, known)
        } else {
            Ok(Vec::new())
        }
    };
    if new >= old || !known.jetstream {
        return topology();
    }
    let Some(status) = known.status else {
        return Ok(vec![format!(
            "cannot tell whether NatsCluster {} holds streams with more than {new} replicas: \
             the operator has not reported status.jetstream yet",
            known.name
        )]);
    };
    let over: Vec<&StreamReplicas> = status
        .stream_replicas
        .iter()
        .filter(|s| i64::from(s.replicas) > i64::from(new))
        .collect();
    let Some(first) = over.first() else {
        return topology();
    };
    Err(FieldError::forbidden(
        field,
        format!(
            "{new} members cannot hold the replicas of {}: lower the stream's replicas first \
             (`nats stream edit {} --replicas {}`), then scale",
            listed(&over, over.len()),
            first.name,
            new.max(1)
        ),
    ))
}

/// A scale between one member (standalone, see [`runs_standalone`]) and more: refused.
/// The member would have to restart with or without its `cluster` block, nats-server
/// carries no stream across (a new meta group drops a standalone server's streams), and
/// the members added to a standalone one wait for a route to it before they elect a meta
/// leader, while it could only restart into the cluster once they are ready. The
/// message names the streams the status shows.
fn check_topology(
    field: &str,
    old: i32,
    new: i32,
    known: Known<'_>,
) -> Result<Vec<String>, FieldError> {
    let streams: Vec<&StreamReplicas> = known
        .status
        .map(|s| s.stream_replicas.iter().collect())
        .unwrap_or_default();
    let total = known
        .status
        .map_or(0, |s| usize::try_from(s.streams).unwrap_or(usize::MAX));
    let data = if streams.is_empty() && total == 0 {
        String::new()
    } else {
        format!(
            "; it would also lose {}: back the streams up (`nats stream backup`) and restore them \
             (`nats stream restore`) into the new cluster",
            listed(&streams, total)
        )
    };
    Err(FieldError::forbidden(
        field,
        format!(
            "cannot scale a JetStream cluster from {old} to {new} members in place: a single \
             member runs standalone (nats-server elects no meta leader for a cluster of one), \
             and turning it into a cluster or back needs a restart the members cannot wait \
             out{data}. Create a new NatsCluster with spec.size {new} and move the clients to \
             it, or delete and re-create this one"
        ),
    ))
}

/// The deletion of a cluster: refused while it holds streams, unless the annotation
/// [`ALLOW_DELETE_WITH_DATA`] is `"true"`; `Ok` carries warnings.
pub fn check_delete(allowed: bool, known: Known<'_>) -> Result<Vec<String>, String> {
    if !known.jetstream {
        return Ok(Vec::new());
    }
    let Some(status) = known.status else {
        return Ok(vec![format!(
            "cannot tell whether NatsCluster {} holds JetStream streams: the operator has \
             not reported status.jetstream yet",
            known.name
        )]);
    };
    if status.streams == 0 {
        return Ok(Vec::new());
    }
    if allowed {
        return Ok(vec![format!(
            "NatsCluster {} is deleted with its {} JetStream streams ({ALLOW_DELETE_WITH_DATA})",
            known.name, status.streams
        )]);
    }
    let streams: Vec<&StreamReplicas> = status.stream_replicas.iter().collect();
    let shown = listed(
        &streams,
        usize::try_from(status.streams).unwrap_or(usize::MAX),
    );
    Err(format!(
        "NatsCluster {} holds {} JetStream streams ({shown}): deleting it stops every \
         server that holds them. Move or back up the data, or set the annotation \
         {ALLOW_DELETE_WITH_DATA}=true to delete it anyway: kubectl annotate natscluster {} \
         {ALLOW_DELETE_WITH_DATA}=true",
        known.name, status.streams, known.name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(streams: &[(&str, u32)]) -> JetStreamStatus {
        JetStreamStatus {
            streams: streams.len() as u64,
            stream_replicas: streams
                .iter()
                .map(|(n, r)| StreamReplicas {
                    account: "$G".into(),
                    name: (*n).into(),
                    replicas: *r,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn known(s: Option<&JetStreamStatus>) -> Known<'_> {
        Known {
            name: "js",
            jetstream: true,
            gateway: false,
            status: s,
        }
    }

    #[test]
    fn scaling_below_a_streams_replicas_is_refused_naming_it() {
        let s = status(&[("ORDERS", 3), ("LOGS", 1)]);
        let e = check_scale("spec.size", 3, 1, known(Some(&s))).expect_err("refused");
        assert_eq!(e.field, "spec.size");
        assert_eq!(
            e.message,
            "Forbidden: 1 members cannot hold the replicas of \"ORDERS\" in account $G (3 \
             replicas): lower the stream's replicas first (`nats stream edit ORDERS \
             --replicas 1`), then scale"
        );
        assert_eq!(
            check_scale("spec.size", 5, 3, known(Some(&s))),
            Ok(Vec::new())
        );
        assert_eq!(
            check_scale("spec.size", 3, 5, known(Some(&s))),
            Ok(Vec::new())
        );
    }

    /// One JetStream member runs standalone: scaling to or from it is refused, naming
    /// the streams it would lose.
    #[test]
    fn scaling_to_or_from_a_single_jetstream_member_is_refused() {
        let s = status(&[("ORDERS", 1)]);
        let up = check_scale("spec.size", 1, 3, known(Some(&s))).expect_err("refused");
        assert!(
            up.message.starts_with(
                "Forbidden: cannot scale a JetStream cluster from 1 to 3 members in place"
            ),
            "{}",
            up.message
        );
        assert!(
            up.message
                .contains("would also lose \"ORDERS\" in account $G (1 replica)")
                && up.message.contains("nats stream backup"),
            "{}",
            up.message
        );
        let down = check_scale("spec.size", 3, 1, known(Some(&s))).expect_err("refused");
        assert!(down.message.contains("runs standalone"), "{}", down.message);
        let empty = status(&[]);
        let bare = check_scale("spec.size", 1, 3, known(Some(&empty))).expect_err("refused");
        assert!(!bare.message.contains("lose"), "{}", bare.message);
        assert!(check_scale("spec.size", 1, 2, known(None)).is_err());
        // A gateway (always clustered), or no JetStream: allowed.
        let gateway = Known {
            gateway: true,
            ..known(Some(&s))
        };
        assert_eq!(check_scale("spec.size", 1, 3, gateway), Ok(Vec::new()));
        let plain = Known {
            jetstream: false,
            ..known(Some(&s))
        };
        assert_eq!(check_scale("spec.size", 1, 3, plain), Ok(Vec::new()));
    }

    #[test]
    fn without_a_status_the_guard_says_it_cannot_tell() {
        let w = check_scale("spec.replicas", 3, 1, known(None)).expect("allowed");
        assert!(w[0].contains("cannot tell"), "{w:?}");
        let w = check_delete(false, known(None)).expect("allowed");
        assert!(w[0].contains("cannot tell"), "{w:?}");
        let plain = Known {
            jetstream: false,
            ..known(None)
        };
        assert_eq!(check_scale("spec.size", 3, 1, plain), Ok(Vec::new()));
        assert_eq!(check_delete(false, plain), Ok(Vec::new()));
    }

    #[test]
    fn deleting_a_cluster_with_streams_needs_the_annotation() {
        let s = status(&[("ORDERS", 3)]);
        let e = check_delete(false, known(Some(&s))).expect_err("refused");
        assert!(
            e.starts_with(
                "NatsCluster js holds 1 JetStream streams (\"ORDERS\" in account $G (3 replicas))"
            ),
            "{e}"
        );
        assert!(
            e.contains("kubectl annotate natscluster js nats.io/allow-delete-with-data=true"),
            "{e}"
        );
        assert!(check_delete(true, known(Some(&s))).is_ok());
        assert_eq!(
            check_delete(false, known(Some(&status(&[])))),
            Ok(Vec::new())
        );
    }

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..8).map(|i| format!("S{i}")).collect();
        let pairs: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 3)).collect();
        let mut s = status(&pairs);
        s.streams = 30;
        let e = check_delete(false, known(Some(&s))).expect_err("refused");
        assert!(
            e.contains("\"S4\" in account $G (3 replicas) and 25 more)"),
            "{e}"
        );
    }
}
