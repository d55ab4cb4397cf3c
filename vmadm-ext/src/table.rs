//! vmadm's property table as data.
//!
//! The table is `data/proptable.json`, generated from the facts of
//! smartos-live's `proptable.js` (see `data/gen-proptable.py`). A brand that
//! vmadm treats exactly like another one is a single `"same_as"` entry
//! (`builder` is `joyent`), so adding such a brand is a data change only.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The embedded table text.
pub const TABLE_JSON: &str = include_str!("../data/proptable.json");

/// Payload actions of the table.
pub const ACTIONS: &[&str] = &["create", "receive", "update", "add"];

/// One property of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    /// Payload type, when the property is accepted in payloads.
    pub ptype: Option<String>,
    /// brand -> actions (brands written with `same_as` are resolved).
    pub allowed: BTreeMap<String, Vec<String>>,
    pub required: BTreeMap<String, Vec<String>>,
    pub check_as: Option<String>,
    pub default: Option<Value>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub keep_zero: bool,
    /// `valueValidator` without the `utils.` prefix.
    pub validator: Option<String>,
    /// Zone XML key (`zone.attr.alias`, ...).
    pub zonexml: Option<String>,
    /// `loadValueTranslator` without the `utils.` prefix.
    pub load: Option<String>,
    pub ignore: bool,
    pub flattenable: Option<String>,
}

/// A brand: whether it is HVM and its feature table.
#[derive(Debug, Clone, PartialEq)]
pub struct Brand {
    pub name: String,
    /// The brand whose facts this one shares, if written as `same_as`.
    pub same_as: Option<String>,
    pub hvm: bool,
    pub features: Map<String, Value>,
}

impl Brand {
    /// `features.type` (`OS`, `BHYVE`, `KVM`, `LX`).
    pub fn vm_type(&self) -> &str {
        self.features
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("OS")
    }
    pub fn feature(&self, k: &str) -> Option<&Value> {
        self.features.get(k)
    }
    pub fn feature_bool(&self, k: &str) -> bool {
        self.features
            .get(k)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// One entry of the XML -> VM object map (vmadm's XML_PROPERTIES).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlProperty {
    pub property: String,
    pub vmobj_key: String,
    pub ignore: bool,
    pub load: Option<String>,
}

/// A `vmadm list` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListField {
    pub header: String,
    pub width: usize,
}

/// The whole table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Properties in table (alphabetical) order.
    pub properties: Vec<Property>,
    index: BTreeMap<String, usize>,
    pub brands: BTreeMap<String, Brand>,
    pub defaults: Map<String, Value>,
    pub list_default_order: String,
    pub list_default_sort: String,
    pub list_fields: BTreeMap<String, ListField>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn brand_map(
    v: Option<&Value>,
    aliases: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if let Some(o) = v.and_then(Value::as_object) {
        for (b, a) in o {
            out.insert(b.clone(), strings(a));
        }
    }
    for (b, base) in aliases {
        if let Some(a) = out.get(base).cloned() {
            out.insert(b.clone(), a);
        }
    }
    out
}

impl Table {
    /// Parse a table in the format of `data/proptable.json`.
    pub fn parse(text: &str) -> Result<Table, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let brands_v = v
            .get("brands")
            .and_then(Value::as_object)
            .ok_or("table has no brands")?;
        let mut aliases = BTreeMap::new();
        for (name, b) in brands_v {
            if let Some(base) = b.get("same_as").and_then(Value::as_str) {
                aliases.insert(name.clone(), base.to_string());
            }
        }
        let mut brands = BTreeMap::new();
        for (name, b) in brands_v {
            let (src, same_as) = match aliases.get(name) {
                Some(base) => (
                    brands_v
                        .get(base)
                        .ok_or_else(|| format!("brand {name}: same_as unknown brand {base}"))?,
                    Some(base.clone()),
                ),
                None => (b, None),
            };
            if src.get("same_as").is_some() {
                return Err(format!("brand {name}: same_as chains are not supported"));
            }
            brands.insert(
                name.clone(),
                Brand {
                    name: name.clone(),
                    same_as,
                    hvm: src.get("hvm").and_then(Value::as_bool).unwrap_or(false),
                    features: src
                        .get("features")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                },
            );
        }
        let mut properties = Vec::new();
        let mut index = BTreeMap::new();
        for (name, p) in v
            .get("properties")
            .and_then(Value::as_object)
            .ok_or("table has no properties")?
        {
            let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
            index.insert(name.clone(), properties.len());
            properties.push(Property {
                name: name.clone(),
                ptype: s("type"),
                allowed: brand_map(p.get("allowed"), &aliases),
                required: brand_map(p.get("required"), &aliases),
                check_as: s("check_as"),
                default: p.get("default").cloned(),
                min: p.get("min").and_then(Value::as_f64),
                max: p.get("max").and_then(Value::as_f64),
                keep_zero: p.get("keep_zero").and_then(Value::as_bool).unwrap_or(false),
                validator: s("validator"),
                zonexml: s("zonexml"),
                load: s("load"),
                ignore: p.get("ignore").and_then(Value::as_bool).unwrap_or(false),
                flattenable: s("flattenable"),
            });
        }
        let list = v.get("list").ok_or("table has no list section")?;
        let mut list_fields = BTreeMap::new();
        for (k, f) in list
            .get("fields")
            .and_then(Value::as_object)
            .ok_or("list has no fields")?
        {
            list_fields.insert(
                k.clone(),
                ListField {
                    header: f[0].as_str().unwrap_or_default().to_string(),
                    width: f[1].as_u64().unwrap_or(0) as usize,
                },
            );
        }
        Ok(Table {
            properties,
            index,
            brands,
            defaults: v
                .get("defaults")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            list_default_order: list["default_order"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            list_default_sort: list["default_sort"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            list_fields,
        })
    }

    /// The embedded table (parsed once).
    /// The embedded table, with every brand of the one brand registry
    /// (`brand::registry`) that is written as `same_as` another.
    pub fn get() -> &'static Table {
        static T: OnceLock<Table> = OnceLock::new();
        T.get_or_init(|| {
            let mut t = Table::parse(TABLE_JSON).expect("embedded property table parses");
            for (name, base) in brand::registry::aliases() {
                t.add_alias(name, base)
                    .expect("registry same_as rows name table brands");
            }
            t
        })
    }

    /// Add `name` as a brand vmadm treats exactly like `base` (its features
    /// and every property's allowed and required actions). A brand the
    /// table already has is left as it is.
    pub fn add_alias(&mut self, name: &str, base: &str) -> Result<(), String> {
        if self.brands.contains_key(name) {
            return Ok(());
        }
        let b = self
            .brands
            .get(base)
            .ok_or_else(|| format!("brand {name}: same_as unknown brand {base}"))?;
        if b.same_as.is_some() {
            return Err(format!("brand {name}: same_as chains are not supported"));
        }
        let nb = Brand {
            name: name.to_string(),
            same_as: Some(base.to_string()),
            ..b.clone()
        };
        self.brands.insert(name.to_string(), nb);
        for p in &mut self.properties {
            for m in [&mut p.allowed, &mut p.required] {
                if let Some(a) = m.get(base).cloned() {
                    m.insert(name.to_string(), a);
                }
            }
        }
        Ok(())
    }

    pub fn property(&self, name: &str) -> Option<&Property> {
        self.index.get(name).map(|i| &self.properties[*i])
    }

    pub fn brand(&self, name: &str) -> Option<&Brand> {
        self.brands.get(name)
    }

    pub fn brand_names(&self) -> impl Iterator<Item = &str> {
        self.brands.keys().map(String::as_str)
    }

    /// Actions for which `brand` accepts `prop` in a payload (empty when none).
    pub fn allowed_actions(&self, brand: &str, prop: &str) -> &[String] {
        self.property(prop)
            .and_then(|p| p.allowed.get(brand))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn is_allowed(&self, brand: &str, prop: &str, action: &str) -> bool {
        self.allowed_actions(brand, prop)
            .iter()
            .any(|a| a == action)
    }

    /// vmadm's `allowed_properties` for a brand: property -> actions.
    pub fn allowed_properties(&self, brand: &str) -> BTreeMap<String, Vec<String>> {
        self.properties
            .iter()
            .filter_map(|p| p.allowed.get(brand).map(|a| (p.name.clone(), a.clone())))
            .collect()
    }

    /// vmadm's `required_properties` for a brand.
    pub fn required_properties(&self, brand: &str) -> BTreeMap<String, Vec<String>> {
        self.properties
            .iter()
            .filter_map(|p| p.required.get(brand).map(|a| (p.name.clone(), a.clone())))
            .collect()
    }

    /// vmadm's XML_PROPERTIES: zone XML key -> property, as expander.js
    /// builds it (later properties win on a shared key).
    pub fn xml_properties(&self) -> BTreeMap<String, XmlProperty> {
        let mut m = BTreeMap::new();
        for p in &self.properties {
            if let Some(x) = &p.zonexml {
                let key = p.name.rsplit('.').next().unwrap_or(&p.name).to_string();
                m.insert(
                    x.clone(),
                    XmlProperty {
                        property: p.name.clone(),
                        vmobj_key: key,
                        ignore: p.ignore,
                        load: p.load.clone(),
                    },
                );
            }
        }
        m
    }

    pub fn default_i64(&self, k: &str) -> i64 {
        self.defaults.get(k).and_then(Value::as_i64).unwrap_or(0)
    }
    pub fn default_str(&self, k: &str) -> &str {
        self.defaults
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_is_joyent() {
        let t = Table::get();
        let b = t.brand("builder").unwrap();
        assert_eq!(b.same_as.as_deref(), Some("joyent"));
        assert_eq!(b.features, t.brand("joyent").unwrap().features);
        assert_eq!(
            t.allowed_properties("builder"),
            t.allowed_properties("joyent")
        );
        assert!(!t.is_allowed("builder", "disks", "create"));
        assert!(t.is_allowed("builder", "ram", "create"));
        assert_eq!(
            t.required_properties("builder").keys().collect::<Vec<_>>(),
            ["brand", "image_uuid"]
        );
    }

    #[test]
    fn a_new_alias_brand_is_a_data_change() {
        let mut v: Value = serde_json::from_str(TABLE_JSON).unwrap();
        v["brands"]["builder2"] = serde_json::json!({"same_as": "joyent"});
        let t = Table::parse(&v.to_string()).unwrap();
        assert_eq!(
            t.allowed_properties("builder2"),
            t.allowed_properties("joyent")
        );
        assert_eq!(t.brand("builder2").unwrap().vm_type(), "OS");
        v["brands"]["x"] = serde_json::json!({"same_as": "nope"});
        assert!(Table::parse(&v.to_string()).is_err());
    }
}
