//! waypoint-wasm: the policy core as a proxy-wasm HTTP filter (`waypoint_wasm.wasm`, built for
//! `wasm32-wasip1`) for Envoy's Wasm runtime; the same core and manifests as the module.
//!
//! `config` compiles the plugin configuration, `filter` decides and applies over the `Stream`
//! trait (tested on the host), `abi` is the proxy-wasm glue and exists only on wasm32.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // proxy_wasm::main! exports `_initialize` (#[no_mangle]): the ABI entry.
mod abi;
pub mod config;
pub mod filter;

#[cfg(test)]
mod tests;
