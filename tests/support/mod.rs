//! Shared test helpers: our examples, the upstream ones, and a schema-driven object generator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Map, Value, json};

#[path = "upstream.rs"]
mod upstream;

/// A NatsCluster decoded and re-encoded, so the object is in the canonical form of its
/// version (`3` and `3.0` alike, defaults of the types filled in).
pub fn canonical(v: &Value) -> Value {
    use nats_operator::api::{V1ALPHA2, v1alpha2, v1beta1};
    match v["apiVersion"].as_str() {
        Some(V1ALPHA2) => serde_json::from_value::<v1alpha2::NatsCluster>(v.clone())
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .unwrap_or_else(|e| panic!("decode v1alpha2: {e}\n{v}")),
        _ => serde_json::from_value::<v1beta1::NatsCluster>(v.clone())
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .unwrap_or_else(|e| panic!("decode v1beta1: {e}\n{v}")),
    }
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory of the upstream nats-operator examples, or `None` (skip) where this machine
/// has none; see [`upstream::upstream_examples_dir`].
pub fn upstream_dir(test: &str) -> Option<PathBuf> {
    upstream::upstream_examples_dir(&repo(), test)
}

/// The `*.yaml` files of `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every document of every `*.yaml` file of `dir`: (file name, document as JSON).
pub fn documents_in(dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in yaml_files(dir) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let docs = nats_operator::yaml::documents(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.extend(docs.into_iter().map(|v| (name.clone(), v)));
    }
    out
}

/// The NatsCluster documents of the upstream examples, or `None` (skip; see
/// [`upstream_dir`]).
pub fn upstream_clusters(test: &str) -> Option<Vec<(String, Value)>> {
    Some(clusters_in(&upstream_dir(test)?))
}

/// The NatsCluster documents of the `*.yaml` files of `dir`: (file name, document).
pub fn clusters_in(dir: &Path) -> Vec<(String, Value)> {
    documents_in(dir)
        .into_iter()
        .filter(|(_, v)| v["kind"] == "NatsCluster")
        .collect()
}

/// Our own examples (`examples/<version>/`), every document: (file name, document).
pub fn our_documents(version: &str) -> Vec<(String, Value)> {
    documents_in(&repo().join("examples").join(version))
}

const STRINGS: &[&str] = &[
    "",
    "a",
    "nats",
    "ca.pem",
    "/etc/x/y.pem",
    "10s",
    "Required",
    "FromEnv",
    "2.10.3",
    "v1.4.1",
    "nightly",
    "nats://h:6222",
    "x y",
    "é\"{}$",
    "Always",
    "1Gi",
];

/// A strategy producing JSON that fits the OpenAPI `schema` (as in our CRDs), with any
/// subset of optional fields, so that generated objects reach every field.
pub fn from_schema(schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    if schema.get("x-kubernetes-int-or-string").is_some() {
        return prop::sample::select(vec![json!("1Gi"), json!("500M"), json!("3"), json!("100m")])
            .boxed();
    }
    if let Some(one_of) = schema
        .get("anyOf")
        .or(schema.get("oneOf"))
        .and_then(Value::as_array)
        && let Some(first) = one_of.first()
    {
        return from_schema(first, depth);
    }
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object");
    match ty {
        "boolean" => any::<bool>().prop_map(Value::from).boxed(),
        "integer" => prop_oneof![Just(0i64), -2i64..70000, Just(i64::from(i32::MAX))]
            .prop_map(Value::from)
            .boxed(),
        "number" => prop_oneof![Just(0.0f64), 0.0f64..100.0]
            .prop_map(|f| json!(f))
            .boxed(),
        "string" => {
            if schema.get("format").and_then(Value::as_str) == Some("date-time") {
                prop::sample::select(vec!["2024-01-02T03:04:05Z", "2026-11-24T00:00:00Z"])
                    .prop_map(Value::from)
                    .boxed()
            } else if let Some(e) = schema.get("enum").and_then(Value::as_array) {
                prop::sample::select(e.clone()).boxed()
            } else {
                prop::sample::select(STRINGS.to_vec())
                    .prop_map(Value::from)
                    .boxed()
            }
        }
        "array" => {
            if depth == 0 {
                return Just(json!([])).boxed();
            }
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            prop::collection::vec(from_schema(&items, depth - 1), 0..3)
                .prop_map(Value::Array)
                .boxed()
        }
        _ => {
            let props = schema.get("properties").and_then(Value::as_object);
            if schema.get("x-kubernetes-preserve-unknown-fields").is_some() && props.is_none() {
                return prop_oneof![
                    Just(json!({})),
                    Just(json!({"spec": {"containers": [{"name": "nats", "env": [{"name": "SERVER_NAME", "value": "x"}]}]}})),
                    Just(json!({"jetstream": {"max_mem": "1G"}, "unknown": [1, "two"]})),
                ]
                .boxed();
            }
            if let Some(ap) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                if depth == 0 {
                    return Just(json!({})).boxed();
                }
                return prop::collection::btree_map(
                    prop::sample::select(vec!["k", "example.com/k2", "spam"]),
                    from_schema(ap, depth - 1),
                    0..3,
                )
                .prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                })
                .boxed();
            }
            let Some(props) = props else {
                return Just(json!({})).boxed();
            };
            if depth == 0 {
                return Just(json!({})).boxed();
            }
            let required: Vec<String> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
            for (name, sub) in props {
                let name = name.clone();
                let inner = from_schema(sub, depth - 1);
                if required.contains(&name) {
                    fields.push(inner.prop_map(move |v| Some((name.clone(), v))).boxed());
                } else {
                    fields.push(
                        prop::option::weighted(0.4, inner)
                            .prop_map(move |v| v.map(|v| (name.clone(), v)))
                            .boxed(),
                    );
                }
            }
            fields
                .prop_map(|kvs| {
                    let mut m = Map::new();
                    for (k, v) in kvs.into_iter().flatten() {
                        m.insert(k, v);
                    }
                    Value::Object(m)
                })
                .boxed()
        }
    }
}

/// The openAPIV3Schema of `version` in a CRD.
pub fn version_schema(crd: &Value, version: &str) -> Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == version))
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .unwrap_or(Value::Null)
}
