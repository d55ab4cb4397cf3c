//! The shared world: sim nodes, sim Triton, accounts, packages, images,
//! and small blocking wrappers around triton-api's async clients.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use sim::triton::{self, Background, Config};
use triton_api::{
    CloudApi, Endpoints, FileUpload, HttpClient, Image, Package, Signer, Triton, Vm, VmFilter,
};
use triton_gate::gate::{Gate, GateConfig};

pub const OLD_STAMP: &str = "20250101T000000Z";
pub const NEW_STAMP: &str = "20261101T000000Z";
pub const OLD_BRANDS: &[&str] = &["joyent", "joyent-minimal", "lx", "bhyve", "kvm"];
pub const NEW_BRANDS: &[&str] = &["joyent", "joyent-minimal", "lx", "bhyve", "kvm", "builder"];

pub const OPS_UUID: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
pub const CUST_UUID: &str = "2b5a7e43-3a1f-4c49-8d61-5f0e6d7c8b9a";

/// The network builder machines are on (the sim's VMAPI puts every
/// network on the nodes' admin nic tag).
pub const NET: &str = "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b";

/// Operator-owned builder package, floor at the builder platform, networks.
pub const BUILDER_PKG: &str = "7fc87f43-2def-4e6f-9f2c-cae7d4a8d1b5";
/// A misconfigured public builder package (no owner_uuids).
pub const PUBLIC_BUILDER_PKG: &str = "0d3c7f2a-1b4e-4c5d-8e6f-7a8b9c0d1e2f";
/// A builder package that lists the customer in owner_uuids.
pub const CUST_BUILDER_PKG: &str = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9";
/// An inactive builder package of the operator (the customer listed too).
pub const INACTIVE_BUILDER_PKG: &str = "8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d";
/// An operator builder package with no placement rule.
pub const BARE_BUILDER_PKG: &str = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
/// An operator builder package placed by traits alone.
pub const TRAITS_BUILDER_PKG: &str = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f";
/// An ordinary joyent package.
pub const JOYENT_PKG: &str = "4a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";
/// A bigger joyent package (resize target).
pub const JOYENT2_PKG: &str = "3b4c5d6e-7f8a-4b9c-8d0e-1f2a3b4c5d6e";
/// An inactive joyent package.
pub const INACTIVE_PKG: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";

/// Private builder image of the operator.
pub const BUILDER_IMG: &str = "6f1e0c2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b";
/// A public builder image (misconfiguration).
pub const PUBLIC_BUILDER_IMG: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
/// A private builder image shared with the customer (acl).
pub const SHARED_BUILDER_IMG: &str = "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a";
/// An ordinary public zone-dataset image.
pub const PLAIN_IMG: &str = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";

pub use testkit::block;

/// One connection pool for every client of the tests.
pub fn http() -> &'static HttpClient {
    static H: OnceLock<HttpClient> = OnceLock::new();
    H.get_or_init(HttpClient::default)
}

/// An answer from the gate.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl From<triton_api::Reply> for Reply {
    fn from(r: triton_api::Reply) -> Reply {
        Reply {
            status: r.status,
            body: r.json(),
            headers: r.headers,
        }
    }
}

/// Requests to one gate, signed as one key (or not signed).
#[derive(Clone)]
pub struct GateClient {
    pub url: String,
    pub api: Option<CloudApi>,
}

impl GateClient {
    pub fn new(url: &str, signer: Option<Signer>) -> GateClient {
        GateClient {
            url: url.trim_end_matches('/').to_string(),
            api: signer.map(|s| CloudApi::new(http(), url, s).expect("CloudAPI client")),
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some(body))
    }

    /// `method path` (with its query), signed when there is a key.
    pub fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        match &self.api {
            Some(api) => block(api.request(method, path, body))
                .expect("request to the gate")
                .into(),
            None => unsigned(
                &format!("{}{path}", self.url),
                method,
                &[],
                body.map(|b| b.to_string().into_bytes()),
            ),
        }
    }
}

/// An unsigned request with extra headers and a raw body.
pub fn unsigned(
    url: &str,
    method: Method,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    block(async {
        let mut b = http().reqwest().request(method, url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(d) = body {
            b = b.header("content-type", "application/json").body(d);
        }
        let r = b.send().await.expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                if bytes.is_empty() {
                    Value::Null
                } else {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }
            }),
        }
    })
}

pub struct Env {
    _dir: tempfile::TempDir,
    pub dir: PathBuf,
    pub old: PathBuf,
    pub new: PathBuf,
    pub old_uuid: String,
    pub new_uuid: String,
    /// Keeps the sim services running.
    pub _sim: Background,
    pub endpoints: Endpoints,
    pub triton: Triton,
    pub ops: Signer,
    pub ops_pub: String,
    /// The operator's private key file (OpenSSH format).
    pub ops_key_file: PathBuf,
    pub cust: Signer,
    /// A sub-user of the operator account, with its own key.
    pub sub: Signer,
    /// A sub-user of the customer account.
    pub cust_sub: Signer,
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn random_signer(login: &str) -> Signer {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("getrandom");
    Signer::ed25519_from_seed(login, &seed)
}

/// The operator key comes from the real `ssh-keygen` when present.
fn operator_signer(dir: &Path) -> (Signer, PathBuf) {
    let f = dir.join("id_ed25519_ops");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@gate-test", "-f"])
        .arg(&f)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return (Signer::from_file("ops", &f).expect("ssh-keygen key"), f);
    }
    let s = random_signer("ops");
    std::fs::write(&f, s.private_openssh("ops@gate-test")).unwrap();
    (s, f)
}

pub fn package(uuid: &str, name: &str, brand: Option<&str>, owners: Option<&[&str]>) -> Value {
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

/// Import, add the file, activate: an image in IMGAPI.
pub fn ship_image(t: &Triton, manifest: Value) {
    let m: Image = serde_json::from_value(manifest).unwrap();
    let data: Vec<u8> = (0..2048u32)
        .flat_map(|i| (i ^ 0x5a5a).to_le_bytes())
        .collect();
    block(async {
        t.imgapi.import(&m).await.expect("import");
        let up = FileUpload {
            compression: "gzip".into(),
            size: data.len() as u64,
            sha1: Some(sha1_hex(&data)),
            ..Default::default()
        };
        t.imgapi
            .add_file(&m.uuid, &up, std::io::Cursor::new(data.clone()))
            .await
            .expect("add file");
        t.imgapi.activate(&m.uuid).await.expect("activate");
    });
}

fn image(uuid: &str, name: &str, public: bool, brand: Option<&str>) -> Value {
    let mut m = json!({
        "v": 2, "uuid": uuid, "owner": OPS_UUID, "name": name, "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": public, "disabled": false,
        "published_at": "2026-11-01T00:00:00Z", "description": format!("{name} for tests"),
        "state": "active",
    });
    if let Some(b) = brand {
        m["requirements"] = json!({"brand": b});
    }
    m
}

/// A sim Triton over `nodes` with its own state directory.
pub fn start_triton(
    data: &Path,
    nodes: &[PathBuf],
    edit: impl FnOnce(&mut Config),
) -> (Background, Endpoints) {
    let mut cfg = Config::new(data, nodes);
    cfg.node_bin = testkit::bin("sim");
    cfg.admin_uuid = Some("00000000-1111-4222-8333-444444444444".into());
    edit(&mut cfg);
    let bg = triton::start(cfg).expect("sim triton");
    let ep = Endpoints::from_file(&data.join("endpoints.json")).unwrap();
    (bg, ep)
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
    let cust_sub_key = random_signer("cust");
    sim::triton::mahi::add_user(
        &store,
        "cust",
        "dev1",
        None,
        &[cust_sub_key.public_openssh("dev1")],
    )
    .unwrap();

    let (sim, endpoints) = start_triton(&data, &[old.clone(), new.clone()], |_| {});
    let t = Triton::with_client(&endpoints, http()).unwrap();

    let floor = json!({"7.0": NEW_STAMP});
    let with = |mut p: Value, k: &str, v: Value| {
        p[k] = v;
        p
    };
    for p in [
        with(
            with(
                package(
                    BUILDER_PKG,
                    "builder-1g",
                    Some("builder"),
                    Some(&[OPS_UUID]),
                ),
                "min_platform",
                floor.clone(),
            ),
            "networks",
            json!([NET]),
        ),
        package(PUBLIC_BUILDER_PKG, "builder-public", Some("builder"), None),
        package(
            CUST_BUILDER_PKG,
            "builder-cust",
            Some("builder"),
            Some(&[CUST_UUID, OPS_UUID]),
        ),
        with(
            package(
                INACTIVE_BUILDER_PKG,
                "builder-old",
                Some("builder"),
                Some(&[OPS_UUID, CUST_UUID]),
            ),
            "active",
            json!(false),
        ),
        with(
            package(
                BARE_BUILDER_PKG,
                "builder-bare",
                Some("builder"),
                Some(&[OPS_UUID]),
            ),
            "networks",
            json!([NET]),
        ),
        with(
            with(
                package(
                    TRAITS_BUILDER_PKG,
                    "builder-traits",
                    Some("builder"),
                    Some(&[OPS_UUID]),
                ),
                "traits",
                json!({"builder": true}),
            ),
            "networks",
            json!([NET]),
        ),
        package(JOYENT_PKG, "joyent-1g", Some("joyent"), None),
        with(
            package(JOYENT2_PKG, "joyent-2g", Some("joyent"), None),
            "max_physical_memory",
            json!(2048),
        ),
        with(
            package(INACTIVE_PKG, "joyent-old", Some("joyent"), None),
            "active",
            json!(false),
        ),
    ] {
        let p: Package = serde_json::from_value(p).unwrap();
        block(t.papi.create(&p)).expect("PAPI create");
    }
    ship_image(
        &t,
        image(BUILDER_IMG, "builder-base", false, Some("builder")),
    );
    ship_image(
        &t,
        image(
            PUBLIC_BUILDER_IMG,
            "builder-base-public",
            true,
            Some("builder"),
        ),
    );
    ship_image(&t, {
        let mut m = image(
            SHARED_BUILDER_IMG,
            "builder-base-shared",
            false,
            Some("builder"),
        );
        m["acl"] = json!([CUST_UUID]);
        m
    });
    ship_image(&t, image(PLAIN_IMG, "base-64", true, None));

    Env {
        dir: root,
        _dir: dir,
        old,
        new,
        old_uuid,
        new_uuid,
        _sim: sim,
        triton: t,
        endpoints,
        ops: ops.clone(),
        ops_pub,
        ops_key_file,
        cust,
        sub: sub_key.as_user("sub1"),
        cust_sub: cust_sub_key.as_user("dev1"),
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
        self.gate_with(name, &self.endpoints, |_| {})
    }

    /// A gate over `endpoints`, configured by `edit`.
    pub fn gate_with(
        &self,
        name: &str,
        endpoints: &Endpoints,
        edit: impl FnOnce(&mut GateConfig),
    ) -> (triton_gate::server::Background, PathBuf) {
        let audit = self.dir.join(format!("audit-{name}.log"));
        let mut cfg = GateConfig::new(endpoints.clone(), audit.clone());
        edit(&mut cfg);
        let g = Gate::new(cfg).expect("gate");
        (triton_gate::server::start(g, "127.0.0.1:0").unwrap(), audit)
    }

    /// A second sim Triton over the same nodes and a copy of the first
    /// one's state, configured by `edit`.
    pub fn other_triton(
        &self,
        name: &str,
        edit: impl FnOnce(&mut Config),
    ) -> (Background, Endpoints) {
        let data = self.dir.join(format!("triton-{name}"));
        let _ = std::fs::remove_dir_all(&data);
        let st = std::process::Command::new("cp")
            .arg("-R")
            .arg(self.dir.join("triton"))
            .arg(&data)
            .status()
            .unwrap();
        assert!(st.success());
        start_triton(&data, &[self.old.clone(), self.new.clone()], edit)
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
    pub fn vmapi_vms(&self, owner: &str) -> Vec<Vm> {
        block(self.triton.vmapi.list(&VmFilter::owner(owner)))
            .expect("VMAPI list")
            .into_vec()
    }

    /// Set CNAPI server attributes (reserved, traits) on a Triton.
    pub fn server_update(&self, t: &Triton, server: &str, changes: Value) {
        block(t.cnapi.update(server, changes.as_object().unwrap())).expect("CNAPI update");
    }
}
