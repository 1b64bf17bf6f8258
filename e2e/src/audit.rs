//! The apiserver's own record of what a user did: an audit policy that logs every request of
//! chosen users (metadata level: who, verb, object, response code) to a JSON-lines file, for
//! a local control plane ([`crate::LocalOptions::apiserver_args`]). Tests read it to prove,
//! for example, that RBAC refused none of the operator's requests, whatever the operator
//! itself logs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// An audit log of a local control plane and its policy, in a directory of their own.
#[derive(Debug)]
pub struct AuditLog {
    dir: tempfile::TempDir,
}

/// One request as the audit log records it (the fields tests use).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Who sent it.
    #[serde(default)]
    pub user: AuditUser,
    /// `get`, `list`, `watch`, `create`, `patch`, ...
    #[serde(default)]
    pub verb: String,
    /// The URI requested.
    #[serde(default, rename = "requestURI")]
    pub request_uri: String,
    /// The answer.
    #[serde(default)]
    pub response_status: Option<AuditStatus>,
    /// Audit stage (`ResponseComplete`, `ResponseStarted`, `Panic`).
    #[serde(default)]
    pub stage: String,
}

/// The user of an [`AuditEvent`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditUser {
    /// e.g. `system:serviceaccount:nats-io:nats-operator`.
    #[serde(default)]
    pub username: String,
}

/// The response of an [`AuditEvent`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditStatus {
    /// HTTP status code.
    #[serde(default)]
    pub code: Option<u16>,
    /// The reason, for errors.
    #[serde(default)]
    pub message: Option<String>,
}

impl AuditEvent {
    /// The response code (0 when the log has none).
    pub fn code(&self) -> u16 {
        self.response_status
            .as_ref()
            .and_then(|s| s.code)
            .unwrap_or(0)
    }
}

impl std::fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} -> {}",
            self.user.username,
            self.verb,
            self.request_uri,
            self.code()
        )?;
        if let Some(m) = self
            .response_status
            .as_ref()
            .and_then(|s| s.message.as_ref())
        {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

impl AuditLog {
    /// A policy that records every request of `users` (and nothing else) at metadata level.
    pub fn for_users(users: &[&str]) -> Result<AuditLog> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-audit-")
            .tempdir()
            .context("audit directory")?;
        let users: Vec<String> = users
            .iter()
            .map(|u| serde_json::Value::from(*u).to_string())
            .collect();
        // JSON is YAML: the policy file needs no YAML writer.
        let policy = format!(
            r#"{{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
  "rules": [{{"level": "Metadata", "users": [{}]}}, {{"level": "None"}}]}}"#,
            users.join(", ")
        );
        std::fs::write(dir.path().join("policy.yaml"), policy).context("audit policy")?;
        Ok(AuditLog { dir })
    }

    /// The kube-apiserver flags that write this log.
    pub fn apiserver_args(&self) -> Vec<String> {
        vec![
            format!(
                "--audit-policy-file={}",
                self.dir.path().join("policy.yaml").display()
            ),
            format!("--audit-log-path={}", self.path().display()),
            "--audit-log-format=json".into(),
        ]
    }

    /// The log file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Every request recorded so far (lines that do not parse are skipped).
    pub fn events(&self) -> Vec<AuditEvent> {
        read_events(&self.path())
    }
}

fn read_events(path: &Path) -> Vec<AuditEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_users_and_events_parse() {
        let log = AuditLog::for_users(&["system:serviceaccount:ns:sa"]).expect("log");
        let policy =
            std::fs::read_to_string(log.dir.path().join("policy.yaml")).expect("policy written");
        let v: serde_json::Value = serde_json::from_str(&policy).expect("policy is JSON");
        assert_eq!(
            v["rules"][0]["users"][0], "system:serviceaccount:ns:sa",
            "{policy}"
        );
        assert!(log.apiserver_args()[1].ends_with("audit.log"));
        std::fs::write(
            log.path(),
            r#"{"kind":"Event","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns/secrets","verb":"list","user":{"username":"system:serviceaccount:ns:sa"},"responseStatus":{"metadata":{},"status":"Failure","message":"secrets is forbidden","reason":"Forbidden","code":403}}
not json
"#,
        )
        .expect("write");
        let events = log.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].code(), 403);
        assert_eq!(
            events[0].to_string(),
            "system:serviceaccount:ns:sa list /api/v1/namespaces/ns/secrets -> 403 (secrets is forbidden)"
        );
    }
}
