//! The one host seam: SmartOS commands as data ([`Cmd`]), run through a
//! [`Host`], their output parsed by pure functions. See the README.
//!
//! - [`Cmd`], [`Output`], [`CmdError`]: a command, what it printed, why it
//!   failed (command, exit status, stderr kept).
//! - [`Host`]: runs commands; [`SystemHost`] runs real processes with the
//!   tools [`Tools`] finds.
//! - One module per command: [`zpool`], [`zfs`], [`zoneadm`], [`imgadm`],
//!   [`vmadm`], [`zlogin`], [`svcadm`], [`sysinfo`], [`nictagadm`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod imgadm;
pub mod nictagadm;
pub mod svcadm;
pub mod sysinfo;
pub mod vmadm;
pub mod zfs;
pub mod zlogin;
pub mod zoneadm;
pub mod zpool;

/// A command line: a program (a tool name such as `zoneadm`, resolved by
/// [`Tools`], or a path), its arguments and what to write on its stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: &str, args: &[&str]) -> Cmd {
        Cmd {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
        }
    }

    /// The same command with `data` on its stdin.
    pub fn with_stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.args.push(a.into());
        self
    }
}

/// A shell word for display: unchanged when plain, else single-quoted.
pub fn shell_word(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.program)?;
        for a in &self.args {
            write!(f, " {}", shell_word(a))?;
        }
        Ok(())
    }
}

/// What a command printed (it exited 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// stdout as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A command that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {}", stderr.trim())]
    Failed {
        command: String,
        /// `exit status: N` or the signal.
        status: String,
        /// The exit code, when it exited.
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
    #[error("{command}: timed out after {secs}s")]
    Timeout { command: String, secs: u64 },
}

impl CmdError {
    /// What the tool said, for showing to a user: its stderr, else its
    /// stdout, else this error.
    pub fn message(&self) -> String {
        match self {
            CmdError::Failed { stderr, .. } if !stderr.trim().is_empty() => {
                stderr.trim().to_string()
            }
            CmdError::Failed { stdout, .. } if !stdout.trim().is_empty() => {
                stdout.trim().to_string()
            }
            other => other.to_string(),
        }
    }
}

/// Runs commands. `Ok` only for exit status 0.
pub trait Host: Send + Sync {
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError>;
}

/// The SmartOS path of a tool the workspace runs.
pub fn smartos_path(tool: &str) -> Option<&'static str> {
    Some(match tool {
        "zpool" => "/usr/sbin/zpool",
        "zfs" => "/usr/sbin/zfs",
        "zoneadm" => "/usr/sbin/zoneadm",
        "zonecfg" => "/usr/sbin/zonecfg",
        "zlogin" => "/usr/sbin/zlogin",
        "imgadm" => "/usr/sbin/imgadm",
        "vmadm" => "/usr/sbin/vmadm",
        "svcadm" => "/usr/sbin/svcadm",
        "piadm" => "/usr/sbin/piadm",
        "sysinfo" => "/usr/bin/sysinfo",
        "nictagadm" => "/usr/bin/nictagadm",
        _ => return None,
    })
}

/// The environment variable naming a tools directory.
pub const TOOLS_DIR_ENV: &str = "SMARTOS_TOOLS_DIR";

/// Where commands are found: the tools directory when one is given, else
/// `PATH`, else the SmartOS path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tools {
    pub dir: Option<PathBuf>,
}

impl Tools {
    /// `SMARTOS_TOOLS_DIR` when set, else PATH and the SmartOS paths.
    pub fn from_env() -> Tools {
        Tools {
            dir: std::env::var_os(TOOLS_DIR_ENV)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        }
    }

    /// All tools from one directory (e.g. `sim link DIR`).
    pub fn in_dir(dir: &Path) -> Tools {
        Tools {
            dir: Some(dir.to_path_buf()),
        }
    }

    /// The program to start for `program` (a path is used as it is).
    pub fn resolve(&self, program: &str) -> PathBuf {
        if program.contains('/') {
            return PathBuf::from(program);
        }
        if let Some(d) = &self.dir {
            let p = d.join(program);
            if p.exists() {
                return p;
            }
        }
        if let Some(p) = which(program) {
            return p;
        }
        smartos_path(program)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(program))
    }

    /// Is `program` there to be run?
    pub fn has(&self, program: &str) -> bool {
        let p = self.resolve(program);
        p.is_absolute() && is_executable(&p)
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The first executable called `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

/// Runs real processes.
#[derive(Debug, Clone, Default)]
pub struct SystemHost {
    pub tools: Tools,
    /// Environment added to every command (e.g. `SIM_ROOT` for a sim node).
    pub env: Vec<(String, String)>,
}

impl SystemHost {
    pub fn new(tools: Tools) -> SystemHost {
        SystemHost { tools, env: vec![] }
    }

    fn finish(
        &self,
        cmd: &Cmd,
        started: Instant,
        status: std::process::ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Result<Output, CmdError> {
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        tracing::debug!(
            command = %cmd,
            status = %status,
            ms = started.elapsed().as_millis() as u64,
            "ran command"
        );
        if !status.success() {
            return Err(CmdError::Failed {
                command: cmd.to_string(),
                status: status.to_string(),
                code: status.code(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr,
            });
        }
        Ok(Output { stdout, stderr })
    }

    /// Run with a time limit; the process is killed when it runs over or
    /// when the future is dropped.
    #[cfg(feature = "tokio")]
    pub async fn run_async(&self, cmd: &Cmd, timeout: Duration) -> Result<Output, CmdError> {
        use std::process::Stdio;
        use tokio::io::AsyncWriteExt as _;
        let started = Instant::now();
        let mut c = tokio::process::Command::new(self.tools.resolve(&cmd.program));
        c.args(&cmd.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c.spawn().map_err(|source| CmdError::Spawn {
            command: cmd.to_string(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
            // a tool that exits without reading stdin closes the pipe
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
                let _ = pipe.shutdown().await;
            });
        }
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|source| CmdError::Spawn {
                command: cmd.to_string(),
                source,
            })?,
            Err(_) => {
                return Err(CmdError::Timeout {
                    command: cmd.to_string(),
                    secs: timeout.as_secs(),
                })
            }
        };
        self.finish(cmd, started, out.status, out.stdout, out.stderr)
    }
}

impl Host for SystemHost {
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let started = Instant::now();
        let mut c = Command::new(self.tools.resolve(&cmd.program));
        c.args(&cmd.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|source| CmdError::Spawn {
            command: cmd.to_string(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (cmd.stdin.as_ref(), child.stdin.take()) {
            let input = input.clone();
            // written from a thread so a full stdout pipe cannot deadlock us
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let out = child.wait_with_output().map_err(|source| CmdError::Spawn {
            command: cmd.to_string(),
            source,
        })?;
        self.finish(cmd, started, out.status, out.stdout, out.stderr)
    }
}

/// A host answering from a table: (command line as displayed) -> result.
/// For tests of code that runs commands.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub answers: Vec<(String, Result<String, String>)>,
    pub ran: std::sync::Mutex<Vec<String>>,
}

impl FakeHost {
    pub fn answer(mut self, command: &str, stdout: &str) -> FakeHost {
        self.answers
            .push((command.to_string(), Ok(stdout.to_string())));
        self
    }

    pub fn fail(mut self, command: &str, stderr: &str) -> FakeHost {
        self.answers
            .push((command.to_string(), Err(stderr.to_string())));
        self
    }
}

impl Host for FakeHost {
    fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        let line = cmd.to_string();
        self.ran
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.clone());
        match self.answers.iter().find(|(c, _)| *c == line) {
            Some((_, Ok(out))) => Ok(Output {
                stdout: out.clone().into_bytes(),
                stderr: String::new(),
            }),
            Some((_, Err(e))) => Err(CmdError::Failed {
                command: line,
                status: "exit status: 1".into(),
                code: Some(1),
                stdout: String::new(),
                stderr: e.clone(),
            }),
            None => Err(CmdError::Spawn {
                command: line,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such fake command"),
            }),
        }
    }
}

/// Keep `Duration` in the public API without the tokio feature.
pub type Timeout = Duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let c = Cmd::new("zlogin", &["u", "cd /x && ./build_all.sh", ""]);
        assert_eq!(c.to_string(), "zlogin u 'cd /x && ./build_all.sh' ''");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn tools_resolve_dir_then_path_then_smartos() {
        let t = tempfile_dir();
        let f = t.join("zoneadm");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(Tools::in_dir(&t).resolve("zoneadm"), f);
        assert!(Tools::in_dir(&t).has("zoneadm"));
        // not in the dir and not on PATH: the SmartOS path
        assert_eq!(
            Tools::in_dir(&t).resolve("piadm"),
            PathBuf::from("/usr/sbin/piadm")
        );
        assert_eq!(Tools::default().resolve("/bin/x"), PathBuf::from("/bin/x"));
        let _ = std::fs::remove_dir_all(&t);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("host-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn system_host_keeps_status_and_stderr() {
        let h = SystemHost::default();
        let out = h
            .run(&Cmd::new("/bin/sh", &["-c", "cat"]).with_stdin("hi"))
            .unwrap();
        assert_eq!(out.stdout, b"hi");
        let e = h
            .run(&Cmd::new("/bin/sh", &["-c", "echo nope >&2; exit 3"]))
            .unwrap_err();
        match &e {
            CmdError::Failed { code, stderr, .. } => {
                assert_eq!((*code, stderr.trim()), (Some(3), "nope"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.message(), "nope");
        assert!(matches!(
            h.run(&Cmd::new("/nonexistent/tool", &[])),
            Err(CmdError::Spawn { .. })
        ));
    }

    #[test]
    fn fake_host_answers_from_its_table() {
        let h = FakeHost::default()
            .answer("zpool list -H -p -o name", "zones\n")
            .fail("imgadm get -P zones u", "no such image");
        assert_eq!(zpool::pools(&h).unwrap(), ["zones"]);
        assert_eq!(
            imgadm::image_type(&h, "zones", "u").unwrap_err(),
            "no such image"
        );
        assert_eq!(h.ran.lock().unwrap().len(), 2);
    }
}
