//! image-ci: phase 3 of the builder-brand rollout. Images from
//! triton-cloud-images are built on a cadence in builder zones, verified,
//! boot-tested, and shipped to IMGAPI only after they pass; unverified or
//! failed images are never shipped.
//!
//! Pure parts (no processes, no network): [`checkout`] (imgconfigs.json,
//! manifest.in), [`artifact`] (naming, filling manifest.in as build_all.sh
//! does), [`buildlog`] (which targets failed), [`imgmanifest`](imgmanifest)
//! (validateDcManifest), [`verify`], [`cadence`], [`history`], [`report`].
//! Effects: [`commands`] (vmadm-ext check, zlogin build: build / run /
//! parse), [`build`] (the `Build` trait: `node` = build_all.sh in a
//! builder zone, `local` = [`local`] Debian images with mmdebstrap),
//! [`boot`] (the `BootTest` trait: [`qemu`] on Linux, [`bhyve`] on
//! illumos), [`imgapi`] (HTTP), [`cleanup`] (VMs, mounts and temporary
//! files undone, also on SIGINT/SIGTERM), and [`pipeline::run`] tying them
//! together.

pub mod artifact;
pub mod bhyve;
pub mod boot;
pub mod build;
pub mod buildlog;
pub mod cadence;
pub mod checkout;
pub mod cleanup;
pub mod commands;
pub mod error;
pub mod history;
pub mod imgapi;
pub mod local;
pub mod pipeline;
pub mod progress;
pub mod qemu;
pub mod report;
pub mod standin;
pub mod verify;
pub mod zonefile;

pub use error::{Error, Result};

mod rules_tests;
