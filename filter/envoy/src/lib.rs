//! waypoint-envoy: the policy core as an Envoy 1.40 dynamic-module HTTP filter (`libwaypoint.so`).
//! All `unsafe`/FFI lives in `abi`; the filter logic in `filter` works over the `StreamHandle` trait.
//!
//! Dependencies run one way: `abi` → `filter` → {`ext_authz`, `config`, `router`}, `ext_authz`
//! → `config` → `decide` → `router` → the core. Unit tests drive the logic through
//! `fake::FakeStream` (`tests/`): `abi`'s parts that call Envoy only exist outside tests.

pub mod abi;
pub mod config;
pub mod counts;
pub mod decide;
pub mod ext_authz;
#[cfg(test)]
pub mod fake;
pub mod filter;
pub mod header_block;
pub mod istio_batch;
pub mod jwt;
pub mod metrics;
pub mod router;
pub mod stream;
pub mod timer;

#[cfg(test)]
mod tests;
