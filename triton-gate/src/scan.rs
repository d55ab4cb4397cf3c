//! `triton-gate scan`: look for builder exposure on a running Triton. Reads
//! PAPI, IMGAPI, VMAPI and CNAPI (and mahi for who is an operator) and
//! reports, one finding a line:
//!
//! - builder packages that are public, list non-operators in
//!   `owner_uuids`, or have no placement rule (`min_platform` or `traits`,
//!   or the gate's `--builder-min-platform`);
//! - builder images that are public, shared (`acl`) with non-operators, or
//!   owned by a non-operator;
//! - builder zones owned by non-operators, or on nodes whose platform
//!   reports its brands without builder;
//! - nodes running builder zones whose `boot_platform` is below the
//!   builder floor or whose traits do not match the builder package's
//!   (rollback risk: the zones will not come back after a reboot).
//!
//! Look-alike brands (`Builder`, `builder `) count as builder.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{json, Value};
use triton_api::{
    ApiError, ClientConfig, Endpoints, Image, ImageFilter, Package, PackageFilter, Server,
    ServerFilter, Triton, Vm, VmFilter,
};

use crate::brand::looks_like_builder;
use crate::policy;
use triton_api::dapi::{platform_ok, traits_ok};

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `package`, `image`, `vm`, `server`.
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub problem: String,
}

/// Everything found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// One line per finding (`kind id (name): problem`), or JSON lines.
    pub fn render(&self, json: bool) -> String {
        let mut s = String::new();
        for f in &self.findings {
            if json {
                s.push_str(&serde_json::to_string(f).unwrap_or_default());
            } else if f.name.is_empty() {
                s.push_str(&format!("{} {}: {}", f.kind, f.id, f.problem));
            } else {
                s.push_str(&format!("{} {} ({}): {}", f.kind, f.id, f.name, f.problem));
            }
            s.push('\n');
        }
        s
    }

    fn add(&mut self, kind: &'static str, id: &str, name: &str, problem: String) {
        self.findings.push(Finding {
            kind,
            id: id.to_string(),
            name: name.to_string(),
            problem,
        });
    }
}

/// Who is an operator, by account UUID (mahi, cached).
struct Operators<'a> {
    triton: &'a Triton,
    known: HashMap<String, (bool, String)>,
}

impl Operators<'_> {
    /// `(is operator, login or uuid)`.
    async fn get(&mut self, uuid: &str) -> Result<(bool, String), ApiError> {
        if let Some(k) = self.known.get(uuid) {
            return Ok(k.clone());
        }
        let v = match self.triton.mahi.account_by_uuid(uuid).await {
            Ok(a) => (a.account.is_admin(), a.account.login),
            Err(e) if e.status() == Some(404) => (false, uuid.to_string()),
            Err(e) => return Err(e),
        };
        self.known.insert(uuid.to_string(), v.clone());
        Ok(v)
    }
}

/// The facts a scan looks at (read from the APIs, or given by a test).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub packages: Vec<Package>,
    pub images: Vec<Image>,
    pub vms: Vec<Vm>,
    pub servers: Vec<Server>,
}

/// Read everything a scan needs.
pub async fn read(triton: &Triton) -> Result<Facts, ApiError> {
    let packages = triton
        .papi
        .list(&PackageFilter::default())
        .await?
        .into_vec();
    let images = triton
        .imgapi
        .list(&ImageFilter {
            state: Some("all".into()),
            ..Default::default()
        })
        .await?;
    let vms = triton
        .vmapi
        .list_all(&VmFilter {
            state: Some("active".into()),
            ..Default::default()
        })
        .await?;
    let servers = triton.cnapi.list(&ServerFilter::with_sysinfo()).await?;
    Ok(Facts {
        packages,
        images,
        vms,
        servers,
    })
}

/// Scan a Triton.
pub async fn scan(
    endpoints: &Endpoints,
    floor: Option<&BTreeMap<String, String>>,
) -> Result<Report, ApiError> {
    let triton = Triton::new(endpoints, ClientConfig::default())?;
    let facts = read(&triton).await?;
    let mut ops = Operators {
        triton: &triton,
        known: HashMap::new(),
    };
    check(&facts, floor, &mut ops).await
}

async fn check(
    f: &Facts,
    floor: Option<&BTreeMap<String, String>>,
    ops: &mut Operators<'_>,
) -> Result<Report, ApiError> {
    let mut r = Report::default();
    let floor = floor.filter(|m| !m.is_empty());

    // packages
    let mut builder_pkgs: HashMap<&str, &Package> = HashMap::new();
    for p in f.packages.iter().filter(|p| policy::is_builder_package(p)) {
        builder_pkgs.insert(&p.uuid, p);
        let active = if p.is_active() { "active " } else { "" };
        if p.is_public() {
            r.add(
                "package",
                &p.uuid,
                &p.name,
                format!("{active}builder package is public (no owner_uuids)"),
            );
        }
        for o in p.owner_uuids.iter().flatten() {
            let (op, login) = ops.get(o).await?;
            if !op {
                r.add(
                    "package",
                    &p.uuid,
                    &p.name,
                    format!(
                        "{active}builder package lists non-operator account {login} in owner_uuids"
                    ),
                );
            }
        }
        let has_floor = p
            .min_platform
            .as_ref()
            .is_some_and(|m| m.keys().any(|k| triton_api::dapi::version_key_ok(k)));
        let has_traits = p.traits.as_ref().is_some_and(|t| !t.is_empty());
        if !has_floor && !has_traits && floor.is_none() {
            r.add(
                "package",
                &p.uuid,
                &p.name,
                "builder package has no placement rule (min_platform or traits)".into(),
            );
        }
    }

    // images
    for i in f.images.iter().filter(|i| policy::is_builder_image(i)) {
        if i.is_public() {
            r.add("image", &i.uuid, &i.name, "builder image is public".into());
        }
        for a in i.acl.iter().flatten() {
            let (op, login) = ops.get(a).await?;
            if !op {
                r.add(
                    "image",
                    &i.uuid,
                    &i.name,
                    format!("builder image is shared (acl) with non-operator account {login}"),
                );
            }
        }
        if let Some(o) = &i.owner {
            let (op, login) = ops.get(o).await?;
            if !op {
                r.add(
                    "image",
                    &i.uuid,
                    &i.name,
                    format!("builder image is owned by non-operator account {login}"),
                );
            }
        }
    }

    // builder zones
    let servers: HashMap<&str, &Server> = f.servers.iter().map(|s| (s.uuid.as_str(), s)).collect();
    let mut hosts: BTreeMap<String, Vec<&Vm>> = BTreeMap::new();
    for v in f
        .vms
        .iter()
        .filter(|v| !v.is_destroyed() && v.brand.as_deref().is_some_and(looks_like_builder))
    {
        let alias = v.alias.clone().unwrap_or_default();
        if let Some(o) = &v.owner_uuid {
            let (op, login) = ops.get(o).await?;
            if !op {
                r.add(
                    "vm",
                    &v.uuid,
                    &alias,
                    format!("builder zone owned by non-operator account {login}"),
                );
            }
        }
        if let Some(su) = &v.server_uuid {
            hosts.entry(su.clone()).or_default().push(v);
            if let Some(s) = servers.get(su.as_str()) {
                if s.sysinfo.as_ref().and_then(|i| i.has_brand("builder")) == Some(false) {
                    r.add(
                        "vm",
                        &v.uuid,
                        &alias,
                        format!(
                            "builder zone on server {su} whose platform {} does not provide the builder brand",
                            s.platform().unwrap_or("?")
                        ),
                    );
                }
            }
        }
    }

    // nodes running builder zones: what they boot next
    for (su, vms) in &hosts {
        let Some(s) = servers.get(su.as_str()) else {
            continue;
        };
        let host = s.hostname.clone().unwrap_or_default();
        let sdc = s
            .sysinfo
            .as_ref()
            .map(|i| i.sdc_version_or_default().to_string())
            .unwrap_or_else(|| "6.5".into());
        let boot = s
            .boot_platform
            .clone()
            .or_else(|| s.platform().map(str::to_string))
            .unwrap_or_default();
        let mut floors: Vec<BTreeMap<String, String>> = floor.into_iter().cloned().collect();
        let mut want_traits = Vec::new();
        for v in vms {
            if let Some(p) = v.billing_id.as_deref().and_then(|b| builder_pkgs.get(b)) {
                if let Some(m) = &p.min_platform {
                    floors.push(m.clone());
                }
                if let Some(t) = p.traits.as_ref().filter(|t| !t.is_empty()) {
                    want_traits.push(t.clone());
                }
            }
        }
        for fl in &floors {
            if !platform_ok(fl, &sdc, &boot, true) {
                r.add(
                    "server",
                    su,
                    &host,
                    format!(
                        "runs {} builder zone(s) and boots platform {boot}, below the builder floor {}: they will not start after a reboot",
                        vms.len(),
                        json!(fl)
                    ),
                );
                break;
            }
        }
        let have = s.traits.clone().unwrap_or_default();
        if let Some(t) = want_traits.iter().find(|t| !traits_ok(t, &have)) {
            r.add(
                "server",
                su,
                &host,
                format!(
                    "runs {} builder zone(s) but its traits {} do not match the builder package's {}",
                    vms.len(),
                    Value::Object(have.clone()),
                    Value::Object(t.clone())
                ),
            );
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering() {
        let mut r = Report::default();
        r.add(
            "package",
            "p1",
            "b-8g",
            "builder package is public (no owner_uuids)".into(),
        );
        r.add("server", "s1", "", "x".into());
        assert_eq!(
            r.render(false),
            "package p1 (b-8g): builder package is public (no owner_uuids)\nserver s1: x\n"
        );
        let j: Vec<Value> = r
            .render(true)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(j[0]["kind"], "package");
        assert!(j[1].get("name").is_none());
    }
}
