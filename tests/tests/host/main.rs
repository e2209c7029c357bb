//! The standalone host end to end: HBONE in and out, mTLS, L7 routing and policy, admin,
//! certificates, upstreams, load, network namespaces, ztunnel interop (one test binary).

mod admin;
mod certs;
mod curl;
mod global_ratelimit;
mod hbone;
mod istio;
mod jwt;
mod l7;
mod load;
mod mtls;
mod netns;
mod proxy_config;
mod ratelimit;
mod rule_ratelimit;
mod scenarios;
mod sidecar;
mod telemetry_labels;
mod traffic_policy;
mod upstream;
mod ztunnel_interop;
