//! CloudAPI's objects as CloudAPI renders them (`sdc-cloudapi`
//! `lib/machines.js`, `lib/packages.js`, `lib/datasets.js`), and the
//! renderings from the internal objects (what a CloudAPI-compatible server
//! such as triton-gate answers).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::{Lenient, LenientExt as _};
use crate::types::image::{ImageFile, ImageRequirements};
use crate::types::package::PackageDisk;
use crate::types::{Image, Package, Vm};

/// A machine (`GET /:account/machines/:id`). `memory` MiB, `disk` MiB.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Machine {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `smartmachine` or `virtualmachine`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Image UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Package name (CloudAPI) or UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Server UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_node: Option<String>,
    #[serde(default, rename = "primaryIp", skip_serializing_if = "Option::is_none")]
    pub primary_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_enabled: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A package as CloudAPI shows it (`id, name, memory, disk, swap, lwps,
/// vcpus, version, group, description, default, brand`, bhyve adds
/// `flexible_disk`, `disks`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloudPackage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lwps: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flexible_disk: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<PackageDisk>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image as CloudAPI shows it (`GET /:account/images/:id`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloudImage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<ImageRequirements>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<ImageFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /:account` (GetAccount).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CloudAccount {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub login: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(
        default,
        rename = "companyName",
        skip_serializing_if = "Option::is_none"
    )]
    pub company_name: Option<String>,
    #[serde(default, rename = "firstName", skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, rename = "lastName", skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triton_cns_enabled: Option<Lenient<bool>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CreateMachine's parameters. `metadata` and `tags` go on the wire as
/// `metadata.<key>` and `tag.<key>` members, as node-triton sends them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateMachine {
    /// Image UUID.
    pub image: String,
    /// Package UUID or name.
    pub package: String,
    pub name: Option<String>,
    /// CloudAPI takes only `bhyve`/`kvm` from customers.
    pub brand: Option<String>,
    /// Network UUIDs or objects.
    pub networks: Option<Vec<Value>>,
    pub metadata: Map<String, Value>,
    pub tags: Map<String, Value>,
    pub firewall_enabled: Option<bool>,
    /// Anything else (`locality`, `affinity`, `delegate_dataset`, ...).
    pub extra: Map<String, Value>,
}

impl CreateMachine {
    pub fn new(image: &str, package: &str) -> CreateMachine {
        CreateMachine {
            image: image.to_string(),
            package: package.to_string(),
            ..Default::default()
        }
    }

    /// The JSON body node-triton would send.
    pub fn to_body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(n) = &self.name {
            m.insert("name".into(), Value::String(n.clone()));
        }
        m.insert("image".into(), Value::String(self.image.clone()));
        m.insert("package".into(), Value::String(self.package.clone()));
        if let Some(b) = &self.brand {
            m.insert("brand".into(), Value::String(b.clone()));
        }
        if let Some(n) = &self.networks {
            m.insert("networks".into(), Value::Array(n.clone()));
        }
        for (k, v) in &self.metadata {
            m.insert(format!("metadata.{k}"), v.clone());
        }
        for (k, v) in &self.tags {
            m.insert(format!("tag.{k}"), v.clone());
        }
        if let Some(f) = self.firewall_enabled {
            m.insert("firewall_enabled".into(), Value::Bool(f));
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

impl From<&Package> for CloudPackage {
    /// As `lib/packages.js` translates: `uuid` -> `id`,
    /// `max_physical_memory` -> `memory`, `quota` -> `disk`, `max_swap` ->
    /// `swap`, `max_lwps` -> `lwps`, `vcpus` (0 when unset), `default`
    /// (false when unset), `brand`; bhyve packages add `flexible_disk` and
    /// `disks`.
    fn from(p: &Package) -> CloudPackage {
        let bhyve = p.brand.as_deref() == Some("bhyve");
        CloudPackage {
            id: p.uuid.clone(),
            name: p.name.clone(),
            memory: p.max_physical_memory.clone(),
            disk: p.quota.clone(),
            swap: p.max_swap.clone(),
            lwps: p.max_lwps.clone(),
            vcpus: Some(p.vcpus.clone().unwrap_or_else(|| 0u64.into())),
            version: Some(p.version.clone()).filter(|v| !v.is_empty()),
            group: p.group.clone(),
            description: p.description.clone(),
            default: Some(p.default.clone().unwrap_or_else(|| false.into())),
            brand: p.brand.clone(),
            flexible_disk: p.flexible_disk.clone().filter(|_| bhyve),
            disks: p.disks.clone().filter(|_| bhyve),
            extra: Map::new(),
        }
    }
}

impl From<&Image> for CloudImage {
    /// GetImage's fields: `id, name, version, os, requirements, type,
    /// description, files, tags, homepage, published_at, owner, public,
    /// state` (and `origin`).
    fn from(m: &Image) -> CloudImage {
        CloudImage {
            id: m.uuid.clone(),
            name: m.name.clone(),
            version: m.version.clone(),
            os: m.os.clone(),
            requirements: m.requirements.clone(),
            kind: m.kind.clone(),
            description: m.description.clone(),
            files: m.files.clone(),
            tags: m.tags.clone(),
            homepage: m.homepage.clone(),
            published_at: m.published_at.clone(),
            owner: m.owner.clone(),
            public: m.public.clone(),
            state: m.state.clone(),
            origin: m.origin.clone(),
            extra: Map::new(),
        }
    }
}

impl From<&Vm> for Machine {
    /// As GetMachine renders a VMAPI VM: `alias` -> `name`, `type` from the
    /// brand, `image_uuid` -> `image`, the NIC IPs, `ram` (or
    /// `max_physical_memory`) -> `memory`, `quota` GiB -> `disk` MiB,
    /// `customer_metadata` -> `metadata`, `billing_id` -> `package`,
    /// `server_uuid` -> `compute_node`.
    fn from(vm: &Vm) -> Machine {
        Machine {
            id: vm.uuid.clone(),
            name: vm.alias.clone(),
            kind: Some(
                if vm.is_hvm() {
                    "virtualmachine"
                } else {
                    "smartmachine"
                }
                .to_string(),
            ),
            brand: vm.brand.clone(),
            state: vm.state.clone(),
            image: vm.image_uuid.clone(),
            ips: Some(
                vm.nics
                    .iter()
                    .flatten()
                    .filter_map(|n| n.ip.clone())
                    .collect(),
            ),
            memory: vm.ram.clone().or_else(|| vm.max_physical_memory.clone()),
            disk: vm.quota.val().map(|q| Lenient::new(q * 1024)),
            metadata: Some(vm.customer_metadata.clone().unwrap_or_default()),
            tags: Some(vm.tags.clone().unwrap_or_default()),
            created: vm.create_timestamp.clone(),
            updated: vm.last_modified.clone(),
            package: vm.billing_id.clone(),
            compute_node: vm.server_uuid.clone(),
            firewall_enabled: vm.firewall_enabled.clone(),
            owner_uuid: vm.owner_uuid.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn package_rendering_matches_cloudapi() {
        let p: Package = serde_json::from_value(json!({
            "uuid": "p1", "name": "b-8G", "version": "1.0.0", "active": true,
            "max_physical_memory": 8192, "quota": 51200, "max_swap": 16384, "max_lwps": 4000,
            "brand": "builder", "owner_uuids": ["o"], "flexible_disk": true, "disks": [{"size": 1}]
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(CloudPackage::from(&p)).unwrap(),
            json!({"id": "p1", "name": "b-8G", "memory": 8192, "disk": 51200, "swap": 16384,
                   "lwps": 4000, "vcpus": 0, "version": "1.0.0", "default": false, "brand": "builder"})
        );
        let mut b = p.clone();
        b.brand = Some("bhyve".into());
        let c = CloudPackage::from(&b);
        assert_eq!(c.flexible_disk.val(), Some(true));
        assert_eq!(c.disks.map(|d| d.len()), Some(1));
    }

    #[test]
    fn machine_rendering() {
        let vm: Vm = serde_json::from_value(json!({
            "uuid": "v1", "alias": "web01", "brand": "bhyve", "state": "running",
            "image_uuid": "i", "ram": 1024, "quota": "10", "billing_id": "p",
            "server_uuid": "s", "owner_uuid": "o", "create_timestamp": "t0",
            "last_modified": "t1", "nics": [{"ip": "10.0.0.2"}, {"ips": ["dhcp"]}],
            "customer_metadata": {"a": "b"}
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(Machine::from(&vm)).unwrap(),
            json!({"id": "v1", "name": "web01", "type": "virtualmachine", "brand": "bhyve",
                   "state": "running", "image": "i", "ips": ["10.0.0.2"], "memory": 1024,
                   "disk": 10240, "metadata": {"a": "b"}, "tags": {}, "created": "t0",
                   "updated": "t1", "package": "p", "compute_node": "s", "owner_uuid": "o"})
        );
    }

    #[test]
    fn create_machine_body_is_node_triton_shaped() {
        let mut c = CreateMachine::new("img", "pkg");
        c.name = Some("b1".into());
        c.brand = Some("builder".into());
        c.metadata.insert("user-script".into(), json!("#!/bin/sh"));
        c.tags.insert("role".into(), json!("ci"));
        assert_eq!(
            Value::Object(c.to_body()),
            json!({"name": "b1", "image": "img", "package": "pkg", "brand": "builder",
                   "metadata.user-script": "#!/bin/sh", "tag.role": "ci"})
        );
    }
}
