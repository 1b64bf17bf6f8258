//! Validation of NatsClusters and NatsServiceRoles: pure, returns every problem with
//! its field path. A `v1alpha2` object is validated through its `v1beta1` form and the
//! paths are translated back ([`alpha_paths`]), so users read their own field names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Deserialize;

use super::choices::{PullPolicy, ServerNameSource};
use super::consts::{
    CLIENT_PORT, CLUSTER_PORT, METRICS_PORT, MONITORING_PORT, RESERVED_POD_LABELS,
};
use super::field::{FieldError, Validation};
use super::{convert, duration, names, v1alpha2 as a, v1beta1 as b, version};

/// Largest `max_payload` nats-server accepts (64 MiB).
pub const MAX_PAYLOAD_LIMIT: i64 = 64 * 1024 * 1024;

/// Cipher suite names nats-server accepts (Go's `tls.CipherSuites()` and
/// `tls.InsecureCipherSuites()` names, plus the legacy spellings older servers used).
pub const CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// Curve names nats-server accepts.
pub const CURVES: &[&str] = &[
    "X25519",
    "CurveP256",
    "CurveP384",
    "CurveP521",
    "X25519MLKEM768",
    "SecP256r1MLKEM768",
    "SecP384r1MLKEM1024",
];

/// Collects errors and warnings while walking a spec.
#[derive(Default)]
struct Report {
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

impl Report {
    fn err(&mut self, e: FieldError) {
        self.errors.push(e);
    }
    fn warn(&mut self, w: impl Into<String>) {
        self.warnings.push(w.into());
    }
    fn finish(self) -> Validation {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(self.errors)
        }
    }
}

/// What the stored object's status says about the members' volumes: the largest
/// storage request among their claims (`status.volumeSize`; empty when unknown).
pub type VolumeSize<'a> = &'a str;

/// Validates a `v1beta1` NatsCluster. `name` is the object's name (may be empty with
/// `generateName`); `old` is the stored object's spec on UPDATE and `volumes` its
/// `status.volumeSize`.
pub fn validate_v1beta1(
    name: &str,
    new: &b::NatsClusterSpec,
    old: Option<&b::NatsClusterSpec>,
    volumes: VolumeSize<'_>,
) -> Validation {
    // Finalizers, labels and status must always go through, even for objects stored
    // before a rule existed.
    if old.is_some_and(|o| o == new) {
        return Ok(Vec::new());
    }
    let mut r = Report::default();
    check_spec(&mut r, name, new, old, volumes);
    r.finish()
}

/// Validates a `v1alpha2` NatsCluster; field paths and messages use v1alpha2 names.
pub fn validate_v1alpha2(
    name: &str,
    new: &a::ClusterSpec,
    old: Option<&a::ClusterSpec>,
) -> Validation {
    if old.is_some_and(|o| o == new) {
        return Ok(Vec::new());
    }
    let old_beta = old.map(convert::spec_up);
    validate_v1alpha2_as_beta(
        name,
        &AlphaAsBeta::converted(new.clone()),
        old_beta.as_ref(),
        "",
    )
}

/// A `v1alpha2` spec in v1beta1 terms, with what only its v1alpha2 form can get wrong.
#[derive(Debug, Clone)]
pub struct AlphaAsBeta {
    /// The v1beta1 spec it reads back as.
    pub beta: b::NatsClusterSpec,
    /// What its v1alpha2 form gets wrong that the conversion cannot carry.
    alpha_errors: Vec<FieldError>,
}

impl AlphaAsBeta {
    /// `alpha` by the plain conversion, moving its fields instead of copying them.
    pub fn converted(alpha: a::ClusterSpec) -> Self {
        let alpha_errors = alpha_only_errors(&alpha);
        AlphaAsBeta {
            beta: convert::spec_up_owned(alpha),
            alpha_errors,
        }
    }

    /// `alpha` as `beta`, the v1beta1 spec the caller converted the whole object to (a
    /// v1alpha2 object carrying v1beta1-only fields such as `jetstream` in its residual
    /// annotation).
    pub fn read_back(alpha: &a::ClusterSpec, beta: b::NatsClusterSpec) -> Self {
        AlphaAsBeta {
            beta,
            alpha_errors: alpha_only_errors(alpha),
        }
    }
}

/// [`validate_v1alpha2`] of `new` in v1beta1 terms against `old_beta`, the stored
/// object's v1beta1 spec; `volumes` is the stored object's `status.volumeSize`. The
/// caller lets unchanged specs through first (they may predate a rule).
pub fn validate_v1alpha2_as_beta(
    name: &str,
    new: &AlphaAsBeta,
    old_beta: Option<&b::NatsClusterSpec>,
    volumes: VolumeSize<'_>,
) -> Validation {
    in_alpha_terms(new.alpha_errors.clone(), |r| {
        check_spec(r, name, &new.beta, old_beta, volumes)
    })
}

/// What only a v1alpha2 spec can get wrong: a conflicting spelling, and free-string pull
/// policies (v1beta1's are enums, so the conversion reads an unlisted one as unset).
fn alpha_only_errors(new: &a::ClusterSpec) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = write_deadline_conflict(new).into_iter().collect();
    if let Some(pod) = &new.pod {
        for (field, value) in [
            ("reloaderImagePullPolicy", &pod.reloader_image_pull_policy),
            ("metricsImagePullPolicy", &pod.metrics_image_pull_policy),
        ] {
            if !value.is_empty() && PullPolicy::parse(value).is_none() {
                errors.push(FieldError::not_supported(
                    format!("spec.pod.{field}"),
                    value,
                    &PullPolicy::WIRE[1..],
                ));
            }
        }
    }
    errors
}

/// `natsConfig.writeDeadline` (the upstream README's spelling) set apart from
/// `write_deadline` to something else.
fn write_deadline_conflict(new: &a::ClusterSpec) -> Option<FieldError> {
    let nc = new.nats_config.as_ref()?;
    (!nc.write_deadline.is_empty()
        && !nc.write_deadline_camel.is_empty()
        && nc.write_deadline != nc.write_deadline_camel)
        .then(|| {
            FieldError::invalid(
                "spec.natsConfig.writeDeadline",
                nc.write_deadline_camel.clone(),
                "conflicts with spec.natsConfig.write_deadline; set only write_deadline",
            )
        })
}

/// Runs `checks` (on v1beta1 specs) after `first`, and reports with v1alpha2 paths.
fn in_alpha_terms(first: Vec<FieldError>, checks: impl FnOnce(&mut Report)) -> Validation {
    let mut r = Report::default();
    for e in first {
        r.err(e);
    }
    checks(&mut r);
    // Paths are translated only when there is something to report.
    if r.errors.is_empty() {
        let mut warnings = r.warnings;
        for w in &mut warnings {
            *w = alpha_paths(w);
        }
        Ok(warnings)
    } else {
        let mut errors = r.errors;
        for e in &mut errors {
            e.field = alpha_paths(&e.field);
            e.message = alpha_paths(&e.message);
        }
        Err(errors)
    }
}

/// Validates a NatsServiceRole (both versions share the schema).
pub fn validate_service_role(
    labels: &BTreeMap<String, String>,
    new: &a::ServiceRoleSpec,
    old: Option<&a::ServiceRoleSpec>,
) -> Validation {
    if old.is_some_and(|o| o == new) {
        return Ok(Vec::new());
    }
    let mut r = Report::default();
    match labels.get("nats_cluster") {
        None => {
            r.warn("metadata.labels.nats_cluster is not set: this role belongs to no NatsCluster")
        }
        Some(c) if !names::is_dns1123_label(c) => r.err(FieldError::invalid(
            "metadata.labels.nats_cluster",
            c.clone(),
            "must be the name of a NatsCluster",
        )),
        Some(_) => {}
    }
    for (list, path) in [
        (&new.permissions.publish, "spec.permissions.publish"),
        (&new.permissions.subscribe, "spec.permissions.subscribe"),
    ] {
        for (i, subject) in list.iter().enumerate() {
            if let Err(why) = names::check_subject(subject, path.ends_with("subscribe")) {
                r.err(FieldError::invalid(
                    format!("{path}[{i}]"),
                    subject.clone(),
                    why,
                ));
            }
        }
    }
    r.finish()
}

fn check_spec(
    r: &mut Report,
    name: &str,
    s: &b::NatsClusterSpec,
    old: Option<&b::NatsClusterSpec>,
    volumes: VolumeSize<'_>,
) {
    if s.size < 0 {
        r.err(FieldError::invalid(
            "spec.size",
            s.size,
            "must be greater than or equal to 0",
        ));
    }
    check_version(r, s, old);
    if !s.image.is_empty() && !names::is_image_repository(&s.image) {
        r.err(FieldError::invalid(
            "spec.image",
            s.image.clone(),
            "must be an image repository such as nats or registry.example.com/nats, without a tag",
        ));
    }
    if let Some(c) = &s.config {
        check_config(r, c, s);
    }
    let default_pod;
    let pod = match &s.pod {
        Some(p) => p,
        None => {
            default_pod = b::PodPolicy::default();
            &default_pod
        }
    };
    check_pod(r, pod);
    check_tls(r, s);
    check_auth(r, s);
    check_routes(r, name, s);
    check_listeners(r, s, pod);
    if let Some(services) = &s.services {
        for (p, path) in [
            (&services.client, "spec.services.client"),
            (&services.management, "spec.services.management"),
        ] {
            if let Some(p) = p {
                // The Go operator accepted any label here (an upstream example has a
                // value with spaces); the Service is created without the bad ones.
                for (k, v) in &p.labels {
                    if names::check_qualified_name(k).is_err()
                        || names::check_label_value(v).is_err()
                    {
                        r.warn(format!(
                            "{path}.labels.{k}: {v:?} is not a valid label; the Service gets no such label"
                        ));
                    }
                }
                check_annotations_at(r, path, ".annotations", &p.annotations);
            }
        }
    }
    check_jetstream(r, s, old, volumes);
}

fn check_version(r: &mut Report, s: &b::NatsClusterSpec, old: Option<&b::NatsClusterSpec>) {
    if s.version.is_empty() {
        return;
    }
    match version::parse(&s.version) {
        Err(why) => r.err(FieldError::invalid("spec.version", s.version.clone(), why)),
        Ok(v) => {
            if v.is_end_of_life() {
                r.warn(format!(
                    "spec.version {} is end-of-life (below 2.2); upgrade to a supported 2.x release",
                    s.version
                ));
            }
            for feature in features_asked(s) {
                if !v.supports(&feature) {
                    r.err(FieldError::invalid(
                        "spec.version",
                        s.version.clone(),
                        format!(
                            "{} needs NATS server {} or newer",
                            feature.name,
                            feature.since_text()
                        ),
                    ));
                }
            }
            if let Some(old_v) = old.and_then(|o| version::parse(&o.version).ok())
                && v.is_older_than(&old_v)
            {
                let from = old.map(|o| o.version.as_str()).unwrap_or_default();
                let jetstream = s.jetstream.as_ref().is_some_and(b::JetStream::is_enabled);
                r.warn(if jetstream && v.minor() != old_v.minor() {
                    format!(
                        "spec.version {} downgrades a JetStream cluster from {from}: streams and \
                         consumers that use a feature of the newer server go offline on the older \
                         one (2.11.9 and newer) or lose that feature (older); servers roll one at \
                         a time, each after the data is current",
                        s.version
                    )
                } else {
                    format!(
                        "spec.version {} downgrades the cluster from {from}; servers roll one at a time",
                        s.version
                    )
                });
            }
        }
    }
}

/// The server features that `s` asks for in the generated `nats.conf`.
fn features_asked(s: &b::NatsClusterSpec) -> Vec<version::Feature> {
    let auth = s.auth.as_ref();
    let clients = auth.and_then(|a| a.clients.as_ref());
    let config = s.config.as_ref();
    let asked = [
        (s.gateway.is_some(), version::GATEWAYS),
        (s.leafnode.is_some(), version::LEAFNODES),
        (
            auth.and_then(|a| a.jwt.as_ref())
                .is_some_and(|j| !j.operator_secret.is_empty()),
            version::JWT_AUTH,
        ),
        (
            s.tls
                .as_ref()
                .and_then(|t| t.client.as_ref())
                .is_some_and(|c| c.verify_and_map),
            version::VERIFY_AND_MAP,
        ),
        (
            config.is_some_and(|c| c.server_name.is_some()),
            version::SERVER_NAME,
        ),
        (
            clients.is_some_and(|c| !c.no_auth_user.is_empty()),
            version::NO_AUTH_USER,
        ),
        (
            auth.is_some_and(|a| a.accounts.is_some()),
            version::ACCOUNTS,
        ),
        (
            s.jetstream.as_ref().is_some_and(b::JetStream::is_enabled),
            version::JETSTREAM,
        ),
        (s.mqtt.is_some(), version::MQTT),
        (s.websocket.is_some(), version::WEBSOCKET),
        (
            config.is_some_and(|c| !c.lame_duck_duration.is_empty()),
            version::LAME_DUCK,
        ),
    ];
    asked
        .into_iter()
        .filter_map(|(on, f)| on.then_some(f))
        .collect()
}

/// The shortest `lame_duck_duration` nats-server accepts.
const MIN_LAME_DUCK: std::time::Duration = std::time::Duration::from_secs(30);

fn check_duration(r: &mut Report, path: &str, value: &str, positive: bool) {
    if value.is_empty() {
        return;
    }
    match duration::parse(value) {
        None => r.err(FieldError::invalid(
            path,
            value.to_string(),
            "must be a duration such as 500ms, 10s or 2m",
        )),
        Some(d) if positive && d.is_zero() => r.err(FieldError::invalid(
            path,
            value.to_string(),
            "must be greater than 0",
        )),
        Some(_) => {}
    }
}

fn check_config(r: &mut Report, c: &b::ServerConfig, s: &b::NatsClusterSpec) {
    check_duration(r, "spec.config.writeDeadline", &c.write_deadline, true);
    check_duration(
        r,
        "spec.config.lameDuckDuration",
        &c.lame_duck_duration,
        true,
    );
    // nats-server refuses to start below this (found by running the rendered config).
    if duration::parse(&c.lame_duck_duration).is_some_and(|d| !d.is_zero() && d < MIN_LAME_DUCK) {
        r.err(FieldError::invalid(
            "spec.config.lameDuckDuration",
            c.lame_duck_duration.clone(),
            "must be at least 30s (nats-server refuses shorter lame duck durations)",
        ));
    }
    for (v, path) in [
        (c.max_connections, "spec.config.maxConnections"),
        (c.max_payload, "spec.config.maxPayload"),
        (c.max_pending, "spec.config.maxPending"),
        (c.max_subscriptions, "spec.config.maxSubscriptions"),
        (c.max_control_line, "spec.config.maxControlLine"),
    ] {
        if v < 0 {
            r.err(FieldError::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            ));
        }
    }
    if c.max_payload > MAX_PAYLOAD_LIMIT {
        r.err(FieldError::invalid(
            "spec.config.maxPayload",
            c.max_payload,
            "must not exceed 67108864 (64 MiB), the server's limit",
        ));
    } else if c.max_pending > 0
        && c.max_payload > c.max_pending
        && version::parse(&s.version).is_ok_and(|v| v.supports(&version::PAYLOAD_WITHIN_PENDING))
    {
        // Found by starting the rendered config: since 2.3.4 servers refuse it at start
        // ("max_payload cannot be higher than max_pending"); 2.15.3 also with -t.
        r.err(FieldError::invalid(
            "spec.config.maxPayload",
            c.max_payload,
            format!(
                "must not exceed spec.config.maxPending ({}): nats-server refuses to start",
                c.max_pending
            ),
        ));
    } else if c.max_payload > 8 * 1024 * 1024 {
        r.warn("spec.config.maxPayload is over 8 MiB; large messages hurt latency for everyone");
    }
    if c.server_name == Some(ServerNameSource::FromEnv) && !sets_env(s, "SERVER_NAME") {
        r.warn("spec.config.serverName is FromEnv but no SERVER_NAME env var is set; servers fail to start");
    }
    if let Some(m) = &c.merge
        && !m.is_object()
    {
        r.err(FieldError::invalid(
            "spec.config.merge",
            m.clone(),
            "must be an object",
        ));
    }
}

/// Whether the nats container gets the environment variable `name`.
fn sets_env(s: &b::NatsClusterSpec, name: &str) -> bool {
    let Some(pod) = &s.pod else { return false };
    if pod.env.iter().any(|e| e.name == name) {
        return true;
    }
    pod.template
        .as_ref()
        .and_then(|t| t.pointer("/spec/containers/0/env"))
        .and_then(|env| env.as_array())
        .is_some_and(|env| {
            env.iter()
                .any(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))
        })
}

fn check_labels(r: &mut Report, path: &str, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        if let Err(why) = names::check_qualified_name(k) {
            r.err(FieldError::invalid(path, k.clone(), why));
        }
        if let Err(why) = names::check_label_value(v) {
            r.err(FieldError::invalid(format!("{path}.{k}"), v.clone(), why));
        }
    }
}

fn check_annotations(r: &mut Report, path: &str, annotations: &BTreeMap<String, String>) {
    check_annotations_at(r, path, "", annotations);
}

/// Annotations at `{path}{suffix}`; the path is only built for an error.
fn check_annotations_at(
    r: &mut Report,
    path: &str,
    suffix: &str,
    annotations: &BTreeMap<String, String>,
) {
    for k in annotations.keys() {
        if let Err(why) = names::check_qualified_name(k) {
            r.err(FieldError::invalid(
                format!("{path}{suffix}"),
                k.clone(),
                why,
            ));
        }
    }
}

fn check_sidecar(r: &mut Report, path: &str, s: &Option<b::Sidecar>) {
    let Some(s) = s else { return };
    if !s.image.is_empty() && !names::is_image_repository(&s.image) {
        r.err(FieldError::invalid(
            format!("{path}.image"),
            s.image.clone(),
            "must be an image repository without a tag",
        ));
    }
    if !s.tag.is_empty() && !names::is_image_tag(&s.tag) {
        r.err(FieldError::invalid(
            format!("{path}.tag"),
            s.tag.clone(),
            "must be an image tag: letters, digits, '_', '.', '-', at most 128 characters",
        ));
    }
}

fn check_pod(r: &mut Report, pod: &b::PodPolicy) {
    check_labels(r, "spec.pod.labels", &pod.labels);
    for key in RESERVED_POD_LABELS {
        if pod.labels.contains_key(key) {
            r.err(FieldError::forbidden(
                format!("spec.pod.labels.{key}"),
                "this label is set by the operator (app, nats_cluster and nats_version are reserved)",
            ));
        }
    }
    check_annotations(r, "spec.pod.annotations", &pod.annotations);
    check_labels(r, "spec.pod.nodeSelector", &pod.node_selector);
    check_sidecar(r, "spec.pod.configReloader", &pod.config_reloader);
    check_sidecar(r, "spec.pod.metrics", &pod.metrics);
    if let Some(pm) = pod.pod_monitor.as_ref().filter(|m| m.enabled) {
        if !pod.metrics.as_ref().is_some_and(|m| m.enabled) {
            r.err(FieldError::required(
                "spec.pod.metrics.enabled",
                "spec.pod.podMonitor scrapes the exporter: enable spec.pod.metrics",
            ));
        }
        check_labels(r, "spec.pod.podMonitor.labels", &pm.labels);
        check_duration(r, "spec.pod.podMonitor.interval", &pm.interval, true);
    }
    check_sidecar(r, "spec.pod.externalAdvertise", &pod.external_advertise);
    for (i, m) in pod.volume_mounts.iter().enumerate() {
        if !m.mount_path.starts_with('/') {
            r.err(FieldError::invalid(
                format!("spec.pod.volumeMounts[{i}].mountPath"),
                m.mount_path.clone(),
                "must be an absolute path",
            ));
        }
    }
    if let Some(t) = &pod.template {
        // Decoded straight from the JSON: the template is not copied.
        if let Err(e) = PodTemplateSpec::deserialize(t) {
            r.err(FieldError::invalid(
                "spec.pod.template",
                "<pod template>",
                format!("is not a valid PodTemplateSpec: {e}"),
            ));
        } else if let Some(containers) = t.pointer("/spec/containers").and_then(|c| c.as_array())
            && let Some(first) = containers.first()
            && first
                .get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n != "nats")
        {
            r.warn("spec.pod.template: the first container is the base of the nats container; its name is replaced by nats");
        }
    }
    if let Some(db) = &pod.disruption_budget
        && let Some(m) = db.max_unavailable
        && m < 1
    {
        r.err(FieldError::invalid(
            "spec.pod.disruptionBudget.maxUnavailable",
            m,
            "must be at least 1",
        ));
    }
}

fn check_file(r: &mut Report, path: &str, field: &str, file: &str) {
    if file.is_empty() {
        return;
    }
    if let Err(why) = names::check_tls_file(file) {
        r.err(FieldError::invalid(
            format!("{path}.{field}"),
            file.to_string(),
            why,
        ));
    }
}

fn check_listener_tls(
    r: &mut Report,
    path: &str,
    secret: &str,
    files: [(&str, &str); 3],
    timeout: f64,
) {
    if secret.is_empty() {
        r.err(FieldError::required(
            format!("{path}.secret"),
            "name the Secret that holds the certificate, key and CA",
        ));
    } else if !names::is_dns1123_subdomain(secret) {
        r.err(FieldError::invalid(
            format!("{path}.secret"),
            secret.to_string(),
            "must be a Secret name (lowercase letters, digits, '-' and '.')",
        ));
    }
    for (field, value) in files {
        check_file(r, path, field, value);
    }
    if !timeout.is_finite() || timeout < 0.0 {
        r.err(FieldError::invalid(
            format!("{path}.timeout"),
            serde_json::json!(timeout),
            "must be a number of seconds, 0 or more",
        ));
    }
}

fn check_tls(r: &mut Report, s: &b::NatsClusterSpec) {
    let Some(t) = &s.tls else { return };
    if let Some(c) = &t.client {
        check_listener_tls(
            r,
            "spec.tls.client",
            &c.secret,
            [
                ("caFile", &c.ca_file),
                ("certFile", &c.cert_file),
                ("keyFile", &c.key_file),
            ],
            c.timeout,
        );
        for (i, suite) in c.cipher_suites.iter().enumerate() {
            if !CIPHER_SUITES.contains(&suite.as_str()) {
                r.err(FieldError::invalid(
                    format!("spec.tls.client.cipherSuites[{i}]"),
                    suite.clone(),
                    "is not a cipher suite nats-server accepts, such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                ));
            }
        }
        for (i, curve) in c.curve_preferences.iter().enumerate() {
            if !CURVES.contains(&curve.as_str()) {
                r.err(FieldError::not_supported(
                    format!("spec.tls.client.curvePreferences[{i}]"),
                    curve,
                    CURVES,
                ));
            }
        }
    }
    let client_secret = t.client.as_ref().is_some_and(|c| !c.secret.is_empty());
    if t.https_monitoring && !client_secret {
        r.err(FieldError::required(
            "spec.tls.client.secret",
            "spec.tls.httpsMonitoring serves monitoring with the client certificate",
        ));
    }
    for (l, path, configured, what) in [
        (&t.routes, "spec.tls.routes", true, ""),
        (
            &t.gateway,
            "spec.tls.gateway",
            s.gateway.is_some(),
            "spec.gateway",
        ),
        (
            &t.leafnode,
            "spec.tls.leafnode",
            s.leafnode.is_some(),
            "spec.leafnode",
        ),
        (
            &t.websocket,
            "spec.tls.websocket",
            s.websocket.is_some(),
            "spec.websocket",
        ),
        (&t.mqtt, "spec.tls.mqtt", s.mqtt.is_some(), "spec.mqtt"),
    ] {
        let Some(l) = l else { continue };
        if !configured {
            r.err(FieldError::forbidden(
                path,
                format!("TLS for a listener that is not configured: set {what} or remove {path}"),
            ));
            continue;
        }
        check_listener_tls(
            r,
            path,
            &l.secret,
            [
                ("caFile", &l.ca_file),
                ("certFile", &l.cert_file),
                ("keyFile", &l.key_file),
            ],
            l.timeout,
        );
    }
}

fn check_auth(r: &mut Report, s: &b::NatsClusterSpec) {
    let tls_client = s.tls.as_ref().and_then(|t| t.client.as_ref());
    if let Some(c) = tls_client
        && (c.verify_and_map || c.verify)
        && c.secret.is_empty()
    {
        let which = if c.verify_and_map {
            "verifyAndMap"
        } else {
            "verify"
        };
        r.err(FieldError::required(
            "spec.tls.client.secret",
            format!("spec.tls.client.{which} needs client TLS"),
        ));
    }
    let Some(auth) = &s.auth else { return };
    if let Some(a) = &auth.accounts {
        if a.secret.is_empty() {
            r.err(FieldError::required(
                "spec.auth.accounts.secret",
                "name the Secret holding the accounts as JSON",
            ));
        } else if !names::is_dns1123_subdomain(&a.secret) {
            r.err(FieldError::invalid(
                "spec.auth.accounts.secret",
                a.secret.clone(),
                "must be a Secret name",
            ));
        }
    }
    if let Some(c) = &auth.clients
        && !c.no_auth_user.is_empty()
        && !c.service_accounts
        && c.secret.is_empty()
        && c.file.is_empty()
        && auth.accounts.is_none()
    {
        r.err(FieldError::invalid(
            "spec.auth.clients.noAuthUser",
            c.no_auth_user.clone(),
            "names a user, but no users are configured: set spec.auth.clients.secret, spec.auth.clients.file or spec.auth.accounts",
        ));
    }
    if let Some(c) = &auth.clients {
        let sources = [c.service_accounts, !c.secret.is_empty(), !c.file.is_empty()]
            .iter()
            .filter(|x| **x)
            .count();
        if sources > 1 {
            r.warn("spec.auth.clients: several sources set; serviceAccounts wins, then secret, then file");
        }
        if !c.secret.is_empty() && !names::is_dns1123_subdomain(&c.secret) {
            r.err(FieldError::invalid(
                "spec.auth.clients.secret",
                c.secret.clone(),
                "must be a Secret name",
            ));
        }
        if !c.file.is_empty()
            && let Err(why) = names::check_relative_path(&c.file)
        {
            r.err(FieldError::invalid(
                "spec.auth.clients.file",
                c.file.clone(),
                why,
            ));
        }
        if c.timeout < 0 {
            r.err(FieldError::invalid(
                "spec.auth.clients.timeout",
                c.timeout,
                "must be 0 or more",
            ));
        }
    }
    for (a, path, configured) in [
        (&auth.routes, "spec.auth.routes", true),
        (&auth.gateway, "spec.auth.gateway", s.gateway.is_some()),
    ] {
        let Some(a) = a else { continue };
        if !configured {
            r.err(FieldError::forbidden(
                path,
                "gateway credentials without a gateway: set spec.gateway or remove spec.auth.gateway",
            ));
            continue;
        }
        if a.secret.is_empty() {
            r.err(FieldError::required(
                format!("{path}.secret"),
                "name the Secret with the credentials",
            ));
        } else if !names::is_dns1123_subdomain(&a.secret) {
            r.err(FieldError::invalid(
                format!("{path}.secret"),
                a.secret.clone(),
                "must be a Secret name",
            ));
        }
        if a.timeout < 0 {
            r.err(FieldError::invalid(
                format!("{path}.timeout"),
                a.timeout,
                "must be 0 or more",
            ));
        }
    }
    if let Some(j) = &auth.jwt {
        if j.operator_secret.is_empty() {
            r.err(FieldError::required(
                "spec.auth.jwt.operatorSecret",
                "name the Secret with the operator JWT (key op.jwt)",
            ));
        } else if !names::is_dns1123_subdomain(&j.operator_secret) {
            r.err(FieldError::invalid(
                "spec.auth.jwt.operatorSecret",
                j.operator_secret.clone(),
                "must be a Secret name",
            ));
        }
        let resolver_ok = j.resolver.is_empty()
            || j.resolver == "MEMORY"
            || (j.resolver.starts_with("URL(") && j.resolver.ends_with(')'));
        if !resolver_ok {
            r.err(FieldError::invalid(
                "spec.auth.jwt.resolver",
                j.resolver.clone(),
                "must be MEMORY or URL(<url>)",
            ));
        }
        if !j.system_account.is_empty() && !names::is_nkey(&j.system_account, 'A') {
            r.warn("spec.auth.jwt.systemAccount does not look like an account public key (56 characters starting with A)");
        }
    }
}

fn check_routes(r: &mut Report, name: &str, s: &b::NatsClusterSpec) {
    for (i, route) in s.extra_routes.iter().enumerate() {
        let path = || format!("spec.extraRoutes[{i}]");
        match (route.cluster.is_empty(), route.route.is_empty()) {
            (true, true) => r.err(FieldError::required(
                path(),
                "set exactly one of cluster or route",
            )),
            (false, false) => r.err(FieldError::invalid(
                path(),
                serde_json::json!({"cluster": route.cluster, "route": route.route}),
                "set exactly one of cluster or route, not both",
            )),
            (false, true) => {
                if !names::is_dns1123_label(&route.cluster) {
                    r.err(FieldError::invalid(
                        format!("{}.cluster", path()),
                        route.cluster.clone(),
                        "must be the name of a NatsCluster in this namespace",
                    ));
                } else if route.cluster == name {
                    r.err(FieldError::invalid(
                        format!("{}.cluster", path()),
                        route.cluster.clone(),
                        "must not name this cluster itself",
                    ));
                }
            }
            (true, false) => {
                if let Err(why) =
                    names::check_url(&route.route, &["nats", "nats-route", "tls"], true)
                {
                    r.err(FieldError::invalid(
                        format!("{}.route", path()),
                        route.route.clone(),
                        why,
                    ));
                }
            }
        }
    }
}

fn check_port(r: &mut Report, path: &'static str, port: i32, used: &mut Vec<(i32, &'static str)>) {
    if !(1..=65535).contains(&port) {
        r.err(FieldError::invalid(
            path,
            port,
            "must be between 1 and 65535",
        ));
        return;
    }
    if let Some((_, other)) = used.iter().find(|(p, _)| *p == port) {
        r.err(FieldError::duplicate(
            path,
            port,
            format!("port already used by {other}"),
        ));
        return;
    }
    used.push((port, path));
}

fn check_listeners(r: &mut Report, s: &b::NatsClusterSpec, pod: &b::PodPolicy) {
    let mut used: Vec<(i32, &'static str)> = Vec::with_capacity(8);
    used.extend([
        (CLIENT_PORT, "the client listener"),
        (CLUSTER_PORT, "the route listener"),
        (MONITORING_PORT, "the monitoring listener"),
    ]);
    if pod.metrics.as_ref().is_some_and(|m| m.enabled) {
        used.push((METRICS_PORT, "the metrics exporter"));
    }
    if let Some(g) = &s.gateway {
        if g.port == 0 {
            r.err(FieldError::required(
                "spec.gateway.port",
                "a gateway needs a listen port, such as 7522",
            ));
        } else {
            check_port(r, "spec.gateway.port", g.port, &mut used);
        }
        if g.name.is_empty() {
            r.err(FieldError::required(
                "spec.gateway.name",
                "name this cluster's gateway",
            ));
        } else if let Err(why) = names::check_nats_name(&g.name) {
            r.err(FieldError::invalid(
                "spec.gateway.name",
                g.name.clone(),
                why,
            ));
        }
        for (i, remote) in g.remotes.iter().enumerate() {
            let path = "spec.gateway.remotes";
            if remote.name.is_empty() {
                r.err(FieldError::required(
                    format!("{path}[{i}].name"),
                    "name the remote gateway",
                ));
            } else if let Err(why) = names::check_nats_name(&remote.name) {
                r.err(FieldError::invalid(
                    format!("{path}[{i}].name"),
                    remote.name.clone(),
                    why,
                ));
            }
            if remote.url.is_empty() && remote.urls.is_empty() {
                r.err(FieldError::required(
                    format!("{path}[{i}].url"),
                    "give the remote gateway's URL",
                ));
            }
            for (j, url) in std::iter::once(&remote.url).chain(&remote.urls).enumerate() {
                if url.is_empty() {
                    continue;
                }
                if let Err(why) = names::check_url(url, &["nats", "tls"], true) {
                    r.err(FieldError::invalid(url_field(path, i, j), url.clone(), why));
                }
            }
        }
    }
    if let Some(l) = &s.leafnode {
        if l.port != 0 {
            check_port(r, "spec.leafnode.port", l.port, &mut used);
        }
        for (i, remote) in l.remotes.iter().enumerate() {
            let path = "spec.leafnode.remotes";
            if remote.url.is_empty() && remote.urls.is_empty() {
                r.err(FieldError::required(
                    format!("{path}[{i}].urls"),
                    "give at least one URL of the remote",
                ));
            }
            for (j, url) in std::iter::once(&remote.url).chain(&remote.urls).enumerate() {
                if url.is_empty() {
                    continue;
                }
                if let Err(why) =
                    names::check_url(url, &["nats", "nats-leaf", "tls", "ws", "wss"], false)
                {
                    r.err(FieldError::invalid(url_field(path, i, j), url.clone(), why));
                }
            }
            if !remote.credentials.is_empty()
                && let Err(why) = names::check_absolute_path(&remote.credentials)
            {
                r.err(FieldError::invalid(
                    format!("{path}[{i}].credentials"),
                    remote.credentials.clone(),
                    why,
                ));
            }
        }
    }
    if let Some(w) = &s.websocket {
        if w.port == 0 {
            r.err(FieldError::required(
                "spec.websocket.port",
                "websocket needs a listen port, such as 8080",
            ));
        } else {
            check_port(r, "spec.websocket.port", w.port, &mut used);
        }
        check_duration(
            r,
            "spec.websocket.handshakeTimeout",
            &w.handshake_timeout,
            true,
        );
    }
    if let Some(m) = &s.mqtt {
        check_port(r, "spec.mqtt.port", m.listen_port(), &mut used);
        check_duration(r, "spec.mqtt.ackWait", &m.ack_wait, true);
        if s.jetstream.as_ref().is_none_or(|j| !j.is_enabled()) {
            r.err(FieldError::required(
                "spec.jetstream",
                "MQTT keeps its sessions and retained messages in JetStream: set spec.jetstream or remove spec.mqtt",
            ));
        }
    }
}

/// `{path}[i].url` for the first URL of a remote (`j == 0`), else `{path}[i].urls[j-1]`.
fn url_field(path: &str, i: usize, j: usize) -> String {
    match j.checked_sub(1) {
        None => format!("{path}[{i}].url"),
        Some(k) => format!("{path}[{i}].urls[{k}]"),
    }
}

fn check_jetstream(
    r: &mut Report,
    s: &b::NatsClusterSpec,
    old: Option<&b::NatsClusterSpec>,
    volumes: VolumeSize<'_>,
) {
    let old_js = old
        .and_then(|o| o.jetstream.as_ref())
        .filter(|j| j.is_enabled());
    let js = s.jetstream.as_ref().filter(|j| j.is_enabled());
    let Some(js) = js else {
        if old_js.is_some() {
            r.warn("spec.jetstream: turning JetStream off stops every stream; data stays on the volumes");
        }
        return;
    };
    if old_js.is_some_and(|o| o.file_storage.is_some()) && js.file_storage.is_none() {
        r.err(FieldError::forbidden(
            "spec.jetstream.fileStorage",
            "cannot be removed while members keep their streams on volumes: the servers would restart on empty storage",
        ));
    }
    check_duration(
        r,
        "spec.jetstream.catchUpTimeout",
        &js.catch_up_timeout,
        true,
    );
    if let (Some(mem), Some(limit)) = (
        js.memory_storage
            .as_ref()
            .and_then(|q| names::parse_quantity(&q.0)),
        s.pod
            .as_ref()
            .and_then(|p| p.resources.as_ref())
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(|q| names::parse_quantity(&q.0)),
    ) && mem > limit * 0.75
    {
        r.warn("spec.jetstream.memoryStorage is over 75% of the nats container's memory limit: the server may be OOM-killed");
    }
    if s.size > 0 && s.size % 2 == 0 {
        r.warn(format!(
            "spec.size {} is even: JetStream needs a majority, so an odd size tolerates as many failures with one server less",
            s.size
        ));
    }
    if let Some(fs) = &js.file_storage {
        if !fs.storage_class_name.is_empty() && !names::is_dns1123_subdomain(&fs.storage_class_name)
        {
            r.err(FieldError::invalid(
                "spec.jetstream.fileStorage.storageClassName",
                fs.storage_class_name.clone(),
                "must be a StorageClass name",
            ));
        }
        let old_fs = old
            .and_then(|o| o.jetstream.as_ref())
            .and_then(|j| j.file_storage.as_ref());
        if let Some(old_fs) = old_fs
            && old_fs.storage_class_name != fs.storage_class_name
        {
            r.err(FieldError::forbidden(
                "spec.jetstream.fileStorage.storageClassName",
                "the storage class of existing members' volumes cannot change",
            ));
        }
        match fs.size.as_ref().map(|q| names::parse_quantity(&q.0)) {
            Some(None) => r.err(FieldError::invalid(
                "spec.jetstream.fileStorage.size",
                fs.size.as_ref().map(|q| q.0.clone()).unwrap_or_default(),
                "must be a quantity such as 10Gi",
            )),
            Some(Some(new_bytes)) => {
                // What the volumes request, when the status says (the spec may go back
                // down to it after a growth the storage class could not make), else
                // the stored spec's size.
                let have = names::parse_quantity(volumes);
                let old_bytes = old_fs
                    .and_then(|o| o.size.as_ref())
                    .and_then(|q| names::parse_quantity(&q.0));
                match (have, old_bytes) {
                    (Some(have), _) if new_bytes < have => r.err(FieldError::forbidden(
                        "spec.jetstream.fileStorage.size",
                        format!(
                            "volumes can grow but never shrink: the members' volumes request {volumes} (status.volumeSize); shrinking would lose data"
                        ),
                    )),
                    (None, Some(old_bytes)) if new_bytes < old_bytes => {
                        r.err(FieldError::forbidden(
                            "spec.jetstream.fileStorage.size",
                            "volumes can grow but never shrink; shrinking would lose data",
                        ))
                    }
                    _ => {}
                }
            }
            None => {}
        }
    }
    if let Some(q) = &js.memory_storage
        && names::parse_quantity(&q.0).is_none()
    {
        r.err(FieldError::invalid(
            "spec.jetstream.memoryStorage",
            q.0.clone(),
            "must be a quantity such as 1Gi",
        ));
    }
}

/// v1beta1 path prefix → v1alpha2 path prefix, longest first where prefixes nest.
const ALPHA_PATHS: &[(&str, &str)] = &[
    ("spec.image", "spec.serverImage"),
    ("spec.config.serverName", "spec.useServerName"),
    (
        "spec.config.lameDuckDuration",
        "spec.lameDuckDurationSeconds",
    ),
    ("spec.config.noAdvertise", "spec.noAdvertise"),
    (
        "spec.config.writeDeadline",
        "spec.natsConfig.write_deadline",
    ),
    ("spec.config.logtime", "spec.natsConfig.disableLogtime"),
    ("spec.config", "spec.natsConfig"),
    ("spec.pod.template", "spec.template"),
    ("spec.pod.env", "spec.pod.natsEnv"),
    (
        "spec.pod.hostPorts.client",
        "spec.pod.enableClientsHostPort",
    ),
    (
        "spec.pod.hostPorts.gateway",
        "spec.pod.disableGatewaysHostPort",
    ),
    (
        "spec.pod.hostPorts.leafnode",
        "spec.pod.disableLeafnodesHostPort",
    ),
    (
        "spec.pod.hostPorts.websocket",
        "spec.pod.disableWebsocketsHostPort",
    ),
    (
        "spec.pod.externalAdvertise.image",
        "spec.pod.bootconfigImage",
    ),
    (
        "spec.pod.externalAdvertise.tag",
        "spec.pod.bootconfigImageTag",
    ),
    ("spec.pod.externalAdvertise", "spec.pod.advertiseExternalIP"),
    (
        "spec.pod.configReloader.imagePullPolicy",
        "spec.pod.reloaderImagePullPolicy",
    ),
    ("spec.pod.configReloader.image", "spec.pod.reloaderImage"),
    ("spec.pod.configReloader.tag", "spec.pod.reloaderImageTag"),
    (
        "spec.pod.configReloader.resources",
        "spec.pod.reloaderResources",
    ),
    ("spec.pod.configReloader", "spec.pod.enableConfigReload"),
    (
        "spec.pod.metrics.imagePullPolicy",
        "spec.pod.metricsImagePullPolicy",
    ),
    ("spec.pod.metrics.image", "spec.pod.metricsImage"),
    ("spec.pod.metrics.tag", "spec.pod.metricsImageTag"),
    ("spec.pod.metrics", "spec.pod.enableMetrics"),
    ("spec.tls.client.secret", "spec.tls.serverSecret"),
    ("spec.tls.client.caFile", "spec.tls.serverSecretCAFileName"),
    (
        "spec.tls.client.certFile",
        "spec.tls.serverSecretCertFileName",
    ),
    (
        "spec.tls.client.keyFile",
        "spec.tls.serverSecretKeyFileName",
    ),
    ("spec.tls.client.timeout", "spec.tls.clientsTLSTimeout"),
    ("spec.tls.client.verifyAndMap", "spec.auth.tlsVerifyAndMap"),
    ("spec.tls.client.verify", "spec.tls.verify"),
    ("spec.tls.client.cipherSuites", "spec.tls.cipherSuites"),
    (
        "spec.tls.client.curvePreferences",
        "spec.tls.curvePreferences",
    ),
    ("spec.tls.client", "spec.tls"),
    ("spec.tls.routes.secret", "spec.tls.routesSecret"),
    ("spec.tls.routes.caFile", "spec.tls.routesSecretCAFileName"),
    (
        "spec.tls.routes.certFile",
        "spec.tls.routesSecretCertFileName",
    ),
    (
        "spec.tls.routes.keyFile",
        "spec.tls.routesSecretKeyFileName",
    ),
    ("spec.tls.routes.timeout", "spec.tls.routesTLSTimeout"),
    ("spec.tls.routes", "spec.tls.routesSecret"),
    ("spec.tls.gateway.secret", "spec.tls.gatewaySecret"),
    (
        "spec.tls.gateway.caFile",
        "spec.tls.gatewaySecretCAFileName",
    ),
    (
        "spec.tls.gateway.certFile",
        "spec.tls.gatewaySecretCertFileName",
    ),
    (
        "spec.tls.gateway.keyFile",
        "spec.tls.gatewaySecretKeyFileName",
    ),
    ("spec.tls.gateway.timeout", "spec.tls.gatewaysTLSTimeout"),
    ("spec.tls.gateway", "spec.tls.gatewaySecret"),
    ("spec.tls.leafnode.secret", "spec.tls.leafnodeSecret"),
    (
        "spec.tls.leafnode.caFile",
        "spec.tls.leafnodeSecretCAFileName",
    ),
    (
        "spec.tls.leafnode.certFile",
        "spec.tls.leafnodeSecretCertFileName",
    ),
    (
        "spec.tls.leafnode.keyFile",
        "spec.tls.leafnodeSecretKeyFileName",
    ),
    ("spec.tls.leafnode.timeout", "spec.tls.leafnodesTLSTimeout"),
    ("spec.tls.leafnode", "spec.tls.leafnodeSecret"),
    ("spec.tls.websocket.secret", "spec.tls.websocketSecret"),
    (
        "spec.tls.websocket.caFile",
        "spec.tls.websocketSecretCAFileName",
    ),
    (
        "spec.tls.websocket.certFile",
        "spec.tls.websocketSecretCertFileName",
    ),
    (
        "spec.tls.websocket.keyFile",
        "spec.tls.websocketSecretKeyFileName",
    ),
    ("spec.tls.websocket.timeout", "spec.tls.websocketTLSTimeout"),
    ("spec.tls.websocket", "spec.tls.websocketSecret"),
    ("spec.tls.httpsMonitoring", "spec.tls.enableHttps"),
    (
        "spec.auth.clients.serviceAccounts",
        "spec.auth.enableServiceAccounts",
    ),
    ("spec.auth.clients.secret", "spec.auth.clientsAuthSecret"),
    ("spec.auth.clients.file", "spec.auth.clientsAuthFile"),
    ("spec.auth.clients.timeout", "spec.auth.clientsAuthTimeout"),
    ("spec.auth.clients", "spec.auth"),
    ("spec.auth.routes.secret", "spec.auth.clusterAuthSecret"),
    ("spec.auth.routes.timeout", "spec.auth.clusterAuthTimeout"),
    ("spec.auth.routes", "spec.auth.clusterAuthSecret"),
    ("spec.auth.gateway.secret", "spec.auth.gatewayAuthSecret"),
    ("spec.auth.gateway.timeout", "spec.auth.gatewayAuthTimeout"),
    ("spec.auth.gateway", "spec.auth.gatewayAuthSecret"),
    ("spec.auth.jwt.operatorSecret", "spec.operatorConfig.secret"),
    ("spec.auth.jwt", "spec.operatorConfig"),
    ("spec.gateway.port", "spec.gatewayConfig.hostPort"),
    ("spec.gateway.remotes", "spec.gatewayConfig.gateways"),
    ("spec.gateway", "spec.gatewayConfig"),
    ("spec.leafnode.port", "spec.leafnodeConfig.hostPort"),
    ("spec.leafnode", "spec.leafnodeConfig"),
    ("spec.websocket", "spec.websocketConfig"),
    ("spec.services.client", "spec.servicePolicy"),
    ("spec.services.management", "spec.managementServicePolicy"),
];

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '[' | ']')
}

fn alpha_path(path: &str) -> String {
    for (beta, alpha) in ALPHA_PATHS {
        if let Some(rest) = path.strip_prefix(beta)
            && (rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
        {
            return format!("{alpha}{rest}");
        }
    }
    path.to_string()
}

/// Rewrites every `spec.…` path in `text` from v1beta1 to v1alpha2 field names.
pub fn alpha_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("spec.") {
        let boundary = rest[..pos]
            .chars()
            .next_back()
            .is_none_or(|c| !is_path_char(c));
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let end = tail.find(|c: char| !is_path_char(c)).unwrap_or(tail.len());
        let token = tail[..end].trim_end_matches('.');
        if boundary {
            out.push_str(&alpha_path(token));
        } else {
            out.push_str(token);
        }
        rest = &tail[token.len()..];
    }
    out.push_str(rest);
    out
}
