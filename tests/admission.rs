//! Validation and defaulting as the webhooks apply them: every rule with its exact field
//! path and message, every upstream example, idempotent defaulting.

mod support;

use nats_operator::api::admission::{default_object, validate_object};
use nats_operator::api::convert::convert_object;
use nats_operator::api::defaults::{DEFAULT_VERSION, LEGACY_DEFAULT_VERSION};
use nats_operator::api::field::FieldError;
use nats_operator::api::{V1ALPHA2, V1BETA1};
use serde_json::{Value, json};

fn cluster(api: &str, spec: Value) -> Value {
    json!({"apiVersion": api, "kind": "NatsCluster", "metadata": {"name": "c", "namespace": "ns"}, "spec": spec})
}

fn errors(obj: &Value) -> Vec<String> {
    match validate_object(obj, None) {
        Ok(w) => panic!("expected a denial, got warnings {w:?} for {obj}"),
        Err(e) => e.iter().map(FieldError::to_string).collect(),
    }
}

/// The denials of an UPDATE from `old` to `new`, as kubectl lists them (empty if allowed).
fn update_errors(new: &Value, old: &Value) -> Vec<String> {
    validate_object(new, Some(old))
        .err()
        .unwrap_or_default()
        .iter()
        .map(FieldError::to_string)
        .collect()
}

fn warnings(obj: &Value) -> Vec<String> {
    validate_object(obj, None).unwrap_or_else(|e| panic!("denied: {e:?}"))
}

fn assert_error(obj: &Value, expected: &str) {
    let errs = errors(obj);
    assert!(
        errs.iter().any(|e| e == expected),
        "expected {expected:?} in {errs:#?}"
    );
}

#[test]
fn every_upstream_example_is_accepted_except_the_bad_cipher() {
    let Some(clusters) = support::upstream_clusters("every_upstream_example_is_accepted") else {
        return;
    };
    for (file, doc) in clusters {
        let result = validate_object(&doc, None);
        if file == "example-custom-cipher.yaml" {
            let errs: Vec<String> = result
                .err()
                .unwrap_or_default()
                .iter()
                .map(|e| e.to_string())
                .collect();
            assert_eq!(
                errs,
                vec![
                    "spec.tls.cipherSuites[0]: Invalid value: \"ASDF\": is not a cipher suite nats-server accepts, such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string(),
                    "spec.tls.curvePreferences[0]: Unsupported value: \"FOO\": supported values: \"X25519\", \"CurveP256\", \"CurveP384\", \"CurveP521\", \"X25519MLKEM768\", \"SecP256r1MLKEM768\", \"SecP384r1MLKEM1024\"".to_string(),
                ],
                "{file}"
            );
        } else {
            assert!(result.is_ok(), "{file}: {result:?}");
        }
    }
}

#[test]
fn examples_default_idempotently_and_validate_after_defaulting() {
    let Some(clusters) = support::upstream_clusters("examples_default_idempotently") else {
        return;
    };
    for (file, doc) in clusters {
        let (once, _) = default_object(&doc, None);
        let (twice, w2) = default_object(&once, None);
        assert_eq!(once, twice, "{file}: defaulting is not idempotent");
        assert!(w2.is_empty(), "{file}: second pass warned {w2:?}");
        assert_eq!(
            once["spec"]["serverImage"].as_str().map(|s| !s.is_empty()),
            Some(true),
            "{file}"
        );
        if file != "example-custom-cipher.yaml" {
            assert!(validate_object(&once, None).is_ok(), "{file}");
        }
        // Defaulting commutes with conversion.
        let up_then_default = default_object(
            &convert_object(doc.clone(), V1BETA1).unwrap_or_default(),
            None,
        )
        .0;
        let default_then_up = convert_object(once.clone(), V1BETA1).unwrap_or_default();
        assert_eq!(up_then_default["spec"], default_then_up["spec"], "{file}");
    }
}

#[test]
fn nightly_tag_and_write_deadline_spelling() {
    let Some(docs) = support::upstream_clusters("nightly_tag_and_write_deadline_spelling") else {
        return;
    };
    let ws = docs
        .iter()
        .find(|(f, _)| f == "websocket.yaml")
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    assert!(validate_object(&ws, None).is_ok());
    let custom = docs
        .iter()
        .find(|(f, _)| f == "example-nats-custom-config.yaml")
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    let (defaulted, warnings) = default_object(&custom, None);
    assert_eq!(defaulted["spec"]["natsConfig"]["write_deadline"], "5s");
    assert!(
        defaulted["spec"]["natsConfig"]
            .get("writeDeadline")
            .is_none()
    );
    assert!(
        warnings.iter().any(|w| w.contains("write_deadline")),
        "{warnings:?}"
    );
}

#[test]
fn defaults_are_the_go_operators_and_written_into_the_object() {
    let (d, _) = default_object(
        &cluster(
            V1ALPHA2,
            json!({"size": 3, "version": "v2.10.1", "tls": {"serverSecret": "s", "routesSecret": "r"},
            "pod": {"enableConfigReload": true, "enableMetrics": true}}),
        ),
        None,
    );
    let s = &d["spec"];
    assert_eq!(s["version"], "2.10.1");
    assert_eq!(s["serverImage"], "nats");
    assert_eq!(s["tls"]["serverSecretCAFileName"], "ca.pem");
    assert_eq!(s["tls"]["serverSecretCertFileName"], "server.pem");
    assert_eq!(s["tls"]["serverSecretKeyFileName"], "server-key.pem");
    assert_eq!(s["tls"]["routesSecretCertFileName"], "route.pem");
    assert_eq!(s["tls"]["routesSecretKeyFileName"], "route-key.pem");
    assert!(
        s["tls"].get("gatewaySecretCAFileName").is_none(),
        "no names for listeners without a secret"
    );
    assert_eq!(s["pod"]["reloaderImagePullPolicy"], "IfNotPresent");
    assert_eq!(s["pod"]["metricsImage"], "natsio/prometheus-nats-exporter");

    let (d, _) = default_object(&cluster(V1BETA1, json!({"size": 1})), None);
    assert_eq!(d["spec"]["version"], DEFAULT_VERSION);
    assert_eq!(d["spec"]["image"], "nats");
}

#[test]
fn objects_stored_without_a_version_keep_the_go_default() {
    let old = cluster(V1ALPHA2, json!({"size": 3}));
    let new = cluster(V1ALPHA2, json!({"size": 5}));
    let (d, w) = default_object(&new, Some(&old));
    assert_eq!(d["spec"]["version"], LEGACY_DEFAULT_VERSION);
    assert!(w.iter().any(|w| w.contains(LEGACY_DEFAULT_VERSION)));
}

#[test]
fn size_and_version_rules() {
    assert_error(
        &cluster(V1ALPHA2, json!({"size": -1})),
        "spec.size: Invalid value: -1: must be greater than or equal to 0",
    );
    assert_error(
        &cluster(V1BETA1, json!({"size": 1, "version": "latest"})),
        "spec.version: Invalid value: \"latest\": must be a NATS server version such as 2.10.24 (a leading v is accepted), or nightly / nightly-YYYYMMDD",
    );
    let w = warnings(&cluster(V1ALPHA2, json!({"size": 1, "version": "1.4.1"})));
    assert!(w.iter().any(|w| w.contains("end-of-life")), "{w:?}");
    let old = cluster(V1BETA1, json!({"size": 1, "version": "2.10.0"}));
    let w = validate_object(
        &cluster(V1BETA1, json!({"size": 1, "version": "2.9.0"})),
        Some(&old),
    )
    .unwrap_or_default();
    assert!(w.iter().any(|w| w.contains("downgrades")), "{w:?}");
    let w = warnings(&cluster(
        V1BETA1,
        json!({"size": 4, "version": "2.10.0", "jetstream": {}}),
    ));
    assert!(w.iter().any(|w| w.contains("even")), "{w:?}");
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 3, "version": "2.1.0", "jetstream": {}}),
        ),
        "spec.version: Invalid value: \"2.1.0\": JetStream needs NATS server 2.2.0 or newer",
    );
    assert_error(
        &cluster(V1ALPHA2, json!({"size": "three"})),
        "spec.size: Invalid value: \"<value>\": invalid type: string \"three\", expected i32",
    );
}

#[test]
fn tls_rules() {
    assert_error(
        &cluster(V1ALPHA2, json!({"size": 1, "tls": {"gatewaySecret": "g"}})),
        "spec.tls.gatewaySecret: Forbidden: TLS for a listener that is not configured: set spec.gatewayConfig or remove spec.tls.gatewaySecret",
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 1, "tls": {"websocket": {"secret": "w"}}}),
        ),
        "spec.tls.websocket: Forbidden: TLS for a listener that is not configured: set spec.websocket or remove spec.tls.websocket",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "tls": {"routesSecret": "r"}, "auth": {"tlsVerifyAndMap": true}}),
        ),
        "spec.tls.serverSecret: Required value: spec.auth.tlsVerifyAndMap needs client TLS",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "tls": {"serverSecret": "s", "serverSecretCAFileName": "../ca.pem"}}),
        ),
        "spec.tls.serverSecretCAFileName: Invalid value: \"../ca.pem\": must be a key of the Secret (letters, digits, '-', '_' and '.') or an absolute path",
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 1, "tls": {"client": {"secret": "s", "certFile": "/etc/certs/../x.pem"}}}),
        ),
        "spec.tls.client.certFile: Invalid value: \"/etc/certs/../x.pem\": must be a normalised absolute path (no '..', '.', '//' or trailing '/') of letters, digits, '-', '_' and '.'",
    );
    assert!(
        validate_object(
            &cluster(
                V1BETA1,
                json!({"size": 1, "tls": {"client": {"secret": "s", "caFile": "/etc/pki/ca.crt"}}})
            ),
            None
        )
        .is_ok()
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "tls": {"serverSecret": "Bad_Name"}}),
        ),
        "spec.tls.serverSecret: Invalid value: \"Bad_Name\": must be a Secret name (lowercase letters, digits, '-' and '.')",
    );
}

#[test]
fn extra_route_rules() {
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "extraRoutes": [{"cluster": "a", "route": "nats://x:6222"}]}),
        ),
        "spec.extraRoutes[0]: Invalid value: {\"cluster\":\"a\",\"route\":\"nats://x:6222\"}: set exactly one of cluster or route, not both",
    );
    assert_error(
        &cluster(V1ALPHA2, json!({"size": 1, "extraRoutes": [{}]})),
        "spec.extraRoutes[0]: Required value: set exactly one of cluster or route",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "extraRoutes": [{"route": "http://x:6222"}]}),
        ),
        "spec.extraRoutes[0].route: Invalid value: \"http://x:6222\": scheme must be one of nats, nats-route, tls",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "extraRoutes": [{"route": "nats://x"}]}),
        ),
        "spec.extraRoutes[0].route: Invalid value: \"nats://x\": must name a port, as in nats://host:port",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "extraRoutes": [{"cluster": "c"}]}),
        ),
        "spec.extraRoutes[0].cluster: Invalid value: \"c\": must not name this cluster itself",
    );
    assert!(validate_object(&cluster(V1ALPHA2, json!({"size": 1, "extraRoutes": [{"cluster": "other"}, {"route": "nats-route://10.0.0.1:6222"}]})), None).is_ok());
}

#[test]
fn ports_labels_and_listener_rules() {
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "gatewayConfig": {"name": "gw", "hostPort": 4222}}),
        ),
        "spec.gatewayConfig.hostPort: Duplicate value: 4222: port already used by the client listener",
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 1, "gateway": {"name": "gw", "port": 7522}, "leafnode": {"port": 7522}}),
        ),
        "spec.leafnode.port: Duplicate value: 7522: port already used by spec.gateway.port",
    );
    assert_error(
        &cluster(V1BETA1, json!({"size": 1, "websocket": {"port": 70000}})),
        "spec.websocket.port: Invalid value: 70000: must be between 1 and 65535",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "pod": {"labels": {"app": "x"}}}),
        ),
        "spec.pod.labels.app: Forbidden: this label is set by the operator (app, nats_cluster and nats_version are reserved)",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "gatewayConfig": {"name": "gw", "hostPort": 7522, "gateways": [{"name": "b", "url": "b:7522"}]}}),
        ),
        "spec.gatewayConfig.gateways[0].url: Invalid value: \"b:7522\": scheme must be one of nats, tls",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "leafnodeConfig": {"remotes": [{"url": "nats://h:7422", "credentials": "creds"}]}}),
        ),
        "spec.leafnodeConfig.remotes[0].credentials: Invalid value: \"creds\": must be an absolute path starting with /",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "natsConfig": {"write_deadline": "ten"}}),
        ),
        "spec.natsConfig.write_deadline: Invalid value: \"ten\": must be a duration such as 500ms, 10s or 2m",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "auth": {"gatewayAuthSecret": "g"}}),
        ),
        "spec.auth.gatewayAuthSecret: Forbidden: gateway credentials without a gateway: set spec.gatewayConfig or remove spec.auth.gatewayAuthSecret",
    );
    assert_error(
        &cluster(
            V1ALPHA2,
            json!({"size": 1, "operatorConfig": {"systemAccount": "A"}}),
        ),
        "spec.operatorConfig.secret: Required value: name the Secret with the operator JWT (key op.jwt)",
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let errs = errors(&cluster(
        V1ALPHA2,
        json!({"size": -2, "version": "x", "tls": {"leafnodeSecret": "l"}}),
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

#[test]
fn unchanged_spec_updates_always_pass() {
    let stored = cluster(
        V1ALPHA2,
        json!({"size": -1, "version": "garbage", "tls": {"gatewaySecret": "x"}}),
    );
    let mut relabelled = stored.clone();
    relabelled["metadata"]["labels"] = json!({"team": "x"});
    relabelled["metadata"]["finalizers"] = json!(["example.com/f"]);
    assert_eq!(validate_object(&relabelled, Some(&stored)), Ok(vec![]));
    let mut deleting = relabelled.clone();
    deleting["spec"]["size"] = json!(-5);
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert!(validate_object(&deleting, Some(&stored)).is_ok());
}

#[test]
fn service_role_rules() {
    let role = |labels: Value, publish: Value| {
        json!({"apiVersion": V1ALPHA2, "kind": "NatsServiceRole",
        "metadata": {"name": "u", "labels": labels}, "spec": {"permissions": {"publish": publish, "subscribe": ["foo.* workers"]}}})
    };
    assert!(
        validate_object(
            &role(json!({"nats_cluster": "c"}), json!(["foo.>", "a.*.b"])),
            None
        )
        .is_ok()
    );
    assert_error(
        &role(json!({"nats_cluster": "c"}), json!(["foo..bar"])),
        "spec.permissions.publish[0]: Invalid value: \"foo..bar\": must not have empty tokens (no leading, trailing or double dots)",
    );
    assert_error(
        &role(json!({"nats_cluster": "c"}), json!([">.foo"])),
        "spec.permissions.publish[0]: Invalid value: \">.foo\": '>' may only be a whole token at the end",
    );
    let w = validate_object(&role(json!({}), json!(["a"])), None).unwrap_or_default();
    assert!(w.iter().any(|w| w.contains("nats_cluster")));
}

#[test]
fn other_kinds_are_refused_by_name() {
    let errs = errors(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}));
    assert!(
        errs[0].starts_with("apiVersion: Unsupported value: \"v1 Pod\""),
        "{errs:?}"
    );
}

/// nats-server refuses a lame duck shorter than 30 s (found by running the config): denied
/// in both versions, with each version's field path; 30 s passes.
#[test]
fn lame_duck_below_the_server_minimum_is_denied() {
    let msg = "spec.config.lameDuckDuration: Invalid value: \"3s\": must be at least 30s (nats-server refuses shorter lame duck durations)";
    assert_error(
        &cluster(
            "nats.io/v1beta1",
            json!({"size": 1, "config": {"lameDuckDuration": "3s"}}),
        ),
        msg,
    );
    let errs = errors(&cluster(
        "nats.io/v1alpha2",
        json!({"size": 1, "lameDuckDurationSeconds": 3}),
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("spec.lameDuckDurationSeconds:") && e.contains("at least 30s")),
        "{errs:?}"
    );
    warnings(&cluster(
        "nats.io/v1beta1",
        json!({"size": 1, "config": {"lameDuckDuration": "30s"}}),
    ));
}

#[test]
fn jetstream_storage_rules_protect_data() {
    let js = |fs: Value| {
        cluster(
            V1BETA1,
            json!({"size": 3, "version": "2.15.1", "jetstream": {"fileStorage": fs}}),
        )
    };
    let old = js(json!({"size": "10Gi", "storageClassName": "fast"}));
    let update = |new: &Value| validate_object(new, Some(&old));
    let denied = |new: &Value| update_errors(new, &old);
    assert!(update(&js(json!({"size": "20Gi", "storageClassName": "fast"}))).is_ok());
    assert_eq!(
        denied(&js(json!({"size": "5Gi", "storageClassName": "fast"}))),
        [
            "spec.jetstream.fileStorage.size: Forbidden: volumes can grow but never shrink; shrinking would lose data"
        ]
    );
    assert_eq!(
        denied(&js(json!({"size": "10Gi", "storageClassName": "slow"}))),
        [
            "spec.jetstream.fileStorage.storageClassName: Forbidden: the storage class of existing members' volumes cannot change"
        ]
    );
    let no_file = cluster(
        V1BETA1,
        json!({"size": 3, "version": "2.15.1", "jetstream": {}}),
    );
    assert_eq!(
        denied(&no_file),
        [
            "spec.jetstream.fileStorage: Forbidden: cannot be removed while members keep their streams on volumes: the servers would restart on empty storage"
        ]
    );
    let off = cluster(V1BETA1, json!({"size": 3, "version": "2.15.1"}));
    let w = update(&off).unwrap_or_default();
    assert!(
        w.iter().any(|w| w.contains("turning JetStream off")),
        "{w:?}"
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 3, "jetstream": {"catchUpTimeout": "soon"}}),
        ),
        "spec.jetstream.catchUpTimeout: Invalid value: \"soon\": must be a duration such as 500ms, 10s or 2m",
    );
    let w = warnings(&cluster(
        V1BETA1,
        json!({"size": 3, "jetstream": {"memoryStorage": "1Gi"},
               "pod": {"resources": {"limits": {"memory": "1Gi"}}}}),
    ));
    assert!(w.iter().any(|w| w.contains("OOM")), "{w:?}");
    assert!(w.iter().all(|w| w.len() < 120), "{w:?}");
}

/// A growth the storage class could not make leaves the spec above the volumes: the spec
/// may go back down to what the volumes request (`status.volumeSize`), never below it.
#[test]
fn storage_may_go_back_to_what_the_volumes_have_never_below() {
    let js = |size: &str| {
        cluster(
            V1BETA1,
            json!({"size": 3, "version": "2.15.1",
                   "jetstream": {"fileStorage": {"size": size, "storageClassName": "fixed"}}}),
        )
    };
    let mut stored = js("20Gi");
    stored["status"] = json!({"volumeSize": "10Gi"});
    assert!(validate_object(&js("10Gi"), Some(&stored)).is_ok());
    assert_eq!(
        update_errors(&js("8Gi"), &stored),
        [
            "spec.jetstream.fileStorage.size: Forbidden: volumes can grow but never shrink: the members' volumes request 10Gi (status.volumeSize); shrinking would lose data"
        ]
    );
    // Re-enabling JetStream below what the volumes kept is shrinking too.
    let mut off = cluster(V1BETA1, json!({"size": 3, "version": "2.15.1"}));
    off["status"] = json!({"volumeSize": "10Gi"});
    assert!(validate_object(&js("5Gi"), Some(&off)).is_err());
    assert!(validate_object(&js("10Gi"), Some(&off)).is_ok());
}

/// A v1alpha2 object carries the v1beta1-only fields in its residual annotation; its
/// updates are judged as the v1beta1 object they read back as.
#[test]
fn v1alpha2_updates_are_judged_with_their_v1beta1_only_fields() {
    let beta = |size: &str| {
        cluster(
            V1BETA1,
            json!({"size": 3, "version": "2.15.1",
                   "jetstream": {"fileStorage": {"size": size}}}),
        )
    };
    let alpha = |size: &str| convert_object(beta(size), V1ALPHA2).unwrap_or_default();
    let old = alpha("10Gi");
    assert_eq!(old["apiVersion"], V1ALPHA2);
    assert!(validate_object(&alpha("20Gi"), Some(&old)).is_ok());
    assert_eq!(
        update_errors(&alpha("5Gi"), &old),
        [
            "spec.jetstream.fileStorage.size: Forbidden: volumes can grow but never shrink; shrinking would lose data"
        ]
    );
    // Dropping the annotation turns JetStream off, as removing spec.jetstream does in
    // v1beta1: allowed, with the same warning.
    let mut bare = old.clone();
    if let Some(a) = bare["metadata"]["annotations"].as_object_mut() {
        a.clear();
    }
    let w = validate_object(&bare, Some(&old)).unwrap_or_default();
    assert!(
        w.iter().any(|w| w.contains("turning JetStream off")),
        "{w:?}"
    );
    // Rules of the v1beta1-only fields apply on CREATE too, with v1alpha2 paths elsewhere.
    let mut odd = convert_object(
        cluster(
            V1BETA1,
            json!({"size": 3, "version": "2.1.9", "jetstream": {"memoryStorage": "lots"}}),
        ),
        V1ALPHA2,
    )
    .unwrap_or_default();
    odd["metadata"]["name"] = json!("c");
    let errs = errors(&odd);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("spec.jetstream.memoryStorage: Invalid value: \"lots\"")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("JetStream needs NATS server 2.2.0")),
        "{errs:#?}"
    );
}

#[test]
fn mqtt_accounts_no_auth_user_and_pod_monitor_rules() {
    assert_error(
        &cluster(V1BETA1, json!({"size": 3, "mqtt": {}})),
        "spec.jetstream: Required value: MQTT keeps its sessions and retained messages in JetStream: set spec.jetstream or remove spec.mqtt",
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 3, "jetstream": {}, "mqtt": {"port": 4222}}),
        ),
        "spec.mqtt.port: Duplicate value: 4222: port already used by the client listener",
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 3, "tls": {"mqtt": {"secret": "t"}}}),
        ),
        "spec.tls.mqtt: Forbidden: TLS for a listener that is not configured: set spec.mqtt or remove spec.tls.mqtt",
    );
    assert!(
        validate_object(
            &cluster(
                V1BETA1,
                json!({"size": 3, "jetstream": {}, "mqtt": {"ackWait": "30s"}, "tls": {"mqtt": {"secret": "t"}}})
            ),
            None
        )
        .is_ok()
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 1, "auth": {"clients": {"noAuthUser": "guest"}}}),
        ),
        "spec.auth.clients.noAuthUser: Invalid value: \"guest\": names a user, but no users are configured: set spec.auth.clients.secret, spec.auth.clients.file or spec.auth.accounts",
    );
    assert!(
        validate_object(
            &cluster(
                V1BETA1,
                json!({"size": 1, "auth": {"clients": {"noAuthUser": "guest"}, "accounts": {"secret": "acc"}}})
            ),
            None
        )
        .is_ok()
    );
    assert_error(
        &cluster(V1BETA1, json!({"size": 1, "auth": {"accounts": {}}})),
        "spec.auth.accounts.secret: Required value: name the Secret holding the accounts as JSON",
    );
    assert_error(
        &cluster(
            V1BETA1,
            json!({"size": 1, "pod": {"podMonitor": {"enabled": true}}}),
        ),
        "spec.pod.metrics.enabled: Required value: spec.pod.podMonitor scrapes the exporter: enable spec.pod.metrics",
    );
}

/// v1alpha2's pull policies are free strings in the Go operator's CRD; v1beta1's are enums.
/// A value Kubernetes does not list is denied with its v1alpha2 path, not dropped by the
/// conversion; v1beta1 objects are decoded into the enum, so the same value is denied there.
#[test]
fn unlisted_pull_policies_are_denied_in_both_versions() {
    let alpha = cluster(
        V1ALPHA2,
        json!({"size": 3, "pod": {"enableConfigReload": true, "reloaderImagePullPolicy": "always"}}),
    );
    assert_error(
        &alpha,
        r#"spec.pod.reloaderImagePullPolicy: Unsupported value: "always": supported values: "Always", "IfNotPresent", "Never""#,
    );
    let beta = cluster(
        V1BETA1,
        json!({"size": 3, "pod": {"configReloader": {"enabled": true, "imagePullPolicy": "always"}}}),
    );
    let denied = errors(&beta).join("\n");
    assert!(
        denied.contains("spec.pod.configReloader.imagePullPolicy") && denied.contains("always"),
        "{denied}"
    );
    let listed = cluster(
        V1BETA1,
        json!({"size": 3, "pod": {"configReloader": {"enabled": true, "imagePullPolicy": ""}}}),
    );
    assert!(validate_object(&listed, None).is_ok());
}
