//! The checked-in CRDs are exactly what the types generate, and say what users rely on.

use nats_operator::api::admission::validate_object;
use nats_operator::api::cel;
use nats_operator::api::choices::{
    AccessMode, AntiAffinity, PullPolicy, ReclaimPolicy, ServerNameSource,
};
use nats_operator::api::crd::{ConversionEndpoint, crds_yaml, nats_cluster};

#[test]
fn checked_in_crds_match_the_types() {
    let generated = crds_yaml(&ConversionEndpoint::default()).unwrap_or_default();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds.yaml");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == on_disk,
        "manifests/crds.yaml is stale: run `cargo run -- crds > manifests/crds.yaml`"
    );
}

#[test]
fn versions_subresources_and_columns() {
    let crd = serde_json::to_value(nats_cluster(&ConversionEndpoint::default(), None))
        .unwrap_or_default();
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let find = |name: &str| {
        versions
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let (alpha, beta) = (find("v1alpha2"), find("v1beta1"));
    assert_eq!(
        (
            alpha["served"].clone(),
            alpha["storage"].clone(),
            alpha["deprecated"].clone()
        ),
        (true.into(), false.into(), true.into())
    );
    assert!(
        alpha["deprecationWarning"]
            .as_str()
            .unwrap_or_default()
            .contains("use nats.io/v1beta1")
    );
    assert_eq!(
        (beta["served"].clone(), beta["storage"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(
        beta["subresources"]["scale"]["specReplicasPath"],
        ".spec.size"
    );
    assert_eq!(
        beta["subresources"]["scale"]["labelSelectorPath"],
        ".status.selector"
    );
    let cols: Vec<String> = beta["additionalPrinterColumns"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        cols,
        ["Size", "Ready", "Version", "Status", "JetStream", "Age"]
    );
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "nats");
    assert_eq!(crd["spec"]["conversion"]["strategy"], "Webhook");
    assert_eq!(
        crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["path"],
        "/convert"
    );
    // kubectl explain needs a description on every field.
    fn walk(path: &str, s: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = s["properties"].as_object() {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                if v["description"].as_str().is_none_or(str::is_empty)
                    && !p.contains("metadata")
                    && k != "apiVersion"
                    && k != "kind"
                {
                    missing.push(p.clone());
                }
                walk(&p, v, missing);
                walk(&p, &v["items"], missing);
            }
        }
    }
    for v in [alpha, beta] {
        let mut missing = Vec::new();
        walk(
            "",
            &v["schema"]["openAPIV3Schema"]["properties"]["spec"],
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "fields without description: {missing:?}"
        );
    }
    // Small enough for client-side `kubectl apply` (last-applied annotation, 256 KiB).
    assert!(serde_json::to_string(&crd).unwrap_or_default().len() < 200_000);
}

fn version_schema(version: &str) -> serde_json::Value {
    let crd = serde_json::to_value(nats_cluster(&ConversionEndpoint::default(), None))
        .unwrap_or_default();
    crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == version))
        .map(|v| v["schema"]["openAPIV3Schema"]["properties"]["spec"].clone())
        .unwrap_or_default()
}

/// The schema at a dotted path of properties; `[]` steps into list items.
fn at<'a>(schema: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    path.split('.').fold(schema, |s, seg| match seg {
        "[]" => &s["items"],
        name => &s["properties"][name],
    })
}

fn rules(schema: &serde_json::Value) -> serde_json::Value {
    schema["x-kubernetes-validations"].clone()
}

fn json_rules(rs: &[cel::Rule]) -> serde_json::Value {
    serde_json::to_value(rs).unwrap_or_default()
}

#[test]
fn cel_rules_enums_and_bounds_are_in_both_versions() {
    let alpha = version_schema("v1alpha2");
    let beta = version_schema("v1beta1");
    let pull = serde_json::json!(PullPolicy::WIRE);
    let port_range = |s: &serde_json::Value| (s["minimum"].as_f64(), s["maximum"].as_f64());

    // v1alpha2: the Go operator's fields, with 0 meaning "unset" for ports.
    assert_eq!(at(&alpha, "size")["minimum"].as_f64(), Some(0.0));
    assert_eq!(at(&alpha, "extraRoutes")["maxItems"], cel::MAX_EXTRA_ROUTES);
    assert_eq!(
        rules(at(&alpha, "extraRoutes.[]")),
        json_rules(&[cel::EXTRA_ROUTE])
    );
    assert_eq!(
        rules(at(&alpha, "gatewayConfig")),
        json_rules(&[cel::GATEWAY_HOST_PORT_REQUIRED, cel::GATEWAY_NAME_REQUIRED])
    );
    for p in [
        "gatewayConfig.hostPort",
        "leafnodeConfig.hostPort",
        "websocketConfig.port",
    ] {
        assert_eq!(port_range(at(&alpha, p)), (Some(0.0), Some(65535.0)), "{p}");
    }
    assert_eq!(
        rules(at(&alpha, "websocketConfig")),
        json_rules(&[cel::WEBSOCKET_PORT_REQUIRED])
    );
    for p in ["pod.reloaderImagePullPolicy", "pod.metricsImagePullPolicy"] {
        assert_eq!(at(&alpha, p)["enum"], pull, "{p}");
    }

    // v1beta1.
    assert_eq!(at(&beta, "size")["minimum"].as_f64(), Some(0.0));
    assert_eq!(at(&beta, "extraRoutes")["maxItems"], cel::MAX_EXTRA_ROUTES);
    assert_eq!(
        rules(at(&beta, "extraRoutes.[]")),
        json_rules(&[cel::EXTRA_ROUTE])
    );
    assert_eq!(
        rules(at(&beta, "gateway")),
        json_rules(&[cel::GATEWAY_PORT_REQUIRED, cel::GATEWAY_NAME_REQUIRED])
    );
    assert_eq!(
        rules(at(&beta, "websocket")),
        json_rules(&[cel::WEBSOCKET_PORT_REQUIRED])
    );
    for p in ["gateway.port", "leafnode.port", "websocket.port"] {
        assert_eq!(port_range(at(&beta, p)), (Some(0.0), Some(65535.0)), "{p}");
    }
    for p in [
        "imagePullPolicy",
        "pod.configReloader.imagePullPolicy",
        "pod.metrics.imagePullPolicy",
        "pod.externalAdvertise.imagePullPolicy",
    ] {
        assert_eq!(at(&beta, p)["enum"], pull, "{p}");
    }
    assert_eq!(
        at(&beta, "pod.antiAffinity")["enum"],
        serde_json::json!(AntiAffinity::WIRE)
    );
    assert_eq!(
        at(&beta, "config.serverName")["enum"],
        serde_json::json!(ServerNameSource::WIRE)
    );
    for p in [
        "tls.client",
        "tls.routes",
        "tls.gateway",
        "tls.leafnode",
        "tls.websocket",
    ] {
        assert_eq!(
            rules(at(&beta, p)),
            json_rules(&[cel::TLS_SECRET_REQUIRED]),
            "{p}"
        );
    }
    let fs = at(&beta, "jetstream.fileStorage");
    assert_eq!(rules(fs), json_rules(&[cel::STORAGE_CLASS_IMMUTABLE]));
    assert_eq!(
        at(fs, "reclaimPolicy")["enum"],
        serde_json::json!(ReclaimPolicy::WIRE)
    );
    assert_eq!(
        at(fs, "accessMode")["enum"],
        serde_json::json!(AccessMode::WIRE)
    );
    assert_eq!(at(fs, "storageClassName")["maxLength"], 253);
}

/// What the apiserver's CEL compiler and cost estimator insist on, checked offline:
/// every rule is one of ours with a message, rules inside lists sit under a bounded list,
/// transition rules (`oldSelf`) are never inside a list (not correlatable), and every
/// `fieldPath` names a property of the object the rule is on.
#[test]
fn cel_rules_are_bounded_and_well_placed() {
    fn walk(path: &str, s: &serde_json::Value, in_list: Option<bool>, seen: &mut Vec<String>) {
        if let Some(rs) = s["x-kubernetes-validations"].as_array() {
            for r in rs {
                let rule = r["rule"].as_str().unwrap_or_default();
                assert!(
                    cel::ALL.iter().any(|c| c.rule == rule),
                    "{path}: unknown rule {rule}"
                );
                assert!(
                    !r["message"].as_str().unwrap_or_default().is_empty(),
                    "{path}: rule without message"
                );
                assert_ne!(
                    in_list,
                    Some(false),
                    "{path}: rule inside an unbounded list"
                );
                if rule.contains("oldSelf") {
                    assert_eq!(in_list, None, "{path}: transition rule inside a list");
                }
                if let Some(fp) = r["fieldPath"].as_str() {
                    let field = fp.trim_start_matches('.');
                    assert!(
                        s["properties"].get(field).is_some(),
                        "{path}: fieldPath {fp} is not a property"
                    );
                    assert!(rule.contains(field), "{path}: {fp} not in {rule}");
                }
                seen.push(format!("{path}: {rule}"));
            }
        }
        if let Some(props) = s["properties"].as_object() {
            for (k, v) in props {
                walk(&format!("{path}.{k}"), v, in_list, seen);
            }
        }
        if s.get("items").is_some() {
            let bounded = s.get("maxItems").is_some() && in_list != Some(false);
            walk(&format!("{path}[]"), &s["items"], Some(bounded), seen);
        }
    }
    let mut seen = Vec::new();
    for v in ["v1alpha2", "v1beta1"] {
        walk(&format!("{v}: spec"), &version_schema(v), None, &mut seen);
    }
    // extraRoutes, gateway (2), websocket in both; 6 TLS blocks and fileStorage in v1beta1.
    assert_eq!(seen.len(), 15, "{seen:#?}");
}

/// The schema's enums accept exactly what the validating webhook accepts there.
#[test]
fn schema_enums_agree_with_the_webhook() {
    let cases: [(&str, &[&str]); 7] = [
        ("/imagePullPolicy", PullPolicy::WIRE),
        ("/pod/metrics/imagePullPolicy", PullPolicy::WIRE),
        ("/pod/configReloader/imagePullPolicy", PullPolicy::WIRE),
        ("/pod/antiAffinity", AntiAffinity::WIRE),
        ("/config/serverName", ServerNameSource::WIRE),
        ("/jetstream/fileStorage/reclaimPolicy", ReclaimPolicy::WIRE),
        ("/jetstream/fileStorage/accessMode", AccessMode::WIRE),
    ];
    for (pointer, values) in cases {
        for value in values.iter().copied().chain(["Bogus"]) {
            let mut spec = serde_json::json!({"size": 3, "version": "2.10.24"});
            let mut slot = &mut spec;
            for seg in pointer.trim_start_matches('/').split('/') {
                slot = &mut slot[seg];
            }
            *slot = value.into();
            let obj = serde_json::json!({
                "apiVersion": "nats.io/v1beta1", "kind": "NatsCluster",
                "metadata": {"name": "c"}, "spec": spec,
            });
            let accepted = validate_object(&obj, None).is_ok();
            assert_eq!(accepted, value != "Bogus", "{pointer} = {value:?}");
        }
    }
}
