//! Conversion between `v1alpha2` and `v1beta1` (hub and spoke: `v1beta1` is the hub).
//!
//! [`up`] and [`down`] map fields one to one. Whatever one version can't express
//! survives in an annotation on the other: a JSON merge patch that turns the plain
//! conversion back into the original, plus a hash of what it was computed from. When
//! the object comes back unchanged, the patch restores it exactly; when a user edited
//! it in the other version, only the parts the user could not have written (keys the
//! plain conversion doesn't produce) are restored, so user edits always win.
//! This makes `v1alpha2 → v1beta1 → v1alpha2` and `v1beta1 → v1alpha2 → v1beta1`
//! lossless for every field, metadata is only touched in `annotations`, and nothing
//! here can panic on an object the apiserver could have stored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::choices::{AntiAffinity, PullPolicy, ServerNameSource};
use super::{V1ALPHA2, V1BETA1, v1alpha2 as a, v1beta1 as b};

/// On `v1alpha2` objects: what only `v1beta1` could express.
pub const BETA_RESIDUAL_ANNOTATION: &str = "nats.io/v1beta1-residual";
/// On `v1beta1` objects: what only `v1alpha2` could express.
pub const ALPHA_RESIDUAL_ANNOTATION: &str = "nats.io/v1alpha2-residual";

/// Why an object could not be converted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConvertError {
    /// The target version is not one we serve.
    #[error("unsupported apiVersion {0:?}: expected nats.io/v1alpha2 or nats.io/v1beta1")]
    UnsupportedVersion(String),
    /// The kind is not one of ours.
    #[error("unsupported kind {0:?}: expected NatsCluster or NatsServiceRole")]
    UnsupportedKind(String),
    /// The object does not decode as its declared version.
    #[error("cannot decode {kind} {api_version}: {message}")]
    Decode {
        /// Kind of the object.
        kind: String,
        /// apiVersion of the object.
        api_version: String,
        /// What serde said.
        message: String,
    },
}

/// Converts one object (a `NatsCluster` or `NatsServiceRole` as JSON) to
/// `desired_api_version`. Objects already in that version are returned unchanged.
pub fn convert_object(object: Value, desired_api_version: &str) -> Result<Value, ConvertError> {
    convert_with(object, desired_api_version, true)
}

/// [`convert_object`] on JSON text, for the common case only: a `NatsCluster` with no
/// residual annotation whose conversion needs none either. The object is decoded in one
/// pass straight into the typed spec and status of the other served version, and the
/// result written straight from them, with `metadata` passed through as text: about
/// half the work of the `Value` path. `None` means "not that case" (or not decodable):
/// use [`convert_object`], which also produces the error messages. When `Some`, the
/// JSON equals what [`convert_object`] returns for the same object.
pub fn convert_text(
    object: &str,
    desired_api_version: &str,
) -> Option<Box<serde_json::value::RawValue>> {
    match desired_api_version {
        V1ALPHA2 => text_one_way::<b::NatsClusterSpec, b::NatsClusterStatus, _, _>(
            object,
            (V1BETA1, V1ALPHA2),
            (spec_down, spec_up),
            (status_down, status_up),
        ),
        V1BETA1 => text_one_way::<a::ClusterSpec, a::ClusterStatus, _, _>(
            object,
            (V1ALPHA2, V1BETA1),
            (spec_up, spec_down),
            (status_up, status_down),
        ),
        _ => None,
    }
}

/// A part's conversion to the other version and back.
type ThereAndBack<A, B> = (fn(&A) -> B, fn(&B) -> A);

/// [`convert_text`] from version `from` (spec `S`, status `T`) to `to` (`S2`, `T2`),
/// with each part's conversion there and back.
fn text_one_way<S, T, S2, T2>(
    object: &str,
    (from, to): (&str, &str),
    spec: ThereAndBack<S, S2>,
    status: ThereAndBack<T, T2>,
) -> Option<Box<serde_json::value::RawValue>>
where
    S: serde::de::DeserializeOwned + PartialEq,
    T: serde::de::DeserializeOwned + PartialEq,
    S2: serde::Serialize,
    T2: serde::Serialize,
{
    let o: TextObject<'_, S, T> = serde_json::from_str(object).ok()?;
    let (original_spec, original_status) = o.plain(from)?;
    let converted_spec = lossless(original_spec, spec.0, spec.1)?;
    let converted_status = match original_status {
        Some(st) => Some(lossless(st, status.0, status.1)?),
        None => None,
    };
    o.write(to, &converted_spec, converted_status.as_ref())
}

/// Converts `original` with `there`, and keeps the result only when `back` gives the
/// original again (so no residual annotation is needed).
fn lossless<S: PartialEq, T>(original: &S, there: fn(&S) -> T, back: fn(&T) -> S) -> Option<T> {
    let converted = there(original);
    (back(&converted) == *original).then_some(converted)
}

/// A custom object decoded for [`convert_text`]: `metadata` left as text, `spec` and
/// `status` typed as the version the object is expected to be in. Unknown top-level
/// fields (which a structural schema prunes anyway) take the slow path.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TextObject<'a, S, T> {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(borrow, default)]
    metadata: Option<&'a serde_json::value::RawValue>,
    // (`default` alone would demand `S: Default` and `T: Default` of the derive.)
    #[serde(default = "Option::default")]
    spec: Option<S>,
    #[serde(default = "Option::default")]
    status: Option<T>,
}

impl<S, T> TextObject<'_, S, T> {
    /// Spec and status when this is a `NatsCluster` in `source` with a spec and no
    /// residual annotation (either way round: the slow path reads it).
    fn plain(&self, source: &str) -> Option<(&S, Option<&T>)> {
        if self.kind != "NatsCluster" || self.api_version != source {
            return None;
        }
        if let Some(meta) = self.metadata {
            let keys: MetadataKeys = serde_json::from_str(meta.get()).ok()?;
            if keys.annotations.contains_key(ALPHA_RESIDUAL_ANNOTATION)
                || keys.annotations.contains_key(BETA_RESIDUAL_ANNOTATION)
            {
                return None;
            }
        }
        Some((self.spec.as_ref()?, self.status.as_ref()))
    }

    /// The converted object: metadata as it came, new apiVersion, spec and status.
    fn write<S2: serde::Serialize, T2: serde::Serialize>(
        &self,
        api_version: &str,
        spec: &S2,
        status: Option<&T2>,
    ) -> Option<Box<serde_json::value::RawValue>> {
        #[derive(serde::Serialize)]
        struct Out<'a, S, T> {
            #[serde(rename = "apiVersion")]
            api_version: &'a str,
            kind: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            metadata: Option<&'a serde_json::value::RawValue>,
            spec: &'a S,
            #[serde(skip_serializing_if = "Option::is_none")]
            status: Option<&'a T>,
        }
        serde_json::value::to_raw_value(&Out {
            api_version,
            kind: &self.kind,
            metadata: self.metadata,
            spec,
            status,
        })
        .ok()
    }
}

/// Only the annotation keys of an object's metadata.
#[derive(serde::Deserialize)]
struct MetadataKeys {
    #[serde(default)]
    annotations: BTreeMap<String, serde::de::IgnoredAny>,
}

/// [`convert_object`] computing every intermediate JSON form, as the first version of
/// this module did: the reference the optimised path is tested against. Not for callers.
#[doc(hidden)]
pub fn convert_object_reference(
    object: Value,
    desired_api_version: &str,
) -> Result<Value, ConvertError> {
    convert_with(object, desired_api_version, false)
}

fn convert_with(
    object: Value,
    desired_api_version: &str,
    fast: bool,
) -> Result<Value, ConvertError> {
    if desired_api_version != V1ALPHA2 && desired_api_version != V1BETA1 {
        return Err(ConvertError::UnsupportedVersion(
            desired_api_version.to_string(),
        ));
    }
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if api_version != V1ALPHA2 && api_version != V1BETA1 {
        return Err(ConvertError::UnsupportedVersion(api_version));
    }
    if api_version == desired_api_version {
        return Ok(object);
    }
    match kind.as_str() {
        "NatsCluster" => {
            if desired_api_version == V1BETA1 {
                cluster_up(object, &api_version, fast)
            } else {
                cluster_down(object, &api_version, fast)
            }
        }
        // Both versions of NatsServiceRole have the same schema.
        "NatsServiceRole" => {
            let mut object = object;
            if let Some(map) = object.as_object_mut() {
                map.insert(
                    "apiVersion".into(),
                    Value::String(desired_api_version.into()),
                );
            }
            Ok(object)
        }
        other => Err(ConvertError::UnsupportedKind(other.to_string())),
    }
}

/// Splits a NatsCluster into (metadata and the rest, spec, status).
fn take_parts(mut object: Value) -> (Map<String, Value>, Value, Value) {
    let mut map = match object.as_object_mut() {
        Some(m) => std::mem::take(m),
        None => Map::new(),
    };
    let spec = map.remove("spec").unwrap_or(Value::Object(Map::new()));
    let status = map.remove("status").unwrap_or(Value::Null);
    (map, spec, status)
}

fn decode<T: serde::de::DeserializeOwned>(
    value: Value,
    kind: &str,
    api_version: &str,
    part: &str,
) -> Result<T, ConvertError> {
    let value = if value.is_null() {
        Value::Object(Map::new())
    } else {
        value
    };
    serde_json::from_value(value).map_err(|e| ConvertError::Decode {
        kind: kind.to_string(),
        api_version: api_version.to_string(),
        message: format!("{part}: {e}"),
    })
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // Serialising our own plain data types cannot fail (no maps with non-string keys).
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn cluster_up(object: Value, api_version: &str, fast: bool) -> Result<Value, ConvertError> {
    let (mut rest, spec, status) = take_parts(object);
    let spec_a: a::ClusterSpec = decode(spec, "NatsCluster", api_version, "spec")?;
    let status_a: Option<a::ClusterStatus> = if status.is_null() {
        None
    } else {
        Some(decode(status, "NatsCluster", api_version, "status")?)
    };
    let residual = take_annotation(&mut rest, BETA_RESIDUAL_ANNOTATION);
    if fast && residual.is_none() {
        // No residual to restore: the plain conversion is the result, and the JSON forms
        // are only needed if converting it back loses something.
        let spec_b = spec_up(&spec_a);
        let status_b = status_a.as_ref().map(status_up);
        let back_spec = spec_down(&spec_b);
        let back_status = status_b.as_ref().map(status_down);
        let spec_json = to_value(&spec_b);
        let status_json = status_b.as_ref().map(to_value);
        let new_residual = Residual::compute_typed(
            (&spec_json, &back_spec, &spec_a),
            match (&status_json, &back_status, &status_a) {
                (Some(here), Some(back), Some(original)) => Some((here, back, original)),
                _ => None,
            },
        );
        return Ok(assemble(
            rest,
            V1BETA1,
            spec_json,
            status_json,
            ALPHA_RESIDUAL_ANNOTATION,
            new_residual,
        ));
    }
    let alpha_spec = to_value(&spec_a);
    let alpha_status = status_a.as_ref().map(to_value);

    let mut beta_spec = to_value(&spec_up(&spec_a));
    let mut beta_status = status_a.as_ref().map(|s| to_value(&status_up(s)));
    if let Some(res) = &residual {
        res.restore("spec", &alpha_spec, &mut beta_spec);
        if res.has("status") {
            let mut st = beta_status.take().unwrap_or(Value::Object(Map::new()));
            res.restore(
                "status",
                alpha_status.as_ref().unwrap_or(&Value::Null),
                &mut st,
            );
            beta_status = Some(st);
        }
    }
    // Re-decode so that the result is exactly what a v1beta1 object can hold.
    let spec_b: b::NatsClusterSpec = decode(beta_spec, "NatsCluster", V1BETA1, "spec")?;
    let status_b: Option<b::NatsClusterStatus> = match beta_status {
        Some(v) => Some(decode(v, "NatsCluster", V1BETA1, "status")?),
        None => None,
    };
    // What v1alpha2 said that v1beta1 can't: restore it on the way down.
    let back_spec = to_value(&spec_down(&spec_b));
    let back_status = status_b.as_ref().map(|s| to_value(&status_down(s)));
    let new_residual = Residual::compute(
        &to_value(&spec_b),
        &back_spec,
        &alpha_spec,
        status_b.as_ref().map(to_value).as_ref(),
        back_status.as_ref(),
        alpha_status.as_ref(),
    );
    Ok(assemble(
        rest,
        V1BETA1,
        to_value(&spec_b),
        status_b.map(|s| to_value(&s)),
        ALPHA_RESIDUAL_ANNOTATION,
        new_residual,
    ))
}

fn cluster_down(object: Value, api_version: &str, fast: bool) -> Result<Value, ConvertError> {
    let (mut rest, spec, status) = take_parts(object);
    let spec_b: b::NatsClusterSpec = decode(spec, "NatsCluster", api_version, "spec")?;
    let status_b: Option<b::NatsClusterStatus> = if status.is_null() {
        None
    } else {
        Some(decode(status, "NatsCluster", api_version, "status")?)
    };
    let residual = take_annotation(&mut rest, ALPHA_RESIDUAL_ANNOTATION);
    if fast && residual.is_none() {
        let spec_a = spec_down(&spec_b);
        let status_a = status_b.as_ref().map(status_down);
        let back_spec = spec_up(&spec_a);
        let back_status = status_a.as_ref().map(status_up);
        let spec_json = to_value(&spec_a);
        let status_json = status_a.as_ref().map(to_value);
        let new_residual = Residual::compute_typed(
            (&spec_json, &back_spec, &spec_b),
            match (&status_json, &back_status, &status_b) {
                (Some(here), Some(back), Some(original)) => Some((here, back, original)),
                _ => None,
            },
        );
        return Ok(assemble(
            rest,
            V1ALPHA2,
            spec_json,
            status_json,
            BETA_RESIDUAL_ANNOTATION,
            new_residual,
        ));
    }
    let beta_spec = to_value(&spec_b);
    let beta_status = status_b.as_ref().map(to_value);

    let mut alpha_spec = to_value(&spec_down(&spec_b));
    let mut alpha_status = status_b.as_ref().map(|s| to_value(&status_down(s)));
    if let Some(res) = &residual {
        res.restore("spec", &beta_spec, &mut alpha_spec);
        if res.has("status") {
            let mut st = alpha_status.take().unwrap_or(Value::Object(Map::new()));
            res.restore(
                "status",
                beta_status.as_ref().unwrap_or(&Value::Null),
                &mut st,
            );
            alpha_status = Some(st);
        }
    }
    let spec_a: a::ClusterSpec = decode(alpha_spec, "NatsCluster", V1ALPHA2, "spec")?;
    let status_a: Option<a::ClusterStatus> = match alpha_status {
        Some(v) => Some(decode(v, "NatsCluster", V1ALPHA2, "status")?),
        None => None,
    };
    let back_spec = to_value(&spec_up(&spec_a));
    let back_status = status_a.as_ref().map(|s| to_value(&status_up(s)));
    let new_residual = Residual::compute(
        &to_value(&spec_a),
        &back_spec,
        &beta_spec,
        status_a.as_ref().map(to_value).as_ref(),
        back_status.as_ref(),
        beta_status.as_ref(),
    );
    Ok(assemble(
        rest,
        V1ALPHA2,
        to_value(&spec_a),
        status_a.map(|s| to_value(&s)),
        BETA_RESIDUAL_ANNOTATION,
        new_residual,
    ))
}

fn assemble(
    mut rest: Map<String, Value>,
    api_version: &str,
    spec: Value,
    status: Option<Value>,
    annotation: &str,
    residual: Option<Residual>,
) -> Value {
    rest.insert("apiVersion".into(), Value::String(api_version.into()));
    if let Some(res) = residual {
        set_annotation(&mut rest, annotation, res.encode());
    }
    rest.insert("spec".into(), spec);
    if let Some(st) = status {
        rest.insert("status".into(), st);
    }
    Value::Object(rest)
}

fn take_annotation(rest: &mut Map<String, Value>, key: &str) -> Option<Residual> {
    let meta = rest.get_mut("metadata")?.as_object_mut()?;
    let annotations = meta.get_mut("annotations")?.as_object_mut()?;
    let raw = annotations.remove(key)?;
    if annotations.is_empty() {
        meta.remove("annotations");
    }
    // An unreadable residual (edited by hand) is dropped rather than failing conversion.
    raw.as_str().and_then(Residual::decode)
}

fn set_annotation(rest: &mut Map<String, Value>, key: &str, value: String) {
    let meta = rest
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Some(meta) = meta.as_object_mut() {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(Map::new());
        }
        if let Some(map) = annotations.as_object_mut() {
            map.insert(key.into(), Value::String(value));
        }
    }
}

/// What the other version could not express, per part (`spec`, `status`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Residual {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", flatten)]
    parts: BTreeMap<String, ResidualPart>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ResidualPart {
    /// SHA-256 (hex, first 16 bytes) of the part it was computed against.
    hash: String,
    /// RFC 7386 merge patch from the plain conversion to the original.
    patch: Value,
}

impl Residual {
    /// `here` is the part as written in the converted object; `back` is the plain
    /// conversion of `here` into the original version; `original` is the original part.
    fn compute(
        here_spec: &Value,
        back_spec: &Value,
        original_spec: &Value,
        here_status: Option<&Value>,
        back_status: Option<&Value>,
        original_status: Option<&Value>,
    ) -> Option<Self> {
        let mut parts = BTreeMap::new();
        if let Some(part) = ResidualPart::diff(here_spec, back_spec, original_spec) {
            parts.insert("spec".to_string(), part);
        }
        if let (Some(here), Some(original)) = (here_status, original_status)
            && let Some(part) =
                ResidualPart::diff(here, back_status.unwrap_or(&Value::Null), original)
        {
            parts.insert("status".to_string(), part);
        }
        (!parts.is_empty()).then_some(Residual { parts })
    }

    /// The residual of typed parts, each `(here as JSON, back, original)` as in
    /// [`Residual::compute`]. Equal typed values serialise to equal JSON, so a part whose
    /// plain conversion back equals the original needs no JSON at all: only parts that
    /// differ are serialised and diffed.
    fn compute_typed<S, T>(spec: (&Value, &S, &S), status: Option<(&Value, &T, &T)>) -> Option<Self>
    where
        S: PartialEq + serde::Serialize,
        T: PartialEq + serde::Serialize,
    {
        let mut parts = BTreeMap::new();
        let (here, back, original) = spec;
        if back != original
            && let Some(part) = ResidualPart::diff(here, &to_value(back), &to_value(original))
        {
            parts.insert("spec".to_string(), part);
        }
        if let Some((here, back, original)) = status
            && back != original
            && let Some(part) = ResidualPart::diff(here, &to_value(back), &to_value(original))
        {
            parts.insert("status".to_string(), part);
        }
        (!parts.is_empty()).then_some(Residual { parts })
    }

    fn has(&self, name: &str) -> bool {
        self.parts.contains_key(name)
    }

    /// Applies the part named `name` to `target`, converted from `source`.
    fn restore(&self, name: &str, source: &Value, target: &mut Value) {
        let Some(part) = self.parts.get(name) else {
            return;
        };
        if part.hash == hash(source) {
            apply_merge_patch(target, &part.patch);
        } else {
            apply_additive(target, &part.patch);
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(raw: &str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }
}

impl ResidualPart {
    /// The part restoring `original` from `back`, computed against `here`; `None` when
    /// nothing is lost.
    fn diff(here: &Value, back: &Value, original: &Value) -> Option<Self> {
        let patch = merge_diff(back, original);
        (!is_empty_patch(&patch)).then(|| ResidualPart {
            hash: hash(here),
            patch,
        })
    }
}

fn is_empty_patch(patch: &Value) -> bool {
    matches!(patch, Value::Object(m) if m.is_empty())
}

/// Hash of a JSON value with object keys in sorted order.
fn hash(v: &Value) -> String {
    let mut hasher = Sha256::new();
    hash_into(v, &mut hasher);
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_into(v: &Value, h: &mut Sha256) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                h.update(serde_json::to_string(k).unwrap_or_default().as_bytes());
                h.update(b":");
                if let Some(val) = m.get(k) {
                    hash_into(val, h);
                }
                h.update(b",");
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for item in items {
                hash_into(item, h);
                h.update(b",");
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

/// The RFC 7386 merge patch that turns `from` into `to`.
fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut patch = Map::new();
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv) if fv.is_object() && tv.is_object() => {
                        patch.insert(k.clone(), merge_diff(fv, tv));
                    }
                    _ => {
                        patch.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in f.keys() {
                if !t.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        (_, t) => t.clone(),
    }
}

/// RFC 7386 merge patch application.
fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, pv) in p {
            if pv.is_null() {
                t.remove(k);
            } else {
                apply_merge_patch(t.entry(k.clone()).or_insert(Value::Null), pv);
            }
        }
    }
}

/// Applies only what adds keys missing from `target`: never overwrites, never deletes.
fn apply_additive(target: &mut Value, patch: &Value) {
    let (Value::Object(t), Value::Object(p)) = (target, patch) else {
        return;
    };
    for (k, pv) in p {
        if pv.is_null() {
            continue;
        }
        match t.get_mut(k) {
            None => {
                let mut v = Value::Null;
                apply_merge_patch(&mut v, pv);
                t.insert(k.clone(), v);
            }
            Some(tv) if tv.is_object() => apply_additive(tv, pv),
            Some(_) => {}
        }
    }
}

fn non_empty<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// Plain `v1alpha2 → v1beta1` spec conversion.
pub fn spec_up(s: &a::ClusterSpec) -> b::NatsClusterSpec {
    spec_up_owned(s.clone())
}

/// [`spec_up`] by moving the fields of `s` instead of copying them.
pub fn spec_up_owned(s: a::ClusterSpec) -> b::NatsClusterSpec {
    let nc = s.nats_config.unwrap_or_default();
    let write_deadline = if nc.write_deadline.is_empty() {
        nc.write_deadline_camel
    } else {
        nc.write_deadline
    };
    let config = non_empty(b::ServerConfig {
        debug: nc.debug,
        trace: nc.trace,
        logtime: nc.disable_logtime.then_some(false),
        write_deadline,
        max_connections: nc.max_connections,
        max_payload: nc.max_payload,
        max_pending: nc.max_pending,
        max_subscriptions: nc.max_subscriptions,
        max_control_line: nc.max_control_line,
        server_name: s.use_server_name.then_some(ServerNameSource::FromEnv),
        lame_duck_duration: s
            .lame_duck_duration_seconds
            .map(|n| format!("{n}s"))
            .unwrap_or_default(),
        no_advertise: s.no_advertise,
        merge: None,
    });
    let pod = s.pod.unwrap_or_default();
    let pod_b = non_empty(b::PodPolicy {
        pod_monitor: None,
        labels: pod.labels,
        annotations: pod.annotations,
        node_selector: pod.node_selector,
        anti_affinity: pod.anti_affinity.then_some(AntiAffinity::Required),
        topology_spread_constraints: Vec::new(),
        priority_class_name: String::new(),
        resources: pod.resources,
        tolerations: pod.tolerations,
        env: pod.nats_env,
        volume_mounts: pod.volume_mounts,
        template: s.template,
        host_ports: non_empty(b::HostPorts {
            client: pod.enable_clients_host_port,
            gateway: pod.disable_gateways_host_port.then_some(false),
            leafnode: pod.disable_leafnodes_host_port.then_some(false),
            websocket: pod.disable_websockets_host_port.then_some(false),
        }),
        external_advertise: non_empty(b::Sidecar {
            enabled: pod.advertise_external_ip,
            image: pod.bootconfig_image,
            tag: pod.bootconfig_image_tag,
            image_pull_policy: None,
            resources: None,
        }),
        config_reloader: non_empty(b::Sidecar {
            enabled: pod.enable_config_reload,
            image: pod.reloader_image,
            tag: pod.reloader_image_tag,
            // A free string in the Go operator's CRD: a value Kubernetes does not list
            // never made a pod there, so it reads as unset.
            image_pull_policy: PullPolicy::parse(&pod.reloader_image_pull_policy),
            resources: pod.reloader_resources,
        }),
        metrics: non_empty(b::Sidecar {
            enabled: pod.enable_metrics,
            image: pod.metrics_image,
            tag: pod.metrics_image_tag,
            image_pull_policy: PullPolicy::parse(&pod.metrics_image_pull_policy),
            resources: None,
        }),
        disruption_budget: None,
    });
    let t = s.tls.unwrap_or_default();
    let auth = s.auth.unwrap_or_default();
    let listener = |secret: String, ca: String, cert: String, key: String, timeout: f64| {
        non_empty(b::ListenerTls {
            secret,
            ca_file: ca,
            cert_file: cert,
            key_file: key,
            timeout,
        })
    };
    let tls = non_empty(b::Tls {
        mqtt: None,
        client: non_empty(b::ClientTls {
            secret: t.server_secret,
            ca_file: t.server_secret_ca_file_name,
            cert_file: t.server_secret_cert_file_name,
            key_file: t.server_secret_key_file_name,
            timeout: t.clients_tls_timeout,
            verify: t.verify,
            verify_and_map: auth.tls_verify_and_map,
            cipher_suites: t.cipher_suites,
            curve_preferences: t.curve_preferences,
        }),
        routes: listener(
            t.routes_secret,
            t.routes_secret_ca_file_name,
            t.routes_secret_cert_file_name,
            t.routes_secret_key_file_name,
            t.routes_tls_timeout,
        ),
        gateway: listener(
            t.gateway_secret,
            t.gateway_secret_ca_file_name,
            t.gateway_secret_cert_file_name,
            t.gateway_secret_key_file_name,
            t.gateways_tls_timeout,
        ),
        leafnode: listener(
            t.leafnode_secret,
            t.leafnode_secret_ca_file_name,
            t.leafnode_secret_cert_file_name,
            t.leafnode_secret_key_file_name,
            t.leafnodes_tls_timeout,
        ),
        websocket: listener(
            t.websocket_secret,
            t.websocket_secret_ca_file_name,
            t.websocket_secret_cert_file_name,
            t.websocket_secret_key_file_name,
            t.websocket_tls_timeout,
        ),
        https_monitoring: t.enable_https,
    });
    let op = s.operator_config.unwrap_or_default();
    let auth_b = non_empty(b::Auth {
        accounts: None,
        clients: non_empty(b::ClientAuth {
            no_auth_user: String::new(),
            service_accounts: auth.enable_service_accounts,
            secret: auth.clients_auth_secret,
            file: auth.clients_auth_file,
            timeout: auth.clients_auth_timeout,
        }),
        routes: non_empty(b::SecretAuth {
            secret: auth.cluster_auth_secret,
            timeout: auth.cluster_auth_timeout,
        }),
        gateway: non_empty(b::SecretAuth {
            secret: auth.gateway_auth_secret,
            timeout: auth.gateway_auth_timeout,
        }),
        jwt: non_empty(b::JwtAuth {
            operator_secret: op.secret,
            system_account: op.system_account,
            resolver: op.resolver,
        }),
    });
    let services = non_empty(b::Services {
        client: s.service_policy.and_then(|p| {
            non_empty(b::ServicePolicy {
                labels: p.labels,
                annotations: p.annotations,
            })
        }),
        management: s.management_service_policy.and_then(|p| {
            non_empty(b::ServicePolicy {
                labels: p.labels,
                annotations: p.annotations,
            })
        }),
    });
    b::NatsClusterSpec {
        mqtt: None,
        size: s.size,
        version: s.version,
        image: s.server_image,
        image_pull_policy: None,
        paused: s.paused,
        config,
        pod: pod_b,
        tls,
        auth: auth_b,
        extra_routes: s
            .extra_routes
            .into_iter()
            .map(|r| b::ExtraRoute {
                cluster: r.cluster,
                route: r.route,
            })
            .collect(),
        gateway: s.gateway_config.map(|g| b::Gateway {
            name: g.name,
            port: g.host_port,
            reject_unknown: g.reject_unknown,
            remotes: g
                .gateways
                .into_iter()
                .map(|r| b::RemoteGateway {
                    name: r.name,
                    url: r.url,
                    urls: Vec::new(),
                })
                .collect(),
        }),
        leafnode: s.leafnode_config.map(|l| b::Leafnode {
            port: l.host_port,
            remotes: l
                .remotes
                .into_iter()
                .map(|r| b::LeafnodeRemote {
                    url: r.url,
                    urls: r.urls,
                    credentials: r.credentials,
                })
                .collect(),
        }),
        websocket: s.websocket_config.map(|w| b::Websocket {
            port: w.port,
            handshake_timeout: w.handshake_timeout,
            compression: w.compression,
        }),
        services,
        jetstream: None,
    }
}

/// Plain `v1beta1 → v1alpha2` spec conversion.
pub fn spec_down(s: &b::NatsClusterSpec) -> a::ClusterSpec {
    spec_down_owned(s.clone())
}

/// [`spec_down`] by moving the fields of `s` instead of copying them.
pub fn spec_down_owned(s: b::NatsClusterSpec) -> a::ClusterSpec {
    let c = s.config.unwrap_or_default();
    let nats_config = non_empty(a::ServerConfig {
        debug: c.debug,
        trace: c.trace,
        write_deadline: c.write_deadline,
        write_deadline_camel: String::new(),
        max_connections: c.max_connections,
        max_payload: c.max_payload,
        max_pending: c.max_pending,
        max_subscriptions: c.max_subscriptions,
        max_control_line: c.max_control_line,
        disable_logtime: c.logtime == Some(false),
    });
    let mut p = s.pod.unwrap_or_default();
    let template = p.template.take();
    let hp = p.host_ports.unwrap_or_default();
    let ext = p.external_advertise.unwrap_or_default();
    let rl = p.config_reloader.unwrap_or_default();
    let mt = p.metrics.unwrap_or_default();
    let pod = non_empty(a::PodPolicy {
        labels: p.labels,
        annotations: p.annotations,
        node_selector: p.node_selector,
        anti_affinity: p.anti_affinity == Some(AntiAffinity::Required),
        resources: p.resources,
        tolerations: p.tolerations,
        nats_env: p.env,
        enable_config_reload: rl.enabled,
        reloader_image: rl.image,
        reloader_image_tag: rl.tag,
        reloader_image_pull_policy: wire(rl.image_pull_policy),
        reloader_resources: rl.resources,
        enable_metrics: mt.enabled,
        metrics_image: mt.image,
        metrics_image_tag: mt.tag,
        metrics_image_pull_policy: wire(mt.image_pull_policy),
        enable_clients_host_port: hp.client,
        disable_gateways_host_port: hp.gateway == Some(false),
        disable_leafnodes_host_port: hp.leafnode == Some(false),
        disable_websockets_host_port: hp.websocket == Some(false),
        advertise_external_ip: ext.enabled,
        bootconfig_image: ext.image,
        bootconfig_image_tag: ext.tag,
        volume_mounts: p.volume_mounts,
    });
    let t = s.tls.unwrap_or_default();
    let cl = t.client.unwrap_or_default();
    let ro = t.routes.unwrap_or_default();
    let gw = t.gateway.unwrap_or_default();
    let lf = t.leafnode.unwrap_or_default();
    let ws = t.websocket.unwrap_or_default();
    let tls = non_empty(a::TlsConfig {
        server_secret: cl.secret,
        server_secret_ca_file_name: cl.ca_file,
        server_secret_key_file_name: cl.key_file,
        server_secret_cert_file_name: cl.cert_file,
        routes_secret: ro.secret,
        routes_secret_ca_file_name: ro.ca_file,
        routes_secret_key_file_name: ro.key_file,
        routes_secret_cert_file_name: ro.cert_file,
        gateway_secret: gw.secret,
        gateway_secret_ca_file_name: gw.ca_file,
        gateway_secret_key_file_name: gw.key_file,
        gateway_secret_cert_file_name: gw.cert_file,
        leafnode_secret: lf.secret,
        leafnode_secret_ca_file_name: lf.ca_file,
        leafnode_secret_key_file_name: lf.key_file,
        leafnode_secret_cert_file_name: lf.cert_file,
        websocket_secret: ws.secret,
        websocket_secret_ca_file_name: ws.ca_file,
        websocket_secret_key_file_name: ws.key_file,
        websocket_secret_cert_file_name: ws.cert_file,
        websocket_tls_timeout: ws.timeout,
        enable_https: t.https_monitoring,
        clients_tls_timeout: cl.timeout,
        routes_tls_timeout: ro.timeout,
        gateways_tls_timeout: gw.timeout,
        leafnodes_tls_timeout: lf.timeout,
        verify: cl.verify,
        cipher_suites: cl.cipher_suites,
        curve_preferences: cl.curve_preferences,
    });
    let au = s.auth.unwrap_or_default();
    let clients = au.clients.unwrap_or_default();
    let routes = au.routes.unwrap_or_default();
    let gateway = au.gateway.unwrap_or_default();
    let auth = non_empty(a::AuthConfig {
        enable_service_accounts: clients.service_accounts,
        clients_auth_secret: clients.secret,
        clients_auth_file: clients.file,
        clients_auth_timeout: clients.timeout,
        tls_verify_and_map: cl.verify_and_map,
        cluster_auth_secret: routes.secret,
        cluster_auth_timeout: routes.timeout,
        gateway_auth_secret: gateway.secret,
        gateway_auth_timeout: gateway.timeout,
    });
    let services = s.services.unwrap_or_default();
    a::ClusterSpec {
        size: s.size,
        version: s.version,
        server_image: s.image,
        nats_config,
        use_server_name: c.server_name == Some(ServerNameSource::FromEnv),
        paused: s.paused,
        pod,
        tls,
        auth,
        lame_duck_duration_seconds: super::duration::parse_seconds(&c.lame_duck_duration),
        no_advertise: c.no_advertise,
        template,
        extra_routes: s
            .extra_routes
            .into_iter()
            .map(|r| a::ExtraRoute {
                cluster: r.cluster,
                route: r.route,
            })
            .collect(),
        gateway_config: s.gateway.map(|g| a::GatewayConfig {
            name: g.name,
            host_port: g.port,
            reject_unknown: g.reject_unknown,
            gateways: g
                .remotes
                .into_iter()
                .map(|r| a::RemoteGateway {
                    name: r.name,
                    url: if r.url.is_empty() {
                        r.urls.into_iter().next().unwrap_or_default()
                    } else {
                        r.url
                    },
                })
                .collect(),
        }),
        leafnode_config: s.leafnode.map(|l| a::LeafNodeConfig {
            host_port: l.port,
            remotes: l
                .remotes
                .into_iter()
                .map(|r| a::LeafNodeRemote {
                    url: r.url,
                    urls: r.urls,
                    credentials: r.credentials,
                })
                .collect(),
        }),
        operator_config: au.jwt.map(|j| a::OperatorConfig {
            secret: j.operator_secret,
            system_account: j.system_account,
            resolver: j.resolver,
        }),
        websocket_config: s.websocket.map(|w| a::WebsocketConfig {
            port: w.port,
            handshake_timeout: w.handshake_timeout,
            compression: w.compression,
        }),
        service_policy: services.client.map(|p| a::ServicePolicy {
            labels: p.labels,
            annotations: p.annotations,
        }),
        management_service_policy: services.management.map(|p| a::ServicePolicy {
            labels: p.labels,
            annotations: p.annotations,
        }),
    }
}

/// Plain `v1alpha2 → v1beta1` status conversion.
pub fn status_up(s: &a::ClusterStatus) -> b::NatsClusterStatus {
    b::NatsClusterStatus {
        replicas: s.size,
        current_version: s.current_version.clone(),
        ..Default::default()
    }
}

/// Plain `v1beta1 → v1alpha2` status conversion: the Go operator's view of it.
pub fn status_down(s: &b::NatsClusterStatus) -> a::ClusterStatus {
    a::ClusterStatus {
        phase: String::new(),
        reason: String::new(),
        control_paused: s
            .conditions
            .iter()
            .any(|c| c.type_ == "Paused" && c.status == "True"),
        conditions: s
            .conditions
            .iter()
            .filter(|c| c.status == "True")
            .map(|c| a::ClusterCondition {
                type_: c.type_.clone(),
                reason: if c.message.is_empty() {
                    c.reason.clone()
                } else {
                    c.message.clone()
                },
                transition_time: c.last_transition_time.0.to_string(),
            })
            .collect(),
        size: s.replicas,
        current_version: s.current_version.clone(),
    }
}

/// An optional v1beta1 choice as the v1alpha2 string (`""` when unset).
fn wire<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}
