//! Accounts as Triton's auth cache (mahi) serves them: `GET /accounts?login=`,
//! `GET /accounts/:uuid`, `GET /users?account=&login=`, `GET /users/:uuid`,
//! `GET /uuids`, `GET /names`. Each answer is `{roles, account[, user]}` with
//! `account = {type, uuid, login, groups, approved_for_provisioning, keys,
//! isOperator}`; `keys` maps the MD5 fingerprint (`aa:bb:...`) to the
//! OpenSSH public key. `isOperator` is membership of the `operators` group.
//!
//! Accounts are added with `sim triton account-add` or [`add_account`]
//! (real Triton writes them to UFDS; mahi only reads).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use triton_api::{Account, AuthInfo, User};

use super::http::{json_response, ApiError, ApiResult, Query};
use super::store::{Store, ACCOUNTS, USERS};
use super::{is_uuid, new_uuid, Ctx};

/// The MD5 fingerprint of an OpenSSH public key line, as `aa:bb:..`.
pub fn md5_fingerprint(pubkey: &str) -> anyhow::Result<String> {
    let blob = pubkey
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("not an OpenSSH public key"))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(blob)?;
    let d = Md5::digest(&raw);
    Ok(d.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn keys_map(keys: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for k in keys {
        m.insert(md5_fingerprint(k)?, k.clone());
    }
    Ok(m)
}

/// Add or replace the account `login`; returns it in mahi's shape.
pub fn add_account(
    store: &Store,
    login: &str,
    uuid: Option<&str>,
    groups: &[String],
    keys: &[String],
    approved: bool,
) -> anyhow::Result<Value> {
    let keys = keys_map(keys)?;
    if let Some(u) = uuid {
        anyhow::ensure!(is_uuid(u), "{u} is not a UUID");
    }
    store.update(ACCOUNTS, |c| {
        let existing = c
            .iter()
            .find(|(_, a)| a["login"] == login)
            .map(|(k, _)| k.clone());
        let id = uuid
            .map(str::to_string)
            .or(existing.clone())
            .unwrap_or_else(new_uuid);
        if let Some(e) = existing {
            c.remove(&e);
        }
        let acct = Account {
            kind: Some("account".into()),
            uuid: id.clone(),
            login: login.to_string(),
            groups: Some(groups.to_vec()),
            approved_for_provisioning: Some(approved.into()),
            keys: Some(keys),
            is_operator: Some(groups.iter().any(|g| g == "operators").into()),
            ..Default::default()
        };
        let v = serde_json::to_value(&acct).unwrap_or_default();
        c.insert(id, v.clone());
        v
    })
}

/// Add or replace the sub-user `login` of account `account` (a login).
pub fn add_user(
    store: &Store,
    account: &str,
    login: &str,
    uuid: Option<&str>,
    keys: &[String],
) -> anyhow::Result<Value> {
    let keys = keys_map(keys)?;
    let acct = find_account(&store.read(ACCOUNTS)?, account)
        .ok_or_else(|| anyhow::anyhow!("account {account} does not exist"))?;
    let acct_uuid = acct["uuid"].as_str().unwrap_or_default().to_string();
    store.update(USERS, |c| {
        let existing = c
            .iter()
            .find(|(_, u)| u["login"] == login && u["account"] == acct_uuid.as_str())
            .map(|(k, _)| k.clone());
        let id = uuid
            .map(str::to_string)
            .or(existing.clone())
            .unwrap_or_else(new_uuid);
        if let Some(e) = existing {
            c.remove(&e);
        }
        let user = User {
            kind: Some("user".into()),
            uuid: id.clone(),
            account: Some(acct_uuid.clone()),
            login: login.to_string(),
            keys: Some(keys),
            roles: Some(Vec::new()),
            default_roles: Some(Vec::new()),
            ..Default::default()
        };
        let v = serde_json::to_value(&user).unwrap_or_default();
        c.insert(id, v.clone());
        v
    })
}

fn find_account(c: &Map<String, Value>, login: &str) -> Option<Value> {
    c.values().find(|a| a["login"] == login).cloned()
}

pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route(
            "/ping",
            get(|| async { json_response(200, &json!({"ping": "pong"})) }),
        )
        .route("/accounts", get(get_account))
        .route("/accounts/{id}", get(get_account_by_uuid))
        .route("/users", get(get_user))
        .route("/users/{id}", get(get_user_by_uuid))
        .route("/uuids", get(name_to_uuid))
        .route("/names", get(uuid_to_name))
        .with_state(ctx)
}

/// mahi's answer, `{roles, account, user?}` (triton-api's `AuthInfo`);
/// an account record that is not one (a user whose account is gone) is
/// passed as it is.
fn answer(account: Value, user: Option<Value>) -> Value {
    let typed = serde_json::from_value::<Account>(account.clone())
        .ok()
        .filter(|_| account.is_object())
        .and_then(|a| {
            let u = match &user {
                Some(u) => Some(serde_json::from_value::<User>(u.clone()).ok()?),
                None => None,
            };
            serde_json::to_value(AuthInfo {
                roles: Some(Map::new()),
                account: a,
                user: u,
                extra: Map::new(),
            })
            .ok()
        });
    typed.unwrap_or_else(|| {
        let mut m = Map::new();
        m.insert("roles".into(), json!({}));
        m.insert("account".into(), account);
        if let Some(u) = user {
            m.insert("user".into(), u);
        }
        Value::Object(m)
    })
}

async fn get_account(State(ctx): State<Arc<Ctx>>, uri: Uri, _b: Bytes) -> ApiResult {
    let q = Query::from_uri(&uri);
    let Some(login) = q.get("login") else {
        return Err(ApiError::new(409, "MissingParameter", "login is required"));
    };
    let accts = ctx.store.read(ACCOUNTS)?;
    match find_account(&accts, login) {
        Some(a) => Ok(json_response(200, &answer(a, None))),
        None => Err(ApiError::new(
            404,
            "AccountDoesNotExist",
            format!("account {login} does not exist"),
        )),
    }
}

async fn get_account_by_uuid(State(ctx): State<Arc<Ctx>>, Path(id): Path<String>) -> ApiResult {
    match ctx.store.read(ACCOUNTS)?.get(&id) {
        Some(a) => Ok(json_response(200, &answer(a.clone(), None))),
        None => Err(ApiError::new(
            404,
            "AccountIdDoesNotExist",
            format!("accountid {id} does not exist"),
        )),
    }
}

async fn get_user(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let (Some(account), Some(login)) = (q.get("account"), q.get("login")) else {
        return Err(ApiError::new(
            409,
            "MissingParameter",
            "account and login are required",
        ));
    };
    let fallback = q.get("fallback").map(|v| v != "false").unwrap_or(true);
    let Some(acct) = find_account(&ctx.store.read(ACCOUNTS)?, account) else {
        return Err(ApiError::new(
            404,
            "AccountDoesNotExist",
            format!("account {account} does not exist"),
        ));
    };
    let users = ctx.store.read(USERS)?;
    let user = users
        .values()
        .find(|u| u["login"] == login && u["account"] == acct["uuid"])
        .cloned();
    match user {
        Some(u) => Ok(json_response(200, &answer(acct, Some(u)))),
        None if fallback => Ok(json_response(200, &answer(acct, None))),
        None => Err(ApiError::new(
            404,
            "UserDoesNotExist",
            format!("user {login} does not exist in account {account}"),
        )),
    }
}

async fn get_user_by_uuid(State(ctx): State<Arc<Ctx>>, Path(id): Path<String>) -> ApiResult {
    let users = ctx.store.read(USERS)?;
    let Some(u) = users.get(&id) else {
        return Err(ApiError::new(
            404,
            "UserIdDoesNotExist",
            format!("userid {id} does not exist"),
        ));
    };
    let accts = ctx.store.read(ACCOUNTS)?;
    let acct = u["account"]
        .as_str()
        .and_then(|a| accts.get(a))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json_response(200, &answer(acct, Some(u.clone()))))
}

async fn name_to_uuid(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let Some(account) = q.get("account") else {
        return Err(ApiError::new(
            409,
            "MissingParameter",
            "account is required",
        ));
    };
    let Some(acct) = find_account(&ctx.store.read(ACCOUNTS)?, account) else {
        return Err(ApiError::new(
            404,
            "AccountDoesNotExist",
            format!("account {account} does not exist"),
        ));
    };
    let mut out = Map::new();
    out.insert("account".into(), acct["uuid"].clone());
    let names = q.all("name");
    if q.get("type") == Some("user") && !names.is_empty() {
        let users = ctx.store.read(USERS)?;
        let mut m = Map::new();
        for n in names {
            if let Some(u) = users
                .values()
                .find(|u| u["login"] == n && u["account"] == acct["uuid"])
            {
                m.insert(n.to_string(), u["uuid"].clone());
            }
        }
        out.insert("uuids".into(), Value::Object(m));
    }
    Ok(json_response(200, &Value::Object(out)))
}

async fn uuid_to_name(State(ctx): State<Arc<Ctx>>, uri: Uri) -> ApiResult {
    let q = Query::from_uri(&uri);
    let accts = ctx.store.read(ACCOUNTS)?;
    let users = ctx.store.read(USERS)?;
    let mut out = Map::new();
    for id in q.all("uuid") {
        if let Some(a) = accts.get(id) {
            out.insert(id.to_string(), a["login"].clone());
        } else if let Some(u) = users.get(id) {
            out.insert(id.to_string(), u["login"].clone());
        }
    }
    Ok(json_response(200, &Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // ssh-keygen -t ed25519 output; fingerprint from `ssh-keygen -l -E md5`.
    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1Bte7OQTwq7+SjI0hMv2qsyUTTjHeI8dD6gLbcu8Sg sim@test";

    #[test]
    fn fingerprint_is_md5_of_the_blob() {
        let fp = md5_fingerprint(KEY).unwrap();
        assert_eq!(fp.len(), 47);
        assert_eq!(fp.matches(':').count(), 15);
        assert!(md5_fingerprint("garbage").is_err());
    }

    #[test]
    fn accounts_round_trip_and_operator_flag() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let a = add_account(
            &s,
            "admin",
            None,
            &["operators".into()],
            &[KEY.into()],
            true,
        )
        .unwrap();
        assert_eq!(a["isOperator"], true);
        let b = add_account(&s, "cust", None, &[], &[], false).unwrap();
        assert_eq!(b["isOperator"], false);
        // replacing keeps the uuid
        let a2 = add_account(&s, "admin", None, &["operators".into()], &[], true).unwrap();
        assert_eq!(a["uuid"], a2["uuid"]);
        assert_eq!(s.read(ACCOUNTS).unwrap().len(), 2);
        let u = add_user(&s, "admin", "sub", None, &[]).unwrap();
        assert_eq!(u["account"], a["uuid"]);
        assert!(add_user(&s, "nobody", "x", None, &[]).is_err());
    }
}
