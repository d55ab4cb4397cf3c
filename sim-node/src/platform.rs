//! Platform images: building the tarball, installing it into the boot pool
//! (piadm), and booting it.
//!
//! The tarball has the real layout: one `platform-<stamp>/` directory with
//! `i86pc/kernel/amd64/unix`, `i86pc/amd64/boot_archive` and its `.hash`
//! (sha1 hex), `.manifest` (md5 of every file, `<md5>  ./path`) and
//! `.gitstatus` (JSON), and `etc/version/platform` (the stamp).
//!
//! The sim's boot archive is a POSIX tar of the platform's root file system
//! (on SmartOS it is a UFS ramdisk); it holds `usr/lib/brand/<brand>/...`,
//! `etc/release` and any overlay. The kernel file is a text stand-in.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use brand::config::{BrandConfig, PrivSet, Privilege};
use brand::platform::{Device, Entry, Platform};
use brand::BrandFiles;
use md5::Digest as _;

use crate::node::{io, write_atomic, NodeError};

/// Errors while building, installing or booting a platform image.
#[derive(Debug, thiserror::Error)]
pub enum PiError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("{0}")]
    Refused(String),
}

fn ioe(path: &Path) -> impl FnOnce(std::io::Error) -> PiError + '_ {
    move |e| PiError::Node(io(path)(e))
}

/// Is this a platform stamp (`YYYYMMDDTHHMMSSZ`)?
pub fn valid_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// Files of a brand this project does not model (lx, kvm): a DTD-valid
/// stand-in so a platform can carry the brand. Hooks live in the brand's
/// own directory.
pub fn stand_in_brand(name: &str) -> BrandFiles {
    let d = format!("/usr/lib/brand/{name}");
    let mut hooks = vec![
        (
            "install".to_string(),
            format!("{d}/{name}_install -z %z -R %R"),
        ),
        ("installopts".to_string(), "R:t:U:q:z:".to_string()),
    ];
    hooks.push(("attach".into(), format!("{d}/{name}_attach -z %z -R %R")));
    hooks.push((
        "uninstall".into(),
        format!("{d}/{name}_uninstall -z %z -R %R"),
    ));
    let mut privileges = vec![
        Privilege::new(PrivSet::Default, "proc_lock_memory", None),
        Privilege::new(PrivSet::Default, "sys_mount", None),
        Privilege::new(PrivSet::Prohibited, "sys_config", None),
    ];
    privileges.push(Privilege::new(PrivSet::Required, "proc_exec", None));
    let config = BrandConfig {
        name: name.into(),
        modname: Some(if name == "lx" {
            "lx_brand".into()
        } else {
            String::new()
        }),
        initname: "/sbin/init".into(),
        restart: vec![],
        login_cmd: "/usr/bin/login -z %Z %u".into(),
        forcedlogin_cmd: "/usr/bin/login -z %Z -f %u".into(),
        user_cmd: "/usr/bin/getent passwd %u".into(),
        hooks,
        privileges,
        header: Some(format!(
            "\n The {name} brand as the simulated platform carries it (a stand-in).\n"
        )),
    };
    let mut entries: Vec<Entry> = ["null", "zero", "zfs", "random", "urandom", "tty", "pts/*"]
        .iter()
        .map(|d| Entry::Device(Device::new(d)))
        .collect();
    if name == "kvm" {
        entries.push(Entry::Device(Device::new("kvm")));
    }
    entries.push(Entry::Device(Device::renamed(
        "zcons/%z/zoneconsole",
        "zconsole",
    )));
    entries.push(Entry::Symlink {
        source: "console".into(),
        target: "zconsole".into(),
    });
    let platform = Platform {
        name: name.into(),
        allow_exclusive_ip: true,
        entries,
        header: None,
    };
    BrandFiles {
        name: name.into(),
        config,
        platform,
        templates: vec![],
    }
}

/// The files of a brand a platform can carry.
pub fn brand_files(name: &str) -> Result<BrandFiles, PiError> {
    // the brands whose files the brand crate generates, else a stand-in
    // for any brand the registry knows (lx, kvm, ...)
    match brand::brands::by_name(name) {
        Some(b) => Ok(b),
        None if brand::registry::get(name).is_some() => Ok(stand_in_brand(name)),
        None => Err(PiError::Refused(format!(
            "unknown brand {name:?} (known: {})",
            brand::registry::names().join(", ")
        ))),
    }
}

/// Write brand files plus executable stand-ins for the hook programs that
/// live in the brand's own directory.
fn install_brand(root: &Path, b: &BrandFiles) -> Result<(), PiError> {
    brand::stage::stage(b, root).map_err(|e| PiError::Refused(e.to_string()))?;
    let own = format!("/usr/lib/brand/{}/", b.name);
    let mut progs: Vec<&str> = b
        .config
        .hooks
        .iter()
        .filter_map(|(_, c)| c.split_whitespace().next())
        .chain(std::iter::once(b.config.initname.as_str()))
        .filter(|p| p.starts_with(&own))
        .collect();
    progs.sort();
    progs.dedup();
    for p in progs {
        let path = root.join(p.trim_start_matches('/'));
        let text = format!("#!/bin/sh\n# {p}: brand hook of the simulated platform\nexit 0\n");
        fs::write(&path, text).map_err(ioe(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(ioe(&path))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), PiError> {
    for e in walkdir::WalkDir::new(from).min_depth(1) {
        let e = e.map_err(|e| PiError::Refused(format!("overlay: {e}")))?;
        let rel = e.path().strip_prefix(from).expect("below root");
        let dst = to.join(rel);
        if e.file_type().is_dir() {
            fs::create_dir_all(&dst).map_err(ioe(&dst))?;
        } else if e.file_type().is_symlink() {
            let t = fs::read_link(e.path()).map_err(ioe(e.path()))?;
            let _ = fs::remove_file(&dst);
            std::os::unix::fs::symlink(t, &dst).map_err(ioe(&dst))?;
        } else {
            if dst.exists() {
                let _ = fs::set_permissions(&dst, fs::Permissions::from_mode(0o644));
            }
            fs::copy(e.path(), &dst).map_err(ioe(&dst))?;
        }
    }
    Ok(())
}

/// Deterministic tar of a directory tree (sorted, mtime 0, owner 0).
fn tar_tree(
    dir: &Path,
    prefix: &str,
    builder: &mut tar::Builder<impl Write>,
) -> Result<(), PiError> {
    for e in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let e = e.map_err(|e| PiError::Refused(format!("archive: {e}")))?;
        let rel = e.path().strip_prefix(dir).expect("below root");
        let name = if prefix.is_empty() {
            rel.to_path_buf()
        } else {
            Path::new(prefix).join(rel)
        };
        let meta = fs::symlink_metadata(e.path()).map_err(ioe(e.path()))?;
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(meta.permissions().mode() & 0o7777);
        if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            builder
                .append_data(&mut h, &name, std::io::empty())
                .map_err(ioe(e.path()))?;
        } else if meta.file_type().is_symlink() {
            let t = fs::read_link(e.path()).map_err(ioe(e.path()))?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            builder
                .append_link(&mut h, &name, t)
                .map_err(ioe(e.path()))?;
        } else {
            let data = fs::read(e.path()).map_err(ioe(e.path()))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            builder
                .append_data(&mut h, &name, data.as_slice())
                .map_err(ioe(e.path()))?;
        }
    }
    Ok(())
}

pub fn sha1_hex(data: &[u8]) -> String {
    common::hex::encode(&sha1::Sha1::digest(data))
}

fn md5_hex(data: &[u8]) -> String {
    common::hex::encode(&md5::Md5::digest(data))
}

/// Build a platform image tarball.
pub fn build(
    stamp: &str,
    brands: &[String],
    overlay: Option<&Path>,
    out: &Path,
) -> Result<(), PiError> {
    if !valid_stamp(stamp) {
        return Err(PiError::Refused(format!(
            "invalid platform stamp {stamp:?}: want YYYYMMDDTHHMMSSZ"
        )));
    }
    let files: Vec<BrandFiles> = brands
        .iter()
        .map(|b| brand_files(b))
        .collect::<Result<_, _>>()?;
    let work = tempfile::tempdir().map_err(ioe(Path::new("tmp")))?;
    let rootfs = work.path().join("root");
    fs::create_dir_all(rootfs.join("etc")).map_err(ioe(&rootfs))?;
    for b in &files {
        install_brand(&rootfs, b)?;
    }
    let release = format!(
        "SmartOS (simulated) joyent_{stamp} x86_64\nBrands: {}\n",
        brands.join(" ")
    );
    fs::write(rootfs.join("etc/release"), release).map_err(ioe(&rootfs))?;
    if let Some(o) = overlay {
        if !o.is_dir() {
            return Err(PiError::Refused(format!(
                "overlay {} is not a directory",
                o.display()
            )));
        }
        copy_tree(o, &rootfs)?;
    }
    // The boot archive and its companions.
    let mut archive = tar::Builder::new(Vec::new());
    tar_tree(&rootfs, "", &mut archive)?;
    let archive = archive.into_inner().map_err(ioe(&rootfs))?;
    let mut manifest = String::new();
    for e in walkdir::WalkDir::new(&rootfs).sort_by_file_name() {
        let e = e.map_err(|e| PiError::Refused(e.to_string()))?;
        if e.file_type().is_file() {
            let data = fs::read(e.path()).map_err(ioe(e.path()))?;
            let rel = e.path().strip_prefix(&rootfs).expect("below root");
            manifest.push_str(&format!("{}  ./{}\n", md5_hex(&data), rel.display()));
        }
    }
    let pi = work.path().join(format!("platform-{stamp}"));
    let amd64 = pi.join("i86pc/amd64");
    fs::create_dir_all(&amd64).map_err(ioe(&amd64))?;
    fs::create_dir_all(pi.join("i86pc/kernel/amd64")).map_err(ioe(&pi))?;
    fs::create_dir_all(pi.join("etc/version")).map_err(ioe(&pi))?;
    let w = |p: PathBuf, d: &[u8]| fs::write(&p, d).map_err(ioe(&p));
    w(
        pi.join("i86pc/kernel/amd64/unix"),
        format!("SunOS 5.11 joyent_{stamp} i86pc (simulated kernel)\n").as_bytes(),
    )?;
    w(amd64.join("boot_archive"), &archive)?;
    w(
        amd64.join("boot_archive.hash"),
        format!("{}\n", sha1_hex(&archive)).as_bytes(),
    )?;
    w(amd64.join("boot_archive.manifest"), manifest.as_bytes())?;
    let git = serde_json::json!([{"repo": "smartos-live", "branch": "sim", "rev": stamp, "brands": brands}]);
    w(
        amd64.join("boot_archive.gitstatus"),
        format!("{git:#}\n").as_bytes(),
    )?;
    w(
        pi.join("etc/version/platform"),
        format!("{stamp}\n").as_bytes(),
    )?;
    let mut gz = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    tar_tree(&pi, &format!("platform-{stamp}"), &mut gz)?;
    let bytes = gz.into_inner().and_then(|g| g.finish()).map_err(ioe(out))?;
    write_atomic(out, &bytes)?;
    Ok(())
}

/// Is `target` of a link at `link` (both relative to the tarball root)
/// inside the top directory `top`?
fn link_stays_inside(top: &str, link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut stack: Vec<String> = link.parent().map_or(vec![], |p| {
        p.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    });
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            Component::Normal(n) => stack.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return false,
        }
    }
    stack.first().is_some_and(|f| f == top)
}

/// Check every entry of a platform tarball before anything is written:
/// one `platform-*` top directory, no absolute or `..` paths, links that
/// stay inside, only files, directories and links.
pub fn vet_tarball(bytes: &[u8]) -> Result<String, PiError> {
    let bad = |m: String| PiError::Refused(m);
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut top: Option<String> = None;
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a gzip tar archive: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| bad(format!("not a gzip tar archive: {e}")))?;
        let path = e
            .path()
            .map_err(|e| bad(format!("bad entry name: {e}")))?
            .into_owned();
        if path.is_absolute() {
            return Err(bad(format!("refusing absolute path {}", path.display())));
        }
        if path.components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::Prefix(_) | Component::RootDir
            )
        }) {
            return Err(bad(format!("refusing path with '..': {}", path.display())));
        }
        let first = path.components().find_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        });
        let Some(first) = first else { continue };
        if !first.starts_with("platform-") {
            return Err(bad(format!(
                "{} is outside a platform-<stamp> directory",
                path.display()
            )));
        }
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => {
                return Err(bad(format!("more than one top directory: {t} and {first}")));
            }
            _ => {}
        }
        let kind = e.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let t = e
                    .link_name()
                    .map_err(|e| bad(format!("bad link: {e}")))?
                    .ok_or_else(|| bad(format!("link {} has no target", path.display())))?;
                let ok = if kind == tar::EntryType::Link {
                    // hard link targets name a path from the archive root
                    !t.is_absolute() && link_stays_inside(&first, Path::new("x"), &t)
                } else {
                    link_stays_inside(&first, &path, &t)
                };
                if !ok {
                    return Err(bad(format!(
                        "refusing link {} -> {} leaving the platform directory",
                        path.display(),
                        t.display()
                    )));
                }
            }
            other => return Err(bad(format!("refusing {other:?} entry {}", path.display()))),
        }
    }
    top.ok_or_else(|| bad("empty archive".into()))
}

/// Check every entry of a boot archive (a tar of the root file system)
/// before it is trusted: relative paths without `..`, only files,
/// directories and links; hard links and relative symlinks that stay inside
/// the archive; and no entry written through a link (the way an archive
/// escapes the directory it is unpacked into). Absolute symlink targets are
/// normal in a root file system and name paths inside the booted root.
pub fn vet_boot_archive(data: &[u8]) -> Result<(), PiError> {
    let bad = |m: String| PiError::Refused(format!("boot archive: {m}"));
    let mut ar = tar::Archive::new(data);
    let mut links: std::collections::BTreeSet<PathBuf> = Default::default();
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut n = 0usize;
    for e in entries {
        let e = e.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        n += 1;
        let path = e
            .path()
            .map_err(|e| bad(format!("bad entry name: {e}")))?
            .into_owned();
        let norm: PathBuf = path
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        if path.is_absolute()
            || path.components().any(|c| {
                matches!(
                    c,
                    Component::ParentDir | Component::Prefix(_) | Component::RootDir
                )
            })
        {
            return Err(bad(format!("refusing path {}", path.display())));
        }
        if norm.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(bad(format!(
                "refusing {}: it is written through a link",
                path.display()
            )));
        }
        let kind = e.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let t = e
                    .link_name()
                    .map_err(|e| bad(format!("bad link: {e}")))?
                    .ok_or_else(|| bad(format!("link {} has no target", path.display())))?;
                let inside = if kind == tar::EntryType::Link {
                    !t.is_absolute() && link_stays_inside_root(Path::new(""), &t)
                } else {
                    t.is_absolute()
                        || link_stays_inside_root(norm.parent().unwrap_or(Path::new("")), &t)
                };
                if !inside {
                    return Err(bad(format!(
                        "refusing link {} -> {} leaving the archive",
                        path.display(),
                        t.display()
                    )));
                }
                links.insert(norm.clone());
            }
            other => return Err(bad(format!("refusing {other:?} entry {}", path.display()))),
        }
    }
    if n == 0 {
        return Err(bad("empty archive".into()));
    }
    Ok(())
}

/// Does a relative link target, resolved from directory `dir` (relative to
/// the archive root), stay inside the archive root?
fn link_stays_inside_root(dir: &Path, target: &Path) -> bool {
    let mut depth = dir.components().count();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
    }
    true
}

/// Read a platform directory's stamp and check its boot archive hash.
pub fn verify_platform_dir(dir: &Path) -> Result<String, PiError> {
    let vp = dir.join("etc/version/platform");
    let stamp = fs::read_to_string(&vp)
        .map_err(|_| PiError::Refused(format!("{} has no etc/version/platform", dir.display())))?
        .trim()
        .to_string();
    if !valid_stamp(&stamp) {
        return Err(PiError::Refused(format!(
            "bad platform stamp {stamp:?} in {}",
            vp.display()
        )));
    }
    let ba = dir.join("i86pc/amd64/boot_archive");
    let data =
        fs::read(&ba).map_err(|_| PiError::Refused(format!("{} is missing", ba.display())))?;
    let want = fs::read_to_string(dir.join("i86pc/amd64/boot_archive.hash"))
        .map_err(|_| PiError::Refused("boot_archive.hash is missing".into()))?;
    let got = sha1_hex(&data);
    if want.split_whitespace().next() != Some(got.as_str()) {
        return Err(PiError::Refused(format!(
            "boot archive hash mismatch: boot_archive.hash says {}, archive is {got}",
            want.trim()
        )));
    }
    vet_boot_archive(&data)?;
    Ok(stamp)
}

/// piadm install: vet, unpack into a temporary directory of the boot pool,
/// verify, then rename into `platform-<stamp>`. On any failure nothing
/// is left behind. Returns the stamp.
pub fn install(bootfs: &Path, tgz: &Path) -> Result<String, PiError> {
    let mut bytes = Vec::new();
    fs::File::open(tgz)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(ioe(tgz))?;
    let top = vet_tarball(&bytes)?;
    fs::create_dir_all(bootfs).map_err(ioe(bootfs))?;
    let tmp = tempfile::Builder::new()
        .prefix(".piadm-")
        .tempdir_in(bootfs)
        .map_err(ioe(bootfs))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    ar.set_preserve_permissions(true);
    ar.unpack(tmp.path())
        .map_err(|e| PiError::Refused(format!("cannot unpack {}: {e}", tgz.display())))?;
    let stamp = verify_platform_dir(&tmp.path().join(&top))?;
    let dest = bootfs.join(format!("platform-{stamp}"));
    if dest.exists() {
        return Err(PiError::Refused(format!(
            "platform-{stamp} is already installed"
        )));
    }
    fs::rename(tmp.path().join(&top), &dest).map_err(ioe(&dest))?;
    Ok(stamp)
}

/// The stamp the boot pool's `platform` link points at.
pub fn next_stamp(bootfs: &Path) -> Option<String> {
    let t = fs::read_link(bootfs.join("platform")).ok()?;
    t.file_name()?
        .to_string_lossy()
        .strip_prefix("platform-")
        .map(str::to_string)
}

/// Installed stamps, sorted.
pub fn installed(bootfs: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(bootfs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("etc/version/platform").is_file())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("platform-")
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// piadm activate: point `platform` at `platform-<stamp>` (atomically).
pub fn activate(bootfs: &Path, stamp: &str) -> Result<(), PiError> {
    let target = format!("platform-{stamp}");
    if !bootfs.join(&target).join("etc/version/platform").is_file() {
        return Err(PiError::Refused(format!(
            "platform-{stamp} is not installed in {}",
            bootfs.display()
        )));
    }
    // what boots must still be what install vetted
    verify_platform_dir(&bootfs.join(&target))?;
    let tmp = bootfs.join(format!(".platform-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).map_err(ioe(&tmp))?;
    fs::rename(&tmp, bootfs.join("platform")).map_err(ioe(bootfs))?;
    Ok(())
}

/// Unpack a platform's boot archive into `dest` (which must not exist).
pub fn unpack_boot_archive(platform_dir: &Path, dest: &Path) -> Result<(), PiError> {
    verify_platform_dir(platform_dir)?;
    let ba = platform_dir.join("i86pc/amd64/boot_archive");
    let data = fs::read(&ba).map_err(ioe(&ba))?;
    let mut ar = tar::Archive::new(data.as_slice());
    ar.set_preserve_permissions(true);
    fs::create_dir_all(dest).map_err(ioe(dest))?;
    ar.unpack(dest).map_err(|e| {
        PiError::Refused(format!("boot archive of {}: {e}", platform_dir.display()))
    })?;
    Ok(())
}
