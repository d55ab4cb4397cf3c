//! Zone XML -> the part of the VM object vmadm loads from it
//! (vmload-xml's `getVmobjXML`), driven by the table's XML map.

use std::borrow::Cow;

use base64::Engine as _;
use brand::xml::{Piece, XmlError};
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

/// How the entries of a VM object list are numbered for sorting.
#[derive(Debug, Clone, Copy)]
enum IndexKind {
    /// `path` matching `^.*disk(\d+)$`.
    Disk,
    /// `interface` matching `^net(\d+)$`.
    Nic,
    /// `target` matching `^(.*)$` (one line).
    Filesystem,
}

/// The number vmadm sorts an entry by (0 when the field does not match or
/// is not a number). Digits other than ASCII never make a number, so the
/// patterns' `\d` is matched as ASCII digits.
fn index_of(v: &Value, field: &str, kind: IndexKind) -> f64 {
    let Some(s) = v.get(field).and_then(Value::as_str) else {
        return 0.0;
    };
    let n = match kind {
        IndexKind::Disk => {
            // `.` does not match a line break
            let head = s.trim_end_matches(|c: char| c.is_ascii_digit());
            (head.len() < s.len() && head.ends_with("disk") && !head.contains('\n'))
                .then(|| jsval::number_from_str(&s[head.len()..]))
        }
        IndexKind::Nic => s
            .strip_prefix("net")
            .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
            .map(jsval::number_from_str),
        IndexKind::Filesystem => (!s.contains('\n')).then(|| jsval::number_from_str(s)),
    };
    n.filter(|n| !n.is_nan()).unwrap_or(0.0)
}

fn index_sort(list: &mut Value, field: &str, kind: IndexKind) {
    if let Value::Array(a) = list {
        if a.len() < 2 {
            return;
        }
        a.sort_by(|x, y| {
            index_of(x, field, kind)
                .partial_cmp(&index_of(y, field, kind))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
}

/// The VM object fields a caller needs: all of them (`vmadm get`, `lookup
/// -j`), or the ones some list columns, sort keys and filters read. Each
/// field comes out with the value the whole object has; the fields it is
/// made from come along (`state` brings `transition` and `failed`, `ram`
/// brings `max_physical_memory`), and `brand` is always there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    all: bool,
    keys: Vec<String>,
    /// The zone XML keys of the needed fields (not ignored ones).
    xml: Vec<(&'static str, XmlProperty)>,
}

/// Fields computed together: asking for one loads them all.
const GROUPS: &[&[&str]] = &[
    &[
        "state",
        "transition",
        "transition_to",
        "transition_expire",
        "failed",
    ],
    &["autoboot", "vm_autoboot"],
    &["ram", "max_physical_memory"],
    &[
        "quota",
        "zfs_root_compression",
        "zfs_root_recsize",
        "zfs_data_compression",
        "zfs_data_recsize",
        "datasets",
    ],
];

impl Fields {
    /// The whole VM object.
    pub fn all() -> Fields {
        Fields {
            all: true,
            keys: Vec::new(),
            xml: Vec::new(),
        }
    }

    /// What reading `paths` (`alias`, `nics.0.ip`, `tags.role`) needs.
    pub fn for_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Fields {
        let mut keys: Vec<String> = vec!["brand".into()];
        let mut add = |k: &str| {
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        };
        for p in paths {
            let top = p.split('.').next().unwrap_or(p);
            add(top);
            for g in GROUPS.iter().filter(|g| g.contains(&top)) {
                for k in g.iter() {
                    add(k);
                }
            }
        }
        let xml = Table::get()
            .xml_rows()
            .iter()
            .filter(|(_, x)| !x.ignore && keys.iter().any(|k| k == x.vmobj_key))
            .copied()
            .collect();
        Fields {
            all: false,
            keys,
            xml,
        }
    }

    /// Is the top-level field `key` needed?
    pub fn has(&self, key: &str) -> bool {
        self.all || self.keys.iter().any(|k| k == key)
    }

    /// Is every field needed?
    pub fn is_all(&self) -> bool {
        self.all
    }
}

/// What the zone's child element being read becomes.
enum Child {
    /// Nothing this loader keeps.
    Skip,
    /// A `device`, `filesystem` or `network` entry of `disks`,
    /// `filesystems` or `nics`.
    Item {
        list_key: &'static str,
        prefix: &'static str,
        filesystem: bool,
        item: Map<String, Value>,
        options: Vec<Value>,
    },
    /// An `rctl` (its name is in [`Loader::rctl`]).
    Rctl,
}

type Attrs<'x, 'a> = &'x [(&'a str, Cow<'a, str>)];

/// Is `key` the `parts` joined by dots?
fn joined_is(parts: &[&str], key: &str) -> bool {
    let mut rest = key;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix('.') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(p) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

fn attr<'x>(attrs: Attrs<'x, '_>, k: &str) -> Option<&'x str> {
    attrs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_ref())
}

/// Builds the VM object fields of a zone XML text from its pieces: the
/// root `zone`'s attributes, its children and their children (vmload-xml
/// reads no deeper).
struct Loader<'f> {
    table: &'static Table,
    fields: &'f Fields,
    obj: Map<String, Value>,
    depth: usize,
    zone: bool,
    child: Child,
    /// The name of the `rctl` being read.
    rctl: String,
    /// Zone XML keys are put together here (`zone.attr` + `.` + name).
    key: String,
}

impl Loader<'_> {
    /// The VM object key and value of one zone XML key (its parts joined
    /// by dots), when the key is known and not ignored; for a top-level
    /// field (`top`, not an entry of a list) also only when it is needed.
    fn transform(&mut self, top: bool, parts: &[&str], value: &str) -> Option<(String, Value)> {
        if top && !self.fields.all {
            // a few fields are needed: look among their keys only
            let x = self
                .fields
                .xml
                .iter()
                .find(|(k, _)| joined_is(parts, k))
                .map(|(_, x)| *x)?;
            return Some((x.vmobj_key.to_string(), translate(x.load, value)));
        }
        self.key.clear();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.key.push('.');
            }
            self.key.push_str(p);
        }
        let x = self.table.xml_property(&self.key)?;
        if x.ignore {
            return None;
        }
        Some((x.vmobj_key.to_string(), translate(x.load, value)))
    }

    fn start(&mut self, name: &str, attrs: Attrs<'_, '_>) {
        match self.depth {
            0 => {
                self.zone = name == "zone";
                if self.zone {
                    for (k, v) in attrs {
                        if let Some((key, val)) = self.transform(true, &["zone", k], v) {
                            self.obj.insert(key, val);
                        }
                    }
                }
            }
            1 if self.zone => self.start_child(name, attrs),
            2 if self.zone => self.start_grandchild(name, attrs),
            _ => {}
        }
    }

    fn start_child(&mut self, name: &str, attrs: Attrs<'_, '_>) {
        self.child = Child::Skip;
        match name {
            "attr" => {
                if let (Some(n), Some(v)) = (attr(attrs, "name"), attr(attrs, "value")) {
                    if let Some((k, val)) = self.transform(true, &["zone.attr", n], v) {
                        self.obj.insert(k, val);
                    }
                }
            }
            "dataset" if self.fields.has("datasets") => {
                let list = self
                    .obj
                    .entry("datasets")
                    .or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(a) = list {
                    a.push(attr(attrs, "name").map(Value::from).unwrap_or(Value::Null));
                }
            }
            "device" | "filesystem" | "network" => {
                let (list_key, prefix) = match name {
                    "device" => ("disks", "zone.device"),
                    "filesystem" => ("filesystems", "zone.filesystem"),
                    _ => ("nics", "zone.network"),
                };
                if self.fields.has(list_key) {
                    let mut item = Map::new();
                    for (k, v) in attrs {
                        if let Some((key, val)) = self.transform(false, &[prefix, k], v) {
                            item.insert(key, val);
                        }
                    }
                    self.child = Child::Item {
                        list_key,
                        prefix,
                        filesystem: name == "filesystem",
                        item,
                        options: Vec::new(),
                    };
                }
            }
            "rctl" => {
                if let Some(n) = attr(attrs, "name") {
                    self.rctl.clear();
                    self.rctl.push_str(n);
                    self.child = Child::Rctl;
                }
            }
            _ => {}
        }
    }

    fn start_grandchild(&mut self, name: &str, attrs: Attrs<'_, '_>) {
        match &mut self.child {
            Child::Item {
                filesystem: true,
                options,
                ..
            } => {
                if name == "fsoption" {
                    if let Some(o) = attr(attrs, "name") {
                        options.push(Value::from(o));
                    }
                }
            }
            Child::Item { prefix, .. } => {
                let prefix = *prefix;
                if name != "net-attr" {
                    return;
                }
                let (Some(n), Some(v)) = (attr(attrs, "name"), attr(attrs, "value")) else {
                    return;
                };
                if let Some((k, val)) = self.transform(false, &[prefix, "net-attr", n], v) {
                    if let Child::Item { item, .. } = &mut self.child {
                        item.insert(k, val);
                    }
                }
            }
            Child::Rctl => {
                if name != "rctl-value" {
                    return;
                }
                let rctl = std::mem::take(&mut self.rctl);
                let found = self.transform(
                    true,
                    &[
                        "zone.rctl",
                        &rctl,
                        attr(attrs, "priv").unwrap_or("undefined"),
                        attr(attrs, "action").unwrap_or("undefined"),
                    ],
                    attr(attrs, "limit").unwrap_or("undefined"),
                );
                self.rctl = rctl;
                if let Some((k, val)) = found {
                    self.obj.insert(k, val);
                }
            }
            Child::Skip => {}
        }
    }

    /// The zone's child element ends: an entry joins its list.
    fn end_child(&mut self) {
        if let Child::Item {
            list_key,
            mut item,
            options,
            filesystem,
            ..
        } = std::mem::replace(&mut self.child, Child::Skip)
        {
            if filesystem && !options.is_empty() {
                item.insert("options".into(), Value::Array(options));
            }
            let list = self
                .obj
                .entry(list_key)
                .or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(a) = list {
                a.push(Value::Object(item));
            }
        }
    }

    fn piece(&mut self, p: Piece<'_, '_>) {
        match p {
            Piece::Start { name, attrs, empty } => {
                self.start(name, attrs);
                if !empty {
                    self.depth += 1;
                } else if self.depth == 1 && self.zone {
                    self.end_child();
                }
            }
            Piece::End => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 1 && self.zone {
                    self.end_child();
                }
            }
            _ => {}
        }
    }
}

/// Load the VM object fields of a zone XML text.
pub fn vmobj_from_xml(text: &str) -> Result<Map<String, Value>, LoadError> {
    vmobj_fields_from_xml(text, &Fields::all())
}

/// Load the `fields` of the VM object of a zone XML text, reading the text
/// once without building a document. The fields have the values
/// [`vmobj_from_xml`] gives them, and the errors are its errors.
pub fn vmobj_fields_from_xml(text: &str, fields: &Fields) -> Result<Map<String, Value>, LoadError> {
    let table = Table::get();
    let mut l = Loader {
        table,
        fields,
        obj: Map::new(),
        depth: 0,
        zone: false,
        child: Child::Skip,
        rctl: String::new(),
        key: String::new(),
    };
    brand::xml::scan(text, |p| l.piece(p)).map_err(|e| LoadError::Parse {
        code: "PARSE_ERROR",
        message: expat_message(&e),
        detail: e.to_string(),
    })?;
    let mut obj = l.obj;
    let brand = match obj.get("brand") {
        Some(Value::String(b)) if !b.is_empty() => b.clone(),
        // the message carries the whole object
        _ if !fields.is_all() => return vmobj_from_xml(text),
        _ => return Err(LoadError::MissingBrand(Value::Object(obj).to_string())),
    };
    // an unknown brand is read as joyent
    let b = table
        .brand(&brand)
        .or_else(|| table.brand("joyent"))
        .expect("joyent is in the table");
    if fields.has("nics") && !obj.contains_key("nics") {
        obj.insert("nics".into(), Value::Array(vec![]));
    }
    if fields.has("disks")
        && !obj.contains_key("disks")
        && !table.allowed_actions(&b.name, "disks").is_empty()
    {
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
        let parts: Vec<&str> = t.trim_end().split(':').collect();
        if parts.len() == 3 {
            obj.remove("transition");
            obj.insert("state".into(), Value::from(parts[0]));
            obj.insert("transition_to".into(), Value::from(parts[1]));
            obj.insert(
                "transition_expire".into(),
                jsval::json_number(jsval::number_from_str(parts[2])),
            );
        }
    }
    if let Some(d) = obj.get_mut("disks") {
        index_sort(d, "path", IndexKind::Disk);
    }
    if let Some(n) = obj.get_mut("nics") {
        index_sort(n, "interface", IndexKind::Nic);
    }
    if let Some(f) = obj.get_mut("filesystems") {
        index_sort(f, "target", IndexKind::Filesystem);
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

    /// Entries sort by the number vmadm's patterns find, as the regexes
    /// `^.*disk(\d+)$`, `^net(\d+)$` and `^(.*)$` would.
    #[test]
    fn index_numbers_follow_vmadms_patterns() {
        let patterns = [
            (IndexKind::Disk, r"^.*disk(\d+)$"),
            (IndexKind::Nic, r"^net(\d+)$"),
            (IndexKind::Filesystem, r"^(.*)$"),
        ];
        let texts = [
            "/dev/zvol/rdsk/zones/x-disk10",
            "/dev/zvol/rdsk/zones/x/disk2",
            "disk",
            "disk7x",
            "a\nxdisk1",
            "disk1\n",
            "disk1\u{0661}2",
            "disk\u{0661}",
            "net0",
            "net12",
            "net",
            "net1a",
            "xnet1",
            "net\u{0661}",
            "42",
            "0x1f",
            "two\nlines",
            "",
            " 7 ",
        ];
        for (kind, re) in patterns {
            let re = regex_lite::Regex::new(re).unwrap();
            for t in texts {
                let want = re
                    .captures(t)
                    .map(|c| jsval::number_from_str(&c[1]))
                    .filter(|n| !n.is_nan())
                    .unwrap_or(0.0);
                let got = index_of(&serde_json::json!({ "f": t }), "f", kind);
                assert_eq!(got.to_bits(), want.to_bits(), "{kind:?} {t:?}");
            }
        }
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
