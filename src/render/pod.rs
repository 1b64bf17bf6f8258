//! Member pods and their JetStream volumes.
//!
//! Decisions (differences from the Go operator are deliberate):
//!
//! - **Names** `<name>-<index in lower-case hex>` from 1 ([`super::pod_name`]), kept from
//!   the Go operator so the pods, DNS names and route certificates of the clusters it
//!   created stay valid.
//! - **Base**: `pod.template` (a PodTemplateSpec). Its `metadata.labels`/`annotations`
//!   are applied (the Go operator ignored them), its first container is the base of the
//!   `nats` container (env, lifecycle, securityContext, mounts survive; name, image,
//!   command, ports, probes are ours), its other containers stay as sidecars.
//! - **Security**: unless the template sets one, the pod runs as uid/gid 1000
//!   (`runAsNonRoot`, `fsGroup` 1000 so the JetStream volume is writable, seccomp
//!   `RuntimeDefault`), and every container we add (and the `nats` container unless the
//!   template's has its own) drops all capabilities, has no privilege escalation and a
//!   read-only root filesystem. The official `nats` images run as root by default, but
//!   the server needs no privilege: it reads the config and certificates (Secret
//!   volumes are world-readable, mode 0644), writes its pid file to the `pid` emptyDir
//!   and JetStream data to `/data/jetstream` (group-writable through `fsGroup`), and
//!   listens on ports above 1024 (host ports are mapped by the node, not bound in the
//!   container).
//! - **Lame duck**: a `preStop` hook runs `<binary> --signal ldm=/var/run/nats/nats.pid`
//!   (unless the template container has its own `preStop`), so every deletion (scale
//!   down, rollout, drain, eviction) drains clients. The operator signals the same
//!   command itself before its own deletions (the hook alone races with SIGTERM, see
//!   [`crate::controller::lame_duck`]). With `config.lameDuckDuration`
//!   unset the server's own default (2m) applies and nothing is written into
//!   `nats.conf`, as with the Go operator; `terminationGracePeriodSeconds` is the lame
//!   duck duration plus [`GRACE_MARGIN_SECONDS`] (150 s by default), never less than the
//!   template's.
//! - **Probes** on the monitoring port 8222 (HTTPS with `tls.httpsMonitoring`): for
//!   servers ≥ 2.2 a startup probe on `/healthz` (up to 15 minutes, for JetStream
//!   catch-up), readiness on `/healthz?js-server-only=true` and liveness on
//!   `/healthz?js-enabled-only=true` (as the NATS Helm chart does); older servers have
//!   no `/healthz`, so all three use `/`.
//! - **Env**: `POD_NAME` from `metadata.name` (for `server_name` `PodName` and for users'
//!   `$(POD_NAME)`), and with `serverName: FromEnv` a `SERVER_NAME=$(POD_NAME)` fallback
//!   when neither the template nor `pod.env` define `SERVER_NAME`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HTTPGetAction, LifecycleHandler, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::choices::{AccessMode, AntiAffinity, ReclaimPolicy, ServerNameSource};
use crate::api::consts::{CLIENT_PORT, CLUSTER_PORT, METRICS_PORT, MONITORING_PORT};
use crate::api::defaults::{OPERATOR_IMAGE, OPERATOR_IMAGE_TAG};
use crate::api::v1beta1::{self as b, NatsClusterSpec};
use crate::api::{duration, version};

use super::labels::{self, VERSION_LABEL};
use super::{
    ADVERTISE_DIR, CLIENT_TLS_DIR, CONFIG_DIR, CONFIG_FILE, CONFIG_HASH_ANNOTATION, ClusterMeta,
    GATEWAY_TLS_DIR, JETSTREAM_DIR, LEAFNODE_TLS_DIR, MQTT_TLS_DIR, OPERATOR_JWT_DIR, PID_DIR,
    PID_FILE, POD_SPEC_HASH_ANNOTATION, ROUTES_TLS_DIR, RenderError, VERSION_ANNOTATION,
    WEBSOCKET_TLS_DIR, enabled, pod_name, sha256_hex, tls_path,
};

/// The uid and gid the pods run as unless the template says otherwise.
pub const RUN_AS: i64 = 1000;
/// Lame duck duration of the server when `config.lameDuckDuration` is unset (its default).
pub const DEFAULT_LAME_DUCK_SECONDS: i64 = 120;
/// Time after the lame duck duration for the server to close and exit.
pub const GRACE_MARGIN_SECONDS: i64 = 30;
/// Name of the NATS container.
pub const NATS_CONTAINER: &str = "nats";
/// Name of the config reloader sidecar.
pub const RELOADER_CONTAINER: &str = "reloader";
/// Name of the metrics sidecar.
pub const METRICS_CONTAINER: &str = "metrics";
/// Name of the boot-config init container.
pub const BOOTCONFIG_CONTAINER: &str = "bootconfig";
/// Name of the JetStream data volume.
pub const DATA_VOLUME: &str = "data";

/// Lame duck duration in seconds (the spec's, or the server default of 2 minutes).
pub fn lame_duck_seconds(spec: &NatsClusterSpec) -> i64 {
    spec.config
        .as_ref()
        .and_then(|c| duration::parse(&c.lame_duck_duration))
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .and_then(|s| i64::try_from(s).ok())
        .unwrap_or(DEFAULT_LAME_DUCK_SECONDS)
}

/// `terminationGracePeriodSeconds` of the members: lame duck plus a margin.
pub fn termination_grace_seconds(spec: &NatsClusterSpec) -> i64 {
    lame_duck_seconds(spec) + GRACE_MARGIN_SECONDS
}

/// Resources of the exporter when the spec names none: it polls a few monitoring
/// endpoints, so a small request and a memory limit keep it from crowding the server.
fn exporter_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), q("10m")),
            ("memory".to_string(), q("32Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), q("128Mi"))])),
        ..Default::default()
    }
}

/// Name of a member's JetStream claim: `<name>-data-<pod>`.
pub fn pvc_name(cluster: &str, pod: &str) -> String {
    format!("{cluster}-data-{pod}")
}

/// `<image>:<tag>`.
/// The Go operator's reload sidecar image, replaced by the operator's own.
pub const LEGACY_RELOADER_IMAGE: &str = "nats-server-config-reloader";

fn image(repo: &str, tag: &str) -> String {
    if tag.is_empty() {
        repo.to_string()
    } else {
        format!("{repo}:{tag}")
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        ..Default::default()
    }
}

fn port(name: &str, port: i32, host: bool) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        host_port: host.then_some(port),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// TLS Secrets of the spec: (volume, secret, mount dir, [files]).
fn tls_mounts(spec: &NatsClusterSpec) -> Vec<(&'static str, String, &'static str, Vec<String>)> {
    let Some(tls) = spec.tls.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(c) = tls.client.as_ref().filter(|c| !c.secret.is_empty()) {
        out.push((
            "server-tls-certs",
            c.secret.clone(),
            CLIENT_TLS_DIR,
            vec![c.ca_file.clone(), c.cert_file.clone(), c.key_file.clone()],
        ));
    }
    for (vol, dir, l) in [
        ("routes-tls-certs", ROUTES_TLS_DIR, tls.routes.as_ref()),
        ("gateway-tls-certs", GATEWAY_TLS_DIR, tls.gateway.as_ref()),
        (
            "leafnode-tls-certs",
            LEAFNODE_TLS_DIR,
            tls.leafnode.as_ref(),
        ),
        (
            "websocket-tls-certs",
            WEBSOCKET_TLS_DIR,
            tls.websocket.as_ref(),
        ),
        ("mqtt-tls-certs", MQTT_TLS_DIR, tls.mqtt.as_ref()),
    ] {
        if let Some(l) = l.filter(|l| !l.secret.is_empty()) {
            out.push((
                vol,
                l.secret.clone(),
                dir,
                vec![l.ca_file.clone(), l.cert_file.clone(), l.key_file.clone()],
            ));
        }
    }
    out
}

/// Files the config reloader watches besides `nats.conf`: the included clients auth
/// file and every TLS file, as absolute paths.
pub fn reloader_watch_files(spec: &NatsClusterSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(file) = spec
        .auth
        .as_ref()
        .and_then(|a| a.clients.as_ref())
        .filter(|c| !c.service_accounts && c.secret.is_empty() && !c.file.is_empty())
        .map(|c| c.file.clone())
    {
        out.push(tls_path(CONFIG_DIR, &file));
    }
    for (_, _, dir, files) in tls_mounts(spec) {
        for f in files.iter().filter(|f| !f.is_empty()) {
            let p = tls_path(dir, f);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn probe(path: &str, https: bool, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(MONITORING_PORT),
            scheme: Some(if https { "HTTPS" } else { "HTTP" }.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn template(spec: &NatsClusterSpec) -> Result<PodTemplateSpec, RenderError> {
    match spec.pod.as_ref().and_then(|p| p.template.as_ref()) {
        None | Some(serde_json::Value::Null) => Ok(PodTemplateSpec::default()),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| RenderError::Template(e.to_string()))
        }
    }
}

/// Member `index` (1-based) of the cluster, created with the config whose hash is
/// `config_hash`. Carries [`POD_SPEC_HASH_ANNOTATION`] over everything else it renders.
pub fn member_pod(
    spec: &NatsClusterSpec,
    meta: &ClusterMeta,
    index: u32,
    config_hash: &str,
) -> Result<Pod, RenderError> {
    let name = pod_name(&meta.name, index);
    let policy = spec.pod.clone().unwrap_or_default();
    let tmpl = template(spec)?;
    let tmeta = tmpl.metadata.unwrap_or_default();
    let mut ps: PodSpec = tmpl.spec.unwrap_or_default();
    let https = super::https_monitoring(spec);
    let binary = version::binary_path(&spec.version);
    let modern = version::parse(&spec.version)
        .map(|v| v.supports_jetstream())
        .unwrap_or(true);
    let reloader = enabled(policy.config_reloader.as_ref());
    let metrics = enabled(policy.metrics.as_ref());
    let advertise = enabled(policy.external_advertise.as_ref());
    let jetstream = super::jetstream_enabled(spec) && modern;
    let host_ports = policy.host_ports.clone().unwrap_or_default();
    let host_default = |v: Option<bool>| advertise.is_some() || v != Some(false);

    // Metadata.
    let empty = BTreeMap::new();
    let pod_labels = {
        let mut l = labels::common(
            &meta.name,
            [tmeta.labels.as_ref().unwrap_or(&empty), &policy.labels],
        );
        if labels::valid_label(VERSION_LABEL, &spec.version) {
            l.insert(VERSION_LABEL.into(), spec.version.clone());
        }
        l
    };
    let mut annotations = labels::annotations([
        tmeta.annotations.as_ref().unwrap_or(&empty),
        &policy.annotations,
    ]);
    annotations.insert(VERSION_ANNOTATION.into(), spec.version.clone());
    if super::runs_standalone(spec) {
        // In the pod-spec hash: scaling to or from one member restarts the server.
        annotations.insert(super::STANDALONE_ANNOTATION.into(), "true".into());
    }
    if metrics.is_some() {
        annotations.insert("prometheus.io/scrape".into(), "true".into());
        annotations.insert("prometheus.io/port".into(), METRICS_PORT.to_string());
    }

    // Volumes and mounts.
    let mut volumes = ps.volumes.take().unwrap_or_default();
    let mut mounts = vec![
        mount("nats-config", CONFIG_DIR, true),
        mount("pid", PID_DIR, false),
    ];
    volumes.push(secret_volume("nats-config", &meta.name));
    volumes.push(empty_dir("pid"));
    mounts.extend(policy.volume_mounts.iter().cloned());
    for (vol, secret, dir, _) in tls_mounts(spec) {
        volumes.push(secret_volume(vol, &secret));
        mounts.push(mount(vol, dir, true));
    }
    if let Some(jwt) = spec
        .auth
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .filter(|j| !j.operator_secret.is_empty())
    {
        volumes.push(secret_volume("operator-jwt", &jwt.operator_secret));
        mounts.push(mount("operator-jwt", OPERATOR_JWT_DIR, true));
    }
    let sidecar_mounts = mounts.clone();
    if advertise.is_some() {
        volumes.push(empty_dir("advertiseconfig"));
        mounts.push(mount("advertiseconfig", ADVERTISE_DIR, true));
    }
    if jetstream {
        let file = spec
            .jetstream
            .as_ref()
            .and_then(|j| j.file_storage.as_ref())
            .is_some();
        volumes.push(if file {
            Volume {
                name: DATA_VOLUME.into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: pvc_name(&meta.name, &name),
                    ..Default::default()
                }),
                ..Default::default()
            }
        } else {
            empty_dir(DATA_VOLUME)
        });
        mounts.push(mount(DATA_VOLUME, JETSTREAM_DIR, false));
    }

    // The nats container.
    let mut containers = std::mem::take(&mut ps.containers);
    let mut nats = if containers.is_empty() {
        Container::default()
    } else {
        containers.remove(0)
    };
    nats.name = NATS_CONTAINER.into();
    nats.image = Some(image(&spec.image, &spec.version));
    if let Some(p) = spec.image_pull_policy {
        nats.image_pull_policy = Some(p.to_string());
    }
    let mut command = vec![
        binary.to_string(),
        "-c".into(),
        CONFIG_FILE.into(),
        "-P".into(),
        PID_FILE.into(),
        "--cluster_advertise".into(),
        meta.pod_host(&name),
        "--connect_retries".into(),
        "10".into(),
    ];
    if let Some(var) = super::nats_conf::server_name_env(spec)
        && super::nats_conf::server_name_flag(spec)
    {
        command.push("--name".into());
        command.push(format!("$({var})"));
    }
    if spec.config.as_ref().is_some_and(|c| c.no_advertise) {
        command.push("--no_advertise".into());
    }
    nats.command = Some(command);
    nats.args = None;
    let mut ports = vec![
        port("client", CLIENT_PORT, host_ports.client),
        port("cluster", CLUSTER_PORT, false),
        port("monitoring", MONITORING_PORT, false),
    ];
    if let Some(g) = spec.gateway.as_ref().filter(|g| g.port > 0) {
        ports.push(port("gateway", g.port, host_default(host_ports.gateway)));
    }
    if let Some(l) = spec.leafnode.as_ref().filter(|l| l.port > 0) {
        ports.push(port("leaf", l.port, host_default(host_ports.leafnode)));
    }
    if let Some(w) = spec.websocket.as_ref().filter(|w| w.port > 0) {
        ports.push(port(
            "websocket",
            w.port,
            host_default(host_ports.websocket),
        ));
    }
    if let Some(p) = super::mqtt_port(spec) {
        ports.push(port("mqtt", p, false));
    }
    nats.ports = Some(ports);
    let (startup, ready, live) = if modern {
        (
            "/healthz",
            "/healthz?js-server-only=true",
            "/healthz?js-enabled-only=true",
        )
    } else {
        ("/", "/", "/")
    };
    nats.startup_probe = Some(probe(startup, https, 5, 180));
    nats.readiness_probe = Some(probe(ready, https, 10, 3));
    nats.liveness_probe = Some(probe(live, https, 30, 3));
    if policy.resources.is_some() {
        nats.resources = policy.resources.clone();
    }
    let mut env = nats.env.take().unwrap_or_default();
    env.extend(policy.env.iter().cloned());
    let has = |env: &[EnvVar], n: &str| env.iter().any(|e| e.name == n);
    if !has(&env, "POD_NAME") {
        env.insert(0, field_env("POD_NAME", "metadata.name"));
    }
    if spec
        .config
        .as_ref()
        .is_some_and(|c| c.server_name == Some(ServerNameSource::FromEnv))
        && !has(&env, "SERVER_NAME")
    {
        env.insert(
            1,
            EnvVar {
                name: "SERVER_NAME".into(),
                value: Some("$(POD_NAME)".into()),
                ..Default::default()
            },
        );
    }
    nats.env = Some(env);
    let mut all_mounts = nats.volume_mounts.take().unwrap_or_default();
    all_mounts.extend(mounts);
    nats.volume_mounts = Some(all_mounts);
    let mut lifecycle = nats.lifecycle.take().unwrap_or_default();
    if lifecycle.pre_stop.is_none() {
        lifecycle.pre_stop = Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec![
                    binary.to_string(),
                    "--signal".into(),
                    format!("ldm={PID_FILE}"),
                ]),
            }),
            ..Default::default()
        });
    }
    nats.lifecycle = Some(lifecycle);
    if nats.security_context.is_none() {
        nats.security_context = Some(restricted());
    }

    let mut all = vec![nats];
    all.extend(containers);
    if let Some(r) = reloader {
        let mut command = vec![
            "/nats-operator".to_string(),
            "config-reloader".into(),
            "--pid".into(),
            PID_FILE.into(),
            "--config".into(),
            CONFIG_FILE.into(),
        ];
        for f in reloader_watch_files(spec) {
            command.push("--watch".into());
            command.push(f);
        }
        // The reloader is our own subcommand: the third-party image the Go operator used
        // (still named in old manifests) has no `/nats-operator`, so it is replaced.
        let reloader_image = if r.image.ends_with(LEGACY_RELOADER_IMAGE) {
            image(OPERATOR_IMAGE, OPERATOR_IMAGE_TAG)
        } else {
            image(&r.image, &r.tag)
        };
        all.push(Container {
            name: RELOADER_CONTAINER.into(),
            image: Some(reloader_image),
            image_pull_policy: r.image_pull_policy.map(|p| p.to_string()),
            command: Some(command),
            resources: r.resources.clone(),
            volume_mounts: Some(sidecar_mounts),
            security_context: Some(restricted()),
            ..Default::default()
        });
        ps.share_process_namespace = Some(true);
    }
    if let Some(m) = metrics {
        let scheme = if https { "https" } else { "http" };
        all.push(Container {
            name: METRICS_CONTAINER.into(),
            image: Some(image(&m.image, &m.tag)),
            image_pull_policy: m.image_pull_policy.map(|p| p.to_string()),
            args: Some(
                ["-connz", "-routez", "-subz", "-varz", "-prefix=gnatsd"]
                    .into_iter()
                    // JetStream metrics (streams, consumers, storage) when it is on.
                    .chain(jetstream.then_some("-jsz=all"))
                    .map(String::from)
                    // The URL last: Go's flag parsing stops at the first argument.
                    .chain([format!("{scheme}://localhost:{MONITORING_PORT}")])
                    .collect(),
            ),
            ports: Some(vec![port("metrics", METRICS_PORT, false)]),
            resources: Some(m.resources.clone().unwrap_or_else(exporter_resources)),
            security_context: Some(restricted()),
            ..Default::default()
        });
    }
    ps.containers = all;
    if let Some(a) = advertise {
        let mut init = ps.init_containers.take().unwrap_or_default();
        init.push(Container {
            name: BOOTCONFIG_CONTAINER.into(),
            image: Some(image(&a.image, &a.tag)),
            image_pull_policy: a.image_pull_policy.map(|p| p.to_string()),
            env: Some(vec![field_env("KUBERNETES_NODE_NAME", "spec.nodeName")]),
            command: Some(
                [
                    "nats-pod-bootconfig",
                    "-f",
                    "/etc/nats-config/advertise/client_advertise.conf",
                    "-gf",
                    "/etc/nats-config/advertise/gateway_advertise.conf",
                ]
                .map(String::from)
                .to_vec(),
            ),
            volume_mounts: Some(vec![mount("advertiseconfig", ADVERTISE_DIR, false)]),
            resources: a.resources.clone(),
            security_context: Some(restricted()),
            ..Default::default()
        });
        ps.init_containers = Some(init);
    }
    ps.volumes = Some(volumes);

    // Pod-level policy.
    ps.hostname = Some(name.clone());
    ps.subdomain = Some(meta.management_service());
    if ps.restart_policy.is_none() {
        ps.restart_policy = Some("Always".into());
    }
    // NATS servers and our sidecars never call the Kubernetes API: no token in the pod
    // (a template that sets a service account may turn it back on).
    if ps.automount_service_account_token.is_none() && ps.service_account_name.is_none() {
        ps.automount_service_account_token = Some(false);
    }
    if !policy.node_selector.is_empty() {
        ps.node_selector = Some(policy.node_selector.clone());
    }
    if !policy.tolerations.is_empty() {
        ps.tolerations = Some(policy.tolerations.clone());
    }
    if let Some(anti) = policy
        .anti_affinity
        .map(|kind| anti_affinity(kind, &meta.name))
    {
        let mut affinity = ps.affinity.take().unwrap_or_default();
        affinity.pod_anti_affinity = Some(anti);
        ps.affinity = Some(affinity);
    }
    if !policy.topology_spread_constraints.is_empty() {
        let mut tsc = policy.topology_spread_constraints.clone();
        for c in &mut tsc {
            if c.label_selector.is_none() {
                c.label_selector = Some(LabelSelector {
                    match_labels: Some(labels::selector(&meta.name)),
                    ..Default::default()
                });
            }
        }
        ps.topology_spread_constraints = Some(tsc);
    }
    if let Some(pc) = non_empty(&policy.priority_class_name) {
        ps.priority_class_name = Some(pc);
    }
    let grace = termination_grace_seconds(spec);
    ps.termination_grace_period_seconds = Some(
        ps.termination_grace_period_seconds
            .map_or(grace, |t| t.max(grace)),
    );
    if ps.security_context.is_none() {
        ps.security_context = Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(meta.namespace.clone()),
            labels: Some(pod_labels),
            annotations: Some(annotations),
            owner_references: meta.owner_references(),
            ..Default::default()
        },
        spec: Some(ps),
        status: None,
    };
    let hash = pod_spec_hash(&pod);
    if let Some(a) = pod.metadata.annotations.as_mut() {
        a.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
        a.insert(POD_SPEC_HASH_ANNOTATION.into(), hash);
    }
    Ok(pod)
}

/// SHA-256 of a pod's labels, annotations (without the two hash annotations) and spec:
/// what [`POD_SPEC_HASH_ANNOTATION`] holds. The config hash is left out on purpose: a
/// config change (a new route after a scale-up) reaches running servers by reload, not
/// by replacing pods.
pub fn pod_spec_hash(pod: &Pod) -> String {
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(POD_SPEC_HASH_ANNOTATION);
    annotations.remove(CONFIG_HASH_ANNOTATION);
    let doc = serde_json::json!({
        "labels": pod.metadata.labels,
        "annotations": annotations,
        "spec": pod.spec,
    });
    sha256_hex(doc.to_string().as_bytes())
}

fn anti_affinity(kind: AntiAffinity, cluster: &str) -> PodAntiAffinity {
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(labels::selector(cluster)),
            ..Default::default()
        }),
        topology_key: "kubernetes.io/hostname".into(),
        ..Default::default()
    };
    match kind {
        AntiAffinity::Required => PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![term]),
            ..Default::default()
        },
        AntiAffinity::Preferred => PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    pod_affinity_term: term,
                    weight: 100,
                },
            ]),
            ..Default::default()
        },
    }
}

/// The JetStream claim of member `pod` when `jetstream.fileStorage` is set:
/// `<name>-data-<pod>`, `ReadWriteOnce` and 10Gi unless the spec says otherwise. It is
/// owned by the NatsCluster only with `reclaimPolicy: Delete`, so `Retain` data survives
/// the cluster's deletion too.
pub fn member_pvc(
    spec: &NatsClusterSpec,
    meta: &ClusterMeta,
    pod: &str,
) -> Option<PersistentVolumeClaim> {
    if !super::jetstream_enabled(spec) {
        return None;
    }
    let fs: &b::FileStorage = spec.jetstream.as_ref()?.file_storage.as_ref()?;
    let size = fs.size.clone().unwrap_or_else(|| Quantity("10Gi".into()));
    Some(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(pvc_name(&meta.name, pod)),
            namespace: Some(meta.namespace.clone()),
            labels: Some(labels::common(&meta.name, [])),
            owner_references: if fs.reclaim_policy == Some(ReclaimPolicy::Delete) {
                meta.owner_references()
            } else {
                None
            },
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![
                fs.access_mode
                    .unwrap_or(AccessMode::ReadWriteOnce)
                    .to_string(),
            ]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size)])),
                ..Default::default()
            }),
            storage_class_name: non_empty(&fs.storage_class_name),
            ..Default::default()
        }),
        status: None,
    })
}
