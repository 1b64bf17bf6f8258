//! Multi-document YAML manifests: split them without losing the documents we don't
//! touch, and convert the NATS ones.

use serde_json::Value;

use crate::api::convert::{ConvertError, convert_object};

/// One document of a multi-document YAML stream, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'a> {
    /// The document's text, without the `---` separator line.
    pub text: &'a str,
    /// 1-based index of the document in the stream.
    pub index: usize,
}

/// Splits a YAML stream at `---` separator lines. Documents holding only comments or
/// whitespace are kept so that pass-through output stays faithful.
pub fn split_documents(input: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in input.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push(&input[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&input[start..]);
    docs.into_iter()
        .enumerate()
        .map(|(i, text)| Document { text, index: i + 1 })
        .collect()
}

fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

/// Why a manifest could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A document is not valid YAML.
    #[error("document {index}: invalid YAML: {source}")]
    Yaml {
        /// 1-based document index.
        index: usize,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// A NATS object failed to convert.
    #[error("document {index} ({kind} {name:?}): {source}")]
    Convert {
        /// 1-based document index.
        index: usize,
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// The conversion error.
        source: Box<ConvertError>,
    },
}

/// Whether a document is one of our kinds in one of our versions.
pub fn is_nats_object(v: &Value) -> bool {
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    api.starts_with("nats.io/") && matches!(kind, "NatsCluster" | "NatsServiceRole")
}

/// Converts every NatsCluster and NatsServiceRole in a YAML stream to `to`; every other
/// document (and comment-only document) is copied through byte for byte.
pub fn convert_stream(input: &str, to: &str) -> Result<String, ManifestError> {
    let mut out = String::new();
    for (n, doc) in split_documents(input).into_iter().enumerate() {
        if n > 0 {
            out.push_str("---\n");
        }
        if is_blank(doc.text) {
            out.push_str(doc.text);
            continue;
        }
        let value: Value =
            serde_yaml::from_str(doc.text).map_err(|source| ManifestError::Yaml {
                index: doc.index,
                source,
            })?;
        if !is_nats_object(&value) {
            out.push_str(doc.text);
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let converted = convert_object(value, to).map_err(|source| ManifestError::Convert {
            index: doc.index,
            kind,
            name,
            source: Box::new(source),
        })?;
        let yaml = serde_yaml::to_string(&converted).map_err(|source| ManifestError::Yaml {
            index: doc.index,
            source,
        })?;
        out.push_str(&yaml);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_passes_through_foreign_documents() {
        let input = "# head\n---\napiVersion: v1\nkind: ServiceAccount # keep me\nmetadata:\n  name: a\n---\napiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: x\nspec:\n  size: 3\n";
        let out = convert_stream(input, "nats.io/v1beta1").unwrap_or_default();
        assert!(out.starts_with("# head\n---\napiVersion: v1\nkind: ServiceAccount # keep me\n"));
        assert!(out.contains("apiVersion: nats.io/v1beta1"));
        assert!(out.contains("size: 3"));
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let err = convert_stream("a: 1\n---\nfoo: [\n", "nats.io/v1beta1").err();
        assert!(matches!(err, Some(ManifestError::Yaml { index: 2, .. })));
    }
}
