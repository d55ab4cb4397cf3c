//! The node commands image-ci runs, on the workspace's one host seam: each
//! is built as data ([`host::Cmd`]), run through a [`host::Host`], and its
//! output parsed by a pure function. `root` is the node root (`/` on
//! SmartOS); for another root (a sim node) it is passed to
//! `vmadm-ext --root` and exported as `SIM_ROOT` for the node's own tools.

use std::path::{Path, PathBuf};

use host::{Cmd, CmdError, Host, SystemHost};

use crate::error::{Error, Result};

/// Where the node's commands are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The node root (`/` on SmartOS; a sim node directory elsewhere).
    pub root: PathBuf,
    /// Where `vmadm`, `zlogin`, `imgadm` and `sysinfo` are found (a tools
    /// directory, else `PATH`, else their SmartOS paths).
    pub tools: host::Tools,
    /// `vmadm-ext` (the build readiness check).
    pub vmadm_ext: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            root: "/".into(),
            tools: host::Tools::from_env(),
            vmadm_ext: "vmadm-ext".into(),
        }
    }
}

impl Tools {
    /// A node at `root` whose tools are in `dir` (`sim link DIR` for a sim
    /// node), checked with `vmadm_ext`.
    pub fn in_dir(root: &Path, dir: &Path, vmadm_ext: &Path) -> Tools {
        Tools {
            root: root.to_path_buf(),
            tools: host::Tools::in_dir(dir),
            vmadm_ext: vmadm_ext.to_path_buf(),
        }
    }

    /// Is this the real node (`/`)?
    pub fn is_real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The host that runs this node's commands (`SIM_ROOT` set for a sim
    /// node).
    pub fn host(&self) -> SystemHost {
        let mut h = SystemHost::new(self.tools.clone());
        if !self.is_real_root() {
            h.env
                .push(("SIM_ROOT".into(), self.root.display().to_string()));
        }
        h
    }

    /// The program that runs for a tool name (`zlogin`, `vmadm`).
    pub fn program(&self, name: &str) -> PathBuf {
        self.tools.resolve(name)
    }

    /// A path inside a zone as a command run there (zlogin) takes it: as
    /// given on a real node; relative to the zone root on a sim node,
    /// whose zlogin runs commands on this host from the zone root.
    pub fn zone_arg(&self, path: &str) -> String {
        if self.is_real_root() {
            path.to_string()
        } else {
            let p = path.trim_start_matches('/');
            if p.is_empty() {
                ".".into()
            } else {
                p.to_string()
            }
        }
    }
}

/// Quote a word for `/bin/sh`.
pub fn sh_quote(s: &str) -> String {
    host::shell_word(s)
}

/// A command line for messages.
pub fn display(c: &Cmd) -> String {
    c.to_string()
}

/// A process's command line for messages (the local build's and the boot
/// tests' processes, which image-ci runs itself).
pub fn display_command(c: &std::process::Command) -> String {
    let mut v = vec![c.get_program().to_string_lossy().into_owned()];
    v.extend(c.get_args().map(|a| sh_quote(&a.to_string_lossy())));
    v.join(" ")
}

impl From<CmdError> for Error {
    fn from(e: CmdError) -> Error {
        match e {
            CmdError::Spawn { command, source } => Error::Spawn {
                command,
                msg: source.to_string(),
            },
            CmdError::Failed {
                command,
                code,
                stderr,
                stdout,
                ..
            } => Error::Command {
                command,
                status: code,
                stderr: if stderr.trim().is_empty() {
                    stdout
                } else {
                    stderr
                },
            },
            CmdError::Timeout { command, secs } => Error::Command {
                command,
                status: None,
                stderr: format!("timed out after {secs}s"),
            },
        }
    }
}

/// `vmadm-ext [--root R] check <uuid>`.
pub fn preflight_command(t: &Tools, uuid: &str) -> Cmd {
    let mut c = Cmd::new(&t.vmadm_ext.display().to_string(), &[]);
    if !t.is_real_root() {
        c = c.arg("--root").arg(t.root.display().to_string());
    }
    c.arg("check").arg(uuid)
}

/// The line `build_all.sh` runs as in the zone:
/// `cd <checkout> && ./build_all.sh <targets>`.
pub fn build_line(checkout: &str, targets: &[String]) -> String {
    let mut line = format!("cd {} && ./build_all.sh", sh_quote(checkout));
    for x in targets {
        line.push(' ');
        line.push_str(&sh_quote(x));
    }
    line
}

/// `zlogin <uuid> 'cd <checkout> && ./build_all.sh <targets>'`.
pub fn build_command(t: &Tools, uuid: &str, checkout: &str, targets: &[String]) -> Cmd {
    host::zlogin::run(uuid, &build_line(&t.zone_arg(checkout), targets))
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

/// The preflight verdict from what `vmadm-ext check` printed and whether
/// it exited 0: requirements, and an error unless all hold.
pub fn check_verdict(
    uuid: &str,
    stdout: &str,
    exited_ok: bool,
) -> std::result::Result<Vec<Requirement>, Option<Error>> {
    let reqs = parse_check(stdout);
    let bad: Vec<&str> = reqs
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.what.as_str())
        .collect();
    match (exited_ok, reqs.is_empty(), bad.is_empty()) {
        (true, false, true) => Ok(reqs),
        (_, _, false) => Err(Some(Error::Preflight {
            zone: uuid.into(),
            failed: bad.join("; "),
        })),
        _ => Err(None),
    }
}

/// Run `vmadm-ext check` on `uuid` through `h`.
pub fn preflight_with(h: &dyn Host, t: &Tools, uuid: &str) -> Result<Vec<Requirement>> {
    let c = preflight_command(t, uuid);
    match h.run(&c) {
        Ok(o) => check_verdict(uuid, &o.text(), true).map_err(|e| {
            e.unwrap_or_else(|| Error::Command {
                command: c.to_string(),
                status: Some(0),
                stderr: "vmadm-ext check printed no requirement".into(),
            })
        }),
        Err(CmdError::Failed {
            command,
            code,
            stdout,
            stderr,
            ..
        }) => check_verdict(uuid, &stdout, false).map_err(|e| {
            e.unwrap_or(Error::Command {
                command,
                status: code,
                stderr,
            })
        }),
        Err(e) => Err(e.into()),
    }
}

/// The preflight verdict for `uuid` on the node `t` names.
pub fn preflight(t: &Tools, uuid: &str) -> Result<Vec<Requirement>> {
    preflight_with(&t.host(), t, uuid)
}

/// The zone's root as the global zone sees it: `<root><zonepath>/root`.
pub fn zone_root(root: &Path, zone: &str) -> Result<PathBuf> {
    let p = root.join("etc/zones/index");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let e = common::zoneindex::parse(&text)
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
        Tools::in_dir(
            Path::new("/tmp/cn"),
            Path::new("/b"),
            Path::new("/b/vmadm-ext"),
        )
    }

    #[test]
    fn builds_commands() {
        let t = sim_tools();
        let c = build_command(
            &t,
            "u-1",
            "/opt/tci",
            &["debian-12".into(), "ubuntu-24.04".into()],
        );
        // a sim node's zlogin runs from the zone root: the path is relative
        assert_eq!(
            display(&c),
            "zlogin u-1 'cd opt/tci && ./build_all.sh debian-12 ubuntu-24.04'"
        );
        assert!(t
            .host()
            .env
            .contains(&("SIM_ROOT".to_string(), "/tmp/cn".to_string())));
        let d = tempfile::tempdir().unwrap();
        let z = d.path().join("zlogin");
        std::fs::write(&z, "#!/bin/sh\n").unwrap();
        let t2 = Tools::in_dir(Path::new("/tmp/cn"), d.path(), Path::new("/b/vmadm-ext"));
        assert_eq!(t2.program("zlogin"), z);
        let c = preflight_command(&t, "u-1");
        assert_eq!(display(&c), "/b/vmadm-ext --root /tmp/cn check u-1");
        let real = Tools {
            tools: host::Tools::default(),
            ..Tools::default()
        };
        let c = preflight_command(&real, "u-1");
        assert_eq!(display(&c), "vmadm-ext check u-1");
        assert!(real.host().env.is_empty());
        let c = build_command(&real, "u", "/root/my dir", &[]);
        assert_eq!(
            display(&c),
            "zlogin u 'cd '\\''/root/my dir'\\'' && ./build_all.sh'"
        );
        assert_eq!(real.zone_arg("/root/x"), "/root/x");
        assert_eq!(t.zone_arg("/"), ".");
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
        assert!(matches!(
            check_verdict("u", out, false),
            Err(Some(Error::Preflight { .. }))
        ));
        assert!(matches!(check_verdict("u", "", false), Err(None)));
        assert_eq!(check_verdict("u", "ok: a\n", true).unwrap().len(), 1);
    }

    #[test]
    fn preflight_through_a_fake_host() {
        let t = sim_tools();
        let h = host::FakeHost::default()
            .answer("/b/vmadm-ext --root /tmp/cn check good", "ok: a\nok: b\n")
            .fail("/b/vmadm-ext --root /tmp/cn check gone", "no such zone");
        assert_eq!(preflight_with(&h, &t, "good").unwrap().len(), 2);
        let e = preflight_with(&h, &t, "gone").unwrap_err();
        assert!(e.to_string().contains("no such zone"), "{e}");
    }

    #[test]
    fn zone_index() {
        let t = "# comment\nglobal:installed:/\nb1:running:/zones/u1:u1\n";
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/zones")).unwrap();
        std::fs::write(d.path().join("etc/zones/index"), t).unwrap();
        assert_eq!(
            zone_root(d.path(), "u1").unwrap(),
            d.path().join("zones/u1/root")
        );
        assert_eq!(
            zone_root(d.path(), "b1").unwrap(),
            d.path().join("zones/u1/root")
        );
        assert!(matches!(zone_root(d.path(), "u2"), Err(Error::NoZone(_))));
        assert_eq!(in_zone(Path::new("/r"), "/opt/x"), Path::new("/r/opt/x"));
    }
}
