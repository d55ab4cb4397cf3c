//! The HTTP layer every client shares: one `reqwest::Client` (connection
//! reuse, timeouts, TLS with rustls), request building, error mapping and a
//! tracing span per request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument as _;

use crate::error::{ApiError, ErrorBody, ErrorKind};

/// How clients connect. One config, one [`HttpClient`], shared by every
/// service client built from it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// TCP (and TLS) connect timeout. Default 10 s.
    pub connect_timeout: Duration,
    /// Whole-request timeout for API calls (not file transfers). Default
    /// 120 s.
    pub timeout: Duration,
    /// Whole-request timeout for image file uploads and downloads; `None`
    /// for none (the read timeout still catches a stalled peer). Default
    /// 6 h.
    pub transfer_timeout: Option<Duration>,
    /// Longest wait for any one read of an answer. Default 120 s.
    pub read_timeout: Duration,
    pub user_agent: String,
    /// Skip TLS certificate checks (node-triton's `--insecure`, for
    /// self-signed CloudAPI certificates in labs).
    pub accept_invalid_certs: bool,
    /// Extra trusted CA certificates, PEM (besides the Mozilla roots).
    pub root_certificates_pem: Vec<Vec<u8>>,
    /// How often `wait_job` polls. Default 500 ms.
    pub job_poll_interval: Duration,
    /// An HTTP(S) proxy for every request. `None` (the default): connect
    /// directly, whatever `HTTP_PROXY`/`HTTPS_PROXY` say (the admin-network
    /// APIs are never behind one).
    pub proxy: Option<String>,
    /// How long an idle kept-alive connection stays in the pool. Default
    /// 60 s (Triton's restify services keep idle connections 5 minutes).
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per host. Default 32.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
            transfer_timeout: Some(Duration::from_secs(6 * 3600)),
            read_timeout: Duration::from_secs(120),
            user_agent: format!("triton-api/{}", env!("CARGO_PKG_VERSION")),
            accept_invalid_certs: false,
            root_certificates_pem: Vec::new(),
            job_poll_interval: Duration::from_millis(500),
            proxy: None,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 32,
        }
    }
}

/// The shared connection pool and its config. Cheap to clone: clones share
/// the pool. Connections are kept alive (HTTP/1.1, no `Connection: close`)
/// and reused by every service client built on the same `HttpClient`, so a
/// process makes one per service and concurrent request, not one per call.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    config: Arc<ClientConfig>,
}

impl HttpClient {
    pub fn new(config: ClientConfig) -> Result<HttpClient, ApiError> {
        let bad = |m: String| ApiError::new("triton-api", "-", "-", ErrorKind::Invalid(m));
        let mut b = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .tcp_nodelay(true)
            .danger_accept_invalid_certs(config.accept_invalid_certs);
        for pem in &config.root_certificates_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(bad("CA certificate: no PEM certificate found".into()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        b = match &config.proxy {
            None => b.no_proxy(),
            Some(p) => b.proxy(reqwest::Proxy::all(p).map_err(|e| bad(format!("proxy {p}: {e}")))?),
        };
        let client = b.build().map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(HttpClient {
            client,
            config: Arc::new(config),
        })
    }

    /// The underlying reqwest client (to share it with other code).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }
}

impl Default for HttpClient {
    fn default() -> HttpClient {
        HttpClient::new(ClientConfig::default()).unwrap_or_else(|_| HttpClient {
            client: reqwest::Client::new(),
            config: Arc::new(ClientConfig::default()),
        })
    }
}

/// A raw answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `x-resource-count` (PAPI, CloudAPI) or `x-joyent-resource-count`
    /// (VMAPI): the number of matches before paging.
    pub fn resource_count(&self) -> Option<u64> {
        ["x-resource-count", "x-joyent-resource-count"]
            .iter()
            .find_map(|h| self.header(h))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// One page of a list, with the total the service reported (when it
/// reports one).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `x-resource-count` / `x-joyent-resource-count`.
    pub total: Option<u64>,
}

impl<T> Page<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn into_vec(self) -> Vec<T> {
        self.items
    }
}

impl<T> IntoIterator for Page<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<T> std::ops::Deref for Page<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

/// A request body.
pub(crate) enum Payload {
    Empty,
    Json(Vec<u8>),
    /// A stream of exactly `len` bytes (sent with `Content-Length`).
    Stream {
        body: reqwest::Body,
        len: u64,
        content_type: &'static str,
    },
}

/// Where a streamed upload records a local read error, so that it is
/// reported as such rather than as a broken connection.
pub(crate) type IoSlot = Arc<Mutex<Option<String>>>;

pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub body: Payload,
    pub headers: HeaderMap,
    /// `None`: the config's API timeout.
    pub timeout: Option<Option<Duration>>,
    pub io_error: Option<IoSlot>,
}

impl Req {
    pub fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            body: Payload::Empty,
            headers: HeaderMap::new(),
            timeout: None,
            io_error: None,
        }
    }

    pub fn json(mut self, body: &impl Serialize) -> Req {
        self.body = Payload::Json(serde_json::to_vec(body).unwrap_or_default());
        self
    }
}

/// `path?query` of a URL, as it goes on the request line (and is signed).
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

fn transport(e: &reqwest::Error) -> ErrorKind {
    // the chain without reqwest's own "error sending request for url (...)"
    let mut parts = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if parts.last() != Some(&t) {
            parts.push(t);
        }
        src = s.source();
    }
    let what = if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "reading the answer"
    } else {
        "request"
    };
    let message = if parts.is_empty() {
        format!("{what}: {e}")
    } else {
        format!("{what}: {}", parts.join(": "))
    };
    ErrorKind::Transport {
        message,
        connect: e.is_connect(),
    }
}

/// One service: its name (for errors and logs), base URL and the shared
/// client.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub http: HttpClient,
    pub base: Url,
    pub name: &'static str,
}

impl Service {
    pub fn new(name: &'static str, http: &HttpClient, url: &str) -> Result<Service, ApiError> {
        let bad = |m: String| ApiError::new(name, "-", url, ErrorKind::Invalid(m));
        let base = Url::parse(url).map_err(|e| bad(format!("bad URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad("the URL must be http:// or https://".into()));
        }
        Ok(Service {
            http: http.clone(),
            base,
            name,
        })
    }

    /// The base URL plus path segments (each percent-encoded) and query
    /// pairs (form-encoded).
    pub fn url<K: AsRef<str>, V: AsRef<str>>(&self, segments: &[&str], query: &[(K, V)]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        if !query.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k.as_ref(), v.as_ref());
            }
        }
        u
    }

    pub fn error(&self, method: &Method, url: &Url, kind: ErrorKind) -> ApiError {
        ApiError::new(self.name, method.as_str(), url.as_str(), kind)
    }

    /// Send; any status is returned. Transport errors and timeouts are
    /// errors.
    pub async fn send(&self, req: Req) -> Result<reqwest::Response, ApiError> {
        let span = tracing::debug_span!(
            "triton_api",
            service = self.name,
            method = %req.method,
            url = %req.url,
        );
        let method = req.method.clone();
        let url = req.url.clone();
        let start = Instant::now();
        let timeout = req.timeout.unwrap_or(Some(self.http.config.timeout));
        let mut b = self
            .http
            .client
            .request(req.method, req.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .headers(req.headers);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b = match req.body {
            Payload::Empty => b,
            Payload::Json(v) => b
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(v),
            Payload::Stream {
                body,
                len,
                content_type,
            } => b
                .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
                .header(CONTENT_LENGTH, len)
                .body(body),
        };
        let io_error = req.io_error;
        async move {
            match b.send().await {
                Ok(r) => {
                    tracing::debug!(
                        status = r.status().as_u16(),
                        latency_ms = start.elapsed().as_millis() as u64,
                        "answered"
                    );
                    Ok(r)
                }
                Err(e) => {
                    let local = io_error
                        .as_ref()
                        .and_then(|s| s.lock().ok().and_then(|g| g.clone()));
                    let kind = match local {
                        Some(m) => ErrorKind::Io(m),
                        None if e.is_timeout() => ErrorKind::Timeout { after: timeout },
                        None => transport(&e),
                    };
                    let err = self.error(&method, &url, kind);
                    tracing::debug!(
                        error = %err,
                        latency_ms = start.elapsed().as_millis() as u64,
                        "failed"
                    );
                    Err(err)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Send and read the whole answer; any status.
    pub async fn raw(&self, req: Req) -> Result<Reply, ApiError> {
        let method = req.method.clone();
        let url = req.url.clone();
        let timeout = req.timeout.unwrap_or(Some(self.http.config.timeout));
        let r = self.send(req).await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout { after: timeout }
            } else {
                transport(&e)
            };
            self.error(&method, &url, kind)
        })?;
        Ok(Reply {
            method: method.to_string(),
            url: url.to_string(),
            status,
            headers,
            body,
        })
    }

    /// Send, read the answer, and turn a non-2xx status into an error.
    pub async fn call(&self, req: Req) -> Result<Reply, ApiError> {
        let r = self.raw(req).await?;
        self.check(r)
    }

    pub fn check(&self, r: Reply) -> Result<Reply, ApiError> {
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        Err(ApiError::new(
            self.name,
            &r.method,
            &r.url,
            ErrorKind::Status {
                status: r.status,
                body: ErrorBody::parse(&r.body),
            },
        ))
    }

    fn decode_error(&self, r: &Reply, message: String) -> ApiError {
        let text = String::from_utf8_lossy(&r.body);
        let body = match text.char_indices().nth(200) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text.into_owned(),
        };
        ApiError::new(
            self.name,
            &r.method,
            &r.url,
            ErrorKind::Decode {
                status: r.status,
                message,
                body,
            },
        )
    }

    /// The answer as `T`.
    pub fn decode<T: DeserializeOwned>(&self, r: &Reply) -> Result<T, ApiError> {
        serde_json::from_slice(&r.body).map_err(|e| self.decode_error(r, e.to_string()))
    }

    /// A JSON array answer as `Vec<T>`, element by element, so an error
    /// names the element (index and `uuid`).
    pub fn decode_list<T: DeserializeOwned>(&self, r: &Reply) -> Result<Vec<T>, ApiError> {
        let v: Vec<Value> =
            serde_json::from_slice(&r.body).map_err(|e| self.decode_error(r, e.to_string()))?;
        v.into_iter()
            .enumerate()
            .map(|(i, item)| {
                let id = item
                    .get("uuid")
                    .or_else(|| item.get("id"))
                    .and_then(Value::as_str)
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default();
                serde_json::from_value(item)
                    .map_err(|e| self.decode_error(r, format!("element {i}{id}: {e}")))
            })
            .collect()
    }

    /// `decode_list` plus the paging header.
    pub fn decode_page<T: DeserializeOwned>(&self, r: &Reply) -> Result<Page<T>, ApiError> {
        Ok(Page {
            items: self.decode_list(r)?,
            total: r.resource_count(),
        })
    }

    // ---- shorthands

    pub async fn get<T: DeserializeOwned, K: AsRef<str>, V: AsRef<str>>(
        &self,
        segments: &[&str],
        query: &[(K, V)],
    ) -> Result<T, ApiError> {
        let r = self
            .call(Req::new(Method::GET, self.url(segments, query)))
            .await?;
        self.decode(&r)
    }

    pub async fn send_json<T: DeserializeOwned, K: AsRef<str>, V: AsRef<str>>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(K, V)],
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        let r = self
            .call(Req::new(method, self.url(segments, query)).json(body))
            .await?;
        self.decode(&r)
    }
}

/// An empty query.
pub(crate) const NO_QUERY: &[(&str, &str)] = &[];

/// Query pairs built up from optional parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn new() -> Query {
        Query::default()
    }

    /// Add `k=v`.
    pub fn push(&mut self, k: &str, v: impl ToString) -> &mut Query {
        self.0.push((k.to_string(), v.to_string()));
        self
    }

    /// Add `k=v` when `v` is set.
    pub fn opt(&mut self, k: &str, v: Option<impl ToString>) -> &mut Query {
        if let Some(v) = v {
            self.push(k, v);
        }
        self
    }

    pub fn extend(&mut self, pairs: &[(String, String)]) -> &mut Query {
        self.0.extend(pairs.iter().cloned());
        self
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments_and_queries() {
        let s = Service::new("VMAPI", &HttpClient::default(), "http://10.0.0.5:80/").unwrap();
        let u = s.url(
            &["vms", "a b/c"],
            &[("tag.role", "web server"), ("x", "a&b")],
        );
        assert_eq!(
            u.as_str(),
            "http://10.0.0.5/vms/a%20b%2Fc?tag.role=web+server&x=a%26b"
        );
        assert_eq!(
            path_and_query(&u),
            "/vms/a%20b%2Fc?tag.role=web+server&x=a%26b"
        );
        // a base with a prefix keeps it
        let s = Service::new("vminfod", &HttpClient::default(), "http://n:9090/sim").unwrap();
        assert_eq!(s.url(&["vms"], NO_QUERY).as_str(), "http://n:9090/sim/vms");
        for bad in ["ftp://x", "not a url", "mailto:a@b"] {
            let e = Service::new("PAPI", &HttpClient::default(), bad).unwrap_err();
            assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn query_builder() {
        let mut q = Query::new();
        q.push("a", 1).opt("b", None::<&str>).opt("c", Some("x"));
        assert_eq!(
            q.pairs(),
            [("a".to_string(), "1".to_string()), ("c".into(), "x".into())]
        );
    }
}
