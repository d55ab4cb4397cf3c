//! Attacks on the create plan: payload strings that try to add zonecfg
//! resources (the builder devices above all) or run shell commands.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};

use crate::create::{self, Runtime};
use crate::validate::tests::{host, IMG};
use crate::validate::{self, Invalid};
use crate::Table;
use sim_node::zonecfg;

fn rt() -> Runtime {
    Runtime {
        uuid: "11111111-2222-4333-8444-555555555555".into(),
        create_timestamp: "2026-01-01T00:00:00.000Z".into(),
        transition_expire: "1767225900000".into(),
        macs: vec![],
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The attack from the issue: fs_allowed closes its quote and adds a
/// device resource for /dev/viona.
const ATTACK: &str = "ufs\"\nadd device; set match=/dev/viona; end\nadd attr; set name=x; set type=string; set value=\"y";

#[test]
fn fs_allowed_injection_is_a_bad_value_and_no_plan() {
    let p = obj(json!({"brand": "joyent", "image_uuid": IMG, "fs_allowed": ATTACK}));
    match validate::validate(Table::get(), Some("joyent"), "create", &p, &host()) {
        Err(Invalid::Lists { bad_values, .. }) => assert_eq!(bad_values, ["fs_allowed"]),
        other => panic!("validate accepted the attack: {other:?}"),
    }
    let e = create::plan(Table::get(), &p, &host(), &rt()).unwrap_err();
    assert_eq!(e.0, "Invalid value(s) for: fs_allowed");
}

#[test]
fn every_string_property_that_reaches_zonecfg_refuses_a_quote_and_newline() {
    for (k, v) in [
        (
            "limit_priv",
            json!("default\"\nadd device; set match=/dev/vmm*; end"),
        ),
        (
            "hostname",
            json!("h\"\nadd device; set match=/dev/viona; end"),
        ),
        (
            "dns_domain",
            json!("d\nadd device; set match=/dev/viona; end"),
        ),
        (
            "billing_id",
            json!("b\"\nadd device; set match=/dev/viona; end"),
        ),
        ("package_name", json!("p\nEOF\nid")),
        ("fs_allowed", json!(["ufs", "x\"y"])),
        ("limit_priv", json!(["default", "a\nb"])),
    ] {
        let p = obj(json!({"brand": "joyent", "image_uuid": IMG, k: v}));
        let e = create::plan(Table::get(), &p, &host(), &rt()).unwrap_err();
        assert_eq!(e.0, format!("Invalid value(s) for: {k}"), "{k}");
    }
    for (k, v) in [
        ("nic_tag", "admin\nadd device; set match=/dev/viona; end"),
        ("interface", "net0\"\nadd device"),
        ("ip", "10.0.0.2\"; add device; set match=/dev/viona"),
        ("gateway", "10.0.0.1\n"),
        ("model", "virtio;x"),
    ] {
        let p = obj(json!({"brand": "joyent", "image_uuid": IMG,
            "nics": [{"nic_tag": "admin", "ip": "dhcp", k: v}]}));
        let e = create::plan(Table::get(), &p, &host(), &rt()).unwrap_err();
        assert_eq!(e.0, format!("Invalid value(s) for: nics.*.{k}"), "{k}");
    }
    for (k, v) in [
        ("source", json!("/a\"\nadd device")),
        ("target", json!("rel/path")),
        ("type", json!("lofs; add device")),
        ("options", json!(["ro", "x\ny"])),
    ] {
        let p = obj(json!({"brand": "joyent", "image_uuid": IMG,
            "filesystems": [{"source": "/a", "target": "/b", "type": "lofs", k: v}]}));
        let e = create::plan(Table::get(), &p, &host(), &rt()).unwrap_err();
        assert_eq!(
            e.0,
            format!("Invalid value(s) for: filesystems.*.{k}"),
            "{k}"
        );
    }
}

#[test]
fn render_refuses_what_validation_would_have_caught() {
    // defence in depth: a payload that skipped validation still cannot
    // produce text with an injected line
    let p = obj(
        json!({"brand": "joyent", "uuid": "11111111-2222-4333-8444-555555555555",
        "zonename": "z", "zpool": "zones", "fs_allowed": ATTACK}),
    );
    let e = create::render_zonecfg(Table::get(), &p, &rt()).unwrap_err();
    assert_eq!(e.0, "Invalid value for fs_allowed: contains a double quote");
    let p = obj(json!({"brand": "joyent", "uuid": "u", "zonename": "../../x", "zpool": "zones"}));
    assert!(create::render_zonecfg(Table::get(), &p, &rt()).is_err());
}

#[test]
fn many_nics_without_macs_get_distinct_macs() {
    let nics: Vec<Value> = (0..40)
        .map(|_| json!({"nic_tag": "admin", "ip": "dhcp"}))
        .collect();
    let p = obj(json!({"brand": "joyent", "image_uuid": IMG, "nics": nics}));
    let plan = create::plan(Table::get(), &p, &host(), &rt()).unwrap();
    let macs: std::collections::BTreeSet<&str> = plan.payload["add_nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["mac"].as_str().unwrap())
        .collect();
    assert_eq!(macs.len(), 40);
}

#[test]
fn errors_are_one_bounded_printable_line() {
    let big = format!("b\0r\nand{}", "x".repeat(1 << 20));
    let p = obj(json!({"brand": big, "image_uuid": IMG}));
    let e = create::plan(Table::get(), &p, &host(), &rt())
        .unwrap_err()
        .0;
    assert!(e.starts_with("Unsupported brand: b\\u{0}r\\u{a}and"), "{e}");
    assert!(e.len() <= 4 * create::MAX_ERROR_CHARS && !e.contains(['\n', '\0']));
    let nic = json!({"nic_tag": "admin", "ip": "10.0.0.2", "x": "y".repeat(100_000)});
    let p = obj(json!({"brand": "joyent", "image_uuid": IMG, "nics": [nic]}));
    let e = create::plan(Table::get(), &p, &host(), &rt())
        .unwrap_err()
        .0;
    assert!(e.starts_with("Missing .netmask option for NIC: {"), "{e}");
    assert!(e.chars().count() <= create::MAX_ERROR_CHARS + 3);
}

/// Strings an attacker would try: quotes, line breaks, here-document
/// ends, NUL, `;`, shell syntax, unicode, and plain good values.
fn nasty() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("\"".to_string()),
        Just("\n".to_string()),
        Just("\r".to_string()),
        Just("EOF".to_string()),
        Just("\nEOF\n".to_string()),
        Just("\0".to_string()),
        Just(";".to_string()),
        Just("'".to_string()),
        Just("$(touch /tmp/pwned)".to_string()),
        Just("`id`".to_string()),
        Just("add device; set match=/dev/viona; end".to_string()),
        Just("add dataset; set name=zones/x; end".to_string()),
        Just("é漢🦀".to_string()),
        Just(" ".to_string()),
        Just(",".to_string()),
        "[a-z0-9_.-]{1,8}",
    ];
    proptest::collection::vec(atoms, 1..6).prop_map(|v| v.concat())
}

const FIELDS: usize = 11;

/// A good payload with zero to three of its string fields replaced by
/// [`nasty`] ones.
fn payload() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::collection::vec((0..FIELDS, nasty()), 0..4),
        0usize..3,
        0usize..3,
    )
        .prop_map(|(bad, nn, nf)| {
            let mut f: Vec<String> = [
                "ufs,pcfs", "default,proc_clock_highres", "build01", "example.com", "admin",
                "10.0.0.2", "/data/src", "ro", "my alias", "bill-1", "mnt",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for (i, v) in bad {
                f[i] = v;
            }
            let nics: Vec<Value> = (0..nn)
                .map(|i| {
                    let ip = if i == 0 { f[5].clone() } else { "dhcp".into() };
                    json!({"nic_tag": f[4], "ip": ip, "netmask": "255.255.255.0"})
                })
                .collect();
            let fss: Vec<Value> = (0..nf)
                .map(|_| json!({"source": f[6], "target": format!("/{}", f[10]), "type": "lofs", "options": [f[7]]}))
                .collect();
            obj(json!({
                "brand": "joyent", "image_uuid": IMG, "fs_allowed": f[0],
                "limit_priv": f[1], "hostname": f[2], "dns_domain": f[3],
                "alias": f[8], "billing_id": f[9], "nics": nics,
                "filesystems": fss, "delegate_dataset": true,
            }))
        })
}

/// The elements a zone made from `p` may have: no device resource ever,
/// one network per nic, one filesystem per filesystem, one dataset (the
/// delegated one), and only the attrs createZone writes.
fn check_zone(p: &Map<String, Value>, plan: &create::Plan) {
    let (z, _) = zonecfg::apply(None, &plan.zonename, &plan.zonecfg)
        .unwrap_or_else(|e| panic!("rendered text does not parse: {e}\n{}", plan.zonecfg));
    let count = |name: &str| {
        z.root()
            .children
            .iter()
            .filter(|n| matches!(n, brand::xml::Node::Element(e) if e.name == name))
            .count()
    };
    assert_eq!(count("device"), 0, "{}", plan.zonecfg);
    assert_eq!(count("dataset"), 0, "{}", plan.zonecfg);
    let n = |k: &str| p.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    assert_eq!(count("network"), n("nics"), "{}", plan.zonecfg);
    assert_eq!(count("filesystem"), n("filesystems"), "{}", plan.zonecfg);
    let allowed = [
        "provisioning",
        "vm-version",
        "create-timestamp",
        "transition",
        "dataset-uuid",
        "billing-id",
        "owner-uuid",
        "tmpfs",
        "hostname",
        "dns-domain",
        "alias",
    ];
    for a in z.attrs() {
        assert!(
            allowed.contains(&a.name.as_str()),
            "injected attr {}",
            a.name
        );
    }
    for e in z.root().children.iter() {
        if let brand::xml::Node::Element(e) = e {
            assert!(
                !["device", "rctl-injected"].contains(&e.name.as_str()),
                "{}",
                e.name
            );
        }
    }
    if let Some(fs) = p.get("fs_allowed").and_then(Value::as_str) {
        let want: Vec<&str> = fs.split(',').filter(|x| !x.is_empty()).collect();
        assert_eq!(z.get("fs-allowed"), Some(want.join(",").as_str()));
    }
    // the delegated dataset step adds exactly one dataset
    let step = plan
        .steps
        .iter()
        .find(|s| s.starts_with("zonecfg -u "))
        .unwrap();
    let inner = step.splitn(4, ' ').nth(3).unwrap();
    let inner = inner.trim_matches('\'');
    let (z2, _) = zonecfg::apply(Some(z), &plan.zonename, inner).unwrap();
    assert_eq!(z2.datasets().len(), 1);
}

/// Run the plan's script with `sh`, every command a stand-in that records
/// its argv and stdin: the script must call exactly the planned commands,
/// and zonecfg must read exactly the planned text.
fn run_script(plan: &create::Plan) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("log");
    for tool in ["zonecfg", "zoneadm", "zfs"] {
        let f = bin.join(tool);
        std::fs::write(
            &f,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >> '{0}'\nif [ \"$1\" = -z ] && [ $# -eq 2 ]; then cat >> '{0}'; fi\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(plan.script())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_to_string(&log).unwrap();
    let mut expect = format!(
        "{}/zonecfg -z {}\n{}",
        bin.display(),
        plan.zonename,
        plan.zonecfg
    );
    for st in plan.steps.iter().filter(|s| !s.starts_with('#')) {
        let argv = shell_words(st);
        expect.push_str(&format!("{}/{}\n", bin.display(), argv.join(" ")));
    }
    assert_eq!(got, expect);
    // nothing else ran: no file appeared beside the log
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// Split a planned step as sh would (plain words and '...' only).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut inq = false;
    let mut started = false;
    for c in s.chars() {
        match c {
            '\'' => {
                inq = !inq;
                started = true;
            }
            ' ' if !inq => {
                if started {
                    out.push(std::mem::take(&mut cur));
                }
                started = false;
            }
            '\\' if !inq => {}
            c => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(cur);
    }
    out
}

#[test]
fn fuzzed_payloads_never_inject_a_resource() {
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 400,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let planned = std::cell::Cell::new(0u32);
    runner
        .run(&payload(), |p| {
            let v = validate::validate(Table::get(), Some("joyent"), "create", &p, &host());
            match create::plan(Table::get(), &p, &host(), &rt()) {
                Ok(plan) => {
                    // what validation passed is what create planned
                    let valid = match &v {
                        Ok(_) => true,
                        Err(Invalid::Lists { bad_values, .. }) => bad_values.is_empty(),
                        Err(_) => false,
                    };
                    prop_assert!(valid, "validate refused what create planned: {:?}", v);
                    check_zone(&p, &plan);
                    if planned.get() < 40 {
                        run_script(&plan);
                    }
                    planned.set(planned.get() + 1);
                }
                Err(e) => {
                    prop_assert!(
                        !e.0.contains(['\n', '\0'])
                            && e.0.chars().count() <= create::MAX_ERROR_CHARS + 3
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    // the generator must also make plans, or the test shows nothing
    assert!(
        planned.get() >= 100,
        "only {} payloads planned",
        planned.get()
    );
}
