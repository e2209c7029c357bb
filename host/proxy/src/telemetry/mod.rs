//! Telemetry: Istio's metrics in Prometheus form (`metrics`, cached per label set in
//! `request_metrics`, sizes in `body_size`), Envoy's response flags, `x-request-id`, and
//! tracing (`trace_context` on the wire, `span` built per request, `exporter` over OTLP).

pub mod body_size;
pub mod exporter;
pub mod global_ratelimit_stats;
pub mod metrics;
pub mod otlp;
pub mod ratelimit_stats;
pub mod request_id;
pub mod request_metrics;
pub mod response_flag;
pub mod span;
pub mod trace_context;
