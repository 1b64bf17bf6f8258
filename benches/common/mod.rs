//! The object the benchmarks work on: the NatsCluster of our richest example,
//! `examples/v1alpha2/production.yaml` (TLS, auth, gateway, leafnode, websocket, metrics,
//! five members), in the Go operator's API.

use serde_json::Value;

/// The production example's NatsCluster, as a user's manifest holds it.
pub fn production_cluster() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/v1alpha2/production.yaml"
    );
    let text = std::fs::read_to_string(path).expect("examples/v1alpha2/production.yaml");
    nats_operator::yaml::documents(&text)
        .expect("YAML")
        .into_iter()
        .find(|d| d["kind"] == "NatsCluster")
        .expect("a NatsCluster")
}

/// The allocator the binary runs with (see `src/main.rs`), so the figures are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
