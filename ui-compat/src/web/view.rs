//! Templates and the view models the pages render.

use super::session::{Current, Flash};
use super::AppState;
use crate::brands::Brand;
use crate::tools::Image;
use crate::vm::VmEntry;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Environment, Value};
use serde::Serialize;
use std::collections::HashMap;

/// The compiled page templates (built into the binary).
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        for (name, src) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("login.html", include_str!("../../templates/login.html")),
            (
                "dashboard.html",
                include_str!("../../templates/dashboard.html"),
            ),
            (
                "instances.html",
                include_str!("../../templates/instances.html"),
            ),
            (
                "instance.html",
                include_str!("../../templates/instance.html"),
            ),
            (
                "provision.html",
                include_str!("../../templates/provision.html"),
            ),
            ("error.html", include_str!("../../templates/error.html")),
        ] {
            env.add_template(name, src)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        Templates { env }
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

pub const CSS: &str = include_str!("../../templates/ui.css");

/// Render a full page for a (possibly absent) session; a template error
/// becomes a plain 500.
pub fn page(
    state: &AppState,
    cur: Option<&Current>,
    status: StatusCode,
    name: &str,
    nav: &str,
    ctx: Value,
) -> Response {
    let flash: Option<Flash> = cur.and_then(|c| state.0.sessions.take_flash(&c.token));
    let full = context! {
        user => cur.map(|c| c.user.clone()),
        csrf => cur.map(|c| c.csrf.clone()),
        nav => nav,
        flash => flash,
        ..ctx
    };
    match state.0.templates.render(name, full) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

pub fn error_page(
    state: &AppState,
    cur: Option<&Current>,
    status: StatusCode,
    message: &str,
) -> Response {
    page(
        state,
        cur,
        status,
        "error.html",
        "",
        context! { status => status.to_string(), message => message },
    )
}

/// One line of the instances list.
#[derive(Serialize)]
pub struct Row {
    unreadable: bool,
    uuid: Option<String>,
    link: bool,
    alias: Option<String>,
    brand: Option<String>,
    brand_title: String,
    known: bool,
    kind: &'static str,
    image: String,
    state: String,
    memory: String,
    ips: String,
    index: usize,
    error: String,
}

pub fn memory_text(mib: Option<u64>) -> String {
    match mib {
        Some(m) if m >= 1024 && m % 1024 == 0 => format!("{} GiB", m / 1024),
        Some(m) => format!("{m} MiB"),
        None => "—".into(),
    }
}

pub fn image_text(uuid: Option<&str>, images: &HashMap<&str, &Image>) -> String {
    match uuid {
        Some(u) => match images.get(u) {
            Some(i) => i.label(),
            None => u.to_string(),
        },
        None => "—".into(),
    }
}

pub fn kind_text(b: &Brand, vm: Option<&crate::Vm>) -> &'static str {
    match vm.and_then(|v| v.kind()).or(b.kind()) {
        Some(k) => k.as_str(),
        None => "?",
    }
}

/// The list rows for VM entries, naming images where `images` knows them.
pub fn instance_rows(entries: &[VmEntry], images: &[Image]) -> Vec<Row> {
    let by_uuid: HashMap<&str, &Image> = images.iter().map(|i| (i.uuid.as_str(), i)).collect();
    entries
        .iter()
        .map(|e| match e {
            VmEntry::Vm(vm) => Row {
                unreadable: false,
                uuid: Some(vm.uuid.clone()),
                link: crate::provision::is_uuid(&vm.uuid),
                alias: vm.alias.clone(),
                brand: Some(vm.brand.as_str().to_string()),
                brand_title: vm.brand.title(),
                known: vm.brand.is_known(),
                kind: kind_text(&vm.brand, Some(vm)),
                image: image_text(vm.image_uuid.as_deref(), &by_uuid),
                state: vm.state.clone().unwrap_or_else(|| "unknown".into()),
                memory: memory_text(vm.memory()),
                ips: vm.primary_ips().join(", "),
                index: 0,
                error: String::new(),
            },
            VmEntry::Unreadable(u) => Row {
                unreadable: true,
                link: u.uuid.as_deref().is_some_and(crate::provision::is_uuid),
                uuid: u.uuid.clone(),
                alias: u.alias.clone(),
                brand: u.brand.clone(),
                brand_title: String::new(),
                known: false,
                kind: "?",
                image: String::new(),
                state: String::new(),
                memory: String::new(),
                ips: String::new(),
                index: u.index,
                error: u.error.clone(),
            },
        })
        .collect()
}

/// The instances page body for a user, without a server: what the
/// handler renders, exposed for the benchmark.
pub fn render_instances(
    templates: &Templates,
    entries: &[VmEntry],
    images: &[Image],
    user: &str,
    csrf: &str,
) -> Result<String, minijinja::Error> {
    templates.render(
        "instances.html",
        context! {
            user => user,
            csrf => csrf,
            nav => "instances",
            rows => Value::from_serialize(instance_rows(entries, images)),
        },
    )
}
