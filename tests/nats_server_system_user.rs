//! The operator's system user (`render::system_user`) on real servers of every version
//! with JetStream: for an open cluster, a users cluster (a list and a single user) and
//! an accounts cluster, a client connects the same way, into the same account, before
//! and after the config gains the user, and a client connected before the reload stays
//! connected. The user itself lands in the system account and may make system requests;
//! the operator's JetStream-API-only user of the client's account (none on an open
//! cluster: no credentials) creates a stream the client sees, and publishes nothing else.

mod nats_server_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nats_operator::api::v1beta1 as b;
use nats_operator::render::system_user::{
    Identity, SYSTEM_USER_NAME, SystemUser, jetstream_user_name,
};
use nats_operator::render::{AuthInputs, ClusterMeta, Paths, nats_conf, pod_name};
use nats_server_support::{Running, free_port, servers};

/// An auth style: the spec's auth, its inputs, and a client `(user, pass)` that works.
struct Style {
    name: &'static str,
    auth: Option<b::Auth>,
    inputs: AuthInputs,
    client: (&'static str, &'static str),
    /// The client's account.
    account: &'static str,
}

fn clients_secret() -> Option<b::Auth> {
    Some(b::Auth {
        clients: Some(b::ClientAuth {
            secret: "clients".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn styles() -> Vec<Style> {
    vec![
        Style {
            name: "open",
            auth: None,
            inputs: AuthInputs::default(),
            client: ("", ""),
            account: "$G",
        },
        Style {
            name: "users",
            auth: clients_secret(),
            inputs: AuthInputs {
                clients: Some(serde_json::json!({"users": [
                    {"username": "app", "password": "app-pw", "permissions": {"publish": [">"], "subscribe": [">"]}},
                    {"username": "ro", "password": "ro-pw", "permissions": {"publish": ["none"], "subscribe": [">"]}}
                ]})),
                ..Default::default()
            },
            client: ("app", "app-pw"),
            account: "$G",
        },
        Style {
            name: "single user",
            auth: clients_secret(),
            inputs: AuthInputs {
                clients: Some(serde_json::json!({"username": "solo", "password": "solo-pw"})),
                ..Default::default()
            },
            client: ("solo", "solo-pw"),
            account: "$G",
        },
        Style {
            name: "accounts",
            auth: Some(b::Auth {
                accounts: Some(b::AccountsAuth {
                    secret: "accounts".into(),
                }),
                ..Default::default()
            }),
            inputs: AuthInputs {
                accounts: Some(serde_json::json!({
                    "TEAM": {"jetstream": "enabled", "users": [{"user": "alice", "password": "a-pw"}]},
                    "OTHER": {"users": [{"user": "bob", "password": "b-pw"}]}
                })),
                ..Default::default()
            },
            client: ("alice", "a-pw"),
            account: "TEAM",
        },
    ]
}

fn spec(auth: Option<b::Auth>, version: &str) -> b::NatsClusterSpec {
    b::NatsClusterSpec {
        size: 1,
        version: version.into(),
        jetstream: Some(b::JetStream::default()),
        auth,
        ..Default::default()
    }
}

fn render(
    dir: &std::path::Path,
    style: &Style,
    version: &str,
    user: Option<&SystemUser>,
) -> (String, Identity) {
    let mut inputs = style.inputs.clone();
    inputs.system_user = user.cloned();
    let conf = nats_conf(
        &spec(style.auth.clone(), version),
        &ClusterMeta::new("c", "ns"),
        &[pod_name("c", 1)],
        &inputs,
        &Paths::under(dir),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", style.name));
    (conf.text, conf.identity)
}

/// A client connection kept open across a reload.
struct Session {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Session {
    /// Connects with `user`/`pass` (empty: no credentials); `None` when refused.
    fn open(port: u16, user: &str, pass: &str) -> Option<Session> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut session = Session {
            w: s.try_clone().ok()?,
            r: BufReader::new(s),
        };
        let info = session.line()?;
        assert!(info.starts_with("INFO "), "{info}");
        let mut connect = serde_json::json!({"verbose": false, "pedantic": false, "protocol": 1, "name": "probe"});
        if !user.is_empty() {
            connect["user"] = user.into();
            connect["pass"] = pass.into();
        }
        write!(session.w, "CONNECT {connect}\r\n").ok()?;
        session.ping().then_some(session)
    }

    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(l.trim_end().to_string()),
        }
    }

    /// PING until PONG (`false` on an error or a closed connection).
    fn ping(&mut self) -> bool {
        if write!(self.w, "PING\r\n").is_err() {
            return false;
        }
        while let Some(l) = self.line() {
            if l == "PONG" {
                return true;
            }
            if l.starts_with("-ERR") {
                return false;
            }
        }
        false
    }

    /// Subscribes to `subject` as `sid`, publishes to it, and reads the message back.
    fn round_trip(&mut self, subject: &str, sid: u32) -> bool {
        if write!(
            self.w,
            "SUB {subject} {sid}\r\nPUB {subject} 2\r\nhi\r\nPING\r\n"
        )
        .is_err()
        {
            return false;
        }
        let mut got = false;
        while let Some(l) = self.line() {
            if l.starts_with(&format!("MSG {subject} {sid}")) {
                got = true;
            }
            if l == "PONG" || l.starts_with("-ERR") {
                break;
            }
        }
        got
    }

    /// Publishes to `subject`: `false` when the server answers a permissions violation.
    fn may_publish(&mut self, subject: &str) -> bool {
        if write!(self.w, "PUB {subject} 2\r\nhi\r\nPING\r\n").is_err() {
            return false;
        }
        while let Some(l) = self.line() {
            if l.starts_with("-ERR") && l.contains("Permissions Violation") {
                return false;
            }
            if l == "PONG" {
                return true;
            }
        }
        false
    }

    /// Sends a request and returns the first reply's payload.
    fn request(&mut self, subject: &str, body: &str) -> Option<String> {
        write!(
            self.w,
            "SUB _INBOX.probe 77\r\nPUB {subject} _INBOX.probe {}\r\n{body}\r\n",
            body.len()
        )
        .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let l = self.line()?;
            if l.starts_with("MSG _INBOX.probe 77") {
                return self.line();
            }
            if l == "PING" {
                write!(self.w, "PONG\r\n").ok()?;
            }
        }
        None
    }
}

/// The account of the open client connection named `probe` by `user` ("" = none).
fn account_of(server: &Running, user: &str) -> String {
    find_account(server, user).unwrap_or_else(|| panic!("no connection of {user:?}"))
}

fn find_account(server: &Running, user: &str) -> Option<String> {
    let connz = server.get("/connz?auth=true").unwrap_or_default();
    connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == "probe")
        .find(|c| user.is_empty() || c["authorized_user"] == user)
        // Before 2.10 the global account is left out.
        .map(|c| c["account"].as_str().unwrap_or("$G").to_string())
}

#[test]
fn every_auth_style_keeps_its_clients_when_the_system_user_arrives() {
    let user = SystemUser {
        username: SYSTEM_USER_NAME.into(),
        password: "Sys-pw_0123".into(),
    };
    let mut checked = 0;
    for server in servers().into_iter().filter(|s| s.minor() >= (2, 2)) {
        for style in styles() {
            let what = format!("nats-server {} {}", server.version, style.name);
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("nats.conf");
            let (before, identity) = render(dir.path(), &style, &server.version, None);
            assert_eq!(identity, Identity::Pending, "{what}");
            std::fs::write(&file, &before).expect("write");
            let (ok, out) =
                nats_server_support::config_test(&server, &file, &[("POD_NAME", "c-1")]);
            assert!(ok, "{what}: {out}\n{before}");
            let running = Running::start_with(
                &server,
                &file,
                free_port(),
                &[("POD_NAME", "c-1")],
                &["--name", "c-1"],
            );
            let (u, p) = style.client;
            let mut kept = Session::open(running.client, u, p)
                .unwrap_or_else(|| panic!("{what}: client refused before: {}", running.log_text()));
            assert!(kept.round_trip("before.x", 1), "{what}");
            assert_eq!(account_of(&running, u), style.account, "{what}");
            // (An open cluster takes any credentials, into `$G`.)
            assert!(
                u.is_empty()
                    || Session::open(running.client, SYSTEM_USER_NAME, &user.password).is_none(),
                "{what}: no system user yet"
            );

            let (after, identity) = render(dir.path(), &style, &server.version, Some(&user));
            assert!(
                matches!(identity, Identity::InAccount(_)),
                "{what}: {identity:?}"
            );
            std::fs::write(&file, &after).expect("write");
            let (ok, out) =
                nats_server_support::config_test(&server, &file, &[("POD_NAME", "c-1")]);
            assert!(ok, "{what}: {out}\n{after}");
            running.reload();
            // The reload is done when the system user gets into the system account.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut system = None;
            while system.is_none() && Instant::now() < deadline {
                system =
                    Session::open(running.client, SYSTEM_USER_NAME, &user.password).filter(|_| {
                        find_account(&running, SYSTEM_USER_NAME).as_deref() == Some("$SYS")
                    });
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut system = system.unwrap_or_else(|| {
                panic!(
                    "{what}: system user refused: {}\n{after}",
                    running.log_text()
                )
            });
            assert!(
                kept.ping(),
                "{what}: the client connected before the reload was dropped"
            );
            assert!(kept.round_trip("still.x", 2), "{what}");
            let mut fresh = Session::open(running.client, u, p).unwrap_or_else(|| {
                panic!(
                    "{what}: client refused after: {}\n{after}",
                    running.log_text()
                )
            });
            assert!(fresh.round_trip("after.x", 3), "{what}");
            assert_eq!(account_of(&running, u), style.account, "{what}");
            assert_eq!(account_of(&running, SYSTEM_USER_NAME), "$SYS", "{what}");
            if !u.is_empty() {
                assert!(
                    Session::open(running.client, u, "wrong").is_none(),
                    "{what}: a wrong password still fails"
                );
            }
            // The operator's JetStream-API-only user of the client's account (an open
            // cluster: no credentials) creates a stream there, which the client sees; it
            // may not publish on an application subject.
            let js_user = if u.is_empty() {
                String::new()
            } else {
                jetstream_user_name(style.account)
            };
            let pass = if u.is_empty() {
                ""
            } else {
                user.password.as_str()
            };
            let mut operator = Session::open(running.client, &js_user, pass).unwrap_or_else(|| {
                panic!("{what}: {js_user} refused: {}\n{after}", running.log_text())
            });
            assert_eq!(account_of(&running, &js_user), style.account, "{what}");
            // A member of a clustered config: the API answers once the meta leader is
            // elected (a few seconds after the start).
            let deadline = Instant::now() + Duration::from_secs(30);
            let created = loop {
                let answer = operator
                    .request(
                        "$JS.API.STREAM.CREATE.OPS",
                        r#"{"name":"OPS","subjects":["ops.>"],"storage":"memory"}"#,
                    )
                    .unwrap_or_default();
                if answer.contains(r#""name":"OPS""#) || Instant::now() > deadline {
                    break answer;
                }
                std::thread::sleep(Duration::from_millis(250));
            };
            assert!(
                created.contains(r#""name":"OPS""#) && !created.contains(r#""error""#),
                "{what}: {created}\n{after}\n{}",
                running.log_text()
            );
            let seen = fresh
                .request("$JS.API.STREAM.INFO.OPS", "")
                .unwrap_or_default();
            assert!(
                seen.contains(r#""name":"OPS""#),
                "{what}: the client does not see it: {seen}"
            );
            if !u.is_empty() {
                assert!(
                    !operator.may_publish("orders.new"),
                    "{what}: {js_user} published on orders.new"
                );
            }

            // System requests answer (a standalone server: JetStream's account info).
            let varz = system.request("$SYS.REQ.SERVER.PING.VARZ", "");
            assert!(
                varz.as_deref()
                    .is_some_and(|v| v.contains("server_name") || v.contains("\"server\"")),
                "{what}: {varz:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "no server with JetStream was tested");
}
