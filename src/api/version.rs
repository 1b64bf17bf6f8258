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
        self.supports(&JETSTREAM)
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

/// A server feature that the configuration can ask for, and the first release whose
/// configuration parser accepts it. nats-server refuses an unknown key in `nats.conf`
/// (since 2.0 `unknown field` is an error, at start and with `-t`), so a feature asked of
/// an older server is a crash loop: the webhook denies it instead, naming both versions.
/// The releases come from the `case` lines of `server/opts.go` in each tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// What the user asked for, as the denial names it.
    pub name: &'static str,
    /// The first release that accepts it.
    pub since: (u64, u64, u64),
}

/// `gateway {}`, `leafnodes {}`, `accounts {}`, `operator`, `resolver`, `system_account`,
/// `tls.verify_and_map`: v2.0.0.
pub const GATEWAYS: Feature = Feature {
    name: "gateways",
    since: (2, 0, 0),
};
/// `leafnodes {}` (with `remotes[].urls`, v2.0.2).
pub const LEAFNODES: Feature = Feature {
    name: "leafnodes",
    since: (2, 0, 2),
};
/// `operator`, `resolver`, `system_account`.
pub const JWT_AUTH: Feature = Feature {
    name: "operator JWT authentication",
    since: (2, 0, 0),
};
/// `tls.verify_and_map`.
pub const VERIFY_AND_MAP: Feature = Feature {
    name: "TLS verify-and-map",
    since: (2, 0, 0),
};
/// `server_name`.
pub const SERVER_NAME: Feature = Feature {
    name: "server names",
    since: (2, 1, 2),
};
/// `no_auth_user`.
pub const NO_AUTH_USER: Feature = Feature {
    name: "the no-auth user",
    since: (2, 1, 7),
};
/// `accounts {}` from `auth.accounts`.
pub const ACCOUNTS: Feature = Feature {
    name: "accounts",
    since: (2, 0, 0),
};
/// `jetstream {}`.
pub const JETSTREAM: Feature = Feature {
    name: "JetStream",
    since: (2, 2, 0),
};
/// `mqtt {}`.
pub const MQTT: Feature = Feature {
    name: "MQTT",
    since: (2, 2, 0),
};
/// `websocket {}` (with `no_tls`, `compression`, `handshake_timeout`).
pub const WEBSOCKET: Feature = Feature {
    name: "websocket",
    since: (2, 2, 0),
};
/// The `--name` command-line flag (`-n`): v2.2.0.
pub const NAME_FLAG: Feature = Feature {
    name: "the --name flag",
    since: (2, 2, 0),
};
/// Refusing to start when `max_payload` exceeds `max_pending` (server.go
/// `validateOptions`): releases before this accept such a config.
pub const PAYLOAD_WITHIN_PENDING: Feature = Feature {
    name: "max_payload within max_pending",
    since: (2, 3, 4),
};
/// Moving a stream's replicas off a server through the system account
/// (`$JS.API.ACCOUNT.STREAM.MOVE`): an API, not a config key, first in v2.9.0.
pub const STREAM_MOVE: Feature = Feature {
    name: "stream moves",
    since: (2, 9, 0),
};
/// `lame_duck_duration`.
pub const LAME_DUCK: Feature = Feature {
    name: "lame duck duration",
    since: (1, 4, 0),
};

impl Feature {
    /// `2.2.0`.
    pub fn since_text(&self) -> String {
        let (a, b, c) = self.since;
        format!("{a}.{b}.{c}")
    }
}

impl NatsVersion {
    /// Whether this release accepts `feature` (nightly builds accept everything).
    pub fn supports(&self, feature: &Feature) -> bool {
        self.triple().is_none_or(|t| t >= feature.since)
    }

    /// `(major, minor)` of a release.
    pub fn minor(&self) -> Option<(u64, u64)> {
        self.triple().map(|(a, b, _)| (a, b))
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

    #[test]
    fn features_start_at_their_release() {
        let v = |s: &str| parse(s).unwrap_or(NatsVersion::Nightly);
        assert!(!v("2.1.6").supports(&NO_AUTH_USER));
        assert!(v("2.1.7").supports(&NO_AUTH_USER));
        assert!(!v("2.1.9").supports(&WEBSOCKET));
        assert!(v("2.2").supports(&WEBSOCKET));
        assert!(!v("2.0.0").supports(&LEAFNODES));
        assert!(v("2.0.2").supports(&LEAFNODES));
        assert!(!v("1.4.1").supports(&GATEWAYS));
        assert!(v("1.4.1").supports(&LAME_DUCK));
        assert!(!v("1.3.0").supports(&LAME_DUCK));
        assert!(!v("2.1.0").supports(&SERVER_NAME));
        assert_eq!(MQTT.since_text(), "2.2.0");
    }
}
