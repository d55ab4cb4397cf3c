//! `image-ci serve`: the schedule runs (a zone made for each run), the
//! status endpoint and `image-ci status` report it, SIGTERM during a build
//! stops it cleanly (the run interrupted, its zone deleted, nothing left
//! running), and a restart marks nothing twice and runs again. Bad
//! configuration is one line and exit 1 before any zone is made. The SMF
//! manifest and the systemd unit start the installed `image-ci serve` with
//! the configuration.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::common::*;

/// A config for a node-backend service over the shared sim node.
fn config_text(
    n: &Node,
    dir: &Path,
    imgapi: &str,
    repo: &Path,
    alias: &str,
    schedule: &str,
) -> String {
    let (_, vmadm_ext) = bins();
    format!(
        r#"imgapi = "{imgapi}"
state = "{state}"
listen = "127.0.0.1:0"
backend = "node"

{schedule}

[checkout]
repo = "{repo}"
ref = "main"
path = "/root/tci"

[zone]
image_uuid = "{image}"
alias = "{alias}"

[node]
root = "{root}"
tools_dir = "{bin}"
vmadm_ext = "{vmadm_ext}"

[boot]
accel = "tcg"
timeout = 5
"#,
        state = dir.join("state/state.db").display(),
        repo = repo.display(),
        image = sim::rfd::IMAGE_UUID,
        root = n.root.display(),
        bin = n.bin.display(),
        vmadm_ext = vmadm_ext.display(),
    )
}

/// A running `image-ci serve`, its stderr lines collected.
struct Served {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    url: String,
}

fn serve(cfg: &Path, stub: &Path) -> Served {
    let mut child = Command::new(image_ci_bin())
        .args(["serve", "--config"])
        .arg(cfg)
        .env("PATH", path_with(stub))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(vec![]));
    let l2 = lines.clone();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(|l| l.ok()) {
            l2.lock().unwrap().push(l);
        }
    });
    let mut url = String::new();
    wait_for(60, "the service's status address", || {
        let ls = lines.lock().unwrap();
        if let Some(u) = ls.iter().find_map(|l| {
            l.strip_prefix("image-ci: serving status on ")
                .and_then(|u| u.strip_suffix("/status"))
        }) {
            url = u.to_string();
            true
        } else {
            false
        }
    });
    Served { child, lines, url }
}

fn status(url: &str) -> Value {
    image_ci::serve::fetch_status(url).unwrap()
}

fn sigterm(c: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

fn run_of<'a>(v: &'a Value, status: &str) -> Option<&'a Value> {
    v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == status)
}

/// The schedule fires every 2 seconds; each run makes a zone, clones the
/// checkout, builds, boots the image in qemu and ships. The test waits for
/// firings (three runs, one of them stopped by SIGTERM): about 6 s.
#[test]
fn serve_runs_the_schedule_reports_it_and_stops_cleanly() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let slow = t.path().join("slow");
    let in_build = t.path().join("in-build");
    // the build waits while `slow` exists (and says so, with its pid)
    let repo = stand_in_repo(
        t.path(),
        Some(&format!(
            "#!/bin/sh\nif [ -f '{slow}' ]; then echo $$ > '{pid}'; touch '{in_build}'; while [ -f '{slow}' ]; do sleep 0.1; done; fi\n",
            slow = slow.display(),
            pid = t.path().join("build.pid").display(),
            in_build = in_build.display()
        )),
    );
    let stub = pkgin_stub(t.path());
    let bg = triton(t.path());
    let cfg = t.path().join("image-ci.toml");
    std::fs::write(
        &cfg,
        config_text(
            n,
            t.path(),
            bg.url("imgapi"),
            &repo,
            "ici-serve",
            "[[schedule]]\nname = \"often\"\ncron = \"*/2 * * * * *\"\ntargets = [\"rocky-9\"]\n",
        ),
    )
    .unwrap();
    let mut s = serve(&cfg, &stub);

    // a run happens and the status endpoint reports it
    let mut v = Value::Null;
    wait_for(90, "a finished run in /status", || {
        v = status(&s.url);
        run_of(&v, "ok").is_some()
    });
    let done = run_of(&v, "ok").unwrap().clone();
    assert_eq!(done["trigger"], "schedule:often");
    let stages: Vec<&str> = done["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["stage"].as_str().unwrap())
        .collect();
    for st in [
        "zone",
        "provision",
        "build",
        "verify",
        "boot",
        "ship",
        "zone-delete",
    ] {
        assert!(stages.contains(&st), "{st} not in {stages:?}");
    }
    assert!(done["stages"][0]["ms"].is_u64());
    let tgt = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["target"] == "rocky-9")
        .unwrap();
    assert!(
        tgt["last_outcome"] == "shipped" || tgt["last_outcome"] == "already_shipped",
        "{tgt}"
    );
    assert_eq!(v["service"]["schedules"][0]["name"], "often");
    assert!(v["service"]["schedules"][0]["next"].is_string());
    // the HTML page and `image-ci status`
    let page = image_ci::ship::block_on(async {
        image_ci::ship::http()
            .reqwest()
            .get(format!("{}/", s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(page.contains("<h1>image-ci</h1>") && page.contains(done["id"].as_str().unwrap()));
    let o = Command::new(image_ci_bin())
        .args(["status", "--url", &s.url])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(done["id"].as_str().unwrap()), "{text}");
    assert!(text.contains("schedule often"), "{text}");
    // bunyan JSON logs
    let logged: Vec<Value> = s
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        logged.iter().any(|l| l["msg"] == "scheduled run ended"
            && l["name"] == "image-ci"
            && l["level"] == 30),
        "{logged:#?}"
    );

    // SIGTERM during a build
    std::fs::write(&slow, b"").unwrap();
    wait_for(60, "a build that waits", || in_build.exists());
    let v = status(&s.url);
    let running = run_of(&v, "running").expect("a running run").clone();
    assert_eq!(v["current"]["stage"], "build", "{v:#}");
    let build_pid: i32 = std::fs::read_to_string(t.path().join("build.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    sigterm(&s.child);
    let st = s.child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{:?}", s.lines.lock().unwrap());
    // nothing left running: the build, its zone
    assert!(
        !image_ci::state::process_alive(build_pid),
        "the build ({build_pid}) survived"
    );
    let store = image_ci::state::Store::open(&t.path().join("state/state.db")).unwrap();
    let runs = store.runs(50).unwrap();
    let stopped = runs.iter().find(|r| r.id == running["id"]).unwrap();
    assert_eq!(stopped.status, "interrupted");
    assert!(stopped
        .stages
        .iter()
        .any(|x| x.stage == "build" && x.status == "interrupted"));
    assert!(stopped
        .targets
        .iter()
        .all(|x| x.outcome == image_ci::history::Outcome::Interrupted));
    assert!(stopped
        .stages
        .iter()
        .any(|x| x.stage == "zone-delete" && x.status == "ok"));
    let zone = stopped.place.clone();
    assert!(common::uuid::is_uuid(&zone), "{zone}");
    let left = vms(&n.root, &n.bin);
    assert!(
        !left.iter().any(|(_, a, _)| a.starts_with("ici-serve-")),
        "zones left: {left:?}"
    );
    assert!(processes_with(&cfg.display().to_string()).is_empty());
    drop(store);

    // restart: the run stays interrupted, the next one proceeds
    std::fs::remove_file(&slow).unwrap();
    let mut s = serve(&cfg, &stub);
    let before: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let mut v = Value::Null;
    wait_for(90, "a new finished run after the restart", || {
        v = status(&s.url);
        v["runs"].as_array().unwrap().iter().any(|r| {
            r["status"] == "ok" && !before.contains(&r["id"].as_str().unwrap().to_string())
        })
    });
    let again = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == running["id"])
        .unwrap();
    assert_eq!(again["status"], "interrupted");
    sigterm(&s.child);
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
    let left = vms(&n.root, &n.bin);
    assert!(
        !left.iter().any(|(_, a, _)| a.starts_with("ici-serve-")),
        "{left:?}"
    );
    bg.stop();
}

/// Each bad configuration: exit 1, one line naming the problem, and no
/// zone made.
#[test]
fn bad_config_is_one_line_and_exit_1_before_any_zone() {
    let node = node();
    let n = &node;
    let t = tempfile::tempdir().unwrap();
    let repo = stand_in_repo(t.path(), None);
    let stub = pkgin_stub(t.path());
    let bg = triton(t.path());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let sched = |cron: &str, targets: &str| {
        format!("[[schedule]]\nname = \"nightly\"\ncron = \"{cron}\"\ntargets = [{targets}]\n")
    };
    let good = config_text(
        n,
        t.path(),
        bg.url("imgapi"),
        &repo,
        "ici-badcfg",
        &sched("0 3 * * *", "\"debian-12\""),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown target",
            good.replace("\"debian-12\"", "\"rocky-7\""),
            "schedule nightly: unknown target \"rocky-7\"",
        ),
        (
            "bad cron expression",
            good.replace("0 3 * * *", "0 3 * * * * *"),
            "schedule nightly: bad cron expression \"0 3 * * * * *\"",
        ),
        (
            "bad cron field",
            good.replace("0 3 * * *", "61 3 * * *"),
            "schedule nightly: bad cron expression \"61 3 * * *\"",
        ),
        (
            "unreachable IMGAPI",
            good.replace(bg.url("imgapi"), &closed),
            "is unreachable",
        ),
        (
            "missing zone image",
            good.replace(sim::rfd::IMAGE_UUID, "00000000-0000-4000-8000-00000000beef"),
            "zone image 00000000-0000-4000-8000-00000000beef is not installed on the node",
        ),
    ];
    for (what, text, want) in &cases {
        let cfg = t.path().join("bad.toml");
        std::fs::write(&cfg, text).unwrap();
        for args in [
            vec!["serve", "--config"],
            vec!["-q", "run", "--config"],
            vec!["check-config", "--config"],
        ] {
            let o = Command::new(image_ci_bin())
                .args(&args)
                .arg(&cfg)
                .env("PATH", path_with(&stub))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{what} {args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{what} {args:?}: {err}");
            assert!(
                err.starts_with(&format!("image-ci: {}: ", cfg.display())),
                "{what} {args:?}: {err}"
            );
            assert!(err.contains(want), "{what} {args:?}: {want:?} not in {err}");
        }
    }
    // `run -t` with an unknown target, the good file otherwise
    let cfg = t.path().join("good.toml");
    std::fs::write(&cfg, &good).unwrap();
    let o = Command::new(image_ci_bin())
        .args(["-q", "run", "--config"])
        .arg(&cfg)
        .args(["-t", "rocky-7"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown target \"rocky-7\""), "{err}");
    // the good file passes the check (control)
    let o = Command::new(image_ci_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // no zone was made, and nothing shipped
    let left = vms(&n.root, &n.bin);
    assert!(
        !left.iter().any(|(_, a, _)| a.starts_with("ici-badcfg")),
        "{left:?}"
    );
    assert!(all_images(bg.url("imgapi")).is_empty());
    bg.stop();
}

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("smf/image-ci.xml")
}

/// `<bin> serve --config <file>` from a start command line.
fn serve_argv(line: &str) -> (String, String) {
    let argv: Vec<&str> = line.split_whitespace().collect();
    assert!(argv.len() == 4, "{line}");
    assert_eq!(argv[1], "serve", "{line}");
    assert_eq!(argv[2], "--config", "{line}");
    (argv[0].to_string(), argv[3].to_string())
}

#[test]
fn smf_manifest_is_valid_and_starts_image_ci_serve_with_the_config() {
    let m = manifest();
    let dtd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/oracle/illumos/service_bundle.dtd.1");
    assert!(dtd.is_file(), "{} missing", dtd.display());
    let o = Command::new("xmllint")
        .arg("--noout")
        .arg("--dtdvalid")
        .arg(&dtd)
        .arg(&m)
        .output()
        .expect("xmllint must be installed (apt-get install libxml2-utils)");
    assert!(
        o.status.success(),
        "xmllint: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // read it back: the start method and the config property
    let text = std::fs::read_to_string(&m).unwrap();
    let mut r = quick_xml::Reader::from_str(&text);
    let (mut start, mut stop, mut conf, mut svc) = (None, None, None, None);
    let mut group = String::new();
    loop {
        match r.read_event().unwrap() {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let attr = |k: &str| {
                    e.try_get_attribute(k)
                        .unwrap()
                        .map(|a| a.unescape_value().unwrap().to_string())
                };
                match e.name().as_ref() {
                    b"service" => svc = attr("name"),
                    b"exec_method" if attr("name").as_deref() == Some("start") => {
                        start = attr("exec")
                    }
                    b"exec_method" if attr("name").as_deref() == Some("stop") => {
                        stop = attr("exec")
                    }
                    b"property_group" => group = attr("name").unwrap_or_default(),
                    b"propval" if group == "config" && attr("name").as_deref() == Some("file") => {
                        conf = attr("value")
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert_eq!(svc.as_deref(), Some("smartdc/application/image-ci"));
    assert_eq!(stop.as_deref(), Some(":kill"), "SIGTERM stops it");
    let (bin, arg) = serve_argv(start.as_deref().expect("a start method"));
    assert!(
        bin.starts_with('/') && bin.ends_with("/bin/image-ci"),
        "{bin}"
    );
    assert_eq!(arg, "%{config/file}");
    let conf = conf.expect("config/file");
    assert!(conf.starts_with('/') && conf.ends_with(".toml"), "{conf}");
    // the command line it runs is one the binary takes: a missing config
    // is an error (1), not a usage error (2)
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("config.toml");
    let o = Command::new(image_ci_bin())
        .args(["serve", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("config.toml"));
}

#[test]
fn systemd_unit_starts_image_ci_serve_with_the_config() {
    let u = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/image-ci.service");
    let text = std::fs::read_to_string(&u).unwrap();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing"))
            .to_string()
    };
    let (bin, conf) = serve_argv(&field("ExecStart"));
    assert!(
        bin.starts_with('/') && bin.ends_with("/bin/image-ci"),
        "{bin}"
    );
    assert!(conf.starts_with('/') && conf.ends_with(".toml"), "{conf}");
    assert_eq!(field("KillSignal"), "SIGTERM");
    assert_eq!(field("Type"), "simple");
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(text.contains(section), "{section}");
    }
}
