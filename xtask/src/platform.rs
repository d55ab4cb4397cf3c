//! `cargo xtask platform`: the builder brand staged into a proto tree, and
//! a simulated platform image that carries it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub struct Built {
    pub manifest: Vec<String>,
    pub image: PathBuf,
}

pub fn platform(out: &Path, stamp: &str) -> Result<Built> {
    let proto = out.join("proto");
    let mut manifest = Vec::new();
    for n in ["builder"] {
        let b = brand::brands::by_name(n).with_context(|| format!("unknown brand {n}"))?;
        manifest.extend(brand::stage::stage(&b, &proto)?);
        for f in brand::check::check(&proto, n).into_iter().filter(|f| !f.ok) {
            // The hook programs belong to the joyent brand, staged with the
            // platform image below; file and parse problems stop here.
            if !f.what.contains(" hook ") {
                bail!("staged brand {n} is inconsistent: {}", f.what);
            }
        }
    }
    let text: String = manifest.iter().map(|l| format!("{l}\n")).collect();
    brand::stage::write_atomic(&out.join("manifest"), text.as_bytes(), 0o644)?;
    let image = out.join(format!("platform-{stamp}.tgz"));
    let brands: Vec<String> = brand::registry::platform()
        .iter()
        .map(|s| s.to_string())
        .collect();
    sim::platform::build(stamp, &brands, Some(&proto), &image)?;
    let bytes = std::fs::read(&image)?;
    sim::platform::vet_tarball(&bytes)?;
    Ok(Built { manifest, image })
}
