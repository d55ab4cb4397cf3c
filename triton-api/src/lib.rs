//! `triton-api`: typed Triton objects and async clients for PAPI, VMAPI,
//! CNAPI, IMGAPI, mahi, vminfod and CloudAPI (signed), on one shared
//! `reqwest` client.
//!
//! - [`types`]: `Package`, `Vm`, `Image`, `Server`/`Sysinfo`, `Account`,
//!   `User`, `Key`, `Job`, CloudAPI's `Machine`/`CloudPackage`/`CloudImage`,
//!   shared by clients and by servers that speak the same wire formats.
//!   Unknown members are kept, numbers and booleans read leniently
//!   ([`Lenient`]).
//! - [`error`]: [`TritonError`] (the `{code, message, errors}` body) and
//!   [`ApiError`] (what a failed call returns, one line when displayed).
//! - [`clients`]: [`Vmapi`], [`Papi`], [`Cnapi`], [`Imgapi`], [`Mahi`],
//!   [`Vminfod`], [`CloudApi`]; [`Triton`] builds the five admin-network
//!   clients from an [`Endpoints`] file.
//! - [`dapi`]: DAPI's placement rules (platform floors and ceilings,
//!   traits), for whoever decides or checks where a VM may go.
//! - [`httpsig`]: HTTP Signature signing ([`Signer`], from OpenSSH keys)
//!   and the pure pieces a verifier needs.
//!
//! Every request is a `tracing` debug span `triton_api` (service, method,
//! url) with an event carrying the status and latency.

pub mod clients;
pub mod dapi;
pub mod endpoints;
pub mod error;
pub mod http;
pub mod httpsig;
pub mod lenient;
pub mod types;

pub use clients::{
    CloudApi, Cnapi, FileDigest, FileUpload, ImageFileDownload, ImageFilter, Imgapi, Mahi,
    PackageFilter, Papi, ServerFilter, VmFilter, Vmapi, Vminfod,
};
pub use endpoints::{Endpoints, EndpointsError};
pub use error::{ApiError, ErrorBody, ErrorKind, FieldError, TritonError};
pub use http::{ClientConfig, HttpClient, Page, Query, Reply};
pub use httpsig::{KeyError, SigError, Signer};
pub use lenient::{Lenient, LenientExt};
pub use types::*;

/// The admin-network services of one Triton, sharing one connection pool.
#[derive(Debug, Clone)]
pub struct Triton {
    pub papi: Papi,
    pub vmapi: Vmapi,
    pub cnapi: Cnapi,
    pub imgapi: Imgapi,
    pub mahi: Mahi,
    pub http: HttpClient,
}

impl Triton {
    /// Clients for every service of `endpoints`, on one [`HttpClient`].
    pub fn new(endpoints: &Endpoints, config: ClientConfig) -> Result<Triton, ApiError> {
        let http = HttpClient::new(config)?;
        Triton::with_client(endpoints, &http)
    }

    /// The same, on an existing [`HttpClient`].
    pub fn with_client(endpoints: &Endpoints, http: &HttpClient) -> Result<Triton, ApiError> {
        Ok(Triton {
            papi: Papi::new(http, &endpoints.papi)?,
            vmapi: Vmapi::new(http, &endpoints.vmapi)?,
            cnapi: Cnapi::new(http, &endpoints.cnapi)?,
            imgapi: Imgapi::new(http, &endpoints.imgapi)?,
            mahi: Mahi::new(http, &endpoints.mahi)?,
            http: http.clone(),
        })
    }
}
