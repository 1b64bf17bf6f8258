//! Admission (`admission.k8s.io/v1`): the request view handed to domain code, the
//! verdicts domain code returns, and the exact wire form of the response.
//!
//! Wire rules enforced here (webhook-and-peers.md §A.3):
//! - the envelope is always `apiVersion: admission.k8s.io/v1`, `kind: AdmissionReview`;
//! - `response.uid` echoes `request.uid`;
//! - `patch` is a **base64 string** of an RFC 6902 JSON Patch and always travels with
//!   `patchType: "JSONPatch"` (never the byte array kube-rs#1781 writes);
//! - a validating response never carries a patch; an empty patch is omitted;
//! - denials carry a `metav1.Status` with a real `code` and `reason` so kubectl prints
//!   `Error from server (Forbidden)` or `The NatsCluster "x" is invalid: …`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only admission API version this crate speaks.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// The envelope kind of admission requests and responses.
pub const ADMISSION_REVIEW_KIND: &str = "AdmissionReview";

/// Warnings longer than this many characters are shortened; Kubernetes asks for < 120.
pub const MAX_WARNING_CHARS: usize = 119;

/// A group/version/kind triple as sent in `request.kind` and `request.requestKind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version, e.g. `v1beta1`.
    #[serde(default)]
    pub version: String,
    /// Kind, e.g. `NatsCluster`.
    #[serde(default)]
    pub kind: String,
}

/// A group/version/resource triple as sent in `request.resource` and `request.requestResource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Plural resource name, e.g. `natsclusters`.
    #[serde(default)]
    pub resource: String,
}

/// The operation that triggered the admission call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// `CREATE` (also a PATCH or apply that creates).
    Create,
    /// `UPDATE` (also a PATCH or apply of an existing object).
    Update,
    /// `DELETE`: `object` is null, the object being deleted is in `old_object`.
    Delete,
    /// `CONNECT` (exec, attach, proxy, …).
    Connect,
}

/// The authenticated user on whose behalf the request was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:nats:nats-operator`.
    #[serde(default)]
    pub username: String,
    /// User UID, if the authenticator provides one.
    #[serde(default)]
    pub uid: String,
    /// Groups the user belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra authenticator-provided attributes.
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The `request` of an `admission.k8s.io/v1` `AdmissionReview`, as domain code sees it.
///
/// Objects stay raw JSON (`serde_json::Value`): the domain decides how to decode them,
/// so a schema mismatch becomes a denial with the serde message instead of an opaque
/// HTTP error (rust-anchors.md P3). The kind is passed through as sent; rejecting
/// an unexpected kind is the [`Validator`]'s decision.
///
/// Deserializes from the wire JSON (camelCase), so tests can build one from a fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Identifies this apiserver↔webhook round trip; echoed in the response.
    pub uid: String,
    /// Kind of the object as sent to the webhook (after `matchPolicy: Equivalent` conversion).
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// Resource as sent to the webhook.
    #[serde(default)]
    pub resource: GroupVersionResource,
    /// Subresource (`status`, `scale`, …), empty for the main resource.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// Kind the user actually called, if different from `kind`.
    #[serde(default)]
    pub request_kind: Option<GroupVersionKind>,
    /// Resource the user actually called, if different from `resource`.
    #[serde(default)]
    pub request_resource: Option<GroupVersionResource>,
    /// Subresource the user actually called.
    #[serde(default)]
    pub request_sub_resource: Option<String>,
    /// Object name; **empty on CREATE with `generateName`**.
    #[serde(default)]
    pub name: String,
    /// Namespace, empty for cluster-scoped objects.
    #[serde(default)]
    pub namespace: String,
    /// What is being done.
    pub operation: Operation,
    /// Who is doing it.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The new object; `None` on DELETE.
    #[serde(default)]
    pub object: Option<Value>,
    /// The existing object; only on UPDATE and DELETE.
    #[serde(default)]
    pub old_object: Option<Value>,
    /// True when nothing will be persisted.
    #[serde(default)]
    pub dry_run: bool,
    /// `CreateOptions`, `UpdateOptions` or `DeleteOptions`, raw.
    #[serde(default)]
    pub options: Option<Value>,
}

impl AdmissionRequest {
    /// Decodes `object` into a typed value; `None` when there is no object.
    pub fn object_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Option<Result<T, serde_json::Error>> {
        self.object.as_ref().map(|o| T::deserialize(o))
    }

    /// Decodes `old_object` into a typed value; `None` when there is no old object.
    pub fn old_object_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Option<Result<T, serde_json::Error>> {
        self.old_object.as_ref().map(|o| T::deserialize(o))
    }

    /// The best name to show a user: `request.name`, else the object's `metadata.name`,
    /// else its `metadata.generateName` (CREATE with `generateName`).
    pub fn display_name(&self) -> &str {
        if !self.name.is_empty() {
            return &self.name;
        }
        let meta = self
            .object
            .as_ref()
            .or(self.old_object.as_ref())
            .and_then(|o| o.get("metadata"));
        meta.and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| {
                meta.and_then(|m| m.get("generateName"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("")
    }
}

/// One field error of an `Invalid` denial; becomes a `metav1.StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// JSON path of the offending field, e.g. `spec.size`.
    pub field: String,
    /// Human-readable message, e.g. `Invalid value: 4: must be odd`.
    pub message: String,
    /// Machine-readable reason, e.g. `FieldValueInvalid`.
    pub reason: String,
}

impl Cause {
    /// A cause with an explicit reason.
    pub fn new(
        reason: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            reason: reason.into(),
        }
    }
    /// `FieldValueInvalid`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueInvalid", field, message)
    }
    /// `FieldValueRequired`.
    pub fn required(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueRequired", field, message)
    }
    /// `FieldValueForbidden`.
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueForbidden", field, message)
    }
    /// `FieldValueNotSupported`.
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new("FieldValueNotSupported", field, message)
    }
}

/// The decision of a [`Validator`] (or a [`Mutator`] that does not patch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Admit the request, optionally with warnings shown by kubectl as `Warning: …`.
    Allow {
        /// Warnings (each shortened to < 120 characters on the wire).
        warnings: Vec<String>,
    },
    /// Deny as `422 Invalid` with field causes; kubectl prints
    /// `The <Kind> "<name>" is invalid: <field>: <message>`.
    Invalid {
        /// Field errors; should not be empty.
        causes: Vec<Cause>,
        /// Warnings shown alongside the denial.
        warnings: Vec<String>,
    },
    /// Deny as `403 Forbidden` with a message.
    Forbidden {
        /// Why the request is refused.
        message: String,
        /// Warnings shown alongside the denial.
        warnings: Vec<String>,
    },
    /// Deny as `400 BadRequest` (e.g. an object that does not decode).
    BadRequest {
        /// What is wrong with the request.
        message: String,
    },
}

impl Verdict {
    /// `Allow` without warnings.
    pub fn allow() -> Self {
        Verdict::Allow {
            warnings: Vec::new(),
        }
    }
    /// `Allow` with warnings.
    pub fn allow_with_warnings(warnings: Vec<String>) -> Self {
        Verdict::Allow { warnings }
    }
    /// `Invalid` without warnings.
    pub fn invalid(causes: Vec<Cause>) -> Self {
        Verdict::Invalid {
            causes,
            warnings: Vec::new(),
        }
    }
    /// `Forbidden` without warnings.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Verdict::Forbidden {
            message: message.into(),
            warnings: Vec::new(),
        }
    }
    /// `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Verdict::BadRequest {
            message: message.into(),
        }
    }
    /// Whether the request is admitted.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }
}

/// The outcome of a [`Mutator`].
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// The fully mutated object. The server diffs it against `request.object` and sends
    /// the RFC 6902 patch (omitted when empty).
    Patched {
        /// The complete object after defaulting/mutation.
        object: Value,
        /// Warnings, e.g. "defaulted spec.size to 3".
        warnings: Vec<String>,
    },
    /// No patch: allow unchanged or deny.
    Verdict(Verdict),
}

impl From<Verdict> for Mutation {
    fn from(v: Verdict) -> Self {
        Mutation::Verdict(v)
    }
}

/// Validating admission logic. Must be fast and must not block on I/O: it runs on a
/// blocking thread under the request deadline, and a panic becomes an "internal error"
/// denial.
pub trait Validator: Send + Sync + 'static {
    /// Decides on one request (all operations, including DELETE with `old_object`).
    fn validate(&self, req: &AdmissionRequest) -> Verdict;

    /// Whether `verdict` (of [`Validator::validate`]) gets a second look
    /// ([`Validator::reconsider`]). The default: denials only.
    fn wants_second_look(&self, req: &AdmissionRequest, verdict: &Verdict) -> bool {
        let _ = req;
        !verdict.is_allowed()
    }

    /// A second look at a verdict of [`Validator::validate`], which may ask the world
    /// (a cheap network call) whether what the cache showed is still true: a verdict
    /// judged from a view that lags must not stand once the world has moved (a denial
    /// whose cause the user fixed, an admission the servers cannot hold). Runs on the
    /// async runtime within what is left of the request deadline; when the deadline
    /// passes first, or the look panics, `first` stands. The default keeps `first`.
    fn reconsider<'a>(
        &'a self,
        req: &'a AdmissionRequest,
        first: Verdict,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        let _ = req;
        Box::pin(std::future::ready(first))
    }
}

/// Mutating (defaulting) admission logic. Never called for DELETE; on CONNECT a
/// returned patch is dropped. Should be idempotent (reinvocation).
pub trait Mutator: Send + Sync + 'static {
    /// Returns the mutated object or a verdict.
    fn mutate(&self, req: &AdmissionRequest) -> Mutation;
}

impl<F> Validator for F
where
    F: Fn(&AdmissionRequest) -> Verdict + Send + Sync + 'static,
{
    fn validate(&self, req: &AdmissionRequest) -> Verdict {
        self(req)
    }
}

impl<F> Mutator for F
where
    F: Fn(&AdmissionRequest) -> Mutation + Send + Sync + 'static,
{
    fn mutate(&self, req: &AdmissionRequest) -> Mutation {
        self(req)
    }
}

// ---------------------------------------------------------------------------------
// Wire structs.

/// Incoming review; every field optional so that shape errors can be reported precisely.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdmissionReviewIn {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub request: Option<AdmissionRequest>,
}

/// Fallback parse used only when the full parse failed: enough to answer with a
/// well-formed denial that echoes the uid.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdmissionReviewSkeleton {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub request: Option<RequestSkeleton>,
}

#[derive(Deserialize)]
pub(crate) struct RequestSkeleton {
    #[serde(default)]
    pub uid: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdmissionReviewOut {
    api_version: &'static str,
    kind: &'static str,
    response: AdmissionResponseOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionResponseOut {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// base64 (standard alphabet, padded) of the JSON Patch document.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// `metav1.Status` as the apiserver expects it inside a denial.
#[derive(Serialize)]
struct StatusOut {
    status: &'static str,
    message: String,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<DetailsOut>,
    code: u16,
}

#[derive(Serialize)]
struct DetailsOut {
    name: String,
    group: String,
    kind: String,
    causes: Vec<Cause>,
}

/// Shortens a warning to < 120 characters and removes control characters (warnings end
/// up in HTTP `Warning` headers). Returns `None` for an empty warning.
pub fn sanitize_warning(w: &str) -> Option<String> {
    let cleaned: String = w
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cleaned.is_empty() {
        return None;
    }
    if cleaned.chars().count() <= MAX_WARNING_CHARS {
        return Some(cleaned);
    }
    let mut out: String = cleaned.chars().take(MAX_WARNING_CHARS - 1).collect();
    out.push('…');
    Some(out)
}

fn sanitize_warnings(ws: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(ws.len());
    for w in ws {
        if let Some(s) = sanitize_warning(&w)
            && !out.contains(&s)
        {
            out.push(s);
        }
    }
    out
}

/// Identity of the object a denial is about, for `details` and the message.
pub(crate) struct Subject<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

impl<'a> Subject<'a> {
    pub fn of(req: &'a AdmissionRequest) -> Self {
        Subject {
            group: &req.kind.group,
            kind: &req.kind.kind,
            name: req.display_name(),
        }
    }
}

/// Formats the `Invalid` message the way kubectl users expect:
/// `<Kind> "<name>" is invalid: <field>: <msg>, <field>: <msg>`.
pub fn invalid_message(kind: &str, name: &str, causes: &[Cause]) -> String {
    let mut msg = format!("{kind} {name:?} is invalid");
    for (i, c) in causes.iter().enumerate() {
        msg.push_str(if i == 0 { ": " } else { ", " });
        if c.field.is_empty() {
            msg.push_str(&c.message);
        } else {
            msg.push_str(&c.field);
            msg.push_str(": ");
            msg.push_str(&c.message);
        }
    }
    msg
}

impl AdmissionReviewOut {
    fn new(response: AdmissionResponseOut) -> Self {
        Self {
            api_version: ADMISSION_API_VERSION,
            kind: ADMISSION_REVIEW_KIND,
            response,
        }
    }

    /// Builds the response for a verdict (never with a patch).
    pub fn from_verdict(uid: String, subject: &Subject<'_>, verdict: Verdict) -> Self {
        let (allowed, status, warnings) = match verdict {
            Verdict::Allow { warnings } => (true, None, warnings),
            Verdict::Invalid { causes, warnings } => (
                false,
                Some(StatusOut {
                    status: "Failure",
                    message: invalid_message(subject.kind, subject.name, &causes),
                    reason: "Invalid",
                    details: Some(DetailsOut {
                        name: subject.name.to_owned(),
                        group: subject.group.to_owned(),
                        kind: subject.kind.to_owned(),
                        causes,
                    }),
                    code: 422,
                }),
                warnings,
            ),
            Verdict::Forbidden { message, warnings } => (
                false,
                Some(StatusOut {
                    status: "Failure",
                    message,
                    reason: "Forbidden",
                    details: None,
                    code: 403,
                }),
                warnings,
            ),
            Verdict::BadRequest { message } => (
                false,
                Some(StatusOut {
                    status: "Failure",
                    message,
                    reason: "BadRequest",
                    details: None,
                    code: 400,
                }),
                Vec::new(),
            ),
        };
        Self::new(AdmissionResponseOut {
            uid,
            allowed,
            status,
            patch_type: None,
            patch: None,
            warnings: sanitize_warnings(warnings),
        })
    }

    /// A denial for a failure of the webhook itself (panic, deadline): `500 InternalError`.
    pub fn internal_error(uid: String, message: String) -> Self {
        Self::new(AdmissionResponseOut {
            uid,
            allowed: false,
            status: Some(StatusOut {
                status: "Failure",
                message,
                reason: "InternalError",
                details: None,
                code: 500,
            }),
            patch_type: None,
            patch: None,
            warnings: Vec::new(),
        })
    }

    /// Allowed with a JSON Patch (already serialized JSON bytes; encoded to base64 here).
    pub fn patched(uid: String, patch_json: &[u8], warnings: Vec<String>) -> Self {
        Self::new(AdmissionResponseOut {
            uid,
            allowed: true,
            status: None,
            patch_type: Some("JSONPatch"),
            patch: Some(base64::engine::general_purpose::STANDARD.encode(patch_json)),
            warnings: sanitize_warnings(warnings),
        })
    }
}

/// Computes the RFC 6902 patch from `before` to `after`; `None` when they are equal.
pub(crate) fn diff_patch(before: &Value, after: &Value) -> Result<Option<Vec<u8>>, String> {
    let patch = json_patch::diff(before, after);
    if patch.0.is_empty() {
        return Ok(None);
    }
    serde_json::to_vec(&patch)
        .map(Some)
        .map_err(|e| format!("failed to serialize JSON patch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_shortened_and_cleaned() {
        let long = "x".repeat(300);
        let w = sanitize_warning(&long).expect("non-empty");
        assert_eq!(w.chars().count(), MAX_WARNING_CHARS);
        assert!(w.ends_with('…'));
        assert_eq!(sanitize_warning("a\nb").as_deref(), Some("a b"));
        assert_eq!(sanitize_warning("  "), None);
        let exact = "y".repeat(MAX_WARNING_CHARS);
        assert_eq!(sanitize_warning(&exact).as_deref(), Some(exact.as_str()));
        // multi-byte characters are cut at a char boundary
        let multi = "é".repeat(200);
        assert_eq!(
            sanitize_warning(&multi).map(|s| s.chars().count()),
            Some(MAX_WARNING_CHARS)
        );
    }

    #[test]
    fn invalid_message_format() {
        let causes = vec![
            Cause::invalid("spec.size", "Invalid value: 4: must be odd"),
            Cause::required("spec.version", "Required value"),
        ];
        assert_eq!(
            invalid_message("NatsCluster", "x", &causes),
            "NatsCluster \"x\" is invalid: spec.size: Invalid value: 4: must be odd, spec.version: Required value"
        );
        assert_eq!(
            invalid_message("NatsCluster", "x", &[]),
            "NatsCluster \"x\" is invalid"
        );
    }

    #[test]
    fn empty_diff_is_none() {
        let v = serde_json::json!({"a": 1});
        assert_eq!(diff_patch(&v, &v), Ok(None));
    }
}
