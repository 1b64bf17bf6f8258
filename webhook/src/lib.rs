//! Generic HTTPS layer for Kubernetes admission and CRD conversion webhooks.
//!
//! This crate knows nothing about NATS. It owns the wire protocol and the server; the
//! domain (validation, defaulting, version conversion) plugs in through three traits:
//!
//! - [`Validator`] for `POST /validate` (`admission.k8s.io/v1` `AdmissionReview`),
//! - [`Mutator`] for `POST /mutate` (the server computes the RFC 6902 patch),
//! - [`Converter`] for `POST /convert` (`apiextensions.k8s.io/v1` `ConversionReview`).
//!
//! [`router`] builds the axum router (plus `GET /healthz` and `GET /readyz`), and
//! [`serve`] / [`serve_with`] run it over TLS with HTTP/1.1 keep-alive and graceful
//! shutdown.
//!
//! Where the domain runs: a request body up to 64 KiB (every single-object review) is
//! decided on the async worker, since a hand-off to the blocking pool costs more than
//! the call; larger ones run on the blocking pool under the caller's `?timeout=`
//! deadline, and a large ConversionReview is split across the cores. Domain calls must
//! therefore be pure and quick; every one is guarded against panics.
//!
//! ```no_run
//! use std::sync::Arc;
//! use nats_operator_webhook::{
//!     Mutation, ServerOptions, Verdict, WebhookState, router, serve_with,
//! };
//!
//! # async fn run(tls: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
//! let state = WebhookState::builder(
//!     |_req: &nats_operator_webhook::AdmissionRequest| Verdict::allow(),
//!     |_req: &nats_operator_webhook::AdmissionRequest| Mutation::Verdict(Verdict::allow()),
//!     |obj: serde_json::Value, _to: &str| -> Result<serde_json::Value, String> { Ok(obj) },
//! )
//! .build();
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
//! let opts = ServerOptions::default().readiness(state.readiness());
//! serve_with(listener, Some(tls), router(state), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! }, opts)
//! .await
//! # }
//! ```

mod admission;
mod conversion;
mod deadline;
mod router;
mod server;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use admission::{
    ADMISSION_API_VERSION, ADMISSION_REVIEW_KIND, AdmissionRequest, Cause, GroupVersionKind,
    GroupVersionResource, MAX_WARNING_CHARS, Mutation, Mutator, Operation, UserInfo, Validator,
    Verdict, invalid_message, sanitize_warning,
};
pub use conversion::{CONVERSION_API_VERSION, CONVERSION_REVIEW_KIND, Converter};
pub use deadline::{go_duration_seconds, parse_go_duration, timeout_from_query};
pub use router::{
    DEFAULT_ADMISSION_BODY_LIMIT, DEFAULT_ADMISSION_TIMEOUT, DEFAULT_CONVERSION_BODY_LIMIT,
    DEFAULT_CONVERSION_TIMEOUT, DEFAULT_DEADLINE_FRACTION, Readiness, WebhookState,
    WebhookStateBuilder, router,
};
pub use server::{ServerOptions, ServerStats, serve, serve_plain, serve_with};
