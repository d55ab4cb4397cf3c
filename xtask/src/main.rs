//! `cargo xtask`: platform, deploy, rollout, release, test (see the
//! library's modules).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xtask::{deploy, docs, platform, release, rollout, testcmd, util};

#[derive(Parser)]
#[command(name = "xtask", about = "Project chores: platform, rollout")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Stage the brand files into a proto tree and build a simulated
    /// platform image (or a smartos-live local project).
    Platform {
        /// Output directory.
        #[arg(long, default_value = "target/platform")]
        out: PathBuf,
        /// Platform stamp (default: now, YYYYMMDDTHHMMSSZ).
        #[arg(long)]
        stamp: Option<String>,
        /// Instead of a simulated platform image: write a smartos-live local
        /// project (projects/local/builder-brand) into this smartos-live
        /// checkout, for a real SmartOS platform build.
        #[arg(long, value_name = "DIR")]
        smartos_live: Option<PathBuf>,
    },
    /// Put the Triton pieces in place on the sim and leave them running:
    /// two compute nodes (one on a platform with builder), the Triton APIs,
    /// triton-gate as CloudAPI, an operator and a customer with keys, and
    /// a builder package and image. `--stop` stops them.
    Deploy {
        #[arg(long, default_value = "target/deploy")]
        dir: PathBuf,
        #[arg(long)]
        stop: bool,
        /// Clear DIR even when it is not empty and was not made by deploy.
        #[arg(long)]
        force: bool,
    },
    /// Build release binaries and bundle them with man pages, docs and a
    /// simulated platform image, with SHA256SUMS.
    Release {
        #[arg(long, default_value = "target/dist")]
        out: PathBuf,
        /// Release one phase's crates (0: ui-compat; 1: brand, vmadm-ext;
        /// 2: triton-gate; 3: image-ci, zvol-stream) with the shared crates
        /// they need.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=3))]
        phase: Option<u8>,
        /// Print the crates, versions, files and tags; write nothing.
        #[arg(long, requires = "phase")]
        dry_run: bool,
    },
    /// Build the book (mdBook) into target/book, with the manual pages.
    Docs,
    /// Install the system packages the tests need (when missing) and run
    /// the whole test suite.
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every phase end to end on the embedded sim and report each gate.
    Rollout {
        /// Where the work and the report go.
        #[arg(long, default_value = "target/rollout")]
        out: PathBuf,
        /// Clear OUT even when it is not empty and was not made by rollout.
        #[arg(long)]
        force: bool,
        /// Run one phase (and what it needs before it: 0 and 2 need phase 1,
        /// 3 needs 1 and 2).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=3))]
        phase: Option<u8>,
        /// Stop at the first gate that fails.
        #[arg(long)]
        fail_fast: bool,
        /// Vet and use this platform image (platform-<stamp>.tgz) instead of
        /// building one.
        #[arg(long, value_name = "FILE")]
        platform_image: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Platform {
            smartos_live: Some(dir),
            ..
        } => platform::smartos_live(&dir).map(|p| {
            println!("smartos-live local project: {}", p.display());
            true
        }),
        Cmd::Platform { out, stamp, .. } => {
            let stamp = stamp.unwrap_or_else(util::now_stamp);
            platform::platform(&out, &stamp).map(|b| {
                for l in &b.manifest {
                    println!("{l}");
                }
                println!("platform image: {}", b.image.display());
                true
            })
        }
        Cmd::Rollout {
            out,
            force,
            phase,
            fail_fast,
            platform_image,
        } => rollout::rollout_with(
            &out,
            force,
            &rollout::Options {
                phase,
                fail_fast,
                platform_image,
                bins: None,
            },
        ),
        Cmd::Test { args } => testcmd::test(&args),
        Cmd::Docs => docs::docs().map(|index| {
            println!("book: {}", index.display());
            true
        }),
        Cmd::Release {
            out,
            phase: Some(p),
            dry_run,
        } => release::release_phase(&out, p, dry_run),
        Cmd::Release { out, .. } => release::release(&out),
        Cmd::Deploy { dir, stop, force } => {
            if stop {
                deploy::deploy_stop(&dir)
            } else {
                deploy::deploy(&dir, force)
            }
        }
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("xtask: {}", common::cli::error_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
