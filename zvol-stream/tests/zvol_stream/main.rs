//! Integration tests of zvol-stream, in one binary.
//!
//! The oracle is the real OpenZFS code in shared/oracle/openzfs: `zstream
//! dump` (record checks), `zstream raw` and `zvol-golden send|recv` (the
//! kernel's send and receive paths over a file-backed pool). When it is
//! missing the tests that need it fail, saying so.

mod common;

mod cli;
mod genuine;
mod malformed;
mod roundtrip;
mod write_oracle;
