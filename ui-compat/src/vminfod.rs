//! A small client for vminfod's HTTP API (`GET /ping`, `/vms`, `/vms/<uuid>`).

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::time::Duration;

/// vminfod's base URL, e.g. `http://127.0.0.1:9090`. Plain HTTP only, as
/// vminfod serves it.
#[derive(Clone, Debug)]
pub struct Vminfod {
    host: String,
    port: u16,
    prefix: String,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum VminfodError {
    #[error("vminfod URL {0:?}: must look like http://host:port[/prefix]")]
    BadUrl(String),
    #[error("vminfod GET {url}: {msg}")]
    Transport { url: String, msg: String },
    #[error("vminfod GET {url}: timed out")]
    Timeout { url: String },
    #[error("vminfod GET {url}: HTTP {status}: {}", body.trim())]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

impl VminfodError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, VminfodError::Status { status: 404, .. })
    }
}

impl Vminfod {
    pub fn new(url: &str) -> Result<Vminfod, VminfodError> {
        let bad = || VminfodError::BadUrl(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (hostport, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (hostport, 80),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Vminfod {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            prefix: prefix.to_string(),
            timeout: Duration::from_secs(30),
        })
    }

    pub fn url(&self, path: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}{}{path}", self.port, self.prefix)
    }

    /// GET a path; the body of a 2xx answer.
    pub async fn get(&self, path: &str) -> Result<Bytes, VminfodError> {
        let url = self.url(path);
        match tokio::time::timeout(self.timeout, self.get_inner(path, &url)).await {
            Ok(r) => r,
            Err(_) => Err(VminfodError::Timeout { url }),
        }
    }

    async fn get_inner(&self, path: &str, url: &str) -> Result<Bytes, VminfodError> {
        let t = |e: &dyn std::fmt::Display| VminfodError::Transport {
            url: url.to_string(),
            msg: e.to_string(),
        };
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| t(&e))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| t(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| t(&e))?;
        let res = send.send_request(req).await.map_err(|e| t(&e))?;
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| t(&e))?
            .to_bytes();
        if !status.is_success() {
            return Err(VminfodError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            });
        }
        Ok(body)
    }

    pub async fn ping(&self) -> Result<(), VminfodError> {
        self.get("/ping").await.map(|_| ())
    }

    pub async fn vms(&self) -> Result<Bytes, VminfodError> {
        self.get("/vms").await
    }

    /// `uuid` must already be checked to be a UUID.
    pub async fn vm(&self, uuid: &str) -> Result<Bytes, VminfodError> {
        self.get(&format!("/vms/{uuid}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let v = Vminfod::new("http://127.0.0.1:9090").unwrap();
        assert_eq!(v.url("/vms"), "http://127.0.0.1:9090/vms");
        let v = Vminfod::new("http://node1:8080/sim/").unwrap();
        assert_eq!(v.url("/vms/x"), "http://node1:8080/sim/vms/x");
        let v = Vminfod::new("http://localhost").unwrap();
        assert_eq!(v.url("/ping"), "http://localhost:80/ping");
        let v = Vminfod::new("http://[::1]:9090").unwrap();
        assert_eq!(v.url("/ping"), "http://[::1]:9090/ping");
        assert!(Vminfod::new("https://x:1").is_err());
        assert!(Vminfod::new("http://:1").is_err());
        assert!(Vminfod::new("http://x:notaport").is_err());
    }
}
