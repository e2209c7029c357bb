//! Admin endpoints: readiness (`/healthz/ready`, :15021), Prometheus stats
//! (`/stats/prometheus`, :15020), `/config_dump` and `/proxy_config` (admin, loopback :15000).

pub mod bounded;
pub mod proxy_config;
pub mod server;

pub use server::{serve, Admin, Role};
