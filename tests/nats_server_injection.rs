//! Strings from Secrets and the spec cannot change the structure of `nats.conf`: user
//! names, passwords, tokens, subjects and route credentials full of quotes, backslashes,
//! newlines, braces, `$VAR`s and `include` reach a real nats-server exactly as written.
//! The server is started for real on local ports and checked through the client
//! protocol (CONNECT with the exact password, PUB against the exact subject permission),
//! its monitoring endpoints (`/varz` for the server name from `$(SERVER_NAME)`) and a route
//! between two servers with percent-escaped credentials (`/routez`).

mod nats_server_support;

use std::time::{Duration, Instant};

use nats_operator::api::v1beta1 as b;
use nats_operator::render::nats_conf::percent_escape;
use nats_operator::render::{AuthInputs, ClusterMeta, Paths, nats_conf};
use nats_server_support::{Running, Server, servers};
use serde_json::json;

const U1: &str = "a\"b\\c\nd}{ include \"x\" $HOME ;# // 'q' é\r\t";
const P1: &str = "p@ss:w/o?rd#$SERVER_NAME\t\"\u{1}é\\x41";
const U2: &str = "include";
const P2: &str = "$POD_NAME";
const SUBJECT: &str = "a\"b.$X.}{";
const RU: &str = "r:u@s/e\"r";
const RP: &str = "p%w d$HOME#?&=\\";

fn spec(cluster_port: u16, extra_route: Option<String>) -> b::NatsClusterSpec {
    b::NatsClusterSpec {
        size: 1,
        version: nats_operator::api::defaults::DEFAULT_VERSION.into(),
        image: "nats".into(),
        config: Some(b::ServerConfig {
            server_name: Some(nats_operator::api::choices::ServerNameSource::FromEnv),
            // Local ports for the test, through the escape hatch (flags cannot set them
            // without clearing the route credentials).
            merge: Some(json!({"cluster": {"host": "127.0.0.1", "port": cluster_port}})),
            ..Default::default()
        }),
        auth: Some(b::Auth {
            clients: Some(b::ClientAuth {
                secret: "clients".into(),
                ..Default::default()
            }),
            routes: Some(b::SecretAuth {
                secret: "routes".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        extra_routes: extra_route
            .map(|route| {
                vec![b::ExtraRoute {
                    route,
                    ..Default::default()
                }]
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn inputs() -> AuthInputs {
    AuthInputs {
        clients: Some(json!({
            "users": [
                {"username": U1, "password": P1},
                {"username": U2, "password": P2, "permissions": {
                    "publish": {"allow": [format!("{SUBJECT}.>")]},
                    "subscribe": [">"]
                }}
            ]
        })),
        routes: Some(json!({"username": RU, "password": RP})),
        ..Default::default()
    }
}

fn start(
    server: &Server,
    dir: &std::path::Path,
    name: &str,
    extra_route: Option<String>,
) -> Running {
    let meta = ClusterMeta::new("inj", "default");
    let cluster = nats_server_support::free_port();
    let conf = nats_conf(
        &spec(cluster, extra_route),
        &meta,
        &[],
        &inputs(),
        &Paths::default(),
    )
    .expect("render");
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, &conf.text).expect("write");
    let env = [("SERVER_NAME", name), ("POD_NAME", "not-the-password")];
    // The server name reaches the server as the pod gives it: `--name $(SERVER_NAME)`.
    let pod =
        nats_operator::render::member_pod(&spec(cluster, None), &meta, 1, &conf.hash).expect("pod");
    let flags = nats_server_support::pod_flags(&pod, &env);
    let name_flag: Vec<&str> = flags
        .iter()
        .position(|f| f == "--name")
        .map(|i| flags[i..=i + 1].iter().map(String::as_str).collect())
        .unwrap_or_default();
    Running::start_with(server, &path, cluster, &env, &name_flag)
}

fn check(server: &Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start(server, dir.path(), "inj-a", None);

    // The server name comes from `$(SERVER_NAME)`, expanded on the command line.
    let varz = a.get("/varz").expect("varz");
    assert_eq!(varz["server_name"], "inj-a", "{}", server.version);

    // Exact user names and passwords; `$` inside them is not expanded.
    let ok = a.client_session(U1, P1, "");
    assert_eq!(
        ok.last().map(String::as_str),
        Some("PONG"),
        "{}: {ok:?}\n{}",
        server.version,
        a.log_text()
    );
    let denied = a.client_session(U1, &P1.replace('$', ""), "");
    assert!(
        denied.iter().any(|l| l.contains("Authorization Violation")),
        "{denied:?}"
    );
    let denied = a.client_session(U2, "not-the-password", "");
    assert!(
        denied.iter().any(|l| l.contains("Authorization Violation")),
        "{denied:?}"
    );

    // The exact subject permission: allowed below it, denied elsewhere.
    let lines = a.client_session(
        U2,
        P2,
        &format!("PUB {SUBJECT}.ok 0\r\n\r\nPUB forbidden 0\r\n\r\n"),
    );
    assert_eq!(lines.last().map(String::as_str), Some("PONG"), "{lines:?}");
    let violations: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("Permissions Violation"))
        .collect();
    assert_eq!(violations.len(), 1, "{}: {lines:?}", server.version);
    assert!(violations[0].contains("forbidden"), "{lines:?}");

    // A route with percent-escaped credentials from a second server.
    let route = format!(
        "nats://{}:{}@127.0.0.1:{}",
        percent_escape(RU),
        percent_escape(RP),
        a.cluster
    );
    let b = start(server, dir.path(), "inj-b", Some(route));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let routes = a
            .get("/routez")
            .map(|r| r["num_routes"].as_i64().unwrap_or(0))
            .unwrap_or(0);
        if routes >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no route formed\nA: {}\nB: {}",
            server.version,
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hostile_strings_reach_real_servers_unchanged() {
    for server in servers() {
        check(&server);
    }
}
