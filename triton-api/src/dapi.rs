//! DAPI's placement rules (`sdc-designation`), for everything that decides
//! or checks where a VM may go: the gate's builder placement and exposure
//! scan, and the simulated CNAPI allocator.
//!
//! - [`platform_ok`]: `hard-filter-platform-versions` for one requirement
//!   (`lib/algorithms/shared/platform-versions.js`);
//! - [`traits_ok`]: `hard-filter-traits` (the same key set, each value
//!   matching).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// DAPI's version keys: `N.N`.
pub fn version_key_ok(k: &str) -> bool {
    let mut p = k.split('.');
    matches!((p.next(), p.next(), p.next()),
        (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()))
}

/// A platform requirement (`min_platform`, `max_platform`): SDC version ->
/// platform stamp, typed or as it came in JSON.
pub trait PlatformReq {
    /// The entries: (key, the stamp when it is a string).
    fn entries(&self) -> Vec<(&str, Option<&str>)>;
}

impl PlatformReq for BTreeMap<String, String> {
    fn entries(&self) -> Vec<(&str, Option<&str>)> {
        self.iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect()
    }
}

impl PlatformReq for Map<String, Value> {
    fn entries(&self) -> Vec<(&str, Option<&str>)> {
        self.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
}

/// Does a server on (`sdc`, `platform`) pass `req` (a floor when `min`,
/// else a ceiling)? Only `N.N` keys count, and none means no requirement.
/// Versions and platform stamps compare as strings, as upstream does; an
/// SDC version above every key passes a floor (below every key, a
/// ceiling), and one between keys without its own key passes.
pub fn platform_ok(req: &impl PlatformReq, sdc: &str, platform: &str, min: bool) -> bool {
    let mut entries = req.entries();
    entries.retain(|(k, _)| version_key_ok(k));
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let (Some(&(lowest, _)), Some(&(highest, _))) = (entries.first(), entries.last()) else {
        return true;
    };
    let want = entries
        .iter()
        .find(|(k, _)| *k == sdc)
        .and_then(|(_, v)| *v);
    let between = want.is_none() && lowest < sdc && sdc < highest;
    if min {
        sdc > highest || want.is_some_and(|w| platform >= w) || between
    } else {
        sdc < lowest || want.is_some_and(|w| platform <= w) || between
    }
}

fn trait_match(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Array(w), h) => w.iter().any(|x| trait_match(x, h)),
        (w, Value::Array(h)) => h.iter().any(|x| x == w),
        (w, h) => w == h,
    }
}

/// `hard-filter-traits`: the same key set, each value matching (an array
/// on either side means "any of").
pub fn traits_ok(want: &Map<String, Value>, have: &Map<String, Value>) -> bool {
    have.len() == want.len()
        && want
            .iter()
            .all(|(k, v)| have.get(k).is_some_and(|h| trait_match(v, h)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn floor(v: Value) -> BTreeMap<String, String> {
        serde_json::from_value(v).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn min_platform_per_sdc_version() {
        let r = floor(json!({"7.0": "20260101T000000Z"}));
        assert!(platform_ok(&r, "7.0", "20260101T000000Z", true));
        assert!(platform_ok(&r, "7.0", "20261125T000000Z", true));
        assert!(!platform_ok(&r, "7.0", "20250910T000000Z", true));
        // a newer SDC version than any key passes; an older one does not
        assert!(platform_ok(&r, "7.1", "20200101T000000Z", true));
        assert!(!platform_ok(&r, "6.5", "20300101T000000Z", true));
        // keys that are not N.N are ignored
        assert!(platform_ok(
            &floor(json!({"seven": "2099"})),
            "7.0",
            "2000",
            true
        ));
        assert!(!version_key_ok("7") && !version_key_ok("7.0.1") && !version_key_ok(".0"));
        // a version between keys without its own key passes
        let r2 = floor(json!({"6.5": "20300101T000000Z", "7.2": "20300101T000000Z"}));
        assert!(platform_ok(&r2, "7.0", "20200101T000000Z", true));
        // a ceiling
        assert!(!platform_ok(&r, "7.0", "20270101T000000Z", false));
        assert!(platform_ok(&r, "7.0", "20250101T000000Z", false));
        assert!(platform_ok(&r, "6.5", "20300101T000000Z", false));
    }

    #[test]
    fn a_requirement_as_json_reads_as_the_typed_one() {
        // keys out of order; a stamp that is not a string counts as none,
        // so 7.0 lies between 6.5 and 7.2
        let j = obj(json!({"7.2": "20300101T000000Z", "6.5": "20300101T000000Z", "7.0": 7}));
        assert!(platform_ok(&j, "7.0", "20200101T000000Z", true));
        assert!(!platform_ok(&j, "6.4", "20400101T000000Z", true));
        assert!(!platform_ok(&j, "7.2", "20200101T000000Z", true));
        let j = obj(json!({"7.0": "20260101T000000Z"}));
        assert!(!platform_ok(&j, "7.0", "20250910T000000Z", true));
        assert!(platform_ok(&j, "7.0", "20260101T000000Z", true));
    }

    #[test]
    fn traits_by_key_set() {
        assert!(traits_ok(
            &obj(json!({"builder": true})),
            &obj(json!({"builder": true}))
        ));
        assert!(traits_ok(&obj(json!({})), &obj(json!({}))));
        assert!(!traits_ok(&obj(json!({})), &obj(json!({"builder": true}))));
        assert!(!traits_ok(&obj(json!({"builder": true})), &obj(json!({}))));
        assert!(!traits_ok(
            &obj(json!({"builder": true})),
            &obj(json!({"builder": true, "ssd": true}))
        ));
        assert!(traits_ok(
            &obj(json!({"hw": ["a", "b"]})),
            &obj(json!({"hw": "b"}))
        ));
        assert!(traits_ok(
            &obj(json!({"hw": "b"})),
            &obj(json!({"hw": ["a", "b"]}))
        ));
        assert!(!traits_ok(
            &obj(json!({"builder": true})),
            &obj(json!({"builder": false}))
        ));
    }
}
