//! The admission decisions on whole objects as JSON, for either served version: what
//! the validating and mutating webhooks call. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::field::{FieldError, Validation};
use super::references::{self, References};
use super::{V1ALPHA2, V1BETA1, defaults, v1alpha2 as a, v1beta1 as b, validate};

/// Decodes `value` (or its `spec`) into `T`, turning serde's error into a field error
/// that names the offending path. Reads `value` in place: nothing is cloned up front.
/// Paths are tracked only when decoding fails (a second, tracked pass finds the path).
fn decode<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, FieldError> {
    let empty;
    let v = if value.is_null() {
        empty = Value::Object(Default::default());
        &empty
    } else {
        value
    };
    if let Ok(t) = <T as serde::Deserialize>::deserialize(v) {
        return Ok(t);
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        let field = if inner == "." || inner.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{inner}")
        };
        let mut msg = e.inner().to_string();
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        FieldError::invalid(field, "<value>", msg)
    })
}

/// The annotation in which a v1alpha2 object carries its v1beta1-only fields.
fn beta_residual(obj: &Value) -> Option<&Value> {
    obj.pointer("/metadata/annotations")?
        .get(super::convert::BETA_RESIDUAL_ANNOTATION)
}

/// The update leaves the spec as it was, and the v1beta1-only fields a v1alpha2 object
/// carries in its residual annotation too.
fn unchanged(new: &Value, old: &Value) -> bool {
    new.get("spec") == old.get("spec") && beta_residual(new) == beta_residual(old)
}

/// `status.volumeSize` of a v1beta1 object.
fn volume_size(obj: &Value) -> &str {
    obj.pointer("/status/volumeSize")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A v1alpha2 NatsCluster as the v1beta1 object it converts to (residual included).
fn as_v1beta1(obj: &Value) -> Result<b::NatsCluster, FieldError> {
    let converted = super::convert::convert_object(obj.clone(), V1BETA1).map_err(|e| {
        FieldError::invalid(
            format!(
                "metadata.annotations[{}]",
                super::convert::BETA_RESIDUAL_ANNOTATION
            ),
            "<value>",
            e,
        )
    })?;
    decode(&converted, "")
}

fn kind_and_version(obj: &Value) -> (&str, &str) {
    (
        obj.get("kind").and_then(Value::as_str).unwrap_or(""),
        obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
    )
}

fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

fn unsupported(kind: &str, api_version: &str) -> Vec<FieldError> {
    vec![FieldError::not_supported(
        "apiVersion",
        &format!("{api_version} {kind}"),
        &[
            "nats.io/v1beta1 NatsCluster",
            "nats.io/v1alpha2 NatsCluster",
            "nats.io/v1beta1 NatsServiceRole",
            "nats.io/v1alpha2 NatsServiceRole",
        ],
    )]
}

/// Validates a new object against the stored one (`old`, on UPDATE).
pub fn validate_object(new: &Value, old: Option<&Value>) -> Validation {
    validate_object_with(new, old, None)
}

/// [`validate_object`], plus warnings about broken references of a NatsCluster whose
/// spec changed (see [`references`]) when `refs` can look up `namespace`'s objects.
/// References never deny: the objects may be created later.
pub fn validate_object_with(
    new: &Value,
    old: Option<&Value>,
    refs: Option<(&str, &dyn References)>,
) -> Validation {
    let (mut warnings, judged) = validate_spec(new, old)?;
    let (Some((namespace, refs)), Some((beta, alpha))) = (refs, judged) else {
        return Ok(warnings);
    };
    warnings.extend(
        references::reference_warnings(namespace, name(new), &beta, refs)
            .iter()
            .map(|w| w.message(namespace, alpha)),
    );
    Ok(warnings)
}

/// What [`validate_spec`] allowed: its warnings, and the NatsCluster spec it checked in
/// v1beta1 terms, with whether the object is v1alpha2 (`None` when no spec was checked:
/// a deletion, an unchanged spec, another kind), for the reference warnings.
type Judged = (Vec<String>, Option<(b::NatsClusterSpec, bool)>);

fn validate_spec(new: &Value, old: Option<&Value>) -> Result<Judged, Vec<FieldError>> {
    // An object on its way out is never blocked (finalizer removal must go through).
    if new
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok((Vec::new(), None));
    }
    let (kind, api_version) = kind_and_version(new);
    let spec = new.get("spec").unwrap_or(&Value::Null);
    let old_spec = old.map(|o| o.get("spec").unwrap_or(&Value::Null));
    // Stored objects may predate every rule (the Go operator had no schema): if the
    // spec did not change, let the update through without decoding anything.
    if old.is_some_and(|o| unchanged(new, o)) {
        return Ok((Vec::new(), None));
    }
    match (kind, api_version) {
        ("NatsCluster", V1BETA1) => {
            let new_spec: b::NatsClusterSpec = decode(spec, "spec").map_err(|e| vec![e])?;
            let old_spec = old_spec.and_then(|o| decode::<b::NatsClusterSpec>(o, "spec").ok());
            let warnings = validate::validate_v1beta1(
                name(new),
                &new_spec,
                old_spec.as_ref(),
                old.map_or("", volume_size),
            )?;
            Ok((warnings, Some((new_spec, false))))
        }
        ("NatsCluster", V1ALPHA2)
            if beta_residual(new).is_some() || old.is_some_and(|o| beta_residual(o).is_some()) =>
        {
            // v1beta1-only fields (JetStream, MQTT, ...) ride in the residual annotation:
            // judge the object as the v1beta1 one it reads back as.
            let alpha: a::ClusterSpec = decode(spec, "spec").map_err(|e| vec![e])?;
            let beta = as_v1beta1(new).map_err(|e| vec![e])?;
            let new_spec = validate::AlphaAsBeta::read_back(&alpha, beta.spec);
            let old_beta = old.and_then(|o| as_v1beta1(o).ok());
            let warnings = if old_beta.as_ref().is_some_and(|o| o.spec == new_spec.beta) {
                Vec::new()
            } else {
                validate::validate_v1alpha2_as_beta(
                    name(new),
                    &new_spec,
                    old_beta.as_ref().map(|o| &o.spec),
                    old_beta
                        .as_ref()
                        .and_then(|o| o.status.as_ref())
                        .map_or("", |s| s.volume_size.as_str()),
                )?
            };
            Ok((warnings, Some((new_spec.beta, true))))
        }
        ("NatsCluster", V1ALPHA2) => {
            let alpha: a::ClusterSpec = decode(spec, "spec").map_err(|e| vec![e])?;
            let old_alpha = old_spec.and_then(|o| decode::<a::ClusterSpec>(o, "spec").ok());
            if old_alpha.as_ref() == Some(&alpha) {
                return Ok((
                    Vec::new(),
                    Some((super::convert::spec_up_owned(alpha), true)),
                ));
            }
            let new_spec = validate::AlphaAsBeta::converted(alpha);
            let old_beta = old_alpha.map(super::convert::spec_up_owned);
            let warnings =
                validate::validate_v1alpha2_as_beta(name(new), &new_spec, old_beta.as_ref(), "")?;
            Ok((warnings, Some((new_spec.beta, true))))
        }
        ("NatsServiceRole", V1BETA1 | V1ALPHA2) => {
            let new_spec: a::ServiceRoleSpec = decode(spec, "spec").map_err(|e| vec![e])?;
            let old_spec = old_spec.and_then(|o| decode::<a::ServiceRoleSpec>(o, "spec").ok());
            validate::validate_service_role(&labels(new), &new_spec, old_spec.as_ref())
                .map(|w| (w, None))
        }
        _ => Err(unsupported(kind, api_version)),
    }
}

/// The defaulted object and warnings, in the object's own version. Objects that do
/// not decode are returned unchanged: the validating webhook explains what is wrong.
pub fn default_object(new: &Value, old: Option<&Value>) -> (Value, Vec<String>) {
    let (kind, api_version) = kind_and_version(new);
    let spec = new.get("spec").unwrap_or(&Value::Null);
    let old_spec = old.map(|o| o.get("spec").unwrap_or(&Value::Null));
    let mut out = new.clone();
    let (spec_value, warnings) = match (kind, api_version) {
        ("NatsCluster", V1BETA1) => {
            let Ok(mut s) = decode::<b::NatsClusterSpec>(spec, "spec") else {
                return (out, Vec::new());
            };
            let old = old_spec.and_then(|o| decode::<b::NatsClusterSpec>(o, "spec").ok());
            let w = defaults::default_v1beta1(&mut s, old.as_ref());
            (serde_json::to_value(&s), w)
        }
        ("NatsCluster", V1ALPHA2) => {
            let Ok(mut s) = decode::<a::ClusterSpec>(spec, "spec") else {
                return (out, Vec::new());
            };
            let old = old_spec.and_then(|o| decode::<a::ClusterSpec>(o, "spec").ok());
            let w = defaults::default_v1alpha2(&mut s, old.as_ref());
            (serde_json::to_value(&s), w)
        }
        _ => return (out, Vec::new()),
    };
    if let (Ok(v), Some(map)) = (spec_value, out.as_object_mut()) {
        // Only what defaulting changed is touched, so that spec keys the user wrote (even
        // empty ones) stay as written otherwise; the spec is merged in place, not copied.
        match map.get_mut("spec") {
            Some(spec) => merge_defaults(spec, v),
            None => {
                map.insert("spec".into(), v);
            }
        }
    }
    (out, warnings)
}

/// Brings `target` to `defaulted` while keeping keys of `target` that the typed round
/// trip would drop (explicit zero values), so the patch only carries real changes.
/// Equal subtrees are left alone.
fn merge_defaults(target: &mut Value, defaulted: Value) {
    if *target == defaulted {
        return;
    }
    match (target, defaulted) {
        (Value::Object(t), Value::Object(d)) => {
            // A key the defaulting removed on purpose (the moved writeDeadline spelling).
            if !d.contains_key("writeDeadline")
                && t.get("writeDeadline").is_some_and(|v| !is_zero(v))
            {
                t.remove("writeDeadline");
            }
            for (k, dv) in d {
                match t.get_mut(&k) {
                    Some(tv) => merge_defaults(tv, dv),
                    None => {
                        t.insert(k, dv);
                    }
                }
            }
        }
        (t, d) => *t = d,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    /// A namespace with no Secrets and no NatsClusters.
    struct Empty;

    impl References for Empty {
        fn secret_keys(&self, _: &str, _: &str) -> Option<BTreeSet<String>> {
            None
        }
        fn cluster_exists(&self, _: &str, _: &str) -> bool {
            false
        }
    }

    fn cluster(version: &str, spec: Value) -> Value {
        json!({"apiVersion": version, "kind": "NatsCluster", "metadata": {"name": "n"}, "spec": spec})
    }

    #[test]
    fn reference_warnings_in_both_versions() {
        let beta = cluster(
            V1BETA1,
            json!({"size": 1, "tls": {"client": {"secret": "x"}}}),
        );
        let alpha = cluster(V1ALPHA2, json!({"size": 1, "tls": {"serverSecret": "x"}}));
        let refs: Option<(&str, &dyn References)> = Some(("ns", &Empty));
        let w = validate_object_with(&beta, None, refs).unwrap_or_default();
        assert!(
            w.iter()
                .any(|w| w.starts_with("spec.tls.client.secret: Secret \"x\" not found")),
            "{w:?}"
        );
        let w = validate_object_with(&alpha, None, refs).unwrap_or_default();
        assert!(
            w.iter()
                .any(|w| w.starts_with("spec.tls.serverSecret: Secret \"x\" not found")),
            "{w:?}"
        );
        // A v1alpha2 object's v1beta1-only fields (its residual annotation) count too.
        let mqtt = cluster(
            V1BETA1,
            json!({"size": 1, "jetstream": {}, "mqtt": {}, "tls": {"mqtt": {"secret": "m"}}}),
        );
        let carried = super::super::convert::convert_object(mqtt, V1ALPHA2).unwrap_or_default();
        assert!(beta_residual(&carried).is_some(), "{carried}");
        let w = validate_object_with(&carried, None, refs).unwrap_or_default();
        assert!(
            w.iter()
                .any(|w| w.starts_with("spec.tls.mqtt.secret: Secret \"m\" not found")),
            "{w:?}"
        );
        // Without a cache (or an unsynced one) there is nothing to say.
        let w = validate_object_with(&alpha, None, None).unwrap_or_default();
        assert!(!w.iter().any(|w| w.contains("not found")), "{w:?}");
    }

    #[test]
    fn unchanged_specs_denials_and_other_kinds_get_no_reference_warnings() {
        let refs: Option<(&str, &dyn References)> = Some(("ns", &Empty));
        let obj = cluster(
            V1BETA1,
            json!({"size": 1, "extraRoutes": [{"cluster": "b"}]}),
        );
        let mut relabelled = obj.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        assert_eq!(
            validate_object_with(&relabelled, Some(&obj), refs),
            Ok(Vec::new())
        );
        let invalid = cluster(
            V1BETA1,
            json!({"size": -1, "extraRoutes": [{"cluster": "b"}]}),
        );
        assert!(validate_object_with(&invalid, None, refs).is_err());
        let role = json!({"apiVersion": V1BETA1, "kind": "NatsServiceRole",
            "metadata": {"name": "r", "labels": {"nats_cluster": "b"}}, "spec": {}});
        assert_eq!(validate_object_with(&role, None, refs), Ok(Vec::new()));
    }
}
