//! The script that starts one container of a pod: run inside the pod's network namespace
//! and a private mount namespace (`ip netns exec <ns> unshare --mount --propagation private
//! sh -c <script> sh <argv>...`), it builds the container's root and `exec`s the command
//! chrooted into it, as the container's user. Nothing it mounts is visible outside.
//!
//! The root is a tmpfs whose top-level entries are the host's, bind-mounted (symlinks such
//! as `bin -> usr/bin` recreated), except:
//! * `/tmp`: fresh and empty, like a container's;
//! * a top-level directory under which a volume must be mounted (`/etc` for
//!   `/etc/nats-config`, `/run` for `/var/run/nats`, which is `/run/nats` on the host) is an
//!   overlay of the host's, so mount points can be made without touching the host;
//! * a top-level directory the host lacks (`/data` for `/data/jetstream`) is made in the tmpfs.
//!
//! The volumes (directories the kubelet keeps) are bind-mounted at their mount paths,
//! read-only where the pod says so, and the pod's hosts file over `/etc/hosts`: cluster DNS
//! names resolve without editing the rendered config.

use std::path::{Component, Path, PathBuf};

/// A volume mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory (or file, for a `subPath` of a file) on the host.
    pub source: PathBuf,
    /// The mount path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// `source` is a file.
    pub is_file: bool,
}

/// Everything the start script needs.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Where the container's root is mounted (an empty directory of the kubelet's).
    pub root: PathBuf,
    /// Where overlay upper and work directories go.
    pub overlay_dir: PathBuf,
    /// The volume mounts.
    pub mounts: Vec<Mount>,
    /// The pod's hosts file.
    pub hosts: PathBuf,
    /// `(uid, gid)` to run as, and supplementary groups (`fsGroup`).
    pub user: Option<(u32, u32, Vec<u32>)>,
    /// The container's working directory, if set.
    pub working_dir: Option<String>,
}

/// A top-level entry of the host's root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory (bind-mounted, or overlaid).
    Dir(String),
    /// A symbolic link and its target.
    Link(String, String),
}

/// Reads the host's top-level entries (skipping `/tmp` and `lost+found`).
pub fn host_entries() -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "tmp" || name == "lost+found" {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_symlink() {
            if let Ok(t) = std::fs::read_link(e.path()) {
                out.push(Entry::Link(name, t.to_string_lossy().into_owned()));
            }
        } else if ft.is_dir() {
            out.push(Entry::Dir(name));
        }
    }
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

/// The host path `target` resolves to: its longest existing prefix canonicalized (so
/// `/var/run/nats` is `/run/nats` where `/var/run -> /run`), the rest appended.
pub fn resolve_on_host(target: &str) -> PathBuf {
    let path = Path::new(target);
    let mut existing = PathBuf::from("/");
    let mut rest = Vec::new();
    let comps: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            _ => None,
        })
        .collect();
    let mut i = 0;
    while i < comps.len() {
        let next = existing.join(&comps[i]);
        if std::fs::symlink_metadata(&next).is_err() {
            break;
        }
        existing = next;
        i += 1;
    }
    rest.extend(comps[i..].iter().cloned());
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for r in rest {
        out.push(r);
    }
    out
}

fn top_level(p: &Path) -> Option<String> {
    p.components().find_map(|c| match c {
        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
        _ => None,
    })
}

/// Single-quotes `s` for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The start script (see the module documentation). `resolve` maps a container path to
/// the host path it would be ([`resolve_on_host`] outside tests). The command and its
/// arguments are the script's positional parameters.
pub fn script(l: &Launch, entries: &[Entry], resolve: impl Fn(&str) -> PathBuf) -> String {
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let mut overlay = Vec::<String>::new();
    let mut create = Vec::<String>::new();
    for m in &l.mounts {
        let host = resolve(&m.target);
        let Some(top) = top_level(&host) else {
            continue;
        };
        let exists = entries
            .iter()
            .any(|e| matches!(e, Entry::Dir(d) if *d == top));
        let list = if exists { &mut overlay } else { &mut create };
        if !list.contains(&top) {
            list.push(top);
        }
    }
    let mut s = String::from("set -e\n");
    s += &format!("R={}\n", q(&l.root));
    s += "mount -t tmpfs -o mode=0755 e2e-rootfs \"$R\"\n";
    for e in entries {
        match e {
            Entry::Link(name, target) => {
                s += &format!("ln -s {} \"$R\"/{}\n", sh_quote(target), sh_quote(name));
            }
            Entry::Dir(name) if overlay.contains(name) => {
                let up = l.overlay_dir.join(name).join("up");
                let work = l.overlay_dir.join(name).join("work");
                s += &format!("mkdir -p {} {}\n", q(&up), q(&work));
                s += &format!("mkdir \"$R\"/{}\n", sh_quote(name));
                let opts = format!(
                    "lowerdir=/{name},upperdir={},workdir={}",
                    up.display(),
                    work.display()
                );
                s += &format!(
                    "mount -t overlay e2e-overlay -o {} \"$R\"/{}\n",
                    sh_quote(&opts),
                    sh_quote(name)
                );
            }
            Entry::Dir(name) => {
                s += &format!(
                    "mkdir \"$R\"/{n}\nmount --rbind /{n} \"$R\"/{n}\n",
                    n = sh_quote(name)
                );
            }
        }
    }
    s += "mkdir -m 1777 \"$R\"/tmp\n";
    for c in &create {
        s += &format!("mkdir -p \"$R\"/{}\n", sh_quote(c));
    }
    for m in &l.mounts {
        let host = resolve(&m.target);
        let inside = format!("\"$R\"{}", sh_quote(&host.to_string_lossy()));
        if m.is_file {
            let parent = host.parent().unwrap_or(Path::new("/"));
            s += &format!("mkdir -p \"$R\"{}\n", q(parent));
            s += &format!("[ -e {inside} ] || touch {inside}\n");
        } else {
            s += &format!("mkdir -p {inside}\n");
        }
        s += &format!("mount --bind {} {inside}\n", q(&m.source));
        if m.read_only {
            s += &format!("mount -o remount,bind,ro {inside}\n");
        }
    }
    s += &format!("mount --bind {} \"$R\"/etc/hosts\n", q(&l.hosts));
    let mut chroot = String::from("exec chroot");
    if let Some((uid, gid, groups)) = &l.user {
        chroot += &format!(" --userspec={uid}:{gid}");
        if !groups.is_empty() {
            let g: Vec<String> = groups.iter().map(u32::to_string).collect();
            chroot += &format!(" --groups={}", g.join(","));
        }
    }
    chroot += " \"$R\"";
    if let Some(wd) = &l.working_dir {
        chroot += &format!(" env -C {}", sh_quote(wd));
    }
    s += &chroot;
    s += " \"$@\"\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            root: "/k/pod/c/root".into(),
            overlay_dir: "/k/pod/c/ov".into(),
            mounts: vec![
                Mount {
                    source: "/k/vol/config".into(),
                    target: "/etc/nats-config".into(),
                    read_only: true,
                    is_file: false,
                },
                Mount {
                    source: "/k/vol/pid".into(),
                    target: "/var/run/nats".into(),
                    read_only: false,
                    is_file: false,
                },
                Mount {
                    source: "/k/pvc/js".into(),
                    target: "/data/jetstream".into(),
                    read_only: false,
                    is_file: false,
                },
            ],
            hosts: "/k/pod/hosts".into(),
            user: Some((1000, 1000, vec![1000])),
            working_dir: None,
        }
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry::Link("bin".into(), "usr/bin".into()),
            Entry::Dir("etc".into()),
            Entry::Dir("run".into()),
            Entry::Dir("usr".into()),
            Entry::Dir("var".into()),
        ]
    }

    fn resolve(p: &str) -> PathBuf {
        PathBuf::from(p.replace("/var/run", "/run"))
    }

    #[test]
    fn overlays_where_mount_points_are_needed_and_binds_the_rest() {
        let s = script(&launch(), &entries(), resolve);
        assert!(s.contains("mount -t overlay e2e-overlay -o 'lowerdir=/etc,upperdir=/k/pod/c/ov/etc/up,workdir=/k/pod/c/ov/etc/work' \"$R\"/'etc'"), "{s}");
        assert!(s.contains("lowerdir=/run,"), "{s}");
        assert!(s.contains("mount --rbind /'usr' \"$R\"/'usr'"), "{s}");
        assert!(s.contains("mount --rbind /'var' \"$R\"/'var'"), "{s}");
        assert!(!s.contains("lowerdir=/var"), "{s}");
        assert!(s.contains("ln -s 'usr/bin' \"$R\"/'bin'"), "{s}");
        assert!(s.contains("mkdir -p \"$R\"/'data'"), "{s}");
        assert!(
            s.contains("mount --bind '/k/vol/pid' \"$R\"'/run/nats'"),
            "{s}"
        );
        assert!(
            s.contains("mount -o remount,bind,ro \"$R\"'/etc/nats-config'"),
            "{s}"
        );
        assert!(!s.contains("remount,bind,ro \"$R\"'/run/nats'"), "{s}");
        assert!(
            s.contains("mount --bind '/k/pod/hosts' \"$R\"/etc/hosts"),
            "{s}"
        );
        assert!(
            s.ends_with("exec chroot --userspec=1000:1000 --groups=1000 \"$R\" \"$@\"\n"),
            "{s}"
        );
    }

    #[test]
    fn quotes_survive_hostile_paths() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        let mut l = launch();
        l.working_dir = Some("/w d'x".into());
        l.user = None;
        let s = script(&l, &entries(), resolve);
        assert!(
            s.ends_with("exec chroot \"$R\" env -C '/w d'\\''x' \"$@\"\n"),
            "{s}"
        );
    }

    #[test]
    fn resolves_symlinked_prefixes_on_this_host() {
        // Whatever the host: a path under a missing top level stays as it is.
        assert_eq!(
            resolve_on_host("/no-such-top-e2e/x/y"),
            PathBuf::from("/no-such-top-e2e/x/y")
        );
        let tmp = std::env::temp_dir().canonicalize().expect("tmp");
        assert_eq!(
            resolve_on_host(&format!("{}/a/b", tmp.display())),
            tmp.join("a/b")
        );
    }
}
