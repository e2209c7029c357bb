//! waypoint-proxy: the standalone waypoint's data plane. A CONNECT is resolved once and judged
//! (`connect`), each request planned by the policy adapter (`policy`) and served by the HTTP
//! pipeline (`http`) over pooled `upstream`s.

pub mod admin;
pub mod config;
pub mod connect;
pub mod ext_authz;
pub mod http;
pub mod jwks;
pub mod logging;
pub mod policy;
pub mod run;
pub mod telemetry;
pub mod upstream;

use std::sync::Arc;

use crate::config::ConfigStore;
use crate::telemetry::metrics::Metrics;

/// State every tunnel and request shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<ConfigStore>,
    pub upstreams: Arc<upstream::Upstreams>,
    pub metrics: Arc<Metrics>,
    /// Metric handles cached per label set (see `request_metrics`).
    pub request_metrics: telemetry::request_metrics::RequestMetrics,
    pub outliers: upstream::outlier::Outliers,
    pub active: Arc<upstream::least_request::ActiveRequests>,
    /// Listener, stream and relay timeouts.
    pub timeouts: waypoint_hbone::timeouts::Timeouts,
    /// Allowed upgrades, inner CONNECT, and the waypoint's own listeners (refused destinations).
    pub proxy: connect::guard::ProxyOptions,
    /// Local rate limit buckets (kept across config generations).
    pub ratelimit: http::ratelimit::Limiter,
    /// JWKS of RequestAuthentication rules (inline parsed once, `jwksUri` fetched and cached).
    pub jwks: Arc<jwks::JwksCache>,
}
