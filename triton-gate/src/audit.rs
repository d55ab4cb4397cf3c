//! The audit log: one JSON object a line per decision, appended with
//! `O_APPEND` under an exclusive file lock and `fsync`ed before the answer
//! is sent, so a decision the client saw is on disk. Nothing here rewrites
//! or truncates the file.
//!
//! A server hands its records to one writer thread, which group-commits:
//! it takes every record queued, writes them with one `write` under the
//! lock, `fsync`s once for the batch, then acknowledges each (so each is
//! still on disk before its answer is sent). The thread keeps the file
//! open between batches; before each batch it `stat`s the path and reopens
//! when the file was removed or renamed away (log rotation), creating the
//! directory only when the file is missing.
//!
//! Every refused request is recorded (who, what, status, reason), and so is
//! every decision that let builder through. Records have a bounded size:
//! large request fields are summarized (a count, a byte size and a SHA-256),
//! long strings are cut with their size and hash. Refusals of
//! unauthenticated requests are rate limited per source: the first
//! [`AuditLimits::unauthenticated_per_window`] of a window are written one
//! by one, the rest are counted and written as one summary record
//! (`action: "Refusals"`, `count`) when the window ends.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

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
    /// CloudAPI action: `CreateMachine`, `GetPackage`, `ListPackages`, ...;
    /// `Refusals` for a summary of unauthenticated refusals.
    pub action: String,
    /// The HTTP status the client got (0 on summaries).
    #[serde(default)]
    pub status: u16,
    /// The peer address the request came from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The signature was verified (the caller fields are proven).
    #[serde(default)]
    pub authenticated: bool,
    /// The key id the request claimed, when it was not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
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
    /// (large values summarized).
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
    /// How many refusals a summary record stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl AuditRecord {
    /// An empty record for `action`, stamped now.
    pub fn new(req_id: &str, action: &str, decision: Decision) -> AuditRecord {
        AuditRecord {
            time: now(),
            req_id: req_id.to_string(),
            action: action.to_string(),
            status: 0,
            source: String::new(),
            authenticated: false,
            key_id: None,
            account_uuid: String::new(),
            account_login: String::new(),
            caller_login: String::new(),
            caller_user: None,
            operator: false,
            account_operator: false,
            request: json!({}),
            brand: None,
            brand_source: None,
            decision,
            reason: String::new(),
            error: None,
            server_uuid: None,
            vm_uuid: None,
            count: None,
        }
    }

    /// `login`, `login/user`, or `-` when nobody was proven.
    pub fn caller(&self) -> String {
        if !self.authenticated || self.caller_login.is_empty() {
            return "-".into();
        }
        match &self.caller_user {
            Some(u) => format!("{}/{u}", self.caller_login),
            None => self.caller_login.clone(),
        }
    }
}

/// Size limits and the unauthenticated refusal rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLimits {
    /// Largest record, bytes (the line without its newline).
    pub max_record_bytes: usize,
    /// Unauthenticated refusals written one by one per source and window.
    pub unauthenticated_per_window: u32,
    /// The rate window.
    pub window: Duration,
}

impl Default for AuditLimits {
    fn default() -> AuditLimits {
        AuditLimits {
            max_record_bytes: 4096,
            unauthenticated_per_window: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// Longest string kept whole in a record.
const MAX_STRING: usize = 256;
/// Largest array or object (serialized) kept whole in a record.
const MAX_VALUE: usize = 512;

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A string cut to `max` bytes (on a character boundary) with its size and
/// hash, so the record stays small and the value stays identifiable.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.min(s.len()).saturating_sub(64).max(16).min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} bytes, sha256 {})",
        &s[..end],
        s.len(),
        &sha256_hex(s.as_bytes())[..16]
    )
}

/// A value with large parts summarized: long strings cut, arrays and
/// objects larger than a few hundred bytes replaced by
/// `{"count"|"keys": n, "bytes": b, "sha256": h}`. The top level of an
/// object is kept (its members are summarized one by one).
pub fn summarize(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.len() <= 64 => Value::Object(
            o.iter()
                .map(|(k, v)| (cut(k, 64), summarize_member(v)))
                .collect(),
        ),
        other => summarize_member(other),
    }
}

fn summarize_member(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(cut(s, MAX_STRING)),
        Value::Array(a) => {
            let text = v.to_string();
            if text.len() <= MAX_VALUE && a.len() <= 16 {
                Value::Array(a.iter().map(summarize_member).collect())
            } else {
                json!({"count": a.len(), "bytes": text.len(), "sha256": sha256_hex(text.as_bytes())})
            }
        }
        Value::Object(o) => {
            let text = v.to_string();
            if text.len() <= MAX_VALUE && o.len() <= 16 {
                Value::Object(
                    o.iter()
                        .map(|(k, v)| (cut(k, 64), summarize_member(v)))
                        .collect(),
                )
            } else {
                json!({"keys": o.len(), "bytes": text.len(), "sha256": sha256_hex(text.as_bytes())})
            }
        }
        other => other.clone(),
    }
}

/// Bring a record within `max` bytes: summarize its request and cut its
/// strings; as a last resort keep only the request's method and path.
pub fn bound(rec: &mut AuditRecord, max: usize) {
    bounded_json(rec, max);
}

/// [`bound`], and the record's JSON text (serialized once when it fits).
fn bounded_json(rec: &mut AuditRecord, max: usize) -> String {
    rec.request = summarize(&rec.request);
    rec.reason = cut(&rec.reason, 1024);
    rec.account_login = cut(&rec.account_login, 128);
    rec.caller_login = cut(&rec.caller_login, 128);
    rec.caller_user = rec.caller_user.as_deref().map(|u| cut(u, 128));
    rec.key_id = rec.key_id.as_deref().map(|k| cut(k, 256));
    rec.source = cut(&rec.source, 64);
    if let Some(e) = &rec.error {
        rec.error = Some(summarize(e));
    }
    let json = |r: &AuditRecord| serde_json::to_string(r).unwrap_or_default();
    let whole = json(rec);
    if whole.len() <= max {
        return whole;
    }
    let text = rec.request.to_string();
    let mut small = Map::new();
    for k in ["method", "path"] {
        if let Some(v) = rec.request.get(k) {
            small.insert(k.into(), v.clone());
        }
    }
    small.insert(
        "summarized".into(),
        json!({"bytes": text.len(), "sha256": sha256_hex(text.as_bytes())}),
    );
    rec.request = Value::Object(small);
    let smaller = json(rec);
    if smaller.len() <= max {
        return smaller;
    }
    rec.reason = cut(&rec.reason, 256);
    rec.error = rec
        .error
        .as_ref()
        .map(|e| json!({"code": e["code"].clone()}));
    json(rec)
}

/// One source's current rate window.
#[derive(Debug)]
struct Window {
    started: Instant,
    first: String,
    last: String,
    written: u32,
    suppressed: u64,
    statuses: BTreeMap<u16, u64>,
}

#[derive(Debug, Default)]
struct Limiter {
    windows: HashMap<String, Window>,
}

/// An append-only audit log file, with the rate limiter of unauthenticated
/// refusals. Async callers hand records to one writer thread (file locking
/// and `fsync` block) and wait for its acknowledgement.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    limits: AuditLimits,
    limiter: Arc<Mutex<Limiter>>,
    writer: Arc<Mutex<Option<std::sync::mpsc::Sender<Job>>>>,
}

/// Most jobs the writer thread commits at once.
const MAX_BATCH: usize = 1024;

/// The log file as the writer has it open, and which file that is.
struct Sink {
    path: PathBuf,
    open: Option<(fd_lock::RwLock<File>, (u64, u64))>,
}

impl Sink {
    fn new(path: &Path) -> Sink {
        Sink {
            path: path.to_path_buf(),
            open: None,
        }
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The open file, (re)opened when the path names no file or another
    /// one than the one held (removed or rotated away).
    fn file(&mut self) -> Result<&mut fd_lock::RwLock<File>, AuditError> {
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let same = matches!((&self.open, now), (Some((_, held)), Some(n)) if *held == n);
        if !same {
            self.open = None;
            if now.is_none() {
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
                }
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| self.io(e))?;
            let m = f.metadata().map_err(|e| self.io(e))?;
            self.open = Some((fd_lock::RwLock::new(f), (m.dev(), m.ino())));
        }
        let path = self.path.clone();
        match &mut self.open {
            Some((f, _)) => Ok(f),
            None => Err(AuditError::Io {
                path,
                source: std::io::Error::other("not open"),
            }),
        }
    }

    /// One `write` of `data` under the exclusive lock, then `fsync`. After
    /// a failure the file is reopened for the next write.
    fn write(&mut self, data: &[u8]) -> Result<(), AuditError> {
        let path = self.path.clone();
        let f = self.file()?;
        let r = (|| -> std::io::Result<()> {
            let mut g = f.write()?;
            g.write_all(data)?;
            g.sync_data()
        })();
        if let Err(source) = r {
            self.open = None;
            return Err(AuditError::Io { path, source });
        }
        Ok(())
    }
}

/// Work for the writer thread, with where to send the outcome.
enum Job {
    Record(
        Box<AuditRecord>,
        tokio::sync::oneshot::Sender<Result<(), AuditError>>,
    ),
    FlushExpired(tokio::sync::oneshot::Sender<Result<usize, AuditError>>),
    FlushAll(tokio::sync::oneshot::Sender<Result<usize, AuditError>>),
}

impl AuditLog {
    pub fn new(path: &Path) -> AuditLog {
        AuditLog::with_limits(path, AuditLimits::default())
    }

    pub fn with_limits(path: &Path, limits: AuditLimits) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            limits,
            limiter: Arc::default(),
            writer: Arc::default(),
        }
    }

    /// The same log without the writer handle (what the writer thread
    /// holds, so that it ends when the last handle is dropped).
    fn detached(&self) -> AuditLog {
        AuditLog {
            path: self.path.clone(),
            limits: self.limits.clone(),
            limiter: self.limiter.clone(),
            writer: Arc::default(),
        }
    }

    fn send(&self, job: Job) -> Result<(), AuditError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let log = self.detached();
            std::thread::Builder::new()
                .name("audit-writer".into())
                .spawn(move || {
                    let mut sink = Sink::new(&log.path);
                    while let Ok(first) = rx.recv() {
                        let mut jobs = vec![first];
                        while jobs.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(j) => jobs.push(j),
                                Err(_) => break,
                            }
                        }
                        log.commit(&mut sink, jobs);
                    }
                })
                .map_err(|source| AuditError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            *w = Some(tx);
        }
        w.as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| self.gone())
    }

    fn gone(&self) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("the audit writer stopped"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn limits(&self) -> &AuditLimits {
        &self.limits
    }

    /// One record as its line: bounded, JSON, newline.
    fn line(&self, mut rec: AuditRecord) -> Result<String, AuditError> {
        let mut line = bounded_json(&mut rec, self.limits.max_record_bytes);
        if line.is_empty() {
            return Err(AuditError::Corrupt {
                path: self.path.clone(),
                line: 0,
                msg: "a record that cannot be written as JSON".into(),
            });
        }
        line.push('\n');
        Ok(line)
    }

    /// Lines of records, in order.
    fn lines(&self, recs: Vec<AuditRecord>) -> Result<String, AuditError> {
        let mut out = String::new();
        for r in recs {
            out.push_str(&self.line(r)?);
        }
        Ok(out)
    }

    /// Append lines with one `write` under an exclusive lock, then `fsync`
    /// (the file opened for this call).
    fn write_now(&self, lines: &str) -> Result<(), AuditError> {
        if lines.is_empty() {
            return Ok(());
        }
        Sink::new(&self.path).write(lines.as_bytes())
    }

    /// Append one record, bounded: a single `write` of one line under an
    /// exclusive lock, then `fsync`.
    pub fn append(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        self.write_now(&self.line(rec.clone())?)
    }

    /// Record a decision: refusals of unauthenticated requests go through
    /// the per-source rate limit, everything else is written. Summaries of
    /// windows that have ended are written first.
    pub fn record(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        let due = self.plan(rec.clone());
        self.write_now(&self.lines(due)?)
    }

    /// What recording `rec` writes: the summaries of windows that have
    /// ended, then `rec` unless the rate limit counts it instead.
    fn plan(&self, rec: AuditRecord) -> Vec<AuditRecord> {
        let limited = !rec.authenticated && rec.decision == Decision::Deny;
        let (due, write) = {
            let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
            let due = self.take_expired(&mut l, Instant::now());
            let write = if limited {
                let w = l
                    .windows
                    .entry(rec.source.clone())
                    .or_insert_with(|| Window {
                        started: Instant::now(),
                        first: rec.time.clone(),
                        last: rec.time.clone(),
                        written: 0,
                        suppressed: 0,
                        statuses: BTreeMap::new(),
                    });
                w.last = rec.time.clone();
                if w.written < self.limits.unauthenticated_per_window {
                    w.written += 1;
                    true
                } else {
                    w.suppressed += 1;
                    *w.statuses.entry(rec.status).or_default() += 1;
                    false
                }
            } else {
                true
            };
            (due, write)
        };
        let mut out = due;
        if write {
            out.push(rec);
        }
        out
    }

    /// The summaries of ended windows, taken from the limiter.
    fn expired_now(&self) -> Vec<AuditRecord> {
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        self.take_expired(&mut l, Instant::now())
    }

    /// Every pending summary, taken from the limiter.
    fn pending_all(&self) -> Vec<AuditRecord> {
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let all: Vec<(String, Window)> = l.windows.drain().collect();
        all.iter().filter_map(|(k, w)| self.summary(k, w)).collect()
    }

    /// The writer thread's group commit: the lines of every job, one write,
    /// one `fsync`, then each job's answer.
    fn commit(&self, sink: &mut Sink, jobs: Vec<Job>) {
        enum Ack {
            Done(tokio::sync::oneshot::Sender<Result<(), AuditError>>),
            Count(
                tokio::sync::oneshot::Sender<Result<usize, AuditError>>,
                usize,
            ),
        }
        let mut buf = String::new();
        let mut acks = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (recs, ack) = match job {
                Job::Record(r, ack) => (self.plan(*r), Ack::Done(ack)),
                Job::FlushExpired(ack) => {
                    let due = self.expired_now();
                    let n = due.len();
                    (due, Ack::Count(ack, n))
                }
                Job::FlushAll(ack) => {
                    let due = self.pending_all();
                    let n = due.len();
                    (due, Ack::Count(ack, n))
                }
            };
            match self.lines(recs) {
                Ok(l) => {
                    buf.push_str(&l);
                    acks.push(ack);
                }
                Err(e) => match ack {
                    Ack::Done(a) => {
                        let _ = a.send(Err(e));
                    }
                    Ack::Count(a, _) => {
                        let _ = a.send(Err(e));
                    }
                },
            }
        }
        let written = if buf.is_empty() {
            Ok(())
        } else {
            sink.write(buf.as_bytes())
        };
        let err = |e: &AuditError| AuditError::Io {
            path: self.path.clone(),
            source: match e {
                AuditError::Io { source, .. } => {
                    std::io::Error::new(source.kind(), source.to_string())
                }
                other => std::io::Error::other(other.to_string()),
            },
        };
        for a in acks {
            match (a, &written) {
                (Ack::Done(a), Ok(())) => {
                    let _ = a.send(Ok(()));
                }
                (Ack::Count(a, n), Ok(())) => {
                    let _ = a.send(Ok(n));
                }
                (Ack::Done(a), Err(e)) => {
                    let _ = a.send(Err(err(e)));
                }
                (Ack::Count(a, _), Err(e)) => {
                    let _ = a.send(Err(err(e)));
                }
            }
        }
    }

    fn take_expired(&self, l: &mut Limiter, now: Instant) -> Vec<AuditRecord> {
        let ended: Vec<String> = l
            .windows
            .iter()
            .filter(|(_, w)| now.duration_since(w.started) >= self.limits.window)
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|k| {
                let w = l.windows.remove(&k)?;
                self.summary(&k, &w)
            })
            .collect()
    }

    fn summary(&self, source: &str, w: &Window) -> Option<AuditRecord> {
        if w.suppressed == 0 {
            return None;
        }
        let statuses: Vec<String> = w
            .statuses
            .iter()
            .map(|(s, n)| format!("{n} x {s}"))
            .collect();
        let mut r = AuditRecord::new(
            &format!("summary-{}", uuid::Uuid::new_v4()),
            "Refusals",
            Decision::Deny,
        );
        r.source = source.to_string();
        r.count = Some(w.suppressed);
        r.request = json!({"from": w.first, "to": w.last});
        r.reason = format!(
            "{} more unauthenticated refusals from {source} between {} and {} ({}), past {} written one by one per {}s",
            w.suppressed,
            w.first,
            w.last,
            statuses.join(", "),
            self.limits.unauthenticated_per_window,
            self.limits.window.as_secs_f64()
        );
        Some(r)
    }

    /// Write the summaries of windows that have ended (a server calls this
    /// every few seconds).
    pub fn flush_expired(&self) -> Result<usize, AuditError> {
        let due = self.expired_now();
        let n = due.len();
        self.write_now(&self.lines(due)?)?;
        Ok(n)
    }

    /// Write every pending summary now (at shutdown).
    pub fn flush_all(&self) -> Result<usize, AuditError> {
        let due = self.pending_all();
        let n = due.len();
        self.write_now(&self.lines(due)?)?;
        Ok(n)
    }

    /// [`AuditLog::record`] on the writer thread, awaited (the record is on
    /// disk when this returns `Ok`).
    pub async fn record_async(&self, rec: AuditRecord) -> Result<(), AuditError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Record(Box::new(rec), tx))?;
        rx.await.map_err(|_| self.gone())?
    }

    /// [`AuditLog::flush_expired`] on the writer thread.
    pub async fn flush_expired_async(&self) -> Result<usize, AuditError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::FlushExpired(tx))?;
        rx.await.map_err(|_| self.gone())?
    }

    /// [`AuditLog::flush_all`] on the writer thread.
    pub async fn flush_all_async(&self) -> Result<usize, AuditError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::FlushAll(tx))?;
        rx.await.map_err(|_| self.gone())?
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

/// The table `triton-gate audit` prints: time, action, status, source,
/// caller, account, operator flag, decision, brand, VM, reason.
pub fn render_table(recs: &[AuditRecord], header: bool) -> String {
    let mut out = String::new();
    if header {
        out.push_str(&format!(
            "{:<24}  {:<15}  {:<6}  {:<21}  {:<16}  {:<16}  {:<3}  {:<8}  {:<8}  {:<36}  REASON\n",
            "TIME",
            "ACTION",
            "STATUS",
            "SOURCE",
            "CALLER",
            "ACCOUNT",
            "OP",
            "DECISION",
            "BRAND",
            "VM"
        ));
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    for r in recs {
        let status = match (r.status, r.count) {
            (_, Some(n)) => format!("x{n}"),
            (0, None) => "-".into(),
            (s, None) => s.to_string(),
        };
        let line = format!(
            "{:<24}  {:<15}  {:<6}  {:<21}  {:<16}  {:<16}  {:<3}  {:<8}  {:<8}  {:<36}  {}",
            r.time,
            r.action,
            status,
            dash(&r.source),
            r.caller(),
            dash(&r.account_login),
            if r.operator { "yes" } else { "no" },
            match r.decision {
                Decision::Allow => "allow",
                Decision::Deny => "deny",
            },
            r.brand.as_deref().unwrap_or("-"),
            r.vm_uuid.as_deref().unwrap_or("-"),
            r.reason
        );
        // one record, one line, whatever the reason holds
        out.push_str(&line.replace(['\n', '\r'], " "));
        out.push('\n');
    }
    out
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

    fn rec(i: usize, d: Decision) -> AuditRecord {
        AuditRecord {
            time: now(),
            req_id: format!("r{i}"),
            action: "CreateMachine".into(),
            status: if d == Decision::Allow { 201 } else { 409 },
            source: "127.0.0.1:5000".into(),
            authenticated: true,
            key_id: None,
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
            count: None,
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

    #[test]
    fn records_have_a_bounded_size() {
        let t = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&t.path().join("audit.log"));
        let mut r = rec(1, Decision::Deny);
        let nets: Vec<Value> = (0..40000).map(|i| json!(format!("net-{i:08}"))).collect();
        r.request = json!({"method": "POST", "path": "/x/machines", "networks": nets,
                           "name": "n".repeat(100_000), "image": "i"});
        r.reason = "why ".repeat(10_000);
        log.append(&r).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.len() <= 4097, "{} bytes", text.len());
        let got = &log.read().unwrap()[0];
        assert_eq!(got.request["networks"]["count"], 40000);
        assert_eq!(
            got.request["networks"]["sha256"].as_str().unwrap().len(),
            64
        );
        assert!(got.request["name"]
            .as_str()
            .unwrap()
            .contains("(100000 bytes, sha256 "));
        assert_eq!(got.request["image"], "i");
        assert!(got.reason.len() < 1200);
        // a record too large even after summarizing keeps method and path
        let mut r = rec(2, Decision::Deny);
        let many: Map<String, Value> = (0..15)
            .map(|i| (format!("k{i}"), json!("v".repeat(250))))
            .collect();
        r.request = Value::Object(many);
        r.request["method"] = json!("POST");
        r.request["path"] = json!("/x/machines");
        let mut b = r.clone();
        bound(&mut b, 1024);
        assert!(serde_json::to_string(&b).unwrap().len() <= 1024);
        assert_eq!(b.request["method"], "POST");
        assert!(b.request["summarized"]["bytes"].as_u64().unwrap() > 3000);
    }

    #[test]
    fn unauthenticated_refusals_are_summarized_past_the_limit() {
        let t = tempfile::tempdir().unwrap();
        let limits = AuditLimits {
            unauthenticated_per_window: 3,
            window: Duration::from_millis(300),
            ..Default::default()
        };
        let log = AuditLog::with_limits(&t.path().join("audit.log"), limits);
        let anon = |src: &str, status: u16| {
            let mut r = rec(0, Decision::Deny);
            r.authenticated = false;
            r.source = src.into();
            r.status = status;
            r
        };
        for i in 0..10 {
            log.record(&anon("10.0.0.1", if i % 2 == 0 { 401 } else { 405 }))
                .unwrap();
        }
        log.record(&anon("10.0.0.2", 401)).unwrap();
        // authenticated refusals are never limited
        for _ in 0..5 {
            log.record(&rec(9, Decision::Deny)).unwrap();
        }
        assert_eq!(log.read().unwrap().len(), 3 + 1 + 5);
        assert_eq!(log.flush_expired().unwrap(), 0);
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(log.flush_expired().unwrap(), 1);
        let all = log.read().unwrap();
        let s = all.last().unwrap();
        assert_eq!(s.action, "Refusals");
        assert_eq!(s.count, Some(7));
        assert_eq!(s.source, "10.0.0.1");
        assert!(s.reason.contains("3 x 401, 4 x 405"), "{}", s.reason);
        assert!(s.reason.ends_with("per 0.3s"), "{}", s.reason);
        // a new window writes again
        log.record(&anon("10.0.0.1", 401)).unwrap();
        assert_eq!(log.read().unwrap().len(), 11);
        // flush_all at shutdown writes pending summaries
        for _ in 0..5 {
            log.record(&anon("10.0.0.3", 401)).unwrap();
        }
        assert_eq!(log.flush_all().unwrap(), 1);
        assert_eq!(log.read().unwrap().last().unwrap().count, Some(2));
    }

    #[tokio::test]
    async fn async_records_go_through_one_writer() {
        let t = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&t.path().join("audit.log"));
        let mut hs = Vec::new();
        for i in 0..20 {
            let l = log.clone();
            hs.push(tokio::spawn(async move {
                l.record_async(rec(i, Decision::Allow)).await
            }));
        }
        for h in hs {
            h.await.unwrap().unwrap();
        }
        assert_eq!(log.read().unwrap().len(), 20);
        assert_eq!(log.flush_all_async().await.unwrap(), 0);
        assert_eq!(log.flush_expired_async().await.unwrap(), 0);
    }

    /// Many records at once from many tasks: the writer commits them in
    /// batches, and each is one whole line, none lost or repeated.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_records_are_group_committed_whole() {
        let t = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&t.path().join("audit.log"));
        let mut hs = Vec::new();
        for i in 0..400 {
            let l = log.clone();
            hs.push(tokio::spawn(async move {
                let mut r = rec(i, Decision::Allow);
                r.reason = "x".repeat(i % 700);
                l.record_async(r).await
            }));
        }
        for h in hs {
            h.await.unwrap().unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 400);
        let mut ids: Vec<String> = log.read().unwrap().into_iter().map(|r| r.req_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 400);
    }

    /// The writer keeps the file open between batches and follows the
    /// path: a log renamed away (rotated) or removed, directory and all, is
    /// started anew at the path.
    #[tokio::test]
    async fn the_writer_follows_rotation_and_removal() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("logs/audit.log");
        let log = AuditLog::new(&path);
        log.record_async(rec(1, Decision::Allow)).await.unwrap();
        log.record_async(rec(2, Decision::Allow)).await.unwrap();
        let rotated = t.path().join("logs/audit.log.0");
        std::fs::rename(&path, &rotated).unwrap();
        log.record_async(rec(3, Decision::Allow)).await.unwrap();
        let ids =
            |p: &Path| -> Vec<String> { read(p).unwrap().into_iter().map(|r| r.req_id).collect() };
        assert_eq!(ids(&rotated), ["r1", "r2"]);
        assert_eq!(ids(&path), ["r3"]);
        std::fs::remove_dir_all(t.path().join("logs")).unwrap();
        log.record_async(rec(4, Decision::Deny)).await.unwrap();
        assert_eq!(ids(&path), ["r4"]);
        // another writer of the same file (a second process) interleaves
        // whole lines
        AuditLog::new(&path)
            .append(&rec(5, Decision::Deny))
            .unwrap();
        log.record_async(rec(6, Decision::Deny)).await.unwrap();
        assert_eq!(ids(&path), ["r4", "r5", "r6"]);
    }

    #[test]
    fn table_shows_caller_and_account() {
        let mut a = rec(1, Decision::Allow);
        a.caller_user = Some("sub1".into());
        a.account_login = "cust".into();
        let mut b = rec(2, Decision::Deny);
        b.authenticated = false;
        b.reason = "two\nlines".into();
        let t = render_table(&[a, b], true);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("CALLER") && lines[0].contains("ACCOUNT"));
        assert!(lines[1].contains("ops/sub1") && lines[1].contains("cust"));
        assert!(lines[2].contains("  -  ") && lines[2].ends_with("two lines"));
        assert_eq!(render_table(&[], false), "");
    }
}
