//! The real-browser test: headless Chromium, driven over WebDriver
//! (chromedriver + fantoccini), against the `ui-compat` binary and a `sim`
//! node served by `sim vminfod`.
//!
//! The node starts on the default platform (no builder brand) with a
//! zone-dataset image, a joyent zone made by `vmadm create`, and a zone of a
//! brand no tool knows ("futurebrand"), written into `etc/zones` as a host
//! that booted a newer platform would have it. The test logs in through the
//! form, checks the list, sees builder missing from the provision form,
//! boots a platform with builder (`sim platform build`, `piadm install` and
//! `activate`, `sim reboot`), sees builder offered, provisions a builder
//! zone through the form and finds it in the list and on the node.
//!
//! Needs Debian's `chromium` and `chromium-driver` on PATH (CI's `.ci/run`
//! and `cargo xtask test` install them); without them the test fails. The
//! sim binary is built with `cargo build -p sim --bin sim`. Screenshots go
//! to `<target>/ui-compat-screenshots/`.

use super::{PASSWORD, ROOT_HASH};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

const IMAGE: &str = "8e2c64c0-7b3a-4c4e-9d4c-2a6b1f0e5a01";
const FUTURE: &str = "f00dcafe-0000-4000-8000-0000000000f1";
const STAMP: &str = "20261101T000000Z";
const BUILDER_TITLE: &str = "Joyent Native Zone with BHYVE devices";
/// Every step waits at most this long; the whole test at most `WHOLE`.
const STEP: Duration = Duration::from_secs(20);
const WHOLE: Duration = Duration::from_secs(120);

/// `<target>/<profile>/ui-compat`: the profile directory holds the binaries.
fn profile_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ui-compat"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn on_path(prog: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(prog))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{prog} is not on PATH: the browser test needs Debian's chromium and \
                 chromium-driver (apt-get install chromium chromium-driver; .ci/run and \
                 `cargo xtask test` install them)"
            )
        })
}

/// The sim binary (`cargo xtask test` builds it once for every test).
fn sim_binary() -> PathBuf {
    testkit::bin("sim")
}

/// Run a command to completion; panic with its output unless it succeeds.
fn run(cmd: &mut Command, stdin: Option<&str>) -> String {
    use std::io::Write;
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut si = child.stdin.take().unwrap();
    si.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(si);
    let o = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {out}\nstderr: {err}",
        o.status
    );
    format!("{out}{err}")
}

/// Collect a child's output lines (for the failure report); the receiver
/// gets the first value `pick` finds in a line.
fn drain<R: AsyncRead + Unpin + Send + 'static>(
    r: R,
    log: Arc<Mutex<Vec<String>>>,
    pick: impl Fn(&str) -> Option<String> + Send + 'static,
) -> tokio::sync::oneshot::Receiver<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(v) = pick(&l) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(v);
                }
            }
            log.lock().unwrap().push(l);
        }
    });
    rx
}

/// What `drain` picked, waiting at most `STEP` ("" when nothing came).
async fn picked(rx: tokio::sync::oneshot::Receiver<String>) -> String {
    tokio::time::timeout(STEP, rx)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// A sim node in a temp dir with its tool links, ready for the browser.
struct SimNode {
    sim: PathBuf,
    dir: PathBuf,
}

impl SimNode {
    fn root(&self) -> PathBuf {
        self.dir.join("node")
    }
    fn tool(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
    /// A node tool (vmadm, imgadm, piadm, ...) on this node.
    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(self.tool(tool));
        c.env("SIM_ROOT", self.root());
        c
    }
    fn sim(&self) -> Command {
        let mut c = Command::new(&self.sim);
        c.env("SIM_ROOT", self.root());
        c
    }

    fn new(sim: PathBuf, dir: &Path) -> SimNode {
        let n = SimNode {
            sim,
            dir: dir.to_path_buf(),
        };
        run(n.sim().arg("node").arg("init").arg(n.root()), None);
        run(n.sim().arg("link").arg(dir.join("bin")), None);
        let manifest = json!({
            "v": 2, "uuid": IMAGE, "name": "base-64-lts", "version": "24.4.1",
            "type": "zone-dataset", "os": "smartos",
            "published_at": "2025-01-15T00:00:00Z",
            "description": "A 64-bit SmartOS image (browser test)",
        });
        std::fs::write(dir.join("image.json"), manifest.to_string()).unwrap();
        std::fs::write(dir.join("image.zfs.gz"), b"not really a zfs stream\n").unwrap();
        run(
            n.cmd("imgadm")
                .args(["install", "-m"])
                .arg(dir.join("image.json"))
                .arg("-f")
                .arg(dir.join("image.zfs.gz")),
            None,
        );
        let out = run(
            n.cmd("vmadm").arg("create"),
            Some(
                &json!({"brand": "joyent", "alias": "web01", "image_uuid": IMAGE,
                         "ram": 512, "quota": 10})
                .to_string(),
            ),
        );
        assert!(out.contains("Successfully created VM"), "{out}");
        n.add_future_zone();
        n
    }

    /// A zone of a brand this platform (and every tool here) does not know,
    /// as zonecfg would have written it on a platform that had the brand.
    fn add_future_zone(&self) {
        let zonepath = format!("/zones/{FUTURE}");
        let mut z = brand::ZoneConfig::new(FUTURE, &zonepath, "futurebrand");
        z.set("ip-type", "exclusive");
        z.set_attr("vm-version", "1");
        z.set_attr("create-timestamp", "2026-10-01T12:00:00.000Z");
        z.set_attr("owner-uuid", "00000000-0000-0000-0000-000000000000");
        z.set_attr("alias", "ZnV0dXJlem9uZQ=="); // base64("futurezone"), as vmadm stores it
        let root = self.root();
        std::fs::write(root.join(format!("etc/zones/{FUTURE}.xml")), z.to_xml()).unwrap();
        std::fs::create_dir_all(root.join(format!("zones/{FUTURE}/root"))).unwrap();
        let index = root.join("etc/zones/index");
        let mut t = std::fs::read_to_string(&index).unwrap();
        t.push_str(&format!("{FUTURE}:installed:{zonepath}:{FUTURE}\n"));
        std::fs::write(&index, t).unwrap();
    }

    /// Boot a platform that has the builder brand, as an operator would.
    fn boot_builder_platform(&self) {
        let pi = self.dir.join("platform.tgz");
        run(
            self.sim()
                .args(["platform", "build", "--stamp", STAMP, "--brands"])
                .arg("joyent,joyent-minimal,lx,bhyve,kvm,builder")
                .arg("--out")
                .arg(&pi),
            None,
        );
        run(self.cmd("piadm").arg("install").arg(&pi), None);
        run(self.cmd("piadm").args(["activate", STAMP]), None);
        run(
            self.sim().arg("reboot").arg("--root").arg(self.root()),
            None,
        );
        assert!(self
            .root()
            .join("usr/lib/brand/builder/platform.xml")
            .is_file());
    }
}

/// Processes the test started, killed when dropped, and their output.
struct Services {
    _children: Vec<tokio::process::Child>,
    ui: String,
    webdriver: String,
    logs: Vec<(&'static str, Arc<Mutex<Vec<String>>>)>,
}

impl Services {
    fn report(&self) -> String {
        let mut s = String::new();
        for (name, log) in &self.logs {
            let l = log.lock().unwrap();
            let tail = &l[l.len().saturating_sub(30)..];
            s.push_str(&format!(
                "--- {name} (last {} lines)\n{}\n",
                tail.len(),
                tail.join("\n")
            ));
        }
        s
    }
}

fn spawn(cmd: &mut tokio::process::Command) -> tokio::process::Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

async fn start_services(node: &SimNode, work: &Path) -> Services {
    let mut children = Vec::new();
    let mut logs = Vec::new();
    let mut out = |name: &'static str| {
        let l = Arc::new(Mutex::new(Vec::new()));
        logs.push((name, l.clone()));
        l
    };

    // vminfod of the node: "vminfod listening on http://ADDR" first on stdout.
    let mut v = spawn(
        tokio::process::Command::new(&node.sim)
            .args(["vminfod", "--root"])
            .arg(node.root())
            .args(["--listen", "127.0.0.1:0"]),
    );
    let vlog = out("sim vminfod");
    drain(v.stderr.take().unwrap(), vlog.clone(), |_| None);
    let vminfod = picked(drain(v.stdout.take().unwrap(), vlog, |l| {
        l.strip_prefix("vminfod listening on ").map(str::to_string)
    }))
    .await;
    assert!(vminfod.starts_with("http://"), "sim vminfod did not start");
    children.push(v);

    // The UI: its first bunyan record carries the URL.
    let shadow = work.join("shadow");
    std::fs::write(&shadow, format!("root:{ROOT_HASH}:19000::::::\n")).unwrap();
    let mut ui = spawn(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ui-compat"))
            .args(["--listen", "127.0.0.1:0", "--vminfod", &vminfod])
            .arg("--vmadm")
            .arg(node.tool("vmadm"))
            .arg("--imgadm")
            .arg(node.tool("imgadm"))
            .arg("--sysinfo")
            .arg(node.tool("sysinfo"))
            .arg("--nictagadm")
            .arg(node.tool("nictagadm"))
            .arg("--root")
            .arg(node.root())
            .arg("--shadow")
            .arg(&shadow)
            .env("SIM_ROOT", node.root()),
    );
    let ulog = out("ui-compat");
    drain(ui.stdout.take().unwrap(), ulog.clone(), |_| None);
    let url = picked(drain(ui.stderr.take().unwrap(), ulog, |l| {
        let v: Value = serde_json::from_str(l).ok()?;
        v["url"].as_str().map(str::to_string)
    }))
    .await;
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "ui-compat did not start: {url:?}"
    );
    children.push(ui);

    // chromedriver on a free loopback port ("... started successfully on port N.").
    let mut cd = spawn(
        tokio::process::Command::new(on_path("chromedriver"))
            .args(["--port=0", "--log-level=WARNING"]),
    );
    let clog = out("chromedriver");
    drain(cd.stderr.take().unwrap(), clog.clone(), |_| None);
    let port = picked(drain(cd.stdout.take().unwrap(), clog, |l| {
        let p = l.split("started successfully on port ").nth(1)?;
        Some(p.trim_end_matches('.').to_string())
    }))
    .await;
    assert!(port.parse::<u16>().is_ok(), "chromedriver did not start");
    children.push(cd);

    Services {
        _children: children,
        ui: url.trim_end_matches('/').to_string(),
        webdriver: format!("http://127.0.0.1:{port}"),
        logs,
    }
}

async fn connect(webdriver: &str, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": on_path("chromium"),
            "args": args,
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let http = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        STEP,
        ClientBuilder::new(http)
            .capabilities(caps)
            .connect(webdriver),
    )
    .await
    .expect("a WebDriver session within the step timeout")
    .unwrap_or_else(|e| panic!("WebDriver session with chromium: {e}"))
}

fn screenshot_dir() -> PathBuf {
    let d = profile_dir()
        .parent()
        .unwrap()
        .join("ui-compat-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshot_dir().join(name), png).unwrap();
}

/// Wait until the browser is at `path` (after a form submission).
async fn at(c: &Client, path: &str) {
    let until = Instant::now() + STEP;
    loop {
        let u = c.current_url().await.unwrap();
        if u.path() == path {
            return;
        }
        assert!(
            Instant::now() < until,
            "the browser is at {u}, expected {path}; page:\n{}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn css(c: &Client, sel: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(STEP)
        .for_element(Locator::Css(sel))
        .await
        .unwrap_or_else(|e| panic!("no {sel}: {e}"))
}

/// The instance rows as (data-uuid, data-brand, text).
async fn rows(c: &Client) -> Vec<(String, String, String)> {
    css(c, "table#instances").await;
    let mut v = Vec::new();
    for r in c.find_all(Locator::Css("tr[data-uuid]")).await.unwrap() {
        v.push((
            r.attr("data-uuid").await.unwrap().unwrap_or_default(),
            r.attr("data-brand").await.unwrap().unwrap_or_default(),
            r.text().await.unwrap(),
        ));
    }
    v
}

/// Step one of the provision form: pick the image, go on; then the brand
/// choices as (value, title).
async fn brand_choices(c: &Client, base: &str) -> Vec<(String, String)> {
    c.goto(&format!("{base}/provision")).await.unwrap();
    let step = css(c, "form.step").await;
    step.find(Locator::Css("select[name=image]"))
        .await
        .unwrap()
        .select_by_value(IMAGE)
        .await
        .unwrap();
    step.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let sel = css(c, "form.provision select[name=brand]").await;
    let mut v = Vec::new();
    for o in sel.find_all(Locator::Css("option")).await.unwrap() {
        v.push((
            o.attr("value").await.unwrap().unwrap_or_default(),
            o.attr("title").await.unwrap().unwrap_or_default(),
        ));
    }
    v
}

fn lap(t: &mut Instant, what: &str) {
    println!("browser: {what}: {} ms", t.elapsed().as_millis());
    *t = Instant::now();
}

/// What a person does in the browser, checked at every step.
async fn scenario(c: Client, node: Arc<SimNode>, base: String) {
    let mut t = Instant::now();

    // Log in through the form: the hidden CSRF token is the page's own.
    c.goto(&format!("{base}/login")).await.unwrap();
    let token = css(&c, "form input[name=csrf]").await;
    assert!(token
        .attr("value")
        .await
        .unwrap()
        .is_some_and(|v| v.len() >= 16));
    let user = css(&c, "input[name=user]").await;
    user.clear().await.unwrap();
    user.send_keys("root").await.unwrap();
    let pw = css(&c, "input[name=password]").await;
    pw.send_keys("not the password").await.unwrap();
    css(&c, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let alert = css(&c, ".flash.error").await.text().await.unwrap();
    assert_eq!(alert, "Wrong user or password.");
    at(&c, "/login").await;
    css(&c, "input[name=password]")
        .await
        .send_keys(PASSWORD)
        .await
        .unwrap();
    css(&c, "form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    at(&c, "/dashboard").await;
    screenshot(&c, "1-dashboard.png").await;
    lap(&mut t, "log in (one refusal, then the dashboard)");

    // The list: the joyent zone, and the futurebrand zone shown, tagged.
    c.goto(&format!("{base}/instances")).await.unwrap();
    let r = rows(&c).await;
    assert_eq!(r.len(), 2, "{r:?}");
    let fut = r
        .iter()
        .find(|(u, _, _)| u == FUTURE)
        .unwrap_or_else(|| panic!("no futurebrand row: {r:?}"));
    assert_eq!(fut.1, "futurebrand");
    assert!(
        fut.2.contains("futurezone") && fut.2.contains("unknown brand"),
        "{fut:?}"
    );
    assert!(
        r.iter()
            .any(|(_, b, t)| b == "joyent" && t.contains("web01")),
        "{r:?}"
    );
    screenshot(&c, "2-instances-before.png").await;
    lap(&mut t, "instances list (joyent + futurebrand)");

    // Default platform: builder is not offered for the zone-dataset image.
    let before = brand_choices(&c, &base).await;
    let names: Vec<&str> = before.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(names, ["joyent", "joyent-minimal"], "{before:?}");
    screenshot(&c, "3-provision-before-builder-platform.png").await;
    lap(&mut t, "provision form on the default platform");

    // Boot a platform with builder; the same form now offers it.
    let n = node.clone();
    tokio::task::spawn_blocking(move || n.boot_builder_platform())
        .await
        .unwrap();
    lap(
        &mut t,
        "sim platform build, piadm install/activate, sim reboot",
    );
    let after = brand_choices(&c, &base).await;
    let names: Vec<&str> = after.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(names, ["joyent", "joyent-minimal", "builder"], "{after:?}");
    assert_eq!(after[2].1, BUILDER_TITLE);
    let form = css(&c, "form.provision").await;
    form.find(Locator::Css("select[name=brand]"))
        .await
        .unwrap()
        .select_by_value("builder")
        .await
        .unwrap();
    let alias = form.find(Locator::Css("input[name=alias]")).await.unwrap();
    alias.send_keys("build01").await.unwrap();
    form.find(Locator::Css("select[name=nic_tag]"))
        .await
        .unwrap()
        .select_by_value("admin")
        .await
        .unwrap();
    screenshot(&c, "4-provision-builder.png").await;
    lap(&mut t, "provision form on the builder platform");

    // Provision: the UI validates, creates, and sends us to the list.
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    at(&c, "/instances").await;
    let flash = css(&c, ".flash").await.text().await.unwrap();
    assert!(
        flash.starts_with("Provisioned builder build01 ("),
        "{flash}"
    );
    let r = rows(&c).await;
    assert_eq!(r.len(), 3, "{r:?}");
    let b = r
        .iter()
        .find(|(_, b, _)| b == "builder")
        .unwrap_or_else(|| panic!("no builder row: {r:?}"))
        .clone();
    assert!(b.2.contains("build01"), "{b:?}");
    assert!(flash.contains(&b.0), "{flash} / {b:?}");
    assert!(
        r.iter().any(|(u, b, _)| u == FUTURE && b == "futurebrand"),
        "{r:?}"
    );
    screenshot(&c, "5-instances-after.png").await;
    lap(&mut t, "provision a builder zone through the form");

    // The node has it: vmadm get, as the platform's tools see it.
    let n = node.clone();
    let uuid = b.0.clone();
    let got = tokio::task::spawn_blocking(move || run(n.cmd("vmadm").args(["get", &uuid]), None))
        .await
        .unwrap();
    let vm: Value = serde_json::from_str(&got).unwrap_or_else(|e| panic!("vmadm get: {e}: {got}"));
    assert_eq!(vm["brand"], "builder");
    assert_eq!(vm["alias"], "build01");
    assert_eq!(vm["image_uuid"], IMAGE);
    assert_eq!(vm["nics"][0]["nic_tag"], "admin", "{vm}");

    // Its page, through the list's link.
    css(&c, &format!("tr[data-uuid='{}'] a", b.0))
        .await
        .click()
        .await
        .unwrap();
    at(&c, &format!("/instances/{}", b.0)).await;
    let body = css(&c, "main").await.text().await.unwrap();
    assert!(body.contains(BUILDER_TITLE), "{body}");
    screenshot(&c, "6-builder-instance.png").await;
    lap(&mut t, "the builder zone's page");
}

// About 5 s: a headless Chromium starts and walks six pages of the real UI
// (login, list, provision, instance pages); each step's time is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_list_and_provision_builder_on_a_sim_node() {
    // Fail, not skip, without the browser: look before building anything.
    on_path("chromium");
    on_path("chromedriver");
    let sim = sim_binary();

    let t1 = Instant::now();
    let work = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(screenshot_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "png") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let dir = work.path().to_path_buf();
    let node = Arc::new(
        tokio::task::spawn_blocking(move || SimNode::new(sim, &dir))
            .await
            .unwrap(),
    );
    let services = start_services(&node, work.path()).await;
    println!(
        "browser: node, vminfod, ui-compat, chromedriver: {} ms",
        t1.elapsed().as_millis()
    );
    let t2 = Instant::now();
    let client = connect(&services.webdriver, &work.path().join("chromium-profile")).await;
    println!("browser: chromium session: {} ms", t2.elapsed().as_millis());

    // Run the steps in a task so that a failed check still closes the
    // browser (and leaves a screenshot of where it stopped).
    let task = tokio::spawn(scenario(client.clone(), node.clone(), services.ui.clone()));
    let r = tokio::time::timeout(WHOLE, task).await;
    if r.as_ref().map_or(true, |j| j.is_err()) {
        if let Ok(png) = client.screenshot().await {
            let _ = std::fs::write(screenshot_dir().join("failed.png"), png);
        }
    }
    let _ = client.close().await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("{}", services.report());
            match e.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(e) => panic!("browser scenario: {e}"),
            }
        }
        Err(_) => panic!(
            "browser scenario took over {WHOLE:?}\n{}",
            services.report()
        ),
    }
    println!(
        "browser: whole test (after the sim build): {} ms; screenshots in {}",
        t1.elapsed().as_millis(),
        screenshot_dir().display()
    );
}
