//! A triton-cloud-images checkout: the targets (keys of `imgconfigs.json`,
//! in file order) and the manifest template `manifest.in`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// One build target and the values `build_all.sh` puts in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    pub name: String,
    pub os: String,
    pub desc: String,
    pub homepage: String,
}

/// What image-ci needs from a checkout.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub dir: PathBuf,
    pub targets: Vec<Target>,
    pub manifest_in: String,
}

/// Parse `imgconfigs.json`: an object of target -> {os, desc, homepage}.
pub fn parse_imgconfigs(text: &str) -> std::result::Result<Vec<Target>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    obj.iter()
        .map(|(name, c)| {
            let field = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| format!("target {name}: \"{k}\" missing or not a string"))
            };
            if name.is_empty() || name.contains(['/', ' ', '\'', '"', '$', '`']) {
                return Err(format!("target name {name:?} is not usable"));
            }
            Ok(Target {
                name: name.clone(),
                os: field("os")?,
                desc: field("desc")?,
                homepage: field("homepage")?,
            })
        })
        .collect()
}

impl Checkout {
    /// Read `imgconfigs.json` and `manifest.in` from `dir`.
    pub fn load(dir: &Path) -> Result<Checkout> {
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))
        };
        let cfg = read("imgconfigs.json")?;
        let targets = parse_imgconfigs(&cfg).map_err(|msg| Error::Parse {
            path: dir.join("imgconfigs.json"),
            msg,
        })?;
        let manifest_in = read("manifest.in")?;
        Ok(Checkout {
            dir: dir.to_path_buf(),
            targets,
            manifest_in,
        })
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The named targets (all when `names` is empty), in the order given;
    /// unknown names are an error, duplicates are dropped.
    pub fn select(&self, names: &[String]) -> Result<Vec<Target>> {
        if names.is_empty() {
            return Ok(self.targets.clone());
        }
        let mut out: Vec<Target> = Vec::new();
        for n in names {
            let t = self
                .target(n)
                .ok_or_else(|| Error::UnknownTarget(n.clone()))?;
            if !out.iter().any(|o| o.name == t.name) {
                out.push(t.clone());
            }
        }
        Ok(out)
    }
}

/// git's command lines for a local copy of a repository at `git_ref`:
/// a shallow clone the first time, a shallow fetch and checkout after.
pub fn mirror_commands(repo: &str, git_ref: &str, dir: &Path, exists: bool) -> Vec<host::Cmd> {
    let d = dir.display().to_string();
    if exists {
        vec![
            host::Cmd::new(
                "git",
                &[
                    "-C", &d, "fetch", "--quiet", "--depth", "1", "--", repo, git_ref,
                ],
            ),
            host::Cmd::new(
                "git",
                &["-C", &d, "checkout", "--quiet", "--force", "FETCH_HEAD"],
            ),
        ]
    } else {
        vec![host::Cmd::new(
            "git",
            &[
                "clone", "--quiet", "--depth", "1", "--branch", git_ref, "--", repo, &d,
            ],
        )]
    }
}

/// Bring the local copy of `repo` at `dir` to `git_ref` (cloning it the
/// first time) and return its commit. image-ci reads the target list from
/// it before any zone is made.
pub fn sync_mirror(h: &dyn host::Host, repo: &str, git_ref: &str, dir: &Path) -> Result<String> {
    let exists = dir.join(".git").is_dir();
    if !exists {
        if let Some(p) = dir.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
    }
    for c in mirror_commands(repo, git_ref, dir, exists) {
        h.run(&c).map_err(|e| {
            Error::Config(format!(
                "cannot get {repo} at {git_ref}: {}",
                e.message().lines().last().unwrap_or_default()
            ))
        })?;
    }
    let d = dir.display().to_string();
    let out = h.run(&host::Cmd::new("git", &["-C", &d, "rev-parse", "HEAD"]))?;
    Ok(out.text().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORACLE: &str = include_str!("../../../shared/oracle/cloud-images/imgconfigs.json");

    #[test]
    fn oracle_has_thirteen_targets_in_file_order() {
        let t = parse_imgconfigs(ORACLE).unwrap();
        assert_eq!(t.len(), 13);
        assert_eq!(t[0].name, "almalinux-8");
        assert_eq!(t[12].name, "ubuntu-24.04");
        assert!(t.iter().all(|t| t.os == "linux"));
        assert!(t[11].desc.starts_with("Ubuntu 22.04 LTS"));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(parse_imgconfigs("[]").is_err());
        assert!(parse_imgconfigs(r#"{"a": {"os": "linux", "desc": "d"}}"#)
            .unwrap_err()
            .contains("homepage"));
        assert!(parse_imgconfigs(r#"{"a b": {"os": "l", "desc": "d", "homepage": "h"}}"#).is_err());
    }

    #[test]
    fn select_checks_names() {
        let c = Checkout {
            dir: ".".into(),
            targets: parse_imgconfigs(ORACLE).unwrap(),
            manifest_in: String::new(),
        };
        assert_eq!(c.select(&[]).unwrap().len(), 13);
        let s = c
            .select(&["rocky-9".into(), "debian-12".into(), "rocky-9".into()])
            .unwrap();
        assert_eq!(
            s.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["rocky-9", "debian-12"]
        );
        assert!(matches!(
            c.select(&["rocky-7".into()]),
            Err(Error::UnknownTarget(n)) if n == "rocky-7"
        ));
    }
}
