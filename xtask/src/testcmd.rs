//! `cargo xtask test`: install what the tests need, build the binaries
//! once, run every test.

use std::process::Command;

use anyhow::{bail, Result};

use crate::util::target_dir;

/// Programs the test suite runs, and the Debian packages that bring them.
pub const TEST_TOOLS: &[(&str, &str)] = &[
    ("xmllint", "libxml2-utils"),
    ("mandoc", "mandoc"),
    ("qemu-img", "qemu-utils"),
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Install missing test tools with apt-get (as root), else say what to do.
pub fn ensure_test_tools() -> Result<()> {
    let missing: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(p, _)| !have(p))
        .map(|(_, pkg)| *pkg)
        .collect();
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
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?
            .success();
    if !ok {
        bail!("apt-get could not install {}", missing.join(" "));
    }
    Ok(())
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
