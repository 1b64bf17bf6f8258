//! Lease-based leader election (coordination.k8s.io/v1), so that of several replicas
//! exactly one runs the controllers while all of them serve the webhooks.
//!
//! Every write carries the resourceVersion it read, so two candidates can never both
//! believe they hold the lease: the apiserver lets only one update through.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Timing of the election, as client-go's defaults (15 s / 10 s / 2 s).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// The leader gives up if it could not renew for this long.
    pub renew_deadline: Duration,
    /// Pause between attempts.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do with the lease it read (pure, tested below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it (or it expired, or it is ours): write it with us as holder.
    Acquire {
        /// Whether the holder changes (counts a transition).
        transition: bool,
    },
    /// Someone else holds a valid lease.
    Follow(String),
}

/// Decides from a lease's spec, our identity and the time now.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire { transition: true };
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Acquire { transition: false };
    }
    if holder.is_empty() {
        return Decision::Acquire { transition: true };
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_second());
    match renewed {
        Some(at) if at + duration > now.as_second() => Decision::Follow(holder),
        _ => Decision::Acquire { transition: true },
    }
}

/// A candidate for the lease `name` in the operator's namespace.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
}

impl LeaderElector {
    /// A candidate named `identity` (the pod name) for lease `namespace/name`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
        }
    }

    async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let Decision::Acquire { transition } = decision else {
            return Ok(false);
        };
        let old = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                self.timing
                    .lease_duration
                    .as_secs()
                    .try_into()
                    .unwrap_or(15),
            ),
            acquire_time: if transition {
                Some(MicroTime(now))
            } else {
                old.acquire_time.clone()
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(
                old.lease_transitions.unwrap_or(0) + i32::from(transition && current.is_some()),
            ),
            ..Default::default()
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(true),
            // Someone else wrote first (create or update conflict): not ours this round.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Campaigns until `shutdown`, publishing leadership on `leader`. A leader that cannot
    /// renew within the renew deadline steps down. On shutdown a leader releases the
    /// lease so a standby takes over at once.
    pub async fn run(self, leader: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let mut last_renew: Option<tokio::time::Instant> = None;
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    last_renew = Some(tokio::time::Instant::now());
                    if !*leader.borrow() {
                        tracing::info!(identity = %self.identity, lease = %self.name, "became leader");
                    }
                    leader.send_replace(true);
                }
                Ok(false) => {
                    if *leader.borrow() {
                        tracing::warn!(identity = %self.identity, "lost the lease to another replica");
                    }
                    last_renew = None;
                    leader.send_replace(false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease update failed");
                    if last_renew.is_some_and(|t| t.elapsed() > self.timing.renew_deadline) {
                        tracing::warn!("could not renew the lease in time; stepping down");
                        last_renew = None;
                        leader.send_replace(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.retry_period) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        if *leader.borrow() {
            leader.send_replace(false);
            if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
                && let Some(spec) = lease.spec.as_mut()
                && spec.holder_identity.as_deref() == Some(self.identity.as_str())
            {
                spec.holder_identity = None;
                spec.renew_time = None;
                let _ = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await;
                tracing::info!("released the lease");
            }
        }
    }
}

/// Runs the caches of `scope` for as long as this process runs (followers keep theirs
/// warm, so a new leader starts at once), and the controllers while `leader` is true
/// (see [`lead`]).
pub async fn run_while_leader(
    client: kube::Client,
    scope: super::Scope,
    settings: super::Settings,
    leader: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
    leading: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let (caches, driver) = super::cache::Caches::new(&client, scope);
    let mut watch_stop = stop.clone();
    let watches = tokio::spawn(driver.run(async move {
        let _ = watch_stop.wait_for(|s| *s).await;
    }));
    lead(client, caches, settings, leader, stop, leading).await;
    let _ = watches.await;
}

/// Runs the controllers on `caches` (driven elsewhere) while `leader` is true and stops
/// them when it turns false or `stop` is set; starts them again on the next term.
/// `leading` mirrors whether the controllers run (for health reports and tests).
pub async fn lead(
    client: kube::Client,
    caches: super::cache::Caches,
    settings: super::Settings,
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
    leading: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    loop {
        tokio::select! {
            r = leader.wait_for(|l| *l) => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(scope = ?caches.scope(), "starting controllers");
        let (term_tx, term_rx) = watch::channel(false);
        let mut leader_watch = leader.clone();
        let mut stop_watch = stop.clone();
        let guard = tokio::spawn(async move {
            tokio::select! {
                _ = leader_watch.wait_for(|l| !*l) => {},
                _ = stop_watch.wait_for(|s| *s) => {},
            }
            let _ = term_tx.send(true);
        });
        leading.store(true, Ordering::SeqCst);
        super::run_with(client.clone(), caches.clone(), settings.clone(), term_rx).await;
        leading.store(false, Ordering::SeqCst);
        guard.abort();
        tracing::info!("controllers stopped");
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_at: i64, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(
                Timestamp::from_second(renewed_at).unwrap_or(Timestamp::UNIX_EPOCH),
            )),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::from_second(1000).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(
            decide(None, "a", now),
            Decision::Acquire { transition: true }
        );
        assert_eq!(
            decide(Some(&spec("a", 995, 15)), "a", now),
            Decision::Acquire { transition: false }
        );
        assert_eq!(
            decide(Some(&spec("b", 995, 15)), "a", now),
            Decision::Follow("b".into())
        );
        assert_eq!(
            decide(Some(&spec("b", 980, 15)), "a", now),
            Decision::Acquire { transition: true }
        );
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", now),
            Decision::Acquire { transition: true }
        );
    }
}
