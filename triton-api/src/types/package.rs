//! PAPI packages (`sdc-papi`; `shared/notes/triton.md` 3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::{Lenient, LenientExt as _};

/// A PAPI package. Sizes are MiB (`max_physical_memory`, `max_swap`,
/// `quota`); `owner_uuids` absent or empty means public.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Package {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Lenient<bool>>,
    /// A string, not an enum: unknown brands (`builder`, future ones) must
    /// survive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lwps: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_physical_memory: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_swap: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zfs_io_priority: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fss: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_burst_ratio: Option<Lenient<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_ratio: Option<Lenient<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_server_spread: Option<String>,
    /// `{"7.0": "20260101T000000Z"}`: lowest platform per SDC version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_platform: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flexible_disk: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<PackageDisk>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// PAPI's object version (`1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<Lenient<u64>>,
    /// Everything else on the wire.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of a flexible-disk package's `disks`: `{"size": 10240}` or
/// `{"size": "remaining"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PackageDisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<DiskSize>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A package disk size: MiB, or a word such as `"remaining"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DiskSize {
    Mib(u64),
    Word(String),
}

impl Package {
    /// Public: no `owner_uuids` (or an empty list).
    pub fn is_public(&self) -> bool {
        self.owner_uuids.as_ref().is_none_or(Vec::is_empty)
    }

    /// Whether `account` may see it, as PAPI's `owner_uuids=` search does
    /// (public, or listed).
    pub fn visible_to(&self, account: &str) -> bool {
        self.is_public()
            || self
                .owner_uuids
                .as_ref()
                .is_some_and(|o| o.iter().any(|x| x == account))
    }

    /// `active` is true.
    pub fn is_active(&self) -> bool {
        self.active.val() == Some(true)
    }

    /// The brand, when set and not empty (CloudAPI treats `""` as unset).
    pub fn brand(&self) -> Option<&str> {
        self.brand.as_deref().filter(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn papi_package_round_trip() {
        let wire = json!({
            "uuid": "7d8e0f1a-3b4c-4d5e-8f60-718293a4b5c6", "name": "sample-1G",
            "version": "1.0.0", "active": true, "cpu_cap": 100, "max_lwps": 4000,
            "max_physical_memory": 1024, "max_swap": 2048, "quota": 25600,
            "zfs_io_priority": 100, "vcpus": 1, "default": false, "brand": "builder",
            "owner_uuids": ["930896af-bf8c-48d4-885c-6573a94b1853"],
            "min_platform": {"7.0": "20250101T000000Z"}, "traits": {"builder": true},
            "flexible_disk": true, "disks": [{"size": 10240}, {"size": "remaining"}],
            "v": 1, "some_future_field": {"x": [1, 2]}
        });
        let p: Package = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(p.brand(), Some("builder"));
        assert_eq!(p.max_physical_memory.val(), Some(1024));
        assert_eq!(
            p.disks.as_ref().unwrap()[1].size,
            Some(DiskSize::Word("remaining".into()))
        );
        assert_eq!(p.extra["some_future_field"], json!({"x": [1, 2]}));
        assert!(p.is_active() && !p.is_public());
        assert!(p.visible_to("930896af-bf8c-48d4-885c-6573a94b1853"));
        assert!(!p.visible_to("someone-else"));
        assert_eq!(serde_json::to_value(&p).unwrap(), wire);
    }

    #[test]
    fn public_and_empty_brand() {
        let p: Package =
            serde_json::from_value(json!({"uuid": "u", "owner_uuids": [], "brand": ""})).unwrap();
        assert!(p.is_public() && p.visible_to("anyone"));
        assert_eq!(p.brand(), None);
        assert!(!p.is_active());
    }
}
