//! Bunyan JSON logs, one file per service (`DIR/log/<service>.log`), in the
//! record shape Triton services write (`name`, `hostname`, `pid`, `level`,
//! `msg`, `time`, `v`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

pub const INFO: u8 = 30;
pub const WARN: u8 = 40;
pub const ERROR: u8 = 50;

#[derive(Clone, Debug)]
pub struct Logger {
    name: String,
    path: Option<PathBuf>,
    hostname: String,
    lock: Arc<Mutex<()>>,
}

impl Logger {
    pub fn new(name: &str, path: Option<PathBuf>) -> Logger {
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        Logger {
            name: name.to_string(),
            path,
            hostname,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The bunyan record for `msg` with extra fields.
    pub fn record(&self, level: u8, msg: &str, fields: Value) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("hostname".into(), json!(self.hostname));
        m.insert("pid".into(), json!(std::process::id()));
        m.insert("level".into(), json!(level));
        if let Value::Object(f) = fields {
            for (k, v) in f {
                m.insert(k, v);
            }
        }
        m.insert("msg".into(), json!(msg));
        m.insert("time".into(), json!(super::now_iso()));
        m.insert("v".into(), json!(0));
        Value::Object(m)
    }

    pub fn log(&self, level: u8, msg: &str, fields: Value) {
        let rec = self.record(level, msg, fields);
        let line = format!("{rec}\n");
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match &self.path {
            Some(p) => {
                if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(p) {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    pub fn info(&self, msg: &str, fields: Value) {
        self.log(INFO, msg, fields)
    }

    pub fn warn(&self, msg: &str, fields: Value) {
        self.log(WARN, msg, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_has_bunyan_core_fields() {
        let l = Logger::new("papi", None);
        let r = l.record(INFO, "hello", json!({"req_id": "x"}));
        for k in ["name", "hostname", "pid", "level", "msg", "time", "v"] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        assert_eq!(r["v"], 0);
        assert_eq!(r["level"], 30);
        assert_eq!(r["req_id"], "x");
    }
}
