//! `cargo xtask release`: release binaries, man pages, docs, a simulated
//! platform image and SHA256SUMS in one bundle.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::platform::platform;
use crate::util::{now_stamp, sha256_hex};

/// The binaries a release carries, by package.
pub const RELEASE_BINS: &[(&str, &str)] = &[
    ("brand", "brand"),
    ("vmadm-ext", "vmadm-ext"),
    ("sim", "sim"),
    ("ui-compat", "ui-compat"),
    ("triton-gate", "triton-gate"),
    ("image-ci", "image-ci"),
];

/// `cargo xtask release`: release binaries, man pages, docs and a platform
/// image in `<out>/builder-brand-<version>-<host>/`, packed as a .tgz, and
/// SHA256SUMS over the bundle's files and the tarball.
pub fn release(out: &Path) -> Result<bool> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    build.args(["build", "--release", "--locked"]);
    for (pkg, bin) in RELEASE_BINS {
        build.args(["-p", pkg, "--bin", bin]);
    }
    if !build
        .status()
        .context("running cargo build --release")?
        .success()
    {
        bail!("cargo build --release failed");
    }
    let meta = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let target = PathBuf::from(v["target_directory"].as_str().unwrap_or("target"));
    let host = Command::new("rustc").arg("-vV").output()?;
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let name = format!("builder-brand-{}-{host}", env!("CARGO_PKG_VERSION"));
    let _ = std::fs::remove_dir_all(out.join(&name));
    let dir = out.join(&name);
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for sub in ["bin", "man/man1", "man/man8", "docs", "platform"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    for (_, bin) in RELEASE_BINS {
        std::fs::copy(target.join("release").join(bin), dir.join("bin").join(bin))
            .with_context(|| format!("copying {bin}"))?;
    }
    for (pkg, _) in RELEASE_BINS {
        for e in std::fs::read_dir(ws.join(pkg).join("man"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            let section = n.rsplit('.').next().unwrap_or("1");
            std::fs::copy(e.path(), dir.join(format!("man/man{section}")).join(&n))?;
        }
    }
    for f in ["README.md", "docs/README.md", "docs/architecture.md"] {
        let dst = if f == "README.md" {
            dir.join(f)
        } else {
            dir.join("docs")
                .join(Path::new(f).file_name().unwrap_or_default())
        };
        std::fs::copy(ws.join(f), dst)?;
    }
    let built = platform(&dir.join("platform"), &now_stamp())?;
    let _ = std::fs::remove_dir_all(dir.join("platform/proto"));
    println!("platform image: {}", built.image.display());
    // SHA256SUMS of the bundle, then the tarball and its sum.
    let mut sums = String::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for f in &files {
        let rel = f.strip_prefix(&dir).unwrap_or(f).display().to_string();
        sums.push_str(&format!("{}  {rel}\n", sha256_hex(&std::fs::read(f)?)));
    }
    std::fs::write(dir.join("SHA256SUMS"), &sums)?;
    let tgz = out.join(format!("{name}.tgz"));
    {
        let f = std::fs::File::create(&tgz)?;
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::default(),
        ));
        b.append_dir_all(&name, &dir)?;
        b.into_inner()?.finish()?.sync_all()?;
    }
    let sum = format!("{}  {name}.tgz\n", sha256_hex(&std::fs::read(&tgz)?));
    std::fs::write(out.join(format!("{name}.tgz.sha256")), &sum)?;
    println!("{}", dir.display());
    print!("{sum}");
    Ok(true)
}
