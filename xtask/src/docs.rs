//! `cargo xtask docs`: the book (mdBook, `docs/book.toml`) built into
//! `target/book`, with every manual page rendered next to it
//! (`target/book/man/<page>.html`, by `mandoc -T html`).
//!
//! mdbook is not packaged by Debian; it is installed once with `cargo
//! install mdbook --locked` into `target/tools` and reused from there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, target_dir};

/// The mdbook release the book is built with.
pub const MDBOOK_VERSION: &str = "0.5.4";

/// The workspace's root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every manual page of the project.
pub fn man_pages() -> Vec<PathBuf> {
    let ws = workspace();
    let mut v: Vec<PathBuf> = [
        "docs/man",
        "brand/man",
        "vmadm-ext/man",
        "triton-gate/man",
        "image-ci/man",
        "zvol-stream/man",
        "ui-compat/man",
        "sim/man",
    ]
    .iter()
    .flat_map(|d| {
        std::fs::read_dir(ws.join(d))
            .into_iter()
            .flatten()
            .flatten()
    })
    .map(|e| e.path())
    .filter(|p| {
        p.extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.len() == 1 && x.as_bytes()[0].is_ascii_digit())
    })
    .collect();
    v.sort();
    v
}

/// mdbook from `target/tools`, installed there when missing.
fn mdbook() -> Result<PathBuf> {
    let root = target_dir()?.join("tools");
    let bin = root.join("bin/mdbook");
    let have = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(MDBOOK_VERSION));
    if !have {
        eprintln!(
            "xtask: installing mdbook {MDBOOK_VERSION} into {}",
            root.display()
        );
        let st = Command::new(cargo())
            .args([
                "install",
                "mdbook",
                "--locked",
                "--no-default-features",
                "--features",
                "search",
                "--version",
            ])
            .arg(MDBOOK_VERSION)
            .arg("--root")
            .arg(&root)
            .status()
            .context("running cargo install mdbook")?;
        if !st.success() {
            bail!("cargo install mdbook {MDBOOK_VERSION} failed");
        }
    }
    Ok(bin)
}

/// Build the book and render the manual pages; returns the book's index.
pub fn docs() -> Result<PathBuf> {
    let ws = workspace();
    let out = target_dir()?.join("book");
    let st = Command::new(mdbook()?)
        .arg("build")
        .arg(ws.join("docs"))
        .arg("--dest-dir")
        .arg(&out)
        .status()
        .context("running mdbook")?;
    if !st.success() {
        bail!("mdbook build failed");
    }
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    for page in man_pages() {
        let o = Command::new("mandoc")
            .args(["-T", "html"])
            .arg(&page)
            .output()
            .context("running mandoc (apt-get install mandoc)")?;
        if !o.status.success() {
            bail!(
                "mandoc -T html {}: {}",
                page.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        let name = page.file_name().unwrap_or_default().to_string_lossy();
        std::fs::write(man.join(format!("{name}.html")), o.stdout)?;
    }
    let index = out.join("index.html");
    if !index.is_file() {
        bail!("mdbook wrote no {}", index.display());
    }
    Ok(index)
}
