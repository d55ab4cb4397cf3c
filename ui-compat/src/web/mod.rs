//! The web UI: axum routes, server-side templates, sessions and CSRF.
//!
//! Every page but `/login` and `/static/*` needs a session (else a 303 to
//! `/login`); every POST needs the CSRF token of its session (or, for
//! `/login`, of the login form's cookie), else 403.

mod pages;
mod session;
mod view;

pub use view::{instance_rows, render_instances, Templates};

use crate::provision;
use crate::tools::Tools;
use crate::vminfod::Vminfod;
use axum::routing::{get, post};
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How the UI reaches the node and who may log in.
#[derive(Clone, Debug)]
pub struct Config {
    pub vminfod: Vminfod,
    pub tools: Tools,
    /// The node's root: installed brands are read from `<root>/usr/lib/brand`.
    pub root: PathBuf,
    /// Shadow-format password file.
    pub shadow: PathBuf,
    /// Users allowed to log in.
    pub users: Vec<String>,
    /// Mark cookies `Secure` (set when serving TLS).
    pub secure_cookies: bool,
    /// A session ends this long after login.
    pub session_ttl: Duration,
}

impl Config {
    /// Defaults for a SmartOS global zone.
    pub fn smartos() -> Config {
        Config {
            vminfod: Vminfod::new("http://127.0.0.1:9090").expect("valid URL"),
            tools: Tools::default(),
            root: "/".into(),
            shadow: "/etc/shadow".into(),
            users: vec!["root".into()],
            secure_cookies: false,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

pub(crate) struct Inner {
    pub config: Config,
    pub sessions: session::Sessions,
    pub templates: Templates,
}

/// Shared state of the UI.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    pub fn new(config: Config) -> AppState {
        AppState(Arc::new(Inner {
            config,
            sessions: session::Sessions::default(),
            templates: Templates::new(),
        }))
    }

    pub(crate) fn installed(&self) -> Vec<crate::Brand> {
        provision::installed_brands(&self.0.config.root)
    }
}

/// The whole UI as an axum router.
pub fn router(config: Config) -> Router {
    let state = AppState::new(config);
    Router::new()
        .route("/", get(pages::root))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/dashboard", get(pages::dashboard))
        .route("/instances", get(pages::instances))
        .route("/instances/{uuid}", get(pages::instance))
        .route("/instances/{uuid}/{action}", post(pages::action))
        .route(
            "/provision",
            get(pages::provision_form).post(pages::provision),
        )
        .route("/static/ui.css", get(pages::css))
        .route("/favicon.ico", get(pages::favicon))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::guard,
        ))
        .layer(axum::middleware::from_fn(session::log_requests))
        .with_state(state)
}
