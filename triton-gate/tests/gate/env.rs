//! The shared world: sim nodes, sim Triton, accounts, packages, images.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};
use sim::triton::{self, client, Background, Config};
use triton_gate::backend::Urls;
use triton_gate::gate::{Gate, GateConfig};
use triton_gate::httpsig::Ed25519Signer;

pub const OLD_STAMP: &str = "20250101T000000Z";
pub const NEW_STAMP: &str = "20261101T000000Z";
pub const OLD_BRANDS: &[&str] = &["joyent", "joyent-minimal", "lx", "bhyve", "kvm"];
pub const NEW_BRANDS: &[&str] = &["joyent", "joyent-minimal", "lx", "bhyve", "kvm", "builder"];

pub const OPS_UUID: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
pub const CUST_UUID: &str = "2b5a7e43-3a1f-4c49-8d61-5f0e6d7c8b9a";

/// Operator-owned builder package.
pub const BUILDER_PKG: &str = "7fc87f43-2def-4e6f-9f2c-cae7d4a8d1b5";
/// A misconfigured public builder package (no owner_uuids).
pub const PUBLIC_BUILDER_PKG: &str = "0d3c7f2a-1b4e-4c5d-8e6f-7a8b9c0d1e2f";
/// A builder package that lists the customer in owner_uuids.
pub const CUST_BUILDER_PKG: &str = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9";
/// An ordinary joyent package.
pub const JOYENT_PKG: &str = "4a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";
/// An inactive joyent package.
pub const INACTIVE_PKG: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";

/// Private builder image of the operator.
pub const BUILDER_IMG: &str = "6f1e0c2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b";
/// A public builder image (misconfiguration).
pub const PUBLIC_BUILDER_IMG: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
/// An ordinary public zone-dataset image.
pub const PLAIN_IMG: &str = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";

pub struct Env {
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
    pub old: PathBuf,
    pub new: PathBuf,
    pub old_uuid: String,
    pub new_uuid: String,
    /// Keeps the sim services running.
    pub _sim: Background,
    pub urls: Urls,
    pub ops: Ed25519Signer,
    pub ops_pub: String,
    /// The operator's private key file (OpenSSH format).
    pub ops_key_file: PathBuf,
    pub cust: Ed25519Signer,
    /// A sub-user of the operator account, with its own key.
    pub sub: Ed25519Signer,
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn random_signer(login: &str) -> Ed25519Signer {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("getrandom");
    Ed25519Signer::from_seed(login, &seed)
}

/// The operator key comes from the real `ssh-keygen` when present.
fn operator_signer(dir: &Path) -> (Ed25519Signer, PathBuf) {
    let f = dir.join("id_ed25519_ops");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@gate-test", "-f"])
        .arg(&f)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let pem = std::fs::read_to_string(&f).unwrap();
        let k = ssh_key::PrivateKey::from_openssh(&pem).unwrap();
        let seed = k.key_data().ed25519().unwrap().private.to_bytes();
        return (Ed25519Signer::from_seed("ops", &seed), f);
    }
    let s = random_signer("ops");
    std::fs::write(&f, s.private_openssh("ops@gate-test")).unwrap();
    (s, f)
}

fn post(url: &str, v: &Value) -> client::Reply {
    client::post_json(url, v).expect("POST")
}

fn package(uuid: &str, name: &str, brand: Option<&str>, owners: Option<&[&str]>) -> Value {
    let mut p = json!({
        "uuid": uuid, "name": name, "version": "1.0.0", "active": true,
        "cpu_cap": 200, "max_lwps": 2000, "max_physical_memory": 1024, "max_swap": 2048,
        "quota": 10240, "zfs_io_priority": 100,
    });
    if let Some(b) = brand {
        p["brand"] = json!(b);
    }
    if let Some(o) = owners {
        p["owner_uuids"] = json!(o);
    }
    p
}

fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ship_image(imgapi: &str, uuid: &str, name: &str, public: bool, brand: Option<&str>) {
    let mut m = json!({
        "v": 2, "uuid": uuid, "owner": OPS_UUID, "name": name, "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": public, "disabled": false,
        "published_at": "2026-11-01T00:00:00Z", "description": format!("{name} for tests"),
        "state": "active",
    });
    if let Some(b) = brand {
        m["requirements"] = json!({"brand": b});
    }
    let data: Vec<u8> = (0..2048u32)
        .flat_map(|i| (i ^ 0x5a5a).to_le_bytes())
        .collect();
    let r = post(&format!("{imgapi}/images/{uuid}?action=import"), &m);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = client::put_bytes(
        &format!(
            "{imgapi}/images/{uuid}/file?compression=gzip&sha1={}",
            sha1_hex(&data)
        ),
        &data,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        &format!("{imgapi}/images/{uuid}?action=activate"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn build() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut nodes = Vec::new();
    for (name, stamp, brands) in [
        ("cn-old", OLD_STAMP, OLD_BRANDS),
        ("cn-new", NEW_STAMP, NEW_BRANDS),
    ] {
        let pi = root.join(format!("platform-{stamp}.tgz"));
        sim::platform::build(stamp, &strs(brands), None, &pi).expect("platform build");
        let node = root.join(name);
        sim::init::init(&node, Some(&pi), Some(name)).expect("node init");
        nodes.push(node);
    }
    let uuid_of = |n: &Path| -> String {
        let out = sim::node::tool_command_at(&testkit::bin("sim"), n, "sysinfo")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["UUID"].as_str().unwrap().to_string()
    };
    let (old, new) = (nodes[0].clone(), nodes[1].clone());
    let (old_uuid, new_uuid) = (uuid_of(&old), uuid_of(&new));

    let data = root.join("triton");
    let store = sim::triton::Store::open(&data).unwrap();
    let (ops, ops_key_file) = operator_signer(&root);
    let ops_pub = ops.public_openssh("ops@gate-test");
    let cust = random_signer("cust");
    sim::triton::mahi::add_account(
        &store,
        "ops",
        Some(OPS_UUID),
        &strs(&["operators"]),
        std::slice::from_ref(&ops_pub),
        true,
    )
    .unwrap();
    sim::triton::mahi::add_account(
        &store,
        "cust",
        Some(CUST_UUID),
        &[],
        &[cust.public_openssh("cust@gate-test")],
        true,
    )
    .unwrap();
    let sub_key = random_signer("ops");
    sim::triton::mahi::add_user(
        &store,
        "ops",
        "sub1",
        None,
        &[sub_key.public_openssh("sub1")],
    )
    .unwrap();
    let sub = sub_key.as_user("ops", "sub1");

    let mut cfg = Config::new(&data, &[old.clone(), new.clone()]);
    cfg.node_bin = testkit::bin("sim");
    cfg.admin_uuid = Some("00000000-1111-4222-8333-444444444444".into());
    let sim = triton::start(cfg).expect("sim triton");
    let urls = Urls::from_endpoints_file(&data.join("endpoints.json")).unwrap();

    let papi = sim.url("papi").to_string();
    for p in [
        package(
            BUILDER_PKG,
            "builder-1g",
            Some("builder"),
            Some(&[OPS_UUID]),
        ),
        package(PUBLIC_BUILDER_PKG, "builder-public", Some("builder"), None),
        package(
            CUST_BUILDER_PKG,
            "builder-cust",
            Some("builder"),
            Some(&[CUST_UUID, OPS_UUID]),
        ),
        package(JOYENT_PKG, "joyent-1g", Some("joyent"), None),
        {
            let mut p = package(INACTIVE_PKG, "joyent-old", Some("joyent"), None);
            p["active"] = json!(false);
            p
        },
    ] {
        let r = post(&format!("{papi}/packages"), &p);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let img = sim.url("imgapi").to_string();
    ship_image(&img, BUILDER_IMG, "builder-base", false, Some("builder"));
    ship_image(
        &img,
        PUBLIC_BUILDER_IMG,
        "builder-base-public",
        true,
        Some("builder"),
    );
    ship_image(&img, PLAIN_IMG, "base-64", true, None);

    Env {
        dir: root,
        _dir: dir,
        old,
        new,
        old_uuid,
        new_uuid,
        _sim: sim,
        urls,
        ops,
        ops_pub,
        ops_key_file,
        cust,
        sub,
    }
}

static ENV: OnceLock<Env> = OnceLock::new();

/// The shared world, built on first use.
pub fn env() -> &'static Env {
    ENV.get_or_init(build)
}

/// Remove the world's directory (statics are never dropped).
pub fn cleanup() {
    if let Some(e) = ENV.get() {
        let _ = std::fs::remove_dir_all(&e.dir);
    }
}

impl Env {
    /// A gate with its own audit log, in the background.
    pub fn gate(&self, name: &str) -> (triton_gate::server::Background, PathBuf) {
        let audit = self.dir.join(format!("audit-{name}.log"));
        let g = Gate::new(GateConfig::new(self.urls.clone(), audit.clone()));
        (triton_gate::server::start(g, "127.0.0.1:0").unwrap(), audit)
    }

    /// A second sim Triton over the same nodes and a copy of the first
    /// one's state, with CNAPI's brand filter off (as upstream DAPI is).
    pub fn unfiltered_triton(&self) -> (Background, Urls) {
        let data = self.dir.join("triton-unfiltered");
        let _ = std::fs::remove_dir_all(&data);
        let st = std::process::Command::new("cp")
            .arg("-R")
            .arg(self.dir.join("triton"))
            .arg(&data)
            .status()
            .unwrap();
        assert!(st.success());
        let mut cfg = Config::new(&data, &[self.old.clone(), self.new.clone()]);
        cfg.node_bin = testkit::bin("sim");
        cfg.filter_brands = false;
        let bg = triton::start(cfg).expect("sim triton");
        let urls = Urls::from_endpoints_file(&data.join("endpoints.json")).unwrap();
        (bg, urls)
    }

    /// `vmadm list -p -o uuid,brand,state` on a node.
    pub fn vmadm_list(&self, node: &Path) -> Vec<(String, String, String)> {
        let out = sim::node::tool_command_at(&testkit::bin("sim"), node, "vmadm")
            .args(["list", "-p", "-o", "uuid,brand,state"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect()
    }

    /// Every VM on both nodes.
    pub fn all_vms(&self) -> Vec<(String, String, String)> {
        let mut v = self.vmadm_list(&self.old);
        v.extend(self.vmadm_list(&self.new));
        v
    }

    /// VMAPI's VMs of an owner.
    pub fn vmapi_vms(&self, owner: &str) -> Vec<Value> {
        let r = client::get(&format!("{}/vms?owner_uuid={owner}", self.urls.vmapi)).unwrap();
        r.json().as_array().cloned().unwrap_or_default()
    }
}
