//! The JetStream API requests the asset controller makes: read, create, update and delete
//! a stream or a durable consumer, as plain requests on `$JS.API.>` (or
//! `$JS.<domain>.API.>`) with the configurations [`super::server_config`] builds. The
//! server's answer is returned as it is (the `config` it holds, its figures) so that
//! [`super::sync`] compares field for field what the server holds.

use std::time::Duration;

use serde_json::{Value, json};

/// How long one request may take: the stream leader answers in milliseconds; a longer
/// wait means an election, and the next reconcile asks again.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// `err_code` of "stream not found".
pub const STREAM_NOT_FOUND: u64 = 10059;
/// `err_code` of "consumer not found".
const CONSUMER_NOT_FOUND: u64 = 10014;

/// An answer of the JetStream API that carries an `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP-like code (404, 400, 500, ...).
    pub code: u64,
    /// The JetStream error code (`10059`, ...).
    pub err_code: u64,
    /// The server's words.
    pub description: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.description, self.err_code)
    }
}

/// Why a request did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with an error.
    Refused(ApiError),
    /// No answer (no connection, no responders, timeout, unreadable).
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(e) => e.fmt(f),
            Failure::Unreachable(why) => f.write_str(why),
        }
    }
}

/// A client of one account's JetStream API (in one domain).
#[derive(Clone)]
pub struct JetStreamApi {
    client: async_nats::Client,
    prefix: String,
}

impl JetStreamApi {
    /// The API of the account `client` is in; `domain` selects a JetStream domain.
    pub fn new(client: async_nats::Client, domain: Option<&str>) -> Self {
        let prefix = match domain.filter(|d| !d.is_empty()) {
            Some(d) => format!("$JS.{d}.API"),
            None => "$JS.API".to_string(),
        };
        JetStreamApi { client, prefix }
    }

    /// The stream's info (`config`, `state`, `cluster`), or `None` when it does not exist.
    pub async fn stream_info(&self, stream: &str) -> Result<Option<Value>, Failure> {
        match self.request(&format!("STREAM.INFO.{stream}"), None).await {
            Err(Failure::Refused(e)) if e.err_code == STREAM_NOT_FOUND => Ok(None),
            other => other.map(Some),
        }
    }

    /// Creates the stream `config` describes; the answer is its info.
    pub async fn create_stream(&self, config: &Value) -> Result<Value, Failure> {
        let name = config["name"].as_str().unwrap_or_default();
        self.request(&format!("STREAM.CREATE.{name}"), Some(config))
            .await
    }

    /// Updates the stream `config` describes to it; the answer is its info.
    pub async fn update_stream(&self, config: &Value) -> Result<Value, Failure> {
        let name = config["name"].as_str().unwrap_or_default();
        self.request(&format!("STREAM.UPDATE.{name}"), Some(config))
            .await
    }

    /// Deletes the stream and its messages; `Ok` when it is gone already.
    pub async fn delete_stream(&self, stream: &str) -> Result<(), Failure> {
        match self.request(&format!("STREAM.DELETE.{stream}"), None).await {
            Ok(_) => Ok(()),
            Err(Failure::Refused(e)) if e.err_code == STREAM_NOT_FOUND => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The durable consumer's info (`config`, pending counts, `cluster`), or `None` when
    /// it (or its stream) does not exist.
    pub async fn consumer_info(&self, stream: &str, name: &str) -> Result<Option<Value>, Failure> {
        match self
            .request(&format!("CONSUMER.INFO.{stream}.{name}"), None)
            .await
        {
            Err(Failure::Refused(e))
                if e.err_code == CONSUMER_NOT_FOUND || e.err_code == STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// Creates (`update` false) or updates the durable consumer `config` describes on
    /// `stream`; the answer is its info. Servers before 2.10 ignore the action and
    /// create or update.
    pub async fn put_consumer(
        &self,
        stream: &str,
        config: &Value,
        update: bool,
    ) -> Result<Value, Failure> {
        let name = config["durable_name"].as_str().unwrap_or_default();
        let body = json!({
            "stream_name": stream,
            "config": config,
            "action": if update { "update" } else { "create" },
        });
        self.request(&format!("CONSUMER.CREATE.{stream}.{name}"), Some(&body))
            .await
    }

    /// Deletes the consumer; `Ok` when it (or its stream) is gone already.
    pub async fn delete_consumer(&self, stream: &str, name: &str) -> Result<(), Failure> {
        match self
            .request(&format!("CONSUMER.DELETE.{stream}.{name}"), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(Failure::Refused(e))
                if e.err_code == CONSUMER_NOT_FOUND || e.err_code == STREAM_NOT_FOUND =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn request(&self, api: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let subject = format!("{}.{api}", self.prefix);
        let payload = body.map(Value::to_string).unwrap_or_default();
        let reply = tokio::time::timeout(TIMEOUT, self.client.request(subject, payload.into()))
            .await
            .map_err(|_| Failure::Unreachable("the JetStream API did not answer in time".into()))?
            .map_err(|e| Failure::Unreachable(format!("the JetStream API did not answer: {e}")))?;
        answer(&reply.payload)
    }
}

/// Reads an answer: its `error`, or the answer itself.
pub fn answer(payload: &[u8]) -> Result<Value, Failure> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Failure::Unreachable(format!("unreadable JetStream API answer ({e})")))?;
    match value.get("error") {
        Some(e) if !e.is_null() => Err(Failure::Refused(ApiError {
            code: e["code"].as_u64().unwrap_or(0),
            err_code: e["err_code"].as_u64().unwrap_or(0),
            description: e["description"].as_str().unwrap_or_default().to_string(),
        })),
        _ => Ok(value),
    }
}
