//! Field errors in the shape the apiserver uses, so a denial reads like a native one:
//! `spec.size: Invalid value: -1: must be greater than or equal to 0`.

use std::fmt;

use serde_json::Value;

/// What kind of problem a field has (Kubernetes' `CauseType` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// `FieldValueInvalid`.
    Invalid,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueNotSupported`.
    NotSupported,
    /// `FieldValueDuplicate`.
    Duplicate,
}

impl ErrorType {
    /// The `reason` of a `StatusCause`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Kind of problem.
    pub kind: ErrorType,
    /// Field path such as `spec.tls.routes.secret` or `spec.extraRoutes[0].route`.
    pub field: String,
    /// The message shown after the field, such as `Invalid value: -1: must be ...`.
    pub message: String,
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl FieldError {
    /// The value is wrong; `detail` says what it must be.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl fmt::Display,
    ) -> Self {
        FieldError {
            kind: ErrorType::Invalid,
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", render(&value.into())),
        }
    }
    /// The field must be set.
    pub fn required(field: impl Into<String>, detail: impl fmt::Display) -> Self {
        FieldError {
            kind: ErrorType::Required,
            field: field.into(),
            message: format!("Required value: {detail}"),
        }
    }
    /// The field may not be set (here, or to this value).
    pub fn forbidden(field: impl Into<String>, detail: impl fmt::Display) -> Self {
        FieldError {
            kind: ErrorType::Forbidden,
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }
    /// The value is not one of the supported ones.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            kind: ErrorType::NotSupported,
            field: field.into(),
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
        }
    }
    /// The value is already used elsewhere.
    pub fn duplicate(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl fmt::Display,
    ) -> Self {
        FieldError {
            kind: ErrorType::Duplicate,
            field: field.into(),
            message: format!("Duplicate value: {}: {detail}", render(&value.into())),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Outcome of validation: warnings when allowed, every problem when denied.
pub type Validation = Result<Vec<String>, Vec<FieldError>>;
