//! Warnings about what a NatsCluster refers to and no schema can check: the Secrets it
//! mounts or reads and the NatsClusters its extra routes name, all in its own namespace.
//!
//! They are admission *warnings*, never denials: the referenced objects may be created
//! after the cluster (GitOps tools apply in any order). The lookup is a trait the caller
//! implements; the webhook passes the operator's informer cache, tests a map. Pure: no
//! I/O, no clock.

use std::collections::BTreeSet;

use super::defaults::{CA_FILE, CERT_FILE, KEY_FILE};
use super::v1beta1 as b;
use super::validate::alpha_paths;

/// Kubernetes shows warnings of fewer characters than this in full.
pub const WARNING_LIMIT: usize = 120;
/// The key of the operator JWT in `spec.auth.jwt.operatorSecret`.
pub const OPERATOR_JWT_KEY: &str = "op.jwt";

/// What the warnings need to know about the objects of a namespace.
pub trait References {
    /// The keys of Secret `namespace/name` (values are never needed), or `None` when
    /// there is no such Secret.
    fn secret_keys(&self, namespace: &str, name: &str) -> Option<BTreeSet<String>>;
    /// Whether NatsCluster `namespace/name` exists.
    fn cluster_exists(&self, namespace: &str, name: &str) -> bool;
}

/// What is wrong with one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The Secret does not exist.
    MissingSecret {
        /// Secret name.
        secret: String,
        /// What happens until it exists.
        effect: &'static str,
    },
    /// The Secret exists without the key a file name names.
    MissingKey {
        /// Secret name.
        secret: String,
        /// The key (file name) looked for.
        key: String,
    },
    /// An authorization Secret does not have exactly one key.
    AuthKeys {
        /// Secret name.
        secret: String,
        /// How many keys it has.
        keys: usize,
    },
    /// An extra route names a NatsCluster that does not exist.
    MissingCluster {
        /// NatsCluster name.
        cluster: String,
    },
}

/// One warning: a v1beta1 field path and its problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceWarning {
    /// v1beta1 field path, such as `spec.tls.client.caFile`.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

const PODS_WAIT: &str = "pods will not start until it exists";
const CONFIG_WAITS: &str = "nats.conf is not updated until it exists";

impl ReferenceWarning {
    /// The warning text, with v1alpha2 field names when `alpha`, in fewer than
    /// [`WARNING_LIMIT`] characters: the namespace, then the explanation, then the end of
    /// a long name give way when the text would be longer.
    pub fn message(&self, namespace: &str, alpha: bool) -> String {
        let path = if alpha {
            alpha_paths(&self.path)
        } else {
            self.path.clone()
        };
        let (what, name, tail, effect): (&str, &str, String, &str) = match &self.problem {
            Problem::MissingSecret { secret, effect } => ("Secret", secret, String::new(), effect),
            Problem::MissingKey { secret, key } => (
                "Secret",
                secret,
                format!(" has no key \"{key}\""),
                "nats-server will not start",
            ),
            Problem::AuthKeys { secret, keys } => (
                "Secret",
                secret,
                format!(" has {keys} keys, not one"),
                "it must hold the JSON authorization under one key",
            ),
            Problem::MissingCluster { cluster } => (
                "NatsCluster",
                cluster,
                String::new(),
                "no route to it until it exists",
            ),
        };
        let missing = matches!(
            self.problem,
            Problem::MissingSecret { .. } | Problem::MissingCluster { .. }
        );
        let body = |name: &str, ns: bool| {
            if missing {
                if ns {
                    format!("{what} \"{name}\" not found in namespace \"{namespace}\"")
                } else {
                    format!("{what} \"{name}\" not found")
                }
            } else {
                format!("{what} \"{name}\"{tail}")
            }
        };
        let candidates = [
            format!("{path}: {} ({effect})", body(name, true)),
            format!("{path}: {} ({effect})", body(name, false)),
            format!("{path}: {}", body(name, false)),
        ];
        if let Some(fits) = candidates
            .into_iter()
            .find(|c| c.chars().count() < WARNING_LIMIT)
        {
            return fits;
        }
        // A very long name: keep its start.
        let fixed = format!("{path}: {}", body("", false)).chars().count();
        let room = WARNING_LIMIT.saturating_sub(fixed + 2);
        let short: String = name.chars().take(room).collect();
        let text = format!("{path}: {}", body(&format!("{short}…"), false));
        text.chars().take(WARNING_LIMIT - 1).collect()
    }
}

/// A TLS file name resolved as the pods see it: relative names are keys of the Secret
/// (an empty name is the rendered default); absolute names are files of the image or
/// another volume, which the Secret does not need to hold.
fn secret_key(file: &str, default: &str) -> Option<String> {
    match file {
        "" => Some(default.to_string()),
        f if f.starts_with('/') => None,
        f => Some(f.to_string()),
    }
}

/// A TLS block: its path, its Secret and its (field, file name) pairs.
type TlsRef<'a> = (&'a str, &'a str, [(&'a str, &'a str); 3]);

/// The references of `spec` (a NatsCluster named `name` in `namespace`) that `refs` says
/// are broken, in spec order.
pub fn reference_warnings(
    namespace: &str,
    name: &str,
    spec: &b::NatsClusterSpec,
    refs: &dyn References,
) -> Vec<ReferenceWarning> {
    let mut out = Vec::new();
    let mut warn = |path: String, problem: Problem| out.push(ReferenceWarning { path, problem });

    // TLS Secrets, mounted into every pod: (path, secret, [(field, file, default)]).
    let mut tls: Vec<TlsRef<'_>> = Vec::new();
    if let Some(t) = &spec.tls {
        if let Some(c) = &t.client {
            tls.push((
                "spec.tls.client",
                &c.secret,
                [
                    ("caFile", &c.ca_file),
                    ("certFile", &c.cert_file),
                    ("keyFile", &c.key_file),
                ],
            ));
        }
        for (path, l) in [
            ("spec.tls.routes", &t.routes),
            ("spec.tls.gateway", &t.gateway),
            ("spec.tls.leafnode", &t.leafnode),
            ("spec.tls.websocket", &t.websocket),
            ("spec.tls.mqtt", &t.mqtt),
        ] {
            if let Some(l) = l {
                tls.push((
                    path,
                    &l.secret,
                    [
                        ("caFile", &l.ca_file),
                        ("certFile", &l.cert_file),
                        ("keyFile", &l.key_file),
                    ],
                ));
            }
        }
    }
    for (path, secret, files) in tls {
        if secret.is_empty() {
            continue;
        }
        let Some(keys) = refs.secret_keys(namespace, secret) else {
            warn(
                format!("{path}.secret"),
                Problem::MissingSecret {
                    secret: secret.to_string(),
                    effect: PODS_WAIT,
                },
            );
            continue;
        };
        for ((field, file), default) in files.iter().zip([CA_FILE, CERT_FILE, KEY_FILE]) {
            if let Some(key) = secret_key(file, default)
                && !keys.contains(&key)
            {
                warn(
                    format!("{path}.{field}"),
                    Problem::MissingKey {
                        secret: secret.to_string(),
                        key,
                    },
                );
            }
        }
    }

    let auth = spec.auth.clone().unwrap_or_default();
    // The operator JWT Secret, mounted into every pod.
    if let Some(jwt) = auth.jwt.as_ref().filter(|j| !j.operator_secret.is_empty()) {
        let path = "spec.auth.jwt.operatorSecret".to_string();
        match refs.secret_keys(namespace, &jwt.operator_secret) {
            None => warn(
                path,
                Problem::MissingSecret {
                    secret: jwt.operator_secret.clone(),
                    effect: PODS_WAIT,
                },
            ),
            Some(keys) if !keys.contains(OPERATOR_JWT_KEY) => warn(
                path,
                Problem::MissingKey {
                    secret: jwt.operator_secret.clone(),
                    key: OPERATOR_JWT_KEY.into(),
                },
            ),
            Some(_) => {}
        }
    }

    // Authorization Secrets, read by the operator (one key holding JSON).
    let clients = auth
        .clients
        .as_ref()
        .filter(|c| !c.service_accounts)
        .map(|c| c.secret.as_str());
    let routes = auth.routes.as_ref().map(|r| r.secret.as_str());
    let gateway = auth
        .gateway
        .as_ref()
        .filter(|_| spec.gateway.is_some())
        .map(|g| g.secret.as_str());
    let accounts = auth.accounts.as_ref().map(|a| a.secret.as_str());
    for (path, secret) in [
        ("spec.auth.clients.secret", clients),
        ("spec.auth.routes.secret", routes),
        ("spec.auth.gateway.secret", gateway),
        ("spec.auth.accounts.secret", accounts),
    ] {
        let Some(secret) = secret.filter(|s| !s.is_empty()) else {
            continue;
        };
        match refs.secret_keys(namespace, secret) {
            None => warn(
                path.into(),
                Problem::MissingSecret {
                    secret: secret.into(),
                    effect: CONFIG_WAITS,
                },
            ),
            Some(keys) if keys.len() != 1 => warn(
                path.into(),
                Problem::AuthKeys {
                    secret: secret.into(),
                    keys: keys.len(),
                },
            ),
            Some(_) => {}
        }
    }

    // Extra routes to other NatsClusters of the namespace.
    for (i, r) in spec.extra_routes.iter().enumerate() {
        if r.cluster.is_empty() || r.cluster == name {
            continue;
        }
        if !refs.cluster_exists(namespace, &r.cluster) {
            warn(
                format!("spec.extraRoutes[{i}].cluster"),
                Problem::MissingCluster {
                    cluster: r.cluster.clone(),
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Default)]
    struct Fake {
        secrets: BTreeMap<(String, String), BTreeSet<String>>,
        clusters: BTreeSet<(String, String)>,
    }

    impl Fake {
        fn secret(mut self, ns: &str, name: &str, keys: &[&str]) -> Self {
            self.secrets.insert(
                (ns.into(), name.into()),
                keys.iter().map(|k| k.to_string()).collect(),
            );
            self
        }
        fn cluster(mut self, ns: &str, name: &str) -> Self {
            self.clusters.insert((ns.into(), name.into()));
            self
        }
    }

    impl References for Fake {
        fn secret_keys(&self, namespace: &str, name: &str) -> Option<BTreeSet<String>> {
            self.secrets
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        }
        fn cluster_exists(&self, namespace: &str, name: &str) -> bool {
            self.clusters
                .contains(&(namespace.to_string(), name.to_string()))
        }
    }

    fn spec(json: serde_json::Value) -> b::NatsClusterSpec {
        serde_json::from_value(json).unwrap_or_default()
    }

    fn messages(ns: &str, spec: &b::NatsClusterSpec, refs: &Fake, alpha: bool) -> Vec<String> {
        reference_warnings(ns, "nats", spec, refs)
            .iter()
            .map(|w| w.message(ns, alpha))
            .collect()
    }

    #[test]
    fn nothing_referenced_nothing_to_say() {
        let s = spec(serde_json::json!({"size": 3}));
        assert!(reference_warnings("ns", "nats", &s, &Fake::default()).is_empty());
    }

    #[test]
    fn missing_tls_secret_names_the_field_and_namespace() {
        let s = spec(serde_json::json!({"size": 3, "tls": {"client": {"secret": "x"}}}));
        let m = messages("ns", &s, &Fake::default(), false);
        assert_eq!(
            m,
            vec![
                "spec.tls.client.secret: Secret \"x\" not found in namespace \"ns\" \
                 (pods will not start until it exists)"
            ]
        );
        assert_eq!(
            messages("ns", &s, &Fake::default(), true),
            vec![
                "spec.tls.serverSecret: Secret \"x\" not found in namespace \"ns\" \
                 (pods will not start until it exists)"
            ]
        );
    }

    #[test]
    fn every_tls_file_name_of_every_listener_must_be_a_key() {
        let s = spec(serde_json::json!({
            "tls": {
                "client": {"secret": "srv", "caFile": "ca.crt", "certFile": "tls.crt", "keyFile": "tls.key"},
                "routes": {"secret": "rt", "caFile": "ca.pem", "certFile": "route.pem", "keyFile": "route-key.pem"},
                "gateway": {"secret": "gw", "caFile": "/etc/ssl/ca.pem"},
                "leafnode": {"secret": "srv", "caFile": "ca.crt", "certFile": "tls.crt", "keyFile": "tls.key"},
            },
            "gateway": {"name": "a", "port": 7522},
            "leafnode": {"port": 7422},
        }));
        let refs = Fake::default()
            .secret("ns", "srv", &["ca.crt", "tls.crt", "tls.key"])
            .secret("ns", "rt", &["route.pem", "route-key.pem"])
            .secret("ns", "gw", &["server.pem"]);
        assert_eq!(
            messages("ns", &s, &refs, false),
            vec![
                "spec.tls.routes.caFile: Secret \"rt\" has no key \"ca.pem\" (nats-server will not start)",
                // Empty names are the rendered defaults; absolute paths are not keys.
                "spec.tls.gateway.keyFile: Secret \"gw\" has no key \"server-key.pem\" (nats-server will not start)",
            ]
        );
        assert_eq!(
            messages("ns", &s, &refs, true),
            vec![
                "spec.tls.routesSecretCAFileName: Secret \"rt\" has no key \"ca.pem\" (nats-server will not start)",
                "spec.tls.gatewaySecretKeyFileName: Secret \"gw\" has no key \"server-key.pem\" (nats-server will not start)",
            ]
        );
    }

    #[test]
    fn jwt_and_auth_secrets() {
        let s = spec(serde_json::json!({
            "auth": {
                "clients": {"secret": "users"},
                "routes": {"secret": "routes"},
                "gateway": {"secret": "gw"},
                "jwt": {"operatorSecret": "op"},
            },
        }));
        let refs = Fake::default()
            .secret("ns", "op", &["operator.jwt"])
            .secret("ns", "users", &["a.json", "b.json"]);
        assert_eq!(
            messages("ns", &s, &refs, true),
            vec![
                "spec.operatorConfig.secret: Secret \"op\" has no key \"op.jwt\" (nats-server will not start)",
                "spec.auth.clientsAuthSecret: Secret \"users\" has 2 keys, not one \
                 (it must hold the JSON authorization under one key)",
                "spec.auth.clusterAuthSecret: Secret \"routes\" not found in namespace \"ns\" \
                 (nats.conf is not updated until it exists)",
            ],
            "the gateway Secret is unused without spec.gateway"
        );
        // Service accounts win over the clients Secret, which is then not read.
        let s = spec(
            serde_json::json!({"auth": {"clients": {"serviceAccounts": true, "secret": "users"}}}),
        );
        assert!(messages("ns", &s, &Fake::default(), false).is_empty());
    }

    #[test]
    fn mqtt_tls_and_accounts_secrets_of_v1beta1() {
        let s = spec(serde_json::json!({
            "jetstream": {},
            "mqtt": {},
            "tls": {"mqtt": {"secret": "mq"}},
            "auth": {"accounts": {"secret": "accts"}},
        }));
        let got = messages("ns", &s, &Fake::default(), false);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("spec.tls.mqtt.secret: Secret \"mq\" not found"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("spec.auth.accounts.secret: Secret \"accts\" not found"),
            "{got:?}"
        );
        let refs = Fake::default()
            .secret("ns", "mq", &["ca.pem", "server.pem", "server-key.pem"])
            .secret("ns", "accts", &["accounts.json"]);
        assert!(messages("ns", &s, &refs, false).is_empty());
    }

    #[test]
    fn extra_routes_to_missing_clusters() {
        let s = spec(serde_json::json!({"extraRoutes": [
            {"cluster": "a"}, {"route": "nats://x:6222"}, {"cluster": "b"}, {"cluster": "nats"}
        ]}));
        let refs = Fake::default().cluster("ns", "a").cluster("other", "b");
        assert_eq!(
            messages("ns", &s, &refs, false),
            vec![
                "spec.extraRoutes[2].cluster: NatsCluster \"b\" not found in namespace \"ns\" \
                 (no route to it until it exists)"
            ]
        );
    }

    #[test]
    fn lookups_are_per_namespace() {
        let s = spec(serde_json::json!({"tls": {"client": {"secret": "x"}}}));
        let refs = Fake::default().secret(
            "elsewhere",
            "x",
            &["ca.pem", "server.pem", "server-key.pem"],
        );
        assert_eq!(messages("ns", &s, &refs, false).len(), 1);
        assert!(messages("elsewhere", &s, &refs, false).is_empty());
    }

    #[test]
    fn every_message_is_shorter_than_the_limit() {
        let long = "n".repeat(253);
        let ns = "a-namespace-of-sixty-three-characters-is-the-longest-possible-x";
        for (secret, key) in [("tls", "ca.pem"), (long.as_str(), "k".repeat(253).as_str())] {
            let s = spec(serde_json::json!({
                "tls": {"websocket": {"secret": secret, "caFile": key}},
                "websocket": {"port": 443},
                "extraRoutes": [{"cluster": secret}],
                "auth": {"routes": {"secret": secret}},
            }));
            for refs in [Fake::default(), Fake::default().secret(ns, secret, &[])] {
                for alpha in [false, true] {
                    for m in messages(ns, &s, &refs, alpha) {
                        assert!(m.chars().count() < WARNING_LIMIT, "{} chars: {m}", m.len());
                        assert!(m.starts_with("spec."), "{m}");
                    }
                }
            }
        }
        // A name that fits keeps everything but the namespace.
        let s = spec(
            serde_json::json!({"tls": {"websocket": {"secret": "my-websocket-certificates"}}, "websocket": {"port": 443}}),
        );
        let m = messages(ns, &s, &Fake::default(), true);
        assert_eq!(
            m,
            vec![
                "spec.tls.websocketSecret: Secret \"my-websocket-certificates\" not found \
                 (pods will not start until it exists)"
            ]
        );
    }
}
