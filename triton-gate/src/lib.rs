//! triton-gate: the operator-only gate for the `builder` brand (RFD 184
//! phase 2). A CloudAPI-compatible front for CreateMachine, ListMachines,
//! GetMachine, ListPackages, GetPackage, ListImages and GetImage that
//!
//! - authenticates with HTTP Signature against the account's keys in mahi
//!   ([`httpsig`]);
//! - resolves the brand exactly as CloudAPI's `getBrand` does ([`brand`]),
//!   plus the builder rule: builder only for operator callers on operator
//!   accounts, only through a builder package and a zone-dataset image
//!   ([`policy`]);
//! - hides builder packages and images from everyone else;
//! - places builder zones only on compute nodes whose platform carries the
//!   brand (CNAPI allocate, then a check of the server's reported brands);
//! - creates the VM through VMAPI;
//! - writes one audit record per decision ([`audit`]).
//!
//! [`gate::Gate::handle`] is the whole pipeline on a plain request;
//! [`server`] serves it over HTTP; [`rollout::run_phase2`] is the phase 2
//! check `cargo xtask rollout` runs.

pub mod audit;
pub mod backend;
pub mod brand;
pub mod client;
pub mod error;
pub mod gate;
pub mod httpsig;
pub mod logging;
pub mod policy;
pub mod rollout;
pub mod server;

pub use error::CloudApiError;
pub use gate::{Gate, GateConfig};
