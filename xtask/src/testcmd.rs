//! `cargo xtask test`: install what the tests need, build the binaries
//! once, run every test.

use std::process::Command;

use anyhow::{bail, Result};

use crate::util::target_dir;

/// Programs the test suite runs, and the Debian packages that bring them.
pub const TEST_TOOLS: &[(&str, &str)] = &[
    ("xmllint", "libxml2-utils"),
    ("mandoc", "mandoc"),
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("node", "nodejs"),
    ("npm", "npm"),
    ("mmdebstrap", "mmdebstrap"),
    ("sfdisk", "fdisk"),
    ("extlinux", "extlinux"),
    ("qemu-system-x86_64", "qemu-system-x86"),
];

pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(prog).is_file())
}

/// Install missing test tools with apt-get (as root), else say what to do.
pub fn ensure_test_tools() -> Result<()> {
    let mut missing: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(p, _)| !have(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !std::path::Path::new("/usr/lib/syslinux/mbr/mbr.bin").exists() {
        missing.push("syslinux-common");
    }
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !root || !have("apt-get") {
        bail!(
            "the tests need these packages: {} (install them with apt-get as root)",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let ok = Command::new("apt-get")
        .arg("update")
        .arg("-qq")
        .status()?
        .success()
        && Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .args(qemu_utils_pin(&missing)?)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?
            .success();
    if !ok {
        bail!("apt-get could not install {}", missing.join(" "));
    }
    Ok(())
}

/// qemu-system-x86 needs the qemu-utils of its own release: pin it (a
/// newer qemu-utils from elsewhere is replaced).
fn qemu_utils_pin(missing: &[&str]) -> Result<Vec<String>> {
    if !missing.contains(&"qemu-system-x86") {
        return Ok(vec![]);
    }
    let o = Command::new("apt-cache")
        .args(["policy", "qemu-system-x86"])
        .output()?;
    let v = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Candidate:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    if v.is_empty() || v == "(none)" {
        return Ok(vec![]);
    }
    Ok(vec!["--allow-downgrades".into(), format!("qemu-utils={v}")])
}

/// Install what the tests need, build the workspace's binaries once (the
/// tests of one package run another package's binaries by path, never
/// building them), then run every test.
pub fn test(args: &[String]) -> Result<bool> {
    ensure_test_tools()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--workspace", "--bins"])
        .status()?;
    if !status.success() {
        return Ok(false);
    }
    // the book must build (its guides' commands are run by a test)
    let index = crate::docs::docs()?;
    println!("xtask: book built: {}", index.display());
    let bin_dir = target_dir()?.join("debug");
    let status = Command::new(&cargo)
        .args(["test", "--workspace"])
        .args(args)
        .env("BUILDER_BRAND_BIN_DIR", &bin_dir)
        .status()?;
    Ok(status.success())
}
