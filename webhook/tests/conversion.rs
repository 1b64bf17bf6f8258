//! In-process conversion tests on a real-shaped ConversionReview.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

const UID: &str = "0000a2b4-1c3d-4e5f-8a7b-9c0d1e2f3a4b";

#[tokio::test]
async fn mixed_versions_keep_order_count_and_metadata() {
    let r = test_router();
    let review = fixture_json("conversion-mixed.json");
    let a = post(&r, "/convert?timeout=30s", review.to_string()).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
    let v = a.json();
    assert_eq!(v["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(v["kind"], "ConversionReview");
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["result"], json!({"status": "Success"}));

    let input = review["request"]["objects"].as_array().unwrap();
    let out = v["response"]["convertedObjects"].as_array().unwrap();
    assert_eq!(out.len(), input.len());
    for (i, o) in input.iter().zip(out) {
        assert_eq!(o["apiVersion"], "nats.io/v1beta1");
        assert_eq!(o["kind"], i["kind"], "kind unchanged");
        // every metadata field except labels/annotations comes from the original
        let (mi, mo) = (
            i["metadata"].as_object().unwrap(),
            o["metadata"].as_object().unwrap(),
        );
        for (k, val) in mi {
            if k != "labels" && k != "annotations" {
                assert_eq!(mo.get(k), Some(val), "metadata.{k}");
            }
        }
        for k in mo.keys() {
            assert!(
                mi.contains_key(k) || k == "labels" || k == "annotations",
                "extra metadata.{k}"
            );
        }
    }
    // object 0: converted; label added by the converter kept, annotations kept
    assert_eq!(
        out[0],
        json!({
            "apiVersion": "nats.io/v1beta1",
            "kind": "NatsCluster",
            "metadata": {
                "name": "alpha",
                "namespace": "nats",
                "uid": "11111111-1111-4111-8111-111111111111",
                "resourceVersion": "100",
                "generation": 3,
                "creationTimestamp": "2026-07-01T09:00:00Z",
                "labels": {"app": "nats", "converted": "true"},
                "annotations": {"note": "first"},
                "finalizers": ["natsclusters.nats.io/cleanup"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "22222222-2222-4222-8222-222222222222"}]
            },
            "spec": {"replicas": 3, "version": "2.10.22"}
        })
    );
    // object 1 was already at the desired version: returned unchanged
    assert_eq!(out[1], input[1]);
    // object 2: status preserved, spec renamed
    assert_eq!(out[2]["spec"], json!({"replicas": 1, "version": "2.9.25"}));
    assert_eq!(out[2]["status"], input[2]["status"]);
    assert_eq!(out[2]["metadata"]["name"], "gamma");
}

#[tokio::test]
async fn failure_names_the_object_and_sends_no_partial_list() {
    let r = test_router();
    let mut review = fixture_json("conversion-mixed.json");
    review["request"]["objects"][2]["metadata"]["name"] = json!("broken");
    let a = post(&r, "/convert", review.to_string()).await;
    assert_eq!(a.status, StatusCode::OK, "HTTP 200 even on failure");
    assert_eq!(
        a.json(),
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "response": {
                "uid": UID,
                "convertedObjects": [],
                "result": {"status": "Failure", "message": "NatsCluster nats/broken: spec.size must be a number"}
            }
        })
    );
}

#[tokio::test]
async fn converter_panic_is_a_failure_not_a_crash() {
    let r = test_router();
    let mut review = fixture_json("conversion-mixed.json");
    review["request"]["objects"][0]["metadata"]["name"] = json!("panic");
    let v = post(&r, "/convert", review.to_string()).await.json();
    assert_eq!(
        v["response"]["result"],
        json!({"status": "Failure", "message": "NatsCluster nats/panic: internal error"})
    );
    let ok = post(&r, "/convert", fixture("conversion-mixed.json"))
        .await
        .json();
    assert_eq!(ok["response"]["result"]["status"], "Success");
}

#[tokio::test]
async fn object_without_kind_fails() {
    let r = test_router();
    let mut review = fixture_json("conversion-mixed.json");
    review["request"]["objects"][1]
        .as_object_mut()
        .unwrap()
        .remove("kind");
    let v = post(&r, "/convert", review.to_string()).await.json();
    assert_eq!(
        v["response"]["result"],
        json!({"status": "Failure", "message": "object other/already-beta: missing kind"})
    );
}

/// A review of `n` copies of the fixture's first object, named by `name(i)`.
fn large_review(n: usize, name: impl Fn(usize) -> String) -> serde_json::Value {
    let mut review = fixture_json("conversion-mixed.json");
    let template = review["request"]["objects"][0].clone();
    let objects: Vec<_> = (0..n)
        .map(|i| {
            let mut o = template.clone();
            o["metadata"]["name"] = json!(name(i));
            o
        })
        .collect();
    review["request"]["objects"] = json!(objects);
    review
}

#[tokio::test]
async fn large_review_500_objects() {
    let r = test_router();
    let review = large_review(500, |i| format!("c{i}"));
    let v = post(&r, "/convert", review.to_string()).await.json();
    let out = v["response"]["convertedObjects"].as_array().unwrap();
    assert_eq!(out.len(), 500);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o["metadata"]["name"], format!("c{i}"));
        assert_eq!(o["apiVersion"], "nats.io/v1beta1");
    }
}

#[tokio::test]
async fn large_review_reports_its_first_failure() {
    // Large reviews are converted in parallel chunks; the failure reported is still the
    // first in the review, whichever chunk finishes first.
    let r = test_router();
    // (On 2 cores: #260 fails early in the second chunk, #240 late in the first.)
    let name = |i: usize| match i {
        240 => "broken".to_owned(),
        260 | 470 => "panic".to_owned(),
        _ => format!("c{i}"),
    };
    let v = post(&r, "/convert", large_review(500, name).to_string())
        .await
        .json();
    assert_eq!(
        v["response"]["result"],
        json!({"status": "Failure", "message": "NatsCluster nats/broken: spec.size must be a number"})
    );
    assert_eq!(v["response"]["convertedObjects"], json!([]));
    let late = |i: usize| {
        if i == 480 {
            "panic".to_owned()
        } else {
            format!("c{i}")
        }
    };
    let v = post(&r, "/convert", large_review(500, late).to_string())
        .await
        .json();
    assert_eq!(
        v["response"]["result"],
        json!({"status": "Failure", "message": "NatsCluster nats/panic: internal error"})
    );
}
