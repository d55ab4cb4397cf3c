//! CNAPI over sim compute nodes: `GET /servers`, `GET /servers/:uuid`,
//! `POST /servers/:uuid` (ServerUpdate: traits, reserved, ...), and
//! `POST /allocate` running the DAPI filters that matter for builder zones
//! (`sdc-designation: lib/algorithms/`): setup, reserved, platform versions
//! per SDC version, the builder platform floor, the brand the booted platform
//! carries (RFD 184 option (c)), traits, RAM and disk. When nothing is left:
//! 409 `{"code":"NoAllocatableServersError","message":"No compute resources
//! available: <reason>"}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use triton_api::dapi::{platform_ok, traits_ok};

use triton_api::{Server as ServerObj, Sysinfo};

use super::http::{empty_response, json_body, json_response, ApiError, ApiResult, Query};
use super::store::{SERVERS, VMS};
use super::Ctx;

/// The default `reservation_ratio` of a server (CNAPI's default).
pub const RESERVATION_RATIO: f64 = 0.15;

/// What CNAPI knows about one compute node.
#[derive(Debug, Clone)]
pub struct Server {
    pub root: PathBuf,
    /// The `sim` binary that runs this node's tools.
    pub bin: PathBuf,
    pub uuid: String,
    pub sysinfo: Value,
    /// `None` when the node's sysinfo could not be read.
    pub error: Option<String>,
    /// Operator-set attributes (traits, reserved, ...).
    pub attrs: Map<String, Value>,
}

impl Server {
    pub fn sdc_version(&self) -> String {
        self.sysinfo["SDC Version"]
            .as_str()
            .unwrap_or("6.5")
            .to_string()
    }

    pub fn platform(&self) -> String {
        self.sysinfo["Live Image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn setup(&self) -> bool {
        match &self.sysinfo["Setup"] {
            Value::Bool(b) => *b,
            Value::String(s) => s == "true",
            _ => false,
        }
    }

    pub fn ram_mib(&self) -> f64 {
        num(&self.sysinfo["MiB of Memory"]).unwrap_or(0.0)
    }

    pub fn disk_mib(&self) -> f64 {
        num(&self.sysinfo["Zpool Size in GiB"]).unwrap_or(0.0) * 1024.0
    }

    pub fn traits(&self) -> Map<String, Value> {
        self.attrs
            .get("traits")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub fn reserved(&self) -> bool {
        self.attrs.get("reserved") == Some(&Value::Bool(true))
    }

    pub fn reservation_ratio(&self) -> f64 {
        self.attrs
            .get("reservation_ratio")
            .and_then(num)
            .unwrap_or(RESERVATION_RATIO)
    }

    /// The brands the booted platform carries: sysinfo `Brands` when the
    /// platform reports them, else `usr/lib/brand/*/platform.xml`.
    pub fn brands(&self) -> Vec<String> {
        match self.sysinfo.get("Brands").and_then(Value::as_array) {
            Some(a) => a
                .iter()
                .filter_map(|b| b.as_str().map(str::to_string))
                .collect(),
            None => brand::check::installed_brands(&self.root),
        }
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Run the node's `sysinfo`.
pub fn read_sysinfo(bin: &Path, root: &Path) -> Result<Value, String> {
    let out = sim_node::node::tool_command_at(bin, root, "sysinfo")
        .output()
        .map_err(|e| format!("sysinfo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sysinfo: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("sysinfo output: {e}"))
}

/// Every configured compute node, as CNAPI sees it now.
pub fn servers(ctx: &Ctx) -> anyhow::Result<Vec<Server>> {
    let attrs = ctx.store.read(SERVERS)?;
    Ok(ctx
        .cfg
        .cns
        .iter()
        .map(|root| {
            let (mut sysinfo, error) = match read_sysinfo(&ctx.cfg.node_bin, root) {
                Ok(v) => (v, None),
                Err(e) => (json!({}), Some(e)),
            };
            if !ctx.cfg.report_brands {
                if let Some(o) = sysinfo.as_object_mut() {
                    o.remove("Brands");
                }
            }
            let uuid = sysinfo["UUID"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| root.display().to_string());
            let a = attrs
                .get(&uuid)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            Server {
                root: root.clone(),
                bin: ctx.cfg.node_bin.clone(),
                uuid,
                sysinfo,
                error,
                attrs: a,
            }
        })
        .collect())
}

pub fn find_server(ctx: &Ctx, uuid: &str) -> anyhow::Result<Option<Server>> {
    Ok(servers(ctx)?.into_iter().find(|s| s.uuid == uuid))
}

/// VMs VMAPI has placed on a server that still hold resources.
fn vms_on(vms: &Map<String, Value>, server: &str) -> Vec<Value> {
    vms.values()
        .filter(|v| v["server_uuid"] == server)
        .filter(|v| !matches!(v["state"].as_str(), Some("destroyed") | Some("failed")))
        .cloned()
        .collect()
}

fn used(vms: &[Value]) -> (f64, f64) {
    let ram = vms
        .iter()
        .map(|v| {
            num(&v["max_physical_memory"])
                .or_else(|| num(&v["ram"]))
                .unwrap_or(0.0)
        })
        .sum();
    let disk = vms
        .iter()
        .map(|v| num(&v["quota"]).unwrap_or(0.0) * 1024.0)
        .sum();
    (ram, disk)
}

/// The server object CNAPI answers (triton-api's `Server`).
pub fn server_object(s: &Server, vms: &Map<String, Value>, extras: &[&str]) -> Value {
    let on = vms_on(vms, &s.uuid);
    let (ram_used, disk_used) = used(&on);
    let ram = s.ram_mib();
    let ratio = s.reservation_ratio();
    let unreserved_ram = (ram * (1.0 - ratio) - ram_used).floor();
    let unreserved_disk = (s.disk_mib() - disk_used).floor();
    let status = if s.error.is_none() {
        "running"
    } else {
        "unknown"
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut extra = Map::new();
    extra.insert("default_console".into(), json!("serial"));
    extra.insert("serial".into(), json!("ttyb"));
    extra.insert("overprovision_ratios".into(), json!({}));
    for k in ["comments", "rack_identifier"] {
        extra.insert(k.into(), s.attrs.get(k).cloned().unwrap_or(json!("")));
    }
    extra.insert("transitional_status".into(), json!(""));
    if let Some(e) = &s.error {
        extra.insert("error".into(), json!(e));
    }
    let boot = s.sysinfo["Boot Time"]
        .as_str()
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    let all = extras.contains(&"all");
    let mut sysinfo = None;
    if all || extras.contains(&"sysinfo") {
        // typed when it reads as sysinfo; never dropped when it does not
        match serde_json::from_value::<Sysinfo>(s.sysinfo.clone()) {
            Ok(si) => sysinfo = Some(si),
            Err(_) => {
                extra.insert("sysinfo".into(), s.sysinfo.clone());
            }
        }
    }
    let vm_map = (all || extras.contains(&"vms")).then(|| {
        on.iter()
            .map(|v| {
                let u = v["uuid"].as_str().unwrap_or_default().to_string();
                (u.clone(), json!({"uuid": u, "owner_uuid": v["owner_uuid"], "brand": v["brand"], "state": v["state"], "max_physical_memory": v["max_physical_memory"], "quota": v["quota"]}))
            })
            .collect::<Map<String, Value>>()
    });
    let o = ServerObj {
        uuid: s.uuid.clone(),
        hostname: text(&s.sysinfo["Hostname"]),
        datacenter: text(&s.sysinfo["Datacenter Name"]),
        boot_platform: s
            .attrs
            .get("boot_platform")
            .and_then(text)
            .or_else(|| Some(s.platform())),
        current_platform: Some(s.platform()),
        boot_params: Some(
            s.sysinfo
                .get("Boot Parameters")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        ),
        kernel_flags: Some(Map::new()),
        setup: Some(s.setup().into()),
        setting_up: Some(false.into()),
        reserved: Some(s.reserved().into()),
        reservation_ratio: Some(ratio.into()),
        status: Some(status.into()),
        headnode: Some(false.into()),
        traits: Some(s.traits()),
        ram: Some((ram as u64).into()),
        memory_total_bytes: Some(((ram * 1048576.0) as u64).into()),
        memory_available_bytes: Some((((ram - ram_used).max(0.0) * 1048576.0) as u64).into()),
        unreserved_ram: Some((unreserved_ram as i64).into()),
        unreserved_disk: Some((unreserved_disk as i64).into()),
        disk_pool_size_bytes: Some(((s.disk_mib() * 1048576.0) as u64).into()),
        last_boot: boot,
        last_heartbeat: Some(super::now_iso()),
        sysinfo,
        vms: vm_map,
        extra,
    };
    serde_json::to_value(o).unwrap_or_default()
}

// ---- DAPI

/// One VM to place: the VMAPI params (`vm`), its package and image.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub vm: Map<String, Value>,
    pub package: Option<Map<String, Value>>,
    pub image: Option<Map<String, Value>>,
}

/// The outcome of a placement: the chosen server, or the reason nothing fits.
#[derive(Debug, Clone)]
pub struct Placement {
    pub server: Option<Server>,
    /// Per step: (step name, remaining server uuids, reasons by server).
    pub steps: Vec<(String, Vec<String>, BTreeMap<String, String>)>,
    pub reason: String,
}

fn traits_of(m: Option<&Map<String, Value>>, key: &str) -> Map<String, Value> {
    m.and_then(|m| m.get(key))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Run the filters over `servers` and choose one.
pub fn allocate(ctx: &Ctx, servers: Vec<Server>, w: &Wanted) -> anyhow::Result<Placement> {
    let vms = ctx.store.read(VMS)?;
    let mut steps = Vec::new();
    let mut left = servers;
    let mut last_reasons: BTreeMap<String, String> = BTreeMap::new();
    let brand =
        w.vm.get("brand")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
    let ram = num(w.vm.get("ram").unwrap_or(&Value::Null))
        .or_else(|| w.vm.get("max_physical_memory").and_then(num))
        .or_else(|| {
            w.package
                .as_ref()
                .and_then(|p| p.get("max_physical_memory"))
                .and_then(num)
        })
        .unwrap_or(0.0);
    let quota_gib = w.vm.get("quota").and_then(num).unwrap_or(0.0);
    let hvm = matches!(brand.as_str(), "bhyve" | "kvm");
    let disk_mib = if hvm { 0.0 } else { quota_gib * 1024.0 };

    type Check<'a> = Box<dyn Fn(&Server) -> Option<String> + 'a>;
    let mut filters: Vec<(&str, Check)> = vec![
        (
            "hard-filter-setup",
            Box::new(|s: &Server| (!s.setup()).then(|| "Server has not been setup".to_string())),
        ),
        (
            "hard-filter-running",
            Box::new(|s: &Server| {
                s.error
                    .as_ref()
                    .map(|e| format!("Server status is not running ({e})"))
            }),
        ),
        (
            "hard-filter-reserved",
            Box::new(|s: &Server| s.reserved().then(|| "Server is reserved".to_string())),
        ),
    ];
    let pkg_min = traits_of(w.package.as_ref(), "min_platform");
    let vm_min = traits_of(Some(&w.vm), "min_platform");
    let reqs = w
        .image
        .as_ref()
        .and_then(|i| i.get("requirements"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let img_min = reqs
        .get("min_platform")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let img_max = reqs
        .get("max_platform")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    filters.push((
        "hard-filter-platform-versions",
        Box::new(move |s: &Server| {
            let (sdc, pi) = (s.sdc_version(), s.platform());
            let has = json!({ sdc.clone(): pi.clone() });
            for (what, req, min) in [
                ("Package", &pkg_min, true),
                ("VM", &vm_min, true),
                ("Image", &img_min, true),
                ("Image", &img_max, false),
            ] {
                if !platform_ok(req, &sdc, &pi, min) {
                    let kind = if min { "min" } else { "max" };
                    return Some(format!(
                        "{what} requires {kind} platforms {}, but server has {has}",
                        Value::Object(req.clone())
                    ));
                }
            }
            None
        }),
    ));
    if brand == "builder" {
        if let Some(floor) = &ctx.cfg.builder_min_platform {
            let floor: Map<String, Value> =
                floor.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            filters.push((
                "hard-filter-feature-min-platform",
                Box::new(move |s: &Server| {
                    (!platform_ok(&floor, &s.sdc_version(), &s.platform(), true)).then(|| {
                        format!(
                            "Builder support requires min platforms {}, but server has {}",
                            Value::Object(floor.clone()),
                            json!({ s.sdc_version(): s.platform() })
                        )
                    })
                }),
            ));
        }
    }
    if ctx.cfg.filter_brands && !brand.is_empty() {
        let b = brand.clone();
        filters.push((
            "hard-filter-brand",
            Box::new(move |s: &Server| {
                let have = s.brands();
                (!have.is_empty() && !have.contains(&b)).then(|| {
                    format!(
                        "Server platform {} does not provide brand \"{b}\"",
                        s.platform()
                    )
                })
            }),
        ));
    }
    let mut want_traits = traits_of(w.package.as_ref(), "traits");
    for (k, v) in traits_of(Some(&w.vm), "traits") {
        want_traits.insert(k, v);
    }
    for (k, v) in reqs
        .get("traits")
        .or_else(|| w.image.as_ref().and_then(|i| i.get("traits")))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
    {
        want_traits.insert(k, v);
    }
    filters.push((
        "hard-filter-traits",
        Box::new(move |s: &Server| {
            let have = s.traits();
            (!traits_ok(&want_traits, &have)).then(|| {
                format!(
                    "Combined vm/package/image traits require {}, but server has {}",
                    Value::Object(want_traits.clone()),
                    Value::Object(have)
                )
            })
        }),
    ));
    let vms_ram = vms.clone();
    filters.push((
        "hard-filter-min-ram",
        Box::new(move |s: &Server| {
            let (used_ram, _) = used(&vms_on(&vms_ram, &s.uuid));
            let spare = (s.ram_mib() * (1.0 - s.reservation_ratio()) - used_ram).floor();
            (ram > spare)
                .then(|| format!("VM's calculated {ram} RAM is less than server's spare {spare}"))
        }),
    ));
    let vms_disk = vms.clone();
    filters.push((
        "hard-filter-min-disk",
        Box::new(move |s: &Server| {
            let (_, used_disk) = used(&vms_on(&vms_disk, &s.uuid));
            let spare = (s.disk_mib() - used_disk).floor();
            (disk_mib > spare).then(|| {
                format!(
                    "VM's calculated {disk_mib} MiB disk is more than server's spare {spare} MiB"
                )
            })
        }),
    ));

    if left.is_empty() {
        return Ok(Placement {
            server: None,
            steps,
            reason: "no servers found".into(),
        });
    }
    for (name, check) in &filters {
        let mut reasons = BTreeMap::new();
        left.retain(|s| match check(s) {
            Some(r) => {
                reasons.insert(s.uuid.clone(), r);
                false
            }
            None => true,
        });
        steps.push((
            name.to_string(),
            left.iter().map(|s| s.uuid.clone()).collect(),
            reasons.clone(),
        ));
        if left.is_empty() {
            last_reasons = reasons;
            break;
        }
    }
    drop(filters);
    if left.is_empty() {
        let mut uniq: Vec<String> = last_reasons.values().cloned().collect();
        uniq.dedup();
        return Ok(Placement {
            server: None,
            steps,
            reason: uniq.join("; "),
        });
    }
    // sort-min-ram: stack onto the server with the least spare RAM.
    left.sort_by(|a, b| {
        let spare = |s: &Server| {
            s.ram_mib() * (1.0 - s.reservation_ratio()) - used(&vms_on(&vms, &s.uuid)).0
        };
        spare(a)
            .partial_cmp(&spare(b))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.uuid.cmp(&b.uuid))
    });
    Ok(Placement {
        server: left.into_iter().next(),
        steps,
        reason: String::new(),
    })
}

pub fn no_resources(reason: &str) -> ApiError {
    ApiError::new(
        409,
        "NoAllocatableServersError",
        format!("No compute resources available: {reason}"),
    )
}

pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route(
            "/ping",
            get(|| async { json_response(200, &json!({"ready": true, "healthy": true})) }),
        )
        .route("/servers", get(list))
        .route("/servers/{uuid}", get(get_one).post(update))
        .route("/allocate", post(allocate_ep))
        .with_state(ctx)
}

async fn list(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let extras: Vec<&str> = q
        .get("extras")
        .map(|e| e.split(',').collect())
        .unwrap_or_default();
    let c2 = ctx.clone();
    let all = tokio::task::spawn_blocking(move || servers(&c2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let vms = ctx.store.read(VMS)?;
    let uuids: Option<Vec<&str>> = q.get("uuids").map(|u| u.split(',').collect());
    let out: Vec<Value> = all
        .iter()
        .filter(|s| uuids.as_ref().is_none_or(|u| u.contains(&s.uuid.as_str())))
        .filter(|s| q.get("setup").is_none_or(|v| (v == "true") == s.setup()))
        .filter(|s| {
            q.get("reserved")
                .is_none_or(|v| (v == "true") == s.reserved())
        })
        .filter(|_| q.get("headnode").is_none_or(|v| v == "false"))
        .filter(|s| q.get("hostname").is_none_or(|h| s.sysinfo["Hostname"] == h))
        .map(|s| server_object(s, &vms, &extras))
        .collect();
    Ok(json_response(200, &Value::Array(out)))
}

fn server_not_found(uuid: &str) -> ApiError {
    ApiError::not_found(format!("Server {uuid} not found"))
}

async fn get_one(State(ctx): State<Arc<Ctx>>, UrlPath(uuid): UrlPath<String>) -> ApiResult {
    let c2 = ctx.clone();
    let u2 = uuid.clone();
    let s = tokio::task::spawn_blocking(move || find_server(&c2, &u2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let s = s.ok_or_else(|| server_not_found(&uuid))?;
    let vms = ctx.store.read(VMS)?;
    Ok(json_response(200, &server_object(&s, &vms, &["all"])))
}

/// ServerUpdate: the operator-settable attributes.
const UPDATABLE: &[&str] = &[
    "traits",
    "reserved",
    "reservation_ratio",
    "comments",
    "rack_identifier",
    "boot_platform",
];

async fn update(
    State(ctx): State<Arc<Ctx>>,
    UrlPath(uuid): UrlPath<String>,
    body: Bytes,
) -> ApiResult {
    let params = json_body(&body)?;
    let c2 = ctx.clone();
    let u2 = uuid.clone();
    let s = tokio::task::spawn_blocking(move || find_server(&c2, &u2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    if s.is_none() {
        return Err(server_not_found(&uuid));
    }
    let mut errs = Vec::new();
    if params.get("traits").is_some_and(|t| !t.is_object()) {
        errs.push(json!({"field": "traits", "code": "Invalid", "message": "must be an object"}));
    }
    if params
        .get("reserved")
        .is_some_and(|t| !t.is_boolean() && t != "true" && t != "false")
    {
        errs.push(json!({"field": "reserved", "code": "Invalid", "message": "must be a boolean"}));
    }
    if !errs.is_empty() {
        return Err(ApiError::with_errors(
            409,
            "InvalidParameters",
            "Invalid parameters",
            errs,
        ));
    }
    ctx.store.update(SERVERS, |c| {
        let e = c.entry(uuid.clone()).or_insert_with(|| json!({}));
        if let Some(o) = e.as_object_mut() {
            for k in UPDATABLE {
                if let Some(v) = params.get(*k) {
                    let v = match (k, v) {
                        (&"reserved", Value::String(s)) => json!(s == "true"),
                        _ => v.clone(),
                    };
                    o.insert(k.to_string(), v);
                }
            }
        }
    })?;
    Ok(empty_response(204).into_response())
}

async fn allocate_ep(State(ctx): State<Arc<Ctx>>, body: Bytes) -> ApiResult {
    let p = json_body(&body)?;
    // ALLOC_VALIDATION_RULES: image, vm objects and nic_tags array required;
    // package optional. Failures answer 500, as CNAPI does.
    let invalid = |param: &str, msg: &str| {
        ApiError::with_errors(
            500,
            "InvalidParameters",
            "Request parameters failed validation",
            vec![json!({"field": param, "code": "Invalid", "message": msg})],
        )
    };
    for (k, optional, array) in [
        ("servers", true, true),
        ("package", true, false),
        ("image", false, false),
        ("vm", false, false),
        ("nic_tags", false, true),
    ] {
        match p.get(k) {
            None if optional => {}
            None => return Err(invalid(k, "Missing parameter")),
            Some(v) if array && !v.is_array() => return Err(invalid(k, "Must be an array")),
            Some(v) if !array && !v.is_object() => return Err(invalid(k, "Must be an object")),
            _ => {}
        }
    }
    let vm = p.get("vm").and_then(Value::as_object).cloned();
    if let Some(vm) = &vm {
        if !vm
            .get("owner_uuid")
            .and_then(Value::as_str)
            .is_some_and(super::is_uuid)
        {
            return Err(invalid("vm", "VM payload owner_uuid must be a UUID"));
        }
        if vm.get("ram").and_then(num).is_none() {
            return Err(invalid("vm", "VM payload ram must be a number"));
        }
    }
    if p["nic_tags"]
        .as_array()
        .is_some_and(|a| a.iter().any(|t| !t.is_string()))
    {
        return Err(invalid("nic_tags", "invalid nic_tag"));
    }
    let w = Wanted {
        vm: vm.unwrap_or_default(),
        package: p.get("package").and_then(Value::as_object).cloned(),
        image: p.get("image").and_then(Value::as_object).cloned(),
    };
    let c2 = ctx.clone();
    let placement = tokio::task::spawn_blocking(move || {
        let all = servers(&c2)?;
        allocate(&c2, all, &w)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let steps: Vec<Value> = placement
        .steps
        .iter()
        .map(|(n, remaining, reasons)| json!({"step": n, "remaining": remaining, "reasons": reasons}))
        .collect();
    ctx.logger("cnapi")
        .info("allocation", json!({"steps": steps}));
    match placement.server {
        Some(s) => {
            let vms = ctx.store.read(VMS)?;
            Ok(json_response(
                200,
                &json!({"server": server_object(&s, &vms, &["sysinfo"]), "steps": steps, "imgapiPeers": []}),
            ))
        }
        None => Err(no_resources(&placement.reason)),
    }
}
