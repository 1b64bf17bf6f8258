//! The `nats.io` API: `NatsCluster` and `NatsServiceRole` in `v1alpha2` (the Go
//! operator's, deprecated) and `v1beta1` (stored), with validation, defaulting and
//! conversion as pure functions.

pub mod serde_util;
pub mod v1alpha2;
pub mod v1beta1;

/// API group of every kind here.
pub const GROUP: &str = "nats.io";
/// The deprecated version, as the Go operator served it.
pub const V1ALPHA2: &str = "nats.io/v1alpha2";
/// The storage version.
pub const V1BETA1: &str = "nats.io/v1beta1";

pub mod admission;
pub mod cel;
pub mod choices;
pub mod condition;
pub mod consts;
pub mod convert;
pub mod crd;
pub mod data_guard;
pub mod defaults;
pub mod duration;
pub mod field;
pub mod names;
pub mod references;
pub mod validate;
pub mod version;
