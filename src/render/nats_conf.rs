//! `nats.conf` of a cluster, written as indented JSON ([`super::conf_writer`]).
//!
//! Keys, in this order (the Go operator's set, fixed where it was broken):
//!
//! | key | source |
//! |---|---|
//! | `port: 4222` | always |
//! | `server_name` | `$SERVER_NAME`/`$POD_NAME` ([`server_name_env`]), the file's only unquoted value; from 2.2 the pod's command line also carries `--name $(VAR)` ([`server_name_flag`]), as before, but a reload reads only the file |
//! | `http_port` / `https_port: 8222` | `tls.httpsMonitoring` picks HTTPS |
//! | `include "advertise/client_advertise.conf"` | `pod.externalAdvertise` |
//! | `tls {}` | `tls.client`: files under [`Paths::client_tls`] (absolute names as they are), `verify`, `verify_and_map`, `cipher_suites`, `curve_preferences`, `timeout` |
//! | `debug`, `trace`, `logtime` (always), `write_deadline`, `max_*` | `config` |
//! | `lame_duck_duration` | `config.lameDuckDuration` (unset: the server's default, 2m) |
//! | `authorization {}` | `auth.clients`: service-account users, else the Secret's JSON, else `include "<file>"`; `timeout` from the spec wins |
//! | `operator`, `system_account`, `resolver` | `auth.jwt` |
//! | `jetstream {store_dir, max_mem, max_file}` | `jetstream` (servers ≥ 2.2) |
//! | `cluster {name, port, routes, tls, authorization}` | always: `name` is the NatsCluster name (servers ≥ 2.2; the Go operator never set it, #312); routes are the member pods `nats://[user:pass@]<pod>.<name>-mgmt.<ns>.svc:6222` with percent-escaped credentials, then `extraRoutes` |
//! | `gateway {name, port, tls, gateways, reject_unknown, authorization, include}` | `gateway` |
//! | `leafnodes {port, tls, remotes, include}` | `leafnode` (the Go operator's key `leaf` is an alias) |
//! | `websocket {port, tls \| no_tls: true, handshake_timeout, compression}` | `websocket`: `no_tls` when it has no TLS (the Go operator never set it) |
//! | anything | `config.merge`, deep-merged last (`null` removes a key) |
//!
//! Every string from the spec or a Secret is written double-quoted and escaped
//! ([`super::conf_writer`]); keys from Secrets and `config.merge` are quoted too, so nothing
//! a user writes becomes a variable reference, an `include` or a new key.

use crate::api::choices::ServerNameSource;
use crate::api::consts::{CLIENT_PORT, CLUSTER_PORT, MONITORING_PORT};
use crate::api::v1alpha2::Permissions;
use crate::api::v1beta1::{self as b, NatsClusterSpec};
use crate::api::{names, version};

use super::conf_writer::{Conf, ConfMap, from_json, merge_json, write_json_document};
use super::system_user::{self, Identity, SystemUser};
use super::{ClusterMeta, OPERATOR_JWT_FILE, Paths, RenderError, sha256_hex, tls_path};

/// A user of service-account authentication: a NatsServiceRole and the bound token of
/// the ServiceAccount of the same name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceRoleUser {
    /// The NATS user name (the role's and the ServiceAccount's name).
    pub username: String,
    /// The bound ServiceAccount token, used as the password.
    pub token: String,
    /// What the user may publish and subscribe to.
    pub permissions: Permissions,
}

/// What the reconciler reads from the API for `nats.conf`: the JSON authorization
/// objects of the referenced Secrets and the service-role users.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthInputs {
    /// The JSON of `auth.clients.secret`.
    pub clients: Option<serde_json::Value>,
    /// The JSON of `auth.routes.secret`.
    pub routes: Option<serde_json::Value>,
    /// The JSON of `auth.gateway.secret`.
    pub gateway: Option<serde_json::Value>,
    /// Users of `auth.clients.serviceAccounts`.
    pub service_roles: Vec<ServiceRoleUser>,
    /// The JSON of `auth.accounts.secret`: the `accounts` block.
    pub accounts: Option<serde_json::Value>,
    /// The operator's system user (JetStream clusters), from its Secret.
    pub system_user: Option<SystemUser>,
}

/// A rendered `nats.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedConf {
    /// The file.
    pub text: String,
    /// Lower-case hex SHA-256 of `text`.
    pub hash: String,
    /// What the user should hear about (fields of an auth Secret that were dropped,
    /// settings the server version cannot have).
    pub warnings: Vec<String>,
    /// Whether the operator's system user is in it.
    pub identity: Identity,
}

/// Fields of an authorization object the Go operator passed through (its struct);
/// anything else is dropped with a warning, so Secrets written for it mean the same.
const AUTH_KEYS: &[&str] = &[
    "username",
    "password",
    "token",
    "timeout",
    "users",
    "default_permissions",
    "include",
];
const USER_KEYS: &[&str] = &["username", "password", "nkey", "permissions"];
const PERMISSION_KEYS: &[&str] = &["publish", "subscribe"];

/// The environment variable that holds the server's name, when it has a set one:
/// `config.serverName` `FromEnv` (`SERVER_NAME`) or `PodName` (`POD_NAME`), and always
/// with JetStream or MQTT on 2.2+, which place data by server name: it must be stable
/// per member (a random one would orphan the member's data on every restart).
pub fn server_name_env(spec: &NatsClusterSpec) -> Option<&'static str> {
    let modern = version::parse(&spec.version)
        .ok()
        .is_none_or(|v| v.supports_cluster_name());
    match spec.config.as_ref().and_then(|c| c.server_name) {
        Some(ServerNameSource::FromEnv) => Some("SERVER_NAME"),
        Some(ServerNameSource::PodName) => Some("POD_NAME"),
        _ if modern && (super::jetstream_enabled(spec) || spec.mqtt.is_some()) => Some("POD_NAME"),
        _ => None,
    }
}

/// Whether the server name goes on the command line (`--name $(VAR)`, expanded by
/// Kubernetes) rather than into `nats.conf` as a `$VAR` reference, which JSON cannot
/// express: every release with the flag.
pub fn server_name_flag(spec: &NatsClusterSpec) -> bool {
    version::parse(&spec.version)
        .ok()
        .is_none_or(|v| v.supports(&version::NAME_FLAG))
}

/// Renders `nats.conf` for the cluster whose members are the pods `members` (any
/// order; the routes are sorted by member index).
pub fn nats_conf(
    spec: &NatsClusterSpec,
    meta: &ClusterMeta,
    members: &[String],
    auth: &AuthInputs,
    paths: &Paths,
) -> Result<RenderedConf, RenderError> {
    let mut warnings = Vec::new();
    let parsed = version::parse(&spec.version).ok();
    let modern = parsed.as_ref().is_none_or(|v| v.supports_cluster_name());
    let cfg = spec.config.clone().unwrap_or_default();
    let tls = spec.tls.clone().unwrap_or_default();
    let spec_auth = spec.auth.clone().unwrap_or_default();
    let advertise = super::enabled(
        spec.pod
            .as_ref()
            .and_then(|p| p.external_advertise.as_ref()),
    )
    .is_some();

    let mut top = ConfMap::new();
    top.set("port", CLIENT_PORT);
    // In the file even where the pod also passes `--name`: nats-server never carries
    // that flag into a reload (MergeOptions has no ServerName), so a config without
    // the name fails every reload ("config reload not supported for ServerName").
    if let Some(var) = server_name_env(spec) {
        top.set("server_name", Conf::Var(var.into()));
    }
    if tls.https_monitoring {
        top.set("https_port", MONITORING_PORT);
    } else {
        top.set("http_port", MONITORING_PORT);
    }
    if advertise {
        top.include("advertise/client_advertise.conf");
    }
    if let Some(c) = tls.client.as_ref().filter(|c| !c.secret.is_empty()) {
        let mut t = tls_files(&paths.client_tls, &c.ca_file, &c.cert_file, &c.key_file);
        if c.verify {
            t.set("verify", true);
        }
        if c.verify_and_map {
            t.set("verify_and_map", true);
        }
        if !c.cipher_suites.is_empty() {
            t.set("cipher_suites", strings(&c.cipher_suites));
        }
        if !c.curve_preferences.is_empty() {
            t.set("curve_preferences", strings(&c.curve_preferences));
        }
        set_timeout(&mut t, c.timeout);
        top.set("tls", t);
    }
    if cfg.debug {
        top.set("debug", true);
    }
    if cfg.trace {
        top.set("trace", true);
    }
    top.set("logtime", cfg.logtime.unwrap_or(true));
    if !cfg.write_deadline.is_empty() {
        top.set("write_deadline", cfg.write_deadline.as_str());
    }
    for (key, v) in [
        ("max_connections", cfg.max_connections),
        ("max_control_line", cfg.max_control_line),
        ("max_payload", cfg.max_payload),
        ("max_pending", cfg.max_pending),
        ("max_subscriptions", cfg.max_subscriptions),
    ] {
        if v != 0 {
            top.set(key, v);
        }
    }
    if !cfg.lame_duck_duration.is_empty() {
        top.set("lame_duck_duration", cfg.lame_duck_duration.as_str());
    }
    if let Some(a) = client_authorization(spec_auth.clients.as_ref(), auth, &mut warnings)? {
        top.set("authorization", a);
    }
    if let Some(accounts) = auth.accounts.as_ref() {
        match accounts {
            serde_json::Value::Object(m) if !m.is_empty() => {
                let mut block = ConfMap::new();
                merge_json(&mut block, m);
                top.set("accounts", block);
            }
            _ => {
                return Err(RenderError::Accounts);
            }
        }
    }
    if let Some(user) = spec_auth
        .clients
        .as_ref()
        .map(|c| c.no_auth_user.as_str())
        .filter(|u| !u.is_empty())
    {
        top.set("no_auth_user", user);
    }
    if let Some(jwt) = spec_auth.jwt.as_ref() {
        if !jwt.operator_secret.is_empty() {
            top.set(
                "operator",
                format!(
                    "{}/{}",
                    paths.operator_jwt.trim_end_matches('/'),
                    OPERATOR_JWT_FILE
                ),
            );
        }
        if !jwt.system_account.is_empty() {
            top.set("system_account", jwt.system_account.as_str());
        }
        if !jwt.resolver.is_empty() {
            top.set("resolver", jwt.resolver.as_str());
        }
    }
    if let Some(js) = jetstream(spec, paths, modern, &mut warnings) {
        top.set("jetstream", js);
    }

    // cluster
    let mut cluster = ConfMap::new();
    if modern && let Some(name) = cluster_name(spec, meta) {
        cluster.set("name", name);
    }
    cluster.set("port", CLUSTER_PORT);
    let route_auth = match &auth.routes {
        Some(v) if spec_auth.routes.is_some() => Some(filtered_authorization(
            v,
            "routes",
            spec_auth.routes.as_ref().map_or(0, |r| r.timeout),
            &mut warnings,
        )?),
        _ => None,
    };
    let creds = auth
        .routes
        .as_ref()
        .filter(|_| spec_auth.routes.is_some())
        .and_then(route_credentials);
    let routes = routes(spec, meta, members, creds.as_ref());
    if !routes.is_empty() {
        cluster.set("routes", strings(&routes));
    }
    if let Some(r) = tls.routes.as_ref().filter(|r| !r.secret.is_empty()) {
        let mut t = tls_files(&paths.routes_tls, &r.ca_file, &r.cert_file, &r.key_file);
        set_timeout(&mut t, r.timeout);
        cluster.set("tls", t);
    }
    if let Some(a) = route_auth {
        cluster.set("authorization", a);
    }
    if !super::runs_standalone(spec) {
        top.set("cluster", cluster);
    }

    if let Some(gw) = spec.gateway.as_ref() {
        let mut g = ConfMap::new();
        g.set("name", gw.name.as_str());
        g.set("port", gw.port);
        if let Some(t) = listener_tls(tls.gateway.as_ref(), &paths.gateway_tls) {
            g.set("tls", t);
        }
        if !gw.remotes.is_empty() {
            let remotes = gw
                .remotes
                .iter()
                .map(|r| {
                    let mut m = ConfMap::new();
                    m.set("name", r.name.as_str());
                    set_urls(&mut m, &r.url, &r.urls);
                    Conf::Map(m)
                })
                .collect();
            g.set("gateways", Conf::List(remotes));
        }
        if gw.reject_unknown {
            g.set("reject_unknown", true);
        }
        if let (Some(v), Some(sa)) = (&auth.gateway, spec_auth.gateway.as_ref()) {
            g.set(
                "authorization",
                filtered_authorization(v, "gateway", sa.timeout, &mut warnings)?,
            );
        }
        if advertise {
            g.include("advertise/gateway_advertise.conf");
        }
        top.set("gateway", g);
    }

    if let Some(leaf) = spec.leafnode.as_ref() {
        let mut l = ConfMap::new();
        if leaf.port > 0 {
            l.set("port", leaf.port);
        }
        if let Some(t) = listener_tls(tls.leafnode.as_ref(), &paths.leafnode_tls) {
            l.set("tls", t);
        }
        if !leaf.remotes.is_empty() {
            let remotes = leaf
                .remotes
                .iter()
                .map(|r| {
                    let mut m = ConfMap::new();
                    let mut urls: Vec<String> = Vec::new();
                    if !r.url.is_empty() {
                        urls.push(r.url.clone());
                    }
                    urls.extend(r.urls.iter().cloned());
                    m.set("urls", strings(&urls));
                    if !r.credentials.is_empty() {
                        m.set("credentials", r.credentials.as_str());
                    }
                    Conf::Map(m)
                })
                .collect();
            l.set("remotes", Conf::List(remotes));
        }
        if advertise && leaf.port > 0 {
            l.include("advertise/gateway_advertise.conf");
        }
        top.set("leafnodes", l);
    }

    if let Some(ws) = spec.websocket.as_ref() {
        let mut w = ConfMap::new();
        w.set("port", ws.port);
        match listener_tls(tls.websocket.as_ref(), &paths.websocket_tls) {
            Some(t) => {
                w.set("tls", t);
            }
            None => {
                w.set("no_tls", true);
            }
        }
        if !ws.handshake_timeout.is_empty() {
            w.set("handshake_timeout", ws.handshake_timeout.as_str());
        }
        if ws.compression {
            w.set("compression", true);
        }
        top.set("websocket", w);
    }

    if let Some(mq) = spec.mqtt.as_ref() {
        let mut m = ConfMap::new();
        m.set("port", mq.listen_port());
        if let Some(t) = listener_tls(tls.mqtt.as_ref(), &paths.mqtt_tls) {
            m.set("tls", t);
        }
        if !mq.ack_wait.is_empty() {
            m.set("ack_wait", mq.ack_wait.as_str());
        }
        if mq.max_ack_pending > 0 {
            m.set("max_ack_pending", mq.max_ack_pending);
        }
        top.set("mqtt", m);
    }

    if let Some(merge) = cfg.merge.as_ref() {
        match merge {
            serde_json::Value::Object(m) => merge_json(&mut top, m),
            serde_json::Value::Null => {}
            _ => return Err(RenderError::Merge),
        }
    }

    // nats-server refuses to start with both gateways and leafnodes unless a system
    // account is configured (found by running the upstream leafnode-remotes-gateways
    // example): give it one, unless the user manages accounts or uses JWT auth.
    if top.get("gateway").is_some()
        && top.get("leafnodes").is_some()
        && top.get("system_account").is_none()
        && top.get("operator").is_none()
        && top.get("accounts").is_none()
    {
        let mut accounts = ConfMap::new();
        accounts.set(SYSTEM_ACCOUNT, ConfMap::new());
        top.set("accounts", accounts);
        top.set("system_account", SYSTEM_ACCOUNT);
    }

    // Last, so the user joins whatever system account and users the result has.
    let needs_identity =
        super::jetstream_enabled(spec) && parsed.as_ref().is_none_or(|v| v.supports_jetstream());
    let identity = match &auth.system_user {
        _ if !needs_identity => Identity::NotNeeded,
        None => Identity::Pending,
        Some(user) => system_user::add(&mut top, user),
    };

    let text = write_json_document(&top)?;
    let hash = sha256_hex(text.as_bytes());
    Ok(RenderedConf {
        text,
        hash,
        warnings,
        identity,
    })
}

/// The system account made for clusters with both gateways and leafnodes.
pub const SYSTEM_ACCOUNT: &str = "SYS";

/// `cluster.name`. With a gateway it is the gateway's name: a cluster is known to the
/// super-cluster by that name, and nats-server 2.15.3 refuses a config where they differ
/// ("cluster name conflicts between cluster and gateway definitions"). Servers since 2.2
/// also refuse a route between clusters of different names, so NatsClusters joined by
/// `extraRoutes` must agree: one that routes to another NatsCluster takes that cluster's
/// name; one routed only to URLs leaves the name to the servers' agreement, as the Go
/// operator did, unless JetStream or MQTT need a fixed one (then the remote must use this
/// cluster's name, or `config.merge` sets another).
fn cluster_name<'a>(spec: &'a NatsClusterSpec, meta: &'a ClusterMeta) -> Option<&'a str> {
    if let Some(gw) = spec.gateway.as_ref().filter(|g| !g.name.is_empty()) {
        return Some(gw.name.as_str());
    }
    if let Some(r) = spec.extra_routes.iter().find(|r| !r.cluster.is_empty()) {
        return Some(r.cluster.as_str());
    }
    let fixed = super::jetstream_enabled(spec) || spec.mqtt.is_some();
    (fixed || spec.extra_routes.is_empty()).then_some(meta.name.as_str())
}

fn strings(items: &[String]) -> Conf {
    Conf::List(items.iter().map(|s| Conf::Str(s.clone())).collect())
}

fn set_urls(m: &mut ConfMap, url: &str, urls: &[String]) {
    let mut all: Vec<String> = Vec::new();
    if !url.is_empty() {
        all.push(url.to_string());
    }
    all.extend(urls.iter().cloned());
    if all.len() == 1 {
        m.set("url", all[0].as_str());
    } else if !all.is_empty() {
        m.set("urls", strings(&all));
    }
}

fn tls_files(dir: &str, ca: &str, cert: &str, key: &str) -> ConfMap {
    let or = |f: &str, d: &str| {
        if f.is_empty() {
            d.to_string()
        } else {
            f.to_string()
        }
    };
    let mut t = ConfMap::new();
    t.set(
        "ca_file",
        tls_path(dir, &or(ca, crate::api::defaults::CA_FILE)),
    );
    t.set(
        "cert_file",
        tls_path(dir, &or(cert, crate::api::defaults::CERT_FILE)),
    );
    t.set(
        "key_file",
        tls_path(dir, &or(key, crate::api::defaults::KEY_FILE)),
    );
    t
}

fn set_timeout(t: &mut ConfMap, timeout: f64) {
    if timeout > 0.0 {
        if timeout.fract() == 0.0 && timeout < 1e15 {
            t.set("timeout", Conf::Int(timeout as i64));
        } else {
            t.set("timeout", Conf::Float(timeout));
        }
    }
}

fn listener_tls(l: Option<&b::ListenerTls>, dir: &str) -> Option<ConfMap> {
    let l = l.filter(|l| !l.secret.is_empty())?;
    let mut t = tls_files(dir, &l.ca_file, &l.cert_file, &l.key_file);
    set_timeout(&mut t, l.timeout);
    Some(t)
}

fn jetstream(
    spec: &NatsClusterSpec,
    paths: &Paths,
    modern: bool,
    warnings: &mut Vec<String>,
) -> Option<ConfMap> {
    if !super::jetstream_enabled(spec) {
        return None;
    }
    if !modern {
        warnings.push(format!(
            "spec.jetstream is ignored: NATS server {} has no JetStream (2.2 or later has)",
            spec.version
        ));
        return None;
    }
    let js = spec.jetstream.as_ref()?;
    let mut m = ConfMap::new();
    m.set("store_dir", paths.jetstream.as_str());
    if let Some(b) = js.memory_storage.as_ref().and_then(|q| bytes(&q.0)) {
        m.set("max_mem", b);
    }
    if let Some(b) = js
        .file_storage
        .as_ref()
        .and_then(|f| f.size.as_ref())
        .and_then(|q| bytes(&q.0))
    {
        m.set("max_file", b);
    }
    Some(m)
}

fn bytes(q: &str) -> Option<i64> {
    let v = names::parse_quantity(q)?.round();
    (v < 9.2e18).then_some(v as i64)
}

/// Member routes (sorted by member index, deduplicated) then the extra routes.
fn routes(
    spec: &NatsClusterSpec,
    meta: &ClusterMeta,
    members: &[String],
    creds: Option<&(String, String)>,
) -> Vec<String> {
    let mut pods: Vec<&String> = members.iter().collect();
    pods.sort_by(|a, b| {
        let ka = super::member_index(&meta.name, a);
        let kb = super::member_index(&meta.name, b);
        (ka.is_none(), ka, a.as_str()).cmp(&(kb.is_none(), kb, b.as_str()))
    });
    pods.dedup();
    let userinfo = creds
        .map(|(u, p)| format!("{}:{}@", percent_escape(u), percent_escape(p)))
        .unwrap_or_default();
    let mut out: Vec<String> = pods
        .into_iter()
        .map(|p| format!("nats://{userinfo}{}:{CLUSTER_PORT}", meta.pod_host(p)))
        .collect();
    for r in &spec.extra_routes {
        if !r.route.is_empty() {
            out.push(r.route.clone());
        } else if !r.cluster.is_empty() {
            out.push(format!(
                "nats://{}-mgmt.{}.svc:{CLUSTER_PORT}",
                r.cluster, meta.namespace
            ));
        }
    }
    out
}

/// Percent-escapes everything but RFC 3986 unreserved characters, so any user name or
/// password survives `url.Parse` in the server unchanged.
pub fn percent_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `username`/`password` of a routes authorization object (the Go operator's fields;
/// `user`/`pass` are accepted too).
fn route_credentials(v: &serde_json::Value) -> Option<(String, String)> {
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(|x| x.as_str()))
            .map(str::to_string)
    };
    let user = get(&["username", "user"])?;
    let pass = get(&["password", "pass"]).unwrap_or_default();
    Some((user, pass))
}

fn client_authorization(
    clients: Option<&b::ClientAuth>,
    auth: &AuthInputs,
    warnings: &mut Vec<String>,
) -> Result<Option<ConfMap>, RenderError> {
    let Some(c) = clients else {
        return Ok(None);
    };
    let mut m = if c.service_accounts {
        let mut users: Vec<&ServiceRoleUser> = auth.service_roles.iter().collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        let list = users
            .into_iter()
            .map(|u| {
                let mut m = ConfMap::new();
                m.set("user", u.username.as_str());
                m.set("password", u.token.as_str());
                let mut p = ConfMap::new();
                if !u.permissions.publish.is_empty() {
                    p.set("publish", strings(&u.permissions.publish));
                }
                if !u.permissions.subscribe.is_empty() {
                    p.set("subscribe", strings(&u.permissions.subscribe));
                }
                if !p.is_empty() {
                    m.set("permissions", p);
                }
                Conf::Map(m)
            })
            .collect();
        let mut m = ConfMap::new();
        m.set("users", Conf::List(list));
        m
    } else if !c.secret.is_empty() {
        match &auth.clients {
            Some(v) => filtered_authorization(v, "clients", 0, warnings)?,
            None => return Ok(None),
        }
    } else if !c.file.is_empty() {
        let mut m = ConfMap::new();
        m.include(&c.file);
        m
    } else {
        return Ok(None);
    };
    if c.timeout > 0 {
        m.set("timeout", c.timeout);
    }
    Ok(Some(m))
}

/// An authorization object from a Secret, reduced to the fields the Go operator kept.
fn filtered_authorization(
    v: &serde_json::Value,
    what: &'static str,
    timeout: i32,
    warnings: &mut Vec<String>,
) -> Result<ConfMap, RenderError> {
    let obj = v.as_object().ok_or(RenderError::Auth(what))?;
    let mut m = ConfMap::new();
    for (k, val) in in_order(obj, AUTH_KEYS, &mut |k| {
        warnings.push(format!(
            "{what} authorization: field {k:?} is not supported and was dropped"
        ))
    }) {
        match (k.as_str(), val) {
            ("include", serde_json::Value::String(p)) => {
                m.include(p);
            }
            ("users", serde_json::Value::Array(users)) => {
                let mut list = Vec::new();
                for (i, u) in users.iter().enumerate() {
                    let Some(u) = u.as_object() else {
                        warnings.push(format!(
                            "{what} authorization: users[{i}] is not an object and was dropped"
                        ));
                        continue;
                    };
                    let mut um = ConfMap::new();
                    let mut dropped = Vec::new();
                    let fields = in_order(u, USER_KEYS, &mut |k| dropped.push(k.to_string()));
                    for k in dropped {
                        warnings.push(format!("{what} authorization: field {k:?} of users[{i}] is not supported and was dropped"));
                    }
                    for (uk, uv) in fields {
                        if uk == "permissions" {
                            if let Some(p) = permissions(uv, what, warnings) {
                                um.set(uk, p);
                            }
                        } else if let Some(c) = from_json(uv) {
                            um.set(uk, c);
                        }
                    }
                    list.push(Conf::Map(um));
                }
                m.set("users", Conf::List(list));
            }
            ("default_permissions", p) => {
                if let Some(p) = permissions(p, what, warnings) {
                    m.set(k, p);
                }
            }
            (_, other) => {
                if let Some(c) = from_json(other) {
                    m.set(k, c);
                }
            }
        }
    }
    if timeout > 0 {
        m.set("timeout", timeout);
    }
    Ok(m)
}

fn permissions(v: &serde_json::Value, what: &str, warnings: &mut Vec<String>) -> Option<ConfMap> {
    let obj = v.as_object()?;
    let mut m = ConfMap::new();
    for (k, val) in in_order(obj, PERMISSION_KEYS, &mut |k| {
        warnings.push(format!(
            "{what} authorization: permission {k:?} is not supported and was dropped"
        ))
    }) {
        if let Some(c) = from_json(val) {
            m.set(k, c);
        }
    }
    Some(m)
}

/// The fields of `obj` named in `allowed`, in that order; `dropped` hears of the others
/// (sorted).
fn in_order<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    allowed: &[&str],
    dropped: &mut dyn FnMut(&str),
) -> Vec<(&'a String, &'a serde_json::Value)> {
    let mut others: Vec<&String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    others.sort();
    for k in others {
        dropped(k);
    }
    allowed
        .iter()
        .filter_map(|k| obj.get_key_value(*k))
        .collect()
}
