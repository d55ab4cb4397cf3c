//! The builder rule and what an account may see.
//!
//! - `builder` is usable only when the **caller** is an operator (member of
//!   `operators`, CloudAPI's `isAdmin()`, not a sub-user) **and** the target
//!   account (the `:login` in the URL) is an operator too, so builder zones
//!   are never owned by customers (`--act-as` a customer is refused).
//! - Everyone else resolves brands with CloudAPI's lists as shipped (no
//!   builder), so a builder brand named by params, image or package gets
//!   today's unknown-brand 409 and nothing is revealed; builder packages and
//!   images are hidden from them (absent from lists, 404 by UUID), whatever
//!   their `owner_uuids` or `public` say.
//! - For operators, builder is never selected by `params.brand` alone: the
//!   package must carry brand `builder`, and the image must be a
//!   `zone-dataset`.

use serde_json::{json, Map, Value};

use crate::brand::{
    get_brand, get_brand_with, looks_like_builder, valid_brands, valid_hvm_brands, BrandInputs,
    Defaults, Resolved, BUILDER,
};
use crate::error::CloudApiError;

/// The group whose members are operators (`cn=operators, ou=groups, o=smartdc`).
pub const OPERATORS_GROUP: &str = "operators";

/// Who signed the request and for which account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// The account that owns the signing key.
    pub caller_uuid: String,
    pub caller_login: String,
    /// Sub-user login when the key is a sub-user's (`/<acct>/users/<u>/keys/..`).
    pub caller_user: Option<String>,
    /// The caller account's groups (from mahi).
    pub caller_groups: Vec<String>,
    /// The account named in the URL.
    pub account_uuid: String,
    pub account_login: String,
    pub account_groups: Vec<String>,
}

impl Principal {
    /// CloudAPI's `caller.isAdmin()`: the caller account is in `operators`
    /// and the key is the account's own (a sub-user is not an operator).
    pub fn caller_is_operator(&self) -> bool {
        self.caller_user.is_none() && self.caller_groups.iter().any(|g| g == OPERATORS_GROUP)
    }

    pub fn account_is_operator(&self) -> bool {
        self.account_groups.iter().any(|g| g == OPERATORS_GROUP)
    }

    /// Why builder is refused to this principal, or `None` when allowed.
    pub fn builder_refusal(&self) -> Option<String> {
        if self.caller_user.is_some() {
            Some(format!(
                "caller {}/{} is a sub-user, not an operator",
                self.caller_login,
                self.caller_user.as_deref().unwrap_or_default()
            ))
        } else if !self.caller_is_operator() {
            Some(format!(
                "caller {} is not in group {OPERATORS_GROUP}",
                self.caller_login
            ))
        } else if !self.account_is_operator() {
            Some(format!(
                "account {} is not an operator (builder zones are never owned by customers)",
                self.account_login
            ))
        } else {
            None
        }
    }

    pub fn builder_allowed(&self) -> bool {
        self.builder_refusal().is_none()
    }

    /// CloudAPI's `authorize`: the caller acts on its own account, or is an
    /// operator. Sub-users would go through RBAC, which this gate does not
    /// implement, so they are refused.
    pub fn authorize(&self) -> Result<(), CloudApiError> {
        if let Some(u) = &self.caller_user {
            return Err(CloudApiError::not_authorized(format!(
                "{}/{u} is not authorized: RBAC sub-users are not implemented by triton-gate",
                self.caller_login
            )));
        }
        if self.caller_uuid == self.account_uuid || self.caller_is_operator() {
            Ok(())
        } else {
            Err(CloudApiError::not_authorized(format!(
                "{} is not authorized to act as {}",
                self.caller_login, self.account_login
            )))
        }
    }
}

/// A refused request: what the client is told, and the real reason (audited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub error: CloudApiError,
    pub reason: String,
}

/// The brand facts of one CreateMachine request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateFacts {
    pub params_brand: Option<String>,
    pub image_brand: Option<String>,
    pub image_type: Option<String>,
    pub package_brand: Option<String>,
}

impl CreateFacts {
    fn inputs(&self) -> BrandInputs {
        BrandInputs {
            params: self.params_brand.clone(),
            image: self.image_brand.clone(),
            image_type: self.image_type.clone(),
            package: self.package_brand.clone(),
        }
    }

    /// Which inputs name (or imitate) builder: `params`, `image`, `package`.
    pub fn builder_mentions(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (name, val) in [
            ("params", &self.params_brand),
            ("image", &self.image_brand),
            ("package", &self.package_brand),
        ] {
            if val.as_deref().is_some_and(looks_like_builder) {
                v.push(name);
            }
        }
        v
    }
}

/// The brands operators may name or require.
pub fn operator_brands() -> Vec<&'static str> {
    let mut v: Vec<&str> = valid_brands();
    v.push(BUILDER);
    v.sort_unstable();
    v
}

/// Brand resolution plus the builder rule.
pub fn resolve_brand(
    who: &Principal,
    facts: &CreateFacts,
    defaults: &Defaults,
) -> Result<Resolved, Denial> {
    let mentions = facts.builder_mentions();
    let inputs = facts.inputs();
    if let Some(why) = who.builder_refusal() {
        // Exactly today's CloudAPI: builder is an unknown brand.
        return match get_brand(&inputs, defaults) {
            Ok(r) if mentions.is_empty() => Ok(r),
            Ok(r) => Err(Denial {
                // unreachable with the shipped lists, kept as a backstop
                error: CloudApiError::invalid_argument(format!(
                    "Unknown brand \"{}\"",
                    crate::brand::safe_brand_name(&r.brand)
                )),
                reason: format!("builder via {}; {why}", mentions.join(", ")),
            }),
            Err(e) => Err(Denial {
                reason: if mentions.is_empty() {
                    e.to_string()
                } else {
                    format!("builder via {}; {why}", mentions.join(", "))
                },
                error: CloudApiError::invalid_argument(e.to_string()),
            }),
        };
    }
    let mut params: Vec<&str> = valid_hvm_brands();
    params.push(BUILDER);
    let r = get_brand_with(&inputs, defaults, &params, &operator_brands()).map_err(|e| Denial {
        error: CloudApiError::invalid_argument(e.to_string()),
        reason: e.to_string(),
    })?;
    if r.brand == BUILDER {
        if facts.package_brand.as_deref() != Some(BUILDER) {
            let m = "Brand \"builder\" requires a package with brand \"builder\"";
            return Err(Denial {
                error: CloudApiError::invalid_argument(m),
                reason: m.to_string(),
            });
        }
        if facts.image_type.as_deref() != Some("zone-dataset") {
            let m = "Brand \"builder\" requires the image type to be \"zone-dataset\"";
            return Err(Denial {
                error: CloudApiError::invalid_argument(m),
                reason: m.to_string(),
            });
        }
    }
    Ok(r)
}

/// A PAPI package's brand, if any.
pub fn package_brand(pkg: &Value) -> Option<&str> {
    pkg.get("brand").and_then(Value::as_str)
}

/// An IMGAPI manifest's `requirements.brand`, if any.
pub fn image_brand(img: &Value) -> Option<&str> {
    img.get("requirements")
        .and_then(|r| r.get("brand"))
        .and_then(Value::as_str)
}

/// Whether a PAPI package may be shown to (or used by) this principal.
pub fn package_visible(who: &Principal, pkg: &Value) -> bool {
    who.builder_allowed() || !package_brand(pkg).is_some_and(looks_like_builder)
}

/// Whether an IMGAPI image may be shown to (or used by) this principal.
pub fn image_visible(who: &Principal, img: &Value) -> bool {
    who.builder_allowed() || !image_brand(img).is_some_and(looks_like_builder)
}

fn copy(out: &mut Map<String, Value>, to: &str, v: Option<&Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        out.insert(to.to_string(), v.clone());
    }
}

/// A PAPI package as CloudAPI's ListPackages/GetPackage show it.
pub fn cloudapi_package(p: &Value) -> Value {
    let mut o = Map::new();
    copy(&mut o, "id", p.get("uuid"));
    copy(&mut o, "name", p.get("name"));
    copy(&mut o, "memory", p.get("max_physical_memory"));
    copy(&mut o, "disk", p.get("quota"));
    copy(&mut o, "swap", p.get("max_swap"));
    copy(&mut o, "lwps", p.get("max_lwps"));
    o.insert(
        "vcpus".into(),
        p.get("vcpus")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(json!(0)),
    );
    copy(&mut o, "version", p.get("version"));
    copy(&mut o, "group", p.get("group"));
    copy(&mut o, "description", p.get("description"));
    o.insert(
        "default".into(),
        p.get("default")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(json!(false)),
    );
    copy(&mut o, "brand", p.get("brand"));
    if package_brand(p) == Some("bhyve") {
        copy(&mut o, "flexible_disk", p.get("flexible_disk"));
        copy(&mut o, "disks", p.get("disks"));
    }
    Value::Object(o)
}

/// An IMGAPI manifest as CloudAPI's GetImage shows it.
pub fn cloudapi_image(m: &Value) -> Value {
    let mut o = Map::new();
    copy(&mut o, "id", m.get("uuid"));
    for k in [
        "name",
        "version",
        "os",
        "requirements",
        "type",
        "description",
        "files",
        "tags",
        "homepage",
        "published_at",
        "owner",
        "public",
        "state",
    ] {
        copy(&mut o, k, m.get(k));
    }
    Value::Object(o)
}

/// A VMAPI VM as CloudAPI's GetMachine shows it.
pub fn cloudapi_machine(vm: &Value) -> Value {
    let brand = vm.get("brand").and_then(Value::as_str).unwrap_or_default();
    let hvm = valid_hvm_brands().contains(&brand);
    let mut o = Map::new();
    copy(&mut o, "id", vm.get("uuid"));
    copy(&mut o, "name", vm.get("alias"));
    o.insert(
        "type".into(),
        json!(if hvm {
            "virtualmachine"
        } else {
            "smartmachine"
        }),
    );
    copy(&mut o, "brand", vm.get("brand"));
    copy(&mut o, "state", vm.get("state"));
    copy(&mut o, "image", vm.get("image_uuid"));
    o.insert(
        "ips".into(),
        vm.get("nics")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|n| n.get("ip").cloned()).collect())
            .unwrap_or_else(|| json!([])),
    );
    copy(
        &mut o,
        "memory",
        vm.get("ram").or_else(|| vm.get("max_physical_memory")),
    );
    if let Some(q) = vm.get("quota").and_then(Value::as_f64) {
        o.insert("disk".into(), json!((q * 1024.0) as u64));
    }
    o.insert(
        "metadata".into(),
        vm.get("customer_metadata")
            .cloned()
            .unwrap_or_else(|| json!({})),
    );
    o.insert(
        "tags".into(),
        vm.get("tags").cloned().unwrap_or_else(|| json!({})),
    );
    copy(&mut o, "created", vm.get("create_timestamp"));
    copy(&mut o, "updated", vm.get("last_modified"));
    copy(&mut o, "package", vm.get("billing_id"));
    copy(&mut o, "compute_node", vm.get("server_uuid"));
    copy(&mut o, "owner_uuid", vm.get("owner_uuid"));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brand::BrandSource;

    fn op() -> Principal {
        Principal {
            caller_uuid: "a".into(),
            caller_login: "ops".into(),
            caller_groups: vec!["operators".into()],
            account_uuid: "a".into(),
            account_login: "ops".into(),
            account_groups: vec!["operators".into()],
            ..Default::default()
        }
    }

    fn cust() -> Principal {
        Principal {
            caller_uuid: "c".into(),
            caller_login: "cust".into(),
            account_uuid: "c".into(),
            account_login: "cust".into(),
            ..Default::default()
        }
    }

    fn facts(params: &str, image: &str, ty: &str, package: &str) -> CreateFacts {
        let o = |s: &str| (!s.is_empty()).then(|| s.to_string());
        CreateFacts {
            params_brand: o(params),
            image_brand: o(image),
            image_type: o(ty),
            package_brand: o(package),
        }
    }

    #[test]
    fn who_is_an_operator() {
        assert!(op().builder_allowed());
        assert!(!cust().builder_allowed());
        // a sub-user of an operator account
        let mut sub = op();
        sub.caller_user = Some("sub1".into());
        assert!(!sub.caller_is_operator());
        assert!(sub.builder_refusal().unwrap().contains("sub-user"));
        assert_eq!(sub.authorize().unwrap_err().status, 403);
        // role-operators is not operators
        let mut ro = cust();
        ro.caller_groups = vec!["role-operators".into()];
        ro.account_groups = ro.caller_groups.clone();
        assert!(!ro.builder_allowed());
        // an operator acting for a customer
        let mut act = op();
        act.account_uuid = "c".into();
        act.account_login = "cust".into();
        act.account_groups = vec![];
        assert!(act.authorize().is_ok());
        assert!(act
            .builder_refusal()
            .unwrap()
            .contains("never owned by customers"));
        // a customer acting for someone else
        let mut other = cust();
        other.account_uuid = "a".into();
        other.account_login = "ops".into();
        assert_eq!(other.authorize().unwrap_err().code, "NotAuthorized");
        assert!(cust().authorize().is_ok());
    }

    #[test]
    fn operator_gets_builder_from_package_and_image() {
        let d = Defaults::default();
        let r = resolve_brand(&op(), &facts("", "builder", "zone-dataset", "builder"), &d).unwrap();
        assert_eq!(
            (r.brand.as_str(), r.source),
            ("builder", BrandSource::Image)
        );
        let r = resolve_brand(&op(), &facts("", "", "zone-dataset", "builder"), &d).unwrap();
        assert_eq!(
            (r.brand.as_str(), r.source),
            ("builder", BrandSource::Package)
        );
        let r = resolve_brand(&op(), &facts("builder", "", "zone-dataset", "builder"), &d).unwrap();
        assert_eq!(r.source, BrandSource::Params);
        // operators still get normal brands
        let r = resolve_brand(&op(), &facts("", "", "zone-dataset", ""), &d).unwrap();
        assert_eq!(r.brand, "joyent");
    }

    #[test]
    fn operator_builder_needs_package_and_zone_dataset() {
        let d = Defaults::default();
        let e = resolve_brand(&op(), &facts("builder", "", "zone-dataset", ""), &d).unwrap_err();
        assert_eq!(
            e.error.message,
            "Brand \"builder\" requires a package with brand \"builder\""
        );
        let e = resolve_brand(&op(), &facts("", "builder", "zone-dataset", ""), &d).unwrap_err();
        assert_eq!(e.error.status, 409);
        let e =
            resolve_brand(&op(), &facts("builder", "", "zone-dataset", "joyent"), &d).unwrap_err();
        assert_eq!(
            e.error.message,
            "Package requires brand \"joyent\", but brand \"builder\" was selected"
        );
        let e = resolve_brand(&op(), &facts("", "", "lx-dataset", "builder"), &d).unwrap_err();
        assert_eq!(
            e.error.message,
            "Brand \"builder\" requires the image type to be \"zone-dataset\""
        );
        let e = resolve_brand(&op(), &facts("", "", "zvol", "builder"), &d).unwrap_err();
        assert_eq!(
            e.error.message,
            "Brand \"builder\" cannot use an image of type \"zvol\""
        );
        // lookalikes are unknown brands for operators too
        let e = resolve_brand(&op(), &facts("", "", "zone-dataset", "Builder"), &d).unwrap_err();
        assert_eq!(
            e.error.message,
            "Package requires unknown brand \"Builder\""
        );
    }

    #[test]
    fn non_operators_get_todays_errors_by_every_path() {
        let d = Defaults::default();
        let cases = [
            (
                facts("builder", "", "zone-dataset", "joyent"),
                "Unknown brand \"builder\". Brand is restricted to one of [\"bhyve\",\"kvm\"]",
                "params",
            ),
            (
                facts("", "builder", "zone-dataset", ""),
                "Image requires unknown brand \"builder\"",
                "image",
            ),
            (
                facts("", "", "zone-dataset", "builder"),
                "Package requires unknown brand \"builder\"",
                "package",
            ),
            (
                facts("", "", "zvol", "builder"),
                "Package requires unknown brand \"builder\"",
                "package",
            ),
            (
                facts("Builder", "", "zone-dataset", ""),
                "Unknown brand \"Builder\". Brand is restricted to one of [\"bhyve\",\"kvm\"]",
                "params",
            ),
            (
                facts("builder ", "", "zone-dataset", ""),
                "Unknown brand \"builder\". Brand is restricted to one of [\"bhyve\",\"kvm\"]",
                "params",
            ),
            (
                facts("", "builder\"x", "zone-dataset", ""),
                "Image requires unknown brand \"builderx\"",
                "image",
            ),
        ];
        for who in [cust(), {
            let mut s = op();
            s.caller_user = Some("sub1".into());
            s
        }] {
            for (f, msg, via) in &cases {
                let e = resolve_brand(&who, f, &d).unwrap_err();
                assert_eq!(e.error.status, 409);
                assert_eq!(e.error.code, "InvalidArgument");
                assert_eq!(&e.error.message, msg);
                assert!(
                    e.reason.contains(&format!("builder via {via}")),
                    "{}",
                    e.reason
                );
            }
        }
        // and they still get their normal brands
        assert_eq!(
            resolve_brand(&cust(), &facts("", "", "zone-dataset", "joyent"), &d)
                .unwrap()
                .brand,
            "joyent"
        );
    }

    #[test]
    fn visibility() {
        let b = json!({"uuid": "p", "brand": "builder", "owner_uuids": ["c"]});
        let sneaky = json!({"uuid": "p", "brand": "BUILDER "});
        let j = json!({"uuid": "q", "brand": "joyent"});
        let n = json!({"uuid": "r"});
        for p in [&b, &sneaky] {
            assert!(!package_visible(&cust(), p));
            assert!(package_visible(&op(), p));
        }
        assert!(package_visible(&cust(), &j));
        assert!(package_visible(&cust(), &n));
        let img = json!({"uuid": "i", "requirements": {"brand": "builder"}, "public": true});
        assert!(!image_visible(&cust(), &img));
        assert!(image_visible(&op(), &img));
        assert!(image_visible(&cust(), &json!({"uuid": "i"})));
    }

    #[test]
    fn translations() {
        let p = cloudapi_package(&json!({
            "uuid": "u", "name": "builder-2g", "max_physical_memory": 2048, "quota": 20480,
            "max_swap": 4096, "max_lwps": 2000, "version": "1.0.0", "brand": "builder", "cpu_cap": 200
        }));
        assert_eq!(
            p,
            json!({"id": "u", "name": "builder-2g", "memory": 2048, "disk": 20480, "swap": 4096,
                   "lwps": 2000, "vcpus": 0, "version": "1.0.0", "default": false, "brand": "builder"})
        );
        let m = cloudapi_machine(
            &json!({"uuid": "v", "alias": "b0", "brand": "builder", "state": "running",
            "quota": 20, "ram": 2048, "server_uuid": "s", "image_uuid": "i", "billing_id": "p"}),
        );
        assert_eq!(m["type"], "smartmachine");
        assert_eq!(m["disk"], 20480);
        assert_eq!(m["compute_node"], "s");
        assert_eq!(m["name"], "b0");
        assert_eq!(
            cloudapi_machine(&json!({"brand": "bhyve"}))["type"],
            "virtualmachine"
        );
    }
}
