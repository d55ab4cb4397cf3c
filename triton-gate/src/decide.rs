//! `triton-gate decide`: the offline explanation of a CreateMachine
//! decision, with the service's own policy code and CloudAPI's texts.
//!
//! Input:
//!
//! ```json
//! {"account": {"uuid": "...", "login": "ops", "operator": true},
//!  "caller": {"uuid": "...", "login": "ops", "operator": true, "user": "sub1"},
//!  "params": {"image": "<uuid>", "package": "<uuid or name>", "brand": "builder"},
//!  "image": {"type": "zone-dataset", "requirements": {"brand": "builder"}},
//!  "package": {"uuid": "...", "brand": "builder", "owner_uuids": ["..."], "active": true, "name": "b-8g"}}
//! ```
//!
//! `caller` defaults to the account. The answer is `{"ok": true, "brand",
//! "source"}` or `{"ok": false, "code", "http_status", "message"}`, what
//! CloudAPI (or the gate in front of it) would answer. A package the account
//! may not see is CloudAPI's ResourceNotFound (PAPI's 404, passed through).

use serde::Deserialize;
use serde_json::{json, Map, Value};
use triton_api::{Image, Package};

use crate::brand::Defaults;
use crate::error::CloudApiError;
use crate::policy::{self, CreateFacts, Principal};

use common::uuid::is_uuid;

/// Who, in the input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    #[serde(default)]
    pub uuid: String,
    #[serde(default)]
    pub login: Option<String>,
    #[serde(default)]
    pub operator: bool,
    /// A sub-user of the account signed (callers only).
    #[serde(default)]
    pub user: Option<String>,
}

/// The input of `decide`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub account: Party,
    #[serde(default)]
    pub caller: Option<Party>,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub image: Image,
    #[serde(default)]
    pub package: Option<Package>,
}

/// What would be answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok { brand: String, source: String },
    Refused(CloudApiError),
}

impl Answer {
    /// The JSON `decide` prints.
    pub fn to_json(&self) -> Value {
        match self {
            Answer::Ok { brand, source } => json!({"ok": true, "brand": brand, "source": source}),
            Answer::Refused(e) => {
                json!({"ok": false, "code": e.code, "http_status": e.status, "message": e.message})
            }
        }
    }
}

fn principal(r: &Request) -> Principal {
    let a = &r.account;
    let c = r.caller.clone().unwrap_or_else(|| a.clone());
    let login = |p: &Party| p.login.clone().unwrap_or_else(|| p.uuid.clone());
    Principal {
        caller_uuid: c.uuid.clone(),
        caller_login: login(&c),
        caller_user: c.user.clone(),
        caller_admin: c.operator,
        account_uuid: a.uuid.clone(),
        account_login: login(a),
        account_admin: a.operator,
    }
}

fn pstr(p: &Map<String, Value>, k: &str) -> Option<String> {
    crate::gate::pstr(p, k)
}

/// Decide as the gate does, from the facts alone.
pub fn decide(r: &Request, defaults: &Defaults) -> Answer {
    match decide_inner(r, defaults) {
        Ok(a) => a,
        Err(e) => Answer::Refused(e),
    }
}

fn decide_inner(r: &Request, defaults: &Defaults) -> Result<Answer, CloudApiError> {
    let who = principal(r);
    who.authorize()?;
    let p = &r.params;
    if p.contains_key("image") && p.contains_key("dataset") {
        return Err(CloudApiError::invalid_argument(
            "image and dataset are mutually exclusive",
        ));
    }
    let image_id = pstr(p, "image")
        .or_else(|| pstr(p, "dataset"))
        .or_else(|| Some(r.image.uuid.clone()).filter(|u| !u.is_empty()))
        .ok_or_else(|| CloudApiError::missing_parameter("image must be specified"))?;
    if !is_uuid(&image_id) {
        return Err(CloudApiError::invalid_argument(format!(
            "{image_id} is not a valid image"
        )));
    }
    let image_seen = r.image.owner.is_none() || r.image.visible_to(&who.account_uuid);
    if !image_seen || !policy::image_visible(&who, &r.image) {
        return Err(CloudApiError::not_found(format!(
            "image {image_id} not found"
        )));
    }
    if r.image.state.is_some() && !r.image.is_active() {
        return Err(CloudApiError::invalid_argument(format!(
            "image {image_id} is not active"
        )));
    }
    let pkg = r.package.clone().unwrap_or_default();
    let pkg_ref = pstr(p, "package")
        .or_else(|| Some(pkg.uuid.clone()).filter(|u| !u.is_empty()))
        .or_else(|| Some(pkg.name.clone()).filter(|n| !n.is_empty()))
        .ok_or_else(|| CloudApiError::missing_parameter("package must be specified"))?;
    let seen = pkg.visible_to(&who.account_uuid) && policy::package_visible(&who, &pkg);
    if is_uuid(&pkg_ref) {
        if !seen {
            return Err(CloudApiError::not_found(format!(
                "Package {pkg_ref} does not exist"
            )));
        }
    } else if !seen || pkg.active.is_some() && !pkg.is_active() {
        // by name, only active packages the account sees are found
        return Err(CloudApiError::invalid_argument(format!(
            "{pkg_ref} is not a valid package"
        )));
    }
    if pkg.active.is_some() && !pkg.is_active() {
        return Err(CloudApiError::invalid_argument(format!(
            "{pkg_ref} is inactive. Must use an active package"
        )));
    }
    let facts = CreateFacts::of(pstr(p, "brand"), &r.image, &pkg);
    let res = policy::resolve_brand(&who, &facts, defaults).map_err(|d| d.error)?;
    Ok(Answer::Ok {
        brand: res.brand,
        source: res.source.as_str().to_string(),
    })
}

/// Parse the input text: one clear line on error.
pub fn parse(text: &str) -> Result<Request, String> {
    serde_json::from_str(text).map_err(|e| format!("not a decide request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
    const CUST: &str = "2b5a7e43-3a1f-4c49-8d61-5f0e6d7c8b9a";
    const IMG: &str = "6f1e0c2a-4b3d-4e5f-8a9b-0c1d2e3f4a5b";
    const PKG: &str = "7fc87f43-2def-4e6f-9f2c-cae7d4a8d1b5";

    fn req(v: Value) -> Request {
        parse(&v.to_string()).unwrap()
    }

    fn answer(v: Value) -> Value {
        decide(&req(v), &Defaults::default()).to_json()
    }

    #[test]
    fn operator_builder_and_customer_refusals() {
        let op = json!({"uuid": OPS, "login": "ops", "operator": true});
        let cust = json!({"uuid": CUST, "login": "cust", "operator": false});
        let img = json!({"type": "zone-dataset", "requirements": {"brand": "builder"}});
        let pkg = json!({"uuid": PKG, "brand": "builder", "owner_uuids": [OPS], "active": true});
        assert_eq!(
            answer(
                json!({"account": op, "params": {"image": IMG, "package": PKG}, "image": img, "package": pkg})
            ),
            json!({"ok": true, "brand": "builder", "source": "image"})
        );
        // a customer: the builder image is not found
        assert_eq!(
            answer(
                json!({"account": cust, "params": {"image": IMG, "package": PKG}, "image": img, "package": pkg})
            ),
            json!({"ok": false, "code": "ResourceNotFound", "http_status": 404, "message": format!("image {IMG} not found")})
        );
        // a customer with an ordinary image: the builder package does not exist for them
        let plain = json!({"type": "zone-dataset"});
        assert_eq!(
            answer(
                json!({"account": cust, "params": {"image": IMG, "package": PKG}, "image": plain, "package": pkg})
            ),
            json!({"ok": false, "code": "ResourceNotFound", "http_status": 404, "message": format!("Package {PKG} does not exist")})
        );
        // ... even a public one
        let public = json!({"uuid": PKG, "brand": "builder", "active": true});
        assert_eq!(
            answer(
                json!({"account": cust, "params": {"image": IMG, "package": PKG}, "image": plain, "package": public})
            )["http_status"],
            404
        );
        // brand param
        let joyent = json!({"uuid": PKG, "brand": "joyent", "active": true});
        assert_eq!(
            answer(
                json!({"account": cust, "params": {"image": IMG, "package": PKG, "brand": "builder"}, "image": plain, "package": joyent})
            ),
            json!({"ok": false, "code": "InvalidArgument", "http_status": 409,
                   "message": "Unknown brand \"builder\". Brand is restricted to one of [\"bhyve\",\"kvm\"]"})
        );
        // a sub-user of the operator account is never an operator
        let sub = json!({"uuid": OPS, "login": "ops", "operator": true, "user": "sub1"});
        assert_eq!(
            answer(
                json!({"account": op, "caller": sub, "params": {"image": IMG, "package": PKG}, "image": img, "package": pkg})
            )["http_status"],
            404
        );
        // an operator acting for a customer
        assert_eq!(
            answer(
                json!({"account": cust, "caller": op, "params": {"image": IMG, "package": PKG}, "image": plain, "package": pkg})
            )["message"],
            format!("Package {PKG} does not exist")
        );
        // a customer acting for someone else
        assert_eq!(
            answer(
                json!({"account": op, "caller": cust, "params": {"image": IMG, "package": PKG}, "image": plain, "package": joyent})
            ),
            json!({"ok": false, "code": "NotAuthorized", "http_status": 403, "message": "cust is not authorized to act as ops"})
        );
    }

    #[test]
    fn every_getbrand_case_has_cloudapis_text() {
        let cust = json!({"uuid": CUST, "operator": false});
        let run = |params_brand: &str, img_brand: &str, ty: &str, pkg_brand: &str| {
            let mut image = json!({"type": ty});
            if !img_brand.is_empty() {
                image["requirements"] = json!({"brand": img_brand});
            }
            let mut pkg = json!({"uuid": PKG, "active": true});
            if !pkg_brand.is_empty() {
                pkg["brand"] = json!(pkg_brand);
            }
            let mut params = json!({"image": IMG, "package": PKG});
            if !params_brand.is_empty() {
                params["brand"] = json!(params_brand);
            }
            answer(json!({"account": cust, "params": params, "image": image, "package": pkg}))
        };
        let msg = |v: Value| v["message"].as_str().unwrap_or_default().to_string();
        assert_eq!(run("", "", "zone-dataset", "")["brand"], "joyent");
        assert_eq!(run("", "", "zvol", "")["brand"], "kvm");
        assert_eq!(run("", "", "zvol", "")["source"], "default_hvm");
        assert_eq!(
            msg(run("unknown", "", "zvol", "")),
            "Unknown brand \"unknown\". Brand is restricted to one of [\"bhyve\",\"kvm\"]"
        );
        assert_eq!(
            msg(run("joyent", "", "zone-dataset", "")),
            "Unknown brand \"joyent\". Brand is restricted to one of [\"bhyve\",\"kvm\"]"
        );
        assert_eq!(
            msg(run("", "smartos", "zone-dataset", "")),
            "Image requires unknown brand \"smartos\""
        );
        assert_eq!(
            msg(run("", "", "zone-dataset", "bogus")),
            "Package requires unknown brand \"bogus\""
        );
        assert_eq!(
            msg(run("bhyve", "", "zvol", "kvm")),
            "Package requires brand \"kvm\", but brand \"bhyve\" was selected"
        );
        assert_eq!(
            msg(run("bhyve", "kvm", "zvol", "bhyve")),
            "Image requires brand \"kvm\", but pkq requires brand \"bhyve\""
        );
        assert_eq!(
            msg(run("bhyve", "kvm", "zvol", "")),
            "Image requires brand \"kvm\", but brand \"bhyve\" was selected"
        );
        assert_eq!(
            msg(run("", "", "zone-dataset", "bhyve")),
            "Brand \"bhyve\" requires the image type to be \"zvol\""
        );
        assert_eq!(
            msg(run("", "", "zvol", "joyent")),
            "Brand \"joyent\" cannot use an image of type \"zvol\""
        );
        assert_eq!(
            msg(run("builder\"><b>", "", "zone-dataset", "")),
            "Unknown brand \"builder><b>\". Brand is restricted to one of [\"bhyve\",\"kvm\"]"
        );
        assert_eq!(run("", "", "lx-dataset", "joyent")["brand"], "joyent");
    }

    #[test]
    fn references_and_states() {
        let cust = json!({"uuid": CUST});
        let pkg = json!({"uuid": PKG, "name": "j-1g", "brand": "joyent", "active": false});
        let a = |params: Value, image: Value| {
            answer(json!({"account": cust, "params": params, "image": image, "package": pkg}))
        };
        let plain = json!({"type": "zone-dataset"});
        assert_eq!(
            a(json!({"package": PKG}), plain.clone())["message"],
            "image must be specified"
        );
        assert_eq!(
            a(json!({"image": "base-64", "package": PKG}), plain.clone())["message"],
            "base-64 is not a valid image"
        );
        assert_eq!(
            a(json!({"image": IMG, "package": PKG}), plain.clone())["message"],
            format!("{PKG} is inactive. Must use an active package")
        );
        assert_eq!(
            a(json!({"image": IMG, "package": "j-1g"}), plain.clone())["message"],
            "j-1g is not a valid package"
        );
        assert_eq!(
            a(
                json!({"image": IMG, "package": PKG}),
                json!({"type": "zone-dataset", "state": "disabled"})
            )["message"],
            format!("image {IMG} is not active")
        );
        assert!(parse("{")
            .unwrap_err()
            .starts_with("not a decide request: "));
        assert!(parse(r#"{"account": {"uuid": "x"}, "bogus": 1}"#).is_err());
    }
}
