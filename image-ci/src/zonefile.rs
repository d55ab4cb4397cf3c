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
    stage_inspect(anchor, path, dest, |_| ()).map(|(s, ())| s)
}

/// The copy as it is read: every byte handed to the reader is hashed and
/// written to the staged file first.
struct Tee<'a> {
    src: File,
    out: std::io::BufWriter<File>,
    hash: Sha1,
    size: u64,
    head: Vec<u8>,
    dest: &'a Path,
    path: &'a Path,
    /// The first error of the copy itself (not of whoever reads).
    failed: Option<ZoneFileError>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failed.is_some() {
            return Err(std::io::Error::other("the staged copy failed"));
        }
        let n = match self.src.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.failed = Some(ZoneFileError::Io {
                    path: self.path.to_path_buf(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                });
                return Err(e);
            }
        };
        if n == 0 {
            return Ok(0);
        }
        if self.head.len() < 16 {
            let k = n.min(16 - self.head.len());
            self.head.extend_from_slice(&buf[..k]);
        }
        self.hash.update(&buf[..n]);
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.failed = Some(ZoneFileError::Io {
                path: self.dest.to_path_buf(),
                source: e,
            });
            return Err(std::io::Error::other(msg));
        }
        self.size += n as u64;
        Ok(n)
    }
}

/// [`stage`], and in the same pass hand the bytes to `inspect` (which may
/// read as much or as little as it likes; the rest is copied after it
/// returns). One read of the zone's file gives the staged copy, its sha1
/// and size, and whatever `inspect` makes of the content.
pub fn stage_inspect<T>(
    anchor: &Path,
    path: &Path,
    dest: &Path,
    inspect: impl FnOnce(&mut dyn Read) -> T,
) -> Result<(Staged, T), ZoneFileError> {
    let src = open(anchor, path)?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| ZoneFileError::Io { path: p, source: e }
    };
    if let Some(d) = dest.parent() {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let out = File::create(dest).map_err(io(dest))?;
    let mut tee = Tee {
        src,
        out: std::io::BufWriter::with_capacity(1 << 20, out),
        hash: Sha1::new(),
        size: 0,
        head: Vec::new(),
        dest,
        path,
        failed: None,
    };
    let t = inspect(&mut tee);
    let mut buf = vec![0u8; 1 << 16];
    while tee.failed.is_none() {
        match tee.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) if tee.failed.is_some() => break,
            Err(e) => return Err(io(path)(e)),
        }
    }
    if let Some(e) = tee.failed.take() {
        let _ = std::fs::remove_file(dest);
        return Err(e);
    }
    let out = tee.out.into_inner().map_err(|e| ZoneFileError::Io {
        path: dest.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    out.sync_all().map_err(io(dest))?;
    Ok((
        Staged {
            path: dest.to_path_buf(),
            sha1: common::hex::encode(&tee.hash.finalize()),
            size: tee.size,
            head: tee.head,
        },
        t,
    ))
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
        // inspect reads a part; the copy and hash still cover the whole file
        let (s2, first) =
            stage_inspect(&zr, &zr.join("o/i.gz"), &t.path().join("stage/j.gz"), |r| {
                let mut b = [0u8; 2];
                r.read_exact(&mut b).unwrap();
                b
            })
            .unwrap();
        assert_eq!(&first, b"he");
        assert_eq!((s2.size, &s2.sha1), (5, &s.sha1));
        assert_eq!(std::fs::read(&s2.path).unwrap(), b"hello");
        assert_eq!(s2.head, b"hello");
        assert!(read_text(&zr, &zr.join("o/i.gz"), 4)
            .unwrap_err()
            .to_string()
            .contains("larger"));
    }
}
