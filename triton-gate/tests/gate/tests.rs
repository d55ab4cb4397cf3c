//! The tests, run in order by `main`.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};
use triton_gate::audit::{self, AuditRecord, Decision};

use crate::env::*;

pub const ALL: &[(&str, fn())] = &[
    (
        "operator_provisions_builder_on_the_capable_node",
        operator_provisions_builder_on_the_capable_node,
    ),
    (
        "builder_machine_passes_vmadm_ext_check",
        builder_machine_passes_vmadm_ext_check,
    ),
    (
        "operator_deletes_its_builder_machine",
        operator_deletes_its_builder_machine,
    ),
    (
        "customer_is_refused_by_every_path",
        customer_is_refused_by_every_path,
    ),
    (
        "customer_still_gets_ordinary_zones",
        customer_still_gets_ordinary_zones,
    ),
    ("operator_edge_cases", operator_edge_cases),
    (
        "no_capable_node_means_no_zone",
        no_capable_node_means_no_zone,
    ),
    (
        "placement_without_reported_brands",
        placement_without_reported_brands,
    ),
    (
        "gate_refuses_what_a_misconfigured_allocator_picks",
        gate_refuses_what_a_misconfigured_allocator_picks,
    ),
    ("authentication_failures", authentication_failures),
    ("sub_users", sub_users),
    (
        "the_cache_never_holds_authorization",
        the_cache_never_holds_authorization,
    ),
    ("alias_races_make_one_machine", alias_races_make_one_machine),
    (
        "audit_is_bounded_and_complete",
        audit_is_bounded_and_complete,
    ),
    ("attack_paths", crate::attacks::attack_paths),
    ("rollout_phase2_passes", rollout_phase2_passes),
    ("cli_decide_audit_and_usage", cli_decide_audit_and_usage),
    (
        "scan_finds_planted_problems",
        crate::attacks::scan_finds_planted_problems,
    ),
    (
        "serve_binary_answers_and_logs_bunyan",
        serve_binary_answers_and_logs_bunyan,
    ),
    ("smf_manifest", smf_manifest),
    ("man_page_passes_mandoc_lint", man_page_passes_mandoc_lint),
    ("real_triton_cli", real_triton_cli),
    (
        "front_of_cloudapi_with_the_real_cli",
        front_of_cloudapi_with_the_real_cli,
    ),
];

pub fn records(p: &Path) -> Vec<AuditRecord> {
    audit::read(p).expect("audit log")
}

pub fn msg(r: &Reply) -> String {
    r.body["message"].as_str().unwrap_or_default().to_string()
}

fn operator_provisions_builder_on_the_capable_node() {
    let e = env();
    let (gate, log) = e.gate("operator");
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let before_old = e.vmadm_list(&e.old);

    // the operator sees its builder package, by list and by UUID and by name
    let r = op.get("/ops/packages");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("api-version"), Some("9.20.0"));
    assert!(r.header("request-id").is_some());
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(ids.contains(&BUILDER_PKG), "{ids:?}");
    assert!(!ids.contains(&INACTIVE_PKG));
    let r = op.get(&format!("/ops/packages/{BUILDER_PKG}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["brand"], "builder");
    assert_eq!(r.body["memory"], 1024);
    assert_eq!(op.get("/my/packages/builder-1g").body["id"], BUILDER_PKG);
    let r = op.get(&format!("/ops/images/{BUILDER_IMG}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["requirements"]["brand"], "builder");

    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "name": "build0", "metadata": {"role": "ci"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let m = &r.body;
    assert_eq!(m["brand"], "builder");
    assert_eq!(m["name"], "build0");
    assert_eq!(m["state"], "running");
    assert_eq!(m["type"], "smartmachine");
    assert_eq!(m["compute_node"], e.new_uuid.as_str());
    assert_ne!(m["compute_node"], e.old_uuid.as_str());
    assert_eq!(m["package"], "builder-1g");
    assert_eq!(m["memory"], 1024);
    assert_eq!(m["metadata"]["role"], "ci");
    let vm = m["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/ops/machines/{vm}").as_str())
    );

    // it is on the capable node, and nothing landed on the old one
    let on_new = e.vmadm_list(&e.new);
    assert!(
        on_new
            .iter()
            .any(|(u, b, s)| *u == vm && b == "builder" && s == "running"),
        "{on_new:?}"
    );
    assert_eq!(e.vmadm_list(&e.old), before_old);

    // GetMachine / ListMachines
    let r = op.get(&format!("/ops/machines/{vm}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["compute_node"], e.new_uuid.as_str());
    let r = op.get("/ops/machines?brand=builder");
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == vm.as_str()));
    assert_eq!(
        r.header("x-resource-count"),
        Some(r.body.as_array().unwrap().len().to_string().as_str())
    );
    // the customer cannot see it
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let r = cu.get(&format!("/cust/machines/{vm}"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"code": "ResourceNotFound", "message": "VM not found"})
    );

    // audited: exactly one create, allowed, with brand, source, server, VM
    let recs = records(&log);
    let creates: Vec<&AuditRecord> = recs
        .iter()
        .filter(|r| r.action == "CreateMachine")
        .collect();
    assert_eq!(creates.len(), 1, "{recs:#?}");
    let a = creates[0];
    assert_eq!(a.decision, Decision::Allow);
    assert_eq!(a.status, 201);
    assert!(a.authenticated);
    assert_eq!(a.account_login, "ops");
    assert_eq!(a.caller_login, "ops");
    assert_eq!(a.account_uuid, OPS_UUID);
    assert!(a.operator && a.account_operator);
    assert_eq!(a.brand.as_deref(), Some("builder"));
    assert_eq!(a.brand_source, Some(triton_gate::brand::BrandSource::Image));
    assert_eq!(a.server_uuid.as_deref(), Some(e.new_uuid.as_str()));
    assert_eq!(a.vm_uuid.as_deref(), Some(vm.as_str()));
    assert_eq!(a.request["package"], BUILDER_PKG);
    assert_eq!(a.request["image"], BUILDER_IMG);
    // showing builder packages to the operator is recorded too
    assert!(recs
        .iter()
        .any(|r| r.action == "ListPackages" && r.decision == Decision::Allow));
    gate.stop();
}

/// Issue 13 item 1: the machine the gate makes can build (vmadm-ext
/// check on the sim node: devices, delegated dataset, spoofing nic,
/// limit_priv), and the VMAPI payload carried what it needs.
fn builder_machine_passes_vmadm_ext_check() {
    let e = env();
    let (gate, _log) = e.gate("check");
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "name": "check0"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let vm = r.body["id"].as_str().unwrap().to_string();
    let out = Command::new(testkit::bin("vmadm-ext"))
        .arg("--root")
        .arg(&e.new)
        .args(["check", &vm])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "vmadm-ext check failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "/dev/vmmctl",
        "/dev/viona",
        "delegated dataset",
        "allows ip spoofing",
        "proc_clock_highres and sys_dl_config",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
    // VMAPI's record: the payload's privileges, dataset and nic
    let v = block(e.triton.vmapi.get(&vm)).unwrap();
    assert_eq!(
        v.limit_priv.as_deref(),
        Some("default,proc_clock_highres,sys_dl_config")
    );
    let nic = &v.nics.as_ref().unwrap()[0];
    use triton_api::LenientExt as _;
    assert_eq!(nic.allow_ip_spoofing.val(), Some(true));
    assert_eq!(nic.primary.val(), Some(true));
    assert_eq!(nic.network_uuid.as_deref(), Some(NET), "{nic:?}");
    // a joyent machine gets none of it
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "networks": [NET]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let j = block(e.triton.vmapi.get(r.body["id"].as_str().unwrap())).unwrap();
    assert!(j.limit_priv.as_deref() != Some("default,proc_clock_highres,sys_dl_config"));
    assert!(j.nics.as_ref().unwrap()[0].allow_ip_spoofing.val() != Some(true));
    gate.stop();
}

/// DeleteMachine: an operator deletes its own builder machine (204, the
/// zone is gone from its node); a customer, the operator's sub-user and a
/// machine that is not there get CloudAPI's 404 for a machine they cannot
/// see, and every decision is in the audit log.
fn operator_deletes_its_builder_machine() {
    let e = env();
    let (gate, log) = e.gate("delete");
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "name": "delete0"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let vm = r.body["id"].as_str().unwrap().to_string();
    assert!(e.vmadm_list(&e.new).iter().any(|(u, _, _)| *u == vm));
    let path = format!("/ops/machines/{vm}");

    // the customer: not its account (403), nor through its own (404)
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    assert_eq!(cu.request(Method::DELETE, &path, None).status, 403);
    let r = cu.request(Method::DELETE, &format!("/cust/machines/{vm}"), None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"code": "ResourceNotFound", "message": "VM not found"})
    );
    // the operator's sub-user cannot see builder machines
    let sub = GateClient::new(&gate.url(), Some(e.sub.clone()));
    let r = sub.request(Method::DELETE, &path, None);
    assert_eq!(r.status, 404, "{}", r.body);
    // a machine that is not there
    let r = op.request(
        Method::DELETE,
        "/ops/machines/00000000-0000-4000-8000-00000000dead",
        None,
    );
    assert_eq!(r.status, 404);
    // still there after all that
    assert!(e.vmadm_list(&e.new).iter().any(|(u, _, _)| *u == vm));

    // the operator: 204, and the zone is gone
    let r = op.request(Method::DELETE, &path, None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        !e.vmadm_list(&e.new).iter().any(|(u, _, _)| *u == vm),
        "the zone is still on its node"
    );
    assert_eq!(op.get(&path).status, 404);
    // deleting it again: CloudAPI's 404
    assert_eq!(op.request(Method::DELETE, &path, None).status, 404);

    let recs: Vec<AuditRecord> = records(&log)
        .into_iter()
        .filter(|r| r.action == "DeleteMachine")
        .collect();
    let seen: Vec<(u16, Decision, &str)> = recs
        .iter()
        .map(|r| (r.status, r.decision, r.caller_login.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (403, Decision::Deny, "cust"),
            (404, Decision::Deny, "cust"),
            (404, Decision::Deny, "ops"),
            (404, Decision::Deny, "ops"),
            (204, Decision::Allow, "ops"),
            (404, Decision::Deny, "ops"),
        ],
        "{recs:#?}"
    );
    assert!(
        recs[1].reason.contains("delete of builder machine"),
        "{}",
        recs[1].reason
    );
    assert_eq!(recs[1].brand.as_deref(), Some("builder"));
    assert!(recs[2].reason.contains("sub-user"), "{}", recs[2].reason);
    assert_eq!(recs[2].caller_user.as_deref(), Some("sub1"));
    assert_eq!(
        recs[4].reason,
        format!("ops deleted its builder machine {vm}")
    );
    assert_eq!(recs[4].vm_uuid.as_deref(), Some(vm.as_str()));
    assert_eq!(recs[4].server_uuid.as_deref(), Some(e.new_uuid.as_str()));
    gate.stop();
}

fn customer_is_refused_by_every_path() {
    let e = env();
    let (gate, log) = e.gate("customer");
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let vms_before = e.all_vms();
    let cust_vms_before = e.vmapi_vms(CUST_UUID).len();

    let create = |body: Value| cu.post_json("/cust/machines", &body);
    let mut expect_denies = 0;

    // (1) params.brand builder, with an ordinary image and package
    for b in ["builder", "Builder", "builder "] {
        let r = create(json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "brand": b}));
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body["code"], "InvalidArgument");
        let shown = triton_gate::brand::safe_brand_name(b);
        assert_eq!(
            msg(&r),
            format!("Unknown brand \"{shown}\". Brand is restricted to one of [\"bhyve\",\"kvm\"]")
        );
        expect_denies += 1;
    }
    // (2) the operator's builder package, the public one, and one naming the customer
    for p in [BUILDER_PKG, PUBLIC_BUILDER_PKG, CUST_BUILDER_PKG] {
        let r = create(json!({"image": PLAIN_IMG, "package": p}));
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"code": "ResourceNotFound", "message": format!("Package {p} does not exist")})
        );
        expect_denies += 1;
    }
    // ... and by name
    let r = create(json!({"image": PLAIN_IMG, "package": "builder-public"}));
    assert_eq!(r.status, 409);
    assert_eq!(msg(&r), "builder-public is not a valid package");
    expect_denies += 1;
    // (3) builder images, private and public, with an ordinary package
    for i in [BUILDER_IMG, PUBLIC_BUILDER_IMG] {
        let r = create(json!({"image": i, "package": JOYENT_PKG}));
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"code": "ResourceNotFound", "message": format!("image {i} not found")})
        );
        expect_denies += 1;
    }
    // (4) everything at once
    let r = create(
        json!({"image": PUBLIC_BUILDER_IMG, "package": PUBLIC_BUILDER_PKG, "brand": "builder"}),
    );
    assert_eq!(r.status, 404);
    expect_denies += 1;

    // (5) listings hide builder packages and images; direct GETs are 404
    let r = cu.get("/cust/packages");
    assert_eq!(r.status, 200);
    let list = r.body.as_array().unwrap();
    assert!(list.iter().any(|p| p["id"] == JOYENT_PKG), "{list:?}");
    assert!(!list.iter().any(|p| p["brand"] == "builder"), "{list:?}");
    expect_denies += 1;
    let r = cu.get("/cust/packages?brand=builder");
    assert_eq!(r.body, json!([]));
    expect_denies += 1;
    for p in [BUILDER_PKG, PUBLIC_BUILDER_PKG, CUST_BUILDER_PKG] {
        let r = cu.get(&format!("/cust/packages/{p}"));
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body,
            json!({"code": "ResourceNotFound", "message": format!("Package {p} does not exist")})
        );
        expect_denies += 1;
    }
    let r = cu.get("/cust/packages/builder-cust");
    assert_eq!(r.status, 404);
    expect_denies += 1;
    let r = cu.get(&format!("/cust/images/{PUBLIC_BUILDER_IMG}"));
    assert_eq!(r.status, 404);
    expect_denies += 1;
    let r = cu.get("/cust/images");
    let imgs = r.body.as_array().unwrap();
    assert!(imgs.iter().any(|i| i["id"] == PLAIN_IMG));
    assert!(!imgs
        .iter()
        .any(|i| i["id"] == PUBLIC_BUILDER_IMG || i["id"] == BUILDER_IMG));
    expect_denies += 1;

    // nothing was created anywhere
    assert_eq!(e.all_vms(), vms_before);
    assert_eq!(e.vmapi_vms(CUST_UUID).len(), cust_vms_before);

    // every refusal is one deny record, with the real reason
    let recs = records(&log);
    assert_eq!(recs.len(), expect_denies, "{recs:#?}");
    for r in &recs {
        assert_eq!(r.decision, Decision::Deny, "{r:?}");
        assert_eq!(r.account_login, "cust");
        assert_eq!(r.caller_login, "cust");
        assert!(r.authenticated);
        assert!(!r.operator && !r.account_operator);
        assert!(r.vm_uuid.is_none() && r.server_uuid.is_none());
        assert!(
            r.reason.contains("builder") && r.reason.contains("not in group operators"),
            "{r:?}"
        );
    }
    let creates = recs.iter().filter(|r| r.action == "CreateMachine").count();
    assert_eq!(creates, 10);
    assert!(recs.iter().any(|r| r.reason.contains("builder via params")));
    assert!(recs
        .iter()
        .any(|r| r.reason.starts_with("package: builder package")));
    assert!(recs
        .iter()
        .any(|r| r.reason.starts_with("image: builder image")));
    gate.stop();
}

fn customer_still_gets_ordinary_zones() {
    let e = env();
    let (gate, log) = e.gate("customer-ok");
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let r = cu.post_json(
        "/my/machines",
        &json!({"image": PLAIN_IMG, "package": "joyent-1g", "name": "web0"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["brand"], "joyent");
    let vm = r.body["id"].as_str().unwrap();
    assert!(e.all_vms().iter().any(|(u, b, _)| u == vm && b == "joyent"));
    let a = records(&log);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].decision, Decision::Allow);
    assert_eq!(
        a[0].brand_source,
        Some(triton_gate::brand::BrandSource::Package)
    );
    // upstream errors for ordinary mistakes
    let r = cu.post_json("/cust/machines", &json!({"package": JOYENT_PKG}));
    assert_eq!(
        r.body,
        json!({"code": "MissingParameter", "message": "image must be specified"})
    );
    let r = cu.post_json("/cust/machines", &json!({"image": PLAIN_IMG}));
    assert_eq!(
        r.body,
        json!({"code": "MissingParameter", "message": "package must be specified"})
    );
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": "base-64", "package": JOYENT_PKG}),
    );
    assert_eq!(msg(&r), "base-64 is not a valid image");
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": PLAIN_IMG, "package": INACTIVE_PKG}),
    );
    assert_eq!(
        msg(&r),
        format!("{INACTIVE_PKG} is inactive. Must use an active package")
    );
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": PLAIN_IMG, "package": "nope"}),
    );
    assert_eq!(msg(&r), "nope is not a valid package");
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "brand": "bhyve"}),
    );
    assert_eq!(
        msg(&r),
        "Package requires brand \"joyent\", but brand \"bhyve\" was selected"
    );
    gate.stop();
}

fn operator_edge_cases() {
    let e = env();
    let (gate, log) = e.gate("edges");
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let vms_before = e.all_vms();

    // params.brand alone never selects builder
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "brand": "builder"}),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        msg(&r),
        "Package requires brand \"joyent\", but brand \"builder\" was selected"
    );
    // a builder image with a joyent package is refused
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": JOYENT_PKG}),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        msg(&r),
        "Package requires brand \"joyent\", but brand \"builder\" was selected"
    );
    // acting for a customer: builder hidden, since builder zones are never customer-owned
    let r = op.post_json(
        "/cust/machines",
        &json!({"image": PLAIN_IMG, "package": PUBLIC_BUILDER_PKG}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"code": "ResourceNotFound", "message": format!("Package {PUBLIC_BUILDER_PKG} does not exist")})
    );
    // a sub-user of the operator account is not an operator: the customer's answers
    let sub = GateClient::new(&gate.url(), Some(e.sub.clone()));
    let r = sub.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"code": "ResourceNotFound", "message": format!("image {BUILDER_IMG} not found")})
    );
    // a customer cannot act for the operator
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let r = cu.get("/ops/packages");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        json!({"code": "NotAuthorized", "message": "cust is not authorized to act as ops"})
    );
    let r = cu.get("/nobody/packages");
    assert_eq!(r.status, 404);

    assert_eq!(e.all_vms(), vms_before);
    let recs = records(&log);
    let creates: Vec<&AuditRecord> = recs
        .iter()
        .filter(|r| r.action == "CreateMachine")
        .collect();
    assert_eq!(creates.len(), 4, "{recs:#?}");
    assert!(creates.iter().all(|r| r.decision == Decision::Deny));
    assert!(
        creates[2].reason.contains("never owned by customers"),
        "{:?}",
        creates[2]
    );
    assert_eq!(creates[2].caller_login, "ops");
    assert_eq!(creates[2].account_login, "cust");
    assert_eq!(creates[3].caller_user.as_deref(), Some("sub1"));
    assert!(
        creates[3].reason.starts_with("image: builder image")
            && creates[3]
                .reason
                .contains("caller ops/sub1 is a sub-user, not an operator"),
        "{:?}",
        creates[3]
    );
    // the refused GETs are recorded too, with who asked
    let forbidden = recs.iter().find(|r| r.status == 403).expect("403 record");
    assert_eq!(
        (
            forbidden.caller_login.as_str(),
            forbidden.account_login.as_str()
        ),
        ("cust", "ops")
    );
    assert_eq!(forbidden.action, "ListPackages");
    assert!(recs
        .iter()
        .any(|r| r.status == 404 && r.account_login == "nobody"));
    gate.stop();
}

fn no_capable_node_means_no_zone() {
    let e = env();
    e.server_update(&e.triton, &e.new_uuid, json!({"reserved": true}));
    let (gate, log) = e.gate("nocap");
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let before = e.all_vms();
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
    );
    e.server_update(&e.triton, &e.new_uuid, json!({"reserved": false}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["code"], "InsufficientCapacity");
    assert_eq!(
        msg(&r),
        format!("Insufficient capacity in datacenter to provision machine: No compute resources available: Package requires min platforms {{\"7.0\":\"{NEW_STAMP}\"}}, but server has {{\"7.0\":\"{OLD_STAMP}\"}}")
    );
    assert_eq!(e.all_vms(), before);
    let recs = records(&log);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].decision, Decision::Deny);
    assert!(recs[0].reason.starts_with("placement:"), "{:?}", recs[0]);
    assert_eq!(recs[0].brand.as_deref(), Some("builder"));
    gate.stop();
}

/// Issue 13 item 2: nodes that report no `Brands` (today's platforms) and
/// an allocator that does not look at brands (upstream DAPI): a floor
/// alone works, traits alone work, neither is refused with what to do.
fn placement_without_reported_brands() {
    let e = env();
    let (sim2, ep) = e.other_triton("nobrands", |c| {
        c.report_brands = false;
        c.filter_brands = false;
    });
    let t2 = triton_api::Triton::with_client(&ep, http()).unwrap();
    let s = block(t2.cnapi.get(&e.new_uuid)).unwrap();
    assert!(
        s.sysinfo.as_ref().unwrap().brands.is_none(),
        "sysinfo still reports Brands"
    );
    let (gate, log) = e.gate_with("nobrands", &ep, |_| {});
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));

    // the floor alone: the new node
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["compute_node"], e.new_uuid.as_str());

    // neither floor nor traits: refused, saying what to configure
    let before = e.all_vms();
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BARE_BUILDER_PKG}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        msg(&r),
        format!(
            "Insufficient capacity in datacenter to provision machine: No compute resources available: {}",
            triton_gate::placement::NOT_CONFIGURED
        )
    );
    assert!(msg(&r).contains("min_platform") && msg(&r).contains("traits"));
    assert_eq!(e.all_vms(), before);

    // traits alone: the builder node carries {"builder": true}
    e.server_update(&t2, &e.new_uuid, json!({"traits": {"builder": true}}));
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": TRAITS_BUILDER_PKG}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["compute_node"], e.new_uuid.as_str());
    // and with the trait on no node, nothing fits
    e.server_update(&t2, &e.new_uuid, json!({"traits": {}}));
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": TRAITS_BUILDER_PKG}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        msg(&r).ends_with("No compute resources available: Combined vm/package/image traits require {\"builder\":true}, but server has {}"),
        "{}",
        r.body
    );
    let recs = records(&log);
    let c: Vec<&AuditRecord> = recs
        .iter()
        .filter(|r| r.action == "CreateMachine")
        .collect();
    assert_eq!(c.len(), 4);
    assert_eq!(
        c[1].reason,
        format!(
            "placement: No compute resources available: {}",
            triton_gate::placement::NOT_CONFIGURED
        )
    );
    assert_eq!(c[2].decision, Decision::Allow);
    gate.stop();
    sim2.stop();
}

/// Upstream DAPI sees only what it is told: with the floor only in the
/// gate's configuration and the builder node reserved, CNAPI picks the old
/// node, and the gate refuses it.
fn gate_refuses_what_a_misconfigured_allocator_picks() {
    let e = env();
    let (sim2, ep) = e.other_triton("unfiltered", |c| {
        c.report_brands = false;
        c.filter_brands = false;
    });
    let t2 = triton_api::Triton::with_client(&ep, http()).unwrap();
    e.server_update(&t2, &e.new_uuid, json!({"reserved": true}));
    let floor: std::collections::BTreeMap<String, String> =
        [("7.0".to_string(), NEW_STAMP.to_string())].into();
    let (gate, audit) = e.gate_with("unfiltered", &ep, |c| c.builder_min_platform = Some(floor));
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let before = e.all_vms();
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BARE_BUILDER_PKG}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"code": "InsufficientCapacity", "message": format!("Insufficient capacity in datacenter to provision machine: No compute resources available: Builder support requires min platforms {{\"7.0\":\"{NEW_STAMP}\"}}, but server has {{\"7.0\":\"{OLD_STAMP}\"}}")})
    );
    assert_eq!(e.all_vms(), before);
    let recs = records(&audit);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].decision, Decision::Deny);
    assert!(
        recs[0].reason.contains(&format!(
            "server {} (platform {OLD_STAMP}) chosen by CNAPI fails the builder rules",
            e.old_uuid
        )),
        "{:?}",
        recs[0]
    );
    // an ordinary joyent zone may still go to the old node
    let r = op.post_json(
        "/ops/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["compute_node"], e.old_uuid.as_str());
    gate.stop();
    sim2.stop();
}

fn authentication_failures() {
    let e = env();
    let (gate, log) = e.gate("auth");
    let url = gate.url();
    let anon = GateClient::new(&url, None);
    let r = anon.get("/ops/packages");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"code": "InvalidCredentials", "message": "You must make authenticated requests to use CloudAPI"})
    );
    let date = || httpdate::fmt_http_date(std::time::SystemTime::now());
    let send = |path: &str, auth: &str, date: &str, extra: &[(&str, &str)], body: Option<&[u8]>| {
        let mut h = vec![("date", date), ("authorization", auth)];
        h.extend_from_slice(extra);
        unsigned(
            &format!("{url}{path}"),
            if body.is_some() {
                Method::POST
            } else {
                Method::GET
            },
            &h,
            body.map(<[u8]>::to_vec),
        )
    };
    // the customer's key claiming to be the operator's key
    let d = date();
    let forged = e
        .cust
        .authorization("GET", "/ops/packages", &d)
        .replace(&e.cust.key_id(), &e.ops.key_id());
    let r = send("/ops/packages", &forged, &d, &[], None);
    assert_eq!(r.status, 401);
    assert_eq!(
        msg(&r),
        "The signature we calculated does not match the one you sent"
    );
    // the customer's key under the operator's login: no such key there
    let wrong = e.cust.with_login("ops");
    let r = GateClient::new(&url, Some(wrong.clone())).get("/ops/packages");
    assert_eq!(r.status, 401);
    assert_eq!(
        msg(&r),
        format!("Invalid KeyId {} in authorization header", wrong.key_id())
    );
    // an unknown login
    let ghost = e.cust.with_login("ghost");
    assert_eq!(
        GateClient::new(&url, Some(ghost))
            .get("/ghost/packages")
            .status,
        401
    );
    // a creation attempt without credentials is audited
    let r = anon.post_json(
        "/ops/machines",
        &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
    );
    assert_eq!(r.status, 401);
    // a stale Date, by hand
    let stale = httpdate::fmt_http_date(
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
    let auth = e.ops.authorization("GET", "/ops/packages", &stale);
    let r = send("/ops/packages", &auth, &stale, &[], None);
    assert_eq!(r.status, 401);
    assert!(msg(&r).starts_with("clock skew of"), "{}", r.body);
    // a signed request whose body was changed on the way (Content-MD5)
    let d = date();
    let auth = e.ops.authorization("POST", "/ops/machines", &d);
    let r = send(
        "/ops/machines",
        &auth,
        &d,
        &[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")],
        Some(br#"{"image":"x"}"#),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body["code"], "BadDigest");
    // every refusal is recorded: six unauthenticated (with the claimed key
    // id), the bad digest after a good signature
    let recs = records(&log);
    assert_eq!(recs.len(), 7, "{recs:#?}");
    assert!(recs
        .iter()
        .all(|r| r.decision == Decision::Deny && r.reason.starts_with("auth:")));
    assert_eq!(recs.iter().filter(|r| !r.authenticated).count(), 6);
    assert_eq!(recs[1].key_id.as_deref(), Some(e.ops.key_id().as_str()));
    assert_eq!(recs[1].caller(), "-");
    let digest = recs.last().unwrap();
    assert!(digest.authenticated && digest.status == 400 && digest.caller_login == "ops");
    assert_eq!(
        recs.iter().filter(|r| r.action == "CreateMachine").count(),
        2
    );
    gate.stop();
}

/// Issue 13 item 4: sub-users authenticate as CloudAPI does (their own
/// keys, from mahi), act for their account, and are never operators.
/// With packages and images kept for a long TTL, what decides who may see
/// what is still read fresh: an account taken out of `operators` stops
/// seeing builder packages and images on its very next request (by UUID
/// too), and a revoked key is refused at once. A package added in PAPI
/// behind the gate's back shows up after a write through the gate; with
/// the cache off, at once.
fn the_cache_never_holds_authorization() {
    const UUID: &str = "5c0e1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f";
    let e = env();
    let store = sim::triton::Store::open(&e.dir.join("triton")).unwrap();
    let key = random_signer("cacheop");
    let set = |groups: &[&str], keys: &[String]| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        sim::triton::mahi::add_account(&store, "cacheop", Some(UUID), &groups, keys, true).unwrap();
    };
    let pubkey = vec![key.public_openssh("cacheop")];
    set(&["operators"], &pubkey);
    let (gate, log) = e.gate_with("cache", &e.endpoints, |c| {
        c.cache_ttl = std::time::Duration::from_secs(3600)
    });
    let op = GateClient::new(&gate.url(), Some(key.clone()));
    let ids = |r: &Reply| -> Vec<String> {
        r.body
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    let pkgs = op.get("/cacheop/packages");
    assert_eq!(pkgs.status, 200, "{}", pkgs.body);
    assert!(ids(&pkgs).contains(&PUBLIC_BUILDER_PKG.to_string()));
    let one = format!("/cacheop/packages/{PUBLIC_BUILDER_PKG}");
    assert_eq!(op.get(&one).status, 200);
    let img = format!("/cacheop/images/{PUBLIC_BUILDER_IMG}");
    assert_eq!(op.get(&img).status, 200);
    assert!(ids(&op.get("/cacheop/images")).contains(&PUBLIC_BUILDER_IMG.to_string()));

    // out of operators: builder gone from the next answers
    set(&[], &pubkey);
    let r = op.get("/cacheop/packages");
    assert_eq!(r.status, 200);
    assert!(
        !ids(&r).contains(&PUBLIC_BUILDER_PKG.to_string()),
        "{}",
        r.body
    );
    assert_eq!(op.get(&one).status, 404);
    assert_eq!(op.get(&img).status, 404);
    assert!(!ids(&op.get("/cacheop/images")).contains(&PUBLIC_BUILDER_IMG.to_string()));
    let recs = records(&log);
    let hid = recs
        .iter()
        .find(|r| r.action == "ListPackages" && r.decision == Decision::Deny)
        .expect("the hidden listing is audited");
    assert!(hid.reason.contains(PUBLIC_BUILDER_PKG), "{}", hid.reason);
    assert!(
        hid.reason.contains("not in group operators"),
        "{}",
        hid.reason
    );

    // back in: shown again (from the same kept answers)
    set(&["operators"], &pubkey);
    assert!(ids(&op.get("/cacheop/packages")).contains(&PUBLIC_BUILDER_PKG.to_string()));
    assert_eq!(op.get(&one).status, 200);

    // the key revoked: refused at once, and audited
    set(&["operators"], &[]);
    let r = op.get("/cacheop/packages");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(records(&log).last().unwrap().status, 401);
    set(&["operators"], &pubkey);

    // a package added behind the gate's back: not seen while kept, seen
    // after a write through the gate (a refused create is one)
    let mut p = package(
        "6d7e8f90-a1b2-4c3d-8e4f-5a6b7c8d9e0f",
        "cacheop-1g",
        Some("joyent"),
        Some(&[UUID]),
    );
    p["max_physical_memory"] = json!(1024);
    block(e.triton.papi.create(&serde_json::from_value(p).unwrap())).unwrap();
    let new = "6d7e8f90-a1b2-4c3d-8e4f-5a6b7c8d9e0f".to_string();
    assert!(!ids(&op.get("/cacheop/packages")).contains(&new));
    assert_eq!(op.post_json("/cacheop/machines", &json!({})).status, 409);
    assert!(ids(&op.get("/cacheop/packages")).contains(&new));
    gate.stop();

    // the cache off: PAPI's changes show at once
    let (gate, _) = e.gate_with("nocache", &e.endpoints, |c| {
        c.cache_ttl = std::time::Duration::ZERO
    });
    let op = GateClient::new(&gate.url(), Some(key));
    assert!(ids(&op.get("/cacheop/packages")).contains(&new));
    block(e.triton.papi.delete(&new)).unwrap();
    assert!(!ids(&op.get("/cacheop/packages")).contains(&new));
    gate.stop();
}

fn sub_users() {
    let e = env();
    let (gate, log) = e.gate("subusers");
    let dev = GateClient::new(&gate.url(), Some(e.cust_sub.clone()));
    let r = dev.get("/cust/packages");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == JOYENT_PKG));
    let r = dev.post_json(
        "/cust/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "name": "dev-web0"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        e.vmapi_vms(CUST_UUID)
            .iter()
            .find(|v| v.alias.as_deref() == Some("dev-web0"))
            .unwrap()
            .brand
            .as_deref(),
        Some("joyent")
    );
    // not for another account
    let r = dev.get("/ops/packages");
    assert_eq!(r.status, 403);
    assert_eq!(msg(&r), "cust/dev1 is not authorized to act as ops");
    // the parent's key under the sub-user's name is not the sub-user's key
    let r = GateClient::new(&gate.url(), Some(e.cust.as_user("dev1"))).get("/cust/packages");
    assert_eq!(r.status, 401);
    // an unknown sub-user
    let r = GateClient::new(&gate.url(), Some(e.cust.as_user("nobody"))).get("/cust/packages");
    assert_eq!(r.status, 401);
    assert!(
        msg(&r).starts_with("Invalid KeyId /cust/users/nobody/keys/"),
        "{}",
        r.body
    );
    // the operator's sub-user gets a customer's answers for builder
    let sub = GateClient::new(&gate.url(), Some(e.sub.clone()));
    let r = sub.get("/ops/packages");
    assert_eq!(r.status, 200);
    assert!(
        !r.body
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["brand"] == "builder"),
        "{}",
        r.body
    );
    let r = sub.get(&format!("/ops/packages/{BUILDER_PKG}"));
    assert_eq!(
        r.body,
        json!({"code": "ResourceNotFound", "message": format!("Package {BUILDER_PKG} does not exist")})
    );
    let r = sub.post_json(
        "/ops/machines",
        &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "brand": "builder"}),
    );
    assert_eq!(
        msg(&r),
        "Unknown brand \"builder\". Brand is restricted to one of [\"bhyve\",\"kvm\"]"
    );
    let r = sub.get("/ops/machines?brand=builder");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!([]), "builder zones are hidden from sub-users");
    let recs = records(&log);
    let a = recs
        .iter()
        .find(|r| r.action == "CreateMachine" && r.decision == Decision::Allow)
        .unwrap();
    assert_eq!(a.caller(), "cust/dev1");
    assert!(recs.iter().any(|r| r.caller_user.as_deref() == Some("sub1")
        && r.reason
            .contains("builder via params; caller ops/sub1 is a sub-user")));
    gate.stop();
}

/// Issue 9 item 3: eight concurrent creates of one name give one machine.
fn alias_races_make_one_machine() {
    let e = env();
    let (gate, log) = e.gate("races");
    for (who, login, body) in [
        (
            e.cust.clone(),
            "cust",
            json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "name": "race-web"}),
        ),
        (
            e.ops.clone(),
            "ops",
            json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "name": "race-builder"}),
        ),
    ] {
        let c = GateClient::new(&gate.url(), Some(who));
        let path = format!("/{login}/machines");
        let replies: Vec<Reply> = block(async {
            let api = c.api.clone().unwrap();
            let calls = (0..8).map(|_| {
                let api = api.clone();
                let (path, body) = (path.clone(), body.clone());
                tokio::spawn(async move { api.request(Method::POST, &path, Some(&body)).await })
            });
            let mut out = Vec::new();
            for h in calls.collect::<Vec<_>>() {
                out.push(h.await.unwrap().unwrap().into());
            }
            out
        });
        let ok = replies.iter().filter(|r| r.status == 201).count();
        assert_eq!(
            ok,
            1,
            "{:?}",
            replies
                .iter()
                .map(|r| (r.status, r.body.clone()))
                .collect::<Vec<_>>()
        );
        for r in replies.iter().filter(|r| r.status != 201) {
            assert_eq!(r.status, 409, "{}", r.body);
            assert_eq!(
                r.body,
                json!({"code": "ValidationFailed", "message": "Invalid VM parameters: Invalid machine name",
                       "errors": [{"field": "alias", "code": "Duplicate", "message": "Already exists for this owner_uuid"}]})
            );
        }
        let owner = if login == "ops" { OPS_UUID } else { CUST_UUID };
        let name = body["name"].as_str().unwrap();
        let live = e
            .vmapi_vms(owner)
            .into_iter()
            .filter(|v| v.alias.as_deref() == Some(name) && !v.is_destroyed())
            .count();
        assert_eq!(live, 1);
    }
    let recs = records(&log);
    assert_eq!(
        recs.iter()
            .filter(|r| r.reason.starts_with("vmapi: alias race-"))
            .count(),
        14
    );
    // VMAPI itself is atomic too (the gate is not the only client)
    let t = &e.triton;
    let vm = |alias: &str| triton_api::CreateVm {
        owner_uuid: Some(CUST_UUID.into()),
        brand: Some("joyent".into()),
        billing_id: Some(JOYENT_PKG.into()),
        image_uuid: Some(PLAIN_IMG.into()),
        alias: Some(alias.into()),
        networks: Some(vec![]),
        ..Default::default()
    };
    let results: Vec<Result<triton_api::JobRef, triton_api::ApiError>> = block(async {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let v = t.vmapi.clone();
                let p = vm("vmapi-race");
                tokio::spawn(async move { v.create(&p).await })
            })
            .collect();
        let mut out = Vec::new();
        for h in hs {
            out.push(h.await.unwrap());
        }
        out
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        let t = r.triton().unwrap();
        assert_eq!(t.code, "ValidationFailed");
        assert_eq!(t.errors[0].field, "alias");
        assert_eq!(t.errors[0].code, "Duplicate");
    }
    gate.stop();
}

/// Issue 9 item 4: bounded records, every refusal recorded, a summary past
/// the unauthenticated rate, caller and account in the table.
///
/// Takes 2-3 s: it waits (2.2 s in all) for rate windows of 600 ms to end,
/// so that their summaries are written; shorter windows would not hold the
/// five 2 MB refusals of a debug build.
fn audit_is_bounded_and_complete() {
    let e = env();
    let (gate, log) = e.gate_with("bounded", &e.endpoints, |c| {
        c.audit_limits.unauthenticated_per_window = 4;
        c.audit_limits.window = std::time::Duration::from_millis(600);
        c.max_body_bytes = 3 * 1024 * 1024;
    });
    let url = gate.url();
    // five unauthenticated 2 MB creates with a huge networks array
    let nets: Vec<String> = (0..60000)
        .map(|i| format!("{:08x}-0000-4000-8000-000000000000", i))
        .collect();
    let big = json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "networks": nets})
        .to_string()
        .into_bytes();
    assert!(big.len() > 2_000_000);
    for _ in 0..5 {
        let r = unsigned(
            &format!("{url}/anyone/machines"),
            Method::POST,
            &[],
            Some(big.clone()),
        );
        assert_eq!(r.status, 401);
    }
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        size < 5 * 4096,
        "audit log grew by {size} bytes for 5 refusals"
    );
    // a signed 2 MB create is read and decided, and its record is bounded
    let cu = GateClient::new(&url, Some(e.cust.clone()));
    let body: Value = serde_json::from_slice(&big).unwrap();
    let r = cu.post_json(
        "/cust/machines",
        &json!({"image": BUILDER_IMG, "package": JOYENT_PKG, "networks": body["networks"]}),
    );
    assert_eq!(r.status, 404);
    let recs = records(&log);
    let last = recs.last().unwrap();
    assert_eq!(last.request["networks"]["count"], 60000);
    assert_eq!(
        last.request["networks"]["sha256"].as_str().unwrap().len(),
        64
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .all(|l| l.len() <= 4096));
    // refused GETs (401, 403), 405, 413, 501 are recorded with who and why
    // (a new rate window first, so the unauthenticated 405 and 501 are
    // written one by one)
    std::thread::sleep(std::time::Duration::from_millis(700));
    let before = records(&log).len();
    assert_eq!(cu.get("/ops/machines").status, 403);
    assert_eq!(
        cu.request(Method::PUT, "/cust/machines/x", None).status,
        405
    );
    assert_eq!(cu.get("/cust/networks").status, 501);
    let huge = vec![b' '; 4 * 1024 * 1024];
    let d = httpdate::fmt_http_date(std::time::SystemTime::now());
    let auth = e.cust.authorization("POST", "/cust/machines", &d);
    let r = unsigned(
        &format!("{url}/cust/machines"),
        Method::POST,
        &[("date", &d), ("authorization", &auth)],
        Some(huge),
    );
    assert_eq!(r.status, 413);
    assert_eq!(
        r.body,
        json!({"code": "RequestEntityTooLarge", "message": "Request body size exceeds 3145728"})
    );
    let new: Vec<AuditRecord> = records(&log)
        .into_iter()
        .skip(before)
        .filter(|r| r.action != "Refusals")
        .collect();
    let statuses: Vec<u16> = new.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 405, 501, 413], "{new:#?}");
    assert_eq!(new[0].caller_login, "cust");
    assert_eq!(new[0].account_login, "ops");
    assert!(
        new[0]
            .reason
            .starts_with("authorize: cust is not authorized"),
        "{}",
        new[0].reason
    );
    assert_eq!(new[1].reason, "route: BadMethod: PUT is not allowed");
    assert_eq!(new[1].key_id.as_deref(), Some(e.cust.key_id().as_str()));
    assert!(new[3].authenticated && new[3].reason.contains("Request body size exceeds"));
    // past the rate: summarized
    let anon = GateClient::new(&url, None);
    let before = records(&log).len();
    for _ in 0..10 {
        assert_eq!(anon.get("/anyone/packages").status, 401);
    }
    // the window of the first five (four written, one counted) may already
    // have ended and been summarized; wait for the current one to end too
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let new: Vec<AuditRecord> = records(&log).into_iter().skip(before).collect();
    let written = new.iter().filter(|r| r.action == "ListPackages").count();
    let summarized: u64 = new
        .iter()
        .filter(|r| r.action == "Refusals")
        .filter_map(|r| r.count)
        .sum();
    assert_eq!(written as u64 + summarized, 10, "{new:#?}");
    let s = new
        .iter()
        .find(|r| r.action == "Refusals")
        .expect("summary record");
    assert_eq!(s.source, "127.0.0.1");
    assert!(s.reason.contains("x 401"), "{}", s.reason);
    // the table view: caller and account
    let o = gate_bin().arg("audit").arg(&log).output().unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let head = out.lines().next().unwrap();
    assert!(
        head.contains("CALLER") && head.contains("ACCOUNT") && head.contains("STATUS"),
        "{head}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" cust ") && l.contains(" ops ") && l.contains(" 403 ")),
        "{out}"
    );
    gate.stop();
}

fn rollout_phase2_passes() {
    let e = env();
    let p = triton_gate::rollout::Phase2 {
        endpoints: e.endpoints.clone(),
        audit_path: e.dir.join("audit-rollout.log"),
        operator_login: "ops".into(),
        operator_key: e.ops.clone(),
        customer_login: "cust".into(),
        customer_key: e.cust.clone(),
        builder_package: BUILDER_PKG.into(),
        builder_image: BUILDER_IMG.into(),
        plain_package: JOYENT_PKG.into(),
        plain_image: PLAIN_IMG.into(),
        network: NET.into(),
        builder_min_platform: None,
    };
    let rep = triton_gate::rollout::run_phase2(&p).unwrap();
    assert!(rep.passed(), "{}", rep.render());
    assert!(rep.checks.len() >= 10);
    assert_eq!(
        rep.machine.as_ref().unwrap().compute_node.as_deref(),
        Some(e.new_uuid.as_str())
    );
    // the checks can fail: a "builder package" that is really joyent
    let mut bad = p.clone();
    bad.builder_package = JOYENT_PKG.into();
    bad.audit_path = e.dir.join("audit-rollout-bad.log");
    let rep = triton_gate::rollout::run_phase2(&bad).unwrap();
    assert!(!rep.passed());
    assert!(
        rep.render()
            .contains("FAIL operator creates a builder machine"),
        "{}",
        rep.render()
    );
}

pub fn gate_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_triton-gate"))
}

fn cli_decide_audit_and_usage() {
    use std::io::Write as _;
    let e = env();
    let req = |caller_op: bool, pkg_brand: &str| {
        json!({"account": {"uuid": OPS_UUID, "login": "ops", "operator": true},
               "caller": {"uuid": if caller_op { OPS_UUID } else { CUST_UUID }, "login": if caller_op { "ops" } else { "cust" }, "operator": caller_op},
               "params": {"image": BUILDER_IMG, "package": BUILDER_PKG},
               "image": {"type": "zone-dataset", "requirements": {"brand": "builder"}},
               "package": {"uuid": BUILDER_PKG, "brand": pkg_brand, "owner_uuids": [OPS_UUID], "active": true}})
    };
    let f = e.dir.join("decide.json");
    std::fs::write(&f, req(true, "builder").to_string()).unwrap();
    let o = gate_bin().arg("decide").arg("-f").arg(&f).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        json!({"ok": true, "brand": "builder", "source": "image"})
    );
    // from stdin; a refusal is an answer too (exit 0)
    let mut c = gate_bin()
        .args(["decide", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(req(false, "builder").to_string().as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        json!({"ok": false, "code": "NotAuthorized", "http_status": 403, "message": "cust is not authorized to act as ops"})
    );
    // unreadable input: exit 1, one line
    std::fs::write(&f, "{not json").unwrap();
    let o = gate_bin().arg("decide").arg("-f").arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("triton-gate: not a decide request: "),
        "{err}"
    );
    let o = gate_bin()
        .args(["decide", "-f", "/nonexistent/x.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = gate_bin().args(["decide"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = gate_bin()
        .args(["resolve", "--package-brand", "builder"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "resolve is gone");
    let o = gate_bin().args(["bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = gate_bin().args(["--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let o = gate_bin()
        .args(["audit", "/nonexistent/audit.log"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    // audit on a log with refusals in it
    let (gate, log) = e.gate("cli");
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    for p in [BUILDER_PKG, PUBLIC_BUILDER_PKG] {
        assert_eq!(cu.get(&format!("/cust/packages/{p}")).status, 404);
    }
    assert_eq!(cu.get("/cust/packages").status, 200);
    gate.stop();
    let n = records(&log).len();
    assert!(n > 0);
    let o = gate_bin().arg("audit").arg(&log).output().unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), n + 1);
    assert!(out.starts_with("TIME"));
    let o = gate_bin()
        .args(["audit", "-j", "--deny"])
        .arg(&log)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), n);
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["decision"], "deny");
    }
    // a closed stdout ends quietly
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' audit '{}' | head -1 >/dev/null",
            env!("CARGO_BIN_EXE_triton-gate"),
            log.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    let o = gate_bin()
        .args(["serve", "--audit", "/tmp/x.log", "--mahi", "http://m"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no papi URL"));
    let o = gate_bin()
        .args([
            "serve",
            "--audit",
            "/tmp/x.log",
            "--builder-min-platform",
            "seven=x",
        ])
        .arg("--endpoints")
        .arg(e.dir.join("triton/endpoints.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "triton-gate: --builder-min-platform seven=x: seven is not an SDC version such as 7.0\n"
    );
    for (ttl, why) in [
        ("soon", "--cache-ttl soon: want seconds, e.g. 2 or 0.5"),
        ("-1", "--cache-ttl -1: want seconds from 0 to 86400"),
    ] {
        let o = gate_bin()
            .args([
                "serve",
                "--audit",
                "/tmp/x.log",
                &format!("--cache-ttl={ttl}"),
            ])
            .arg("--endpoints")
            .arg(e.dir.join("triton/endpoints.json"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!("triton-gate: {why}\n")
        );
    }
}

/// Kills the server if an assertion fails first.
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `triton-gate serve` with `args`; its URL from the first log line.
pub fn serve_bin(
    args: &[&str],
    extra: &[&Path],
) -> (
    Kill,
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    Value,
) {
    use std::io::{BufRead, BufReader};
    let mut cmd = gate_bin();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for p in extra {
        cmd.arg(p);
    }
    let mut child = Kill(cmd.stderr(std::process::Stdio::piped()).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["name"], "triton-gate");
    assert_eq!(first["level"], 30);
    assert_eq!(first["v"], 0);
    let url = first["url"].as_str().unwrap().to_string();
    (child, url, lines, first)
}

fn serve_binary_answers_and_logs_bunyan() {
    let e = env();
    let audit = e.dir.join("audit-bin.log");
    let ep = e.dir.join("triton/endpoints.json");
    let (mut child, url, mut lines, first) = serve_bin(
        &["--cache-ttl", "0.5", "--audit"],
        &[&audit, Path::new("--endpoints"), &ep],
    );
    assert_eq!(first["cache_ttl_ms"], 500, "{first}");
    let cu = GateClient::new(&url, Some(e.cust.clone()));
    let r = cu.get(&format!("/cust/packages/{BUILDER_PKG}"));
    assert_eq!(r.status, 404);
    let rec: Value = lines
        .by_ref()
        .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
        .find(|r| r["msg"] == "handled request")
        .unwrap();
    assert_eq!(rec["status"], 404);
    assert_eq!(rec["level"], 30);
    assert_eq!(records(&audit).len(), 1);
    // SIGTERM stops it cleanly (exit 0)
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = child.0.wait().unwrap();
    assert!(st.success(), "{st:?}");
}

/// Issue 13 item 8: the SMF manifest is valid against illumos'
/// service_bundle DTD, and its start method runs the installed
/// `triton-gate serve` with its config file.
fn smf_manifest() {
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("smf/triton-gate.xml");
    let dtd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/oracle/illumos/service_bundle.dtd.1");
    assert!(dtd.is_file(), "{} missing", dtd.display());
    let o = Command::new("xmllint")
        .arg("--noout")
        .arg("--dtdvalid")
        .arg(&dtd)
        .arg(&m)
        .output()
        .expect("xmllint must be installed (apt-get install libxml2-utils)");
    assert!(
        o.status.success(),
        "xmllint: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&m).unwrap();
    let start = text
        .split("<exec_method")
        .find(|s| s.contains("name='start'") || s.contains("name=\"start\""))
        .expect("a start method");
    let exec = start.split("exec=").nth(1).unwrap();
    let q = exec.chars().next().unwrap();
    let exec: &str = exec[1..].split(q).next().unwrap();
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(argv[0].ends_with("/bin/triton-gate"), "{exec}");
    assert_eq!(argv[1], "serve");
    let i = argv
        .iter()
        .position(|a| *a == "--config")
        .expect("--config");
    let conf_prop = argv[i + 1];
    assert!(
        conf_prop.starts_with("%{") || conf_prop.starts_with('/'),
        "{exec}"
    );
    assert!(text.contains("type='service'") && text.contains("<stability"));
    // the config the manifest names parses and serves
    let e = env();
    let audit = e.dir.join("audit-smf.log");
    let conf = e.dir.join("gate.json");
    std::fs::write(
        &conf,
        json!({"endpoints": e.dir.join("triton/endpoints.json"), "audit": audit, "builder-min-platform": {"7.0": NEW_STAMP}, "builder-networks": [NET], "cache-ttl": 0.25}).to_string(),
    )
    .unwrap();
    let (mut child, url, _lines, first) = serve_bin(&["--config"], &[&conf]);
    assert_eq!(first["cache_ttl_ms"], 250, "{first}");
    let r = GateClient::new(&url, Some(e.cust.clone())).get("/cust/packages");
    assert_eq!(r.status, 200);
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(child.0.wait().unwrap().success());
    std::fs::write(&conf, r#"{"bogus": 1}"#).unwrap();
    let o = gate_bin()
        .arg("serve")
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field `bogus`"));
}

fn man_page_passes_mandoc_lint() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/triton-gate.8");
    let msgs = testkit::mandoc_lint(&page);
    assert!(msgs.is_empty(), "mandoc -T lint: {msgs:#?}");
    let text = std::fs::read_to_string(&page).unwrap();
    for sub in ["serve", "audit", "decide", "scan"] {
        assert!(text.contains(&format!(".Cm {sub}")), "man page lacks {sub}");
    }
    assert!(!text.contains("trust-unreported-brands") && !text.contains(".Cm resolve"));
}

/// The real node-triton CLI against the gate (needs node and npm; installs
/// `triton` into triton-gate/tests/js/node_modules on first run).
///
/// Takes over 3 s: ten `triton` runs, each a node process that loads
/// node-triton (about 0.3 s apiece before it sends anything).
fn real_triton_cli() {
    crate::triton_cli::run();
}

/// Takes over 3 s for the same reason: nine `triton` runs, through two
/// gates.
fn front_of_cloudapi_with_the_real_cli() {
    crate::triton_cli::front();
}
