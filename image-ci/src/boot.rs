//! Boot tests: an image ships only after a VM booted from it printed a
//! marker (by default a login prompt) on its serial console in time.
//!
//! - [`Qemu`](crate::qemu::Qemu) (Linux, any host with
//!   `qemu-system-x86_64`): the stream becomes a sparse raw disk, qemu boots
//!   it with KVM when `/dev/kvm` opens (again under TCG when KVM fails
//!   before the marker), COM1 goes to a file that is watched for the marker.
//! - [`Bhyve`](crate::bhyve::Bhyve) (illumos, in the builder zone): `zfs
//!   receive` into the zone's delegated dataset, `bhyve` with a UEFI bootrom,
//!   virtio-blk on the zvol and COM1 on a socket; elsewhere it fails with
//!   "only on illumos".
//!
//! Both fail on timeout, and at once when the guest powers off (or resets)
//! before the marker; the VM is always destroyed and its temporary files
//! removed, also when image-ci is interrupted ([`crate::cleanup`]). The
//! console log is kept where the caller asks (the pipeline: next to the
//! run's build log) and its last lines go into the result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use crate::error::Error;

/// The default marker: a login prompt (`debian login: `).
pub const DEFAULT_MARKER: &str = "login:";
/// The default time a guest has to print the marker.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How many console lines a result carries.
pub const TAIL_LINES: usize = 15;

/// What to boot.
#[derive(Debug, Clone, Copy)]
pub struct BootRequest<'a> {
    /// The image as it ships (`.zfs.gz`; a plain stream works too).
    pub image: &'a Path,
    /// Its manifest (`disk_driver`, `nic_driver`, `image_size`).
    pub manifest: &'a Value,
    /// The raw disk already written from the stream (by verification),
    /// if any; the qemu test writes its own otherwise.
    pub disk: Option<&'a Path>,
    /// Where to keep the console log (none: it goes with the VM).
    pub console_log: Option<&'a Path>,
}

/// What a boot showed, passed or not.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BootDetails {
    /// `kvm`, `tcg`, `bhyve`.
    pub accel: Option<String>,
    /// Why a first accelerator was given up (KVM failed, TCG retried).
    pub fallback: Option<String>,
    /// The kept console log.
    pub console_log: Option<PathBuf>,
    /// The console's last lines (escape sequences removed).
    pub console_tail: Vec<String>,
    /// Seconds from start to marker (or to the failure).
    pub seconds: Option<f64>,
}

/// A boot that reached its marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Booted {
    /// One line: what booted, how, how fast.
    pub detail: String,
    pub details: BootDetails,
}

/// A boot that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct BootFailed {
    pub msg: String,
    pub details: Box<BootDetails>,
}

impl std::fmt::Display for BootFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)?;
        let tail: Vec<&str> = self
            .details
            .console_tail
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
        if !tail.is_empty() {
            write!(f, "; console tail: {}", tail.join(" | "))?;
        }
        Ok(())
    }
}

impl std::error::Error for BootFailed {}

impl From<Error> for BootFailed {
    fn from(e: Error) -> Self {
        BootFailed {
            msg: e.to_string(),
            details: Box::default(),
        }
    }
}

/// A boot test of a built image.
pub trait BootTest: Send {
    /// A short name for reports (`qemu`, `bhyve`).
    fn name(&self) -> &'static str;
    /// The builder zone is known (made for the run): boot tests that run
    /// in it (bhyve) use it.
    fn set_zone(&mut self, _zone: &str) {}
    /// Boot the image; `Ok` only when the marker appeared in time. Any
    /// `Err` means the image must not ship.
    fn boot(&self, req: &BootRequest<'_>) -> Result<Booted, BootFailed>;
}

/// How a boot is judged: the marker and the time allowed.
#[derive(Debug, Clone)]
pub struct Judge {
    pub marker: Regex,
    pub timeout: Duration,
}

impl Default for Judge {
    fn default() -> Self {
        Judge {
            marker: Regex::new(DEFAULT_MARKER).expect("the default marker is a regex"),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Judge {
    /// A marker regex from the command line.
    pub fn new(marker: &str, timeout: Duration) -> Result<Judge, Error> {
        let marker = Regex::new(marker)
            .map_err(|e| Error::Invalid(format!("boot marker {marker:?}: {e}")))?;
        if timeout.is_zero() {
            return Err(Error::Invalid("boot timeout must be more than 0 s".into()));
        }
        Ok(Judge { marker, timeout })
    }
}

/// The name of the default boot test here: `bhyve` on illumos, `qemu`
/// elsewhere.
pub fn default_name() -> &'static str {
    if cfg!(target_os = "illumos") {
        "bhyve"
    } else {
        "qemu"
    }
}

/// Console bytes as text: ANSI escape sequences and other control
/// characters (but newlines and tabs) removed.
pub fn console_text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final(0x40..0x7e); other ESC x: two chars
                if it.peek() == Some(&'[') {
                    it.next();
                    for d in it.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&d) {
                            break;
                        }
                    }
                } else {
                    it.next();
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The last `n` non-empty console lines.
pub fn tail_lines(bytes: &[u8], n: usize) -> Vec<String> {
    let text = console_text(bytes);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The disk and nic models the manifest asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskDriver {
    Virtio,
    Ahci,
    Ide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicDriver {
    Virtio,
    E1000,
}

/// `disk_driver` (default virtio, as vmadm's).
pub fn disk_driver(m: &Value) -> Result<DiskDriver, Error> {
    match m["disk_driver"].as_str().unwrap_or("virtio") {
        "virtio" => Ok(DiskDriver::Virtio),
        "ahci" => Ok(DiskDriver::Ahci),
        "ide" => Ok(DiskDriver::Ide),
        other => Err(Error::Invalid(format!(
            "manifest disk_driver {other:?}: not virtio, ahci or ide"
        ))),
    }
}

/// `nic_driver` (default virtio).
pub fn nic_driver(m: &Value) -> Result<NicDriver, Error> {
    match m["nic_driver"].as_str().unwrap_or("virtio") {
        "virtio" => Ok(NicDriver::Virtio),
        "e1000" => Ok(NicDriver::E1000),
        other => Err(Error::Invalid(format!(
            "manifest nic_driver {other:?}: not virtio or e1000"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_text_drops_escapes() {
        let raw = b"\x1b[0;32m  OK  \x1b[0m] Started x.\r\n\x1b[?25l\x1bcdebian login: ";
        assert_eq!(console_text(raw), "  OK  ] Started x.\ndebian login: ");
        assert_eq!(
            tail_lines(b"a\r\n\r\nb\nc\n", 2),
            vec!["b".to_string(), "c".to_string()]
        );
        assert!(tail_lines(b"", 3).is_empty());
    }

    #[test]
    fn judge_and_failure_text() {
        assert!(Judge::new("(", Duration::from_secs(1)).is_err());
        assert!(Judge::new("x", Duration::ZERO).is_err());
        let j = Judge::default();
        assert!(j.marker.is_match("debian login: "));
        assert_eq!(j.timeout, Duration::from_secs(300));
        let f = BootFailed {
            msg: "no marker".into(),
            details: Box::new(BootDetails {
                console_tail: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                ..Default::default()
            }),
        };
        assert_eq!(f.to_string(), "no marker; console tail: b | c | d");
    }

    #[test]
    fn drivers_from_the_manifest() {
        let m = serde_json::json!({"disk_driver": "virtio", "nic_driver": "e1000"});
        assert_eq!(disk_driver(&m).unwrap(), DiskDriver::Virtio);
        assert_eq!(nic_driver(&m).unwrap(), NicDriver::E1000);
        assert_eq!(disk_driver(&Value::Null).unwrap(), DiskDriver::Virtio);
        assert!(disk_driver(&serde_json::json!({"disk_driver": "scsi"})).is_err());
    }

    #[test]
    fn default_boot_test_per_os() {
        #[cfg(target_os = "illumos")]
        assert_eq!(default_name(), "bhyve");
        #[cfg(not(target_os = "illumos"))]
        assert_eq!(default_name(), "qemu");
    }
}
