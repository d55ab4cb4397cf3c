//! A run's stages as they happen: each one timed, with the bytes it
//! handled, recorded in the run's report and the state database, shown
//! as a progress line (an indicatif spinner on a terminal, plain lines
//! otherwise) and logged through `tracing`.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::progress::{Mode, Progress, Step};
use crate::state::{StageRecord, Store};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct Open {
    db_id: Option<i64>,
    since: Instant,
    rec: StageRecord,
    step: Option<Step>,
}

/// The stages of one run.
pub struct Stages<'a> {
    run: String,
    store: Option<&'a Store>,
    mode: Mode,
    /// Every stage that ended, in order.
    pub records: Vec<StageRecord>,
    open: Option<Open>,
}

/// How a stage ended, from what it returned.
pub fn status_of<T>(r: &Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Error::Cancelled(_)) => "interrupted",
        Err(_) => "failed",
    }
}

impl<'a> Stages<'a> {
    pub fn new(run: &str, store: Option<&'a Store>, mode: Mode) -> Stages<'a> {
        Stages {
            run: run.into(),
            store,
            mode,
            records: vec![],
            open: None,
        }
    }

    /// Start a stage (ending one still open as `ok`).
    pub fn start(&mut self, target: Option<&str>, stage: &str) {
        if self.open.is_some() {
            self.end("ok", None, "");
        }
        let started = now();
        let db_id = self.store.and_then(|s| {
            s.stage_start(&self.run, target, stage, &started)
                .map_err(|e| tracing::warn!(error = %e, "cannot record a stage"))
                .ok()
        });
        let step = (self.mode != Mode::Quiet)
            .then(|| Progress::new(self.mode, target.unwrap_or("run")).step(stage, None));
        tracing::info!(run = self.run.as_str(), stage, target, "stage started");
        self.open = Some(Open {
            db_id,
            since: Instant::now(),
            rec: StageRecord {
                stage: stage.into(),
                target: target.map(str::to_string),
                started,
                finished: None,
                ms: None,
                status: "running".into(),
                bytes: None,
                detail: String::new(),
            },
            step,
        });
    }

    /// End the open stage with `status` (`ok`, `failed`, `interrupted`,
    /// `skipped`).
    pub fn end(&mut self, status: &str, bytes: Option<u64>, detail: &str) {
        let Some(mut o) = self.open.take() else {
            return;
        };
        let ms = o.since.elapsed().as_millis() as u64;
        o.rec.finished = Some(now());
        o.rec.ms = Some(ms);
        o.rec.status = status.into();
        o.rec.bytes = bytes;
        o.rec.detail = detail.replace('\n', " ");
        if let (Some(s), Some(id)) = (self.store, o.db_id) {
            if let Err(e) = s.stage_end(id, &o.rec) {
                tracing::warn!(error = %e, "cannot record a stage");
            }
        }
        if let Some(step) = o.step.take() {
            let mut note = status.to_string();
            if let Some(b) = bytes {
                note.push_str(&format!(", {}", human_bytes(b)));
            }
            if !detail.is_empty() && status != "ok" {
                let d: String = detail.chars().take(120).collect();
                note.push_str(&format!(": {d}"));
            }
            step.finish(&note);
        }
        tracing::info!(
            run = self.run.as_str(),
            stage = o.rec.stage.as_str(),
            target = o.rec.target.as_deref(),
            status,
            ms,
            bytes,
            "stage ended"
        );
        self.records.push(o.rec);
    }

    /// Run `f` as a stage: ended `ok`, `failed` (with the error) or
    /// `interrupted`; `bytes` of what it returned.
    pub fn run<T>(
        &mut self,
        target: Option<&str>,
        stage: &str,
        bytes: impl Fn(&T) -> Option<u64>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.start(target, stage);
        let r = f();
        let b = r.as_ref().ok().and_then(&bytes);
        let detail = match &r {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        self.end(status_of(&r), b, &detail);
        r
    }

    /// The stage open now, if any.
    pub fn current(&self) -> Option<&StageRecord> {
        self.open.as_ref().map(|o| &o.rec)
    }
}

impl Drop for Stages<'_> {
    fn drop(&mut self) {
        if self.open.is_some() {
            self.end("interrupted", None, "the run ended inside this stage");
        }
    }
}

/// `1.5 MiB`, `310 B`.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_timed_and_recorded() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("state.db")).unwrap();
        s.begin_run("r", "2026-11-25T00:00:00Z", "cli", "node")
            .unwrap();
        let mut st = Stages::new("r", Some(&s), Mode::Quiet);
        let v = st
            .run(None, "build", |n: &u64| Some(*n), || Ok(5u64))
            .unwrap();
        assert_eq!(v, 5);
        let e = st.run(
            Some("debian-12"),
            "verify",
            |_: &()| None,
            || Err(Error::Invalid("sha1 differs".into())),
        );
        assert!(e.is_err());
        st.start(Some("debian-12"), "ship");
        drop(st);
        let recs = s.stages("r").unwrap();
        let got: Vec<(&str, &str)> = recs
            .iter()
            .map(|r| (r.stage.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("build", "ok"),
                ("verify", "failed"),
                ("ship", "interrupted")
            ]
        );
        assert_eq!(recs[0].bytes, Some(5));
        assert_eq!(recs[1].detail, "sha1 differs");
        assert!(recs.iter().all(|r| r.ms.is_some()));
    }

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(human_bytes(310), "310 B");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
    }
}
