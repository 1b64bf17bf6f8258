//! In-process admission tests on real-shaped AdmissionReview bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::http::StatusCode;
use base64::Engine as _;
use common::*;
use nats_operator_webhook::{AdmissionRequest, Validator, Verdict, WebhookState, router};
use serde_json::{Value, json};

const CREATE_UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";
const UPDATE_UID: &str = "b6d3c2a1-0f9e-4d8c-b7a6-5e4d3c2b1a09";

#[tokio::test]
async fn validate_allow_exact_bytes() {
    let r = test_router();
    let a = post(
        &r,
        "/validate?timeout=10s",
        fixture("admission-create.json"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        a.text(),
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"{CREATE_UID}","allowed":true}}}}"#
        )
    );
}

#[tokio::test]
async fn validate_allow_with_warnings_trimmed() {
    let r = test_router();
    let mut review = fixture_json("admission-create.json");
    review["request"]["object"]["spec"]["size"] = json!(7);
    let a = post(&r, "/validate", review.to_string()).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    let resp = &v["response"];
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["uid"], CREATE_UID);
    assert!(resp.get("status").is_none());
    assert!(resp.get("patch").is_none() && resp.get("patchType").is_none());
    let warnings = resp["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    let w = warnings[0].as_str().unwrap();
    assert!(w.chars().count() < 120, "{w}");
    assert!(w.starts_with("spec.size 7 is larger than recommended (5); xxx"));
    assert!(w.ends_with('…'));
}

#[tokio::test]
async fn validate_deny_with_causes_exact_json() {
    let r = test_router();
    let a = post(
        &r,
        "/validate?timeout=10s",
        fixture("admission-update.json"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json(),
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": UPDATE_UID,
                "allowed": false,
                "status": {
                    "status": "Failure",
                    "message": "NatsCluster \"example\" is invalid: spec.size: Invalid value: 4: must be odd",
                    "reason": "Invalid",
                    "details": {
                        "name": "example",
                        "group": "nats.io",
                        "kind": "NatsCluster",
                        "causes": [
                            {"field": "spec.size", "message": "Invalid value: 4: must be odd", "reason": "FieldValueInvalid"}
                        ]
                    },
                    "code": 422
                },
                "warnings": ["nats.io/v1alpha2 NatsCluster is deprecated"]
            }
        })
    );
}

#[tokio::test]
async fn validate_deny_several_causes_message() {
    let r = test_router();
    let mut review = fixture_json("admission-update.json");
    review["request"]["object"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("version");
    let v = post(&r, "/validate", review.to_string()).await.json();
    assert_eq!(
        v["response"]["status"]["message"],
        "NatsCluster \"example\" is invalid: spec.size: Invalid value: 4: must be odd, spec.version: Required value"
    );
    assert_eq!(
        v["response"]["status"]["details"]["causes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn validate_generate_name_uses_generate_name() {
    let r = test_router();
    let mut review = fixture_json("admission-update.json");
    review["request"]["name"] = json!("");
    let meta = review["request"]["object"]["metadata"]
        .as_object_mut()
        .unwrap();
    meta.remove("name");
    meta.insert("generateName".into(), json!("example-"));
    let v = post(&r, "/validate", review.to_string()).await.json();
    assert_eq!(v["response"]["status"]["details"]["name"], "example-");
}

#[tokio::test]
async fn validate_other_kind_is_passed_to_the_validator() {
    let r = test_router();
    let mut review = fixture_json("admission-create.json");
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let v = post(&r, "/validate", review.to_string()).await.json();
    assert_eq!(
        v["response"],
        json!({
            "uid": CREATE_UID,
            "allowed": false,
            "status": {"status": "Failure", "message": "unsupported kind \"ConfigMap\"", "reason": "Forbidden", "code": 403}
        })
    );
}

#[tokio::test]
async fn validate_delete_reads_old_object() {
    let r = test_router();
    let v = post(&r, "/validate", fixture("admission-delete.json"))
        .await
        .json();
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["uid"], "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b");
}

/// A validating response never carries a patch, whatever the domain returns.
#[tokio::test]
async fn validate_never_returns_patch() {
    let r = test_router();
    for f in [
        "admission-create.json",
        "admission-update.json",
        "admission-delete.json",
    ] {
        let a = post(&r, "/validate", fixture(f)).await;
        let text = a.text();
        assert!(!text.contains("patch"), "{f}: {text}");
    }
}

fn decode_patch(resp: &Value) -> json_patch::Patch {
    assert_eq!(resp["patchType"], "JSONPatch");
    let b64 = resp["patch"]
        .as_str()
        .expect("patch must be a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("valid standard base64");
    serde_json::from_slice(&bytes).expect("patch is a JSON Patch document")
}

#[tokio::test]
async fn mutate_patch_is_base64_and_applies() {
    let r = test_router();
    let review = fixture_json("admission-create.json");
    let a = post(&r, "/mutate?timeout=10s", review.to_string()).await;
    assert_eq!(a.status, StatusCode::OK);
    let text = a.text();
    // Exact wire form: a base64 string, never kube-rs#1781's array of numbers.
    assert!(
        text.contains(r#""patchType":"JSONPatch","patch":""#),
        "{text}"
    );
    assert!(!text.contains(r#""patch":["#));
    let v = a.json();
    let resp = &v["response"];
    assert_eq!(resp["uid"], CREATE_UID);
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["warnings"], json!(["defaulted spec.size to 3"]));

    let patch = decode_patch(resp);
    let mut obj = review["request"]["object"].clone();
    json_patch::patch(&mut obj, &patch).expect("patch applies to the request object");
    let expected = test_mutator(&serde_json::from_value(review["request"].clone()).unwrap());
    let nats_operator_webhook::Mutation::Patched { object, .. } = expected else {
        panic!("expected a patch")
    };
    assert_eq!(obj, object);
    assert_eq!(obj["spec"]["size"], 3);
    assert_eq!(
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "nats-operator"
    );
}

#[tokio::test]
async fn mutate_update_patch_applies() {
    let r = test_router();
    let review = fixture_json("admission-update.json");
    let v = post(&r, "/mutate", review.to_string()).await.json();
    let patch = decode_patch(&v["response"]);
    // Only the label is added: the label map exists, so a single add op.
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1managed-by", "value": "nats-operator"}])
    );
    let mut obj = review["request"]["object"].clone();
    json_patch::patch(&mut obj, &patch).unwrap();
    assert_eq!(
        obj["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "nats-operator"
    );
}

#[tokio::test]
async fn mutate_empty_patch_is_omitted_exact_bytes() {
    let r = test_router();
    let review = with_name(fixture_json("admission-create.json"), "noop");
    let a = post(&r, "/mutate", review.to_string()).await;
    assert_eq!(
        a.text(),
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"{CREATE_UID}","allowed":true}}}}"#
        )
    );
}

#[tokio::test]
async fn mutate_delete_gets_no_patch_and_mutator_not_called() {
    // "panic" would blow up the mutator if it were called.
    let r = test_router();
    let review = with_name(fixture_json("admission-delete.json"), "panic");
    let a = post(&r, "/mutate", review.to_string()).await;
    assert_eq!(
        a.text(),
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b","allowed":true}}"#
    );
}

#[tokio::test]
async fn mutate_connect_drops_patch() {
    let r = test_router();
    let mut review = fixture_json("admission-create.json");
    review["request"]["operation"] = json!("CONNECT");
    let v = post(&r, "/mutate", review.to_string()).await.json();
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("patch").is_none());
    assert!(v["response"].get("patchType").is_none());
}

#[tokio::test]
async fn mutate_deny() {
    let r = test_router();
    let review = with_name(fixture_json("admission-create.json"), "deny");
    let v = post(&r, "/mutate", review.to_string()).await.json();
    assert_eq!(
        v["response"],
        json!({"uid": CREATE_UID, "allowed": false,
               "status": {"status": "Failure", "message": "mutation refused", "reason": "Forbidden", "code": 403}})
    );
}

#[tokio::test]
async fn domain_panic_becomes_internal_error_denial() {
    let r = test_router();
    for path in ["/validate", "/mutate"] {
        let review = with_name(fixture_json("admission-create.json"), "panic");
        let a = post(&r, path, review.to_string()).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.json()["response"],
            json!({"uid": CREATE_UID, "allowed": false,
                   "status": {"status": "Failure", "message": "internal error", "reason": "InternalError", "code": 500}})
        );
        assert_still_serving(&r).await;
    }
}

#[tokio::test]
async fn deadline_from_query_is_enforced() {
    let r = test_router();
    // Reviews over 64 KiB run on the blocking pool under the deadline (smaller ones are
    // decided inline: their domain call takes microseconds).
    let mut review = with_name(fixture_json("admission-create.json"), "slow");
    review["request"]["object"]["metadata"]["annotations"]["padding"] =
        json!("x".repeat(70 * 1024));
    let started = std::time::Instant::now();
    // 80% of 250ms = 200ms, the validator sleeps 600ms.
    let a = post(&r, "/validate?timeout=250ms", review.to_string()).await;
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_millis(550), "{took:?}");
    let v = a.json();
    assert_eq!(v["response"]["uid"], CREATE_UID);
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 500);
    assert_eq!(
        v["response"]["status"]["message"],
        "internal error: webhook did not finish within its deadline of 200 ms"
    );
    // With a generous timeout the same request succeeds.
    let v = post(&r, "/validate?timeout=10s", review.to_string())
        .await
        .json();
    assert_eq!(v["response"]["allowed"], true);
}

#[tokio::test]
async fn health_and_readiness() {
    let state = builder().build();
    let ready = state.readiness();
    let r = router(state);
    assert_eq!(
        call(&r, "GET", "/healthz", None, "").await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&r, "GET", "/readyz", None, "").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    ready.set_ready(true);
    assert_eq!(
        call(&r, "GET", "/readyz", None, "").await.status,
        StatusCode::OK
    );
}

#[test]
fn request_view_deserializes_fixture() {
    let review = fixture_json("admission-update.json");
    let req: nats_operator_webhook::AdmissionRequest =
        serde_json::from_value(review["request"].clone()).unwrap();
    assert_eq!(req.operation, nats_operator_webhook::Operation::Update);
    assert_eq!(
        req.user_info.username,
        "system:serviceaccount:nats:deployer"
    );
    assert_eq!(req.user_info.groups.len(), 3);
    assert_eq!(req.request_kind.unwrap().version, "v1beta1");
    assert_eq!(req.resource.resource, "natsclusters");
    assert!(req.old_object.is_some() && req.object.is_some());
    assert!(!req.dry_run);
    assert_eq!(req.options.unwrap()["kind"], "UpdateOptions");
}

/// Denies every request from a "stale view"; its second look knows better for
/// "fixed", never finishes for "stuck" and panics for "burst".
struct StaleView;

impl Validator for StaleView {
    fn validate(&self, _req: &AdmissionRequest) -> Verdict {
        Verdict::forbidden("the cache says no")
    }

    fn reconsider<'a>(
        &'a self,
        req: &'a nats_operator_webhook::AdmissionRequest,
        denied: Verdict,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            match req.display_name() {
                "fixed" => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Verdict::allow_with_warnings(vec!["looked again".into()])
                }
                "stuck" => {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    Verdict::allow()
                }
                "burst" => panic!("second look exploded"),
                _ => denied,
            }
        })
    }
}

#[tokio::test]
async fn a_denial_gets_a_second_look_within_the_deadline() {
    let r = router(WebhookState::builder(StaleView, test_mutator, test_converter).build());
    let ask = |name: &'static str| {
        let r = r.clone();
        async move {
            let review = with_name(fixture_json("admission-create.json"), name);
            let started = std::time::Instant::now();
            let a = post(&r, "/validate?timeout=500ms", review.to_string()).await;
            (a.json()["response"].clone(), started.elapsed())
        }
    };
    let (fixed, _) = ask("fixed").await;
    assert_eq!(fixed["allowed"], true, "{fixed}");
    assert_eq!(fixed["warnings"], json!(["looked again"]));
    let (other, _) = ask("other").await;
    assert_eq!(other["allowed"], false);
    assert_eq!(other["status"]["message"], "the cache says no");
    // 80% of 500 ms: the denial stands at the deadline, not after the 30 s look.
    let (stuck, took) = ask("stuck").await;
    assert_eq!(stuck["allowed"], false);
    assert_eq!(stuck["status"]["message"], "the cache says no");
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    let (burst, _) = ask("burst").await;
    assert_eq!(burst["allowed"], false);
    assert_eq!(burst["status"]["message"], "the cache says no");
    // The panic cost nothing but that answer.
    let (again, _) = ask("fixed").await;
    assert_eq!(again["allowed"], true, "{again}");
}

/// Admits everything from its view, and asks for a second look at "look", where the
/// world says no.
struct Optimist;

impl Validator for Optimist {
    fn validate(&self, _req: &AdmissionRequest) -> Verdict {
        Verdict::allow()
    }

    fn wants_second_look(&self, req: &AdmissionRequest, _verdict: &Verdict) -> bool {
        req.display_name() == "look"
    }

    fn reconsider<'a>(
        &'a self,
        _req: &'a AdmissionRequest,
        _first: Verdict,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Verdict> + Send + 'a>> {
        Box::pin(std::future::ready(Verdict::forbidden("the world says no")))
    }
}

#[tokio::test]
async fn an_admission_can_get_a_second_look_when_the_validator_asks() {
    let r = router(WebhookState::builder(Optimist, test_mutator, test_converter).build());
    for (name, allowed) in [("look", false), ("other", true)] {
        let review = with_name(fixture_json("admission-create.json"), name);
        let a = post(&r, "/validate?timeout=10s", review.to_string()).await;
        assert_eq!(
            a.json()["response"]["allowed"],
            allowed,
            "{name}: {}",
            a.text()
        );
    }
}
