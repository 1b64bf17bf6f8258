//! The upstream nats-operator examples (`../shared/fixtures/nats-operator-examples`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// Kinds of the examples' documents that are applied into a test namespace: our two kinds,
/// and the ServiceAccounts they refer to. Namespaces, Pods, RBAC and Deployments are not, nor
/// Secrets (the upstream ones hold placeholders such as `...base64-encoded-credentials...`
/// that the apiserver rejects, and no controller reads them here).
pub const APPLIED_KINDS: &[&str] = &["NatsCluster", "NatsServiceRole", "ServiceAccount"];

/// `$NATS_OPERATOR_EXAMPLES`, or `../shared/fixtures/nats-operator-examples` next to the
/// repository.
pub fn examples_dir() -> PathBuf {
    match std::env::var_os("NATS_OPERATOR_EXAMPLES").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/nats-operator-examples"),
    }
}

/// The `*.yaml` files of [`examples_dir`], sorted.
pub fn example_files() -> Result<Vec<PathBuf>> {
    let dir = examples_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "reading {} (set NATS_OPERATOR_EXAMPLES to the upstream examples)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every non-empty document of a YAML stream, as JSON.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).with_context(|| format!("YAML document {}", i + 1))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// The documents of `file` whose kind is in [`APPLIED_KINDS`], with `metadata.namespace`
/// removed so that `kubectl apply -n <test namespace>` puts them there.
pub fn applicable_documents(file: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let docs = yaml_documents(&text).with_context(|| format!("parsing {}", file.display()))?;
    Ok(docs
        .into_iter()
        .filter(|d| {
            d.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| APPLIED_KINDS.contains(&k))
        })
        .map(|mut d| {
            if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("namespace");
            }
            d
        })
        .collect())
}

/// `kind` and `metadata.name` of a document.
pub fn kind_and_name(doc: &Value) -> (String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (s(&doc["kind"]), s(&doc["metadata"]["name"]))
}
