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
use nats_server_support::{config_test, servers, write_tls};

/// A self-signed operator JWT (made once with an ed25519 operator nkey; no expiry), for
/// the example with `operatorConfig`: the server verifies its signature even with `-t`.
const OPERATOR_JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJZRUNETDZFSzc1UVA2RU5ISUE3WjZISTdFRVdXRUxETUlUUlBGVjNUTFI3RzMyRzREVVZBIiwiaWF0IjoxNzAwMDAwMDAwLCJpc3MiOiJPQVEyRVpNRTdHWk42TUxISlNWR1lPVkZTMjJNVEU0N1lGS1lLTVk3WVE0Vk5TU0VCNTJVR1pEMiIsIm5hbWUiOiJyZW5kZXItdGVzdCIsInN1YiI6Ik9BUTJFWk1FN0daTjZNTEhKU1ZHWU9WRlMyMk1URTQ3WUZLWUtNWTdZUTRWTlNTRUI1MlVHWkQyIiwibmF0cyI6eyJzeXN0ZW1fYWNjb3VudCI6IkFBTDZOVkFNWTVHNVZDVko3VTRCRE1PSElLN0tST1JPT1dDUkY0SUhJQ09ESkpUT0RJWDNUVURBIiwidHlwZSI6Im9wZXJhdG9yIiwidmVyc2lvbiI6Mn19.7l6ytiXNc8UUSN4gtpa8hqq4KZpIOhtij1NK4HUfTVDfRvUG-CklmuKcJl-jkiTIO7VT8754sch2eZIPzQ3qBg";

fn beta_spec(doc: &serde_json::Value) -> b::NatsClusterSpec {
    let (defaulted, _) = default_object(doc, None);
    let alpha: a::ClusterSpec =
        serde_json::from_value(defaulted["spec"].clone()).expect("v1alpha2 spec");
    spec_up(&alpha)
}

fn auth_inputs(spec: &b::NatsClusterSpec) -> AuthInputs {
    let clients_json =
        std::fs::read_to_string(support::examples_dir().join("clients-auth-permissions.json"))
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
    let clusters = support::example_clusters();
    assert!(clusters.len() >= 10, "examples missing: {}", clusters.len());
    let mut checked = 0;
    for (file, doc) in clusters {
        if file == "example-custom-cipher.yaml" {
            continue; // invalid on purpose (cipher ASDF); the webhook denies it
        }
        let spec = beta_spec(&doc);
        let name = doc["metadata"]["name"].as_str().expect("name");
        let meta = ClusterMeta::new(
            name,
            doc["metadata"]["namespace"].as_str().unwrap_or("default"),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        let members: Vec<String> = (1..=spec.size.max(1) as u32)
            .map(|i| pod_name(name, i))
            .collect();
        let conf = nats_conf(&spec, &meta, &members, &auth_inputs(&spec), &paths)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        create_files(&spec, &paths, dir.path());
        let conf_path = dir.path().join("nats.conf");
        std::fs::write(&conf_path, &conf.text).expect("write nats.conf");
        for server in &servers {
            let (ok, out) = config_test(
                server,
                &conf_path,
                &[("SERVER_NAME", "us-nats-1"), ("POD_NAME", "nats-1")],
            );
            assert!(
                ok,
                "{file}: nats-server {} rejects the rendered config:\n{out}\n--- nats.conf ---\n{}",
                server.version, conf.text
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples checked");
}
