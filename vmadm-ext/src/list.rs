//! `vmadm list` and `vmadm lookup`: filters, fake fields, columns, sorting.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::io::Write;

use regex_lite::Regex;
use serde_json::{Map, Value};

use crate::jsval;
use crate::load::Fields;
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
    table.list_field(key).is_some() || disk.is_match(key) || nic.is_match(key) || hash.is_match(key)
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

/// [`flatten`] of a VM object given as its map.
pub fn flatten_in<'a>(vm: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match key.split_once('.') {
        Some((first, rest)) => flatten(vm.get(first)?, rest),
        None => vm.get(key),
    }
}

/// Does every filter match some value its key means (`nics.*.ip` means
/// each nic's ip)? `get` flattens a key of the VM.
fn matches_with<'a>(get: impl Fn(&str) -> Option<&'a Value>, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        let test = |v: &Value| {
            let s = match v {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                _ => Cow::Owned(jsval::to_string(v)),
            };
            match &f.regex {
                Some(re) => re.is_match(&s),
                None => s == f.value,
            }
        };
        match f.key.split_once(".*.") {
            Some((list, rest)) => match get(list) {
                Some(Value::Array(a)) => a.iter().filter_map(|x| flatten(x, rest)).any(test),
                _ => false,
            },
            None => get(&f.key).is_some_and(test),
        }
    })
}

/// Does the VM pass every filter?
pub fn matches(vm: &Value, filters: &[Filter]) -> bool {
    matches_with(|k| flatten(vm, k), filters)
}

/// [`matches`] for a VM object given as its map.
pub fn matches_map(vm: &Map<String, Value>, filters: &[Filter]) -> bool {
    matches_with(|k| flatten_in(vm, k), filters)
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
    if let Some(f) = table.list_field(field) {
        return Some(f.clone());
    }
    let parts: Vec<&str> = field.split('.').collect();
    let kind = |name: &str| table.property(name).and_then(|p| p.flattenable);
    let ok = match parts.len() {
        3 => kind(parts[0]) == Some("array_hash_key"),
        2 => kind(parts[0]) == Some("hash_key"),
        _ => false,
    };
    ok.then(|| ListField {
        header: field.to_uppercase().into(),
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
            order: table.list_default_order.to_string(),
            sort: table.list_default_sort.to_string(),
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

/// A sort key's field and direction (`-ram`: descending).
fn sort_key(f: &str) -> (&str, i8) {
    match f.strip_prefix('-') {
        Some(x) => (x, -1),
        None => (f.strip_prefix('+').unwrap_or(f), 1),
    }
}

/// vmadm's sortVM comparator for one key: 1, -1 or 0 (go on to the next).
fn key_order(av: Option<&Value>, bv: Option<&Value>, dir: i8) -> i8 {
    let at = av.is_some_and(jsval::truthy);
    let bt = bv.is_some_and(jsval::truthy);
    let cmp = match (av, bv) {
        (Some(x), Some(y)) => js_cmp(x, y),
        _ => None,
    };
    if cmp == Some(Ordering::Greater) || (!at && bt) || (av.is_none() && bv.is_some()) {
        dir
    } else if cmp == Some(Ordering::Less) || (at && !bt) || (av.is_some() && bv.is_none()) {
        -dir
    } else {
        0
    }
}

fn ordering(o: i8) -> Option<Ordering> {
    match o {
        1 => Some(Ordering::Greater),
        -1 => Some(Ordering::Less),
        _ => None,
    }
}

/// vmadm's sortVM comparator.
pub fn compare(a: &Value, b: &Value, sort: &[&str]) -> Ordering {
    for f in sort {
        let (field, dir) = sort_key(f);
        if let Some(o) = ordering(key_order(flatten(a, field), flatten(b, field), dir)) {
            return o;
        }
    }
    Ordering::Equal
}

/// One listed VM: its sort key values and its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    keys: Vec<Option<Value>>,
    line: String,
}

/// `vmadm list` with its columns, sort keys and filters checked once: turns
/// each VM object into a [`Row`] (or none, when a filter refuses it), sorts
/// rows as vmadm sorts VMs and writes them.
#[derive(Debug)]
pub struct Lister<'t> {
    table: &'t Table,
    columns: Vec<(String, ListField)>,
    sort: Vec<(String, i8)>,
    filters: Vec<Filter>,
    opts: ListOptions,
}

impl<'t> Lister<'t> {
    pub fn new(
        table: &'t Table,
        filters: &[Filter],
        opts: &ListOptions,
    ) -> Result<Lister<'t>, ListError> {
        check_columns(table, opts)?;
        let columns = opts
            .order
            .split(',')
            .map(|f| {
                let lp = list_properties(table, f).unwrap_or(ListField {
                    header: f.to_uppercase().into(),
                    width: 20,
                });
                (f.to_string(), lp)
            })
            .collect();
        let sort = opts
            .sort
            .split(',')
            .map(|f| {
                let (field, dir) = sort_key(f);
                (field.to_string(), dir)
            })
            .collect();
        Ok(Lister {
            table,
            columns,
            sort,
            filters: filters.to_vec(),
            opts: opts.clone(),
        })
    }

    /// Every field name the columns, sort keys and filters read.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .map(|(f, _)| f.as_str())
            .chain(self.sort.iter().map(|(f, _)| f.as_str()))
            .chain(self.filters.iter().map(|f| f.key.as_str()))
    }

    /// The VM object fields listing needs.
    pub fn fields(&self) -> Fields {
        Fields::for_paths(self.paths())
    }

    /// A VM's row (after vmadm's fake fields), or `None` when a filter
    /// refuses it.
    pub fn row(&self, mut vm: Map<String, Value>) -> Option<Row> {
        add_fake_fields(self.table, &mut vm);
        if !matches_map(&vm, &self.filters) {
            return None;
        }
        let keys = self
            .sort
            .iter()
            .map(|(f, _)| flatten_in(&vm, f).cloned())
            .collect();
        Some(Row {
            keys,
            line: self.line(|k| flatten_in(&vm, k)),
        })
    }

    /// One line: the header (`get` is `None`) or a VM's values.
    fn line<'a>(&self, get: impl Fn(&str) -> Option<&'a Value>) -> String {
        self.line_of(Some(get))
    }

    fn line_of<'a, F: Fn(&str) -> Option<&'a Value>>(&self, get: Option<F>) -> String {
        let parsable = self.opts.parsable;
        let mut s = String::new();
        for (i, (f, lp)) in self.columns.iter().enumerate() {
            if i > 0 {
                s.push_str(if parsable { ":" } else { "  " });
            }
            let v: Cow<str> = match &get {
                None => Cow::Borrowed(&lp.header),
                Some(get) => match get(f) {
                    Some(Value::String(x)) if !x.is_empty() => Cow::Borrowed(x.as_str()),
                    Some(x) if jsval::truthy(x) => Cow::Owned(jsval::to_string(x)),
                    _ if parsable => Cow::Borrowed(""),
                    _ => Cow::Borrowed("-"),
                },
            };
            s.push_str(&v);
            if !parsable {
                let n = v.chars().count();
                s.extend(std::iter::repeat_n(' ', lp.width.saturating_sub(n)));
            }
        }
        let end = s.trim_end().len();
        s.truncate(end);
        s
    }

    /// The header line, when one is printed.
    pub fn header(&self) -> Option<String> {
        (self.opts.header && !self.opts.parsable)
            .then(|| self.line_of(None::<fn(&str) -> Option<&'static Value>>))
    }

    /// vmadm's order of the rows (stable: equal rows keep their order).
    pub fn sort(&self, rows: &mut [Row]) {
        rows.sort_by(|a, b| {
            for (i, (_, dir)) in self.sort.iter().enumerate() {
                if let Some(o) = ordering(key_order(a.keys[i].as_ref(), b.keys[i].as_ref(), *dir)) {
                    return o;
                }
            }
            Ordering::Equal
        });
    }

    /// Sort the rows and write the listing.
    pub fn write(&self, mut rows: Vec<Row>, out: &mut dyn Write) -> std::io::Result<()> {
        self.sort(&mut rows);
        if let Some(h) = self.header() {
            out.write_all(h.as_bytes())?;
            out.write_all(b"\n")?;
        }
        for r in &rows {
            out.write_all(r.line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// Format VMs (already filtered, with fake fields) as `vmadm list` does;
/// `vms` is left sorted.
pub fn format_list(
    table: &Table,
    vms: &mut [Value],
    opts: &ListOptions,
) -> Result<String, ListError> {
    let lister = Lister::new(table, &[], opts)?;
    let sort: Vec<&str> = opts.sort.split(',').collect();
    vms.sort_by(|a, b| compare(a, b, &sort));
    let mut out = String::new();
    if let Some(h) = lister.header() {
        out.push_str(&h);
        out.push('\n');
    }
    for vm in vms.iter() {
        out.push_str(&lister.line(|k| flatten(vm, k)));
        out.push('\n');
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
    let lister = Lister::new(table, filters, opts)?;
    let rows: Vec<Row> = vms.into_iter().filter_map(|vm| lister.row(vm)).collect();
    let mut out = Vec::new();
    lister.write(rows, &mut out).expect("writing to memory");
    Ok(String::from_utf8(out).expect("lines are text"))
}

/// `vmadm lookup` with its filters and output checked once: turns each VM
/// object into its entry (its UUID, or with `json` its object, restricted
/// to the `output` fields), or none when a filter refuses it.
#[derive(Debug)]
pub struct Lookup<'t> {
    table: &'t Table,
    filters: Vec<Filter>,
    json: bool,
    unique: bool,
    output: Option<Vec<String>>,
}

impl<'t> Lookup<'t> {
    pub fn new(
        table: &'t Table,
        filters: &[Filter],
        json: bool,
        unique: bool,
        output: Option<&str>,
    ) -> Result<Lookup<'t>, ListError> {
        if output.is_some() && !json {
            return Err(ListError::OutputWithoutJson);
        }
        Ok(Lookup {
            table,
            filters: filters.to_vec(),
            json,
            unique,
            output: output.map(|o| o.split(',').map(str::to_string).collect()),
        })
    }

    /// The VM object fields the lookup needs (all of them for `json`).
    pub fn fields(&self) -> Fields {
        if self.json {
            return Fields::all();
        }
        Fields::for_paths(self.filters.iter().map(|f| f.key.as_str()).chain(["uuid"]))
    }

    /// A VM's entry (after vmadm's fake fields), or `None` when a filter
    /// refuses it.
    pub fn entry(&self, mut vm: Map<String, Value>) -> Option<String> {
        add_fake_fields(self.table, &mut vm);
        if !matches_map(&vm, &self.filters) {
            return None;
        }
        if !self.json {
            return Some(
                vm.get("uuid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        let vm = match &self.output {
            Some(fields) => {
                let f: Vec<&str> = fields.iter().map(String::as_str).collect();
                restrict(&vm, &f)
            }
            None => vm,
        };
        Some(serde_json::to_string_pretty(&Value::Object(vm)).expect("json"))
    }

    /// A writer of entries to `out`, as vmadm prints them.
    pub fn output<W: Write>(&self, out: W) -> LookupOutput<W> {
        LookupOutput {
            out,
            json: self.json,
            unique: self.unique,
            count: 0,
            held: None,
        }
    }
}

/// Writes lookup entries as they come: UUIDs one a line, or a JSON array
/// (the text `serde_json::to_string_pretty` gives the whole array). With
/// `unique` the one entry is held until [`LookupOutput::finish`].
#[derive(Debug)]
pub struct LookupOutput<W: Write> {
    out: W,
    json: bool,
    unique: bool,
    count: usize,
    held: Option<String>,
}

impl<W: Write> LookupOutput<W> {
    fn write_entry(&mut self, entry: &str, first: bool) -> std::io::Result<()> {
        if !self.json {
            self.out.write_all(entry.as_bytes())?;
            return self.out.write_all(b"\n");
        }
        self.out.write_all(if first { b"[\n" } else { b",\n" })?;
        for (i, l) in entry.split('\n').enumerate() {
            if i > 0 {
                self.out.write_all(b"\n")?;
            }
            self.out.write_all(b"  ")?;
            self.out.write_all(l.as_bytes())?;
        }
        Ok(())
    }

    /// Add a matching VM's entry.
    pub fn push(&mut self, entry: String) -> std::io::Result<()> {
        self.count += 1;
        if self.unique {
            if self.held.is_none() {
                self.held = Some(entry);
            }
            return Ok(());
        }
        let first = self.count == 1;
        self.write_entry(&entry, first)
    }

    /// The error a unique lookup ends with, when it did not find exactly
    /// one VM (nothing has been written then).
    pub fn refused(&self) -> Option<ListError> {
        (self.unique && self.count != 1).then_some(ListError::NotUnique(self.count))
    }

    /// Write what is left and hand back the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if let Some(e) = self.held.take() {
            if self.count == 1 {
                self.write_entry(&e, true)?;
            }
        }
        if self.json {
            let written = if self.unique {
                self.count == 1
            } else {
                self.count > 0
            };
            self.out
                .write_all(if written { b"\n]\n" } else { b"[]\n" })?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
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
    let lookup = Lookup::new(table, filters, json, unique, output)?;
    let mut out = lookup.output(Vec::new());
    for vm in vms {
        if let Some(e) = lookup.entry(vm) {
            out.push(e).expect("writing to memory");
        }
    }
    if let Some(e) = out.refused() {
        return Err(e);
    }
    let bytes = out.finish().expect("writing to memory");
    Ok(String::from_utf8(bytes).expect("entries are text"))
}

/// Keep only the requested fields of a lookup result.
pub fn restrict(vm: &Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    vm.iter()
        .filter(|(k, _)| fields.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Do any of these keys read `<zonepath>/config/*.json` (metadata, tags,
/// routes)?
pub fn needs_config_json<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| {
        ["customer_metadata", "internal_metadata", "tags", "routes"]
            .iter()
            .any(|p| k.starts_with(p))
    })
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
