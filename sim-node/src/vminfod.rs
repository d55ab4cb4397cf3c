//! vminfod's HTTP API for a simulated node: `GET /ping`, `GET /vms`,
//! `GET /vms/<uuid>`, with VM objects in the `vmadm get` shape (loaded fresh
//! from the node on every request, so it never serves stale state).

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::node::Node;
use crate::vmadm;

fn error(code: StatusCode, rest_code: &str, message: String) -> Response {
    (code, Json(json!({"code": rest_code, "message": message}))).into_response()
}

async fn ping(State(node): State<Node>) -> Response {
    match node.state() {
        Ok(_) => Json(json!({"ping": "pong", "status": "running"})).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            e.to_string(),
        ),
    }
}

async fn vms(State(node): State<Node>) -> Response {
    match tokio::task::spawn_blocking(move || vmadm::vm_objects(&node)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        ),
    }
}

async fn vm(State(node): State<Node>, UrlPath(uuid): UrlPath<String>) -> Response {
    let u = uuid.clone();
    match tokio::task::spawn_blocking(move || vmadm::vm_object(&node, &u)).await {
        Ok(Ok(Some(v))) => Json(v).into_response(),
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            "VmNotFound",
            format!("VM {uuid} not found"),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        ),
    }
}

/// Log each request as one bunyan record (method, path, status, latency).
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        method = method.as_str(),
        path = path.as_str(),
        status = res.status().as_u16(),
        latency_ms = start.elapsed().as_millis() as u64,
        "handled request"
    );
    res
}

/// The vminfod router for a node.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/vms", get(vms))
        .route("/vms/{uuid}", get(vm))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(node)
}

/// Serve on `listen` until the process is stopped. Prints the bound
/// address (useful with port 0) on stdout; logs are bunyan JSON on stderr.
pub fn serve_blocking(node: Node, listen: &str) -> anyhow::Result<()> {
    // A subscriber may already be installed (sim embedded in another program).
    let _ = bunyan_log::init("vminfod", "info");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(listen).await?;
        println!("vminfod listening on http://{}", l.local_addr()?);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(l, router(node)).await?;
        Ok(())
    })
}
