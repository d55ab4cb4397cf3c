//! Integration tests for vmadm-ext: the table against the oracle, the
//! vmload fixtures, the zonecfg golden, and the CLI on generated node roots.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Map, Value};
use vmadm_ext::create::{self, Runtime};
use vmadm_ext::host::NodeFacts;
use vmadm_ext::Table;

const U: &str = "4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f";
const IMG: &str = "e44ed3e0-910b-11ed-a5d4-00151714048c";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
fn oracle() -> PathBuf {
    manifest_dir().join("../../shared/oracle/vmadm")
}
fn golden(name: &str) -> String {
    fs::read_to_string(manifest_dir().join("tests/golden").join(name)).unwrap()
}
fn builder_xml() -> String {
    golden("builder-zone.xml")
}

// ---------------------------------------------------------------- table

#[test]
fn table_matches_oracle_for_every_brand_and_property() {
    let o: Value =
        serde_json::from_str(&fs::read_to_string(oracle().join("proptable.json")).unwrap())
            .unwrap();
    let t = Table::get();
    let brands: Vec<&str> = o["brands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert_eq!(t.brand_names().collect::<Vec<_>>(), brands);
    let mut compared = 0;
    for (name, p) in o["properties"].as_object().unwrap() {
        let mine = t
            .property(name)
            .unwrap_or_else(|| panic!("property {name} missing"));
        let pl = &p["payload"];
        assert_eq!(mine.ptype, pl["type"].as_str(), "{name}: type");
        for b in &brands {
            let want = |k: &str| -> Vec<String> {
                pl[k][b]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            };
            assert_eq!(
                t.allowed_actions(b, name),
                want("allowed"),
                "{name}: allowed for {b}"
            );
            let req = t.required_actions(b, name);
            assert_eq!(req, want("required"), "{name}: required for {b}");
            compared += 1;
        }
        assert_eq!(mine.check_as, pl["check_as"].as_str(), "{name}: check_as");
        assert_eq!(
            mine.default_value().as_ref(),
            pl.get("default"),
            "{name}: default"
        );
        assert_eq!(mine.min, pl["min"].as_f64(), "{name}: min");
        assert_eq!(mine.max, pl["max"].as_f64(), "{name}: max");
        assert_eq!(
            mine.keep_zero,
            pl["keep_zero"].as_bool().unwrap_or(false),
            "{name}: keep_zero"
        );
        assert_eq!(
            mine.validator.map(|v| format!("utils.{v}")),
            pl["valueValidator"].as_str().map(str::to_string),
            "{name}: validator"
        );
        assert_eq!(mine.zonexml, p["zonexml"].as_str(), "{name}: zonexml");
        assert_eq!(
            mine.load.map(|v| format!("utils.{v}")),
            p["loadValueTranslator"].as_str().map(str::to_string)
        );
        assert_eq!(
            mine.ignore,
            p["ignore"].as_bool().unwrap_or(false),
            "{name}: ignore"
        );
        assert_eq!(
            mine.flattenable,
            p["flattenable"].as_str(),
            "{name}: flattenable"
        );
    }
    assert_eq!(
        t.properties.len(),
        o["properties"].as_object().unwrap().len()
    );
    assert!(compared > 1000);
    for b in &brands {
        let br = t.brand(b).unwrap();
        assert_eq!(
            Value::Object(br.features().clone()),
            o["brand_options"][b]["features"],
            "{b}: features"
        );
        assert_eq!(br.vm_type(), o["brand_type"][b].as_str().unwrap());
        assert_eq!(
            br.hvm,
            o["hvm_brands"].as_array().unwrap().contains(&json!(b))
        );
        assert_eq!(
            serde_json::to_value(t.allowed_properties(b)).unwrap(),
            o["derived"]["allowed_properties"][b],
            "{b}"
        );
        assert_eq!(
            serde_json::to_value(t.required_properties(b)).unwrap(),
            o["derived"]["required_properties"][b],
            "{b}"
        );
    }
    // builder allows exactly what joyent allows
    assert_eq!(
        t.allowed_properties("builder"),
        t.allowed_properties("joyent")
    );
    // the XML map vmload uses
    let xml = t.xml_properties();
    let oxml = o["derived"]["xml_properties"].as_object().unwrap();
    assert_eq!(xml.len(), oxml.len());
    for (k, v) in oxml {
        let m = &xml[k];
        assert_eq!(t.xml_property(k), Some(m), "{k}");
        assert_eq!(m.property, v["property"].as_str().unwrap(), "{k}");
        assert_eq!(m.vmobj_key, v["vmobj_key"].as_str().unwrap(), "{k}");
        assert_eq!(m.ignore, v["ignore"].as_bool().unwrap(), "{k}");
        assert_eq!(
            m.load.map(|l| format!("utils.{l}")),
            v["loadValueTranslator"].as_str().map(str::to_string)
        );
    }
    // vmadm list columns
    for (k, f) in o["vmadm_list"]["list_fields"].as_object().unwrap() {
        let lf = t.list_field(k).unwrap();
        assert_eq!(lf.header, f["header"].as_str().unwrap());
        assert_eq!(lf.width as u64, f["width"].as_u64().unwrap());
    }
    assert_eq!(
        t.list_fields.len(),
        o["vmadm_list"]["list_fields"].as_object().unwrap().len()
    );
    assert_eq!(
        t.list_default_order,
        o["vmadm_list"]["default_order"].as_str().unwrap()
    );
    assert_eq!(
        t.list_default_sort,
        o["vmadm_list"]["default_sort"].as_str().unwrap()
    );
    assert_eq!(
        t.defaults()["compression_types"],
        o["vm_js"]["COMPRESSION_TYPES"]
    );
}

// ---------------------------------------------------------------- vmload

/// nodeunit's deepEqual, as vmadm's test uses it: a `null` in the expected
/// file stands for a key whose value is `undefined` (absent in JSON).
fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), drop_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(drop_nulls).collect()),
        x => x.clone(),
    }
}

#[test]
fn vmload_xml_fixtures_load_as_expected() {
    let dir = oracle().join("vmload-xml");
    let mut seen = 0;
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        if p.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let text = fs::read_to_string(&p).unwrap();
        let fail = p.with_extension("fail");
        let got = vmadm_ext::load::vmobj_from_xml(&text);
        if fail.exists() {
            let want: Value = serde_json::from_str(&fs::read_to_string(&fail).unwrap()).unwrap();
            assert_eq!(got.unwrap_err().to_json(), want, "{}", p.display());
        } else {
            let want: Value =
                serde_json::from_str(&fs::read_to_string(p.with_extension("json")).unwrap())
                    .unwrap();
            let got = Value::Object(got.unwrap_or_else(|e| panic!("{}: {e}", p.display())));
            assert_eq!(got, drop_nulls(&want), "{}", p.display());
        }
        seen += 1;
    }
    assert_eq!(seen, 7, "six fixtures and garbage.xml");
}

// ---------------------------------------------------------------- zonecfg golden

struct FakeHost;
impl NodeFacts for FakeHost {
    fn pools(&self) -> Vec<String> {
        vec!["zones".into()]
    }
    fn image_type(&self, _pool: &str, uuid: &str) -> Result<String, String> {
        if uuid == IMG {
            Ok("zone-dataset".into())
        } else {
            Err("not installed".into())
        }
    }
}

fn rfd_payload() -> Map<String, Value> {
    json!({"alias":"cloud-image-builder","hostname":"cloud-image-builder","brand":"builder","limit_priv":"default,proc_clock_highres,sys_dl_config","max_physical_memory":8192,"tmpfs":8192,"fs_allowed":"ufs,pcfs,tmpfs","cpu_cap":600,"image_uuid":IMG,"zfs_root_compression":"lz4","quota":50,"delegate_dataset":true,"resolvers":["8.8.8.8","8.8.4.4"],"nics":[{"allow_ip_spoofing":true,"nic_tag":"admin","ip":"dhcp"}]})
        .as_object()
        .unwrap()
        .clone()
}

fn fixed_runtime() -> Runtime {
    Runtime {
        uuid: U.into(),
        create_timestamp: "2026-01-01T00:00:00.000Z".into(),
        transition_expire: "1767225900000".into(),
        macs: vec!["90:b8:d0:0a:f8:02".into()],
    }
}

/// The fenced block of section (b) of the vmadm notes.
fn notes_zonecfg() -> String {
    let notes = fs::read_to_string(manifest_dir().join("../../shared/notes/vmadm.md")).unwrap();
    let b = notes.find("## (b)").unwrap();
    let start = notes[b..].find("```\n").unwrap() + b + 4;
    let end = notes[start..].find("```").unwrap() + start;
    notes[start..end].to_string()
}

#[test]
fn zonecfg_text_matches_the_notes_for_the_seed_payload() {
    let rt = fixed_runtime();
    let expected = notes_zonecfg()
        .replace("<uuid>", &rt.uuid)
        .replace("<ISO-8601 now>", &rt.create_timestamp)
        .replace("<now ms + 300000>", &rt.transition_expire)
        .replace("<image_uuid>", IMG)
        .replace(
            "<mac, leading zeros of each octet dropped>",
            "90:b8:d0:a:f8:2",
        )
        .replace("<same mac>", "90:b8:d0:a:f8:2");
    assert!(
        !expected.contains('<'),
        "unreplaced placeholder in {expected}"
    );
    // the seed as the notes list it: the RFD payload without hostname
    let mut seed = rfd_payload();
    seed.remove("hostname");
    let plan = create::plan(Table::get(), &seed, &FakeHost, &rt).unwrap();
    assert_eq!(plan.zonecfg, expected);
    assert_eq!(
        plan.steps[..4],
        [
            format!("zoneadm -z {U} install -q 50 -t {IMG} -x nodataset"),
            format!("zfs set compression=lz4 zones/{U}"),
            format!("zfs create -o compression=off zones/{U}/data"),
            format!("zonecfg -u {U} 'add dataset; set name=zones/{U}/data; end'"),
        ]
    );
}

#[test]
fn zonecfg_golden_for_the_rfd_payload() {
    let plan = create::plan(Table::get(), &rfd_payload(), &FakeHost, &fixed_runtime()).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(
            manifest_dir().join("tests/golden/rfd-create.script"),
            plan.script(),
        )
        .unwrap();
    }
    assert_eq!(plan.script(), golden("rfd-create.script"));
    // hostname is the one line the notes' seed does not have
    let extra: Vec<&str> = plan
        .zonecfg
        .lines()
        .filter(|l| !notes_zonecfg().contains(*l) && l.contains("hostname"))
        .collect();
    assert_eq!(extra, ["add attr; set name=\"hostname\"; set type=string; set value=\"cloud-image-builder\"; end"]);
    // without the image, vmadm refuses
    let mut p = rfd_payload();
    p.remove("image_uuid");
    assert_eq!(
        create::plan(Table::get(), &p, &FakeHost, &fixed_runtime())
            .unwrap_err()
            .0,
        "Missing required properties: image_uuid"
    );
}

/// A bhyve VM as the smartos-ui provision form asks for one: the boot disk
/// cloned from a zvol image, flexible_disk_size, vcpus, a virtio nic.
#[test]
fn bhyve_create_plan_from_the_ui_provision_payload() {
    struct ZvolHost;
    impl NodeFacts for ZvolHost {
        fn pools(&self) -> Vec<String> {
            vec!["zones".into()]
        }
        fn image_type(&self, _pool: &str, _uuid: &str) -> Result<String, String> {
            Ok("zvol".into())
        }
        fn image_size(&self, _pool: &str, _uuid: &str) -> Result<Option<u64>, String> {
            Ok(Some(10240))
        }
    }
    let ui = json!({"uuid": U, "brand": "bhyve", "alias": "vm1", "ram": 1024, "vcpus": 2,
        "disks": [{"image_uuid": IMG, "boot": true, "model": "virtio", "size": 10240}],
        "flexible_disk_size": 20480,
        "nics": [{"nic_tag": "admin", "ips": ["10.0.0.5/24"], "primary": true,
                  "gateways": ["10.0.0.1"], "model": "virtio"}]});
    let plan = create::plan(
        Table::get(),
        ui.as_object().unwrap(),
        &ZvolHost,
        &fixed_runtime(),
    )
    .unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(
            manifest_dir().join("tests/golden/bhyve-create.script"),
            plan.script(),
        )
        .unwrap();
    }
    assert_eq!(plan.script(), golden("bhyve-create.script"));
    let p = &plan.payload;
    // ram plus the brand's memory overhead, the bhyve quota default
    assert_eq!(p["max_physical_memory"], json!(1024 + 1280));
    assert_eq!(
        p["add_disks"][0]["path"],
        json!(format!("/dev/zvol/rdsk/zones/{U}/disk0"))
    );
    assert!(plan
        .zonecfg
        .contains(&format!("set match=/dev/zvol/rdsk/zones/{U}/disk0")));
    assert!(plan
        .steps
        .iter()
        .any(|s| s.starts_with("zfs clone -F -o volsize=10240M -o refreservation=auto")));
    // the rendered text makes a zone with one disk device and the attrs
    let (z, _) = sim_zonecfg(&plan);
    let devs = z.devices();
    assert_eq!(devs.len(), 1);
    assert_eq!(z.attr("vcpus").as_deref(), Some("2"));
    assert_eq!(z.attr("flexible-disk-size").as_deref(), Some("20480"));
    // a disk without a size or image_size, a bad model, kvm
    let mut bad = ui.clone();
    bad["disks"][0]["model"] = json!("scsi");
    assert_eq!(
        create::plan(
            Table::get(),
            bad.as_object().unwrap(),
            &ZvolHost,
            &fixed_runtime()
        )
        .unwrap_err()
        .0,
        "\"scsi\" is not a valid disk model for bhyve brand. Valid are: virtio,ahci,nvme"
    );
    let mut bad = ui.clone();
    bad["disks"] = json!([{"boot": false, "model": "virtio"}]);
    assert!(create::plan(
        Table::get(),
        bad.as_object().unwrap(),
        &ZvolHost,
        &fixed_runtime()
    )
    .unwrap_err()
    .0
    .contains("has no size or image_size"));
    let mut kvm = ui.clone();
    kvm["brand"] = json!("kvm");
    assert_eq!(
        create::plan(
            Table::get(),
            kvm.as_object().unwrap(),
            &ZvolHost,
            &fixed_runtime()
        )
        .unwrap_err()
        .0,
        "create planning for HVM brand kvm is not supported (bhyve only)"
    );
}

fn sim_zonecfg(plan: &create::Plan) -> (brand::ZoneConfig, Option<String>) {
    sim_node::zonecfg::apply(None, &plan.zonename, &plan.zonecfg).unwrap()
}

// ---------------------------------------------------------------- CLI helpers

/// A node root with stand-in host commands.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let r = Root {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(r.path().join("etc/zones")).unwrap();
        fs::create_dir_all(r.path().join("bin")).unwrap();
        fs::write(
            r.path().join("etc/zones/index"),
            "# DO NOT EDIT: this file is maintained by zonecfg\nglobal:installed:/\n",
        )
        .unwrap();
        r.script("zpool", "echo zones");
        r.script(
            "imgadm",
            &format!("if [ \"$4\" = {IMG} ]; then echo '{{\"manifest\":{{\"uuid\":\"{IMG}\",\"type\":\"zone-dataset\"}}}}'; else echo 'imgadm: image not installed' >&2; exit 1; fi"),
        );
        r
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn script(&self, name: &str, body: &str) {
        let p = self.path().join("bin").join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fn add_zone(&self, name: &str, state: &str, xml: &str) {
        fs::write(self.path().join(format!("etc/zones/{name}.xml")), xml).unwrap();
        let mut idx = fs::read_to_string(self.path().join("etc/zones/index")).unwrap();
        idx.push_str(&format!("{name}:{state}:/zones/{name}:{name}\n"));
        fs::write(self.path().join("etc/zones/index"), idx).unwrap();
    }
    fn xml(&self, name: &str) -> String {
        fs::read_to_string(self.path().join(format!("etc/zones/{name}.xml"))).unwrap()
    }
    fn install_brand(&self, b: &str) {
        brand::stage::stage(&brand::brands::by_name(b).unwrap(), self.path()).unwrap();
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vmadm-ext"));
        let path = format!(
            "{}:{}",
            self.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.arg("--root")
            .arg(self.path())
            .args(args)
            .env("PATH", path)
            .env("VMADM_EXT_STATE", "index");
        c.env_remove("VMADM_EXT_PAUSE_AT")
            .env_remove("VMADM_EXT_PAUSE_MS");
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }
    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write as _;
        let mut c = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // a command refused before it reads stdin (a usage error) closes it
        match c.stdin.take().unwrap().write_all(input.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.unwrap(),
        }
        c.wait_with_output().unwrap()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn oracle_xml(name: &str) -> String {
    fs::read_to_string(oracle().join("vmload-xml").join(name)).unwrap()
}

/// A root with the builder zone, the two joyent fixtures and the bhyve one.
fn populated() -> Root {
    let r = Root::new();
    r.add_zone(U, "installed", &builder_xml());
    r.add_zone(
        "e9f6d7c2-49c5-4b54-9414-ca1405663e4f",
        "installed",
        &oracle_xml("maximal-joyent.xml"),
    );
    r.add_zone(
        "073ae53b-c444-4e23-866b-10f99f276242",
        "installed",
        &oracle_xml("minimal-joyent.xml"),
    );
    r.add_zone(
        "aaac8650-4b58-6633-9054-a2c22e7beb36",
        "installed",
        &oracle_xml("bhyve-disk-sort.xml"),
    );
    r
}

// ---------------------------------------------------------------- validate

#[test]
fn log_only_when_asked_and_per_target() {
    let r = Root::new();
    let p = serde_json::to_string(&rfd_payload()).unwrap();
    let run = |log: Option<&str>| {
        let mut c = r.cmd(&["validate", "create"]);
        match log {
            Some(l) => c.env("VMADM_EXT_LOG", l),
            None => c.env_remove("VMADM_EXT_LOG"),
        };
        use std::io::Write as _;
        let mut ch = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        ch.stdin.take().unwrap().write_all(p.as_bytes()).unwrap();
        let o = ch.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "{}", err(&o));
        err(&o)
    };
    assert_eq!(run(None), "");
    let e = run(Some("debug"));
    assert!(
        e.contains("DEBUG host: ran command command=zpool list -H -p -o name"),
        "{e}"
    );
    // a target's own level; other targets stay quiet
    assert!(run(Some("warn,host=debug")).contains("ran command"));
    assert!(!run(Some("debug,host=warn")).contains("ran command"));
    assert_eq!(run(Some("info")), "");
    let e = run(Some("host=loud"));
    assert!(
        e.starts_with("vmadm-ext: VMADM_EXT_LOG \"host=loud\" ignored:"),
        "{e}"
    );
}

#[test]
fn validate_cli() {
    let r = Root::new();
    let p = serde_json::to_string(&rfd_payload()).unwrap();
    let o = r.run_stdin(&["validate", "create"], &p);
    assert_eq!(
        (code(&o), out(&o).as_str()),
        (0, "VALID 'create' payload for builder brand VMs.\n"),
        "{}",
        err(&o)
    );
    let f = r.path().join("p.json");
    fs::write(&f, &p).unwrap();
    let o = r.run(&["validate", "create", "-f", f.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    // update takes the brand from the argument
    let o = r.run_stdin(
        &["validate", "update", "builder"],
        r#"{"cpu_cap": 700, "vcpus": 2}"#,
    );
    assert_eq!(code(&o), 1);
    let v: Value = serde_json::from_str(&err(&o)).unwrap();
    assert_eq!(
        v,
        json!({"bad_values": [], "bad_properties": ["vcpus"], "missing_properties": []})
    );
    // unknown brand
    let o = r.run_stdin(&["validate", "create"], r#"{"brand": "nope"}"#);
    assert_eq!(
        (code(&o), err(&o)),
        (1, "{\n  \"bad_brand\": \"nope\"\n}\n".to_string())
    );
    // image unknown to imgadm, HVM-only properties, missing image
    let o = r.run_stdin(&["validate", "create"], r#"{"brand": "builder", "image_uuid": "11111111-2222-3333-4444-555555555555", "disks": [{"size": 10}], "bootrom": "uefi"}"#);
    let v: Value = serde_json::from_str(&err(&o)).unwrap();
    assert_eq!(
        v,
        json!({"bad_values": ["image_uuid"], "bad_properties": ["disks", "disks.*.size", "bootrom"], "missing_properties": []})
    );
    let o = r.run_stdin(&["validate", "create"], r#"{"brand": "builder"}"#);
    let v: Value = serde_json::from_str(&err(&o)).unwrap();
    assert_eq!(v["missing_properties"], json!(["image_uuid"]));
    // no pool answers: zpool values are bad
    r.script("zpool", "exit 1");
    let o = r.run_stdin(
        &["validate", "create"],
        &format!(r#"{{"brand": "builder", "image_uuid": "{IMG}", "zpool": "zones"}}"#),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&err(&o)).unwrap()["bad_values"],
        json!(["zpool"])
    );
    // usage errors
    assert_eq!(code(&r.run_stdin(&["validate", "update"], "{}")), 2);
    assert_eq!(code(&r.run_stdin(&["validate", "frob"], "{}")), 2);
    let o = r.run_stdin(&["validate", "create"], "{nope");
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).starts_with("vmadm-ext: Invalid JSON payload:"),
        "{}",
        err(&o)
    );
    let o = r.run(&["validate", "create", "-f", "/nonexistent.json"]);
    assert_eq!(
        err(&o),
        "vmadm-ext: File: /nonexistent.json does not exist.\n"
    );
}

// ---------------------------------------------------------------- create --dry-run

#[test]
fn create_dry_run_cli() {
    let r = Root::new();
    let mut p = rfd_payload();
    p.insert("vcpus".into(), json!(4));
    let o = r.run_stdin(
        &["create", "--dry-run"],
        &serde_json::to_string(&p).unwrap(),
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        err(&o),
        "Warning, invalid create property: [vcpus] removing from payload.\n"
    );
    let s = out(&o);
    assert!(s.starts_with("zonecfg -z "), "{s}");
    assert!(
        s.contains("\ncreate -b\n")
            && s.contains("set brand=builder\n")
            && s.contains("\nEOF\nzoneadm -z "),
        "{s}"
    );
    p.remove("image_uuid");
    let o = r.run_stdin(
        &["create", "--dry-run"],
        &serde_json::to_string(&p).unwrap(),
    );
    assert_eq!(code(&o), 1);
    assert_eq!(
        err(&o),
        "vmadm-ext: Missing required properties: image_uuid\n"
    );
    let o = r.run_stdin(&["create"], "{}");
    assert_eq!(code(&o), 2);
    let o = r.run_stdin(
        &["create", "--dry-run", "-j"],
        &serde_json::to_string(&rfd_payload()).unwrap(),
    );
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["payload"]["add_nics"][0]["nic_tag"], json!("admin"));
}

// ---------------------------------------------------------------- list / lookup / get

#[test]
fn list_brand_builder_prints_what_vmadm_prints() {
    let r = populated();
    let o = r.run(&["list", "brand=builder"]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        out(&o),
        golden("list-brand-builder.txt").replace("<uuid>", U)
    );
    // vmadm's widths 36/4/7/16/10, two spaces, right-trimmed
    let row = out(&o).lines().nth(1).unwrap().to_string();
    assert_eq!(
        row,
        format!("{U}  OS    8192     stopped           cloud-image-builder")
    );
}

#[test]
fn list_options() {
    let r = populated();
    let o = r.run(&["list"]);
    let lines: Vec<String> = out(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 5, "{}", out(&o));
    // default sort ram,uuid as vmadm's sortVM: 256, 1024, 8192, then the
    // zone without max_physical_memory (a missing value sorts last)
    assert_eq!(
        lines[1],
        "e9f6d7c2-49c5-4b54-9414-ca1405663e4f  OS    256      stopping          the works"
    );
    assert!(
        lines[2].starts_with("aaac8650-4b58-6633-9054-a2c22e7beb36  BHYV  1024"),
        "{lines:?}"
    );
    assert!(lines[3].starts_with(U));
    assert_eq!(
        lines[4],
        "073ae53b-c444-4e23-866b-10f99f276242  OS    -        stopped           -"
    );
    let o = r.run(&[
        "list",
        "-p",
        "-o",
        "uuid,brand,alias,nics.0.nic_tag",
        "-s",
        "-ram",
    ]);
    // descending: vmadm's comparator puts the zone without ram first
    let lines: Vec<String> = out(&o).lines().map(str::to_string).collect();
    assert_eq!(
        lines[..2],
        [
            "073ae53b-c444-4e23-866b-10f99f276242:joyent::".to_string(),
            format!("{U}:builder:cloud-image-builder:admin")
        ]
    );
    let o = r.run(&["list", "-H", "-o", "alias", "alias=~^THE"]);
    assert_eq!(out(&o), "the works\n");
    // JavaScript's classes: \s \w \d
    let o = r.run(&["list", "-H", "-o", "alias", r"alias=~^\w+\s\w+$"]);
    assert_eq!(out(&o), "the works\n");
    let o = r.run(&["list", "-o", "uuid,zpool", "nics.*.ip=10.10.10.11"]);
    assert_eq!(out(&o), "UUID                                  ZPOOL\ne9f6d7c2-49c5-4b54-9414-ca1405663e4f  zones\n");
    let o = r.run(&["list", "bogus=1"]);
    assert_eq!(
        (code(&o), err(&o)),
        (1, "vmadm-ext: Invalid filter key: \"bogus\"\n".into())
    );
    let o = r.run(&["list", "-o", "nics.*.ip"]);
    assert_eq!(err(&o), "vmadm-ext: Invalid order key: \"nics.*.ip\"\n");
    let o = r.run(&["list", "-s", "nope"]);
    assert_eq!(err(&o), "vmadm-ext: invalid sort field: nope\n");
    // customer metadata comes from <zonepath>/config/metadata.json
    let cfg = r.path().join(format!("zones/{U}/config"));
    fs::create_dir_all(&cfg).unwrap();
    fs::write(
        cfg.join("metadata.json"),
        r#"{"customer_metadata": {"role": "imgbuild"}, "internal_metadata": {}}"#,
    )
    .unwrap();
    fs::write(cfg.join("tags.json"), r#"{"group": "ci"}"#).unwrap();
    let o = r.run(&[
        "list",
        "-H",
        "-o",
        "uuid,tags.group",
        "customer_metadata.role=imgbuild",
    ]);
    assert_eq!(out(&o), format!("{U}  ci\n"));
}

#[test]
fn lookup_and_get() {
    let r = populated();
    let o = r.run(&["lookup", "brand=joyent"]);
    let so = out(&o);
    let mut l: Vec<&str> = so.lines().collect::<Vec<_>>();
    l.sort();
    assert_eq!(
        l,
        [
            "073ae53b-c444-4e23-866b-10f99f276242",
            "e9f6d7c2-49c5-4b54-9414-ca1405663e4f"
        ]
    );
    let o = r.run(&[
        "lookup",
        "-j",
        "-1",
        "-o",
        "uuid,brand,alias",
        "alias=cloud-image-builder",
    ]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        v,
        json!([{"alias": "cloud-image-builder", "brand": "builder", "uuid": U}])
    );
    let o = r.run(&["lookup", "-1", "brand=joyent"]);
    assert_eq!(
        (code(&o), err(&o)),
        (
            1,
            "vmadm-ext: Requested unique lookup but found 2 results.\n".into()
        )
    );
    assert_eq!(
        err(&r.run(&["lookup", "-o", "uuid"])),
        "vmadm-ext: Cannot specify -o without -j\n"
    );
    assert_eq!(
        err(&r.run(&["lookup", "frob=1"])),
        "vmadm-ext: Invalid lookup key: \"frob\"\n"
    );

    let o = r.run(&["get", U]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let vm: Value = serde_json::from_str(&out(&o)).unwrap();
    for (k, want) in [
        ("uuid", json!(U)),
        ("zonename", json!(U)),
        ("zonepath", json!(format!("/zones/{U}"))),
        ("brand", json!("builder")),
        ("alias", json!("cloud-image-builder")),
        ("max_physical_memory", json!(8192)),
        ("tmpfs", json!(8192)),
        ("cpu_cap", json!(600)),
        (
            "limit_priv",
            json!("default,proc_clock_highres,sys_dl_config"),
        ),
        ("datasets", json!([format!("zones/{U}/data")])),
        ("state", json!("stopped")),
        ("zone_state", json!("installed")),
        ("zpool", json!("zones")),
        ("zfs_filesystem", json!(format!("zones/{U}"))),
        ("customer_metadata", json!({})),
        ("tags", json!({})),
        ("resolvers", json!(["8.8.8.8", "8.8.4.4"])),
        ("firewall_enabled", json!(false)),
        ("image_uuid", json!(IMG)),
    ] {
        assert_eq!(vm[k], want, "get: {k}");
    }
    assert_eq!(
        vm["nics"][0],
        json!({"interface": "net0", "mac": "90:b8:d0:a6:f8:42", "nic_tag": "admin", "ip": "dhcp", "ips": ["dhcp"], "allow_ip_spoofing": true, "primary": true})
    );
    assert!(out(&o).starts_with("{\n  \""), "indented JSON");
    let missing = "11111111-2222-3333-4444-555555555555";
    let o = r.run(&["get", missing]);
    assert_eq!(
        (code(&o), err(&o)),
        (
            1,
            format!("vmadm-ext: zoneadm: {missing}: No such zone configured\n")
        )
    );
    assert_eq!(code(&r.run(&["get", "short"])), 2);
}

#[test]
fn zone_state_comes_from_zoneadm_when_it_is_there() {
    let r = populated();
    r.script(
        "zoneadm",
        &format!("echo '0:global:running:/::joyent:shared:0'; echo '7:{U}:running:/zones/{U}:{U}:builder:excl:42'"),
    );
    let o = r
        .cmd(&["list", "-H", "-o", "uuid,state,zoneid"])
        .env("VMADM_EXT_STATE", "zoneadm")
        .output()
        .unwrap();
    assert_eq!(
        out(&o),
        format!("{U}  running           7\n"),
        "{}",
        err(&o)
    );
    r.script("zoneadm", "echo 'zoneadm: permission denied' >&2; exit 1");
    let o = r
        .cmd(&["list"])
        .env("VMADM_EXT_STATE", "zoneadm")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(
        err(&o),
        "vmadm-ext: zoneadm list -p -c failed (exit status: 1): zoneadm: permission denied\n"
    );
}

// ---------------------------------------------------------------- listing reads only what it needs

/// A node with every kind of zone a listing meets: the builder zone, the
/// vmload fixtures (joyent with and without the usual fields, lx, bhyve and
/// kvm with sorted disks), an unknown brand, odd aliases, a transition, a
/// failed zone, config JSON (one zone's tags.json is broken), an exit
/// record, sysinfo, and broken zone files (garbage, no brand, an attribute
/// given twice, an unknown entity, deep nesting).
fn varied() -> Root {
    let r = populated();
    for (name, file) in [
        ("11111111-0000-4000-8000-000000000001", "lx.xml"),
        ("11111111-0000-4000-8000-000000000002", "kvm-disk-sort.xml"),
        (
            "11111111-0000-4000-8000-000000000003",
            "c673ec7c-aca9-4a4c-a4be-52fa82b2f0cd.xml",
        ),
        ("11111111-0000-4000-8000-000000000004", "garbage.xml"),
    ] {
        r.add_zone(name, "installed", &oracle_xml(file));
    }
    let b = builder_xml();
    let variant = |from: &str, to: &str| b.replace(from, to);
    // the text without the part from `start` to the end of `end`
    let without = |text: &str, start: &str, end: &str| {
        let a = text.find(start).unwrap();
        let z = a + text[a..].find(end).unwrap() + end.len();
        format!("{}{}", &text[..a], &text[z..])
    };
    let zones = [
        // an alias that sorts before the others, more memory, running
        (
            "22222222-0000-4000-8000-000000000001",
            "running",
            variant("Y2xvdWQtaW1hZ2UtYnVpbGRlcg==", "QWFyZHZhcms="),
        ),
        // no alias, no memory caps, no nics: every column falls back
        (
            "22222222-0000-4000-8000-000000000002",
            "installed",
            without(
                &without(&without(&b, "  <attr name=\"alias\"", "\n"), "  <network", "</network>\n"),
                "  <rctl name=\"zone.max-physical-memory\">",
                "</rctl>\n",
            ),
        ),
        // a brand vmadm does not know is read as joyent
        (
            "22222222-0000-4000-8000-000000000003",
            "installed",
            variant("brand=\"builder\"", "brand=\"future\""),
        ),
        // a zone between states, and a failed one
        (
            "22222222-0000-4000-8000-000000000004",
            "installed",
            variant(
                "<attr name=\"vm-version\"",
                "<attr name=\"transition\" type=\"string\" value=\"stopping:stopped:1700000000000\"/>\n  <attr name=\"vm-version\"",
            ),
        ),
        (
            "22222222-0000-4000-8000-000000000005",
            "installed",
            variant(
                "<attr name=\"vm-version\"",
                "<attr name=\"failed\" type=\"string\" value=\"true\"/>\n  <attr name=\"vm-version\"",
            ),
        ),
        // an alias with characters base64 does not have, equal memory
        (
            "22222222-0000-4000-8000-000000000006",
            "configured",
            variant("Y2xvdWQtaW1hZ2UtYnVpbGRlcg==", "Y2xv*dWQ=\n"),
        ),
        // broken: no brand, an attribute given twice, an unknown entity
        (
            "33333333-0000-4000-8000-000000000001",
            "installed",
            variant(" brand=\"builder\"", ""),
        ),
        (
            "33333333-0000-4000-8000-000000000002",
            "installed",
            variant("autoboot=\"true\"", "autoboot=\"true\" autoboot=\"false\""),
        ),
        (
            "33333333-0000-4000-8000-000000000003",
            "installed",
            variant("value=\"cloud-image-builder\"", "value=\"&nope;\""),
        ),
        (
            "33333333-0000-4000-8000-000000000004",
            "installed",
            format!("{}{}", "<zone>".repeat(100), "</zone>".repeat(100)),
        ),
    ];
    for (name, state, xml) in &zones {
        r.add_zone(name, state, xml);
    }
    let cfg = |zone: &str, file: &str, text: &str| {
        let d = r.path().join(format!("zones/{zone}/config"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(file), text).unwrap();
    };
    cfg(
        U,
        "metadata.json",
        r#"{"customer_metadata": {"role": "imgbuild"}, "internal_metadata": {"x": 1}}"#,
    );
    cfg(U, "tags.json", r#"{"group": "ci", "n": 3}"#);
    cfg(U, "routes.json", r#"{"10.0.0.0/8": "10.1.1.1"}"#);
    cfg(
        "22222222-0000-4000-8000-000000000001",
        "tags.json",
        r#"{"group": "build"}"#,
    );
    cfg(
        "22222222-0000-4000-8000-000000000002",
        "tags.json",
        "{broken",
    );
    let exited = r.path().join("zones/22222222-0000-4000-8000-000000000006");
    fs::create_dir_all(&exited).unwrap();
    fs::write(exited.join("lastexited"), "1700000000.5 256\n").unwrap();
    fs::create_dir_all(r.path().join("tmp")).unwrap();
    fs::write(
        r.path().join("tmp/.sysinfo.json"),
        r#"{"UUID": "00000000-1111-2222-3333-444444444444", "Datacenter Name": "dc1", "Live Image": "20260101T000000Z"}"#,
    )
    .unwrap();
    r
}

/// What a command printed: exit status, stdout, stderr.
type Printed = (i32, String, String);

/// `vmadm-ext list|lookup ARGS` done the plain way, in this process: every
/// VM object loaded whole (`Node::vms_partial`), then `run_list` /
/// `run_lookup` over them, with the command's messages.
fn full_object_path(r: &Root, cmd: &str, args: &[&str]) -> Printed {
    use vmadm_ext::list;
    use vmadm_ext::node::{LoadOptions, Node, StateSource};
    let t = Table::get();
    let mut node = Node::new(r.path());
    node.state_source = StateSource::Index;
    let (mut order, mut sort, mut header, mut parsable, mut json, mut unique) =
        (None, None, true, false, false, false);
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "-o" => order = it.next().map(|s| s.to_string()),
            "-s" => sort = it.next().map(|s| s.to_string()),
            "-H" => header = false,
            "-p" => parsable = true,
            "-j" => json = true,
            "-1" => unique = true,
            f => filters.push(f.to_string()),
        }
    }
    let fail = |e: String| (1, String::new(), format!("vmadm-ext: {e}\n"));
    let filters = match list::parse_filters(t, &filters, cmd == "lookup") {
        Ok(f) => f,
        Err(e) => return fail(e.to_string()),
    };
    let (out, bad) = if cmd == "list" {
        let mut opts = list::ListOptions::new(t);
        if let Some(o) = order {
            opts.order = o;
        }
        if let Some(s) = sort {
            opts.sort = s;
        }
        opts.parsable = parsable;
        opts.header = header && !parsable;
        if let Err(e) = list::check_columns(t, &opts) {
            return fail(e.to_string());
        }
        let keys = opts
            .order
            .split(',')
            .chain(opts.sort.split(','))
            .chain(filters.iter().map(|f| f.key.as_str()));
        let lo = LoadOptions {
            json: list::needs_config_json(keys),
            last_modified: false,
        };
        let (vms, bad) = node.vms_partial(lo).unwrap();
        match list::run_list(t, vms, &filters, &opts) {
            Ok(o) => (o, bad),
            Err(e) => return fail(e.to_string()),
        }
    } else {
        let (vms, bad) = node.vms_partial(LoadOptions::FULL).unwrap();
        match list::run_lookup(t, vms, &filters, json, unique, order.as_deref()) {
            Ok(o) => (o, bad),
            Err(e) => return fail(e.to_string()),
        }
    };
    let err: String = bad
        .iter()
        .map(|e| {
            format!(
                "vmadm-ext: {}\n",
                vmadm_ext::quote::printable(&e.to_string(), 400)
            )
        })
        .collect();
    (i32::from(!bad.is_empty()), out, err)
}

/// `list` and `lookup` read each zone once for only the fields they print,
/// sort and filter on, and stream their output; what they print must be
/// what whole VM objects give, byte for byte, for every kind of column,
/// sort key and filter, and with the same messages for broken zones.
#[test]
fn lazy_listing_prints_what_whole_vm_objects_give() {
    let r = varied();
    let lists: &[&[&str]] = &[
        &[],
        &["-H"],
        &["-p"],
        &["-s", "-ram,uuid"],
        &["-s", "alias", "-o", "alias,uuid,brand,type,ram"],
        &["-s", "+zonename", "-o", "zonename,zonepath,zpool,zone_state,state"],
        &["-s", "state,-uuid", "-p", "-o", "uuid,state,autoboot,hvm"],
        &[
            "-o",
            "uuid,max_physical_memory,max_locked_memory,max_swap,max_lwps,cpu_cap,cpu_shares,tmpfs,quota",
        ],
        &["-o", "uuid,nics.0.ip,nics.0.nic_tag,nics.1.ip,disks.0.path"],
        &["-o", "uuid,firewall_enabled,dns_domain,hostname,owner_uuid,billing_id"],
        &["-o", "uuid,exit_status,exit_timestamp,create_timestamp,image_uuid"],
        &["-o", "uuid,tags.group", "-s", "-tags.group"],
        &["-H", "-o", "uuid", "-s", "-tags.n"],
        &["-o", "uuid,customer_metadata.role", "customer_metadata.role=imgbuild"],
        &["brand=builder"],
        &["brand=joyent", "-o", "uuid,alias"],
        &["type=BHYV"],
        &["type=OS", "-s", "-type,alias"],
        &["ram=8192"],
        &["alias=~^c", "-o", "uuid,alias"],
        &["alias=~LOUD"],
        &["nics.*.ip=dhcp"],
        &["nics.0.nic_tag=admin", "-p"],
        &["disks.*.boot=true", "-o", "uuid,disks.0.path"],
        &["state=stopped", "-s", "state,alias"],
        &["state=failed"],
        &["state=stopping"],
        &["zone_state=running"],
        &["autoboot=true", "-o", "uuid,autoboot"],
        &["tags.group=~b"],
        &["-o", "nics.*.ip"],
        &["-s", "bogus"],
        &["bogus=1"],
    ];
    for args in lists {
        let mut a = vec!["list"];
        a.extend_from_slice(args);
        let o = r.run(&a);
        assert_eq!(
            (code(&o), out(&o), err(&o)),
            full_object_path(&r, "list", args),
            "list {args:?}"
        );
    }
    let lookups: &[&[&str]] = &[
        &[],
        &["brand=builder"],
        &["-j", "brand=joyent"],
        &["-j", "-o", "uuid,alias,ram,type,state", "ram=~^8"],
        &["-j", "-1", "alias=cloud-image-builder"],
        &["-1", "brand=builder"],
        &["-1", "type=LX"],
        &["-j", "nothing=~x"],
        &["-j", "exit_status=1"],
        &[
            "-j",
            "-o",
            "uuid,server_uuid,datacenter_name",
            "tags.group=build",
        ],
        &["-j", "-1", "brand=nope"],
        &["zonename=~^2222"],
        &["-j", "routes.10.0.0.0/8=10.1.1.1"],
    ];
    for args in lookups {
        let mut a = vec!["lookup"];
        a.extend_from_slice(args);
        let o = r.run(&a);
        assert_eq!(
            (code(&o), out(&o), err(&o)),
            full_object_path(&r, "lookup", args),
            "lookup {args:?}"
        );
    }
    // the node lists at all: good zones, and each broken one named once
    let o = r.run(&["list", "-H", "-o", "uuid"]);
    assert_eq!(out(&o).lines().count(), 13, "{}", out(&o));
    assert_eq!(err(&o).lines().count(), 5, "{}", err(&o));
}

/// The fields a listing asks for have the values the whole object has.
#[test]
fn loading_some_fields_gives_the_values_of_the_whole_object() {
    use vmadm_ext::load::{vmobj_fields_from_xml, vmobj_from_xml, Fields};
    let r = varied();
    let paths: &[&[&str]] = &[
        &["uuid", "type", "ram", "state", "alias"],
        &["nics.0.ip", "disks.*.size", "filesystems"],
        &["autoboot", "transition_expire", "datasets", "rctl"],
        &["max_physical_memory", "zonepath", "limit_priv", "resolvers"],
    ];
    let mut compared = 0;
    for entry in fs::read_dir(r.path().join("etc/zones")).unwrap() {
        let p = entry.unwrap().path();
        let Ok(text) = fs::read_to_string(&p) else {
            continue;
        };
        if p.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let whole = vmobj_from_xml(&text);
        for ps in paths {
            let fields = Fields::for_paths(ps.iter().copied());
            let some = vmobj_fields_from_xml(&text, &fields);
            match (&whole, &some) {
                (Ok(w), Ok(s)) => {
                    for (k, v) in s {
                        assert_eq!(w.get(k), Some(v), "{}: {k}", p.display());
                    }
                    for (k, v) in w {
                        if fields.has(k) {
                            assert_eq!(s.get(k), Some(v), "{}: {k}", p.display());
                        }
                    }
                    compared += 1;
                }
                (Err(w), Err(s)) => assert_eq!(w, s, "{}", p.display()),
                _ => panic!("{}: {whole:?} but {some:?}", p.display()),
            }
        }
    }
    assert!(compared >= 40, "{compared}");
}

// ---------------------------------------------------------------- preflight

#[test]
fn preflight_names_zones_whose_brand_the_platform_lacks() {
    let r = populated();
    // an old platform: joyent and bhyve, no builder
    let pi = r.path().join("zones/boot/platform-20240101T000000Z");
    for b in ["joyent", "bhyve"] {
        brand::stage::stage(&brand::brands::by_name(b).unwrap(), &pi).unwrap();
    }
    let o = r.run(&["preflight", "--platform", "20240101T000000Z"]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    let s = out(&o);
    assert!(s.contains(&format!("{U} (cloud-image-builder): brand builder missing, will not start; rescue with: vmadm-ext rescue {U}\n")), "{s}");
    assert!(
        s.ends_with("1 of 4 zones will not start on this platform\n"),
        "{s}"
    );
    assert!(
        s.starts_with("platform ") && s.contains("provides brands: bhyve, joyent\n"),
        "{s}"
    );
    // a platform given as a directory with only a boot archive manifest
    let pi2 = r.path().join("pi2/i86pc/amd64");
    fs::create_dir_all(&pi2).unwrap();
    fs::write(
        pi2.join("boot_archive.manifest"),
        "0123  ./usr/lib/brand/joyent/platform.xml\n4567  ./usr/lib/brand/builder/platform.xml\n",
    )
    .unwrap();
    let o = r.run(&[
        "preflight",
        "--platform",
        r.path().join("pi2").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(out(&o).contains("aaac8650-4b58-6633-9054-a2c22e7beb36: brand bhyve missing, will not start; no rescue available"), "{}", out(&o));
    // after the rescue the old platform is fine
    assert_eq!(code(&r.run(&["rescue", U])), 0);
    let o = r.run(&["preflight", "--platform", "20240101T000000Z"]);
    assert_eq!(
        (code(&o), out(&o).lines().last().unwrap()),
        (0, "all 4 zones have their brand on this platform")
    );
    let o = r.run(&["preflight", "--platform", "19990101T000000Z"]);
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).starts_with("vmadm-ext: platform 19990101T000000Z: no such directory"),
        "{}",
        err(&o)
    );
}

// ---------------------------------------------------------------- rescue

fn xmllint_valid(path: &Path) -> bool {
    let dtd = manifest_dir().join("../../shared/oracle/illumos/zonecfg.dtd.1");
    Command::new("xmllint")
        .args(["--nonet", "--noout", "--nowarning", "--dtdvalid"])
        .arg(dtd)
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn rescue_then_unrescue_is_byte_identical() {
    let r = populated();
    r.install_brand("builder");
    let orig = builder_xml();
    let o = r.run(&["rescue", U]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).contains("rescued: brand builder -> joyent; devices added: /dev/viona, /dev/vmm*; privileges added: none"), "{}", out(&o));
    let rescued = r.xml(U);
    let z = brand::ZoneConfig::parse(&rescued).unwrap();
    assert_eq!(z.brand(), "joyent");
    let devs: Vec<String> = z.devices().into_iter().map(|d| d.matches).collect();
    assert_eq!(devs, ["/dev/viona", "/dev/vmm*"]);
    assert_eq!(
        z.limitpriv(),
        Some("default,proc_clock_highres,sys_dl_config")
    );
    assert!(z
        .attr("vmadm-ext-rescued")
        .unwrap()
        .starts_with("from=builder; at="));
    assert!(
        xmllint_valid(&r.path().join(format!("etc/zones/{U}.xml"))),
        "rescued XML is DTD-valid"
    );
    let backup = r.path().join(format!("etc/zones/{U}.xml.builder-backup"));
    assert_eq!(fs::read_to_string(&backup).unwrap(), orig);
    // the zone says it was rescued, and still lists as OS with joyent's brand
    let o = r.run(&["list", "-H", "-o", "uuid,brand", "brand=joyent"]);
    assert!(out(&o).contains(&format!("{U}  joyent")));
    // a second rescue is harmless
    let o = r.run(&["rescue", U]);
    assert_eq!(
        (code(&o), out(&o)),
        (0, format!("zone {U} is already rescued; nothing to do\n"))
    );
    assert_eq!(r.xml(U), rescued);
    // unrescue gives the original bytes back, and is idempotent too
    let o = r.run(&["unrescue", U]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(r.xml(U), orig);
    let o = r.run(&["unrescue", U]);
    assert_eq!(
        (code(&o), out(&o)),
        (0, format!("zone {U} is a builder zone; nothing to undo\n"))
    );
    assert_eq!(r.xml(U), orig);
}

#[test]
fn rescue_refusals() {
    let r = populated();
    let joyent = "e9f6d7c2-49c5-4b54-9414-ca1405663e4f";
    let o = r.run(&["rescue", joyent]);
    assert_eq!(code(&o), 1);
    assert_eq!(err(&o), format!("vmadm-ext: zone {joyent} has brand joyent, not builder; only builder zones are rescued\n"));
    assert_eq!(r.xml(joyent), oracle_xml("maximal-joyent.xml"));
    // a running zone is refused, and left alone
    r.script(
        "zoneadm",
        &format!("echo '7:{U}:running:/zones/{U}:{U}:builder:excl:42'"),
    );
    let o = r
        .cmd(&["rescue", U])
        .env("VMADM_EXT_STATE", "zoneadm")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(
        err(&o),
        format!(
            "vmadm-ext: zone {U} is running; stop it first (vmadm stop {U}) and run this again\n"
        )
    );
    assert_eq!(r.xml(U), builder_xml());
    assert!(!r
        .path()
        .join(format!("etc/zones/{U}.xml.builder-backup"))
        .exists());
    // unrescue: not rescued
    let o = r.run(&["unrescue", joyent]);
    assert!(
        err(&o).contains("was not rescued by vmadm-ext"),
        "{}",
        err(&o)
    );
    // unrescue while the platform still lacks builder
    assert_eq!(code(&r.run(&["rescue", U])), 0);
    let rescued = r.xml(U);
    let o = r.run(&["unrescue", U]);
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).contains("the booted platform has no builder brand"),
        "{}",
        err(&o)
    );
    assert_eq!(r.xml(U), rescued);
    // unrescue after someone changed the zone
    r.install_brand("builder");
    fs::write(
        r.path().join(format!("etc/zones/{U}.xml")),
        rescued.replace("cloud-image-builder", "Y2hhbmdlZA=="),
    )
    .unwrap();
    let changed = r.xml(U);
    let o = r.run(&["unrescue", U]);
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).contains(&format!("zone {U} changed since it was rescued")),
        "{}",
        err(&o)
    );
    assert_eq!(r.xml(U), changed);
    assert_eq!(code(&r.run(&["rescue", "nope"])), 2);
}

/// Run a command that stops at `step`, wait until it says so, SIGKILL it.
fn kill_at(r: &Root, args: &[&str], step: &str) {
    let mut c = r
        .cmd(args)
        .env("VMADM_EXT_PAUSE_AT", step)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stderr.take().unwrap()).lines();
    let mut reached = false;
    for l in lines.by_ref() {
        let l = l.unwrap();
        if l == format!("vmadm-ext: paused at {step}") {
            reached = true;
            break;
        }
    }
    c.kill().unwrap(); // SIGKILL
    let st = c.wait().unwrap();
    assert!(reached, "{args:?} never reached step {step} (exit {st})");
    assert!(!st.success());
}

#[test]
fn sigkill_at_each_rescue_step_leaves_original_or_rescued() {
    let orig = builder_xml();
    let steps = [
        "locked",
        "backup-temp",
        "backup-renamed",
        "backup",
        "zone-temp",
        "zone-renamed",
        "done",
    ];
    let mut outcomes = Vec::new();
    for step in steps {
        let r = populated();
        r.install_brand("builder");
        kill_at(&r, &["rescue", U], step);
        let now = r.xml(U);
        let z = brand::ZoneConfig::parse(&now)
            .unwrap_or_else(|e| panic!("{step}: broken zone file: {e}"));
        let backup = r.path().join(format!("etc/zones/{U}.xml.builder-backup"));
        let rescued = if now == orig {
            false
        } else {
            assert_eq!(z.brand(), "joyent", "{step}");
            assert!(z.attr("vmadm-ext-rescued").is_some(), "{step}");
            true
        };
        if rescued
            || steps.iter().position(|s| *s == step)
                >= steps.iter().position(|s| *s == "backup-renamed")
        {
            assert_eq!(fs::read_to_string(&backup).unwrap(), orig, "{step}: backup");
        }
        if fs::metadata(&backup).is_ok() {
            assert_eq!(
                fs::read_to_string(&backup).unwrap(),
                orig,
                "{step}: a backup is always whole"
            );
        }
        outcomes.push((step, rescued));
        // the next run finishes the job (and cleans the temp file)
        let o = r.run(&["rescue", U]);
        assert_eq!(code(&o), 0, "{step}: {}", err(&o));
        assert_eq!(
            brand::ZoneConfig::parse(&r.xml(U)).unwrap().brand(),
            "joyent"
        );
        let leftovers: Vec<_> = fs::read_dir(r.path().join("etc/zones"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".vmadm-ext-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{step}: {leftovers:?}");
        // and the undo is exact
        let o = r.run(&["unrescue", U]);
        assert_eq!(code(&o), 0, "{step}: {}", err(&o));
        assert_eq!(r.xml(U), orig, "{step}");
    }
    assert_eq!(
        outcomes,
        [
            ("locked", false),
            ("backup-temp", false),
            ("backup-renamed", false),
            ("backup", false),
            ("zone-temp", false),
            ("zone-renamed", true),
            ("done", true)
        ]
    );
}

#[test]
fn sigkill_at_each_unrescue_step_leaves_rescued_or_original() {
    let orig = builder_xml();
    for step in ["locked", "zone-temp", "zone-renamed", "done"] {
        let r = populated();
        r.install_brand("builder");
        assert_eq!(code(&r.run(&["rescue", U])), 0);
        let rescued = r.xml(U);
        kill_at(&r, &["unrescue", U], step);
        let now = r.xml(U);
        assert!(now == rescued || now == orig, "{step}: {now}");
        let o = r.run(&["unrescue", U]);
        assert_eq!(code(&o), 0, "{step}: {}", err(&o));
        assert_eq!(r.xml(U), orig, "{step}");
    }
}

#[test]
fn concurrent_rescues_do_not_corrupt_the_zone() {
    for round in 0..3 {
        let r = populated();
        r.install_brand("builder");
        // the first holds the lock for a while right before it renames
        let first = r
            .cmd(&["rescue", U])
            .env("VMADM_EXT_PAUSE_AT", "zone-temp")
            .env("VMADM_EXT_PAUSE_MS", "400")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let others: Vec<_> = (0..3)
            .map(|_| {
                r.cmd(&["rescue", U])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut rescued = 0;
        let mut already = 0;
        for c in std::iter::once(first).chain(others) {
            let o = c.wait_with_output().unwrap();
            assert_eq!(code(&o), 0, "round {round}: {}", err(&o));
            if out(&o).contains("rescued: brand builder -> joyent") {
                rescued += 1;
            } else if out(&o).contains("already rescued") {
                already += 1;
            }
        }
        assert_eq!((rescued, already), (1, 3), "round {round}");
        let z = brand::ZoneConfig::parse(&r.xml(U)).unwrap();
        assert_eq!(
            z.attrs()
                .iter()
                .filter(|a| a.name == "vmadm-ext-rescued")
                .count(),
            1
        );
        assert_eq!(z.devices().len(), 2);
        assert_eq!(code(&r.run(&["unrescue", U])), 0);
        assert_eq!(r.xml(U), builder_xml());
    }
}

// ---------------------------------------------------------------- check

fn make_dev(r: &Root, names: &[&str]) {
    for n in names {
        let p = r.path().join("dev").join(n);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "").unwrap();
    }
}

#[test]
fn check_build_readiness() {
    let r = populated();
    r.install_brand("builder");
    r.install_brand("joyent");
    make_dev(&r, &["vmmctl", "viona", "null", "zero"]);
    let o = r.run(&["check", U]);
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert_eq!(
        out(&o),
        format!(
            "ok:   device /dev/vmmctl is visible in the zone\n\
             ok:   device /dev/viona is visible in the zone\n\
             ok:   delegated dataset zones/{U}/data\n\
             ok:   primary nic net0 allows ip spoofing\n\
             ok:   limit_priv has proc_clock_highres and sys_dl_config\n\
             zone {U} can run bhyve builds\n"
        )
    );
    // a joyent zone: no devices, no dataset, no spoofing, default privileges
    let j = "073ae53b-c444-4e23-866b-10f99f276242";
    let o = r.run(&["check", j]);
    assert_eq!(code(&o), 1);
    let s = out(&o);
    assert_eq!(
        s.lines().filter(|l| l.starts_with("FAIL: ")).count(),
        5,
        "{s}"
    );
    assert!(
        s.contains("FAIL: device /dev/viona: not granted by brand joyent's platform.xml"),
        "{s}"
    );
    assert!(
        s.contains("FAIL: limit_priv \"default\" lacks proc_clock_highres and sys_dl_config"),
        "{s}"
    );
    // a rescued zone on a platform without builder keeps its access
    fs::remove_dir_all(r.path().join("usr/lib/brand/builder")).unwrap_or_else(|_| {
        let d = r.path().join("usr/lib/brand/builder");
        for e in fs::read_dir(&d).unwrap().flatten() {
            fs::remove_file(e.path()).unwrap();
        }
        fs::remove_dir(d).unwrap();
    });
    let o = r.run(&["check", U]);
    assert_eq!(code(&o), 1);
    assert!(
        out(&o).contains("FAIL: devices: brand builder is not installed on this platform"),
        "{}",
        out(&o)
    );
    assert_eq!(code(&r.run(&["rescue", U])), 0);
    let o = r.run(&["check", U]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    // without the drivers loaded, the devices are not there at all
    fs::remove_file(r.path().join("dev/viona")).unwrap();
    let o = r.run(&["check", U]);
    assert!(
        out(&o).contains("FAIL: device /dev/viona: not present in the global zone's /dev"),
        "{}",
        out(&o)
    );
}

// ---------------------------------------------------------------- help and man page

#[test]
fn every_command_has_help() {
    let r = Root::new();
    for c in [
        "validate",
        "create",
        "get",
        "list",
        "lookup",
        "preflight",
        "rescue",
        "unrescue",
        "check",
    ] {
        let o = r.run(&[c, "--help"]);
        assert_eq!(code(&o), 0, "{c}");
        let s = out(&o);
        assert!(
            s.contains("Usage: vmadm-ext") && s.lines().count() > 10,
            "{c}: {s}"
        );
    }
    let o = r.run(&["--help"]);
    assert!(out(&o).contains("Examples:") && out(&o).contains("rescue"));
    let o = r.run(&["list", "--bogus"]);
    assert_eq!(code(&o), 2);
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    assert!(err(&o).starts_with("vmadm-ext: "));
}

#[test]
fn man_page_passes_mandoc_lint() {
    let page = manifest_dir().join("man/vmadm-ext.8");
    let msgs = testkit::mandoc_lint(&page);
    assert!(msgs.is_empty(), "mandoc -T lint: {msgs:#?}");
    let text = fs::read_to_string(&page).unwrap();
    for c in [
        "validate",
        "create",
        "get",
        "list",
        "lookup",
        "preflight",
        "rescue",
        "unrescue",
        "check",
    ] {
        assert!(
            text.contains(&format!(".It Cm {c}")),
            "man page documents {c}"
        );
    }
}

// ---------------------------------------------------------------- plan -> zone XML -> VM object

#[test]
fn planned_zone_round_trips_through_zone_xml() {
    let plan = create::plan(Table::get(), &rfd_payload(), &FakeHost, &fixed_runtime()).unwrap();
    let (z, uuid) = sim_node::zonecfg::apply(None, &plan.zonename, &plan.zonecfg).unwrap();
    assert_eq!(uuid.as_deref(), Some(U));
    // the delegated dataset step and the end of provisioning
    let (z, _) = sim_node::zonecfg::apply(
        Some(z),
        U,
        &format!("add dataset; set name=zones/{U}/data; end\n"),
    )
    .unwrap();
    let provisioning = vmadm_ext::load::vmobj_from_xml(&z.to_xml()).unwrap();
    assert_eq!(provisioning["state"], json!("provisioning"));
    assert_eq!(provisioning["transition_to"], json!("running"));
    let (z, _) = sim_node::zonecfg::apply(
        Some(z),
        U,
        "remove attr name=provisioning\nremove attr name=transition\n",
    )
    .unwrap();
    let xml = z.to_xml();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("z.xml");
    fs::write(&f, &xml).unwrap();
    assert!(xmllint_valid(&f), "{xml}");
    let vm = Value::Object(vmadm_ext::load::vmobj_from_xml(&xml).unwrap());
    for (k, want) in [
        ("zonename", json!(U)),
        ("brand", json!("builder")),
        ("autoboot", json!(true)),
        ("alias", json!("cloud-image-builder")),
        ("hostname", json!("cloud-image-builder")),
        (
            "limit_priv",
            json!("default,proc_clock_highres,sys_dl_config"),
        ),
        ("fs_allowed", json!("ufs,pcfs,tmpfs")),
        ("max_physical_memory", json!(8192)),
        ("max_locked_memory", json!(8192)),
        ("max_swap", json!(8192)),
        ("max_shm_memory", json!(8192)),
        ("tmpfs", json!(8192)),
        ("cpu_cap", json!(600)),
        ("cpu_shares", json!(100)),
        ("zfs_io_priority", json!(100)),
        ("max_lwps", json!(2000)),
        ("resolvers", json!(["8.8.8.8", "8.8.4.4"])),
        ("image_uuid", json!(IMG)),
        ("datasets", json!([format!("zones/{U}/data")])),
        ("v", json!(1)),
        ("create_timestamp", json!("2026-01-01T00:00:00.000Z")),
    ] {
        assert_eq!(vm[k], want, "{k}");
    }
    assert_eq!(
        vm["nics"],
        json!([{"interface": "net0", "mac": "90:b8:d0:a:f8:2", "nic_tag": "admin", "ip": "dhcp", "ips": ["dhcp"], "allow_ip_spoofing": true, "primary": true}])
    );
    // and such a zone passes the build readiness check on a builder platform
    let r = Root::new();
    r.add_zone(U, "installed", &xml);
    r.install_brand("builder");
    make_dev(&r, &["vmmctl", "viona"]);
    let o = r.run(&["check", U]);
    assert_eq!(code(&o), 0, "{}", out(&o));
}

/// Hostile or broken zone files: deep XML, an unreadable file, an index
/// line that names a path outside /etc/zones. No crash; `list` and
/// `lookup` report each bad zone on stderr, list the rest and exit 1.
#[test]
fn bad_zones_give_a_partial_listing_not_a_crash() {
    let r = populated();
    let deep = format!(
        "<?xml version=\"1.0\"?>\n{}{}",
        "<zone>".repeat(100_000),
        "</zone>".repeat(100_000)
    );
    let d = "d0000000-0000-4000-8000-000000000001";
    r.add_zone(d, "installed", &deep);
    let u = "d0000000-0000-4000-8000-000000000002";
    r.add_zone(u, "installed", "<zone/>");
    let xml = r.path().join(format!("etc/zones/{u}.xml"));
    fs::remove_file(&xml).unwrap();
    fs::create_dir(&xml).unwrap(); // unreadable as a file
    let mut idx = fs::read_to_string(r.path().join("etc/zones/index")).unwrap();
    idx.push_str(
        "../../../../etc/passwd:installed:/zones/x:d0000000-0000-4000-8000-000000000003\n",
    );
    idx.push_str("good-name:installed:/../../etc:d0000000-0000-4000-8000-000000000004\n");
    fs::write(r.path().join("etc/zones/index"), idx).unwrap();

    let o = r.run(&["list", "-H", "-o", "uuid"]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    let mut listed: Vec<String> = out(&o).lines().map(str::to_string).collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "073ae53b-c444-4e23-866b-10f99f276242",
            U,
            "aaac8650-4b58-6633-9054-a2c22e7beb36",
            "e9f6d7c2-49c5-4b54-9414-ca1405663e4f",
        ]
    );
    let e = err(&o);
    assert_eq!(e.lines().count(), 4, "{e}");
    assert!(
        e.contains(&format!("zone {d}: cannot load")) && e.contains("nested deeper than 64 levels"),
        "{e}"
    );
    assert!(e.contains(&format!("cannot read {}", xml.display())), "{e}");
    assert!(
        e.contains("zone ../../../../etc/passwd: the zone name in /etc/zones/index is not valid"),
        "{e}"
    );
    assert!(
        e.contains("zone good-name: the zonepath in /etc/zones/index is not valid"),
        "{e}"
    );

    let o = r.run(&["lookup", "brand=builder"]);
    assert_eq!((code(&o), out(&o)), (1, format!("{U}\n")));

    let o = r.run(&["get", d]);
    assert_eq!(code(&o), 1);
    assert!(
        err(&o).contains("nested deeper than 64 levels") && err(&o).lines().count() == 1,
        "{}",
        err(&o)
    );
    // the good zones are still fine one by one
    let o = r.run(&["get", U]);
    assert_eq!(code(&o), 0, "{}", err(&o));
}
