//! image-ci: phase 3 of the builder-brand rollout. Images from
//! triton-cloud-images are built on a schedule in builder zones made for
//! each run, verified, boot-tested, and shipped to IMGAPI only after they
//! pass; unverified or failed images are never shipped, and nothing is
//! shipped twice.
//!
//! Pure parts (no processes, no network): [`checkout`] (imgconfigs.json,
//! manifest.in), [`artifact`] (naming, filling manifest.in as build_all.sh
//! does), [`buildlog`] (which targets failed), [`imgmanifest`](imgmanifest)
//! (validateDcManifest), [`verify`], [`cadence`], [`history`], [`report`],
//! [`config`] (the TOML file, cron schedules), [`zone`]'s payloads.
//! Effects: [`commands`] (vmadm-ext check, zlogin build, on the `host`
//! seam), [`zone`] (zones made for a run: vmadm create, wait, delete;
//! provisioning), [`build`] (the `Build` trait: `node` = build_all.sh in
//! a builder zone, `triton` = a builder machine made through triton-gate,
//! `local` = [`local`] Debian images with mmdebstrap), [`stream`] (build
//! output streamed line by line, cancellation), [`boot`] (the `BootTest`
//! trait: [`qemu`] on Linux, [`bhyve`] on illumos), [`ship`] (IMGAPI
//! through triton-api: resumable, never twice), [`state`] (SQLite: runs,
//! stages, history, artifacts, ship progress), [`stages`] (timed stages),
//! [`cleanup`] (VMs, mounts and temporary files undone, also on signals),
//! [`pipeline::run`] tying them together, and [`serve`] (the scheduled
//! service and its status endpoint).

pub mod artifact;
pub mod bhyve;
pub mod boot;
pub mod build;
pub mod buildlog;
pub mod cadence;
pub mod checkout;
pub mod cleanup;
pub mod commands;
pub mod config;
pub mod error;
pub mod history;
pub mod local;
pub mod pipeline;
pub mod progress;
pub mod qemu;
pub mod report;
pub mod serve;
pub mod ship;
pub mod stages;
pub mod standin;
pub mod state;
pub mod stream;
pub mod verify;
pub mod zone;
pub mod zonefile;

pub use error::{Error, Result};

mod rules_tests;
