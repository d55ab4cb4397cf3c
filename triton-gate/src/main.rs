//! `triton-gate`: serve the gate, read its audit log, try brand resolution.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use triton_gate::audit::{self, Decision};
use triton_gate::backend::Urls;
use triton_gate::brand::Defaults;
use triton_gate::policy::{self, CreateFacts, Principal};
use triton_gate::{Gate, GateConfig};

/// The operator-only gate for the builder brand (CloudAPI-compatible).
#[derive(Parser)]
#[command(name = "triton-gate", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve CloudAPI's machines, packages and images endpoints until SIGINT/SIGTERM.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
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
        /// The audit log (JSON lines, appended).
        #[arg(long)]
        audit: PathBuf,
        #[arg(long, default_value = "kvm")]
        default_hvm_brand: String,
        #[arg(long, default_value = "joyent")]
        default_container_brand: String,
        /// Place builder zones on servers that do not report their brands
        /// (trust CNAPI's min_platform/traits filters alone).
        #[arg(long)]
        trust_unreported_brands: bool,
        /// Log filter (bunyan JSON on stderr).
        #[arg(long, default_value = "info")]
        log_level: String,
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
    /// Resolve a brand as the gate would, without any service (exit 1 when refused).
    Resolve {
        /// The request's brand parameter.
        #[arg(long)]
        brand: Option<String>,
        /// The image's requirements.brand.
        #[arg(long)]
        image_brand: Option<String>,
        /// The image's type.
        #[arg(long, default_value = "zone-dataset")]
        image_type: String,
        /// The package's brand.
        #[arg(long)]
        package_brand: Option<String>,
        /// Resolve as an operator acting on an operator account.
        #[arg(long)]
        operator: bool,
    },
}

fn urls(endpoints: Option<PathBuf>, given: [(&str, Option<String>); 5]) -> anyhow::Result<Urls> {
    let mut u = match endpoints {
        Some(p) => Urls::from_endpoints_file(&p)?,
        None => Urls::default(),
    };
    for (name, v) in given {
        if let Some(v) = v {
            let v = v.trim_end_matches('/').to_string();
            match name {
                "mahi" => u.mahi = v,
                "papi" => u.papi = v,
                "imgapi" => u.imgapi = v,
                "cnapi" => u.cnapi = v,
                _ => u.vmapi = v,
            }
        }
    }
    for (name, v) in [
        ("mahi", &u.mahi),
        ("papi", &u.papi),
        ("imgapi", &u.imgapi),
        ("cnapi", &u.cnapi),
        ("vmapi", &u.vmapi),
    ] {
        anyhow::ensure!(
            !v.is_empty(),
            "no {name} URL (give --{name} or --endpoints)"
        );
    }
    Ok(u)
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

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Serve {
            listen,
            endpoints,
            mahi,
            papi,
            imgapi,
            cnapi,
            vmapi,
            audit,
            default_hvm_brand,
            default_container_brand,
            trust_unreported_brands,
            log_level,
        } => {
            let u = urls(
                endpoints,
                [
                    ("mahi", mahi),
                    ("papi", papi),
                    ("imgapi", imgapi),
                    ("cnapi", cnapi),
                    ("vmapi", vmapi),
                ],
            )?;
            anyhow::ensure!(
                ["kvm", "bhyve"].contains(&default_hvm_brand.as_str()),
                "--default-hvm-brand must be kvm or bhyve"
            );
            anyhow::ensure!(
                ["joyent", "joyent-minimal", "lx"].contains(&default_container_brand.as_str()),
                "--default-container-brand must be joyent, joyent-minimal or lx"
            );
            triton_gate::logging::init("triton-gate", &log_level)?;
            let mut cfg = GateConfig::new(u, audit);
            cfg.defaults = Defaults {
                hvm: default_hvm_brand,
                container: default_container_brand,
            };
            cfg.require_brand_report = !trust_unreported_brands;
            serve(Gate::new(cfg), &listen)?;
            Ok(0)
        }
        Cmd::Audit {
            file,
            json,
            no_header,
            deny,
        } => {
            anyhow::ensure!(file.exists(), "{}: no such file", file.display());
            let recs = audit::read(&file)?;
            let recs = recs
                .into_iter()
                .filter(|r| !deny || r.decision == Decision::Deny);
            if json {
                for r in recs {
                    println!("{}", serde_json::to_string(&r)?);
                }
                return Ok(0);
            }
            if !no_header {
                println!(
                    "{:<24}  {:<13}  {:<12}  {:<3}  {:<5}  {:<8}  {:<36}  REASON",
                    "TIME", "ACTION", "ACCOUNT", "OP", "DECISION", "BRAND", "VM"
                );
            }
            for r in recs {
                println!(
                    "{:<24}  {:<13}  {:<12}  {:<3}  {:<5}  {:<8}  {:<36}  {}",
                    r.time,
                    r.action,
                    r.account_login,
                    if r.operator { "yes" } else { "no" },
                    match r.decision {
                        Decision::Allow => "allow",
                        Decision::Deny => "deny",
                    },
                    r.brand.as_deref().unwrap_or("-"),
                    r.vm_uuid.as_deref().unwrap_or("-"),
                    r.reason
                );
            }
            Ok(0)
        }
        Cmd::Resolve {
            brand,
            image_brand,
            image_type,
            package_brand,
            operator,
        } => {
            let groups = if operator {
                vec![policy::OPERATORS_GROUP.to_string()]
            } else {
                vec![]
            };
            let who = Principal {
                caller_uuid: "caller".into(),
                caller_login: "caller".into(),
                caller_groups: groups.clone(),
                account_uuid: "caller".into(),
                account_login: "caller".into(),
                account_groups: groups,
                ..Default::default()
            };
            let facts = CreateFacts {
                params_brand: brand,
                image_brand,
                image_type: Some(image_type),
                package_brand,
            };
            match policy::resolve_brand(&who, &facts, &Defaults::default()) {
                Ok(r) => {
                    println!("{} ({})", r.brand, r.source.as_str());
                    Ok(0)
                }
                Err(d) => {
                    eprintln!("triton-gate: {}: {}", d.error.code, d.error.message);
                    Ok(1)
                }
            }
        }
    }
}

fn main() -> ExitCode {
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
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("triton-gate: {msg}");
            ExitCode::from(1)
        }
    }
}
