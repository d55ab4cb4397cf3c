//! A small blocking client for the gate that signs every request with an
//! ed25519 key, as node-triton does (for tests and `cargo xtask rollout`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::backend::parse_full;
use crate::httpsig::Ed25519Signer;

/// An answer from the gate.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What can go wrong talking to the gate.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {msg}")]
    Transport { url: String, msg: String },
}

/// Signed requests to one gate as one key.
#[derive(Debug, Clone)]
pub struct GateClient {
    /// `http://host:port`
    pub base: String,
    pub signer: Option<Ed25519Signer>,
}

impl GateClient {
    pub fn new(base: &str, signer: Option<Ed25519Signer>) -> GateClient {
        GateClient {
            base: base.trim_end_matches('/').to_string(),
            signer,
        }
    }

    pub fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.request("GET", path, None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Reply, ClientError> {
        self.request("POST", path, Some(body))
    }

    /// Send `method path` (path may carry a query), signed when a signer is set.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ClientError> {
        let url = format!("{}{path}", self.base);
        let err = |msg: String| ClientError::Transport {
            url: url.clone(),
            msg,
        };
        let hostport = self
            .base
            .strip_prefix("http://")
            .ok_or_else(|| err("only http:// is implemented".into()))?;
        let mut s = TcpStream::connect(hostport).map_err(|e| err(e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_secs(600)))
            .map_err(|e| err(e.to_string()))?;
        let date = httpdate::fmt_http_date(SystemTime::now());
        let data = body.map(Value::to_string).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAccept: application/json\r\nAccept-Version: ~9||~8\r\nDate: {date}\r\nConnection: close\r\n"
        );
        if let Some(sg) = &self.signer {
            req.push_str(&format!(
                "Authorization: {}\r\n",
                sg.authorization(method, path, &date)
            ));
        }
        if body.is_some() {
            use base64::Engine as _;
            use md5::Digest as _;
            req.push_str("Content-Type: application/json\r\n");
            req.push_str(&format!(
                "Content-MD5: {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data.as_bytes()))
            ));
        }
        if body.is_some() || method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", data.len()));
        }
        req.push_str("\r\n");
        req.push_str(&data);
        s.write_all(req.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| err(e.to_string()))?;
        let (status, headers, b) = parse_full(&raw).map_err(err)?;
        let body = if b.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&b)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned()))
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}
