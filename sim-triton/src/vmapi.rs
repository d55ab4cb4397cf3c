//! VMAPI over sim compute nodes: `POST /vms` (CreateVm), `GET /vms`
//! (ListVms), `GET /vms/:uuid`, `POST /vms/:uuid?action=start|stop|update`,
//! `DELETE /vms/:uuid`, `GET /jobs/:uuid`, `GET /jobs`.
//!
//! CreateVm validates as `sdc-vmapi: lib/common/validation.js` does (the
//! measured texts in the notes; RFD 184 adds `builder`), fills unset fields
//! from the package (`billing_id`), honours `server_uuid` (DAPI skipped) or
//! asks CNAPI's allocator, then runs the chosen node's `vmadm create`. The
//! workflow job runs before the answer is sent, so `GET /jobs/:uuid` right
//! after `POST /vms` shows its outcome; a failed job leaves the VM `failed`.

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::cnapi::{self, Server, Wanted};
use super::http::{json_body, json_response, ApiError, ApiResult, Query};
use super::store::{JOBS, PACKAGES, VMS};
use super::{is_uuid, new_uuid, now_iso, valid_brands, Ctx};

pub const HVM_BRANDS: &[&str] = &["bhyve", "kvm"];
const ALIAS_RE: &str = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$";
/// The same regexp as JavaScript prints it in VMAPI's message.
const ALIAS_RE_JS: &str = r"/^[a-zA-Z0-9][a-zA-Z0-9\_\.\-]*$/";
const MAX_ALIAS: usize = 189;

fn e(field: &str, code: &str, message: &str) -> Value {
    json!({"field": field, "code": code, "message": message})
}

fn missing(field: &str) -> Value {
    json!({"field": field, "code": "MissingParameter"})
}

pub fn validation_failed(message: &str, errors: Vec<Value>) -> ApiError {
    ApiError::with_errors(409, "ValidationFailed", message, errors)
}

fn brand_message() -> String {
    format!("Must be one of: {}", valid_brands().join(", "))
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Number fields and their minimums (validNumber's default minimum is 0).
const NUMBERS: &[(&str, f64)] = &[
    ("cpu_cap", 0.0),
    ("cpu_shares", 0.0),
    ("max_locked_memory", 0.0),
    ("max_lwps", 0.0),
    ("max_physical_memory", 0.0),
    ("max_swap", 0.0),
    ("mdata_exec_timeout", 1.0),
    ("quota", 0.0),
    ("ram", 1.0),
    ("tmpfs", 0.0),
    ("vcpus", 1.0),
    ("zfs_io_priority", 0.0),
    ("zlog_max_size", 0.0),
];
const BOOLEANS: &[&str] = &[
    "autoboot",
    "delegate_dataset",
    "do_not_inventory",
    "docker",
    "firewall_enabled",
    "indestructible_delegated",
    "indestructible_zoneroot",
    "maintain_resolvers",
];
const UUIDS: &[&str] = &["billing_id", "image_uuid", "server_uuid", "uuid"];
const STRINGS: &[&str] = &[
    "cpu_type",
    "disk_driver",
    "fs_allowed",
    "init_name",
    "kernel_version",
    "limit_priv",
    "nic_driver",
    "package_name",
    "package_version",
    "zfs_data_compression",
];
const OBJECTS: &[&str] = &["customer_metadata", "internal_metadata", "tags"];
const MIN_SWAP: f64 = 256.0;

fn valid_network(n: &Value) -> bool {
    match n {
        Value::String(s) => is_uuid(s),
        Value::Object(o) => {
            let id = o.get("uuid").or_else(|| o.get("ipv4_uuid"));
            match id {
                Some(v) => v.as_str().is_some_and(is_uuid),
                None => o.get("name").is_some_and(Value::is_string),
            }
        }
        _ => false,
    }
}

/// JS `parseInt(v, 10)`.
fn parse_int(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().map(f64::trunc),
        Value::String(s) => {
            let t = s.trim_start();
            let (neg, digits) = match t.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, t.strip_prefix('+').unwrap_or(t)),
            };
            let d: String = digits.chars().take_while(char::is_ascii_digit).collect();
            d.parse::<f64>().ok().map(|n| if neg { -n } else { n })
        }
        _ => None,
    }
}

/// validMetadata: values must be strings, numbers or booleans; no `*_pw`
/// keys in customer_metadata.
fn metadata_errors(field: &str, v: &Value) -> Vec<Value> {
    let obj = match v {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => o,
            Ok(_) => return vec![],
            Err(_) => return vec![e(field, "Invalid", "Invalid parameter")],
        },
        Value::Object(o) => o.clone(),
        _ => return vec![],
    };
    for (k, x) in &obj {
        if !(x.is_string() || x.is_number() || x.is_boolean()) {
            return vec![e(&format!("{field}.{k}"), "Invalid", "Forbidden Data Type")];
        }
        if field == "customer_metadata" && k.ends_with("_pw") && k.len() > 3 {
            return vec![e(
                &format!("{field}.{k}"),
                "Invalid",
                "Forbidden Metadata Key",
            )];
        }
    }
    vec![]
}

/// The synchronous checks of validateCreateVmParams: every VM field's
/// validator in VM_FIELDS order, then ram, max_swap and the brand checks.
pub fn validate_sync(p: &Map<String, Value>) -> Vec<Value> {
    let mut fields: Vec<&str> = vec!["alias", "brand", "networks", "owner_uuid"];
    fields.extend(NUMBERS.iter().map(|(f, _)| *f));
    fields.extend(BOOLEANS);
    fields.extend(UUIDS);
    fields.extend(STRINGS);
    fields.extend(OBJECTS);
    fields.sort();
    fields.dedup();
    let alias_re = regex::Regex::new(ALIAS_RE).expect("regex");
    let mut errs = Vec::new();
    for f in fields {
        let Some(v) = p.get(f).filter(|v| !v.is_null()) else {
            if matches!(f, "brand" | "networks" | "owner_uuid") {
                errs.push(missing(f));
            }
            continue;
        };
        match f {
            "alias" => {
                let s = v.as_str();
                if s.is_none() {
                    errs.push(e("alias", "Invalid", "Not a valid string"));
                }
                let s = s.unwrap_or_default();
                if s.chars().count() > MAX_ALIAS {
                    errs.push(e(
                        "alias",
                        "Invalid",
                        &format!("String is longer than maximum of {MAX_ALIAS} characters"),
                    ));
                }
                if !alias_re.is_match(s) {
                    errs.push(e(
                        "alias",
                        "Invalid",
                        &format!("String does not match regexp: {ALIAS_RE_JS}"),
                    ));
                }
            }
            "brand" if !v.as_str().is_some_and(|b| valid_brands().contains(&b)) => {
                errs.push(e("brand", "Invalid", &brand_message()));
            }
            "networks" => match v {
                Value::Array(a) if a.iter().all(valid_network) => {}
                Value::String(s) if s.split(',').all(is_uuid) => {}
                _ => errs.push(e("networks", "Invalid", "Invalid networks")),
            },
            _ => {}
        }
        if let Some((_, min)) = NUMBERS.iter().find(|(n, _)| *n == f) {
            if !parse_int(v).is_some_and(|n| n >= *min) {
                errs.push(e(
                    f,
                    "Invalid",
                    &format!("Not a valid number: number must be >= {min}"),
                ));
            }
        }
        if BOOLEANS.contains(&f) && as_bool(v).is_none() {
            errs.push(e(f, "Invalid", "Invalid parameter"));
        }
        if (UUIDS.contains(&f) || f == "owner_uuid") && !v.as_str().is_some_and(is_uuid) {
            errs.push(e(f, "Invalid", "Invalid UUID"));
        }
        if STRINGS.contains(&f) && !v.is_string() {
            errs.push(e(f, "Invalid", "Not a valid string"));
        }
        if OBJECTS.contains(&f) {
            errs.extend(metadata_errors(f, v));
        }
    }
    let brand = p.get("brand").and_then(Value::as_str).unwrap_or_default();
    let set = |k: &str| {
        p.get(k).is_some_and(|v| {
            !matches!(v, Value::Null | Value::Bool(false))
                && v.as_str() != Some("")
                && v.as_f64() != Some(0.0)
        })
    };
    if !set("billing_id") {
        if HVM_BRANDS.contains(&brand) && !set("ram") {
            errs.push(e(
                "ram",
                "MissingParameter",
                &format!("Is required for {brand}"),
            ));
        } else if !set("max_physical_memory") && !set("ram") {
            errs.push(missing("ram"));
        }
    }
    if p.get("max_swap")
        .and_then(parse_int)
        .is_some_and(|s| s < MIN_SWAP)
    {
        errs.push(e(
            "max_swap",
            "Invalid",
            &format!("Cannot be less than {MIN_SWAP}"),
        ));
    }
    // validateBrandParams: container brands need an image
    if valid_brands().contains(&brand)
        && !HVM_BRANDS.contains(&brand)
        && p.get("image_uuid").is_none_or(Value::is_null)
    {
        errs.push(missing("image_uuid"));
    }
    errs
}

/// What CreateVm settled on.
pub struct Validated {
    pub params: Map<String, Value>,
    pub package: Option<Map<String, Value>>,
    pub image: Option<Map<String, Value>>,
    pub server: Option<Server>,
}

/// validateCreateVmParams: sync checks, then the checks that need the other
/// services (uuid/alias uniqueness, server, package, image).
pub fn validate_create(ctx: &Ctx, mut p: Map<String, Value>) -> Result<Validated, ApiError> {
    let mut errs = validate_sync(&p);
    let has_billing = p.get("billing_id").is_some_and(|b| !b.is_null());
    if has_billing && !p.get("brand").is_some_and(Value::is_string) {
        // upstream asserts here (`assert.string(params.brand)`) and answers 500
        return Err(ApiError::internal("params.brand (string) is required"));
    }
    let brand = p
        .get("brand")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let vms = ctx.store.read(VMS)?;
    if let Some(u) = p.get("uuid").and_then(Value::as_str) {
        if vms.contains_key(u) {
            errs.push(e("uuid", "Duplicate", "Already exists"));
        }
    }
    if let (Some(alias), Some(owner)) = (
        p.get("alias").and_then(Value::as_str),
        p.get("owner_uuid").and_then(Value::as_str),
    ) {
        let dup = vms.values().any(|v| {
            v["alias"] == alias
                && v["owner_uuid"] == owner
                && !matches!(v["state"].as_str(), Some("destroyed") | Some("failed"))
        });
        if dup {
            errs.push(e(
                "alias",
                "Duplicate",
                "Already exists for this owner_uuid",
            ));
        }
    }
    let mut server = None;
    if let Some(su) = p
        .get("server_uuid")
        .and_then(Value::as_str)
        .filter(|s| is_uuid(s))
    {
        match cnapi::find_server(ctx, su)? {
            None => errs.push(e(
                "server_uuid",
                "Invalid",
                &format!("Server {su} not found"),
            )),
            Some(s) => {
                let have = s.brands();
                if !brand.is_empty() && !have.is_empty() && !have.contains(&brand) {
                    errs.push(e(
                        "server_uuid",
                        "Invalid",
                        &format!(
                            "Server {su} (platform {}) does not support brand \"{brand}\"",
                            s.platform()
                        ),
                    ));
                }
                server = Some(s);
            }
        }
    }
    let mut package = None;
    if let Some(bid) = p
        .get("billing_id")
        .and_then(Value::as_str)
        .filter(|s| is_uuid(s))
    {
        match ctx
            .store
            .read(PACKAGES)?
            .get(bid)
            .and_then(Value::as_object)
            .cloned()
        {
            None => errs.push(e(
                "billing_id",
                "Invalid",
                &format!("Package {bid} does not exist"),
            )),
            Some(pkg) => {
                let pbrand = pkg.get("brand").and_then(Value::as_str).unwrap_or_default();
                if !pbrand.is_empty() && pbrand != brand {
                    errs.push(e(
                        "brand",
                        "Invalid",
                        &format!("Package requires brand \"{pbrand}\", but brand \"{brand}\" was specified"),
                    ));
                }
                fill_from_package(&mut p, &pkg, &brand);
                package = Some(pkg);
            }
        }
    }
    let mut image = None;
    if let Some(iu) = p
        .get("image_uuid")
        .and_then(Value::as_str)
        .filter(|s| is_uuid(s))
    {
        match ctx.store.load_manifest(iu) {
            None => errs.push(e("image_uuid", "Invalid", &format!("image {iu} not found"))),
            Some(m) => {
                if m["state"] != "active" || m["disabled"] == true {
                    errs.push(e(
                        "image_uuid",
                        "Invalid",
                        "Image must be active and not disabled",
                    ));
                }
                if brand == "lx" {
                    let t = m["type"].as_str().unwrap_or_default();
                    if t != "lx-dataset" && t != "docker" {
                        errs.push(e(
                            "image_uuid",
                            "Invalid",
                            &format!(
                                "Image type is \"{t}\" must be one of: [\"lx-dataset\",\"docker\"]"
                            ),
                        ));
                    }
                }
                image = m.as_object().cloned();
            }
        }
    }
    if brand == "lx" && image.is_some() && p.get("kernel_version").is_none_or(Value::is_null) {
        match image
            .as_ref()
            .and_then(|i| i.get("tags"))
            .and_then(|t| t.get("kernel_version"))
            .cloned()
        {
            Some(k) => {
                p.insert("kernel_version".into(), k);
            }
            None => errs.push(e(
                "kernel_version",
                "MissingParameter",
                "Required for LX zones",
            )),
        }
    }
    if !errs.is_empty() {
        return Err(validation_failed("Invalid VM parameters", errs));
    }
    Ok(Validated {
        params: p,
        package,
        image,
        server,
    })
}

/// validatePackageValues: package fields fill what the caller left unset
/// (quota in GiB; kvm gets 10), and cpu_shares comes from `fss` or RAM/128.
fn fill_from_package(p: &mut Map<String, Value>, pkg: &Map<String, Value>, brand: &str) {
    let unset = |p: &Map<String, Value>, k: &str| p.get(k).is_none_or(Value::is_null);
    for k in [
        "cpu_cap",
        "max_lwps",
        "max_physical_memory",
        "max_swap",
        "quota",
        "vcpus",
        "zfs_io_priority",
    ] {
        if let Some(v) = pkg.get(k).filter(|v| !v.is_null()) {
            if unset(p, k) {
                let n = num(v).unwrap_or(0.0);
                let val = if k == "quota" {
                    if brand == "kvm" {
                        json!(10)
                    } else {
                        json!((n / 1024.0).floor() as i64)
                    }
                } else {
                    json!(n as i64)
                };
                p.insert(k.to_string(), val);
            }
        }
    }
    if let Some(ram) = pkg.get("max_physical_memory").and_then(num) {
        if unset(p, "ram") {
            p.insert("ram".into(), json!(ram as i64));
        }
    }
    if unset(p, "cpu_shares") {
        let shares = match pkg.get("fss").and_then(num) {
            Some(f) => f.floor(),
            None => {
                let ram = p
                    .get("max_physical_memory")
                    .or_else(|| p.get("ram"))
                    .and_then(num)
                    .unwrap_or(0.0);
                if ram > 128.0 {
                    (ram / 128.0).floor()
                } else {
                    1.0
                }
            }
        };
        p.insert("cpu_shares".into(), json!(shares as i64));
    }
}

/// The vmadm payload for a VMAPI VM.
pub fn vmadm_payload(vm: &Map<String, Value>) -> Value {
    let mut o = Map::new();
    let hvm = vm
        .get("brand")
        .and_then(Value::as_str)
        .is_some_and(|b| HVM_BRANDS.contains(&b));
    for k in [
        "uuid",
        "brand",
        "alias",
        "owner_uuid",
        "billing_id",
        "image_uuid",
        "cpu_cap",
        "cpu_shares",
        "max_lwps",
        "max_swap",
        "max_locked_memory",
        "quota",
        "zfs_io_priority",
        "limit_priv",
        "fs_allowed",
        "delegate_dataset",
        "customer_metadata",
        "internal_metadata",
        "tags",
        "autoboot",
        "resolvers",
        "firewall_enabled",
        "kernel_version",
        "package_name",
        "package_version",
    ] {
        if let Some(v) = vm.get(k).filter(|v| !v.is_null()) {
            o.insert(k.to_string(), v.clone());
        }
    }
    let nics = nics_of(vm.get("networks"));
    if !nics.is_empty() {
        o.insert("nics".into(), Value::Array(nics));
    }
    if hvm {
        for k in ["ram", "vcpus", "disks", "bootrom"] {
            if let Some(v) = vm.get(k).filter(|v| !v.is_null()) {
                o.insert(k.to_string(), v.clone());
            }
        }
        o.remove("quota");
        o.remove("image_uuid");
    } else if let Some(r) = vm
        .get("max_physical_memory")
        .or_else(|| vm.get("ram"))
        .filter(|v| !v.is_null())
    {
        o.insert("max_physical_memory".into(), r.clone());
    }
    Value::Object(o)
}

/// The nics of a VM's `networks` (what NAPI would hand out): every network
/// is on the node's `admin` nic tag (or the object's `nic_tag`) with a DHCP
/// (or the object's first `ipv4_ips`) address; the object's antispoof flags
/// and `primary` go onto its nic. The first nic is primary unless another
/// says so.
pub fn nics_of(networks: Option<&Value>) -> Vec<Value> {
    let list: Vec<Value> = match networks {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => s
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| json!(s))
            .collect(),
        _ => return Vec::new(),
    };
    let truthy = |v: Option<&Value>| v.and_then(as_bool) == Some(true);
    let any_primary = list.iter().any(|n| truthy(n.get("primary")));
    list.iter()
        .enumerate()
        .map(|(i, n)| {
            let o = n.as_object().cloned().unwrap_or_default();
            let uuid = match n {
                Value::String(s) => Some(s.clone()),
                _ => o
                    .get("ipv4_uuid")
                    .or_else(|| o.get("uuid"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let ip = o
                .get("ipv4_ips")
                .and_then(|v| v.get(0))
                .and_then(Value::as_str)
                .unwrap_or("dhcp");
            let mut nic = json!({
                "interface": format!("net{i}"),
                "nic_tag": o.get("nic_tag").and_then(Value::as_str).unwrap_or("admin"),
                "ip": ip,
            });
            if let Some(u) = uuid {
                nic["network_uuid"] = json!(u);
            }
            if truthy(o.get("primary")) || (!any_primary && i == 0) {
                nic["primary"] = json!(true);
            }
            for f in [
                "allow_ip_spoofing",
                "allow_mac_spoofing",
                "allow_dhcp_spoofing",
                "allow_restricted_traffic",
            ] {
                if truthy(o.get(f)) {
                    nic[f] = json!(true);
                }
            }
            nic
        })
        .collect()
}

// ---- running the node's tools

pub struct ToolOut {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_tool(
    bin: &std::path::Path,
    root: &std::path::Path,
    tool: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> ToolOut {
    let mut cmd = sim_node::node::tool_command_at(bin, root, tool);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(err) => {
            return ToolOut {
                ok: false,
                stdout: String::new(),
                stderr: format!("{tool}: {err}"),
            }
        }
    };
    if let (Some(data), Some(mut si)) = (stdin, child.stdin.take()) {
        let _ = si.write_all(data);
    }
    match child.wait_with_output() {
        Ok(o) => ToolOut {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        },
        Err(err) => ToolOut {
            ok: false,
            stdout: String::new(),
            stderr: format!("{tool}: {err}"),
        },
    }
}

/// Make sure the image is installed on the node (cn-agent imports it from
/// IMGAPI before `vmadm create`).
fn ensure_image(ctx: &Ctx, root: &std::path::Path, image_uuid: &str) -> Result<(), String> {
    if run_tool(
        &ctx.cfg.node_bin,
        root,
        "imgadm",
        &["get", image_uuid],
        None,
    )
    .ok
    {
        return Ok(());
    }
    let m = ctx
        .store
        .load_manifest(image_uuid)
        .ok_or_else(|| format!("image {image_uuid} not in IMGAPI"))?;
    let file = ctx.store.image_file_path(image_uuid);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mp = tmp.path().join("manifest.json");
    let mut mm = m.clone();
    if let Some(o) = mm.as_object_mut() {
        o.remove("activated");
    }
    std::fs::write(&mp, serde_json::to_vec_pretty(&mm).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let out = run_tool(
        &ctx.cfg.node_bin,
        root,
        "imgadm",
        &[
            "install",
            "-m",
            &mp.to_string_lossy(),
            "-f",
            &file.to_string_lossy(),
        ],
        None,
    );
    if out.ok {
        Ok(())
    } else {
        Err(format!("imgadm install {image_uuid}: {}", out.stderr))
    }
}

fn job(name: &str, vm_uuid: &str, params: Value) -> Map<String, Value> {
    let now = now_iso();
    json!({
        "uuid": new_uuid(),
        "name": name,
        "task": name.split('-').next().unwrap_or(name),
        "execution": "running",
        "vm_uuid": vm_uuid,
        "params": params,
        "chain_results": [],
        "created_at": now,
        "exec_after": now,
        "timeout": 3810,
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

fn finish_job(j: &mut Map<String, Value>, steps: Vec<(String, Result<String, String>)>) {
    let now = now_iso();
    let mut results = Vec::new();
    let mut failed = false;
    for (name, r) in steps {
        match r {
            Ok(msg) => results.push(json!({"result": msg, "error": "", "name": name, "started_at": now, "finished_at": now})),
            Err(err) => {
                failed = true;
                results.push(json!({"result": "", "error": err, "name": name, "started_at": now, "finished_at": now}));
                break;
            }
        }
    }
    j.insert("chain_results".into(), json!(results));
    j.insert(
        "execution".into(),
        json!(if failed { "failed" } else { "succeeded" }),
    );
    j.insert("elapsed".into(), json!(0));
}

fn save_job(ctx: &Ctx, j: &Map<String, Value>) -> anyhow::Result<()> {
    let id = j["uuid"].as_str().unwrap_or_default().to_string();
    ctx.store.update(JOBS, |c| {
        c.insert(id, Value::Object(j.clone()));
    })
}

fn vm_uuid_of(vm: &Map<String, Value>) -> String {
    vm.get("uuid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// An active VM of the same owner already has this VM's alias.
fn alias_taken(vms: &Map<String, Value>, vm: &Map<String, Value>) -> bool {
    let (Some(alias), Some(owner)) = (
        vm.get("alias").and_then(Value::as_str),
        vm.get("owner_uuid").and_then(Value::as_str),
    ) else {
        return false;
    };
    let me = vm.get("uuid");
    vms.values().any(|v| {
        v.get("uuid") != me
            && v["alias"] == alias
            && v["owner_uuid"] == owner
            && !matches!(v["state"].as_str(), Some("destroyed") | Some("failed"))
    })
}

fn save_vm(ctx: &Ctx, vm: &Map<String, Value>) -> anyhow::Result<()> {
    let id = vm["uuid"].as_str().unwrap_or_default().to_string();
    ctx.store.update(VMS, |c| {
        c.insert(id, Value::Object(vm.clone()));
    })
}

fn node_of(ctx: &Ctx, server_uuid: &str) -> anyhow::Result<Option<Server>> {
    cnapi::find_server(ctx, server_uuid)
}

/// Merge what the node's vmadm says about a VM into the VMAPI record.
fn merge_node_vm(vm: &mut Map<String, Value>, node_vm: &Map<String, Value>) {
    for (k, v) in node_vm {
        if k == "server_uuid" {
            continue;
        }
        vm.insert(k.clone(), v.clone());
    }
    if let Some(m) = node_vm.get("max_physical_memory") {
        vm.insert("ram".into(), m.clone());
    }
}

fn vmadm_get(
    bin: &std::path::Path,
    root: &std::path::Path,
    uuid: &str,
) -> Option<Map<String, Value>> {
    let out = run_tool(bin, root, "vmadm", &["get", uuid], None);
    if !out.ok {
        return None;
    }
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_object().cloned())
}

/// CreateVm after validation: record the VM and its job, place it, create it
/// on the node. Returns `(vm_uuid, job_uuid)`.
pub fn provision(ctx: &Ctx, v: Validated) -> Result<(String, String), ApiError> {
    let mut p = v.params;
    let vm_uuid = p
        .get("uuid")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(new_uuid);
    p.insert("uuid".into(), json!(vm_uuid));
    let now = now_iso();
    let mut vm = p.clone();
    vm.insert("state".into(), json!("provisioning"));
    vm.insert("zone_state".into(), json!("configured"));
    vm.insert("create_timestamp".into(), json!(now));
    vm.insert("last_modified".into(), json!(now));
    vm.insert(
        "autoboot".into(),
        p.get("autoboot")
            .and_then(as_bool)
            .map(Value::Bool)
            .unwrap_or(json!(true)),
    );
    vm.entry("nics").or_insert(json!([]));
    vm.entry("customer_metadata").or_insert(json!({}));
    vm.entry("internal_metadata").or_insert(json!({}));
    vm.entry("tags").or_insert(json!({}));
    vm.insert("destroyed".into(), Value::Null);
    let mut j = job("provision-7.3.0", &vm_uuid, Value::Object(p.clone()));
    let job_uuid = j["uuid"].as_str().unwrap_or_default().to_string();
    // validateCreateVmParams checked the alias before; checking again and
    // recording the VM under one lock makes the uniqueness atomic, so
    // concurrent creates of one name give one VM
    let rec = vm.clone();
    let dup = ctx.store.update(VMS, move |c| {
        let clash = alias_taken(c, &rec);
        if !clash {
            c.insert(vm_uuid_of(&rec), Value::Object(rec));
        }
        clash
    })?;
    if dup {
        return Err(validation_failed(
            "Invalid VM parameters",
            vec![e(
                "alias",
                "Duplicate",
                "Already exists for this owner_uuid",
            )],
        ));
    }
    save_job(ctx, &j)?;

    let mut steps: Vec<(String, Result<String, String>)> = vec![(
        "common.validate_params".into(),
        Ok("All parameters OK!".into()),
    )];
    // placement
    let server = match v.server {
        Some(s) => {
            steps.push((
                "cnapi.check_server".into(),
                Ok(format!("server_uuid {} given, DAPI skipped", s.uuid)),
            ));
            Some(s)
        }
        None => {
            let w = Wanted {
                vm: p.clone(),
                package: v.package.clone(),
                image: v.image.clone(),
            };
            let placement = cnapi::allocate(ctx, cnapi::servers(ctx)?, &w)?;
            match placement.server {
                Some(s) => {
                    steps.push((
                        "dapi.get_allocation".into(),
                        Ok(format!("Server allocated: {}", s.uuid)),
                    ));
                    Some(s)
                }
                None => {
                    steps.push((
                        "dapi.get_allocation".into(),
                        Err(format!(
                            "No compute resources available: {}",
                            placement.reason
                        )),
                    ));
                    None
                }
            }
        }
    };
    if let Some(s) = &server {
        vm.insert("server_uuid".into(), json!(s.uuid));
        save_vm(ctx, &vm)?;
        let mut ok = true;
        if let Some(iu) = p.get("image_uuid").and_then(Value::as_str) {
            if !vm
                .get("brand")
                .and_then(Value::as_str)
                .is_some_and(|b| HVM_BRANDS.contains(&b))
            {
                match ensure_image(ctx, &s.root, iu) {
                    Ok(()) => steps.push((
                        "cnapi.ensure_image".into(),
                        Ok(format!("image {iu} installed")),
                    )),
                    Err(err) => {
                        steps.push(("cnapi.ensure_image".into(), Err(err)));
                        ok = false;
                    }
                }
            }
        }
        if ok {
            let payload = vmadm_payload(&p);
            let out = run_tool(
                &s.bin,
                &s.root,
                "vmadm",
                &["create"],
                Some(payload.to_string().as_bytes()),
            );
            if out.ok {
                steps.push((
                    "cnapi.provision_vm".into(),
                    Ok(out
                        .stderr
                        .lines()
                        .chain(out.stdout.lines())
                        .last()
                        .unwrap_or("")
                        .to_string()),
                ));
                if let Some(nvm) = vmadm_get(&s.bin, &s.root, &vm_uuid) {
                    merge_node_vm(&mut vm, &nvm);
                } else {
                    vm.insert("state".into(), json!("running"));
                }
            } else {
                let msg = if out.stderr.is_empty() {
                    out.stdout.trim().to_string()
                } else {
                    out.stderr.clone()
                };
                steps.push((
                    "cnapi.provision_vm".into(),
                    Err(format!("vmadm create failed: {msg}")),
                ));
            }
        }
    }
    finish_job(&mut j, steps);
    if j["execution"] == "failed" {
        vm.insert("state".into(), json!("failed"));
        vm.insert("zone_state".into(), json!("failed"));
    }
    vm.insert("last_modified".into(), json!(now_iso()));
    save_vm(ctx, &vm)?;
    save_job(ctx, &j)?;
    ctx.logger("vmapi").info(
        "provision job finished",
        json!({"vm_uuid": vm_uuid, "job_uuid": job_uuid, "execution": j["execution"], "server_uuid": vm.get("server_uuid"), "brand": vm.get("brand"), "owner_uuid": vm.get("owner_uuid")}),
    );
    Ok((vm_uuid, job_uuid))
}

/// Bring VMAPI's records for one server up to date with the node (what
/// vm-agent does): states of known VMs, and VMs made on the node by hand.
pub fn sync_server(ctx: &Ctx, s: &Server) -> anyhow::Result<()> {
    let out = run_tool(&s.bin, &s.root, "vmadm", &["lookup", "-j"], None);
    if !out.ok {
        return Ok(());
    }
    let Ok(Value::Array(list)) = serde_json::from_str::<Value>(&out.stdout) else {
        return Ok(());
    };
    ctx.store.update(VMS, |c| {
        let mut seen = std::collections::HashSet::new();
        for nvm in list.iter().filter_map(Value::as_object) {
            let Some(u) = nvm.get("uuid").and_then(Value::as_str) else {
                continue;
            };
            seen.insert(u.to_string());
            let rec = c.entry(u.to_string()).or_insert_with(|| json!({"uuid": u}));
            if let Some(o) = rec.as_object_mut() {
                merge_node_vm(o, nvm);
                o.insert("server_uuid".into(), json!(s.uuid));
            }
        }
        for rec in c.values_mut() {
            if rec["server_uuid"] == s.uuid.as_str() {
                let u = rec["uuid"].as_str().unwrap_or_default().to_string();
                let st = rec["state"].as_str().unwrap_or_default();
                if !seen.contains(&u) && !matches!(st, "provisioning" | "failed" | "destroyed") {
                    rec["state"] = json!("destroyed");
                    rec["zone_state"] = json!("destroyed");
                    rec["destroyed"] = json!(now_iso());
                }
            }
        }
    })
}

fn sync_all(ctx: &Ctx) -> anyhow::Result<()> {
    for s in cnapi::servers(ctx)? {
        if s.error.is_none() {
            sync_server(ctx, &s)?;
        }
    }
    Ok(())
}

pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/ping", get(|| async { json_response(200, &json!({"pingErrors": {}, "pid": std::process::id(), "status": "OK", "healthy": true})) }))
        .route("/vms", get(list).head(list).post(create))
        .route("/vms/{uuid}", get(get_one).post(action).delete(destroy))
        .route("/vms/{uuid}/jobs", get(vm_jobs))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{uuid}", get(get_job))
        .with_state(ctx)
}

fn blocking_err(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(e.to_string())
}

fn job_response(vm_uuid: &str, job_uuid: &str) -> axum::response::Response {
    let mut r = json_response(202, &json!({"vm_uuid": vm_uuid, "job_uuid": job_uuid}));
    if let Ok(v) = HeaderValue::from_str(&format!("/jobs/{job_uuid}")) {
        r.headers_mut().insert("location", v);
    }
    r
}

async fn create(State(ctx): State<Arc<Ctx>>, body: Bytes) -> ApiResult {
    let p = json_body(&body)?;
    let c = ctx.clone();
    let (vm, job) = tokio::task::spawn_blocking(move || -> Result<(String, String), ApiError> {
        let v = validate_create(&c, p)?;
        provision(&c, v)
    })
    .await
    .map_err(blocking_err)??;
    Ok(job_response(&vm, &job))
}

const LIST_PARAMS: &[&str] = &[
    "alias",
    "billing_id",
    "brand",
    "create_timestamp",
    "docker",
    "fields",
    "image_uuid",
    "indestructible_zoneroot",
    "limit",
    "marker",
    "offset",
    "owner_uuid",
    "package_name",
    "package_version",
    "predicate",
    "ram",
    "server_uuid",
    "sort",
    "state",
    "sync",
    "uuid",
    "uuids",
];

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn list(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let mut errs = Vec::new();
    for k in q.keys() {
        if !LIST_PARAMS.contains(&k)
            && !k.starts_with("tag.")
            && !k.starts_with("internal_metadata.")
        {
            errs.push(e(k, "Invalid", "Invalid parameter"));
        }
    }
    if let Some(b) = q.get("brand") {
        if !valid_brands().contains(&b) {
            errs.push(e("brand", "Invalid", &brand_message()));
        }
    }
    for k in [
        "owner_uuid",
        "server_uuid",
        "billing_id",
        "image_uuid",
        "uuid",
    ] {
        if q.get(k).is_some_and(|v| !is_uuid(v)) {
            errs.push(e(k, "Invalid", "Invalid UUID"));
        }
    }
    for k in ["limit", "offset"] {
        if q.get(k).is_some_and(|v| v.parse::<u64>().is_err()) {
            errs.push(e(k, "Invalid", "Not a valid number"));
        }
    }
    if !errs.is_empty() {
        return Err(validation_failed("Invalid Parameters", errs));
    }
    let c = ctx.clone();
    tokio::task::spawn_blocking(move || sync_all(&c))
        .await
        .map_err(blocking_err)??;
    let vms = ctx.store.read(VMS)?;
    let uuids: Option<Vec<&str>> = q.get("uuids").map(|u| u.split(',').collect());
    let mut found: Vec<&Value> = vms
        .values()
        .filter(|v| {
            for k in [
                "owner_uuid",
                "brand",
                "server_uuid",
                "alias",
                "billing_id",
                "image_uuid",
                "uuid",
                "package_name",
                "package_version",
                "ram",
            ] {
                if let Some(want) = q.get(k) {
                    if scalar(&v[k]) != want {
                        return false;
                    }
                }
            }
            if let Some(st) = q.get("state") {
                let s = v["state"].as_str().unwrap_or_default();
                let ok = if st == "active" {
                    !matches!(s, "destroyed" | "failed" | "incomplete")
                } else {
                    s == st
                };
                if !ok {
                    return false;
                }
            }
            if let Some(u) = &uuids {
                if !u.contains(&v["uuid"].as_str().unwrap_or_default()) {
                    return false;
                }
            }
            for (k, want) in &q.0 {
                if let Some(t) = k.strip_prefix("tag.") {
                    if scalar(&v["tags"][t]) != *want {
                        return false;
                    }
                }
            }
            true
        })
        .collect();
    let (sort_key, desc) = match q.get("sort") {
        Some(s) => {
            let (k, o) = s.split_once('.').unwrap_or((s, "asc"));
            (k.to_string(), o.eq_ignore_ascii_case("desc"))
        }
        None => ("create_timestamp".to_string(), true),
    };
    found.sort_by(|a, b| {
        let o = match (a[&sort_key].as_f64(), b[&sort_key].as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
            _ => scalar(&a[&sort_key]).cmp(&scalar(&b[&sort_key])),
        };
        let o = o.then_with(|| scalar(&a["uuid"]).cmp(&scalar(&b["uuid"])));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    let total = found.len();
    let offset = q
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0usize);
    let limit = q
        .get("limit")
        .and_then(|o| o.parse().ok())
        .filter(|l: &usize| *l > 0)
        .unwrap_or(1000);
    let fields: Option<Vec<&str>> = q
        .get("fields")
        .filter(|f| *f != "*")
        .map(|f| f.split(',').collect());
    let page: Vec<Value> = found
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|v| match &fields {
            None => v.clone(),
            Some(fs) => Value::Object(
                v.as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| fs.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
        })
        .collect();
    let mut r = json_response(200, &Value::Array(page));
    r.headers_mut()
        .insert("x-joyent-resource-count", HeaderValue::from(total));
    Ok(r)
}

fn vm_not_found() -> ApiError {
    ApiError::not_found("VM not found")
}

fn load_vm(ctx: &Ctx, uuid: &str, owner: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    let vms = ctx.store.read(VMS)?;
    let vm = vms
        .get(uuid)
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(vm_not_found)?;
    if owner.is_some_and(|o| vm.get("owner_uuid").and_then(Value::as_str) != Some(o)) {
        return Err(vm_not_found());
    }
    Ok(vm)
}

async fn get_one(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    if !is_uuid(&uuid) {
        return Err(validation_failed(
            "Invalid Parameters",
            vec![e("uuid", "Invalid", "Invalid UUID")],
        ));
    }
    let vm = load_vm(&ctx, &uuid, q.get("owner_uuid"))?;
    let c = ctx.clone();
    let server = vm
        .get("server_uuid")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(su) = server {
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            if let Some(s) = node_of(&c, &su)? {
                sync_server(&c, &s)?;
            }
            Ok(())
        })
        .await
        .map_err(blocking_err)??;
    }
    let vm = load_vm(&ctx, &uuid, None)?;
    Ok(json_response(200, &Value::Object(vm)))
}

/// start / stop / update (others: 409 with the action named).
fn run_action(
    ctx: &Ctx,
    uuid: &str,
    q: &Query,
    body: Map<String, Value>,
) -> Result<(String, String), ApiError> {
    let act = q.get("action").unwrap_or_default().to_string();
    if !matches!(act.as_str(), "start" | "stop" | "reboot" | "update") {
        return Err(validation_failed(
            "Invalid Parameters",
            vec![e(
                "action",
                "Invalid",
                &format!("Unsupported action \"{act}\""),
            )],
        ));
    }
    let mut vm = load_vm(ctx, uuid, q.get("owner_uuid"))?;
    let mut update_payload = Map::new();
    if act == "update" {
        let mut errs = Vec::new();
        if let Some(b) = body.get("brand") {
            if Some(b) != vm.get("brand") {
                errs.push(e("brand", "Invalid", "Cannot be updated"));
            }
        }
        if let Some(bid) = body.get("billing_id").and_then(Value::as_str) {
            match ctx
                .store
                .read(PACKAGES)?
                .get(bid)
                .and_then(Value::as_object)
                .cloned()
            {
                None => errs.push(e(
                    "billing_id",
                    "Invalid",
                    &format!("Package {bid} does not exist"),
                )),
                Some(pkg) => {
                    let pbrand = pkg.get("brand").and_then(Value::as_str).unwrap_or_default();
                    let vbrand = vm.get("brand").and_then(Value::as_str).unwrap_or_default();
                    if !pbrand.is_empty() && pbrand != vbrand {
                        errs.push(e("brand", "Invalid", &format!("Package requires brand \"{pbrand}\", but brand \"{vbrand}\" was specified")));
                    } else {
                        update_payload.insert("billing_id".into(), json!(bid));
                        for (k, pk) in [
                            ("max_physical_memory", "max_physical_memory"),
                            ("cpu_cap", "cpu_cap"),
                            ("max_lwps", "max_lwps"),
                            ("max_swap", "max_swap"),
                            ("zfs_io_priority", "zfs_io_priority"),
                        ] {
                            if let Some(v) = pkg.get(pk) {
                                update_payload.insert(k.into(), v.clone());
                            }
                        }
                        if let Some(qv) = pkg.get("quota").and_then(num) {
                            update_payload
                                .insert("quota".into(), json!((qv / 1024.0).floor() as u64));
                        }
                    }
                }
            }
        }
        for k in [
            "alias",
            "ram",
            "max_physical_memory",
            "quota",
            "cpu_cap",
            "max_swap",
            "max_lwps",
            "zfs_io_priority",
            "customer_metadata",
            "tags",
            "autoboot",
            "limit_priv",
            "fs_allowed",
            "firewall_enabled",
            "resolvers",
        ] {
            if let Some(v) = body.get(k) {
                update_payload.insert(
                    if k == "ram" {
                        "max_physical_memory".into()
                    } else {
                        k.to_string()
                    },
                    v.clone(),
                );
            }
        }
        let sub: Map<String, Value> = update_payload
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut check = sub.clone();
        check.insert(
            "brand".into(),
            vm.get("brand").cloned().unwrap_or(Value::Null),
        );
        check.insert(
            "owner_uuid".into(),
            vm.get("owner_uuid").cloned().unwrap_or(Value::Null),
        );
        check.insert("networks".into(), json!([]));
        check.insert(
            "billing_id".into(),
            json!(vm
                .get("billing_id")
                .and_then(Value::as_str)
                .unwrap_or("00000000-0000-0000-0000-000000000000")),
        );
        errs.extend(
            validate_sync(&check)
                .into_iter()
                .filter(|x| sub.contains_key(x["field"].as_str().unwrap_or_default())),
        );
        if !errs.is_empty() {
            return Err(validation_failed("Invalid VM update parameters", errs));
        }
    }
    let mut j = job(
        &format!("{act}-7.0.0"),
        uuid,
        json!({"action": act, "payload": Value::Object(update_payload.clone())}),
    );
    let job_uuid = j["uuid"].as_str().unwrap_or_default().to_string();
    save_job(ctx, &j)?;
    let server = vm
        .get("server_uuid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let node = match server {
        Some(s) => node_of(ctx, &s)?,
        None => None,
    };
    let steps = match &node {
        None => vec![(
            format!("cnapi.{act}_vm"),
            Err("VM has no server".to_string()),
        )],
        Some(s) => {
            let out = match act.as_str() {
                "update" => {
                    // vm-agent speaks vmadm's update language: metadata and
                    // tags are merged with set_* keys.
                    let for_vmadm: Map<String, Value> = update_payload
                        .iter()
                        .map(|(k, v)| match k.as_str() {
                            "customer_metadata" => ("set_customer_metadata".to_string(), v.clone()),
                            "tags" => ("set_tags".to_string(), v.clone()),
                            _ => (k.clone(), v.clone()),
                        })
                        .collect();
                    run_tool(
                        &s.bin,
                        &s.root,
                        "vmadm",
                        &["update", uuid],
                        Some(Value::Object(for_vmadm).to_string().as_bytes()),
                    )
                }
                other => run_tool(&s.bin, &s.root, "vmadm", &[other, uuid], None),
            };
            let idempotent = q.flag("idempotent");
            if out.ok || idempotent {
                vec![(
                    format!("cnapi.{act}_vm"),
                    Ok(if out.stdout.trim().is_empty() {
                        out.stderr
                    } else {
                        out.stdout.trim().to_string()
                    }),
                )]
            } else {
                vec![(
                    format!("cnapi.{act}_vm"),
                    Err(if out.stderr.is_empty() {
                        out.stdout
                    } else {
                        out.stderr
                    }),
                )]
            }
        }
    };
    finish_job(&mut j, steps);
    if j["execution"] == "succeeded" {
        if let Some(s) = &node {
            if act == "update" {
                for (k, v) in &update_payload {
                    vm.insert(k.clone(), v.clone());
                }
                if let Some(m) = update_payload.get("max_physical_memory") {
                    vm.insert("ram".into(), m.clone());
                }
            }
            if let Some(nvm) = vmadm_get(&s.bin, &s.root, uuid) {
                merge_node_vm(&mut vm, &nvm);
            } else if act == "start" {
                vm.insert("state".into(), json!("running"));
            } else if act == "stop" {
                vm.insert("state".into(), json!("stopped"));
            }
            vm.insert("last_modified".into(), json!(now_iso()));
            save_vm(ctx, &vm)?;
        }
    }
    save_job(ctx, &j)?;
    Ok((uuid.to_string(), job_uuid))
}

async fn action(
    State(ctx): State<Arc<Ctx>>,
    Path(uuid): Path<String>,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let q = Query::from_uri(&uri);
    let b = json_body(&body)?;
    let c = ctx.clone();
    let (vm, job) = tokio::task::spawn_blocking(move || run_action(&c, &uuid, &q, b))
        .await
        .map_err(blocking_err)??;
    Ok(job_response(&vm, &job))
}

async fn destroy(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let c = ctx.clone();
    let (vm, job) = tokio::task::spawn_blocking(move || -> Result<(String, String), ApiError> {
        let mut vm = load_vm(&c, &uuid, q.get("owner_uuid"))?;
        let mut j = job("destroy-7.0.0", &uuid, json!({}));
        let node = match vm.get("server_uuid").and_then(Value::as_str) {
            Some(s) => node_of(&c, s)?,
            None => None,
        };
        let step = match &node {
            Some(s) => {
                let out = run_tool(&s.bin, &s.root, "vmadm", &["delete", &uuid], None);
                if out.ok {
                    Ok(out.stderr)
                } else {
                    Err(out.stderr)
                }
            }
            None => Ok("VM has no server".to_string()),
        };
        finish_job(&mut j, vec![("cnapi.destroy_vm".into(), step)]);
        if j["execution"] == "succeeded" {
            vm.insert("state".into(), json!("destroyed"));
            vm.insert("zone_state".into(), json!("destroyed"));
            vm.insert("destroyed".into(), json!(now_iso()));
            save_vm(&c, &vm)?;
        }
        save_job(&c, &j)?;
        Ok((
            uuid.clone(),
            j["uuid"].as_str().unwrap_or_default().to_string(),
        ))
    })
    .await
    .map_err(blocking_err)??;
    Ok(job_response(&vm, &job))
}

async fn get_job(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>) -> ApiResult {
    let jobs = ctx.store.read(JOBS)?;
    let j = jobs
        .get(&uuid)
        .ok_or_else(|| ApiError::not_found("Job not found"))?;
    Ok(json_response(200, j))
}

async fn list_jobs(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let jobs = ctx.store.read(JOBS)?;
    let mut out: Vec<Value> = jobs
        .values()
        .filter(|j| q.get("vm_uuid").is_none_or(|v| j["vm_uuid"] == v))
        .filter(|j| q.get("execution").is_none_or(|v| j["execution"] == v))
        .filter(|j| q.get("task").is_none_or(|v| j["task"] == v))
        .cloned()
        .collect();
    out.reverse();
    Ok(json_response(200, &Value::Array(out)))
}

async fn vm_jobs(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>) -> ApiResult {
    let jobs = ctx.store.read(JOBS)?;
    let mut out: Vec<Value> = jobs
        .values()
        .filter(|j| j["vm_uuid"] == uuid.as_str())
        .cloned()
        .collect();
    out.reverse();
    Ok(json_response(200, &Value::Array(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn only_ram_gives_three_missing_parameters() {
        let errs = validate_sync(&m(json!({"ram": 1024})));
        assert_eq!(
            errs,
            vec![
                json!({"field": "brand", "code": "MissingParameter"}),
                json!({"field": "networks", "code": "MissingParameter"}),
                json!({"field": "owner_uuid", "code": "MissingParameter"}),
            ]
        );
    }

    #[test]
    fn builder_is_valid_unknown_brand_lists_the_brands() {
        let base = json!({"owner_uuid": "930896af-bf8c-48d4-885c-6573a94b1853", "networks": [], "ram": 1024,
                          "image_uuid": "6f1e0c2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b"});
        let mut b = m(base.clone());
        b.insert("brand".into(), json!("builder"));
        assert!(validate_sync(&b).is_empty());
        b.insert("brand".into(), json!("foobar"));
        assert_eq!(
            validate_sync(&b),
            vec![
                json!({"field": "brand", "code": "Invalid", "message": "Must be one of: bhyve, builder, joyent, joyent-minimal, kvm, lx"})
            ]
        );
        let mut h = m(base);
        h.insert("brand".into(), json!("bhyve"));
        h.remove("ram");
        h.remove("image_uuid");
        assert_eq!(
            validate_sync(&h),
            vec![
                json!({"field": "ram", "code": "MissingParameter", "message": "Is required for bhyve"})
            ]
        );
    }

    #[test]
    fn upstream_messages_for_bad_values() {
        let p = m(
            json!({"brand": "joyent", "owner_uuid": "nope", "networks": "x", "alias": "-a", "ram": 0,
                          "max_swap": 100, "autoboot": "yes", "customer_metadata": {"root_pw": "x"}}),
        );
        let errs: Vec<(String, String)> = validate_sync(&p)
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want = [
            (
                "alias",
                "String does not match regexp: /^[a-zA-Z0-9][a-zA-Z0-9\\_\\.\\-]*$/",
            ),
            ("autoboot", "Invalid parameter"),
            ("customer_metadata.root_pw", "Forbidden Metadata Key"),
            ("networks", "Invalid networks"),
            ("owner_uuid", "Invalid UUID"),
            ("ram", "Not a valid number: number must be >= 1"),
            // ram 0 is also "missing" (upstream tests `!params.ram`)
            ("ram", ""),
            ("max_swap", "Cannot be less than 256"),
            ("image_uuid", ""),
        ];
        assert_eq!(errs, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn package_fills_unset_fields() {
        let pkg = m(
            json!({"max_physical_memory": 2048, "quota": 20480, "cpu_cap": 200, "max_swap": 4096, "vcpus": 2}),
        );
        let mut p = m(json!({"cpu_cap": 100}));
        fill_from_package(&mut p, &pkg, "builder");
        assert_eq!(p["cpu_cap"], 100);
        assert_eq!(p["quota"], 20);
        assert_eq!(p["ram"], 2048);
        assert_eq!(p["max_physical_memory"], 2048);
        assert_eq!(p["cpu_shares"], 16);
        let mut k = Map::new();
        fill_from_package(&mut k, &pkg, "kvm");
        assert_eq!(k["quota"], 10);
    }

    #[test]
    fn payload_for_zones_uses_max_physical_memory() {
        let p = vmadm_payload(&m(
            json!({"uuid": "u", "brand": "builder", "ram": 2048, "quota": 10, "networks": []}),
        ));
        assert_eq!(p["max_physical_memory"], 2048);
        assert!(p.get("ram").is_none());
        assert!(p.get("networks").is_none());
        let h = vmadm_payload(&m(
            json!({"uuid": "u", "brand": "bhyve", "ram": 2048, "quota": 10}),
        ));
        assert_eq!(h["ram"], 2048);
        assert!(h.get("quota").is_none());
    }

    #[test]
    fn networks_become_nics_with_their_flags() {
        let n = nics_of(Some(&json!([
            {"ipv4_uuid": "n1", "ipv4_count": 1, "primary": true, "allow_ip_spoofing": true},
            "n2",
            {"uuid": "n3", "ipv4_ips": ["10.0.0.9"], "nic_tag": "external", "allow_mac_spoofing": "true"}
        ])));
        assert_eq!(n.len(), 3);
        assert_eq!(
            n[0],
            json!({"interface": "net0", "nic_tag": "admin", "ip": "dhcp", "network_uuid": "n1",
                   "primary": true, "allow_ip_spoofing": true})
        );
        assert_eq!(
            n[1],
            json!({"interface": "net1", "nic_tag": "admin", "ip": "dhcp", "network_uuid": "n2"})
        );
        assert_eq!(n[2]["ip"], "10.0.0.9");
        assert_eq!(n[2]["nic_tag"], "external");
        assert_eq!(n[2]["allow_mac_spoofing"], true);
        // without a primary flag, the first nic is primary
        assert_eq!(nics_of(Some(&json!("a,b")))[0]["primary"], true);
        assert!(nics_of(None).is_empty());
        let p = vmadm_payload(&m(
            json!({"uuid": "u", "brand": "builder", "networks": ["n1"]}),
        ));
        assert_eq!(p["nics"][0]["network_uuid"], "n1");
    }

    #[test]
    fn alias_clash_is_per_owner_and_live_vms() {
        let vms = m(json!({
            "a": {"uuid": "a", "alias": "x", "owner_uuid": "o1", "state": "running"},
            "b": {"uuid": "b", "alias": "y", "owner_uuid": "o1", "state": "destroyed"},
        }));
        let new =
            |alias: &str, owner: &str| m(json!({"uuid": "n", "alias": alias, "owner_uuid": owner}));
        assert!(alias_taken(&vms, &new("x", "o1")));
        assert!(!alias_taken(&vms, &new("x", "o2")));
        assert!(!alias_taken(&vms, &new("y", "o1")));
        // a VM never clashes with itself
        assert!(!alias_taken(
            &vms,
            &m(json!({"uuid": "a", "alias": "x", "owner_uuid": "o1"}))
        ));
        assert!(!alias_taken(
            &vms,
            &m(json!({"uuid": "n", "owner_uuid": "o1"}))
        ));
    }
}
