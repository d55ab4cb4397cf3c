//! Typed errors. A failed tool keeps its command line, exit status and
//! stderr; a failed HTTP call keeps the method, URL, status and the API's
//! error code and message.

use std::path::PathBuf;

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {msg}", path.display())]
    Io { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Parse { path: PathBuf, msg: String },
    #[error("cannot run {command}: {msg}")]
    Spawn { command: String, msg: String },
    #[error("{command} failed ({}): {}", status_text(*.status), last_line(.stderr))]
    Command {
        command: String,
        /// Exit status; `None` when killed by a signal.
        status: Option<i32>,
        stderr: String,
    },
    #[error("{method} {url}: {msg}")]
    Net {
        method: String,
        url: String,
        msg: String,
    },
    #[error("{method} {url}: HTTP {status} {code}: {message}")]
    Http {
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("unknown target {0:?} (not a key of imgconfigs.json)")]
    UnknownTarget(String),
    #[error("zone {zone} cannot run bhyve builds: {failed}")]
    Preflight { zone: String, failed: String },
    #[error("a local build cannot run here: {0}")]
    LocalPreflight(String),
    #[error("zone {0} not found in etc/zones/index")]
    NoZone(String),
    #[error("{0}")]
    Invalid(String),
    #[error("history {}: {msg}", path.display())]
    History { path: PathBuf, msg: String },
    #[error("state {}: {msg}", path.display())]
    State { path: PathBuf, msg: String },
    #[error("{0}")]
    Config(String),
    #[error("interrupted: {0}")]
    Cancelled(String),
    #[error("{0}")]
    Api(String),
    #[error("{0}: only on illumos")]
    OnlyOnIllumos(String),
    #[error("{0}: not implemented")]
    NotImplemented(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn status_text(s: Option<i32>) -> String {
    match s {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".into(),
    }
}

/// The last non-empty line of a tool's stderr (tools put the reason last).
pub fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no stderr)")
        .to_string()
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Error {
        Error::Io {
            path: path.into(),
            msg: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_error_is_one_line_and_keeps_everything() {
        let e = Error::Command {
            command: "zlogin z ./build_all.sh".into(),
            status: Some(3),
            stderr: "warn: x\nfatal: no packer\n\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "zlogin z ./build_all.sh failed (exit status 3): fatal: no packer"
        );
        match e {
            Error::Command { stderr, .. } => assert!(stderr.contains("warn: x")),
            _ => unreachable!(),
        }
    }
}
