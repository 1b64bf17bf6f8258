//! Pod volumes as directories on the host, kept as a kubelet keeps them: Secret and
//! ConfigMap volumes are written the way the kubelet's atomic writer does (files are
//! symlinks into `..data`, which points at a timestamped directory and is swapped in one
//! rename), so consumers that watch mounted Secrets see real updates; emptyDirs are empty
//! and writable by anyone; a PersistentVolumeClaim is a directory of the run that outlives
//! the pod (a replaced pod finds its data).

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Files of a projected volume: relative path -> (content, mode).
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// What `dir` currently shows through `..data` (empty when never written).
pub fn current(dir: &Path) -> Files {
    let mut out = Files::new();
    let data = dir.join("..data");
    fn walk(base: &Path, at: &Path, out: &mut Files) {
        let Ok(rd) = std::fs::read_dir(at) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let (Ok(rel), Ok(bytes), Ok(meta)) = (
                p.strip_prefix(base),
                std::fs::read(&p),
                std::fs::metadata(&p),
            ) {
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    (bytes, meta.permissions().mode() & 0o7777),
                );
            }
        }
    }
    walk(&data, &data, &mut out);
    out
}

/// Makes `dir` show exactly `files` (atomically, see the module documentation); does
/// nothing when it already does. `gid`: group owner of the files (`fsGroup`).
pub fn write_atomic(dir: &Path, files: &Files, gid: Option<u32>) -> Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if current(dir) == *files && dir.join("..data").exists() {
        return Ok(false);
    }
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    let ts = format!("..{}_{}", std::process::id(), generation);
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir)?;
    for (rel, (bytes, mode)) in files {
        let path = ts_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))?;
        if let Some(g) = gid {
            std::os::unix::fs::chown(&path, None, Some(g))?;
        }
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&ts, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    // Top-level names point through ..data; names gone from the set are removed.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .map(|k| k.split('/').next().unwrap_or(k).to_string())
        .collect();
    for t in &tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(t), &link)?;
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !tops.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// An empty directory anyone can write (an emptyDir; the sticky bit keeps it fair).
pub fn empty_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// A directory for a PersistentVolumeClaim, shared by every pod that mounts the claim and
/// kept when they go; group-owned by `gid` (the pod's `fsGroup`) and group-writable.
pub fn claim_dir(root: &Path, namespace: &str, claim: &str, gid: Option<u32>) -> Result<PathBuf> {
    let dir = root.join("pvc").join(namespace).join(claim);
    std::fs::create_dir_all(&dir)?;
    if let Some(g) = gid {
        std::os::unix::fs::chown(&dir, None, Some(g))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2775))?;
    }
    Ok(dir)
}

/// The files of a Secret or ConfigMap volume: every key, or only `items` (key -> path,
/// mode), with `default_mode` (the API's default 0644).
pub fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[(String, String, Option<i32>)]>,
    default_mode: Option<i32>,
) -> std::result::Result<Files, String> {
    let mode = default_mode.unwrap_or(0o644) as u32 & 0o777;
    let mut out = Files::new();
    match items {
        None => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), mode));
            }
        }
        Some(items) => {
            for (key, path, m) in items {
                let v = data
                    .get(key)
                    .ok_or_else(|| format!("key {key:?} not found"))?;
                out.insert(
                    path.clone(),
                    (v.clone(), m.map(|m| m as u32 & 0o777).unwrap_or(mode)),
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_swap_data_and_only_when_changed() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().join("vol");
        let mut files = Files::new();
        files.insert("nats.conf".into(), (b"port: 4222\n".to_vec(), 0o644));
        files.insert("auth.json".into(), (b"{}".to_vec(), 0o600));
        assert!(write_atomic(&d, &files, None).expect("write"));
        assert!(!write_atomic(&d, &files, None).expect("rewrite"));
        assert_eq!(
            std::fs::read_to_string(d.join("nats.conf")).expect("read"),
            "port: 4222\n"
        );
        assert_eq!(
            std::fs::read_link(d.join("nats.conf")).expect("link"),
            Path::new("..data/nats.conf")
        );
        let first = std::fs::read_link(d.join("..data")).expect("..data");
        files.remove("auth.json");
        files.insert("nats.conf".into(), (b"port: 4223\n".to_vec(), 0o644));
        assert!(write_atomic(&d, &files, None).expect("update"));
        assert_ne!(std::fs::read_link(d.join("..data")).expect("..data"), first);
        assert!(!d.join(&first).exists(), "old generation removed");
        assert!(std::fs::symlink_metadata(d.join("auth.json")).is_err());
        assert_eq!(current(&d), files);
    }

    #[test]
    fn items_select_and_rename_keys() {
        let mut data = BTreeMap::new();
        data.insert("ca.crt".to_string(), b"CA".to_vec());
        data.insert("tls.key".to_string(), b"K".to_vec());
        let all = project(&data, None, None).expect("all");
        assert_eq!(all.len(), 2);
        assert_eq!(all["ca.crt"].1, 0o644);
        let items = [(
            "tls.key".to_string(),
            "keys/server.key".to_string(),
            Some(0o400),
        )];
        let some = project(&data, Some(&items), Some(0o640)).expect("items");
        assert_eq!(some.len(), 1);
        assert_eq!(some["keys/server.key"], (b"K".to_vec(), 0o400));
        let missing = [("nope".to_string(), "x".to_string(), None)];
        assert!(project(&data, Some(&missing), None).is_err());
    }
}
