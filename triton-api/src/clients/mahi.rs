//! mahi, Triton's auth cache over UFDS (`shared/notes/triton.md` 1.3):
//! accounts, sub-users, their keys and groups. No authentication, admin
//! network.

use reqwest::Method;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::{HttpClient, Req, Service, NO_QUERY};
use crate::types::{AuthInfo, Key};

/// A mahi client.
#[derive(Debug, Clone)]
pub struct Mahi {
    svc: Service,
}

impl Mahi {
    pub fn new(http: &HttpClient, url: &str) -> Result<Mahi, ApiError> {
        Ok(Mahi {
            svc: Service::new("mahi", http, url)?,
        })
    }

    pub fn url(&self) -> &str {
        self.svc.base.as_str()
    }

    pub async fn ping(&self) -> Result<Value, ApiError> {
        self.svc.get(&["ping"], NO_QUERY).await
    }

    /// `GET /accounts?login=`: 404 `AccountDoesNotExist` when unknown.
    pub async fn account_by_login(&self, login: &str) -> Result<AuthInfo, ApiError> {
        self.svc.get(&["accounts"], &[("login", login)]).await
    }

    /// `GET /accounts/:uuid`.
    pub async fn account_by_uuid(&self, uuid: &str) -> Result<AuthInfo, ApiError> {
        self.svc.get(&["accounts", uuid], NO_QUERY).await
    }

    /// `GET /users?account=&login=&fallback=`: the sub-user `login` of the
    /// account `account` (a login). With `fallback` mahi answers the
    /// account alone when the user does not exist; without it, 404
    /// `UserDoesNotExist`.
    pub async fn user_by_login(
        &self,
        account: &str,
        login: &str,
        fallback: bool,
    ) -> Result<AuthInfo, ApiError> {
        let fb = if fallback { "true" } else { "false" };
        self.svc
            .get(
                &["users"],
                &[("account", account), ("login", login), ("fallback", fb)],
            )
            .await
    }

    /// `GET /users/:uuid`.
    pub async fn user_by_uuid(&self, uuid: &str) -> Result<AuthInfo, ApiError> {
        self.svc.get(&["users", uuid], NO_QUERY).await
    }

    /// The keys of an account, or of its sub-user `user`.
    pub async fn keys(&self, login: &str, user: Option<&str>) -> Result<Vec<Key>, ApiError> {
        Ok(match user {
            None => self.account_by_login(login).await?.account.key_list(),
            Some(u) => self
                .user_by_login(login, u, false)
                .await?
                .user
                .map(|u| u.key_list())
                .unwrap_or_default(),
        })
    }

    /// The OpenSSH public key a key id names (what an HTTP Signature
    /// verifier needs); `None` when the account or user has no such key.
    /// A missing account or user is an error (404).
    pub async fn key(
        &self,
        login: &str,
        user: Option<&str>,
        fingerprint: &str,
    ) -> Result<Option<String>, ApiError> {
        let a = match user {
            None => self.account_by_login(login).await?,
            Some(u) => self.user_by_login(login, u, false).await?,
        };
        Ok(match (&a.user, user) {
            (Some(u), Some(_)) => u.key(fingerprint).map(str::to_string),
            (None, Some(_)) => None,
            _ => a.account.key(fingerprint).map(str::to_string),
        })
    }

    /// The account's group names.
    pub async fn groups(&self, login: &str) -> Result<Vec<String>, ApiError> {
        Ok(self.account_by_login(login).await?.account.group_names())
    }

    /// Whether the account is an operator ([`crate::Account::is_admin`]).
    pub async fn is_operator(&self, login: &str) -> Result<bool, ApiError> {
        Ok(self.account_by_login(login).await?.account.is_admin())
    }

    /// `GET /ping` answered (mahi is up).
    pub async fn is_up(&self) -> bool {
        self.svc
            .call(Req::new(Method::GET, self.svc.url(&["ping"], NO_QUERY)))
            .await
            .is_ok()
    }
}
