//! `vmadm create` planning for OS (joyent-style) brands: normalize a
//! payload as VM.create does, then render the zonecfg text createZone sends
//! and the steps that follow. Nothing is run.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::host::NodeFacts;
use crate::jsval;
use crate::quote::{self, Quoting};
use crate::table::Table;
use crate::validate::{self, Invalid};

/// Why `vmadm create` would refuse a payload; the text is vmadm's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CreateError(pub String);

/// Longest create error, in characters: payload text echoed in a message is
/// cut there, and control characters are shown escaped, so every error is
/// one printable line of bounded length.
pub const MAX_ERROR_CHARS: usize = 400;

impl CreateError {
    /// A one-line, printable, bounded error.
    pub fn new(msg: impl AsRef<str>) -> CreateError {
        CreateError(quote::printable(msg.as_ref(), MAX_ERROR_CHARS))
    }
}

impl From<quote::UnsafeValue> for CreateError {
    fn from(e: quote::UnsafeValue) -> CreateError {
        CreateError::new(format!("Invalid value for {}: {}", e.what, e.reason))
    }
}

/// Values vmadm makes up at create time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Used when the payload has no `uuid`.
    pub uuid: String,
    /// `create-timestamp` (ISO-8601 with milliseconds).
    pub create_timestamp: String,
    /// `now ms + PROVISION_TIMEOUT * 1000`.
    pub transition_expire: String,
    /// MACs for nics without one, used in order; when they run out, fresh
    /// ones are generated (see [`Runtime::mac`]).
    pub macs: Vec<String>,
}

impl Runtime {
    /// Fresh values: a v4 UUID, the current time, random locally
    /// administered-style MACs under vmadm's default prefix `90:b8:d0`.
    pub fn generate(provision_timeout_s: i64) -> Runtime {
        let now = chrono::Utc::now();
        let macs = Vec::new();
        Runtime {
            uuid: uuid::Uuid::new_v4().to_string(),
            create_timestamp: now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            transition_expire: (now.timestamp_millis() + provision_timeout_s * 1000).to_string(),
            macs,
        }
    }
}

impl Runtime {
    /// The MAC for the `i`th nic without one: from [`Runtime::macs`], then
    /// random ones under vmadm's default prefix `90:b8:d0`, never one
    /// already in `taken`.
    pub fn mac(&self, i: usize, taken: &[String]) -> String {
        if let Some(m) = self.macs.get(i) {
            return m.clone();
        }
        loop {
            let b = uuid::Uuid::new_v4().into_bytes();
            let m = format!("90:b8:d0:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
            if !taken.contains(&m) {
                return m;
            }
        }
    }
}

/// A normalized create payload and the warnings vmadm logs on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub payload: Map<String, Value>,
    pub warnings: Vec<String>,
}

fn set_default(p: &mut Map<String, Value>, k: &str, v: Value) {
    if !p.contains_key(k) {
        p.insert(k.into(), v);
    }
}

fn num(p: &Map<String, Value>, k: &str) -> Option<f64> {
    p.get(k).map(jsval::number).filter(|n| !n.is_nan())
}

fn coerce_bool(v: &Value) -> Value {
    match v {
        Value::String(s) if s == "true" || s == "1" => Value::Bool(true),
        Value::String(s) if s == "false" => Value::Bool(false),
        Value::Number(n) if n.as_f64() == Some(1.0) => Value::Bool(true),
        other => other.clone(),
    }
}

fn split_list(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::Array(
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(Value::from)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn valid_recsize(n: f64) -> bool {
    n == 0.0
        || ((512.0..=131072.0).contains(&n) && n.fract() == 0.0 && (n as u64).is_power_of_two())
}

/// VM.create's payload handling up to createZone: conversions, defaults,
/// memory fixes, validation (bad properties are warned about and removed),
/// nics -> add_nics, and checkPayloadProperties' local checks.
pub fn normalize(
    table: &Table,
    input: &Map<String, Value>,
    host: &dyn NodeFacts,
    rt: &Runtime,
) -> Result<Normalized, CreateError> {
    let mut p = input.clone();
    let mut warnings = Vec::new();

    // normalizePayload: integers through Number(), lists split
    for k in p.keys().cloned().collect::<Vec<_>>() {
        let Some(prop) = table.property(&k) else {
            continue;
        };
        let v = p[&k].clone();
        match prop.ptype {
            Some("integer") => {
                let blank = v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty());
                if blank {
                    p.remove(&k);
                    continue;
                }
                let n = jsval::number(&v);
                if n.is_nan() {
                    return Err(CreateError::new(format!(
                        "Invalid value for {k}: null:number"
                    )));
                }
                p.insert(k, jsval::json_number(n));
            }
            Some("list") => {
                p.insert(k, split_list(&v));
            }
            _ => {}
        }
    }

    // applyZoneDefaults
    set_default(&mut p, "brand", Value::from(table.default_str("brand")));
    let brand_name = p["brand"].as_str().unwrap_or_default().to_string();
    let Some(brand) = table.brand(&brand_name) else {
        // vmadm itself dies with a TypeError here (BRAND_OPTIONS[brand] is undefined)
        return Err(CreateError::new(format!(
            "Unsupported brand: {}",
            quote::printable(&brand_name, 64)
        )));
    };
    let bhyve = brand_name == "bhyve" || brand.same_as.as_deref() == Some("bhyve");
    if brand.hvm && !bhyve {
        return Err(CreateError::new(format!(
            "create planning for HVM brand {brand_name} is not supported (bhyve only)"
        )));
    }
    for k in ["owner_uuid", "billing_id", "zpool", "dns_domain"] {
        set_default(&mut p, k, Value::from(table.default_str(k)));
    }
    set_default(&mut p, "autoboot", Value::Bool(true));
    for k in ["cpu_shares", "zfs_io_priority", "max_lwps", "ram"] {
        set_default(&mut p, k, Value::from(table.default_i64(k)));
    }
    let cap = table.default_i64("cpu_shares_cap") as f64;
    if num(&p, "cpu_shares").is_some_and(|n| n > cap) {
        p.insert("cpu_shares".into(), jsval::json_number(cap));
    }
    let lp = brand
        .feature("limit_priv")
        .cloned()
        .unwrap_or_else(|| Value::Array(vec![Value::from("default")]));
    set_default(&mut p, "limit_priv", lp);
    let quota_default = if bhyve {
        table.default_i64("quota_bhyve")
    } else {
        table.default_i64("quota")
    };
    set_default(&mut p, "quota", Value::from(quota_default));
    if table.is_allowed(&brand_name, "vcpus", "create") {
        set_default(&mut p, "vcpus", Value::from(1));
    }
    // applyZoneDefaults: disks take disk_driver as their model, media disk
    if let Some(Value::Array(disks)) = p.get_mut("disks") {
        let driver = input.get("disk_driver").cloned();
        for d in disks.iter_mut() {
            let Value::Object(d) = d else { continue };
            if !d.contains_key("model") {
                if let Some(m) = &driver {
                    d.insert("model".into(), m.clone());
                }
            }
            if !d.contains_key("media") {
                d.insert("media".into(), Value::from("disk"));
            }
        }
    }
    set_default(&mut p, "uuid", Value::from(rt.uuid.clone()));
    let uuid = jsval::to_string(&p["uuid"]);
    set_default(&mut p, "zonename", Value::from(uuid));

    // fixPayloadMemory: an HVM's cap adds the hypervisor's overhead to ram
    let ram = num(&p, "ram").unwrap_or(256.0);
    if !p.contains_key("max_physical_memory") {
        let overhead = match brand.feature("default_memory_overhead") {
            Some(o) if input.contains_key("ram") => jsval::number(o),
            _ => 0.0,
        };
        p.insert(
            "max_physical_memory".into(),
            jsval::json_number(ram + overhead),
        );
    }
    let mpm = num(&p, "max_physical_memory").unwrap_or(ram);
    match num(&p, "max_locked_memory") {
        None => {
            p.insert("max_locked_memory".into(), jsval::json_number(mpm));
        }
        Some(l) if l > mpm => {
            warnings.push(format!(
                "max_locked_memory ({l}) > max_physical_memory ({mpm}), clamping to {mpm}"
            ));
            p.insert("max_locked_memory".into(), jsval::json_number(mpm));
        }
        _ => {}
    }
    let min_swap = table.default_i64("minimum_max_swap") as f64;
    match num(&p, "max_swap") {
        None => {
            p.insert("max_swap".into(), jsval::json_number(mpm.max(min_swap)));
        }
        Some(s) if s < mpm => {
            warnings.push(format!(
                "max_swap ({s}) < max_physical_memory ({mpm}), raising to {mpm}"
            ));
            p.insert("max_swap".into(), jsval::json_number(mpm));
        }
        _ => {}
    }
    set_default(&mut p, "max_shm_memory", jsval::json_number(mpm));
    for k in ["max_msg_ids", "max_sem_ids", "max_shm_ids"] {
        set_default(&mut p, k, Value::from(table.default_i64(k)));
    }
    if brand.feature_bool("use_tmpfs") {
        match num(&p, "tmpfs") {
            None => {
                p.insert("tmpfs".into(), jsval::json_number(mpm));
            }
            Some(t) if t > mpm => {
                warnings.push(format!(
                    "tmpfs ({t}) > max_physical_memory ({mpm}), clamping to {mpm}"
                ));
                p.insert("tmpfs".into(), jsval::json_number(mpm));
            }
            _ => {}
        }
    }

    // VM.validate(create)
    match validate::validate(table, Some(&brand_name), "create", &p, host) {
        Ok(v) => warnings.extend(v.warnings),
        Err(Invalid::BadBrand(b)) => {
            return Err(CreateError::new(format!(
                "Unsupported brand: {}",
                quote::printable(&b, 64)
            )))
        }
        Err(Invalid::Lists {
            bad_values,
            bad_properties,
            missing_properties,
        }) => {
            if !bad_values.is_empty() {
                return Err(CreateError::new(format!(
                    "Invalid value(s) for: {}",
                    bad_values.join(",")
                )));
            }
            if !missing_properties.is_empty() {
                return Err(CreateError::new(format!(
                    "Missing required properties: {}",
                    missing_properties.join(",")
                )));
            }
            for bp in bad_properties {
                warnings.push(format!(
                    "Warning, invalid create property: [{}] removing from payload.",
                    quote::printable(&bp, 64)
                ));
                match bp.split_once(".*.") {
                    Some((list, key)) => {
                        if let Some(Value::Array(items)) = p.get_mut(list) {
                            for it in items {
                                if let Value::Object(o) = it {
                                    o.remove(key);
                                }
                            }
                        }
                    }
                    None => {
                        p.remove(&bp);
                    }
                }
            }
        }
    }

    // nics/filesystems/disks -> add_*
    for k in ["nics", "filesystems", "disks"] {
        if let Some(v) = p.remove(k) {
            let add = format!("add_{k}");
            if p.contains_key(&add) {
                return Err(CreateError::new(format!(
                    "Cannot specify both \"{k}\" and \"{add}\""
                )));
            }
            p.insert(add, v);
        }
    }
    // zfs_root_* without zfs_data_*
    if p.contains_key("zfs_root_compression") && !p.contains_key("zfs_data_compression") {
        p.insert("zfs_data_compression".into(), Value::from("off"));
    }
    if p.contains_key("zfs_root_recsize") && !p.contains_key("zfs_data_recsize") {
        p.insert("zfs_data_recsize".into(), Value::from(131072));
    }
    // booleans
    for k in p.keys().cloned().collect::<Vec<_>>() {
        if table.property(&k).and_then(|x| x.ptype) == Some("boolean") {
            let v = coerce_bool(&p[&k]);
            p.insert(k, v);
        }
    }
    let mut generated = 0usize;
    let mut taken: Vec<String> = match p.get("add_nics") {
        Some(Value::Array(nics)) => nics
            .iter()
            .filter_map(|n| n.get("mac").and_then(Value::as_str).map(str::to_lowercase))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Array(nics)) = p.get_mut("add_nics") {
        for nic in nics.iter_mut() {
            let Value::Object(n) = nic else { continue };
            for k in n.keys().cloned().collect::<Vec<_>>() {
                let sub = format!("nics.*.{k}");
                match table.property(&sub).and_then(|x| x.ptype) {
                    Some("boolean") => {
                        let v = coerce_bool(&n[&k]);
                        n.insert(k, v);
                    }
                    Some("integer") => {
                        let v = jsval::json_number(jsval::number(&n[&k]));
                        n.insert(k, v);
                    }
                    Some("list") => {
                        let v = split_list(&n[&k]);
                        n.insert(k, v);
                    }
                    _ => {}
                }
            }
            if !n.contains_key("mac") {
                let mac = rt.mac(generated, &taken);
                generated += 1;
                taken.push(mac.clone());
                n.insert("mac".into(), Value::from(mac));
            }
            // nics.*.model defaults to the payload's nic_driver
            if !n.contains_key("model") {
                if let Some(d) = input.get("nic_driver").and_then(Value::as_str) {
                    n.insert("model".into(), Value::from(d));
                }
            }
        }
    }

    if bhyve {
        hvm_disks(&brand_name, brand, &mut p, host)?;
        // the provisioning transition waits longer for large VMs
    }

    // checkPayloadProperties (the parts that need no host state)
    for k in ["zfs_root_recsize", "zfs_data_recsize"] {
        if let Some(n) = num(&p, k) {
            if !valid_recsize(n) {
                return Err(CreateError::new(format!(
                    "invalid {k} ({}), must be 512-131072 and a power of 2. (0 to disable)",
                    jsval::fmt_number(n)
                )));
            }
        }
    }
    let types: Vec<String> = table
        .defaults()
        .get("compression_types")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for k in ["zfs_root_compression", "zfs_data_compression"] {
        if let Some(v) = p.get(k) {
            let given = jsval::to_string(v);
            if !types.contains(&given) {
                // VM.js names the value, not the property
                return Err(CreateError::new(format!(
                    "invalid compression type for {}, must be one of: {}",
                    quote::printable(&given, 64),
                    types.join(", ")
                )));
            }
        }
    }
    if let Some(Value::Array(nics)) = p.get("add_nics") {
        let mut primaries = 0;
        for nic in nics {
            let ip = nic.get("ip").and_then(Value::as_str);
            let dynamic = |s: &str| s == "dhcp" || s == "addrconf";
            if let Some(ip) = ip {
                if !dynamic(ip) && nic.get("netmask").is_none() && nic.get("ips").is_none() {
                    return Err(CreateError::new(format!(
                        "Missing .netmask option for NIC: {nic}"
                    )));
                }
            }
            if nic.get("primary").is_some_and(jsval::truthy) {
                primaries += 1;
            }
        }
        if primaries > 1 {
            return Err(CreateError::new("Cannot specify more than one primary NIC"));
        }
    }
    Ok(Normalized {
        payload: p,
        warnings,
    })
}

/// The attrs createZone writes for an HVM (bhyve) and a device resource
/// per disk, in its order.
fn render_hvm(p: &Map<String, Value>, o: &mut String) -> Result<(), CreateError> {
    use std::fmt::Write as _;
    let get = |k: &str| p.get(k).filter(|v| !v.is_null());
    let mut attr = |name: &str, v: &Value| -> Result<(), CreateError> {
        o.push_str(&attr_line(name, &s(v))?);
        Ok(())
    };
    if let Some(v) = get("ram") {
        attr("ram", v)?;
    }
    // KVM-compatible consoles unless either is given
    let (com1, com2) = match (get("com1"), get("com2")) {
        (None, None) => (
            Some(Value::from("/dev/zconsole")),
            Some(Value::from("socket,/tmp/vm.ttyb")),
        ),
        (a, b) => (a.cloned(), b.cloned()),
    };
    if let Some(v) = com1 {
        attr("com1", &v)?;
    }
    if let Some(v) = com2 {
        attr("com2", &v)?;
    }
    for (name, k) in [
        ("bootrom", "bootrom"),
        ("bhyve-extra-opts", "bhyve_extra_opts"),
    ] {
        if let Some(v) = get(k) {
            attr(name, v)?;
        }
    }
    attr("zlog-mode", &Value::from("g--"))?;
    attr("zlog-name", &Value::from("platform.log"))?;
    for (name, k) in [
        ("vcpus", "vcpus"),
        ("cpu-type", "cpu_type"),
        ("vga", "vga"),
        ("vnc-port", "vnc_port"),
        ("flexible-disk-size", "flexible_disk_size"),
    ] {
        if let Some(v) = get(k) {
            attr(name, v)?;
        }
    }
    let Some(Value::Array(disks)) = get("add_disks") else {
        return Ok(());
    };
    let q = |what: &str, v: &str| -> Result<String, CreateError> {
        Ok(quote::zonecfg(what, v, Quoting::Quoted)?.into_owned())
    };
    for d in disks {
        let Some(path) = d.get("path").map(s) else {
            continue;
        };
        let _ = writeln!(o, "add device");
        let _ = writeln!(
            o,
            "set match={}",
            quote::zonecfg("disks.*.path", &path, Quoting::Bare)?
        );
        let boot = if d.get("boot").is_some_and(jsval::truthy) {
            "true"
        } else {
            "false"
        };
        let _ = writeln!(o, "add property (name=boot, value=\"{boot}\")");
        let model = d.get("model").map(s).unwrap_or_default();
        let _ = writeln!(
            o,
            "add property (name=model, value={})",
            q("disks.*.model", &model)?
        );
        if let Some(m) = d.get("media") {
            let _ = writeln!(
                o,
                "add property (name=media, value={})",
                q("disks.*.media", &s(m))?
            );
        }
        if let Some(v) = d.get("image_size") {
            let _ = writeln!(
                o,
                "add property (name=image-size, value={})",
                q("disks.*.image_size", &s(v))?
            );
        } else if let Some(v) = d.get("size") {
            let _ = writeln!(
                o,
                "add property (name=size, value={})",
                q("disks.*.size", &s(v))?
            );
        }
        for (name, k) in [
            ("image-uuid", "image_uuid"),
            ("image-name", "image_name"),
            ("pci-slot", "pci_slot"),
            ("uuid", "uuid"),
            ("notrim", "notrim"),
            ("guest-block-size", "guest_block_size"),
        ] {
            if let Some(v) = d.get(k) {
                let _ = writeln!(
                    o,
                    "add property (name={name}, value={})",
                    q(&format!("disks.*.{k}"), &s(v))?
                );
            }
        }
        o.push_str("end\n");
    }
    Ok(())
}

/// checkPayloadProperties' disk rules for bhyve, then the zvol each disk
/// gets (`<zpool>/<uuid>/disk<N>`, its `/dev/zvol/rdsk/` path) and, for a
/// disk cloned from an image without a size, the image's `image_size`.
fn hvm_disks(
    brand_name: &str,
    brand: &crate::table::Brand,
    p: &mut Map<String, Value>,
    host: &dyn NodeFacts,
) -> Result<(), CreateError> {
    let models: Vec<String> = brand
        .feature("disk_models")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let uuid = jsval::to_string(&p["uuid"]);
    let zpool = jsval::to_string(&p["zpool"]);
    let mut idx = 0;
    let Some(Value::Array(disks)) = p.get_mut("add_disks") else {
        return Ok(());
    };
    for d in disks.iter_mut() {
        let Value::Object(d) = d else { continue };
        let shown = Value::Object(d.clone()).to_string();
        if d.contains_key("path")
            && d.get("media").and_then(Value::as_str) != Some("cdrom")
            && !d.get("nocreate").is_some_and(jsval::truthy)
        {
            return Err(CreateError::new(
                "you cannot specify a path for a disk unless you set nocreate=true",
            ));
        }
        if let Some(bs) = d.get("block_size").map(jsval::number) {
            if !valid_recsize(bs) || bs == 0.0 {
                return Err(CreateError::new(format!(
                    "invalid .block_size({}), must be 512-131072 and a power of 2.",
                    jsval::fmt_number(bs)
                )));
            }
            if d.contains_key("image_uuid") {
                return Err(CreateError::new(
                    "setting both .block_size and .image_uuid on a volume is invalid",
                ));
            }
        }
        match d.get("model").map(jsval::to_string) {
            None => {
                return Err(CreateError::new(format!(
                    "missing .model option for disk: {shown}"
                )))
            }
            Some(m) if !models.contains(&m) => {
                return Err(CreateError::new(format!(
                    "\"{}\" is not a valid disk model for {brand_name} brand. Valid are: {}",
                    quote::printable(&m, 64),
                    models.join(",")
                )))
            }
            Some(_) => {}
        }
        if d.get("media").and_then(Value::as_str) == Some("cdrom")
            || d.get("nocreate").is_some_and(jsval::truthy)
        {
            continue;
        }
        let pool = d
            .get("zpool")
            .map(jsval::to_string)
            .unwrap_or_else(|| zpool.clone());
        let ds = format!("{pool}/{uuid}/disk{idx}");
        idx += 1;
        if let Some(img) = d.get("image_uuid").map(jsval::to_string) {
            if !d.contains_key("size") {
                match host.image_size(&pool, &img) {
                    Ok(Some(sz)) => {
                        d.insert("image_size".into(), Value::from(sz));
                    }
                    Ok(None) => {
                        return Err(CreateError::new(format!(
                            "image {img} has no image_size; give the disk a size"
                        )))
                    }
                    Err(e) => return Err(CreateError::new(e)),
                }
            }
        } else if !d.contains_key("size") {
            return Err(CreateError::new(format!(
                "FATAL: createVolume({shown}): has no size or image_size"
            )));
        }
        d.insert("zpool".into(), Value::from(pool));
        d.insert("zfs_filesystem".into(), Value::from(ds.clone()));
        d.insert("path".into(), Value::from(format!("/dev/zvol/rdsk/{ds}")));
    }
    Ok(())
}

/// `2:8:20:ab:c:1`: a MAC as zonecfg stores it (leading zeros dropped).
pub fn zonecfg_mac(mac: &str) -> String {
    mac.split(':')
        .map(|o| {
            let t = o.trim_start_matches('0');
            if t.is_empty() {
                "0".to_string()
            } else {
                t.to_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

fn s(v: &Value) -> String {
    jsval::to_string(v)
}

fn prefix_len(netmask: &str) -> Option<u32> {
    let ip: std::net::Ipv4Addr = netmask.parse().ok()?;
    let n = u32::from(ip);
    (n.leading_ones() + n.trailing_zeros() == 32).then_some(n.leading_ones())
}

/// `add attr; set name="N"; set type=string; set value="V"; end`, every
/// value through [`quote::zonecfg`].
pub fn attr_line(name: &str, value: &str) -> Result<String, quote::UnsafeValue> {
    Ok(format!(
        "add attr; set name={}; set type=string; set value={}; end\n",
        quote::zonecfg("attr name", name, Quoting::Quoted)?,
        quote::zonecfg(name, value, Quoting::Quoted)?
    ))
}

/// The attrs createZone writes, in its order (booleans only when they
/// differ from the table's default).
const ATTRS: &[&str] = &[
    "billing_id",
    "owner_uuid",
    "package_name",
    "package_version",
    "tmpfs",
    "hostname",
    "dns_domain",
    "default_gateway",
    "do_not_inventory",
    "docker",
    "archive_on_delete",
    "firewall_enabled",
    "restart_init",
    "init_name",
    "disk_driver",
    "nic_driver",
    "maintain_resolvers",
    "kernel_version",
    "zlog_max_size",
    "resolvers",
    "internal_metadata_namespaces",
    "alias",
];

const NIC_PROPS: &[&str] = &[
    "allowed_ips",
    "allowed_dhcp_cids",
    "network_uuid",
    "model",
    "dhcp_server",
    "allow_dhcp_spoofing",
    "blocked_outgoing_ports",
    "allow_ip_spoofing",
    "allow_mac_spoofing",
    "allow_restricted_traffic",
    "allow_unfiltered_promisc",
    "vrrp_vrid",
    "vrrp_primary_ip",
    "mtu",
];

/// The text createZone sends on stdin to `zonecfg -z <zonename>`. Every
/// value goes through [`quote::zonecfg`]: a value that could break out of
/// its place (a quote, a line break, NUL) is an error, never text.
pub fn render_zonecfg(
    table: &Table,
    p: &Map<String, Value>,
    rt: &Runtime,
) -> Result<String, CreateError> {
    use std::fmt::Write as _;
    let bare = |what: &str, v: &str| -> Result<String, CreateError> {
        Ok(quote::zonecfg(what, v, Quoting::Bare)?.into_owned())
    };
    let quoted = |what: &str, v: &str| -> Result<String, CreateError> {
        Ok(quote::zonecfg(what, v, Quoting::Quoted)?.into_owned())
    };
    let get = |k: &str| p.get(k).filter(|v| !v.is_null());
    let zonename = get("zonename").map(s).unwrap_or_default();
    let uuid = get("uuid").map(s).unwrap_or_default();
    let zpool = get("zpool").map(s).unwrap_or_else(|| "zones".into());
    let brand = get("brand").map(s).unwrap_or_default();
    let b = table.brand(&brand);
    if !quote::rule_ok(quote::Rule::ZoneName, &zonename) {
        return Err(CreateError::new(
            "Invalid value for zonename: not a zone name",
        ));
    }
    if !quote::rule_ok(quote::Rule::ZoneName, &zpool) {
        return Err(CreateError::new("Invalid value for zpool: not a pool name"));
    }
    let mut o = String::new();
    o.push_str("create -b\n");
    let _ = writeln!(
        o,
        "set zonepath=/{}/{}",
        bare("zpool", &zpool)?,
        bare("zonename", &zonename)?
    );
    let _ = writeln!(o, "set brand={}", bare("brand", &brand)?);
    let _ = writeln!(o, "set uuid={}", bare("uuid", &uuid)?);
    o.push_str("set ip-type=exclusive\n");
    o.push_str("add attr; set name=\"provisioning\"; set type=string; set value=true;end\n");
    o.push_str("add attr; set name=\"vm-version\"; set type=string; set value=\"1\"; end\n");
    let _ = writeln!(
        o,
        "add attr; set name=\"create-timestamp\"; set type=string; set value={}; end",
        quoted("create-timestamp", &rt.create_timestamp)?
    );
    if get("autoboot").is_some_and(jsval::truthy) {
        let _ = writeln!(
            o,
            "add attr; set name=transition; set value={}; set type=string; end",
            quoted(
                "transition",
                &format!("provisioning:running:{}", rt.transition_expire)
            )?
        );
    }
    if let Some(img) = get("image_uuid") {
        o.push_str(&attr_line("dataset-uuid", &s(img))?);
    }
    for (prop, key) in [
        ("cpu_shares", "cpu-shares"),
        ("limit_priv", "limitpriv"),
        ("max_lwps", "max-lwps"),
        ("max_msg_ids", "max-msg-ids"),
        ("max_sem_ids", "max-sem-ids"),
        ("max_shm_ids", "max-shm-ids"),
        ("max_shm_memory", "max-shm-memory"),
        ("zfs_io_priority", "zfs-io-priority"),
    ] {
        let Some(v) = get(prop) else { continue };
        match prop {
            "limit_priv" => {
                let _ = writeln!(o, "set {key}={}", quoted(prop, &s(v))?);
            }
            "max_shm_memory" => {
                let _ = writeln!(
                    o,
                    "set {key}={}",
                    jsval::fmt_number(jsval::number(v) * 1_048_576.0)
                );
            }
            _ => {
                let _ = writeln!(o, "set {key}={}", bare(prop, &s(v))?);
            }
        }
    }
    if !b.is_some_and(|b| b.feature_bool("use_vm_autoboot")) {
        if let Some(a) = get("autoboot") {
            let _ = writeln!(o, "set autoboot={}", jsval::truthy(a));
        }
    }
    let mut mem = Vec::new();
    for (prop, k) in [
        ("max_physical_memory", "physical"),
        ("max_locked_memory", "locked"),
        ("max_swap", "swap"),
    ] {
        if let Some(v) = get(prop) {
            mem.push(format!("set {k}={}m", bare(prop, &s(v))?));
        }
    }
    if !mem.is_empty() {
        let _ = writeln!(o, "add capped-memory; {}; end", mem.join("; "));
    }
    if let Some(cap) = get("cpu_cap") {
        let n = jsval::number(cap);
        if n != 0.0 {
            let _ = writeln!(
                o,
                "add capped-cpu; set ncpus={}; end",
                jsval::fmt_number(n / 100.0)
            );
        }
    }
    for prop in ATTRS {
        let Some(v) = get(prop) else { continue };
        let Some(meta) = table.property(prop) else {
            continue;
        };
        let name = meta
            .zonexml
            .and_then(|x| x.strip_prefix("zone.attr."))
            .unwrap_or(prop);
        let text = match meta.ptype {
            Some("boolean") => {
                let val = jsval::truthy(v);
                let default = meta
                    .default_value()
                    .as_ref()
                    .map(jsval::truthy)
                    .unwrap_or(false);
                if val == default {
                    continue;
                }
                val.to_string()
            }
            _ if *prop == "alias" => base64::engine::general_purpose::STANDARD.encode(s(v)),
            _ => s(v),
        };
        if text.is_empty() {
            continue;
        }
        o.push_str(&attr_line(name, &text).map_err(|e| {
            CreateError::from(quote::UnsafeValue {
                what: prop.to_string(),
                ..e
            })
        })?);
    }
    if b.is_some_and(|b| b.hvm) {
        render_hvm(p, &mut o)?;
    }
    if let Some(fa) = get("fs_allowed") {
        let t = s(fa);
        if t.is_empty() {
            o.push_str("clear fs-allowed\n");
        } else {
            let _ = writeln!(o, "set fs-allowed={}", quoted("fs_allowed", &t)?);
        }
    }
    if let Some(Value::Array(fss)) = get("add_filesystems") {
        for f in fss {
            o.push_str("add fs\n");
            for (k, z) in [
                ("target", "dir"),
                ("source", "special"),
                ("type", "type"),
                ("raw", "raw"),
            ] {
                if let Some(v) = f.get(k) {
                    let what = format!("filesystems.*.{k}");
                    let text = if k == "type" {
                        bare(&what, &s(v))?
                    } else {
                        quoted(&what, &s(v))?
                    };
                    let _ = writeln!(o, "set {z}={text}");
                }
            }
            if let Some(Value::Array(opts)) = f.get("options") {
                for x in opts {
                    let _ = writeln!(o, "add options {}", quoted("filesystems.*.options", &s(x))?);
                }
            }
            o.push_str("end\n");
        }
    }
    if let Some(Value::Array(nics)) = get("add_nics") {
        let mut used: Vec<String> = nics
            .iter()
            .filter_map(|n| n.get("interface").map(s))
            .collect();
        let mut primary_mac = None;
        for nic in nics {
            let iface = match nic.get("interface") {
                Some(i) => s(i),
                None => {
                    let i = (0..)
                        .map(|i| format!("net{i}"))
                        .find(|n| !used.contains(n))
                        .expect("infinite");
                    used.push(i.clone());
                    i
                }
            };
            let mac = zonecfg_mac(&nic.get("mac").map(s).unwrap_or_default());
            if primary_mac.is_none() && nic.get("primary").is_some_and(jsval::truthy) {
                primary_mac = Some(mac.clone());
            }
            o.push_str("add net\n");
            let _ = writeln!(o, "set physical={}", bare("nics.*.interface", &iface)?);
            let _ = writeln!(o, "set mac-addr={}", bare("nics.*.mac", &mac)?);
            if let Some(t) = nic.get("nic_tag") {
                let _ = writeln!(o, "set global-nic={}", bare("nics.*.nic_tag", &s(t))?);
            }
            if let Some(v) = nic.get("vlan_id").filter(|v| jsval::truthy(v)) {
                let _ = writeln!(o, "set vlan-id={}", bare("nics.*.vlan_id", &s(v))?);
            }
            let prop = |o: &mut String, name: &str, value: String| -> Result<(), CreateError> {
                let _ = writeln!(
                    o,
                    "add property (name={name}, value={})",
                    quoted(&format!("nics.*.{name}"), &value)?
                );
                Ok(())
            };
            let gateways: Vec<String> = match (nic.get("gateways"), nic.get("gateway")) {
                (Some(Value::Array(g)), _) => g.iter().map(s).collect(),
                (_, Some(g)) => vec![s(g)],
                _ => vec![],
            };
            if let Some(g) = gateways.first() {
                prop(&mut o, "gateway", g.clone())?;
                prop(&mut o, "gateways", gateways.join(","))?;
            }
            let dynamic = |x: &str| x == "dhcp" || x == "addrconf";
            let mut ips: Vec<String> = match nic.get("ips") {
                Some(Value::Array(a)) => a.iter().map(s).collect(),
                _ => vec![],
            };
            let mut ip = nic.get("ip").map(s);
            let mut netmask = nic.get("netmask").map(s);
            if ips.is_empty() {
                if let Some(i) = &ip {
                    if dynamic(i) {
                        ips.push(i.clone());
                    } else if let Some(pl) = netmask.as_deref().and_then(prefix_len) {
                        ips.push(format!("{i}/{pl}"));
                    } else {
                        ips.push(i.clone());
                    }
                }
            } else if ip.is_none() {
                if let Some(first) = ips.first() {
                    let (addr, pl) = first.split_once('/').unwrap_or((first, ""));
                    ip = Some(addr.to_string());
                    if netmask.is_none() {
                        if let Ok(n) = pl.parse::<u32>() {
                            if n <= 32 && addr.contains('.') {
                                let m = if n == 0 { 0 } else { u32::MAX << (32 - n) };
                                netmask = Some(std::net::Ipv4Addr::from(m).to_string());
                            }
                        }
                    }
                }
            }
            if let (Some(m), Some(i)) = (&netmask, &ip) {
                if !dynamic(i) {
                    prop(&mut o, "netmask", m.clone())?;
                }
            }
            if let Some(i) = ip {
                prop(&mut o, "ip", i)?;
            }
            if !ips.is_empty() {
                prop(&mut o, "ips", ips.join(","))?;
            }
            for k in NIC_PROPS {
                let Some(v) = nic.get(*k) else { continue };
                let ty = table.property(&format!("nics.*.{k}")).and_then(|x| x.ptype);
                if ty == Some("boolean") {
                    if jsval::truthy(v) {
                        prop(&mut o, k, "true".into())?;
                    }
                } else {
                    prop(&mut o, k, s(v))?;
                }
            }
            o.push_str("end\n");
        }
        let first_mac = nics
            .first()
            .map(|n| zonecfg_mac(&n.get("mac").map(s).unwrap_or_default()));
        if let Some(m) = primary_mac.or(first_mac) {
            let _ = writeln!(
                o,
                "select net mac-addr={}; add property (name=primary,value=\"true\"); end",
                bare("nics.*.mac", &m)?
            );
        }
    }
    Ok(o)
}

/// The create plan: the zonecfg text and the commands after it (steps that
/// are not one command are `# ` comments).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub zonename: String,
    pub zonecfg: String,
    pub steps: Vec<String>,
    pub payload: Map<String, Value>,
    pub warnings: Vec<String>,
}

impl Plan {
    /// The plan as a shell script: zonecfg with its stdin, then the steps.
    /// The here-document delimiter is never a line of the zonecfg text.
    pub fn script(&self) -> String {
        let d = quote::heredoc_delimiter(&self.zonecfg);
        let zonename = quote::shell("zonename", &self.zonename)
            .map(|z| z.into_owned())
            .unwrap_or_else(|_| "''".into());
        let mut s = format!("zonecfg -z {zonename} <<'{d}'\n{}{d}\n", self.zonecfg);
        for st in &self.steps {
            s.push_str(st);
            s.push('\n');
        }
        s
    }
}

/// Normalize and plan a create.
pub fn plan(
    table: &Table,
    input: &Map<String, Value>,
    host: &dyn NodeFacts,
    rt: &Runtime,
) -> Result<Plan, CreateError> {
    let n = normalize(table, input, host, rt)?;
    tracing::debug!(warnings = n.warnings.len(), "payload normalized");
    let p = &n.payload;
    let zonecfg = render_zonecfg(table, p, rt)?;
    let sh = |what: &str, v: &str| -> Result<String, CreateError> {
        Ok(quote::shell(what, v)?.into_owned())
    };
    let zonename = jsval::to_string(&p["zonename"]);
    let zpool = jsval::to_string(&p["zpool"]);
    let ds = format!("{zpool}/{zonename}");
    let (z, dsq) = (sh("zonename", &zonename)?, sh("zpool", &ds)?);
    let mut steps = Vec::new();
    let quota = p
        .get("quota")
        .map(jsval::to_string)
        .unwrap_or_else(|| "10".into());
    let img = p
        .get("image_uuid")
        .map(jsval::to_string)
        .unwrap_or_default();
    if img.is_empty() {
        steps.push(format!(
            "zoneadm -z {z} install -q {} -x nodataset",
            sh("quota", &quota)?
        ));
    } else {
        steps.push(format!(
            "zoneadm -z {z} install -q {} -t {} -x nodataset",
            sh("quota", &quota)?,
            sh("image_uuid", &img)?
        ));
    }
    // an HVM's disks: clones of the image's zvol, or new zvols
    if let Some(Value::Array(disks)) = p.get("add_disks") {
        for d in disks {
            let Some(ds) = d.get("zfs_filesystem").map(jsval::to_string) else {
                continue;
            };
            let mut opts = String::new();
            if let Some(c) = d.get("compression") {
                opts.push_str(&format!(
                    "-o {} ",
                    sh(
                        "disks.*.compression",
                        &format!("compression={}", jsval::to_string(c))
                    )?
                ));
            }
            let refres = match d.get("refreservation") {
                Some(r) => format!("refreservation={}M", jsval::to_string(r)),
                None => "refreservation=auto".into(),
            };
            let pool = d.get("zpool").map(jsval::to_string).unwrap_or_default();
            match d.get("image_uuid").map(jsval::to_string) {
                Some(img) => {
                    if let Some(sz) = d.get("size") {
                        opts.push_str(&format!(
                            "-o {} ",
                            sh(
                                "disks.*.size",
                                &format!("volsize={}M", jsval::to_string(sz))
                            )?
                        ));
                    }
                    steps.push(format!(
                        "zfs clone -F {opts}-o {} {} {}",
                        sh("disks.*.refreservation", &refres)?,
                        sh("disks.*.image_uuid", &format!("{pool}/{img}@final"))?,
                        sh("disks.*.zfs_filesystem", &ds)?
                    ));
                }
                None => {
                    if let Some(bs) = d.get("block_size") {
                        opts.push_str(&format!(
                            "-o {} ",
                            sh(
                                "disks.*.block_size",
                                &format!("volblocksize={}", jsval::to_string(bs))
                            )?
                        ));
                    }
                    let size = d.get("size").map(jsval::to_string).unwrap_or_default();
                    steps.push(format!(
                        "zfs create -V {} {opts}-o {} {}",
                        sh("disks.*.size", &format!("{size}M"))?,
                        sh("disks.*.refreservation", &refres)?,
                        sh("disks.*.zfs_filesystem", &ds)?
                    ));
                }
            }
        }
    }
    if let Some(c) = p
        .get("zfs_root_compression")
        .map(jsval::to_string)
        .filter(|c| c != "off")
    {
        steps.push(format!(
            "zfs set {} {dsq}",
            sh("zfs_root_compression", &format!("compression={c}"))?
        ));
    }
    if let Some(r) = p
        .get("zfs_root_recsize")
        .map(jsval::to_string)
        .filter(|r| r != "131072")
    {
        steps.push(format!(
            "zfs set {} {dsq}",
            sh("zfs_root_recsize", &format!("recsize={r}"))?
        ));
    }
    for k in ["zfs_snapshot_limit", "zfs_filesystem_limit"] {
        if let Some(l) = p.get(k) {
            let prop = k.trim_start_matches("zfs_");
            steps.push(format!(
                "zfs set {} {dsq}",
                sh(k, &format!("{prop}={}", jsval::to_string(l)))?
            ));
        }
    }
    if p.get("delegate_dataset").is_some_and(jsval::truthy) {
        let mut opts = String::new();
        if let Some(c) = p.get("zfs_data_compression") {
            opts.push_str(&format!(
                "-o {} ",
                sh(
                    "zfs_data_compression",
                    &format!("compression={}", jsval::to_string(c))
                )?
            ));
        }
        if let Some(r) = p
            .get("zfs_data_recsize")
            .map(jsval::to_string)
            .filter(|r| r != "131072")
        {
            opts.push_str(&format!(
                "-o {} ",
                sh("zfs_data_recsize", &format!("recsize={r}"))?
            ));
        }
        steps.push(format!(
            "zfs create {opts}{}",
            sh("zpool", &format!("{ds}/data"))?
        ));
        let add = format!(
            "add dataset; set name={}; end",
            quote::zonecfg("delegate_dataset", &format!("{ds}/data"), Quoting::Bare)?
        );
        steps.push(format!(
            "zonecfg -u {} {}",
            sh("uuid", &jsval::to_string(&p["uuid"]))?,
            sh("delegate_dataset", &add)?
        ));
    }
    steps.push(format!(
        "# write /{ds}/config/metadata.json, tags.json and routes.json"
    ));
    steps.push(format!(
        "# write /{ds}/root/var/svc/provisioning, the zoneinit and nic files"
    ));
    steps.push(format!("zonecfg -z {z} 'remove attr name=provisioning'"));
    if p.get("autoboot").is_some_and(jsval::truthy) {
        steps.push(format!("zoneadm -z {z} boot"));
        steps.push("# wait for provision_success or provision_failure".to_string());
    }
    Ok(Plan {
        zonename,
        zonecfg,
        steps,
        payload: n.payload,
        warnings: n.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{host, IMG};
    use serde_json::json;

    fn rt() -> Runtime {
        Runtime {
            uuid: "11111111-2222-4333-8444-555555555555".into(),
            create_timestamp: "2026-01-01T00:00:00.000Z".into(),
            transition_expire: "1767225900000".into(),
            macs: vec!["02:08:20:0a:00:01".into(), "02:08:20:0a:00:02".into()],
        }
    }

    fn p(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn macs_drop_leading_zeros() {
        assert_eq!(zonecfg_mac("02:08:20:0a:00:01"), "2:8:20:a:0:1");
        assert_eq!(zonecfg_mac("90:B8:D0:ff:10:00"), "90:b8:d0:ff:10:0");
    }

    #[test]
    fn messages_vmadm_prints() {
        let t = Table::get();
        let e = |v: Value| normalize(t, &p(v), &host(), &rt()).unwrap_err().0;
        assert_eq!(
            e(json!({"brand": "builder"})),
            "Missing required properties: image_uuid"
        );
        assert_eq!(
            e(json!({"brand": "builder", "image_uuid": IMG, "cpu_cap": "doogle"})),
            "Invalid value for cpu_cap: null:number"
        );
        assert_eq!(
            e(json!({"brand": "builder", "image_uuid": IMG, "zpool": "tank"})),
            "Invalid value(s) for: zpool"
        );
        assert_eq!(
            e(json!({"brand": "builder", "image_uuid": IMG, "zfs_root_recsize": 1000})),
            "invalid zfs_root_recsize (1000), must be 512-131072 and a power of 2. (0 to disable)"
        );
        assert!(
            e(json!({"brand": "builder", "image_uuid": IMG, "zfs_root_compression": "zip"}))
                .starts_with(
                    "invalid compression type for zip, must be one of: on, off, gzip, gzip-1,"
                )
        );
        assert!(e(json!({"brand": "builder", "image_uuid": IMG, "nics": [{"nic_tag": "admin", "ip": "10.0.0.2"}]}))
            .starts_with("Missing .netmask option for NIC: {"));
        assert_eq!(e(json!({"brand": "nope"})), "Unsupported brand: nope");
    }

    #[test]
    fn defaults_and_stripping() {
        let t = Table::get();
        let n = normalize(t, &p(json!({"image_uuid": IMG, "vcpus": 2, "nics": [{"nic_tag": "admin", "ip": "dhcp", "bogus": 1}],
            "max_physical_memory": 1024, "max_locked_memory": 4096, "max_swap": 512, "resolvers": "8.8.8.8,8.8.4.4"})), &host(), &rt()).unwrap();
        let q = &n.payload;
        assert_eq!(q["brand"], json!("joyent"));
        assert_eq!(q["zonename"], json!("11111111-2222-4333-8444-555555555555"));
        assert_eq!(
            (
                q["max_locked_memory"].clone(),
                q["max_swap"].clone(),
                q["tmpfs"].clone()
            ),
            (json!(1024), json!(1024), json!(1024))
        );
        assert_eq!(q["resolvers"], json!(["8.8.8.8", "8.8.4.4"]));
        assert_eq!(q["limit_priv"], json!(["default"]));
        assert!(!q.contains_key("vcpus") && !q.contains_key("nics"));
        assert_eq!(
            q["add_nics"][0],
            json!({"nic_tag": "admin", "ip": "dhcp", "mac": "02:08:20:0a:00:01"})
        );
        assert!(n.warnings.contains(
            &"Warning, invalid create property: [vcpus] removing from payload.".to_string()
        ));
        assert!(n.warnings.contains(
            &"Warning, invalid create property: [nics.*.bogus] removing from payload.".to_string()
        ));
    }
}
