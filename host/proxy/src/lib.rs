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
    /// The OTLP span exporter (started by the first sampled span).
    pub tracer: telemetry::exporter::Exporter,
    /// The legacy access-log switch (`--access-log`), used when neither a Telemetry nor the
    /// mesh config decides.
    pub access_log: bool,
}

impl Shared {
    /// Is the access log on for requests decided in `config`? The Telemetry API decides when
    /// it says anything; else MeshConfig `accessLogFile` or the `--access-log` flag.
    pub fn access_log_on(&self, config: &config::ConfigState) -> bool {
        let snapshot = &config.policy.snapshot;
        snapshot
            .telemetry
            .access_log_on(self.access_log || snapshot.mesh().access_log_file)
    }

    /// [`Shared::access_log_on`] for the config in force now (off before the first one).
    pub fn access_log_now(&self) -> bool {
        self.config
            .current()
            .is_some_and(|c| self.access_log_on(&c))
    }
}
