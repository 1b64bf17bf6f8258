//! CEL rules (`x-kubernetes-validations`) and enums the CRD schemas carry, so the
//! apiserver itself rejects the cheap, local mistakes even when the webhooks are down.
//!
//! Every rule here mirrors a check of [`super::validate`] (the webhook stays the source of
//! truth and reports every problem at once); each is constant-cost (`has`, `size`, integer
//! comparisons, bounded string equality) so the apiserver's cost estimator accepts them.
//! The enums of enumerated fields come from [`super::choices`]; they list `""` (unset).

use serde::Serialize;

/// One `x-kubernetes-validations` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The CEL expression; `self` is the object the rule is attached to.
    pub rule: &'static str,
    /// What the user reads, saying what to change.
    pub message: &'static str,
    /// Path of the field to blame, relative to `self` (such as `.port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_path: Option<&'static str>,
    /// `FieldValueRequired`, `FieldValueForbidden`, `FieldValueInvalid` or `FieldValueDuplicate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Most extra routes a cluster may list (bounds the cost of the per-item rule).
pub const MAX_EXTRA_ROUTES: u32 = 64;

/// On each `spec.extraRoutes[*]` item, both versions.
pub const EXTRA_ROUTE: Rule = Rule {
    rule: "(has(self.cluster) && size(self.cluster) != 0) != (has(self.route) && size(self.route) != 0)",
    message: "set exactly one of cluster (another NatsCluster in this namespace) or route (a URL such as nats://host:6222)",
    field_path: None,
    reason: None,
};

/// On v1alpha2 `spec.gatewayConfig`.
pub const GATEWAY_HOST_PORT_REQUIRED: Rule = Rule {
    rule: "has(self.hostPort) && self.hostPort != 0",
    message: "set hostPort to the gateway listen port, such as 7522",
    field_path: Some(".hostPort"),
    reason: Some("FieldValueRequired"),
};

/// On v1beta1 `spec.gateway`.
pub const GATEWAY_PORT_REQUIRED: Rule = Rule {
    rule: "has(self.port) && self.port != 0",
    message: "set port to the gateway listen port, such as 7522",
    field_path: Some(".port"),
    reason: Some("FieldValueRequired"),
};

/// On the gateway block of both versions.
pub const GATEWAY_NAME_REQUIRED: Rule = Rule {
    rule: "has(self.name) && size(self.name) != 0",
    message: "set name to the name of this cluster's gateway",
    field_path: Some(".name"),
    reason: Some("FieldValueRequired"),
};

/// On the websocket block of both versions.
pub const WEBSOCKET_PORT_REQUIRED: Rule = Rule {
    rule: "has(self.port) && self.port != 0",
    message: "set port to the websocket listen port, such as 8080",
    field_path: Some(".port"),
    reason: Some("FieldValueRequired"),
};

/// On v1beta1 `spec.tls.{client,routes,gateway,leafnode,websocket}`.
pub const TLS_SECRET_REQUIRED: Rule = Rule {
    rule: "has(self.secret) && size(self.secret) != 0",
    message: "set secret to the Secret that holds the certificate, key and CA, or remove this TLS block",
    field_path: Some(".secret"),
    reason: Some("FieldValueRequired"),
};

/// Transition rule on v1beta1 `spec.jetstream.fileStorage`: existing members' volumes
/// keep their class (a missing field and `""` both mean the cluster's default class).
pub const STORAGE_CLASS_IMMUTABLE: Rule = Rule {
    rule: "(has(self.storageClassName) ? self.storageClassName : '') == (has(oldSelf.storageClassName) ? oldSelf.storageClassName : '')",
    message: "storageClassName cannot change once volumes exist; set it back to its previous value",
    field_path: Some(".storageClassName"),
    reason: Some("FieldValueForbidden"),
};

/// Every rule, for tests and documentation.
pub const ALL: [Rule; 7] = [
    EXTRA_ROUTE,
    GATEWAY_HOST_PORT_REQUIRED,
    GATEWAY_PORT_REQUIRED,
    GATEWAY_NAME_REQUIRED,
    WEBSOCKET_PORT_REQUIRED,
    TLS_SECRET_REQUIRED,
    STORAGE_CLASS_IMMUTABLE,
];
