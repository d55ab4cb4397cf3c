//! The gate on HTTP (axum): typed routes for the calls the gate decides,
//! HTTP Signature authentication as a route layer, request ids, CloudAPI's
//! headers and the audit of every decision and refusal as an outer layer.
//!
//! ```text
//! request -> audit layer (request id, headers, audit record, log)
//!   -> router: /--ping, /{login}, /{login}/machines[/{id}] (DELETE too),
//!      /{login}/packages[/{id}], /{login}/images[/{id}]
//!      -> auth layer (signature, caller, account, authorize) -> handler
//!   -> fallback: subset mode: 404/405/501 as CloudAPI answers;
//!      front mode: forwarded to CloudAPI unchanged
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use md5::Digest as _;
use serde_json::{json, Map, Value};

use crate::audit::{AuditRecord, Decision};
use crate::error::CloudApiError;
use crate::front::Forwarded;
use crate::gate::{Gate, Note, Refused, Reply, Trail, API_VERSION};
use crate::policy::Principal;

/// What can go wrong starting the service.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("serve: {0}")]
    Serve(std::io::Error),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Gate(#[from] crate::gate::GateError),
    #[error("service thread died before listening")]
    Died,
}

/// Who the request proved to be, shared between the auth layer (which
/// learns it) and the audit layer (which records it).
#[derive(Debug, Clone, Default)]
pub struct Seen(Arc<Mutex<(Option<Principal>, bool)>>);

impl Seen {
    fn set(&self, p: Principal, authenticated: bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (Some(p), authenticated);
    }

    fn get(&self) -> (Option<Principal>, bool) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The request id (also sent back as `Request-Id`).
#[derive(Debug, Clone)]
pub struct ReqId(pub String);

/// The URL's account as mahi answered it when the request was
/// authenticated.
#[derive(Debug, Clone)]
pub struct Target(pub Arc<triton_api::Account>);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = if let Some(raw) = self.raw {
            let mut r = Response::new(Body::from(raw));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        } else if self.body.is_null() {
            Response::new(Body::empty())
        } else {
            let mut r = Response::new(Body::from(self.body.to_string()));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            r
        };
        *r.status_mut() = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::try_from(v) {
                r.headers_mut().insert(k, v);
            }
        }
        if let Some(n) = self.note {
            r.extensions_mut().insert(n);
        }
        r
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        Reply::from(self).into_response()
    }
}

/// The routes: the decided ones, the fallback for the rest.
pub fn router(gate: Arc<Gate>) -> Router {
    let front = gate.front();
    let mut r = Router::new()
        .route("/--ping", get(ping))
        .route("/{login}/machines", get(list_machines).post(create_machine))
        .route(
            "/{login}/machines/{id}",
            get(get_machine).post(update_machine).delete(delete_machine),
        )
        .route("/{login}/packages", get(list_packages))
        .route("/{login}/packages/{id}", get(get_package))
        .route("/{login}/images", get(list_images).post(create_image))
        .route("/{login}/images/{id}", get(get_image));
    if !front {
        r = r.route("/{login}", get(get_account));
    }
    r = r.route_layer(from_fn_with_state(gate.clone(), authenticate));
    r = if front {
        r.fallback(forward).method_not_allowed_fallback(forward)
    } else {
        r.fallback(not_served)
            .method_not_allowed_fallback(bad_method)
    };
    r.layer(from_fn_with_state(gate.clone(), audit_layer))
        .with_state(gate)
}

/// The CloudAPI action a request is (for the audit log).
pub fn action_name(method: &Method, matched: Option<&str>, query: &str, front: bool) -> String {
    let q = |k: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.into_owned())
    };
    let read = matches!(*method, Method::GET | Method::HEAD);
    if matched == Some("/{login}/machines/{id}") && *method == Method::DELETE {
        return "DeleteMachine".into();
    }
    let name = match (matched, read, *method == Method::POST) {
        (Some("/--ping"), _, _) => "Ping",
        (Some("/{login}"), true, _) => "GetAccount",
        (Some("/{login}/machines"), true, _) => "ListMachines",
        (Some("/{login}/machines"), _, true) => "CreateMachine",
        (Some("/{login}/machines/{id}"), true, _) => "GetMachine",
        (Some("/{login}/machines/{id}"), _, true) => {
            return match q("action").as_deref() {
                Some("resize") => "ResizeMachine".into(),
                Some("rename") => "RenameMachine".into(),
                Some("start") => "StartMachine".into(),
                Some("stop") => "StopMachine".into(),
                Some("reboot") => "RebootMachine".into(),
                _ => "UpdateMachine".into(),
            }
        }
        (Some("/{login}/packages"), true, _) => "ListPackages",
        (Some("/{login}/packages/{id}"), true, _) => "GetPackage",
        (Some("/{login}/images"), true, _) => "ListImages",
        (Some("/{login}/images"), _, true) => "CreateImageFromMachine",
        (Some("/{login}/images/{id}"), true, _) => "GetImage",
        (Some(_), _, _) => "BadMethod",
        (None, _, _) if front => "Forward",
        (None, _, _) => "Unknown",
    };
    name.to_string()
}

fn first_segment(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The outer layer: request id, CloudAPI's response headers, the audit
/// record of every decision and every refusal, one log line.
async fn audit_layer(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let req_id = uuid::Uuid::new_v4().to_string();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let key_id = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| triton_api::httpsig::parse_authorization(a).ok())
        .map(|s| s.key_id);
    let content_length = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let seen = Seen::default();
    req.extensions_mut().insert(seen.clone());
    req.extensions_mut().insert(ReqId(req_id.clone()));

    let mut res = next.run(req).await;
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        // a write went through (or was refused): what the caches hold may
        // be out of date, and the next request must not see it
        gate.cache.invalidate();
    }

    let forwarded = res.extensions().get::<Forwarded>().is_some();
    let note = res.extensions_mut().remove::<Note>();
    let status = res.status().as_u16();
    if note.is_some() || (status >= 400 && !forwarded) {
        // a refusal without a note (404/405/413/501 before any handler):
        // its code and message are in the (small) body
        let (note, r) = match note {
            Some(n) => (n, res),
            None => {
                let (parts, body) = res.into_parts();
                let bytes = axum::body::to_bytes(body, 64 * 1024)
                    .await
                    .unwrap_or_default();
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let reason = match (v["code"].as_str(), v["message"].as_str()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    _ => format!("HTTP {status}"),
                };
                let n = Note {
                    decision: Decision::Deny,
                    reason: format!("route: {reason}"),
                    error: (!v.is_null()).then_some(v),
                    trail: Trail::default(),
                };
                (n, Response::from_parts(parts, Body::from(bytes)))
            }
        };
        res = r;
        let (who, authenticated) = seen.get();
        let who = who.unwrap_or_else(|| Principal {
            account_login: first_segment(&path),
            ..Default::default()
        });
        let mut rec = AuditRecord::new(
            &req_id,
            &action_name(&method, matched.as_deref(), &query, gate.front()),
            note.decision,
        );
        rec.status = status;
        rec.source = source.clone();
        rec.authenticated = authenticated;
        if !authenticated {
            rec.key_id = key_id.clone();
        }
        rec.account_uuid = who.account_uuid.clone();
        rec.account_login = who.account_login.clone();
        rec.caller_login = who.caller_login.clone();
        rec.caller_user = who.caller_user.clone();
        rec.operator = who.caller_is_operator();
        rec.account_operator = who.account_is_operator();
        let mut request = Map::new();
        request.insert("method".into(), json!(method.as_str()));
        request.insert("path".into(), json!(path));
        if !query.is_empty() {
            request.insert("query".into(), json!(query));
        }
        if let Some(n) = content_length.filter(|n| *n > 0) {
            request.insert("content_length".into(), json!(n));
        }
        for (k, v) in &note.trail.request {
            request.insert(k.clone(), v.clone());
        }
        rec.request = Value::Object(request);
        rec.brand = note.trail.brand.clone();
        rec.brand_source = note.trail.brand_source;
        rec.server_uuid = note.trail.server_uuid.clone();
        rec.vm_uuid = note.trail.vm_uuid.clone();
        rec.reason = note.reason.clone();
        rec.error = note.error.clone();
        if let Err(e) = gate.audit.record_async(rec).await {
            // The answer is already decided; losing the record must be loud.
            tracing::error!(err = e.to_string().as_str(), "cannot write audit record");
        }
    }
    if !forwarded {
        let h = res.headers_mut();
        h.insert("api-version", HeaderValue::from_static(API_VERSION));
        h.insert("server", HeaderValue::from_static("triton-gate"));
        if let Ok(v) = HeaderValue::from_str(&req_id) {
            h.insert("request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&started.elapsed().as_millis().to_string()) {
            h.insert("response-time", v);
        }
    }
    let url = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    tracing::info!(
        req_id = req_id.as_str(),
        method = method.as_str(),
        url = crate::audit::cut(&url, 512).as_str(),
        status = res.status().as_u16() as u64,
        forwarded,
        "handled request"
    );
    res
}

/// The route layer: HTTP Signature, caller and account, authorization.
async fn authenticate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    if req.uri().path() == "/--ping" {
        return next.run(req).await;
    }
    let seen = req.extensions().get::<Seen>().cloned().unwrap_or_default();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let login = first_segment(req.uri().path());
    match gate
        .authenticate_account(req.method().as_str(), &pq, req.headers(), &login)
        .await
    {
        Ok((who, account)) => {
            seen.set(who.clone(), true);
            req.extensions_mut().insert(who);
            req.extensions_mut().insert(Target(Arc::new(account)));
            next.run(req).await
        }
        Err(f) => {
            seen.set(f.principal, f.authenticated);
            drain(req.into_body(), gate.cfg.max_body_bytes * 2).await;
            f.refused.into_response()
        }
    }
}

/// A request body the gate reads: bounded, its `Content-MD5` checked, and
/// parsed into CloudAPI parameters (body over query).
pub struct Input {
    pub params: Map<String, Value>,
    pub raw: Bytes,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// Read and discard up to `cap` bytes of a body the gate refuses without
/// reading, so the client gets the answer rather than a reset connection.
/// Nothing is kept.
async fn drain(body: Body, cap: usize) {
    use futures_util::StreamExt as _;
    let mut s = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = s.next().await {
        seen += chunk.len();
        if seen > cap {
            break;
        }
    }
}

fn too_large(limit: usize) -> Response {
    Refused::plain(
        "params",
        CloudApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request body size exceeds {limit}"),
        ),
    )
    .into_response()
}

impl FromRequest<Arc<Gate>> for Input {
    type Rejection = Response;

    async fn from_request(req: Request, gate: &Arc<Gate>) -> Result<Input, Response> {
        let limit = gate.cfg.max_body_bytes;
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            drain(body, limit * 2).await;
            return Err(too_large(limit));
        }
        let raw = match axum::body::to_bytes(body, limit).await {
            Ok(b) => b,
            Err(e) if e.to_string().contains("length limit") => return Err(too_large(limit)),
            Err(e) => {
                return Err(Refused::plain(
                    "params",
                    CloudApiError::new(400, "InvalidContent", format!("cannot read the body: {e}")),
                )
                .into_response())
            }
        };
        if let Some(md5) = parts
            .headers
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
        {
            let have = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&raw));
            if have != md5.trim() {
                return Err(Refused::plain(
                    "auth",
                    CloudApiError::new(400, "BadDigest", "Content-MD5 did not match"),
                )
                .into_response());
            }
        }
        let ct = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let params = crate::gate::params(parts.uri.query().unwrap_or(""), ct, &raw)
            .map_err(|e| Refused::plain("params", e).into_response())?;
        Ok(Input {
            params,
            raw,
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
        })
    }
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// In front mode: pass a decided request on to CloudAPI, keeping the
/// decision's audit note.
async fn pass_on(gate: &Gate, input: Input, note: Option<Note>) -> Response {
    let Some(up) = &gate.upstream else {
        return CloudApiError::internal("no CloudAPI to forward to")
            .refused("forward")
            .into_response();
    };
    let mut r = up
        .forward_bytes(input.method, &input.uri, &input.headers, input.raw)
        .await;
    if let Some(n) = note {
        r.extensions_mut().insert(n);
    }
    r
}

async fn ping() -> Reply {
    Reply::json(200, json!({"ping": "pong"}))
}

async fn get_account(State(g): State<Arc<Gate>>, Extension(t): Extension<Target>) -> Reply {
    g.get_account(&t.0)
}

async fn create_machine(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    input: Input,
) -> Response {
    let r = g.create_machine(&who, &input.params).await;
    if r.forward {
        return pass_on(&g, input, r.note).await;
    }
    r.into_response()
}

async fn list_machines(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    RawQuery(q): RawQuery,
    req: Request,
) -> Response {
    let query = query_pairs(&q);
    // front mode decides only listings by brand
    if let (Some(up), false) = (&g.upstream, query.iter().any(|(k, _)| k == "brand")) {
        return up.forward(req).await;
    }
    g.list_machines(&who, &query).await.into_response()
}

async fn get_machine(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    Path((_login, id)): Path<(String, String)>,
    req: Request,
) -> Response {
    if let Some(up) = &g.upstream {
        return up.forward(req).await;
    }
    g.get_machine(&who, &id).await.into_response()
}

async fn update_machine(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    Path((_login, id)): Path<(String, String)>,
    input: Input,
) -> Response {
    if g.front() {
        return match g.check_update(&who, &id, &input.params).await {
            Ok(_) => pass_on(&g, input, None).await,
            Err(r) => r.into_response(),
        };
    }
    g.update_machine(&who, &id, &input.params)
        .await
        .into_response()
}

async fn delete_machine(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    Path((_login, id)): Path<(String, String)>,
    req: Request,
) -> Response {
    let r = g.delete_machine(&who, &id).await;
    if r.forward {
        let Some(up) = &g.upstream else {
            return CloudApiError::internal("no CloudAPI to forward to")
                .refused("forward")
                .into_response();
        };
        let mut res = up.forward(req).await;
        if let Some(n) = r.note {
            res.extensions_mut().insert(n);
        }
        return res;
    }
    r.into_response()
}

async fn list_packages(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Reply {
    g.list_packages(&who, &query_pairs(&q)).await
}

async fn get_package(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    Path((_login, id)): Path<(String, String)>,
) -> Reply {
    g.get_package(&who, &id).await
}

async fn list_images(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    RawQuery(q): RawQuery,
) -> Reply {
    g.list_images(&who, &query_pairs(&q)).await
}

async fn get_image(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    Path((_login, id)): Path<(String, String)>,
) -> Reply {
    g.get_image(&who, &id).await
}

async fn create_image(
    State(g): State<Arc<Gate>>,
    Extension(who): Extension<Principal>,
    input: Input,
) -> Response {
    if let Err(r) = g.create_image(&who, &input.params).await {
        return r.into_response();
    }
    if g.front() {
        return pass_on(&g, input, None).await;
    }
    CloudApiError::not_implemented("CreateImageFromMachine")
        .refused("route")
        .into_response()
}

/// Front mode: everything the gate does not decide.
async fn forward(State(g): State<Arc<Gate>>, req: Request) -> Response {
    match &g.upstream {
        Some(up) => up.forward(req).await,
        None => not_served(req.uri().clone()).await,
    }
}

/// Subset mode: a path the gate does not serve. Paths under an account are
/// CloudAPI's (501: not implemented here); anything else is restify's 404.
async fn not_served(uri: Uri) -> Response {
    let segs: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let e = if segs.len() >= 2 && !segs[0].is_empty() {
        CloudApiError::not_implemented(&format!("GET {}", uri.path()))
    } else {
        CloudApiError::not_found(format!("{} does not exist", uri.path()))
    };
    (
        axum::http::StatusCode::from_u16(e.status).unwrap_or(axum::http::StatusCode::NOT_FOUND),
        [("content-type", "application/json")],
        e.body().to_string(),
    )
        .into_response()
}

/// Subset mode: a known path with a method the gate does not serve.
async fn bad_method(method: Method) -> Response {
    let e = CloudApiError::new(405, "BadMethod", format!("{method} is not allowed"));
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        [("content-type", "application/json")],
        e.body().to_string(),
    )
        .into_response()
}

/// Serve on an already bound listener until `shutdown` resolves; pending
/// audit summaries are written every few seconds and at the end.
pub async fn serve(
    gate: Arc<Gate>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let audit = gate.audit.clone();
    let tick = (audit.limits().window / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let flusher = tokio::spawn({
        let audit = audit.clone();
        async move {
            let mut t = tokio::time::interval(tick);
            loop {
                t.tick().await;
                if let Err(e) = audit.flush_expired_async().await {
                    tracing::error!(err = e.to_string().as_str(), "cannot write audit summary");
                }
            }
        }
    });
    let app = router(gate).into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve);
    flusher.abort();
    if let Err(e) = audit.flush_all_async().await {
        tracing::error!(err = e.to_string().as_str(), "cannot write audit summaries");
    }
    r
}

/// The gate running on its own thread and runtime (tests, `cargo xtask`).
/// Dropping it stops the service.
pub struct Background {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Start the gate on `addr` (port 0: a free one) in the background.
pub fn start(gate: Gate, addr: &str) -> Result<Background, ServeError> {
    let addr = addr.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, ServeError>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(ServeError::Runtime(e)));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => l,
                Err(source) => {
                    let _ = ready_tx.send(Err(ServeError::Bind { addr, source }));
                    return;
                }
            };
            let local = match listener.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    let _ = ready_tx.send(Err(ServeError::Serve(e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(local));
            let _ = serve(Arc::new(gate), listener, async move {
                let _ = stop_rx.await;
            })
            .await;
        });
    });
    let addr = ready_rx.recv().map_err(|_| ServeError::Died)??;
    Ok(Background {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use tower::ServiceExt as _;

    fn gate() -> (Arc<Gate>, tempfile::TempDir) {
        let t = tempfile::tempdir().unwrap();
        // backends point nowhere: these tests stop before any call
        let ep = triton_api::Endpoints {
            mahi: "http://127.0.0.1:9".into(),
            papi: "http://127.0.0.1:9".into(),
            vmapi: "http://127.0.0.1:9".into(),
            cnapi: "http://127.0.0.1:9".into(),
            imgapi: "http://127.0.0.1:9".into(),
            extra: Map::new(),
        };
        let g = Gate::new(crate::gate::GateConfig::new(ep, t.path().join("audit.log"))).unwrap();
        (Arc::new(g), t)
    }

    async fn call(
        g: &Arc<Gate>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, HeaderMap, Value) {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let res = router(g.clone())
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn unauthenticated_requests_are_refused_and_audited() {
        let (g, _t) = gate();
        let (s, h, body) = call(&g, "GET", "/cust/packages", &[]).await;
        assert_eq!(s, 401);
        assert_eq!(
            body,
            json!({"code": "InvalidCredentials", "message": "You must make authenticated requests to use CloudAPI"})
        );
        assert_eq!(h.get("api-version").unwrap(), API_VERSION);
        assert!(h.get("request-id").is_some());
        let (s, _, _) = call(&g, "POST", "/cust/machines", &[]).await;
        assert_eq!(s, 401);
        let recs = g.audit.read().unwrap();
        assert_eq!(recs.len(), 2);
        assert!(recs
            .iter()
            .all(|r| r.decision == Decision::Deny && !r.authenticated));
        assert_eq!(recs[1].action, "CreateMachine");
        assert_eq!(recs[1].account_login, "cust");
        assert_eq!(recs[1].status, 401);
        assert!(recs[1].reason.starts_with("auth: "), "{}", recs[1].reason);
        let date = httpdate::fmt_http_date(SystemTime::now());
        let (_, _, body) = call(
            &g,
            "GET",
            "/cust/packages",
            &[
                (
                    "authorization",
                    "Signature keyId=\"nope\",algorithm=\"ed25519\",signature=\"AA==\"",
                ),
                ("date", &date),
            ],
        )
        .await;
        assert_eq!(
            body["message"],
            "Invalid KeyId nope in authorization header"
        );
        assert_eq!(g.audit.read().unwrap()[2].key_id.as_deref(), Some("nope"));
    }

    #[tokio::test]
    async fn the_signed_date_is_the_one_checked() {
        let (g, _t) = gate();
        let now = SystemTime::now();
        let old = httpdate::fmt_http_date(now - Duration::from_secs(3600));
        let fresh = httpdate::fmt_http_date(now);
        let auth = |headers: &str| {
            format!("Signature keyId=\"/ops/keys/aa\",algorithm=\"ed25519-sha512\",headers=\"{headers}\",signature=\"AA==\"")
        };
        let (_, _, body) = call(
            &g,
            "GET",
            "/ops/packages",
            &[
                ("authorization", &auth("(request-target)")),
                ("date", &fresh),
            ],
        )
        .await;
        assert_eq!(body["message"], "the date header must be signed");
        let (_, _, body) = call(
            &g,
            "GET",
            "/ops/packages",
            &[
                ("authorization", &auth("(request-target) x-date")),
                ("date", &fresh),
                ("x-date", &old),
            ],
        )
        .await;
        let m = body["message"].as_str().unwrap().to_string();
        assert!(m.starts_with("clock skew of"), "{m}");
    }

    #[tokio::test]
    async fn routes_as_cloudapi_answers_them() {
        let (g, _t) = gate();
        assert_eq!(call(&g, "GET", "/--ping", &[]).await.0, 200);
        let (s, _, b) = call(&g, "PUT", "/x/machines/abc", &[]).await;
        assert_eq!(s, 405);
        assert_eq!(
            b,
            json!({"code": "BadMethod", "message": "PUT is not allowed"})
        );
        let (s, _, b) = call(&g, "GET", "/x/networks", &[]).await;
        assert_eq!(s, 501);
        assert_eq!(b["code"], "NotImplemented");
        assert_eq!(call(&g, "GET", "/", &[]).await.0, 404);
        // 405, 501 and 404 are audited, unauthenticated
        let recs = g.audit.read().unwrap();
        let statuses: Vec<u16> = recs.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [405, 501, 404]);
        assert_eq!(recs[0].action, "BadMethod");
        assert_eq!(recs[0].reason, "route: BadMethod: PUT is not allowed");
        assert_eq!(recs[1].account_login, "x");
        assert_eq!(
            action_name(
                &Method::POST,
                Some("/{login}/machines/{id}"),
                "action=resize",
                false
            ),
            "ResizeMachine"
        );
        assert_eq!(action_name(&Method::PUT, None, "", true), "Forward");
        assert_eq!(
            action_name(&Method::DELETE, Some("/{login}/machines/{id}"), "", false),
            "DeleteMachine"
        );
    }

    /// Concurrent requests through the whole service: one audit line each
    /// (the writer group-commits), every line parseable, none lost, and
    /// each answer's `Request-Id` in the log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_give_one_audit_line_each() {
        let t = tempfile::tempdir().unwrap();
        let mut cfg = crate::gate::GateConfig::new(
            triton_api::Endpoints {
                mahi: "http://127.0.0.1:9".into(),
                papi: "http://127.0.0.1:9".into(),
                vmapi: "http://127.0.0.1:9".into(),
                cnapi: "http://127.0.0.1:9".into(),
                imgapi: "http://127.0.0.1:9".into(),
                extra: Map::new(),
            },
            t.path().join("audit.log"),
        );
        // every refusal written one by one (no summary)
        cfg.audit_limits.unauthenticated_per_window = 100_000;
        let g = Arc::new(Gate::new(cfg).unwrap());
        let mut tasks = Vec::new();
        for i in 0..300 {
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                let (method, path) = match i % 3 {
                    0 => ("PUT", format!("/a{i}/machines/x")),
                    1 => ("GET", format!("/a{i}/networks")),
                    _ => ("GET", format!("/a{i}/packages")),
                };
                let (status, h, _) = call(&g, method, &path, &[]).await;
                let id = h.get("request-id").unwrap().to_str().unwrap().to_string();
                (status, id, format!("a{i}"))
            }));
        }
        let mut answers = Vec::new();
        for h in tasks {
            answers.push(h.await.unwrap());
        }
        let text = std::fs::read_to_string(t.path().join("audit.log")).unwrap();
        assert_eq!(text.lines().count(), 300);
        let recs = g.audit.read().unwrap();
        let mut by_id: std::collections::HashMap<String, AuditRecord> =
            recs.into_iter().map(|r| (r.req_id.clone(), r)).collect();
        assert_eq!(by_id.len(), 300, "request ids repeat");
        for (status, id, account) in answers {
            let r = by_id.remove(&id).expect("an answer without its record");
            assert_eq!(
                (r.status, r.account_login.as_str()),
                (status, account.as_str())
            );
        }
    }

    /// A stand-in for mahi and PAPI on one address, counting calls and
    /// connections; its account (`ops`) and key can change between calls.
    #[derive(Default)]
    struct Backend {
        operator: bool,
        key: Option<(String, String)>,
        mahi_calls: usize,
        papi_calls: usize,
        peers: std::collections::HashSet<SocketAddr>,
    }

    const OPS: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
    const BUILDER: &str = "7fc87f43-2def-4e6f-9f2c-cae7d4a8d1b5";

    async fn backend(b: Arc<Mutex<Backend>>) -> String {
        use axum::extract::ConnectInfo;
        let mahi = {
            let b = b.clone();
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                let mut b = b.lock().unwrap();
                b.mahi_calls += 1;
                b.peers.insert(peer);
                let keys: Map<String, Value> =
                    b.key.iter().map(|(fp, k)| (fp.clone(), json!(k))).collect();
                let groups: Vec<&str> = if b.operator {
                    vec!["operators"]
                } else {
                    vec![]
                };
                axum::Json(json!({"roles": {}, "account": {
                    "type": "account", "uuid": OPS, "login": "ops", "groups": groups,
                    "keys": keys, "approved_for_provisioning": "true",
                }}))
            }
        };
        let papi = {
            let b = b.clone();
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                let mut b = b.lock().unwrap();
                b.papi_calls += 1;
                b.peers.insert(peer);
                let pkg = |uuid: &str, name: &str, brand: &str, owners: Value| {
                    json!({"uuid": uuid, "name": name, "version": "1.0.0", "active": true,
                           "brand": brand, "owner_uuids": owners, "max_physical_memory": 1024,
                           "quota": 10240, "max_swap": 2048, "max_lwps": 2000,
                           "zfs_io_priority": 100, "cpu_cap": 100})
                };
                (
                    [("x-resource-count", "2")],
                    axum::Json(json!([
                        pkg(
                            "4a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d",
                            "joyent-1g",
                            "joyent",
                            Value::Null
                        ),
                        pkg(BUILDER, "builder-1g", "builder", json!([OPS])),
                    ])),
                )
            }
        };
        let app = Router::new()
            .route("/accounts", get(mahi))
            .route("/packages", get(papi));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await
        });
        url
    }

    fn gate_at(url: &str, ttl: Duration, dir: &std::path::Path) -> Arc<Gate> {
        let ep = triton_api::Endpoints {
            mahi: url.into(),
            papi: url.into(),
            vmapi: url.into(),
            cnapi: url.into(),
            imgapi: url.into(),
            extra: Map::new(),
        };
        let mut cfg = crate::gate::GateConfig::new(ep, dir.join("audit.log"));
        cfg.cache_ttl = ttl;
        Arc::new(Gate::new(cfg).unwrap())
    }

    async fn signed(
        g: &Arc<Gate>,
        s: &triton_api::Signer,
        method: &str,
        path: &str,
    ) -> (u16, Value) {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let auth = s.authorization(method, path, &date);
        let (st, _, b) = call(
            g,
            method,
            path,
            &[("date", &date), ("authorization", &auth)],
        )
        .await;
        (st, b)
    }

    fn names(v: &Value) -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|p| p["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// PAPI's answers are kept; mahi (keys, operator membership) is asked
    /// on every request, so demoting the account or revoking the key takes
    /// effect at once; a write empties the cache; one kept-alive
    /// connection carries every backend call.
    #[tokio::test]
    async fn the_cache_keeps_packages_never_authorization() {
        let t = tempfile::tempdir().unwrap();
        let signer = triton_api::Signer::ed25519_from_seed("ops", &[7u8; 32]);
        let b = Arc::new(Mutex::new(Backend {
            operator: true,
            key: Some((
                signer.fingerprint().to_string(),
                signer.public_openssh("ops"),
            )),
            ..Default::default()
        }));
        let url = backend(b.clone()).await;
        let g = gate_at(&url, Duration::from_secs(600), t.path());
        let calls = || {
            let b = b.lock().unwrap();
            (b.mahi_calls, b.papi_calls)
        };
        for _ in 0..5 {
            let (s, body) = signed(&g, &signer, "GET", "/ops/packages").await;
            assert_eq!(s, 200, "{body}");
            assert_eq!(names(&body), ["joyent-1g", "builder-1g"]);
        }
        assert_eq!(calls(), (5, 1));
        // no longer an operator: the very next listing hides builder
        b.lock().unwrap().operator = false;
        let (s, body) = signed(&g, &signer, "GET", "/ops/packages").await;
        assert_eq!((s, names(&body)), (200, vec!["joyent-1g".to_string()]));
        assert_eq!(calls(), (6, 1));
        let last = g.audit.read().unwrap().pop().unwrap();
        assert_eq!(last.decision, Decision::Deny);
        assert!(last.reason.contains(BUILDER), "{}", last.reason);
        b.lock().unwrap().operator = true;
        let (_, body) = signed(&g, &signer, "GET", "/ops/packages").await;
        assert_eq!(names(&body).len(), 2);
        // the key revoked: refused at once
        let key = b.lock().unwrap().key.take();
        let (s, body) = signed(&g, &signer, "GET", "/ops/packages").await;
        assert_eq!(s, 401, "{body}");
        b.lock().unwrap().key = key;
        assert_eq!(calls(), (8, 1));
        // a write through the gate (refused here) empties the cache
        let (s, _) = signed(&g, &signer, "POST", "/ops/machines").await;
        assert_eq!(s, 409);
        let (s, _) = signed(&g, &signer, "GET", "/ops/packages").await;
        assert_eq!(s, 200);
        assert_eq!(calls(), (10, 2));
        // sequential calls: one connection to the backend for all of them
        assert_eq!(b.lock().unwrap().peers.len(), 1);

        // TTL 0: nothing kept
        let g0 = gate_at(&url, Duration::ZERO, t.path());
        for _ in 0..3 {
            assert_eq!(signed(&g0, &signer, "GET", "/ops/packages").await.0, 200);
        }
        assert_eq!(calls(), (13, 5));
        // an entry older than the TTL is fetched again (the sleep is only
        // ever longer than asked, so this cannot fail by being slow)
        let g1 = gate_at(&url, Duration::from_millis(50), t.path());
        assert_eq!(signed(&g1, &signer, "GET", "/ops/packages").await.0, 200);
        assert_eq!(calls(), (14, 6));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(signed(&g1, &signer, "GET", "/ops/packages").await.0, 200);
        assert_eq!(calls(), (15, 7));
    }
}
