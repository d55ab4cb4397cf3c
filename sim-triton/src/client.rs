//! A small blocking HTTP/1.1 client for talking to the simulated (or real,
//! plain-HTTP) Triton APIs from tests and tools: one request per
//! connection, JSON in and out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Send `method url` with an optional body and content type.
pub fn request(
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
    extra: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(hostport).with_context(|| format!("connect {hostport}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAccept: application/json\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let data = body.map(|(_, d)| d).unwrap_or(&[]);
    if let Some((ct, _)) = body {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if body.is_some() || matches!(method, "POST" | "PUT") {
        req.push_str(&format!("Content-Length: {}\r\n", data.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(data)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> anyhow::Result<Reply> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_s = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_s.split(';').next().unwrap_or("0").trim(), 16)?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        anyhow::ensure!(b.len() >= size, "short chunk");
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
}

pub fn get(url: &str) -> anyhow::Result<Reply> {
    request("GET", url, None, &[])
}

pub fn delete(url: &str) -> anyhow::Result<Reply> {
    request("DELETE", url, None, &[])
}

pub fn post_json(url: &str, v: &Value) -> anyhow::Result<Reply> {
    request(
        "POST",
        url,
        Some(("application/json", v.to_string().as_bytes())),
        &[],
    )
}

pub fn put_json(url: &str, v: &Value) -> anyhow::Result<Reply> {
    request(
        "PUT",
        url,
        Some(("application/json", v.to_string().as_bytes())),
        &[],
    )
}

pub fn put_bytes(url: &str, data: &[u8]) -> anyhow::Result<Reply> {
    request("PUT", url, Some(("application/octet-stream", data)), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{\"code\":\"x\"}",
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["code"], "x");
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
    }
}
