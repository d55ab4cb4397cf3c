//! Timeouts, refused connections, non-JSON errors, tracing.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use triton_api::*;

use crate::common::{http, Answer, Stub};

#[tokio::test]
async fn request_timeout_fires() {
    let s = Stub::start(vec![(
        "GET",
        "/packages/x",
        vec![Answer::json(200, &serde_json::json!({})).delay(Duration::from_secs(3))],
    )])
    .await;
    let h = HttpClient::new(ClientConfig {
        timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .unwrap();
    let p = Papi::new(&h, &s.url).unwrap();
    let t0 = Instant::now();
    let e = p.get("x").await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(e.is_timeout(), "{e}");
    assert_eq!(
        e.to_string(),
        format!("PAPI: GET {}/packages/x: timed out after 200ms", s.url)
    );
}

#[tokio::test]
async fn refused_connections_are_connect_errors() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let v = Vmapi::new(&http(), &format!("http://127.0.0.1:{port}")).unwrap();
    let e = v.get("x").await.unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    let t = e.to_string();
    assert!(
        t.starts_with(&format!(
            "VMAPI: GET http://127.0.0.1:{port}/vms/x: connect: "
        )),
        "{t}"
    );
    assert!(!t.contains('\n'));
}

#[tokio::test]
async fn non_json_errors_and_connection_reuse() {
    let s = Stub::start(vec![
        (
            "GET",
            "/servers/x",
            vec![Answer::text(502, "upstream down")],
        ),
        ("GET", "/servers/y", vec![Answer::empty(500)]),
        (
            "GET",
            "/servers",
            vec![Answer::json(200, &serde_json::json!([]))],
        ),
    ])
    .await;
    let c = Cnapi::new(&http(), &s.url).unwrap();
    let e = c.get("x").await.unwrap_err();
    assert_eq!(e.message(), Some("upstream down"));
    assert_eq!(e.code(), None);
    assert_eq!(
        e.to_string(),
        format!(
            "CNAPI: GET {}/servers/x: 502 Bad Gateway: upstream down",
            s.url
        )
    );
    let e = c.get("y").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("CNAPI: GET {}/servers/y: 500 Internal Server Error", s.url)
    );
    assert!(c.list(&ServerFilter::default()).await.unwrap().is_empty());
    // one client, one kept-alive connection for all three calls
    let peers: Vec<_> = s.seen().iter().map(|r| r.peer).collect();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
    // a second service client on the same HttpClient shares the pool
    let h = http();
    let a = Cnapi::new(&h, &s.url).unwrap();
    let b = Vmapi::new(&h, &s.url).unwrap();
    let _ = a.list(&ServerFilter::default()).await;
    let _ = b.ping().await;
    let seen = s.seen();
    assert_eq!(seen[3].peer, seen[4].peer);
    assert_ne!(seen[3].peer, peers[0], "another HttpClient, another pool");
}

/// Calls at a concurrency of 8 through two service clients of one
/// `HttpClient`: at most 8 connections, each kept alive for many calls, and
/// no request asks the server to close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_kept_alive_connections() {
    let s = Stub::start(vec![(
        "GET",
        "/ping",
        vec![Answer::json(200, &serde_json::json!({"ping": "pong"}))],
    )])
    .await;
    let h = http();
    let papi = Papi::new(&h, &s.url).unwrap();
    let mahi = Mahi::new(&h, &s.url).unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (papi, mahi) = (papi.clone(), mahi.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                if i % 2 == 0 {
                    papi.ping().await.unwrap();
                } else {
                    mahi.ping().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seen = s.seen();
    assert_eq!(seen.len(), 200);
    let peers: std::collections::HashSet<_> = seen.iter().map(|r| r.peer).collect();
    assert!(
        peers.len() <= 8,
        "{} connections for 200 calls",
        peers.len()
    );
    assert!(seen.iter().all(|r| r
        .header("connection")
        .is_none_or(|c| !c.eq_ignore_ascii_case("close"))));
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_request_is_traced() {
    let s = Stub::start(vec![(
        "GET",
        "/ping",
        vec![Answer::json(200, &serde_json::json!({"ping": "pong"}))],
    )])
    .await;
    let buf = Buf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    // Other tests run the same call sites on other threads at the same
    // time. With a single dispatcher ever registered, tracing decides a
    // call site's interest from the registering thread's default alone (no
    // subscriber there: never); a second one makes it ask every dispatcher.
    let _other = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _g = tracing::subscriber::set_default(sub);
    let m = Mahi::new(&http(), &s.url).unwrap();
    m.ping().await.unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("answered"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("triton_api{service=\"mahi\" method=GET url="),
        "{line}"
    );
    assert!(line.contains("/ping"), "{line}");
    assert!(line.contains("status=200"), "{line}");
    assert!(line.contains("latency_ms="), "{line}");
    let _ = std::io::stderr().flush();
}

async fn https_server() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
        dir.join("server.pem"),
        dir.join("server.key"),
    )
    .await
    .unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/ping",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"ping": "pong"})) }),
    );
    let server = axum_server::from_tcp_rustls(l, tls).unwrap();
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    format!("https://localhost:{port}")
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let url = https_server().await;
    // the Mozilla roots do not know this CA
    let e = Papi::new(&http(), &url).unwrap().ping().await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Transport { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // trusting it works
    let ca =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/ca.pem"))
            .unwrap();
    let h = HttpClient::new(ClientConfig {
        root_certificates_pem: vec![ca],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        Papi::new(&h, &url).unwrap().ping().await.unwrap()["ping"],
        "pong"
    );
    // so does not checking at all (labs)
    let h = HttpClient::new(ClientConfig {
        accept_invalid_certs: true,
        ..Default::default()
    })
    .unwrap();
    Vmapi::new(&h, &url).unwrap().ping().await.unwrap();
    // a bad PEM is a clear error
    let e = HttpClient::new(ClientConfig {
        root_certificates_pem: vec![b"junk".to_vec()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("CA certificate"), "{e}");
}
