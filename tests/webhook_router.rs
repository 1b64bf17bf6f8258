//! The real NatsCluster domain behind the real router, in process: recorded,
//! real-shaped reviews in, exact wire answers out.

use axum::body::Body;
use base64::Engine;
use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

fn review(operation: &str, version: &str, object: Value, old: Option<Value>) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "nats.io", "version": version, "kind": "NatsCluster"},
            "resource": {"group": "nats.io", "version": version, "resource": "natsclusters"},
            "requestKind": {"group": "nats.io", "version": version, "kind": "NatsCluster"},
            "requestResource": {"group": "nats.io", "version": version, "resource": "natsclusters"},
            "name": object["metadata"]["name"].clone(),
            "namespace": "nats",
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply"}
        }
    })
}

fn cluster(version: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("nats.io/{version}"), "kind": "NatsCluster",
           "metadata": {"name": "example", "namespace": "nats", "uid": "3e7c1a2b", "generation": 1}, "spec": spec})
}

async fn post(path: &str, body: &Value) -> (StatusCode, Value) {
    let app = nats_operator_webhook::router(nats_operator::webhooks::state());
    let req = Request::builder()
        .method("POST")
        .uri(format!("{path}?timeout=10s"))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .unwrap_or_default();
    let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn denial_is_a_native_invalid_status_with_causes() {
    let (status, body) = post(
        "/validate",
        &review(
            "CREATE",
            "v1alpha2",
            cluster(
                "v1alpha2",
                json!({"size": -1, "tls": {"gatewaySecret": "g"}}),
            ),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let r = &body["response"];
    assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(r["allowed"], false);
    assert!(r.get("patch").is_none());
    assert_eq!(r["status"]["code"], 422);
    assert_eq!(r["status"]["reason"], "Invalid");
    assert_eq!(r["status"]["details"]["kind"], "NatsCluster");
    assert_eq!(r["status"]["details"]["name"], "example");
    let causes = r["status"]["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        causes[0],
        json!({"field": "spec.size", "message": "Invalid value: -1: must be greater than or equal to 0", "reason": "FieldValueInvalid"})
    );
    assert_eq!(causes[1]["field"], "spec.tls.gatewaySecret");
}

#[tokio::test]
async fn allow_carries_warnings_and_never_a_patch() {
    let (_, body) = post(
        "/validate",
        &review(
            "CREATE",
            "v1alpha2",
            cluster("v1alpha2", json!({"size": 1, "version": "1.4.1"})),
            None,
        ),
    )
    .await;
    assert_eq!(body["response"]["allowed"], true);
    assert!(body["response"].get("patch").is_none() && body["response"].get("patchType").is_none());
    let warnings = body["response"]["warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap_or_default().contains("end-of-life")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .all(|w| w.as_str().unwrap_or_default().chars().count() < 120)
    );
}

#[tokio::test]
async fn mutate_patch_is_base64_and_applies_to_the_defaulted_object() {
    let object = cluster(
        "v1alpha2",
        json!({"size": 3, "tls": {"serverSecret": "s"}, "natsConfig": {"writeDeadline": "5s"}}),
    );
    let (_, body) = post(
        "/mutate",
        &review("CREATE", "v1alpha2", object.clone(), None),
    )
    .await;
    let r = &body["response"];
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let b64 = r["patch"]
        .as_str()
        .unwrap_or_else(|| panic!("patch must be a base64 string: {r}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{e}"));
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap_or_else(|e| panic!("{e}"));
    let (expected, _) = nats_operator::api::admission::default_object(&object, None);
    assert_eq!(patched, expected);
    assert_eq!(patched["spec"]["version"], "2.15.3");
    assert_eq!(patched["spec"]["natsConfig"]["write_deadline"], "5s");
    // Already defaulted: no patch at all.
    let (_, body) = post(
        "/mutate",
        &review("UPDATE", "v1alpha2", expected.clone(), Some(expected)),
    )
    .await;
    assert!(body["response"].get("patch").is_none(), "{body}");
}

#[tokio::test]
async fn conversion_of_mixed_versions_keeps_order_and_metadata() {
    let objects: Vec<Value> = vec![
        cluster("v1alpha2", json!({"size": 1, "serverImage": "nats"})),
        cluster(
            "v1beta1",
            json!({"size": 2, "image": "nats", "jetstream": {}}),
        ),
        cluster(
            "v1alpha2",
            json!({"size": 3, "gatewayConfig": {"name": "a", "hostPort": 7522}}),
        ),
    ];
    let body = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c1", "desiredAPIVersion": "nats.io/v1alpha2", "objects": objects}});
    let (status, resp) = post("/convert", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["response"]["uid"], "c1");
    assert_eq!(resp["response"]["result"]["status"], "Success");
    let converted = resp["response"]["convertedObjects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(converted.len(), 3);
    for (i, o) in converted.iter().enumerate() {
        assert_eq!(o["apiVersion"], "nats.io/v1alpha2");
        assert_eq!(o["spec"]["size"], i + 1);
        assert_eq!(o["metadata"]["uid"], "3e7c1a2b");
    }
    assert!(converted[1]["metadata"]["annotations"]["nats.io/v1beta1-residual"].is_string());

    let bad = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c2", "desiredAPIVersion": "nats.io/v1beta1", "objects": [cluster("v1alpha2", json!({"size": "x"}))]}});
    let (status, resp) = post("/convert", &bad).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["response"]["result"]["status"], "Failure");
    assert!(
        resp["response"]["result"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nats/example"),
        "{resp}"
    );
}
