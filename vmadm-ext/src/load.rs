//! Zone XML -> the part of the VM object vmadm loads from it
//! (vmload-xml's `getVmobjXML`), driven by the table's XML map.

use std::sync::OnceLock;

use base64::Engine as _;
use brand::xml::{Document, Element, XmlError};
use serde_json::{Map, Value};

use crate::jsval;
use crate::table::{Table, XmlProperty};

/// A zone XML file vmadm could not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The text is not XML; `message` is what expat would say.
    #[error("{message}")]
    Parse {
        code: &'static str,
        message: String,
        detail: String,
    },
    /// The file has no brand (vmadm asserts on this).
    #[error("VM missing brand: {0}")]
    MissingBrand(String),
}

impl LoadError {
    /// `{code, message}` as vmadm's test compares them.
    pub fn to_json(&self) -> Value {
        match self {
            LoadError::Parse { code, message, .. } => {
                serde_json::json!({"code": code, "message": message})
            }
            LoadError::MissingBrand(m) => {
                serde_json::json!({"code": "MISSING_BRAND", "message": format!("VM missing brand: {m}")})
            }
        }
    }
}

/// The expat message for the kind of syntax error our parser reports.
fn expat_message(e: &XmlError) -> String {
    let d = e.to_string();
    let m = if d.contains("text outside the root") || d.contains("CDATA outside") {
        "syntax error"
    } else if d.contains("no root element") || d.contains("unexpected end of document") {
        "no element found"
    } else if d.contains("more than one root") {
        "junk after document element"
    } else if d.contains("unmatched end tag")
        || d.contains("EndEventMismatch")
        || d.contains("mismatch")
    {
        "mismatched tag"
    } else if d.contains("given twice") {
        "duplicate attribute"
    } else if d.contains("nested deeper than") {
        // expat has no limit; ours keeps hostile files from the stack
        return format!(
            "elements nested deeper than {} levels",
            brand::xml::MAX_DEPTH
        );
    } else {
        "not well-formed (invalid token)"
    };
    m.to_string()
}

fn xml_map() -> &'static std::collections::BTreeMap<String, XmlProperty> {
    static M: OnceLock<std::collections::BTreeMap<String, XmlProperty>> = OnceLock::new();
    M.get_or_init(|| Table::get().xml_properties())
}

/// Apply a `loadValueTranslator`.
pub fn translate(load: Option<&str>, v: &str) -> Value {
    let num = |s: &str| {
        let n = jsval::number_from_str(s);
        if n.is_nan() {
            Value::String(s.to_string())
        } else {
            jsval::json_number(n)
        }
    };
    match load {
        Some("unbase64") => {
            // node's Buffer decoding is lenient: skip foreign characters,
            // ignore padding, drop a dangling 6-bit group.
            use base64::engine::{
                general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig,
            };
            const LENIENT: GeneralPurpose = GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                    .with_decode_allow_trailing_bits(true),
            );
            let mut cleaned: String = v
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
                .collect();
            if cleaned.len() % 4 == 1 {
                cleaned.pop();
            }
            let bytes = LENIENT.decode(cleaned.as_bytes()).unwrap_or_default();
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        Some("fixBoolean") => match v {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(v.to_string()),
        },
        Some("numberify") => num(v),
        Some("unmangleMem") => {
            let n = jsval::number_from_str(v);
            if n.is_nan() {
                Value::String(v.to_string())
            } else {
                jsval::json_number(n / 1_048_576.0)
            }
        }
        Some("separateCommas") => {
            Value::Array(v.split(',').map(|s| Value::String(s.to_string())).collect())
        }
        Some("separateCommasAndNumberify") => Value::Array(v.split(',').map(num).collect()),
        _ => Value::String(v.to_string()),
    }
}

fn transform(key: &str, value: &str) -> Option<(String, Value)> {
    let x = xml_map().get(key)?;
    if x.ignore {
        return None;
    }
    Some((x.vmobj_key.clone(), translate(x.load.as_deref(), value)))
}

fn attrs_into(prefix: &str, el: &Element, obj: &mut Map<String, Value>) {
    for (k, v) in &el.attrs {
        if let Some((key, val)) = transform(&format!("{prefix}.{k}"), v) {
            obj.insert(key, val);
        }
    }
}

fn net_attrs_into(prefix: &str, el: &Element, obj: &mut Map<String, Value>) {
    for na in el.elements_named("net-attr") {
        let (Some(n), Some(v)) = (na.attr("name"), na.attr("value")) else {
            continue;
        };
        if let Some((key, val)) = transform(&format!("{prefix}.net-attr.{n}"), v) {
            obj.insert(key, val);
        }
    }
}

fn index_of(v: &Value, field: &str, re: &regex::Regex) -> f64 {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| re.captures(s))
        .map(|c| jsval::number_from_str(&c[1]))
        .filter(|n| !n.is_nan())
        .unwrap_or(0.0)
}

fn index_sort(list: &mut Value, field: &str, re: &regex::Regex) {
    if let Value::Array(a) = list {
        if a.len() < 2 {
            return;
        }
        a.sort_by(|x, y| {
            index_of(x, field, re)
                .partial_cmp(&index_of(y, field, re))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
}

fn sort_patterns() -> &'static [regex::Regex; 3] {
    static R: OnceLock<[regex::Regex; 3]> = OnceLock::new();
    R.get_or_init(|| {
        [r"^.*disk(\d+)$", r"^net(\d+)$", r"^(.*)$"]
            .map(|p| regex::Regex::new(p).expect("static pattern"))
    })
}

/// Load the VM object fields of a zone XML text.
pub fn vmobj_from_xml(text: &str) -> Result<Map<String, Value>, LoadError> {
    let table = Table::get();
    let doc = Document::parse(text).map_err(|e| LoadError::Parse {
        code: "PARSE_ERROR",
        message: expat_message(&e),
        detail: e.to_string(),
    })?;
    let mut obj = Map::new();
    let zone = &doc.root;
    if zone.name == "zone" {
        attrs_into("zone", zone, &mut obj);
        for el in zone.elements() {
            match el.name.as_str() {
                "attr" => {
                    if let (Some(n), Some(v)) = (el.attr("name"), el.attr("value")) {
                        if let Some((k, val)) = transform(&format!("zone.attr.{n}"), v) {
                            obj.insert(k, val);
                        }
                    }
                }
                "dataset" => {
                    let list = obj
                        .entry("datasets")
                        .or_insert_with(|| Value::Array(vec![]));
                    if let Value::Array(a) = list {
                        a.push(el.attr("name").map(Value::from).unwrap_or(Value::Null));
                    }
                }
                "device" | "filesystem" | "network" => {
                    let (list_key, prefix) = match el.name.as_str() {
                        "device" => ("disks", "zone.device"),
                        "filesystem" => ("filesystems", "zone.filesystem"),
                        _ => ("nics", "zone.network"),
                    };
                    let mut item = Map::new();
                    attrs_into(prefix, el, &mut item);
                    if el.name == "filesystem" {
                        let opts: Vec<Value> = el
                            .elements_named("fsoption")
                            .filter_map(|o| o.attr("name"))
                            .map(Value::from)
                            .collect();
                        if !opts.is_empty() {
                            item.insert("options".into(), Value::Array(opts));
                        }
                    } else {
                        net_attrs_into(prefix, el, &mut item);
                    }
                    let list = obj.entry(list_key).or_insert_with(|| Value::Array(vec![]));
                    if let Value::Array(a) = list {
                        a.push(Value::Object(item));
                    }
                }
                "rctl" => {
                    let Some(name) = el.attr("name") else {
                        continue;
                    };
                    for rv in el.elements_named("rctl-value") {
                        let key = format!(
                            "zone.rctl.{name}.{}.{}",
                            rv.attr("priv").unwrap_or("undefined"),
                            rv.attr("action").unwrap_or("undefined")
                        );
                        if let Some((k, val)) =
                            transform(&key, rv.attr("limit").unwrap_or("undefined"))
                        {
                            obj.insert(k, val);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let brand = match obj.get("brand") {
        Some(Value::String(b)) if !b.is_empty() => b.clone(),
        _ => return Err(LoadError::MissingBrand(Value::Object(obj).to_string())),
    };
    // an unknown brand is read as joyent
    let b = table
        .brand(&brand)
        .or_else(|| table.brand("joyent"))
        .expect("joyent is in the table");
    if !obj.contains_key("nics") {
        obj.insert("nics".into(), Value::Array(vec![]));
    }
    if !obj.contains_key("disks") && !table.allowed_actions(&b.name, "disks").is_empty() {
        obj.insert("disks".into(), Value::Array(vec![]));
    }
    if b.feature_bool("use_vm_autoboot") {
        let v = obj.remove("vm_autoboot").unwrap_or(Value::Null);
        if v.is_null() {
            obj.remove("autoboot");
        } else {
            obj.insert("autoboot".into(), v);
        }
    }
    if let Some(Value::String(t)) = obj.get("transition").cloned() {
        let fields: Vec<&str> = t.trim_end().split(':').collect();
        if fields.len() == 3 {
            obj.remove("transition");
            obj.insert("state".into(), Value::from(fields[0]));
            obj.insert("transition_to".into(), Value::from(fields[1]));
            obj.insert(
                "transition_expire".into(),
                jsval::json_number(jsval::number_from_str(fields[2])),
            );
        }
    }
    let [disk_re, nic_re, fs_re] = sort_patterns();
    if let Some(d) = obj.get_mut("disks") {
        index_sort(d, "path", disk_re);
    }
    if let Some(n) = obj.get_mut("nics") {
        index_sort(n, "interface", nic_re);
    }
    if let Some(f) = obj.get_mut("filesystems") {
        index_sort(f, "target", fs_re);
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn translators() {
        assert_eq!(
            translate(Some("unbase64"), "Y2xvdWQtaW1hZ2UtYnVpbGRlcg=="),
            json!("cloud-image-builder")
        );
        assert_eq!(
            translate(Some("unbase64"), "dGhlIHdvcmtz"),
            json!("the works")
        );
        assert_eq!(translate(Some("unmangleMem"), "2415919104"), json!(2304));
        assert_eq!(translate(Some("numberify"), "x"), json!("x"));
        assert_eq!(
            translate(Some("separateCommasAndNumberify"), "25,587"),
            json!([25, 587])
        );
        assert_eq!(translate(Some("fixBoolean"), "true"), json!(true));
    }

    #[test]
    fn garbage_fails_like_expat() {
        let e = vmobj_from_xml("GARBAGE\n").unwrap_err();
        assert_eq!(
            e.to_json(),
            json!({"code": "PARSE_ERROR", "message": "syntax error"})
        );
        assert!(matches!(
            vmobj_from_xml("<zone name=\"x\"/>"),
            Err(LoadError::MissingBrand(_))
        ));
    }

    #[test]
    fn unknown_brand_reads_as_joyent_and_unknown_attrs_are_skipped() {
        let o = vmobj_from_xml("<zone name=\"z\" brand=\"future\"><attr name=\"nope\" value=\"1\"/><device match=\"/dev/viona\"/></zone>").unwrap();
        assert_eq!(
            Value::Object(o),
            json!({"zonename": "z", "brand": "future", "disks": [{"path": "/dev/viona"}], "nics": []})
        );
    }
}
