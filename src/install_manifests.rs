//! The install manifests under `manifests/`, generated from code (`nats-operator
//! manifests`) and checked by a drift test: CRDs, RBAC with only the verbs the operator
//! uses, the Deployment, its Service, PodDisruptionBudget and webhook configurations.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::api::crd::{ConversionEndpoint, all_crds};
use crate::api::defaults::{OPERATOR_IMAGE, OPERATOR_IMAGE_TAG};
use crate::webhook_config::{mutating_webhook_configuration, validating_webhook_configuration};

/// Namespace the default manifests install into.
pub const NAMESPACE: &str = "nats-io";
/// Name of the operator's Deployment, ServiceAccount, Service and RBAC objects.
pub const NAME: &str = "nats-operator";

fn labels() -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name".to_string(), NAME.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            "operator".to_string(),
        ),
    ]
    .into()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels()),
        ..Default::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn named_rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        resource_names: Some(names.iter().map(|s| s.to_string()).collect()),
        ..rule(groups, resources, verbs)
    }
}

const WATCH: &[&str] = &["get", "list", "watch"];
const MANAGE: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// The status subresources of NACK's kinds.
const ASSET_STATUS: [&str; 5] = [
    "streams/status",
    "consumers/status",
    "keyvalues/status",
    "objectstores/status",
    "accounts/status",
];

/// What the operator does to the objects in the namespaces it manages.
pub fn namespaced_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["nats.io"],
            &["natsclusters", "natsserviceroles"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(
            &["nats.io"],
            &["natsclusters/status"],
            &["get", "patch", "update"],
        ),
        rule(
            &[""],
            &["pods", "services", "secrets", "persistentvolumeclaims"],
            MANAGE,
        ),
        // Lame duck before the operator deletes a member (its preStop hook alone races
        // with SIGTERM; the Go operator's pods have none): exec over WebSocket is a GET, authorized as `get` before Kubernetes 1.35 and as
        // `create` after (the SPDY POST always was).
        rule(&[""], &["pods/exec"], &["get", "create"]),
        rule(&["policy"], &["poddisruptionbudgets"], MANAGE),
        rule(&["monitoring.coreos.com"], &["podmonitors"], MANAGE),
        rule(&[""], &["serviceaccounts"], WATCH),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
        // NACK's kinds: read, finalizers (update), status.
        rule(
            &[crate::jetstream::GROUP],
            &crate::jetstream::crd::RESOURCES,
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(
            &[crate::jetstream::GROUP],
            &ASSET_STATUS,
            &["get", "patch", "update"],
        ),
    ]
}

/// Cluster-scoped objects the operator keeps right (caBundle injection).
pub fn cluster_rules() -> Vec<PolicyRule> {
    vec![
        named_rule(
            &["admissionregistration.k8s.io"],
            &[
                "validatingwebhookconfigurations",
                "mutatingwebhookconfigurations",
            ],
            &[NAME],
            &["get", "list", "watch", "patch"],
        ),
        named_rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["natsclusters.nats.io"],
            &["get", "list", "watch", "patch"],
        ),
    ]
}

/// Objects in the operator's own namespace: the webhook CA Secret and the leader Lease.
pub fn own_namespace_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "create", "update"],
        ),
        rule(&[""], &["secrets"], &["get", "create", "update"]),
    ]
}

fn subject() -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: NAME.into(),
        namespace: Some(NAMESPACE.into()),
        ..Default::default()
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
    }
}

/// Objects of `00-prereqs.yaml`, as YAML documents.
pub fn prereqs() -> Result<String, crate::yaml::Error> {
    let mut docs = Docs::default();
    docs.push(&Namespace {
        metadata: meta(NAMESPACE, None),
        ..Default::default()
    })?;
    for crd in all_crds(&ConversionEndpoint::default()) {
        docs.push(&crd)?;
    }
    docs.push(&ServiceAccount {
        metadata: meta(NAME, Some(NAMESPACE)),
        ..Default::default()
    })?;
    docs.push(&ClusterRole {
        metadata: meta(NAME, None),
        rules: Some(cluster_rules()),
        ..Default::default()
    })?;
    docs.push(&ClusterRoleBinding {
        metadata: meta(NAME, None),
        role_ref: role_ref("ClusterRole", NAME),
        subjects: Some(vec![subject()]),
    })?;
    let mut rules = namespaced_rules();
    rules.extend(own_namespace_rules());
    docs.push(&Role {
        metadata: meta(NAME, Some(NAMESPACE)),
        rules: Some(rules),
    })?;
    docs.push(&RoleBinding {
        metadata: meta(NAME, Some(NAMESPACE)),
        role_ref: role_ref("Role", NAME),
        subjects: Some(vec![subject()]),
    })?;
    Ok(docs.0)
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("health".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// Allocator settings the operator runs with (the image sets them too). mimalloc commits
/// its arenas eagerly by default; lazily, 200 NatsClusters x 3 peak at 36.6 MB instead of
/// 56 MB, with no measurable cost in time (`scale_run`). mimalloc reads them before
/// `main`, so they can only come from the environment.
pub const ALLOCATOR_ENV: &[(&str, &str)] = &[("MIMALLOC_ARENA_EAGER_COMMIT", "0")];

/// An environment variable from a field of the pod (the downward API).
fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The operator Deployment.
pub fn deployment() -> Deployment {
    let selector: BTreeMap<String, String> =
        [("app.kubernetes.io/name".to_string(), NAME.to_string())].into();
    let container = Container {
        name: NAME.into(),
        image: Some(format!("{OPERATOR_IMAGE}:{OPERATOR_IMAGE_TAG}")),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["run".into()]),
        // The namespace it runs in, and its own name: each replica's identity in the leader
        // Lease (`--pod-name`); replicas with one identity would all lead at once.
        env: Some(
            [
                field_env("MY_POD_NAMESPACE", "metadata.namespace"),
                field_env("MY_POD_NAME", "metadata.name"),
            ]
            .into_iter()
            .chain(ALLOCATOR_ENV.iter().map(|(name, value)| EnvVar {
                name: (*name).into(),
                value: Some((*value).into()),
                ..Default::default()
            }))
            .collect(),
        ),
        ports: Some(vec![port("webhook", 8443), port("health", 8080)]),
        readiness_probe: Some(probe("/readyz", 5)),
        liveness_probe: Some(probe("/healthz", 10)),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), Quantity("50m".into())),
                    ("memory".to_string(), Quantity("32Mi".into())),
                ]
                .into(),
            ),
            limits: Some([("memory".to_string(), Quantity("128Mi".into()))].into()),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: meta(NAME, Some(NAMESPACE)),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    containers: vec![container],
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Objects of `10-deployment.yaml`, as YAML documents.
pub fn operator() -> Result<String, crate::yaml::Error> {
    let mut docs = Docs::default();
    let selector: BTreeMap<String, String> =
        [("app.kubernetes.io/name".to_string(), NAME.to_string())].into();
    docs.push(&deployment())?;
    docs.push(&Service {
        metadata: meta(NAME, Some(NAMESPACE)),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("webhook".into()),
                port: 443,
                target_port: Some(IntOrString::String("webhook".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })?;
    docs.push(&PodDisruptionBudget {
        metadata: meta(NAME, Some(NAMESPACE)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })?;
    let endpoint = ConversionEndpoint::default();
    docs.push(&validating_webhook_configuration(&endpoint, None))?;
    docs.push(&mutating_webhook_configuration(&endpoint, None))?;
    Ok(docs.0)
}

#[derive(Default)]
struct Docs(String);

impl Docs {
    fn push<T: Serialize + k8s_openapi::Resource>(
        &mut self,
        obj: &T,
    ) -> Result<(), crate::yaml::Error> {
        // k8s-openapi writes apiVersion and kind first, in field order.
        self.0.push_str("---\n");
        self.0.push_str(&crate::yaml::to_string(obj)?);
        Ok(())
    }
}

/// Every generated file: (path under `manifests/`, content).
pub fn files() -> Result<Vec<(&'static str, String)>, crate::yaml::Error> {
    Ok(vec![
        ("base/00-prereqs.yaml", prereqs()?),
        ("base/10-deployment.yaml", operator()?),
    ])
}

/// `manifests/base/kustomization.yaml`: the default (namespace-scoped) install.
pub const KUSTOMIZATION: &str = "\
# Generated by `nats-operator manifests`; do not edit.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- 00-prereqs.yaml
- 10-deployment.yaml
";

/// `manifests/overlays/cert-manager/kustomization.yaml`: cert-manager issues the serving
/// certificate and injects the CA; the operator's own CA management is off.
pub const CERT_MANAGER_OVERLAY: &str = "\
# Generated by `nats-operator manifests`; do not edit.
# cert-manager issues the webhook certificate and its cainjector fills the caBundles.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../base
- certificate.yaml
patches:
- target:
    kind: Deployment
    name: nats-operator
  patch: |-
    - op: replace
      path: /spec/template/spec/containers/0/args
      value: [run, --cert-dir, /etc/nats-operator/tls, --no-ca-injection]
    - op: add
      path: /spec/template/spec/containers/0/volumeMounts
      value: [{name: tls, mountPath: /etc/nats-operator/tls, readOnly: true}]
    - op: add
      path: /spec/template/spec/volumes
      value: [{name: tls, secret: {secretName: nats-operator-webhook-tls}}]
- target:
    kind: ValidatingWebhookConfiguration
    name: nats-operator
  patch: |-
    - op: add
      path: /metadata/annotations
      value: {cert-manager.io/inject-ca-from: nats-io/nats-operator-webhook}
- target:
    kind: MutatingWebhookConfiguration
    name: nats-operator
  patch: |-
    - op: add
      path: /metadata/annotations
      value: {cert-manager.io/inject-ca-from: nats-io/nats-operator-webhook}
- target:
    kind: CustomResourceDefinition
    name: natsclusters.nats.io
  patch: |-
    - op: add
      path: /metadata/annotations
      value: {cert-manager.io/inject-ca-from: nats-io/nats-operator-webhook}
";

/// `manifests/overlays/cert-manager/certificate.yaml`.
pub const CERT_MANAGER_CERTIFICATE: &str = "\
# Generated by `nats-operator manifests`; do not edit.
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: nats-operator-selfsigned
  namespace: nats-io
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: nats-operator-webhook
  namespace: nats-io
spec:
  secretName: nats-operator-webhook-tls
  dnsNames:
  - nats-operator.nats-io.svc
  - nats-operator.nats-io.svc.cluster.local
  issuerRef:
    kind: Issuer
    name: nats-operator-selfsigned
";

/// `manifests/overlays/cluster-scoped/kustomization.yaml`: manage NatsClusters in every
/// namespace (the Go operator's `--feature-gates=ClusterScoped=true`).
pub const CLUSTER_SCOPED_OVERLAY: &str = "\
# Generated by `nats-operator manifests`; do not edit.
# Manage NatsClusters in every namespace: the namespaced permissions become cluster-wide.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../base
- cluster-rbac.yaml
patches:
- target:
    kind: Deployment
    name: nats-operator
  patch: |-
    - op: replace
      path: /spec/template/spec/containers/0/args
      value: [run, --cluster-scoped]
";

/// The cluster-wide permissions of the cluster-scoped overlay.
pub fn cluster_scoped_rbac() -> Result<String, crate::yaml::Error> {
    let name = format!("{NAME}-clusters");
    let mut docs = Docs::default();
    docs.0
        .push_str("# Generated by `nats-operator manifests`; do not edit.\n");
    docs.push(&ClusterRole {
        metadata: meta(&name, None),
        rules: Some(namespaced_rules()),
        ..Default::default()
    })?;
    docs.push(&ClusterRoleBinding {
        metadata: meta(&name, None),
        role_ref: role_ref("ClusterRole", &name),
        subjects: Some(vec![subject()]),
    })?;
    Ok(docs.0)
}

/// Every generated file with its path under `manifests/`.
pub fn all_files() -> Result<Vec<(&'static str, String)>, crate::yaml::Error> {
    let mut files = files()?;
    files.push(("base/kustomization.yaml", KUSTOMIZATION.to_string()));
    files.push((
        "overlays/cert-manager/kustomization.yaml",
        CERT_MANAGER_OVERLAY.to_string(),
    ));
    files.push((
        "overlays/cert-manager/certificate.yaml",
        CERT_MANAGER_CERTIFICATE.to_string(),
    ));
    files.push((
        "overlays/cluster-scoped/kustomization.yaml",
        CLUSTER_SCOPED_OVERLAY.to_string(),
    ));
    files.push((
        "overlays/cluster-scoped/cluster-rbac.yaml",
        cluster_scoped_rbac()?,
    ));
    Ok(files)
}
