//! Kubernetes IO against kube's tower-test mock apiserver: the CA Secret's first-writer-wins
//! protocol and caBundle injection (exact requests, no write in steady state).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use http::{Method, Request, Response};
use kube::{Client, client::Body};
use nats_operator_certs::{
    CaBundleInjector, InjectionTargets, MemorySecretStore, SelfManaged, SelfManagedConfig,
    self_managed::KEY_CA_BUNDLE,
};
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

type MockHandle = Handle<Request<Body>, Response<Body>>;

fn mock() -> (Client, MockHandle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": reason, "code": code, "message": reason})
}

async fn next(handle: &mut MockHandle) -> (Method, String, Value, SendResponse<Response<Body>>) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("expected a request")
        .expect("client gone");
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method == Method::PATCH {
        assert_eq!(
            req.headers()["content-type"],
            "application/json-patch+json",
            "JSON patch content type"
        );
    }
    let bytes = req.into_body().collect_bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (method, path, body, send)
}

async fn assert_no_more_requests(handle: &mut MockHandle) {
    assert!(
        tokio::time::timeout(Duration::from_millis(200), handle.next_request())
            .await
            .is_err(),
        "unexpected extra request"
    );
}

const SECRET_PATH: &str = "/api/v1/namespaces/nats-system/secrets/webhook-ca";

fn config() -> SelfManagedConfig {
    SelfManagedConfig::new(vec!["nats-operator.nats-system.svc".into()])
}

/// A Secret as another replica would have written it.
async fn other_replicas_secret(rv: &str) -> (Value, Vec<u8>) {
    let store = MemorySecretStore::new();
    let other = SelfManaged::bootstrap(store.clone(), config())
        .await
        .unwrap();
    let data: serde_json::Map<String, Value> = store
        .snapshot()
        .unwrap()
        .data
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_value(k8s_openapi::ByteString(v)).unwrap()))
        .collect();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "webhook-ca", "namespace": "nats-system", "resourceVersion": rv},
        "type": "Opaque", "data": data});
    (secret, other.current_bundle())
}

#[tokio::test]
async fn create_loses_with_already_exists_then_adopts_winner() {
    let (client, mut handle) = mock();
    let (winner, winner_bundle) = other_replicas_secret("7").await;
    let apiserver = tokio::spawn(async move {
        let (m, p, _, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::GET, SECRET_PATH));
        respond(send, 404, &status(404, "NotFound"));

        let (m, p, body, send) = next(&mut handle).await;
        assert_eq!(
            (m, p.as_str()),
            (Method::POST, "/api/v1/namespaces/nats-system/secrets")
        );
        assert_eq!(body["metadata"]["name"], "webhook-ca");
        for key in ["ca.crt", "ca.key", "ca-bundle.crt"] {
            assert!(body["data"][key].is_string(), "{key} in create body");
        }
        respond(send, 409, &status(409, "AlreadyExists"));

        let (m, p, _, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::GET, SECRET_PATH));
        respond(send, 200, &winner);
        handle
    });
    let certs = SelfManaged::kube(client, "nats-system", "webhook-ca", config())
        .await
        .unwrap();
    let mut handle = apiserver.await.unwrap();
    assert_eq!(certs.current_bundle(), winner_bundle);
    assert_no_more_requests(&mut handle).await;
}

#[tokio::test]
async fn create_wins_and_uses_own_ca() {
    let (client, mut handle) = mock();
    let apiserver = tokio::spawn(async move {
        let (m, _, _, send) = next(&mut handle).await;
        assert_eq!(m, Method::GET);
        respond(send, 404, &status(404, "NotFound"));
        let (m, _, mut body, send) = next(&mut handle).await;
        assert_eq!(m, Method::POST);
        body["metadata"]["resourceVersion"] = json!("1");
        respond(send, 201, &body);
        (handle, body)
    });
    let certs = SelfManaged::kube(client, "nats-system", "webhook-ca", config())
        .await
        .unwrap();
    let (mut handle, created) = apiserver.await.unwrap();
    let stored: k8s_openapi::ByteString =
        serde_json::from_value(created["data"][KEY_CA_BUNDLE].clone()).unwrap();
    assert_eq!(certs.current_bundle(), stored.0);
    assert_no_more_requests(&mut handle).await;
}

#[tokio::test]
async fn replace_conflict_rereads_and_adopts() {
    let (client, mut handle) = mock();
    let (good, good_bundle) = other_replicas_secret("6").await;
    let apiserver = tokio::spawn(async move {
        // A Secret with an unusable CA: this replica plans a repair...
        let (m, _, _, send) = next(&mut handle).await;
        assert_eq!(m, Method::GET);
        respond(
            send,
            200,
            &json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "webhook-ca", "namespace": "nats-system", "resourceVersion": "5"},
            "data": {"ca.crt": "Z2FyYmFnZQ==", "ca.key": "Z2FyYmFnZQ=="}}),
        );
        // ...written with the resourceVersion it read, and loses the race.
        let (m, p, body, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::PUT, SECRET_PATH));
        assert_eq!(body["metadata"]["resourceVersion"], "5");
        respond(send, 409, &status(409, "Conflict"));
        // Re-read: another replica repaired it; adopt without writing.
        let (m, _, _, send) = next(&mut handle).await;
        assert_eq!(m, Method::GET);
        respond(send, 200, &good);
        handle
    });
    let certs = SelfManaged::kube(client, "nats-system", "webhook-ca", config())
        .await
        .unwrap();
    let mut handle = apiserver.await.unwrap();
    assert_eq!(certs.current_bundle(), good_bundle);
    assert_no_more_requests(&mut handle).await;
}

const BUNDLE: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const VWC_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/nats-operator";
const MWC_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/nats-operator";
const CRD_PATH: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/natsclusters.nats.io";

fn b64(b: &[u8]) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(b.to_vec())).unwrap()
}

fn vwc(first: Value, second: Value) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "nats-operator"},
    "webhooks": [
        {"name": "a.nats.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
         "clientConfig": {"service": {"name": "nats-operator", "namespace": "nats-system"}, "caBundle": first}},
        {"name": "b.nats.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
         "clientConfig": {"service": {"name": "nats-operator", "namespace": "nats-system"}, "caBundle": second}}
    ]})
}

fn crd(ca: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "natsclusters.nats.io"},
        "spec": {"group": "nats.io", "scope": "Namespaced",
            "names": {"plural": "natsclusters", "kind": "NatsCluster"},
            "versions": [],
            "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                "clientConfig": {"service": {"name": "nats-operator", "namespace": "nats-system"}, "caBundle": ca}}}}})
}

#[tokio::test]
async fn injection_patches_only_stale_entries_then_is_quiet() {
    let (client, mut handle) = mock();
    let targets = InjectionTargets {
        validating_webhooks: vec!["nats-operator".into()],
        mutating_webhooks: vec!["nats-operator".into()],
        crds: vec!["natsclusters.nats.io".into()],
    };
    let injector = CaBundleInjector::new(client, targets).with_watch(false);
    let apiserver = tokio::spawn(async move {
        // Pass 1: webhook 0 stale, webhook 1 current; MWC missing; CRD stale.
        let (m, p, _, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::GET, VWC_PATH));
        respond(send, 200, &vwc(b64(b"old"), b64(BUNDLE)));
        let (m, p, body, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::PATCH, VWC_PATH));
        assert_eq!(
            body,
            json!([
                {"op": "test", "path": "/webhooks/0/name", "value": "a.nats.io"},
                {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": b64(BUNDLE)}
            ])
        );
        respond(send, 200, &vwc(b64(BUNDLE), b64(BUNDLE)));
        let (m, p, _, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::GET, MWC_PATH));
        respond(send, 404, &status(404, "NotFound"));
        let (m, p, _, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::GET, CRD_PATH));
        respond(send, 200, &crd(Value::Null));
        let (m, p, body, send) = next(&mut handle).await;
        assert_eq!((m, p.as_str()), (Method::PATCH, CRD_PATH));
        assert_eq!(
            body,
            json!([
                {"op": "test", "path": "/spec/conversion/strategy", "value": "Webhook"},
                {"op": "add", "path": "/spec/conversion/webhook/clientConfig/caBundle", "value": b64(BUNDLE)}
            ])
        );
        respond(send, 200, &crd(b64(BUNDLE)));

        // Pass 2: everything current: reads only.
        for (path, obj) in [
            (VWC_PATH, vwc(b64(BUNDLE), b64(BUNDLE))),
            (MWC_PATH, status(404, "NotFound")),
            (CRD_PATH, crd(b64(BUNDLE))),
        ] {
            let (m, p, _, send) = next(&mut handle).await;
            assert_eq!((m, p.as_str()), (Method::GET, path));
            let code = if path == MWC_PATH { 404 } else { 200 };
            respond(send, code, &obj);
        }
        handle
    });
    let first = injector.inject_once(BUNDLE).await;
    assert_eq!(
        first.patched,
        vec![
            "ValidatingWebhookConfiguration/nats-operator".to_string(),
            "CustomResourceDefinition/natsclusters.nats.io".to_string()
        ]
    );
    assert_eq!(
        first.missing,
        vec!["MutatingWebhookConfiguration/nats-operator".to_string()]
    );
    let second = injector.inject_once(BUNDLE).await;
    assert!(second.patched.is_empty(), "{second:?}");
    assert_eq!(second.unchanged.len(), 2);
    let mut handle = apiserver.await.unwrap();
    assert_no_more_requests(&mut handle).await;
}
