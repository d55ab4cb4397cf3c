//! Host commands (`zpool`, `imgadm`, `zoneadm`, `svcadm`), run by bare name
//! from `PATH` as tools in a SmartOS global zone do. Each command is three
//! pieces: build it ([`Cmd`]), run it ([`run`]), parse its output (pure
//! functions tested on captured text).

use std::path::PathBuf;
use std::process::Command;

/// A host command that failed; keeps what is needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// A command line: program (looked up on PATH) and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
}

impl Cmd {
    pub fn new(program: &str, args: &[&str]) -> Cmd {
        Cmd {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.program)?;
        for a in &self.args {
            if a.is_empty() || a.contains([' ', '"', '\'', ';', '*']) {
                write!(f, " '{}'", a.replace('\'', "'\\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// Run a command, returning its stdout when it exits 0.
pub fn run(cmd: &Cmd) -> Result<String, CmdError> {
    let out = Command::new(&cmd.program)
        .args(&cmd.args)
        .output()
        .map_err(|source| CmdError::Spawn {
            command: cmd.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(CmdError::Failed {
            command: cmd.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first executable called `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// `zpool list -H -p -o name`: the imported pools.
pub fn zpool_list_cmd() -> Cmd {
    Cmd::new("zpool", &["list", "-H", "-p", "-o", "name"])
}

pub fn parse_zpool_list(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `imgadm get -P <pool> <uuid>`: an installed image's manifest.
pub fn imgadm_get_cmd(pool: &str, uuid: &str) -> Cmd {
    Cmd::new("imgadm", &["get", "-P", pool, uuid])
}

/// The image type (`manifest.type`) from `imgadm get` output.
pub fn parse_imgadm_get(out: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(out).map_err(|e| format!("imgadm output is not JSON: {e}"))?;
    v.pointer("/manifest/type")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| "imgadm output has no manifest.type".to_string())
}

/// One line of `zoneadm list -p -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// `-` when the zone is not running.
    pub zoneid: String,
    pub zonename: String,
    pub state: String,
    pub zonepath: String,
    pub uuid: String,
    pub brand: String,
    pub ip_type: String,
    pub debugid: String,
}

/// `zoneadm list -p -c`: every configured zone, one line each.
pub fn zoneadm_list_cmd() -> Cmd {
    Cmd::new("zoneadm", &["list", "-p", "-c"])
}

/// Split a `zoneadm -p` line on unescaped `:` (zoneadm writes `\:` for a
/// colon inside a field and `\\` for a backslash).
pub fn split_parsable(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut it = line.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    fields.last_mut().expect("non-empty").push(n);
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

/// Parse `zoneadm list -p -c` output; the global zone is left out, as
/// vmadm does. Lines with too few fields are errors.
pub fn parse_zoneadm_list(out: &str) -> Result<Vec<ZoneRecord>, String> {
    let mut v = Vec::new();
    for (i, line) in out.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f = split_parsable(line);
        if f.len() < 7 {
            return Err(format!(
                "zoneadm list line {}: expected 8 fields, got {}: {line}",
                i + 1,
                f.len()
            ));
        }
        if f[1] == "global" {
            continue;
        }
        let get = |i: usize| f.get(i).cloned().unwrap_or_default();
        v.push(ZoneRecord {
            zoneid: get(0),
            zonename: get(1),
            state: get(2),
            zonepath: get(3),
            uuid: get(4),
            brand: get(5),
            ip_type: get(6),
            debugid: get(7),
        });
    }
    Ok(v)
}

/// The zfs properties `vmadm get` reports for a zone's datasets.
pub const ZFS_PROPERTIES: &[&str] = &["quota", "compression", "recsize"];

/// `zfs get -Hp -o name,property,value quota,compression,recsize <ds>...`
pub fn zfs_get_cmd(datasets: &[&str]) -> Cmd {
    let props = ZFS_PROPERTIES.join(",");
    let mut args = vec!["get", "-Hp", "-o", "name,property,value", props.as_str()];
    args.extend_from_slice(datasets);
    Cmd::new("zfs", &args)
}

/// Parse `zfs get -Hp -o name,property,value` output (tab-separated) into
/// dataset -> property -> value.
pub fn parse_zfs_get(
    out: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let mut m: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
        Default::default();
    for line in out.lines() {
        let mut f = line.split('\t');
        if let (Some(ds), Some(prop), Some(val)) = (f.next(), f.next(), f.next()) {
            m.entry(ds.to_string())
                .or_default()
                .insert(prop.to_string(), val.to_string());
        }
    }
    m
}

/// What validation needs to ask the host.
pub trait Host {
    /// The imported pools (empty when the question fails, as in vmadm).
    fn pools(&self) -> Vec<String>;
    /// The type of an installed image, or why it cannot be had.
    fn image_type(&self, pool: &str, uuid: &str) -> Result<String, String>;
}

/// The real host: runs `zpool` and `imgadm` from PATH.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemHost;

impl Host for SystemHost {
    fn pools(&self) -> Vec<String> {
        run(&zpool_list_cmd())
            .map(|o| parse_zpool_list(&o))
            .unwrap_or_default()
    }
    fn image_type(&self, pool: &str, uuid: &str) -> Result<String, String> {
        let out = run(&imgadm_get_cmd(pool, uuid)).map_err(|e| e.to_string())?;
        parse_imgadm_get(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoneadm_list_parses_captured_text() {
        // as printed by `zoneadm list -cp` on SmartOS (illumos notes, §7)
        let out = "0:global:running:/::joyent:shared:0\n\
                   1:3c8b9a6e-0000-4000-8000-000000000001:running:/zones/3c8b9a6e-0000-4000-8000-000000000001:3c8b9a6e-0000-4000-8000-000000000001:joyent-minimal:excl:1\n\
                   -:b1:installed:/zones/with\\:colon:b1u:builder:excl:7\n";
        let z = parse_zoneadm_list(out).unwrap();
        assert_eq!(z.len(), 2);
        assert_eq!(z[0].zoneid, "1");
        assert_eq!(z[0].brand, "joyent-minimal");
        assert_eq!(z[0].ip_type, "excl");
        assert_eq!(z[1].zonepath, "/zones/with:colon");
        assert_eq!(z[1].state, "installed");
        assert!(parse_zoneadm_list("1:x:running\n").is_err());
    }

    #[test]
    fn zfs_get_builds_and_parses() {
        assert_eq!(
            zfs_get_cmd(&["zones/u", "zones/u/data"]).to_string(),
            "zfs get -Hp -o name,property,value quota,compression,recsize zones/u zones/u/data"
        );
        // as printed by `zfs get -Hp` on SmartOS: bytes, raw values, tabs
        let out = "zones/u\tquota\t53687091200\nzones/u\tcompression\tlz4\nzones/u\trecsize\t131072\n\
                   zones/u/data\tquota\t0\nzones/u/data\tcompression\toff\nzones/u/data\trecsize\t131072\n";
        let m = parse_zfs_get(out);
        assert_eq!(m["zones/u"]["quota"], "53687091200");
        assert_eq!(m["zones/u/data"]["compression"], "off");
        assert!(parse_zfs_get("garbage\n").is_empty());
    }

    #[test]
    fn commands_are_built_as_vmadm_runs_them() {
        assert_eq!(zpool_list_cmd().to_string(), "zpool list -H -p -o name");
        assert_eq!(
            imgadm_get_cmd("zones", "u").to_string(),
            "imgadm get -P zones u"
        );
        assert_eq!(zoneadm_list_cmd().to_string(), "zoneadm list -p -c");
        assert_eq!(parse_zpool_list("zones\n\nbackup\n"), ["zones", "backup"]);
        assert_eq!(
            parse_imgadm_get(r#"{"manifest":{"type":"zone-dataset"}}"#).unwrap(),
            "zone-dataset"
        );
        assert!(parse_imgadm_get("{}").is_err());
    }
}
