//! image-ci: build triton-cloud-images in a builder zone, verify, boot-test,
//! ship to IMGAPI. Exit 0 on success, 1 on error (or any target not
//! shipped), 2 on usage error; one-line errors on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use image_ci::boot::{Bhyve, BootTest, DiskSignature};
use image_ci::commands::Tools;
use image_ci::{cadence, checkout, history, imgapi, pipeline, report};

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

#[derive(Subcommand)]
enum Cmd {
    /// List the checkout's targets
    Targets {
        #[command(flatten)]
        at: Where,
    },
    /// Build, verify, boot-test and ship
    Run {
        #[command(flatten)]
        at: Where,
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
        /// Boot test: disk-signature (any OS) or bhyve (illumos)
        #[arg(long, default_value = "disk-signature")]
        boot_test: String,
        /// zlogin program
        #[arg(long, default_value = "/usr/sbin/zlogin")]
        zlogin: PathBuf,
        /// vmadm-ext program
        #[arg(long, default_value = "vmadm-ext")]
        vmadm_ext: PathBuf,
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
            imgapi,
            targets,
            due,
            every,
            channel,
            boot_test,
            zlogin,
            vmadm_ext,
        } => {
            let zone = at
                .zone
                .clone()
                .context("run needs --zone (the builder zone)")?;
            let due_every = match (due, every) {
                (true, Some(e)) => Some(cadence::parse_interval(e).map_err(anyhow::Error::msg)?),
                _ => None,
            };
            let boot: Box<dyn BootTest> = match boot_test.as_str() {
                "disk-signature" => Box::new(DiskSignature),
                "bhyve" => Box::new(Bhyve { zone: zone.clone() }),
                other => anyhow::bail!("unknown boot test {other:?} (disk-signature or bhyve)"),
            };
            let cfg = pipeline::Config {
                tools: Tools {
                    root: cli.root.clone(),
                    zlogin: zlogin.clone(),
                    vmadm_ext: vmadm_ext.clone(),
                },
                zone,
                checkout: at.checkout.clone(),
                imgapi: imgapi::Imgapi::new(imgapi),
                channel: channel.clone(),
                log_dir: hist
                    .parent()
                    .map(|p| p.join("logs"))
                    .unwrap_or_else(|| "logs".into()),
                stage_dir: hist
                    .parent()
                    .map(|p| p.join("stage"))
                    .unwrap_or_else(|| "stage".into()),
                history: hist,
                boot,
                now,
            };
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
