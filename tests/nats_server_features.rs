//! The listeners and knobs beyond the Go operator (JetStream, MQTT with TLS, accounts,
//! `noAuthUser`, websocket without TLS) render a `nats.conf` that real servers accept,
//! and one server started on it does what the spec says.

mod nats_server_support;

use nats_operator::api::v1beta1 as b;
use nats_operator::render::{
    AuthInputs, ClusterMeta, Paths, member_pod, nats_conf, pod_name, tls_path,
};
use nats_server_support::{Running, config_test_with, free_port, newest, servers, write_tls};

fn quantity(s: &str) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.into())
}

fn spec(mqtt_port: u16, ws_port: u16) -> b::NatsClusterSpec {
    b::NatsClusterSpec {
        size: 3,
        version: "2.15.3".into(),
        jetstream: Some(b::JetStream {
            memory_storage: Some(quantity("64Mi")),
            file_storage: Some(b::FileStorage {
                size: Some(quantity("1Gi")),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mqtt: Some(b::Mqtt {
            port: i32::from(mqtt_port),
            ack_wait: "45s".into(),
            max_ack_pending: 200,
        }),
        websocket: Some(b::Websocket {
            port: i32::from(ws_port),
            ..Default::default()
        }),
        tls: Some(b::Tls {
            mqtt: Some(b::ListenerTls {
                secret: "mqtt-tls".into(),
                ca_file: "ca.pem".into(),
                cert_file: "server.pem".into(),
                key_file: "server-key.pem".into(),
                timeout: 2.0,
            }),
            ..Default::default()
        }),
        auth: Some(b::Auth {
            clients: Some(b::ClientAuth {
                no_auth_user: "guest".into(),
                ..Default::default()
            }),
            accounts: Some(b::AccountsAuth {
                secret: "accounts".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn accounts() -> serde_json::Value {
    serde_json::json!({
        "TEAM_A": {
            "jetstream": "enabled",
            "users": [{"user": "guest", "password": "g"}, {"user": "alice", "password": "a"}]
        },
        "TEAM_B": {"users": [{"user": "bob", "password": "b"}]}
    })
}

/// The config file and the pod's server-name flags (`--name c-1`).
fn render(dir: &std::path::Path, spec: &b::NatsClusterSpec) -> (std::path::PathBuf, Vec<String>) {
    let paths = Paths::under(dir);
    let tls = spec
        .tls
        .as_ref()
        .and_then(|t| t.mqtt.as_ref())
        .expect("mqtt tls");
    write_tls(
        tls_path(&paths.mqtt_tls, &tls.ca_file).as_ref(),
        tls_path(&paths.mqtt_tls, &tls.cert_file).as_ref(),
        tls_path(&paths.mqtt_tls, &tls.key_file).as_ref(),
    );
    let members: Vec<String> = (1..=3).map(|i| pod_name("c", i)).collect();
    let auth = AuthInputs {
        accounts: Some(accounts()),
        ..Default::default()
    };
    let conf =
        nats_conf(spec, &ClusterMeta::new("c", "ns"), &members, &auth, &paths).expect("renders");
    // JSON but for the member's name, a variable of its pod.
    let quoted = conf.text.replace(": $POD_NAME,", ": \"$POD_NAME\",");
    let parsed: serde_json::Value = serde_json::from_str(&quoted).expect("nats.conf is JSON");
    assert_eq!(parsed["no_auth_user"], "guest", "{}", conf.text);
    assert_eq!(parsed["mqtt"]["max_ack_pending"], 200, "{}", conf.text);
    assert_eq!(parsed["websocket"]["no_tls"], true, "{}", conf.text);
    assert_eq!(
        parsed["jetstream"]["max_file"], 1_073_741_824_u64,
        "{}",
        conf.text
    );
    assert_eq!(
        parsed["server_name"], "$POD_NAME",
        "a reload reads the name from the file: {}",
        conf.text
    );
    let pod = member_pod(spec, &ClusterMeta::new("c", "ns"), 1, &conf.hash).expect("pod");
    let all = nats_server_support::pod_flags(&pod, &[("POD_NAME", "c-1")]);
    let name = all.iter().position(|f| f == "--name").expect("--name flag");
    let flags = all[name..=name + 1].to_vec();
    assert_eq!(flags, ["--name", "c-1"]);
    let file = dir.join("nats.conf");
    std::fs::write(&file, &conf.text).expect("write nats.conf");
    (file, flags)
}

#[test]
fn every_server_accepts_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, flags) = render(dir.path(), &spec(free_port(), free_port()));
    for server in servers() {
        let (ok, out) = config_test_with(&server, &file, &[("POD_NAME", "c-1")], &flags);
        assert!(ok, "nats-server {} refused it: {out}", server.version);
    }
}

#[test]
fn a_server_on_it_runs_jetstream_mqtt_and_the_no_auth_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mqtt, ws) = (free_port(), free_port());
    let (file, flags) = render(dir.path(), &spec(mqtt, ws));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Running::start_with(
        &newest(),
        &file,
        free_port(),
        &[("POD_NAME", "c-1")],
        &flags,
    );

    let varz = server.get("/varz").expect("/varz");
    assert_eq!(varz["server_name"], "c-1", "stable server name per member");
    assert_eq!(varz["mqtt"]["port"], mqtt);
    assert_eq!(varz["mqtt"]["tls_timeout"], 2.0, "MQTT TLS is on");
    assert_eq!(varz["websocket"]["port"], ws);
    let jsz = server.get("/jsz").expect("/jsz");
    assert_eq!(jsz["config"]["max_storage"], 1_073_741_824_u64);
    assert_eq!(jsz["config"]["max_memory"], 67_108_864_u64);
    assert!(
        jsz["config"]["store_dir"]
            .as_str()
            .is_some_and(|d| d.starts_with(&dir.path().display().to_string())),
        "{jsz}"
    );

    // No credentials: the no_auth_user of TEAM_A; a wrong password is still refused.
    let anonymous = server.client_session("", "", "SUB x 1\r\n");
    assert_eq!(
        anonymous.last().map(String::as_str),
        Some("PONG"),
        "{anonymous:?}"
    );
    let wrong = server.client_session("bob", "nope", "");
    assert!(
        wrong.iter().any(|l| l.contains("Authorization Violation")),
        "{wrong:?}"
    );
    let accountz = server.get("/accountz").expect("/accountz");
    let names: Vec<&str> = accountz["accounts"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"TEAM_A") && names.contains(&"TEAM_B"),
        "{accountz}"
    );
    // The anonymous session was the no_auth_user, in its account.
    let connz = server.get("/connz?state=closed&auth=true").expect("/connz");
    let guest = connz["connections"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["authorized_user"] == "guest"))
        .unwrap_or_else(|| panic!("no closed connection of guest: {connz}"));
    assert_eq!(guest["account"], "TEAM_A", "{connz}");
}
