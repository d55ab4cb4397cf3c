//! Build readiness: can a zone run bhyve image builds as
//! triton-cloud-images' `build_all.sh` needs?

use std::path::PathBuf;

use brand::devices::{visible_devices, ZoneFacts};
use brand::ZoneConfig;

use crate::node::{Node, NodeError};

/// Devices a bhyve build needs inside the zone.
pub const NEEDED_DEVICES: &[&str] = &["/dev/vmmctl", "/dev/viona"];
/// Privileges a bhyve build needs in limit_priv.
pub const NEEDED_PRIVS: &[&str] = &["proc_clock_highres", "sys_dl_config"];

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("zone {zone}: cannot read {path}: {msg}")]
    Read {
        zone: String,
        path: PathBuf,
        msg: String,
    },
}

/// One requirement and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub ok: bool,
    pub what: String,
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            if self.ok { "ok:  " } else { "FAIL:" },
            self.what
        )
    }
}

/// Check one zone; one requirement per line.
pub fn check(node: &Node, uuid: &str) -> Result<Vec<Requirement>, CheckError> {
    let rec = node.record(uuid)?;
    let xml_path = node.zone_xml_path(&rec.zonename);
    let text = std::fs::read_to_string(&xml_path).map_err(|e| CheckError::Read {
        zone: rec.uuid.clone(),
        path: xml_path.clone(),
        msg: e.to_string(),
    })?;
    let z = ZoneConfig::parse(&text).map_err(|e| CheckError::Read {
        zone: rec.uuid.clone(),
        path: xml_path.clone(),
        msg: e.to_string(),
    })?;
    let mut out = Vec::new();
    let mut req = |ok: bool, what: String| out.push(Requirement { ok, what });

    // devices
    let brand = z.brand().to_string();
    let pxml = node
        .root
        .join(brand::BRAND_DIR)
        .join(&brand)
        .join("platform.xml");
    let platform = std::fs::read_to_string(&pxml)
        .ok()
        .and_then(|t| brand::Platform::parse(&t).ok());
    match platform {
        None => req(
            false,
            format!("devices: brand {brand} is not installed on this platform (/usr/lib/brand/{brand}/platform.xml missing or unreadable)"),
        ),
        Some(p) => {
            let pool = rec.zonepath.trim_start_matches('/').split('/').next().unwrap_or("zones").to_string();
            let facts = ZoneFacts {
                name: rec.zonename.clone(),
                ip_type: z.ip_type().to_string(),
                zonepath: rec.zonepath.clone(),
                pool,
                arch: "i386".into(),
            };
            let gdev = node.root.join("dev");
            match visible_devices(&p, &facts, &z.devices(), &gdev) {
                Err(e) => req(false, format!("devices: cannot compute the zone's /dev: {e}")),
                Ok(vis) => {
                    for d in NEEDED_DEVICES {
                        if vis.contains_key(*d) {
                            req(true, format!("device {d} is visible in the zone"));
                        } else if gdev.join(d.trim_start_matches("/dev/")).symlink_metadata().is_err() {
                            req(false, format!("device {d}: not present in the global zone's /dev (is the vmm/viona driver loaded?)"));
                        } else {
                            req(
                                false,
                                format!("device {d}: not granted by brand {brand}'s platform.xml or a zone device resource (use brand builder, or vmadm-ext rescue on old platforms)"),
                            );
                        }
                    }
                }
            }
        }
    }

    // delegated dataset
    let ds = z.datasets();
    match ds.first() {
        Some(d) => req(true, format!("delegated dataset {d}")),
        None => req(
            false,
            "no delegated dataset (create the zone with \"delegate_dataset\": true)".into(),
        ),
    }

    // primary nic
    let nets = z.networks();
    let primary = nets
        .iter()
        .find(|n| n.net_attr("primary") == Some("true"))
        .or(nets.first());
    match primary {
        None => req(
            false,
            "no nic: the zone needs a primary nic with allow_ip_spoofing".into(),
        ),
        Some(n) => {
            let name = n.attr("physical").unwrap_or("?");
            if n.net_attr("allow_ip_spoofing") == Some("true") {
                req(true, format!("primary nic {name} allows ip spoofing"));
            } else {
                req(false, format!("primary nic {name} lacks allow_ip_spoofing (vmadm update {} update_nics='[{{\"mac\":\"...\",\"allow_ip_spoofing\":true}}]')", rec.uuid));
            }
        }
    }

    // limit_priv
    let lp = z.limitpriv().unwrap_or("default").to_string();
    let have: Vec<&str> = lp.split(',').map(str::trim).collect();
    let missing: Vec<&str> = NEEDED_PRIVS
        .iter()
        .copied()
        .filter(|p| !have.contains(p))
        .collect();
    if missing.is_empty() {
        req(
            true,
            format!("limit_priv has {}", NEEDED_PRIVS.join(" and ")),
        );
    } else {
        req(
            false,
            format!("limit_priv \"{lp}\" lacks {}", missing.join(" and ")),
        );
    }
    Ok(out)
}
