//! IMGAPI in DC mode with channels: AdminImportImage (`POST
//! /images/:uuid?action=import`), AddImageFile (`PUT /images/:uuid/file`),
//! ActivateImage, Disable/EnableImage, ChannelAddImage, GetImage,
//! ListImages, GetImageFile, DeleteImage, ListChannels.
//!
//! Manifests are stored one file each (`DIR/imgapi/manifests/<uuid>.json`,
//! with IMGAPI's internal `activated` field, valid for imgmanifest's
//! validateDcManifest); channel membership is kept apart
//! (`DIR/imgapi/channels.json`) and added to answers as `channels`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::http::{empty_response, header, json_body, json_response, ApiError, ApiResult, Query};
use super::store::{Store, IMAGE_CHANNELS};
use super::{is_uuid, now_iso, Ctx};

/// The channels this IMGAPI serves (as updates.tritondatacenter.com does);
/// the first is the default.
pub const CHANNELS: &[(&str, &str)] = &[
    ("dev", "all development builds"),
    (
        "staging",
        "builds for testing in staging in prep for production release",
    ),
    ("release", "release gold bits"),
];

pub fn default_channel() -> &'static str {
    CHANNELS[0].0
}

fn not_found(uuid: &str) -> ApiError {
    ApiError::not_found(format!("image {uuid} not found"))
}

fn invalid_param(field: &str, message: String) -> ApiError {
    ApiError::with_errors(
        422,
        "InvalidParameter",
        &message,
        vec![json!({"field": field, "code": "Invalid"})],
    )
}

fn validation_failed(errs: Vec<Value>) -> ApiError {
    let fields: Vec<String> = errs
        .iter()
        .filter_map(|e| e["field"].as_str().map(str::to_string))
        .collect();
    ApiError::with_errors(
        422,
        "ValidationFailed",
        &format!("invalid image data: {}", fields.join(", ")),
        errs,
    )
}

/// The channel a request names (`?channel=`), or the default; an unknown
/// channel is a 422.
fn req_channel(q: &Query) -> Result<String, ApiError> {
    match q.get("channel") {
        None => Ok(default_channel().to_string()),
        Some("*") => Ok("*".to_string()),
        Some(c) if CHANNELS.iter().any(|(n, _)| *n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::with_errors(
            422,
            "ValidationFailed",
            &format!("unknown channel: {c}"),
            vec![
                json!({"field": "channel", "code": "Invalid", "message": format!("unknown channel: {c}")}),
            ],
        )),
    }
}

fn channels_of(store: &Store, uuid: &str) -> Vec<String> {
    store
        .load(IMAGE_CHANNELS)
        .get(uuid)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The manifest as IMGAPI answers it: no `activated`, plus `channels`.
pub fn serialize(m: &Value, channels: &[String]) -> Value {
    let mut o = m.as_object().cloned().unwrap_or_default();
    o.remove("activated");
    o.insert("channels".into(), json!(channels));
    Value::Object(o)
}

fn load_in_channel(
    store: &Store,
    uuid: &str,
    channel: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    let m = store.load_manifest(uuid).ok_or_else(|| not_found(uuid))?;
    let ch = channels_of(store, uuid);
    if channel != "*" && !ch.iter().any(|c| c == channel) {
        return Err(not_found(uuid));
    }
    Ok((m, ch))
}

/// reqValidUuid: a malformed uuid in the path is a 404 naming the URL.
fn valid_uuid(uuid: &str, uri: &Uri) -> Result<(), ApiError> {
    if is_uuid(uuid) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("{uri} does not exist")))
    }
}

fn check(m: &Value) -> Result<(), ApiError> {
    match imgmanifest::validate_dc_json(m.as_object().unwrap_or(&Map::new())) {
        None => Ok(()),
        Some(errs) => Err(validation_failed(errs)),
    }
}

pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/ping", get(|| async { json_response(200, &json!({"ping": "pong", "pid": std::process::id(), "version": "4.13.1", "imgapi": true})) }))
        .route("/channels", get(list_channels))
        .route("/images", get(list))
        .route("/images/{uuid}", get(get_one).post(action).delete(delete))
        .route(
            "/images/{uuid}/file",
            put(add_file)
                .get(get_file)
                .layer(DefaultBodyLimit::disable()),
        )
        .with_state(ctx)
}

async fn list_channels() -> Response {
    let v: Vec<Value> = CHANNELS
        .iter()
        .enumerate()
        .map(|(i, (n, d))| {
            if i == 0 {
                json!({"name": n, "description": d, "default": true})
            } else {
                json!({"name": n, "description": d})
            }
        })
        .collect();
    json_response(200, &Value::Array(v))
}

const LIST_STATES: &[&str] = &[
    "active",
    "disabled",
    "unactivated",
    "all",
    "creating",
    "failed",
];

fn visible_to(m: &Value, account: &str) -> bool {
    m["owner"] == account
        || (m["activated"] == true
            && m["disabled"] != true
            && (m["public"] == true
                || m["acl"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == account))))
}

fn str_match(have: &Value, want: &str, substr_ok: bool) -> bool {
    let h = match have {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".to_string(),
        other => other.to_string(),
    };
    match want.strip_prefix('~') {
        Some(sub) if substr_ok => h.contains(sub),
        _ => h == want,
    }
}

/// ListImages filters (`sdc-imgapi: lib/images.js` apiListImages).
fn matches_filter(m: &Value, q: &Query) -> bool {
    let (activated, disabled) = (m["activated"] == true, m["disabled"] == true);
    let ok_state = match q.get("state").unwrap_or("active") {
        "active" => activated && !disabled,
        "disabled" => activated && disabled,
        "unactivated" => !activated,
        "all" => true,
        other => m["state"] == other,
    };
    if !ok_state {
        return false;
    }
    for k in ["owner", "os"] {
        if let Some(v) = q.get(k) {
            if !str_match(&m[k], v, false) {
                return false;
            }
        }
    }
    for k in ["name", "version"] {
        if let Some(v) = q.get(k) {
            if !str_match(&m[k], v, true) {
                return false;
            }
        }
    }
    if let Some(t) = q.get("type") {
        let ok = match t.strip_prefix('!') {
            Some(not) => !str_match(&m["type"], not, false),
            None => str_match(&m["type"], t, false),
        };
        if !ok {
            return false;
        }
    }
    if let Some(p) = q.get("public") {
        if m["public"].as_bool() != Some(p == "true") {
            return false;
        }
    }
    if let Some(acct) = q.get("account") {
        if !visible_to(m, acct) {
            return false;
        }
    }
    for bt in q.all("billing_tag") {
        if !m["billing_tags"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == bt))
        {
            return false;
        }
    }
    for (k, v) in &q.0 {
        if let Some(tag) = k.strip_prefix("tag.") {
            let t = &m["tags"][tag];
            let s = match t {
                Value::String(s) => s.clone(),
                Value::Null => return false,
                other => other.to_string(),
            };
            if &s != v {
                return false;
            }
        }
    }
    true
}

fn check_account(q: &Query) -> Result<(), ApiError> {
    match q.get("account") {
        Some(a) if !is_uuid(a) => Err(invalid_param(
            "account",
            format!("invalid \"account\": not a UUID: \"{a}\""),
        )),
        _ => Ok(()),
    }
}

async fn list(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let channel = req_channel(&q)?;
    if let Some(st) = q.get("state") {
        if !LIST_STATES.contains(&st) {
            return Err(ApiError::with_errors(
                422,
                "InvalidParameter",
                &format!("invalid state: \"{st}\""),
                vec![json!({"field": "state", "code": "Invalid"})],
            ));
        }
    }
    if let Some(l) = q.get("limit") {
        if l.parse::<f64>().is_err() {
            // upstream names the wrong field here
            return Err(ApiError::with_errors(
                422,
                "InvalidParameter",
                &format!("invalid limit: \"{l}\""),
                vec![json!({"field": "state", "code": "Invalid"})],
            ));
        }
    }
    let store = &ctx.store;
    let (all, chans) = store.locked(|s| (s.manifests(), s.load(IMAGE_CHANNELS)))?;
    let chan_of = |u: &str| -> Vec<String> {
        chans
            .get(u)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found: Vec<Value> = all
        .into_iter()
        .filter(|m| {
            channel == "*" || chan_of(m["uuid"].as_str().unwrap_or_default()).contains(&channel)
        })
        .filter(|m| matches_filter(m, &q))
        .collect();
    if let Some(marker) = q.get("marker") {
        if let Some(ix) = found.iter().position(|m| m["uuid"] == marker) {
            found.drain(..ix);
        }
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l: &usize| *l > 0)
        .unwrap_or(1000);
    let out: Vec<Value> = found
        .into_iter()
        .take(limit)
        .map(|m| serialize(&m, &chan_of(m["uuid"].as_str().unwrap_or_default())))
        .collect();
    Ok(json_response(200, &Value::Array(out)))
}

async fn get_one(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>, uri: Uri) -> ApiResult {
    valid_uuid(&uuid, &uri)?;
    let q = Query::from_uri(&uri);
    let channel = req_channel(&q)?;
    check_account(&q)?;
    let (m, ch) = ctx
        .store
        .locked(|s| load_in_channel(s, &uuid, &channel))??;
    if q.get("account").is_some_and(|a| !visible_to(&m, a)) {
        return Err(not_found(&uuid));
    }
    Ok(json_response(200, &serialize(&m, &ch)))
}

/// The owner an image without one gets in DC mode (IMGAPI-408).
pub const UNSET_OWNER_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Fields `Image.create` takes from an import body; anything else is an
/// "extra parameter". `files`, `state` and `channels` are dropped.
const IMPORT_FIELDS: &[&str] = &[
    "v",
    "uuid",
    "owner",
    "name",
    "version",
    "description",
    "homepage",
    "eula",
    "icon",
    "type",
    "os",
    "origin",
    "public",
    "disabled",
    "acl",
    "error",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "tags",
    "generate_passwords",
    "inherited_directories",
    "published_at",
    "urn",
];
const ZVOL_FIELDS: &[&str] = &["nic_driver", "disk_driver", "cpu_type", "image_size"];

/// AdminImportImage (`POST /images/:uuid?action=import`, body = manifest):
/// keeps uuid and published_at; the image starts `unactivated` with no file.
pub fn import(
    ctx: &Ctx,
    uuid: &str,
    q: &Query,
    body: Map<String, Value>,
) -> Result<Value, ApiError> {
    if q.has("source") {
        return Err(ApiError::new(
            501,
            "NotAvailable",
            "import from a remote source is not available in the sim",
        ));
    }
    if q.has("account") {
        return Err(ApiError::new(
            403,
            "OperatorOnly",
            "this endpoint may only be called by an operator",
        ));
    }
    let body_uuid = body
        .get("uuid")
        .and_then(Value::as_str)
        .unwrap_or("undefined")
        .to_string();
    if body_uuid != uuid {
        return Err(invalid_param(
            "uuid",
            format!("URL UUID, \"{uuid}\" and body UUID, \"{body_uuid}\" do not match"),
        ));
    }
    let channel = req_channel(q)?;
    let skip_owner_check = q.flag("skip_owner_check");
    ctx.store.locked(|s| {
        if s.load_manifest(uuid).is_some() {
            return Err(ApiError::new(
                409,
                "ImageUuidAlreadyExists",
                format!("image uuid \"{uuid}\" already exists"),
            ));
        }
        if let Some(origin) = body.get("origin").and_then(Value::as_str) {
            if s.load_manifest(origin).is_none() {
                return Err(ApiError::new(
                    422,
                    "OriginDoesNotExist",
                    format!("origin image \"{origin}\" does not exist"),
                ));
            }
        }
        let mut data = body.clone();
        let accounts = s.load(super::store::ACCOUNTS);
        let owner = data
            .get("owner")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if owner == UNSET_OWNER_UUID {
            if let Some(admin) = accounts.values().find(|a| a["login"] == "admin") {
                data.insert("owner".into(), admin["uuid"].clone());
            }
        } else if !skip_owner_check && !accounts.contains_key(&owner) {
            return Err(ApiError::new(
                422,
                "OwnerDoesNotExist",
                format!("owner \"{owner}\" does not exist"),
            ));
        }
        let is_zvol = data.get("type").and_then(Value::as_str) == Some("zvol");
        let extra: Vec<String> = data
            .keys()
            .filter(|k| !matches!(k.as_str(), "files" | "state" | "channels"))
            .filter(|k| {
                !(IMPORT_FIELDS.contains(&k.as_str())
                    || is_zvol && ZVOL_FIELDS.contains(&k.as_str()))
            })
            .cloned()
            .collect();
        if !extra.is_empty() {
            return Err(ApiError::with_errors(
                422,
                "InvalidParameter",
                &format!("invalid extra parameters: \"{}\"", extra.join("\", \"")),
                extra
                    .iter()
                    .map(|f| json!({"field": f, "code": "Invalid"}))
                    .collect(),
            ));
        }
        if data.get("published_at").is_some_and(|p| !p.is_string()) {
            return Err(invalid_param(
                "published_at",
                "invalid \"published_at\"".into(),
            ));
        }
        let mut m = Map::new();
        m.insert("v".into(), data.get("v").cloned().unwrap_or(json!(2)));
        m.insert("uuid".into(), json!(uuid));
        for k in ["owner", "name", "version", "type", "os"] {
            if let Some(v) = data.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        let truthy = |k: &str| {
            data.get(k).filter(|v| {
                !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some("")
            })
        };
        m.insert(
            "public".into(),
            truthy("public").cloned().unwrap_or(json!(false)),
        );
        m.insert(
            "disabled".into(),
            truthy("disabled").cloned().unwrap_or(json!(false)),
        );
        m.insert("activated".into(), json!(false));
        m.insert("state".into(), json!("unactivated"));
        for k in [
            "description",
            "homepage",
            "eula",
            "published_at",
            "urn",
            "acl",
            "error",
            "requirements",
            "users",
            "traits",
            "tags",
            "billing_tags",
            "generate_passwords",
            "inherited_directories",
            "origin",
        ] {
            if let Some(v) = data.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
        if is_zvol {
            for k in ZVOL_FIELDS {
                if let Some(v) = data.get(*k) {
                    m.insert(
                        k.to_string(),
                        if *k == "image_size" {
                            v.as_f64()
                                .or_else(|| v.as_str().and_then(|x| x.parse().ok()))
                                .map(|n| json!(n as i64))
                                .unwrap_or(Value::Null)
                        } else {
                            v.clone()
                        },
                    );
                }
            }
        }
        let mv = Value::Object(m);
        check(&mv)?;
        s.save_manifest(&mv)?;
        let mut ch = s.load(IMAGE_CHANNELS);
        let c = if channel == "*" {
            default_channel().to_string()
        } else {
            channel.clone()
        };
        ch.insert(uuid.to_string(), json!([c]));
        s.save(IMAGE_CHANNELS, &ch)?;
        Ok(serialize(&mv, &[c]))
    })?
}

/// AddImageFile: compression is required; the size must match
/// Content-Length and the sha1 the `sha1` param.
/// What AddImageFile checks before it reads the body: the image is in the
/// channel and not activated, and `compression` is valid. Returns the
/// compression.
fn add_file_precheck(ctx: &Ctx, uuid: &str, q: &Query) -> Result<String, ApiError> {
    let channel = req_channel(q)?;
    ctx.store.locked(|s| {
        let (m, _) = load_in_channel(s, uuid, &channel)?;
        if m["activated"] == true {
            return Err(ApiError::new(
                422,
                "ImageFilesImmutable",
                format!("cannot modify files on activated image {uuid}"),
            ));
        }
        match q.get("compression") {
            None | Some("") => Err(ApiError::with_errors(
                422,
                "InvalidParameter",
                "missing \"compression\"",
                vec![json!({"field": "compression", "code": "Missing"})],
            )),
            Some(c) if !imgmanifest::VALID_COMPRESSIONS.contains(&c) => Err(invalid_param(
                "compression",
                format!(
                    "invalid compression \"{c}\" (must be one of {})",
                    imgmanifest::VALID_COMPRESSIONS.join(", ")
                ),
            )),
            Some(c) => Ok(c.to_string()),
        }
    })?
}

/// An uploaded file, streamed to a temporary file beside its final place.
pub struct Upload {
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    pub sha1: String,
}

/// Stream a request body to a temporary file in the image's file
/// directory, hashing it on the way (no size limit, constant memory).
pub async fn receive_upload(ctx: &Ctx, uuid: &str, body: Body) -> Result<Upload, ApiError> {
    use http_body_util::BodyExt as _;
    use std::io::Write as _;
    let dir = ctx
        .store
        .image_file_path(uuid)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let internal = |e: std::io::Error| ApiError::new(500, "InternalError", e.to_string());
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let mut file = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(&dir)
        .map_err(internal)?;
    let mut h = Sha1::new();
    let mut size = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::new(400, "Download", format!("upload interrupted: {e}")))?;
        if let Ok(data) = frame.into_data() {
            h.update(&data);
            size += data.len() as u64;
            file.write_all(&data).map_err(internal)?;
        }
    }
    file.as_file().sync_all().map_err(internal)?;
    Ok(Upload {
        file,
        size,
        sha1: hex(&h.finalize()),
    })
}

/// AddImageFile once the body is on disk: size, Content-Length and sha1
/// checks, then the file is renamed into place and the manifest's
/// `files` set.
pub fn add_image_file(
    ctx: &Ctx,
    uuid: &str,
    q: &Query,
    content_length: Option<u64>,
    upload: Upload,
) -> Result<Value, ApiError> {
    let channel = req_channel(q)?;
    ctx.store.locked(|s| {
        let (m, ch) = load_in_channel(s, uuid, &channel)?;
        if m["activated"] == true {
            return Err(ApiError::new(
                422,
                "ImageFilesImmutable",
                format!("cannot modify files on activated image {uuid}"),
            ));
        }
        let compression = q.get("compression").unwrap_or_default().to_string();
        let size = upload.size;
        if size == 0 {
            return Err(ApiError::new(
                400,
                "Download",
                "image file size is 0 bytes, empty files are not allowed",
            ));
        }
        if let Some(cl) = content_length.filter(|c| *c != 0) {
            if cl != size {
                return Err(ApiError::new(
                    400,
                    "Download",
                    format!(
                        "\"Content-Length\" header, {cl}, does not match uploaded size, {size}"
                    ),
                ));
            }
        }
        let sha1 = upload.sha1.clone();
        if let Some(want) = q.get("sha1").filter(|w| !w.is_empty()) {
            if want != sha1 {
                return Err(ApiError::new(
                    400,
                    "Download",
                    format!(
                        "\"sha1\" hash, {want}, does not match the uploaded file sha1 hash, {sha1}"
                    ),
                ));
            }
        }
        let p = s.image_file_path(uuid);
        upload
            .file
            .persist(&p)
            .map_err(|e| ApiError::new(500, "InternalError", e.error.to_string()))?;
        let mut file = json!({"sha1": sha1, "size": size, "compression": compression});
        if let Some(g) = q.get("dataset_guid") {
            file["dataset_guid"] = json!(g);
        }
        let mut m = m;
        m["files"] = json!([file]);
        s.save_manifest(&m)?;
        Ok(serialize(&m, &ch))
    })?
}

use common::hex::encode as hex;

/// ActivateImage: needs a file.
pub fn activate(ctx: &Ctx, uuid: &str, channel: &str) -> Result<Value, ApiError> {
    ctx.store.locked(|s| {
        let (mut m, ch) = load_in_channel(s, uuid, channel)?;
        if m["activated"] == true {
            return Err(ApiError::new(
                422,
                "ImageAlreadyActivated",
                format!("image \"{uuid}\" is already activated"),
            ));
        }
        if m["files"].as_array().is_none_or(|f| f.is_empty()) || !s.image_file_path(uuid).is_file()
        {
            return Err(ApiError::new(
                422,
                "NoActivationNoFile",
                format!("image \"{uuid}\" cannot be activated: it has no file"),
            ));
        }
        m["activated"] = json!(true);
        m["state"] = json!(if m["disabled"] == true {
            "disabled"
        } else {
            "active"
        });
        if !m["published_at"].is_string() {
            m["published_at"] = json!(now_iso());
        }
        check(&m)?;
        s.save_manifest(&m)?;
        Ok(serialize(&m, &ch))
    })?
}

async fn action(
    State(ctx): State<Arc<Ctx>>,
    Path(uuid): Path<String>,
    uri: Uri,
    body: Bytes,
) -> ApiResult {
    valid_uuid(&uuid, &uri)?;
    let q = Query::from_uri(&uri);
    let act = q.get("action").unwrap_or_default().to_string();
    let res = match act.as_str() {
        "import" => import(&ctx, &uuid, &q, json_body(&body)?)?,
        "activate" => activate(&ctx, &uuid, &req_channel(&q)?)?,
        "disable" | "enable" => {
            let channel = req_channel(&q)?;
            ctx.store.locked(|s| {
                let (mut m, ch) = load_in_channel(s, &uuid, &channel)?;
                let dis = act == "disable";
                m["disabled"] = json!(dis);
                if m["activated"] == true {
                    m["state"] = json!(if dis { "disabled" } else { "active" });
                }
                s.save_manifest(&m)?;
                Ok::<_, ApiError>(serialize(&m, &ch))
            })??
        }
        "channel-add" => {
            let b = json_body(&body)?;
            let chan = b
                .get("channel")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !CHANNELS.iter().any(|(n, _)| *n == chan) {
                return Err(ApiError::with_errors(
                    422,
                    "ValidationFailed",
                    &format!("unknown channel: {chan}"),
                    vec![
                        json!({"field": "channel", "code": "Invalid", "message": format!("unknown channel: {chan}")}),
                    ],
                ));
            }
            let channel = req_channel(&q)?;
            ctx.store.locked(|s| {
                let (m, mut ch) = load_in_channel(s, &uuid, &channel)?;
                if !ch.contains(&chan) {
                    ch.push(chan.clone());
                    let mut all = s.load(IMAGE_CHANNELS);
                    all.insert(uuid.clone(), json!(ch));
                    s.save(IMAGE_CHANNELS, &all)?;
                }
                Ok::<_, ApiError>(serialize(&m, &ch))
            })??
        }
        "" => return Err(invalid_param("action", "no action given".into())),
        other => {
            return Err(invalid_param(
                "action",
                format!("\"{other}\" action is not supported"),
            ))
        }
    };
    Ok(json_response(200, &res))
}

async fn add_file(
    State(ctx): State<Arc<Ctx>>,
    Path(uuid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    valid_uuid(&uuid, &uri)?;
    let q = Query::from_uri(&uri);
    add_file_precheck(&ctx, &uuid, &q)?;
    let cl = header(&headers, "content-length").and_then(|v| v.parse().ok());
    let upload = receive_upload(&ctx, &uuid, body).await?;
    let res = add_image_file(&ctx, &uuid, &q, cl, upload)?;
    Ok(json_response(200, &res))
}

async fn get_file(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>, uri: Uri) -> ApiResult {
    valid_uuid(&uuid, &uri)?;
    let q = Query::from_uri(&uri);
    let channel = req_channel(&q)?;
    let (m, _) = ctx
        .store
        .locked(|s| load_in_channel(s, &uuid, &channel))??;
    let p = ctx.store.image_file_path(&uuid);
    let f = tokio::fs::File::open(&p)
        .await
        .map_err(|_| ApiError::not_found(format!("image \"{uuid}\" has no file")))?;
    let len = f.metadata().await.map(|m| m.len()).ok();
    // streamed: image files are hundreds of MiB
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(f)));
    if let Some(len) = len {
        r.headers_mut()
            .insert("content-length", len.to_string().parse().expect("header"));
    }
    let h = r.headers_mut();
    h.insert(
        "content-type",
        "application/octet-stream".parse().expect("header"),
    );
    if let Some(sha1) = m["files"][0]["sha1"].as_str().and_then(|s| s.parse().ok()) {
        h.insert("x-image-file-sha1", sha1);
    }
    Ok(r)
}

async fn delete(State(ctx): State<Arc<Ctx>>, Path(uuid): Path<String>, uri: Uri) -> ApiResult {
    valid_uuid(&uuid, &uri)?;
    let q = Query::from_uri(&uri);
    let channel = req_channel(&q)?;
    ctx.store.locked(|s| {
        let (_, mut ch) = load_in_channel(s, &uuid, &channel)?;
        let mut all = s.load(IMAGE_CHANNELS);
        if q.get("force_all_channels") != Some("true") && ch.len() > 1 && channel != "*" {
            ch.retain(|c| *c != channel);
            all.insert(uuid.clone(), json!(ch));
            s.save(IMAGE_CHANNELS, &all)?;
            return Ok(());
        }
        all.remove(&uuid);
        s.save(IMAGE_CHANNELS, &all)?;
        let _ = std::fs::remove_file(s.manifest_path(&uuid));
        let _ = std::fs::remove_dir_all(
            s.image_file_path(&uuid)
                .parent()
                .unwrap_or(std::path::Path::new("/nonexistent")),
        );
        Ok::<_, ApiError>(())
    })??;
    Ok(empty_response(204).into_response())
}
