//! VM objects: VMAPI's and vmadm's (the `vmadm get` shape vminfod serves;
//! `shared/notes/vmadm.md` (c), `shared/notes/smartos-ui.md`), and VMAPI's
//! CreateVm parameters.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::{Lenient, LenientExt as _};

/// The HVM brands (VMAPI's and CloudAPI's `VALID_HVM_BRANDS`).
pub const HVM_BRANDS: &[&str] = &["bhyve", "kvm"];

/// A VM as VMAPI and vmadm/vminfod describe it. Sizes: `ram`,
/// `max_physical_memory`, `max_swap`, `tmpfs` in MiB; `quota` in GiB.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Vm {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// A string, not an enum: unknown brands must survive (a UI that
    /// refuses the whole list over one brand it does not know is the bug
    /// `shared/notes/smartos-ui.md` records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Free text (`running`, `stopped`, `provisioning`, `failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuid: Option<String>,
    /// The package UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_physical_memory: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_swap: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_locked_memory: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lwps: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<Lenient<u64>>,
    /// GiB; a number or a string in vmadm objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zfs_io_priority: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_priv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_allowed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoboot: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_enabled: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_dataset: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hvm: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_inventory: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics: Option<Vec<Nic>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolvers: Option<Vec<String>>,
    /// Delegated datasets (`zones/<uuid>/data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zonename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zonepath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zpool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zfs_filesystem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_buildstamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_name: Option<String>,
    /// The vmadm object version (`1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<Lenient<u64>>,
    /// Everything else on the wire (`destroyed`, `zoneid`, `pid`,
    /// `snapshots`, `zfs_root_*`, `com1`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One NIC of a VM (vmadm's `nics` entries; VMAPI adds NAPI's fields).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Nic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ip_spoofing: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_mac_spoofing: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_dhcp_spoofing: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_restricted_traffic: Option<Lenient<bool>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One disk of an HVM VM.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Disk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zpool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<Lenient<u64>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Vm {
    /// bhyve or kvm.
    pub fn is_hvm(&self) -> bool {
        self.brand
            .as_deref()
            .is_some_and(|b| HVM_BRANDS.contains(&b))
    }

    /// RAM in MiB: `ram`, else `max_physical_memory`.
    pub fn ram_mib(&self) -> Option<u64> {
        self.ram.val().or(self.max_physical_memory.val())
    }

    /// The IPs of its NICs (`ip`, else each of `ips`), `dhcp` excluded.
    pub fn ips(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in self.nics.iter().flatten() {
            match (&n.ip, &n.ips) {
                (Some(ip), _) => out.push(ip.clone()),
                (None, Some(ips)) => out.extend(
                    ips.iter()
                        .map(|i| i.split('/').next().unwrap_or(i).to_string()),
                ),
                _ => {}
            }
        }
        out.retain(|i| i != "dhcp" && i != "addrconf");
        out
    }

    /// Not destroyed (VMAPI keeps destroyed VMs with `state: destroyed`).
    pub fn is_destroyed(&self) -> bool {
        self.state.as_deref() == Some("destroyed")
    }
}

/// A network in VMAPI's CreateVm `networks`: a UUID or an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetworkSpec {
    Uuid(String),
    Object(Box<NetworkObject>),
}

/// `{"ipv4_uuid": ..., "ipv4_count": 1}` and friends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_count: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_ip_spoofing: Option<Lenient<bool>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NetworkSpec {
    /// `{"ipv4_uuid": uuid, "ipv4_count": 1}`, as CloudAPI sends.
    pub fn ipv4(uuid: &str) -> NetworkSpec {
        NetworkSpec::Object(Box::new(NetworkObject {
            ipv4_uuid: Some(uuid.to_string()),
            ipv4_count: Some(1u64.into()),
            ..Default::default()
        }))
    }
}

/// VMAPI CreateVm parameters (`POST /vms`); also the `vm` of CNAPI's
/// `POST /allocate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateVm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_physical_memory: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_swap: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lwps: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zfs_io_priority: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_priv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_allowed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_dataset: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_enabled: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    /// Any other VMAPI parameter (`traits`, `min_platform`, `disks`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// VMAPI's answer to a call that starts a job (202): `{vm_uuid, job_uuid}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vm_uuid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_uuid: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vmadm_object_with_nics_and_string_quota() {
        let wire = json!({
            "uuid": "a2b5d1c0-0000-4000-8000-000000000001", "brand": "builder",
            "alias": "cloud-image-builder", "state": "running", "quota": "50",
            "max_physical_memory": 8192, "autoboot": "true",
            "nics": [{"interface": "net0", "mac": "90:b8:d0:0:0:1", "nic_tag": "admin",
                      "ips": ["10.0.0.9/24"], "primary": true, "allow_ip_spoofing": true,
                      "future_nic_field": 1}],
            "datasets": ["zones/a2b5d1c0-0000-4000-8000-000000000001/data"],
            "destroyed": null, "zoneid": 5
        });
        let vm: Vm = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(vm.brand.as_deref(), Some("builder"));
        assert_eq!(vm.quota.val(), Some(50));
        assert_eq!(vm.ram_mib(), Some(8192));
        assert_eq!(vm.ips(), ["10.0.0.9"]);
        assert!(!vm.is_hvm() && !vm.is_destroyed());
        let nic = &vm.nics.as_ref().unwrap()[0];
        assert_eq!(nic.allow_ip_spoofing.val(), Some(true));
        assert_eq!(nic.extra["future_nic_field"], json!(1));
        // null members of unknown fields survive too
        assert_eq!(vm.extra["destroyed"], Value::Null);
        assert_eq!(serde_json::to_value(&vm).unwrap(), wire);
    }

    #[test]
    fn create_params_serialize_as_vmapi_takes_them() {
        let c = CreateVm {
            owner_uuid: Some("o".into()),
            brand: Some("joyent".into()),
            ram: Some(1024u64.into()),
            networks: Some(vec![
                NetworkSpec::ipv4("n1"),
                NetworkSpec::Uuid("n2".into()),
            ]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"owner_uuid": "o", "brand": "joyent",
                   "networks": [{"ipv4_uuid": "n1", "ipv4_count": 1}, "n2"], "ram": 1024})
        );
        let back: CreateVm = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
