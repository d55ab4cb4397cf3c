//! Raw HTTP calls the rollout and deploy make to the simulated Triton APIs
//! (seeding packages and images, and checking answers status by status),
//! through triton-api's shared reqwest client. Blocking: each call runs on
//! a small runtime of its own.

use anyhow::{Context, Result};
use serde_json::Value;

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn call(method: reqwest::Method, url: &str, body: Option<(Vec<u8>, &str)>) -> Result<Reply> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let http = triton_api::HttpClient::default();
        let mut req = http.reqwest().request(method.clone(), url);
        if let Some((data, ctype)) = body {
            req = req.header("content-type", ctype).body(data);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = res.status().as_u16();
        let body = res.bytes().await?.to_vec();
        Ok(Reply { status, body })
    })
}

pub fn get(url: &str) -> Result<Reply> {
    call(reqwest::Method::GET, url, None)
}

pub fn post_json(url: &str, v: &Value) -> Result<Reply> {
    call(
        reqwest::Method::POST,
        url,
        Some((v.to_string().into_bytes(), "application/json")),
    )
}

pub fn put_json(url: &str, v: &Value) -> Result<Reply> {
    call(
        reqwest::Method::PUT,
        url,
        Some((v.to_string().into_bytes(), "application/json")),
    )
}

pub fn put_bytes(url: &str, data: &[u8]) -> Result<Reply> {
    call(
        reqwest::Method::PUT,
        url,
        Some((data.to_vec(), "application/octet-stream")),
    )
}
