//! What to do about one asset, between reading the server and writing to it. Pure.
//!
//! The controller reads the asset's configuration from the server (`None` when the server
//! does not hold it), builds what the spec asks ([`super::server_config`]) and [`plan`]
//! says whether to create it, update it or leave it, what the object's `Ready` and
//! `InSync` conditions say, and which Event explains a write or a newly seen drift.
//!
//! The server stays the judge of what it can change: an update it refuses (a drift in a
//! field it cannot change) is reported in the server's words by the controller, not
//! predicted here; the webhook already refuses such spec edits.
//!
//! Modes (`spec.mode`, ours; NACK's objects have none and mean `manage`):
//! - `manage`: create, update, and put back what was changed or deleted out of band;
//! - `adopt`: the same for an asset that exists, but never create one (an application
//!   or a person made it; the object waits for it);
//! - `observe`: never write; report what the server holds against the spec.
//!
//! `preventUpdate` (NACK's) creates a missing asset but never changes an existing one;
//! `preventDelete` keeps the server's asset when the object is deleted ([`removal`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::server_config::differences;
use super::v1beta2::{AssetStatus, Connection, ConsumerState, Mode, StreamState};
use crate::api::condition::condition;

/// The asset exists on the server and can be used.
pub const READY: &str = "Ready";
/// The server's configuration of the asset is what the spec asks.
pub const IN_SYNC: &str = "InSync";

/// One condition as the plan decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `True` or `False`.
    pub ok: bool,
    /// A CamelCase reason (NACK's `Ready` when all is well).
    pub reason: &'static str,
    /// What a person reads.
    pub message: String,
}

impl Check {
    /// `Ready`: the server holds `what`.
    fn on_server(what: &str) -> Self {
        Check {
            ok: true,
            reason: "Ready",
            message: format!("{what} is on the server"),
        }
    }

    /// `InSync`: the server holds what the spec asks.
    fn synced() -> Self {
        Check {
            ok: true,
            reason: "InSync",
            message: "the server holds what the spec asks".into(),
        }
    }

    fn no(reason: &'static str, message: String) -> Self {
        Check {
            ok: false,
            reason,
            message,
        }
    }
}

/// The one write a reconcile makes to the server, with the configuration to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// The asset is missing: create it.
    Create(Value),
    /// The asset differs: update it (the server may refuse).
    Update(Value),
}

/// An Event on the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What happened, with the differences.
    pub message: String,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What to write, if anything.
    pub write: Option<Write>,
    /// `Ready` once the write (if any) succeeded.
    pub ready: Check,
    /// `InSync` once the write (if any) succeeded.
    pub in_sync: Check,
    /// The Event to record (writes always; reports only when they are new).
    pub notice: Option<Notice>,
}

/// What the object's status says of earlier reconciles.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Past<'a> {
    /// The server held the asset at an earlier reconcile.
    pub held: bool,
    /// The spec changed since the last reconcile (generation ≠ observedGeneration).
    pub spec_changed: bool,
    /// The conditions written last time.
    pub conditions: &'a [Condition],
}

/// `what` names the asset for people (`stream ORDERS`); `wanted` is the configuration the
/// spec asks for; `held` is the server's (`None`: it does not hold the asset).
pub fn plan(
    what: &str,
    connection: &Connection,
    wanted: &Value,
    held: Option<&Value>,
    past: Past<'_>,
) -> Plan {
    let Some(held) = held else {
        return missing(what, connection.mode, wanted, past);
    };
    let diffs = differences(wanted, held);
    let adopted = !past.held && connection.mode == Mode::Adopt;
    if diffs.is_empty() {
        let notice = adopted.then(|| Notice {
            warning: false,
            reason: "Adopted",
            message: format!("{what} exists on the server as the spec asks; adopted"),
        });
        return Plan {
            write: None,
            ready: Check::on_server(what),
            in_sync: Check::synced(),
            notice,
        };
    }
    let listed = describe(&diffs);
    let ready = Check::on_server(what);
    let not_kept = not_kept(&listed);
    if !past.spec_changed && !new_report(&past, IN_SYNC, &not_kept) {
        // Written before and not kept: writing again would change nothing.
        return Plan {
            write: None,
            ready,
            in_sync: not_kept,
            notice: None,
        };
    }
    if connection.mode == Mode::Observe || connection.prevent_update {
        let (reason, why) = if connection.mode == Mode::Observe {
            ("Drifted", "observe mode never writes")
        } else {
            ("UpdatePrevented", "spec.preventUpdate is set")
        };
        let in_sync = Check::no(
            reason,
            format!("the server differs from the spec ({why}): {listed}"),
        );
        let notice = new_report(&past, IN_SYNC, &in_sync).then(|| Notice {
            warning: true,
            reason,
            message: format!("{what} differs from the spec and is left as it is ({why}): {listed}"),
        });
        return Plan {
            write: None,
            ready,
            in_sync,
            notice,
        };
    }
    let (warning, reason, message) = if adopted {
        (
            false,
            "Adopted",
            format!("{what} exists on the server; adopted and updated to the spec: {listed}"),
        )
    } else if past.spec_changed {
        (false, "Updated", format!("{what} updated: {listed}"))
    } else {
        (
            true,
            "DriftCorrected",
            format!("{what} was changed on the server outside Kubernetes; put back: {listed}"),
        )
    };
    Plan {
        write: Some(Write::Update(wanted.clone())),
        ready,
        in_sync: Check::synced(),
        notice: Some(Notice {
            warning,
            reason,
            message,
        }),
    }
}

fn missing(what: &str, mode: Mode, wanted: &Value, past: Past<'_>) -> Plan {
    if mode == Mode::Manage {
        let notice = if past.held {
            Notice {
                warning: true,
                reason: "Recreated",
                message: format!(
                    "{what} was deleted on the server outside Kubernetes; created again from \
                     the spec (what it held is gone)"
                ),
            }
        } else {
            Notice {
                warning: false,
                reason: "Created",
                message: format!("{what} created"),
            }
        };
        return Plan {
            write: Some(Write::Create(wanted.clone())),
            ready: Check::on_server(what),
            in_sync: Check::synced(),
            notice: Some(notice),
        };
    }
    let why = if mode == Mode::Observe {
        "observe mode never creates it"
    } else {
        "adopt mode takes over an existing one and never creates it; create it, or set \
         spec.mode to manage"
    };
    let ready = Check::no(
        "NotFound",
        format!("{what} does not exist on the server ({why})"),
    );
    let notice = (past.held && new_report(&past, READY, &ready)).then(|| Notice {
        warning: true,
        reason: "Deleted",
        message: format!("{what} was deleted on the server outside Kubernetes ({why})"),
    });
    Plan {
        write: None,
        in_sync: Check::no("NotFound", ready.message.clone()),
        ready,
        notice,
    }
}

/// The fields a write asked for and the server did not keep (a release older than the
/// field, or a value it rewrites): reported once, not written again until the spec
/// changes.
fn not_kept(listed: &str) -> Check {
    Check::no(
        "NotKept",
        format!(
            "the server did not keep what was written (a release without these fields, or \
             a value it rewrites): {listed}"
        ),
    )
}

/// After a write: `InSync` from the configuration the server answered with. `None`
/// when it holds what was asked, else the `NotKept` check that stops the next plans
/// from writing the same again.
pub fn after_write(wanted: &Value, answered: &Value) -> Option<Check> {
    let diffs = differences(wanted, answered);
    (!diffs.is_empty()).then(|| not_kept(&describe(&diffs)))
}

/// A report is new when the condition written last time said something else.
fn new_report(past: &Past<'_>, type_: &str, check: &Check) -> bool {
    !past.conditions.iter().any(|c| {
        c.type_ == type_
            && c.status == status_word(check.ok)
            && c.reason == check.reason
            && c.message == check.message
    })
}

fn status_word(ok: bool) -> &'static str {
    if ok { "True" } else { "False" }
}

/// `max_msgs: server 100, spec -1; subjects: ...`, in the JetStream API's field names
/// (those `nats stream info --json` shows).
pub fn describe(diffs: &[(String, Value, Value)]) -> String {
    diffs
        .iter()
        .map(|(field, wanted, actual)| format!("{field}: server {actual}, spec {wanted}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What deleting the object does to the server's asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Delete it on the server, then let the object go.
    Delete,
    /// Keep it, for this reason; the object goes at once.
    Keep(&'static str),
}

/// See [`Removal`].
pub fn removal(connection: &Connection) -> Removal {
    if connection.mode == Mode::Observe {
        Removal::Keep("observe mode never writes")
    } else if connection.prevent_delete {
        Removal::Keep("spec.preventDelete is set")
    } else {
        Removal::Delete
    }
}

/// A stream's figures from the server's stream info (`$JS.API.STREAM.INFO`).
pub fn stream_state(info: &Value) -> StreamState {
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    let state = &info["state"];
    let cluster = &info["cluster"];
    let leader = cluster["leader"].as_str().unwrap_or_default().to_string();
    let followers_current = cluster["replicas"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|p| p["current"].as_bool() == Some(true))
                .count()
        })
        .unwrap_or(0);
    // A stream outside a cluster has no `cluster` block: its one server holds it.
    let leads = usize::from(!leader.is_empty() || cluster.is_null());
    StreamState {
        messages: number(&state["messages"]),
        bytes: number(&state["bytes"]),
        first_seq: number(&state["first_seq"]),
        last_seq: number(&state["last_seq"]),
        consumers: number(&state["consumer_count"]),
        leader,
        replicas: u32::try_from(info["config"]["num_replicas"].as_u64().unwrap_or(1).max(1))
            .unwrap_or(u32::MAX),
        replicas_current: u32::try_from(followers_current + leads).unwrap_or(u32::MAX),
    }
}

/// A consumer's figures from the server's consumer info (`$JS.API.CONSUMER.INFO`).
pub fn consumer_state(info: &Value) -> ConsumerState {
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    ConsumerState {
        num_pending: number(&info["num_pending"]),
        num_ack_pending: number(&info["num_ack_pending"]),
        num_redelivered: number(&info["num_redelivered"]),
        num_waiting: number(&info["num_waiting"]),
        leader: info["cluster"]["leader"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The status after a reconcile: the plan's conditions (or [`refused`]'s, or
/// [`unreachable()`]'s), the server's figures, and the generation they describe.
/// Transition times are kept while a condition's status stays, so a steady state writes
/// nothing.
pub fn next_status(
    prev: &AssetStatus,
    generation: Option<i64>,
    checks: (&Check, &Check),
    figures: (Option<StreamState>, Option<ConsumerState>),
    now: Timestamp,
) -> AssetStatus {
    let (ready, in_sync) = checks;
    let cond = |type_: &str, c: &Check| {
        condition(
            &prev.conditions,
            type_,
            c.ok,
            c.reason,
            c.message.clone(),
            generation,
            now,
        )
    };
    AssetStatus {
        observed_generation: generation.unwrap_or(prev.observed_generation),
        conditions: vec![cond(READY, ready), cond(IN_SYNC, in_sync)],
        stream: figures.0,
        consumer: figures.1,
    }
}

/// The conditions when the server refused `plan`'s write (`why` in its words): a refused
/// creation leaves nothing, a refused update leaves the asset as it was.
pub fn refused(plan: &Plan, why: &str) -> (Check, Check) {
    let in_sync = Check::no("Refused", format!("the server refused the change: {why}"));
    match plan.write {
        Some(Write::Update(_)) => (plan.ready.clone(), in_sync),
        _ => (
            Check::no("Refused", format!("the server refused to create it: {why}")),
            in_sync,
        ),
    }
}

/// The conditions of a consumer whose stream the server does not hold (yet). GitOps
/// tools apply in any order: the consumer is created once the stream exists, and this is
/// no failure worth a Warning.
pub fn waiting_for_stream(stream: &str) -> (Check, Check) {
    let c = Check::no(
        WAITING_FOR_STREAM,
        format!(
            "stream {stream} does not exist on the server (yet); the consumer is created once \
             it does"
        ),
    );
    (c.clone(), c)
}

/// The reason of [`waiting_for_stream`].
pub const WAITING_FOR_STREAM: &str = "StreamNotFound";

/// The conditions when the server could not be asked (`why`: the connection's error).
pub fn unreachable(why: &str) -> (Check, Check) {
    let c = Check::no("Unreachable", format!("cannot reach the server: {why}"));
    (c.clone(), c)
}
