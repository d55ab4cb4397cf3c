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
    ("zvol-stream", "zvol-stream"),
];

/// The crates each phase releases (the shared crates they need are added
/// from the dependency graph).
pub const PHASES: &[(u8, &[&str])] = &[
    (0, &["ui-compat"]),
    (1, &["brand", "vmadm-ext"]),
    (2, &["triton-gate"]),
    (3, &["image-ci", "zvol-stream"]),
];

/// One crate of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
    /// Binaries the crate builds (release artifacts).
    pub bins: Vec<String>,
    /// Named by the phase (not only needed by it).
    pub phase: bool,
}

impl Crate {
    /// The tag of this crate's release (not pushed).
    pub fn tag(&self) -> String {
        format!("{}-v{}", self.name, self.version)
    }
}

/// What a phase release consists of.
#[derive(Debug, Clone)]
pub struct Plan {
    pub phase: u8,
    /// In dependency order (a crate after the crates it needs).
    pub crates: Vec<Crate>,
    /// Files of the bundle, relative to its directory, with their sources
    /// (`None`: made during the release: binaries, completions, sums).
    pub files: Vec<(String, Option<PathBuf>)>,
}

/// Plan the release of `phase` from `cargo metadata`.
pub fn plan(phase: u8) -> Result<Plan> {
    let named = PHASES
        .iter()
        .find(|(n, _)| *n == phase)
        .map(|(_, c)| *c)
        .with_context(|| format!("no phase {phase} (phases are 0, 1, 2 and 3)"))?;
    let meta = Command::new(crate::util::cargo())
        .args(["metadata", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let members: Vec<serde_json::Value> = v["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            v["workspace_members"]
                .as_array()
                .is_some_and(|m| m.contains(&p["id"]))
        })
        .cloned()
        .collect();
    // the phase's crates and what they need, each after its dependencies
    fn visit(n: &str, members: &[serde_json::Value], order: &mut Vec<String>) {
        if order.iter().any(|o| o == n) {
            return;
        }
        let Some(p) = members.iter().find(|p| p["name"] == n) else {
            return;
        };
        for d in p["dependencies"].as_array().into_iter().flatten() {
            // normal dependencies only: dev-dependencies are not packaged
            if d["kind"].is_null() {
                if let Some(dn) = d["name"].as_str() {
                    visit(dn, members, order);
                }
            }
        }
        order.push(n.to_string());
    }
    let mut order: Vec<String> = Vec::new();
    for n in named {
        visit(n, &members, &mut order);
    }
    let by_name_s = |n: &str| members.iter().find(|p| p["name"] == n);
    let mut crates = Vec::new();
    for n in &order {
        let p = by_name_s(n).with_context(|| format!("no crate {n} in the workspace"))?;
        let dir = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let bins: Vec<String> = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .filter(|b| !b.ends_with("-bench"))
            .collect();
        crates.push(Crate {
            name: n.clone(),
            version: p["version"].as_str().unwrap_or_default().to_string(),
            dir,
            bins,
            phase: named.contains(&n.as_str()),
        });
    }
    let mut files: Vec<(String, Option<PathBuf>)> = Vec::new();
    for c in crates.iter().filter(|c| c.phase) {
        for b in &c.bins {
            files.push((format!("bin/{b}"), None));
            files.push((format!("share/bash-completion/completions/{b}"), None));
            files.push((format!("share/zsh/site-functions/_{b}"), None));
            files.push((format!("share/fish/vendor_completions.d/{b}.fish"), None));
        }
        for d in ["man", "smf", "systemd"] {
            let mut found: Vec<PathBuf> = std::fs::read_dir(c.dir.join(d))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            found.sort();
            for f in found {
                let name = f
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let rel = if d == "man" {
                    let section = name.rsplit('.').next().unwrap_or("1");
                    format!("man/man{section}/{name}")
                } else {
                    format!("{d}/{name}")
                };
                files.push((rel, Some(f)));
            }
        }
        files.push((
            format!("docs/{}/README.md", c.name),
            Some(c.dir.join("README.md")),
        ));
        files.push((
            format!("docs/{}/CHANGELOG.md", c.name),
            Some(c.dir.join("CHANGELOG.md")),
        ));
    }
    let ws = crate::docs::workspace();
    if phase == 1 {
        files.push((
            "man/man7/builder.7".into(),
            Some(ws.join("docs/man/builder.7")),
        ));
    }
    files.push(("README.md".into(), Some(ws.join("README.md"))));
    files.push(("SHA256SUMS".into(), None));
    Ok(Plan {
        phase,
        crates,
        files,
    })
}

/// Does `dir/CHANGELOG.md` have an entry (`## <version>`) for `version`?
pub fn changelog_has(dir: &Path, version: &str) -> Result<bool> {
    let p = dir.join("CHANGELOG.md");
    let t = std::fs::read_to_string(&p).with_context(|| format!("{} is missing", p.display()))?;
    Ok(t.lines().any(|l| {
        l.strip_prefix("## ")
            .is_some_and(|r| r.split_whitespace().next() == Some(version))
    }))
}

/// `cargo xtask release --phase N [--dry-run]`.
pub fn release_phase(out: &Path, phase: u8, dry_run: bool) -> Result<bool> {
    let plan = plan(phase)?;
    println!("phase {phase} release");
    println!("crates (in dependency order):");
    for c in &plan.crates {
        println!(
            "  {} {}{}  tag {}",
            c.name,
            c.version,
            if c.phase { "" } else { " (needed)" },
            c.tag()
        );
    }
    println!("files:");
    for (f, _) in &plan.files {
        println!("  {f}");
    }
    if dry_run {
        println!("dry run: nothing written, nothing packaged, nothing tagged");
        return Ok(true);
    }
    for c in &plan.crates {
        if !changelog_has(&c.dir, &c.version)? {
            bail!(
                "{}/CHANGELOG.md has no entry for {} (add a `## {}` section)",
                c.dir.display(),
                c.version,
                c.version
            );
        }
    }
    let cargo = crate::util::cargo();
    // every crate packaged, in one call so cargo packages the workspace
    // crates they depend on together; nothing is published
    let mut pkg = Command::new(&cargo);
    pkg.args(["package", "--no-verify", "--allow-dirty"]);
    for c in &plan.crates {
        pkg.args(["-p", &c.name]);
    }
    if !pkg.status().context("running cargo package")?.success() {
        bail!("cargo package failed");
    }
    let mut build = Command::new(&cargo);
    build.args(["build", "--release"]);
    let mut any = false;
    for c in plan.crates.iter().filter(|c| c.phase) {
        for b in &c.bins {
            build.args(["-p", &c.name, "--bin", b]);
            any = true;
        }
    }
    if any
        && !build
            .status()
            .context("running cargo build --release")?
            .success()
    {
        bail!("cargo build --release failed");
    }
    let target = crate::util::target_dir()?;
    let name = format!(
        "builder-brand-phase{phase}-{}",
        plan.crates
            .iter()
            .find(|c| c.phase)
            .map_or("0", |c| c.version.as_str())
    );
    let dir = out.join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    for (rel, src) in &plan.files {
        let dst = dir.join(rel);
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d)?;
        }
        if let Some(src) = src {
            std::fs::copy(src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    for c in plan.crates.iter().filter(|c| c.phase) {
        for b in &c.bins {
            let exe = target.join("release").join(b);
            std::fs::copy(&exe, dir.join("bin").join(b))
                .with_context(|| format!("copying {}", exe.display()))?;
            for (shell, rel) in [
                ("bash", format!("share/bash-completion/completions/{b}")),
                ("zsh", format!("share/zsh/site-functions/_{b}")),
                ("fish", format!("share/fish/vendor_completions.d/{b}.fish")),
            ] {
                let o = Command::new(&exe).args(["--completions", shell]).output()?;
                if !o.status.success() || o.stdout.is_empty() {
                    bail!("{b} --completions {shell} printed nothing");
                }
                std::fs::write(dir.join(rel), o.stdout)?;
            }
        }
    }
    // the packaged crates beside the bundle
    let pkgdir = dir.join("crates");
    std::fs::create_dir_all(&pkgdir)?;
    for c in &plan.crates {
        let f = format!("{}-{}.crate", c.name, c.version);
        std::fs::copy(target.join("package").join(&f), pkgdir.join(&f))
            .with_context(|| format!("copying {f}"))?;
    }
    write_sums(&dir)?;
    println!("{}", dir.display());
    for c in &plan.crates {
        println!("tag (not pushed): {}", c.tag());
    }
    Ok(true)
}

/// SHA256SUMS over every file under `dir` (but itself).
fn write_sums(dir: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else if e.file_name() != "SHA256SUMS" {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let mut sums = String::new();
    for f in &files {
        let rel = f.strip_prefix(dir).unwrap_or(f).display().to_string();
        sums.push_str(&format!("{}  {rel}\n", sha256_hex(&std::fs::read(f)?)));
    }
    std::fs::write(dir.join("SHA256SUMS"), &sums)?;
    Ok(())
}

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
    for sub in [
        "bin",
        "man/man1",
        "man/man7",
        "man/man8",
        "docs",
        "platform",
        "share/bash-completion/completions",
        "share/zsh/site-functions",
        "share/fish/vendor_completions.d",
    ] {
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
    std::fs::copy(
        ws.join("docs/man/builder.7"),
        dir.join("man/man7/builder.7"),
    )?;
    for (_, bin) in RELEASE_BINS {
        let exe = dir.join("bin").join(bin);
        for (shell, rel) in [
            ("bash", format!("share/bash-completion/completions/{bin}")),
            ("zsh", format!("share/zsh/site-functions/_{bin}")),
            (
                "fish",
                format!("share/fish/vendor_completions.d/{bin}.fish"),
            ),
        ] {
            let o = Command::new(&exe).args(["--completions", shell]).output()?;
            if o.status.success() && !o.stdout.is_empty() {
                std::fs::write(dir.join(rel), o.stdout)?;
            }
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
