use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use serde_json::json;
use sha1::{Digest as _, Sha1};
use triton_api::*;

use crate::common::{fixture_json, http, serve, Answer, Stub};

const IMG: &str = "2f3e4d5c-6b7a-4899-8a1b-2c3d4e5f6a7b";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A few MiB of bytes that are not all alike.
fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[derive(Default, Debug, Clone)]
struct Upload {
    headers: Option<HeaderMap>,
    query: Option<String>,
    size: u64,
    sha1: String,
    chunks: usize,
}

/// AddImageFile as IMGAPI does it: stream the body, hash it, check
/// Content-Length and the `sha1` parameter, answer the manifest.
async fn add_file(
    State(st): State<Arc<Mutex<Upload>>>,
    Path(uuid): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let mut s = body.into_data_stream();
    let mut h = Sha1::new();
    let (mut size, mut chunks) = (0u64, 0usize);
    while let Some(c) = s.next().await {
        let c = match c {
            Ok(c) => c,
            Err(_) => {
                return (axum::http::StatusCode::BAD_REQUEST, "broken upload").into_response()
            }
        };
        h.update(&c);
        size += c.len() as u64;
        chunks += 1;
    }
    let sha1 = hex(&h.finalize());
    *st.lock().unwrap() = Upload {
        headers: Some(parts.headers.clone()),
        query: parts.uri.query().map(str::to_string),
        size,
        sha1: sha1.clone(),
        chunks,
    };
    let q: Vec<(String, String)> =
        reqwest::Url::parse(&format!("http://x/?{}", parts.uri.query().unwrap_or("")))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let want = q.iter().find(|(k, _)| k == "sha1").map(|(_, v)| v.clone());
    if want.is_some_and(|w| w != sha1) {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"code": "Download", "message": format!("\"sha1\" hash does not match the uploaded file sha1 hash, {sha1}")})),
        )
            .into_response();
    }
    let mut m = fixture_json("imgapi-imported.json");
    m["uuid"] = json!(uuid);
    m["files"] = json!([{"sha1": sha1, "size": size, "compression": "gzip"}]);
    Json(m).into_response()
}

async fn upload_server() -> (String, Arc<Mutex<Upload>>) {
    let st = Arc::new(Mutex::new(Upload::default()));
    let r = Router::new()
        .route("/images/{uuid}/file", put(add_file))
        .with_state(st.clone());
    (serve(r).await, st)
}

#[tokio::test]
async fn streamed_upload_of_a_few_mib_arrives_intact() {
    let (url, st) = upload_server().await;
    let img = Imgapi::new(&http(), &url)
        .unwrap()
        .with_channel(Some("dev"));
    let d = data(3 * 1024 * 1024 + 17);
    let digest = FileDigest::of_bytes(&d);
    let up = FileUpload {
        compression: "gzip".into(),
        size: d.len() as u64,
        sha1: Some(digest.sha1.clone()),
        content_md5: Some(digest.md5.clone()),
        ..Default::default()
    };
    let m = img
        .add_file(IMG, &up, std::io::Cursor::new(d.clone()))
        .await
        .unwrap();
    let seen = st.lock().unwrap().clone();
    assert_eq!(seen.size, d.len() as u64);
    assert_eq!(seen.sha1, digest.sha1);
    assert!(
        seen.chunks > 1,
        "streamed, not one buffer ({} chunks)",
        seen.chunks
    );
    let h = seen.headers.unwrap();
    assert_eq!(h["content-length"], d.len().to_string().as_str());
    assert!(h.get("transfer-encoding").is_none());
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["content-md5"], digest.md5.as_str());
    assert_eq!(
        seen.query.as_deref(),
        Some(&*format!(
            "compression=gzip&sha1={}&channel=dev",
            digest.sha1
        ))
    );
    assert_eq!(
        m.file().unwrap().sha1.as_deref(),
        Some(digest.sha1.as_str())
    );
    assert_eq!(m.file().unwrap().size.val(), Some(d.len() as u64));
}

#[tokio::test]
async fn upload_from_a_file_computes_the_digests() {
    let (url, st) = upload_server().await;
    let img = Imgapi::new(&http(), &url).unwrap();
    let d = data(1024 * 1024);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("image.zfs.gz");
    std::fs::write(&p, &d).unwrap();
    let m = img.add_file_from_path(IMG, &p, "gzip").await.unwrap();
    let want = FileDigest::of_bytes(&d);
    assert_eq!(m.file().unwrap().sha1.as_deref(), Some(want.sha1.as_str()));
    let seen = st.lock().unwrap().clone();
    assert_eq!(seen.headers.unwrap()["content-md5"], want.md5.as_str());
    assert_eq!(
        seen.query.as_deref(),
        Some(&*format!("compression=gzip&sha1={}", want.sha1))
    );
    // a missing file is a local error
    let e = img
        .add_file_from_path(IMG, &t.path().join("none"), "gzip")
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io(_)), "{e}");
}

#[tokio::test]
async fn a_short_stream_and_a_wrong_sha1_fail_clearly() {
    let (url, _st) = upload_server().await;
    let img = Imgapi::new(&http(), &url).unwrap();
    let up = FileUpload {
        compression: "gzip".into(),
        size: 100_000,
        ..Default::default()
    };
    let e = img
        .add_file(IMG, &up, std::io::Cursor::new(vec![1u8; 1000]))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io(_)), "{e}");
    assert!(
        e.to_string()
            .contains("the file ended after 1000 of the 100000 bytes announced"),
        "{e}"
    );
    let up = FileUpload {
        compression: "gzip".into(),
        size: 1000,
        sha1: Some("0000".into()),
        ..Default::default()
    };
    let e = img
        .add_file(IMG, &up, std::io::Cursor::new(vec![1u8; 1000]))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.code(), Some("Download"));
}

async fn file(State(d): State<Arc<Vec<u8>>>, Path(_u): Path<String>) -> Response {
    let digest = FileDigest::of_bytes(&d);
    let mut r = Response::new(Body::from(Bytes::from(d.to_vec())));
    let h = r.headers_mut();
    h.insert("content-type", "application/octet-stream".parse().unwrap());
    h.insert("etag", digest.sha1.parse().unwrap());
    h.insert("content-md5", digest.md5.parse().unwrap());
    r
}

async fn bad_file(Path(_u): Path<String>) -> Response {
    let mut r = Response::new(Body::from("not the image"));
    r.headers_mut().insert(
        "x-image-file-sha1",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709".parse().unwrap(),
    );
    r
}

#[tokio::test]
async fn download_checks_what_imgapi_announced() {
    let d = Arc::new(data(2 * 1024 * 1024));
    let r = Router::new()
        .route("/images/{uuid}/file", get(file))
        .with_state(d.clone())
        .route("/bad/images/{uuid}/file", get(bad_file));
    let url = serve(r).await;
    let img = Imgapi::new(&http(), &url).unwrap();
    let dl = img.get_file(IMG).await.unwrap();
    assert_eq!(dl.size, Some(d.len() as u64));
    let want = FileDigest::of_bytes(&d);
    assert_eq!(dl.sha1.as_deref(), Some(want.sha1.as_str()));
    let mut out = Vec::new();
    let got = dl.write_to(&mut out).await.unwrap();
    assert_eq!(got, want);
    assert_eq!(out, *d);
    let bad = Imgapi::new(&http(), &format!("{url}/bad")).unwrap();
    let e = bad.get_file(IMG).await.unwrap().bytes().await.unwrap_err();
    assert!(e.to_string().contains("downloaded file sha1"), "{e}");
    // 404 on the file is an ordinary error
    let e = Imgapi::new(&http(), &format!("{url}/none"))
        .unwrap()
        .get_file(IMG)
        .await
        .unwrap_err();
    assert!(e.is_not_found());
}

#[tokio::test]
async fn import_activate_channels_list_delete() {
    let path = format!("/images/{IMG}");
    let s = Stub::start(vec![
        (
            "POST",
            &path,
            vec![
                Answer::fixture(200, "imgapi-imported.json"),
                Answer::fixture(200, "imgapi-image.json"),
                Answer::fixture(200, "imgapi-image.json"),
            ],
        ),
        (
            "GET",
            "/images",
            vec![Answer::fixture(200, "imgapi-list.json")],
        ),
        (
            "GET",
            &path,
            vec![Answer::fixture(200, "imgapi-image.json")],
        ),
        ("DELETE", &path, vec![Answer::empty(204)]),
        (
            "GET",
            "/channels",
            vec![Answer::fixture(200, "imgapi-channels.json")],
        ),
    ])
    .await;
    let img = Imgapi::new(&http(), &s.url)
        .unwrap()
        .with_channel(Some("dev"));
    let manifest: Image = serde_json::from_value(fixture_json("imgapi-imported.json")).unwrap();
    let m = img.import(&manifest).await.unwrap();
    assert_eq!(m.state.as_deref(), Some("unactivated"));
    let r = s.last();
    assert_eq!(
        r.path_and_query(),
        format!("{path}?action=import&channel=dev")
    );
    assert_eq!(
        r.json(),
        fixture_json("imgapi-imported.json"),
        "the manifest goes as is"
    );
    let m = img.activate(IMG).await.unwrap();
    assert!(m.is_active());
    assert_eq!(
        s.last().query.as_deref(),
        Some("action=activate&channel=dev")
    );
    img.channel_add(IMG, "staging").await.unwrap();
    assert_eq!(
        s.last().query.as_deref(),
        Some("action=channel-add&channel=dev")
    );
    assert_eq!(s.last().json(), json!({"channel": "staging"}));
    let f = ImageFilter {
        name: Some("base-64-lts".into()),
        version: Some("24.4.1".into()),
        owner: Some("930896af-bf8c-48d4-885c-6573a94b1853".into()),
        state: Some("all".into()),
        channel: Some("*".into()),
        ..Default::default()
    };
    let list = img.list(&f).await.unwrap();
    assert_eq!(
        list[0].channels.as_deref(),
        Some(&["dev".to_string(), "staging".to_string()][..])
    );
    assert_eq!(
        s.last().query.as_deref(),
        Some("name=base-64-lts&version=24.4.1&owner=930896af-bf8c-48d4-885c-6573a94b1853&state=all&channel=*")
    );
    img.get_for_account(IMG, "930896af-bf8c-48d4-885c-6573a94b1853")
        .await
        .unwrap();
    assert_eq!(
        s.last().query.as_deref(),
        Some("account=930896af-bf8c-48d4-885c-6573a94b1853&channel=dev")
    );
    img.delete(IMG, true).await.unwrap();
    assert_eq!(
        s.last().query.as_deref(),
        Some("force_all_channels=true&channel=dev")
    );
    let ch = img.channels().await.unwrap();
    assert_eq!(ch[0].name, "dev");
    assert_eq!(ch[0].default, Some(true));
}

#[tokio::test]
async fn ship_cleans_up_after_a_failed_activation() {
    let path = format!("/images/{IMG}");
    let mut added = fixture_json("imgapi-file-added.json");
    added["files"][0]["sha1"] = json!(FileDigest::of_bytes(b"x").sha1);
    let s = Stub::start(vec![
        (
            "POST",
            &path,
            vec![
                Answer::fixture(200, "imgapi-imported.json"),
                Answer::json(
                    422,
                    &json!({"code": "NoActivationNoFile", "message": "no file"}),
                ),
            ],
        ),
        (
            "PUT",
            &format!("{path}/file"),
            vec![Answer::json(200, &added)],
        ),
        ("DELETE", &path, vec![Answer::empty(204)]),
    ])
    .await;
    let img = Imgapi::new(&http(), &s.url).unwrap();
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f.gz");
    std::fs::write(&p, b"x").unwrap();
    let manifest: Image = serde_json::from_value(fixture_json("imgapi-imported.json")).unwrap();
    let e = img.ship(&manifest, &p).await.unwrap_err();
    assert_eq!(e.code(), Some("NoActivationNoFile"), "{e}");
    let calls: Vec<String> = s
        .seen()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_and_query()))
        .collect();
    assert_eq!(
        calls,
        [
            format!("POST {path}?action=import"),
            format!(
                "PUT {path}/file?compression=gzip&sha1={}",
                FileDigest::of_bytes(b"x").sha1
            ),
            format!("POST {path}?action=activate"),
            format!("DELETE {path}"),
        ]
    );
}

#[tokio::test]
async fn a_recorded_sha1_that_differs_is_an_error() {
    let s = Stub::start(vec![(
        "PUT",
        &format!("/images/{IMG}/file"),
        vec![Answer::fixture(200, "imgapi-file-added.json")],
    )])
    .await;
    let img = Imgapi::new(&http(), &s.url).unwrap();
    let up = FileUpload {
        compression: "gzip".into(),
        size: 1,
        ..Default::default()
    };
    let e = img
        .add_file(IMG, &up, std::io::Cursor::new(b"x".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{e}");
    assert!(
        e.to_string()
            .contains("IMGAPI recorded sha1 5133b103b6ef72680488481b77f5de6323bed0f0"),
        "{e}"
    );
}
