//! What a member's own monitoring endpoint says about its JetStream data: `/healthz`
//! (the server's verdict: meta group, streams and consumers current) and `/jsz` (the
//! numbers behind it). The reconciler asks before every voluntary stop; the verdict is
//! pure ([`verdict`]) and the HTTP edge is a plain HTTP/1.1 GET on the pod IP.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::api::consts::MONITORING_PORT;

/// How long one monitoring request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest monitoring answer we read (`/jsz` without details is small).
const MAX_BODY: usize = 1 << 20;

/// `/jsz` fields the verdict looks at.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Jsz {
    /// Streams this server holds.
    #[serde(default)]
    pub streams: u64,
    /// Consumers this server holds.
    #[serde(default)]
    pub consumers: u64,
    /// Messages stored on this server.
    #[serde(default)]
    pub messages: u64,
    /// Bytes stored on this server.
    #[serde(default)]
    pub bytes: u64,
    /// The JetStream meta group, present when clustered.
    #[serde(default)]
    pub meta_cluster: Option<MetaCluster>,
}

/// `/jsz` `meta_cluster`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MetaCluster {
    /// Name of the meta leader; empty while there is none.
    #[serde(default)]
    pub leader: String,
}

/// One member's answers.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberHealth {
    /// HTTP status of `/healthz` and its body (the server says why it is unhealthy).
    pub healthz: Result<(u16, String), String>,
    /// `/jsz`, when it answered.
    pub jsz: Result<Jsz, String>,
}

/// The JetStream verdict on one member: `Ok` when it may be relied on, else why not,
/// in words for a condition message.
pub fn verdict(pod: &str, h: &MemberHealth) -> Result<(), String> {
    match &h.healthz {
        Err(e) => return Err(format!("{pod} /healthz did not answer: {e}")),
        Ok((200, _)) => {}
        Ok((code, body)) => {
            let why = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(format!("{pod} /healthz {code}: {why}"));
        }
    }
    match &h.jsz {
        Err(e) => Err(format!("{pod} /jsz did not answer: {e}")),
        Ok(j) => match &j.meta_cluster {
            Some(m) if m.leader.is_empty() => Err(format!(
                "{pod} /jsz: the JetStream meta group has no leader"
            )),
            _ => Ok(()),
        },
    }
}

/// What is wrong with every live member but `target`, asked all at once: the wait is
/// one health timeout, not one per member, and the answer names every member that is
/// behind (a frozen meta leader makes the others report "not current" too).
pub async fn behind(
    pods: &[Arc<k8s_openapi::api::core::v1::Pod>],
    target: &str,
    https: bool,
) -> Vec<String> {
    use kube::ResourceExt;
    let checks = pods
        .iter()
        .filter(|p| p.name_any() != target && p.metadata.deletion_timestamp.is_none())
        .map(|p| async move {
            let name = p.name_any();
            match p.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                None => Err(format!("{name} has no pod IP yet")),
                Some(ip) => verdict(&name, &check(&ip, https).await),
            }
        });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// Asks member at `ip` for `/healthz` and `/jsz` (HTTPS when `https`).
pub async fn check(ip: &str, https: bool) -> MemberHealth {
    MemberHealth {
        healthz: get_limited(ip, https, "/healthz", MAX_BODY).await,
        jsz: get_json(ip, https, "/jsz", MAX_BODY).await,
    }
}

/// GET `path` (at most `max` bytes) and decode the 200 answer as JSON.
pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
    ip: &str,
    https: bool,
    path: &str,
    max: usize,
) -> Result<T, String> {
    match get_limited(ip, https, path, max).await? {
        (200, body) => serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}")),
        (code, _) => Err(format!("HTTP {code}")),
    }
}

/// GET `path` from the monitoring port of the member at `ip`, reading at most `max`
/// bytes of the answer, within [`REQUEST_TIMEOUT`].
async fn get_limited(
    ip: &str,
    https: bool,
    path: &str,
    max: usize,
) -> Result<(u16, String), String> {
    tokio::time::timeout(REQUEST_TIMEOUT, fetch(ip, https, path, max))
        .await
        .map_err(|_| format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
}

async fn fetch(ip: &str, https: bool, path: &str, max: usize) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect((ip, MONITORING_PORT as u16))
        .await
        .map_err(|e| e.to_string())?;
    if https {
        let name =
            rustls::pki_types::ServerName::try_from(ip.to_string()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(insecure_tls())
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        request(tls, ip, path, max).await
    } else {
        request(tcp, ip, path, max).await
    }
}

async fn request<S>(io: S, ip: &str, path: &str, max: usize) -> Result<(u16, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, ip)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), max)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// TLS for `tls.httpsMonitoring`: the serving certificate names the client DNS names,
/// not pod IPs, so it is not verified; only health is read over it, nothing is sent.
pub(crate) fn insecure_tls() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(c) => Arc::new(c),
        // The ring provider supports the default versions; unreachable in practice.
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(code: u16, body: &str, jsz: Result<Jsz, String>) -> MemberHealth {
        MemberHealth {
            healthz: Ok((code, body.into())),
            jsz,
        }
    }

    #[test]
    fn healthy_member_with_a_meta_leader_passes() {
        let jsz = Jsz {
            meta_cluster: Some(MetaCluster {
                leader: "c-1".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            verdict("c-2", &health(200, r#"{"status":"ok"}"#, Ok(jsz))),
            Ok(())
        );
    }

    #[test]
    fn the_servers_own_reason_is_quoted() {
        let body = r#"{"status":"unavailable","status_code":503,"error":"JetStream stream 'A > ORDERS' is not current"}"#;
        let v = verdict("c-2", &health(503, body, Ok(Jsz::default())));
        assert_eq!(
            v,
            Err("c-2 /healthz 503: JetStream stream 'A > ORDERS' is not current".into())
        );
    }

    #[test]
    fn no_meta_leader_or_no_answer_blocks() {
        let jsz = Jsz {
            meta_cluster: Some(MetaCluster::default()),
            ..Default::default()
        };
        assert!(
            verdict("c-3", &health(200, "{}", Ok(jsz))).is_err_and(|e| e.contains("no leader"))
        );
        let down = MemberHealth {
            healthz: Err("connection refused".into()),
            jsz: Err("connection refused".into()),
        };
        assert!(verdict("c-3", &down).is_err_and(|e| e.contains("did not answer")));
    }

    #[test]
    fn jsz_of_a_real_server_parses() {
        // Trimmed /jsz of nats-server 2.15.1 in a 3-member cluster.
        let raw = r#"{"server_id":"N","now":"2026-11-24T00:00:00Z","config":{"max_memory":1,"max_storage":2,"store_dir":"/data/jetstream"},"memory":0,"storage":1200,"reserved_memory":0,"reserved_storage":0,"accounts":1,"ha_assets":2,"api":{"total":5,"errors":0},"streams":1,"consumers":1,"messages":10,"bytes":1200,"meta_cluster":{"name":"c","leader":"c-2","peer":"x","cluster_size":3,"pending":0}}"#;
        let j: Jsz = serde_json::from_str(raw).expect("parses");
        assert_eq!((j.streams, j.consumers, j.messages), (1, 1, 10));
        assert_eq!(j.meta_cluster.map(|m| m.leader), Some("c-2".into()));
    }
}
