//! vminfod's HTTP API (`GET /ping`, `/vms`, `/vms/<uuid>`) through the
//! workspace's one Triton client crate (`triton-api`, reqwest).

use std::time::Duration;

use bytes::Bytes;
use triton_api::{ApiError, ClientConfig, HttpClient};

/// A vminfod client: its base URL (e.g. `http://127.0.0.1:9090`) and a
/// request timeout.
#[derive(Clone, Debug)]
pub struct Vminfod {
    url: String,
    client: triton_api::Vminfod,
    pub timeout: Duration,
}

/// Why vminfod could not be read.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct VminfodError(#[from] pub ApiError);

impl VminfodError {
    pub fn is_not_found(&self) -> bool {
        self.0.is_not_found()
    }
}

impl Vminfod {
    pub fn new(url: &str) -> Result<Vminfod, VminfodError> {
        Vminfod::with_timeout(url, Duration::from_secs(30))
    }

    fn with_timeout(url: &str, timeout: Duration) -> Result<Vminfod, VminfodError> {
        let http = HttpClient::new(ClientConfig {
            timeout,
            read_timeout: timeout,
            connect_timeout: timeout.min(Duration::from_secs(10)),
            ..ClientConfig::default()
        })?;
        Ok(Vminfod {
            url: url.trim_end_matches('/').to_string(),
            client: triton_api::Vminfod::new(&http, url)?,
            timeout,
        })
    }

    /// The same vminfod with another timeout.
    pub fn timed(&self, timeout: Duration) -> Result<Vminfod, VminfodError> {
        Vminfod::with_timeout(&self.url, timeout)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn ping(&self) -> Result<(), VminfodError> {
        Ok(self.client.ping().await?)
    }

    pub async fn vms(&self) -> Result<Bytes, VminfodError> {
        Ok(self.client.vms_bytes().await?)
    }

    /// `uuid` must already be checked to be a UUID.
    pub async fn vm(&self, uuid: &str) -> Result<Bytes, VminfodError> {
        Ok(self.client.vm_bytes(uuid).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let v = Vminfod::new("http://127.0.0.1:9090").unwrap();
        assert_eq!(v.url("/vms"), "http://127.0.0.1:9090/vms");
        let v = Vminfod::new("http://node1:8080/sim/").unwrap();
        assert_eq!(v.url("/vms/x"), "http://node1:8080/sim/vms/x");
        assert!(Vminfod::new("not a url").is_err());
    }
}
