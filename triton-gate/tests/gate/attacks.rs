//! Issue 13 item 5: every attack path of the notes (section 7) that
//! reaches the gate, each refused with CloudAPI's exact answer and
//! recorded; and item 6: `triton-gate scan` finds planted problems.

use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};
use triton_api::{CreateVm, Package, Triton, VmFilter};
use triton_gate::audit::Decision;

use crate::env::*;
use crate::tests::{gate_bin, msg, records};

/// One refusal: the answer, and exactly one deny record with a reason
/// containing `why`.
fn refused(log: &std::path::Path, r: &Reply, status: u16, body: Value, why: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body, body);
    let last = records(log).pop().expect("a record");
    assert_eq!(last.decision, Decision::Deny, "{last:?}");
    assert_eq!(last.status, status);
    assert!(last.reason.contains(why), "{why}: {}", last.reason);
}

fn not_found(m: &str) -> Value {
    json!({"code": "ResourceNotFound", "message": m})
}

fn invalid(m: &str) -> Value {
    json!({"code": "InvalidArgument", "message": m})
}

pub fn attack_paths() {
    let e = env();
    let (gate, log) = e.gate("attacks");
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));

    // a customer machine and an operator machine to attack
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "name": "victim"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let cvm = r.body["id"].as_str().unwrap().to_string();
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "name": "ops-builder"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let bvm = r.body["id"].as_str().unwrap().to_string();
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "name": "ops-plain"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let ovm = r.body["id"].as_str().unwrap().to_string();
    let vms_before = e.all_vms();

    // (10) resize a joyent machine to a builder package
    let resize = |c: &GateClient, login: &str, vm: &str, pkg: &str| {
        c.request(
            Method::POST,
            &format!("/{login}/machines/{vm}?action=resize&package={pkg}"),
            None,
        )
    };
    let r = resize(&cu, "cust", &cvm, BUILDER_PKG);
    refused(
        &log,
        &r,
        404,
        not_found(&format!("Package {BUILDER_PKG} does not exist")),
        "package:",
    );
    let r = resize(&cu, "cust", &cvm, CUST_BUILDER_PKG);
    refused(
        &log,
        &r,
        404,
        not_found(&format!("Package {CUST_BUILDER_PKG} does not exist")),
        "builder package 5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9 hidden: caller cust is not in group operators",
    );
    let r = resize(&cu, "cust", &cvm, "builder-cust");
    refused(
        &log,
        &r,
        409,
        invalid("builder-cust is not a valid package"),
        "builder package builder-cust hidden",
    );
    assert_eq!(records(&log).last().unwrap().action, "ResizeMachine");
    // ... by an operator, of its own joyent machine: the brand never changes
    let r = resize(&op, "ops", &ovm, BUILDER_PKG);
    refused(
        &log,
        &r,
        409,
        json!({"code": "ValidationFailed", "message": "Invalid VM update parameters",
               "errors": [{"field": "brand", "code": "Invalid", "message": "Package requires brand \"builder\", but brand \"joyent\" was specified"}]}),
        "resize of a joyent machine to builder package",
    );
    // the control: an ordinary resize goes through
    let r = resize(&cu, "cust", &cvm, JOYENT2_PKG);
    assert_eq!(r.status, 202, "{}", r.body);
    let v = block(e.triton.vmapi.get(&cvm)).unwrap();
    assert_eq!(v.billing_id.as_deref(), Some(JOYENT2_PKG));

    // (11) UpdateMachine asking for another brand
    let r = cu.request(
        Method::POST,
        &format!("/cust/machines/{cvm}?action=update"),
        Some(&json!({"brand": "builder"})),
    );
    refused(
        &log,
        &r,
        409,
        invalid("update is not a valid action"),
        "asked brand \"builder\" (a machine's brand never changes)",
    );
    let r = cu.request(
        Method::POST,
        &format!("/cust/machines/{cvm}"),
        Some(&json!({"brand": "builder"})),
    );
    refused(
        &log,
        &r,
        409,
        json!({"code": "MissingParameter", "message": "action is required"}),
        "action is required; asked brand",
    );
    // rename with a brand: renamed, brand unchanged
    let r = cu.request(
        Method::POST,
        &format!("/cust/machines/{cvm}?action=rename&name=victim2&brand=builder"),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let v = block(e.triton.vmapi.get(&cvm)).unwrap();
    assert_eq!(
        (v.alias.as_deref(), v.brand.as_deref()),
        (Some("victim2"), Some("joyent"))
    );

    // (12) CreateImageFromMachine of a builder zone by a customer
    let r = cu.post_json(
        "/cust/images",
        &json!({"machine": bvm, "name": "stolen", "version": "1.0.0"}),
    );
    refused(
        &log,
        &r,
        404,
        json!({"code": "ResourceNotFound", "message": "VM not found"}),
        "machine:",
    );
    assert_eq!(
        records(&log).last().unwrap().action,
        "CreateImageFromMachine"
    );
    // ... even when a misconfiguration made the customer own one
    let planted = block(e.triton.vmapi.create(&CreateVm {
        owner_uuid: Some(CUST_UUID.into()),
        brand: Some("builder".into()),
        billing_id: Some(CUST_BUILDER_PKG.into()),
        image_uuid: Some(BUILDER_IMG.into()),
        server_uuid: Some(e.new_uuid.clone()),
        alias: Some("planted".into()),
        networks: Some(vec![]),
        ..Default::default()
    }))
    .expect("plant a customer builder zone")
    .vm_uuid;
    let r = cu.post_json(
        "/cust/images",
        &json!({"machine": planted, "name": "stolen", "version": "1.0.0"}),
    );
    refused(
        &log,
        &r,
        404,
        json!({"code": "ResourceNotFound", "message": "VM not found"}),
        &format!("builder machine {planted} hidden: caller cust is not in group operators"),
    );
    let r = cu.get(&format!("/cust/machines/{planted}"));
    assert_eq!(r.status, 404);
    assert!(!cu
        .get("/cust/machines")
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == planted.as_str()));
    // the operator imaging its own builder zone is allowed (not served by the subset)
    let r = op.post_json(
        "/ops/images",
        &json!({"machine": bvm, "name": "b", "version": "1.0.0"}),
    );
    assert_eq!(r.status, 501, "{}", r.body);
    block(e.triton.vmapi.delete(&planted)).expect("remove the planted zone");

    // (13) an inactive builder package by UUID
    let body = json!({"image": PLAIN_IMG, "package": INACTIVE_BUILDER_PKG});
    let r = cu.post_json("/cust/machines", &body);
    refused(
        &log,
        &r,
        404,
        not_found(&format!("Package {INACTIVE_BUILDER_PKG} does not exist")),
        "builder package 8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d hidden",
    );
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": INACTIVE_BUILDER_PKG}),
    );
    refused(
        &log,
        &r,
        409,
        invalid(&format!(
            "{INACTIVE_BUILDER_PKG} is inactive. Must use an active package"
        )),
        "builder package 8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d is inactive",
    );
    let r = cu.get(&format!("/cust/packages/{INACTIVE_BUILDER_PKG}"));
    refused(
        &log,
        &r,
        404,
        not_found(&format!("Package {INACTIVE_BUILDER_PKG} does not exist")),
        "hidden",
    );

    // (17) placement hints: never a way to builder, never trusted
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "brand": "builder", "server_uuid": e.new_uuid,
                "affinity": [format!("instance=={bvm}")], "locality": {"near": [bvm]}}),
    );
    refused(
        &log,
        &r,
        409,
        invalid("Unknown brand \"builder\". Brand is restricted to one of [\"bhyve\",\"kvm\"]"),
        "builder via params",
    );
    let last = records(&log).pop().unwrap();
    assert_eq!(last.request["server_uuid"], e.new_uuid.as_str());
    assert!(last.request["affinity"].is_array());
    // an operator's server_uuid is ignored, as CloudAPI ignores it
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "server_uuid": e.old_uuid}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["compute_node"], e.new_uuid.as_str());

    // (4) a builder image shared with the customer through its acl
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": SHARED_BUILDER_IMG, "package": JOYENT_PKG}),
    );
    refused(
        &log,
        &r,
        404,
        not_found(&format!("image {SHARED_BUILDER_IMG} not found")),
        "builder image 4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a hidden",
    );
    let r = cu.get(&format!("/cust/images/{SHARED_BUILDER_IMG}"));
    refused(
        &log,
        &r,
        404,
        not_found(&format!("image {SHARED_BUILDER_IMG} not found")),
        "hidden",
    );
    let r = cu.get("/cust/images");
    assert!(!r
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == SHARED_BUILDER_IMG));
    assert!(records(&log)
        .last()
        .unwrap()
        .reason
        .contains(SHARED_BUILDER_IMG));

    // (9) an operator provisioning for a customer
    let r = op.post_json(
        "/cust/machines",
        &json!({"image": SHARED_BUILDER_IMG, "package": CUST_BUILDER_PKG}),
    );
    refused(
        &log,
        &r,
        404,
        not_found(&format!("image {SHARED_BUILDER_IMG} not found")),
        "account cust is not an operator (builder zones are never owned by customers)",
    );
    let r = op.post_json(
        "/cust/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
    );
    refused(
        &log,
        &r,
        404,
        not_found(&format!("image {BUILDER_IMG} not found")),
        "image:",
    );
    let last = records(&log).pop().unwrap();
    assert_eq!(
        (last.caller_login.as_str(), last.account_login.as_str()),
        ("ops", "cust")
    );
    // an owner_uuid parameter does not move the owner
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "owner_uuid": CUST_UUID, "name": "not-for-cust"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = block(e.triton.vmapi.get(r.body["id"].as_str().unwrap())).unwrap();
    assert_eq!(v.owner_uuid.as_deref(), Some(OPS_UUID));

    // nothing builder reached the customer
    let cust_builders = block(e.triton.vmapi.list(&VmFilter {
        brand: Some("builder".into()),
        state: Some("active".into()),
        ..VmFilter::owner(CUST_UUID)
    }))
    .unwrap();
    assert!(cust_builders.is_empty(), "{cust_builders:?}");
    let _ = vms_before;
    gate.stop();
}

fn scan(ep: &std::path::Path, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let o = gate_bin()
        .args(["scan", "-j", "--endpoints"])
        .arg(ep)
        .args(extra)
        .output()
        .unwrap();
    let findings = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        o.status.code().unwrap_or(-1),
        findings,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn scan_finds_planted_problems() {
    let e = env();
    // a clean Triton: the operator's builder package (floor, private) and
    // image (private), over the same nodes
    let data = e.dir.join("triton-scan");
    let store = sim::triton::Store::open(&data).unwrap();
    sim::triton::mahi::add_account(
        &store,
        "ops",
        Some(OPS_UUID),
        &["operators".into()],
        &[],
        true,
    )
    .unwrap();
    sim::triton::mahi::add_account(&store, "cust", Some(CUST_UUID), &[], &[], true).unwrap();
    drop(store);
    let (sim2, ep) = start_triton(&data, &[e.old.clone(), e.new.clone()], |_| {});
    let t = Triton::with_client(&ep, http()).unwrap();
    let pkg = |v: Value| -> Package { serde_json::from_value(v).unwrap() };
    let mut p = package(
        BUILDER_PKG,
        "builder-1g",
        Some("builder"),
        Some(&[OPS_UUID]),
    );
    p["min_platform"] = json!({"7.0": NEW_STAMP});
    block(t.papi.create(&pkg(p))).unwrap();
    ship_image(
        &t,
        json!({"v": 2, "uuid": BUILDER_IMG, "owner": OPS_UUID, "name": "builder-base", "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": false, "state": "active",
        "published_at": "2026-11-01T00:00:00Z", "requirements": {"brand": "builder"}}),
    );
    let epf = data.join("endpoints.json");
    let (code, findings, err) = scan(&epf, &[]);
    assert_eq!((code, findings.len()), (0, 0), "{findings:#?} {err}");

    // plant one of each
    block(t.papi.create(&pkg(package(
        PUBLIC_BUILDER_PKG,
        "builder-public",
        Some("builder"),
        None,
    ))))
    .unwrap();
    // a look-alike brand PAPI only takes without validation
    let mut look = package(
        CUST_BUILDER_PKG,
        "builder-cust",
        Some("Builder"),
        Some(&[OPS_UUID, CUST_UUID]),
    );
    look["skip_validation"] = json!("true");
    block(t.papi.create(&pkg(look))).unwrap();
    let mut tp = package(
        TRAITS_BUILDER_PKG,
        "builder-traits",
        Some("builder"),
        Some(&[OPS_UUID]),
    );
    tp["traits"] = json!({"builder": true});
    block(t.papi.create(&pkg(tp))).unwrap();
    ship_image(
        &t,
        json!({"v": 2, "uuid": PUBLIC_BUILDER_IMG, "owner": OPS_UUID, "name": "builder-pub", "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": true, "state": "active",
        "published_at": "2026-11-01T00:00:00Z", "requirements": {"brand": "builder"}}),
    );
    ship_image(
        &t,
        json!({"v": 2, "uuid": SHARED_BUILDER_IMG, "owner": OPS_UUID, "name": "builder-shared", "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos", "public": false, "state": "active", "acl": [CUST_UUID],
        "published_at": "2026-11-01T00:00:00Z", "requirements": {"brand": "builder"}}),
    );
    let mk = |owner: &str, pkg: &str, alias: &str| {
        block(t.vmapi.create(&CreateVm {
            owner_uuid: Some(owner.into()),
            brand: Some("builder".into()),
            billing_id: Some(pkg.into()),
            image_uuid: Some(BUILDER_IMG.into()),
            server_uuid: Some(e.new_uuid.clone()),
            alias: Some(alias.into()),
            networks: Some(vec![]),
            ..Default::default()
        }))
        .expect("plant a builder zone")
        .vm_uuid
    };
    let cust_vm = mk(CUST_UUID, PUBLIC_BUILDER_PKG, "scan-cust");
    let traits_vm = mk(OPS_UUID, TRAITS_BUILDER_PKG, "scan-traits");
    let floor_vm = mk(OPS_UUID, BUILDER_PKG, "scan-floor");
    // the builder node will boot an old platform next
    e.server_update(&t, &e.new_uuid, json!({"boot_platform": OLD_STAMP}));

    let (code, findings, err) = scan(&epf, &[]);
    e.server_update(&t, &e.new_uuid, json!({"boot_platform": NEW_STAMP}));
    for v in [&cust_vm, &traits_vm, &floor_vm] {
        block(t.vmapi.delete(v)).unwrap();
    }
    assert_eq!(code, 1, "{err}");
    let has = |kind: &str, id: &str, problem: &str| {
        assert!(
            findings.iter().any(|f| f["kind"] == kind
                && f["id"] == id
                && f["problem"].as_str().unwrap().contains(problem)),
            "no {kind} {id} \"{problem}\" in {findings:#?}"
        );
    };
    has(
        "package",
        PUBLIC_BUILDER_PKG,
        "builder package is public (no owner_uuids)",
    );
    has("package", PUBLIC_BUILDER_PKG, "has no placement rule");
    has(
        "package",
        CUST_BUILDER_PKG,
        "lists non-operator account cust in owner_uuids",
    );
    has("image", PUBLIC_BUILDER_IMG, "builder image is public");
    has(
        "image",
        SHARED_BUILDER_IMG,
        "shared (acl) with non-operator account cust",
    );
    has(
        "vm",
        &cust_vm,
        "builder zone owned by non-operator account cust",
    );
    has(
        "server",
        &e.new_uuid,
        &format!("boots platform {OLD_STAMP}, below the builder floor {{\"7.0\":\"{NEW_STAMP}\"}}"),
    );
    has(
        "server",
        &e.new_uuid,
        "do not match the builder package's {\"builder\":true}",
    );
    assert!(
        !findings
            .iter()
            .any(|f| f["id"] == BUILDER_PKG || f["id"] == BUILDER_IMG),
        "{findings:#?}"
    );
    // the gate's floor counts as a placement rule
    let (_, f2, _) = scan(
        &epf,
        &["--builder-min-platform", &format!("7.0={NEW_STAMP}")],
    );
    assert!(!f2
        .iter()
        .any(|f| f["problem"].as_str().unwrap().contains("no placement rule")));
    // text form: one line each
    let o = gate_bin()
        .args(["scan", "--endpoints"])
        .arg(&epf)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines().all(|l| l.starts_with("package ")
            || l.starts_with("image ")
            || l.starts_with("vm ")
            || l.starts_with("server ")),
        "{text}"
    );
    // an API that cannot be read: exit 3, one line
    let o = gate_bin()
        .args(["scan", "--endpoints"])
        .arg(&epf)
        .args(["--papi", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("triton-gate: scan: PAPI: GET http://127.0.0.1:9/packages"),
        "{err}"
    );
    let o = gate_bin().args(["scan", "-x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_triton-gate"))
        .args(["scan", "--papi", "http://p"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "missing URLs are a usage error");
    let _ = msg;
    sim2.stop();
}
