//! Helpers the tasks share: cargo, directories, processes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// `cargo` (the one running us, when there is one).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub fn now_stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// The file that marks a directory as made by `cargo xtask <kind>`.
pub fn marker(kind: &str) -> String {
    format!(".made-by-xtask-{kind}")
}

/// Make `dir` ready for a fresh `cargo xtask <kind>`: create it, or reuse
/// it when it is empty or was made by an earlier run of the same kind
/// (its content is cleared then). A non-empty directory this task did not
/// make is refused unless `force`: nothing in it is touched.
pub fn prepare_dir(dir: &Path, kind: &str, force: bool) -> Result<()> {
    let mark = marker(kind);
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        Ok(entries) => {
            let names: Vec<std::ffi::OsString> = entries.flatten().map(|e| e.file_name()).collect();
            let ours = names.iter().any(|n| *n == *mark);
            if !names.is_empty() && !ours && !force {
                bail!(
                    "refusing to use {}: it is not empty and was not made by `cargo xtask {kind}` \
                     (choose another directory, or give --force to clear it)",
                    dir.display()
                );
            }
            for n in names {
                let p = dir.join(n);
                if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                }
                .with_context(|| format!("cannot clear {}", p.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join(&mark), b"")?;
    Ok(())
}

/// Is there a process `pid` (signal 0, as `kill -0`)?
pub fn alive(pid: u32) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
}

/// Send SIGTERM to the process group a daemon leads (it was started in a
/// group of its own), so its children stop too.
pub fn terminate_group(pid: u32) -> Result<()> {
    let p = i32::try_from(pid).context("pid out of range")?;
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(p),
        nix::sys::signal::Signal::SIGTERM,
    )
    .with_context(|| format!("cannot signal process group {pid}"))
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start a daemon in its own process group, output to `log`.
pub fn daemon(cmd: &mut Command, log: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let out = std::fs::File::create(log)?;
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(child.id())
}

pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..100 {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("{what} did not come up within 10 s")
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cargo target directory.
pub fn target_dir() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    Ok(PathBuf::from(
        v["target_directory"].as_str().unwrap_or("target"),
    ))
}

/// Build the workspace binaries the rollout drives and say where they are.
/// Builds the workspace binaries (release when `release`: what `deploy`
/// leaves running, so its latency is the product's, not a debug build's).
pub fn binaries(release: bool) -> Result<crate::rollout::phase1::Bins> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = if release { "release" } else { "debug" };
    let ok = Command::new(&cargo)
        .arg("build")
        .args(release.then_some("--release"))
        .args([
            "--quiet",
            "-p",
            "sim",
            "-p",
            "vmadm-ext",
            "-p",
            "zvol-stream",
            "-p",
            "triton-gate",
            "-p",
            "image-ci",
            "--bins",
        ])
        .status()
        .context("running cargo build")?
        .success();
    if !ok {
        bail!("cargo build of the workspace binaries failed");
    }
    let meta = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let dir = PathBuf::from(v["target_directory"].as_str().unwrap_or("target")).join(profile);
    Ok(crate::rollout::phase1::Bins {
        sim: dir.join("sim"),
        vmadm_ext: dir.join("vmadm-ext"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_dir_refuses_what_it_did_not_make() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("out");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("precious"), b"keep me").unwrap();
        let e = prepare_dir(&d, "rollout", false).unwrap_err().to_string();
        assert!(e.contains("not made by `cargo xtask rollout`"), "{e}");
        assert_eq!(std::fs::read(d.join("precious")).unwrap(), b"keep me");
        // a deploy directory is not a rollout directory either
        std::fs::remove_file(d.join("precious")).unwrap();
        prepare_dir(&d, "deploy", false).unwrap();
        std::fs::write(d.join("state"), b"x").unwrap();
        assert!(prepare_dir(&d, "rollout", false).is_err());
        assert!(d.join("state").exists());
        // its own directory is cleared and reused
        prepare_dir(&d, "deploy", false).unwrap();
        assert!(!d.join("state").exists() && d.join(marker("deploy")).exists());
        // missing: created; --force: cleared
        let n = t.path().join("new/deep");
        prepare_dir(&n, "rollout", false).unwrap();
        assert!(n.join(marker("rollout")).exists());
        std::fs::write(d.join("x"), b"x").unwrap();
        prepare_dir(&d, "rollout", true).unwrap();
        assert!(!d.join("x").exists());
    }

    #[test]
    fn rollout_refuses_a_foreign_directory_before_doing_anything() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("notes.txt"), b"mine").unwrap();
        let e = crate::rollout::rollout(t.path(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing to use"), "{e}");
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }
}
