//! Which device nodes a zone sees: the semantics zoneadmd and sdev apply
//! when they build a zone's `/dev` from the brand's platform.xml and the
//! zone's zonecfg `device` resources.
//!
//! zoneadmd hands sdev a "profile" for the zone's `/dev`:
//! - every platform `<device match=...>` whose `arch` and `ip-type` fit the
//!   zone becomes an include rule, after token substitution (device matches
//!   get `%z` and `%P`; `%R` expands to nothing there);
//! - every zonecfg `device` resource becomes an include rule too; sdev drops
//!   a leading `/dev/` (and extra slashes), so `/dev/vmm*` means `vmm*`;
//! - a platform device with a `name` is a rename: the global device at the
//!   substituted match path appears in the zone under `name`;
//! - `<symlink source target>` entries become symlinks, target verbatim.
//!
//! sdev matches a rule one path component at a time with gmatch(3GEN), so
//! `*` never crosses a `/`. Literal leading components are directories on
//! the way; a glob in the last component matches every name in that global
//! directory. A matched directory is shown with what it holds: on a real
//! host `/dev/vmm` is a dynamic directory whose entries are the VMs of the
//! zone, so in the tree model every entry under it is visible. That is why
//! one `vmm*` rule covers both `/dev/vmmctl` and `/dev/vmm/<vm>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::platform::Platform;
use crate::zone::DeviceResource;

/// Why the device list could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device pattern {pattern:?}: {msg}")]
    Pattern { pattern: String, msg: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The facts about a zone that device selection depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFacts {
    /// Zone name (`%z`): on SmartOS, the VM's UUID.
    pub name: String,
    /// `shared` or `exclusive`.
    pub ip_type: String,
    /// Zone path (`%R`), e.g. `/zones/<uuid>`.
    pub zonepath: String,
    /// The system zpool (`zones`); `%P` expands to it with a leading `/`,
    /// as the joyent query hook exports `_ZONEADMD_ZPOOL=/zones`.
    pub pool: String,
    /// The machine architecture as the platform files name it (`i386` on x86).
    pub arch: String,
}

impl ZoneFacts {
    /// Facts for a zone at `/<pool>/<name>` on x86.
    pub fn new(name: &str, ip_type: &str, pool: &str) -> Self {
        ZoneFacts {
            name: name.into(),
            ip_type: ip_type.into(),
            zonepath: format!("/{pool}/{name}"),
            pool: pool.into(),
            arch: "i386".into(),
        }
    }
}

/// Values for the `%` tokens of brand files.
#[derive(Debug, Clone, Default)]
pub struct Tokens<'a> {
    /// `%z`: the zone operated on.
    pub zone: Option<&'a str>,
    /// `%R`: its zone path.
    pub zonepath: Option<&'a str>,
    /// `%P`: the system pool as a path (`/zones`).
    pub pool: Option<&'a str>,
    /// `%u`: a user name (login_cmd, user_cmd).
    pub user: Option<&'a str>,
    /// `%Z`: the zone the command runs in (`global` in the global zone).
    pub current_zone: Option<&'a str>,
}

/// Substitute brand-file tokens: `%%` is `%`; `%z`, `%R`, `%P`, `%u`, `%Z`
/// are replaced by their value, or by nothing when no value applies; any
/// other `%x` is dropped, as libbrand does.
pub fn substitute(s: &str, t: &Tokens<'_>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let v = match it.next() {
            Some('%') => Some("%"),
            Some('z') => t.zone,
            Some('R') => t.zonepath,
            Some('P') => t.pool,
            Some('u') => t.user,
            Some('Z') => t.current_zone,
            _ => None,
        };
        out.push_str(v.unwrap_or_default());
    }
    out
}

/// How a visible /dev entry comes to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// The global device (or directory) of the same name.
    Node { global: PathBuf, is_dir: bool },
    /// The global device at `from` (relative to /dev), under another name.
    Renamed { from: String },
    /// A symlink to `target`.
    Symlink { target: String },
}

/// A rule of the zone's /dev profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Show every global /dev path (relative) that matches the pattern.
    Include(String),
    /// Show global `from` as `to`.
    Map { from: String, to: String },
    /// Create `source` -> `target`.
    Symlink { source: String, target: String },
}

/// The profile zoneadmd would build for this zone.
pub fn profile(
    platform: &Platform,
    zone: &ZoneFacts,
    zone_devices: &[DeviceResource],
) -> Vec<Rule> {
    let pool = format!("/{}", zone.pool);
    // libbrand passes only the zone name (and the pool from the environment)
    // when it expands device matches.
    let tokens = Tokens {
        zone: Some(&zone.name),
        pool: Some(&pool),
        ..Tokens::default()
    };
    let mut rules = Vec::new();
    for d in platform.devices() {
        if d.arch
            .as_deref()
            .is_some_and(|a| a != "all" && a != zone.arch)
        {
            continue;
        }
        if d.ip_type
            .as_deref()
            .is_some_and(|i| i != "all" && i != zone.ip_type)
        {
            continue;
        }
        let m = substitute(&d.matches, &tokens);
        rules.push(match &d.name {
            Some(to) => Rule::Map {
                from: m,
                to: to.clone(),
            },
            None => Rule::Include(m),
        });
    }
    for d in zone_devices {
        rules.push(Rule::Include(d.matches.clone()));
    }
    for (s, t) in platform.symlinks() {
        rules.push(Rule::Symlink {
            source: s.to_string(),
            target: t.to_string(),
        });
    }
    rules
}

/// The components of a rule's path relative to /dev, as sdev reads it: a
/// leading `/dev/` is dropped and empty components (`//`) are skipped.
pub fn rule_components(rule: &str) -> Vec<&str> {
    let rel = match rule.strip_prefix("/dev/") {
        Some(r) if rule.len() > 5 => r,
        _ => rule,
    };
    rel.split('/').filter(|c| !c.is_empty()).collect()
}

fn compile(p: &str) -> Result<glob::Pattern, DeviceError> {
    glob::Pattern::new(p).map_err(|e| DeviceError::Pattern {
        pattern: p.to_string(),
        msg: e.msg.to_string(),
    })
}

const GMATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// gmatch(3GEN) of one path component against one pattern component.
pub fn gmatch(pattern: &str, name: &str) -> Result<bool, DeviceError> {
    Ok(compile(pattern)?.matches_with(name, GMATCH))
}

fn io_err(path: &Path, source: std::io::Error) -> DeviceError {
    DeviceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Record `rel` (and, for a directory, everything below it) as visible.
fn show_tree(
    global: &Path,
    rel: &str,
    out: &mut BTreeMap<String, Visible>,
) -> Result<(), DeviceError> {
    let path = global.join(rel);
    let is_dir = path
        .symlink_metadata()
        .map_err(|e| io_err(&path, e))?
        .is_dir();
    out.insert(
        format!("/dev/{rel}"),
        Visible::Node {
            global: path.clone(),
            is_dir,
        },
    );
    if is_dir {
        for entry in walkdir::WalkDir::new(&path)
            .min_depth(1)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| {
                let p = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| path.clone());
                let src = e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk failed"));
                io_err(&p, src)
            })?;
            let sub = entry
                .path()
                .strip_prefix(global)
                .expect("walk stays below its root");
            out.insert(
                format!("/dev/{}", sub.to_string_lossy()),
                Visible::Node {
                    global: entry.path().to_path_buf(),
                    is_dir: entry.file_type().is_dir(),
                },
            );
        }
    }
    Ok(())
}

/// Follow one include rule through the global /dev, component by component.
fn include(
    global: &Path,
    prefix: &str,
    comps: &[&str],
    out: &mut BTreeMap<String, Visible>,
) -> Result<(), DeviceError> {
    let Some((first, rest)) = comps.split_first() else {
        return Ok(());
    };
    let dir = global.join(prefix);
    let mut names = Vec::new();
    if first.contains(['*', '?', '[']) {
        let pat = compile(first)?;
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(()),
            Err(e) => return Err(io_err(&dir, e)),
        };
        for e in rd {
            let e = e.map_err(|e| io_err(&dir, e))?;
            let n = e.file_name().to_string_lossy().into_owned();
            if pat.matches_with(&n, GMATCH) {
                names.push(n);
            }
        }
        names.sort();
    } else if dir.join(first).symlink_metadata().is_ok() {
        names.push(first.to_string());
    }
    for n in names {
        let rel = if prefix.is_empty() {
            n
        } else {
            format!("{prefix}/{n}")
        };
        if rest.is_empty() {
            show_tree(global, &rel, out)?;
        } else if global.join(&rel).is_dir() {
            let before = out.len();
            include(global, &rel, rest, out)?;
            if out.len() > before || !first.contains(['*', '?', '[']) {
                // Literal directories of a rule are made in the zone; one
                // matched by a glob only when something below it matched.
                out.entry(format!("/dev/{rel}")).or_insert(Visible::Node {
                    global: global.join(&rel),
                    is_dir: true,
                });
            }
        }
    }
    Ok(())
}

/// Apply a profile to a global /dev tree: the zone's /dev, as a map from
/// path (`/dev/...`) to how it got there.
pub fn apply(rules: &[Rule], global_dev: &Path) -> Result<BTreeMap<String, Visible>, DeviceError> {
    let mut out = BTreeMap::new();
    for r in rules {
        match r {
            Rule::Include(p) => include(global_dev, "", &rule_components(p), &mut out)?,
            Rule::Map { from, to } => {
                let from = rule_components(from).join("/");
                if global_dev.join(&from).symlink_metadata().is_ok() {
                    out.insert(format!("/dev/{to}"), Visible::Renamed { from });
                }
            }
            Rule::Symlink { source, target } => {
                out.insert(
                    format!("/dev/{source}"),
                    Visible::Symlink {
                        target: target.clone(),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// The zone's /dev for a platform, a zone and its zonecfg device resources.
pub fn visible_devices(
    platform: &Platform,
    zone: &ZoneFacts,
    zone_devices: &[DeviceResource],
    global_dev: &Path,
) -> Result<BTreeMap<String, Visible>, DeviceError> {
    apply(&profile(platform, zone, zone_devices), global_dev)
}

/// The device resources that give a non-builder zone the builder brand's
/// extra devices (used when a builder zone is turned into a joyent zone).
pub const BHYVE_ZONE_DEVICES: &[&str] = &["/dev/viona", "/dev/vmm*"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_libbrand() {
        let t = Tokens {
            zone: Some("z1"),
            zonepath: Some("/zones/z1"),
            pool: Some("zones"),
            user: Some("root"),
            current_zone: Some("global"),
        };
        assert_eq!(substitute("zvol/dsk/%P/%z/*", &t), "zvol/dsk/zones/z1/*");
        assert_eq!(
            substitute("attrdir=%R/root/dev", &t),
            "attrdir=/zones/z1/root/dev"
        );
        assert_eq!(
            substitute("login -z %Z %u 100%%", &t),
            "login -z global root 100%"
        );
        assert_eq!(substitute("a%qb", &t), "ab");
        assert_eq!(substitute("%R/x", &Tokens::default()), "/x");
        assert_eq!(substitute("trailing%", &t), "trailing");
    }

    #[test]
    fn gmatch_is_per_component() {
        assert!(gmatch("vmm*", "vmmctl").unwrap());
        assert!(gmatch("vmm*", "vmm").unwrap());
        assert!(!gmatch("vmm*", "viona").unwrap());
        assert!(gmatch("[!a]x", "bx").unwrap());
        assert!(!gmatch("[!a]x", "ax").unwrap());
        assert!(gmatch(".*", ".hidden").unwrap());
    }

    #[test]
    fn rules_are_read_relative_to_dev() {
        assert_eq!(rule_components("/dev/vmm*"), ["vmm*"]);
        assert_eq!(rule_components("vmm*"), ["vmm*"]);
        assert_eq!(
            rule_components("zvol/dsk//zones/z/*"),
            ["zvol", "dsk", "zones", "z", "*"]
        );
        assert_eq!(rule_components("/dev/"), ["dev"]);
    }

    #[test]
    fn pool_token_is_a_path() {
        let p = crate::brands::joyent().platform;
        let z = ZoneFacts::new("z1", "exclusive", "zones");
        let rules = profile(&p, &z, &[]);
        assert!(rules.contains(&Rule::Include("zvol/dsk//zones/z1/*".into())));
        assert!(rules.contains(&Rule::Map {
            from: "zcons/z1/zoneconsole".into(),
            to: "zconsole".into()
        }));
        // sparc-only and (for a shared-IP zone) exclusive-only devices are left out
        assert!(!rules.contains(&Rule::Include("openprom".into())));
        let shared = profile(&p, &ZoneFacts::new("z1", "shared", "zones"), &[]);
        assert!(!shared.contains(&Rule::Include("dld".into())));
        assert!(rules.contains(&Rule::Include("dld".into())));
    }
}
