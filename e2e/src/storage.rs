//! Storage for the test control plane, which has no provisioner and no CSI resizer: a
//! StorageClass that allows expansion and one that does not, and a stand-in that does
//! what those two do to PersistentVolumeClaims of these classes in one namespace: bind a
//! new claim (status `Bound`, capacity = request) and report a grown request as the new
//! capacity (the apiserver lets only claims of the expandable class grow). The process
//! kubelet keeps each claim's data in a directory that outlives pods. For the real node
//! the stand-in is a static provisioner as well: each claim gets a `hostPath`
//! PersistentVolume of its own (a directory under the node's run directory), bound to it
//! both ways as the PV controller binds, which the kubelet mounts; a PV whose claim is gone
//! is deleted with its directory.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Name of the StorageClass with `allowVolumeExpansion: true`.
pub const EXPANDABLE_CLASS: &str = "e2e-expandable";
/// Name of the StorageClass without volume expansion.
pub const FIXED_CLASS: &str = "e2e-fixed";
/// Its provisioner name (nothing real provisions it).
pub const PROVISIONER: &str = "e2e.nats.io/directories";

/// Creates the expandable StorageClass unless it exists.
pub async fn ensure_expandable_class(client: &Client) -> Result<()> {
    ensure_class(client, EXPANDABLE_CLASS, true).await
}

/// Creates the StorageClass without expansion unless it exists.
pub async fn ensure_fixed_class(client: &Client) -> Result<()> {
    ensure_class(client, FIXED_CLASS, false).await
}

async fn ensure_class(client: &Client, name: &str, expandable: bool) -> Result<()> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let class = StorageClass {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        allow_volume_expansion: Some(expandable),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating the StorageClass {name}")),
    }
}

/// The provisioner and resizer stand-in for one namespace; stops on drop.
pub struct VolumeStandIn {
    task: tokio::task::JoinHandle<()>,
}

/// Label of the PersistentVolumes the stand-in makes: the claim's namespace.
const PV_NAMESPACE_LABEL: &str = "e2e.nats.io/claim-namespace";

impl VolumeStandIn {
    /// Starts serving claims of [`EXPANDABLE_CLASS`] and [`FIXED_CLASS`] in `namespace`
    /// (polled every 250 ms); with `volumes`, as `hostPath` PersistentVolumes below it (for
    /// the real node).
    pub fn start(client: Client, namespace: &str, volumes: Option<PathBuf>) -> Self {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        let pvs: Api<PersistentVolume> = Api::all(client);
        let ns = namespace.to_string();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    for pvc in &list.items {
                        let bound = match &volumes {
                            Some(dir) => provision(&api, &pvs, pvc, dir).await,
                            None => Ok(()),
                        };
                        if let Err(e) = bound.and(serve(&api, pvc).await) {
                            tracing::debug!(claim = %pvc.name_any(), error = %e, "volume stand-in");
                        }
                    }
                    if volumes.is_some() {
                        release(&pvs, &ns, &list.items).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        VolumeStandIn { task }
    }
}

/// The `hostPath` PersistentVolume of `pvc` (created once, its directory writable by the
/// pod's non-root user), and the claim's `volumeName`.
async fn provision(
    claims: &Api<PersistentVolumeClaim>,
    pvs: &Api<PersistentVolume>,
    pvc: &PersistentVolumeClaim,
    volumes: &std::path::Path,
) -> Result<()> {
    let spec = pvc.spec.clone().unwrap_or_default();
    if !matches!(
        spec.storage_class_name.as_deref(),
        Some(EXPANDABLE_CLASS | FIXED_CLASS)
    ) || pvc.metadata.deletion_timestamp.is_some()
    {
        return Ok(());
    }
    let Some(want) = requested(pvc) else {
        return Ok(());
    };
    let (ns, name, uid) = (
        pvc.namespace().unwrap_or_default(),
        pvc.name_any(),
        pvc.uid().unwrap_or_default(),
    );
    let pv_name = format!("pvc-{uid}");
    if pvs.get_opt(&pv_name).await?.is_none() {
        let dir = volumes.join(&ns).join(&name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": pv_name, "labels": {PV_NAMESPACE_LABEL: ns}},
            "spec": {
                "capacity": {"storage": want},
                "accessModes": spec.access_modes.clone().unwrap_or_default(),
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": spec.storage_class_name,
                "hostPath": {"path": dir.display().to_string(), "type": "Directory"},
                "claimRef": {"namespace": ns, "name": name, "uid": uid, "kind": "PersistentVolumeClaim", "apiVersion": "v1"},
            },
        }))?;
        pvs.create(&PostParams::default(), &pv)
            .await
            .with_context(|| format!("creating the volume of {name}"))?;
        pvs.patch_status(
            &pv_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await?;
    } else if let Some(pv) = pvs.get_opt(&pv_name).await?
        && pv
            .spec
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            != Some(&want)
    {
        // The resizer's part for a grown claim: the volume's capacity follows.
        pvs.patch(
            &pv_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"capacity": {"storage": want}}})),
        )
        .await?;
    }
    if spec.volume_name.as_deref().unwrap_or_default().is_empty() {
        claims
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"volumeName": pv_name}})),
            )
            .await
            .with_context(|| format!("binding {name} to {pv_name}"))?;
    }
    Ok(())
}

/// Deletes the volumes (and directories) of `namespace` whose claim is gone.
async fn release(pvs: &Api<PersistentVolume>, namespace: &str, claims: &[PersistentVolumeClaim]) {
    let lp = ListParams::default().labels(&format!("{PV_NAMESPACE_LABEL}={namespace}"));
    let Ok(list) = pvs.list(&lp).await else {
        return;
    };
    let live: std::collections::HashSet<String> = claims.iter().filter_map(|c| c.uid()).collect();
    for pv in list.items {
        let spec = pv.spec.clone().unwrap_or_default();
        let claim_uid = spec
            .claim_ref
            .as_ref()
            .and_then(|c| c.uid.clone())
            .unwrap_or_default();
        if live.contains(&claim_uid) {
            continue;
        }
        if pvs
            .delete(&pv.name_any(), &Default::default())
            .await
            .is_ok()
            && let Some(path) = spec.host_path.map(|h| h.path)
        {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

impl Drop for VolumeStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A claim's `spec.resources.requests.storage`.
pub fn requested(pvc: &PersistentVolumeClaim) -> Option<Quantity> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .cloned()
}

async fn serve(api: &Api<PersistentVolumeClaim>, pvc: &PersistentVolumeClaim) -> Result<()> {
    let spec = pvc.spec.clone().unwrap_or_default();
    if !matches!(
        spec.storage_class_name.as_deref(),
        Some(EXPANDABLE_CLASS | FIXED_CLASS)
    ) {
        return Ok(());
    }
    let Some(want) = requested(pvc) else {
        return Ok(());
    };
    let status = pvc.status.clone().unwrap_or_default();
    let capacity = status
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .cloned();
    if status.phase.as_deref() == Some("Bound") && capacity.as_ref() == Some(&want) {
        return Ok(());
    }
    let patch = json!({
        "status": {
            "phase": "Bound",
            "accessModes": spec.access_modes.unwrap_or_default(),
            "capacity": BTreeMap::from([("storage", want)]),
        }
    });
    api.patch_status(
        &pvc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("binding {}", pvc.name_any()))?;
    Ok(())
}
