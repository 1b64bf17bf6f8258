//! The CustomResourceDefinitions, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, ServiceReference, WebhookClientConfig,
    WebhookConversion,
};
use kube::core::crd::{CustomResourceExt, merge_crds};

use super::{v1alpha2, v1beta1};

/// Where the apiserver reaches the conversion webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversionEndpoint {
    /// The operator's Service (the installed case).
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// Port of the Service.
        port: i32,
    },
    /// A URL such as `https://127.0.0.1:9443/convert` (tests, local development).
    Url(String),
}

impl Default for ConversionEndpoint {
    fn default() -> Self {
        ConversionEndpoint::Service {
            namespace: "nats-io".into(),
            name: "nats-operator".into(),
            port: 443,
        }
    }
}

/// Path of the conversion webhook on the operator's HTTPS server.
pub const CONVERT_PATH: &str = "/convert";

/// The NatsCluster CRD: v1alpha2 served and deprecated, v1beta1 served and stored,
/// converted by our webhook at `endpoint`, trusting `ca_bundle` (PEM) if given.
pub fn nats_cluster(
    endpoint: &ConversionEndpoint,
    ca_bundle: Option<&[u8]>,
) -> CustomResourceDefinition {
    let crds = vec![v1alpha2::NatsCluster::crd(), v1beta1::NatsCluster::crd()];
    let mut crd = merge_or_first(crds);
    let client_config = match endpoint {
        ConversionEndpoint::Service {
            namespace,
            name,
            port,
        } => WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(CONVERT_PATH.into()),
                port: Some(*port),
            }),
            ca_bundle: ca_bundle.map(|b| k8s_openapi::ByteString(b.to_vec())),
            url: None,
        },
        ConversionEndpoint::Url(url) => WebhookClientConfig {
            service: None,
            ca_bundle: ca_bundle.map(|b| k8s_openapi::ByteString(b.to_vec())),
            url: Some(url.clone()),
        },
    };
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            client_config: Some(client_config),
            conversion_review_versions: vec!["v1".into()],
        }),
    });
    crd
}

/// The NatsServiceRole CRD: both versions share one schema, so the apiserver converts
/// them itself (strategy `None`) and no webhook is in the path.
pub fn nats_service_role() -> CustomResourceDefinition {
    merge_or_first(vec![
        v1alpha2::NatsServiceRole::crd(),
        v1beta1::NatsServiceRole::crd(),
    ])
}

fn merge_or_first(crds: Vec<CustomResourceDefinition>) -> CustomResourceDefinition {
    // The inputs are generated from our own types with equal names and scope, so the
    // merge cannot fail; fall back to the storage version alone rather than panicking.
    let fallback = crds.last().cloned().unwrap_or_default();
    merge_crds(crds, "v1beta1").unwrap_or(fallback)
}

/// Every CRD the operator serves: NatsCluster and NatsServiceRole, then NACK's
/// `jetstream.nats.io` kinds.
pub fn all_crds(endpoint: &ConversionEndpoint) -> Vec<CustomResourceDefinition> {
    let mut crds = vec![nats_cluster(endpoint, None), nats_service_role()];
    crds.extend(crate::jetstream::crd::asset_crds());
    crds
}

/// Every CRD as multi-document YAML, as `nats-operator crds` prints them.
pub fn crds_yaml(endpoint: &ConversionEndpoint) -> Result<String, crate::yaml::Error> {
    let mut out = String::new();
    for crd in all_crds(endpoint) {
        out.push_str("---\n");
        out.push_str(&crate::yaml::to_string(&crd)?);
    }
    Ok(out)
}
