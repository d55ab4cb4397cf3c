//! PAPI: `POST/GET /packages`, `GET/PUT/DELETE /packages/:uuid`.
//!
//! The schema is production's (`sdc-papi: sapi_manifests/papi/template`)
//! with RFD 184's two changes: `builder` is a valid brand, and `brand` is
//! immutable. Validation order and texts follow `lib/validations.js`: type
//! errors in field order, then the hard-coded checks; bodies are 409
//! `{"code":"InvalidArgument","message":"Package is invalid","errors":[...]}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::http::{empty_response, json_body, json_response, ApiError, ApiResult, Query};
use super::store::PACKAGES;
use super::{is_uuid, new_uuid, valid_brands, Ctx};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Ty {
    Uuid,
    UuidList,
    Str,
    Number,
    Double,
    Bool,
    Object,
    ObjectList,
    Date,
}

pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub immutable: bool,
}

const fn f(name: &'static str, ty: Ty, required: bool, immutable: bool) -> Field {
    Field {
        name,
        ty,
        required,
        immutable,
    }
}

/// The package schema, sorted by name (validation walks it in this order).
pub const SCHEMA: &[Field] = &[
    f("active", Ty::Bool, true, false),
    f("alloc_server_spread", Ty::Str, false, false),
    f("billing_tag", Ty::Str, false, false),
    f("brand", Ty::Str, false, true),
    f("common_name", Ty::Str, false, false),
    f("cpu_burst_ratio", Ty::Double, false, false),
    f("cpu_cap", Ty::Number, true, true),
    f("created_at", Ty::Date, false, false),
    f("default", Ty::Bool, false, false),
    f("description", Ty::Str, false, false),
    f("disks", Ty::ObjectList, false, false),
    f("flexible_disk", Ty::Bool, false, false),
    f("fss", Ty::Number, false, false),
    f("group", Ty::Str, false, false),
    f("max_lwps", Ty::Number, true, true),
    f("max_physical_memory", Ty::Number, true, true),
    f("max_swap", Ty::Number, true, true),
    f("min_platform", Ty::Object, false, false),
    f("name", Ty::Str, true, true),
    f("networks", Ty::UuidList, false, false),
    f("os", Ty::Str, false, true),
    f("owner_uuids", Ty::UuidList, false, false),
    f("parent", Ty::Str, false, false),
    f("quota", Ty::Number, true, true),
    f("ram_ratio", Ty::Double, false, false),
    f("traits", Ty::Object, false, false),
    f("updated_at", Ty::Date, false, false),
    f("uuid", Ty::Uuid, true, true),
    f("vcpus", Ty::Number, false, true),
    f("version", Ty::Str, true, true),
    f("zfs_io_priority", Ty::Number, true, true),
];

/// Request parameters that are not package attributes.
const CONTROL_PARAMS: &[&str] = &["skip_validation", "force", "v"];

pub const MIN_RAM: f64 = 64.0;
pub const MIN_SWAP: f64 = 128.0;
pub const MIN_DISK: f64 = 1024.0;
pub const MIN_CPUCAP: f64 = 20.0;
pub const MIN_LWPS: f64 = 250.0;
pub const MIN_VCPUS: f64 = 1.0;
pub const MAX_VCPUS: f64 = 64.0;
pub const MAX_ZFSIO: f64 = 16383.0;
pub const SPREADS: &[&str] = &["min-ram", "random", "min-owner"];

fn field(name: &str) -> Option<&'static Field> {
    SCHEMA.iter().find(|f| f.name == name)
}

fn err(field: &str, code: &str, message: &str) -> Value {
    json!({"field": field, "code": code, "message": message})
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// JS `Number(attr) >= min (&& <= max)`, true when absent.
fn valid_number(v: Option<&Value>, min: f64, max: Option<f64>) -> bool {
    let Some(v) = v else { return true };
    match number(v) {
        Some(n) => n >= min && max.is_none_or(|m| n <= m),
        None => false,
    }
}

fn is_date(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

const NAME_RE: &str = r"^[a-zA-Z0-9]([a-zA-Z0-9_\-.]+)?[a-zA-Z0-9]$";

/// validations.validate(pkg): `None` when valid.
pub fn validate(pkg: &Map<String, Value>) -> Option<Vec<Value>> {
    let mut errs = Vec::new();
    for fd in SCHEMA {
        let val = pkg.get(fd.name);
        if fd.required {
            match val {
                None | Some(Value::Null) => {
                    errs.push(err(fd.name, "Missing", "is missing"));
                    continue;
                }
                Some(Value::String(s)) if s.is_empty() => {
                    errs.push(err(fd.name, "Missing", "is empty"));
                    continue;
                }
                _ => {}
            }
        }
        let Some(val) = val else { continue };
        let bad = match fd.ty {
            Ty::Str => (!val.is_string()).then_some("must be string"),
            Ty::Uuid => (!val.as_str().is_some_and(is_uuid)).then_some("must be UUID"),
            Ty::Number => (!val.is_number()).then_some("must be integer"),
            Ty::Double => (!val.is_number()).then_some("must be float"),
            Ty::Bool => (!val.is_boolean()).then_some("must be boolean"),
            Ty::Object => (!val.is_object()).then_some("must be a hash"),
            Ty::Date => (!val.as_str().is_some_and(is_date)).then_some("must be ISO8601 date"),
            Ty::UuidList => match val.as_array() {
                None => Some("must be an array"),
                Some(a) => (!a.iter().all(|i| i.as_str().is_some_and(is_uuid)))
                    .then_some("must only contain UUIDs"),
            },
            Ty::ObjectList => match val.as_array() {
                None => Some("must be an array"),
                Some(a) => (!a.iter().all(Value::is_object)).then_some("must only contain objects"),
            },
        };
        if let Some(m) = bad {
            errs.push(err(fd.name, "Invalid", m));
        }
    }
    for k in pkg.keys() {
        if field(k).is_none() {
            errs.push(err(k, "Invalid", "is not a supported attribute"));
        }
    }
    // hard-coded checks
    if let Some(s) = pkg.get("alloc_server_spread") {
        if !s.as_str().is_some_and(|s| SPREADS.contains(&s)) {
            errs.push(err(
                "alloc_server_spread",
                "Invalid",
                &format!("must be one of: {}", SPREADS.join(", ")),
            ));
        }
    }
    if let Some(b) = pkg.get("brand") {
        if !b.as_str().is_some_and(|b| valid_brands().contains(&b)) {
            errs.push(err(
                "brand",
                "Invalid",
                &format!("must be one of: {}", valid_brands().join(", ")),
            ));
        }
    }
    if let Some(n) = pkg.get("name").and_then(Value::as_str) {
        let re = regex::Regex::new(NAME_RE).expect("regex");
        let repeated = ["--", "__", "..", "-_", "_-", "-.", ".-", "_.", "._"]
            .iter()
            .any(|r| n.contains(r));
        if !re.is_match(n) || repeated {
            errs.push(err(
                "name",
                "Invalid",
                "must match /^[a-zA-Z0-9]([a-zA-Z0-9_\\-.]+)?[a-zA-Z0-9]$/ and not repeat -_.",
            ));
        }
    }
    if !valid_number(pkg.get("max_physical_memory"), MIN_RAM, None) {
        errs.push(err(
            "max_physical_memory",
            "Invalid",
            &format!("must be greater or equal to {MIN_RAM}"),
        ));
    }
    if !valid_number(pkg.get("max_swap"), MIN_SWAP, None) {
        errs.push(err(
            "max_swap",
            "Invalid",
            &format!("must be greater or equal to {MIN_SWAP}"),
        ));
    }
    if let (Some(s), Some(r)) = (
        pkg.get("max_swap").and_then(number),
        pkg.get("max_physical_memory").and_then(number),
    ) {
        if s.trunc() < r.trunc() {
            errs.push(err(
                "max_swap",
                "Invalid",
                "cannot be less than max_physical_memory",
            ));
        }
    }
    if !valid_number(pkg.get("quota"), MIN_DISK, None) {
        errs.push(err(
            "quota",
            "Invalid",
            &format!("must be greater or equal to {MIN_DISK}"),
        ));
    }
    if let Some(q) = pkg.get("quota").and_then(number) {
        if q != 0.0 && q % 1024.0 != 0.0 {
            errs.push(err("quota", "Invalid", "must be a multiple of 1024"));
        }
    }
    if !valid_number(pkg.get("cpu_cap"), MIN_CPUCAP, None) {
        errs.push(err(
            "cpu_cap",
            "Invalid",
            &format!("must be greater or equal to {MIN_CPUCAP}"),
        ));
    }
    if !valid_number(pkg.get("max_lwps"), MIN_LWPS, None) {
        errs.push(err(
            "max_lwps",
            "Invalid",
            &format!("must be greater or equal to {MIN_LWPS}"),
        ));
    }
    if !valid_number(pkg.get("zfs_io_priority"), 0.0, Some(MAX_ZFSIO)) {
        errs.push(err(
            "zfs_io_priority",
            "Invalid",
            &format!("must be greater or equal to 0, and less than {MAX_ZFSIO}"),
        ));
    }
    if !valid_number(pkg.get("vcpus"), MIN_VCPUS, Some(MAX_VCPUS)) {
        errs.push(err(
            "vcpus",
            "Invalid",
            &format!("must be greater or equal to {MIN_VCPUS}, and less or equal to {MAX_VCPUS}"),
        ));
    }
    if let Some(disks) = pkg.get("disks").and_then(Value::as_array) {
        if pkg.get("flexible_disk") != Some(&Value::Bool(true)) {
            errs.push(err(
                "disks",
                "Invalid",
                "can only be specified when flexible_disk is true",
            ));
        }
        for d in disks {
            let ok = d.as_object().is_some_and(|o| {
                o.keys().all(|k| k == "size")
                    && o.get("size")
                        .is_none_or(|s| s.as_u64().is_some() || s.as_str() == Some("remaining"))
            });
            if !ok {
                errs.push(err(
                    "disks",
                    "Invalid",
                    "disk objects may only have \"size\": an integer or \"remaining\"",
                ));
                break;
            }
        }
    }
    (!errs.is_empty()).then_some(errs)
}

fn validation_error(message: &str, errs: Vec<Value>) -> ApiError {
    ApiError::with_errors(409, "InvalidArgument", message, errs)
}

fn not_found(uuid: &str) -> ApiError {
    ApiError::not_found(format!("Package {uuid} does not exist"))
}

/// Params outside the schema: 409 `Unrecognised attributes`.
fn unrecognised(params: &Map<String, Value>) -> Result<(), ApiError> {
    let bad: Vec<Value> = params
        .keys()
        .filter(|k| field(k).is_none() && !CONTROL_PARAMS.contains(&k.as_str()))
        .map(|k| err(k, "Invalid", "is an unsupported attribute"))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(validation_error("Unrecognised attributes", bad))
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    }
}

/// restify's mapParams: body params, then query params (strings) for keys
/// the body lacks.
fn params(uri: &Uri, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let mut p = json_body(body)?;
    for (k, v) in Query::from_uri(uri).0 {
        p.entry(k).or_insert(Value::String(v));
    }
    Ok(p)
}

fn out(pkg: &Value) -> Value {
    let mut p = pkg.clone();
    if let Some(o) = p.as_object_mut() {
        o.insert("v".into(), json!(1));
    }
    p
}

pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route(
            "/ping",
            get(|| async {
                json_response(200, &json!({"pid": std::process::id(), "backend": "up"}))
            }),
        )
        .route("/packages", get(list).head(list).post(create))
        .route(
            "/packages/{uuid}",
            get(get_one).head(get_one).put(update).delete(delete),
        )
        .with_state(ctx)
}

/// Create a package (`POST /packages`).
pub fn create_package(ctx: &Ctx, params: Map<String, Value>) -> Result<Value, ApiError> {
    let mut pkg = Map::new();
    for fd in SCHEMA {
        if let Some(v) = params.get(fd.name) {
            pkg.insert(fd.name.to_string(), v.clone());
        }
    }
    if !truthy(pkg.get("uuid")) {
        pkg.insert("uuid".into(), json!(new_uuid()));
    }
    let uuid = pkg["uuid"].as_str().unwrap_or_default().to_string();
    if ctx.store.read(PACKAGES)?.contains_key(&uuid) {
        return Err(ApiError::new(
            409,
            "Conflict",
            "A package with the given UUID already exists",
        ));
    }
    unrecognised(&params)?;
    if !truthy(params.get("skip_validation")) {
        if let Some(errs) = validate(&pkg) {
            return Err(validation_error("Package is invalid", errs));
        }
    }
    let pv = Value::Object(pkg);
    let stored = ctx.store.update(PACKAGES, |c| {
        if c.contains_key(&uuid) {
            return Err(ApiError::new(
                409,
                "Conflict",
                "A package with the given UUID already exists",
            ));
        }
        c.insert(uuid.clone(), pv.clone());
        Ok(pv.clone())
    })??;
    Ok(out(&stored))
}

async fn create(State(ctx): State<Arc<Ctx>>, uri: Uri, body: Bytes) -> ApiResult {
    let p = params(&uri, &body)?;
    let pkg = create_package(&ctx, p)?;
    let mut r = json_response(201, &pkg);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/packages/{}",
        pkg["uuid"].as_str().unwrap_or_default()
    )) {
        r.headers_mut().insert("location", v);
    }
    Ok(r)
}

/// One search term: `*` is a wildcard, `{\2a}` a literal star.
fn term_matches(pattern: &str, value: &str) -> bool {
    let parts: Vec<String> = pattern
        .split('*')
        .map(|p| p.replace("{\\2a}", "*"))
        .collect();
    if parts.len() == 1 {
        return parts[0] == value;
    }
    let mut rest = value;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p.as_str()) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p.as_str());
        } else {
            match rest.find(p.as_str()) {
                Some(ix) => rest = &rest[ix + p.len()..],
                None => return false,
            }
        }
    }
    true
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Does attribute `val` (absent: None) match any of `wanted`?
fn attr_matches(val: Option<&Value>, wanted: &[String]) -> bool {
    let vals: Vec<String> = match val {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().filter_map(scalar_string).collect(),
        Some(v) => scalar_string(v).into_iter().collect(),
    };
    wanted
        .iter()
        .any(|w| vals.iter().any(|v| term_matches(w, v)))
}

/// A query value: a JSON array means "any of".
fn wanted(v: &str) -> Vec<String> {
    if v.starts_with('[') {
        if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(v) {
            return a.iter().filter_map(scalar_string).collect();
        }
    }
    vec![v.to_string()]
}

/// Filter packages by the schema-named query parameters. `owner_uuids=X`
/// is `(|(owner_uuids=X)(!(owner_uuids=*)))`: X's packages plus public ones.
pub fn search(pkgs: &[Value], q: &Query) -> Vec<Value> {
    pkgs.iter()
        .filter(|p| {
            q.0.iter().all(|(k, v)| {
                if field(k).is_none() {
                    return true;
                }
                let w = wanted(v);
                if k == "owner_uuids" {
                    let owners = p.get("owner_uuids");
                    let public = owners.is_none_or(|o| o.as_array().is_none_or(Vec::is_empty));
                    return public || attr_matches(owners, &w);
                }
                attr_matches(p.get(k.as_str()), &w)
            })
        })
        .cloned()
        .collect()
}

// ---- a small LDAP filter evaluator for `?filter=` (PAPI passes it to moray)

#[derive(Debug)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Eq(String, String),
    Ge(String, String),
    Le(String, String),
}

fn parse_filter(s: &str) -> Option<Filter> {
    let (f, rest) = parse_one(s.trim())?;
    rest.trim().is_empty().then_some(f)
}

fn parse_one(s: &str) -> Option<(Filter, &str)> {
    let s = s.strip_prefix('(')?;
    let op = s.chars().next()?;
    if matches!(op, '&' | '|' | '!') {
        let mut rest = &s[1..];
        let mut subs = Vec::new();
        while rest.starts_with('(') {
            let (f, r) = parse_one(rest)?;
            subs.push(f);
            rest = r;
        }
        let rest = rest.strip_prefix(')')?;
        let f = match op {
            '&' => Filter::And(subs),
            '|' => Filter::Or(subs),
            _ => Filter::Not(Box::new(subs.into_iter().next()?)),
        };
        return Some((f, rest));
    }
    let end = s.find(')')?;
    let item = &s[..end];
    let rest = &s[end + 1..];
    let f = if let Some((k, v)) = item.split_once(">=") {
        Filter::Ge(k.into(), v.into())
    } else if let Some((k, v)) = item.split_once("<=") {
        Filter::Le(k.into(), v.into())
    } else {
        let (k, v) = item.split_once('=')?;
        Filter::Eq(k.into(), v.into())
    };
    Some((f, rest))
}

fn eval(f: &Filter, p: &Value) -> bool {
    match f {
        Filter::And(v) => v.iter().all(|f| eval(f, p)),
        Filter::Or(v) => v.iter().any(|f| eval(f, p)),
        Filter::Not(f) => !eval(f, p),
        Filter::Eq(k, v) => {
            let val = p.get(k.as_str());
            if v == "*" {
                return val.is_some_and(|x| !x.is_null());
            }
            attr_matches(val, std::slice::from_ref(v))
        }
        Filter::Ge(k, v) | Filter::Le(k, v) => {
            let ge = matches!(f, Filter::Ge(..));
            let Some(x) = p.get(k.as_str()) else {
                return false;
            };
            match (number(x), v.parse::<f64>().ok()) {
                (Some(a), Some(b)) => (ge && a >= b) || (!ge && a <= b),
                _ => {
                    let a = scalar_string(x).unwrap_or_default();
                    (ge && a.as_str() >= v.as_str()) || (!ge && a.as_str() <= v.as_str())
                }
            }
        }
    }
}

async fn list(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let all: Vec<Value> = ctx.store.read(PACKAGES)?.values().cloned().collect();
    let mut found = match q.get("filter") {
        Some(fs) => {
            let f = parse_filter(fs).ok_or_else(|| {
                ApiError::new(
                    409,
                    "InvalidArgument",
                    "Provided search filter is not valid",
                )
            })?;
            all.iter().filter(|p| eval(&f, p)).cloned().collect()
        }
        None => search(&all, &q),
    };
    if let Some(sort) = q.get("sort") {
        let desc = q
            .get("order")
            .is_some_and(|o| o.eq_ignore_ascii_case("desc"));
        found.sort_by(|a, b| {
            let (x, y) = (&a[sort], &b[sort]);
            let o = match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                _ => scalar_string(x).cmp(&scalar_string(y)),
            };
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let total = found.len();
    let offset = q
        .get("offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0usize);
    let limit = q
        .get("limit")
        .and_then(|o| o.parse().ok())
        .filter(|l: &usize| *l > 0)
        .unwrap_or(usize::MAX);
    let page: Vec<Value> = found
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|p| out(&p))
        .collect();
    let mut r = json_response(200, &Value::Array(page));
    r.headers_mut()
        .insert("x-resource-count", HeaderValue::from(total));
    Ok(r)
}

/// GetPackage with optional `owner_uuids` (404 unless public or shared).
pub fn get_package(ctx: &Ctx, uuid: &str, owner_uuids: Option<&str>) -> Result<Value, ApiError> {
    let pkgs = ctx.store.read(PACKAGES)?;
    let pkg = pkgs.get(uuid).ok_or_else(|| not_found(uuid))?;
    if let (Some(req), Some(owners)) = (
        owner_uuids,
        pkg.get("owner_uuids").and_then(Value::as_array),
    ) {
        let w = wanted(req);
        if !owners
            .iter()
            .any(|o| o.as_str().is_some_and(|o| w.iter().any(|x| x == o)))
        {
            return Err(not_found(uuid));
        }
    }
    Ok(out(pkg))
}

async fn get_one(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    Ok(json_response(
        200,
        &get_package(&ctx, &uuid, q.get("owner_uuids"))?,
    ))
}

async fn update(
    State(ctx): State<Arc<Ctx>>,
    Path(uuid): Path<String>,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let params = params(&uri, &body)?;
    let res = ctx.store.update(PACKAGES, |c| {
        let Some(old) = c.get(&uuid).and_then(Value::as_object).cloned() else {
            return Err(not_found(&uuid));
        };
        unrecognised(&params)?;
        if !truthy(params.get("force")) {
            let errs: Vec<Value> = SCHEMA
                .iter()
                .filter(|f| f.immutable)
                .filter(|f| {
                    params
                        .get(f.name)
                        .is_some_and(|v| old.get(f.name) != Some(v))
                })
                .map(|f| err(f.name, "Invalid", "is immutable"))
                .collect();
            if !errs.is_empty() {
                return Err(validation_error("Attempt to update immutables", errs));
            }
        }
        let mut pkg = old;
        for fd in SCHEMA {
            if fd.name == "uuid" {
                continue;
            }
            match params.get(fd.name) {
                None => {}
                Some(Value::Null) => {
                    pkg.remove(fd.name);
                }
                Some(v) => {
                    pkg.insert(fd.name.to_string(), v.clone());
                }
            }
        }
        if !truthy(params.get("skip_validation")) {
            if let Some(errs) = validate(&pkg) {
                return Err(validation_error("Updated package is invalid", errs));
            }
        }
        let v = Value::Object(pkg);
        c.insert(uuid.clone(), v.clone());
        Ok(v)
    })??;
    Ok(json_response(200, &out(&res)))
}

async fn delete(
    State(ctx): State<Arc<Ctx>>,
    Path(uuid): Path<String>,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    let params = params(&uri, &body)?;
    ctx.store.update(PACKAGES, |c| {
        if !c.contains_key(&uuid) {
            return Err(not_found(&uuid));
        }
        if !truthy(params.get("force")) {
            return Err(ApiError::new(
                405,
                "BadMethod",
                "Packages cannot be deleted",
            ));
        }
        c.remove(&uuid);
        Ok(())
    })??;
    Ok(empty_response(204).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Map<String, Value> {
        json!({
            "uuid": "7fc87f43-2def-4e6f-9f2c-cae7d4a8d1b5", "name": "builder-16g", "version": "1.0.0",
            "active": true, "cpu_cap": 400, "max_lwps": 4000, "max_physical_memory": 16384,
            "max_swap": 32768, "quota": 102400, "zfs_io_priority": 100, "brand": "builder"
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn builder_is_a_valid_brand_unknown_is_not() {
        assert_eq!(validate(&good()), None);
        let mut p = good();
        p.insert("brand".into(), json!("WcDonalds"));
        assert_eq!(
            validate(&p).unwrap(),
            vec![
                json!({"field":"brand","code":"Invalid","message":"must be one of: bhyve, builder, joyent, joyent-minimal, kvm, lx"})
            ]
        );
    }

    #[test]
    fn type_errors_come_first_in_field_order_then_hardcoded() {
        let mut p = good();
        p.insert("uuid".into(), json!("nope"));
        p.insert("os".into(), json!(5));
        p.insert("quota".into(), json!(1000));
        p.insert("alloc_server_spread".into(), json!("fastest"));
        let fields: Vec<String> = validate(&p)
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            fields,
            ["os", "uuid", "alloc_server_spread", "quota", "quota"]
        );
    }

    #[test]
    fn missing_required_fields() {
        let p = Map::new();
        let errs = validate(&p).unwrap();
        assert!(errs
            .iter()
            .all(|e| e["code"] == "Missing" && e["message"] == "is missing"));
        assert_eq!(errs.len(), SCHEMA.iter().filter(|f| f.required).count());
    }

    #[test]
    fn owner_uuids_search_includes_public() {
        let a = "11111111-1111-1111-1111-111111111111";
        let pkgs = vec![
            json!({"name": "pub"}),
            json!({"name": "mine", "owner_uuids": [a]}),
            json!({"name": "theirs", "owner_uuids": ["22222222-2222-2222-2222-222222222222"]}),
        ];
        let q = Query(vec![("owner_uuids".into(), a.into())]);
        let names: Vec<_> = search(&pkgs, &q)
            .iter()
            .map(|p| p["name"].clone())
            .collect();
        assert_eq!(names, [json!("pub"), json!("mine")]);
        let q = Query(vec![("name".into(), "t*".into())]);
        assert_eq!(search(&pkgs, &q).len(), 1);
        let q = Query(vec![("name".into(), "t{\\2a}".into())]);
        assert_eq!(search(&pkgs, &q).len(), 0);
    }

    #[test]
    fn ldap_filters() {
        let p = json!({"name": "a", "max_physical_memory": 1024, "brand": "builder"});
        for (f, want) in [
            ("(name=a)", true),
            ("(&(name=a)(brand=builder))", true),
            ("(&(name=a)(!(brand=builder)))", false),
            ("(|(name=b)(max_physical_memory>=512))", true),
            ("(owner_uuids=*)", false),
        ] {
            assert_eq!(eval(&parse_filter(f).unwrap(), &p), want, "{f}");
        }
        assert!(parse_filter("(name=a").is_none());
    }
}
