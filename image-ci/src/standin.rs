//! The sim's stand-in for triton-cloud-images' `build_all.sh` (for tests
//! and `cargo xtask rollout` on a sim node; not a copy of upstream).
//!
//! There is no packer or bhyve on the sim, but the artifacts are real: per
//! target the script makes a 1 MiB raw disk whose boot sector (16-bit code,
//! [`BOOT_CODE`], written as bytes) prints a message on COM1 (I/O port
//! 0x3F8) and halts, converts it to a zvol send stream with the
//! `zvol-stream` CLI, gzips it (`<target>-<YYYYMMDD>.x86_64.zfs.gz`) and
//! fills `manifest.in` with sed as the real script does. The message ends
//! in a login prompt (`<target> login: `), so the qemu boot test sees its
//! marker within a second or two.
//!
//! The script refuses to run unless the zone has `dev/vmmctl` and
//! `dev/viona` (under `$SIM_ZONEROOT`, which the sim's `zlogin` sets; `/`
//! elsewhere). It runs `$ZVOL_STREAM` if set, else `bin/zvol-stream` in the
//! checkout: [`write_checkout`] copies the binary there (a copy, not a link:
//! the zone may write to its files), found by [`find_zvol_stream`]
//! (`$ZVOL_STREAM_BIN`, else next to the running executable, which covers
//! `target/debug/` for the tests and `cargo xtask`, else `PATH`).
//!
//! Like the real one it prints `packer command failed with exit code N` for
//! a failed target, goes on, and exits 0. Files in the checkout steer it,
//! one target per line: `fail-targets` (packer fails), `tamper-targets`
//! (the `.gz` changes after the manifest is written), `nosig-targets` (the
//! boot sector never prints the login prompt), `poweroff-targets` (the
//! guest powers off at once, after one line); an executable `post-build.sh`
//! runs last (tests play a hostile build there).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The boot sector's code, loaded by the BIOS at 0x7C00 (hand-assembled,
/// 16-bit real mode):
///
/// ```text
/// 7c00 fa             cli
/// 7c01 31c0           xor ax,ax
/// 7c03 8ed8 8ed0      mov ds,ax / mov ss,ax
/// 7c07 bc007c         mov sp,0x7c00
/// 7c0a fc             cld
/// 7c0b ba fb03 b080 ee        COM1 LCR = 0x80 (DLAB)
/// 7c11 ba f803 b001 ee        divisor low = 1 (115200 baud)
/// 7c17 42 30c0 ee             divisor high = 0
/// 7c1b ba fb03 b003 ee        LCR = 3 (8N1)
/// 7c21 be807c         mov si,0x7c80           ; the message, NUL-terminated
/// 7c24 ac             lodsb
/// 7c25 84c0 7412      test al,al / jz 7c3b
/// 7c29 88c3           mov bl,al
/// 7c2b bafd03 ec a820 74fb    wait for LSR.THRE
/// 7c33 88d8 baf803 ee         out 0x3f8, the byte
/// 7c39 ebe9           jmp 7c24
/// 7c3b 803e7f7c01 7403        cmp byte [0x7c7f],1 / je 7c45   ; the flag
/// 7c42 f4 ebfd        hlt / jmp 7c42          ; halt for good
/// 7c45 b80020 ba0406 ef       ACPI PM1a_CNT 0x604 = SLP_EN (QEMU: power off)
/// 7c4c ba04b0 ef              the same at 0xb004 (older QEMU, Bochs)
/// 7c50 0f011e597c cd03        lidt [null IDT] / int3: triple fault
/// 7c57 ebe9           jmp 7c42
/// 7c59 000000000000   the null IDT descriptor
/// ```
pub const BOOT_CODE: [u8; 95] = [
    0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x8e, 0xd0, 0xbc, 0x00, 0x7c, 0xfc, 0xba, 0xfb, 0x03, 0xb0, 0x80,
    0xee, 0xba, 0xf8, 0x03, 0xb0, 0x01, 0xee, 0x42, 0x30, 0xc0, 0xee, 0xba, 0xfb, 0x03, 0xb0, 0x03,
    0xee, 0xbe, 0x80, 0x7c, 0xac, 0x84, 0xc0, 0x74, 0x12, 0x88, 0xc3, 0xba, 0xfd, 0x03, 0xec, 0xa8,
    0x20, 0x74, 0xfb, 0x88, 0xd8, 0xba, 0xf8, 0x03, 0xee, 0xeb, 0xe9, 0x80, 0x3e, 0x7f, 0x7c, 0x01,
    0x74, 0x03, 0xf4, 0xeb, 0xfd, 0xb8, 0x00, 0x20, 0xba, 0x04, 0x06, 0xef, 0xba, 0x04, 0xb0, 0xef,
    0x0f, 0x01, 0x1e, 0x59, 0x7c, 0xcd, 0x03, 0xeb, 0xe9, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// The flag byte: 1 = power off after the message.
pub const FLAG_OFFSET: usize = 127;
/// The message (NUL-terminated).
pub const MESSAGE_OFFSET: usize = 128;
/// The message ends before the MBR partition table.
pub const MESSAGE_MAX: usize = 440 - MESSAGE_OFFSET - 1;
/// The stand-in disk's size.
pub const DISK_SIZE: usize = 1 << 20;

/// What a stand-in disk does when booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskKind {
    /// Prints a line and a login prompt, then halts.
    Marker,
    /// Prints a line without any login prompt, then halts.
    NoMarker,
    /// Prints a line, then powers the VM off.
    Poweroff,
}

impl DiskKind {
    /// The word `mkdisk` takes.
    pub fn word(self) -> &'static str {
        match self {
            DiskKind::Marker => "marker",
            DiskKind::NoMarker => "nomarker",
            DiskKind::Poweroff => "poweroff",
        }
    }
}

/// The console text of a stand-in disk.
pub fn message(kind: DiskKind, target: &str) -> String {
    match kind {
        DiskKind::Marker => format!("\r\nimage-ci stand-in image {target}\r\n\r\n{target} login: "),
        DiskKind::NoMarker => {
            format!("\r\nimage-ci stand-in image {target}: no login prompt here\r\n")
        }
        DiskKind::Poweroff => format!("\r\nimage-ci stand-in image {target}: powering off\r\n"),
    }
}

/// The boot sector of a stand-in disk.
pub fn boot_sector(kind: DiskKind, target: &str) -> Result<[u8; 512]> {
    let m = message(kind, target);
    if m.len() > MESSAGE_MAX {
        return Err(Error::Invalid(format!(
            "target name {target:?} is too long for a stand-in boot sector"
        )));
    }
    let mut s = [0u8; 512];
    s[..BOOT_CODE.len()].copy_from_slice(&BOOT_CODE);
    s[FLAG_OFFSET] = u8::from(kind == DiskKind::Poweroff);
    s[MESSAGE_OFFSET..MESSAGE_OFFSET + m.len()].copy_from_slice(m.as_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    Ok(s)
}

/// A whole stand-in disk ([`DISK_SIZE`] bytes).
pub fn disk(kind: DiskKind, target: &str) -> Result<Vec<u8>> {
    let mut d = vec![0u8; DISK_SIZE];
    d[..512].copy_from_slice(&boot_sector(kind, target)?);
    Ok(d)
}

/// A stand-in image as the build writes it: the disk as a zvol send stream,
/// gzipped, at `out` (a `.zfs.gz`). For tests that boot small real images.
pub fn write_image(kind: DiskKind, target: &str, out: &Path) -> Result<()> {
    let d = disk(kind, target)?;
    let f = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::fast());
    zvol_stream::write_stream(
        &d[..],
        d.len() as u64,
        &mut gz,
        &zvol_stream::WriteOptions::default(),
    )
    .map_err(|e| Error::io(out, e))?;
    let mut w = gz.finish().map_err(|e| Error::io(out, e))?;
    w.flush().map_err(|e| Error::io(out, e))?;
    Ok(())
}

fn octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// The shell function that makes a stand-in disk, byte for byte what
/// [`disk`] makes: `mkdisk <file> marker|nomarker|poweroff <target>`.
pub fn mkdisk_sh() -> String {
    let msg = |k: DiskKind| {
        // printf format: the message with %s for the target
        message(k, "%s").replace('\r', "\\r").replace('\n', "\\n")
    };
    format!(
        r#"mkdisk() {{ # file kind target
    dd if=/dev/zero of="$1" bs=1024 count=1024 2>/dev/null || return 1
    printf '{code}' | dd of="$1" conv=notrunc 2>/dev/null || return 1
    case "$2" in
        marker) printf '{marker}' "$3" "$3" ;;
        nomarker) printf '{nomarker}' "$3" ;;
        poweroff) printf '{poweroff}' "$3" ;;
        *) return 1 ;;
    esac | dd of="$1" bs=1 seek={moff} conv=notrunc 2>/dev/null || return 1
    if [ "$2" = poweroff ]; then
        printf '\001' | dd of="$1" bs=1 seek={foff} conv=notrunc 2>/dev/null || return 1
    fi
    printf '\125\252' | dd of="$1" bs=1 seek=510 conv=notrunc 2>/dev/null
}}
"#,
        code = octal(&BOOT_CODE),
        marker = msg(DiskKind::Marker),
        nomarker = msg(DiskKind::NoMarker),
        poweroff = msg(DiskKind::Poweroff),
        moff = MESSAGE_OFFSET,
        foff = FLAG_OFFSET,
    )
}

const SCRIPT_HEAD: &str = r#"#!/bin/sh
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
zvs="${ZVOL_STREAM:-$PWD/bin/zvol-stream}"
if [ ! -x "$zvs" ]; then
    echo "build_all.sh: $zvs is missing: the stand-in writes its zvol send streams with zvol-stream" >&2
    exit 1
fi
"#;

const SCRIPT_LOOP: &str = r#"if [ $# -eq 0 ]; then set -- $(targets); fi
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
    raw="$out/$t-$date.x86_64.raw"
    kind=marker
    if listed nosig-targets "$t"; then kind=nomarker; fi
    if listed poweroff-targets "$t"; then kind=poweroff; fi
    echo "==> $src: Creating disk image ($kind boot sector)"
    if ! mkdisk "$raw" "$kind" "$t"; then
        echo "==> $src: cannot write $raw"
        echo "packer command failed with exit code 1"
        continue
    fi
    echo "==> $src: Writing the zvol send stream $base"
    if ! "$zvs" write "$raw" "$base"; then
        rm -f "$raw"
        echo "packer command failed with exit code 1"
        continue
    fi
    rm -f "$raw"
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

/// The script.
pub fn build_all_sh() -> String {
    let mut s = String::from(SCRIPT_HEAD);
    s.push_str("# The stand-in disk: BOOT_CODE and the message of image-ci's src/standin.rs.\n");
    s.push_str(&mkdisk_sh());
    s.push_str(SCRIPT_LOOP);
    s
}

/// Which targets to break, and how.
#[derive(Debug, Clone, Default)]
pub struct Steer {
    pub fail: Vec<String>,
    pub tamper: Vec<String>,
    /// Disks whose boot sector never prints the login prompt.
    pub nosig: Vec<String>,
}

/// The `zvol-stream` binary for the stand-in: `$ZVOL_STREAM_BIN`, else
/// next to the running executable (or one directory up, for test binaries
/// in `target/debug/deps`), else on `PATH`.
pub fn find_zvol_stream() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ZVOL_STREAM_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Invalid(format!(
                "ZVOL_STREAM_BIN={} is not a file",
                p.display()
            )))
        };
    }
    let mut dirs = vec![];
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if let Some(up) = d.parent() {
            dirs.push(d.clone());
            dirs.push(up.to_path_buf());
        } else {
            dirs.push(d);
        }
    }
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    dirs.into_iter()
        .map(|d| d.join("zvol-stream"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Invalid(
                "the zvol-stream binary was not found (next to this program, or on PATH): build it with `cargo build -p zvol-stream` or set ZVOL_STREAM_BIN".into(),
            )
        })
}

/// Write a checkout at `dir` (a host path, e.g. inside a sim zone root):
/// `imgconfigs.json`, `manifest.in`, the stand-in `build_all.sh`, the
/// steering files, and `bin/zvol-stream` (see [`find_zvol_stream`]).
pub fn write_checkout(
    dir: &Path,
    imgconfigs: &str,
    manifest_in: &str,
    steer: &Steer,
) -> Result<()> {
    write_checkout_with(dir, imgconfigs, manifest_in, steer, &find_zvol_stream()?)
}

/// [`write_checkout`] with the `zvol-stream` binary to copy.
pub fn write_checkout_with(
    dir: &Path,
    imgconfigs: &str,
    manifest_in: &str,
    steer: &Steer,
    zvol_stream: &Path,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    std::fs::create_dir_all(dir.join("bin")).map_err(|e| Error::io(dir, e))?;
    w("imgconfigs.json", imgconfigs)?;
    w("manifest.in", manifest_in)?;
    w("build_all.sh", &build_all_sh())?;
    let sh = dir.join("build_all.sh");
    std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(&sh, e))?;
    let bin = dir.join("bin/zvol-stream");
    let _ = std::fs::remove_file(&bin);
    std::fs::copy(zvol_stream, &bin)
        .map_err(|e| Error::io(&bin, format!("copying {}: {e}", zvol_stream.display())))?;
    for (f, l) in [
        ("fail-targets", &steer.fail),
        ("tamper-targets", &steer.tamper),
        ("nosig-targets", &steer.nosig),
    ] {
        steer_file(dir, f, l)?;
    }
    Ok(())
}

/// Write (or, for an empty list, remove) one steering file, e.g.
/// `poweroff-targets`.
pub fn steer_file(dir: &Path, name: &str, targets: &[String]) -> Result<()> {
    let p = dir.join(name);
    if targets.is_empty() {
        let _ = std::fs::remove_file(&p);
        Ok(())
    } else {
        std::fs::write(&p, targets.join("\n") + "\n").map_err(|e| Error::io(&p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_checks_devices_and_reports_failures_like_upstream() {
        let s = build_all_sh();
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("dev/vmmctl dev/viona"));
        assert!(s.contains(crate::buildlog::FAILURE_TEXT));
        let d = tempfile::tempdir().unwrap();
        let st = Steer {
            fail: vec!["a".into()],
            ..Default::default()
        };
        let fake = d.path().join("zvs");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        let co = d.path().join("co");
        write_checkout_with(&co, "{}", "{}", &st, &fake).unwrap();
        assert_eq!(
            std::fs::read_to_string(co.join("fail-targets")).unwrap(),
            "a\n"
        );
        assert!(!co.join("tamper-targets").exists());
        assert!(co.join("bin/zvol-stream").is_file());
        // sh can parse it
        let o = std::process::Command::new("sh")
            .arg("-n")
            .arg(co.join("build_all.sh"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    #[test]
    fn boot_sector_layout() {
        let s = boot_sector(DiskKind::Marker, "debian-12").unwrap();
        assert_eq!(&s[..BOOT_CODE.len()], &BOOT_CODE[..]);
        // the code reads the message at 0x7c80 and the flag at 0x7c7f
        assert_eq!(&s[0x21..0x24], &[0xbe, 0x80, 0x7c]);
        assert_eq!(&s[0x3b..0x40], &[0x80, 0x3e, 0x7f, 0x7c, 0x01]);
        assert_eq!(s[FLAG_OFFSET], 0);
        assert!(s[MESSAGE_OFFSET..]
            .starts_with(b"\r\nimage-ci stand-in image debian-12\r\n\r\ndebian-12 login: \0"));
        assert_eq!((s[510], s[511]), (0x55, 0xaa));
        assert!(s[440..510].iter().all(|b| *b == 0), "no partition table");
        assert_eq!(
            boot_sector(DiskKind::Poweroff, "x").unwrap()[FLAG_OFFSET],
            1
        );
        assert!(!message(DiskKind::NoMarker, "t").contains("login:"));
        assert!(!message(DiskKind::Poweroff, "t").contains("login:"));
        assert!(boot_sector(DiskKind::Marker, &"x".repeat(200)).is_err());
    }

    /// The script's mkdisk writes exactly the disk `disk()` describes.
    #[test]
    fn shell_disk_is_the_rust_disk() {
        let d = tempfile::tempdir().unwrap();
        for kind in [DiskKind::Marker, DiskKind::NoMarker, DiskKind::Poweroff] {
            let f = d.path().join(format!("{}.raw", kind.word()));
            let script = format!(
                "{}\nmkdisk \"$1\" {} ubuntu-24.04",
                mkdisk_sh(),
                kind.word()
            );
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .arg("sh")
                .arg(&f)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let got = std::fs::read(&f).unwrap();
            assert!(
                got == disk(kind, "ubuntu-24.04").unwrap(),
                "{kind:?} differs"
            );
        }
    }

    #[test]
    fn small_image_is_a_zvol_stream() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.zfs.gz");
        write_image(DiskKind::Marker, "debian-12", &p).unwrap();
        let mut raw = std::fs::File::create(d.path().join("x.raw")).unwrap();
        let s = zvol_stream::read_stream(std::fs::File::open(&p).unwrap(), &mut raw).unwrap();
        assert_eq!(s.size, DISK_SIZE as u64);
        assert_eq!(
            std::fs::read(d.path().join("x.raw")).unwrap(),
            disk(DiskKind::Marker, "debian-12").unwrap()
        );
    }
}
