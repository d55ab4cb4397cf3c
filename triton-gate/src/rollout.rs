//! The phase 2 gate for `cargo xtask rollout`: start the service against a
//! Triton (the sim's or a real one), then prove that an operator can
//! provision a builder zone through a builder package and that a
//! non-operator is refused by every path, each decision audited.
//!
//! The caller provides the accounts (with these keys), a builder package
//! (brand `builder`, owned by the operator) and a builder image
//! (`requirements.brand` `builder`, type `zone-dataset`, active and visible
//! to the operator); see `tests/gate/main.rs` for a setup on the sim.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::audit::{self, Decision};
use crate::backend::{Backends, Urls};
use crate::client::GateClient;
use crate::gate::{Gate, GateConfig};
use crate::httpsig::Ed25519Signer;

/// What to check.
#[derive(Debug, Clone)]
pub struct Phase2 {
    pub urls: Urls,
    pub audit_path: PathBuf,
    pub operator_login: String,
    pub operator_key: Ed25519Signer,
    pub customer_login: String,
    pub customer_key: Ed25519Signer,
    /// UUID of a builder package owned by the operator.
    pub builder_package: String,
    /// UUID of a zone-dataset image requiring brand builder.
    pub builder_image: String,
    /// UUID of an ordinary package (joyent or no brand) the customer may use.
    pub plain_package: String,
    /// UUID of an ordinary zone-dataset image the customer may use.
    pub plain_image: String,
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
    /// The builder VM the operator got (CloudAPI machine object).
    pub machine: Option<Value>,
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
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
}

/// Start the gate on 127.0.0.1 and run every check against it.
pub fn run_phase2(p: &Phase2) -> Result<Phase2Report, RolloutError> {
    let gate = Gate::new(GateConfig::new(p.urls.clone(), p.audit_path.clone()));
    let bg = crate::server::start(gate, "127.0.0.1:0")?;
    let r = run_phase2_against(&bg.url(), p);
    bg.stop();
    r
}

/// Run every check against a gate already listening at `url` (whose audit
/// log is `p.audit_path`).
pub fn run_phase2_against(url: &str, p: &Phase2) -> Result<Phase2Report, RolloutError> {
    let mut rep = Phase2Report::default();
    let op = GateClient::new(url, Some(p.operator_key.clone()));
    let cu = GateClient::new(url, Some(p.customer_key.clone()));
    let (ol, cl) = (&p.operator_login, &p.customer_login);
    let before = audit::read(&p.audit_path)?.len();
    let backends = Backends::new(p.urls.clone());
    let customer_uuid = backends.account_by_login(cl)?["account"]["uuid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let customer_vms_before = backends.vms(&customer_uuid, "")?.len();

    // operator: sees the builder package and provisions with it
    let r = op.get(&format!("/{ol}/packages"))?;
    let seen = r
        .body
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["id"] == p.builder_package.as_str()));
    rep.check(
        "operator lists the builder package",
        r.status == 200 && seen,
        format!("{} {}", r.status, r.body),
    );
    let r = op.post_json(
        &format!("/{ol}/machines"),
        &json!({"image": p.builder_image, "package": p.builder_package, "name": format!("builder-gate-{}", &uuid::Uuid::new_v4().to_string()[..8])}),
    )?;
    let ok = r.status == 201 && r.body["brand"] == "builder" && r.body["compute_node"].is_string();
    rep.check(
        "operator creates a builder machine",
        ok,
        format!("{} {}", r.status, r.body),
    );
    if ok {
        rep.machine = Some(r.body.clone());
    }

    // customer: every path refused
    let denied =
        |rep: &mut Phase2Report, name: &str, r: &crate::client::Reply, status: u16, msg: &str| {
            let ok =
                r.status == status && r.body["message"].as_str().is_some_and(|m| m.contains(msg));
            rep.check(name, ok, format!("{} {}", r.status, r.body));
        };
    let r = cu.post_json(
        &format!("/{cl}/machines"),
        &json!({"image": p.plain_image, "package": p.plain_package, "brand": "builder"}),
    )?;
    denied(
        &mut rep,
        "customer: brand param builder refused",
        &r,
        409,
        "Unknown brand \"builder\"",
    );
    let r = cu.post_json(
        &format!("/{cl}/machines"),
        &json!({"image": p.builder_image, "package": p.plain_package}),
    )?;
    denied(
        &mut rep,
        "customer: builder image refused",
        &r,
        404,
        "not found",
    );
    let r = cu.post_json(
        &format!("/{cl}/machines"),
        &json!({"image": p.builder_image, "package": p.builder_package}),
    )?;
    denied(
        &mut rep,
        "customer: builder package refused",
        &r,
        404,
        "not found",
    );
    let r = cu.get(&format!("/{cl}/packages"))?;
    let leaked = r.body.as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["id"] == p.builder_package.as_str() || x["brand"] == "builder")
    });
    rep.check(
        "customer: package list hides builder",
        r.status == 200 && !leaked,
        format!("{} {}", r.status, r.body),
    );
    let r = cu.get(&format!("/{cl}/packages/{}", p.builder_package))?;
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
                && a.account_login == *cl
                && (a.action == "CreateMachine" || a.action == "GetPackage")
        })
        .count();
    let customer_allowed_builder = new.iter().any(|a| {
        a.decision == Decision::Allow
            && a.account_login == *cl
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
    let customer_vms_after = backends.vms(&customer_uuid, "")?.len();
    rep.check(
        "nothing created for refused requests",
        customer_vms_after == customer_vms_before,
        format!("{customer_vms_before} -> {customer_vms_after} customer VMs"),
    );
    Ok(rep)
}
