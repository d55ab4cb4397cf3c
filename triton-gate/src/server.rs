//! The gate on HTTP (axum): every request is handed to [`Gate::handle`] on a
//! blocking thread, since the backends are called with a blocking client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::Router;

use crate::gate::{Gate, Request};

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
    #[error("service thread died before listening")]
    Died,
}

/// The router: one fallback handler for every path.
pub fn router(gate: Arc<Gate>) -> Router {
    Router::new().fallback(handler).with_state(gate)
}

async fn handler(
    State(gate): State<Arc<Gate>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AxResponse {
    let req = Request {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let head = method == Method::HEAD;
    let resp = match tokio::task::spawn_blocking(move || gate.handle(&req)).await {
        Ok(r) => r,
        Err(e) => {
            let err = crate::error::CloudApiError::internal(format!("handler failed: {e}"));
            crate::gate::Response {
                status: 500,
                headers: Vec::new(),
                body: err.body(),
            }
        }
    };
    let text = resp.body.to_string();
    let mut out = if head {
        AxResponse::new(axum::body::Body::empty())
    } else {
        AxResponse::new(axum::body::Body::from(text.clone()))
    };
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("server", HeaderValue::from_static("triton-gate"));
    if head {
        h.insert("content-length", HeaderValue::from(text.len()));
    }
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            h.insert(k, v);
        }
    }
    out.into_response()
}

/// Serve on an already bound listener until `shutdown` resolves.
pub async fn serve(
    gate: Arc<Gate>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router(gate))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
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
