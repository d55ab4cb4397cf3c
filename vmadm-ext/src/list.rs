//! `vmadm list` and `vmadm lookup`: filters, fake fields, columns, sorting.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::{Map, Value};

use crate::jsval;
use crate::table::{ListField, Table};

/// A bad list or lookup request; the messages are vmadm's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("Invalid filter key: \"{0}\"")]
    FilterKey(String),
    #[error("Invalid lookup key: \"{0}\"")]
    LookupKey(String),
    #[error("Invalid order key: \"{0}\"")]
    OrderKey(String),
    #[error("Invalid sort key: \"{0}\"")]
    SortKey(String),
    #[error("invalid order field: {0}")]
    OrderField(String),
    #[error("invalid sort field: {0}")]
    SortField(String),
    #[error("Bad arguments: unable to split {0}")]
    Split(String),
    #[error("Invalid regular expression for {key}: {msg}")]
    Regex { key: String, msg: String },
    #[error("Requested unique lookup but found {0} results.")]
    NotUnique(usize),
    #[error("Cannot specify -o without -j")]
    OutputWithoutJson,
}

/// One `key=value` or `key=~regex` filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub key: String,
    pub value: String,
    pub regex: Option<Regex>,
}

/// Is `key` a filter key vmadm accepts?
pub fn valid_filter_key(table: &Table, key: &str) -> bool {
    static DISK: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static NIC: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static HASH: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let disk = DISK.get_or_init(|| {
        Regex::new(
            r"^disks\.[*0-9]*\.(boot|image_name|image_size|image_uuid|size|media|model|zpool)$",
        )
        .expect("re")
    });
    let nic = NIC.get_or_init(|| {
        Regex::new(
            r"nics\.[*0-9]*\.(dhcp_server|gateway|interface|ip|mac|model|netmask|nic_tag|vlan_id)$",
        )
        .expect("re")
    });
    let hash = HASH.get_or_init(|| {
        Regex::new(r"^(tags|customer_metadata|internal_metadata)\..*").expect("re")
    });
    table.list_fields.contains_key(key)
        || disk.is_match(key)
        || nic.is_match(key)
        || hash.is_match(key)
}

/// Parse `key=value` arguments (later keys win, as in vmadm).
pub fn parse_filters(
    table: &Table,
    args: &[String],
    lookup: bool,
) -> Result<Vec<Filter>, ListError> {
    let mut out: Vec<Filter> = Vec::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(ListError::Split(a.clone()));
        };
        if !valid_filter_key(table, k) {
            return Err(if lookup {
                ListError::LookupKey(k.into())
            } else {
                ListError::FilterKey(k.into())
            });
        }
        let regex = match v.strip_prefix('~') {
            Some(re) => Some(
                Regex::new(&format!("(?i){re}")).map_err(|e| ListError::Regex {
                    key: k.into(),
                    msg: e.to_string(),
                })?,
            ),
            None => None,
        };
        out.retain(|f| f.key != k);
        out.push(Filter {
            key: k.into(),
            value: v.into(),
            regex,
        });
    }
    Ok(out)
}

/// `VM.flatten(obj, "nics.0.ip")`.
pub fn flatten<'a>(vm: &'a Value, key: &str) -> Option<&'a Value> {
    let mut cur = vm;
    for part in key.split('.') {
        cur = match cur {
            Value::Object(o) => o.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Every value a filter key can mean (`nics.*.ip` means each nic's ip).
fn values_for<'a>(vm: &'a Value, key: &str) -> Vec<&'a Value> {
    match key.split_once(".*.") {
        Some((list, rest)) => match flatten(vm, list) {
            Some(Value::Array(a)) => a.iter().filter_map(|x| flatten(x, rest)).collect(),
            _ => vec![],
        },
        None => flatten(vm, key).into_iter().collect(),
    }
}

/// Does the VM pass every filter?
pub fn matches(vm: &Value, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        values_for(vm, &f.key).into_iter().any(|v| {
            let s = jsval::to_string(v);
            match &f.regex {
                Some(re) => re.is_match(&s),
                None => s == f.value,
            }
        })
    })
}

/// vmadm's fake fields: `type` (the brand's features.type, 4 characters;
/// `OS` for an unknown brand) and, for non-HVM zones, `ram` =
/// `max_physical_memory`.
pub fn add_fake_fields(table: &Table, vm: &mut Map<String, Value>) {
    let brand = vm
        .get("brand")
        .and_then(Value::as_str)
        .and_then(|b| table.brand(b));
    let t: String = brand
        .map(|b| b.vm_type())
        .unwrap_or("OS")
        .chars()
        .take(4)
        .collect();
    if !brand.is_some_and(|b| b.hvm) {
        let mpm = vm.get("max_physical_memory").cloned();
        match mpm {
            Some(v) => vm.insert("ram".into(), v),
            None => vm.remove("ram"),
        };
    }
    vm.insert("type".into(), Value::from(t));
}

/// Column facts for a field (`LIST_FIELDS`, or 20 wide for flattened keys).
pub fn list_properties(table: &Table, field: &str) -> Option<ListField> {
    if let Some(f) = table.list_fields.get(field) {
        return Some(f.clone());
    }
    let parts: Vec<&str> = field.split('.').collect();
    let kind = |name: &str| table.property(name).and_then(|p| p.flattenable.clone());
    let ok = match parts.len() {
        3 => kind(parts[0]).as_deref() == Some("array_hash_key"),
        2 => kind(parts[0]).as_deref() == Some("hash_key"),
        _ => false,
    };
    ok.then(|| ListField {
        header: field.to_uppercase(),
        width: 20,
    })
}

/// `-o`, `-s`, `-H`, `-p`.
#[derive(Debug, Clone)]
pub struct ListOptions {
    pub order: String,
    pub sort: String,
    pub header: bool,
    pub parsable: bool,
}

impl ListOptions {
    pub fn new(table: &Table) -> ListOptions {
        ListOptions {
            order: table.list_default_order.clone(),
            sort: table.list_default_sort.clone(),
            header: true,
            parsable: false,
        }
    }
}

fn column_ok(key: &str) -> bool {
    !(key.starts_with("disks.*") || key.starts_with("filesystems.*") || key.starts_with("nics.*"))
}

/// Check `-o` and `-s` before loading anything.
pub fn check_columns(table: &Table, opts: &ListOptions) -> Result<(), ListError> {
    for k in opts.order.split(',') {
        if !column_ok(k) {
            return Err(ListError::OrderKey(k.into()));
        }
    }
    for k in opts.sort.split(',') {
        if !column_ok(k) {
            return Err(ListError::SortKey(k.into()));
        }
    }
    for k in opts.sort.split(',') {
        let f = k.strip_prefix(['-', '+']).unwrap_or(k);
        if list_properties(table, f).is_none() {
            return Err(ListError::SortField(k.into()));
        }
    }
    for k in opts.order.split(',') {
        if list_properties(table, k).is_none() {
            return Err(ListError::OrderField(k.into()));
        }
    }
    Ok(())
}

/// JavaScript `a > b` for the values vmadm sorts on.
fn js_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        _ => {
            let (x, y) = (jsval::number(a), jsval::number(b));
            if a.is_array() || a.is_object() || b.is_array() || b.is_object() {
                return Some(jsval::to_string(a).cmp(&jsval::to_string(b)));
            }
            x.partial_cmp(&y)
        }
    }
}

/// vmadm's sortVM comparator.
pub fn compare(a: &Value, b: &Value, sort: &[&str]) -> Ordering {
    for f in sort {
        let (field, dir) = match f.strip_prefix('-') {
            Some(x) => (x, -1),
            None => (f.strip_prefix('+').unwrap_or(f), 1),
        };
        let av = flatten(a, field);
        let bv = flatten(b, field);
        let at = av.is_some_and(jsval::truthy);
        let bt = bv.is_some_and(jsval::truthy);
        let cmp = match (av, bv) {
            (Some(x), Some(y)) => js_cmp(x, y),
            _ => None,
        };
        let ord = if cmp == Some(Ordering::Greater) || (!at && bt) || (av.is_none() && bv.is_some())
        {
            dir
        } else if cmp == Some(Ordering::Less) || (at && !bt) || (av.is_some() && bv.is_none()) {
            -dir
        } else {
            0
        };
        match ord {
            1 => return Ordering::Greater,
            -1 => return Ordering::Less,
            _ => {}
        }
    }
    Ordering::Equal
}

fn line(table: &Table, order: &[&str], vm: Option<&Value>, opts: &ListOptions, out: &mut String) {
    let mut s = String::new();
    for (i, f) in order.iter().enumerate() {
        if i > 0 {
            s.push_str(if opts.parsable { ":" } else { "  " });
        }
        let lp = list_properties(table, f).unwrap_or(ListField {
            header: f.to_uppercase(),
            width: 20,
        });
        let v = match vm {
            None => lp.header.clone(),
            Some(vm) => match flatten(vm, f) {
                Some(x) if jsval::truthy(x) => jsval::to_string(x),
                _ if opts.parsable => String::new(),
                _ => "-".into(),
            },
        };
        if opts.parsable {
            s.push_str(&v);
        } else {
            s.push_str(&format!("{v:<w$}", w = lp.width));
        }
    }
    out.push_str(s.trim_end());
    out.push('\n');
}

/// Format VMs (already filtered, with fake fields) as `vmadm list` does.
pub fn format_list(
    table: &Table,
    vms: &mut [Value],
    opts: &ListOptions,
) -> Result<String, ListError> {
    check_columns(table, opts)?;
    let sort: Vec<&str> = opts.sort.split(',').collect();
    let order: Vec<&str> = opts.order.split(',').collect();
    vms.sort_by(|a, b| compare(a, b, &sort));
    let mut out = String::new();
    if opts.header && !opts.parsable {
        line(table, &order, None, opts, &mut out);
    }
    for vm in vms.iter() {
        line(table, &order, Some(vm), opts, &mut out);
    }
    Ok(out)
}

/// `vmadm list` over loaded VMs: add the fake fields, keep the ones that
/// match, and format them.
pub fn run_list(
    table: &Table,
    vms: Vec<Map<String, Value>>,
    filters: &[Filter],
    opts: &ListOptions,
) -> Result<String, ListError> {
    check_columns(table, opts)?;
    let mut found: Vec<Value> = vms
        .into_iter()
        .map(|mut vm| {
            add_fake_fields(table, &mut vm);
            Value::Object(vm)
        })
        .filter(|v| matches(v, filters))
        .collect();
    format_list(table, &mut found, opts)
}

/// `vmadm lookup` over loaded VMs: the matching VMs as indented JSON
/// (restricted to `output` fields) with `json`, else their UUIDs, one a
/// line. `unique` demands exactly one match.
pub fn run_lookup(
    table: &Table,
    vms: Vec<Map<String, Value>>,
    filters: &[Filter],
    json: bool,
    unique: bool,
    output: Option<&str>,
) -> Result<String, ListError> {
    if output.is_some() && !json {
        return Err(ListError::OutputWithoutJson);
    }
    let found: Vec<Map<String, Value>> = vms
        .into_iter()
        .map(|mut vm| {
            add_fake_fields(table, &mut vm);
            vm
        })
        .filter(|vm| matches(&Value::Object(vm.clone()), filters))
        .collect();
    if unique && found.len() != 1 {
        return Err(ListError::NotUnique(found.len()));
    }
    if json {
        let fields: Option<Vec<&str>> = output.map(|o| o.split(',').collect());
        let arr: Vec<Value> = found
            .iter()
            .map(|vm| {
                Value::Object(
                    fields
                        .as_ref()
                        .map_or_else(|| vm.clone(), |f| restrict(vm, f)),
                )
            })
            .collect();
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&Value::Array(arr)).expect("json")
        ));
    }
    Ok(found
        .iter()
        .map(|vm| {
            format!(
                "{}\n",
                vm.get("uuid").and_then(Value::as_str).unwrap_or_default()
            )
        })
        .collect())
}

/// Keep only the requested fields of a lookup result.
pub fn restrict(vm: &Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    vm.iter()
        .filter(|(k, _)| fields.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t() -> &'static Table {
        Table::get()
    }

    #[test]
    fn filters() {
        let vm = json!({"brand": "builder", "alias": "Cloud-Image", "nics": [{"ip": "1.2.3.4"}, {"ip": "dhcp"}],
                        "tags": {"role": "build"}, "resolvers": ["8.8.8.8", "8.8.4.4"]});
        let f = |a: &[&str]| {
            parse_filters(
                t(),
                &a.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                false,
            )
        };
        assert!(matches(&vm, &f(&["brand=builder"]).unwrap()));
        assert!(!matches(&vm, &f(&["brand=joyent"]).unwrap()));
        assert!(matches(&vm, &f(&["alias=~^cloud"]).unwrap()));
        assert!(matches(&vm, &f(&["nics.*.ip=dhcp"]).unwrap()));
        assert!(matches(
            &vm,
            &f(&["nics.0.ip=1.2.3.4", "tags.role=build"]).unwrap()
        ));
        assert!(!matches(&vm, &f(&["nics.1.ip=1.2.3.4"]).unwrap()));
        assert_eq!(
            f(&["bogus=1"]).unwrap_err().to_string(),
            "Invalid filter key: \"bogus\""
        );
        assert_eq!(f(&["brand"]).unwrap_err(), ListError::Split("brand".into()));
    }

    #[test]
    fn columns_and_sorting() {
        let mut vms = vec![
            json!({"uuid": "b", "type": "OS", "ram": 8192, "state": "running", "alias": "cloud-image-builder"}),
            json!({"uuid": "a", "type": "OS", "ram": 256, "state": "stopped", "cpu_cap": 0}),
        ];
        let mut o = ListOptions::new(t());
        let s = format_list(t(), &mut vms, &o).unwrap();
        assert_eq!(
            s,
            "UUID                                  TYPE  RAM      STATE             ALIAS\n\
             a                                     OS    256      stopped           -\n\
             b                                     OS    8192     running           cloud-image-builder\n"
        );
        o.sort = "-ram".into();
        o.order = "uuid,cpu_cap,alias".into();
        o.parsable = true;
        assert_eq!(
            format_list(t(), &mut vms, &o).unwrap(),
            "b::cloud-image-builder\na::\n"
        );
        o.order = "nics.*.ip".into();
        assert_eq!(
            format_list(t(), &mut vms, &o).unwrap_err().to_string(),
            "Invalid order key: \"nics.*.ip\""
        );
        o.order = "nics.0.ip,tags.x".into();
        assert!(format_list(t(), &mut vms, &o).is_ok());
        o.sort = "bogus".into();
        assert_eq!(
            format_list(t(), &mut vms, &o).unwrap_err().to_string(),
            "invalid sort field: bogus"
        );
    }

    #[test]
    fn fake_fields() {
        let mut vm = json!({"brand": "builder", "max_physical_memory": 8192, "ram": 256})
            .as_object()
            .unwrap()
            .clone();
        add_fake_fields(t(), &mut vm);
        assert_eq!(vm["ram"], json!(8192));
        assert_eq!(vm["type"], json!("OS"));
        let mut vm = json!({"brand": "bhyve", "max_physical_memory": 2304, "ram": 1024})
            .as_object()
            .unwrap()
            .clone();
        add_fake_fields(t(), &mut vm);
        assert_eq!(
            (vm["ram"].clone(), vm["type"].clone()),
            (json!(1024), json!("BHYV"))
        );
        let mut vm = json!({"brand": "future"}).as_object().unwrap().clone();
        add_fake_fields(t(), &mut vm);
        assert_eq!(vm["type"], json!("OS"));
    }
}
