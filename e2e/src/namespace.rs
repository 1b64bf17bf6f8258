//! A fresh namespace per test, deleted when the guard drops.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};

use crate::TestCluster;

/// Label put on every test namespace, so leftovers of killed runs can be found:
/// `kubectl delete ns -l nats-operator-e2e=true`.
pub const TEST_NAMESPACE_LABEL: &str = "nats-operator-e2e";

/// A uniquely named namespace that is deleted when this guard drops, also when the test
/// panics. Use [`TestNamespace::delete`] to delete it and wait until it is gone.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    config: Config,
    armed: bool,
}

impl TestNamespace {
    /// Creates namespace `<prefix>-<unique suffix>` (prefix sanitized to a DNS label).
    pub async fn create(cluster: &TestCluster, prefix: &str) -> Result<TestNamespace> {
        let name = unique_name(prefix);
        let api: Api<Namespace> = Api::all(cluster.client()?);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace {
            name,
            config: cluster.config().clone(),
            armed: true,
        })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace and waits up to `timeout` until it is gone (this needs the
    /// namespace controller, which empties and finalizes it).
    pub async fn delete(mut self, timeout: Duration) -> Result<()> {
        self.armed = false;
        let api: Api<Namespace> = Api::all(Client::try_from(self.config.clone())?);
        let uid = match api.get_opt(&self.name).await? {
            Some(ns) => ns.metadata.uid.unwrap_or_default(),
            None => return Ok(()),
        };
        delete_ignoring_not_found(&api, &self.name).await?;
        tokio::time::timeout(
            timeout,
            await_condition(api, &self.name, conditions::is_deleted(&uid)),
        )
        .await
        .with_context(|| format!("namespace {} still exists after {timeout:?}", self.name))?
        .with_context(|| format!("watching namespace {}", self.name))?;
        Ok(())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Drop cannot await, and may run inside (or outside) any runtime: delete from a thread
        // of our own with a small runtime, and wait for the request (not for the namespace
        // to be gone).
        let name = std::mem::take(&mut self.name);
        let config = self.config.clone();
        let joined = std::thread::Builder::new()
            .name("delete-test-namespace".into())
            .spawn(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let api: Api<Namespace> = Api::all(Client::try_from(config)?);
                    tokio::time::timeout(
                        Duration::from_secs(30),
                        delete_ignoring_not_found(&api, &name),
                    )
                    .await
                    .context("timed out")?
                    .with_context(|| format!("deleting namespace {name}"))
                })
            })
            .map(|h| h.join());
        match joined {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("test namespace cleanup: {e:#}"),
            Ok(Err(_)) => tracing::warn!("test namespace cleanup thread panicked"),
            Err(e) => tracing::warn!("test namespace cleanup: spawning thread: {e}"),
        }
    }
}

async fn delete_ignoring_not_found(api: &Api<Namespace>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `<prefix>-<8 hex digits>`: prefix lowercased, non-alphanumerics turned into `-`, cut so the
/// whole name stays a valid DNS label (<= 63 chars).
fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    clean.truncate(50);
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "e2e" } else { clean };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let mixed = nanos
        .wrapping_mul(2_654_435_761)
        .wrapping_add(std::process::id().wrapping_mul(40_503))
        .wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed).wrapping_mul(97_531));
    format!("{clean}-{mixed:08x}")
}

#[cfg(test)]
mod tests {
    use super::unique_name;

    #[test]
    fn names_are_dns_labels_and_unique() {
        let a = unique_name("My_Test::case");
        let b = unique_name("My_Test::case");
        assert_ne!(a, b);
        assert!(a.starts_with("my-test--case-"), "{a}");
        let long = unique_name(&"x".repeat(200));
        assert!(long.len() <= 63, "{long}");
        assert!(unique_name("--").starts_with("e2e-"));
        for n in [a, long] {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
        }
    }
}
