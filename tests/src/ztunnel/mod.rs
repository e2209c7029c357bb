//! Harness for interop tests against a real ztunnel: its local config, a CA endpoint that
//! signs its CSRs with the test PKI, the process in a network namespace, and plain clients.

pub mod ca;
pub mod client;
pub mod config;
pub mod mesh;
pub mod process;
pub mod proto;
