//! VMAPI (`sdc-vmapi`; `shared/notes/triton.md` 2): no authentication,
//! admin network.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorKind};
use crate::http::{HttpClient, Page, Query, Req, Service, NO_QUERY};
use crate::types::{CreateVm, Job, JobRef, Vm};

/// ListVms filters (`GET /vms`). VMAPI is strict: an unknown parameter is
/// a 409, so only set what VMAPI knows; `extra` is sent as is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmFilter {
    pub owner_uuid: Option<String>,
    pub brand: Option<String>,
    /// A state, or `active` (anything but destroyed/failed/incomplete).
    pub state: Option<String>,
    pub alias: Option<String>,
    pub server_uuid: Option<String>,
    pub billing_id: Option<String>,
    pub image_uuid: Option<String>,
    pub uuid: Option<String>,
    /// Sent as one comma-separated `uuids`.
    pub uuids: Vec<String>,
    /// `tag.<key>=<value>`.
    pub tags: Vec<(String, String)>,
    /// `fields=a,b` (`*` for all).
    pub fields: Vec<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// `create_timestamp.desc` etc.
    pub sort: Option<String>,
    /// An LDAP-ish JSON predicate.
    pub predicate: Option<Value>,
    pub extra: Vec<(String, String)>,
}

impl VmFilter {
    /// Every VM of an owner.
    pub fn owner(owner_uuid: &str) -> VmFilter {
        VmFilter {
            owner_uuid: Some(owner_uuid.to_string()),
            ..Default::default()
        }
    }

    pub fn to_query(&self) -> Query {
        let mut q = Query::new();
        q.opt("owner_uuid", self.owner_uuid.as_ref())
            .opt("brand", self.brand.as_ref())
            .opt("state", self.state.as_ref())
            .opt("alias", self.alias.as_ref())
            .opt("server_uuid", self.server_uuid.as_ref())
            .opt("billing_id", self.billing_id.as_ref())
            .opt("image_uuid", self.image_uuid.as_ref())
            .opt("uuid", self.uuid.as_ref());
        if !self.uuids.is_empty() {
            q.push("uuids", self.uuids.join(","));
        }
        for (k, v) in &self.tags {
            q.push(&format!("tag.{k}"), v);
        }
        if !self.fields.is_empty() {
            q.push("fields", self.fields.join(","));
        }
        q.opt("limit", self.limit)
            .opt("offset", self.offset)
            .opt("sort", self.sort.as_ref())
            .opt("predicate", self.predicate.as_ref().map(Value::to_string));
        q.extend(&self.extra);
        q
    }
}

/// A VMAPI client.
#[derive(Debug, Clone)]
pub struct Vmapi {
    svc: Service,
}

impl Vmapi {
    pub fn new(http: &HttpClient, url: &str) -> Result<Vmapi, ApiError> {
        Ok(Vmapi {
            svc: Service::new("VMAPI", http, url)?,
        })
    }

    pub fn url(&self) -> &str {
        self.svc.base.as_str()
    }

    /// `GET /ping`.
    pub async fn ping(&self) -> Result<Value, ApiError> {
        self.svc.get(&["ping"], NO_QUERY).await
    }

    /// `GET /vms?...`: one page, with `x-joyent-resource-count` as `total`.
    pub async fn list(&self, filter: &VmFilter) -> Result<Page<Vm>, ApiError> {
        let q = filter.to_query();
        let r = self
            .svc
            .call(Req::new(Method::GET, self.svc.url(&["vms"], q.pairs())))
            .await?;
        self.svc.decode_page(&r)
    }

    /// Every match, paging with `offset` (`limit` from the filter, else
    /// 1000, VMAPI's maximum).
    pub async fn list_all(&self, filter: &VmFilter) -> Result<Vec<Vm>, ApiError> {
        let mut f = filter.clone();
        let limit = f.limit.unwrap_or(1000).max(1);
        f.limit = Some(limit);
        let mut offset = f.offset.unwrap_or(0);
        let mut out = Vec::new();
        loop {
            f.offset = Some(offset);
            let page = self.list(&f).await?;
            let n = page.len() as u64;
            out.extend(page.items);
            if n < limit || page.total.is_some_and(|t| offset + n >= t) {
                return Ok(out);
            }
            offset += n;
        }
    }

    /// `GET /vms/:uuid`.
    pub async fn get(&self, uuid: &str) -> Result<Vm, ApiError> {
        self.svc.get(&["vms", uuid], NO_QUERY).await
    }

    /// `GET /vms/:uuid?owner_uuid=`: 404 unless `owner` owns it.
    pub async fn get_for_owner(&self, uuid: &str, owner: &str) -> Result<Vm, ApiError> {
        self.svc.get(&["vms", uuid], &[("owner_uuid", owner)]).await
    }

    /// `POST /vms` (CreateVm): the VM and its provision job.
    pub async fn create(&self, params: &CreateVm) -> Result<JobRef, ApiError> {
        self.svc
            .send_json(Method::POST, &["vms"], NO_QUERY, params)
            .await
    }

    /// `POST /vms/:uuid?action=<action>` with a JSON body (UpdateVm and the
    /// other actions): the job.
    pub async fn action(
        &self,
        uuid: &str,
        action: &str,
        body: &Map<String, Value>,
    ) -> Result<JobRef, ApiError> {
        self.svc
            .send_json(Method::POST, &["vms", uuid], &[("action", action)], body)
            .await
    }

    /// `action=update` (resize with `billing_id`, `alias`, `tags`, ...).
    pub async fn update(
        &self,
        uuid: &str,
        changes: &Map<String, Value>,
    ) -> Result<JobRef, ApiError> {
        self.action(uuid, "update", changes).await
    }

    pub async fn start(&self, uuid: &str) -> Result<JobRef, ApiError> {
        self.action(uuid, "start", &Map::new()).await
    }

    pub async fn stop(&self, uuid: &str) -> Result<JobRef, ApiError> {
        self.action(uuid, "stop", &Map::new()).await
    }

    pub async fn reboot(&self, uuid: &str) -> Result<JobRef, ApiError> {
        self.action(uuid, "reboot", &Map::new()).await
    }

    /// `DELETE /vms/:uuid`: the destroy job.
    pub async fn delete(&self, uuid: &str) -> Result<JobRef, ApiError> {
        let r = self
            .svc
            .call(Req::new(
                Method::DELETE,
                self.svc.url(&["vms", uuid], NO_QUERY),
            ))
            .await?;
        self.svc.decode(&r)
    }

    /// `GET /jobs/:uuid`.
    pub async fn get_job(&self, uuid: &str) -> Result<Job, ApiError> {
        self.svc.get(&["jobs", uuid], NO_QUERY).await
    }

    /// `GET /vms/:uuid/jobs`.
    pub async fn vm_jobs(&self, vm_uuid: &str) -> Result<Vec<Job>, ApiError> {
        let r = self
            .svc
            .call(Req::new(
                Method::GET,
                self.svc.url(&["vms", vm_uuid, "jobs"], NO_QUERY),
            ))
            .await?;
        self.svc.decode_list(&r)
    }

    /// Poll `GET /jobs/:uuid` until it is `succeeded`, `failed` or
    /// `canceled` (returned as is: check [`Job::succeeded`]), or until
    /// `timeout` ([`ErrorKind::JobTimeout`]).
    pub async fn wait_job(&self, uuid: &str, timeout: Duration) -> Result<Job, ApiError> {
        let start = Instant::now();
        let poll = self.svc.http.config().job_poll_interval;
        loop {
            let j = self.get_job(uuid).await?;
            if j.is_finished() {
                return Ok(j);
            }
            if start.elapsed() >= timeout {
                let url = self.svc.url(&["jobs", uuid], NO_QUERY);
                return Err(self.svc.error(
                    &Method::GET,
                    &url,
                    ErrorKind::JobTimeout {
                        job: uuid.to_string(),
                        after: timeout,
                    },
                ));
            }
            tokio::time::sleep(poll.min(timeout.saturating_sub(start.elapsed()))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters() {
        let f = VmFilter {
            owner_uuid: Some("o".into()),
            brand: Some("builder".into()),
            state: Some("active".into()),
            uuids: vec!["a".into(), "b".into()],
            tags: vec![("role".into(), "ci".into())],
            fields: vec!["uuid".into(), "alias".into()],
            limit: Some(10),
            predicate: Some(json!({"eq": ["alias", "x"]})),
            extra: vec![("sync".into(), "true".into())],
            ..Default::default()
        };
        let q: Vec<String> = f
            .to_query()
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            q,
            [
                "owner_uuid=o",
                "brand=builder",
                "state=active",
                "uuids=a,b",
                "tag.role=ci",
                "fields=uuid,alias",
                "limit=10",
                "predicate={\"eq\":[\"alias\",\"x\"]}",
                "sync=true"
            ]
        );
    }
}
