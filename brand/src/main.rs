//! `brand`: show, stage, check and explore illumos zone brands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use brand::devices::{visible_devices, Visible, ZoneFacts};
use brand::zone::DeviceResource;
use brand::{brands, check, stage, Platform, ZoneConfig};
use clap::{Parser, Subcommand, ValueEnum};

/// Show, stage and check illumos zone brands (joyent, joyent-minimal,
/// bhyve and builder), and compute which /dev entries a zone sees.
#[derive(Parser)]
#[command(name = "brand", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Part {
    /// config.xml (brand.dtd.1)
    Config,
    /// platform.xml (zone_platform.dtd.1)
    Platform,
    /// the zonecfg template (zonecfg.dtd.1)
    Template,
}

#[derive(Clone, Copy, ValueEnum)]
enum IpType {
    Exclusive,
    Shared,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a brand's generated files (all of them when no part is named).
    Show {
        /// Brand name: joyent, joyent-minimal, bhyve or builder.
        name: String,
        part: Option<Part>,
    },
    /// Write brands into a platform proto tree and print the manifest lines.
    Stage {
        /// Root of the proto tree; files go to <DEST>/usr/lib/brand/<brand>/.
        #[arg(long)]
        dest: PathBuf,
        /// Also write the manifest lines to this file.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Brand to stage (repeatable).
        #[arg(long = "brand", default_values_t = vec!["builder".to_string()])]
        brands: Vec<String>,
    },
    /// Check that a brand is installed and consistent under a root.
    Check {
        /// Root of the system or proto tree (default /).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        #[arg(long = "brand", default_value = "builder")]
        brand: String,
    },
    /// List the /dev entries a zone sees.
    Devices {
        /// Root holding usr/lib/brand/, dev/ and (optionally) etc/zones/.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Zone name; its /etc/zones/<zone>.xml is read when present.
        #[arg(long)]
        zone: String,
        /// Brand (default: the zone's, else builder).
        #[arg(long)]
        brand: Option<String>,
        /// IP type (default: the zone's, else exclusive).
        #[arg(long, value_enum)]
        ip_type: Option<IpType>,
        /// The system zpool (`%P`).
        #[arg(long, default_value = "zones")]
        pool: String,
        /// Extra zonecfg device resource match (repeatable), e.g. /dev/vmm*.
        #[arg(long = "device")]
        devices: Vec<String>,
    },
}

fn known(name: &str) -> Result<brands::BrandFiles> {
    brands::by_name(name).with_context(|| {
        format!(
            "unknown brand {name:?} (known: {})",
            brands::KNOWN.join(", ")
        )
    })
}

fn show(name: &str, part: Option<Part>) -> Result<()> {
    let b = known(name)?;
    let files = b.files();
    let pick = |n: &str| files.iter().find(|(f, _)| f == n).map(|(_, t)| t.clone());
    match part {
        Some(Part::Config) => print!("{}", pick("config.xml").unwrap_or_default()),
        Some(Part::Platform) => print!("{}", pick("platform.xml").unwrap_or_default()),
        Some(Part::Template) => match b.templates.first() {
            Some((_, t)) => print!("{}", t.to_xml()),
            None => bail!("brand {name} ships no zonecfg template"),
        },
        None => {
            for (i, (f, t)) in files.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("==> /{}/{name}/{f} <==", brand::BRAND_DIR);
                print!("{t}");
            }
        }
    }
    Ok(())
}

fn do_stage(dest: &Path, manifest: Option<&Path>, names: &[String]) -> Result<()> {
    let mut lines = Vec::new();
    for n in names {
        lines.extend(stage::stage(&known(n)?, dest)?);
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if let Some(m) = manifest {
        stage::write_atomic(m, text.as_bytes(), 0o644)?;
    }
    print!("{text}");
    Ok(())
}

fn do_check(root: &Path, name: &str) -> Result<bool> {
    let findings = check::check(root, name);
    for f in &findings {
        println!("{f}");
    }
    Ok(findings.iter().all(|f| f.ok))
}

fn devices(
    root: &Path,
    zone: &str,
    brand_opt: Option<&str>,
    ip: Option<IpType>,
    pool: &str,
    extra: &[String],
) -> Result<()> {
    let name_ok = !zone.is_empty()
        && zone.len() < 64
        && zone.as_bytes()[0].is_ascii_alphanumeric()
        && zone
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !name_ok {
        bail!("{zone:?} is not a zone name");
    }
    let zpath = root.join("etc/zones").join(format!("{zone}.xml"));
    let cfg = match std::fs::read_to_string(&zpath) {
        Ok(t) => Some(ZoneConfig::parse(&t).with_context(|| format!("{}", zpath.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("{}", zpath.display())),
    };
    let brand_name = brand_opt
        .map(str::to_string)
        .or_else(|| cfg.as_ref().map(|c| c.brand().to_string()))
        .unwrap_or_else(|| "builder".into());
    let ip_type = match ip {
        Some(IpType::Exclusive) => "exclusive".to_string(),
        Some(IpType::Shared) => "shared".to_string(),
        None => cfg
            .as_ref()
            .map_or("exclusive".into(), |c| c.ip_type().to_string()),
    };
    let ppath = root
        .join(brand::BRAND_DIR)
        .join(&brand_name)
        .join("platform.xml");
    let text = std::fs::read_to_string(&ppath).with_context(|| {
        format!(
            "brand {brand_name} is not installed under {} ({})",
            root.display(),
            ppath.display()
        )
    })?;
    let platform = Platform::parse(&text).with_context(|| format!("{}", ppath.display()))?;
    let mut zdevs: Vec<DeviceResource> = cfg.as_ref().map(ZoneConfig::devices).unwrap_or_default();
    zdevs.extend(extra.iter().map(|m| DeviceResource {
        matches: m.clone(),
        net_attrs: vec![],
    }));
    let mut facts = ZoneFacts::new(zone, &ip_type, pool);
    if let Some(c) = &cfg {
        facts.zonepath = c.zonepath().to_string();
    }
    let seen = visible_devices(&platform, &facts, &zdevs, &root.join("dev"))?;
    for (path, how) in seen {
        match how {
            Visible::Node { is_dir: true, .. } => println!("{path}/"),
            Visible::Node { .. } => println!("{path}"),
            Visible::Renamed { from } => println!("{path} (/dev/{from})"),
            Visible::Symlink { target } => println!("{path} -> {target}"),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    common::cli::completions_if_asked::<Cli>("brand");
    let cli = Cli::parse();
    let r = match &cli.cmd {
        Cmd::Show { name, part } => show(name, *part).map(|_| true),
        Cmd::Stage {
            dest,
            manifest,
            brands,
        } => do_stage(dest, manifest.as_deref(), brands).map(|_| true),
        Cmd::Check { root, brand } => do_check(root, brand),
        Cmd::Devices {
            root,
            zone,
            brand,
            ip_type,
            pool,
            devices: extra,
        } => devices(root, zone, brand.as_deref(), *ip_type, pool, extra).map(|_| true),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("brand: {}", common::cli::error_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
