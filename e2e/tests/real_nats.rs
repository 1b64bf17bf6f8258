//! Real NATS: the operator's pods run from `nats:<version>` images on a real node
//! (kubelet, containerd, runc, kube-proxy, CoreDNS; [`nats_operator_e2e::node`]), and the
//! clusters are tested as users use them: monitoring endpoints, the `async-nats` client
//! through Service ClusterIPs, lame duck, rolling upgrades between two real server versions,
//! Secret changes reaching running servers on the kubelet's own schedule.
//!
//! Each scenario has its own namespace and operator; scenarios running at the same time
//! share one node, which goes away with the last of them (containers, mounts, cgroups,
//! rules and bridge removed, also on failure).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
mod common;

use common::EchoLoad;
use nats_operator_e2e::monitor;
use nats_operator_e2e::natscluster::poll;
use nats_operator_e2e::podrun;
use nats_operator_e2e::realnats::{
    entered_lame_duck, members, setup, setup_with, v1beta1, wait_full_mesh,
};
use nats_operator_e2e::scenario::scenario;
use serde_json::json;

/// Server errors a client reports (permissions violations arrive this way).
type ErrorEvents = tokio::sync::mpsc::UnboundedReceiver<String>;

/// `opts` with an event callback that forwards every client event to the returned channel.
fn reporting(opts: async_nats::ConnectOptions) -> (async_nats::ConnectOptions, ErrorEvents) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let opts = opts.event_callback(move |e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(e.to_string());
        }
    });
    (opts, rx)
}

/// Whether a permissions violation is reported within 5 s.
async fn saw_permissions_violation(events: &mut ErrorEvents) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = events.recv().await {
            if e.to_lowercase().contains("permissions violation") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mesh_of_1_3_and_5_members_through_scaling() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("mesh").await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    let t0 = Instant::now();
    env.apply(&v1beta1(
        "mesh",
        &format!("  size: 3\n  version: \"{version}\"\n  config:\n    lameDuckDuration: 30s\n"),
    ))?;
    let r = async {
        env.wait_ready("mesh", 3).await?;
        let ready = t0.elapsed();
        wait_full_mesh(&env, "mesh", 3, &version).await?;
        println!(
            "NUMBERS mesh: apply -> Ready {:.1} s, apply -> full mesh of 3 {:.1} s",
            ready.as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );
        env.patch_spec("mesh", json!({"size": 5})).await?;
        env.wait_ready("mesh", 5).await?;
        wait_full_mesh(&env, "mesh", 5, &version).await?;
        env.patch_spec("mesh", json!({"size": 1})).await?;
        env.wait_ready("mesh", 1).await?;
        wait_full_mesh(&env, "mesh", 1, &version).await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), env.ns());
        let left = pods.list(&Default::default()).await?.items.len();
        anyhow::ensure!(left == 1, "{left} pods left after scaling to 1");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("mesh", 5).await);
    }
    drop(env.operator);
    Ok(())
}

/// The version matrix: a 3-member cluster of every nats-server release the tests run
/// (each minor from 2.9 to 2.15, all at once in one namespace) forms a full mesh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_minor_forms_a_full_mesh() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("minors").await? else {
        return Ok(());
    };
    let versions = env.nats_versions();
    anyhow::ensure!(
        versions.len() >= 6,
        "the matrix needs every minor: {versions:?}"
    );
    let name = |v: &str| format!("v{}", v.replace('.', "-"));
    let t0 = Instant::now();
    for v in &versions {
        env.apply(&v1beta1(
            &name(v),
            &format!("  size: 3\n  version: \"{v}\"\n  config:\n    lameDuckDuration: 30s\n"),
        ))?;
    }
    let mut times = Vec::new();
    for v in &versions {
        let r = async {
            env.wait_ready(&name(v), 3).await?;
            wait_full_mesh(&env, &name(v), 3, v).await
        }
        .await;
        if let Err(e) = r {
            bail!("{v}: {e:#}\n{}", env.diagnostics(&name(v), 3).await);
        }
        times.push(format!("{v} {:.1} s", t0.elapsed().as_secs_f64()));
    }
    println!(
        "NUMBERS version matrix: full mesh of 3 after apply (all at once): {}",
        times.join(", ")
    );
    Ok(())
}

/// `nats-operator render` output applied as it is (no operator): the node runs the pods,
/// the servers find each other by their DNS names (CoreDNS) and form a full mesh. This
/// proves the node and `render` on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_children_applied_directly_form_a_mesh() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup_with("render", false, false).await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    let manifest = format!(
        "apiVersion: nats.io/v1beta1\nkind: NatsCluster\nmetadata:\n  name: r\n  namespace: {}\nspec:\n  size: 3\n  version: \"{version}\"\n  config:\n    lameDuckDuration: 30s\n",
        env.ns()
    );
    let rendered = podrun::render(&manifest)?;
    env.apply(&rendered)?;
    let r = wait_full_mesh(&env, "r", 3, &version).await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("r", 3).await);
    }
    Ok(())
}

/// A rolling upgrade between the two real server versions (Debian's 2.9 and the PyPI
/// release), with clients connected through the client Service: a requester sends a
/// request every 20 ms to two responders (a queue group) for the whole roll; every request
/// must get its reply. Then a scale-down, highest index first, each server in lame duck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_loses_no_request_reply() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("upgrade").await? else {
        return Ok(());
    };
    let (new, old) = env.upgrade_versions()?;
    env.apply(&v1beta1(
        "up",
        &format!("  size: 3\n  version: \"{old}\"\n  config:\n    lameDuckDuration: 30s\n"),
    ))?;
    let r = async {
        env.wait_ready("up", 3).await?;
        wait_full_mesh(&env, "up", 3, &old).await?;
        let proxy = env.service("up", 4222).await?;
        let url = format!("nats://{}", proxy.addr());
        let load = EchoLoad::start(&url).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t0 = Instant::now();
        env.patch_spec("up", json!({"version": new})).await?;
        wait_full_mesh(&env, "up", 3, &new).await?;
        env.wait_ready("up", 3).await?;
        let roll = t0.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let report = load.finish().await?;
        println!(
            "NUMBERS upgrade {old} -> {new}: rolling upgrade of 3 members {:.1} s; {report}",
            roll.as_secs_f64(),
        );
        anyhow::ensure!(
            report.errors.is_empty(),
            "request-reply errors during the roll: {:?}",
            report.errors
        );
        anyhow::ensure!(report.ok > 100, "only {} requests went through", report.ok);
        for m in members("up", 3) {
            anyhow::ensure!(
                entered_lame_duck(&env, &m),
                "{m} was replaced without lame duck mode"
            );
        }

        // Scale down: 3 -> 1, highest index first, each in lame duck.
        let tracker =
            nats_operator_e2e::natscluster::PodTracker::start(&env.client, env.ns(), "up").await?;
        env.patch_spec("up", json!({"size": 1})).await?;
        env.wait_ready("up", 1).await?;
        wait_full_mesh(&env, "up", 1, &new).await?;
        let order = tracker.deletion_order();
        anyhow::ensure!(
            order == vec!["up-3".to_string(), "up-2".to_string()],
            "scale-down order {order:?}"
        );
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("up", 3).await);
    }
    Ok(())
}

/// Users and permissions from `clientsAuthSecret` are enforced by the servers, and a
/// change to the Secret reaches them through the config reloader: a removed user is locked
/// out while the others stay connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_auth_is_enforced_and_reloaded() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("auth").await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    let users = json!({
        "users": [
            {"username": "alice", "password": "alice-secret",
             "permissions": {"publish": {"allow": ["public.>"], "deny": ["private.>"]}}},
            {"username": "bob", "password": "bob-secret"}
        ]
    });
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: clients-auth\nstringData:\n  clients-auth.json: '{}'\n",
        users
    );
    env.apply(&secret)?;
    // As users have it: v1alpha2 with the Go operator's field names.
    env.apply(&format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: auth\nspec:\n  size: 3\n  version: \"{version}\"\n  lameDuckDurationSeconds: 30\n  pod:\n    enableConfigReload: true\n  auth:\n    clientsAuthSecret: clients-auth\n    clientsAuthTimeout: 5\n"
    ))?;
    let r = async {
        env.wait_ready("auth", 3).await?;
        wait_full_mesh(&env, "auth", 3, &version).await?;
        let ip = env.pod_ip("auth-1").await?;
        let url = format!("nats://{ip}:4222");
        // Wrong password: refused.
        let bad = async_nats::ConnectOptions::with_user_and_password("alice".into(), "nope".into())
            .max_reconnects(Some(1))
            .connect(&url);
        let bad = tokio::time::timeout(Duration::from_secs(5), bad).await;
        anyhow::ensure!(!matches!(bad, Ok(Ok(_))), "a wrong password was accepted");
        // Alice: allowed subject works, denied one is a permissions violation.
        let (alice_opts, mut errors) = reporting(async_nats::ConnectOptions::with_user_and_password(
            "alice".into(),
            "alice-secret".into(),
        ));
        let alice = alice_opts
            .connect(&url)
            .await?;
        let bob = async_nats::ConnectOptions::with_user_and_password("bob".into(), "bob-secret".into())
            .connect(&url)
            .await?;
        let mut sub = bob.subscribe("public.news").await?;
        bob.flush().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.publish("public.news", "hello".into()).await?;
        alice.flush().await?;
        use futures::StreamExt;
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next()).await?;
        anyhow::ensure!(got.is_some_and(|m| m.payload == "hello"), "alice's allowed publish did not arrive");
        alice.publish("private.x", "secret".into()).await?;
        alice.flush().await?;
anyhow::ensure!(
            saw_permissions_violation(&mut errors).await,
            "no permissions violation for a denied publish"
        );

        // Remove bob: the config Secret is re-rendered, the reloader signals the servers.
        let t0 = Instant::now();
        let users = json!({"users": [{"username": "alice", "password": "alice-secret",
            "permissions": {"publish": {"allow": ["public.>"], "deny": ["private.>"]}}}]});
        env.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: clients-auth\nstringData:\n  clients-auth.json: '{users}'\n"
        ))?;
        poll(Duration::from_secs(60), Duration::from_millis(250), "bob locked out", || {
            let url = url.clone();
            async move {
                let c = async_nats::ConnectOptions::with_user_and_password("bob".into(), "bob-secret".into())
                    .connect(&url);
                Ok(match tokio::time::timeout(Duration::from_secs(3), c).await {
                    Ok(Ok(_)) => Err("bob still accepted".to_string()),
                    _ => Ok(()),
                })
            }
        })
        .await?;
        println!("NUMBERS auth: Secret change -> user locked out on a running server {:.1} s", t0.elapsed().as_secs_f64());
        // Alice stayed connected on the same server and still works.
        anyhow::ensure!(
            alice.connection_state() == async_nats::connection::State::Connected,
            "alice was disconnected by the reload"
        );
        alice.publish("public.after", "x".into()).await?;
        alice.flush().await?;
        // No pod was restarted: the change was a reload.
        let restarts = env.restarts().await?;
        anyhow::ensure!(restarts == 0, "{restarts} containers restarted");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("auth", 3).await);
    }
    Ok(())
}

/// The Go operator's `clientsAuthFile` as its users mount it (upstream scenario
/// `TestConfigReloadOnClientAuthFileChange`): a Secret volume mounted inside the config
/// directory, itself a read-only Secret volume, and included by `nats.conf`. The users in
/// the file are enforced, and a change of the Secret reaches the running server on the
/// kubelet's schedule and is reloaded, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_auth_file_in_the_config_directory_is_enforced_and_reloaded() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("authfile").await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    let auth_file = |password: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: auth-file\nstringData:\n  data: 'users = [ {{ user: foo, password: {password} }} ]'\n"
        )
    };
    env.apply(&auth_file("bar"))?;
    env.apply(&format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: authfile\nspec:\n  size: 1\n  version: \"{version}\"\n  pod:\n    enableConfigReload: true\n    volumeMounts:\n      - name: authconfig\n        mountPath: /etc/nats-config/authconfig\n  auth:\n    clientsAuthFile: \"authconfig/auth.json\"\n  template:\n    spec:\n      volumes:\n        - name: authconfig\n          secret:\n            secretName: auth-file\n            items:\n              - key: data\n                path: auth.json\n"
    ))?;
    let r = async {
        env.wait_ready("authfile", 1).await?;
        let ip = env.pod_ip("authfile-1").await?;
        let url = format!("nats://{ip}:4222");
        let login = |password: &'static str| {
            let url = url.clone();
            async move {
                let c = async_nats::ConnectOptions::with_user_and_password("foo".into(), password.into())
                    .connect(&url);
                matches!(tokio::time::timeout(Duration::from_secs(3), c).await, Ok(Ok(_)))
            }
        };
        anyhow::ensure!(login("bar").await, "foo/bar from the auth file was refused");
        anyhow::ensure!(!login("baz").await, "a password not in the auth file was accepted");
        let anonymous = async_nats::connect(&url);
        anyhow::ensure!(
            !matches!(tokio::time::timeout(Duration::from_secs(3), anonymous).await, Ok(Ok(_))),
            "a client without credentials was accepted"
        );

        let t0 = Instant::now();
        env.apply(&auth_file("baz"))?;
        poll(Duration::from_secs(180), Duration::from_millis(500), "the new password accepted", || async {
            Ok(if login("baz").await { Ok(()) } else { Err("foo/baz refused".to_string()) })
        })
        .await?;
        let reloaded = t0.elapsed();
        anyhow::ensure!(!login("bar").await, "the old password still works after the reload");
        let restarts = env.restarts().await?;
        anyhow::ensure!(restarts == 0, "{restarts} containers restarted");
        println!(
            "NUMBERS auth file: Secret change -> new password accepted by the running server {:.1} s (the kubelet's Secret volume sync, then the reloader)",
            reloaded.as_secs_f64()
        );
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("authfile", 1).await);
    }
    Ok(())
}

/// PEM files of a CA and a certificate signed by it (server and client auth), for Secrets.
fn pki(
    ca: &nats_operator_certs::generate::CertificateAuthority,
    sans: &[String],
) -> Result<(String, String)> {
    let c = ca.issue_peer(sans, Duration::from_secs(3600))?;
    Ok((c.cert_pem().to_string(), c.key_pem().to_string()))
}

fn secret_yaml(name: &str, files: &[(&str, &str)]) -> String {
    let mut s = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n");
    for (k, v) in files {
        s += &format!("  {k}: |\n");
        for line in v.lines() {
            s += &format!("    {line}\n");
        }
    }
    s
}

/// Client TLS with the upstream example's custom file names, TLS between the servers on
/// the routes (mutual, the servers dial each other by their DNS names) with route
/// credentials, and `verify_and_map`: a client without a certificate is refused, one with
/// a certificate from the CA gets in as the user its subject names, with that user's
/// permissions; plain text is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_for_clients_and_routes_with_verify() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("tls").await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    let ns = env.ns().to_string();
    let ca = nats_operator_certs::generate::CertificateAuthority::generate(
        "e2e-nats-ca",
        Duration::from_secs(7200),
    )?;
    let (server, server_key) = pki(
        &ca,
        &[
            "127.0.0.1".into(),
            "localhost".into(),
            format!("tls.{ns}.svc"),
            format!("*.tls-mgmt.{ns}.svc"),
        ],
    )?;
    let (route, route_key) = pki(
        &ca,
        &[format!("*.tls-mgmt.{ns}.svc"), format!("tls-mgmt.{ns}.svc")],
    )?;
    let (client, client_key) = pki(&ca, &["e2e-client".into()])?;
    env.apply(&secret_yaml(
        "nats-clients-tls",
        &[
            ("ca.pem", ca.cert_pem()),
            ("server.pem", &server),
            ("server-key.pem", &server_key),
        ],
    ))?;
    env.apply(&secret_yaml(
        "nats-routes-tls",
        &[
            ("ca.pem", ca.cert_pem()),
            ("route.pem", &route),
            ("route-key.pem", &route_key),
        ],
    ))?;
    // verify_and_map: the client certificate's subject is the user name. Route auth too,
    // with credentials that need escaping in the route URLs.
    let dn = "CN=e2e-client,O=nats-operator";
    let users = json!({"users": [{"username": dn, "permissions": {"publish": ["tls.>"], "subscribe": ["tls.>", "_INBOX.>"]}}]});
    env.apply(&secret_yaml(
        "tls-users",
        &[("users.json", &users.to_string())],
    ))?;
    let route_auth = json!({"username": "route@user", "password": "p:a/s s#1"});
    env.apply(&secret_yaml(
        "route-users",
        &[("routes.json", &route_auth.to_string())],
    ))?;
    env.apply(&format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: tls\nspec:\n  size: 3\n  version: \"{version}\"\n  lameDuckDurationSeconds: 30\n  tls:\n    serverSecret: nats-clients-tls\n    serverSecretCAFileName: ca.pem\n    serverSecretKeyFileName: server-key.pem\n    serverSecretCertFileName: server.pem\n    routesSecret: nats-routes-tls\n    routesSecretCAFileName: ca.pem\n    routesSecretKeyFileName: route-key.pem\n    routesSecretCertFileName: route.pem\n    verify: true\n  auth:\n    tlsVerifyAndMap: true\n    clientsAuthSecret: tls-users\n    clusterAuthSecret: route-users\n"
    ))?;
    let dir = tempfile::tempdir()?;
    let write = |name: &str, text: &str| -> Result<std::path::PathBuf> {
        let p = dir.path().join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    };
    let (ca_file, cert_file, key_file) = (
        write("ca.pem", ca.cert_pem())?,
        write("client.pem", &client)?,
        write("client-key.pem", &client_key)?,
    );
    let r = async {
        env.wait_ready("tls", 3).await?;
        // Routes over TLS: the mesh forms only if every server trusts the others' certificates.
        wait_full_mesh(&env, "tls", 3, &version).await?;
        let varz = monitor::get_json(env.monitoring("tls-1").await.context("ip")?, "/varz").await?;
        anyhow::ensure!(
            varz["cluster"]["tls_required"] == true && varz["cluster"]["tls_verify"] == true,
            "routes are not mutual TLS: {}",
            varz["cluster"]
        );
        anyhow::ensure!(
            varz["tls_required"] == true && varz["tls_verify"] == true,
            "clients: {varz}"
        );
        // As a user outside the cluster reaches it (the server's certificate names
        // 127.0.0.1 and localhost, not the Service's ClusterIP).
        let proxy = env.cluster.port_forward(env.ns(), "svc/tls", 4222)?;
        let url = format!("tls://{}", proxy.addr());
        let attempt = |opts: async_nats::ConnectOptions| {
            let url = url.clone();
            async move { tokio::time::timeout(Duration::from_secs(5), opts.connect(url)).await }
        };
        // A certificate from the CA: in.
        let good = attempt(
            async_nats::ConnectOptions::new()
                .require_tls(true)
                .add_root_certificates(ca_file.clone())
                .add_client_certificate(cert_file.clone(), key_file.clone()),
        )
        .await;
        let good = match good {
            Ok(Ok(c)) => c,
            other => bail!("a client with a certificate was refused: {other:?}"),
        };
        let mut sub = good.subscribe("tls.check").await?;
        good.publish("tls.check", "x".into()).await?;
        use futures::StreamExt;
        anyhow::ensure!(
            tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await?
                .is_some(),
            "no message over TLS"
        );
        // The mapped user's permissions hold: publishing elsewhere is a violation.
        let (mapped_opts, mut errors) = reporting(
            async_nats::ConnectOptions::new()
                .require_tls(true)
                .add_root_certificates(ca_file.clone())
                .add_client_certificate(cert_file.clone(), key_file.clone()),
        );
        let mapped = attempt(mapped_opts)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))??;
        mapped.publish("other.subject", "x".into()).await?;
        mapped.flush().await?;
        let violation = saw_permissions_violation(&mut errors).await;
        anyhow::ensure!(
            violation,
            "verify_and_map did not apply the mapped user's permissions"
        );
        // verify: no client certificate, no connection.
        let no_cert = attempt(
            async_nats::ConnectOptions::new()
                .require_tls(true)
                .add_root_certificates(ca_file.clone())
                .max_reconnects(Some(1)),
        )
        .await;
        anyhow::ensure!(
            !matches!(no_cert, Ok(Ok(_))),
            "a client without a certificate was accepted"
        );
        // Plain text is not spoken.
        let plain = attempt(async_nats::ConnectOptions::new().max_reconnects(Some(1))).await;
        anyhow::ensure!(
            !matches!(plain, Ok(Ok(_))),
            "a plain-text client was accepted"
        );
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("tls", 3).await);
    }
    Ok(())
}

/// NatsServiceRoles as the Go operator made them: the bound token of a ServiceAccount is
/// the password of a user with the role's permissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_role_tokens_log_in_with_their_permissions() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("nsr").await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    env.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: nats-user\n")?;
    env.apply(
        "apiVersion: nats.io/v1alpha2\nkind: NatsServiceRole\nmetadata:\n  name: nats-user\n  labels:\n    nats_cluster: nsr\nspec:\n  permissions:\n    publish: [\"orders.>\"]\n    subscribe: [\"orders.>\", \"_INBOX.>\"]\n",
    )?;
    env.apply(&format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: nsr\nspec:\n  size: 1\n  version: \"{version}\"\n  lameDuckDurationSeconds: 30\n  pod:\n    enableConfigReload: true\n  auth:\n    enableServiceAccounts: true\n"
    ))?;
    let r = async {
        env.wait_ready("nsr", 1).await?;
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(env.client.clone(), env.ns());
        let token = poll(
            Duration::from_secs(60),
            Duration::from_millis(250),
            "bound token Secret",
            || {
                let secrets = secrets.clone();
                async move {
                    Ok(match secrets.get_opt("nats-user-nsr-bound-token").await? {
                        Some(s) => s
                            .data
                            .and_then(|d| {
                                d.get("token")
                                    .map(|t| String::from_utf8_lossy(&t.0).into_owned())
                            })
                            .filter(|t| !t.is_empty())
                            .ok_or_else(|| "no token yet".to_string()),
                        None => Err("no Secret yet".to_string()),
                    })
                }
            },
        )
        .await?;
        // The user name is whatever the config pairs with this token (namespaced names).
        let conf = secrets.get("nsr").await?;
        let text = conf
            .data
            .and_then(|d| {
                d.get("nats.conf")
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            })
            .context("nats.conf")?;
        let parsed: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("nats.conf is not JSON:\n{text}"))?;
        let user = parsed["authorization"]["users"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["password"] == token.as_str())
            .and_then(|u| u["user"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no user with the token in nats.conf:\n{text}"))?;
        let ip = env.pod_ip("nsr-1").await?;
        let url = format!("nats://{ip}:4222");
        // The server may not have reloaded the new user yet: retry the login for a while.
        let (c, mut errors) = poll(
            Duration::from_secs(60),
            Duration::from_millis(500),
            "login with the bound token",
            || {
                let (user, token, url) = (user.clone(), token.clone(), url.clone());
                async move {
                    let (opts, events) = reporting(
                        async_nats::ConnectOptions::with_user_and_password(user, token),
                    );
                    Ok(
                        match tokio::time::timeout(Duration::from_secs(3), opts.connect(url)).await
                        {
                            Ok(Ok(c)) => Ok((c, events)),
                            other => Err(format!("{other:?}")),
                        },
                    )
                }
            },
        )
        .await?;
        let mut sub = c.subscribe("orders.new").await?;
        c.publish("orders.new", "1".into()).await?;
        use futures::StreamExt;
        anyhow::ensure!(
            tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await?
                .is_some(),
            "allowed publish did not arrive"
        );
        c.publish("payments.new", "1".into()).await?;
        c.flush().await?;
        let violation = saw_permissions_violation(&mut errors).await;
        anyhow::ensure!(violation, "publishing outside the role was not refused");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        bail!("{e:#}\n{}", env.diagnostics("nsr", 1).await);
    }
    Ok(())
}

/// Gateways between two NatsClusters (each names the other by its Service), a third
/// cluster joined as a leafnode remote, and a websocket listener: messages cross all three
/// as a user's clients would send them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_leafnodes_and_websocket_carry_messages() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup("super").await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    let ns = env.ns().to_string();
    // One node: the two gateways' host ports must differ (the kubelet refuses a pod whose
    // host port another pod holds, as on any node). Gateway and leafnode listeners are
    // ports of the management Service (as with the Go operator), not of the client one.
    let gw = |me: &str, port: u16, other: &str, other_port: u16, extra: &str| {
        format!(
            "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: {me}\nspec:\n  size: 1\n  version: \"{version}\"\n  lameDuckDurationSeconds: 30\n  gatewayConfig:\n    name: {me}\n    hostPort: {port}\n    gateways:\n    - name: {other}\n      url: nats://{other}-mgmt.{ns}.svc:{other_port}\n{extra}"
        )
    };
    env.apply(&gw(
        "east",
        7522,
        "west",
        7523,
        "  leafnodeConfig:\n    hostPort: 7422\n  websocketConfig:\n    port: 8080\n",
    ))?;
    env.apply(&gw("west", 7523, "east", 7522, ""))?;
    env.apply(&format!(
        "apiVersion: nats.io/v1alpha2\nkind: NatsCluster\nmetadata:\n  name: leaf\nspec:\n  size: 1\n  version: \"{version}\"\n  lameDuckDurationSeconds: 30\n  leafnodeConfig:\n    remotes:\n    - url: nats://east-mgmt.{ns}.svc:7422\n"
    ))?;
    let r = async {
        for c in ["east", "west", "leaf"] {
            env.wait_ready(c, 1).await?;
        }
        let east = env.pod_ip("east-1").await?;
        let west = env.pod_ip("west-1").await?;
        let leaf = env.pod_ip("leaf-1").await?;
        poll(
            Duration::from_secs(60),
            Duration::from_millis(500),
            "gateways and leafnode connected",
            || async move {
                let g = monitor::get_json(SocketAddr::from((east, 8222)), "/gatewayz").await?;
                let l = monitor::get_json(SocketAddr::from((east, 8222)), "/leafz").await?;
                let out_ok = g["outbound_gateways"].get("west").is_some();
                let in_ok = g["inbound_gateways"].get("west").is_some();
                let leafs = l["leafnodes"].as_u64().unwrap_or(0);
                Ok(if out_ok && in_ok && leafs == 1 {
                    Ok(())
                } else {
                    Err(format!("gatewayz {g}\nleafz {l}"))
                })
            },
        )
        .await?;
        use futures::StreamExt;
        // west -> east across the gateway; leaf -> east across the leafnode; over websocket.
        let on_east = async_nats::connect(format!("nats://{east}:4222")).await?;
        let mut sub = on_east.subscribe("super.>").await?;
        on_east.flush().await?;
        let on_west = async_nats::connect(format!("nats://{west}:4222")).await?;
        let on_leaf = async_nats::connect(format!("nats://{leaf}:4222")).await?;
        let on_ws = async_nats::connect(format!("ws://{east}:8080")).await?;
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 3 && Instant::now() < deadline {
            // Interest crosses gateways and leafnodes asynchronously: publish until it arrives.
            for (c, s) in [
                (&on_west, "super.west"),
                (&on_leaf, "super.leaf"),
                (&on_ws, "super.ws"),
            ] {
                if !seen.contains(s) {
                    c.publish(s, "x".into()).await?;
                    c.flush().await?;
                }
            }
            while let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(300), sub.next()).await
            {
                seen.insert(m.subject.to_string());
            }
        }
        anyhow::ensure!(seen.len() == 3, "received only {seen:?} on east");
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = r {
        let mut d = env.diagnostics("east", 1).await;
        d += &env.logs("west-1", "nats");
        d += &env.logs("leaf-1", "nats");
        bail!("{e:#}\n{d}");
    }
    Ok(())
}

/// Images fail on the node as on a cluster without them: a name the kubelet refuses (the
/// `:2.9.10` an object stored without defaults once made) is `InvalidImageName`, a release
/// the node has no image of cannot be pulled (no registry is reachable), and one it has runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_the_node_lacks_fail_as_on_a_cluster() -> Result<()> {
    let _s = scenario();
    let Some(env) = setup_with("images", false, false).await? else {
        return Ok(());
    };
    let version = env.nats_versions()[0].clone();
    let pod = |name: &str, image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: nats\n    image: \"{image}\"\n    imagePullPolicy: IfNotPresent\n"
        )
    };
    env.apply(&pod("invalid", ":2.9.10"))?;
    env.apply(&pod("missing", "nats:2.1.9"))?;
    env.apply(&pod("present", &format!("nats:{version}")))?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), env.ns());
    let waiting = |p: &Pod| -> Option<String> {
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .clone()
    };
    poll(
        Duration::from_secs(90),
        Duration::from_millis(500),
        "image failures as on a cluster",
        || {
            let pods = pods.clone();
            async move {
                let invalid = waiting(&pods.get("invalid").await?);
                let missing = waiting(&pods.get("missing").await?);
                let present = pods.get("present").await?;
                let running = present
                    .status
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p == "Running");
                let missing_ok = matches!(
                    missing.as_deref(),
                    Some("ErrImagePull" | "ImagePullBackOff")
                );
                Ok(
                    if invalid.as_deref() == Some("InvalidImageName") && missing_ok && running {
                        Ok(())
                    } else {
                        Err(format!(
                            "invalid: {invalid:?}, missing: {missing:?}, present running: {running}"
                        ))
                    },
                )
            }
        },
    )
    .await
}
