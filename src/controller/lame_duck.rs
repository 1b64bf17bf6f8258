//! Lame duck for member pods that stop without it: pods made by the Go operator (or
//! from a template whose container lost its hook) have no `preStop`, so deleting them
//! would stop the server at once and drop its clients mid-request.
//!
//! Before such a pod is deleted, the operator signals the server itself, as the Go
//! operator did: `pods/exec` into the `nats` container running
//! `<its binary> --signal ldm=/var/run/nats/nats.pid`. The pod is then annotated with
//! [`SINCE_ANNOTATION`], so the wait survives a restart or a new leader, and it is deleted
//! once the server has drained and exited, or after the lame duck duration plus the grace
//! margin, whichever comes first. If the exec cannot run (RBAC, a node without exec) the
//! pod is deleted as before, with a Warning Event that says why.
//!
//! Pods with our own `preStop` hook are signalled the same way before the operator deletes
//! them. The hook alone races: `--signal ldm` returns at once, nats-server starts lame
//! duck in a goroutine and ignores SIGTERM only once it has begun, so the kubelet's
//! SIGTERM (sent microseconds after the hook returns) can stop the server undrained. After
//! the operator's signal it waits [`SETTLE`], then deletes: the hook's second signal is a
//! no-op and SIGTERM is ignored. Deletions by others (drains, evictions) still rely on the
//! hook alone, as with the NATS Helm chart.
//!
//! [`stage`] is pure; [`signal`] is the one exec.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Lifecycle,
    LifecycleHandler, Pod, PodSpec,
};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::AttachParams;

use crate::render::PID_FILE;
use crate::render::pod::NATS_CONTAINER;

/// Set on a pod when the operator has put its server into lame duck (RFC 3339 time).
pub const SINCE_ANNOTATION: &str = "nats.io/lame-duck-since";

/// How long the exec may take (the Go operator's timeout).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after its signal a hooked pod is deleted: lame duck begins microseconds after
/// the signal; a second covers a starved node.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Where a pod that is about to be deleted stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// It is not running, or its own `preStop` hook (not ours) decides how it stops: delete.
    Delete,
    /// Its server must be signalled first, with this command.
    Signal(Vec<String>),
    /// It has our `preStop` hook: signal it with the hook's command, then delete it after
    /// [`SETTLE`] (the hook alone races with SIGTERM).
    SignalAndDelete(Vec<String>),
    /// Signalled; wait for the server to exit, at most until this time.
    Draining(Timestamp),
}

/// What to do with `pod` before deleting it, given how long lame duck may take.
pub fn stage(pod: &Pod, now: Timestamp, wait: Duration) -> Stage {
    let Some(nats) = nats_container(pod) else {
        return Stage::Delete;
    };
    if !running(pod) {
        return Stage::Delete;
    }
    if let Some(hook) = nats.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
        return match hook.exec.as_ref().and_then(|e| e.command.as_ref()) {
            Some(command) if is_lame_duck(command) => Stage::SignalAndDelete(command.clone()),
            _ => Stage::Delete,
        };
    }
    let since = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SINCE_ANNOTATION))
        .and_then(|s| s.parse::<Timestamp>().ok());
    let Some(since) = since.filter(|s| *s <= now) else {
        return Stage::Signal(command(nats));
    };
    let until = since
        .checked_add(jiff_duration(wait))
        .unwrap_or(Timestamp::MAX);
    if now >= until || exited_since(pod, since) {
        Stage::Delete
    } else {
        Stage::Draining(until)
    }
}

/// The command that puts the pod's server into lame duck: its own binary (the first
/// word of its command, which is `/gnatsd` on 1.x images), signalling via the pid file.
pub fn command(nats: &Container) -> Vec<String> {
    let binary = nats
        .command
        .as_ref()
        .and_then(|c| c.first())
        .filter(|b| b.contains("nats-server") || b.contains("gnatsd"))
        .cloned()
        .unwrap_or_else(|| "nats-server".into());
    vec![binary, "--signal".into(), format!("ldm={PID_FILE}")]
}

/// `command` is `<binary> --signal ldm=<our pid file>`: the hook we render.
fn is_lame_duck(command: &[String]) -> bool {
    matches!(command, [_, flag, arg] if flag == "--signal" && *arg == format!("ldm={PID_FILE}"))
}

/// Runs `command` in the pod's `nats` container. `Ok` when it exited 0 or did not answer
/// within [`EXEC_TIMEOUT`] (the signal may still have been delivered, as the Go operator
/// assumed); `Err` says why it could not run.
pub async fn signal(pods: &Api<Pod>, pod: &str, command: &[String]) -> Result<(), String> {
    let params = AttachParams::default()
        .container(NATS_CONTAINER)
        .stdin(false)
        .stdout(false)
        .stderr(true);
    let run = async {
        let mut process = pods
            .exec(pod, command.iter().map(String::as_str), &params)
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) => s.message,
                other => other.to_string(),
            })?;
        let status = match process.take_status() {
            Some(s) => s.await,
            None => None,
        };
        let _ = process.join().await;
        match status {
            Some(s) if s.status.as_deref() == Some("Failure") => {
                Err(s.message.unwrap_or_else(|| "the command failed".into()))
            }
            _ => Ok(()),
        }
    };
    tokio::time::timeout(EXEC_TIMEOUT, run)
        .await
        .unwrap_or(Ok(()))
}

/// Drops all of `pod` that [`stage`] does not read from its spec and container statuses
/// (the pod cache keeps what is left): the `nats` container's first command word and
/// its `preStop` exec command (or an empty hook), and when its runs terminated.
pub fn prune(pod: &mut Pod) {
    let nats = pod
        .spec
        .take()
        .and_then(|s| s.containers.into_iter().find(|c| c.name == NATS_CONTAINER));
    pod.spec = nats.map(|c| PodSpec {
        containers: vec![Container {
            name: c.name,
            command: c.command.map(|mut words| {
                words.truncate(1);
                words
            }),
            lifecycle: c.lifecycle.and_then(|l| l.pre_stop).map(|hook| Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    exec: hook.exec,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    if let Some(status) = pod.status.as_mut() {
        let ended = |s: Option<ContainerState>| {
            s.and_then(|s| s.terminated).map(|t| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    finished_at: t.finished_at,
                    exit_code: t.exit_code,
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        status.container_statuses = status.container_statuses.take().map(|all| {
            all.into_iter()
                .filter(|c| c.name == NATS_CONTAINER)
                .map(|c| ContainerStatus {
                    name: c.name,
                    state: ended(c.state),
                    last_state: ended(c.last_state),
                    ..Default::default()
                })
                .collect()
        });
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
    }
}

fn nats_container(pod: &Pod) -> Option<&Container> {
    let containers = &pod.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == NATS_CONTAINER)
        .or_else(|| containers.first())
}

fn running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Running")
}

/// The server process ended after `since`: its container is terminated now, or it was
/// restarted (restartPolicy Always) and the last run finished after the signal.
fn exited_since(pod: &Pod, since: Timestamp) -> bool {
    let Some(statuses) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
    else {
        return false;
    };
    let Some(nats) = statuses
        .iter()
        .find(|c| c.name == NATS_CONTAINER)
        .or_else(|| statuses.first())
    else {
        return false;
    };
    if nats.state.as_ref().is_some_and(|s| s.terminated.is_some()) {
        return true;
    }
    nats.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .is_some_and(|t| t.0 >= since)
}

fn jiff_duration(d: Duration) -> k8s_openapi::jiff::SignedDuration {
    k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or(k8s_openapi::jiff::SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, ExecAction, Lifecycle,
        LifecycleHandler, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const WAIT: Duration = Duration::from_secs(150);

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A pod as the Go operator made it: `/nats-server` without a preStop hook, Running.
    fn go_made() -> Pod {
        Pod {
            metadata: Default::default(),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "nats".into(),
                    image: Some("nats:2.9.10".into()),
                    command: Some(vec![
                        "/nats-server".into(),
                        "--config".into(),
                        "/etc/nats-config/nats.conf".into(),
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "nats".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    /// A Go-made pod whose template gave the `nats` container its own preStop hook.
    fn hooked() -> Pod {
        let mut pod = go_made();
        pod.spec.as_mut().unwrap().containers[0].lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction::default()),
                ..Default::default()
            }),
            ..Default::default()
        });
        pod
    }

    /// A pod as we render it: our `preStop` hook signals lame duck.
    fn ours() -> Pod {
        let mut pod = go_made();
        pod.spec.as_mut().unwrap().containers[0].lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "nats-server".into(),
                        "--signal".into(),
                        "ldm=/var/run/nats/nats.pid".into(),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        pod
    }

    fn nats_status(pod: &mut Pod) -> &mut ContainerStatus {
        &mut pod
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
    }

    /// `pod` whose server's last run ended at `finished` (restartPolicy Always brought it back).
    fn last_run_ended(mut pod: Pod, finished: &str) -> Pod {
        nats_status(&mut pod).last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                finished_at: Some(Time(t(finished))),
                ..Default::default()
            }),
            ..Default::default()
        });
        pod
    }

    fn signalled(mut pod: Pod, at: &str) -> Pod {
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert(SINCE_ANNOTATION.into(), at.into());
        pod
    }

    #[test]
    fn a_pod_without_a_hook_is_signalled_with_its_own_binary() {
        let now = t("2026-12-03T10:00:00Z");
        assert_eq!(
            stage(&go_made(), now, WAIT),
            Stage::Signal(vec![
                "/nats-server".into(),
                "--signal".into(),
                "ldm=/var/run/nats/nats.pid".into()
            ])
        );
        let mut gnatsd = go_made();
        gnatsd.spec.as_mut().unwrap().containers[0].command = Some(vec!["/gnatsd".into()]);
        let Stage::Signal(cmd) = stage(&gnatsd, now, WAIT) else {
            panic!("not signalled")
        };
        assert_eq!(cmd[0], "/gnatsd");
        let mut bare = go_made();
        bare.spec.as_mut().unwrap().containers[0].command = None;
        let Stage::Signal(cmd) = stage(&bare, now, WAIT) else {
            panic!("not signalled")
        };
        assert_eq!(cmd[0], "nats-server");
    }

    #[test]
    fn a_pod_with_a_hook_or_not_running_is_deleted_directly() {
        let now = t("2026-12-03T10:00:00Z");
        let hooked = hooked();
        assert_eq!(stage(&hooked, now, WAIT), Stage::Delete);
        let mut pending = go_made();
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        assert_eq!(stage(&pending, now, WAIT), Stage::Delete);
        let mut leaving = go_made();
        leaving.metadata.deletion_timestamp = Some(Time(now));
        assert_eq!(stage(&leaving, now, WAIT), Stage::Delete);
    }

    /// The hook alone races with the kubelet's SIGTERM: the operator signals first.
    #[test]
    fn a_pod_with_our_hook_is_signalled_then_deleted() {
        let now = t("2026-12-03T10:00:00Z");
        assert_eq!(
            stage(&ours(), now, WAIT),
            Stage::SignalAndDelete(vec![
                "nats-server".into(),
                "--signal".into(),
                "ldm=/var/run/nats/nats.pid".into()
            ])
        );
        let mut pending = ours();
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        assert_eq!(stage(&pending, now, WAIT), Stage::Delete);
        // Another pid file is not our hook: the template's own hook decides.
        let mut other = ours();
        other.spec.as_mut().unwrap().containers[0]
            .lifecycle
            .as_mut()
            .unwrap()
            .pre_stop
            .as_mut()
            .unwrap()
            .exec
            .as_mut()
            .unwrap()
            .command
            .as_mut()
            .unwrap()[2] = "ldm=/tmp/other.pid".into();
        assert_eq!(stage(&other, now, WAIT), Stage::Delete);
    }

    #[test]
    fn a_signalled_pod_is_deleted_when_its_server_exited_or_the_wait_is_over() {
        let pod = signalled(go_made(), "2026-12-03T10:00:00Z");
        assert_eq!(
            stage(&pod, t("2026-12-03T10:01:00Z"), WAIT),
            Stage::Draining(t("2026-12-03T10:02:30Z"))
        );
        assert_eq!(stage(&pod, t("2026-12-03T10:02:30Z"), WAIT), Stage::Delete);

        let mut exited = pod.clone();
        nats_status(&mut exited).state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated::default()),
            ..Default::default()
        });
        assert_eq!(
            stage(&exited, t("2026-12-03T10:01:00Z"), WAIT),
            Stage::Delete
        );

        // restartPolicy Always: the server came back; its last run ended after the signal.
        let restarted_at = |finished: &str| last_run_ended(pod.clone(), finished);
        let now = t("2026-12-03T10:01:00Z");
        assert_eq!(
            stage(&restarted_at("2026-12-03T10:00:40Z"), now, WAIT),
            Stage::Delete
        );
        assert!(matches!(
            stage(&restarted_at("2026-12-03T09:00:00Z"), now, WAIT),
            Stage::Draining(_)
        ));
    }

    /// The pod cache keeps only what `stage` reads; it decides the same on what is left.
    #[test]
    fn the_pruned_pod_decides_the_same() {
        let now = t("2026-12-03T10:01:00Z");
        let hooked = hooked();
        let exited = last_run_ended(
            signalled(go_made(), "2026-12-03T10:00:00Z"),
            "2026-12-03T10:00:30Z",
        );
        let mut sidecar = go_made();
        sidecar.spec.as_mut().unwrap().containers.insert(
            0,
            Container {
                name: "reloader".into(),
                ..Default::default()
            },
        );
        for pod in [
            go_made(),
            hooked,
            ours(),
            signalled(go_made(), "2026-12-03T10:00:00Z"),
            exited,
            sidecar,
        ] {
            let mut pruned = pod.clone();
            prune(&mut pruned);
            assert_eq!(stage(&pruned, now, WAIT), stage(&pod, now, WAIT), "{pod:?}");
        }
    }

    #[test]
    fn an_unreadable_or_future_mark_signals_again() {
        let now = t("2026-12-03T10:00:00Z");
        for mark in ["yesterday", "2026-12-03T11:00:00Z"] {
            assert!(matches!(
                stage(&signalled(go_made(), mark), now, WAIT),
                Stage::Signal(_)
            ));
        }
    }
}
