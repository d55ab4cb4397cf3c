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
    /// An installed zvol image's `image_size` (MiB), when it has one.
    fn image_size(&self, pool: &str, uuid: &str) -> Result<Option<u64>, String> {
        let _ = (pool, uuid);
        Ok(None)
    }
    /// Both questions validation asks (the pools; the type of the image
    /// `(pool, uuid)` when there is one), which do not depend on each other.
    fn pools_and_image_type(
        &self,
        image: Option<(&str, &str)>,
    ) -> (Vec<String>, Option<Result<String, String>>) {
        (self.pools(), image.map(|(p, u)| self.image_type(p, u)))
    }
}

impl<T: Host> NodeFacts for T {
    fn pools(&self) -> Vec<String> {
        host::zpool::pools(self).unwrap_or_default()
    }
    /// `zpool` and `imgadm` run at the same time: validation waits for the
    /// slower of the two, not their sum.
    fn pools_and_image_type(
        &self,
        image: Option<(&str, &str)>,
    ) -> (Vec<String>, Option<Result<String, String>>) {
        let Some((pool, uuid)) = image else {
            return (self.pools(), None);
        };
        std::thread::scope(|s| {
            let img = s.spawn(|| self.image_type(pool, uuid));
            let pools = self.pools();
            let img = img
                .join()
                .unwrap_or_else(|_| Err("imgadm query failed".to_string()));
            (pools, Some(img))
        })
    }
    fn image_type(&self, pool: &str, uuid: &str) -> Result<String, String> {
        host::imgadm::image_type(self, pool, uuid)
    }
    fn image_size(&self, pool: &str, uuid: &str) -> Result<Option<u64>, String> {
        let out = self
            .run(&host::imgadm::get(pool, uuid))
            .map_err(|e| e.message())?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("imgadm output is not JSON: {e}"))?;
        Ok(v.pointer("/manifest/image_size")
            .and_then(serde_json::Value::as_u64))
    }
}

/// The host vmadm-ext runs commands on: real processes, found by the
/// workspace's convention (`SMARTOS_TOOLS_DIR`, else PATH, else the
/// SmartOS paths).
pub fn system() -> SystemHost {
    SystemHost::new(Tools::from_env())
}
