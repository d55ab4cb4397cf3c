//! image-ci: build triton-cloud-images in a builder zone, verify, boot-test,
//! ship to IMGAPI. Exit 0 on success, 1 on error (or any target not
//! shipped), 2 on usage error; one-line errors on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use image_ci::bhyve::Bhyve;
use image_ci::boot::{BootRequest, BootTest, Judge};
use image_ci::build::{Build, NodeBuild};
use image_ci::commands::Tools;
use image_ci::local::LocalBuild;
use image_ci::qemu::{AccelChoice, Qemu};
use image_ci::{cadence, checkout, history, pipeline, report};

#[derive(Parser)]
#[command(name = "image-ci", version, about = "Build, verify, boot-test and ship triton-cloud-images", long_about = None)]
struct Cli {
    /// JSON output
    #[arg(short = 'j', long = "json", global = true)]
    json: bool,
    /// Node root (`/` on SmartOS; a sim node directory elsewhere)
    #[arg(long, global = true, default_value = "/", env = "IMAGE_CI_ROOT")]
    root: PathBuf,
    /// History file (default <root>/var/db/image-ci/history.jsonl)
    #[arg(long, global = true, env = "IMAGE_CI_HISTORY")]
    history: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Where {
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
    #[arg(long, default_value = image_ci::boot::default_name())]
    boot_test: String,
    /// Regex the console must show (default: a login prompt)
    #[arg(long, default_value = image_ci::boot::DEFAULT_MARKER)]
    boot_marker: String,
    /// Seconds the guest has to show the marker
    #[arg(long, default_value_t = 300)]
    boot_timeout: u64,
    /// qemu accelerator: auto (KVM when /dev/kvm opens, TCG when KVM fails), kvm, tcg
    #[arg(long, default_value = "auto")]
    boot_accel: String,
    /// The qemu program
    #[arg(long, default_value = image_ci::qemu::QEMU)]
    qemu: PathBuf,
    /// bhyve's bootrom
    #[arg(long, default_value = image_ci::bhyve::DEFAULT_BOOTROM)]
    bootrom: PathBuf,
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
    },
    /// Build (in the zone, or --local), verify, boot-test and ship
    Run {
        #[command(flatten)]
        at: Where,
        /// Build here (Debian targets, mmdebstrap) instead of in a zone
        #[arg(long, conflicts_with = "zone")]
        local: bool,
        #[command(flatten)]
        local_opts: LocalOpts,
        /// IMGAPI URL (http://host:port)
        #[arg(long, env = "IMGAPI_URL")]
        imgapi: String,
        /// Targets (comma-separated or repeated; default all)
        #[arg(short = 't', long = "targets", value_delimiter = ',')]
        targets: Vec<String>,
        /// Only targets not shipped within --every
        #[arg(long, requires = "every")]
        due: bool,
        /// Cadence interval (24h, 7d, 1h30m)
        #[arg(long, requires = "due")]
        every: Option<String>,
        /// IMGAPI channel to ship into
        #[arg(long)]
        channel: Option<String>,
        #[command(flatten)]
        boot: BootOpts,
        /// zlogin program
        #[arg(long, default_value = "/usr/sbin/zlogin")]
        zlogin: PathBuf,
        /// vmadm-ext program
        #[arg(long, default_value = "vmadm-ext")]
        vmadm_ext: PathBuf,
    },
    /// Build targets only: in the zone (build_all.sh) or --local
    Build {
        #[command(flatten)]
        at: Where,
        /// Build here (Debian targets, mmdebstrap) instead of in a zone
        #[arg(long, conflicts_with = "zone")]
        local: bool,
        #[command(flatten)]
        local_opts: LocalOpts,
        /// zlogin program
        #[arg(long, default_value = "/usr/sbin/zlogin")]
        zlogin: PathBuf,
        /// vmadm-ext program (the zone's preflight)
        #[arg(long, default_value = "vmadm-ext")]
        vmadm_ext: PathBuf,
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
        /// zlogin program (bhyve)
        #[arg(long, default_value = "/usr/sbin/zlogin")]
        zlogin: PathBuf,
        /// The image
        image: PathBuf,
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

fn history_path(cli: &Cli) -> PathBuf {
    cli.history
        .clone()
        .unwrap_or_else(|| history::default_path(&cli.root))
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn checkout_dir(root: &Path, at: &Where) -> Result<PathBuf> {
    Ok(match &at.zone {
        Some(z) => {
            image_ci::commands::in_zone(&image_ci::commands::zone_root(root, z)?, &at.checkout)
        }
        None => PathBuf::from(&at.checkout),
    })
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// The boot test the options name.
fn boot_test(o: &BootOpts, tools: &Tools, zone: Option<&str>) -> Result<Box<dyn BootTest>> {
    let judge = Judge::new(
        &o.boot_marker,
        std::time::Duration::from_secs(o.boot_timeout),
    )?;
    Ok(match o.boot_test.as_str() {
        "qemu" => Box::new(Qemu {
            qemu: o.qemu.clone(),
            judge,
            accel: o
                .boot_accel
                .parse::<AccelChoice>()
                .map_err(anyhow::Error::msg)?,
            ..Default::default()
        }),
        "bhyve" => {
            let zone = zone.context("the bhyve boot test needs --zone (the builder zone)")?;
            let mut b = Bhyve::new(zone);
            b.root = tools.root.clone();
            b.zlogin = tools.zlogin.clone();
            b.bootrom = o.bootrom.clone();
            b.judge = judge;
            Box::new(b)
        }
        other => anyhow::bail!("unknown boot test {other:?} (qemu or bhyve)"),
    })
}

/// A local build of the checkout at `dir`.
fn local_build(dir: &str, o: &LocalOpts) -> LocalBuild {
    let co = PathBuf::from(dir);
    let mut b = LocalBuild::new(&co, o.output.as_deref().unwrap_or(&co));
    if let Some(c) = &o.cache_dir {
        b.cache_dir = c.clone();
    }
    b.mirror = o.mirror.clone();
    b.security_mirror = o.security_mirror.clone();
    b.extra_packages = o.include.clone();
    b
}

fn real_main(cli: Cli) -> Result<bool> {
    let hist = history_path(&cli);
    match &cli.cmd {
        Cmd::Targets { at } => {
            let co = checkout::Checkout::load(&checkout_dir(&cli.root, at)?)?;
            if cli.json {
                print_json(&co.targets)?;
            } else {
                println!("{:<16} {:<8} DESCRIPTION", "TARGET", "OS");
                for t in &co.targets {
                    println!("{:<16} {:<8} {}", t.name, t.os, t.desc);
                }
            }
            Ok(true)
        }
        Cmd::Run {
            at,
            local,
            local_opts,
            imgapi,
            targets,
            due,
            every,
            channel,
            boot,
            zlogin,
            vmadm_ext,
        } => {
            let due_every = match (due, every) {
                (true, Some(e)) => Some(cadence::parse_interval(e).map_err(anyhow::Error::msg)?),
                _ => None,
            };
            let tools = Tools {
                root: cli.root.clone(),
                zlogin: zlogin.clone(),
                vmadm_ext: vmadm_ext.clone(),
            };
            let build: Box<dyn Build> = if *local {
                Box::new(local_build(&at.checkout, local_opts))
            } else {
                let zone = at
                    .zone
                    .clone()
                    .context("run needs --zone (the builder zone) or --local")?;
                Box::new(NodeBuild {
                    tools: tools.clone(),
                    zone,
                    checkout: at.checkout.clone(),
                })
            };
            let boot = boot_test(boot, &tools, at.zone.as_deref())?;
            let mut cfg = pipeline::Config::with_build(build, boot, imgapi, hist);
            cfg.channel = channel.clone();
            cfg.now = now;
            let r = pipeline::run(
                &cfg,
                &pipeline::RunOptions {
                    targets: targets.clone(),
                    due_every,
                },
            )?;
            if cli.json {
                print_json(&r)?;
            } else {
                print!("{}", report::render_run(&r));
            }
            if let Some(e) = &r.preflight_error {
                eprintln!("image-ci: {e}");
            } else if !r.ok() {
                let bad: Vec<String> = r
                    .targets
                    .iter()
                    .filter(|t| t.outcome != history::Outcome::Shipped)
                    .map(|t| format!("{} {}", t.target, t.outcome))
                    .collect();
                eprintln!("image-ci: not shipped: {}", bad.join(", "));
            }
            Ok(r.ok())
        }
        Cmd::Build {
            at,
            local,
            local_opts,
            zlogin,
            vmadm_ext,
            targets,
        } => {
            let build: Box<dyn Build> = if *local {
                Box::new(local_build(&at.checkout, local_opts))
            } else {
                let zone = at
                    .zone
                    .clone()
                    .context("build needs --zone (the builder zone) or --local")?;
                Box::new(NodeBuild {
                    tools: Tools {
                        root: cli.root.clone(),
                        zlogin: zlogin.clone(),
                        vmadm_ext: vmadm_ext.clone(),
                    },
                    zone,
                    checkout: at.checkout.clone(),
                })
            };
            let co = checkout::Checkout::load(&build.checkout_dir()?)?;
            let selected: Vec<String> = co.select(targets)?.into_iter().map(|t| t.name).collect();
            build.preflight()?;
            let started = now();
            let run = build.build(&co, &selected)?;
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
            Ok(all_ok)
        }
        Cmd::BootTest {
            zone,
            manifest,
            console_log,
            boot,
            zlogin,
            image,
        } => {
            let tools = Tools {
                root: cli.root.clone(),
                zlogin: zlogin.clone(),
                vmadm_ext: "vmadm-ext".into(),
            };
            let test = boot_test(boot, &tools, zone.as_deref())?;
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
            Ok(ok)
        }
        Cmd::History { target } => {
            let h: Vec<history::Record> = history::read(&hist)?
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
            Ok(true)
        }
        Cmd::Report { every } => {
            let h = history::read(&hist)?;
            let s = report::summarize(&h);
            let due = match every {
                Some(e) => {
                    let iv = cadence::parse_interval(e).map_err(anyhow::Error::msg)?;
                    let ts: Vec<String> = s.iter().map(|t| t.target.clone()).collect();
                    Some(cadence::due(&ts, &h, now(), iv))
                }
                None => None,
            };
            if cli.json {
                print_json(&serde_json::json!({"targets": s, "due": due}))?;
            } else {
                print!("{}", report::render_summary(&s));
                for d in due.iter().flatten().filter(|d| d.due) {
                    println!("due: {}", d.target);
                }
            }
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    common::cli::completions_if_asked::<Cli>("image-ci");
    // First, before any thread: SIGINT/SIGTERM/SIGHUP kill VMs and remove
    // temporary files, mounts and loop devices before image-ci exits.
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
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("image-ci: {msg}");
            ExitCode::from(1)
        }
    }
}
