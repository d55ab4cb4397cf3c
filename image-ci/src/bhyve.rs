//! The bhyve boot test (illumos: SmartOS, in the builder zone).
//!
//! The stream is received into the zone's delegated dataset as a zvol
//! (`zfs receive -u <dataset>/boot-<id>`), booted with `bhyve` (UEFI
//! bootrom, virtio-blk or ahci on the zvol as `disk_driver` says, COM1 on a
//! UNIX socket in the zone's `/tmp`, which image-ci reads through the zone
//! root), and judged like the qemu test: the marker within the timeout,
//! failure at once when bhyve exits first (poweroff, reset, halt, triple
//! fault). `bhyvectl --destroy` and `zfs destroy -r` always follow, also on
//! interruption. Every command runs in the zone through `zlogin`.
//!
//! The command lines are data ([`BhyvePlan`], golden-tested anywhere); they
//! run only on illumos (`cfg(target_os = "illumos")`), elsewhere the test
//! fails with "only on illumos".

use std::path::{Path, PathBuf};

use crate::boot::{disk_driver, BootFailed, BootRequest, BootTest, Booted, DiskDriver, Judge};
use crate::commands::sh_quote;
use crate::error::Error;

/// SmartOS's UEFI firmware with a CSM (what `bootrom=bios` boots): it
/// boots both UEFI and MBR disks.
pub const DEFAULT_BOOTROM: &str = "/usr/share/bhyve/firmware/BHYVE_CSM.fd";

/// The commands of one bhyve boot test, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BhyvePlan {
    pub zlogin: PathBuf,
    pub zone: String,
    /// `<delegated dataset>/boot-<id>`.
    pub dataset: String,
    /// The VM name (`boot-<id>`).
    pub vm: String,
    pub bootrom: PathBuf,
    pub memory_mib: u32,
    pub cpus: u32,
    pub disk_driver: DiskDriver,
    /// COM1's socket, a path inside the zone.
    pub console_socket: String,
}

/// The delegated dataset of a SmartOS zone.
pub fn delegated_dataset(zone_uuid: &str) -> String {
    format!("zones/{zone_uuid}/data")
}

impl BhyvePlan {
    /// The plan for one boot, `id` making the names unique.
    pub fn new(zlogin: &Path, zone: &str, delegated: &str, id: &str, bootrom: &Path) -> BhyvePlan {
        let vm = format!("boot-{id}");
        BhyvePlan {
            zlogin: zlogin.to_path_buf(),
            zone: zone.into(),
            dataset: format!("{delegated}/{vm}"),
            console_socket: format!("/tmp/{vm}.com1"),
            vm,
            bootrom: bootrom.to_path_buf(),
            memory_mib: 1024,
            cpus: 1,
            disk_driver: DiskDriver::Virtio,
        }
    }

    /// `zlogin -Q <zone> '<argv, quoted>'`.
    pub fn in_zone(&self, argv: &[String]) -> Vec<String> {
        let line: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
        vec![
            self.zlogin.display().to_string(),
            "-Q".into(),
            self.zone.clone(),
            line.join(" "),
        ]
    }

    /// The zvol's raw device in the zone.
    pub fn zvol_device(&self) -> String {
        format!("/dev/zvol/rdsk/{}", self.dataset)
    }

    /// `zfs receive -u <dataset>` (the plain stream on stdin).
    pub fn receive(&self) -> Vec<String> {
        self.in_zone(&[
            "zfs".into(),
            "receive".into(),
            "-u".into(),
            self.dataset.clone(),
        ])
    }

    /// The bhyve command line.
    pub fn bhyve(&self) -> Vec<String> {
        let disk = match self.disk_driver {
            DiskDriver::Virtio => format!("4,virtio-blk,{}", self.zvol_device()),
            DiskDriver::Ahci | DiskDriver::Ide => format!("4,ahci-hd,{}", self.zvol_device()),
        };
        let argv: Vec<String> = [
            "bhyve",
            "-H",
            "-w",
            "-u",
            "-c",
            &self.cpus.to_string(),
            "-m",
            &format!("{}M", self.memory_mib),
            "-s",
            "0,hostbridge",
            "-s",
            "1,lpc",
            "-s",
            &disk,
            "-l",
            &format!("com1,socket,{}", self.console_socket),
            "-l",
            &format!("bootrom,{}", self.bootrom.display()),
            &self.vm,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.in_zone(&argv)
    }

    /// `bhyvectl --vm=<vm> --destroy`.
    pub fn destroy_vm(&self) -> Vec<String> {
        self.in_zone(&[
            "bhyvectl".into(),
            format!("--vm={}", self.vm),
            "--destroy".into(),
        ])
    }

    /// `zfs destroy -r <dataset>`.
    pub fn destroy_dataset(&self) -> Vec<String> {
        self.in_zone(&[
            "zfs".into(),
            "destroy".into(),
            "-r".into(),
            self.dataset.clone(),
        ])
    }
}

/// What a bhyve exit status means (bhyve(8) on illumos).
pub fn exit_meaning(code: Option<i32>) -> &'static str {
    match code {
        Some(0) => "the guest rebooted",
        Some(1) => "the guest powered off",
        Some(2) => "the guest halted",
        Some(3) => "the guest triple-faulted",
        Some(4) => "bhyve exited on an error",
        _ => "bhyve was killed",
    }
}

/// Boot a bhyve VM from the image in the builder zone (illumos only).
#[derive(Debug, Clone)]
pub struct Bhyve {
    /// The node root (`/` on SmartOS) and zlogin.
    pub root: PathBuf,
    pub zlogin: PathBuf,
    /// The builder zone to boot the test VM in.
    pub zone: String,
    /// Its delegated dataset (default `zones/<zone>/data`).
    pub dataset: Option<String>,
    pub bootrom: PathBuf,
    pub judge: Judge,
    pub memory_mib: u32,
    pub cpus: u32,
}

impl Bhyve {
    pub fn new(zone: &str) -> Bhyve {
        Bhyve {
            root: "/".into(),
            zlogin: "/usr/sbin/zlogin".into(),
            zone: zone.into(),
            dataset: None,
            bootrom: DEFAULT_BOOTROM.into(),
            judge: Judge::default(),
            memory_mib: 1024,
            cpus: 1,
        }
    }

    /// The plan for one boot of `manifest`'s image.
    pub fn plan(&self, manifest: &serde_json::Value, id: &str) -> Result<BhyvePlan, Error> {
        let ds = self
            .dataset
            .clone()
            .unwrap_or_else(|| delegated_dataset(&self.zone));
        let mut p = BhyvePlan::new(&self.zlogin, &self.zone, &ds, id, &self.bootrom);
        p.memory_mib = self.memory_mib;
        p.cpus = self.cpus;
        p.disk_driver = disk_driver(manifest)?;
        Ok(p)
    }
}

impl BootTest for Bhyve {
    fn name(&self) -> &'static str {
        "bhyve"
    }

    fn set_zone(&mut self, zone: &str) {
        self.zone = zone.to_string();
    }

    fn boot(&self, req: &BootRequest<'_>) -> Result<Booted, BootFailed> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let plan = self.plan(req.manifest, &id[..12])?;
        #[cfg(target_os = "illumos")]
        {
            run::boot(self, &plan, req)
        }
        #[cfg(not(target_os = "illumos"))]
        {
            let _ = plan;
            Err(Error::OnlyOnIllumos(format!("bhyve boot test in zone {}", self.zone)).into())
        }
    }
}

/// Running a plan (compiled everywhere, called on illumos only).
#[cfg_attr(not(target_os = "illumos"), allow(dead_code))]
mod run {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt as _;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::boot::{tail_lines, BootDetails, TAIL_LINES};
    use crate::cleanup::{self, Action};

    fn command(argv: &[String]) -> Command {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    fn fail(msg: impl Into<String>, details: BootDetails) -> BootFailed {
        BootFailed {
            msg: msg.into(),
            details: Box::new(details),
        }
    }

    /// Undo a plan's VM and dataset when dropped.
    struct Teardown<'a> {
        plan: &'a BhyvePlan,
        _regs: Vec<cleanup::Registered>,
    }

    impl Drop for Teardown<'_> {
        fn drop(&mut self) {
            cleanup::run(&Action::Run(self.plan.destroy_vm()));
            cleanup::run(&Action::Run(self.plan.destroy_dataset()));
        }
    }

    pub(super) fn boot(
        b: &Bhyve,
        plan: &BhyvePlan,
        req: &BootRequest<'_>,
    ) -> Result<Booted, BootFailed> {
        let zone_root = crate::commands::zone_root(&b.root, &b.zone)?;
        let mut details = BootDetails {
            accel: Some("bhyve".into()),
            ..Default::default()
        };
        let _teardown = Teardown {
            plan,
            _regs: vec![
                cleanup::on_interrupt(Action::Run(plan.destroy_dataset())),
                cleanup::on_interrupt(Action::Run(plan.destroy_vm())),
            ],
        };
        // receive
        let recv = plan.receive();
        let mut child = command(&recv)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", recv[0]), details.clone()))?;
        let _reg = cleanup::on_interrupt(Action::KillGroup(child.id() as i32));
        let mut input = zvol_stream::open_stream(req.image)
            .map_err(|e| fail(format!("{}: {e}", req.image.display()), details.clone()))?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::copy(&mut input, &mut stdin)
                .map_err(|e| fail(format!("zfs receive: {e}"), details.clone()))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("zfs receive: {e}"), details.clone()))?;
        if !out.status.success() {
            return Err(fail(
                format!(
                    "zfs receive {} failed: {}",
                    plan.dataset,
                    crate::error::last_line(&String::from_utf8_lossy(&out.stderr))
                ),
                details,
            ));
        }
        // boot
        let argv = plan.bhyve();
        let mut vm = command(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("cannot run bhyve: {e}"), details.clone()))?;
        let _vmreg = cleanup::on_interrupt(Action::KillGroup(vm.id() as i32));
        let sock = crate::commands::in_zone(&zone_root, &plan.console_socket);
        let start = Instant::now();
        let mut console = Vec::new();
        let mut stream: Option<UnixStream> = None;
        let mut buf = [0u8; 4096];
        let verdict = loop {
            if stream.is_none() {
                if let Ok(s) = UnixStream::connect(&sock) {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                    stream = Some(s);
                }
            }
            if let Some(s) = stream.as_mut() {
                match s.read(&mut buf) {
                    Ok(0) => stream = None,
                    Ok(n) => console.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
            if b.judge
                .marker
                .is_match(&crate::boot::console_text(&console))
            {
                break Ok(());
            }
            if let Ok(Some(st)) = vm.try_wait() {
                break Err(format!(
                    "{} (bhyve exit {}) before /{}/ appeared",
                    exit_meaning(st.code()),
                    st.code().map_or("?".into(), |c| c.to_string()),
                    b.judge.marker.as_str()
                ));
            }
            if start.elapsed() >= b.judge.timeout {
                break Err(format!(
                    "no /{}/ on the console within {} s under bhyve",
                    b.judge.marker.as_str(),
                    b.judge.timeout.as_secs_f64()
                ));
            }
        };
        let seconds = start.elapsed().as_secs_f64();
        cleanup::run(&Action::Run(plan.destroy_vm()));
        let _ = vm.kill();
        let _ = vm.wait();
        details.seconds = Some(seconds);
        details.console_tail = tail_lines(&console, TAIL_LINES);
        if let Some(p) = req.console_log {
            let mut text = b"=== image-ci boot test: bhyve ===\n".to_vec();
            text.extend_from_slice(&console);
            let ok = p
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::File::create(p))
                .and_then(|mut f| f.write_all(&text));
            if ok.is_ok() {
                details.console_log = Some(p.to_path_buf());
            }
        }
        match verdict {
            Ok(()) => Ok(Booted {
                detail: format!(
                    "/{}/ on the console after {seconds:.1} s under bhyve",
                    b.judge.marker.as_str()
                ),
                details,
            }),
            Err(msg) => Err(fail(msg, details)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> BhyvePlan {
        BhyvePlan::new(
            Path::new("/usr/sbin/zlogin"),
            "3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41",
            &delegated_dataset("3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41"),
            "0123456789ab",
            Path::new(DEFAULT_BOOTROM),
        )
    }

    #[test]
    fn golden_command_lines() {
        let p = plan();
        let z = "/usr/sbin/zlogin -Q 3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41";
        let ds = "zones/3f0a8c2e-6d7b-4f61-9a2e-5b1c0d9e7a41/data/boot-0123456789ab";
        let line = |v: Vec<String>| {
            assert_eq!(v.len(), 4);
            format!("{} {} {} [{}]", v[0], v[1], v[2], v[3])
        };
        assert_eq!(line(p.receive()), format!("{z} [zfs receive -u {ds}]"));
        assert_eq!(
            line(p.bhyve()),
            format!(
                "{z} [bhyve -H -w -u -c 1 -m 1024M -s 0,hostbridge -s 1,lpc \
                 -s 4,virtio-blk,/dev/zvol/rdsk/{ds} \
                 -l com1,socket,/tmp/boot-0123456789ab.com1 \
                 -l bootrom,/usr/share/bhyve/firmware/BHYVE_CSM.fd boot-0123456789ab]"
            )
        );
        assert_eq!(
            line(p.destroy_vm()),
            format!("{z} [bhyvectl --vm=boot-0123456789ab --destroy]")
        );
        assert_eq!(
            line(p.destroy_dataset()),
            format!("{z} [zfs destroy -r {ds}]")
        );
        let mut p = plan();
        p.disk_driver = DiskDriver::Ahci;
        p.bootrom = "/my roms/UEFI.fd".into();
        let b = p.bhyve();
        assert!(
            b[3].contains(&format!("-s 4,ahci-hd,/dev/zvol/rdsk/{ds}")),
            "{}",
            b[3]
        );
        // a value with a space is quoted for the zone's shell
        assert!(b[3].contains("'bootrom,/my roms/UEFI.fd'"), "{}", b[3]);
    }

    #[test]
    fn plan_from_the_manifest() {
        let b = Bhyve::new("z1");
        let p = b
            .plan(&serde_json::json!({"disk_driver": "ahci"}), "abc")
            .unwrap();
        assert_eq!(p.dataset, "zones/z1/data/boot-abc");
        assert_eq!(p.disk_driver, DiskDriver::Ahci);
        assert!(b
            .plan(&serde_json::json!({"disk_driver": "floppy"}), "abc")
            .is_err());
        assert_eq!(exit_meaning(Some(1)), "the guest powered off");
    }

    #[cfg(not(target_os = "illumos"))]
    #[test]
    fn bhyve_is_illumos_only() {
        let m = serde_json::json!({});
        let e = Bhyve::new("z")
            .boot(&BootRequest {
                image: Path::new("/x"),
                manifest: &m,
                disk: None,
                console_log: None,
            })
            .unwrap_err();
        assert!(e.to_string().ends_with("only on illumos"), "{e}");
    }
}
