//! The config Secret `<name>` holding `nats.conf` (a Secret, not a ConfigMap: the file
//! carries passwords and tokens).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::nats_conf::RenderedConf;
use super::system_user::SystemUser;
use super::{CONFIG_HASH_ANNOTATION, CONFIG_KEY, ClusterMeta, labels};

/// The Secret `<name>` with the key `nats.conf` and the config hash as an annotation.
pub fn config_secret(meta: &ClusterMeta, conf: &RenderedConf) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(meta.name.clone()),
            namespace: Some(meta.namespace.clone()),
            labels: Some(labels::common(&meta.name, [])),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                conf.hash.clone(),
            )])),
            owner_references: meta.owner_references(),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_string(),
            ByteString(conf.text.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// The Secret `<name>-system-user` with the operator's system user (keys `username` and
/// `password`), owned by the cluster: deleting it makes the operator issue a new
/// password, which the members load without a restart.
pub fn system_user_secret(meta: &ClusterMeta, user: &SystemUser) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(meta.system_user_secret()),
            namespace: Some(meta.namespace.clone()),
            labels: Some(labels::common(&meta.name, [])),
            owner_references: meta.owner_references(),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                "username".to_string(),
                ByteString(user.username.as_bytes().to_vec()),
            ),
            (
                "password".to_string(),
                ByteString(user.password.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}
