//! One async client per service, all on one shared [`HttpClient`](crate::HttpClient).

pub mod cloudapi;
pub mod cnapi;
pub mod imgapi;
pub mod mahi;
pub mod papi;
pub mod vmapi;
pub mod vminfod;

pub use cloudapi::CloudApi;
pub use cnapi::{Cnapi, ServerFilter};
pub use imgapi::{FileDigest, FileUpload, ImageFileDownload, ImageFilter, Imgapi};
pub use mahi::Mahi;
pub use papi::{literal, PackageFilter, Papi};
pub use vmapi::{VmFilter, Vmapi};
pub use vminfod::Vminfod;
