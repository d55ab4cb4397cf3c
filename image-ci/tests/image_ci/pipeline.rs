//! The pipeline on a sim node: builds in the builder zone, verification,
//! boot test, shipping to sim IMGAPI, history and cadence.
//!
//! The stand-in build makes real small images and every verified one is
//! booted in qemu, so these tests take a few seconds each (about 0.1 s per
//! boot under TCG, about 2 s under this machine's nested KVM; the image
//! that never shows its marker waits out a 5 s timeout). The first test to
//! run also builds the sim, vmadm-ext and zvol-stream binaries and boots
//! the sim node.

use std::path::Path;
use std::process::Command;

use image_ci::commands::Tools;
use image_ci::history::Outcome;
use image_ci::pipeline::{self, Config, RunOptions};
use serde_json::Value;

use crate::common::*;

fn tools(n: &Node) -> Tools {
    node_tools(n)
}

/// The default config (the qemu boot test) with the VM's temporary files
/// in `<dir>/vmtmp` and a 5 s boot timeout, under TCG: the stand-in disks
/// show their marker within 0.1 s there, where this machine's nested KVM
/// takes about 2 s in SeaBIOS (the CLI test below runs the default, auto).
fn config(n: &Node, zone: &str, rel: &str, imgapi: &str, dir: &Path) -> Config {
    let mut cfg = Config::new(tools(n), zone, rel, imgapi, dir.join("state.db")).unwrap();
    assert_eq!(cfg.log_dir, dir.join("logs"));
    assert_eq!(cfg.boot.name(), "qemu");
    let mut q = qemu(&dir.join("vmtmp"), 5);
    q.accel = image_ci::qemu::AccelChoice::Tcg;
    cfg.boot = Box::new(q);
    cfg
}

/// No VM and no temporary or staged file survived a run.
fn nothing_left(dir: &Path) {
    let vmtmp = dir.join("vmtmp");
    assert!(processes_with(&vmtmp.display().to_string()).is_empty());
    assert!(left_in(&vmtmp).is_empty(), "{:?}", left_in(&vmtmp));
    let staged = walk_files(&dir.join("stage"));
    assert!(staged.is_empty(), "{staged:?}");
}

fn opts(targets: &[&str]) -> RunOptions {
    RunOptions {
        targets: targets.iter().map(|s| s.to_string()).collect(),
        due_every: None,
    }
}

fn image_ci(n: &Node, state: &Path, args: &[&str]) -> (i32, String, String) {
    let (_, vmadm_ext) = bins();
    let o = Command::new(image_ci_bin())
        .arg("--root")
        .arg(&n.root)
        .arg("--state")
        .arg(state)
        .arg("--tools-dir")
        .arg(&n.bin)
        .arg("--vmadm-ext")
        .arg(&vmadm_ext)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn names(v: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = v
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

/// Two targets build, verify, boot-test and ship (via the CLI); IMGAPI
/// lists them active with the files' sha1; a second `--due` run inside the
/// interval builds nothing.
// About 5-8 s: two real qemu boots of the built images, and the CLI run
// twice.
#[test]
fn two_targets_ship_then_due_run_builds_nothing() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let co = checkout(n, &n.builder, "opt/tci-ship", &[], &[], &[]);
    let bg = triton(t.path());
    let img = bg.url("imgapi").to_string();
    let hist = t.path().join("state/state.db");
    let run_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "-j",
            "run",
            "-z",
            &n.builder,
            "-c",
            "opt/tci-ship",
            "--imgapi",
            &img,
            "-t",
            "debian-12,ubuntu-24.04",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = run_args(&["--due", "--every", "24h"]);
    let (code, out, err) = image_ci(n, &hist, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["preflight_error"], Value::Null);
    assert!(r["preflight"].as_array().unwrap().len() >= 4);
    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for tr in targets {
        assert_eq!(tr["outcome"], "shipped", "{tr:#}");
        assert!(tr["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true));
        assert!(tr["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "boot test (qemu)"
                && c["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("/login:/ on the console")));
        assert!(tr["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "file is a whole zvol send stream"));
        // the boot's accelerator, console tail and kept console log
        let b = &tr["boot"];
        assert!(b["accel"] == "kvm" || b["accel"] == "tcg", "{b}");
        let name = tr["target"].as_str().unwrap();
        assert_eq!(
            b["console_tail"].as_array().unwrap().last().unwrap(),
            &Value::from(format!("{name} login:"))
        );
        let log = b["console_log"].as_str().unwrap();
        assert!(log.ends_with(&format!(".{name}.console.log")), "{log}");
        assert!(std::fs::read_to_string(log).unwrap().contains("login:"));
    }
    assert_eq!(r["boot_test"], "qemu");

    // IMGAPI: both active, owned by admin, the files as built
    let active = images(&img, "active");
    assert_eq!(names(&active), ["debian-12", "ubuntu-24.04"]);
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    for i in &active {
        assert_eq!(i["state"], "active");
        assert_eq!(i["type"], "zvol");
        assert_eq!(i["version"], today.as_str());
        let uuid = i["uuid"].as_str().unwrap();
        let name = i["name"].as_str().unwrap();
        let file = image_file(&img, uuid);
        assert_eq!(sha1_hex(&file), i["files"][0]["sha1"].as_str().unwrap());
        let art = image_ci::artifact::Artifact::at(&co, name, &today);
        assert_eq!(std::fs::read(&art.image).unwrap(), file);
        let built: Value =
            serde_json::from_str(&std::fs::read_to_string(&art.manifest).unwrap()).unwrap();
        assert_eq!(built["uuid"], i["uuid"]);
        assert_eq!(built["files"][0]["sha1"], i["files"][0]["sha1"]);
        let tr = targets.iter().find(|t| t["target"] == name).unwrap();
        assert_eq!(tr["uuid"], i["uuid"]);
    }
    // the shipped manifests are valid for npm imgmanifest too
    let res = crate::imgmanifest::validate_dir(&t.path().join("triton"));
    assert_eq!(res.as_object().unwrap().len(), 2);
    for (f, e) in res.as_object().unwrap() {
        assert!(e.is_null(), "{f}: {e}");
    }

    // history, report; per-stage timings and sizes in the run record
    assert_eq!(image_ci::pipeline::history(&hist).unwrap().len(), 2);
    let stages = r["stages"].as_array().unwrap();
    for (stage, target) in [
        ("check", None),
        ("build", None),
        ("verify", Some("debian-12")),
        ("boot", Some("ubuntu-24.04")),
        ("ship", Some("debian-12")),
    ] {
        let st = stages
            .iter()
            .find(|s| s["stage"] == stage && s["target"].as_str() == target)
            .unwrap_or_else(|| panic!("no {stage} stage for {target:?}: {stages:#?}"));
        assert_eq!(st["status"], "ok", "{st}");
        assert!(st["ms"].is_u64(), "{st}");
    }
    let verify = stages.iter().find(|s| s["stage"] == "verify").unwrap();
    assert!(verify["bytes"].as_u64().unwrap() > 0);
    let ship = stages.iter().find(|s| s["stage"] == "ship").unwrap();
    assert_eq!(
        ship["bytes"], verify["bytes"],
        "the whole file was uploaded"
    );
    let build = stages.iter().find(|s| s["stage"] == "build").unwrap();
    assert!(build["bytes"].as_u64().unwrap() > 0, "the build log's size");
    // the build log and one console log per booted target
    let logs = std::fs::read_dir(t.path().join("state/logs"))
        .unwrap()
        .count();
    assert_eq!(logs, 3);
    let (code, out, _) = image_ci(n, &hist, &["-j", "history"]);
    assert_eq!(code, 0);
    let h: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2);
    let (code, out, _) = image_ci(n, &hist, &["report", "--every", "24h"]);
    assert_eq!(code, 0);
    assert!(
        out.lines().filter(|l| l.contains("shipped")).count() == 2,
        "{out}"
    );
    assert!(!out.contains("due:"), "{out}");
    let lines = image_ci::pipeline::history(&hist).unwrap();

    // second run, inside the interval: nothing built, nothing shipped
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let art = image_ci::artifact::Artifact::at(&co, "debian-12", &today);
    let before = mtime(&art.image);
    let (code, out, err) = image_ci(n, &hist, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}\n{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["selected"], serde_json::json!([]));
    assert_eq!(r["not_due"].as_array().unwrap().len(), 2);
    assert_eq!(r["targets"], serde_json::json!([]));
    assert_eq!(r["build_command"], Value::Null);
    assert_eq!(mtime(&art.image), before);
    assert_eq!(image_ci::pipeline::history(&hist).unwrap(), lines);
    assert_eq!(
        std::fs::read_dir(t.path().join("state/logs"))
            .unwrap()
            .count(),
        3
    );
    assert_eq!(all_images(&img).len(), 2);

    // without --due the same target is built again, and IMGAPI's active
    // image of that name and version is found: nothing is shipped twice
    let a = run_args(&["-t", "debian-12"]);
    let (code, out, err) = image_ci(n, &hist, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}\n{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["selected"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["build_command"]
            .as_str()
            .map(|c| c.contains("build_all.sh")),
        Some(true)
    );
    for tr in r["targets"].as_array().unwrap() {
        assert_eq!(tr["outcome"], "already_shipped", "{tr:#}");
        assert!(
            tr["detail"]
                .as_str()
                .unwrap()
                .starts_with("already shipped: "),
            "{tr}"
        );
    }
    assert_eq!(all_images(&img).len(), 2);
    bg.stop();
}

/// A target whose packer build fails is not shipped; the others are.
#[test]
fn failed_build_is_not_shipped() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let co = checkout(n, &n.builder, "opt/tci-fail", &["debian-13"], &[], &[]);
    let bg = triton(t.path());
    let mut cfg = config(n, &n.builder, "opt/tci-fail", bg.url("imgapi"), t.path());
    let r = pipeline::run(&mut cfg, &opts(&["debian-13", "rocky-9"])).unwrap();
    assert!(!r.ok());
    let d13 = r.targets.iter().find(|x| x.target == "debian-13").unwrap();
    assert_eq!(d13.outcome, Outcome::BuildFailed);
    assert!(
        d13.detail
            .contains("packer command failed with exit code 1"),
        "{}",
        d13.detail
    );
    let r9 = r.targets.iter().find(|x| x.target == "rocky-9").unwrap();
    assert_eq!(r9.outcome, Outcome::Shipped, "{}", r9.detail);
    // the script exits 0 even so: the log decided
    assert_eq!(r.build_exit, Some(0));
    assert!(!co.join("output-debian-13-x86_64").exists());
    assert_eq!(names(&all_images(bg.url("imgapi"))), ["rocky-9"]);
    let h = image_ci::pipeline::history(&cfg.state).unwrap();
    let outcomes: Vec<(String, Outcome)> =
        h.iter().map(|r| (r.target.clone(), r.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("debian-13".into(), Outcome::BuildFailed),
            ("rocky-9".into(), Outcome::Shipped)
        ]
    );
    // a failed target stays due
    let due = image_ci::cadence::due(
        &["debian-13".into(), "rocky-9".into()],
        &h,
        chrono::Utc::now(),
        chrono::Duration::hours(24),
    );
    assert!(due[0].due && !due[1].due);
    bg.stop();
}

/// A tampered artifact (sha1 mismatch, data after the stream), one that
/// never shows its login prompt (timeout) and one whose guest powers off
/// are not shipped; nothing of them reaches IMGAPI; no VM or file is left.
// About 5-6 s: four qemu boots, one of which must wait out its boot-test
// timeout.
#[test]
fn tampered_or_unbootable_artifacts_are_not_shipped() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let co = checkout(
        n,
        &n.builder,
        "opt/tci-tamper",
        &[],
        &["almalinux-9"],
        &["rocky-10"],
    );
    image_ci::standin::steer_file(&co, "poweroff-targets", &["ubuntu-22.04".into()]).unwrap();
    let bg = triton(t.path());
    let mut cfg = config(n, &n.builder, "opt/tci-tamper", bg.url("imgapi"), t.path());
    let r = pipeline::run(
        &mut cfg,
        &opts(&["almalinux-9", "rocky-10", "ubuntu-22.04", "oraclelinux-9"]),
    )
    .unwrap();
    assert!(!r.ok());
    let by = |name: &str| r.targets.iter().find(|x| x.target == name).unwrap();
    let a9 = by("almalinux-9");
    assert_eq!(a9.outcome, Outcome::VerifyFailed);
    let failed: Vec<&str> = a9
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "sha1 matches the manifest",
            "size matches the manifest",
            "file is a whole zvol send stream"
        ]
    );
    // the artifact is there: it is the content that is wrong
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    assert!(image_ci::artifact::Artifact::at(&co, "almalinux-9", &today)
        .image
        .is_file());
    let r10 = by("rocky-10");
    assert_eq!(r10.outcome, Outcome::BootFailed);
    assert!(
        r10.detail
            .starts_with("no /login:/ on the console within 5 s"),
        "{}",
        r10.detail
    );
    // the console's last lines are in the failure and the report
    assert!(
        r10.detail.contains("rocky-10: no login prompt here"),
        "{}",
        r10.detail
    );
    let b = r10.boot.as_ref().unwrap();
    assert!(b
        .console_tail
        .iter()
        .any(|l| l.contains("no login prompt here")));
    assert!(b.console_log.as_ref().unwrap().is_file());
    let u22 = by("ubuntu-22.04");
    assert_eq!(u22.outcome, Outcome::BootFailed);
    assert!(
        u22.detail.starts_with("the guest powered off"),
        "{}",
        u22.detail
    );
    assert!(u22.detail.contains("powering off"), "{}", u22.detail);
    assert_eq!(by("oraclelinux-9").outcome, Outcome::Shipped);
    assert_eq!(names(&all_images(bg.url("imgapi"))), ["oraclelinux-9"]);
    let text = image_ci::report::render_run(&r);
    assert!(
        text.contains("    | image-ci stand-in image rocky-10: no login prompt here\n"),
        "{text}"
    );
    nothing_left(t.path());
    bg.stop();
}

/// A joyent zone lacks the bhyve devices: preflight fails and nothing is
/// built; the stand-in itself also refuses to run there.
#[test]
fn joyent_zone_fails_preflight_and_nothing_is_built() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let co = checkout(n, &n.joyent, "opt/tci-joyent", &[], &[], &[]);
    let bg = triton(t.path());
    let mut cfg = config(n, &n.joyent, "opt/tci-joyent", bg.url("imgapi"), t.path());
    let r = pipeline::run(&mut cfg, &opts(&["debian-12", "ubuntu-24.04"])).unwrap();
    assert!(!r.ok());
    let e = r.preflight_error.as_deref().unwrap();
    assert!(e.contains("/dev/vmmctl") && e.contains("/dev/viona"), "{e}");
    assert!(r
        .targets
        .iter()
        .all(|x| x.outcome == Outcome::PreflightFailed));
    assert_eq!(r.build_command, None);
    assert_eq!(r.status, "failed");
    assert!(r
        .stages
        .iter()
        .any(|s| s.stage == "check" && s.status == "failed"));
    assert!(!r.stages.iter().any(|s| s.stage == "build"));
    let outputs = std::fs::read_dir(&co)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("output-")
        })
        .count();
    assert_eq!(outputs, 0);
    assert!(all_images(bg.url("imgapi")).is_empty());
    assert_eq!(image_ci::pipeline::history(&cfg.state).unwrap().len(), 2);

    // the same checkout in the builder zone passes preflight (control)
    assert!(image_ci::commands::preflight(&tools(n), &n.builder).is_ok());

    // the stand-in refuses a zone without the devices
    let o = n
        .tool("zlogin")
        .arg(&n.joyent)
        .arg("cd opt/tci-joyent && ./build_all.sh debian-12")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot run bhyve"));

    // the CLI: exit 1, the last line on stderr names the zone (with -q, the
    // only one)
    let (code, _, err) = image_ci(
        n,
        &t.path().join("s2.db"),
        &[
            "-q",
            "run",
            "-z",
            &n.joyent,
            "-c",
            "opt/tci-joyent",
            "--imgapi",
            bg.url("imgapi"),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("image-ci: zone ") && err.contains(&n.joyent),
        "{err}"
    );
    bg.stop();
}

/// Unknown targets and a missing zone are errors before anything runs.
#[test]
fn bad_input_is_refused_before_anything_runs() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    checkout(n, &n.builder, "opt/tci-bad", &[], &[], &[]);
    let mut cfg = config(n, &n.builder, "opt/tci-bad", "http://127.0.0.1:9", t.path());
    let e = pipeline::run(&mut cfg, &opts(&["rocky-7"])).unwrap_err();
    assert!(matches!(e, image_ci::Error::UnknownTarget(_)), "{e}");
    let mut cfg = config(
        n,
        "no-such-zone",
        "opt/tci-bad",
        "http://127.0.0.1:9",
        t.path(),
    );
    assert!(matches!(
        pipeline::run(&mut cfg, &opts(&[])).unwrap_err(),
        image_ci::Error::NoZone(_)
    ));
    assert!(!cfg.state.exists());

    // a second run while one holds the lock is refused
    let mut cfg = config(n, &n.builder, "opt/tci-bad", "http://127.0.0.1:9", t.path());
    std::fs::create_dir_all(t.path()).unwrap();
    let f = std::fs::File::create(pipeline::lock_path(&cfg.state)).unwrap();
    let mut l = fd_lock::RwLock::new(f);
    let g = l.write().unwrap();
    let e = pipeline::run(&mut cfg, &opts(&["debian-12"])).unwrap_err();
    assert!(
        e.to_string()
            .contains("another image-ci run holds the lock"),
        "{e}"
    );
    drop(g);
}

/// IMGAPI down: verified images fail to ship and say so.
#[test]
fn ship_failure_is_recorded() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    checkout(n, &n.builder, "opt/tci-down", &[], &[], &[]);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let mut cfg = config(n, &n.builder, "opt/tci-down", &url, t.path());
    let r = pipeline::run(&mut cfg, &opts(&["debian-12"])).unwrap();
    assert_eq!(r.targets[0].outcome, Outcome::ShipFailed);
    assert!(
        r.targets[0].detail.contains("connect"),
        "{}",
        r.targets[0].detail
    );
}

/// A hostile build replaces its artifact with a symlink to a file of the
/// host and fixes the manifest's sha1 and size to match it: the link is
/// refused, nothing ships, and the host file never reaches IMGAPI.
#[test]
fn artifact_symlinked_out_of_the_zone_is_never_shipped() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let co = checkout(n, &n.builder, "opt/tci-symlink", &[], &[], &[]);
    // the host file: a real gzip, so only the link gives it away
    let secret = t.path().join("host-secret.zfs.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"host secret data").unwrap();
    std::fs::write(&secret, gz.finish().unwrap()).unwrap();
    let hook = format!(
        r#"#!/bin/sh
d="$1"
img="output-debian-12-x86_64/debian-12-$d.x86_64.zfs.gz"
man="output-debian-12-x86_64/debian-12-$d.json"
old_sha=$(sha1sum "$img" | cut -d' ' -f1); old_size=$(wc -c < "$img" | tr -d ' ')
rm -f "$img"; ln -s '{secret}' "$img"
new_sha=$(sha1sum '{secret}' | cut -d' ' -f1); new_size=$(wc -c < '{secret}' | tr -d ' ')
sed -i -e "s/$old_sha/$new_sha/" -e "s/\"size\": $old_size/\"size\": $new_size/" "$man"
# and a directory link for ubuntu's whole output folder
mkdir -p '{outside}'
mv output-ubuntu-2404-x86_64/* '{outside}'/ && rmdir output-ubuntu-2404-x86_64
ln -s '{outside}' output-ubuntu-2404-x86_64
"#,
        secret = secret.display(),
        outside = t.path().join("outside").display()
    );
    std::fs::write(co.join("post-build.sh"), hook).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        co.join("post-build.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let bg = triton(t.path());
    let mut cfg = config(n, &n.builder, "opt/tci-symlink", bg.url("imgapi"), t.path());
    let r = pipeline::run(&mut cfg, &opts(&["debian-12", "ubuntu-24.04", "rocky-9"])).unwrap();
    let by = |name: &str| r.targets.iter().find(|x| x.target == name).unwrap();
    for name in ["debian-12", "ubuntu-24.04"] {
        let x = by(name);
        assert_eq!(x.outcome, Outcome::VerifyFailed, "{name}: {}", x.detail);
        assert!(x.detail.contains("symbolic link"), "{name}: {}", x.detail);
    }
    // the manifest really did match the host file: only the link stopped it
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    let a = image_ci::artifact::Artifact::at(&co, "debian-12", &today);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&a.manifest).unwrap()).unwrap();
    let (sha, _) = image_ci::verify::file_digest(&secret).unwrap();
    assert_eq!(m["files"][0]["sha1"], sha.as_str());
    assert_eq!(by("rocky-9").outcome, Outcome::Shipped);
    let shipped = all_images(bg.url("imgapi"));
    assert_eq!(names(&shipped), ["rocky-9"]);
    let text = serde_json::to_string(&shipped).unwrap();
    assert!(!text.contains(&sha), "the host file sha1 reached IMGAPI");
    // no staged copy is left behind
    nothing_left(t.path());
    bg.stop();
}

fn walk_files(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `image-ci build -z` builds in the zone and names the artifacts; nothing
/// is verified, booted or shipped.
#[test]
fn build_command_builds_in_the_zone() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    checkout(n, &n.builder, "opt/tci-build", &["debian-13"], &[], &[]);
    let hist = t.path().join("s.db");
    let run = |targets: &str| {
        image_ci(
            n,
            &hist,
            &[
                "-j",
                "build",
                "-z",
                &n.builder,
                "-c",
                "opt/tci-build",
                targets,
            ],
        )
    };
    let (code, out, err) = run("debian-12");
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["build"], "node");
    let tr = &v["targets"][0];
    assert_eq!(tr["ok"], true, "{v:#}");
    let image = tr["image"].as_str().unwrap();
    assert!(image.ends_with(".x86_64.zfs.gz"), "{image}");
    let s = zvol_stream::dump(zvol_stream::open_stream(Path::new(image)).unwrap()).unwrap();
    assert_eq!(s.size, Some(1 << 20));
    // a failed target: exit 1, named
    let (code, out, err) = run("debian-13");
    assert_eq!(code, 1, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["targets"][0]["ok"], false);
    assert!(err.starts_with("image-ci: build failed"), "{err}");
    assert!(!hist.exists());
}
