//! Atomic file writes.

use std::io::Write as _;
use std::path::Path;

/// How [`write_atomic_with`] writes.
#[derive(Debug, Clone, Default)]
pub struct Atomic<'a> {
    /// Mode of the new file; default: the old file's, else the temp file's.
    pub mode: Option<u32>,
    /// A fixed temp path (beside the target) instead of a unique one, so
    /// a crash leaves at most that one file and the next write reuses it.
    pub temp: Option<&'a Path>,
    /// Create the parent directory when it is missing.
    pub create_dir: bool,
}

/// Write `data` to `path`: temp file in the same directory, fsync,
/// rename, fsync of the directory. The parent directory is created.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic_with(
        path,
        data,
        &Atomic {
            create_dir: true,
            ..Atomic::default()
        },
        &mut |_| {},
    )
}

/// [`write_atomic`] with options; `step` is told `"temp"` once the temp
/// file is on disk and `"renamed"` once it is in place (tests stop a
/// process there to show a crash leaves the old or the new file).
pub fn write_atomic_with(
    path: &Path,
    data: &[u8],
    opts: &Atomic<'_>,
    step: &mut dyn FnMut(&str),
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if opts.create_dir {
        std::fs::create_dir_all(dir)?;
    }
    let mode = opts.mode.or_else(|| {
        path.metadata()
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    });
    let finish = |f: &std::fs::File| -> std::io::Result<()> {
        if let Some(m) = mode {
            f.set_permissions(std::fs::Permissions::from_mode(m))?;
        }
        f.sync_all()
    };
    match opts.temp {
        Some(tmp) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(tmp)?;
            f.write_all(data)?;
            finish(&f)?;
            step("temp");
            std::fs::rename(tmp, path)?;
        }
        None => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".tmp")
                .tempfile_in(dir)?;
            tmp.write_all(data)?;
            finish(tmp.as_file())?;
            step("temp");
            tmp.persist(path).map_err(|e| e.error)?;
        }
    }
    step("renamed");
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn writes_replace_and_keep_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/f.json");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut steps = vec![];
        write_atomic_with(&p, b"two", &Atomic::default(), &mut |s| {
            steps.push(s.to_string())
        })
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(p.metadata().unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(steps, ["temp", "renamed"]);
        // nothing else left in the directory
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        let t = d.path().join("sub/f.json.tmp");
        let o = Atomic {
            mode: Some(0o444),
            temp: Some(&t),
            create_dir: false,
        };
        write_atomic_with(&p, b"three", &o, &mut |_| {}).unwrap();
        assert!(!t.exists());
        assert_eq!(p.metadata().unwrap().permissions().mode() & 0o777, 0o444);
    }
}
