//! `gate-bench`: signed `GET /<account>/packages` through the gate against
//! the same query straight at PAPI, measured in one run on one machine.
//!
//! It starts the simulated Triton APIs (`sim triton serve`) and the gate
//! (`triton-gate serve`) as their own processes, from the directory this
//! program is in (or `--bin-dir`, or `BUILDER_BRAND_BIN_DIR`), adds an
//! operator and a customer account with ed25519 keys and a set of
//! packages (ordinary ones and an operator-owned builder package), then
//! drives both targets at a fixed concurrency, alternating in rounds, and
//! prints throughput and p50/p99 of each, their ratios and the goals.
//! `--check` exits 1 when a ratio misses its goal.
//!
//! ```text
//! cargo build --release -p sim -p triton-gate && target/release/gate-bench --check
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use serde_json::json;
use triton_api::{Endpoints, HttpClient, Package, PackageFilter, Papi, Signer};

/// Throughput of the gate at least this share of PAPI's.
const GOAL_THROUGHPUT: f64 = 0.5;
/// p99 of the gate at most this multiple of PAPI's.
const GOAL_P99: f64 = 2.0;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Who {
    /// An ordinary account: nothing builder to show or hide, no audit record.
    Customer,
    /// An operator: the listing shows the builder package, so every request
    /// is an audited decision (one durable record each).
    Operator,
}

/// A signed package listing through triton-gate against the same query at
/// PAPI, in one run: throughput, p50/p99, ratios and goals.
#[derive(Parser)]
#[command(name = "gate-bench")]
struct Cli {
    /// Requests per target (after the warm-up), split over the rounds.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 8)]
    concurrency: usize,
    /// Rounds; each runs PAPI, then the gate (interleaved, so that the
    /// machine's other load falls on both alike).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Warm-up requests per target before measuring.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Ordinary packages in PAPI (plus one builder package).
    #[arg(long, default_value_t = 12)]
    packages: usize,
    /// The account whose packages are listed.
    #[arg(long, value_enum, default_value = "customer")]
    account: Who,
    /// The gate's --cache-ttl (seconds; 0 turns the cache off).
    #[arg(long)]
    cache_ttl: Option<String>,
    /// Where `sim` and `triton-gate` are [default: this program's directory,
    /// or BUILDER_BRAND_BIN_DIR].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Keep the state directory (sim state, gate log, audit log).
    #[arg(long)]
    keep: bool,
    /// Exit 1 when a ratio misses its goal.
    #[arg(long)]
    check: bool,
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The state directory, removed when dropped unless kept.
struct Dir {
    path: PathBuf,
    keep: bool,
}

impl Drop for Dir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("gate-bench: state kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn bin_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(d) = &cli.bin_dir {
        return Ok(d.clone());
    }
    if let Some(d) = std::env::var_os("BUILDER_BRAND_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    Ok(exe.parent().context("no directory")?.to_path_buf())
}

fn program(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    anyhow::ensure!(
        p.is_file(),
        "{} is not built: run `cargo build --release -p sim -p triton-gate` (or give --bin-dir)",
        p.display()
    );
    Ok(p)
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    s[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    s
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{:?}", cmd.get_program()))?;
    anyhow::ensure!(
        out.status.success(),
        "{:?} failed: {}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Wait until `f` says yes (or fail after `limit`).
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        anyhow::ensure!(
            start.elapsed() < limit,
            "{what} did not start within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One target: how to make a request.
#[derive(Clone)]
enum Target {
    Papi {
        url: String,
        label: String,
    },
    Gate {
        url: String,
        path: String,
        signer: Box<Signer>,
    },
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::Papi { label, .. } => format!("PAPI  {label}"),
            Target::Gate { path, .. } => format!("gate  GET {path}"),
        }
    }

    fn request(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        match self {
            Target::Papi { url, .. } => client.get(url).header("accept", "application/json"),
            Target::Gate { url, path, signer } => {
                let date = httpdate::fmt_http_date(SystemTime::now());
                let auth = signer.authorization("GET", path, &date);
                client
                    .get(format!("{url}{path}"))
                    .header("accept", "application/json")
                    .header("accept-version", "~9||~8")
                    .header("date", date)
                    .header("authorization", auth)
            }
        }
    }
}

/// Latencies of one phase, and how long it took.
struct Phase {
    latencies: Vec<Duration>,
    wall: Duration,
}

/// `n` requests at concurrency `c`; every answer must be 200 with `count`
/// packages.
async fn load(
    client: &reqwest::Client,
    t: &Target,
    n: usize,
    c: usize,
    count: usize,
) -> anyhow::Result<Phase> {
    let left = Arc::new(AtomicUsize::new(n));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (client, t, left) = (client.clone(), t.clone(), left.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n / c + 1);
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                .is_ok()
            {
                let t0 = Instant::now();
                let r = t.request(&client).send().await?;
                let status = r.status().as_u16();
                let total = r
                    .headers()
                    .get("x-resource-count")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<usize>().ok());
                let body = r.bytes().await?;
                lat.push(t0.elapsed());
                anyhow::ensure!(
                    status == 200 && total == Some(count),
                    "{}: {status} ({total:?} packages, want {count}): {}",
                    t.name(),
                    String::from_utf8_lossy(&body)
                );
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for h in tasks {
        latencies.extend(h.await??);
    }
    Ok(Phase {
        latencies,
        wall: start.elapsed(),
    })
}

/// Throughput, p50 and p99 (ms) of phases taken together.
struct Stats {
    rps: f64,
    p50: f64,
    p99: f64,
}

fn stats(phases: &[Phase]) -> Stats {
    let mut all: Vec<Duration> = phases
        .iter()
        .flat_map(|p| p.latencies.iter().copied())
        .collect();
    all.sort();
    let wall: f64 = phases.iter().map(|p| p.wall.as_secs_f64()).sum();
    let q = |f: f64| {
        let i = ((all.len() as f64 * f).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    };
    Stats {
        rps: all.len() as f64 / wall.max(1e-9),
        p50: q(0.50),
        p99: q(0.99),
    }
}

fn package(name: &str, brand: &str, owners: Option<&str>, mem: u64) -> anyhow::Result<Package> {
    let mut p = json!({
        "uuid": uuid::Uuid::new_v4().to_string(), "name": name, "version": "1.0.0",
        "active": true, "brand": brand, "cpu_cap": 200, "max_lwps": 2000,
        "max_physical_memory": mem, "max_swap": mem * 2, "quota": 10240,
        "zfs_io_priority": 100,
    });
    if let Some(o) = owners {
        p["owner_uuids"] = json!([o]);
    }
    Ok(serde_json::from_value(p)?)
}

async fn bench(cli: Cli) -> anyhow::Result<bool> {
    let bins = bin_dir(&cli)?;
    let sim = program(&bins, "sim")?;
    let gate_bin = program(&bins, "triton-gate")?;
    anyhow::ensure!(
        cli.concurrency > 0 && cli.rounds > 0,
        "--concurrency and --rounds must be at least 1"
    );
    anyhow::ensure!(
        cli.requests >= cli.rounds,
        "--requests must be at least --rounds"
    );
    let dir = Dir {
        path: std::env::temp_dir().join(format!("gate-bench-{}", std::process::id())),
        keep: cli.keep,
    };
    let _ = std::fs::remove_dir_all(&dir.path);
    std::fs::create_dir_all(&dir.path)?;
    let data = dir.path.join("triton");

    // accounts, each with its own key
    let (login, operator) = match cli.account {
        Who::Customer => ("bench", false),
        Who::Operator => ("ops", true),
    };
    let ops_uuid = uuid::Uuid::new_v4().to_string();
    let mut signer = None;
    for (name, op, uuid) in [
        ("ops", true, ops_uuid.clone()),
        ("bench", false, uuid::Uuid::new_v4().to_string()),
    ] {
        let s = Signer::ed25519_from_seed(name, &seed());
        let pubf = dir.path.join(format!("{name}.pub"));
        std::fs::write(&pubf, s.public_openssh(&format!("{name}@gate-bench")))?;
        let mut cmd = Command::new(&sim);
        cmd.args(["triton", "account-add", "--data"])
            .arg(&data)
            .args(["--login", name, "--uuid", &uuid, "--approved", "--key"])
            .arg(&pubf);
        if op {
            cmd.arg("--operator");
        }
        run_ok(&mut cmd)?;
        if name == login {
            signer = Some((s, uuid));
        }
    }
    let (signer, account_uuid) = signer.context("no account")?;

    // the simulated APIs
    let _sim = Proc(
        Command::new(&sim)
            .args(["triton", "serve", "--data"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| sim.display().to_string())?,
    );
    let epf = data.join("endpoints.json");
    let http = HttpClient::default();
    wait_for("sim triton", Duration::from_secs(30), || {
        let (epf, http) = (epf.clone(), http.clone());
        async move {
            let Ok(ep) = Endpoints::from_file(&epf) else {
                return false;
            };
            match Papi::new(&http, &ep.papi) {
                Ok(p) => p.ping().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await?;
    let ep = Endpoints::from_file(&epf)?;
    let papi = Papi::new(&http, &ep.papi)?;
    for i in 0..cli.packages {
        let p = package(
            &format!("g1-{}g", i + 1),
            "joyent",
            None,
            1024 * (i as u64 + 1),
        )?;
        papi.create(&p).await.context("PAPI create")?;
    }
    papi.create(&package("builder-8g", "builder", Some(&ops_uuid), 8192)?)
        .await
        .context("PAPI create")?;
    let filter = PackageFilter::for_account(&account_uuid);
    let count = papi.list(&filter).await?.len();
    let expect = cli.packages + usize::from(operator);
    anyhow::ensure!(
        count == expect,
        "PAPI lists {count} packages for {login}, want {expect}"
    );

    // the gate
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let audit = dir.path.join("audit.log");
    let gate_log = std::fs::File::create(dir.path.join("gate.log"))?;
    let mut cmd = Command::new(&gate_bin);
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--endpoints",
    ])
    .arg(&epf)
    .arg("--audit")
    .arg(&audit)
    .stdout(Stdio::null())
    .stderr(gate_log);
    if let Some(t) = &cli.cache_ttl {
        cmd.args(["--cache-ttl", t]);
    }
    let _gate = Proc(
        cmd.spawn()
            .with_context(|| gate_bin.display().to_string())?,
    );
    let gate_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(60))
        .build()?;
    wait_for("triton-gate", Duration::from_secs(30), || {
        let r = client.get(format!("{gate_url}/--ping")).send();
        async move { r.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await?;

    let papi_url = {
        let q: Vec<String> = filter
            .to_query()
            .pairs()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}/packages?{}", ep.papi.trim_end_matches('/'), q.join("&"))
    };
    let targets = [
        Target::Papi {
            url: papi_url,
            label: format!("GET /packages?active=true&owner_uuids=<{login}>"),
        },
        Target::Gate {
            url: gate_url,
            path: format!("/{login}/packages"),
            signer: Box::new(signer),
        },
    ];
    println!(
        "gate-bench: {} requests per target at concurrency {}, {} rounds, account {login} ({}), {} packages listed{}",
        cli.requests,
        cli.concurrency,
        cli.rounds,
        if operator { "operator: every listing audited" } else { "customer" },
        count,
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(|x| format!(", load {x} before")))
            .unwrap_or_default()
    );
    for t in &targets {
        load(&client, t, cli.warmup, cli.concurrency, count).await?;
    }
    let audit_before = count_lines(&audit);
    let mut phases: [Vec<Phase>; 2] = [Vec::new(), Vec::new()];
    for r in 0..cli.rounds {
        let n = cli.requests / cli.rounds + usize::from(r < cli.requests % cli.rounds);
        for (i, t) in targets.iter().enumerate() {
            phases[i].push(load(&client, t, n, cli.concurrency, count).await?);
        }
    }
    let audited = count_lines(&audit) - audit_before;

    let s: Vec<Stats> = phases.iter().map(|p| stats(p)).collect();
    println!(
        "{:<40}  {:>9}  {:>8}  {:>8}",
        "TARGET", "REQ/S", "P50 MS", "P99 MS"
    );
    for (t, s) in targets.iter().zip(&s) {
        println!(
            "{:<40}  {:>9.0}  {:>8.2}  {:>8.2}",
            t.name(),
            s.rps,
            s.p50,
            s.p99
        );
    }
    let thr = s[1].rps / s[0].rps;
    let p99 = s[1].p99 / s[0].p99;
    let ok_thr = thr >= GOAL_THROUGHPUT;
    let ok_p99 = p99 <= GOAL_P99;
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "throughput gate/PAPI {thr:.2} (goal >= {GOAL_THROUGHPUT}): {}",
        mark(ok_thr)
    );
    println!(
        "p99 gate/PAPI        {p99:.2} (goal <= {GOAL_P99}): {}",
        mark(ok_p99)
    );
    println!("audit records written while measuring the gate: {audited}");
    Ok(ok_thr && ok_p99)
}

fn count_lines(p: &Path) -> usize {
    std::fs::read(p)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let check = cli.check;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gate-bench: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(bench(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if check => ExitCode::from(1),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gate-bench: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}
