//! Helpers every crate of the workspace shares: [`fs`] (atomic writes),
//! [`uuid`], [`hex`], [`zoneindex`].

pub mod cli;
pub mod fs;
pub mod hex;
pub mod uuid;
pub mod zoneindex;
