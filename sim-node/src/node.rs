//! A simulated node: a directory laid out like a SmartOS global zone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// This program when it is the `sim` binary, else a `sim` next to this
/// program (how the sim binary finds itself to run node tools). Libraries
/// that start node tools take the binary explicitly ([`tool_command_at`]).
pub fn sim_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sim"));
    if me.file_stem().is_some_and(|s| s == "sim") {
        return me;
    }
    me.parent()
        .map(|d| d.join("sim"))
        .unwrap_or_else(|| PathBuf::from("sim"))
}

/// A command that runs `tool` (vmadm, sysinfo, ...) on the node at `root`
/// with the `sim` binary at `bin`.
pub fn tool_command_at(bin: &Path, root: &Path, tool: &str) -> Command {
    let mut c = Command::new(bin);
    c.arg(tool).env("SIM_ROOT", root);
    c
}

/// [`tool_command_at`] with [`sim_bin`].
pub fn tool_command(root: &Path, tool: &str) -> Command {
    tool_command_at(&sim_bin(), root, tool)
}

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// What can go wrong with a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a sim node (no var/sim/node.json); create one with `sim node init`")]
    NotANode(PathBuf),
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
}

pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A physical NIC of the node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Nic {
    pub interface: String,
    pub mac: String,
    pub nic_tags: Vec<String>,
    pub ip4addr: String,
    pub netmask: String,
}

/// A running zone's kernel facts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Running {
    pub zoneid: u32,
    pub pid: u32,
    pub boot_timestamp: String,
}

/// What the node's "kernel" knows: identity, hardware, booted platform,
/// running zones. Kept in `var/sim/node.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeState {
    pub uuid: String,
    pub hostname: String,
    /// The platform stamp the node booted (`uname -v` is `joyent_<stamp>`).
    pub booted: String,
    pub boot_time: i64,
    pub cpu_count: u32,
    pub mib_of_memory: u64,
    pub zpool: String,
    pub zpool_size_gib: u64,
    pub datacenter: String,
    pub nics: Vec<Nic>,
    pub next_zoneid: u32,
    pub running: BTreeMap<String, Running>,
}

/// A node directory.
#[derive(Debug, Clone)]
pub struct Node {
    pub root: PathBuf,
}

/// Write a file atomically (`common::fs`).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), NodeError> {
    common::fs::write_atomic(path, data).map_err(io(path))
}

/// An exclusive lock on a file, released when dropped.
pub struct Lock(fs::File);

impl Lock {
    pub fn take(path: &Path) -> Result<Lock, NodeError> {
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(io(d))?;
        }
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.lock().map_err(io(path))?;
        Ok(Lock(f))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl Node {
    /// Open an existing node.
    pub fn open(root: &Path) -> Result<Node, NodeError> {
        let n = Node {
            root: root.to_path_buf(),
        };
        if !n.state_path().is_file() {
            return Err(NodeError::NotANode(root.to_path_buf()));
        }
        Ok(n)
    }

    /// The node named by `SIM_ROOT`.
    pub fn from_env() -> Result<Node, String> {
        let root = std::env::var_os("SIM_ROOT")
            .ok_or("SIM_ROOT is not set: point it at a node directory (see `sim node init`)")?;
        Node::open(Path::new(&root)).map_err(|e| e.to_string())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
    pub fn state_path(&self) -> PathBuf {
        self.path("var/sim/node.json")
    }
    /// The lock every state change of the node takes.
    pub fn lock(&self) -> Result<Lock, NodeError> {
        Lock::take(&self.path("var/sim/node.lock"))
    }

    pub fn state(&self) -> Result<NodeState, NodeError> {
        let p = self.state_path();
        let t = fs::read_to_string(&p).map_err(io(&p))?;
        serde_json::from_str(&t).map_err(|e| NodeError::Corrupt {
            path: p,
            msg: e.to_string(),
        })
    }

    /// Save the state (call with the node lock held).
    pub fn save_state(&self, s: &NodeState) -> Result<(), NodeError> {
        let mut t = serde_json::to_string_pretty(s).expect("state serializes");
        t.push('\n');
        write_atomic(&self.state_path(), t.as_bytes())
    }

    /// The boot pool's bootfs (`zones/boot`), holding `platform-<stamp>/`.
    pub fn bootfs(&self) -> PathBuf {
        self.path("zones/boot")
    }

    /// Brands the booted platform provides.
    pub fn brands(&self) -> Vec<String> {
        brand::check::installed_brands(&self.root)
    }

    /// Index entries (`name:state:zonepath:uuid`), global zone excluded.
    pub fn index(&self) -> Result<Vec<IndexEntry>, NodeError> {
        let p = self.path("etc/zones/index");
        let t = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(NodeError::Io { path: p, source: e }),
        };
        Ok(vmadm_ext::node::parse_index(&t))
    }

    /// Rewrite the index (call with the node lock held).
    pub fn save_index(&self, entries: &[IndexEntry]) -> Result<(), NodeError> {
        let mut t = String::from(INDEX_HEADER);
        t.push_str("global:installed:/\n");
        for e in entries {
            t.push_str(&vmadm_ext::node::render_index_line(e));
            t.push('\n');
        }
        write_atomic(&self.path("etc/zones/index"), t.as_bytes())
    }
}

const INDEX_HEADER: &str = "# DO NOT EDIT: this file is automatically generated by zoneadm(8)\n\
# and zonecfg(8).  Use those tools to change zone state.\n";

/// A line of `/etc/zones/index`; parsing and rendering are vmadm-ext's.
pub use vmadm_ext::node::IndexEntry;
