//! The NATS server's monitoring endpoints (`/varz`, `/routez`, `/healthz`, ...) read over
//! plain HTTP from the host, as the Go operator's e2e helpers read them.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path` on `addr` and parse the body as JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<Value> {
    let body = get(addr, path).await?;
    serde_json::from_str(&body).with_context(|| format!("{addr}{path}: not JSON: {body}"))
}

/// GET `path` on `addr`; the body of a 2xx answer.
pub async fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .with_context(|| format!("{addr}{path}: timed out"))??;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ok = head
        .get(9..12)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..300).contains(&c));
    if !ok {
        bail!("{addr}{path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}
