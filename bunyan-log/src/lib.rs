//! Bunyan JSON logs through `tracing`, as Triton services write them: one
//! JSON object a line with `name`, `hostname`, `pid`, `level` (a number),
//! `msg`, `time` and `v: 0`, plus the event's own fields. The format is
//! tracing-bunyan-formatter's; this crate only installs it, so every
//! service of the workspace (ui-compat, triton-gate, sim vminfod) logs alike.

use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::prelude::*;

/// Install bunyan logging on stderr with an env-style level filter
/// (`info`, `ui_compat=debug`, ...). Fails when a subscriber is already
/// installed.
pub fn init(name: &str, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)?;
    tracing_subscriber::registry()
        .with(filter)
        .with(JsonStorageLayer)
        .with(BunyanFormattingLayer::new(
            name.to_string(),
            std::io::stderr,
        ))
        .try_init()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
    use tracing_subscriber::prelude::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn records_have_the_bunyan_fields() {
        let buf = Buf::default();
        let b = buf.clone();
        let sub =
            tracing_subscriber::registry()
                .with(JsonStorageLayer)
                .with(BunyanFormattingLayer::new(
                    "test-service".into(),
                    move || b.clone(),
                ));
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(addr = "127.0.0.1:1", "listening")
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let rec: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(rec["name"], "test-service");
        assert_eq!(rec["level"], 40);
        assert_eq!(rec["msg"], "listening");
        assert_eq!(rec["addr"], "127.0.0.1:1");
        assert_eq!(rec["v"], 0);
        assert_eq!(rec["pid"], std::process::id());
        assert!(rec["hostname"].is_string() && rec["time"].is_string());
    }
}
