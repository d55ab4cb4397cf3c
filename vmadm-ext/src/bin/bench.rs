//! Benchmark (not a test) of vmadm-ext's speed goals. Each figure is
//! measured beside its floor in the same run, as processes:
//!
//! - `vmadm-ext list` over N generated zones (default 10,000) against `cat`
//!   of the same files (the index and every zone XML file), median of R
//!   runs, and the list process's max RSS;
//! - `vmadm-ext validate create -f payload.json`, one process per payload,
//!   against the host commands it runs (`zpool list -H -p -o name`,
//!   `imgadm get -P zones <image>`) run alone: R x P of each, taking turns,
//!   median per process. The commands are the shell stand-ins the CLI tests
//!   put first on PATH.
//!
//! ```text
//! cargo build --release -p vmadm-ext
//! target/release/vmadm-ext-bench [--zones N] [--runs R] [--processes P] [--keep DIR] [--check]
//! ```
//!
//! `--check` exits 1 when a figure misses its goal.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use host::{Host as _, SystemHost, Tools};

const TEMPLATE: &str = include_str!("../../tests/golden/builder-zone.xml");
const TEMPLATE_UUID: &str = "4c3a4cce-7c4b-4e5a-9c3c-8a0a3c1d2e3f";
const IMAGE: &str = "e44ed3e0-910b-11ed-a5d4-00151714048c";

/// The goals (issue 15, [fast]).
const LIST_RATIO_GOAL: f64 = 2.0;
const LIST_RSS_GOAL_MIB: f64 = 32.0;
const VALIDATE_RATIO_GOAL: f64 = 1.5;

const USAGE: &str =
    "usage: vmadm-ext-bench [--zones N] [--runs R] [--processes P] [--keep DIR] [--check]
Times vmadm-ext list over N generated zones (default 10000) beside cat of the
same files (median of R runs, default 5), and R x P vmadm-ext validate
processes (P default 200) beside the zpool and imgadm stand-ins they run
(median per process). --keep DIR leaves the node in DIR; --check exits 1
when a figure misses its goal.";

fn generate(root: &Path, n: usize) -> std::io::Result<Vec<PathBuf>> {
    let zones = root.join("etc/zones");
    std::fs::create_dir_all(&zones)?;
    let mut index =
        String::from("# DO NOT EDIT: this file is maintained by zonecfg\nglobal:installed:/\n");
    let mut files = vec![zones.join("index")];
    for i in 0..n {
        let uuid = format!("{:08x}-0000-4000-8000-{:012x}", i, i);
        let brand = ["builder", "joyent", "joyent-minimal", "lx"][i % 4];
        let text = TEMPLATE
            .replace(TEMPLATE_UUID, &uuid)
            .replace("brand=\"builder\"", &format!("brand=\"{brand}\""))
            .replace(
                "8589934592",
                &format!("{}", (256 + (i % 64) * 128) * 1_048_576),
            );
        let p = zones.join(format!("{uuid}.xml"));
        std::fs::write(&p, text)?;
        files.push(p);
        index.push_str(&format!("{uuid}:installed:/zones/{uuid}:{uuid}\n"));
    }
    std::fs::write(zones.join("index"), index)?;
    Ok(files)
}

/// The stand-ins of the CLI tests: one pool, one installed image.
fn stand_ins(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    let scripts = [
        ("zpool", "echo zones".to_string()),
        (
            "imgadm",
            format!("if [ \"$4\" = {IMAGE} ]; then echo '{{\"manifest\":{{\"uuid\":\"{IMAGE}\",\"type\":\"zone-dataset\"}}}}'; else echo 'imgadm: image not installed' >&2; exit 1; fi"),
        ),
    ];
    for (name, body) in scripts {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn seconds<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

/// The largest max RSS (MiB) of the children waited for so far, when the
/// OS reports one.
fn children_max_rss_mib() -> Option<f64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let kib = getrusage(UsageWho::RUSAGE_CHILDREN).ok()?.max_rss();
    (kib > 0).then(|| kib as f64 / 1024.0)
}

/// One measured goal.
struct Row {
    what: String,
    figure: String,
    floor: String,
    ratio: String,
    goal: String,
    pass: Option<bool>,
}

struct Opts {
    zones: usize,
    runs: usize,
    processes: usize,
    keep: Option<PathBuf>,
    check: bool,
}

fn parse_args() -> anyhow::Result<Option<Opts>> {
    let mut o = Opts {
        zones: 10_000,
        runs: 5,
        processes: 200,
        keep: None,
        check: false,
    };
    let mut args = std::env::args().skip(1);
    let num = |a: Option<String>, what: &str| -> anyhow::Result<usize> {
        let n: usize = a
            .ok_or_else(|| anyhow::anyhow!("{what} needs a number"))?
            .parse()
            .map_err(|_| anyhow::anyhow!("{what} needs a number"))?;
        anyhow::ensure!(n > 0, "{what} needs a number above 0");
        Ok(n)
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--zones" => o.zones = num(args.next(), "--zones")?,
            "--runs" => o.runs = num(args.next(), "--runs")?,
            "--processes" => o.processes = num(args.next(), "--processes")?,
            "--keep" => {
                o.keep = Some(
                    args.next()
                        .ok_or_else(|| anyhow::anyhow!("--keep needs a directory"))?
                        .into(),
                )
            }
            "--check" => o.check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => anyhow::bail!("unknown argument {other} (see --help)"),
        }
    }
    Ok(Some(o))
}

fn list_rows(exe: &Path, root: &Path, files: &[PathBuf], o: &Opts) -> anyhow::Result<Vec<Row>> {
    let list = || {
        let mut c = Command::new(exe);
        c.arg("--root")
            .arg(root)
            .arg("list")
            .env("VMADM_EXT_STATE", "index")
            .env_remove("VMADM_EXT_LOG");
        c
    };
    // the first child: its max RSS is the list's
    let out = list().stderr(Stdio::inherit()).output()?;
    anyhow::ensure!(out.status.success(), "vmadm-ext list failed");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    anyhow::ensure!(
        lines == o.zones + 1,
        "vmadm-ext list printed {lines} lines for {} zones",
        o.zones
    );
    let rss = children_max_rss_mib();
    let cat = || -> anyhow::Result<()> {
        for chunk in files.chunks(2000) {
            let st = Command::new("cat")
                .args(chunk)
                .stdout(Stdio::null())
                .status()?;
            anyhow::ensure!(st.success(), "cat failed");
        }
        Ok(())
    };
    cat()?; // warm the cache for both
    let (mut lt, mut ct) = (Vec::new(), Vec::new());
    for _ in 0..o.runs {
        lt.push(seconds(|| {
            let st = list().stdout(Stdio::null()).status()?;
            anyhow::ensure!(st.success(), "vmadm-ext list failed");
            Ok(())
        })?);
        ct.push(seconds(cat)?);
    }
    let (l, c) = (median(lt), median(ct));
    let ratio = l / c;
    let mut rows = vec![Row {
        what: format!("list, {} zones (s)", o.zones),
        figure: format!("{l:.3}"),
        floor: format!("{c:.3} cat"),
        ratio: format!("{ratio:.2}x"),
        goal: format!("<= {LIST_RATIO_GOAL}x"),
        pass: Some(ratio <= LIST_RATIO_GOAL),
    }];
    rows.push(match rss {
        Some(m) => Row {
            what: "list max RSS (MiB)".into(),
            figure: format!("{m:.1}"),
            floor: "-".into(),
            ratio: "-".into(),
            goal: format!("<= {LIST_RSS_GOAL_MIB} MiB"),
            pass: Some(m <= LIST_RSS_GOAL_MIB),
        },
        None => Row {
            what: "list max RSS (MiB)".into(),
            figure: "n/a".into(),
            floor: "-".into(),
            ratio: "-".into(),
            goal: format!("<= {LIST_RSS_GOAL_MIB} MiB (getrusage gives no max RSS here)"),
            pass: None,
        },
    });
    Ok(rows)
}

fn validate_row(exe: &Path, dir: &Path, o: &Opts) -> anyhow::Result<Row> {
    let bin = dir.join("bin");
    stand_ins(&bin)?;
    let payload = dir.join("payload.json");
    std::fs::write(
        &payload,
        format!(
            r#"{{"alias":"cloud-image-builder","hostname":"cloud-image-builder","brand":"builder","limit_priv":"default,proc_clock_highres,sys_dl_config","max_physical_memory":8192,"tmpfs":8192,"fs_allowed":"ufs,pcfs,tmpfs","cpu_cap":600,"image_uuid":"{IMAGE}","zfs_root_compression":"lz4","quota":50,"delegate_dataset":true,"resolvers":["8.8.8.8","8.8.4.4"],"nics":[{{"allow_ip_spoofing":true,"nic_tag":"admin","ip":"dhcp"}}]}}"#
        ),
    )?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let validate = || -> anyhow::Result<()> {
        let out = Command::new(exe)
            .args(["validate", "create", "-f"])
            .arg(&payload)
            .env("PATH", &path)
            .env_remove(host::TOOLS_DIR_ENV)
            .env_remove("VMADM_EXT_LOG")
            .output()?;
        anyhow::ensure!(
            out.status.success()
                && out.stdout == b"VALID 'create' payload for builder brand VMs.\n",
            "vmadm-ext validate failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    };
    // the commands validate runs, run the way it runs them
    let h = SystemHost::new(Tools::in_dir(&bin));
    let (zpool, imgadm) = (host::zpool::list(), host::imgadm::get("zones", IMAGE));
    let floor = || -> anyhow::Result<()> {
        h.run(&zpool)?;
        h.run(&imgadm)?;
        Ok(())
    };
    validate()?;
    floor()?;
    // one of each in turn, so that load from elsewhere hits both alike;
    // medians of single processes shrug off the spikes
    let (mut vt, mut ft) = (Vec::new(), Vec::new());
    for _ in 0..o.runs * o.processes {
        vt.push(seconds(validate)? * 1000.0);
        ft.push(seconds(floor)? * 1000.0);
    }
    let (v, f) = (median(vt), median(ft));
    let ratio = v / f;
    Ok(Row {
        what: "validate create -f (ms/process)".into(),
        figure: format!("{v:.2}"),
        floor: format!("{f:.2} zpool+imgadm"),
        ratio: format!("{ratio:.2}x"),
        goal: format!("<= {VALIDATE_RATIO_GOAL}x"),
        pass: Some(ratio <= VALIDATE_RATIO_GOAL),
    })
}

fn run(o: &Opts) -> anyhow::Result<bool> {
    let exe = std::env::current_exe()?.with_file_name("vmadm-ext");
    anyhow::ensure!(
        exe.is_file(),
        "{} is not built: run cargo build --release -p vmadm-ext",
        exe.display()
    );
    let dir = match &o.keep {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("vmadm-ext-bench-{}", std::process::id())),
    };
    let root = dir.join("node");
    let t = Instant::now();
    let files = generate(&root, o.zones)?;
    println!(
        "{} zones under {} (generated in {:.2} s); {} list runs, {} validate processes",
        o.zones,
        root.display(),
        t.elapsed().as_secs_f64(),
        o.runs,
        o.runs * o.processes
    );
    let mut rows = list_rows(&exe, &root, &files, o)?;
    rows.push(validate_row(&exe, &dir, o)?);
    let line = |what: &str, figure: &str, floor: &str, ratio: &str, goal: &str, verdict: &str| {
        let l = format!("{what:<34}{figure:>9}  {floor:<20}{ratio:>7}  {goal:<11} {verdict}");
        println!("{}", l.trim_end());
    };
    line("measure", "figure", "floor", "ratio", "goal", "");
    for r in &rows {
        let verdict = match r.pass {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "not measured",
        };
        line(&r.what, &r.figure, &r.floor, &r.ratio, &r.goal, verdict);
    }
    if o.keep.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(rows.iter().all(|r| r.pass != Some(false)))
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmadm-ext-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if o.check => {
            eprintln!("vmadm-ext-bench: a figure missed its goal");
            ExitCode::from(1)
        }
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmadm-ext-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}
