//! The configuration file (TOML) of `image-ci serve` and `image-ci run
//! --config`: the schedule, the targets, the backend, IMGAPI, the zone
//! profile. [`FileConfig::load`] parses it; [`FileConfig::validate`]
//! checks everything that can be checked before a zone is made (the
//! schedule's cron expressions, the targets against the checkout, that
//! IMGAPI answers, that the zone image is there) and fails with one line
//! naming what is wrong.
//!
//! ```toml
//! imgapi = "http://imgapi.example.com"
//! backend = "node"                 # node | triton | local
//!
//! [[schedule]]
//! name = "nightly"
//! cron = "0 3 * * *"               # UTC; a 6th leading field is seconds
//! targets = ["debian-12", "ubuntu-24.04"]
//!
//! [checkout]
//! repo = "https://github.com/TritonDataCenter/triton-cloud-images"
//!
//! [zone]
//! image_uuid = "e44ed3e0-910b-11ed-a5d4-00151714048c"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::boot::BootTest;
use crate::build::{Build, NodeBuild, Provisioning, TritonBuild, TritonSpec};
use crate::commands::Tools;
use crate::error::{Error, Result};
use crate::pipeline::{self, KeepZone};
use crate::zone::{Profile, Provision, Source};

/// The default address of the status endpoint.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8181";
/// triton-cloud-images upstream.
pub const DEFAULT_REPO: &str = "https://github.com/TritonDataCenter/triton-cloud-images";
/// Where the checkout goes in a build zone.
pub const DEFAULT_ZONE_CHECKOUT: &str = "/root/triton-cloud-images";

fn d_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn d_backend() -> String {
    "node".into()
}
fn d_repo() -> String {
    DEFAULT_REPO.into()
}
fn d_ref() -> String {
    "master".into()
}
fn d_path() -> String {
    DEFAULT_ZONE_CHECKOUT.into()
}
fn d_root() -> PathBuf {
    "/".into()
}
fn d_vmadm_ext() -> PathBuf {
    "vmadm-ext".into()
}
fn d_nodes() -> Vec<PathBuf> {
    vec!["/".into()]
}
fn d_timeout() -> u64 {
    600
}
fn d_name() -> String {
    "image-ci-builder".into()
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// IMGAPI (`http://host:port`).
    pub imgapi: String,
    /// IMGAPI channels to ship into (the first imports, the rest are
    /// added); none: the server's default.
    #[serde(default)]
    pub channels: Vec<String>,
    /// `node`, `triton` or `local`.
    #[serde(default = "d_backend")]
    pub backend: String,
    /// The state database (default `<node root>/var/db/image-ci/state.db`).
    pub state: Option<PathBuf>,
    /// The status endpoint's address.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// When a zone made for a run is kept: `never`, `on-failure`, `always`.
    #[serde(default)]
    pub keep_zone: KeepZone,
    #[serde(default)]
    pub schedule: Vec<Schedule>,
    #[serde(default)]
    pub checkout: CheckoutCfg,
    #[serde(default)]
    pub provision: Provision,
    /// The zone profile (`node`).
    pub zone: Option<Profile>,
    #[serde(default)]
    pub node: NodeCfg,
    /// `triton`.
    pub triton: Option<TritonCfg>,
    #[serde(default)]
    pub local: LocalCfg,
    #[serde(default)]
    pub boot: BootCfg,
}

/// One schedule: when, and which targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), or six
    /// with a leading seconds field; UTC.
    pub cron: String,
    /// Targets (keys of imgconfigs.json); none: all.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Only targets not shipped within this interval (`24h`, `7d`).
    pub every: Option<String>,
}

/// The triton-cloud-images checkout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutCfg {
    #[serde(default = "d_repo")]
    pub repo: String,
    #[serde(default = "d_ref", rename = "ref")]
    pub git_ref: String,
    /// Where it goes in the build zone.
    #[serde(default = "d_path")]
    pub path: String,
    /// The local copy the target list is read from (default
    /// `<state dir>/checkout`).
    pub local: Option<PathBuf>,
}

impl Default for CheckoutCfg {
    fn default() -> Self {
        CheckoutCfg {
            repo: d_repo(),
            git_ref: d_ref(),
            path: d_path(),
            local: None,
        }
    }
}

/// The compute node image-ci runs on (`node`, and the nodes of
/// `triton`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCfg {
    #[serde(default = "d_root")]
    pub root: PathBuf,
    /// Where vmadm, zlogin, imgadm and sysinfo are (default: PATH, then
    /// their SmartOS paths).
    pub tools_dir: Option<PathBuf>,
    #[serde(default = "d_vmadm_ext")]
    pub vmadm_ext: PathBuf,
}

impl Default for NodeCfg {
    fn default() -> Self {
        NodeCfg {
            root: d_root(),
            tools_dir: None,
            vmadm_ext: d_vmadm_ext(),
        }
    }
}

impl NodeCfg {
    /// The tools of the node at `root`.
    pub fn tools_at(&self, root: &Path) -> Tools {
        Tools {
            root: root.to_path_buf(),
            tools: match &self.tools_dir {
                Some(d) => host::Tools::in_dir(d),
                None => host::Tools::from_env(),
            },
            vmadm_ext: self.vmadm_ext.clone(),
        }
    }

    pub fn tools(&self) -> Tools {
        self.tools_at(&self.root)
    }
}

/// Builder machines through triton-gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TritonCfg {
    /// The gate (a CloudAPI).
    pub cloudapi: String,
    /// The operator's login.
    pub login: String,
    /// Its private key (OpenSSH format).
    pub key: PathBuf,
    /// The builder package (UUID or name).
    pub package: String,
    /// The builder image (UUID).
    pub image: String,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default = "d_name")]
    pub name: String,
    /// Roots of the compute nodes builds can run on (`/` on a compute
    /// node; sim node directories); the machine's compute node must be
    /// one of them.
    #[serde(default = "d_nodes")]
    pub nodes: Vec<PathBuf>,
    /// Seconds a machine may take to run and to go away.
    #[serde(default = "d_timeout")]
    pub timeout: u64,
}

/// The local build.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCfg {
    pub cache_dir: Option<PathBuf>,
    pub mirror: Option<String>,
    pub security_mirror: Option<String>,
    #[serde(default)]
    pub include: Vec<String>,
}

fn d_marker() -> String {
    crate::boot::DEFAULT_MARKER.into()
}
fn d_boot_timeout() -> u64 {
    300
}
fn d_accel() -> String {
    "auto".into()
}
fn d_test() -> String {
    crate::boot::default_name().into()
}

/// The boot test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootCfg {
    /// `qemu` or `bhyve`.
    #[serde(default = "d_test")]
    pub test: String,
    #[serde(default = "d_marker")]
    pub marker: String,
    /// Seconds.
    #[serde(default = "d_boot_timeout")]
    pub timeout: u64,
    #[serde(default = "d_accel")]
    pub accel: String,
    pub qemu: Option<PathBuf>,
    pub bootrom: Option<PathBuf>,
}

impl Default for BootCfg {
    fn default() -> Self {
        BootCfg {
            test: d_test(),
            marker: d_marker(),
            timeout: d_boot_timeout(),
            accel: d_accel(),
            qemu: None,
            bootrom: None,
        }
    }
}

/// A schedule's cron expression: five fields, or six with seconds first.
pub fn parse_cron(expr: &str) -> std::result::Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "bad cron expression {expr:?}: {fields} fields (five, or six with seconds first)"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("bad cron expression {expr:?}: {e}"))
}

/// The next time `cron` fires after `after` (UTC).
pub fn next_fire(cron: &croner::Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

fn cerr(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {msg}", path.display()))
}

/// A boot test from the `[boot]` section (or the CLI's options).
pub fn boot_test(b: &BootCfg, tools: &Tools, zone: Option<&str>) -> Result<Box<dyn BootTest>> {
    let judge = crate::boot::Judge::new(&b.marker, Duration::from_secs(b.timeout))?;
    Ok(match b.test.as_str() {
        "qemu" => Box::new(crate::qemu::Qemu {
            qemu: b.qemu.clone().unwrap_or_else(|| crate::qemu::QEMU.into()),
            judge,
            accel: b
                .accel
                .parse::<crate::qemu::AccelChoice>()
                .map_err(Error::Config)?,
            ..Default::default()
        }),
        "bhyve" => {
            let mut x = crate::bhyve::Bhyve::new(zone.unwrap_or_default());
            x.root = tools.root.clone();
            x.zlogin = tools.program("zlogin");
            if let Some(r) = &b.bootrom {
                x.bootrom = r.clone();
            }
            x.judge = judge;
            Box::new(x)
        }
        other => {
            return Err(Error::Config(format!(
                "unknown boot test {other:?} (qemu or bhyve)"
            )))
        }
    })
}

impl FileConfig {
    /// Read and parse `path` (syntax and field checks only).
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| cerr(path, e))?;
        FileConfig::parse(path, &text)
    }

    /// Parse `text` (read from `path`, for messages).
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig> {
        let c: FileConfig = toml::from_str(text).map_err(|e| {
            let m = e.message().replace('\n', " ");
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            cerr(path, format!("{at}{}", m.trim()))
        })?;
        for s in &c.schedule {
            parse_cron(&s.cron).map_err(|m| cerr(path, format!("schedule {}: {m}", s.name)))?;
            if let Some(e) = &s.every {
                crate::cadence::parse_interval(e)
                    .map_err(|m| cerr(path, format!("schedule {}: {m}", s.name)))?;
            }
        }
        let mut names: Vec<&str> = c.schedule.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(cerr(path, format!("two schedules are called {}", w[0])));
        }
        match c.backend.as_str() {
            "node" if c.zone.is_none() => {
                return Err(cerr(
                    path,
                    "backend node needs a [zone] (image_uuid, nic_tag)",
                ))
            }
            "triton" if c.triton.is_none() => {
                return Err(cerr(
                    path,
                    "backend triton needs a [triton] (cloudapi, login, key, package, image)",
                ))
            }
            "node" | "triton" | "local" => {}
            other => {
                return Err(cerr(
                    path,
                    format!("unknown backend {other:?} (node, triton or local)"),
                ))
            }
        }
        if c.boot.timeout == 0 {
            return Err(cerr(path, "boot timeout must be more than 0"));
        }
        Ok(c)
    }

    /// The state database.
    pub fn state_path(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| crate::state::default_path(&self.node.root))
    }

    /// The local copy of the checkout.
    pub fn local_checkout(&self) -> PathBuf {
        self.checkout.local.clone().unwrap_or_else(|| {
            self.state_path()
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
                .join("checkout")
        })
    }

    /// Targets every schedule names (none named: all of the checkout).
    pub fn all_targets(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![];
        for s in &self.schedule {
            if s.targets.is_empty() {
                return vec![];
            }
            for t in &s.targets {
                if !v.contains(t) {
                    v.push(t.clone());
                }
            }
        }
        v
    }

    /// Bring the local copy of the checkout up to date; returns its
    /// commit.
    pub fn sync_checkout(&self) -> Result<String> {
        crate::checkout::sync_mirror(
            &host::SystemHost::default(),
            &self.checkout.repo,
            &self.checkout.git_ref,
            &self.local_checkout(),
        )
    }

    /// The build this configuration names.
    pub fn build(&self) -> Result<Box<dyn Build>> {
        let provisioning = Provisioning {
            provision: self.provision.clone(),
            source: Source {
                repo: self.checkout.repo.clone(),
                git_ref: self.checkout.git_ref.clone(),
            },
            local: self.local_checkout(),
        };
        Ok(match self.backend.as_str() {
            "node" => {
                let profile = self
                    .zone
                    .clone()
                    .ok_or_else(|| Error::Config("backend node needs a [zone]".into()))?;
                Box::new(NodeBuild::made_for_run(
                    self.node.tools(),
                    profile,
                    &self.checkout.path,
                    provisioning,
                ))
            }
            "triton" => {
                let t = self
                    .triton
                    .clone()
                    .ok_or_else(|| Error::Config("backend triton needs a [triton]".into()))?;
                let signer = triton_api::Signer::from_file(&t.login, &t.key)
                    .map_err(|e| Error::Config(format!("triton key {}: {e}", t.key.display())))?;
                let spec = TritonSpec {
                    cloudapi: t.cloudapi.clone(),
                    signer,
                    package: t.package.clone(),
                    image: t.image.clone(),
                    networks: t.networks.clone(),
                    name: t.name.clone(),
                    run_name: None,
                    nodes: t.nodes.iter().map(|r| self.node.tools_at(r)).collect(),
                    timeout: Duration::from_secs(t.timeout),
                };
                Box::new(TritonBuild::new(spec, &self.checkout.path, provisioning)?)
            }
            _ => {
                let co = self.local_checkout();
                let out = self
                    .state_path()
                    .parent()
                    .map(|d| d.join("output"))
                    .unwrap_or_else(|| PathBuf::from("output"));
                let mut b = crate::local::LocalBuild::new(&co, &out);
                if let Some(c) = &self.local.cache_dir {
                    b.cache_dir = c.clone();
                }
                if let Some(m) = &self.local.mirror {
                    b.mirror = m.clone();
                }
                if let Some(m) = &self.local.security_mirror {
                    b.security_mirror = m.clone();
                }
                b.extra_packages = self.local.include.clone();
                Box::new(b)
            }
        })
    }

    /// The pipeline configuration for one run.
    pub fn pipeline(&self) -> Result<pipeline::Config> {
        let build = self.build()?;
        let boot = boot_test(&self.boot, &self.node.tools(), None)?;
        let mut c = pipeline::Config::with_build(build, boot, &self.imgapi, self.state_path())?;
        c.shipper.channels = self.channels.clone();
        c.keep_zone = self.keep_zone;
        Ok(c)
    }

    /// Everything that can be checked before a zone is made: the local
    /// copy of the checkout is brought up to date and every schedule's
    /// targets are in it, IMGAPI answers, the zone image (and for
    /// `triton` the package) is there. Returns the checkout's commit.
    pub fn validate(&self, path: &Path, extra_targets: &[String]) -> Result<String> {
        let commit = self.sync_checkout().map_err(|e| cerr(path, e))?;
        let co =
            crate::checkout::Checkout::load(&self.local_checkout()).map_err(|e| cerr(path, e))?;
        for s in &self.schedule {
            co.select(&s.targets)
                .map_err(|e| cerr(path, format!("schedule {}: {e}", s.name)))?;
        }
        co.select(extra_targets).map_err(|e| cerr(path, e))?;
        let shipper = crate::ship::Shipper::new(&self.imgapi, &self.channels)
            .map_err(|e| cerr(path, format!("imgapi {}: {e}", self.imgapi)))?;
        crate::ship::block_on(shipper.ping())
            .map_err(|e| cerr(path, format!("IMGAPI {} is unreachable: {e}", self.imgapi)))?;
        self.build()
            .and_then(|b| b.check())
            .map_err(|e| cerr(path, e))?;
        crate::boot::Judge::new(&self.boot.marker, Duration::from_secs(self.boot.timeout))
            .map_err(|e| cerr(path, e))?;
        Ok(commit)
    }
}

/// `croner::Cron` is not `Debug`-printable in a useful way; schedules are
/// shown by their expressions.
pub fn describe(s: &Schedule) -> String {
    match parse_cron(&s.cron) {
        Ok(c) => c.describe(),
        Err(e) => e,
    }
}

/// Schedules parsed, for the service.
pub struct Timetable {
    pub entries: Vec<(Schedule, croner::Cron)>,
}

impl Timetable {
    pub fn new(s: &[Schedule]) -> Result<Timetable> {
        let mut entries = vec![];
        for x in s {
            let c = parse_cron(&x.cron).map_err(Error::Config)?;
            entries.push((x.clone(), c));
        }
        Ok(Timetable { entries })
    }

    /// Each schedule's next firing after `t`.
    pub fn next(&self, t: DateTime<Utc>) -> Vec<(String, Option<DateTime<Utc>>)> {
        self.entries
            .iter()
            .map(|(s, c)| (s.name.clone(), next_fire(c, t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
imgapi = "http://127.0.0.1:9"
channels = ["dev"]

[[schedule]]
name = "nightly"
cron = "0 3 * * *"
targets = ["debian-12"]

[[schedule]]
name = "often"
cron = "*/5 * * * * *"
every = "1h"

[zone]
image_uuid = "e44ed3e0-910b-11ed-a5d4-00151714048c"
nic_tag = "external"
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let c = FileConfig::parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(c.backend, "node");
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.checkout.repo, DEFAULT_REPO);
        assert_eq!(c.checkout.git_ref, "master");
        assert_eq!(c.checkout.path, DEFAULT_ZONE_CHECKOUT);
        assert_eq!(c.provision.packages, ["git"]);
        assert_eq!(c.keep_zone, KeepZone::Never);
        assert_eq!(c.zone.as_ref().unwrap().nic_tag, "external");
        assert_eq!(c.zone.as_ref().unwrap().quota, 50);
        assert_eq!(c.state_path(), Path::new("/var/db/image-ci/state.db"));
        assert_eq!(c.local_checkout(), Path::new("/var/db/image-ci/checkout"));
        // one schedule has no targets: all
        assert!(c.all_targets().is_empty());
    }

    #[test]
    fn bad_files_are_one_clear_line() {
        let p = Path::new("/etc/image-ci.toml");
        for (text, want) in [
            (
                GOOD.replace("0 3 * * *", "0 3 * *"),
                "schedule nightly: bad cron expression \"0 3 * *\": 4 fields",
            ),
            (
                GOOD.replace("0 3 * * *", "0 25 * * *"),
                "schedule nightly: bad cron expression \"0 25 * * *\"",
            ),
            (
                GOOD.replace("\"1h\"", "\"soon\""),
                "schedule often: invalid interval",
            ),
            (GOOD.replace("nic_tag", "nictag"), "unknown field `nictag`"),
            (
                format!("backend = \"cloud\"\n{GOOD}"),
                "unknown backend \"cloud\"",
            ),
            (GOOD.replace("[zone]", "[zonez]"), "unknown field `zonez`"),
            ("imgapi = 3\n".to_string(), "line 1: "),
        ] {
            let e = FileConfig::parse(p, &text).unwrap_err().to_string();
            assert!(e.starts_with("/etc/image-ci.toml: "), "{e}");
            assert!(e.contains(want), "{want:?} not in {e:?}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn cron_with_and_without_seconds() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T02:59:58Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = parse_cron("0 3 * * *").unwrap();
        assert_eq!(
            next_fire(&c, t).unwrap().to_rfc3339(),
            "2026-11-25T03:00:00+00:00"
        );
        let c = parse_cron("*/3 * * * * *").unwrap();
        assert_eq!(
            next_fire(&c, t).unwrap().to_rfc3339(),
            "2026-11-25T03:00:00+00:00"
        );
        assert!(parse_cron("* * * * * * 2026").is_err());
        assert!(parse_cron("").is_err());
    }
}
