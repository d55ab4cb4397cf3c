//! The pipeline: (due?) -> preflight -> build in the zone -> per target:
//! collect -> verify -> boot test -> ship -> history. A target ships only
//! after every earlier stage passed for it; every target's outcome is
//! appended to the history as soon as it is known.

use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::artifact::{version_for, Artifact};
use crate::boot::BootTest;
use crate::cadence;
use crate::checkout::Checkout;
use crate::commands::{self, Tools};
use crate::error::{Error, Result};
use crate::history::{self, Outcome};
use crate::imgapi::Imgapi;
use crate::report::{RunReport, TargetResult};
use crate::verify::{self, Expect};

/// Where and how to run.
pub struct Config {
    pub tools: Tools,
    /// The builder zone (UUID or name).
    pub zone: String,
    /// The checkout's path inside the zone (relative paths are relative to
    /// the zone root, as on the sim).
    pub checkout: String,
    pub imgapi: Imgapi,
    /// IMGAPI channel to ship into (the server's default when `None`).
    pub channel: Option<String>,
    pub history: PathBuf,
    /// Build logs go here as `<run>.log`.
    pub log_dir: PathBuf,
    pub boot: Box<dyn BootTest>,
    /// Verified images are copied here (per run) before they are boot
    /// tested and shipped.
    pub stage_dir: PathBuf,
    pub now: fn() -> DateTime<Utc>,
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(d) = self.0.parent() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Config {
    /// Defaults: the server's default channel, build logs in `logs/` next
    /// to the history, the `disk-signature` boot test, the system clock.
    pub fn new(
        tools: Tools,
        zone: &str,
        checkout: &str,
        imgapi_url: &str,
        history: PathBuf,
    ) -> Config {
        Config {
            tools,
            zone: zone.into(),
            checkout: checkout.into(),
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
            boot: Box::new(crate::boot::DiskSignature),
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

/// The checkout as the global zone sees it.
pub fn checkout_dir(cfg: &Config) -> Result<PathBuf> {
    let zr = commands::zone_root(&cfg.tools.root, &cfg.zone)?;
    Ok(commands::in_zone(&zr, &cfg.checkout))
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
    let zone_root = commands::zone_root(&cfg.tools.root, &cfg.zone)?;
    let dir = commands::in_zone(&zone_root, &cfg.checkout);
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
        zone: cfg.zone.clone(),
        checkout: cfg.checkout.clone(),
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
    if selected.is_empty() {
        report.finished = rfc3339((cfg.now)());
        return Ok(report);
    }

    // Preflight: nothing is built in a zone that cannot build.
    match commands::preflight(&cfg.tools, &cfg.zone) {
        Ok(reqs) => report.preflight = reqs,
        Err(e @ Error::Spawn { .. }) => return Err(e),
        Err(e) => {
            report.preflight_error = Some(e.to_string());
            for t in &selected {
                let r = TargetResult {
                    target: t.clone(),
                    outcome: Outcome::PreflightFailed,
                    version: None,
                    uuid: None,
                    sha1: None,
                    size: None,
                    detail: e.to_string(),
                    checks: vec![],
                };
                record(&r)?;
                report.targets.push(r);
            }
            report.finished = rfc3339((cfg.now)());
            return Ok(report);
        }
    }

    // Build.
    let build_start = (cfg.now)();
    let mut cmd = commands::build_command(&cfg.tools, &cfg.zone, &cfg.checkout, &selected);
    report.build_command = Some(commands::display(&cmd));
    let out = commands::run(&mut cmd)?;
    let build_end = (cfg.now)();
    report.build_exit = out.status.code();
    let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    std::fs::create_dir_all(&cfg.log_dir).map_err(|e| Error::io(&cfg.log_dir, e))?;
    let log_path = cfg.log_dir.join(format!("{run_id}.log"));
    std::fs::write(&log_path, &log).map_err(|e| Error::io(&log_path, e))?;
    report.build_log = Some(log_path);
    let summary = crate::buildlog::parse(&log, &selected);
    report.unattributed_failures = summary.unattributed.clone();

    for t in &selected {
        let mut r = TargetResult {
            target: t.clone(),
            outcome: Outcome::BuildFailed,
            version: None,
            uuid: None,
            sha1: None,
            size: None,
            detail: String::new(),
            checks: vec![],
        };
        // Collect.
        if let Some(f) = summary.failed.get(t) {
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
            .map(|d| Artifact::at(&dir, t, &version_for(d)))
            .find(|a| present(&a.image) || present(&a.manifest));
        let Some(a) = found else {
            r.detail = format!(
                "no artifact in {} (build exit {}{})",
                dir.join(crate::artifact::output_dir(t)).display(),
                out.status.code().map_or("?".into(), |c| c.to_string()),
                if out.status.success() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        crate::error::last_line(&String::from_utf8_lossy(&out.stderr))
                    )
                }
            );
            record(&r)?;
            report.targets.push(r);
            continue;
        };
        r.version = Some(a.version.clone());
        // Verify.
        let stage = cfg
            .stage_dir
            .join(&run_id)
            .join(crate::artifact::image_file(t, &a.version));
        let v = verify::verify(
            &zone_root,
            &a,
            &Expect {
                target: t.clone(),
                version: a.version.clone(),
                not_before: Some(build_start),
            },
            &stage,
        );
        // The staged copy goes when this target is done, whatever happens.
        let _cleanup = RemoveOnDrop(stage.clone());
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
        // Boot test.
        let boot = cfg.boot.boot(image, m);
        r.checks.push(verify::Check {
            name: format!("boot test ({})", cfg.boot.name()),
            ok: boot.is_ok(),
            detail: match &boot {
                Ok(d) => d.clone(),
                Err(e) => e.to_string(),
            },
        });
        if let Err(e) = boot {
            r.outcome = Outcome::BootFailed;
            r.detail = e.to_string();
            record(&r)?;
            report.targets.push(r);
            continue;
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
