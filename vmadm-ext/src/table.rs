//! vmadm's property table as data.
//!
//! The table is `data/proptable.json`, generated from the facts of
//! smartos-live's `proptable.js` (see `data/gen-proptable.py`). The build
//! script compiles it into static data, so [`Table::get`] parses nothing. A
//! brand that vmadm treats exactly like another one is a single `"same_as"`
//! entry (`builder` is `joyent`, from the brand registry), so adding such a
//! brand is a data change only.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::proptable;

/// The table's source text (what the build compiles in).
pub const TABLE_JSON: &str = include_str!("../data/proptable.json");

/// Payload actions of the table.
pub const ACTIONS: &[&str] = &["create", "receive", "update", "add"];

/// A JSON value held as static data (defaults, brand features).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'static str),
    Array(&'static [Json]),
    Object(&'static [(&'static str, Json)]),
}

impl Json {
    /// The same value as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match *self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Int(i) => Value::from(i),
            Json::UInt(u) => Value::from(u),
            Json::Float(f) => Value::from(f),
            Json::Str(s) => Value::from(s),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(o) => Value::Object(object(o)),
        }
    }

    /// Static data for a value (the text it holds lives for the rest of
    /// the process).
    fn leak(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Json::Int(i),
                (None, Some(u)) => Json::UInt(u),
                _ => Json::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => Json::Str(leak_str(s)),
            Value::Array(a) => Json::Array(a.iter().map(Json::leak).collect::<Vec<_>>().leak()),
            Value::Object(o) => Json::Object(leak_pairs(o)),
        }
    }
}

fn object(rows: &[(&str, Json)]) -> Map<String, Value> {
    rows.iter()
        .map(|(k, v)| (k.to_string(), v.to_value()))
        .collect()
}

fn leak_str(s: &str) -> &'static str {
    s.to_string().leak()
}

fn leak_opt(s: &Option<String>) -> Option<&'static str> {
    s.as_deref().map(leak_str)
}

fn leak_pairs(o: &Map<String, Value>) -> &'static [(&'static str, Json)] {
    o.iter()
        .map(|(k, v)| (leak_str(k), Json::leak(v)))
        .collect::<Vec<_>>()
        .leak()
}

fn leak_actions(m: &[(String, Vec<String>)]) -> &'static [(&'static str, &'static [&'static str])] {
    m.iter()
        .map(|(b, a)| {
            let a: &'static [&'static str] =
                a.iter().map(|x| leak_str(x)).collect::<Vec<_>>().leak();
            (leak_str(b), a)
        })
        .collect::<Vec<_>>()
        .leak()
}

/// brand -> actions rows of a property.
pub type BrandActions = &'static [(&'static str, &'static [&'static str])];

fn actions_of(rows: BrandActions, brand: &str) -> Option<&'static [&'static str]> {
    rows.iter().find(|(b, _)| *b == brand).map(|(_, a)| *a)
}

/// One property of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: &'static str,
    /// Payload type, when the property is accepted in payloads.
    pub ptype: Option<&'static str>,
    /// brand -> actions, sorted by brand (brands written with `same_as` in
    /// the table are resolved; registry aliases are resolved by [`Table`]).
    pub allowed: BrandActions,
    pub required: BrandActions,
    pub check_as: Option<&'static str>,
    pub default: Option<Json>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub keep_zero: bool,
    /// `valueValidator` without the `utils.` prefix.
    pub validator: Option<&'static str>,
    /// Zone XML key (`zone.attr.alias`, ...).
    pub zonexml: Option<&'static str>,
    /// `loadValueTranslator` without the `utils.` prefix.
    pub load: Option<&'static str>,
    pub ignore: bool,
    pub flattenable: Option<&'static str>,
}

impl Property {
    /// The payload default, as a JSON value.
    pub fn default_value(&self) -> Option<Value> {
        self.default.map(|d| d.to_value())
    }
}

/// A brand: whether it is HVM and its feature table.
#[derive(Debug, Clone)]
pub struct Brand {
    pub name: String,
    /// The brand whose facts this one shares, if written as `same_as`.
    pub same_as: Option<String>,
    pub hvm: bool,
    /// The brand whose property rows this one uses.
    rows: &'static str,
    feature_rows: &'static [(&'static str, Json)],
    features: OnceLock<Map<String, Value>>,
}

impl PartialEq for Brand {
    fn eq(&self, o: &Brand) -> bool {
        (
            &self.name,
            &self.same_as,
            self.hvm,
            self.rows,
            self.feature_rows,
        ) == (&o.name, &o.same_as, o.hvm, o.rows, o.feature_rows)
    }
}

impl Brand {
    fn feature_row(&self, k: &str) -> Option<Json> {
        self.feature_rows
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| *v)
    }
    /// `features.type` (`OS`, `BHYVE`, `KVM`, `LX`).
    pub fn vm_type(&self) -> &'static str {
        match self.feature_row("type") {
            Some(Json::Str(t)) => t,
            _ => "OS",
        }
    }
    /// The feature table as JSON (built on first use).
    pub fn features(&self) -> &Map<String, Value> {
        self.features.get_or_init(|| object(self.feature_rows))
    }
    pub fn feature(&self, k: &str) -> Option<&Value> {
        self.features().get(k)
    }
    pub fn feature_bool(&self, k: &str) -> bool {
        matches!(self.feature_row(k), Some(Json::Bool(true)))
    }
}

/// One entry of the XML -> VM object map (vmadm's XML_PROPERTIES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlProperty {
    pub property: &'static str,
    pub vmobj_key: &'static str,
    pub ignore: bool,
    pub load: Option<&'static str>,
}

/// A `vmadm list` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListField {
    pub header: Cow<'static, str>,
    pub width: usize,
}

/// A brand row of the compiled table.
#[derive(Debug)]
struct BrandData {
    name: &'static str,
    same_as: Option<&'static str>,
    hvm: bool,
    features: &'static [(&'static str, Json)],
}

/// The compiled table (or one [`Table::parse`] read).
#[derive(Debug)]
struct StaticRows {
    /// In table order.
    properties: &'static [Property],
    /// Property name -> position, sorted by name.
    index: &'static [(&'static str, usize)],
    /// Sorted by name.
    brands: &'static [BrandData],
    defaults: &'static [(&'static str, Json)],
    list_default_order: &'static str,
    list_default_sort: &'static str,
    /// Sorted by name.
    list_fields: &'static [(&'static str, ListField)],
    /// Sorted by zone XML key.
    xml: &'static [(&'static str, XmlProperty)],
}

include!(concat!(env!("OUT_DIR"), "/proptable.rs"));

/// The whole table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Properties in table order.
    pub properties: &'static [Property],
    index: &'static [(&'static str, usize)],
    brands: BTreeMap<String, Brand>,
    default_rows: &'static [(&'static str, Json)],
    defaults: OnceLock<Map<String, Value>>,
    pub list_default_order: &'static str,
    pub list_default_sort: &'static str,
    /// `vmadm list` columns, sorted by name.
    pub list_fields: &'static [(&'static str, ListField)],
    xml: &'static [(&'static str, XmlProperty)],
}

fn find<T>(rows: &'static [(&'static str, T)], k: &str) -> Option<&'static T> {
    rows.binary_search_by(|(n, _)| (*n).cmp(k))
        .ok()
        .map(|i| &rows[i].1)
}

impl Table {
    fn from_rows(r: &'static StaticRows) -> Table {
        let brands = r
            .brands
            .iter()
            .map(|b| {
                (
                    b.name.to_string(),
                    Brand {
                        name: b.name.to_string(),
                        same_as: b.same_as.map(str::to_string),
                        hvm: b.hvm,
                        rows: b.name,
                        feature_rows: b.features,
                        features: OnceLock::new(),
                    },
                )
            })
            .collect();
        Table {
            properties: r.properties,
            index: r.index,
            brands,
            default_rows: r.defaults,
            defaults: OnceLock::new(),
            list_default_order: r.list_default_order,
            list_default_sort: r.list_default_sort,
            list_fields: r.list_fields,
            xml: r.xml,
        }
    }

    /// Read a table in the format of `data/proptable.json` (for tools and
    /// tests; the embedded table is [`Table::get`]). The table's text lives
    /// for the rest of the process.
    pub fn parse(text: &str) -> Result<Table, String> {
        let rows = proptable::parse(text)?;
        let properties: &'static [Property] = rows
            .properties
            .iter()
            .map(|p| Property {
                name: leak_str(&p.name),
                ptype: leak_opt(&p.ptype),
                allowed: leak_actions(&p.allowed),
                required: leak_actions(&p.required),
                check_as: leak_opt(&p.check_as),
                default: p.default.as_ref().map(Json::leak),
                min: p.min,
                max: p.max,
                keep_zero: p.keep_zero,
                validator: leak_opt(&p.validator),
                zonexml: leak_opt(&p.zonexml),
                load: leak_opt(&p.load),
                ignore: p.ignore,
                flattenable: leak_opt(&p.flattenable),
            })
            .collect::<Vec<_>>()
            .leak();
        let mut index: Vec<(&'static str, usize)> = properties
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name, i))
            .collect();
        index.sort();
        let r = StaticRows {
            properties,
            index: index.leak(),
            brands: rows
                .brands
                .iter()
                .map(|b| BrandData {
                    name: leak_str(&b.name),
                    same_as: leak_opt(&b.same_as),
                    hvm: b.hvm,
                    features: leak_pairs(&b.features),
                })
                .collect::<Vec<_>>()
                .leak(),
            defaults: leak_pairs(&rows.defaults),
            list_default_order: leak_str(&rows.list_default_order),
            list_default_sort: leak_str(&rows.list_default_sort),
            list_fields: rows
                .list_fields
                .iter()
                .map(|f| {
                    (
                        leak_str(&f.name),
                        ListField {
                            header: Cow::Borrowed(leak_str(&f.header)),
                            width: f.width,
                        },
                    )
                })
                .collect::<Vec<_>>()
                .leak(),
            xml: rows
                .xml
                .iter()
                .map(|x| {
                    (
                        leak_str(&x.key),
                        XmlProperty {
                            property: leak_str(&x.property),
                            vmobj_key: leak_str(&x.vmobj_key),
                            ignore: x.ignore,
                            load: leak_opt(&x.load),
                        },
                    )
                })
                .collect::<Vec<_>>()
                .leak(),
        };
        Ok(Table::from_rows(Box::leak(Box::new(r))))
    }

    /// The embedded table, with every brand of the one brand registry
    /// (`brand::registry`) that is written as `same_as` another.
    pub fn get() -> &'static Table {
        static T: OnceLock<Table> = OnceLock::new();
        T.get_or_init(|| {
            let mut t = Table::from_rows(&ROWS);
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
            hvm: b.hvm,
            rows: b.rows,
            feature_rows: b.feature_rows,
            features: OnceLock::new(),
        };
        self.brands.insert(name.to_string(), nb);
        Ok(())
    }

    pub fn property(&self, name: &str) -> Option<&'static Property> {
        find(self.index, name).map(|i| &self.properties[*i])
    }

    pub fn brand(&self, name: &str) -> Option<&Brand> {
        self.brands.get(name)
    }

    pub fn brand_names(&self) -> impl Iterator<Item = &str> {
        self.brands.keys().map(String::as_str)
    }

    /// The brand whose property rows `brand` uses.
    fn rows_of<'a>(&'a self, brand: &'a str) -> &'a str {
        self.brands.get(brand).map_or(brand, |b| b.rows)
    }

    /// Actions for which `brand` accepts `prop` in a payload (empty when none).
    pub fn allowed_actions(&self, brand: &str, prop: &str) -> &'static [&'static str] {
        self.property(prop)
            .and_then(|p| actions_of(p.allowed, self.rows_of(brand)))
            .unwrap_or(&[])
    }

    /// Actions for which `brand` requires `prop` in a payload (empty when none).
    pub fn required_actions(&self, brand: &str, prop: &str) -> &'static [&'static str] {
        self.property(prop)
            .and_then(|p| actions_of(p.required, self.rows_of(brand)))
            .unwrap_or(&[])
    }

    pub fn is_allowed(&self, brand: &str, prop: &str, action: &str) -> bool {
        self.allowed_actions(brand, prop).contains(&action)
    }

    /// Properties with their actions from `rows`, sorted by name.
    fn by_name<'a>(
        &'a self,
        brand: &'a str,
        rows: impl Fn(&Property) -> BrandActions + 'a,
    ) -> impl Iterator<Item = (&'static str, &'static [&'static str])> + 'a {
        let b = self.rows_of(brand);
        self.index.iter().filter_map(move |(name, i)| {
            actions_of(rows(&self.properties[*i]), b).map(|a| (*name, a))
        })
    }

    /// vmadm's `allowed_properties` for a brand: property -> actions.
    pub fn allowed_properties(&self, brand: &str) -> BTreeMap<String, Vec<String>> {
        self.by_name(brand, |p| p.allowed)
            .map(|(n, a)| (n.to_string(), a.iter().map(|x| x.to_string()).collect()))
            .collect()
    }

    /// vmadm's `required_properties` for a brand.
    pub fn required_properties(&self, brand: &str) -> BTreeMap<String, Vec<String>> {
        self.required_rows(brand)
            .map(|(n, a)| (n.to_string(), a.iter().map(|x| x.to_string()).collect()))
            .collect()
    }

    /// The required properties of a brand with their actions, sorted by
    /// name, without building a map.
    pub fn required_rows<'a>(
        &'a self,
        brand: &'a str,
    ) -> impl Iterator<Item = (&'static str, &'static [&'static str])> + 'a {
        self.by_name(brand, |p| p.required)
    }

    /// vmadm's XML_PROPERTIES: zone XML key -> property, as expander.js
    /// builds it (later properties win on a shared key).
    pub fn xml_properties(&self) -> BTreeMap<String, XmlProperty> {
        self.xml.iter().map(|(k, x)| (k.to_string(), *x)).collect()
    }

    /// One zone XML key's entry of XML_PROPERTIES.
    pub fn xml_property(&self, key: &str) -> Option<&'static XmlProperty> {
        find(self.xml, key)
    }

    /// Every XML_PROPERTIES entry, sorted by zone XML key.
    pub fn xml_rows(&self) -> &'static [(&'static str, XmlProperty)] {
        self.xml
    }

    /// A `vmadm list` column by field name.
    pub fn list_field(&self, name: &str) -> Option<&'static ListField> {
        find(self.list_fields, name)
    }

    /// The create defaults as JSON (built on first use).
    pub fn defaults(&self) -> &Map<String, Value> {
        self.defaults.get_or_init(|| object(self.default_rows))
    }

    fn default_row(&self, k: &str) -> Option<Json> {
        self.default_rows
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| *v)
    }

    pub fn default_i64(&self, k: &str) -> i64 {
        match self.default_row(k) {
            Some(Json::Int(i)) => i,
            _ => 0,
        }
    }
    pub fn default_str(&self, k: &str) -> &'static str {
        match self.default_row(k) {
            Some(Json::Str(s)) => s,
            _ => "",
        }
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
        assert_eq!(b.features(), t.brand("joyent").unwrap().features());
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

    /// The compiled table is the JSON, row for row.
    #[test]
    fn compiled_table_is_the_json() {
        let parsed = Table::parse(TABLE_JSON).unwrap();
        let compiled = Table::from_rows(&ROWS);
        assert_eq!(compiled.properties, parsed.properties);
        assert_eq!(compiled.index, parsed.index);
        assert_eq!(compiled.brands, parsed.brands);
        for (name, b) in &compiled.brands {
            assert_eq!(b.features(), parsed.brands[name].features(), "{name}");
        }
        assert_eq!(compiled.defaults(), parsed.defaults());
        assert_eq!(compiled.list_fields, parsed.list_fields);
        assert_eq!(compiled.list_default_order, parsed.list_default_order);
        assert_eq!(compiled.list_default_sort, parsed.list_default_sort);
        assert_eq!(compiled.xml, parsed.xml);
        let json: Value = serde_json::from_str(TABLE_JSON).unwrap();
        assert_eq!(compiled.defaults(), json["defaults"].as_object().unwrap());
        for p in compiled.properties {
            assert_eq!(
                p.default_value().as_ref(),
                json["properties"][p.name].get("default"),
                "{}",
                p.name
            );
        }
        assert_eq!(compiled.default_i64("provision_timeout"), 300);
        assert_eq!(compiled.default_str("brand"), "joyent");
        assert_eq!(compiled.default_i64("brand"), 0);
    }

    #[test]
    fn lookups() {
        let t = Table::get();
        assert_eq!(
            t.property("alias").unwrap().zonexml,
            Some("zone.attr.alias")
        );
        assert!(t.property("nope").is_none());
        assert_eq!(t.list_field("ram").unwrap().header, "RAM");
        assert!(t.list_field("nope").is_none());
        let x = t.xml_property("zone.attr.alias").unwrap();
        assert_eq!((x.vmobj_key, x.load), ("alias", Some("unbase64")));
        assert_eq!(t.brand("bhyve").unwrap().vm_type(), "BHYVE");
        assert!(t.brand("kvm").unwrap().feature_bool("use_vm_autoboot"));
        assert!(!t.brand("joyent").unwrap().feature_bool("use_vm_autoboot"));
        assert_eq!(
            t.required_actions("builder", "image_uuid"),
            t.required_actions("joyent", "image_uuid")
        );
        assert!(!t.required_actions("joyent", "image_uuid").is_empty());
    }
}
