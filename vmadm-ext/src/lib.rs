//! vmadm's knowledge of the `builder` brand, as a library.
//!
//! - [`table`]: vmadm's property table, compiled in as static data
//!   (builder = joyent); [`proptable`] reads its JSON form.
//! - [`validate`]: `vmadm validate` (order of checks, type rules, result).
//! - [`create`]: create planning: normalize a payload, render the zonecfg
//!   text vmadm sends and the steps that follow.
//! - [`load`]: zone XML -> VM object fields (vmload-xml).
//! - [`node`]: a SmartOS node rooted at a directory: index, zone XML,
//!   `zoneadm list`, config JSON -> full VM objects.
//! - [`list`]: `vmadm list` / `lookup` filters, columns, sorting.
//! - [`preflight`]: which zones break on a platform image.
//! - [`rescue`]: builder -> joyent rescue and its exact undo.
//! - [`check`]: can a zone run bhyve image builds.
//! - [`host`]: host commands (build / run / parse).
//! - [`quote`]: the one way values become zonecfg text or shell words, and
//!   the per-property rules validation applies first.

pub mod check;
pub mod create;
pub mod host;
pub mod jsval;
pub mod list;
pub mod load;
pub mod node;
pub mod preflight;
pub mod proptable;
pub mod quote;
pub mod rescue;
pub mod table;
pub mod validate;

pub use table::Table;

#[cfg(test)]
mod injection_tests;
