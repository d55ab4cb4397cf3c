//! Stand-in services: small axum servers on 127.0.0.1:0 that record every
//! request and answer from a script.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use triton_api::{ClientConfig, HttpClient};

pub fn fixture(name: &str) -> String {
    let p = format!("{}/tests/api/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

pub fn key_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

pub fn key_text(name: &str) -> String {
    std::fs::read_to_string(key_file(name))
        .unwrap()
        .trim()
        .to_string()
}

/// A client with short timeouts and fast job polling.
pub fn http() -> HttpClient {
    HttpClient::new(ClientConfig {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(2),
        job_poll_interval: Duration::from_millis(10),
        ..Default::default()
    })
    .unwrap()
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The client's address (same port: same connection).
    pub peer: std::net::SocketAddr,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers.get(n).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Decoded query pairs, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let q = self.query.clone().unwrap_or_default();
        reqwest::Url::parse(&format!("http://x/?{q}"))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, v: &Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(v).unwrap(),
            delay: Duration::ZERO,
        }
    }

    /// A fixture file, byte for byte.
    pub fn fixture(status: u16, name: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: fixture(name).into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub fn text(status: u16, text: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: text.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }

    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: vec![],
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Answer {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Answer {
        self.delay = d;
        self
    }
}

type Script = HashMap<(String, String), Vec<Answer>>;

#[derive(Clone, Default)]
struct StubState {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
}

/// A running stand-in.
pub struct Stub {
    pub url: String,
    state: StubState,
}

async fn handle(
    State(st): State<StubState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let seen = Seen {
        peer,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body,
    };
    let key = (seen.method.clone(), seen.path.clone());
    st.seen.lock().unwrap().push(seen);
    let answer = {
        let mut s = st.script.lock().unwrap();
        match s.get_mut(&key) {
            Some(list) if list.len() > 1 => Some(list.remove(0)),
            Some(list) => list.first().cloned(),
            None => None,
        }
    };
    let a = answer.unwrap_or_else(|| {
        Answer::json(
            404,
            &serde_json::json!({"code": "ResourceNotFound", "message": format!("{} does not exist", key.1)}),
        )
    });
    if !a.delay.is_zero() {
        tokio::time::sleep(a.delay).await;
    }
    let mut r = Response::new(Body::from(a.body));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap();
    for (k, v) in a.headers {
        r.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    r
}

/// Serve a router on 127.0.0.1:0; its base URL.
pub async fn serve(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            l,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    format!("http://{addr}")
}

impl Stub {
    /// Routes: (method, path, answers in order; the last one repeats).
    pub async fn start(routes: Vec<(&str, &str, Vec<Answer>)>) -> Stub {
        let state = StubState::default();
        {
            let mut s = state.script.lock().unwrap();
            for (m, p, a) in routes {
                s.insert((m.to_string(), p.to_string()), a);
            }
        }
        let router = Router::new().fallback(handle).with_state(state.clone());
        Stub {
            url: serve(router).await,
            state,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("no request seen")
    }
}
