//! What a node run creates on the machine besides its directory, and how it goes away: the
//! bridge, the cgroup (one directory in every v1 hierarchy), the processes (components,
//! containerd's shims, containers), the mounts below the run directory and kube-proxy's
//! iptables rules. [`sweep_leftovers`] does the same for runs whose process is gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use super::{BRIDGE_PREFIX, Layout, RUN_PREFIX};
use crate::podrun::network::ip;

const CGROUP_FS: &str = "/sys/fs/cgroup";

/// Held while a node of this process is removed (see `prepare`).
pub(super) static LIFECYCLE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The first `10.N.0.0/16` (N in 200..250) no interface of the machine uses: the process
/// kubelet takes 100..200.
pub(super) fn free_octet() -> Result<u8> {
    let used = ip(&["-o", "-4", "addr", "show"])?;
    (200u8..250)
        .find(|n| !used.contains(&format!("inet 10.{n}.")))
        .ok_or_else(|| anyhow!("no free 10.N.0.0/16 (N in 200..250) for the node's pods"))
}

/// The node's bridge with the node IP (the pods' gateway) on it.
pub(super) fn create_bridge(l: &Layout) -> Result<()> {
    ip(&["link", "add", &l.bridge, "type", "bridge"])?;
    ip(&[
        "addr",
        "add",
        &format!("{}/16", l.gateway()),
        "dev",
        &l.bridge,
    ])?;
    ip(&["link", "set", &l.bridge, "up"])?;
    Ok(())
}

/// Where cgroups are made: every v1 hierarchy, or the one unified tree of a cgroup v2 host.
fn hierarchies() -> Vec<PathBuf> {
    if Path::new(CGROUP_FS).join("cgroup.controllers").is_file() {
        return vec![PathBuf::from(CGROUP_FS)];
    }
    let Ok(rd) = std::fs::read_dir(CGROUP_FS) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").is_file() && !p.ends_with("unified"))
        .collect()
}

/// The run's cgroup root in every hierarchy; cpuset's needs the parent's CPUs and memory
/// nodes before anything can join it.
pub(super) fn create_cgroups(l: &Layout) -> Result<()> {
    for h in hierarchies() {
        let dir = h.join(&l.cgroup_root);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if h.ends_with("cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = std::fs::read_to_string(h.join(f)).unwrap_or_default();
                std::fs::write(dir.join(f), v.trim())
                    .with_context(|| format!("writing {}", dir.join(f).display()))?;
            }
        }
    }
    Ok(())
}

/// Every process in the run's cgroup tree (the containers): from the pids hierarchy (v1) or
/// the unified tree (v2).
fn cgroup_pids(cgroup_root: &str) -> Vec<i32> {
    pids_below(&pids_hierarchy().join(cgroup_root))
}

/// The processes of the cgroup named `name` (a container's id: the kubelet's cgroupfs
/// driver names a container's cgroup after it) below the run's cgroup root, with its
/// children's.
pub(super) fn named_cgroup_pids(cgroup_root: &str, name: &str) -> Vec<i32> {
    let mut stack = vec![pids_hierarchy().join(cgroup_root)];
    while let Some(dir) = stack.pop() {
        if dir.file_name().is_some_and(|n| n == name) {
            return pids_below(&dir);
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            stack.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    Vec::new()
}

/// The hierarchy that lists processes: pids (v1) or the unified tree (v2).
fn pids_hierarchy() -> PathBuf {
    let v1 = Path::new(CGROUP_FS).join("pids");
    if v1.is_dir() {
        v1
    } else {
        PathBuf::from(CGROUP_FS)
    }
}

/// Every process in the cgroup `dir` and its descendants.
fn pids_below(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            stack.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    pids
}

/// containerd's shims of the run (they outlive containerd): their command line names the
/// run's socket.
fn shim_pids(root: &Path) -> Vec<i32> {
    let needle = root.display().to_string();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("containerd-shim") && c.contains(&needle)
            })
        })
        .collect()
}

fn kill(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Mount points below `root`, deepest first.
fn mounts_below(root: &Path) -> Vec<String> {
    let prefix = root.display().to_string();
    let mut found: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.len()));
    found.dedup();
    found
}

/// Removes a cgroup tree, children first (a cgroup is removed with rmdir once empty).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Stops the node's components (the kubelet first, so it restarts nothing), kills its
/// containers and shims, removes kube-proxy's rules, mounts, cgroups, bridge and directory.
pub(super) fn stop(l: &Layout, children: &mut [(String, Child)]) {
    let _removing = LIFECYCLE.lock();
    for (name, child) in children.iter_mut() {
        if name == "kubelet" {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    remove(l, children);
}

fn remove(l: &Layout, children: &mut [(String, Child)]) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> = cgroup_pids(&l.cgroup_root)
            .into_iter()
            .chain(shim_pids(&l.root))
            .collect();
        if pids.is_empty() || Instant::now() > until {
            break;
        }
        pids.into_iter().for_each(kill);
        std::thread::sleep(Duration::from_millis(100));
    }
    for (_, child) in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(kube_proxy) = Some(l.bin.join("kube-proxy")).filter(|p| p.is_file()) {
        let _ = Command::new(kube_proxy).arg("--cleanup").output();
    }
    remove_kubelet_chains();
    for m in mounts_below(&l.root) {
        let _ = Command::new("umount").args(["--lazy", &m]).output();
    }
    for h in hierarchies() {
        remove_cgroup_tree(&h.join(&l.cgroup_root));
    }
    let _ = ip(&["link", "delete", &l.bridge]);
    if mounts_below(&l.root).is_empty() {
        let _ = std::fs::remove_dir_all(&l.root);
    }
}

/// The chains the kubelet adds to the machine's tables (kube-proxy's own are gone with
/// `kube-proxy --cleanup`): their jumps from built-in chains first, then the chains.
const KUBELET_CHAINS: [&str; 3] = ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"];

fn remove_kubelet_chains() {
    for tool in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle"] {
            let Ok(out) = Command::new(tool).args(["-w", "-t", table, "-S"]).output() else {
                continue;
            };
            let rules = String::from_utf8_lossy(&out.stdout).into_owned();
            for rule in rules.lines() {
                let jumps_to_ours = KUBELET_CHAINS
                    .iter()
                    .any(|c| rule.ends_with(&format!("-j {c}")));
                let in_ours = KUBELET_CHAINS
                    .iter()
                    .any(|c| rule.starts_with(&format!("-A {c} ")));
                if let (true, false, Some(rest)) =
                    (jumps_to_ours, in_ours, rule.strip_prefix("-A "))
                {
                    let _ = Command::new(tool)
                        .args(["-w", "-t", table, "-D"])
                        .args(rest.split_whitespace())
                        .output();
                }
            }
            for chain in KUBELET_CHAINS {
                if rules.contains(&format!("-N {chain}")) {
                    let _ = Command::new(tool)
                        .args(["-w", "-t", table, "-F", chain])
                        .output();
                    let _ = Command::new(tool)
                        .args(["-w", "-t", table, "-X", chain])
                        .output();
                }
            }
        }
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `<pid>` and `<n>` of a run id `e2e-node-<pid>-<n>`.
fn run_owner(id: &str) -> Option<(u32, u32)> {
    let (pid, n) = id.strip_prefix(RUN_PREFIX)?.split_once('-')?;
    Some((pid.parse().ok()?, n.parse().ok()?))
}

/// Removes what runs whose process is gone left behind (a killed test process).
pub(super) fn sweep_leftovers() {
    let mut ids = std::collections::BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        ids.extend(
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string)),
        );
    }
    for h in hierarchies() {
        if let Ok(rd) = std::fs::read_dir(&h) {
            ids.extend(
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string)),
            );
        }
    }
    for id in ids {
        let Some((pid, n)) = run_owner(&id) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let layout = Layout {
            node: id.clone(),
            root: std::env::temp_dir().join(&id),
            bin: PathBuf::new(),
            cni_bin: PathBuf::new(),
            bridge: format!("{BRIDGE_PREFIX}{pid}x{n}"),
            octet: 0,
            cgroup_root: id.clone(),
            kubeconfig: PathBuf::new(),
            client_ca: PathBuf::new(),
            service_cidr: String::new(),
        };
        tracing::info!(run = %id, "removing a dead node run's leftovers");
        remove(&layout, &mut []);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_their_process() {
        assert_eq!(run_owner("e2e-node-1234-0"), Some((1234, 0)));
        assert_eq!(run_owner("e2e-node-1234"), None);
        assert_eq!(run_owner("kubepods"), None);
    }
}
