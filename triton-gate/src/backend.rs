//! The Triton services behind the gate, by URL: mahi (accounts, groups,
//! keys), PAPI, IMGAPI, CNAPI and VMAPI. They live on the admin network and
//! speak plain HTTP with JSON, without authentication, so a small blocking
//! HTTP/1.1 client (one request per connection) is all this needs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A failed call to a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{service}: {url}: {msg}")]
    Transport {
        service: &'static str,
        url: String,
        msg: String,
    },
    #[error("{service}: {method} {url}: HTTP {status}: {body}")]
    Status {
        service: &'static str,
        method: String,
        url: String,
        status: u16,
        body: Box<Value>,
    },
    #[error("endpoints file {path}: {msg}")]
    Endpoints { path: String, msg: String },
}

impl BackendError {
    /// The HTTP status of an answered call.
    pub fn status(&self) -> Option<u16> {
        match self {
            BackendError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The answer's body (`{code, message}` for Triton services).
    pub fn body(&self) -> Option<&Value> {
        match self {
            BackendError::Status { body, .. } => Some(body.as_ref()),
            _ => None,
        }
    }
}

/// The services' base URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Urls {
    pub mahi: String,
    pub papi: String,
    pub imgapi: String,
    pub cnapi: String,
    pub vmapi: String,
}

impl Urls {
    /// Read `{"papi": "http://...", "vmapi": ..., "cnapi": ..., "imgapi":
    /// ..., "mahi": ...}` (the `endpoints.json` that `sim triton serve`
    /// writes).
    pub fn from_endpoints_file(path: &Path) -> Result<Urls, BackendError> {
        let err = |msg: String| BackendError::Endpoints {
            path: path.display().to_string(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        let get = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(|s| s.trim_end_matches('/').to_string())
                .ok_or_else(|| err(format!("no \"{k}\" URL")))
        };
        Ok(Urls {
            mahi: get("mahi")?,
            papi: get("papi")?,
            imgapi: get("imgapi")?,
            cnapi: get("cnapi")?,
            vmapi: get("vmapi")?,
        })
    }

    /// From a map of service name to URL.
    pub fn from_map(m: &BTreeMap<String, String>) -> Urls {
        let g = |k: &str| {
            m.get(k)
                .map(|s| s.trim_end_matches('/').to_string())
                .unwrap_or_default()
        };
        Urls {
            mahi: g("mahi"),
            papi: g("papi"),
            imgapi: g("imgapi"),
            cnapi: g("cnapi"),
            vmapi: g("vmapi"),
        }
    }
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One HTTP exchange.
fn exchange(
    service: &'static str,
    method: &str,
    url: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), BackendError> {
    let terr = |msg: String| BackendError::Transport {
        service,
        url: url.to_string(),
        msg,
    };
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        terr("only http:// URLs are implemented (Triton's internal APIs are plain HTTP)".into())
    })?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(hostport).map_err(|e| terr(format!("connect: {e}")))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| terr(e.to_string()))?;
    let data = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAccept: application/json\r\nUser-Agent: triton-gate/{}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if body.is_some() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if body.is_some() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", data.len()));
    }
    req.push_str("\r\n");
    req.push_str(&data);
    s.write_all(req.as_bytes())
        .map_err(|e| terr(format!("write: {e}")))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| terr(format!("read: {e}")))?;
    let (status, body) = parse_reply(&raw).map_err(terr)?;
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Ok((status, v))
}

/// Split an HTTP/1.1 answer into status and (de-chunked) body.
pub fn parse_reply(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    parse_full(raw).map(|(s, _, b)| (s, b))
}

/// An HTTP answer: status, headers (names lowercased), body.
pub type Parsed = (u16, Vec<(String, String)>, Vec<u8>);

/// Status, headers (names lowercased) and (de-chunked) body.
pub fn parse_full(raw: &[u8]) -> Result<Parsed, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of HTTP headers")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut body = &raw[end + 4..];
    if !chunked {
        return Ok((status, headers, body.to_vec()));
    }
    let mut out = Vec::new();
    loop {
        let nl = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size = String::from_utf8_lossy(&body[..nl]);
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        body = &body[nl + 2..];
        if size == 0 {
            return Ok((status, headers, out));
        }
        if body.len() < size {
            return Err("short chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[(size + 2).min(body.len())..];
    }
}

/// Clients for every service.
#[derive(Debug, Clone)]
pub struct Backends {
    pub urls: Urls,
    pub timeout: Duration,
    /// How long to wait for a VMAPI provision job.
    pub job_timeout: Duration,
}

impl Backends {
    pub fn new(urls: Urls) -> Backends {
        Backends {
            urls,
            timeout: Duration::from_secs(120),
            job_timeout: Duration::from_secs(600),
        }
    }

    fn call(
        &self,
        service: &'static str,
        method: &str,
        url: String,
        body: Option<&Value>,
    ) -> Result<Value, BackendError> {
        let (status, v) = exchange(service, method, &url, body, self.timeout)?;
        if status >= 300 {
            return Err(BackendError::Status {
                service,
                method: method.to_string(),
                url,
                status,
                body: Box::new(v),
            });
        }
        Ok(v)
    }

    /// mahi `GET /accounts?login=`: `{account: {uuid, login, groups, keys, ...}}`.
    pub fn account_by_login(&self, login: &str) -> Result<Value, BackendError> {
        self.call(
            "mahi",
            "GET",
            format!("{}/accounts?login={}", self.urls.mahi, enc(login)),
            None,
        )
    }

    /// mahi `GET /users?account=&login=&fallback=false`: `{account, user}`.
    pub fn user_by_login(&self, account: &str, login: &str) -> Result<Value, BackendError> {
        self.call(
            "mahi",
            "GET",
            format!(
                "{}/users?account={}&login={}&fallback=false",
                self.urls.mahi,
                enc(account),
                enc(login)
            ),
            None,
        )
    }

    /// PAPI `GET /packages/:uuid?owner_uuids=<owner>`.
    pub fn package(&self, uuid: &str, owner: &str) -> Result<Value, BackendError> {
        self.call(
            "papi",
            "GET",
            format!(
                "{}/packages/{}?owner_uuids={}",
                self.urls.papi,
                enc(uuid),
                enc(owner)
            ),
            None,
        )
    }

    /// PAPI `GET /packages/:uuid` whoever owns it (for audit reasons only).
    pub fn package_any(&self, uuid: &str) -> Result<Value, BackendError> {
        self.call(
            "papi",
            "GET",
            format!("{}/packages/{}", self.urls.papi, enc(uuid)),
            None,
        )
    }

    /// IMGAPI `GET /images/:uuid` whoever owns it (for audit reasons only).
    pub fn image_any(&self, uuid: &str) -> Result<Value, BackendError> {
        self.call(
            "imgapi",
            "GET",
            format!("{}/images/{}", self.urls.imgapi, enc(uuid)),
            None,
        )
    }

    /// PAPI `GET /packages?<query>` (query already encoded).
    pub fn packages(&self, query: &str) -> Result<Vec<Value>, BackendError> {
        let v = self.call(
            "papi",
            "GET",
            format!("{}/packages?{query}", self.urls.papi),
            None,
        )?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// IMGAPI `GET /images/:uuid?account=<owner>`.
    pub fn image(&self, uuid: &str, account: &str) -> Result<Value, BackendError> {
        self.call(
            "imgapi",
            "GET",
            format!(
                "{}/images/{}?account={}",
                self.urls.imgapi,
                enc(uuid),
                enc(account)
            ),
            None,
        )
    }

    /// IMGAPI `GET /images?account=<owner>&state=active`.
    pub fn images(&self, account: &str) -> Result<Vec<Value>, BackendError> {
        let v = self.call(
            "imgapi",
            "GET",
            format!(
                "{}/images?account={}&state=active",
                self.urls.imgapi,
                enc(account)
            ),
            None,
        )?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// CNAPI `POST /allocate`: the chosen server.
    pub fn allocate(
        &self,
        vm: &Value,
        image: &Value,
        package: &Value,
    ) -> Result<Value, BackendError> {
        let v = self.call(
            "cnapi",
            "POST",
            format!("{}/allocate", self.urls.cnapi),
            Some(&json!({"vm": vm, "image": image, "package": package, "nic_tags": []})),
        )?;
        Ok(v.get("server").cloned().unwrap_or(Value::Null))
    }

    /// CNAPI `GET /servers/:uuid` (with sysinfo).
    pub fn server(&self, uuid: &str) -> Result<Value, BackendError> {
        self.call(
            "cnapi",
            "GET",
            format!("{}/servers/{}", self.urls.cnapi, enc(uuid)),
            None,
        )
    }

    /// VMAPI `POST /vms`: `{vm_uuid, job_uuid}`.
    pub fn create_vm(&self, params: &Value) -> Result<Value, BackendError> {
        self.call(
            "vmapi",
            "POST",
            format!("{}/vms", self.urls.vmapi),
            Some(params),
        )
    }

    /// VMAPI `GET /vms/:uuid`.
    pub fn vm(&self, uuid: &str) -> Result<Value, BackendError> {
        self.call(
            "vmapi",
            "GET",
            format!("{}/vms/{}", self.urls.vmapi, enc(uuid)),
            None,
        )
    }

    /// VMAPI `GET /vms?owner_uuid=..&<query>`.
    pub fn vms(&self, owner: &str, query: &str) -> Result<Vec<Value>, BackendError> {
        let mut url = format!("{}/vms?owner_uuid={}", self.urls.vmapi, enc(owner));
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        let v = self.call("vmapi", "GET", url, None)?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Poll VMAPI `GET /jobs/:uuid` until it is `succeeded` or `failed`.
    pub fn wait_job(&self, job: &str) -> Result<Value, BackendError> {
        let start = Instant::now();
        loop {
            let j = self.call(
                "vmapi",
                "GET",
                format!("{}/jobs/{}", self.urls.vmapi, enc(job)),
                None,
            )?;
            match j.get("execution").and_then(Value::as_str) {
                Some("succeeded") | Some("failed") | Some("canceled") => return Ok(j),
                _ if start.elapsed() > self.job_timeout => {
                    return Err(BackendError::Transport {
                        service: "vmapi",
                        url: format!("{}/jobs/{job}", self.urls.vmapi),
                        msg: format!("job not done after {:?}", self.job_timeout),
                    })
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_plain_and_chunked() {
        let (s, b) =
            parse_reply(b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n{\"code\":\"x\"}").unwrap();
        assert_eq!((s, b.as_slice()), (404, b"{\"code\":\"x\"}".as_slice()));
        let (s, b) = parse_reply(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (200, b"abcde".as_slice()));
        assert!(parse_reply(b"garbage").is_err());
    }

    #[test]
    fn endpoints_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("endpoints.json");
        std::fs::write(
            &p,
            r#"{"papi":"http://127.0.0.1:1/","vmapi":"http://v","cnapi":"http://c","imgapi":"http://i","mahi":"http://m"}"#,
        )
        .unwrap();
        let u = Urls::from_endpoints_file(&p).unwrap();
        assert_eq!(u.papi, "http://127.0.0.1:1");
        assert_eq!(u.mahi, "http://m");
        std::fs::write(&p, r#"{"papi":"http://p"}"#).unwrap();
        assert!(Urls::from_endpoints_file(&p)
            .unwrap_err()
            .to_string()
            .contains("no \"mahi\" URL"));
    }

    #[test]
    fn https_is_a_clear_error() {
        let b = Backends::new(Urls {
            mahi: "https://mahi.example".into(),
            ..Default::default()
        });
        let e = b.account_by_login("x").unwrap_err().to_string();
        assert!(e.contains("only http://"), "{e}");
    }
}
