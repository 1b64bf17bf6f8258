//! The cluster objects that connect the apiserver to our webhooks, generated from code
//! so the checked-in manifests and the test harness use one source of truth.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::crd::ConversionEndpoint;

/// Name of both webhook configurations.
pub const WEBHOOK_CONFIGURATION_NAME: &str = "nats-operator";
/// Name of the validating webhook (shown by the apiserver in call failures).
pub const VALIDATING_WEBHOOK_NAME: &str = "validate.nats.io";
/// Name of the validating webhook that guards JetStream data (deletes and `scale`).
pub const GUARD_WEBHOOK_NAME: &str = "guard.nats.io";
/// Name of the mutating webhook.
pub const MUTATING_WEBHOOK_NAME: &str = "default.nats.io";
/// Path of the validating webhook.
pub const VALIDATE_PATH: &str = "/validate";
/// Path of the mutating webhook.
pub const MUTATE_PATH: &str = "/mutate";
/// Seconds the apiserver waits for an answer: small, so a dead webhook fails fast.
pub const TIMEOUT_SECONDS: i32 = 5;

fn client_config(
    endpoint: &ConversionEndpoint,
    path: &str,
    ca_bundle: Option<&[u8]>,
) -> WebhookClientConfig {
    let ca_bundle = ca_bundle.map(|b| ByteString(b.to_vec()));
    match endpoint {
        ConversionEndpoint::Service {
            namespace,
            name,
            port,
        } => WebhookClientConfig {
            service: Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(path.to_string()),
                port: Some(*port),
            }),
            ca_bundle,
            url: None,
        },
        ConversionEndpoint::Url(base) => WebhookClientConfig {
            service: None,
            ca_bundle,
            url: Some(format!("{}{path}", base.trim_end_matches('/'))),
        },
    }
}

/// Our kinds in both served versions, on CREATE and UPDATE only: deletes and
/// subresources (status, scale) never pass through these webhooks.
fn rules() -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec!["nats.io".into()]),
        api_versions: Some(vec!["v1alpha2".into(), "v1beta1".into()]),
        operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
        resources: Some(vec!["natsclusters".into(), "natsserviceroles".into()]),
        scope: Some("Namespaced".into()),
    }]
}

/// NACK's kinds, on CREATE and UPDATE: validated only (their defaults are the schema's).
fn asset_rules() -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec![crate::jetstream::GROUP.into()]),
        api_versions: Some(vec!["v1beta2".into()]),
        operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
        resources: Some(
            crate::jetstream::crd::RESOURCES
                .iter()
                .map(|r| r.to_string())
                .collect(),
        ),
        scope: Some("Namespaced".into()),
    }]
}

/// What the data guard sees: a NatsCluster's deletion, and its `scale` subresource
/// (`kubectl scale`, autoscalers), whose changes of `spec.size` bypass [`rules`].
fn guard_rules() -> Vec<RuleWithOperations> {
    let rule = |operation: &str, resource: &str| RuleWithOperations {
        api_groups: Some(vec!["nats.io".into()]),
        api_versions: Some(vec!["v1alpha2".into(), "v1beta1".into()]),
        operations: Some(vec![operation.into()]),
        resources: Some(vec![resource.into()]),
        scope: Some("Namespaced".into()),
    };
    vec![
        rule("DELETE", "natsclusters"),
        rule("UPDATE", "natsclusters/scale"),
    ]
}

fn configuration_meta() -> ObjectMeta {
    ObjectMeta {
        name: Some(WEBHOOK_CONFIGURATION_NAME.into()),
        labels: Some(
            [(
                "app.kubernetes.io/name".to_string(),
                "nats-operator".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    }
}

/// The ValidatingWebhookConfiguration. `endpoint` is the operator's Service, or a base
/// URL such as `https://127.0.0.1:9443` in tests.
pub fn validating_webhook_configuration(
    endpoint: &ConversionEndpoint,
    ca_bundle: Option<&[u8]>,
) -> ValidatingWebhookConfiguration {
    let webhook =
        |name: &str, failure_policy: &str, rules: Vec<RuleWithOperations>| ValidatingWebhook {
            name: name.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: client_config(endpoint, VALIDATE_PATH, ca_bundle),
            failure_policy: Some(failure_policy.into()),
            match_policy: Some("Equivalent".into()),
            rules: Some(rules),
            side_effects: "None".into(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            ..Default::default()
        };
    ValidatingWebhookConfiguration {
        metadata: configuration_meta(),
        webhooks: Some(vec![
            webhook(
                VALIDATING_WEBHOOK_NAME,
                "Fail",
                [rules(), asset_rules()].concat(),
            ),
            // `Ignore`: with the operator gone (uninstalled, or down), a NatsCluster must
            // still be deletable and scalable; the guard protects data while it runs.
            webhook(GUARD_WEBHOOK_NAME, "Ignore", guard_rules()),
        ]),
    }
}

/// The MutatingWebhookConfiguration (defaulting).
pub fn mutating_webhook_configuration(
    endpoint: &ConversionEndpoint,
    ca_bundle: Option<&[u8]>,
) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: configuration_meta(),
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK_NAME.into(),
            admission_review_versions: vec!["v1".into()],
            client_config: client_config(endpoint, MUTATE_PATH, ca_bundle),
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            rules: Some(rules()),
            side_effects: "None".into(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            reinvocation_policy: Some("IfNeeded".into()),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_endpoints_get_the_path_and_service_endpoints_the_port() {
        let v = validating_webhook_configuration(
            &ConversionEndpoint::Url("https://127.0.0.1:9443/".into()),
            Some(b"PEM"),
        );
        let hook = v.webhooks.unwrap_or_default().remove(0);
        assert_eq!(
            hook.client_config.url.as_deref(),
            Some("https://127.0.0.1:9443/validate")
        );
        assert_eq!(hook.side_effects, "None");
        assert_eq!(hook.match_policy.as_deref(), Some("Equivalent"));
        let m = mutating_webhook_configuration(&ConversionEndpoint::default(), None);
        let hook = m.webhooks.unwrap_or_default().remove(0);
        let svc = hook.client_config.service.unwrap_or_default();
        assert_eq!(
            (svc.name.as_str(), svc.path.as_deref(), svc.port),
            ("nats-operator", Some("/mutate"), Some(443))
        );
    }
}
