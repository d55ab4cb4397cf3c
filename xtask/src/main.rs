//! Project chores. `cargo xtask platform` stages the builder brand.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Project chores: platform, deploy, rollout, release")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Stage the brand files into a platform proto tree and write its manifest.
    Platform {
        /// Proto tree to stage into.
        #[arg(long, default_value = "target/platform/proto")]
        dest: PathBuf,
        /// Brands to stage.
        #[arg(long = "brand", default_values_t = vec!["builder".to_string()])]
        brands: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Platform { dest, brands } => {
            let mut lines = Vec::new();
            for n in &brands {
                let b = brand::brands::by_name(n).with_context(|| format!("unknown brand {n}"))?;
                lines.extend(brand::stage::stage(&b, &dest)?);
                for f in brand::check::check(&dest, n).into_iter().filter(|f| !f.ok) {
                    // Hook programs come from the joyent brand of the full
                    // platform build; only file and parse problems stop here.
                    if !f.what.contains(" hook ") {
                        anyhow::bail!("staged brand {n} is inconsistent: {}", f.what);
                    }
                }
            }
            let manifest = dest.with_file_name("manifest");
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            brand::stage::write_atomic(&manifest, text.as_bytes(), 0o644)?;
            println!("staged {} into {}", brands.join(", "), dest.display());
            println!("manifest: {}", manifest.display());
            print!("{text}");
        }
    }
    Ok(())
}
