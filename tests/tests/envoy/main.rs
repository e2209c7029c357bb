//! Stock Envoy 1.40 with our module end to end, the generated bootstrap and the xDS server
//! (one test binary).

mod bootstrap_generated;
mod configs;
mod e2e;
mod generated_retries;
mod generated_scenarios;
mod generated_traffic;
mod global_ratelimit;
mod jwt;
mod proxy_config;
mod ratelimit;
mod reload;
mod rule_ratelimit;
mod scenarios;
mod sidecar;
mod symbols;
mod telemetry_istio;
mod traffic_policy;
mod wasm;
mod xds;
mod xds_ca;
mod xds_protocol;
