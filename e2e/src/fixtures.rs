//! The example manifests: ours (`examples/`) and the upstream nats-operator ones, a
//! compatibility input read from `NATS_OPERATOR_UPSTREAM_EXAMPLES` or
//! `../shared/fixtures/nats-operator-examples` beside the repository.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// Kinds of the examples' documents that are applied into a test namespace: our two kinds,
/// and the ServiceAccounts they refer to. Namespaces, Pods, RBAC and Deployments are not, nor
/// Secrets (the upstream ones hold placeholders such as `...base64-encoded-credentials...`
/// that the apiserver rejects, and no controller reads them here).
pub const APPLIED_KINDS: &[&str] = &["NatsCluster", "NatsServiceRole", "ServiceAccount"];

#[path = "../../tests/support/upstream.rs"]
mod upstream;
pub use upstream::UPSTREAM_EXAMPLES_ENV;

/// The upstream examples' directory, or `None` (after printing that `test` skipped and
/// why) where this machine has none; under `CI=true` their absence panics.
pub fn examples_dir(test: &str) -> Option<PathBuf> {
    upstream::upstream_examples_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."), test)
}

/// Our own examples of `version` (`examples/v1beta1`, `examples/v1alpha2`).
pub fn our_examples_dir(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(version)
}

/// The `*.yaml` files of the upstream examples, sorted; empty (with a message) when they
/// are not here, see [`examples_dir`].
pub fn example_files(test: &str) -> Result<Vec<PathBuf>> {
    match examples_dir(test) {
        Some(dir) => yaml_files(&dir),
        None => Ok(Vec::new()),
    }
}

/// The `*.yaml` (and `*.yml`) files of `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every non-empty document of a YAML stream, as JSON.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>> {
    Ok(nats_operator::yaml::documents(text)?)
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
