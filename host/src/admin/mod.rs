//! Admin endpoints: readiness (`/healthz/ready`), Prometheus stats (`/stats/prometheus`) and
//! `/config_dump`; served on the Istio ports 15021, 15020 and 15000 (configurable).

pub mod metrics;
pub mod server;

pub use server::{serve, Admin};
