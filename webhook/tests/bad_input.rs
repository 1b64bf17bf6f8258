//! Bad input never hurts the server: every case gets a clear answer, and the next good
//! request is still served.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

async fn expect_json_error(a: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
    let v = a.json();
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {v}"));
    assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
}

#[tokio::test]
async fn malformed_json() {
    let r = test_router();
    for path in ["/validate", "/mutate", "/convert"] {
        let a = post(&r, path, "{not json").await;
        expect_json_error(&a, StatusCode::BAD_REQUEST, "malformed").await;
        assert_still_serving(&r).await;
    }
}

#[tokio::test]
async fn empty_body() {
    let r = test_router();
    let a = post(&r, "/validate", "").await;
    expect_json_error(&a, StatusCode::BAD_REQUEST, "malformed AdmissionReview").await;
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn review_without_request() {
    let r = test_router();
    let a = post(
        &r,
        "/validate",
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    )
    .await;
    expect_json_error(&a, StatusCode::BAD_REQUEST, "has no request").await;
    let a = post(
        &r,
        "/convert",
        r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview"}"#,
    )
    .await;
    expect_json_error(&a, StatusCode::BAD_REQUEST, "has no request").await;
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn wrong_envelope() {
    let r = test_router();
    // A ConversionReview sent to /validate, and the other way round.
    let a = post(&r, "/validate", fixture("conversion-mixed.json")).await;
    expect_json_error(
        &a,
        StatusCode::BAD_REQUEST,
        "expected admission.k8s.io/v1 AdmissionReview",
    )
    .await;
    let a = post(&r, "/convert", fixture("admission-create.json")).await;
    expect_json_error(
        &a,
        StatusCode::BAD_REQUEST,
        "expected apiextensions.k8s.io/v1 ConversionReview",
    )
    .await;
    let mut v1beta1 = fixture_json("admission-create.json");
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let a = post(&r, "/mutate", v1beta1.to_string()).await;
    expect_json_error(&a, StatusCode::BAD_REQUEST, "admission.k8s.io/v1beta1").await;
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn wrong_or_missing_content_type() {
    let r = test_router();
    let body = fixture("admission-create.json");
    let a = call(&r, "POST", "/validate", Some("text/plain"), body.clone()).await;
    expect_json_error(&a, StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json").await;
    let a = call(&r, "POST", "/mutate", None, body.clone()).await;
    expect_json_error(
        &a,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "missing content-type",
    )
    .await;
    // parameters and case are fine
    let a = call(
        &r,
        "POST",
        "/validate",
        Some("Application/JSON; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn readable_uid_gets_well_formed_denial() {
    let r = test_router();
    let mut review = fixture_json("admission-create.json");
    review["request"]["operation"] = json!("EXPLODE");
    let a = post(&r, "/validate", review.to_string()).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 400);
    assert_eq!(v["response"]["status"]["reason"], "BadRequest");
    let msg = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("malformed AdmissionReview: unknown variant `EXPLODE`"),
        "{msg}"
    );
    assert!(v["response"].get("patch").is_none());

    // Same for conversion: objects is not a list → Failure with the uid.
    let mut conv = fixture_json("conversion-mixed.json");
    conv["request"]["objects"] = json!("nope");
    let a = post(&r, "/convert", conv.to_string()).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["response"]["uid"], "0000a2b4-1c3d-4e5f-8a7b-9c0d1e2f3a4b");
    assert_eq!(v["response"]["result"]["status"], "Failure");
    assert_eq!(v["response"]["convertedObjects"], json!([]));
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn mutate_create_without_object_is_denied() {
    let r = test_router();
    let mut review = fixture_json("admission-create.json");
    review["request"]["object"] = serde_json::Value::Null;
    let v = post(&r, "/mutate", review.to_string()).await.json();
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(
        v["response"]["status"]["message"],
        "request.object is missing"
    );
}

#[tokio::test]
async fn body_over_limit_is_413_json() {
    let state = builder()
        .admission_body_limit(4 * 1024)
        .conversion_body_limit(8 * 1024)
        .build();
    let r = nats_operator_webhook::router(state);
    let mut review = fixture_json("admission-create.json");
    review["request"]["object"]["spec"]["padding"] = json!("x".repeat(10 * 1024));
    let a = post(&r, "/validate", review.to_string()).await;
    expect_json_error(
        &a,
        StatusCode::PAYLOAD_TOO_LARGE,
        "exceeds the limit of 4096 bytes",
    )
    .await;

    // Without Content-Length (streamed body) the limit still holds.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..20).map(|_| Ok("y".repeat(1024))).collect();
    let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
    let a = post(&r, "/mutate", body).await;
    expect_json_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "exceeds the limit").await;

    let mut conv = fixture_json("conversion-mixed.json");
    conv["request"]["objects"][0]["spec"]["padding"] = json!("x".repeat(9 * 1024));
    let a = post(&r, "/convert", conv.to_string()).await;
    expect_json_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "8192 bytes").await;

    // A small conversion still works under the conversion limit.
    let v = post(&r, "/convert", fixture("conversion-mixed.json"))
        .await
        .json();
    assert_eq!(v["response"]["result"]["status"], "Success");
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn unknown_path_and_method() {
    let r = test_router();
    let a = post(&r, "/nope", "{}").await;
    expect_json_error(&a, StatusCode::NOT_FOUND, "not found").await;
    let a = call(&r, "GET", "/validate", None, "").await;
    expect_json_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method not allowed").await;
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn bad_timeout_query_is_ignored() {
    let r = test_router();
    let a = post(
        &r,
        "/validate?timeout=banana",
        fixture("admission-create.json"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["response"]["allowed"], true);
}

#[tokio::test]
async fn deeply_nested_object_is_rejected_not_a_stack_overflow() {
    let r = test_router();
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = fixture("admission-create.json").replace(
        r#""spec": {
        "version": "2.10.22"
      }"#,
        &format!(r#""spec": {{"version": "2.10.22", "deep": {deep}}}"#),
    );
    assert!(body.len() > 200_000, "fixture shape changed");
    let a = post(&r, "/validate", body).await;
    // The uid is readable by the lenient second parse? No: that parse hits the same
    // recursion limit, so this is a plain 400.
    assert!(
        a.status == StatusCode::BAD_REQUEST || a.status == StatusCode::OK,
        "{}",
        a.text()
    );
    assert!(a.text().contains("recursion limit"), "{}", a.text());
    assert_still_serving(&r).await;
}

#[tokio::test]
async fn trickling_body_is_cut_off_at_the_deadline() {
    let r = test_router();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(1);
    tx.send(Ok("{\"apiVersion\":".to_owned())).await.unwrap();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = axum::body::Body::from_stream(stream);
    // 80% of 200ms; the sender never finishes the body.
    let a = post(&r, "/validate?timeout=200ms", body).await;
    expect_json_error(&a, StatusCode::REQUEST_TIMEOUT, "timed out reading").await;
    drop(tx);
    assert_still_serving(&r).await;
}
