//! The `jetstream.nats.io` API: NACK's kinds (`Stream`, `Consumer`, `KeyValue`,
//! `ObjectStore`, `Account`) in `v1beta2`, what each asks of the JetStream API
//! ([`server_config`]), the admission rules that need no cluster ([`validate`]), what one
//! reconcile of an asset does ([`sync`]); all pure, like [`crate::api`]. [`client`] is
//! the one edge: the JetStream API requests. `tests/nats_server_jetstream_assets.rs`
//! runs them on every supported release.
//!
//! Not served yet: the CRDs are not installed and nothing reconciles these kinds. What
//! `natsClusterRef` needs first is an operator identity in the clients' accounts: the
//! system user cannot create streams there (nats-server answers the system account only
//! on the `$JS.API.ACCOUNT.*`, `SERVER.REMOVE` and `META.LEADER.STEPDOWN` admin
//! subjects), `$G` can hold users only through `authorization.users`, and doing that in an
//! open cluster needs an explicit password-less `no_auth_user` to keep anonymous clients
//! in `$G` (nats-server's implicit one goes away with any `authorization` block).

pub mod client;
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
