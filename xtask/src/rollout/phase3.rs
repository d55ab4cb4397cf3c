//! Phase 3: images built in the builder zone, verified, boot-tested and
//! shipped.

use std::path::Path;

use anyhow::{Context, Result};

use super::{gate, Report};

/// Phase 3 on the rollout node: triton-cloud-images targets built in the
/// RFD's builder zone (a stand-in build_all.sh on the sim), verified,
/// boot-tested and shipped to IMGAPI; a failed and a tampered target are
/// not shipped; a zone without the bhyve devices fails preflight; a second
/// run inside the cadence builds nothing.
pub fn phase3_images(
    work: &Path,
    bins: &crate::rollout::phase1::Bins,
    imgapi: &str,
    gates: &mut Report,
) -> Result<()> {
    use image_ci::{cadence, commands, pipeline, standin};
    let root = work.join("cn");
    let node = sim::node::Node::open(&root)?;
    let vms = sim::vmadm::vm_objects(&node).map_err(anyhow::Error::msg)?;
    let find = |alias: &str| -> Result<String> {
        vms.iter()
            .find(|v| v["alias"] == alias)
            .and_then(|v| v["uuid"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no VM with alias {alias} on the rollout node"))
    };
    let (builder, joyent) = (find("cloud-image-builder")?, find("plain-joyent")?);
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle/cloud-images");
    let imgconfigs =
        std::fs::read_to_string(oracle.join("imgconfigs.json")).with_context(|| {
            format!(
                "the triton-cloud-images target list is not at {}",
                oracle.display()
            )
        })?;
    let manifest_in = std::fs::read_to_string(oracle.join("manifest.in"))?;
    let rel = "root/triton-cloud-images";
    let zone_root = root.join("zones").join(&builder).join("root");
    let steer = standin::Steer {
        fail: vec!["debian-13".into()],
        tamper: vec!["rocky-10".into()],
        nosig: vec![],
    };
    standin::write_checkout(&zone_root.join(rel), &imgconfigs, &manifest_in, &steer)?;
    let tools = commands::Tools::in_dir(&root, &work.join("bin"), &bins.vmadm_ext);
    std::fs::create_dir_all(work.join("image-ci"))?;
    let state = work.join("image-ci/state.db");
    let mut cfg = pipeline::Config::new(tools.clone(), &builder, rel, imgapi, state)?;
    let targets: Vec<String> = ["almalinux-9", "debian-12", "debian-13", "rocky-10"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = pipeline::run(
        &mut cfg,
        &pipeline::RunOptions {
            targets,
            due_every: None,
        },
    )?;
    let shipped: Vec<&str> = r.shipped().iter().map(|t| t.target.as_str()).collect();
    gates.push(gate(
        "3",
        "images built in the builder zone, verified, boot-tested and shipped",
        shipped == ["almalinux-9", "debian-12"],
        image_ci::report::render_run(&r),
    ));
    let listed = crate::api::get(&format!("{imgapi}/images?state=all"))?.json();
    let names: Vec<String> = listed
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["state"] == "active")
                .filter_map(|i| i["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let leaked: Vec<&String> = names
        .iter()
        .filter(|n| *n == "debian-13" || *n == "rocky-10")
        .collect();
    gates.push(gate(
        "3",
        "a failed build and a tampered artifact are never shipped",
        leaked.is_empty()
            && names.iter().any(|n| n == "almalinux-9")
            && names.iter().any(|n| n == "debian-12"),
        format!("active in IMGAPI: {}", names.join(", ")),
    ));
    let pre = commands::preflight(&tools, &joyent);
    gates.push(gate(
        "3",
        "a zone without the bhyve devices fails the build preflight",
        pre.is_err(),
        match &pre {
            Err(e) => e.to_string(),
            Ok(reqs) => format!("preflight passed: {reqs:?}"),
        },
    ));
    let every = cadence::parse_interval("24h").map_err(anyhow::Error::msg)?;
    let again = pipeline::run(
        &mut cfg,
        &pipeline::RunOptions {
            targets: vec!["almalinux-9".into(), "debian-12".into()],
            due_every: Some(every),
        },
    )?;
    gates.push(gate(
        "3",
        "a run inside the cadence builds nothing that shipped",
        again.selected.is_empty() && again.targets.is_empty(),
        format!("selected: {:?}", again.selected),
    ));
    Ok(())
}
