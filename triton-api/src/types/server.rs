//! CNAPI servers and sysinfo (`shared/notes/triton.md` 4,
//! `shared/notes/smartos-ui.md`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::{Lenient, LenientExt as _};
use crate::types::vm::CreateVm;
use crate::types::{Image, Package};

/// A compute node as CNAPI serves it (`GET /servers/:uuid`;
/// `?extras=sysinfo` for lists).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Server {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_flags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting_up: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_ratio: Option<Lenient<f64>>,
    /// `running`, `unknown`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headnode: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Map<String, Value>>,
    /// MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_available_bytes: Option<Lenient<u64>>,
    /// MiB; may be negative when overprovisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreserved_ram: Option<Lenient<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreserved_disk: Option<Lenient<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_pool_size_bytes: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_boot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysinfo: Option<Sysinfo>,
    /// `{<vm uuid>: {uuid, owner_uuid, brand, state, ...}}` (`extras=vms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vms: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The keys of `sysinfo` that tools here read; the rest is kept in `extra`.
/// Numbers and booleans come as strings on real platforms (`"MiB of
/// Memory": "65424"`, `"Setup": "true"`) and are written back that way.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sysinfo {
    #[serde(default, rename = "UUID", skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, rename = "Hostname", skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The booted platform stamp, `YYYYMMDDTHHMMSSZ`.
    #[serde(
        default,
        rename = "Live Image",
        skip_serializing_if = "Option::is_none"
    )]
    pub live_image: Option<String>,
    /// `7.0`; DAPI treats a missing one as `6.5`.
    #[serde(
        default,
        rename = "SDC Version",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdc_version: Option<String>,
    /// Required by smartos-ui (an object).
    #[serde(
        default,
        rename = "Boot Parameters",
        skip_serializing_if = "Option::is_none"
    )]
    pub boot_parameters: Option<Map<String, Value>>,
    /// The brands the booted platform carries (RFD 184 option (c)); absent
    /// on platforms that do not report them.
    #[serde(default, rename = "Brands", skip_serializing_if = "Option::is_none")]
    pub brands: Option<Vec<String>>,
    #[serde(default, rename = "Setup", skip_serializing_if = "Option::is_none")]
    pub setup: Option<Lenient<bool>>,
    #[serde(
        default,
        rename = "MiB of Memory",
        skip_serializing_if = "Option::is_none"
    )]
    pub mib_of_memory: Option<Lenient<u64>>,
    #[serde(default, rename = "CPU Count", skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<Lenient<u64>>,
    #[serde(
        default,
        rename = "Zpool Size in GiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub zpool_size_gib: Option<Lenient<u64>>,
    #[serde(default, rename = "Zpool", skip_serializing_if = "Option::is_none")]
    pub zpool: Option<String>,
    #[serde(
        default,
        rename = "Datacenter Name",
        skip_serializing_if = "Option::is_none"
    )]
    pub datacenter_name: Option<String>,
    /// Seconds since the epoch (a string on real platforms).
    #[serde(default, rename = "Boot Time", skip_serializing_if = "Option::is_none")]
    pub boot_time: Option<Lenient<u64>>,
    #[serde(
        default,
        rename = "System Type",
        skip_serializing_if = "Option::is_none"
    )]
    pub system_type: Option<String>,
    #[serde(
        default,
        rename = "Bhyve Capable",
        skip_serializing_if = "Option::is_none"
    )]
    pub bhyve_capable: Option<Lenient<bool>>,
    #[serde(default, rename = "HVM API", skip_serializing_if = "Option::is_none")]
    pub hvm_api: Option<Lenient<bool>>,
    #[serde(
        default,
        rename = "Network Interfaces",
        skip_serializing_if = "Option::is_none"
    )]
    pub network_interfaces: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Sysinfo {
    /// `SDC Version`, `6.5` when missing (DAPI's rule).
    pub fn sdc_version_or_default(&self) -> &str {
        self.sdc_version.as_deref().unwrap_or("6.5")
    }

    /// Whether the platform reports `brand`; `None` when it reports no
    /// brands at all.
    pub fn has_brand(&self, brand: &str) -> Option<bool> {
        self.brands.as_ref().map(|b| b.iter().any(|x| x == brand))
    }
}

impl Server {
    /// The booted platform: `current_platform`, else sysinfo `Live Image`.
    pub fn platform(&self) -> Option<&str> {
        self.current_platform
            .as_deref()
            .or_else(|| self.sysinfo.as_ref().and_then(|s| s.live_image.as_deref()))
    }

    pub fn is_setup(&self) -> bool {
        self.setup.val() == Some(true)
    }

    pub fn is_reserved(&self) -> bool {
        self.reserved.val() == Some(true)
    }
}

/// CNAPI `POST /allocate` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AllocateRequest {
    pub vm: CreateVm,
    pub image: Image,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    #[serde(default)]
    pub nic_tags: Vec<String>,
    /// Restrict the choice to these server UUIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CNAPI `POST /allocate` answer: the chosen server and DAPI's steps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Allocation {
    pub server: Server,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sysinfo_strings_survive() {
        let wire = json!({
            "UUID": "f6214c61-3537-477a-8485-1f0e66faa86e", "Hostname": "cn1",
            "Live Image": "20260101T000000Z", "SDC Version": "7.0",
            "Boot Parameters": {"smartos": "true"}, "Setup": "true",
            "MiB of Memory": "32768", "CPU Count": 8, "Boot Time": "1796014172",
            "Brands": ["joyent", "builder"], "Disks": {"c0t0d0": {"Size in GB": 1024}}
        });
        let s: Sysinfo = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(s.mib_of_memory.val(), Some(32768));
        assert_eq!(s.setup.val(), Some(true));
        assert_eq!(s.boot_time.val(), Some(1796014172));
        assert_eq!(s.has_brand("builder"), Some(true));
        assert_eq!(s.has_brand("lx"), Some(false));
        assert_eq!(s.extra["Disks"]["c0t0d0"]["Size in GB"], 1024);
        assert_eq!(serde_json::to_value(&s).unwrap(), wire);
        let old: Sysinfo = serde_json::from_value(json!({"Live Image": "x"})).unwrap();
        assert_eq!(old.has_brand("builder"), None);
        assert_eq!(old.sdc_version_or_default(), "6.5");
    }
}
