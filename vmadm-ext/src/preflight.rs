//! Rollback preflight: which zones will not start on a platform image
//! because it lacks their brand.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::node::{LoadOptions, Node, NodeError};

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("platform {0}: no such directory, and no platform-{0} under <root>/<pool>/boot; give a platform directory or a stamp from `piadm list`")]
    NoPlatform(String),
    #[error("platform {path}: cannot tell which brands it has (no usr/lib/brand/ and no i86pc/amd64/boot_archive.manifest)")]
    Unknown { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A platform image and the brands it provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformBrands {
    pub path: PathBuf,
    pub brands: Vec<String>,
}

/// Brands named in a boot_archive.manifest (`md5  ./usr/lib/brand/<b>/platform.xml`
/// lines, or build manifest lines `f usr/lib/brand/<b>/platform.xml ...`).
pub fn brands_from_manifest(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .flat_map(|l| l.split_whitespace())
        .filter_map(|tok| {
            let t = tok.trim_start_matches("./").trim_start_matches('/');
            let rest = t.strip_prefix("usr/lib/brand/")?;
            let (b, file) = rest.split_once('/')?;
            (file == "platform.xml").then(|| b.to_string())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Find a platform by directory or stamp. A stamp is looked for as
/// `<root>/<pool>/boot/platform-<stamp>` (piadm's layout, bootfs mounted at
/// `/<pool>/boot`).
pub fn find_platform(root: &Path, target: &str) -> Result<PathBuf, PreflightError> {
    let p = Path::new(target);
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let stamp = target.strip_prefix("platform-").unwrap_or(target);
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("boot").join(format!("platform-{stamp}")))
        .filter(|d| d.is_dir())
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or_else(|| PreflightError::NoPlatform(target.into()))
}

/// The brands a platform directory provides: its `usr/lib/brand/*` (a
/// brand with a platform.xml), else its boot archive manifest.
pub fn platform_brands(dir: &Path) -> Result<PlatformBrands, PreflightError> {
    if dir.join(brand::BRAND_DIR).is_dir() {
        return Ok(PlatformBrands {
            path: dir.into(),
            brands: brand::check::installed_brands(dir),
        });
    }
    let m = dir.join("i86pc/amd64/boot_archive.manifest");
    if m.is_file() {
        let t = std::fs::read_to_string(&m).map_err(|source| PreflightError::Io {
            path: m.clone(),
            source,
        })?;
        return Ok(PlatformBrands {
            path: dir.into(),
            brands: brands_from_manifest(&t),
        });
    }
    Err(PreflightError::Unknown { path: dir.into() })
}

/// A zone that will not start on the target platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub uuid: String,
    pub brand: String,
    pub alias: Option<String>,
    /// The command that makes it start again, when there is one.
    pub fix: Option<String>,
}

/// Zones whose brand the platform lacks.
pub fn preflight(
    node: &Node,
    platform: &PlatformBrands,
) -> Result<(usize, Vec<Broken>), PreflightError> {
    let vms = node.vms(LoadOptions::XML_ONLY)?;
    let mut out = Vec::new();
    for vm in &vms {
        let brand = vm
            .get("brand")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if platform.brands.contains(&brand) {
            continue;
        }
        let uuid = vm
            .get("uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        out.push(Broken {
            fix: (brand == crate::rescue::FROM_BRAND).then(|| format!("vmadm-ext rescue {uuid}")),
            alias: vm.get("alias").and_then(Value::as_str).map(str::to_string),
            uuid,
            brand,
        });
    }
    out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    Ok((vms.len(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_brands() {
        let t = "d41d8cd98f00b204e9800998ecf8427e  ./usr/lib/brand/joyent/platform.xml\n\
                 d41d8cd98f00b204e9800998ecf8427e  ./usr/lib/brand/joyent/config.xml\n\
                 f usr/lib/brand/bhyve/platform.xml 0444 root root\n\
                 x  ./usr/lib/brand/jcommon/query\n";
        assert_eq!(brands_from_manifest(t), ["bhyve", "joyent"]);
    }
}
