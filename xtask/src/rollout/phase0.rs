//! Phase 0: the UI model on the rollout node.

use std::path::Path;

use super::{gate, Report};

/// Phase 0 on the rollout node: the UI's VM model reads every VM the node
/// serves, an unknown brand included, and offers builder only where the
/// booted platform has it.
pub fn phase0(node_root: &Path, gates: &mut Report) {
    use ui_compat::provision::{choices, installed_brands};
    use ui_compat::{decode_list, ImageType, VmEntry};
    let node = match sim::node::Node::open(node_root) {
        Ok(n) => n,
        Err(e) => {
            gates.push(gate("0", "rollout node available", false, e.to_string()));
            return;
        }
    };
    // A zone of a brand no tool here knows, as a future platform could leave.
    let future = "f00dcafe-0000-4000-8000-000000000001";
    let mut z = brand::ZoneConfig::new(future, &format!("/zones/{future}"), "futurebrand");
    z.set("ip-type", "exclusive");
    let added = (|| -> anyhow::Result<()> {
        let _lock = node.lock()?;
        sim::node::write_atomic(
            &node.path(&format!("etc/zones/{future}.xml")),
            z.to_xml().as_bytes(),
        )?;
        let mut idx = node.index()?;
        idx.push(sim::node::IndexEntry {
            name: future.into(),
            state: "installed".into(),
            zonepath: format!("/zones/{future}"),
            uuid: future.into(),
        });
        node.save_index(&idx)?;
        Ok(())
    })();
    if let Err(e) = added {
        gates.push(gate(
            "0",
            "unknown-brand zone added to the node",
            false,
            e.to_string(),
        ));
        return;
    }
    let body = sim::vmadm::vm_objects(&node).map(|v| serde_json::to_vec(&v).unwrap_or_default());
    match body.and_then(|b| decode_list(&b).map_err(|e| e.to_string())) {
        Err(e) => gates.push(gate("0", "VM list decodes", false, e)),
        Ok(entries) => {
            let unreadable: Vec<String> = entries
                .iter()
                .filter_map(|e| match e {
                    VmEntry::Unreadable(u) => Some(format!("{:?}: {}", u.uuid, u.error)),
                    VmEntry::Vm(_) => None,
                })
                .collect();
            gates.push(gate(
                "0",
                "every VM the node serves is readable by the UI model",
                unreadable.is_empty() && entries.len() >= 3,
                if unreadable.is_empty() {
                    format!("{} VMs", entries.len())
                } else {
                    unreadable.join("; ")
                },
            ));
            let vms: Vec<_> = entries.iter().filter_map(VmEntry::as_vm).collect();
            let builder = vms.iter().find(|v| v.brand.as_str() == "builder");
            gates.push(gate(
                "0",
                "a builder zone shows with its brand title",
                builder.is_some_and(|v| v.brand.title() == "Joyent Native Zone with BHYVE devices"),
                builder.map_or("no builder zone".into(), |v| {
                    format!("{} ({})", v.uuid, v.brand.title())
                }),
            ));
            let fut = vms.iter().find(|v| v.uuid == future);
            gates.push(gate(
                "0",
                "an unknown-brand zone shows under its own name",
                fut.is_some_and(|v| !v.brand.is_known() && v.brand.as_str() == "futurebrand"),
                fut.map_or("futurebrand zone missing".into(), |v| {
                    format!("{} brand {}", v.uuid, v.brand.as_str())
                }),
            ));
        }
    }
    // Provisioning choices on the booted platform and on the old one.
    let names = |root: &Path| -> Vec<String> {
        choices(&ImageType::parse("zone-dataset"), &installed_brands(root))
            .into_iter()
            .map(|c| c.brand)
            .collect()
    };
    let now = names(node_root);
    gates.push(gate(
        "0",
        "builder is offered for zone-dataset images on a platform that has it",
        now.iter().any(|b| b == "builder"),
        now.join(", "),
    ));
    let old = tempfile::tempdir()
        .map_err(|e| e.to_string())
        .and_then(|t| {
            let pdir = node
                .bootfs()
                .join(format!("platform-{}", crate::rollout::phase1::OLD_STAMP));
            sim::platform::unpack_boot_archive(&pdir, &t.path().join("root"))
                .map_err(|e| e.to_string())?;
            Ok(names(&t.path().join("root")))
        });
    match old {
        Ok(old) => gates.push(gate(
            "0",
            "builder is not offered on a platform without it",
            !old.iter().any(|b| b == "builder") && old.iter().any(|b| b == "joyent"),
            old.join(", "),
        )),
        Err(e) => gates.push(gate(
            "0",
            "builder is not offered on a platform without it",
            false,
            e,
        )),
    }
}
