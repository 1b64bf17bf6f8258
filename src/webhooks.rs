//! The NATS domain plugged into the generic webhook server: thin adapters from the
//! wire types of `nats-operator-webhook` to the pure functions of [`crate::api`].

use nats_operator_webhook::{
    AdmissionRequest, Cause, Converter, Mutation, Mutator, Operation, Validator, Verdict,
    WebhookState,
};
use serde_json::Value;

use crate::api::admission::{default_object, validate_object};
use crate::api::convert::convert_object;

/// Validating and defaulting admission for NatsCluster and NatsServiceRole.
#[derive(Debug, Default, Clone)]
pub struct NatsAdmission;

impl Validator for NatsAdmission {
    fn validate(&self, req: &AdmissionRequest) -> Verdict {
        if matches!(req.operation, Operation::Delete | Operation::Connect) {
            return Verdict::allow();
        }
        let Some(object) = &req.object else {
            return Verdict::allow();
        };
        match validate_object(object, req.old_object.as_ref()) {
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
}

/// The webhook server state with the NATS domain plugged in.
pub fn state() -> WebhookState {
    WebhookState::builder(NatsAdmission, NatsAdmission, NatsConversion).build()
}
