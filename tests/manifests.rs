//! The checked-in install manifests are exactly what the code generates, and build with
//! kustomize.

#[test]
fn checked_in_manifests_match_the_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for (name, content) in nats_operator::install_manifests::all_files().expect("render") {
        let on_disk = std::fs::read_to_string(root.join(name)).unwrap_or_default();
        assert!(
            on_disk == content,
            "manifests/{name} is stale: run `cargo run -- manifests`"
        );
    }
}

#[test]
fn rbac_has_no_wildcards() {
    let text = nats_operator::install_manifests::prereqs().expect("render");
    assert!(
        !text.contains("'*'") && !text.contains("\"*\""),
        "no wildcard verbs or resources"
    );
    let docs: Vec<serde_json::Value> =
        nats_operator::yaml::documents(&text).expect("manifests parse");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            // NatsCluster, NatsServiceRole, then NACK's five kinds.
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
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
    let d = serde_json::to_value(nats_operator::install_manifests::deployment()).expect("json");
    assert_eq!(d["spec"]["replicas"], 2);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert!(
        c["readinessProbe"].is_object()
            && c["livenessProbe"].is_object()
            && c["resources"]["limits"].is_object()
    );
    // Each replica campaigns for the leader Lease under its own pod name (found missing by
    // the e2e install test: every replica was "nats-operator" and all of them led at once).
    let pod_name = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "MY_POD_NAME");
    assert_eq!(
        pod_name.map(|e| &e["valueFrom"]["fieldRef"]["fieldPath"]),
        Some(&serde_json::json!("metadata.name")),
        "{c:#}"
    );
}

#[test]
fn every_overlay_builds_with_kustomize() {
    // The kubectl built with the test control plane (or KUBECTL) has kustomize built in.
    let kubectl = std::env::var("KUBECTL").ok().or_else(|| {
        let out = std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/e2e/controlplane/build.sh"
        ))
        .output()
        .ok()?;
        let dir = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()?
            .trim()
            .to_string();
        Some(format!("{dir}/kubectl"))
    });
    let Some(kubectl) = kubectl else {
        panic!("no kubectl: set KUBECTL or let e2e/controlplane/build.sh build one");
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for dir in [
        root.join("base"),
        root.join("overlays/cert-manager"),
        root.join("overlays/cluster-scoped"),
    ] {
        let out = std::process::Command::new(&kubectl)
            .arg("kustomize")
            .arg(&dir)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("kind: Deployment") && text.contains("kind: CustomResourceDefinition"),
            "{}",
            dir.display()
        );
        if dir.ends_with("cluster-scoped") {
            assert!(
                text.contains("--cluster-scoped") && text.contains("name: nats-operator-clusters")
            );
        }
        if dir.ends_with("cert-manager") {
            assert!(
                text.contains("cert-manager.io/inject-ca-from: nats-io/nats-operator-webhook")
                    && text.contains("--no-ca-injection")
            );
        }
    }
}
