//! npm `imgmanifest` (3.2.1) `validateDcManifest`: the rules a DC-mode
//! IMGAPI applies to every stored manifest, kept here so image-ci can refuse
//! a manifest before it ships. JavaScript coercions are followed where they
//! decide validity (`String(x)` for regex tests, truthiness, `Number(x)`).
//! The integration tests check this port against the npm package itself.
//!
//! Each error is `{field, code: "MissingParameter"|"Invalid", message?}`.

use serde_json::{Map, Value};

/// An error as imgmanifest reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.code)?;
        if let Some(m) = &self.message {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

/// The fields imgmanifest knows, in its order.
pub const FIELDS: &[&str] = &[
    "v",
    "uuid",
    "urn",
    "owner",
    "name",
    "version",
    "description",
    "homepage",
    "eula",
    "disabled",
    "activated",
    "published_at",
    "state",
    "public",
    "type",
    "os",
    "origin",
    "error",
    "files",
    "icon",
    "acl",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "tags",
    "generate_passwords",
    "inherited_directories",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
    "channels",
];

/// validateDcManifest's required fields.
pub const DC_REQUIRED: &[&str] = &[
    "v",
    "uuid",
    "owner",
    "name",
    "version",
    "disabled",
    "activated",
    "published_at",
    "public",
    "state",
    "type",
    "os",
    "files",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
];

const MAX_URL_LENGTH: usize = 1024;
const MAX_NAME_LENGTH: usize = 1024;
const MAX_VERSION_LENGTH: usize = 512;
const MAX_DESCRIPTION_LENGTH: usize = 10 * 1024;
const MAX_TAGS_LENGTH: usize = 100 * 1024;
pub const VALID_TYPES: &[&str] = &[
    "zone-dataset",
    "zvol",
    "lx-dataset",
    "lxd",
    "docker",
    "other",
];
pub const VALID_OSES: &[&str] = &["smartos", "linux", "windows", "bsd", "illumos", "other"];
pub const VALID_STATES: &[&str] = &["active", "unactivated", "disabled", "failed", "creating"];
pub const VALID_COMPRESSIONS: &[&str] = &["gzip", "bzip2", "xz", "none"];

fn missing(field: &str) -> FieldError {
    FieldError {
        field: field.into(),
        code: "MissingParameter".into(),
        message: None,
    }
}

fn invalid(field: &str, msg: Option<String>) -> FieldError {
    FieldError {
        field: field.into(),
        code: "Invalid".into(),
        message: msg,
    }
}

/// JavaScript `String(x)`.
fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::Null => String::new(),
                o => js_string(o),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// JavaScript truthiness.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(_) => true,
    }
}

/// `x.length` for strings (UTF-16 units) and arrays.
fn js_len(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(s.encode_utf16().count()),
        Value::Array(a) => Some(a.len()),
        _ => None,
    }
}

/// JavaScript `Number(x)` (NaN as None).
fn js_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Null => Some(0.0),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                Some(0.0)
            } else {
                t.parse::<f64>().ok().filter(|f| f.is_finite())
            }
        }
        Value::Array(a) if a.is_empty() => Some(0.0),
        Value::Array(a) if a.len() == 1 => js_number(&Value::String(js_string(&a[0]))),
        _ => None,
    }
}

/// boolFromString without a default: Some(bool) or None for "throws".
fn bool_from_string(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

fn all_chars(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

fn published_at_ok(s: &str) -> bool {
    // ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$
    let b = s.as_bytes();
    let pat = b"dddd-dd-ddTdd:dd:dd";
    if b.len() != 20 && b.len() != 24 {
        return false;
    }
    let head_ok = pat.iter().zip(b).all(|(p, c)| match p {
        b'd' => c.is_ascii_digit(),
        other => other == c,
    });
    let tail = &b[19..];
    head_ok
        && match tail.len() {
            1 => tail == b"Z",
            5 => tail[0] == b'.' && tail[1..4].iter().all(u8::is_ascii_digit) && tail[4] == b'Z',
            _ => false,
        }
}

fn url_ok(v: &Value) -> bool {
    let s = js_string(v).to_ascii_lowercase();
    s.starts_with("http:") || s.starts_with("https:")
}

fn valid_platform_version(s: &Value) -> bool {
    let Value::String(s) = s else { return false };
    let b = s.as_bytes();
    if b.len() != 16 || !s.is_ascii() {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    num(0..4).is_some_and(|y| y >= 2012)
        && num(4..6).is_some_and(|m| (1..=12).contains(&m))
        && num(6..8).is_some_and(|d| (1..=31).contains(&d))
        && b[8] == b'T'
        && num(9..11).is_some_and(|h| h <= 23)
        && num(11..13).is_some_and(|m| m <= 59)
        && num(13..15).is_some_and(|x| x <= 59)
        && b[15] == b'Z'
}

fn driver(m: &Map<String, Value>, field: &str) -> Vec<FieldError> {
    let is_zvol = m.get("type").and_then(Value::as_str) == Some("zvol");
    match m.get(field) {
        None if is_zvol => vec![missing(field)],
        None => vec![],
        Some(v) if truthy(Some(v)) && !is_zvol => vec![invalid(
            field,
            Some(format!(
                "invalid image {field}: cannot have a value unless type is zvol"
            )),
        )],
        Some(Value::String(_)) => vec![],
        Some(_) => vec![invalid(
            field,
            Some(format!("invalid image {field} (must be a string)")),
        )],
    }
}

fn validate_field(m: &Map<String, Value>, field: &str) -> Vec<FieldError> {
    let get = |k: &str| m.get(k);
    let v = get(field);
    let mut e = Vec::new();
    let activated = get("activated").and_then(bool_from_string);
    match field {
        "v" => match v {
            None => e.push(missing(field)),
            Some(v) => {
                if js_number(v).is_none_or(|n| n < 0.0) {
                    e.push(invalid(
                        field,
                        Some("\"v\" must be a positive integer".into()),
                    ))
                }
            }
        },
        "uuid" | "owner" => match v {
            None => e.push(missing(field)),
            Some(v) if !is_uuid(&js_string(v)) => e.push(invalid(field, None)),
            _ => {}
        },
        "urn" => match v {
            None => e.push(missing(field)),
            Some(Value::String(_)) => {}
            Some(_) => e.push(invalid(field, None)),
        },
        "name" | "version" => match v {
            None => e.push(missing(field)),
            Some(v) => {
                let max = if field == "name" {
                    MAX_NAME_LENGTH
                } else {
                    MAX_VERSION_LENGTH
                };
                let extra = if field == "name" { "._/ -" } else { "._/+-" };
                if js_len(v).is_some_and(|l| l > max) {
                    e.push(invalid(
                        field,
                        Some(format!("image {field} is too long, max {max} characters")),
                    ));
                } else if !all_chars(&js_string(v), extra) {
                    e.push(invalid(
                        field,
                        Some(format!("image {field} has invalid characters")),
                    ));
                }
            }
        },
        "description" => match v {
            None => e.push(missing(field)),
            Some(v) if js_len(v).is_some_and(|l| l > MAX_DESCRIPTION_LENGTH) => e.push(invalid(
                field,
                Some(format!(
                    "image description is too long, max {MAX_DESCRIPTION_LENGTH} characters"
                )),
            )),
            _ => {}
        },
        "homepage" | "eula" => match v {
            None => e.push(missing(field)),
            Some(v) if !url_ok(v) => e.push(invalid(
                field,
                Some(format!("invalid image {field} URL protocol")),
            )),
            Some(v) if js_len(v).is_some_and(|l| l > MAX_URL_LENGTH) => e.push(invalid(
                field,
                Some(format!("image {field} URL is too long")),
            )),
            _ => {}
        },
        "disabled" | "activated" | "public" | "icon" => match v {
            None => e.push(missing(field)),
            Some(v) if bool_from_string(v).is_none() => e.push(invalid(field, None)),
            _ => {}
        },
        "published_at" => {
            if activated == Some(true) && v.is_none() {
                e.push(FieldError {
                    field: field.into(),
                    code: "MissingParameter".into(),
                    message: Some("if activated is \"true\" published_at must be present".into()),
                });
            } else if truthy(v) && !published_at_ok(&js_string(v.unwrap_or(&Value::Null))) {
                e.push(invalid(
                    field,
                    Some("published_at date not in \"YYYY-MM-DDTHH:MM:SS(.SSS)Z\" format".into()),
                ));
            }
        }
        "state" => match v {
            None => e.push(missing(field)),
            Some(Value::String(s)) if VALID_STATES.contains(&s.as_str()) => {}
            Some(_) => e.push(invalid(field, None)),
        },
        "type" | "os" => match v {
            None => e.push(missing(field)),
            Some(v) => {
                let s = js_string(v);
                let state = get("state").and_then(Value::as_str);
                let list = if field == "type" {
                    VALID_TYPES
                } else {
                    VALID_OSES
                };
                if s == "null" && v.is_string() {
                    if !matches!(state, Some("creating") | Some("failed")) {
                        e.push(invalid(
                            field,
                            Some(format!("invalid image {field}, \"null\"")),
                        ));
                    }
                } else if !list.contains(&s.as_str()) {
                    e.push(invalid(
                        field,
                        Some(format!(
                            "invalid image {field}, \"{s}\", must be one of: {}",
                            list.join(", ")
                        )),
                    ));
                }
            }
        },
        "nic_driver" | "disk_driver" | "cpu_type" => e.extend(driver(m, field)),
        "image_size" => {
            let is_zvol = get("type").and_then(Value::as_str) == Some("zvol");
            match v {
                None if is_zvol => e.push(missing(field)),
                None => {}
                Some(v) if truthy(Some(v)) && !is_zvol => e.push(invalid(
                    field,
                    Some(
                        "invalid image image_size: cannot have a value unless type is zvol".into(),
                    ),
                )),
                Some(v) if js_number(v).is_none_or(|n| n.fract() != 0.0) => e.push(invalid(
                    field,
                    Some("invalid image image_size (must be a positive integer)".into()),
                )),
                Some(_) => {}
            }
        }
        "files" => match v {
            None => {
                if activated == Some(true) {
                    e.push(FieldError {
                        field: field.into(),
                        code: "MissingParameter".into(),
                        message: Some("if activated is \"true\" files must be present".into()),
                    })
                }
            }
            Some(Value::Array(files)) => {
                let lxd = get("type").and_then(Value::as_str) == Some("lxd");
                if files.len() > 2 || (!lxd && files.len() > 1) {
                    e.push(invalid(
                        field,
                        Some("invalid image \"files\": too many files".into()),
                    ));
                } else {
                    for f in files {
                        if !truthy(f.get("sha1")) {
                            e.push(invalid(
                                field,
                                Some("invalid image \"files\": file missing \"sha1\" field".into()),
                            ));
                        }
                        if !truthy(f.get("size")) {
                            e.push(invalid(
                                field,
                                Some("invalid image \"files\": file missing \"size\" field".into()),
                            ));
                        }
                        match f.get("compression") {
                            c if !truthy(c) => e.push(invalid(
                                field,
                                Some("invalid image \"files\": file missing \"compression\" field".into()),
                            )),
                            Some(Value::String(c)) if VALID_COMPRESSIONS.contains(&c.as_str()) => {}
                            Some(c) => e.push(invalid(
                                field,
                                Some(format!(
                                    "invalid image \"files\": invalid compression \"{}\" (must be one of {})",
                                    js_string(c),
                                    VALID_COMPRESSIONS.join(", ")
                                )),
                            )),
                            None => {}
                        }
                    }
                }
            }
            Some(_) => e.push(invalid(
                field,
                Some("invalid image \"files\" (not an array)".into()),
            )),
        },
        "error" => match v {
            None => e.push(missing(field)),
            Some(Value::Object(_)) | Some(Value::Array(_)) | Some(Value::Null) => {}
            Some(_) => e.push(invalid(
                field,
                Some("invalid image \"error\" (not an object)".into()),
            )),
        },
        "acl" => match v {
            None => e.push(missing(field)),
            Some(Value::Array(a)) => {
                if a.iter().any(|x| !is_uuid(&js_string(x))) {
                    e.push(invalid(
                        field,
                        Some("invalid image \"acl\" (an item is not a UUID)".into()),
                    ));
                }
            }
            Some(_) => e.push(invalid(
                field,
                Some("invalid image \"acl\" (not an array)".into()),
            )),
        },
        "requirements" => e.extend(requirements(v)),
        "users" => match v {
            None => e.push(missing(field)),
            Some(Value::Array(a)) => {
                for u in a {
                    let ok = u
                        .as_object()
                        .is_some_and(|o| o.len() == 1 && o.contains_key("name"));
                    if !ok {
                        e.push(invalid(
                            field,
                            Some(format!("invalid image \"users\" entry: {u}")),
                        ));
                    }
                }
            }
            Some(_) => e.push(invalid(
                field,
                Some("invalid image \"users\" (not an array)".into()),
            )),
        },
        "tags" => match v {
            None => e.push(missing(field)),
            Some(Value::Object(_)) => {
                let len = v.map(|t| t.to_string().encode_utf16().count()).unwrap_or(0);
                if len > MAX_TAGS_LENGTH {
                    e.push(invalid(
                        field,
                        Some("image \"tags\" object is too big".into()),
                    ));
                }
            }
            Some(_) => e.push(invalid(
                field,
                Some("invalid image \"tags\" (not an object)".into()),
            )),
        },
        // Fields cloud images never carry: checked for presence only.
        // A manifest using them is outside what image-ci ships.
        _ => {
            if v.is_none() {
                e.push(missing(field));
            }
        }
    }
    e
}

fn requirements(v: Option<&Value>) -> Vec<FieldError> {
    let mut e = Vec::new();
    // upstream copies Object.keys(requirements) into a fresh object, so a
    // string or an array yields its indices as (unsupported) keys, and a
    // number or boolean yields nothing; null makes upstream throw.
    let reqs: Map<String, Value> = match v {
        None => return vec![missing("requirements")],
        Some(Value::Object(o)) => o.clone(),
        Some(Value::Null) => {
            return vec![invalid(
                "requirements",
                Some("invalid image \"requirements\" (null)".into()),
            )]
        }
        Some(Value::Array(a)) => (0..a.len())
            .map(|i| (i.to_string(), a[i].clone()))
            .collect(),
        Some(Value::String(s)) => (0..s.encode_utf16().count())
            .map(|i| (i.to_string(), Value::Null))
            .collect(),
        Some(_) => Map::new(),
    };
    let inv = |f: &str, m: &str| invalid(f, Some(m.to_string()));
    if truthy(reqs.get("networks")) {
        match reqs.get("networks") {
            Some(Value::Array(ns)) => {
                for n in ns {
                    let ok = n.as_object().is_some_and(|o| {
                        o.len() == 2 && o.contains_key("name") && o.contains_key("description")
                    });
                    if !ok {
                        e.push(inv(
                            "requirements.networks",
                            &format!("invalid image \"requirements.networks\" entry: {n}"),
                        ));
                    }
                }
            }
            _ => e.push(inv(
                "requirements.networks",
                "invalid image \"requirements.networks\" (not an array)",
            )),
        }
    }
    if truthy(reqs.get("brand")) && !reqs.get("brand").is_some_and(Value::is_string) {
        e.push(inv(
            "requirements.brand",
            "invalid image \"requirements.brand\" (not a string)",
        ));
    }
    if truthy(reqs.get("ssh_key")) && !reqs.get("ssh_key").is_some_and(Value::is_boolean) {
        e.push(inv(
            "requirements.ssh_key",
            "invalid image \"requirements.ssh_key\" (not a boolean)",
        ));
    }
    let ram = |k: &str, e: &mut Vec<FieldError>| -> Option<f64> {
        if !truthy(reqs.get(k)) {
            return None;
        }
        match reqs.get(k).and_then(Value::as_f64) {
            Some(n) if n.fract() == 0.0 => Some(n),
            _ => {
                e.push(inv(
                    &format!("requirements.{k}"),
                    &format!("invalid image \"requirements.{k}\" (not a positive integer)"),
                ));
                None
            }
        }
    };
    let min = ram("min_ram", &mut e);
    let max = ram("max_ram", &mut e);
    if let (Some(lo), Some(hi)) = (min, max) {
        if hi - lo < 0.0 {
            e.push(inv("requirements.max_ram", "min_ram must be <= max_ram"));
        }
    }
    for k in ["min_platform", "max_platform"] {
        if truthy(reqs.get(k)) {
            let f = format!("requirements.{k}");
            match reqs.get(k) {
                Some(Value::Object(o)) if !o.is_empty() => {
                    for ver in o.values() {
                        if !valid_platform_version(ver) {
                            e.push(inv(
                                &f,
                                &format!(
                                    "invalid image \"{f}\" entry: not a valid platform version"
                                ),
                            ));
                        }
                    }
                }
                _ => e.push(inv(&f, &format!("invalid image \"{f}\" (not an object)"))),
            }
        }
    }
    if truthy(reqs.get("bootrom")) {
        let brand = reqs.get("brand");
        if !truthy(brand) {
            e.push(FieldError {
                field: "requirements.bootrom".into(),
                code: "MissingParameter".into(),
                message: Some("\"requirements.brand\" not specified".into()),
            });
        } else if brand.and_then(Value::as_str) != Some("bhyve") {
            e.push(inv(
                "requirements.bootrom",
                "requirements.bootrom needs brand bhyve",
            ));
        } else if !matches!(
            reqs.get("bootrom").and_then(Value::as_str),
            Some("bios") | Some("uefi")
        ) {
            e.push(inv(
                "requirements.bootrom",
                "requirements.bootrom must be one of: bios, uefi",
            ));
        }
    }
    for k in reqs.keys() {
        if ![
            "networks",
            "brand",
            "ssh_key",
            "min_ram",
            "max_ram",
            "min_platform",
            "max_platform",
            "bootrom",
        ]
        .contains(&k.as_str())
        {
            e.push(inv(k, &format!("unsupported requirement \"{k}\"")));
        }
    }
    e
}

/// `validateDcManifest(m)`: `None` when valid.
///
/// Fields cloud images never carry (`origin`, `billing_tags`, `traits`,
/// `generate_passwords`, `inherited_directories`, `channels`) are accepted
/// as present without their value rules; image-ci's own verification
/// refuses manifests that carry them (see `verify`).
pub fn validate_dc(m: &Map<String, Value>) -> Option<Vec<FieldError>> {
    let mut errs = Vec::new();
    for f in DC_REQUIRED {
        errs.extend(validate_field(m, f));
    }
    for f in FIELDS {
        if !DC_REQUIRED.contains(f) && m.contains_key(*f) {
            errs.extend(validate_field(m, f));
        }
    }
    for k in m.keys() {
        if !FIELDS.contains(&k.as_str()) {
            errs.push(invalid(k, None));
        }
    }
    (!errs.is_empty()).then_some(errs)
}

/// Fields of the manifest that image-ci does not port the rules of.
pub const UNCHECKED_FIELDS: &[&str] = &[
    "origin",
    "billing_tags",
    "traits",
    "generate_passwords",
    "inherited_directories",
    "channels",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ubuntu() -> Map<String, Value> {
        let t = include_str!("../tests/data/manifest.in");
        let f = crate::artifact::Fill {
            uuid: "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41".into(),
            name: "ubuntu-24.04".into(),
            version: "20261125".into(),
            published_at: "2026-11-25T12:00:00Z".into(),
            os: "linux".into(),
            description: "Ubuntu".into(),
            homepage: "https://example.com/linux".into(),
            sha1: "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12".into(),
            size: 1234,
        };
        serde_json::from_str(&crate::artifact::fill(t, &f)).unwrap()
    }

    fn fields(m: &Map<String, Value>) -> Vec<(String, String)> {
        validate_dc(m)
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn filled_template_needs_only_activated() {
        let mut m = ubuntu();
        assert_eq!(
            fields(&m),
            [("activated".to_string(), "MissingParameter".to_string())]
        );
        m.insert("activated".into(), json!(true));
        assert_eq!(validate_dc(&m), None);
    }

    #[test]
    fn rules_reject_what_imgmanifest_rejects() {
        let mut base = ubuntu();
        base.insert("activated".into(), json!(true));
        let case = |k: &str, v: Value| {
            let mut m = base.clone();
            m.insert(k.into(), v);
            fields(&m)
        };
        let inv = |f: &str| vec![(f.to_string(), "Invalid".to_string())];
        assert_eq!(case("os", json!("ubuntu")), inv("os"));
        // drivers and image_size may only be set on zvols, as upstream says
        let t = case("type", json!("zfs"));
        assert_eq!(t[0], ("type".to_string(), "Invalid".to_string()));
        assert!(t.contains(&("image_size".to_string(), "Invalid".to_string())));
        assert_eq!(case("uuid", json!("not-a-uuid")), inv("uuid"));
        assert_eq!(case("name", json!("bad*name")), inv("name"));
        assert_eq!(case("version", json!("2026 11 25")), inv("version"));
        assert_eq!(
            case("published_at", json!("2026-11-25 12:00")),
            inv("published_at")
        );
        assert_eq!(case("homepage", json!("ftp://x")), inv("homepage"));
        assert_eq!(case("image_size", json!("big")), inv("image_size"));
        assert_eq!(case("state", json!("shipped")), inv("state"));
        assert_eq!(case("public", json!("yes")), inv("public"));
        assert_eq!(
            case(
                "files",
                json!([{"sha1": "x", "size": 1, "compression": "zip"}])
            ),
            inv("files")
        );
        assert_eq!(
            case(
                "files",
                json!([{"sha1": "x", "size": 0, "compression": "gzip"}])
            ),
            inv("files")
        );
        assert_eq!(
            case("users", json!([{"name": "root", "x": 1}])),
            inv("users")
        );
        assert_eq!(case("tags", json!([])), inv("tags"));
        assert_eq!(case("bogus", json!(1)), inv("bogus"));
        assert_eq!(case("requirements", json!({"frobs": 1})), inv("frobs"));
        assert_eq!(
            case("requirements", json!({"networks": [{"name": "net0"}]})),
            inv("requirements.networks")
        );
        let mut m = base.clone();
        m.remove("nic_driver");
        assert_eq!(
            fields(&m),
            [("nic_driver".into(), "MissingParameter".into())]
        );
        let mut m = base.clone();
        m.insert("type".into(), json!("zone-dataset"));
        let f = fields(&m);
        assert!(f.contains(&("nic_driver".into(), "Invalid".into())));
        assert!(f.contains(&("image_size".into(), "Invalid".into())));
    }

    #[test]
    fn platform_versions() {
        assert!(valid_platform_version(&json!("20130308T102805Z")));
        assert!(!valid_platform_version(&json!("20110308T102805Z")));
        assert!(!valid_platform_version(&json!("20131308T102805Z")));
        assert!(!valid_platform_version(&json!("2013030810280Z")));
    }
}
