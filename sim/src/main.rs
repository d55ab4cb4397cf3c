//! `sim`: the simulated SmartOS node and Triton APIs.
//!
//! Invoked as `vmadm`, `zoneadm`, `imgadm`, `piadm`, `sysinfo`,
//! `nictagadm`, `zlogin` or `uname` (a link of that name, or `sim <tool>`),
//! it is that tool for the node in `SIM_ROOT`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sim::node::Node;
use sim::{init, platform, run_tool, vminfod, zones, TOOLS};

/// The embedded default: simulated SmartOS nodes and Triton APIs.
#[derive(Parser)]
#[command(name = "sim", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create and manage node directories.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Build platform images.
    #[command(subcommand)]
    Platform(PlatformCmd),
    /// Reboot a node into its activated platform.
    Reboot {
        /// Node directory (default: $SIM_ROOT).
        #[arg(long, env = "SIM_ROOT")]
        root: PathBuf,
    },
    /// Serve vminfod's HTTP API (GET /ping, /vms, /vms/<uuid>) for a node.
    Vminfod {
        #[arg(long, env = "SIM_ROOT")]
        root: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
    },
    /// Make a directory of links named after the node tools, for PATH.
    Link { dir: PathBuf },
    /// Simulated Triton APIs (see `sim triton --help`).
    #[command(disable_help_flag = true)]
    Triton {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Create a node directory and boot a platform on it.
    Init {
        dir: PathBuf,
        /// Platform image to boot (default: a platform without builder).
        #[arg(long)]
        platform: Option<PathBuf>,
        #[arg(long)]
        hostname: Option<String>,
    },
}

#[derive(Subcommand)]
enum PlatformCmd {
    /// Build a platform image tarball.
    Build {
        /// Platform stamp, YYYYMMDDTHHMMSSZ.
        #[arg(long)]
        stamp: String,
        /// Comma-separated brands the platform carries.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "joyent,joyent-minimal,lx,bhyve,kvm"
        )]
        brands: Vec<String>,
        /// Directory copied over the platform's root file system.
        #[arg(long)]
        overlay: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn print_boot(r: &zones::BootReport) {
    println!("booted platform {}", r.stamp);
    for z in &r.booted {
        println!("zone {z} booted");
    }
    for (z, why) in &r.not_booted {
        eprintln!("zone {z} not booted: {why}");
    }
}

fn link(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let me = std::env::current_exe()?;
    for t in TOOLS {
        let p = dir.join(t);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(&me, &p)?;
    }
    Ok(())
}

fn run_sim(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Node(NodeCmd::Init {
            dir,
            platform,
            hostname,
        }) => {
            let r = init::init(&dir, platform.as_deref(), hostname.as_deref())?;
            println!("created node {}", dir.display());
            print_boot(&r);
        }
        Cmd::Platform(PlatformCmd::Build {
            stamp,
            brands,
            overlay,
            out,
        }) => {
            platform::build(&stamp, &brands, overlay.as_deref(), &out)?;
            println!("{}", out.display());
        }
        Cmd::Reboot { root } => {
            let node = Node::open(&root)?;
            print_boot(&zones::boot_node(&node)?);
        }
        Cmd::Vminfod { root, listen } => {
            let node = Node::open(&root)?;
            vminfod::serve_blocking(node, &listen)?;
        }
        Cmd::Link { dir } => link(&dir)?,
        Cmd::Triton { args } => return sim::triton::main(&args),
    }
    Ok(0)
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    common::cli::completions_if_asked::<Cli>("sim");
    let args: Vec<String> = std::env::args().collect();
    let argv0 = Path::new(args.first().map(String::as_str).unwrap_or("sim"))
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = if TOOLS.contains(&argv0.as_str()) {
        run_tool(&argv0, &args[1..])
    } else if args.len() > 1 && TOOLS.contains(&args[1].as_str()) {
        run_tool(&args[1], &args[2..])
    } else {
        match run_sim(Cli::parse()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("sim: {}", common::cli::error_line(e.as_ref()));
                1
            }
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
