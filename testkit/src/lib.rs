//! Helpers the workspace's test suites share (a dev-dependency only).

use std::path::Path;
use std::process::Command;

/// `mandoc -T lint -W style` on a man page: every message except
/// "referenced manual not found" (the SmartOS and illumos pages a page
/// refers to are not installed here). Panics when mandoc is missing: the
/// check must not be skipped.
pub fn mandoc_lint(page: &Path) -> Vec<String> {
    let o = Command::new("mandoc")
        .args(["-T", "lint", "-W", "style"])
        .arg(page)
        .output()
        .expect("mandoc must be installed (apt-get install mandoc)");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&o.stderr).lines())
        .filter(|l| !l.trim().is_empty() && !l.contains("referenced manual not found"))
        .map(str::to_string)
        .collect()
}

/// Run `npm install` in `dir` (which holds a package.json) unless every
/// path in `ready` (relative to `dir`) exists. Test binaries may get here
/// at the same time, so it runs under a lock on `dir/node_modules.lock`.
pub fn npm_install(dir: &Path, ready: &[&str]) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("node_modules.lock"))
        .expect("lock file");
    let mut lock = fd_lock::RwLock::new(f);
    let _held = lock.write().expect("lock");
    if ready.iter().all(|p| dir.join(p).exists()) {
        return;
    }
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .output()
        .expect("npm must be installed for the real-client tests (apt-get install npm)");
    assert!(
        out.status.success(),
        "npm install in {} failed: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The environment variable `cargo xtask test` sets to the directory of
/// the workspace binaries it built once for every test binary.
pub const BIN_DIR_ENV: &str = "BUILDER_BRAND_BIN_DIR";

/// A workspace binary another package's tests run (`sim`, `vmadm-ext`,
/// `zvol-stream`, ...): from `BUILDER_BRAND_BIN_DIR` (set by `cargo xtask
/// test`, which builds them once), else from the cargo target directory
/// this test binary runs in (`target/debug/deps/..`). Tests never build
/// it themselves; when it is missing they fail saying how to get it.
pub fn bin(name: &str) -> std::path::PathBuf {
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            let deps = exe.parent().expect("test binary directory");
            match deps.file_name() {
                Some(n) if n == "deps" => deps.parent().expect("target dir").to_path_buf(),
                _ => deps.to_path_buf(),
            }
        }
    };
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is not built: run the tests with `cargo xtask test` (it builds the workspace \
         binaries once), or `cargo build --bins` first",
        p.display()
    );
    p
}

/// One multi-threaded runtime for a test binary's async clients.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Run a future to completion on [`rt`].
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    rt().block_on(f)
}
