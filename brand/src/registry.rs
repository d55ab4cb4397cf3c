//! The one brand registry: every crate that needs to know which brands
//! exist and what they are reads it here (vmadm-ext's property table takes
//! its `same_as` rows from it, the web UI its titles and kinds, the
//! simulated Triton the brands VMAPI and PAPI accept, the simulated
//! platform and `cargo xtask` the brands a platform carries).
//!
//! Adding a brand like `builder` is one [`BrandInfo`] row in [`BUILTIN`]
//! plus its platform files in [`crate::brands`]. Programs that embed the
//! libraries (and tests) may add rows at run time with [`register`] before
//! anything reads the registry.

use std::sync::RwLock;

/// One brand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandInfo {
    /// The name zones, vmadm and Triton use.
    pub name: &'static str,
    /// vmadm treats this brand exactly like another (its property table
    /// rows and features): `builder` is `joyent` with more devices.
    pub same_as: Option<&'static str>,
    /// A hardware virtual machine (bhyve, kvm) rather than a zone.
    pub hvm: bool,
    /// `manifest.type` values of the images it provisions from.
    pub image_types: &'static [&'static str],
    /// The title a UI shows.
    pub title: &'static str,
    /// On every SmartOS platform image (not only on ones built with it).
    pub stock: bool,
    /// Takes a package's `flexible_disk` sizing (HVM disks).
    pub flexible_disk: bool,
    /// Upstream Triton (CloudAPI's `VALID_BRANDS`) accepts it.
    pub triton_upstream: bool,
}

/// The brands this project knows, in display order: the first brand that
/// takes an image type is the default choice for it.
pub const BUILTIN: &[BrandInfo] = &[
    BrandInfo {
        name: "joyent",
        same_as: None,
        hvm: false,
        image_types: &["zone-dataset"],
        title: "Joyent Native Zone",
        stock: true,
        flexible_disk: false,
        triton_upstream: true,
    },
    BrandInfo {
        name: "joyent-minimal",
        same_as: None,
        hvm: false,
        image_types: &["zone-dataset"],
        title: "Joyent Minimal Native Zone",
        stock: true,
        flexible_disk: false,
        triton_upstream: true,
    },
    BrandInfo {
        name: "builder",
        same_as: Some("joyent"),
        hvm: false,
        image_types: &["zone-dataset"],
        title: "Joyent Native Zone with BHYVE devices",
        stock: false,
        flexible_disk: false,
        triton_upstream: false,
    },
    BrandInfo {
        name: "lx",
        same_as: None,
        hvm: false,
        image_types: &["lx-dataset"],
        title: "LX Branded Zone (Linux)",
        stock: true,
        flexible_disk: false,
        triton_upstream: true,
    },
    BrandInfo {
        name: "bhyve",
        same_as: None,
        hvm: true,
        image_types: &["zvol"],
        title: "Hardware Virtual Machine (bhyve)",
        stock: true,
        flexible_disk: true,
        triton_upstream: true,
    },
    BrandInfo {
        name: "kvm",
        same_as: None,
        hvm: true,
        image_types: &["zvol"],
        title: "Hardware Virtual Machine (KVM)",
        stock: true,
        flexible_disk: false,
        triton_upstream: true,
    },
];

static EXTRA: RwLock<Vec<&'static BrandInfo>> = RwLock::new(Vec::new());

/// Add a brand (a program embedding these libraries, or a test). A name
/// already registered is refused. Call it before the first reader: some
/// readers (vmadm-ext's property table) build their view once.
pub fn register(b: &'static BrandInfo) -> Result<(), String> {
    if get(b.name).is_some() {
        return Err(format!("brand {} is already registered", b.name));
    }
    if let Some(base) = b.same_as {
        if get(base).is_none() {
            return Err(format!("brand {}: same_as unknown brand {base}", b.name));
        }
    }
    EXTRA.write().unwrap_or_else(|e| e.into_inner()).push(b);
    Ok(())
}

/// Every brand, built-in rows first.
pub fn all() -> Vec<&'static BrandInfo> {
    let extra = EXTRA.read().unwrap_or_else(|e| e.into_inner());
    BUILTIN.iter().chain(extra.iter().copied()).collect()
}

/// One brand by name.
pub fn get(name: &str) -> Option<&'static BrandInfo> {
    all().into_iter().find(|b| b.name == name)
}

/// Every brand's name.
pub fn names() -> Vec<&'static str> {
    all().into_iter().map(|b| b.name).collect()
}

/// The brands on a stock SmartOS platform image (one built without ours).
pub fn stock() -> Vec<&'static str> {
    all()
        .into_iter()
        .filter(|b| b.stock)
        .map(|b| b.name)
        .collect()
}

/// The brands a platform built by this project carries: all of them.
pub fn platform() -> Vec<&'static str> {
    names()
}

/// CloudAPI's `VALID_BRANDS` (what upstream Triton accepts), sorted.
pub fn triton_upstream() -> Vec<&'static str> {
    let mut v: Vec<&str> = all()
        .into_iter()
        .filter(|b| b.triton_upstream)
        .map(|b| b.name)
        .collect();
    v.sort_unstable();
    v
}

/// The brands the simulated Triton (and a Triton with the builder rule)
/// accepts in VMAPI and PAPI, sorted.
pub fn triton() -> Vec<&'static str> {
    let mut v = names();
    v.sort_unstable();
    v
}

/// `same_as` pairs (brand, base) for vmadm's property table.
pub fn aliases() -> Vec<(&'static str, &'static str)> {
    all()
        .into_iter()
        .filter_map(|b| b.same_as.map(|s| (b.name, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rows() {
        assert_eq!(
            names(),
            ["joyent", "joyent-minimal", "builder", "lx", "bhyve", "kvm"]
        );
        assert_eq!(stock(), ["joyent", "joyent-minimal", "lx", "bhyve", "kvm"]);
        assert_eq!(
            triton_upstream(),
            ["bhyve", "joyent", "joyent-minimal", "kvm", "lx"]
        );
        assert_eq!(aliases(), [("builder", "joyent")]);
        let b = get("builder").unwrap();
        assert!(!b.hvm && !b.stock && b.image_types == ["zone-dataset"]);
        assert!(get("nope").is_none());
    }

    #[test]
    fn register_refuses_duplicates_and_unknown_bases() {
        static DUP: BrandInfo = BrandInfo {
            name: "joyent",
            same_as: None,
            hvm: false,
            image_types: &[],
            title: "",
            stock: false,
            flexible_disk: false,
            triton_upstream: false,
        };
        static BAD: BrandInfo = BrandInfo {
            name: "orphan",
            same_as: Some("nope"),
            ..DUP
        };
        assert!(register(&DUP).is_err());
        assert!(register(&BAD).is_err());
        assert!(get("orphan").is_none());
    }
}
