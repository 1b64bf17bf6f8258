//! Go-style durations (`300ms`, `1.5h`, `2m30s`), as nats-server parses them.

use std::time::Duration;

/// Parses a Go duration string. Returns `None` for anything `time.Duration` parsing
/// would reject, and for negative durations (none of our settings may be negative). The
/// syntax is the webhook crate's parser, shared with `?timeout=`; `0` alone is allowed
/// here, as Go allows it.
pub fn parse(s: &str) -> Option<Duration> {
    if s.trim() == "0" {
        return Some(Duration::ZERO);
    }
    let total = nats_operator_webhook::go_duration_seconds(s)?;
    if total > 1e12 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// Whole seconds of a Go duration, or `None` when empty or invalid.
pub fn parse_seconds(s: &str) -> Option<i64> {
    parse(s).and_then(|d| i64::try_from(d.as_secs()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse_seconds("2m"), Some(120));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "10", "s", "1x", "-5s", "1..2s", "ten seconds", "1e3s"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
