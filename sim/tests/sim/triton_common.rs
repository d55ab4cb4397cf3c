//! Helpers shared by the `triton*` integration tests: sim nodes on chosen
//! platforms, running services, an image to ship, and raw HTTP requests
//! (through triton-api's shared reqwest client) for checking the services'
//! wire formats, error bodies included.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sim::triton::{self, Background, Config};
use triton_api::{FileUpload, HttpClient, Image, Imgapi};

pub const OLD_STAMP: &str = "20250101T000000Z";
pub const NEW_STAMP: &str = "20261101T000000Z";
pub const OLD_BRANDS: &str = "joyent,joyent-minimal,lx,bhyve,kvm";
pub const NEW_BRANDS: &str = "joyent,joyent-minimal,lx,bhyve,kvm,builder";
pub const OPERATOR: &str = "930896af-bf8c-48d4-885c-6573a94b1853";

pub fn sim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sim"))
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A platform tarball in `dir` (built once per directory, stamp and brands;
/// it goes away with the caller's temporary directory).
pub fn platform(dir: &Path, stamp: &str, brands: &str) -> PathBuf {
    let out = dir.join(format!("platform-{stamp}-{}.tgz", brands.replace(',', "_")));
    let lock = dir.join(".platform.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .expect("lock");
    let mut l = fd_lock::RwLock::new(f);
    let _g = l.write().expect("lock");
    if !out.exists() {
        run(Command::new(sim_bin())
            .args([
                "platform", "build", "--stamp", stamp, "--brands", brands, "--out",
            ])
            .arg(&out));
    }
    out
}

/// A fresh sim node booted on `stamp` with `brands`.
pub fn node(parent: &Path, name: &str, stamp: &str, brands: &str) -> PathBuf {
    let dir = parent.join(name);
    let pi = platform(parent, stamp, brands);
    run(Command::new(sim_bin())
        .args(["node", "init"])
        .arg(&dir)
        .arg("--platform")
        .arg(&pi)
        .args(["--hostname", name]));
    dir
}

pub fn sysinfo(node: &Path) -> Value {
    let out = run(&mut sim::node::tool_command_at(&sim_bin(), node, "sysinfo"));
    serde_json::from_str(&out).expect("sysinfo json")
}

pub fn start(data: &Path, cns: &[PathBuf]) -> Background {
    let mut cfg = Config::new(data, cns);
    cfg.node_bin = sim_bin();
    cfg.admin_uuid = Some(OPERATOR.to_string());
    triton::start(cfg).expect("start sim triton")
}

pub use testkit::block;

/// One connection pool for every request of the tests.
pub fn http() -> &'static HttpClient {
    static H: OnceLock<HttpClient> = OnceLock::new();
    H.get_or_init(HttpClient::default)
}

/// A raw answer.
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

/// `method url` with an optional `(content type, body)` and extra headers;
/// transport errors are errors, any status is an answer.
pub fn try_request(
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
    extra: &[(&str, &str)],
) -> Result<Reply, String> {
    let m = axum::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    block(async {
        let mut b = http().reqwest().request(m, url);
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        if let Some((ct, data)) = body {
            b = b.header("content-type", ct).body(data.to_vec());
        }
        let r = b.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = r.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    })
}

pub fn request(
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
    extra: &[(&str, &str)],
) -> Reply {
    try_request(method, url, body, extra).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn get(url: &str) -> Reply {
    request("GET", url, None, &[])
}

pub fn try_get(url: &str) -> Result<Reply, String> {
    try_request("GET", url, None, &[])
}

pub fn delete(url: &str) -> Reply {
    request("DELETE", url, None, &[])
}

pub fn post(url: &str, v: &Value) -> Reply {
    request(
        "POST",
        url,
        Some(("application/json", v.to_string().as_bytes())),
        &[],
    )
}

pub fn put(url: &str, v: &Value) -> Reply {
    request(
        "PUT",
        url,
        Some(("application/json", v.to_string().as_bytes())),
        &[],
    )
}

pub fn put_bytes(url: &str, data: &[u8]) -> Reply {
    request("PUT", url, Some(("application/octet-stream", data)), &[])
}

pub fn builder_package(uuid: &str, min_platform: Option<&str>) -> Value {
    let mut p = json!({
        "uuid": uuid, "name": "builder-2g", "version": "1.0.0", "active": true,
        "cpu_cap": 200, "max_lwps": 2000, "max_physical_memory": 2048, "max_swap": 4096,
        "quota": 20480, "zfs_io_priority": 100, "brand": "builder", "owner_uuids": [OPERATOR],
    });
    if let Some(s) = min_platform {
        p["min_platform"] = json!({"7.0": s});
    }
    p
}

/// A zone-dataset image manifest for builder zones, and its file.
pub fn builder_image(uuid: &str) -> (Value, Vec<u8>) {
    let data: Vec<u8> = (0..4096u32).flat_map(|i| i.to_le_bytes()).collect();
    let m = json!({
        "v": 2, "uuid": uuid, "owner": OPERATOR, "name": "builder-base", "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": false, "disabled": false,
        "published_at": "2026-11-01T00:00:00Z", "description": "base image for builder zones",
        "requirements": {"brand": "builder"}, "state": "active",
    });
    (m, data)
}

pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Import, add file, activate (triton-api's IMGAPI client); returns the
/// stored image as IMGAPI serves it.
pub fn ship_image(imgapi: &str, m: &Value, data: &[u8]) -> Value {
    let c = Imgapi::new(http(), imgapi).expect("IMGAPI client");
    let m: Image = serde_json::from_value(m.clone()).expect("a manifest");
    let up = FileUpload {
        compression: "gzip".into(),
        size: data.len() as u64,
        sha1: Some(sha1_hex(data)),
        ..Default::default()
    };
    let img = block(async {
        c.import(&m).await?;
        c.add_file(&m.uuid, &up, std::io::Cursor::new(data.to_vec()))
            .await?;
        c.activate(&m.uuid).await
    })
    .unwrap_or_else(|e| panic!("shipping {}: {e}", m.uuid));
    serde_json::to_value(img).unwrap()
}

/// `vmadm list -p -o uuid,brand,state` on a node, as (uuid, brand, state).
pub fn vmadm_list(node: &Path) -> Vec<(String, String, String)> {
    let out = run(sim::node::tool_command_at(&sim_bin(), node, "vmadm").args([
        "list",
        "-p",
        "-o",
        "uuid,brand,state",
    ]));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (
                f[0].to_string(),
                f.get(1).unwrap_or(&"").to_string(),
                f.get(2).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}
