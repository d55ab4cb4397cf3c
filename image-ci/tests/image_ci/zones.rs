//! Zones made for a run: `image-ci run --config` creates the builder zone
//! from the profile (the RFD's payload) on a sim node (`node`) or through
//! triton-gate as an operator (`triton`), waits for it, checks it with
//! `vmadm-ext check`, provisions it (pkgin, the checkout cloned from git),
//! builds, verifies, boots and ships, and deletes the zone afterwards (or
//! keeps it with `--keep-zone`).
//!
//! Each run makes a zone, clones the checkout, runs the stand-in build
//! and boots the image in qemu (TCG): about a second each on the sim.

use std::path::{Path, PathBuf};
use std::process::Command;

use image_ci::ship::block_on;
use serde_json::{json, Value};

use crate::common::*;

/// `image-ci -j -q run --config <cfg> <extra>` with the pkgin stand-in on
/// PATH.
fn run_config(cfg: &Path, stub: &Path, extra: &[&str]) -> (i32, Value, String) {
    let o = Command::new(image_ci_bin())
        .args(["-j", "-q", "run", "--config"])
        .arg(cfg)
        .args(extra)
        .env("PATH", path_with(stub))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not a report ({e}): {out}\nstderr: {err}"));
    (o.status.code().unwrap_or(-1), v, err)
}

fn stage_names(r: &Value) -> Vec<String> {
    r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .collect()
}

/// The zone a run made (its uuid), from its report.
fn zone_of(r: &Value) -> String {
    r["zone"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn node_backend_makes_a_zone_per_run_and_deletes_it() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let repo = stand_in_repo(t.path(), None);
    let stub = pkgin_stub(t.path());
    let bg = triton(t.path());
    let (_, vmadm_ext) = bins();
    let cfg = t.path().join("image-ci.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"imgapi = "{imgapi}"
state = "{state}"
backend = "node"

[checkout]
repo = "{repo}"
ref = "main"
path = "/root/tci"

[zone]
image_uuid = "{image}"
alias = "ici-node"
boot_timeout = 30

[node]
root = "{root}"
tools_dir = "{bin}"
vmadm_ext = "{vmadm_ext}"

[boot]
accel = "tcg"
timeout = 5
"#,
            imgapi = bg.url("imgapi"),
            state = t.path().join("state/state.db").display(),
            repo = repo.display(),
            image = sim::rfd::IMAGE_UUID,
            root = n.root.display(),
            bin = n.bin.display(),
            vmadm_ext = vmadm_ext.display(),
        ),
    )
    .unwrap();
    let (code, r, err) = run_config(&cfg, &stub, &["-t", "debian-12"]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_eq!(r["build"], "node");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["targets"][0]["outcome"], "shipped", "{r:#}");
    let zone = zone_of(&r);
    assert!(common::uuid::is_uuid(&zone), "{zone}");
    // made, waited for, checked, provisioned, built, ..., deleted
    let stages = stage_names(&r);
    for s in [
        "zone",
        "zone-boot",
        "check",
        "provision",
        "build",
        "verify",
        "boot",
        "ship",
        "zone-delete",
    ] {
        assert!(stages.contains(&s.to_string()), "{s} not in {stages:?}");
    }
    assert_eq!(
        r["zone_action"],
        json!(format!("zone {zone} deleted")),
        "{r:#}"
    );
    assert!(r["preflight"].as_array().unwrap().len() >= 4);
    // the checkout came from git, at the repository's commit
    let head = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    assert_eq!(
        r["commit"].as_str().unwrap(),
        String::from_utf8_lossy(&head.stdout).trim()
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("pkgin.log")).unwrap(),
        "-y install git\n"
    );
    // the zone is gone from the node
    let after = vms(&n.root, &n.bin);
    assert!(!after.iter().any(|(u, _, _)| *u == zone), "{after:?}");
    assert!(!after.iter().any(|(_, a, _)| a.starts_with("ici-node-")));
    // the run's log has the zone's creation and the build's output
    let log = std::fs::read_to_string(r["build_log"].as_str().unwrap()).unwrap();
    assert!(log.contains("vmadm create"), "{log}");
    assert!(log.contains("./build_all.sh debian-12"), "{log}");
    assert_eq!(images(bg.url("imgapi"), "active").len(), 1);

    // --keep-zone: the zone stays (and the image is already shipped today)
    let (code, r, err) = run_config(&cfg, &stub, &["-t", "debian-12", "--keep-zone"]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_eq!(r["targets"][0]["outcome"], "already_shipped", "{r:#}");
    let kept = zone_of(&r);
    assert_eq!(r["zone_action"], json!(format!("zone {kept} kept")));
    assert!(!stage_names(&r).contains(&"zone-delete".to_string()));
    let after = vms(&n.root, &n.bin);
    assert!(
        after.iter().any(|(u, _, s)| *u == kept && s == "running"),
        "{after:?}"
    );
    assert_eq!(images(bg.url("imgapi"), "all").len(), 1);
    // clean up the kept zone
    ok(n.tool("vmadm").args(["delete", &kept]));
    bg.stop();
}

/// The world of the `triton` backend: a compute node on a platform with
/// builder, sim Triton over it, an operator with a key, a builder package
/// and image, triton-gate in front.
struct TritonWorld {
    node: PathBuf,
    bin: PathBuf,
    bg: sim::triton::Background,
    gate: triton_gate::server::Background,
    audit: PathBuf,
    key: PathBuf,
}

const OPS_UUID: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
const PKG: &str = "7fc87f43-2def-4e6f-9f2c-cae7d4a8d1b5";
const IMG: &str = "6f1e0c2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b";
const NET: &str = "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b";

fn triton_world(dir: &Path) -> TritonWorld {
    let sim_bin = testkit::bin("sim");
    let pi = dir.join("platform.tgz");
    let brands: Vec<String> = BRANDS.split(',').map(str::to_string).collect();
    sim::platform::build(NEW_STAMP, &brands, None, &pi).unwrap();
    let node = dir.join("cn-ici");
    sim::init::init(&node, Some(&pi), Some("cn-ici")).unwrap();
    let bin = dir.join("bin");
    ok(Command::new(&sim_bin).arg("link").arg(&bin));
    // the operator and its key
    let mut seed = [7u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let ops = triton_api::Signer::ed25519_from_seed("ops", &seed);
    let key = dir.join("id_ed25519_ops");
    std::fs::write(&key, ops.private_openssh("ops@image-ci-test")).unwrap();
    let data = dir.join("triton");
    let store = sim::triton::Store::open(&data).unwrap();
    sim::triton::mahi::add_account(
        &store,
        "ops",
        Some(OPS_UUID),
        &["operators".into()],
        &[ops.public_openssh("ops@image-ci-test")],
        true,
    )
    .unwrap();
    drop(store);
    let mut cfg = sim::triton::Config::new(&data, std::slice::from_ref(&node));
    cfg.node_bin = sim_bin;
    cfg.admin_uuid = Some("00000000-1111-4222-8333-444444444444".into());
    cfg.log_to_files = true;
    let bg = sim::triton::start(cfg).unwrap();
    let ep = triton_api::Endpoints::from_file(&data.join("endpoints.json")).unwrap();
    let t = triton_api::Triton::with_client(&ep, image_ci::ship::http()).unwrap();
    let pkg: triton_api::Package = serde_json::from_value(json!({
        "uuid": PKG, "name": "builder-1g", "version": "1.0.0", "active": true, "brand": "builder",
        "cpu_cap": 200, "max_lwps": 2000, "max_physical_memory": 1024, "max_swap": 2048,
        "quota": 10240, "zfs_io_priority": 100, "owner_uuids": [OPS_UUID],
        "min_platform": {"7.0": NEW_STAMP}, "networks": [NET],
    }))
    .unwrap();
    block_on(t.papi.create(&pkg)).unwrap();
    let m: triton_api::Image = serde_json::from_value(json!({
        "v": 2, "uuid": IMG, "owner": OPS_UUID, "name": "builder-base", "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": false, "disabled": false,
        "published_at": "2026-11-01T00:00:00Z", "requirements": {"brand": "builder"},
    }))
    .unwrap();
    let data_file = b"builder base image stand-in".to_vec();
    block_on(async {
        t.imgapi.import(&m).await.unwrap();
        let up = triton_api::FileUpload {
            compression: "none".into(),
            size: data_file.len() as u64,
            sha1: Some(sha1_hex(&data_file)),
            ..Default::default()
        };
        t.imgapi
            .add_file(IMG, &up, std::io::Cursor::new(data_file.clone()))
            .await
            .unwrap();
        t.imgapi.activate(IMG).await.unwrap();
    });
    let audit = dir.join("audit.log");
    let g = triton_gate::gate::Gate::new(triton_gate::gate::GateConfig::new(ep, audit.clone()))
        .unwrap();
    let gate = triton_gate::server::start(g, "127.0.0.1:0").unwrap();
    TritonWorld {
        node,
        bin,
        bg,
        gate,
        audit,
        key,
    }
}

#[test]
fn triton_backend_makes_its_machine_through_the_gate_and_deletes_it() {
    let t = tempfile::tempdir().unwrap();
    let w = triton_world(t.path());
    let repo = stand_in_repo(t.path(), None);
    let stub = pkgin_stub(t.path());
    let (_, vmadm_ext) = bins();
    let cfg = t.path().join("image-ci.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"imgapi = "{imgapi}"
state = "{state}"
backend = "triton"

[checkout]
repo = "{repo}"
ref = "main"
path = "/root/tci"

[triton]
cloudapi = "{gate}"
login = "ops"
key = "{key}"
package = "builder-1g"
image = "{img}"
name = "ici-triton"
nodes = ["{node}"]
timeout = 60

[node]
tools_dir = "{bin}"
vmadm_ext = "{vmadm_ext}"

[boot]
accel = "tcg"
timeout = 5
"#,
            imgapi = w.bg.url("imgapi"),
            state = t.path().join("state/state.db").display(),
            repo = repo.display(),
            gate = w.gate.url(),
            key = w.key.display(),
            img = IMG,
            node = w.node.display(),
            bin = w.bin.display(),
            vmadm_ext = vmadm_ext.display(),
        ),
    )
    .unwrap();
    let (code, r, err) = run_config(&cfg, &stub, &["-t", "rocky-9"]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_eq!(r["build"], "triton");
    assert_eq!(r["targets"][0]["outcome"], "shipped", "{r:#}");
    let machine = zone_of(&r);
    assert!(common::uuid::is_uuid(&machine), "{machine}");
    let node_uuid = sim::node::Node::open(&w.node)
        .unwrap()
        .state()
        .unwrap()
        .uuid;
    assert!(
        r["zone"]
            .as_str()
            .unwrap()
            .ends_with(&format!("on {node_uuid}")),
        "{}",
        r["zone"]
    );
    assert_eq!(
        r["zone_action"],
        json!(format!("machine {machine} deleted through the gate"))
    );
    let stages = stage_names(&r);
    for s in [
        "zone",
        "zone-boot",
        "check",
        "provision",
        "build",
        "ship",
        "zone-delete",
    ] {
        assert!(stages.contains(&s.to_string()), "{s} not in {stages:?}");
    }
    // built on the machine's compute node: the artifact is in its zone's
    // checkout; the zone is gone now
    let after = vms(&w.node, &w.bin);
    assert!(!after.iter().any(|(u, _, _)| *u == machine), "{after:?}");
    // the gate made it and deleted it, both audited as the operator's
    let recs = triton_gate::audit::read(&w.audit).unwrap();
    let create = recs
        .iter()
        .find(|x| x.action == "CreateMachine")
        .expect("CreateMachine audited");
    assert_eq!(create.vm_uuid.as_deref(), Some(machine.as_str()));
    assert_eq!(create.brand.as_deref(), Some("builder"));
    let del = recs
        .iter()
        .find(|x| x.action == "DeleteMachine")
        .expect("DeleteMachine audited");
    assert_eq!(del.status, 204);
    assert_eq!(del.caller_login, "ops");
    assert_eq!(del.vm_uuid.as_deref(), Some(machine.as_str()));
    // shipped once
    let all = images(w.bg.url("imgapi"), "all");
    assert_eq!(
        all.iter().filter(|i| i["name"] == "rocky-9").count(),
        1,
        "{all:#?}"
    );

    // a builder image the operator cannot use: one line, exit 1, no machine
    let bad = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(IMG, "00000000-0000-4000-8000-0000000000aa");
    std::fs::write(&cfg, bad).unwrap();
    let o = Command::new(image_ci_bin())
        .args(["-q", "run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("zone image 00000000-0000-4000-8000-0000000000aa cannot be used by ops"),
        "{err}"
    );
    assert_eq!(
        triton_gate::audit::read(&w.audit)
            .unwrap()
            .iter()
            .filter(|x| x.action == "CreateMachine")
            .count(),
        1
    );
    w.gate.stop();
    w.bg.stop();
}
