//! Run history: append-only JSON lines, one record per target per run.
//! Appends take an exclusive lock on the file and fsync before returning;
//! a torn last line (a crash mid-append) is ignored on read, any other bad
//! line is an error.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a target's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Shipped,
    PreflightFailed,
    BuildFailed,
    VerifyFailed,
    BootFailed,
    ShipFailed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Shipped => "shipped",
            Outcome::PreflightFailed => "preflight_failed",
            Outcome::BuildFailed => "build_failed",
            Outcome::VerifyFailed => "verify_failed",
            Outcome::BootFailed => "boot_failed",
            Outcome::ShipFailed => "ship_failed",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One line of the history.
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

/// Append records (one line each) under an exclusive lock, then fsync.
pub fn append(path: &Path, records: &[Record]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).map_err(|e| herr(path, e))?);
        text.push('\n');
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(|e| herr(path, e))?;
    }
    let created = !path.exists();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| herr(path, e))?;
    let mut lock = fd_lock::RwLock::new(f);
    let mut g = lock.write().map_err(|e| herr(path, e))?;
    // A torn line left by a crash (we hold the lock: no writer is active)
    // is cut off, so it neither glues onto ours nor poisons later reads.
    let len = g.metadata().map_err(|e| herr(path, e))?.len();
    if len > 0 {
        let data = std::fs::read(path).map_err(|e| herr(path, e))?;
        if data.last() != Some(&b'\n') {
            let keep = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            g.set_len(keep as u64).map_err(|e| herr(path, e))?;
        }
    }
    g.write_all(text.as_bytes()).map_err(|e| herr(path, e))?;
    g.sync_all().map_err(|e| herr(path, e))?;
    drop(g);
    if created {
        if let Some(d) = dir {
            if let Ok(df) = std::fs::File::open(d) {
                let _ = df.sync_all();
            }
        }
    }
    Ok(())
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

/// The default history file under a node root.
pub fn default_path(root: &Path) -> PathBuf {
    root.join("var/db/image-ci/history.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(target: &str, outcome: Outcome) -> Record {
        Record {
            time: "2026-11-25T12:00:00Z".into(),
            run: "r1".into(),
            target: target.into(),
            outcome,
            version: Some("20261125".into()),
            uuid: None,
            sha1: None,
            size: Some(3),
            detail: String::new(),
        }
    }

    #[test]
    fn append_then_read_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/history.jsonl");
        assert!(read(&p).unwrap().is_empty());
        append(&p, &[rec("a", Outcome::Shipped)]).unwrap();
        append(
            &p,
            &[
                rec("b", Outcome::BuildFailed),
                rec("c", Outcome::VerifyFailed),
            ],
        )
        .unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].outcome, Outcome::BuildFailed);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.contains(r#""outcome":"build_failed""#));
    }

    #[test]
    fn torn_last_line_is_skipped_and_next_append_starts_fresh() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.jsonl");
        append(&p, &[rec("a", Outcome::Shipped)]).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"time\":\"2026").unwrap();
        assert_eq!(read(&p).unwrap().len(), 1);
        append(&p, &[rec("b", Outcome::Shipped)]).unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].target, "b");
        assert!(!std::fs::read_to_string(&p)
            .unwrap()
            .contains("{\"time\":\"2026\n"));
    }

    #[test]
    fn bad_line_in_the_middle_is_an_error() {
        assert!(parse("{}\n").unwrap_err().starts_with("line 1"));
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
