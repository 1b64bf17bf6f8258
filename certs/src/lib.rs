//! Serving certificates for the NATS operator's admission and conversion webhooks.
//!
//! Three ways to get a certificate, all served through one hot-swappable
//! [`CertResolver`] and the [`server_config`] (ring provider, TLS 1.2/1.3, ALPN `http/1.1`):
//!
//! * **Self-managed** ([`SelfManaged`]): a CA kept in a Kubernetes Secret shared by all replicas
//!   (first writer wins), per-replica in-memory serving certificates renewed at 2/3 of their life,
//!   and CA rotation with an overlapping caBundle ([`rotation`]). The caBundle is published on a
//!   watch channel for [`CaBundleInjector`].
//! * **Provided files** ([`FileCerts`]): `tls.crt`/`tls.key` from a mounted cert-manager Secret,
//!   reloaded when the kubelet swaps the `..data` symlink; mismatched pairs are ignored.
//! * **Dev** ([`ensure_dev_certs`]): generate a CA and a `localhost` certificate into a directory
//!   once, then serve it with [`FileCerts`].
//!
//! The crate never relies on a process-default rustls `CryptoProvider`: every rustls object is
//! built with [`ring_provider`].
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), nats_operator_certs::Error> {
//! use nats_operator_certs::*;
//! let config = SelfManagedConfig::new(service_sans("nats-operator", "nats-system"));
//! let certs = SelfManaged::kube(client.clone(), "nats-system", "nats-operator-webhook-ca", config).await?;
//! let tls = server_config(certs.resolver())?;
//! let injector = CaBundleInjector::new(client, InjectionTargets {
//!     validating_webhooks: vec!["nats-operator".into()],
//!     mutating_webhooks: vec!["nats-operator".into()],
//!     crds: vec!["natsclusters.nats.io".into()],
//! });
//! tokio::spawn(injector.run(certs.ca_bundle(), std::future::pending()));
//! tokio::spawn(certs.run(std::future::pending()));
//! # let _ = tls; Ok(()) }
//! ```

pub mod dev;
pub mod error;
pub mod files;
pub mod generate;
pub mod inject;
pub mod rotation;
pub mod self_managed;
pub mod tls;

pub use dev::{DevCertsOutcome, ensure_dev_certs};
pub use error::{Error, Result};
pub use files::{FileCerts, ReloadOutcome};
pub use generate::{
    CertInfo, CertificateAuthority, ServingCert, Validity, certified_key_from_pem, certs_from_pem,
    inspect_cert_der, inspect_cert_pem, service_sans,
};
pub use inject::{
    CaBundleInjector, InjectionReport, InjectionTargets, crd_conversion_patch, inject_ca_bundle,
    mutating_webhook_patch, validating_webhook_patch,
};
pub use rotation::RotationPolicy;
pub use self_managed::{
    KubeSecretStore, MemorySecretStore, SecretStore, SelfManaged, SelfManagedConfig,
};
pub use tls::{CertResolver, ring_provider, server_config};
