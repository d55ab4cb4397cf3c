//! image-ci: build triton-cloud-images in builder zones (made for each
//! run, or one that exists), verify, boot-test, ship to IMGAPI; on a
//! schedule as a service (`serve`). Exit 0 on success, 1 on error (or any
//! target not shipped), 2 on usage error, 128 + the signal when a run was
//! stopped; one-line errors on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use image_ci::boot::BootRequest;
use image_ci::build::{Build, NodeBuild};
use image_ci::commands::Tools;
use image_ci::config::{BootCfg, FileConfig};
use image_ci::local::LocalBuild;
use image_ci::pipeline::KeepZone;
use image_ci::progress::Mode;
use image_ci::stream::{Cancel, LogSink};
use image_ci::{cadence, checkout, pipeline, report, serve};

#[derive(Parser)]
#[command(name = "image-ci", version, about = "Build, verify, boot-test and ship triton-cloud-images, on a schedule", long_about = None)]
struct Cli {
    /// JSON output
    #[arg(short = 'j', long = "json", global = true)]
    json: bool,
    /// Build output to the terminal too, as it comes
    #[arg(short = 'v', long = "verbose", global = true)]
    verbose: bool,
    /// No progress lines
    #[arg(short = 'q', long = "quiet", global = true)]
    quiet: bool,
    /// Node root (`/` on SmartOS; a sim node directory elsewhere)
    #[arg(long, global = true, default_value = "/", env = "IMAGE_CI_ROOT")]
    root: PathBuf,
    /// State database (default <root>/var/db/image-ci/state.db)
    #[arg(long, global = true, env = "IMAGE_CI_STATE")]
    state: Option<PathBuf>,
    /// Where vmadm, zlogin, imgadm and sysinfo are (default: PATH, then
    /// their SmartOS paths)
    #[arg(long, global = true, env = "SMARTOS_TOOLS_DIR")]
    tools_dir: Option<PathBuf>,
    /// vmadm-ext program (the zone's build readiness check)
    #[arg(long, global = true, default_value = "vmadm-ext")]
    vmadm_ext: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where a run or a target list is (unless a configuration file says).
#[derive(Args)]
struct Where {
    /// The builder zone (UUID or name)
    #[arg(short = 'z', long)]
    zone: Option<String>,
    /// The triton-cloud-images checkout: inside the zone with --zone,
    /// else a directory here
    #[arg(short = 'c', long, required_unless_present = "config")]
    checkout: Option<String>,
}

/// Where a build is.
#[derive(Args)]
struct BuildWhere {
    /// The builder zone (UUID or name)
    #[arg(short = 'z', long)]
    zone: Option<String>,
    /// The triton-cloud-images checkout: inside the zone with --zone,
    /// else a directory here
    #[arg(short = 'c', long)]
    checkout: String,
}

/// How images are boot-tested.
#[derive(Args, Clone)]
struct BootOpts {
    /// Boot test: qemu (Linux; the default there) or bhyve (illumos, in the
    /// builder zone; the default there)
    #[arg(long)]
    boot_test: Option<String>,
    /// Regex the console must show (default: a login prompt)
    #[arg(long)]
    boot_marker: Option<String>,
    /// Seconds the guest has to show the marker (default 300)
    #[arg(long)]
    boot_timeout: Option<u64>,
    /// qemu accelerator: auto (KVM when /dev/kvm opens, TCG when KVM fails), kvm, tcg
    #[arg(long)]
    boot_accel: Option<String>,
    /// The qemu program
    #[arg(long)]
    qemu: Option<PathBuf>,
    /// bhyve's bootrom
    #[arg(long)]
    bootrom: Option<PathBuf>,
}

impl BootOpts {
    /// The options over `base` (a config file's `[boot]`, or the defaults).
    fn over(&self, base: &BootCfg) -> BootCfg {
        let mut b = base.clone();
        if let Some(x) = &self.boot_test {
            b.test = x.clone();
        }
        if let Some(x) = &self.boot_marker {
            b.marker = x.clone();
        }
        if let Some(x) = self.boot_timeout {
            b.timeout = x;
        }
        if let Some(x) = &self.boot_accel {
            b.accel = x.clone();
        }
        if let Some(x) = &self.qemu {
            b.qemu = Some(x.clone());
        }
        if let Some(x) = &self.bootrom {
            b.bootrom = Some(x.clone());
        }
        b
    }
}

/// How a local build runs.
#[derive(Args, Clone)]
struct LocalOpts {
    /// Where output-<target>-x86_64/ go (default: the checkout)
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Downloaded Debian packages are kept here between builds
    /// (default $XDG_CACHE_HOME/image-ci or ~/.cache/image-ci)
    #[arg(long, env = "IMAGE_CI_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Debian archive
    #[arg(long, default_value = image_ci::local::MIRROR)]
    mirror: String,
    /// Debian security archive
    #[arg(long, default_value = image_ci::local::SECURITY_MIRROR)]
    security_mirror: String,
    /// More packages to install (comma-separated or repeated)
    #[arg(long = "include", value_delimiter = ',')]
    include: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the checkout's targets
    Targets {
        #[command(flatten)]
        at: Where,
        /// The configuration file (its checkout)
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Build (in a zone made for the run with --config, in an existing
    /// zone with -z, or --local), verify, boot-test and ship
    Run {
        /// The configuration file: the zone is made for the run from its
        /// profile, provisioned, and deleted afterwards
        #[arg(long, conflicts_with_all = ["zone", "local"])]
        config: Option<PathBuf>,
        #[command(flatten)]
        at: Where,
        /// Build here (Debian targets, mmdebstrap) instead of in a zone
        #[arg(long, conflicts_with = "zone")]
        local: bool,
        #[command(flatten)]
        local_opts: LocalOpts,
        /// IMGAPI URL (http://host:port)
        #[arg(long, env = "IMGAPI_URL", required_unless_present = "config")]
        imgapi: Option<String>,
        /// Targets (comma-separated or repeated; default all, or the
        /// configuration's schedules')
        #[arg(short = 't', long = "targets", value_delimiter = ',')]
        targets: Vec<String>,
        /// Only targets not shipped within --every
        #[arg(long, requires = "every")]
        due: bool,
        /// Cadence interval (24h, 7d, 1h30m)
        #[arg(long, requires = "due")]
        every: Option<String>,
        /// IMGAPI channel to ship into (repeat: the first imports, the
        /// others are added)
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// Keep the zone made for the run: always (the default of the
        /// bare flag), on-failure, never
        #[arg(long, num_args = 0..=1, default_missing_value = "always", value_name = "WHEN")]
        keep_zone: Option<KeepZone>,
        #[command(flatten)]
        boot: BootOpts,
    },
    /// Build targets only: in the zone (build_all.sh) or --local
    Build {
        #[command(flatten)]
        at: BuildWhere,
        /// Build here (Debian targets, mmdebstrap) instead of in a zone
        #[arg(long, conflicts_with = "zone")]
        local: bool,
        #[command(flatten)]
        local_opts: LocalOpts,
        /// Write the build log here as it comes (default: memory only)
        #[arg(long)]
        log: Option<PathBuf>,
        /// Targets (comma-separated or repeated)
        #[arg(required = true, value_delimiter = ',')]
        targets: Vec<String>,
    },
    /// Boot-test one image (.zfs.gz) without shipping it
    BootTest {
        /// The builder zone (bhyve)
        #[arg(short = 'z', long)]
        zone: Option<String>,
        /// The image's manifest (disk_driver, nic_driver)
        #[arg(short = 'm', long)]
        manifest: Option<PathBuf>,
        /// Keep the console log here
        #[arg(long)]
        console_log: Option<PathBuf>,
        #[command(flatten)]
        boot: BootOpts,
        /// The image
        image: PathBuf,
    },
    /// Run the schedules of a configuration file, with a status endpoint
    Serve {
        /// The configuration file (TOML)
        #[arg(long)]
        config: PathBuf,
        /// Status endpoint address (default: the file's listen, else 127.0.0.1:8181)
        #[arg(long)]
        listen: Option<String>,
    },
    /// Show a running service's status
    Status {
        /// The service's status endpoint
        #[arg(long, default_value = "http://127.0.0.1:8181", env = "IMAGE_CI_URL")]
        url: String,
    },
    /// Check a configuration file as `serve` does before it starts
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Show the history, one line per target per run
    History {
        /// Only this target
        #[arg(short = 't', long)]
        target: Option<String>,
    },
    /// Summarise the history per target
    Report {
        /// Also say which targets are due at this interval
        #[arg(long)]
        every: Option<String>,
    },
}

fn state_path(cli: &Cli) -> PathBuf {
    cli.state
        .clone()
        .unwrap_or_else(|| image_ci::state::default_path(&cli.root))
}

fn tools(cli: &Cli) -> Tools {
    Tools {
        root: cli.root.clone(),
        tools: match &cli.tools_dir {
            Some(d) => host::Tools::in_dir(d),
            None => host::Tools::from_env(),
        },
        vmadm_ext: cli.vmadm_ext.clone(),
    }
}

fn progress(cli: &Cli) -> Mode {
    if cli.quiet {
        Mode::Quiet
    } else {
        Mode::detect()
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn checkout_dir(root: &Path, zone: Option<&str>, co: &str) -> Result<PathBuf> {
    Ok(match zone {
        Some(z) => image_ci::commands::in_zone(&image_ci::commands::zone_root(root, z)?, co),
        None => PathBuf::from(co),
    })
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// A local build of the checkout at `dir`.
fn local_build(dir: &str, o: &LocalOpts, mode: Mode) -> LocalBuild {
    let co = PathBuf::from(dir);
    let mut b = LocalBuild::new(&co, o.output.as_deref().unwrap_or(&co));
    if let Some(c) = &o.cache_dir {
        b.cache_dir = c.clone();
    }
    b.mirror = o.mirror.clone();
    b.security_mirror = o.security_mirror.clone();
    b.extra_packages = o.include.clone();
    b.progress = mode;
    b
}

/// What a command ended with.
enum Done {
    Ok,
    Failed,
    /// Stopped by this signal.
    Stopped(i32),
}

fn run_report(cli: &Cli, r: &report::RunReport) -> Result<Done> {
    if cli.json {
        print_json(r)?;
    } else {
        print!("{}", report::render_run(r));
    }
    if r.status == "interrupted" {
        eprintln!(
            "image-ci: run {} interrupted ({})",
            r.run,
            r.zone_action.as_deref().unwrap_or("no zone made")
        );
        return Ok(Done::Stopped(image_ci::cleanup::stopped_by().unwrap_or(15)));
    }
    if let Some(e) = &r.preflight_error {
        eprintln!("image-ci: {e}");
    } else if !r.ok() {
        let bad: Vec<String> = r
            .targets
            .iter()
            .filter(|t| !t.outcome.is_shipped())
            .map(|t| format!("{} {}", t.target, t.outcome))
            .collect();
        eprintln!("image-ci: not shipped: {}", bad.join(", "));
    }
    Ok(if r.ok() { Done::Ok } else { Done::Failed })
}

fn real_main(cli: Cli) -> Result<Done> {
    let state = state_path(&cli);
    match &cli.cmd {
        Cmd::Targets { at, config } => {
            let dir = match config {
                Some(p) => {
                    let fc = FileConfig::load(p)?;
                    fc.sync_checkout()?;
                    fc.local_checkout()
                }
                None => checkout_dir(
                    &cli.root,
                    at.zone.as_deref(),
                    at.checkout.as_deref().unwrap_or("."),
                )?,
            };
            let co = checkout::Checkout::load(&dir)?;
            if cli.json {
                print_json(&co.targets)?;
            } else {
                println!("{:<16} {:<8} DESCRIPTION", "TARGET", "OS");
                for t in &co.targets {
                    println!("{:<16} {:<8} {}", t.name, t.os, t.desc);
                }
            }
            Ok(Done::Ok)
        }
        Cmd::Run {
            config,
            at,
            local,
            local_opts,
            imgapi,
            targets,
            due,
            every,
            channels,
            keep_zone,
            boot,
        } => {
            let due_every = match (due, every) {
                (true, Some(e)) => Some(cadence::parse_interval(e).map_err(anyhow::Error::msg)?),
                _ => None,
            };
            let mode = progress(&cli);
            let (mut cfg, targets) = match config {
                Some(path) => {
                    let fc = FileConfig::load(path)?;
                    let targets = if targets.is_empty() {
                        fc.all_targets()
                    } else {
                        targets.clone()
                    };
                    // everything that can be checked before a zone is made
                    fc.validate(path, &targets)?;
                    let mut fc = fc;
                    fc.boot = boot.over(&fc.boot);
                    if let Some(u) = imgapi {
                        fc.imgapi = u.clone();
                    }
                    if !channels.is_empty() {
                        fc.channels = channels.clone();
                    }
                    if cli.state.is_some() {
                        fc.state = Some(state.clone());
                    }
                    (fc.pipeline()?, targets)
                }
                None => {
                    let tools = tools(&cli);
                    let co = at.checkout.clone().unwrap_or_default();
                    let build: Box<dyn Build> = if *local {
                        Box::new(local_build(&co, local_opts, mode))
                    } else {
                        let zone = at
                            .zone
                            .clone()
                            .context("run needs --config, --zone (the builder zone) or --local")?;
                        Box::new(NodeBuild::existing(tools.clone(), &zone, &co))
                    };
                    let b = image_ci::config::boot_test(
                        &boot.over(&BootCfg::default()),
                        &tools,
                        at.zone.as_deref(),
                    )?;
                    let mut c = pipeline::Config::with_build(
                        build,
                        b,
                        imgapi.as_deref().unwrap_or_default(),
                        state.clone(),
                    )?;
                    c.shipper.channels = channels.clone();
                    (c, targets.clone())
                }
            };
            if let Some(k) = keep_zone {
                cfg.keep_zone = *k;
            }
            cfg.progress = mode;
            cfg.verbose = cli.verbose;
            cfg.now = now;
            image_ci::cleanup::graceful(cfg.cancel.clone());
            let r = pipeline::run(&mut cfg, &pipeline::RunOptions { targets, due_every })?;
            run_report(&cli, &r)
        }
        Cmd::Build {
            at,
            local,
            local_opts,
            log,
            targets,
        } => {
            let co_arg = at.checkout.clone();
            let mut build: Box<dyn Build> = if *local {
                Box::new(local_build(&co_arg, local_opts, progress(&cli)))
            } else {
                let zone = at
                    .zone
                    .clone()
                    .context("build needs --zone (the builder zone) or --local")?;
                Box::new(NodeBuild::existing(tools(&cli), &zone, &co_arg))
            };
            let co = checkout::Checkout::load(&build.checkout_dir()?)?;
            let selected: Vec<String> = co.select(targets)?.into_iter().map(|t| t.name).collect();
            let mut sink = match log {
                Some(p) => LogSink::to_file(p, cli.verbose)?,
                None => LogSink::memory(cli.verbose),
            };
            let cancel = Cancel::new();
            let mut stages = image_ci::stages::Stages::new("build", None, Mode::Quiet);
            build.prepare(&mut stages, &mut sink, &cancel)?;
            let started = now();
            let run = build.build(&co, &selected, &mut sink, &cancel)?;
            let out = build.output()?;
            let today = image_ci::artifact::version_for(started.date_naive());
            let mut results = vec![];
            for t in &selected {
                let a = image_ci::artifact::Artifact::at(&out.dir, t, &today);
                let failed = run.failed.get(t).map(|f| f.line.clone());
                let ok = failed.is_none() && a.image.is_file() && a.manifest.is_file();
                results.push(serde_json::json!({
                    "target": t,
                    "ok": ok,
                    "image": a.image,
                    "manifest": a.manifest,
                    "error": failed,
                }));
            }
            let all_ok = results.iter().all(|r| r["ok"] == true);
            if cli.json {
                print_json(
                    &serde_json::json!({"build": build.kind(), "command": run.command, "targets": results}),
                )?;
            } else {
                for r in &results {
                    if r["ok"] == true {
                        println!(
                            "{} {} {}",
                            r["target"].as_str().unwrap_or("?"),
                            r["image"].as_str().unwrap_or("?"),
                            r["manifest"].as_str().unwrap_or("?")
                        );
                    } else {
                        println!(
                            "{} FAILED {}",
                            r["target"].as_str().unwrap_or("?"),
                            r["error"].as_str().unwrap_or("no artifact")
                        );
                    }
                }
            }
            if !all_ok {
                let last = run
                    .log
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                eprintln!("image-ci: build failed: {last}");
            }
            Ok(if all_ok { Done::Ok } else { Done::Failed })
        }
        Cmd::BootTest {
            zone,
            manifest,
            console_log,
            boot,
            image,
        } => {
            let test = image_ci::config::boot_test(
                &boot.over(&BootCfg::default()),
                &tools(&cli),
                zone.as_deref(),
            )?;
            if test.name() == "bhyve" && zone.is_none() {
                anyhow::bail!("the bhyve boot test needs --zone (the builder zone)");
            }
            let m: serde_json::Value = match manifest {
                Some(p) => serde_json::from_str(
                    &std::fs::read_to_string(p).with_context(|| p.display().to_string())?,
                )
                .with_context(|| p.display().to_string())?,
                None => serde_json::json!({}),
            };
            let r = test.boot(&BootRequest {
                image,
                manifest: &m,
                disk: None,
                console_log: console_log.as_deref(),
            });
            let (ok, detail, details) = match r {
                Ok(b) => (true, b.detail, b.details),
                Err(e) => (false, e.to_string(), *e.details),
            };
            if cli.json {
                print_json(
                    &serde_json::json!({"ok": ok, "test": test.name(), "detail": detail, "boot": details}),
                )?;
            } else if ok {
                println!("{} booted: {detail}", image.display());
            } else {
                for l in &details.console_tail {
                    println!("| {l}");
                }
            }
            if !ok {
                eprintln!("image-ci: {}: {detail}", image.display());
            }
            Ok(if ok { Done::Ok } else { Done::Failed })
        }
        Cmd::Serve { config, listen } => {
            let filter = std::env::var("IMAGE_CI_LOG").unwrap_or_else(|_| "info".into());
            bunyan_log::init("image-ci", &filter)?;
            let cancel = Cancel::new();
            image_ci::cleanup::graceful(cancel.clone());
            serve::serve(
                &serve::ServeOptions {
                    config: config.clone(),
                    listen: listen.clone(),
                },
                &cancel,
            )?;
            Ok(Done::Ok)
        }
        Cmd::Status { url } => {
            let v = serve::fetch_status(url)?;
            if cli.json {
                print_json(&v)?;
            } else {
                print!("{}", serve::status_text(&v));
            }
            Ok(Done::Ok)
        }
        Cmd::CheckConfig { config } => {
            let fc = FileConfig::load(config)?;
            let commit = fc.validate(config, &[])?;
            let next = image_ci::config::Timetable::new(&fc.schedule)?.next(now());
            if cli.json {
                print_json(&serde_json::json!({
                    "config": config, "ok": true, "commit": commit,
                    "schedules": next.iter().map(|(n, t)| serde_json::json!({"name": n, "next": t.map(|t| t.to_rfc3339())})).collect::<Vec<_>>(),
                }))?;
            } else {
                println!("{}: ok (checkout at {commit})", config.display());
                for (n, t) in next {
                    println!(
                        "schedule {n}: next {}",
                        t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())
                    );
                }
            }
            Ok(Done::Ok)
        }
        Cmd::History { target } => {
            let h: Vec<image_ci::history::Record> = pipeline::history(&state)?
                .into_iter()
                .filter(|r| target.as_ref().is_none_or(|t| &r.target == t))
                .collect();
            if cli.json {
                print_json(&h)?;
            } else {
                println!(
                    "{:<20} {:<16} {:<16} {:<8} {:<36} DETAIL",
                    "TIME", "TARGET", "OUTCOME", "VERSION", "UUID"
                );
                for r in &h {
                    println!(
                        "{:<20} {:<16} {:<16} {:<8} {:<36} {}",
                        r.time,
                        r.target,
                        r.outcome,
                        r.version.as_deref().unwrap_or("-"),
                        r.uuid.as_deref().unwrap_or("-"),
                        r.detail
                    );
                }
            }
            Ok(Done::Ok)
        }
        Cmd::Report { every } => {
            let due_every = match every {
                Some(e) => Some(cadence::parse_interval(e).map_err(anyhow::Error::msg)?),
                None => None,
            };
            let h = pipeline::history(&state)?;
            let s = report::summarize(&h);
            let due = due_every.map(|iv| {
                let ts: Vec<String> = s.iter().map(|t| t.target.clone()).collect();
                cadence::due(&ts, &h, now(), iv)
            });
            if cli.json {
                print_json(&serde_json::json!({"targets": s, "due": due}))?;
            } else {
                print!("{}", report::render_summary(&s));
                for d in due.iter().flatten().filter(|d| d.due) {
                    println!("due: {}", d.target);
                }
            }
            Ok(Done::Ok)
        }
    }
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    common::cli::completions_if_asked::<Cli>("image-ci");
    // First, before any thread: SIGINT/SIGTERM/SIGHUP stop runs cleanly
    // (run, serve) or kill VMs and remove temporary files, mounts and loop
    // devices before image-ci exits.
    if let Err(e) = image_ci::cleanup::install() {
        eprintln!("image-ci: cannot set up signal handling: {e}");
        return ExitCode::from(1);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            // One line: the message and its details, without the usage.
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let first = first.join(" ");
            eprintln!("image-ci: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match real_main(cli) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Failed) => ExitCode::from(1),
        Ok(Done::Stopped(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("image-ci: {}", common::cli::error_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
