//! image-ci's integration tests, one binary: the pipeline on a sim node
//! with a builder zone and sim IMGAPI, the manifest rules against npm
//! imgmanifest, and the CLI's documentation.

mod cli;
mod common;
mod imgmanifest;
mod pipeline;
