//! The NATS operator for Kubernetes: the `nats.io` API (validation, defaulting,
//! conversion), the admission and conversion webhooks and the reconcile loop.
pub mod api;
pub mod config_reloader;
pub mod controller;
pub mod install_manifests;
pub mod jetstream;
pub mod render;
pub mod run;
pub mod webhook_config;
pub mod webhooks;
pub mod yaml;
pub mod yaml_stream;
