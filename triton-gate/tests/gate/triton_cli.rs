//! The real node-triton CLI (npm `triton`) against the gate: the operator
//! lists packages and creates a builder instance; the customer and the
//! operator's sub-user do not see the builder package and get CloudAPI's
//! errors for brand builder; a gate in front of another gate (standing in
//! for CloudAPI) forwards what it does not decide.
//!
//! `triton` is installed into `triton-gate/tests/js/node_modules` (ignored by
//! git) on first run. `node` and `npm` are required, as for the sim's and
//! image-ci's real-client tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use triton_gate::httpsig::md5_fingerprint;

use crate::env::*;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The triton CLI, installed once (`testkit::npm_install` holds a lock).
fn install() -> PathBuf {
    let dir = js_dir();
    testkit::npm_install(&dir, &["node_modules/.bin/triton"]);
    dir.join("node_modules/.bin/triton")
}

struct Cli {
    bin: PathBuf,
    home: PathBuf,
    url: String,
    login: String,
    user: Option<String>,
    fp: String,
}

impl Cli {
    /// A HOME with `~/.ssh/id_ed25519{,.pub}` and no agent, as node-triton
    /// finds keys.
    fn new(bin: &Path, dir: &Path, url: &str, login: &str, private: &str, public: &str) -> Cli {
        Cli::sub(bin, dir, url, login, None, private, public)
    }

    /// As a sub-user (`triton -u <user>`) of `login` when `user` is given.
    fn sub(
        bin: &Path,
        dir: &Path,
        url: &str,
        login: &str,
        user: Option<&str>,
        private: &str,
        public: &str,
    ) -> Cli {
        let home = dir.join(format!("home-{login}-{}", user.unwrap_or("")));
        let ssh = home.join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_ed25519"), private).unwrap();
        std::fs::write(ssh.join("id_ed25519.pub"), format!("{public}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                ssh.join("id_ed25519"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        Cli {
            bin: bin.to_path_buf(),
            home,
            url: url.to_string(),
            login: login.to_string(),
            user: user.map(str::to_string),
            fp: md5_fingerprint(public).unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(&self.bin);
        c.args(["-U", &self.url, "-a", &self.login, "-k", &self.fp]);
        if let Some(u) = &self.user {
            c.args(["-u", u]);
        }
        c.args(args)
            .env("HOME", &self.home)
            .env_remove("SSH_AUTH_SOCK");
        for (k, _) in std::env::vars() {
            if k.starts_with("TRITON_") || k.starts_with("SDC_") {
                c.env_remove(k);
            }
        }
        c.output().expect("run triton")
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub fn run() {
    assert!(
        have("node") && have("npm"),
        "node and npm are needed for the triton CLI test (install nodejs and npm)"
    );
    let bin = install();
    let e = env();
    let (gate, log) = e.gate("triton-cli");
    let url = gate.url();

    let ops_private = std::fs::read_to_string(&e.ops_key_file).unwrap();
    let op = Cli::new(&bin, &e.dir, &url, "ops", &ops_private, &e.ops_pub);
    let cust_public = e.cust.public_openssh("cust@gate-test");
    let cu = Cli::new(
        &bin,
        &e.dir,
        &url,
        "cust",
        &e.cust.private_openssh("cust@gate-test"),
        &cust_public,
    );

    // operator: package list shows the builder package
    let o = op.run(&["package", "list", "-j"]);
    assert!(o.status.success(), "{}", text(&o));
    let pkgs = json_lines(&o);
    assert!(
        pkgs.iter()
            .any(|p| p["id"] == BUILDER_PKG && p["brand"] == "builder"),
        "{}",
        text(&o)
    );
    let o = op.run(&["package", "get", "-j", BUILDER_PKG]);
    assert!(o.status.success(), "{}", text(&o));

    // operator: create a builder instance
    let o = op.run(&[
        "instance",
        "create",
        "-j",
        "-n",
        "cli-build0",
        BUILDER_IMG,
        BUILDER_PKG,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m = json_lines(&o).pop().unwrap();
    assert_eq!(m["brand"], "builder", "{m}");
    let vm = m["id"].as_str().unwrap().to_string();
    assert!(e
        .vmadm_list(&e.new)
        .iter()
        .any(|(u, b, _)| *u == vm && b == "builder"));

    // operator: the instance shows in `triton instance list` (paged by
    // x-resource-count) and `instance get`
    let o = op.run(&["instance", "list", "-j"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        json_lines(&o)
            .iter()
            .any(|i| i["id"] == vm.as_str() && i["brand"] == "builder"),
        "{}",
        text(&o)
    );
    let o = op.run(&["instance", "get", "-j", &vm]);
    assert!(o.status.success(), "{}", text(&o));

    // customer: no builder package listed, brand builder refused with CloudAPI's text
    let o = cu.run(&["package", "list", "-j"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !json_lines(&o).iter().any(|p| p["brand"] == "builder"),
        "{}",
        text(&o)
    );
    let o = cu.run(&["instance", "create", "-b", "builder", PLAIN_IMG, JOYENT_PKG]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "Unknown brand \"builder\". Brand is restricted to one of [\"bhyve\",\"kvm\"]"
        ),
        "{}",
        text(&o)
    );

    // the operator's sub-user (`triton -u sub1`): authenticated, never an operator
    let sub_public = e.sub.public_openssh("sub1@gate-test");
    let sub = Cli::sub(
        &bin,
        &e.dir,
        &url,
        "ops",
        Some("sub1"),
        &e.sub.private_openssh("sub1@gate-test"),
        &sub_public,
    );
    let o = sub.run(&["package", "list", "-j"]);
    assert!(o.status.success(), "{}", text(&o));
    let listed = json_lines(&o);
    assert!(listed.iter().any(|p| p["id"] == JOYENT_PKG), "{}", text(&o));
    assert!(
        !listed.iter().any(|p| p["brand"] == "builder"),
        "{}",
        text(&o)
    );
    let o = sub.run(&["instance", "create", "-b", "builder", PLAIN_IMG, JOYENT_PKG]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Unknown brand \"builder\". Brand is restricted to one of"),
        "{}",
        text(&o)
    );
    // the CLI looks the image up first: CloudAPI's 404, exit 3
    let o = sub.run(&["instance", "create", BUILDER_IMG, BUILDER_PKG]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("image with id {BUILDER_IMG} was not found")),
        "{}",
        text(&o)
    );

    let recs = triton_gate::audit::read(&log).unwrap();
    assert!(recs.iter().any(|r| r.action == "CreateMachine"
        && r.decision == triton_gate::audit::Decision::Allow
        && r.vm_uuid.as_deref() == Some(vm.as_str())));
    assert!(recs.iter().any(|r| r.action == "CreateMachine"
        && r.decision == triton_gate::audit::Decision::Deny
        && r.account_login == "cust"));
    assert!(recs.iter().any(|r| r.action == "CreateMachine"
        && r.decision == triton_gate::audit::Decision::Deny
        && r.caller() == "ops/sub1"));
    gate.stop();
}

/// Issue 13 item 3: a gate in front of a second gate in subset mode (the
/// stand-in for a real CloudAPI), driven by the real CLI.
pub fn front() {
    assert!(
        have("node") && have("npm"),
        "node and npm are needed for the triton CLI test (install nodejs and npm)"
    );
    let bin = install();
    let e = env();
    let (back, back_log) = e.gate("front-back");
    let (gate, log) = e.gate_with("front", &e.endpoints, |c| c.cloudapi = Some(back.url()));
    let url = gate.url();
    let cust_public = e.cust.public_openssh("cust@gate-test");
    let cu = Cli::new(
        &bin,
        &e.dir,
        &url,
        "cust",
        &e.cust.private_openssh("cust@gate-test"),
        &cust_public,
    );
    let ops_private = std::fs::read_to_string(&e.ops_key_file).unwrap();
    let op = Cli::new(&bin, &e.dir, &url, "ops", &ops_private, &e.ops_pub);

    // forwarded: GetAccount exists only behind
    let o = cu.run(&["account", "get", "-j"]);
    assert!(o.status.success(), "{}", text(&o));
    let a = json_lines(&o).pop().unwrap();
    assert_eq!(
        (a["login"].as_str(), a["id"].as_str()),
        (Some("cust"), Some(CUST_UUID))
    );
    // package list (decided here)
    let o = cu.run(&["package", "list", "-j"]);
    assert!(o.status.success(), "{}", text(&o));
    let pk = json_lines(&o);
    assert!(
        pk.iter().any(|p| p["id"] == JOYENT_PKG) && !pk.iter().any(|p| p["brand"] == "builder"),
        "{}",
        text(&o)
    );
    // a customer's ordinary create is decided here and made behind
    let o = cu.run(&[
        "instance",
        "create",
        "-j",
        "-n",
        "front-web",
        PLAIN_IMG,
        JOYENT_PKG,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json_lines(&o).pop().unwrap()["brand"], "joyent");
    // instance list (forwarded)
    let o = cu.run(&["instance", "list", "-j"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        json_lines(&o).iter().any(|m| m["name"] == "front-web"),
        "{}",
        text(&o)
    );
    // every builder path is still refused, by the front
    let o = cu.run(&["instance", "create", "-b", "builder", PLAIN_IMG, JOYENT_PKG]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Unknown brand \"builder\""),
        "{}",
        text(&o)
    );
    let o = cu.run(&["instance", "create", PLAIN_IMG, BUILDER_PKG]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = cu.run(&["package", "get", BUILDER_PKG]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("package with id {BUILDER_PKG} was not found")),
        "{}",
        text(&o)
    );
    let o = cu.run(&["instance", "create", SHARED_BUILDER_IMG, JOYENT_PKG]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // an operator's builder machine is made by the front itself
    let o = op.run(&[
        "instance",
        "create",
        "-j",
        "-n",
        "front-build",
        BUILDER_IMG,
        BUILDER_PKG,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m = json_lines(&o).pop().unwrap();
    assert_eq!(m["brand"], "builder");

    let front_recs = triton_gate::audit::read(&log).unwrap();
    let back_recs = triton_gate::audit::read(&back_log).unwrap();
    let created = |recs: &[triton_gate::audit::AuditRecord], brand: &str| {
        recs.iter().any(|r| {
            r.action == "CreateMachine"
                && r.decision == triton_gate::audit::Decision::Allow
                && r.brand.as_deref() == Some(brand)
        })
    };
    // the joyent create: allowed in front, made behind; the builder one made in front only
    assert!(front_recs
        .iter()
        .any(|r| r.action == "CreateMachine" && r.reason.contains("passed on to CloudAPI")));
    assert!(created(&back_recs, "joyent"));
    assert!(created(&front_recs, "builder") && !created(&back_recs, "builder"));
    assert!(
        front_recs
            .iter()
            .filter(
                |r| r.decision == triton_gate::audit::Decision::Deny && r.account_login == "cust"
            )
            .count()
            >= 4
    );
    // forwarded reads are not the front's decisions
    assert!(!front_recs.iter().any(|r| r.action == "Forward"));
    gate.stop();
    back.stop();
}
