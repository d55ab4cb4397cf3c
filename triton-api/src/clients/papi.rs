//! PAPI (`sdc-papi`; `shared/notes/triton.md` 3): no authentication,
//! admin network.

use reqwest::Method;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::http::{HttpClient, Page, Query, Req, Service, NO_QUERY};
use crate::types::Package;

/// Escape PAPI's wildcard: `*` becomes `{\2a}`, so the value matches
/// literally (PAPI's docs, "Security Warning"). Use it on any value that
/// comes from a user.
pub fn literal(value: &str) -> String {
    value.replace('*', "{\\2a}")
}

/// Several values for one attribute: PAPI's "any of" JSON array
/// (`name=["a","b"]`); one value is sent plain.
fn any_of(values: &[String]) -> Option<String> {
    match values {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(Value::from(many.to_vec()).to_string()),
    }
}

/// ListPackages filters (`GET /packages`). Values go to PAPI as given, so
/// `*` is a wildcard: pass user input through [`literal`]. With `filter`
/// (an LDAP filter such as `(&(name=sdc_*)(max_physical_memory>=1024))`)
/// PAPI ignores the attribute filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageFilter {
    pub name: Vec<String>,
    pub version: Option<String>,
    pub active: Option<bool>,
    pub brand: Option<String>,
    /// `owner_uuids=X` matches X's packages **and every public package**.
    pub owner_uuids: Vec<String>,
    pub group: Option<String>,
    pub os: Option<String>,
    pub max_physical_memory: Option<u64>,
    pub quota: Option<u64>,
    pub max_swap: Option<u64>,
    pub max_lwps: Option<u64>,
    pub vcpus: Option<u64>,
    pub flexible_disk: Option<bool>,
    /// A raw LDAP filter.
    pub filter: Option<String>,
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub order: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub extra: Vec<(String, String)>,
}

impl PackageFilter {
    /// The packages CloudAPI shows an account: active, owned by it or
    /// public.
    pub fn for_account(account_uuid: &str) -> PackageFilter {
        PackageFilter {
            active: Some(true),
            owner_uuids: vec![account_uuid.to_string()],
            ..Default::default()
        }
    }

    pub fn to_query(&self) -> Query {
        let mut q = Query::new();
        q.opt("name", any_of(&self.name))
            .opt("version", self.version.as_ref())
            .opt("active", self.active)
            .opt("brand", self.brand.as_ref())
            .opt("owner_uuids", any_of(&self.owner_uuids))
            .opt("group", self.group.as_ref())
            .opt("os", self.os.as_ref())
            .opt("max_physical_memory", self.max_physical_memory)
            .opt("quota", self.quota)
            .opt("max_swap", self.max_swap)
            .opt("max_lwps", self.max_lwps)
            .opt("vcpus", self.vcpus)
            .opt("flexible_disk", self.flexible_disk)
            .opt("filter", self.filter.as_ref())
            .opt("sort", self.sort.as_ref())
            .opt("order", self.order.as_ref())
            .opt("limit", self.limit)
            .opt("offset", self.offset);
        q.extend(&self.extra);
        q
    }
}

/// A PAPI client.
#[derive(Debug, Clone)]
pub struct Papi {
    svc: Service,
}

impl Papi {
    pub fn new(http: &HttpClient, url: &str) -> Result<Papi, ApiError> {
        Ok(Papi {
            svc: Service::new("PAPI", http, url)?,
        })
    }

    pub fn url(&self) -> &str {
        self.svc.base.as_str()
    }

    pub async fn ping(&self) -> Result<Value, ApiError> {
        self.svc.get(&["ping"], NO_QUERY).await
    }

    /// `GET /packages?...`, with `x-resource-count` as `total`.
    pub async fn list(&self, filter: &PackageFilter) -> Result<Page<Package>, ApiError> {
        let q = filter.to_query();
        let r = self
            .svc
            .call(Req::new(
                Method::GET,
                self.svc.url(&["packages"], q.pairs()),
            ))
            .await?;
        self.svc.decode_page(&r)
    }

    /// `GET /packages/:uuid`, whoever owns it.
    pub async fn get(&self, uuid: &str) -> Result<Package, ApiError> {
        self.svc.get(&["packages", uuid], NO_QUERY).await
    }

    /// `GET /packages/:uuid?owner_uuids=<owner>`: 404 unless the package is
    /// public or lists `owner` (what CloudAPI's GetPackage asks).
    pub async fn get_for_owner(&self, uuid: &str, owner: &str) -> Result<Package, ApiError> {
        self.svc
            .get(&["packages", uuid], &[("owner_uuids", owner)])
            .await
    }

    /// `POST /packages`. Set `skip_validation` in `extra` only when you
    /// mean it.
    pub async fn create(&self, package: &Package) -> Result<Package, ApiError> {
        self.svc
            .send_json(Method::POST, &["packages"], NO_QUERY, package)
            .await
    }

    /// `PUT /packages/:uuid` with the attributes to change.
    pub async fn update(
        &self,
        uuid: &str,
        changes: &Map<String, Value>,
    ) -> Result<Package, ApiError> {
        self.svc
            .send_json(Method::PUT, &["packages", uuid], NO_QUERY, changes)
            .await
    }

    /// `DELETE /packages/:uuid?force=true` (PAPI refuses without `force`).
    pub async fn delete(&self, uuid: &str) -> Result<(), ApiError> {
        self.svc
            .call(Req::new(
                Method::DELETE,
                self.svc.url(&["packages", uuid], &[("force", "true")]),
            ))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_escaping() {
        let mut f = PackageFilter::for_account("o1");
        f.name = vec![literal("sdc_*"), "b".into()];
        f.owner_uuids.push("o2".into());
        f.max_physical_memory = Some(1024);
        let q: Vec<String> = f
            .to_query()
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            q,
            [
                "name=[\"sdc_{\\\\2a}\",\"b\"]",
                "active=true",
                "owner_uuids=[\"o1\",\"o2\"]",
                "max_physical_memory=1024"
            ]
        );
        assert_eq!(literal("a*b"), "a{\\2a}b");
        let f = PackageFilter {
            filter: Some("(&(name=x)(brand=builder))".into()),
            ..Default::default()
        };
        assert_eq!(
            f.to_query().0,
            [(
                "filter".to_string(),
                "(&(name=x)(brand=builder))".to_string()
            )]
        );
    }
}
