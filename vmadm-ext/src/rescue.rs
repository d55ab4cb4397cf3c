//! Rescue a builder zone on a platform that lacks the builder brand: turn it
//! into a joyent zone with the same effective access, and undo that exactly.
//!
//! Files, all in `/etc/zones` under the node root:
//! - `<zone>.xml`: the zone, replaced atomically (temp file, fsync, rename,
//!   fsync of the directory);
//! - `<zone>.xml.builder-backup`: the original builder XML, written (also
//!   atomically) before the zone file is touched, and kept;
//! - `.<zone>.vmadm-ext.lock`: an exclusive lock held for the whole change;
//! - `<zone>.xml.vmadm-ext-tmp`: the temp file (a leftover from a killed
//!   run is removed by the next run).
//!
//! The rescued zone carries an attr [`RECORD_ATTR`] saying what was changed
//! and when; [`unrescue`] recomputes the rescue of the backup with that
//! record and restores the backup only when the result is byte-identical to
//! the zone file (nothing else changed meanwhile).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use brand::ZoneConfig;

use crate::node::{Node, NodeError};

/// The attr a rescued zone carries.
pub const RECORD_ATTR: &str = "vmadm-ext-rescued";
pub const BACKUP_SUFFIX: &str = ".builder-backup";
pub const TMP_SUFFIX: &str = ".vmadm-ext-tmp";
/// The brand rescue turns zones from, and into.
pub const FROM_BRAND: &str = "builder";
pub const TO_BRAND: &str = "joyent";
/// Privileges bhyve builds need in the zone's limitpriv.
pub const BHYVE_PRIVS: &[&str] = &["proc_clock_highres", "sys_dl_config"];

/// Zone states in which the zone file may be changed.
pub const STOPPED_STATES: &[&str] = &["installed", "configured"];

#[derive(Debug, thiserror::Error)]
pub enum RescueError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("zone {zone}: {path}: {source}")]
    Io {
        zone: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("zone {zone}: cannot parse {path}: {msg}")]
    Parse {
        zone: String,
        path: PathBuf,
        msg: String,
    },
    #[error("zone {zone} has brand {brand}, not builder; only builder zones are rescued")]
    NotBuilder { zone: String, brand: String },
    #[error("zone {zone} is {state}; stop it first (vmadm stop {zone}) and run this again")]
    Running { zone: String, state: String },
    #[error("zone {zone} was not rescued by vmadm-ext (no {RECORD_ATTR} attr); nothing to undo")]
    NotRescued { zone: String },
    #[error("zone {zone}: the booted platform has no builder brand (/usr/lib/brand/builder); boot a platform with it (piadm activate <stamp>, reboot) before unrescue")]
    BrandMissing { zone: String },
    #[error("zone {zone}: backup {path} is missing; cannot restore the builder zone")]
    NoBackup { zone: String, path: PathBuf },
    #[error("zone {zone} changed since it was rescued (its XML is not what rescue wrote); not restoring. The original is in {backup}; compare and restore by hand")]
    Changed { zone: String, backup: PathBuf },
}

/// What a rescue or unrescue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Rescued {
        added_devices: Vec<String>,
        added_privs: Vec<String>,
        backup: PathBuf,
    },
    AlreadyRescued,
    Restored {
        backup: PathBuf,
    },
    AlreadyBuilder,
}

/// The rescue of a builder zone's XML text at time `at`: the new text, the
/// devices and privileges it added. Pure.
pub fn rescue_transform(
    xml: &str,
    at: &str,
    backup_name: &str,
) -> Result<(String, Vec<String>, Vec<String>), String> {
    let mut z = ZoneConfig::parse(xml).map_err(|e| e.to_string())?;
    z.set("brand", TO_BRAND);
    let mut devices = Vec::new();
    for d in brand::devices::BHYVE_ZONE_DEVICES {
        if z.add_device(d) {
            devices.push(d.to_string());
        }
    }
    let current = z
        .limitpriv()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or("default")
        .to_string();
    let mut parts: Vec<String> = current
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut privs = Vec::new();
    for p in BHYVE_PRIVS {
        if !parts.iter().any(|x| x == p) {
            parts.push(p.to_string());
            privs.push(p.to_string());
        }
    }
    if !privs.is_empty() || z.limitpriv().is_none() {
        z.set("limitpriv", parts.join(","));
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter()
                .map(|x| format!("+{x}"))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let record = format!(
        "from={FROM_BRAND}; at={at}; devices={}; limitpriv={}; backup={backup_name}",
        list(&devices),
        list(&privs)
    );
    z.set_attr(RECORD_ATTR, &record);
    Ok((z.to_xml(), devices, privs))
}

/// The `at=` field of a rescue record.
pub fn record_time(record: &str) -> Option<&str> {
    record.split("; ").find_map(|f| f.strip_prefix("at="))
}

fn io_err(zone: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RescueError {
    let (zone, path) = (zone.to_string(), path.to_path_buf());
    move |source| RescueError::Io { zone, path, source }
}

/// Write `bytes` to `dest` atomically (`common::fs`, with a fixed temp
/// path beside it). `step` is told `"<label>-temp"` once the temp file is
/// on disk and `"<label>-renamed"` once it is in place.
pub fn write_atomic(
    zone: &str,
    dest: &Path,
    bytes: &[u8],
    label: &str,
    step: &mut dyn FnMut(&str),
) -> Result<(), RescueError> {
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", dest.display()));
    let opts = common::fs::Atomic {
        temp: Some(&tmp),
        ..Default::default()
    };
    common::fs::write_atomic_with(dest, bytes, &opts, &mut |s| step(&format!("{label}-{s}")))
        .map_err(io_err(zone, dest))
}

struct Paths {
    xml: PathBuf,
    backup: PathBuf,
    lock: PathBuf,
    backup_abs: String,
}

fn paths(node: &Node, zonename: &str) -> Paths {
    let xml = node.zone_xml_path(zonename);
    Paths {
        backup: PathBuf::from(format!("{}{BACKUP_SUFFIX}", xml.display())),
        lock: node.zones_dir().join(format!(".{zonename}.vmadm-ext.lock")),
        backup_abs: format!("/etc/zones/{zonename}.xml{BACKUP_SUFFIX}"),
        xml,
    }
}

fn read(zone: &str, p: &Path) -> Result<String, RescueError> {
    std::fs::read_to_string(p).map_err(io_err(zone, p))
}

fn parse(zone: &str, p: &Path, text: &str) -> Result<ZoneConfig, RescueError> {
    ZoneConfig::parse(text).map_err(|e| RescueError::Parse {
        zone: zone.into(),
        path: p.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Hold the zone's lock while `f` runs.
fn locked<T>(
    zone: &str,
    lock: &Path,
    step: &mut dyn FnMut(&str),
    f: impl FnOnce(&mut dyn FnMut(&str)) -> Result<T, RescueError>,
) -> Result<T, RescueError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .map_err(io_err(zone, lock))?;
    let mut l = fd_lock::RwLock::new(file);
    let _guard = l.write().map_err(io_err(zone, lock))?;
    step("locked");
    f(step)
}

fn clean_tmp(zone: &str, dest: &Path) -> Result<(), RescueError> {
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", dest.display()));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(zone, &tmp)(e)),
        _ => Ok(()),
    }
}

fn stopped(zone: &str, state: &str) -> Result<(), RescueError> {
    if STOPPED_STATES.contains(&state) {
        Ok(())
    } else {
        Err(RescueError::Running {
            zone: zone.into(),
            state: state.into(),
        })
    }
}

/// Ask vminfod to pick up the change (illumos only; elsewhere a no-op).
fn refresh_vminfod() {
    #[cfg(target_os = "illumos")]
    {
        use crate::host::Host as _;
        let _ = crate::host::system().run(&host::svcadm::restart(
            "svc:/system/smartdc/vminfod:default",
        ));
    }
}

/// `vmadm-ext rescue <uuid>`. `step` is called after each step (tests stop
/// the process there).
#[tracing::instrument(skip(node, step), fields(root = %node.root.display()))]
pub fn rescue(node: &Node, uuid: &str, step: &mut dyn FnMut(&str)) -> Result<Outcome, RescueError> {
    let rec = node.record(uuid)?;
    let zone = rec.uuid.clone();
    let ps = paths(node, &rec.zonename);
    locked(&zone, &ps.lock, step, |step| {
        clean_tmp(&zone, &ps.xml)?;
        clean_tmp(&zone, &ps.backup)?;
        let text = read(&zone, &ps.xml)?;
        let z = parse(&zone, &ps.xml, &text)?;
        if z.attr(RECORD_ATTR).is_some() {
            return Ok(Outcome::AlreadyRescued);
        }
        if z.brand() != FROM_BRAND {
            return Err(RescueError::NotBuilder {
                zone: zone.clone(),
                brand: z.brand().into(),
            });
        }
        stopped(&zone, &rec.state)?;
        let at = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let (new, devices, privs) =
            rescue_transform(&text, &at, &ps.backup_abs).map_err(|msg| RescueError::Parse {
                zone: zone.clone(),
                path: ps.xml.clone(),
                msg,
            })?;
        let have = std::fs::read(&ps.backup).ok();
        if have.as_deref() != Some(text.as_bytes()) {
            write_atomic(&zone, &ps.backup, text.as_bytes(), "backup", step)?;
        }
        step("backup");
        write_atomic(&zone, &ps.xml, new.as_bytes(), "zone", step)?;
        tracing::info!(
            zone = uuid,
            "rescued: builder zone is now a joyent zone with the bhyve devices"
        );
        step("done");
        refresh_vminfod();
        Ok(Outcome::Rescued {
            added_devices: devices,
            added_privs: privs,
            backup: ps.backup.clone(),
        })
    })
}

/// `vmadm-ext unrescue <uuid>`: restore the builder zone byte for byte.
pub fn unrescue(
    node: &Node,
    uuid: &str,
    step: &mut dyn FnMut(&str),
) -> Result<Outcome, RescueError> {
    let rec = node.record(uuid)?;
    let zone = rec.uuid.clone();
    let ps = paths(node, &rec.zonename);
    locked(&zone, &ps.lock, step, |step| {
        clean_tmp(&zone, &ps.xml)?;
        let text = read(&zone, &ps.xml)?;
        let z = parse(&zone, &ps.xml, &text)?;
        let Some(record) = z.attr(RECORD_ATTR) else {
            if z.brand() == FROM_BRAND {
                return Ok(Outcome::AlreadyBuilder);
            }
            return Err(RescueError::NotRescued { zone: zone.clone() });
        };
        stopped(&zone, &rec.state)?;
        if !brand::check::installed_brands(&node.root)
            .iter()
            .any(|b| b == FROM_BRAND)
        {
            return Err(RescueError::BrandMissing { zone: zone.clone() });
        }
        let backup = match std::fs::read_to_string(&ps.backup) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RescueError::NoBackup {
                    zone: zone.clone(),
                    path: ps.backup.clone(),
                })
            }
            Err(e) => return Err(io_err(&zone, &ps.backup)(e)),
        };
        let at = record_time(&record).unwrap_or_default();
        let expected = rescue_transform(&backup, at, &ps.backup_abs)
            .map(|r| r.0)
            .ok();
        if expected.as_deref() != Some(text.as_str()) {
            return Err(RescueError::Changed {
                zone: zone.clone(),
                backup: ps.backup.clone(),
            });
        }
        write_atomic(&zone, &ps.xml, backup.as_bytes(), "zone", step)?;
        step("done");
        refresh_vminfod();
        Ok(Outcome::Restored {
            backup: ps.backup.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILDER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE zone PUBLIC \"-//Sun Microsystems Inc//DTD Zones//EN\" \"file:///usr/share/lib/xml/dtd/zonecfg.dtd.1\">\n<zone name=\"z\" zonepath=\"/zones/z\" autoboot=\"true\" brand=\"builder\" ip-type=\"exclusive\" limitpriv=\"default,proc_clock_highres\">\n  <dataset name=\"zones/z/data\"/>\n</zone>\n";

    #[test]
    fn transform_adds_only_what_is_missing() {
        let (x, d, p) = rescue_transform(BUILDER, "T", "/b").unwrap();
        assert_eq!(d, ["/dev/viona", "/dev/vmm*"]);
        assert_eq!(p, ["sys_dl_config"]);
        let z = ZoneConfig::parse(&x).unwrap();
        assert_eq!(z.brand(), "joyent");
        assert_eq!(
            z.limitpriv(),
            Some("default,proc_clock_highres,sys_dl_config")
        );
        assert_eq!(
            z.attr(RECORD_ATTR).unwrap(),
            "from=builder; at=T; devices=+/dev/viona,+/dev/vmm*; limitpriv=+sys_dl_config; backup=/b"
        );
        assert_eq!(record_time(&z.attr(RECORD_ATTR).unwrap()), Some("T"));
        // deterministic: same input, same output
        assert_eq!(rescue_transform(BUILDER, "T", "/b").unwrap().0, x);
        let no_lp = BUILDER.replace(" limitpriv=\"default,proc_clock_highres\"", "");
        let (x, _, p) = rescue_transform(&no_lp, "T", "/b").unwrap();
        assert_eq!(p, BHYVE_PRIVS);
        assert_eq!(
            ZoneConfig::parse(&x).unwrap().limitpriv(),
            Some("default,proc_clock_highres,sys_dl_config")
        );
    }
}
