//! The rendering layer, without a server: nats.conf keys and escaping, pods, Services,
//! the config Secret, the PodDisruptionBudget and the JetStream claims.

mod support;

use std::collections::BTreeMap;

use nats_operator::api::admission::default_object;
use nats_operator::api::choices::{AntiAffinity, PullPolicy, ReclaimPolicy, ServerNameSource};
use nats_operator::api::convert::spec_up;
use nats_operator::api::v1alpha2 as a;
use nats_operator::api::v1beta1 as b;
use nats_operator::render::{
    self, AuthInputs, ClusterMeta, Paths, ServiceRoleUser, client_service, config_secret,
    disruption_budget, management_service, member_pod, member_pvc, nats_conf,
};
use serde_json::json;

fn meta() -> ClusterMeta {
    ClusterMeta {
        name: "nats".into(),
        namespace: "prod".into(),
        uid: Some("uid-1".into()),
    }
}

fn base() -> b::NatsClusterSpec {
    b::NatsClusterSpec {
        size: 3,
        version: "2.10.24".into(),
        image: "nats".into(),
        ..Default::default()
    }
}

fn members(n: u32) -> Vec<String> {
    (1..=n).map(|i| render::pod_name("nats", i)).collect()
}

fn conf(spec: &b::NatsClusterSpec, auth: &AuthInputs) -> String {
    nats_conf(spec, &meta(), &members(3), auth, &Paths::default())
        .expect("render")
        .text
}

/// `nats.conf` parsed as the JSON it is (tools read the config Secret this way). An
/// `include "<path>"` line, the one directive JSON cannot say (written as the Go operator
/// wrote it), is read as a key `include` here.
fn json_of(text: &str) -> serde_json::Value {
    let readable: String = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            match t.strip_prefix("include \"") {
                Some(rest) => format!("{}\"include\": \"{rest}\n", &l[..l.len() - t.len()]),
                // The one unquoted value: the member's name, a variable of its pod.
                None => format!("{}\n", l.replace(": $POD_NAME,", ": \"$POD_NAME\",")),
            }
        })
        .collect();
    serde_json::from_str(&readable)
        .unwrap_or_else(|e| panic!("nats.conf is not JSON ({e}):\n{text}"))
}

/// An upstream example's spec, defaulted and in v1beta1; `None` (skip) without them.
fn example(file: &str) -> Option<b::NatsClusterSpec> {
    let (_, doc) = support::upstream_clusters(file)?
        .into_iter()
        .find(|(f, _)| f == file)
        .expect("example");
    let (defaulted, _) = default_object(&doc, None);
    let alpha: a::ClusterSpec = serde_json::from_value(defaulted["spec"].clone()).expect("spec");
    Some(spec_up(&alpha))
}

#[test]
fn minimal_cluster_conf() {
    let text = conf(&base(), &AuthInputs::default());
    // Indented JSON, as the Go operator wrote it.
    assert_eq!(
        text,
        "{\n  \"port\": 4222,\n  \"http_port\": 8222,\n  \"logtime\": true,\n  \"cluster\": {\n    \"name\": \"nats\",\n    \"port\": 6222,\n    \"routes\": [\n      \"nats://nats-1.nats-mgmt.prod.svc:6222\",\n      \"nats://nats-2.nats-mgmt.prod.svc:6222\",\n      \"nats://nats-3.nats-mgmt.prod.svc:6222\"\n    ]\n  }\n}\n"
    );
    json_of(&text);
}

#[test]
fn conf_is_deterministic_and_routes_sorted_by_index() {
    let spec = base();
    let m = meta();
    let mut shuffled: Vec<String> = members(17);
    shuffled.reverse();
    let a = nats_conf(
        &spec,
        &m,
        &members(17),
        &AuthInputs::default(),
        &Paths::default(),
    )
    .expect("a");
    let b = nats_conf(
        &spec,
        &m,
        &shuffled,
        &AuthInputs::default(),
        &Paths::default(),
    )
    .expect("b");
    assert_eq!(a, b);
    assert_eq!(a.hash.len(), 64);
    let i9 = a.text.find("nats-9.").expect("9");
    let ia = a.text.find("nats-a.").expect("a");
    let i10 = a.text.find("nats-10.").expect("10");
    assert!(i9 < ia && ia < i10, "{}", a.text);
}

#[test]
fn old_servers_get_no_cluster_name_or_jetstream() {
    let mut spec = base();
    spec.version = "1.4.1".into();
    spec.jetstream = Some(b::JetStream::default());
    let r = nats_conf(
        &spec,
        &meta(),
        &members(1),
        &AuthInputs::default(),
        &Paths::default(),
    )
    .expect("r");
    assert!(!r.text.contains("\"name\":"), "{}", r.text);
    assert!(!r.text.contains("jetstream"), "{}", r.text);
    assert_eq!(r.warnings.len(), 1);
}

#[test]
fn server_name_lame_duck_limits_and_websocket_without_tls() {
    let mut spec = base();
    spec.config = Some(b::ServerConfig {
        server_name: Some(ServerNameSource::PodName),
        lame_duck_duration: "45s".into(),
        write_deadline: "10s".into(),
        max_payload: 1048576,
        logtime: Some(false),
        debug: true,
        ..Default::default()
    });
    spec.websocket = Some(b::Websocket {
        port: 8080,
        handshake_timeout: "5s".into(),
        compression: true,
    });
    let text = conf(&spec, &AuthInputs::default());
    let v = json_of(&text);
    assert_eq!(v["lame_duck_duration"], "45s");
    assert_eq!(v["write_deadline"], "10s");
    assert_eq!(v["max_payload"], 1048576);
    assert_eq!(v["logtime"], false);
    assert_eq!(v["debug"], true);
    assert_eq!(
        v["websocket"],
        json!({"port": 8080, "no_tls": true, "handshake_timeout": "5s", "compression": true})
    );
    // The server name is a flag the kubelet expands and, for reloads (which ignore the
    // flag), the pod's variable in the file.
    assert_eq!(v["server_name"], "$POD_NAME", "{text}");
    assert!(text.contains("\n  \"server_name\": $POD_NAME,\n"), "{text}");
    let command = |spec: &b::NatsClusterSpec| {
        pod(spec, 1)
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.command)
            .unwrap_or_default()
    };
    assert!(
        command(&spec)
            .windows(2)
            .any(|w| w == ["--name", "$(POD_NAME)"])
    );
    if let Some(c) = spec.config.as_mut() {
        c.server_name = Some(ServerNameSource::FromEnv);
    }
    assert!(
        command(&spec)
            .windows(2)
            .any(|w| w == ["--name", "$(SERVER_NAME)"])
    );
    // Releases without the flag read it from the file, as the Go operator wrote it.
    spec.version = "2.1.9".into();
    spec.websocket = None;
    assert!(conf(&spec, &AuthInputs::default()).contains("\n  \"server_name\": $SERVER_NAME,\n"));
    assert!(!command(&spec).iter().any(|a| a == "--name"));
}

#[test]
fn tls_blocks_use_mount_dirs_and_absolute_names() {
    let mut spec = base();
    spec.tls = Some(b::Tls {
        client: Some(b::ClientTls {
            secret: "s".into(),
            ca_file: "/abs/ca.pem".into(),
            cert_file: "server.pem".into(),
            key_file: "server-key.pem".into(),
            timeout: 2.5,
            verify: true,
            verify_and_map: true,
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()],
            curve_preferences: vec!["CurveP256".into()],
        }),
        routes: Some(b::ListenerTls {
            secret: "r".into(),
            ca_file: "ca.pem".into(),
            cert_file: "route.pem".into(),
            key_file: "route-key.pem".into(),
            timeout: 3.0,
        }),
        https_monitoring: true,
        ..Default::default()
    });
    let text = conf(&spec, &AuthInputs::default());
    let v = json_of(&text);
    assert_eq!(v["https_port"], 8222);
    assert_eq!(v["tls"]["ca_file"], "/abs/ca.pem");
    assert_eq!(
        v["tls"]["cert_file"],
        "/etc/nats-server-tls-certs/server.pem"
    );
    assert_eq!(
        (&v["tls"]["verify"], &v["tls"]["verify_and_map"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        v["tls"]["cipher_suites"],
        json!(["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])
    );
    assert_eq!(v["tls"]["timeout"], 2.5);
    assert!(
        text.contains("\"timeout\": 2.5"),
        "floats keep their point: {text}"
    );
    assert_eq!(
        v["cluster"]["tls"]["cert_file"],
        "/etc/nats-routes-tls-certs/route.pem"
    );
    assert_eq!(v["cluster"]["tls"]["timeout"], 3);
    assert!(!text.contains("http_port"));
}

#[test]
fn jetstream_block_from_quantities() {
    let mut spec = base();
    spec.jetstream = Some(b::JetStream {
        enabled: None,
        catch_up_timeout: String::new(),
        memory_storage: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "1Gi".into(),
        )),
        file_storage: Some(b::FileStorage {
            size: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                "10G".into(),
            )),
            ..Default::default()
        }),
    });
    let text = conf(&spec, &AuthInputs::default());
    assert_eq!(
        json_of(&text)["jetstream"],
        json!({"store_dir": "/data/jetstream", "max_mem": 1073741824_u64, "max_file": 10000000000_u64}),
        "{text}"
    );
    if let Some(j) = spec.jetstream.as_mut() {
        j.enabled = Some(false);
    }
    assert!(!conf(&spec, &AuthInputs::default()).contains("jetstream"));
}

#[test]
fn route_credentials_are_percent_escaped_and_quoted() {
    let mut spec = base();
    spec.auth = Some(b::Auth {
        routes: Some(b::SecretAuth {
            secret: "r".into(),
            timeout: 3,
        }),
        ..Default::default()
    });
    spec.extra_routes = vec![
        b::ExtraRoute {
            cluster: "other".into(),
            ..Default::default()
        },
        b::ExtraRoute {
            route: "nats://x:6222".into(),
            ..Default::default()
        },
    ];
    let auth = AuthInputs {
        routes: Some(json!({"username": "u@x", "password": "p:\"/ w", "bogus": 1})),
        ..Default::default()
    };
    let r = nats_conf(&spec, &meta(), &members(1), &auth, &Paths::default()).expect("r");
    let v = json_of(&r.text);
    assert_eq!(
        v["cluster"]["routes"],
        json!([
            "nats://u%40x:p%3A%22%2F%20w@nats-1.nats-mgmt.prod.svc:6222",
            "nats://other-mgmt.prod.svc:6222",
            "nats://x:6222"
        ]),
        "{}",
        r.text
    );
    assert_eq!(
        v["cluster"]["authorization"],
        json!({"username": "u@x", "password": "p:\"/ w", "timeout": 3}),
        "{}",
        r.text
    );
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
}

#[test]
fn client_auth_sources_in_order() {
    let mut spec = base();
    spec.auth = Some(b::Auth {
        clients: Some(b::ClientAuth {
            service_accounts: true,
            secret: "s".into(),
            file: "auth/users.conf".into(),
            timeout: 7,
            ..Default::default()
        }),
        ..Default::default()
    });
    let auth = AuthInputs {
        clients: Some(json!({"users": [{"username": "x", "password": "y"}]})),
        service_roles: vec![
            ServiceRoleUser {
                username: "zed".into(),
                token: "t2".into(),
                ..Default::default()
            },
            ServiceRoleUser {
                username: "amy".into(),
                token: "t\"1".into(),
                permissions: a::Permissions {
                    publish: vec!["p.>".into()],
                    subscribe: vec![],
                },
            },
        ],
        ..Default::default()
    };
    let text = conf(&spec, &auth);
    let v = json_of(&text);
    assert_eq!(
        v["authorization"]["users"],
        json!([
            {"user": "amy", "password": "t\"1", "permissions": {"publish": ["p.>"]}},
            {"user": "zed", "password": "t2"}
        ]),
        "{text}"
    );
    assert_eq!(v["authorization"]["timeout"], 7);
    if let Some(c) = spec.auth.as_mut().and_then(|a| a.clients.as_mut()) {
        c.service_accounts = false;
    }
    let text = conf(&spec, &auth);
    assert_eq!(
        json_of(&text)["authorization"]["users"][0]["username"],
        "x",
        "{text}"
    );
    if let Some(c) = spec.auth.as_mut().and_then(|a| a.clients.as_mut()) {
        c.secret.clear();
    }
    let text = conf(&spec, &auth);
    // An include is the one thing JSON cannot say: written as the Go operator wrote it.
    assert!(
        text.contains(
            "\"authorization\": {\n    include \"auth/users.conf\",\n    \"timeout\": 7\n  }"
        ),
        "{text}"
    );
}

#[test]
fn auth_secret_keys_are_filtered_and_quoted() {
    let mut spec = base();
    spec.auth = Some(b::Auth {
        clients: Some(b::ClientAuth {
            secret: "s".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let auth = AuthInputs {
        clients: Some(json!({
            "users": [{"username": "u", "password": "p", "account": "A",
                        "permissions": {"publish": {"allow": ["a"]}, "allow_responses": true}}],
            "accounts": {"A": {}},
            "token": null
        })),
        ..Default::default()
    };
    let r = nats_conf(&spec, &meta(), &[], &auth, &Paths::default()).expect("r");
    assert!(!r.text.contains("account"), "{}", r.text);
    assert!(!r.text.contains("allow_responses"), "{}", r.text);
    assert!(!r.text.contains("token"), "{}", r.text);
    assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
    let bad = AuthInputs {
        clients: Some(json!(["not", "an", "object"])),
        ..Default::default()
    };
    assert!(nats_conf(&spec, &meta(), &[], &bad, &Paths::default()).is_err());
}

#[test]
fn hostile_values_cannot_escape_their_strings() {
    let mut spec = base();
    spec.auth = Some(b::Auth {
        clients: Some(b::ClientAuth {
            secret: "s".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let evil = "x\"\n}\ninclude \"/etc/passwd\"\nauthorization {\n$HOME\\";
    let auth = AuthInputs {
        clients: Some(json!({"users": [{"username": evil, "password": evil}]})),
        ..Default::default()
    };
    let text = conf(&spec, &auth);
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("include")),
        "{text}"
    );
    let v = json_of(&text);
    assert_eq!(v["authorization"]["users"][0]["username"], evil, "{text}");
    assert_eq!(v["authorization"]["users"][0]["password"], evil, "{text}");
    assert!(
        text.contains(r#""x\"\n}\ninclude \"/etc/passwd\"\nauthorization {\n$HOME\\""#),
        "{text}"
    );
}

#[test]
fn merge_is_applied_last_and_keys_stay_keys() {
    let mut spec = base();
    spec.config = Some(b::ServerConfig {
        merge: Some(json!({
            "cluster": {"pool_size": 3, "name": "renamed"},
            "http_port": null,
            "include": "/etc/passwd",
            "ping_interval": "20s",
            "accounts": {"A B": {"users": [{"user": "u", "password": "p"}]}}
        })),
        ..Default::default()
    });
    let text = conf(&spec, &AuthInputs::default());
    let v = json_of(&text);
    assert!(v.get("http_port").is_none(), "{text}");
    assert_eq!(v["cluster"]["name"], "renamed", "{text}");
    assert_eq!(v["cluster"]["pool_size"], 3, "{text}");
    // A key `include` from a user is a quoted key (unknown to the server), never the
    // directive.
    assert_eq!(v["include"], "/etc/passwd", "{text}");
    assert!(!text.contains("include \""), "{text}");
    assert!(v["accounts"]["A B"].is_object(), "{text}");
    spec.config = Some(b::ServerConfig {
        merge: Some(json!({"a\"b": 1})),
        ..Default::default()
    });
    assert!(
        nats_conf(
            &spec,
            &meta(),
            &[],
            &AuthInputs::default(),
            &Paths::default()
        )
        .is_err()
    );
    spec.config = Some(b::ServerConfig {
        merge: Some(json!([1])),
        ..Default::default()
    });
    assert!(
        nats_conf(
            &spec,
            &meta(),
            &[],
            &AuthInputs::default(),
            &Paths::default()
        )
        .is_err()
    );
}

#[test]
fn gateway_leafnode_jwt_and_advertise_blocks() {
    let Some(spec) = example("example-super-cluster.yaml") else {
        return;
    };
    let text = conf(&spec, &AuthInputs::default());
    let v = json_of(&text);
    assert_eq!(v["operator"], "/etc/nats-operator/op.jwt", "{text}");
    assert_eq!(
        v["resolver"], "URL(https://example.com/jwt/v1/accounts/)",
        "{text}"
    );
    assert!(v["gateway"].is_object(), "{text}");
    let Some(spec) = example("leafnode-remotes-gateways.yaml") else {
        return;
    };
    let text = conf(&spec, &AuthInputs::default());
    let v = json_of(&text);
    assert_eq!(
        v["leafnodes"]["remotes"][0]["urls"],
        json!(["nats://1.2.3.4:7422"]),
        "{text}"
    );
    assert_eq!(
        v["leafnodes"]["remotes"][0]["credentials"], "/etc/nats-creds/user.ncreds",
        "{text}"
    );
    assert_eq!(v["gateway"]["reject_unknown"], true, "{text}");
    assert!(
        text.contains("\"url\": \"nats://guser:gpassword@1.2.3.4:7222\""),
        "{text}"
    );
    let Some(spec) = example("example-nats-cluster-gateway.yaml") else {
        return;
    };
    let text = conf(&spec, &AuthInputs::default());
    assert!(
        text.contains("\n  include \"advertise/client_advertise.conf\",\n"),
        "{text}"
    );
    assert!(
        text.contains("\n    include \"advertise/gateway_advertise.conf\""),
        "{text}"
    );
}

fn pod(spec: &b::NatsClusterSpec, index: u32) -> k8s_openapi::api::core::v1::Pod {
    member_pod(spec, &meta(), index, "cfg").expect("pod")
}

#[test]
fn member_pod_basics() {
    let p = pod(&base(), 10);
    assert_eq!(p.metadata.name.as_deref(), Some("nats-a"));
    let labels = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app").map(String::as_str), Some("nats"));
    assert_eq!(labels.get("nats_cluster").map(String::as_str), Some("nats"));
    assert_eq!(
        labels.get("nats_version").map(String::as_str),
        Some("2.10.24")
    );
    let ann = p.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        ann.get("nats.io/config-hash").map(String::as_str),
        Some("cfg")
    );
    assert_eq!(ann.get("nats.io/pod-spec-hash").map(String::len), Some(64));
    assert_eq!(p.metadata.owner_references.as_ref().map(Vec::len), Some(1));
    let s = p.spec.clone().expect("spec");
    assert_eq!(s.hostname.as_deref(), Some("nats-a"));
    assert_eq!(s.subdomain.as_deref(), Some("nats-mgmt"));
    assert_eq!(s.termination_grace_period_seconds, Some(150));
    let sc = s.security_context.clone().expect("psc");
    assert_eq!(
        (sc.run_as_user, sc.run_as_non_root, sc.fs_group),
        (Some(1000), Some(true), Some(1000))
    );
    let c = &s.containers[0];
    assert_eq!(c.name, "nats");
    assert_eq!(c.image.as_deref(), Some("nats:2.10.24"));
    assert_eq!(
        c.command.clone().unwrap_or_default(),
        [
            "/nats-server",
            "-c",
            "/etc/nats-config/nats.conf",
            "-P",
            "/var/run/nats/nats.pid",
            "--cluster_advertise",
            "nats-a.nats-mgmt.prod.svc",
            "--connect_retries",
            "10"
        ]
    );
    let ports: Vec<(String, i32, Option<i32>)> = c
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.container_port, p.host_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("client".into(), 4222, None),
            ("cluster".into(), 6222, None),
            ("monitoring".into(), 8222, None)
        ]
    );
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&c.startup_probe).as_deref(), Some("/healthz"));
    assert_eq!(
        path(&c.readiness_probe).as_deref(),
        Some("/healthz?js-server-only=true")
    );
    assert_eq!(
        path(&c.liveness_probe).as_deref(),
        Some("/healthz?js-enabled-only=true")
    );
    let pre = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.clone());
    assert_eq!(
        pre.unwrap_or_default(),
        ["/nats-server", "--signal", "ldm=/var/run/nats/nats.pid"]
    );
    let env = c.env.clone().unwrap_or_default();
    assert_eq!(env[0].name, "POD_NAME");
    let vols: Vec<String> = s
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(vols, ["nats-config", "pid"]);
    assert_eq!(s.containers.len(), 1);
    // Stable: same input, same hash; another index, another pod.
    assert_eq!(pod(&base(), 10), p);
    assert_ne!(pod(&base(), 1).metadata.annotations, p.metadata.annotations);
    // The config hash does not enter the pod-spec hash.
    let other = member_pod(&base(), &meta(), 10, "other").expect("pod");
    assert_eq!(
        other
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("nats.io/pod-spec-hash")),
        ann.get("nats.io/pod-spec-hash")
    );
}

#[test]
fn old_versions_get_old_binaries_and_root_probes() {
    let mut spec = base();
    spec.version = "1.4.1".into();
    let p = pod(&spec, 1);
    let c = &p.spec.as_ref().expect("spec").containers[0];
    assert_eq!(c.command.as_ref().map(|c| c[0].as_str()), Some("/gnatsd"));
    let path = c
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.clone());
    assert_eq!(path.as_deref(), Some("/"));
}

#[test]
fn member_pod_with_everything() {
    let mut spec = base();
    spec.image_pull_policy = Some(PullPolicy::Always);
    spec.config = Some(b::ServerConfig {
        lame_duck_duration: "1m".into(),
        server_name: Some(ServerNameSource::FromEnv),
        no_advertise: true,
        ..Default::default()
    });
    spec.tls = Some(b::Tls {
        client: Some(b::ClientTls {
            secret: "client-tls".into(),
            ca_file: "ca.pem".into(),
            cert_file: "server.pem".into(),
            key_file: "/abs/key.pem".into(),
            ..Default::default()
        }),
        https_monitoring: true,
        ..Default::default()
    });
    spec.auth = Some(b::Auth {
        jwt: Some(b::JwtAuth {
            operator_secret: "op".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    spec.gateway = Some(b::Gateway {
        name: "gw".into(),
        port: 7522,
        ..Default::default()
    });
    spec.leafnode = Some(b::Leafnode {
        port: 7422,
        ..Default::default()
    });
    spec.websocket = Some(b::Websocket {
        port: 8080,
        ..Default::default()
    });
    spec.jetstream = Some(b::JetStream {
        file_storage: Some(b::FileStorage {
            storage_class_name: "fast".into(),
            reclaim_policy: Some(ReclaimPolicy::Delete),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sidecar = |image: &str| b::Sidecar {
        enabled: true,
        image: image.into(),
        tag: "1".into(),
        image_pull_policy: Some(PullPolicy::IfNotPresent),
        resources: None,
    };
    spec.pod = Some(b::PodPolicy {
        labels: BTreeMap::from([("team".into(), "a".into()), ("app".into(), "x".into())]),
        annotations: BTreeMap::from([("note".into(), "n".into())]),
        node_selector: BTreeMap::from([("disk".into(), "ssd".into())]),
        anti_affinity: Some(AntiAffinity::Preferred),
        topology_spread_constraints: vec![k8s_openapi::api::core::v1::TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            ..Default::default()
        }],
        priority_class_name: "high".into(),
        host_ports: Some(b::HostPorts {
            client: true,
            gateway: Some(false),
            leafnode: None,
            websocket: Some(false),
        }),
        config_reloader: Some(sidecar("reloader")),
        metrics: Some(sidecar("exporter")),
        env: vec![k8s_openapi::api::core::v1::EnvVar {
            name: "EXTRA".into(),
            value: Some("1".into()),
            ..Default::default()
        }],
        template: Some(json!({
            "metadata": {"labels": {"from-template": "yes"}, "annotations": {"t": "1"}},
            "spec": {
                "serviceAccountName": "nats-server",
                "terminationGracePeriodSeconds": 300,
                "containers": [
                    {"name": "base", "image": "ignored", "env": [{"name": "SERVER_NAME", "value": "us-$(POD_NAME)"}],
                     "lifecycle": {"preStop": {"exec": {"command": ["preStop.sh"]}}}, "restartPolicy": "Always"},
                    {"name": "side", "image": "busybox"}
                ],
                "volumes": [{"name": "extra", "emptyDir": {}}]
            }
        })),
        ..Default::default()
    });
    let p = pod(&spec, 2);
    let labels = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app").map(String::as_str), Some("nats"));
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(labels.get("from-template").map(String::as_str), Some("yes"));
    let ann = p.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann.get("t").map(String::as_str), Some("1"));
    assert_eq!(
        ann.get("prometheus.io/port").map(String::as_str),
        Some("7777")
    );
    let s = p.spec.clone().expect("spec");
    assert_eq!(s.service_account_name.as_deref(), Some("nats-server"));
    assert_eq!(s.termination_grace_period_seconds, Some(300));
    assert_eq!(s.share_process_namespace, Some(true));
    assert_eq!(s.priority_class_name.as_deref(), Some("high"));
    assert!(
        s.affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| a
                .preferred_during_scheduling_ignored_during_execution
                .as_ref())
            .is_some()
    );
    assert!(
        s.topology_spread_constraints
            .as_ref()
            .and_then(|t| t[0].label_selector.as_ref())
            .is_some()
    );
    let names: Vec<&str> = s.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["nats", "side", "reloader", "metrics"]);
    let nats = &s.containers[0];
    assert_eq!(nats.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        nats.command
            .as_ref()
            .and_then(|c| c.last())
            .map(String::as_str),
        Some("--no_advertise")
    );
    let pre = nats
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.clone());
    assert_eq!(pre.unwrap_or_default(), ["preStop.sh"]);
    let env: Vec<&str> = nats
        .env
        .as_ref()
        .map(|e| e.iter().map(|e| e.name.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(env, ["POD_NAME", "SERVER_NAME", "EXTRA"]);
    let ports: Vec<(String, Option<i32>)> = nats
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.host_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("client".into(), Some(4222)),
            ("cluster".into(), None),
            ("monitoring".into(), None),
            ("gateway".into(), None),
            ("leaf".into(), Some(7422)),
            ("websocket".into(), None),
        ]
    );
    assert_eq!(
        nats.readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.scheme.clone())
            .as_deref(),
        Some("HTTPS")
    );
    let mounts: Vec<&str> = nats
        .volume_mounts
        .as_ref()
        .map(|m| m.iter().map(|m| m.mount_path.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        mounts,
        [
            "/etc/nats-config",
            "/var/run/nats",
            "/etc/nats-server-tls-certs",
            "/etc/nats-operator",
            "/data/jetstream"
        ]
    );
    let vols = s.volumes.clone().unwrap_or_default();
    let data = vols
        .iter()
        .find(|v| v.name == "data")
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone());
    assert_eq!(data.as_deref(), Some("nats-data-nats-2"));
    assert_eq!(vols[0].name, "extra");
    let reloader = &s.containers[2];
    assert_eq!(
        reloader.command.clone().unwrap_or_default(),
        [
            "/nats-operator",
            "config-reloader",
            "--pid",
            "/var/run/nats/nats.pid",
            "--config",
            "/etc/nats-config/nats.conf",
            "--watch",
            "/etc/nats-server-tls-certs/ca.pem",
            "--watch",
            "/etc/nats-server-tls-certs/server.pem",
            "--watch",
            "/abs/key.pem"
        ]
    );
    let metrics = &s.containers[3];
    assert_eq!(
        metrics.args.clone().unwrap_or_default(),
        [
            "-connz",
            "-routez",
            "-subz",
            "-varz",
            "-prefix=gnatsd",
            "-jsz=all",
            "https://localhost:8222"
        ]
    );
    let pvc = member_pvc(&spec, &meta(), "nats-2").expect("pvc");
    assert_eq!(pvc.metadata.name.as_deref(), Some("nats-data-nats-2"));
    assert!(pvc.metadata.owner_references.is_some());
    let pvc_spec = pvc.spec.expect("pvc spec");
    assert_eq!(pvc_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        pvc_spec.access_modes,
        Some(vec!["ReadWriteOnce".to_string()])
    );
}

#[test]
fn external_advertise_adds_bootconfig_and_forces_host_ports() {
    let Some(spec) = example("example-nats-cluster-gateway.yaml") else {
        return;
    };
    let p = member_pod(&spec, &ClusterMeta::new("nats-dev", "default"), 1, "h").expect("pod");
    let s = p.spec.expect("spec");
    let init = s.init_containers.clone().unwrap_or_default();
    assert_eq!(init.len(), 1);
    assert_eq!(init[0].name, "bootconfig");
    let gw = s.containers[0]
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("gateway"))
        .expect("gw");
    assert_eq!(gw.host_port, Some(7522));
    assert!(p.metadata.owner_references.is_none());
}

#[test]
fn bad_template_is_an_error() {
    let mut spec = base();
    spec.pod = Some(b::PodPolicy {
        template: Some(json!({"spec": {"containers": "nope"}})),
        ..Default::default()
    });
    assert!(member_pod(&spec, &meta(), 1, "h").is_err());
}

#[test]
fn every_example_renders_pods_and_services() {
    let Some(clusters) = support::upstream_clusters("every_example_renders_pods_and_services")
    else {
        return;
    };
    for (file, doc) in clusters {
        let (defaulted, _) = default_object(&doc, None);
        let alpha: a::ClusterSpec =
            serde_json::from_value(defaulted["spec"].clone()).expect("spec");
        let spec = spec_up(&alpha);
        let m = ClusterMeta::new(doc["metadata"]["name"].as_str().expect("name"), "default");
        member_pod(&spec, &m, 1, "h").unwrap_or_else(|e| panic!("{file}: {e}"));
        client_service(&spec, &m);
        management_service(&spec, &m);
    }
}

#[test]
fn services_select_without_version() {
    let mut spec = base();
    spec.websocket = Some(b::Websocket {
        port: 8080,
        ..Default::default()
    });
    spec.gateway = Some(b::Gateway {
        name: "g".into(),
        port: 7522,
        ..Default::default()
    });
    spec.services = Some(b::Services {
        client: Some(b::ServicePolicy {
            labels: BTreeMap::from([("ok".into(), "v".into()), ("bad key!".into(), "v".into())]),
            annotations: BTreeMap::from([(
                "service.beta.kubernetes.io/aws-load-balancer-type".into(),
                "nlb".into(),
            )]),
        }),
        management: None,
    });
    let c = client_service(&spec, &meta());
    assert_eq!(c.metadata.name.as_deref(), Some("nats"));
    let labels = c.metadata.labels.clone().unwrap_or_default();
    assert!(labels.contains_key("ok") && !labels.contains_key("bad key!"));
    assert_eq!(c.metadata.annotations.as_ref().map(BTreeMap::len), Some(1));
    let cs = c.spec.expect("spec");
    let sel = cs.selector.clone().unwrap_or_default();
    assert_eq!(sel.len(), 2);
    assert!(!sel.contains_key("nats_version"));
    let ports: Vec<(String, i32)> = cs
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("tcp-client".into(), 4222), ("websocket".into(), 8080)]
    );

    let m = management_service(&spec, &meta());
    assert_eq!(m.metadata.name.as_deref(), Some("nats-mgmt"));
    assert!(m.metadata.annotations.is_none());
    let ms = m.spec.expect("spec");
    assert_eq!(ms.cluster_ip.as_deref(), Some("None"));
    assert_eq!(ms.publish_not_ready_addresses, Some(true));
    assert_eq!(ms.selector.clone().unwrap_or_default(), sel);
    let ports: Vec<String> = ms
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.name)
        .collect();
    assert_eq!(
        ports,
        ["cluster", "monitoring", "metrics", "gateways", "websocket"]
    );
}

#[test]
fn config_secret_and_disruption_budget() {
    let r = nats_conf(
        &base(),
        &meta(),
        &members(1),
        &AuthInputs::default(),
        &Paths::default(),
    )
    .expect("r");
    let s = config_secret(&meta(), &r);
    assert_eq!(s.metadata.name.as_deref(), Some("nats"));
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        s.data
            .as_ref()
            .and_then(|d| d.get("nats.conf"))
            .map(|b| b.0.clone()),
        Some(r.text.as_bytes().to_vec())
    );
    assert_eq!(s.metadata.owner_references.as_ref().map(Vec::len), Some(1));

    let mut spec = base();
    let pdb = disruption_budget(&spec, &meta()).expect("pdb");
    let ps = pdb.spec.expect("spec");
    assert_eq!(
        ps.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(
        ps.selector.and_then(|s| s.match_labels).map(|l| l.len()),
        Some(2)
    );
    spec.pod = Some(b::PodPolicy {
        disruption_budget: Some(b::DisruptionBudget {
            enabled: None,
            max_unavailable: Some(2),
        }),
        ..Default::default()
    });
    let ps = disruption_budget(&spec, &meta())
        .and_then(|p| p.spec)
        .expect("spec");
    assert_eq!(
        ps.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2))
    );
    spec.pod = Some(b::PodPolicy {
        disruption_budget: Some(b::DisruptionBudget {
            enabled: Some(false),
            max_unavailable: None,
        }),
        ..Default::default()
    });
    assert!(disruption_budget(&spec, &meta()).is_none());
}

#[test]
fn member_pvc_only_with_file_storage_and_retained_by_default() {
    let mut spec = base();
    assert!(member_pvc(&spec, &meta(), "nats-1").is_none());
    spec.jetstream = Some(b::JetStream {
        file_storage: Some(b::FileStorage::default()),
        ..Default::default()
    });
    let pvc = member_pvc(&spec, &meta(), "nats-1").expect("pvc");
    assert!(pvc.metadata.owner_references.is_none());
    let req = pvc
        .spec
        .and_then(|s| s.resources)
        .and_then(|r| r.requests)
        .unwrap_or_default();
    assert_eq!(req.get("storage").map(|q| q.0.as_str()), Some("10Gi"));
    // Without file storage the store is an emptyDir.
    spec.jetstream = Some(b::JetStream::default());
    let p = pod(&spec, 1);
    let data = p
        .spec
        .and_then(|s| s.volumes)
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "data")
        .expect("data");
    assert!(data.empty_dir.is_some());
}

/// Gateways plus leafnodes need a system account or nats-server exits at start (the
/// upstream leafnode-remotes-gateways example did): one is configured, unless the user's
/// merged config brings its own accounts.
#[test]
fn gateways_with_leafnodes_get_a_system_account() {
    let Some(spec) = example("leafnode-remotes-gateways.yaml") else {
        return;
    };
    let text = conf(&spec, &AuthInputs::default());
    let v = json_of(&text);
    assert_eq!(v["system_account"], "SYS", "{text}");
    assert_eq!(v["accounts"], json!({"SYS": {}}), "{text}");
    let mut own = spec.clone();
    own.config.get_or_insert_with(Default::default).merge =
        Some(serde_json::json!({"accounts": {"A": {}}, "system_account": "A"}));
    let text = conf(&own, &AuthInputs::default());
    assert!(!text.contains("SYS"), "{text}");
    let plain = conf(&base(), &AuthInputs::default());
    assert!(!plain.contains("system_account"), "{plain}");
}

/// Manifests that still name the Go operator's reloader image get our own reloader image
/// (the command is `/nats-operator config-reloader`, which only that image has).
#[test]
fn the_legacy_reloader_image_is_replaced() {
    let Some(spec) = example("example-nats-cluster-auth.yaml") else {
        return;
    };
    let p = pod(&spec, 1);
    let reloader = p
        .spec
        .expect("spec")
        .containers
        .into_iter()
        .find(|c| c.name == "reloader")
        .expect("reloader");
    assert_eq!(
        reloader.image.as_deref(),
        Some(
            format!(
                "{}:{}",
                nats_operator::api::defaults::OPERATOR_IMAGE,
                nats_operator::api::defaults::OPERATOR_IMAGE_TAG
            )
            .as_str()
        )
    );
    assert_eq!(
        reloader.command.expect("command")[..2],
        ["/nats-operator".to_string(), "config-reloader".into()]
    );
}
