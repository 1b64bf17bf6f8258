//! A careful JetStream producer and a reader of everything a stream stored: the
//! scenarios that roll, scale or replace members under load publish through
//! [`publisher`] and then check with [`stored`] that every acknowledged message is there.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream;
use async_nats::jetstream::stream::RawMessageErrorKind;
use futures::StreamExt;

/// What the publisher saw.
#[derive(Debug, Default)]
pub struct Published {
    /// Message ids (`Nats-Msg-Id`) acknowledged by the stream.
    pub acked: BTreeSet<u64>,
    /// Ids never acknowledged within the deadline.
    pub gave_up: Vec<String>,
    /// Ids whose first publish attempt failed and was retried.
    pub retried: BTreeSet<u64>,
    /// The longest time from a message's first attempt to its acknowledgement.
    pub longest_wait: Duration,
}

/// A producer keeps retrying one message for this long (the same budget the request
/// scenario of the real-NATS suite gives its clients): a member that just started may
/// answer "no responders" until its routes carry the stream's interest.
pub const PUBLISH_DEADLINE: Duration = Duration::from_secs(30);

/// Publishes `<prefix>.<n>` with `Nats-Msg-Id: n` every 10 ms until `stop`, retrying an
/// unacknowledged publish with the same id (the stream deduplicates) within
/// [`PUBLISH_DEADLINE`], as a careful producer does.
pub fn publisher(
    js: jetstream::Context,
    prefix: &str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Published> {
    let prefix = prefix.to_string();
    tokio::spawn(async move {
        let mut out = Published::default();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let started = Instant::now();
            let mut last = String::new();
            let mut acked = false;
            let mut attempt = 0u32;
            while started.elapsed() < PUBLISH_DEADLINE {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", n.to_string().as_str());
                let sent = js
                    .publish_with_headers(format!("{prefix}.{n}"), headers, n.to_string().into())
                    .await;
                match sent {
                    Ok(ack) => match ack.await {
                        Ok(_) => {
                            acked = true;
                            break;
                        }
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
                if attempt == 0 {
                    out.retried.insert(n);
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if acked {
                out.acked.insert(n);
                out.longest_wait = out.longest_wait.max(started.elapsed());
            } else {
                out.gave_up.push(format!("#{n}: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out
    })
}

/// One stored message: its stream sequence, `Nats-Msg-Id` and when the stream took it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Stream sequence.
    pub seq: u64,
    /// `Nats-Msg-Id`.
    pub id: u64,
    /// When the stream stored it.
    pub published: String,
}

/// Every message of the stream, in order: each sequence from the first to the last read
/// from the stream leader's store (a consumer's deliveries would be a second system to
/// trust; a sequence without a message, which a stream never has here, is skipped).
pub async fn stored(js: &jetstream::Context, stream: &str) -> Result<Vec<Stored>> {
    let mut stream = js.get_stream(stream).await.context("stream info")?;
    let state = stream.info().await.context("stream info")?.state.clone();
    let stream = &stream;
    let reads = futures::stream::iter(state.first_sequence..=state.last_sequence)
        .map(|seq| async move {
            let mut last = String::new();
            for _ in 0..20 {
                match stream.get_raw_message(seq).await {
                    Ok(m) => return Ok(Some(m)),
                    Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            bail!("reading sequence {seq}: {last}")
        })
        .buffered(32)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::with_capacity(state.messages as usize);
    for read in reads {
        let Some(m) = read? else { continue };
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .and_then(|v| v.as_str().parse().ok())
            .with_context(|| format!("sequence {} has no Nats-Msg-Id", m.sequence))?;
        out.push(Stored {
            seq: m.sequence,
            id,
            published: m.time.to_string(),
        });
    }
    Ok(out)
}

/// Stored messages whose id was already stored at a lower sequence.
pub fn extra_copies(messages: &[Stored]) -> Vec<&Stored> {
    let mut seen = BTreeSet::new();
    messages.iter().filter(|m| !seen.insert(m.id)).collect()
}

/// Deduplication by `Nats-Msg-Id` is the stream leader's: a publish retried while the
/// leadership moves can be stored twice (seen now and then in the upgrade roll, with
/// 2.9.10 servers still in the cluster). Such a copy comes from the client's retry,
/// never from a roll alone: every extra copy must be of a publish the client retried.
pub fn only_retries_copied(copies: &[&Stored], published: &Published) -> Result<()> {
    let unexplained: Vec<&&Stored> = copies
        .iter()
        .filter(|m| !published.retried.contains(&m.id))
        .collect();
    ensure!(
        unexplained.is_empty(),
        "stored twice without a retry: {unexplained:?}"
    );
    Ok(())
}
