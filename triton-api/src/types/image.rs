//! IMGAPI image manifests (v2; `shared/notes/triton.md` 5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::{Lenient, LenientExt as _};

/// An image manifest as IMGAPI serves it (`channels` only on channel
/// servers).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Image {
    /// Manifest version (`2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    /// True when the image has an icon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<Lenient<bool>>,
    /// `zone-dataset`, `lx-dataset`, `lxd`, `zvol`, `docker`, `other`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `smartos`, `linux`, `windows`, `bsd`, `illumos`, `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// `active`, `unactivated`, `disabled`, `creating`, `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<ImageFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<ImageRequirements>,
    /// `[{"name": "root"}, ...]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_passwords: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_directories: Option<Vec<String>>,
    /// zvol only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    /// zvol only, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<Lenient<u64>>,
    /// Channel servers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `files` (IMGAPI allows exactly one).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageFile {
    /// Hex SHA-1 of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// Bytes (a number, or a string that imgmanifest also accepts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Lenient<u64>>,
    /// `gzip`, `bzip2`, `xz`, `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    /// Base64 MD5, as IMGAPI records it.
    #[serde(
        default,
        rename = "contentMD5",
        skip_serializing_if = "Option::is_none"
    )]
    pub content_md5: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `requirements`: what a VM needs to use the image.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageRequirements {
    /// `[{"name": "net0", "description": "public"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Value>>,
    /// A string, not an enum: `builder` and future brands survive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<Lenient<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<Lenient<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ram: Option<Lenient<u64>>,
    /// `{"7.0": "YYYYMMDDTHHMMSSZ"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_platform: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_platform: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootrom: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One of `GET /channels`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Channel {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Image {
    /// `requirements.brand`, when set and not empty.
    pub fn brand(&self) -> Option<&str> {
        self.requirements
            .as_ref()
            .and_then(|r| r.brand.as_deref())
            .filter(|b| !b.is_empty())
    }

    /// `state` is `active`.
    pub fn is_active(&self) -> bool {
        self.state.as_deref() == Some("active")
    }

    pub fn is_public(&self) -> bool {
        self.public.val() == Some(true)
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled.val() == Some(true)
    }

    /// The first (only) file.
    pub fn file(&self) -> Option<&ImageFile> {
        self.files.as_ref().and_then(|f| f.first())
    }

    /// Whether `account` may see it, as IMGAPI's `account=` filter does:
    /// its owner always; others when it is active and public or shared
    /// with them in `acl`.
    pub fn visible_to(&self, account: &str) -> bool {
        self.owner.as_deref() == Some(account)
            || (self.is_active()
                && (self.is_public()
                    || self
                        .acl
                        .as_ref()
                        .is_some_and(|a| a.iter().any(|x| x == account))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manifest_round_trip_with_string_size_and_unknown_fields() {
        let wire = json!({
            "v": 2, "uuid": "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41", "owner": "o",
            "name": "ubuntu-24.04", "version": "20261125", "type": "zvol", "os": "linux",
            "state": "active", "disabled": false, "public": true,
            "files": [{"sha1": "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", "size": "734003200",
                       "compression": "gzip", "contentMD5": "AAAA", "stor": "local"}],
            "requirements": {"brand": "builder", "min_platform": {"7.0": "20261101T000000Z"},
                             "networks": [{"name": "net0", "description": "public"}],
                             "ssh_key": true, "future": 1},
            "image_size": 10240, "channels": ["dev"], "urn": "x"
        });
        let m: Image = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(m.brand(), Some("builder"));
        assert_eq!(m.kind.as_deref(), Some("zvol"));
        assert_eq!(m.file().unwrap().size.val(), Some(734003200));
        assert_eq!(m.file().unwrap().extra["stor"], "local");
        assert_eq!(m.requirements.as_ref().unwrap().extra["future"], 1);
        assert_eq!(m.extra["urn"], "x");
        assert!(m.visible_to("anyone"));
        assert_eq!(serde_json::to_value(&m).unwrap(), wire);
    }

    #[test]
    fn visibility() {
        let mut m = Image {
            owner: Some("o".into()),
            state: Some("active".into()),
            acl: Some(vec!["friend".into()]),
            ..Default::default()
        };
        assert!(m.visible_to("o") && m.visible_to("friend") && !m.visible_to("x"));
        m.state = Some("unactivated".into());
        assert!(m.visible_to("o") && !m.visible_to("friend"));
    }
}
