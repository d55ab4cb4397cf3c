//! Build output reaches the run's log while the build runs, and shipping
//! resumes: image-ci killed with SIGKILL at each step of a ship, then run
//! again, ends with exactly one active image of the name and version, no
//! unactivated one, and the artifact's sha1.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

fn run_cmd(n: &Node, state: &Path, rel: &str, imgapi: &str, target: &str) -> Command {
    let (_, vmadm_ext) = bins();
    let mut c = Command::new(image_ci_bin());
    c.arg("--root")
        .arg(&n.root)
        .arg("--state")
        .arg(state)
        .arg("--tools-dir")
        .arg(&n.bin)
        .arg("--vmadm-ext")
        .arg(&vmadm_ext)
        .args([
            "-q",
            "-j",
            "run",
            "-z",
            &n.builder,
            "-c",
            rel,
            "--imgapi",
            imgapi,
            "-t",
            target,
            "--boot-accel",
            "tcg",
            "--boot-timeout",
            "5",
        ]);
    c
}

/// The build's output is in the run's log file while the build still
/// runs (the stand-in's post-build step waits for the test), and on the
/// terminal with -v.
#[test]
fn build_output_reaches_the_log_while_the_build_runs() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let co = checkout(n, &n.builder, "opt/tci-stream", &[], &[], &[]);
    let go = t.path().join("go");
    std::fs::write(
        co.join("post-build.sh"),
        format!(
            "#!/bin/sh\necho 'post-build: waiting for the test'\nwhile [ ! -f '{}' ]; do sleep 0.05; done\necho 'post-build: done'\n",
            go.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        co.join("post-build.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let bg = triton(t.path());
    let state = t.path().join("state/state.db");
    let mut child = run_cmd(n, &state, "opt/tci-stream", bg.url("imgapi"), "rocky-9")
        .arg("-v")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = t.path().join("state/logs");
    let mut seen_while_running = false;
    wait_for(60, "the post-build line in the run's log", || {
        let text: String = std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("-1.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        if text.contains("post-build: waiting for the test") {
            // the build cannot end before `go` exists
            seen_while_running = child.try_wait().unwrap().is_none() && !go.exists();
            true
        } else {
            false
        }
    });
    assert!(
        seen_while_running,
        "the line came only after the build ended"
    );
    // the stand-in's own lines came before it, as they were printed
    std::fs::write(&go, b"").unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["targets"][0]["outcome"], "shipped", "{r:#}");
    let log = std::fs::read_to_string(r["build_log"].as_str().unwrap()).unwrap();
    let waiting = log.find("post-build: waiting").unwrap();
    let done = log.find("post-build: done").unwrap();
    assert!(waiting < done);
    // -v: the build's lines on the terminal too
    assert!(err.contains("post-build: waiting for the test"), "{err}");
    bg.stop();
}

/// SIGKILL after import, during the file upload, and after the upload
/// before activation; each time a second run finishes the ship: one
/// active image of the target's name and version, none unactivated, the
/// artifact's sha1. (Two pipeline runs with a qemu boot per step, under a
/// second each on the sim.)
#[test]
fn ship_resumes_after_sigkill_at_each_step() {
    let node = node();
    let n = &node;
    for step in image_ci::ship::PAUSE_STEPS {
        let t = tempfile::tempdir().unwrap();
        let rel = format!("opt/tci-kill-{step}");
        let co = checkout(n, &n.builder, &rel, &[], &[], &[]);
        let bg = triton(t.path());
        let img = bg.url("imgapi").to_string();
        let state = t.path().join("state/state.db");
        let mut child = run_cmd(n, &state, &rel, &img, "debian-12")
            .env(image_ci::ship::PAUSE_ENV, step)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut l = String::new();
            while err.read_line(&mut l).unwrap_or(0) > 0 {
                let _ = tx.send(l.trim().to_string());
                l.clear();
            }
        });
        let want = format!("image-ci: paused at {step}");
        let mut lines = vec![];
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(l) if l == want => break,
                Ok(l) => lines.push(l),
                Err(_) => panic!("{step}: never paused: {lines:?}"),
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let all = all_images(&img);
        assert_eq!(all.len(), 1, "{step}: {all:#?}");
        assert_eq!(
            all[0]["state"], "unactivated",
            "{step}: nothing half-shipped is active"
        );
        if *step == "before-activate" {
            assert!(
                all[0]["files"][0]["sha1"].is_string(),
                "{step}: the file is there"
            );
        }

        // again, without stopping
        let o = run_cmd(n, &state, &rel, &img, "debian-12")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{step}: {stderr}");
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        let tr = &r["targets"][0];
        assert_eq!(tr["outcome"], "shipped", "{step}: {tr:#}");
        assert!(
            tr["detail"]
                .as_str()
                .unwrap()
                .contains("finishing an interrupted ship"),
            "{step}: {tr:#}"
        );
        let all = all_images(&img);
        assert_eq!(all.len(), 1, "{step}: one image of the name, {all:#?}");
        assert_eq!(all[0]["state"], "active", "{step}");
        assert!(images(&img, "unactivated").is_empty(), "{step}");
        let today = chrono::Utc::now().format("%Y%m%d").to_string();
        assert_eq!(all[0]["name"], "debian-12");
        assert_eq!(all[0]["version"], today.as_str());
        let art = image_ci::artifact::Artifact::at(&co, "debian-12", &today);
        let (sha, size) = image_ci::verify::file_digest(&art.image).unwrap();
        assert_eq!(all[0]["files"][0]["sha1"], sha.as_str(), "{step}");
        assert_eq!(all[0]["files"][0]["size"], size, "{step}");
        let file = image_file(&img, all[0]["uuid"].as_str().unwrap());
        assert_eq!(sha1_hex(&file), sha, "{step}");
        // the killed run is recorded as interrupted, the ship's progress as
        // active
        let s = image_ci::state::Store::open(&state).unwrap();
        let runs = s.runs(10).unwrap();
        assert_eq!(runs.len(), 2, "{step}");
        assert_eq!(runs[1].status, "interrupted", "{step}");
        assert_eq!(runs[0].status, "ok", "{step}");
        let ships = s.ships().unwrap();
        assert_eq!(ships.len(), 1);
        assert_eq!(ships[0].step, "active");
        assert_eq!(ships[0].image_uuid, all[0]["uuid"].as_str().unwrap());
        bg.stop();
    }
}
