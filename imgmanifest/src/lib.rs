//! Image manifest validation as IMGAPI does it in DC mode: the rules of npm
//! `imgmanifest` (3.2.1) `validateDcManifest`, ported field by field, with
//! JavaScript's coercions where they decide validity. Each error is
//! `{field, code: "MissingParameter"|"Invalid", message?}`. Used by the
//! simulated IMGAPI (every stored manifest) and by image-ci (nothing ships
//! that IMGAPI would refuse); a differential test in image-ci checks this
//! port against the npm package itself.

use serde_json::{json, Map, Value};

/// An error as imgmanifest reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// A lowercase `8-4-4-4-12` hex UUID, as IMGAPI requires.
pub use common::uuid::is_uuid;

const MAX_URL_LENGTH: usize = 1024;
const MAX_NAME_LENGTH: usize = 1024;
const MAX_VERSION_LENGTH: usize = 512;
const MAX_DESCRIPTION_LENGTH: usize = 10 * 1024;
const MAX_BILLING_TAG_LENGTH: usize = 128;
const MAX_TAGS_LENGTH: usize = 100 * 1024;

/// The manifest fields imgmanifest knows, in its order.
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

pub const VALID_TYPES: &[&str] = &[
    "zone-dataset",
    "zvol",
    "lx-dataset",
    "lxd",
    "docker",
    "other",
];
pub const VALID_OSES: &[&str] = &["smartos", "linux", "windows", "bsd", "illumos", "other"];
pub const VALID_COMPRESSIONS: &[&str] = &["gzip", "bzip2", "xz", "none"];

fn missing(f: &str) -> Value {
    json!({"field": f, "code": "MissingParameter"})
}

fn invalid(f: &str) -> Value {
    json!({"field": f, "code": "Invalid"})
}

fn invalid_msg(f: &str, m: impl Into<String>) -> Value {
    json!({"field": f, "code": "Invalid", "message": m.into()})
}

/// JS `%j`/`%s` rendering of a value inside messages.
fn j(v: &Value) -> String {
    v.to_string()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// imgmanifest's boolFromString: Ok(Some(b)) for booleans and "true"/"false".
fn bool_from(v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s == "true" => Ok(Some(true)),
        Value::String(s) if s == "false" => Ok(Some(false)),
        other => Err(format!(
            "TypeError: invalid value for \"undefined\": {}",
            j(other)
        )),
    }
}

fn is_url(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    lower.starts_with("http:") || lower.starts_with("https:")
}

fn is_js_integer(v: &Value) -> bool {
    v.as_f64().is_some_and(|n| n.fract() == 0.0)
}

/// imgmanifest's validPlatformVersion: `YYYYMMDDTHHMMSSZ` with a year from
/// 2012 and in-range month, day, hour, minute and second.
pub fn valid_platform_version(v: &Value) -> bool {
    let Value::String(s) = v else { return false };
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

fn published_at_ok(s: &str) -> bool {
    // ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$
    let b = s.as_bytes();
    let base = |b: &[u8]| {
        b.len() >= 20
            && [4usize, 7].iter().all(|&i| b[i] == b'-')
            && b[10] == b'T'
            && [13usize, 16].iter().all(|&i| b[i] == b':')
            && [0usize, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
                .iter()
                .all(|&i| b[i].is_ascii_digit())
    };
    if !base(b) {
        return false;
    }
    match b.len() {
        20 => b[19] == b'Z',
        24 => b[19] == b'.' && b[20..23].iter().all(u8::is_ascii_digit) && b[23] == b'Z',
        _ => false,
    }
}

#[allow(clippy::collapsible_match)]
fn validate_field(m: &Map<String, Value>, field: &str) -> Vec<Value> {
    let mut e = Vec::new();
    let get = |k: &str| m.get(k);
    let ty = get("type").and_then(Value::as_str).unwrap_or_default();
    let state = get("state").and_then(Value::as_str).unwrap_or_default();
    let activated = get("activated").and_then(|v| bool_from(v).ok().flatten());
    let v = match get(field) {
        Some(v) => v,
        None => {
            match field {
                "published_at" => {
                    if activated == Some(true) {
                        e.push(json!({"field": "published_at", "code": "MissingParameter", "message": "if activated is \"true\" published_at must be present"}));
                    }
                }
                "files" => {
                    if activated == Some(true) {
                        e.push(json!({"field": "files", "code": "MissingParameter", "message": "if activated is \"true\" files must be present"}));
                    }
                }
                "nic_driver" | "disk_driver" | "cpu_type" | "image_size" => {
                    if ty == "zvol" {
                        e.push(missing(field));
                    }
                }
                _ => e.push(missing(field)),
            }
            return e;
        }
    };
    match field {
        "v" => {
            if v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .is_none_or(|n| n < 0.0)
            {
                e.push(invalid_msg("v", "\"v\" must be a positive integer"));
            }
        }
        "uuid" | "owner" | "origin" => {
            if !v.as_str().is_some_and(is_uuid) {
                e.push(invalid(field));
            }
        }
        "urn" => {
            if !v.is_string() {
                e.push(invalid("urn"));
            }
        }
        "name" => {
            let n = s(v);
            if n.chars().count() > MAX_NAME_LENGTH {
                e.push(invalid_msg(
                    "name",
                    format!("image name is too long, max {MAX_NAME_LENGTH} characters"),
                ));
            } else if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._/ -".contains(c))
            {
                e.push(invalid_msg(
                    "name",
                    "image name has invalid characters (only alpha-numeric characters and \" \", \".\", \"-\", \"_\" and \"/\" are allowed)",
                ));
            }
        }
        "version" => {
            let n = s(v);
            if n.chars().count() > MAX_VERSION_LENGTH {
                e.push(invalid_msg(
                    "version",
                    format!("image version is too long, max {MAX_VERSION_LENGTH} characters"),
                ));
            } else if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._/+-".contains(c))
            {
                e.push(invalid_msg(
                    "version",
                    "image version has invalid characters (only alpha-numeric characters and \".\", \"-\", \"_\" and \"/\" are allowed)",
                ));
            }
        }
        "description" => {
            if s(v).chars().count() > MAX_DESCRIPTION_LENGTH {
                e.push(invalid_msg(
                    "description",
                    format!(
                        "image description is too long, max {MAX_DESCRIPTION_LENGTH} characters"
                    ),
                ));
            }
        }
        "homepage" | "eula" => {
            let what = if field == "homepage" {
                "homepage"
            } else {
                "EULA"
            };
            let u = s(v);
            if !is_url(&u) {
                e.push(invalid_msg(
                    field,
                    format!("invalid image {what} URL protocol"),
                ));
            } else if u.len() > MAX_URL_LENGTH {
                e.push(invalid_msg(
                    field,
                    format!("image {what} URL is too long (max {MAX_URL_LENGTH} characters)"),
                ));
            }
        }
        "disabled" | "activated" => {
            if bool_from(v).is_err() {
                e.push(invalid(field));
            }
        }
        "published_at" => {
            if !v.is_null() && v.as_str() != Some("") && !v.as_str().is_some_and(published_at_ok) {
                e.push(invalid_msg(
                    "published_at",
                    "published_at date not in \"YYYY-MM-DDTHH:MM:SS(.SSS)Z\" format",
                ));
            }
        }
        "state" => {
            if !v.as_str().is_some_and(|s| {
                ["active", "unactivated", "disabled", "failed", "creating"].contains(&s)
            }) {
                e.push(invalid("state"));
            }
        }
        "public" => {
            if let Err(msg) = bool_from(v) {
                e.push(invalid_msg("public", msg));
            }
        }
        "type" => {
            if v.as_str() == Some("null") {
                if state != "creating" && state != "failed" {
                    e.push(invalid_msg("type", "invalid image type, \"null\""));
                }
            } else if !v.as_str().is_some_and(|t| VALID_TYPES.contains(&t)) {
                e.push(invalid_msg(
                    "type",
                    format!(
                        "invalid image type, \"{}\", must be one of: {}",
                        s(v),
                        VALID_TYPES.join(", ")
                    ),
                ));
            }
        }
        "os" => {
            if v.as_str() == Some("null") {
                if state != "creating" && state != "failed" {
                    e.push(invalid_msg("os", "invalid image os, \"null\""));
                }
            } else if !v.as_str().is_some_and(|t| VALID_OSES.contains(&t)) {
                e.push(invalid_msg(
                    "os",
                    format!(
                        "invalid image os, \"{}\", must be one of: {}",
                        s(v),
                        VALID_OSES.join(", ")
                    ),
                ));
            }
        }
        "nic_driver" | "disk_driver" | "cpu_type" => {
            let truthy = !matches!(v, Value::Null | Value::Bool(false))
                && v.as_str() != Some("")
                && v.as_f64() != Some(0.0);
            if truthy && ty != "zvol" {
                let gap = if field == "disk_driver" { "  " } else { " " };
                e.push(invalid_msg(
                    field,
                    format!("invalid image {field}: \"{}\" (cannot have a value{gap}when image type is zvol)", s(v)),
                ));
            } else if !v.is_string() {
                e.push(invalid_msg(
                    field,
                    format!("invalid image {field}: \"{}\" (must be a string)", s(v)),
                ));
            }
        }
        "image_size" => {
            let truthy = !matches!(v, Value::Null | Value::Bool(false))
                && v.as_str() != Some("")
                && v.as_f64() != Some(0.0);
            if truthy && ty != "zvol" {
                e.push(invalid_msg(
                    "image_size",
                    format!("invalid image image_size: \"{}\" (cannot have a value when image type is zvol)", s(v)),
                ));
            } else {
                let n = match v {
                    Value::Number(_) => Some(v.clone()),
                    Value::String(x) => x.trim().parse::<f64>().ok().map(Value::from),
                    _ => None,
                };
                if !n.as_ref().is_some_and(is_js_integer) {
                    e.push(invalid_msg(
                        "image_size",
                        format!(
                            "invalid image image_size: \"{}\" (must be a positive integer)",
                            s(v)
                        ),
                    ));
                }
            }
        }
        "error" => {
            if !v.is_object() && !v.is_null() && !v.is_array() {
                e.push(invalid_msg(
                    "error",
                    format!("invalid image \"error\" (not an object): {}", j(v)),
                ));
            }
        }
        "files" => match v.as_array() {
            None => e.push(invalid_msg(
                "files",
                format!("invalid image \"files\" (not an array): {}", s(v)),
            )),
            Some(files) if files.len() > 2 || (ty != "lxd" && files.len() > 1) => e.push(
                invalid_msg("files", "invalid image \"files\": too many files"),
            ),
            Some(files) => {
                for file in files {
                    let f = |k: &str| {
                        file.get(k).filter(|x| {
                            !matches!(x, Value::Null | Value::Bool(false))
                                && x.as_str() != Some("")
                                && x.as_f64() != Some(0.0)
                        })
                    };
                    if f("sha1").is_none() {
                        e.push(invalid_msg(
                            "files",
                            "invalid image \"files\": file missing \"sha1\" field",
                        ));
                    }
                    if f("size").is_none() {
                        e.push(invalid_msg(
                            "files",
                            "invalid image \"files\": file missing \"size\" field",
                        ));
                    }
                    match f("compression") {
                        None => e.push(invalid_msg("files", "invalid image \"files\": file missing \"compression\" field")),
                        Some(c) if !c.as_str().is_some_and(|c| VALID_COMPRESSIONS.contains(&c)) => e.push(invalid_msg(
                            "files",
                            format!("invalid image \"files\": invalid compression \"{}\" (must be one of {})", s(c), VALID_COMPRESSIONS.join(", ")),
                        )),
                        Some(_) => {}
                    }
                }
            }
        },
        "icon" | "generate_passwords" => {
            if bool_from(v).is_err() {
                e.push(invalid_msg(
                    field,
                    format!(
                        "invalid image \"{field}\" (not an accepted boolean value): {}",
                        j(v)
                    ),
                ));
            }
        }
        "acl" => match v.as_array() {
            None => e.push(invalid_msg(
                "acl",
                format!("invalid image \"acl\" (not an array): {}", s(v)),
            )),
            Some(a) => {
                if let Some((i, x)) = a
                    .iter()
                    .enumerate()
                    .find(|(_, x)| !x.as_str().is_some_and(is_uuid))
                {
                    e.push(invalid_msg(
                        "acl",
                        format!("invalid image \"acl\" (item {i} is not a UUID): {}", s(x)),
                    ));
                }
            }
        },
        "requirements" => e.extend(validate_requirements(v)),
        "users" => match v.as_array() {
            None => e.push(invalid_msg(
                "users",
                format!("invalid image \"users\" (not an array): {}", j(v)),
            )),
            Some(a) => {
                for u in a {
                    if !u
                        .as_object()
                        .is_some_and(|o| o.len() == 1 && o.contains_key("name"))
                    {
                        e.push(invalid_msg(
                            "users",
                            format!("invalid image \"users\" entry: {}", j(u)),
                        ));
                    }
                }
            }
        },
        "billing_tags" => match v.as_array() {
            None => e.push(invalid_msg(
                "billing_tags",
                format!("invalid image \"billing_tags\" (not an array): {}", s(v)),
            )),
            Some(a) => {
                for t in a {
                    if t.as_str()
                        .is_none_or(|t| t.chars().count() > MAX_BILLING_TAG_LENGTH)
                    {
                        e.push(invalid_msg(
                            "billing_tags",
                            format!("invalid image \"billing_tags\" entry : {}", s(t)),
                        ));
                    }
                }
            }
        },
        "traits" => match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if !(x.is_string() || x.is_boolean() || x.is_array()) {
                        e.push(invalid_msg(
                            "traits",
                            format!("invalid image \"traits\" entry: ({k}, {})", j(x)),
                        ));
                    }
                }
            }
            Value::Array(_) | Value::Null => {}
            other => e.push(invalid_msg(
                "traits",
                format!("invalid image \"traits\" (not an object): {}", j(other)),
            )),
        },
        "tags" => match v {
            Value::Object(_) => {
                let len = v.to_string().len();
                if len > MAX_TAGS_LENGTH {
                    e.push(invalid_msg("tags", format!("image \"tags\" object is too big: {len} characters (max {MAX_TAGS_LENGTH})")));
                }
            }
            other => e.push(invalid_msg(
                "tags",
                format!("invalid image \"tags\" (not an object): {}", j(other)),
            )),
        },
        "inherited_directories" => {
            if ty != "zone-dataset" {
                e.push(invalid_msg(
                    "inherited_directories",
                    format!("invalid image \"inherited_directories\" (only valid for a type:zone-dataset image): {}", j(v)),
                ));
            } else if let Some(a) = v.as_array() {
                for x in a {
                    if !x.is_string() {
                        e.push(invalid_msg(
                            "inherited_directories",
                            format!("invalid image \"inherited_directories\" entry: {}", j(x)),
                        ));
                    }
                }
            } else {
                e.push(invalid_msg(
                    "inherited_directories",
                    format!(
                        "invalid image \"inherited_directories\" (not an array): {}",
                        j(v)
                    ),
                ));
            }
        }
        "channels" => {
            // A DC-mode IMGAPI validates without channel config.
            e.push(invalid_msg(
                "channels",
                "channels is invalid with an IMGAPI not configured for channels",
            ));
        }
        _ => {}
    }
    e
}

fn validate_requirements(v: &Value) -> Vec<Value> {
    let mut e = Vec::new();
    // imgmanifest copies Object.keys(requirements) into a fresh object, so a
    // string or an array yields its indices as (unsupported) keys, and a
    // number or boolean yields nothing; null makes it throw.
    let owned: Map<String, Value> = match v {
        Value::Object(o) => o.clone(),
        Value::Null => {
            e.push(invalid_msg(
                "requirements",
                "invalid image \"requirements\" (null)",
            ));
            return e;
        }
        Value::Array(a) => (0..a.len())
            .map(|i| (i.to_string(), a[i].clone()))
            .collect(),
        Value::String(s) => (0..s.encode_utf16().count())
            .map(|i| (i.to_string(), Value::Null))
            .collect(),
        _ => Map::new(),
    };
    let reqs = &owned;
    fn truthy(x: Option<&Value>) -> Option<&Value> {
        x.filter(|x| {
            !matches!(x, Value::Null | Value::Bool(false))
                && x.as_str() != Some("")
                && x.as_f64() != Some(0.0)
        })
    }
    if let Some(n) = truthy(reqs.get("networks")) {
        match n.as_array() {
            None => e.push(invalid_msg(
                "requirements.networks",
                format!(
                    "invalid image \"requirements.networks\" (not an array): {}",
                    j(n)
                ),
            )),
            Some(a) => {
                for x in a {
                    let ok = x.as_object().is_some_and(|o| {
                        o.len() == 2 && o.contains_key("name") && o.contains_key("description")
                    });
                    if !ok {
                        e.push(invalid_msg(
                            "requirements.networks",
                            format!("invalid image \"requirements.networks\" entry: {}", j(x)),
                        ));
                    }
                }
            }
        }
    }
    if let Some(b) = truthy(reqs.get("brand")) {
        if !b.is_string() {
            e.push(invalid_msg(
                "requirements.brand",
                format!(
                    "invalid image \"requirements.brand\" (not a string): {}",
                    j(b)
                ),
            ));
        }
    }
    if let Some(k) = truthy(reqs.get("ssh_key")) {
        if !k.is_boolean() {
            e.push(invalid_msg(
                "requirements.ssh_key",
                format!(
                    "invalid image \"requirements.ssh_key\" (not a boolean): {}",
                    j(k)
                ),
            ));
        }
    }
    let mut min_ram = None;
    let mut max_ram = None;
    for (k, slot) in [("min_ram", &mut min_ram), ("max_ram", &mut max_ram)] {
        if let Some(x) = truthy(reqs.get(k)) {
            if x.is_number() && is_js_integer(x) {
                *slot = x.as_f64();
            } else {
                e.push(invalid_msg(
                    &format!("requirements.{k}"),
                    format!(
                        "invalid image \"requirements.{k}\" (not a positive integer): {}",
                        j(x)
                    ),
                ));
            }
        }
    }
    if let (Some(a), Some(b)) = (min_ram, max_ram) {
        if b < a {
            e.push(invalid_msg(
                "requirements.max_ram",
                format!("min_ram must be <= max_ram, but:min_ram={a}, max_ram={b}"),
            ));
        }
    }
    for k in ["min_platform", "max_platform"] {
        if let Some(x) = truthy(reqs.get(k)) {
            match x.as_object().filter(|o| !o.is_empty()) {
                None => e.push(invalid_msg(
                    &format!("requirements.{k}"),
                    format!(
                        "invalid image \"requirements.{k}\" (not an object): {}",
                        j(x)
                    ),
                )),
                Some(o) => {
                    for (ver, stamp) in o {
                        if !valid_platform_version(stamp) {
                            e.push(invalid_msg(
                                &format!("requirements.{k}"),
                                format!("invalid image \"requirements.{k}\" entry: \"{ver}: {}\" not a valid platform version", s(stamp)),
                            ));
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = truthy(reqs.get("bootrom")) {
        match reqs.get("brand").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            None => e.push(json!({"field": "requirements.bootrom", "code": "MissingParameter", "message": "\"requirements.brand\" not specified. \"requirements.bootrom\" requires \"requirements.brand\" to be set to \"bhyve\""})),
            Some(brand) if brand != "bhyve" => e.push(invalid_msg(
                "requirements.bootrom",
                format!("invalid bootrom \"requirements.bootrom\" not supported with \"{brand}\" brand; \"requirements.brand\" must be \"bhyve\""),
            )),
            Some(_) => {
                if !b.as_str().is_some_and(|b| ["bios", "uefi"].contains(&b)) {
                    e.push(invalid_msg(
                        "requirements.bootrom",
                        format!("invalid bootrom \"requirements.bootrom\" invalid entry \"{}\"; must be one of: bios, uefi", s(b)),
                    ));
                }
            }
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
            e.push(invalid_msg(k, format!("unsupported requirement \"{k}\"")));
        }
    }
    e
}

/// `validateDcManifest(m)`: `None` when valid.
pub fn validate_dc(m: &Map<String, Value>) -> Option<Vec<FieldError>> {
    validate_dc_json(m).map(|errs| {
        errs.into_iter()
            .map(|e| serde_json::from_value(e).expect("errors are built as FieldError objects"))
            .collect()
    })
}

/// [`validate_dc`] with the errors as the JSON objects IMGAPI answers with.
pub fn validate_dc_json(m: &Map<String, Value>) -> Option<Vec<Value>> {
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
            errs.push(invalid(k));
        }
    }
    (!errs.is_empty()).then_some(errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// triton-cloud-images' manifest.in filled as build_all.sh does (the
    /// notes' probe), plus `activated`.
    fn ubuntu() -> Map<String, Value> {
        json!({
            "v": 2, "uuid": "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41",
            "owner": "00000000-0000-0000-0000-000000000000", "name": "ubuntu-24.04",
            "version": "20261125", "state": "active", "disabled": false, "public": true,
            "published_at": "2026-11-25T12:00:00Z", "type": "zvol", "os": "linux",
            "files": [{"sha1": "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", "size": 734003200, "compression": "gzip"}],
            "description": "Ubuntu 24.04", "homepage": "https://ubuntu.com",
            "requirements": {"networks": [{"name": "net0", "description": "public"}], "ssh_key": true},
            "users": [{"name": "root"}], "nic_driver": "virtio", "disk_driver": "virtio",
            "cpu_type": "host", "image_size": 10240, "tags": {"role": "os"}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn notes_probe_results() {
        let mut m = ubuntu();
        assert_eq!(
            validate_dc_json(&m).unwrap(),
            vec![json!({"field": "activated", "code": "MissingParameter"})]
        );
        m.insert("activated".into(), json!(true));
        assert_eq!(validate_dc_json(&m), None);
        let mut b = m.clone();
        b["requirements"]["brand"] = json!("builder");
        assert_eq!(validate_dc_json(&b), None);
        b["requirements"]["brand"] = json!(42);
        assert_eq!(
            validate_dc_json(&b).unwrap()[0]["message"],
            "invalid image \"requirements.brand\" (not a string): 42"
        );
        let mut p = m.clone();
        p["requirements"]["min_platform"] = json!({"7.0": "2026-11-01"});
        assert_eq!(
            validate_dc_json(&p).unwrap()[0]["message"],
            "invalid image \"requirements.min_platform\" entry: \"7.0: 2026-11-01\" not a valid platform version"
        );
        let mut f = m.clone();
        f["files"][0].as_object_mut().unwrap().remove("sha1");
        assert_eq!(
            validate_dc_json(&f).unwrap()[0]["message"],
            "invalid image \"files\": file missing \"sha1\" field"
        );
        let mut t = m.clone();
        t.insert("type".into(), json!("bhyve"));
        assert_eq!(validate_dc_json(&t).unwrap().len(), 5);
        let mut o = m.clone();
        o.insert("os".into(), json!("ubuntu"));
        assert_eq!(validate_dc_json(&o).unwrap()[0]["field"], "os");
        let mut x = m.clone();
        x["files"][0]["compression"] = json!("xz");
        x["files"][0]["size"] = json!("734003200");
        assert_eq!(validate_dc_json(&x), None);
        let mut u = m.clone();
        u.insert("bogus".into(), json!(1));
        assert_eq!(
            validate_dc_json(&u).unwrap(),
            vec![json!({"field": "bogus", "code": "Invalid"})]
        );
    }
}
