//! The sim's stand-in for triton-cloud-images' `build_all.sh` (for tests
//! and `cargo xtask rollout` on a sim node; not a copy of upstream).
//!
//! There is no packer or bhyve on the sim. The script refuses to run unless
//! the zone has `dev/vmmctl` and `dev/viona` (under `$SIM_ZONEROOT`, which
//! the sim's `zlogin` sets; `/` elsewhere), then per target writes a small
//! raw disk image with `qemu-img` and an MBR boot signature (0x55AA) in
//! place of the zvol's ZFS send stream, gzips it, and fills `manifest.in`
//! with sed as the real script does. Like the real one it prints
//! `packer command failed with exit code N` for a failed target, goes on,
//! and exits 0. Files in the checkout steer it, one target per line:
//! `fail-targets` (packer fails), `tamper-targets` (the `.gz` changes after
//! the manifest is written), `nosig-targets` (no boot signature); an
//! executable `post-build.sh` runs last (tests play a hostile build there).

use std::path::Path;

use crate::error::{Error, Result};

/// The script.
pub const BUILD_ALL_SH: &str = r#"#!/bin/sh
# Stand-in for triton-cloud-images' build_all.sh, written by image-ci's
# tests and the rollout gate (not a copy of upstream). See image-ci's
# src/standin.rs.
set -u
zr="${SIM_ZONEROOT:-/}"
for d in dev/vmmctl dev/viona; do
    if [ ! -e "$zr/$d" ]; then
        echo "build_all.sh: /$d is missing: this zone cannot run bhyve" >&2
        exit 1
    fi
done
targets() {
    awk -F'"' '/^  "[^"]+": *\{/ { print $2 }' imgconfigs.json
}
cfg() { # target key
    awk -F'"' -v t="$1" -v k="$2" '
        /^  "[^"]+": *\{/ { cur = $2 }
        cur == t && $2 == k { print $4; exit }' imgconfigs.json
}
listed() { # file target
    [ -f "$1" ] && grep -qx -- "$2" "$1"
}
case "${1:-}" in
    list) targets; exit 0 ;;
    deps|validate) exit 0 ;;
esac
if [ $# -eq 0 ]; then set -- $(targets); fi
date=$(date -u +%Y%m%d)
for t in "$@"; do
    slug=$(echo "$t" | tr -d .)
    src="bhyve.$slug-x86_64"
    out="output-$slug-x86_64"
    echo "Building $t"
    if [ -z "$(cfg "$t" os)" ]; then
        echo "==> $src: unknown target $t"
        echo "packer command failed with exit code 1"
        continue
    fi
    if listed fail-targets "$t"; then
        echo "==> $src: Error waiting for SSH: timeout"
        echo "packer command failed with exit code 1"
        continue
    fi
    rm -rf "$out" && mkdir -p "$out"
    base="$out/$t-$date.x86_64.zfs"
    echo "==> $src: Creating disk image"
    qemu-img create -q -f raw "$base" 4M || { echo "packer command failed with exit code 1"; continue; }
    if ! listed nosig-targets "$t"; then
        printf '\125\252' | dd of="$base" bs=1 seek=510 conv=notrunc 2>/dev/null
    fi
    gzip -n -f "$base"
    sha1=$(sha1sum "$base.gz" | cut -d' ' -f1)
    size=$(wc -c < "$base.gz" | tr -d ' ')
    uuid=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen)
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    sed -e "s|@UUID@|$uuid|g" -e "s|@NAME@|$t|g" -e "s|@VERSION@|$date|g" \
        -e "s|@PUBLISHED_AT@|$now|g" -e "s|@OS@|$(cfg "$t" os)|g" \
        -e "s|@DESCRIPTION@|$(cfg "$t" desc)|g" -e "s|@HOMEPAGE@|$(cfg "$t" homepage)|g" \
        -e "s|@SHA1@|$sha1|g" -e "s|@SIZE@|$size|g" manifest.in > "$out/$t-$date.json"
    if listed tamper-targets "$t"; then
        printf 'x' >> "$base.gz"
    fi
    echo "==> $src: Builds finished: $base.gz"
done
# tests play a hostile build here (anything a build in the zone could do)
if [ -x ./post-build.sh ]; then ./post-build.sh "$date"; fi
exit 0
"#;

/// Which targets to break, and how.
#[derive(Debug, Clone, Default)]
pub struct Steer {
    pub fail: Vec<String>,
    pub tamper: Vec<String>,
    pub nosig: Vec<String>,
}

/// Write a checkout at `dir` (a host path, e.g. inside a sim zone root):
/// `imgconfigs.json`, `manifest.in`, the stand-in `build_all.sh`, and the
/// steering files.
pub fn write_checkout(
    dir: &Path,
    imgconfigs: &str,
    manifest_in: &str,
    steer: &Steer,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    w("imgconfigs.json", imgconfigs)?;
    w("manifest.in", manifest_in)?;
    w("build_all.sh", BUILD_ALL_SH)?;
    let sh = dir.join("build_all.sh");
    std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(&sh, e))?;
    for (f, l) in [
        ("fail-targets", &steer.fail),
        ("tamper-targets", &steer.tamper),
        ("nosig-targets", &steer.nosig),
    ] {
        let p = dir.join(f);
        if l.is_empty() {
            let _ = std::fs::remove_file(&p);
        } else {
            w(f, &(l.join("\n") + "\n"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_checks_devices_and_reports_failures_like_upstream() {
        assert!(BUILD_ALL_SH.starts_with("#!/bin/sh\n"));
        assert!(BUILD_ALL_SH.contains("dev/vmmctl dev/viona"));
        assert!(BUILD_ALL_SH.contains(crate::buildlog::FAILURE_TEXT));
        let d = tempfile::tempdir().unwrap();
        let s = Steer {
            fail: vec!["a".into()],
            ..Default::default()
        };
        write_checkout(d.path(), "{}", "{}", &s).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("fail-targets")).unwrap(),
            "a\n"
        );
        assert!(!d.path().join("tamper-targets").exists());
    }
}
