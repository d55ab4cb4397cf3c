//! Zone runtime on a simulated node: boot and halt, the zone's /dev, and
//! booting a platform.
//!
//! Where the sim differs from a real zone: a running zone is a record in
//! `var/sim/node.json` (zone id, pid, boot time), not a kernel object; its
//! `/dev` is materialised under `<zonepath>/root/dev` when it boots (empty
//! regular files and directories standing for device nodes, real symlinks)
//! and removed when it halts; commands run through `zlogin` are ordinary
//! host processes whose working directory is the zone root.

use std::fs;
use std::path::{Path, PathBuf};

use brand::devices::{visible_devices, Visible, ZoneFacts};
use brand::{Platform, ZoneConfig};

use crate::node::{io, IndexEntry, Node, NodeError, NodeState, Running};
use crate::platform::{self, PiError};

/// Global device nodes a fresh node has under `dev/`.
pub const GLOBAL_DEVICES: &[&str] = &[
    "null",
    "zero",
    "zfs",
    "random",
    "urandom",
    "full",
    "tty",
    "ptmx",
    "pts/0",
    "kstat",
    "poll",
    "tcp",
    "tcp6",
    "udp",
    "udp6",
    "arp",
    "ip",
    "ip6",
    "icmp",
    "icmp6",
    "dld",
    "ipnet",
    "lo0",
    "rawip",
    "rawip6",
    "rts",
    "sysevent",
    "eventfd",
    "signalfd",
    "timerfd",
    "inotify",
    "crypto",
    "cryptoadm",
    "dsk",
    "rdsk",
    "log",
    "conslog",
    "logindmux",
    "vnd/ctl",
    "net/admin0",
    "fd/0",
    "fd/1",
    "fd/2",
    "kvm",
    "viona",
    "vmmctl",
    "lofictl",
];

/// Lay down the global /dev of a node (directories stand for `vmm/` etc.).
pub fn make_global_dev(root: &Path) -> Result<(), NodeError> {
    let dev = root.join("dev");
    for d in GLOBAL_DEVICES {
        let p = dev.join(d);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if !p.exists() {
            fs::write(&p, "").map_err(io(&p))?;
        }
    }
    let vmm = dev.join("vmm");
    fs::create_dir_all(&vmm).map_err(io(&vmm))?;
    Ok(())
}

/// Per-zone global device nodes (console, zvol directory).
pub fn make_zone_global_dev(node: &Node, zone: &str, pool: &str) -> Result<(), NodeError> {
    for d in [
        format!("dev/zcons/{zone}"),
        format!("dev/zvol/dsk/{pool}/{zone}"),
        format!("dev/zvol/rdsk/{pool}/{zone}"),
    ] {
        let p = node.path(&d);
        fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let c = node.path(&format!("dev/zcons/{zone}/zoneconsole"));
    if !c.exists() {
        fs::write(&c, "").map_err(io(&c))?;
    }
    Ok(())
}

/// Read a zone's configuration.
pub fn zone_config(node: &Node, name: &str) -> Result<ZoneConfig, String> {
    let p = node.path(&format!("etc/zones/{name}.xml"));
    let t = fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    ZoneConfig::parse(&t).map_err(|e| format!("{}: {e}", p.display()))
}

/// The platform.xml of a brand on the booted platform, or why not.
pub fn booted_platform_xml(
    node: &Node,
    state: &NodeState,
    brand: &str,
) -> Result<Platform, String> {
    let p = node.path(&format!("usr/lib/brand/{brand}/platform.xml"));
    let t = fs::read_to_string(&p).map_err(|_| {
        format!(
            "brand {brand:?} is not installed on the booted platform ({})",
            state.booted
        )
    })?;
    Platform::parse(&t).map_err(|e| format!("{}: {e}", p.display()))
}

fn zone_root(node: &Node, zonepath: &str) -> PathBuf {
    node.path(zonepath).join("root")
}

/// Materialise the zone's /dev under `<zonepath>/root/dev`.
pub fn expose_devices(
    node: &Node,
    z: &ZoneConfig,
    platform: &Platform,
    pool: &str,
) -> Result<usize, String> {
    let mut facts = ZoneFacts::new(z.name(), z.ip_type(), pool);
    facts.zonepath = z.zonepath().to_string();
    let seen = visible_devices(platform, &facts, &z.devices(), &node.path("dev"))
        .map_err(|e| e.to_string())?;
    let dev = zone_root(node, z.zonepath()).join("dev");
    let _ = fs::remove_dir_all(&dev);
    fs::create_dir_all(&dev).map_err(|e| format!("{}: {e}", dev.display()))?;
    for (path, how) in &seen {
        let p = dev.join(path.trim_start_matches("/dev/"));
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let r = match how {
            Visible::Node { is_dir: true, .. } => fs::create_dir_all(&p),
            Visible::Node { .. } | Visible::Renamed { .. } => fs::write(&p, ""),
            Visible::Symlink { target } => std::os::unix::fs::symlink(target, &p),
        };
        r.map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(seen.len())
}

/// Boot a zone. Refuses when it is not installed, already running, or
/// its brand is missing from the booted platform.
pub fn boot_zone(node: &Node, state: &mut NodeState, uuid: &str) -> Result<(), String> {
    let entry = node
        .index()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|e| e.name == uuid || e.uuid == uuid)
        .ok_or_else(|| format!("zoneadm: {uuid}: No such zone configured"))?;
    if state.running.contains_key(&entry.name) {
        return Err(format!("zone '{}' is already running", entry.name));
    }
    if entry.state != "installed" {
        return Err(format!(
            "zone '{}': must be installed before boot (state is {})",
            entry.name, entry.state
        ));
    }
    let z = zone_config(node, &entry.name)?;
    let platform = booted_platform_xml(node, state, z.brand()).map_err(|e| {
        format!(
            "cannot boot zone {}: {e}; boot a platform with the {} brand, or rescue the zone (vmadm-ext rescue {})",
            entry.name,
            z.brand(),
            entry.name
        )
    })?;
    make_zone_global_dev(node, &entry.name, &state.zpool).map_err(|e| e.to_string())?;
    expose_devices(node, &z, &platform, &state.zpool)?;
    let zoneid = state.next_zoneid;
    state.next_zoneid += 1;
    state.running.insert(
        entry.name.clone(),
        Running {
            zoneid,
            pid: 10_000 + zoneid * 7,
            boot_timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
    );
    Ok(())
}

/// Halt a zone (its /dev goes away). Halting a stopped zone is an error.
pub fn halt_zone(node: &Node, state: &mut NodeState, name: &str) -> Result<(), String> {
    if state.running.remove(name).is_none() {
        return Err(format!("zone '{name}' is not running"));
    }
    if let Ok(z) = zone_config(node, name) {
        let _ = fs::remove_dir_all(zone_root(node, z.zonepath()).join("dev"));
        // as zoneadmd does when a zone's init exits: `<secs.nsecs> <wait
        // status>` (0: a clean halt), which vmadm reports as exit_status and
        // exit_timestamp
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let _ = crate::node::write_atomic(
            &node.path(z.zonepath()).join("lastexited"),
            format!("{}.{:09} 0\n", now.as_secs(), now.subsec_nanos()).as_bytes(),
        );
    }
    Ok(())
}

/// The zone's state as zoneadm reports it.
pub fn zone_state(state: &NodeState, e: &IndexEntry) -> String {
    if state.running.contains_key(&e.name) {
        "running".into()
    } else {
        e.state.clone()
    }
}

/// What a boot did.
#[derive(Debug, Default)]
pub struct BootReport {
    pub stamp: String,
    pub booted: Vec<String>,
    pub not_booted: Vec<(String, String)>,
}

/// Reboot the node into the platform its boot pool's `platform` link
/// names: replace the running platform's files, halt every zone, then boot
/// the autoboot zones whose brand the new platform has.
pub fn boot_node(node: &Node) -> Result<BootReport, PiError> {
    let _lock = node.lock()?;
    let bootfs = node.bootfs();
    let stamp = platform::next_stamp(&bootfs).ok_or_else(|| {
        PiError::Refused("no platform is activated in the boot pool (piadm activate)".into())
    })?;
    let pdir = bootfs.join(format!("platform-{stamp}"));
    // Leftovers of an earlier boot that failed half way.
    for e in fs::read_dir(&node.root).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(".boot-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let stage = node.path(&format!(".boot-{}", std::process::id()));
    if let Err(e) = platform::unpack_boot_archive(&pdir, &stage) {
        let _ = fs::remove_dir_all(&stage);
        return Err(e);
    }
    // Swap the platform's files in: /usr and /etc/release.
    let usr = node.path("usr");
    let old = node.path(&format!(".boot-old-{}", std::process::id()));
    if usr.exists() {
        fs::rename(&usr, &old).map_err(io(&usr))?;
    }
    fs::rename(stage.join("usr"), &usr).map_err(io(&usr))?;
    let release = node.path("etc/release");
    if stage.join("etc/release").exists() {
        let _ = fs::remove_file(&release);
        fs::rename(stage.join("etc/release"), &release).map_err(io(&release))?;
    }
    let _ = fs::remove_dir_all(&old);
    let _ = fs::remove_dir_all(&stage);

    let mut state = node.state()?;
    let names: Vec<String> = state.running.keys().cloned().collect();
    for n in names {
        let _ = halt_zone(node, &mut state, &n);
    }
    state.booted = stamp.clone();
    state.boot_time = chrono::Utc::now().timestamp();
    let mut report = BootReport {
        stamp,
        ..Default::default()
    };
    for e in node.index()? {
        let Ok(z) = zone_config(node, &e.name) else {
            continue;
        };
        if z.get("autoboot") != Some("true") || e.state != "installed" {
            continue;
        }
        match boot_zone(node, &mut state, &e.name) {
            Ok(()) => report.booted.push(e.name.clone()),
            Err(why) => report.not_booted.push((e.name.clone(), why)),
        }
    }
    node.save_state(&state)?;
    // SmartOS caches sysinfo in /tmp/.sysinfo.json at boot; vmadm reads it.
    let si = crate::tools::sysinfo_value(node, &state);
    crate::node::write_atomic(
        &node.path("tmp/.sysinfo.json"),
        format!("{si:#}\n").as_bytes(),
    )?;
    Ok(report)
}
