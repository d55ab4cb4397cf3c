//! triton-gate: the operator-only gate for the `builder` brand (RFD 184
//! phase 2). A CloudAPI-compatible service that decides every request that
//! can touch builder:
//!
//! - authenticates with HTTP Signature against the account's (or
//!   sub-user's) keys in mahi ([`httpsig`], from `triton-api`);
//! - resolves the brand exactly as CloudAPI's `getBrand` does ([`brand`]),
//!   plus the builder rule: builder only for operator callers on operator
//!   accounts, only through a builder package and a zone-dataset image
//!   ([`policy`]);
//! - hides builder packages, images and machines from everyone else;
//! - places builder zones only on compute nodes that pass the builder
//!   placement rules (platform floor, traits, reported brands) and checks
//!   the server CNAPI picked ([`placement`]);
//! - makes builder machines able to build (limit_priv, delegated dataset,
//!   a primary nic that allows IP spoofing) through VMAPI;
//! - writes one bounded audit record per decision and refusal ([`audit`]);
//! - keeps PAPI's and IMGAPI's answers to its reads for a few seconds
//!   ([`cache`]), never keys, accounts or operator membership.
//!
//! [`server::router`] serves it with axum (subset mode, or in front of a
//! real CloudAPI with [`front`]); [`decide`] explains a decision offline;
//! [`scan`] looks for builder exposure on a running Triton;
//! [`rollout::run_phase2`] is the phase 2 check `cargo xtask rollout` runs.

pub mod audit;
pub mod brand;
pub mod cache;
pub mod decide;
pub mod error;
pub mod front;
pub mod gate;
pub mod httpsig;
pub mod logging;
pub mod placement;
pub mod policy;
pub mod rollout;
pub mod scan;
pub mod server;

pub use error::CloudApiError;
pub use gate::{Gate, GateConfig};
