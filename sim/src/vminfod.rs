//! vminfod's HTTP API for a simulated node: `GET /ping`, `GET /vms`,
//! `GET /vms/<uuid>`, with VM objects in the `vmadm get` shape.

use crate::node::Node;

/// Serve until the process is stopped.
pub fn serve_blocking(node: Node, listen: &str) -> anyhow::Result<()> {
    let _ = (node, listen);
    anyhow::bail!("vminfod is not implemented on the simulated node yet")
}
