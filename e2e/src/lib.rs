//! End-to-end harness: a real Kubernetes control plane for the operator's tests.
//!
//! [`TestCluster::shared`] gives every test of one test binary the same control plane:
//! * the cluster of `E2E_KUBECONFIG` (or `KUBECONFIG`) when that is set, or
//! * a local `kube-testplane` (embedded etcd + kube-apiserver 1.36 + a restricted
//!   kube-controller-manager with the garbage-collector, namespace and serviceaccount
//!   controllers), built from `e2e/controlplane` and cached outside the repository.
//!
//! A local control plane is tied to this process through its stdin pipe: when the test binary
//! exits (or crashes), the pipe closes and `kube-testplane` shuts down and removes its data
//! directory. [`TestCluster::start`] gives a cluster of one's own, stopped on [`TestCluster::stop`]
//! or drop (SIGTERM, then SIGKILL after a timeout).
//!
//! Each test works in its own [`TestNamespace`], deleted when the guard drops (also on panic).
//!
//! Environment:
//! * `E2E_KUBECONFIG` / `KUBECONFIG`: use that cluster instead of starting one.
//! * `NATS_OPERATOR_TESTPLANE_DIR`: directory with `kube-testplane` (and `kubectl`); otherwise
//!   `e2e/controlplane/build.sh` is run (a no-op when its cache is warm).
//! * `KUBECTL`: the kubectl to use in [`TestCluster::kubectl`].
//! * `E2E_LOG_DIR`: where `kube-testplane` logs go (default `$TMPDIR/nats-operator-e2e`).

mod cluster;
mod namespace;

pub use cluster::{ReadyInfo, TestCluster};
pub use namespace::{TEST_NAMESPACE_LABEL, TestNamespace};

/// Re-exported so tests use exactly the harness's versions.
pub use k8s_openapi;
/// Re-exported so tests use exactly the harness's versions.
pub use kube;
