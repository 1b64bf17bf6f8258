//! Storage for the test control plane, which has no provisioner and no CSI resizer: a
//! StorageClass that allows expansion and one that does not, and a stand-in that does
//! what those two do to PersistentVolumeClaims of these classes in one namespace: bind a
//! new claim (status `Bound`, capacity = request) and report a grown request as the new
//! capacity (the apiserver lets only claims of the expandable class grow). The process
//! kubelet keeps each claim's data in a directory that outlives pods.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
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

impl VolumeStandIn {
    /// Starts serving claims of [`EXPANDABLE_CLASS`] and [`FIXED_CLASS`] in `namespace`
    /// (polled every 250 ms).
    pub fn start(client: Client, namespace: &str) -> Self {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client, namespace);
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    for pvc in list.items {
                        if let Err(e) = serve(&api, &pvc).await {
                            tracing::debug!(claim = %pvc.name_any(), error = %e, "volume stand-in");
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        VolumeStandIn { task }
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
