//! A brand-tolerant SmartOS VM model and a small web UI that never breaks on
//! a brand it does not know.
//!
//! - [`brands`]: [`brands::Brand`] keeps unknown names; brand facts are one table.
//! - [`vm`]: the VM model and a list decoder that never fails as a whole.
//! - [`provision`]: installed brands under a root, provisioning choices, payloads.
//! - [`tools`]: the node's commands (build, parse, run).
//! - [`vminfod`]: vminfod's HTTP API.
//! - [`auth`], [`logging`], [`web`]: login, bunyan logs, the UI itself.

pub mod auth;
pub mod brands;
pub mod logging;
pub mod provision;
pub mod tools;
pub mod vm;
pub mod vminfod;
pub mod web;

pub use brands::{brands, Brand, ImageType, Kind};
pub use vm::{decode_list, Vm, VmEntry};
