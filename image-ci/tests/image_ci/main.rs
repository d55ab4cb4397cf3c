//! image-ci's integration tests, one binary: the qemu boot test on small
//! real images, the pipeline on a sim node with a builder zone and sim
//! IMGAPI, zones made for each run (on a sim node, and through triton-gate
//! over sim Triton), the service (schedule, status endpoint, SIGTERM,
//! restart, bad configuration), streaming build logs, shipping that
//! resumes after SIGKILL, a real Debian 12 image built locally, booted and
//! shipped, the manifest rules against npm imgmanifest, the SMF manifest,
//! the systemd unit and the CLI's documentation.
//!
//! The sim, vmadm-ext and zvol-stream binaries come from `testkit::bin`
//! (`cargo xtask test` builds them once; by hand: `cargo build --bins -p
//! sim -p vmadm-ext -p zvol-stream`).

mod boot;
mod cli;
mod common;
mod debian;
mod imgmanifest;
mod pipeline;
mod resume;
mod service;
mod zones;
