//! The node's commands: how each is built, how its output is read, and how
//! it is run. Building and parsing are pure; only [`run`] starts a process.

use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

use crate::brands::ImageType;

/// Where the node's commands are.
#[derive(Clone, Debug)]
pub struct Tools {
    pub vmadm: PathBuf,
    pub imgadm: PathBuf,
    pub sysinfo: PathBuf,
    pub nictagadm: PathBuf,
    /// Longest a command may run before it is killed.
    pub timeout: Duration,
}

impl Default for Tools {
    /// The SmartOS global zone's paths.
    fn default() -> Self {
        Tools {
            vmadm: "/usr/sbin/vmadm".into(),
            imgadm: "/usr/sbin/imgadm".into(),
            sysinfo: "/usr/bin/sysinfo".into(),
            nictagadm: "/usr/bin/nictagadm".into(),
            timeout: Duration::from_secs(600),
        }
    }
}

/// Commands are the workspace's one host seam's (`host::Cmd`), with the
/// tool's path as the program.
pub use host::{Cmd, CmdError as CommandError, Output};

impl Tools {
    /// A command of the host seam with its program replaced by this
    /// node's path for it.
    fn at(&self, c: Cmd, path: &std::path::Path) -> Cmd {
        Cmd {
            program: path.display().to_string(),
            ..c
        }
    }
    pub fn imgadm_list(&self) -> Cmd {
        self.at(host::imgadm::list_json(), &self.imgadm)
    }
    pub fn sysinfo(&self) -> Cmd {
        self.at(host::sysinfo::get(), &self.sysinfo)
    }
    pub fn nictagadm_list(&self) -> Cmd {
        self.at(host::nictagadm::list(), &self.nictagadm)
    }
    pub fn vmadm_validate_create(&self, payload: &Value) -> Cmd {
        self.at(host::vmadm::validate("create", payload), &self.vmadm)
    }
    pub fn vmadm_create(&self, payload: &Value) -> Cmd {
        self.at(host::vmadm::create(payload), &self.vmadm)
    }
    /// `vmadm start|stop|delete <uuid>`.
    pub fn vmadm_action(&self, action: Action, uuid: &str) -> Cmd {
        self.at(host::vmadm::action(action.as_str(), uuid), &self.vmadm)
    }
}

/// The instance actions the UI offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Delete,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "start" => Some(Action::Start),
            "stop" => Some(Action::Stop),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Delete => "delete",
        }
    }
}

/// Run a command: stdin from [`Cmd::stdin`] (else /dev/null); success is
/// exit status 0; killed after `timeout`.
pub async fn run(cmd: &Cmd, timeout: Duration) -> Result<Output, CommandError> {
    let started = std::time::Instant::now();
    let r = host::SystemHost::default().run_async(cmd, timeout).await;
    tracing::info!(
        command = %cmd,
        ok = r.is_ok(),
        ms = started.elapsed().as_millis() as u64,
        "ran command"
    );
    r
}

/// Output that does not have the shape its command promises.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{what}: not JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: expected {expected}")]
    Shape {
        what: &'static str,
        expected: &'static str,
    },
}

/// One installed image (`imgadm list -j` element).
#[derive(Clone, Debug, Serialize)]
pub struct Image {
    pub uuid: String,
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    pub image_type: String,
    pub os: String,
    pub description: Option<String>,
    /// MiB, for zvol images.
    pub image_size: Option<u64>,
    pub source: Option<String>,
}

impl Image {
    pub fn kind(&self) -> ImageType {
        ImageType::parse(&self.image_type)
    }
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

fn s(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Read `imgadm list -j`. Elements without the needed manifest fields are
/// dropped, each with a warning.
pub fn parse_images(stdout: &[u8]) -> Result<(Vec<Image>, Vec<String>), ParseError> {
    let v: Value = serde_json::from_slice(stdout).map_err(|source| ParseError::Json {
        what: "imgadm list -j",
        source,
    })?;
    let Value::Array(a) = v else {
        return Err(ParseError::Shape {
            what: "imgadm list -j",
            expected: "a JSON array",
        });
    };
    let mut images = Vec::new();
    let mut warnings = Vec::new();
    for (i, e) in a.iter().enumerate() {
        let Some(m) = e.get("manifest").and_then(Value::as_object) else {
            warnings.push(format!("image {i}: no manifest object"));
            continue;
        };
        let need = ["uuid", "name", "version", "type", "os"];
        if let Some(k) = need.iter().find(|k| s(m, k).is_none()) {
            warnings.push(format!("image {i}: manifest has no string `{k}`"));
            continue;
        }
        images.push(Image {
            uuid: s(m, "uuid").unwrap_or_default(),
            name: s(m, "name").unwrap_or_default(),
            version: s(m, "version").unwrap_or_default(),
            image_type: s(m, "type").unwrap_or_default(),
            os: s(m, "os").unwrap_or_default(),
            description: s(m, "description"),
            image_size: m.get("image_size").and_then(Value::as_u64),
            source: e.get("source").and_then(Value::as_str).map(str::to_string),
        });
    }
    Ok((images, warnings))
}

/// Host facts from `sysinfo`: the ones the dashboard leads with, plus all.
#[derive(Clone, Debug, Serialize)]
pub struct SysInfo {
    pub hostname: Option<String>,
    pub uuid: Option<String>,
    pub live_image: Option<String>,
    pub cpu_count: Option<String>,
    pub memory_mib: Option<String>,
    pub zpool_size_gib: Option<String>,
    /// Every top-level fact whose value is a string, number or boolean.
    pub facts: Vec<(String, String)>,
    #[serde(skip)]
    pub raw: Value,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Read `sysinfo` output (a JSON object). Missing facts are `None`.
pub fn parse_sysinfo(stdout: &[u8]) -> Result<SysInfo, ParseError> {
    let v: Value = serde_json::from_slice(stdout).map_err(|source| ParseError::Json {
        what: "sysinfo",
        source,
    })?;
    let Value::Object(m) = &v else {
        return Err(ParseError::Shape {
            what: "sysinfo",
            expected: "a JSON object",
        });
    };
    let g = |k: &str| m.get(k).and_then(scalar);
    Ok(SysInfo {
        hostname: g("Hostname"),
        uuid: g("UUID"),
        live_image: g("Live Image"),
        cpu_count: g("CPU Count"),
        memory_mib: g("MiB of Memory"),
        zpool_size_gib: g("Zpool Size in GiB"),
        facts: m
            .iter()
            .filter_map(|(k, v)| scalar(v).map(|s| (k.clone(), s)))
            .collect(),
        raw: v.clone(),
    })
}

/// One nic tag (`nictagadm list -p -d ,` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NicTag {
    pub name: String,
    pub mac: String,
    pub link: String,
    pub kind: String,
}

/// Read `nictagadm list -p -d ,`. Short lines are skipped with a warning.
pub fn parse_nictags(stdout: &[u8]) -> (Vec<NicTag>, Vec<String>) {
    let text = String::from_utf8_lossy(stdout);
    let mut tags = Vec::new();
    let mut warnings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // MAC addresses are written with ':' and never contain ','.
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            warnings.push(format!(
                "nictagadm line {}: fewer than 4 fields: {line:?}",
                i + 1
            ));
            continue;
        }
        tags.push(NicTag {
            name: f[0].to_string(),
            mac: f[1].to_string(),
            link: f[2].to_string(),
            kind: f[3].to_string(),
        });
    }
    (tags, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_argv() {
        let t = Tools::default();
        assert_eq!(t.imgadm_list().to_string(), "/usr/sbin/imgadm list -j");
        assert_eq!(t.nictagadm_list().args, ["list", "-p", "-d", ","]);
        let c = t.vmadm_validate_create(&json!({"brand":"builder"}));
        assert_eq!(c.args, ["validate", "create"]);
        assert_eq!(c.stdin.as_deref(), Some(&br#"{"brand":"builder"}"#[..]));
        assert_eq!(t.vmadm_action(Action::Stop, "u").args, ["stop", "u"]);
        assert!(t.sysinfo().args.is_empty() && t.sysinfo().stdin.is_none());
    }

    #[test]
    fn images_drop_bad_elements() {
        let out = br#"[{"manifest":{"v":2,"uuid":"a","name":"base-64-lts","version":"24.4.0","type":"zone-dataset","os":"smartos"},"source":"https://images"},
                       {"manifest":{"uuid":"b"}}, 3]"#;
        let (imgs, warns) = parse_images(out).unwrap();
        assert_eq!(imgs.len(), 1);
        assert_eq!(imgs[0].label(), "base-64-lts@24.4.0");
        assert_eq!(imgs[0].kind(), ImageType::ZoneDataset);
        assert_eq!(warns.len(), 2);
        assert!(parse_images(b"{}").is_err());
    }

    #[test]
    fn sysinfo_and_nictags() {
        let si = parse_sysinfo(br#"{"Live Image":"20260101T000000Z","CPU Count":8,"MiB of Memory":"16384","Boot Parameters":{}}"#).unwrap();
        assert_eq!(si.live_image.as_deref(), Some("20260101T000000Z"));
        assert_eq!(si.cpu_count.as_deref(), Some("8"));
        assert_eq!(si.memory_mib.as_deref(), Some("16384"));
        assert_eq!(si.facts.len(), 3);
        assert!(parse_sysinfo(b"[]").is_err());
        let (tags, w) = parse_nictags(b"admin,00:0c:29:aa:bb:cc,e1000g0,normal\nbroken,line\n\n");
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].name, "admin");
        assert_eq!(w.len(), 1);
    }
}
