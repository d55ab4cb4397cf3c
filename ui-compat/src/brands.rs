//! Brands as data: a [`Brand`] keeps any name it is given, and the facts
//! about the brands we know live in one table, [`BRANDS`].
//!
//! Adding a brand means one [`Brand`] variant and one table row; everything
//! else (display, provisioning choices) reads the table.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

/// One row of the brand table.
#[derive(Debug)]
pub struct BrandFacts {
    /// The brand's name as zones and vmadm spell it.
    pub name: &'static str,
    pub kind: Kind,
    /// `manifest.type` values of images this brand provisions from.
    pub image_types: &'static [&'static str],
    /// The title shown next to the brand.
    pub title: &'static str,
}

/// Everything the UI knows about brands. Order is display order: the first
/// brand that takes an image type is the default choice for it.
pub const BRANDS: &[BrandFacts] = &[
    BrandFacts {
        name: "joyent",
        kind: Kind::Os,
        image_types: &["zone-dataset"],
        title: "Joyent Native Zone",
    },
    BrandFacts {
        name: "joyent-minimal",
        kind: Kind::Os,
        image_types: &["zone-dataset"],
        title: "Joyent Minimal Native Zone",
    },
    BrandFacts {
        name: "builder",
        kind: Kind::Os,
        image_types: &["zone-dataset"],
        title: "Joyent Native Zone with BHYVE devices",
    },
    BrandFacts {
        name: "lx",
        kind: Kind::Os,
        image_types: &["lx-dataset"],
        title: "LX Branded Zone (Linux)",
    },
    BrandFacts {
        name: "bhyve",
        kind: Kind::Hvm,
        image_types: &["zvol"],
        title: "Hardware Virtual Machine (bhyve)",
    },
    BrandFacts {
        name: "kvm",
        kind: Kind::Hvm,
        image_types: &["zvol"],
        title: "Hardware Virtual Machine (KVM)",
    },
];

/// A zone brand. Names outside the table are kept as [`Brand::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Brand {
    Joyent,
    JoyentMinimal,
    Builder,
    Lx,
    Bhyve,
    Kvm,
    Other(String),
}

impl Brand {
    pub fn parse(s: &str) -> Brand {
        match s {
            "joyent" => Brand::Joyent,
            "joyent-minimal" => Brand::JoyentMinimal,
            "builder" => Brand::Builder,
            "lx" => Brand::Lx,
            "bhyve" => Brand::Bhyve,
            "kvm" => Brand::Kvm,
            other => Brand::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Brand::Joyent => "joyent",
            Brand::JoyentMinimal => "joyent-minimal",
            Brand::Builder => "builder",
            Brand::Lx => "lx",
            Brand::Bhyve => "bhyve",
            Brand::Kvm => "kvm",
            Brand::Other(s) => s,
        }
    }

    /// The table row for this brand, `None` for a brand we do not know.
    pub fn facts(&self) -> Option<&'static BrandFacts> {
        let name = self.as_str();
        BRANDS.iter().find(|b| b.name == name)
    }

    pub fn is_known(&self) -> bool {
        self.facts().is_some()
    }

    /// OS or HVM; `None` when the brand is unknown.
    pub fn kind(&self) -> Option<Kind> {
        self.facts().map(|f| f.kind)
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
    fn every_table_row_round_trips_through_a_variant() {
        for row in BRANDS {
            let b = Brand::parse(row.name);
            assert!(!matches!(b, Brand::Other(_)), "{} has no variant", row.name);
            assert_eq!(b.as_str(), row.name);
            assert_eq!(b.facts().unwrap().name, row.name);
        }
    }

    #[test]
    fn unknown_names_are_kept() {
        let b = Brand::parse("futurebrand");
        assert_eq!(b, Brand::Other("futurebrand".into()));
        assert_eq!(b.as_str(), "futurebrand");
        assert!(!b.is_known());
        assert_eq!(b.kind(), None);
        assert!(b.title().contains("futurebrand"));
        let j: Brand = serde_json::from_str("\"lxd\"").unwrap();
        assert_eq!(serde_json::to_string(&j).unwrap(), "\"lxd\"");
    }

    #[test]
    fn builder_facts() {
        let b = Brand::Builder;
        assert_eq!(b.title(), "Joyent Native Zone with BHYVE devices");
        assert_eq!(b.kind(), Some(Kind::Os));
        assert!(b.takes(&ImageType::ZoneDataset));
        assert!(!b.takes(&ImageType::Zvol));
        assert!(Brand::Bhyve.takes(&ImageType::Zvol));
        assert_eq!(Brand::Kvm.kind(), Some(Kind::Hvm));
    }
}
