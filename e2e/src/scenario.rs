//! Bookkeeping across the tests of one test binary: which scenarios are still running (so a
//! final step can wait for them), and a lock for scenarios that disturb the shared webhook.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held by a running scenario; see [`wait_for_other_scenarios`].
#[derive(Debug)]
pub struct ScenarioGuard(());

/// Marks a scenario as running until the guard drops (also on panic).
pub fn scenario() -> ScenarioGuard {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    ScenarioGuard(())
}

impl Drop for ScenarioGuard {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until no [`ScenarioGuard`] is alive, up to `timeout`; returns whether that happened.
///
/// libtest starts the tests of a binary in name order, so a test named `zz_...` starts after
/// all others have started; it calls this to run last (a short grace period covers tests that
/// were started but have not reached [`scenario`] yet).
pub async fn wait_for_other_scenarios(timeout: Duration) -> bool {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ACTIVE.load(Ordering::SeqCst) == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Serializes scenarios that stop the webhook server or remove a webhook configuration
/// (hold the guard for the whole scenario). Works across the tests' separate runtimes.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().await
}
