//! Phase 1 on the sim: the RFD 184 test procedure, walked on a simulated
//! node through the node's commands only (the sim's tools and `vmadm-ext`,
//! first on `PATH`, as on a SmartOS global zone), as an operator would type
//! them. The walk is a table: each row is a command line (run by `sh`, with
//! `{var}` filled in), what it must print, and what it captures for later
//! rows.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub use sim::rfd::{IMAGE_UUID, NEW_STAMP, OLD_STAMP, RFD_PAYLOAD};
const JOYENT_PAYLOAD: &str = r#"{"brand":"joyent","image_uuid":"e44ed3e0-910b-11ed-a5d4-00151714048c","alias":"plain-joyent"}"#;

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

/// What a row expects of its command.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This exit status (and nothing else checked).
    Exit(i32),
    /// Exit status 0 and stdout, trimmed, is this.
    OutIs(&'static str),
    /// This exit status and stdout contains this.
    OutHas(i32, &'static str),
    /// This exit status and stderr contains this.
    ErrHas(i32, &'static str),
    /// Exit 0 and stderr, trimmed, is this.
    ErrIs(&'static str),
    /// Exit 0 and a `vmadm list` row whose first column is `{uuid}` has
    /// exactly these columns.
    Row(&'static [&'static str]),
    /// Exit 0 and the JSON object printed has these fields.
    Fields(&'static [(&'static str, &'static str)]),
}

/// What a row captures from its command's output into a variable.
#[derive(Debug, Clone, Copy)]
enum Capture {
    None,
    /// The UUID of vmadm's `Successfully created VM <uuid>` line.
    Created(&'static str),
}

/// A row of the walk.
#[derive(Debug, Clone, Copy)]
enum Row {
    /// A command line for `sh`, with `{var}` filled in.
    Run {
        name: &'static str,
        cmd: &'static str,
        stdin: Option<&'static str>,
        expect: Expect,
        capture: Capture,
    },
    /// Something done or checked in Rust (files, byte comparisons).
    Native {
        name: &'static str,
        shown: &'static str,
        run: fn(&mut Walk) -> Result<String, String>,
    },
}

const fn run(name: &'static str, cmd: &'static str, expect: Expect) -> Row {
    Row::Run {
        name,
        cmd,
        stdin: None,
        expect,
        capture: Capture::None,
    }
}

const fn run_in(
    name: &'static str,
    cmd: &'static str,
    stdin: &'static str,
    expect: Expect,
    capture: Capture,
) -> Row {
    Row::Run {
        name,
        cmd,
        stdin: Some(stdin),
        expect,
        capture,
    }
}

use Expect::*;

/// The procedure. `{root}` is the node, `{bin}` the directory of its tools
/// (first on PATH), `{pi}`/`{new}` the platform image with builder and its
/// stamp, `{old}` the platform the node starts on.
const PROCEDURE: &[Row] = &[
    run("the node's commands on PATH", "sim link {bin}", Exit(0)),
    run(
        "node boots a platform without builder",
        "sim node init {root} --hostname builder-cn",
        Exit(0),
    ),
    Row::Native {
        name: "a platform image with builder",
        shown: "sim platform build --stamp {new} --brands <registry> --out {pi}",
        run: ensure_platform,
    },
    run(
        "uname shows the old platform",
        "uname -v",
        OutIs("joyent_{old}"),
    ),
    run("piadm install", "piadm install {pi}", OutHas(0, "{new}")),
    run("piadm activate", "piadm activate {new}", Exit(0)),
    run(
        "reboot into the new platform",
        "sim reboot --root {root}",
        Exit(0),
    ),
    run(
        "uname shows the new platform",
        "uname -v",
        OutIs("joyent_{new}"),
    ),
    Row::Native {
        name: "the base image the payload names",
        shown: "write {img} and {man}",
        run: write_base_image,
    },
    run(
        "imgadm install the base image",
        "imgadm install -m {man} -f {img}",
        Exit(0),
    ),
    run_in(
        "vmadm validate create",
        "vmadm validate create",
        RFD_PAYLOAD,
        ErrIs("VALID 'create' payload for builder brand VMs."),
        Capture::None,
    ),
    run_in(
        "vmadm create the RFD's builder zone",
        "vmadm create",
        RFD_PAYLOAD,
        ErrHas(0, "Successfully created VM "),
        Capture::Created("uuid"),
    ),
    run(
        "vmadm list brand=builder shows it",
        "vmadm list brand=builder",
        Row(&["{uuid}", "OS", "8192", "running", "cloud-image-builder"]),
    ),
    run(
        "vmadm-ext get reads the zone and its zfs settings",
        "vmadm-ext --root {root} get {uuid}",
        Fields(&[
            ("brand", "builder"),
            ("quota", "50"),
            ("zfs_root_compression", "lz4"),
            ("state", "running"),
        ]),
    ),
    run(
        "vmadm-ext check passes",
        "vmadm-ext --root {root} check {uuid}",
        OutHas(0, "can run bhyve builds"),
    ),
    run(
        "inside the zone dev/vmmctl and dev/viona exist",
        "zlogin {uuid} 'test -e dev/vmmctl && test -e dev/viona && ls dev/vmmctl dev/viona'",
        OutHas(0, "dev/viona"),
    ),
    run_in(
        "vmadm create a joyent zone",
        "vmadm create",
        JOYENT_PAYLOAD,
        ErrHas(0, "Successfully created VM "),
        Capture::Created("juuid"),
    ),
    run(
        "a joyent zone has neither device",
        "zlogin {juuid} 'test ! -e dev/vmmctl && test ! -e dev/viona'",
        Exit(0),
    ),
    run(
        "vmadm-ext rescue refuses the running builder zone",
        "vmadm-ext --root {root} rescue {uuid}",
        ErrHas(1, "running"),
    ),
    Row::Native {
        name: "keep a copy of the zone XML",
        shown: "cp /etc/zones/{uuid}.xml <saved copy>",
        run: save_xml,
    },
    run(
        "preflight for the old platform names the builder zone",
        "vmadm-ext --root {root} preflight --platform {old}",
        OutHas(1, "vmadm-ext rescue {uuid}"),
    ),
    run(
        "piadm activate the old platform",
        "piadm activate {old}",
        Exit(0),
    ),
    run(
        "reboot into the old platform",
        "sim reboot --root {root}",
        ErrHas(0, "{uuid}"),
    ),
    run(
        "the builder zone is stopped",
        "vmadm get {uuid}",
        Fields(&[("state", "stopped")]),
    ),
    run(
        "vmadm start fails with a clear error",
        "vmadm start {uuid}",
        ErrHas(1, "brand \"builder\" is not installed"),
    ),
    run(
        "vmadm-ext rescue",
        "vmadm-ext --root {root} rescue {uuid}",
        Exit(0),
    ),
    run(
        "vmadm start works after rescue",
        "vmadm start {uuid}",
        Exit(0),
    ),
    run(
        "the rescued zone still sees the bhyve devices",
        "zlogin {uuid} 'test -e dev/vmmctl && test -e dev/viona'",
        Exit(0),
    ),
    run(
        "vmadm-ext check passes on the rescued zone",
        "vmadm-ext --root {root} check {uuid}",
        Exit(0),
    ),
    run(
        "piadm activate the new platform",
        "piadm activate {new}",
        Exit(0),
    ),
    run(
        "reboot into the new platform",
        "sim reboot --root {root}",
        Exit(0),
    ),
    run("vmadm stop", "vmadm stop {uuid}", Exit(0)),
    run(
        "vmadm-ext unrescue restores the builder zone",
        "vmadm-ext --root {root} unrescue {uuid}",
        Exit(0),
    ),
    Row::Native {
        name: "the zone XML is byte-identical to before the rescue",
        shown: "cmp <saved copy> /etc/zones/{uuid}.xml",
        run: compare_xml,
    },
    run(
        "the zone is a builder zone again",
        "vmadm get {uuid}",
        Fields(&[("brand", "builder")]),
    ),
    run(
        "vmadm start the builder zone",
        "vmadm start {uuid}",
        Exit(0),
    ),
    run(
        "vmadm-ext check passes again",
        "vmadm-ext --root {root} check {uuid}",
        Exit(0),
    ),
    // The RFD's own commands, as its test procedure writes them.
    run(
        "zlogin `vmadm list -Ho uuid brand=builder` sees the devices",
        "zlogin `vmadm list -Ho uuid brand=builder` 'ls dev/vmmctl dev/viona'",
        OutHas(0, "dev/vmmctl"),
    ),
    run(
        "piadm activate the old platform again",
        "piadm activate {old}",
        Exit(0),
    ),
    run(
        "reboot into the old platform again",
        "sim reboot --root {root}",
        ErrHas(0, "{uuid}"),
    ),
    run("the RFD's manual rescue procedure", MANUAL_RESCUE, Exit(0)),
    run(
        "the manually rescued zone is joyent with the devices and privileges",
        "vmadm get {uuid}",
        Fields(&[
            ("brand", "joyent"),
            ("state", "running"),
            ("limit_priv", "default,proc_clock_highres,sys_dl_config"),
        ]),
    ),
    run(
        "the manually rescued zone sees the bhyve devices",
        "zlogin {uuid} 'test -e dev/vmmctl && test -e dev/viona'",
        Exit(0),
    ),
    run(
        "the manual rescue kept a backup of the builder XML",
        "grep -c 'brand=\"builder\"' {root}/etc/zones/{uuid}.xml.builderbak",
        OutIs("1"),
    ),
    run(
        "undo the manual rescue: the builder XML back from its backup",
        "vmadm stop {uuid} && mv {root}/etc/zones/{uuid}.xml.builderbak {root}/etc/zones/{uuid}.xml && svcadm restart vminfod",
        Exit(0),
    ),
    run("piadm activate the new platform again", "piadm activate {new}", Exit(0)),
    run("reboot into the new platform again", "sim reboot --root {root}", Exit(0)),
    run(
        "the builder zone runs again",
        "vmadm get {uuid}",
        Fields(&[("brand", "builder"), ("state", "running")]),
    ),
    run(
        "vmadm delete $UUID",
        "UUID={uuid}; vmadm delete $UUID",
        ErrHas(0, "Successfully deleted VM {uuid}"),
    ),
    run("the zone is gone", "vmadm list -Ho uuid", OutIs("{juuid}")),
    // the node is left as the later phases need it: a builder zone running
    // on the platform with the brand
    run_in(
        "vmadm create the RFD's builder zone again",
        "vmadm create",
        RFD_PAYLOAD,
        ErrHas(0, "Successfully created VM "),
        Capture::Created("uuid"),
    ),
    run(
        "vmadm-ext check passes on the new builder zone",
        "vmadm-ext --root {root} check {uuid}",
        Exit(0),
    ),
];

/// The RFD's manual rescue, literally, with the zone files under the
/// node's root: the brand edited back to joyent (backup kept), vminfod
/// restarted, the devices and privileges added with zonecfg, the zone
/// started.
const MANUAL_RESCUE: &str = r#"UUID=`vmadm list -Ho uuid brand=builder`
sed -e 's|brand="builder"|brand="joyent"|' -i.builderbak {root}/etc/zones/$UUID.xml
svcadm restart vminfod
zonecfg -z $UUID <<EOF
set limitpriv=default,proc_clock_highres,sys_dl_config
add device
set match="/dev/viona"
end
add device
set match="/dev/vmm*"
end
commit
exit
EOF
vmadm start $UUID"#;

/// The walk's state: the programs, the directories and the variables.
pub struct Walk<'a> {
    bins: &'a Bins,
    work: PathBuf,
    root: PathBuf,
    /// A platform image with builder and its stamp, when given.
    image: Option<(PathBuf, String)>,
    vars: BTreeMap<&'static str, String>,
    saved_xml: Option<Vec<u8>>,
}

impl Walk<'_> {
    fn fill(&self, t: &str) -> String {
        let mut s = t.to_string();
        for (k, v) in &self.vars {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }

    fn sh(&self, line: &str, stdin: Option<&str>) -> Result<Output, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.work.join("bin")];
        dirs.extend(std::env::split_paths(&path));
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(line)
            .current_dir(&self.work)
            .env("SIM_ROOT", &self.root)
            .env(
                "PATH",
                std::env::join_paths(dirs).map_err(|e| e.to_string())?,
            )
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("cannot run sh: {e}"))?;
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

    fn check(&self, e: Expect, o: &Output) -> Result<String, String> {
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        let exit = |want: i32| match o.status.code() {
            Some(c) if c == want => Ok(()),
            c => Err(format!("exit status {c:?}, expected {want}")),
        };
        match e {
            Exit(n) => exit(n).map(|_| out.trim().replace('\n', "; ")),
            OutIs(t) => {
                exit(0)?;
                let want = self.fill(t);
                (out.trim() == want)
                    .then(|| want.clone())
                    .ok_or(format!("printed {:?}, expected {want:?}", out.trim()))
            }
            OutHas(n, t) => {
                exit(n)?;
                let want = self.fill(t);
                out.contains(&want)
                    .then(|| out.trim().replace('\n', "; "))
                    .ok_or(format!("no {want:?} in the output"))
            }
            ErrHas(n, t) => {
                exit(n)?;
                let want = self.fill(t);
                err.contains(&want)
                    .then(|| err.trim().replace('\n', "; "))
                    .ok_or(format!("no {want:?} on stderr"))
            }
            ErrIs(t) => {
                exit(0)?;
                (err.trim() == t)
                    .then(|| t.to_string())
                    .ok_or(format!("said {:?}, expected {t:?}", err.trim()))
            }
            Row(cols) => {
                exit(0)?;
                let want: Vec<String> = cols.iter().map(|c| self.fill(c)).collect();
                let row = out
                    .lines()
                    .find(|l| l.starts_with(&want[0]))
                    .ok_or("zone not listed")?;
                let got: Vec<&str> = row.split_whitespace().collect();
                (got == want)
                    .then(|| row.to_string())
                    .ok_or(format!("unexpected row {row:?}"))
            }
            Fields(fields) => {
                exit(0)?;
                let v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
                let show = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let seen: Vec<String> = fields
                    .iter()
                    .map(|(k, _)| format!("{k} {}", show(&v[*k])))
                    .collect();
                fields
                    .iter()
                    .all(|(k, want)| show(&v[*k]) == *want)
                    .then(|| seen.join(", "))
                    .ok_or(format!("unexpected object: {}", seen.join(", ")))
            }
        }
    }
}

fn ensure_platform(w: &mut Walk) -> Result<String, String> {
    if let Some((p, stamp)) = w.image.clone() {
        w.vars.insert("pi", p.display().to_string());
        w.vars.insert("new", stamp);
        return Ok(format!("given: {}", p.display()));
    }
    let pi = w.work.join(format!("platform-{NEW_STAMP}.tgz"));
    let brands = brand::registry::platform().join(",");
    let o = w.sh(
        &format!(
            "sim platform build --stamp {NEW_STAMP} --brands {brands} --out '{}'",
            pi.display()
        ),
        None,
    )?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
    }
    w.vars.insert("pi", pi.display().to_string());
    w.vars.insert("new", NEW_STAMP.to_string());
    Ok(pi.display().to_string())
}

fn write_base_image(w: &mut Walk) -> Result<String, String> {
    let img = w.work.join("base-64-lts.zfs.gz");
    fs::write(&img, b"base-64-lts image stand-in\n").map_err(|e| e.to_string())?;
    let man = w.work.join("base-64-lts.json");
    let manifest = serde_json::json!({"v": 2, "uuid": IMAGE_UUID, "name": "base-64-lts", "version": "22.4.0",
        "type": "zone-dataset", "os": "smartos", "published_at": "2023-01-10T00:00:00Z"});
    fs::write(&man, manifest.to_string()).map_err(|e| e.to_string())?;
    w.vars.insert("img", img.display().to_string());
    w.vars.insert("man", man.display().to_string());
    Ok(IMAGE_UUID.to_string())
}

fn xml_path(w: &Walk) -> PathBuf {
    w.root.join(format!(
        "etc/zones/{}.xml",
        w.vars.get("uuid").map_or("", |s| s)
    ))
}

fn save_xml(w: &mut Walk) -> Result<String, String> {
    let b = fs::read(xml_path(w)).map_err(|e| e.to_string())?;
    let n = b.len();
    w.saved_xml = Some(b);
    Ok(format!("{n} bytes"))
}

fn compare_xml(w: &mut Walk) -> Result<String, String> {
    let after = fs::read(xml_path(w)).map_err(|e| e.to_string())?;
    match &w.saved_xml {
        Some(b) if *b == after => Ok(format!("{} bytes", after.len())),
        Some(_) => Err("unrescue did not restore the zone XML byte for byte".into()),
        None => Err("no saved copy".into()),
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
    let mut w = Walk {
        bins,
        work: work.to_path_buf(),
        root: work.join("cn"),
        image: image.map(|(p, s)| (p.to_path_buf(), s.to_string())),
        vars: BTreeMap::new(),
        saved_xml: None,
    };
    w.vars.insert("root", w.root.display().to_string());
    w.vars.insert("bin", work.join("bin").display().to_string());
    w.vars.insert("old", OLD_STAMP.to_string());
    // the node's tools and vmadm-ext come first on PATH
    let mut steps = Vec::new();
    if let Err(e) = link_tools(&w) {
        return (steps, Err(e));
    }
    for row in PROCEDURE {
        let (name, command, r) = match *row {
            Row::Native { name, shown, run } => (name, w.fill(shown), run(&mut w)),
            Row::Run {
                name,
                cmd,
                stdin,
                expect,
                capture,
            } => {
                let line = w.fill(cmd);
                let r = w.sh(&line, stdin).and_then(|o| {
                    let detail = w.check(expect, &o).map_err(|e| {
                        format!(
                            "{e}\nstdout: {}\nstderr: {}",
                            String::from_utf8_lossy(&o.stdout).trim(),
                            String::from_utf8_lossy(&o.stderr).trim()
                        )
                    })?;
                    if let Capture::Created(var) = capture {
                        let uuid = host::vmadm::parse_created(&String::from_utf8_lossy(&o.stderr))
                            .ok_or("no UUID in vmadm's output")?;
                        w.vars.insert(var, uuid);
                    }
                    Ok(detail)
                });
                (name, line, r)
            }
        };
        let ok = r.is_ok();
        steps.push(Step {
            name: name.into(),
            command,
            ok,
            detail: match &r {
                Ok(d) | Err(d) => d.clone(),
            },
        });
        if let Err(e) = r {
            return (steps, Err(format!("{name}: {e}")));
        }
    }
    (steps, Ok(()))
}

/// `work/bin`: vmadm-ext beside the node's tools (which `sim link` adds).
fn link_tools(w: &Walk) -> Result<(), String> {
    let bin = w.work.join("bin");
    fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let l = bin.join("vmadm-ext");
    let _ = fs::remove_file(&l);
    std::os::unix::fs::symlink(&w.bins.vmadm_ext, &l).map_err(|e| e.to_string())?;
    let s = bin.join("sim");
    let _ = fs::remove_file(&s);
    std::os::unix::fs::symlink(&w.bins.sim, &s).map_err(|e| e.to_string())
}

/// The rows, for listing (`name`, command template).
pub fn rows() -> Vec<(&'static str, &'static str)> {
    PROCEDURE
        .iter()
        .map(|r| match *r {
            Row::Run { name, cmd, .. } => (name, cmd),
            Row::Native { name, shown, .. } => (name, shown),
        })
        .collect()
}
