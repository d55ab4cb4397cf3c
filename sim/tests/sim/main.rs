//! The sim's integration tests, one binary: the node driven through its
//! commands, the RFD 184 procedure, and the Triton APIs with real clients.

mod node;
mod triton_api;
mod triton_clients;
mod triton_common;
