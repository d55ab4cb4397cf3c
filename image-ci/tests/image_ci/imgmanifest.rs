//! The workspace's validateDcManifest port (crate imgmanifest) against npm
//! `imgmanifest` itself:
//! the same verdict and the same erroneous fields for the filled
//! manifest.in and a set of broken variants. Uses sim/tests/js (its
//! package.json pins imgmanifest 3.2.1), installed the way the sim's tests
//! install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Map, Value};

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/tests/js")
}

/// `npm install` in sim/tests/js once, under the same lock as the sim's tests.
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

/// Run sim/tests/js/validate-manifests.js over DIR/imgapi/manifests.
pub fn validate_dir(data: &Path) -> Value {
    let js = npm_install();
    let out = Command::new("node")
        .arg("validate-manifests.js")
        .arg(data)
        .current_dir(&js)
        .output()
        .expect("node must be installed");
    assert!(
        out.status.success(),
        "validate-manifests.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().unwrap_or_default()).unwrap()
}

fn base() -> Map<String, Value> {
    let f = image_ci::artifact::Fill {
        uuid: "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41".into(),
        name: "ubuntu-24.04".into(),
        version: "20261125".into(),
        published_at: "2026-11-25T12:00:00Z".into(),
        os: "linux".into(),
        description:
            "Ubuntu 24.04 LTS (Noble Numbat). Built to run on bhyve or KVM virtual machines.".into(),
        homepage:
            "https://docs.tritondatacenter.com/public-cloud/instances/virtual-machines/images/linux"
                .into(),
        sha1: "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12".into(),
        size: 734003200,
    };
    let t = include_str!("../../../../shared/oracle/cloud-images/manifest.in");
    let mut m: Map<String, Value> = serde_json::from_str(&image_ci::artifact::fill(t, &f)).unwrap();
    m.insert("activated".into(), json!(true));
    m
}

fn variants() -> Vec<(String, Map<String, Value>)> {
    let b = base();
    let mut v: Vec<(String, Map<String, Value>)> = vec![("as built".into(), b.clone())];
    let mut no_act = b.clone();
    no_act.remove("activated");
    v.push(("not activated".into(), no_act));
    let set: Vec<(&str, Value)> = vec![
        ("os", json!("ubuntu")),
        ("os", json!("null")),
        ("type", json!("zfs")),
        ("type", json!("zone-dataset")),
        ("uuid", json!("3F0A8C2E-6D7B-4F61-9A2E-5B1C0D9E7A41")),
        ("owner", json!("nobody")),
        ("name", json!("ubuntu*24")),
        ("name", json!("x".repeat(1025))),
        ("version", json!("2026 11 25")),
        ("version", json!("1.0+build")),
        ("description", json!("d".repeat(10 * 1024 + 1))),
        ("homepage", json!("ftp://example.com")),
        ("homepage", json!("example.com")),
        ("published_at", json!("2026-11-25 12:00:00")),
        ("published_at", json!("2026-11-25T12:00:00.123Z")),
        ("state", json!("shipped")),
        ("state", json!("unactivated")),
        ("public", json!("yes")),
        ("public", json!("false")),
        ("image_size", json!("big")),
        ("image_size", json!(10.5)),
        ("image_size", json!("10240")),
        ("nic_driver", json!(1)),
        ("v", json!(-1)),
        ("files", json!([])),
        ("files", json!({"sha1": "x"})),
        (
            "files",
            json!([{"sha1": "a", "size": 1, "compression": "gzip"}, {"sha1": "b", "size": 1, "compression": "gzip"}]),
        ),
        ("files", json!([{"size": 1, "compression": "gzip"}])),
        (
            "files",
            json!([{"sha1": "a", "size": 0, "compression": "gzip"}]),
        ),
        (
            "files",
            json!([{"sha1": "a", "size": 1, "compression": "zip"}]),
        ),
        ("files", json!([{"sha1": "a", "size": 1}])),
        ("users", json!([{"name": "root", "uid": 0}])),
        ("users", json!("root")),
        ("tags", json!(["os"])),
        ("tags", json!("role")),
        (
            "requirements",
            json!({"networks": [{"name": "net0"}], "ssh_key": true}),
        ),
        ("requirements", json!({"networks": "net0"})),
        ("requirements", json!({"ssh_key": "yes"})),
        ("requirements", json!({"brand": 5})),
        ("requirements", json!({"brand": "builder"})),
        ("requirements", json!({"min_ram": 2048, "max_ram": 1024})),
        ("requirements", json!({"min_ram": 1.5})),
        (
            "requirements",
            json!({"min_platform": {"7.0": "20130308T102805Z"}}),
        ),
        ("requirements", json!({"min_platform": {"7.0": "2013"}})),
        ("requirements", json!({"max_platform": []})),
        ("requirements", json!({"bootrom": "uefi"})),
        ("requirements", json!({"brand": "bhyve", "bootrom": "bios"})),
        (
            "requirements",
            json!({"brand": "bhyve", "bootrom": "coreboot"}),
        ),
        ("requirements", json!({"frobs": 1})),
        ("requirements", json!("none")),
        ("requirements", json!(["a"])),
        ("requirements", json!(7)),
        ("acl", json!(["3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41"])),
        ("acl", json!(["nope"])),
        ("eula", json!("https://example.com/eula")),
        ("icon", json!("true")),
        ("urn", json!(5)),
        ("error", json!({"message": "x"})),
        ("error", json!("bad")),
        ("something_else", json!(1)),
    ];
    for (k, val) in set {
        let mut m = b.clone();
        m.insert(k.into(), val.clone());
        let s = val.to_string();
        v.push((format!("{k}={}", &s[..s.len().min(40)]), m));
    }
    for k in [
        "nic_driver",
        "image_size",
        "files",
        "published_at",
        "owner",
        "requirements",
        "users",
        "tags",
    ] {
        let mut m = b.clone();
        m.remove(k);
        v.push((format!("without {k}"), m));
    }
    v
}

fn field_set(errs: &Value) -> Vec<String> {
    let mut f: Vec<String> = errs
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["field"].as_str().unwrap_or("?"),
                        e["code"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    f.sort();
    f.dedup();
    f
}

#[test]
fn port_agrees_with_npm_imgmanifest() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("imgapi/manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let vs = variants();
    for (i, (_, m)) in vs.iter().enumerate() {
        std::fs::write(
            dir.join(format!("{i:03}.json")),
            Value::Object(m.clone()).to_string(),
        )
        .unwrap();
    }
    let npm = validate_dir(t.path());
    let npm = npm.as_object().unwrap();
    assert_eq!(npm.len(), vs.len());
    let mut disagree = vec![];
    let mut invalid = 0;
    for (i, (name, m)) in vs.iter().enumerate() {
        let theirs = &npm[&format!("{i:03}.json")];
        let ours = imgmanifest::validate_dc(m)
            .map(|e| serde_json::to_value(e).unwrap())
            .unwrap_or(Value::Null);
        if !theirs.is_null() {
            invalid += 1;
        }
        if theirs.is_null() != ours.is_null() || field_set(theirs) != field_set(&ours) {
            disagree.push(format!(
                "{name}: npm {:?}, image-ci {:?}",
                field_set(theirs),
                field_set(&ours)
            ));
        }
    }
    assert!(
        disagree.is_empty(),
        "disagreements:\n{}",
        disagree.join("\n")
    );
    // the set exercises both verdicts
    assert!(npm["000.json"].is_null());
    assert!(invalid > vs.len() / 2, "{invalid} of {}", vs.len());
}
