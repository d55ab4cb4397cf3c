//! The qemu boot test on small real images (a 1 MiB disk whose boot sector
//! prints on COM1, as a gzipped zvol send stream): the marker is seen, a
//! disk that never prints it fails on timeout, one that powers off fails
//! at once, and no qemu process or temporary file survives, also when
//! image-ci is killed with SIGTERM.
//!
//! These take seconds rather than milliseconds: each boots a real VM
//! (about 0.1 s under TCG, about 2 s under this machine's nested KVM,
//! where SeaBIOS is slow), and the timeout case waits its (short) timeout.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image_ci::boot::{BootRequest, BootTest};
use image_ci::standin::{write_image, DiskKind};

use crate::common::*;

fn image(dir: &Path, kind: DiskKind) -> std::path::PathBuf {
    let p = dir.join(format!("{}.x86_64.zfs.gz", kind.word()));
    write_image(kind, "debian-12", &p).unwrap();
    p
}

fn manifest() -> serde_json::Value {
    serde_json::json!({"disk_driver": "virtio", "nic_driver": "virtio", "image_size": 10240})
}

#[test]
fn qemu_sees_the_marker_and_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let vmtmp = t.path().join("vmtmp");
    let img = image(t.path(), DiskKind::Marker);
    let q = qemu(&vmtmp, 60);
    let log = t.path().join("logs/run.debian-12.console.log");
    let m = manifest();
    let b = q
        .boot(&BootRequest {
            image: &img,
            manifest: &m,
            disk: None,
            console_log: Some(&log),
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        b.detail.starts_with("/login:/ on the console after"),
        "{}",
        b.detail
    );
    let accel = b.details.accel.clone().unwrap();
    assert!(accel == "kvm" || accel == "tcg", "{accel}");
    assert!(
        b.detail
            .contains(&format!("under {}", accel.to_uppercase())),
        "{}",
        b.detail
    );
    assert_eq!(
        b.details.console_tail.last().map(String::as_str),
        Some("debian-12 login:")
    );
    let kept = std::fs::read_to_string(&log).unwrap();
    assert!(kept.contains("image-ci stand-in image debian-12"), "{kept}");
    assert_eq!(b.details.console_log.as_deref(), Some(log.as_path()));
    // the VM and its temporary directory (raw disk, console) are gone
    assert!(processes_with(&vmtmp.display().to_string()).is_empty());
    assert!(left_in(&vmtmp).is_empty(), "{:?}", left_in(&vmtmp));
}

// About 3 s: the boot-test timeout under test is 3 s and must run out.
#[test]
fn qemu_fails_on_timeout_when_the_marker_never_comes() {
    let t = tempfile::tempdir().unwrap();
    let vmtmp = t.path().join("vmtmp");
    let img = image(t.path(), DiskKind::NoMarker);
    // TCG: the timeout is measured from a boot that starts at once
    let mut q = qemu(&vmtmp, 3);
    q.accel = image_ci::qemu::AccelChoice::Tcg;
    let m = manifest();
    let start = Instant::now();
    let e = q
        .boot(&BootRequest {
            image: &img,
            manifest: &m,
            disk: None,
            console_log: None,
        })
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        e.to_string()
            .starts_with("no /login:/ on the console within 3 s under TCG"),
        "{e}"
    );
    // the console tail is in the failure
    assert!(e.to_string().contains("no login prompt here"), "{e}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(processes_with(&vmtmp.display().to_string()).is_empty());
    assert!(left_in(&vmtmp).is_empty(), "{:?}", left_in(&vmtmp));
}

#[test]
fn qemu_fails_at_once_when_the_guest_powers_off() {
    let t = tempfile::tempdir().unwrap();
    let vmtmp = t.path().join("vmtmp");
    let img = image(t.path(), DiskKind::Poweroff);
    let q = qemu(&vmtmp, 60);
    let m = manifest();
    let start = Instant::now();
    let e = q
        .boot(&BootRequest {
            image: &img,
            manifest: &m,
            disk: None,
            console_log: None,
        })
        .unwrap_err();
    assert!(e.to_string().starts_with("the guest powered off"), "{e}");
    assert!(e.to_string().contains("powering off"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(processes_with(&vmtmp.display().to_string()).is_empty());
    assert!(left_in(&vmtmp).is_empty(), "{:?}", left_in(&vmtmp));
}

/// A disk that is not a stream, and qemu that does not exist, fail with
/// their own messages.
#[test]
fn qemu_refuses_what_it_cannot_boot() {
    let t = tempfile::tempdir().unwrap();
    let vmtmp = t.path().join("vmtmp");
    let bad = t.path().join("bad.zfs.gz");
    std::fs::write(&bad, b"not a stream").unwrap();
    let m = manifest();
    let req = BootRequest {
        image: &bad,
        manifest: &m,
        disk: None,
        console_log: None,
    };
    let e = qemu(&vmtmp, 5).boot(&req).unwrap_err();
    assert!(e.to_string().contains("bad.zfs.gz"), "{e}");
    assert!(left_in(&vmtmp).is_empty(), "{:?}", left_in(&vmtmp));
    let mut q = qemu(&vmtmp, 5);
    q.qemu = "/nonexistent/qemu-system-x86_64".into();
    let e = q.boot(&req).unwrap_err();
    assert!(e.to_string().contains("install qemu-system-x86"), "{e}");
}

/// SIGTERM to image-ci while qemu runs: qemu is killed, the temporary
/// directory removed, exit 128 + 15.
#[test]
fn sigterm_kills_the_vm_and_removes_its_files() {
    require_qemu();
    let t = tempfile::tempdir().unwrap();
    let tmp = t.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let img = image(t.path(), DiskKind::NoMarker);
    let mut child = Command::new(image_ci_bin())
        .args(["boot-test", "--boot-test", "qemu", "--boot-timeout", "120"])
        .arg(&img)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let needle = tmp.display().to_string();
    let start = Instant::now();
    while processes_with(&needle)
        .iter()
        .all(|p| !p.contains("qemu-system"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "qemu did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!left_in(&tmp).is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(st.code(), Some(143), "{err}");
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    // the VM's process group was killed; give the kernel a moment to reap
    let gone = Instant::now();
    while !processes_with(&needle).is_empty() && gone.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        processes_with(&needle).is_empty(),
        "{:?}",
        processes_with(&needle)
    );
    assert!(left_in(&tmp).is_empty(), "{:?}", left_in(&tmp));
}
