//! Is a brand installed and consistent under a root?

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::BrandConfig;
use crate::platform::Platform;
use crate::zone::ZoneConfig;

/// One finding of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            if self.ok { "ok:  " } else { "FAIL:" },
            self.what
        )
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Check the brand `name` under `root`: config.xml and platform.xml exist,
/// parse and name the brand; every zonecfg template parses and names it;
/// every hook program config.xml names exists under the root and is
/// executable.
pub fn check(root: &Path, name: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |ok: bool, what: String| out.push(Finding { ok, what });
    let dir = root.join(crate::BRAND_DIR).join(name);
    let rel = format!("/{}/{name}", crate::BRAND_DIR);
    if !dir.is_dir() {
        push(false, format!("{rel}: brand directory missing"));
        return out;
    }
    match read(&dir.join("config.xml"))
        .and_then(|t| BrandConfig::parse(&t).map_err(|e| e.to_string()))
    {
        Err(e) => push(false, format!("{rel}/config.xml: {e}")),
        Ok(c) => {
            push(
                c.name == name,
                format!("{rel}/config.xml: brand name {:?}", c.name),
            );
            for (hook, cmd) in &c.hooks {
                let Some(prog) = cmd.split_whitespace().next().filter(|p| p.starts_with('/'))
                else {
                    continue;
                };
                let p = root.join(prog.trim_start_matches('/'));
                let exec = p
                    .metadata()
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                match exec {
                    Ok(true) => push(true, format!("{rel}/config.xml: {hook} hook {prog}")),
                    Ok(false) => push(
                        false,
                        format!("{rel}/config.xml: {hook} hook {prog} is not an executable file"),
                    ),
                    Err(_) => push(
                        false,
                        format!("{rel}/config.xml: {hook} hook {prog} does not exist"),
                    ),
                }
            }
        }
    }
    match read(&dir.join("platform.xml"))
        .and_then(|t| Platform::parse(&t).map_err(|e| e.to_string()))
    {
        Err(e) => push(false, format!("{rel}/platform.xml: {e}")),
        Ok(p) => push(
            p.name == name,
            format!(
                "{rel}/platform.xml: platform name {:?}, {} devices",
                p.name,
                p.devices().count()
            ),
        ),
    }
    let mut templates: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml") && n != "config.xml" && n != "platform.xml")
        .collect();
    templates.sort();
    for t in templates {
        match read(&dir.join(&t)).and_then(|x| ZoneConfig::parse(&x).map_err(|e| e.to_string())) {
            Err(e) => push(false, format!("{rel}/{t}: {e}")),
            Ok(z) => push(
                z.brand() == name,
                format!("{rel}/{t}: template brand {:?}", z.brand()),
            ),
        }
    }
    out
}

/// The brands installed under a root: directories of `usr/lib/brand` that
/// hold a platform.xml.
pub fn installed_brands(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join(crate::BRAND_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("platform.xml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
