//! Builds, behind one trait: where the targets are built and where their
//! artifacts land. Two builds exist:
//!
//! - [`NodeBuild`] (`node`): triton-cloud-images' `build_all.sh` in a
//!   builder zone, through `zlogin` (SmartOS, or a sim node on Linux),
//!   after `vmadm-ext check` passed for the zone;
//! - [`LocalBuild`](crate::local::LocalBuild) (`local`, Linux): a Debian
//!   cloud image built here with mmdebstrap, written as `build_all.sh`
//!   writes it.
//!
//! Either way the artifacts are
//! `<out>/output-<slug>-x86_64/<target>-<YYYYMMDD>.x86_64.zfs.gz` and
//! `<target>-<YYYYMMDD>.json`, and the pipeline verifies, boot-tests and
//! ships them the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::buildlog::Failure;
use crate::checkout::Checkout;
use crate::commands::{self, Requirement, Tools};
use crate::error::Result;

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct BuildRun {
    /// The command (or a description of the build) for the report.
    pub command: String,
    /// Its exit status, when it is one process.
    pub exit: Option<i32>,
    /// The whole log.
    pub log: String,
    /// Targets that failed, and the log line that says so.
    pub failed: BTreeMap<String, Failure>,
    /// Failures no target could be given.
    pub unattributed: Vec<Failure>,
    /// A one-line reason when the build as a whole failed (for targets
    /// that left no artifact).
    pub error: Option<String>,
}

/// Where artifacts are and how to open them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// A directory image-ci owns (a zone root, the output directory):
    /// artifacts are opened below it without following links.
    pub anchor: PathBuf,
    /// The directory holding `output-<slug>-x86_64/`.
    pub dir: PathBuf,
}

/// A way to build targets.
pub trait Build {
    /// `node` or `local`.
    fn kind(&self) -> &'static str;
    /// Where it builds, for reports (the zone, or `local`).
    fn place(&self) -> String;
    /// The checkout's directory as image-ci sees it (`imgconfigs.json`,
    /// `manifest.in`).
    fn checkout_dir(&self) -> Result<PathBuf>;
    /// The checkout as the user named it, for reports.
    fn checkout_name(&self) -> String {
        self.checkout_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
    /// Where the artifacts land.
    fn output(&self) -> Result<Output>;
    /// What must hold before anything is built; `Err` when something does
    /// not (`Error::Preflight`) or cannot be asked.
    fn preflight(&self) -> Result<Vec<Requirement>>;
    /// Build `targets` (names from the checkout). `Err` only when nothing
    /// could be attempted; a failed target is in [`BuildRun::failed`].
    fn build(&self, checkout: &Checkout, targets: &[String]) -> Result<BuildRun>;
}

/// `build_all.sh` in a builder zone, through `zlogin`.
#[derive(Debug, Clone)]
pub struct NodeBuild {
    pub tools: Tools,
    /// The builder zone (UUID or name).
    pub zone: String,
    /// The checkout's path inside the zone (relative paths are relative to
    /// the zone root, as on the sim).
    pub checkout: String,
}

impl Build for NodeBuild {
    fn kind(&self) -> &'static str {
        "node"
    }

    fn place(&self) -> String {
        self.zone.clone()
    }

    fn checkout_dir(&self) -> Result<PathBuf> {
        let zr = commands::zone_root(&self.tools.root, &self.zone)?;
        Ok(commands::in_zone(&zr, &self.checkout))
    }

    /// The path inside the zone.
    fn checkout_name(&self) -> String {
        self.checkout.clone()
    }

    fn output(&self) -> Result<Output> {
        let zr = commands::zone_root(&self.tools.root, &self.zone)?;
        Ok(Output {
            dir: commands::in_zone(&zr, &self.checkout),
            anchor: zr,
        })
    }

    fn preflight(&self) -> Result<Vec<Requirement>> {
        commands::preflight(&self.tools, &self.zone)
    }

    fn build(&self, _checkout: &Checkout, targets: &[String]) -> Result<BuildRun> {
        let mut cmd = commands::build_command(&self.tools, &self.zone, &self.checkout, targets);
        let command = commands::display(&cmd);
        let out = commands::run(&mut cmd)?;
        let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        log.push_str(&stderr);
        let summary = crate::buildlog::parse(&log, targets);
        Ok(BuildRun {
            command,
            exit: out.status.code(),
            failed: summary.failed,
            unattributed: summary.unattributed,
            error: (!out.status.success()).then(|| crate::error::last_line(&stderr)),
            log,
        })
    }
}
