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
        source: crate::yaml::Error,
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
            crate::yaml::from_str(doc.text).map_err(|source| ManifestError::Yaml {
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
        let yaml = crate::yaml::to_string(&converted).map_err(|source| ManifestError::Yaml {
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

/// Placeholder for a bound ServiceAccount token in offline renders: the real token only
/// exists once the operator has requested it from the cluster.
pub const OFFLINE_TOKEN: &str = "<bound ServiceAccount token, requested by the operator>";

/// Why a stream could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderStreamError {
    /// The input is not valid YAML.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A NatsCluster does not decode or render.
    #[error("NatsCluster {name:?}: {message}")]
    Cluster {
        /// Name of the cluster.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// The data of a Secret document: `data` (base64) and `stringData` (plain, which wins
/// key by key, as the apiserver merges them). `None` when a value does not decode.
pub fn secret_data(secret: &Value) -> Option<crate::render::inputs::SecretData> {
    use base64::Engine;
    let mut out = crate::render::inputs::SecretData::new();
    if let Some(m) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in m {
            let text = v.as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?;
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(m) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in m {
            out.insert(k.clone(), v.as_str()?.as_bytes().to_vec());
        }
    }
    Some(out)
}

/// Renders every object the operator would create for each NatsCluster in a YAML
/// stream, as multi-document YAML: [`crate::render::desired`], the function the
/// reconciler applies. Secrets and NatsServiceRoles in the same stream are used as the
/// cluster would see them; everything else is ignored. A cluster whose inputs have a
/// problem (a referenced Secret missing from the stream, or of the wrong shape) gets a
/// comment saying so instead of objects: the operator creates nothing for it either.
pub fn render_stream(input: &str) -> Result<String, RenderStreamError> {
    use crate::render;
    let mut docs = Vec::new();
    for doc in split_documents(input) {
        if is_blank(doc.text) {
            continue;
        }
        let v: Value = crate::yaml::from_str(doc.text).map_err(|source| ManifestError::Yaml {
            index: doc.index,
            source,
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    let namespace_of = |v: &Value| {
        v.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string()
    };
    let name_of = |v: &Value| {
        v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut out = String::new();
    for doc in docs.iter().filter(|d| d["kind"] == "NatsCluster") {
        let name = name_of(doc);
        let err = |message: String| RenderStreamError::Cluster {
            name: name.clone(),
            message,
        };
        // Stored as the webhook stores a create, then read as the reconciler reads it.
        let (created, _) = crate::api::admission::default_object(doc, None);
        let beta = convert_object(created, crate::api::V1BETA1).map_err(|e| err(e.to_string()))?;
        let cluster: crate::api::v1beta1::NatsCluster = serde_path_to_error::deserialize(beta)
            .map_err(|e| err(format!("{}: {}", e.path(), e.inner())))?;
        let ns = namespace_of(doc);
        let secrets: std::collections::BTreeMap<String, render::inputs::SecretData> = docs
            .iter()
            .filter(|d| d["kind"] == "Secret" && namespace_of(d) == ns)
            .filter_map(|d| Some((name_of(d), secret_data(d)?)))
            .collect();
        let uses_roles = cluster
            .spec
            .auth
            .as_ref()
            .and_then(|a| a.clients.as_ref())
            .is_some_and(|c| c.service_accounts);
        let mut roles = Vec::new();
        if uses_roles {
            for role in docs.iter().filter(|d| d["kind"] == "NatsServiceRole") {
                if namespace_of(role) == ns
                    && role
                        .pointer("/metadata/labels/nats_cluster")
                        .and_then(Value::as_str)
                        == Some(name.as_str())
                {
                    let permissions = serde_json::from_value(role["spec"]["permissions"].clone())
                        .unwrap_or_default();
                    roles.push(render::ServiceRoleUser {
                        username: name_of(role),
                        token: OFFLINE_TOKEN.into(),
                        permissions,
                    });
                }
            }
            roles.sort_by(|a, b| a.username.cmp(&b.username));
        }
        let auth = match render::auth_inputs(&cluster.spec, &ns, |n| secrets.get(n), roles) {
            Ok(auth) => auth,
            Err(problem) => {
                out.push_str(&format!(
                    "# NatsCluster {ns}/{name}: the operator creates nothing until {problem}\n"
                ));
                continue;
            }
        };
        let desired = render::desired(&cluster, &auth, &render::Paths::default())
            .map_err(|e| err(e.to_string()))?;
        for mut obj in desired.objects() {
            // Secrets print their nats.conf readably.
            if obj["kind"] == "Secret"
                && let Some(m) = obj.as_object_mut()
                && let Some(data) = m.remove("data")
            {
                let text: serde_json::Map<String, Value> = data
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        use base64::Engine;
                        let bytes = v
                            .as_str()
                            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                            .unwrap_or_default();
                        (
                            k.clone(),
                            Value::String(String::from_utf8_lossy(&bytes).to_string()),
                        )
                    })
                    .collect();
                m.insert("stringData".into(), Value::Object(text));
            }
            out.push_str("---\n");
            out.push_str(&crate::yaml::to_string(&obj).map_err(|e| err(e.to_string()))?);
        }
        for w in &desired.conf.warnings {
            out.push_str(&format!("# warning ({name}): {w}\n"));
        }
    }
    Ok(out)
}
