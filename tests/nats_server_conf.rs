//! Every upstream example NatsCluster (but the invalid-cipher one) renders a `nats.conf`
//! that real nats-servers accept (`nats-server -c nats.conf -t`), on the release we
//! default to and on Debian's older 2.9.
//!
//! The text is checked as rendered: nothing is rewritten. The files it references must
//! exist for `-t`, so the renderer is given [`Paths`] under a temporary directory (the
//! one thing that differs from a pod, where the defaults are the Secret mount paths),
//! and the test creates those files: TLS certificates, the advertise includes, the
//! clients auth include. Leafnode credential files are not read by `-t`.

mod nats_server_support;
mod support;

use nats_operator::api::admission::default_object;
use nats_operator::api::convert::spec_up;
use nats_operator::api::v1alpha2 as a;
use nats_operator::api::v1beta1 as b;
use nats_operator::render::{
    AuthInputs, ClusterMeta, Paths, ServiceRoleUser, nats_conf, pod_name, tls_path,
};
use nats_server_support::{Server, config_test_with, servers, write_tls};

/// A self-signed operator JWT (made once with an ed25519 operator nkey; no expiry), for
/// the example with `operatorConfig`: the server verifies its signature even with `-t`.
const OPERATOR_JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJZRUNETDZFSzc1UVA2RU5ISUE3WjZISTdFRVdXRUxETUlUUlBGVjNUTFI3RzMyRzREVVZBIiwiaWF0IjoxNzAwMDAwMDAwLCJpc3MiOiJPQVEyRVpNRTdHWk42TUxISlNWR1lPVkZTMjJNVEU0N1lGS1lLTVk3WVE0Vk5TU0VCNTJVR1pEMiIsIm5hbWUiOiJyZW5kZXItdGVzdCIsInN1YiI6Ik9BUTJFWk1FN0daTjZNTEhKU1ZHWU9WRlMyMk1URTQ3WUZLWUtNWTdZUTRWTlNTRUI1MlVHWkQyIiwibmF0cyI6eyJzeXN0ZW1fYWNjb3VudCI6IkFBTDZOVkFNWTVHNVZDVko3VTRCRE1PSElLN0tST1JPT1dDUkY0SUhJQ09ESkpUT0RJWDNUVURBIiwidHlwZSI6Im9wZXJhdG9yIiwidmVyc2lvbiI6Mn19.7l6ytiXNc8UUSN4gtpa8hqq4KZpIOhtij1NK4HUfTVDfRvUG-CklmuKcJl-jkiTIO7VT8754sch2eZIPzQ3qBg";

/// The system account [`OPERATOR_JWT`] names.
const OPERATOR_JWT_SYSTEM_ACCOUNT: &str =
    "AAL6NVAMY5G5VCVJ7U4BDMOHIK7KROROOWCRF4IHICODJJTODIX3TUDA";

fn beta_spec(doc: &serde_json::Value) -> b::NatsClusterSpec {
    let (defaulted, _) = default_object(doc, None);
    let alpha: a::ClusterSpec =
        serde_json::from_value(defaulted["spec"].clone()).expect("v1alpha2 spec");
    spec_up(&alpha)
}

fn auth_inputs(spec: &b::NatsClusterSpec, upstream: &std::path::Path) -> AuthInputs {
    let clients_json = std::fs::read_to_string(upstream.join("clients-auth-permissions.json"))
        .expect("clients-auth-permissions.json");
    let mut inputs = AuthInputs::default();
    let auth = spec.auth.clone().unwrap_or_default();
    if auth.clients.as_ref().is_some_and(|c| !c.secret.is_empty()) {
        inputs.clients = Some(serde_json::from_str(&clients_json).expect("json"));
    }
    if auth.routes.is_some() {
        inputs.routes = Some(serde_json::json!({"username": "ruser", "password": "r:p@ss/word"}));
    }
    if auth.gateway.is_some() {
        inputs.gateway = Some(serde_json::json!({"username": "guser", "password": "gpass"}));
    }
    inputs.service_roles = vec![ServiceRoleUser {
        username: "nats-admin-user".into(),
        token: "eyJhbGciOiJSUzI1NiJ9.fake.token".into(),
        permissions: a::Permissions {
            publish: vec![">".into()],
            subscribe: vec![">".into()],
        },
    }];
    inputs
}

/// Creates every file the rendered config reads.
fn create_files(spec: &b::NatsClusterSpec, paths: &Paths, config_dir: &std::path::Path) {
    if let Some(tls) = spec.tls.as_ref() {
        if let Some(c) = tls.client.as_ref().filter(|c| !c.secret.is_empty()) {
            write_tls(
                tls_path(&paths.client_tls, &c.ca_file).as_ref(),
                tls_path(&paths.client_tls, &c.cert_file).as_ref(),
                tls_path(&paths.client_tls, &c.key_file).as_ref(),
            );
        }
        for (dir, l) in [
            (&paths.routes_tls, tls.routes.as_ref()),
            (&paths.gateway_tls, tls.gateway.as_ref()),
            (&paths.leafnode_tls, tls.leafnode.as_ref()),
            (&paths.websocket_tls, tls.websocket.as_ref()),
        ] {
            if let Some(l) = l.filter(|l| !l.secret.is_empty()) {
                write_tls(
                    tls_path(dir, &l.ca_file).as_ref(),
                    tls_path(dir, &l.cert_file).as_ref(),
                    tls_path(dir, &l.key_file).as_ref(),
                );
            }
        }
    }
    if spec
        .auth
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .is_some_and(|j| !j.operator_secret.is_empty())
    {
        std::fs::create_dir_all(&paths.operator_jwt).expect("mkdir");
        std::fs::write(
            std::path::Path::new(&paths.operator_jwt).join("op.jwt"),
            OPERATOR_JWT,
        )
        .expect("write op.jwt");
    }
    let advertise = config_dir.join("advertise");
    std::fs::create_dir_all(&advertise).expect("mkdir");
    std::fs::write(
        advertise.join("client_advertise.conf"),
        "client_advertise = \"203.0.113.7\"\n",
    )
    .expect("write");
    std::fs::write(
        advertise.join("gateway_advertise.conf"),
        "advertise = \"203.0.113.7\"\n",
    )
    .expect("write");
    if let Some(file) = spec
        .auth
        .as_ref()
        .and_then(|a| a.clients.as_ref())
        .map(|c| c.file.clone())
        .filter(|f| !f.is_empty())
    {
        let path = config_dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, "users = [ { user: 'foo', pass: 'bar' } ]\n").expect("write");
    }
}

#[test]
fn every_upstream_example_passes_nats_server_config_test() {
    let servers = servers();
    let test = "every_upstream_example_passes_nats_server_config_test";
    let Some(upstream) = support::upstream_dir(test) else {
        return;
    };
    let clusters = support::clusters_in(&upstream);
    assert!(clusters.len() >= 10, "examples missing: {}", clusters.len());
    let mut checked = 0;
    for (file, doc) in clusters {
        if file == "example-custom-cipher.yaml" {
            continue; // invalid on purpose (cipher ASDF); the webhook denies it
        }
        let name = doc["metadata"]["name"].as_str().expect("name");
        let meta = ClusterMeta::new(
            name,
            doc["metadata"]["namespace"].as_str().unwrap_or("default"),
        );
        // As if the user ran this example on each release: what the webhook lets through
        // must start there (example-nats-custom-config asks for max_payload over
        // max_pending, which servers since 2.3.4 refuse: denied on those, naming the field).
        for server in &servers {
            let mut doc = doc.clone();
            doc["spec"]["version"] = server.version.clone().into();
            if let Err(e) = nats_operator::api::admission::validate_object(&doc, None) {
                assert!(
                    file == "example-nats-custom-config.yaml"
                        && e.iter().all(|e| e.to_string().contains("maxPayload")),
                    "{file} denied on {}: {e:?}",
                    server.version
                );
                continue;
            }
            let mut spec = beta_spec(&doc);
            // The example names the system account of its own operator JWT; ours is
            // OPERATOR_JWT's (servers refuse a config naming another one).
            if let Some(jwt) = spec.auth.as_mut().and_then(|a| a.jwt.as_mut())
                && !jwt.system_account.is_empty()
            {
                jwt.system_account = OPERATOR_JWT_SYSTEM_ACCOUNT.into();
            }
            assert_server_accepts(server, &file, &spec, &meta, &auth_inputs(&spec, &upstream));
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples checked");
}

/// Renders `spec`'s nats.conf, with every file it reads created under a temporary
/// directory (the one thing that differs from a pod), and asserts that `server` accepts it
/// (`nats-server -t`); `what` names the example in the failure.
fn assert_server_accepts(
    server: &Server,
    what: &str,
    spec: &b::NatsClusterSpec,
    meta: &ClusterMeta,
    auth: &AuthInputs,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = Paths::under(dir.path());
    let members: Vec<String> = (1..=spec.size.max(1) as u32)
        .map(|i| pod_name(&meta.name, i))
        .collect();
    let conf =
        nats_conf(spec, meta, &members, auth, &paths).unwrap_or_else(|e| panic!("{what}: {e}"));
    create_files(spec, &paths, dir.path());
    let conf_path = dir.path().join("nats.conf");
    std::fs::write(&conf_path, &conf.text).expect("write nats.conf");
    let env = [("SERVER_NAME", "us-nats-1"), ("POD_NAME", "nats-1")];
    let pod = nats_operator::render::member_pod(spec, meta, 1, &conf.hash)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let flags = nats_server_support::pod_flags(&pod, &env);
    let (ok, out) = config_test_with(server, &conf_path, &env, &flags);
    // Strict JSON unless it needs what JSON cannot say (an include, a `$VAR` on servers
    // without `--name`, a control character): tools read the config Secret as JSON.
    let server_syntax = ["include \"", ": $", "\\x"]
        .iter()
        .any(|s| conf.text.contains(s));
    if !server_syntax && let Err(e) = serde_json::from_str::<serde_json::Value>(&conf.text) {
        panic!("{what}: nats.conf is not JSON ({e}):\n{}", conf.text);
    }
    assert!(
        ok,
        "{what}: nats-server {} rejects the rendered config:\n{out}\n--- nats.conf ---\n{}",
        server.version, conf.text
    );
}

/// A Secret's one key, as JSON (`stringData` or base64 `data`).
fn secret_json(secret: &serde_json::Value) -> Option<serde_json::Value> {
    use base64::Engine;
    if let Some(m) = secret["stringData"].as_object() {
        return serde_json::from_str(m.values().next()?.as_str()?).ok();
    }
    let b64 = secret["data"].as_object()?.values().next()?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// What the operator would read for `spec` from the Secrets and roles of the same file.
fn file_auth_inputs(spec: &b::NatsClusterSpec, docs: &[serde_json::Value]) -> AuthInputs {
    let secret = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == name)
            .and_then(secret_json)
    };
    let auth = spec.auth.clone().unwrap_or_default();
    let mut inputs = AuthInputs::default();
    if let Some(c) = auth.clients.as_ref().filter(|c| !c.secret.is_empty()) {
        inputs.clients = secret(&c.secret);
    }
    inputs.routes = auth.routes.as_ref().and_then(|r| secret(&r.secret));
    inputs.gateway = auth.gateway.as_ref().and_then(|g| secret(&g.secret));
    inputs.accounts = auth.accounts.as_ref().and_then(|a| secret(&a.secret));
    for role in docs.iter().filter(|d| d["kind"] == "NatsServiceRole") {
        inputs.service_roles.push(ServiceRoleUser {
            username: role["metadata"]["name"].as_str().unwrap_or_default().into(),
            token: "eyJhbGciOiJSUzI1NiJ9.fake.token".into(),
            permissions: serde_json::from_value(role["spec"]["permissions"].clone())
                .unwrap_or_default(),
        });
    }
    inputs
}

/// The version matrix: every NatsCluster of our examples, with `spec.version` set to each
/// release the tests run (every minor from 2.9 to 2.15), is either accepted by the webhook
/// and its rendered config by that `nats-server -t`, or denied by the webhook naming the
/// version. (Every feature we render exists from 2.2 on, so on these releases none is
/// denied.)
#[test]
fn every_example_config_passes_every_server_release() {
    use nats_operator::api::admission::validate_object;
    let servers = servers();
    assert!(
        servers.len() >= 6,
        "the matrix needs every minor: {servers:?}"
    );
    // Each file's documents together: its Secrets and roles are what its clusters read.
    let mut files: std::collections::BTreeMap<String, Vec<serde_json::Value>> = Default::default();
    for (file, doc) in support::our_documents("v1beta1") {
        files.entry(file).or_default().push(doc);
    }
    let mut checked = 0;
    for (file, docs) in &files {
        for doc in docs.iter().filter(|d| d["kind"] == "NatsCluster") {
            let name = doc["metadata"]["name"].as_str().expect("name");
            for server in &servers {
                let mut doc = doc.clone();
                doc["spec"]["version"] = server.version.clone().into();
                if let Err(e) = validate_object(&doc, None) {
                    panic!("{file} {name} on {}: denied {e:?}", server.version);
                }
                let (defaulted, _) = default_object(&doc, None);
                let cluster: b::NatsCluster =
                    serde_json::from_value(defaulted).expect("v1beta1 NatsCluster");
                let spec = cluster.spec;
                assert_server_accepts(
                    server,
                    &format!("{file} {name}"),
                    &spec,
                    &ClusterMeta::new(name, "default"),
                    &file_auth_inputs(&spec, docs),
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 11 * 6,
        "only {checked} example × release pairs checked"
    );
}
