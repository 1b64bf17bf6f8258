//! Requests the operator makes as its system user (see [`crate::render::system_user`]):
//! move a stream's replica off a server (`$JS.API.ACCOUNT.STREAM.MOVE`) and remove a
//! departed server from the JetStream meta group (`$JS.API.SERVER.REMOVE`). Only the
//! meta leader answers either, so each goes out once per reconcile through a client
//! that may land on any member.

use std::time::Duration;

use serde::Deserialize;

use crate::render::system_user::SystemUser;

/// How long a connection or a request may take: the meta leader answers in
/// milliseconds; a longer wait means it is being elected, and the next reconcile asks
/// again.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a cluster as the operator's system user.
pub struct SystemClient {
    client: async_nats::Client,
}

/// A JetStream API answer's `error`.
#[derive(Debug, Deserialize)]
struct ApiAnswer {
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u16,
    #[serde(default)]
    description: String,
}

/// `10040`: the server holds no replica of the stream (already moved); `10044`: it is
/// not a meta peer (already removed); `10059`: the stream is gone. The work is done.
const DONE_CODES: &[u16] = &[10040, 10044, 10059];

impl SystemClient {
    /// Connects to the first of `addresses` (`ip:port`) that answers. With client TLS
    /// the server's certificate names DNS names, not pod IPs, so it is not verified
    /// (as for the monitoring port).
    pub async fn connect(
        addresses: &[String],
        user: &SystemUser,
        tls: bool,
    ) -> Result<SystemClient, String> {
        if addresses.is_empty() {
            return Err("no member has an IP".into());
        }
        let mut options = async_nats::ConnectOptions::with_user_and_password(
            user.username.clone(),
            user.password.clone(),
        )
        .name("nats-operator")
        .connection_timeout(TIMEOUT)
        .request_timeout(Some(TIMEOUT))
        .ignore_discovered_servers()
        .max_reconnects(Some(1));
        if tls {
            let config = std::sync::Arc::unwrap_or_clone(super::health::insecure_tls());
            options = options.require_tls(true).tls_client_config(config);
        }
        let urls: Vec<String> = addresses.iter().map(|a| format!("nats://{a}")).collect();
        let client = tokio::time::timeout(TIMEOUT * 2, options.connect(urls.as_slice()))
            .await
            .map_err(|_| "connecting timed out".to_string())?
            .map_err(|e| format!("connecting as the system user failed: {e}"))?;
        Ok(SystemClient { client })
    }

    /// Asks the meta leader to move `account`'s `stream` off `server`: it adds a
    /// replica elsewhere, and drops the one on `server` once the new one is current.
    pub async fn move_stream(
        &self,
        account: &str,
        stream: &str,
        server: &str,
    ) -> Result<(), String> {
        let subject = format!("$JS.API.ACCOUNT.STREAM.MOVE.{account}.{stream}");
        self.request(subject, serde_json::json!({ "server": server }))
            .await
            .map_err(|e| format!("moving stream {account}/{stream} off {server}: {e}"))
    }

    /// Asks the meta leader to forget the meta peer `server` (by name: the request's
    /// `peer` field; `peer_id` would be the raft id).
    pub async fn remove_server(&self, server: &str) -> Result<(), String> {
        self.request(
            "$JS.API.SERVER.REMOVE".to_string(),
            serde_json::json!({ "peer": server }),
        )
        .await
        .map_err(|e| format!("removing {server} from the JetStream meta group: {e}"))
    }

    async fn request(&self, subject: String, body: serde_json::Value) -> Result<(), String> {
        let reply = self
            .client
            .request(subject, body.to_string().into())
            .await
            .map_err(|e| e.to_string())?;
        let answer: ApiAnswer = serde_json::from_slice(&reply.payload)
            .map_err(|e| format!("unreadable answer ({e})"))?;
        match answer.error {
            None => Ok(()),
            Some(e) if DONE_CODES.contains(&e.err_code) => Ok(()),
            Some(e) => Err(format!("{} ({}/{})", e.description, e.code, e.err_code)),
        }
    }
}
