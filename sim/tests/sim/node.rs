//! A simulated node driven through its commands, as a user would.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const SIM: &str = env!("CARGO_BIN_EXE_sim");

struct Node {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn sim(args: &[&str]) -> Output {
    Command::new(SIM).args(args).output().unwrap()
}

impl Node {
    fn new() -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("node");
        let o = sim(&["node", "init", root.to_str().unwrap(), "--hostname", "cn1"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Node { _tmp: tmp, root }
    }
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(SIM)
            .arg(tool)
            .args(args)
            .env("SIM_ROOT", &self.root)
            .output()
            .unwrap()
    }
    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let o = self.run(tool, args);
        assert!(
            o.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn tmp(&self) -> &Path {
        self._tmp.path()
    }
    /// Every path under the node with a digest of its content.
    fn snapshot(&self) -> BTreeMap<String, String> {
        walkdir::WalkDir::new(&self.root)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| !e.path().ends_with("node.lock"))
            .map(|e| {
                let rel = e
                    .path()
                    .strip_prefix(&self.root)
                    .unwrap()
                    .display()
                    .to_string();
                let what = if e.file_type().is_file() {
                    format!("{:?}", fs::read(e.path()).unwrap())
                } else if e.file_type().is_symlink() {
                    fs::read_link(e.path()).unwrap().display().to_string()
                } else {
                    "dir".into()
                };
                (rel, what)
            })
            .collect()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sysinfo_has_the_keys_clients_read() {
    let n = Node::new();
    let v: Value = serde_json::from_str(&n.ok("sysinfo", &[])).unwrap();
    for k in [
        "Live Image",
        "UUID",
        "Hostname",
        "CPU Count",
        "MiB of Memory",
        "Zpool Size in GiB",
        "Network Interfaces",
        "SDC Version",
        "Setup",
    ] {
        assert!(!v[k].is_null(), "sysinfo lacks {k}");
    }
    assert!(
        v["Boot Parameters"].is_object(),
        "Boot Parameters must be an object"
    );
    assert_eq!(v["Hostname"], "cn1");
    assert_eq!(v["Live Image"], "20250101T000000Z");
    let nics = v["Network Interfaces"].as_object().unwrap();
    assert!(nics.values().any(|n| n["NIC Names"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "admin")));
    // nictagadm: name,mac,link,type with at least 4 fields each
    let tags = n.ok("nictagadm", &["list", "-p", "-d", ","]);
    assert!(tags.lines().count() >= 2);
    for l in tags.lines() {
        assert_eq!(l.split(',').count(), 4, "{l}");
    }
    assert!(tags.starts_with("admin,"));
    assert_eq!(n.ok("uname", &["-v"]).trim(), "joyent_20250101T000000Z");
    // vmadm asks zpool for the pools
    assert_eq!(
        n.ok("zpool", &["list", "-H", "-p", "-o", "name"]),
        "zones\n"
    );
    let o = n.run("zpool", &["list", "nosuchpool"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "zpool: cannot open 'nosuchpool': no such pool"
    );
}

#[test]
fn tools_need_a_node() {
    let o = Command::new(SIM)
        .arg("sysinfo")
        .env_remove("SIM_ROOT")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("SIM_ROOT is not set"), "{}", stderr(&o));
    let o = Command::new(SIM)
        .arg("sysinfo")
        .env("SIM_ROOT", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a sim node"));
}

fn build(n: &Node, stamp: &str, brands: &str) -> PathBuf {
    let out = n.tmp().join(format!("platform-{stamp}.tgz"));
    let o = sim(&[
        "platform",
        "build",
        "--stamp",
        stamp,
        "--brands",
        brands,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn platform_image_has_the_real_layout() {
    let n = Node::new();
    let t = build(&n, "20261101T000000Z", "joyent,builder");
    let list = Command::new("tar").arg("tzf").arg(&t).output().unwrap();
    let names = String::from_utf8(list.stdout).unwrap();
    for p in [
        "platform-20261101T000000Z/i86pc/kernel/amd64/unix",
        "platform-20261101T000000Z/i86pc/amd64/boot_archive",
        "platform-20261101T000000Z/i86pc/amd64/boot_archive.hash",
        "platform-20261101T000000Z/i86pc/amd64/boot_archive.manifest",
        "platform-20261101T000000Z/i86pc/amd64/boot_archive.gitstatus",
        "platform-20261101T000000Z/etc/version/platform",
    ] {
        assert!(names.lines().any(|l| l == p), "missing {p} in {names}");
    }
    let x = tempfile::tempdir().unwrap();
    assert!(Command::new("tar")
        .arg("xzf")
        .arg(&t)
        .arg("-C")
        .arg(x.path())
        .status()
        .unwrap()
        .success());
    let pi = x.path().join("platform-20261101T000000Z");
    let ba = fs::read(pi.join("i86pc/amd64/boot_archive")).unwrap();
    let hash = fs::read_to_string(pi.join("i86pc/amd64/boot_archive.hash")).unwrap();
    let sha = Command::new("sha1sum")
        .arg(pi.join("i86pc/amd64/boot_archive"))
        .output()
        .unwrap();
    assert_eq!(
        hash.trim(),
        String::from_utf8(sha.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    );
    assert!(!ba.is_empty());
    let inner = Command::new("tar")
        .arg("tf")
        .arg(pi.join("i86pc/amd64/boot_archive"))
        .output()
        .unwrap();
    let inner = String::from_utf8(inner.stdout).unwrap();
    assert!(
        inner
            .lines()
            .any(|l| l == "usr/lib/brand/builder/platform.xml"),
        "{inner}"
    );
    assert!(inner.lines().any(|l| l == "usr/lib/brand/joyent/jinstall"));
    let manifest = fs::read_to_string(pi.join("i86pc/amd64/boot_archive.manifest")).unwrap();
    assert!(
        manifest.contains("  ./usr/lib/brand/builder/config.xml\n"),
        "{manifest}"
    );
    assert_eq!(
        fs::read_to_string(pi.join("etc/version/platform")).unwrap(),
        "20261101T000000Z\n"
    );
    // a bad stamp is refused
    let o = sim(&[
        "platform",
        "build",
        "--stamp",
        "2026",
        "--out",
        n.tmp().join("x.tgz").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid platform stamp"));
}

#[test]
fn reboot_follows_the_activated_platform() {
    let n = Node::new();
    assert!(!n.root.join("usr/lib/brand/builder").exists());
    let t = build(
        &n,
        "20261101T000000Z",
        "joyent,joyent-minimal,lx,bhyve,kvm,builder",
    );
    let out = n.ok("piadm", &["install", t.to_str().unwrap()]);
    assert!(out.contains("Installed PI 20261101T000000Z"), "{out}");
    // installed but not active: nothing changes at boot
    let list = n.ok("piadm", &["list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("20261101T000000Z"))
        .unwrap();
    assert!(row.ends_with("no    no"), "{row}");
    n.ok("piadm", &["activate", "20261101T000000Z"]);
    let row = n
        .ok("piadm", &["list"])
        .lines()
        .find(|l| l.starts_with("20261101T000000Z"))
        .unwrap()
        .to_string();
    assert!(
        row.contains(" next ") && row.ends_with("no    yes"),
        "{row}"
    );
    let o = sim(&["reboot", "--root", n.root.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(n.ok("uname", &["-v"]).trim(), "joyent_20261101T000000Z");
    let v: Value = serde_json::from_str(&n.ok("sysinfo", &[])).unwrap();
    assert_eq!(v["Live Image"], "20261101T000000Z");
    assert!(n.root.join("usr/lib/brand/builder/platform.xml").exists());
    // back to the old platform: the builder brand is gone again
    n.ok("piadm", &["activate", "20250101T000000Z"]);
    assert!(sim(&["reboot", "--root", n.root.to_str().unwrap()])
        .status
        .success());
    assert!(!n.root.join("usr/lib/brand/builder").exists());
    assert!(n.root.join("usr/lib/brand/joyent/platform.xml").exists());
    // unknown stamps are refused
    let o = n.run("piadm", &["activate", "20990101T000000Z"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not installed"));
    // installing the same image twice is refused
    let o = n.run("piadm", &["install", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already installed"), "{}", stderr(&o));
}

/// A gzip tar with raw entry names (the tar crate refuses to write `..`).
fn raw_tgz(path: &Path, entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            g.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    fs::write(path, b.into_inner().unwrap().finish().unwrap()).unwrap();
}

#[test]
fn hostile_tarballs_are_refused_and_change_nothing() {
    let n = Node::new();
    let good = build(&n, "20261101T000000Z", "joyent");
    let before = n.snapshot();
    let f = tar::EntryType::Regular;
    type Entries<'a> = Vec<(&'a str, tar::EntryType, &'a [u8], Option<&'a str>)>;
    let cases: Vec<(&str, Entries, &str)> = vec![
        (
            "dotdot",
            vec![("platform-20261101T000000Z/../../evil", f, b"x", None)],
            "'..'",
        ),
        (
            "absolute",
            vec![("/platform-20261101T000000Z/etc/x", f, b"x", None)],
            "absolute",
        ),
        (
            "symlink",
            vec![(
                "platform-20261101T000000Z/i86pc",
                tar::EntryType::Symlink,
                b"",
                Some("../../../etc"),
            )],
            "leaving the platform directory",
        ),
        (
            "abs-symlink",
            vec![(
                "platform-20261101T000000Z/x",
                tar::EntryType::Symlink,
                b"",
                Some("/etc/passwd"),
            )],
            "leaving the platform directory",
        ),
        (
            "outside",
            vec![("etc/passwd", f, b"x", None)],
            "outside a platform-<stamp> directory",
        ),
        (
            "device",
            vec![(
                "platform-20261101T000000Z/dev",
                tar::EntryType::Char,
                b"",
                None,
            )],
            "refusing Char",
        ),
    ];
    for (name, entries, why) in cases {
        let p = n.tmp().join(format!("{name}.tgz"));
        raw_tgz(&p, &entries);
        let o = n.run("piadm", &["install", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{name} accepted");
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{name}: {}", stderr(&o));
        assert_eq!(n.snapshot(), before, "{name} changed the node");
    }
    // bad hash: a real image whose boot archive was altered after hashing
    let x = tempfile::tempdir().unwrap();
    assert!(Command::new("tar")
        .arg("xzf")
        .arg(&good)
        .arg("-C")
        .arg(x.path())
        .status()
        .unwrap()
        .success());
    let ba = x
        .path()
        .join("platform-20261101T000000Z/i86pc/amd64/boot_archive");
    let mut data = fs::read(&ba).unwrap();
    data.extend_from_slice(b"tampered");
    fs::write(&ba, data).unwrap();
    let bad = n.tmp().join("badhash.tgz");
    assert!(Command::new("tar")
        .arg("czf")
        .arg(&bad)
        .arg("-C")
        .arg(x.path())
        .arg("platform-20261101T000000Z")
        .status()
        .unwrap()
        .success());
    let o = n.run("piadm", &["install", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("hash mismatch"), "{}", stderr(&o));
    assert_eq!(n.snapshot(), before, "bad hash changed the node");
    // garbage is refused too
    let g = n.tmp().join("garbage.tgz");
    fs::write(&g, b"not a tarball").unwrap();
    assert_eq!(
        n.run("piadm", &["install", g.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(n.snapshot(), before);
    // and the good one installs
    n.ok("piadm", &["install", good.to_str().unwrap()]);
    assert!(n
        .root
        .join("zones/boot/platform-20261101T000000Z/etc/version/platform")
        .exists());
}

#[test]
fn imgadm_installs_lists_gets_and_deletes_local_images() {
    let n = Node::new();
    let file = n.tmp().join("img.zfs.gz");
    fs::write(&file, b"image bytes").unwrap();
    let sha = Command::new("sha1sum").arg(&file).output().unwrap();
    let sha = String::from_utf8(sha.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let uuid = "e44ed3e0-910b-11ed-a5d4-00151714048c";
    let manifest = serde_json::json!({
        "v": 2, "uuid": uuid, "name": "base-64-lts", "version": "22.4.0", "type": "zone-dataset",
        "os": "smartos", "published_at": "2023-01-10T00:00:00Z", "state": "active", "disabled": false,
        "public": true, "owner": "00000000-0000-0000-0000-000000000000",
        "files": [{"sha1": sha, "size": 11, "compression": "gzip"}]
    });
    let m = n.tmp().join("img.json");
    fs::write(&m, manifest.to_string()).unwrap();
    let out = n.ok(
        "imgadm",
        &[
            "install",
            "-m",
            m.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.contains(uuid));
    let list: Value = serde_json::from_str(&n.ok("imgadm", &["list", "-j"])).unwrap();
    assert_eq!(list[0]["manifest"]["uuid"], uuid);
    assert_eq!(list[0]["zpool"], "zones");
    let got: Value = serde_json::from_str(&n.ok("imgadm", &["get", "-P", "zones", uuid])).unwrap();
    assert_eq!(got["manifest"]["name"], "base-64-lts");
    let o = n.run(
        "imgadm",
        &[
            "install",
            "-m",
            m.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ImageAlreadyInstalled"));
    n.ok("imgadm", &["delete", uuid]);
    let o = n.run("imgadm", &["get", uuid]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!("imgadm get: error (ImageNotInstalled): image \"{uuid}\" was not found on zpool \"zones\"")
    );
    // a file that does not match the manifest's sha1 is refused
    fs::write(&file, b"other bytes").unwrap();
    let o = n.run(
        "imgadm",
        &[
            "install",
            "-m",
            m.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("sha1 mismatch"));
    assert_eq!(n.ok("imgadm", &["list", "-j"]).trim(), "[]");
}

#[test]
fn zoneadm_and_zlogin_on_an_empty_node() {
    let n = Node::new();
    assert_eq!(
        n.ok("zoneadm", &["list", "-p", "-c"]),
        "0:global:running:/::liveimg:shared:0\n"
    );
    let o = n.run("zoneadm", &["-z", "nope", "list", "-p"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope: No such zone configured"));
    let o = n.run("zlogin", &["nope", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("zone 'nope' unknown"));
    assert_eq!(n.run("zoneadm", &["frob"]).status.code(), Some(2));
}

const IMG: &str = "e44ed3e0-910b-11ed-a5d4-00151714048c";
const RFD_PAYLOAD: &str = r#"{"alias":"cloud-image-builder","hostname":"cloud-image-builder","brand":"builder","limit_priv":"default,proc_clock_highres,sys_dl_config","max_physical_memory":8192,"tmpfs":8192,"fs_allowed":"ufs,pcfs,tmpfs","cpu_cap":600,"image_uuid":"e44ed3e0-910b-11ed-a5d4-00151714048c","zfs_root_compression":"lz4","quota":50,"delegate_dataset":true,"resolvers":["8.8.8.8","8.8.4.4"],"nics":[{"allow_ip_spoofing":true,"nic_tag":"admin","ip":"dhcp"}]}"#;

fn install_image(n: &Node) {
    let f = n.tmp().join("base.zfs.gz");
    fs::write(&f, b"base image").unwrap();
    let m = n.tmp().join("base.json");
    let manifest = serde_json::json!({"v": 2, "uuid": IMG, "name": "base-64-lts", "version": "22.4.0",
        "type": "zone-dataset", "os": "smartos", "published_at": "2023-01-10T00:00:00Z"});
    fs::write(&m, manifest.to_string()).unwrap();
    n.ok(
        "imgadm",
        &[
            "install",
            "-m",
            m.to_str().unwrap(),
            "-f",
            f.to_str().unwrap(),
        ],
    );
}

fn vmadm_stdin(n: &Node, args: &[&str], payload: &str) -> Output {
    use std::io::Write;
    let mut c = Command::new(SIM)
        .arg("vmadm")
        .args(args)
        .env("SIM_ROOT", &n.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    c.wait_with_output().unwrap()
}

fn created_uuid(o: &Output) -> String {
    let e = stderr(o);
    e.lines()
        .find_map(|l| l.strip_prefix("Successfully created VM "))
        .unwrap_or_else(|| panic!("no success line in {e}"))
        .to_string()
}

#[test]
fn vmadm_create_needs_the_brand_on_the_booted_platform() {
    let n = Node::new();
    install_image(&n);
    let o = vmadm_stdin(&n, &["create"], RFD_PAYLOAD);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "brand \"builder\" is not installed on the booted platform (20250101T000000Z)"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        n.ok("zoneadm", &["list", "-cp"]).lines().count(),
        1,
        "nothing was created"
    );
    // validate knows the brand (vmadm's table), so it says VALID
    let o = vmadm_stdin(&n, &["validate", "create"], RFD_PAYLOAD);
    assert!(o.status.success());
    assert_eq!(
        stderr(&o).trim(),
        "VALID 'create' payload for builder brand VMs."
    );
}

#[test]
fn vmadm_create_reports_what_vmadm_reports() {
    let n = Node::new();
    // no image installed: image_uuid is a bad value
    let o = vmadm_stdin(
        &n,
        &["create"],
        &RFD_PAYLOAD.replace("builder\"", "joyent\""),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim(), "Invalid value(s) for: image_uuid");
    install_image(&n);
    let o = vmadm_stdin(&n, &["create"], r#"{"brand":"joyent"}"#);
    assert_eq!(stderr(&o).trim(), "Missing required properties: image_uuid");
    let o = vmadm_stdin(&n, &["create"], "{not json");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("Invalid JSON payload: "));
    // an HVM-only property is warned about and stripped, and the zone is made
    let payload =
        format!(r#"{{"brand":"joyent","image_uuid":"{IMG}","vcpus":4,"autoboot":false}}"#);
    let o = vmadm_stdin(&n, &["create"], &payload);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Warning, invalid create property: [vcpus] removing from payload."),
        "{}",
        stderr(&o)
    );
    let uuid = created_uuid(&o);
    let vm: Value = serde_json::from_str(&n.ok("vmadm", &["get", &uuid])).unwrap();
    assert!(vm.get("vcpus").is_none());
    assert_eq!(vm["state"], "stopped");
    let o = n.run("vmadm", &["get", "00000000-0000-0000-0000-000000000001"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "zoneadm: 00000000-0000-0000-0000-000000000001: No such zone configured"
    );
}

#[test]
fn vmadm_lifecycle_and_vm_objects_have_what_a_ui_needs() {
    let n = Node::new();
    let t = build(
        &n,
        "20261101T000000Z",
        "joyent,joyent-minimal,lx,bhyve,kvm,builder",
    );
    n.ok("piadm", &["install", t.to_str().unwrap()]);
    n.ok("piadm", &["activate", "20261101T000000Z"]);
    assert!(sim(&["reboot", "--root", n.root.to_str().unwrap()])
        .status
        .success());
    install_image(&n);
    let o = vmadm_stdin(&n, &["create"], RFD_PAYLOAD);
    assert!(o.status.success(), "{}", stderr(&o));
    let uuid = created_uuid(&o);
    let vm: Value = serde_json::from_str(&n.ok("vmadm", &["get", &uuid])).unwrap();
    // the keys smartos-ui requires of every VM, and of zones
    for k in [
        "brand",
        "v",
        "uuid",
        "state",
        "hvm",
        "quota",
        "firewall_enabled",
        "autoboot",
        "billing_id",
        "owner_uuid",
        "limit_priv",
        "zfs_filesystem",
        "zonepath",
        "create_timestamp",
        "last_modified",
        "platform_buildstamp",
        "nics",
        "image_uuid",
    ] {
        assert!(vm.get(k).is_some(), "VM object lacks {k}: {vm:#}");
    }
    assert_eq!(vm["brand"], "builder");
    assert_eq!(vm["state"], "running");
    assert_eq!(vm["alias"], "cloud-image-builder");
    assert_eq!(vm["quota"], 50);
    assert_eq!(vm["max_physical_memory"], 8192);
    assert_eq!(vm["platform_buildstamp"], "20261101T000000Z");
    assert_eq!(vm["datasets"][0], format!("zones/{uuid}/data"));
    assert_eq!(vm["nics"][0]["allow_ip_spoofing"], true);
    // zfs answers for the zone's datasets as vmadm asks
    let z = n.ok(
        "zfs",
        &[
            "get",
            "-Hp",
            "-o",
            "name,property,value",
            "quota,compression",
            &format!("zones/{uuid}"),
            &format!("zones/{uuid}/data"),
        ],
    );
    assert_eq!(
        z,
        format!(
            "zones/{uuid}\tquota\t{}\nzones/{uuid}\tcompression\tlz4\nzones/{uuid}/data\tquota\t0\nzones/{uuid}/data\tcompression\toff\n",
            50u64 << 30
        )
    );
    let o = n.run("zfs", &["get", "quota", "zones/nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "zfs: cannot open 'zones/nope': dataset does not exist"
    );
    // zoneadm and zlogin see the running zone; its /dev has the bhyve nodes
    let line = n.ok("zoneadm", &["-z", &uuid, "list", "-p"]);
    assert!(
        line.starts_with("1:") && line.contains(":running:") && line.contains(":builder:excl:"),
        "{line}"
    );
    assert!(n
        .run(
            "zlogin",
            &[&uuid, "test", "-e", "dev/vmmctl", "-a", "-e", "dev/viona"]
        )
        .status
        .success());
    assert_eq!(n.ok("zlogin", &[&uuid, "echo", "$ZONENAME"]).trim(), uuid);
    // stop, start, delete
    let o = n.run("vmadm", &["stop", &uuid]);
    assert_eq!(
        stderr(&o).trim(),
        format!("Successfully completed stop for VM {uuid}")
    );
    assert!(!n.root.join(format!("zones/{uuid}/root/dev")).exists());
    let o = n.run("zlogin", &[&uuid, "true"]);
    assert!(
        stderr(&o).contains("login allowed only to running zones"),
        "{}",
        stderr(&o)
    );
    let o = n.run("vmadm", &["start", &uuid]);
    assert_eq!(stderr(&o).trim(), format!("Successfully started VM {uuid}"));
    let o = n.run("vmadm", &["start", &uuid]);
    assert!(o.status.success(), "starting a running VM is a no-op");
    let o = n.run("vmadm", &["delete", &uuid]);
    assert_eq!(stderr(&o).trim(), format!("Successfully deleted VM {uuid}"));
    assert!(!n.root.join(format!("etc/zones/{uuid}.xml")).exists());
    assert_eq!(n.ok("zoneadm", &["list", "-cp"]).lines().count(), 1);
}

#[test]
fn vminfod_serves_ping_and_full_vm_objects() {
    use std::io::{BufRead, BufReader, Read as _};
    let n = Node::new();
    install_image(&n);
    let o = vmadm_stdin(
        &n,
        &["create"],
        &format!(r#"{{"brand":"joyent","image_uuid":"{IMG}","alias":"web01"}}"#),
    );
    let uuid = created_uuid(&o);
    let mut child = Command::new(SIM)
        .args([
            "vminfod",
            "--root",
            n.root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let get = |path: &str| -> (u16, String) {
        rt.block_on(async {
            let r = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (code, _) = get("/ping");
    assert_eq!(code, 200);
    let (code, body) = get("/vms");
    assert_eq!(code, 200);
    let vms: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(vms.as_array().unwrap().len(), 1);
    assert_eq!(vms[0]["uuid"], uuid.as_str());
    assert_eq!(vms[0]["alias"], "web01");
    let (code, body) = get(&format!("/vms/{uuid}"));
    assert_eq!(code, 200);
    let vm: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(vm["state"], "running");
    assert_eq!(vm["brand"], "joyent");
    let (code, _) = get("/vms/00000000-0000-0000-0000-000000000009");
    assert_eq!(code, 404);
    child.kill().unwrap();
    let _ = child.wait();
    // one bunyan record per request on stderr
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let recs: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let vms_req = recs
        .iter()
        .find(|r| r["path"] == "/vms")
        .unwrap_or_else(|| panic!("no request record in {log}"));
    assert_eq!(vms_req["name"], "vminfod");
    assert_eq!(vms_req["status"], 200);
    assert_eq!(vms_req["level"], 30);
    assert!(recs.iter().any(|r| r["status"] == 404));
}

#[test]
fn man_page_passes_mandoc_lint_and_names_every_command() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/sim.1");
    let msgs = testkit::mandoc_lint(&page);
    assert!(msgs.is_empty(), "mandoc -T lint: {msgs:#?}");
    let text = fs::read_to_string(&page).unwrap();
    for c in [
        "node init",
        "platform build",
        "reboot",
        "vminfod",
        "link",
        "triton",
    ] {
        assert!(text.contains(&format!(".Cm {c}")), "man page lacks {c}");
    }
    for t in [
        "vmadm",
        "zoneadm",
        "imgadm",
        "piadm",
        "sysinfo",
        "nictagadm",
        "zlogin",
        "uname",
    ] {
        assert!(
            text.contains(&format!(".Cm {t}")),
            "man page lacks tool {t}"
        );
    }
}

#[test]
fn vmadm_update_changes_the_zone_and_refuses_what_it_cannot_apply() {
    let n = Node::new();
    install_image(&n);
    let o = vmadm_stdin(
        &n,
        &["create"],
        &format!(
            r#"{{"brand":"joyent","image_uuid":"{IMG}","alias":"a1","max_physical_memory":512}}"#
        ),
    );
    let uuid = created_uuid(&o);
    let o = vmadm_stdin(
        &n,
        &["update", &uuid],
        r#"{"alias":"renamed","max_physical_memory":1024,"quota":20,"set_customer_metadata":{"user-script":"true"},"set_tags":{"role":"build"}}"#,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim(), format!("Successfully updated VM {uuid}"));
    let vm: Value = serde_json::from_str(&n.ok("vmadm", &["get", &uuid])).unwrap();
    assert_eq!(vm["alias"], "renamed");
    assert_eq!(vm["max_physical_memory"], 1024);
    assert_eq!(vm["max_swap"], 1024, "swap is raised with physical memory");
    assert_eq!(vm["quota"], 20);
    assert_eq!(vm["customer_metadata"]["user-script"], "true");
    assert_eq!(vm["tags"]["role"], "build");
    // a bad value refuses the whole update
    let xml = fs::read(n.root.join(format!("etc/zones/{uuid}.xml"))).unwrap();
    let o = vmadm_stdin(
        &n,
        &["update", &uuid],
        r#"{"alias":"x","max_physical_memory":"lots"}"#,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "Invalid value(s) for: max_physical_memory"
    );
    assert_eq!(
        fs::read(n.root.join(format!("etc/zones/{uuid}.xml"))).unwrap(),
        xml,
        "nothing changed"
    );
    // a create-only property is warned about and dropped
    let o = vmadm_stdin(&n, &["update", &uuid], r#"{"brand":"builder","alias":"y"}"#);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Warning, invalid update property: [brand] removing from payload."));
    let vm: Value = serde_json::from_str(&n.ok("vmadm", &["get", &uuid])).unwrap();
    assert_eq!(
        (vm["brand"].as_str(), vm["alias"].as_str()),
        (Some("joyent"), Some("y"))
    );
}

/// The zonecfg injection attack (fs_allowed closing its quote and adding
/// /dev/viona) and its variants through the node's vmadm: refused, no zone,
/// no device resource, no builder device in any zone's /dev.
#[test]
fn zonecfg_injection_through_vmadm_is_refused() {
    let n = Node::new();
    install_image(&n);
    let attack = "ufs\"\nadd device; set match=/dev/viona; end\nadd attr; set name=x; set type=string; set value=\"y";
    let before = n.snapshot();
    for (k, v) in [
        ("fs_allowed", attack),
        (
            "limit_priv",
            "default\"\nadd device; set match=/dev/vmm*; end\nset x=\"y",
        ),
        ("hostname", "h\nadd device; set match=/dev/viona; end"),
        ("dns_domain", "d\nEOF\ntouch /tmp/pwned\ncat <<'EOF'"),
    ] {
        let payload = serde_json::json!({"brand": "joyent", "image_uuid": IMG, k: v});
        let o = vmadm_stdin(&n, &["create"], &payload.to_string());
        assert_eq!(o.status.code(), Some(1), "{k}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim(), format!("Invalid value(s) for: {k}"));
        let o = vmadm_stdin(&n, &["validate", "create"], &payload.to_string());
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(&format!("\"{k}\"")), "{}", stderr(&o));
    }
    let nic = serde_json::json!({"brand": "joyent", "image_uuid": IMG,
        "nics": [{"nic_tag": "admin\nadd device; set match=/dev/viona; end", "ip": "dhcp"}]});
    let o = vmadm_stdin(&n, &["create"], &nic.to_string());
    assert_eq!(stderr(&o).trim(), "Invalid value(s) for: nics.*.nic_tag");
    assert_eq!(n.snapshot(), before, "a refused create changed the node");

    // a good zone, then the same attack as an update
    let payload = serde_json::json!({"brand": "joyent", "image_uuid": IMG, "autoboot": true});
    let o = vmadm_stdin(&n, &["create"], &payload.to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    let uuid = created_uuid(&o);
    let xml = n.root.join(format!("etc/zones/{uuid}.xml"));
    let zone_before = fs::read(&xml).unwrap();
    let upd = serde_json::json!({"fs_allowed": attack}).to_string();
    let o = vmadm_stdin(&n, &["update", &uuid], &upd);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        fs::read(&xml).unwrap(),
        zone_before,
        "update changed the zone"
    );
    let text = fs::read_to_string(&xml).unwrap();
    assert!(!text.contains("<device"), "{text}");
    // zlogin runs in the zone root: dev/ is the zone's /dev
    let dev = n.ok("zlogin", &[&uuid, "ls", "dev"]);
    assert!(
        dev.lines().any(|l| l.trim() == "null"),
        "not the zone's /dev: {dev}"
    );
    for d in ["viona", "vmmctl", "vmm"] {
        assert!(
            !dev.lines().any(|l| l.trim() == d),
            "{d} in the zone's /dev: {dev}"
        );
    }
}

/// A raw (not gzipped) tar, as a boot archive is.
fn raw_tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            g.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Platform images whose boot archive escapes its destination, with a
/// hash that matches: piadm install refuses them and changes nothing; an
/// archive altered after install cannot be activated.
#[test]
fn hostile_boot_archives_are_refused_at_install_and_activate() {
    let n = Node::new();
    let good = build(&n, "20261101T000000Z", "joyent");
    let before = n.snapshot();
    let f = tar::EntryType::Regular;
    let sym = tar::EntryType::Symlink;
    type Entries<'a> = Vec<(&'a str, tar::EntryType, &'a [u8], Option<&'a str>)>;
    let cases: Vec<(&str, Entries, &str)> = vec![
        (
            "dotdot",
            vec![("usr/../../../evil", f, b"x", None)],
            "refusing path",
        ),
        (
            "absolute",
            vec![("/etc/evil", f, b"x", None)],
            "refusing path",
        ),
        (
            "through-link",
            vec![("usr", sym, b"", Some("/tmp")), ("usr/evil", f, b"x", None)],
            "written through a link",
        ),
        (
            "relative-escape",
            vec![("usr/lib", sym, b"", Some("../../../../tmp"))],
            "leaving the archive",
        ),
        (
            "device",
            vec![("dev/kmem", tar::EntryType::Char, b"", None)],
            "refusing Char",
        ),
    ];
    let x = tempfile::tempdir().unwrap();
    let untar = |dir: &Path| {
        assert!(Command::new("tar")
            .arg("xzf")
            .arg(&good)
            .arg("-C")
            .arg(dir)
            .status()
            .unwrap()
            .success());
    };
    for (name, entries, why) in cases {
        let d = x.path().join(name);
        fs::create_dir(&d).unwrap();
        untar(&d);
        let amd64 = d.join("platform-20261101T000000Z/i86pc/amd64");
        let data = raw_tar(&entries);
        fs::write(amd64.join("boot_archive"), &data).unwrap();
        use sha1::Digest as _;
        let hash: String = sha1::Sha1::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        fs::write(amd64.join("boot_archive.hash"), format!("{hash}\n")).unwrap();
        let p = n.tmp().join(format!("ba-{name}.tgz"));
        assert!(Command::new("tar")
            .arg("czf")
            .arg(&p)
            .arg("-C")
            .arg(&d)
            .arg("platform-20261101T000000Z")
            .status()
            .unwrap()
            .success());
        let o = n.run("piadm", &["install", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{name} accepted: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{name}: {}", stderr(&o));
        assert_eq!(n.snapshot(), before, "{name} changed the node");
    }
    // installed good, then altered on disk: activate refuses it
    n.ok("piadm", &["install", good.to_str().unwrap()]);
    let amd64 = n
        .root
        .join("zones/boot/platform-20261101T000000Z/i86pc/amd64");
    let data = raw_tar(&[("usr", sym, b"", Some("/tmp")), ("usr/evil", f, b"x", None)]);
    fs::write(amd64.join("boot_archive"), &data).unwrap();
    use sha1::Digest as _;
    let hash: String = sha1::Sha1::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(amd64.join("boot_archive.hash"), format!("{hash}\n")).unwrap();
    let o = n.run("piadm", &["activate", "20261101T000000Z"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("written through a link"),
        "{}",
        stderr(&o)
    );
    let leftovers: Vec<_> = fs::read_dir(&n.root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".boot-"))
        .collect();
    assert!(leftovers.is_empty());
}

/// imgadm's options as dashdash parses them, its list columns and
/// sources, and vmadm's nopt-style options.
#[test]
fn imgadm_and_vmadm_options_as_the_real_tools_parse_them() {
    let n = Node::new();
    install_image(&n);
    let out = n.ok("imgadm", &["list", "-H", "-o", "uuid,name"]);
    assert_eq!(out, format!("{IMG}  base-64-lts\n"));
    assert_eq!(n.ok("imgadm", &["list", "-Ho", "uuid"]), format!("{IMG}\n"));
    let out = n.ok("imgadm", &["list"]);
    let mut l = out.lines();
    assert_eq!(
        l.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["UUID", "NAME", "VERSION", "OS", "TYPE", "PUB"]
    );
    assert_eq!(
        l.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            IMG,
            "base-64-lts",
            "22.4.0",
            "smartos",
            "zone-dataset",
            "2023-01-10"
        ]
    );
    // a field the image lacks is "-", dotted names reach into objects
    let out = n.ok(
        "imgadm",
        &["list", "-H", "-o", "name,origin,requirements.brand"],
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["base-64-lts", "-", "-"]
    );
    let o = n.run("imgadm", &["list", "-Z"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "imgadm list: error (Option): unknown option: \"-Z\""
    );
    // sources: imgadm's default, then the node's imgadm.conf
    assert_eq!(n.ok("imgadm", &["sources"]), "https://images.smartos.org\n");
    fs::write(
        n.root.join("var/imgadm/imgadm.conf"),
        r#"{"sources": [{"url": "https://imgapi.example", "type": "imgapi"}]}"#,
    )
    .unwrap();
    let v: Value = serde_json::from_str(&n.ok("imgadm", &["sources", "-j"])).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"url": "https://imgapi.example", "type": "imgapi", "insecure": false}])
    );
    // vmadm: combined short flags, --name=value, unknown options ignored
    let payload =
        format!(r#"{{"brand":"joyent","image_uuid":"{IMG}","alias":"a1","autoboot":false}}"#);
    let uuid = created_uuid(&vmadm_stdin(&n, &["create"], &payload));
    assert_eq!(
        n.ok("vmadm", &["list", "-Ho", "uuid", "alias=a1"]),
        format!("{uuid}\n")
    );
    assert_eq!(n.ok("vmadm", &["list", "-pH", "--order=alias"]), "a1\n");
    assert_eq!(n.ok("vmadm", &["list", "-Z", "-Ho", "alias"]), "a1\n");
    let v: Value = serde_json::from_str(&n.ok("vmadm", &["lookup", "-j1", "alias=a1"])).unwrap();
    assert_eq!(v[0]["uuid"], uuid.as_str());
    // lastexited on stop: vmadm reports the exit
    n.ok("vmadm", &["start", &uuid]);
    n.ok("vmadm", &["stop", &uuid]);
    let vm: Value = serde_json::from_str(&n.ok("vmadm", &["get", &uuid])).unwrap();
    assert_eq!(vm["exit_status"], 0, "{vm:#}");
    assert!(
        vm["exit_timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{vm:#}"
    );
}

/// The smartos-ui provision payload for a bhyve VM creates the VM on the
/// node: its boot disk a clone of the zvol image, listed as HVM, vnc info.
#[test]
fn vmadm_create_of_a_bhyve_vm_from_the_ui_payload() {
    let n = Node::new();
    let zimg = "9a2b7c1e-0000-4000-8000-00000000b001";
    let f = n.tmp().join("debian.zfs.gz");
    fs::write(&f, b"zvol image").unwrap();
    let m = n.tmp().join("debian.json");
    let manifest = serde_json::json!({"v": 2, "uuid": zimg, "name": "debian-12", "version": "20261130",
        "type": "zvol", "os": "linux", "image_size": 10240, "published_at": "2026-11-30T00:00:00Z"});
    fs::write(&m, manifest.to_string()).unwrap();
    n.ok(
        "imgadm",
        &[
            "install",
            "-m",
            m.to_str().unwrap(),
            "-f",
            f.to_str().unwrap(),
        ],
    );
    let payload = serde_json::json!({"brand": "bhyve", "alias": "vm1", "ram": 1024, "vcpus": 2,
        "disks": [{"image_uuid": zimg, "boot": true, "model": "virtio"}],
        "flexible_disk_size": 20480,
        "nics": [{"nic_tag": "admin", "ips": ["10.0.0.5/24"], "primary": true,
                  "gateways": ["10.0.0.1"], "model": "virtio"}]});
    let o = vmadm_stdin(&n, &["create"], &payload.to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    let uuid = created_uuid(&o);
    // vmadm's TYPE column is 4 wide: BHYVE shows as BHYV, as on SmartOS
    let row = n.ok("vmadm", &["list", "-H", "-o", "uuid,type,ram,state,alias"]);
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [uuid.as_str(), "BHYV", "1024", "running", "vm1"]
    );
    let vm: Value = serde_json::from_str(&n.ok("vmadm", &["get", &uuid])).unwrap();
    assert_eq!(vm["hvm"], true);
    assert_eq!(vm["brand"], "bhyve");
    assert_eq!(vm["vcpus"], 2);
    assert_eq!(vm["flexible_disk_size"], 20480);
    assert_eq!(
        vm["disks"][0]["path"],
        format!("/dev/zvol/rdsk/zones/{uuid}/disk0")
    );
    assert_eq!(vm["disks"][0]["image_uuid"], zimg);
    assert_eq!(vm["disks"][0]["boot"], true);
    // the zvol: a sparse file of the image's size (MiB)
    let z = n.root.join(format!("zones/{uuid}/disk0"));
    assert_eq!(fs::metadata(&z).unwrap().len(), 10240 << 20);
    let info: Value = serde_json::from_str(&n.ok("vmadm", &["info", &uuid, "vnc"])).unwrap();
    assert!(
        info["vnc"]["port"].as_u64().is_some_and(|p| p >= 5900),
        "{info}"
    );
    n.ok("vmadm", &["stop", &uuid]);
    n.ok("vmadm", &["delete", &uuid]);
    assert!(!z.exists());
}
