//! Telemetry: Istio's metrics in Prometheus form (`metrics`, cached per label set in
//! `request_metrics`, sizes in `body_size`), Envoy's response flags, `x-request-id`.

pub mod body_size;
pub mod metrics;
pub mod ratelimit_stats;
pub mod request_id;
pub mod request_metrics;
pub mod response_flag;
