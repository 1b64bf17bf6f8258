//! Probes as the kubelet runs them: `httpGet` (HTTP or HTTPS without certificate checks,
//! success on 200–399) and `tcpSocket` against the pod IP from the host, `exec` inside the
//! container (see the worker). Timings follow the probe's fields and the kubelet's defaults.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How one probe is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// GET `path` on `port`.
    Http {
        /// Port.
        port: u16,
        /// Path and query.
        path: String,
        /// HTTPS (certificates are not checked, as the kubelet does).
        https: bool,
    },
    /// A TCP connect to `port`.
    Tcp(u16),
    /// A command in the container.
    Exec(Vec<String>),
}

/// A probe with its timing (the kubelet's defaults where unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// What to do.
    pub action: Action,
    /// Before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Consecutive failures that count.
    pub failure_threshold: u32,
    /// Consecutive successes that count.
    pub success_threshold: u32,
}

fn port_of(c: &Container, p: &IntOrString) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .as_ref()?
            .iter()
            .find(|cp| cp.name.as_deref() == Some(name))
            .and_then(|cp| u16::try_from(cp.container_port).ok()),
    }
}

/// The probe of container `c` as a [`Spec`] (`None`: no probe, or one we cannot run).
pub fn spec(c: &Container, p: Option<&Probe>) -> Option<Spec> {
    let p = p?;
    let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
    let action = if let Some(h) = &p.http_get {
        Action::Http {
            port: port_of(c, &h.port)?,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
            https: h.scheme.as_deref() == Some("HTTPS"),
        }
    } else if let Some(t) = &p.tcp_socket {
        Action::Tcp(port_of(c, &t.port)?)
    } else if let Some(e) = &p.exec {
        Action::Exec(e.command.clone().unwrap_or_default())
    } else {
        return None;
    };
    Some(Spec {
        action,
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
    })
}

#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, host: &str, path: &str) -> bool {
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: kube-probe/e2e\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]).await {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    // "HTTP/1.x NNN"
    let line = String::from_utf8_lossy(&head[..n]);
    line.get(9..12)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..400).contains(&c))
}

/// Runs a network probe against `ip` (exec probes are the worker's).
pub async fn run_network(action: &Action, ip: Ipv4Addr, timeout: Duration) -> bool {
    let attempt = async {
        match action {
            Action::Tcp(port) => TcpStream::connect((ip, *port)).await.is_ok(),
            Action::Http { port, path, https } => {
                let Ok(tcp) = TcpStream::connect((ip, *port)).await else {
                    return false;
                };
                if !*https {
                    return get(tcp, &ip.to_string(), path).await;
                }
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyCert))
                        .with_no_client_auth()
                });
                let Ok(config) = config else { return false };
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = ServerName::IpAddress(ip.into());
                match connector.connect(name, tcp).await {
                    Ok(tls) => get(tls, &ip.to_string(), path).await,
                    Err(_) => false,
                }
            }
            Action::Exec(_) => false,
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

/// Consecutive results of one probe, and what they add up to.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    successes: u32,
    failures: u32,
    /// The probe's verdict so far (`None`: not decided yet).
    pub verdict: Option<bool>,
}

impl Tracker {
    /// Records a result; returns the verdict when it changed.
    pub fn record(&mut self, spec: &Spec, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let next = if self.successes >= spec.success_threshold {
            Some(true)
        } else if self.failures >= spec.failure_threshold {
            Some(false)
        } else {
            self.verdict
        };
        let changed = next != self.verdict;
        self.verdict = next;
        changed.then_some(next).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};

    #[test]
    fn probe_specs_take_named_ports_and_defaults() {
        let c = Container {
            name: "nats".into(),
            ports: Some(vec![ContainerPort {
                name: Some("monitoring".into()),
                container_port: 8222,
                ..Default::default()
            }]),
            ..Default::default()
        };
        let p = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("monitoring".into()),
                path: Some("/healthz".into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        };
        let s = spec(&c, Some(&p)).expect("spec");
        assert_eq!(
            s.action,
            Action::Http {
                port: 8222,
                path: "/healthz".into(),
                https: false
            }
        );
        assert_eq!(s.period, Duration::from_secs(5));
        assert_eq!(s.failure_threshold, 3);
        assert_eq!(spec(&c, None), None);
    }

    #[test]
    fn thresholds_decide_verdicts() {
        let s = Spec {
            action: Action::Tcp(1),
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 2,
            success_threshold: 1,
        };
        let mut t = Tracker::default();
        assert_eq!(t.record(&s, false), None);
        assert_eq!(t.record(&s, false), Some(false));
        assert_eq!(t.record(&s, true), Some(true));
        assert_eq!(t.record(&s, true), None);
        assert_eq!(t.record(&s, false), None);
        assert_eq!(t.verdict, Some(true));
    }

    #[tokio::test]
    async fn http_probes_read_the_status_code() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            for code in [200u16, 503] {
                if let Ok((mut s, _)) = listener.accept().await {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(format!("HTTP/1.1 {code} X\r\n\r\n").as_bytes())
                        .await;
                }
            }
        });
        let a = Action::Http {
            port,
            path: "/healthz".into(),
            https: false,
        };
        let ip = Ipv4Addr::LOCALHOST;
        assert!(run_network(&a, ip, Duration::from_secs(2)).await);
        assert!(!run_network(&a, ip, Duration::from_secs(2)).await);
        assert!(!run_network(&Action::Tcp(port), ip, Duration::from_secs(2)).await);
    }
}
