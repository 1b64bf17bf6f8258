//! Pod networking for the process kubelet: one Linux bridge per test run and, per pod, a
//! network namespace joined to it by a veth pair. Pod IPs are real addresses on a private
//! /16 that exists only on that bridge: no default route is set in a pod and nothing is
//! NATed, so no pod traffic can leave the machine. Everything is named with the run's
//! process id, removed on drop, and leftovers of dead runs are swept at start.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, anyhow, bail};

/// Prefix of every bridge, veth and network namespace name of a run (then the pid).
const BRIDGE_PREFIX: &str = "e2ebr";
const NETNS_PREFIX: &str = "e2epod";
const VETH_PREFIX: &str = "e2v";

/// Bridges and pods of this process (several kubelets may run at once): names stay unique.
static NEXT_BRIDGE: AtomicU32 = AtomicU32::new(0);
static NEXT_POD: AtomicU32 = AtomicU32::new(0);
/// Choosing a free /16 and taking it is one step per process.
static CREATE: Mutex<()> = Mutex::new(());

/// Runs `ip` with `args`; an error carries its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid a name of ours carries (`<prefix><pid>` or `<prefix><pid>-...`/`h`/`p`).
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Removes bridges, veths and network namespaces left by runs whose process is gone.
pub fn sweep_leftovers() {
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner_pid(name, NETNS_PREFIX).is_some_and(|p| !pid_alive(p)) {
                let _ = ip(&["netns", "delete", name]);
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        for l in list.lines() {
            // "12: name@peer: <...>" or "12: name: <...>"
            let Some(name) = l
                .split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n))
            else {
                continue;
            };
            let dead = owner_pid(name, BRIDGE_PREFIX)
                .or_else(|| owner_pid(name, VETH_PREFIX))
                .is_some_and(|p| !pid_alive(p));
            if dead {
                let _ = ip(&["link", "delete", name]);
            }
        }
    }
}

/// One pod's place on the network.
#[derive(Debug, Clone)]
pub struct PodNet {
    /// Network namespace name (`ip netns exec <netns>`).
    pub netns: String,
    /// The pod IP.
    pub ip: Ipv4Addr,
    host_veth: String,
}

/// The run's bridge and the pods on it (see the module documentation).
#[derive(Debug)]
pub struct PodNetwork {
    bridge: String,
    octet: u8,
    pid: u32,
    next: Mutex<u32>,
    live: Mutex<HashSet<(String, String)>>,
}

impl PodNetwork {
    /// Creates the bridge on the first free `10.N.0.0/16` (N in 100..200), after sweeping
    /// what dead runs left behind. Needs root (CAP_NET_ADMIN) and iproute2.
    pub fn create() -> Result<PodNetwork> {
        if !rustix::process::geteuid().is_root() {
            bail!("the process kubelet needs root (network namespaces, bridges, mounts)");
        }
        let _one_at_a_time = CREATE.lock().map_err(|_| anyhow!("poisoned"))?;
        sweep_leftovers();
        let pid = std::process::id();
        let used = ip(&["-o", "-4", "addr", "show"])?;
        let octet = (100u8..200)
            .find(|n| !used.contains(&format!("inet 10.{n}.")))
            .ok_or_else(|| anyhow!("no free 10.N.0.0/16 (N in 100..200) for the pod bridge"))?;
        let bridge = format!(
            "{BRIDGE_PREFIX}{pid}x{}",
            NEXT_BRIDGE.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        let net = PodNetwork {
            bridge: bridge.clone(),
            octet,
            pid,
            next: Mutex::new(2),
            live: Mutex::new(HashSet::new()),
        };
        ip(&["addr", "add", &format!("10.{octet}.0.1/16"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(net)
    }

    /// The bridge's own address: how pods reach the host (and the host reaches pods from).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 1)
    }

    /// A network namespace with `lo` and `eth0` up and a fresh pod IP.
    pub fn add_pod(&self) -> Result<PodNet> {
        let n = {
            let mut next = self.next.lock().map_err(|_| anyhow!("poisoned"))?;
            let n = *next;
            *next += 1;
            n
        };
        if n >= 65_000 {
            bail!("pod IPs of this run exhausted");
        }
        let ipv4 = Ipv4Addr::new(10, self.octet, (n / 256) as u8, (n % 256) as u8);
        let g = NEXT_POD.fetch_add(1, Ordering::Relaxed);
        let netns = format!("{NETNS_PREFIX}{}-{g}", self.pid);
        let host_veth = format!("{VETH_PREFIX}{}h{g}", self.pid);
        let peer = format!("{VETH_PREFIX}{}p{g}", self.pid);
        if host_veth.len() > 15 {
            bail!("interface name {host_veth} too long");
        }
        ip(&["netns", "add", &netns])?;
        if let Ok(mut l) = self.live.lock() {
            l.insert((netns.clone(), host_veth.clone()));
        }
        let pod = PodNet {
            netns: netns.clone(),
            ip: ipv4,
            host_veth: host_veth.clone(),
        };
        let setup = || -> Result<()> {
            ip(&[
                "link", "add", &host_veth, "type", "veth", "peer", "name", &peer,
            ])?;
            ip(&["link", "set", &host_veth, "master", &self.bridge])?;
            ip(&["link", "set", &host_veth, "up"])?;
            ip(&["link", "set", &peer, "netns", &netns])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", netns.as_str()];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["link", "set", &peer, "name", "eth0"])?;
            inside(&["addr", "add", &format!("{ipv4}/16"), "dev", "eth0"])?;
            inside(&["link", "set", "eth0", "up"])?;
            inside(&["link", "set", "lo", "up"])?;
            Ok(())
        };
        if let Err(e) = setup() {
            self.remove_pod(&pod);
            return Err(e);
        }
        Ok(pod)
    }

    /// Removes a pod's namespace and veth (its processes must have ended).
    pub fn remove_pod(&self, pod: &PodNet) {
        let _ = ip(&["link", "delete", &pod.host_veth]);
        let _ = ip(&["netns", "delete", &pod.netns]);
        if let Ok(mut l) = self.live.lock() {
            l.remove(&(pod.netns.clone(), pod.host_veth.clone()));
        }
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        let live: Vec<(String, String)> = self
            .live
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        for (ns, veth) in live {
            let _ = ip(&["link", "delete", &veth]);
            let _ = ip(&["netns", "delete", &ns]);
        }
        let _ = ip(&["link", "delete", &self.bridge]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pids_are_read_from_names() {
        assert_eq!(owner_pid("e2ebr1234", BRIDGE_PREFIX), Some(1234));
        assert_eq!(owner_pid("e2epod77-3", NETNS_PREFIX), Some(77));
        assert_eq!(owner_pid("e2v99h12", VETH_PREFIX), Some(99));
        assert_eq!(owner_pid("eth0", VETH_PREFIX), None);
        assert_eq!(owner_pid("e2vx", VETH_PREFIX), None);
    }
}
