//! What may be provisioned on this node, and the payload for `vmadm create`.

use crate::brands::{brands, Brand, ImageType, Kind};
use crate::tools::Image;
use serde::Serialize;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::Path;

/// Brands installed under `root` (`usr/lib/brand/<name>/platform.xml`).
pub fn installed_brands(root: &Path) -> Vec<Brand> {
    brand::check::installed_brands(root)
        .iter()
        .map(|n| Brand::parse(n))
        .collect()
}

/// One brand offered for an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub brand: String,
    pub title: String,
    /// The first choice is the default.
    pub default: bool,
}

/// The brands that take this image type and are installed, in table order.
pub fn choices(image_type: &ImageType, installed: &[Brand]) -> Vec<Choice> {
    brands()
        .into_iter()
        .map(|row| Brand::parse(row.name))
        .filter(|b| b.takes(image_type) && installed.contains(b))
        .enumerate()
        .map(|(i, b)| Choice {
            brand: b.as_str().to_string(),
            title: b.title(),
            default: i == 0,
        })
        .collect()
}

/// What the provision form sends.
#[derive(Clone, Debug, Default, serde::Deserialize, Serialize)]
pub struct Request {
    pub image_uuid: String,
    pub brand: String,
    #[serde(default)]
    pub alias: String,
    /// MiB.
    #[serde(default)]
    pub ram: String,
    /// GiB: the zone quota, or for bhyve the flexible disk size.
    #[serde(default)]
    pub disk: String,
    #[serde(default)]
    pub vcpus: String,
    /// Empty for no nic.
    #[serde(default)]
    pub nic_tag: String,
    /// `dhcp` or `a.b.c.d/nn`.
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub gateway: String,
}

/// A form value that cannot become a payload.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "brand {brand} cannot be provisioned from image {image} (type {image_type}) on this node"
    )]
    BrandNotOffered {
        brand: String,
        image: String,
        image_type: String,
    },
    #[error("{field}: {msg}")]
    Field { field: &'static str, msg: String },
}

fn field(field: &'static str, msg: impl Into<String>) -> PayloadError {
    PayloadError::Field {
        field,
        msg: msg.into(),
    }
}

fn number(
    name: &'static str,
    s: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, PayloadError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(default);
    }
    let n: u64 = s
        .parse()
        .map_err(|_| field(name, format!("{s:?} is not a whole number")))?;
    if n < min || n > max {
        return Err(field(name, format!("{n} is outside {min}..={max}")));
    }
    Ok(n)
}

fn cidr(s: &str) -> Result<String, PayloadError> {
    let s = s.trim();
    if s.is_empty() || s == "dhcp" {
        return Ok("dhcp".into());
    }
    let (a, p) = s.split_once('/').ok_or_else(|| {
        field(
            "ip",
            "use dhcp or an address with a prefix, like 10.0.0.5/24",
        )
    })?;
    let a: Ipv4Addr = a
        .parse()
        .map_err(|_| field("ip", format!("{a:?} is not an IPv4 address")))?;
    let p: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| field("ip", format!("{p:?} is not a prefix length")))?;
    Ok(format!("{a}/{p}"))
}

/// A new random (version 4) UUID, lowercase as vmadm writes them.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Is this a lowercase `8-4-4-4-12` hex UUID, as vmadm requires?
pub use common::uuid::is_uuid;

/// Build the `vmadm create` payload for a form, an image and what is
/// installed. The brand must be one of [`choices`] for the image.
pub fn payload(
    req: &Request,
    image: &Image,
    installed: &[Brand],
    uuid: &str,
) -> Result<Value, PayloadError> {
    let offered = choices(&image.kind(), installed);
    if !offered.iter().any(|c| c.brand == req.brand) {
        return Err(PayloadError::BrandNotOffered {
            brand: req.brand.clone(),
            image: image.label(),
            image_type: image.image_type.clone(),
        });
    }
    let brand = Brand::parse(&req.brand);
    let hvm = brand.kind() == Some(Kind::Hvm);
    let alias = req.alias.trim();
    if !alias
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(field("alias", "use letters, digits, '.', '_' and '-' only"));
    }
    let ram = number("ram", &req.ram, 1024, 128, 1 << 24)?;
    let mut p = json!({ "uuid": uuid, "brand": brand.as_str() });
    let o = p.as_object_mut().expect("object");
    if !alias.is_empty() {
        o.insert("alias".into(), json!(alias));
    }
    o.insert("ram".into(), json!(ram));
    if hvm {
        let vcpus = number("vcpus", &req.vcpus, 1, 1, 64)?;
        let disk_gib = number("disk", &req.disk, 10, 1, 1 << 16)?;
        o.insert("vcpus".into(), json!(vcpus));
        let mut d = json!({ "image_uuid": image.uuid, "boot": true, "model": "virtio" });
        if let Some(sz) = image.image_size {
            d["size"] = json!(sz);
        }
        o.insert("disks".into(), json!([d]));
        if brand == Brand::BHYVE {
            o.insert("flexible_disk_size".into(), json!(disk_gib * 1024));
        }
    } else {
        let quota = number("disk", &req.disk, 10, 1, 1 << 16)?;
        o.insert("image_uuid".into(), json!(image.uuid));
        o.insert("quota".into(), json!(quota));
    }
    let tag = req.nic_tag.trim();
    if !tag.is_empty() {
        if !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(field("nic_tag", format!("{tag:?} is not a nic tag name")));
        }
        let ip = cidr(&req.ip)?;
        let mut nic = json!({ "nic_tag": tag, "ips": [ip], "primary": true });
        let gw = req.gateway.trim();
        if !gw.is_empty() {
            let g: Ipv4Addr = gw
                .parse()
                .map_err(|_| field("gateway", format!("{gw:?} is not an IPv4 address")))?;
            nic["gateways"] = json!([g.to_string()]);
        }
        if hvm {
            nic["model"] = json!("virtio");
        }
        o.insert("nics".into(), json!([nic]));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(t: &str) -> Image {
        Image {
            uuid: "11111111-2222-4333-8444-555555555555".into(),
            name: "base".into(),
            version: "1".into(),
            image_type: t.into(),
            os: "smartos".into(),
            description: None,
            image_size: Some(10240),
            source: None,
        }
    }

    #[test]
    fn uuids() {
        let u = new_uuid();
        assert!(is_uuid(&u), "{u}");
        assert_ne!(u, new_uuid());
        assert!(!is_uuid("../../etc/passwd-aaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!is_uuid("11111111-2222-4333-8444-55555555555G"));
    }

    #[test]
    fn zone_payload() {
        let inst = [Brand::JOYENT, Brand::BUILDER];
        let r = Request {
            image_uuid: img("zone-dataset").uuid,
            brand: "builder".into(),
            alias: "b1".into(),
            ram: "2048".into(),
            disk: "20".into(),
            nic_tag: "admin".into(),
            ip: "10.0.0.5/24".into(),
            gateway: "10.0.0.1".into(),
            ..Default::default()
        };
        let p = payload(&r, &img("zone-dataset"), &inst, "u").unwrap();
        assert_eq!(p["brand"], "builder");
        assert_eq!(p["quota"], 20);
        assert_eq!(p["ram"], 2048);
        assert_eq!(p["image_uuid"], img("x").uuid);
        assert_eq!(p["nics"][0]["ips"][0], "10.0.0.5/24");
        assert_eq!(p["nics"][0]["gateways"][0], "10.0.0.1");
        assert!(p.get("disks").is_none());
        // builder not installed: refused even if the form says so
        let e = payload(&r, &img("zone-dataset"), &[Brand::JOYENT], "u").unwrap_err();
        assert!(matches!(e, PayloadError::BrandNotOffered { .. }));
        let bad = Request {
            ip: "10.0.0.5".into(),
            ..r.clone()
        };
        assert!(payload(&bad, &img("zone-dataset"), &inst, "u").is_err());
        let bad = Request {
            ram: "lots".into(),
            ..r
        };
        assert!(payload(&bad, &img("zone-dataset"), &inst, "u").is_err());
    }

    #[test]
    fn bhyve_payload() {
        let r = Request {
            image_uuid: img("zvol").uuid,
            brand: "bhyve".into(),
            disk: "20".into(),
            nic_tag: "admin".into(),
            ..Default::default()
        };
        let p = payload(&r, &img("zvol"), &[Brand::BHYVE], "u").unwrap();
        assert_eq!(p["disks"][0]["boot"], true);
        assert_eq!(p["disks"][0]["size"], 10240);
        assert_eq!(p["flexible_disk_size"], 20480);
        assert_eq!(p["nics"][0]["ips"][0], "dhcp");
        assert_eq!(p["nics"][0]["model"], "virtio");
        assert!(p.get("image_uuid").is_none());
    }
}
