//! HTTP Signature, as CloudAPI and node-triton speak it: the verifier's
//! pieces and the client-side [`Signer`] live in [`triton_api::httpsig`];
//! this module re-exports them for the gate's users.

pub use triton_api::httpsig::*;
