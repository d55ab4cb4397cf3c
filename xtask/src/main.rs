//! Project chores.
//!
//! - `cargo xtask platform`: stage the brand files into a proto tree (with
//!   manifest lines) and build a platform image that carries them.
//! - `cargo xtask rollout`: run the phases end to end on the embedded sim
//!   and write a report of every gate.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "xtask", about = "Project chores: platform, rollout")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Stage the brand files into a proto tree and build a platform image.
    Platform {
        /// Output directory.
        #[arg(long, default_value = "target/platform")]
        out: PathBuf,
        /// Platform stamp (default: now, YYYYMMDDTHHMMSSZ).
        #[arg(long)]
        stamp: Option<String>,
    },
    /// Install the system packages the tests need (when missing) and run
    /// the whole test suite.
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every phase end to end on the embedded sim and report each gate.
    Rollout {
        /// Where the work and the report go.
        #[arg(long, default_value = "target/rollout")]
        out: PathBuf,
    },
}

/// The brands a SmartOS platform with builder carries.
const PLATFORM_BRANDS: &[&str] = &["joyent", "joyent-minimal", "lx", "bhyve", "kvm", "builder"];

struct Built {
    manifest: Vec<String>,
    image: PathBuf,
}

fn platform(out: &Path, stamp: &str) -> Result<Built> {
    let proto = out.join("proto");
    let mut manifest = Vec::new();
    for n in ["builder"] {
        let b = brand::brands::by_name(n).with_context(|| format!("unknown brand {n}"))?;
        manifest.extend(brand::stage::stage(&b, &proto)?);
        for f in brand::check::check(&proto, n).into_iter().filter(|f| !f.ok) {
            // The hook programs belong to the joyent brand, staged with the
            // platform image below; file and parse problems stop here.
            if !f.what.contains(" hook ") {
                bail!("staged brand {n} is inconsistent: {}", f.what);
            }
        }
    }
    let text: String = manifest.iter().map(|l| format!("{l}\n")).collect();
    brand::stage::write_atomic(&out.join("manifest"), text.as_bytes(), 0o644)?;
    let image = out.join(format!("platform-{stamp}.tgz"));
    let brands: Vec<String> = PLATFORM_BRANDS.iter().map(|s| s.to_string()).collect();
    sim::platform::build(stamp, &brands, Some(&proto), &image)?;
    let bytes = std::fs::read(&image)?;
    sim::platform::vet_tarball(&bytes)?;
    Ok(Built { manifest, image })
}

fn now_stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// One gate of the rollout report.
#[derive(Debug, Serialize)]
struct Gate {
    phase: String,
    name: String,
    status: &'static str,
    detail: String,
}

fn gate(phase: &str, name: &str, ok: bool, detail: impl Into<String>) -> Gate {
    Gate { phase: phase.into(), name: name.into(), status: if ok { "pass" } else { "FAIL" }, detail: detail.into() }
}

/// Build the workspace binaries the rollout drives and say where they are.
fn binaries() -> Result<sim::rfd::Bins> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "sim", "-p", "vmadm-ext", "--bins"])
        .status()
        .context("running cargo build")?
        .success();
    if !ok {
        bail!("cargo build of sim and vmadm-ext failed");
    }
    let meta = Command::new(&cargo).args(["metadata", "--format-version", "1", "--no-deps"]).output()?;
    let v: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let dir = PathBuf::from(v["target_directory"].as_str().unwrap_or("target")).join("debug");
    Ok(sim::rfd::Bins { sim: dir.join("sim"), vmadm_ext: dir.join("vmadm-ext") })
}

fn xmllint_gates(proto: &Path, gates: &mut Vec<Gate>) {
    let dtds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/illumos");
    let have = Command::new("xmllint").arg("--version").output().is_ok();
    for (file, dtd) in [("config.xml", "brand.dtd.1"), ("platform.xml", "zone_platform.dtd.1"), ("Builder.xml", "zonecfg.dtd.1")] {
        let name = format!("builder {file} valid against {dtd}");
        if !have || !dtds.join(dtd).exists() {
            gates.push(Gate {
                phase: "1".into(),
                name,
                status: "skip",
                detail: "xmllint or the illumos DTDs are not available here (the test suite enforces this check)".into(),
            });
            continue;
        }
        let o = Command::new("xmllint")
            .args(["--nonet", "--noout", "--nowarning", "--dtdvalid"])
            .arg(dtds.join(dtd))
            .arg(proto.join("usr/lib/brand/builder").join(file))
            .output();
        let (ok, detail) = match o {
            Ok(o) => (o.status.success(), String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => (false, e.to_string()),
        };
        gates.push(gate("1", &name, ok, if ok { "xmllint --dtdvalid: valid".into() } else { detail }));
    }
}

fn rollout(out: &Path) -> Result<bool> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let mut gates = Vec::new();

    // Phase 1: the brand, a platform that carries it, vmadm, rollback.
    let stamp = now_stamp();
    let built = platform(&out.join("platform"), &stamp)?;
    gates.push(gate("1", "builder brand staged with manifest lines", built.manifest.len() == 4, built.manifest.join("; ")));
    xmllint_gates(&out.join("platform/proto"), &mut gates);
    gates.push(gate("1", "platform image built and vetted", true, built.image.display().to_string()));
    let bins = binaries()?;
    let work = out.join("sim");
    std::fs::create_dir_all(&work)?;
    let (steps, r) = sim::rfd::walk(&work, &bins, Some((&built.image, &stamp)));
    for s in &steps {
        gates.push(Gate {
            phase: "1".into(),
            name: s.name.clone(),
            status: if s.ok { "pass" } else { "FAIL" },
            detail: format!("$ {}\n{}", s.command, s.detail),
        });
    }
    if let Err(e) = r {
        gates.push(gate("1", "RFD 184 procedure completed", false, e));
    }

    // Phases not built yet say so.
    for (phase, name, why) in [
        ("0", "web UI survives unknown brands and offers builder only where installed", "ui-compat end-to-end gate is not wired into the rollout yet"),
        ("2", "operator-only builder provisioning through Triton", "triton-gate is not implemented yet"),
        ("3", "cloud images built, verified, boot-tested and shipped", "image-ci is not implemented yet"),
    ] {
        gates.push(Gate { phase: phase.into(), name: name.into(), status: "not implemented", detail: why.into() });
    }

    let failed = gates.iter().filter(|g| g.status == "FAIL").count();
    let mut md = String::from("# Rollout report\n\n| phase | gate | status |\n|---|---|---|\n");
    for g in &gates {
        md.push_str(&format!("| {} | {} | {} |\n", g.phase, g.name, g.status));
    }
    md.push_str("\n## Details\n");
    for g in &gates {
        md.push_str(&format!("\n### [{}] {} — {}\n\n```\n{}\n```\n", g.phase, g.name, g.status, g.detail.trim()));
    }
    std::fs::write(out.join("report.md"), md)?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(&gates)? + "\n")?;
    for g in &gates {
        println!("{:<16} phase {}  {}", g.status, g.phase, g.name);
    }
    let count = |s: &str| gates.iter().filter(|g| g.status == s).count();
    println!(
        "\n{} passed, {} failed, {} skipped, {} not implemented; report: {}",
        count("pass"),
        failed,
        count("skip"),
        count("not implemented"),
        out.join("report.md").display()
    );
    Ok(failed == 0)
}

/// Programs the test suite runs, and the Debian packages that bring them.
const TEST_TOOLS: &[(&str, &str)] = &[("xmllint", "libxml2-utils"), ("mandoc", "mandoc")];

fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Install missing test tools with apt-get (as root), else say what to do.
fn ensure_test_tools() -> Result<()> {
    let missing: Vec<&str> = TEST_TOOLS.iter().filter(|(p, _)| !have(p)).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !root || !have("apt-get") {
        bail!("the tests need these packages: {} (install them with apt-get as root)", missing.join(" "));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let ok = Command::new("apt-get").arg("update").arg("-qq").status()?.success()
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

fn test(args: &[String]) -> Result<bool> {
    ensure_test_tools()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(["test", "--workspace"]).args(args).status()?;
    Ok(status.success())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Platform { out, stamp } => {
            let stamp = stamp.unwrap_or_else(now_stamp);
            platform(&out, &stamp).map(|b| {
                for l in &b.manifest {
                    println!("{l}");
                }
                println!("platform image: {}", b.image.display());
                true
            })
        }
        Cmd::Rollout { out } => rollout(&out),
        Cmd::Test { args } => test(&args),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::from(1)
        }
    }
}
