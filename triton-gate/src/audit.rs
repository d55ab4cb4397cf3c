//! The audit log: one JSON object a line per decision, appended with
//! `O_APPEND` under an exclusive file lock and `fsync`ed before the answer
//! is sent, so a decision the client saw is on disk. Nothing here rewrites
//! or truncates the file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::brand::BrandSource;

/// What can go wrong with the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {path}, line {line}: {msg}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        msg: String,
    },
}

/// allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC, milliseconds.
    pub time: String,
    /// The request id sent back in `Request-Id`.
    pub req_id: String,
    /// CloudAPI action: `CreateMachine`, `GetPackage`, `ListPackages`, ...
    pub action: String,
    /// The account in the URL.
    pub account_uuid: String,
    pub account_login: String,
    /// The key's owner (differs from the account for `--act-as`).
    pub caller_login: String,
    /// Sub-user login, when the key was a sub-user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_user: Option<String>,
    /// The caller is an operator (CloudAPI's `isAdmin()`).
    pub operator: bool,
    /// The target account is an operator.
    pub account_operator: bool,
    /// What was asked: method, path, image, package, brand param, name...
    pub request: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_source: Option<BrandSource>,
    pub decision: Decision,
    /// The real reason (may say more than the client was told).
    pub reason: String,
    /// The error the client got, `{code, message}`, on deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_uuid: Option<String>,
}

/// An append-only audit log file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        move |source| AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Append one record: a single `write` of one line under an exclusive
    /// lock, then `fsync`.
    pub fn append(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_string(rec).map_err(|e| AuditError::Corrupt {
            path: self.path.clone(),
            line: 0,
            msg: e.to_string(),
        })?;
        line.push('\n');
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(self.io())?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(self.io())?;
        let mut lock = fd_lock::RwLock::new(f);
        let mut g = lock.write().map_err(self.io())?;
        g.write_all(line.as_bytes()).map_err(self.io())?;
        g.sync_all().map_err(self.io())?;
        Ok(())
    }

    /// Every record, oldest first. A missing file is an empty log.
    pub fn read(&self) -> Result<Vec<AuditRecord>, AuditError> {
        read(&self.path)
    }
}

/// Read an audit log. Every line must be a record; a final line without a
/// newline (a torn write) is reported as corrupt too.
pub fn read(path: &Path) -> Result<Vec<AuditRecord>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuditError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |line: usize, msg: String| AuditError::Corrupt {
        path: path.to_path_buf(),
        line,
        msg,
    };
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(corrupt(
            text.lines().count(),
            "no newline at end (torn write)".into(),
        ));
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| corrupt(i + 1, e.to_string())))
        .collect()
}

/// `2026-11-26T01:02:03.456Z`
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(i: usize, d: Decision) -> AuditRecord {
        AuditRecord {
            time: now(),
            req_id: format!("r{i}"),
            action: "CreateMachine".into(),
            account_uuid: "u".into(),
            account_login: "ops".into(),
            caller_login: "ops".into(),
            caller_user: None,
            operator: d == Decision::Allow,
            account_operator: true,
            request: json!({"package": "p", "n": i}),
            brand: Some("builder".into()),
            brand_source: Some(BrandSource::Package),
            decision: d,
            reason: "ok".into(),
            error: None,
            server_uuid: Some("s".into()),
            vm_uuid: None,
        }
    }

    #[test]
    fn append_and_read_back() {
        let t = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&t.path().join("sub/audit.log"));
        assert!(log.read().unwrap().is_empty());
        log.append(&rec(1, Decision::Allow)).unwrap();
        log.append(&rec(2, Decision::Deny)).unwrap();
        let all = log.read().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], rec_with_time(&all[0], 1, Decision::Allow));
        assert_eq!(all[1].decision, Decision::Deny);
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["decision"], "allow");
        assert_eq!(first["brand_source"], "package");
        assert!(first.get("vm_uuid").is_none());
    }

    fn rec_with_time(got: &AuditRecord, i: usize, d: Decision) -> AuditRecord {
        let mut r = rec(i, d);
        r.time = got.time.clone();
        r
    }

    #[test]
    fn concurrent_appends_keep_whole_lines() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("audit.log");
        let hs: Vec<_> = (0..8)
            .map(|k| {
                let p = path.clone();
                std::thread::spawn(move || {
                    let log = AuditLog::new(&p);
                    for i in 0..25 {
                        log.append(&rec(k * 100 + i, Decision::Deny)).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let all = read(&path).unwrap();
        assert_eq!(all.len(), 200);
        let mut ids: Vec<String> = all.iter().map(|r| r.req_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
    }

    #[test]
    fn corrupt_and_torn_lines_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("audit.log");
        let log = AuditLog::new(&path);
        log.append(&rec(1, Decision::Allow)).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"time\":").unwrap();
        match read(&path) {
            Err(AuditError::Corrupt { line, msg, .. }) => {
                assert_eq!(line, 2);
                assert!(msg.contains("torn"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        f.write_all(b"1}\n").unwrap();
        match read(&path) {
            Err(AuditError::Corrupt { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }
}
