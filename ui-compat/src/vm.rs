//! The VM model: the fields every brand shares, typed, and the whole object
//! kept as raw JSON. Decoding a list never fails because of one element.

use crate::brands::{Brand, Kind};
use serde::Serialize;
use serde_json::{Map, Value};

/// A VM object as `vmadm get` and vminfod give it.
#[derive(Clone, Debug, Serialize)]
pub struct Vm {
    pub uuid: String,
    pub brand: Brand,
    pub alias: Option<String>,
    pub state: Option<String>,
    pub hvm: Option<bool>,
    pub image_uuid: Option<String>,
    /// MiB: `ram` for HVMs, `max_physical_memory` for zones.
    pub ram: Option<u64>,
    pub max_physical_memory: Option<u64>,
    /// GiB (`quota` may be a number or a numeric string).
    pub quota: Option<u64>,
    pub vcpus: Option<u64>,
    pub cpu_cap: Option<u64>,
    pub autoboot: Option<bool>,
    pub owner_uuid: Option<String>,
    pub zonepath: Option<String>,
    pub create_timestamp: Option<String>,
    pub last_modified: Option<String>,
    pub platform_buildstamp: Option<String>,
    pub nics: Vec<Nic>,
    pub disks: Vec<Disk>,
    /// The whole object, as received.
    #[serde(skip)]
    pub raw: Value,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Nic {
    pub interface: Option<String>,
    pub mac: Option<String>,
    pub nic_tag: Option<String>,
    pub ip: Option<String>,
    pub ips: Vec<String>,
    pub netmask: Option<String>,
    pub gateways: Vec<String>,
    pub primary: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Disk {
    pub path: Option<String>,
    pub size: Option<u64>,
    pub model: Option<String>,
    pub image_uuid: Option<String>,
    pub boot: Option<bool>,
}

/// An element of a VM list that could not be read as a VM.
#[derive(Clone, Debug, Serialize)]
pub struct Unreadable {
    /// Position in the list it came from (0 for a single object).
    pub index: usize,
    /// The uuid, when the element had a readable one.
    pub uuid: Option<String>,
    pub alias: Option<String>,
    pub brand: Option<String>,
    /// Why it could not be read.
    pub error: String,
    #[serde(skip)]
    pub raw: Value,
}

/// One element of a VM list.
#[derive(Clone, Debug)]
pub enum VmEntry {
    Vm(Box<Vm>),
    Unreadable(Unreadable),
}

impl VmEntry {
    pub fn uuid(&self) -> Option<&str> {
        match self {
            VmEntry::Vm(v) => Some(&v.uuid),
            VmEntry::Unreadable(u) => u.uuid.as_deref(),
        }
    }

    pub fn raw(&self) -> &Value {
        match self {
            VmEntry::Vm(v) => &v.raw,
            VmEntry::Unreadable(u) => &u.raw,
        }
    }

    pub fn as_vm(&self) -> Option<&Vm> {
        match self {
            VmEntry::Vm(v) => Some(v),
            VmEntry::Unreadable(_) => None,
        }
    }
}

/// The source was not a JSON array (or object, for one VM) at all.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("VM list is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("VM list is not a JSON array (got {0})")]
    NotArray(&'static str),
}

/// A field that is present but of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: expected {expected}, got {got}")]
pub struct FieldError {
    pub field: String,
    pub expected: &'static str,
    pub got: String,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn bad(field: &str, expected: &'static str, v: &Value) -> FieldError {
    let got = match v {
        Value::String(s) => format!("string {:?}", truncate(s, 40)),
        Value::Number(n) => format!("number {n}"),
        other => type_name(other).to_string(),
    };
    FieldError {
        field: field.to_string(),
        expected,
        got,
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

/// Optional string: absent or null is `None`.
fn opt_str(m: &Map<String, Value>, k: &str) -> Result<Option<String>, FieldError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(bad(k, "a string", v)),
    }
}

/// Optional non-negative integer; numeric strings (as vmadm allows) count.
fn opt_u64(m: &Map<String, Value>, k: &str) -> Result<Option<u64>, FieldError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| bad(k, "a whole number", &Value::Number(n.clone()))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad(k, "a whole number", &Value::String(s.clone()))),
        Some(v) => Err(bad(k, "a whole number", v)),
    }
}

/// Optional boolean; "true"/"false" strings count, as vmadm allows.
fn opt_bool(m: &Map<String, Value>, k: &str) -> Result<Option<bool>, FieldError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(v) => Err(bad(k, "a boolean", v)),
    }
}

fn str_list(m: &Map<String, Value>, k: &str) -> Result<Vec<String>, FieldError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(&format!("{k}[{i}]"), "a string", other)),
            })
            .collect(),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()),
        Some(v) => Err(bad(k, "an array of strings", v)),
    }
}

/// Elements of an array-of-objects field, each with its path (`nics[0]`).
type Elements<'a> = Vec<(String, &'a Map<String, Value>)>;

fn objects<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Elements<'a>, FieldError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => Ok((format!("{k}[{i}]"), o)),
                other => Err(bad(&format!("{k}[{i}]"), "an object", other)),
            })
            .collect(),
        Some(v) => Err(bad(k, "an array of objects", v)),
    }
}

fn prefixed(prefix: &str, e: FieldError) -> FieldError {
    FieldError {
        field: format!("{prefix}.{}", e.field),
        ..e
    }
}

fn nic(prefix: &str, m: &Map<String, Value>) -> Result<Nic, FieldError> {
    let p = |e| prefixed(prefix, e);
    Ok(Nic {
        interface: opt_str(m, "interface").map_err(p)?,
        mac: opt_str(m, "mac").map_err(p)?,
        nic_tag: opt_str(m, "nic_tag").map_err(p)?,
        ip: opt_str(m, "ip").map_err(p)?,
        ips: str_list(m, "ips").map_err(p)?,
        netmask: opt_str(m, "netmask").map_err(p)?,
        gateways: str_list(m, "gateways").map_err(p)?,
        primary: opt_bool(m, "primary").map_err(p)?,
    })
}

fn disk(prefix: &str, m: &Map<String, Value>) -> Result<Disk, FieldError> {
    let p = |e| prefixed(prefix, e);
    Ok(Disk {
        path: opt_str(m, "path").map_err(p)?,
        size: opt_u64(m, "size").map_err(p)?,
        model: opt_str(m, "model").map_err(p)?,
        image_uuid: opt_str(m, "image_uuid").map_err(p)?,
        boot: opt_bool(m, "boot").map_err(p)?,
    })
}

impl Vm {
    /// Read one VM object. Only `brand` and an identity (`uuid`, or
    /// `zonename` when `uuid` is absent) are required; every other field may
    /// be missing, but a field that is present must have a usable type.
    pub fn from_value(v: Value) -> Result<Vm, String> {
        Vm::read(v).map_err(|(e, _)| e)
    }

    /// As [`Vm::from_value`], handing the value back on failure.
    fn read(v: Value) -> Result<Vm, (String, Value)> {
        match Vm::fields(&v) {
            Ok(mut vm) => {
                vm.raw = v;
                Ok(vm)
            }
            Err(e) => Err((e, v)),
        }
    }

    fn fields(v: &Value) -> Result<Vm, String> {
        let m = match v {
            Value::Object(m) => m,
            other => return Err(format!("not a VM object: got {}", type_name(other))),
        };
        let uuid = match opt_str(m, "uuid").map_err(|e| e.to_string())? {
            Some(u) if !u.is_empty() => u,
            _ => match opt_str(m, "zonename").map_err(|e| e.to_string())? {
                Some(z) if !z.is_empty() => z,
                _ => return Err("missing field `uuid`".into()),
            },
        };
        let brand = match opt_str(m, "brand").map_err(|e| e.to_string())? {
            Some(b) if !b.is_empty() => Brand::parse(&b),
            _ => return Err("missing field `brand`".into()),
        };
        let r = (|| -> Result<Vm, FieldError> {
            let disks = objects(m, "disks")?
                .into_iter()
                .map(|(p, o)| disk(&p, o))
                .collect::<Result<Vec<_>, _>>()?;
            let nics = objects(m, "nics")?
                .into_iter()
                .map(|(p, o)| nic(&p, o))
                .collect::<Result<Vec<_>, _>>()?;
            let mut image_uuid = opt_str(m, "image_uuid")?;
            if image_uuid.is_none() {
                image_uuid = disks
                    .iter()
                    .find(|d| d.boot == Some(true))
                    .or(disks.first())
                    .and_then(|d| d.image_uuid.clone());
            }
            Ok(Vm {
                uuid: uuid.clone(),
                brand: brand.clone(),
                alias: opt_str(m, "alias")?,
                state: opt_str(m, "state")?,
                hvm: opt_bool(m, "hvm")?,
                image_uuid,
                ram: opt_u64(m, "ram")?,
                max_physical_memory: opt_u64(m, "max_physical_memory")?,
                quota: opt_u64(m, "quota")?,
                vcpus: opt_u64(m, "vcpus")?,
                cpu_cap: opt_u64(m, "cpu_cap")?,
                autoboot: opt_bool(m, "autoboot")?,
                owner_uuid: opt_str(m, "owner_uuid")?,
                zonepath: opt_str(m, "zonepath")?,
                create_timestamp: opt_str(m, "create_timestamp")?,
                last_modified: opt_str(m, "last_modified")?,
                platform_buildstamp: opt_str(m, "platform_buildstamp")?,
                nics,
                disks,
                raw: Value::Null,
            })
        })();
        r.map_err(|e| e.to_string())
    }

    /// HVM or OS: from the brand table, else from the object's `hvm` flag.
    pub fn kind(&self) -> Option<Kind> {
        self.brand
            .kind()
            .or(self.hvm.map(|h| if h { Kind::Hvm } else { Kind::Os }))
    }

    /// Memory in MiB as people think of it for this VM.
    pub fn memory(&self) -> Option<u64> {
        match self.kind() {
            Some(Kind::Hvm) => self.ram.or(self.max_physical_memory),
            _ => self.max_physical_memory.or(self.ram),
        }
    }

    /// The primary nic's addresses (or the first nic's).
    pub fn primary_ips(&self) -> Vec<String> {
        let n = self
            .nics
            .iter()
            .find(|n| n.primary == Some(true))
            .or(self.nics.first());
        match n {
            Some(n) if !n.ips.is_empty() => n.ips.clone(),
            Some(n) => n.ip.iter().cloned().collect(),
            None => Vec::new(),
        }
    }
}

/// Turn one JSON element into an entry; never fails.
pub fn decode_entry(index: usize, v: Value) -> VmEntry {
    match Vm::read(v) {
        Ok(vm) => VmEntry::Vm(Box::new(vm)),
        Err((error, v)) => {
            let get = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            VmEntry::Unreadable(Unreadable {
                index,
                uuid: get("uuid").or_else(|| get("zonename")),
                alias: get("alias"),
                brand: get("brand"),
                error,
                raw: v,
            })
        }
    }
}

/// Decode a `GET /vms` body. Fails only when the body is not a JSON array;
/// each element that is not a readable VM becomes [`VmEntry::Unreadable`].
pub fn decode_list(body: &[u8]) -> Result<Vec<VmEntry>, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(DecodeError::NotJson)?;
    match v {
        Value::Array(a) => Ok(a
            .into_iter()
            .enumerate()
            .map(|(i, v)| decode_entry(i, v))
            .collect()),
        other => Err(DecodeError::NotArray(type_name(&other))),
    }
}

/// Decode a `GET /vms/<uuid>` body: one VM, or one unreadable entry.
pub fn decode_one(body: &[u8]) -> Result<VmEntry, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(DecodeError::NotJson)?;
    Ok(decode_entry(0, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_numbers_and_strict_types() {
        let vm =
            Vm::from_value(json!({"uuid":"u","brand":"joyent","quota":"20","ram":512})).unwrap();
        assert_eq!(vm.quota, Some(20));
        assert_eq!(vm.ram, Some(512));
        let e = Vm::from_value(json!({"uuid":"u","brand":"joyent","ram":"lots"})).unwrap_err();
        assert!(e.contains("`ram`"), "{e}");
        let e =
            Vm::from_value(json!({"uuid":"u","brand":"joyent","nics":[{"ips":[1]}]})).unwrap_err();
        assert!(e.contains("nics[0].ips[0]"), "{e}");
    }

    #[test]
    fn list_survives_garbage() {
        let body = br#"[{"uuid":"a","brand":"futurebrand"}, 42, {"uuid":7,"brand":"joyent"}, {"brand":"lx"}]"#;
        let l = decode_list(body).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].as_vm().unwrap().brand.as_str(), "futurebrand");
        assert!(matches!(&l[1], VmEntry::Unreadable(u) if u.error.contains("not a VM object")));
        assert!(matches!(&l[2], VmEntry::Unreadable(u) if u.error.contains("`uuid`")));
        assert!(
            matches!(&l[3], VmEntry::Unreadable(u) if u.error.contains("missing field `uuid`"))
        );
        assert!(decode_list(b"{}").is_err());
        assert!(decode_list(b"nope").is_err());
    }

    #[test]
    fn hvm_image_comes_from_boot_disk() {
        let vm = Vm::from_value(json!({"uuid":"u","brand":"bhyve","ram":1024,
            "disks":[{"image_uuid":"img","boot":true,"size":10240}]}))
        .unwrap();
        assert_eq!(vm.image_uuid.as_deref(), Some("img"));
        assert_eq!(vm.memory(), Some(1024));
        assert_eq!(vm.kind(), Some(Kind::Hvm));
    }
}
