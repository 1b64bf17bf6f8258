//! Small helpers for serde attributes and schema overrides shared by both API versions.

use schemars::{Schema, SchemaGenerator, json_schema};

/// `skip_serializing_if` helper: Go's `omitempty` for booleans.
pub fn is_false(v: &bool) -> bool {
    !*v
}

/// `skip_serializing_if` helper: Go's `omitempty` for integers.
pub fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// `skip_serializing_if` helper: Go's `omitempty` for 32-bit integers.
pub fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// `skip_serializing_if` helper: Go's `omitempty` for floats.
pub fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

/// Schema for an opaque object kept as-is by the apiserver (for example a full
/// `PodTemplateSpec`, which would otherwise add hundreds of kilobytes to the CRD and
/// push it past the 256 KiB limit of `kubectl apply`'s last-applied annotation).
/// The webhook checks such subtrees by decoding them into their typed form.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Schema for a string-to-string map (labels, annotations, node selectors).
pub fn string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": "string" }
    })
}
