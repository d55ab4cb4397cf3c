//! Integration tests: oracle comparisons, DTD validation with xmllint,
//! device grants over a temp /dev tree, staging and the CLI.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use brand::brands::{self, BrandFiles};
use brand::config::BrandConfig;
use brand::devices::{visible_devices, ZoneFacts};
use brand::platform::{Device, Entry, Platform};
use brand::xml::{Document, Element, Node};
use brand::zone::{DeviceResource, ZoneConfig};

fn oracle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle")
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Attribute order carries no meaning in XML; element order does.
fn canonical(e: &Element) -> Element {
    let mut s = e.semantic();
    fn sort(e: &mut Element) {
        e.attrs.sort();
        for c in e.children.iter_mut() {
            if let Node::Element(x) = c {
                sort(x);
            }
        }
    }
    sort(&mut s);
    s
}

fn same_doc(generated: &str, oracle_file: &Path) {
    let g = Document::parse(generated).unwrap();
    let o = Document::parse(&read(oracle_file)).unwrap();
    let (g, o) = (canonical(&g.root), canonical(&o.root));
    if g != o {
        // Point at the first differing child for a readable failure.
        let gi: Vec<_> = g.elements().collect();
        let oi: Vec<_> = o.elements().collect();
        let at = gi.iter().zip(&oi).position(|(a, b)| a != b);
        panic!(
            "{} differs: root attrs {:?} vs {:?}; {} vs {} children; first difference at {:?}: {:?} vs {:?}",
            oracle_file.display(),
            g.attrs,
            o.attrs,
            gi.len(),
            oi.len(),
            at,
            at.map(|i| gi[i]),
            at.map(|i| oi[i])
        );
    }
}

fn xmllint(dtd: &str, file: &Path) -> (bool, String) {
    let out = Command::new("xmllint")
        .args(["--nonet", "--noout", "--nowarning", "--dtdvalid"])
        .arg(oracle().join("illumos").join(dtd))
        .arg(file)
        .output()
        .expect(
            "xmllint must be installed (apt-get install libxml2-utils); the DTD checks do not skip",
        );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dtd_for(file: &str) -> &'static str {
    match file {
        "config.xml" => "brand.dtd.1",
        "platform.xml" => "zone_platform.dtd.1",
        _ => "zonecfg.dtd.1",
    }
}

#[test]
fn generated_files_are_valid_against_the_illumos_dtds() {
    let dir = tempfile::tempdir().unwrap();
    for name in brands::KNOWN {
        let b = brands::by_name(name).unwrap();
        for (file, text) in b.files() {
            let p = dir.path().join(format!("{name}-{file}"));
            fs::write(&p, text).unwrap();
            let (ok, err) = xmllint(dtd_for(&file), &p);
            assert!(ok, "{name}/{file} is not valid: {err}");
        }
    }
}

#[test]
fn xmllint_check_can_fail() {
    // Negative control: the builder config without user_cmd must be refused.
    let mut c = brands::builder().config;
    let dir = tempfile::tempdir().unwrap();
    let mut doc = c.to_document();
    doc.root
        .children
        .retain(|n| !matches!(n, Node::Element(e) if e.name == "user_cmd"));
    let p = dir.path().join("config.xml");
    fs::write(&p, doc.write(brand::xml::Style::BRAND)).unwrap();
    let (ok, err) = xmllint("brand.dtd.1", &p);
    assert!(!ok, "xmllint accepted a config without user_cmd");
    assert!(err.contains("does not follow the DTD"), "{err}");
    // and a platform with an unknown ip-type
    c.name = "x".into();
    let mut p2 = brands::builder().platform;
    p2.entries.push(Entry::Device(Device {
        ip_type: Some("bogus".into()),
        ..Device::new("x")
    }));
    let pp = dir.path().join("platform.xml");
    fs::write(&pp, p2.to_xml()).unwrap();
    assert!(!xmllint("zone_platform.dtd.1", &pp).0);
}

#[test]
fn generated_brands_equal_the_oracle_files() {
    let ill = oracle().join("illumos");
    let j = brands::joyent();
    same_doc(&j.config.to_xml(), &ill.join("joyent/config.xml"));
    same_doc(&j.platform.to_xml(), &ill.join("joyent/platform.xml"));
    let files = j.files();
    let get = |fs: &[(String, String)], n: &str| fs.iter().find(|(f, _)| f == n).unwrap().1.clone();
    same_doc(&get(&files, "Joyent.xml"), &ill.join("joyent/Joyent.xml"));
    same_doc(
        &get(&files, "SUNWdefault.xml"),
        &ill.join("joyent/SUNWdefault.xml"),
    );

    let m = brands::joyent_minimal();
    same_doc(&m.config.to_xml(), &ill.join("joyent-minimal/config.xml"));
    same_doc(
        &m.platform.to_xml(),
        &ill.join("joyent-minimal/platform.xml"),
    );
    assert!(m.templates.is_empty(), "joyent-minimal ships no template");

    let b = brands::bhyve();
    same_doc(&b.config.to_xml(), &ill.join("bhyve/config.xml"));
    same_doc(&b.platform.to_xml(), &ill.join("bhyve/platform.xml"));
    same_doc(
        &get(&b.files(), "SYSbhyve.xml"),
        &ill.join("bhyve/SYSbhyve.xml"),
    );
}

#[test]
fn oracle_comparison_can_fail() {
    let mut j = brands::joyent();
    j.platform
        .entries
        .retain(|e| !matches!(e, Entry::Device(d) if d.matches == "zfs"));
    let g = Document::parse(&j.platform.to_xml()).unwrap();
    let o = Document::parse(&read(&oracle().join("illumos/joyent/platform.xml"))).unwrap();
    assert_ne!(canonical(&g.root), canonical(&o.root));
}

#[test]
fn oracle_brand_files_parse_into_the_typed_model_and_back() {
    let ill = oracle().join("illumos");
    for b in ["joyent", "joyent-minimal", "bhyve"] {
        let c = BrandConfig::parse(&read(&ill.join(b).join("config.xml"))).unwrap();
        assert_eq!(c.name, b);
        same_doc(&c.to_xml(), &ill.join(b).join("config.xml"));
        let p = Platform::parse(&read(&ill.join(b).join("platform.xml"))).unwrap();
        assert_eq!(p.name, b);
        same_doc(&p.to_xml(), &ill.join(b).join("platform.xml"));
    }
    let c = BrandConfig::parse(&read(&ill.join("joyent/config.xml"))).unwrap();
    assert_eq!(c.privileges_in(brand::config::PrivSet::Default).count(), 41);
    assert_eq!(
        c.privileges_in(brand::config::PrivSet::Prohibited).count(),
        12
    );
    assert_eq!(c.privileges_in(brand::config::PrivSet::Required).count(), 4);
    assert_eq!(
        c.hook("install"),
        Some("/usr/lib/brand/joyent/jinstall -z %z -R %R")
    );
    assert_eq!(c.hook("boot"), None);
}

#[test]
fn builder_differs_from_joyent_exactly_as_designed() {
    let (j, b) = (brands::joyent(), brands::builder());
    // config: only the name
    let mut c = b.config.clone();
    c.name = "joyent".into();
    c.header = j.config.header.clone();
    assert_eq!(c, j.config);
    assert_eq!(b.config.name, "builder");
    assert!(b
        .config
        .hooks
        .iter()
        .all(|(_, cmd)| !cmd.contains("/brand/builder")));

    // platform: the name and two added devices, viona and vmm*, for every ip-type
    assert_eq!(b.platform.name, "builder");
    assert_eq!(b.platform.allow_exclusive_ip, j.platform.allow_exclusive_ip);
    let jd: Vec<&Device> = j.platform.devices().collect();
    let bd: Vec<&Device> = b.platform.devices().collect();
    let added: Vec<&&Device> = bd.iter().filter(|d| !jd.contains(d)).collect();
    assert_eq!(added, [&&Device::new("viona"), &&Device::new("vmm*")]);
    let removed: Vec<&&Device> = jd.iter().filter(|d| !bd.contains(d)).collect();
    assert!(removed.is_empty(), "{removed:?}");
    let strip = |p: &Platform| -> Vec<Entry> {
        p.entries
            .iter()
            .filter(|e| !matches!(e, Entry::Comment(_) | Entry::Blank))
            .filter(
                |e| !matches!(e, Entry::Device(d) if d.matches == "viona" || d.matches == "vmm*"),
            )
            .cloned()
            .collect()
    };
    assert_eq!(strip(&b.platform), strip(&j.platform));
    // the glob keeps its reason
    let xml = b.platform.to_xml();
    let at = xml.find("<device match=\"vmm*\"").unwrap();
    assert!(
        xml[..at].rfind("sdev race").is_some_and(|c| at - c < 400),
        "vmm* comment missing"
    );

    // template: Joyent.xml with brand builder
    let (bn, bt) = &b.templates[0];
    assert_eq!(bn, "Builder.xml");
    let (_, jt) = j.templates.iter().find(|(n, _)| n == "Joyent.xml").unwrap();
    let mut t = bt.clone();
    assert_eq!(t.brand(), "builder");
    t.set("brand", "joyent");
    assert_eq!(&t, jt);
}

fn zone_xml_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in ["illumos/examples", "vmadm/vmload-xml"] {
        for e in fs::read_dir(oracle().join(d)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "xml") && !p.ends_with("garbage.xml") {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(v.len() >= 10, "expected the oracle zone files, found {v:?}");
    v
}

#[test]
fn every_oracle_zone_file_round_trips_byte_for_byte() {
    for p in zone_xml_files() {
        let text = read(&p);
        let z = ZoneConfig::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(z.to_xml(), text, "{} did not round-trip", p.display());
        // and a second generation is stable
        assert_eq!(ZoneConfig::parse(&z.to_xml()).unwrap(), z);
    }
}

#[test]
fn round_trip_keeps_every_element_and_attribute_in_order() {
    fn flatten(e: &Element, out: &mut Vec<String>) {
        out.push(format!("<{}>", e.name));
        for (k, v) in &e.attrs {
            out.push(format!("{k}={v}"));
        }
        for c in e.elements() {
            flatten(c, out);
        }
    }
    for p in zone_xml_files() {
        let a = Document::parse(&read(&p)).unwrap();
        let b = Document::parse(&ZoneConfig::parse(&read(&p)).unwrap().to_xml()).unwrap();
        let (mut fa, mut fb) = (vec![], vec![]);
        flatten(&a.root, &mut fa);
        flatten(&b.root, &mut fb);
        assert_eq!(fa, fb, "{}", p.display());
    }
}

#[test]
fn rewriting_after_a_change_keeps_unknown_content() {
    let p = oracle().join("vmadm/vmload-xml/bhyve-disk-sort.xml");
    let mut z = ZoneConfig::parse(&read(&p)).unwrap();
    z.root_mut()
        .children
        .push(Node::Element(Element::new("future").with_attr("k", "v")));
    z.set("brand", "joyent");
    let again = ZoneConfig::parse(&z.to_xml()).unwrap();
    assert_eq!(again.brand(), "joyent");
    assert!(again.to_xml().contains("<future k=\"v\"/>"));
    assert_eq!(again.devices().len(), 2);
    assert_eq!(again.devices()[0].net_attrs.len(), 6);
}

#[test]
fn garbage_zone_file_is_a_clear_error() {
    let text = read(&oracle().join("vmadm/vmload-xml/garbage.xml"));
    let e = ZoneConfig::parse(&text).unwrap_err();
    assert!(e.to_string().starts_with("syntax error"), "{e}");
}

/// A global /dev like a SmartOS host with bhyve loaded.
fn dev_tree(zone: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    for f in [
        "null",
        "zero",
        "zfs",
        "viona",
        "vmmctl",
        "vmm/buildvm0",
        "vmm/other",
        "tcp",
        "ip",
        "dld",
        "kvm",
        "dtrace/helper",
        "dtrace/provider/fbt",
        "pts/0",
    ] {
        let p = d.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "").unwrap();
    }
    fs::create_dir_all(d.join(format!("zcons/{zone}"))).unwrap();
    fs::write(d.join(format!("zcons/{zone}/zoneconsole")), "").unwrap();
    fs::create_dir_all(d.join(format!("zvol/dsk/zones/{zone}"))).unwrap();
    fs::write(d.join(format!("zvol/dsk/zones/{zone}/vol0")), "").unwrap();
    fs::create_dir_all(d.join("zvol/dsk/zones/someone-else")).unwrap();
    fs::write(d.join("zvol/dsk/zones/someone-else/vol0"), "").unwrap();
    t
}

fn seen(brand: &BrandFiles, zone: &str, ip: &str, devs: &[&str], dev: &Path) -> Vec<String> {
    let zd: Vec<DeviceResource> = devs
        .iter()
        .map(|m| DeviceResource {
            matches: m.to_string(),
            net_attrs: vec![],
        })
        .collect();
    visible_devices(
        &brand.platform,
        &ZoneFacts::new(zone, ip, "zones"),
        &zd,
        dev,
    )
    .unwrap()
    .into_keys()
    .collect()
}

const BHYVE_NODES: &[&str] = &[
    "/dev/vmmctl",
    "/dev/vmm",
    "/dev/vmm/buildvm0",
    "/dev/vmm/other",
    "/dev/viona",
];

#[test]
fn builder_zone_sees_the_bhyve_devices_and_joyent_does_not() {
    let z = "c1a5e2f4-0000-4000-8000-000000000001";
    let dev = dev_tree(z);
    let b = seen(&brands::builder(), z, "exclusive", &[], dev.path());
    for n in BHYVE_NODES {
        assert!(b.contains(&n.to_string()), "builder zone lacks {n}: {b:?}");
    }
    let j = seen(&brands::joyent(), z, "exclusive", &[], dev.path());
    for n in BHYVE_NODES {
        assert!(!j.contains(&n.to_string()), "joyent zone sees {n}");
    }
    // what both see: the ordinary nodes, renamed console, symlinks, own zvols only
    for s in [&b, &j] {
        for n in [
            "/dev/null",
            "/dev/zfs",
            "/dev/zconsole",
            "/dev/console",
            "/dev/stdout",
            "/dev/dld",
        ] {
            assert!(s.contains(&n.to_string()), "missing {n}");
        }
        assert!(s.contains(&format!("/dev/zvol/dsk/zones/{z}/vol0")));
        assert!(!s.iter().any(|p| p.contains("someone-else")));
        assert!(!s.contains(&"/dev/kvm".to_string()));
        assert!(s.contains(&"/dev/dtrace/provider/fbt".to_string()));
    }
    // builder = joyent + exactly the bhyve nodes
    let extra: Vec<&String> = b.iter().filter(|p| !j.contains(p)).collect();
    assert_eq!(extra.len(), BHYVE_NODES.len(), "{extra:?}");
}

#[test]
fn joyent_zone_with_the_rescue_device_resources_sees_them() {
    let z = "c1a5e2f4-0000-4000-8000-000000000002";
    let dev = dev_tree(z);
    let rescued = seen(
        &brands::joyent(),
        z,
        "exclusive",
        brand::devices::BHYVE_ZONE_DEVICES,
        dev.path(),
    );
    let builder = seen(&brands::builder(), z, "exclusive", &[], dev.path());
    assert_eq!(
        rescued, builder,
        "a rescued joyent zone must see exactly what a builder zone sees"
    );
    // only one of the two resources: no vmm
    let half = seen(
        &brands::joyent(),
        z,
        "exclusive",
        &["/dev/viona"],
        dev.path(),
    );
    assert!(half.contains(&"/dev/viona".to_string()));
    assert!(!half.contains(&"/dev/vmmctl".to_string()));
}

#[test]
fn ip_type_filters_devices() {
    let z = "z";
    let dev = dev_tree(z);
    let shared = seen(&brands::builder(), z, "shared", &[], dev.path());
    assert!(!shared.contains(&"/dev/dld".to_string()));
    assert!(!shared.contains(&"/dev/ip".to_string()));
    assert!(shared.contains(&"/dev/tcp".to_string()));
    assert!(shared.contains(&"/dev/viona".to_string()));
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn staging_writes_read_only_files_and_manifest_lines() {
    let t = tempfile::tempdir().unwrap();
    let lines = brand::stage::stage(&brands::builder(), t.path()).unwrap();
    let dir = t.path().join("usr/lib/brand/builder");
    assert_eq!(mode(&dir), 0o755);
    for f in ["config.xml", "platform.xml", "Builder.xml"] {
        assert_eq!(mode(&dir.join(f)), 0o444, "{f}");
    }
    assert_eq!(
        lines,
        [
            "d usr/lib/brand/builder 0755 root bin",
            "f usr/lib/brand/builder/config.xml 0444 root bin",
            "f usr/lib/brand/builder/platform.xml 0444 root bin",
            "f usr/lib/brand/builder/Builder.xml 0444 root bin",
        ]
    );
    // staging again over read-only files works and changes nothing
    let before = fs::read(dir.join("platform.xml")).unwrap();
    brand::stage::stage(&brands::builder(), t.path()).unwrap();
    assert_eq!(fs::read(dir.join("platform.xml")).unwrap(), before);
    assert_eq!(
        Platform::parse(&String::from_utf8(before).unwrap()).unwrap(),
        brands::builder().platform
    );
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_brand"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cli_stage_then_ls_shows_modes_and_manifest() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("proto");
    let man = t.path().join("manifest");
    let o = cli(&[
        "stage",
        "--dest",
        dest.to_str().unwrap(),
        "--manifest",
        man.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read(&man), stdout(&o));
    assert!(stdout(&o).starts_with("d usr/lib/brand/builder 0755 root bin\n"));
    let ls = Command::new("ls")
        .arg("-l")
        .arg(dest.join("usr/lib/brand/builder"))
        .output()
        .unwrap();
    let ls = stdout(&ls);
    for f in ["Builder.xml", "config.xml", "platform.xml"] {
        let line = ls
            .lines()
            .find(|l| l.ends_with(f))
            .unwrap_or_else(|| panic!("{f} not in {ls}"));
        assert!(line.starts_with("-r--r--r--"), "{line}");
    }
    let lsd = Command::new("ls")
        .arg("-ld")
        .arg(dest.join("usr/lib/brand/builder"))
        .output()
        .unwrap();
    assert!(stdout(&lsd).starts_with("drwxr-xr-x"), "{}", stdout(&lsd));
}

#[test]
fn cli_show_prints_the_parts() {
    let o = cli(&["show", "builder", "platform"]);
    assert!(o.status.success());
    let p = Platform::parse(&stdout(&o)).unwrap();
    assert_eq!(p, brands::builder().platform);
    let o = cli(&["show", "builder", "template"]);
    assert_eq!(ZoneConfig::parse(&stdout(&o)).unwrap().brand(), "builder");
    let o = cli(&["show", "builder"]);
    assert_eq!(stdout(&o).matches("==> /usr/lib/brand/builder/").count(), 3);
    let o = cli(&["show", "joyent-minimal", "template"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn cli_errors_and_usage_exit_codes() {
    let o = cli(&["show", "nosuchbrand"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("brand: unknown brand \"nosuchbrand\""),
        "{err}"
    );
    assert_eq!(cli(&["show"]).status.code(), Some(2));
    assert_eq!(cli(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(cli(&["devices", "--zone"]).status.code(), Some(2));
}

fn install_hooks(root: &Path, brand: &str) {
    let d = root.join("usr/lib/brand").join(brand);
    fs::create_dir_all(&d).unwrap();
    for h in [
        "jinstall",
        "jattach",
        "jdetach",
        "juninstall",
        "prestate",
        "poststate",
        "query",
    ] {
        let p = d.join(h);
        fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn cli_check_finds_missing_hooks_and_broken_files() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_str().unwrap();
    // nothing installed
    let o = cli(&["check", "--root", root]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("brand directory missing"));
    // staged, but the joyent hook programs are missing
    brand::stage::stage(&brands::builder(), t.path()).unwrap();
    let o = cli(&["check", "--root", root]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("FAIL: /usr/lib/brand/builder/config.xml: install hook /usr/lib/brand/joyent/jinstall does not exist"), "{}", stdout(&o));
    // with the hooks in place everything is consistent
    install_hooks(t.path(), "joyent");
    let o = cli(&["check", "--root", root]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("ok:   /usr/lib/brand/builder/platform.xml: platform name \"builder\"")
    );
    // a corrupt platform.xml is reported
    let p = t.path().join("usr/lib/brand/builder/platform.xml");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&p, "<platform name=\"builder\">").unwrap();
    let o = cli(&["check", "--root", root]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("FAIL: /usr/lib/brand/builder/platform.xml: syntax error"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn cli_devices_reads_the_zone_file_and_platform_under_a_root() {
    let z = "c1a5e2f4-0000-4000-8000-000000000003";
    let t = dev_tree(z);
    let root = tempfile::tempdir().unwrap();
    fs::rename(t.path(), root.path().join("dev")).unwrap();
    brand::stage::stage(&brands::builder(), root.path()).unwrap();
    brand::stage::stage(&brands::joyent(), root.path()).unwrap();
    let r = root.path().to_str().unwrap();
    let o = cli(&["devices", "--root", r, "--zone", z]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l == "/dev/vmmctl"));
    assert!(out.lines().any(|l| l == "/dev/vmm/"));
    assert!(out.lines().any(|l| l == "/dev/console -> zconsole"));
    assert!(out
        .lines()
        .any(|l| l == format!("/dev/zconsole (/dev/zcons/{z}/zoneconsole)")));
    // a joyent zone file without device resources
    fs::create_dir_all(root.path().join("etc/zones")).unwrap();
    let mut zc = ZoneConfig::new(z, &format!("/zones/{z}"), "joyent");
    zc.set("ip-type", "exclusive");
    fs::write(root.path().join(format!("etc/zones/{z}.xml")), zc.to_xml()).unwrap();
    let out = stdout(&cli(&["devices", "--root", r, "--zone", z]));
    assert!(!out.contains("vmm"), "{out}");
    // ... and with them (the rescue case)
    zc.add_device("/dev/viona");
    zc.add_device("/dev/vmm*");
    fs::write(root.path().join(format!("etc/zones/{z}.xml")), zc.to_xml()).unwrap();
    let out = stdout(&cli(&["devices", "--root", r, "--zone", z]));
    assert!(
        out.lines().any(|l| l == "/dev/vmmctl") && out.lines().any(|l| l == "/dev/viona"),
        "{out}"
    );
    // a brand that is not installed is a clear error
    let o = cli(&["devices", "--root", r, "--zone", z, "--brand", "bhyve"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("brand bhyve is not installed"));
}

#[test]
fn man_page_passes_mandoc_lint() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/brand.1");
    let msgs = testkit::mandoc_lint(&page);
    assert!(msgs.is_empty(), "mandoc -T lint: {msgs:#?}");
    // every subcommand of the CLI is documented
    let text = read(&page);
    for sub in ["show", "stage", "check", "devices"] {
        assert!(text.contains(&format!(".Cm {sub}")), "man page lacks {sub}");
        assert!(cli(&[sub, "--help"]).status.success());
    }
}

#[test]
fn cli_devices_refuses_deep_xml_and_path_names() {
    let z = "c1a5e2f4-0000-4000-8000-000000000009";
    let root = tempfile::tempdir().unwrap();
    brand::stage::stage(&brands::builder(), root.path()).unwrap();
    fs::create_dir_all(root.path().join("etc/zones")).unwrap();
    fs::create_dir_all(root.path().join("dev")).unwrap();
    let deep = format!("{}{}", "<zone>".repeat(100_000), "</zone>".repeat(100_000));
    fs::write(root.path().join(format!("etc/zones/{z}.xml")), deep).unwrap();
    let r = root.path().to_str().unwrap();
    let o = cli(&["devices", "--root", r, "--zone", z]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("nested deeper than 64 levels") && e.lines().count() == 1,
        "{e}"
    );
    let o = cli(&["devices", "--root", r, "--zone", "../../etc/passwd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a zone name"));
}

#[test]
fn builder_platform_keeps_upstreams_device_order() {
    let b = brands::builder();
    let devs: Vec<&str> = b
        .platform
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Device(d) if d.ip_type.is_none() && d.name.is_none() => Some(d.matches.as_str()),
            _ => None,
        })
        .collect();
    let at = |m: &str| {
        devs.iter()
            .position(|d| *d == m)
            .unwrap_or_else(|| panic!("no {m}"))
    };
    // viona in its alphabetical place
    assert_eq!(at("viona"), at("urandom") + 1);
    assert_eq!(at("vnd/*"), at("viona") + 1);
    // vmm* right after the zvol entries, its comment just before it
    assert_eq!(at("vmm*"), at("zvol/rdsk/%P/%z/*") + 1);
    let all = &b.platform.entries;
    let vmm = all
        .iter()
        .position(|e| matches!(e, Entry::Device(d) if d.matches == "vmm*"))
        .unwrap();
    assert!(matches!(&all[vmm - 1], Entry::Comment(c) if c.contains("sdev")));
    // and in the written file, in that order
    let x = b.platform.to_xml();
    let pos = |s: &str| x.find(s).unwrap_or_else(|| panic!("{s} not in {x}"));
    assert!(pos("\"urandom\"") < pos("\"viona\"") && pos("\"viona\"") < pos("\"vnd/*\""));
    assert!(pos("zvol/rdsk/%P/%z/*") < pos("\"vmm*\""));
}
