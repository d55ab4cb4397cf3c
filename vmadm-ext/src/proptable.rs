//! The property table's JSON form (`data/proptable.json`), read and checked.
//!
//! The build script compiles the embedded table into static data with this
//! reader (so no process parses JSON to get its table), and
//! [`crate::table::Table::parse`] uses it for a table given as text. One
//! reader keeps the two the same.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A brand with its facts resolved (`same_as` copied from the base).
#[derive(Debug, Clone, PartialEq)]
pub struct BrandRow {
    pub name: String,
    pub same_as: Option<String>,
    pub hvm: bool,
    pub features: Map<String, Value>,
}

/// One property, with brand -> actions maps sorted by brand.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyRow {
    pub name: String,
    pub ptype: Option<String>,
    pub allowed: Vec<(String, Vec<String>)>,
    pub required: Vec<(String, Vec<String>)>,
    pub check_as: Option<String>,
    pub default: Option<Value>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub keep_zero: bool,
    pub validator: Option<String>,
    pub zonexml: Option<String>,
    pub load: Option<String>,
    pub ignore: bool,
    pub flattenable: Option<String>,
}

/// One `vmadm list` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFieldRow {
    pub name: String,
    pub header: String,
    pub width: usize,
}

/// One zone XML key -> VM object entry (vmadm's XML_PROPERTIES).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlRow {
    pub key: String,
    pub property: String,
    pub vmobj_key: String,
    pub ignore: bool,
    pub load: Option<String>,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Sorted by name.
    pub brands: Vec<BrandRow>,
    /// In file (table) order.
    pub properties: Vec<PropertyRow>,
    pub defaults: Map<String, Value>,
    pub list_default_order: String,
    pub list_default_sort: String,
    /// Sorted by name.
    pub list_fields: Vec<ListFieldRow>,
    /// Sorted by key; a later property wins a shared key, as in expander.js.
    pub xml: Vec<XmlRow>,
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

/// brand -> actions, with every `same_as` brand given its base's entry.
fn brand_map(v: Option<&Value>, aliases: &BTreeMap<String, String>) -> Vec<(String, Vec<String>)> {
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
    out.into_iter().collect()
}

/// Read a table in the format of `data/proptable.json`.
pub fn parse(text: &str) -> Result<Rows, String> {
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
            BrandRow {
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
    let mut properties: Vec<PropertyRow> = Vec::new();
    for (name, p) in v
        .get("properties")
        .and_then(Value::as_object)
        .ok_or("table has no properties")?
    {
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
        properties.push(PropertyRow {
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
    let mut list_fields = Vec::new();
    for (k, f) in list
        .get("fields")
        .and_then(Value::as_object)
        .ok_or("list has no fields")?
    {
        list_fields.push(ListFieldRow {
            name: k.clone(),
            header: f[0].as_str().unwrap_or_default().to_string(),
            width: f[1].as_u64().unwrap_or(0) as usize,
        });
    }
    list_fields.sort_by(|a, b| a.name.cmp(&b.name));
    let mut xml = BTreeMap::new();
    for p in &properties {
        if let Some(x) = &p.zonexml {
            let key = p.name.rsplit('.').next().unwrap_or(&p.name).to_string();
            xml.insert(
                x.clone(),
                XmlRow {
                    key: x.clone(),
                    property: p.name.clone(),
                    vmobj_key: key,
                    ignore: p.ignore,
                    load: p.load.clone(),
                },
            );
        }
    }
    Ok(Rows {
        brands: brands.into_values().collect(),
        properties,
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
        xml: xml.into_values().collect(),
    })
}
