//! Accounts, sub-users and keys as mahi (Triton's auth cache over UFDS)
//! serves them (`shared/notes/triton.md` 1.3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::{Lenient, LenientExt as _};

/// The UFDS group whose members are operators (node-ufds `isAdmin()`).
pub const OPERATORS_DN: &str = "cn=operators, ou=groups, o=smartdc";

fn norm_dn(dn: &str) -> String {
    dn.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The CN of a group DN (`cn=operators, ou=groups, o=smartdc` ->
/// `operators`), as node-ufds `groups()` does.
pub fn group_cn(dn: &str) -> Option<&str> {
    let first = dn.split(',').next()?.trim();
    let (k, v) = first.split_once('=')?;
    k.trim().eq_ignore_ascii_case("cn").then(|| v.trim())
}

/// An account (mahi `account`, UFDS `sdcperson`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Account {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub login: String,
    /// `account` (mahi's `type`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Group CNs (mahi): `["operators"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Group DNs (UFDS): `["cn=operators, ou=groups, o=smartdc"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memberof: Option<Vec<String>>,
    /// UFDS stores the string `"true"`; CloudAPI checks `=== 'true'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_for_provisioning: Option<Lenient<bool>>,
    /// MD5 fingerprint (`aa:bb:..`) to OpenSSH public key line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<BTreeMap<String, String>>,
    /// mahi's precomputed operator flag.
    #[serde(
        default,
        rename = "isOperator",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_operator: Option<Lenient<bool>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A sub-user of an account (mahi `user`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uuid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub login: String,
    /// The parent account's UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(
        default,
        rename = "defaultRoles",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memberof: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A public key: CloudAPI's `{name, fingerprint, key}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Key {
    #[serde(default)]
    pub name: String,
    /// MD5, `aa:bb:...`.
    #[serde(default)]
    pub fingerprint: String,
    /// The OpenSSH public key line.
    #[serde(default)]
    pub key: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What mahi answers for an account or user lookup:
/// `{"roles": {...}, "account": {...}, "user"?: {...}}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuthInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Map<String, Value>>,
    pub account: Account,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn keys_of(m: Option<&BTreeMap<String, String>>) -> Vec<Key> {
    m.map(|m| {
        m.iter()
            .map(|(fp, k)| Key {
                name: fp.clone(),
                fingerprint: fp.clone(),
                key: k.clone(),
                extra: Map::new(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn find_key<'a>(m: Option<&'a BTreeMap<String, String>>, fp: &str) -> Option<&'a str> {
    m?.values()
        .map(String::as_str)
        .find(|k| crate::httpsig::key_matches(k, fp))
}

impl Account {
    /// Whether the account is an operator, as node-ufds `isAdmin()` says:
    /// member of `cn=operators, ou=groups, o=smartdc` (or, from mahi, the
    /// `operators` group or `isOperator`). `role-operators` does not count
    /// (that needs `as-role=_operator`; `shared/notes/triton.md` 1.3).
    pub fn is_admin(&self) -> bool {
        let op = norm_dn(OPERATORS_DN);
        self.is_operator.val() == Some(true)
            || self
                .groups
                .as_ref()
                .is_some_and(|g| g.iter().any(|x| x == "operators"))
            || self
                .memberof
                .as_ref()
                .is_some_and(|m| m.iter().any(|dn| norm_dn(dn) == op))
    }

    /// Group names: `groups`, else the CNs of `memberof`.
    pub fn group_names(&self) -> Vec<String> {
        match (&self.groups, &self.memberof) {
            (Some(g), _) => g.clone(),
            (None, Some(m)) => m
                .iter()
                .filter_map(|dn| group_cn(dn).map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `approved_for_provisioning` is true (`"true"` in UFDS).
    pub fn approved(&self) -> bool {
        self.approved_for_provisioning.val() == Some(true)
    }

    /// Its keys, named by fingerprint.
    pub fn key_list(&self) -> Vec<Key> {
        keys_of(self.keys.as_ref())
    }

    /// The key a fingerprint names (MD5 `aa:..`, `MD5:aa:..` or
    /// `SHA256:..`).
    pub fn key(&self, fingerprint: &str) -> Option<&str> {
        find_key(self.keys.as_ref(), fingerprint)
    }
}

impl User {
    pub fn key_list(&self) -> Vec<Key> {
        keys_of(self.keys.as_ref())
    }

    pub fn key(&self, fingerprint: &str) -> Option<&str> {
        find_key(self.keys.as_ref(), fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operators() {
        let a: Account = serde_json::from_value(json!({
            "uuid": "u", "login": "ops", "memberof": ["cn=operators,ou=groups,o=smartdc"],
            "approved_for_provisioning": "true"
        }))
        .unwrap();
        assert!(a.is_admin());
        assert!(a.approved());
        assert_eq!(a.group_names(), ["operators"]);
        let b: Account = serde_json::from_value(json!({
            "uuid": "u", "login": "r", "groups": ["role-operators", "readers"],
            "approved_for_provisioning": false, "isOperator": false
        }))
        .unwrap();
        assert!(!b.is_admin());
        assert!(!b.approved());
        let c: Account = serde_json::from_value(json!({"login": "m", "isOperator": true})).unwrap();
        assert!(c.is_admin());
        assert_eq!(
            group_cn("cn=readers, ou=groups, o=smartdc"),
            Some("readers")
        );
        assert_eq!(group_cn("ou=x"), None);
    }

    #[test]
    fn mahi_answer_round_trip() {
        let wire = json!({"roles": {}, "account": {"type": "account", "uuid": "u", "login": "ops",
            "groups": ["operators"], "approved_for_provisioning": true,
            "keys": {"aa:bb": "ssh-ed25519 AAAA x"}, "isOperator": true, "cn": "Ops"},
            "user": {"type": "user", "uuid": "s", "account": "u", "login": "sub", "keys": {},
                     "roles": [], "defaultRoles": []}});
        let a: AuthInfo = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(a.account.key_list()[0].fingerprint, "aa:bb");
        assert_eq!(a.account.extra["cn"], "Ops");
        assert_eq!(a.user.as_ref().unwrap().account.as_deref(), Some("u"));
        assert_eq!(serde_json::to_value(&a).unwrap(), wire);
    }
}
