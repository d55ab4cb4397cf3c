//! The qemu boot test (Linux, or any host with `qemu-system-x86_64`).
//!
//! Build, parse, run:
//! - [`QemuCommand::argv`] is the command line as data (golden-tested);
//! - [`kvm_failure`], [`kvm_exit_error`] and [`Outcome`] read what qemu
//!   said and did;
//! - [`Qemu::boot`] writes the raw disk (unless verification already did),
//!   runs qemu in its own process group with COM1 in a file, watches that
//!   file for the marker, and kills the VM however the boot ends.
//!
//! KVM is used when `/dev/kvm` opens read-write. When qemu under KVM fails
//! before the marker (a "KVM internal error ... emulation failure", which
//! nested KVM shows for some real-mode boot loaders and which leaves the
//! VM paused, or an early exit with a KVM error), the image is booted again
//! under TCG with the whole timeout; the result says which accelerator ran
//! and why.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::boot::{
    disk_driver, nic_driver, tail_lines, BootDetails, BootFailed, BootRequest, BootTest, Booted,
    DiskDriver, Judge, NicDriver, TAIL_LINES,
};
use crate::cleanup::{self, Action, Registered};

/// The program, by default found on `PATH`.
pub const QEMU: &str = "qemu-system-x86_64";

/// An accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }
}

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM when /dev/kvm opens, TCG when KVM fails before the marker.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(format!("accelerator {s:?}: use auto, kvm or tcg")),
        }
    }
}

/// One qemu run, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// The raw disk.
    pub disk: PathBuf,
    pub disk_driver: DiskDriver,
    /// A nic on qemu's user network (restricted: no way out); `None`: no nic.
    pub nic: Option<NicDriver>,
    /// COM1 goes to this file.
    pub console: PathBuf,
}

/// A path as a qemu option value (commas doubled).
fn opt_path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

impl QemuCommand {
    /// The command line (program first).
    pub fn argv(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![self.qemu.display().to_string()];
        let mut a = |xs: &[&str]| v.extend(xs.iter().map(|s| s.to_string()));
        a(&["-name", "image-ci-boot-test", "-machine", "pc"]);
        a(&["-accel", self.accel.as_str()]);
        if self.accel == Accel::Kvm {
            a(&["-cpu", "host"]);
        }
        a(&[
            "-smp",
            &self.cpus.to_string(),
            "-m",
            &self.memory_mib.to_string(),
        ]);
        // no default devices, no config files, no display, no monitor; a
        // reset ends qemu like a poweroff (a triple-faulting guest stops)
        a(&[
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ]);
        a(&[
            "-chardev",
            &format!("file,id=com1,path={}", opt_path(&self.console)),
            "-serial",
            "chardev:com1",
        ]);
        a(&[
            "-drive",
            &format!("file={},format=raw,if=none,id=disk0", opt_path(&self.disk)),
        ]);
        match self.disk_driver {
            DiskDriver::Virtio => a(&["-device", "virtio-blk-pci,drive=disk0,bootindex=0"]),
            DiskDriver::Ahci => a(&[
                "-device",
                "ahci,id=ahci0",
                "-device",
                "ide-hd,drive=disk0,bus=ahci0.0,bootindex=0",
            ]),
            DiskDriver::Ide => a(&["-device", "ide-hd,drive=disk0,bus=ide.0,bootindex=0"]),
        }
        if let Some(nic) = self.nic {
            let model = match nic {
                NicDriver::Virtio => "virtio-net-pci",
                NicDriver::E1000 => "e1000",
            };
            // romfile= : no PXE option ROM, the disk is the only boot device
            a(&[
                "-netdev",
                "user,id=net0,restrict=on",
                "-device",
                &format!("{model},netdev=net0,romfile="),
            ]);
        }
        v
    }
}

/// A KVM failure qemu reports while it keeps running (the VM paused).
pub fn kvm_failure(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find(|l| l.contains("KVM internal error") || l.contains("emulation failure"))
        .map(|l| l.trim().to_string())
}

/// The KVM error an early qemu exit names, if any.
pub fn kvm_exit_error(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("kvm"))
        .map(|l| l.trim().to_string())
}

/// Whether KVM can be used here.
pub fn kvm_usable(dev: &Path) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .is_ok()
}

/// How one qemu run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Marker,
    Timeout,
    /// qemu exited before the marker: the guest powered off or reset (exit
    /// 0), or qemu failed.
    Exited {
        code: Option<i32>,
    },
    /// KVM failed before the marker.
    KvmFailed {
        why: String,
    },
}

/// What one run left.
#[derive(Debug, Clone)]
pub struct Run {
    pub accel: Accel,
    pub outcome: Outcome,
    pub console: Vec<u8>,
    pub stderr: String,
    pub seconds: f64,
}

/// A running VM: killed (its whole process group) and reaped when dropped.
struct Vm {
    child: Child,
    _reg: Registered,
}

impl Vm {
    fn spawn(mut cmd: Command) -> std::io::Result<Vm> {
        cmd.process_group(0);
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        Ok(Vm {
            child,
            _reg: cleanup::on_interrupt(Action::KillGroup(pid)),
        })
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        cleanup::run(&Action::KillGroup(self.child.id() as i32));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read what a file gained since `at`.
fn read_more(path: &Path, at: &mut u64, into: &mut Vec<u8>) {
    use std::io::Seek as _;
    if let Ok(mut f) = File::open(path) {
        if f.seek(std::io::SeekFrom::Start(*at)).is_ok() {
            if let Ok(n) = f.read_to_end(into) {
                *at += n as u64;
            }
        }
    }
}

/// The qemu boot test.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// `qemu-system-x86_64`, or a path.
    pub qemu: PathBuf,
    pub judge: Judge,
    pub accel: AccelChoice,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Where the temporary directory (raw disk, console) goes; the system
    /// temporary directory when `None`.
    pub temp_parent: Option<PathBuf>,
    /// The KVM device probed in `Auto`.
    pub kvm_device: PathBuf,
    /// How often the console is read.
    pub poll: Duration,
}

impl Default for Qemu {
    fn default() -> Self {
        Qemu {
            qemu: QEMU.into(),
            judge: Judge::default(),
            accel: AccelChoice::Auto,
            memory_mib: 1024,
            cpus: 1,
            temp_parent: None,
            kvm_device: "/dev/kvm".into(),
            poll: Duration::from_millis(50),
        }
    }
}

/// A program on PATH (or a path), if it exists.
pub fn which(prog: &Path) -> Option<PathBuf> {
    if prog.components().count() > 1 {
        return prog.is_file().then(|| prog.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

impl Qemu {
    /// One qemu run.
    pub fn run_once(&self, cmd: &QemuCommand, stderr_file: &Path) -> Result<Run, BootFailed> {
        let argv = cmd.argv();
        let _ = std::fs::remove_file(&cmd.console);
        let err = File::create(stderr_file)
            .map_err(|e| fail(format!("{}: {e}", stderr_file.display())))?;
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        let start = Instant::now();
        let mut vm = Vm::spawn(c).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                fail(not_found(&self.qemu))
            } else {
                fail(format!("cannot run {}: {e}", argv[0]))
            }
        })?;
        let (mut console, mut con_at) = (Vec::new(), 0u64);
        let (mut errbuf, mut err_at) = (Vec::new(), 0u64);
        let outcome = loop {
            read_more(&cmd.console, &mut con_at, &mut console);
            read_more(stderr_file, &mut err_at, &mut errbuf);
            let stderr = String::from_utf8_lossy(&errbuf);
            if self
                .judge
                .marker
                .is_match(&crate::boot::console_text(&console))
            {
                break Outcome::Marker;
            }
            if cmd.accel == Accel::Kvm {
                if let Some(why) = kvm_failure(&stderr) {
                    break Outcome::KvmFailed { why };
                }
            }
            match vm.child.try_wait() {
                Ok(Some(st)) => {
                    read_more(&cmd.console, &mut con_at, &mut console);
                    read_more(stderr_file, &mut err_at, &mut errbuf);
                    let stderr = String::from_utf8_lossy(&errbuf);
                    if self
                        .judge
                        .marker
                        .is_match(&crate::boot::console_text(&console))
                    {
                        break Outcome::Marker;
                    }
                    if cmd.accel == Accel::Kvm {
                        if let Some(why) = kvm_exit_error(&stderr) {
                            break Outcome::KvmFailed { why };
                        }
                    }
                    break Outcome::Exited { code: st.code() };
                }
                Ok(None) => {}
                Err(e) => return Err(fail(format!("waiting for qemu: {e}"))),
            }
            if start.elapsed() >= self.judge.timeout {
                break Outcome::Timeout;
            }
            std::thread::sleep(self.poll);
        };
        let seconds = start.elapsed().as_secs_f64();
        drop(vm);
        read_more(&cmd.console, &mut con_at, &mut console);
        read_more(stderr_file, &mut err_at, &mut errbuf);
        Ok(Run {
            accel: cmd.accel,
            outcome,
            console,
            stderr: String::from_utf8_lossy(&errbuf).into_owned(),
            seconds,
        })
    }

    fn first_accel(&self) -> Accel {
        match self.accel {
            AccelChoice::Kvm => Accel::Kvm,
            AccelChoice::Tcg => Accel::Tcg,
            AccelChoice::Auto if kvm_usable(&self.kvm_device) => Accel::Kvm,
            AccelChoice::Auto => Accel::Tcg,
        }
    }
}

fn fail(msg: impl Into<String>) -> BootFailed {
    BootFailed {
        msg: msg.into(),
        details: Box::default(),
    }
}

fn not_found(qemu: &Path) -> String {
    format!(
        "{} not found: install qemu-system-x86 (apt-get install qemu-system-x86) to boot-test images",
        qemu.display()
    )
}

/// The kept console log: each run's console, then qemu's stderr.
pub fn console_log_text(runs: &[Run]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in runs {
        out.extend_from_slice(
            format!(
                "=== image-ci boot test: qemu under {} ===\n",
                r.accel.title()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&r.console);
        if !r.console.ends_with(b"\n") {
            out.push(b'\n');
        }
        if !r.stderr.trim().is_empty() {
            out.extend_from_slice(b"=== qemu stderr ===\n");
            out.extend_from_slice(r.stderr.as_bytes());
            if !r.stderr.ends_with('\n') {
                out.push(b'\n');
            }
        }
    }
    out
}

/// The verdict on the last run (and the KVM run before it, if any).
pub fn judge_runs(runs: &[Run], judge: &Judge) -> Result<String, String> {
    let Some(last) = runs.last() else {
        return Err("qemu did not run".into());
    };
    let marker = judge.marker.as_str();
    let how = match runs.first() {
        Some(Run {
            outcome: Outcome::KvmFailed { why },
            ..
        }) if runs.len() > 1 => format!("under TCG (KVM failed: {why})"),
        _ => format!("under {}", last.accel.title()),
    };
    match &last.outcome {
        Outcome::Marker => Ok(format!(
            "/{marker}/ on the console after {:.1} s {how}",
            last.seconds
        )),
        Outcome::Timeout => Err(format!(
            "no /{marker}/ on the console within {} s {how}",
            judge.timeout.as_secs_f64()
        )),
        Outcome::Exited { code: Some(0) } => Err(format!(
            "the guest powered off (or reset) after {:.1} s, before /{marker}/ appeared, {how}",
            last.seconds
        )),
        Outcome::Exited { code } => Err(format!(
            "qemu failed ({}) before /{marker}/ appeared, {how}: {}",
            code.map_or("killed by a signal".into(), |c| format!("exit status {c}")),
            crate::error::last_line(&last.stderr)
        )),
        Outcome::KvmFailed { why } => Err(format!("KVM failed before /{marker}/: {why}")),
    }
}

impl BootTest for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn boot(&self, req: &BootRequest<'_>) -> Result<Booted, BootFailed> {
        if which(&self.qemu).is_none() {
            return Err(fail(not_found(&self.qemu)));
        }
        let dd = disk_driver(req.manifest)?;
        let nic = nic_driver(req.manifest)?;
        let tmp = cleanup::TempDir::new("qemu", self.temp_parent.as_deref())
            .map_err(|e| fail(format!("cannot make a temporary directory: {e}")))?;
        let disk = match req.disk {
            Some(d) => d.to_path_buf(),
            None => {
                let d = tmp.path().join("disk.raw");
                let input = zvol_stream::open_stream(req.image)
                    .map_err(|e| fail(format!("{}: {e}", req.image.display())))?;
                let mut f = File::create(&d).map_err(|e| fail(format!("{}: {e}", d.display())))?;
                zvol_stream::read_stream(input, &mut f)
                    .map_err(|e| fail(format!("{}: {e}", req.image.display())))?;
                d
            }
        };
        let mut cmd = QemuCommand {
            qemu: self.qemu.clone(),
            accel: self.first_accel(),
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            disk,
            disk_driver: dd,
            nic: Some(nic),
            console: tmp.path().join("console-kvm.log"),
        };
        let mut runs = vec![];
        loop {
            cmd.console = tmp
                .path()
                .join(format!("console-{}.log", cmd.accel.as_str()));
            let errf = tmp.path().join(format!("qemu-{}.err", cmd.accel.as_str()));
            let r = self.run_once(&cmd, &errf)?;
            let retry = matches!(r.outcome, Outcome::KvmFailed { .. })
                && self.accel == AccelChoice::Auto
                && cmd.accel == Accel::Kvm;
            runs.push(r);
            if !retry {
                break;
            }
            cmd.accel = Accel::Tcg;
        }
        let last = runs.last().expect("one run at least");
        let mut details = BootDetails {
            accel: Some(last.accel.as_str().into()),
            fallback: match &runs[0].outcome {
                Outcome::KvmFailed { why } if runs.len() > 1 => Some(format!("KVM failed: {why}")),
                _ => None,
            },
            console_log: None,
            console_tail: tail_lines(&last.console, TAIL_LINES),
            seconds: Some(last.seconds),
        };
        if let Some(p) = req.console_log {
            let text = console_log_text(&runs);
            let write = || -> std::io::Result<()> {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                File::create(p)?.write_all(&text)
            };
            if write().is_ok() {
                details.console_log = Some(p.to_path_buf());
            }
        }
        drop(tmp);
        match judge_runs(&runs, &self.judge) {
            Ok(detail) => Ok(Booted { detail, details }),
            Err(msg) => Err(BootFailed {
                msg,
                details: Box::new(details),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> QemuCommand {
        QemuCommand {
            qemu: QEMU.into(),
            accel: Accel::Kvm,
            memory_mib: 1024,
            cpus: 1,
            disk: "/tmp/b,1/disk.raw".into(),
            disk_driver: DiskDriver::Virtio,
            nic: Some(NicDriver::Virtio),
            console: "/tmp/b,1/console-kvm.log".into(),
        }
    }

    #[test]
    fn golden_command_lines() {
        assert_eq!(
            cmd().argv().join(" "),
            "qemu-system-x86_64 -name image-ci-boot-test -machine pc -accel kvm -cpu host \
             -smp 1 -m 1024 -nodefaults -no-user-config -display none -monitor none -no-reboot \
             -chardev file,id=com1,path=/tmp/b,,1/console-kvm.log -serial chardev:com1 \
             -drive file=/tmp/b,,1/disk.raw,format=raw,if=none,id=disk0 \
             -device virtio-blk-pci,drive=disk0,bootindex=0 \
             -netdev user,id=net0,restrict=on -device virtio-net-pci,netdev=net0,romfile="
        );
        let mut c = cmd();
        c.accel = Accel::Tcg;
        c.disk_driver = DiskDriver::Ahci;
        c.nic = Some(NicDriver::E1000);
        c.memory_mib = 512;
        c.cpus = 2;
        c.disk = "/d".into();
        c.console = "/c".into();
        assert_eq!(
            c.argv().join(" "),
            "qemu-system-x86_64 -name image-ci-boot-test -machine pc -accel tcg \
             -smp 2 -m 512 -nodefaults -no-user-config -display none -monitor none -no-reboot \
             -chardev file,id=com1,path=/c -serial chardev:com1 \
             -drive file=/d,format=raw,if=none,id=disk0 \
             -device ahci,id=ahci0 -device ide-hd,drive=disk0,bus=ahci0.0,bootindex=0 \
             -netdev user,id=net0,restrict=on -device e1000,netdev=net0,romfile="
        );
        c.disk_driver = DiskDriver::Ide;
        c.nic = None;
        let v = c.argv();
        assert!(v
            .join(" ")
            .ends_with("-device ide-hd,drive=disk0,bus=ide.0,bootindex=0"));
        assert!(!v.iter().any(|a| a.starts_with("-netdev")));
    }

    #[test]
    fn reads_what_qemu_says() {
        let kvm = "KVM internal error. Suberror: 1\nextra data[0]: 0x0000000000000000\nemulation failure\nEAX=00000000";
        assert_eq!(
            kvm_failure(kvm).as_deref(),
            Some("KVM internal error. Suberror: 1")
        );
        assert_eq!(
            kvm_failure("warning: host doesn't support requested feature"),
            None
        );
        assert_eq!(
            kvm_exit_error("qemu-system-x86_64: failed to initialize kvm: Permission denied")
                .as_deref(),
            Some("qemu-system-x86_64: failed to initialize kvm: Permission denied")
        );
        assert_eq!(kvm_exit_error("qemu: could not open disk"), None);
        assert!(!kvm_usable(Path::new("/nonexistent/kvm")));
        assert_eq!("tcg".parse::<AccelChoice>().unwrap(), AccelChoice::Tcg);
        assert!("xen".parse::<AccelChoice>().is_err());
    }

    #[test]
    fn verdicts() {
        let j = Judge::new("login:", Duration::from_secs(5)).unwrap();
        let run = |accel, outcome| Run {
            accel,
            outcome,
            console: b"x\n".to_vec(),
            stderr: "qemu: boom\n".into(),
            seconds: 1.25,
        };
        assert_eq!(
            judge_runs(&[run(Accel::Kvm, Outcome::Marker)], &j).unwrap(),
            "/login:/ on the console after 1.2 s under KVM"
        );
        let two = [
            run(
                Accel::Kvm,
                Outcome::KvmFailed {
                    why: "KVM internal error. Suberror: 1".into(),
                },
            ),
            run(Accel::Tcg, Outcome::Marker),
        ];
        assert_eq!(
            judge_runs(&two, &j).unwrap(),
            "/login:/ on the console after 1.2 s under TCG (KVM failed: KVM internal error. Suberror: 1)"
        );
        assert_eq!(
            judge_runs(&[run(Accel::Tcg, Outcome::Timeout)], &j).unwrap_err(),
            "no /login:/ on the console within 5 s under TCG"
        );
        assert!(
            judge_runs(&[run(Accel::Tcg, Outcome::Exited { code: Some(0) })], &j)
                .unwrap_err()
                .starts_with("the guest powered off")
        );
        assert_eq!(
            judge_runs(&[run(Accel::Tcg, Outcome::Exited { code: Some(1) })], &j).unwrap_err(),
            "qemu failed (exit status 1) before /login:/ appeared, under TCG: qemu: boom"
        );
        let log = String::from_utf8(console_log_text(&two)).unwrap();
        assert!(log.starts_with("=== image-ci boot test: qemu under KVM ===\nx\n=== qemu stderr ===\nqemu: boom\n=== image-ci boot test: qemu under TCG ==="), "{log}");
    }

    #[test]
    fn missing_qemu_says_what_to_install() {
        let q = Qemu {
            qemu: "/nonexistent/qemu-system-x86_64".into(),
            ..Default::default()
        };
        let m = serde_json::json!({});
        let e = q
            .boot(&BootRequest {
                image: Path::new("/x.zfs.gz"),
                manifest: &m,
                disk: None,
                console_log: None,
            })
            .unwrap_err();
        assert!(e.to_string().contains("install qemu-system-x86"), "{e}");
    }
}
