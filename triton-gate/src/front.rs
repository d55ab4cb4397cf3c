//! Front mode: the gate in front of a real CloudAPI. Requests the gate
//! decides are answered by the gate (or, once allowed, passed on); every
//! other request goes to CloudAPI unchanged (method, path and query,
//! headers including the signature, body streamed both ways), so customers
//! keep the whole CloudAPI.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt as _;
use serde_json::json;
use triton_api::HttpClient;

use crate::gate::GateError;

/// Marks a response that came from CloudAPI (its headers are kept as they
/// are, and its errors are CloudAPI's, not the gate's refusals).
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

/// The CloudAPI behind the gate.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: reqwest::Url,
    client: reqwest::Client,
}

/// Hop-by-hop headers, never passed on (RFC 9110 7.6.1).
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

impl Upstream {
    pub fn new(url: &str, http: &HttpClient) -> Result<Upstream, GateError> {
        let bad = |message: &str| GateError::Upstream {
            url: url.to_string(),
            message: message.to_string(),
        };
        let base = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("the URL must be http:// or https://"));
        }
        if base.path() != "/" || base.query().is_some() {
            return Err(bad(
                "the URL must be the service's root (signatures cover the path)",
            ));
        }
        Ok(Upstream {
            base,
            client: http.reqwest().clone(),
        })
    }

    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    fn target(&self, uri: &Uri) -> reqwest::Url {
        let mut u = self.base.clone();
        u.set_path(uri.path());
        u.set_query(uri.query());
        u
    }

    /// Send `method uri` with `headers` and `body` to CloudAPI; its answer
    /// comes back streamed.
    pub async fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: reqwest::Body,
    ) -> Response {
        let mut h = HeaderMap::new();
        copy_headers(headers, &mut h);
        let res = self
            .client
            .request(method, self.target(uri))
            .headers(h)
            .body(body)
            .send()
            .await;
        let mut out = match res {
            Ok(r) => {
                let status = r.status();
                let mut hm = HeaderMap::new();
                copy_headers(r.headers(), &mut hm);
                let stream = r.bytes_stream().map_err(std::io::Error::other);
                let mut resp = Response::new(Body::from_stream(stream));
                *resp.status_mut() = status;
                *resp.headers_mut() = hm;
                resp
            }
            Err(e) => {
                tracing::error!(err = e.to_string().as_str(), "CloudAPI unreachable");
                let body =
                    json!({"code": "ServiceUnavailable", "message": "CloudAPI is unavailable"});
                let mut r = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
                r.headers_mut().insert(
                    HeaderName::from_static("content-type"),
                    HeaderValue::from_static("application/json"),
                );
                r
            }
        };
        out.extensions_mut().insert(Forwarded);
        out
    }

    /// Forward a request whose body has not been read (streamed).
    pub async fn forward(&self, req: axum::extract::Request) -> Response {
        let (parts, body) = req.into_parts();
        let body = reqwest::Body::wrap_stream(body.into_data_stream());
        self.send(parts.method, &parts.uri, &parts.headers, body)
            .await
    }

    /// Forward a request the gate has read and decided.
    pub async fn forward_bytes(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        self.send(method, uri, headers, reqwest::Body::from(body))
            .await
    }
}
