//! The waypoint proxy: CONNECT handling, protocol detection, per-request decisions from the
//! policy core, and forwarding to upstreams (plain or HBONE).

pub mod cors;
pub mod deadline;
pub mod decide;
pub mod ext_authz;
pub mod guard;
pub mod handler;
pub mod head_timer;
pub mod headers;
pub mod http;
pub mod idle;
pub mod io;
pub mod least_request;
pub mod outlier;
pub mod plan;
pub mod relay;
pub mod request_metrics;
pub mod request_timeout;
pub mod retry;
pub mod sniff;
pub mod upgrade;
pub mod upstream;

use std::sync::Arc;

use crate::admin::metrics::Metrics;
use crate::config::ConfigStore;

/// State every tunnel and request shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<ConfigStore>,
    pub upstreams: Arc<upstream::Upstreams>,
    pub metrics: Arc<Metrics>,
    /// Metric handles cached per label set (see `request_metrics`).
    pub request_metrics: request_metrics::RequestMetrics,
    pub outliers: outlier::Outliers,
    pub active: Arc<least_request::ActiveRequests>,
    /// Listener, stream and relay timeouts.
    pub timeouts: crate::timeouts::Timeouts,
    /// Allowed upgrades, inner CONNECT, and the waypoint's own listeners (refused destinations).
    pub proxy: guard::ProxyOptions,
}
