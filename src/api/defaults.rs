//! Defaulting: the values the Go operator applied in memory, now written into the
//! object by the mutating webhook. Pure and idempotent; a v1alpha2 object is defaulted
//! in v1alpha2 fields and a v1beta1 object in v1beta1 fields, with the same values, so
//! defaulting and conversion commute.

use super::choices::PullPolicy;
use super::{v1alpha2 as a, v1beta1 as b};

/// The NATS server release new clusters get: the newest one the tests run (the last line
/// of `e2e/nats/versions`; a test checks they agree).
pub const DEFAULT_VERSION: &str = "2.15.3";
/// What the Go operator ran when `version` was empty: kept for objects it stored.
pub const LEGACY_DEFAULT_VERSION: &str = "2.1.9";
/// Default NATS server image repository.
pub const DEFAULT_IMAGE: &str = "nats";
/// Repository of this operator's image, which also runs the config reloader.
pub const OPERATOR_IMAGE: &str = "ghcr.io/nats-operator-rs/nats-operator";
/// Tag of this operator's image.
pub const OPERATOR_IMAGE_TAG: &str = env!("CARGO_PKG_VERSION");
/// Maintained Prometheus exporter image.
pub const METRICS_IMAGE: &str = "natsio/prometheus-nats-exporter";
/// Prometheus exporter tag.
pub const METRICS_IMAGE_TAG: &str = "0.17.3";
/// Boot-config init container image (external IP advertisement).
pub const BOOTCONFIG_IMAGE: &str = "natsio/nats-boot-config";
/// Boot-config tag.
pub const BOOTCONFIG_IMAGE_TAG: &str = "0.16.1";
/// Default pull policy of sidecars.
pub const SIDECAR_PULL_POLICY: PullPolicy = PullPolicy::IfNotPresent;
/// Default CA file name of every listener.
pub const CA_FILE: &str = "ca.pem";
/// Default certificate file name (client, gateway, leafnode, websocket).
pub const CERT_FILE: &str = "server.pem";
/// Default key file name (client, gateway, leafnode, websocket).
pub const KEY_FILE: &str = "server-key.pem";
/// Default certificate file name of routes.
pub const ROUTE_CERT_FILE: &str = "route.pem";
/// Default key file name of routes.
pub const ROUTE_KEY_FILE: &str = "route-key.pem";

fn set_if_empty(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_string();
    }
}

/// Strips every leading `v` (as the Go operator did) from a version.
pub fn normalize_version(version: &str) -> String {
    version.trim_start_matches('v').to_string()
}

/// The version an object gets when it has none: the current release for new objects,
/// the Go operator's old default for objects it stored without one, so no update
/// upgrades a running cluster behind the user's back.
fn default_version(version: &mut String, old_version: Option<&str>, warnings: &mut Vec<String>) {
    if version.is_empty() {
        match old_version {
            Some("") => {
                *version = LEGACY_DEFAULT_VERSION.to_string();
                warnings.push(format!(
                    "spec.version was empty; set to {LEGACY_DEFAULT_VERSION}, what the Go operator ran"
                ));
            }
            Some(old) if !old.is_empty() => *version = old.to_string(),
            _ => *version = DEFAULT_VERSION.to_string(),
        }
    } else if version.starts_with('v') {
        *version = normalize_version(version);
    }
}

fn tls_names(secret: &str, ca: &mut String, cert: &mut String, key: &mut String, route: bool) {
    if secret.is_empty() {
        return;
    }
    set_if_empty(ca, CA_FILE);
    set_if_empty(cert, if route { ROUTE_CERT_FILE } else { CERT_FILE });
    set_if_empty(key, if route { ROUTE_KEY_FILE } else { KEY_FILE });
}

/// Defaults a `v1beta1` spec in place; returns warnings for the user.
pub fn default_v1beta1(
    spec: &mut b::NatsClusterSpec,
    old: Option<&b::NatsClusterSpec>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    default_version(
        &mut spec.version,
        old.map(|o| o.version.as_str()),
        &mut warnings,
    );
    set_if_empty(&mut spec.image, DEFAULT_IMAGE);
    if let Some(pod) = spec.pod.as_mut() {
        if let Some(s) = pod.config_reloader.as_mut().filter(|s| s.enabled) {
            set_if_empty(&mut s.image, OPERATOR_IMAGE);
            set_if_empty(&mut s.tag, OPERATOR_IMAGE_TAG);
            s.image_pull_policy.get_or_insert(SIDECAR_PULL_POLICY);
        }
        if let Some(s) = pod.metrics.as_mut().filter(|s| s.enabled) {
            set_if_empty(&mut s.image, METRICS_IMAGE);
            set_if_empty(&mut s.tag, METRICS_IMAGE_TAG);
            s.image_pull_policy.get_or_insert(SIDECAR_PULL_POLICY);
        }
        if let Some(s) = pod.external_advertise.as_mut().filter(|s| s.enabled) {
            set_if_empty(&mut s.image, BOOTCONFIG_IMAGE);
            set_if_empty(&mut s.tag, BOOTCONFIG_IMAGE_TAG);
        }
    }
    if let Some(tls) = spec.tls.as_mut() {
        if let Some(c) = tls.client.as_mut() {
            tls_names(
                &c.secret,
                &mut c.ca_file,
                &mut c.cert_file,
                &mut c.key_file,
                false,
            );
        }
        if let Some(l) = tls.routes.as_mut() {
            tls_names(
                &l.secret,
                &mut l.ca_file,
                &mut l.cert_file,
                &mut l.key_file,
                true,
            );
        }
        for l in [
            tls.gateway.as_mut(),
            tls.leafnode.as_mut(),
            tls.websocket.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            tls_names(
                &l.secret,
                &mut l.ca_file,
                &mut l.cert_file,
                &mut l.key_file,
                false,
            );
        }
    }
    warnings
}

/// The cluster as the reconciler and `render` must see it: the stored object with the
/// mutating webhook's defaults applied now. Objects stored without them (by the Go
/// operator, while the webhook was down or set to `Ignore`, before a default existed)
/// then mean exactly what a defaulted object means. Defaulting is an update against the
/// object itself, so an empty `version` is the Go operator's old default, never a newer
/// release behind the user's back.
pub fn at_read_time(cluster: &b::NatsCluster) -> b::NatsCluster {
    let mut out = cluster.clone();
    default_v1beta1(&mut out.spec, Some(&cluster.spec));
    out
}

/// Defaults a `v1alpha2` spec in place, in v1alpha2 fields; returns warnings.
pub fn default_v1alpha2(spec: &mut a::ClusterSpec, old: Option<&a::ClusterSpec>) -> Vec<String> {
    let mut warnings = Vec::new();
    default_version(
        &mut spec.version,
        old.map(|o| o.version.as_str()),
        &mut warnings,
    );
    set_if_empty(&mut spec.server_image, DEFAULT_IMAGE);
    if let Some(nc) = spec.nats_config.as_mut()
        && !nc.write_deadline_camel.is_empty()
    {
        if nc.write_deadline.is_empty() {
            nc.write_deadline = std::mem::take(&mut nc.write_deadline_camel);
            warnings.push(
                "spec.natsConfig.writeDeadline moved to spec.natsConfig.write_deadline, the field the server reads"
                    .to_string(),
            );
        } else if nc.write_deadline == nc.write_deadline_camel {
            nc.write_deadline_camel.clear();
        }
    }
    if let Some(pod) = spec.pod.as_mut() {
        if pod.enable_config_reload {
            set_if_empty(&mut pod.reloader_image, OPERATOR_IMAGE);
            set_if_empty(&mut pod.reloader_image_tag, OPERATOR_IMAGE_TAG);
            set_if_empty(
                &mut pod.reloader_image_pull_policy,
                SIDECAR_PULL_POLICY.as_str(),
            );
        }
        if pod.enable_metrics {
            set_if_empty(&mut pod.metrics_image, METRICS_IMAGE);
            set_if_empty(&mut pod.metrics_image_tag, METRICS_IMAGE_TAG);
            set_if_empty(
                &mut pod.metrics_image_pull_policy,
                SIDECAR_PULL_POLICY.as_str(),
            );
        }
        if pod.advertise_external_ip {
            set_if_empty(&mut pod.bootconfig_image, BOOTCONFIG_IMAGE);
            set_if_empty(&mut pod.bootconfig_image_tag, BOOTCONFIG_IMAGE_TAG);
        }
    }
    if let Some(t) = spec.tls.as_mut() {
        tls_names(
            &t.server_secret,
            &mut t.server_secret_ca_file_name,
            &mut t.server_secret_cert_file_name,
            &mut t.server_secret_key_file_name,
            false,
        );
        tls_names(
            &t.routes_secret,
            &mut t.routes_secret_ca_file_name,
            &mut t.routes_secret_cert_file_name,
            &mut t.routes_secret_key_file_name,
            true,
        );
        tls_names(
            &t.gateway_secret,
            &mut t.gateway_secret_ca_file_name,
            &mut t.gateway_secret_cert_file_name,
            &mut t.gateway_secret_key_file_name,
            false,
        );
        tls_names(
            &t.leafnode_secret,
            &mut t.leafnode_secret_ca_file_name,
            &mut t.leafnode_secret_cert_file_name,
            &mut t.leafnode_secret_key_file_name,
            false,
        );
        tls_names(
            &t.websocket_secret,
            &mut t.websocket_secret_ca_file_name,
            &mut t.websocket_secret_cert_file_name,
            &mut t.websocket_secret_key_file_name,
            false,
        );
    }
    warnings
}

#[cfg(test)]
mod version_tests {
    /// New clusters get the newest release the tests run.
    #[test]
    fn default_version_is_the_newest_tested_release() {
        let tested = include_str!("../../e2e/nats/versions")
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with('#'));
        assert_eq!(tested, Some(super::DEFAULT_VERSION));
    }
}
