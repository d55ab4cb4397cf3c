//! Files a build zone wrote, opened from the global zone without trusting
//! the zone: every path component is opened relative to the one before it
//! with `O_NOFOLLOW`, starting from a directory the global zone owns (the
//! zone root). A symlink anywhere on the way, or anything but a regular
//! file at the end, is refused: a build cannot make image-ci read (and
//! ship) a file of the host by linking to it.
//!
//! Once opened, an artifact is copied into a directory of image-ci's own
//! ([`stage`]) while it is hashed, so what was verified is what the boot
//! test reads and what is shipped, whatever the zone does afterwards.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use sha1::{Digest as _, Sha1};

/// Why a file from the zone was not opened.
#[derive(Debug, thiserror::Error)]
pub enum ZoneFileError {
    #[error("{path}: {msg}")]
    Refused { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn refused(path: &Path, msg: impl Into<String>) -> ZoneFileError {
    ZoneFileError::Refused {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Open `path` (inside `anchor`, which the global zone owns) for reading:
/// no component below `anchor` may be a symlink and the file must be a
/// regular file. `anchor` itself is opened as given.
pub fn open(anchor: &Path, path: &Path) -> Result<File, ZoneFileError> {
    let rel = path
        .strip_prefix(anchor)
        .map_err(|_| refused(path, format!("is not inside {}", anchor.display())))?;
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(refused(path, "has a '..', '.' or root component")),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, dirs)) = parts.split_last() else {
        return Err(refused(path, "names no file"));
    };
    let errno = |e: nix::errno::Errno, at: &Path| -> ZoneFileError {
        if e == nix::errno::Errno::ELOOP || e == nix::errno::Errno::ENOTDIR {
            refused(
                path,
                format!(
                    "{} is a symbolic link or not a directory: refused",
                    at.display()
                ),
            )
        } else {
            ZoneFileError::Io {
                path: at.to_path_buf(),
                source: std::io::Error::from(e),
            }
        }
    };
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd: OwnedFd = nix::fcntl::open(
        anchor,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno(e, anchor))?;
    let mut at = anchor.to_path_buf();
    for d in dirs {
        at.push(d);
        fd = openat(&fd, *d, dir_flags, Mode::empty()).map_err(|e| errno(e, &at))?;
    }
    at.push(last);
    let f = openat(
        &fd,
        *last,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| errno(e, &at))?;
    let f = File::from(f);
    let meta = f.metadata().map_err(|e| ZoneFileError::Io {
        path: at.clone(),
        source: e,
    })?;
    if !meta.file_type().is_file() {
        return Err(refused(path, "is not a regular file: refused"));
    }
    Ok(f)
}

/// Read a small text file from the zone (at most `max` bytes).
pub fn read_text(anchor: &Path, path: &Path, max: u64) -> Result<String, ZoneFileError> {
    let f = open(anchor, path)?;
    let mut s = String::new();
    f.take(max + 1)
        .read_to_string(&mut s)
        .map_err(|e| ZoneFileError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    if s.len() as u64 > max {
        return Err(refused(path, format!("is larger than {max} bytes")));
    }
    Ok(s)
}

/// A zone's artifact, copied where image-ci owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub path: PathBuf,
    pub sha1: String,
    pub size: u64,
    /// The first bytes (for magic checks).
    pub head: Vec<u8>,
}

/// Open `path` from the zone (see [`open`]) and copy it to `dest`,
/// computing its sha1 and size on the way.
pub fn stage(anchor: &Path, path: &Path, dest: &Path) -> Result<Staged, ZoneFileError> {
    let mut src = open(anchor, path)?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| ZoneFileError::Io { path: p, source: e }
    };
    if let Some(d) = dest.parent() {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let mut out = File::create(dest).map_err(io(dest))?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    let mut head = Vec::new();
    loop {
        let n = src.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        if head.len() < 16 {
            head.extend_from_slice(&buf[..n.min(16 - head.len())]);
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(dest))?;
        size += n as u64;
    }
    out.sync_all().map_err(io(dest))?;
    Ok(Staged {
        path: dest.to_path_buf(),
        sha1: crate::verify::hex(&h.finalize()),
        size,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_anywhere_on_the_way_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let zr = t.path().join("zoneroot");
        let out = zr.join("build/output-x");
        std::fs::create_dir_all(&out).unwrap();
        let host = t.path().join("host-secret");
        std::fs::write(&host, b"secret").unwrap();
        std::fs::write(out.join("ok.gz"), b"fine").unwrap();
        assert!(open(&zr, &out.join("ok.gz")).is_ok());
        // the file itself
        symlink(&host, out.join("a.gz")).unwrap();
        let e = open(&zr, &out.join("a.gz")).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // a directory on the way
        std::fs::create_dir_all(t.path().join("elsewhere")).unwrap();
        std::fs::write(t.path().join("elsewhere/b.gz"), b"x").unwrap();
        symlink(t.path().join("elsewhere"), zr.join("build/output-y")).unwrap();
        let e = open(&zr, &zr.join("build/output-y/b.gz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // not a regular file, '..', outside the anchor
        std::fs::create_dir(out.join("dir.gz")).unwrap();
        assert!(open(&zr, &out.join("dir.gz"))
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(open(&zr, &out.join("../../../host-secret")).is_err());
        assert!(open(&zr, &host)
            .unwrap_err()
            .to_string()
            .contains("is not inside"));
        // a fifo does not block and is refused
        assert!(std::process::Command::new("mkfifo")
            .arg(out.join("f.gz"))
            .status()
            .unwrap()
            .success());
        assert!(open(&zr, &out.join("f.gz"))
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
    }

    #[test]
    fn stage_copies_and_hashes() {
        let t = tempfile::tempdir().unwrap();
        let zr = t.path().join("z");
        std::fs::create_dir_all(zr.join("o")).unwrap();
        std::fs::write(zr.join("o/i.gz"), b"hello").unwrap();
        let s = stage(&zr, &zr.join("o/i.gz"), &t.path().join("stage/i.gz")).unwrap();
        assert_eq!(s.size, 5);
        assert_eq!(s.sha1, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert_eq!(std::fs::read(&s.path).unwrap(), b"hello");
        assert_eq!(
            read_text(&zr, &zr.join("o/i.gz"), 4)
                .unwrap_err()
                .to_string()
                .contains("larger"),
            true
        );
    }
}
