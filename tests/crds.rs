//! The checked-in CRDs are exactly what the types generate, and say what users rely on.

use nats_operator::api::crd::{ConversionEndpoint, crds_yaml, nats_cluster};

#[test]
fn checked_in_crds_match_the_types() {
    let generated = crds_yaml(&ConversionEndpoint::default()).unwrap_or_default();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds.yaml");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == on_disk,
        "manifests/crds.yaml is stale: run `cargo run -- crds > manifests/crds.yaml`"
    );
}

#[test]
fn versions_subresources_and_columns() {
    let crd = serde_json::to_value(nats_cluster(&ConversionEndpoint::default(), None))
        .unwrap_or_default();
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let find = |name: &str| {
        versions
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let (alpha, beta) = (find("v1alpha2"), find("v1beta1"));
    assert_eq!(
        (
            alpha["served"].clone(),
            alpha["storage"].clone(),
            alpha["deprecated"].clone()
        ),
        (true.into(), false.into(), true.into())
    );
    assert!(
        alpha["deprecationWarning"]
            .as_str()
            .unwrap_or_default()
            .contains("use nats.io/v1beta1")
    );
    assert_eq!(
        (beta["served"].clone(), beta["storage"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(
        beta["subresources"]["scale"]["specReplicasPath"],
        ".spec.size"
    );
    assert_eq!(
        beta["subresources"]["scale"]["labelSelectorPath"],
        ".status.selector"
    );
    let cols: Vec<String> = beta["additionalPrinterColumns"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(cols, ["Size", "Ready", "Version", "Status", "Age"]);
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "nats");
    assert_eq!(crd["spec"]["conversion"]["strategy"], "Webhook");
    assert_eq!(
        crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["path"],
        "/convert"
    );
    // kubectl explain needs a description on every field.
    fn walk(path: &str, s: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = s["properties"].as_object() {
            for (k, v) in props {
                let p = format!("{path}.{k}");
                if v["description"].as_str().is_none_or(str::is_empty)
                    && !p.contains("metadata")
                    && k != "apiVersion"
                    && k != "kind"
                {
                    missing.push(p.clone());
                }
                walk(&p, v, missing);
                walk(&p, &v["items"], missing);
            }
        }
    }
    for v in [alpha, beta] {
        let mut missing = Vec::new();
        walk(
            "",
            &v["schema"]["openAPIV3Schema"]["properties"]["spec"],
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "fields without description: {missing:?}"
        );
    }
    // Small enough for client-side `kubectl apply` (last-applied annotation, 256 KiB).
    assert!(serde_json::to_string(&crd).unwrap_or_default().len() < 200_000);
}
