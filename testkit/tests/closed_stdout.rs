//! Every CLI that can print more than a pipe holds (64 KiB) exits quietly
//! when its reader goes away after one line (`vmadm-ext list | head -1`):
//! no panic, no exit 101, nothing on stderr.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const TEMPLATE: &str = include_str!("../../vmadm-ext/tests/golden/builder-zone.xml");
const TEMPLATE_UUID: &str = "4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f";

/// `n` zones under `root` (index + zone XML), all of brand builder.
fn zones(root: &Path, n: usize) {
    let dir = root.join("etc/zones");
    std::fs::create_dir_all(&dir).unwrap();
    let mut index = String::from("global:installed:/\n");
    for i in 0..n {
        let uuid = format!("{i:08x}-0000-4000-8000-{i:012x}");
        std::fs::write(
            dir.join(format!("{uuid}.xml")),
            TEMPLATE.replace(TEMPLATE_UUID, &uuid),
        )
        .unwrap();
        index.push_str(&format!("{uuid}:installed:/zones/{uuid}:{uuid}\n"));
    }
    std::fs::write(dir.join("index"), index).unwrap();
}

/// Run `cmd`, read one line of its stdout, close the pipe, and check how
/// it ended.
fn closed_after_one_line(what: &str, cmd: &mut Command) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "{what}: printed nothing");
    drop(out);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(o.status.code(), Some(0), "{what}: {:?} {err}", o.status);
    assert!(err.trim().is_empty(), "{what} said: {err}");
}

#[test]
fn clis_exit_quietly_when_stdout_closes() {
    let t = tempfile::tempdir().unwrap();
    zones(t.path(), 1200);
    // vmadm-ext list and lookup -j: far more than 64 KiB
    let vx = testkit::bin("vmadm-ext");
    let o = Command::new(&vx)
        .args(["--root"])
        .arg(t.path())
        .args(["list", "-p"])
        .env("VMADM_EXT_STATE", "index")
        .output()
        .unwrap();
    assert!(o.stdout.len() > 64 * 1024, "{}", o.stdout.len());
    closed_after_one_line(
        "vmadm-ext list",
        Command::new(&vx)
            .arg("--root")
            .arg(t.path())
            .arg("list")
            .env("VMADM_EXT_STATE", "index"),
    );
    closed_after_one_line(
        "vmadm-ext lookup -j",
        Command::new(&vx)
            .arg("--root")
            .arg(t.path())
            .args(["lookup", "-j"])
            .env("VMADM_EXT_STATE", "index"),
    );

    // the sim's vmadm on a node with the same zones
    let sim = testkit::bin("sim");
    let node = t.path().join("node");
    let st = Command::new(&sim)
        .args(["node", "init"])
        .arg(&node)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    zones(&node, 400);
    closed_after_one_line(
        "sim vmadm lookup -j",
        Command::new(&sim)
            .args(["vmadm", "lookup", "-j"])
            .env("SIM_ROOT", &node),
    );
    closed_after_one_line(
        "sim vmadm list",
        Command::new(&sim)
            .args(["vmadm", "list"])
            .env("SIM_ROOT", &node),
    );

    // zvol-stream read to stdout: a 4 MiB disk
    let zs = testkit::bin("zvol-stream");
    let raw = t.path().join("disk.raw");
    let text: String = (0..(4 << 20) / 16).map(|i| format!("{i:015}\n")).collect();
    std::fs::write(&raw, text).unwrap();
    let stream = t.path().join("disk.zfs");
    let st = Command::new(&zs)
        .args(["write"])
        .arg(&raw)
        .arg(&stream)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    closed_after_one_line(
        "zvol-stream read - ",
        Command::new(&zs).arg("read").arg(&stream).arg("-"),
    );
}
