//! HTTPS keep-alive load against the in-process TLS server with a trivial domain.
//!
//! `cargo bench -p nats-operator-webhook --bench load`
//!
//! Environment knobs: `LOAD_SECS` (measured seconds per run, default 3), `LOAD_CONNS`
//! (connections, default 8), `LOAD_RATE` (admission req/s, default 1000),
//! `LOAD_CONVERT_RATE` (conversion req/s, default 20), `LOAD_CONVERT_OBJECTS` (objects
//! per ConversionReview, default 500). Without `--bench` (e.g. `cargo test --benches`)
//! it runs a short smoke pass. The root crate can reuse
//! `nats_operator_webhook::test_support::run_suite` with its real router and bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nats_operator_webhook::test_support::{LoadSpec, Scenario, run_suite};
use nats_operator_webhook::{AdmissionRequest, Mutation, Verdict, WebhookState, router};
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn trivial_router() -> axum::Router {
    let validator = |req: &AdmissionRequest| {
        if req.object.as_ref().is_some_and(|o| o["spec"]["size"] == 4) {
            Verdict::forbidden("even size")
        } else {
            Verdict::allow()
        }
    };
    let mutator = |req: &AdmissionRequest| match req.object.clone() {
        Some(mut o) => {
            o["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("nats-operator");
            Mutation::Patched {
                object: o,
                warnings: vec![],
            }
        }
        None => Mutation::Verdict(Verdict::allow()),
    };
    let converter = |mut o: Value, _desired: &str| -> Result<Value, String> {
        if let Some(spec) = o["spec"].as_object_mut()
            && let Some(size) = spec.remove("size")
        {
            spec.insert("replicas".into(), size);
        }
        Ok(o)
    };
    router(WebhookState::builder(validator, mutator, converter).build())
}

fn conversion_review(n: usize) -> Value {
    let mut review = fixture("conversion-mixed.json");
    let template = review["request"]["objects"][0].clone();
    let objects: Vec<Value> = (0..n)
        .map(|i| {
            let mut o = template.clone();
            o["metadata"]["name"] = json!(format!("cluster-{i}"));
            o
        })
        .collect();
    review["request"]["objects"] = Value::Array(objects);
    review
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: f64 = env_or("LOAD_SECS", if full { 3.0 } else { 0.2 });
    let conns: usize = env_or("LOAD_CONNS", 8);
    let rate: f64 = env_or("LOAD_RATE", 1000.0);
    let convert_rate: f64 = env_or("LOAD_CONVERT_RATE", 20.0);
    let objects: usize = env_or("LOAD_CONVERT_OBJECTS", 500);
    let duration = Duration::from_secs_f64(secs);
    let warmup = if full {
        Duration::from_millis(500)
    } else {
        Duration::ZERO
    };

    let admission = fixture("admission-create.json").to_string();
    let convert = conversion_review(objects).to_string();
    println!(
        "webhook load: {conns} HTTPS/1.1 keep-alive connections, {secs}s per run, ConversionReview {objects} objects ({} KiB)",
        convert.len() / 1024
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let with_warmup = |mut s: LoadSpec| {
            s.warmup = warmup;
            s
        };
        let admission_specs = [
            with_warmup(LoadSpec::fixed_rate(conns, rate, duration)),
            with_warmup(LoadSpec::saturation(conns, duration)),
        ];
        let admission_scenarios = [
            Scenario::new("validate", "/validate?timeout=10s", admission.clone()),
            Scenario::new("mutate", "/mutate?timeout=10s", admission),
        ];
        let convert_specs = [
            with_warmup(LoadSpec::fixed_rate(conns.min(4), convert_rate, duration)),
            with_warmup(LoadSpec::saturation(conns.min(4), duration)),
        ];
        let convert_scenarios = [Scenario::new(
            format!("convert x{objects}"),
            "/convert?timeout=30s",
            convert,
        )];
        for report in run_suite(trivial_router(), &admission_scenarios, &admission_specs)
            .await
            .unwrap()
            .into_iter()
            .chain(
                run_suite(trivial_router(), &convert_scenarios, &convert_specs)
                    .await
                    .unwrap(),
            )
        {
            println!("{report}");
            assert_eq!(report.errors, 0, "load run had errors: {report}");
        }
    });
}
