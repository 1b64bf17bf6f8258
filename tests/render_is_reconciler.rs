//! `nats-operator render` prints exactly what the reconciler applies: for generated
//! clusters (accounts, service roles, PodMonitor, JetStream, TLS, sizes, versions) the
//! objects of `render_stream` equal, field for field, the bodies of the reconciler's
//! decision on the same objects as the apiserver would hold them.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use nats_operator::api::V1BETA1;
use nats_operator::api::admission::default_object;
use nats_operator::api::convert::convert_object;
use nats_operator::api::v1alpha2::NatsServiceRole;
use nats_operator::api::v1beta1::NatsCluster;
use nats_operator::controller::decide::{Step, decide};
use nats_operator::controller::observe::{Observed, PodMonitorSeen};
use nats_operator::controller::service_roles::{Binding, TOKEN_KEY, token_secret};
use nats_operator::render::desired::typed;
use nats_operator::render::{ClusterMeta, Paths};
use nats_operator::yaml_stream::{OFFLINE_TOKEN, render_stream, secret_data};
use proptest::prelude::*;
use serde_json::{Value, json};

const NS: &str = "apps";

/// What a generated case turns on.
#[derive(Debug, Clone)]
struct Case {
    size: i64,
    version: &'static str,
    accounts: bool,
    roles: Vec<&'static str>,
    users_secret: bool,
    pod_monitor: bool,
    jetstream: Option<bool>,
    tls: bool,
    routes_secret: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1i64..6,
        prop::sample::select(vec!["2.9.25", "2.10.27", "2.12.15", "2.15.3", ""]),
        any::<bool>(),
        prop::sample::subsequence(vec!["reader", "writer"], 0..=2),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                size,
                version,
                accounts,
                roles,
                users_secret,
                pod_monitor,
                jetstream,
                tls,
                routes_secret,
            )| Case {
                size,
                version,
                accounts,
                roles,
                users_secret,
                pod_monitor,
                jetstream,
                tls,
                routes_secret,
            },
        )
}

fn secret(name: &str, key: &str, text: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
           "type": "Opaque", "stringData": {key: text}})
}

/// The input file: the NatsCluster and what it references.
fn documents(c: &Case) -> Vec<Value> {
    let mut spec = json!({"size": c.size});
    if !c.version.is_empty() {
        spec["version"] = json!(c.version);
    }
    let mut docs = Vec::new();
    let mut auth = serde_json::Map::new();
    if !c.roles.is_empty() {
        auth.insert("clients".into(), json!({"serviceAccounts": true}));
    } else if c.users_secret {
        auth.insert("clients".into(), json!({"secret": "users", "timeout": 3}));
        docs.push(secret(
            "users",
            "users.json",
            r#"{"users": [{"username": "a", "password": "p\"q"}]}"#,
        ));
    }
    if c.accounts {
        auth.insert("accounts".into(), json!({"secret": "accounts"}));
        docs.push(secret(
            "accounts",
            "accounts.json",
            r#"{"A": {"users": [{"user": "u", "password": "x"}]}, "SYS": {}}"#,
        ));
    }
    if c.routes_secret {
        auth.insert("routes".into(), json!({"secret": "routes"}));
        docs.push(secret(
            "routes",
            "routes.json",
            r#"{"username": "route", "password": "r"}"#,
        ));
    }
    if !auth.is_empty() {
        spec["auth"] = Value::Object(auth);
    }
    if c.pod_monitor {
        spec["pod"] = json!({"metrics": {"enabled": true}, "podMonitor": {"enabled": true, "interval": "15s"}});
    }
    if let Some(file) = c.jetstream {
        spec["jetstream"] = if file {
            json!({"memoryStorage": "1Gi", "fileStorage": {"size": "5Gi", "reclaimPolicy": "Delete"}})
        } else {
            json!({"memoryStorage": "1Gi"})
        };
    }
    if c.tls {
        spec["tls"] =
            json!({"client": {"secret": "client-tls"}, "routes": {"secret": "routes-tls"}});
    }
    for r in &c.roles {
        docs.push(
            json!({"apiVersion": "nats.io/v1alpha2", "kind": "NatsServiceRole",
            "metadata": {"name": r, "namespace": NS, "labels": {"nats_cluster": "gen"}},
            "spec": {"permissions": {"publish": [format!("{r}.>")], "subscribe": [">"]}}}),
        );
    }
    docs.push(
        json!({"apiVersion": "nats.io/v1beta1", "kind": "NatsCluster",
        "metadata": {"name": "gen", "namespace": NS}, "spec": spec}),
    );
    docs
}

/// The reconciler's view of the NatsCluster `raw` of `docs` once stored: the cluster
/// as the webhook stores a create, in the storage version; the Secrets' data; and
/// every service-role token already issued (with the placeholder `render` prints, so
/// the configs compare).
fn observed(docs: &[Value], raw: &Value) -> Observed {
    let (stored, _) = default_object(raw, None);
    let stored = convert_object(stored, V1BETA1).unwrap_or_else(|e| panic!("{e}"));
    let mut stored: NatsCluster = serde_json::from_value(stored).unwrap_or_else(|e| panic!("{e}"));
    let ns = stored.namespace().unwrap_or_else(|| "default".into());
    stored.metadata.namespace = Some(ns.clone());
    let cluster = nats_operator::api::defaults::at_read_time(&stored);
    let meta = ClusterMeta::of(&cluster).unwrap_or_else(|e| panic!("{e}"));
    let in_ns = |d: &&Value| d["metadata"]["namespace"].as_str().unwrap_or("default") == ns;
    let auth_secrets = docs
        .iter()
        .filter(|d| d["kind"] == "Secret")
        .filter(in_ns)
        .filter_map(|d| {
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Some((name, secret_data(d)?))
        })
        .collect();
    let uses_roles = cluster
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.clients.as_ref())
        .is_some_and(|c| c.service_accounts);
    let bindings = docs
        .iter()
        .filter(|d| uses_roles && d["kind"] == "NatsServiceRole")
        .filter(in_ns)
        .filter(|d| d["metadata"]["labels"]["nats_cluster"].as_str() == Some(meta.name.as_str()))
        .map(|d| {
            let mut role: NatsServiceRole =
                serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{e}"));
            role.metadata.namespace = Some(ns.clone());
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(role.name_any()),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let desired = token_secret(&meta, &role, &account);
            let mut existing = desired.clone();
            existing.data.get_or_insert_with(BTreeMap::new).insert(
                TOKEN_KEY.into(),
                ByteString(OFFLINE_TOKEN.as_bytes().to_vec()),
            );
            Binding {
                role: Arc::new(role),
                account,
                desired,
                existing: Some(existing),
            }
        })
        .collect();
    let pod_monitor = if cluster
        .spec
        .pod
        .as_ref()
        .is_some_and(|p| p.pod_monitor.is_some())
    {
        PodMonitorSeen::Exists(None)
    } else {
        PodMonitorSeen::NotAsked
    };
    // The operator's own system user, as `render` writes it offline.
    let system_user_secret = Some(Arc::new(nats_operator::render::secret::system_user_secret(
        &meta,
        &nats_operator::render::system_user::SystemUser {
            username: nats_operator::render::system_user::SYSTEM_USER_NAME.into(),
            password: nats_operator::yaml_stream::OFFLINE_PASSWORD.into(),
        },
    )));
    Observed {
        stored: Arc::new(stored),
        cluster,
        meta: Ok(meta),
        pods: Vec::new(),
        auth_secrets,
        bindings,
        token_secrets: Vec::new(),
        services: BTreeMap::new(),
        config_secret: None,
        disruption_budget: None,
        pod_monitor,
        claims: Some(Vec::new()),
        pending: Default::default(),
        system_user_secret,
        jsz: Vec::new(),
    }
}

/// An object as compared: without the apply hash, with a Secret's data as text.
fn comparable(mut v: Value) -> Value {
    if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("nats.io/applied-hash");
        }
        if m.get("annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.is_empty())
        {
            m.remove("annotations");
        }
    }
    if v["kind"] == "Secret"
        && let Some(m) = v.as_object_mut()
        && let Some(data) = m.remove("data")
    {
        use base64::Engine;
        let text: serde_json::Map<String, Value> = data
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, b)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b.as_str().unwrap_or_default())
                    .unwrap_or_default();
                (
                    k.clone(),
                    Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                )
            })
            .collect();
        m.insert("stringData".into(), Value::Object(text));
    }
    v
}

fn key(v: &Value) -> String {
    format!(
        "{} {}",
        v["kind"].as_str().unwrap_or_default(),
        v["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Renders `docs` and decides every NatsCluster in them; both must give the same
/// objects. Returns how many objects were compared.
fn compare(docs: &[Value], what: &str) -> Result<usize, String> {
    let input: String = docs
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap_or_default()))
        .collect();
    let printed = render_stream(&input).map_err(|e| format!("{what}: {e}"))?;
    let printed: BTreeMap<String, Value> = nats_operator::yaml::documents(&printed)
        .map_err(|e| format!("{what}: {e}"))?
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| (key(&d), comparable(d)))
        .collect();
    let mut applied = BTreeMap::new();
    for raw in docs.iter().filter(|d| d["kind"] == "NatsCluster") {
        let o = observed(docs, raw);
        let d = decide(
            &o,
            &Paths::default(),
            None,
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        );
        for v in d.steps.iter().filter_map(|s| match s {
            Step::Apply { body, .. } => Some(body.clone()),
            Step::CreatePod(p) => Some(typed(p.as_ref(), "v1", "Pod")),
            Step::CreateClaim(c) => Some(typed(c.as_ref(), "v1", "PersistentVolumeClaim")),
            _ => None,
        }) {
            applied.insert(key(&v), comparable(v));
        }
    }
    let (p, a): (Vec<_>, Vec<_>) = (printed.keys().collect(), applied.keys().collect());
    if p != a {
        return Err(format!(
            "{what}: render prints {p:?}, the reconciler applies {a:?}"
        ));
    }
    for (k, want) in &printed {
        if Some(want) != applied.get(k) {
            return Err(format!(
                "{what}: {k} differs:\nrender:     {want}\nreconciler: {}",
                applied.get(k).cloned().unwrap_or_default()
            ));
        }
    }
    Ok(printed.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn render_prints_what_the_reconciler_applies(c in case()) {
        let n = compare(&documents(&c), &format!("{c:?}")).map_err(TestCaseError::fail)?;
        // Two Services, the config Secret, the budget and a pod per member at least.
        prop_assert!(n >= 4 + usize::try_from(c.size).unwrap_or(0), "{n} objects for {c:?}");
        if c.pod_monitor {
            let printed = render_stream(
                &documents(&c).iter().map(|d| format!("---\n{d}\n")).collect::<String>(),
            ).unwrap_or_default();
            prop_assert!(printed.contains("kind: PodMonitor"));
        }
    }
}

/// Every example of ours (both versions) and upstream's: each NatsCluster renders to
/// what the reconciler would apply, and one whose inputs are not in its file renders to
/// nothing, as the reconciler creates nothing for it.
#[test]
fn every_example_renders_what_the_reconciler_applies() {
    let mut files = support::yaml_files(&support::repo().join("examples/v1beta1"));
    files.extend(support::yaml_files(
        &support::repo().join("examples/v1alpha2"),
    ));
    if let Some(dir) = support::upstream_dir("every_example_renders_what_the_reconciler_applies") {
        files.extend(support::yaml_files(&dir));
    }
    let mut compared = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let docs: Vec<Value> = nats_operator::yaml::documents(&text)
            .unwrap_or_default()
            .into_iter()
            .filter(|d| !d.is_null())
            .collect();
        // Upstream's deliberately invalid example is refused before it is stored.
        if !docs.iter().any(|d| d["kind"] == "NatsCluster")
            || nats_operator::api::admission::validate_object(
                docs.iter()
                    .find(|d| d["kind"] == "NatsCluster")
                    .unwrap_or(&Value::Null),
                None,
            )
            .is_err()
        {
            continue;
        }
        match compare(&docs, &file.display().to_string()) {
            Ok(n) => compared += n,
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(compared > 100, "only {compared} objects compared");
    println!(
        "NUMBERS render-is-reconciler: {compared} objects of {} example files identical",
        files.len()
    );
}
