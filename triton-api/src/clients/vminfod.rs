//! vminfod's HTTP API on a SmartOS node (`GET /ping`, `GET /vms`,
//! `GET /vms/<uuid>`; default `http://127.0.0.1:9090`), serving VM objects
//! in the `vmadm get` shape. No authentication.

use reqwest::Method;
use serde_json::Value;

use crate::error::ApiError;
use crate::http::{HttpClient, Req, Service, NO_QUERY};
use crate::types::Vm;

/// vminfod's usual address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9090";

/// A vminfod client.
#[derive(Debug, Clone)]
pub struct Vminfod {
    svc: Service,
}

impl Vminfod {
    pub fn new(http: &HttpClient, url: &str) -> Result<Vminfod, ApiError> {
        Ok(Vminfod {
            svc: Service::new("vminfod", http, url)?,
        })
    }

    pub fn url(&self) -> &str {
        self.svc.base.as_str()
    }

    /// `GET /ping`: any 2xx is up.
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.svc
            .call(Req::new(Method::GET, self.svc.url(&["ping"], NO_QUERY)))
            .await
            .map(|_| ())
    }

    /// `GET /vms`. Every VM is read on its own: a VM of an unknown brand is
    /// just a VM (brand is a string), and an object that is not a VM at all
    /// is an error naming its index and uuid.
    pub async fn vms(&self) -> Result<Vec<Vm>, ApiError> {
        let r = self
            .svc
            .call(Req::new(Method::GET, self.svc.url(&["vms"], NO_QUERY)))
            .await?;
        self.svc.decode_list(&r)
    }

    /// `GET /vms` as raw JSON objects (for callers that must show even
    /// what does not parse).
    pub async fn vms_json(&self) -> Result<Vec<Value>, ApiError> {
        self.svc.get(&["vms"], NO_QUERY).await
    }

    /// `GET /vms/<uuid>`; 404 when the node has no such VM.
    pub async fn vm(&self, uuid: &str) -> Result<Vm, ApiError> {
        self.svc.get(&["vms", uuid], NO_QUERY).await
    }

    /// `GET /vms` as the bytes vminfod sent (for a reader that decodes
    /// each element on its own and keeps what it cannot read).
    pub async fn vms_bytes(&self) -> Result<bytes::Bytes, ApiError> {
        let r = self
            .svc
            .call(Req::new(Method::GET, self.svc.url(&["vms"], NO_QUERY)))
            .await?;
        Ok(r.body)
    }

    /// `GET /vms/<uuid>` as the bytes vminfod sent.
    pub async fn vm_bytes(&self, uuid: &str) -> Result<bytes::Bytes, ApiError> {
        let r = self
            .svc
            .call(Req::new(
                Method::GET,
                self.svc.url(&["vms", uuid], NO_QUERY),
            ))
            .await?;
        Ok(r.body)
    }
}
