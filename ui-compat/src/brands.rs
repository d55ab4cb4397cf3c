//! Brands as data: a [`Brand`] keeps any name it is given, and the facts
//! about the brands we know come from the workspace's one brand registry
//! (`brand::registry`). Adding a brand there is all the UI needs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// What an image is, as `imgadm` says in `manifest.type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageType {
    ZoneDataset,
    LxDataset,
    Lxd,
    Zvol,
    Docker,
    Other(String),
}

impl ImageType {
    pub fn parse(s: &str) -> ImageType {
        match s {
            "zone-dataset" => ImageType::ZoneDataset,
            "lx-dataset" => ImageType::LxDataset,
            "lxd" => ImageType::Lxd,
            "zvol" => ImageType::Zvol,
            "docker" => ImageType::Docker,
            other => ImageType::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ImageType::ZoneDataset => "zone-dataset",
            ImageType::LxDataset => "lx-dataset",
            ImageType::Lxd => "lxd",
            ImageType::Zvol => "zvol",
            ImageType::Docker => "docker",
            ImageType::Other(s) => s,
        }
    }
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OS-virtualised zone or a hardware virtual machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Os,
    Hvm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Os => "OS",
            Kind::Hvm => "HVM",
        }
    }
}

/// Everything the UI knows about brands: the workspace's one brand
/// registry (`brand::registry`). Order is display order: the first brand
/// that takes an image type is the default choice for it.
pub fn brands() -> Vec<&'static BrandFacts> {
    brand::registry::all()
}

/// One brand's facts (a row of the registry).
pub type BrandFacts = brand::registry::BrandInfo;

/// A zone brand: any name a VM carries; names the registry does not know
/// are kept as they are and shown as unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Brand(Cow<'static, str>);

impl Brand {
    pub const JOYENT: Brand = Brand(Cow::Borrowed("joyent"));
    pub const BUILDER: Brand = Brand(Cow::Borrowed("builder"));
    pub const BHYVE: Brand = Brand(Cow::Borrowed("bhyve"));

    pub fn parse(s: &str) -> Brand {
        Brand(Cow::Owned(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry row for this brand, `None` for a brand we do not know.
    pub fn facts(&self) -> Option<&'static BrandFacts> {
        brand::registry::get(self.as_str())
    }

    pub fn is_known(&self) -> bool {
        self.facts().is_some()
    }

    /// OS or HVM; `None` when the brand is unknown.
    pub fn kind(&self) -> Option<Kind> {
        self.facts()
            .map(|f| if f.hvm { Kind::Hvm } else { Kind::Os })
    }

    /// The display title; an unknown brand is shown by its name.
    pub fn title(&self) -> String {
        match self.facts() {
            Some(f) => f.title.to_string(),
            None => format!("Unknown brand \u{201c}{}\u{201d}", self.as_str()),
        }
    }

    /// Does this brand provision from images of this type?
    pub fn takes(&self, t: &ImageType) -> bool {
        self.facts()
            .is_some_and(|f| f.image_types.contains(&t.as_str()))
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Brand {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Brand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Brand::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_row_is_a_known_brand() {
        for row in brands() {
            let b = Brand::parse(row.name);
            assert!(b.is_known());
            assert_eq!(b.facts().unwrap().name, row.name);
        }
    }

    #[test]
    fn unknown_names_are_kept() {
        let b = Brand::parse("futurebrand");
        assert_eq!(b.as_str(), "futurebrand");
        assert!(!b.is_known());
        assert_eq!(b.kind(), None);
        assert!(b.title().contains("futurebrand"));
        let j: Brand = serde_json::from_str("\"lxd\"").unwrap();
        assert_eq!(serde_json::to_string(&j).unwrap(), "\"lxd\"");
    }

    #[test]
    fn builder_facts() {
        let b = Brand::BUILDER;
        assert_eq!(b, Brand::parse("builder"));
        assert_eq!(b.title(), "Joyent Native Zone with BHYVE devices");
        assert_eq!(b.kind(), Some(Kind::Os));
        assert!(b.takes(&ImageType::ZoneDataset));
        assert!(!b.takes(&ImageType::Zvol));
        assert!(Brand::BHYVE.takes(&ImageType::Zvol));
        assert_eq!(Brand::parse("kvm").kind(), Some(Kind::Hvm));
    }
}
