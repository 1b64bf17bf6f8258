//! The NATS domain plugged into the generic webhook server: thin adapters from the
//! wire types of `nats-operator-webhook` to the pure functions of [`crate::api`].

use std::sync::{Arc, OnceLock};

use nats_operator_webhook::{
    AdmissionRequest, Cause, Converter, Mutation, Mutator, Operation, Validator, Verdict,
    WebhookState,
};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::admission::{default_object, validate_object_with};
use crate::api::convert::{convert_object, convert_text};
use crate::controller::cache::Caches;

/// Where the validating webhook finds the operator's informer cache: empty on a
/// `--webhooks-only` replica and in `nats-operator webhook`, set once the caches exist.
/// Cloning shares the slot.
#[derive(Debug, Default, Clone)]
pub struct CacheSlot(Arc<OnceLock<Caches>>);

impl CacheSlot {
    /// A slot holding `caches`.
    pub fn with(caches: Caches) -> Self {
        let slot = CacheSlot::default();
        slot.set(caches);
        slot
    }

    /// Fills the slot; `false` when it was already filled (the first caches stay).
    pub fn set(&self, caches: Caches) -> bool {
        self.0.set(caches).is_ok()
    }

    /// The caches, if any.
    pub fn get(&self) -> Option<&Caches> {
        self.0.get()
    }
}

/// Validating and defaulting admission for NatsCluster and NatsServiceRole. With caches,
/// the validating side also warns about references the cache shows broken (a TLS Secret
/// that does not exist or lacks a key, an extra route to a NatsCluster that does not
/// exist); until the caches are synced it says nothing about them.
#[derive(Debug, Default, Clone)]
pub struct NatsAdmission {
    caches: CacheSlot,
}

impl NatsAdmission {
    /// Admission that reads the caches in `caches` (when filled and synced).
    pub fn new(caches: CacheSlot) -> Self {
        NatsAdmission { caches }
    }
}

impl Validator for NatsAdmission {
    fn validate(&self, req: &AdmissionRequest) -> Verdict {
        if matches!(req.operation, Operation::Delete | Operation::Connect) {
            return Verdict::allow();
        }
        let Some(object) = &req.object else {
            return Verdict::allow();
        };
        let namespace = if req.namespace.is_empty() {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
        } else {
            req.namespace.as_str()
        };
        let refs = self
            .caches
            .get()
            .and_then(|c| c.references(namespace))
            .map(|r| (namespace, r));
        match validate_object_with(object, req.old_object.as_ref(), refs) {
            Ok(warnings) => Verdict::allow_with_warnings(warnings),
            Err(errors) => Verdict::Invalid {
                causes: errors
                    .into_iter()
                    .map(|e| Cause::new(e.kind.reason(), e.field, e.message))
                    .collect(),
                warnings: Vec::new(),
            },
        }
    }
}

impl Mutator for NatsAdmission {
    fn mutate(&self, req: &AdmissionRequest) -> Mutation {
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return Mutation::Verdict(Verdict::allow());
        }
        let Some(object) = &req.object else {
            return Mutation::Verdict(Verdict::allow());
        };
        let (defaulted, warnings) = default_object(object, req.old_object.as_ref());
        if &defaulted == object {
            Mutation::Verdict(Verdict::allow_with_warnings(warnings))
        } else {
            Mutation::Patched {
                object: defaulted,
                warnings,
            }
        }
    }
}

/// The CRD conversion webhook.
#[derive(Debug, Default, Clone)]
pub struct NatsConversion;

impl Converter for NatsConversion {
    fn convert(&self, object: Value, desired_api_version: &str) -> Result<Value, String> {
        convert_object(object, desired_api_version).map_err(|e| e.to_string())
    }

    fn convert_text(&self, object: &str, desired_api_version: &str) -> Option<Box<RawValue>> {
        convert_text(object, desired_api_version)
    }
}

/// The webhook server state with the NATS domain plugged in, without caches.
pub fn state() -> WebhookState {
    state_with(CacheSlot::default())
}

/// The webhook server state whose validation reads the caches in `caches`.
pub fn state_with(caches: CacheSlot) -> WebhookState {
    let admission = NatsAdmission::new(caches);
    WebhookState::builder(admission.clone(), admission, NatsConversion).build()
}
