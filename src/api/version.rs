//! NATS server versions as image tags: `2.10.24`, `v2.1.9`, `2.10`, `2.11.0-RC.1`,
//! `nightly`, `nightly-20201008`.

use std::cmp::Ordering;

/// A parsed server version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsVersion {
    /// A `nightly` or `nightly-YYYYMMDD` build.
    Nightly,
    /// A release `major.minor.patch`, with an optional pre-release or image suffix.
    Release {
        /// Major version.
        major: u64,
        /// Minor version.
        minor: u64,
        /// Patch version (0 when the tag omits it).
        patch: u64,
        /// Anything after `-` or `+` (`RC.1`, `alpine`).
        suffix: String,
    },
}

/// Parses a version as users write it in `spec.version`.
pub fn parse(raw: &str) -> Result<NatsVersion, String> {
    const HELP: &str = "must be a NATS server version such as 2.10.24 (a leading v is accepted), or nightly / nightly-YYYYMMDD";
    let s = raw.trim_start_matches('v');
    if s == "nightly" {
        return Ok(NatsVersion::Nightly);
    }
    if let Some(date) = s.strip_prefix("nightly-") {
        let ok = date.len() == 8
            && date.bytes().all(|b| b.is_ascii_digit())
            && matches!(date[4..6].parse::<u32>(), Ok(1..=12))
            && matches!(date[6..8].parse::<u32>(), Ok(1..=31));
        return if ok {
            Ok(NatsVersion::Nightly)
        } else {
            Err(HELP.into())
        };
    }
    if s.len() > 128 {
        return Err(HELP.into());
    }
    let (core, suffix) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    if s.find(['-', '+']).is_some()
        && (suffix.is_empty()
            || !suffix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
    {
        return Err(HELP.into());
    }
    let parts: Vec<&str> = core.split('.').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(HELP.into());
    }
    let mut nums = [0u64; 3];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || (p.len() > 1 && p.starts_with('0'))
        {
            return Err(HELP.into());
        }
        nums[i] = p.parse().map_err(|_| HELP.to_string())?;
    }
    Ok(NatsVersion::Release {
        major: nums[0],
        minor: nums[1],
        patch: nums[2],
        suffix: suffix.to_string(),
    })
}

impl NatsVersion {
    fn triple(&self) -> Option<(u64, u64, u64)> {
        match self {
            NatsVersion::Nightly => None,
            NatsVersion::Release {
                major,
                minor,
                patch,
                ..
            } => Some((*major, *minor, *patch)),
        }
    }

    /// Releases below 2.2 (all of 1.x included) get no fixes any more.
    pub fn is_end_of_life(&self) -> bool {
        self.triple().is_some_and(|(ma, mi, _)| (ma, mi) < (2, 2))
    }

    /// JetStream exists from 2.2 on.
    pub fn supports_jetstream(&self) -> bool {
        self.triple().is_none_or(|(ma, mi, _)| (ma, mi) >= (2, 2))
    }

    /// Whether the server needs `cluster.name` handling (2.2+ warns without it).
    pub fn supports_cluster_name(&self) -> bool {
        self.supports_jetstream()
    }

    /// True when both are releases and `self` is older than `other`.
    pub fn is_older_than(&self, other: &NatsVersion) -> bool {
        match (self.triple(), other.triple()) {
            (Some(a), Some(b)) => a.cmp(&b) == Ordering::Less,
            _ => false,
        }
    }

    /// Path of the server binary in the official images, as the Go operator chose it.
    pub fn binary_path(&self) -> &'static str {
        match self {
            NatsVersion::Nightly => "/bin/nats-server",
            NatsVersion::Release { major, .. } if *major < 2 => "/gnatsd",
            NatsVersion::Release { .. } => "/nats-server",
        }
    }
}

/// Binary path for a raw version string; unparsable versions get `/nats-server` like
/// the Go operator.
pub fn binary_path(raw: &str) -> &'static str {
    parse(raw)
        .map(|v| v.binary_path())
        .unwrap_or("/nats-server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_paths_match_the_go_operator() {
        for (v, path) in [
            ("2.0.0", "/nats-server"),
            ("2.1.8", "/nats-server"),
            ("2.1.8-RC18", "/nats-server"),
            ("0.1.8", "/gnatsd"),
            ("1.4.1", "/gnatsd"),
            ("nightly", "/bin/nats-server"),
            ("nightly-20201008", "/bin/nats-server"),
            ("garbage", "/nats-server"),
        ] {
            assert_eq!(binary_path(v), path, "{v}");
        }
    }

    #[test]
    fn accepts_tags_users_write() {
        for ok in [
            "2.10.24",
            "v2.1.9",
            "vv2.1.9",
            "2.10",
            "2.11.0-RC.1",
            "2.10-alpine",
            "nightly-20201008",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "latest",
            "2",
            "2.x",
            "2.10.1.1",
            "02.1.0",
            "nightly-2020",
            "nightly-20201308",
            "2.1.0-",
            "2.1 .0",
            "2.1.0-a\"b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn orders_and_lifecycle() {
        let old = parse("1.4.1").unwrap_or(NatsVersion::Nightly);
        let new = parse("2.10.0").unwrap_or(NatsVersion::Nightly);
        assert!(old.is_end_of_life());
        assert!(!new.is_end_of_life());
        assert!(old.is_older_than(&new));
        assert!(!new.is_older_than(&old));
        assert!(!old.supports_jetstream());
        assert!(NatsVersion::Nightly.supports_jetstream());
    }
}
