//! The embedded default, as one crate for the `sim` binary and its users:
//! the simulated node ([`sim_node`], re-exported here) and the simulated
//! Triton APIs ([`triton`], the `sim-triton` crate).

pub use sim_node::*;
pub use sim_triton as triton;
