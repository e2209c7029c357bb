//! Telemetry: the Prometheus registry with Istio's metric names and labels (`metrics`) and the
//! per-request recorder with cached label sets (`request_metrics`).

pub mod metrics;
pub mod request_metrics;
