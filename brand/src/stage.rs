//! Staging a brand into a platform proto tree.
//!
//! SmartOS installs brand files read-only (0444) in a 0755 directory owned
//! by root:bin, and lists every path in the platform manifest with lines of
//! the form `<type> <path> <mode> <owner> <group>`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::brands::BrandFiles;

pub const DIR_MODE: u32 = 0o755;
pub const FILE_MODE: u32 = 0o444;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct StageError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> StageError + '_ {
    move |source| StageError {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `text` to `path` with `mode`, atomically (`common::fs`).
pub fn write_atomic(path: &Path, text: &[u8], mode: u32) -> Result<(), StageError> {
    let opts = common::fs::Atomic {
        mode: Some(mode),
        ..Default::default()
    };
    common::fs::write_atomic_with(path, text, &opts, &mut |_| {}).map_err(err(path))
}

/// The manifest lines for a brand's directory and files.
pub fn manifest_lines(brand: &BrandFiles) -> Vec<String> {
    let dir = format!("{}/{}", crate::BRAND_DIR, brand.name);
    let mut v = vec![format!("d {dir} {DIR_MODE:04o} root bin")];
    for (name, _) in brand.files() {
        v.push(format!("f {dir}/{name} {FILE_MODE:04o} root bin"));
    }
    v
}

/// Write the brand's files under `dest` and return the manifest lines.
pub fn stage(brand: &BrandFiles, dest: &Path) -> Result<Vec<String>, StageError> {
    let dir = dest.join(crate::BRAND_DIR).join(&brand.name);
    fs::create_dir_all(&dir).map_err(err(&dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(DIR_MODE)).map_err(err(&dir))?;
    for (name, text) in brand.files() {
        write_atomic(&dir.join(name), text.as_bytes(), FILE_MODE)?;
    }
    Ok(manifest_lines(brand))
}
