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
//!   their `owner_uuids`, `public` or `acl` say.
//! - For operators, builder is never selected by `params.brand` alone: the
//!   package must carry brand `builder`, and the image must be a
//!   `zone-dataset`.
//!
//! Everything here is pure: typed Triton objects in, decisions out.

use triton_api::{Account, Image, Package, User, Vm};

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
    /// The account that owns the signing key (a sub-user's parent account).
    pub caller_uuid: String,
    pub caller_login: String,
    /// Sub-user login when the key is a sub-user's (`/<acct>/users/<u>/keys/..`).
    pub caller_user: Option<String>,
    /// The caller account is an operator (node-ufds `isAdmin()`).
    pub caller_admin: bool,
    /// The account named in the URL.
    pub account_uuid: String,
    pub account_login: String,
    pub account_admin: bool,
}

impl Principal {
    /// From mahi's answers: the key's account (and sub-user) and the URL's
    /// account.
    pub fn new(caller: &Account, user: Option<&User>, account: &Account) -> Principal {
        Principal {
            caller_uuid: caller.uuid.clone(),
            caller_login: caller.login.clone(),
            caller_user: user.map(|u| u.login.clone()),
            caller_admin: caller.is_admin(),
            account_uuid: account.uuid.clone(),
            account_login: account.login.clone(),
            account_admin: account.is_admin(),
        }
    }

    /// `login` or `login/user`.
    pub fn caller_name(&self) -> String {
        match &self.caller_user {
            Some(u) => format!("{}/{u}", self.caller_login),
            None => self.caller_login.clone(),
        }
    }

    /// CloudAPI's `caller.isAdmin()`: the caller account is in `operators`
    /// and the key is the account's own (a sub-user is not an operator).
    pub fn caller_is_operator(&self) -> bool {
        self.caller_user.is_none() && self.caller_admin
    }

    pub fn account_is_operator(&self) -> bool {
        self.account_admin
    }

    /// Why builder is refused to this principal, or `None` when allowed.
    pub fn builder_refusal(&self) -> Option<String> {
        if self.caller_user.is_some() {
            Some(format!(
                "caller {} is a sub-user, not an operator",
                self.caller_name()
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

    /// CloudAPI's `authorize`: the caller acts on its own account (a
    /// sub-user on its parent account: without RBAC roles here it may do
    /// what the account may, builder excepted), or is an operator.
    pub fn authorize(&self) -> Result<(), CloudApiError> {
        if self.caller_uuid == self.account_uuid || self.caller_is_operator() {
            Ok(())
        } else {
            Err(CloudApiError::not_authorized(format!(
                "{} is not authorized to act as {}",
                self.caller_name(),
                self.account_login
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
    /// The facts of a request's `brand` parameter, its image and package.
    pub fn of(params_brand: Option<String>, image: &Image, package: &Package) -> CreateFacts {
        CreateFacts {
            params_brand,
            image_brand: image_brand(image).map(str::to_string),
            image_type: image.kind.clone(),
            package_brand: package_brand(package).map(str::to_string),
        }
    }

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

/// A PAPI package's brand, as stored (empty strings included).
pub fn package_brand(pkg: &Package) -> Option<&str> {
    pkg.brand.as_deref()
}

/// An IMGAPI manifest's `requirements.brand`, as stored.
pub fn image_brand(img: &Image) -> Option<&str> {
    img.requirements.as_ref().and_then(|r| r.brand.as_deref())
}

/// Whether a package is (or imitates) a builder package.
pub fn is_builder_package(pkg: &Package) -> bool {
    package_brand(pkg).is_some_and(looks_like_builder)
}

/// Whether an image is (or imitates) a builder image.
pub fn is_builder_image(img: &Image) -> bool {
    image_brand(img).is_some_and(looks_like_builder)
}

/// Whether a VM is (or imitates) a builder zone.
pub fn is_builder_vm(vm: &Vm) -> bool {
    vm.brand.as_deref().is_some_and(looks_like_builder)
}

/// Whether a PAPI package may be shown to (or used by) this principal.
/// Reads the principal only through [`Principal::builder_allowed`] (as
/// [`image_visible`] does): the gate keeps one rendering of a listing per
/// answer of that question ([`crate::cache::Listing`]).
pub fn package_visible(who: &Principal, pkg: &Package) -> bool {
    who.builder_allowed() || !is_builder_package(pkg)
}

/// Whether an IMGAPI image may be shown to (or used by) this principal.
pub fn image_visible(who: &Principal, img: &Image) -> bool {
    who.builder_allowed() || !is_builder_image(img)
}

/// Whether a VM of the URL's account may be shown to this principal: a
/// builder zone is shown only to those who may use builder.
pub fn vm_visible(who: &Principal, vm: &Vm) -> bool {
    who.builder_allowed() || !is_builder_vm(vm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brand::BrandSource;
    use serde_json::json;

    fn op() -> Principal {
        Principal {
            caller_uuid: "a".into(),
            caller_login: "ops".into(),
            caller_admin: true,
            account_uuid: "a".into(),
            account_login: "ops".into(),
            account_admin: true,
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
        // a sub-user of an operator account: authorized on its account, never an operator
        let mut sub = op();
        sub.caller_user = Some("sub1".into());
        assert!(!sub.caller_is_operator());
        assert!(sub.builder_refusal().unwrap().contains("sub-user"));
        assert!(sub.authorize().is_ok());
        assert_eq!(sub.caller_name(), "ops/sub1");
        // ... but not on another account
        let mut sub_other = sub.clone();
        sub_other.account_uuid = "c".into();
        sub_other.account_login = "cust".into();
        assert_eq!(
            sub_other.authorize().unwrap_err().message,
            "ops/sub1 is not authorized to act as cust"
        );
        // role-operators is not operators
        let a: Account = serde_json::from_value(
            json!({"uuid": "r", "login": "r", "groups": ["role-operators"]}),
        )
        .unwrap();
        let ro = Principal::new(&a, None, &a);
        assert!(!ro.builder_allowed());
        let o: Account = serde_json::from_value(
            json!({"uuid": "o", "login": "o", "memberof": ["cn=operators, ou=groups, o=smartdc"]}),
        )
        .unwrap();
        assert!(Principal::new(&o, None, &o).builder_allowed());
        // an operator acting for a customer
        let mut act = op();
        act.account_uuid = "c".into();
        act.account_login = "cust".into();
        act.account_admin = false;
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
        let pkg = |v: serde_json::Value| -> Package { serde_json::from_value(v).unwrap() };
        let b = pkg(json!({"uuid": "p", "brand": "builder", "owner_uuids": ["c"]}));
        let sneaky = pkg(json!({"uuid": "p", "brand": "BUILDER "}));
        let j = pkg(json!({"uuid": "q", "brand": "joyent"}));
        let n = pkg(json!({"uuid": "r"}));
        for p in [&b, &sneaky] {
            assert!(!package_visible(&cust(), p));
            assert!(package_visible(&op(), p));
        }
        assert!(package_visible(&cust(), &j));
        assert!(package_visible(&cust(), &n));
        let img: Image = serde_json::from_value(
            json!({"uuid": "i", "requirements": {"brand": "builder"}, "public": true}),
        )
        .unwrap();
        assert!(!image_visible(&cust(), &img));
        assert!(image_visible(&op(), &img));
        assert!(image_visible(&cust(), &Image::default()));
        let vm: Vm = serde_json::from_value(json!({"uuid": "v", "brand": "builder"})).unwrap();
        assert!(!vm_visible(&cust(), &vm) && vm_visible(&op(), &vm));
    }

    #[test]
    fn facts_from_typed_objects() {
        let img: Image = serde_json::from_value(
            json!({"uuid": "i", "type": "zone-dataset", "requirements": {"brand": "builder"}}),
        )
        .unwrap();
        let pkg: Package =
            serde_json::from_value(json!({"uuid": "p", "brand": "builder"})).unwrap();
        let f = CreateFacts::of(None, &img, &pkg);
        assert_eq!(f, facts("", "builder", "zone-dataset", "builder"));
        assert_eq!(f.builder_mentions(), ["image", "package"]);
    }
}
