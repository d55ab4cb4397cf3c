//! `vmadm validate`: VM.validate's checks, in vmadm's order, with its type
//! rules and result object.

use serde_json::{json, Map, Value};

use crate::host::NodeFacts;
use crate::jsval;
use crate::quote;
use crate::table::{Property, Table};

/// Why a payload is not valid, in the shape vmadm prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The brand is not in the table (a missing brand is `undefined`).
    #[error("bad brand {0}")]
    BadBrand(String),
    #[error("invalid payload: bad values {bad_values:?}, bad properties {bad_properties:?}, missing {missing_properties:?}")]
    Lists {
        bad_values: Vec<String>,
        bad_properties: Vec<String>,
        missing_properties: Vec<String>,
    },
}

impl Invalid {
    /// The object vmadm prints (`{bad_brand}` or the three lists).
    pub fn to_json(&self) -> Value {
        match self {
            Invalid::BadBrand(b) => json!({ "bad_brand": b }),
            Invalid::Lists {
                bad_values,
                bad_properties,
                missing_properties,
            } => json!({
                "bad_values": bad_values,
                "bad_properties": bad_properties,
                "missing_properties": missing_properties,
            }),
        }
    }

    /// vmadm's rendering: `JSON.stringify(e, null, 2)`.
    pub fn render(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
    }
}

/// A successful validation may still carry deprecation warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validated {
    pub warnings: Vec<String>,
}

/// The success line vmadm prints.
pub fn valid_line(action: &str, brand: &str) -> String {
    format!("VALID '{action}' payload for {brand} brand VMs.")
}

/// `valueValidator` functions named in the table.
pub fn value_valid(validator: &str, v: &str) -> bool {
    match validator {
        "validResolver" => v.parse::<std::net::IpAddr>().is_ok(),
        "validMacAddress" => {
            let parts: Vec<&str> = v.split(':').collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| (1..=2).contains(&p.len()) && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "validCID" => {
            let h = v
                .strip_prefix("0x")
                .or_else(|| v.strip_prefix("0X"))
                .unwrap_or(v);
            (2..=510).contains(&h.len())
                && h.len() & 1 == 0
                && h.chars().all(|c| c.is_ascii_hexdigit())
        }
        "validAttrValue" => {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        }
        "validBhyveSectSize" => {
            let parts: Vec<&str> = v.split('/').collect();
            parts.len() <= 2
                && parts.iter().all(|p| {
                    p.parse::<u32>()
                        .is_ok_and(|n| n.is_power_of_two() && (512..=16384).contains(&n))
                })
        }
        _ => true,
    }
}

use common::uuid::is_uuid;

fn blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// A value that is not valid for its property's payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadValue;

/// Check one value against a property's payload type. `Some(warning)` in
/// the Ok case carries a deprecation warning.
pub fn check_value(p: &Property, v: &Value, pools: &[String]) -> Result<Option<String>, BadValue> {
    let Some(t) = p.ptype else {
        return Ok(None);
    };
    // vmadm's own validator, then the rule for text that reaches zonecfg
    // or a command line (see [`crate::quote`]).
    let rule = quote::property_rule(p.name, p.zonexml.is_some());
    let validator = |s: &str| {
        p.validator.map(|f| value_valid(f, s)).unwrap_or(true)
            && rule.is_none_or(|r| quote::rule_ok(r, s))
    };
    match t {
        "uuid" => match v {
            Value::String(s) if is_uuid(s) => Ok(None),
            _ => Err(BadValue),
        },
        "boolean" => match v {
            Value::Bool(_) => Ok(None),
            Value::String(s) if s == "true" || s == "false" => Ok(None),
            Value::String(s) if s == "1" => Ok(Some(format!(
                "{}: use true instead of \"1\" (deprecated)",
                p.name
            ))),
            Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Some(format!(
                "{}: use true instead of 1 (deprecated)",
                p.name
            ))),
            _ => Err(BadValue),
        },
        "string" => {
            if blank(v) {
                // blank means unset, but a line break is never harmless text
                let unsafe_blank = v
                    .as_str()
                    .is_some_and(|s| rule.is_some() && s.chars().any(|c| c.is_control()));
                return if unsafe_blank {
                    Err(BadValue)
                } else {
                    Ok(None)
                };
            }
            match v {
                Value::String(s) if validator(s) => Ok(None),
                _ => Err(BadValue),
            }
        }
        "integer" => {
            if blank(v) {
                return Ok(None);
            }
            if v.is_boolean() {
                return Err(BadValue);
            }
            let n = jsval::number(v);
            if n.is_nan() || n.fract() != 0.0 {
                return Err(BadValue);
            }
            if p.min.is_some_and(|m| n < m) || p.max.is_some_and(|m| n > m) {
                return Err(BadValue);
            }
            Ok(None)
        }
        "zpool" => match v {
            Value::String(s) if pools.iter().any(|x| x == s) => Ok(None),
            _ => Err(BadValue),
        },
        "flat-object" => match v {
            Value::Object(o)
                if o.values()
                    .all(|x| x.is_string() || x.is_number() || x.is_boolean()) =>
            {
                Ok(None)
            }
            _ => Err(BadValue),
        },
        "list" => match v {
            Value::String(s) => {
                if s.split(',').filter(|x| !x.is_empty()).all(validator) {
                    Ok(None)
                } else {
                    Err(BadValue)
                }
            }
            Value::Array(a) => {
                for x in a {
                    let s = match x {
                        Value::String(s) => s.clone(),
                        Value::Number(_) => jsval::to_string(x),
                        _ => return Err(BadValue),
                    };
                    if s.contains(',') || !validator(&s) {
                        return Err(BadValue);
                    }
                }
                Ok(None)
            }
            _ => Err(BadValue),
        },
        "object-array" => match v {
            Value::Array(a) if a.iter().all(Value::is_object) => Ok(None),
            _ => Err(BadValue),
        },
        _ => Ok(None),
    }
}

fn push(list: &mut Vec<String>, s: String) {
    if !list.contains(&s) {
        list.push(s);
    }
}

/// VM.validate(brand, action, payload). `brand` is `None` when the payload
/// has none (vmadm then looks up the string `undefined`).
pub fn validate(
    table: &Table,
    brand: Option<&str>,
    action: &str,
    payload: &Map<String, Value>,
    host: &dyn NodeFacts,
) -> Result<Validated, Invalid> {
    let brand_name = brand.unwrap_or("undefined");
    let Some(b) = table.brand(brand_name) else {
        return Err(Invalid::BadBrand(brand_name.to_string()));
    };
    // The image query depends on the payload only, so it is asked together
    // with the pools.
    let image_query = match payload.get("image_uuid") {
        Some(Value::String(img)) if is_uuid(img) => Some((
            payload
                .get("zpool")
                .and_then(Value::as_str)
                .unwrap_or("zones"),
            img.as_str(),
        )),
        _ => None,
    };
    let (pools, image_type) = host.pools_and_image_type(image_query);
    let mut bad_values = Vec::new();
    let mut bad_properties = Vec::new();
    let mut missing = Vec::new();
    let mut warnings = Vec::new();

    for (key, value) in payload {
        if !table.is_allowed(&b.name, key, action) {
            push(&mut bad_properties, key.clone());
        }
        let Some(p) = table.property(key) else {
            continue;
        };
        match check_value(p, value, &pools) {
            Ok(Some(w)) => warnings.push(w),
            Ok(None) => {}
            Err(BadValue) => push(&mut bad_values, key.clone()),
        }
        if p.ptype == Some("object-array") {
            let Value::Array(items) = value else { continue };
            let base = p.check_as.unwrap_or(key);
            let sub_action = if key.starts_with("update_") {
                "update"
            } else {
                "add"
            };
            for item in items {
                let Value::Object(o) = item else { continue };
                for (k, v) in o {
                    let sub = format!("{base}.*.{k}");
                    if !table.is_allowed(&b.name, &sub, sub_action) {
                        push(&mut bad_properties, sub.clone());
                    }
                    if let Some(sp) = table.property(&sub) {
                        match check_value(sp, v, &pools) {
                            Ok(Some(w)) => warnings.push(w),
                            Ok(None) => {}
                            Err(BadValue) => push(&mut bad_values, sub),
                        }
                    }
                }
            }
        }
    }

    for (prop, actions) in table.required_rows(&b.name) {
        if actions.contains(&action) && !payload.contains_key(prop) {
            missing.push(prop.to_string());
        }
    }

    if let Some(image_type) = image_type {
        let types: Vec<String> = b
            .feature("zoneroot_image_types")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let ok = match image_type {
            Ok(t) => b.hvm || types.contains(&t),
            Err(_) => false,
        };
        if !ok {
            push(&mut bad_values, "image_uuid".into());
        }
    }

    if bad_values.is_empty() && bad_properties.is_empty() && missing.is_empty() {
        Ok(Validated { warnings })
    } else {
        Err(Invalid::Lists {
            bad_values,
            bad_properties,
            missing_properties: missing,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A host with fixed pools and images.
    pub struct FakeHost {
        pub pools: Vec<String>,
        pub images: Vec<(String, String)>,
    }

    impl NodeFacts for FakeHost {
        fn pools(&self) -> Vec<String> {
            self.pools.clone()
        }
        fn image_type(&self, _pool: &str, uuid: &str) -> Result<String, String> {
            self.images
                .iter()
                .find(|(u, _)| u == uuid)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| "no image".into())
        }
    }

    pub const IMG: &str = "e44ed3e0-910b-11ed-a5d4-00151714048c";

    pub fn host() -> FakeHost {
        FakeHost {
            pools: vec!["zones".into()],
            images: vec![(IMG.into(), "zone-dataset".into())],
        }
    }

    fn v(brand: Option<&str>, action: &str, p: Value) -> Result<Validated, Invalid> {
        validate(Table::get(), brand, action, p.as_object().unwrap(), &host())
    }

    fn lists(r: Result<Validated, Invalid>) -> (Vec<String>, Vec<String>, Vec<String>) {
        match r {
            Err(Invalid::Lists {
                bad_values,
                bad_properties,
                missing_properties,
            }) => (bad_values, bad_properties, missing_properties),
            other => panic!("expected lists, got {other:?}"),
        }
    }

    #[test]
    fn unknown_and_missing_brand() {
        assert_eq!(
            v(Some("nope"), "create", json!({})),
            Err(Invalid::BadBrand("nope".into()))
        );
        assert_eq!(
            v(None, "create", json!({})).unwrap_err().render(),
            "{\n  \"bad_brand\": \"undefined\"\n}"
        );
    }

    #[test]
    fn type_rules() {
        let base = json!({"brand": "builder", "image_uuid": IMG});
        let with = |k: &str, val: Value| {
            let mut p = base.clone();
            p[k] = val;
            v(Some("builder"), "create", p)
        };
        // integer
        assert!(with("cpu_cap", json!("600")).is_ok());
        assert!(with("cpu_cap", json!("")).is_ok());
        assert!(with("cpu_cap", json!(null)).is_ok());
        assert_eq!(lists(with("cpu_cap", json!(6.5))).0, ["cpu_cap"]);
        assert_eq!(lists(with("cpu_cap", json!("doogle"))).0, ["cpu_cap"]);
        assert_eq!(lists(with("cpu_cap", json!(true))).0, ["cpu_cap"]);
        assert_eq!(lists(with("cpu_cap", json!(-1))).0, ["cpu_cap"]);
        // boolean
        assert!(with("autoboot", json!("false")).is_ok());
        assert_eq!(with("autoboot", json!(1)).unwrap().warnings.len(), 1);
        assert_eq!(lists(with("autoboot", json!("yes"))).0, ["autoboot"]);
        // string
        assert!(with("alias", json!("  ")).is_ok());
        assert_eq!(lists(with("alias", json!(5))).0, ["alias"]);
        // uuid vs string-typed owner_uuid
        assert_eq!(
            lists(with("uuid", json!("ABCDEF00-0000-0000-0000-000000000000"))).0,
            ["uuid"]
        );
        assert!(with("owner_uuid", json!("not-a-uuid")).is_ok());
        // zpool
        assert!(with("zpool", json!("zones")).is_ok());
        assert_eq!(lists(with("zpool", json!("tank"))).0, ["zpool"]);
        // flat-object
        assert!(with("customer_metadata", json!({"a": "b", "n": 1, "t": true})).is_ok());
        assert_eq!(
            lists(with("customer_metadata", json!({"a": {"b": 1}}))).0,
            ["customer_metadata"]
        );
        // list
        assert!(with("resolvers", json!("8.8.8.8,,8.8.4.4")).is_ok());
        assert!(with("resolvers", json!(["8.8.8.8"])).is_ok());
        assert_eq!(
            lists(with("resolvers", json!(["8.8.8.8,1.1.1.1"]))).0,
            ["resolvers"]
        );
        assert_eq!(lists(with("resolvers", json!(["doogle"]))).0, ["resolvers"]);
        assert_eq!(lists(with("resolvers", json!(5))).0, ["resolvers"]);
        // object-array
        assert_eq!(lists(with("nics", json!(["x"]))).0, ["nics"]);
        assert!(with("nics", json!([{"nic_tag": "admin", "ip": "dhcp"}])).is_ok());
    }

    #[test]
    fn properties_not_for_this_brand_or_action() {
        let (bv, bp, miss) = lists(v(
            Some("builder"),
            "create",
            json!({"brand": "builder", "image_uuid": IMG, "vcpus": 2, "disks": [], "bogus": 1,
                   "nics": [{"nic_tag": "admin", "nope": 1, "vlan_id": 5000}]}),
        ));
        assert_eq!(bp, ["vcpus", "disks", "bogus", "nics.*.nope"]);
        assert_eq!(bv, ["nics.*.vlan_id"]);
        assert!(miss.is_empty());
        // ram is an OS zone property too
        assert!(v(
            Some("builder"),
            "create",
            json!({"brand": "builder", "image_uuid": IMG, "ram": 512})
        )
        .is_ok());
    }

    #[test]
    fn a_key_can_be_bad_twice_and_update_takes_the_brand_argument() {
        let (bv, bp, _) = lists(v(Some("builder"), "update", json!({"uuid": "doogle"})));
        assert_eq!(bv, ["uuid"]);
        assert_eq!(bp, ["uuid"]);
        assert!(v(
            Some("builder"),
            "update",
            json!({"add_nics": [{"nic_tag": "admin"}]})
        )
        .is_ok());
        let (_, bp, _) = lists(v(
            Some("builder"),
            "update",
            json!({"update_nics": [{"nic_tag": "x", "zzz": 1}]}),
        ));
        assert_eq!(bp, ["nics.*.zzz"]);
    }

    #[test]
    fn missing_and_unusable_images() {
        let (_, _, miss) = lists(v(Some("builder"), "create", json!({"brand": "builder"})));
        assert_eq!(miss, ["image_uuid"]);
        let other = "11111111-2222-3333-4444-555555555555";
        let (bv, _, _) = lists(v(
            Some("builder"),
            "create",
            json!({"brand": "builder", "image_uuid": other}),
        ));
        assert_eq!(bv, ["image_uuid"]);
        let h = FakeHost {
            pools: vec![],
            images: vec![(other.into(), "lx-dataset".into())],
        };
        let p = json!({"brand": "builder", "image_uuid": other});
        let r = validate(
            Table::get(),
            Some("builder"),
            "create",
            p.as_object().unwrap(),
            &h,
        );
        assert_eq!(lists(r).0, ["image_uuid"]);
    }
}
