//! Shared test domain and helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use nats_operator_webhook::{
    AdmissionRequest, Cause, Mutation, Verdict, WebhookState, WebhookStateBuilder, router,
};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Reads `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Fixture as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// A small NatsCluster-like domain: size must be odd, size > 5 warns, a few magic names.
pub fn test_validator(req: &AdmissionRequest) -> Verdict {
    if req.kind.kind != "NatsCluster" {
        return Verdict::forbidden(format!("unsupported kind {:?}", req.kind.kind));
    }
    let obj = match req.object.as_ref().or(req.old_object.as_ref()) {
        Some(o) => o,
        None => return Verdict::bad_request("no object"),
    };
    match req.display_name() {
        "panic" => panic!("validator exploded"),
        "slow" => std::thread::sleep(Duration::from_millis(600)),
        _ => {}
    }
    if req.operation == nats_operator_webhook::Operation::Delete {
        return Verdict::allow();
    }
    let size = obj["spec"]["size"].as_i64().unwrap_or(3);
    let mut causes = Vec::new();
    if size % 2 == 0 {
        causes.push(Cause::invalid(
            "spec.size",
            format!("Invalid value: {size}: must be odd"),
        ));
    }
    if obj["spec"]["version"].as_str().is_none() {
        causes.push(Cause::required("spec.version", "Required value"));
    }
    if !causes.is_empty() {
        return Verdict::Invalid {
            causes,
            warnings: vec!["nats.io/v1alpha2 NatsCluster is deprecated".into()],
        };
    }
    let mut warnings = Vec::new();
    if size > 5 {
        warnings.push(format!(
            "spec.size {size} is larger than recommended (5); {}",
            "x".repeat(200)
        ));
    }
    Verdict::Allow { warnings }
}

/// Defaults spec.size to 3 and adds a label; names "noop"/"deny"/"panic" are special.
pub fn test_mutator(req: &AdmissionRequest) -> Mutation {
    let Some(mut obj) = req.object.clone() else {
        return Verdict::bad_request("no object").into();
    };
    match req.display_name() {
        "deny" => return Verdict::forbidden("mutation refused").into(),
        "panic" => panic!("mutator exploded"),
        "noop" => {
            return Mutation::Patched {
                object: obj,
                warnings: vec![],
            };
        }
        _ => {}
    }
    let mut warnings = Vec::new();
    if obj["spec"].get("size").is_none() {
        obj["spec"]["size"] = json!(3);
        warnings.push("defaulted spec.size to 3".to_owned());
    }
    obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("nats-operator");
    Mutation::Patched {
        object: obj,
        warnings,
    }
}

/// v1alpha2 → v1beta1 renames spec.size to spec.replicas; it also tries (and must fail)
/// to change name/uid/resourceVersion, and adds a label (which must stick).
pub fn test_converter(mut obj: Value, desired: &str) -> Result<Value, String> {
    if obj["metadata"]["name"] == "broken" {
        return Err("spec.size must be a number".to_owned());
    }
    if obj["metadata"]["name"] == "panic" {
        panic!("converter exploded");
    }
    if desired == "nats.io/v1beta1" {
        if let Some(spec) = obj["spec"].as_object_mut()
            && let Some(size) = spec.remove("size")
        {
            spec.insert("replicas".into(), size);
        }
    } else if let Some(spec) = obj["spec"].as_object_mut()
        && let Some(r) = spec.remove("replicas")
    {
        spec.insert("size".into(), r);
    }
    obj["metadata"]["name"] = json!("tampered");
    obj["metadata"]["uid"] = json!("tampered");
    obj["metadata"]["resourceVersion"] = json!("0");
    obj["metadata"]["labels"]["converted"] = json!("true");
    obj["kind"] = json!("Tampered");
    Ok(obj)
}

/// Builder with the test domain.
pub fn builder() -> WebhookStateBuilder {
    WebhookState::builder(test_validator, test_mutator, test_converter)
}

/// Router with the test domain and default limits.
pub fn test_router() -> Router {
    router(builder().build())
}

/// A finished response.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One in-process request through the router.
pub async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    let res = router
        .clone()
        .oneshot(b.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body,
    }
}

/// `POST` JSON.
pub async fn post(router: &Router, uri: &str, body: impl Into<Body>) -> Answer {
    call(router, "POST", uri, Some("application/json"), body).await
}

/// Replaces the request's object name (and request.name).
pub fn with_name(mut review: Value, name: &str) -> Value {
    review["request"]["name"] = json!(name);
    if review["request"]["object"].is_object() {
        review["request"]["object"]["metadata"]["name"] = json!(name);
    }
    if review["request"]["oldObject"].is_object() {
        review["request"]["oldObject"]["metadata"]["name"] = json!(name);
    }
    review
}

/// Asserts that the router still answers a good validate request correctly.
pub async fn assert_still_serving(router: &Router) {
    let a = post(
        router,
        "/validate?timeout=10s",
        fixture("admission-create.json"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(v["response"]["allowed"], true);
}
