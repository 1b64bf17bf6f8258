//! Conversion round trips: every field survives v1alpha2 → v1beta1 → v1alpha2 and
//! v1beta1 → v1alpha2 → v1beta1, for generated objects and every upstream example.

mod support;

use nats_operator::api::convert::{
    ALPHA_RESIDUAL_ANNOTATION, BETA_RESIDUAL_ANNOTATION, convert_object, convert_object_reference,
    convert_text,
};
use nats_operator::api::crd::{ConversionEndpoint, nats_cluster};
use nats_operator::api::{V1ALPHA2, V1BETA1, v1beta1};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::canonical;

fn round_trip(original: &Value, via: &str) -> (Value, Value) {
    let from = original["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let there = convert_object(original.clone(), via).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(there["apiVersion"], via);
    assert_eq!(there["metadata"]["name"], original["metadata"]["name"]);
    let back = convert_object(there.clone(), &from).unwrap_or_else(|e| panic!("{e}"));
    (there, back)
}

fn object(
    api_version: &str,
    spec: Value,
    status: Option<Value>,
    annotations: Option<Value>,
) -> Value {
    let mut o = json!({
        "apiVersion": api_version,
        "kind": "NatsCluster",
        "metadata": {"name": "c", "namespace": "ns", "uid": "1234", "resourceVersion": "7", "generation": 3},
        "spec": spec,
    });
    if let Some(s) = status {
        o["status"] = s;
    }
    if let Some(a) = annotations {
        o["metadata"]["annotations"] = a;
    }
    o
}

fn schema(version: &str) -> Value {
    let crd = serde_json::to_value(nats_cluster(&ConversionEndpoint::default(), None))
        .unwrap_or_default();
    support::version_schema(&crd, version)
}

fn generated(version: &'static str) -> impl Strategy<Value = Value> {
    let s = schema(version);
    let spec = support::from_schema(&s["properties"]["spec"], 6);
    let status = proptest::option::of(support::from_schema(&s["properties"]["status"], 5));
    let ann = proptest::option::of(Just(json!({"team": "a"})));
    (spec, status, ann).prop_map(move |(spec, status, ann)| {
        canonical(&object(&format!("nats.io/{version}"), spec, status, ann))
    })
}

/// When the text fast path takes an object, its result is the `Value` path's, and it
/// takes the common case: no residual before or after.
fn same_as_text_path(original: &Value, to: &str) -> Result<(), TestCaseError> {
    let text = original.to_string();
    let slow = convert_object(original.clone(), to);
    match convert_text(&text, to) {
        Some(fast) => {
            let fast: Value = serde_json::from_str(fast.get())
                .map_err(|e| TestCaseError::fail(format!("fast path wrote bad JSON: {e}")))?;
            prop_assert_eq!(Ok(fast), slow, "{} -> {}", original, to);
        }
        None => {
            let residual = |v: &Value| {
                let a = &v["metadata"]["annotations"];
                a.get(ALPHA_RESIDUAL_ANNOTATION).is_some()
                    || a.get(BETA_RESIDUAL_ANNOTATION).is_some()
            };
            let common = original["apiVersion"] != to
                && !residual(original)
                && slow.as_ref().is_ok_and(|s| !residual(s));
            prop_assert!(
                !common,
                "the text path declined a plain conversion: {} -> {}",
                original,
                to
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn v1alpha2_round_trips_through_v1beta1(original in generated("v1alpha2")) {
        let (there, back) = round_trip(&original, V1BETA1);
        prop_assert_eq!(&back, &original, "via {}", there);
    }

    #[test]
    fn v1beta1_round_trips_through_v1alpha2(original in generated("v1beta1")) {
        let (there, back) = round_trip(&original, V1ALPHA2);
        prop_assert_eq!(&back, &original, "via {}", there);
    }

    /// The optimised conversion (typed comparison, JSON only where something differs)
    /// gives exactly what computing every JSON form gives, on canonical and raw objects,
    /// with and without a residual annotation.
    #[test]
    fn optimised_conversion_equals_the_reference(
        canonical_alpha in generated("v1alpha2"),
        canonical_beta in generated("v1beta1"),
        raw_alpha in support::from_schema(&schema("v1alpha2")["properties"]["spec"], 6),
        raw_beta in support::from_schema(&schema("v1beta1")["properties"]["spec"], 6),
    ) {
        let raw_alpha = object(V1ALPHA2, raw_alpha, None, None);
        let raw_beta = object(V1BETA1, raw_beta, Some(json!({"replicas": 2, "conditions": []})), None);
        for original in [canonical_alpha, canonical_beta, raw_alpha, raw_beta] {
            for to in [V1ALPHA2, V1BETA1] {
                let fast = convert_object(original.clone(), to);
                let reference = convert_object_reference(original.clone(), to);
                prop_assert_eq!(&fast, &reference, "{} -> {}", original, to);
                same_as_text_path(&original, to)?;
                // The converted object carries the residual, if any: convert it back too.
                if let Ok(there) = fast {
                    for back_to in [V1ALPHA2, V1BETA1] {
                        prop_assert_eq!(
                            convert_object(there.clone(), back_to),
                            convert_object_reference(there.clone(), back_to)
                        );
                        same_as_text_path(&there, back_to)?;
                    }
                }
            }
        }
    }

    #[test]
    fn only_annotations_change_in_metadata(original in generated("v1beta1")) {
        let there = convert_object(original.clone(), V1ALPHA2).unwrap_or_default();
        let mut m1 = original["metadata"].clone();
        let mut m2 = there["metadata"].clone();
        if let Some(m) = m1.as_object_mut() { m.remove("annotations"); }
        if let Some(m) = m2.as_object_mut() { m.remove("annotations"); }
        prop_assert_eq!(m1, m2);
    }
}

#[test]
fn every_upstream_example_round_trips_exactly() {
    let Some(clusters) = support::upstream_clusters("every_upstream_example_round_trips") else {
        return;
    };
    for (file, doc) in clusters {
        // As stored: after the defaulting webhook.
        let (defaulted, _) = nats_operator::api::admission::default_object(&doc, None);
        let original = canonical(&defaulted);
        let (there, back) = round_trip(&original, V1BETA1);
        assert_eq!(back, original, "{file}");
        // Nothing a Go-operator manifest says is lost in v1beta1: no residual needed.
        assert!(
            there["metadata"]["annotations"]
                .get(ALPHA_RESIDUAL_ANNOTATION)
                .is_none(),
            "{file}: {there}"
        );
        let up = serde_json::from_value::<v1beta1::NatsCluster>(there).map(|_| ());
        assert!(up.is_ok(), "{file}: {up:?}");
    }
}

#[test]
fn field_mapping_is_the_documented_one() {
    let alpha = object(
        V1ALPHA2,
        json!({
            "size": 3, "version": "2.10.1", "serverImage": "synadia/nats-server",
            "natsConfig": {"debug": true, "write_deadline": "5s", "disableLogtime": true},
            "useServerName": true, "lameDuckDurationSeconds": 30, "noAdvertise": true,
            "tls": {"serverSecret": "s", "serverSecretCAFileName": "ca.crt", "routesSecret": "r",
                     "gatewaySecret": "g", "enableHttps": true, "clientsTLSTimeout": 5.0, "verify": true},
            "auth": {"tlsVerifyAndMap": true, "clusterAuthSecret": "ra", "enableServiceAccounts": true},
            "pod": {"enableConfigReload": true, "reloaderImage": "r", "disableGatewaysHostPort": true,
                    "enableClientsHostPort": true, "antiAffinity": true, "natsEnv": [{"name": "A", "value": "1"}]},
            "gatewayConfig": {"name": "gw", "hostPort": 7522, "gateways": [{"name": "b", "url": "nats://b:7522"}]},
            "operatorConfig": {"secret": "op", "resolver": "MEMORY"},
            "template": {"spec": {"serviceAccountName": "x"}},
            "servicePolicy": {"labels": {"a": "b"}},
        }),
        None,
        None,
    );
    let beta = convert_object(alpha, V1BETA1).unwrap_or_default();
    let s = &beta["spec"];
    assert_eq!(s["image"], "synadia/nats-server");
    assert_eq!(s["config"]["writeDeadline"], "5s");
    assert_eq!(s["config"]["logtime"], false);
    assert_eq!(s["config"]["serverName"], "FromEnv");
    assert_eq!(s["config"]["lameDuckDuration"], "30s");
    assert_eq!(s["config"]["noAdvertise"], true);
    assert_eq!(s["tls"]["client"]["secret"], "s");
    assert_eq!(s["tls"]["client"]["caFile"], "ca.crt");
    assert_eq!(s["tls"]["client"]["verifyAndMap"], true);
    assert_eq!(s["tls"]["client"]["timeout"], 5.0);
    assert_eq!(s["tls"]["routes"]["secret"], "r");
    assert_eq!(s["tls"]["gateway"]["secret"], "g");
    assert_eq!(s["tls"]["httpsMonitoring"], true);
    assert_eq!(s["auth"]["routes"]["secret"], "ra");
    assert_eq!(s["auth"]["clients"]["serviceAccounts"], true);
    assert_eq!(s["auth"]["jwt"]["operatorSecret"], "op");
    assert_eq!(s["pod"]["configReloader"]["enabled"], true);
    assert_eq!(s["pod"]["configReloader"]["image"], "r");
    assert_eq!(s["pod"]["hostPorts"]["gateway"], false);
    assert_eq!(s["pod"]["hostPorts"]["client"], true);
    assert_eq!(s["pod"]["antiAffinity"], "Required");
    assert_eq!(s["pod"]["env"][0]["name"], "A");
    assert_eq!(s["pod"]["template"]["spec"]["serviceAccountName"], "x");
    assert_eq!(s["gateway"]["port"], 7522);
    assert_eq!(s["gateway"]["remotes"][0]["url"], "nats://b:7522");
    assert_eq!(s["services"]["client"]["labels"]["a"], "b");
}

#[test]
fn v1beta1_only_fields_survive_in_an_annotation_and_user_edits_win() {
    let beta = canonical(&object(
        V1BETA1,
        json!({"size": 3, "pod": {"antiAffinity": "Preferred", "priorityClassName": "high"},
               "jetstream": {"fileStorage": {"size": "10Gi"}}}),
        None,
        None,
    ));
    let alpha = convert_object(beta.clone(), V1ALPHA2).unwrap_or_default();
    let residual = alpha["metadata"]["annotations"][BETA_RESIDUAL_ANNOTATION]
        .as_str()
        .unwrap_or_default();
    assert!(
        residual.contains("jetstream") && residual.contains("Preferred"),
        "{residual}"
    );
    assert_eq!(
        convert_object(alpha.clone(), V1BETA1).unwrap_or_default(),
        beta
    );

    // A user scales and switches to required anti-affinity through v1alpha2.
    let mut edited = alpha;
    edited["spec"]["size"] = json!(5);
    edited["spec"]["pod"] = json!({"antiAffinity": true});
    let up = convert_object(edited, V1BETA1).unwrap_or_default();
    assert_eq!(up["spec"]["size"], 5);
    assert_eq!(
        up["spec"]["pod"]["antiAffinity"], "Required",
        "the user's edit wins"
    );
    assert_eq!(
        up["spec"]["pod"]["priorityClassName"], "high",
        "v1beta1-only fields are kept"
    );
    assert_eq!(up["spec"]["jetstream"]["fileStorage"]["size"], "10Gi");
}

#[test]
fn conversion_errors_are_clear_and_do_not_panic() {
    let bad = json!({"apiVersion": V1ALPHA2, "kind": "NatsCluster", "metadata": {"name": "x"}, "spec": {"size": "three"}});
    let err = convert_object(bad, V1BETA1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("cannot decode NatsCluster nats.io/v1alpha2") && err.contains("spec"),
        "{err}"
    );
    let err = convert_object(json!({"apiVersion": "v1", "kind": "Pod"}), V1BETA1).err();
    assert!(err.is_some());
    let err = convert_object(
        json!({"apiVersion": V1ALPHA2, "kind": "NatsCluster"}),
        "nats.io/v2",
    )
    .err();
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("nats.io/v2")
    );
}

#[test]
fn service_roles_only_change_api_version() {
    let role = json!({"apiVersion": V1ALPHA2, "kind": "NatsServiceRole", "metadata": {"name": "u"},
                      "spec": {"permissions": {"publish": [">"]}}});
    let up = convert_object(role.clone(), V1BETA1).unwrap_or_default();
    assert_eq!(up["apiVersion"], V1BETA1);
    assert_eq!(up["spec"], role["spec"]);
}
