//! `triton-gate`: serve the gate, read its audit log, explain a decision,
//! scan a Triton for builder exposure.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde::Deserialize;
use triton_api::Endpoints;
use triton_gate::audit::{self, Decision};
use triton_gate::brand::Defaults;
use triton_gate::{Gate, GateConfig};

/// The operator-only gate for the builder brand (CloudAPI-compatible).
#[derive(Parser)]
#[command(name = "triton-gate", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where Triton's services are (shared by `serve` and `scan`).
#[derive(clap::Args, Clone, Default)]
struct Urls {
    /// JSON file with the service URLs ({"mahi","papi","imgapi","cnapi","vmapi"}),
    /// e.g. the endpoints.json that `sim triton serve` writes.
    #[arg(long)]
    endpoints: Option<PathBuf>,
    #[arg(long, env = "TRITON_GATE_MAHI_URL")]
    mahi: Option<String>,
    #[arg(long, env = "TRITON_GATE_PAPI_URL")]
    papi: Option<String>,
    #[arg(long, env = "TRITON_GATE_IMGAPI_URL")]
    imgapi: Option<String>,
    #[arg(long, env = "TRITON_GATE_CNAPI_URL")]
    cnapi: Option<String>,
    #[arg(long, env = "TRITON_GATE_VMAPI_URL")]
    vmapi: Option<String>,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
enum Cmd {
    /// Serve CloudAPI's builder-relevant calls (and forward the rest with --cloudapi) until SIGINT/SIGTERM.
    Serve {
        /// A JSON config file: the long option names as keys (flags override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<String>,
        #[command(flatten)]
        urls: Urls,
        /// The audit log (JSON lines, appended).
        #[arg(long)]
        audit: Option<PathBuf>,
        /// Front mode: forward every request the gate does not decide to this CloudAPI.
        #[arg(long)]
        cloudapi: Option<String>,
        /// A platform floor for builder zones, e.g. 7.0=20261101T000000Z (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        builder_min_platform: Vec<String>,
        /// A network for builder machines whose request and package name none (repeatable).
        #[arg(long = "builder-network")]
        builder_networks: Vec<String>,
        /// limit_priv of builder zones [default: default,proc_clock_highres,sys_dl_config].
        #[arg(long)]
        builder_limit_priv: Option<String>,
        /// [default: kvm]
        #[arg(long)]
        default_hvm_brand: Option<String>,
        /// [default: joyent]
        #[arg(long)]
        default_container_brand: Option<String>,
        /// Log filter (bunyan JSON on stderr) [default: info].
        #[arg(long)]
        log_level: Option<String>,
        /// Seconds PAPI's and IMGAPI's answers to listings and lookups are kept
        /// (0: not kept; never keys, accounts or operators) [default: 2].
        #[arg(long)]
        cache_ttl: Option<String>,
    },
    /// Print the audit log.
    Audit {
        /// The audit log file.
        file: PathBuf,
        /// JSON, one record a line.
        #[arg(short = 'j')]
        json: bool,
        /// No header line.
        #[arg(short = 'H')]
        no_header: bool,
        /// Only denials.
        #[arg(long)]
        deny: bool,
    },
    /// Explain a CreateMachine decision offline (JSON in, JSON out).
    Decide {
        /// The request file (`-` for stdin).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// [default: kvm]
        #[arg(long, default_value = "kvm")]
        default_hvm_brand: String,
        /// [default: joyent]
        #[arg(long, default_value = "joyent")]
        default_container_brand: String,
    },
    /// Look for builder exposure on a running Triton (exit 1 on findings).
    Scan {
        #[command(flatten)]
        urls: Urls,
        /// A platform floor for builder zones, as given to `serve`.
        #[arg(long, value_delimiter = ',')]
        builder_min_platform: Vec<String>,
        /// JSON, one finding a line.
        #[arg(short = 'j')]
        json: bool,
    },
}

/// The config file of `serve` (`--config`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    listen: Option<String>,
    endpoints: Option<PathBuf>,
    mahi: Option<String>,
    papi: Option<String>,
    imgapi: Option<String>,
    cnapi: Option<String>,
    vmapi: Option<String>,
    audit: Option<PathBuf>,
    cloudapi: Option<String>,
    #[serde(default)]
    builder_min_platform: BTreeMap<String, String>,
    #[serde(default)]
    builder_networks: Vec<String>,
    builder_limit_priv: Option<String>,
    default_hvm_brand: Option<String>,
    default_container_brand: Option<String>,
    log_level: Option<String>,
    cache_ttl: Option<f64>,
}

fn endpoints(u: &Urls, file: &ConfigFile) -> anyhow::Result<Endpoints> {
    let mut e = match u.endpoints.as_ref().or(file.endpoints.as_ref()) {
        Some(p) => Endpoints::from_file(p)?,
        None => Endpoints::default(),
    };
    for (name, flag, conf, slot) in [
        ("mahi", &u.mahi, &file.mahi, &mut e.mahi),
        ("papi", &u.papi, &file.papi, &mut e.papi),
        ("imgapi", &u.imgapi, &file.imgapi, &mut e.imgapi),
        ("cnapi", &u.cnapi, &file.cnapi, &mut e.cnapi),
        ("vmapi", &u.vmapi, &file.vmapi, &mut e.vmapi),
    ] {
        if let Some(v) = flag.as_ref().or(conf.as_ref()) {
            *slot = v.trim_end_matches('/').to_string();
        }
        anyhow::ensure!(
            !slot.is_empty(),
            "no {name} URL (give --{name} or --endpoints)"
        );
    }
    Ok(e)
}

fn floor(
    given: &[String],
    file: &BTreeMap<String, String>,
) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let mut m = file.clone();
    for p in given {
        let (k, v) = p.split_once('=').with_context(|| {
            format!("--builder-min-platform {p}: want SDC_VERSION=STAMP, e.g. 7.0=20261101T000000Z")
        })?;
        anyhow::ensure!(
            triton_api::dapi::version_key_ok(k),
            "--builder-min-platform {p}: {k} is not an SDC version such as 7.0"
        );
        m.insert(k.to_string(), v.to_string());
    }
    Ok((!m.is_empty()).then_some(m))
}

/// `--cache-ttl` seconds as a duration (at most a day).
fn ttl_duration(secs: f64) -> anyhow::Result<std::time::Duration> {
    anyhow::ensure!(
        secs.is_finite() && (0.0..=86400.0).contains(&secs),
        "--cache-ttl {secs}: want seconds from 0 to 86400"
    );
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn serve(gate: Gate, listen: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            url = format!("http://{addr}").as_str(),
            cloudapi = gate.cfg.cloudapi.as_deref().unwrap_or("-"),
            cache_ttl_ms = gate.cfg.cache_ttl.as_millis() as u64,
            "triton-gate listening"
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        triton_gate::server::serve(Arc::new(gate), listener, shutdown).await?;
        Ok(())
    })
}

/// Print, ending quietly when stdout is closed (`| head`).
fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Serve {
            config,
            listen,
            urls,
            audit,
            cloudapi,
            builder_min_platform,
            builder_networks,
            builder_limit_priv,
            default_hvm_brand,
            default_container_brand,
            log_level,
            cache_ttl,
        } => {
            let file: ConfigFile = match &config {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("config {}", p.display()))?;
                    serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("config {}: {e}", p.display()))?
                }
                None => ConfigFile::default(),
            };
            let ep = endpoints(&urls, &file)?;
            let audit = audit
                .or(file.audit.clone())
                .context("no audit log (give --audit)")?;
            let hvm = default_hvm_brand
                .or(file.default_hvm_brand.clone())
                .unwrap_or_else(|| "kvm".into());
            let container = default_container_brand
                .or(file.default_container_brand.clone())
                .unwrap_or_else(|| "joyent".into());
            anyhow::ensure!(
                ["kvm", "bhyve"].contains(&hvm.as_str()),
                "--default-hvm-brand must be kvm or bhyve"
            );
            anyhow::ensure!(
                ["joyent", "joyent-minimal", "lx"].contains(&container.as_str()),
                "--default-container-brand must be joyent, joyent-minimal or lx"
            );
            let mut cfg = GateConfig::new(ep, audit);
            cfg.defaults = Defaults { hvm, container };
            cfg.builder_min_platform = floor(&builder_min_platform, &file.builder_min_platform)?;
            cfg.builder.networks = if builder_networks.is_empty() {
                file.builder_networks.clone()
            } else {
                builder_networks
            };
            if let Some(lp) = builder_limit_priv.or(file.builder_limit_priv.clone()) {
                cfg.builder.limit_priv = lp;
            }
            cfg.cloudapi = cloudapi.or(file.cloudapi.clone());
            let ttl = match cache_ttl {
                Some(t) => Some(t.trim().parse::<f64>().map_err(|_| {
                    anyhow::anyhow!("--cache-ttl {t}: want seconds, e.g. 2 or 0.5")
                })?),
                None => file.cache_ttl,
            };
            if let Some(t) = ttl {
                cfg.cache_ttl = ttl_duration(t)?;
            }
            let listen = listen
                .or(file.listen.clone())
                .unwrap_or_else(|| "127.0.0.1:8080".into());
            let level = log_level
                .or(file.log_level.clone())
                .unwrap_or_else(|| "info".into());
            let gate = Gate::new(cfg)?;
            triton_gate::logging::init("triton-gate", &level)?;
            serve(gate, &listen)?;
            Ok(0)
        }
        Cmd::Audit {
            file,
            json,
            no_header,
            deny,
        } => {
            anyhow::ensure!(file.exists(), "{}: no such file", file.display());
            let recs: Vec<audit::AuditRecord> = audit::read(&file)?
                .into_iter()
                .filter(|r| !deny || r.decision == Decision::Deny)
                .collect();
            if json {
                let mut s = String::new();
                for r in &recs {
                    s.push_str(&serde_json::to_string(r)?);
                    s.push('\n');
                }
                out(&s)?;
            } else {
                out(&audit::render_table(&recs, !no_header))?;
            }
            Ok(0)
        }
        Cmd::Decide {
            file,
            default_hvm_brand,
            default_container_brand,
        } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading stdin")?;
                s
            } else {
                std::fs::read_to_string(&file).with_context(|| file.display().to_string())?
            };
            let req = triton_gate::decide::parse(&text).map_err(anyhow::Error::msg)?;
            let d = Defaults {
                hvm: default_hvm_brand,
                container: default_container_brand,
            };
            let a = triton_gate::decide::decide(&req, &d);
            out(&format!("{}\n", a.to_json()))?;
            Ok(0)
        }
        Cmd::Scan {
            urls,
            builder_min_platform,
            json,
        } => {
            // a scan that cannot start is a usage error (2); 1 means findings
            let (ep, floor) = match endpoints(&urls, &ConfigFile::default())
                .and_then(|e| Ok((e, floor(&builder_min_platform, &BTreeMap::new())?)))
            {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("triton-gate: {}", common::cli::error_line(e.as_ref()));
                    return Ok(2);
                }
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = match rt.block_on(triton_gate::scan::scan(&ep, floor.as_ref())) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("triton-gate: scan: {}", e.to_string().replace('\n', " "));
                    return Ok(3);
                }
            };
            out(&report.render(json))?;
            Ok(if report.findings.is_empty() { 0 } else { 1 })
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    common::cli::quiet_broken_pipe();
    common::cli::completions_if_asked::<Cli>("triton-gate");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        Err(e) => {
            eprintln!("triton-gate: {}", common::cli::error_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
