//! Build output as it happens: a command's stdout and stderr are read line
//! by line while it runs and each line goes at once to the run's log file
//! (and, when asked, to the terminal), not after the command ends. A run
//! can be cancelled ([`Cancel`]): the command's process group is stopped
//! and the caller sees [`Error::Cancelled`].

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::cleanup::{self, Action};
use crate::error::{Error, Result};

/// Asks a run to stop at the next point it can (a running command is
/// stopped; stages not yet started are not started).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Error::Cancelled)` once cancelled.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled(what.to_string()))
        } else {
            Ok(())
        }
    }
}

/// Where a build's lines go: the log file (each line written as it
/// arrives), the terminal when verbose, and the text kept for parsing.
#[derive(Debug)]
pub struct LogSink {
    file: Option<std::fs::File>,
    path: Option<PathBuf>,
    echo: bool,
    text: String,
    bytes: u64,
}

impl LogSink {
    /// Lines appended to `path` (created), echoed to stderr when `echo`.
    pub fn to_file(path: &Path, echo: bool) -> Result<LogSink> {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(LogSink {
            file: Some(f),
            path: Some(path.to_path_buf()),
            echo,
            text: String::new(),
            bytes: 0,
        })
    }

    /// Lines kept in memory only (and echoed to stderr when `echo`).
    pub fn memory(echo: bool) -> LogSink {
        LogSink {
            file: None,
            path: None,
            echo,
            text: String::new(),
            bytes: 0,
        }
    }

    /// One line (without its newline).
    pub fn line(&mut self, l: &str) {
        let mut s = String::with_capacity(l.len() + 1);
        s.push_str(l);
        s.push('\n');
        if let Some(f) = &mut self.file {
            // unbuffered: the line is in the file when this returns
            let _ = f.write_all(s.as_bytes());
        }
        if self.echo {
            eprint!("{s}");
        }
        self.bytes += s.len() as u64;
        self.text.push_str(&s);
    }

    /// Everything written so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// How a streamed command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit status; `None` when killed by a signal.
    pub code: Option<i32>,
    /// The last non-empty stderr line.
    pub last_stderr: String,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Run `cmd` (program resolved by `tools`, `env` added) in its own process
/// group, every output line to `sink` as it comes. Only a failure to start
/// is an error, and a cancellation (the group is stopped: SIGTERM, then
/// SIGKILL after `grace`).
pub fn run(
    tools: &host::Tools,
    env: &[(String, String)],
    cmd: &host::Cmd,
    sink: &mut LogSink,
    cancel: &Cancel,
    grace: Duration,
) -> Result<Exit> {
    let mut c = Command::new(tools.resolve(&cmd.program));
    c.args(&cmd.args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = c.spawn().map_err(|e| Error::Spawn {
        command: cmd.to_string(),
        msg: e.to_string(),
    })?;
    let pgid = child.id() as i32;
    let _reg = cleanup::on_interrupt(Action::KillGroup(pgid));
    if let (Some(input), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
    let mut readers = vec![];
    for (is_err, r) in [
        (
            false,
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        ),
        (
            true,
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
        ),
    ] {
        if let Some(r) = r {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                let mut br = BufReader::new(r);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match br.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let l = String::from_utf8_lossy(&buf);
                            let l = l.trim_end_matches(['\n', '\r']).to_string();
                            if tx.send((is_err, l)).is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
    }
    drop(tx);
    let mut last_stderr = String::new();
    let mut stopping: Option<Instant> = None;
    let mut killed = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((is_err, l)) => {
                if is_err && !l.trim().is_empty() {
                    last_stderr = l.trim().to_string();
                }
                sink.line(&l);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if cancel.is_cancelled() {
            match stopping {
                None => {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
                    stopping = Some(Instant::now());
                }
                Some(t) if !killed && t.elapsed() >= grace => {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                    killed = true;
                }
                _ => {}
            }
        }
    }
    // stdout and stderr are closed: the command is gone or daemonized
    // something holding neither; take its status (and its group's
    // stragglers when cancelled)
    let status = child.wait().map_err(|e| Error::Spawn {
        command: cmd.to_string(),
        msg: e.to_string(),
    })?;
    for r in readers {
        let _ = r.join();
    }
    if cancel.is_cancelled() {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        return Err(Error::Cancelled(format!("{cmd} stopped")));
    }
    Ok(Exit {
        code: status.code(),
        last_stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_while_the_command_runs() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("run.log");
        let go = d.path().join("go");
        let script = format!(
            "echo first; echo oops >&2; while [ ! -f '{}' ]; do sleep 0.05; done; echo last",
            go.display()
        );
        let cmd = host::Cmd::new("/bin/sh", &["-c", &script]);
        let log2 = log.clone();
        let go2 = go.clone();
        // the test's side: wait for the first line in the file, then let
        // the command finish
        let watcher = std::thread::spawn(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if std::fs::read_to_string(&log2)
                    .unwrap_or_default()
                    .contains("first\n")
                {
                    std::fs::write(&go2, b"").unwrap();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::fs::write(&go2, b"").unwrap();
            false
        });
        let mut sink = LogSink::to_file(&log, false).unwrap();
        let exit = run(
            &host::Tools::default(),
            &[],
            &cmd,
            &mut sink,
            &Cancel::new(),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(
            watcher.join().unwrap(),
            "the line was not in the file while the command ran"
        );
        assert!(exit.success());
        assert_eq!(exit.last_stderr, "oops");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("first\n") && text.ends_with("last\n"),
            "{text}"
        );
        assert_eq!(sink.text(), text);
    }

    #[test]
    fn cancel_stops_the_process_group() {
        let d = tempfile::tempdir().unwrap();
        let pidf = d.path().join("pid");
        // a child of the shell that would outlive it
        let script = format!("sleep 30 & echo $! > '{}'; wait", pidf.display());
        let cmd = host::Cmd::new("/bin/sh", &["-c", &script]);
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        let p2 = pidf.clone();
        std::thread::spawn(move || {
            while !p2.exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
            c2.cancel();
        });
        let t = Instant::now();
        let e = run(
            &host::Tools::default(),
            &[],
            &cmd,
            &mut LogSink::memory(false),
            &cancel,
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Cancelled(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidf)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "the build's child {pid} survived the cancel");
    }
}
