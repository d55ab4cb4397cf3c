//! The run history: one record per target per run (what happened to it,
//! and when). Records live in the state database ([`crate::state`]); this
//! module holds their types and reads the JSON-lines history file earlier
//! versions wrote (one record a line), which the state database imports
//! once on first start. A torn last line (a crash mid-append) is ignored,
//! any other bad line is an error.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a target's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Shipped,
    /// IMGAPI already had this image (name and version) active: nothing
    /// was shipped twice.
    AlreadyShipped,
    PreflightFailed,
    BuildFailed,
    VerifyFailed,
    BootFailed,
    ShipFailed,
    /// The run was stopped (SIGTERM to the service) before this target
    /// was done.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Shipped => "shipped",
            Outcome::AlreadyShipped => "already_shipped",
            Outcome::PreflightFailed => "preflight_failed",
            Outcome::BuildFailed => "build_failed",
            Outcome::VerifyFailed => "verify_failed",
            Outcome::BootFailed => "boot_failed",
            Outcome::ShipFailed => "ship_failed",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The outcome named `s` ([`Outcome::as_str`]).
    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Shipped,
            Outcome::AlreadyShipped,
            Outcome::PreflightFailed,
            Outcome::BuildFailed,
            Outcome::VerifyFailed,
            Outcome::BootFailed,
            Outcome::ShipFailed,
            Outcome::Interrupted,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// The image is in IMGAPI, active (shipped now or before).
    pub fn is_shipped(self) -> bool {
        matches!(self, Outcome::Shipped | Outcome::AlreadyShipped)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One record of the history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// RFC 3339 UTC, when the outcome was decided.
    pub time: String,
    pub run: String,
    pub target: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default)]
    pub detail: String,
}

impl Record {
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

fn herr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::History {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Parse history text. A torn final line (no newline, not JSON) is skipped.
pub fn parse(text: &str) -> std::result::Result<Vec<Record>, String> {
    let mut out = Vec::new();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

/// Read the history (empty when the file does not exist).
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(herr(path, e)),
    };
    parse(&text).map_err(|m| herr(path, m))
}

/// The JSON-lines history file earlier versions kept under a node root
/// (imported into the state database once).
pub fn default_path(root: &Path) -> PathBuf {
    root.join("var/db/image-ci/history.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_json_lines_history() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("history.jsonl");
        assert!(read(&p).unwrap().is_empty());
        std::fs::write(
            &p,
            "{\"time\":\"2026-11-25T12:00:00Z\",\"run\":\"r1\",\"target\":\"a\",\"outcome\":\"shipped\",\"version\":\"20261125\"}\n\
             {\"time\":\"2026-11-25T12:00:01Z\",\"run\":\"r1\",\"target\":\"b\",\"outcome\":\"build_failed\",\"detail\":\"x\"}\n\
             {\"time\":\"2026",
        )
        .unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.len(), 2, "the torn last line is skipped");
        assert_eq!(r[1].outcome, Outcome::BuildFailed);
        assert_eq!(r[0].version.as_deref(), Some("20261125"));
    }

    #[test]
    fn bad_line_in_the_middle_is_an_error() {
        assert!(parse("{}\n").unwrap_err().starts_with("line 1"));
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn outcome_names_round_trip() {
        for o in [
            Outcome::Shipped,
            Outcome::AlreadyShipped,
            Outcome::Interrupted,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert!(Outcome::AlreadyShipped.is_shipped() && !Outcome::ShipFailed.is_shipped());
        assert_eq!(Outcome::parse("nope"), None);
    }
}
