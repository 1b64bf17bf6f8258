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
