//! Where a builder zone may go, with what today's Triton already has
//! (`shared/notes/triton.md` 4), strongest signal first:
//!
//! 1. a platform floor: the package's `min_platform`, the image's
//!    `requirements.min_platform` (and `max_platform`), and the gate's own
//!    `builder_min_platform` (the analogue of a CNAPI
//!    `filter_builder_min_platform`), compared with DAPI's
//!    `hard-filter-platform-versions` semantics: sysinfo `Live Image`
//!    against the floor for the server's `SDC Version` (missing: 6.5);
//! 2. `traits`: the combined package and image traits must match the
//!    server's traits exactly by key set, as DAPI's `hard-filter-traits`
//!    does (`{"builder": true}` on builder compute nodes and on the builder
//!    package);
//! 3. sysinfo `Brands`, when a platform reports it (a proposed platform
//!    change; no SmartOS platform does today): it must list `builder`.
//!
//! With neither 1 nor 2 configured, builder placement is refused with a
//! reason saying what to configure. The gate applies these rules itself to
//! the server CNAPI picked, so a misconfigured allocator cannot place a
//! builder zone on an incapable node. Reasons are worded as CNAPI's
//! allocator words them (`No compute resources available: <reason>`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use triton_api::dapi::{platform_ok, traits_ok, version_key_ok};
use triton_api::{Image, Package, Server};

use crate::brand::BUILDER;

/// The refusal when nothing tells builder compute nodes apart.
pub const NOT_CONFIGURED: &str = "builder placement is not configured: give the builder package a min_platform floor (e.g. {\"7.0\":\"<first platform stamp with the builder brand>\"}) or traits {\"builder\":true} matching the builder compute nodes' traits (or start triton-gate with --builder-min-platform)";

/// The rules one builder placement must satisfy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// `(who, floor)`: `Package`, `Image`, `Builder support`.
    pub floors: Vec<(&'static str, BTreeMap<String, String>)>,
    /// The image's `max_platform`.
    pub ceilings: Vec<(&'static str, BTreeMap<String, String>)>,
    /// Combined package and image traits.
    pub traits: Map<String, Value>,
}

fn nonempty(m: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    m.filter(|m| m.keys().any(|k| version_key_ok(k))).cloned()
}

impl Rules {
    /// The rules for a builder zone of `package` and `image`, plus the
    /// gate's own floor.
    pub fn for_builder(
        package: &Package,
        image: &Image,
        gate_floor: Option<&BTreeMap<String, String>>,
    ) -> Rules {
        let mut r = Rules::default();
        let req = image.requirements.as_ref();
        if let Some(f) = nonempty(package.min_platform.as_ref()) {
            r.floors.push(("Package", f));
        }
        if let Some(f) = nonempty(req.and_then(|q| q.min_platform.as_ref())) {
            r.floors.push(("Image", f));
        }
        if let Some(f) = nonempty(gate_floor) {
            r.floors.push(("Builder support", f));
        }
        if let Some(f) = nonempty(req.and_then(|q| q.max_platform.as_ref())) {
            r.ceilings.push(("Image", f));
        }
        for t in [package.traits.as_ref(), image.traits.as_ref()]
            .into_iter()
            .flatten()
        {
            for (k, v) in t {
                r.traits.insert(k.clone(), v.clone());
            }
        }
        r
    }

    /// A floor or traits is set: builder nodes can be told apart.
    pub fn configured(&self) -> bool {
        !self.floors.is_empty() || !self.traits.is_empty()
    }

    /// Check a server (with its sysinfo): `Err(reason)` in CNAPI's words.
    pub fn check(&self, server: &Server) -> Result<(), String> {
        let si = server.sysinfo.as_ref();
        let sdc = si
            .map(|s| s.sdc_version_or_default().to_string())
            .unwrap_or_else(|| "6.5".into());
        let platform = si
            .and_then(|s| s.live_image.clone())
            .or_else(|| server.current_platform.clone())
            .unwrap_or_default();
        let has = || {
            Value::Object(Map::from_iter([(
                sdc.clone(),
                Value::String(platform.clone()),
            )]))
        };
        for (who, floor) in &self.floors {
            if !platform_ok(floor, &sdc, &platform, true) {
                return Err(format!(
                    "{who} requires min platforms {}, but server has {}",
                    json_map(floor),
                    has()
                ));
            }
        }
        for (who, ceiling) in &self.ceilings {
            if !platform_ok(ceiling, &sdc, &platform, false) {
                return Err(format!(
                    "{who} requires max platforms {}, but server has {}",
                    json_map(ceiling),
                    has()
                ));
            }
        }
        let have = server.traits.clone().unwrap_or_default();
        if !traits_ok(&self.traits, &have) {
            return Err(format!(
                "Combined vm/package/image traits require {}, but server has {}",
                Value::Object(self.traits.clone()),
                Value::Object(have)
            ));
        }
        if si.and_then(|s| s.has_brand(BUILDER)) == Some(false) {
            return Err(format!(
                "Server platform {platform} does not provide brand \"{BUILDER}\""
            ));
        }
        Ok(())
    }
}

fn json_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn floor(v: Value) -> BTreeMap<String, String> {
        serde_json::from_value(v).unwrap()
    }

    fn server(platform: &str, traits: Value, brands: Option<Value>) -> Server {
        let mut si = json!({"Live Image": platform, "SDC Version": "7.0"});
        if let Some(b) = brands {
            si["Brands"] = b;
        }
        serde_json::from_value(json!({"uuid": "s1", "traits": traits, "sysinfo": si})).unwrap()
    }

    #[test]
    fn rules_from_package_image_and_gate() {
        let pkg: Package = serde_json::from_value(json!({"uuid": "p", "brand": "builder",
            "min_platform": {"7.0": "20261101T000000Z"}, "traits": {"builder": true}}))
        .unwrap();
        let img = Image::default();
        let r = Rules::for_builder(&pkg, &img, None);
        assert!(r.configured());
        assert_eq!(r.floors.len(), 1);
        // passes on the new platform with the trait, no Brands reported
        assert_eq!(
            r.check(&server("20261101T000000Z", json!({"builder": true}), None)),
            Ok(())
        );
        assert_eq!(
            r.check(&server("20250101T000000Z", json!({"builder": true}), None)).unwrap_err(),
            "Package requires min platforms {\"7.0\":\"20261101T000000Z\"}, but server has {\"7.0\":\"20250101T000000Z\"}"
        );
        assert_eq!(
            r.check(&server("20261101T000000Z", json!({}), None))
                .unwrap_err(),
            "Combined vm/package/image traits require {\"builder\":true}, but server has {}"
        );
        // a node that reports its brands must list builder
        assert_eq!(
            r.check(&server(
                "20261101T000000Z",
                json!({"builder": true}),
                Some(json!(["joyent"]))
            ))
            .unwrap_err(),
            "Server platform 20261101T000000Z does not provide brand \"builder\""
        );
        // nothing configured
        let bare: Package =
            serde_json::from_value(json!({"uuid": "p", "brand": "builder"})).unwrap();
        assert!(!Rules::for_builder(&bare, &img, None).configured());
        // the gate's own floor counts
        let g = floor(json!({"7.0": "20261101T000000Z"}));
        let r = Rules::for_builder(&bare, &img, Some(&g));
        assert!(r.configured());
        assert!(r
            .check(&server("20250101T000000Z", json!({}), None))
            .unwrap_err()
            .starts_with("Builder support requires min platforms"));
    }
}
