//! Labels, selectors and annotation merging.
//!
//! The selector of everything (Services, PodDisruptionBudget, anti-affinity) is
//! `app=nats, nats_cluster=<name>`, without `nats_version`: the Go operator put the
//! version into the management Service selector, so during an upgrade old pods lost
//! their DNS records (its §2.2 GOTCHA). User labels and annotations whose key or value
//! Kubernetes would refuse are skipped (the validating webhook warns about them), so one
//! bad key never blocks a whole child.

use std::collections::BTreeMap;

pub use crate::api::consts::{APP, CLUSTER_LABEL, RESERVED_POD_LABELS, VERSION_LABEL};
use crate::api::names::{check_label_value, check_qualified_name};

/// `app=nats, nats_cluster=<name>`: the selector of the cluster's pods.
pub fn selector(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), APP.to_string()),
        (CLUSTER_LABEL.to_string(), cluster.to_string()),
    ])
}

/// The labels of a child: `extra` (valid, non-reserved keys only) then the selector.
pub fn common<'a>(
    cluster: &str,
    extra: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for map in extra {
        for (k, v) in map {
            if RESERVED_POD_LABELS.contains(&k.as_str()) || !valid_label(k, v) {
                continue;
            }
            out.insert(k.clone(), v.clone());
        }
    }
    out.extend(selector(cluster));
    out
}

/// Whether Kubernetes accepts `key: value` as a label.
pub fn valid_label(key: &str, value: &str) -> bool {
    check_qualified_name(key).is_ok() && check_label_value(value).is_ok()
}

/// Annotations from `maps` in order (later wins), valid keys only.
pub fn annotations<'a>(
    maps: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for map in maps {
        for (k, v) in map {
            if check_qualified_name(k).is_ok() {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// `Some(map)` unless it is empty.
pub fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_invalid_labels_are_skipped() {
        let user = BTreeMap::from([
            ("app".to_string(), "mine".to_string()),
            ("team".to_string(), "a".to_string()),
            ("bad key".to_string(), "x".to_string()),
            ("ok".to_string(), "bad value!".to_string()),
        ]);
        let l = common("c", [&user]);
        assert_eq!(l.get("app").map(String::as_str), Some("nats"));
        assert_eq!(l.get("team").map(String::as_str), Some("a"));
        assert_eq!(l.get("nats_cluster").map(String::as_str), Some("c"));
        assert!(!l.contains_key("bad key") && !l.contains_key("ok"));
    }

    #[test]
    fn annotations_keep_any_value_but_need_valid_keys() {
        let a = BTreeMap::from([
            ("x/y".to_string(), "any value: {}".to_string()),
            ("not valid/".to_string(), "v".to_string()),
        ]);
        let out = annotations([&a]);
        assert_eq!(out.len(), 1);
    }
}
