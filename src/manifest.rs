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

fn secret_json(secret: &Value) -> Option<Value> {
    // A Secret's one key holds the JSON authorization (data is base64, stringData plain).
    let decode_b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()
    };
    let raw: Vec<u8> = if let Some(m) = secret.get("stringData").and_then(Value::as_object)
        && m.len() == 1
    {
        m.values().next()?.as_str()?.as_bytes().to_vec()
    } else {
        let m = secret.get("data")?.as_object()?;
        if m.len() != 1 {
            return None;
        }
        decode_b64(m.values().next()?.as_str()?)?
    };
    serde_json::from_slice(&raw).ok()
}

/// Renders every object the operator would create for each NatsCluster in a YAML
/// stream, as multi-document YAML. Secrets and NatsServiceRoles in the same stream are
/// used as the cluster would see them; everything else is ignored.
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
        let (defaulted, _) = crate::api::admission::default_object(doc, None);
        let beta =
            convert_object(defaulted, crate::api::V1BETA1).map_err(|e| err(e.to_string()))?;
        let cluster: crate::api::v1beta1::NatsCluster =
            serde_json::from_value(beta).map_err(|e| err(e.to_string()))?;
        let meta = render::ClusterMeta::of(&cluster).map_err(|e| err(e.to_string()))?;
        let spec = &cluster.spec;
        let ns = meta.namespace.clone();
        let find_secret = |secret: &str| {
            docs.iter()
                .find(|d| d["kind"] == "Secret" && name_of(d) == secret && namespace_of(d) == ns)
                .and_then(secret_json)
        };
        let auth_spec = spec.auth.clone().unwrap_or_default();
        let clients = auth_spec.clients.clone().unwrap_or_default();
        let mut auth = render::AuthInputs::default();
        if clients.service_accounts {
            for role in docs.iter().filter(|d| d["kind"] == "NatsServiceRole") {
                if namespace_of(role) == ns
                    && role
                        .pointer("/metadata/labels/nats_cluster")
                        .and_then(Value::as_str)
                        == Some(meta.name.as_str())
                {
                    let permissions = serde_json::from_value(role["spec"]["permissions"].clone())
                        .unwrap_or_default();
                    auth.service_roles.push(render::ServiceRoleUser {
                        username: name_of(role),
                        token: OFFLINE_TOKEN.into(),
                        permissions,
                    });
                }
            }
            auth.service_roles
                .sort_by(|a, b| a.username.cmp(&b.username));
        } else if !clients.secret.is_empty() {
            auth.clients = find_secret(&clients.secret);
        }
        if let Some(r) = &auth_spec.routes {
            auth.routes = find_secret(&r.secret);
        }
        if let Some(g) = &auth_spec.gateway {
            auth.gateway = find_secret(&g.secret);
        }
        if let Some(acc) = &auth_spec.accounts {
            auth.accounts = find_secret(&acc.secret);
        }
        let size = u32::try_from(spec.size.max(0)).unwrap_or(0);
        let members: Vec<String> = (1..=size)
            .map(|i| render::pod_name(&meta.name, i))
            .collect();
        let conf = render::nats_conf(spec, &meta, &members, &auth, &render::Paths::default())
            .map_err(|e| err(e.to_string()))?;
        let mut objects: Vec<Value> = vec![
            serde_json::to_value(render::client_service(spec, &meta)).unwrap_or_default(),
            serde_json::to_value(render::management_service(spec, &meta)).unwrap_or_default(),
            serde_json::to_value(render::config_secret(&meta, &conf)).unwrap_or_default(),
        ];
        let kinds = vec![("v1", "Service"), ("v1", "Service"), ("v1", "Secret")];
        let mut kinds = kinds;
        if let Some(pdb) = render::disruption_budget(spec, &meta) {
            objects.push(serde_json::to_value(pdb).unwrap_or_default());
            kinds.push(("policy/v1", "PodDisruptionBudget"));
        }
        for i in 1..=size {
            let pod =
                render::member_pod(spec, &meta, i, &conf.hash).map_err(|e| err(e.to_string()))?;
            if let Some(pvc) = render::member_pvc(spec, &meta, &render::pod_name(&meta.name, i)) {
                objects.push(serde_json::to_value(pvc).unwrap_or_default());
                kinds.push(("v1", "PersistentVolumeClaim"));
            }
            objects.push(serde_json::to_value(pod).unwrap_or_default());
            kinds.push(("v1", "Pod"));
        }
        for (mut obj, (api, kind)) in objects.into_iter().zip(kinds) {
            if let Some(m) = obj.as_object_mut() {
                m.insert("apiVersion".into(), api.into());
                m.insert("kind".into(), kind.into());
                // Secrets print their nats.conf readably.
                if kind == "Secret"
                    && let Some(data) = m.remove("data")
                {
                    let text: serde_json::Map<String, Value> = data
                        .as_object()
                        .map(|d| {
                            d.iter()
                                .map(|(k, v)| {
                                    use base64::Engine;
                                    let bytes = v
                                        .as_str()
                                        .and_then(|s| {
                                            base64::engine::general_purpose::STANDARD.decode(s).ok()
                                        })
                                        .unwrap_or_default();
                                    (
                                        k.clone(),
                                        Value::String(String::from_utf8_lossy(&bytes).to_string()),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    m.insert("stringData".into(), Value::Object(text));
                }
            }
            out.push_str("---\n");
            out.push_str(&crate::yaml::to_string(&obj).map_err(|e| err(e.to_string()))?);
        }
        for w in &conf.warnings {
            out.push_str(&format!("# warning ({}): {w}\n", meta.name));
        }
    }
    Ok(out)
}
