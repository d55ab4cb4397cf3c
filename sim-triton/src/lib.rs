//! Simulated Triton APIs (VMAPI, PAPI, CNAPI, IMGAPI, accounts) over HTTP.
//!
//! `sim triton serve --data DIR --cn NODE...` starts one loopback HTTP
//! server per API, writes their URLs to `DIR/endpoints.json`, and keeps all
//! state in `DIR` (see [`store`]). Wire formats, validation messages and
//! error bodies follow the real services as recorded in the project's notes
//! (`shared/notes/triton.md`), modelled after RFD 184: PAPI and VMAPI accept
//! brand `builder`, and a package's `brand` is immutable.
//!
//! Compute nodes are `sim` node directories: CNAPI reads each node's
//! `sysinfo`, and VMAPI creates VMs with that node's `vmadm`.

pub mod cnapi;
pub mod http;
pub mod imgapi;
pub mod log;
pub mod mahi;
pub mod papi;
pub mod store;
pub mod vmapi;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

pub use store::Store;

/// The services, in the order they are started and listed.
pub const SERVICES: &[&str] = &["papi", "vmapi", "cnapi", "imgapi", "mahi"];

/// The brands VMAPI and PAPI accept (upstream's list plus `builder`, RFD 184).
/// (the brand registry's names, sorted).
pub fn valid_brands() -> Vec<&'static str> {
    brand::registry::triton()
}

/// How to run the services.
#[derive(Debug, Clone)]
pub struct Config {
    /// State directory.
    pub data: PathBuf,
    /// Compute node directories.
    pub cns: Vec<PathBuf>,
    /// The `sim` binary that runs the nodes' tools (`vmadm`, `sysinfo`).
    pub node_bin: PathBuf,
    /// Port per service name (missing or 0: pick a free one).
    pub ports: BTreeMap<String, u16>,
    /// Placement: skip servers whose booted platform lacks the VM's brand
    /// (RFD 184 option (c)). Only servers that list brands are checked.
    pub filter_brands: bool,
    /// CNAPI serves sysinfo `Brands` as the node reports it. `false`: it is
    /// left out, as on every SmartOS platform today (the key is a proposed
    /// platform change), so placement must rely on platform floors and
    /// traits.
    pub report_brands: bool,
    /// CNAPI's `filter_builder_min_platform` (RFD 184 option (b)): the
    /// lowest platform per SDC version that may take a `builder` VM.
    pub builder_min_platform: Option<BTreeMap<String, String>>,
    /// Write bunyan logs to `DIR/log/<service>.log` (else stderr).
    pub log_to_files: bool,
    /// UUID of the `admin` account (an operator), created on first start
    /// when the data directory has none (Triton always has one).
    pub admin_uuid: Option<String>,
}

impl Config {
    pub fn new(data: &Path, cns: &[PathBuf]) -> Config {
        Config {
            data: data.to_path_buf(),
            cns: cns.to_vec(),
            node_bin: sim_node::node::sim_bin(),
            ports: BTreeMap::new(),
            filter_brands: true,
            report_brands: true,
            builder_min_platform: None,
            log_to_files: true,
            admin_uuid: None,
        }
    }
}

/// What every handler sees.
#[derive(Debug)]
pub struct Ctx {
    pub store: Store,
    pub cfg: Config,
    pub log: BTreeMap<String, log::Logger>,
}

impl Ctx {
    pub fn new(cfg: Config) -> anyhow::Result<Ctx> {
        let store = Store::open(&cfg.data)?;
        let has_admin = store
            .read(store::ACCOUNTS)?
            .values()
            .any(|a| a["login"] == "admin");
        if !has_admin {
            mahi::add_account(
                &store,
                "admin",
                cfg.admin_uuid.as_deref(),
                &["operators".to_string()],
                &[],
                true,
            )?;
        }
        let log = SERVICES
            .iter()
            .map(|s| {
                let path = cfg
                    .log_to_files
                    .then(|| store.path(&format!("log/{s}.log")));
                (s.to_string(), log::Logger::new(s, path))
            })
            .collect();
        Ok(Ctx { store, cfg, log })
    }

    pub fn logger(&self, service: &str) -> log::Logger {
        self.log
            .get(service)
            .cloned()
            .unwrap_or_else(|| log::Logger::new(service, None))
    }
}

/// The URL of each service, as written to `DIR/endpoints.json`.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub urls: BTreeMap<String, String>,
}

impl Endpoints {
    pub fn url(&self, service: &str) -> &str {
        self.urls.get(service).map(String::as_str).unwrap_or("")
    }

    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for s in SERVICES {
            if let Some(u) = self.urls.get(*s) {
                m.insert(s.to_string(), json!(u));
            }
        }
        Value::Object(m)
    }

    /// Read `DIR/endpoints.json`.
    pub fn load(data: &Path) -> anyhow::Result<Endpoints> {
        let p = data.join("endpoints.json");
        let v = store::read_json(&p).with_context(|| format!("no endpoints in {}", p.display()))?;
        let urls = v
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Endpoints { urls })
    }
}

fn router(ctx: &Arc<Ctx>, service: &str) -> Router {
    let r = match service {
        "papi" => papi::router(ctx.clone()),
        "vmapi" => vmapi::router(ctx.clone()),
        "cnapi" => cnapi::router(ctx.clone()),
        "imgapi" => imgapi::router(ctx.clone()),
        _ => mahi::router(ctx.clone()),
    };
    r.fallback(http::not_found)
        .method_not_allowed_fallback(http::bad_method)
        .layer(axum::middleware::from_fn_with_state(
            ctx.logger(service),
            http::log_requests,
        ))
}

/// Services started on the current tokio runtime.
pub struct Running {
    pub endpoints: Endpoints,
    pub ctx: Arc<Ctx>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop serving and wait for the servers to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Bind every service on 127.0.0.1, write `DIR/endpoints.json`, and serve on
/// the current tokio runtime.
pub async fn spawn(cfg: Config) -> anyhow::Result<Running> {
    let ctx = Arc::new(Ctx::new(cfg)?);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut endpoints = Endpoints::default();
    let mut tasks = Vec::new();
    for s in SERVICES {
        let port = ctx.cfg.ports.get(*s).copied().unwrap_or(0);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("{s}: bind {addr}"))?;
        let local = listener.local_addr()?;
        endpoints
            .urls
            .insert(s.to_string(), format!("http://{local}"));
        let app = router(&ctx, s);
        let mut rx = rx.clone();
        let log = ctx.logger(s);
        log.info(
            &format!("{s} listening on http://{local}"),
            json!({"url": format!("http://{local}")}),
        );
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                while !*rx.borrow() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                log.log(log::ERROR, &format!("server error: {e}"), json!({}));
            }
        }));
    }
    store::write_json(&ctx.store.path("endpoints.json"), &endpoints.to_json())?;
    Ok(Running {
        endpoints,
        ctx,
        shutdown: tx,
        tasks,
    })
}

/// Services running on their own thread and runtime (for tests, and for
/// `cargo xtask` driving a rollout). Dropping it stops them.
pub struct Background {
    pub endpoints: Endpoints,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn url(&self, service: &str) -> &str {
        self.endpoints.url(service)
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Start the services on a background thread; returns once they listen.
pub fn start(cfg: Config) -> anyhow::Result<Background> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<Endpoints>>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        rt.block_on(async move {
            match spawn(cfg).await {
                Ok(running) => {
                    let _ = ready_tx.send(Ok(running.endpoints.clone()));
                    let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
                    running.stop().await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
    });
    let endpoints = ready_rx.recv().context("sim triton thread died")??;
    Ok(Background {
        endpoints,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Serve until SIGINT or SIGTERM.
pub fn serve_blocking(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = spawn(cfg).await?;
        println!(
            "{}",
            serde_json::to_string_pretty(&running.endpoints.to_json())?
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        running.stop().await;
        Ok(())
    })
}

// ---- small shared helpers

/// A lowercase `8-4-4-4-12` UUID, as Triton's validators want.
pub use common::uuid::is_uuid;

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `2026-11-26T01:02:03.456Z`
pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

// ---- CLI

#[derive(Parser)]
#[command(
    name = "sim triton",
    about = "Simulated Triton APIs (PAPI, VMAPI, CNAPI, IMGAPI, mahi)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve every API on its own 127.0.0.1 port until SIGINT/SIGTERM.
    Serve {
        /// State directory (endpoints.json, packages, VMs, images, logs).
        #[arg(long)]
        data: PathBuf,
        /// A compute node directory (repeat for more nodes).
        #[arg(long = "cn")]
        cns: Vec<PathBuf>,
        /// Ports, e.g. `papi=8081,vmapi=8082` (default: free ports).
        #[arg(long, value_delimiter = ',')]
        ports: Vec<String>,
        /// Do not skip servers whose platform lacks the VM's brand.
        #[arg(long)]
        no_brand_filter: bool,
        /// Leave sysinfo `Brands` out of CNAPI's answers (as real platforms do).
        #[arg(long)]
        no_brands_in_sysinfo: bool,
        /// Platform floor for builder VMs, e.g. `7.0=20260101T000000Z`.
        #[arg(long, value_delimiter = ',')]
        builder_min_platform: Vec<String>,
        /// Log to stderr instead of DIR/log/<service>.log.
        #[arg(long)]
        log_stderr: bool,
        /// UUID for the `admin` operator account created on first start.
        #[arg(long)]
        admin_uuid: Option<String>,
    },
    /// Add (or replace) an account in the auth cache.
    AccountAdd {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        login: String,
        #[arg(long)]
        uuid: Option<String>,
        /// Member of the `operators` group.
        #[arg(long)]
        operator: bool,
        /// Other groups (e.g. role-operators, readers).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// An OpenSSH public key file (repeat for more keys).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// approved_for_provisioning
        #[arg(long)]
        approved: bool,
    },
    /// Add a sub-user to an account.
    UserAdd {
        #[arg(long)]
        data: PathBuf,
        /// The parent account's login.
        #[arg(long)]
        account: String,
        #[arg(long)]
        login: String,
        #[arg(long)]
        uuid: Option<String>,
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
    },
    /// Print DIR/endpoints.json.
    Endpoints {
        #[arg(long)]
        data: PathBuf,
    },
}

fn read_keys(files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    files
        .iter()
        .map(|f| {
            Ok(std::fs::read_to_string(f)
                .with_context(|| f.display().to_string())?
                .trim()
                .to_string())
        })
        .collect()
}

/// `sim triton ...` (args exclude "triton").
pub fn main(args: &[String]) -> anyhow::Result<i32> {
    let argv = std::iter::once("sim triton".to_string()).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(code);
        }
    };
    match cli.cmd {
        Cmd::Serve {
            data,
            cns,
            ports,
            no_brand_filter,
            no_brands_in_sysinfo,
            builder_min_platform,
            log_stderr,
            admin_uuid,
        } => {
            let mut cfg = Config::new(&data, &cns);
            cfg.admin_uuid = admin_uuid;
            for p in ports {
                let (k, v) = p
                    .split_once('=')
                    .with_context(|| format!("--ports: {p}: want NAME=PORT"))?;
                anyhow::ensure!(
                    SERVICES.contains(&k),
                    "--ports: unknown service {k} (one of {})",
                    SERVICES.join(", ")
                );
                cfg.ports.insert(
                    k.to_string(),
                    v.parse().with_context(|| format!("--ports: {p}"))?,
                );
            }
            cfg.filter_brands = !no_brand_filter;
            cfg.report_brands = !no_brands_in_sysinfo;
            if !builder_min_platform.is_empty() {
                let mut m = BTreeMap::new();
                for p in builder_min_platform {
                    let (k, v) = p
                        .split_once('=')
                        .with_context(|| format!("--builder-min-platform: {p}"))?;
                    m.insert(k.to_string(), v.to_string());
                }
                cfg.builder_min_platform = Some(m);
            }
            cfg.log_to_files = !log_stderr;
            for cn in &cfg.cns {
                anyhow::ensure!(cn.is_dir(), "--cn {}: not a directory", cn.display());
            }
            serve_blocking(cfg)?;
        }
        Cmd::AccountAdd {
            data,
            login,
            uuid,
            operator,
            mut groups,
            keys,
            approved,
        } => {
            if operator && !groups.iter().any(|g| g == "operators") {
                groups.insert(0, "operators".into());
            }
            let store = Store::open(&data)?;
            let acct = mahi::add_account(
                &store,
                &login,
                uuid.as_deref(),
                &groups,
                &read_keys(&keys)?,
                approved,
            )?;
            println!("{}", serde_json::to_string_pretty(&acct)?);
        }
        Cmd::UserAdd {
            data,
            account,
            login,
            uuid,
            keys,
        } => {
            let store = Store::open(&data)?;
            let user = mahi::add_user(
                &store,
                &account,
                &login,
                uuid.as_deref(),
                &read_keys(&keys)?,
            )?;
            println!("{}", serde_json::to_string_pretty(&user)?);
        }
        Cmd::Endpoints { data } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&Endpoints::load(&data)?.to_json())?
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_check_is_lowercase_only() {
        assert!(is_uuid("3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41"));
        assert!(!is_uuid("3F0A8C2E-6d7b-4f61-9a2e-5b1c0d9e7a41"));
        assert!(!is_uuid("3f0a8c2e6d7b4f619a2e5b1c0d9e7a41"));
        assert!(!is_uuid("doogle"));
    }

    #[test]
    fn usage_error_exits_2() {
        assert_eq!(main(&["bogus".to_string()]).unwrap(), 2);
        assert_eq!(main(&["serve".to_string()]).unwrap(), 2);
    }
}
