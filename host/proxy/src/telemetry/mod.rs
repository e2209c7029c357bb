//! Telemetry: the Prometheus registry with Istio's metric names and labels (`metrics`), the
//! per-request recorder with cached label sets (`request_metrics`), and Envoy's response flags.

pub mod metrics;
pub mod ratelimit_stats;
pub mod request_metrics;
pub mod response_flag;
