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
//! The operator's side: [`WebhookServer`] runs our real webhook server in process on
//! `https://127.0.0.1:<port>` (its own thread and runtime, shared per test binary, stoppable
//! and restartable); [`NatsOperator::shared`] applies the CRDs and webhook configurations
//! pointing at it and waits until the apiserver calls them. Against an external cluster the
//! operator must already be installed there (e.g. from `manifests/`); otherwise the
//! webhook scenarios are skipped with a message. [`TestCluster::kubectl_run`] runs kubectl as a
//! user would and keeps its exit code and output; [`WebhookLatencies`] reads the apiserver's
//! own webhook latency histograms; [`AuditLog`] has a local apiserver record every request of
//! chosen users. [`TestCluster::start_local_with`] runs more of Kubernetes
//! ([`LocalOptions::workloads`]: Deployments get pods, Services get EndpointSlices).
//!
//! The reconcile loop: [`TestKubelet`] stands in for the scheduler and kubelet (binds the
//! operator's pods to a fake node, reports them running and ready, removes terminating ones
//! after a short lame duck); [`InProcessOperator`] runs `nats_operator::controller::run` on
//! its own thread, optionally under leader election, recording every request it sends;
//! [`natscluster`] waits for statuses and records pod changes through a watch.
//!
//! Environment:
//! * `E2E_KUBECONFIG` / `KUBECONFIG`: use that cluster instead of starting one.
//! * `NATS_OPERATOR_TESTPLANE_DIR`: directory with `kube-testplane` (and `kubectl`); otherwise
//!   `e2e/controlplane/build.sh` is run (a no-op when its cache is warm).
//! * `KUBECTL`: the kubectl to use in [`TestCluster::kubectl`].
//! * `E2E_LOG_DIR`: where `kube-testplane` logs go (default `$TMPDIR/nats-operator-e2e`).
//! * `NATS_OPERATOR_EXAMPLES`: the upstream examples (default
//!   `../shared/fixtures/nats-operator-examples` next to the repository).

pub mod audit;
mod cluster;
pub mod controller;
pub mod fixtures;
pub mod jsload;
mod kubectl;
pub mod kubelet;
pub mod metrics;
pub mod monitor;
mod namespace;
#[path = "../nats/locate.rs"]
pub mod natsbin;
pub mod natscluster;
pub mod node;
pub mod operator;
pub mod operator_process;
pub mod podrun;
pub mod realnats;
pub mod scenario;
pub mod storage;
mod webhook;

pub use audit::AuditLog;
pub use cluster::{LocalOptions, ReadyInfo, TestCluster};
pub use controller::{InProcessOperator, OperatorOptions};
pub use kubectl::{KubectlRun, PortForward};
pub use kubelet::TestKubelet;
pub use metrics::WebhookLatencies;
pub use namespace::{TEST_NAMESPACE_LABEL, TestNamespace};
pub use operator::NatsOperator;
pub use webhook::WebhookServer;

/// Re-exported so tests use exactly the harness's versions.
pub use k8s_openapi;
/// Re-exported so tests use exactly the harness's versions.
pub use kube;
