//! Brand selection exactly as CloudAPI's `getBrand(req)` does it
//! (`sdc-cloudapi: lib/machines.js`, facts in `shared/notes/triton.md` 1.2),
//! with the brand list as a parameter so the builder rule can widen it for
//! operators only.

use serde::{Deserialize, Serialize};

/// CloudAPI's `VALID_BRANDS` (the brand registry's upstream rows).
pub fn valid_brands() -> Vec<&'static str> {
    brand::registry::triton_upstream()
}

/// CloudAPI's `VALID_HVM_BRANDS`: the only brands `params.brand` may name.
pub fn valid_hvm_brands() -> Vec<&'static str> {
    brand::registry::triton_upstream()
        .into_iter()
        .filter(|b| brand::registry::get(b).is_some_and(|i| i.hvm))
        .collect()
}
/// The brand this gate guards.
pub const BUILDER: &str = "builder";

/// Where the selected brand came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrandSource {
    /// The request's `brand` parameter.
    Params,
    /// The image's `requirements.brand`.
    Image,
    /// The package's `brand`.
    Package,
    /// `default_hvm_brand` (zvol image, nothing else named a brand).
    DefaultHvm,
    /// `default_container_brand`.
    DefaultContainer,
}

impl BrandSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BrandSource::Params => "params",
            BrandSource::Image => "image",
            BrandSource::Package => "package",
            BrandSource::DefaultHvm => "default_hvm",
            BrandSource::DefaultContainer => "default_container",
        }
    }
}

/// What getBrand reads from the request, image and package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandInputs {
    /// `req.params.brand`.
    pub params: Option<String>,
    /// `req.dataset.requirements.brand`.
    pub image: Option<String>,
    /// `req.dataset.type` (`zone-dataset`, `zvol`, `lx-dataset`, ...).
    pub image_type: Option<String>,
    /// `req.pkg.brand`.
    pub package: Option<String>,
}

/// SAPI `CLOUDAPI_DEFAULT_HVM_BRAND` / `CLOUDAPI_DEFAULT_CONTAINER_BRAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub hvm: String,
    pub container: String,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            hvm: "kvm".into(),
            container: "joyent".into(),
        }
    }
}

/// The selected brand and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub brand: String,
    pub source: BrandSource,
}

/// getBrand's failures, each an `InvalidArgumentError` (409) whose
/// `Display` is CloudAPI's message, typo included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrandError {
    #[error("Unknown brand \"{brand}\". Brand is restricted to one of {allowed}")]
    UnknownParamBrand { brand: String, allowed: String },
    #[error("Image requires unknown brand \"{0}\"")]
    UnknownImageBrand(String),
    #[error("Package requires unknown brand \"{0}\"")]
    UnknownPackageBrand(String),
    #[error("Package requires brand \"{package}\", but brand \"{selected}\" was selected")]
    PackageMismatch { package: String, selected: String },
    #[error("Image requires brand \"{image}\", but pkq requires brand \"{package}\"")]
    ImagePackageMismatch { image: String, package: String },
    #[error("Image requires brand \"{image}\", but brand \"{selected}\" was selected")]
    ImageMismatch { image: String, selected: String },
    #[error("Brand \"{0}\" requires the image type to be \"zvol\"")]
    NeedsZvol(String),
    #[error("Brand \"{0}\" cannot use an image of type \"zvol\"")]
    NoZvol(String),
}

/// CloudAPI's `safeBrandName`: `replace(/[^a-zA-Z0-9-]/, '')` *without* the
/// `g` flag (only the first bad character goes), then at most 64 characters.
pub fn safe_brand_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut removed = false;
    for c in s.chars() {
        if !(removed || c.is_ascii_alphanumeric() || c == '-') {
            removed = true;
            continue;
        }
        out.push(c);
    }
    // JS substr counts UTF-16 units; brands are ASCII in practice.
    out.chars().take(64).collect()
}

/// `["bhyve","kvm"]`, as `JSON.stringify` writes a list.
fn js_list(l: &[&str]) -> String {
    serde_json::to_string(l).unwrap_or_default()
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// getBrand with CloudAPI's lists: `param_brands` is what `params.brand` may
/// name (upstream: bhyve, kvm), `valid_brands` what an image or package may
/// require (upstream: [`valid_brands`]).
pub fn get_brand_with(
    inp: &BrandInputs,
    defaults: &Defaults,
    param_brands: &[&str],
    valid_brands: &[&str],
) -> Result<Resolved, BrandError> {
    let params = present(&inp.params);
    let image = present(&inp.image);
    let package = present(&inp.package);
    let image_type = inp.image_type.as_deref().unwrap_or("");
    if let Some(b) = params {
        if !param_brands.contains(&b) {
            return Err(BrandError::UnknownParamBrand {
                brand: safe_brand_name(b),
                allowed: js_list(param_brands),
            });
        }
    }
    if let Some(b) = image {
        if !valid_brands.contains(&b) {
            return Err(BrandError::UnknownImageBrand(safe_brand_name(b)));
        }
    }
    if let Some(b) = package {
        if !valid_brands.contains(&b) {
            return Err(BrandError::UnknownPackageBrand(safe_brand_name(b)));
        }
    }
    let resolved = if let Some(b) = params {
        Resolved {
            brand: b.to_string(),
            source: BrandSource::Params,
        }
    } else if let Some(b) = image {
        Resolved {
            brand: b.to_string(),
            source: BrandSource::Image,
        }
    } else if let Some(b) = package {
        Resolved {
            brand: b.to_string(),
            source: BrandSource::Package,
        }
    } else if image_type == "zvol" {
        Resolved {
            brand: defaults.hvm.clone(),
            source: BrandSource::DefaultHvm,
        }
    } else {
        Resolved {
            brand: defaults.container.clone(),
            source: BrandSource::DefaultContainer,
        }
    };
    let sel = resolved.brand.as_str();
    if let Some(p) = package {
        if p != sel {
            return Err(BrandError::PackageMismatch {
                package: safe_brand_name(p),
                selected: safe_brand_name(sel),
            });
        }
    }
    if let (Some(i), Some(p)) = (image, package) {
        if i != p {
            return Err(BrandError::ImagePackageMismatch {
                image: safe_brand_name(i),
                package: safe_brand_name(p),
            });
        }
    }
    if let Some(i) = image {
        if i != sel {
            return Err(BrandError::ImageMismatch {
                image: safe_brand_name(i),
                selected: safe_brand_name(sel),
            });
        }
    }
    if valid_hvm_brands().contains(&sel) {
        if image_type != "zvol" {
            return Err(BrandError::NeedsZvol(safe_brand_name(sel)));
        }
    } else if image_type == "zvol" {
        return Err(BrandError::NoZvol(safe_brand_name(sel)));
    }
    Ok(resolved)
}

/// CloudAPI's getBrand as shipped today (no builder anywhere).
pub fn get_brand(inp: &BrandInputs, defaults: &Defaults) -> Result<Resolved, BrandError> {
    get_brand_with(inp, defaults, &valid_hvm_brands(), &valid_brands())
}

/// Whether a brand value is, or tries to pass for, `builder`: compared after
/// dropping everything but ASCII letters and digits and lowercasing, so
/// `Builder`, ` builder `, `builder"x` and `b-u-i-l-d-e-r` all count. Used to
/// hide and refuse, never to select.
pub fn looks_like_builder(s: &str) -> bool {
    let norm: String = s
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    norm.starts_with(BUILDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inp(params: &str, image: &str, ty: &str, package: &str) -> BrandInputs {
        let o = |s: &str| (!s.is_empty()).then(|| s.to_string());
        BrandInputs {
            params: o(params),
            image: o(image),
            image_type: o(ty),
            package: o(package),
        }
    }

    fn msg(i: &BrandInputs) -> String {
        get_brand(i, &Defaults::default()).unwrap_err().to_string()
    }

    #[test]
    fn defaults_by_image_type() {
        let d = Defaults::default();
        let r = get_brand(&inp("", "", "zone-dataset", ""), &d).unwrap();
        assert_eq!(
            (r.brand.as_str(), r.source),
            ("joyent", BrandSource::DefaultContainer)
        );
        let r = get_brand(&inp("", "", "zvol", ""), &d).unwrap();
        assert_eq!(
            (r.brand.as_str(), r.source),
            ("kvm", BrandSource::DefaultHvm)
        );
        let d2 = Defaults {
            hvm: "bhyve".into(),
            container: "lx".into(),
        };
        assert_eq!(
            get_brand(&inp("", "", "zvol", ""), &d2).unwrap().brand,
            "bhyve"
        );
        assert_eq!(
            get_brand(&inp("", "", "lx-dataset", ""), &d2)
                .unwrap()
                .brand,
            "lx"
        );
        // empty strings are absent
        let r = get_brand(
            &BrandInputs {
                params: Some(String::new()),
                image: Some(String::new()),
                image_type: Some("zone-dataset".into()),
                package: Some(String::new()),
            },
            &Defaults::default(),
        )
        .unwrap();
        assert_eq!(r.source, BrandSource::DefaultContainer);
    }

    #[test]
    fn sources_in_order() {
        let d = Defaults::default();
        assert_eq!(
            get_brand(&inp("bhyve", "bhyve", "zvol", "bhyve"), &d)
                .unwrap()
                .source,
            BrandSource::Params
        );
        assert_eq!(
            get_brand(&inp("", "joyent", "zone-dataset", "joyent"), &d)
                .unwrap()
                .source,
            BrandSource::Image
        );
        assert_eq!(
            get_brand(&inp("", "", "zone-dataset", "joyent-minimal"), &d)
                .unwrap()
                .source,
            BrandSource::Package
        );
        // a joyent package with an lx-dataset image passes getBrand
        assert_eq!(
            get_brand(&inp("", "", "lx-dataset", "joyent"), &d)
                .unwrap()
                .brand,
            "joyent"
        );
    }

    #[test]
    fn exact_messages() {
        assert_eq!(
            msg(&inp("unknown", "", "zvol", "")),
            r#"Unknown brand "unknown". Brand is restricted to one of ["bhyve","kvm"]"#
        );
        // customers can never name a container brand, not even joyent
        assert_eq!(
            msg(&inp("joyent", "", "zone-dataset", "")),
            r#"Unknown brand "joyent". Brand is restricted to one of ["bhyve","kvm"]"#
        );
        assert_eq!(
            msg(&inp("builder", "", "zone-dataset", "")),
            r#"Unknown brand "builder". Brand is restricted to one of ["bhyve","kvm"]"#
        );
        assert_eq!(
            msg(&inp("", "builder", "zone-dataset", "")),
            r#"Image requires unknown brand "builder""#
        );
        assert_eq!(
            msg(&inp("", "", "zone-dataset", "builder")),
            r#"Package requires unknown brand "builder""#
        );
        assert_eq!(
            msg(&inp("bhyve", "", "zvol", "kvm")),
            r#"Package requires brand "kvm", but brand "bhyve" was selected"#
        );
        assert_eq!(
            msg(&inp("bhyve", "kvm", "zvol", "bhyve")),
            r#"Image requires brand "kvm", but pkq requires brand "bhyve""#
        );
        assert_eq!(
            msg(&inp("bhyve", "kvm", "zvol", "")),
            r#"Image requires brand "kvm", but brand "bhyve" was selected"#
        );
        assert_eq!(
            msg(&inp("", "", "zone-dataset", "bhyve")),
            r#"Brand "bhyve" requires the image type to be "zvol""#
        );
        assert_eq!(
            msg(&inp("", "", "zvol", "joyent")),
            r#"Brand "joyent" cannot use an image of type "zvol""#
        );
    }

    #[test]
    fn safe_brand_name_removes_only_the_first_bad_character() {
        assert_eq!(safe_brand_name(r#"builder"><b>"#), "builder><b>");
        assert_eq!(safe_brand_name("a b c"), "ab c");
        assert_eq!(safe_brand_name(&"x".repeat(100)).len(), 64);
        assert_eq!(
            msg(&inp(r#"builder"><b>"#, "", "zone-dataset", "")),
            r#"Unknown brand "builder><b>". Brand is restricted to one of ["bhyve","kvm"]"#
        );
    }

    #[test]
    fn widened_lists() {
        let d = Defaults::default();
        let r = get_brand_with(
            &inp("", "builder", "zone-dataset", "builder"),
            &d,
            &valid_hvm_brands(),
            &["bhyve", "builder", "joyent", "joyent-minimal", "kvm", "lx"],
        )
        .unwrap();
        assert_eq!(
            (r.brand.as_str(), r.source),
            ("builder", BrandSource::Image)
        );
    }

    #[test]
    fn builder_lookalikes() {
        for s in [
            "builder",
            "Builder",
            " builder ",
            "builder\"x",
            "b-u-i-l-d-e-r",
            "BUILDER2",
        ] {
            assert!(looks_like_builder(s), "{s}");
        }
        for s in ["joyent", "build", "bhyve", ""] {
            assert!(!looks_like_builder(s), "{s}");
        }
    }
}
