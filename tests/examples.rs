//! Our own examples (`examples/v1alpha2/` and `examples/v1beta1/`): every feature the README
//! documents has one, in both API versions. Each NatsCluster is accepted by the validating
//! webhook without a warning, defaults idempotently, and each v1alpha2 file means exactly
//! what its v1beta1 twin means: `render` prints the same objects for both. (That every
//! rendered config runs on every server release is `tests/nats_server_conf.rs`.)

mod support;

use std::collections::BTreeSet;

use nats_operator::api::admission::{default_object, validate_object};
use nats_operator::api::convert::convert_object;
use nats_operator::api::{V1ALPHA2, V1BETA1};
use nats_operator::yaml_stream::render_stream;
use serde_json::Value;

fn file_names(version: &str) -> BTreeSet<String> {
    support::our_documents(version)
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

#[test]
fn both_versions_have_the_same_examples() {
    let alpha = file_names("v1alpha2");
    let beta = file_names("v1beta1");
    assert_eq!(alpha, beta);
    assert!(beta.len() >= 11, "{beta:?}");
}

#[test]
fn every_example_is_accepted_without_warnings_and_defaults_idempotently() {
    for (version, api) in [("v1alpha2", V1ALPHA2), ("v1beta1", V1BETA1)] {
        for (file, doc) in support::our_documents(version) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            if !matches!(kind, "NatsCluster" | "NatsServiceRole") {
                continue;
            }
            assert_eq!(doc["apiVersion"], api, "{version}/{file}");
            let warnings = validate_object(&doc, None)
                .unwrap_or_else(|e| panic!("{version}/{file} is denied: {e:?}"));
            assert!(warnings.is_empty(), "{version}/{file} warns: {warnings:?}");
            let (once, _) = default_object(&doc, None);
            let (twice, again) = default_object(&once, None);
            assert_eq!(once, twice, "{version}/{file}");
            assert!(again.is_empty(), "{version}/{file}: {again:?}");
            let warnings = validate_object(&once, None)
                .unwrap_or_else(|e| panic!("{version}/{file} defaulted is denied: {e:?}"));
            assert!(
                warnings.is_empty(),
                "{version}/{file} defaulted warns: {warnings:?}"
            );
        }
    }
}

/// The same file in the other version converts to exactly this one: the v1alpha2 files are
/// the v1beta1 ones in the Go operator's words (or with the residual annotation, for what
/// v1alpha2 cannot say).
#[test]
fn each_v1alpha2_example_is_its_v1beta1_twin() {
    let beta: Vec<(String, Value)> = support::our_documents("v1beta1");
    for (file, alpha) in support::our_documents("v1alpha2") {
        if alpha["apiVersion"] != V1ALPHA2 {
            continue;
        }
        let name = &alpha["metadata"]["name"];
        let twin = beta
            .iter()
            .find(|(f, d)| {
                *f == file && d["kind"] == alpha["kind"] && d["metadata"]["name"] == *name
            })
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("v1beta1/{file} has no {} {name}", alpha["kind"]));
        // Clusters compare in their typed form (`3` and `3.0` are the same timeout).
        let same = |v: &Value| {
            if v["kind"] == "NatsCluster" {
                support::canonical(v)["spec"].clone()
            } else {
                v["spec"].clone()
            }
        };
        let up = convert_object(alpha.clone(), V1BETA1).expect("converts");
        assert_eq!(same(&up), same(&twin), "{file} {name}");
        let down = convert_object(twin.clone(), V1ALPHA2).expect("converts");
        assert_eq!(same(&down), same(&alpha), "{file} {name}");
    }
}

#[test]
fn render_prints_the_same_objects_for_both_versions() {
    let dir = support::repo().join("examples");
    for file in file_names("v1beta1") {
        let read = |v: &str| std::fs::read_to_string(dir.join(v).join(&file)).expect("read");
        let alpha = render_stream(&read("v1alpha2")).unwrap_or_else(|e| panic!("{file}: {e}"));
        let beta = render_stream(&read("v1beta1")).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(alpha, beta, "{file}");
        assert!(alpha.contains("kind: Pod"), "{file}: {alpha}");
    }
}

/// The examples cover what the README documents.
#[test]
fn the_examples_cover_every_documented_feature() {
    let text: String = support::our_documents("v1beta1")
        .into_iter()
        .map(|(_, d)| d.to_string())
        .collect();
    for key in [
        "\"tls\"",
        "\"routes\"",
        "\"clients\"",
        "\"serviceAccounts\"",
        "\"NatsServiceRole\"",
        "\"extraRoutes\"",
        "\"gateway\"",
        "\"leafnode\"",
        "\"websocket\"",
        "\"jetstream\"",
        "\"fileStorage\"",
        "\"mqtt\"",
        "\"accounts\"",
        "\"noAuthUser\"",
        "\"metrics\"",
        "\"podMonitor\"",
        "\"configReloader\"",
    ] {
        assert!(text.contains(key), "no example uses {key}");
    }
}

/// `nats.conf` is indented JSON, as the Go operator wrote it, so tools that read the config
/// Secret with a JSON parser keep working: every config `render` prints for our examples
/// and upstream's parses with `serde_json`, except where the server needs what JSON cannot
/// say (an `include` line for external advertise files or an authorization file, written
/// as the Go operator did; the member's `server_name` as a variable of its pod, which
/// the file needs because nats-server reloads ignore the `--name` flag). Quoting that
/// variable makes such a file JSON again.
#[test]
fn every_rendered_config_is_json() {
    let mut files = support::yaml_files(&support::repo().join("examples/v1beta1"));
    files.extend(support::yaml_files(
        &support::repo().join("examples/v1alpha2"),
    ));
    if let Some(dir) = support::upstream_dir("every_rendered_config_is_json") {
        files.extend(support::yaml_files(&dir));
    }
    let (mut json, mut with_include, mut with_name) = (0, 0, 0);
    for file in &files {
        let Ok(printed) = render_stream(&std::fs::read_to_string(file).unwrap_or_default()) else {
            continue; // upstream's deliberately invalid example
        };
        for doc in nats_operator::yaml::documents(&printed).unwrap_or_default() {
            let Some(text) = doc.pointer("/stringData/nats.conf").and_then(Value::as_str) else {
                continue;
            };
            if text
                .lines()
                .any(|l| l.trim_start().starts_with("include \""))
            {
                with_include += 1;
                continue;
            }
            let named = text.replace(": $POD_NAME,", ": \"$POD_NAME\",");
            let named = named.replace(": $SERVER_NAME,", ": \"$SERVER_NAME\",");
            if let Err(e) = serde_json::from_str::<Value>(&named) {
                panic!("{}: nats.conf is not JSON ({e}):\n{text}", file.display());
            }
            if named == text {
                json += 1;
            } else {
                with_name += 1;
            }
        }
    }
    assert!(
        json >= 20 && with_name >= 3,
        "only {json} + {with_name} configs"
    );
    println!(
        "NUMBERS json-conf: {json} configs are strict JSON, {with_name} JSON but for the server-name variable, {with_include} need an include line"
    );
}
