//! Build zones made for a run: the profile they are made from (by default
//! the RFD's payload), their creation, the wait for them to run, and their
//! deletion, through `vmadm` on the node; and the provisioning of the
//! build tools in them (pkgin packages, the triton-cloud-images checkout)
//! through `zlogin`. Commands are data ([`host::Cmd`]); payloads and
//! answers are built and read by pure functions.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::commands::{sh_quote, Tools};
use crate::error::{Error, Result};
use crate::stream::Cancel;

/// The privileges a builder zone needs (bhyve: `proc_clock_highres`,
/// `sys_dl_config`).
pub const LIMIT_PRIV: &str = "default,proc_clock_highres,sys_dl_config";

fn d_nic_tag() -> String {
    "admin".into()
}
fn d_ip() -> String {
    "dhcp".into()
}
fn d_alias() -> String {
    "image-ci-builder".into()
}
fn d_limit_priv() -> String {
    LIMIT_PRIV.into()
}
fn d_memory() -> u64 {
    8192
}
fn d_fs_allowed() -> String {
    "ufs,pcfs,tmpfs".into()
}
fn d_cpu_cap() -> u64 {
    600
}
fn d_quota() -> u64 {
    50
}
fn d_true() -> bool {
    true
}
fn d_resolvers() -> Vec<String> {
    vec!["8.8.8.8".into(), "8.8.4.4".into()]
}
fn d_boot_timeout() -> u64 {
    300
}

/// How a build zone is made. The defaults are the RFD's payload; the
/// image and the nic tag come from the configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The zone's image (a `zone-dataset`, installed on the node).
    pub image_uuid: String,
    #[serde(default = "d_nic_tag")]
    pub nic_tag: String,
    #[serde(default = "d_ip")]
    pub ip: String,
    /// The zone's alias; the run id is appended.
    #[serde(default = "d_alias")]
    pub alias: String,
    #[serde(default = "d_limit_priv")]
    pub limit_priv: String,
    /// MiB.
    #[serde(default = "d_memory")]
    pub max_physical_memory: u64,
    /// MiB.
    #[serde(default = "d_memory")]
    pub tmpfs: u64,
    #[serde(default = "d_fs_allowed")]
    pub fs_allowed: String,
    #[serde(default = "d_cpu_cap")]
    pub cpu_cap: u64,
    /// GiB.
    #[serde(default = "d_quota")]
    pub quota: u64,
    #[serde(default = "d_true")]
    pub delegate_dataset: bool,
    #[serde(default = "d_resolvers")]
    pub resolvers: Vec<String>,
    /// Seconds the zone has to reach `running`.
    #[serde(default = "d_boot_timeout")]
    pub boot_timeout: u64,
    /// More vmadm properties, as they are.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

impl Profile {
    /// The RFD's payload with this image.
    pub fn rfd(image_uuid: &str) -> Profile {
        Profile {
            image_uuid: image_uuid.into(),
            nic_tag: d_nic_tag(),
            ip: d_ip(),
            alias: d_alias(),
            limit_priv: d_limit_priv(),
            max_physical_memory: d_memory(),
            tmpfs: d_memory(),
            fs_allowed: d_fs_allowed(),
            cpu_cap: d_cpu_cap(),
            quota: d_quota(),
            delegate_dataset: true,
            resolvers: d_resolvers(),
            boot_timeout: d_boot_timeout(),
            extra: Map::new(),
        }
    }
}

/// The `vmadm create` payload for a zone called `alias`.
pub fn payload(p: &Profile, alias: &str) -> Value {
    let mut v = json!({
        "alias": alias,
        "hostname": alias,
        "brand": "builder",
        "limit_priv": p.limit_priv,
        "max_physical_memory": p.max_physical_memory,
        "tmpfs": p.tmpfs,
        "fs_allowed": p.fs_allowed,
        "cpu_cap": p.cpu_cap,
        "image_uuid": p.image_uuid,
        "zfs_root_compression": "lz4",
        "quota": p.quota,
        "delegate_dataset": p.delegate_dataset,
        "resolvers": p.resolvers,
        "nics": [{"allow_ip_spoofing": true, "nic_tag": p.nic_tag, "ip": p.ip}],
    });
    if let Some(o) = v.as_object_mut() {
        for (k, x) in &p.extra {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

/// A zone alias for a run: `<alias>-<run>`, cut to what a hostname takes.
pub fn alias_for(base: &str, run: &str) -> String {
    let s: String = format!("{base}-{run}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// The zone's state from `vmadm get` output.
pub fn parse_state(out: &str) -> Result<String> {
    let v: Value = serde_json::from_str(out)
        .map_err(|e| Error::Invalid(format!("vmadm get: not JSON: {e}")))?;
    v["state"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid("vmadm get: no state".into()))
}

/// Is image `uuid` installed on the node (`imgadm get -P zones <uuid>`)?
pub fn image_installed(t: &Tools, uuid: &str) -> Result<()> {
    use host::Host as _;
    if !common::uuid::is_uuid(uuid) {
        return Err(Error::Config(format!("zone image {uuid:?} is not a UUID")));
    }
    match t.host().run(&host::imgadm::get("zones", uuid)) {
        Ok(_) => Ok(()),
        Err(host::CmdError::Failed { .. }) => Err(Error::Config(format!(
            "zone image {uuid} is not installed on the node (imgadm import {uuid})"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `vmadm create` from `payload`; returns the new zone's UUID.
pub fn create(t: &Tools, payload: &Value) -> Result<String> {
    use host::Host as _;
    let c = host::vmadm::create(payload);
    let o = t.host().run(&c)?;
    host::vmadm::parse_created(&o.stderr).ok_or_else(|| Error::Command {
        command: c.to_string(),
        status: Some(0),
        stderr: format!("no 'Successfully created VM' line: {}", o.stderr.trim()),
    })
}

/// The zone's state (`vmadm get`).
pub fn state(t: &Tools, uuid: &str) -> Result<String> {
    use host::Host as _;
    parse_state(&t.host().run(&host::vmadm::get(uuid))?.text())
}

/// Wait until the zone runs (starting it when it stopped), at most
/// `timeout`.
pub fn wait_running(t: &Tools, uuid: &str, timeout: Duration, cancel: &Cancel) -> Result<()> {
    use host::Host as _;
    let start = Instant::now();
    let mut started = false;
    loop {
        cancel.check("waiting for the zone to run")?;
        let s = state(t, uuid)?;
        match s.as_str() {
            "running" => return Ok(()),
            "stopped" | "installed" if !started => {
                t.host().run(&host::vmadm::action("start", uuid))?;
                started = true;
            }
            "failed" => return Err(Error::Invalid(format!("zone {uuid} failed to provision"))),
            _ => {}
        }
        if start.elapsed() >= timeout {
            return Err(Error::Invalid(format!(
                "zone {uuid} is {s}, not running, after {} s",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `vmadm delete <uuid>`.
pub fn delete(t: &Tools, uuid: &str) -> Result<()> {
    use host::Host as _;
    t.host().run(&host::vmadm::action("delete", uuid))?;
    Ok(())
}

/// What a build zone gets before the build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// pkgsrc packages (`pkgin -y install ...`; `git` for the checkout).
    #[serde(default = "d_packages")]
    pub packages: Vec<String>,
    /// Shell lines run in the zone after the packages, before the
    /// checkout.
    #[serde(default)]
    pub commands: Vec<String>,
}

fn d_packages() -> Vec<String> {
    vec!["git".into()]
}

impl Default for Provision {
    fn default() -> Provision {
        Provision {
            packages: d_packages(),
            commands: vec![],
        }
    }
}

/// The triton-cloud-images checkout a zone gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// A git URL (or path) to clone.
    pub repo: String,
    /// A branch or tag.
    pub git_ref: String,
}

/// The shell lines that provision a zone, in order, for a checkout at
/// `path` (as the zone's commands take it).
pub fn provision_lines(p: &Provision, src: &Source, path: &str) -> Vec<String> {
    let mut v = vec![];
    if !p.packages.is_empty() {
        let mut l = String::from("pkgin -y install");
        for x in &p.packages {
            l.push(' ');
            l.push_str(&sh_quote(x));
        }
        v.push(l);
    }
    v.extend(p.commands.iter().cloned());
    v.push(format!(
        "git clone --quiet --depth 1 --branch {} -- {} {}",
        sh_quote(&src.git_ref),
        sh_quote(&src.repo),
        sh_quote(path)
    ));
    v.push(format!("git -C {} rev-parse HEAD", sh_quote(path)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_is_the_rfd_payload() {
        let p = Profile::rfd("e44ed3e0-910b-11ed-a5d4-00151714048c");
        let mut v = payload(&p, "cloud-image-builder");
        let rfd: Value = serde_json::from_str(
            r#"{"alias":"cloud-image-builder","hostname":"cloud-image-builder","brand":"builder","limit_priv":"default,proc_clock_highres,sys_dl_config","max_physical_memory":8192,"tmpfs":8192,"fs_allowed":"ufs,pcfs,tmpfs","cpu_cap":600,"image_uuid":"e44ed3e0-910b-11ed-a5d4-00151714048c","zfs_root_compression":"lz4","quota":50,"delegate_dataset":true,"resolvers":["8.8.8.8","8.8.4.4"],"nics":[{"allow_ip_spoofing":true,"nic_tag":"admin","ip":"dhcp"}]}"#,
        )
        .unwrap();
        assert_eq!(v, rfd);
        // a profile from TOML: defaults filled, extra properties kept
        let p: Profile = toml::from_str(
            "image_uuid = \"u\"\nnic_tag = \"external\"\nquota = 100\n[extra]\nautoboot = true\n",
        )
        .unwrap();
        v = payload(&p, "z");
        assert_eq!(v["nics"][0]["nic_tag"], "external");
        assert_eq!(v["quota"], 100);
        assert_eq!(v["autoboot"], true);
        assert_eq!(v["limit_priv"], LIMIT_PRIV);
        assert!(toml::from_str::<Profile>("image_uuid = \"u\"\nquota_gb = 1\n").is_err());
    }

    #[test]
    fn aliases_and_states() {
        assert_eq!(
            alias_for("image-ci-builder", "20261125T030000Z-42"),
            "image-ci-builder-20261125t030000z-42"
        );
        assert!(alias_for(&"x".repeat(80), "r").len() <= 63);
        assert_eq!(parse_state(r#"{"state":"running"}"#).unwrap(), "running");
        assert!(parse_state("{}").is_err());
    }

    #[test]
    fn provisioning_lines() {
        let l = provision_lines(
            &Provision::default(),
            &Source {
                repo: "https://example.org/tci.git".into(),
                git_ref: "master".into(),
            },
            "root/triton-cloud-images",
        );
        assert_eq!(
            l,
            [
                "pkgin -y install git",
                "git clone --quiet --depth 1 --branch master -- https://example.org/tci.git root/triton-cloud-images",
                "git -C root/triton-cloud-images rev-parse HEAD",
            ]
        );
        let none = Provision {
            packages: vec![],
            commands: vec!["echo hi".into()],
        };
        let l = provision_lines(
            &none,
            &Source {
                repo: "/r".into(),
                git_ref: "v1".into(),
            },
            "/c",
        );
        assert_eq!(l[0], "echo hi");
    }
}
