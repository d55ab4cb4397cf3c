//! The book's guides are run: every fenced block marked `sh,sim` in a guide
//! runs, in order, in one shell against a simulated node set up as the
//! guides expect (a node on a platform without builder, a platform image
//! with it in `$PLATFORM`/`$STAMP`, a base image installed as
//! `$IMAGE_UUID`, the RFD payload in `$BUILDER_PAYLOAD`, a checkout in
//! `$CHECKOUT`, the node's tools and the workspace's binaries first on
//! `PATH`, `reboot` rebooting the simulated node). Every guide must have
//! at least one such block.

use std::path::{Path, PathBuf};
use std::process::Command;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src")
}

/// The `sh,sim` blocks of a markdown file, in order.
fn sim_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match &mut cur {
            None => {
                if line.trim_start().starts_with("```sh,sim") {
                    cur = Some(String::new());
                }
            }
            Some(b) => {
                if line.trim_start().starts_with("```") {
                    out.push(cur.take().unwrap());
                } else {
                    b.push_str(line);
                    b.push('\n');
                }
            }
        }
    }
    out
}

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The world a guide's commands run in.
fn world(w: &Path) -> Vec<(String, String)> {
    let sim = testkit::bin("sim");
    let bin = w.join("bin");
    run(Command::new(&sim).arg("link").arg(&bin));
    for b in [
        "vmadm-ext",
        "zvol-stream",
        "image-ci",
        "brand",
        "triton-gate",
    ] {
        std::os::unix::fs::symlink(testkit::bin(b), bin.join(b)).unwrap();
    }
    let _ = std::fs::remove_file(bin.join("sim"));
    std::os::unix::fs::symlink(&sim, bin.join("sim")).unwrap();
    let reboot = bin.join("reboot");
    std::fs::write(&reboot, "#!/bin/sh\nexec sim reboot --root \"$SIM_ROOT\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&reboot, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = w.join("cn");
    run(Command::new(&sim)
        .args(["node", "init"])
        .arg(&root)
        .args(["--hostname", "cn1"]));
    let stamp = "20261101T000000Z";
    let pi = w.join(format!("platform-{stamp}.tgz"));
    run(Command::new(&sim)
        .args(["platform", "build", "--stamp", stamp, "--brands"])
        .arg(brand::registry::platform().join(","))
        .arg("--out")
        .arg(&pi));
    // the base image the payloads name
    let img = sim::rfd::IMAGE_UUID;
    let f = w.join("base.zfs.gz");
    std::fs::write(&f, b"base image").unwrap();
    let m = w.join("base.json");
    std::fs::write(
        &m,
        serde_json::json!({"v": 2, "uuid": img, "name": "base-64-lts", "version": "22.4.0",
            "type": "zone-dataset", "os": "smartos", "published_at": "2023-01-10T00:00:00Z"})
        .to_string(),
    )
    .unwrap();
    run(Command::new(&sim)
        .args(["imgadm", "install", "-m"])
        .arg(&m)
        .arg("-f")
        .arg(&f)
        .env("SIM_ROOT", &root));
    let payload = w.join("builder.json");
    std::fs::write(&payload, sim::rfd::RFD_PAYLOAD).unwrap();
    let checkout = w.join("checkout");
    std::fs::create_dir(&checkout).unwrap();
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/cloud-images");
    for f in ["imgconfigs.json", "manifest.in"] {
        std::fs::copy(oracle.join(f), checkout.join(f)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let s = |p: &Path| p.display().to_string();
    vec![
        ("PATH".into(), path),
        ("SIM_ROOT".into(), s(&root)),
        ("VMADM_EXT_ROOT".into(), s(&root)),
        ("WORK".into(), s(w)),
        ("PLATFORM".into(), s(&pi)),
        ("STAMP".into(), stamp.into()),
        ("OLD_STAMP".into(), sim::rfd::OLD_STAMP.into()),
        ("IMAGE_UUID".into(), img.into()),
        ("BUILDER_PAYLOAD".into(), s(&payload)),
        ("CHECKOUT".into(), s(&checkout)),
    ]
}

#[test]
fn every_guide_runs_on_the_sim() {
    let dir = docs().join("guides");
    let mut guides: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    guides.sort();
    assert!(guides.len() >= 4, "{guides:?}");
    for g in guides {
        let md = std::fs::read_to_string(&g).unwrap();
        let blocks = sim_blocks(&md);
        assert!(!blocks.is_empty(), "{} has no `sh,sim` block", g.display());
        let w = tempfile::tempdir().unwrap();
        let env = world(w.path());
        let script = format!("set -e\n{}", blocks.join("\n"));
        let o = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .current_dir(w.path())
            .envs(env)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: the guide's commands failed ({:?})\n--- script\n{script}\n--- stdout\n{}\n--- stderr\n{}",
            g.display(),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn blocks_are_found() {
    let md = "text\n```sh,sim\na\nb\n```\n```sh\nc\n```\n```sh,sim\nd\n```\n";
    assert_eq!(sim_blocks(md), ["a\nb\n", "d\n"]);
}
