//! CRD conversion (`apiextensions.k8s.io/v1` `ConversionReview`).
//!
//! Wire rules enforced here (webhook-and-peers.md §A.6): HTTP 200 even on failure; the
//! same uid; `convertedObjects` in the same order and count as `request.objects`; each
//! object's `apiVersion` is the desired one and its `kind` is unchanged; metadata other
//! than labels and annotations is restored from the original; one failing object fails
//! the whole review with a message that names it, and no partial list is sent.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The only conversion API version this crate speaks.
pub const CONVERSION_API_VERSION: &str = "apiextensions.k8s.io/v1";
/// The envelope kind of conversion requests and responses.
pub const CONVERSION_REVIEW_KIND: &str = "ConversionReview";

/// Version conversion of one custom object.
///
/// Receives the whole object (any served version) and the desired `apiVersion`
/// (`group/version`) and returns the converted object. The server then forces
/// `apiVersion` and `kind`, and restores every metadata field except labels and
/// annotations, so implementations need not care about those. Must be pure and fast:
/// never use conversion to validate (a failure breaks list/watch cluster-wide).
pub trait Converter: Send + Sync + 'static {
    /// Converts `object` to `desired_api_version`; the error text reaches the user.
    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, String>;

    /// An optional fast path on the object's JSON text, tried first: `None` falls back
    /// to [`Converter::convert`]. A `Some` result is sent as is, so it must already be
    /// what `convert` plus the server's rules would give (desired `apiVersion`, same
    /// `kind`, metadata unchanged but for labels and annotations).
    fn convert_text(&self, _object: &str, _desired_api_version: &str) -> Option<Box<RawValue>> {
        None
    }
}

impl<F> Converter for F
where
    F: Fn(Value, &str) -> Result<Value, String> + Send + Sync + 'static,
{
    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, String> {
        self(object, desired_api_version)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversionReviewIn {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub request: Option<ConversionRequestIn>,
}

#[derive(Deserialize)]
pub(crate) struct ConversionRequestIn {
    pub uid: String,
    #[serde(rename = "desiredAPIVersion")]
    pub desired_api_version: String,
    /// Kept as raw JSON text: each object is parsed, converted and written back on its
    /// own (in parallel for large reviews), never as one big tree.
    pub objects: Vec<Box<RawValue>>,
}

/// Fallback parse used only when the full parse failed, to echo the uid.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversionReviewSkeleton {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub request: Option<crate::admission::RequestSkeleton>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversionReviewOut {
    api_version: &'static str,
    kind: &'static str,
    response: ConversionResponseOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversionResponseOut {
    uid: String,
    converted_objects: Vec<Box<RawValue>>,
    result: ResultOut,
}

#[derive(Serialize)]
struct ResultOut {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl ConversionReviewOut {
    pub fn success(uid: String, converted_objects: Vec<Box<RawValue>>) -> Self {
        Self {
            api_version: CONVERSION_API_VERSION,
            kind: CONVERSION_REVIEW_KIND,
            response: ConversionResponseOut {
                uid,
                converted_objects,
                result: ResultOut {
                    status: "Success",
                    message: None,
                },
            },
        }
    }

    pub fn failure(uid: String, message: String) -> Self {
        Self {
            api_version: CONVERSION_API_VERSION,
            kind: CONVERSION_REVIEW_KIND,
            response: ConversionResponseOut {
                uid,
                converted_objects: Vec::new(),
                result: ResultOut {
                    status: "Failure",
                    message: Some(message),
                },
            },
        }
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// `<kind> <namespace>/<name>` (or `<kind> <name>` when cluster-scoped).
fn describe(object: &Value) -> String {
    let kind = str_at(object, &["kind"]);
    let kind = if kind.is_empty() { "object" } else { kind };
    let name = str_at(object, &["metadata", "name"]);
    let ns = str_at(object, &["metadata", "namespace"]);
    if ns.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {ns}/{name}")
    }
}

/// Converts one object and applies the apiserver's invariants.
fn convert_one(
    converter: &dyn Converter,
    object: Value,
    desired: &str,
) -> Result<Value, (String, String)> {
    let Some(map) = object.as_object() else {
        return Err(("object".to_owned(), "not a JSON object".to_owned()));
    };
    let kind = match map.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() => k.to_owned(),
        _ => return Err((describe(&object), "missing kind".to_owned())),
    };
    if map.get("apiVersion").and_then(Value::as_str) == Some(desired) {
        // Identity conversion; the apiserver does not normally send these.
        return Ok(object);
    }
    let who = describe(&object);
    let original_meta = map.get("metadata").cloned();

    let converted = match catch_unwind(AssertUnwindSafe(|| converter.convert(object, desired))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err((who, e)),
        Err(payload) => {
            let msg = crate::deadline::panic_message(payload.as_ref());
            tracing::error!(object = %who, panic = %msg, "converter panicked");
            return Err((who, "internal error".to_owned()));
        }
    };
    let Value::Object(mut out) = converted else {
        return Err((who, "converter returned a non-object".to_owned()));
    };
    out.insert("apiVersion".to_owned(), Value::String(desired.to_owned()));
    out.insert("kind".to_owned(), Value::String(kind));
    restore_metadata(&mut out, original_meta);
    Ok(Value::Object(out))
}

/// Keeps the original metadata, taking only `labels` and `annotations` from the
/// converted object (mirrors the apiserver's `restoreObjectMeta`).
fn restore_metadata(out: &mut Map<String, Value>, original: Option<Value>) {
    let Some(Value::Object(mut meta)) = original else {
        // Nothing to restore against; leave whatever the converter produced.
        return;
    };
    let converted_meta = out.remove("metadata");
    for key in ["labels", "annotations"] {
        match converted_meta.as_ref().and_then(|m| m.get(key)) {
            Some(v) if !v.is_null() => {
                meta.insert(key.to_owned(), v.clone());
            }
            _ => {
                meta.remove(key);
            }
        }
    }
    out.insert("metadata".to_owned(), Value::Object(meta));
}

/// Fewest objects a thread takes; reviews under twice this stay on the calling thread.
const MIN_OBJECTS_PER_THREAD: usize = 32;

/// Converts one raw object: the converter's text fast path when it takes the object,
/// else parse, convert and re-serialise.
fn convert_raw(
    converter: &dyn Converter,
    raw: &RawValue,
    desired: &str,
) -> Result<Box<RawValue>, (String, String)> {
    // A panic here only loses the fast path; the slow path reports it properly.
    if let Ok(Some(out)) = catch_unwind(AssertUnwindSafe(|| {
        converter.convert_text(raw.get(), desired)
    })) {
        return Ok(out);
    }
    let object: Value = serde_json::from_str(raw.get())
        .map_err(|e| ("object".to_owned(), format!("not valid JSON: {e}")))?;
    let converted = convert_one(converter, object, desired)?;
    // Serialising a Value cannot fail (its keys are strings).
    serde_json::value::to_raw_value(&converted)
        .map_err(|e| ("object".to_owned(), format!("failed to serialize: {e}")))
}

/// Runs a whole review: either every object converts, or the first failure is reported.
///
/// Objects are independent, so a large review (a LIST read through the other version)
/// is spread over rayon's long-lived threads, one per core (fresh threads per review
/// cost more than they saved: each starts with a cold allocator heap); small ones stay
/// on the calling thread.
pub(crate) fn convert_review(
    converter: &dyn Converter,
    uid: String,
    desired: &str,
    objects: Vec<Box<RawValue>>,
) -> ConversionReviewOut {
    use rayon::prelude::*;
    let one = |raw: &RawValue| convert_raw(converter, raw, desired);
    let results: Vec<Result<Box<RawValue>, (String, String)>> =
        if objects.len() < 2 * MIN_OBJECTS_PER_THREAD {
            objects.iter().map(|raw| one(raw)).collect()
        } else {
            objects
                .par_iter()
                .with_min_len(MIN_OBJECTS_PER_THREAD)
                .map(|raw| one(raw))
                .collect()
        };
    // In review order, so the failure reported is the first one.
    match results.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(converted) => ConversionReviewOut::success(uid, converted),
        Err((who, err)) => {
            tracing::warn!(%uid, object = %who, error = %err, "conversion failed");
            ConversionReviewOut::failure(uid, format!("{who}: {err}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_restored_except_labels_and_annotations() {
        let conv = |mut o: Value, _: &str| -> Result<Value, String> {
            o["metadata"]["name"] = json!("renamed");
            o["metadata"]["labels"] = json!({"new": "label"});
            if let Some(m) = o["metadata"].as_object_mut() {
                m.remove("annotations");
            }
            o["kind"] = json!("Other");
            Ok(o)
        };
        let obj = json!({
            "apiVersion": "g/v1", "kind": "K",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "labels": {"x": "y"}, "annotations": {"a": "b"}}
        });
        let out = convert_one(&conv, obj, "g/v2").expect("converts");
        assert_eq!(
            out,
            json!({
                "apiVersion": "g/v2", "kind": "K",
                "metadata": {"name": "a", "namespace": "n", "uid": "u", "labels": {"new": "label"}}
            })
        );
    }

    #[test]
    fn describe_cluster_scoped() {
        assert_eq!(
            describe(&json!({"kind": "K", "metadata": {"name": "a"}})),
            "K a"
        );
    }
}
