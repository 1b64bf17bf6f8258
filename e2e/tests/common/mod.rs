//! Request-reply load shared by the scenarios that replace members under traffic.

use std::time::{Duration, Instant};

use anyhow::Result;

/// What the requester of an [`EchoLoad`] saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Requests answered (within their deadline).
    pub ok: u64,
    /// Requests that got no right answer within 30 s, with the last error.
    pub errors: Vec<String>,
    /// Requests that needed more than one attempt.
    pub retried: u64,
    /// The slowest answer, retries included.
    pub slowest: Duration,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request-reply {} answered, {} lost, {} needed a retry, slowest answer {:.1} s",
            self.ok,
            self.errors.len(),
            self.retried,
            self.slowest.as_secs_f64()
        )
    }
}

/// Request-reply load through a client Service: three responders in a queue group and one
/// requester, all connected through the Service as users' clients are (a rolled member's
/// advertised pod IP is dead, and reconnecting to it costs seconds).
///
/// Core NATS request-reply is at most once: a request in flight on a connection that lame
/// duck (or a stop) closes is gone, and a client reconnecting through the Service may first
/// reach a server that is itself stopping. Users retry idempotent requests within their own
/// deadline; so does this requester (2 s per attempt, for up to 30 s), and what counts as
/// lost is a request that got no reply within it.
pub struct EchoLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    load: tokio::task::JoinHandle<LoadReport>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl EchoLoad {
    /// Connects the responders and the requester to `url` and starts requesting.
    pub async fn start(url: &str) -> Result<EchoLoad> {
        use futures::StreamExt;
        let opts = || {
            // A first connection through a Service's ClusterIP can fail while kube-proxy
            // is still programming it (seen twice in six runs, before any roll began): retry
            // it as a deployed client does.
            async_nats::ConnectOptions::new()
                .request_timeout(Some(Duration::from_secs(2)))
                .ignore_discovered_servers()
                .retry_on_initial_connect()
        };
        let mut tasks = Vec::new();
        // The Service spreads the responders over the members, so while one member stops
        // the others serve.
        for i in 0..3 {
            let c = opts().name(format!("responder-{i}")).connect(url).await?;
            let mut sub = c.queue_subscribe("echo", "echoers".into()).await?;
            tasks.push(tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    if let Some(reply) = m.reply {
                        let _ = c.publish(reply, m.payload).await;
                    }
                }
            }));
        }
        let requester = opts().name("requester").connect(url).await?;
        requester.flush().await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut report = LoadReport::default();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let body = n.to_string();
                    let mut last = String::new();
                    let mut answered = false;
                    let started = Instant::now();
                    let mut attempts = 0u32;
                    while started.elapsed() < Duration::from_secs(30) {
                        attempts += 1;
                        match requester.request("echo", body.clone().into()).await {
                            Ok(m) if m.payload == body.as_bytes() => {
                                answered = true;
                                break;
                            }
                            Ok(m) => last = format!("wrong reply {:?}", m.payload),
                            Err(e) => last = e.to_string(),
                        }
                    }
                    report.retried += u64::from(attempts > 1);
                    report.slowest = report.slowest.max(started.elapsed());
                    if answered {
                        report.ok += 1;
                    } else {
                        report.errors.push(format!("#{n}: {last}"));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                report
            })
        };
        Ok(EchoLoad { stop, load, tasks })
    }

    /// Stops requesting (after the request in flight) and the responders; the report.
    pub async fn finish(self) -> Result<LoadReport> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let report = self.load.await?;
        for t in self.tasks {
            t.abort();
        }
        Ok(report)
    }
}
