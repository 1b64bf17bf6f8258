//! HTTPS keep-alive load against the real webhook server with the real NATS domain:
//! `/validate` and `/mutate` with the richest of our examples, `examples/v1alpha2/production.yaml`
//! (v1alpha2, as users apply it) and `/convert` with a 500-object ConversionReview (a LIST read through v1alpha2).
//! Prints throughput and p50/p99 at fixed rates and at saturation. The load generator
//! runs in the same process, so on 2 cores it competes with the server.
//!
//! `cargo bench --bench webhook_load`; knobs: `LOAD_SECS`, `LOAD_CONNS`, `LOAD_RATE`,
//! `LOAD_CONVERT_RATE`, `LOAD_CONVERT_OBJECTS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nats_operator::api::admission::default_object;
use nats_operator::api::convert::convert_object;
use nats_operator_webhook::router;
use nats_operator_webhook::test_support::{LoadSpec, Scenario, run_suite};
use serde_json::{Value, json};

mod common;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn example() -> Value {
    let mut v = common::production_cluster();
    v["metadata"]["namespace"] = json!("nats");
    v["metadata"]["uid"] = json!("3e7c1a2b-9d4f-4c8e-a1b2-7f6e5d4c3b2a");
    v
}

fn admission_review(object: &Value) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "nats.io", "version": "v1alpha2", "kind": "NatsCluster"},
            "resource": {"group": "nats.io", "version": "v1alpha2", "resource": "natsclusters"},
            "name": object["metadata"]["name"], "namespace": "nats", "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": object, "oldObject": null, "dryRun": false
        }
    })
    .to_string()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: f64 = env_or("LOAD_SECS", if full { 3.0 } else { 0.2 });
    let conns: usize = env_or("LOAD_CONNS", 8);
    let rate: f64 = env_or("LOAD_RATE", 1000.0);
    let convert_rate: f64 = env_or("LOAD_CONVERT_RATE", 20.0);
    let n: usize = env_or("LOAD_CONVERT_OBJECTS", 500);
    let duration = Duration::from_secs_f64(secs);
    let warmup = if full {
        Duration::from_millis(500)
    } else {
        Duration::ZERO
    };

    let object = example();
    let (defaulted, _) = default_object(&object, None);
    let stored = convert_object(defaulted, "nats.io/v1beta1").expect("convert");
    let objects: Vec<Value> = (0..n)
        .map(|i| {
            let mut o = stored.clone();
            o["metadata"]["name"] = json!(format!("cluster-{i}"));
            o
        })
        .collect();
    let convert = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "c1", "desiredAPIVersion": "nats.io/v1alpha2", "objects": objects}})
    .to_string();
    let review = admission_review(&object);
    println!(
        "webhook load (real domain): {conns} HTTPS/1.1 keep-alive connections, {secs}s per run, ConversionReview {n} objects ({} KiB)",
        convert.len() / 1024
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let w = |mut s: LoadSpec| {
            s.warmup = warmup;
            s
        };
        let app = || router(nats_operator::webhooks::state());
        let admission = run_suite(
            app(),
            &[
                Scenario::new("validate", "/validate?timeout=10s", review.clone()),
                Scenario::new("mutate", "/mutate?timeout=10s", review),
            ],
            &[
                w(LoadSpec::fixed_rate(conns, rate, duration)),
                w(LoadSpec::saturation(conns, duration)),
            ],
        )
        .await
        .unwrap();
        let conversion = run_suite(
            app(),
            &[Scenario::new(
                format!("convert x{n}"),
                "/convert?timeout=30s",
                convert,
            )],
            &[
                w(LoadSpec::fixed_rate(conns.min(4), convert_rate, duration)),
                w(LoadSpec::saturation(1, duration)),
            ],
        )
        .await
        .unwrap();
        for report in admission.into_iter().chain(conversion) {
            println!("{report}");
            assert_eq!(report.errors, 0, "load run had errors: {report}");
        }
    });
}
