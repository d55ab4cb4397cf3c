//! The pipeline: (due?) -> the zone (made for the run, or one that
//! exists) -> check -> provision -> build (output streamed to the run's
//! log) -> per target: collect -> verify (and write the raw disk) -> boot
//! test -> ship (resumable) -> the zone deleted (or kept). A target ships
//! only after every earlier stage passed for it, the boot test included.
//! Every stage is timed and recorded in the state database as it happens,
//! and every target's outcome as soon as it is known.
//!
//! A run can be stopped ([`Config::cancel`], SIGTERM): a running build is
//! stopped, a boot test's VM is killed, a ship in progress finishes; the
//! targets not done are `interrupted`, the zone is deleted as usual and
//! the run is recorded `interrupted`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::artifact::{version_for, Artifact};
use crate::boot::{BootRequest, BootTest};
use crate::build::{Build, NodeBuild};
use crate::cadence;
use crate::checkout::Checkout;
use crate::commands::Tools;
use crate::error::{Error, Result};
use crate::history::{Outcome, Record};
use crate::progress::Mode;
use crate::report::{RunReport, TargetResult};
use crate::ship::Shipper;
use crate::stages::Stages;
use crate::state::{ShipRow, Store};
use crate::stream::{Cancel, LogSink};
use crate::verify::{self, Expect};

/// When a zone made for the run is kept instead of deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepZone {
    /// Always deleted.
    #[default]
    Never,
    /// Kept when the run failed (for debugging).
    OnFailure,
    /// Always kept.
    Always,
}

impl std::str::FromStr for KeepZone {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<KeepZone, String> {
        match s {
            "never" => Ok(KeepZone::Never),
            "on-failure" => Ok(KeepZone::OnFailure),
            "always" => Ok(KeepZone::Always),
            _ => Err(format!(
                "invalid keep-zone {s:?} (never, on-failure or always)"
            )),
        }
    }
}

/// Where and how to run.
pub struct Config {
    /// How the targets are built (a zone's `build_all.sh`, or locally).
    pub build: Box<dyn Build>,
    /// The IMGAPI images ship to (and the channels).
    pub shipper: Shipper,
    /// The state database (runs, stages, history, ship progress).
    pub state: PathBuf,
    /// Build logs go here as `<run>.log`, boot consoles as
    /// `<run>.<target>.console.log`.
    pub log_dir: PathBuf,
    pub boot: Box<dyn BootTest>,
    /// Verified images (and their raw disks) are copied here (per run)
    /// before they are boot tested and shipped.
    pub stage_dir: PathBuf,
    pub now: fn() -> DateTime<Utc>,
    /// When a zone made for the run is kept.
    pub keep_zone: KeepZone,
    /// Stops the run (SIGTERM).
    pub cancel: Cancel,
    /// Progress display.
    pub progress: Mode,
    /// Build output to the terminal too.
    pub verbose: bool,
    /// What started the run (`cli`, `schedule:<name>`).
    pub trigger: String,
}

/// The boot test this OS uses by default (`qemu` on Linux, `bhyve` on
/// illumos, in `zone`).
pub fn default_boot(zone: &str) -> Box<dyn BootTest> {
    if cfg!(target_os = "illumos") {
        Box::new(crate::bhyve::Bhyve::new(zone))
    } else {
        Box::new(crate::qemu::Qemu::default())
    }
}

impl Config {
    /// A node build: `build_all.sh` in the existing `zone` at `checkout`.
    /// Defaults: the server's default channel, build logs in `logs/` next
    /// to the state database, the OS's default boot test
    /// ([`default_boot`]), the system clock.
    pub fn new(
        tools: Tools,
        zone: &str,
        checkout: &str,
        imgapi_url: &str,
        state: PathBuf,
    ) -> Result<Config> {
        let boot: Box<dyn BootTest> = if cfg!(target_os = "illumos") {
            // in the zone, through the node's own zlogin
            let mut b = crate::bhyve::Bhyve::new(zone);
            b.root = tools.root.clone();
            b.zlogin = tools.program("zlogin");
            Box::new(b)
        } else {
            default_boot(zone)
        };
        Config::with_build(
            Box::new(NodeBuild::existing(tools, zone, checkout)),
            boot,
            imgapi_url,
            state,
        )
    }

    /// Any build and boot test, the other defaults as [`Config::new`].
    pub fn with_build(
        build: Box<dyn Build>,
        boot: Box<dyn BootTest>,
        imgapi_url: &str,
        state: PathBuf,
    ) -> Result<Config> {
        let dir = state
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Config {
            build,
            shipper: Shipper::new(imgapi_url, &[])?,
            log_dir: dir.join("logs"),
            stage_dir: dir.join("stage"),
            state,
            boot,
            now: Utc::now,
            keep_zone: KeepZone::Never,
            cancel: Cancel::new(),
            progress: Mode::Quiet,
            verbose: false,
            trigger: "cli".into(),
        })
    }
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Targets (all when empty).
    pub targets: Vec<String>,
    /// Only targets not shipped within this interval.
    pub due_every: Option<Duration>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Dates a build running from `a` to `b` may stamp its artifacts with.
fn build_dates(a: DateTime<Utc>, b: DateTime<Utc>) -> Vec<NaiveDate> {
    let mut d = a.date_naive();
    let mut v = vec![d];
    while d < b.date_naive() {
        d = d.succ_opt().unwrap_or(d);
        v.push(d);
    }
    v
}

/// The console log of one target's boot, next to the run's build log.
pub fn console_log_path(log_dir: &Path, run: &str, target: &str) -> PathBuf {
    log_dir.join(format!("{run}.{target}.console.log"))
}

/// The lock that keeps runs on one state database one at a time.
pub fn lock_path(state: &Path) -> PathBuf {
    state.with_extension("lock")
}

/// A new run id: `<UTC time>-<pid>-<n>`.
pub fn new_run_id(t: DateTime<Utc>) -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "{}-{}-{}",
        t.format("%Y%m%dT%H%M%SZ"),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes files (and then their directory, if empty) when dropped.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
        if let Some(d) = self.0.first().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn empty_result(t: &str, outcome: Outcome) -> TargetResult {
    TargetResult {
        target: t.into(),
        outcome,
        version: None,
        uuid: None,
        sha1: None,
        size: None,
        detail: String::new(),
        checks: vec![],
        boot: None,
    }
}

/// Run the pipeline once. `Err` only when nothing could be attempted
/// (unreadable checkout, unknown target, a configuration that cannot work,
/// state not writable, another run holding the lock, a tool that cannot
/// be started); target failures are outcomes in the report.
pub fn run(cfg: &mut Config, opts: &RunOptions) -> Result<RunReport> {
    let started = (cfg.now)();
    let run_id = new_run_id(started);
    let dir = cfg.build.checkout_dir()?;
    let co = Checkout::load(&dir)?;
    let mut selected: Vec<String> = co
        .select(&opts.targets)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    // One run at a time per state: a second run would build the same
    // targets in the same checkout.
    let lock_file = lock_path(&cfg.state);
    if let Some(d) = lock_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let lf = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_file)
        .map_err(|e| Error::io(&lock_file, e))?;
    let mut lock = fd_lock::RwLock::new(lf);
    let _held = lock.try_write().map_err(|e| Error::State {
        path: lock_file.clone(),
        msg: format!("another image-ci run holds the lock ({e})"),
    })?;
    let store = Store::open(&cfg.state)?;
    for id in store.mark_interrupted()? {
        tracing::warn!(run = id.as_str(), "an earlier run was interrupted");
    }
    // staged copies an interrupted run left (no other run is going on)
    if let Ok(rd) = std::fs::read_dir(&cfg.stage_dir) {
        for e in rd.flatten() {
            let _ = crate::cleanup::remove_tree(&e.path());
        }
    }
    let mut report = RunReport {
        run: run_id.clone(),
        trigger: cfg.trigger.clone(),
        status: "running".into(),
        started: rfc3339(started),
        finished: String::new(),
        build: cfg.build.kind().into(),
        zone: cfg.build.place(),
        checkout: cfg.build.checkout_name(),
        commit: None,
        boot_test: cfg.boot.name().into(),
        selected: vec![],
        not_due: vec![],
        preflight: vec![],
        preflight_error: None,
        build_command: None,
        build_exit: None,
        build_log: None,
        unattributed_failures: vec![],
        targets: vec![],
        stages: vec![],
        zone_action: None,
    };
    if let Some(every) = opts.due_every {
        let h = store.records()?;
        let states = cadence::due(&selected, &h, started, every);
        selected = states
            .iter()
            .filter(|d| d.due)
            .map(|d| d.target.clone())
            .collect();
        report.not_due = states.into_iter().filter(|d| !d.due).collect();
    }
    report.selected = selected.clone();
    if selected.is_empty() {
        report.finished = rfc3339((cfg.now)());
        report.status = "ok".into();
        return Ok(report);
    }
    // What can be checked without making anything, before the run counts.
    cfg.build.check()?;
    store.begin_run(&run_id, &report.started, &cfg.trigger, cfg.build.kind())?;
    tracing::info!(run = run_id.as_str(), targets = ?selected, build = cfg.build.kind(), "run started");
    cfg.build.name_for_run(&run_id);
    let mut stages = Stages::new(&run_id, Some(&store), cfg.progress);
    let body = run_body(
        cfg,
        &co,
        &selected,
        &run_id,
        &store,
        &mut stages,
        &mut report,
    );
    // The zone made for the run goes, whatever happened (unless kept).
    let failed = body.is_err() || !report.ok();
    let keep = match cfg.keep_zone {
        KeepZone::Always => true,
        KeepZone::OnFailure => failed,
        KeepZone::Never => false,
    };
    let finish = cfg.build.finish(keep, &mut stages);
    match &finish {
        Ok(a) => report.zone_action = a.clone(),
        Err(e) => report.zone_action = Some(format!("could not delete the zone: {e}")),
    }
    drop(stages);
    report.stages = store.stages(&run_id)?;
    report.finished = rfc3339((cfg.now)());
    let interrupted = cfg.cancel.is_cancelled() || matches!(body, Err(Error::Cancelled(_)));
    report.status = if interrupted {
        "interrupted"
    } else if body.is_ok() && report.ok() && finish.is_ok() {
        "ok"
    } else {
        "failed"
    }
    .into();
    let error = match (&body, &finish) {
        (Err(e), _) => Some(e.to_string()),
        (_, Err(e)) => Some(format!("zone: {e}")),
        _ => report.preflight_error.clone(),
    };
    store.finish_run(
        &run_id,
        &report.status,
        error.as_deref(),
        serde_json::to_value(&report).ok().as_ref(),
    )?;
    tracing::info!(
        run = run_id.as_str(),
        status = report.status.as_str(),
        "run ended"
    );
    match body {
        Err(e) if !matches!(e, Error::Cancelled(_)) => Err(e),
        _ => Ok(report),
    }
}

fn record(store: &Store, run: &str, r: &TargetResult, report: &mut RunReport) -> Result<()> {
    store.record(&r.record(run, &rfc3339(Utc::now())))?;
    report.targets.push(r.clone());
    Ok(())
}

/// Everything between the lock and the zone's deletion.
fn run_body(
    cfg: &mut Config,
    co: &Checkout,
    selected: &[String],
    run_id: &str,
    store: &Store,
    stages: &mut Stages,
    report: &mut RunReport,
) -> Result<()> {
    let log_path = cfg.log_dir.join(format!("{run_id}.log"));
    let mut log = LogSink::to_file(&log_path, cfg.verbose)?;
    report.build_log = Some(log_path);
    let interrupted_rest = |report: &mut RunReport, why: &str| -> Result<()> {
        let done: Vec<String> = report.targets.iter().map(|t| t.target.clone()).collect();
        for t in selected.iter().filter(|t| !done.contains(t)) {
            let mut r = empty_result(t, Outcome::Interrupted);
            r.detail = why.to_string();
            record(store, run_id, &r, report)?;
        }
        Ok(())
    };

    // The zone: made, waited for, checked, provisioned.
    let prepared = cfg.build.prepare(stages, &mut log, &cfg.cancel);
    report.zone = cfg.build.place();
    store.set_place(run_id, &report.zone)?;
    match prepared {
        Ok(p) => {
            report.preflight = p.requirements;
            report.commit = p.commit;
        }
        Err(e @ Error::Spawn { .. }) => return Err(e),
        Err(Error::Cancelled(why)) => {
            interrupted_rest(report, &why)?;
            return Err(Error::Cancelled(why));
        }
        Err(e) => {
            report.preflight_error = Some(e.to_string());
            for t in selected {
                let mut r = empty_result(t, Outcome::PreflightFailed);
                r.detail = e.to_string();
                record(store, run_id, &r, report)?;
            }
            return Ok(());
        }
    }
    if let Some(z) = cfg.build.zone() {
        cfg.boot.set_zone(&z);
    }

    // Build.
    let build_start = (cfg.now)();
    let build = &cfg.build;
    let cancel = cfg.cancel.clone();
    stages.start(None, "build");
    let before = log.bytes();
    let built = build.build(co, selected, &mut log, &cancel);
    let status = crate::stages::status_of(&built);
    let detail = match &built {
        Ok(b) => format!("exit {}", b.exit.map_or("-".to_string(), |c| c.to_string())),
        Err(e) => e.to_string(),
    };
    stages.end(status, Some(log.bytes() - before), &detail);
    let built = match built {
        Ok(b) => b,
        Err(Error::Cancelled(why)) => {
            interrupted_rest(report, &why)?;
            return Err(Error::Cancelled(why));
        }
        Err(e) => return Err(e),
    };
    let build_end = (cfg.now)();
    report.build_command = Some(built.command.clone());
    report.build_exit = built.exit;
    report.unattributed_failures = built.unattributed.clone();
    let out = cfg.build.output()?;

    for t in selected {
        if cfg.cancel.is_cancelled() {
            interrupted_rest(report, "stopped before this target was verified")?;
            return Err(Error::Cancelled("stopped between targets".into()));
        }
        let mut r = empty_result(t, Outcome::BuildFailed);
        // Collect.
        if let Some(f) = built.failed.get(t) {
            r.detail = format!("build log line {}: {}", f.line_no, f.line);
            record(store, run_id, &r, report)?;
            continue;
        }
        // symlink_metadata: a link is found (and then refused by verify)
        let present = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok();
        let found = build_dates(build_start, build_end)
            .into_iter()
            .rev()
            .map(|d| Artifact::at(&out.dir, t, &version_for(d)))
            .find(|a| present(&a.image) || present(&a.manifest));
        let Some(a) = found else {
            r.detail = format!(
                "no artifact in {} (build exit {}{})",
                out.dir.join(crate::artifact::output_dir(t)).display(),
                built.exit.map_or("?".into(), |c| c.to_string()),
                built
                    .error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            record(store, run_id, &r, report)?;
            continue;
        };
        r.version = Some(a.version.clone());
        // Verify (one pass: copy, sha1, size, inflate, stream checks, raw disk).
        let stage_dir = cfg.stage_dir.join(run_id);
        let stage = stage_dir.join(crate::artifact::image_file(t, &a.version));
        let disk = stage_dir.join(format!("{t}-{}.raw", a.version));
        // The staged copies go when this target is done, whatever happens.
        let _cleanup = RemoveOnDrop(vec![stage.clone(), disk.clone()]);
        let _interrupted = [
            crate::cleanup::on_interrupt(crate::cleanup::Action::Remove(stage.clone())),
            crate::cleanup::on_interrupt(crate::cleanup::Action::Remove(disk.clone())),
        ];
        stages.start(Some(t), "verify");
        let v = verify::verify_with(
            &out.anchor,
            &a,
            &Expect {
                target: t.clone(),
                version: a.version.clone(),
                not_before: Some(build_start),
            },
            &stage,
            Some(&disk),
        );
        r.checks = v.checks.clone();
        r.sha1 = v.sha1.clone();
        r.size = v.size;
        r.uuid = v
            .manifest
            .as_ref()
            .and_then(|m| m["uuid"].as_str())
            .map(str::to_string);
        stages.end(
            if v.ok() { "ok" } else { "failed" },
            v.size,
            &if v.ok() { String::new() } else { v.failures() },
        );
        let _ = store.record_artifact(
            run_id,
            t,
            &a.version,
            &a.image,
            &a.manifest,
            v.sha1.as_deref(),
            v.size,
            r.uuid.as_deref(),
        );
        let (true, Some(m), Some(sha1), Some(image), Some(size)) = (
            v.ok(),
            v.manifest.as_ref(),
            v.sha1.as_ref(),
            v.staged.as_ref(),
            v.size,
        ) else {
            r.outcome = Outcome::VerifyFailed;
            r.detail = v.failures();
            record(store, run_id, &r, report)?;
            continue;
        };
        // Boot test: the staged copy, from the raw disk verification wrote.
        let console = console_log_path(&cfg.log_dir, run_id, t);
        stages.start(Some(t), "boot");
        let boot = cfg.boot.boot(&BootRequest {
            image,
            manifest: m,
            disk: v.disk.as_deref(),
            console_log: Some(&console),
        });
        let _ = std::fs::remove_file(&disk);
        if cfg.cancel.is_cancelled() && boot.is_err() {
            stages.end("interrupted", None, "the VM was stopped");
            interrupted_rest(report, "stopped during its boot test")?;
            return Err(Error::Cancelled("stopped during a boot test".into()));
        }
        stages.end(
            if boot.is_ok() { "ok" } else { "failed" },
            None,
            &match &boot {
                Ok(b) => b.detail.clone(),
                Err(e) => e.to_string(),
            },
        );
        r.checks.push(verify::Check {
            name: format!("boot test ({})", cfg.boot.name()),
            ok: boot.is_ok(),
            detail: match &boot {
                Ok(b) => b.detail.clone(),
                Err(e) => e.to_string(),
            },
        });
        match boot {
            Ok(b) => r.boot = Some(b.details),
            Err(e) => {
                r.outcome = Outcome::BootFailed;
                r.detail = e.to_string();
                r.boot = Some(*e.details);
                record(store, run_id, &r, report)?;
                continue;
            }
        }
        // Ship: looked up first, resumed, never twice; the file is
        // re-checked against the verified sha1 by IMGAPI.
        stages.start(Some(t), "ship");
        let name = m["name"].as_str().unwrap_or(t).to_string();
        let version = a.version.clone();
        let mut on_step = |step: &str, uuid: &str| {
            let _ = store.ship_step(&ShipRow {
                name: name.clone(),
                version: version.clone(),
                image_uuid: uuid.to_string(),
                step: step.to_string(),
                sha1: Some(sha1.clone()),
                size: Some(size),
                run_id: Some(run_id.to_string()),
                updated: rfc3339(Utc::now()),
            });
        };
        let shipped = crate::ship::block_on(cfg.shipper.ship(m, image, sha1, size, &mut on_step));
        match shipped {
            Ok(s) => {
                stages.end("ok", Some(s.uploaded), &format!("{:?} {}", s.how, s.uuid));
                r.uuid = Some(s.uuid.clone());
                let url = cfg.shipper.url();
                match s.how {
                    crate::ship::How::AlreadyActive => {
                        r.outcome = Outcome::AlreadyShipped;
                        r.detail = format!(
                            "already shipped: {url} has {name} {version} as {} ({}); nothing shipped",
                            s.uuid, s.state
                        );
                    }
                    how => {
                        r.outcome = Outcome::Shipped;
                        r.detail = format!(
                            "shipped to {url} as {} ({}){}",
                            s.uuid,
                            s.state,
                            if how == crate::ship::How::Resumed {
                                ", finishing an interrupted ship"
                            } else {
                                ""
                            }
                        );
                    }
                }
                if !s.removed.is_empty() {
                    r.detail
                        .push_str(&format!("; deleted unactivated {}", s.removed.join(", ")));
                }
            }
            Err(e) => {
                stages.end("failed", None, &e.to_string());
                r.outcome = Outcome::ShipFailed;
                r.detail = e.to_string();
            }
        }
        record(store, run_id, &r, report)?;
    }
    Ok(())
}

/// The history as records (oldest first) from the state database at
/// `state` (none when it does not exist yet).
pub fn history(state: &Path) -> Result<Vec<Record>> {
    if !state.exists() {
        return Ok(vec![]);
    }
    Store::open(state)?.records()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_across_midnight() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let d = build_dates(t("2026-11-25T23:00:00Z"), t("2026-11-26T01:00:00Z"));
        assert_eq!(d.len(), 2);
        assert_eq!(version_for(d[1]), "20261126");
        assert_eq!(
            build_dates(t("2026-11-25T01:00:00Z"), t("2026-11-25T02:00:00Z")).len(),
            1
        );
    }

    #[test]
    fn keep_zone_and_run_ids() {
        assert_eq!(
            "on-failure".parse::<KeepZone>().unwrap(),
            KeepZone::OnFailure
        );
        assert!("sometimes".parse::<KeepZone>().is_err());
        let t = DateTime::parse_from_rfc3339("2026-11-25T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (a, b) = (new_run_id(t), new_run_id(t));
        assert!(a.starts_with("20261125T030000Z-"));
        assert_ne!(a, b);
    }
}
