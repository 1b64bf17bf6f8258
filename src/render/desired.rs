//! Everything that should exist for one NatsCluster, computed once: the reconciler
//! applies it and `nats-operator render` prints it, so the two cannot drift.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use serde_json::Value;

use super::{
    AuthInputs, ClusterMeta, POD_SPEC_HASH_ANNOTATION, Paths, RenderError, RenderedConf,
    client_service, config_secret, disruption_budget, management_service, member_pod, member_pvc,
    nats_conf, pod_monitor, pod_name,
};
use crate::api::defaults::at_read_time;
use crate::api::v1beta1::NatsCluster;

/// One member: its pod and, with JetStream file storage, its claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// 1-based member index.
    pub index: u32,
    /// The claim, created before the pod.
    pub claim: Option<PersistentVolumeClaim>,
    /// The pod.
    pub pod: Pod,
}

/// The desired children of a NatsCluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The cluster with the webhook's defaults applied (what everything is rendered
    /// from).
    pub cluster: NatsCluster,
    /// Its identity.
    pub meta: ClusterMeta,
    /// `nats.conf`.
    pub conf: RenderedConf,
    /// The client Service `<name>`.
    pub client_service: Service,
    /// The headless management Service `<name>-mgmt`.
    pub management_service: Service,
    /// The config Secret `<name>`.
    pub config_secret: Secret,
    /// The PodDisruptionBudget, unless the spec turns it off.
    pub disruption_budget: Option<PodDisruptionBudget>,
    /// The PodMonitor of `spec.pod.podMonitor`.
    pub pod_monitor: Option<Value>,
    /// Members `1..=size`.
    pub members: Vec<Member>,
}

/// What should exist for `cluster` (defaulted here, whatever was stored) with the
/// authorization `auth`; `paths` are where `nats.conf` finds its files.
pub fn desired(
    cluster: &NatsCluster,
    auth: &AuthInputs,
    paths: &Paths,
) -> Result<Desired, RenderError> {
    let cluster = at_read_time(cluster);
    let meta = ClusterMeta::of(&cluster)?;
    let spec = &cluster.spec;
    let size = u32::try_from(spec.size.max(0)).unwrap_or(0);
    let names: Vec<String> = (1..=size).map(|i| pod_name(&meta.name, i)).collect();
    let conf = nats_conf(spec, &meta, &names, auth, paths)?;
    let members = (1..=size)
        .map(|index| {
            Ok(Member {
                index,
                claim: member_pvc(spec, &meta, &pod_name(&meta.name, index)),
                pod: member_pod(spec, &meta, index, &conf.hash)?,
            })
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    Ok(Desired {
        client_service: client_service(spec, &meta),
        management_service: management_service(spec, &meta),
        config_secret: config_secret(&meta, &conf),
        disruption_budget: disruption_budget(spec, &meta),
        pod_monitor: pod_monitor(spec, &meta),
        members,
        conf,
        meta,
        cluster,
    })
}

impl Desired {
    /// The pod of member `index`, also one above `size` (a member being removed).
    pub fn member_pod(&self, index: u32) -> Result<Pod, RenderError> {
        match self.members.iter().find(|m| m.index == index) {
            Some(m) => Ok(m.pod.clone()),
            None => member_pod(&self.cluster.spec, &self.meta, index, &self.conf.hash),
        }
    }

    /// The pod-spec hash member `index` would be created with now.
    pub fn pod_spec_hash(&self, index: u32) -> Option<String> {
        self.member_pod(index)
            .ok()
            .and_then(|p| p.annotations().get(POD_SPEC_HASH_ANNOTATION).cloned())
    }

    /// Every object, as the API takes it (`apiVersion` and `kind` set), in the order
    /// the reconciler creates them: Services, the config Secret, the budget, the
    /// PodMonitor, then each member's claim and pod.
    pub fn objects(&self) -> Vec<Value> {
        let mut out = vec![
            typed(&self.client_service, "v1", "Service"),
            typed(&self.management_service, "v1", "Service"),
            typed(&self.config_secret, "v1", "Secret"),
        ];
        if let Some(pdb) = &self.disruption_budget {
            out.push(typed(pdb, "policy/v1", "PodDisruptionBudget"));
        }
        if let Some(pm) = &self.pod_monitor {
            out.push(pm.clone());
        }
        for m in &self.members {
            if let Some(c) = &m.claim {
                out.push(typed(c, "v1", "PersistentVolumeClaim"));
            }
            out.push(typed(&m.pod, "v1", "Pod"));
        }
        out
    }
}

/// `object` as JSON with its `apiVersion` and `kind`.
pub fn typed(object: &impl serde::Serialize, api_version: &str, kind: &str) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), api_version.into());
        m.insert("kind".into(), kind.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1beta1::NatsClusterSpec;

    /// A cluster as the Go operator stored it: no image, no defaults at all.
    fn undefaulted(version: &str) -> NatsCluster {
        let mut c = NatsCluster::new(
            "legacy",
            NatsClusterSpec {
                size: 3,
                version: version.into(),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("default".into());
        c.metadata.uid = Some("u-1".into());
        c
    }

    fn image(p: &Pod) -> Option<String> {
        p.spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == "nats"))
            .and_then(|c| c.image.clone())
    }

    #[test]
    fn objects_stored_without_defaults_render_like_defaulted_ones() {
        let stored = undefaulted("2.10.27");
        let d = desired(&stored, &AuthInputs::default(), &Paths::default());
        let d = d.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.members.len(), 3);
        for m in &d.members {
            assert_eq!(image(&m.pod).as_deref(), Some("nats:2.10.27"));
        }
        // Re-storing the object with the defaults written changes nothing, so it rolls
        // nothing.
        let mut written = stored.clone();
        crate::api::defaults::default_v1beta1(&mut written.spec, None);
        let again = desired(&written, &AuthInputs::default(), &Paths::default());
        assert_eq!(again.ok().map(|a| a.objects()), Some(d.objects()));
    }

    #[test]
    fn an_empty_version_is_what_the_go_operator_ran() {
        let d = desired(&undefaulted(""), &AuthInputs::default(), &Paths::default());
        let img = d
            .ok()
            .and_then(|d| d.members.first().and_then(|m| image(&m.pod)));
        assert_eq!(
            img,
            Some(format!(
                "nats:{}",
                crate::api::defaults::LEGACY_DEFAULT_VERSION
            ))
        );
    }

    #[test]
    fn pods_above_size_hash_like_members() {
        let d = desired(
            &undefaulted("2.10.27"),
            &AuthInputs::default(),
            &Paths::default(),
        );
        let d = d.unwrap_or_else(|e| panic!("{e}"));
        assert!(d.pod_spec_hash(1).is_some());
        assert_eq!(
            d.member_pod(5).ok().map(|p| p.name_any()),
            Some("legacy-5".into())
        );
        let kinds: Vec<String> = d
            .objects()
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "Service",
                "Service",
                "Secret",
                "PodDisruptionBudget",
                "Pod",
                "Pod",
                "Pod"
            ]
        );
    }
}
