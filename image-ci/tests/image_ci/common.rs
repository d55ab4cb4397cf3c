//! Shared set-up: a sim node on a builder platform with a builder zone and
//! a joyent zone (the RFD walk's steps, through the node's commands), the
//! stand-in triton-cloud-images checkout, sim Triton's IMGAPI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image_ci::ship::block_on;

use serde_json::Value;

pub const NEW_STAMP: &str = "20261101T000000Z";
pub const BRANDS: &str = "joyent,joyent-minimal,lx,bhyve,kvm,builder";

/// target/debug (the test binary is target/debug/deps/image_ci-*).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The sim and vmadm-ext binaries (built once by `cargo xtask test`, or
/// `cargo build --bins`; see `testkit::bin`).
pub fn bins() -> (PathBuf, PathBuf) {
    (testkit::bin("sim"), testkit::bin("vmadm-ext"))
}

/// The zvol-stream CLI the stand-in build_all.sh converts its disks with.
pub fn zvol_stream_bin() -> PathBuf {
    testkit::bin("zvol-stream")
}

/// qemu must be there: the boot tests fail (never skip) without it.
pub fn require_qemu() {
    assert!(
        image_ci::qemu::which(std::path::Path::new(image_ci::qemu::QEMU)).is_some(),
        "qemu-system-x86_64 not found: install qemu-system-x86 (apt-get install qemu-system-x86); the boot tests need it"
    );
}

/// A qemu boot test for tests: temporary files under `tmp` (so a test can
/// see that none is left), a short timeout for images that never show the
/// marker.
pub fn qemu(tmp: &Path, timeout_s: u64) -> image_ci::qemu::Qemu {
    require_qemu();
    image_ci::qemu::Qemu {
        judge: image_ci::boot::Judge::new("login:", std::time::Duration::from_secs(timeout_s))
            .unwrap(),
        temp_parent: Some(tmp.to_path_buf()),
        ..Default::default()
    }
}

/// Processes whose command line contains `needle` (qemu runs with its
/// disk and console under a test's own directory).
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                out.push(format!("{}: {c}", name.to_string_lossy()));
            }
        }
    }
    out
}

/// Files and directories left in `d`.
pub fn left_in(d: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(d)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub fn image_ci_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_image-ci"))
}

/// The node and its zones.
pub struct Node {
    /// Removed when the test's node goes out of scope.
    _tmp: tempfile::TempDir,
    pub work: PathBuf,
    pub root: PathBuf,
    pub bin: PathBuf,
    pub builder: String,
    pub joyent: String,
}

impl Node {
    /// A node command (`sim <tool> ...`) with SIM_ROOT set and the node's
    /// tools first on PATH.
    pub fn tool(&self, tool: &str) -> Command {
        let (sim, _) = bins();
        let mut c = Command::new(sim);
        c.arg(tool)
            .env("SIM_ROOT", &self.root)
            .env("PATH", self.path_env());
        c
    }

    pub fn path_env(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.bin.clone()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).unwrap()
    }

    pub fn zone_root(&self, uuid: &str) -> PathBuf {
        self.root.join("zones").join(uuid).join("root")
    }
}

pub fn ok(c: &mut Command) -> Output {
    let o = c.output().expect("spawn");
    assert!(
        o.status.success(),
        "{c:?} failed ({:?}):\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn created_uuid(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("Successfully created VM "))
        .expect("no 'Successfully created VM' line")
        .trim()
        .to_string()
}

/// A node of the test's own, removed with it: booted on a platform with
/// builder, a builder zone created from the RFD 184 payload, and a joyent
/// zone. (Each test owns its node: statics are not dropped when the test
/// process exits, so a node shared through one would stay on disk.)
pub fn node() -> Node {
    let (sim, _) = bins();
    let t = tempfile::tempdir().unwrap();
    let work = t.path().to_path_buf();
    let mut n = Node {
        _tmp: t,
        root: work.join("cn"),
        bin: work.join("bin"),
        work,
        builder: String::new(),
        joyent: String::new(),
    };
    ok(Command::new(&sim).arg("link").arg(&n.bin));
    ok(Command::new(&sim)
        .args(["node", "init"])
        .arg(&n.root)
        .args(["--hostname", "builder-cn"]));
    let pi = n.work.join(format!("platform-{NEW_STAMP}.tgz"));
    ok(Command::new(&sim)
        .args([
            "platform", "build", "--stamp", NEW_STAMP, "--brands", BRANDS, "--out",
        ])
        .arg(&pi));
    ok(n.tool("piadm").arg("install").arg(&pi));
    ok(n.tool("piadm").args(["activate", NEW_STAMP]));
    ok(Command::new(&sim).args(["reboot", "--root"]).arg(&n.root));
    let img = n.work.join("base.zfs.gz");
    std::fs::write(&img, b"base-64-lts image stand-in\n").unwrap();
    let man = n.work.join("base.json");
    let m = serde_json::json!({"v": 2, "uuid": sim::rfd::IMAGE_UUID, "name": "base-64-lts",
        "version": "22.4.0", "type": "zone-dataset", "os": "smartos",
        "published_at": "2023-01-10T00:00:00Z"});
    std::fs::write(&man, m.to_string()).unwrap();
    ok(n.tool("imgadm")
        .args(["install", "-m"])
        .arg(&man)
        .arg("-f")
        .arg(&img));
    n.builder = created_uuid(&stdin(n.tool("vmadm").arg("create"), sim::rfd::RFD_PAYLOAD));
    let joyent = format!(
        r#"{{"brand":"joyent","image_uuid":"{}","alias":"plain-joyent","delegate_dataset":true,"nics":[{{"allow_ip_spoofing":true,"nic_tag":"admin","ip":"dhcp"}}]}}"#,
        sim::rfd::IMAGE_UUID
    );
    n.joyent = created_uuid(&stdin(n.tool("vmadm").arg("create"), &joyent));
    n
}

fn stdin(c: &mut Command, input: &str) -> Output {
    use std::io::Write as _;
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut ch = c.spawn().expect("spawn");
    ch.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = ch.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Write a stand-in checkout at `rel` inside `zone`; returns its host path.
/// `nosig` disks never print the login prompt.
pub fn checkout(
    n: &Node,
    zone: &str,
    rel: &str,
    fail: &[&str],
    tamper: &[&str],
    nosig: &[&str],
) -> PathBuf {
    let d = n.zone_root(zone).join(rel);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/cloud-images");
    let s = image_ci::standin::Steer {
        fail: fail.iter().map(|x| x.to_string()).collect(),
        tamper: tamper.iter().map(|x| x.to_string()).collect(),
        nosig: nosig.iter().map(|x| x.to_string()).collect(),
    };
    image_ci::standin::write_checkout_with(
        &d,
        &std::fs::read_to_string(data.join("imgconfigs.json")).unwrap(),
        &std::fs::read_to_string(data.join("manifest.in")).unwrap(),
        &s,
        &zvol_stream_bin(),
    )
    .unwrap();
    d
}

/// The oracle's imgconfigs.json and manifest.in.
pub fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/cloud-images")
}

/// sim Triton over a fresh data directory.
pub fn triton(dir: &Path) -> sim::triton::Background {
    let mut cfg = sim::triton::Config::new(&dir.join("triton"), &[]);
    cfg.log_to_files = true;
    sim::triton::start(cfg).unwrap()
}

/// An IMGAPI client (triton-api's).
pub fn imgapi(url: &str) -> triton_api::Imgapi {
    triton_api::Imgapi::new(image_ci::ship::http(), url).unwrap()
}

/// Images in `state` (`active`, `unactivated`, `all`), in every channel,
/// as JSON.
pub fn images(url: &str, state: &str) -> Vec<Value> {
    let f = triton_api::ImageFilter {
        state: Some(state.into()),
        channel: Some("*".into()),
        ..Default::default()
    };
    block_on(imgapi(url).list(&f))
        .unwrap()
        .into_iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect()
}

/// All images IMGAPI holds, in any state.
pub fn all_images(url: &str) -> Vec<Value> {
    images(url, "all")
}

/// An image's file, as IMGAPI serves it (size and sha1 checked).
pub fn image_file(url: &str, uuid: &str) -> Vec<u8> {
    block_on(async {
        imgapi(url)
            .with_channel(Some("*"))
            .get_file(uuid)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    })
}

/// `sha1` of bytes, hex.
pub fn sha1_hex(b: &[u8]) -> String {
    use sha1::Digest as _;
    common::hex::encode(&sha1::Sha1::digest(b))
}

/// The node's tools for image-ci.
pub fn node_tools(n: &Node) -> image_ci::commands::Tools {
    let (_, vmadm_ext) = bins();
    image_ci::commands::Tools::in_dir(&n.root, &n.bin, &vmadm_ext)
}

/// `vmadm list -p -o uuid,alias,state` on a node.
pub fn vms(root: &Path, bin: &Path) -> Vec<(String, String, String)> {
    let o = Command::new(bin.join("vmadm"))
        .args(["list", "-p", "-o", "uuid,alias,state"])
        .env("SIM_ROOT", root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// A git repository holding a stand-in checkout (for zones made for a
/// run to clone); `post_build` is its post-build.sh, if any.
pub fn stand_in_repo(dir: &Path, post_build: Option<&str>) -> PathBuf {
    let repo = dir.join("tci.git");
    let data = oracle_dir();
    image_ci::standin::write_checkout_with(
        &repo,
        &std::fs::read_to_string(data.join("imgconfigs.json")).unwrap(),
        &std::fs::read_to_string(data.join("manifest.in")).unwrap(),
        &image_ci::standin::Steer::default(),
        &zvol_stream_bin(),
    )
    .unwrap();
    if let Some(pb) = post_build {
        use std::os::unix::fs::PermissionsExt as _;
        let p = repo.join("post-build.sh");
        std::fs::write(&p, pb).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git must be installed (apt-get install git)");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "stand-in checkout"]);
    repo
}

/// A `pkgin` stand-in on a PATH directory: it records its arguments in
/// `<dir>/pkgin.log` (a zone made for a run gets its packages with it).
pub fn pkgin_stub(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("stub-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join("pkgin");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\n",
            dir.join("pkgin.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// PATH with `first` in front.
pub fn path_with(first: &Path) -> std::ffi::OsString {
    let mut dirs = vec![first.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// Wait up to `secs` for `f` to hold.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out after {secs} s waiting for {what}");
}
