//! The tests, run in order by `main`.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use triton_gate::audit::{self, AuditRecord, Decision};
use triton_gate::client::{GateClient, Reply};

use crate::env::*;

pub const ALL: &[(&str, fn())] = &[
    (
        "operator_provisions_builder_on_the_capable_node",
        operator_provisions_builder_on_the_capable_node,
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
        "gate_checks_brands_when_cnapi_does_not",
        gate_checks_brands_when_cnapi_does_not,
    ),
    ("authentication_failures", authentication_failures),
    ("rollout_phase2_passes", rollout_phase2_passes),
    ("cli_resolve_audit_and_usage", cli_resolve_audit_and_usage),
    (
        "serve_binary_answers_and_logs_bunyan",
        serve_binary_answers_and_logs_bunyan,
    ),
    ("man_page_passes_mandoc_lint", man_page_passes_mandoc_lint),
    ("real_triton_cli", real_triton_cli),
];

fn records(p: &Path) -> Vec<AuditRecord> {
    audit::read(p).expect("audit log")
}

fn msg(r: &Reply) -> String {
    r.body["message"].as_str().unwrap_or_default().to_string()
}

fn operator_provisions_builder_on_the_capable_node() {
    let e = env();
    let (gate, log) = e.gate("operator");
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let before_old = e.vmadm_list(&e.old);

    // the operator sees its builder package, by list and by UUID and by name
    let r = op.get("/ops/packages").unwrap();
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
    let r = op.get(&format!("/ops/packages/{BUILDER_PKG}")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["brand"], "builder");
    assert_eq!(r.body["memory"], 1024);
    assert_eq!(
        op.get("/my/packages/builder-1g").unwrap().body["id"],
        BUILDER_PKG
    );
    let r = op.get(&format!("/ops/images/{BUILDER_IMG}")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["requirements"]["brand"], "builder");

    let r = op
        .post_json(
            "/ops/machines",
            &json!({"image": BUILDER_IMG, "package": BUILDER_PKG, "name": "build0", "metadata": {"role": "ci"}}),
        )
        .unwrap();
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
    let r = op.get(&format!("/ops/machines/{vm}")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["compute_node"], e.new_uuid.as_str());
    let r = op.get("/ops/machines?brand=builder").unwrap();
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == vm.as_str()));
    // the customer cannot see it
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let r = cu.get(&format!("/cust/machines/{vm}")).unwrap();
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
    assert_eq!(a.account_login, "ops");
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

fn customer_is_refused_by_every_path() {
    let e = env();
    let (gate, log) = e.gate("customer");
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let vms_before = e.all_vms();
    let cust_vms_before = e.vmapi_vms(CUST_UUID).len();

    let create = |body: Value| cu.post_json("/cust/machines", &body).unwrap();
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
    let r = cu.get("/cust/packages").unwrap();
    assert_eq!(r.status, 200);
    let list = r.body.as_array().unwrap();
    assert!(list.iter().any(|p| p["id"] == JOYENT_PKG), "{list:?}");
    assert!(!list.iter().any(|p| p["brand"] == "builder"), "{list:?}");
    expect_denies += 1;
    let r = cu.get("/cust/packages?brand=builder").unwrap();
    assert_eq!(r.body, json!([]));
    expect_denies += 1;
    for p in [BUILDER_PKG, PUBLIC_BUILDER_PKG, CUST_BUILDER_PKG] {
        let r = cu.get(&format!("/cust/packages/{p}")).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body,
            json!({"code": "ResourceNotFound", "message": format!("Package {p} does not exist")})
        );
        expect_denies += 1;
    }
    let r = cu.get("/cust/packages/builder-cust").unwrap();
    assert_eq!(r.status, 404);
    expect_denies += 1;
    let r = cu
        .get(&format!("/cust/images/{PUBLIC_BUILDER_IMG}"))
        .unwrap();
    assert_eq!(r.status, 404);
    expect_denies += 1;
    let r = cu.get("/cust/images").unwrap();
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
    let r = cu
        .post_json(
            "/my/machines",
            &json!({"image": PLAIN_IMG, "package": "joyent-1g", "name": "web0"}),
        )
        .unwrap();
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
    let r = cu
        .post_json("/cust/machines", &json!({"package": JOYENT_PKG}))
        .unwrap();
    assert_eq!(
        r.body,
        json!({"code": "MissingParameter", "message": "image must be specified"})
    );
    let r = cu
        .post_json("/cust/machines", &json!({"image": PLAIN_IMG}))
        .unwrap();
    assert_eq!(
        r.body,
        json!({"code": "MissingParameter", "message": "package must be specified"})
    );
    let r = cu
        .post_json(
            "/cust/machines",
            &json!({"image": "base-64", "package": JOYENT_PKG}),
        )
        .unwrap();
    assert_eq!(msg(&r), "base-64 is not a valid image");
    let r = cu
        .post_json(
            "/cust/machines",
            &json!({"image": PLAIN_IMG, "package": INACTIVE_PKG}),
        )
        .unwrap();
    assert_eq!(
        msg(&r),
        format!("{INACTIVE_PKG} is inactive. Must use an active package")
    );
    let r = cu
        .post_json(
            "/cust/machines",
            &json!({"image": PLAIN_IMG, "package": "nope"}),
        )
        .unwrap();
    assert_eq!(msg(&r), "nope is not a valid package");
    let r = cu
        .post_json(
            "/cust/machines",
            &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "brand": "bhyve"}),
        )
        .unwrap();
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
    let r = op
        .post_json(
            "/ops/machines",
            &json!({"image": PLAIN_IMG, "package": JOYENT_PKG, "brand": "builder"}),
        )
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(
        msg(&r),
        "Package requires brand \"joyent\", but brand \"builder\" was selected"
    );
    // builder package with an image that is not a zone-dataset image is refused
    // (a builder image with a joyent package, too)
    let r = op
        .post_json(
            "/ops/machines",
            &json!({"image": BUILDER_IMG, "package": JOYENT_PKG}),
        )
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(
        msg(&r),
        "Package requires brand \"joyent\", but brand \"builder\" was selected"
    );
    // acting for a customer: builder hidden, since builder zones are never customer-owned
    let r = op
        .post_json(
            "/cust/machines",
            &json!({"image": PLAIN_IMG, "package": PUBLIC_BUILDER_PKG}),
        )
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    // a sub-user of the operator account is not an operator
    let sub = GateClient::new(&gate.url(), Some(e.sub.clone()));
    let r = sub
        .post_json(
            "/ops/machines",
            &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["code"], "NotAuthorized");
    // a customer cannot act for the operator
    let cu = GateClient::new(&gate.url(), Some(e.cust.clone()));
    let r = cu.get("/ops/packages").unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        json!({"code": "NotAuthorized", "message": "cust is not authorized to act as ops"})
    );
    let r = cu.get("/nobody/packages").unwrap();
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
        creates[3].reason.starts_with("authorize:"),
        "{:?}",
        creates[3]
    );
    gate.stop();
}

fn no_capable_node_means_no_zone() {
    let e = env();
    let cnapi = &e.urls.cnapi;
    let set = |reserved: bool| {
        let r = sim::triton::client::post_json(
            &format!("{cnapi}/servers/{}", e.new_uuid),
            &json!({"reserved": reserved}),
        )
        .unwrap();
        assert_eq!(r.status, 204);
    };
    set(true);
    let (gate, log) = e.gate("nocap");
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let before = e.all_vms();
    let r = op
        .post_json(
            "/ops/machines",
            &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
        )
        .unwrap();
    set(false);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["code"], "InsufficientCapacity");
    assert_eq!(
        msg(&r),
        format!("Insufficient capacity in datacenter to provision machine: No compute resources available: Server platform {OLD_STAMP} does not provide brand \"builder\"")
    );
    assert_eq!(e.all_vms(), before);
    let recs = records(&log);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].decision, Decision::Deny);
    assert!(recs[0].reason.starts_with("placement:"), "{:?}", recs[0]);
    assert_eq!(recs[0].brand.as_deref(), Some("builder"));
    gate.stop();
}

/// Upstream DAPI does not look at brands: with CNAPI's brand filter off
/// and only the old node free, CNAPI picks it, and the gate refuses.
fn gate_checks_brands_when_cnapi_does_not() {
    let e = env();
    let (sim2, urls) = e.unfiltered_triton();
    let r = sim::triton::client::post_json(
        &format!("{}/servers/{}", urls.cnapi, e.new_uuid),
        &json!({"reserved": true}),
    )
    .unwrap();
    assert_eq!(r.status, 204);
    // CNAPI alone would place a builder VM on the old platform
    let r = sim::triton::client::post_json(
        &format!("{}/allocate", urls.cnapi),
        &json!({"vm": {"owner_uuid": OPS_UUID, "ram": 1024, "brand": "builder"}, "image": {}, "nic_tags": []}),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["server"]["uuid"], e.old_uuid.as_str());

    let audit = e.dir.join("audit-unfiltered.log");
    let g = triton_gate::Gate::new(triton_gate::GateConfig::new(urls, audit.clone()));
    let gate = triton_gate::server::start(g, "127.0.0.1:0").unwrap();
    let op = GateClient::new(&gate.url(), Some(e.ops.clone()));
    let before = e.all_vms();
    let r = op
        .post_json(
            "/ops/machines",
            &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
        )
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"code": "InsufficientCapacity", "message": "Insufficient capacity in datacenter to provision machine: no compute node with brand \"builder\""})
    );
    assert_eq!(e.all_vms(), before);
    let recs = records(&audit);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].decision, Decision::Deny);
    assert!(
        recs[0].reason.contains(&format!(
            "server {} (platform {OLD_STAMP}) does not provide brand builder",
            e.old_uuid
        )),
        "{:?}",
        recs[0]
    );
    // an ordinary joyent zone may still go to the old node
    let r = op
        .post_json(
            "/ops/machines",
            &json!({"image": PLAIN_IMG, "package": JOYENT_PKG}),
        )
        .unwrap();
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
    let r = anon.get("/ops/packages").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"code": "InvalidCredentials", "message": "You must make authenticated requests to use CloudAPI"})
    );
    // the customer's key claiming to be the operator's
    let mut forged = e.cust.clone();
    forged.key_id = e.ops.key_id.clone();
    let r = GateClient::new(&url, Some(forged))
        .get("/ops/packages")
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        msg(&r),
        "The signature we calculated does not match the one you sent"
    );
    // the customer's key under the operator's login: no such key there
    let mut wrong = e.cust.clone();
    wrong.key_id = wrong.key_id.replace("/cust/", "/ops/");
    let r = GateClient::new(&url, Some(wrong.clone()))
        .get("/ops/packages")
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        msg(&r),
        format!("Invalid KeyId {} in authorization header", wrong.key_id)
    );
    // an unknown login
    let mut ghost = e.cust.clone();
    ghost.key_id = ghost.key_id.replace("/cust/", "/ghost/");
    assert_eq!(
        GateClient::new(&url, Some(ghost))
            .get("/ghost/packages")
            .unwrap()
            .status,
        401
    );
    // a creation attempt without credentials is audited
    let r = anon
        .post_json(
            "/ops/machines",
            &json!({"image": BUILDER_IMG, "package": BUILDER_PKG}),
        )
        .unwrap();
    assert_eq!(r.status, 401);
    // a stale Date, by hand
    let date = httpdate::fmt_http_date(
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
    let auth = e.ops.authorization("GET", "/ops/packages", &date);
    let r = sim::triton::client::request(
        "GET",
        &format!("{url}/ops/packages"),
        None,
        &[("Date", date.as_str()), ("Authorization", auth.as_str())],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("clock skew of"),
        "{}",
        r.text()
    );
    // a signed request whose body was changed on the way (Content-MD5)
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let auth = e.ops.authorization("POST", "/ops/machines", &date);
    let r = sim::triton::client::request(
        "POST",
        &format!("{url}/ops/machines"),
        Some(("application/json", br#"{"image":"x"}"#)),
        &[
            ("Date", date.as_str()),
            ("Authorization", auth.as_str()),
            ("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA=="),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "BadDigest");
    let recs = records(&log);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert!(recs
        .iter()
        .all(|r| r.decision == Decision::Deny && r.reason.starts_with("auth:")));
    gate.stop();
}

fn rollout_phase2_passes() {
    let e = env();
    let p = triton_gate::rollout::Phase2 {
        urls: e.urls.clone(),
        audit_path: e.dir.join("audit-rollout.log"),
        operator_login: "ops".into(),
        operator_key: e.ops.clone(),
        customer_login: "cust".into(),
        customer_key: e.cust.clone(),
        builder_package: BUILDER_PKG.into(),
        builder_image: BUILDER_IMG.into(),
        plain_package: JOYENT_PKG.into(),
        plain_image: PLAIN_IMG.into(),
    };
    let rep = triton_gate::rollout::run_phase2(&p).unwrap();
    assert!(rep.passed(), "{}", rep.render());
    assert!(rep.checks.len() >= 10);
    assert_eq!(
        rep.machine.as_ref().unwrap()["compute_node"],
        e.new_uuid.as_str()
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

fn gate_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_triton-gate"))
}

fn cli_resolve_audit_and_usage() {
    let o = gate_bin()
        .args(["resolve", "--package-brand", "builder"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "triton-gate: InvalidArgument: Package requires unknown brand \"builder\"\n"
    );
    let o = gate_bin()
        .args(["resolve", "--package-brand", "builder", "--operator"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "builder (package)\n");
    let o = gate_bin()
        .args(["resolve", "--image-type", "zvol"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "kvm (default_hvm)\n");
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
    // audit on a log written by an earlier test (or an empty one)
    let e = env();
    let log = e.dir.join("audit-customer.log");
    if log.exists() {
        let n = records(&log).len();
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
    }
    let o = gate_bin()
        .args(["serve", "--audit", "/tmp/x.log", "--mahi", "http://m"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no papi URL"));
}

fn serve_binary_answers_and_logs_bunyan() {
    use std::io::{BufRead, BufReader};
    let e = env();
    let audit = e.dir.join("audit-bin.log");
    /// Kills the server if an assertion fails first.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        gate_bin()
            .args(["serve", "--listen", "127.0.0.1:0", "--endpoints"])
            .arg(e.dir.join("triton/endpoints.json"))
            .arg("--audit")
            .arg(&audit)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["name"], "triton-gate");
    assert_eq!(first["level"], 30);
    assert_eq!(first["v"], 0);
    let url = first["url"].as_str().unwrap().to_string();
    let cu = GateClient::new(&url, Some(e.cust.clone()));
    let r = cu.get(&format!("/cust/packages/{BUILDER_PKG}")).unwrap();
    assert_eq!(r.status, 404);
    let rec: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(rec["msg"], "handled request");
    assert_eq!(rec["status"], 404);
    assert_eq!(records(&audit).len(), 1);
    // SIGTERM stops it cleanly (exit 0)
    let pid = child.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let st = child.0.wait().unwrap();
    assert!(st.success(), "{st:?}");
}

fn man_page_passes_mandoc_lint() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/triton-gate.8");
    let msgs = testkit::mandoc_lint(&page);
    assert!(msgs.is_empty(), "mandoc -T lint: {msgs:#?}");
    let text = std::fs::read_to_string(&page).unwrap();
    for sub in ["serve", "audit", "resolve"] {
        assert!(text.contains(&format!(".Cm {sub}")), "man page lacks {sub}");
    }
}

/// The real node-triton CLI against the gate (needs node and npm; installs
/// `triton` into triton-gate/tests/js/node_modules on first run).
fn real_triton_cli() {
    crate::triton_cli::run();
}
