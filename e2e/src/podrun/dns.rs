//! Cluster DNS for the process kubelet's pods, as hosts files: every pod gets one with
//! `localhost`, its own hostname, the `<hostname>.<subdomain>.<ns>.svc[.cluster.local]`
//! names of pods behind a headless Service, and every Service's names mapped to its
//! endpoints (ready pods matching the selector; all of them with
//! `publishNotReadyAddresses`). Short forms (`<svc>`, `<host>.<sub>`) only within the
//! pod's namespace, as the search path would give them. The `kubernetes` Service of
//! namespace `default` (the apiserver) resolves to the kubelet's forwarder to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// A pod the kubelet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.hostname` (default: the name).
    pub hostname: String,
    /// `spec.subdomain`.
    pub subdomain: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Pod IP.
    pub ip: Ipv4Addr,
    /// Ready (all containers ready).
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
}

/// A Service, as far as DNS and endpoints go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Selector (`None`: no endpoints managed for it).
    pub selector: Option<BTreeMap<String, String>>,
    /// `publishNotReadyAddresses`.
    pub publish_not_ready: bool,
    /// `(port, targetPort)` pairs (a named target port resolved to the port itself).
    pub ports: Vec<(u16, u16)>,
}

/// The endpoints of `svc`: IPs of matching pods that are ready and not terminating (or
/// any matching pod with `publishNotReadyAddresses`), sorted.
pub fn endpoints(svc: &ServiceRecord, pods: &[PodRecord]) -> Vec<Ipv4Addr> {
    let Some(sel) = &svc.selector else {
        return Vec::new();
    };
    let mut ips: Vec<Ipv4Addr> = pods
        .iter()
        .filter(|p| p.namespace == svc.namespace)
        .filter(|p| sel.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
        .filter(|p| svc.publish_not_ready || (p.ready && !p.terminating))
        .map(|p| p.ip)
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The name pods reach the apiserver by (`KUBERNETES_SERVICE_HOST`): a name in the
/// apiserver's serving certificate, which has no IP address of the pod network.
pub const API_SERVER_HOST: &str = "kubernetes.default.svc";

/// The hosts file of pod `me` (see the module documentation); `api`: where the apiserver
/// is reached from pods.
pub fn hosts_file(
    me: &PodRecord,
    pods: &[PodRecord],
    services: &[ServiceRecord],
    api: Option<Ipv4Addr>,
) -> String {
    let mut s = String::from(
        "# written by the e2e process kubelet\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n",
    );
    let _ = writeln!(s, "{}\t{}", me.ip, me.hostname);
    if let Some(ip) = api {
        let _ = write!(
            s,
            "{ip}\t{API_SERVER_HOST} {API_SERVER_HOST}.cluster.local kubernetes.default"
        );
        if me.namespace == "default" {
            s.push_str(" kubernetes");
        }
        s.push('\n');
    }
    for p in pods {
        let Some(sub) = &p.subdomain else { continue };
        let headless = services
            .iter()
            .any(|svc| svc.namespace == p.namespace && svc.name == *sub);
        if !headless {
            continue;
        }
        let fq = format!("{}.{}.{}.svc", p.hostname, sub, p.namespace);
        let _ = write!(s, "{}\t{fq} {fq}.cluster.local", p.ip);
        if p.namespace == me.namespace {
            let _ = write!(s, " {}.{}", p.hostname, sub);
        }
        s.push('\n');
    }
    for svc in services {
        let fq = format!("{}.{}.svc", svc.name, svc.namespace);
        for ip in endpoints(svc, pods) {
            let _ = write!(
                s,
                "{ip}\t{fq} {fq}.cluster.local {}.{}",
                svc.name, svc.namespace
            );
            if svc.namespace == me.namespace {
                let _ = write!(s, " {}", svc.name);
            }
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, n: u8, ready: bool) -> PodRecord {
        PodRecord {
            namespace: ns.into(),
            name: name.into(),
            hostname: name.into(),
            subdomain: Some("c-mgmt".into()),
            labels: [("nats_cluster".to_string(), "c".to_string())].into(),
            ip: Ipv4Addr::new(10, 100, 0, n),
            ready,
            terminating: false,
        }
    }

    fn svc(ns: &str, name: &str, not_ready: bool) -> ServiceRecord {
        ServiceRecord {
            namespace: ns.into(),
            name: name.into(),
            selector: Some([("nats_cluster".to_string(), "c".to_string())].into()),
            publish_not_ready: not_ready,
            ports: vec![(4222, 4222)],
        }
    }

    #[test]
    fn hosts_files_resolve_pods_and_services_like_cluster_dns() {
        let pods = vec![
            pod("a", "c-1", 2, true),
            pod("a", "c-2", 3, false),
            pod("b", "c-1", 4, true),
        ];
        let services = vec![
            svc("a", "c", false),
            svc("a", "c-mgmt", true),
            svc("b", "c-mgmt", true),
        ];
        let h = hosts_file(
            &pods[0],
            &pods,
            &services,
            Some(Ipv4Addr::new(10, 100, 0, 1)),
        );
        assert!(h.contains("10.100.0.2\tc-1\n"), "{h}");
        assert!(
            h.contains("10.100.0.1\tkubernetes.default.svc kubernetes.default.svc.cluster.local kubernetes.default\n"),
            "{h}"
        );
        assert!(
            h.contains("10.100.0.3\tc-2.c-mgmt.a.svc c-2.c-mgmt.a.svc.cluster.local c-2.c-mgmt\n"),
            "{h}"
        );
        assert!(
            h.contains("10.100.0.4\tc-1.c-mgmt.b.svc c-1.c-mgmt.b.svc.cluster.local\n"),
            "{h}"
        );
        // Client Service: ready pods only; headless with publishNotReadyAddresses: all.
        assert!(
            h.contains("10.100.0.2\tc.a.svc c.a.svc.cluster.local c.a c\n"),
            "{h}"
        );
        assert!(!h.contains("10.100.0.3\tc.a.svc"), "{h}");
        assert!(h.contains("10.100.0.3\tc-mgmt.a.svc"), "{h}");
        assert_eq!(
            endpoints(&services[0], &pods),
            vec![Ipv4Addr::new(10, 100, 0, 2)]
        );
        let mut gone = pods.clone();
        gone[0].terminating = true;
        assert!(endpoints(&services[0], &gone).is_empty());
    }
}
