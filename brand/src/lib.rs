//! The illumos brand files as typed data, the zone XML model, and the
//! device grant semantics of zoneadmd.
//!
//! - [`xml`]: a lossless XML tree (zone files survive a read and a write).
//! - [`config`], [`platform`], [`zone`]: typed views of brand.dtd.1,
//!   zone_platform.dtd.1 and zonecfg.dtd.1 documents.
//! - [`registry`]: the one brand registry (names, same_as, HVM, image types,
//!   titles, stock platform membership) every crate reads.
//! - [`brands`]: joyent, joyent-minimal, bhyve and builder built from the model.
//! - [`devices`]: which /dev entries a zone sees.
//! - [`stage`]: writing a brand into a platform proto tree, with manifest lines.
//! - [`check`]: is a brand installed and consistent under a root.

pub mod brands;
pub mod check;
pub mod config;
pub mod devices;
pub mod platform;
pub mod registry;
pub mod stage;
pub mod xml;
pub mod zone;

pub use brands::BrandFiles;
pub use config::BrandConfig;
pub use platform::Platform;
pub use zone::ZoneConfig;

/// Where brands live on an illumos system, relative to the root.
pub const BRAND_DIR: &str = "usr/lib/brand";
