//! Real Triton clients against `sim triton`: npm `sdc-clients` (13.x) drives
//! PAPI, VMAPI, CNAPI and IMGAPI; npm `imgmanifest` validates every image
//! manifest the sim stores (`validateDcManifest`, as a DC-mode IMGAPI does).
//! The npm packages are installed into `sim/tests/js/node_modules` (ignored
//! by git) on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::triton_common::*;
use serde_json::{json, Value};

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// The npm packages, installed once (`testkit::npm_install` holds a lock).
fn npm_install() -> PathBuf {
    let dir = js_dir();
    testkit::npm_install(
        &dir,
        &[
            "node_modules/sdc-clients/package.json",
            "node_modules/imgmanifest/package.json",
        ],
    );
    dir
}

fn node_json(dir: &Path, script: &str, args: &[&str], env: &[(&str, String)]) -> Value {
    let mut c = Command::new("node");
    c.arg(script).args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("node must be installed");
    assert!(
        out.status.success(),
        "node {script} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("node {script} output is not JSON ({e}): {stdout}"))
}

/// triton-cloud-images' manifest.in filled the way build_all.sh fills it.
fn cloud_image_manifest(uuid: &str, data: &[u8]) -> Value {
    let tpl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/cloud-images/manifest.in"),
    )
    .unwrap();
    let filled = tpl
        .replace("@UUID@", uuid)
        .replace("@NAME@", "ubuntu-24.04")
        .replace("@VERSION@", "20261125")
        .replace("@PUBLISHED_AT@", "2026-11-25T12:00:00Z")
        .replace("@OS@", "linux")
        .replace("@SHA1@", &sha1_hex(data))
        .replace("@SIZE@", &data.len().to_string())
        .replace("@DESCRIPTION@", "Ubuntu 24.04 LTS (Noble Numbat) 64-bit image")
        .replace("@HOMEPAGE@", "https://docs.tritondatacenter.com/public-cloud/instances/virtual-machines/images/linux");
    serde_json::from_str(&filled).unwrap()
}

#[test]
fn sdc_clients_drive_papi_vmapi_cnapi_imgapi() {
    let js = npm_install();
    let t = tempfile::tempdir().unwrap();
    let old = node(t.path(), "cn-old", OLD_STAMP, OLD_BRANDS);
    let new = node(t.path(), "cn-new", NEW_STAMP, NEW_BRANDS);
    let new_uuid = sysinfo(&new)["UUID"].as_str().unwrap().to_string();
    let data_dir = t.path().join("data");
    let bg = start(&data_dir, &[old.clone(), new.clone()]);
    let (m, data) = builder_image("6f1e0c2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b");
    std::fs::write(t.path().join("manifest.json"), m.to_string()).unwrap();
    std::fs::write(t.path().join("image.gz"), &data).unwrap();
    let env = [
        ("PAPI_URL", bg.url("papi").to_string()),
        ("VMAPI_URL", bg.url("vmapi").to_string()),
        ("CNAPI_URL", bg.url("cnapi").to_string()),
        ("IMGAPI_URL", bg.url("imgapi").to_string()),
        ("OWNER", OPERATOR.to_string()),
        (
            "IMAGE_MANIFEST",
            t.path().join("manifest.json").display().to_string(),
        ),
        (
            "IMAGE_FILE",
            t.path().join("image.gz").display().to_string(),
        ),
        ("MIN_PLATFORM", json!({"7.0": NEW_STAMP}).to_string()),
    ];
    let r = node_json(&js, "clients.js", &[], &env);
    assert!(
        r.get("error").is_none(),
        "sdc-clients step {} failed: {}",
        r["lastStep"],
        r["error"]
    );

    // PAPI
    assert_eq!(r["pkgAdd"]["brand"], "builder");
    assert_eq!(r["pkgGet"]["uuid"], r["pkgAdd"]["uuid"]);
    assert_eq!(r["pkgBadBrand"]["statusCode"], 409);
    assert_eq!(
        r["pkgBadBrand"]["body"],
        json!({"code": "InvalidArgument", "message": "Package is invalid", "errors": [
            {"field": "brand", "code": "Invalid", "message": "must be one of: bhyve, builder, joyent, joyent-minimal, kvm, lx"}]})
    );
    assert_eq!(r["pkgList"], json!([r["pkgAdd"]["uuid"]]));
    // CNAPI
    assert_eq!(r["servers"].as_array().unwrap().len(), 2);
    assert_eq!(r["server"]["sysinfoUUID"], r["server"]["uuid"]);
    assert_eq!(r["server"]["setup"], true);
    // IMGAPI
    assert_eq!(r["imgImport"]["state"], "unactivated");
    assert_eq!(r["imgFile"]["files"][0]["sha1"], sha1_hex(&data));
    assert_eq!(r["imgBadSha1"]["statusCode"], 400);
    assert_eq!(r["imgBadSha1"]["body"]["code"], "Download");
    assert_eq!(r["imgActivate"]["state"], "active");
    assert_eq!(r["imgGet"]["requirements"]["brand"], "builder");
    assert_eq!(r["imgList"], json!([m["uuid"]]));
    // VMAPI: the VM is created on the capable node
    let vm_uuid = r["vmCreate"]["vm_uuid"].as_str().unwrap().to_string();
    assert!(r["vmCreate"]["job_uuid"].is_string());
    assert_eq!(r["job"]["execution"], "succeeded", "{}", r["job"]);
    assert_eq!(r["vmGet"]["server_uuid"], new_uuid.as_str());
    assert_eq!(r["vmGet"]["brand"], "builder");
    assert_eq!(r["vmList"], json!([vm_uuid]));
    assert!(vmadm_list(&new)
        .iter()
        .any(|(u, b, _)| *u == vm_uuid && b == "builder"));
    assert!(vmadm_list(&old).is_empty());
}

#[test]
fn imgmanifest_validates_every_stored_manifest() {
    let js = npm_install();
    let t = tempfile::tempdir().unwrap();
    let bg = start(t.path(), &[]);
    let img = bg.url("imgapi");

    // a cloud image as build_all.sh makes it (zvol), shipped
    let data: Vec<u8> = (0..1000u32).flat_map(|i| i.to_be_bytes()).collect();
    let zvol = cloud_image_manifest("3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41", &data);
    let shipped = ship_image(img, &zvol, &data);
    assert_eq!(shipped["state"], "active");
    // a builder base image, shipped
    let (m, d) = builder_image("6f1e0c2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b");
    ship_image(img, &m, &d);
    // one imported only (unactivated, no file)
    let (mut m2, _) = builder_image("0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e");
    m2["name"] = json!("builder-next");
    assert_eq!(
        post(
            &format!("{img}/images/0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e?action=import"),
            &m2
        )
        .status,
        200
    );

    let res = node_json(
        &js,
        "validate-manifests.js",
        &[&t.path().display().to_string()],
        &[],
    );
    let res = res.as_object().unwrap();
    assert_eq!(res.len(), 3, "{res:?}");
    for (f, errs) in res {
        assert!(errs.is_null(), "{f}: {errs}");
    }

    // control: the validator does reject a bad manifest in the same layout
    let bad = t.path().join("bad");
    std::fs::create_dir_all(bad.join("imgapi/manifests")).unwrap();
    let mut broken = zvol.clone();
    broken["os"] = json!("ubuntu");
    std::fs::write(bad.join("imgapi/manifests/x.json"), broken.to_string()).unwrap();
    let res = node_json(
        &js,
        "validate-manifests.js",
        &[&bad.display().to_string()],
        &[],
    );
    let errs = res["x.json"]
        .as_array()
        .expect("errors for the broken manifest");
    assert!(errs.iter().any(|e| e["field"] == "activated"));
    assert!(errs.iter().any(|e| e["field"] == "os"));
}
