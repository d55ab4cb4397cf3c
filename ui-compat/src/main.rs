//! `ui-compat`: the web UI. See ui-compat(8).

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use ui_compat::tools::Tools;
use ui_compat::vminfod::Vminfod;
use ui_compat::web::{self, Config};

/// A brand-tolerant web UI for a SmartOS node.
#[derive(Parser, Debug)]
#[command(name = "ui-compat", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(short, long, default_value = "127.0.0.1:4443")]
    listen: SocketAddr,
    /// vminfod base URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    vminfod: String,
    #[arg(long, default_value = "/usr/sbin/vmadm")]
    vmadm: PathBuf,
    #[arg(long, default_value = "/usr/sbin/imgadm")]
    imgadm: PathBuf,
    #[arg(long, default_value = "/usr/bin/sysinfo")]
    sysinfo: PathBuf,
    #[arg(long, default_value = "/usr/bin/nictagadm")]
    nictagadm: PathBuf,
    /// The node's root; installed brands are read from ROOT/usr/lib/brand.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Shadow-format password file.
    #[arg(long, default_value = "/etc/shadow")]
    shadow: PathBuf,
    /// User allowed to log in (repeat for more).
    #[arg(long = "user", default_value = "root")]
    users: Vec<String>,
    /// PEM certificate chain: serve HTTPS (needs --key).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key (needs --cert).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Seconds a command may run before it is killed.
    #[arg(long, default_value_t = 600)]
    command_timeout: u64,
    /// Hours a login lasts.
    #[arg(long, default_value_t = 8)]
    session_hours: u64,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() {
    common::cli::quiet_broken_pipe();
    common::cli::completions_if_asked::<Args>("ui-compat");
    let args = Args::parse();
    if let Err(e) = real_main(args) {
        eprintln!("ui-compat: {}", common::cli::error_line(e.as_ref()));
        std::process::exit(1);
    }
}

#[tokio::main]
async fn real_main(a: Args) -> anyhow::Result<()> {
    ui_compat::logging::init("ui-compat", &a.log_level)?;
    let vminfod = Vminfod::new(&a.vminfod)?;
    let tls = a.cert.is_some();
    let config = Config {
        vminfod,
        tools: Tools {
            vmadm: a.vmadm,
            imgadm: a.imgadm,
            sysinfo: a.sysinfo,
            nictagadm: a.nictagadm,
            timeout: Duration::from_secs(a.command_timeout),
        },
        root: a.root,
        shadow: a.shadow,
        users: a.users,
        secure_cookies: tls,
        session_ttl: Duration::from_secs(a.session_hours * 3600),
    };
    let app = web::router(config.clone());
    let listener = std::net::TcpListener::bind(a.listen)
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let scheme = if tls { "https" } else { "http" };
    tracing::info!(
        addr = %addr,
        url = %format!("{scheme}://{addr}/"),
        vminfod = %config.vminfod.url(""),
        root = %config.root.display(),
        "listening"
    );
    match (a.cert, a.key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load TLS cert {} / key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown().await;
                h.graceful_shutdown(Some(Duration::from_secs(5)));
            });
            axum_server::from_tcp_rustls(listener, tls)?
                .handle(handle)
                .serve(app.into_make_service())
                .await?;
        }
        _ => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown())
                .await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
