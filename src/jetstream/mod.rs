//! The `jetstream.nats.io` API: NACK's kinds (`Stream`, `Consumer`, `KeyValue`,
//! `ObjectStore`, `Account`) in `v1beta2`, served and reconciled by the operator.
//!
//! Pure, like [`crate::api`]: the types ([`v1beta2`]) and CRDs ([`crd`]), what each asks of
//! the JetStream API ([`server_config`]), the admission rules ([`validate`] without a
//! cluster, [`admission`] with what the cache knows), and what one reconcile does
//! ([`sync`]). The edges: the JetStream API requests ([`client`]), where an asset connects
//! and the pooled connections ([`connect`]), and the controllers ([`controller`]).
//! `tests/nats_server_jetstream_assets.rs` runs the pure core on every supported release;
//! `e2e/tests/assets.rs` runs it all through kubectl on the real node.

pub mod admission;
pub mod client;
pub mod connect;
pub mod controller;
pub mod crd;
pub mod server_config;
pub mod sync;
pub mod v1beta2;
pub mod validate;
mod wire;

/// API group of every kind here (NACK's).
pub const GROUP: &str = "jetstream.nats.io";
/// The served version (NACK's current one).
pub const V1BETA2: &str = "jetstream.nats.io/v1beta2";

#[cfg(test)]
mod tests;
