//! Typed Triton objects, shared by clients and by servers that speak the
//! same wire formats (the sim, the gate).
//!
//! Rules for every type here:
//! - unknown members are kept in `extra` (`#[serde(flatten)]`), so reading
//!   and writing an object loses nothing;
//! - optional members are `Option` and are left out when `None`; a JSON
//!   `null` on a typed member reads as `None` (and is then left out), while
//!   a `null` on an unknown member is kept;
//! - numbers and booleans are [`Lenient`](crate::Lenient): their string
//!   spelling is accepted and written back as it came;
//! - brands, states, image types are `String`s: values this crate does not
//!   know must survive.

pub mod account;
pub mod cloudapi;
pub mod image;
pub mod job;
pub mod package;
pub mod server;
pub mod vm;

pub use account::{group_cn, Account, AuthInfo, Key, User, OPERATORS_DN};
pub use cloudapi::{CloudAccount, CloudImage, CloudPackage, CreateMachine, Machine};
pub use image::{Channel, Image, ImageFile, ImageRequirements};
pub use job::{Job, JobResult};
pub use package::{DiskSize, Package, PackageDisk};
pub use server::{AllocateRequest, Allocation, Server, Sysinfo};
pub use vm::{CreateVm, Disk, JobRef, NetworkObject, NetworkSpec, Nic, Vm, HVM_BRANDS};
