//! Shipping to IMGAPI that resumes and never duplicates, through
//! [`triton_api::Imgapi`].
//!
//! Before importing, the image is looked up by name and version (and
//! owner, when the manifest has one), in every channel:
//!
//! - an active (or disabled) one means it is already shipped: nothing is
//!   imported, it is recorded as such, and any channel it still lacks is
//!   added;
//! - an unactivated one (an interrupted earlier run) is reused: its file
//!   is uploaded again when its sha1 or size differs from this artifact's,
//!   then it is activated; further unactivated copies are deleted;
//! - otherwise the manifest is imported (unactivated), the file uploaded
//!   (IMGAPI checks its sha1 and size) and the image activated.
//!
//! An image becomes provisionable only by its activation, the last step,
//! so killing image-ci at any point leaves either nothing a user can
//! provision or the finished image, and the next run ends with exactly one
//! active image for the name and version. With channels, the image is
//! imported into the first and `channel-add`ed to the others.
//!
//! `IMAGE_CI_PAUSE_AT=after-import|during-upload|before-activate` stops a
//! ship at that step (for tests that kill image-ci there).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use serde_json::Value;
use tokio::io::{AsyncRead, ReadBuf};
use triton_api::{ApiError, FileUpload, HttpClient, Image, ImageFilter, Imgapi, LenientExt as _};

use crate::error::{Error, Result};

/// The environment variable naming the step to stop at.
pub const PAUSE_ENV: &str = "IMAGE_CI_PAUSE_AT";

/// Steps a ship can be stopped at.
pub const PAUSE_STEPS: &[&str] = &["after-import", "during-upload", "before-activate"];

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        Error::Api(e.to_string())
    }
}

/// The one runtime image-ci's HTTP calls run on (its threads start after
/// `cleanup::install` blocked the signals, so they never take them).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("image-ci-io")
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// Run a future on [`runtime`] from synchronous code (never from inside
/// a runtime).
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// One HTTP client (connection pool) for every call image-ci makes.
pub fn http() -> &'static HttpClient {
    static H: OnceLock<HttpClient> = OnceLock::new();
    H.get_or_init(|| {
        let cfg = triton_api::ClientConfig {
            user_agent: format!("image-ci/{}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        HttpClient::new(cfg).unwrap_or_default()
    })
}

/// How a ship went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// Imported, uploaded and activated now.
    Imported,
    /// An unactivated image of an interrupted run was finished.
    Resumed,
    /// IMGAPI already had it active: nothing shipped.
    AlreadyActive,
}

/// What shipping did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shipped {
    pub how: How,
    /// The active image's UUID.
    pub uuid: String,
    /// Its state (`active`, or `disabled` when an operator disabled it).
    pub state: String,
    /// Its file's sha1 as IMGAPI records it.
    pub sha1: Option<String>,
    /// Bytes uploaded now (0 when the file was already there).
    pub uploaded: u64,
    /// Unactivated copies that were deleted.
    pub removed: Vec<String>,
    /// Channels added.
    pub channels_added: Vec<String>,
}

/// A ship's steps as they happen (for the state database):
/// `(step, image uuid)` with step `imported`, `reused`, `uploaded`,
/// `active`, `already-active`.
pub type OnStep<'a> = &'a mut dyn FnMut(&str, &str);

/// An IMGAPI to ship into.
#[derive(Debug, Clone)]
pub struct Shipper {
    pub imgapi: Imgapi,
    /// Channels to ship into (the first imports, the rest are added); none:
    /// the server's default.
    pub channels: Vec<String>,
}

fn pause(step: &str) -> bool {
    std::env::var(PAUSE_ENV).as_deref() == Ok(step)
}

/// Stop here for good when the test hook names `step`.
fn pause_hook(step: &str) {
    if pause(step) {
        eprintln!("image-ci: paused at {step}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Reads `inner`; with the `during-upload` hook, stops for good after half
/// of `total` bytes (the first half is sent, the rest never is).
struct UploadReader<R> {
    inner: R,
    sent: u64,
    half: Option<u64>,
    announced: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for UploadReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(h) = self.half {
            if self.sent >= h {
                if !self.announced {
                    self.announced = true;
                    eprintln!("image-ci: paused at during-upload");
                }
                // never woken: the upload stalls here until image-ci dies
                return Poll::Pending;
            }
            let left = (h - self.sent) as usize;
            let mut small = vec![0u8; left.min(buf.remaining())];
            let mut rb = ReadBuf::new(&mut small);
            let r = Pin::new(&mut self.inner).poll_read(cx, &mut rb);
            if let Poll::Ready(Ok(())) = r {
                let n = rb.filled().len();
                buf.put_slice(rb.filled());
                self.sent += n as u64;
            }
            return r;
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.sent += (buf.filled().len() - before) as u64;
        }
        r
    }
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn state(i: &Image) -> &str {
    i.state.as_deref().unwrap_or("")
}

/// The owner UUID manifests leave for IMGAPI to fill in (with the admin
/// account's) on import.
pub const UNSET_OWNER: &str = "00000000-0000-0000-0000-000000000000";

/// The lookup for a manifest: name, version, owner (unless left for
/// IMGAPI to set), every state, every channel when channels are in use.
pub fn lookup_filter(manifest: &Value, channels: &[String]) -> ImageFilter {
    ImageFilter {
        name: str_of(manifest, "name"),
        version: str_of(manifest, "version"),
        owner: str_of(manifest, "owner").filter(|o| o != UNSET_OWNER),
        state: Some("all".into()),
        channel: (!channels.is_empty()).then(|| "*".to_string()),
        ..Default::default()
    }
}

/// What to do with what IMGAPI holds for a name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Already active (or disabled): ship nothing; delete these
    /// unactivated leftovers.
    Already { uuid: String, remove: Vec<String> },
    /// Finish this unactivated image; delete the other unactivated ones.
    Resume { uuid: String, remove: Vec<String> },
    /// Nothing there: import.
    Import,
}

/// Decide from the images found (pure). An unactivated image with the
/// manifest's own UUID is preferred for resuming.
pub fn plan(found: &[Image], manifest_uuid: &str) -> Plan {
    let unactivated: Vec<&Image> = found
        .iter()
        .filter(|i| !matches!(state(i), "active" | "disabled"))
        .collect();
    if let Some(a) = found
        .iter()
        .find(|i| state(i) == "active")
        .or_else(|| found.iter().find(|i| state(i) == "disabled"))
    {
        return Plan::Already {
            uuid: a.uuid.clone(),
            remove: unactivated.iter().map(|i| i.uuid.clone()).collect(),
        };
    }
    let keep = unactivated
        .iter()
        .find(|i| i.uuid == manifest_uuid)
        .or_else(|| unactivated.first());
    match keep {
        Some(k) => Plan::Resume {
            uuid: k.uuid.clone(),
            remove: unactivated
                .iter()
                .filter(|i| i.uuid != k.uuid)
                .map(|i| i.uuid.clone())
                .collect(),
        },
        None => Plan::Import,
    }
}

impl Shipper {
    /// An IMGAPI at `url` (`http://host:port`).
    pub fn new(url: &str, channels: &[String]) -> Result<Shipper> {
        Ok(Shipper {
            imgapi: Imgapi::new(http(), url)?,
            channels: channels.to_vec(),
        })
    }

    pub fn url(&self) -> String {
        self.imgapi.url().trim_end_matches('/').to_string()
    }

    /// Is IMGAPI there? (`GET /ping`)
    pub async fn ping(&self) -> Result<()> {
        self.imgapi.ping().await.map(|_| ()).map_err(Error::from)
    }

    /// The client for the channel images are imported into.
    fn home(&self) -> Imgapi {
        self.imgapi
            .with_channel(self.channels.first().map(String::as_str))
    }

    /// Ship `file` (whose verified sha1 and size are given) with
    /// `manifest`. See the module documentation.
    pub async fn ship(
        &self,
        manifest: &Value,
        file: &Path,
        sha1: &str,
        size: u64,
        on_step: OnStep<'_>,
    ) -> Result<Shipped> {
        let m: Image = serde_json::from_value(manifest.clone())
            .map_err(|e| Error::Invalid(format!("the manifest is not an image manifest: {e}")))?;
        if m.uuid.is_empty() || m.name.is_empty() || m.version.is_empty() {
            return Err(Error::Invalid(
                "the manifest has no uuid, name or version".into(),
            ));
        }
        let found = self
            .imgapi
            .list(&lookup_filter(manifest, &self.channels))
            .await?;
        // IMGAPI's name and version filters are exact here, but be sure
        let found: Vec<Image> = found
            .into_iter()
            .filter(|i| i.name == m.name && i.version == m.version)
            .collect();
        let home = self.home();
        let compression = m
            .file()
            .and_then(|f| f.compression.clone())
            .unwrap_or_else(|| "gzip".into());
        let (how, uuid, remove) = match plan(&found, &m.uuid) {
            Plan::Already { uuid, remove } => {
                let removed = self.remove(&found, &remove).await?;
                on_step("already-active", &uuid);
                let img = found
                    .iter()
                    .find(|i| i.uuid == uuid)
                    .cloned()
                    .unwrap_or_default();
                let added = self.add_channels(&img).await?;
                return Ok(Shipped {
                    how: How::AlreadyActive,
                    state: state(&img).to_string(),
                    sha1: img.file().and_then(|f| f.sha1.clone()),
                    uuid,
                    uploaded: 0,
                    removed,
                    channels_added: added,
                });
            }
            Plan::Resume { uuid, remove } => {
                on_step("reused", &uuid);
                (How::Resumed, uuid, remove)
            }
            Plan::Import => {
                home.import(&m).await?;
                on_step("imported", &m.uuid);
                pause_hook("after-import");
                (How::Imported, m.uuid.clone(), vec![])
            }
        };
        let removed = self.remove(&found, &remove).await?;
        // the image in the channel it lives in
        let current = found.iter().find(|i| i.uuid == uuid);
        let client = match current
            .and_then(|i| i.channels.as_ref())
            .and_then(|c| c.first())
        {
            Some(c) if !self.channels.is_empty() => self.imgapi.with_channel(Some(c)),
            _ => home.clone(),
        };
        let have = match current {
            Some(_) => client.get(&uuid).await?.file().cloned(),
            None => None,
        };
        let same = have.as_ref().is_some_and(|f| {
            f.sha1
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(sha1))
                && f.size.val() == Some(size)
        });
        let mut uploaded = 0;
        if !same {
            let f = tokio::fs::File::open(file)
                .await
                .map_err(|e| Error::io(file, e))?;
            let reader = UploadReader {
                inner: f,
                sent: 0,
                half: pause("during-upload").then_some(size / 2),
                announced: false,
            };
            let up = FileUpload {
                compression,
                size,
                sha1: Some(sha1.to_string()),
                ..Default::default()
            };
            client.add_file(&uuid, &up, reader).await?;
            uploaded = size;
            on_step("uploaded", &uuid);
        }
        pause_hook("before-activate");
        let img = client.activate(&uuid).await?;
        on_step("active", &uuid);
        let added = self.add_channels(&img).await?;
        Ok(Shipped {
            how,
            state: state(&img).to_string(),
            sha1: img.file().and_then(|f| f.sha1.clone()),
            uuid,
            uploaded,
            removed,
            channels_added: added,
        })
    }

    /// Delete unactivated leftovers (from every channel they are in).
    async fn remove(&self, found: &[Image], uuids: &[String]) -> Result<Vec<String>> {
        let mut out = vec![];
        for u in uuids {
            let img = found.iter().find(|i| &i.uuid == u);
            let c = img
                .and_then(|i| i.channels.as_ref())
                .and_then(|c| c.first())
                .filter(|_| !self.channels.is_empty())
                .map(String::as_str);
            self.imgapi
                .with_channel(c)
                .delete(u, !self.channels.is_empty())
                .await?;
            tracing::info!(
                image = u.as_str(),
                "deleted an unactivated copy left by an interrupted run"
            );
            out.push(u.clone());
        }
        Ok(out)
    }

    /// `channel-add` the image to every configured channel it is not in.
    async fn add_channels(&self, img: &Image) -> Result<Vec<String>> {
        let have: Vec<String> = img.channels.clone().unwrap_or_default();
        let Some(from) = have.first() else {
            return Ok(vec![]);
        };
        let mut added = vec![];
        for c in &self.channels {
            if !have.contains(c) {
                self.imgapi
                    .with_channel(Some(from))
                    .channel_add(&img.uuid, c)
                    .await?;
                added.push(c.clone());
            }
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn img(uuid: &str, state: &str) -> Image {
        serde_json::from_value(json!({"uuid": uuid, "name": "n", "version": "1", "state": state}))
            .unwrap()
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&[], "m"), Plan::Import);
        assert_eq!(
            plan(&[img("a", "unactivated"), img("m", "unactivated")], "m"),
            Plan::Resume {
                uuid: "m".into(),
                remove: vec!["a".into()]
            }
        );
        assert_eq!(
            plan(&[img("a", "unactivated")], "m"),
            Plan::Resume {
                uuid: "a".into(),
                remove: vec![]
            }
        );
        assert_eq!(
            plan(&[img("x", "unactivated"), img("b", "active")], "m"),
            Plan::Already {
                uuid: "b".into(),
                remove: vec!["x".into()]
            }
        );
        assert_eq!(
            plan(&[img("d", "disabled")], "m"),
            Plan::Already {
                uuid: "d".into(),
                remove: vec![]
            }
        );
    }

    #[test]
    fn the_lookup_names_name_version_owner_in_every_channel() {
        let m = json!({"name": "debian-12", "version": "20261125", "owner": "o-1"});
        let f = lookup_filter(&m, &["dev".into()]);
        assert_eq!(f.name.as_deref(), Some("debian-12"));
        assert_eq!(f.version.as_deref(), Some("20261125"));
        assert_eq!(f.owner.as_deref(), Some("o-1"));
        assert_eq!(f.state.as_deref(), Some("all"));
        assert_eq!(f.channel.as_deref(), Some("*"));
        assert_eq!(lookup_filter(&m, &[]).channel, None);
        let unset = json!({"name": "n", "version": "1", "owner": UNSET_OWNER});
        assert_eq!(lookup_filter(&unset, &[]).owner, None);
    }

    #[test]
    fn unreachable_imgapi_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let s = Shipper::new(&url, &[]).unwrap();
        let e = block_on(s.ping()).unwrap_err();
        assert!(e.to_string().contains("IMGAPI"), "{e}");
    }
}
