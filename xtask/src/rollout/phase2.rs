//! Phase 2: Triton's APIs on the sim and the operator-only gate.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use super::{gate, Report};

pub const OPS_PKG: &str = "5e2c3d4b-0000-4000-8000-00000000b1d1";
pub const PLAIN_PKG: &str = "5e2c3d4b-0000-4000-8000-00000000b1d2";
pub const OPS_IMG: &str = "0b5e1d2c-0000-4000-8000-00000000b1d1";
pub const PLAIN_IMG: &str = "0b5e1d2c-0000-4000-8000-00000000b1d2";

/// The catalogue triton-gate is exercised with: a builder package and a
/// private builder image owned by the operator, a public joyent package and
/// a public zone image.
pub fn seed_catalog(papi: &str, imgapi: &str) -> Result<()> {
    use crate::api as client;
    use serde_json::json;
    use sha1::Digest as _;
    for (uuid, name, brand, owners) in [
        (
            OPS_PKG,
            "builder-ops-8g",
            Some("builder"),
            Some(json!([OPS_UUID])),
        ),
        (PLAIN_PKG, "joyent-1g", Some("joyent"), None),
    ] {
        let mut p = json!({"uuid": uuid, "name": name, "version": "1.0.0", "active": true,
            "cpu_cap": 200, "max_lwps": 2000, "max_physical_memory": 1024, "max_swap": 2048,
            "quota": 10240, "zfs_io_priority": 100});
        if let Some(b) = brand {
            p["brand"] = json!(b);
        }
        if let Some(o) = owners {
            p["owner_uuids"] = o;
        }
        let r = client::post_json(&format!("{papi}/packages"), &p)?;
        if r.status != 201 {
            bail!("PAPI refused package {name}: {}", r.text());
        }
    }
    for (uuid, name, public, req) in [
        (
            OPS_IMG,
            "builder-ops-base",
            false,
            Some(json!({"brand": "builder"})),
        ),
        (PLAIN_IMG, "base-64", true, None),
    ] {
        let mut m = json!({"v": 2, "uuid": uuid, "owner": OPS_UUID, "name": name, "version": "1.0.0",
            "type": "zone-dataset", "os": "smartos", "public": public, "disabled": false,
            "state": "active", "published_at": "2026-11-01T00:00:00Z"});
        if let Some(r) = req {
            m["requirements"] = r;
        }
        let data = format!("{name} image stand-in").into_bytes();
        let sha: String = sha1::Sha1::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let a = client::post_json(&format!("{imgapi}/images/{uuid}?action=import"), &m)?;
        let b = client::put_bytes(
            &format!("{imgapi}/images/{uuid}/file?compression=none&sha1={sha}"),
            &data,
        )?;
        let c = client::post_json(
            &format!("{imgapi}/images/{uuid}?action=activate"),
            &json!({}),
        )?;
        if a.status != 200 || b.status != 200 || c.status != 200 {
            bail!(
                "IMGAPI did not take image {name}: {} {} {}",
                a.text(),
                b.text(),
                c.text()
            );
        }
    }
    Ok(())
}

pub const OPS_UUID: &str = "7b3f1e2a-0000-4000-8000-0000000000a1";
pub const CUST_UUID: &str = "7b3f1e2a-0000-4000-8000-0000000000c1";

/// Phase 2's ground: Triton's APIs over two compute nodes, one whose
/// platform has builder (the rollout node) and one without it. A builder
/// package with a min_platform and a builder image are set up, and VMAPI
/// must place a builder zone on the capable node.
pub fn phase2_triton(
    work: &Path,
    stamp: &str,
    bins: &crate::rollout::phase1::Bins,
    gates: &mut Report,
) -> Result<sim::triton::Background> {
    use crate::api as client;
    use serde_json::json;
    use sha1::Digest as _;
    let cn_new = work.join("cn");
    let cn_old = work.join("cn-old");
    sim::init::init(&cn_old, None, Some("cn-old"))?;
    let admin = "930896af-bf8c-48d4-885c-6573a94b1853";
    // An operator and a customer, each with an ed25519 key, in mahi.
    let signer = |login: &str| {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        triton_api::Signer::ed25519_from_seed(login, &seed)
    };
    let (ops, cust) = (signer("ops"), signer("cust"));
    let store = sim::triton::Store::open(&work.join("triton"))?;
    sim::triton::mahi::add_account(
        &store,
        "ops",
        Some(OPS_UUID),
        &["operators".into()],
        &[ops.public_openssh("ops@rollout")],
        true,
    )?;
    sim::triton::mahi::add_account(
        &store,
        "cust",
        Some(CUST_UUID),
        &[],
        &[cust.public_openssh("cust@rollout")],
        true,
    )?;
    drop(store);
    let mut cfg = sim::triton::Config::new(&work.join("triton"), &[cn_new.clone(), cn_old.clone()]);
    cfg.node_bin = bins.sim.clone();
    cfg.admin_uuid = Some(admin.to_string());
    let bg = sim::triton::start(cfg)?;
    let (papi, vmapi, imgapi) = (
        bg.url("papi").to_string(),
        bg.url("vmapi").to_string(),
        bg.url("imgapi").to_string(),
    );
    gates.push(gate(
        "2",
        "PAPI, VMAPI, CNAPI, IMGAPI and mahi answer on loopback",
        true,
        format!("{:?}", bg.endpoints),
    ));

    let pkg = "5e2c3d4b-0000-4000-8000-00000000b1d0";
    let r = client::post_json(
        &format!("{papi}/packages"),
        &json!({"uuid": pkg, "name": "builder-8g", "version": "1.0.0", "active": true, "brand": "builder",
                "cpu_cap": 600, "max_lwps": 2000, "max_physical_memory": 8192, "max_swap": 16384,
                "quota": 51200, "zfs_io_priority": 100, "owner_uuids": [admin],
                "min_platform": {"7.0": stamp}}),
    )?;
    gates.push(gate(
        "2",
        "PAPI accepts a builder package with min_platform",
        r.status == 201,
        r.text(),
    ));
    let r = client::put_json(
        &format!("{papi}/packages/{pkg}"),
        &json!({"brand": "joyent"}),
    )?;
    gates.push(gate(
        "2",
        "a package's brand cannot be changed",
        r.status == 409 && r.json()["errors"][0]["field"] == "brand",
        format!("{} {}", r.status, r.text()),
    ));

    let image = "0b5e1d2c-0000-4000-8000-00000000b1d0";
    let data = b"builder base image stand-in".to_vec();
    let sha: String = sha1::Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let manifest = json!({"v": 2, "uuid": image, "owner": admin, "name": "builder-base", "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": false, "disabled": false, "state": "active",
        "published_at": "2026-11-01T00:00:00Z", "requirements": {"brand": "builder"}});
    let a = client::post_json(&format!("{imgapi}/images/{image}?action=import"), &manifest)?;
    let b = client::put_bytes(
        &format!("{imgapi}/images/{image}/file?compression=none&sha1={sha}"),
        &data,
    )?;
    let c = client::post_json(
        &format!("{imgapi}/images/{image}?action=activate"),
        &json!({}),
    )?;
    gates.push(gate(
        "2",
        "IMGAPI imports, takes the file (sha1 checked) and activates the image",
        a.status == 200 && b.status == 200 && c.status == 200 && c.json()["state"] == "active",
        format!("{} / {} / {}: {}", a.status, b.status, c.status, c.text()),
    ));

    let r = client::post_json(
        &format!("{vmapi}/vms"),
        &json!({"brand": "builder", "owner_uuid": admin, "billing_id": pkg, "image_uuid": image,
                "networks": [], "alias": "rollout-builder"}),
    )?;
    let vm_uuid = r.json()["vm_uuid"].as_str().unwrap_or_default().to_string();
    let job = client::get(&format!(
        "{vmapi}/jobs/{}",
        r.json()["job_uuid"].as_str().unwrap_or_default()
    ))?
    .json();
    let vm = client::get(&format!("{vmapi}/vms/{vm_uuid}"))?.json();
    let new_uuid = sim::node::Node::open(&cn_new)?.state()?.uuid;
    let listed = Command::new(&bins.sim)
        .args(["vmadm", "list", "-H", "-o", "uuid,brand", "brand=builder"])
        .env("SIM_ROOT", &cn_new)
        .output()?;
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    gates.push(gate(
        "2",
        "VMAPI places a builder zone only on the node whose platform has the brand",
        r.status == 202
            && job["execution"] == "succeeded"
            && vm["server_uuid"] == new_uuid.as_str()
            && listed.contains(&vm_uuid),
        format!(
            "vm {vm_uuid} on {} (capable node {new_uuid}); job {}; vmadm list on that node: {}",
            vm["server_uuid"],
            job["execution"],
            listed.trim()
        ),
    ));
    // The operator-only gate in front of those APIs.
    let gate_checks = (|| -> Result<triton_gate::rollout::Phase2Report> {
        seed_catalog(&papi, &imgapi)?;
        let p = triton_gate::rollout::Phase2 {
            endpoints: triton_api::Endpoints::from_file(&work.join("triton/endpoints.json"))?,
            audit_path: work.join("triton-gate/audit.log"),
            operator_login: "ops".into(),
            operator_key: ops.clone(),
            customer_login: "cust".into(),
            customer_key: cust.clone(),
            builder_package: OPS_PKG.into(),
            builder_image: OPS_IMG.into(),
            plain_package: PLAIN_PKG.into(),
            plain_image: PLAIN_IMG.into(),
            // the builder machine's network (the sim's VMAPI takes any)
            network: "5c3a9c43-0000-4000-8000-0000000000e1".into(),
            // builder zones only on nodes booted on this platform or newer
            builder_min_platform: Some([("7.0".to_string(), stamp.to_string())].into()),
        };
        std::fs::create_dir_all(work.join("triton-gate"))?;
        Ok(triton_gate::rollout::run_phase2(&p)?)
    })();
    match gate_checks {
        Ok(report) => {
            for c in &report.checks {
                gates.push(gate(
                    "2",
                    &format!("triton-gate: {}", c.name),
                    c.passed,
                    c.detail.clone(),
                ));
            }
        }
        Err(e) => gates.push(gate(
            "2",
            "triton-gate phase 2 checks ran",
            false,
            format!("{e:#}"),
        )),
    }
    Ok(bg)
}
