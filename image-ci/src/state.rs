//! Run state in SQLite (WAL): runs, their stages (timings, sizes), the
//! outcome of every target (the history), artifacts, and ship progress
//! per image name and version. One writer at a time (the run holding
//! `<state>.lock`); the status endpoint and `image-ci history` read beside
//! it.
//!
//! The JSON-lines history earlier versions wrote (`history.jsonl` beside
//! the database) is imported on first open and then renamed
//! `history.jsonl.migrated`.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension as _};

use crate::error::{Error, Result};
use crate::history::{self, Outcome, Record};

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id       TEXT PRIMARY KEY,
    started  TEXT NOT NULL,
    finished TEXT,
    -- running | ok | failed | interrupted | imported
    status   TEXT NOT NULL,
    -- cli | schedule:<name> | history
    trigger  TEXT NOT NULL,
    backend  TEXT NOT NULL DEFAULT '',
    place    TEXT NOT NULL DEFAULT '',
    pid      INTEGER,
    error    TEXT,
    -- the run's report (JSON), once it is done
    report   TEXT
);
CREATE TABLE IF NOT EXISTS stages (
    id       INTEGER PRIMARY KEY,
    run_id   TEXT NOT NULL REFERENCES runs(id),
    target   TEXT,
    stage    TEXT NOT NULL,
    started  TEXT NOT NULL,
    finished TEXT,
    ms       INTEGER,
    -- running | ok | failed | interrupted | skipped
    status   TEXT NOT NULL,
    bytes    INTEGER,
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS stages_run ON stages(run_id);
CREATE TABLE IF NOT EXISTS targets (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs(id),
    target  TEXT NOT NULL,
    time    TEXT NOT NULL,
    outcome TEXT NOT NULL,
    version TEXT,
    uuid    TEXT,
    sha1    TEXT,
    size    INTEGER,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS targets_target ON targets(target);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id        TEXT NOT NULL REFERENCES runs(id),
    target        TEXT NOT NULL,
    version       TEXT NOT NULL,
    image         TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    sha1          TEXT,
    size          INTEGER,
    manifest_uuid TEXT,
    PRIMARY KEY (run_id, target)
);
CREATE TABLE IF NOT EXISTS ships (
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    image_uuid TEXT NOT NULL,
    -- looked-up | imported | uploaded | active | already-active
    step       TEXT NOT NULL,
    sha1       TEXT,
    size       INTEGER,
    run_id     TEXT,
    updated    TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"#;

/// One stage of a run (or of one target in it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageRecord {
    pub stage: String,
    /// `None`: a stage of the whole run (zone, provision, build).
    pub target: Option<String>,
    pub started: String,
    pub finished: Option<String>,
    /// How long it took.
    pub ms: Option<u64>,
    /// `running`, `ok`, `failed`, `interrupted`, `skipped`.
    pub status: String,
    /// Bytes it handled (log, image, upload), when that means something.
    pub bytes: Option<u64>,
    pub detail: String,
}

/// A run as the state database keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    pub id: String,
    pub started: String,
    pub finished: Option<String>,
    pub status: String,
    pub trigger: String,
    pub backend: String,
    pub place: String,
    pub error: Option<String>,
    pub stages: Vec<StageRecord>,
    pub targets: Vec<Record>,
}

/// Ship progress of one image (name, version).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShipRow {
    pub name: String,
    pub version: String,
    pub image_uuid: String,
    pub step: String,
    pub sha1: Option<String>,
    pub size: Option<u64>,
    pub run_id: Option<String>,
    pub updated: String,
}

/// The state database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn db(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::State {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// The default database under a node root.
pub fn default_path(root: &Path) -> PathBuf {
    root.join("var/db/image-ci/state.db")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Open (creating it and its directory) and bring the schema up to
    /// date; import `history.jsonl` beside it the first time.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| db(path, e))?;
        }
        let conn = Connection::open(path).map_err(|e| db(path, e))?;
        let s = Store {
            conn,
            path: path.to_path_buf(),
        };
        s.setup()?;
        s.conn.execute_batch(SCHEMA).map_err(|e| db(path, e))?;
        let v: Option<String> = s.meta("schema_version")?;
        match v.as_deref().map(str::parse::<i64>) {
            None => s.set_meta("schema_version", &SCHEMA_VERSION.to_string())?,
            Some(Ok(n)) if n <= SCHEMA_VERSION => {}
            Some(_) => {
                return Err(db(
                    path,
                    format!(
                        "schema version {} is newer than this image-ci's ({SCHEMA_VERSION})",
                        v.unwrap_or_default()
                    ),
                ))
            }
        }
        if let Some(dir) = path.parent() {
            let h = dir.join("history.jsonl");
            if s.meta("history_imported")?.is_none() && h.is_file() {
                s.import_history(&h)?;
            }
        }
        Ok(s)
    }

    /// Open an existing database to read it.
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.is_file() {
            return Err(db(path, "no such state database"));
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db(path, e))?;
        let s = Store {
            conn,
            path: path.to_path_buf(),
        };
        s.setup()?;
        Ok(s)
    }

    fn setup(&self) -> Result<()> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db(&self.path, e))?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db(&self.path, e))?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db(&self.path, e))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| db(&self.path, e))?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn e(&self, e: impl std::fmt::Display) -> Error {
        db(&self.path, e)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.e(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// Import a JSON-lines history (once: the file is renamed
    /// `<file>.migrated` afterwards). Returns how many records came in.
    pub fn import_history(&self, file: &Path) -> Result<usize> {
        let recs = history::read(file)?;
        let tx = self.conn.unchecked_transaction().map_err(|e| self.e(e))?;
        for r in &recs {
            tx.execute(
                "INSERT OR IGNORE INTO runs(id, started, finished, status, trigger)
                 VALUES (?1, ?2, ?2, 'imported', 'history')",
                params![r.run, r.time],
            )
            .map_err(|e| self.e(e))?;
            tx.execute(
                "UPDATE runs SET started = min(started, ?2), finished = max(finished, ?2)
                 WHERE id = ?1",
                params![r.run, r.time],
            )
            .map_err(|e| self.e(e))?;
            insert_record(&tx, r).map_err(|e| self.e(e))?;
        }
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('history_imported', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [format!(
                "{} records from {} at {}",
                recs.len(),
                file.display(),
                now()
            )],
        )
        .map_err(|e| self.e(e))?;
        tx.commit().map_err(|e| self.e(e))?;
        let mut done = file.as_os_str().to_owned();
        done.push(".migrated");
        std::fs::rename(file, &done).map_err(|e| Error::io(file, e))?;
        tracing::info!(records = recs.len(), file = %file.display(), "imported the JSON-lines history");
        Ok(recs.len())
    }

    /// A run starts.
    pub fn begin_run(&self, id: &str, started: &str, trigger: &str, backend: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs(id, started, status, trigger, backend, pid)
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5)",
                params![id, started, trigger, backend, std::process::id()],
            )
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// Where the run builds (the zone, once made).
    pub fn set_place(&self, id: &str, place: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET place = ?2 WHERE id = ?1",
                params![id, place],
            )
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// A run ends (`ok`, `failed`, `interrupted`).
    pub fn finish_run(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
        report: Option<&serde_json::Value>,
    ) -> Result<()> {
        let t = now();
        self.conn
            .execute(
                "UPDATE runs SET finished = ?2, status = ?3, error = ?4, report = ?5 WHERE id = ?1",
                params![id, t, status, error, report.map(|r| r.to_string())],
            )
            .map_err(|e| self.e(e))?;
        if status == "interrupted" {
            self.conn
                .execute(
                    "UPDATE stages SET status = 'interrupted', finished = ?2 WHERE run_id = ?1 AND status = 'running'",
                    params![id, t],
                )
                .map_err(|e| self.e(e))?;
        }
        Ok(())
    }

    /// Runs left `running` by an image-ci that is gone (killed, or the
    /// machine restarted) are marked `interrupted`, with their running
    /// stages. Returns their ids.
    pub fn mark_interrupted(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT id, pid FROM runs WHERE status = 'running'")
            .map_err(|e| self.e(e))?;
        let rows: Vec<(String, Option<i64>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.e(e))?
            .filter_map(|r| r.ok())
            .collect();
        drop(st);
        let mut out = vec![];
        for (id, pid) in rows {
            let alive = pid
                .filter(|p| *p as u32 != std::process::id())
                .is_some_and(|p| process_alive(p as i32));
            if alive {
                continue;
            }
            self.finish_run(
                &id,
                "interrupted",
                Some("image-ci stopped before the run ended"),
                None,
            )?;
            out.push(id);
        }
        Ok(out)
    }

    /// A stage starts; returns its id.
    pub fn stage_start(
        &self,
        run: &str,
        target: Option<&str>,
        stage: &str,
        started: &str,
    ) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO stages(run_id, target, stage, started, status) VALUES (?1, ?2, ?3, ?4, 'running')",
                params![run, target, stage, started],
            )
            .map_err(|e| self.e(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// A stage ends.
    pub fn stage_end(&self, id: i64, s: &StageRecord) -> Result<()> {
        self.conn
            .execute(
                "UPDATE stages SET finished = ?2, ms = ?3, status = ?4, bytes = ?5, detail = ?6 WHERE id = ?1",
                params![id, s.finished, s.ms.map(|m| m as i64), s.status, s.bytes.map(|b| b as i64), s.detail],
            )
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// A target's outcome in a run.
    pub fn record(&self, r: &Record) -> Result<()> {
        insert_record(&self.conn, r)
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// Every target record, oldest first (the history).
    pub fn records(&self) -> Result<Vec<Record>> {
        self.records_where("1 = 1", [])
    }

    fn records_where<P: rusqlite::Params>(&self, cond: &str, p: P) -> Result<Vec<Record>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT time, run_id, target, outcome, version, uuid, sha1, size, detail
                 FROM targets WHERE {cond} ORDER BY id"
            ))
            .map_err(|e| self.e(e))?;
        let rows = st
            .query_map(p, |r| {
                let outcome: String = r.get(3)?;
                Ok(Record {
                    time: r.get(0)?,
                    run: r.get(1)?,
                    target: r.get(2)?,
                    outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Interrupted),
                    version: r.get(4)?,
                    uuid: r.get(5)?,
                    sha1: r.get(6)?,
                    size: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
                    detail: r.get(8)?,
                })
            })
            .map_err(|e| self.e(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.e(e))
    }

    /// An artifact a run built.
    #[allow(clippy::too_many_arguments)]
    pub fn record_artifact(
        &self,
        run: &str,
        target: &str,
        version: &str,
        image: &Path,
        manifest: &Path,
        sha1: Option<&str>,
        size: Option<u64>,
        manifest_uuid: Option<&str>,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO artifacts(run_id, target, version, image, manifest, sha1, size, manifest_uuid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    run,
                    target,
                    version,
                    image.display().to_string(),
                    manifest.display().to_string(),
                    sha1,
                    size.map(|s| s as i64),
                    manifest_uuid
                ],
            )
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// Ship progress of `name` `version`.
    pub fn ship_step(&self, s: &ShipRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO ships(name, version, image_uuid, step, sha1, size, run_id, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(name, version) DO UPDATE SET image_uuid = excluded.image_uuid,
                   step = excluded.step, sha1 = excluded.sha1, size = excluded.size,
                   run_id = excluded.run_id, updated = excluded.updated",
                params![
                    s.name,
                    s.version,
                    s.image_uuid,
                    s.step,
                    s.sha1,
                    s.size.map(|n| n as i64),
                    s.run_id,
                    s.updated
                ],
            )
            .map(|_| ())
            .map_err(|e| self.e(e))
    }

    /// Every image's ship progress.
    pub fn ships(&self) -> Result<Vec<ShipRow>> {
        let mut st = self
            .conn
            .prepare("SELECT name, version, image_uuid, step, sha1, size, run_id, updated FROM ships ORDER BY updated DESC")
            .map_err(|e| self.e(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(ShipRow {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    image_uuid: r.get(2)?,
                    step: r.get(3)?,
                    sha1: r.get(4)?,
                    size: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                    run_id: r.get(6)?,
                    updated: r.get(7)?,
                })
            })
            .map_err(|e| self.e(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.e(e))
    }

    /// The newest `limit` runs, newest first, with their stages and
    /// target records.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, started, finished, status, trigger, backend, place, error
                 FROM runs ORDER BY started DESC, rowid DESC LIMIT ?1",
            )
            .map_err(|e| self.e(e))?;
        let runs: Vec<RunRow> = st
            .query_map([limit as i64], |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    started: r.get(1)?,
                    finished: r.get(2)?,
                    status: r.get(3)?,
                    trigger: r.get(4)?,
                    backend: r.get(5)?,
                    place: r.get(6)?,
                    error: r.get(7)?,
                    stages: vec![],
                    targets: vec![],
                })
            })
            .map_err(|e| self.e(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.e(e))?;
        drop(st);
        let mut out = Vec::with_capacity(runs.len());
        for mut r in runs {
            r.stages = self.stages(&r.id)?;
            r.targets = self.records_where("run_id = ?1", [&r.id])?;
            out.push(r);
        }
        Ok(out)
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<RunRow>> {
        Ok(self.runs(10_000)?.into_iter().find(|r| r.id == id))
    }

    /// The stages of a run, in order.
    pub fn stages(&self, run: &str) -> Result<Vec<StageRecord>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT stage, target, started, finished, ms, status, bytes, detail
                 FROM stages WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.e(e))?;
        let rows = st
            .query_map([run], |r| {
                Ok(StageRecord {
                    stage: r.get(0)?,
                    target: r.get(1)?,
                    started: r.get(2)?,
                    finished: r.get(3)?,
                    ms: r.get::<_, Option<i64>>(4)?.map(|n| n as u64),
                    status: r.get(5)?,
                    bytes: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                    detail: r.get(7)?,
                })
            })
            .map_err(|e| self.e(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.e(e))
    }
}

fn insert_record(c: &Connection, r: &Record) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO targets(run_id, target, time, outcome, version, uuid, sha1, size, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            r.run,
            r.target,
            r.time,
            r.outcome.as_str(),
            r.version,
            r.uuid,
            r.sha1,
            r.size.map(|s| s as i64),
            r.detail
        ],
    )
}

/// Is process `pid` there (not a zombie)?
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // a zombie answers kill(0) too
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(run: &str, target: &str, outcome: Outcome) -> Record {
        Record {
            time: "2026-11-25T12:00:00Z".into(),
            run: run.into(),
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
    fn runs_stages_records_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.db");
        let s = Store::open(&p).unwrap();
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        s.begin_run("r1", "2026-11-25T12:00:00Z", "cli", "node")
            .unwrap();
        let id = s
            .stage_start("r1", None, "build", "2026-11-25T12:00:00Z")
            .unwrap();
        s.stage_end(
            id,
            &StageRecord {
                stage: "build".into(),
                target: None,
                started: "2026-11-25T12:00:00Z".into(),
                finished: Some("2026-11-25T12:00:02Z".into()),
                ms: Some(2000),
                status: "ok".into(),
                bytes: Some(42),
                detail: "exit 0".into(),
            },
        )
        .unwrap();
        s.record(&rec("r1", "a", Outcome::Shipped)).unwrap();
        s.record(&rec("r1", "b", Outcome::BuildFailed)).unwrap();
        s.finish_run("r1", "failed", Some("1 of 2 shipped"), None)
            .unwrap();
        drop(s);
        let s = Store::open_existing(&p).unwrap();
        let runs = s.runs(10).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "failed");
        assert_eq!(runs[0].stages[0].ms, Some(2000));
        assert_eq!(runs[0].stages[0].bytes, Some(42));
        assert_eq!(runs[0].targets.len(), 2);
        assert_eq!(s.records().unwrap()[1].outcome, Outcome::BuildFailed);
        assert!(Store::open_existing(&d.path().join("nope.db")).is_err());
    }

    #[test]
    fn a_run_left_running_by_a_dead_process_is_interrupted() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("state.db")).unwrap();
        s.begin_run("dead", "2026-11-25T12:00:00Z", "schedule:nightly", "node")
            .unwrap();
        s.stage_start("dead", None, "build", "2026-11-25T12:00:01Z")
            .unwrap();
        // a pid no process has
        s.conn
            .execute("UPDATE runs SET pid = 2147483000 WHERE id = 'dead'", [])
            .unwrap();
        s.begin_run("mine", "2026-11-25T12:01:00Z", "cli", "node")
            .unwrap();
        // a run of another process that is alive (pid 1) is left alone
        s.begin_run("live", "2026-11-25T12:02:00Z", "cli", "node")
            .unwrap();
        s.conn
            .execute("UPDATE runs SET pid = 1 WHERE id = 'live'", [])
            .unwrap();
        // this process's own pid: a run it left before it was restarted
        // (runs are marked under the run lock, so none of ours is live)
        assert_eq!(s.mark_interrupted().unwrap(), ["dead", "mine"]);
        let runs = s.runs(10).unwrap();
        let dead = runs.iter().find(|r| r.id == "dead").unwrap();
        assert_eq!(dead.status, "interrupted");
        assert_eq!(dead.stages[0].status, "interrupted");
        assert!(dead.finished.is_some());
        let live = runs.iter().find(|r| r.id == "live").unwrap();
        assert_eq!(live.status, "running");
    }

    #[test]
    fn the_json_lines_history_is_imported_once() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path().join("history.jsonl");
        std::fs::write(
            &h,
            "{\"time\":\"2026-11-24T00:00:00Z\",\"run\":\"old1\",\"target\":\"a\",\"outcome\":\"shipped\",\"version\":\"20261124\"}\n\
             {\"time\":\"2026-11-25T00:00:00Z\",\"run\":\"old2\",\"target\":\"a\",\"outcome\":\"verify_failed\"}\n",
        )
        .unwrap();
        let p = d.path().join("state.db");
        let s = Store::open(&p).unwrap();
        let r = s.records().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].outcome, Outcome::Shipped);
        assert!(!h.exists());
        assert!(d.path().join("history.jsonl.migrated").is_file());
        assert!(s
            .meta("history_imported")
            .unwrap()
            .unwrap()
            .starts_with("2 records"));
        assert_eq!(s.runs(10).unwrap().len(), 2);
        drop(s);
        // a later history.jsonl is not imported again
        std::fs::write(&h, "").unwrap();
        let s = Store::open(&p).unwrap();
        assert_eq!(s.records().unwrap().len(), 2);
        assert!(h.exists());
    }

    #[test]
    fn ship_progress_is_one_row_per_name_and_version() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("state.db")).unwrap();
        let mut row = ShipRow {
            name: "debian-12".into(),
            version: "20261125".into(),
            image_uuid: "u1".into(),
            step: "imported".into(),
            sha1: None,
            size: None,
            run_id: Some("r1".into()),
            updated: "2026-11-25T00:00:00Z".into(),
        };
        s.ship_step(&row).unwrap();
        row.step = "active".into();
        row.updated = "2026-11-25T00:00:01Z".into();
        s.ship_step(&row).unwrap();
        let ships = s.ships().unwrap();
        assert_eq!(ships.len(), 1);
        assert_eq!(ships[0].step, "active");
    }
}
