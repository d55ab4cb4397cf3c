//! The pipeline: (due?) -> preflight -> build (in the zone, or locally) ->
//! per target: collect -> verify (and write the raw disk) -> boot test ->
//! ship -> history. A target ships only after every earlier stage passed
//! for it, the boot test included: an image that did not boot to its
//! marker is never shipped. Every target's outcome is appended to the
//! history as soon as it is known.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::artifact::{version_for, Artifact};
use crate::boot::{BootRequest, BootTest};
use crate::build::{Build, NodeBuild};
use crate::cadence;
use crate::checkout::Checkout;
use crate::commands::Tools;
use crate::error::{Error, Result};
use crate::history::{self, Outcome};
use crate::imgapi::Imgapi;
use crate::report::{RunReport, TargetResult};
use crate::verify::{self, Expect};

/// Where and how to run.
pub struct Config {
    /// How the targets are built (the zone's `build_all.sh`, or locally).
    pub build: Box<dyn Build>,
    pub imgapi: Imgapi,
    /// IMGAPI channel to ship into (the server's default when `None`).
    pub channel: Option<String>,
    pub history: PathBuf,
    /// Build logs go here as `<run>.log`, boot consoles as
    /// `<run>.<target>.console.log`.
    pub log_dir: PathBuf,
    pub boot: Box<dyn BootTest>,
    /// Verified images (and their raw disks) are copied here (per run)
    /// before they are boot tested and shipped.
    pub stage_dir: PathBuf,
    pub now: fn() -> DateTime<Utc>,
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
    /// A node build: `build_all.sh` in `zone` at `checkout`. Defaults: the
    /// server's default channel, build logs in `logs/` next to the
    /// history, the OS's default boot test ([`default_boot`]), the system
    /// clock.
    pub fn new(
        tools: Tools,
        zone: &str,
        checkout: &str,
        imgapi_url: &str,
        history: PathBuf,
    ) -> Config {
        let boot: Box<dyn BootTest> = if cfg!(target_os = "illumos") {
            // in the zone, through the node's own zlogin
            let mut b = crate::bhyve::Bhyve::new(zone);
            b.root = tools.root.clone();
            b.zlogin = tools.zlogin.clone();
            Box::new(b)
        } else {
            default_boot(zone)
        };
        Config::with_build(
            Box::new(NodeBuild {
                tools,
                zone: zone.into(),
                checkout: checkout.into(),
            }),
            boot,
            imgapi_url,
            history,
        )
    }

    /// Any build and boot test, the other defaults as [`Config::new`].
    pub fn with_build(
        build: Box<dyn Build>,
        boot: Box<dyn BootTest>,
        imgapi_url: &str,
        history: PathBuf,
    ) -> Config {
        Config {
            build,
            imgapi: Imgapi::new(imgapi_url),
            channel: None,
            log_dir: history
                .parent()
                .map(|p| p.join("logs"))
                .unwrap_or_else(|| "logs".into()),
            stage_dir: history
                .parent()
                .map(|p| p.join("stage"))
                .unwrap_or_else(|| "stage".into()),
            history,
            boot,
            now: Utc::now,
        }
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

/// The checkout as image-ci sees it.
pub fn checkout_dir(cfg: &Config) -> Result<PathBuf> {
    cfg.build.checkout_dir()
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

/// Run the pipeline once. `Err` only when nothing could be attempted
/// (unreadable checkout, unknown target, history not writable, a tool that
/// cannot be started); target failures are outcomes in the report.
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<RunReport> {
    let started = (cfg.now)();
    let run_id = format!(
        "{}-{}",
        started.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let dir = cfg.build.checkout_dir()?;
    let co = Checkout::load(&dir)?;
    let mut selected: Vec<String> = co
        .select(&opts.targets)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    // One run at a time per history: a second run would build the same
    // targets in the same checkout.
    let lock_path = cfg.history.with_extension("lock");
    if let Some(d) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let lf = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    let mut lock = fd_lock::RwLock::new(lf);
    let _held = lock.try_write().map_err(|e| Error::History {
        path: lock_path.clone(),
        msg: format!("another image-ci run holds the lock ({e})"),
    })?;
    let mut report = RunReport {
        run: run_id.clone(),
        started: rfc3339(started),
        finished: String::new(),
        build: cfg.build.kind().into(),
        zone: cfg.build.place(),
        checkout: cfg.build.checkout_name(),
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
    };
    if let Some(every) = opts.due_every {
        let h = history::read(&cfg.history)?;
        let states = cadence::due(&selected, &h, started, every);
        selected = states
            .iter()
            .filter(|d| d.due)
            .map(|d| d.target.clone())
            .collect();
        report.not_due = states.into_iter().filter(|d| !d.due).collect();
    }
    report.selected = selected.clone();
    let record = |t: &TargetResult| -> Result<()> {
        history::append(&cfg.history, &[t.record(&run_id, &rfc3339((cfg.now)()))])
    };
    let result = |t: &str, outcome: Outcome| TargetResult {
        target: t.into(),
        outcome,
        version: None,
        uuid: None,
        sha1: None,
        size: None,
        detail: String::new(),
        checks: vec![],
        boot: None,
    };
    if selected.is_empty() {
        report.finished = rfc3339((cfg.now)());
        return Ok(report);
    }

    // Preflight: nothing is built where it cannot be built.
    match cfg.build.preflight() {
        Ok(reqs) => report.preflight = reqs,
        Err(e @ Error::Spawn { .. }) => return Err(e),
        Err(e) => {
            report.preflight_error = Some(e.to_string());
            for t in &selected {
                let mut r = result(t, Outcome::PreflightFailed);
                r.detail = e.to_string();
                record(&r)?;
                report.targets.push(r);
            }
            report.finished = rfc3339((cfg.now)());
            return Ok(report);
        }
    }

    // Build.
    let build_start = (cfg.now)();
    let built = cfg.build.build(&co, &selected)?;
    let build_end = (cfg.now)();
    report.build_command = Some(built.command.clone());
    report.build_exit = built.exit;
    std::fs::create_dir_all(&cfg.log_dir).map_err(|e| Error::io(&cfg.log_dir, e))?;
    let log_path = cfg.log_dir.join(format!("{run_id}.log"));
    std::fs::write(&log_path, &built.log).map_err(|e| Error::io(&log_path, e))?;
    report.build_log = Some(log_path);
    report.unattributed_failures = built.unattributed.clone();
    let out = cfg.build.output()?;

    for t in &selected {
        let mut r = result(t, Outcome::BuildFailed);
        // Collect.
        if let Some(f) = built.failed.get(t) {
            r.detail = format!("build log line {}: {}", f.line_no, f.line);
            record(&r)?;
            report.targets.push(r);
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
            record(&r)?;
            report.targets.push(r);
            continue;
        };
        r.version = Some(a.version.clone());
        // Verify (one pass: copy, sha1, size, inflate, stream checks, raw disk).
        let stage_dir = cfg.stage_dir.join(&run_id);
        let stage = stage_dir.join(crate::artifact::image_file(t, &a.version));
        let disk = stage_dir.join(format!("{t}-{}.raw", a.version));
        // The staged copies go when this target is done, whatever happens.
        let _cleanup = RemoveOnDrop(vec![stage.clone(), disk.clone()]);
        let _interrupted = [
            crate::cleanup::on_interrupt(crate::cleanup::Action::Remove(stage.clone())),
            crate::cleanup::on_interrupt(crate::cleanup::Action::Remove(disk.clone())),
        ];
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
        let (true, Some(m), Some(sha1), Some(image)) = (
            v.ok(),
            v.manifest.as_ref(),
            v.sha1.as_ref(),
            v.staged.as_ref(),
        ) else {
            r.outcome = Outcome::VerifyFailed;
            r.detail = v.failures();
            record(&r)?;
            report.targets.push(r);
            continue;
        };
        // Boot test: the staged copy, from the raw disk verification wrote.
        let console = console_log_path(&cfg.log_dir, &run_id, t);
        let boot = cfg.boot.boot(&BootRequest {
            image,
            manifest: m,
            disk: v.disk.as_deref(),
            console_log: Some(&console),
        });
        let _ = std::fs::remove_file(&disk);
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
                record(&r)?;
                report.targets.push(r);
                continue;
            }
        }
        // Ship: the file is re-checked against the verified sha1 by IMGAPI.
        match cfg.imgapi.ship(m, image, sha1, cfg.channel.as_deref()) {
            Ok(img) => {
                r.outcome = Outcome::Shipped;
                r.detail = format!(
                    "shipped to {} as {} ({})",
                    cfg.imgapi.url,
                    img["uuid"].as_str().unwrap_or("?"),
                    img["state"].as_str().unwrap_or("?")
                );
            }
            Err(e) => {
                r.outcome = Outcome::ShipFailed;
                r.detail = e.to_string();
            }
        }
        record(&r)?;
        report.targets.push(r);
    }
    report.finished = rfc3339((cfg.now)());
    Ok(report)
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
}
