//! CloudAPI (`sdc-cloudapi`, or a compatible front such as triton-gate),
//! with every request signed as node-triton signs it
//! (`shared/notes/triton.md` 6): `Date`, `Authorization: Signature ...`,
//! `Accept-Version: ~9||~8`, `Content-MD5` on bodies.

use std::time::SystemTime;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorKind};
use crate::http::{path_and_query, HttpClient, Page, Payload, Reply, Req, Service};
use crate::httpsig::Signer;
use crate::types::{CloudAccount, CloudImage, CloudPackage, CreateMachine, Machine};

/// The `Accept-Version` node-triton sends.
pub const ACCEPT_VERSION: &str = "~9||~8";

/// A CloudAPI client for one account, signing as one key.
#[derive(Debug, Clone)]
pub struct CloudApi {
    svc: Service,
    signer: Signer,
    account: String,
    role: Option<String>,
}

fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
    q.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl CloudApi {
    /// Requests go to `/<signer's login>/...`.
    pub fn new(http: &HttpClient, url: &str, signer: Signer) -> Result<CloudApi, ApiError> {
        Ok(CloudApi {
            svc: Service::new("CloudAPI", http, url)?,
            account: signer.login().to_string(),
            signer,
            role: None,
        })
    }

    /// The same key acting for another account (`triton --act-as`): URLs
    /// name `account`, the key id stays the caller's.
    pub fn act_as(&self, account: &str) -> CloudApi {
        let mut c = self.clone();
        c.account = account.to_string();
        c
    }

    /// Send `as-role=<role>` on every request (`triton -r _operator`).
    pub fn as_role(&self, role: &str) -> CloudApi {
        let mut c = self.clone();
        c.role = Some(role.to_string());
        c
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn url(&self) -> &str {
        self.svc.base.as_str()
    }

    fn url_for(&self, rest: &[&str], query: &[(&str, &str)]) -> Url {
        let mut segs = vec![self.account.as_str()];
        segs.extend_from_slice(rest);
        let mut q = pairs(query);
        if let Some(r) = &self.role {
            q.push(("as-role".into(), r.clone()));
        }
        self.svc.url(&segs, &q)
    }

    /// Build and send a signed request; any status is returned.
    async fn signed(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ApiError> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let md5 = body
            .as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(Md5::digest(b)));
        let host = url.host_str().map(|h| match url.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        });
        let pq = path_and_query(&url);
        let (d, m, h) = (date.clone(), md5.clone(), host.clone());
        let auth = self
            .signer
            .authorize(method.as_str(), &pq, move |n| match n {
                "date" | "x-date" => Some(d.clone()),
                "content-md5" => m.clone(),
                "host" => h.clone(),
                "content-type" => m.as_ref().map(|_| "application/json".to_string()),
                "accept" => Some("application/json".into()),
                _ => None,
            })
            .map_err(|e| {
                self.svc
                    .error(&method, &url, ErrorKind::Invalid(e.to_string()))
            })?;
        let mut headers = HeaderMap::new();
        let mut put = |k: &'static str, v: &str| {
            if let Ok(v) = HeaderValue::from_str(v) {
                headers.insert(HeaderName::from_static(k), v);
            }
        };
        put("date", &date);
        put("authorization", &auth);
        put("accept-version", ACCEPT_VERSION);
        if let Some(m) = &md5 {
            put("content-md5", m);
        }
        let mut req = Req::new(method, url);
        req.headers = headers;
        if let Some(b) = body {
            req.body = Payload::Json(b);
        }
        self.svc.raw(req).await
    }

    /// A signed request to `path` (`/my/machines?x=1`, already encoded)
    /// with an optional JSON body. Any status is returned as is: for tests
    /// that need raw answers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ApiError> {
        let base = self.svc.base.as_str().trim_end_matches('/');
        let url = Url::parse(&format!("{base}{path}")).map_err(|e| {
            self.svc.error(
                &method,
                &self.svc.base,
                ErrorKind::Invalid(format!("bad path {path:?}: {e}")),
            )
        })?;
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        self.signed(method, url, body).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        rest: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(T, Reply), ApiError> {
        let url = self.url_for(rest, query);
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let r = self.svc.check(self.signed(method, url, body).await?)?;
        Ok((self.svc.decode(&r)?, r))
    }

    async fn list<T: DeserializeOwned>(
        &self,
        rest: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Page<T>, ApiError> {
        let url = self.url_for(rest, query);
        let r = self.svc.check(self.signed(Method::GET, url, None).await?)?;
        self.svc.decode_page(&r)
    }

    /// ListMachines (`GET /:account/machines`; filters such as `brand`,
    /// `state`, `name`, `limit`, `offset`), with `x-resource-count`.
    pub async fn list_machines(&self, query: &[(&str, &str)]) -> Result<Page<Machine>, ApiError> {
        self.list(&["machines"], query).await
    }

    /// GetMachine.
    pub async fn get_machine(&self, id: &str) -> Result<Machine, ApiError> {
        Ok(self
            .call(Method::GET, &["machines", id], &[], None)
            .await?
            .0)
    }

    /// CreateMachine (`POST /:account/machines`).
    pub async fn create_machine(&self, params: &CreateMachine) -> Result<Machine, ApiError> {
        let body = Value::Object(params.to_body());
        Ok(self
            .call(Method::POST, &["machines"], &[], Some(&body))
            .await?
            .0)
    }

    /// ListPackages (filters `name`, `memory`, `disk`, `swap`, `lwps`,
    /// `version`, `vcpus`, `group`, `brand`, `flexible_disk`).
    pub async fn list_packages(
        &self,
        query: &[(&str, &str)],
    ) -> Result<Vec<CloudPackage>, ApiError> {
        Ok(self.list(&["packages"], query).await?.items)
    }

    /// GetPackage by UUID or name.
    pub async fn get_package(&self, id: &str) -> Result<CloudPackage, ApiError> {
        Ok(self
            .call(Method::GET, &["packages", id], &[], None)
            .await?
            .0)
    }

    /// ListImages (filters `name`, `os`, `version`, `public`, `state`,
    /// `owner`, `type`).
    pub async fn list_images(&self, query: &[(&str, &str)]) -> Result<Vec<CloudImage>, ApiError> {
        Ok(self.list(&["images"], query).await?.items)
    }

    /// GetImage.
    pub async fn get_image(&self, id: &str) -> Result<CloudImage, ApiError> {
        Ok(self.call(Method::GET, &["images", id], &[], None).await?.0)
    }

    /// GetAccount (`GET /:account`).
    pub async fn get_account(&self) -> Result<CloudAccount, ApiError> {
        Ok(self.call(Method::GET, &[], &[], None).await?.0)
    }
}
