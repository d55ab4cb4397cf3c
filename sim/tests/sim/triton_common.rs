//! Helpers shared by the `triton*` integration tests: sim nodes on chosen
//! platforms, running services, an image to ship.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sim::triton::{self, client, Background, Config};

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

/// A platform tarball (built once per test binary and stamp).
pub fn platform(stamp: &str, brands: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let out = dir
        .path()
        .join(format!("platform-{stamp}-{}.tgz", brands.replace(',', "_")));
    let lock = dir.path().join(".lock");
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
    let pi = platform(stamp, brands);
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

pub fn get(url: &str) -> client::Reply {
    client::get(url).expect("GET")
}

pub fn post(url: &str, v: &Value) -> client::Reply {
    client::post_json(url, v).expect("POST")
}

pub fn put(url: &str, v: &Value) -> client::Reply {
    client::put_json(url, v).expect("PUT")
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

/// Import, add file, activate; returns the stored image.
pub fn ship_image(imgapi: &str, m: &Value, data: &[u8]) -> Value {
    let uuid = m["uuid"].as_str().unwrap();
    let r = post(&format!("{imgapi}/images/{uuid}?action=import"), m);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = client::put_bytes(
        &format!(
            "{imgapi}/images/{uuid}/file?compression=gzip&sha1={}",
            sha1_hex(data)
        ),
        data,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        &format!("{imgapi}/images/{uuid}?action=activate"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
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
