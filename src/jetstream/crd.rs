//! The CustomResourceDefinitions of the `jetstream.nats.io` kinds, generated from the
//! types of [`super::v1beta2`] with NACK's names, so a cluster where NACK's CRDs are
//! installed takes ours in their place.
//!
//! NACK's CRDs also list `v1beta1`, not served and not stored. A cluster that once stored
//! it keeps `v1beta1` in the CRD's `status.storedVersions`, and the apiserver refuses a
//! CRD without every stored version: ours keep the entry, with an open schema.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, CustomResourceValidation,
    JSONSchemaProps,
};
use kube::core::crd::CustomResourceExt;

use super::v1beta2::{Account, Consumer, KeyValue, ObjectStore, Stream};

/// The plural resource names served, in the order the CRDs are written.
pub const RESOURCES: [&str; 5] = [
    "streams",
    "consumers",
    "keyvalues",
    "objectstores",
    "accounts",
];

/// NACK's retired version: listed so that objects it once stored stay readable.
fn retired_v1beta1() -> CustomResourceDefinitionVersion {
    CustomResourceDefinitionVersion {
        name: "v1beta1".into(),
        served: false,
        storage: false,
        schema: Some(CustomResourceValidation {
            open_api_v3_schema: Some(JSONSchemaProps {
                type_: Some("object".into()),
                x_kubernetes_preserve_unknown_fields: Some(true),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn with_retired(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    crd.spec.versions.push(retired_v1beta1());
    crd
}

/// The five CRDs: Stream, Consumer, KeyValue, ObjectStore and Account.
pub fn asset_crds() -> Vec<CustomResourceDefinition> {
    [
        Stream::crd(),
        Consumer::crd(),
        KeyValue::crd(),
        ObjectStore::crd(),
        Account::crd(),
    ]
    .into_iter()
    .map(with_retired)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_status_as_nack() {
        let crds = asset_crds();
        let names: Vec<_> = crds.iter().map(|c| c.spec.names.plural.clone()).collect();
        assert_eq!(names, RESOURCES.map(String::from).to_vec());
        for crd in &crds {
            assert_eq!(crd.spec.group, super::super::GROUP);
            let versions: Vec<_> = crd
                .spec
                .versions
                .iter()
                .map(|v| (v.name.as_str(), v.served, v.storage))
                .collect();
            assert_eq!(
                versions,
                vec![("v1beta2", true, true), ("v1beta1", false, false)]
            );
            let served = &crd.spec.versions[0];
            assert!(
                served
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some()),
                "{}",
                crd.spec.names.kind
            );
        }
        let kv = &crds[2];
        assert_eq!(kv.spec.names.short_names, Some(vec!["kv".to_string()]));
    }
}
