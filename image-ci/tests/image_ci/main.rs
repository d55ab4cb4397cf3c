//! image-ci's integration tests, one binary: the qemu boot test on small
//! real images, the pipeline on a sim node with a builder zone and sim
//! IMGAPI, a real Debian 12 image built locally, booted and shipped, the
//! manifest rules against npm imgmanifest, and the CLI's documentation.

mod boot;
mod cli;
mod common;
mod debian;
mod imgmanifest;
mod pipeline;
