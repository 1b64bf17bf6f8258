//! The axum router: `POST /validate`, `POST /mutate`, `POST /convert`, `GET /healthz`,
//! `GET /readyz`. Handlers are thin: read the body under an explicit limit, parse it
//! ourselves (never axum's `Json`, which answers 422 text/plain), hand the request to the
//! domain trait under a deadline, and write the exact wire form.
//!
//! Bad input never hurts the server. Every malformed request gets an HTTP 4xx with a
//! JSON body `{"error": "..."}`, or—when the request uid could be read—an HTTP 200
//! review that denies (admission) or fails (conversion) with that uid.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use crate::admission::{
    ADMISSION_API_VERSION, ADMISSION_REVIEW_KIND, AdmissionRequest, AdmissionReviewIn,
    AdmissionReviewOut, AdmissionReviewSkeleton, Mutation, Mutator, Operation, Subject, Validator,
    Verdict, diff_patch,
};
use crate::conversion::{
    CONVERSION_API_VERSION, CONVERSION_REVIEW_KIND, ConversionReviewIn, ConversionReviewOut,
    ConversionReviewSkeleton, Converter, convert_review,
};
use crate::deadline::{GuardError, run_sized, timeout_from_query};

/// Default body limit for `/validate` and `/mutate` (an UPDATE carries two objects).
pub const DEFAULT_ADMISSION_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Default body limit for `/convert` (a LIST conversion carries every item).
pub const DEFAULT_CONVERSION_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Used when an admission request has no `?timeout=` (the apiserver's default is 10 s).
pub const DEFAULT_ADMISSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Used when a conversion request has no `?timeout=` (the apiserver's fixed 30 s).
pub const DEFAULT_CONVERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// Share of the caller's timeout the handler may use, so the answer arrives in time.
pub const DEFAULT_DEADLINE_FRACTION: f64 = 0.8;

/// A shared readiness flag for `GET /readyz`.
///
/// Readiness never waits for caches or leader election: the server marks itself ready
/// once it is serving (see [`crate::ServerOptions::readiness`]) and not ready when it
/// starts shutting down.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A new flag, initially not ready.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the flag.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    /// Reads the flag.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

struct Inner {
    validator: Arc<dyn Validator>,
    mutator: Arc<dyn Mutator>,
    converter: Arc<dyn Converter>,
    readiness: Readiness,
    admission_body_limit: usize,
    conversion_body_limit: usize,
    default_admission_timeout: Duration,
    default_conversion_timeout: Duration,
    deadline_fraction: f64,
}

/// Everything the handlers need: the domain plug-ins, limits and the readiness flag.
/// Cheap to clone.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("ready", &self.inner.readiness.is_ready())
            .field("admission_body_limit", &self.inner.admission_body_limit)
            .field("conversion_body_limit", &self.inner.conversion_body_limit)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    /// Starts a builder with the three domain plug-ins.
    pub fn builder(
        validator: impl Validator,
        mutator: impl Mutator,
        converter: impl Converter,
    ) -> WebhookStateBuilder {
        WebhookStateBuilder::new(Arc::new(validator), Arc::new(mutator), Arc::new(converter))
    }

    /// The readiness flag served at `/readyz`.
    pub fn readiness(&self) -> Readiness {
        self.inner.readiness.clone()
    }
}

/// Builder for [`WebhookState`].
pub struct WebhookStateBuilder {
    validator: Arc<dyn Validator>,
    mutator: Arc<dyn Mutator>,
    converter: Arc<dyn Converter>,
    readiness: Readiness,
    admission_body_limit: usize,
    conversion_body_limit: usize,
    default_admission_timeout: Duration,
    default_conversion_timeout: Duration,
    deadline_fraction: f64,
}

impl std::fmt::Debug for WebhookStateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookStateBuilder")
            .finish_non_exhaustive()
    }
}

impl WebhookStateBuilder {
    /// A builder from already shared plug-ins (defaults for everything else).
    pub fn new(
        validator: Arc<dyn Validator>,
        mutator: Arc<dyn Mutator>,
        converter: Arc<dyn Converter>,
    ) -> Self {
        Self {
            validator,
            mutator,
            converter,
            readiness: Readiness::new(),
            admission_body_limit: DEFAULT_ADMISSION_BODY_LIMIT,
            conversion_body_limit: DEFAULT_CONVERSION_BODY_LIMIT,
            default_admission_timeout: DEFAULT_ADMISSION_TIMEOUT,
            default_conversion_timeout: DEFAULT_CONVERSION_TIMEOUT,
            deadline_fraction: DEFAULT_DEADLINE_FRACTION,
        }
    }
    /// Uses an existing readiness flag (e.g. one shared with a health server).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }
    /// Maximum body size of `/validate` and `/mutate` (default 16 MiB).
    pub fn admission_body_limit(mut self, bytes: usize) -> Self {
        self.admission_body_limit = bytes;
        self
    }
    /// Maximum body size of `/convert` (default 64 MiB).
    pub fn conversion_body_limit(mut self, bytes: usize) -> Self {
        self.conversion_body_limit = bytes;
        self
    }
    /// Timeout assumed when an admission request has no `?timeout=` (default 10 s).
    pub fn default_admission_timeout(mut self, timeout: Duration) -> Self {
        self.default_admission_timeout = timeout;
        self
    }
    /// Timeout assumed when a conversion request has no `?timeout=` (default 30 s).
    pub fn default_conversion_timeout(mut self, timeout: Duration) -> Self {
        self.default_conversion_timeout = timeout;
        self
    }
    /// Share of the caller's timeout a handler may use (default 0.8, clamped to 0.05..=1).
    pub fn deadline_fraction(mut self, fraction: f64) -> Self {
        self.deadline_fraction = if fraction.is_finite() {
            fraction.clamp(0.05, 1.0)
        } else {
            DEFAULT_DEADLINE_FRACTION
        };
        self
    }
    /// Finishes the state.
    pub fn build(self) -> WebhookState {
        WebhookState {
            inner: Arc::new(Inner {
                validator: self.validator,
                mutator: self.mutator,
                converter: self.converter,
                readiness: self.readiness,
                admission_body_limit: self.admission_body_limit,
                conversion_body_limit: self.conversion_body_limit,
                default_admission_timeout: self.default_admission_timeout,
                default_conversion_timeout: self.default_conversion_timeout,
                deadline_fraction: self.deadline_fraction,
            }),
        }
    }
}

/// Builds the webhook router.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/convert", post(convert))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

// ---------------------------------------------------------------------------------
// Small response helpers.

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// `{"error": "..."}` with the given status.
fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::to_vec(&ErrorBody { error: message })
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    json_bytes(status, body)
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// An answer decided before the domain runs: a JSON error, or a finished review body.
/// (Small, unlike `Response`, so `Result<_, Early>` stays cheap.)
enum Early {
    Error(StatusCode, String),
    Review(Vec<u8>),
}

impl Early {
    fn error(status: StatusCode, message: &str) -> Self {
        Early::Error(status, message.to_owned())
    }
    fn review<T: Serialize>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Early::Review(body),
            Err(e) => {
                tracing::error!(error = %e, "failed to serialize response");
                Early::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to serialize response",
                )
            }
        }
    }
}

impl IntoResponse for Early {
    fn into_response(self) -> Response {
        match self {
            Early::Error(status, message) => error_response(status, &message),
            Early::Review(body) => json_bytes(StatusCode::OK, body),
        }
    }
}

fn json_ok<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, "failed to serialize response");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to serialize response",
            )
        }
    }
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok").into_response()
}

async fn readyz(State(state): State<WebhookState>) -> Response {
    if state.inner.readiness.is_ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not found")
}

async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

// ---------------------------------------------------------------------------------
// Body handling.

fn check_content_type(headers: &HeaderMap) -> Result<(), Early> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(Early::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "missing content-type; expected application/json",
        ));
    };
    let media = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() == Some("application/json") {
        Ok(())
    } else {
        Err(Early::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content-type; expected application/json",
        ))
    }
}

async fn read_json_body(req: Request, limit: usize) -> Result<Bytes, Early> {
    check_content_type(req.headers())?;
    let too_large = || {
        Early::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Early::error(
            StatusCode::BAD_REQUEST,
            &format!("failed to read request body: {e}"),
        )),
    }
}

/// Reads the body, but never for longer than the handler's whole budget (a client
/// trickling its body must not hold a handler past the caller's timeout).
async fn read_body_within(req: Request, limit: usize, budget: Duration) -> Result<Bytes, Early> {
    match tokio::time::timeout(budget, read_json_body(req, limit)).await {
        Ok(result) => result,
        Err(_) => Err(Early::error(
            StatusCode::REQUEST_TIMEOUT,
            "timed out reading the request body",
        )),
    }
}

/// The handler's budget: a share of `?timeout=` (or the default), minus time spent so far.
fn budget(req: &Request, default: Duration, fraction: f64) -> Duration {
    timeout_from_query(req.uri().query())
        .unwrap_or(default)
        .mul_f64(fraction)
}

/// The user-facing text for a guard failure; `budget` is the handler's whole deadline.
fn guard_message(e: &GuardError, budget: Duration) -> String {
    match e {
        GuardError::DeadlineExceeded(_) => format!(
            "internal error: webhook did not finish within its deadline of {} ms",
            budget.as_millis()
        ),
        GuardError::Panicked => "internal error".to_owned(),
    }
}

// ---------------------------------------------------------------------------------
// Admission.

#[derive(Clone, Copy, Debug)]
enum AdmissionKind {
    Validating,
    Mutating,
}

impl AdmissionKind {
    fn name(self) -> &'static str {
        match self {
            AdmissionKind::Validating => "validate",
            AdmissionKind::Mutating => "mutate",
        }
    }
}

async fn validate(State(state): State<WebhookState>, req: Request) -> Response {
    admission(state, req, AdmissionKind::Validating).await
}

async fn mutate(State(state): State<WebhookState>, req: Request) -> Response {
    admission(state, req, AdmissionKind::Mutating).await
}

/// Parses an admission body; `Err` is a finished response (4xx JSON, or a 200 denial
/// when the uid could be read).
fn parse_admission(body: &[u8]) -> Result<AdmissionRequest, Early> {
    let envelope_ok = |api: &Option<String>, kind: &Option<String>| {
        api.as_deref() == Some(ADMISSION_API_VERSION)
            && kind.as_deref() == Some(ADMISSION_REVIEW_KIND)
    };
    let envelope_err = |api: &Option<String>, kind: &Option<String>| {
        Early::error(
            StatusCode::BAD_REQUEST,
            &format!(
                "expected {ADMISSION_API_VERSION} {ADMISSION_REVIEW_KIND}, got apiVersion={:?} kind={:?}",
                api.as_deref().unwrap_or(""),
                kind.as_deref().unwrap_or("")
            ),
        )
    };
    match serde_json::from_slice::<AdmissionReviewIn>(body) {
        Ok(review) => {
            if !envelope_ok(&review.api_version, &review.kind) {
                return Err(envelope_err(&review.api_version, &review.kind));
            }
            review.request.ok_or_else(|| {
                Early::error(StatusCode::BAD_REQUEST, "AdmissionReview has no request")
            })
        }
        Err(full_err) => {
            let message = format!("malformed AdmissionReview: {full_err}");
            match serde_json::from_slice::<AdmissionReviewSkeleton>(body) {
                Ok(sk) if !envelope_ok(&sk.api_version, &sk.kind) => {
                    Err(envelope_err(&sk.api_version, &sk.kind))
                }
                Ok(AdmissionReviewSkeleton {
                    request: Some(r), ..
                }) if r.uid.as_deref().is_some_and(|u| !u.is_empty()) => {
                    let uid = r.uid.unwrap_or_default();
                    tracing::warn!(%uid, error = %full_err, "denying malformed AdmissionReview");
                    let subject = Subject {
                        group: "",
                        kind: "",
                        name: "",
                    };
                    Err(Early::review(&AdmissionReviewOut::from_verdict(
                        uid,
                        &subject,
                        Verdict::bad_request(message),
                    )))
                }
                _ => {
                    tracing::warn!(error = %full_err, "rejecting malformed AdmissionReview");
                    Err(Early::error(StatusCode::BAD_REQUEST, &message))
                }
            }
        }
    }
}

/// What the synchronous domain call decided.
enum Decided {
    /// A validator's verdict; it may get a second look before it is answered.
    Verdict(Verdict),
    /// A finished mutating review, and whether it admits.
    Review(Box<AdmissionReviewOut>, bool),
}

/// Runs the synchronous domain call (inline or on the blocking pool).
fn decide(
    kind: AdmissionKind,
    validator: &dyn Validator,
    mutator: &dyn Mutator,
    req: &AdmissionRequest,
) -> Decided {
    match kind {
        AdmissionKind::Validating => Decided::Verdict(validator.validate(req)),
        AdmissionKind::Mutating => {
            let (out, allowed) = mutate_review(mutator, req);
            Decided::Review(Box::new(out), allowed)
        }
    }
}

/// [`Validator::reconsider`] within `left` of the deadline; the first verdict stands
/// when the second look overruns or panics.
async fn second_look(
    validator: &dyn Validator,
    req: &AdmissionRequest,
    first: Verdict,
    left: Duration,
) -> Verdict {
    if left.is_zero() {
        return first;
    }
    let look = std::panic::AssertUnwindSafe(validator.reconsider(req, first.clone()));
    match tokio::time::timeout(left, futures::FutureExt::catch_unwind(look)).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(_)) => {
            tracing::error!(uid = %req.uid, "second look panicked; the first verdict stands");
            first
        }
        Err(_) => {
            tracing::warn!(uid = %req.uid, ?left, "second look overran the deadline; the first verdict stands");
            first
        }
    }
}

/// The mutating review of `req`, and whether it admits.
fn mutate_review(mutator: &dyn Mutator, req: &AdmissionRequest) -> (AdmissionReviewOut, bool) {
    let subject = Subject::of(req);
    if req.operation == Operation::Delete {
        // Never mutate a deletion: a patch there is an InternalError upstream.
        return (
            AdmissionReviewOut::from_verdict(req.uid.clone(), &subject, Verdict::allow()),
            true,
        );
    }
    if matches!(req.operation, Operation::Create | Operation::Update) && req.object.is_none() {
        let v = Verdict::bad_request("request.object is missing");
        return (
            AdmissionReviewOut::from_verdict(req.uid.clone(), &subject, v),
            false,
        );
    }
    match mutator.mutate(req) {
        Mutation::Verdict(v) => {
            let allowed = v.is_allowed();
            (
                AdmissionReviewOut::from_verdict(req.uid.clone(), &subject, v),
                allowed,
            )
        }
        Mutation::Patched { object, warnings } => {
            let original = match (&req.object, req.operation) {
                (Some(o), Operation::Create | Operation::Update) => o,
                _ => {
                    // CONNECT: patches are not applicable; admit unchanged.
                    let v = Verdict::allow_with_warnings(warnings);
                    return (
                        AdmissionReviewOut::from_verdict(req.uid.clone(), &subject, v),
                        true,
                    );
                }
            };
            match diff_patch(original, &object) {
                Ok(Some(patch)) => (
                    AdmissionReviewOut::patched(req.uid.clone(), &patch, warnings),
                    true,
                ),
                Ok(None) => {
                    let v = Verdict::allow_with_warnings(warnings);
                    (
                        AdmissionReviewOut::from_verdict(req.uid.clone(), &subject, v),
                        true,
                    )
                }
                Err(e) => {
                    tracing::error!(uid = %req.uid, error = %e, "failed to build patch");
                    (
                        AdmissionReviewOut::internal_error(
                            req.uid.clone(),
                            "internal error".to_owned(),
                        ),
                        false,
                    )
                }
            }
        }
    }
}

async fn admission(state: WebhookState, req: Request, kind: AdmissionKind) -> Response {
    let started = Instant::now();
    let inner = &state.inner;
    let budget = budget(
        &req,
        inner.default_admission_timeout,
        inner.deadline_fraction,
    );
    let body = match read_body_within(req, inner.admission_body_limit, budget).await {
        Ok(b) => b,
        Err(early) => return early.into_response(),
    };
    let request = match parse_admission(&body) {
        Ok(r) => r,
        Err(early) => return early.into_response(),
    };
    let body_len = body.len();
    drop(body);

    let uid = request.uid.clone();
    let operation = request.operation;
    let obj_kind = request.kind.kind.clone();
    let validator = inner.validator.clone();
    let mutator = inner.mutator.clone();
    let remaining = budget.saturating_sub(started.elapsed());
    let request = Arc::new(request);
    let decided = run_sized(kind.name(), body_len, remaining, {
        let request = request.clone();
        let validator = validator.clone();
        move || decide(kind, validator.as_ref(), mutator.as_ref(), &request)
    })
    .await;
    let outcome = match decided {
        Ok(Decided::Verdict(verdict)) => {
            let verdict = if validator.wants_second_look(&request, &verdict) {
                let left = budget.saturating_sub(started.elapsed());
                second_look(validator.as_ref(), &request, verdict, left).await
            } else {
                verdict
            };
            let allowed = verdict.is_allowed();
            let subject = Subject::of(&request);
            let out = AdmissionReviewOut::from_verdict(request.uid.clone(), &subject, verdict);
            Ok((serde_json::to_vec(&out), allowed))
        }
        Ok(Decided::Review(out, allowed)) => Ok((serde_json::to_vec(&out), allowed)),
        Err(e) => Err(e),
    };
    match outcome {
        Ok((Ok(body), allowed)) => {
            tracing::debug!(
                handler = kind.name(),
                %uid,
                kind = %obj_kind,
                ?operation,
                allowed,
                elapsed_us = started.elapsed().as_micros() as u64,
                "admission reviewed"
            );
            json_bytes(StatusCode::OK, body)
        }
        Ok((Err(e), _)) => {
            tracing::error!(%uid, error = %e, "failed to serialize AdmissionReview");
            json_ok(&AdmissionReviewOut::internal_error(
                uid,
                "internal error".to_owned(),
            ))
        }
        Err(e) => json_ok(&AdmissionReviewOut::internal_error(
            uid,
            guard_message(&e, budget),
        )),
    }
}

// ---------------------------------------------------------------------------------
// Conversion.

fn parse_conversion(
    body: &[u8],
) -> Result<(String, String, Vec<Box<serde_json::value::RawValue>>), Early> {
    let envelope_ok = |api: &Option<String>, kind: &Option<String>| {
        api.as_deref() == Some(CONVERSION_API_VERSION)
            && kind.as_deref() == Some(CONVERSION_REVIEW_KIND)
    };
    let envelope_err = |api: &Option<String>, kind: &Option<String>| {
        Early::error(
            StatusCode::BAD_REQUEST,
            &format!(
                "expected {CONVERSION_API_VERSION} {CONVERSION_REVIEW_KIND}, got apiVersion={:?} kind={:?}",
                api.as_deref().unwrap_or(""),
                kind.as_deref().unwrap_or("")
            ),
        )
    };
    match serde_json::from_slice::<ConversionReviewIn>(body) {
        Ok(review) => {
            if !envelope_ok(&review.api_version, &review.kind) {
                return Err(envelope_err(&review.api_version, &review.kind));
            }
            let Some(r) = review.request else {
                return Err(Early::error(
                    StatusCode::BAD_REQUEST,
                    "ConversionReview has no request",
                ));
            };
            if r.desired_api_version.is_empty() {
                return Err(Early::review(&ConversionReviewOut::failure(
                    r.uid,
                    "request.desiredAPIVersion is empty".to_owned(),
                )));
            }
            Ok((r.uid, r.desired_api_version, r.objects))
        }
        Err(full_err) => {
            let message = format!("malformed ConversionReview: {full_err}");
            match serde_json::from_slice::<ConversionReviewSkeleton>(body) {
                Ok(sk) if !envelope_ok(&sk.api_version, &sk.kind) => {
                    Err(envelope_err(&sk.api_version, &sk.kind))
                }
                Ok(ConversionReviewSkeleton {
                    request: Some(r), ..
                }) if r.uid.as_deref().is_some_and(|u| !u.is_empty()) => {
                    let uid = r.uid.unwrap_or_default();
                    tracing::warn!(%uid, error = %full_err, "failing malformed ConversionReview");
                    Err(Early::review(&ConversionReviewOut::failure(uid, message)))
                }
                _ => {
                    tracing::warn!(error = %full_err, "rejecting malformed ConversionReview");
                    Err(Early::error(StatusCode::BAD_REQUEST, &message))
                }
            }
        }
    }
}

async fn convert(State(state): State<WebhookState>, req: Request) -> Response {
    let started = Instant::now();
    let inner = &state.inner;
    let budget = budget(
        &req,
        inner.default_conversion_timeout,
        inner.deadline_fraction,
    );
    let body = match read_body_within(req, inner.conversion_body_limit, budget).await {
        Ok(b) => b,
        Err(early) => return early.into_response(),
    };
    let (uid, desired, objects) = match parse_conversion(&body) {
        Ok(parts) => parts,
        Err(early) => return early.into_response(),
    };
    let body_len = body.len();
    drop(body);

    let count = objects.len();
    let converter = inner.converter.clone();
    let uid_for_task = uid.clone();
    let remaining = budget.saturating_sub(started.elapsed());
    let outcome = run_sized("convert", body_len, remaining, move || {
        let out = convert_review(converter.as_ref(), uid_for_task, &desired, objects);
        serde_json::to_vec(&out)
    })
    .await;
    match outcome {
        Ok(Ok(body)) => {
            tracing::debug!(
                %uid,
                objects = count,
                elapsed_us = started.elapsed().as_micros() as u64,
                "conversion reviewed"
            );
            json_bytes(StatusCode::OK, body)
        }
        Ok(Err(e)) => {
            tracing::error!(%uid, error = %e, "failed to serialize ConversionReview");
            json_ok(&ConversionReviewOut::failure(
                uid,
                "internal error".to_owned(),
            ))
        }
        Err(e) => json_ok(&ConversionReviewOut::failure(
            uid,
            guard_message(&e, budget),
        )),
    }
}
