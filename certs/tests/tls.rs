//! The generated chain over real TLS: trust, hostname/IP verification, protocol versions, ALPN,
//! and hot swapping of the served certificate.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::{sync::Arc, time::Duration};

use common::{ClientOpts, connect, serve};
use nats_operator_certs::{CertResolver, CertificateAuthority, service_sans};
use rustls::ProtocolVersion;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn sans() -> Vec<String> {
    let mut s = service_sans("nats-operator", "nats-system");
    s.push("localhost".into());
    s.push("127.0.0.1".into());
    s
}

fn setup() -> (CertificateAuthority, Arc<CertResolver>) {
    let ca = CertificateAuthority::generate("test-ca", Duration::from_secs(3600)).unwrap();
    let leaf = ca.issue_serving(&sans(), Duration::from_secs(600)).unwrap();
    let resolver = Arc::new(CertResolver::new(leaf.certified_key().unwrap()));
    (ca, resolver)
}

#[tokio::test]
async fn generated_chain_verifies_for_dns_names_and_ip() {
    let (ca, resolver) = setup();
    let server = serve(resolver).await;
    let roots = ca.cert_pem().as_bytes();
    for name in [
        "nats-operator.nats-system.svc",
        "nats-operator.nats-system.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ] {
        let hs = connect(server.addr, ClientOpts::new(roots, name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(hs.version, ProtocolVersion::TLSv1_3, "{name}");
    }
}

#[tokio::test]
async fn client_with_other_ca_or_wrong_name_fails() {
    let (_ca, resolver) = setup();
    let server = serve(resolver).await;
    let other = CertificateAuthority::generate("other-ca", Duration::from_secs(3600)).unwrap();
    let err = connect(
        server.addr,
        ClientOpts::new(other.cert_pem().as_bytes(), "localhost"),
    )
    .await
    .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    let (ca2, resolver2) = setup();
    let server2 = serve(resolver2).await;
    let err = connect(
        server2.addr,
        ClientOpts::new(ca2.cert_pem().as_bytes(), "not-in-sans.example"),
    )
    .await
    .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn tls12_only_client_succeeds_and_alpn_is_http11() {
    let (ca, resolver) = setup();
    let server = serve(resolver).await;
    let roots = ca.cert_pem().as_bytes();

    let mut opts = ClientOpts::new(roots, "localhost");
    opts.versions = common::TLS12_ONLY;
    let hs = connect(server.addr, opts).await.unwrap();
    assert_eq!(hs.version, ProtocolVersion::TLSv1_2);
    assert_eq!(hs.alpn.as_deref(), Some(&b"http/1.1"[..]));

    // Offering h2 and http/1.1: the server picks http/1.1.
    let hs = connect(server.addr, ClientOpts::new(roots, "localhost"))
        .await
        .unwrap();
    assert_eq!(hs.alpn.as_deref(), Some(&b"http/1.1"[..]));

    // Offering only h2: refused (HTTP/2 is off).
    let mut opts = ClientOpts::new(roots, "localhost");
    opts.alpn = vec![b"h2".to_vec()];
    let err = connect(server.addr, opts).await.unwrap_err();
    assert!(err.contains("NoApplicationProtocol"), "{err}");

    // No ALPN at all is fine (the apiserver may not send it).
    let mut opts = ClientOpts::new(roots, "localhost");
    opts.alpn = vec![];
    let hs = connect(server.addr, opts).await.unwrap();
    assert_eq!(hs.alpn, None);
}

/// A hand-made TLS 1.0 ClientHello (no extensions) must get an alert, never a ServerHello.
async fn legacy_hello(addr: std::net::SocketAddr, minor: u8) -> Vec<u8> {
    let mut body = vec![0x03, minor];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES128-SHA, AES256-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply)).await;
    reply
}

#[tokio::test]
async fn tls10_and_tls11_are_refused() {
    let (_ca, resolver) = setup();
    let server = serve(resolver).await;
    for minor in [1u8, 2] {
        let reply = legacy_hello(server.addr, minor).await;
        assert!(
            !reply.is_empty(),
            "server sent nothing for TLS 1.{}",
            minor - 1
        );
        assert_eq!(reply[0], 0x15, "expected an alert record, got {reply:?}");
        // Alert level fatal (2); description protocol_version (70) or handshake_failure (40).
        assert_eq!(reply.get(5), Some(&2));
        assert!(matches!(reply.get(6), Some(70) | Some(40)), "{reply:?}");
    }
}

#[tokio::test]
async fn swapping_the_resolver_serves_the_new_cert_on_new_connections() {
    let (ca, resolver) = setup();
    let server = serve(resolver.clone()).await;
    let roots = ca.cert_pem().as_bytes();
    let first = connect(server.addr, ClientOpts::new(roots, "localhost"))
        .await
        .unwrap();
    let next = ca.issue_serving(&sans(), Duration::from_secs(900)).unwrap();
    resolver.set(next.certified_key().unwrap());
    let second = connect(server.addr, ClientOpts::new(roots, "localhost"))
        .await
        .unwrap();
    assert_ne!(first.serial(), second.serial());
    assert_eq!(second.serial(), next.info().serial_hex);
}

#[tokio::test]
async fn empty_resolver_refuses_handshakes() {
    let ca = CertificateAuthority::generate("ca", Duration::from_secs(60)).unwrap();
    let server = serve(Arc::new(CertResolver::empty())).await;
    assert!(
        connect(
            server.addr,
            ClientOpts::new(ca.cert_pem().as_bytes(), "localhost")
        )
        .await
        .is_err()
    );
}
