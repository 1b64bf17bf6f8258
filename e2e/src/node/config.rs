//! The node's configuration files, as plain functions of its [`Layout`]: containerd's
//! `config.toml` (version 3, containerd 2.x), the CNI network, the kubelet's and
//! kube-proxy's configuration and CoreDNS's Corefile.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The sandbox image containerd pins (built here from `e2e/node/pause`).
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Where one node keeps everything, and its network.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The node's name (also its hostname override).
    pub node: String,
    /// The run directory; every file, socket and mount of the node is below it.
    pub root: PathBuf,
    /// Built binaries (`e2e/node/build.sh`'s `bin/`).
    pub bin: PathBuf,
    /// CNI plugins (`build.sh`'s `cni/`).
    pub cni_bin: PathBuf,
    /// The bridge pods join.
    pub bridge: String,
    /// Second octet of the pods' `10.N.0.0/16`.
    pub octet: u8,
    /// The cgroup every pod runs under (in each v1 hierarchy), removed with the node.
    pub cgroup_root: String,
    /// The kubeconfig the node's components use.
    pub kubeconfig: PathBuf,
    /// The control plane's client CA: the kubelet authenticates the apiserver with it.
    pub client_ca: PathBuf,
    /// The apiserver's Service ClusterIP range (pods route it to the node for kube-proxy).
    pub service_cidr: String,
}

impl Layout {
    /// The bridge's address: the node IP, the pods' gateway, the DNS server.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 1)
    }
    /// The pods' network.
    pub fn pod_cidr(&self) -> String {
        format!("10.{}.0.0/16", self.octet)
    }
    /// containerd's gRPC socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.root.join("containerd/containerd.sock")
    }
    /// A path below the run directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn quote(p: &std::path::Path) -> String {
    serde_json::to_string(&p.display().to_string()).unwrap_or_default()
}

/// containerd 2.x: CRI with the overlayfs snapshotter, runc through the v2 shim with cgroupfs,
/// CNI from the run's directories, network namespaces under its state directory (so teardown
/// finds them), and the pinned sandbox image. `restrict_oom_score_adj`: this machine refuses
/// negative `oom_score_adj` even to root, as unprivileged containerd setups do.
pub fn containerd_toml(l: &Layout) -> String {
    let c = l.path("containerd");
    format!(
        r#"version = 3
root = {root}
state = {state}

[grpc]
  address = {sock}
[ttrpc]
  address = {ttrpc}

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [{cni_bin}]
    conf_dir = {cni_conf}
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      BinaryName = {runc}
      SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
"#,
        root = quote(&c.join("root")),
        state = quote(&c.join("state")),
        sock = quote(&l.containerd_socket()),
        ttrpc = quote(&c.join("containerd.sock.ttrpc")),
        cni_bin = quote(&l.cni_bin),
        cni_conf = quote(&l.path("cni/conf")),
        runc = quote(&l.bin.join("runc")),
    )
}

/// One bridge network: pods get addresses of the run's /16 from host-local, the bridge is
/// their gateway for Service ClusterIPs only (no default route, nothing masqueraded: no pod
/// traffic leaves the machine); hairpin so a pod reaches itself through a Service.
pub fn cni_conflist(l: &Layout) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "e2e-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": l.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": l.pod_cidr(), "gateway": l.gateway().to_string() }]],
                    "routes": [{ "dst": l.service_cidr }],
                    "dataDir": l.path("cni/ipam").display().to_string(),
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    })
    .to_string()
}

/// The kubelet: cgroupfs on this machine's cgroup v1 (which 1.35+ refuses unless told),
/// its API on the node IP with client certificates of the control plane's CA and webhook
/// authorization, cluster DNS on the gateway, eviction thresholds that a busy test disk does
/// not trip, and everything it writes below the run directory.
pub fn kubelet_yaml(l: &Layout) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup_root}
containerRuntimeEndpoint: unix://{sock}
address: {gw}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {ca}
authorization:
  mode: Webhook
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{gw}]
resolvConf: {resolv}
podLogsDirectory: {logs}
failSwapOn: false
evictionHard:
  nodefs.available: "1%"
  imagefs.available: "1%"
  memory.available: "100Mi"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
"#,
        cgroup_root = l.cgroup_root,
        sock = l.containerd_socket().display(),
        gw = l.gateway(),
        ca = quote(&l.client_ca),
        resolv = quote(&l.path("resolv.conf")),
        logs = quote(&l.path("logs")),
    )
}

/// kube-proxy in iptables mode for ClusterIP Services; it leaves the conntrack table size
/// alone (a sysctl of the machine) and serves neither health nor metrics.
pub fn kube_proxy_yaml(l: &Layout) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: {node}
clusterCIDR: {cidr}
clientConnection:
  kubeconfig: {kubeconfig}
conntrack:
  maxPerCore: 0
healthzBindAddress: ""
metricsBindAddress: ""
nodePortAddresses: [{gw}/32]
"#,
        node = l.node,
        cidr = l.pod_cidr(),
        kubeconfig = quote(&l.kubeconfig),
        gw = l.gateway(),
    )
}

/// CoreDNS on the gateway: Services and pods of the cluster domain from the apiserver, and
/// nothing else (no forwarding off the machine).
pub fn corefile(l: &Layout) -> String {
    format!(
        r#".:53 {{
    bind {gw}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
    }}
    cache 5
}}
"#,
        gw = l.gateway(),
        kubeconfig = l.kubeconfig.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            node: "e2e-node-7".into(),
            root: "/tmp/e2e-node-7".into(),
            bin: "/cache/bin".into(),
            cni_bin: "/cache/cni".into(),
            bridge: "e2enode7".into(),
            octet: 201,
            cgroup_root: "e2e-node-7".into(),
            kubeconfig: "/tmp/e2e-node-7/kubeconfig".into(),
            client_ca: "/tmp/pki/client-ca.crt".into(),
            service_cidr: "10.0.0.0/24".into(),
        }
    }

    #[test]
    fn every_path_the_node_writes_is_below_its_run_directory() {
        let l = layout();
        for text in [containerd_toml(&l), kubelet_yaml(&l), cni_conflist(&l)] {
            for line in text.lines().filter(|l| l.contains("/tmp/")) {
                assert!(
                    line.contains("/tmp/e2e-node-7") || line.contains("/tmp/pki/client-ca.crt"),
                    "{line}"
                );
            }
        }
        assert!(kubelet_yaml(&l).contains("cgroupRoot: /e2e-node-7"));
    }

    #[test]
    fn configs_parse_and_agree_on_the_network() -> anyhow::Result<()> {
        let l = layout();
        let cni: serde_json::Value = serde_json::from_str(&cni_conflist(&l))?;
        assert_eq!(cni["plugins"][0]["bridge"], "e2enode7");
        assert_eq!(cni["plugins"][0]["ipMasq"], false);
        assert_eq!(
            cni["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.201.0.1"
        );
        assert_eq!(cni["plugins"][0]["ipam"]["routes"][0]["dst"], "10.0.0.0/24");
        let kubelet: serde_json::Value = nats_operator::yaml::from_str(&kubelet_yaml(&l))?;
        assert_eq!(kubelet["failCgroupV1"], false);
        assert_eq!(kubelet["clusterDNS"][0], "10.201.0.1");
        assert_eq!(kubelet["address"], "10.201.0.1");
        let proxy: serde_json::Value = nats_operator::yaml::from_str(&kube_proxy_yaml(&l))?;
        assert_eq!(proxy["clusterCIDR"], "10.201.0.0/16");
        assert!(corefile(&l).contains("bind 10.201.0.1"));
        assert!(!corefile(&l).contains("forward"));
        Ok(())
    }
}
