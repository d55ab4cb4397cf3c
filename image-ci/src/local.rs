//! The local build (Linux, as root): a real Debian cloud image, written as
//! triton-cloud-images' `build_all.sh` writes its artifacts.
//!
//! Per target (`debian-12` = bookworm, `debian-13` = trixie):
//!
//! 1. disk: a sparse raw disk of the manifest's `image_size` MiB, one MBR
//!    partition from 1 MiB (bootable), ext4 on a loop device over it,
//!    mounted in a temporary directory;
//! 2. download, install: `mmdebstrap --mode=unshare --variant=minbase`
//!    with `linux-image-cloud-amd64`, `systemd-sysv` and `udev` from
//!    Debian's archive (main, updates, security) straight into the mounted
//!    filesystem. Downloaded packages are kept in the cache directory
//!    (`<cache>/debs/<suite>/`, held under a lock) and handed to the next
//!    build (mmdebstrap's `sync-in`/`sync-out` hooks with
//!    `--skip=download/empty --skip=essential/unlink`), so a rebuild
//!    downloads only what changed in the archive;
//! 3. boot: hostname, fstab, DHCP on every ethernet nic
//!    (systemd-networkd), extlinux in `/boot/extlinux` with the kernel
//!    console on `ttyS0` (systemd then starts a serial getty there, the
//!    login prompt the boot test waits for), syslinux's MBR; unmounted and
//!    detached;
//! 4. stream: the disk as a zvol send stream
//!    (`<target>-<YYYYMMDD>.x86_64.zfs`, zvol-stream; all-zero blocks are
//!    holes);
//! 5. gzip: `.zfs.gz` (the `.zfs` removed, as `gzip` does), and the
//!    manifest filled from `manifest.in` and `imgconfigs.json` with the
//!    `.gz`'s sha1 and size.
//!
//! Every mount, loop device, process and temporary file is undone when the
//! build ends, fails or is interrupted ([`crate::cleanup`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};

use crate::artifact::{self, fill, Fill};
use crate::build::{Build, BuildRun, Output, Prepared};
use crate::buildlog::Failure;
use crate::checkout::{Checkout, Target};
use crate::cleanup::{self, Action, Registered};
use crate::commands::{display_command as display, Requirement};
use crate::error::{Error, Result};
use crate::progress::{Counting, Mode, Progress};
use crate::stages::Stages;
use crate::stream::{Cancel, LogSink};

/// Packages every image gets (besides minbase).
pub const PACKAGES: &[&str] = &[
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "udev",
    "e2fsprogs",
];
/// Debian's archive.
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// Debian's security archive.
pub const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
/// syslinux's MBR boot code (package syslinux-common).
pub const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// Where the partition starts.
pub const PART_OFFSET: u64 = 1 << 20;
/// The hostname (the login prompt is `debian login: `).
pub const HOSTNAME: &str = "debian";
/// The tools the local build runs.
pub const TOOLS: &[&str] = &[
    "mmdebstrap",
    "sfdisk",
    "losetup",
    "mkfs.ext4",
    "mount",
    "umount",
    "extlinux",
];

/// The Debian suite a target is built from.
pub fn suite_for(target: &str) -> Option<&'static str> {
    match target {
        "debian-12" => Some("bookworm"),
        "debian-13" => Some("trixie"),
        _ => None,
    }
}

/// The default cache directory: `$XDG_CACHE_HOME/image-ci`, else
/// `$HOME/.cache/image-ci`, else `target/image-ci-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("image-ci");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(h).join(".cache/image-ci");
    }
    PathBuf::from("target/image-ci-cache")
}

/// A local build.
#[derive(Debug, Clone)]
pub struct LocalBuild {
    /// A triton-cloud-images checkout (or any directory with its
    /// `imgconfigs.json` and `manifest.in`).
    pub checkout: PathBuf,
    /// Where `output-<slug>-x86_64/` go (often the checkout).
    pub output: PathBuf,
    /// Downloaded packages, kept between builds.
    pub cache_dir: PathBuf,
    pub mirror: String,
    pub security_mirror: String,
    /// More packages to install.
    pub extra_packages: Vec<String>,
    pub progress: Mode,
    pub now: fn() -> DateTime<Utc>,
}

impl LocalBuild {
    /// Build from `checkout` into `output` with the defaults.
    pub fn new(checkout: &Path, output: &Path) -> LocalBuild {
        LocalBuild {
            checkout: checkout.into(),
            output: output.into(),
            cache_dir: default_cache_dir(),
            mirror: MIRROR.into(),
            security_mirror: SECURITY_MIRROR.into(),
            extra_packages: vec![],
            progress: Mode::detect(),
            now: Utc::now,
        }
    }

    /// The package cache of one suite.
    pub fn debs_dir(&self, suite: &str) -> PathBuf {
        self.cache_dir.join("debs").join(suite)
    }
}

/// The mmdebstrap command line (build).
pub fn mmdebstrap_argv(
    suite: &str,
    target_dir: &Path,
    debs: &Path,
    mirror: &str,
    security_mirror: &str,
    extra: &[String],
) -> Vec<String> {
    let mut pkgs: Vec<String> = PACKAGES.iter().map(|s| s.to_string()).collect();
    pkgs.extend(extra.iter().cloned());
    let debs_q = crate::commands::sh_quote(&debs.display().to_string());
    vec![
        "mmdebstrap".into(),
        "--mode=unshare".into(),
        "--variant=minbase".into(),
        format!("--include={}", pkgs.join(",")),
        "--skip=download/empty".into(),
        "--skip=essential/unlink".into(),
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/".into(),
        format!("--setup-hook=sync-in {debs_q} /var/cache/apt/archives/"),
        format!("--customize-hook=sync-out /var/cache/apt/archives {debs_q}"),
        "--customize-hook=chroot \"$1\" systemctl enable systemd-networkd".into(),
        suite.into(),
        target_dir.display().to_string(),
        format!("deb {mirror} {suite} main"),
        format!("deb {mirror} {suite}-updates main"),
        format!("deb {security_mirror} {suite}-security main"),
    ]
}

/// sfdisk's input: one bootable Linux partition from 1 MiB to the end.
pub fn sfdisk_script() -> String {
    format!(
        "label: dos\nstart={}, type=83, bootable\n",
        PART_OFFSET / 512
    )
}

/// `losetup` over the partition of a raw disk of `disk_size` bytes.
pub fn losetup_argv(raw: &Path, disk_size: u64) -> Vec<String> {
    vec![
        "losetup".into(),
        "--find".into(),
        "--show".into(),
        "--offset".into(),
        PART_OFFSET.to_string(),
        "--sizelimit".into(),
        (disk_size - PART_OFFSET).to_string(),
        raw.display().to_string(),
    ]
}

/// `mkfs.ext4` without the features syslinux 6.04 cannot boot from
/// (64bit, metadata_csum).
pub fn mkfs_argv(dev: &str, fs_uuid: &str) -> Vec<String> {
    [
        "mkfs.ext4",
        "-q",
        "-O",
        "^64bit,^metadata_csum",
        "-L",
        "root",
        "-U",
        fs_uuid,
        dev,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `/boot/extlinux/extlinux.conf`.
pub fn extlinux_conf(kernel_version: &str, fs_uuid: &str) -> String {
    format!(
        "SERIAL 0 115200\nDEFAULT debian\nPROMPT 0\nTIMEOUT 0\n\nLABEL debian\n  \
         LINUX /boot/vmlinuz-{kernel_version}\n  INITRD /boot/initrd.img-{kernel_version}\n  \
         APPEND root=UUID={fs_uuid} ro console=tty0 console=ttyS0,115200n8\n"
    )
}

/// `/etc/fstab`.
pub fn fstab(fs_uuid: &str) -> String {
    format!("UUID={fs_uuid} / ext4 errors=remount-ro 0 1\n")
}

/// DHCP on every ethernet nic (systemd-networkd).
pub const NETWORK_CONF: &str = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n";

/// The newest kernel version in a `/boot` listing (`vmlinuz-<version>`).
pub fn kernel_version<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut v: Vec<&str> = names
        .into_iter()
        .filter_map(|n| n.strip_prefix("vmlinuz-"))
        .collect();
    v.sort();
    v.last().map(|s| s.to_string())
}

/// `image_size` (MiB) of the manifest `manifest.in` fills to.
pub fn image_size_mib(manifest_in: &str) -> Result<u64> {
    let f = Fill {
        uuid: "00000000-0000-0000-0000-000000000000".into(),
        name: "x".into(),
        version: "x".into(),
        published_at: "x".into(),
        os: "x".into(),
        description: "x".into(),
        homepage: "x".into(),
        sha1: "x".into(),
        size: 0,
    };
    let v: serde_json::Value = serde_json::from_str(&fill(manifest_in, &f))
        .map_err(|e| Error::Invalid(format!("manifest.in does not fill to JSON: {e}")))?;
    v["image_size"]
        .as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Invalid("manifest.in has no positive image_size".into()))
}

/// The build's log: every line goes to the run's log file as it comes.
type Log = LogSink;

/// Run `argv` through the host seam (found on PATH), with its command line
/// and then its output in the build log.
fn run_logged(log: &mut Log, argv: &[String], stdin: Option<&str>) -> Result<String> {
    use host::Host as _;
    let mut cmd = host::Cmd::new(&argv[0], &[]);
    cmd.args = argv[1..].to_vec();
    cmd.stdin = stdin.map(|s| s.as_bytes().to_vec());
    log.line(&format!("+ {cmd}"));
    let (out, err, r) = match host::SystemHost::new(host::Tools::default()).run(&cmd) {
        Ok(o) => (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            o.stderr,
            Ok(()),
        ),
        Err(e) => match &e {
            host::CmdError::Failed { stdout, stderr, .. } => {
                (stdout.clone(), stderr.clone(), Err(e))
            }
            _ => (String::new(), String::new(), Err(e)),
        },
    };
    for l in out.lines().chain(err.lines()) {
        log.line(l);
    }
    r?;
    Ok(out)
}

/// A loop device, detached when dropped.
struct Loop {
    dev: String,
    _reg: Registered,
}

impl Drop for Loop {
    fn drop(&mut self) {
        cleanup::run(&Action::Run(vec![
            "losetup".into(),
            "-d".into(),
            self.dev.clone(),
        ]));
    }
}

/// A mount, unmounted when dropped.
struct Mount {
    dir: PathBuf,
    mounted: bool,
    _reg: Registered,
}

impl Mount {
    fn unmount(&mut self, log: &mut Log) -> Result<()> {
        if self.mounted {
            run_logged(
                log,
                &["umount".into(), self.dir.display().to_string()],
                None,
            )?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            cleanup::run(&Action::Run(vec![
                "umount".into(),
                "-l".into(),
                self.dir.display().to_string(),
            ]));
        }
    }
}

/// What one target's build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub image: PathBuf,
    pub manifest: PathBuf,
    pub sha1: String,
    pub size: u64,
}

impl LocalBuild {
    fn build_one(&self, co: &Checkout, t: &Target, log: &mut Log) -> Result<Built> {
        let suite = suite_for(&t.name).ok_or_else(|| {
            Error::Invalid(format!(
                "a local build makes Debian images only (debian-12, debian-13), not {}",
                t.name
            ))
        })?;
        let p = Progress::new(self.progress, &t.name);
        let now = (self.now)();
        let version = artifact::version_for(now.date_naive());
        let out_dir = self.output.join(artifact::output_dir(&t.name));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e: std::io::Error| Error::io(p, e)
        };
        if out_dir.exists() {
            cleanup::remove_tree(&out_dir).map_err(io(&out_dir))?;
        }
        std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
        let size = image_size_mib(&co.manifest_in)? * 1024 * 1024;
        let work = cleanup::TempDir::new(&format!("build-{}", t.name), Some(&self.output))
            .map_err(io(&self.output))?;
        let fs_uuid = uuid::Uuid::new_v4().to_string();

        // disk
        let step = p.step("disk", None);
        let raw = work.path().join("disk.raw");
        File::create(&raw)
            .and_then(|f| f.set_len(size))
            .map_err(io(&raw))?;
        run_logged(
            log,
            &["sfdisk".into(), "-q".into(), raw.display().to_string()],
            Some(&sfdisk_script()),
        )?;
        let dev = run_logged(log, &losetup_argv(&raw, size), None)?
            .trim()
            .to_string();
        if !dev.starts_with("/dev/") {
            return Err(Error::Invalid(format!(
                "losetup said {dev:?}, not a device"
            )));
        }
        let lo = Loop {
            _reg: cleanup::on_interrupt(Action::Run(vec![
                "losetup".into(),
                "-d".into(),
                dev.clone(),
            ])),
            dev,
        };
        run_logged(log, &mkfs_argv(&lo.dev, &fs_uuid), None)?;
        let mnt = work.path().join("root");
        std::fs::create_dir_all(&mnt).map_err(io(&mnt))?;
        run_logged(
            log,
            &["mount".into(), lo.dev.clone(), mnt.display().to_string()],
            None,
        )?;
        let mut mount = Mount {
            _reg: cleanup::on_interrupt(Action::Run(vec![
                "umount".into(),
                "-l".into(),
                mnt.display().to_string(),
            ])),
            dir: mnt.clone(),
            mounted: true,
        };
        step.finish(&format!("{} MiB, MBR, ext4", size >> 20));

        // download, install
        let debs = self.debs_dir(suite);
        std::fs::create_dir_all(&debs).map_err(io(&debs))?;
        let lock_path = self.cache_dir.join("debs").join(format!("{suite}.lock"));
        let lf = File::create(&lock_path).map_err(io(&lock_path))?;
        let mut cache_lock = fd_lock::RwLock::new(lf);
        let _held = cache_lock.write().map_err(io(&lock_path))?;
        let argv = mmdebstrap_argv(
            suite,
            &mnt,
            &debs,
            &self.mirror,
            &self.security_mirror,
            &self.extra_packages,
        );
        self.mmdebstrap(&p, &argv, log)?;
        drop(_held);

        // boot
        let step = p.step("boot", None);
        let boot = mnt.join("boot");
        let names: Vec<String> = std::fs::read_dir(&boot)
            .map_err(io(&boot))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let kv = kernel_version(names.iter().map(String::as_str))
            .ok_or_else(|| Error::Invalid(format!("no kernel in {}", boot.display())))?;
        let w = |rel: &str, text: &str| -> Result<()> {
            let p = mnt.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            std::fs::write(&p, text).map_err(io(&p))
        };
        w("etc/hostname", &format!("{HOSTNAME}\n"))?;
        w(
            "etc/hosts",
            &format!("127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        )?;
        w("etc/fstab", &fstab(&fs_uuid))?;
        w("etc/systemd/network/80-dhcp.network", NETWORK_CONF)?;
        w("boot/extlinux/extlinux.conf", &extlinux_conf(&kv, &fs_uuid))?;
        run_logged(
            log,
            &[
                "extlinux".into(),
                "--install".into(),
                mnt.join("boot/extlinux").display().to_string(),
            ],
            None,
        )?;
        mount.unmount(log)?;
        drop(mount);
        drop(lo);
        let mbr = std::fs::read(MBR_BIN).map_err(io(Path::new(MBR_BIN)))?;
        if mbr.len() < 440 {
            return Err(Error::Invalid(format!(
                "{MBR_BIN} is {} bytes, not 440",
                mbr.len()
            )));
        }
        {
            use std::os::unix::fs::FileExt as _;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&raw)
                .map_err(io(&raw))?;
            f.write_all_at(&mbr[..440], 0).map_err(io(&raw))?;
            f.sync_all().map_err(io(&raw))?;
        }
        step.finish(&format!("kernel {kv}, extlinux on ttyS0"));

        // stream
        let base = out_dir.join(format!("{}-{version}.x86_64.zfs", t.name));
        let step = p.step("stream", Some(size));
        {
            let input = File::open(&raw).map_err(io(&raw))?;
            let out = File::create(&base).map_err(io(&base))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
            let s = zvol_stream::write_stream(
                Counting {
                    inner: std::io::BufReader::with_capacity(1 << 20, input),
                    step: &step,
                },
                size,
                &mut w,
                &zvol_stream::WriteOptions::default(),
            )
            .map_err(|e| Error::io(&base, e))?;
            w.flush().map_err(io(&base))?;
            log.line(&format!(
                "wrote {}: {} records, {} data blocks, {} holes, {} bytes",
                base.display(),
                s.records,
                s.data_blocks,
                s.hole_blocks,
                s.stream_bytes
            ));
        }
        drop(work);
        let stream_len = std::fs::metadata(&base).map_err(io(&base))?.len();
        step.finish(&format!("{} MiB", stream_len >> 20));

        // gzip
        let gz = out_dir.join(artifact::image_file(&t.name, &version));
        let step = p.step("gzip", Some(stream_len));
        {
            let input = File::open(&base).map_err(io(&base))?;
            let out = File::create(&gz).map_err(io(&gz))?;
            let mut enc = flate2::GzBuilder::new().write(
                std::io::BufWriter::with_capacity(1 << 20, out),
                flate2::Compression::default(),
            );
            std::io::copy(
                &mut Counting {
                    inner: std::io::BufReader::with_capacity(1 << 20, input),
                    step: &step,
                },
                &mut enc,
            )
            .map_err(io(&gz))?;
            let mut w = enc.finish().map_err(io(&gz))?;
            w.flush().map_err(io(&gz))?;
            w.get_ref().sync_all().map_err(io(&gz))?;
        }
        std::fs::remove_file(&base).map_err(io(&base))?;
        let (sha1, gz_size) = crate::verify::file_digest(&gz).map_err(io(&gz))?;
        step.finish(&format!("{} MiB", gz_size >> 20));
        let manifest = out_dir.join(artifact::manifest_file(&t.name, &version));
        let text = fill(
            &co.manifest_in,
            &Fill {
                uuid: uuid::Uuid::new_v4().to_string(),
                name: t.name.clone(),
                version: version.clone(),
                published_at: artifact::published_at((self.now)()),
                os: t.os.clone(),
                description: t.desc.clone(),
                homepage: t.homepage.clone(),
                sha1: sha1.clone(),
                size: gz_size,
            },
        );
        common::fs::write_atomic(&manifest, text.as_bytes()).map_err(io(&manifest))?;
        log.line(&format!("Builds finished: {}", gz.display()));
        Ok(Built {
            image: gz,
            manifest,
            sha1,
            size: gz_size,
        })
    }

    /// Run mmdebstrap, its phases shown as the download and install steps.
    fn mmdebstrap(&self, p: &Progress, argv: &[String], log: &mut Log) -> Result<()> {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        log.line(&format!("+ {}", display(&c)));
        let mut ch = c.spawn().map_err(|e| Error::Spawn {
            command: display(&c),
            msg: e.to_string(),
        })?;
        struct Kill {
            child: std::process::Child,
            _reg: Registered,
        }
        impl Drop for Kill {
            fn drop(&mut self) {
                // a no-op once it exited; else mmdebstrap cleans up on SIGTERM
                if let Ok(None) = self.child.try_wait() {
                    let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
                    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGTERM);
                }
                let _ = self.child.wait();
            }
        }
        let stdout = ch.stdout.take();
        let stderr = ch.stderr.take();
        let pid = ch.id() as i32;
        let mut guard = Kill {
            child: ch,
            _reg: cleanup::on_interrupt(Action::KillGroup(pid)),
        };
        let out_thread = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut o) = stdout {
                let _ = o.read_to_string(&mut s);
            }
            s
        });
        let mut step = Some(p.step("download", None));
        let mut installing = false;
        if let Some(e) = stderr {
            for line in BufReader::new(e).lines().map_while(|l| l.ok()) {
                log.line(&line);
                let l = line.trim_start_matches("I: ");
                if !installing && (l.starts_with("extracting") || l.starts_with("installing")) {
                    installing = true;
                    if let Some(s) = step.take() {
                        s.finish("packages downloaded");
                    }
                    step = Some(p.step("install", None));
                }
                if let Some(s) = &step {
                    s.message(l);
                }
            }
        }
        let st = guard.child.wait().map_err(|e| Error::Spawn {
            command: argv[0].clone(),
            msg: e.to_string(),
        })?;
        let out = out_thread.join().unwrap_or_default();
        for l in out.lines() {
            log.line(l);
        }
        if !st.success() {
            return Err(Error::Command {
                command: display(&c),
                status: st.code(),
                stderr: log.text().to_string(),
            });
        }
        if let Some(s) = step.take() {
            s.finish("installed");
        }
        Ok(())
    }
}

fn uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

impl Build for LocalBuild {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn place(&self) -> String {
        "local".into()
    }

    fn checkout_dir(&self) -> Result<PathBuf> {
        Ok(self.checkout.clone())
    }

    fn output(&self) -> Result<Output> {
        std::fs::create_dir_all(&self.output).map_err(|e| Error::io(&self.output, e))?;
        Ok(Output {
            anchor: self.output.clone(),
            dir: self.output.clone(),
        })
    }

    fn prepare(
        &mut self,
        st: &mut Stages,
        _log: &mut LogSink,
        _cancel: &Cancel,
    ) -> Result<Prepared> {
        let requirements = st.run(None, "check", |_| None, || self.requirements())?;
        Ok(Prepared {
            requirements,
            commit: None,
        })
    }

    fn build(
        &self,
        co: &Checkout,
        targets: &[String],
        log: &mut LogSink,
        cancel: &Cancel,
    ) -> Result<BuildRun> {
        self.build_targets(co, targets, log, cancel)
    }
}

impl LocalBuild {
    /// What the local build needs here (root, the tools, syslinux's MBR,
    /// a usable cache); `Err(Error::LocalPreflight)` naming what is
    /// missing.
    pub fn requirements(&self) -> Result<Vec<Requirement>> {
        let mut reqs = vec![Requirement {
            ok: uid() == Some(0),
            what: "running as root (loop devices, mounts)".into(),
        }];
        for t in TOOLS {
            let found = crate::qemu::which(Path::new(t)).or_else(|| {
                ["/usr/sbin", "/sbin"]
                    .iter()
                    .map(|d| Path::new(d).join(t))
                    .find(|p| p.is_file())
            });
            reqs.push(Requirement {
                ok: found.is_some(),
                what: format!("{t} found"),
            });
        }
        reqs.push(Requirement {
            ok: Path::new(MBR_BIN).is_file(),
            what: format!("{MBR_BIN} exists (syslinux-common)"),
        });
        let cache_ok = std::fs::create_dir_all(self.cache_dir.join("debs")).is_ok();
        reqs.push(Requirement {
            ok: cache_ok,
            what: format!("cache directory {} is usable", self.cache_dir.display()),
        });
        let bad: Vec<&str> = reqs
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.what.as_str())
            .collect();
        if bad.is_empty() {
            Ok(reqs)
        } else {
            Err(Error::LocalPreflight(bad.join("; ")))
        }
    }

    fn build_targets(
        &self,
        co: &Checkout,
        targets: &[String],
        log: &mut LogSink,
        cancel: &Cancel,
    ) -> Result<BuildRun> {
        let start = log.text().len();
        let mut failed = BTreeMap::new();
        for name in targets {
            cancel.check("the local build")?;
            let t = co
                .target(name)
                .ok_or_else(|| Error::UnknownTarget(name.clone()))?;
            log.line(&format!("Building {name} (local)"));
            if let Err(e) = self.build_one(co, t, log) {
                let line = format!("local build of {name} failed: {}", one_line(&e.to_string()));
                log.line(&line);
                failed.insert(
                    name.clone(),
                    Failure {
                        exit_code: None,
                        line_no: log.text()[start..].lines().count(),
                        line,
                    },
                );
            }
        }
        Ok(BuildRun {
            command: format!(
                "local build of {} (mmdebstrap, cache {})",
                targets.join(" "),
                self.cache_dir.display()
            ),
            exit: None,
            log: log.text()[start..].to_string(),
            failed,
            unattributed: vec![],
            error: None,
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_mmdebstrap_command_line() {
        let v = mmdebstrap_argv(
            "bookworm",
            Path::new("/w/root"),
            Path::new("/cache/debs/bookworm"),
            MIRROR,
            SECURITY_MIRROR,
            &["openssh-server".into()],
        );
        assert_eq!(
            v,
            [
                "mmdebstrap",
                "--mode=unshare",
                "--variant=minbase",
                "--include=linux-image-cloud-amd64,systemd-sysv,udev,e2fsprogs,openssh-server",
                "--skip=download/empty",
                "--skip=essential/unlink",
                "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
                "--setup-hook=sync-in /cache/debs/bookworm /var/cache/apt/archives/",
                "--customize-hook=sync-out /var/cache/apt/archives /cache/debs/bookworm",
                "--customize-hook=chroot \"$1\" systemctl enable systemd-networkd",
                "bookworm",
                "/w/root",
                "deb http://deb.debian.org/debian bookworm main",
                "deb http://deb.debian.org/debian bookworm-updates main",
                "deb http://deb.debian.org/debian-security bookworm-security main",
            ]
        );
        // a cache path with a space is quoted for mmdebstrap's hook shell
        let v = mmdebstrap_argv(
            "trixie",
            Path::new("/r"),
            Path::new("/my cache"),
            "m",
            "s",
            &[],
        );
        assert_eq!(
            v[7],
            "--setup-hook=sync-in '/my cache' /var/cache/apt/archives/"
        );
    }

    #[test]
    fn golden_disk_commands_and_files() {
        assert_eq!(
            sfdisk_script(),
            "label: dos\nstart=2048, type=83, bootable\n"
        );
        assert_eq!(
            losetup_argv(Path::new("/w/disk.raw"), 10240 << 20).join(" "),
            "losetup --find --show --offset 1048576 --sizelimit 10736369664 /w/disk.raw"
        );
        assert_eq!(
            mkfs_argv("/dev/loop3", "u-1").join(" "),
            "mkfs.ext4 -q -O ^64bit,^metadata_csum -L root -U u-1 /dev/loop3"
        );
        assert_eq!(
            extlinux_conf("6.1.0-57-cloud-amd64", "u-1"),
            "SERIAL 0 115200\nDEFAULT debian\nPROMPT 0\nTIMEOUT 0\n\nLABEL debian\n  \
             LINUX /boot/vmlinuz-6.1.0-57-cloud-amd64\n  INITRD /boot/initrd.img-6.1.0-57-cloud-amd64\n  \
             APPEND root=UUID=u-1 ro console=tty0 console=ttyS0,115200n8\n"
        );
        assert_eq!(fstab("u-1"), "UUID=u-1 / ext4 errors=remount-ro 0 1\n");
        assert_eq!(
            kernel_version([
                "config-6.1.0-57-cloud-amd64",
                "vmlinuz-6.1.0-57-cloud-amd64",
                "vmlinuz-6.1.0-9-cloud-amd64"
            ]),
            Some("6.1.0-9-cloud-amd64".into())
        );
        assert_eq!(kernel_version(["initrd.img"]), None);
    }

    #[test]
    fn targets_and_sizes() {
        assert_eq!(suite_for("debian-12"), Some("bookworm"));
        assert_eq!(suite_for("debian-13"), Some("trixie"));
        assert_eq!(suite_for("ubuntu-24.04"), None);
        let t = include_str!("../../../shared/oracle/cloud-images/manifest.in");
        assert_eq!(image_size_mib(t).unwrap(), 10240);
        assert!(image_size_mib("{\"image_size\": 0}").is_err());
        assert!(image_size_mib("not json").is_err());
    }
}
