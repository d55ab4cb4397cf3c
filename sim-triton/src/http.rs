//! What every simulated service shares: restify-style error bodies
//! (`{"code", "message"}`), query and body parsing, request logging.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::log::Logger;

/// An error answered as restify does: status plus a JSON body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: json!({"code": code, "message": message.into()}),
        }
    }

    pub fn with_errors(status: u16, code: &str, message: &str, errors: Vec<Value>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: json!({"code": code, "message": message, "errors": errors}),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "ResourceNotFound", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status.as_u16(), &self.body)
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A JSON response with the given status.
pub fn json_response(status: u16, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

pub fn empty_response(status: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    r
}

/// Query parameters in order (a key may repeat).
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn from_uri(uri: &Uri) -> Query {
        Query(
            uri.query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    /// restify's queryParser view of truth: "true" (or "1").
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }

    pub fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// A JSON object body; an empty body is `{}`. Anything else is restify's
/// 400 InvalidContent.
pub fn json_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new(
            400,
            "InvalidContent",
            "Invalid JSON: body is not an object",
        )),
        Err(e) => Err(ApiError::new(
            400,
            "InvalidContent",
            format!("Invalid JSON: {e}"),
        )),
    }
}

pub fn header<'a>(h: &'a HeaderMap, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

/// Unknown path: restify's 404.
pub async fn not_found(uri: Uri) -> Response {
    ApiError::not_found(format!("{} does not exist", uri.path())).into_response()
}

/// Known path, wrong method: restify's 405.
pub async fn bad_method(req: Request) -> Response {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!("{} is not allowed", req.method()),
    )
    .into_response()
}

/// Log every request as a bunyan record and add restify's response headers.
pub async fn log_requests(State(log): State<Logger>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let url = req.uri().to_string();
    let req_id = req
        .headers()
        .get("x-request-id")
        .or_else(|| req.headers().get("request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut res = next.run(req).await;
    let ms = start.elapsed().as_millis() as u64;
    let status = res.status().as_u16();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&req_id) {
        h.insert("x-request-id", v.clone());
        h.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ms.to_string()) {
        h.insert("x-response-time", v.clone());
        h.insert("response-time", v);
    }
    let level = if status >= 500 {
        super::log::ERROR
    } else {
        super::log::INFO
    };
    log.log(
        level,
        &format!("handled: {status}"),
        json!({"req_id": req_id, "route": url, "req": {"method": method, "url": url}, "res": {"statusCode": status}, "latency": ms}),
    );
    res
}
