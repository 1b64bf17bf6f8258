//! Request deadlines (`?timeout=10s`) and panic containment for domain calls.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

/// Seconds of a Go `time.Duration` string (`10s`, `500ms`, `1m30s`, `2.5s`, `100us`,
/// `1h`), checking syntax only: `None` when malformed or negative. Callers add the bounds
/// their setting needs.
pub fn go_duration_seconds(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * secs;
    }
    total.is_finite().then_some(total)
}

/// Parses a Go `time.Duration` string as the apiserver writes it in `?timeout=`:
/// `10s`, `500ms`, `1m`, `1m30s`, `2.5s`, `100us`, `1h`. Returns `None` when malformed,
/// negative, zero or over a day.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let total = go_duration_seconds(s)?;
    if total <= 0.0 || total > 86_400.0 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// Extracts the `timeout` query parameter from a raw query string.
pub fn timeout_from_query(query: Option<&str>) -> Option<Duration> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "timeout")
        .and_then(|(_, v)| parse_go_duration(v))
}

/// Best-effort text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Why a guarded domain call produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuardError {
    /// The call did not finish before the deadline.
    DeadlineExceeded(Duration),
    /// The call panicked (message already logged).
    Panicked,
}

/// Request bodies up to this size are decided on the async worker itself: their domain
/// call takes microseconds, less than a hand-off to the blocking pool and back costs.
pub(crate) const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// Runs a small synchronous domain call on the current thread, catching panics.
pub(crate) fn run_inline<T, F>(what: &'static str, f: F) -> Result<T, GuardError>
where
    F: FnOnce() -> T,
{
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        tracing::error!(
            handler = what,
            panic = %panic_message(payload.as_ref()),
            "domain call panicked"
        );
        GuardError::Panicked
    })
}

/// Runs a domain call for a request body of `body_len` bytes: inline when small (see
/// [`INLINE_BODY_LIMIT`]), else on the blocking pool under `deadline`.
pub(crate) async fn run_sized<T, F>(
    what: &'static str,
    body_len: usize,
    deadline: Duration,
    f: F,
) -> Result<T, GuardError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if body_len <= INLINE_BODY_LIMIT && !deadline.is_zero() {
        run_inline(what, f)
    } else {
        run_guarded(what, deadline, f).await
    }
}

/// Runs a synchronous domain call on the blocking pool under `deadline`, catching panics.
///
/// On overrun the caller gets an error at the deadline; the blocking thread itself
/// cannot be cancelled and finishes in the background.
pub(crate) async fn run_guarded<T, F>(
    what: &'static str,
    deadline: Duration,
    f: F,
) -> Result<T, GuardError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if deadline.is_zero() {
        return Err(GuardError::DeadlineExceeded(deadline));
    }
    let task = tokio::task::spawn_blocking(move || run_inline(what, f));
    match tokio::time::timeout(deadline, task).await {
        Err(_) => {
            tracing::error!(
                handler = what,
                ?deadline,
                "domain call exceeded its deadline"
            );
            Err(GuardError::DeadlineExceeded(deadline))
        }
        Ok(Ok(result)) => result,
        Ok(Err(join_err)) => {
            tracing::error!(handler = what, error = %join_err, "domain task failed");
            Err(GuardError::Panicked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_go_duration("100us"), Some(Duration::from_micros(100)));
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "10", "s", "-1s", "0s", "10x", "1..2s", "abc", "9999h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn timeout_query() {
        assert_eq!(
            timeout_from_query(Some("timeout=10s")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            timeout_from_query(Some("a=b&timeout=250ms")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(timeout_from_query(Some("timeout=bogus")), None);
        assert_eq!(timeout_from_query(None), None);
    }

    #[tokio::test]
    async fn guarded_catches_panics_and_deadlines() {
        let r: Result<(), _> = run_guarded("t", Duration::from_secs(5), || panic!("boom")).await;
        assert_eq!(r, Err(GuardError::Panicked));
        let r = run_guarded("t", Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_millis(300));
        })
        .await;
        assert_eq!(
            r,
            Err(GuardError::DeadlineExceeded(Duration::from_millis(20)))
        );
        assert_eq!(run_guarded("t", Duration::from_secs(5), || 7).await, Ok(7));
    }

    #[tokio::test]
    async fn sized_runs_small_calls_inline_and_still_contains_panics() {
        let here = std::thread::current().id();
        let small = run_sized("t", 10, Duration::from_secs(5), move || {
            std::thread::current().id() == here
        });
        assert_eq!(small.await, Ok(true));
        let large = run_sized(
            "t",
            INLINE_BODY_LIMIT + 1,
            Duration::from_secs(5),
            move || std::thread::current().id() == here,
        );
        assert_eq!(large.await, Ok(false));
        let r: Result<(), _> = run_sized("t", 10, Duration::from_secs(5), || panic!("boom")).await;
        assert_eq!(r, Err(GuardError::Panicked));
        let r = run_sized("t", 10, Duration::ZERO, || ()).await;
        assert_eq!(r, Err(GuardError::DeadlineExceeded(Duration::ZERO)));
    }
}
