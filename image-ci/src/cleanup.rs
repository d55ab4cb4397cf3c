//! What must not outlive image-ci: VMs (qemu, bhyve), builders
//! (mmdebstrap), mounts, loop devices and temporary files.
//!
//! Every such thing is owned by a guard that undoes it when dropped (the
//! normal path, also on errors and panics). While it lives it is also
//! registered here, so that an interrupted image-ci (SIGINT, SIGTERM,
//! SIGHUP) undoes it too: [`install`] blocks those signals in the calling
//! thread (call it first thing in `main`, before any thread exists: new
//! threads inherit the mask) and starts a thread that waits for them with
//! `sigwait`, runs every registered action (newest first) and exits with
//! 128 + the signal number. Children do not inherit the mask: the standard
//! library empties the signal mask of every process it spawns.
//!
//! A run that can stop cleanly (the service, a run that made its zone)
//! asks for [`graceful`] handling: the first signal then cancels the run
//! (its [`Cancel`]) and sends SIGTERM to every registered process group
//! (the build, a boot test's VM), and the run ends by itself (marked
//! interrupted, its zone deleted); a second signal takes the hard way
//! above.
//!
//! Children that are registered run in their own process group
//! ([`std::os::unix::process::CommandExt::process_group`]), so a terminal's
//! Ctrl-C reaches image-ci only, and image-ci kills the whole group
//! (qemu and anything it started). SIGKILL cannot be caught: a VM started
//! by an image-ci killed with SIGKILL is left running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::stream::Cancel;

use nix::sys::signal::{killpg, SigSet, Signal};
use nix::unistd::Pid;

/// Something to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL a process group.
    KillGroup(i32),
    /// Run a command (an `umount`, a `losetup -d`, a `bhyvectl --destroy`).
    Run(Vec<String>),
    /// Remove a file or a directory tree (after unmounting anything
    /// mounted below it; a tree with a mount that stays is not removed).
    Remove(PathBuf),
}

struct Entry {
    id: u64,
    action: Action,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);
static GRACEFUL: Mutex<Option<Cancel>> = Mutex::new(None);
static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// Stop cleanly on the first SIGINT, SIGTERM or SIGHUP: `cancel` is
/// cancelled and every registered process group gets SIGTERM; a second
/// signal undoes everything at once and exits.
pub fn graceful(cancel: Cancel) {
    if let Ok(mut g) = GRACEFUL.lock() {
        *g = Some(cancel);
    }
}

/// The signal that asked for a clean stop, if one did.
pub fn stopped_by() -> Option<i32> {
    match STOPPED_BY.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// Send `sig` to every registered process group.
pub fn signal_groups(sig: Signal) {
    for a in pending() {
        if let Action::KillGroup(pg) = a {
            let _ = killpg(Pid::from_raw(pg), sig);
        }
    }
}

/// A registration; dropping it unregisters the action (without running it:
/// the owner undoes what it owns).
#[derive(Debug)]
#[must_use = "the action is unregistered when this is dropped"]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut r) = REGISTRY.lock() {
            r.retain(|e| e.id != self.0);
        }
    }
}

/// Register `action` to run if image-ci is interrupted.
pub fn on_interrupt(action: Action) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut r) = REGISTRY.lock() {
        r.push(Entry { id, action });
    }
    Registered(id)
}

/// The actions registered now, oldest first (for tests and messages).
pub fn pending() -> Vec<Action> {
    REGISTRY
        .lock()
        .map(|r| r.iter().map(|e| e.action.clone()).collect())
        .unwrap_or_default()
}

/// Run one action now.
pub fn run(action: &Action) {
    match action {
        Action::KillGroup(pgid) => {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
        Action::Run(argv) => {
            if let Some((prog, args)) = argv.split_first() {
                let _ = Command::new(prog)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        Action::Remove(p) => {
            let _ = remove_tree(p);
        }
    }
}

/// Run every registered action, newest first, and forget them.
pub fn run_all() {
    let actions: Vec<Action> = match REGISTRY.lock() {
        Ok(mut r) => r.drain(..).rev().map(|e| e.action).collect(),
        Err(_) => return,
    };
    for a in &actions {
        run(a);
    }
}

/// Block SIGINT, SIGTERM and SIGHUP in this thread and undo everything
/// registered when one arrives, then exit with 128 + its number. Call it
/// once, first thing in `main`.
pub fn install() -> std::io::Result<()> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("image-ci-signals".into())
        .spawn(move || loop {
            let Ok(sig) = set.wait() else { continue };
            let clean = GRACEFUL.lock().ok().and_then(|g| g.clone());
            if let Some(c) = clean.filter(|_| stopped_by().is_none()) {
                STOPPED_BY.store(sig as i32, Ordering::SeqCst);
                c.cancel();
                signal_groups(Signal::SIGTERM);
                tracing::warn!(signal = sig.as_str(), "stopping: the current stage is finished or stopped, the run is recorded as interrupted");
                eprintln!(
                    "image-ci: {}: stopping after the current stage (again to stop at once)",
                    sig.as_str()
                );
                continue;
            }
            let n = pending().len();
            run_all();
            eprintln!(
                "image-ci: interrupted by {}: {n} cleanup action(s) run (VMs and builders killed, mounts and loop devices undone, temporary files removed)",
                sig.as_str()
            );
            std::process::exit(128 + sig as i32);
        })?;
    Ok(())
}

/// Mount points at or below `dir`, deepest first (Linux: from
/// /proc/self/mountinfo; elsewhere none are known).
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return vec![];
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .map(PathBuf::from)
        .filter(|m| m.starts_with(&dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Remove a file or a tree. Anything mounted below it is unmounted first
/// (lazily); if a mount stays, the tree is left alone (removing through a
/// mount of a host directory would delete host files).
pub fn remove_tree(p: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(p);
    }
    for m in mounts_below(p) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&m)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    let left = mounts_below(p);
    if !left.is_empty() {
        return Err(std::io::Error::other(format!(
            "{} is still mounted: not removed",
            left[0].display()
        )));
    }
    std::fs::remove_dir_all(p)
}

/// A temporary directory removed (with [`remove_tree`]) when dropped or
/// when image-ci is interrupted.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    _reg: Registered,
}

impl TempDir {
    /// A new directory `image-ci-<what>-XXXX` in `parent` (the system
    /// temporary directory when `None`).
    pub fn new(what: &str, parent: Option<&Path>) -> std::io::Result<TempDir> {
        let mut b = tempfile::Builder::new();
        let prefix = format!("image-ci-{what}-");
        b.prefix(&prefix);
        let t = match parent {
            Some(p) => {
                std::fs::create_dir_all(p)?;
                b.tempdir_in(p)?
            }
            None => b.tempdir()?,
        };
        let path = t.keep();
        Ok(TempDir {
            _reg: on_interrupt(Action::Remove(path.clone())),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = remove_tree(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_come_and_go() {
        let a = on_interrupt(Action::Run(vec!["true".into(), "image-ci-test-a".into()]));
        let b = on_interrupt(Action::KillGroup(-42));
        let p = pending();
        assert!(p.contains(&Action::Run(vec!["true".into(), "image-ci-test-a".into()])));
        assert!(p.contains(&Action::KillGroup(-42)));
        drop(a);
        drop(b);
        let p = pending();
        assert!(!p.contains(&Action::KillGroup(-42)));
    }

    #[test]
    fn temp_dirs_are_removed_on_drop() {
        let t = TempDir::new("unit", None).unwrap();
        let p = t.path().to_path_buf();
        std::fs::write(p.join("f"), b"x").unwrap();
        assert!(pending().contains(&Action::Remove(p.clone())));
        drop(t);
        assert!(!p.exists());
        assert!(!pending().contains(&Action::Remove(p)));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert!(mounts_below(Path::new("/nonexistent-image-ci")).is_empty());
    }
}
