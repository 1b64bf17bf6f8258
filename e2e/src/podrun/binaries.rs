//! Which local program a container runs: the process kubelet has no images, so it maps a
//! container's image and command to binaries on this machine. `nats-server` (and the Go
//! operator's paths `/nats-server`, `/gnatsd`, `/bin/nats-server`) becomes the local
//! nats-server whose `--version` matches the image tag; `/nats-operator` becomes the
//! operator binary built from this workspace. Anything else cannot run here, and the pod
//! says so in its container status (`ErrImageNeverPull`), as a kubelet that cannot pull would.

use std::path::{Path, PathBuf};

/// The local binaries the kubelet can run.
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    /// `(version, path)` of every nats-server found, newest first.
    pub nats: Vec<(String, PathBuf)>,
    /// The `nats-operator` binary.
    pub operator: Option<PathBuf>,
    /// After [`Binaries::install_into`]: the host directory that every container gets
    /// read-only at [`CONTAINER_BIN_DIR`] (the paths above are then container paths).
    pub host_dir: Option<PathBuf>,
}

/// Where containers find the kubelet's binaries (a top-level directory no host has).
pub const CONTAINER_BIN_DIR: &str = "/.e2e-bin";

use crate::natsbin;

impl Binaries {
    /// The nats-server releases of `e2e/nats/versions`, built from their Go modules by
    /// `e2e/nats/build.sh` (cached by version), or the ones `NATS_SERVER_BINS` names.
    pub fn discover(operator: Option<PathBuf>) -> Result<Binaries, String> {
        let found = natsbin::nats_binaries(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))?;
        let mut nats = found.servers;
        nats.reverse();
        Ok(Binaries {
            nats,
            operator,
            host_dir: None,
        })
    }

    /// Puts every binary under `dir` (world-readable and executable, as an image layer
    /// is), so containers running as a non-root user can execute them wherever they came
    /// from (`/root/.pyenv/...` is not reachable for uid 1000). Hard links where possible.
    pub fn install_into(&mut self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        let place = |from: &Path, name: &str| -> std::io::Result<PathBuf> {
            let to = dir.join(name);
            if std::fs::hard_link(from, &to).is_err() {
                std::fs::copy(from, &to)?;
            }
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
            Ok(Path::new(CONTAINER_BIN_DIR).join(name))
        };
        for (v, p) in self.nats.iter_mut() {
            *p = place(p, &format!("nats-server-{v}"))?;
        }
        if let Some(op) = self.operator.as_mut() {
            *op = place(op, "nats-operator")?;
        }
        self.host_dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// The nats-server versions available, newest first.
    pub fn versions(&self) -> Vec<String> {
        self.nats.iter().map(|(v, _)| v.clone()).collect()
    }

    /// The nats-server for an image tag: an exact version, or the newest with that prefix
    /// (`2.9` -> `2.9.10`); `latest` or no tag: the newest.
    pub fn nats_for_tag(&self, tag: Option<&str>) -> Option<&Path> {
        let tag = tag.map(|t| t.split('-').next().unwrap_or(t).trim_start_matches('v'));
        match tag {
            None | Some("latest") | Some("") => self.nats.first().map(|(_, p)| p.as_path()),
            Some(t) => self
                .nats
                .iter()
                .find(|(v, _)| v == t || v.starts_with(&format!("{t}.")))
                .map(|(_, p)| p.as_path()),
        }
    }

    /// The host program for a container: `Ok(argv)` with `argv[0]` replaced by a local
    /// binary, or `Err(message)` saying why it cannot run here.
    pub fn resolve(&self, image: &str, argv: &[String]) -> Result<Vec<String>, String> {
        let (repo, tag) = split_image(image);
        let base = repo.rsplit('/').next().unwrap_or(repo);
        let mut argv = argv.to_vec();
        if argv.is_empty()
            && let Some(entrypoint) = entrypoint(image)
        {
            argv.push(entrypoint.into());
        }
        let Some(cmd) = argv.first().cloned() else {
            return Err(format!("image {image}: no command and no known entrypoint"));
        };
        let prog = cmd.rsplit('/').next().unwrap_or(&cmd);
        let local = match prog {
            "nats-server" | "gnatsd" => {
                let found = if base == "nats" {
                    self.nats_for_tag(tag)
                } else {
                    self.nats_for_tag(None)
                };
                found.map(Path::to_path_buf).ok_or_else(|| {
                    format!(
                        "image {image}: no local nats-server for tag {} (have {})",
                        tag.unwrap_or("latest"),
                        self.versions().join(", ")
                    )
                })?
            }
            "nats-operator" => self
                .operator
                .clone()
                .ok_or_else(|| format!("image {image}: the nats-operator binary is not built"))?,
            _ => return Err(format!("image {image}: no local binary for {cmd}")),
        };
        argv[0] = local.to_string_lossy().into_owned();
        Ok(argv)
    }
}

/// The `ENTRYPOINT` of the images the kubelet knows: a container without `command` runs it
/// with its `args`, as a container runtime does. The official nats image runs nats-server;
/// the operator's image (`docker/operator/Dockerfile`) runs `/nats-operator`.
pub fn entrypoint(image: &str) -> Option<&'static str> {
    let (repo, _) = split_image(image);
    match repo.rsplit('/').next().unwrap_or(repo) {
        "nats" => Some("nats-server"),
        "nats-operator" => Some("/nats-operator"),
        _ => None,
    }
}

/// `(repository, tag)` of an image reference (a digest counts as no tag).
pub fn split_image(image: &str) -> (&str, Option<&str>) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (image, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bins() -> Binaries {
        Binaries {
            nats: vec![
                ("2.15.1".into(), "/new/nats-server".into()),
                ("2.9.10".into(), "/old/nats-server".into()),
            ],
            operator: Some("/t/nats-operator".into()),
            host_dir: None,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn maps_images_and_commands_to_local_binaries() {
        let b = bins();
        assert_eq!(
            b.resolve("nats:2.9.10", &s(&["/nats-server", "-c", "x"])),
            Ok(s(&["/old/nats-server", "-c", "x"]))
        );
        assert_eq!(
            b.resolve("docker.io/library/nats:2.15.1-alpine", &s(&["nats-server"])),
            Ok(s(&["/new/nats-server"]))
        );
        assert_eq!(
            b.resolve("nats:2.9", &s(&["/gnatsd"])),
            Ok(s(&["/old/nats-server"]))
        );
        assert_eq!(b.resolve("nats", &[]), Ok(s(&["/new/nats-server"])));
        assert_eq!(
            b.resolve(
                "localhost:5000/nats-operator-rs/nats-operator:0.1.0",
                &s(&["/nats-operator", "config-reloader"])
            ),
            Ok(s(&["/t/nats-operator", "config-reloader"]))
        );
        let err = b
            .resolve("nats:2.1.9", &s(&["/nats-server"]))
            .expect_err("no such version");
        assert!(err.contains("no local nats-server for tag 2.1.9"), "{err}");
        let err = b
            .resolve("natsio/prometheus-nats-exporter:0.9.1", &s(&["/exporter"]))
            .expect_err("no exporter binary");
        assert!(err.contains("no local binary"), "{err}");
    }

    #[test]
    fn images_without_a_command_run_their_entrypoint() {
        assert_eq!(
            entrypoint("ghcr.io/nats-operator-rs/nats-operator:0.1.0"),
            Some("/nats-operator")
        );
        assert_eq!(entrypoint("nats:2.9"), Some("nats-server"));
        assert_eq!(entrypoint("busybox"), None);
    }

    #[test]
    fn image_references_split() {
        assert_eq!(split_image("nats:2.9"), ("nats", Some("2.9")));
        assert_eq!(split_image("reg:5000/nats"), ("reg:5000/nats", None));
        assert_eq!(split_image("nats@sha256:abc"), ("nats", None));
        assert!(natsbin::version_parts("2.9.10") > natsbin::version_parts("2.9.9"));
    }
}
