//! `sim node init`: lay out a new node and boot its first platform.

use std::fs;
use std::path::Path;

use crate::node::{io, write_atomic, Nic, Node, NodeError, NodeState};
use crate::platform::{self, PiError};
use crate::zones::{self, BootReport};

/// The platform a node boots when none is given: the brands a SmartOS
/// release had before `builder`.
pub const DEFAULT_STAMP: &str = "20250101T000000Z";
/// The brands of that platform: a stock SmartOS platform's (the brand
/// registry's `stock` rows).
pub fn default_brands() -> Vec<&'static str> {
    brand::registry::stock()
}

fn mac(seed: &[u8], n: u8) -> String {
    format!(
        "90:b8:d0:{:02x}:{:02x}:{:02x}",
        seed[0],
        seed[1],
        seed[2].wrapping_add(n)
    )
}

/// Create a node at `dir` and boot `platform_tgz` (or the default platform).
pub fn init(
    dir: &Path,
    platform_tgz: Option<&Path>,
    hostname: Option<&str>,
) -> Result<BootReport, PiError> {
    let node = Node {
        root: dir.to_path_buf(),
    };
    if node.state_path().exists() {
        return Err(PiError::Refused(format!(
            "{} is already a sim node",
            dir.display()
        )));
    }
    for d in [
        "etc/zones",
        "zones/boot",
        "usbkey",
        "var/imgadm/images",
        "var/imgadm/files",
        "var/sim",
        "usr",
    ] {
        let p = node.path(d);
        fs::create_dir_all(&p).map_err(io(&p))?;
    }
    zones::make_global_dev(dir)?;
    let id = uuid::Uuid::new_v4();
    let seed = id.as_bytes();
    let hostname = hostname.map_or_else(|| format!("sim-{}", &id.to_string()[..8]), str::to_string);
    let state = NodeState {
        uuid: id.to_string(),
        hostname: hostname.clone(),
        booted: String::new(),
        boot_time: chrono::Utc::now().timestamp(),
        cpu_count: 8,
        mib_of_memory: 32768,
        zpool: "zones".into(),
        zpool_size_gib: 1024,
        datacenter: "sim-1".into(),
        nics: vec![
            Nic {
                interface: "e1000g0".into(),
                mac: mac(seed, 0),
                nic_tags: vec!["admin".into()],
                ip4addr: format!("10.99.{}.{}", seed[3], seed[4].max(2)),
                netmask: "255.255.0.0".into(),
            },
            Nic {
                interface: "e1000g1".into(),
                mac: mac(seed, 1),
                nic_tags: vec!["external".into()],
                ip4addr: String::new(),
                netmask: String::new(),
            },
        ],
        next_zoneid: 1,
        running: Default::default(),
    };
    let usbkey = format!(
        "# simulated SmartOS node\nhostname={hostname}\nadmin_nic={}\nadmin_ip={}\nadmin_netmask=255.255.0.0\nexternal_nic={}\n",
        state.nics[0].mac, state.nics[0].ip4addr, state.nics[1].mac
    );
    write_atomic(&node.path("usbkey/config"), usbkey.as_bytes())?;
    node.save_index(&[])?;
    node.save_state(&state)?;
    let tmp;
    let tgz = match platform_tgz {
        Some(p) => p.to_path_buf(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| NodeError::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
            let out = tmp.path().join(format!("platform-{DEFAULT_STAMP}.tgz"));
            let brands: Vec<String> = default_brands().iter().map(|s| s.to_string()).collect();
            platform::build(DEFAULT_STAMP, &brands, None, &out)?;
            out
        }
    };
    let stamp = platform::install(&node.bootfs(), &tgz)?;
    platform::activate(&node.bootfs(), &stamp)?;
    zones::boot_node(&node)
}
