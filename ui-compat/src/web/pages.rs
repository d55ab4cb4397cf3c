//! Page and action handlers.

use super::session::{self, Current, LOGIN_COOKIE, SESSION_COOKIE};
use super::view::{self, error_page, page};
use super::AppState;
use crate::brands::{brands, Brand, Kind};
use crate::provision::{self, is_uuid};
use crate::tools::{self, Action, CommandError, Image};
use crate::vm::{self, VmEntry};
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

type Cur = Extension<Current>;

pub async fn root() -> Redirect {
    Redirect::to("/dashboard")
}

pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        view::CSS,
    )
        .into_response()
}

/// Browsers ask for it on every page; there is none (and no redirect to
/// the login page for it).
pub async fn favicon() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "max-age=86400")],
    )
        .into_response()
}

pub async fn not_found(State(state): State<AppState>, cur: Option<Cur>) -> Response {
    error_page(
        &state,
        cur.as_deref(),
        StatusCode::NOT_FOUND,
        "No such page.",
    )
}

async fn run(state: &AppState, cmd: &tools::Cmd) -> Result<tools::Output, CommandError> {
    let r = tools::run(cmd, state.0.config.tools.timeout).await;
    if let Err(e) = &r {
        tracing::warn!(error = %e, "command failed");
    }
    r
}

/// `GET /vms`, decoded; `Err` is a message for the page.
async fn load_vms(state: &AppState) -> Result<Vec<VmEntry>, String> {
    let body = state
        .0
        .config
        .vminfod
        .vms()
        .await
        .map_err(|e| e.to_string())?;
    let list = vm::decode_list(&body).map_err(|e| e.to_string())?;
    for e in &list {
        if let VmEntry::Unreadable(u) = e {
            tracing::warn!(index = u.index, uuid = ?u.uuid, error = %u.error, "unreadable VM in /vms");
        }
    }
    Ok(list)
}

/// `imgadm list -j`, parsed; `Err` is a message for the page.
async fn load_images(state: &AppState) -> Result<Vec<Image>, String> {
    let out = run(state, &state.0.config.tools.imgadm_list())
        .await
        .map_err(|e| e.to_string())?;
    let (images, warnings) = tools::parse_images(&out.stdout).map_err(|e| e.to_string())?;
    for w in warnings {
        tracing::warn!(warning = %w, "skipped an image");
    }
    Ok(images)
}

// ---- login ---------------------------------------------------------------

fn login_page(
    state: &AppState,
    status: StatusCode,
    token: &str,
    user: &str,
    error: Option<&str>,
    vminfod_up: bool,
) -> Response {
    let mut res = page(
        state,
        None,
        status,
        "login.html",
        "login",
        context! {
            login_csrf => token,
            login_user => user,
            error => error,
            vminfod_up => vminfod_up,
            vminfod_url => state.0.config.vminfod.url(""),
        },
    );
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(
            LOGIN_COOKIE,
            token,
            "/login",
            state.0.config.secure_cookies,
            None,
        ),
    );
    res
}

async fn vminfod_up(state: &AppState) -> bool {
    match state
        .0
        .config
        .vminfod
        .timed(std::time::Duration::from_secs(2))
    {
        Ok(v) => v.ping().await.is_ok(),
        Err(_) => false,
    }
}

pub async fn login_form(
    State(state): State<AppState>,
    cur: Option<Cur>,
    headers: HeaderMap,
) -> Response {
    if cur.is_some() {
        return Redirect::to("/dashboard").into_response();
    }
    let up = vminfod_up(&state).await;
    let token = session::login_token(&headers);
    login_page(&state, StatusCode::OK, &token, "root", None, up)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let cfg = &state.0.config;
    let (shadow, users, user, pw) = (
        cfg.shadow.clone(),
        cfg.users.clone(),
        f.user.clone(),
        f.password,
    );
    let checked =
        tokio::task::spawn_blocking(move || crate::auth::check(&shadow, &users, &user, &pw))
            .await
            .unwrap_or_else(|e| Err(crate::auth::AuthError::File(e.to_string())));
    match checked {
        Ok(()) => {
            let cur = state.0.sessions.create(&f.user, cfg.session_ttl);
            tracing::info!(user = %f.user, "logged in");
            let mut res = Redirect::to("/dashboard").into_response();
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                session::set_cookie(
                    SESSION_COOKIE,
                    &cur.token,
                    "/",
                    cfg.secure_cookies,
                    Some(cfg.session_ttl.as_secs()),
                ),
            );
            h.append(
                header::SET_COOKIE,
                session::set_cookie(LOGIN_COOKIE, "", "/login", cfg.secure_cookies, Some(0)),
            );
            res
        }
        Err(e) => {
            tracing::warn!(user = %f.user, reason = %e, "login refused");
            let token = session::login_token(&headers);
            let up = vminfod_up(&state).await;
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &token,
                &f.user,
                Some("Wrong user or password."),
                up,
            )
        }
    }
}

pub async fn logout(State(state): State<AppState>, Extension(cur): Cur) -> Response {
    state.0.sessions.remove(&cur.token);
    tracing::info!(user = %cur.user, "logged out");
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(
            SESSION_COOKIE,
            "",
            "/",
            state.0.config.secure_cookies,
            Some(0),
        ),
    );
    res
}

// ---- dashboard -----------------------------------------------------------

#[derive(Serialize, Default)]
struct Counts {
    total: usize,
    running: usize,
    unknown_brand: usize,
    unreadable: usize,
}

#[derive(Serialize)]
struct BrandLine {
    name: String,
    title: String,
    known: bool,
    installed: bool,
    count: usize,
}

pub async fn dashboard(State(state): State<AppState>, Extension(cur): Cur) -> Response {
    let sysinfo_cmd = state.0.config.tools.sysinfo();
    let (vms, images, sysinfo) = tokio::join!(load_vms(&state), load_images(&state), async {
        let out = run(&state, &sysinfo_cmd).await.map_err(|e| e.to_string())?;
        tools::parse_sysinfo(&out.stdout).map_err(|e| e.to_string())
    });
    let installed = state.installed();
    let mut counts = Counts::default();
    let mut per_brand: BTreeMap<String, usize> = BTreeMap::new();
    if let Ok(list) = &vms {
        counts.total = list.len();
        for e in list {
            match e {
                VmEntry::Vm(v) => {
                    *per_brand.entry(v.brand.as_str().to_string()).or_default() += 1;
                    if v.state.as_deref() == Some("running") {
                        counts.running += 1;
                    }
                    if !v.brand.is_known() {
                        counts.unknown_brand += 1;
                    }
                }
                VmEntry::Unreadable(_) => counts.unreadable += 1,
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let brands: Vec<BrandLine> = brands()
        .into_iter()
        .map(|r| Brand::parse(r.name))
        .chain(
            per_brand
                .keys()
                .map(|k| Brand::parse(k))
                .filter(|b| !b.is_known()),
        )
        .chain(installed.iter().filter(|b| !b.is_known()).cloned())
        .filter(|b| seen.insert(b.clone()))
        .map(|b| BrandLine {
            name: b.as_str().to_string(),
            title: b.title(),
            known: b.is_known(),
            installed: installed.contains(&b),
            count: per_brand.get(b.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let (sysinfo, sysinfo_error) = match sysinfo {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    page(
        &state,
        Some(&cur),
        StatusCode::OK,
        "dashboard.html",
        "dashboard",
        context! {
            counts => Value::from_serialize(&counts),
            brands => Value::from_serialize(&brands),
            vms_error => vms.as_ref().err(),
            images => images.as_ref().ok().map(|i| i.len()),
            images_error => images.as_ref().err(),
            sysinfo => sysinfo.map(|s| Value::from_serialize(&s)),
            sysinfo_error => sysinfo_error,
        },
    )
}

// ---- instances -----------------------------------------------------------

pub async fn instances(State(state): State<AppState>, Extension(cur): Cur) -> Response {
    let (vms, images) = tokio::join!(load_vms(&state), load_images(&state));
    let (status, entries, vms_error) = match vms {
        Ok(l) => (StatusCode::OK, l, None),
        Err(e) => (StatusCode::BAD_GATEWAY, Vec::new(), Some(e)),
    };
    let (images, images_error) = match images {
        Ok(i) => (i, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    page(
        &state,
        Some(&cur),
        status,
        "instances.html",
        "instances",
        context! {
            rows => Value::from_serialize(view::instance_rows(&entries, &images)),
            vms_error => vms_error,
            images_error => images_error,
        },
    )
}

#[derive(Deserialize)]
pub struct InstanceQuery {
    json: Option<String>,
}

pub async fn instance(
    State(state): State<AppState>,
    Extension(cur): Cur,
    Path(uuid): Path<String>,
    Query(q): Query<InstanceQuery>,
) -> Response {
    if !is_uuid(&uuid) {
        return error_page(&state, Some(&cur), StatusCode::NOT_FOUND, "Not a VM UUID.");
    }
    let body = match state.0.config.vminfod.vm(&uuid).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return error_page(
                &state,
                Some(&cur),
                StatusCode::NOT_FOUND,
                &format!("No VM {uuid}."),
            )
        }
        Err(e) => return error_page(&state, Some(&cur), StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let entry = match vm::decode_one(&body) {
        Ok(e) => e,
        Err(e) => return error_page(&state, Some(&cur), StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let raw = serde_json::to_string_pretty(entry.raw()).unwrap_or_default();
    if matches!(q.json.as_deref(), Some("true" | "1")) {
        return ([(header::CONTENT_TYPE, "application/json")], raw).into_response();
    }
    let images = load_images(&state).await.unwrap_or_default();
    let by_uuid = images.iter().map(|i| (i.uuid.as_str(), i)).collect();
    let ctx = match &entry {
        VmEntry::Vm(v) => context! {
            title => v.alias.clone().unwrap_or_else(|| v.uuid.clone()),
            vm => Value::from_serialize(v.as_ref()),
            brand_title => v.brand.title(),
            known => v.brand.is_known(),
            kind => view::kind_text(&v.brand, Some(v)),
            memory => view::memory_text(v.memory()),
            image => view::image_text(v.image_uuid.as_deref(), &by_uuid),
        },
        VmEntry::Unreadable(u) => context! {
            title => format!("Unreadable VM {}", u.uuid.as_deref().unwrap_or("")),
            error => u.error.clone(),
        },
    };
    page(
        &state,
        Some(&cur),
        StatusCode::OK,
        "instance.html",
        "instances",
        context! { uuid => uuid, raw => raw, actionable => true, ..ctx },
    )
}

#[derive(Deserialize)]
pub struct ActionForm {
    confirm: Option<String>,
}

pub async fn action(
    State(state): State<AppState>,
    Extension(cur): Cur,
    Path((uuid, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    let (Some(action), true) = (Action::parse(&action), is_uuid(&uuid)) else {
        return error_page(&state, Some(&cur), StatusCode::NOT_FOUND, "No such action.");
    };
    let back = format!("/instances/{uuid}");
    if action == Action::Delete && f.confirm.as_deref() != Some("yes") {
        state.0.sessions.flash(
            &cur.token,
            "error",
            "Tick \u{201c}really delete\u{201d} to delete.",
        );
        return Redirect::to(&back).into_response();
    }
    let cmd = state.0.config.tools.vmadm_action(action, &uuid);
    match run(&state, &cmd).await {
        Ok(_) => {
            tracing::info!(user = %cur.user, uuid = %uuid, action = action.as_str(), "instance action");
            let verb = match action {
                Action::Start => "Started",
                Action::Stop => "Stopped",
                Action::Delete => "Deleted",
            };
            state
                .0
                .sessions
                .flash(&cur.token, "ok", format!("{verb} {uuid}."));
            let to = if action == Action::Delete {
                "/instances"
            } else {
                &back
            };
            Redirect::to(to).into_response()
        }
        Err(e) => {
            state.0.sessions.flash(
                &cur.token,
                "error",
                format!("vmadm {} failed: {}", action.as_str(), e.message()),
            );
            Redirect::to(&back).into_response()
        }
    }
}

// ---- provision -----------------------------------------------------------

#[derive(Deserialize)]
pub struct ProvisionQuery {
    image: Option<String>,
}

async fn provision_page(
    state: &AppState,
    cur: &Current,
    status: StatusCode,
    image: Option<&str>,
    form: &provision::Request,
    error: Option<(&str, String)>,
) -> Response {
    let images = load_images(state).await;
    let installed = state.installed();
    let list = images.as_ref().map(|v| v.as_slice()).unwrap_or(&[]);
    let chosen = image.and_then(|u| list.iter().find(|i| i.uuid == u));
    let (mut nictags, mut nictags_error) = (Vec::new(), None);
    let mut choices = Vec::new();
    if let Some(img) = chosen {
        choices = provision::choices(&img.kind(), &installed);
        match run(state, &state.0.config.tools.nictagadm_list()).await {
            Ok(out) => {
                let (t, w) = tools::parse_nictags(&out.stdout);
                for w in w {
                    tracing::warn!(warning = %w, "skipped a nic tag");
                }
                nictags = t;
            }
            Err(e) => nictags_error = Some(e.to_string()),
        }
    }
    let mut error = error;
    if error.is_none() && image.is_some_and(|u| !u.is_empty()) && chosen.is_none() && images.is_ok()
    {
        error = Some((
            "Unknown image",
            format!("No installed image {}.", image.unwrap_or("")),
        ));
    }
    let hvm = form_hvm(&choices, &form.brand);
    page(
        state,
        Some(cur),
        status,
        "provision.html",
        "provision",
        context! {
            images => Value::from_serialize(list),
            images_error => images.as_ref().err(),
            image => chosen.map(Value::from_serialize),
            choices => Value::from_serialize(&choices),
            installed => installed.iter().map(|b| b.as_str().to_string()).collect::<Vec<_>>(),
            nictags => Value::from_serialize(&nictags),
            nictags_error => nictags_error,
            hvm => hvm,
            form => Value::from_serialize(form),
            error_title => error.as_ref().map(|e| e.0),
            error => error.as_ref().map(|e| e.1.clone()),
        },
    )
}

/// Does the form ask HVM questions? Yes when the chosen (or default) brand
/// is an HVM brand.
fn form_hvm(choices: &[provision::Choice], brand: &str) -> bool {
    let b = if brand.is_empty() {
        choices.iter().find(|c| c.default).map(|c| c.brand.as_str())
    } else {
        Some(brand)
    };
    b.map(Brand::parse).and_then(|b| b.kind()) == Some(Kind::Hvm)
}

pub async fn provision_form(
    State(state): State<AppState>,
    Extension(cur): Cur,
    Query(q): Query<ProvisionQuery>,
) -> Response {
    let image = q.image.filter(|s| !s.is_empty());
    provision_page(
        &state,
        &cur,
        StatusCode::OK,
        image.as_deref(),
        &provision::Request::default(),
        None,
    )
    .await
}

pub async fn provision(
    State(state): State<AppState>,
    Extension(cur): Cur,
    Form(req): Form<provision::Request>,
) -> Response {
    let fail = |title: &'static str, msg: String| {
        let (state, cur, req) = (state.clone(), cur.clone(), req.clone());
        async move {
            provision_page(
                &state,
                &cur,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&req.image_uuid),
                &req,
                Some((title, msg)),
            )
            .await
        }
    };
    let images = match load_images(&state).await {
        Ok(i) => i,
        Err(e) => return fail("Cannot list images", e).await,
    };
    let Some(image) = images.iter().find(|i| i.uuid == req.image_uuid) else {
        return fail(
            "Unknown image",
            format!("No installed image {:?}.", req.image_uuid),
        )
        .await;
    };
    let uuid = provision::new_uuid();
    let payload = match provision::payload(&req, image, &state.installed(), &uuid) {
        Ok(p) => p,
        Err(e) => return fail("Invalid request", e.to_string()).await,
    };
    let tools = &state.0.config.tools;
    if let Err(e) = run(&state, &tools.vmadm_validate_create(&payload)).await {
        return fail("vmadm validate create failed", e.message()).await;
    }
    if let Err(e) = run(&state, &tools.vmadm_create(&payload)).await {
        return fail("Provision failed", e.message()).await;
    }
    tracing::info!(user = %cur.user, uuid = %uuid, brand = %req.brand, image = %image.uuid, "provisioned");
    let name = if req.alias.trim().is_empty() {
        uuid.clone()
    } else {
        format!("{} ({uuid})", req.alias.trim())
    };
    state.0.sessions.flash(
        &cur.token,
        "ok",
        format!("Provisioned {} {name}.", req.brand),
    );
    Redirect::to("/instances").into_response()
}
