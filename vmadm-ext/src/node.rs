//! A SmartOS node rooted at a directory: `/etc/zones/index`, the zone XML
//! files, `<zonepath>/config/*.json`, and (when `zoneadm` is on PATH)
//! `zoneadm list -p -c` for zone state. Turns them into the VM objects
//! `vmadm get` prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::host::{CmdError, Host, ZoneRecord};
use crate::load::{self, Fields, LoadError};

/// Why a node could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error("cannot parse zoneadm output: {0}")]
    Zoneadm(String),
    #[error("zone {zone}: cannot load {path}: {source}")]
    Load {
        zone: String,
        path: PathBuf,
        source: LoadError,
    },
    #[error("zone {zone}: {path} is not valid JSON: {msg}")]
    Json {
        zone: String,
        path: PathBuf,
        msg: String,
    },
    /// The message vmadm prints for an unknown zone.
    #[error("zoneadm: {0}: No such zone configured")]
    NoSuchZone(String),
    /// An index entry whose name or zonepath could lead outside the node's
    /// zone files (`../../etc/passwd`): never joined onto the root.
    #[error("zone {name}: {what} in /etc/zones/index is not valid")]
    BadIndexEntry { name: String, what: &'static str },
}

/// `/etc/zones/index` (the workspace's one parser, `common::zoneindex`).
pub use common::zoneindex::{parse as parse_index, render_line as render_index_line, IndexEntry};

/// `<zonepath>/lastexited` (`<secs.nsecs> <wait status>`) -> exit_status
/// and exit_timestamp, as vmload reads it.
pub fn parse_lastexited(text: &str) -> Option<(i64, String)> {
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() != 2 {
        return None;
    }
    let stat: i64 = f[1].parse().ok()?;
    let status = if stat == -1 {
        0
    } else if stat & 0xff == 0 {
        stat >> 8
    } else {
        -(stat & 0xff)
    };
    let secs: f64 = f[0].parse().ok()?;
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis((secs * 1000.0) as i64)?;
    Some((status, t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
}

/// Where zone state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateSource {
    /// `zoneadm list -p -c` when `zoneadm` is on PATH, else the index.
    Auto,
    /// `/etc/zones/index` only (no zone is running).
    Index,
    /// `zoneadm list -p -c`.
    Zoneadm,
}

/// What to load beyond the zone XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// `<zonepath>/config/{metadata,tags,routes}.json`.
    pub json: bool,
    /// `last_modified` (stat of the files vmadm watches).
    pub last_modified: bool,
}

impl LoadOptions {
    pub const FULL: LoadOptions = LoadOptions {
        json: true,
        last_modified: true,
    };
    pub const XML_ONLY: LoadOptions = LoadOptions {
        json: false,
        last_modified: false,
    };
}

/// The fields [`zfs_fields`] sets.
const ZFS_FIELDS: &[&str] = &[
    "quota",
    "zfs_root_compression",
    "zfs_root_recsize",
    "zfs_data_compression",
    "zfs_data_recsize",
];

/// The zfs-derived fields of `vmadm get`: quota (GiB) and the root and
/// delegated datasets' compression and recsize, from `zfs get`. A zfs that
/// fails leaves the fields out, as vmadm does for a dataset it cannot read.
fn zfs_fields(h: &dyn Host, vm: &mut Map<String, Value>, ds: &str) {
    let data = format!("{ds}/data");
    let has_data = vm
        .get("datasets")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|d| d.as_str() == Some(data.as_str())));
    let mut list = vec![ds];
    if has_data {
        list.push(&data);
    }
    let Ok(out) = h.run(&host::zfs::get(host::zfs::VM_PROPERTIES, &list)) else {
        return;
    };
    let props = host::zfs::parse_get(&out.text());
    if let Some(root) = props.get(ds) {
        if let Some(q) = root.get("quota").and_then(|q| q.parse::<u64>().ok()) {
            vm.insert("quota".into(), Value::from(q >> 30));
        }
        if let Some(c) = root.get("compression") {
            vm.insert("zfs_root_compression".into(), Value::from(c.clone()));
        }
        if let Some(r) = root.get("recsize").and_then(|r| r.parse::<u64>().ok()) {
            vm.insert("zfs_root_recsize".into(), Value::from(r));
        }
    }
    if let Some(d) = props.get(&data) {
        if let Some(c) = d.get("compression") {
            vm.insert("zfs_data_compression".into(), Value::from(c.clone()));
        }
        if let Some(r) = d.get("recsize").and_then(|r| r.parse::<u64>().ok()) {
            vm.insert("zfs_data_recsize".into(), Value::from(r));
        }
    }
}

/// A node rooted at a directory.
#[derive(Debug, Clone)]
pub struct Node {
    pub root: PathBuf,
    pub state_source: StateSource,
    /// Runs the node's commands (`zoneadm`, `zfs`).
    pub host: crate::host::SystemHost,
    sysinfo: std::sync::OnceLock<Option<Map<String, Value>>>,
    zfs: std::sync::OnceLock<bool>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a file with plain `read` calls: `read_to_end` of a bare reader
/// asks nothing else (`File`'s own asks the size and position first).
struct PlainRead(std::fs::File);

impl std::io::Read for PlainRead {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(b)
    }
}

/// A file's text, read into `buf` (kept from file to file), with the errors
/// of `read_to_string`.
fn read_text<'b>(path: &Path, buf: &'b mut Vec<u8>) -> std::io::Result<&'b str> {
    use std::io::Read as _;
    buf.clear();
    PlainRead(std::fs::File::open(path)?).read_to_end(buf)?;
    std::str::from_utf8(buf).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

fn iso(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The VMs that loaded and an error for each zone that did not.
pub type Partial = (Vec<Map<String, Value>>, Vec<NodeError>);

impl Node {
    pub fn new(root: impl Into<PathBuf>) -> Node {
        Node {
            root: root.into(),
            state_source: StateSource::Auto,
            host: crate::host::system(),
            sysinfo: std::sync::OnceLock::new(),
            zfs: std::sync::OnceLock::new(),
        }
    }

    /// An absolute node path (`/etc/zones/x.xml`) under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn zones_dir(&self) -> PathBuf {
        self.path("/etc/zones")
    }

    pub fn zone_xml_path(&self, zonename: &str) -> PathBuf {
        self.zones_dir().join(format!("{zonename}.xml"))
    }

    /// Check an index entry's name and zonepath before either is joined
    /// onto the root: the name must be a zone name and the zonepath an
    /// absolute path without `..`.
    pub fn check_record(rec: &ZoneRecord) -> Result<(), NodeError> {
        let bad = |what| NodeError::BadIndexEntry {
            name: crate::quote::printable(&rec.zonename, 64),
            what,
        };
        if !crate::quote::rule_ok(crate::quote::Rule::ZoneName, &rec.zonename) {
            return Err(bad("the zone name"));
        }
        let zp = Path::new(&rec.zonepath);
        if !rec.zonepath.is_empty()
            && (!zp.is_absolute()
                || zp
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir)))
        {
            return Err(bad("the zonepath"));
        }
        Ok(())
    }

    pub fn index(&self) -> Result<Vec<IndexEntry>, NodeError> {
        let p = self.zones_dir().join("index");
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(parse_index(&t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn use_zoneadm(&self) -> bool {
        match self.state_source {
            StateSource::Auto => self.host.tools.has("zoneadm"),
            StateSource::Index => false,
            StateSource::Zoneadm => true,
        }
    }

    /// The zones, as `zoneadm list -p -c` describes them. From the index,
    /// brand and ip-type are left empty (loading a VM takes them from its
    /// XML), so listing a node reads each zone file once.
    pub fn records(&self) -> Result<Vec<ZoneRecord>, NodeError> {
        if self.use_zoneadm() {
            let out = self.host.run(&host::zoneadm::list())?;
            return host::zoneadm::parse_list(&out.text()).map_err(NodeError::Zoneadm);
        }
        let mut v = Vec::new();
        for e in self.index()? {
            v.push(ZoneRecord {
                zoneid: "-".into(),
                uuid: if e.uuid.is_empty() {
                    e.name.clone()
                } else {
                    e.uuid.clone()
                },
                zonename: e.name,
                state: e.state,
                zonepath: e.zonepath,
                brand: String::new(),
                ip_type: String::new(),
                debugid: "-".into(),
            });
        }
        Ok(v)
    }

    /// The record of one zone, by uuid or zone name.
    pub fn record(&self, uuid: &str) -> Result<ZoneRecord, NodeError> {
        self.records()?
            .into_iter()
            .find(|r| r.uuid == uuid || r.zonename == uuid)
            .ok_or_else(|| NodeError::NoSuchZone(uuid.to_string()))
    }

    fn read_json(&self, zone: &str, path: &Path) -> Result<Option<Value>, NodeError> {
        match std::fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| NodeError::Json {
                    zone: zone.into(),
                    path: path.to_path_buf(),
                    msg: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(path)(e)),
        }
    }

    /// The VM object of one zone record.
    pub fn load_vm(
        &self,
        rec: &ZoneRecord,
        opts: LoadOptions,
    ) -> Result<Map<String, Value>, NodeError> {
        self.load_vm_fields(rec, opts, &Fields::all())
    }

    /// The `fields` of the VM object of one zone record, with the values
    /// [`Node::load_vm`] gives them (and its errors).
    pub fn load_vm_fields(
        &self,
        rec: &ZoneRecord,
        opts: LoadOptions,
        fields: &Fields,
    ) -> Result<Map<String, Value>, NodeError> {
        self.load_into(rec, opts, fields, &mut Vec::new())
    }

    /// [`Node::load_vm_fields`], reading the zone file into `buf`.
    fn load_into(
        &self,
        rec: &ZoneRecord,
        opts: LoadOptions,
        fields: &Fields,
        buf: &mut Vec<u8>,
    ) -> Result<Map<String, Value>, NodeError> {
        Self::check_record(rec)?;
        let xml_path = self.zone_xml_path(&rec.zonename);
        let text = read_text(&xml_path, buf).map_err(io(&xml_path))?;
        let mut vm =
            load::vmobj_fields_from_xml(text, fields).map_err(|source| NodeError::Load {
                zone: rec.uuid.clone(),
                path: xml_path.clone(),
                source,
            })?;
        let has = |k: &str| fields.has(k);
        if !rec.brand.is_empty() {
            vm.insert("brand".into(), Value::from(rec.brand.clone()));
        }
        if has("uuid") {
            vm.insert("uuid".into(), Value::from(rec.uuid.clone()));
        }
        if has("zone_state") {
            vm.insert("zone_state".into(), Value::from(rec.state.clone()));
        }
        if has("zonename") {
            vm.insert("zonename".into(), Value::from(rec.zonename.clone()));
        }
        if has("zonepath") {
            vm.insert("zonepath".into(), Value::from(rec.zonepath.clone()));
        }
        if has("zoneid") && rec.zoneid != "-" && !rec.zoneid.is_empty() {
            vm.insert(
                "zoneid".into(),
                rec.zoneid
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(rec.zoneid.clone())),
            );
        }
        let zonepath = || self.path(&rec.zonepath);
        if opts.last_modified && has("last_modified") {
            let zonepath = zonepath();
            let files = [
                zonepath.join("config/metadata.json"),
                zonepath.join("config/routes.json"),
                zonepath.join("config/tags.json"),
                zonepath.join("lastexited"),
                xml_path.clone(),
            ];
            let newest = files
                .iter()
                .filter_map(|f| {
                    f.metadata()
                        .ok()
                        .filter(|m| m.is_file())
                        .and_then(|m| m.modified().ok())
                })
                .max();
            if let Some(t) = newest {
                vm.insert("last_modified".into(), Value::from(iso(t)));
            }
        }
        if opts.last_modified
            && rec.state != "running"
            && (has("exit_status") || has("exit_timestamp"))
        {
            if let Ok(t) = std::fs::read_to_string(zonepath().join("lastexited")) {
                if let Some((status, ts)) = parse_lastexited(&t) {
                    vm.insert("exit_status".into(), Value::from(status));
                    vm.insert("exit_timestamp".into(), Value::from(ts));
                }
            }
        }
        if has("resolvers") && !vm.contains_key("resolvers") {
            vm.insert("resolvers".into(), Value::Array(vec![]));
        }
        if has("firewall_enabled") && !vm.contains_key("firewall_enabled") {
            vm.insert("firewall_enabled".into(), Value::Bool(false));
        }
        let sysinfo_fields = [
            ("UUID", "server_uuid"),
            ("Datacenter Name", "datacenter_name"),
            ("Live Image", "platform_buildstamp"),
            ("Headnode ID", "headnode_id"),
        ];
        if sysinfo_fields.iter().any(|(_, f)| has(f)) {
            if let Some(si) = self.sysinfo() {
                for (k, field) in sysinfo_fields {
                    if let Some(v) = si.get(k).filter(|_| has(field)) {
                        vm.insert(field.into(), v.clone());
                    }
                }
            }
        }
        if has("state") {
            if !vm.contains_key("state") {
                let s = if rec.state == "installed" {
                    "stopped"
                } else {
                    rec.state.as_str()
                };
                vm.insert("state".into(), Value::from(s));
            }
            if vm.get("failed").is_some_and(crate::jsval::truthy) {
                vm.insert("state".into(), Value::from("failed"));
            }
        }
        if opts.json {
            // every file is read, so a broken one is reported whatever is listed
            let cfg = zonepath().join("config");
            let md = self.read_json(&rec.uuid, &cfg.join("metadata.json"))?;
            for k in ["customer_metadata", "internal_metadata"] {
                if has(k) {
                    let v = md
                        .as_ref()
                        .and_then(|m| m.get(k))
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new()));
                    vm.insert(k.into(), v);
                }
            }
            for (k, f) in [("tags", "tags.json"), ("routes", "routes.json")] {
                let v = self.read_json(&rec.uuid, &cfg.join(f))?;
                if has(k) {
                    vm.insert(k.into(), v.unwrap_or_else(|| Value::Object(Map::new())));
                }
            }
        }
        // The zone root dataset is where vmadm finds it mounted; without zfs
        // we take the zonepath's dataset (`/zones/<uuid>` -> `zones/<uuid>`).
        let ds = rec.zonepath.trim_start_matches('/');
        if !ds.is_empty() {
            if has("zpool") {
                vm.insert(
                    "zpool".into(),
                    Value::from(ds.split('/').next().unwrap_or_default()),
                );
            }
            if has("zfs_filesystem") {
                vm.insert("zfs_filesystem".into(), Value::from(ds));
            }
            let zfs_wanted = ZFS_FIELDS.iter().any(|f| has(f));
            if opts.json && zfs_wanted && self.has_zfs() {
                zfs_fields(&self.host, &mut vm, ds);
            }
        }
        Ok(vm)
    }

    /// `/tmp/.sysinfo.json`, read once.
    fn sysinfo(&self) -> Option<&Map<String, Value>> {
        self.sysinfo
            .get_or_init(|| {
                match self
                    .read_json("-", &self.path("/tmp/.sysinfo.json"))
                    .ok()
                    .flatten()
                {
                    Some(Value::Object(o)) => Some(o),
                    _ => None,
                }
            })
            .as_ref()
    }

    /// Is `zfs` there to be run (asked once)?
    fn has_zfs(&self) -> bool {
        *self.zfs.get_or_init(|| self.host.tools.has("zfs"))
    }

    /// Every VM on the node, in record order (loaded on all CPUs). The
    /// first zone that cannot be loaded fails the whole call; see
    /// [`Node::vms_partial`] for listings that go on.
    pub fn vms(&self, opts: LoadOptions) -> Result<Vec<Map<String, Value>>, NodeError> {
        let (vms, mut bad) = self.vms_partial(opts)?;
        match bad.is_empty() {
            true => Ok(vms),
            false => Err(bad.remove(0)),
        }
    }

    /// Every VM that loads, in record order, and an error for each zone
    /// that does not (an unreadable or hostile zone file, a bad index
    /// entry). Only a failure to read the zone list itself is an `Err`.
    pub fn vms_partial(&self, opts: LoadOptions) -> Result<Partial, NodeError> {
        let mut vms = Vec::new();
        let mut bad = Vec::new();
        self.each_vm(
            opts,
            &Fields::all(),
            |vm| vm,
            |r| -> Result<(), NodeError> {
                match r {
                    Ok(vm) => vms.push(vm),
                    Err(e) => bad.push(e),
                }
                Ok(())
            },
        )?;
        Ok((vms, bad))
    }

    /// Load the `fields` of every zone's VM object on up to eight threads,
    /// turn each into a `T` with `convert` (on those threads), and hand the
    /// results to `each` in record order as they are ready, so only a few
    /// loaded objects are held at a time. A zone that cannot be loaded is
    /// an `Err` for `each` (and a warning in the log); failing to read the
    /// zone list, or an error from `each`, ends the walk.
    pub fn each_vm<T: Send, E: From<NodeError>>(
        &self,
        opts: LoadOptions,
        fields: &Fields,
        convert: impl Fn(Map<String, Value>) -> T + Sync,
        mut each: impl FnMut(Result<T, NodeError>) -> Result<(), E>,
    ) -> Result<(), E> {
        const CHUNK: usize = 64;
        let recs = self.records()?;
        let load = |c: &[ZoneRecord], buf: &mut Vec<u8>| -> Vec<Result<T, NodeError>> {
            c.iter()
                .map(|r| {
                    let res = self.load_into(r, opts, fields, buf).map(&convert);
                    if let Err(e) = &res {
                        tracing::warn!(error = %e, "zone left out of the listing");
                    }
                    res
                })
                .collect()
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        if threads < 2 || recs.len() < 2 * CHUNK {
            let mut buf = Vec::new();
            for r in load(&recs, &mut buf) {
                each(r)?;
            }
            return Ok(());
        }
        let chunks: Vec<&[ZoneRecord]> = recs.chunks(CHUNK).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<(usize, Vec<Result<T, NodeError>>)>(threads * 2);
            for _ in 0..threads {
                let tx = tx.clone();
                let (chunks, next, stop, load) = (&chunks, &next, &stop, &load);
                s.spawn(move || {
                    let mut buf = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(c) = chunks.get(i) else { break };
                        if tx.send((i, load(c, &mut buf))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut pending: BTreeMap<usize, Vec<Result<T, NodeError>>> = BTreeMap::new();
            let mut want = 0;
            let mut walk = || -> Result<(), E> {
                for (i, results) in rx.iter() {
                    pending.insert(i, results);
                    while let Some(results) = pending.remove(&want) {
                        want += 1;
                        for r in results {
                            each(r)?;
                        }
                    }
                }
                Ok(())
            };
            let r = walk();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            // workers blocked on a full channel go on once it is dropped
            drop(rx);
            r
        })
    }

    /// `vmadm get <uuid>`.
    pub fn get(&self, uuid: &str) -> Result<Map<String, Value>, NodeError> {
        let rec = self.record(uuid)?;
        self.load_vm(&rec, LoadOptions::FULL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lastexited() {
        assert_eq!(
            parse_lastexited("1700000000.5 256\n"),
            Some((1, "2023-11-14T22:13:20.500Z".into()))
        );
        assert_eq!(
            parse_lastexited("1700000000 -1"),
            Some((0, "2023-11-14T22:13:20.000Z".into()))
        );
        assert_eq!(parse_lastexited("1700000000 9").map(|x| x.0), Some(-9));
        assert_eq!(parse_lastexited("garbage"), None);
    }

    #[test]
    fn index_lines() {
        let t = "# DO NOT EDIT\nglobal:installed:/\nz1:installed:/zones/z1:u1\nz2:configured:\"/zo:nes/z2\":\nz3:incomplete:/zones/z3\n";
        let v = parse_index(t);
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            IndexEntry {
                name: "z1".into(),
                state: "installed".into(),
                zonepath: "/zones/z1".into(),
                uuid: "u1".into()
            }
        );
        assert_eq!(v[1].zonepath, "/zo:nes/z2");
        assert_eq!(v[1].uuid, "");
        assert_eq!(v[2].uuid, "");
        assert_eq!(render_index_line(&v[1]), "z2:configured:\"/zo:nes/z2\":");
    }
}
