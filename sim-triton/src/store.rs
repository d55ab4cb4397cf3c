//! State of the simulated Triton services, kept as JSON files in the data
//! directory. Every change takes the store lock (a mutex in this process and
//! an exclusive `flock` on `DIR/.lock`, so a CLI in another process can change
//! state while the servers run) and is written atomically: a temporary file in
//! the same directory, fsync, rename over the old file, fsync of the
//! directory.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// The data directory of a running (or stopped) `sim triton`.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    inproc: Arc<Mutex<()>>,
}

/// Collections are JSON objects keyed by UUID, in insertion order.
pub type Coll = Map<String, Value>;

/// Collection names (file `DIR/<name>.json`).
pub const PACKAGES: &str = "papi/packages";
pub const VMS: &str = "vmapi/vms";
pub const JOBS: &str = "vmapi/jobs";
pub const SERVERS: &str = "cnapi/servers";
pub const ACCOUNTS: &str = "mahi/accounts";
pub const USERS: &str = "mahi/users";
pub const IMAGE_CHANNELS: &str = "imgapi/channels";

impl Store {
    /// Open (creating) the data directory.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        fs::create_dir_all(dir)?;
        for sub in [
            "papi",
            "vmapi",
            "cnapi",
            "mahi",
            "imgapi/manifests",
            "imgapi/files",
            "log",
        ] {
            fs::create_dir_all(dir.join(sub))?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            inproc: Arc::new(Mutex::new(())),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Run `f` holding the store lock.
    pub fn locked<T>(&self, f: impl FnOnce(&Store) -> T) -> anyhow::Result<T> {
        let _g = self.inproc.lock().unwrap_or_else(|p| p.into_inner());
        let lockf = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        let mut lock = fd_lock::RwLock::new(lockf);
        let _fl = lock.write()?;
        Ok(f(self))
    }

    fn coll_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Read a collection (callers hold the lock, or accept a snapshot).
    pub fn load(&self, name: &str) -> Coll {
        read_json(&self.coll_path(name))
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    }

    pub fn save(&self, name: &str, c: &Coll) -> anyhow::Result<()> {
        write_json(&self.coll_path(name), &Value::Object(c.clone()))
    }

    /// Load, change and save one collection under the lock.
    pub fn update<T>(&self, name: &str, f: impl FnOnce(&mut Coll) -> T) -> anyhow::Result<T> {
        self.locked(|s| {
            let mut c = s.load(name);
            let out = f(&mut c);
            s.save(name, &c).map(|_| out)
        })?
    }

    /// A snapshot of one collection, read under the lock.
    pub fn read(&self, name: &str) -> anyhow::Result<Coll> {
        self.locked(|s| s.load(name))
    }

    /// Image manifests are one file each: `imgapi/manifests/<uuid>.json`.
    pub fn manifest_path(&self, uuid: &str) -> PathBuf {
        self.dir
            .join("imgapi/manifests")
            .join(format!("{uuid}.json"))
    }

    pub fn image_file_path(&self, uuid: &str) -> PathBuf {
        self.dir.join("imgapi/files").join(uuid).join("file0")
    }

    pub fn load_manifest(&self, uuid: &str) -> Option<Value> {
        if !super::is_uuid(uuid) {
            return None;
        }
        read_json(&self.manifest_path(uuid))
    }

    pub fn save_manifest(&self, m: &Value) -> anyhow::Result<()> {
        let uuid = m["uuid"].as_str().unwrap_or_default();
        anyhow::ensure!(super::is_uuid(uuid), "manifest without a uuid");
        write_json(&self.manifest_path(uuid), m)
    }

    /// All stored manifests, sorted by (published_at, uuid).
    pub fn manifests(&self) -> Vec<Value> {
        let mut v: Vec<Value> = fs::read_dir(self.dir.join("imgapi/manifests"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| read_json(&e.path()))
            .collect();
        v.sort_by(|a, b| {
            let k = |m: &Value| {
                (
                    m["published_at"].as_str().unwrap_or("").to_string(),
                    m["uuid"].as_str().unwrap_or("").to_string(),
                )
            };
            k(a).cmp(&k(b))
        });
        v
    }
}

pub fn read_json(p: &Path) -> Option<Value> {
    let text = fs::read_to_string(p).ok()?;
    serde_json::from_str(&text).ok()
}

/// Atomic JSON write: temp file, fsync, rename, fsync directory.
pub fn write_json(p: &Path, v: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    write_atomic(p, &text)
}

pub fn write_atomic(p: &Path, data: &[u8]) -> anyhow::Result<()> {
    common::fs::write_atomic(p, data).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_persists_and_survives_reopen() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        s.update(PACKAGES, |c| c.insert("a".into(), Value::from(1)))
            .unwrap();
        let s2 = Store::open(t.path()).unwrap();
        assert_eq!(s2.read(PACKAGES).unwrap()["a"], 1);
        // no temp files left behind
        let left: Vec<_> = fs::read_dir(t.path().join("papi"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }
}
