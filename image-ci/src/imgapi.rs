//! Shipping to IMGAPI (AdminImportImage, AddImageFile, ActivateImage,
//! ChannelAddImage) over plain HTTP/1.1: requests are built as data, sent
//! by one small blocking client, and replies parsed separately.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    Json(Vec<u8>),
    /// Streamed from a file.
    File(PathBuf),
}

/// A request, relative to the IMGAPI base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub body: Body,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn chan(channel: Option<&str>) -> String {
    channel
        .map(|c| format!("&channel={}", enc(c)))
        .unwrap_or_default()
}

/// `POST /images/:uuid?action=import` with the manifest.
pub fn import_request(uuid: &str, manifest: &Value, channel: Option<&str>) -> Request {
    Request {
        method: "POST",
        path: format!("/images/{}?action=import{}", enc(uuid), chan(channel)),
        body: Body::Json(manifest.to_string().into_bytes()),
    }
}

/// `PUT /images/:uuid/file?compression=gzip&sha1=...`.
pub fn file_request(
    uuid: &str,
    file: &Path,
    compression: &str,
    sha1: &str,
    channel: Option<&str>,
) -> Request {
    Request {
        method: "PUT",
        path: format!(
            "/images/{}/file?compression={}&sha1={}{}",
            enc(uuid),
            enc(compression),
            enc(sha1),
            chan(channel)
        ),
        body: Body::File(file.to_path_buf()),
    }
}

/// `POST /images/:uuid?action=activate`.
pub fn activate_request(uuid: &str, channel: Option<&str>) -> Request {
    Request {
        method: "POST",
        path: format!("/images/{}?action=activate{}", enc(uuid), chan(channel)),
        body: Body::None,
    }
}

/// `GET /images/:uuid`.
pub fn get_request(uuid: &str, channel: Option<&str>) -> Request {
    let q = channel
        .map(|c| format!("?channel={}", enc(c)))
        .unwrap_or_default();
    Request {
        method: "GET",
        path: format!("/images/{}{q}", enc(uuid)),
        body: Body::None,
    }
}

/// `DELETE /images/:uuid` (to drop an import whose upload failed).
pub fn delete_request(uuid: &str, channel: Option<&str>) -> Request {
    let q = channel
        .map(|c| format!("?channel={}", enc(c)))
        .unwrap_or_default();
    Request {
        method: "DELETE",
        path: format!("/images/{}{q}", enc(uuid)),
        body: Body::None,
    }
}

/// An HTTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Parse a raw HTTP/1.1 response (Content-Length or chunked or to EOF).
pub fn parse_reply(raw: &[u8]) -> std::result::Result<Reply, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of HTTP headers")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad HTTP status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let hdr = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    if hdr("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(n) = hdr("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.truncate(n);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_s = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_s.split(';').next().unwrap_or("0").trim(), 16)
            .map_err(|e| e.to_string())?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err("short chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
}

/// An IMGAPI endpoint (`http://host:port`).
#[derive(Debug, Clone)]
pub struct Imgapi {
    pub url: String,
}

impl Imgapi {
    pub fn new(url: &str) -> Imgapi {
        Imgapi {
            url: url.trim_end_matches('/').to_string(),
        }
    }

    /// Send a request; any non-2xx reply is an `Error::Http`.
    pub fn send(&self, r: &Request) -> Result<Reply> {
        let url = format!("{}{}", self.url, r.path);
        let net = |msg: String| Error::Net {
            method: r.method.into(),
            url: url.clone(),
            msg,
        };
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or_else(|| net("only http:// IMGAPI URLs are supported".into()))?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let mut s = TcpStream::connect(hostport).map_err(|e| net(format!("connect: {e}")))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(600)));
        let (ct, len) = match &r.body {
            Body::None => (None, 0u64),
            Body::Json(b) => (Some("application/json"), b.len() as u64),
            Body::File(p) => (
                Some("application/octet-stream"),
                std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len(),
            ),
        };
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {hostport}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: image-ci/{}\r\n",
            r.method,
            r.path,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(ct) = ct {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if ct.is_some() || matches!(r.method, "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        let w = |s: &mut TcpStream, b: &[u8]| s.write_all(b).map_err(|e| net(format!("send: {e}")));
        w(&mut s, head.as_bytes())?;
        match &r.body {
            Body::None => {}
            Body::Json(b) => w(&mut s, b)?,
            Body::File(p) => {
                let mut f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
                std::io::copy(&mut f, &mut s)
                    .map_err(|e| net(format!("send {}: {e}", p.display())))?;
            }
        }
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .map_err(|e| net(format!("read: {e}")))?;
        let reply = parse_reply(&raw).map_err(net)?;
        if !(200..300).contains(&reply.status) {
            let j = reply.json();
            return Err(Error::Http {
                method: r.method.into(),
                url,
                status: reply.status,
                code: j["code"].as_str().unwrap_or("Error").to_string(),
                message: j["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).trim().to_string()),
            });
        }
        Ok(reply)
    }

    /// Import, upload, activate. On a failed upload or activation the
    /// unactivated image is deleted (best effort) so nothing half-shipped
    /// lingers. Returns the activated image.
    pub fn ship(
        &self,
        manifest: &Value,
        file: &Path,
        sha1: &str,
        channel: Option<&str>,
    ) -> Result<Value> {
        let uuid = manifest["uuid"]
            .as_str()
            .ok_or_else(|| Error::Invalid("manifest has no uuid".into()))?;
        let compression = manifest["files"][0]["compression"]
            .as_str()
            .unwrap_or("gzip");
        self.send(&import_request(uuid, manifest, channel))?;
        let rest = self
            .send(&file_request(uuid, file, compression, sha1, channel))
            .and_then(|_| self.send(&activate_request(uuid, channel)));
        match rest {
            Ok(r) => Ok(r.json()),
            Err(e) => {
                let _ = self.send(&delete_request(uuid, channel));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests() {
        let r = import_request("u-1", &json!({"a": 1}), None);
        assert_eq!(
            (r.method, r.path.as_str()),
            ("POST", "/images/u-1?action=import")
        );
        assert_eq!(r.body, Body::Json(b"{\"a\":1}".to_vec()));
        let r = file_request("u-1", Path::new("/f"), "gzip", "ab12", Some("dev ops"));
        assert_eq!(
            r.path,
            "/images/u-1/file?compression=gzip&sha1=ab12&channel=dev%20ops"
        );
        assert_eq!(
            activate_request("u", Some("staging")).path,
            "/images/u?action=activate&channel=staging"
        );
        assert_eq!(get_request("u", None).path, "/images/u");
    }

    #[test]
    fn replies() {
        let r =
            parse_reply(b"HTTP/1.1 422 Unprocessable\r\nContent-Length: 2\r\n\r\n{}junk").unwrap();
        assert_eq!(r.status, 422);
        assert_eq!(r.body, b"{}");
        let r = parse_reply(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.json(), json!({}));
        assert!(parse_reply(b"garbage").is_err());
    }

    #[test]
    fn refuses_https_and_reports_connect_errors() {
        let e = Imgapi::new("https://x")
            .send(&get_request("u", None))
            .unwrap_err();
        assert!(e.to_string().contains("only http://"));
        // a port nothing listens on
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = Imgapi::new(&format!("http://127.0.0.1:{port}"))
            .send(&get_request("u", None))
            .unwrap_err();
        assert!(matches!(e, Error::Net { .. }), "{e}");
    }
}
