//! `image-ci serve`: the service operators leave running. It runs the
//! configuration's schedules (one run at a time; a firing missed while a
//! run goes on is skipped, not queued), each run building in a zone made
//! for it; it answers on an HTTP status endpoint (`GET /status` JSON,
//! `GET /` a small HTML page) with the runs, their stages and durations,
//! the last outcome per target and the ship progress; it logs bunyan JSON.
//!
//! SIGTERM (or SIGINT, SIGHUP) stops it cleanly: the stage under way is
//! finished (a ship) or stopped (a build, a boot test's VM), the run is
//! recorded as interrupted, its zone deleted, and the service exits 0. A
//! run left `running` by a service that died is marked interrupted when
//! the next one starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::{FileConfig, Timetable};
use crate::error::{Error, Result};
use crate::pipeline::{self, RunOptions};
use crate::progress::Mode;
use crate::state::Store;
use crate::stream::Cancel;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One schedule as the service sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleState {
    pub name: String,
    pub cron: String,
    pub targets: Vec<String>,
    pub every: Option<String>,
    /// When it fires next (UTC).
    pub next: Option<String>,
}

/// The service, for the status endpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DaemonState {
    pub pid: u32,
    pub version: String,
    pub started: String,
    pub config: PathBuf,
    pub state: PathBuf,
    pub listen: String,
    pub backend: String,
    pub imgapi: String,
    pub schedules: Vec<ScheduleState>,
    /// The schedule whose run is going on.
    pub running: Option<String>,
    pub stopping: bool,
    /// The last run that could not start, and why.
    pub last_error: Option<String>,
}

type Shared = Arc<Mutex<DaemonState>>;

/// How `serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: PathBuf,
    /// Overrides the file's `listen`.
    pub listen: Option<String>,
}

/// What the status endpoint answers (`GET /status`).
pub fn status_json(d: &DaemonState) -> Value {
    let mut v = json!({"service": d});
    let db = Store::open_existing(&d.state);
    match db {
        Ok(s) => {
            let runs = s.runs(20).unwrap_or_default();
            let current = runs.iter().find(|r| r.status == "running").map(|r| {
                let st = r.stages.iter().rev().find(|s| s.status == "running");
                json!({"run": r.id, "trigger": r.trigger, "since": r.started,
                       "stage": st.map(|s| s.stage.clone()),
                       "target": st.and_then(|s| s.target.clone()),
                       "stage_since": st.map(|s| s.started.clone())})
            });
            let records = s.records().unwrap_or_default();
            v["current"] = current.unwrap_or(Value::Null);
            v["runs"] = serde_json::to_value(&runs).unwrap_or_default();
            v["targets"] =
                serde_json::to_value(crate::report::summarize(&records)).unwrap_or_default();
            v["ships"] = serde_json::to_value(s.ships().unwrap_or_default()).unwrap_or_default();
        }
        Err(_) => {
            v["current"] = Value::Null;
            v["runs"] = json!([]);
            v["targets"] = json!([]);
            v["ships"] = json!([]);
        }
    }
    v
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn secs(ms: Option<u64>) -> String {
    ms.map(|m| format!("{:.1} s", m as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// The status as a small HTML page (`GET /`).
pub fn status_html(v: &Value) -> String {
    let d = &v["service"];
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>image-ci</title>\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
         td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}th{background:#eee}\
         .ok,.shipped,.already_shipped{color:#070}.failed,.build_failed,.verify_failed,.boot_failed,.ship_failed,.preflight_failed{color:#a00}\
         .interrupted,.running{color:#a60}</style></head><body>",
    );
    h.push_str(&format!(
        "<h1>image-ci</h1><p>pid {} since {} &middot; backend {} &middot; IMGAPI {} &middot; config {}</p>",
        esc(&d["pid"].to_string()),
        esc(d["started"].as_str().unwrap_or("")),
        esc(d["backend"].as_str().unwrap_or("")),
        esc(d["imgapi"].as_str().unwrap_or("")),
        esc(d["config"].as_str().unwrap_or(""))
    ));
    h.push_str(
        "<h2>Schedules</h2><table><tr><th>name</th><th>cron</th><th>targets</th><th>next</th></tr>",
    );
    for s in d["schedules"].as_array().into_iter().flatten() {
        let targets: Vec<&str> = s["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        h.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(s["name"].as_str().unwrap_or("")),
            esc(s["cron"].as_str().unwrap_or("")),
            esc(&if targets.is_empty() {
                "all".to_string()
            } else {
                targets.join(", ")
            }),
            esc(s["next"].as_str().unwrap_or("-"))
        ));
    }
    h.push_str("</table>");
    if let Some(c) = v["current"].as_object() {
        h.push_str(&format!(
            "<p class=\"running\">running: {} ({}), stage {} {} since {}</p>",
            esc(c["run"].as_str().unwrap_or("")),
            esc(c["trigger"].as_str().unwrap_or("")),
            esc(c["stage"].as_str().unwrap_or("-")),
            esc(c["target"].as_str().unwrap_or("")),
            esc(c["stage_since"].as_str().unwrap_or("-"))
        ));
    }
    h.push_str("<h2>Targets</h2><table><tr><th>target</th><th>last outcome</th><th>when</th><th>runs</th><th>shipped</th><th>last shipped</th></tr>");
    for t in v["targets"].as_array().into_iter().flatten() {
        let o = t["last_outcome"].as_str().unwrap_or("");
        h.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            esc(t["target"].as_str().unwrap_or("")),
            esc(o),
            esc(o),
            esc(t["last_time"].as_str().unwrap_or("")),
            t["runs"],
            t["shipped"],
            esc(t["last_shipped_version"].as_str().unwrap_or("-")),
            esc(t["last_shipped_uuid"].as_str().unwrap_or(""))
        ));
    }
    h.push_str("</table><h2>Runs</h2>");
    for r in v["runs"].as_array().into_iter().flatten() {
        let st = r["status"].as_str().unwrap_or("");
        h.push_str(&format!(
            "<h3>{} <span class=\"{}\">{}</span></h3><p>{} &middot; {} &middot; started {} &middot; finished {}{}</p>",
            esc(r["id"].as_str().unwrap_or("")),
            esc(st),
            esc(st),
            esc(r["trigger"].as_str().unwrap_or("")),
            esc(r["place"].as_str().unwrap_or("")),
            esc(r["started"].as_str().unwrap_or("")),
            esc(r["finished"].as_str().unwrap_or("-")),
            r["error"]
                .as_str()
                .map(|e| format!(" &middot; {}", esc(e)))
                .unwrap_or_default()
        ));
        h.push_str("<table><tr><th>stage</th><th>target</th><th>status</th><th>time</th><th>bytes</th><th>detail</th></tr>");
        for s in r["stages"].as_array().into_iter().flatten() {
            let st = s["status"].as_str().unwrap_or("");
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(s["stage"].as_str().unwrap_or("")),
                esc(s["target"].as_str().unwrap_or("-")),
                esc(st),
                esc(st),
                secs(s["ms"].as_u64()),
                s["bytes"].as_u64().map(crate::stages::human_bytes).unwrap_or_else(|| "-".into()),
                esc(s["detail"].as_str().unwrap_or(""))
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// The status as text (`image-ci status`).
pub fn status_text(v: &Value) -> String {
    let d = &v["service"];
    let mut s = format!(
        "image-ci serve pid {} since {} ({} backend, IMGAPI {}){}\n",
        d["pid"],
        d["started"].as_str().unwrap_or("?"),
        d["backend"].as_str().unwrap_or("?"),
        d["imgapi"].as_str().unwrap_or("?"),
        if d["stopping"] == true {
            ", stopping"
        } else {
            ""
        }
    );
    for x in d["schedules"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "schedule {:<12} {:<16} next {}\n",
            x["name"].as_str().unwrap_or(""),
            x["cron"].as_str().unwrap_or(""),
            x["next"].as_str().unwrap_or("-")
        ));
    }
    match v["current"].as_object() {
        Some(c) => s.push_str(&format!(
            "running {} ({}): stage {}{} since {}\n",
            c["run"].as_str().unwrap_or(""),
            c["trigger"].as_str().unwrap_or(""),
            c["stage"].as_str().unwrap_or("-"),
            c["target"]
                .as_str()
                .map(|t| format!(" of {t}"))
                .unwrap_or_default(),
            c["stage_since"].as_str().unwrap_or("-")
        )),
        None => s.push_str("idle\n"),
    }
    s.push_str(&format!(
        "{:<28} {:<12} {:<20} {:<20} {:>9}\n",
        "RUN", "STATUS", "TRIGGER", "STARTED", "TIME"
    ));
    let at = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    for r in v["runs"].as_array().into_iter().flatten().take(10) {
        let took = match (at(&r["started"]), at(&r["finished"])) {
            (Some(a), Some(b)) => Some((b - a).num_milliseconds().max(0) as u64),
            _ => None,
        };
        let started: String = r["started"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(19)
            .collect();
        s.push_str(&format!(
            "{:<28} {:<12} {:<20} {:<20} {:>9}\n",
            r["id"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["trigger"].as_str().unwrap_or(""),
            started,
            secs(took)
        ));
    }
    let targets: Vec<crate::report::TargetSummary> =
        serde_json::from_value(v["targets"].clone()).unwrap_or_default();
    if !targets.is_empty() {
        s.push_str(&crate::report::render_summary(&targets));
    }
    s
}

async fn get_status(State(d): State<Shared>) -> Response {
    let snap = d.lock().map(|g| g.clone()).map_err(|_| ());
    let Ok(snap) = snap else {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "state lock").into_response();
    };
    match tokio::task::spawn_blocking(move || status_json(&snap)).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn get_page(State(d): State<Shared>) -> Response {
    let snap = d.lock().map(|g| g.clone()).map_err(|_| ());
    let Ok(snap) = snap else {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "state lock").into_response();
    };
    match tokio::task::spawn_blocking(move || status_html(&status_json(&snap))).await {
        Ok(h) => Html(h).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The status endpoint, on its own thread and runtime; dropping it stops
/// it.
pub struct StatusServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatusServer {
    pub fn start(listen: &str, d: Shared) -> Result<StatusServer> {
        let (ready_tx, ready_rx) =
            std::sync::mpsc::channel::<std::result::Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listen = listen.to_string();
        let thread = std::thread::Builder::new()
            .name("image-ci-status".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let l = match tokio::net::TcpListener::bind(&listen).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("cannot listen on {listen}: {e}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(l.local_addr().map_err(|e| e.to_string()));
                    let app = Router::new()
                        .route("/", get(get_page))
                        .route("/status", get(get_status))
                        .with_state(d);
                    let _ = axum::serve(l, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .map_err(|e| Error::Invalid(format!("cannot start the status endpoint: {e}")))?;
        let addr = ready_rx
            .recv()
            .map_err(|_| Error::Invalid("the status endpoint did not start".into()))?
            .map_err(Error::Config)?;
        Ok(StatusServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn schedule_states(tt: &Timetable, now: DateTime<Utc>) -> Vec<ScheduleState> {
    tt.entries
        .iter()
        .map(|(s, c)| ScheduleState {
            name: s.name.clone(),
            cron: s.cron.clone(),
            targets: s.targets.clone(),
            every: s.every.clone(),
            next: crate::config::next_fire(c, now).map(rfc3339),
        })
        .collect()
}

/// Sleep until `t` or until cancelled; true when `t` came.
fn sleep_until(t: DateTime<Utc>, cancel: &Cancel) -> bool {
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let left = t - Utc::now();
        if left <= chrono::Duration::zero() {
            return true;
        }
        let step = left
            .to_std()
            .unwrap_or_default()
            .min(Duration::from_millis(100));
        std::thread::sleep(step);
    }
}

/// One scheduled run.
fn run_schedule(cfg: &FileConfig, s: &crate::config::Schedule, cancel: &Cancel) -> Result<()> {
    let commit = cfg.sync_checkout()?;
    let mut p = cfg.pipeline()?;
    p.cancel = cancel.clone();
    p.trigger = format!("schedule:{}", s.name);
    p.progress = Mode::Quiet;
    let opts = RunOptions {
        targets: s.targets.clone(),
        due_every: match &s.every {
            Some(e) => Some(crate::cadence::parse_interval(e).map_err(Error::Config)?),
            None => None,
        },
    };
    tracing::info!(
        schedule = s.name.as_str(),
        commit = commit.as_str(),
        "scheduled run starting"
    );
    let r = pipeline::run(&mut p, &opts)?;
    let shipped: Vec<&str> = r.shipped().iter().map(|t| t.target.as_str()).collect();
    let failed: Vec<String> = r
        .targets
        .iter()
        .filter(|t| !t.outcome.is_shipped())
        .map(|t| format!("{} {}", t.target, t.outcome))
        .collect();
    tracing::info!(
        schedule = s.name.as_str(),
        run = r.run.as_str(),
        status = r.status.as_str(),
        shipped = ?shipped,
        not_shipped = ?failed,
        zone = r.zone_action.as_deref(),
        "scheduled run ended"
    );
    Ok(())
}

/// Run the service until `cancel` (SIGTERM). Bad configuration fails
/// before anything runs (one line), as does a status address that cannot
/// be bound.
pub fn serve(opts: &ServeOptions, cancel: &Cancel) -> Result<()> {
    let cfg = FileConfig::load(&opts.config)?;
    if cfg.schedule.is_empty() {
        return Err(Error::Config(format!(
            "{}: no [[schedule]]: nothing to run",
            opts.config.display()
        )));
    }
    cfg.validate(&opts.config, &[])?;
    let tt = Timetable::new(&cfg.schedule)?;
    let state = cfg.state_path();
    {
        let store = Store::open(&state)?;
        // a run the last service left behind (it was killed)
        let lock = pipeline::lock_path(&state);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|e| Error::io(&lock, e))?;
        let mut free = fd_lock::RwLock::new(f);
        let held = free.try_write();
        if held.is_ok() {
            for id in store.mark_interrupted()? {
                tracing::warn!(
                    run = id.as_str(),
                    "marked interrupted: the service stopped during it"
                );
            }
        }
        drop(held);
    }
    let listen = opts.listen.clone().unwrap_or_else(|| cfg.listen.clone());
    let shared: Shared = Arc::new(Mutex::new(DaemonState {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        started: rfc3339(Utc::now()),
        config: opts.config.clone(),
        state: state.clone(),
        listen: listen.clone(),
        backend: cfg.backend.clone(),
        imgapi: cfg.imgapi.clone(),
        schedules: schedule_states(&tt, Utc::now()),
        running: None,
        stopping: false,
        last_error: None,
    }));
    let server = StatusServer::start(&listen, shared.clone())?;
    if let Ok(mut g) = shared.lock() {
        g.listen = server.addr.to_string();
    }
    tracing::info!(listen = %server.addr, config = %opts.config.display(), schedules = tt.entries.len(), "image-ci serve started");
    eprintln!("image-ci: serving status on http://{}/status", server.addr);
    let mut after = Utc::now();
    while !cancel.is_cancelled() {
        let next = tt.next(after);
        if let Ok(mut g) = shared.lock() {
            g.schedules = schedule_states(&tt, after);
        }
        let Some(when) = next.iter().filter_map(|(_, t)| *t).min() else {
            tracing::warn!("no schedule fires again");
            while !cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(100));
            }
            break;
        };
        if !sleep_until(when, cancel) {
            break;
        }
        let due: Vec<&crate::config::Schedule> = tt
            .entries
            .iter()
            .zip(next.iter())
            .filter(|(_, (_, t))| *t == Some(when))
            .map(|((s, _), _)| s)
            .collect();
        for s in due {
            if cancel.is_cancelled() {
                break;
            }
            if let Ok(mut g) = shared.lock() {
                g.running = Some(s.name.clone());
            }
            if let Err(e) = run_schedule(&cfg, s, cancel) {
                tracing::error!(schedule = s.name.as_str(), error = %e, "scheduled run failed to run");
                if let Ok(mut g) = shared.lock() {
                    g.last_error = Some(format!("{} at {}: {e}", s.name, rfc3339(Utc::now())));
                }
            }
            if let Ok(mut g) = shared.lock() {
                g.running = None;
            }
        }
        // firings that passed during the run are skipped
        after = Utc::now().max(when);
    }
    if let Ok(mut g) = shared.lock() {
        g.stopping = true;
    }
    tracing::info!("image-ci serve stopped");
    drop(server);
    Ok(())
}

/// `GET <url>/status` (the `image-ci status` command).
pub fn fetch_status(url: &str) -> Result<Value> {
    let u = format!("{}/status", url.trim_end_matches('/'));
    crate::ship::block_on(async {
        let r = crate::ship::http()
            .reqwest()
            .get(&u)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| Error::Api(format!("GET {u}: {e}")))?;
        let st = r.status();
        let body = r
            .bytes()
            .await
            .map_err(|e| Error::Api(format!("GET {u}: {e}")))?;
        if !st.is_success() {
            return Err(Error::Api(format!("GET {u}: HTTP {st}")));
        }
        serde_json::from_slice(&body).map_err(|e| Error::Api(format!("GET {u}: not JSON: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn state(dir: &Path) -> DaemonState {
        DaemonState {
            pid: 7,
            version: "0".into(),
            started: "2026-11-25T00:00:00Z".into(),
            config: "/etc/image-ci.toml".into(),
            state: dir.join("state.db"),
            listen: "127.0.0.1:0".into(),
            backend: "node".into(),
            imgapi: "http://imgapi".into(),
            schedules: vec![ScheduleState {
                name: "nightly".into(),
                cron: "0 3 * * *".into(),
                targets: vec!["debian-12".into()],
                every: None,
                next: Some("2026-11-26T03:00:00Z".into()),
            }],
            running: None,
            stopping: false,
            last_error: None,
        }
    }

    #[test]
    fn status_from_the_state_database() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("state.db")).unwrap();
        s.begin_run("r1", "2026-11-25T03:00:00Z", "schedule:nightly", "node")
            .unwrap();
        s.stage_start("r1", None, "build", "2026-11-25T03:00:05Z")
            .unwrap();
        let v = status_json(&state(d.path()));
        assert_eq!(v["service"]["pid"], 7);
        assert_eq!(v["current"]["run"], "r1");
        assert_eq!(v["current"]["stage"], "build");
        assert_eq!(v["runs"][0]["stages"][0]["stage"], "build");
        let html = status_html(&v);
        assert!(html.contains("<code>0 3 * * *</code>"), "{html}");
        assert!(html.contains("running: r1"), "{html}");
        let t = status_text(&v);
        assert!(
            t.contains("running r1 (schedule:nightly): stage build"),
            "{t}"
        );
        // no database yet: an empty status, not an error
        let v = status_json(&state(&d.path().join("none")));
        assert_eq!(v["runs"], json!([]));
        assert!(esc("<a&\"").contains("&lt;a&amp;&quot;"));
    }
}
