//! The gate: CloudAPI's wire format for the calls that matter to the
//! builder brand, with the decision pipeline
//!
//! ```text
//! signature -> caller + account (mahi) -> authorize -> image, package
//!   (hidden when builder and not allowed) -> brand (getBrand + builder rule)
//!   -> server (CNAPI allocate + brand check) -> VMAPI create -> audit record
//! ```
//!
//! [`Gate::handle`] takes a plain request and returns a plain response, so it
//! can be tested without a socket; [`crate::server`] puts it on HTTP.

// `Refused` is private and built only on refusal paths; boxing it would
// only add noise.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::audit::{AuditLog, AuditRecord, Decision};
use crate::backend::{enc, BackendError, Backends, Urls};
use crate::brand::{looks_like_builder, valid_hvm_brands, BrandSource, Defaults, BUILDER};
use crate::error::CloudApiError;
use crate::httpsig;
use crate::policy::{self, CreateFacts, Denial, Principal};

/// The CloudAPI version this gate answers as.
pub const API_VERSION: &str = "9.20.0";

/// How to run the gate.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub urls: Urls,
    /// The audit log file (JSON lines, append-only).
    pub audit_path: PathBuf,
    /// `default_hvm_brand` / `default_container_brand`.
    pub defaults: Defaults,
    /// Refuse a builder placement on a server whose sysinfo does not list
    /// its brands (`Brands`), instead of trusting CNAPI's filters alone.
    pub require_brand_report: bool,
}

impl GateConfig {
    pub fn new(urls: Urls, audit_path: PathBuf) -> GateConfig {
        GateConfig {
            urls,
            audit_path,
            defaults: Defaults::default(),
            require_brand_report: true,
        }
    }
}

/// A request as the transport hands it over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (no `?`), may be empty.
    pub query: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }
}

/// The answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Response {
    fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body,
        }
    }

    fn error(e: &CloudApiError) -> Response {
        Response::json(e.status, e.body())
    }
}

/// An error the client sees, with the reason the audit log keeps.
struct Refused {
    error: CloudApiError,
    /// The body to send, when it is not `{code, message}` of `error`
    /// (a backend's 404 passed through).
    body: Option<Value>,
    reason: String,
    stage: &'static str,
}

impl Refused {
    fn new(stage: &'static str, error: CloudApiError, reason: impl Into<String>) -> Refused {
        Refused {
            error,
            body: None,
            reason: reason.into(),
            stage,
        }
    }

    fn plain(stage: &'static str, error: CloudApiError) -> Refused {
        let reason = error.message.clone();
        Refused::new(stage, error, reason)
    }

    fn response(&self) -> Response {
        Response::json(
            self.error.status,
            self.body.clone().unwrap_or_else(|| self.error.body()),
        )
    }
}

impl From<Denial> for Refused {
    fn from(d: Denial) -> Refused {
        Refused::new("brand", d.error, d.reason)
    }
}

/// A backend failure: 404s pass through unchanged (CloudAPI does that for
/// PAPI and IMGAPI), anything else is an InternalError.
fn backend(stage: &'static str, e: BackendError) -> Refused {
    if e.status() == Some(404) {
        let body = e.body().cloned().unwrap_or(Value::Null);
        let msg = body["message"].as_str().unwrap_or("not found").to_string();
        let mut r = Refused::plain(stage, CloudApiError::not_found(msg));
        if body.get("code").is_some() {
            r.body = Some(body);
        }
        return r;
    }
    Refused::new(
        stage,
        CloudApiError::internal("Internal error"),
        e.to_string(),
    )
}

/// What one request contributes to its audit record.
#[derive(Debug, Default)]
struct Trail {
    brand: Option<String>,
    brand_source: Option<BrandSource>,
    server_uuid: Option<String>,
    vm_uuid: Option<String>,
}

/// The gate.
#[derive(Debug, Clone)]
pub struct Gate {
    pub cfg: GateConfig,
    pub backends: Backends,
    pub audit: AuditLog,
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

use common::uuid::is_uuid;

/// Compare `a.b.c` versions numerically where possible.
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split('.')
        .map(|p| (p.parse().unwrap_or(0), p.to_string()))
        .collect()
}

impl Gate {
    pub fn new(cfg: GateConfig) -> Gate {
        Gate {
            backends: Backends::new(cfg.urls.clone()),
            audit: AuditLog::new(&cfg.audit_path),
            cfg,
        }
    }

    /// Serve one request.
    pub fn handle(&self, req: &Request) -> Response {
        let req_id = uuid::Uuid::new_v4().to_string();
        let started = std::time::Instant::now();
        let mut resp = self.route(req, &req_id);
        resp.headers
            .push(("api-version".into(), API_VERSION.into()));
        resp.headers.push(("request-id".into(), req_id.clone()));
        resp.headers.push((
            "response-time".into(),
            started.elapsed().as_millis().to_string(),
        ));
        tracing::info!(
            req_id = req_id.as_str(),
            method = req.method.as_str(),
            url = req.path_and_query().as_str(),
            status = resp.status as u64,
            "handled request"
        );
        resp
    }

    fn route(&self, req: &Request, req_id: &str) -> Response {
        let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        if req.path == "/--ping" {
            return Response::json(200, json!({"ping": "pong"}));
        }
        let action = match (req.method.as_str(), segs.as_slice()) {
            ("POST", [_, "machines"]) => "CreateMachine",
            ("GET" | "HEAD", [_, "machines"]) => "ListMachines",
            ("GET" | "HEAD", [_, "machines", _]) => "GetMachine",
            ("GET" | "HEAD", [_, "packages"]) => "ListPackages",
            ("GET" | "HEAD", [_, "packages", _]) => "GetPackage",
            ("GET" | "HEAD", [_, "images"]) => "ListImages",
            ("GET" | "HEAD", [_, "images", _]) => "GetImage",
            (_, [_, "machines" | "packages" | "images", ..]) => {
                return Response::error(&CloudApiError::new(
                    405,
                    "BadMethod",
                    format!("{} is not allowed", req.method),
                ))
            }
            (_, [_, _, ..]) => {
                return Response::error(&CloudApiError::not_implemented(&format!(
                    "{} {}",
                    req.method, req.path
                )))
            }
            _ => {
                return Response::error(&CloudApiError::not_found(format!(
                    "{} does not exist",
                    req.path
                )))
            }
        };
        let summary = self.summary(req, action);
        let mut who = Principal {
            account_login: segs[0].to_string(),
            ..Default::default()
        };
        if let Err(r) = self.authenticate(req, segs[0], &mut who) {
            if action == "CreateMachine" {
                self.record(req_id, action, &who, &summary, &Trail::default(), Err(&r));
            }
            return r.response();
        }
        let who = who;
        let mut trail = Trail::default();
        let out = match action {
            "CreateMachine" => self.create_machine(req, &who, &mut trail),
            "ListMachines" => self.list_machines(req, &who),
            "GetMachine" => self.get_machine(&who, segs[2]),
            "ListPackages" => return self.list_packages(req, &who, req_id, &summary),
            "GetPackage" => return self.get_package(&who, segs[2], req_id, &summary),
            "ListImages" => return self.list_images(&who, req_id, &summary),
            _ => return self.get_image(&who, segs[2], req_id, &summary),
        };
        if action == "CreateMachine" {
            let res = match &out {
                Ok(_) => Ok("provisioned"),
                Err(r) => Err(r),
            };
            self.record(req_id, action, &who, &summary, &trail, res);
        }
        match out {
            Ok((status, v)) => {
                // CloudAPI's list endpoints say how many results they carry;
                // node-triton pages until a page is shorter than its limit.
                let count = v.as_array().map(Vec::len);
                let mut r = Response::json(status, v);
                if let Some(n) = count {
                    r.headers.push(("x-resource-count".into(), n.to_string()));
                }
                r
            }
            Err(r) => {
                tracing::warn!(
                    req_id,
                    stage = r.stage,
                    reason = r.reason.as_str(),
                    "request refused"
                );
                r.response()
            }
        }
    }

    fn summary(&self, req: &Request, action: &str) -> Value {
        let mut s = json!({"method": req.method, "path": req.path});
        if !req.query.is_empty() {
            s["query"] = json!(req.query);
        }
        if action == "CreateMachine" {
            if let Ok(p) = params(req) {
                for k in ["image", "dataset", "package", "name", "brand", "networks"] {
                    if let Some(v) = p.get(k) {
                        s[k] = v.clone();
                    }
                }
            }
        }
        s
    }

    fn record(
        &self,
        req_id: &str,
        action: &str,
        who: &Principal,
        summary: &Value,
        trail: &Trail,
        outcome: Result<&str, &Refused>,
    ) {
        let (decision, reason, error) = match outcome {
            Ok(reason) => (Decision::Allow, reason.to_string(), None),
            Err(r) => (
                Decision::Deny,
                format!("{}: {}", r.stage, r.reason),
                Some(r.body.clone().unwrap_or_else(|| r.error.body())),
            ),
        };
        let rec = AuditRecord {
            time: crate::audit::now(),
            req_id: req_id.to_string(),
            action: action.to_string(),
            account_uuid: who.account_uuid.clone(),
            account_login: who.account_login.clone(),
            caller_login: who.caller_login.clone(),
            caller_user: who.caller_user.clone(),
            operator: who.caller_is_operator(),
            account_operator: who.account_is_operator(),
            request: summary.clone(),
            brand: trail.brand.clone(),
            brand_source: trail.brand_source,
            decision,
            reason,
            error,
            server_uuid: trail.server_uuid.clone(),
            vm_uuid: trail.vm_uuid.clone(),
        };
        if let Err(e) = self.audit.append(&rec) {
            // The answer is already decided; losing the record must be loud.
            tracing::error!(err = e.to_string().as_str(), "cannot write audit record");
        }
    }

    // ---- authentication

    /// Fill `who` as far as the request proves it; an error leaves what was
    /// learnt so far (for the audit record).
    fn authenticate(
        &self,
        req: &Request,
        url_login: &str,
        who: &mut Principal,
    ) -> Result<(), Refused> {
        let cred = |e: httpsig::SigError| {
            Refused::new(
                "auth",
                CloudApiError::invalid_credentials(e.to_string()),
                format!("{e:?}"),
            )
        };
        let auth = req
            .header("authorization")
            .ok_or_else(|| cred(httpsig::SigError::Missing))?;
        let sig = httpsig::parse_authorization(auth).map_err(cred)?;
        let kid = httpsig::parse_key_id(&sig.key_id).map_err(cred)?;
        // the clock check must use the date header that is signed
        let date_name = ["date", "x-date"]
            .into_iter()
            .find(|n| sig.headers.iter().any(|h| h == n))
            .ok_or_else(|| cred(httpsig::SigError::DateNotSigned))?;
        let date = req
            .header(date_name)
            .ok_or_else(|| cred(httpsig::SigError::MissingSignedHeader(date_name.into())))?;
        httpsig::check_date(date, SystemTime::now()).map_err(cred)?;
        let bad_key = || cred(httpsig::SigError::BadKeyId(sig.key_id.clone()));
        let caller = match &kid.user {
            None => self.backends.account_by_login(&kid.login),
            Some(u) => self.backends.user_by_login(&kid.login, u),
        };
        let caller = match caller {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Err(bad_key()),
            Err(e) => return Err(backend("auth", e)),
        };
        let keys_of = match &kid.user {
            None => &caller["account"]["keys"],
            Some(_) => &caller["user"]["keys"],
        };
        let key = keys_of
            .as_object()
            .and_then(|m| {
                m.values()
                    .filter_map(Value::as_str)
                    .find(|k| httpsig::key_matches(k, &kid.fingerprint))
            })
            .ok_or_else(bad_key)?;
        let msg = httpsig::signing_string(&sig.headers, &req.method, &req.path_and_query(), |n| {
            req.header(n).map(str::to_string)
        })
        .map_err(cred)?;
        httpsig::verify(key, &sig.algorithm, msg.as_bytes(), &sig.signature).map_err(cred)?;
        if let Some(md5) = req.header("content-md5") {
            use base64::Engine as _;
            use md5::Digest as _;
            let have =
                base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&req.body));
            if have != md5.trim() {
                return Err(Refused::plain(
                    "auth",
                    CloudApiError::new(400, "BadDigest", "Content-MD5 did not match"),
                ));
            }
        }
        let ca = &caller["account"];
        let groups = |a: &Value| -> Vec<String> {
            a["groups"]
                .as_array()
                .map(|g| {
                    g.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        who.caller_uuid = str_of(ca, "uuid");
        who.caller_login = str_of(ca, "login");
        who.caller_user = kid.user.clone();
        who.caller_groups = groups(ca);
        let target = if url_login == "my" || url_login == who.caller_login {
            ca.clone()
        } else {
            match self.backends.account_by_login(url_login) {
                Ok(v) => v["account"].clone(),
                Err(e) if e.status() == Some(404) => {
                    return Err(Refused::plain(
                        "account",
                        CloudApiError::not_found(format!("{url_login} does not exist")),
                    ))
                }
                Err(e) => return Err(backend("account", e)),
            }
        };
        who.account_uuid = str_of(&target, "uuid");
        who.account_login = str_of(&target, "login");
        who.account_groups = groups(&target);
        who.authorize()
            .map_err(|e| Refused::plain("authorize", e))?;
        Ok(())
    }

    // ---- CreateMachine

    fn create_machine(
        &self,
        req: &Request,
        who: &Principal,
        trail: &mut Trail,
    ) -> Result<(u16, Value), Refused> {
        let p = params(req).map_err(|e| Refused::plain("params", e))?;
        let pstr = |k: &str| -> Option<String> {
            match p.get(k) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(v) => Some(v.to_string()),
            }
        };
        // imageToDataset / ensureDataset
        if p.contains_key("image") && p.contains_key("dataset") {
            return Err(Refused::plain(
                "image",
                CloudApiError::invalid_argument("image and dataset are mutually exclusive"),
            ));
        }
        let image_id = pstr("image").or_else(|| pstr("dataset")).ok_or_else(|| {
            Refused::plain(
                "image",
                CloudApiError::missing_parameter("image must be specified"),
            )
        })?;
        if !is_uuid(&image_id) {
            return Err(Refused::plain(
                "image",
                CloudApiError::invalid_argument(format!("{image_id} is not a valid image")),
            ));
        }
        let image = self
            .backends
            .image(&image_id, &who.account_uuid)
            .map_err(|e| {
                let mut x = backend("image", e);
                if x.error.status == 404 {
                    x.reason = self.why_invisible("image", &image_id, who, &x.reason);
                }
                x
            })?;
        if !policy::image_visible(who, &image) {
            let mut r = Refused::new(
                "image",
                CloudApiError::not_found(format!("image {image_id} not found")),
                format!(
                    "builder image {image_id} hidden: {}",
                    who.builder_refusal().unwrap_or_default()
                ),
            );
            r.body = Some(
                json!({"code": "ResourceNotFound", "message": format!("image {image_id} not found")}),
            );
            return Err(r);
        }
        if image["state"] != "active" {
            return Err(Refused::plain(
                "image",
                CloudApiError::invalid_argument(format!("image {image_id} is not active")),
            ));
        }
        // ensurePackage
        let pkg_ref = pstr("package").ok_or_else(|| {
            Refused::plain(
                "package",
                CloudApiError::missing_parameter("package must be specified"),
            )
        })?;
        let pkg = self.find_package(who, &pkg_ref, true)?;
        if pkg["active"] != true {
            return Err(Refused::plain(
                "package",
                CloudApiError::invalid_argument(format!(
                    "{pkg_ref} is inactive. Must use an active package"
                )),
            ));
        }
        // getBrand + the builder rule
        let facts = CreateFacts {
            params_brand: pstr("brand"),
            image_brand: policy::image_brand(&image).map(str::to_string),
            image_type: image
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_string),
            package_brand: policy::package_brand(&pkg).map(str::to_string),
        };
        let resolved = policy::resolve_brand(who, &facts, &self.cfg.defaults)?;
        trail.brand = Some(resolved.brand.clone());
        trail.brand_source = Some(resolved.source);
        let brand = resolved.brand.as_str();

        // the VM as getCreateOptions builds it
        let vm_uuid = uuid::Uuid::new_v4().to_string();
        let mut vm = Map::new();
        vm.insert("uuid".into(), json!(vm_uuid));
        vm.insert("owner_uuid".into(), json!(who.account_uuid));
        vm.insert("brand".into(), json!(brand));
        vm.insert("billing_id".into(), pkg["uuid"].clone());
        vm.insert("image_uuid".into(), json!(image_id));
        vm.insert("ram".into(), pkg["max_physical_memory"].clone());
        for k in ["cpu_cap", "max_lwps", "max_swap", "zfs_io_priority"] {
            if let Some(v) = pkg.get(k).filter(|v| !v.is_null()) {
                vm.insert(k.into(), v.clone());
            }
        }
        if !valid_hvm_brands().contains(&brand) {
            if let Some(q) = pkg["quota"].as_f64() {
                vm.insert("quota".into(), json!((q / 1024.0).round() as u64));
            }
        }
        if let Some(name) = pstr("name") {
            vm.insert("alias".into(), json!(name));
        }
        let networks: Vec<Value> = match p.get("networks") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|n| match n {
                    Value::String(s) => json!({"ipv4_uuid": s, "ipv4_count": 1}),
                    Value::Object(o) => json!({"ipv4_uuid": o.get("ipv4_uuid").or_else(|| o.get("uuid")), "ipv4_count": 1}),
                    other => other.clone(),
                })
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| json!({"ipv4_uuid": s, "ipv4_count": 1}))
                .collect(),
            Some(_) => {
                return Err(Refused::plain(
                    "params",
                    CloudApiError::invalid_argument("Invalid networks"),
                ))
            }
        };
        vm.insert("networks".into(), Value::Array(networks));
        let mut meta = Map::new();
        let mut tags = Map::new();
        for (k, v) in &p {
            if let Some(m) = k.strip_prefix("metadata.") {
                meta.insert(m.to_string(), v.clone());
            } else if let Some(t) = k.strip_prefix("tag.") {
                tags.insert(t.to_string(), v.clone());
            }
        }
        if !meta.is_empty() {
            vm.insert("customer_metadata".into(), Value::Object(meta));
        }
        if !tags.is_empty() {
            vm.insert("tags".into(), Value::Object(tags));
        }

        // server choice: CNAPI's allocator, then our own brand check
        let vm_v = Value::Object(vm.clone());
        let server = match self.backends.allocate(&vm_v, &image, &pkg) {
            Ok(s) => s,
            Err(e) if e.status() == Some(409) => {
                let why = e
                    .body()
                    .and_then(|b| b["message"].as_str())
                    .unwrap_or("")
                    .to_string();
                return Err(Refused::new(
                    "placement",
                    CloudApiError::new(
                        409,
                        "InsufficientCapacity",
                        format!("Insufficient capacity in datacenter to provision machine: {why}"),
                    ),
                    why,
                ));
            }
            Err(e) => return Err(backend("placement", e)),
        };
        let server_uuid = str_of(&server, "uuid");
        if !is_uuid(&server_uuid) {
            return Err(Refused::new(
                "placement",
                CloudApiError::internal("Internal error"),
                format!("CNAPI allocate answered no server: {server}"),
            ));
        }
        if brand == BUILDER {
            self.check_server_brand(&server_uuid, brand)?;
        }
        trail.server_uuid = Some(server_uuid.clone());
        vm.insert("server_uuid".into(), json!(server_uuid));

        // VMAPI create
        let created = match self.backends.create_vm(&Value::Object(vm)) {
            Ok(v) => v,
            Err(e) if e.status() == Some(409) => {
                let b = e.body().cloned().unwrap_or(Value::Null);
                let errs: Vec<String> = b["errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| format!("{}: {}", str_of(x, "field"), str_of(x, "message")))
                            .collect()
                    })
                    .unwrap_or_default();
                let msg = format!("{} ({})", str_of(&b, "message"), errs.join("; "));
                return Err(Refused::new(
                    "vmapi",
                    CloudApiError::invalid_argument(msg.clone()),
                    msg,
                ));
            }
            Err(e) => return Err(backend("vmapi", e)),
        };
        trail.vm_uuid = Some(vm_uuid.clone());
        if let Some(job) = created.get("job_uuid").and_then(Value::as_str) {
            let j = self
                .backends
                .wait_job(job)
                .map_err(|e| backend("vmapi", e))?;
            if j["execution"] != "succeeded" {
                return Err(Refused::new(
                    "vmapi",
                    CloudApiError::internal(format!("provisioning job {job} failed")),
                    format!("job {job}: {}", j["chain_results"]),
                ));
            }
        }
        let vmobj = self
            .backends
            .vm(&vm_uuid)
            .map_err(|e| backend("vmapi", e))?;
        let mut m = policy::cloudapi_machine(&vmobj);
        m["package"] = pkg["name"].clone();
        Ok((201, m))
    }

    /// The server CNAPI chose must report the brand in sysinfo `Brands`
    /// (RFD 184 option (c)); without a report, only when configured to trust it.
    fn check_server_brand(&self, server_uuid: &str, brand: &str) -> Result<(), Refused> {
        let s = self
            .backends
            .server(server_uuid)
            .map_err(|e| backend("placement", e))?;
        let plat = str_of(&s, "current_platform");
        let refuse = |why: String| {
            Refused::new(
                "placement",
                CloudApiError::new(
                    409,
                    "InsufficientCapacity",
                    format!(
                        "Insufficient capacity in datacenter to provision machine: no compute node with brand \"{brand}\""
                    ),
                ),
                why,
            )
        };
        match s["sysinfo"]["Brands"].as_array() {
            Some(list) if list.iter().any(|b| b == brand) => Ok(()),
            Some(_) => Err(refuse(format!(
                "server {server_uuid} (platform {plat}) does not provide brand {brand}"
            ))),
            None if self.cfg.require_brand_report => Err(refuse(format!(
                "server {server_uuid} (platform {plat}) does not report its brands"
            ))),
            None => Ok(()),
        }
    }

    /// For the audit only (the client's answer does not change): when PAPI
    /// or IMGAPI said 404 for this account, is the object a builder one that
    /// exists for someone else?
    fn why_invisible(&self, kind: &str, id: &str, who: &Principal, base: &str) -> String {
        let any = match kind {
            "package" => self.backends.package_any(id),
            _ => self.backends.image_any(id),
        };
        let builder = any.ok().is_some_and(|v| match kind {
            "package" => policy::package_brand(&v).is_some_and(looks_like_builder),
            _ => policy::image_brand(&v).is_some_and(looks_like_builder),
        });
        if builder {
            format!(
                "builder {kind} {id} not visible to account {}; {}",
                who.account_login,
                who.builder_refusal()
                    .unwrap_or_else(|| "owner_uuids/acl exclude the account".into())
            )
        } else {
            base.to_string()
        }
    }

    /// A package by UUID or name, hidden when builder and not allowed.
    fn find_package(&self, who: &Principal, r: &str, for_create: bool) -> Result<Value, Refused> {
        if is_uuid(r) {
            let pkg = self.backends.package(r, &who.account_uuid).map_err(|e| {
                let mut x = backend("package", e);
                if x.error.status == 404 {
                    x.reason = self.why_invisible("package", r, who, &x.reason);
                }
                x
            })?;
            if !policy::package_visible(who, &pkg) {
                let msg = format!("Package {r} does not exist");
                let mut x = Refused::new(
                    "package",
                    CloudApiError::not_found(msg.clone()),
                    format!(
                        "builder package {r} hidden: {}",
                        who.builder_refusal().unwrap_or_default()
                    ),
                );
                x.body = Some(json!({"code": "ResourceNotFound", "message": msg}));
                return Err(x);
            }
            return Ok(pkg);
        }
        let all = self
            .backends
            .packages(&format!(
                "name={}&active=true&owner_uuids={}",
                enc(r),
                enc(&who.account_uuid)
            ))
            .map_err(|e| backend("package", e))?;
        let hidden = all
            .iter()
            .filter(|p| !policy::package_visible(who, p))
            .count();
        let best = all
            .into_iter()
            .filter(|p| policy::package_visible(who, p))
            .max_by_key(|p| version_key(&str_of(p, "version")));
        best.ok_or_else(|| {
            let e = if for_create {
                CloudApiError::invalid_argument(format!("{r} is not a valid package"))
            } else {
                CloudApiError::not_found(format!("Package {r} does not exist"))
            };
            let reason = if hidden > 0 {
                format!(
                    "builder package {r} hidden: {}",
                    who.builder_refusal().unwrap_or_default()
                )
            } else {
                e.message.clone()
            };
            Refused::new("package", e, reason)
        })
    }

    // ---- packages

    fn list_packages(
        &self,
        req: &Request,
        who: &Principal,
        req_id: &str,
        summary: &Value,
    ) -> Response {
        let mut q = vec![
            "active=true".to_string(),
            format!("owner_uuids={}", enc(&who.account_uuid)),
        ];
        for (k, v) in req.query_pairs() {
            let papi = match k.as_str() {
                "name" | "version" | "vcpus" | "group" | "brand" | "flexible_disk" => k.clone(),
                "memory" => "max_physical_memory".into(),
                "disk" => "quota".into(),
                "swap" => "max_swap".into(),
                "lwps" => "max_lwps".into(),
                _ => continue,
            };
            q.push(format!("{papi}={}", enc(&v)));
        }
        let all = match self.backends.packages(&q.join("&")) {
            Ok(a) => a,
            Err(e) => return backend("package", e).response(),
        };
        let (shown, hidden): (Vec<Value>, Vec<Value>) = all
            .into_iter()
            .partition(|p| policy::package_visible(who, p));
        let builders: Vec<String> = shown
            .iter()
            .filter(|p| policy::package_brand(p).is_some_and(looks_like_builder))
            .map(|p| str_of(p, "uuid"))
            .collect();
        if !hidden.is_empty() {
            let ids: Vec<String> = hidden.iter().map(|p| str_of(p, "uuid")).collect();
            let r = Refused::new(
                "package",
                CloudApiError::not_found("hidden from listing"),
                format!(
                    "hid {} builder package(s) [{}]: {}",
                    ids.len(),
                    ids.join(", "),
                    who.builder_refusal().unwrap_or_default()
                ),
            );
            self.record(
                req_id,
                "ListPackages",
                who,
                summary,
                &Trail::default(),
                Err(&r),
            );
        } else if !builders.is_empty() {
            self.record(
                req_id,
                "ListPackages",
                who,
                summary,
                &Trail::default(),
                Ok(&format!(
                    "showed builder package(s) [{}] to an operator",
                    builders.join(", ")
                )),
            );
        }
        Response::json(
            200,
            Value::Array(shown.iter().map(policy::cloudapi_package).collect()),
        )
    }

    fn get_package(&self, who: &Principal, id: &str, req_id: &str, summary: &Value) -> Response {
        match self.find_package(who, id, false) {
            Ok(p) => {
                if policy::package_brand(&p).is_some_and(looks_like_builder) {
                    self.record(
                        req_id,
                        "GetPackage",
                        who,
                        summary,
                        &Trail::default(),
                        Ok("builder package shown to an operator"),
                    );
                }
                Response::json(200, policy::cloudapi_package(&p))
            }
            Err(r) => {
                self.record(
                    req_id,
                    "GetPackage",
                    who,
                    summary,
                    &Trail::default(),
                    Err(&r),
                );
                r.response()
            }
        }
    }

    // ---- images

    fn list_images(&self, who: &Principal, req_id: &str, summary: &Value) -> Response {
        let all = match self.backends.images(&who.account_uuid) {
            Ok(a) => a,
            Err(e) => return backend("image", e).response(),
        };
        let (shown, hidden): (Vec<Value>, Vec<Value>) =
            all.into_iter().partition(|i| policy::image_visible(who, i));
        if !hidden.is_empty() {
            let ids: Vec<String> = hidden.iter().map(|i| str_of(i, "uuid")).collect();
            let r = Refused::new(
                "image",
                CloudApiError::not_found("hidden from listing"),
                format!(
                    "hid {} builder image(s) [{}]: {}",
                    ids.len(),
                    ids.join(", "),
                    who.builder_refusal().unwrap_or_default()
                ),
            );
            self.record(
                req_id,
                "ListImages",
                who,
                summary,
                &Trail::default(),
                Err(&r),
            );
        }
        Response::json(
            200,
            Value::Array(shown.iter().map(policy::cloudapi_image).collect()),
        )
    }

    fn get_image(&self, who: &Principal, id: &str, req_id: &str, summary: &Value) -> Response {
        let img = match self.backends.image(id, &who.account_uuid) {
            Ok(i) => i,
            Err(e) => {
                let mut r = backend("image", e);
                if r.error.status == 404 {
                    r.reason = self.why_invisible("image", id, who, &r.reason);
                    self.record(req_id, "GetImage", who, summary, &Trail::default(), Err(&r));
                }
                return r.response();
            }
        };
        if !policy::image_visible(who, &img) {
            let msg = format!("image {id} not found");
            let mut r = Refused::new(
                "image",
                CloudApiError::not_found(msg.clone()),
                format!(
                    "builder image {id} hidden: {}",
                    who.builder_refusal().unwrap_or_default()
                ),
            );
            r.body = Some(json!({"code": "ResourceNotFound", "message": msg}));
            self.record(req_id, "GetImage", who, summary, &Trail::default(), Err(&r));
            return r.response();
        }
        Response::json(200, policy::cloudapi_image(&img))
    }

    // ---- machines

    fn list_machines(&self, req: &Request, who: &Principal) -> Result<(u16, Value), Refused> {
        let mut q = Vec::new();
        for (k, v) in req.query_pairs() {
            let key = match k.as_str() {
                "brand" | "state" | "limit" | "offset" => k.clone(),
                "name" => "alias".into(),
                _ => continue,
            };
            q.push(format!("{key}={}", enc(&v)));
        }
        let vms = self
            .backends
            .vms(&who.account_uuid, &q.join("&"))
            .map_err(|e| backend("vmapi", e))?;
        Ok((
            200,
            Value::Array(
                vms.iter()
                    .filter(|v| {
                        v["state"] != "destroyed" && v["owner_uuid"] == who.account_uuid.as_str()
                    })
                    .map(policy::cloudapi_machine)
                    .collect(),
            ),
        ))
    }

    fn get_machine(&self, who: &Principal, id: &str) -> Result<(u16, Value), Refused> {
        let nf = || Refused::plain("machine", CloudApiError::not_found("VM not found"));
        if !is_uuid(id) {
            return Err(nf());
        }
        let vm = match self.backends.vm(id) {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Err(nf()),
            Err(e) => return Err(backend("vmapi", e)),
        };
        if vm["owner_uuid"] != who.account_uuid.as_str() || vm["state"] == "destroyed" {
            return Err(nf());
        }
        Ok((200, policy::cloudapi_machine(&vm)))
    }
}

/// CreateMachine's parameters: the JSON (or form) body merged over the query.
fn params(req: &Request) -> Result<Map<String, Value>, CloudApiError> {
    let mut m = Map::new();
    for (k, v) in req.query_pairs() {
        m.insert(k, Value::String(v));
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(m);
    }
    let ct = req.header("content-type").unwrap_or("application/json");
    if ct.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_urlencoded::parse(&req.body).into_owned() {
            m.insert(k, Value::String(v));
        }
        return Ok(m);
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => {
            for (k, v) in o {
                // restify flattens nested metadata/tag objects the same way
                match (k.as_str(), v) {
                    ("metadata" | "tag" | "tags", Value::Object(inner)) => {
                        let prefix = if k == "metadata" { "metadata" } else { "tag" };
                        for (ik, iv) in inner {
                            m.insert(format!("{prefix}.{ik}"), iv);
                        }
                    }
                    (_, v) => {
                        m.insert(k, v);
                    }
                }
            }
            Ok(m)
        }
        _ => Err(CloudApiError::new(
            400,
            "InvalidContent",
            "Invalid JSON in request body",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        let t = std::env::temp_dir().join(format!("tg-unit-{}", uuid::Uuid::new_v4()));
        // backends point nowhere: these tests stop before any call
        Gate::new(GateConfig::new(
            Urls {
                mahi: "http://127.0.0.1:9".into(),
                ..Default::default()
            },
            t.join("audit.log"),
        ))
    }

    fn req(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn unauthenticated_requests_are_refused_and_creates_audited() {
        let g = gate();
        let r = g.handle(&req("GET", "/cust/packages"));
        assert_eq!(r.status, 401);
        assert_eq!(
            r.body,
            json!({"code": "InvalidCredentials", "message": "You must make authenticated requests to use CloudAPI"})
        );
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "api-version" && v == API_VERSION));
        assert!(g.audit.read().unwrap().is_empty());
        let r = g.handle(&req("POST", "/cust/machines"));
        assert_eq!(r.status, 401);
        let recs = g.audit.read().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].decision, Decision::Deny);
        assert_eq!(recs[0].account_login, "cust");
        assert!(recs[0].reason.starts_with("auth: "), "{}", recs[0].reason);
        let mut r2 = req("GET", "/cust/packages");
        r2.headers.push((
            "authorization".into(),
            "Signature keyId=\"nope\",algorithm=\"ed25519\",signature=\"AA==\"".into(),
        ));
        r2.headers
            .push(("date".into(), httpdate::fmt_http_date(SystemTime::now())));
        let r = g.handle(&r2);
        assert_eq!(
            r.body["message"],
            "Invalid KeyId nope in authorization header"
        );
        std::fs::remove_dir_all(g.audit.path().parent().unwrap()).ok();
    }

    #[test]
    fn the_signed_date_is_the_one_checked() {
        let g = gate();
        let now = SystemTime::now();
        let old = httpdate::fmt_http_date(now - std::time::Duration::from_secs(3600));
        let fresh = httpdate::fmt_http_date(now);
        let auth = |headers: &str| {
            format!("Signature keyId=\"/ops/keys/aa\",algorithm=\"ed25519-sha512\",headers=\"{headers}\",signature=\"AA==\"")
        };
        // nothing dated is signed
        let mut r = req("GET", "/ops/packages");
        r.headers
            .push(("authorization".into(), auth("(request-target)")));
        r.headers.push(("date".into(), fresh.clone()));
        assert_eq!(
            g.handle(&r).body["message"],
            "the date header must be signed"
        );
        // a stale signed x-date with a fresh unsigned Date
        let mut r = req("GET", "/ops/packages");
        r.headers
            .push(("authorization".into(), auth("(request-target) x-date")));
        r.headers.push(("date".into(), fresh));
        r.headers.push(("x-date".into(), old));
        let m = g.handle(&r).body["message"].as_str().unwrap().to_string();
        assert!(m.starts_with("clock skew of"), "{m}");
        std::fs::remove_dir_all(g.audit.path().parent().unwrap()).ok();
    }

    #[test]
    fn routes() {
        let g = gate();
        assert_eq!(g.handle(&req("GET", "/--ping")).status, 200);
        assert_eq!(g.handle(&req("DELETE", "/x/machines/abc")).status, 405);
        let r = g.handle(&req("GET", "/x/networks"));
        assert_eq!(r.status, 501);
        assert_eq!(r.body["code"], "NotImplemented");
        assert_eq!(g.handle(&req("GET", "/")).status, 404);
    }

    #[test]
    fn params_merge_and_flatten() {
        let mut r = req("POST", "/x/machines");
        r.query = "name=q1".into();
        r.body = br#"{"image":"i","metadata":{"a":"1"},"tag.role":"b"}"#.to_vec();
        let p = params(&r).unwrap();
        assert_eq!(p["name"], "q1");
        assert_eq!(p["metadata.a"], "1");
        assert_eq!(p["tag.role"], "b");
        r.body = b"not json".to_vec();
        assert_eq!(params(&r).unwrap_err().status, 400);
        r.body = b"image=i&package=p".to_vec();
        r.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        assert_eq!(params(&r).unwrap()["package"], "p");
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = ["1.10.0", "1.9.0", "1.2.3"];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(v, ["1.2.3", "1.9.0", "1.10.0"]);
    }
}
