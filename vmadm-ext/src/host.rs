//! What vmadm-ext asks the host, through the workspace's one host seam
//! (the `host` crate: commands built as data, run through a `Host`, output
//! parsed by pure functions).

pub use host::zoneadm::ZoneRecord;
pub use host::{Cmd, CmdError, Host, SystemHost, Tools};

/// What validation needs to know about the node: its pools and its
/// installed images. Every [`Host`] answers it by running `zpool` and
/// `imgadm`; a simulated node or a test may answer it directly.
pub trait NodeFacts {
    /// The imported pools (empty when the question fails, as in vmadm).
    fn pools(&self) -> Vec<String>;
    /// The type of an installed image, or why it cannot be had.
    fn image_type(&self, pool: &str, uuid: &str) -> Result<String, String>;
}

impl<T: Host> NodeFacts for T {
    fn pools(&self) -> Vec<String> {
        host::zpool::pools(self).unwrap_or_default()
    }
    fn image_type(&self, pool: &str, uuid: &str) -> Result<String, String> {
        host::imgadm::image_type(self, pool, uuid)
    }
}

/// The host vmadm-ext runs commands on: real processes, found by the
/// workspace's convention (`SMARTOS_TOOLS_DIR`, else PATH, else the
/// SmartOS paths).
pub fn system() -> SystemHost {
    SystemHost::new(Tools::from_env())
}
