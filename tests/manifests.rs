//! The checked-in install manifests are exactly what the code generates, and build with
//! kustomize.

#[test]
fn checked_in_manifests_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for (name, content) in nats_operator::manifests::all_files().expect("render") {
        let on_disk = std::fs::read_to_string(root.join(name)).unwrap_or_default();
        assert!(
            on_disk == content,
            "manifests/{name} is stale: run `cargo run -- manifests`"
        );
    }
}

#[test]
fn rbac_has_no_wildcards() {
    let text = nats_operator::manifests::prereqs().expect("render");
    assert!(
        !text.contains("'*'") && !text.contains("\"*\""),
        "no wildcard verbs or resources"
    );
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding"
        ]
    );
}

#[test]
fn deployment_is_production_shaped() {
    let d = serde_json::to_value(nats_operator::manifests::deployment()).expect("json");
    assert_eq!(d["spec"]["replicas"], 2);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert!(
        c["readinessProbe"].is_object()
            && c["livenessProbe"].is_object()
            && c["resources"]["limits"].is_object()
    );
}
