//! The `jetstream.nats.io` API: NACK's kinds (`Stream`, `Consumer`, `KeyValue`,
//! `ObjectStore`, `Account`) in `v1beta2`, what each asks of the JetStream API, and the
//! admission rules that need no cluster. Pure, like [`crate::api`].

pub mod server_config;
pub mod v1beta2;
pub mod validate;
mod wire;

/// API group of every kind here (NACK's).
pub const GROUP: &str = "jetstream.nats.io";
/// The served version (NACK's current one).
pub const V1BETA2: &str = "jetstream.nats.io/v1beta2";

#[cfg(test)]
mod tests;
