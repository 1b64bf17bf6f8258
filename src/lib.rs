//! The NATS operator for Kubernetes: the `nats.io` API (validation, defaulting,
//! conversion), the admission and conversion webhooks and the reconcile loop.
pub mod api;
pub mod controller;
pub mod install;
pub mod manifest;
pub mod manifests;
pub mod reloader;
pub mod render;
pub mod run;
pub mod webhooks;
pub mod yaml;

/// The process allocator for the binary, its benches and tests alike: webhook bodies
/// and conversions are many short-lived JSON trees, which mimalloc serves far more
/// cheaply than glibc's malloc (measured in `benches/webhook_load.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
