//! Self-managed mode over real TLS, with the in-memory Secret store standing in for the
//! apiserver (the Kubernetes-backed store is covered by tests/kube_mock.rs and, later, e2e).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, SystemTime};

use common::{ClientOpts, connect, eventually, serve};
use nats_operator_certs::{
    MemorySecretStore, RotationPolicy, SelfManaged, SelfManagedConfig, certs_from_pem,
    inspect_cert_der,
    self_managed::{KEY_CA_BUNDLE, KEY_CA_CRT, KEY_CA_KEY},
};
use tokio::sync::oneshot;

fn config(policy: RotationPolicy) -> SelfManagedConfig {
    let mut c = SelfManagedConfig::new(vec!["localhost".into(), "127.0.0.1".into()]);
    c.policy = policy;
    c.check_interval = Duration::from_millis(100);
    c.refresh_interval = Duration::from_millis(300);
    c
}

fn long_policy() -> RotationPolicy {
    RotationPolicy {
        ca_lifetime: Duration::from_secs(3600),
        serving_lifetime: Duration::from_secs(600),
        promote_after: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn replicas_share_one_ca_first_writer_wins() {
    let store = MemorySecretStore::new();
    let a = SelfManaged::bootstrap(store.clone(), config(long_policy()))
        .await
        .unwrap();
    let b = SelfManaged::bootstrap(store.clone(), config(long_policy()))
        .await
        .unwrap();
    assert_eq!(store.writes(), 1, "only the first replica writes");
    assert_eq!(a.current_bundle(), b.current_bundle());
    assert_eq!(
        a.signer().unwrap().cert_pem(),
        b.signer().unwrap().cert_pem()
    );
    // Different leaves, both trusted by the shared bundle.
    assert_ne!(
        a.serving_cert().unwrap().info().serial_hex,
        b.serving_cert().unwrap().info().serial_hex
    );
    let bundle = a.current_bundle();
    for r in [&a, &b] {
        let server = serve(r.resolver()).await;
        connect(server.addr, ClientOpts::new(&bundle, "127.0.0.1"))
            .await
            .unwrap();
    }
    let data = store.snapshot().unwrap().data;
    assert!(data.contains_key(KEY_CA_CRT) && data.contains_key(KEY_CA_KEY));
    assert_eq!(data[KEY_CA_BUNDLE], bundle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bootstraps_converge_on_one_ca() {
    let store = MemorySecretStore::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            SelfManaged::bootstrap(s, config(long_policy()))
                .await
                .unwrap()
                .current_bundle()
        }));
    }
    let mut bundles = Vec::new();
    for t in tasks {
        bundles.push(t.await.unwrap());
    }
    assert!(bundles.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(certs_from_pem(&bundles[0]).unwrap().len(), 1);
}

#[tokio::test]
async fn existing_secret_is_adopted_and_deleted_secret_restored() {
    let store = MemorySecretStore::new();
    let a = SelfManaged::bootstrap(store.clone(), config(long_policy()))
        .await
        .unwrap();
    let bundle = a.current_bundle();
    let mut a = a;
    store.delete();
    // Next refresh recreates the Secret from the CA already being served.
    a.tick(SystemTime::now() + Duration::from_secs(1))
        .await
        .unwrap();
    let data = store.snapshot().expect("secret recreated").data;
    assert_eq!(data[KEY_CA_BUNDLE], bundle);
}

#[tokio::test]
async fn unusable_secret_is_replaced_once() {
    let store = MemorySecretStore::new();
    let mut data = std::collections::BTreeMap::new();
    data.insert(KEY_CA_CRT.to_string(), b"garbage".to_vec());
    data.insert(KEY_CA_KEY.to_string(), b"garbage".to_vec());
    data.insert("unrelated".to_string(), b"kept".to_vec());
    store.force_set(data);
    let a = SelfManaged::bootstrap(store.clone(), config(long_policy()))
        .await
        .unwrap();
    let stored = store.snapshot().unwrap().data;
    assert_eq!(stored["unrelated"], b"kept");
    assert_eq!(stored[KEY_CA_BUNDLE], a.current_bundle());
    // The repaired state round-trips.
    let b = SelfManaged::bootstrap(store.clone(), config(long_policy()))
        .await
        .unwrap();
    assert_eq!(a.current_bundle(), b.current_bundle());
}

#[tokio::test]
async fn background_task_renews_short_lived_serving_cert() {
    let store = MemorySecretStore::new();
    let policy = RotationPolicy {
        serving_lifetime: Duration::from_secs(3),
        ..long_policy()
    };
    let certs = SelfManaged::bootstrap(store, config(policy)).await.unwrap();
    let bundle = certs.current_bundle();
    let server = serve(certs.resolver()).await;
    let first = connect(server.addr, ClientOpts::new(&bundle, "localhost"))
        .await
        .unwrap();
    let first_info = inspect_cert_der(&first.peer_leaf).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(certs.run(async {
        let _ = stopped.await;
    }));
    // 2/3 of 3 s is 2 s; allow generous slack.
    let renewed = eventually(Duration::from_secs(8), "a renewed serving cert", || async {
        let hs = connect(server.addr, ClientOpts::new(&bundle, "localhost"))
            .await
            .unwrap();
        (hs.serial() != first.serial()).then_some(hs)
    })
    .await;
    let info = inspect_cert_der(&renewed.peer_leaf).unwrap();
    assert!(info.validity.not_after > first_info.validity.not_after);
    let _ = stop.send(());
    task.await.unwrap();
}

/// Full CA rotation on a compressed timeline (CA 9 s, next CA added at ~6 s, promoted 2 s
/// later, old CA pruned at expiry). Throughout, every new connection verifies against the
/// bundle the replica publishes.
#[tokio::test]
async fn ca_rotation_keeps_served_cert_trusted_by_published_bundle() {
    let store = MemorySecretStore::new();
    let policy = RotationPolicy {
        ca_lifetime: Duration::from_secs(9),
        serving_lifetime: Duration::from_secs(2),
        promote_after: Duration::from_secs(2),
    };
    let certs = SelfManaged::bootstrap(store.clone(), config(policy))
        .await
        .unwrap();
    let first_ca = certs.signer().unwrap().cert_pem().to_string();
    let bundle_rx = certs.ca_bundle();
    let server = serve(certs.resolver()).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(certs.run(async {
        let _ = stopped.await;
    }));

    let mut max_bundle = 0;
    let mut issuers = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(13);
    while tokio::time::Instant::now() < deadline {
        let bundle = bundle_rx.borrow().clone();
        max_bundle = max_bundle.max(certs_from_pem(&bundle).unwrap().len());
        let hs = connect(server.addr, ClientOpts::new(&bundle, "localhost"))
            .await
            .unwrap_or_else(|e| panic!("served cert not trusted by published bundle: {e}"));
        issuers.insert(x509_issuer(&hs.peer_leaf));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();

    assert!(max_bundle >= 2, "bundle never overlapped old and new CA");
    assert!(
        issuers.len() >= 2,
        "serving certs never moved to a new CA: {issuers:?}"
    );
    let data = store.snapshot().unwrap().data;
    let final_bundle = String::from_utf8(data[KEY_CA_BUNDLE].clone()).unwrap();
    assert!(
        !final_bundle.contains(first_ca.trim()),
        "expired first CA still in the bundle"
    );
}

fn x509_issuer(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.issuer().to_string()
}
