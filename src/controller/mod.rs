//! The reconcile loop: turns NatsClusters into member pods, services and config.

pub mod leader;
pub mod plan;
