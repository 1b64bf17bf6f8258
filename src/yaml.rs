//! YAML in and out, read the same by every reader.
//!
//! kubectl (and every Go tool built on `sigs.k8s.io/yaml`) reads manifests with a YAML 1.1
//! parser: a plain `yes`, `off`, `y`, `~`, `0o17`, `1_000` or `2001-12-14` is a boolean,
//! null, number or timestamp there, even where a YAML 1.2 reader sees a string. Everything
//! this crate prints as YAML (`convert`, `render`, `crds`, `manifests`) goes through
//! [`to_string`], whose emitter quotes every string that any of those readers would take for
//! something else, so `nats-operator convert -f x.yaml | kubectl apply -f -` stores exactly
//! the strings that were converted.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// YAML that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not valid YAML, or not of the expected shape.
    #[error("{0}")]
    Parse(#[from] serde_saphyr::Error),
    /// The value cannot be written as YAML.
    #[error("{0}")]
    Emit(#[from] serde_saphyr::SerializeError),
}

/// One YAML document for `value`: block style, 2-space indentation, strings quoted
/// wherever a YAML 1.1 or 1.2 reader would take them for another type.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, Error> {
    // Long one-line strings (descriptions, CEL rules) stay on one line rather than folded
    // (`>-`): the same value, but a rule reads and diffs better unbroken.
    let options = serde_saphyr::ser_options! { folded_wrap_chars: 1000 };
    Ok(serde_saphyr::to_string_with_options(value, options)?)
}

/// Reads one YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    Ok(serde_saphyr::from_str(text)?)
}

/// Every non-empty document of a YAML stream (empty and comment-only documents are
/// skipped).
pub fn documents(text: &str) -> Result<Vec<Value>, Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Strings a YAML 1.1 reader (go-yaml v2, under `sigs.k8s.io/yaml` and kubectl) resolves
/// to booleans, nulls, numbers, timestamps or merge/value keys when they are plain, and a
/// YAML 1.2 reader to other types too: [`to_string`] must quote every one. The unit tests
/// and an e2e test through kubectl (`e2e/tests/webhooks.rs`) check it.
pub const AMBIGUOUS: &[&str] = &[
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "y",
    "Y",
    "n",
    "N",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "true",
    "True",
    "TRUE",
    "false",
    "False",
    "FALSE",
    "yEs",
    "nO",
    "null",
    "Null",
    "NULL",
    "~",
    "",
    "0",
    "017",
    "0o17",
    "0x1F",
    "0b101",
    "1e3",
    "1E3",
    ".5",
    "1.",
    "-1",
    "+1",
    "1_000",
    "1:20",
    "190:20:30",
    ".inf",
    "-.Inf",
    ".NaN",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "=",
    "<<",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(line: &str) -> bool {
        let v = line.split_once(": ").map(|(_, v)| v).unwrap_or("");
        !(v.starts_with('"') || v.starts_with('\''))
    }

    #[test]
    fn every_ambiguous_scalar_is_quoted_and_reads_back() {
        for s in AMBIGUOUS {
            let text = to_string(&json!({ "k": s })).expect("emit");
            assert!(!plain(text.trim_end()), "{s:?} printed plain: {text}");
            let back: Value = from_str(&text).expect("parse");
            assert_eq!(back["k"], json!(s), "{text}");
            // As a key too.
            let text = to_string(&json!({ *s: 1 })).expect("emit");
            assert!(
                text.starts_with('"') || text.starts_with('\''),
                "key {s:?}: {text}"
            );
        }
    }

    #[test]
    fn ordinary_strings_stay_plain_and_text_blocks_stay_readable() {
        let text = to_string(&json!({
            "image": "nats:2.15.3",
            "label": "app.kubernetes.io/name",
            "conf": "port: 4222\ncluster {\n  name: x\n}\n",
        }))
        .expect("emit");
        assert!(text.contains("image: nats:2.15.3\n"), "{text}");
        assert!(text.contains("label: app.kubernetes.io/name\n"), "{text}");
        assert!(text.contains("conf: |\n  port: 4222\n"), "{text}");
        let back: Value = from_str(&text).expect("parse");
        assert_eq!(back["conf"], "port: 4222\ncluster {\n  name: x\n}\n");
    }

    #[test]
    fn documents_skip_empty_ones() {
        let docs = documents("# only a comment\n---\na: 1\n---\n---\nb: [x]\n").expect("parse");
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": ["x"]})]);
    }
}
