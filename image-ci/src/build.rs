//! Builds, behind one trait: where the targets are built, how that place
//! is made ready and undone, and where the artifacts land. Three builds:
//!
//! - [`NodeBuild`] (`node`): triton-cloud-images' `build_all.sh` in a
//!   builder zone on a compute node, through `vmadm` and `zlogin`
//!   (SmartOS, or a sim node on Linux). The zone is either one that
//!   exists (`-z`), or made for the run from a [`Profile`] (the RFD's
//!   payload), waited for, checked with `vmadm-ext check`, provisioned
//!   (pkgin packages, the checkout) and deleted afterwards;
//! - [`TritonBuild`] (`triton`): the zone is a machine made through
//!   triton-gate (CloudAPI, signed as an operator) with the builder
//!   package and image; once it runs, the build happens on its compute
//!   node (the machine's `compute_node`) through [`NodeBuild`], and the
//!   machine is deleted through the gate;
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
use std::time::{Duration, Instant};

use crate::buildlog::Failure;
use crate::checkout::Checkout;
use crate::commands::{self, Requirement, Tools};
use crate::error::{Error, Result};
use crate::stages::Stages;
use crate::stream::{self, Cancel, LogSink};
use crate::zone::{self, Profile, Provision, Source};

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct BuildRun {
    /// The command (or a description of the build) for the report.
    pub command: String,
    /// Its exit status, when it is one process.
    pub exit: Option<i32>,
    /// The whole log (also streamed to the run's log file as it came).
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

/// What `prepare` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prepared {
    /// `vmadm-ext check` (or the local build's) requirements.
    pub requirements: Vec<Requirement>,
    /// The commit of the checkout the build uses, when known.
    pub commit: Option<String>,
}

/// A way to build targets.
pub trait Build: Send {
    /// `node`, `triton` or `local`.
    fn kind(&self) -> &'static str;
    /// Where it builds, for reports (the zone, or `local`).
    fn place(&self) -> String;
    /// Checks that need nothing made (the zone image is there, ...):
    /// bad configuration is refused before any zone exists.
    fn check(&self) -> Result<()> {
        Ok(())
    }
    /// The directory the target list (`imgconfigs.json`, `manifest.in`)
    /// is read from; for a zone made for the run, a local copy of the
    /// same checkout, readable before the zone exists.
    fn checkout_dir(&self) -> Result<PathBuf>;
    /// The checkout as the user named it, for reports.
    fn checkout_name(&self) -> String {
        self.checkout_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
    /// The run's id: a zone made for the run is named after it.
    fn name_for_run(&mut self, _run: &str) {}
    /// Make the build place ready: make the zone when the run makes one,
    /// wait for it, check it (`vmadm-ext check`), provision it. Each step
    /// is a stage; their output goes to `log`. `Err(Error::Preflight)`
    /// when the place cannot build.
    fn prepare(&mut self, st: &mut Stages, log: &mut LogSink, cancel: &Cancel) -> Result<Prepared>;
    /// Where the artifacts land (after `prepare`).
    fn output(&self) -> Result<Output>;
    /// Build `targets` (names from the checkout), each output line to
    /// `log` as it comes. `Err` only when nothing could be attempted (or
    /// the run was cancelled); a failed target is in [`BuildRun::failed`].
    fn build(
        &self,
        checkout: &Checkout,
        targets: &[String],
        log: &mut LogSink,
        cancel: &Cancel,
    ) -> Result<BuildRun>;
    /// Undo what `prepare` made (delete the zone), unless `keep`. Returns
    /// what was done, for the report.
    fn finish(&mut self, _keep: bool, _st: &mut Stages) -> Result<Option<String>> {
        Ok(None)
    }
    /// The builder zone, once there is one (the bhyve boot test runs in
    /// it).
    fn zone(&self) -> Option<String> {
        None
    }
}

/// A zone made for the run: how, and with what.
#[derive(Debug, Clone)]
pub struct MakeZone {
    pub profile: Profile,
    /// The zone's alias (`<profile alias>-<run>`), set by the pipeline.
    pub alias: String,
}

/// The checkout a zone made for the run gets, and the local copy of it
/// image-ci reads the target list from.
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub provision: Provision,
    pub source: Source,
    /// The local copy (see [`crate::checkout::sync_mirror`]).
    pub local: PathBuf,
}

/// `build_all.sh` in a builder zone, through `zlogin`.
#[derive(Debug, Clone)]
pub struct NodeBuild {
    pub tools: Tools,
    /// The builder zone (UUID or name); empty until a zone made for the
    /// run exists.
    pub zone: String,
    /// The checkout's path inside the zone (relative paths are relative
    /// to the zone root, as on the sim).
    pub checkout: String,
    /// Make the zone for the run (`None`: `zone` exists).
    pub make: Option<MakeZone>,
    /// Provision the zone (`None`: the checkout is there).
    pub provisioning: Option<Provisioning>,
    /// The zone was made by this build (and is deleted by `finish`).
    pub made: bool,
    /// How long a stopped build may take to end before it is killed.
    pub grace: Duration,
}

impl NodeBuild {
    /// A build in a zone that exists, at `checkout` in it.
    pub fn existing(tools: Tools, zone: &str, checkout: &str) -> NodeBuild {
        NodeBuild {
            tools,
            zone: zone.into(),
            checkout: checkout.into(),
            make: None,
            provisioning: None,
            made: false,
            grace: Duration::from_secs(10),
        }
    }

    /// A build in a zone made for the run from `profile`, provisioned with
    /// the checkout at `checkout` in it.
    pub fn made_for_run(
        tools: Tools,
        profile: Profile,
        checkout: &str,
        provisioning: Provisioning,
    ) -> NodeBuild {
        NodeBuild {
            tools,
            zone: String::new(),
            checkout: checkout.into(),
            make: Some(MakeZone {
                alias: profile.alias.clone(),
                profile,
            }),
            provisioning: Some(provisioning),
            made: false,
            grace: Duration::from_secs(10),
        }
    }

    /// Run one shell line in the zone, its output to `log`.
    fn zlogin(&self, line: &str, log: &mut LogSink, cancel: &Cancel) -> Result<stream::Exit> {
        let c = host::zlogin::run(&self.zone, line);
        log.line(&format!("+ {c}"));
        stream::run(
            &self.tools.tools,
            &self.tools.host().env,
            &c,
            log,
            cancel,
            self.grace,
        )
    }

    /// Check the zone and provision it (a zone that runs).
    pub fn check_and_provision(
        &mut self,
        st: &mut Stages,
        log: &mut LogSink,
        cancel: &Cancel,
    ) -> Result<Prepared> {
        let tools = self.tools.clone();
        let zone = self.zone.clone();
        let reqs = st.run(
            None,
            "check",
            |_| None,
            || commands::preflight(&tools, &zone),
        )?;
        let mut commit = None;
        if let Some(p) = self.provisioning.clone() {
            let lines = zone::provision_lines(
                &p.provision,
                &p.source,
                &self.tools.zone_arg(&self.checkout),
            );
            st.start(None, "provision");
            let before = log.bytes();
            for (i, l) in lines.iter().enumerate() {
                let r = self.zlogin(l, log, cancel);
                let e = match r {
                    Ok(x) if x.success() => {
                        if i + 1 == lines.len() {
                            // the rev-parse line: the commit is its last line
                            commit = log
                                .text()
                                .lines()
                                .last()
                                .map(|s| s.trim().to_string())
                                .filter(|s| s.len() >= 7);
                        }
                        continue;
                    }
                    Ok(x) => Error::Command {
                        command: format!("zlogin {} {}", self.zone, commands::sh_quote(l)),
                        status: x.code,
                        stderr: x.last_stderr,
                    },
                    Err(e) => e,
                };
                let status = if matches!(e, Error::Cancelled(_)) {
                    "interrupted"
                } else {
                    "failed"
                };
                st.end(status, Some(log.bytes() - before), &e.to_string());
                return Err(e);
            }
            st.end(
                "ok",
                Some(log.bytes() - before),
                commit.as_deref().unwrap_or_default(),
            );
        }
        Ok(Prepared {
            requirements: reqs,
            commit,
        })
    }
}

impl Build for NodeBuild {
    fn kind(&self) -> &'static str {
        "node"
    }

    fn place(&self) -> String {
        if self.zone.is_empty() {
            "(zone not made yet)".into()
        } else {
            self.zone.clone()
        }
    }

    fn name_for_run(&mut self, run: &str) {
        if let Some(m) = &mut self.make {
            m.alias = zone::alias_for(&m.profile.alias, run);
        }
    }

    fn check(&self) -> Result<()> {
        if let Some(m) = &self.make {
            zone::image_installed(&self.tools, &m.profile.image_uuid)?;
        }
        Ok(())
    }

    fn checkout_dir(&self) -> Result<PathBuf> {
        if let Some(p) = &self.provisioning {
            if self.zone.is_empty() || self.make.is_some() {
                return Ok(p.local.clone());
            }
        }
        let zr = commands::zone_root(&self.tools.root, &self.zone)?;
        Ok(commands::in_zone(&zr, &self.checkout))
    }

    /// The path inside the zone.
    fn checkout_name(&self) -> String {
        self.checkout.clone()
    }

    fn prepare(&mut self, st: &mut Stages, log: &mut LogSink, cancel: &Cancel) -> Result<Prepared> {
        if let Some(m) = self.make.clone() {
            cancel.check("before the zone was made")?;
            let tools = self.tools.clone();
            let payload = zone::payload(&m.profile, &m.alias);
            log.line(&format!("+ vmadm create <<< {payload}"));
            let uuid = st.run(
                None,
                "zone",
                |_| None,
                || {
                    let uuid = zone::create(&tools, &payload)?;
                    Ok(uuid)
                },
            )?;
            self.zone = uuid.clone();
            self.made = true;
            log.line(&format!("zone {uuid} ({}) created", m.alias));
            st.run(
                None,
                "zone-boot",
                |_| None,
                || {
                    zone::wait_running(
                        &tools,
                        &uuid,
                        Duration::from_secs(m.profile.boot_timeout),
                        cancel,
                    )
                },
            )?;
        }
        self.check_and_provision(st, log, cancel)
    }

    fn output(&self) -> Result<Output> {
        let zr = commands::zone_root(&self.tools.root, &self.zone)?;
        Ok(Output {
            dir: commands::in_zone(&zr, &self.checkout),
            anchor: zr,
        })
    }

    fn build(
        &self,
        _checkout: &Checkout,
        targets: &[String],
        log: &mut LogSink,
        cancel: &Cancel,
    ) -> Result<BuildRun> {
        let cmd = commands::build_command(&self.tools, &self.zone, &self.checkout, targets);
        let command = cmd.to_string();
        log.line(&format!("+ {command}"));
        let start = log.text().len();
        let exit = stream::run(
            &self.tools.tools,
            &self.tools.host().env,
            &cmd,
            log,
            cancel,
            self.grace,
        )?;
        let text = log.text()[start..].to_string();
        let summary = crate::buildlog::parse(&text, targets);
        Ok(BuildRun {
            command,
            exit: exit.code,
            failed: summary.failed,
            unattributed: summary.unattributed,
            error: (!exit.success()).then(|| {
                if exit.last_stderr.is_empty() {
                    "(no stderr)".to_string()
                } else {
                    exit.last_stderr.clone()
                }
            }),
            log: text,
        })
    }

    fn finish(&mut self, keep: bool, st: &mut Stages) -> Result<Option<String>> {
        if !self.made {
            return Ok(None);
        }
        if keep {
            return Ok(Some(format!("zone {} kept", self.zone)));
        }
        let tools = self.tools.clone();
        let zone = self.zone.clone();
        st.run(
            None,
            "zone-delete",
            |_| None,
            || zone::delete(&tools, &zone),
        )?;
        self.made = false;
        Ok(Some(format!("zone {zone} deleted")))
    }

    fn zone(&self) -> Option<String> {
        (!self.zone.is_empty()).then(|| self.zone.clone())
    }
}

/// How builder machines are made through triton-gate.
#[derive(Debug, Clone)]
pub struct TritonSpec {
    /// The gate (a CloudAPI): `http://host:port`.
    pub cloudapi: String,
    /// The operator account and its key.
    pub signer: triton_api::Signer,
    /// The builder package (UUID or name).
    pub package: String,
    /// The builder image (UUID).
    pub image: String,
    /// Network UUIDs (none: the package's).
    pub networks: Vec<String>,
    /// The machine's name; the run id is appended.
    pub name: String,
    /// The name of the machine of this run.
    pub run_name: Option<String>,
    /// The compute nodes this image-ci can build on: their roots (`/` on
    /// a compute node; sim node directories), each with its tools
    /// directory.
    pub nodes: Vec<Tools>,
    /// How long the machine may take to run and to go away.
    pub timeout: Duration,
}

/// A builder machine made through triton-gate, built on through its
/// compute node.
pub struct TritonBuild {
    pub spec: TritonSpec,
    api: triton_api::CloudApi,
    /// The checkout in the machine, and how it is provisioned.
    pub checkout: String,
    pub provisioning: Provisioning,
    /// The machine, once made.
    pub machine: Option<triton_api::Machine>,
    /// The build on its node, once it runs.
    pub node: Option<NodeBuild>,
}

impl std::fmt::Debug for TritonBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TritonBuild")
            .field("cloudapi", &self.spec.cloudapi)
            .field("machine", &self.machine.as_ref().map(|m| &m.id))
            .finish()
    }
}

/// The UUID of the compute node at `t` (`sysinfo`).
pub fn node_uuid(t: &Tools) -> Result<String> {
    use host::Host as _;
    let o = t.host().run(&host::sysinfo::get())?;
    let m = host::sysinfo::parse(&o.stdout).map_err(Error::Invalid)?;
    m.get("UUID")
        .and_then(|u| u.as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid("sysinfo has no UUID".into()))
}

impl TritonBuild {
    pub fn new(
        spec: TritonSpec,
        checkout: &str,
        provisioning: Provisioning,
    ) -> Result<TritonBuild> {
        let api =
            triton_api::CloudApi::new(crate::ship::http(), &spec.cloudapi, spec.signer.clone())?;
        Ok(TritonBuild {
            spec,
            api,
            checkout: checkout.into(),
            provisioning,
            machine: None,
            node: None,
        })
    }

    /// The CloudAPI client (signed as the operator).
    pub fn api(&self) -> &triton_api::CloudApi {
        &self.api
    }

    fn node_for(&self, server: &str) -> Result<Tools> {
        let mut seen = vec![];
        for t in &self.spec.nodes {
            let u = node_uuid(t)?;
            if u == server {
                return Ok(t.clone());
            }
            seen.push(format!("{} ({u})", t.root.display()));
        }
        Err(Error::Config(format!(
            "the machine is on compute node {server}, which is not one of this image-ci's nodes: {}",
            seen.join(", ")
        )))
    }

    async fn wait_running(&self, id: &str, cancel: &Cancel) -> Result<triton_api::Machine> {
        let t = Instant::now();
        loop {
            cancel.check("waiting for the machine to run")?;
            let m = self.api.get_machine(id).await?;
            match m.state.as_deref() {
                Some("running") => return Ok(m),
                Some("failed") => {
                    return Err(Error::Invalid(format!("machine {id} failed to provision")))
                }
                _ => {}
            }
            if t.elapsed() >= self.spec.timeout {
                return Err(Error::Invalid(format!(
                    "machine {id} is {}, not running, after {} s",
                    m.state.as_deref().unwrap_or("?"),
                    self.spec.timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `DELETE /<login>/machines/<id>` through the gate, then wait until
    /// it is gone.
    async fn delete_machine(&self, id: &str) -> Result<()> {
        let path = format!("/{}/machines/{id}", self.api.account());
        let r = self
            .api
            .request(reqwest::Method::DELETE, &path, None)
            .await?;
        if r.status != 204 && r.status != 404 {
            let v = r.json();
            return Err(Error::Api(format!(
                "CloudAPI: DELETE {path}: {} {}",
                r.status,
                v["message"].as_str().unwrap_or_default()
            )));
        }
        let t = Instant::now();
        loop {
            match self.api.get_machine(id).await {
                Err(e) if e.status() == Some(404) => return Ok(()),
                Ok(m) if m.state.as_deref() == Some("deleted") => return Ok(()),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            if t.elapsed() >= self.spec.timeout {
                return Err(Error::Invalid(format!(
                    "machine {id} is still there {} s after its deletion",
                    self.spec.timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Build for TritonBuild {
    fn kind(&self) -> &'static str {
        "triton"
    }

    fn place(&self) -> String {
        match &self.machine {
            Some(m) => format!("{} on {}", m.id, m.compute_node.as_deref().unwrap_or("?")),
            None => "(machine not made yet)".into(),
        }
    }

    fn name_for_run(&mut self, run: &str) {
        self.spec.run_name = Some(zone::alias_for(&self.spec.name, run));
    }

    fn check(&self) -> Result<()> {
        crate::ship::block_on(async {
            self.api.get_image(&self.spec.image).await.map_err(|e| {
                Error::Config(format!(
                    "zone image {} cannot be used by {}: {}",
                    self.spec.image,
                    self.api.account(),
                    e.message().unwrap_or("not found")
                ))
            })?;
            self.api
                .get_package(&self.spec.package)
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "package {} cannot be used by {}: {}",
                        self.spec.package,
                        self.api.account(),
                        e.message().unwrap_or("not found")
                    ))
                })?;
            Ok(())
        })
    }

    fn checkout_dir(&self) -> Result<PathBuf> {
        Ok(self.provisioning.local.clone())
    }

    fn checkout_name(&self) -> String {
        self.checkout.clone()
    }

    fn prepare(&mut self, st: &mut Stages, log: &mut LogSink, cancel: &Cancel) -> Result<Prepared> {
        cancel.check("before the machine was made")?;
        let mut req = triton_api::CreateMachine::new(&self.spec.image, &self.spec.package);
        let name = self
            .spec
            .run_name
            .clone()
            .unwrap_or_else(|| self.spec.name.clone());
        req.name = Some(name.clone());
        if !self.spec.networks.is_empty() {
            req.networks = Some(
                self.spec
                    .networks
                    .iter()
                    .map(|n| serde_json::Value::String(n.clone()))
                    .collect(),
            );
        }
        log.line(&format!(
            "+ CreateMachine {name} (package {}, image {}) through {}",
            self.spec.package, self.spec.image, self.spec.cloudapi
        ));
        let api = self.api.clone();
        let m = st.run(
            None,
            "zone",
            |_| None,
            || crate::ship::block_on(api.create_machine(&req)).map_err(Error::from),
        )?;
        log.line(&format!(
            "machine {} created on {}",
            m.id,
            m.compute_node.as_deref().unwrap_or("?")
        ));
        self.machine = Some(m.clone());
        let m = st.run(
            None,
            "zone-boot",
            |_| None,
            || crate::ship::block_on(self.wait_running(&m.id, cancel)),
        )?;
        self.machine = Some(m.clone());
        let server = m
            .compute_node
            .clone()
            .ok_or_else(|| Error::Invalid(format!("machine {} names no compute node", m.id)))?;
        let tools = self.node_for(&server)?;
        let mut nb = NodeBuild::existing(tools, &m.id, &self.checkout);
        nb.provisioning = Some(self.provisioning.clone());
        let r = nb.check_and_provision(st, log, cancel);
        self.node = Some(nb);
        r
    }

    fn output(&self) -> Result<Output> {
        self.node
            .as_ref()
            .ok_or_else(|| Error::Invalid("the machine is not ready".into()))?
            .output()
    }

    fn build(
        &self,
        checkout: &Checkout,
        targets: &[String],
        log: &mut LogSink,
        cancel: &Cancel,
    ) -> Result<BuildRun> {
        self.node
            .as_ref()
            .ok_or_else(|| Error::Invalid("the machine is not ready".into()))?
            .build(checkout, targets, log, cancel)
    }

    fn finish(&mut self, keep: bool, st: &mut Stages) -> Result<Option<String>> {
        let Some(m) = self.machine.clone() else {
            return Ok(None);
        };
        if keep {
            return Ok(Some(format!("machine {} kept", m.id)));
        }
        st.run(
            None,
            "zone-delete",
            |_| None,
            || crate::ship::block_on(self.delete_machine(&m.id)),
        )?;
        self.machine = None;
        Ok(Some(format!("machine {} deleted through the gate", m.id)))
    }

    fn zone(&self) -> Option<String> {
        self.machine.as_ref().map(|m| m.id.clone())
    }
}
