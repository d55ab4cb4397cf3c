//! The phase 2 gate for `cargo xtask rollout`: start the service against a
//! Triton (the sim's or a real one), then prove that an operator can
//! provision a builder zone through a builder package and that a
//! non-operator is refused by every path, each decision audited.
//!
//! The caller provides the accounts (with these keys), a builder package
//! (brand `builder`, owned by the operator, with a placement rule: a
//! `min_platform` floor or `traits`, unless `builder_min_platform` is
//! given), a network for the builder machine, and a builder image
//! (`requirements.brand` `builder`, type `zone-dataset`, active and visible
//! to the operator); see `tests/gate/env.rs` for a setup on the sim.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::Method;
use serde_json::json;
use triton_api::{
    CloudApi, CreateMachine, Endpoints, HttpClient, Machine, Signer, Triton, VmFilter,
};

use crate::audit::{self, Decision};
use crate::gate::{Gate, GateConfig};

/// What to check.
#[derive(Debug, Clone)]
pub struct Phase2 {
    pub endpoints: Endpoints,
    pub audit_path: PathBuf,
    pub operator_login: String,
    pub operator_key: Signer,
    pub customer_login: String,
    pub customer_key: Signer,
    /// UUID of a builder package owned by the operator.
    pub builder_package: String,
    /// UUID of a zone-dataset image requiring brand builder.
    pub builder_image: String,
    /// UUID of an ordinary package (joyent or no brand) the customer may use.
    pub plain_package: String,
    /// UUID of an ordinary zone-dataset image the customer may use.
    pub plain_image: String,
    /// The network of the builder machine (its primary nic).
    pub network: String,
    /// The gate's builder platform floor (`--builder-min-platform`).
    pub builder_min_platform: Option<BTreeMap<String, String>>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// All checks, plus the operator's machine.
#[derive(Debug, Clone, Default)]
pub struct Phase2Report {
    pub checks: Vec<Check>,
    /// The builder VM the operator got.
    pub machine: Option<Machine>,
}

impl Phase2Report {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_string(),
            passed,
            detail: detail.into(),
        });
    }

    /// `PASS name` / `FAIL name: detail` lines.
    pub fn render(&self) -> String {
        self.checks
            .iter()
            .map(|c| {
                if c.passed {
                    format!("PASS {}\n", c.name)
                } else {
                    format!("FAIL {}: {}\n", c.name, c.detail)
                }
            })
            .collect()
    }
}

/// What can stop the run itself (as opposed to a failed check).
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    #[error(transparent)]
    Gate(#[from] crate::gate::GateError),
    #[error(transparent)]
    Api(#[from] triton_api::ApiError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// Start the gate on 127.0.0.1 and run every check against it.
pub fn run_phase2(p: &Phase2) -> Result<Phase2Report, RolloutError> {
    let mut cfg = GateConfig::new(p.endpoints.clone(), p.audit_path.clone());
    cfg.builder_min_platform = p.builder_min_platform.clone();
    let bg = crate::server::start(Gate::new(cfg)?, "127.0.0.1:0")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RolloutError::Runtime)?;
    let r = rt.block_on(run_phase2_against(&bg.url(), p));
    bg.stop();
    r
}

fn text(r: &triton_api::Reply) -> String {
    format!("{} {}", r.status, String::from_utf8_lossy(&r.body))
}

/// Run every check against a gate already listening at `url` (whose audit
/// log is `p.audit_path`).
pub async fn run_phase2_against(url: &str, p: &Phase2) -> Result<Phase2Report, RolloutError> {
    let mut rep = Phase2Report::default();
    let http = HttpClient::default();
    let op = CloudApi::new(&http, url, p.operator_key.with_login(&p.operator_login))?;
    let cu = CloudApi::new(&http, url, p.customer_key.with_login(&p.customer_login))?;
    let triton = Triton::with_client(&p.endpoints, &http)?;
    let before = audit::read(&p.audit_path)?.len();
    let customer_uuid = triton
        .mahi
        .account_by_login(&p.customer_login)
        .await?
        .account
        .uuid;
    let customer_vms_before = triton
        .vmapi
        .list(&VmFilter::owner(&customer_uuid))
        .await?
        .len();

    // operator: sees the builder package and provisions with it
    match op.list_packages(&[]).await {
        Ok(list) => rep.check(
            "operator lists the builder package",
            list.iter().any(|x| x.id == p.builder_package),
            format!("{} packages", list.len()),
        ),
        Err(e) => rep.check("operator lists the builder package", false, e.to_string()),
    }
    let mut req = CreateMachine::new(&p.builder_image, &p.builder_package);
    req.name = Some(format!(
        "builder-gate-{}",
        &uuid::Uuid::new_v4().to_string()[..8]
    ));
    req.networks = Some(vec![json!(p.network)]);
    match op.create_machine(&req).await {
        Ok(m) => {
            let ok = m.brand.as_deref() == Some("builder") && m.compute_node.is_some();
            rep.check(
                "operator creates a builder machine",
                ok,
                serde_json::to_string(&m).unwrap_or_default(),
            );
            if ok {
                rep.machine = Some(m);
            }
        }
        Err(e) => rep.check("operator creates a builder machine", false, e.to_string()),
    }

    // customer: every path refused
    let mpath = format!("/{}/machines", p.customer_login);
    let denied =
        |rep: &mut Phase2Report, name: &str, r: &triton_api::Reply, status: u16, msg: &str| {
            let ok = r.status == status
                && r.json()["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(msg));
            rep.check(name, ok, text(r));
        };
    let body = json!({"image": p.plain_image, "package": p.plain_package, "brand": "builder"});
    let r = cu.request(Method::POST, &mpath, Some(&body)).await?;
    denied(
        &mut rep,
        "customer: brand param builder refused",
        &r,
        409,
        "Unknown brand \"builder\"",
    );
    let body = json!({"image": p.builder_image, "package": p.plain_package});
    let r = cu.request(Method::POST, &mpath, Some(&body)).await?;
    denied(
        &mut rep,
        "customer: builder image refused",
        &r,
        404,
        "not found",
    );
    let body = json!({"image": p.builder_image, "package": p.builder_package});
    let r = cu.request(Method::POST, &mpath, Some(&body)).await?;
    denied(
        &mut rep,
        "customer: builder package refused",
        &r,
        404,
        "not found",
    );
    let r = cu
        .request(
            Method::GET,
            &format!("/{}/packages", p.customer_login),
            None,
        )
        .await?;
    let leaked = r.json().as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["id"] == p.builder_package.as_str() || x["brand"] == "builder")
    });
    rep.check(
        "customer: package list hides builder",
        r.status == 200 && !leaked,
        text(&r),
    );
    let r = cu
        .request(
            Method::GET,
            &format!("/{}/packages/{}", p.customer_login, p.builder_package),
            None,
        )
        .await?;
    denied(
        &mut rep,
        "customer: GET builder package is 404",
        &r,
        404,
        "does not exist",
    );

    let after = audit::read(&p.audit_path)?;
    let new = &after[before.min(after.len())..];
    let allows = new
        .iter()
        .filter(|a| {
            a.decision == Decision::Allow
                && a.action == "CreateMachine"
                && a.brand.as_deref() == Some("builder")
        })
        .count();
    // The four refused requests (three creates, one package GET) each leave
    // exactly one deny record; a listing that hides builder packages may add
    // its own record, which is not counted here.
    let denies = new
        .iter()
        .filter(|a| {
            a.decision == Decision::Deny
                && a.account_login == p.customer_login
                && (a.action == "CreateMachine" || a.action == "GetPackage")
        })
        .count();
    let customer_allowed_builder = new.iter().any(|a| {
        a.decision == Decision::Allow
            && a.account_login == p.customer_login
            && a.brand.as_deref() == Some("builder")
    });
    rep.check(
        "audit: operator create allowed",
        allows == 1,
        format!("{allows} allow records"),
    );
    rep.check(
        "audit: every customer refusal denied",
        denies == 4 && !customer_allowed_builder,
        format!("{denies} deny records for 4 refused requests"),
    );
    let customer_vms_after = triton
        .vmapi
        .list(&VmFilter::owner(&customer_uuid))
        .await?
        .len();
    rep.check(
        "nothing created for refused requests",
        customer_vms_after == customer_vms_before,
        format!("{customer_vms_before} -> {customer_vms_after} customer VMs"),
    );
    Ok(rep)
}
