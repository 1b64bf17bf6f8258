//! Over real TLS with a real HTTP/1.1 client trusting only a generated CA.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use nats_operator_webhook::test_support::{InProcessServer, TestPki, connect_https};
use nats_operator_webhook::{
    AdmissionRequest, Readiness, ServerOptions, ServerStats, Verdict, WebhookState, router,
    serve_plain, serve_with,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn handshake_and_two_requests_on_one_keep_alive_connection() {
    let server = InProcessServer::start(test_router(), ServerOptions::default())
        .await
        .unwrap();
    let mut conn = server.connect().await.unwrap();
    assert_eq!(
        conn.protocol_version,
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(conn.alpn.as_deref(), Some(&b"http/1.1"[..]));

    let (s1, b1) = conn
        .post_json("/validate?timeout=10s", fixture("admission-create.json"))
        .await
        .unwrap();
    let (s2, b2) = conn
        .post_json("/mutate?timeout=10s", fixture("admission-update.json"))
        .await
        .unwrap();
    let (s3, _) = conn.get("/healthz").await.unwrap();
    assert_eq!(
        (s1, s2, s3),
        (StatusCode::OK, StatusCode::OK, StatusCode::OK)
    );
    let v1: serde_json::Value = serde_json::from_slice(&b1).unwrap();
    let v2: serde_json::Value = serde_json::from_slice(&b2).unwrap();
    assert_eq!(v1["response"]["allowed"], true);
    assert_eq!(v2["response"]["patchType"], "JSONPatch");
    assert!(v2["response"]["patch"].is_string());
    assert_eq!(
        server.stats.accepted_connections(),
        1,
        "all requests on one connection"
    );
    assert!(!conn.is_closed());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_request_does_not_break_the_connection() {
    let server = InProcessServer::start(test_router(), ServerOptions::default())
        .await
        .unwrap();
    let mut conn = server.connect().await.unwrap();
    let (s, b) = conn.post_json("/validate", "{garbage").await.unwrap();
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("\"error\""));
    let (s, _) = conn
        .request("POST", "/convert", Some("text/plain"), "x".into())
        .await
        .unwrap();
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, b) = conn
        .post_json("/convert", fixture("conversion-mixed.json"))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&b).contains(r#""status":"Success""#));
    assert_eq!(server.stats.accepted_connections(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn untrusted_client_fails_handshake_and_server_keeps_serving() {
    let server = InProcessServer::start(test_router(), ServerOptions::default())
        .await
        .unwrap();
    let stranger = TestPki::generate(&[]).unwrap();
    let err = connect_https(server.addr, stranger.client_config.clone(), "localhost")
        .await
        .expect_err("a client trusting another CA must not connect");
    assert!(
        err.to_string().contains("UnknownIssuer") || err.to_string().contains("certificate"),
        "{err}"
    );
    // Wrong server name also fails.
    assert!(
        connect_https(
            server.addr,
            server.pki.client_config.clone(),
            "nats.example.com"
        )
        .await
        .is_err()
    );
    let mut conn = server.connect().await.unwrap();
    assert_eq!(conn.get("/healthz").await.unwrap().0, StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn tls12_and_tls13_accepted_older_versions_refused() {
    let server = InProcessServer::start(test_router(), ServerOptions::default())
        .await
        .unwrap();
    for (versions, expected) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let cfg = server.pki.client_config_with_versions(versions).unwrap();
        let mut conn = connect_https(server.addr, cfg, "localhost").await.unwrap();
        assert_eq!(conn.protocol_version, Some(expected));
        assert_eq!(conn.get("/healthz").await.unwrap().0, StatusCode::OK);
    }

    // rustls cannot even speak TLS 1.1, so send a raw TLS 1.1 ClientHello.
    let mut hello_body = vec![0x03, 0x02]; // client_version TLS 1.1
    hello_body.extend_from_slice(&[0x42; 32]); // random
    hello_body.push(0x00); // empty session id
    hello_body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // cipher suites
    hello_body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, hello_body.len() as u8];
    handshake.extend_from_slice(&hello_body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);

    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply)).await;
    assert!(reply.len() >= 7, "expected an alert, got {reply:02x?}");
    assert_eq!(reply[0], 0x15, "alert record, got {reply:02x?}");
    assert_eq!(reply[5], 0x02, "fatal");
    // rustls answers handshake_failure (40); protocol_version (70) would be fine too.
    assert!(
        matches!(reply[6], 40 | 70),
        "handshake refused, got {reply:02x?}"
    );
    assert!(server.stats.handshake_failures() >= 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn h2_is_never_negotiated() {
    let pki = TestPki::generate(&[]).unwrap();
    let mut server_cfg = (*pki.server_config).clone();
    server_cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve_with(
        listener,
        Some(Arc::new(server_cfg)),
        test_router(),
        async move {
            let _ = rx.await;
        },
        ServerOptions::default(),
    ));
    let mut client = (*pki.client_config).clone();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut conn = connect_https(addr, Arc::new(client), "localhost")
        .await
        .unwrap();
    assert_eq!(conn.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(conn.get("/healthz").await.unwrap().0, StatusCode::OK);
    tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_refuses_new_closes_idle() {
    let (entered_tx, mut entered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let validator = move |req: &AdmissionRequest| {
        if req.name == "slow" {
            let _ = entered_tx.send(());
            std::thread::sleep(Duration::from_millis(1500));
        }
        Verdict::allow_with_warnings(vec!["finished".into()])
    };
    let state = WebhookState::builder(validator, test_mutator, test_converter).build();
    let readiness: Readiness = state.readiness();
    let opts = ServerOptions::default()
        .readiness(readiness.clone())
        .drain_timeout(Duration::from_secs(20));
    let mut server = InProcessServer::start(router(state), opts).await.unwrap();
    for _ in 0..200 {
        if readiness.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(readiness.is_ready(), "ready once serving");

    // An idle keep-alive connection.
    let mut idle = server.connect().await.unwrap();
    assert_eq!(idle.get("/healthz").await.unwrap().0, StatusCode::OK);

    // An in-flight slow request.
    let mut busy = server.connect().await.unwrap();
    // Over 64 KiB, so the slow call runs on the blocking pool, as large reviews do.
    let mut review = with_name(fixture_json("admission-create.json"), "slow");
    review["request"]["object"]["metadata"]["annotations"]["padding"] =
        serde_json::json!("x".repeat(70 * 1024));
    let body = review.to_string();
    let in_flight = tokio::spawn(async move {
        let r = busy.post_json("/validate?timeout=10s", body).await;
        (r, busy)
    });
    entered_rx.recv().await.unwrap();
    let shutdown_at = Instant::now();
    server.begin_shutdown();

    // The idle connection is closed promptly, while the slow request is still running.
    assert!(
        idle.wait_closed(Duration::from_secs(5)).await,
        "idle connection closed"
    );
    let idle_closed_after = shutdown_at.elapsed();
    assert!(
        !in_flight.is_finished(),
        "idle closed before the in-flight request ended"
    );

    // New connections are refused.
    let mut refused = false;
    for _ in 0..100 {
        match TcpStream::connect(server.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        refused,
        "new connections must be refused after shutdown starts"
    );
    assert!(!readiness.is_ready(), "not ready while shutting down");

    // The in-flight request completes normally.
    let (result, busy) = in_flight.await.unwrap();
    let (status, body) = result.unwrap();
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["warnings"][0], "finished");
    // ...after which its connection is closed too, and the server returns.
    assert!(busy.wait_closed(Duration::from_secs(5)).await);
    server.join().await.unwrap();
    println!(
        "idle connection closed {idle_closed_after:?} after shutdown; server stopped {:?} after shutdown",
        shutdown_at.elapsed()
    );
}

#[tokio::test]
async fn idle_keep_alive_and_stalled_handshake_are_timed_out() {
    let opts = ServerOptions::default()
        .header_read_timeout(Duration::from_millis(300))
        .handshake_timeout(Duration::from_millis(300));
    let server = InProcessServer::start(test_router(), opts).await.unwrap();

    let mut conn = server.connect().await.unwrap();
    assert_eq!(conn.get("/healthz").await.unwrap().0, StatusCode::OK);
    assert!(
        conn.wait_closed(Duration::from_secs(5)).await,
        "idle keep-alive closed"
    );

    // A TCP client that never starts TLS is dropped.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("server closes the stalled connection");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert_eq!(server.stats.handshake_failures(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn plain_http_variant_serves_health() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve_plain(listener, test_router(), async move {
        let _ = rx.await;
    }));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.ends_with("ok"), "{out}");
    tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn stats_count_connections() {
    let stats = ServerStats::new();
    let server =
        InProcessServer::start(test_router(), ServerOptions::default().stats(stats.clone()))
            .await
            .unwrap();
    for _ in 0..3 {
        let mut c = server.connect().await.unwrap();
        assert_eq!(
            c.get("/readyz").await.unwrap().0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(stats.accepted_connections(), 3);
    assert_eq!(server.stats.accepted_connections(), 3);
    server.stop().await.unwrap();
}
