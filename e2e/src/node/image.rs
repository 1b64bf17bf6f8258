//! Container images built here, without a registry or Docker: one uncompressed layer of
//! files, an OCI image config and manifest, written as an OCI image-layout archive that
//! `ctr images import` takes. The reference is stored in the index the way containerd reads
//! it (`io.containerd.image.name`), normalized as the kubelet normalizes what a pod names
//! (`nats:2.15.3` is `docker.io/library/nats:2.15.3`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

/// One file of the image's only layer.
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// Absolute path inside the image (`/nats-server`).
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Where its bytes come from.
    pub source: FileSource,
}

/// The bytes of an [`ImageFile`].
#[derive(Debug, Clone)]
pub enum FileSource {
    /// A file on this machine.
    Host(PathBuf),
    /// Literal contents.
    Bytes(Vec<u8>),
}

/// What an image is: its reference, files and runtime config.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// The reference a pod names (`nats:2.15.3`, `ghcr.io/org/app:1.0`).
    pub reference: String,
    /// The layer's files; their parent directories are added.
    pub files: Vec<ImageFile>,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `ENV` as `NAME=value`.
    pub env: Vec<String>,
    /// `USER` (`uid:gid`), empty for root.
    pub user: String,
    /// `EXPOSE`d ports (`4222/tcp`).
    pub exposed_ports: Vec<String>,
}

/// The fully qualified form of an image reference, as the kubelet and containerd resolve it:
/// a first component without a dot, colon or `localhost` is a Docker Hub repository, a
/// single-component one is under `library/`, and a missing tag is `latest`.
pub fn normalize_reference(reference: &str) -> Result<String> {
    if reference.is_empty() || reference.starts_with(':') || reference.contains(char::is_whitespace)
    {
        bail!("invalid image reference {reference:?}");
    }
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo, tag) = match last.rsplit_once(':') {
        Some((_, t)) => (&name[..name.len() - t.len() - 1], Some(t)),
        None => (name, None),
    };
    if repo.is_empty() || repo != repo.to_ascii_lowercase() {
        bail!(
            "invalid image reference {reference:?}: the repository must be lowercase and not empty"
        );
    }
    let first = repo.split('/').next().unwrap_or(repo);
    let hosted =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = match (hosted, repo.contains('/')) {
        (true, _) => repo.to_string(),
        (false, true) => format!("docker.io/{repo}"),
        (false, false) => format!("docker.io/library/{repo}"),
    };
    Ok(match (tag, digest) {
        (_, Some(d)) => format!("{full}@{d}"),
        (Some(t), None) => format!("{full}:{t}"),
        (None, None) => format!("{full}:latest"),
    })
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

fn append(tar: &mut tar::Builder<impl Write>, path: &str, mode: u32, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
        .with_context(|| format!("adding {path}"))
}

/// The uncompressed layer tar: parent directories first, then each file, owned by root.
fn layer(files: &[ImageFile]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let rel = f.path.trim_start_matches('/');
        let mut parent = Path::new(rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(format!("{}/", p.display()));
            parent = p.parent();
        }
    }
    for d in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Directory);
        tar.append_data(&mut header, d, std::io::empty())
            .with_context(|| format!("adding {d}"))?;
    }
    for f in files {
        let data = match &f.source {
            FileSource::Host(p) => std::fs::read(p)
                .with_context(|| format!("reading {} for the image", p.display()))?,
            FileSource::Bytes(b) => b.clone(),
        };
        append(&mut tar, f.path.trim_start_matches('/'), f.mode, &data)?;
    }
    tar.into_inner().context("finishing the layer")
}

/// Writes `spec` as an OCI image-layout archive at `out`; returns the normalized reference.
pub fn write_archive(spec: &ImageSpec, out: &Path) -> Result<String> {
    let name = normalize_reference(&spec.reference)?;
    let layer = layer(&spec.files)?;
    let layer_digest = sha256(&layer);
    let mut config = json!({
        "Entrypoint": spec.entrypoint,
        "Env": spec.env,
    });
    if !spec.cmd.is_empty() {
        config["Cmd"] = json!(spec.cmd);
    }
    if !spec.user.is_empty() {
        config["User"] = json!(spec.user);
    }
    if !spec.exposed_ports.is_empty() {
        config["ExposedPorts"] = spec
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    append(
        &mut tar,
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    for blob in [&layer, &config, &manifest] {
        let digest = sha256(blob);
        let hex = digest.trim_start_matches("sha256:");
        append(&mut tar, &format!("blobs/sha256/{hex}"), 0o644, blob)?;
    }
    append(&mut tar, "index.json", 0o644, &index)?;
    tar.into_inner()
        .context("finishing the archive")?
        .flush()
        .context("writing the archive")?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn references_normalize_as_the_kubelet_resolves_them() -> Result<()> {
        let n = normalize_reference;
        assert_eq!(n("nats:2.15.3")?, "docker.io/library/nats:2.15.3");
        assert_eq!(n("nats")?, "docker.io/library/nats:latest");
        assert_eq!(
            n("synadia/nats-server:nightly")?,
            "docker.io/synadia/nats-server:nightly"
        );
        assert_eq!(
            n("ghcr.io/nats-operator-rs/nats-operator:0.1.0")?,
            "ghcr.io/nats-operator-rs/nats-operator:0.1.0"
        );
        assert_eq!(n("localhost:5000/nats:1")?, "localhost:5000/nats:1");
        assert_eq!(
            n("registry.k8s.io/pause:3.10")?,
            "registry.k8s.io/pause:3.10"
        );
        // What the Go operator's NatsClusters made before defaults were applied.
        assert!(n(":2.9.10").is_err());
        assert!(n("NATS:2").is_err());
        Ok(())
    }

    #[test]
    fn the_archive_is_an_oci_layout_whose_digests_match() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("img.tar");
        let spec = ImageSpec {
            reference: "nats:0.0.1".into(),
            files: vec![ImageFile {
                path: "/bin/tool".into(),
                mode: 0o755,
                source: FileSource::Bytes(b"#!/bin/true\n".to_vec()),
            }],
            entrypoint: vec!["/bin/tool".into()],
            user: "65532:65532".into(),
            ..ImageSpec::default()
        };
        assert_eq!(write_archive(&spec, &out)?, "docker.io/library/nats:0.0.1");
        let mut entries = std::collections::BTreeMap::new();
        let mut archive = tar::Archive::new(std::fs::File::open(&out)?);
        for e in archive.entries()? {
            let mut e = e?;
            let path = e.path()?.display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            entries.insert(path, data);
        }
        for (path, data) in &entries {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256(data), format!("sha256:{hex}"), "{path}");
            }
        }
        let blob = |digest: &serde_json::Value| -> Result<serde_json::Value> {
            let hex = digest
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("sha256:");
            let data = entries
                .get(&format!("blobs/sha256/{hex}"))
                .with_context(|| format!("no blob {hex}"))?;
            Ok(serde_json::from_slice(data).unwrap_or(serde_json::Value::Null))
        };
        let index: serde_json::Value = serde_json::from_slice(&entries["index.json"])?;
        let m = &index["manifests"][0];
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "docker.io/library/nats:0.0.1"
        );
        let manifest = blob(&m["digest"])?;
        let config = blob(&manifest["config"]["digest"])?;
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "/bin/tool");
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            manifest["layers"][0]["digest"]
        );
        let hex = manifest["layers"][0]["digest"].as_str().unwrap_or_default();
        let layer = &entries[&format!("blobs/sha256/{}", hex.trim_start_matches("sha256:"))];
        let mut names = Vec::new();
        for e in tar::Archive::new(&layer[..]).entries()? {
            names.push(e?.path()?.display().to_string());
        }
        assert_eq!(names, ["bin/", "bin/tool"]);
        Ok(())
    }
}
