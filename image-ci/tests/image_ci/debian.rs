//! The real thing on Linux: `image-ci run --local -t debian-12` builds a
//! Debian 12 cloud image (mmdebstrap from Debian's archive, ext4,
//! extlinux, serial console), writes it as build_all.sh does (zvol stream,
//! `.zfs.gz`, manifest), verifies it, boots it in qemu to its login prompt
//! and ships it to the sim's IMGAPI, which validates the manifest with
//! imgmanifest; npm imgmanifest agrees.
//!
//! This takes minutes, and CI runs it: about a minute of mmdebstrap (the
//! packages are cached in `<target>/image-ci-cache` between runs, so only
//! the first run downloads them all), streaming and gzipping a 10 GiB
//! (sparse) disk, and a boot of a real kernel (about 20-40 s under TCG,
//! where this machine's nested KVM fails on extlinux). It runs the
//! image-ci binary cargo builds for these tests: the stream, gzip and sha1
//! code is optimized in the workspace's dev profile. It needs root, loop devices, mmdebstrap, extlinux, syslinux-common,
//! fdisk and qemu-system-x86, and fails (never skips) without them.

use std::process::Command;

use serde_json::Value;

use crate::common::*;

// Minutes: see the module comment (a real Debian build and boot).
#[test]
fn debian_12_builds_locally_boots_to_login_and_ships() {
    require_qemu();
    let t = tempfile::tempdir().unwrap();
    let co = t.path().join("triton-cloud-images");
    std::fs::create_dir_all(&co).unwrap();
    for f in ["imgconfigs.json", "manifest.in"] {
        std::fs::copy(oracle_dir().join(f), co.join(f)).unwrap();
    }
    let out = t.path().join("out");
    let cache = target_dir().parent().unwrap().join("image-ci-cache");
    let state = t.path().join("state/state.db");
    let bg = triton(t.path());
    let img = bg.url("imgapi").to_string();
    let o = Command::new(image_ci_bin())
        .arg("-j")
        .arg("--state")
        .arg(&state)
        .args(["run", "--local", "-c"])
        .arg(&co)
        .arg("-o")
        .arg(&out)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--imgapi", &img, "-t", "debian-12"])
        .env("TMPDIR", t.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stdout {stdout}\nstderr {stderr}");
    // progress, as plain lines (stderr is not a terminal here)
    for step in ["disk", "download", "install", "boot", "stream", "gzip"] {
        assert!(
            stderr.contains(&format!("image-ci: debian-12: {step}: ")),
            "{step} missing from {stderr}"
        );
    }
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["build"], "local");
    assert_eq!(r["boot_test"], "qemu");
    let tr = &r["targets"][0];
    assert_eq!(tr["outcome"], "shipped", "{tr:#}");
    let checks = tr["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["ok"] == true), "{tr:#}");
    let boot = checks
        .iter()
        .find(|c| c["name"] == "boot test (qemu)")
        .unwrap();
    assert!(
        boot["detail"]
            .as_str()
            .unwrap()
            .starts_with("/login:/ on the console after"),
        "{boot}"
    );
    let tail = tr["boot"]["console_tail"].as_array().unwrap();
    assert_eq!(tail.last().unwrap(), "debian login:", "{tail:?}");
    let console = std::fs::read_to_string(tr["boot"]["console_log"].as_str().unwrap()).unwrap();
    assert!(console.contains("Debian GNU/Linux 12"), "{console}");

    // the artifacts, as build_all.sh names them
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    let a = image_ci::artifact::Artifact::at(&out, "debian-12", &today);
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&a.manifest).unwrap()).unwrap();
    let (sha1, size) = image_ci::verify::file_digest(&a.image).unwrap();
    assert_eq!(m["files"][0]["sha1"], sha1.as_str());
    assert_eq!(m["files"][0]["size"], size);
    assert!(
        !a.image.with_extension("").exists(),
        "the .zfs stays only until gzipped"
    );
    let s = zvol_stream::dump(zvol_stream::open_stream(&a.image).unwrap()).unwrap();
    assert_eq!(s.size, Some(10240 << 20), "{}", s.to_text());

    // IMGAPI: active, the file as built, the manifest valid for npm imgmanifest too
    let active = images(&img, "active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["name"], "debian-12");
    assert_eq!(active[0]["uuid"], m["uuid"]);
    assert_eq!(active[0]["files"][0]["sha1"], sha1.as_str());
    let res = crate::imgmanifest::validate_dir(&t.path().join("triton"));
    assert_eq!(res.as_object().unwrap().len(), 1);
    for (f, e) in res.as_object().unwrap() {
        assert!(e.is_null(), "{f}: {e}");
    }

    // packages are cached for the next run
    let debs = std::fs::read_dir(cache.join("debs/bookworm"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".deb"))
        .count();
    assert!(debs > 100, "{debs} .deb files cached");

    // nothing left: no build directory, mount, loop device or VM
    let outs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(outs, ["output-debian-12-x86_64"]);
    assert!(image_ci::cleanup::mounts_below(t.path()).is_empty());
    let loops = Command::new("losetup").arg("-a").output().unwrap();
    let loops = String::from_utf8_lossy(&loops.stdout);
    assert!(!loops.contains(&t.path().display().to_string()), "{loops}");
    assert!(processes_with(&t.path().display().to_string()).is_empty());
    let stage = t.path().join("state/stage");
    assert!(
        std::fs::read_dir(&stage).map_or(true, |mut d| d.next().is_none()),
        "{:?}",
        left_in(&stage)
    );
    bg.stop();
}
