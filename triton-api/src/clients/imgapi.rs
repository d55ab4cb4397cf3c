//! IMGAPI (`sdc-imgapi`; `shared/notes/triton.md` 5): images, their files
//! and channels. DC mode, no authentication.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use md5::Md5;
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::error::{ApiError, ErrorKind};
use crate::http::{HttpClient, IoSlot, Payload, Query, Req, Service, NO_QUERY};
use crate::types::{Channel, Image};

/// ListImages filters (`GET /images`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageFilter {
    /// Exact, or `~substring`.
    pub name: Option<String>,
    /// Exact, or `~substring`.
    pub version: Option<String>,
    pub owner: Option<String>,
    /// `active` (IMGAPI's default), `disabled`, `unactivated`, `all`, ...
    pub state: Option<String>,
    /// Overrides the client's channel; `*` for all.
    pub channel: Option<String>,
    /// Only images this account may see.
    pub account: Option<String>,
    pub os: Option<String>,
    /// `type` (`zvol`, `zone-dataset`, `!lx-dataset`, ...).
    pub kind: Option<String>,
    pub public: Option<bool>,
    /// `tag.<key>=<value>`.
    pub tags: Vec<(String, String)>,
    pub billing_tag: Option<String>,
    pub limit: Option<u64>,
    pub marker: Option<String>,
    pub extra: Vec<(String, String)>,
}

impl ImageFilter {
    /// The query pairs of `GET /images`; `default_channel` is the client's
    /// channel, used when the filter names none.
    pub fn to_query(&self, default_channel: Option<&str>) -> Query {
        let mut q = Query::new();
        q.opt("name", self.name.as_ref())
            .opt("version", self.version.as_ref())
            .opt("owner", self.owner.as_ref())
            .opt("state", self.state.as_ref())
            .opt("account", self.account.as_ref())
            .opt("os", self.os.as_ref())
            .opt("type", self.kind.as_ref())
            .opt("public", self.public);
        for (k, v) in &self.tags {
            q.push(&format!("tag.{k}"), v);
        }
        q.opt("billing_tag", self.billing_tag.as_ref())
            .opt("limit", self.limit)
            .opt("marker", self.marker.as_ref())
            .opt("channel", self.channel.as_deref().or(default_channel));
        q.extend(&self.extra);
        q
    }
}

/// AddImageFile parameters. IMGAPI checks `size` against what arrives
/// (`Content-Length`) and, when given, `sha1`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileUpload {
    /// `gzip`, `bzip2`, `xz` or `none` (required by IMGAPI).
    pub compression: String,
    /// Bytes; exactly this many are read and sent.
    pub size: u64,
    /// Hex SHA-1; IMGAPI refuses the file when it differs.
    pub sha1: Option<String>,
    /// Base64 MD5, sent as `Content-MD5`.
    pub content_md5: Option<String>,
    pub dataset_guid: Option<String>,
    /// IMGAPI storage (`local`, `manta`; operators only).
    pub storage: Option<String>,
}

/// Size and digests of a file, as IMGAPI records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    /// Hex.
    pub sha1: String,
    /// Base64 (`Content-MD5`, IMGAPI's `contentMD5`).
    pub md5: String,
}

#[derive(Default)]
struct Hashes {
    sha1: Sha1,
    md5: Md5,
    size: u64,
}

impl Hashes {
    fn update(&mut self, b: &[u8]) {
        self.sha1.update(b);
        self.md5.update(b);
        self.size += b.len() as u64;
    }

    fn finish(self) -> FileDigest {
        FileDigest {
            size: self.size,
            sha1: common::hex::encode(&self.sha1.finalize()),
            md5: base64::engine::general_purpose::STANDARD.encode(self.md5.finalize()),
        }
    }
}

impl FileDigest {
    pub fn of_bytes(data: &[u8]) -> FileDigest {
        let mut h = Hashes::default();
        h.update(data);
        h.finish()
    }

    /// Read a stream to its end.
    pub async fn of_reader<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<FileDigest> {
        let mut h = Hashes::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(h.finish());
            }
            h.update(&buf[..n]);
        }
    }

    pub async fn of_path(path: &Path) -> std::io::Result<FileDigest> {
        let mut f = tokio::fs::File::open(path).await?;
        FileDigest::of_reader(&mut f).await
    }
}

struct UploadState {
    reader: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    left: u64,
    total: u64,
    done: bool,
    slot: IoSlot,
    hashes: Arc<Mutex<Hashes>>,
}

/// A body of exactly `size` bytes from `reader`, hashed on the way; a read
/// error or an early end is recorded in `slot`.
fn upload_body(
    reader: impl AsyncRead + Send + 'static,
    size: u64,
    slot: IoSlot,
    hashes: Arc<Mutex<Hashes>>,
) -> reqwest::Body {
    let st = UploadState {
        reader: Box::pin(reader),
        left: size,
        total: size,
        done: false,
        slot,
        hashes,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.done || st.left == 0 {
            return None;
        }
        let want = st.left.min(256 * 1024) as usize;
        let mut buf = vec![0u8; want];
        let fail = |st: &mut UploadState, msg: String| {
            if let Ok(mut g) = st.slot.lock() {
                *g = Some(msg.clone());
            }
            st.done = true;
            std::io::Error::other(msg)
        };
        match st.reader.read(&mut buf).await {
            Ok(0) => {
                let (sent, total) = (st.total - st.left, st.total);
                let e = fail(
                    &mut st,
                    format!("the file ended after {sent} of the {total} bytes announced"),
                );
                Some((Err(e), st))
            }
            Ok(n) => {
                buf.truncate(n);
                st.left -= n as u64;
                if let Ok(mut h) = st.hashes.lock() {
                    h.update(&buf);
                }
                Some((Ok(Bytes::from(buf)), st))
            }
            Err(e) => {
                let e = fail(&mut st, format!("reading the file: {e}"));
                Some((Err(e), st))
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// `GET /images/:uuid/file`: the answer, not yet read.
#[derive(Debug)]
pub struct ImageFileDownload {
    /// `Content-Length`.
    pub size: Option<u64>,
    /// `Etag` (IMGAPI) or `x-image-file-sha1`.
    pub sha1: Option<String>,
    /// `Content-MD5`.
    pub content_md5: Option<String>,
    method: String,
    url: String,
    response: reqwest::Response,
}

impl ImageFileDownload {
    /// The raw answer (for `bytes_stream()`).
    pub fn into_response(self) -> reqwest::Response {
        self.response
    }

    /// Copy the file into `w`, checking size, SHA-1 and MD5 against what
    /// IMGAPI announced.
    pub async fn write_to<W: AsyncWrite + Unpin>(self, w: &mut W) -> Result<FileDigest, ApiError> {
        let (size, sha1, md5) = (self.size, self.sha1.clone(), self.content_md5.clone());
        let (method, url) = (self.method.clone(), self.url.clone());
        let err = |kind| ApiError::new("IMGAPI", &method, &url, kind);
        let mut h = Hashes::default();
        let mut s = self.response.bytes_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| {
                err(if e.is_timeout() {
                    ErrorKind::Timeout { after: None }
                } else {
                    ErrorKind::Transport {
                        message: format!("reading the file: {e}"),
                        connect: false,
                    }
                })
            })?;
            h.update(&chunk);
            w.write_all(&chunk)
                .await
                .map_err(|e| err(ErrorKind::Io(format!("writing the file: {e}"))))?;
        }
        w.flush()
            .await
            .map_err(|e| err(ErrorKind::Io(format!("writing the file: {e}"))))?;
        let d = h.finish();
        let mismatch = |what: &str, want: &str, got: &str| {
            err(ErrorKind::Invalid(format!(
                "downloaded file {what} {got} does not match the announced {want}"
            )))
        };
        if let Some(n) = size.filter(|n| *n != d.size) {
            return Err(mismatch("size", &n.to_string(), &d.size.to_string()));
        }
        if let Some(s) = sha1.filter(|s| !s.eq_ignore_ascii_case(&d.sha1)) {
            return Err(mismatch("sha1", &s, &d.sha1));
        }
        if let Some(m) = md5.filter(|m| *m != d.md5) {
            return Err(mismatch("md5", &m, &d.md5));
        }
        Ok(d)
    }

    /// The whole file in memory (small files, tests), checked as
    /// [`write_to`](Self::write_to) does.
    pub async fn bytes(self) -> Result<Bytes, ApiError> {
        let mut v = Vec::new();
        self.write_to(&mut v).await?;
        Ok(Bytes::from(v))
    }
}

/// An IMGAPI client, optionally bound to a channel (sent as `channel=` on
/// every call, as sdc-clients does).
#[derive(Debug, Clone)]
pub struct Imgapi {
    svc: Service,
    channel: Option<String>,
}

impl Imgapi {
    pub fn new(http: &HttpClient, url: &str) -> Result<Imgapi, ApiError> {
        Ok(Imgapi {
            svc: Service::new("IMGAPI", http, url)?,
            channel: None,
        })
    }

    /// The same client, on `channel` (`None`: the server's default).
    pub fn with_channel(&self, channel: Option<&str>) -> Imgapi {
        Imgapi {
            svc: self.svc.clone(),
            channel: channel.map(str::to_string),
        }
    }

    pub fn channel(&self) -> Option<&str> {
        self.channel.as_deref()
    }

    pub fn url(&self) -> &str {
        self.svc.base.as_str()
    }

    fn q(&self, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(c) = &self.channel {
            q.push(("channel".into(), c.clone()));
        }
        q
    }

    pub async fn ping(&self) -> Result<Value, ApiError> {
        self.svc.get(&["ping"], NO_QUERY).await
    }

    /// `GET /images?...`.
    pub async fn list(&self, filter: &ImageFilter) -> Result<Vec<Image>, ApiError> {
        let q = filter.to_query(self.channel.as_deref());
        let r = self
            .svc
            .call(Req::new(Method::GET, self.svc.url(&["images"], q.pairs())))
            .await?;
        self.svc.decode_list(&r)
    }

    /// `GET /images/:uuid`, whoever owns it.
    pub async fn get(&self, uuid: &str) -> Result<Image, ApiError> {
        self.svc.get(&["images", uuid], &self.q(&[])).await
    }

    /// `GET /images/:uuid?account=`: 404 unless `account` may see it.
    pub async fn get_for_account(&self, uuid: &str, account: &str) -> Result<Image, ApiError> {
        self.svc
            .get(&["images", uuid], &self.q(&[("account", account)]))
            .await
    }

    /// AdminImportImage: `POST /images/:uuid?action=import` with the
    /// manifest (keeps its uuid and published_at; the image starts
    /// `unactivated`).
    pub async fn import(&self, manifest: &Image) -> Result<Image, ApiError> {
        self.import_with(manifest, false).await
    }

    /// AdminImportImage with `skip_owner_check=true` (the owner need not
    /// exist in UFDS).
    pub async fn import_with(
        &self,
        manifest: &Image,
        skip_owner_check: bool,
    ) -> Result<Image, ApiError> {
        let mut q = vec![("action", "import")];
        if skip_owner_check {
            q.push(("skip_owner_check", "true"));
        }
        self.svc
            .send_json(
                Method::POST,
                &["images", &manifest.uuid],
                &self.q(&q),
                manifest,
            )
            .await
    }

    /// CreateImage: `POST /images?account=<owner>` (IMGAPI picks the uuid).
    pub async fn create(&self, manifest: &Image, account: &str) -> Result<Image, ApiError> {
        self.svc
            .send_json(
                Method::POST,
                &["images"],
                &self.q(&[("account", account)]),
                manifest,
            )
            .await
    }

    /// AddImageFile: `PUT /images/:uuid/file?compression=&sha1=` with
    /// exactly `upload.size` bytes streamed from `reader`. The answer's
    /// recorded sha1 is checked against what was sent.
    pub async fn add_file(
        &self,
        uuid: &str,
        upload: &FileUpload,
        reader: impl AsyncRead + Send + 'static,
    ) -> Result<Image, ApiError> {
        let mut q = vec![("compression", upload.compression.as_str())];
        if let Some(s) = &upload.sha1 {
            q.push(("sha1", s));
        }
        if let Some(g) = &upload.dataset_guid {
            q.push(("dataset_guid", g));
        }
        if let Some(s) = &upload.storage {
            q.push(("storage", s));
        }
        let url = self.svc.url(&["images", uuid, "file"], &self.q(&q));
        let slot: IoSlot = Arc::new(Mutex::new(None));
        let hashes = Arc::new(Mutex::new(Hashes::default()));
        let mut req = Req::new(Method::PUT, url.clone());
        req.body = Payload::Stream {
            body: upload_body(reader, upload.size, slot.clone(), hashes.clone()),
            len: upload.size,
            content_type: "application/octet-stream",
        };
        if let Some(m) = &upload.content_md5 {
            if let Ok(v) = HeaderValue::from_str(m) {
                req.headers.insert("content-md5", v);
            }
        }
        req.timeout = Some(self.svc.http.config().transfer_timeout);
        req.io_error = Some(slot);
        let r = self.svc.call(req).await?;
        let img: Image = self.svc.decode(&r)?;
        let sent = std::mem::take(&mut *hashes.lock().map_err(|_| {
            self.svc.error(
                &Method::PUT,
                &url,
                ErrorKind::Io("hash state poisoned".into()),
            )
        })?)
        .finish();
        if let Some(have) = img.file().and_then(|f| f.sha1.as_deref()) {
            if !have.eq_ignore_ascii_case(&sent.sha1) {
                return Err(self.svc.error(
                    &Method::PUT,
                    &url,
                    ErrorKind::Invalid(format!(
                        "IMGAPI recorded sha1 {have}, but {} was sent",
                        sent.sha1
                    )),
                ));
            }
        }
        Ok(img)
    }

    /// AddImageFile from a local file: size, sha1 and MD5 are computed
    /// first (one read), then the file is streamed.
    pub async fn add_file_from_path(
        &self,
        uuid: &str,
        path: &Path,
        compression: &str,
    ) -> Result<Image, ApiError> {
        let url = self.svc.url(&["images", uuid, "file"], NO_QUERY);
        let io = |e: std::io::Error| {
            self.svc.error(
                &Method::PUT,
                &url,
                ErrorKind::Io(format!("{}: {e}", path.display())),
            )
        };
        let d = FileDigest::of_path(path).await.map_err(io)?;
        let f = tokio::fs::File::open(path).await.map_err(io)?;
        let up = FileUpload {
            compression: compression.to_string(),
            size: d.size,
            sha1: Some(d.sha1),
            content_md5: Some(d.md5),
            ..Default::default()
        };
        self.add_file(uuid, &up, f).await
    }

    /// GetImageFile: `GET /images/:uuid/file`, ready to stream.
    pub async fn get_file(&self, uuid: &str) -> Result<ImageFileDownload, ApiError> {
        let url = self.svc.url(&["images", uuid, "file"], &self.q(&[]));
        let mut req = Req::new(Method::GET, url.clone());
        req.timeout = Some(self.svc.http.config().transfer_timeout);
        // the answer is the file, not JSON (restify would 406 a strict Accept)
        req.headers
            .insert(reqwest::header::ACCEPT, HeaderValue::from_static("*/*"));
        let r = self.svc.send(req).await?;
        if !r.status().is_success() {
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.bytes().await.unwrap_or_default();
            return Err(self
                .svc
                .check(crate::http::Reply {
                    method: "GET".into(),
                    url: url.to_string(),
                    status,
                    headers,
                    body,
                })
                .unwrap_err());
        }
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().trim_matches('"').to_string())
        };
        Ok(ImageFileDownload {
            size: r.content_length(),
            sha1: h("x-image-file-sha1").or_else(|| h("etag")),
            content_md5: h("content-md5"),
            method: "GET".into(),
            url: url.to_string(),
            response: r,
        })
    }

    async fn act(&self, uuid: &str, action: &str, body: &Value) -> Result<Image, ApiError> {
        self.svc
            .send_json(
                Method::POST,
                &["images", uuid],
                &self.q(&[("action", action)]),
                body,
            )
            .await
    }

    /// ActivateImage (needs a file).
    pub async fn activate(&self, uuid: &str) -> Result<Image, ApiError> {
        self.act(uuid, "activate", &json!({})).await
    }

    pub async fn disable(&self, uuid: &str) -> Result<Image, ApiError> {
        self.act(uuid, "disable", &json!({})).await
    }

    pub async fn enable(&self, uuid: &str) -> Result<Image, ApiError> {
        self.act(uuid, "enable", &json!({})).await
    }

    /// ChannelAddImage: add the image (found in this client's channel) to
    /// `channel`.
    pub async fn channel_add(&self, uuid: &str, channel: &str) -> Result<Image, ApiError> {
        self.act(uuid, "channel-add", &json!({"channel": channel}))
            .await
    }

    /// DeleteImage. On a channel server this removes it from this client's
    /// channel only, unless `force_all_channels`.
    pub async fn delete(&self, uuid: &str, force_all_channels: bool) -> Result<(), ApiError> {
        let mut q = vec![];
        if force_all_channels {
            q.push(("force_all_channels", "true"));
        }
        self.svc
            .call(Req::new(
                Method::DELETE,
                self.svc.url(&["images", uuid], &self.q(&q)),
            ))
            .await
            .map(|_| ())
    }

    /// `GET /channels`.
    pub async fn channels(&self) -> Result<Vec<Channel>, ApiError> {
        let r = self
            .svc
            .call(Req::new(Method::GET, self.svc.url(&["channels"], NO_QUERY)))
            .await?;
        self.svc.decode_list(&r)
    }

    /// Import, upload, activate (what `sdc-imgadm import -m -f` does). When
    /// the upload or the activation fails, the unactivated image is deleted
    /// (best effort) so nothing half-shipped lingers. The compression is
    /// the manifest's `files[0].compression` (default `gzip`).
    pub async fn ship(&self, manifest: &Image, file: &Path) -> Result<Image, ApiError> {
        let compression = manifest
            .file()
            .and_then(|f| f.compression.clone())
            .unwrap_or_else(|| "gzip".into());
        self.import(manifest).await?;
        let rest = async {
            self.add_file_from_path(&manifest.uuid, file, &compression)
                .await?;
            self.activate(&manifest.uuid).await
        }
        .await;
        if rest.is_err() {
            let _ = self.delete(&manifest.uuid, false).await;
        }
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let d = FileDigest::of_bytes(b"hello");
        assert_eq!(d.size, 5);
        assert_eq!(d.sha1, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert_eq!(d.md5, "XUFAKrxLKna5cZ2REBfFkg==");
    }

    #[test]
    fn filters_carry_the_channel() {
        let f = ImageFilter {
            name: Some("~base".into()),
            kind: Some("zvol".into()),
            tags: vec![("role".into(), "os".into())],
            ..Default::default()
        };
        let q: Vec<String> = f
            .to_query(Some("dev"))
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(q, ["name=~base", "type=zvol", "tag.role=os", "channel=dev"]);
        let f = ImageFilter {
            channel: Some("*".into()),
            ..Default::default()
        };
        assert_eq!(f.to_query(Some("dev")).0, [("channel".into(), "*".into())]);
    }
}
