//! The gate: CloudAPI's answers for the calls that matter to the builder
//! brand, with the decision pipeline
//!
//! ```text
//! signature -> caller + account (mahi) -> authorize -> image, package
//!   (hidden when builder and not allowed) -> brand (getBrand + builder rule)
//!   -> placement (CNAPI allocate, then the builder rules on the chosen
//!   server) -> VMAPI create -> audit record
//! ```
//!
//! Every operation here is async and talks to Triton through
//! [`triton_api`]'s clients; [`crate::server`] routes HTTP requests to them
//! and writes the audit records their [`Reply`]s carry.

// `Refused` is built only on refusal paths; boxing it would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use axum::http::HeaderMap;
use serde_json::{json, Map, Value};
use triton_api::httpsig::{self, SigError};
use triton_api::{
    Account, AllocateRequest, ApiError, ClientConfig, CloudAccount, CloudImage, CloudPackage,
    CreateVm, Endpoints, Image, ImageFilter, LenientExt as _, Machine, NetworkSpec, Package,
    PackageFilter, Server, Triton, TritonError, Vm, VmFilter,
};

use crate::audit::{AuditLimits, AuditLog, Decision};
use crate::brand::{looks_like_builder, valid_hvm_brands, BrandSource, Defaults, BUILDER};
use crate::cache::{self, Listing, ReadCache, TtlCache, View};
use crate::error::CloudApiError;
use crate::placement::{self, Rules};
use crate::policy::{self, CreateFacts, Denial, Principal};

use common::uuid::is_uuid;

/// The CloudAPI version this gate answers as.
pub const API_VERSION: &str = "9.20.0";

/// The privileges a builder zone gets (bhyve needs the last two; the
/// builder brand's default set is joyent's).
pub const DEFAULT_BUILDER_LIMIT_PRIV: &str = "default,proc_clock_highres,sys_dl_config";

/// How builder machines are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderVm {
    /// `limit_priv` of every builder zone.
    pub limit_priv: String,
    /// Networks for builder machines whose request and package name none.
    pub networks: Vec<String>,
}

impl Default for BuilderVm {
    fn default() -> BuilderVm {
        BuilderVm {
            limit_priv: DEFAULT_BUILDER_LIMIT_PRIV.into(),
            networks: Vec::new(),
        }
    }
}

/// How to run the gate.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// mahi, PAPI, IMGAPI, CNAPI, VMAPI.
    pub endpoints: Endpoints,
    /// The audit log file (JSON lines, append-only).
    pub audit_path: PathBuf,
    pub audit_limits: AuditLimits,
    /// `default_hvm_brand` / `default_container_brand`.
    pub defaults: Defaults,
    pub builder: BuilderVm,
    /// A platform floor for builder zones (`{"7.0": "<stamp>"}`), on top of
    /// the builder package's and image's own `min_platform`.
    pub builder_min_platform: Option<BTreeMap<String, String>>,
    /// Front mode: the CloudAPI every request the gate does not decide is
    /// forwarded to. `None`: subset mode (the gate serves its own subset).
    pub cloudapi: Option<String>,
    /// Largest request body the gate reads (413 beyond).
    pub max_body_bytes: usize,
    /// Timeouts of the calls to Triton.
    pub client: ClientConfig,
    /// How long a provision job may take.
    pub job_timeout: Duration,
    /// How long PAPI's and IMGAPI's answers to the gate's reads are kept
    /// ([`crate::cache`]); zero keeps nothing.
    pub cache_ttl: Duration,
}

impl GateConfig {
    pub fn new(endpoints: Endpoints, audit_path: PathBuf) -> GateConfig {
        let client = ClientConfig {
            job_poll_interval: Duration::from_millis(100),
            user_agent: format!("triton-gate/{}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        GateConfig {
            endpoints,
            audit_path,
            audit_limits: AuditLimits::default(),
            defaults: Defaults::default(),
            builder: BuilderVm::default(),
            builder_min_platform: None,
            cloudapi: None,
            max_body_bytes: 1024 * 1024,
            client,
            job_timeout: Duration::from_secs(600),
            cache_ttl: cache::DEFAULT_TTL,
        }
    }
}

/// The gate could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("--cloudapi {url}: {message}")]
    Upstream { url: String, message: String },
}

/// An error the client sees, with the reason the audit log keeps.
#[derive(Debug, Clone)]
pub struct Refused {
    pub error: CloudApiError,
    /// The body to send, when it is not `{code, message}` of `error`
    /// (a backend's body passed through).
    pub body: Option<Value>,
    pub reason: String,
    pub stage: &'static str,
}

impl Refused {
    pub fn new(stage: &'static str, error: CloudApiError, reason: impl Into<String>) -> Refused {
        Refused {
            error,
            body: None,
            reason: reason.into(),
            stage,
        }
    }

    pub fn plain(stage: &'static str, error: CloudApiError) -> Refused {
        let reason = error.message.clone();
        Refused::new(stage, error, reason)
    }

    /// The JSON body the client gets.
    pub fn body(&self) -> Value {
        self.body.clone().unwrap_or_else(|| self.error.body())
    }

    /// With a body that is not `{code, message}`.
    pub fn with_body(mut self, body: Value) -> Refused {
        self.body = Some(body);
        self
    }
}

impl From<Denial> for Refused {
    fn from(d: Denial) -> Refused {
        Refused::new("brand", d.error, d.reason)
    }
}

/// A backend failure: 404s pass through unchanged (CloudAPI does that for
/// PAPI and IMGAPI), anything else is an InternalError.
pub fn backend(stage: &'static str, e: ApiError) -> Refused {
    if e.status() == Some(404) {
        let msg = e.message().unwrap_or("not found").to_string();
        let r = Refused::plain(stage, CloudApiError::not_found(msg));
        return match e.triton().filter(|t| !t.code.is_empty()) {
            Some(t) => r.with_body(serde_json::to_value(t).unwrap_or(Value::Null)),
            None => r,
        };
    }
    Refused::new(
        stage,
        CloudApiError::internal("Internal error"),
        e.to_string(),
    )
}

/// What a request contributes to its audit record besides the decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trail {
    pub brand: Option<String>,
    pub brand_source: Option<BrandSource>,
    pub server_uuid: Option<String>,
    pub vm_uuid: Option<String>,
    /// Request fields worth keeping (image, package, name, brand, ...).
    pub request: Map<String, Value>,
}

/// The audit side of an answer: attached to the response for the server's
/// audit layer, which writes it (with who, what and the status).
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub decision: Decision,
    pub reason: String,
    /// The error the client got.
    pub error: Option<Value>,
    pub trail: Trail,
}

/// An answer: status, JSON body (`Null`: none), extra headers, and the
/// audit note when the decision is worth a record.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// A JSON body already serialized, sent instead of `body`.
    pub raw: Option<axum::body::Bytes>,
    pub headers: Vec<(&'static str, String)>,
    pub note: Option<Note>,
    /// Front mode: decided and allowed, to be passed on to CloudAPI.
    pub forward: bool,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            raw: None,
            headers: Vec::new(),
            note: None,
            forward: false,
        }
    }

    /// Allowed, and to be passed on to CloudAPI (front mode).
    pub fn forward() -> Reply {
        let mut r = Reply::json(0, Value::Null);
        r.forward = true;
        r
    }

    /// A list, with CloudAPI's `x-resource-count` (node-triton pages until
    /// a page is shorter than its limit).
    pub fn list(items: Vec<Value>) -> Reply {
        let n = items.len();
        Reply::json(200, Value::Array(items)).header("x-resource-count", n.to_string())
    }

    /// A list already rendered ([`View`]), with `x-resource-count`.
    pub fn view(v: &View) -> Reply {
        let mut r = Reply::json(200, Value::Null).header("x-resource-count", v.count.to_string());
        r.raw = Some(v.body.clone());
        r
    }

    pub fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// An allowed decision worth a record (builder shown or created).
    pub fn allowed(mut self, reason: impl Into<String>, trail: Trail) -> Reply {
        self.note = Some(Note {
            decision: Decision::Allow,
            reason: reason.into(),
            error: None,
            trail,
        });
        self
    }

    /// A refusal, recorded with its stage and real reason.
    pub fn refused(r: Refused, trail: Trail) -> Reply {
        let body = r.body();
        tracing::warn!(
            stage = r.stage,
            reason = r.reason.as_str(),
            "request refused"
        );
        Reply {
            status: r.error.status,
            body: body.clone(),
            raw: None,
            headers: Vec::new(),
            note: Some(Note {
                decision: Decision::Deny,
                reason: format!("{}: {}", r.stage, r.reason),
                error: Some(body),
                trail,
            }),
            forward: false,
        }
    }

    /// A successful answer that still records a refusal (a listing that
    /// hid builder objects).
    pub fn with_denial(mut self, reason: String, trail: Trail) -> Reply {
        self.note = Some(Note {
            decision: Decision::Deny,
            reason,
            error: Some(json!({"code": "ResourceNotFound", "message": "hidden from listing"})),
            trail,
        });
        self
    }
}

impl From<Refused> for Reply {
    fn from(r: Refused) -> Reply {
        Reply::refused(r, Trail::default())
    }
}

/// Why authentication or authorization failed, and what was learnt.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    pub principal: Principal,
    /// The signature was verified before the failure.
    pub authenticated: bool,
    pub refused: Refused,
}

/// The gate.
#[derive(Debug)]
pub struct Gate {
    pub cfg: GateConfig,
    pub triton: Triton,
    pub audit: AuditLog,
    /// One lock per owner around check-then-create of named machines.
    owner_locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Front mode: where undecided requests go.
    pub upstream: Option<crate::front::Upstream>,
    /// PAPI's and IMGAPI's answers to reads, for a few seconds.
    pub cache: ReadCache,
}

/// What CreateMachine came to.
enum Created {
    /// Made by the gate.
    Machine(Box<Machine>, String),
    /// Allowed and not builder: CloudAPI makes it (front mode).
    Forward,
}

/// A VM as CloudAPI shows it (DHCP placeholders are not addresses).
pub fn machine(vm: &Vm) -> Machine {
    let mut m = Machine::from(vm);
    m.ips = Some(vm.ips());
    m
}

/// A string parameter (numbers and booleans as their JSON text).
pub fn pstr(p: &Map<String, Value>, k: &str) -> Option<String> {
    match p.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(v) => Some(v.to_string()),
    }
}

/// Compare `a.b.c` versions numerically where possible.
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split('.')
        .map(|p| (p.parse().unwrap_or(0), p.to_string()))
        .collect()
}

/// The error VMAPI answers for a second machine of the same name, as
/// CloudAPI passes it on (PUBAPI-791 adds "Invalid machine name").
pub fn duplicate_alias() -> Refused {
    let body = json!({
        "code": "ValidationFailed",
        "message": "Invalid VM parameters: Invalid machine name",
        "errors": [{"field": "alias", "code": "Duplicate", "message": "Already exists for this owner_uuid"}],
    });
    Refused::plain(
        "vmapi",
        CloudApiError::new(
            409,
            "ValidationFailed",
            "Invalid VM parameters: Invalid machine name",
        ),
    )
    .with_body(body)
}

/// CloudAPI's translation of a VMAPI validation failure (`lib/machines.js`,
/// PUBAPI-791), quirks included: the suffix is appended once per error
/// after the first one that matches.
pub fn vmapi_validation(t: &TritonError) -> String {
    let mut message = t.message.clone();
    if t.code == "ValidationFailed" && !t.errors.is_empty() {
        let mut msgs: Vec<String> = Vec::new();
        for e in &t.errors {
            if e.field == "alias" {
                msgs.push("Invalid machine name".into());
            } else if (e.field == "ram" || e.field == "quota") && e.code == "InsufficientCapacity" {
                msgs.push("Insufficient capacity in datacenter to provision machine".into());
            } else if ["networks", "tags", "customer_metadata", "firewall_enabled"]
                .contains(&e.field.as_str())
            {
                msgs.push(format!("Invalid {}", e.field));
            }
            if !msgs.is_empty() {
                message = format!("{message}: {}", msgs.join(". "));
            }
        }
    }
    message
}

fn vmapi_refusal(e: ApiError) -> Refused {
    match (e.status(), e.triton()) {
        (Some(409), Some(t)) => {
            let message = vmapi_validation(t);
            let mut body = serde_json::to_value(t).unwrap_or(Value::Null);
            body["message"] = json!(message);
            Refused::new(
                "vmapi",
                CloudApiError::new(409, &t.code, message.clone()),
                e.to_string(),
            )
            .with_body(body)
        }
        _ => backend("vmapi", e),
    }
}

/// A listing as a caller sees it: the visible objects in CloudAPI's form
/// (a JSON array), and which builder objects were shown or left out.
fn render<'a, T: 'a, C: serde::Serialize>(
    items: &'a [T],
    visible: impl Fn(&T) -> bool,
    builder: impl Fn(&T) -> bool,
    uuid: impl Fn(&T) -> String,
    cloud: impl Fn(&'a T) -> C,
) -> View {
    let mut shown = Vec::new();
    let mut shown_builder = Vec::new();
    let mut hidden = Vec::new();
    for it in items {
        if !visible(it) {
            hidden.push(uuid(it));
            continue;
        }
        if builder(it) {
            shown_builder.push(uuid(it));
        }
        shown.push(cloud(it));
    }
    View {
        body: serde_json::to_vec(&shown).unwrap_or_default().into(),
        count: shown.len(),
        shown_builder,
        hidden,
    }
}

fn insufficient(reason: &str) -> CloudApiError {
    CloudApiError::new(
        409,
        "InsufficientCapacity",
        format!("Insufficient capacity in datacenter to provision machine: {reason}"),
    )
}

impl Gate {
    pub fn new(cfg: GateConfig) -> Result<Gate, GateError> {
        let triton = Triton::new(&cfg.endpoints, cfg.client.clone())?;
        let upstream = match &cfg.cloudapi {
            Some(url) => Some(crate::front::Upstream::new(url, &triton.http)?),
            None => None,
        };
        Ok(Gate {
            audit: AuditLog::with_limits(&cfg.audit_path, cfg.audit_limits.clone()),
            cache: ReadCache::new(cfg.cache_ttl),
            triton,
            owner_locks: Mutex::new(HashMap::new()),
            upstream,
            cfg,
        })
    }

    /// Front mode (requests the gate does not decide go to CloudAPI).
    pub fn front(&self) -> bool {
        self.upstream.is_some()
    }

    /// `fetch`, or what is kept for `key` in `store` (`None`: always
    /// fetch). Errors are never kept.
    async fn read_through<V: Clone>(
        &self,
        store: &TtlCache<V>,
        key: Option<String>,
        fetch: impl std::future::Future<Output = Result<V, ApiError>>,
    ) -> Result<V, ApiError> {
        let Some(key) = key.filter(|_| self.cache.enabled()) else {
            return fetch.await;
        };
        if let Some(v) = store.get_at(&key, Instant::now()) {
            return Ok(v);
        }
        let ticket = self.cache.ticket();
        let v = fetch.await?;
        self.cache.keep(store, ticket, &key, v.clone());
        Ok(v)
    }

    /// PAPI `GET /packages` (kept for the cache TTL when `cached`).
    async fn package_list(
        &self,
        f: &PackageFilter,
        cached: bool,
    ) -> Result<Arc<Listing<Package>>, ApiError> {
        let key = cached.then(|| cache::key("papi:packages", f.to_query().pairs()));
        self.read_through(&self.cache.package_lists, key, async {
            Ok(Arc::new(Listing::new(
                self.triton.papi.list(f).await?.into_vec(),
            )))
        })
        .await
    }

    /// PAPI `GET /packages/:uuid?owner_uuids=` (kept when `cached`).
    async fn package_for_owner(
        &self,
        uuid: &str,
        owner: &str,
        cached: bool,
    ) -> Result<Arc<Package>, ApiError> {
        let key = cached.then(|| {
            cache::key(
                "papi:package",
                &[("uuid".into(), uuid.into()), ("owner".into(), owner.into())],
            )
        });
        self.read_through(&self.cache.packages, key, async {
            Ok(Arc::new(self.triton.papi.get_for_owner(uuid, owner).await?))
        })
        .await
    }

    /// IMGAPI `GET /images` (kept when `cached`).
    async fn image_list(
        &self,
        f: &ImageFilter,
        cached: bool,
    ) -> Result<Arc<Listing<Image>>, ApiError> {
        let key = cached.then(|| {
            cache::key(
                "imgapi:images",
                f.to_query(self.triton.imgapi.channel()).pairs(),
            )
        });
        self.read_through(&self.cache.image_lists, key, async {
            Ok(Arc::new(Listing::new(self.triton.imgapi.list(f).await?)))
        })
        .await
    }

    /// IMGAPI `GET /images/:uuid?account=` (kept when `cached`).
    async fn image_for_account(
        &self,
        uuid: &str,
        account: &str,
        cached: bool,
    ) -> Result<Arc<Image>, ApiError> {
        let key = cached.then(|| {
            cache::key(
                "imgapi:image",
                &[
                    ("uuid".into(), uuid.into()),
                    ("account".into(), account.into()),
                    (
                        "channel".into(),
                        self.triton.imgapi.channel().unwrap_or_default().into(),
                    ),
                ],
            )
        });
        self.read_through(&self.cache.images, key, async {
            Ok(Arc::new(
                self.triton.imgapi.get_for_account(uuid, account).await?,
            ))
        })
        .await
    }

    fn owner_lock(&self, owner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.owner_locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = m.get(owner).and_then(Weak::upgrade) {
            return l;
        }
        m.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        m.insert(owner.to_string(), Arc::downgrade(&l));
        l
    }

    // ---- authentication

    /// Verify the HTTP Signature of a request (CloudAPI's signatureAuth),
    /// load the caller and the URL's account, and authorize.
    pub async fn authenticate(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        url_login: &str,
    ) -> Result<Principal, AuthFailure> {
        self.authenticate_account(method, path_and_query, headers, url_login)
            .await
            .map(|(who, _)| who)
    }

    /// [`Gate::authenticate`], with the URL's account as mahi answered it
    /// for this request (never cached: keys and operator membership are
    /// read fresh for every request).
    pub async fn authenticate_account(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        url_login: &str,
    ) -> Result<(Principal, Account), AuthFailure> {
        let mut who = Principal {
            account_login: url_login.to_string(),
            ..Default::default()
        };
        let fail = |who: &Principal, authenticated: bool, refused: Refused| AuthFailure {
            principal: who.clone(),
            authenticated,
            refused,
        };
        let cred = |e: SigError| {
            Refused::new(
                "auth",
                CloudApiError::invalid_credentials(e.to_string()),
                format!("{e:?}"),
            )
        };
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let auth =
            header("authorization").ok_or_else(|| fail(&who, false, cred(SigError::Missing)))?;
        let sig = httpsig::parse_authorization(&auth).map_err(|e| fail(&who, false, cred(e)))?;
        let kid = httpsig::parse_key_id(&sig.key_id).map_err(|e| fail(&who, false, cred(e)))?;
        // the clock check must use the date header that is signed
        let date_name = ["date", "x-date"]
            .into_iter()
            .find(|n| sig.headers.iter().any(|h| h == n))
            .ok_or_else(|| fail(&who, false, cred(SigError::DateNotSigned)))?;
        let date = header(date_name).ok_or_else(|| {
            fail(
                &who,
                false,
                cred(SigError::MissingSignedHeader(date_name.into())),
            )
        })?;
        httpsig::check_date(&date, SystemTime::now()).map_err(|e| fail(&who, false, cred(e)))?;
        let bad_key = || cred(SigError::BadKeyId(sig.key_id.clone()));
        let info = match &kid.user {
            None => self.triton.mahi.account_by_login(&kid.login).await,
            Some(u) => self.triton.mahi.user_by_login(&kid.login, u, false).await,
        };
        let info = match info {
            Ok(i) => i,
            Err(e) if e.status() == Some(404) => return Err(fail(&who, false, bad_key())),
            Err(e) => return Err(fail(&who, false, backend("auth", e))),
        };
        let key = match (&kid.user, &info.user) {
            (None, _) => info.account.key(&kid.fingerprint),
            (Some(_), Some(u)) => u.key(&kid.fingerprint),
            (Some(_), None) => None,
        }
        .map(str::to_string)
        .ok_or_else(|| fail(&who, false, bad_key()))?;
        let msg = httpsig::signing_string(&sig.headers, method, path_and_query, header)
            .map_err(|e| fail(&who, false, cred(e)))?;
        httpsig::verify(&key, &sig.algorithm, msg.as_bytes(), &sig.signature)
            .map_err(|e| fail(&who, false, cred(e)))?;
        let caller = info.account.clone();
        who = Principal::new(&caller, info.user.as_ref(), &caller);
        who.account_login = url_login.to_string();
        let target = if url_login == "my" || url_login == caller.login {
            caller
        } else {
            match self.triton.mahi.account_by_login(url_login).await {
                Ok(a) => a.account,
                Err(e) if e.status() == Some(404) => {
                    return Err(fail(
                        &who,
                        true,
                        Refused::plain(
                            "account",
                            CloudApiError::not_found(format!("{url_login} does not exist")),
                        ),
                    ))
                }
                Err(e) => return Err(fail(&who, true, backend("account", e))),
            }
        };
        who = Principal::new(&info.account, info.user.as_ref(), &target);
        who.authorize()
            .map_err(|e| fail(&who, true, Refused::plain("authorize", e)))?;
        Ok((who, target))
    }

    // ---- accounts

    /// GetAccount (`GET /:login`), from mahi's record of the account as
    /// read to authenticate this request.
    pub fn get_account(&self, a: &Account) -> Reply {
        let s = |k: &str| a.extra.get(k).and_then(Value::as_str).map(str::to_string);
        let acct = CloudAccount {
            id: a.uuid.clone(),
            login: a.login.clone(),
            email: a.email.clone(),
            company_name: s("company"),
            first_name: s("givenname"),
            last_name: s("sn"),
            created: s("created_at").or_else(|| s("created")),
            updated: s("updated_at").or_else(|| s("updated")),
            ..Default::default()
        };
        Reply::json(200, serde_json::to_value(acct).unwrap_or(Value::Null))
    }

    // ---- CreateMachine

    /// The image of a request, hidden when builder and not allowed.
    async fn image_for(
        &self,
        who: &Principal,
        image_id: &str,
        cached: bool,
    ) -> Result<Arc<Image>, Refused> {
        let image = match self
            .image_for_account(image_id, &who.account_uuid, cached)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                let mut x = backend("image", e);
                if x.error.status == 404 {
                    x.reason = self.why_invisible("image", image_id, who, &x.reason).await;
                }
                return Err(x);
            }
        };
        if !policy::image_visible(who, &image) {
            let msg = format!("image {image_id} not found");
            return Err(Refused::new(
                "image",
                CloudApiError::not_found(msg.clone()),
                format!(
                    "builder image {image_id} hidden: {}",
                    who.builder_refusal().unwrap_or_default()
                ),
            )
            .with_body(json!({"code": "ResourceNotFound", "message": msg})));
        }
        Ok(image)
    }

    /// CreateMachine. `p` is the request's parameters (body over query).
    pub async fn create_machine(&self, who: &Principal, p: &Map<String, Value>) -> Reply {
        let mut trail = Trail::default();
        for k in [
            "image",
            "dataset",
            "package",
            "name",
            "brand",
            "networks",
            "server_uuid",
            "locality",
            "affinity",
            "owner_uuid",
        ] {
            if let Some(v) = p.get(k) {
                trail.request.insert(k.into(), v.clone());
            }
        }
        match self.create(who, p, &mut trail).await {
            Ok(Created::Forward) => Reply::forward().allowed(
                format!(
                    "brand {} is not builder: passed on to CloudAPI",
                    trail.brand.as_deref().unwrap_or("?")
                ),
                trail,
            ),
            Ok(Created::Machine(m, reason)) => {
                let loc = format!("/{}/machines/{}", who.account_login, m.id);
                Reply::json(201, serde_json::to_value(&m).unwrap_or(Value::Null))
                    .header("location", loc)
                    .allowed(reason, trail)
            }
            Err(r) => Reply::refused(r, trail),
        }
    }

    async fn create(
        &self,
        who: &Principal,
        p: &Map<String, Value>,
        trail: &mut Trail,
    ) -> Result<Created, Refused> {
        // imageToDataset / ensureDataset
        if p.contains_key("image") && p.contains_key("dataset") {
            return Err(Refused::plain(
                "image",
                CloudApiError::invalid_argument("image and dataset are mutually exclusive"),
            ));
        }
        let image_id = pstr(p, "image")
            .or_else(|| pstr(p, "dataset"))
            .ok_or_else(|| {
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
        let image = self.image_for(who, &image_id, false).await?;
        if !image.is_active() {
            return Err(Refused::plain(
                "image",
                CloudApiError::invalid_argument(format!("image {image_id} is not active")),
            ));
        }
        // ensurePackage
        let pkg_ref = pstr(p, "package").ok_or_else(|| {
            Refused::plain(
                "package",
                CloudApiError::missing_parameter("package must be specified"),
            )
        })?;
        let pkg = self.find_package(who, &pkg_ref, true).await?;
        if !pkg.is_active() {
            return Err(Refused::new(
                "package",
                CloudApiError::invalid_argument(format!(
                    "{pkg_ref} is inactive. Must use an active package"
                )),
                if policy::is_builder_package(&pkg) {
                    format!("builder package {pkg_ref} is inactive")
                } else {
                    format!("{pkg_ref} is inactive")
                },
            ));
        }
        // getBrand + the builder rule
        let facts = CreateFacts::of(pstr(p, "brand"), &image, &pkg);
        let resolved = policy::resolve_brand(who, &facts, &self.cfg.defaults)?;
        trail.brand = Some(resolved.brand.clone());
        trail.brand_source = Some(resolved.source);
        let builder = resolved.brand == BUILDER;
        if !builder && self.front() {
            // CloudAPI makes everything but builder machines
            return Ok(Created::Forward);
        }

        // the VM as getCreateOptions builds it (server_uuid is never taken
        // from the request, as CloudAPI never forwards it)
        let vm_uuid = uuid::Uuid::new_v4().to_string();
        let mut vm = CreateVm {
            uuid: Some(vm_uuid.clone()),
            owner_uuid: Some(who.account_uuid.clone()),
            brand: Some(resolved.brand.clone()),
            billing_id: Some(pkg.uuid.clone()),
            image_uuid: Some(image_id.clone()),
            ram: pkg.max_physical_memory.clone(),
            cpu_cap: pkg.cpu_cap.clone(),
            max_lwps: pkg.max_lwps.clone(),
            max_swap: pkg.max_swap.clone(),
            zfs_io_priority: pkg.zfs_io_priority.clone(),
            alias: pstr(p, "name"),
            ..Default::default()
        };
        if !valid_hvm_brands().contains(&resolved.brand.as_str()) {
            if let Some(q) = pkg.quota.val() {
                vm.quota = Some(((q as f64 / 1024.0).round() as u64).into());
            }
        }
        if let Some(t) = &pkg.traits {
            vm.extra.insert("traits".into(), Value::Object(t.clone()));
        }
        if let Some(m) = &pkg.min_platform {
            vm.extra.insert(
                "min_platform".into(),
                serde_json::to_value(m).unwrap_or_default(),
            );
        }
        for k in ["locality", "affinity"] {
            if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
                vm.extra.insert(k.into(), v.clone());
            }
        }
        let mut networks = parse_networks(p.get("networks"))?;
        if networks.is_empty() {
            networks = pkg.networks.clone().unwrap_or_default();
        }
        if builder && networks.is_empty() {
            networks = self.cfg.builder.networks.clone();
        }
        if builder && networks.is_empty() {
            return Err(Refused::plain(
                "params",
                CloudApiError::invalid_argument(
                    "A builder machine needs a network: name one in \"networks\" (or give the builder package networks)",
                ),
            ));
        }
        let mut nets: Vec<NetworkSpec> = networks.iter().map(|n| NetworkSpec::ipv4(n)).collect();
        if builder {
            // build_all.sh needs the primary nic to allow ip spoofing
            if let Some(NetworkSpec::Object(o)) = nets.first_mut() {
                o.primary = Some(true.into());
                o.allow_ip_spoofing = Some(true.into());
            }
            vm.limit_priv = Some(self.cfg.builder.limit_priv.clone());
            vm.delegate_dataset = Some(true.into());
        }
        vm.networks = Some(nets);
        let mut meta = Map::new();
        let mut tags = Map::new();
        for (k, v) in p {
            if let Some(m) = k.strip_prefix("metadata.") {
                meta.insert(m.to_string(), v.clone());
            } else if let Some(t) = k.strip_prefix("tag.") {
                tags.insert(t.to_string(), v.clone());
            }
        }
        if !meta.is_empty() {
            vm.customer_metadata = Some(meta);
        }
        if !tags.is_empty() {
            vm.tags = Some(tags);
        }

        // placement rules for builder, before asking anyone
        let rules = builder
            .then(|| Rules::for_builder(&pkg, &image, self.cfg.builder_min_platform.as_ref()));
        if let Some(r) = &rules {
            if !r.configured() {
                let why = format!(
                    "No compute resources available: {}",
                    placement::NOT_CONFIGURED
                );
                return Err(Refused::new("placement", insufficient(&why), why));
            }
        }

        // a named machine: check-then-create under the owner's lock
        let owner_lock = vm
            .alias
            .as_ref()
            .map(|_| self.owner_lock(&who.account_uuid));
        let _held = match &owner_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        if let Some(alias) = &vm.alias {
            let existing = self
                .triton
                .vmapi
                .list(&VmFilter {
                    owner_uuid: Some(who.account_uuid.clone()),
                    alias: Some(alias.clone()),
                    state: Some("active".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| backend("vmapi", e))?;
            if !existing.is_empty() {
                let mut r = duplicate_alias();
                r.reason = format!(
                    "alias {alias} already used by {} of owner {}",
                    existing[0].uuid, who.account_login
                );
                return Err(r);
            }
        }

        // server choice: CNAPI's allocator, then our own builder rules
        let alloc = AllocateRequest {
            vm: vm.clone(),
            image: (*image).clone(),
            package: Some((*pkg).clone()),
            ..Default::default()
        };
        let server = match self.triton.cnapi.allocate(&alloc).await {
            Ok(a) => a.server,
            Err(e) if e.status() == Some(409) => {
                let why = e.message().unwrap_or_default().to_string();
                return Err(Refused::new("placement", insufficient(&why), why));
            }
            Err(e) => return Err(backend("placement", e)),
        };
        if !is_uuid(&server.uuid) {
            return Err(Refused::new(
                "placement",
                CloudApiError::internal("Internal error"),
                format!("CNAPI allocate answered no server: {:?}", server.uuid),
            ));
        }
        if let Some(r) = &rules {
            let s = self
                .triton
                .cnapi
                .get(&server.uuid)
                .await
                .map_err(|e| backend("placement", e))?;
            self.check_builder_server(r, &s)?;
        }
        trail.server_uuid = Some(server.uuid.clone());
        vm.server_uuid = Some(server.uuid.clone());

        // VMAPI create
        let job = self.triton.vmapi.create(&vm).await.map_err(vmapi_refusal)?;
        drop(_held);
        trail.vm_uuid = Some(vm_uuid.clone());
        if !job.job_uuid.is_empty() {
            let j = self
                .triton
                .vmapi
                .wait_job(&job.job_uuid, self.cfg.job_timeout)
                .await
                .map_err(|e| backend("vmapi", e))?;
            if !j.succeeded() {
                return Err(Refused::new(
                    "vmapi",
                    CloudApiError::internal(format!("provisioning job {} failed", job.job_uuid)),
                    format!(
                        "job {}: {}",
                        job.job_uuid,
                        j.failure().unwrap_or_else(|| "no step failed".into())
                    ),
                ));
            }
        }
        let vmobj = self
            .triton
            .vmapi
            .get(&vm_uuid)
            .await
            .map_err(|e| backend("vmapi", e))?;
        let mut m = machine(&vmobj);
        m.package = Some(pkg.name.clone());
        Ok(Created::Machine(Box::new(m), "provisioned".into()))
    }

    /// The builder rules on the server CNAPI chose (a misconfigured or
    /// upstream allocator is not trusted with builder zones).
    fn check_builder_server(&self, rules: &Rules, s: &Server) -> Result<(), Refused> {
        rules.check(s).map_err(|why| {
            let msg = format!("No compute resources available: {why}");
            Refused::new(
                "placement",
                insufficient(&msg),
                format!(
                    "server {} (platform {}) chosen by CNAPI fails the builder rules: {why}",
                    s.uuid,
                    s.platform().unwrap_or("?")
                ),
            )
        })
    }

    /// For the audit only (the client's answer does not change): when PAPI
    /// or IMGAPI said 404 for this account, is the object a builder one that
    /// exists for someone else?
    async fn why_invisible(&self, kind: &str, id: &str, who: &Principal, base: &str) -> String {
        let builder = match kind {
            "package" => self
                .triton
                .papi
                .get(id)
                .await
                .is_ok_and(|p| policy::is_builder_package(&p)),
            _ => self
                .triton
                .imgapi
                .get(id)
                .await
                .is_ok_and(|i| policy::is_builder_image(&i)),
        };
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
    /// `for_create`: for a decision that creates or changes something (its
    /// texts, and PAPI read fresh); otherwise GetPackage (cached reads).
    async fn find_package(
        &self,
        who: &Principal,
        r: &str,
        for_create: bool,
    ) -> Result<Arc<Package>, Refused> {
        if is_uuid(r) {
            let pkg = match self
                .package_for_owner(r, &who.account_uuid, !for_create)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    let mut x = backend("package", e);
                    if x.error.status == 404 {
                        x.reason = self.why_invisible("package", r, who, &x.reason).await;
                    }
                    return Err(x);
                }
            };
            if !policy::package_visible(who, &pkg) {
                let msg = format!("Package {r} does not exist");
                return Err(Refused::new(
                    "package",
                    CloudApiError::not_found(msg.clone()),
                    format!(
                        "builder package {r} hidden: {}",
                        who.builder_refusal().unwrap_or_default()
                    ),
                )
                .with_body(json!({"code": "ResourceNotFound", "message": msg})));
            }
            return Ok(pkg);
        }
        let all = self
            .package_list(
                &PackageFilter {
                    name: vec![r.to_string()],
                    active: Some(true),
                    owner_uuids: vec![who.account_uuid.clone()],
                    ..Default::default()
                },
                !for_create,
            )
            .await
            .map_err(|e| backend("package", e))?;
        let hidden = all
            .items
            .iter()
            .filter(|p| !policy::package_visible(who, p))
            .count();
        let best = all
            .items
            .iter()
            .filter(|p| policy::package_visible(who, p))
            .max_by_key(|p| version_key(&p.version))
            .map(|p| Arc::new(p.clone()));
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

    /// ListPackages: CloudAPI's filters, always active and visible to the
    /// account; builder packages hidden unless allowed.
    pub async fn list_packages(&self, who: &Principal, query: &[(String, String)]) -> Reply {
        let mut extra = Vec::new();
        for (k, v) in query {
            let papi = match k.as_str() {
                "name" | "version" | "vcpus" | "group" | "brand" | "flexible_disk" => k.as_str(),
                "memory" => "max_physical_memory",
                "disk" => "quota",
                "swap" => "max_swap",
                "lwps" => "max_lwps",
                _ => continue,
            };
            extra.push((papi.to_string(), v.clone()));
        }
        let f = PackageFilter {
            active: Some(true),
            owner_uuids: vec![who.account_uuid.clone()],
            extra,
            ..Default::default()
        };
        let all = match self.package_list(&f, true).await {
            Ok(a) => a,
            Err(e) => return backend("package", e).into(),
        };
        // visibility reads the caller only through builder_allowed(), so
        // one rendering serves every caller of the same kind
        let view = all.view(who.builder_allowed(), |items| {
            render(
                items,
                |p| policy::package_visible(who, p),
                policy::is_builder_package,
                |p| p.uuid.clone(),
                CloudPackage::from,
            )
        });
        let reply = Reply::view(&view);
        if !view.hidden.is_empty() {
            return reply.with_denial(
                format!(
                    "package: hid {} builder package(s) [{}]: {}",
                    view.hidden.len(),
                    view.hidden.join(", "),
                    who.builder_refusal().unwrap_or_default()
                ),
                Trail::default(),
            );
        }
        if !view.shown_builder.is_empty() {
            return reply.allowed(
                format!(
                    "showed builder package(s) [{}] to an operator",
                    view.shown_builder.join(", ")
                ),
                Trail::default(),
            );
        }
        reply
    }

    /// GetPackage by UUID (any state) or name (active, highest version).
    pub async fn get_package(&self, who: &Principal, id: &str) -> Reply {
        match self.find_package(who, id, false).await {
            Ok(p) => {
                let r = Reply::json(
                    200,
                    serde_json::to_value(CloudPackage::from(&*p)).unwrap_or_default(),
                );
                if policy::is_builder_package(&p) {
                    r.allowed("builder package shown to an operator", Trail::default())
                } else {
                    r
                }
            }
            Err(r) => r.into(),
        }
    }

    // ---- images

    /// ListImages: active images the account may see, builder ones hidden
    /// unless allowed.
    pub async fn list_images(&self, who: &Principal, query: &[(String, String)]) -> Reply {
        let mut f = ImageFilter {
            account: Some(who.account_uuid.clone()),
            state: Some("active".into()),
            ..Default::default()
        };
        for (k, v) in query {
            match k.as_str() {
                "name" => f.name = Some(v.clone()),
                "version" => f.version = Some(v.clone()),
                "os" => f.os = Some(v.clone()),
                "type" => f.kind = Some(v.clone()),
                "owner" => f.owner = Some(v.clone()),
                "state" if v != "active" => f.state = Some(v.clone()),
                "public" => f.public = Some(v == "true"),
                _ => {}
            }
        }
        let all = match self.image_list(&f, true).await {
            Ok(a) => a,
            Err(e) => return backend("image", e).into(),
        };
        let view = all.view(who.builder_allowed(), |items| {
            render(
                items,
                |i| policy::image_visible(who, i),
                policy::is_builder_image,
                |i| i.uuid.clone(),
                CloudImage::from,
            )
        });
        let reply = Reply::view(&view);
        if view.hidden.is_empty() {
            return reply;
        }
        reply.with_denial(
            format!(
                "image: hid {} builder image(s) [{}]: {}",
                view.hidden.len(),
                view.hidden.join(", "),
                who.builder_refusal().unwrap_or_default()
            ),
            Trail::default(),
        )
    }

    /// GetImage.
    pub async fn get_image(&self, who: &Principal, id: &str) -> Reply {
        match self.image_for(who, id, true).await {
            Ok(img) => Reply::json(
                200,
                serde_json::to_value(CloudImage::from(&*img)).unwrap_or_default(),
            ),
            Err(r) => r.into(),
        }
    }

    /// CreateImageFromMachine (`POST /:login/images` with `machine`): a
    /// builder zone is never imaged for anyone who may not use builder (the
    /// image would inherit the brand). `Ok`: not refused (subset mode does
    /// not create images; front mode passes the request on).
    pub async fn create_image(&self, who: &Principal, p: &Map<String, Value>) -> Result<(), Reply> {
        let mut trail = Trail::default();
        for k in ["machine", "name", "version"] {
            if let Some(v) = p.get(k) {
                trail.request.insert(k.into(), v.clone());
            }
        }
        // without a machine (ImportImageFromDatacenter, or a malformed
        // request) nothing is imaged: not the gate's decision
        let Some(id) = pstr(p, "machine") else {
            return Ok(());
        };
        let vm = match self.machine_of(who, &id).await {
            Ok(v) => v,
            Err(r) => return Err(Reply::refused(r, trail)),
        };
        if policy::is_builder_vm(&vm) {
            trail.brand = vm.brand.clone();
            trail.vm_uuid = Some(vm.uuid.clone());
            if let Some(why) = who.builder_refusal() {
                return Err(Reply::refused(
                    Refused::new(
                        "machine",
                        CloudApiError::not_found("VM not found"),
                        format!("builder machine {id} may not be imaged: {why}"),
                    ),
                    trail,
                ));
            }
        }
        Ok(())
    }

    // ---- machines

    /// A machine of the URL's account (404 `VM not found` otherwise, and
    /// for builder zones the principal may not see).
    async fn machine_of(&self, who: &Principal, id: &str) -> Result<Vm, Refused> {
        let nf = || Refused::plain("machine", CloudApiError::not_found("VM not found"));
        if !is_uuid(id) {
            return Err(nf());
        }
        let vm = match self.triton.vmapi.get(id).await {
            Ok(v) => v,
            Err(e) if e.status() == Some(404) => return Err(nf()),
            Err(e) => return Err(backend("vmapi", e)),
        };
        if vm.owner_uuid.as_deref() != Some(who.account_uuid.as_str()) || vm.is_destroyed() {
            return Err(nf());
        }
        if !policy::vm_visible(who, &vm) {
            let mut r = nf();
            r.reason = format!(
                "builder machine {id} hidden: {}",
                who.builder_refusal().unwrap_or_default()
            );
            return Err(r);
        }
        Ok(vm)
    }

    /// ListMachines (`brand`, `state`, `name`, `limit`, `offset`): the
    /// account's own machines only.
    pub async fn list_machines(&self, who: &Principal, query: &[(String, String)]) -> Reply {
        let mut f = VmFilter::owner(&who.account_uuid);
        for (k, v) in query {
            match k.as_str() {
                "brand" => f.brand = Some(v.clone()),
                "state" => f.state = Some(v.clone()),
                "name" => f.alias = Some(v.clone()),
                "limit" => f.limit = v.parse().ok(),
                "offset" => f.offset = v.parse().ok(),
                _ => {}
            }
        }
        let vms = match self.triton.vmapi.list(&f).await {
            Ok(v) => v.into_vec(),
            Err(e) => return backend("vmapi", e).into(),
        };
        let items = vms
            .iter()
            .filter(|v| {
                !v.is_destroyed()
                    && v.owner_uuid.as_deref() == Some(who.account_uuid.as_str())
                    && policy::vm_visible(who, v)
            })
            .map(|v| serde_json::to_value(machine(v)).unwrap_or_default())
            .collect();
        let r = Reply::list(items);
        match query.iter().find(|(k, _)| k == "brand") {
            Some((_, b)) if looks_like_builder(b) => r.allowed(
                format!("listed {}'s own machines of brand {b}", who.account_login),
                Trail::default(),
            ),
            _ => r,
        }
    }

    /// GetMachine.
    pub async fn get_machine(&self, who: &Principal, id: &str) -> Reply {
        match self.machine_of(who, id).await {
            Ok(vm) => Reply::json(200, serde_json::to_value(machine(&vm)).unwrap_or_default()),
            Err(r) => r.into(),
        }
    }

    /// DeleteMachine (`DELETE /:login/machines/:id`). A builder machine is
    /// deleted only for an operator on its own account; anyone else gets
    /// CloudAPI's answer for a machine they cannot see (404 `VM not
    /// found`), and both are audited. Subset mode deletes through VMAPI
    /// (204, as CloudAPI answers); front mode passes allowed requests on to
    /// CloudAPI (a machine that is not builder is CloudAPI's to decide).
    pub async fn delete_machine(&self, who: &Principal, id: &str) -> Reply {
        let mut trail = Trail {
            vm_uuid: Some(id.to_string()),
            ..Default::default()
        };
        let vm = match self.machine_of(who, id).await {
            Ok(vm) => vm,
            Err(_) if self.front() => {
                // not one the gate can see as this account's: only a
                // builder machine is the gate's to refuse
                return match self.triton.vmapi.get(id).await {
                    Ok(vm) if policy::is_builder_vm(&vm) => {
                        trail.brand = vm.brand.clone();
                        let mut r =
                            Refused::plain("machine", CloudApiError::not_found("VM not found"));
                        r.reason = format!(
                            "delete of builder machine {id} refused: {}",
                            who.builder_refusal().unwrap_or_else(|| format!(
                                "not a machine of {}",
                                who.account_login
                            ))
                        );
                        Reply::refused(r, trail)
                    }
                    _ => Reply::forward(),
                };
            }
            Err(mut r) => {
                if let Ok(vm) = self.triton.vmapi.get(id).await {
                    if policy::is_builder_vm(&vm) {
                        trail.brand = vm.brand.clone();
                        if !r.reason.starts_with("builder machine") {
                            r.reason = format!(
                                "delete of builder machine {id} refused: not a machine of {}",
                                who.account_login
                            );
                        }
                    }
                }
                return Reply::refused(r, trail);
            }
        };
        trail.brand = vm.brand.clone();
        trail.server_uuid = vm.server_uuid.clone();
        let builder = policy::is_builder_vm(&vm);
        let why = format!("{} deleted its builder machine {id}", who.account_login);
        if self.front() {
            return if builder {
                Reply::forward().allowed(format!("{why}: passed on to CloudAPI"), trail)
            } else {
                Reply::forward()
            };
        }
        match self.triton.vmapi.delete(&vm.uuid).await {
            Ok(_) if builder => Reply::json(204, Value::Null).allowed(why, trail),
            Ok(_) => Reply::json(204, Value::Null),
            Err(e) => Reply::refused(vmapi_refusal(e), trail),
        }
    }

    /// UpdateMachine (`POST /:login/machines/:id?action=...`): the checks
    /// that matter to builder (resize to a builder package, a `brand`
    /// parameter). `Ok(None)`: allowed, to be done by whoever serves the
    /// action (the gate in subset mode for resize, rename, start, stop,
    /// reboot; CloudAPI in front mode).
    pub async fn check_update(
        &self,
        who: &Principal,
        id: &str,
        p: &Map<String, Value>,
    ) -> Result<(Vm, Option<Package>), Reply> {
        let action = pstr(p, "action");
        let mut trail = Trail::default();
        for k in ["action", "package", "brand", "name"] {
            if let Some(v) = p.get(k) {
                trail.request.insert(k.into(), v.clone());
            }
        }
        trail.vm_uuid = Some(id.to_string());
        let vm = self
            .machine_of(who, id)
            .await
            .map_err(|r| Reply::refused(r, trail.clone()))?;
        trail.brand = vm.brand.clone();
        let brand_param = pstr(p, "brand");
        let brand_note = brand_param
            .as_ref()
            .map(|b| format!("; asked brand \"{b}\" (a machine's brand never changes)"))
            .unwrap_or_default();
        let valid = [
            "rename",
            "start",
            "stop",
            "reboot",
            "resize",
            "enable_deletion_protection",
            "disable_deletion_protection",
            "enable_firewall",
            "disable_firewall",
        ];
        let action = match action {
            None => {
                return Err(Reply::refused(
                    Refused::new(
                        "params",
                        CloudApiError::missing_parameter("action is required"),
                        format!("action is required{brand_note}"),
                    ),
                    trail,
                ))
            }
            Some(a) if !valid.contains(&a.as_str()) => {
                return Err(Reply::refused(
                    Refused::new(
                        "params",
                        CloudApiError::invalid_argument(format!("{a} is not a valid action")),
                        format!("{a} is not a valid action{brand_note}"),
                    ),
                    trail,
                ))
            }
            Some(a) => a,
        };
        if action != "resize" {
            return Ok((vm, None));
        }
        let Some(pref) = pstr(p, "package") else {
            return Err(Reply::refused(
                Refused::plain(
                    "package",
                    CloudApiError::missing_parameter("package must be specified"),
                ),
                trail,
            ));
        };
        let pkg = self
            .find_package(who, &pref, true)
            .await
            .map_err(|r| Reply::refused(r, trail.clone()))?;
        if !pkg.is_active() {
            return Err(Reply::refused(
                Refused::plain(
                    "package",
                    CloudApiError::invalid_argument(format!(
                        "{pref} is inactive. Must use an active package"
                    )),
                ),
                trail,
            ));
        }
        let vbrand = vm.brand.clone().unwrap_or_default();
        if let Some(pb) = pkg.brand().filter(|b| *b != vbrand) {
            let msg =
                format!("Package requires brand \"{pb}\", but brand \"{vbrand}\" was specified");
            let body = json!({"code": "ValidationFailed", "message": "Invalid VM update parameters",
                "errors": [{"field": "brand", "code": "Invalid", "message": msg}]});
            return Err(Reply::refused(
                Refused::new(
                    "package",
                    CloudApiError::new(409, "ValidationFailed", "Invalid VM update parameters"),
                    format!(
                        "resize of a {vbrand} machine to {pb} package {}: {msg}",
                        pkg.uuid
                    ),
                )
                .with_body(body),
                trail,
            ));
        }
        Ok((vm, Some(Arc::unwrap_or_clone(pkg))))
    }

    /// UpdateMachine in subset mode: resize, rename, start, stop, reboot
    /// through VMAPI (202, as CloudAPI answers).
    pub async fn update_machine(&self, who: &Principal, id: &str, p: &Map<String, Value>) -> Reply {
        let (vm, pkg) = match self.check_update(who, id, p).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let action = pstr(p, "action").unwrap_or_default();
        let mut changes = Map::new();
        let job = match action.as_str() {
            "resize" => {
                let pkg = pkg.unwrap_or_default();
                changes.insert("billing_id".into(), json!(pkg.uuid));
                self.triton.vmapi.update(&vm.uuid, &changes).await
            }
            "rename" => {
                let Some(name) = pstr(p, "name") else {
                    return Refused::plain(
                        "params",
                        CloudApiError::missing_parameter("New name must be specified"),
                    )
                    .into();
                };
                changes.insert("alias".into(), json!(name));
                self.triton.vmapi.update(&vm.uuid, &changes).await
            }
            "start" => self.triton.vmapi.start(&vm.uuid).await,
            "stop" => self.triton.vmapi.stop(&vm.uuid).await,
            "reboot" => self.triton.vmapi.reboot(&vm.uuid).await,
            other => {
                return CloudApiError::not_implemented(&format!("UpdateMachine action={other}"))
                    .refused("machine")
                    .into()
            }
        };
        match job {
            Ok(_) => Reply::json(202, Value::Null),
            Err(e) => vmapi_refusal(e).into(),
        }
    }
}

/// CloudAPI `networks`: UUIDs, `{ipv4_uuid}`/`{uuid}` objects, or a comma
/// list.
pub fn parse_networks(v: Option<&Value>) -> Result<Vec<String>, Refused> {
    let bad = || {
        Refused::plain(
            "params",
            CloudApiError::invalid_argument("Invalid networks"),
        )
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|n| match n {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) => o
                    .get("ipv4_uuid")
                    .or_else(|| o.get("uuid"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(bad),
                _ => Err(bad()),
            })
            .collect(),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()),
        Some(_) => Err(bad()),
    }
}

/// CreateMachine's parameters: the JSON (or form) body merged over the
/// query, with nested `metadata`/`tag(s)` objects flattened as restify does.
pub fn params(
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, CloudApiError> {
    let mut m = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()).into_owned() {
        m.insert(k, Value::String(v));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(m);
    }
    let ct = content_type.unwrap_or("application/json");
    if ct.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in form_urlencoded::parse(body).into_owned() {
            m.insert(k, Value::String(v));
        }
        return Ok(m);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => {
            for (k, v) in o {
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

impl CloudApiError {
    /// This error as a refusal at `stage`.
    pub fn refused(self, stage: &'static str) -> Refused {
        Refused::plain(stage, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triton_api::FieldError;

    #[test]
    fn params_merge_and_flatten() {
        let p = params(
            "name=q1",
            None,
            br#"{"image":"i","metadata":{"a":"1"},"tag.role":"b"}"#,
        )
        .unwrap();
        assert_eq!(p["name"], "q1");
        assert_eq!(p["metadata.a"], "1");
        assert_eq!(p["tag.role"], "b");
        assert_eq!(params("", None, b"not json").unwrap_err().status, 400);
        let f = params(
            "",
            Some("application/x-www-form-urlencoded"),
            b"image=i&package=p",
        )
        .unwrap();
        assert_eq!(f["package"], "p");
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = ["1.10.0", "1.9.0", "1.2.3"];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(v, ["1.2.3", "1.9.0", "1.10.0"]);
    }

    #[test]
    fn networks_forms() {
        assert_eq!(
            parse_networks(Some(&json!(["a", {"ipv4_uuid": "b"}, {"uuid": "c"}]))).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(parse_networks(Some(&json!("a,b"))).unwrap(), ["a", "b"]);
        assert!(parse_networks(None).unwrap().is_empty());
        assert_eq!(
            parse_networks(Some(&json!([1]))).unwrap_err().error.message,
            "Invalid networks"
        );
        assert!(parse_networks(Some(&json!({"a": 1}))).is_err());
    }

    #[test]
    fn vmapi_errors_as_cloudapi_shows_them() {
        let t = TritonError::with_errors(
            "ValidationFailed",
            "Invalid VM parameters",
            vec![FieldError::new("alias", "Duplicate")
                .with_message("Already exists for this owner_uuid")],
        );
        assert_eq!(
            vmapi_validation(&t),
            "Invalid VM parameters: Invalid machine name"
        );
        // the suffix is appended again for every later error (CloudAPI's loop)
        let t = TritonError::with_errors(
            "ValidationFailed",
            "Invalid VM parameters",
            vec![
                FieldError::new("alias", "Invalid"),
                FieldError::new("networks", "Invalid"),
            ],
        );
        assert_eq!(
            vmapi_validation(&t),
            "Invalid VM parameters: Invalid machine name: Invalid machine name. Invalid networks"
        );
        let t = TritonError::with_errors(
            "ValidationFailed",
            "Invalid VM parameters",
            vec![FieldError::new("brand", "Invalid")],
        );
        assert_eq!(vmapi_validation(&t), "Invalid VM parameters");
        assert_eq!(duplicate_alias().body()["errors"][0]["code"], "Duplicate");
    }
}
