//! The node commands image-ci runs, each as three parts: build the command,
//! run it, parse its output. `root` is the node root (`/` on SmartOS);
//! for another root (a sim node) it is passed to `vmadm-ext --root` and
//! exported as `SIM_ROOT` for the node's own tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// Where the node's commands are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub root: PathBuf,
    pub zlogin: PathBuf,
    pub vmadm_ext: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            root: "/".into(),
            zlogin: "/usr/sbin/zlogin".into(),
            vmadm_ext: "vmadm-ext".into(),
        }
    }
}

impl Tools {
    fn is_real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    fn command(&self, prog: &Path) -> Command {
        let mut c = Command::new(prog);
        if !self.is_real_root() {
            c.env("SIM_ROOT", &self.root);
        }
        c.stdin(Stdio::null());
        c
    }
}

/// Quote a word for `/bin/sh`.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A command line for messages.
pub fn display(c: &Command) -> String {
    let mut v = vec![c.get_program().to_string_lossy().into_owned()];
    v.extend(c.get_args().map(|a| sh_quote(&a.to_string_lossy())));
    v.join(" ")
}

/// `vmadm-ext [--root R] check <uuid>`.
pub fn preflight_command(t: &Tools, uuid: &str) -> Command {
    let mut c = t.command(&t.vmadm_ext);
    if !t.is_real_root() {
        c.arg("--root").arg(&t.root);
    }
    c.args(["check", uuid]);
    c
}

/// `zlogin <uuid> 'cd <checkout> && ./build_all.sh <targets>'`.
pub fn build_command(t: &Tools, uuid: &str, checkout: &str, targets: &[String]) -> Command {
    let mut line = format!("cd {} && ./build_all.sh", sh_quote(checkout));
    for x in targets {
        line.push(' ');
        line.push_str(&sh_quote(x));
    }
    let mut c = t.command(&t.zlogin);
    c.arg(uuid).arg(line);
    c
}

/// Run and capture; only a failure to start is an error here.
pub fn run(c: &mut Command) -> Result<Output> {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.output().map_err(|e| Error::Spawn {
        command: display(c),
        msg: e.to_string(),
    })
}

/// The error for a command that exited non-zero.
pub fn failed(c: &Command, o: &Output) -> Error {
    Error::Command {
        command: display(c),
        status: o.status.code(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// One line of `vmadm-ext check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    pub ok: bool,
    pub what: String,
}

/// Parse `vmadm-ext check` output (`ok:   ...` / `FAIL: ...` lines).
pub fn parse_check(stdout: &str) -> Vec<Requirement> {
    stdout
        .lines()
        .filter_map(|l| {
            if let Some(w) = l.strip_prefix("ok:") {
                Some(Requirement {
                    ok: true,
                    what: w.trim().into(),
                })
            } else {
                l.strip_prefix("FAIL:").map(|w| Requirement {
                    ok: false,
                    what: w.trim().into(),
                })
            }
        })
        .collect()
}

/// The preflight verdict: requirements, and an error unless all hold.
pub fn preflight(t: &Tools, uuid: &str) -> Result<Vec<Requirement>> {
    let mut c = preflight_command(t, uuid);
    let o = run(&mut c)?;
    let reqs = parse_check(&String::from_utf8_lossy(&o.stdout));
    let bad: Vec<&str> = reqs
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.what.as_str())
        .collect();
    match (o.status.success(), reqs.is_empty(), bad.is_empty()) {
        (true, false, true) => Ok(reqs),
        (_, _, false) => Err(Error::Preflight {
            zone: uuid.into(),
            failed: bad.join("; "),
        }),
        _ => Err(failed(&c, &o)),
    }
}

/// An `/etc/zones/index` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub name: String,
    pub state: String,
    pub zonepath: String,
    pub uuid: String,
}

/// Parse `/etc/zones/index` (`name:state:zonepath:uuid`, `#` comments).
pub fn parse_zone_index(text: &str) -> Vec<IndexEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then(|| IndexEntry {
                name: f[0].into(),
                state: f[1].into(),
                zonepath: f[2].into(),
                uuid: f.get(3).copied().unwrap_or_default().into(),
            })
        })
        .collect()
}

/// The zone's root as the global zone sees it: `<root><zonepath>/root`.
pub fn zone_root(root: &Path, zone: &str) -> Result<PathBuf> {
    let p = root.join("etc/zones/index");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let e = parse_zone_index(&text)
        .into_iter()
        .find(|e| e.uuid == zone || e.name == zone)
        .ok_or_else(|| Error::NoZone(zone.into()))?;
    Ok(root.join(e.zonepath.trim_start_matches('/')).join("root"))
}

/// A path inside the zone as the global zone sees it.
pub fn in_zone(zone_root: &Path, path: &str) -> PathBuf {
    zone_root.join(path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim_tools() -> Tools {
        Tools {
            root: "/tmp/cn".into(),
            zlogin: "/b/zlogin".into(),
            vmadm_ext: "/b/vmadm-ext".into(),
        }
    }

    #[test]
    fn builds_commands() {
        let t = sim_tools();
        let c = build_command(
            &t,
            "u-1",
            "opt/tci",
            &["debian-12".into(), "ubuntu-24.04".into()],
        );
        assert_eq!(
            display(&c),
            "/b/zlogin u-1 'cd opt/tci && ./build_all.sh debian-12 ubuntu-24.04'"
        );
        assert!(c
            .get_envs()
            .any(|(k, v)| k == "SIM_ROOT" && v == Some("/tmp/cn".as_ref())));
        let c = preflight_command(&t, "u-1");
        assert_eq!(display(&c), "/b/vmadm-ext --root /tmp/cn check u-1");
        let real = Tools::default();
        let c = preflight_command(&real, "u-1");
        assert_eq!(display(&c), "vmadm-ext check u-1");
        assert_eq!(c.get_envs().count(), 0);
        let c = build_command(&real, "u", "/root/my dir", &[]);
        assert_eq!(
            display(&c),
            "/usr/sbin/zlogin u 'cd '\\''/root/my dir'\\'' && ./build_all.sh'"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a-b.c"), "a-b.c");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote("$(rm)"), "'$(rm)'");
    }

    #[test]
    fn parses_check_output() {
        let out = "ok:   device /dev/vmmctl is visible in the zone\nFAIL: device /dev/viona: not granted\nzone u cannot run bhyve builds: 1 requirement(s) failed\n";
        let r = parse_check(out);
        assert_eq!(r.len(), 2);
        assert!(r[0].ok && !r[1].ok);
        assert_eq!(r[1].what, "device /dev/viona: not granted");
    }

    #[test]
    fn zone_index() {
        let t = "# comment\nglobal:installed:/\nb1:running:/zones/u1:u1\n";
        let e = parse_zone_index(t);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].zonepath, "/zones/u1");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/zones")).unwrap();
        std::fs::write(d.path().join("etc/zones/index"), t).unwrap();
        assert_eq!(
            zone_root(d.path(), "u1").unwrap(),
            d.path().join("zones/u1/root")
        );
        assert!(matches!(zone_root(d.path(), "u2"), Err(Error::NoZone(_))));
        assert_eq!(in_zone(Path::new("/r"), "/opt/x"), Path::new("/r/opt/x"));
    }
}
