//! The RFD 184 test procedure, walked on a simulated node through the
//! node's commands only (sim tools, `vmadm-ext`), as an operator would.
//! Used by the sim's integration test and by `cargo xtask rollout`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The RFD's example payload (with an image added).
pub const RFD_PAYLOAD: &str = r#"{"alias":"cloud-image-builder","hostname":"cloud-image-builder","brand":"builder","limit_priv":"default,proc_clock_highres,sys_dl_config","max_physical_memory":8192,"tmpfs":8192,"fs_allowed":"ufs,pcfs,tmpfs","cpu_cap":600,"image_uuid":"e44ed3e0-910b-11ed-a5d4-00151714048c","zfs_root_compression":"lz4","quota":50,"delegate_dataset":true,"resolvers":["8.8.8.8","8.8.4.4"],"nics":[{"allow_ip_spoofing":true,"nic_tag":"admin","ip":"dhcp"}]}"#;
pub const IMAGE_UUID: &str = "e44ed3e0-910b-11ed-a5d4-00151714048c";
pub const OLD_STAMP: &str = crate::init::DEFAULT_STAMP;
pub const NEW_STAMP: &str = "20261101T000000Z";

/// One step of the walk: what was run and what was checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub name: String,
    pub command: String,
    pub ok: bool,
    pub detail: String,
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Bins {
    pub sim: PathBuf,
    pub vmadm_ext: PathBuf,
}

struct Walk<'a> {
    bins: &'a Bins,
    /// The platform image with builder and its stamp, when given.
    image: Option<(PathBuf, String)>,
    root: PathBuf,
    work: PathBuf,
    steps: Vec<Step>,
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

impl Walk<'_> {
    fn run(&self, prog: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output, String> {
        let mut c = Command::new(prog);
        // The node's tools come first on PATH, as on a SmartOS global zone,
        // so vmadm-ext's zpool/imgadm/zoneadm questions reach the node.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.work.join("bin")];
        dirs.extend(std::env::split_paths(&path));
        c.args(args)
            .env("SIM_ROOT", &self.root)
            .env(
                "PATH",
                std::env::join_paths(dirs).map_err(|e| e.to_string())?,
            )
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", prog.display()))?;
        if let Some(s) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(s.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        child.wait_with_output().map_err(|e| e.to_string())
    }

    /// Run a tool and record a step whose check looks at the output.
    fn step(
        &mut self,
        name: &str,
        tool: &str,
        args: &[&str],
        stdin: Option<&str>,
        check: impl FnOnce(&Output, &str, &str) -> Result<String, String>,
    ) -> Result<Output, String> {
        let (prog, shown) = if tool == "vmadm-ext" {
            (
                self.bins.vmadm_ext.clone(),
                vec![
                    "vmadm-ext".to_string(),
                    "--root".into(),
                    self.root.display().to_string(),
                ],
            )
        } else if tool == "sim" {
            (self.bins.sim.clone(), vec!["sim".to_string()])
        } else {
            (self.bins.sim.clone(), vec![tool.to_string()])
        };
        let mut full: Vec<String> = shown[1..].to_vec();
        if tool != "vmadm-ext" && tool != "sim" {
            full.insert(0, tool.to_string());
        }
        full.extend(args.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = full.iter().map(String::as_str).collect();
        let command = format!("{} {}", shown[0], args.join(" "));
        let o = self.run(&prog, &argv, stdin)?;
        let (out, err) = text(&o);
        let r = check(&o, &out, &err);
        self.steps.push(Step {
            name: name.into(),
            command,
            ok: r.is_ok(),
            detail: match &r {
                Ok(d) => d.clone(),
                Err(e) => format!("{e}\nstdout: {}\nstderr: {}", out.trim(), err.trim()),
            },
        });
        r.map(|_| o)
    }
}

fn exit(o: &Output, want: i32) -> Result<(), String> {
    match o.status.code() {
        Some(c) if c == want => Ok(()),
        c => Err(format!("exit status {c:?}, expected {want}")),
    }
}

/// A check that only wants exit status 0.
fn ok(o: &Output, _: &str, _: &str) -> Result<String, String> {
    exit(o, 0).map(|_| String::new())
}

/// A check on `vmadm get`: exit 0 and the VM object's `field` is `want`.
fn vm_field(
    field: &'static str,
    want: &'static str,
) -> impl FnOnce(&Output, &str, &str) -> Result<String, String> {
    move |o, out, _| {
        exit(o, 0)?;
        let v: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
        (v[field] == want)
            .then(|| format!("{field} {want}"))
            .ok_or(format!("{field} {}", v[field]))
    }
}

/// Walk the procedure in `work` (a fresh directory), upgrading to `image`
/// (a platform tarball with builder, and its stamp) or to one the walk
/// builds. Stops at the first failed step; the steps so far are returned
/// either way.
pub fn walk(
    work: &Path,
    bins: &Bins,
    image: Option<(&Path, &str)>,
) -> (Vec<Step>, Result<(), String>) {
    let image = image.map(|(p, s)| (p.to_path_buf(), s.to_string()));
    let mut w = Walk {
        bins,
        image,
        root: work.join("cn"),
        work: work.to_path_buf(),
        steps: vec![],
    };
    let r = walk_inner(&mut w);
    (w.steps, r)
}

fn walk_inner(w: &mut Walk<'_>) -> Result<(), String> {
    let root = w.root.display().to_string();
    let bin = w.work.join("bin").display().to_string();
    w.step(
        "the node's commands on PATH",
        "sim",
        &["link", &bin],
        None,
        |o, _, _| exit(o, 0).map(|_| bin.clone()),
    )?;
    // A node on a platform without builder, and a platform with it.
    w.step(
        "node boots a platform without builder",
        "sim",
        &["node", "init", &root, "--hostname", "builder-cn"],
        None,
        |o, _, _| exit(o, 0).map(|_| format!("platform {OLD_STAMP}")),
    )?;
    let (pi, new_stamp) = match w.image.clone() {
        Some(given) => given,
        None => {
            let pi = w.work.join(format!("platform-{NEW_STAMP}.tgz"));
            let pis = pi.display().to_string();
            w.step(
                "build a platform image with builder",
                "sim",
                &[
                    "platform",
                    "build",
                    "--stamp",
                    NEW_STAMP,
                    "--brands",
                    "joyent,joyent-minimal,lx,bhyve,kvm,builder",
                    "--out",
                    &pis,
                ],
                None,
                |o, _, _| exit(o, 0).map(|_| pis.clone()),
            )?;
            (pi, NEW_STAMP.to_string())
        }
    };
    let pis = pi.display().to_string();
    let new_stamp = new_stamp.as_str();
    w.step(
        "uname shows the old platform",
        "uname",
        &["-v"],
        None,
        |o, out, _| {
            exit(o, 0)?;
            (out.trim() == format!("joyent_{OLD_STAMP}"))
                .then(|| out.trim().to_string())
                .ok_or("wrong stamp".into())
        },
    )?;
    w.step(
        "piadm install",
        "piadm",
        &["install", &pis],
        None,
        |o, out, _| {
            exit(o, 0)?;
            out.contains(new_stamp)
                .then(|| out.trim().replace('\n', "; "))
                .ok_or("stamp not reported".into())
        },
    )?;
    w.step(
        "piadm activate",
        "piadm",
        &["activate", new_stamp],
        None,
        ok,
    )?;
    w.step(
        "reboot into the new platform",
        "sim",
        &["reboot", "--root", &root],
        None,
        ok,
    )?;
    w.step(
        "uname shows the new platform",
        "uname",
        &["-v"],
        None,
        |o, out, _| {
            exit(o, 0)?;
            (out.trim() == format!("joyent_{new_stamp}"))
                .then(|| out.trim().to_string())
                .ok_or("wrong stamp".into())
        },
    )?;
    // The image the payload names.
    let img = w.work.join("base-64-lts.zfs.gz");
    fs::write(&img, b"base-64-lts image stand-in\n").map_err(|e| e.to_string())?;
    let man = w.work.join("base-64-lts.json");
    let manifest = serde_json::json!({"v": 2, "uuid": IMAGE_UUID, "name": "base-64-lts", "version": "22.4.0",
        "type": "zone-dataset", "os": "smartos", "published_at": "2023-01-10T00:00:00Z"});
    fs::write(&man, manifest.to_string()).map_err(|e| e.to_string())?;
    let (ms, is) = (man.display().to_string(), img.display().to_string());
    w.step(
        "imgadm install the base image",
        "imgadm",
        &["install", "-m", &ms, "-f", &is],
        None,
        |o, _, _| exit(o, 0).map(|_| IMAGE_UUID.to_string()),
    )?;
    // The builder zone.
    w.step(
        "vmadm validate create",
        "vmadm",
        &["validate", "create"],
        Some(RFD_PAYLOAD),
        |o, _, err| {
            exit(o, 0)?;
            (err.trim() == "VALID 'create' payload for builder brand VMs.")
                .then(|| err.trim().to_string())
                .ok_or("no VALID line".into())
        },
    )?;
    let o = w.step(
        "vmadm create the RFD's builder zone",
        "vmadm",
        &["create"],
        Some(RFD_PAYLOAD),
        |o, _, err| {
            exit(o, 0)?;
            err.lines()
                .find(|l| l.starts_with("Successfully created VM "))
                .map(str::to_string)
                .ok_or("no success line".into())
        },
    )?;
    let uuid = text(&o)
        .1
        .lines()
        .find_map(|l| l.strip_prefix("Successfully created VM "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let u = uuid.clone();
    w.step(
        "vmadm list brand=builder shows it",
        "vmadm",
        &["list", "brand=builder"],
        None,
        |o, out, _| {
            exit(o, 0)?;
            let row = out
                .lines()
                .find(|l| l.starts_with(&u))
                .ok_or("zone not listed")?;
            let cols: Vec<&str> = row.split_whitespace().collect();
            (cols == [u.as_str(), "OS", "8192", "running", "cloud-image-builder"])
                .then(|| row.to_string())
                .ok_or(format!("unexpected row {row:?}"))
        },
    )?;
    w.step(
        "vmadm-ext get reads the zone and its zfs settings",
        "vmadm-ext",
        &["get", &uuid],
        None,
        |o, out, _| {
            exit(o, 0)?;
            let v: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
            let seen = format!(
                "brand {} quota {} compression {} state {}",
                v["brand"], v["quota"], v["zfs_root_compression"], v["state"]
            );
            (v["brand"] == "builder"
                && v["quota"] == 50
                && v["zfs_root_compression"] == "lz4"
                && v["state"] == "running")
                .then(|| seen.clone())
                .ok_or(format!("unexpected object: {seen}"))
        },
    )?;
    w.step(
        "vmadm-ext check passes",
        "vmadm-ext",
        &["check", &uuid],
        None,
        |o, out, _| {
            exit(o, 0)?;
            Ok(out.lines().count().to_string() + " requirements ok")
        },
    )?;
    w.step(
        "inside the zone dev/vmmctl and dev/viona exist",
        "zlogin",
        &[
            &uuid,
            "test -e dev/vmmctl && test -e dev/viona && ls dev/vmmctl dev/viona",
        ],
        None,
        |o, out, _| exit(o, 0).map(|_| out.trim().replace('\n', " ")),
    )?;
    // A joyent zone for contrast.
    let joyent =
        format!(r#"{{"brand":"joyent","image_uuid":"{IMAGE_UUID}","alias":"plain-joyent"}}"#);
    let o = w.step(
        "vmadm create a joyent zone",
        "vmadm",
        &["create"],
        Some(&joyent),
        ok,
    )?;
    let juuid = text(&o)
        .1
        .lines()
        .find_map(|l| l.strip_prefix("Successfully created VM "))
        .unwrap_or_default()
        .trim()
        .to_string();
    w.step(
        "a joyent zone has neither device",
        "zlogin",
        &[&juuid, "test ! -e dev/vmmctl && test ! -e dev/viona"],
        None,
        |o, _, _| exit(o, 0).map(|_| "no dev/vmmctl, no dev/viona".into()),
    )?;
    w.step(
        "vmadm-ext rescue refuses the running builder zone",
        "vmadm-ext",
        &["rescue", &uuid],
        None,
        |o, _, err| {
            exit(o, 1)?;
            err.contains("running")
                .then(|| err.trim().to_string())
                .ok_or("refusal does not say the zone is running".into())
        },
    )?;
    let xml_path = w.root.join(format!("etc/zones/{uuid}.xml"));
    let before = fs::read(&xml_path).map_err(|e| e.to_string())?;
    // Roll back.
    w.step(
        "preflight for the old platform names the builder zone",
        "vmadm-ext",
        &["preflight", "--platform", OLD_STAMP],
        None,
        |o, out, _| {
            exit(o, 1)?;
            (out.contains(&u) && out.contains(&format!("vmadm-ext rescue {u}")))
                .then(|| out.trim().replace('\n', "; "))
                .ok_or("zone not named".into())
        },
    )?;
    w.step(
        "piadm activate the old platform",
        "piadm",
        &["activate", OLD_STAMP],
        None,
        ok,
    )?;
    w.step(
        "reboot into the old platform",
        "sim",
        &["reboot", "--root", &root],
        None,
        |o, _, err| {
            exit(o, 0)?;
            err.contains(&u)
                .then(|| err.trim().to_string())
                .ok_or("builder zone not reported as not booted".into())
        },
    )?;
    w.step(
        "the builder zone is stopped",
        "vmadm",
        &["get", &uuid],
        None,
        vm_field("state", "stopped"),
    )?;
    w.step(
        "vmadm start fails with a clear error",
        "vmadm",
        &["start", &uuid],
        None,
        |o, _, err| {
            exit(o, 1)?;
            err.contains("brand \"builder\" is not installed")
                .then(|| err.trim().to_string())
                .ok_or("unclear error".into())
        },
    )?;
    w.step(
        "vmadm-ext rescue",
        "vmadm-ext",
        &["rescue", &uuid],
        None,
        |o, out, err| exit(o, 0).map(|_| format!("{}{}", out.trim(), err.trim())),
    )?;
    w.step(
        "vmadm start works after rescue",
        "vmadm",
        &["start", &uuid],
        None,
        |o, _, err| exit(o, 0).map(|_| err.trim().to_string()),
    )?;
    w.step(
        "the rescued zone still sees the bhyve devices",
        "zlogin",
        &[&uuid, "test -e dev/vmmctl && test -e dev/viona"],
        None,
        ok,
    )?;
    w.step(
        "vmadm-ext check passes on the rescued zone",
        "vmadm-ext",
        &["check", &uuid],
        None,
        ok,
    )?;
    // Forward again.
    w.step(
        "piadm activate the new platform",
        "piadm",
        &["activate", new_stamp],
        None,
        ok,
    )?;
    w.step(
        "reboot into the new platform",
        "sim",
        &["reboot", "--root", &root],
        None,
        ok,
    )?;
    w.step("vmadm stop", "vmadm", &["stop", &uuid], None, |o, _, _| {
        exit(o, 0).map(|_| String::new())
    })?;
    w.step(
        "vmadm-ext unrescue restores the builder zone",
        "vmadm-ext",
        &["unrescue", &uuid],
        None,
        ok,
    )?;
    let after = fs::read(&xml_path).map_err(|e| e.to_string())?;
    w.steps.push(Step {
        name: "the zone XML is byte-identical to before the rescue".into(),
        command: format!("cmp <saved copy> /etc/zones/{uuid}.xml"),
        ok: after == before,
        detail: format!("{} bytes", after.len()),
    });
    if after != before {
        return Err("unrescue did not restore the zone XML byte for byte".into());
    }
    w.step(
        "the zone is a builder zone again",
        "vmadm",
        &["get", &uuid],
        None,
        vm_field("brand", "builder"),
    )?;
    w.step(
        "vmadm start the builder zone",
        "vmadm",
        &["start", &uuid],
        None,
        ok,
    )?;
    w.step(
        "vmadm-ext check passes again",
        "vmadm-ext",
        &["check", &uuid],
        None,
        ok,
    )?;
    Ok(())
}
