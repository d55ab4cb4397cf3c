//! CNAPI (`sdc-cnapi`; `shared/notes/triton.md` 4): servers and DAPI
//! placement. No authentication, admin network.

use reqwest::Method;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::http::{HttpClient, Query, Req, Service, NO_QUERY};
use crate::types::{AllocateRequest, Allocation, Server};

/// ListServers filters (`GET /servers`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerFilter {
    pub uuids: Vec<String>,
    pub setup: Option<bool>,
    pub reserved: Option<bool>,
    pub headnode: Option<bool>,
    pub hostname: Option<String>,
    /// `sysinfo`, `vms`, `all`, ...
    pub extras: Vec<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub extra: Vec<(String, String)>,
}

impl ServerFilter {
    /// All servers with their sysinfo.
    pub fn with_sysinfo() -> ServerFilter {
        ServerFilter {
            extras: vec!["sysinfo".into()],
            ..Default::default()
        }
    }

    pub fn to_query(&self) -> Query {
        let mut q = Query::new();
        if !self.uuids.is_empty() {
            q.push("uuids", self.uuids.join(","));
        }
        q.opt("setup", self.setup)
            .opt("reserved", self.reserved)
            .opt("headnode", self.headnode)
            .opt("hostname", self.hostname.as_ref());
        if !self.extras.is_empty() {
            q.push("extras", self.extras.join(","));
        }
        q.opt("limit", self.limit).opt("offset", self.offset);
        q.extend(&self.extra);
        q
    }
}

/// A CNAPI client.
#[derive(Debug, Clone)]
pub struct Cnapi {
    svc: Service,
}

impl Cnapi {
    pub fn new(http: &HttpClient, url: &str) -> Result<Cnapi, ApiError> {
        Ok(Cnapi {
            svc: Service::new("CNAPI", http, url)?,
        })
    }

    pub fn url(&self) -> &str {
        self.svc.base.as_str()
    }

    pub async fn ping(&self) -> Result<Value, ApiError> {
        self.svc.get(&["ping"], NO_QUERY).await
    }

    /// `GET /servers?...`.
    pub async fn list(&self, filter: &ServerFilter) -> Result<Vec<Server>, ApiError> {
        let q = filter.to_query();
        let r = self
            .svc
            .call(Req::new(Method::GET, self.svc.url(&["servers"], q.pairs())))
            .await?;
        self.svc.decode_list(&r)
    }

    /// `GET /servers/:uuid` (with sysinfo).
    pub async fn get(&self, uuid: &str) -> Result<Server, ApiError> {
        self.svc.get(&["servers", uuid], NO_QUERY).await
    }

    /// `POST /allocate`: DAPI's choice, or 409 `NoAllocatableServersError`
    /// (`No compute resources available: <reason>`).
    pub async fn allocate(&self, req: &AllocateRequest) -> Result<Allocation, ApiError> {
        self.svc
            .send_json(Method::POST, &["allocate"], NO_QUERY, req)
            .await
    }

    /// `POST /servers/:uuid` (ServerUpdate: `traits`, `reserved`,
    /// `reservation_ratio`, `comments`, `rack_identifier`, `boot_platform`,
    /// ...). CNAPI answers 204.
    pub async fn update(&self, uuid: &str, changes: &Map<String, Value>) -> Result<(), ApiError> {
        self.svc
            .call(Req::new(Method::POST, self.svc.url(&["servers", uuid], NO_QUERY)).json(changes))
            .await
            .map(|_| ())
    }
}
