//! Criterion benchmarks of the pure API functions: validate, default and convert on the
//! richest of our examples, `examples/v1alpha2/production.yaml` (conversion both on
//! `Value`s and on JSON text, the webhook's fast path), and a 500-object conversion batch
//! (a LIST's worth).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nats_operator::api::admission::{default_object, validate_object};
use nats_operator::api::convert::{convert_object, convert_text};
use serde_json::Value;

mod common;

fn bench(c: &mut Criterion) {
    let obj = common::production_cluster();
    let (defaulted, _) = default_object(&obj, None);
    let beta = convert_object(defaulted.clone(), "nats.io/v1beta1").unwrap_or(Value::Null);
    c.bench_function("validate v1alpha2 production", |b| {
        b.iter(|| validate_object(black_box(&defaulted), None))
    });
    c.bench_function("default v1alpha2 production", |b| {
        b.iter(|| default_object(black_box(&obj), None))
    });
    c.bench_function("convert v1alpha2->v1beta1 production", |b| {
        b.iter(|| convert_object(black_box(defaulted.clone()), "nats.io/v1beta1"))
    });
    c.bench_function("convert v1beta1->v1alpha2 production", |b| {
        b.iter(|| convert_object(black_box(beta.clone()), "nats.io/v1alpha2"))
    });
    // What the webhook does per object: text in, text out (the fast path).
    let beta_text = beta.to_string();
    c.bench_function("convert text v1beta1->v1alpha2 production", |b| {
        b.iter(|| convert_text(black_box(&beta_text), "nats.io/v1alpha2"))
    });
    let batch: Vec<Value> = (0..500).map(|_| beta.clone()).collect();
    c.bench_function("convert 500 objects v1beta1->v1alpha2", |b| {
        b.iter(|| {
            batch
                .iter()
                .cloned()
                .map(|o| convert_object(o, "nats.io/v1alpha2"))
                .collect::<Vec<_>>()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
