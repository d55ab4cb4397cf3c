//! Project chores.
//!
//! - `cargo xtask platform`: stage the brand files into a proto tree (with
//!   manifest lines) and build a platform image that carries them.
//! - `cargo xtask rollout`: run the phases end to end on the embedded sim
//!   and write a report of every gate.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "xtask", about = "Project chores: platform, rollout")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Stage the brand files into a proto tree and build a platform image.
    Platform {
        /// Output directory.
        #[arg(long, default_value = "target/platform")]
        out: PathBuf,
        /// Platform stamp (default: now, YYYYMMDDTHHMMSSZ).
        #[arg(long)]
        stamp: Option<String>,
    },
    /// Put the Triton pieces in place on the sim and leave them running:
    /// two compute nodes (one on a platform with builder), the Triton APIs,
    /// triton-gate as CloudAPI, an operator and a customer with keys, and
    /// a builder package and image. `--stop` stops them.
    Deploy {
        #[arg(long, default_value = "target/deploy")]
        dir: PathBuf,
        #[arg(long)]
        stop: bool,
        /// Clear DIR even when it is not empty and was not made by deploy.
        #[arg(long)]
        force: bool,
    },
    /// Build release binaries and bundle them with man pages, docs and a
    /// platform image, with SHA256SUMS.
    Release {
        #[arg(long, default_value = "target/dist")]
        out: PathBuf,
    },
    /// Install the system packages the tests need (when missing) and run
    /// the whole test suite.
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every phase end to end on the embedded sim and report each gate.
    Rollout {
        /// Where the work and the report go.
        #[arg(long, default_value = "target/rollout")]
        out: PathBuf,
        /// Clear OUT even when it is not empty and was not made by rollout.
        #[arg(long)]
        force: bool,
    },
}

struct Built {
    manifest: Vec<String>,
    image: PathBuf,
}

fn platform(out: &Path, stamp: &str) -> Result<Built> {
    let proto = out.join("proto");
    let mut manifest = Vec::new();
    for n in ["builder"] {
        let b = brand::brands::by_name(n).with_context(|| format!("unknown brand {n}"))?;
        manifest.extend(brand::stage::stage(&b, &proto)?);
        for f in brand::check::check(&proto, n).into_iter().filter(|f| !f.ok) {
            // The hook programs belong to the joyent brand, staged with the
            // platform image below; file and parse problems stop here.
            if !f.what.contains(" hook ") {
                bail!("staged brand {n} is inconsistent: {}", f.what);
            }
        }
    }
    let text: String = manifest.iter().map(|l| format!("{l}\n")).collect();
    brand::stage::write_atomic(&out.join("manifest"), text.as_bytes(), 0o644)?;
    let image = out.join(format!("platform-{stamp}.tgz"));
    let brands: Vec<String> = brand::registry::platform()
        .iter()
        .map(|s| s.to_string())
        .collect();
    sim::platform::build(stamp, &brands, Some(&proto), &image)?;
    let bytes = std::fs::read(&image)?;
    sim::platform::vet_tarball(&bytes)?;
    Ok(Built { manifest, image })
}

fn now_stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// One gate of the rollout report.
#[derive(Debug, Serialize)]
struct Gate {
    phase: String,
    name: String,
    status: &'static str,
    detail: String,
}

fn gate(phase: &str, name: &str, ok: bool, detail: impl Into<String>) -> Gate {
    Gate {
        phase: phase.into(),
        name: name.into(),
        status: if ok { "pass" } else { "FAIL" },
        detail: detail.into(),
    }
}

/// Phase 0 on the rollout node: the UI's VM model reads every VM the node
/// serves, an unknown brand included, and offers builder only where the
/// booted platform has it.
fn phase0(node_root: &Path, gates: &mut Vec<Gate>) {
    use ui_compat::provision::{choices, installed_brands};
    use ui_compat::{decode_list, ImageType, VmEntry};
    let node = match sim::node::Node::open(node_root) {
        Ok(n) => n,
        Err(e) => {
            gates.push(gate("0", "rollout node available", false, e.to_string()));
            return;
        }
    };
    // A zone of a brand no tool here knows, as a future platform could leave.
    let future = "f00dcafe-0000-4000-8000-000000000001";
    let mut z = brand::ZoneConfig::new(future, &format!("/zones/{future}"), "futurebrand");
    z.set("ip-type", "exclusive");
    let added = (|| -> anyhow::Result<()> {
        let _lock = node.lock()?;
        sim::node::write_atomic(
            &node.path(&format!("etc/zones/{future}.xml")),
            z.to_xml().as_bytes(),
        )?;
        let mut idx = node.index()?;
        idx.push(sim::node::IndexEntry {
            name: future.into(),
            state: "installed".into(),
            zonepath: format!("/zones/{future}"),
            uuid: future.into(),
        });
        node.save_index(&idx)?;
        Ok(())
    })();
    if let Err(e) = added {
        gates.push(gate(
            "0",
            "unknown-brand zone added to the node",
            false,
            e.to_string(),
        ));
        return;
    }
    let body = sim::vmadm::vm_objects(&node).map(|v| serde_json::to_vec(&v).unwrap_or_default());
    match body.and_then(|b| decode_list(&b).map_err(|e| e.to_string())) {
        Err(e) => gates.push(gate("0", "VM list decodes", false, e)),
        Ok(entries) => {
            let unreadable: Vec<String> = entries
                .iter()
                .filter_map(|e| match e {
                    VmEntry::Unreadable(u) => Some(format!("{:?}: {}", u.uuid, u.error)),
                    VmEntry::Vm(_) => None,
                })
                .collect();
            gates.push(gate(
                "0",
                "every VM the node serves is readable by the UI model",
                unreadable.is_empty() && entries.len() >= 3,
                if unreadable.is_empty() {
                    format!("{} VMs", entries.len())
                } else {
                    unreadable.join("; ")
                },
            ));
            let vms: Vec<_> = entries.iter().filter_map(VmEntry::as_vm).collect();
            let builder = vms.iter().find(|v| v.brand.as_str() == "builder");
            gates.push(gate(
                "0",
                "a builder zone shows with its brand title",
                builder.is_some_and(|v| v.brand.title() == "Joyent Native Zone with BHYVE devices"),
                builder.map_or("no builder zone".into(), |v| {
                    format!("{} ({})", v.uuid, v.brand.title())
                }),
            ));
            let fut = vms.iter().find(|v| v.uuid == future);
            gates.push(gate(
                "0",
                "an unknown-brand zone shows under its own name",
                fut.is_some_and(|v| !v.brand.is_known() && v.brand.as_str() == "futurebrand"),
                fut.map_or("futurebrand zone missing".into(), |v| {
                    format!("{} brand {}", v.uuid, v.brand.as_str())
                }),
            ));
        }
    }
    // Provisioning choices on the booted platform and on the old one.
    let names = |root: &Path| -> Vec<String> {
        choices(&ImageType::parse("zone-dataset"), &installed_brands(root))
            .into_iter()
            .map(|c| c.brand)
            .collect()
    };
    let now = names(node_root);
    gates.push(gate(
        "0",
        "builder is offered for zone-dataset images on a platform that has it",
        now.iter().any(|b| b == "builder"),
        now.join(", "),
    ));
    let old = tempfile::tempdir()
        .map_err(|e| e.to_string())
        .and_then(|t| {
            let pdir = node
                .bootfs()
                .join(format!("platform-{}", sim::rfd::OLD_STAMP));
            sim::platform::unpack_boot_archive(&pdir, &t.path().join("root"))
                .map_err(|e| e.to_string())?;
            Ok(names(&t.path().join("root")))
        });
    match old {
        Ok(old) => gates.push(gate(
            "0",
            "builder is not offered on a platform without it",
            !old.iter().any(|b| b == "builder") && old.iter().any(|b| b == "joyent"),
            old.join(", "),
        )),
        Err(e) => gates.push(gate(
            "0",
            "builder is not offered on a platform without it",
            false,
            e,
        )),
    }
}

const OPS_PKG: &str = "5e2c3d4b-0000-4000-8000-00000000b1d1";
const PLAIN_PKG: &str = "5e2c3d4b-0000-4000-8000-00000000b1d2";
const OPS_IMG: &str = "0b5e1d2c-0000-4000-8000-00000000b1d1";
const PLAIN_IMG: &str = "0b5e1d2c-0000-4000-8000-00000000b1d2";

/// The catalogue triton-gate is exercised with: a builder package and a
/// private builder image owned by the operator, a public joyent package and
/// a public zone image.
fn seed_catalog(papi: &str, imgapi: &str) -> Result<()> {
    use serde_json::json;
    use sha1::Digest as _;
    use sim::triton::client;
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

const OPS_UUID: &str = "7b3f1e2a-0000-4000-8000-0000000000a1";
const CUST_UUID: &str = "7b3f1e2a-0000-4000-8000-0000000000c1";

/// Phase 2's ground: Triton's APIs over two compute nodes, one whose
/// platform has builder (the rollout node) and one without it. A builder
/// package with a min_platform and a builder image are set up, and VMAPI
/// must place a builder zone on the capable node.
fn phase2_triton(
    work: &Path,
    stamp: &str,
    bins: &sim::rfd::Bins,
    gates: &mut Vec<Gate>,
) -> Result<sim::triton::Background> {
    use serde_json::json;
    use sha1::Digest as _;
    use sim::triton::client;
    let cn_new = work.join("cn");
    let cn_old = work.join("cn-old");
    sim::init::init(&cn_old, None, Some("cn-old"))?;
    let admin = "930896af-bf8c-48d4-885c-6573a94b1853";
    // An operator and a customer, each with an ed25519 key, in mahi.
    let signer = |login: &str| {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        triton_gate::httpsig::Ed25519Signer::from_seed(login, &seed)
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
            urls: triton_gate::backend::Urls::from_endpoints_file(
                &work.join("triton/endpoints.json"),
            )?,
            audit_path: work.join("triton-gate/audit.log"),
            operator_login: "ops".into(),
            operator_key: ops.clone(),
            customer_login: "cust".into(),
            customer_key: cust.clone(),
            builder_package: OPS_PKG.into(),
            builder_image: OPS_IMG.into(),
            plain_package: PLAIN_PKG.into(),
            plain_image: PLAIN_IMG.into(),
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

/// Phase 3 on the rollout node: triton-cloud-images targets built in the
/// RFD's builder zone (a stand-in build_all.sh on the sim), verified,
/// boot-tested and shipped to IMGAPI; a failed and a tampered target are
/// not shipped; a zone without the bhyve devices fails preflight; a second
/// run inside the cadence builds nothing.
fn phase3_images(
    work: &Path,
    bins: &sim::rfd::Bins,
    imgapi: &str,
    gates: &mut Vec<Gate>,
) -> Result<()> {
    use image_ci::{cadence, commands, pipeline, standin};
    let root = work.join("cn");
    let node = sim::node::Node::open(&root)?;
    let vms = sim::vmadm::vm_objects(&node).map_err(anyhow::Error::msg)?;
    let find = |alias: &str| -> Result<String> {
        vms.iter()
            .find(|v| v["alias"] == alias)
            .and_then(|v| v["uuid"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no VM with alias {alias} on the rollout node"))
    };
    let (builder, joyent) = (find("cloud-image-builder")?, find("plain-joyent")?);
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/cloud-images");
    let imgconfigs =
        std::fs::read_to_string(oracle.join("imgconfigs.json")).with_context(|| {
            format!(
                "the triton-cloud-images target list is not at {}",
                oracle.display()
            )
        })?;
    let manifest_in = std::fs::read_to_string(oracle.join("manifest.in"))?;
    let rel = "root/triton-cloud-images";
    let zone_root = root.join("zones").join(&builder).join("root");
    let steer = standin::Steer {
        fail: vec!["debian-13".into()],
        tamper: vec!["rocky-10".into()],
        nosig: vec![],
    };
    standin::write_checkout(&zone_root.join(rel), &imgconfigs, &manifest_in, &steer)?;
    let tools = commands::Tools {
        root: root.clone(),
        zlogin: work.join("bin/zlogin"),
        vmadm_ext: bins.vmadm_ext.clone(),
    };
    let history = work.join("image-ci/history.jsonl");
    std::fs::create_dir_all(work.join("image-ci"))?;
    let cfg = pipeline::Config::new(tools.clone(), &builder, rel, imgapi, history.clone());
    let targets: Vec<String> = ["almalinux-9", "debian-12", "debian-13", "rocky-10"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = pipeline::run(
        &cfg,
        &pipeline::RunOptions {
            targets,
            due_every: None,
        },
    )?;
    let shipped: Vec<&str> = r.shipped().iter().map(|t| t.target.as_str()).collect();
    gates.push(gate(
        "3",
        "images built in the builder zone, verified, boot-tested and shipped",
        shipped == ["almalinux-9", "debian-12"],
        image_ci::report::render_run(&r),
    ));
    let listed = sim::triton::client::get(&format!("{imgapi}/images?state=all"))?.json();
    let names: Vec<String> = listed
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["state"] == "active")
                .filter_map(|i| i["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let leaked: Vec<&String> = names
        .iter()
        .filter(|n| *n == "debian-13" || *n == "rocky-10")
        .collect();
    gates.push(gate(
        "3",
        "a failed build and a tampered artifact are never shipped",
        leaked.is_empty()
            && names.iter().any(|n| n == "almalinux-9")
            && names.iter().any(|n| n == "debian-12"),
        format!("active in IMGAPI: {}", names.join(", ")),
    ));
    let pre = commands::preflight(&tools, &joyent);
    gates.push(gate(
        "3",
        "a zone without the bhyve devices fails the build preflight",
        pre.is_err(),
        match &pre {
            Err(e) => e.to_string(),
            Ok(reqs) => format!("preflight passed: {reqs:?}"),
        },
    ));
    let every = cadence::parse_interval("24h").map_err(anyhow::Error::msg)?;
    let again = pipeline::run(
        &cfg,
        &pipeline::RunOptions {
            targets: vec!["almalinux-9".into(), "debian-12".into()],
            due_every: Some(every),
        },
    )?;
    gates.push(gate(
        "3",
        "a run inside the cadence builds nothing that shipped",
        again.selected.is_empty() && again.targets.is_empty(),
        format!("selected: {:?}", again.selected),
    ));
    Ok(())
}

/// Build the workspace binaries the rollout drives and say where they are.
fn binaries() -> Result<sim::rfd::Bins> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "sim", "-p", "vmadm-ext", "--bins"])
        .status()
        .context("running cargo build")?
        .success();
    if !ok {
        bail!("cargo build of sim and vmadm-ext failed");
    }
    let meta = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let dir = PathBuf::from(v["target_directory"].as_str().unwrap_or("target")).join("debug");
    Ok(sim::rfd::Bins {
        sim: dir.join("sim"),
        vmadm_ext: dir.join("vmadm-ext"),
    })
}

fn xmllint_gates(proto: &Path, gates: &mut Vec<Gate>) {
    let dtds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/illumos");
    let have = Command::new("xmllint").arg("--version").output().is_ok();
    for (file, dtd) in [
        ("config.xml", "brand.dtd.1"),
        ("platform.xml", "zone_platform.dtd.1"),
        ("Builder.xml", "zonecfg.dtd.1"),
    ] {
        let name = format!("builder {file} valid against {dtd}");
        if !have || !dtds.join(dtd).exists() {
            gates.push(Gate {
                phase: "1".into(),
                name,
                status: "skip",
                detail: "xmllint or the illumos DTDs are not available here (the test suite enforces this check)".into(),
            });
            continue;
        }
        let o = Command::new("xmllint")
            .args(["--nonet", "--noout", "--nowarning", "--dtdvalid"])
            .arg(dtds.join(dtd))
            .arg(proto.join("usr/lib/brand/builder").join(file))
            .output();
        let (ok, detail) = match o {
            Ok(o) => (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            ),
            Err(e) => (false, e.to_string()),
        };
        gates.push(gate(
            "1",
            &name,
            ok,
            if ok {
                "xmllint --dtdvalid: valid".into()
            } else {
                detail
            },
        ));
    }
}

/// The file that marks a directory as made by `cargo xtask <kind>`.
fn marker(kind: &str) -> String {
    format!(".made-by-xtask-{kind}")
}

/// Make `dir` ready for a fresh `cargo xtask <kind>`: create it, or reuse
/// it when it is empty or was made by an earlier run of the same kind
/// (its content is cleared then). A non-empty directory this task did not
/// make is refused unless `force`: nothing in it is touched.
fn prepare_dir(dir: &Path, kind: &str, force: bool) -> Result<()> {
    let mark = marker(kind);
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        Ok(entries) => {
            let names: Vec<std::ffi::OsString> = entries.flatten().map(|e| e.file_name()).collect();
            let ours = names.iter().any(|n| *n == *mark);
            if !names.is_empty() && !ours && !force {
                bail!(
                    "refusing to use {}: it is not empty and was not made by `cargo xtask {kind}` \
                     (choose another directory, or give --force to clear it)",
                    dir.display()
                );
            }
            for n in names {
                let p = dir.join(n);
                if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                }
                .with_context(|| format!("cannot clear {}", p.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join(&mark), b"")?;
    Ok(())
}

fn rollout(out: &Path, force: bool) -> Result<bool> {
    prepare_dir(out, "rollout", force)?;
    let out = &std::fs::canonicalize(out)?;
    let mut gates = Vec::new();

    // Phase 1: the brand, a platform that carries it, vmadm, rollback.
    let stamp = now_stamp();
    let built = platform(&out.join("platform"), &stamp)?;
    gates.push(gate(
        "1",
        "builder brand staged with manifest lines",
        built.manifest.len() == 4,
        built.manifest.join("; "),
    ));
    xmllint_gates(&out.join("platform/proto"), &mut gates);
    gates.push(gate(
        "1",
        "platform image built and vetted",
        true,
        built.image.display().to_string(),
    ));
    let bins = binaries()?;
    let work = out.join("sim");
    std::fs::create_dir_all(&work)?;
    let (steps, r) = sim::rfd::walk(&work, &bins, Some((&built.image, &stamp)));
    for s in &steps {
        gates.push(Gate {
            phase: "1".into(),
            name: s.name.clone(),
            status: if s.ok { "pass" } else { "FAIL" },
            detail: format!("$ {}\n{}", s.command, s.detail),
        });
    }
    if let Err(e) = r {
        gates.push(gate("1", "RFD 184 procedure completed", false, e));
    }

    phase0(&work.join("cn"), &mut gates);
    match phase2_triton(&work, &stamp, &bins, &mut gates) {
        Err(e) => gates.push(gate("2", "Triton APIs on the sim", false, format!("{e:#}"))),
        Ok(triton) => {
            if let Err(e) = phase3_images(&work, &bins, triton.url("imgapi"), &mut gates) {
                gates.push(gate("3", "image pipeline ran", false, format!("{e:#}")));
            }
            triton.stop();
        }
    }

    let failed = gates.iter().filter(|g| g.status == "FAIL").count();
    let mut md = String::from("# Rollout report\n\n| phase | gate | status |\n|---|---|---|\n");
    for g in &gates {
        md.push_str(&format!("| {} | {} | {} |\n", g.phase, g.name, g.status));
    }
    md.push_str("\n## Details\n");
    for g in &gates {
        md.push_str(&format!(
            "\n### [{}] {} — {}\n\n```\n{}\n```\n",
            g.phase,
            g.name,
            g.status,
            g.detail.trim()
        ));
    }
    std::fs::write(out.join("report.md"), md)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&gates)? + "\n",
    )?;
    for g in &gates {
        println!("{:<16} phase {}  {}", g.status, g.phase, g.name);
    }
    let count = |s: &str| gates.iter().filter(|g| g.status == s).count();
    println!(
        "\n{} passed, {} failed, {} skipped, {} not implemented; report: {}",
        count("pass"),
        failed,
        count("skip"),
        count("not implemented"),
        out.join("report.md").display()
    );
    Ok(failed == 0)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        || Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start a daemon in its own process group, output to `log`.
fn daemon(cmd: &mut Command, log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let out = std::fs::File::create(log)?;
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(child.id())
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..100 {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("{what} did not come up within 10 s")
}

/// `cargo xtask deploy`.
fn deploy(dir: &Path, force: bool) -> Result<bool> {
    use sim::triton::client;
    let state = dir.join("deploy.json");
    if let Ok(t) = std::fs::read_to_string(&state) {
        let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
        let running: Vec<u64> = v["pids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_u64())
            .filter(|p| alive(*p as u32))
            .collect();
        if !running.is_empty() {
            bail!(
                "already deployed in {} (pids {running:?}); run `cargo xtask deploy --stop` first",
                dir.display()
            );
        }
    }
    prepare_dir(dir, "deploy", force)?;
    std::fs::create_dir_all(dir.join("log"))?;
    std::fs::create_dir_all(dir.join("keys"))?;
    let dir = &std::fs::canonicalize(dir)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "sim",
            "-p",
            "triton-gate",
            "-p",
            "vmadm-ext",
            "--bins",
        ])
        .status()?
        .success();
    if !ok {
        bail!("cargo build failed");
    }
    let bins = binaries()?;
    let gate_bin = bins.sim.with_file_name("triton-gate");
    // Nodes: one on a platform with builder, one without.
    let stamp = now_stamp();
    let built = platform(&dir.join("platform"), &stamp)?;
    let (cn_b, cn_o) = (dir.join("cn-builder"), dir.join("cn-old"));
    sim::init::init(&cn_b, Some(&built.image), Some("cn-builder"))?;
    sim::init::init(&cn_o, None, Some("cn-old"))?;
    // Accounts with real OpenSSH keys (usable by the triton CLI).
    let mut fingerprints = serde_json::Map::new();
    let store = sim::triton::Store::open(&dir.join("triton"))?;
    for (login, uuid, groups) in [
        ("ops", OPS_UUID, vec!["operators".to_string()]),
        ("cust", CUST_UUID, vec![]),
    ] {
        let key = dir.join("keys").join(login);
        let ok = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("{login}@sim"),
                "-f",
            ])
            .arg(&key)
            .status()
            .context("ssh-keygen (openssh-client) is needed to make the account keys")?
            .success();
        if !ok {
            bail!("ssh-keygen failed");
        }
        let public = std::fs::read_to_string(key.with_extension("pub"))?;
        sim::triton::mahi::add_account(
            &store,
            login,
            Some(uuid),
            &groups,
            &[public.trim().to_string()],
            true,
        )?;
        let fp = Command::new("ssh-keygen")
            .args(["-l", "-E", "md5", "-f"])
            .arg(key.with_extension("pub"))
            .output()?;
        let fp = String::from_utf8_lossy(&fp.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .trim_start_matches("MD5:")
            .to_string();
        fingerprints.insert(login.into(), fp.into());
    }
    drop(store);
    // The Triton APIs and the gate, as daemons.
    let mut pids = Vec::new();
    pids.push(daemon(
        Command::new(&bins.sim)
            .args(["triton", "serve", "--data"])
            .arg(dir.join("triton"))
            .arg("--cn")
            .arg(&cn_b)
            .arg("--cn")
            .arg(&cn_o),
        &dir.join("log/sim-triton.log"),
    )?);
    let endpoints = dir.join("triton/endpoints.json");
    wait_for("sim triton", || {
        sim::triton::Endpoints::load(&dir.join("triton"))
            .ok()
            .and_then(|e| client::get(&format!("{}/ping", e.url("papi"))).ok())
            .is_some_and(|r| r.status == 200)
    })?;
    let e = sim::triton::Endpoints::load(&dir.join("triton"))?;
    seed_catalog(e.url("papi"), e.url("imgapi"))?;
    let port = free_port()?;
    let cloudapi = format!("http://127.0.0.1:{port}");
    pids.push(daemon(
        Command::new(&gate_bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--endpoints",
            ])
            .arg(&endpoints)
            .arg("--audit")
            .arg(dir.join("audit.log")),
        &dir.join("log/triton-gate.log"),
    )?);
    wait_for("triton-gate", || {
        client::get(&format!("{cloudapi}/--ping")).is_ok_and(|r| r.status == 200)
    })?;
    let info = serde_json::json!({
        "cloudapi": cloudapi,
        "endpoints": serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&endpoints)?)?,
        "pids": pids,
        "nodes": [cn_b, cn_o],
        "accounts": {
            "ops": {"uuid": OPS_UUID, "operator": true, "key": dir.join("keys/ops"), "fingerprint": fingerprints["ops"]},
            "cust": {"uuid": CUST_UUID, "operator": false, "key": dir.join("keys/cust"), "fingerprint": fingerprints["cust"]},
        },
        "catalog": {"builder_package": OPS_PKG, "builder_image": OPS_IMG, "package": PLAIN_PKG, "image": PLAIN_IMG},
        "audit": dir.join("audit.log"),
    });
    std::fs::write(&state, format!("{info:#}\n"))?;
    println!("deployed in {}", dir.display());
    println!("CloudAPI (triton-gate): {cloudapi}");
    println!("Triton APIs: {}", endpoints.display());
    println!(
        "compute nodes: {} (platform {stamp}, with builder), {} (without)",
        cn_b.display(),
        cn_o.display()
    );
    println!(
        "operator: ops (key {}), customer: cust (key {})",
        dir.join("keys/ops").display(),
        dir.join("keys/cust").display()
    );
    println!(
        "\nwith the triton CLI (the key must be in ~/.ssh or the agent: ssh-add {}):",
        dir.join("keys/ops").display()
    );
    println!(
        "  TRITON_URL={cloudapi} TRITON_ACCOUNT=ops TRITON_KEY_ID={} triton package list",
        fingerprints["ops"].as_str().unwrap_or_default()
    );
    println!(
        "\nstop with: cargo xtask deploy --stop --dir {}",
        dir.display()
    );
    Ok(true)
}

/// `cargo xtask deploy --stop`.
fn deploy_stop(dir: &Path) -> Result<bool> {
    let state = dir.join("deploy.json");
    let t = std::fs::read_to_string(&state)
        .with_context(|| format!("nothing deployed in {}", dir.display()))?;
    let v: serde_json::Value = serde_json::from_str(&t)?;
    for pid in v["pids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_u64())
    {
        if alive(pid as u32) {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            println!("stopped {pid}");
        }
    }
    Ok(true)
}

/// The binaries a release carries, by package.
const RELEASE_BINS: &[(&str, &str)] = &[
    ("brand", "brand"),
    ("vmadm-ext", "vmadm-ext"),
    ("sim", "sim"),
    ("ui-compat", "ui-compat"),
    ("triton-gate", "triton-gate"),
    ("image-ci", "image-ci"),
];

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `cargo xtask release`: release binaries, man pages, docs and a platform
/// image in `<out>/builder-brand-<version>-<host>/`, packed as a .tgz, and
/// SHA256SUMS over the bundle's files and the tarball.
fn release(out: &Path) -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    build.args(["build", "--release", "--locked"]);
    for (pkg, bin) in RELEASE_BINS {
        build.args(["-p", pkg, "--bin", bin]);
    }
    if !build
        .status()
        .context("running cargo build --release")?
        .success()
    {
        bail!("cargo build --release failed");
    }
    let meta = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let target = PathBuf::from(v["target_directory"].as_str().unwrap_or("target"));
    let host = Command::new("rustc").arg("-vV").output()?;
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let name = format!("builder-brand-{}-{host}", env!("CARGO_PKG_VERSION"));
    let _ = std::fs::remove_dir_all(out.join(&name));
    let dir = out.join(&name);
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for sub in ["bin", "man/man1", "man/man8", "docs", "platform"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    for (_, bin) in RELEASE_BINS {
        std::fs::copy(target.join("release").join(bin), dir.join("bin").join(bin))
            .with_context(|| format!("copying {bin}"))?;
    }
    for (pkg, _) in RELEASE_BINS {
        for e in std::fs::read_dir(ws.join(pkg).join("man"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            let section = n.rsplit('.').next().unwrap_or("1");
            std::fs::copy(e.path(), dir.join(format!("man/man{section}")).join(&n))?;
        }
    }
    for f in ["README.md", "docs/README.md", "docs/architecture.md"] {
        let dst = if f == "README.md" {
            dir.join(f)
        } else {
            dir.join("docs")
                .join(Path::new(f).file_name().unwrap_or_default())
        };
        std::fs::copy(ws.join(f), dst)?;
    }
    let built = platform(&dir.join("platform"), &now_stamp())?;
    let _ = std::fs::remove_dir_all(dir.join("platform/proto"));
    println!("platform image: {}", built.image.display());
    // SHA256SUMS of the bundle, then the tarball and its sum.
    let mut sums = String::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for f in &files {
        let rel = f.strip_prefix(&dir).unwrap_or(f).display().to_string();
        sums.push_str(&format!("{}  {rel}\n", sha256_hex(&std::fs::read(f)?)));
    }
    std::fs::write(dir.join("SHA256SUMS"), &sums)?;
    let tgz = out.join(format!("{name}.tgz"));
    {
        let f = std::fs::File::create(&tgz)?;
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::default(),
        ));
        b.append_dir_all(&name, &dir)?;
        b.into_inner()?.finish()?.sync_all()?;
    }
    let sum = format!("{}  {name}.tgz\n", sha256_hex(&std::fs::read(&tgz)?));
    std::fs::write(out.join(format!("{name}.tgz.sha256")), &sum)?;
    println!("{}", dir.display());
    print!("{sum}");
    Ok(true)
}

/// Programs the test suite runs, and the Debian packages that bring them.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("xmllint", "libxml2-utils"),
    ("mandoc", "mandoc"),
    ("qemu-img", "qemu-utils"),
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Install missing test tools with apt-get (as root), else say what to do.
fn ensure_test_tools() -> Result<()> {
    let missing: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(p, _)| !have(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !root || !have("apt-get") {
        bail!(
            "the tests need these packages: {} (install them with apt-get as root)",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let ok = Command::new("apt-get")
        .arg("update")
        .arg("-qq")
        .status()?
        .success()
        && Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?
            .success();
    if !ok {
        bail!("apt-get could not install {}", missing.join(" "));
    }
    Ok(())
}

/// Install what the tests need, build the workspace's binaries once (the
/// tests of one package run another package's binaries by path, never
/// building them), then run every test.
fn test(args: &[String]) -> Result<bool> {
    ensure_test_tools()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--workspace", "--bins"])
        .status()?;
    if !status.success() {
        return Ok(false);
    }
    let bin_dir = target_dir()?.join("debug");
    let status = Command::new(&cargo)
        .args(["test", "--workspace"])
        .args(args)
        .env("BUILDER_BRAND_BIN_DIR", &bin_dir)
        .status()?;
    Ok(status.success())
}

/// The cargo target directory.
fn target_dir() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    Ok(PathBuf::from(
        v["target_directory"].as_str().unwrap_or("target"),
    ))
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Platform { out, stamp } => {
            let stamp = stamp.unwrap_or_else(now_stamp);
            platform(&out, &stamp).map(|b| {
                for l in &b.manifest {
                    println!("{l}");
                }
                println!("platform image: {}", b.image.display());
                true
            })
        }
        Cmd::Rollout { out, force } => rollout(&out, force),
        Cmd::Test { args } => test(&args),
        Cmd::Release { out } => release(&out),
        Cmd::Deploy { dir, stop, force } => {
            if stop {
                deploy_stop(&dir)
            } else {
                deploy(&dir, force)
            }
        }
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_dir_refuses_what_it_did_not_make() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("out");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("precious"), b"keep me").unwrap();
        let e = prepare_dir(&d, "rollout", false).unwrap_err().to_string();
        assert!(e.contains("not made by `cargo xtask rollout`"), "{e}");
        assert_eq!(std::fs::read(d.join("precious")).unwrap(), b"keep me");
        // a deploy directory is not a rollout directory either
        std::fs::remove_file(d.join("precious")).unwrap();
        prepare_dir(&d, "deploy", false).unwrap();
        std::fs::write(d.join("state"), b"x").unwrap();
        assert!(prepare_dir(&d, "rollout", false).is_err());
        assert!(d.join("state").exists());
        // its own directory is cleared and reused
        prepare_dir(&d, "deploy", false).unwrap();
        assert!(!d.join("state").exists() && d.join(marker("deploy")).exists());
        // missing: created; --force: cleared
        let n = t.path().join("new/deep");
        prepare_dir(&n, "rollout", false).unwrap();
        assert!(n.join(marker("rollout")).exists());
        std::fs::write(d.join("x"), b"x").unwrap();
        prepare_dir(&d, "rollout", true).unwrap();
        assert!(!d.join("x").exists());
    }

    #[test]
    fn rollout_refuses_a_foreign_directory_before_doing_anything() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("notes.txt"), b"mine").unwrap();
        let e = rollout(t.path(), false).unwrap_err().to_string();
        assert!(e.contains("refusing to use"), "{e}");
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }
}
