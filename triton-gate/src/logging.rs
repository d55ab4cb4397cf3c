//! Bunyan JSON logs through `tracing`, as Triton services write them: one
//! JSON object a line with `name`, `hostname`, `pid`, `level` (a number),
//! `msg`, `time` and `v: 0`, plus the event's own fields.

use serde_json::{Map, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// A `tracing` layer that writes bunyan records.
pub struct BunyanLayer {
    name: String,
    hostname: String,
    pid: u32,
    out: Arc<Mutex<dyn Write + Send>>,
}

impl BunyanLayer {
    pub fn new(name: &str, out: Arc<Mutex<dyn Write + Send>>) -> BunyanLayer {
        BunyanLayer {
            name: name.to_string(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            out,
        }
    }

    pub fn stderr(name: &str) -> BunyanLayer {
        BunyanLayer::new(name, Arc::new(Mutex::new(std::io::stderr())))
    }
}

/// Bunyan's level numbers.
pub fn bunyan_level(l: &Level) -> u8 {
    match *l {
        Level::TRACE => 10,
        Level::DEBUG => 20,
        Level::INFO => 30,
        Level::WARN => 40,
        Level::ERROR => 50,
    }
}

/// RFC 3339 UTC with milliseconds, as bunyan writes `time`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let ms = d.subsec_millis();
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0
            .insert(f.name().to_string(), Value::String(format!("{v:?}")));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0
            .insert(f.name().to_string(), Value::String(v.to_string()));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().to_string(), v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().to_string(), v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().to_string(), v.into());
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.0.insert(f.name().to_string(), v.into());
    }
}

impl<S: Subscriber> Layer<S> for BunyanLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let msg = match fields.0.remove("message") {
            Some(Value::String(s)) => s,
            Some(v) => v.to_string(),
            None => String::new(),
        };
        let mut rec = Map::new();
        rec.insert("name".into(), self.name.clone().into());
        rec.insert("hostname".into(), self.hostname.clone().into());
        rec.insert("pid".into(), self.pid.into());
        rec.insert("level".into(), bunyan_level(meta.level()).into());
        for (k, v) in fields.0 {
            if !matches!(
                k.as_str(),
                "name" | "hostname" | "pid" | "level" | "msg" | "time" | "v"
            ) {
                rec.insert(k, v);
            }
        }
        rec.insert("component".into(), meta.target().into());
        rec.insert("msg".into(), msg.into());
        rec.insert("time".into(), rfc3339_millis(SystemTime::now()).into());
        rec.insert("v".into(), 0.into());
        let mut line = Value::Object(rec).to_string();
        line.push('\n');
        if let Ok(mut w) = self.out.lock() {
            let _ = w.write_all(line.as_bytes());
            let _ = w.flush();
        }
    }
}

/// Install the bunyan layer on stderr with an env-style level filter
/// (`info`, `triton_gate=debug`, ...).
pub fn init(name: &str, filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)?;
    tracing_subscriber::registry()
        .with(BunyanLayer::stderr(name).with_filter(filter))
        .try_init()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339_millis(t), "2024-02-29T23:59:59.123Z");
    }

    #[test]
    fn writes_bunyan_records() {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let sub = tracing_subscriber::registry().with(BunyanLayer::new("triton-gate", buf.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(path = "/x", status = 500u64, "request failed");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let rec: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(rec["name"], "triton-gate");
        assert_eq!(rec["level"], 40);
        assert_eq!(rec["msg"], "request failed");
        assert_eq!(rec["v"], 0);
        assert_eq!(rec["path"], "/x");
        assert_eq!(rec["status"], 500);
        assert_eq!(rec["pid"], std::process::id());
        assert!(rec["hostname"].is_string());
        assert!(rec["time"].as_str().unwrap().ends_with('Z'));
    }
}
