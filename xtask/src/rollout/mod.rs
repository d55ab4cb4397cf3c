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
    /// Time since the gate before it (the work this gate checked).
    pub ms: u64,
    /// Files that show what happened (console logs, screenshots).
    pub artifacts: Vec<String>,
}

pub fn gate(phase: &str, name: &str, ok: bool, detail: impl Into<String>) -> Gate {
    Gate {
        phase: phase.into(),
        name: name.into(),
        status: if ok { "pass" } else { "FAIL" },
        detail: detail.into(),
        ms: 0,
        artifacts: vec![],
    }
}

/// The gates as they are reached: each is timed (since the one before),
/// and a progress line is printed at once.
pub struct Report {
    pub gates: Vec<Gate>,
    last: std::time::Instant,
    pub fail_fast: bool,
}

impl Report {
    pub fn new(fail_fast: bool) -> Report {
        Report {
            gates: vec![],
            last: std::time::Instant::now(),
            fail_fast,
        }
    }

    pub fn push(&mut self, mut g: Gate) {
        g.ms = self.last.elapsed().as_millis() as u64;
        self.last = std::time::Instant::now();
        eprintln!(
            "rollout: {:<4} phase {} {:>7.1}s  {}",
            g.status,
            g.phase,
            g.ms as f64 / 1000.0,
            g.name
        );
        self.gates.push(g);
    }

    pub fn failed(&self) -> bool {
        self.gates.iter().any(|g| g.status == "FAIL")
    }

    /// Stop here? (`--fail-fast` and a gate failed.)
    pub fn stop(&self) -> bool {
        self.fail_fast && self.failed()
    }
}

/// How to run the rollout.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run only this phase (and what it needs before it).
    pub phase: Option<u8>,
    /// Stop at the first failed gate.
    pub fail_fast: bool,
    /// Use this platform image instead of building one (its gate vets it).
    pub platform_image: Option<std::path::PathBuf>,
    /// The workspace binaries (`None`: build them with cargo).
    pub bins: Option<phase1::Bins>,
}

/// What running `phase` needs run before it: 0 and 2 stand on phase 1's
/// node and platform, 3 on phase 2's Triton.
pub fn phases_for(phase: Option<u8>) -> Vec<u8> {
    match phase {
        None => vec![1, 0, 2, 3],
        Some(0) => vec![1, 0],
        Some(1) => vec![1],
        Some(2) => vec![1, 2],
        Some(_) => vec![1, 2, 3],
    }
}

/// Check a platform image for real: the tarball's entries (vet_tarball),
/// the layout and boot archive hash of what it unpacks to, and the builder
/// brand's files in its boot archive byte for byte as `brand stage` writes
/// them. Returns what was checked.
pub fn vet_platform_image(image: &Path) -> std::result::Result<String, String> {
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let top = sim::platform::vet_tarball(&bytes).map_err(|e| e.to_string())?;
    let t = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    ar.unpack(t.path()).map_err(|e| e.to_string())?;
    let pdir = t.path().join(&top);
    for f in [
        "i86pc/kernel/amd64/unix",
        "i86pc/amd64/boot_archive",
        "i86pc/amd64/boot_archive.hash",
        "etc/version/platform",
    ] {
        if !pdir.join(f).is_file() {
            return Err(format!("{top}/{f} is missing"));
        }
    }
    let stamp = sim::platform::verify_platform_dir(&pdir).map_err(|e| e.to_string())?;
    if top != format!("platform-{stamp}") {
        return Err(format!("{top} holds platform {stamp}"));
    }
    let root = t.path().join("root");
    sim::platform::unpack_boot_archive(&pdir, &root).map_err(|e| e.to_string())?;
    let staged = tempfile::tempdir().map_err(|e| e.to_string())?;
    brand::stage::stage(&brand::brands::builder(), staged.path()).map_err(|e| e.to_string())?;
    let mut checked = Vec::new();
    for f in ["config.xml", "platform.xml", "Builder.xml"] {
        let rel = format!("usr/lib/brand/builder/{f}");
        let got = std::fs::read(root.join(&rel))
            .map_err(|_| format!("the boot archive has no /{rel}"))?;
        let want = std::fs::read(staged.path().join(&rel)).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!(
                "/{rel} in the boot archive differs from `brand stage`"
            ));
        }
        checked.push(f);
    }
    Ok(format!(
        "{}: entries vetted, layout of {top}, boot archive sha1 matches, builder {} equal to brand stage",
        image.display(),
        checked.join(", ")
    ))
}

pub fn xmllint_gates(proto: &Path, gates: &mut Report) {
    let dtds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/illumos");
    let have = Command::new("xmllint").arg("--version").output().is_ok();
    for (file, dtd) in [
        ("config.xml", "brand.dtd.1"),
        ("platform.xml", "zone_platform.dtd.1"),
        ("Builder.xml", "zonecfg.dtd.1"),
    ] {
        let name = format!("builder {file} valid against {dtd}");
        if !have || !dtds.join(dtd).exists() {
            let mut g = gate("1", &name, true, "xmllint or the illumos DTDs are not available here (the test suite enforces this check)");
            g.status = "skip";
            gates.push(g);
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
    rollout_with(out, force, &Options::default())
}

pub fn rollout_with(out: &Path, force: bool, opts: &Options) -> Result<bool> {
    prepare_dir(out, "rollout", force)?;
    let out = &std::fs::canonicalize(out)?;
    let phases = phases_for(opts.phase);
    let mut gates = Report::new(opts.fail_fast);
    let started = std::time::Instant::now();

    // Phase 1: the brand, a platform that carries it, vmadm, rollback.
    let (image, stamp) = match &opts.platform_image {
        Some(p) => {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let stamp = name
                .strip_prefix("platform-")
                .and_then(|n| n.strip_suffix(".tgz"))
                .unwrap_or(&name)
                .to_string();
            (p.clone(), stamp)
        }
        None => {
            let stamp = now_stamp();
            let built = crate::platform::platform(&out.join("platform"), &stamp)?;
            gates.push(gate(
                "1",
                "builder brand staged with manifest lines",
                built.manifest.len() == 4,
                built.manifest.join("; "),
            ));
            xmllint_gates(&out.join("platform/proto"), &mut gates);
            (built.image, stamp)
        }
    };
    let vetted = vet_platform_image(&image);
    gates.push(gate(
        "1",
        "platform image built and vetted",
        vetted.is_ok(),
        match &vetted {
            Ok(d) | Err(d) => d.clone(),
        },
    ));
    let bins = match &opts.bins {
        Some(b) => b.clone(),
        None => binaries(false)?,
    };
    let work = out.join("sim");
    std::fs::create_dir_all(&work)?;
    if !gates.stop() {
        let (steps, r) = phase1::walk(&work, &bins, Some((&image, &stamp)));
        for s in &steps {
            gates.push(gate(
                "1",
                &s.name,
                s.ok,
                format!("$ {}\n{}", s.command, s.detail),
            ));
        }
        if let Err(e) = r {
            gates.push(gate("1", "RFD 184 procedure completed", false, e));
        }
    }
    if phases.contains(&0) && !gates.stop() {
        phase0::phase0(&work.join("cn"), &mut gates);
    }
    if phases.contains(&2) && !gates.stop() {
        match phase2::phase2_triton(&work, &stamp, &bins, &mut gates) {
            Err(e) => gates.push(gate("2", "Triton APIs on the sim", false, format!("{e:#}"))),
            Ok(triton) => {
                if phases.contains(&3) && !gates.stop() {
                    if let Err(e) =
                        phase3::phase3_images(&work, &bins, triton.url("imgapi"), &mut gates)
                    {
                        gates.push(gate("3", "image pipeline ran", false, format!("{e:#}")));
                    }
                }
                triton.stop();
            }
        }
    }
    let gates = gates.gates;
    let failed = gates.iter().filter(|g| g.status == "FAIL").count();
    let mut md =
        String::from("# Rollout report\n\n| phase | gate | status | time |\n|---|---|---|---|\n");
    for g in &gates {
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} s |\n",
            g.phase,
            g.name,
            g.status,
            g.ms as f64 / 1000.0
        ));
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
    std::fs::write(
        out.join("report.html"),
        report_html(&gates, &phases, started.elapsed()),
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
        out.join("report.html").display()
    );
    Ok(failed == 0)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report as a page to look at: a summary per phase, every gate with
/// its status and time, and its evidence (the commands and the tail of
/// their output, links to artifacts) behind a disclosure.
pub fn report_html(gates: &[Gate], phases: &[u8], total: std::time::Duration) -> String {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <title>Rollout report</title>\n<style>\n\
         body{font-family:sans-serif;margin:2em;max-width:70em}\n\
         table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}\n\
         .pass{color:#176117}.FAIL{color:#b00020;font-weight:bold}.skip{color:#777}\n\
         pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}\n\
         td.t{text-align:right;white-space:nowrap}\n</style></head><body>\n",
    );
    let failed = gates.iter().filter(|g| g.status == "FAIL").count();
    h.push_str(&format!(
        "<h1>Rollout report</h1>\n<p id=\"summary\">{} gates, <span class=\"pass\">{} passed</span>, <span class=\"FAIL\">{} failed</span>; phases {}; {:.1} s in all.</p>\n",
        gates.len(),
        gates.iter().filter(|g| g.status == "pass").count(),
        failed,
        phases.iter().map(u8::to_string).collect::<Vec<_>>().join(", "),
        total.as_secs_f64()
    ));
    let mut order: Vec<String> = Vec::new();
    for g in gates {
        if !order.contains(&g.phase) {
            order.push(g.phase.clone());
        }
    }
    for ph in order {
        let these: Vec<&Gate> = gates.iter().filter(|g| g.phase == ph).collect();
        let secs: u64 = these.iter().map(|g| g.ms).sum();
        h.push_str(&format!(
            "<h2>Phase {}</h2>\n<p>{} gates, {} failed, {:.1} s</p>\n<table>\n<tr><th>gate</th><th>status</th><th>time</th></tr>\n",
            esc(&ph),
            these.len(),
            these.iter().filter(|g| g.status == "FAIL").count(),
            secs as f64 / 1000.0
        ));
        for g in these {
            let tail: Vec<&str> = g.detail.trim().lines().collect();
            let tail = tail[tail.len().saturating_sub(30)..].join("\n");
            let links: String = g
                .artifacts
                .iter()
                .map(|a| format!("<a href=\"{0}\">{0}</a> ", esc(a)))
                .collect();
            h.push_str(&format!(
                "<tr class=\"gate\"><td><details><summary>{}</summary><pre>{}</pre>{}</details></td><td class=\"{}\">{}</td><td class=\"t\">{:.1} s</td></tr>\n",
                esc(&g.name),
                esc(&tail),
                links,
                g.status,
                g.status,
                g.ms as f64 / 1000.0
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}
