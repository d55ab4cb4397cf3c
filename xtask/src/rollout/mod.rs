//! `cargo xtask rollout`: every phase end to end on the embedded sim, each
//! check a gate of the report (`report.md`, `report.json`).

pub mod phase0;
pub mod phase1;
pub mod phase2;
pub mod phase3;

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde::Serialize;

use crate::util::{binaries, now_stamp, prepare_dir};

/// One gate of the rollout report.
#[derive(Debug, Serialize)]
pub struct Gate {
    pub phase: String,
    pub name: String,
    pub status: &'static str,
    pub detail: String,
}

pub fn gate(phase: &str, name: &str, ok: bool, detail: impl Into<String>) -> Gate {
    Gate {
        phase: phase.into(),
        name: name.into(),
        status: if ok { "pass" } else { "FAIL" },
        detail: detail.into(),
    }
}

pub fn xmllint_gates(proto: &Path, gates: &mut Vec<Gate>) {
    let dtds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/illumos");
    let have = Command::new("xmllint").arg("--version").output().is_ok();
    for (file, dtd) in [
        ("config.xml", "brand.dtd.1"),
        ("platform.xml", "zone_platform.dtd.1"),
        ("Builder.xml", "zonecfg.dtd.1"),
    ] {
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
            Ok(o) => (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            ),
            Err(e) => (false, e.to_string()),
        };
        gates.push(gate(
            "1",
            &name,
            ok,
            if ok {
                "xmllint --dtdvalid: valid".into()
            } else {
                detail
            },
        ));
    }
}

pub fn rollout(out: &Path, force: bool) -> Result<bool> {
    prepare_dir(out, "rollout", force)?;
    let out = &std::fs::canonicalize(out)?;
    let mut gates = Vec::new();

    // Phase 1: the brand, a platform that carries it, vmadm, rollback.
    let stamp = now_stamp();
    let built = crate::platform::platform(&out.join("platform"), &stamp)?;
    gates.push(gate(
        "1",
        "builder brand staged with manifest lines",
        built.manifest.len() == 4,
        built.manifest.join("; "),
    ));
    xmllint_gates(&out.join("platform/proto"), &mut gates);
    gates.push(gate(
        "1",
        "platform image built and vetted",
        true,
        built.image.display().to_string(),
    ));
    let bins = binaries()?;
    let work = out.join("sim");
    std::fs::create_dir_all(&work)?;
    let (steps, r) = phase1::walk(&work, &bins, Some((&built.image, &stamp)));
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

    phase0::phase0(&work.join("cn"), &mut gates);
    match phase2::phase2_triton(&work, &stamp, &bins, &mut gates) {
        Err(e) => gates.push(gate("2", "Triton APIs on the sim", false, format!("{e:#}"))),
        Ok(triton) => {
            if let Err(e) = phase3::phase3_images(&work, &bins, triton.url("imgapi"), &mut gates) {
                gates.push(gate("3", "image pipeline ran", false, format!("{e:#}")));
            }
            triton.stop();
        }
    }

    let failed = gates.iter().filter(|g| g.status == "FAIL").count();
    let mut md = String::from("# Rollout report\n\n| phase | gate | status |\n|---|---|---|\n");
    for g in &gates {
        md.push_str(&format!("| {} | {} | {} |\n", g.phase, g.name, g.status));
    }
    md.push_str("\n## Details\n");
    for g in &gates {
        md.push_str(&format!(
            "\n### [{}] {} — {}\n\n```\n{}\n```\n",
            g.phase,
            g.name,
            g.status,
            g.detail.trim()
        ));
    }
    std::fs::write(out.join("report.md"), md)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&gates)? + "\n",
    )?;
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
