//! waypoint-envoy: the policy core as an Envoy 1.40 dynamic-module HTTP filter (`libwaypoint.so`).
//! All `unsafe`/FFI lives in `abi`; the filter logic in `filter` works over the `StreamHandle` trait.

// The ABI module references Envoy's callbacks, which only exist inside Envoy; unit tests link
// without it and drive the logic through `fake::FakeStream`.
#[cfg(not(test))]
pub mod abi;
pub mod config;
pub mod counts;
pub mod decide;
pub mod ext_authz;
#[cfg(test)]
pub mod fake;
pub mod filter;
pub mod header_block;
pub mod stream;
pub mod timer;

#[cfg(test)]
mod tests;
