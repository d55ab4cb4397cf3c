//! Project chores, as a library the `xtask` binary and its tests share:
//!
//! - [`platform`]: `cargo xtask platform` (brand staged, simulated platform image);
//! - [`deploy`]: `cargo xtask deploy` (the Triton pieces on the sim, left running);
//! - [`rollout`]: `cargo xtask rollout` (every phase, a module each, with a report);
//! - [`docs`]: `cargo xtask docs` (the book and the rendered manual pages);
//! - [`release`]: `cargo xtask release`;
//! - [`testcmd`]: `cargo xtask test`;
//! - [`util`]: cargo, directories and processes.

pub mod api;
pub mod deploy;
pub mod docs;
pub mod platform;
pub mod release;
pub mod rollout;
pub mod testcmd;
pub mod util;
