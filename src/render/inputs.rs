//! The referenced authorization Secrets, decoded: the reconciler (Secrets read from the
//! API) and `nats-operator render` (Secrets of the input file) both go through
//! [`auth_inputs`], so they agree on what a Secret means and on what is wrong with it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::nats_conf::{AuthInputs, ServiceRoleUser};
use super::system_user::SystemUser;
use crate::api::v1beta1::NatsClusterSpec;

/// A user's mistake in something the cluster references: what is wrong, where, and
/// what to change. It becomes the `Degraded` condition and one Warning Event; the
/// operator then waits for a change instead of retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputProblem {
    /// The field of the NatsCluster that names the input (`spec.auth.clients.secret`).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The input does not exist (rather than having the wrong shape).
    pub missing: bool,
}

impl InputProblem {
    /// The reason of the `Degraded` condition and the Event.
    pub fn reason(&self) -> &'static str {
        if self.missing {
            "MissingInput"
        } else {
            "InvalidInput"
        }
    }
}

/// One authorization Secret a spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretRef<'a> {
    /// The field that names it.
    pub field: &'static str,
    /// The Secret's name (in the cluster's namespace).
    pub name: &'a str,
    /// Which input it fills.
    slot: Slot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Clients,
    Routes,
    Gateway,
    Accounts,
}

/// The authorization Secrets `spec` reads, in a fixed order. The clients Secret is not
/// read with service-account authentication, nor the gateway one without a gateway,
/// as the server would never see them.
pub fn referenced_secrets(spec: &NatsClusterSpec) -> Vec<SecretRef<'_>> {
    let Some(auth) = spec.auth.as_ref() else {
        return Vec::new();
    };
    let clients = auth.clients.as_ref().filter(|c| !c.service_accounts);
    let gateway = auth.gateway.as_ref().filter(|_| spec.gateway.is_some());
    [
        (
            "spec.auth.clients.secret",
            Slot::Clients,
            clients.map(|c| c.secret.as_str()),
        ),
        (
            "spec.auth.routes.secret",
            Slot::Routes,
            auth.routes.as_ref().map(|r| r.secret.as_str()),
        ),
        (
            "spec.auth.gateway.secret",
            Slot::Gateway,
            gateway.map(|g| g.secret.as_str()),
        ),
        (
            "spec.auth.accounts.secret",
            Slot::Accounts,
            auth.accounts.as_ref().map(|a| a.secret.as_str()),
        ),
    ]
    .into_iter()
    .filter_map(|(field, slot, name)| {
        let name = name.filter(|n| !n.is_empty())?;
        Some(SecretRef { field, name, slot })
    })
    .collect()
}

/// The decoded contents of a Secret: key to bytes (`data`, or `stringData` offline).
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The JSON object a Secret holds for `field`, or what is wrong with it.
pub fn secret_json(
    field: &'static str,
    namespace: &str,
    name: &str,
    data: Option<&SecretData>,
) -> Result<Value, InputProblem> {
    let problem = |message: String| InputProblem {
        field,
        message,
        missing: false,
    };
    let data = data.ok_or_else(|| InputProblem {
        missing: true,
        ..problem(format!(
            "Secret {namespace}/{name} does not exist; create it with one key holding the JSON authorization"
        ))
    })?;
    let mut values = data.iter();
    let (key, raw) = match (values.next(), values.next()) {
        (Some(one), None) => one,
        _ => {
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            return Err(problem(format!(
                "Secret {namespace}/{name} must have exactly one key holding the JSON authorization; it has {} ({})",
                keys.len(),
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            )));
        }
    };
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        problem(format!(
            "key {key:?} of Secret {namespace}/{name} is not JSON ({e}); write a JSON object"
        ))
    })?;
    let kind = match &value {
        Value::Object(m) if m.is_empty() && field == "spec.auth.accounts.secret" => {
            "an empty object"
        }
        Value::Object(_) => return Ok(value),
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    };
    let want = if field == "spec.auth.accounts.secret" {
        r#"an object of accounts, {"A": {"users": [...]}}"#
    } else {
        r#"an authorization object, {"users": [...]}"#
    };
    Err(problem(format!(
        "key {key:?} of Secret {namespace}/{name} holds {kind}; it must hold {want}"
    )))
}

/// The inputs of `nats.conf`: every Secret `spec` references, looked up by name with
/// `lookup` (`None` when it does not exist), and the service-role users. The first
/// problem found is returned: without its inputs a config would open the cluster.
pub fn auth_inputs<'s>(
    spec: &NatsClusterSpec,
    namespace: &str,
    lookup: impl Fn(&str) -> Option<&'s SecretData>,
    service_roles: Vec<ServiceRoleUser>,
) -> Result<AuthInputs, InputProblem> {
    let mut out = AuthInputs {
        service_roles,
        ..AuthInputs::default()
    };
    for r in referenced_secrets(spec) {
        let value = secret_json(r.field, namespace, r.name, lookup(r.name))?;
        let slot = match r.slot {
            Slot::Clients => &mut out.clients,
            Slot::Routes => &mut out.routes,
            Slot::Gateway => &mut out.gateway,
            Slot::Accounts => &mut out.accounts,
        };
        *slot = Some(value);
    }
    Ok(out)
}

/// The operator's system user from its Secret (keys `username` and `password`), when
/// both are there and not empty.
pub fn system_user(data: &SecretData) -> Option<SystemUser> {
    let text = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    Some(SystemUser {
        username: text("username")?,
        password: text("password")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1beta1::{AccountsAuth, Auth, ClientAuth, SecretAuth};

    fn data(text: &str) -> SecretData {
        BTreeMap::from([("auth.json".to_string(), text.as_bytes().to_vec())])
    }

    #[test]
    fn every_shape_mistake_names_the_field_and_the_fix() {
        let f = "spec.auth.clients.secret";
        let missing = secret_json(f, "ns", "auth", None).err();
        assert!(missing.is_some_and(|p| p.to_string()
            == "spec.auth.clients.secret: Secret ns/auth does not exist; create it with one key holding the JSON authorization"));
        let two = BTreeMap::from([
            ("a".to_string(), b"{}".to_vec()),
            ("b".to_string(), b"{}".to_vec()),
        ]);
        let e = secret_json(f, "ns", "auth", Some(&two))
            .err()
            .map(|p| p.message);
        assert_eq!(
            e.as_deref(),
            Some(
                "Secret ns/auth must have exactly one key holding the JSON authorization; it has 2 (a, b)"
            )
        );
        let e = secret_json(f, "ns", "auth", Some(&data("[1]")))
            .err()
            .map(|p| p.message);
        assert_eq!(
            e.as_deref(),
            Some(
                r#"key "auth.json" of Secret ns/auth holds an array; it must hold an authorization object, {"users": [...]}"#
            )
        );
        let e = secret_json(f, "ns", "auth", Some(&data("{")))
            .err()
            .map(|p| p.message);
        assert!(e.is_some_and(|m| m.contains("is not JSON")));
        let e = secret_json("spec.auth.accounts.secret", "ns", "a", Some(&data("{}"))).err();
        assert!(e.is_some_and(|p| p.message.contains("holds an empty object")));
        assert!(secret_json(f, "ns", "auth", Some(&data(r#"{"users": []}"#))).is_ok());
    }

    #[test]
    fn reads_only_what_the_server_would_see() {
        let spec = NatsClusterSpec {
            auth: Some(Auth {
                clients: Some(ClientAuth {
                    secret: "clients".into(),
                    service_accounts: true,
                    ..Default::default()
                }),
                gateway: Some(SecretAuth {
                    secret: "gw".into(),
                    ..Default::default()
                }),
                routes: Some(SecretAuth {
                    secret: "routes".into(),
                    ..Default::default()
                }),
                accounts: Some(AccountsAuth {
                    secret: "acc".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let names: Vec<&str> = referenced_secrets(&spec).iter().map(|r| r.name).collect();
        assert_eq!(names, ["routes", "acc"]);
        let secrets = BTreeMap::from([
            ("routes".to_string(), data(r#"{"users": []}"#)),
            ("acc".to_string(), data(r#"{"A": {}}"#)),
        ]);
        let inputs = auth_inputs(&spec, "ns", |n| secrets.get(n), Vec::new());
        assert!(
            inputs.is_ok_and(|i| i.routes.is_some() && i.accounts.is_some() && i.clients.is_none())
        );
        let inputs = auth_inputs(&spec, "ns", |_| None, Vec::new());
        assert!(inputs.is_err_and(|p| p.field == "spec.auth.routes.secret"));
    }
}
