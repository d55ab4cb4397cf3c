//! Reports: one run (what was built, each check, what shipped) and the
//! history summarised per target.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::boot::BootDetails;
use crate::buildlog::Failure;
use crate::cadence::DueState;
use crate::commands::Requirement;
use crate::history::{Outcome, Record};
use crate::stages::human_bytes;
use crate::state::StageRecord;
use crate::verify::Check;

/// One target in a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetResult {
    pub target: String,
    pub outcome: Outcome,
    pub version: Option<String>,
    pub uuid: Option<String>,
    pub sha1: Option<String>,
    pub size: Option<u64>,
    /// Why it did not ship, or the boot test's detail when it did.
    pub detail: String,
    pub checks: Vec<Check>,
    /// What the boot test showed: accelerator, console log and tail.
    pub boot: Option<BootDetails>,
}

impl TargetResult {
    pub fn record(&self, run: &str, time: &str) -> Record {
        Record {
            time: time.into(),
            run: run.into(),
            target: self.target.clone(),
            outcome: self.outcome,
            version: self.version.clone(),
            uuid: self.uuid.clone(),
            sha1: self.sha1.clone(),
            size: self.size,
            detail: self.detail.clone(),
        }
    }
}

/// One run of the pipeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub run: String,
    /// What started it (`cli`, `schedule:<name>`).
    pub trigger: String,
    /// `ok`, `failed`, `interrupted`.
    pub status: String,
    pub started: String,
    pub finished: String,
    /// `node` (build_all.sh in a zone), `triton` (a machine made through
    /// triton-gate) or `local`.
    pub build: String,
    /// The zone (or machine and its compute node), or `local`.
    pub zone: String,
    /// The checkout (inside the zone for a zone build).
    pub checkout: String,
    /// Its commit, when the run provisioned it.
    pub commit: Option<String>,
    /// The boot test (`qemu`, `bhyve`).
    pub boot_test: String,
    /// Targets asked for (after `--due`).
    pub selected: Vec<String>,
    /// With `--due`: targets skipped because they are not due.
    pub not_due: Vec<DueState>,
    pub preflight: Vec<Requirement>,
    pub preflight_error: Option<String>,
    pub build_command: Option<String>,
    pub build_exit: Option<i32>,
    pub build_log: Option<PathBuf>,
    pub unattributed_failures: Vec<Failure>,
    pub targets: Vec<TargetResult>,
    /// Every stage: what, for which target, how long, how many bytes.
    pub stages: Vec<StageRecord>,
    /// What happened to a zone made for the run (deleted, kept).
    pub zone_action: Option<String>,
}

impl RunReport {
    /// Everything selected is in IMGAPI, shipped now or before (vacuously
    /// true when nothing was due).
    pub fn ok(&self) -> bool {
        self.preflight_error.is_none()
            && self.status != "interrupted"
            && self.targets.iter().all(|t| t.outcome.is_shipped())
    }

    /// Targets whose image is in IMGAPI (shipped now or before).
    pub fn shipped(&self) -> Vec<&TargetResult> {
        self.targets
            .iter()
            .filter(|t| t.outcome.is_shipped())
            .collect()
    }
}

/// The run as text.
pub fn render_run(r: &RunReport) -> String {
    let mut s = format!(
        "run {} {} {} checkout {} boot test {}\n",
        r.run,
        if r.build == "local" { "build" } else { "zone" },
        r.zone,
        r.checkout,
        r.boot_test
    );
    for d in &r.not_due {
        s.push_str(&format!(
            "  {:<16} not due (last shipped {}, next due {})\n",
            d.target,
            d.last_shipped.as_deref().unwrap_or("never"),
            d.next_due.as_deref().unwrap_or("now")
        ));
    }
    if r.selected.is_empty() {
        s.push_str("nothing to build\n");
        return s;
    }
    match &r.preflight_error {
        Some(e) => s.push_str(&format!("preflight FAILED: {e}\n")),
        None => s.push_str(&format!(
            "preflight ok ({} requirements)\n",
            r.preflight.len()
        )),
    }
    if let Some(c) = &r.commit {
        s.push_str(&format!("checkout at {c}\n"));
    }
    if let Some(c) = &r.build_command {
        s.push_str(&format!(
            "build: {c} (exit {})\n",
            r.build_exit.map_or("?".into(), |c| c.to_string())
        ));
    }
    for f in &r.unattributed_failures {
        s.push_str(&format!(
            "warning: build log line {}: {} (no target named before it)\n",
            f.line_no, f.line
        ));
    }
    for t in &r.targets {
        s.push_str(&format!(
            "{:<16} {:<16} {} {}\n",
            t.target,
            t.outcome,
            t.version.as_deref().unwrap_or("-"),
            t.uuid.as_deref().unwrap_or("-")
        ));
        if !t.detail.is_empty() {
            s.push_str(&format!("    {}\n", t.detail));
        }
        if let Some(b) = &t.boot {
            if let Some(p) = &b.console_log {
                s.push_str(&format!(
                    "    console ({}): {}\n",
                    b.accel.as_deref().unwrap_or("?"),
                    p.display()
                ));
            }
            if t.outcome == Outcome::BootFailed {
                for l in &b.console_tail {
                    s.push_str(&format!("    | {l}\n"));
                }
            }
        }
    }
    if !r.stages.is_empty() {
        s.push_str(&render_stages(&r.stages));
    }
    if let Some(z) = &r.zone_action {
        s.push_str(&format!("{z}\n"));
    }
    let n = r.shipped().len();
    s.push_str(&format!(
        "{n} of {} shipped{}\n",
        r.targets.len(),
        if r.status == "interrupted" {
            "; INTERRUPTED"
        } else if r.ok() {
            ""
        } else {
            "; FAILED"
        }
    ));
    s
}

/// Stages as a table: stage, target, status, time, bytes.
pub fn render_stages(stages: &[StageRecord]) -> String {
    let mut s = format!(
        "  {:<12} {:<16} {:<11} {:>9} {:>10}\n",
        "STAGE", "TARGET", "STATUS", "TIME", "SIZE"
    );
    for st in stages {
        s.push_str(&format!(
            "  {:<12} {:<16} {:<11} {:>9} {:>10}\n",
            st.stage,
            st.target.as_deref().unwrap_or("-"),
            st.status,
            st.ms
                .map(|m| format!("{:.1} s", m as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            st.bytes.map(human_bytes).unwrap_or_else(|| "-".into())
        ));
    }
    s
}

/// The history per target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetSummary {
    pub target: String,
    pub runs: usize,
    pub shipped: usize,
    pub last_outcome: Outcome,
    pub last_time: String,
    pub last_shipped_version: Option<String>,
    pub last_shipped_uuid: Option<String>,
    pub last_shipped_time: Option<String>,
}

/// Summarise the history (records in file order).
pub fn summarize(history: &[Record]) -> Vec<TargetSummary> {
    let mut m: BTreeMap<&str, TargetSummary> = BTreeMap::new();
    for r in history {
        let e = m.entry(&r.target).or_insert_with(|| TargetSummary {
            target: r.target.clone(),
            runs: 0,
            shipped: 0,
            last_outcome: r.outcome,
            last_time: r.time.clone(),
            last_shipped_version: None,
            last_shipped_uuid: None,
            last_shipped_time: None,
        });
        e.runs += 1;
        e.last_outcome = r.outcome;
        e.last_time = r.time.clone();
        if r.outcome.is_shipped() {
            e.shipped += 1;
            e.last_shipped_version = r.version.clone();
            e.last_shipped_uuid = r.uuid.clone();
            e.last_shipped_time = Some(r.time.clone());
        }
    }
    m.into_values().collect()
}

/// The summary as a table.
pub fn render_summary(s: &[TargetSummary]) -> String {
    let mut out = format!(
        "{:<16} {:>4} {:>7} {:<16} {:<20} {:<8} {}\n",
        "TARGET", "RUNS", "SHIPPED", "LAST", "LAST_TIME", "VERSION", "UUID"
    );
    for t in s {
        out.push_str(&format!(
            "{:<16} {:>4} {:>7} {:<16} {:<20} {:<8} {}\n",
            t.target,
            t.runs,
            t.shipped,
            t.last_outcome,
            t.last_time,
            t.last_shipped_version.as_deref().unwrap_or("-"),
            t.last_shipped_uuid.as_deref().unwrap_or("-")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: &str, time: &str, o: Outcome, v: &str) -> Record {
        Record {
            time: time.into(),
            run: "r".into(),
            target: t.into(),
            outcome: o,
            version: Some(v.into()),
            uuid: (o == Outcome::Shipped).then(|| format!("uuid-{t}-{v}")),
            sha1: None,
            size: None,
            detail: String::new(),
        }
    }

    #[test]
    fn run_text() {
        let mut r = RunReport {
            run: "r1".into(),
            trigger: "cli".into(),
            status: "failed".into(),
            commit: None,
            stages: vec![StageRecord {
                stage: "build".into(),
                target: None,
                started: "s".into(),
                finished: Some("f".into()),
                ms: Some(61_500),
                status: "ok".into(),
                bytes: Some(2048),
                detail: String::new(),
            }],
            zone_action: Some("zone z deleted".into()),
            started: "s".into(),
            finished: "f".into(),
            build: "node".into(),
            zone: "z".into(),
            checkout: "c".into(),
            boot_test: "qemu".into(),
            selected: vec!["a".into(), "b".into()],
            not_due: vec![],
            preflight: vec![],
            preflight_error: None,
            build_command: Some("zlogin z x".into()),
            build_exit: Some(0),
            build_log: None,
            unattributed_failures: vec![],
            targets: vec![
                TargetResult {
                    target: "a".into(),
                    outcome: Outcome::Shipped,
                    version: Some("20261125".into()),
                    uuid: Some("u1".into()),
                    sha1: None,
                    size: None,
                    detail: "shipped".into(),
                    checks: vec![],
                    boot: None,
                },
                TargetResult {
                    target: "b".into(),
                    outcome: Outcome::VerifyFailed,
                    version: Some("20261125".into()),
                    uuid: None,
                    sha1: None,
                    size: None,
                    detail: "sha1 matches the manifest: file x".into(),
                    checks: vec![],
                    boot: None,
                },
                TargetResult {
                    target: "c".into(),
                    outcome: Outcome::BootFailed,
                    version: Some("20261125".into()),
                    uuid: None,
                    sha1: None,
                    size: None,
                    detail: "no /login:/ on the console within 5 s under TCG".into(),
                    checks: vec![],
                    boot: Some(BootDetails {
                        accel: Some("tcg".into()),
                        console_log: Some("/l/r1.c.console.log".into()),
                        console_tail: vec!["Booting from Hard Disk...".into()],
                        ..Default::default()
                    }),
                },
            ],
        };
        assert!(!r.ok());
        let t = render_run(&r);
        assert!(
            t.contains("b                verify_failed    20261125 -\n"),
            "{t}"
        );
        assert!(
            t.starts_with("run r1 zone z checkout c boot test qemu\n"),
            "{t}"
        );
        assert!(
            t.contains("    console (tcg): /l/r1.c.console.log\n    | Booting from Hard Disk...\n"),
            "{t}"
        );
        assert!(
            t.ends_with("zone z deleted\n1 of 3 shipped; FAILED\n"),
            "{t}"
        );
        assert!(
            t.contains("  build        -                ok             61.5 s    2.0 KiB\n"),
            "{t}"
        );
        r.targets.truncate(1);
        assert!(r.ok());
        r.selected.clear();
        r.targets.clear();
        assert!(render_run(&r).ends_with("nothing to build\n"));
    }

    #[test]
    fn summary_keeps_last_outcome_and_last_ship() {
        let h = vec![
            rec("b", "2026-11-24T00:00:00Z", Outcome::Shipped, "20261124"),
            rec(
                "a",
                "2026-11-24T00:00:00Z",
                Outcome::BuildFailed,
                "20261124",
            ),
            rec(
                "b",
                "2026-11-25T00:00:00Z",
                Outcome::VerifyFailed,
                "20261125",
            ),
        ];
        let s = summarize(&h);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].target, "a");
        assert_eq!(s[0].shipped, 0);
        assert_eq!(s[1].runs, 2);
        assert_eq!(s[1].last_outcome, Outcome::VerifyFailed);
        assert_eq!(s[1].last_shipped_version.as_deref(), Some("20261124"));
        let t = render_summary(&s);
        assert_eq!(t.lines().count(), 3);
        assert!(t.lines().nth(2).unwrap().contains("verify_failed"));
    }
}
