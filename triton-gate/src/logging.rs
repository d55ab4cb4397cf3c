//! Bunyan JSON logs: the workspace's [`bunyan_log`] setup.

pub use bunyan_log::init;
