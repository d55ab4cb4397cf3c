//! `cargo xtask`: platform, deploy, rollout, release, test (see the
//! library's modules).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xtask::{deploy, platform, release, rollout, testcmd, util};

#[derive(Parser)]
#[command(name = "xtask", about = "Project chores: platform, rollout")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Stage the brand files into a proto tree and build a platform image.
    Platform {
        /// Output directory.
        #[arg(long, default_value = "target/platform")]
        out: PathBuf,
        /// Platform stamp (default: now, YYYYMMDDTHHMMSSZ).
        #[arg(long)]
        stamp: Option<String>,
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
    /// platform image, with SHA256SUMS.
    Release {
        #[arg(long, default_value = "target/dist")]
        out: PathBuf,
    },
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
    },
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Platform { out, stamp } => {
            let stamp = stamp.unwrap_or_else(util::now_stamp);
            platform::platform(&out, &stamp).map(|b| {
                for l in &b.manifest {
                    println!("{l}");
                }
                println!("platform image: {}", b.image.display());
                true
            })
        }
        Cmd::Rollout { out, force } => rollout::rollout(&out, force),
        Cmd::Test { args } => testcmd::test(&args),
        Cmd::Release { out } => release::release(&out),
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
            eprintln!("xtask: {e:#}");
            ExitCode::from(1)
        }
    }
}
