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

/// The local project's name under `projects/local/`.
pub const SMARTOS_LIVE_PROJECT: &str = "builder-brand";

/// The tools the local project can build into the platform, with their
/// manual pages (`WITH_TOOLS=yes`).
const PROJECT_TOOLS: &[(&str, &str, &str)] = &[
    ("vmadm-ext", "vmadm-ext", "vmadm-ext/man/vmadm-ext.8"),
    ("brand", "brand", "brand/man/brand.1"),
    (
        "zvol-stream",
        "zvol-stream",
        "zvol-stream/man/zvol-stream.1",
    ),
];

const PROJECT_MAKEFILE: &str = r#"#
# The builder brand as a smartos-live local project.
#
# smartos-live builds every directory of projects/local: `world` and
# `install` with DESTDIR set to the proto area, `manifest` with DESTDIR and
# DESTNAME naming the manifest to write. The brand's files are generated
# data (files/); with WITH_TOOLS=yes this project's command-line tools are
# built with cargo from SRC (a checkout of the project) and installed too.
#

WITH_TOOLS ?=	no
SRC ?=		$(CURDIR)/src
CARGO ?=	cargo
BRAND_DIR =	$(DESTDIR)/usr/lib/brand/builder
TOOLS =		@TOOLS@

.PHONY: all world install manifest update clean

all: world

world:
ifeq ($(WITH_TOOLS),yes)
	cd $(SRC) && $(CARGO) build --release --locked $(TOOLS:%=--bin %)
endif

install: world
	mkdir -p $(BRAND_DIR)
	chmod 0755 $(BRAND_DIR)
	for f in config.xml platform.xml Builder.xml; do \
		cp files/usr/lib/brand/builder/$$f $(BRAND_DIR)/$$f; \
		chmod 0444 $(BRAND_DIR)/$$f; \
	done
ifeq ($(WITH_TOOLS),yes)
	mkdir -p $(DESTDIR)/usr/bin $(DESTDIR)/usr/share/man/man1 \
	    $(DESTDIR)/usr/share/man/man8
	for t in $(TOOLS); do \
		cp $(SRC)/target/release/$$t $(DESTDIR)/usr/bin/$$t; \
		chmod 0555 $(DESTDIR)/usr/bin/$$t; \
	done
@MANINSTALL@
endif

manifest:
	cp manifest $(DESTDIR)/$(DESTNAME)
ifeq ($(WITH_TOOLS),yes)
	cat manifest.tools >> $(DESTDIR)/$(DESTNAME)
endif

update:

clean:
"#;

/// `cargo xtask platform --smartos-live DIR`: write
/// `DIR/projects/local/builder-brand/`, a smartos-live local project whose
/// install target puts the brand files (and, with `WITH_TOOLS=yes`, this
/// project's command-line tools and their manual pages) into the proto
/// area, and whose manifest lists them. Returns the project directory.
pub fn smartos_live(dir: &Path) -> Result<PathBuf> {
    if !dir.join("projects").is_dir() {
        bail!(
            "{} is not a smartos-live checkout (no projects/ directory)",
            dir.display()
        );
    }
    let proj = dir.join("projects/local").join(SMARTOS_LIVE_PROJECT);
    let files = proj.join("files");
    if files.exists() {
        std::fs::remove_dir_all(&files)?;
    }
    let b = brand::brands::builder();
    let mut manifest = brand::stage::stage(&b, &files)?;
    manifest.sort();
    let mut tools_manifest = vec![
        "d usr/bin 0755 root sys".to_string(),
        "d usr/share/man/man1 0755 root bin".to_string(),
        "d usr/share/man/man8 0755 root bin".to_string(),
    ];
    let mut man_install = String::new();
    let ws = crate::docs::workspace();
    for (_, bin, page) in PROJECT_TOOLS {
        tools_manifest.push(format!("f usr/bin/{bin} 0555 root bin"));
        let name = Path::new(page)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let section = name.rsplit('.').next().unwrap_or("1");
        tools_manifest.push(format!("f usr/share/man/man{section}/{name} 0444 root bin"));
        let dst = proj.join("man").join(&name);
        std::fs::create_dir_all(proj.join("man"))?;
        std::fs::copy(ws.join(page), &dst).with_context(|| format!("copying {page}"))?;
        man_install.push_str(&format!(
            "\tcp man/{name} $(DESTDIR)/usr/share/man/man{section}/{name}\n\
             \tchmod 0444 $(DESTDIR)/usr/share/man/man{section}/{name}\n"
        ));
    }
    let tools: Vec<&str> = PROJECT_TOOLS.iter().map(|(_, b, _)| *b).collect();
    let makefile = PROJECT_MAKEFILE
        .replace("@TOOLS@", &tools.join(" "))
        .replace("@MANINSTALL@\n", &man_install);
    let w = |name: &str, text: &str| -> Result<()> {
        brand::stage::write_atomic(&proj.join(name), text.as_bytes(), 0o644)?;
        Ok(())
    };
    w("Makefile", &makefile)?;
    w(
        "manifest",
        &manifest
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )?;
    w(
        "manifest.tools",
        &tools_manifest
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )?;
    w(
        "README.md",
        "# builder-brand: a smartos-live local project\n\n\
         Written by `cargo xtask platform --smartos-live <smartos-live>` from the\n\
         builder-brand project. A SmartOS platform build (`./configure && gmake\n\
         live`) builds and installs every directory of `projects/local`: this one\n\
         puts the builder brand's files into `/usr/lib/brand/builder/` with the\n\
         manifest lines in `manifest`.\n\n\
         With `WITH_TOOLS=yes` (and `SRC` naming a checkout of builder-brand, and a\n\
         Rust toolchain in the build zone) it also builds and installs\n\
         `vmadm-ext`, `brand` and `zvol-stream` with their manual pages\n\
         (`manifest.tools`).\n\n\
         The files under `files/` are generated; regenerate them rather than\n\
         editing them.\n",
    )?;
    Ok(proj)
}
